"""Bridge runs read at every crack-probability threshold: localisation against false cracks, per model.

A model's crack localisation error (``crack_localisation_error_m``: for each true crack, the distance to the nearest
predicted one) falls as its mask predicts more cracks, and the false-crack share rises with it; each model is
reported at the threshold its validation windows pick (best pooled IoU). This script sweeps the threshold over
``latentbridge.metrics.segmentation.THRESHOLDS`` on the held-out windows of each run (the multimodal VAE, the supervised
network, the MLD; the MLD's masks sampled as ``evaluate`` samples them) and reports, per threshold and as the mean
over the seeds, the localisation error, the false and missed shares and the damaged-state IoU, beside each model's
own calibrated operating point — so the models can be compared at equal false-crack shares as well as where their
calibration puts them.

    python benchmarks/bridge_operating_curve.py W --seeds 0,1,2,3,4 --suffix _five   # W: bench_mld.py --keep W

Results: ``benchmarks/results/bridge_operating_curve<suffix>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402
from bridge_recalibrate import MODELS, probabilities, run_args  # noqa: E402

KEYS = ("crack_localisation_error_m", "crack_false_rate", "crack_missed_rate", "mask_damaged_iou")


def interpolate_at(false_rates: np.ndarray, values: np.ndarray, at: float) -> float:
    """``values`` at the false-crack share ``at``, linear between the thresholds around it (NaN outside)."""
    order = np.argsort(false_rates)
    return float(np.interp(at, false_rates[order], values[order], left=np.nan, right=np.nan))


def main(argv=None) -> int:
    args = run_args(argv, __doc__.split("\n")[0])
    from latentbridge.metrics.segmentation import THRESHOLDS, mask_metrics

    seeds = args.seeds
    rows, own = [], []
    for seed in seeds:
        for name in MODELS:
            run = Path(args.work) / "runs" / f"seed{seed}" / name
            stored = json.loads((run / "config.json").read_text())["mask_threshold"]["threshold"]
            prob, masks, span, _ = probabilities(run)
            m = mask_metrics(prob, masks, stored, span)  # the calibrated point, and the curve (evaluate's)
            row = lambda r, thr: {"seed": seed, "model": name, "threshold": thr,  # noqa: E731
                                  **{k: None if r[k] is None else round(float(r[k]), 4) for k in KEYS}}
            own.append(row(m, stored))
            rows += [row(r, r["threshold"]) for r in m["crack_operating_curve"]]
            print(f"seed {seed} {name}: calibrated threshold {stored}", flush=True)
    mean = lambda rs, k: float(np.nanmean([np.nan if r[k] is None else r[k] for r in rs]))  # noqa: E731
    curve = [{"model": name, "threshold": t, **{k: round(mean([r for r in rows if r["model"] == name
                                                                and r["threshold"] == t], k), 4) for k in KEYS}}
             for name in MODELS for t in THRESHOLDS]
    points = [{"model": name, "threshold": "calibrated (own)",
               **{k: round(mean([r for r in own if r["model"] == name], k), 4) for k in KEYS}} for name in MODELS]
    # each model's localisation at the false-crack shares the others' calibrations reach (per seed, then the mean)
    at_false = []
    for name in MODELS:
        for other in points:
            vals = []
            for seed in seeds:
                mine = [r for r in rows if r["model"] == name and r["seed"] == seed]
                f = np.array([r["crack_false_rate"] for r in mine], dtype=float)
                loc = np.array([np.nan if r["crack_localisation_error_m"] is None else r["crack_localisation_error_m"]
                                for r in mine], dtype=float)
                target = [r for r in own if r["model"] == other["model"] and r["seed"] == seed][0]["crack_false_rate"]
                vals.append(interpolate_at(f, loc, target))
            at_false.append({"model": name, "at the false share of": other["model"],
                             "crack_localisation_error_m": round(float(np.nanmean(vals)), 4)})
    print(table(curve + points, ["model", "threshold", *KEYS], {k: ".3f" for k in KEYS}))
    print(table(at_false, ["model", "at the false share of", "crack_localisation_error_m"],
                {"crack_localisation_error_m": ".3f"}))
    write_results("bridge_operating_curve" + args.suffix, {"work": args.work, "seeds": seeds, "rows": rows,
                                                           "calibrated": own, "curve": curve, "points": points,
                                                           "localisation_at_equal_false_share": at_false})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
