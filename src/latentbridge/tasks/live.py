"""``anomaly listen``: a saved detector on a live input (or a replayed recording)."""

from __future__ import annotations

import sys

import numpy as np

from latentbridge.tasks.anomaly import Detector


def listen_model(model_dir, *, device=None, source=None, duration_s=None, events=None, hop_s=None,
                 sample_rate=None, blocksize: int = 1024, realtime: bool = False, out=None) -> dict:
    """Stream windows through the detector; one printed line (and event row) per window."""
    from latentbridge.tasks.stream import listen

    out = sys.stdout if out is None else out  # resolved per call: sys.stdout may be replaced
    det = Detector.load(model_dir)
    model_sr = det.sample_rate
    capture_sr = int(sample_rate or model_sr)
    window = det.cfg.audio.window_samples

    def score_fn(windows: np.ndarray):
        if capture_sr != model_sr:
            from latentbridge.io import resample

            windows = resample(windows, capture_sr, model_sr, axis=-1)
            windows = np.pad(windows, ((0, 0), (0, max(0, window - windows.shape[-1]))))[:, :window]
        return det.score_windows(windows)

    if isinstance(device, str) and device.strip().lstrip("-").isdigit():
        device = int(device)
    print(f"model {model_dir}: {det.saved.info['model_class']}, score {det.method}, threshold {det.threshold:.6g}, "
          f"window {det.cfg.audio.window_s:g} s, input {'file ' + str(source) if source else 'device ' + str(device if device is not None else '(default)')}"
          f" at {capture_sr} Hz", file=out, flush=True)
    return listen(score_fn, sample_rate=capture_sr, window_s=det.cfg.audio.window_s,
                  hop_s=hop_s or det.cfg.audio.hop_s, source=source, device=device, blocksize=blocksize,
                  duration_s=duration_s, events=events, out=out, realtime=realtime)
