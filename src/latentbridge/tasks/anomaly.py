"""Acoustic anomaly detection: fit on normal recordings, calibrate the threshold, score recordings.

Compute only: :func:`fit` writes its model folder (through the shared training run), :func:`score` and :func:`evaluate`
return a :class:`ScoreResult` and write nothing (``latentbridge.report.anomaly`` turns it into files), :func:`calibrate`
rewrites a model folder's threshold through the hub, so its checksums stay whole. Every step reuses the same pieces:
the saved transform (:mod:`latentbridge.transforms.spec`) and :class:`~latentbridge.data.audio.FeatureExtractor` for
features, the model's own per-sample ``score``, and :mod:`latentbridge.metrics.anomaly`.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentbridge.data.audio import FeatureExtractor, WindowFeatures
from latentbridge.data.blocks import read_in_blocks, window_features
from latentbridge.data.labels import list_normal_files
from latentbridge.data.survey import band_profile_db, clipping_summary, clipping_warnings, codec_counts
from latentbridge.errors import ConfigError, DataError, LatentbridgeError
from latentbridge.metrics.anomaly import (AGGREGATES, aggregate_scores, calibrate_threshold, detection_metrics,
                                          group_metrics, partial_auc, roc_auc)
from latentbridge.models.detectors import LENGTH_GRID
from latentbridge.models.hub import SavedModel, load_model
from latentbridge.tasks.anomaly_card import model_card
from latentbridge.tasks.anomaly_checks import (calibration_shift, calibration_within_band, dead_channel_warning,
                                             warn_recordings)
from latentbridge.outputs import FolderLock
from latentbridge.utils import atomic_write_json, batched, file_names, listed

log = logging.getLogger(__name__)

#: Scores that are distances or errors, never below 0 (a negative threshold would flag every window).
NONNEGATIVE_SCORES = frozenset({"mse", "frame_max", "l1", "bce", "mahalanobis", "knn", "latent_knn",
                                "latent_mahalanobis"})
#: the workflows whose model folders are detectors: an audio autoencoder's once calibrated (`anomaly calibrate`)
DETECTOR_TASKS = ("anomaly", "audio_ae")


# ----------------------------------------------------------------------------- scoring core


def no_decision(scores) -> str | None:
    """Why windows scored ``scores`` give their file no decision (NaN or inf: compared with the threshold, NaN read as
    normal), or None: the one text of `anomaly score` and the server's upload."""
    bad = ~np.isfinite(np.asarray(scores, dtype=np.float64))
    return f"the model gave non-finite scores for {int(bad.sum())} of {bad.size} windows; no decision" if bad.any() \
        else None


def score_features(model, features: np.ndarray, method: str = "mse", n_samples: int = 32, batch_size: int = 256,
                   seed: int = 0, generator: torch.Generator | None = None) -> np.ndarray:
    """One score per window; deterministic for ``mse``/``frame_max``, Monte Carlo for ``elbo``/``iwae``
    drawn from a generator seeded with ``seed`` (the global RNG is never touched: safe in threads), or ``generator``
    (a recording's windows scored a batch at a time draw what scoring them at once draws). The
    windows go to the model's device (a GPU in ``anomaly score --accelerator gpu``), the scores come back."""
    model.eval()
    if len(features) == 0:
        return np.zeros(0)
    if isinstance(features, np.ndarray) and features.dtype != np.float32:  # numpy's float64 met torch's dtype error
        features = features.astype(np.float32)
    g = torch.Generator().manual_seed(seed) if generator is None else generator
    dev = next(iter(model.parameters()), next(iter(model.buffers()), torch.zeros(0))).device
    return batched(lambda x: model.score(x.to(dev), method=method, n_samples=n_samples, generator=g).double().cpu(),
                   features, batch_size=batch_size).numpy()


class Detector:
    """A saved anomaly model ready to score waveforms or files: with its calibrated score and threshold,
    or with ``score``, another of the model's scores and the threshold calibrated for it at fit time."""

    def __init__(self, saved: SavedModel, score: str | None = None, *, calibrated: bool = True):
        from latentbridge.transforms.spec import AudioTransform, build_spectrogram

        self.saved = saved
        self.model = saved.model
        self.cfg = saved.workflow
        if self.cfg.task not in DETECTOR_TASKS:
            raise LatentbridgeError(f"model folder {saved.path}: a {self.cfg.task!r} model, not an anomaly detector")
        self.spec = saved.transform
        if not isinstance(self.spec, AudioTransform):
            raise LatentbridgeError(f"model folder {saved.path}: its transform is not an audio transform")
        self.transform = build_spectrogram(self.spec)
        self.anomaly = saved.info.get("anomaly") or {}
        if "threshold" not in self.anomaly and calibrated:  # an audio autoencoder's run, before calibrate
            raise LatentbridgeError(f"model folder {saved.path}: no calibrated threshold in config.json "
                                    f"(calibrate it: latentbridge anomaly calibrate {saved.path} NORMAL_DIR)")
        self.threshold = float(self.anomaly.get("threshold", np.nan))
        self.method = self.anomaly.get("score") or getattr(self.model, "default_score", "mse")
        if score is not None and score != self.method:
            _check_score(self.model, score, saved.path)
            thresholds = self.anomaly.get("thresholds") or {}
            if score not in thresholds:
                raise LatentbridgeError(f"model folder {saved.path}: no threshold calibrated for score {score!r} "
                                        f"(calibrate it: latentbridge anomaly calibrate {saved.path} NORMAL_DIR "
                                        f"--score {score})")
            self.method, self.threshold = score, float(thresholds[score])
        # the rate of vibration CSVs and .mat files that give none (the model's audio.csv_rate, or --sample-rate at
        # scoring: read_rate); a file that gives its own is read at it
        self.csv_rate = self.spec.windowing.csv_rate

    @classmethod
    def load(cls, model_dir: str | Path, score: str | None = None, *, calibrated: bool = True) -> "Detector":
        """``calibrated=False``: a model without a threshold yet (``calibrate`` sets its first)."""
        return cls(load_model(model_dir), score, calibrated=calibrated)

    @functools.cached_property
    def anomaly_config(self):
        """The run's ``anomaly`` section (an audio autoencoder's run has none: the defaults)."""
        from latentbridge.config.sections import AnomalyConfig

        return getattr(self.cfg, "anomaly", None) or AnomalyConfig()

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def iwae_samples(self) -> int:
        return self.anomaly_config.iwae_samples

    @property
    def n_channels(self) -> int:
        """The channels of a window as the model reads it (1: the mono mix or one channel; ``audio.channel: all``:
        every channel of the recordings it was fitted on)."""
        return int(self.model.input_shape[0])

    def extractor(self, **kw) -> FeatureExtractor:
        ex = FeatureExtractor.from_spec(self.spec, self.transform, cache_dir=self.cfg.data.cache_dir,
                                        n_channels=self.n_channels, **{"csv_rate": self.csv_rate, **kw})
        ex.fitted_channels = self.fitted_channels
        return ex

    @property
    def fitted_channels(self) -> int | None:  # the training recordings' channel count (None: of mixed counts, unknown)
        counts = {int(c) for c in ((self.saved.info.get("data") or {}).get("survey") or {}).get("channels") or {}}
        return next(iter(counts)) if len(counts) == 1 else None

    def read_rate(self, sample_rate: float | None) -> "Detector":
        """Read vibration files that give no rate at ``sample_rate`` Hz (``--sample-rate``); None keeps the model's."""
        if sample_rate is not None:
            from latentbridge.io.vibration import given_rate

            self.csv_rate = given_rate(sample_rate)
        return self

    @functools.cached_property
    def _stream_extractor(self) -> FeatureExtractor:
        return self.extractor(use_cache=False)

    def score_features(self, features: np.ndarray) -> np.ndarray:
        return score_features(self.model, features, self.method, self.iwae_samples)

    def window_features(self, windows: np.ndarray) -> np.ndarray:
        """(n, window_samples) (or (n, C, window_samples)) waveforms at the model's rate (floats at full scale 1, or
        integer PCM) → their features; windows of another length or channel count are a ValueError
        (:func:`~latentbridge.io.windows.check_windows`)."""
        from latentbridge.io.windows import check_windows

        windows = check_windows(windows, self.spec.window_samples, self.sample_rate, self.n_channels)
        return self._stream_extractor.features_of_windows(windows)

    def score_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, window_samples) waveforms at the model's rate → (scores, decisions) (:meth:`window_features`' rules), a
        window holding NaN or inf scores NaN (no decision: not an alarm; the commands say "no decision")."""
        scores = self.score_features(self.window_features(windows))
        return scores, scores > self.threshold


def _check_score(model, score: str, where) -> None:
    if not model.supports_score(score):
        offered = [m for m in model.all_scores if model.supports_score(m)]
        raise LatentbridgeError(f"model folder {where}: {type(model).__name__} offers the scores {offered}, "
                                f"not {score!r}")


# ----------------------------------------------------------------------------- fit


@dataclass
class FitResult:
    out_dir: Path
    threshold: float
    n_train_windows: int
    n_val_windows: int
    seconds: float


#: fewer normal windows than this give a threshold with a warning (in the log, the model card, config.json)
MIN_CALIBRATION_WINDOWS = 10


def _warn_rate_unused(sample_rate, files) -> None:
    """``--sample-rate`` given for recordings none of which is a vibration table (passed over without a word)."""
    from latentbridge.io.audio import is_table

    if sample_rate is not None and not any(map(is_table, files)):
        log.warning("--sample-rate %g: none of the recordings is a vibration table (CSV or .mat), whose rate it "
                    "sets where they give none; audio files are read at their own rates", sample_rate)


def without_fitted_windows(model, features: np.ndarray, where, what: str, advice: str,
                           copies: np.ndarray | None = None) -> np.ndarray:
    """``features`` (normal windows to calibrate a threshold on) without those ``model``'s bank holds
    (:meth:`~latentbridge.models.detectors.KNNStatsDetector.fitted_windows`) and the ``copies`` of training windows
    (:func:`~latentbridge.data.holdout.copied_windows`: any model), said in a warning; a DataError at ``where`` when
    every window is one (``what``: the windows, in words; ``advice``: what to do then)."""
    bank = hasattr(model, "fitted_windows") and len(features) > 0 and len(model.bank) > 0
    fitted = batched(lambda x: model.fitted_windows(x), features, batch_size=256).numpy().astype(bool) if bank \
        else np.zeros(len(features), dtype=bool)
    if copies is not None:
        fitted |= copies
    if not fitted.any():
        return features
    why = ("windows the model was fitted on (the training recordings, or copies of them): a nearest-neighbour "
           "detector scores them 0 against themselves, which says nothing of how far new normal windows lie") if bank \
        else ("copies of training windows (the same samples under another name): a model scores what it was fitted on "
              "lower than new normal windows, and a threshold on them flags normal recordings")
    from latentbridge.data.silence import silent_frame_shares

    if (silent_frame_shares(features[fitted]) >= 1).all():  # (a gated logger's zeros: no recording was copied)
        why = ("windows of digital silence, alike in every recording and so among the training windows: a "
               "nearest-neighbour detector scores them 0, which says nothing of how far new normal windows lie")
    if fitted.all():
        raise DataError(where, f"every one of the {len(features)} windows of {what} is one of the {why}; {advice}")
    log.warning("%d of the %d windows of %s are %s: left out of the calibration", int(fitted.sum()), len(features),
                what, why)
    return features[~fitted]


def _calibration(model, features: np.ndarray, anomaly_cfg, method: str | None = None, k: float | None = None,
                 false_alarm_rate: float | None = None, score: str | None = None,
                 source: tuple | None = None) -> tuple[dict, np.ndarray]:
    """Threshold from normal windows' scores (``score``: the config's or the model's; plus an MSE threshold for the
    ONNX export of sampled scores), without the model's own windows (``source``: :func:`without_fitted_windows`)."""
    features = without_fitted_windows(model, features, *source) if source else features
    a = anomaly_cfg
    method = method or a.threshold_method
    k = a.k if k is None else k
    far = a.false_alarm_rate if false_alarm_rate is None else false_alarm_rate
    score = score or a.score or model.default_score
    scores = score_features(model, features, score, a.iwae_samples)
    calib = calibrate_threshold(scores, method=method, k=k, false_alarm_rate=far)
    info = {"score": score, **calib, "n_calibration_windows": int(len(scores))}
    if len(scores) < MIN_CALIBRATION_WINDOWS:
        info["warning"] = (f"the threshold rests on {len(scores)} normal window(s), too few to know how normal "
                           "scores spread: expect false alarms; calibrate on a folder of more normal recordings "
                           "(`latentbridge anomaly calibrate MODEL_DIR NORMAL_DIR`)")
        log.warning(info["warning"])
    elif method == "quantile" and far * len(scores) < 1:  # the quantile is the highest score: its rate unmeasured
        info["warning"] = (f"a false-alarm rate of {far:g} rests on {len(scores)} normal windows, fewer than one false "
                           f"alarm's worth ({1 / far:.0f}): the threshold is about their highest score and the rate "
                           "is not measured; calibrate on more normal recordings, or ask for a rate of at least "
                           f"{1 / len(scores):.2g}")
        log.warning(info["warning"])
    if score in SAMPLED_SCORES:  # ONNX exports MSE for sampled scores
        info["mse_threshold"] = calibrate_threshold(score_features(model, features, "mse"), method=method, k=k,
                                                    false_alarm_rate=far)["threshold"]
    # the same rule for every other score the model offers (sampled ones excepted: slow), so that
    # ``anomaly score --score NAME`` can use another score without refitting
    info["thresholds"] = {score: calib["threshold"], **{
        m: calibrate_threshold(score_features(model, features, m, a.iwae_samples), method=method, k=k,
                               false_alarm_rate=far)["threshold"]
        for m in model.all_scores if m != score and m not in SAMPLED_SCORES and model.supports_score(m)}}
    return info, scores


#: scores drawn by Monte Carlo (VAEs): calibrated only when chosen
SAMPLED_SCORES = ("elbo", "iwae")


def fit(cfg, out_dir: str | Path, *, resume: bool = False, force: bool = False, notify=None) -> FitResult | None:
    """Survey the training files and choose the audio settings the config does not set
    (:mod:`latentbridge.tasks.adapt`; each choice is passed to ``notify``, by default the log), train
    on the normal recordings, calibrate the threshold on held-out normal files, save the model.
    Returns None in the extra processes of a multi-process (DDP) run."""
    from latentbridge.tasks.adapt import adapt, csv_columns
    from latentbridge.tasks.pipeline import feature_training

    t0 = time.time()
    if not cfg.data.train_dir:
        raise ConfigError("data.train_dir: no training recordings given (a folder of normal recordings)")
    files = list_normal_files(cfg.data.train_dir)  # once, for the survey and the features
    cfg = csv_columns(cfg, files)  # a CSV's sensor columns read by their header names (the survey counts them)
    cfg, survey, choices = adapt(cfg, cfg.data.train_dir, files=files)
    for c in choices:
        (notify or log.info)(c.line())
    with feature_training(cfg, out_dir, cfg.data.train_dir, resume=resume, force=force, files=files) as fit_:
        if not fit_.trained:
            return None
        has_val = len(fit_.val) > 0
        calib_wf = fit_.val if has_val else fit_.train
        if not has_val:  # a bank of training windows scores them 0: "optimistic" said the opposite of what follows
            log.warning("no held-out normal files: the threshold is calibrated on training windows, " + (
                "which a nearest-neighbour detector scores 0 against themselves: nearly every new window will be "
                "flagged" if hasattr(fit_.model, "bank") else "which a model scores lower than new normal windows: "
                "expect false alarms") + "; hold out normal files (data.val_fraction, two files or more) or run "
                "`latentbridge anomaly calibrate RUN NORMAL_DIR`")
        anomaly_info, calib_scores = _calibration(fit_.model, calib_wf.features, cfg.anomaly, source=(
            cfg.data.train_dir, "the held-out normal files", "the normal recordings are copies of one another: give "
            "recordings that differ as normal ones do", fit_.val_copies) if has_val else None)
        anomaly_info["calibrated_on"] = "held-out normal files" if has_val else "training windows"
        atomic_write_json(fit_.run.dir / "calibration.json", {**anomaly_info, "scores": calib_scores.tolist()})
        data_info = {k: v for k, v in fit_.data_info.items() if k not in ("val_files", "val_from_s")}
        data_info["channels_read"] = int(fit_.model.input_shape[0])
        if getattr(fit_.model, "length_calibrated", False):  # (the model card says how short recordings are scored)
            table = dict(zip(LENGTH_GRID, fit_.model.params["length_scale"][fit_.model.default_score]))
            data_info["short_recordings"] = (
                f"their scores divided by {table[0.5]:.3g} where they fill half a window, {table[0.3]:.3g} three "
                "tenths (normal windows that short, over whole ones)")
        every = fit_.windows  # each file once (a split in time gives both sets every file)
        data_info["codecs"] = codec_counts(every.codecs or [])
        shares = list(every.clipped_shares)
        data_info["clipped_share_percentiles_0_10_50_90_100"] = clipping_summary(shares)
        for text in clipping_warnings(None, file_names(every.files), shares, training=True) + [
                dead_channel_warning(file_names(every.files), every.dead or [], cfg.audio.columns, training=True)]:
            if text:
                log.warning(text)
        rows = band_profile_db(every.features, every.file_index, len(every.files), fit_.spec.features)
        if rows is not None:  # each training file's spectrum: scoring names recordings far outside it in some band
            rows = rows[np.isfinite(rows).all(axis=1)]
            if len(rows):
                data_info["band_profile_db"] = {"min": np.round(rows.min(0), 1).tolist(),
                                                "max": np.round(rows.max(0), 1).tolist()}
        if survey is not None:
            data_info["survey"] = survey.summary()
            data_info["settings_chosen"] = [{"key": c.key, "value": c.value, "reason": c.reason} for c in choices]
        fit_.run.save(fit_.model, transform=fit_.spec, extra={"anomaly": anomaly_info, "data": data_info},
                      card=model_card(cfg, anomaly_info, data_info, fit_.run.summary))
        return FitResult(fit_.run.dir, float(anomaly_info["threshold"]), len(fit_.train),
                         int(anomaly_info["n_calibration_windows"]), time.time() - t0)  # (those the threshold reads)


# ----------------------------------------------------------------------------- calibrate


@dataclass
class CalibrationResult:
    model_dir: Path
    old_threshold: float | None
    threshold: float
    anomaly: dict
    old_score: str | None = None
    """The score the old threshold was of (``--score`` may change it)."""


def calibrate(model_dir: str | Path, normal_paths=None, **options) -> CalibrationResult:
    """:func:`_calibrate` holding the model folder's lock (two at once each wrote their change: one was lost)."""
    with FolderLock(model_dir, advice="wait for it to finish"):
        return _calibrate(model_dir, normal_paths, **options)


def _calibrate(model_dir: str | Path, normal_paths=None, *, threshold: float | None = None, method: str | None = None,
               k: float | None = None, false_alarm_rate: float | None = None, skip_bad: bool = False,
               score: str | None = None, sample_rate: float | None = None) -> CalibrationResult:
    """Set a model folder's decision threshold: from the scores of the windows of new normal recordings
    (``normal_paths``; the model's rule, or ``method``/``k``/``false_alarm_rate``), or to ``threshold`` as given; with
    ``score``, for that score of the model, which becomes its score from then on; ``sample_rate``: the rate of vibration
    files that give none (default: the model's). Rewrites ``config.json``, its checksum in the weights' header and the
    model card (the only way to change a threshold: hand edits are refused)."""
    from latentbridge.models.hub import update_info

    if (normal_paths is None) == (threshold is None):
        raise LatentbridgeError("calibrate: give normal recordings or --threshold VALUE (one of the two)")
    try:  # (a string from Python met numpy's isfinite: a TypeError)
        threshold = None if threshold is None else float(threshold)
    except (TypeError, ValueError):
        raise LatentbridgeError(f"--threshold must be a number, got {threshold!r}") from None
    if threshold is not None and (method or k is not None or false_alarm_rate is not None):
        raise LatentbridgeError("calibrate: --threshold sets the threshold as given; --method, --k and "
                                "--false-alarm-rate measure one on normal recordings (give one or the other)")
    if k is not None and not (np.isfinite(k) and k >= 0):
        raise LatentbridgeError(f"--k must be a finite number of at least 0 (the threshold is the normal scores' mean "
                                f"+ k·σ), got {k:g}")
    if false_alarm_rate is not None and not 0 < false_alarm_rate < 1:
        raise LatentbridgeError(f"--false-alarm-rate must lie between 0 and 1 (exclusive), got {false_alarm_rate:g}")
    det = Detector.load(model_dir, calibrated=False).read_rate(sample_rate)
    method, k, false_alarm_rate = _calibration_rule(det.anomaly, method, k, false_alarm_rate)
    old = det.threshold if np.isfinite(det.threshold) else None  # None: the model's first threshold
    if score is not None:
        _check_score(det.model, score, model_dir)
    if threshold is not None:
        if not np.isfinite(threshold):
            raise LatentbridgeError(f"--threshold must be a finite number, got {threshold}")
        if threshold < 0 and (score or det.method) in NONNEGATIVE_SCORES:
            raise LatentbridgeError(f"--threshold {threshold:g}: the score {score or det.method!r} is never negative, "
                                    "so every window would be flagged")
        new = {**det.anomaly, "threshold": float(threshold), "method": "manual", "calibrated_on": "set by hand"}
        for key in ("observed_false_alarm_rate", "mse_threshold", "warning", "k", "n", "mean", "std",
                    "false_alarm_rate", "n_calibration_windows"):  # of the calibration it replaces
            new.pop(key, None)
        scores = None
        new["score"] = score or det.method
        new["thresholds"] = {**(det.anomaly.get("thresholds") or {}), new["score"]: float(threshold)}
        # the thresholds measured last, for the next calibration's check of the sound (calibration_shift)
        new["measured_thresholds"] = det.anomaly.get("measured_thresholds") or det.anomaly.get("thresholds") or {}
        if new["score"] in ("elbo", "iwae"):  # (export then refused the folder, advising a refit)
            log.warning("%s: a threshold for %r set by hand leaves none for MSE, which an exported model (ONNX) "
                        "scores: `latentbridge export` needs a calibration on normal recordings", model_dir,
                        new["score"])
    else:
        ex = det.extractor()
        ex.refuse_below_band = True
        given = normal_paths
        if stems := getattr(det.cfg.data, "stems", None):  # a MUSDB root: the run's stems (drums and mixture were
            from latentbridge.tasks.autoencode import recordings  # calibrated on as normal vocals, without a word)

            given = [f for p in ([normal_paths] if isinstance(normal_paths, (str, Path)) else normal_paths)
                     for f in recordings(p, stems, stems_required=False, split="test")]
        files = list_normal_files(given, "calibration")
        _warn_rate_unused(sample_rate, files)
        wf = ex.extract(given, skip_bad=skip_bad, files=files)
        _warn_trained_on(model_dir, wf.files)
        warn_recordings(det, wf, scored=False)  # what `anomaly score` says of them: the threshold is set on them
        wf = calibration_within_band(det, wf)
        where = ", ".join(map(str, normal_paths if isinstance(normal_paths, (list, tuple)) else [normal_paths]))
        info, scores = _calibration(det.model, wf.features, det.anomaly_config, method, k, false_alarm_rate,
                               score or det.method, source=(where, "the calibration recordings",
                                                             "calibrate on normal recordings the model was not fitted on"))
        if text := calibration_shift(det, info, scores):
            log.warning(text)
            info["warning"] = "; ".join(filter(None, [info.get("warning"), text]))
        new = {**info, "calibrated_on": f"{len(wf.files)} files / {info['n_calibration_windows']} windows of {where}",
               "skipped_files": wf.skipped}  # (--skip-bad's warning names three a problem: every one listed here)
    info = det.saved.info
    card = model_card(det.cfg, new, info.get("data") or {}, info.get("training") or {}) \
        if det.cfg.task == "anomaly" and info.get("data") else None
    update_info(model_dir, {"anomaly": new}, card=card)
    try:  # the calibration's record beside it (fit writes it): it kept the first threshold after every calibrate
        atomic_write_json(Path(model_dir) / "calibration.json",
                          {**new, "scores": None if scores is None else np.asarray(scores).tolist()})
    except OSError as e:  # the threshold is set (config.json): the record's failure is said, not the command's
        log.warning("%s: not written (%s): it holds the previous calibration; the threshold in config.json is the "
                    "new one", Path(model_dir) / "calibration.json", e.strerror or type(e).__name__)
    return CalibrationResult(Path(model_dir), old, float(new["threshold"]), new, det.method)


def _calibration_rule(last: dict, method: str | None, k: float | None, far: float | None) -> tuple:
    """``(method, k, false_alarm_rate)`` of a calibration: ``--false-alarm-rate`` alone is a quantile, ``--k`` alone
    mean + k·σ; one of another method's is refused (both were dropped without a word: `--false-alarm-rate 0.3` set
    mean + 2σ); what is not given is the model's last rule (``last``: its config.json's, a `--method quantile` earlier
    too, which the next calibration had put back to mean + kσ), else the config's."""
    if method is None and (k is None) != (far is None):
        method = "quantile" if far is not None else "mean_std"
    if (method == "mean_std" and far is not None) or (method == "quantile" and k is not None):
        raise LatentbridgeError(f"--{'false-alarm-rate' if far is not None else 'k'} is not a setting of --method "
                                f"{method} (mean_std: the mean + k·σ of normal scores, --k; quantile: the score a "
                                "--false-alarm-rate of normal windows exceeds)")
    if last.get("method") in ("mean_std", "quantile") and method in (None, last["method"]):
        method = last["method"]
        k = last.get("k") if k is None and method == "mean_std" else k
        far = last.get("false_alarm_rate") if far is None and method == "quantile" else far
    return method, k, far


def _warn_trained_on(model_dir, files) -> None:
    """Name the calibration recordings a trained model fitted itself to (its record of them:
    :func:`~latentbridge.data.run_record.trained_files`): it reconstructs them better than new normal ones."""
    from latentbridge.data.run_record import trained_files

    seen = trained_files(Path(model_dir)) or set()
    own = [f for f in files if str(Path(f).resolve()) in seen]
    if own:
        log.warning("%d of the %d calibration recordings are ones the model was trained on (%s): it fits them better "
                    "than new normal recordings, so the threshold comes out low (false alarms); calibrate on normal "
                    "recordings it was not trained on", len(own), len(files), listed(file_names(own)))


# ----------------------------------------------------------------------------- score


@dataclass
class ScoreResult:
    """Window and file scores of a set of recordings (and, with labels, the detection metrics)."""

    model: str
    method: str
    aggregate: str
    threshold: float
    windows: WindowFeatures
    window_scores: np.ndarray
    file_scores: np.ndarray
    labels: np.ndarray | None = None
    metrics: dict | None = None
    examples: dict | None = None
    """Lowest- and highest-scoring windows: ``inputs``, ``reconstructions`` (n, F, T), the ``files`` they are from and
    what ``about`` them titles them (time, score, verdict, the file's label), the ``features``' parameters."""
    summary: dict = field(default_factory=dict)


def score(model_dir: str | Path, paths, *, labels: str | None = None, aggregate: str | None = None,
          skip_bad: bool = False, n_examples: int = 4, devices=None, strategy: str | None = None,
          accelerator: str | None = None, num_workers: int | None = None,
          method: str | None = None, sample_rate: float | None = None, progress: bool = False) -> ScoreResult | None:
    """Score every window of ``paths`` (files or folders) through Lightning's predict loop
    (:mod:`latentbridge.tasks.scoring`: decoding in ``num_workers`` workers; ``devices`` processes with
    a distributed ``strategy``) with the model's score, or ``method``, another it offers; with ``labels`` ("auto": folder names, or a CSV ``path,label``) also
    AUC/pAUC and the other detection metrics; ``sample_rate``: the rate of vibration files that give none
    (default: the model's ``audio.csv_rate``). None in the extra processes of a distributed run."""
    from latentbridge.data.audio import list_files
    from latentbridge.data.labels import dcase_groups, resolve_labels
    from latentbridge.tasks.scoring import score_files

    det = Detector.load(model_dir, method).read_rate(sample_rate)
    aggregate = aggregate or det.anomaly_config.aggregate
    if aggregate not in AGGREGATES:  # (before the scoring; any string was the mean, named as given)
        raise LatentbridgeError(f"aggregate: 'mean' or 'max', got {aggregate!r}")
    files = list_files(paths)  # once: the labels are checked on them before the scoring, which scores them
    _warn_rate_unused(sample_rate, files)
    given = paths if isinstance(paths, (list, tuple)) else [paths]  # the data scored, named in the report
    if labels is not None:  # the label file, unlabelled files and a single class
        _two_classes(resolve_labels(files, labels, given), paths)
    scored = score_files(det, files, skip_bad=skip_bad, devices=devices, strategy=strategy, accelerator=accelerator,
                         num_workers=num_workers, progress=progress)
    if scored is None:
        return None
    wf, scores = scored
    warn_recordings(det, wf)
    y_files = resolve_labels(wf.files, labels, given)
    file_scores = aggregate_scores(scores, wf.file_index, len(wf.files), aggregate)
    top = int(np.argmax(scores)) if len(scores) else 0
    summary = {"model": str(model_dir), "data": [str(p) for p in given], "score": det.method, "aggregate": aggregate,
               "threshold": det.threshold, "n_files": len(wf.files), "n_windows": len(wf), "skipped_files": wf.skipped,
               "padded_files": wf.padded, "n_files_flagged": int((file_scores > det.threshold).sum()),
               # a fault of seconds in a recording of minutes moves its file's mean little: "0 files above" alone
               # hid windows scored at 9 times the threshold; the highest window named
               "n_windows_flagged": int((scores > det.threshold).sum()), "top_window": None if not len(scores) else
               {"file": str(wf.files[wf.file_index[top]]), "start_s": round(float(wf.starts_s[top]), 3),
                "score": float(scores[top])},
               "n_silent_windows": None if wf.silent is None else int((wf.silent >= 1).sum())}
    res = ScoreResult(str(model_dir), det.method, aggregate, det.threshold, wf, scores, file_scores, summary=summary)
    if y_files is None:
        res.examples = _examples(det, wf, scores, None, n_examples)
        return res
    _two_classes(y_files, paths)  # files skipped as unusable may have taken a class with them
    y_windows = y_files[wf.file_index]
    metrics = detection_metrics(y_files, file_scores, det.threshold)
    metrics.update({"level": f"file ({aggregate} of window scores)", "window_auc": roc_auc(y_windows, scores),
                    "window_pauc": partial_auc(y_windows, scores)})
    if (groups := dcase_groups(wf.files))[0] is not None:  # DCASE's machine IDs / sections and domains, by name
        metrics.update(by_group := group_metrics(y_files, file_scores, *groups))
        if "dcase_score" in by_group and by_group["dcase_score"] is None:  # (the console left it out, no word)
            log.warning("no dcase_score: the challenge's score needs every section's AUC of both domains and pAUC, "
                        "and %s have none (a class, or a domain's normal recordings, missing)",
                        ", ".join(k for k, v in by_group.items() if v is None and k.startswith(("auc_", "pauc_"))
                                  and not k.endswith("_groups_mean")))
    metrics.update({k: v for k, v in summary.items() if k not in metrics})
    res.labels, res.metrics = y_files, metrics
    res.examples = _examples(det, wf, scores, y_windows, n_examples)
    return res


def _two_classes(y_files: np.ndarray, paths) -> None:
    if len(set(y_files.tolist())) < 2:
        have, need = ("normal", "anomalous") if not y_files.any() else ("anomalous", "normal")
        raise DataError(", ".join(map(str, paths)) if isinstance(paths, (list, tuple)) else paths,
                        f"all {len(y_files)} recordings are labelled {have}; AUC needs {need} ones too (under a "
                        f"folder named '{need}', with the word '{need}' in the name, or listed so in a label CSV)")


def _examples(det: Detector, wf: WindowFeatures, scores: np.ndarray, y: np.ndarray | None, n: int) -> dict:
    order = np.argsort(scores)
    picks = list(order[: n // 2]) + list(order[::-1][: n - n // 2])
    ex = det.extractor()  # scoring let the features go: the picked windows' files are read again, each once (a long
    read = {}  # one in blocks, its picked windows alone transformed)
    for k in {int(wf.file_index[i]) for i in picks}:
        mine = [i for i in picks if wf.file_index[i] == k]
        long = read_in_blocks(wf.headers[k] if wf.headers else None, det.sample_rate, ex.channel)
        read.update(zip(mine, window_features(ex, wf.files[k], wf.starts_s[mine], long)))
    x_np = np.stack([read[i] for i in picks])
    x = torch.from_numpy(x_np)
    # a detector without a reconstruction (statistics, kNN): the windows alone (the input drawn as its own
    # "reconstruction", the difference all zero, read as a perfect one)
    rec = det.model.reconstruct(x).numpy() if getattr(det.model, "has_reconstruction", True) else None
    c = x_np.shape[1]  # every channel of a multi-axis recording (audio.channel: all): stacked, channel 0 lowest
    stacked = f", channels 0-{c - 1} stacked upwards" if c > 1 else ""
    names = file_names(wf.files)
    # the window's own verdict, then its file's label ("score 122 (normal)" read as a window judged normal)
    verdict = {True: "flagged", False: "below the threshold"}
    about = [f"@{wf.starts_s[i]:.1f}s  score {scores[i]:.3g}, "
             f"{verdict[bool(scores[i] > det.threshold)] if np.isfinite(scores[i]) else 'no decision'}"
             + ("" if y is None else f" (file labelled {'anomalous' if y[i] else 'normal'})") + stacked for i in picks]
    n, _, f, t = x_np.shape
    return {"inputs": x_np.reshape(n, c * f, t), "reconstructions": None if rec is None else rec.reshape(n, c * f, t),
            "files": [names[wf.file_index[i]] for i in picks], "about": about, "features": det.spec.features}


def evaluate(run_dir: str | Path, data: str | None = None, sample_rate: float | None = None) -> ScoreResult:
    """``latentbridge evaluate`` for anomaly runs: score the test folder with folder-name labels (``sample_rate``:
    the rate of vibration files that give none, default the model's)."""
    cfg = load_model(run_dir).workflow
    test_dir = data or cfg.data.test_dir
    if not test_dir:
        raise ConfigError("data.test_dir: no test recordings (give --data DIR with normal/ and anomalous/ folders)")
    return score(run_dir, [test_dir], labels="auto", sample_rate=sample_rate)
