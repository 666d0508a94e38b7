"""Score audio with an exported ONNX model using only numpy and onnxruntime (no torch).

Meant for small devices such as a Raspberry Pi: copy the ``.onnx`` file, install
``numpy onnxruntime`` (and ``soundfile`` to read compressed formats), then::

    python -m latentbridge.edge model.onnx recording.wav [more.wav ...]

or copy the package without installing torch. The STFT is computed
here with numpy; everything after it (mel, dB, standardisation, network, score) runs in the
ONNX graph, whose metadata carries the preprocessing parameters and the threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
import wave as _wave
from pathlib import Path

import numpy as np

from latentbridge.io import cut_windows  # numpy only at import time
from latentbridge.transforms.numpy_stft import stft_magnitude


class EdgeScorer:
    def __init__(self, onnx_path: str | Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if "latentbridge" not in meta:
            raise ValueError(f"{onnx_path}: not a latentbridge export (no 'latentbridge' metadata)")
        self.meta = json.loads(meta["latentbridge"])
        self.threshold = float(self.meta["threshold"])
        t = self.meta["transform"]
        self.stft_kwargs = dict(n_fft=t["n_fft"], hop_length=t["hop_length"], win_length=t.get("win_length"),
                                window=t.get("window", "hann"), center=t.get("center", True),
                                power=t.get("power", 1.0), n_frames=t.get("n_frames"))
        audio = self.meta["audio"]
        self.sample_rate = int(audio["sample_rate"])
        self.window = int(round(audio["window_s"] * self.sample_rate))
        self.hop = max(1, int(round(audio["hop_s"] * self.sample_rate)))
        self.pad = audio.get("pad", "wrap")

    def magnitude(self, windows: np.ndarray) -> np.ndarray:
        mag = stft_magnitude(np.asarray(windows, dtype=np.float32), **self.stft_kwargs)
        return mag[:, None] if mag.ndim == 3 else mag  # (B, 1, F, T)

    def score_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, window_samples) at ``sample_rate`` → (scores, decisions)."""
        score, _ = self.session.run(None, {"magnitude": self.magnitude(windows).astype(np.float32)})
        return score, score > self.threshold

    def windows(self, x: np.ndarray, name: str = "<waveform>") -> tuple[np.ndarray, np.ndarray]:
        """The same windows as training and ``anomaly score`` cut (start times in seconds)."""
        windows, starts = cut_windows(x, self.window, self.hop, pad=self.pad, name=name)
        return windows, starts / self.sample_rate


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples; soundfile when installed, else the standard library (PCM WAV)."""
    try:
        import soundfile as sf

        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return x.mean(axis=1), int(sr)
    except ImportError:
        pass
    with _wave.open(str(path), "rb") as w:
        sr, ch, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
        raw = w.readframes(n)
    if width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    elif width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        raise ValueError(f"{path}: unsupported sample width {width} bytes")
    return x.reshape(-1, ch).mean(axis=1), sr


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m latentbridge.edge",
                                description="Score WAV files with an exported latentbridge ONNX model.")
    p.add_argument("model")
    p.add_argument("files", nargs="+")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    scorer = EdgeScorer(args.model, threads=args.threads)
    status = 0
    for f in args.files:
        x, sr = read_wav(f)
        if sr != scorer.sample_rate:
            print(f"{f}: sample rate {sr} Hz, the model needs {scorer.sample_rate} Hz", file=sys.stderr)
            status = 2
            continue
        windows, starts = scorer.windows(x, name=f)
        scores, flags = scorer.score_windows(windows)
        for s, sc, fl in zip(starts, scores, flags):
            print(f"{Path(f).name}\t{s:.2f}\t{sc:.6g}\t{'ANOMALY' if fl else 'normal'}")
        agg = scores.max() if scorer.meta.get("aggregate") == "max" else scores.mean()
        print(f"{Path(f).name}\tfile\t{agg:.6g}\t{'ANOMALY' if agg > scorer.threshold else 'normal'}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
