"""The bridge MLD over other first stages than the preset's (the multimodal VAE's two experts).

The issue asks for the first stage to be chosen by measurement. On the runs of ``python
benchmarks/bench_mld.py --parts bridge --seeds 0,1,2 --keep W`` (``W/runs/seedS/{mmvae,mld}``), for
each seed, the diffusion model of ``configs/mld_bridge.yaml`` (seed S, guidance 1) is trained and
evaluated through the CLI over:

``mask_ae``
    the MMVAE's vibration expert beside a dedicated mask autoencoder (``image_conv_ae``: 32 → 64
    channels, latent 32, BCE + MSE, 60 epochs, batch 32, Adam 1e-3) trained on the labelled training
    windows' masks of the MMVAE's own split of damage states (validation masks for its validation
    loss): the first-stage folder holds ``multimodal/`` and ``mask/`` (a modality's own stage wins
    over the multimodal one), passed as ``-o first_stage.run``;
``latent64``
    an MMVAE trained as ``configs/mmvae_bridge.yaml`` with ``-o model.latent_dim=64`` (same seed,
    hence the same split), then the MLD over it (``--variants latent64``; ~7 min per seed);
``mopoe``
    the same with ``-o model.fusion=mopoe`` (the mixture of products of experts, ``configs/mmvae_bridge_mopoe.yaml``);
``mask3``
    the same with the mask's loss terms weighted 3 (``losses.mask_dice=3 losses.mask_bce=3``), so the shared
    latent, and with it the vibration expert's, carries more of the mask;
``beta001``
    the same with a KL weight of 0.001 instead of 0.01 (``beta.value=0.001``): a less compressed latent.

Each row: the MLD's held-out mask metrics beside the preset's MLD (``W/runs/seedS/mld``, re-read at
guidance 1 in ``results/mld_guidance_bridge_seeds.json`` when its run used another) and the
autoencoding IoU of the held-out damaged masks through the mask stage (the ceiling on the mask side).

    python benchmarks/mld_bridge_stages.py W --seeds 0,1,2 --variants mask_ae,latent64 --out X   # 35 min
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, cli, table, write_results  # noqa: E402
from _common import run_logged as run  # noqa: E402

KEYS = ("mask_iou", "mask_damaged_iou", "mask_healthy_fpr", "crack_localisation_error_m", "crack_missed_rate",
        "crack_false_rate")
MASK_AE = {"name": "image_conv_ae", "latent_dim": 32, "channels": [32, 64], "kernel_size": 3}


def mask_stage(mmvae: Path, first_stage: Path, seed: int, epochs: int) -> float:
    """Assemble ``first_stage`` (the MMVAE + a mask autoencoder trained on its split's training masks);
    returns the damaged held-out masks' autoencoding IoU through the new mask stage."""
    import torch

    from latentbridge.config.workflows import validate
    from latentbridge.metrics.segmentation import segmentation_summary
    from latentbridge.tasks.mld import _fit_stage_on_arrays, bridge_splits
    from latentbridge.tasks.mld_stages import load_stages

    if first_stage.exists():
        shutil.rmtree(first_stage)
    first_stage.mkdir(parents=True)
    shutil.copytree(mmvae, first_stage / "multimodal", ignore=shutil.ignore_patterns("checkpoints", "logs", ".*"))
    train, val, test = bridge_splits(load_stages(first_stage, ("spec", "mask")))
    masks = [d.masks[np.asarray(d.has_mask, bool)].astype(np.float32) for d in (train, val)]
    cfg = validate({"task": "image_ae", "data": {"root": str(mmvae)}, "model": MASK_AE,
                    "train": {"max_epochs": epochs, "batch_size": 32, "lr": 1e-3, "seed": seed, "num_threads": 1,
                              "progress_bar": False}}, "mask stage")
    _fit_stage_on_arrays(cfg, first_stage / "mask", *masks, "crack masks of the bridge's training windows", False)
    stages = load_stages(first_stage, ("spec", "mask"))
    assert stages.keys == {"spec": "multimodal", "mask": "mask"}, stages.keys
    truth = test.masks[np.asarray(test.has_mask, bool)].astype(np.float32)
    with torch.no_grad():
        rec = stages.decode("mask", stages.encode("mask", torch.from_numpy(truth))).numpy()
    return segmentation_summary(rec, truth)["damaged_iou"]


#: MMVAE first stages trained with overrides of ``configs/mmvae_bridge.yaml``
MMVAE_VARIANTS = {"latent64": ("model.latent_dim=64",), "mopoe": ("model.fusion=mopoe",),
                  "mask3": ("losses.mask_dice=3", "losses.mask_bce=3"), "beta001": ("beta.value=0.001",)}


def preset_row(work: Path, seed: int) -> dict:
    """The preset MLD's figures at guidance 1 for this seed."""
    m = json.loads((work / "runs" / f"seed{seed}" / "mld-eval" / "metrics.json").read_text())
    if m["sampler"]["guidance"] == 1.0:
        return {k: m[k] for k in KEYS}
    reread = json.loads((REPO / "benchmarks" / "results" / "mld_guidance_bridge_seeds.json").read_text())
    for r in reread["seeds"].get(str(seed), {}).get("rows", []):
        if r["guidance"] == 1.0:
            return {k: r[f"test_{k}"] for k in KEYS}
    raise SystemExit(f"no guidance-1 figures for seed {seed}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("work", type=Path, help="the --keep folder of bench_mld.py --parts bridge --seeds ...")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default="mask_ae")
    ap.add_argument("--out", type=Path, required=True, help="folder for the new runs")
    ap.add_argument("--mask-epochs", type=int, default=60)
    ap.add_argument("--suffix", default="", help="results file name suffix")
    args = ap.parse_args(argv)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        base = args.work / "runs" / f"seed{seed}"
        root = json.loads((base / "mmvae" / "config.json").read_text())["config"]["data"]["root"]
        rows.append({"seed": seed, "variant": "preset (MMVAE experts)", **preset_row(args.work, seed)})
        for variant in args.variants.split(","):
            out = args.out / variant / f"seed{seed}"
            out.mkdir(parents=True, exist_ok=True)
            t0, extra = time.time(), {}
            if variant == "mask_ae":
                stage = out / "first_stage"
                extra["mask_ae_damaged_iou"] = mask_stage(base / "mmvae", stage, seed, args.mask_epochs)
            elif variant in MMVAE_VARIANTS:
                stage = out / "mmvae"
                run(cli("train", "--config", "configs/mmvae_bridge.yaml", "--out", str(stage), "--force",
                        "-o", f"data.root={root}", "-o", f"train.seed={seed}",
                        *[a for o in MMVAE_VARIANTS[variant] for a in ("-o", o)], "-o", "train.progress_bar=false"),
                    out / "train_mmvae.log")
                run(cli("evaluate", str(stage), "--out", str(out / "mmvae-eval"), "--force"), out / "eval_mmvae.log")
                mm = json.loads((out / "mmvae-eval" / "metrics.json").read_text())
                extra["mmvae_damaged_iou"] = mm["mask_damaged_iou"]
                extra["mmvae_localisation_m"] = mm["crack_localisation_error_m"]
            else:
                raise SystemExit(f"unknown variant {variant!r}")
            run(cli("train", "--config", "configs/mld_bridge.yaml", "--out", str(out / "mld"), "--force",
                    "-o", f"data.root={root}", "-o", f"first_stage.run={stage}", "-o", f"train.seed={seed}",
                    "-o", "train.progress_bar=false"), out / "train_mld.log")
            run(cli("evaluate", str(out / "mld"), "--out", str(out / "mld-eval"), "--force"), out / "eval_mld.log")
            m = json.loads((out / "mld-eval" / "metrics.json").read_text())
            rows.append({"seed": seed, "variant": variant, **{k: m[k] for k in KEYS}, **extra,
                         "seconds": round(time.time() - t0, 1)})
            print(table(rows[-1:], list(rows[-1])), flush=True)
    means = []
    for v in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == v]
        means.append({"variant": v, "seeds": len(mine), **{k: float(np.mean([r[k] for r in mine])) for k in KEYS}})
    print(table(means, list(means[0]), {k: ".3f" for k in KEYS}))
    write_results("mld_bridge_stages" + args.suffix, {"work": str(args.work), "rows": rows, "means": means})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
