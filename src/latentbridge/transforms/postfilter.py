"""Global-variance post-filter for decoded log-mel spectrograms.

A decoder trained to regress log-mels (MSE / L1) returns the average of what could follow from its
code: spectra smoothed over time, most of all in their fine envelope detail. Its output then
varies less from frame to frame than real speech or sound does, which is heard as a muffled,
"buzzy" sound once inverted to a waveform (the over-smoothing of statistical parametric speech
synthesis). The classic remedy is a global-variance (GV) post-filter: per cepstral coefficient of
the log-mel frames (orthonormal DCT-II over the mel axis), the deviations of the active frames from
their clip's mean are scaled so that their variance over time matches what real data has.

:meth:`GlobalVariancePostFilter.fit` measures the ratios on *training* examples and the model's own
reconstructions of them (the decoder's smoothing, not anything of the test data); :meth:`apply`
corrects any decoded log-mel of that model — reconstructions, or spectrograms generated in its
latent space. Frames whose loudest band is at the data's floor (padded digital silence) are left
alone and kept out of the statistics. Stored as plain JSON in the model folder's ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from latentbridge.transforms.stats import dct_matrix

__all__ = ["GlobalVariancePostFilter"]

KIND = "cepstral_global_variance"


@dataclass
class GlobalVariancePostFilter:
    ratio: np.ndarray
    """(F,) scale of the deviations of each cepstral coefficient (1: unchanged)."""
    floor_db: float
    """The data's floor (its smallest value in training); frames whose loudest band is within
    ``active_db`` of it are silence: neither measured nor changed."""
    active_db: float = 1.0
    ceiling_db: float | None = None
    """The largest value of the training data: filtered bands are kept at or below it (amplified
    deviations never reach levels the data never had); None: no upper bound."""

    # --- statistics ------------------------------------------------------------------------
    def _cepstra(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., F, T) dB → cepstra (..., F, T) (float64) and the active-frame mask (..., 1, T)."""
        x = x.double()
        active = x.amax(dim=-2, keepdim=True) > self.floor_db + self.active_db
        return dct_matrix(x.shape[-2], x.shape[-2], torch.float64).to(x.device) @ x, active

    @staticmethod
    def _clip_moments(c: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per clip and coefficient: mean and variance over the active frames, and their count."""
        m = active.to(c.dtype)
        n = m.sum(-1, keepdim=True)
        mean = (c * m).sum(-1, keepdim=True) / n.clamp_min(1)
        var = ((c - mean) ** 2 * m).sum(-1, keepdim=True) / n.clamp_min(1)
        return mean, var, n

    @classmethod
    def fit(cls, real, decoded, floor_db: float | None = None, active_db: float = 1.0,
            max_ratio: float = 8.0, batch_size: int = 256) -> "GlobalVariancePostFilter":
        """Ratios from training log-mels ``real`` and the model's reconstructions ``decoded`` of them
        (both (N, ..., F, T) in dB, numpy or torch): per coefficient, the square root of the mean
        within-clip variance of the real frames over that of the decoded ones (clips with fewer than two
        active frames in either are left out), at most ``max_ratio`` (a decoder whose output barely
        moves, barely trained, is not blown up; the digits preset's stage measures 1.0-4.5). Read in
        batches of ``batch_size`` clips (bounded memory)."""
        real, decoded = np.asarray(real), np.asarray(decoded)
        if real.shape != decoded.shape or real.ndim < 3:
            raise ValueError(f"real and decoded log-mels must be (N, ..., F, T) of one shape, got "
                             f"{real.shape} and {decoded.shape}")
        floor = float(real.min()) if floor_db is None else float(floor_db)
        probe = cls(np.ones(real.shape[-2]), floor, active_db, float(real.max()))
        sums = torch.zeros(3, real.shape[-2], dtype=torch.float64)  # real variance, decoded variance, clips
        for i in range(0, len(real), batch_size):
            cr, ar = probe._cepstra(torch.from_numpy(np.ascontiguousarray(real[i:i + batch_size])))
            cd, ad = probe._cepstra(torch.from_numpy(np.ascontiguousarray(decoded[i:i + batch_size])))
            active = ar & ad  # frames active in both, so that the two variances are over the same frames
            _, vr, n = cls._clip_moments(cr, active)
            _, vd, _ = cls._clip_moments(cd, active)
            keep = (n >= 2).expand_as(vr)
            for row, v in enumerate((torch.where(keep, vr, 0), torch.where(keep, vd, 0), keep.double())):
                sums[row] += v.flatten(0, -3).sum(0).squeeze(-1)  # (F,) summed over clips
        if not bool((sums[2] > 0).all()):
            raise ValueError("no training example has two frames above the floor: nothing to measure")
        vr, vd = sums[0], sums[1]
        tiny = 1e-12 * float(vr.max().clamp_min(1e-12))
        ratio = torch.sqrt((vr + tiny) / (vd + tiny)).clamp_max(max_ratio)
        return cls(ratio.numpy().astype(np.float64), floor, float(active_db), probe.ceiling_db)

    # --- use -------------------------------------------------------------------------------
    def apply(self, x):
        """Post-filtered copy of log-mels ``x`` (..., F, T) in dB (numpy or torch, same type and dtype
        back). Active frames: cepstral deviations from the clip's mean scaled by ``ratio``, then
        kept between the floor and the ceiling; silent frames unchanged."""
        as_numpy = isinstance(x, np.ndarray)
        t = torch.from_numpy(np.ascontiguousarray(x)) if as_numpy else x
        if t.dim() < 2 or t.shape[-2] != len(self.ratio):
            raise ValueError(f"post-filter fitted on {len(self.ratio)} mel bands, got log-mels of shape {tuple(t.shape)}")
        c, active = self._cepstra(t)
        mean, _, _ = self._clip_moments(c, active)
        r = torch.as_tensor(self.ratio, dtype=c.dtype, device=c.device)[:, None]
        inverse = dct_matrix(t.shape[-2], t.shape[-2], torch.float64).to(c.device).T
        scaled = (inverse @ (mean + r * (c - mean))).clamp(self.floor_db, self.ceiling_db)
        out = torch.where(active, scaled, t.double()).to(t.dtype)
        return out.numpy() if as_numpy else out

    # --- storage ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": KIND, "ratio": [round(float(r), 6) for r in self.ratio], "floor_db": self.floor_db,
                "active_db": self.active_db, "ceiling_db": self.ceiling_db}

    @classmethod
    def from_dict(cls, d: dict | None) -> "GlobalVariancePostFilter | None":
        """The post-filter stored by :meth:`to_dict` (None for none); a ``ValueError`` that says what is
        wrong with anything else."""
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ValueError(f"a post-filter is a mapping, got {type(d).__name__}")
        if d.get("kind") != KIND:
            raise ValueError(f"unknown post-filter kind {d.get('kind')!r} (this version reads {KIND!r})")
        try:
            ratio = np.asarray(d["ratio"], dtype=np.float64)
            floor, active = float(d["floor_db"]), float(d.get("active_db", 1.0))
            ceiling = None if d.get("ceiling_db") is None else float(d["ceiling_db"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"post-filter fields missing or not numbers ({type(e).__name__}: {e})") from None
        if ratio.ndim != 1 or not len(ratio) or not np.isfinite(ratio).all() or (ratio <= 0).any():
            raise ValueError("post-filter ratio must be a non-empty list of finite numbers > 0")
        if not (np.isfinite(floor) and np.isfinite(active)) or (ceiling is not None and not ceiling > floor):
            raise ValueError(f"post-filter floor_db / ceiling_db out of order or not finite ({floor}, {ceiling})")
        return cls(ratio, floor, active, ceiling)


def saved_postfilter(saved) -> GlobalVariancePostFilter | None:
    """The post-filter in a saved audio model's ``config.json`` (None where it has none); a
    :class:`~latentbridge.errors.ModelFolderError` naming the folder when it is unreadable or was
    fitted for another number of mel bands than the model's."""
    from latentbridge.errors import ModelFolderError

    try:
        pf = GlobalVariancePostFilter.from_dict(saved.info.get("postfilter"))
    except ValueError as e:
        raise ModelFolderError(saved.path, f"config.json: unreadable post-filter ({e})") from None
    if pf is None:
        return None
    bands = getattr(saved.model, "input_shape", (None, None, None))[-2]
    if bands != len(pf.ratio):
        raise ModelFolderError(saved.path, f"config.json: a post-filter for {len(pf.ratio)} mel bands on a "
                               f"model of {bands}")
    return pf
