"""What the mask grid costs: bridge runs' IoU on the model's grid and at the labels' own size, beside the grid's best.

A bridge model predicts crack masks on its grid (``vibration.mask_height`` x ``mask_width``, 32 x 96 by default): the
labels (e.g. 512 x 1536) shrunk by area averaging. ``evaluate`` also scores the predictions brought back to the labels'
size (bilinear, then thresholded: ``mask_iou_full_size``, ``mask_damaged_iou_full_size``). This script reads those
figures from each run's evaluation and adds the grid at its best: the held-out windows' own grid targets, taken as
predictions, brought to the labels' size the same way. No model is trained.

    python benchmarks/bridge_full_size.py RUN[:EVAL] ...   # EVAL: the run's `latentbridge evaluate` folder (RUN-eval)

Results: ``benchmarks/results/bridge_full_size<suffix>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402

KEYS = ("mask_iou", "mask_iou_full_size", "mask_damaged_iou", "mask_damaged_iou_full_size")


def ceiling(run: Path) -> dict:
    """The full-size IoUs of the run's held-out windows' grid targets (a perfect prediction on the grid)."""
    from latentbridge.data.bridge import full_size_scores
    from latentbridge.models.hub import load_model
    from latentbridge.tasks.multimodal import bridge_windows

    saved = load_model(run)
    held_out, root = saved.info["data"]["test_tests"], saved.info["data"]["root"]  # (the run's own, as evaluate)
    if saved.workflow.task == "mld":  # its windows as its multimodal first stage reads them
        saved = load_model(run / "first_stage" / "multimodal")
    data = bridge_windows(saved, root, None).subset_tests(held_out)
    lab = np.asarray(data.has_mask, bool)
    return full_size_scores(data, data.masks[lab], lab, root, saved.workflow.vibration, 0.5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="RUN or RUN:EVAL (default EVAL: RUN-eval)")
    ap.add_argument("--suffix", default="")
    args = ap.parse_args(argv)
    rows = []
    for item in args.runs:
        run, _, ev = item.partition(":")
        m = json.loads((Path(ev or f"{run}-eval") / "metrics.json").read_text())
        top = ceiling(Path(run))
        rows.append({"run": run, **{k: m.get(k) for k in KEYS},
                     "grid_ceiling_full_size": top["mask_iou_full_size"],
                     "grid_ceiling_damaged_full_size": top["mask_damaged_iou_full_size"]})
    print(table(rows, ["run", *KEYS, "grid_ceiling_full_size", "grid_ceiling_damaged_full_size"]))
    write_results(f"bridge_full_size{args.suffix}", {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
