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
        return out.losses[self.score], out.reconstruction


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


def export_onnx(model_dir: str | Path, out_path: str | Path, opset: int = 17, n_parity: int = 8,
                tolerance: float = 1e-3) -> dict:
    import onnx
    import onnxruntime as ort

    det = Detector.load(model_dir)
    anomaly = det.anomaly
    if det.method in det.model.deterministic_scores:
        score_name, threshold = det.method, det.threshold
    elif "mse_threshold" in anomaly:  # sampled scores (elbo, iwae) are exported as reconstruction MSE
        score_name, threshold = "mse", float(anomaly["mse_threshold"])
    else:
        raise LatentbridgeError(f"model folder {model_dir}: the exported graph scores reconstruction MSE, but "
                                f"the model was calibrated for '{det.method}' without an MSE threshold; refit")
    cfg = det.cfg
    transform = det.transform.eval()
    graph = ScoreGraph(transform, det.model.eval(), score_name).eval()
    windows = _probe_windows(n_parity, cfg.audio.window_samples, cfg.audio.sample_rate)
    with torch.no_grad():
        mag = transform.magnitude(torch.from_numpy(windows))
        ref_score, ref_rec = graph(mag)
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise LatentbridgeError(f"{out_path}: the output file name must end in .onnx")
    meta = {
        "format": "latentbridge-onnx", "format_version": 1,
        "model_class": det.saved.info["model_class"],
        "input": "linear STFT magnitude (batch, channels, n_freq, frames), power applied, frames fixed",
        "transform": transform.to_dict(),
        "audio": cfg.audio.model_dump(),
        "n_frames": cfg.n_frames,
        "score": score_name, "threshold": threshold,
        "aggregate": cfg.anomaly.aggregate,
    }
    with atomic_path(out_path) as tmp:
        torch.onnx.export(graph, (mag,), str(tmp), input_names=["magnitude"], output_names=["score", "reconstruction"],
                          dynamic_axes={"magnitude": {0: "batch"}, "score": {0: "batch"}, "reconstruction": {0: "batch"}},
                          opset_version=opset, dynamo=False)
        m = onnx.load(str(tmp))
        onnx.checker.check_model(m)
        for k, v in {METADATA_KEY: json.dumps(meta), "threshold": repr(threshold),
                     "sample_rate": str(cfg.audio.sample_rate)}.items():
            prop = m.metadata_props.add()
            prop.key, prop.value = k, v
        onnx.save(m, str(tmp))
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        score, rec = sess.run(None, {"magnitude": mag.numpy()})
        diff = max(float(np.abs(score - ref_score.numpy()).max()), float(np.abs(rec - ref_rec.numpy()).max()))
        rel = float(np.abs(score - ref_score.numpy()).max() / max(1e-12, float(np.abs(ref_score.numpy()).max())))
        if not np.isfinite(diff) or rel > tolerance:
            raise LatentbridgeError(f"{out_path}: ONNX output differs from PyTorch (max abs {diff:.3g}, "
                                    f"relative {rel:.3g}); nothing written")
    return {"path": str(out_path), "max_abs_diff": diff, "relative_score_diff": rel,
            "n_parity_windows": n_parity, "threshold": threshold}
