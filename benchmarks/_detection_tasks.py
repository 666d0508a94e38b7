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

Tasks that tell a criterion of multimodality (several sources in the normal data) apart from the number of
normal files and from gain changes (``CHOICE``; a fit-time choice between detectors is judged on them):

* ``fsdd_unseen_few``   several sources, few files: fsdd_unseen's speakers and test files, trained on index 5
                        of each digit only (4 speakers x 10 clips = 40 train clips).
* ``synth_many``        one source, many files: the synthetic machine (seed 3) as 160 train clips of 5 s,
                        tested on 40 + 40 clips of 5 s.
* ``fsdd_unseen_gain``  several sources under gain changes: fsdd_unseen's files, each re-recorded at a gain
                        of its own (train within ±6 dB, test normal and anomalous alike from -18 to +6 dB, as
                        ``gain`` does; a limiter keeps every peak under 0.98).
* ``machines_mixed``    several machines, few files: the synthetic machine (seed 4) rendered at three rates
                        and written at 16 kHz, so every frequency is scaled by 1.6, 1 or 0.625 (shaft 43-53,
                        27-33 or 17-21 Hz: three machines of one design, resonances moved with them); 20 train
                        clips of 10 s per machine (60), 14 + 14 test clips per machine (42 + 42).

A probe added after the four tasks' first results (``PROBES``; no rule is chosen on it):

* ``synth_many_480``    synth_many with 480 train clips (its 160 among them) and the same test files: does a
                        criterion move with the number of files alone?

FSDD folders are symlinks to the read-only recordings (never copied); fsdd_unseen_gain writes scaled copies
under the data folder (outside the repository).
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


def _write(path: Path, x: np.ndarray, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(np.round(x * 32767.0), -32767, 32767).astype(np.int16), sr, subtype="PCM_16")


def _limit(x: np.ndarray) -> np.ndarray:
    """A recorder's limiter: never clip."""
    return x / max(1.0, np.abs(x).max() / 0.98)


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
            _write(root / "test" / "anomalous" / name, _limit(x))
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
                x = _limit(x)
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
    if name in CHOICE:
        return CHOICE[name](root)
    if name in PROBES:
        return PROBES[name](root)
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


# ----------------------------------------------------------------------------- multimodality vs file count and gain


def fsdd_unseen_few(root: Path, index: int = 5, name: str = "fsdd_unseen_few") -> Task | None:
    rec = fsdd_recordings()
    if rec is None:
        return None
    _fsdd_farm(root, rec, lambda s, i: s in KNOWN and i == index, lambda s, i: s in KNOWN and i < 5,
               lambda s, i: s in UNSEEN and i < 5)
    return Task(name, f"FSDD, unseen speakers ({', '.join(UNSEEN)}) among known ones ({', '.join(KNOWN)}), few "
                      f"files: 40 train clips (index {index} of each digit), 200 normal vs 100 anomalous",
                root / "train" / "normal", root / "test", _speaker)


def synth_many(root: Path, n_train: int = 160, n_test: int = 40, duration_s: float = 5.0, seed: int = 3,
               name: str = "synth_many") -> Task:
    from latentbridge.data.synth.machine import ANOMALY_KINDS, synth_clip

    if not _done(root):
        for i in range(n_train):
            _write(root / "train" / "normal" / f"normal_{i:04d}.wav",
                   synth_clip((seed, 0, i), sample_rate=SR, duration_s=duration_s)[0])
        for label, group in (("normal", 1), ("anomalous", 2)):
            for i in range(n_test):
                kind = ANOMALY_KINDS[i % len(ANOMALY_KINDS)] if label == "anomalous" else None
                x = synth_clip((seed, group, i), kind=kind, sample_rate=SR, duration_s=duration_s)[0]
                _write(root / "test" / label / (f"{label}_{kind}_{i:04d}.wav" if kind else f"normal_{i:04d}.wav"), x)
        _mark(root, {"seed": seed, "n_train": n_train, "n_test": n_test, "duration_s": duration_s})
    return Task(name, f"one synthetic machine, many files: {n_train} train, {n_test} + {n_test} test clips of "
                      f"{duration_s:g} s at 16 kHz", root / "train" / "normal", root / "test", _kind)


def fsdd_unseen_gain(root: Path, seed: int = 4, train_db: float = 6.0, low_db: float = -18.0, high_db: float = 6.0,
                     name: str = "fsdd_unseen_gain") -> Task | None:
    rec = fsdd_recordings()
    if rec is None:
        return None
    if not _done(root):
        rng = np.random.default_rng(seed)
        gains = []
        for f in sorted(rec.glob("*.wav")):
            _, spk, idx = f.stem.split("_")
            idx = int(idx)
            if spk in KNOWN and 5 <= idx < 30:
                where, g = "train/normal", rng.uniform(-train_db, train_db)
            elif (spk in KNOWN or spk in UNSEEN) and idx < 5:
                where, g = "test/normal" if spk in KNOWN else "test/anomalous", rng.uniform(low_db, high_db)
            else:
                continue
            x, sr = sf.read(f, dtype="float64")
            _write(root / where / f.name, _limit(x * 10 ** (g / 20)), sr)
            gains.append({"file": f"{where}/{f.name}", "gain_db": round(float(g), 2)})
        _mark(root, {"seed": seed, "train_gain_db": [-train_db, train_db], "test_gain_db": [low_db, high_db],
                     "files": gains})
    return Task(name, f"FSDD, unseen speakers ({', '.join(UNSEEN)}) among known ones ({', '.join(KNOWN)}) under "
                      f"gain changes: 1,000 train clips within ±{train_db:g} dB, 200 normal vs 100 anomalous test "
                      f"clips each at a gain from {low_db:g} to +{high_db:g} dB",
                root / "train" / "normal", root / "test", _speaker)


#: the three machines of machines_mixed: rendering rate / written rate (every frequency scaled by its inverse)
RATE_FACTORS = (0.625, 1.0, 1.6)


def machines_mixed(root: Path, n_train: int = 20, n_test: int = 14, duration_s: float = 10.0, seed: int = 4,
                   name: str = "machines_mixed") -> Task:
    from latentbridge.data.synth.machine import ANOMALY_KINDS, synth_clip

    if not _done(root):
        for m, f in enumerate(RATE_FACTORS):
            def clip(group, i, kind=None):
                return synth_clip((seed, group, m, i), kind=kind, sample_rate=int(round(SR * f)),
                                  duration_s=duration_s / f)[0]

            for i in range(n_train):
                _write(root / "train" / "normal" / f"normal_m{m}_{i:04d}.wav", clip(0, i))
            for i in range(n_test):
                _write(root / "test" / "normal" / f"normal_m{m}_{i:04d}.wav", clip(1, i))
                kind = ANOMALY_KINDS[i % len(ANOMALY_KINDS)]
                _write(root / "test" / "anomalous" / f"anomalous_{kind}_m{m}_{i:04d}.wav", clip(2, i, kind))
        _mark(root, {"seed": seed, "rate_factors": RATE_FACTORS, "n_train_per_machine": n_train,
                     "n_test_per_machine": n_test})
    k = len(RATE_FACTORS)
    return Task(name, f"{k} synthetic machines of one design (frequencies scaled by "
                      f"{', '.join(f'{1 / f:g}' for f in RATE_FACTORS)}): {k * n_train} train, {k * n_test} + "
                      f"{k * n_test} test clips of {duration_s:g} s at 16 kHz",
                root / "train" / "normal", root / "test", _kind)


#: tasks that tell multimodality apart from the number of files and from gain changes (``detection_choice.py``)
CHOICE = {"fsdd_unseen_few": fsdd_unseen_few, "synth_many": synth_many, "fsdd_unseen_gain": fsdd_unseen_gain,
          "machines_mixed": machines_mixed}

#: probes added after the tasks above were measured
PROBES = {"synth_many_480": lambda root: synth_many(root, n_train=480, name="synth_many_480")}
