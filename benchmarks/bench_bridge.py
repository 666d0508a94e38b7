"""Crack masks from vibration alone: the four multimodal-VAE fusions vs the supervised spec2mask network.

Models (presets unchanged, ``train.seed`` 0 and ``data.test_fraction`` 0.25 in every one of them):

* ``jsd``       configs/mmvae_bridge_jsd.yaml    multimodal VAE, mmJSD fusion
* ``poe``       configs/mmvae_bridge_poe.yaml    product of experts
* ``moe``       configs/mmvae_bridge_moe.yaml    mixture of experts (= configs/mmvae_bridge.yaml, the main job's
                                                 preset: the same resolved config but for its description)
* ``mopoe``     configs/mmvae_bridge_mopoe.yaml  mixture of products of experts
* ``spec2mask`` configs/spec2mask_bridge.yaml    supervised reference: same spectrogram encoder -> mask

Data: the default simulated bridge set (``latentbridge data synth bridge --out DIR``: seed 0, 300
damage states x 20 s, 8 sensors), generated into the work folder unless ``--data`` names one.
Every model is trained and evaluated through the CLI, exactly as a user would::

    latentbridge train --config CFG --out RUN -o data.root=DATA -o train.progress_bar=false
    latentbridge evaluate RUN --out RUN-eval          # RUN-eval/metrics.json

``evaluate`` scores the held-out damage states recorded in ``RUN/config.json`` (``data.test_tests``);
the script checks that these lists are identical across the five runs. Masks and damage extent are
predicted from vibration alone (``model.predict(batch, use=("spec",))``).

Besides the models' metrics the script computes, on the same held-out windows, two trivial
references: the *empty-mask predictor* (predict no crack anywhere) and the constant damage-extent
predictors (0, and the mean over the training states' windows) -- to show how much of the overall
IoU is earned.

Throughput (training windows/s on CPU): (a) whole ``fit``: ``n_train_windows x epochs /
training.seconds`` from ``config.json`` (includes reading the cached windows, normaliser fit and
saving); (b) steady state: windows actually seen per epoch (``floor(n_train / batch) x batch``,
the loaders drop the last partial batch) x (epochs - 1) / (wall time between the end of epoch 1
and of the last epoch), the wall times taken from the TensorBoard event file the run writes
(``train/loss_epoch`` events). Each is given as a ratio to the spec2mask network trained in the
same run. The CLI sets ``OMP_NUM_THREADS`` to cores - 1 unless it is set; the threads torch
gets under the CLI are probed in a subprocess and written to the JSON.

The machine may be shared: the 1-min load average is sampled every 5 s during each training and
reported with it. One run, one seed: no repetitions (each model trains for its preset's 30 epochs).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, cli, table, write_results  # noqa: E402
from _common import run_logged as run  # noqa: E402

MODELS = {
    "jsd": "configs/mmvae_bridge_jsd.yaml",
    "poe": "configs/mmvae_bridge_poe.yaml",
    "moe": "configs/mmvae_bridge_moe.yaml",
    "mopoe": "configs/mmvae_bridge_mopoe.yaml",
    "spec2mask": "configs/spec2mask_bridge.yaml",
}
REFERENCE = "spec2mask"
#: Tiny settings for a smoke run (``--smoke``): a few states, 2 epochs, small networks.
SMOKE_OVERRIDES = ["train.max_epochs=2", "model.channels=[8,16]", "model.mask_channels=[4,8]",
                   "model.latent_dim=8", "beta.warmup_steps=5"]


def cli_threads() -> dict:
    """torch's intra-op threads in a process that went through the CLI's thread default."""
    code = ("from latentbridge.cli import _default_threads; _default_threads(); import os, torch; "
            "print(os.environ.get('OMP_NUM_THREADS'), torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO).stdout.split()
    return {"OMP_NUM_THREADS_in_parent": os.environ.get("OMP_NUM_THREADS"),
            "OMP_NUM_THREADS_under_cli": out[0] if out else None,
            "torch_threads_under_cli": int(out[1]) if len(out) > 1 else None, "cpu_count": os.cpu_count()}


def epoch_times(run_dir: Path) -> list[float]:
    """Wall times (s since epoch) of the per-epoch ``train/loss_epoch`` events, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(glob.glob(str(run_dir / "logs" / "tensorboard" / "**" / "events.out.tfevents.*"), recursive=True))
    times = []
    for fn in files:
        ea = EventAccumulator(fn, size_guidance={"scalars": 0})
        ea.Reload()
        if "train/loss_epoch" in ea.Tags().get("scalars", []):
            times += [e.wall_time for e in sorted(ea.Scalars("train/loss_epoch"), key=lambda e: e.step)]
    return times


def nan_check(run_dir: Path) -> dict:
    """Non-finite logged losses in logs/csv/version_0/metrics.csv, and the last train/val loss."""
    path = run_dir / "logs" / "csv" / "version_0" / "metrics.csv"
    bad: dict[str, int] = {}
    last: dict[str, float] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if v in ("", None) or k in ("epoch", "step"):
                    continue
                x = float(v)
                if not math.isfinite(x):
                    bad[k] = bad.get(k, 0) + 1
                last[k] = x
    return {"non_finite": bad, "last_train_loss": last.get("train/loss_epoch"), "last_val_loss": last.get("val/loss")}


def trivial_references(data_root: Path, config_path: str, test_tests: list[str], train_tests: list[str],
                       extra: list[str]) -> dict:
    """Empty-mask predictor and constant damage-extent predictors on the held-out windows."""
    from latentbridge.config import load_config
    from latentbridge.metrics.segmentation import segmentation_summary
    from latentbridge.tasks.multimodal import bridge_data

    cfg = load_config(str(REPO / config_path), [f"data.root={data_root}", *extra])
    data = bridge_data(cfg)
    test = data.subset_tests(test_tests)
    train = data.subset_tests(train_tests)
    lab = np.asarray(test.has_mask, dtype=bool)
    masks = test.masks[lab]
    seg = segmentation_summary(np.zeros_like(masks, dtype=np.float32), masks)
    ext = np.asarray(test.extent, dtype=float)[lab]
    tr_ext = np.asarray(train.extent, dtype=float)
    tr_mean = float(np.nanmean(tr_ext))
    return {
        "n_windows": int(lab.sum()), "n_damaged": seg["n_damaged"], "n_healthy": seg["n_healthy"],
        "empty_mask": {"mask_iou": seg["mean_iou"], "mask_dice": seg["mean_dice"],
                       "mask_damaged_iou": seg["damaged_iou"], "mask_damaged_dice": seg["damaged_dice"],
                       "mask_healthy_fpr": seg["healthy_fpr"]},
        "extent_zero_mae": float(np.abs(ext).mean()),
        "extent_train_mean": tr_mean, "extent_train_mean_mae": float(np.abs(ext - tr_mean).mean()),
        "test_extent_mean": float(ext.mean()), "test_extent_max": float(ext.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--data", help="existing simulated bridge folder (default: generate the default set)")
    ap.add_argument("--epochs", type=int, help="override train.max_epochs (default: the presets' own, 30)")
    ap.add_argument("--keep", help="keep data, runs and evaluations here (default: a temporary folder)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny check of the script: 12 states x 20 s, 2 epochs, small networks (numbers meaningless)")
    ap.add_argument("-o", "--override", action="append", default=[], help="extra config override for every model")
    args = ap.parse_args()

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(models) - set(MODELS)
    if unknown:
        raise SystemExit(f"unknown models: {sorted(unknown)}; choose from {list(MODELS)}")
    extra = list(args.override) + (SMOKE_OVERRIDES if args.smoke else [])
    if args.epochs:
        extra.append(f"train.max_epochs={args.epochs}")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_bridge_"))
    work.mkdir(parents=True, exist_ok=True)
    threads = cli_threads()
    print(f"work folder {work}; threads: {threads}")

    # ---- data
    if args.data:
        data_root, synth_cmd, synth_s = Path(args.data).resolve(), None, None
    else:
        data_root = work / "data"
        synth_cmd = cli("data", "synth", "bridge", "--out", str(data_root), "--force")
        if args.smoke:
            synth_cmd += ["--states", "12"]
        synth_s = run(synth_cmd, work / "synth.log")
        print(f"simulated data → {data_root} ({synth_s:.1f} s)")
    manifest = json.loads((data_root / "manifest.json").read_text())
    states = manifest["states"]
    data_info = {"root": str(data_root), "synth_command": synth_cmd and " ".join(synth_cmd[1:]),
                 "synth_seconds": synth_s, "generator_version": manifest.get("generator_version"),
                 "parameters": manifest.get("parameters"), "n_states": len(states),
                 "n_healthy_states": sum(bool(s.get("healthy")) for s in states)}

    # ---- train + evaluate
    results: dict[str, dict] = {}
    for name in models:
        run_dir, eval_dir = work / "runs" / name, work / "runs" / f"{name}-eval"
        for d in (run_dir, eval_dir):
            shutil.rmtree(d, ignore_errors=True)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        ovr = [f"data.root={data_root}", "train.progress_bar=false", *extra]
        train_cmd = cli("train", "--config", MODELS[name], "--out", str(run_dir), *sum((["-o", o] for o in ovr), []))
        eval_cmd = cli("evaluate", str(run_dir), "--out", str(eval_dir))
        load = os.getloadavg()[0]
        print(f"[{name}] training (load {load:.2f}) ...", flush=True)
        loads: list[float] = []
        train_wall = run(train_cmd, work / f"train_{name}.log", loads)
        eval_wall = run(eval_cmd, work / f"eval_{name}.log")
        info = json.loads((run_dir / "config.json").read_text())
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        d, tr, tcfg = info["data"], info["training"], info["config"]["train"]
        epochs, bs = int(tr["epochs"]), int(tcfg["batch_size"])
        seen_per_epoch = (d["n_train_windows"] // bs) * bs if d["n_train_windows"] > bs else d["n_train_windows"]
        et = epoch_times(run_dir)
        steady = None
        if len(et) >= 3:
            steady = seen_per_epoch * (len(et) - 1) / (et[-1] - et[0])
        results[name] = {
            "train_command": " ".join(train_cmd[1:]), "eval_command": " ".join(eval_cmd[1:]),
            "loadavg_before": load, "loadavg_during_train": loads,
            "loadavg_during_train_mean": float(np.mean(loads)) if loads else None,
            "train_wall_s": train_wall, "eval_wall_s": eval_wall,
            "fit_seconds": tr["seconds"], "epochs": epochs, "global_step": tr["global_step"],
            "best_val_loss": tr["best_val_loss"], "batch_size": bs,
            "n_train_windows": d["n_train_windows"], "n_val_windows": d["n_val_windows"],
            "n_test_windows": d["n_test_windows"], "train_tests": d["train_tests"], "val_tests": d["val_tests"],
            "test_tests": d["test_tests"], "seed": tcfg["seed"], "test_fraction": info["config"]["data"]["test_fraction"],
            "epoch_end_walltimes": et,
            "s_per_epoch_steady": (et[-1] - et[0]) / (len(et) - 1) if len(et) >= 3 else None,
            "throughput_fit": d["n_train_windows"] * epochs / tr["seconds"],
            "throughput_steady": steady, "windows_seen_per_epoch": seen_per_epoch,
            "losses": nan_check(run_dir), "metrics": metrics,
        }
        m = metrics
        print(f"[{name}] {epochs} epochs, fit {tr['seconds']:.1f} s (train cmd {train_wall:.1f} s, eval {eval_wall:.1f} s); "
              f"IoU {m.get('mask_iou')}, damaged IoU {m.get('mask_damaged_iou')}, healthy FPR {m.get('mask_healthy_fpr')}",
              flush=True)

    # ---- same held-out states?
    tests = {n: r["test_tests"] for n, r in results.items()}
    same_tests = len({tuple(t) for t in tests.values()}) == 1
    same_split = len({(tuple(r["train_tests"]), tuple(r["val_tests"])) for r in results.values()}) == 1
    print(f"held-out test lists identical across runs: {same_tests} ({len(next(iter(tests.values())))} states); "
          f"train/val lists identical: {same_split}")
    first = next(iter(results.values()))
    refs = trivial_references(data_root, MODELS[models[0]], first["test_tests"],
                              first["train_tests"], [o for o in extra if o.startswith("vibration.")])

    # ---- tables
    ref = results.get(REFERENCE)
    rows = []
    for name, r in results.items():
        m = r["metrics"]
        rows.append({
            "model": name, "mask_iou": m.get("mask_iou"), "mask_dice": m.get("mask_dice"),
            "damaged_iou": m.get("mask_damaged_iou"), "damaged_dice": m.get("mask_damaged_dice"),
            "healthy_fpr": m.get("mask_healthy_fpr"), "extent_mae": m.get("damage_extent_mae"),
            "si_sdr_db": m.get("waveform_si_sdr_db"), "lsd_db": m.get("log_spectral_distance_db"),
            "fit_s": r["fit_seconds"],
        })
    e = refs["empty_mask"]
    rows.append({"model": "(predict empty mask)", "mask_iou": e["mask_iou"], "mask_dice": e["mask_dice"],
                 "damaged_iou": e["mask_damaged_iou"], "damaged_dice": e["mask_damaged_dice"],
                 "healthy_fpr": e["mask_healthy_fpr"], "extent_mae": refs["extent_train_mean_mae"]})
    fmt = {c: ".3f" for c in ("mask_iou", "mask_dice", "damaged_iou", "damaged_dice", "healthy_fpr")}
    fmt.update({"extent_mae": ".4f", "si_sdr_db": ".2f", "lsd_db": ".2f", "fit_s": ".0f"})
    print(f"\nHeld-out windows: {refs['n_windows']} ({refs['n_damaged']} damaged, {refs['n_healthy']} healthy); "
          f"extent MAE of a constant 0: {refs['extent_zero_mae']:.4f}, of the training mean "
          f"({refs['extent_train_mean']:.4f}): {refs['extent_train_mean_mae']:.4f}")
    print(table(rows, list(rows[0]), fmt))

    trows = []
    for name, r in results.items():
        row = {"model": name, "train_windows": r["n_train_windows"], "epochs": r["epochs"],
               "fit_s": r["fit_seconds"], "win_per_s_fit": r["throughput_fit"],
               "s_per_epoch": r["s_per_epoch_steady"], "win_per_s_steady": r["throughput_steady"]}
        if ref:
            row["x_ref_fit"] = r["throughput_fit"] / ref["throughput_fit"]
            row["x_ref_steady"] = (r["throughput_steady"] / ref["throughput_steady"]
                                   if r["throughput_steady"] and ref["throughput_steady"] else None)
        row["load"] = r["loadavg_during_train_mean"]
        trows.append(row)
    print()
    print(table(trows, list(trows[0]), {"fit_s": ".1f", "win_per_s_fit": ".1f", "s_per_epoch": ".2f",
                                        "win_per_s_steady": ".1f", "x_ref_fit": ".2f", "x_ref_steady": ".2f",
                                        "load": ".2f"}))

    goal = None
    fusions = [n for n in results if n != REFERENCE]
    if ref and fusions:
        best = max(fusions, key=lambda n: results[n]["metrics"].get("mask_iou") or -1)
        best_d = max(fusions, key=lambda n: results[n]["metrics"].get("mask_damaged_iou") or -1)
        rm = ref["metrics"]
        goal = {
            "best_fusion_overall": best, "overall_gap": rm["mask_iou"] - results[best]["metrics"]["mask_iou"],
            "best_fusion_damaged": best_d,
            "damaged_gap": (rm["mask_damaged_iou"] or 0) - (results[best_d]["metrics"]["mask_damaged_iou"] or 0),
        }
        goal["met_overall"] = goal["overall_gap"] <= 0.05
        goal["met_damaged"] = goal["damaged_gap"] <= 0.05
        print(f"\ngoal (best fusion within 0.05 IoU of {REFERENCE}): overall {best} gap {goal['overall_gap']:+.3f} "
              f"-> {'met' if goal['met_overall'] else 'NOT met'}; damaged-only {best_d} gap "
              f"{goal['damaged_gap']:+.3f} -> {'met' if goal['met_damaged'] else 'NOT met'}")
        beat_empty = [n for n in results if (results[n]["metrics"].get("mask_iou") or 0) > e["mask_iou"] + 1e-9]
        goal["models_above_empty_predictor"] = beat_empty
        print(f"overall IoU of the empty-mask predictor: {e['mask_iou']:.3f}; models above it: {beat_empty or 'none'} "
              f"(overall IoU counts healthy windows with empty predictions as 1)")
    for name, r in results.items():
        if r["losses"]["non_finite"]:
            print(f"WARNING {name}: non-finite logged values {r['losses']['non_finite']}")

    write_results("bench_bridge_smoke" if args.smoke else "bench_bridge", {
        "threads": threads, "data": data_info, "overrides": extra, "same_test_lists": same_tests,
        "same_train_val_lists": same_split, "trivial_references": refs, "goal": goal, "models": results,
        "gpu": "not run: no GPU in this session; on a GPU add --accelerator gpu --precision bf16-mixed to each train command",
    })
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
