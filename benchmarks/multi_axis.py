"""Multi-axis vibration: each axis modelled beside the others (``audio.channel: all``, the survey's choice for
vibration CSVs of one axis count) against the axes averaged into one signal and one axis alone.

Three simulated tri-axial accelerometer sets (CSV, 2 kHz, 10-s recordings; 60 training, 40 + 40 test). Every
axis carries the machine's shaft harmonics (24-26 Hz, its first five orders), a structural resonance of its own
(axis 0: 180 Hz, axis 1: 310 Hz, axis 2: 520 Hz) excited by broadband noise, and sensor noise; the recording's
level varies by +-6 dB (the sensor's mounting) and each axis' by +-2 dB.

* ``impacts_one_axis``: a bearing fault, impacts at 3.6 shaft orders ringing the resonance of axis 1 only
  (the load zone's direction), each of 0.1 (x 0.7-1.3) through a gain of 40.
* ``faint_impacts_one_axis``: the same impacts at 0.06.
* ``looseness_all_axes``: a looseness fault raising the shaft's 2nd to 4th orders by 6 dB on every axis.
* ``faint_looseness_all_axes``: the same by 1.2 dB.

Each set is fitted and scored through the CLI with the survey's settings (``all``) and with ``-o
audio.channel=null`` (the mix), ``-o audio.channel=1`` (the axis the impacts ring) and ``-o audio.channel=0``.

A fifth set is the bridge of ``latentbridge data synth bridge`` (default: 300 states, 8 vertical accelerometers
along the span, 200 Hz, 20 s): its healthy states as normal (60 % of them, seeded, for training, the others as
normal test recordings) and 40 damaged states (seeded) as anomalous, every axis against the mix, with the survey's
STFT (at 200 Hz the finer one: 512-sample frames) and with its time rule's (16-sample frames, 2-s windows).

    python benchmarks/multi_axis.py [--work DIR]

Results: ``benchmarks/results/multi_axis.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402
from low_rate_settings import run, time_rule  # noqa: E402

SR = 2000
RESONANCES_HZ = (180.0, 310.0, 520.0)


def _resonance(x: np.ndarray, f0: float, q: float = 12.0) -> np.ndarray:
    from scipy.signal import iirpeak, lfilter

    b, a = iirpeak(f0, q, fs=SR)
    return lfilter(b, a, x)


def recording(rng: np.random.Generator, fault: str | None, strength: float = 1.0) -> np.ndarray:
    """(T, 3) accelerations of one 10-s recording; ``strength``: the impacts' size, the looseness' gain."""
    t = np.arange(10 * SR) / SR
    fs = rng.uniform(24.0, 26.0)
    axes = []
    for k, f0 in enumerate(RESONANCES_HZ):
        x = np.zeros_like(t)
        for order in range(1, 6):
            amp = 1.0 / order * (strength if fault == "looseness" and 2 <= order <= 4 else 1.0)
            x += amp * np.sin(2 * np.pi * order * fs * t + rng.uniform(0, 2 * np.pi))
        x += 3.0 * _resonance(rng.standard_normal(t.size), f0)
        if fault == "impacts" and k == 1:
            pulses = np.zeros_like(t)
            period = 1.0 / (3.6 * fs)
            for start in np.arange(rng.uniform(0, period), t[-1], period):
                pulses[int(start * SR)] = strength * rng.uniform(0.7, 1.3)
            x += 40.0 * _resonance(pulses, f0, q=6.0)
        x += 0.2 * rng.standard_normal(t.size)
        axes.append(x * 10 ** (rng.uniform(-2, 2) / 20))
    return np.stack(axes, axis=1) * 10 ** (rng.uniform(-6, 6) / 20)


def make_set(root: Path, seed: int, fault: str, strength: float = 1.0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(10 * SR) / SR

    def write(path: Path, x: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, np.c_[t, x], delimiter=",", header="time_s,x,y,z", comments="", fmt="%.5f")

    for i in range(60):
        write(root / "train" / f"r{i:02d}.csv", recording(rng, None))
    for i in range(40):
        write(root / "test" / "normal" / f"n{i:02d}.csv", recording(rng, None))
        write(root / "test" / "anomalous" / f"a{i:02d}.csv", recording(rng, fault, strength))


SETS = {"impacts_one_axis": (0, "impacts", 0.1), "faint_impacts_one_axis": (1, "impacts", 0.06),
        "looseness_all_axes": (2, "looseness", 2.0), "faint_looseness_all_axes": (3, "looseness", 1.15)}
ARMS = {"survey (every axis)": [], "mixed": ["audio.channel=null"], "axis 1 alone": ["audio.channel=1"],
        "axis 0 alone": ["audio.channel=0"]}


def bridge_set(root: Path, seed: int = 0) -> None:
    import json
    import os

    from latentbridge.cli import main as cli

    raw = root / "raw"
    if not (raw / "manifest.json").exists():
        assert cli(["data", "synth", "bridge", "--out", str(raw), "--force"]) == 0
    states = json.loads((raw / "manifest.json").read_text())["states"]
    rng = np.random.default_rng(seed)
    healthy = [states[i] for i in rng.permutation(len(states)) if states[i]["healthy"]]
    damaged = [states[i] for i in rng.permutation(len(states)) if not states[i]["healthy"]][:40]
    n_train = len(healthy) * 6 // 10
    for sub, group in (("train", healthy[:n_train]), ("test/normal", healthy[n_train:]), ("test/anomalous", damaged)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for st in group:
            for r in st["recordings"]:
                link = root / sub / f"{st['test_id']}_{Path(r['path']).name}"
                if not link.exists():
                    os.symlink((raw / r["path"]).resolve(), link)


def _slug(arm: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in arm)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default=None)
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="lb_axes_"))
    rows = []
    for name, (seed, fault, amp) in SETS.items():
        data = work / name / "data"
        if not (data / "train").is_dir():
            make_set(data, seed, fault, amp)
        for arm, overrides in ARMS.items():
            scores = ("knn_channel_max",) if arm.startswith("survey") else ()
            rows.append(_row(name, arm, run(data, work / name / _slug(arm), overrides, scores)))
    data = work / "bridge_8_sensors" / "data"
    bridge_set(data)
    survey = run(data, work / "bridge_8_sensors" / "survey", [], ("knn_channel_max",))
    rows.append(_row("bridge_8_sensors", "survey (every axis, finer STFT)", survey))
    rows.append(_row("bridge_8_sensors", "mixed", run(data, work / "bridge_8_sensors" / "mixed", ["audio.channel=null"])))
    rule = time_rule(survey["n_fft_reason"])
    for arm, extra in (("every axis, the time rule's STFT", []),
                       ("mixed, the time rule's STFT", ["audio.channel=null"])):
        rows.append(_row("bridge_8_sensors", arm,
                         run(data, work / "bridge_8_sensors" / _slug(arm), rule + extra)))
        rows[-1]["overrides"] = rule + extra
    print(table(rows, ["set", "settings", "auc", "pauc", "auc_knn_channel_max", "pauc_knn_channel_max", "seconds"],
                {"auc": ".3f", "pauc": ".3f"}))
    write_results("multi_axis", {"work": str(work), "rows": rows})
    return 0


def _row(name: str, arm: str, r: dict) -> dict:
    row = {"set": name, "settings": arm, "auc": r["auc"], "pauc": r["pauc"], "seconds": r["seconds"],
           **{k: v for k, v in r.items() if k.endswith("knn_channel_max")}}
    print(table([row], ["set", "settings", "auc", "pauc", "auc_knn_channel_max", "seconds"],
                {"auc": ".3f", "pauc": ".3f"}), flush=True)
    return row


if __name__ == "__main__":
    raise SystemExit(main())
