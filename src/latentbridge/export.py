"""ONNX export of a saved anomaly model (or of a diffusion model's denoiser), with a parity check
against PyTorch.

The graph takes the linear STFT magnitude of one or more windows, ``(B, C, n_freq, frames)``,
and returns ``score`` (B,) and ``reconstruction``. Everything after the STFT (mel projection,
dB, normalisation, standardisation, the network, the score) is inside the graph; the STFT stays
outside so that a small device computes it with numpy (:mod:`latentbridge.edge`). The
preprocessing parameters and the decision threshold travel in the ONNX metadata.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from latentbridge.errors import LatentbridgeError
from latentbridge.tasks.anomaly import DETECTOR_TASKS, Detector
from latentbridge.utils import atomic_path

METADATA_KEY = "latentbridge"


class ScoreGraph(nn.Module):
    """STFT magnitude → features → model → (deterministic score, reconstruction)."""

    def __init__(self, transform, model, score: str = "mse"):
        super().__init__()
        self.transform = transform
        self.model = model
        self.score = score

    def forward(self, magnitude: torch.Tensor):
        feats = self.transform.features_from_magnitude(magnitude)
        out = self.model(feats)
        score = out.losses[self.score] if self.score in out.losses else self.model.score(feats, self.score)
        return score, out.reconstruction


def _probe_windows(n: int, window: int, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Deterministic test windows: harmonic tones + noise at varied levels."""
    rng = np.random.default_rng(seed)
    t = np.arange(window) / sample_rate
    out = np.empty((n, window), dtype=np.float32)
    for i in range(n):
        f0 = rng.uniform(40, 400)
        sig = sum(rng.uniform(0.05, 0.3) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6)) for k in range(1, 6))
        out[i] = (sig + rng.normal(0, rng.uniform(0.005, 0.05), window)) * rng.uniform(0.3, 1.0)
    return out


def _checked_session(path: str | Path, metadata: dict | None):
    """Check the exported graph, store ``metadata`` in it and open it in onnxruntime."""
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    for k, v in (metadata or {}).items():
        prop = m.metadata_props.add()
        prop.key, prop.value = k, v
    onnx.save(m, str(path))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def write_score_graph(model, spec, path: str | Path, score: str = "mse", metadata: dict | None = None,
                      opset: int = 18, n_parity: int = 8) -> dict:
    """Export ``model``'s scoring graph for the audio transform ``spec`` to ``path`` (as is: callers make
    it atomic), with ``metadata`` in the ONNX metadata, and compare onnxruntime with PyTorch on probe
    windows. Returns ``{"max_abs_diff", "relative_score_diff", "n_parity_windows"}``."""

    from latentbridge.transforms.spec import build_spectrogram

    transform = build_spectrogram(spec)
    graph = ScoreGraph(transform, model.eval(), score).eval()
    c = int(model.input_shape[0])  # every channel of a multi-axis recording (audio.channel: all), else 1
    windows = _probe_windows(n_parity * c, spec.window_samples, spec.sample_rate)
    if c > 1:
        windows = windows.reshape(n_parity, c, -1)
    with torch.no_grad():
        mag = transform.magnitude(torch.from_numpy(windows))
        ref_score, ref_rec = graph(mag)
    with warnings.catch_warnings():  # shape checks and the neighbour bank's size traced as constants (they are)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(graph, (mag,), str(path), input_names=["magnitude"],
                          output_names=["score", "reconstruction"],
                          dynamic_axes={"magnitude": {0: "batch"}, "score": {0: "batch"},
                                        "reconstruction": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    sess = _checked_session(path, metadata)
    out_score, rec = sess.run(None, {"magnitude": mag.numpy()})
    diff = max(float(np.abs(out_score - ref_score.numpy()).max()), float(np.abs(rec - ref_rec.numpy()).max()))
    rel = float(np.abs(out_score - ref_score.numpy()).max() / max(1e-12, float(np.abs(ref_score.numpy()).max())))
    return {"max_abs_diff": diff, "relative_score_diff": rel, "n_parity_windows": n_parity}


def export_onnx(model_dir: str | Path, out_path: str | Path, opset: int = 18, n_parity: int = 8,
                tolerance: float = 1e-3, force: bool = False) -> dict:
    """Export the scoring graph of an anomaly model folder to ``out_path`` (written atomically; an
    existing file is replaced only with ``force``), checked against PyTorch on probe windows.
    A diffusion model folder exports its denoiser instead (:func:`export_denoiser`). The file is locked while it is
    written (two exports to one new file both said "wrote", the file holding one of the two models)."""
    from latentbridge.models.hub import read_info
    from latentbridge.outputs import FolderLock

    out_path = _check_onnx_path(out_path, force)
    task = read_info(model_dir)["config"].get("task")  # a folder that is no model: refused before the lock's mkdir
    with FolderLock(out_path):
        if out_path.exists() and not force:  # written by another export since the check
            raise LatentbridgeError(f"{out_path}: exists (use --force to replace it)")
        return _export(model_dir, task, out_path, opset, n_parity, tolerance, force)


def _export(model_dir, task: str | None, out_path: Path, opset: int, n_parity: int, tolerance: float,
            force: bool) -> dict:
    if task == "diffusion":
        return export_denoiser(model_dir, out_path, opset=opset, force=force)
    if task not in DETECTOR_TASKS:  # an audio autoencoder exports as a detector once calibrated
        raise LatentbridgeError(f"model folder {model_dir}: a {task!r} model; export writes anomaly detectors "
                                "(`latentbridge anomaly fit`) and diffusion denoisers (configs/ddpm_*.yaml)")
    det = Detector.load(model_dir)
    anomaly = det.anomaly
    if det.method not in ("elbo", "iwae"):
        score_name, threshold = det.method, det.threshold
    elif "mse_threshold" in anomaly:  # sampled scores (elbo, iwae) are exported as reconstruction MSE
        score_name, threshold = "mse", float(anomaly["mse_threshold"])
    else:
        raise LatentbridgeError(f"model folder {model_dir}: the exported graph scores reconstruction MSE, but "
                                f"its threshold for '{det.method}' was set by hand, without one for MSE: calibrate it "
                                f"on normal recordings (`latentbridge anomaly calibrate {model_dir} NORMAL_DIR`), "
                                "which sets both")
    spec = det.spec
    meta = {
        "format": "latentbridge-onnx", "format_version": 2,
        "model_class": det.saved.info["model_class"],
        "input": "linear STFT magnitude (batch, channels, n_freq, frames), power applied, frames fixed",
        "transform": spec.model_dump(mode="json"),
        "score": score_name, "threshold": threshold,
        "aggregate": det.anomaly_config.aggregate, "n_channels": det.n_channels,
        "fitted_channels": det.fitted_channels,  # (a stereo recording of a model fitted on stereo ones: no note)
        # how much the training recordings clipped, for the scorer's note on recordings that clip more
        "clipped_share_percentiles": (det.saved.info.get("data") or {}).get("clipped_share_percentiles_0_10_50_90_100"),
        "codecs": (det.saved.info.get("data") or {}).get("codecs"),  # the training recordings' (lossy or lossless)
    }
    with atomic_path(out_path) as tmp:
        res = write_score_graph(det.model, spec, tmp, score_name, {
            METADATA_KEY: json.dumps(meta), "threshold": repr(threshold), "sample_rate": str(spec.sample_rate)},
            opset=opset, n_parity=n_parity)
        if not np.isfinite(res["max_abs_diff"]) or res["relative_score_diff"] > tolerance:
            raise LatentbridgeError(f"{out_path}: ONNX output differs from PyTorch (max abs {res['max_abs_diff']:.3g}, "
                                    f"relative {res['relative_score_diff']:.3g}); nothing written")
    return {"path": str(out_path), **res, "threshold": threshold, "score": score_name, "model_score": det.method}


# ----------------------------------------------------------------------------- diffusion denoisers


class DenoiserGraph(nn.Module):
    """One denoiser evaluation: ``(sample, timestep[, class_label][, condition, condition_mask])`` →
    the prediction. ``class_label`` = the model's class count is the null class; ``condition_mask``
    0 replaces the continuous condition by its null."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sample, timestep, *extra):
        m = self.model
        y = extra[0] if m.n_classes else None
        c = mask = None
        if m.n_continuous:
            c, mask = extra[-2], extra[-1]
        drop = None if mask is None else mask < 0.5
        return m(sample, timestep, y, c, drop)


def _denoiser_inputs(model, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    inputs = {"sample": torch.randn(n, *model.image_shape, generator=g),
              "timestep": torch.randint(0, model.process.train_timesteps, (n,), generator=g)}
    if model.n_classes:  # real classes and the null class
        inputs["class_label"] = torch.arange(n) % (model.n_classes + 1)
    if model.n_continuous:
        inputs["condition"] = torch.rand(n, model.n_continuous, generator=g)
        inputs["condition_mask"] = (torch.arange(n) % 2).float()
    return inputs


def write_denoiser_graph(model, path: str | Path, metadata: dict | None = None, opset: int = 18,
                         n_parity: int = 6) -> dict:
    """Export one denoiser step of ``model`` to ``path`` and compare onnxruntime with PyTorch on
    random inputs (every class, the null class). Returns ``{"max_abs_diff", "relative_diff", "n_parity"}``."""

    graph = DenoiserGraph(model.eval()).eval()
    inputs = _denoiser_inputs(model, n_parity)
    names = list(inputs)
    with torch.no_grad():
        ref = graph(*inputs.values()).numpy()
    with warnings.catch_warnings():  # shape checks traced as constants: the graph takes any batch size
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(graph, tuple(inputs.values()), str(path), input_names=names, output_names=["prediction"],
                          dynamic_axes={**{k: {0: "batch"} for k in names}, "prediction": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    sess = _checked_session(path, metadata)
    out = sess.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    diff = float(np.abs(out - ref).max())
    return {"max_abs_diff": diff, "relative_diff": diff / max(1e-12, float(np.abs(ref).max())), "n_parity": n_parity}


def export_denoiser(model_dir: str | Path, out_path: str | Path, opset: int = 18, tolerance: float = 1e-4,
                    force: bool = False) -> dict:
    """Export the denoiser of a diffusion model folder (one step, EMA weights) to ``out_path`` with
    the process (``alphas_cumprod``, prediction type, clipping), the image shape, the classes and
    the sampling defaults in its metadata, so :mod:`latentbridge.edge_sampler` samples without torch."""
    from latentbridge.models.hub import load_model

    out_path = _check_onnx_path(out_path, force)
    saved = load_model(model_dir)
    model, cfg = saved.model, saved.workflow
    proc = model.process
    meta = {
        "format": "latentbridge-onnx-denoiser", "format_version": 1, "model_class": saved.info["model_class"],
        "image_shape": list(model.image_shape), "n_classes": model.n_classes, "null_class": model.n_classes,
        "n_continuous": model.n_continuous, "class_names": saved.info.get("class_names") or [],
        "condition_names": saved.info.get("condition_names") or [], "process": proc.config(),
        "condition_range": saved.info.get("condition_range") or [], "label_dropout": cfg.diffusion.label_dropout,
        "alphas_cumprod": [float(a) for a in proc.alphas_cumprod.double()],
        "sampling": cfg.sampling.model_dump(), "transform": saved.info["transform"],
        "value_range": "the graph works in [-1, 1]; images = (x + 1) / 2",
    }
    with atomic_path(out_path) as tmp:
        res = write_denoiser_graph(model, tmp, {METADATA_KEY: json.dumps(meta)}, opset=opset)
        if not np.isfinite(res["max_abs_diff"]) or res["relative_diff"] > tolerance:
            raise LatentbridgeError(f"{out_path}: ONNX output differs from PyTorch (max abs {res['max_abs_diff']:.3g}, "
                                    f"relative {res['relative_diff']:.3g}); nothing written")
    return {"path": str(out_path), **res}


def _check_onnx_path(out_path, force: bool) -> Path:
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise LatentbridgeError(f"{out_path}: the output file name must end in .onnx")
    if out_path.is_dir():
        raise LatentbridgeError(f"{out_path}: is a folder; give the .onnx file to write")
    if out_path.exists() and not force:
        raise LatentbridgeError(f"{out_path}: exists (use --force to replace it)")
    return out_path
