"""Trained bridge runs re-read with the library's current mask-threshold calibration.

The crack-probability threshold of a bridge model (the multimodal VAE, the supervised network, the MLD) is
chosen once training is over, on the labelled validation windows (best pooled IoU over
``latentbridge.metrics.segmentation.THRESHOLDS``), and stored in the run. Training does not depend on it, so a
change of the calibration can be measured on trained runs without training them again: for every run this
script recomputes the threshold as ``train`` now would (``calibrate_mask_threshold``; for MLD runs
``calibrate_bridge_threshold``, which samples the validation windows with the run's sampler) and reports the
held-out metrics of ``evaluate`` at the stored and at the recalibrated threshold, then each model's mean over
the seeds.

    python benchmarks/bridge_recalibrate.py W --seeds 0,1,2,3,4 --suffix _five   # W: bench_mld.py --keep W

Results: ``benchmarks/results/bridge_recalibrate<suffix>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402

KEYS = ("mask_iou", "mask_damaged_iou", "mask_healthy_fpr", "crack_localisation_error_m", "crack_missed_rate",
        "crack_false_rate")
MODELS = ("mmvae", "spec2mask", "mld")


def probabilities(run: Path):
    """(held-out crack probabilities, held-out masks, span in metres, a function that calibrates the threshold)."""
    import latentbridge.tasks.multimodal as mm
    from latentbridge.models.hub import load_model

    info = json.loads((run / "config.json").read_text())
    lab = lambda d: np.asarray(d.has_mask, dtype=bool)  # noqa: E731
    if info["config"]["task"] == "mld":
        from latentbridge.tasks.mld import bridge_splits, load_run, sampler_settings
        from latentbridge.tasks.mld_eval import calibrate_bridge_threshold, mask_probabilities

        saved, stages = load_run(run)
        cfg, model = saved.workflow, saved.model.eval()
        _, _, test = bridge_splits(stages, None)  # calibrate_bridge_threshold reads the validation windows
        span = mm.span_of(stages.workflow("multimodal"), info["data"]["root"])
        prob = mask_probabilities(model, stages, test.waves[lab(test)], cfg.evaluate.samples_per_condition,
                                  sampler_settings(cfg))
        return prob, test.masks[lab(test)], span, lambda: calibrate_bridge_threshold(model, stages, cfg, info["data"])
    saved = load_model(run)
    cfg, model = saved.workflow, saved.model.eval()
    data = mm.bridge_data(cfg, info["data"]["root"])
    val, test = data.subset_tests(info["data"]["val_tests"]), data.subset_tests(info["data"]["test_tests"])
    prob = mm.predict(model, test)["mask_prob"][lab(test)]
    return prob, test.masks[lab(test)], mm.span_of(cfg, info["data"]["root"]), lambda: mm.calibrate_mask_threshold(model, val)


def run_args(argv, description: str) -> argparse.Namespace:
    """The arguments of the scripts that read a ``bench_mld.py --keep`` folder's runs: ``work``, ``seeds`` (a list of
    ints), ``suffix``; torch on one thread."""
    import torch

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("work", help="a bench_mld.py --keep folder (runs/seedS/{mmvae,spec2mask,mld})")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--suffix", default="")
    args = ap.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    torch.set_num_threads(1)
    return args


def main(argv=None) -> int:
    args = run_args(argv, __doc__.split("\n")[0])
    from latentbridge.metrics.segmentation import THRESHOLDS, mask_metrics

    rows = []
    for seed in args.seeds:
        for name in MODELS:
            run = Path(args.work) / "runs" / f"seed{seed}" / name
            stored = json.loads((run / "config.json").read_text())["mask_threshold"]["threshold"]
            prob, masks, span, calibrate = probabilities(run)
            new = calibrate()["threshold"]
            for grid, thr in (("stored", stored), ("recalibrated", new)):
                m = mask_metrics(prob, masks, thr, span)
                rows.append({"seed": seed, "model": name, "threshold": grid, "value": thr,
                             **{k: round(float(m[k]), 4) for k in KEYS}})
                print(json.dumps(rows[-1]), flush=True)
    means = []
    for name in MODELS:
        for grid in ("stored", "recalibrated"):
            mine = [r for r in rows if r["model"] == name and r["threshold"] == grid]
            means.append({"model": name, "threshold": grid, "seeds": len(mine),
                          **{k: round(float(np.mean([r[k] for r in mine])), 4) for k in KEYS}})
    print(table(means, ["model", "threshold", "seeds", *KEYS], {k: ".3f" for k in KEYS}))
    write_results("bridge_recalibrate" + args.suffix, {"work": args.work, "thresholds_now": list(THRESHOLDS),
                                                       "rows": rows, "means": means})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
