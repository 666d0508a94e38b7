"""Multimodal latent diffusion (task ``mld``): one denoiser over the concatenated latents of
several frozen first stages, trained with a timestep per modality (multi-time masking), so that
the same network samples every modality jointly and any of them given the others.

Inputs are the std-scaled first-stage latents of each modality, concatenated in the order of
``modalities`` (``latent_dims`` wide each). Every modality is in one of three states per sample:

- *noised* at a timestep ``t`` of the process (the modalities noised in one sample share ``t``);
- *clean* (timestep code :data:`CLEAN`): its latent enters as it is: a condition;
- *null* (code :data:`NULL`): its latent is replaced by zeros: the condition left out, which
  gives classifier-free guidance its unconditional prediction.

Training (:meth:`LatentDenoiser.loss`): every modality noised at one timestep (joint), or with
probability ``condition_share`` a random non-empty proper subset kept clean, each clean modality
then replaced by the null input with probability ``null_share``. The squared error between the
prediction and the process's target is averaged over the noised modalities' entries only.

Sampling (:meth:`LatentDenoiser.generate`): the process's sampler runs over the latents of the
modalities to generate; the condition's latents are held exactly as given and re-enter the
network, clean, at every step. ``guidance`` w mixes the conditional prediction c and the
prediction with the condition nulled u as ``u + w (c - u)`` (1: conditional, 0: the target's
marginal, > 1: pushed further toward the condition), one w for every generated modality or one
per modality (the latents of each generated modality mixed with its own).

The network (``mld_mlp``) is a residual MLP: each modality's state is embedded (a sinusoidal
timestep embedding through an MLP, or a learned vector for clean and null), the embeddings are
concatenated and added in every block; the network holds no schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from latentbridge.models.base import ModelFamily, ModelSpec, inference
from latentbridge.models.process import DiffusionProcess
from latentbridge.nn.unet import TimestepMLP
from latentbridge.sampling_args import guidance_problem

CLEAN = -1
NULL = -2


class LatentMLPConfig(ModelSpec):
    name: Literal["mld_mlp"] = "mld_mlp"
    hidden: int = Field(512, gt=0)
    """Width of the residual blocks."""
    blocks: int = Field(4, ge=1)
    time_dim: int = Field(64, gt=0)
    """Width of each modality's state embedding."""
    dropout: float = Field(0.0, ge=0, lt=1)


class _Block(nn.Module):
    def __init__(self, hidden: int, emb: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.inp = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(emb, hidden)
        self.out = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        return h + self.out(self.inp(torch.nn.functional.silu(self.norm(h))) + self.emb(e))


class LatentDenoiser(ModelFamily, nn.Module):
    """Residual-MLP denoiser over concatenated modality latents with per-modality timesteps.

    Batches are dicts ``{"z": (B, sum(latent_dims))}`` of scaled latents."""

    name = "mld_mlp"
    config_class = LatentMLPConfig
    tasks: ClassVar[tuple[str, ...]] = ("mld",)

    def __init__(self, modalities=("a", "b"), latent_dims=(8, 8), process: dict | None = None,
                 condition_share: float = 0.5, null_share: float = 0.1, hidden: int = 512, blocks: int = 4,
                 time_dim: int = 64, dropout: float = 0.0, standardise: bool = False):
        super().__init__()
        self.modalities = tuple(str(m) for m in modalities)
        self.latent_dims = tuple(int(d) for d in latent_dims)
        if len(self.modalities) < 2 or len(self.modalities) != len(self.latent_dims) \
                or len(set(self.modalities)) != len(self.modalities) or min(self.latent_dims) < 1:
            raise ValueError(f"two or more distinct modalities with a latent size each expected, got "
                             f"{self.modalities} / {self.latent_dims}")
        if not 0.0 <= condition_share < 1.0 or not 0.0 <= null_share <= 1.0:
            raise ValueError(f"condition_share must be in [0, 1) and null_share in [0, 1], got "
                             f"{condition_share} / {null_share}")
        self.condition_share, self.null_share = float(condition_share), float(null_share)
        self.process = DiffusionProcess.from_config(process)
        self.arch = {"hidden": int(hidden), "blocks": int(blocks), "time_dim": int(time_dim), "dropout": float(dropout)}
        ends = torch.tensor(self.latent_dims).cumsum(0).tolist()
        self.slices = {m: slice(e - d, e) for m, d, e in zip(self.modalities, self.latent_dims, ends)}
        self.dim = int(ends[-1])
        # per-entry standardisation (training mean and std of every latent entry, :meth:`fit_statistics`):
        # the process then noises entries of unit spread around zero; off, the latents enter as given
        self.standardise = bool(standardise)
        if self.standardise:
            self.register_buffer("shift", torch.zeros(self.dim))
            self.register_buffer("spread", torch.ones(self.dim))
        n = len(self.modalities)
        self.time = TimestepMLP(time_dim, time_dim)
        self.state = nn.Parameter(torch.randn(2, n, time_dim) * 0.02)  # [clean, null] per modality
        self.inp = nn.Linear(self.dim, hidden)
        self.blocks = nn.ModuleList(_Block(hidden, n * time_dim, dropout) for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.SiLU(), nn.Linear(hidden, self.dim))

    def config(self) -> dict[str, Any]:
        return {"modalities": list(self.modalities), "latent_dims": list(self.latent_dims),
                "process": self.process.config(), "condition_share": self.condition_share,
                "null_share": self.null_share, **self.arch, **({"standardise": True} if self.standardise else {})}

    @torch.no_grad()
    def fit_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Set the per-entry mean and std (D,) of the training latents (``standardise`` models)."""
        if not self.standardise:
            raise ValueError("this model does not standardise its latents (standardise=False)")
        if mean.shape != (self.dim,) or std.shape != (self.dim,):
            raise ValueError(f"statistics of shape ({self.dim},) expected, got {tuple(mean.shape)} / {tuple(std.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(std).all()):
            raise ValueError("latent statistics must be finite")
        self.shift.copy_(mean)
        # a floor relative to the typical spread: a collapsed entry must not amplify a condition's noise
        self.spread.copy_(std.clamp_min(max(1e-6, 1e-2 * float(std.mean()))))

    def _to_unit(self, z: Tensor, m: str | None = None) -> Tensor:
        if not self.standardise:
            return z
        s = slice(None) if m is None else self.slices[m]
        return (z - self.shift[s].to(z)) / self.spread[s].to(z)

    def _from_unit(self, z: Tensor, m: str) -> Tensor:
        if not self.standardise:
            return z
        s = self.slices[m]
        return z * self.spread[s].to(z) + self.shift[s].to(z)

    # --- the network ---------------------------------------------------------------------
    def embed_states(self, times: Tensor) -> Tensor:
        """(B, M) timestep codes (>= 0 noised, :data:`CLEAN`, :data:`NULL`) → (B, M * time_dim)."""
        b, n = times.shape
        e = self.time(times.clamp_min(0).reshape(-1)).reshape(b, n, -1)
        e = torch.where((times == CLEAN)[..., None], self.state[0].expand(b, -1, -1), e)
        e = torch.where((times == NULL)[..., None], self.state[1].expand(b, -1, -1), e)
        return e.reshape(b, -1)

    def forward(self, z: Tensor, times: Tensor) -> Tensor:
        """The prediction (noise or velocity) for every entry of ``z`` (B, D) given the modality
        states ``times`` (B, M); entries of null modalities are zeroed on the way in."""
        if z.dim() != 2 or z.shape[1] != self.dim or times.shape != (z.shape[0], len(self.modalities)):
            raise ValueError(f"{type(self).__name__} expects latents (B, {self.dim}) and states (B, "
                             f"{len(self.modalities)}), got {tuple(z.shape)} and {tuple(times.shape)}")
        z = z * self.expand(times != NULL).to(z.dtype)
        e = self.embed_states(times)
        h = self.inp(z)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h)

    def expand(self, per_modality: Tensor) -> Tensor:
        """(B, M) values → (B, D): each modality's value over its latent entries."""
        return torch.repeat_interleave(per_modality, torch.tensor(self.latent_dims, device=per_modality.device), dim=1)

    # --- training ------------------------------------------------------------------------
    def draw_states(self, b: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """(B, M) codes of one training batch: one timestep per sample for its noised modalities;
        with probability ``condition_share`` a uniformly drawn non-empty proper subset clean, each of
        those nulled with probability ``null_share``."""
        n = len(self.modalities)
        t = torch.randint(0, self.process.train_timesteps, (b, 1), generator=generator)
        times = t.expand(b, n).clone()
        cond = torch.rand(b, generator=generator) < self.condition_share
        subsets = torch.tensor([[(k >> i) & 1 for i in range(n)] for k in range(1, 2 ** n - 1)], dtype=torch.bool)
        pick = subsets[torch.randint(0, len(subsets), (b,), generator=generator)] & cond[:, None]
        null = pick & (torch.rand(b, n, generator=generator) < self.null_share)
        times[pick] = CLEAN
        times[null] = NULL
        return times.to(device)

    def loss(self, batch, beta: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-sample mean squared error over the noised modalities' entries (``beta`` is unused)."""
        z = batch["z"] if isinstance(batch, dict) else batch
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"{type(self).__name__} expects latents of shape (B, {self.dim}), got {tuple(z.shape)}")
        z = self._to_unit(z)
        times = self.draw_states(z.shape[0], device=z.device) if self.training else \
            self.draw_states(z.shape[0], torch.Generator().manual_seed(0), z.device)
        noised = times >= 0
        t = times.clamp_min(0).amax(dim=1)
        x_t, _, target = self.process.diffuse(z, t=t)
        w = self.expand(noised).to(z.dtype)
        x_in = torch.where(w.bool(), x_t, z)
        se = (self(x_in, times) - target).pow(2) * w
        mse = se.sum(1) / w.sum(1).clamp_min(1.0)
        parts = {"mse": mse}
        for i, m in enumerate(self.modalities):
            s = self.slices[m]
            parts[f"mse_{m}"] = se[:, s].mean(1)  # zero where the modality was the condition
        return mse, parts

    def example_batch(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Correlated Gaussian latents (each modality a noisy function of a shared code)."""
        shared = torch.randn(n, 4, generator=generator)
        parts = []
        for d in self.latent_dims:
            mix = torch.randn(4, d, generator=torch.Generator().manual_seed(d))
            parts.append(shared @ mix / 2 + 0.3 * torch.randn(n, d, generator=generator))
        return {"z": torch.cat(parts, dim=1)}

    # --- sampling ------------------------------------------------------------------------
    def split(self, z: Tensor) -> dict[str, Tensor]:
        return {m: z[:, s] for m, s in self.slices.items()}

    def _check_condition(self, n: int, condition: dict | None) -> dict[str, Tensor]:
        condition = dict(condition or {})
        for m, c in condition.items():
            if m not in self.slices:
                raise ValueError(f"unknown modality {m!r}; this model has {list(self.modalities)}")
            if tuple(c.shape) != (n, self.latent_dims[self.modalities.index(m)]):
                raise ValueError(f"condition {m!r} must be ({n}, {self.slices[m].stop - self.slices[m].start}), "
                                 f"got {tuple(c.shape)}")
        if len(condition) == len(self.modalities):
            raise ValueError("every modality is given as a condition: nothing to generate")
        return condition

    def denoiser(self, n: int, condition: dict[str, Tensor], guidance: float | Mapping[str, float] = 1.0
                 ) -> tuple[Callable[[Tensor, Tensor], Tensor], list[str]]:
        """``fn(x_t, t)`` over the latents of the modalities not in ``condition`` (returned, in
        order), with the condition held clean and classifier-free ``guidance``: one strength, or one
        per generated modality (a modality left out: 1). Latents in the network's units (standardised
        when ``standardise``: :meth:`generate` converts)."""
        targets = [m for m in self.modalities if m not in condition]
        tgt = torch.cat([torch.arange(self.dim)[self.slices[m]] for m in targets])
        if problem := guidance_problem(guidance, self.modalities):
            raise ValueError(f"guidance: {problem}")
        per = {m: float(guidance.get(m, 1.0) if isinstance(guidance, Mapping) else guidance) for m in targets}
        strengths = set(per.values())
        g: float | Tensor = strengths.pop() if len(strengths) == 1 else torch.cat(
            [torch.full((self.slices[m].stop - self.slices[m].start,), per[m]) for m in targets])
        conditioned = bool(condition) and not (isinstance(g, float) and g == 0.0)
        guided = bool(condition) and not (isinstance(g, float) and g in (0.0, 1.0))

        def full(x: Tensor, t: Tensor, state: int) -> tuple[Tensor, Tensor]:
            z = torch.zeros(x.shape[0], self.dim, dtype=x.dtype, device=x.device)
            z[:, tgt] = x
            times = torch.full((x.shape[0], len(self.modalities)), int(t), dtype=torch.long, device=x.device)
            for m, c in condition.items():
                i = self.modalities.index(m)
                times[:, i] = state
                if state == CLEAN:
                    z[:, self.slices[m]] = c.to(x.dtype)
            return z, times

        def fn(x: Tensor, t: Tensor) -> Tensor:
            if not guided:
                z, times = full(x, t, CLEAN if conditioned else NULL)
                return self(z, times)[:, tgt]
            zc, tc = full(x, t, CLEAN)
            zu, tu = full(x, t, NULL)
            both = self(torch.cat([zc, zu]), torch.cat([tc, tu]))[:, tgt]
            c, u = both[: x.shape[0]], both[x.shape[0]:]
            return u + (g.to(c) if isinstance(g, Tensor) else g) * (c - u)

        return fn, targets

    @inference
    def generate(self, n: int, condition: dict[str, Tensor] | None = None, *,
                 guidance: float | Mapping[str, float] = 1.0,
                 scheduler: str = "ddim", steps: int | None = 50, eta: float = 0.0,
                 generator: torch.Generator | None = None, progress: Callable[[int], None] | None = None
                 ) -> dict[str, Tensor]:
        """Scaled latents of every modality for ``n`` samples: the modalities in ``condition``
        ((n, d) scaled latents each) exactly as given, the others drawn by the process's sampler
        (joint samples when ``condition`` is empty), seeded by ``generator``."""
        condition = self._check_condition(n, condition)
        fn, targets = self.denoiser(n, {m: self._to_unit(c, m) for m, c in condition.items()}, guidance)
        width = sum(self.latent_dims[self.modalities.index(m)] for m in targets)
        strongest = max(map(abs, guidance.values()), default=1.0) if isinstance(guidance, Mapping) else guidance
        x = self.process.sample(fn, (n, width), scheduler=scheduler, steps=steps, generator=generator,
                                eta=eta, progress=progress, guidance=float(strongest))
        out, i = {}, 0
        for m in targets:
            d = self.latent_dims[self.modalities.index(m)]
            out[m] = self._from_unit(x[:, i:i + d], m)
            i += d
        return {m: condition[m] if m in condition else out[m] for m in self.modalities}
