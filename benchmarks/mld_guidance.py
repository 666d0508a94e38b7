"""Coherence of a trained digits MLD run vs its sampling guidance (and training length, run by run).

For each RUN (a ``configs/mld_avdigits.yaml`` run folder) and each guidance value: images generated
from the spoken digits and log-mels generated from the written digits of a seeded subset of the test
pairs (seed 0), read by the project's MNIST and FSDD classifiers — ``coherence_audio_to_image`` and
``coherence_image_to_audio`` of ``latentbridge evaluate``, with the run's other sampler settings.
Sampling settings do not change training, so this is what ``evaluate`` reports for a run trained
with ``-o sampling.guidance=G``.

    python benchmarks/mld_guidance.py RUN [RUN ...] --guidance 1,2,4,6 --pairs 600
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--guidance", default="1,2,4,6")
    ap.add_argument("--pairs", type=int, default=600, help="test pairs (a seeded subset; 0: all)")
    args = ap.parse_args(argv)
    import torch

    from latentbridge.tasks.crossmodal import digit_judges
    from latentbridge.tasks.mld import digit_pairs, generate, load_run, sampler_settings

    torch.set_num_threads(1)
    rows = []
    for run in args.runs:
        saved, stages = load_run(run)
        cfg, model = saved.workflow, saved.model.eval()
        test = digit_pairs(cfg, "test")
        if args.pairs and args.pairs < len(test):
            keep = np.zeros(len(test), dtype=bool)
            keep[np.random.default_rng(0).permutation(len(test))[:args.pairs]] = True
            test = test.subset(keep)
        z_a, z_i = stages.encode("audio", test.audio), stages.encode("image", test.image)
        judges = digit_judges(cfg, saved.transform)
        for g in (float(x) for x in args.guidance.split(",")):
            t0 = time.perf_counter()
            s = {**sampler_settings(cfg), "guidance": g}
            images = stages.decode("image", generate(model, len(test), {"audio": z_a}, settings=s)["image"])
            audio = stages.decode("audio", generate(model, len(test), {"image": z_i}, settings=s)["audio"])
            rows.append({"run": str(run), "epochs": saved.info["training"].get("epochs"), "guidance": g,
                         "n_pairs": len(test),
                         "audio_to_image": float(np.mean(judges.mnist.predict(images.clamp(0, 1).numpy()) == test.label)),
                         "image_to_audio": float(np.mean(judges.fsdd.predict(audio.numpy()) == test.label)),
                         "seconds": round(time.perf_counter() - t0, 1)})
            print(table(rows[-1:], list(rows[-1])), flush=True)
    print(table(rows, ["run", "epochs", "guidance", "n_pairs", "audio_to_image", "image_to_audio"],
                {"audio_to_image": ".3f", "image_to_audio": ".3f"}))
    write_results("mld_guidance", {"rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
