"""Scoring latency per 2-s window on ONE thread: PyTorch eager vs onnxruntime vs the edge path.

Models: the conv VAE detector (configs/anomaly_vae.yaml, 1 x 64 x 63 log-mel input; the anomaly default
until 2026-12-01, now a preset) and the seed
preset (configs/seed_spectrogram_vae.yaml, 1 x 513 x 128 input), each trained for a couple of
epochs on synthetic machine data (quality is irrelevant here) and exported with
``latentbridge export``; or reused with ``--model DIR`` / ``--seed-model DIR``.

Timed, one window (batch 1) per call, ``torch.set_num_threads(1)``, onnxruntime
``intra_op_num_threads=1``, interleaved round robin (order rotated each repetition):

* eager (Detector.score_windows): the public API -- waveform -> features (torch) -> model score
  (the Detector builds its FeatureExtractor once and caches it).
* eager (transform + model): the same, calling ``model.score(transform(x), method)`` directly
  (no FeatureExtractor batching, no numpy round trip, no threshold).
* onnxruntime graph only: ``session.run`` on a precomputed STFT magnitude.
* edge (EdgeScorer.score_windows): numpy STFT + onnxruntime, what a Raspberry Pi runs.
* numpy STFT only: the edge path's first stage alone.

Reported: median and p90 ms per window (over all calls), eager/onnxruntime ratios (median over
repetitions of the per-repetition ratio of medians), real-time factor = time / 2 s.

    python benchmarks/bench_latency.py [--model DIR] [--seed-model DIR] [--reps 7] [--calls 40]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, cli, make_synth_machine, median, table, write_results  # noqa: E402

import torch  # noqa: E402

GOAL_MS = 2.0


def train_model(config: str, synth_dir: Path, out_dir: Path, cache: Path, epochs: int) -> Path:
    from latentbridge.config import load_config
    from latentbridge.tasks import anomaly

    cfg = load_config(str(REPO / "configs" / config), [
        f"data.train_dir={synth_dir / 'train' / 'normal'}", f"data.cache_dir={cache}",
        f"train.max_epochs={epochs}", "train.progress_bar=false", "train.accelerator=cpu"])
    t0 = time.time()
    anomaly.fit(cfg, out_dir, force=True)
    print(f"trained {config} for {epochs} epochs in {time.time() - t0:.1f} s -> {out_dir}")
    return out_dir


def export(model_dir: Path, onnx_path: Path) -> Path:
    cmd = cli("export", str(model_dir), "--out", str(onnx_path))
    r = subprocess.run(cmd, capture_output=True, text=True)
    print("   " + (r.stdout.strip() or r.stderr.strip()))
    if r.returncode != 0:
        raise SystemExit(f"export failed: {' '.join(cmd)}\n{r.stderr}")
    return onnx_path


def time_calls(fns: dict, reps: int, calls: int, warmup: int = 10) -> dict[str, list[list[float]]]:
    """{name: [[per-call seconds of rep 0], [rep 1], ...]}, interleaved, order rotated each rep."""
    names = list(fns)
    for n in names:
        for _ in range(warmup):
            fns[n]()
    out: dict[str, list[list[float]]] = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            fn, ts = fns[n], []
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
            out[n].append(ts)
    return out


def bench_model(label: str, model_dir: Path, onnx_path: Path, reps: int, calls: int) -> dict:
    from latentbridge.edge import EdgeScorer
    from latentbridge.tasks.anomaly import Detector

    det = Detector.load(model_dir)
    edge = EdgeScorer(onnx_path, threads=1)
    sr, win = det.sample_rate, det.spec.window_samples  # the model folder's saved transform
    window_s = win / sr
    rng = np.random.default_rng(0)
    x = (0.05 * rng.standard_normal((1, win))).astype(np.float32)
    xt = torch.from_numpy(x)
    mag = edge.magnitude(x).astype(np.float32)
    input_shape = tuple(det.model.input_shape)

    # sanity: the four paths give the same score
    s_eager = float(det.score_windows(x)[0][0])
    s_edge = float(edge.score_windows(x)[0][0])
    s_graph = float(edge.session.run(["score"], {"magnitude": mag})[0][0])
    print(f"\n== {label}: input {input_shape}, window {window_s:g} s at {sr} Hz; scores eager {s_eager:.6g}, "
          f"onnx {s_graph:.6g}, edge {s_edge:.6g}")

    model, transform = det.model.eval(), det.transform.eval()

    def eager_api():
        det.score_windows(x)

    @torch.no_grad()
    def eager_direct():
        model.score(transform(xt), method=det.method)

    def ort_graph():
        edge.session.run(["score"], {"magnitude": mag})

    def edge_full():
        edge.score_windows(x)

    def numpy_stft():
        edge.magnitude(x)

    fns = {"eager (Detector.score_windows)": eager_api, "eager (transform + model)": eager_direct,
           "onnxruntime graph only": ort_graph, "edge (numpy STFT + onnxruntime)": edge_full,
           "numpy STFT only": numpy_stft}
    t = time_calls(fns, reps, calls)
    rep_medians = {k: [median(r) for r in v] for k, v in t.items()}
    ort_m = rep_medians["onnxruntime graph only"]
    rows = []
    for k, v in t.items():
        flat = np.concatenate(v) * 1e3
        rows.append({"model": label, "path": k, "median_ms": float(np.median(flat)),
                     "p90_ms": float(np.percentile(flat, 90)),
                     "ratio_vs_ort_graph": median([a / b for a, b in zip(rep_medians[k], ort_m)]),
                     "rtf": float(np.median(flat)) / 1e3 / window_s})
    print(table(rows, ["path", "median_ms", "p90_ms", "ratio_vs_ort_graph", "rtf"],
                {"median_ms": ".3f", "p90_ms": ".3f", "ratio_vs_ort_graph": ".2f", "rtf": ".2e"}))
    graph_ms = rows[2]["median_ms"]
    edge_ms = rows[3]["median_ms"]
    return {"label": label, "model_dir": str(model_dir), "score_method": det.method, "input_shape": list(input_shape), "window_s": window_s,
            "sample_rate": sr, "scores": {"eager": s_eager, "onnx_graph": s_graph, "edge": s_edge},
            "rows": rows, "goal_ms": GOAL_MS, "goal_met_graph_only": graph_ms <= GOAL_MS,
            "goal_met_edge_path": edge_ms <= GOAL_MS,
            "n_params": int(sum(p.numel() for p in model.parameters())),
            "samples_ms": {k: (np.asarray(v) * 1e3).round(4).tolist() for k, v in t.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="reuse a trained configs/anomaly_vae.yaml model folder")
    ap.add_argument("--seed-model", help="reuse a trained seed-preset model folder")
    ap.add_argument("--no-seed", action="store_true", help="skip the seed preset model")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs when a model is trained here")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--calls", type=int, default=40, help="timed calls per path per repetition")
    ap.add_argument("--keep", help="keep trained models and .onnx files in this folder")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.time()
    results = {"threads": 1, "reps": args.reps, "calls_per_rep": args.calls, "models": []}
    with tempfile.TemporaryDirectory(prefix="lb_bench_lat_") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cache = Path(tmp) / "cache"
        jobs = [("conv VAE (anomaly_vae.yaml)", "anomaly_vae.yaml", args.model, 16000)]
        if not args.no_seed:
            jobs.append(("seed preset (seed_spectrogram_vae.yaml)", "seed_spectrogram_vae.yaml", args.seed_model,
                         44100))
        for label, config, given, sr in jobs:
            stem = Path(config).stem
            if given:
                model_dir = Path(given)
            else:
                synth = make_synth_machine(work / f"synth_{sr}", seed=0, sample_rate=sr, duration_s=4.0,
                                           n_train=8, n_test_normal=0, n_test_anomalous=0)
                model_dir = train_model(config, synth, work / f"model_{stem}", cache, args.epochs)
            onnx_path = export(model_dir, work / f"{stem}.onnx")
            results["models"].append(bench_model(label, model_dir, onnx_path, args.reps, args.calls))
    results["seconds"] = round(time.time() - t0, 1)
    d = results["models"][0]
    g = next(r for r in d["rows"] if r["path"] == "onnxruntime graph only")
    e = next(r for r in d["rows"] if r["path"].startswith("edge"))
    print(f"\ngoal (default model, onnxruntime <= {GOAL_MS} ms per window): graph only {g['median_ms']:.3f} ms -> "
          f"{'MET' if g['median_ms'] <= GOAL_MS else 'NOT MET'}; full edge path {e['median_ms']:.3f} ms -> "
          f"{'MET' if e['median_ms'] <= GOAL_MS else 'NOT MET'}")
    write_results("bench_latency", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
