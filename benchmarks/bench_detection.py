"""Detection quality: conv VAE vs the DCASE 2020 baseline (and the conv AE), same data, same run.

Models (presets, seeds fixed by ``train.seed=0``):

* ``vae``      configs/anomaly_vae.yaml        conv VAE on 64-band log-mel, standardised
* ``dcase``    configs/dcase2020_baseline.yaml dense AE on 5 stacked 128-band log-mel frames
* ``ae``       configs/anomaly_ae.yaml         conv AE, same encoder/decoder as the VAE

Tasks:

(a) ``synth``: the default synthetic machine set (``latentbridge data synth machine --seed 0``:
    16 kHz, 60 train / 40 test normal / 40 test anomalous clips of 10 s, four fault kinds).
    Presets used unchanged. AUC/pAUC from ``metrics.json`` (file level, mean of window
    scores) and, per fault kind, from the file-level rows of ``scores.csv``.
(b) ``fsdd``: Free Spoken Digit Dataset, one speaker = "normal machine". Train on that
    speaker's train split (index 5-49, 450 files), test normal = its test split (index 0-4,
    50 files), test anomalous = another speaker's test split (50 files). One model per normal
    speaker, scored once on its own test split plus every other speaker's test split; AUC is
    reported per (normal, anomalous) pair from ``scores.csv`` and, pooled over all other
    speakers, from ``metrics.json``. Overrides for 8-kHz digits (applied to all three models):
    ``audio.sample_rate=8000 audio.window_s=0.5 audio.hop_s=0.25 audio.pad=constant
    features.n_fft=256 features.hop_length=64 features.n_mels=64`` (-> 64 x 63 per window; the
    DCASE preset's 128 bands would exceed the 129 FFT bins, so it uses 64 -> 320-dim vectors).

Scores: every model is scored with its preset's ``anomaly.score`` (``mse``: mean squared
reconstruction error of a window) through ``latentbridge.commands.score`` (what ``latentbridge
anomaly score`` runs: ``tasks.anomaly.score`` + the report step writing ``scores.csv`` /
``metrics.json``), and then -- the same trained model, no
retraining -- re-scored with ``frame_max`` (the squared error of the worst frame / vector of a
window) by ``latentbridge.tasks.anomaly.score_features(model, features, "frame_max")`` on the same
test features, aggregated to files the same way (mean of window scores). All AUC tables (overall,
per fault kind / severity, per speaker pair) are given for both scores; F1 only for ``mse`` (the
calibrated threshold belongs to the training score).

Training runs with ``torch.set_num_threads(1)`` (``--threads``). Training time is reported as a ratio to the DCASE baseline's, trained in the same run with the
model order rotated between tasks (seconds are in the JSON for reference).

Equivalent CLI for one model/task::

    latentbridge anomaly fit DATA/train/normal --config configs/anomaly_vae.yaml --out M -o train.seed=0 [-o ...]
    latentbridge anomaly score M DATA/test --labels auto --out S      # S/metrics.json, S/scores.csv

    python benchmarks/bench_detection.py [--models vae,dcase,ae] [--fsdd-normal george,jackson] [--epochs N]
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, fsdd_recordings, make_synth_machine, median, table, write_results  # noqa: E402

MODELS = {"vae": "anomaly_vae.yaml", "dcase": "dcase2020_baseline.yaml", "ae": "anomaly_ae.yaml"}
FSDD_OVERRIDES = ["audio.sample_rate=8000", "audio.window_s=0.5", "audio.hop_s=0.25", "audio.pad=constant",
                  "features.n_fft=256", "features.hop_length=64", "features.n_mels=64"]
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def quiet() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def fit_and_score(model: str, train_dir: Path, test_paths: list[Path], work: Path, cache: Path,
                  overrides: list[str]) -> dict:
    from latentbridge import commands
    from latentbridge.config import load_config
    from latentbridge.tasks import anomaly

    ov = [f"data.train_dir={train_dir}", f"data.cache_dir={cache}", "train.seed=0", "train.progress_bar=false",
          "train.accelerator=cpu", *overrides]
    cfg = load_config(str(REPO / "configs" / MODELS[model]), ov)
    mdir, sdir = work / f"model_{model}", work / f"scores_{model}"
    warm_cache(cfg)  # so that train_s measures training (+ cache reads), not first-time feature extraction
    t0 = time.perf_counter()
    res = anomaly.fit(cfg, mdir, force=True)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = commands.score(str(mdir), [str(p) for p in test_paths], str(sdir), labels="auto", force=True).metrics
    score_s = time.perf_counter() - t0
    files = file_scores(sdir / "scores.csv")
    base = {"model": model, "config": f"configs/{MODELS[model]}", "overrides": ov[2:], "train_s": train_s,
            "score_s": score_s, "epochs": cfg.train.max_epochs, "n_train_windows": res.n_train_windows,
            "n_val_windows": res.n_val_windows}
    rows = [{**base, "score": metrics["score"], "auc": metrics["auc"], "pauc": metrics["pauc"],
             "window_auc": metrics["window_auc"], "f1": metrics["f1"], "threshold": metrics["threshold"],
             "files": files}]
    if RESCORE not in {metrics["score"]}:
        rows.append({**base, **rescore(mdir, test_paths, RESCORE)})
    return rows


#: second score computed from the same trained models (no retraining)
RESCORE = "frame_max"


def rescore(model_dir: Path, test_paths: list[Path], method: str) -> dict:
    """Re-score the trained model's test windows with ``method``; file score = the preset's aggregate."""
    from latentbridge.data.labels import resolve_labels
    from latentbridge.metrics.anomaly import partial_auc, roc_auc
    from latentbridge.tasks.anomaly import Detector, aggregate_scores, score_features

    det = Detector.load(model_dir)
    agg = det.cfg.anomaly.aggregate
    wf = det.extractor().extract([str(p) for p in test_paths])
    y = resolve_labels(wf.files, "auto")
    win = score_features(det.model, wf.features, method, det.cfg.anomaly.iwae_samples)
    fs = aggregate_scores(win, wf.file_index, len(wf.files), agg)
    return {"score": method, "auc": roc_auc(y, fs), "pauc": partial_auc(y, fs),
            "window_auc": roc_auc(y[wf.file_index], win), "f1": None, "threshold": None,
            "files": [(str(f), float(v)) for f, v in zip(wf.files, fs)]}


def warm_cache(cfg) -> None:
    """Fill the feature cache of the training files (same transform spec, so the same cache keys as ``fit``)."""
    from latentbridge.config import transform_spec
    from latentbridge.data.audio import FeatureExtractor

    FeatureExtractor.from_spec(transform_spec(cfg), cache_dir=cfg.data.cache_dir).extract(
        cfg.data.train_dir, skip_bad=cfg.data.skip_bad_files)


def file_scores(path: Path) -> list[tuple[str, float]]:
    with open(path, newline="") as f:
        return [(r["path"], float(r["score"])) for r in csv.DictReader(f) if r["level"].startswith("file")]


def group_auc(files: list[tuple[str, float]], is_normal, group_of) -> dict[str, dict]:
    """AUC/pAUC of every anomalous group against all normal files."""
    from latentbridge.metrics.anomaly import partial_auc, roc_auc

    normal = [s for p, s in files if is_normal(p)]
    groups: dict[str, list[float]] = {}
    for p, s in files:
        if not is_normal(p):
            groups.setdefault(group_of(p), []).append(s)
    out = {}
    for g, sc in sorted(groups.items()):
        y = np.r_[np.zeros(len(normal)), np.ones(len(sc))]
        s = np.r_[normal, sc]
        out[g] = {"auc": roc_auc(y, s), "pauc": partial_auc(y, s), "n": len(sc)}
    return out


def run_models(models: list[str], rotate: int, *a) -> list[dict]:
    """One row per (model, score), models in the given order, mse row first."""
    order = models[rotate % len(models):] + models[: rotate % len(models)]
    out = {m: fit_and_score(m, *a) for m in order}
    return [r for m in models for r in out[m]]


def add_time_ratio(rows: list[dict]) -> None:
    ref = next((r["train_s"] for r in rows if r["model"] == "dcase"), None)
    for r in rows:
        r["train_time_vs_dcase"] = r["train_s"] / ref if ref else None


def _label(r: dict) -> str:
    return f"{r['model']}/{r['score']}"


def task_synth(models, work: Path, cache: Path, epochs: int | None) -> dict:
    data = make_synth_machine(work / "synth", seed=0)
    print(f"\n== synthetic machine set (seed 0) in {data}")
    ov = [f"train.max_epochs={epochs}"] if epochs else []
    rows = run_models(models, 0, data / "train" / "normal", [data / "test"], work / "synth_runs", cache, ov)
    add_time_ratio(rows)
    kinds = sorted({Path(p).name.split("_")[1] for p, _ in rows[0]["files"] if Path(p).name.startswith("anomalous_")})
    n_normal = sum(Path(p).parent.name == "normal" for p, _ in rows[0]["files"])
    import json

    severity = {Path(f["path"]).name: f["severity"] for f in
                json.loads((data / "manifest.json").read_text())["files"] if f["severity"] is not None}
    for r in rows:
        r["per_kind"] = group_auc(r["files"], lambda p: Path(p).parent.name == "normal",
                                  lambda p: Path(p).name.split("_")[1])
        for k in kinds:
            r[f"auc_{k}"] = r["per_kind"][k]["auc"]
        # anomalies split by the generator's severity (manifest.json): is the failure only on subtle faults?
        sev = group_auc(r["files"], lambda p: Path(p).parent.name == "normal",
                        lambda p: "sev>=0.5" if severity[Path(p).name] >= 0.5 else "sev<0.5")
        r["per_severity"] = sev
        r["auc_sev>=0.5"] = sev.get("sev>=0.5", {}).get("auc")
        r["auc_sev<0.5"] = sev.get("sev<0.5", {}).get("auc")
    cols = ["auc", "pauc", "window_auc", *[f"auc_{k}" for k in kinds], "auc_sev<0.5", "auc_sev>=0.5"]
    print(table(rows, ["model", "score", *cols, "f1", "epochs", "train_s", "train_time_vs_dcase"],
                {"train_s": ".1f", "train_time_vs_dcase": ".2f", "f1": ".3f", **{c: ".3f" for c in cols}}))
    n_sev = sum(v >= 0.5 for v in severity.values())
    per_kind = {k: r["per_kind"][k]["n"] for r in rows[:1] for k in kinds}
    print(f"({len(severity)} anomalous clips {per_kind}; {n_sev} with severity >= 0.5; {n_normal} normal clips)")
    return {"task": "synth", "data": "latentbridge data synth machine --seed 0 (defaults)", "kinds": kinds,
            "rows": [{k: v for k, v in r.items() if k != "files"} for r in rows]}


def fsdd_layout(rec: Path, normal: str, root: Path) -> tuple[Path, Path]:
    """Symlink farm: root/train/normal, root/test/normal, root/test/anomalous (all other speakers)."""
    for sub in ("train/normal", "test/normal", "test/anomalous"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for f in sorted(rec.glob("*.wav")):
        digit, spk, idx = f.stem.split("_")
        idx = int(idx)
        if spk == normal:
            dest = root / ("train/normal" if idx >= 5 else "test/normal") / f.name
        elif idx < 5:
            dest = root / "test/anomalous" / f.name
        else:
            continue
        dest.symlink_to(f)
    return root / "train" / "normal", root / "test"


def task_fsdd(models, normals: list[str], work: Path, cache: Path, epochs: int | None) -> dict | None:
    rec = fsdd_recordings()
    if rec is None:
        return None
    ov = FSDD_OVERRIDES + ([f"train.max_epochs={epochs}"] if epochs else [])
    pair_rows, pooled = [], []
    for i, spk in enumerate(normals):
        train_dir, test_dir = fsdd_layout(rec, spk, work / f"fsdd_{spk}")
        print(f"\n== FSDD: normal speaker {spk} ({len(list(train_dir.glob('*.wav')))} train files)")
        rows = run_models(models, i + 1, train_dir, [test_dir], work / f"fsdd_{spk}_runs", cache, ov)
        add_time_ratio(rows)
        for r in rows:
            per = group_auc(r["files"], lambda p: Path(p).parent.name == "normal",
                            lambda p: Path(p).stem.split("_")[1])
            pooled.append({"normal": spk, "anomalous": "all 5 others", **{k: v for k, v in r.items()
                                                                           if k != "files"}})
            for other, m in per.items():
                pair_rows.append({"normal": spk, "anomalous": other, "model": r["model"], "score": r["score"],
                                  "auc": m["auc"], "pauc": m["pauc"]})
    print("\nFSDD per (normal, anomalous) speaker pair, file-level AUC / pAUC:")
    wide = []
    for (n, a) in sorted({(r["normal"], r["anomalous"]) for r in pair_rows}):
        row = {"normal": n, "anomalous": a}
        for r in pair_rows:
            if (r["normal"], r["anomalous"]) == (n, a):
                row[f"auc_{_label(r)}"] = r["auc"]
                row[f"pauc_{_label(r)}"] = r["pauc"]
        wide.append(row)
    labels = list(dict.fromkeys(_label(r) for r in pair_rows))
    for what in ("auc", "pauc"):
        cols = ["normal", "anomalous", *[f"{what}_{lb}" for lb in labels]]
        print(table(wide, cols, {c: ".3f" for c in cols[2:]}))
    means = {lb: {"mean_auc": float(np.mean([r["auc"] for r in pair_rows if _label(r) == lb])),
                  "mean_pauc": float(np.mean([r["pauc"] for r in pair_rows if _label(r) == lb]))} for lb in labels}
    print("\nFSDD pooled (normal speaker vs all other speakers; mse from metrics.json, frame_max re-scored):")
    print(table(pooled, ["normal", "model", "score", "auc", "pauc", "window_auc", "epochs", "train_s",
                         "train_time_vs_dcase"],
                {"auc": ".3f", "pauc": ".3f", "window_auc": ".3f", "train_s": ".1f", "train_time_vs_dcase": ".2f"}))
    print("mean over pairs: " + "; ".join(f"{m} AUC {v['mean_auc']:.3f} pAUC {v['mean_pauc']:.3f}"
                                          for m, v in means.items()))
    return {"task": "fsdd", "overrides": FSDD_OVERRIDES, "normal_speakers": normals, "pairs": wide,
            "pair_rows": pair_rows, "pooled": pooled, "mean_over_pairs": means}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="vae,dcase,ae")
    ap.add_argument("--tasks", default="synth,fsdd")
    ap.add_argument("--fsdd-normal", default="george,jackson", help="normal speakers (one model each)")
    ap.add_argument("--epochs", type=int, help="override train.max_epochs (default: each config's own)")
    ap.add_argument("--fsdd-epochs", type=int, default=0,
                    help="train.max_epochs on FSDD (default 0 = the configs' own, 40)")
    ap.add_argument("--keep", help="keep data, models and score folders here")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on the shared 2-core machine 2 threads made training ~5x slower)")
    args = ap.parse_args(argv)
    quiet()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    tasks = [t.strip() for t in args.tasks.split(",")]
    normals = [s.strip() for s in args.fsdd_normal.split(",") if s.strip()]
    t0 = time.time()
    results = {"models": {m: f"configs/{MODELS[m]}" for m in models}, "torch_threads": torch.get_num_threads(),
               "tasks": []}
    with tempfile.TemporaryDirectory(prefix="lb_bench_det_") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cache = Path(tmp) / "cache"
        if "synth" in tasks:
            results["tasks"].append(task_synth(models, work, cache, args.epochs))
        if "fsdd" in tasks:
            ep = args.epochs or (args.fsdd_epochs or None)
            r = task_fsdd(models, normals, work, cache, ep)
            if r is not None:
                results["tasks"].append(r)
    results["seconds"] = round(time.time() - t0, 1)
    print(f"\ntotal {results['seconds']:.0f} s")
    write_results("bench_detection", results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
