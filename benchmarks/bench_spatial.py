"""Spatial maps: the conditional VAE (configs/cvae_tissue.yaml) against classical enhancement, and a
large section through the tiled path in bounded memory.

Everything goes through the CLI, as a user would run it:

1. data: ``latentbridge data synth tissue --out WORK/tissue`` (the default set: seed 0, 10 sections of
   80 x 96 pixels x 20 lipid m/z, the last 2 the test split). Eight held-out sections are scored:
   the test split (sections 09-10) and six more drawn with the same seed (sections 11-16, never
   seen in training; a section depends only on the seed and its index, which the script checks);
2. ``latentbridge train --config configs/cvae_tissue.yaml --out WORK/run -o data.root=WORK/tissue``
   (the preset unchanged: training time, CPU time and the load average while it runs);
3. ``latentbridge evaluate WORK/run --out WORK/eval --data WORK/heldout`` → metrics.json: PSNR, SSIM and
   spectral angle per task (denoise / inpaint / upscale) for the model and for the baselines
   (Gaussian, median, non-local means, total variation; biharmonic; nearest, bicubic, Lanczos),
   each baseline at the parameter that scored best on the run's validation section; the share of
   true values within ±2σ;
4. imzML route: ``latentbridge enhance WORK/run WORK/tissue/section_10.imzML --task denoise`` and the
   same from ``section_10.npy``: the two outputs must agree;
5. large section: a 1000 x 1000 x 50 section (``data synth tissue --height 1000 --width 1000
   --channels 50 --no-imzml``, its truth file moved aside) enhanced by a 50-channel model with the
   preset's architecture (trained for one short epoch: speed and memory do not depend on its
   quality) with ``OMP_NUM_THREADS=2`` (2 cores): wall time, peak resident memory of the enhance
   process (``ru_maxrss``), and as a same-run reference the time of the Gaussian baseline (scipy,
   every channel) on the same section.

Goals (the issue's): the model beats the best baseline of each task by >= 1 dB PSNR; the ±2σ
coverage is between 0.92 and 0.98; the large section runs on 2 cores in bounded memory.

    python benchmarks/bench_spatial.py                 # everything (~35 min training on an idle 2-core machine)
    python benchmarks/bench_spatial.py --run RUN       # reuse a trained run (skips step 2)
    python benchmarks/bench_spatial.py --smoke         # a quick check of the script (numbers meaningless)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, table, write_results

PRESET = "configs/cvae_tissue.yaml"
SMOKE = ["train.max_epochs=1", "patches.per_epoch=64", "patches.val_patches=32", "model.channels=[8,16]",
         "model.latent_dim=4"]
HELD_OUT = [f"section_{i:02d}" for i in range(9, 17)]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "latentbridge", *args]


def run(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Run a command (output to ``log``): wall time, child CPU time, 1-min load average every 5 s."""
    loads = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **(env or {})})
        while True:
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                loads.append(os.getloadavg()[0])
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return {"wall_s": round(wall, 1), "cpu_s": round((after.ru_utime - before.ru_utime)
                                                     + (after.ru_stime - before.ru_stime), 1),
            "load_mean": round(float(np.mean(loads)), 2) if loads else None,
            "load_max": round(float(np.max(loads)), 2) if loads else None}


def peak_rss(cmd: list[str], log: Path, env: dict) -> tuple[dict, float]:
    """Run ``cmd`` under a wrapper process whose only child it is: (timing, peak RSS in MiB)."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    timing = run([sys.executable, "-c", code, *cmd], log, env)
    kb = [int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("PEAK_RSS_KB")]
    return timing, kb[-1] / 1024.0


def heldout_folder(work: Path, default: Path, smoke: bool) -> Path:
    """Sections 09-16 of the default seed in one folder with their own manifest (all 'test')."""
    more = work / "tissue16"
    extra = ["--height", "40", "--width", "48", "--channels", "6"] if smoke else []
    subprocess.run(cli("data", "synth", "tissue", "--out", str(more), "--sections", "16", "--test-sections", "8",
                       "--no-imzml", "--force", *extra), check=True, cwd=REPO, capture_output=True)
    for name in ("section_09", "section_10"):  # a section depends only on (seed, index)
        assert np.array_equal(np.load(more / f"{name}.npy"), np.load(default / f"{name}.npy")), name
    m = json.loads((more / "manifest.json").read_text())
    m["sections"] = [dict(s, split="test") for s in m["sections"] if s["name"] in HELD_OUT]
    out = work / "heldout"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    for s in m["sections"]:
        for f in s["files"].values():
            os.symlink(more / f, out / f)
    (out / "manifest.json").write_text(json.dumps(m, indent=2))
    return out


def large_section(work: Path, smoke: bool, size: int, channels: int) -> dict:
    big = work / "large"
    n = 96 if smoke else size
    subprocess.run(cli("data", "synth", "tissue", "--out", str(big), "--sections", "1", "--test-sections", "0",
                       "--height", str(n), "--width", str(n), "--channels", str(channels), "--no-imzml", "--force"),
                   check=True, cwd=REPO, capture_output=True)
    (big / "section_01.truth.npy").rename(work / "large_truth.npy")  # no metrics: the timing is the point
    small = work / f"tissue{channels}"
    subprocess.run(cli("data", "synth", "tissue", "--out", str(small), "--sections", "4", "--test-sections", "0",
                       "--channels", str(channels), "--no-imzml", "--force"), check=True, cwd=REPO, capture_output=True)
    run50 = work / f"run{channels}"
    over = ["train.max_epochs=1", "patches.per_epoch=64", "patches.val_patches=32", "train.progress_bar=false"]
    t = []
    for o in over + ([f"data.root={small}"]):
        t += ["-o", o]
    run(cli("train", "--config", PRESET, "--out", str(run50), "--force", *t), work / "train50.log")
    out = work / "large-out"
    env = {"OMP_NUM_THREADS": "2"}
    timing, rss = peak_rss(cli("enhance", str(run50), str(big / "section_01.npy"), "--task", "denoise", "--out",
                               str(out), "--force"), work / "enhance_large.log", env)
    summary = json.loads((out / "enhance.json").read_text())
    # same-run reference: the Gaussian baseline over the whole section (in this process, 2 threads irrelevant)
    from latentbridge.tasks.baselines import gaussian

    values = np.load(big / "section_01.npy")
    valid = np.load(big / "section_01.mask.npy")
    t0 = time.perf_counter()
    gaussian(values, valid, 1.0)
    t_gauss = time.perf_counter() - t0
    in_mib = values.nbytes / 2 ** 20
    return {"shape": [n, n, channels], "input_mib": round(in_mib, 1), "n_tiles": summary["n_tiles"],
            "enhance": timing, "enhance_seconds_inside": summary["seconds"], "peak_rss_mib": round(rss, 1),
            "peak_rss_over_input": round(rss / in_mib, 3), "gaussian_baseline_s": round(t_gauss, 2),
            "enhance_over_gaussian": round(timing["wall_s"] / t_gauss, 1),
            "output_mib": round(3 * in_mib + n * n * 8 * 4 / 2 ** 20, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", help="keep data, runs and outputs here (default: a temporary folder)")
    ap.add_argument("--run", help="a trained run of the preset on WORK/tissue (skips training)")
    ap.add_argument("--large-size", type=int, default=1000)
    ap.add_argument("--large-channels", type=int, default=50)
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny data and model: checks the script only")
    ap.add_argument("-o", "--override", action="append", default=[], help="extra config override for training")
    args = ap.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench_spatial_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}")
    results: dict = {"preset": PRESET, "smoke": args.smoke, "load_at_start": os.getloadavg()}

    data = work / "tissue"
    synth = cli("data", "synth", "tissue", "--out", str(data), "--force")
    if args.smoke:
        synth += ["--height", "40", "--width", "48", "--channels", "6", "--sections", "10"]
    results["synth"] = run(synth, work / "synth.log")
    heldout = heldout_folder(work, data, args.smoke)

    overrides = [f"data.root={data}", "train.progress_bar=false", *(SMOKE if args.smoke else []), *args.override]
    if args.smoke:
        overrides += ["patches.size=16", "patches.overlap=4"]
    run_dir = Path(args.run) if args.run else work / "run"
    if not args.run:
        t = []
        for o in overrides:
            t += ["-o", o]
        results["train"] = run(cli("train", "--config", PRESET, "--out", str(run_dir), "--force", *t),
                               work / "train.log")
        print(f"trained in {results['train']['wall_s']} s wall, {results['train']['cpu_s']} s CPU "
              f"(load {results['train']['load_mean']})")
    info = json.loads((run_dir / "config.json").read_text())
    results["training"] = info.get("training")
    results["calibration"] = info.get("calibration")

    results["evaluate"] = run(cli("evaluate", str(run_dir), "--out", str(work / "eval"), "--data", str(heldout),
                                  "--force"), work / "evaluate.log")
    m = json.loads((work / "eval" / "metrics.json").read_text())
    results["metrics"] = m

    # the imzML route gives the same maps as the arrays
    outs = {}
    for ext in ("imzML", "npy"):
        out = work / f"enh-{ext}"
        results[f"enhance_{ext}"] = run(cli("enhance", str(run_dir), str(data / f"section_10.{ext}"), "--task",
                                            "denoise", "--out", str(out), "--force"), work / f"enh-{ext}.log")
        outs[ext] = np.load(out / "enhanced.npy")
    # pixels without a measurement (outside the tissue) are NaN in both: the same pixels, compared where answered
    same_gaps = bool(np.array_equal(np.isnan(outs["imzML"]), np.isnan(outs["npy"])))
    results["imzml_vs_arrays_same_unanswered_pixels"] = same_gaps
    results["imzml_vs_arrays_max_abs_diff"] = (float(np.nanmax(np.abs(outs["imzML"] - outs["npy"]))) if same_gaps
                                               else float("inf"))

    if not args.skip_large:
        results["large"] = large_section(work, args.smoke, args.large_size, args.large_channels)

    rows = []
    goals = {}
    for task in ("denoise", "inpaint", "upscale"):
        t = m[task]
        rows.append({"task": task, "method": "conditional VAE", "PSNR dB": t["psnr"], "SSIM": t["ssim"],
                     "SAM deg": t["sam"], "±2σ coverage": t["coverage_2sigma"]})
        for name, b in sorted(t["baselines"].items(), key=lambda kv: -kv[1]["psnr"]):
            param = next((f"{k}={v}" for k, v in b.items() if k not in ("psnr", "ssim", "sam")), "")
            rows.append({"task": task, "method": f"{name} {param}".strip(), "PSNR dB": b["psnr"], "SSIM": b["ssim"],
                         "SAM deg": b["sam"]})
        goals[f"{task}_gain_ge_1dB"] = {"gain_db": round(t["psnr_gain_db"], 2), "met": t["psnr_gain_db"] >= 1.0}
    cov = m["uncertainty_coverage_2sigma"]
    goals["coverage_in_0.92_0.98"] = {"coverage": round(cov, 4), "met": 0.92 <= cov <= 0.98}
    results["goals"] = goals
    print(table(rows, ["task", "method", "PSNR dB", "SSIM", "SAM deg", "±2σ coverage"],
                {"PSNR dB": ".2f", "SSIM": ".4f", "SAM deg": ".2f", "±2σ coverage": ".3f"}))
    print(json.dumps(goals, indent=1))
    if "large" in results:
        print(json.dumps(results["large"], indent=1))
    write_results("bench_spatial_smoke" if args.smoke else "bench_spatial", results)


if __name__ == "__main__":
    main()
