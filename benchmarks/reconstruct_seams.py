"""`audio reconstruct` of recordings longer than the model's window: the blended spectrogram vs windows side by side.

A mel autoencoder of 1-s spoken digits (``configs/mel_ae.yaml`` on 600 FSDD clips, 12 epochs, trained here through the
CLI) learns that a window ends in silence: most of its training clips were shorter than a second and zero-padded. Long
recordings rebuilt window by window (hop = window, each window inverted on its own, then set side by side, as
``audio reconstruct`` did) then fall silent at the end of every window. Measured on 20 recordings of 10 s made of FSDD
clips of other speakers' digits laid end to end (0.1-0.3 s apart) and on the same recordings with a steady noise floor
(-45 dBFS), both at 8 kHz, each rebuilt by

* **the CLI** (`latentbridge audio reconstruct RUN FILES --out DIR --n-iter 32`: windows overlapping by half, their
  decoded magnitudes blended into one spectrogram, inverted at once), and
* **windows side by side** (the reference: the same model and the same Griffin-Lim iterations, window by window).

Figures, over the 50-ms frames where the input is within 30 dB of its loudest: the share of frames rebuilt more than
30 dB below the input (a seam), the median level difference output - input, and the log-spectral distance.

    python benchmarks/reconstruct_seams.py            # about 4 min on 2 cores
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli, fsdd_recordings, run_logged, table, write_results  # noqa: E402


def recordings(rec: Path, out: Path, n: int = 20, seconds: float = 10.0, floor_dbfs: float | None = None) -> list:
    import soundfile as sf

    rng = np.random.default_rng(1 if floor_dbfs is None else 2)
    clips = sorted(p for p in rec.glob("*.wav") if "_jackson_" not in p.name and "_theo_" not in p.name)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        parts, length = [], 0
        while length < seconds * 8000:
            x, _ = sf.read(clips[rng.integers(len(clips))], dtype="float32")
            gap = np.zeros(int(rng.uniform(0.1, 0.3) * 8000), np.float32)
            parts += [x - x.mean(), gap]
            length += len(x) + len(gap)
        wave = np.concatenate(parts)[: int(seconds * 8000)]
        if floor_dbfs is not None:
            wave = wave + rng.standard_normal(len(wave)).astype(np.float32) * 10 ** (floor_dbfs / 20)
        path = out / f"long_{i:02d}.wav"
        sf.write(path, wave, 8000, subtype="FLOAT")
        files.append(path)
    return files


def side_by_side(run: Path, path: Path, n_iter: int) -> np.ndarray:
    """The reference: windows at hop = window, each decoded and inverted on its own, set side by side."""
    import torch

    from latentbridge.io import read_audio
    from latentbridge.models.hub import load_model
    from latentbridge.transforms.spec import build_spectrogram

    saved = load_model(run)
    t = build_spectrogram(saved.transform)
    window = saved.transform.window_samples
    wave, _ = read_audio(path, sample_rate=saved.transform.sample_rate)
    n = int(np.ceil(len(wave) / window))
    x = np.zeros(n * window, np.float32)
    x[: len(wave)] = wave
    with torch.no_grad():
        rec = saved.model.reconstruct(t(torch.from_numpy(x.reshape(n, window))))
        out = t.invert(rec[:, 0], length=window, n_iter=n_iter)
    return out.numpy().reshape(-1)[: len(wave)]


def frame_db(x: np.ndarray, frame: int = 400) -> np.ndarray:
    n = len(x) // frame
    return 20 * np.log10(np.sqrt((x[: n * frame].reshape(n, frame).astype(np.float64) ** 2).mean(1)) + 1e-9)


def figures(inp: np.ndarray, out: np.ndarray) -> dict:
    from latentbridge.metrics.signal import log_spectral_distance

    a, b = frame_db(inp), frame_db(out)
    loud = a > a.max() - 30
    d = b[loud] - a[loud]
    return {"seam_share": float((d < -30).mean()), "median_level_diff_db": float(np.median(d)),
            "lsd_db": float(np.mean(log_spectral_distance(out[None], inp[None], n_fft=256, hop=64)))}


def main() -> int:
    import soundfile as sf

    rec = fsdd_recordings()
    if rec is None:
        return 0
    n_iter = 32
    with tempfile.TemporaryDirectory(prefix="lb_seams_") as tmp:
        tmp = Path(tmp)
        run = tmp / "mel"
        run_logged(cli("train", "--config", "configs/mel_ae.yaml", "--out", str(run), "-o", f"data.train_dir={rec}",
                       "-o", "data.limit=600", "-o", "train.max_epochs=12", "-o", "train.progress_bar=false"),
                   tmp / "train.log")
        rows, per_file = [], {}
        for name, floor in (("digits end to end", None), ("the same over a -45 dBFS noise floor", -45.0)):
            files = recordings(rec, tmp / f"in_{floor}", floor_dbfs=floor)
            run_logged(cli("audio", "reconstruct", str(run), *map(str, files), "--out", str(tmp / f"out_{floor}"),
                           "--n-iter", str(n_iter)), tmp / "reconstruct.log")
            for method in ("CLI (blended, overlapping windows)", "windows side by side (reference)"):
                got = []
                for f in files:
                    inp, _ = sf.read(f, dtype="float32")
                    if method.startswith("CLI"):
                        out, _ = sf.read(tmp / f"out_{floor}" / f"{f.stem}_reconstructed.wav", dtype="float32")
                    else:
                        out = side_by_side(run, f, n_iter)
                    got.append(figures(inp, out))
                per_file[f"{name} / {method}"] = got
                rows.append({"set": name, "method": method,
                             **{k: float(np.mean([g[k] for g in got])) for k in got[0]}})
    print(table(rows, ["set", "method", "seam_share", "median_level_diff_db", "lsd_db"],
                {"seam_share": ".3f", "median_level_diff_db": ".1f", "lsd_db": ".1f"}))
    write_results("reconstruct_seams", {"rows": rows, "per_file": per_file, "n_iter": n_iter})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
