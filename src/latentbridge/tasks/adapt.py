"""Audio settings suited to the data: ``anomaly fit`` surveys its training files and derives every
audio and feature setting the user did not set (a preset's keys and ``-o`` overrides always win).

The rules (each choice is returned with its reason, printed by the CLI and kept in the model card
and ``config.json``):

- sample rate: the files' own when at least 90 % share one; else the most common rate;
- channels (recordings of more than one): vibration CSVs and .mat files of one axis count are modelled axis by axis
  (``audio.channel`` ``all``), and so are audio files of one channel count of three or more or of two at a rate no
  sound card uses (sensor arrays, data acquisition systems); stereo audio and files of differing channel counts are
  mixed to one;
- silence trimming (``audio.trim_db`` 40 dB): when the median file is at least 20 % silence before
  and after the sound;
- window: the typical (median) duration of the sound, at most 2 s, on a 0.05-s grid below 1 s and
  a 0.25-s grid above (no window longer than the typical clip, nor than an eighth of all the sound; long
  recordings keep 2-s windows: one recording of a few seconds gave one window to train on); hop: half a
  window;
- padding: silence (``constant``) for short clips (median under 4 s: events with silence around
  them), ``wrap`` for long recordings (stationary sound), but silence for the statistics detectors whatever the
  length: they read a padded recording's own frames alone, and their scores are calibrated by the share of the
  window those fill (:meth:`latentbridge.models.detectors.GaussianStatsDetector.length_factor`), which wrapped
  frames would hide;
- STFT: windows of about 64 ms for windows of 1 s and more (frequency resolution for stationary
  sound), 32 ms below (time resolution for short events), as powers of two, never longer than a
  window; hop a half (long) or a quarter (short) of it; mel bands ``min(64, bins / 2)`` of the bins
  in the band;
- band: the whole band, unless at least 10 % of the files are recorded at a lower rate than the one
  chosen: then ``fmax`` is the lowest such rate's Nyquist frequency (their resampled audio is empty
  above it). Files at still lower rates are named in a warning, at fit and at scoring time
  (:func:`latentbridge.data.survey.band_warning`).

Whatever ``audio.auto`` says, the sensor columns of vibration CSVs are kept by their header names
(``audio.columns``, :func:`csv_columns`): the model reads new recordings by them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentbridge.data.survey import QUIET_DBFS, Survey, survey_files
from latentbridge.io.levels import DIGITAL_SILENCE_DBFS
from latentbridge.io.audio import VIBRATION_CODECS
from latentbridge.utils import channel_counts, paths_text

log = logging.getLogger(__name__)


@dataclass
class Choice:
    key: str
    value: object
    reason: str

    def line(self) -> str:
        return f"{self.key} = {self.value}  ({self.reason})"


def _pow2_near(x: float) -> int:
    lo = 2 ** max(3, int(math.floor(math.log2(max(x, 8)))))
    return lo if x - lo <= 2 * lo - x else 2 * lo


def _grid(t: float) -> float:
    step = 0.05 if t < 1.0 else 0.25
    return max(step, math.floor(t / step + 1e-9) * step)


def choose_settings(survey: Survey, given: dict | None = None, reads_active_frames: bool = False) -> list[Choice]:
    """Every rule's choice for a survey (applied to the keys the user did not set by :func:`adapt`); the
    choices that follow from others (the STFT from the rate and window, the window from the trimming)
    follow the user's values where ``given`` holds them (``{"audio.sample_rate": 100, ...}``);
    ``reads_active_frames``: the model is one of the statistics detectors (padding with silence)."""

    out: list[Choice] = []
    rate = survey.common_rate
    if rate is not None:
        n_usable = sum(survey.rates.values())
        share = survey.rates[rate] / n_usable
        which = ("the file" if n_usable == 1 else f"all {n_usable} files") if share == 1 \
            else f"{share:.0%} of the {n_usable} files"
        if n_usable < survey.n_files:
            which += f" that could be read ({survey.n_files - n_usable} could not)"
        out.append(Choice("audio.sample_rate", rate, f"{which} at {rate} Hz"))
    else:
        # the most common; of rates as common, the lowest (a 192-kHz model of 16-kHz files held nothing above 8 kHz)
        rate = min(survey.rates, key=lambda r: (-survey.rates[r], r))
        out.append(Choice("audio.sample_rate", int(rate), "rates differ (" + ", ".join(
            f"{r} Hz x{c}" for r, c in sorted(survey.rates.items())) + "); the most common, others resampled"
            + ("" if list(survey.rates.values()).count(survey.rates[rate]) == 1 else " (the lowest of as many)")))
    axes = _channel_choice(survey)
    if axes is not None:
        out.append(axes)
    given = given or {}
    rate = int(given.get("audio.sample_rate", out[0].value))
    trim = survey.typical_silence_share >= 0.2
    out.append(Choice("audio.trim_db", 40.0 if trim else None,
                      f"the median file is {survey.typical_silence_share:.0%} silence around the sound"
                      + ("; trimmed" if trim else "; kept whole")))
    trimmed = given["audio.trim_db"] is not None if "audio.trim_db" in given else trim
    typical = survey.typical_active_s if trimmed else survey.typical_duration_s
    window = round(min(2.0, _grid(typical)), 3)
    reason = f"the typical {'sound' if trimmed else 'recording'} lasts {typical:.3g} s"
    sound = _sound_s(survey, trimmed)
    few = round(_grid(sound / FEW_SPANS), 3)
    shortened = few < window
    if shortened:  # both parts of a split in time hold whole windows
        window = few
        reason += f"; {sound:.3g} s of sound in all: windows of at most 1/{FEW_SPANS} of it"
    out.append(Choice("audio.window_s", window, reason + ("; long recordings keep 2-s windows" if window == 2.0
                                                          else "")))
    window = float(given.get("audio.window_s", window))
    # stationary sound cut short for want of sound keeps the long windows' STFT
    long_windows = window >= 1.0 or (typical >= 1.0 and shortened and "audio.window_s" not in given)
    out.append(Choice("audio.hop_s", round(window / 2, 4), "half a window"))
    short_clips = survey.typical_duration_s < 4.0
    out.append(Choice("audio.pad", "constant" if short_clips or reads_active_frames else "wrap",
                      "short clips: pad with silence" if short_clips else
                      "long recordings, the rare short one padded with silence: the detector reads its sound alone "
                      "and weighs its score by the share of the window it fills" if reads_active_frames else
                      "long recordings: wrap the rare short one"))
    n_fft = _pow2_near((0.064 if long_windows else 0.032) * rate)
    window_samples = int(round(window * rate))
    while n_fft > window_samples and n_fft > 16:
        n_fft //= 2
    fine = fine_stft(n_fft, rate, typical)
    why = "short windows: time" if not long_windows else "windows of 1 s or more: frequency resolution" \
        if window >= 1.0 else f"recordings of {typical:.3g} s, their windows shortened for want of sound: frequency " \
        "resolution"
    time_rule = f"{1000 * n_fft / rate:.0f} ms at {rate} Hz ({why})"
    if fine and n_fft <= FINE_CHOSEN_N_FFT and not {"audio.window_s", "audio.hop_s", "features.n_fft",
                                                    "features.hop_length"} & set(given):
        big, fine_window = fine
        for c in out:
            if c.key in ("audio.window_s", "audio.hop_s"):
                c.value = fine_window if c.key == "audio.window_s" else fine_window / 2
                c.reason = (f"8 frames of {big} samples (features.n_fft), hop half a frame; the typical recording "
                            f"lasts {typical:.3g} s") if c.key == "audio.window_s" else "half a window"
        out.append(Choice("features.n_fft", big, f"{rate / big:.3g}-Hz bins at {rate} Hz for stationary vibration: "
                                                 f"the time rule ({time_rule}) would leave {n_fft // 2 + 1} bins "
                                                 f"{rate / n_fft:.3g} Hz apart"))
        n_fft, long_windows = big, True
    else:
        out.append(Choice("features.n_fft", n_fft, time_rule + _resolution_hint(n_fft, rate, fine)))
        n_fft = int(given.get("features.n_fft", n_fft))
    hop = n_fft // (2 if long_windows else 4)
    reason = f"{'half' if long_windows else 'a quarter'} of n_fft"
    if (win := given.get("features.win_length")) and hop > int(win) // 2:  # (512 was chosen for -o features.win_length=
        # 300, and the config refused it as the user's)
        hop, reason = max(1, int(win) // 2), f"half of the features.win_length given ({int(win)} samples)"
    out.append(Choice("features.hop_length", hop, reason))
    low = shared_low_rate(survey, rate)
    band = rate / 2 if low is None else low / 2
    bins = int((n_fft // 2 + 1) * band / (rate / 2))
    n_mels = max(1, min(64, bins // 2))
    stft = given.get("features.kind") == "stft"  # every bin up to Nyquist: no mel bands
    if not stft:
        out.append(Choice("features.n_mels", n_mels, f"{bins} FFT bins, the whole band up to {band:g} Hz"
                          if low is None else f"the {bins} FFT bins up to {band:g} Hz"))
    level = survey.typical_level_dbfs
    if level is not None and DIGITAL_SILENCE_DBFS < level < QUIET_DBFS:
        power = float(given.get("features.power", 1.0))  # (amin floors the magnitude to that power: a power 2's
        out.append(Choice("features.amin", float(f"{10 ** ((level - FLOOR_UNDER_DB) * power / 20):.2g}"),  # dB)
                          f"the median recording's level is {level:.0f} dBFS, far under full scale (a sensor's "
                          f"physical units, a low gain): the features' floor follows it, {FLOOR_UNDER_DB:g} dB under "
                          "(the default floor, -100 dB, held every band of such recordings but their loudest)"))
    if low is not None:
        from latentbridge.io.audio import rate_problem

        n_low = sum(n for r, n in survey.rates.items() if r <= low and rate_problem(r, rate) is None)
        out.append(Choice("features.fmax", float(band), f"{n_low} of the {survey.n_files} files are recorded at "
                                                        f"{low} Hz or less: " + (
            f"their resampled audio is empty above {band:g} Hz; the STFT keeps every bin, and recordings scored later "
            "are checked against the band up to there (the band the training recordings fill)" if stft else
            f"above {band:g} Hz their resampled audio is empty, so the band stops there")))
    return out


#: a median recording loud (within 20 dB of its loudest) in less than this share of its frames comes in events, for
#: which the nearest-neighbour detector reads the level envelope's timing too, with this weight (``model.timing``),
#: and the longest event's duration with this one (``model.duration``)
EVENT_SHARE, EVENT_TIMING, EVENT_DURATION = 0.25, 0.5, 8.0
#: recordings whose median level is under :data:`QUIET_DBFS` get a features' floor (``features.amin``) this much under
#: their level, as the default floor (-100 dB) sits under recordings at -30 dBFS
FLOOR_UNDER_DB = 70.0
#: no window longer than this fraction of all the recordings' sound, so that a split in time (one recording) leaves
#: whole windows on both sides of its cut
FEW_SPANS = 8


def _sound_s(survey: Survey, trimmed: bool) -> float:
    """The seconds of sound all the files give windows of: their durations, or where silence is trimmed their active
    spans (those of the files read standing for the others)."""
    if not trimmed or not survey.active_s:
        return float(sum(survey.durations_s))
    return float(np.mean(survey.active_s)) * len(survey.durations_s)


#: rates audio recorders and sound cards use; multi-channel files at other rates (2 kHz, 25.6 kHz, 51.2 kHz) come from
#: data acquisition systems, whose channels are sensors
AUDIO_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000})


def _channel_choice(survey: Survey) -> Choice | None:
    """Recordings of more than one channel: vibration recordings (CSV, .mat) of one axis count are modelled axis by
    axis (a fault that shows on one axis is not diluted by the others': ``benchmarks/multi_axis.py``), and so are audio
    files of one channel count of three or more, or of two at a rate no sound card uses (a sensor array's or a data
    acquisition system's channels); stereo audio (microphones hearing one sound) and files of differing channel counts
    are mixed to one, unless their channels cancel in the mix (opposite polarity: channel 0 alone). None for mono
    recordings."""
    if max(survey.channels) < 2:
        return None
    if survey.cancelled:  # a mix of nothing: the first channel alone
        path, mix, one = survey.cancelled[0]
        return Choice("audio.channel", 0, f"the channels cancel in the mix of {len(survey.cancelled)} of the "
                      f"{survey.n_read} files read (e.g. {Path(path).name}: the mix "
                      f"{'all zeros' if mix <= DIGITAL_SILENCE_DBFS else f'at {mix:g} dBFS'}, channel 0 at "
                      f"{one:g}: channels in opposite polarity): channel 0 modelled alone; -o audio.channel=all each "
                      "channel beside the others")
    counts = channel_counts(sorted(survey.channels.items()))
    vibration = sum(survey.codecs.get(c, 0) for c in VIBRATION_CODECS) == sum(survey.channels.values())
    if vibration and len(survey.channels) == 1:
        return Choice("audio.channel", "all", f"vibration recordings of {max(survey.channels)} axes: each axis "
                                              "modelled beside the others, not averaged into one signal")
    if len(survey.channels) == 1 and (max(survey.channels) >= 3 or not set(survey.rates) <= AUDIO_RATES):
        rates = ", ".join(f"{r:g} Hz" for r in sorted(survey.rates))
        why = (f"{max(survey.channels)} channels" if max(survey.channels) >= 3 else f"{rates}, not an audio rate")
        return Choice("audio.channel", "all", f"audio files of {max(survey.channels)} channels each ({why}: a sensor "
                                              "array's or data acquisition system's channels): each channel modelled "
                                              "beside the others, not averaged into one signal; -o audio.channel=null "
                                              "mixes them")
    return Choice("audio.channel", None, f"{counts}: mixed to one signal"
                  + (" (the axis counts differ)" if vibration else " (the channel counts differ: every channel of "
                     "each file cannot be modelled beside the others)" if len(survey.channels) > 1
                     else " (microphones hearing one sound)")
                  + "; -o audio.channel=K models channel K alone (0-based)"
                  + ("" if len(survey.channels) > 1 else ", -o audio.channel=all each channel beside the others"))


#: fewer frequency bins than this (the time rule's frames at a low rate: 8 samples at 100 Hz) get finer settings,
#: suggested in the choice's line
FEW_BINS = 65
#: and chosen where the time rule's frames hold at most this many samples (sensors at up to about 500 Hz, 17 bins)
FINE_CHOSEN_N_FFT = 32


def fine_stft(n_fft: int, rate: int, typical_s: float) -> tuple[int, float] | None:
    """For a low-rate sensor, where frames of 32-64 ms hold a handful of samples (n_fft 8 at 100 Hz: 5 bins 12.5 Hz
    apart), ``(n_fft, window_s)`` that resolve stationary vibration finely: frames of up to 1024 samples, windows of 8
    of them (hop half a frame), both within the typical recording; None when the time rule's frames leave enough
    bins or no finer frame fits. Chosen up to :data:`FINE_CHOSEN_N_FFT`, suggested above
    (``benchmarks/low_rate_settings.py``, ``benchmarks/multi_axis.py``: a 7 % mode shift at 100 Hz read at AUC 0.86
    instead of 0.49, bridge damage from 8 sensors at 200 Hz at 0.93 instead of 0.72, where a 1-kHz gearbox read 0.976
    instead of 0.998)."""
    if n_fft // 2 + 1 >= FEW_BINS:
        return None
    span = lambda frame: (frame + 7 * frame // 2) / rate  # noqa: E731 - 8 frames, hop half a frame
    big = 1024
    while big > 2 * n_fft and span(big) > typical_s:
        big //= 2
    if big <= n_fft or span(big) > typical_s:  # no finer frame fits 8 times in the recordings
        return None
    return big, math.ceil(span(big) * 4) / 4


def _resolution_hint(n_fft: int, rate: int, fine: tuple[int, float] | None) -> str:
    """The finer settings of :func:`fine_stft`, as ``-o`` options to add to the time rule's choice."""
    if fine is None:
        return ""
    big, window = fine
    return (f"; only {n_fft // 2 + 1} frequency bins, {rate / n_fft:.3g} Hz apart: for a finer look at stationary "
            f"vibration -o features.n_fft={big} -o features.hop_length={big // 2} -o audio.window_s={window:g} "
            f"-o audio.hop_s={window / 2:g} ({rate / big:.3g}-Hz bins)")


def shared_low_rate(survey: Survey, rate: int) -> int | None:
    """The lowest rate under ``rate`` that at least 10 % of the files share (None: none): the band the
    features cover stops at its Nyquist frequency, so that every file fills the whole band. Rates the model cannot read
    (:func:`~latentbridge.io.audio.rate_problem`: upsampled more than 32 times) are not counted: those files are refused,
    and the band of the others stopped at theirs (0-100 Hz for accelerometers at 25.6 kHz beside some at 200 Hz)."""
    from latentbridge.io.audio import rate_problem

    total = sum(survey.rates.values())
    low = [r for r, n in survey.rates.items() if r < rate and n >= 0.1 * total and rate_problem(r, rate) is None]
    return int(min(low)) if low else None


def adapt(cfg, paths, *, max_read: int = 200,
          files: list | None = None) -> tuple[object, Survey | None, list[Choice]]:
    """``cfg`` with the survey's choices for every audio/feature key it does not set explicitly (``files``:
    ``paths`` already listed by :func:`latentbridge.data.audio.list_files`).

    Returns the new config, the survey and the choices applied (empty when ``audio.auto`` is false
    or every key is set)."""
    from latentbridge.config import validate
    from latentbridge.config.workflows import config_to_dict
    from latentbridge.data.audio import list_files

    if not cfg.audio.auto:
        return cfg, None, []
    files = list_files(paths) if files is None else files
    survey = survey_files(files, max_read=max_read, seed=cfg.train.seed, csv_rate=cfg.audio.csv_rate,
                          columns=cfg.audio.columns)
    if quiet := survey.quiet:  # (channels that cancel in the mix are not: channel 0 is modelled, and measured)
        n = len(quiet)
        named = "; ".join(f"{p} ({db:g} dBFS)" for p, db in quiet[:5]) + (f"; and {n - 5} more" if n > 5 else "")
        from latentbridge.io.audio import is_table

        why = "values far under 1, in a sensor's physical units?" if all(is_table(Path(p)) for p, _ in quiet) else \
            "a dead microphone?"
        log.warning("%d recording%s all but silent (RMS of the mono mix under %g dBFS: %s): %s",
                    n, "s are" if n > 1 else " is", QUIET_DBFS, why, named)
    set_keys = {f"audio.{k}" for k in cfg.audio.model_fields_set} | {f"features.{k}" for k in cfg.features.model_fields_set}
    raw = config_to_dict(cfg)
    given = {k: raw[k.split(".")[0]][k.split(".")[1]] for k in set_keys}
    from latentbridge.models.registry import get_model_class

    cls = get_model_class(cfg.model.name)
    reads = bool(getattr(cls, "reads_active_frames", False))
    events = (share := survey.typical_loud_share) is not None and share < EVENT_SHARE
    read_events = [Choice("model.timing", EVENT_TIMING, "the sound comes in short events, the median recording loud "
                          f"in {100 * share:.0f} % of its frames: when in a window it is loud is read too; where "
                          "normal cycle times vary from recording to recording, -o model.timing=0")] \
        if events and "timing" in cls.config_class.model_fields and "timing" not in cfg.model.model_fields_set else []
    if events and "duration" in cls.config_class.model_fields and "duration" not in cfg.model.model_fields_set \
            and cfg.features.scale == "db":  # (its events stand 10 dB out: dB features)
        read_events.append(Choice("model.duration", EVENT_DURATION, "events: how long a window's longest one lasts is "
                                  "read too (one lasting longer than 75 % of the training windows' longest flags it; "
                                  "-o model.duration=0)"))
    if events and not getattr(cls, "reads_frame_order", True) and not getattr(cfg.model, "timing", 0) and \
            not any(c.key == "model.timing" for c in read_events):
        log.warning("the sound comes in short events (the median recording is within 20 dB of its loudest in %.0f %% "
                    "of its 20-ms frames): %s reads the spectrum of each window's frames, not when in the window they "
                    "happen, so a late or missing event among regular ones moves its scores little (clicks at regular "
                    "times: one moved by 0.2 s scored AUC 0.55, one missing 0.80 by the statistics alone; 1.00 and "
                    "0.82 by the default detector, which reads the level envelope's timing too, and 0.99 both ways "
                    "where a click sounds wrong): for faults of timing, %s", 100 * share, cfg.model.name,
                    "leave out -o model.timing=0" if "timing" in cfg.model.model_fields_set else
                    "fit with the default detector (no --config)")
    applied = [c for c in choose_settings(survey, given, reads) if c.key not in set_keys] + read_events
    axes = max(survey.channels)
    channel = next((c.value for c in applied if c.key == "audio.channel"), cfg.audio.channel)
    if axes > 1 and channel is None and any(survey.codecs.get(c) for c in VIBRATION_CODECS):
        log.warning("vibration recordings of up to %d axes are averaged into one signal (%s): a fault that shows on "
                    "one axis is diluted by the others' vibration; -o audio.channel=K models axis K alone (0-based)",
                    axes, channel_counts(sorted(survey.channels.items())))
    if not applied:
        return cfg, survey, []
    for c in applied:
        section, key = c.key.split(".")
        raw[section][key] = c.value
    mine = ", ".join(sorted(set_keys))
    surveyed = f"the settings chosen from the survey of {paths_text(paths)}"
    new = validate(raw, f"{surveyed} with the ones given ({mine})" if mine else
                   f"{surveyed} (set them yourself with -o)")
    # the new config remembers what the user set (a resumed run re-derives the same choices; keys a model does not
    # read are named)
    for section, value in cfg:
        if hasattr(value, "model_fields_set") and hasattr(getattr(new, section), "model_fields_set"):
            getattr(new, section).__pydantic_fields_set__ = set(value.model_fields_set)
    return new, survey, applied


def csv_columns(cfg, files: list) -> object:
    """``cfg`` with ``audio.columns`` unless it sets them: the sensor columns the training CSVs name in their headers
    (a MATLAB file's channels by their names: :func:`~latentbridge.io.matfile.channel_names`): the set most of them
    name, in the order of the first (:func:`~latentbridge.io.columns.common_columns`), by which the model reads every
    recording, at fit and after (a file listing them in another order is read in theirs; one naming them and more, a
    temperature, an rpm, is read by them, the others left out, named once here). Files lacking one are refused here,
    named with the columns they lack (with ``data.skip_bad_files`` skipped when read); CSVs without a header are read
    by position. Columns given (``-o audio.columns=[...]``) are kept, the others left out and named. Before the
    survey, which counts the channels so read (:func:`adapt`)."""
    from latentbridge.errors import DataError
    from latentbridge.io import audio_info
    from latentbridge.io.audio import is_table
    from latentbridge.io.columns import common_columns, left_out
    from latentbridge.utils import listed

    given = "columns" in cfg.audio.model_fields_set
    if given and not cfg.audio.columns:
        return cfg
    named = {}
    for f in files:
        try:
            named[f] = list(audio_info(f, cfg.audio.csv_rate).columns) if is_table(f) else []
        except DataError:
            continue  # named when the features are read
    if given:  # the columns to model, named: those lacking them are refused when read
        left_out(named, cfg.audio.columns, paths_text(cfg.data.train_dir))
        return cfg
    columns, odd = common_columns(named)
    if columns is None:
        return cfg
    if odd and not cfg.data.skip_bad_files:
        raise DataError(cfg.data.train_dir, f"{len(odd)} of {sum(map(bool, named.values()))} recordings lack "
                        f"sensor columns most of them name ({listed(columns, 6)}): {listed(odd, 5, count=True)}; "
                        "the model reads its columns by their names: fit on recordings of one set of sensors "
                        "(--skip-bad leaves these out), name the columns to model (-o audio.columns=[NAME, ...]), or "
                        "read every file by position with -o audio.columns=[]")
    left_out(named, columns, paths_text(cfg.data.train_dir))
    log.info("sensor columns read by their header names, in this order: %s", ", ".join(columns))
    return cfg.model_copy(update={"audio": cfg.audio.model_copy(update={"columns": columns})})
