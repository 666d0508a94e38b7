"""The bridge models' held-out figures over seeds, from their `latentbridge evaluate` folders: per seed, mean and sample
standard deviation, and the issue's two goals judged on the means (the MLD's damaged-state IoU at least the supervised
network's; its crack localisation error below both references').

    python benchmarks/bridge_seeds_table.py --seeds 0,1,2,3,4 --model mld=EV/mld_s{S} \\
        --model multimodal=EV/multimodal_s{S} --model supervised=EV/supervised_s{S} --suffix _session41

Each ``EV/..._s{S}`` is the folder `latentbridge evaluate RUN --out` wrote for seed S (``{S}`` replaced). Results:
``benchmarks/results/bridge_seeds_table<suffix>.json``. No model is trained or run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402

KEYS = ("mask_damaged_iou", "crack_localisation_error_m", "mask_iou", "mask_healthy_fpr", "crack_missed_rate",
        "crack_false_rate", "mask_damaged_iou_full_size", "mask_threshold")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--model", action="append", required=True, help="NAME=FOLDER pattern with {S} for the seed")
    ap.add_argument("--suffix", default="")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    per, rows = {}, []
    for item in args.model:
        name, _, pattern = item.partition("=")
        got = [json.loads((Path(pattern.format(S=s)) / "metrics.json").read_text()) for s in seeds]
        per[name] = {k: [m.get(k) for m in got] for k in KEYS}
        row = {"model": name}
        for k in KEYS:
            v = np.array([np.nan if x is None else x for x in per[name][k]], dtype=float)
            row[k] = f"{np.nanmean(v):.3f} ± {np.nanstd(v, ddof=1):.3f}"
            row[f"{k}_seeds"] = " / ".join(f"{x:.3f}" for x in v)
        rows.append(row)
    print(table(rows, ["model", "mask_damaged_iou_seeds", "mask_damaged_iou", "crack_localisation_error_m_seeds",
                       "crack_localisation_error_m", "mask_iou", "mask_healthy_fpr", "crack_missed_rate",
                       "crack_false_rate", "mask_damaged_iou_full_size"]))
    mean = {n: {k: float(np.nanmean(np.array(v[k], dtype=float))) for k in KEYS} for n, v in per.items()}
    goals = {}
    if {"mld", "supervised", "multimodal"} <= set(mean):
        goals = {"damaged_iou_at_least_supervised": mean["mld"]["mask_damaged_iou"]
                 >= mean["supervised"]["mask_damaged_iou"],
                 "localisation_below_both": mean["mld"]["crack_localisation_error_m"]
                 < min(mean["supervised"]["crack_localisation_error_m"],
                       mean["multimodal"]["crack_localisation_error_m"])}
        print("goals on the means:", goals)
    write_results(f"bridge_seeds_table{args.suffix}", {"seeds": seeds, "per_seed": per, "means": mean, "goals": goals})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
