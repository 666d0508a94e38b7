"""Multimodal latent diffusion vs the multimodal VAEs vs the supervised network, side by side.

Two parts (``--parts``, default both; each runs alone):

``bridge``
    On one simulated bridge set (``latentbridge data synth bridge``: seed 0, 300 damage states x
    20 s, 8 sensors, unless ``--data``), trained and evaluated through the CLI exactly as a user
    would, one after the other:

    * ``mmvae``      configs/mmvae_bridge.yaml (MoE fusion, the default multimodal VAE)
    * ``spec2mask``  configs/spec2mask_bridge.yaml (supervised spectrogram → mask network)
    * ``mld``        configs/mld_bridge.yaml as it is: the latent diffusion model over the latents of
                     its own first stage (a multimodal VAE of the preset above with a KL weight of
                     0.001, trained with the same seed, hence the same split of damage states);
                     its training time is reported with and without the first stage's.

    ``latentbridge evaluate RUN --out RUN-eval`` gives every model's ``mask_iou``,
    ``mask_damaged_iou``, ``mask_dice``, ``mask_healthy_fpr``, ``crack_localisation_error_m``,
    ``crack_missed_rate``, ``crack_false_rate`` on the held-out states in ``RUN/config.json``
    (checked identical across the three runs); MLD adds the PSD distance of vibration generated
    from the true masks.

``digits``
    On the audio-visual test pairs (FSDD official split, MNIST; only the 10,000 MNIST test images
    exist here: a seeded 8,000 / 2,000 split of them): ``configs/avdigits.yaml`` (the audio-visual
    VAE: its ``posterior`` route and its ``bridge`` route, a retrieval of training codes) and
    ``configs/mld_avdigits.yaml``. Both ``evaluate`` commands report the shared keys of
    :mod:`latentbridge.tasks.crossmodal` (coherence both ways, image → wav read by the waveform
    judge beside its ceiling, Fréchet distances, diversity, memorisation). ``--av-run`` /
    ``--mld-run`` reuse trained runs.

Usage (from the repository root)::

    python benchmarks/bench_mld.py                          # both parts at preset size
    python benchmarks/bench_mld.py --parts bridge --keep /tmp/bench_mld
    python benchmarks/bench_mld.py --parts bridge --seeds 0,1,2 --keep /tmp/bench_mld3   # means over 3 seeds
    python benchmarks/bench_mld.py --parts digits --quick-digits   # 600 clips, fewer epochs (not the presets)
    python benchmarks/bench_mld.py --parts digits --quick-digits --keep W --av-run W/runs/digits_avmvae \
        --mld-run W/runs/digits_mld --mld-on-av-epochs 300    # + MLD over the audio-visual VAE's latents
    python benchmarks/bench_mld.py --smoke                  # tiny sizes: checks the script only

The machine may be shared: the 1-min load average is sampled every 5 s during each training. One
run, one seed, unless ``--seeds 0,1,2`` (bridge: every model trained once per seed, which also draws
the split of damage states; the goals are then judged on each model's mean over the seeds, the
standard deviations beside them). Results: ``benchmarks/results/bench_mld[_PARTS][_seeds].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli, table, write_results  # noqa: E402
from _common import run_logged as run  # noqa: E402

BRIDGE_MODELS = {"mmvae": "configs/mmvae_bridge.yaml", "spec2mask": "configs/spec2mask_bridge.yaml",
                 "mld": "configs/mld_bridge.yaml"}
DIGIT_MODELS = {"avmvae": "configs/avdigits.yaml", "mld": "configs/mld_avdigits.yaml"}
FSDD_ROOT, MNIST_ROOT = "../shared/data/fsdd", "../shared/data/mnist"

SMOKE_BRIDGE = {
    "mmvae": ["train.max_epochs=2", "model.channels=[8,16]", "model.mask_channels=[4,8]", "model.latent_dim=8",
              "beta.warmup_steps=5"],
    "spec2mask": ["train.max_epochs=2", "model.channels=[8,16]", "model.mask_channels=[4,8]"],
    "mld": ["train.max_epochs=3", "model.hidden=64", "model.blocks=2", "sampling.steps=10",
            "evaluate.samples_per_condition=2", "evaluate.embedding=pca",
            *[f"first_stage.stages.multimodal.{o}" for o in ("train.max_epochs=2", "model.channels=[8,16]",
                                                           "model.mask_channels=[4,8]", "model.latent_dim=8",
                                                           "beta.warmup_steps=5")]],
}
SMOKE_DIGITS = {
    "avmvae": ["train.max_epochs=1", "digits.limit_train_clips=200", "digits.limit_test_clips=60",
               "digits.pairs_per_clip=1", "model.channels=[8,16,32]", "model.image_channels=[8,16]",
               "model.latent_dim=16"],
    "mld": ["train.max_epochs=2", "digits.limit_train_clips=200", "digits.limit_test_clips=60",
            "digits.pairs_per_clip=1", "model.hidden=64", "model.blocks=2", "sampling.steps=10",
            "first_stage.stages.audio.train.max_epochs=1", "first_stage.stages.image.train.max_epochs=1",
            "first_stage.stages.image.data.limit=1000", "evaluate.diversity_inputs=8",
            "evaluate.samples_per_condition=3"],
}

#: ``--quick-digits``: fewer clips and epochs than the presets (for a shared 2-core machine; not the presets' figures)
QUICK_DIGITS = {
    "avmvae": ["digits.limit_train_clips=600", "digits.limit_test_clips=300", "train.max_epochs=8"],
    "mld": ["digits.limit_train_clips=600", "digits.limit_test_clips=300", "first_stage.stages.audio.train.max_epochs=8",
            "first_stage.stages.image.train.max_epochs=5"],
}
#: (the waveform judge reads the same seeded subset of test pairs for every route: the audio-visual VAE's evaluation
#: takes 600, so the MLD's does too; each route's row gives the ceiling measured on its own subset)


def _o(overrides: list[str]) -> list[str]:
    return [x for o in overrides for x in ("-o", o)]


def train_and_evaluate(name: str, config: str, run_dir: Path, overrides: list[str], work: Path,
                       reuse: bool = False) -> dict:
    """``latentbridge train`` (unless ``reuse``: a trained run) then ``evaluate``; the run's figures."""
    eval_dir = run_dir.parent / f"{run_dir.name}-eval"
    out: dict = {"config": config, "overrides": overrides}
    if not reuse:
        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = cli("train", "--config", config, "--out", str(run_dir), *_o(["train.progress_bar=false", *overrides]))
        loads: list[float] = []
        load0 = os.getloadavg()[0]
        print(f"[{name}] training (load {load0:.2f}) ...", flush=True)
        out.update({"train_command": " ".join(cmd[1:]), "train_wall_s": run(cmd, work / f"train_{name}.log", loads),
                    "loadavg_before": load0, "loadavg_during_train": loads,
                    "loadavg_during_train_mean": sum(loads) / len(loads) if loads else None})
    else:
        out["reused_run"] = str(run_dir)
    shutil.rmtree(eval_dir, ignore_errors=True)
    cmd = cli("evaluate", str(run_dir), "--out", str(eval_dir))
    print(f"[{name}] evaluating ...", flush=True)
    out["eval_command"] = " ".join(cmd[1:])
    out["eval_wall_s"] = run(cmd, work / f"eval_{name}.log")
    info = json.loads((run_dir / "config.json").read_text())
    out.update({"info_data": info.get("data", {}), "training": info.get("training", {}),
                "first_stage": info.get("first_stage"),
                "metrics": json.loads((eval_dir / "metrics.json").read_text())})
    print(f"[{name}] done: fit {out['training'].get('seconds')} s, eval {out['eval_wall_s']:.0f} s", flush=True)
    return out


def _fit_s(r: dict) -> float | None:
    """Training seconds, an MLD run's including its first stage's."""
    s = r["training"].get("seconds")
    fs = r.get("first_stage_fit_s")
    return None if s is None else s + (fs or 0.0)


# ----------------------------------------------------------------------------- bridge


BRIDGE_ROW_KEYS = {"mask_iou": "mask_iou", "damaged_iou": "mask_damaged_iou", "damaged_dice": "mask_damaged_dice",
                   "healthy_fpr": "mask_healthy_fpr", "loc_error_m": "crack_localisation_error_m",
                   "missed": "crack_missed_rate", "false": "crack_false_rate"}


def _bridge_goal(mld: dict, mm: dict, sup: dict) -> dict:
    """The issue's bridge goals on one set of figures (per seed, or their means)."""
    loc = [x.get("loc_error_m") for x in (mld, mm, sup)]
    return {"damaged_iou_at_least_supervised": (mld.get("damaged_iou") or 0) >= (sup.get("damaged_iou") or 0),
            "localisation_beats_both": None if None in loc else loc[0] < min(loc[1:])}


def bridge_seed(args, work: Path, root: Path, seed: int, runs: Path) -> dict:
    """The three models trained with ``train.seed=seed`` (which also draws the split of damage
    states) and evaluated; their rows and goals."""
    results = {}
    for name in ("mmvae", "spec2mask", "mld"):
        ovr = [f"data.root={root}", f"train.seed={seed}", *(SMOKE_BRIDGE[name] if args.smoke else []), *args.override]
        results[name] = train_and_evaluate(f"{name}_s{seed}", BRIDGE_MODELS[name], runs / name, ovr, work)
    results["mld"]["first_stage_fit_s"] = (results["mld"].get("first_stage") or {}).get("seconds")
    tests = {n: tuple(r["info_data"].get("test_tests") or ()) for n, r in results.items()}
    same = len(set(tests.values())) == 1
    print(f"seed {seed}: held-out states identical across the three runs: {same} ({len(tests['mmvae'])} states)")
    rows = []
    for name, r in results.items():
        m = r["metrics"]
        rows.append({"seed": seed, "model": name, **{k: m.get(v) for k, v in BRIDGE_ROW_KEYS.items()},
                     "fit_s": _fit_s(r), "fit_s_own": r["training"].get("seconds")})
    by = {r["model"]: r for r in rows}
    extra = {k: results["mld"]["metrics"].get(k) for k in (
        "psd_distance_db", "psd_distance_db_first_stage", "psd_distance_db_real_train", "psd_distance_db_joint",
        "fd_latent_joint", "fd_latent_real_train")}
    return {"seed": seed, "same_test_states": same, "test_tests": tests["mmvae"], "rows": rows,
            "goal": _bridge_goal(by["mld"], by["mmvae"], by["spec2mask"]), "mld_generation": extra,
            "models": results}


def bridge_part(args, work: Path) -> dict:
    """Every seed of ``--seeds`` (one: the runs in WORK/runs/NAME; several: WORK/runs/seedS/NAME),
    then each model's mean and standard deviation over the seeds, and the goals on the means."""
    if args.data:
        root, synth = Path(args.data).resolve(), None
    else:
        root = work / "bridge_data"
        cmd = cli("data", "synth", "bridge", "--out", str(root), "--force", *(["--states", "16"] if args.smoke else []))
        synth = {"command": " ".join(cmd[1:]), "seconds": run(cmd, work / "synth.log")}
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    per_seed = [bridge_seed(args, work, root, s, work / "runs" / (f"seed{s}" if len(seeds) > 1 else ""))
                for s in seeds]
    rows = [r for p in per_seed for r in p["rows"]]
    fmt = {c: ".3f" for c in BRIDGE_ROW_KEYS} | {"fit_s": ".0f", "fit_s_own": ".0f"}
    print(table(rows, list(rows[0]), fmt))
    means = []
    for name in ("mmvae", "spec2mask", "mld"):
        mine = [r for r in rows if r["model"] == name]
        row: dict = {"model": name, "seeds": len(mine)}
        for k in [*BRIDGE_ROW_KEYS, "fit_s"]:
            v = np.array([r[k] for r in mine if r[k] is not None], dtype=float)
            row[k] = float(v.mean()) if len(v) else None
            row[f"{k}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else None
        means.append(row)
    if len(seeds) > 1:
        print(f"mean over seeds {seeds} (sd: sample standard deviation over the seeds)")
        print(table(means, list(means[0]), {c: ".3f" for c in means[0] if c not in ("model", "seeds")}))
    by = {r["model"]: r for r in means}
    goal = _bridge_goal(by["mld"], by["mmvae"], by["spec2mask"])
    print(f"goals ({'means over ' + str(len(seeds)) + ' seeds' if len(seeds) > 1 else 'one seed'}): MLD damaged IoU "
          f">= supervised: {goal['damaged_iou_at_least_supervised']}; MLD localisation error below MMVAE's and "
          f"supervised's: {goal['localisation_beats_both']}; per seed: {[p['goal'] for p in per_seed]}")
    for p in per_seed:
        print(f"seed {p['seed']} MLD vibration from masks: "
              + ", ".join(f"{k} {v:.3g}" for k, v in p["mld_generation"].items() if v is not None))
    out = {"data_root": str(root), "synth": synth, "seeds": seeds, "rows": rows, "means": means, "goal": goal,
           "per_seed": per_seed}
    if len(seeds) == 1:  # the keys of the one-seed results before --seeds
        out.update(same_test_states=per_seed[0]["same_test_states"], mld_generation=per_seed[0]["mld_generation"],
                   models=per_seed[0]["models"])
    return out


# ----------------------------------------------------------------------------- digits

DIGIT_KEYS = ["coherence_audio_to_image", "coherence_image_to_audio", "coherence_image_to_wav",
              "coherence_image_to_wav_second_judge", "fd_image", "fd_audio", "diversity_image", "diversity_audio",
              "memorisation_image", "memorisation_audio"]


def digits_part(args, work: Path) -> dict:
    roots = [f"digits.fsdd_root={FSDD_ROOT}", f"digits.mnist_root={MNIST_ROOT}"]
    results = {}
    for name, reuse in (("avmvae", args.av_run), ("mld", args.mld_run)):
        size = SMOKE_DIGITS[name] if args.smoke else QUICK_DIGITS[name] if args.quick_digits else []
        ovr = [*roots, *size, *args.override]
        run_dir = Path(reuse) if reuse else work / "runs" / f"digits_{name}"
        results[name] = train_and_evaluate(f"digits_{name}", DIGIT_MODELS[name], run_dir, ovr, work,
                                           reuse=bool(reuse))
        if name == "mld":
            results[name]["first_stage_fit_s"] = (results[name]["first_stage"] or {}).get("seconds")
    if args.mld_on_av_epochs:  # MLD over the audio-visual VAE's own latents (the other first stage the issue names)
        av_run = Path(args.av_run) if args.av_run else work / "runs" / "digits_avmvae"
        keep = [o for o in (QUICK_DIGITS["mld"] if args.quick_digits else []) if not o.startswith("first_stage.")]
        ovr = [*roots, *keep, f"first_stage.run={av_run}", "first_stage.stages={}",
               f"train.max_epochs={args.mld_on_av_epochs}", *args.override]
        results["mld_av"] = train_and_evaluate("digits_mld_av", DIGIT_MODELS["mld"], work / "runs" / "digits_mld_av",
                                               ovr, work)
        results["mld_av"]["first_stage_fit_s"] = results["avmvae"]["training"].get("seconds")
    av, mld = results["avmvae"]["metrics"], results["mld"]["metrics"]
    routes = [("avmvae posterior", av, ""), ("avmvae bridge", av, "_bridge"), ("mld", mld, "")]
    if "mld_av" in results:
        routes.append(("mld over avmvae latents", results["mld_av"]["metrics"], ""))
    rows = []
    for label, m, sfx in routes:
        row = {"route": label}
        for k in DIGIT_KEYS:
            row[k.replace("coherence_", "c_").replace("memorisation", "mem")] = m.get(k + sfx)
        row["ceiling"], row["n_wav"] = m.get("second_judge_ceiling"), m.get("n_image_to_wav")
        rows.append(row)
    if len({r["n_wav"] for r in rows}) > 1:
        print("WARNING: the routes' waveform judge read different numbers of pairs: "
              + ", ".join(f"{r['route']} {r['n_wav']}" for r in rows) + " (compare each with its own ceiling)")
    print(table(rows, list(rows[0]), {c: ".3f" for c in rows[0] if c not in ("route", "n_wav")}))
    refs = {k: mld.get(k, av.get(k)) for k in ("second_judge_ceiling", "second_judge_real_clips", "fd_image_real_floor",
                                               "fd_audio_real_floor", "diversity_image_real", "diversity_audio_real",
                                               "memorisation_image_real", "memorisation_audio_real")}
    print("references (real data): " + ", ".join(f"{k} {v:.3g}" for k, v in refs.items() if v is not None))
    ceiling = mld.get("second_judge_ceiling") or 0.0  # the MLD's own subset's
    goal = {
        "coherence_both_at_least_0.90": min(mld.get("coherence_audio_to_image") or 0,
                                            mld.get("coherence_image_to_audio") or 0) >= 0.90,
        "fd_image_no_worse_than_posterior": (mld.get("fd_image") or 1e9) <= (av.get("fd_image") or 0),
        "diversity_image_above_bridge": (mld.get("diversity_image") or 0) > (av.get("diversity_image_bridge") or 0),
        "second_judge_at_least_90pct_of_ceiling": ceiling > 0 and
        (mld.get("coherence_image_to_wav_second_judge") or 0) >= 0.9 * ceiling,
    }
    print("goals: " + ", ".join(f"{k} {v}" for k, v in goal.items()))
    fit = {n: _fit_s(r) for n, r in results.items()}
    print("training seconds (MLD with its first stages): " + ", ".join(f"{n} {v}" for n, v in fit.items()))
    return {"rows": rows, "references": refs, "goal": goal, "fit_seconds": fit, "models": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="bridge,digits")
    ap.add_argument("--data", help="existing simulated bridge folder (default: generate the default set)")
    ap.add_argument("--seeds", default="0", help="bridge: train.seed of every model, comma-separated (it also draws "
                                                 "the split of damage states); several: means and sds over them")
    ap.add_argument("--av-run", help="trained configs/avdigits.yaml run to reuse")
    ap.add_argument("--mld-run", help="trained configs/mld_avdigits.yaml run to reuse")
    ap.add_argument("--keep", help="keep data, runs and evaluations here (default: a temporary folder)")
    ap.add_argument("--mld-on-av-epochs", type=int, default=0,
                    help="also train MLD over the audio-visual VAE's latents (first_stage.run) for this many epochs")
    ap.add_argument("--quick-digits", action="store_true",
                    help=f"digits part with fewer clips and epochs than the presets: {QUICK_DIGITS}")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script only (numbers meaningless)")
    ap.add_argument("-o", "--override", action="append", default=[], help="extra override for every model")
    ap.add_argument("--suffix", default="", help="results file name suffix (keeps an earlier run's file)")
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if set(parts) - {"bridge", "digits"}:
        raise SystemExit(f"--parts: bridge and/or digits, got {parts}")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_mld_"))
    (work / "runs").mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}")
    out: dict = {"smoke": args.smoke, "quick_digits": args.quick_digits, "overrides": args.override}
    t0 = time.time()
    for part in parts:
        out[part] = (bridge_part if part == "bridge" else digits_part)(args, work)
    out["wall_s"] = time.time() - t0
    name = "bench_mld" + ("_smoke" if args.smoke else "_quick" if args.quick_digits else "") + ("" if set(parts) == {"bridge", "digits"} else
                                                               "_" + "_".join(parts))
    name += "_seeds" if "bridge" in parts and len(out["bridge"]["seeds"]) > 1 else ""
    write_results(name + args.suffix, out)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
