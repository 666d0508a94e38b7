"""How well the MLD digits preset's audio first stage keeps the digit: its reconstructions read by the judges.

For each setting, the preset's audio stage (``configs/mld_avdigits.yaml`` → ``first_stage.stages.audio``)
is trained exactly as ``latentbridge train`` trains it (``mld._train_stage``: the FSDD training clips of
the paired digits) with the given overrides, or an existing stage is read (``--stage FOLDER``: an MLD
run, its ``first_stage`` folder, or a folder holding ``audio/``). Its reconstructions of the unique test
clips are read by the FSDD classifier (``first_stage_audio_accuracy`` of ``latentbridge evaluate``) and,
through Griffin-Lim, by the waveform judge (``first_stage_audio_second_judge``), beside that judge on
Griffin-Lim of the real log-mels. No sampler over a stage's latents can generate audio that these
judges read better than they read its reconstructions. Reconstructions pass the stage's global-variance
post-filter as generated log-mels do (``latentbridge.transforms.postfilter``; fitted here on the training
clips for a stage saved without one); the row's ``without_postfilter`` reads the decoder's raw output.

    python benchmarks/mld_first_stage.py --stage RUN                       # a trained run's stage
    python benchmarks/mld_first_stage.py --stage RUN --gl-iterations 32,64,128   # the judge vs Griffin-Lim
    python benchmarks/mld_first_stage.py --work W --name d0_60 \\
        -o first_stage.stages.audio.model.dropout=0 -o first_stage.stages.audio.train.max_epochs=60

Results: ``benchmarks/results/mld_first_stage.json`` (one row per call, appended).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _iterations(text: str) -> list[int]:
    """``--gl-iterations``: comma-separated positive integers."""
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"comma-separated positive integers, got {text!r}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", help="read this trained stage (an MLD run or a folder holding audio/) instead of training")
    ap.add_argument("--work", help="where to train the stage (default: a temporary folder)")
    ap.add_argument("--name", default="", help="a label for the row")
    ap.add_argument("--fsdd", default=str(REPO.parent / "shared" / "data" / "fsdd"))
    ap.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    ap.add_argument("-o", "--override", action="append", default=[], help="override of configs/mld_avdigits.yaml")
    ap.add_argument("--gl-iterations", type=_iterations, default=[],
                    help="also read both waveform-judge figures with these Griffin-Lim iterations (comma-separated; "
                         "the row's main figures use the preset's evaluate.gl_iterations)")
    args = ap.parse_args(argv)
    import torch

    from latentbridge.config.workflows import load_config
    from latentbridge.metrics.classification import coherence
    from latentbridge.tasks import mld
    from latentbridge.tasks.avdigits import classifiers
    from latentbridge.tasks.crossmodal import griffin_lim, under_full_scale
    from latentbridge.tasks.judges import load_waveform_judge

    cfg = load_config(REPO / "configs" / "mld_avdigits.yaml",
                      [f"digits.fsdd_root={args.fsdd}", f"digits.mnist_root={args.mnist}", *args.override])
    t0 = time.time()
    if args.stage:
        folder = Path(args.stage)
        folder = folder / mld.STAGE_DIR if (folder / mld.STAGE_DIR).is_dir() else folder
    else:
        folder = Path(args.work or tempfile.mkdtemp(prefix="mld_first_stage_"))
        mld._train_stage(cfg, cfg.stage_config("audio"), "audio", folder / "audio", False)
    seconds = time.time() - t0
    stages = mld.load_stages(folder, ("audio",))
    saved = stages.saved[stages.keys["audio"]]
    test = mld.digit_pairs(cfg, "test")
    _, first = np.unique(test.clip, return_index=True)
    first = np.sort(first)
    real, labels = test.audio[first], test.label[first]
    if "audio" in stages.postfilters:
        how = "the stage's own"
    else:  # a stage trained before the post-filter existed: fitted on the clips its run trained on
        from latentbridge.models.hub import load_model

        run_cfg = load_model(folder.parent).workflow if mld._is_model_folder(folder.parent) else cfg
        pf = mld.fit_postfilter(saved.workflow, saved.model, mld.audio_stage_arrays(run_cfg, saved.workflow.data.limit)[0])
        how = "fitted here on the training clips" if pf is not None else "none (not a dB audio stage, or nothing to measure)"
        if pf is not None:
            stages.postfilters["audio"] = pf
    with torch.no_grad():
        z = stages.encode("audio", torch.from_numpy(real))
        rec, raw = stages.decode("audio", z).numpy(), stages.decode("audio", z, postfilter=False).numpy()
    _, (fsdd, _) = classifiers(cfg, saved.transform)
    judge = load_waveform_judge(cfg.digits.fsdd_root, saved.transform)
    gl = cfg.evaluate.gl_iterations
    # each Griffin-Lim run once: per length for the reconstructions and the real log-mels, the preset's for the raw
    inverted = {n: {k: griffin_lim(saved.transform, x, n) for k, x in (("reconstructions", rec), ("real", real))}
                for n in sorted({gl, *args.gl_iterations})}
    raw_waves = griffin_lim(saved.transform, raw, gl)
    read = {n: {k: judge.accuracy(under_full_scale(w), labels) for k, w in ws.items()} for n, ws in inverted.items()}

    def past_full_scale(w):
        return int((np.abs(w).max(1) > 1).sum())

    def rms(w):
        return float(np.sqrt(np.mean(under_full_scale(w) ** 2)))

    row = {"name": args.name, "command": " ".join(["python benchmarks/mld_first_stage.py", *sys.argv[1:]]),
           "stage": str(folder), "trained_here": not args.stage, "overrides": args.override,
           "train_seconds": round(seconds, 1) if not args.stage else None, "n_test_clips": int(len(first)),
           "latent_dim": int(stages.latent_dims[0]),
           "first_stage_audio_accuracy": coherence(fsdd, rec, labels)["accuracy"],
           "fsdd_classifier_on_real": coherence(fsdd, real, labels)["accuracy"],
           "first_stage_audio_second_judge": read[gl]["reconstructions"],
           "second_judge_on_griffin_lim_of_real": read[gl]["real"],
           "relative_mse_db": float(((rec - real) ** 2).mean() / real.var()),
           "postfilter": how,
           "postfilter_ratio_range": ([round(float(stages.postfilters["audio"].ratio.min()), 3),
                                       round(float(stages.postfilters["audio"].ratio.max()), 3)]
                                      if "audio" in stages.postfilters else None),
           "clips_past_full_scale": past_full_scale(inverted[gl]["reconstructions"]),
           "rms": {k: rms(w) for k, w in inverted[gl].items()},
           "without_postfilter": {"first_stage_audio_accuracy": coherence(fsdd, raw, labels)["accuracy"],
                                  "first_stage_audio_second_judge": judge.accuracy(under_full_scale(raw_waves), labels),
                                  "relative_mse_db": float(((raw - real) ** 2).mean() / real.var()),
                                  "clips_past_full_scale": past_full_scale(raw_waves), "rms": rms(raw_waves)}}
    if args.gl_iterations:
        row["second_judge_by_gl_iterations"] = {n: read[n] for n in args.gl_iterations}
    print(json.dumps(row, indent=1))
    old = RESULTS_DIR / "mld_first_stage.json"
    rows = json.loads(old.read_text()).get("rows", []) if old.is_file() else []
    write_results("mld_first_stage", {"rows": [*rows, row]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
