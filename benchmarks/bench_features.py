"""Feature extraction: latentbridge's batched path vs the per-file librosa loop users write today.

Seed preset (configs/seed_spectrogram_vae.yaml): 44.1 kHz, 2-s windows (hop 2 s), n_fft 1024,
hop 512, |STFT| -> dB -> min-max per window, 128 frames (513 x 128 per window).

* ours:      ``FeatureExtractor.from_spec(spec, use_cache=False).extract(files)`` -- read + resample + cut
             windows per file, then ``SpectrogramTransform`` over the stacked windows in batches of
             ``batch_windows`` (default 32), file by file (``num_workers`` as timed).
             Timed with the default batch size and, for comparison, with 256 (the old default) and 16.
* reference: for each file ``librosa.load(sr=44100)``, cut the same 2-s windows, and for each
             window ``librosa.stft(n_fft=1024, hop_length=512)``, ``librosa.amplitude_to_db(abs)``,
             min-max, crop/pad to 128 frames.

The timed reference uses the parameters that define the same features as the preset
(``pad_mode="reflect"`` like torch.stft, ``top_db=None``, crop to 128 frames before the
dB/min-max); the agreement with librosa's *defaults* (``pad_mode="constant"``, ``top_db=80``,
min-max before cropping) is reported separately, since it is a different feature.

Both sides are timed interleaved in the same run (median of ``--reps``), and the speed-up is the
median over repetitions of the per-repetition ratio. ``ours`` is timed with torch's default
thread count and with 1 thread (librosa's numpy FFT is single-threaded).

    python benchmarks/bench_features.py [--synth-files 40] [--synth-seconds 10] [--fsdd-files 300] [--reps 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (fsdd_recordings, interleaved, make_synth_machine, median, per_rep_ratio,  # noqa: E402
                     REPO, table, write_results)

import librosa  # noqa: E402
import torch  # noqa: E402

from latentbridge.config import load_config, transform_spec  # noqa: E402
from latentbridge.data.audio import FeatureExtractor  # noqa: E402
from latentbridge.transforms.audio import SpectrogramTransform  # noqa: E402
from latentbridge.transforms.spec import AudioTransform, build_spectrogram  # noqa: E402


# ----------------------------------------------------------------------------- reference (user code)


def _fix(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


def user_windows(y: np.ndarray, win: int, hop: int) -> list[np.ndarray]:
    """The same windows as latentbridge.io.cut_windows(pad="wrap"), written the plain way: full windows
    every ``hop``; when more than half a window is left after them, one more ending on the last sample."""
    T = len(y)
    if T < win:
        return [np.pad(y, (0, win - T), mode="wrap")]
    n_full = (T - win) // hop + 1
    out = [y[s:s + win] for s in range(0, n_full * hop, hop)]
    if T - n_full * hop > win / 2:
        out.append(y[T - win:])
    return out


def user_window_features(w: np.ndarray, p: dict, librosa_defaults: bool = False) -> np.ndarray:
    if librosa_defaults:  # pad_mode="constant", top_db=80, min-max before pad/crop
        S = np.abs(librosa.stft(w, n_fft=p["n_fft"], hop_length=p["hop_length"]))
        D = librosa.amplitude_to_db(S)
        D = (D - D.min()) / (D.max() - D.min() + 1e-8)
        return _fix(D, p["n_frames"])
    S = np.abs(librosa.stft(w, n_fft=p["n_fft"], hop_length=p["hop_length"], pad_mode="reflect"))
    S = _fix(S, p["n_frames"])
    D = librosa.amplitude_to_db(S, top_db=None)
    return (D - D.min()) / (D.max() - D.min() + 1e-8)


def user_loop(files: list[Path], p: dict, librosa_defaults: bool = False) -> np.ndarray:
    out = []
    for f in files:
        y, _ = librosa.load(f, sr=p["sample_rate"])
        for w in user_windows(y, p["window"], p["hop"]):
            out.append(user_window_features(w, p, librosa_defaults))
    return np.stack(out)[:, None].astype(np.float32)


def above_floor_mask(files: list[Path], p: dict, floor_db: float = -80.0) -> np.ndarray:
    """True where the float64 magnitude is above ``floor_db`` (i.e. away from the amin = -100 dB clamp)."""
    out = []
    for f in files:
        y, _ = librosa.load(f, sr=p["sample_rate"])
        for w in user_windows(y, p["window"], p["hop"]):
            S = np.abs(librosa.stft(w.astype(np.float64), n_fft=p["n_fft"], hop_length=p["hop_length"],
                                    pad_mode="reflect"))
            out.append(_fix(S, p["n_frames"]) > 10 ** (floor_db / 20))
    return np.stack(out)[:, None]


# ----------------------------------------------------------------------------- benchmark


def seed_params() -> tuple[dict, AudioTransform, SpectrogramTransform]:
    """The seed preset's saved preprocessing description (what a model folder of it holds), its
    transform, and the same parameters as plain values for the librosa reference."""
    cfg = load_config(str(REPO / "configs" / "seed_spectrogram_vae.yaml"), [])
    spec = transform_spec(cfg)
    t = build_spectrogram(spec)
    w, f = spec.windowing, spec.features
    p = dict(sample_rate=spec.sample_rate, window=spec.window_samples, hop=spec.hop_samples,
             window_s=w.window_s, hop_s=w.hop_s, pad=w.pad,
             n_fft=f.n_fft, hop_length=f.hop_length, n_frames=f.n_frames)
    return p, spec, t


class Threads:
    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *a):
        torch.set_num_threads(self.old)


def run_set(name: str, files: list[Path], p: dict, spec: AudioTransform, transform: SpectrogramTransform,
            reps: int) -> dict:
    ext = FeatureExtractor.from_spec(spec, transform, use_cache=False)
    print(f"\n== {name}: {len(files)} files")
    ours = ext.extract(files).features
    ref = user_loop(files, p)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    diff = np.abs(ours - ref)
    sub = files[: min(len(files), 20)]
    n_sub = len(ext.extract(sub).features)
    d_def = np.abs(ours[:n_sub] - user_loop(sub, p, librosa_defaults=True))
    mask = above_floor_mask(files, p)
    agreement = {
        "shape": list(ours.shape),
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
        "max_abs_diff_above_-80dB": float(diff[mask].max()), "frac_elements_above_-80dB": float(mask.mean()),
        "frac_elements_diff_over_1e-3": float((diff > 1e-3).mean()),
        "librosa_defaults_max_abs_diff": float(d_def.max()),
        "librosa_defaults_frac_elements_over_1e-3": float((d_def > 1e-3).mean()),
    }
    print(f"   output {tuple(ours.shape)}; max |ours - librosa| = {diff.max():.3g} (mean {diff.mean():.3g}; "
          f"{diff[mask].max():.3g} where |STFT| > -80 dB, i.e. away from the amin floor); "
          f"vs librosa defaults: max {d_def.max():.3g}, {100 * (d_def > 1e-3).mean():.1f} % of values differ > 1e-3")

    # compute only: the same preloaded windows, no file I/O or resampling
    waves = [librosa.load(f, sr=p["sample_rate"])[0] for f in files]
    wins = [w for y in waves for w in user_windows(y, p["window"], p["hop"])]
    stacked = np.stack(wins).astype(np.float32)

    def ext_with(bw):
        return FeatureExtractor.from_spec(spec, transform, use_cache=False, batch_windows=bw)

    default_bw = ext.batch_windows
    others = {bw: ext_with(bw) for bw in COMPARE_BATCHES if bw != default_bw}

    def ref_compute():
        return np.stack([user_window_features(w, p) for w in wins])

    fns = {
        f"ours, batch_windows={default_bw} (default), torch default threads": lambda: ext.extract(files),
        f"ours, batch_windows={default_bw} (default), 1 thread": lambda: _with_threads(1, ext.extract, files),
    }
    for bw, e in others.items():
        fns[f"ours, batch_windows={bw}, 1 thread"] = (lambda e=e: _with_threads(1, e.extract, files))
    fns["librosa per-file loop"] = lambda: user_loop(files, p)
    fns[f"compute only: ours, batch_windows={default_bw} (default), 1 thread"] = \
        lambda: _with_threads(1, ext.features_of_windows, stacked)
    for bw, e in others.items():
        fns[f"compute only: ours, batch_windows={bw}, 1 thread"] = \
            (lambda e=e: _with_threads(1, e.features_of_windows, stacked))
    fns["compute only: librosa per window"] = ref_compute
    t = interleaved(fns, reps=reps)
    ref_t, ref_c = t["librosa per-file loop"], t["compute only: librosa per window"]
    rows = []
    for k, v in t.items():
        base = ref_c if k.startswith("compute only") else ref_t
        rows.append({"set": name, "method": k, "median_s": median(v), "files_per_s": len(files) / median(v),
                     "windows_per_s": len(ours) / median(v),
                     "speedup_vs_librosa": per_rep_ratio(base, v), "samples_s": v})
    print(table(rows, ["method", "median_s", "files_per_s", "windows_per_s", "speedup_vs_librosa"],
                {"median_s": ".3f", "files_per_s": ".1f", "windows_per_s": ".1f", "speedup_vs_librosa": ".2f"}))
    return {"set": name, "n_files": len(files), "n_windows": int(len(ours)), "default_batch_windows": default_bw,
            "num_workers": ext.num_workers, "agreement": agreement, "timings": rows}


#: batch sizes timed besides the FeatureExtractor default (256: the old default)
COMPARE_BATCHES = (256, 16)


def _with_threads(n, fn, *a):
    with Threads(n):
        return fn(*a)


# ----------------------------------------------------------------------------- log-mel path with workers


def logmel_settings() -> tuple[dict, AudioTransform]:
    """The anomaly workflow's fixed log-mel settings (``anomaly fit -o audio.auto=false``): 16 kHz,
    2-s windows, hop 1 s, wrap padding, n_fft 1024, hop 512, 64 mel bands, amplitude in dB."""
    spec = transform_spec(load_config(None, ["audio.auto=false"], sets={"task": "anomaly"}))
    f = spec.features
    p = dict(sample_rate=spec.sample_rate, window=spec.window_samples, hop=spec.hop_samples, n_fft=f.n_fft,
             hop_length=f.hop_length, n_mels=f.n_mels)
    return p, spec


def user_logmel_loop(files: list[Path], p: dict) -> list[np.ndarray]:
    """The per-file librosa loop: load (soxr_hq resampling), the same windows, one mel call per file."""
    out = []
    for f in files:
        y, _ = librosa.load(f, sr=p["sample_rate"])
        w = np.stack(user_windows(y, p["window"], p["hop"]))
        S = librosa.feature.melspectrogram(y=w, sr=p["sample_rate"], n_fft=p["n_fft"], hop_length=p["hop_length"],
                                           n_mels=p["n_mels"], power=1.0, pad_mode="reflect")
        out.append(librosa.amplitude_to_db(S, top_db=None))
    return out


def interleaved_cpu(fns: dict, reps: int) -> tuple[dict, dict]:
    """Like ``_common.interleaved`` (one warm-up, round robin, order rotated), recording per sample the
    wall time and (this process's CPU time, its finished child processes' CPU time)."""
    import resource

    def kids() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    names = list(fns)
    for n in names:
        fns[n]()
    wall: dict = {n: [] for n in names}
    cpu: dict = {n: [] for n in names}
    for r in range(reps):
        for n in names[r % len(names):] + names[: r % len(names)]:
            w0, c0, k0 = time.perf_counter(), time.process_time(), kids()
            fns[n]()
            wall[n].append(time.perf_counter() - w0)
            cpu[n].append((time.process_time() - c0, kids() - k0))
    return wall, cpu


def run_logmel(name: str, files: list[Path], reps: int) -> dict:
    """End to end (decode + resample + log-mel) with worker processes vs the per-file librosa loop."""
    import os

    from latentbridge.data.audio import default_workers

    p, spec = logmel_settings()
    n_def = default_workers()
    # (workers, parallel): this process; threads (the default) and DataLoader worker processes
    ext = {(k, par): FeatureExtractor.from_spec(spec, use_cache=False, num_workers=k, parallel=par)
           for k, par in [(0, "threads")] + [(k, par) for par in ("threads", "processes") for k in sorted({1, n_def})]
           + [(n_def, "auto")]}
    ours = ext[(0, "threads")].extract(files).features
    ref = np.concatenate(user_logmel_loop(files, p))[:, None]
    diff = np.abs(ours - ref)
    print(f"\n== log-mel end to end, {name}: {len(files)} files, {len(ours)} windows; max |ours - librosa| "
          f"{diff.max():.3g} dB, mean {diff.mean():.3g} dB")
    fns = {"librosa per-file loop": lambda: user_logmel_loop(files, p)}
    workers = {"librosa per-file loop": 0}
    for (k, par), e in ext.items():
        label = "this process" if k == 0 else "auto: threads or processes by the files" if par == "auto" else \
            f"{k} {par if k > 1 else {'processes': 'process', 'threads': 'thread'}[par]}"
        method = f"ours, {k} workers ({label}{', the default' if k == n_def and par == 'auto' else ''})"
        fns[method] = lambda e=e: _with_threads(1, e.extract, files)
        workers[method] = k if par == "processes" else -k  # threads: their CPU time is this process's (auto: either)
    load = [os.getloadavg()[0]]
    wall, cpu = interleaved_cpu(fns, reps)
    load.append(os.getloadavg()[0])
    ref_t, ref_c = wall["librosa per-file loop"], cpu["librosa per-file loop"]
    rows = []
    for k in fns:
        # on an idle machine the workers' CPU time would run side by side: this process's CPU time plus
        # the workers' share of theirs (perfect balance) is the wall time to expect there
        # (threads: this process's CPU time shared by them)
        ideal = [own / max(1, -workers[k]) + kids / max(1, workers[k]) for own, kids in cpu[k]]
        rows.append({"set": name, "method": k, "median_s": median(wall[k]), "files_per_s": len(files) / median(wall[k]),
                     "speedup_vs_librosa": per_rep_ratio(ref_t, wall[k]),
                     "cpu_s": median([a + b for a, b in cpu[k]]),
                     "speedup_idle_projection": per_rep_ratio([a + b for a, b in ref_c], ideal),
                     "samples_s": wall[k], "samples_cpu_s": cpu[k]})
    print(table(rows, ["method", "median_s", "files_per_s", "speedup_vs_librosa", "cpu_s", "speedup_idle_projection"],
                {"median_s": ".3f", "files_per_s": ".1f", "speedup_vs_librosa": ".2f", "cpu_s": ".3f",
                 "speedup_idle_projection": ".2f"}))
    print(f"   1-min load average {load[0]:.1f} before, {load[1]:.1f} after ({os.cpu_count()} cores)")
    return {"set": name, "n_files": len(files), "n_windows": int(len(ours)), "settings": p,
            "default_workers": n_def, "max_abs_diff_db": float(diff.max()), "mean_abs_diff_db": float(diff.mean()),
            "loadavg_1min_before_after": load, "timings": rows}


def run_logmel_sets(args) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="lb_bench_logmel_") as tmp:
        if args.logmel_synth_files:
            synth = make_synth_machine(Path(tmp) / "synth", seed=0, sample_rate=44100, duration_s=10.0,
                                       n_train=args.logmel_synth_files, n_test_normal=0, n_test_anomalous=0)
            out.append(run_logmel(f"synthetic {args.logmel_synth_files} x 10 s, 44.1 kHz -> 16 kHz",
                                  sorted((synth / "train" / "normal").glob("*.wav")), args.reps))
    rec = fsdd_recordings()
    if rec is not None and args.logmel_fsdd_files:
        from latentbridge.io.audio import audio_info

        ok = [f for f in sorted(rec.glob("*.wav")) if audio_info(f).duration_s >= 0.501]
        idx = np.random.default_rng(0).choice(len(ok), size=min(args.logmel_fsdd_files, len(ok)), replace=False)
        files = [ok[i] for i in sorted(idx)]
        out.append(run_logmel(f"FSDD {len(files)} clips of 0.5-2.3 s, 8 kHz -> 16 kHz", files, args.reps))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--synth-files", type=int, default=40)
    ap.add_argument("--synth-seconds", type=float, default=10.0)
    ap.add_argument("--fsdd-files", type=int, default=300)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--logmel-synth-files", type=int, default=60,
                    help="log-mel end to end with workers: synthetic 10-s recordings at 44.1 kHz (0: skip)")
    ap.add_argument("--logmel-fsdd-files", type=int, default=600, help="... and FSDD clips of at least 0.5 s")
    ap.add_argument("--only-logmel", action="store_true", help="only the log-mel end-to-end part")
    ap.add_argument("--suffix", default="", help="--only-logmel: results/bench_features_logmel<suffix>.json")
    args = ap.parse_args(argv)

    p, spec, transform = seed_params()
    results = {"preset": "configs/seed_spectrogram_vae.yaml", "params": p, "reps": args.reps, "sets": []}
    t0 = time.time()
    results["logmel"] = run_logmel_sets(args)
    if args.only_logmel:
        results["seconds"] = round(time.time() - t0, 1)
        write_results(f"bench_features_logmel{args.suffix}", results)
        return 0
    with tempfile.TemporaryDirectory(prefix="lb_bench_feat_") as tmp:
        synth = make_synth_machine(Path(tmp) / "synth", seed=0, sample_rate=p["sample_rate"],
                                   duration_s=args.synth_seconds, n_train=args.synth_files, n_test_normal=0,
                                   n_test_anomalous=0)
        files = sorted((synth / "train" / "normal").glob("*.wav"))
        results["sets"].append(run_set(f"synthetic machine ({args.synth_files} x {args.synth_seconds:g} s, "
                                       f"44.1 kHz native)", files, p, spec, transform, args.reps))
    rec = fsdd_recordings()
    if rec is not None and args.fsdd_files > 0:
        # the short-recording rule (latentbridge.io.check_recording_length) refuses recordings shorter
        # than a quarter of a window (0.5 s here): draw from the files the package accepts
        from latentbridge.io.audio import audio_info
        from latentbridge.io.windows import MIN_WINDOW_SHARE

        min_s = MIN_WINDOW_SHARE * p["window_s"] + 1e-3
        all_files = [f for f in sorted(rec.glob("*.wav")) if audio_info(f).duration_s >= min_s]
        print(f"FSDD: {len(all_files)} recordings of at least {min_s:.3f} s")
        idx = np.random.default_rng(0).choice(len(all_files), size=min(args.fsdd_files, len(all_files)),
                                              replace=False)
        files = [all_files[i] for i in sorted(idx)]
        results["sets"].append(run_set(f"FSDD ({len(files)} files >= {min_s:.2f} s, 8 kHz -> 44.1 kHz soxr_hq)", files, p,
                                       spec, transform, args.reps))
    results["seconds"] = round(time.time() - t0, 1)
    write_results("bench_features", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
