"""ONNX export of a saved anomaly model, with a parity check against PyTorch.

The graph takes the linear STFT magnitude of one or more windows, ``(B, C, n_freq, frames)``,
and returns ``score`` (B,) and ``reconstruction``. Everything after the STFT (mel projection,
dB, normalisation, standardisation, the network, the score) is inside the graph; the STFT stays
outside so that a small device computes it with numpy (:mod:`latentbridge.edge`). The
preprocessing parameters and the decision threshold travel in the ONNX metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from latentbridge.errors import LatentbridgeError
from latentbridge.tasks.anomaly import Detector
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


def write_score_graph(model, spec, path: str | Path, score: str = "mse", metadata: dict | None = None,
                      opset: int = 18, n_parity: int = 8) -> dict:
    """Export ``model``'s scoring graph for the audio transform ``spec`` to ``path`` (as is: callers make
    it atomic), with ``metadata`` in the ONNX metadata, and compare onnxruntime with PyTorch on probe
    windows. Returns ``{"max_abs_diff", "relative_score_diff", "n_parity_windows"}``."""
    import onnx
    import onnxruntime as ort

    from latentbridge.transforms.spec import build_spectrogram

    transform = build_spectrogram(spec)
    graph = ScoreGraph(transform, model.eval(), score).eval()
    windows = _probe_windows(n_parity, spec.window_samples, spec.sample_rate)
    with torch.no_grad():
        mag = transform.magnitude(torch.from_numpy(windows))
        ref_score, ref_rec = graph(mag)
    torch.onnx.export(graph, (mag,), str(path), input_names=["magnitude"], output_names=["score", "reconstruction"],
                      dynamic_axes={"magnitude": {0: "batch"}, "score": {0: "batch"}, "reconstruction": {0: "batch"}},
                      opset_version=opset, dynamo=False)
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    for k, v in (metadata or {}).items():
        prop = m.metadata_props.add()
        prop.key, prop.value = k, v
    onnx.save(m, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out_score, rec = sess.run(None, {"magnitude": mag.numpy()})
    diff = max(float(np.abs(out_score - ref_score.numpy()).max()), float(np.abs(rec - ref_rec.numpy()).max()))
    rel = float(np.abs(out_score - ref_score.numpy()).max() / max(1e-12, float(np.abs(ref_score.numpy()).max())))
    return {"max_abs_diff": diff, "relative_score_diff": rel, "n_parity_windows": n_parity}


def export_onnx(model_dir: str | Path, out_path: str | Path, opset: int = 18, n_parity: int = 8,
                tolerance: float = 1e-3, force: bool = False) -> dict:
    """Export the scoring graph of an anomaly model folder to ``out_path`` (written atomically; an
    existing file is replaced only with ``force``), checked against PyTorch on probe windows."""
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise LatentbridgeError(f"{out_path}: the output file name must end in .onnx")
    if out_path.is_dir():
        raise LatentbridgeError(f"{out_path}: is a folder; give the .onnx file to write")
    if out_path.exists() and not force:
        raise LatentbridgeError(f"{out_path}: exists (use --force to replace it)")

    det = Detector.load(model_dir)
    anomaly = det.anomaly
    if det.method not in ("elbo", "iwae"):
        score_name, threshold = det.method, det.threshold
    elif "mse_threshold" in anomaly:  # sampled scores (elbo, iwae) are exported as reconstruction MSE
        score_name, threshold = "mse", float(anomaly["mse_threshold"])
    else:
        raise LatentbridgeError(f"model folder {model_dir}: the exported graph scores reconstruction MSE, but "
                                f"the model was calibrated for '{det.method}' without an MSE threshold; refit")
    spec = det.spec
    meta = {
        "format": "latentbridge-onnx", "format_version": 2,
        "model_class": det.saved.info["model_class"],
        "input": "linear STFT magnitude (batch, channels, n_freq, frames), power applied, frames fixed",
        "transform": spec.model_dump(mode="json"),
        "score": score_name, "threshold": threshold,
        "aggregate": det.cfg.anomaly.aggregate,
    }
    with atomic_path(out_path) as tmp:
        res = write_score_graph(det.model, spec, tmp, score_name, {
            METADATA_KEY: json.dumps(meta), "threshold": repr(threshold), "sample_rate": str(spec.sample_rate)},
            opset=opset, n_parity=n_parity)
        if not np.isfinite(res["max_abs_diff"]) or res["relative_score_diff"] > tolerance:
            raise LatentbridgeError(f"{out_path}: ONNX output differs from PyTorch (max abs {res['max_abs_diff']:.3g}, "
                                    f"relative {res['relative_score_diff']:.3g}); nothing written")
    return {"path": str(out_path), **res, "threshold": threshold}
