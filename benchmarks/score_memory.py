"""How `anomaly score`'s memory grows with the archive it scores.

Writes synthetic 1-s clips (16 kHz, a tone in noise), fits the default detector on 200 of them through the CLI, then
scores a small and a large archive in fresh processes and reads each one's peak resident memory (``ru_maxrss`` of the
child). The growth per clip is set beside the reference: the bytes of one clip's features (its windows as the model
reads them), which scoring kept for every window until the end of the run before it let them go after each file.

    python benchmarks/score_memory.py --work /tmp/score_memory          # about 2 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def write_clips(folder: Path, n: int, seed: int) -> None:
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    for i in range(n):
        if not (folder / f"c{i:05d}.wav").exists():
            x = 0.1 * np.sin(2 * np.pi * (300 + 50 * rng.random()) * t) + 0.02 * rng.standard_normal(16000)
            sf.write(folder / f"c{i:05d}.wav", x.astype(np.float32), 16000, subtype="PCM_16")


def cli(*args: str, env: dict) -> tuple[float, float]:
    """(peak resident memory MB of the child, seconds) of ``python -m latentbridge ARGS`` (the child's own rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "latentbridge", *args], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"latentbridge {' '.join(args)}: exit {proc.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="folder for the clips, the model and the outputs")
    p.add_argument("--small", type=int, default=600)
    p.add_argument("--large", type=int, default=6000)
    args = p.parse_args()
    work = Path(args.work).absolute()  # (a relative one made links to nothing)
    write_clips(work / "train", 200, seed=0)
    write_clips(work / "archive", args.large, seed=1)
    small = work / "small"
    small.mkdir(exist_ok=True)
    for f in sorted((work / "archive").glob("*.wav"))[: args.small]:
        if not (small / f.name).exists():
            (small / f.name).symlink_to(f)
    env = {**os.environ, "LATENTBRIDGE_CACHE": str(work / "cache"), "OMP_NUM_THREADS": "1"}
    model = work / "model"
    if not (model / "config.json").exists():
        subprocess.run([sys.executable, "-m", "latentbridge", "anomaly", "fit", str(work / "train"), "--out",
                        str(model)], check=True, env=env, stdout=subprocess.DEVNULL)
    rows = {}
    for name, folder in (("small", small), ("large", work / "archive")):
        out = work / f"scores_{name}"
        mb, secs = cli("anomaly", "score", str(model), str(folder), "--out", str(out), "--force", env=env)
        rows[name] = {"clips": len(list(folder.glob("*.wav"))), "peak_mb": round(mb, 1), "seconds": round(secs, 1)}
    sys.path.insert(0, str(HERE.parent / "src"))
    from latentbridge.tasks.anomaly import Detector

    one = Detector.load(model).extractor(use_cache=False).extract([sorted(small.glob("*.wav"))[0]])
    feature_kb = one.features.nbytes / 1024
    if rows["large"]["clips"] <= rows["small"]["clips"]:  # (a folder of an earlier --small: its links are kept)
        sys.exit(f"--small ({rows['small']['clips']} clips in {small}) must be fewer than --large "
                 f"({rows['large']['clips']}): use a fresh --work for a smaller --small")
    growth_kb = (rows["large"]["peak_mb"] - rows["small"]["peak_mb"]) * 1024 / (rows["large"]["clips"]
                                                                                  - rows["small"]["clips"])
    result = {"runs": rows, "growth_kb_per_clip": round(growth_kb, 2), "features_kb_per_clip": round(feature_kb, 2),
              "growth_over_features": round(growth_kb / feature_kb, 3)}
    print(json.dumps(result, indent=2))
    results = Path(os.environ.get("LATENTBRIDGE_BENCH_RESULTS") or HERE / "results")  # as _common.write_results
    results.mkdir(parents=True, exist_ok=True)
    (results / "score_memory.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
