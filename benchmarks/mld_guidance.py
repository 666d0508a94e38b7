"""MLD runs vs their sampling guidance: coherence of digits runs, mask quality of bridge runs.

Digits (``configs/mld_avdigits.yaml`` runs), for each RUN and each guidance value: images generated
from the spoken digits and log-mels generated from the written digits of a seeded subset of the test
pairs (seed 0), read by the project's MNIST and FSDD classifiers — ``coherence_audio_to_image`` and
``coherence_image_to_audio`` of ``latentbridge evaluate``, with the run's other sampler settings.
Sampling settings do not change training, so this is what ``evaluate`` reports for a run trained
with ``-o sampling.guidance=G``.

Bridge (``configs/mld_bridge.yaml`` runs): for each guidance value the crack-probability threshold is
recalibrated on the labelled validation windows (as at training time, best pooled IoU), then the mask
metrics of ``evaluate`` (IoU, damaged-state IoU, healthy FPR, localisation error, missed and false
cracks) on the validation and on the held-out windows — so a guidance can be chosen on validation.

    python benchmarks/mld_guidance.py RUN [RUN ...] --guidance 1,2,4,6 --pairs 600   # digits runs
    python benchmarks/mld_guidance.py RUN --guidance 4 --steps 50,100 --scheduler ddim,dpm   # samplers too (both kinds)
    python benchmarks/mld_guidance.py RUN --guidance 1,2,3,4                          # a bridge run
    python benchmarks/mld_guidance.py RUN --guidance "4;image=4,audio=8"   # per generated modality (';' between)
    python benchmarks/mld_guidance.py RUN --guidance 2,3 --samples 8,32    # bridge: masks sampled per window
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--guidance", default="1,2,4,6",
                    help="strengths, comma-separated; with per-modality entries (audio=8,image=4) ';'-separated")
    ap.add_argument("--samples", default="", help="bridge: masks sampled per window, e.g. 8,32 (default: the run's)")
    ap.add_argument("--pairs", type=int, default=600, help="test pairs (a seeded subset; 0: all)")
    ap.add_argument("--steps", default="", help="sampler steps to try, e.g. 50,100 (default: the run's)")
    ap.add_argument("--scheduler", default="", help="samplers to try, e.g. ddim,dpm (default: the run's)")
    ap.add_argument("--suffix", default="", help="results file: results/mld_guidance_<kind><suffix>.json")
    args = ap.parse_args(argv)
    import torch

    from latentbridge.tasks.crossmodal import digit_judges
    from latentbridge.tasks.mld import generate, load_run, resolve_guidance, sampler_settings
    from latentbridge.tasks.mld_eval import held_out_digit_pairs

    torch.set_num_threads(1)
    entries = [x for x in args.guidance.split(";" if "=" in args.guidance else ",") if x.strip()]
    rows = []
    kind = None
    for run in args.runs:
        saved, stages = load_run(run)
        kind = saved.workflow.data.kind
        base = sampler_settings(saved.workflow)
        guidance = [resolve_guidance(x, base["guidance"], saved.workflow.modalities) for x in entries]
        steps = [int(x) for x in args.steps.split(",") if x] or [base["steps"]]
        schedulers = [x for x in args.scheduler.split(",") if x] or [base["scheduler"]]
        settings = [{**base, "guidance": g, "steps": n, "scheduler": sc}
                    for g, n, sc in itertools.product(guidance, steps, schedulers)]
        if kind == "bridge":
            samples = [int(x) for x in args.samples.split(",") if x] or [saved.workflow.evaluate.samples_per_condition]
            rows += bridge_rows(run, saved, stages, settings, samples)
            continue
        cfg, model = saved.workflow, saved.model.eval()
        test, _ = held_out_digit_pairs(cfg, args.pairs)
        z_a, z_i = stages.encode("audio", test.audio), stages.encode("image", test.image)
        judges = digit_judges(cfg, saved.transform)
        for s in settings:
            t0 = time.perf_counter()
            images = stages.decode("image", generate(model, len(test), {"audio": z_a}, settings=s)["image"])
            audio = stages.decode("audio", generate(model, len(test), {"image": z_i}, settings=s)["audio"])
            rows.append({"run": str(run), "epochs": saved.info["training"].get("epochs"), "guidance": s["guidance"],
                         "scheduler": s["scheduler"], "steps": s["steps"], "n_pairs": len(test),
                         "audio_to_image": float(np.mean(judges.mnist.predict(images.clamp(0, 1).numpy()) == test.label)),
                         "image_to_audio": float(np.mean(judges.fsdd.predict(audio.numpy()) == test.label)),
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(table(rows[-1:], list(rows[-1])), flush=True)
    if kind != "bridge":
        print(table(rows, ["run", "epochs", "guidance", "scheduler", "steps", "n_pairs", "audio_to_image",
                           "image_to_audio"],
                    {"audio_to_image": ".3f", "image_to_audio": ".3f"}))
    write_results(f"mld_guidance_{kind}{args.suffix}", {"rows": rows})
    return 0


BRIDGE_KEYS = ("mask_iou", "mask_damaged_iou", "mask_healthy_fpr", "crack_localisation_error_m",
               "crack_missed_rate", "crack_false_rate")


def bridge_rows(run, saved, stages, settings: list[dict], samples: list[int]) -> list[dict]:
    from latentbridge.tasks.mld import bridge_splits
    from latentbridge.tasks.mld_eval import mask_probabilities
    from latentbridge.metrics.segmentation import mask_metrics
    from latentbridge.tasks.multimodal import best_threshold, span_of

    model = saved.model.eval()
    root = saved.info["data"]["root"]
    _, val, test = bridge_splits(stages, root)
    span = span_of(stages.workflow("multimodal"), root)
    rows = []
    for s, k in itertools.product(settings, samples):
        row = {"run": str(run), "guidance": s["guidance"], "scheduler": s["scheduler"], "steps": s["steps"],
               "samples_per_window": k}
        for name, split in (("val", val), ("test", test)):
            lab = np.asarray(split.has_mask, dtype=bool)
            prob = mask_probabilities(model, stages, split.waves[lab], k, s)
            if name == "val":
                row["threshold"] = float(best_threshold(prob, split.masks[lab])["threshold"])
            m = mask_metrics(prob, split.masks[lab], row["threshold"], span)
            row.update({f"{name}_{k}": float(m[k]) for k in BRIDGE_KEYS})
        rows.append(row)
        print(table([row], list(row), {k: ".3f" for k in row if k.startswith(("val_", "test_"))}), flush=True)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
