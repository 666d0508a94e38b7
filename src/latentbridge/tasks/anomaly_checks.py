"""What `anomaly score` and `anomaly calibrate` say of the recordings they read, against the model's training
recordings (as far as the model kept them: codecs, levels, clipping, band profile, padding): the same lines for the
CLI, `listen` and the server's uploads (:func:`recording_warnings`), and what a calibration keeps out or warns of
(:func:`calibration_within_band`, :func:`calibration_shift`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from latentbridge.data.audio import WindowFeatures
from latentbridge.data.survey import (band_centres_hz, band_content_warning, band_fmax, band_power, clipping_warnings,
                                      file_band_powers, files_below_band, header_warnings, level_warnings,
                                      profile_of_powers, resampled_top_warning)
from latentbridge.errors import DataError
from latentbridge.io.windows import TRIMMED
from latentbridge.utils import file_names, listed

if TYPE_CHECKING:
    from latentbridge.tasks.anomaly import Detector

log = logging.getLogger(__name__)


def warn_recordings(det: "Detector", wf: WindowFeatures, scored: bool = True) -> None:
    """Every warning `anomaly score` gives of the recordings ``wf`` read for ``det``: padding, digital silence, band
    content (each file's mean band power computed here where the read did not keep it), headers, levels, clipping;
    ``scored`` False: read to calibrate (no scores.csv to point to)."""
    _warn_padding(det, wf)
    _warn_silent(wf, scored)
    dead = None if wf.dead is None else dead_channel_warning(file_names(wf.files), wf.dead, det.spec.windowing.columns)
    if dead:
        log.warning(dead)
    if wf.band_power is None and (det.saved.info.get("data") or {}).get("band_profile_db"):
        wf.band_power = file_band_powers(wf.features, wf.file_index, len(wf.files), det.spec.features)
    _warn_band(det, wf)
    for text in recording_warnings(det, file_names(wf.files), wf.codecs or [], [],  # band: check_band's
                                   wf.levels_dbfs, wf.clipped_shares):
        log.warning(text)


def calibration_within_band(det: "Detector", wf: WindowFeatures) -> WindowFeatures:
    """``wf`` without the recordings at rates too low for the model's band (named by ``check_band``: the model scores
    them as unlike the sound it was fitted on for that alone, and a threshold set on them passed faults; all of them
    below are refused before), said in a warning."""
    rates = {str(f): h.sample_rate for f, h in zip(wf.files, wf.headers or []) if h is not None}
    low = files_below_band(rates, det.sample_rate, band_fmax(det.spec.features))
    if not low:
        return wf
    if len(low) == len(wf.files):  # the others were skipped as unusable
        raise DataError(wf.files[0].parent, f"every usable calibration recording ({len(low)}) is recorded below the "
                        "model's band, so none is the sound it was fitted on: its threshold is not set from them")
    log.warning("%d of the %d calibration recordings are left out of the threshold: recorded below the model's band "
                "(%s), they score as unlike its sound for that alone", len(low), len(wf.files),
                listed(file_names(sorted(low))))
    return wf.subset_files([i for i, f in enumerate(wf.files) if str(f) not in low])


#: a calibration whose windows score above the model's threshold at least this often is said to be of another sound
SHIFT_SHARE = 0.5


def calibration_shift(det: "Detector", info: dict, scores: np.ndarray) -> str | None:
    """What to say when the model scored most (:data:`SHIFT_SHARE`) of the calibration windows ``scores`` above the
    threshold it had for that score: it finds these recordings unlike the sound it was fitted on (a dead microphone,
    another codec, sensor, place or machine), and the threshold ``info`` sets on them lets faults of that size pass
    (a silent set of recordings raised one 13 times, every fault then missed). None otherwise. After a threshold set
    by hand, the one measured before it is the reference (a hand-set 3.2 called the training recordings themselves
    "unlike the sound it was fitted on", in the log and the model card)."""
    score = info["score"]
    manual = det.anomaly.get("method") == "manual"
    if manual:  # a threshold typed in says nothing of the sound: the last measured one (named so, the typed one beside)
        old = (det.anomaly.get("measured_thresholds") or {}).get(score)
    else:
        old = (det.anomaly.get("thresholds") or {}).get(score, det.threshold if score == det.method else None)
    if old is None or not np.isfinite(old) or not len(scores):
        return None
    above = float(np.mean(np.asarray(scores) > old))
    if above < SHIFT_SHARE:
        return None
    new = float(info["threshold"])
    ratio = f", {new / old:.3g} times {'that' if manual else 'the old one'}" if old > 0 else ""
    which = (f"the threshold last measured on normal recordings ({old:.4g}; {det.threshold:.4g} was set by hand since)"
             if manual else f"its threshold ({old:.4g})")
    return (f"the model scores {above:.0%} of the calibration windows above {which}: it finds these "
            f"recordings unlike the sound it was fitted on, and the threshold set on them ({new:.4g}{ratio}) lets "
            "faults of that size pass as normal; if the sound has changed (another sensor, place, gain or machine), "
            "fit a model on it (`latentbridge anomaly fit`), or calibrate on normal recordings of the sound it was "
            "fitted on")


def _warn_padding(det: "Detector", wf: WindowFeatures) -> None:
    """Padded recordings scored by a model that saw no padding: its score reads the padding too, or, for the
    statistics detectors (which read active frames only, and the frames at the cut as silence), statistics of fewer
    frames than a whole window's, which scatter more. Those detectors calibrate their scores by the share of the
    window a recording fills when it is padded with silence (``audio.pad: constant``): normal recordings of the
    built-in machine set cut to 3/4, 1/2 and 1/4 of a 2-s window were flagged 2, 2 and 3 times in 40 (whole ones 3);
    wrapped, or by a model fitted before the calibration, 13, 21 and 40 times (docs/reliability.md)."""
    fitted_padded = (det.saved.info.get("data") or {}).get("n_padded_files")
    if not wf.padded or fitted_padded != 0:
        return
    if getattr(det.model, "reads_active_frames", False):
        if det.cfg.audio.pad == "constant" and det.model.params.get("length_scale"):
            return
        why = ("their statistics come from fewer frames than a whole window's and scatter more: normal recordings this "
               "short score higher than whole windows and may be flagged")
        fix = ("fit again with -o audio.pad=constant (the detector then weighs a short recording's score by the "
               "share of the window it fills)" if det.cfg.audio.pad != "constant" else
               "fit the model again (the detector now weighs a short recording's score by the share of the window "
               "it fills)")
    else:
        why = "their scores also measure the padding"
        fix = "fit with a window no longer than them (-o audio.window_s=...)"
    log.warning("%d recording(s) shorter than the model's %.3g-s window%s were padded (%s), and the model was fitted "
                "on none: %s (%s); %s to score them as the model's threshold expects", len(wf.padded),
                det.cfg.audio.window_s, TRIMMED if det.cfg.audio.trim_db else "", det.cfg.audio.pad, why,
                listed(file_names(wf.padded)), fix)


#: windows with at least this share of their frames digital silence, but not all, are named after scoring
GAP_SHARE = 0.1


def dead_channel_warning(names: list[str], dead: list[list[int]], columns=None, training: bool = False) -> str | None:
    """A warning naming the recordings (``names``) with ``dead`` channels (each one's
    :func:`~latentbridge.data.silence.silent_channels`, said by their ``columns`` where the model reads named ones), or
    None: a model of every channel scores such a recording far above its threshold (a dead axis of three: 2028
    against 26) without saying why; ``training``: of a fit."""
    hit = [(n, d) for n, d in zip(names, dead) if d]
    if not hit:
        return None
    said = [f"{n} ({', '.join(str(columns[c]) if columns and c < len(columns) else f'channel {c}' for c in d)})"
            for n, d in hit]
    return (f"{len(hit)} of {len(names)} {'training ' if training else ''}recordings hold nothing on a channel the "
            f"model reads (digital silence, or a level under the features' floor): {listed(said)}; a dead sensor, a "
            "cable off, a muted input? " + ("The model learns that silence as normal" if training else
                                            "The model scores that channel's silence, not the machine's sound"))


def _warn_silent(wf: WindowFeatures, scored: bool = True) -> None:
    """Recordings with windows of digital silence (a muted or disconnected input, zeroed gaps): each such window
    scores the silence, not the machine; ``listen`` names them as they come, here they are named after scoring. So are
    windows partly silent (:data:`GAP_SHARE` of their frames or more: a dropout inside the sound), but for padding."""
    if wf.silent is None:
        return
    from latentbridge.tasks.pipeline import padded_windows

    gaps = (wf.silent >= GAP_SHARE) & (wf.silent < 1) & ~padded_windows(wf)
    total, names = np.bincount(wf.file_index, minlength=len(wf.files)), file_names(wf.files)
    for mask, what, why in ((wf.silent >= 1, "windows of digital silence", "a muted or disconnected input, or gaps "
                             "written as zeros; those windows score the silence, not the sound"),
                            (gaps, "windows partly digital silence (a tenth of their frames or more)", "a dropout, or "
                             "zeros before or after the sound; those windows score the gap with the sound")):
        if mask.any():
            per_file = np.bincount(wf.file_index[mask], minlength=len(wf.files))
            which = np.flatnonzero(per_file)
            shown = listed([f"{names[i]} {per_file[i]} of {total[i]}" for i in which])
            log.warning("%d of %d recordings hold %s (%s windows): %s%s", len(which), len(wf.files), what, shown, why,
                        " (--out's scores.csv lists every window)" if scored else "")


def recording_warnings(det: "Detector", names: list[str], codecs=(), rates=(), levels=None, clipped=None) -> list[str]:
    """What recordings' headers (``codecs``, ``rates``), levels and clipped shares tell against the model's training
    recordings, as far as the model kept them (:func:`header_warnings`, :func:`level_warnings`,
    :func:`clipping_warnings`): `anomaly score`, `listen` and the server's uploads say the same."""
    data = det.saved.info.get("data") or {}
    return header_warnings(data.get("codecs"), det.sample_rate, det.spec.features, names, list(codecs), list(rates)) \
        + level_warnings((data.get("survey") or {}).get("level_dbfs_percentiles_0_10_50_90_100"), names, levels) \
        + clipping_warnings(data.get("clipped_share_percentiles_0_10_50_90_100"), names, clipped)


def _warn_band(det: "Detector", wf: WindowFeatures) -> None:
    own_rates = [None if h is None else h.sample_rate for h in (wf.headers or [None] * len(wf.files))]
    for text in band_warnings(det, wf.band_power, [str(f) for f in wf.files], own_rates):
        log.warning(text)


def band_warnings(det: "Detector", powers: np.ndarray | None, files: list[str], own_rates: list[int | None]
                  ) -> list[str]:
    """Recordings whose spectrum leaves every training recording's in some band (a codec's or recorder's
    low-pass: everything flagged for that alone), and those resampled down whose top band the resampler emptied;
    those recorded at a rate too low for the band are named already, from their headers
    (:meth:`FeatureExtractor.check_band`), and left out here. ``powers``: each recording's mean band power as the
    model reads it (:func:`~latentbridge.data.survey.band_power`; None: not known), ``own_rates`` each recording's
    rate (None: not known)."""
    fitted = (det.saved.info.get("data") or {}).get("band_profile_db")
    profile = None if not fitted or powers is None else profile_of_powers(powers)
    if profile is None:
        return []
    names, centres = file_names(files), band_centres_hz(det.spec.features, det.sample_rate)
    texts = [resampled_top_warning(profile, fitted, own_rates, det.sample_rate, det.spec.features, names)]
    if band_content_warning(profile, fitted, names, centres) is not None:
        rates = {f: r for f, r in zip(files, own_rates) if r is not None}
        short = files_below_band(rates, det.sample_rate, band_fmax(det.spec.features))
        profile[[f in short for f in files]] = np.nan
        texts.append(band_content_warning(profile, fitted, names, centres))
    return [t for t in texts if t]


def single_file_notes(det, ex, name: str, info, wave: np.ndarray | None, clipped: float | None, first: np.ndarray,
                      level: float | None = None) -> tuple[list[str], str]:
    """``(warnings, conversions)``: what ``anomaly score`` warns of one recording (``name``, its header ``info``, its
    ``wave`` and ``clipped`` share as ``ex``, the detector's extractor, read it) that its header, level and plateaus
    tell (:func:`recording_warnings`), the band content of its ``first`` window where it was resampled down (a
    browser's or a phone's 44.1 or 48 kHz: every window flagged, without a word), and its conversions line
    (:func:`~latentbridge.data.survey.conversions_line`: resampled, mixed down), among the warnings where it warns
    (a mix of several channels given to a model of one). A served upload and a replayed file (`listen --source`); a
    long one read in blocks gives no ``wave`` but its ``level`` (its channels not checked for dead ones)."""
    from latentbridge.data.survey import conversions_line
    from latentbridge.io import level_dbfs
    from latentbridge.io.columns import channels_read
    from latentbridge.io.levels import constant_channels

    rate = int(info.sample_rate)
    dead = constant_channels(wave).tolist() if wave is not None and wave.ndim == 2 and len(wave) > 1 else []
    level = level_dbfs(wave) if wave is not None else level
    warnings = recording_warnings(det, [name], [info.codec], [rate], [level], [clipped]) + (
        window_band_warnings(det, first, name, rate) if rate > det.sample_rate else []) + (
        [dead_channel_warning([name], [dead], det.spec.windowing.columns)] if dead else [])
    # the channels it reads: a logger's temperature beside the model's columns is left out
    conversions, warn = conversions_line({name: rate}, {name: channels_read(info, ex.columns)}, ex.sample_rate,
                                         ex.channel, fitted_channels=ex.fitted_channels)
    return warnings + ([conversions] if warn else []), conversions


def window_band_warnings(det, window: np.ndarray, what: str, rate: int) -> list[str]:
    """:func:`band_warnings` of one window (at the model's rate) of a recording (``what``) at ``rate``: a spectrum
    cut at the top, or emptied by resampling down (a live input's first window, an upload's resampled down)."""
    power = band_power(det.window_features(np.asarray(window)[None]), det.spec.features)
    return band_warnings(det, None if power is None else power[None], [what], [rate])
