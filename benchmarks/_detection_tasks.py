"""The detection benchmark's tasks: each builds (once, under a data folder) ``train/normal`` and
``test/{normal,anomalous}`` and says how its anomalous files group (fault kind, speaker).

* ``synth``        the default synthetic machine set (``latentbridge data synth machine --seed 0``).
* ``fsdd_george``, ``fsdd_jackson``  one FSDD speaker is the normal "machine": train on its index
                   5-49 (450 clips), test on its index 0-4 (50) against the other five speakers'
                   index 0-4 (250).
* ``fsdd_unseen``  an unseen speaker among several known ones: train on george, jackson, lucas and
                   nicolas (index 5-29, 1,000 clips), test on their index 0-4 (200) against theo's and
                   yweweler's index 0-4 (100).
* ``faint_long``   faint faults in long recordings: 30-s machine recordings (seed 1) in which an
                   anomalous file carries its fault for 3 s only (10 % of the file), spliced into the
                   same recording without the fault (same noise; 50-ms cross-fades).
* ``gain``         faults under gain changes: the machine set's training recordings (seed 2, gains
                   within ±6 dB), test recordings (normal and anomalous alike) re-recorded at a gain
                   drawn from -18 to +6 dB, so loudness neither gives the anomalies away nor
                   matches training.

FSDD folders are symlinks to the read-only recordings (never copied).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from _common import fsdd_recordings, make_synth_machine

SR = 16000


@dataclass
class Task:
    name: str
    description: str
    train: Path
    test: Path
    group: Callable[[Path], str]  # group of an anomalous test file


def _kind(p: Path) -> str:
    return p.name.split("_")[1]


def _speaker(p: Path) -> str:
    return p.stem.split("_")[1]


def _done(root: Path) -> bool:
    return (root / ".complete").exists()


def _mark(root: Path, info: dict) -> None:
    (root / ".complete").write_text(json.dumps(info, indent=1))


def synth(root: Path, seed: int = 0, name: str = "synth") -> Task:
    if not _done(root):
        make_synth_machine(root, seed=seed)
        _mark(root, {"seed": seed})
    return Task(name, f"synthetic machine set, seed {seed}: 60 train, 40 + 40 test clips of 10 s at 16 kHz",
                root / "train" / "normal", root / "test", _kind)


def _fsdd_farm(root: Path, rec: Path, train_of, test_normal_of, test_anomalous_of) -> None:
    if _done(root):
        return
    for sub in ("train/normal", "test/normal", "test/anomalous"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    n = {"train": 0, "normal": 0, "anomalous": 0}
    for f in sorted(rec.glob("*.wav")):
        _, spk, idx = f.stem.split("_")
        idx = int(idx)
        for where, rule in (("train/normal", train_of), ("test/normal", test_normal_of),
                            ("test/anomalous", test_anomalous_of)):
            if rule(spk, idx):
                dest = root / where / f.name
                if not dest.exists():
                    dest.symlink_to(f)
                n[where.split("/")[-1] if where != "train/normal" else "train"] += 1
    _mark(root, n)


def fsdd_speaker(root: Path, normal: str, name: str | None = None) -> Task | None:
    rec = fsdd_recordings()
    if rec is None:
        return None
    _fsdd_farm(root, rec, lambda s, i: s == normal and i >= 5, lambda s, i: s == normal and i < 5,
               lambda s, i: s != normal and i < 5)
    return Task(name or f"fsdd_{normal}", f"FSDD, normal speaker {normal}: 450 train clips, 50 normal vs 250 other "
                                  "speakers' test clips (8 kHz, 0.1-2.3 s)",
                root / "train" / "normal", root / "test", _speaker)


KNOWN = ("george", "jackson", "lucas", "nicolas")
UNSEEN = ("theo", "yweweler")


def fsdd_unseen(root: Path, known=KNOWN, unseen=UNSEEN, name: str = "fsdd_unseen") -> Task | None:
    rec = fsdd_recordings()
    if rec is None:
        return None
    _fsdd_farm(root, rec, lambda s, i: s in known and 5 <= i < 30, lambda s, i: s in known and i < 5,
               lambda s, i: s in unseen and i < 5)
    return Task(name, f"FSDD, unseen speakers ({', '.join(unseen)}) among known ones "
                      f"({', '.join(known)}): 1,000 train clips, 200 normal vs 100 anomalous",
                root / "train" / "normal", root / "test", _speaker)


def _write(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(np.round(x * 32767.0), -32767, 32767).astype(np.int16), SR, subtype="PCM_16")


def _splice(normal: np.ndarray, faulty: np.ndarray, start: int, length: int, fade: int) -> np.ndarray:
    w = np.zeros(len(normal))
    w[start:start + length] = 1.0
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
    w[start:start + fade] = ramp
    w[start + length - fade:start + length] = ramp[::-1]
    return (1 - w) * normal + w * faulty


def faint_long(root: Path, n_train: int = 30, n_test: int = 24, duration_s: float = 30.0,
               fault_s: float = 3.0, seed: int = 1, name: str = "faint_long") -> Task:
    from latentbridge.data.synth.machine import ANOMALY_KINDS, synth_clip

    if not _done(root):
        rng = np.random.default_rng(seed)
        files = []
        for i in range(n_train):
            _write(root / "train" / "normal" / f"normal_{i:04d}.wav",
                   synth_clip((seed, 0, i), sample_rate=SR, duration_s=duration_s)[0])
        for i in range(n_test):
            _write(root / "test" / "normal" / f"normal_{i:04d}.wav",
                   synth_clip((seed, 1, i), sample_rate=SR, duration_s=duration_s)[0])
        for i in range(n_test):
            kind = ANOMALY_KINDS[i % len(ANOMALY_KINDS)]
            clean = synth_clip((seed, 2, i), sample_rate=SR, duration_s=duration_s)[0]
            faulty, params = synth_clip((seed, 2, i), kind=kind, sample_rate=SR, duration_s=duration_s)
            n, length = len(clean), int(fault_s * SR)
            start = int(rng.integers(0, n - length))
            x = _splice(clean, faulty, start, length, int(0.05 * SR))
            name = f"anomalous_{kind}_{i:04d}.wav"
            _write(root / "test" / "anomalous" / name, x / max(1.0, np.abs(x).max() / 0.98))
            files.append({"file": name, "fault_start_s": start / SR, "severity": params["anomaly"]["severity"]})
        _mark(root, {"seed": seed, "duration_s": duration_s, "fault_s": fault_s, "anomalous": files})
    return Task(name, f"faint faults in long recordings: {n_train} train, {n_test} + {n_test} test "
                              f"recordings of {duration_s:g} s, each fault present for {fault_s:g} s only",
                root / "train" / "normal", root / "test", _kind)


def gain(root: Path, n_train: int = 60, n_test: int = 40, seed: int = 2, low_db: float = -18.0,
         high_db: float = 6.0, name: str = "gain") -> Task:
    from latentbridge.data.synth.machine import ANOMALY_KINDS, synth_clip

    if not _done(root):
        rng = np.random.default_rng(seed)
        gains = []
        for i in range(n_train):
            _write(root / "train" / "normal" / f"normal_{i:04d}.wav",
                   synth_clip((seed, 0, i), sample_rate=SR, duration_s=10.0)[0])
        for label, group in (("normal", 1), ("anomalous", 2)):
            for i in range(n_test):
                kind = ANOMALY_KINDS[i % len(ANOMALY_KINDS)] if label == "anomalous" else None
                x = synth_clip((seed, group, i), kind=kind, sample_rate=SR, duration_s=10.0)[0]
                g = float(rng.uniform(low_db, high_db))
                x = x * 10 ** (g / 20)
                x = x / max(1.0, np.abs(x).max() / 0.98)  # a recorder's limiter: never clip
                name = f"{label}_{kind}_{i:04d}.wav" if kind else f"normal_{i:04d}.wav"
                _write(root / "test" / label / name, x)
                gains.append({"file": name, "gain_db": round(g, 2)})
        _mark(root, {"seed": seed, "test_gain_db": [low_db, high_db], "files": gains})
    return Task(name, f"faults under gain changes: {n_train} train clips (gains within ±6 dB), {n_test} + "
                        f"{n_test} test clips each at a gain drawn from {low_db:g} to +{high_db:g} dB",
                root / "train" / "normal", root / "test", _kind)


def build(name: str, data: Path) -> Task | None:
    root = data / name
    if name in VALIDATION:
        return _validation(name, root)
    if name == "synth":
        return synth(root)
    if name.startswith("fsdd_") and name != "fsdd_unseen":
        return fsdd_speaker(root, name.split("_", 1)[1])
    if name == "fsdd_unseen":
        return fsdd_unseen(root)
    if name == "faint_long":
        return faint_long(root)
    if name == "gain":
        return gain(root)
    raise SystemExit(f"unknown task {name!r}")


TASKS = ("synth", "fsdd_george", "fsdd_jackson", "fsdd_unseen", "faint_long", "gain")

#: Replicates of the six tasks with other seeds and other speakers, to choose a detector's settings on
#: data other than the benchmark's own (``detection_variants.py --select-on``).
VALIDATION = ("v_synth", "v_fsdd_lucas", "v_fsdd_nicolas", "v_fsdd_unseen", "v_faint_long", "v_gain")


def _validation(name: str, root: Path) -> Task | None:
    if name == "v_synth":
        return synth(root, seed=10, name=name)
    if name in ("v_fsdd_lucas", "v_fsdd_nicolas"):
        return fsdd_speaker(root, name.rsplit("_", 1)[1], name=name)
    if name == "v_fsdd_unseen":
        return fsdd_unseen(root, known=("theo", "yweweler", "george", "lucas"), unseen=("jackson", "nicolas"),
                           name=name)
    if name == "v_faint_long":
        return faint_long(root, seed=11, name=name)
    return gain(root, seed=12, name=name)
