"""The MLD preset's supervised first stage, measured over trained first stages, seed by seed.

For each seed S, given a trained multimodal VAE (``W/mmvae_sS``: ``configs/mmvae_bridge.yaml -o beta.value=0.001``,
the MLD preset's multimodal stage) and the supervised network (``W/s2m_sS``: ``configs/spec2mask_bridge.yaml``), this
script trains, through the command line as a user would:

* ``W/supervised_sS``  the supervised network again with ``-o model.mask_stage=true`` (the same training, then its
                       mask encoder): the MLD preset's ``supervised`` stage;
* ``W/mld_before_sS``  the MLD preset over the multimodal VAE alone (``first_stage.run`` a folder with ``multimodal/``:
                       the preset before the supervised stage);
* ``W/mld_sS``         the MLD preset over ``multimodal/`` + ``supervised/`` (the preset now),

and reads every model with ``latentbridge evaluate`` (held-out states of the seed's split; each threshold calibrated on
the validation windows at training time, whose best pooled IoU is reported as ``val_micro_iou``).

    python benchmarks/mld_bridge_supervised.py W --data DATA --seeds 0,1,2,3,4 --suffix _five

Results: ``benchmarks/results/mld_bridge_supervised<suffix>.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, cli, run_logged, table, write_results  # noqa: E402

KEYS = ("mask_iou", "mask_damaged_iou", "mask_healthy_fpr", "crack_localisation_error_m", "crack_missed_rate",
        "crack_false_rate", "mask_threshold")
MODELS = ("mmvae", "s2m", "mld_before", "mld")


def _first_stage(folder: Path, stages: dict[str, Path]) -> Path:
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for key, run in stages.items():
            shutil.copytree(run, folder / key, ignore=shutil.ignore_patterns("checkpoints", "logs", ".*"))
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--data", required=True)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--suffix", default="")
    args = ap.parse_args(argv)
    w, rows = args.work, []
    preset = str(REPO / "configs" / "mld_bridge.yaml")
    for seed in [int(s) for s in args.seeds.split(",")]:
        common = ["-o", f"data.root={args.data}", "-o", f"train.seed={seed}", "-o", "train.progress_bar=false"]
        sup = w / f"supervised_s{seed}"
        fit_s = {}
        if not (sup / "model.safetensors").is_file():
            fit_s["supervised"] = run_logged(cli("train", "--config", str(REPO / "configs" / "spec2mask_bridge.yaml"),
                                                 "--out", str(sup), "-o", "model.mask_stage=true", *common),
                                             w / f"supervised_s{seed}.log")
        fs = {"mld_before": _first_stage(w / f"fs_before_s{seed}", {"multimodal": w / f"mmvae_s{seed}"}),
              "mld": _first_stage(w / f"fs_s{seed}", {"multimodal": w / f"mmvae_s{seed}", "supervised": sup})}
        for name, folder in fs.items():
            run = w / f"{name}_s{seed}"
            if not (run / "model.safetensors").is_file():
                fit_s[name] = run_logged(cli("train", "--config", preset, "--out", str(run), "-o",
                                             f"first_stage.run={folder}", *common), w / f"{name}_s{seed}.log")
        for name in MODELS:
            run = w / f"{name}_s{seed}"
            ev = w / f"{name}_s{seed}-eval"
            if not (ev / "metrics.json").is_file():
                run_logged(cli("evaluate", str(run), "--out", str(ev)), w / f"{name}_s{seed}-eval.log")
            m = json.loads((ev / "metrics.json").read_text())
            cal = json.loads((run / "config.json").read_text()).get("mask_threshold") or {}
            by = cal.get("val_micro_iou_by_threshold") or {}
            rows.append({"seed": seed, "model": name, **{k: m.get(k) for k in KEYS},
                         "val_micro_iou": max(by.values()) if by else None, "fit_s": fit_s.get(name)})
            print(json.dumps(rows[-1]), flush=True)
    means = [{"model": name, "seeds": len(r), **{k: float(np.mean([x[k] for x in r])) for k in (*KEYS, "val_micro_iou")
                                                 if all(x[k] is not None for x in r)},
              **{f"{k}_sd": float(np.std([x[k] for x in r], ddof=1)) for k in ("mask_damaged_iou",
                                                                                "crack_localisation_error_m")
                 if len(r) > 1}}
             for name in MODELS if (r := [x for x in rows if x["model"] == name])]
    print(table(means, ["model", "seeds", "mask_iou", "mask_damaged_iou", "mask_damaged_iou_sd", "mask_healthy_fpr",
                        "crack_localisation_error_m", "val_micro_iou"]))
    write_results(f"mld_bridge_supervised{args.suffix}", {"data": args.data, "rows": rows, "means": means})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
