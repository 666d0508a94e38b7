"""A second judge of spoken digits that reads the *waveform*, not the models' log-mel features.

Coherence of generated spoken digits is measured by the FSDD classifier on the same 64-band
log-mel features the generative models produce, so a generated spectrogram can carry what that
classifier keys on without sounding like the digit. This judge is independent of them: MFCC
statistics of the audio (librosa: 40 mel bands on 512-sample frames, 20 coefficients, their
deltas; means and standard deviations over the clip) and a multinomial logistic regression, trained
on the FSDD training clips. Its accuracy on Griffin-Lim audio of *real* log-mels is the ceiling a
generated spectrogram can reach through that route (:func:`WaveformJudge.ceiling`).

The fitted judge is cached as ``.npz`` (plain arrays) + JSON, never pickled.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentbridge.errors import os_reason

log = logging.getLogger(__name__)

N_MFCC = 20


def mfcc_statistics(waves: np.ndarray, sample_rate: int) -> np.ndarray:
    """(N, T) clips → (N, 80): means and standard deviations of 20 MFCCs and their deltas."""
    import librosa

    out = []
    for w in np.asarray(waves, dtype=np.float32):
        m = librosa.feature.mfcc(y=w, sr=sample_rate, n_mfcc=N_MFCC, n_fft=512, hop_length=128, n_mels=40)
        d = librosa.feature.delta(m, width=5) if m.shape[1] >= 5 else np.zeros_like(m)
        out.append(np.concatenate([m.mean(1), m.std(1), d.mean(1), d.std(1)]))
    return np.asarray(out, dtype=np.float64)


@dataclass
class WaveformJudge:
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    sample_rate: int
    info: dict = field(default_factory=dict)

    def predict(self, waves: np.ndarray) -> np.ndarray:
        x = (mfcc_statistics(waves, self.sample_rate) - self.mean) / self.scale
        return np.argmax(x @ self.coef.T + self.intercept, axis=1)

    def accuracy(self, waves: np.ndarray, labels) -> float:
        return float(np.mean(self.predict(waves) == np.asarray(labels)))

    @classmethod
    def fit(cls, waves: np.ndarray, labels, sample_rate: int, seed: int = 0) -> "WaveformJudge":
        from sklearn.linear_model import LogisticRegression

        x = mfcc_statistics(waves, sample_rate)
        mean, scale = x.mean(0), x.std(0) + 1e-9
        lr = LogisticRegression(max_iter=3000, C=1.0, random_state=seed).fit((x - mean) / scale, np.asarray(labels))
        return cls(mean, scale, lr.coef_, lr.intercept_, int(sample_rate),
                   {"n_train": int(len(labels)), "features": "MFCC (20) + deltas, mean and std (librosa)",
                    "classifier": "multinomial logistic regression"})

    def save(self, folder: Path) -> None:
        from latentbridge.utils import atomic_path, atomic_write_json

        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "judge.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept)
        atomic_write_json(folder / "judge.json", {"sample_rate": self.sample_rate, **self.info})

    @classmethod
    def load(cls, folder: Path) -> "WaveformJudge":
        arrays = np.load(folder / "judge.npz", allow_pickle=False)
        info = json.loads((folder / "judge.json").read_text())
        return cls(arrays["mean"], arrays["scale"], arrays["coef"], arrays["intercept"], int(info["sample_rate"]), info)


def judge_dir(spec, cache_dir: Path | None = None) -> Path:
    """Where the judge for FSDD clips cut like ``spec`` is cached (beside the digit classifiers)."""
    from latentbridge.data.feature_cache import cache_home

    return (cache_dir or cache_home() / "classifiers") / f"fsdd_waveform_judge_{spec.sample_rate}"


def fit_waveform_judge(fsdd_root, spec, folder: Path, limit: int | None = None, seed: int = 0) -> WaveformJudge:
    """Fit the judge on the FSDD training clips (``limit``: a seeded subset of them, for quick
    checks), record its accuracy on the real test clips and save it in ``folder``."""
    from latentbridge.data.digits import load_clips
    from latentbridge.data.sources import FSDD
    from latentbridge.tasks.classify import data_path, data_stamp

    ds = FSDD(fsdd_root)
    train, test = ds.split("train"), ds.split("test")
    if limit is not None and limit < len(train):
        keep = np.sort(np.random.default_rng(seed).permutation(len(train))[:limit])
        train = [train[i] for i in keep]
    judge = WaveformJudge.fit(load_clips([it.path for it in train], spec), [it.digit for it in train],
                              spec.sample_rate, seed)
    judge.info["test_accuracy_real_clips"] = judge.accuracy(load_clips([it.path for it in test], spec),
                                                            [it.digit for it in test])
    judge.info["data_root"], judge.info["files_stamp"] = str(data_path(fsdd_root)), data_stamp("fsdd", fsdd_root)
    try:
        judge.save(folder)
    except OSError as e:  # a read-only or full cache: the judge serves this run (an evaluation stopped on it)
        log.warning("the waveform judge serves this run only: its cache folder %s cannot be written (%s; "
                    "LATENTBRIDGE_CACHE=DIR keeps it in a writable folder)", folder, os_reason(e))
    return judge


def load_waveform_judge(fsdd_root, spec, cache_dir: Path | None = None) -> WaveformJudge:
    """The cached judge for FSDD clips cut like ``spec`` (fitted on the training split on first use,
    with its test accuracy on real clips recorded)."""
    from latentbridge.tasks.classify import judge_place, same_data

    folder = judge_place(judge_dir(spec, cache_dir), fsdd_root, "judge.json", "data_root")
    if (folder / "judge.npz").is_file() and (folder / "judge.json").is_file():
        try:
            judge = WaveformJudge.load(folder)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:  # cut short (a killed fit): refitted
            log.warning("%s: cannot read the waveform judge (%s): fitting it again", folder, e)
        else:
            # (one that does not record its data: refitted; one of the folder before an edit too)
            if same_data(judge.info.get("data_root"), fsdd_root, judge.info.get("files_stamp"), "fsdd"):
                return judge
    return fit_waveform_judge(fsdd_root, spec, folder)


def ceiling(judge: WaveformJudge, log_mels: np.ndarray, labels, spec, n_iter: int = 32) -> float:
    """The judge's accuracy on Griffin-Lim audio of real log-mels (through the same inversion as the
    generated ones, :func:`latentbridge.tasks.crossmodal.to_waves`): what a perfect spectrogram reaches."""
    from latentbridge.tasks.crossmodal import to_waves

    return judge.accuracy(to_waves(spec, log_mels, n_iter), labels)
