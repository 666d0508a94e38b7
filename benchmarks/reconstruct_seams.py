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

Second, whether the model rebuilds a word wherever it lies in a window: 30 FSDD clips the models did not train on,
each placed at 0, 0.3, 0.7 and 0.9 s into 3 s of silence, rebuilt by the CLI, with STOI beside the figures above. Both
parts for two models trained alike: with half the training windows shifted by up to half a window
(``-o augment.time_shift_p=0.5``) and without (the preset).

    python benchmarks/reconstruct_seams.py            # about 12 min on 2 cores
    python benchmarks/reconstruct_seams.py --seed 1   # both models trained from another seed (and 600 other clips)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, cli, fsdd_recordings, run_logged, table, write_results  # noqa: E402


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
    import warnings

    from latentbridge.metrics.signal import log_spectral_distance, stoi_score

    a, b = frame_db(inp), frame_db(out)
    loud = a > a.max() - 30
    d = b[loud] - a[loud]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pystoi on a short word: NaN, said once per call
        stoi = float(stoi_score(out, inp, 8000))
    return {"seam_share": float((d < -30).mean()), "median_level_diff_db": float(np.median(d)),
            "lsd_db": float(np.mean(log_spectral_distance(out[None], inp[None], n_fft=256, hop=64))), "stoi": stoi}


def placed_words(rec: Path, out: Path, used: set, n: int = 30, offsets=(0.0, 0.3, 0.7, 0.9)) -> dict:
    """``n`` clips not in ``used``, each at every offset (seconds) into 3 s of silence: {offset: [paths]}."""
    import soundfile as sf

    rng = np.random.default_rng(5)
    clips = sorted(p for p in rec.glob("*.wav") if p.name not in used)
    pick = [clips[i] for i in rng.choice(len(clips), n, replace=False)]
    files = {}
    for off in offsets:
        d = out / f"at_{off}"
        d.mkdir(parents=True, exist_ok=True)
        for p in pick:
            x, _ = sf.read(p, dtype="float32")
            wave = np.zeros(3 * 8000, np.float32)
            s = int(off * 8000)
            wave[s:s + len(x)] = (x - x.mean())[: len(wave) - s]
            sf.write(d / p.name, wave, 8000, subtype="FLOAT")
        files[off] = sorted(d.glob("*.wav"))
    return files


def rebuilt(run: Path, files: list, out: Path, n_iter: int, log: Path) -> list:
    """Each file rebuilt by ``latentbridge audio reconstruct``: (input, output) pairs."""
    import soundfile as sf

    run_logged(cli("audio", "reconstruct", str(run), *map(str, files), "--out", str(out), "--n-iter", str(n_iter)), log)
    return [(sf.read(f, dtype="float32")[0], sf.read(out / f"{f.stem}_reconstructed.wav", dtype="float32")[0])
            for f in files]


def main(argv=None) -> int:
    import argparse

    from latentbridge.config import load_config
    from latentbridge.tasks.autoencode import audio_files

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0, help="train.seed of both models (and their data subset)")
    args = ap.parse_args(argv)
    rec = fsdd_recordings()
    if rec is None:
        return 0
    n_iter, common = 32, [f"data.train_dir={rec}", "data.limit=600", "train.max_epochs=12", f"train.seed={args.seed}"]
    models = {"shifted windows": ["augment.time_shift_p=0.5"], "no shifts (the preset)": ["augment.time_shift_p=0"]}
    used = {p.name for p in audio_files(load_config(REPO / "configs" / "mel_ae.yaml", common))}
    rows, words, per_file = [], [], {}
    with tempfile.TemporaryDirectory(prefix="lb_seams_") as tmp:
        tmp = Path(tmp)
        long_sets = {name: recordings(rec, tmp / f"in_{floor}", floor_dbfs=floor)
                     for name, floor in (("digits end to end", None), ("the same over a -45 dBFS noise floor", -45.0))}
        placed = placed_words(rec, tmp / "words", used)
        for m, (model, extra) in enumerate(models.items()):
            run = tmp / f"mel{m}"
            run_logged(cli("train", "--config", "configs/mel_ae.yaml", "--out", str(run), "-o", "train.progress_bar=false",
                           *[a for o in common + extra for a in ("-o", o)]), tmp / "train.log")
            for name, files in long_sets.items():
                got = [figures(i, o) for i, o in rebuilt(run, files, tmp / f"out{m}_{len(rows)}", n_iter,
                                                         tmp / "reconstruct.log")]
                per_file[f"{model} / {name} / CLI"] = got
                rows.append({"model": model, "set": name, "method": "CLI (blended, overlapping windows)",
                             **{k: float(np.nanmean([g[k] for g in got])) for k in got[0]}})
                if m == 0:  # the windows side by side: the first model only (the reference of the first table)
                    got = [figures(sf_read(f), side_by_side(run, f, n_iter)) for f in files]
                    per_file[f"{model} / {name} / side by side"] = got
                    rows.append({"model": model, "set": name, "method": "windows side by side (reference)",
                                 **{k: float(np.mean([g[k] for g in got])) for k in got[0]}})
            for off, files in placed.items():
                got = []
                for i, o in rebuilt(run, files, tmp / f"word{m}_{off}", n_iter, tmp / "reconstruct.log"):
                    got.append(figures(i, o))
                words.append({"model": model, "word_at_s": off,
                              **{k: float(np.nanmean([g[k] for g in got])) for k in got[0]}})
    print(table(rows, ["model", "set", "method", "seam_share", "median_level_diff_db", "lsd_db", "stoi"],
                {"seam_share": ".3f", "median_level_diff_db": ".1f", "lsd_db": ".1f", "stoi": ".3f"}))
    print(table(words, ["model", "word_at_s", "stoi", "median_level_diff_db", "lsd_db", "seam_share"],
                {"word_at_s": ".1f", "stoi": ".3f", "median_level_diff_db": ".1f", "lsd_db": ".1f", "seam_share": ".3f"}))
    write_results("reconstruct_seams" + (f"_seed{args.seed}" if args.seed else ""), {"rows": rows, "words": words, "per_file": per_file, "n_iter": n_iter})
    return 0


def sf_read(path: Path) -> np.ndarray:
    import soundfile as sf

    return sf.read(path, dtype="float32")[0]


if __name__ == "__main__":
    raise SystemExit(main())
