"""Detection quality: every detector x every task, adaptive settings vs the old fixed ones, in one run.

Detectors (each fitted the way a user would, through ``latentbridge anomaly fit`` / ``anomaly score``
run in-process by ``latentbridge.cli.main``; ``train.seed=0``; one torch thread):

=============  ==============================================  =========================================
name           fit                                             scores read (``anomaly score --score``)
=============  ==============================================  =========================================
``default``    ``anomaly fit DIR`` with no options (the        ``knn`` (its own: **the default**)
               default: ``knn_stats`` with the level as one
               feature of its own, closed form)
``vae``        ``-o model.name=conv_vae`` (conv VAE,           ``mse`` (its own), ``latent_mahalanobis``,
               30 epochs; the default before this benchmark)   ``latent_knn``, ``combined``
``ae``         ``-o model.name=conv_ae``                       ``mse``
``vae_synth``  ``-o model.name=conv_vae``                      ``aux``, ``combined``
               ``-o anomaly.synthetic_anomalies=1.0``
``pca``        ``--config configs/anomaly_pca.yaml``           ``mse``
``gauss``      ``--config configs/anomaly_gaussian_stats.yaml`` ``mahalanobis``
``knn``        ``--config configs/anomaly_knn_stats.yaml``     ``knn``
``dcase``      ``--config configs/dcase2020_baseline.yaml``    ``mse`` (its recipe: 100 epochs)
=============  ==============================================  =========================================

Modes: ``adaptive`` (as above: audio and feature settings not set by a preset are chosen from the
survey of the training files) and ``fixed`` (``-o audio.auto=false``: the former fixed settings —
16 kHz, 2-s windows, hop 1 s, wrap padding, n_fft 1024, hop 512, 64 mel bands, no trimming — except
what a preset sets itself).

Tasks: see ``_detection_tasks.py`` (synthetic machine set, two FSDD speaker tasks, an unseen speaker
among known ones, faint faults in long recordings, faults under gain changes).

Figures: file-level AUC and pAUC (max FPR 0.1, DCASE's McClish-standardised definition) of each
``scores.csv``, with 95 % percentile bootstrap intervals over 1,000 stratified resamples of the test
files — the same resamples for every detector of a task, so that differences are paired. "Best" is
the highest AUC among the adaptive rows of a task; the default passes a task when it is the best or
its AUC lies inside the best's interval, and it is never below PCA (adaptive, point estimates).

Each (task, mode) is a unit run in its own process (``--jobs`` at a time); a unit whose results JSON
exists under ``--work`` is not run again, so an interrupted run resumes. The parent then gathers
every unit into the tables and ``results/bench_detection.json`` (``results/bench_detection_partial.json``
when only some detectors, modes or tasks were asked for).

    python benchmarks/bench_detection.py --work /tmp/det_work --jobs 2
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, table, write_results  # noqa: E402
from _detection_tasks import TASKS, build  # noqa: E402

DETECTORS: dict[str, tuple[str | None, list[str], list[str]]] = {
    "default": (None, [], ["knn"]),
    "vae": (None, ["model.name=conv_vae"], ["mse", "latent_mahalanobis", "latent_knn", "combined"]),
    "ae": (None, ["model.name=conv_ae"], ["mse"]),
    "vae_synth": (None, ["model.name=conv_vae", "anomaly.synthetic_anomalies=1.0"], ["aux", "combined"]),
    "pca": ("anomaly_pca.yaml", [], ["mse"]),
    "gauss": ("anomaly_gaussian_stats.yaml", [], ["mahalanobis"]),
    "knn": ("anomaly_knn_stats.yaml", [], ["knn"]),
    "dcase": ("dcase2020_baseline.yaml", [], ["mse"]),
}
DEFAULT = "default/knn"
MODES = {"adaptive": [], "fixed": ["audio.auto=false"]}
N_BOOT = 1000


def quiet() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


# ----------------------------------------------------------------------------- one unit (task, mode)


def file_scores(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        return {r["path"]: float(r["score"]) for r in csv.DictReader(f) if r["level"].startswith("file")}


def run_unit(task_name: str, mode: str, data: Path, work: Path, cache: Path, detectors: list[str],
             epochs: int | None) -> dict:
    import torch

    from latentbridge.cli import main as cli

    torch.set_num_threads(1)
    task = build(task_name, data)
    unit = work / task_name / mode
    out = {"task": task_name, "mode": mode, "description": task.description, "detectors": {}}
    for name in detectors:
        preset, extra, scores = DETECTORS[name]
        mdir = unit / name / "model"
        ov = [f"data.cache_dir={cache}", "train.seed=0", "train.progress_bar=false", "train.accelerator=cpu",
              *MODES[mode], *extra, *([f"train.max_epochs={epochs}"] if epochs and name != "dcase" else [])]
        args = ["anomaly", "fit", str(task.train), "--out", str(mdir), "--force", "--skip-bad"]
        args += ["--config", str(REPO / "configs" / preset)] if preset else []
        for o in ov:
            args += ["-o", o]
        print(f"[{task_name}/{mode}] latentbridge {' '.join(args)}", flush=True)
        t0 = time.perf_counter()
        err = io.StringIO()
        with contextlib.redirect_stderr(Tee(err)):
            rc = cli(args)
        fit_s = time.perf_counter() - t0
        if rc != 0:  # e.g. no usable training file under these settings: a result of its own
            out["detectors"][name] = {"command": "latentbridge " + " ".join(args), "failed": err.getvalue()[-600:]}
            continue
        info = json.loads((mdir / "config.json").read_text())
        settings = {k: info["config"][s][k.split(".")[1]] for s in ("audio", "features")
                    for k in (f"{s}.{x}" for x in info["config"][s]) if k in SHOWN}
        rows, failed = {}, {}
        for score in scores:
            sdir = unit / name / f"scores_{score}"
            err = io.StringIO()
            with contextlib.redirect_stderr(Tee(err)):
                rc = cli(["anomaly", "score", str(mdir), str(task.test), "--labels", "auto", "--out", str(sdir),
                          "--force", "--skip-bad", "--score", score])
            if rc != 0:
                failed[score] = err.getvalue()[-600:]
            else:
                rows[score] = file_scores(sdir / "scores.csv")
        out["detectors"][name] = {"command": "latentbridge " + " ".join(args), "fit_s": round(fit_s, 1),
                                  "epochs": info["training"].get("epochs"), "settings": settings,
                                  "n_train_files": info["data"]["n_train_files"],
                                  "n_skipped_train_files": len(info["data"]["skipped_files"]),
                                  "n_train_windows": info["data"]["n_train_windows"], "scores": rows,
                                  "score_failed": failed}
    return out


class Tee(io.TextIOBase):
    """stderr to the log and to a buffer (the one-line error of a failed command is kept)."""

    def __init__(self, buf):
        self.buf = buf

    def write(self, s):
        sys.__stderr__.write(s)
        return self.buf.write(s)


#: audio/feature settings recorded per model
SHOWN = ("audio.sample_rate", "audio.window_s", "audio.hop_s", "audio.pad", "audio.trim_db", "features.n_fft",
         "features.hop_length", "features.n_mels")


# ----------------------------------------------------------------------------- gathering


def analyse(units: list[dict]) -> dict:
    """Per task: every (mode, detector/score) row with AUC/pAUC and bootstrap intervals. Rows scored on
    the same files share their resamples (paired); a row whose settings could not use every test file
    (``--skip-bad``) is evaluated on the files it scored, and said so (``n_files``)."""
    from latentbridge.metrics.anomaly import bootstrap_indices, partial_auc, roc_auc

    tasks: dict[str, dict] = {}
    for u in units:
        t = tasks.setdefault(u["task"], {"description": u["description"], "rows": [], "settings": {}, "failed": {},
                                         "fixed_same_as_adaptive": False})
        t["fixed_same_as_adaptive"] |= bool(u.get("same_as_adaptive"))
        for name, d in u["detectors"].items():
            if "failed" in d:
                t["failed"][f"{u['mode']}/{name}"] = d["failed"]
                continue
            t["settings"][f"{u['mode']}/{name}"] = {**d["settings"], "n_train_files": d["n_train_files"],
                                                    "n_skipped_train_files": d["n_skipped_train_files"]}
            for score, why in d["score_failed"].items():
                t["failed"][f"{u['mode']}/{name}/{score}"] = why
            for score, fs in d["scores"].items():
                t["rows"].append({"mode": u["mode"], "detector": f"{name}/{score}", "fit_s": d["fit_s"], "files": fs})
    out = {}
    for name, t in tasks.items():
        all_paths = sorted({p for r in t["rows"] for p in r["files"]})
        resamples: dict[tuple, np.ndarray] = {}
        rows = []
        for r in t["rows"]:
            paths = tuple(sorted(r["files"]))
            y = np.array([Path(p).parent.name == "anomalous" for p in paths], dtype=int)
            s = np.array([r["files"][p] for p in paths])
            if paths not in resamples:
                resamples[paths] = bootstrap_indices(y, N_BOOT, seed=0)
            idx = resamples[paths]
            boot = {m: np.array([fn(y[i], s[i]) for i in idx]) for m, fn in (("auc", roc_auc), ("pauc", partial_auc))}
            row = {"mode": r["mode"], "detector": r["detector"], "auc": roc_auc(y, s), "pauc": partial_auc(y, s),
                   "n_files": len(paths), "n_anomalous": int(y.sum()), "fit_s": r["fit_s"], "_boot": boot,
                   "_paths": paths, "_s": s}
            for m in ("auc", "pauc"):
                row[f"{m}_ci"] = [float(v) for v in np.quantile(boot[m], [0.025, 0.975])]
            rows.append(row)
        complete = [r for r in rows if r["mode"] == "adaptive" and len(r["_paths"]) == len(all_paths)]
        verdict = None
        if complete:
            best = max(complete, key=lambda r: r["auc"])
            for r in rows:  # paired difference to the best adaptive row, where scored on the same files
                r["auc_gap_to_best_ci"] = ([float(v) for v in np.quantile(best["_boot"]["auc"] - r["_boot"]["auc"],
                                                                          [0.025, 0.975])]
                                           if r["_paths"] == best["_paths"] else None)
            default = next((r for r in complete if r["detector"] == DEFAULT), None)
            pca = next((r for r in complete if r["detector"] == "pca/mse"), None)
            if default is not None:
                verdict = {"best": best["detector"], "best_auc": best["auc"], "best_auc_ci": best["auc_ci"],
                           "default_auc": default["auc"], "default_auc_ci": default["auc_ci"],
                           "default_is_best_or_inside_best_ci": bool(default["auc"] >= best["auc_ci"][0]),
                           "paired_gap_ci": default["auc_gap_to_best_ci"],
                           "pca_auc": pca["auc"] if pca else None,
                           "default_not_below_pca": bool(pca is None or default["auc"] >= pca["auc"])}
        survey = survey_gain(rows)
        out[name] = {"description": t["description"], "n_files": len(all_paths),
                     "fixed_same_as_adaptive": t["fixed_same_as_adaptive"],
                     "n_anomalous": int(sum(Path(p).parent.name == "anomalous" for p in all_paths)),
                     "settings": t["settings"], "failed": t["failed"], "verdict": verdict, "survey_buys": survey,
                     "rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
                     "file_scores": {r["mode"] + "/" + r["detector"]: dict(zip(r["_paths"], map(float, r["_s"])))
                                     for r in rows}}
    return out


def survey_gain(rows: list[dict]) -> list[dict]:
    """Per detector/score: adaptive vs fixed AUC, both on the files the fixed settings could use."""
    from latentbridge.metrics.anomaly import roc_auc

    out = []
    for f in (r for r in rows if r["mode"] == "fixed"):
        a = next((r for r in rows if r["mode"] == "adaptive" and r["detector"] == f["detector"]), None)
        if a is None or not set(f["_paths"]) <= set(a["_paths"]):
            continue
        pos = {p: i for i, p in enumerate(a["_paths"])}
        y = np.array([Path(p).parent.name == "anomalous" for p in f["_paths"]], dtype=int)
        a_same = roc_auc(y, a["_s"][[pos[p] for p in f["_paths"]]])
        out.append({"detector": f["detector"], "fixed_auc": f["auc"], "adaptive_auc_same_files": a_same,
                    "adaptive_auc_all_files": a["auc"], "n_files_fixed": f["n_files"],
                    "n_files_adaptive": a["n_files"]})
    return out


def cell(r: dict, m: str, n_all: int) -> str:
    lo, hi = r[f"{m}_ci"]
    return f"{r[m]:.2f} [{lo:.2f}, {hi:.2f}]" + ("" if r["n_files"] == n_all else f" n={r['n_files']}")


def print_tables(res: dict) -> None:
    names = list(res)
    for mode in MODES:
        for m in ("auc", "pauc"):
            dets = list(dict.fromkeys(r["detector"] for t in res.values() for r in t["rows"] if r["mode"] == mode))
            rows = []
            for d in dets:
                row = {"detector": d + (" (default)" if d == DEFAULT else "")}
                for t in names:
                    hit = [r for r in res[t]["rows"] if r["mode"] == mode and r["detector"] == d]
                    row[t] = cell(hit[0], m, res[t]["n_files"]) if hit else "failed"
                rows.append(row)
            print(f"\n{m.upper()} [95 % bootstrap interval], {mode} settings (n=: files the settings could use)")
            print(table(rows, ["detector", *names]))
    print("\nDefault vs best (adaptive):")
    for t, v in res.items():
        x = v["verdict"]
        if x:
            print(f"  {t}: best {x['best']} {x['best_auc']:.3f} [{x['best_auc_ci'][0]:.3f}, {x['best_auc_ci'][1]:.3f}], "
                  f"default {x['default_auc']:.3f}; inside: {x['default_is_best_or_inside_best_ci']}; paired gap "
                  f"CI {np.round(x['paired_gap_ci'], 3).tolist()}; PCA "
                  f"{'not run' if x['pca_auc'] is None else round(x['pca_auc'], 3)}; not below PCA: "
                  f"{x['default_not_below_pca']}")
    print("\nWhat the survey buys (AUC, fixed vs adaptive on the files the fixed settings could use):")
    for t, v in res.items():
        if v["fixed_same_as_adaptive"]:
            print(f"  {t}: the survey chose the fixed settings themselves (same models, same figures)")
            continue
        for s in v["survey_buys"]:
            print(f"  {t} {s['detector']}: fixed {s['fixed_auc']:.3f} (n={s['n_files_fixed']}) -> adaptive "
                  f"{s['adaptive_auc_same_files']:.3f} on those files, {s['adaptive_auc_all_files']:.3f} on all "
                  f"{s['n_files_adaptive']}")
        for k, why in v["failed"].items():
            print(f"  {t} {k}: failed: {why.strip().splitlines()[-1] if why.strip() else '?'}")


# ----------------------------------------------------------------------------- driver


def fixed_equals_adaptive(task) -> bool:
    """Whether the survey of the task's training files chooses exactly the fixed defaults (then every
    detector gets the same config in both modes, and the fixed unit need not be run)."""
    from latentbridge.config.sections import AudioConfig, FeatureConfig
    from latentbridge.data.survey import survey_files
    from latentbridge.io import list_audio_files
    from latentbridge.tasks.adapt import choose_settings

    defaults = {"audio": AudioConfig(), "features": FeatureConfig()}
    choices = choose_settings(survey_files(list_audio_files(task.train)))
    return all(getattr(defaults[c.key.split(".")[0]], c.key.split(".")[1]) == c.value for c in choices)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    ap.add_argument("--work", default="/tmp/det_work", help="models, scores and per-unit results (kept)")
    ap.add_argument("--data", default="/tmp/det_data", help="generated data sets and FSDD symlink farms")
    ap.add_argument("--jobs", type=int, default=1, help="units run at the same time")
    ap.add_argument("--epochs", type=int, help="train.max_epochs of the gradient-trained detectors except "
                                                "dcase (default: the defaults', 30)")
    ap.add_argument("--unit", nargs=2, metavar=("TASK", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    quiet()
    work, data = Path(args.work), Path(args.data)
    cache = work / "cache"
    dets = [d for d in args.detectors.split(",") if d]
    if args.unit:
        task, mode = args.unit
        res = run_unit(task, mode, data, work, cache, dets, args.epochs)
        (work / f"unit_{task}_{mode}.json").write_text(json.dumps(res))
        return 0
    t0 = time.time()
    load0 = os.getloadavg()
    units = [(t, m) for t in args.tasks.split(",") for m in args.modes.split(",")]
    for t, _ in units:  # data first, in this process (units of one task share it)
        if build(t, data) is None:
            units = [u for u in units if u[0] != t]
    same = {t for t, m in units if m == "fixed" and fixed_equals_adaptive(build(t, data))}
    for t in sorted(same):
        print(f"{t}: the survey chooses the fixed settings themselves: the fixed unit is the adaptive one")
    todo = [u for u in units if not (work / f"unit_{u[0]}_{u[1]}.json").exists()
            and not (u[1] == "fixed" and u[0] in same)]
    running: list[tuple[subprocess.Popen, tuple]] = []
    work.mkdir(parents=True, exist_ok=True)
    while todo or running:
        while todo and len(running) < args.jobs:
            t, m = todo.pop(0)
            cmd = [sys.executable, __file__, "--unit", t, m, "--work", str(work), "--data", str(data),
                   "--detectors", ",".join(dets), *(["--epochs", str(args.epochs)] if args.epochs else [])]
            log = open(work / f"unit_{t}_{m}.log", "w")
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), (t, m)))
            print(f"started {t}/{m}", flush=True)
        time.sleep(5)
        for p, u in list(running):
            if p.poll() is not None:
                running.remove((p, u))
                print(f"finished {u[0]}/{u[1]} (rc {p.returncode}) at {time.time() - t0:.0f} s", flush=True)
                if p.returncode != 0:
                    raise SystemExit(f"unit {u} failed: see {work}/unit_{u[0]}_{u[1]}.log")
    found = []
    for t, m in units:
        if m == "fixed" and t in same:
            u = json.loads((work / f"unit_{t}_adaptive.json").read_text())
            found.append({**u, "mode": "fixed", "same_as_adaptive": True})
        else:
            found.append(json.loads((work / f"unit_{t}_{m}.json").read_text()))
    res = analyse(found)
    print_tables(res)
    seconds = round(time.time() - t0, 1)
    print(f"\ntotal {seconds:.0f} s (units already done under --work are not rerun)")
    whole = (set(dets) == set(DETECTORS) and set(args.modes.split(",")) == set(MODES)
             and set(args.tasks.split(",")) == set(TASKS))
    # a partial run (some detectors, modes or tasks) never replaces the full run's results
    write_results("bench_detection" if whole else "bench_detection_partial", {
        "detectors": {k: {"config": v[0], "overrides": v[1], "scores": v[2]} for k, v in DETECTORS.items()},
        "default": DEFAULT, "modes": MODES, "n_boot": N_BOOT, "loadavg_at_start": load0,
        "loadavg_at_end": os.getloadavg(), "seconds": seconds, "tasks": res})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
