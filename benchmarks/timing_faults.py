"""Faults of timing: a valve's clicks at regular times, one click late or missing, scored by the default detector
(statistics of a window's frames, read as a set), the PCA preset (frames one at a time) and the VAE preset (the frames
rebuilt in their order).

Each set: 40 normal training recordings and 20 + 20 test recordings of 3 s at 16 kHz, five decaying noise clicks of 25
ms (x 0.8-1.2) at 0.5, 1.0, 1.5, 2.0 and 2.5 s (each +-10 ms) over noise 40 dB under them; anomalous recordings have
one click missing (even-numbered) or one moved by 0.2 s either way (odd-numbered). Three seeds.

    python benchmarks/timing_faults.py [--work DIR] [--seeds 0,1,2] [--kind timing|sound] [--detectors default,pca,vae]

Results: ``benchmarks/results/timing_faults.json`` (``timing_faults_sound.json``: the same sets with faults of the
clicks' sound, a ringing click or a rattle, in the columns of the missing and the moved click;
``timing_faults_duration.json``: a relay's noise bursts of 50 ms at random times, one to three in a recording, over noise
36 dB under them; one burst three times as long (even-numbered anomalies) or twice as long (odd)).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, table, write_results  # noqa: E402

SR, SECONDS = 16000, 3
DETECTORS = {"default": [], "pca": ["--config", str(REPO / "configs" / "anomaly_pca.yaml")],
             "vae": ["--config", str(REPO / "configs" / "anomaly_vae.yaml")]}


def make(root: Path, seed: int, kind: str = "timing") -> None:
    """``kind`` timing: one click missing (even-numbered anomalies) or moved by 0.2 s (odd); sound: one click a ringing
    2.5-kHz burst of the click's energy (even) or a click twice as long, a rattle (odd); duration: :func:`make_bursts`."""
    import soundfile as sf

    if kind == "duration":
        return make_bursts(root, seed)
    rng = np.random.default_rng(seed)
    click = np.exp(-np.arange(400) / 60) * rng.standard_normal(400)
    ring = np.exp(-np.arange(400) / 60) * np.sin(2 * np.pi * 2500 * np.arange(400) / SR)
    ring *= np.linalg.norm(click) / np.linalg.norm(ring)
    rattle = np.exp(-np.arange(800) / 120) * np.random.default_rng(seed + 1000).standard_normal(800)  # (the timing
    # sets' draws as they were)
    for split, label, i, anomalous in _plan():
        times = np.array([0.5, 1.0, 1.5, 2.0, 2.5]) + rng.normal(0, 0.01, 5)
        sounds = [click] * 5
        if anomalous and kind == "timing" and i % 2 == 0:
            times = np.delete(times, rng.integers(5))
        elif anomalous and kind == "timing":
            times[rng.integers(5)] += rng.choice([-0.2, 0.2])
        elif anomalous:
            sounds[rng.integers(5)] = ring if i % 2 == 0 else rattle
        x = 0.01 * rng.standard_normal(SECONDS * SR)
        for t, sound in zip(times, sounds):
            k = int(t * SR)
            x[k:k + len(sound)] += sound * rng.uniform(0.8, 1.2)
        folder = root / split / (label if split == "test" else "")
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{label}_{i:03d}.wav", (0.3 * x).astype(np.float32), SR, subtype="FLOAT")


def _plan():
    return [("train", "normal", i, False) for i in range(40)] + [("test", "normal", i, False) for i in range(20)] + \
        [("test", "anomaly", i, True) for i in range(20)]


def make_bursts(root: Path, seed: int) -> None:
    """A relay's contacts: one to three noise bursts of 50 ms (x 0.8-1.2) at random times in 3 s, over noise 36 dB under
    them; an anomalous recording has one burst three times as long (even-numbered: contact bounce) or twice (odd)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    for split, label, i, anomalous in _plan():
        x = 0.003 * rng.standard_normal(SECONDS * SR)
        n_bursts = int(rng.integers(1, 4))
        longer = int(rng.integers(n_bursts)) if anomalous else -1
        for j in range(n_bursts):
            seconds = 0.05 * rng.uniform(0.8, 1.2) * ((3 if i % 2 == 0 else 2) if j == longer else 1)
            k, n = int(rng.uniform(0, SECONDS - seconds) * SR), int(seconds * SR)
            x[k:k + n] += 0.2 * rng.uniform(0.7, 1.3) * rng.standard_normal(n)
        folder = root / split / (label if split == "test" else "")
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(folder / f"{label}_{i:03d}.wav", x.astype(np.float32), SR, subtype="FLOAT")


def aucs(scores: Path) -> dict:
    from sklearn.metrics import roc_auc_score

    rows = [r for r in csv.DictReader(open(scores)) if r["level"].startswith("file")]
    y = np.array(["/anomaly/" in r["path"] for r in rows])
    s = np.array([float(r["score"]) for r in rows])
    index = np.array([int(Path(r["path"]).stem.split("_")[-1]) for r in rows])
    missing, moved = ~y | (index % 2 == 0), ~y | (index % 2 == 1)
    return {"auc": round(float(roc_auc_score(y, s)), 4), "auc_missing": round(float(roc_auc_score(y[missing],
            s[missing])), 4), "auc_moved": round(float(roc_auc_score(y[moved], s[moved])), 4)}


def main(argv=None) -> int:
    from latentbridge.cli import main as cli

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--detectors", default=",".join(DETECTORS), help="of " + ", ".join(DETECTORS))
    ap.add_argument("--suffix", default="", help="added to the results file's name")
    ap.add_argument("--kind", choices=("timing", "sound", "duration"), default="timing",
                    help="faults of timing (a click missing / moved), of sound (a ringing click / a rattle) or of "
                         "duration (a relay's burst three / two times as long)")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="lb_timing_"))
    rows = []
    for seed in map(int, args.seeds.split(",")):
        data = work / f"{args.kind}_seed{seed}"
        if not (data / "train").is_dir():
            make(data, seed, args.kind)
        for name in args.detectors.split(","):
            extra = DETECTORS[name]
            out = work / f"{args.kind}_seed{seed}_{name}"
            assert cli(["anomaly", "fit", str(data / "train"), "--out", str(out / "m"), "--force", *extra]) == 0
            assert cli(["anomaly", "score", str(out / "m"), str(data / "test"), "--labels", "auto", "--out",
                        str(out / "s"), "--force"]) == 0
            pauc = json.loads((out / "s" / "metrics.json").read_text())["pauc"]
            rows.append({"seed": seed, "detector": name, **aucs(out / "s" / "scores.csv"), "pauc": round(pauc, 4)})
    for name in args.detectors.split(","):
        mine = [r for r in rows if r["detector"] == name]
        rows.append({"seed": "mean", "detector": name,
                     **{k: round(float(np.mean([r[k] for r in mine])), 4)
                        for k in ("auc", "auc_missing", "auc_moved", "pauc")}})
    print(table(rows, ["seed", "detector", "auc", "pauc", "auc_missing", "auc_moved"]))
    result = ("timing_faults" if args.kind == "timing" else f"timing_faults_{args.kind}") + args.suffix
    write_results(result, {"kind": args.kind, "rows": rows,
                  "columns": {"auc_missing": "even-numbered anomalies: a click missing (timing) / ringing (sound) / a "
                                             "burst three times as long (duration)",
                              "auc_moved": "odd-numbered: a click moved (timing) / a rattle (sound) / a burst twice as "
                                           "long (duration)"}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
