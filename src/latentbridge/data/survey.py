"""A survey of a folder of recordings: sample rates, channels, durations, levels, and the silence
before and after the sound — what ``anomaly fit`` needs to choose its audio settings.

Headers (rate, channels, frames) are read for every file; levels and silences from the samples of
at most ``max_read`` files (a seeded sample of a larger folder), so a survey of a large archive
stays cheap.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError, named_problems
from latentbridge.io import ALL_CHANNELS, audio_info, level_dbfs, read_audio
from latentbridge.io.audio import MIX_SILENT
from latentbridge.io.columns import channels_read
from latentbridge.io.levels import DIGITAL_SILENCE_DBFS
from latentbridge.utils import channel_counts, listed


#: RMS level (dBFS, of the mono mix) under which a recording is all but silent: a dead microphone, a stereo pair in
#: opposite polarity that cancels in the mix, a channel of digital noise
QUIET_DBFS = -80.0


def percent(share: float) -> str:
    """``share`` as a percentage of two significant digits, never in exponent form (100 %, not 1e+02 %)."""
    return f"{float(f'{100 * share:.2g}'):g} %"


@dataclass
class Survey:
    n_files: int
    rates: dict[int, int]  # sample rate → number of files
    channels: dict[int, int]
    durations_s: list[float]
    n_read: int = 0
    levels_dbfs: list[float] = field(default_factory=list)  # RMS level of each read file
    active_s: list[float] = field(default_factory=list)  # duration between the first and last loud frame
    silence_share: list[float] = field(default_factory=list)  # leading + trailing quiet share of each read file
    # share of each read file's 20-ms frames within LOUD_DB of its loudest: about 1 for steady sound, 0.05 for clicks
    # (one bang in a steady hum sets it low for that file: the median over the files is what counts)
    loud_share: list[float] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    quiet: list[tuple[str, float]] = field(default_factory=list)  # read files under QUIET_DBFS: (path, level)
    codecs: dict[str, int] = field(default_factory=dict)  # how the files are stored (AudioInfo.codec) → count
    # quiet files of several channels whose first channel is not: (path, the mix's level, channel 0's level)
    cancelled: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def common_rate(self) -> int | None:
        """The rate of at least 90 % of the files, if there is one."""
        rate, n = Counter(self.rates).most_common(1)[0]
        return int(rate) if n >= 0.9 * sum(self.rates.values()) else None

    @property
    def typical_duration_s(self) -> float:
        return float(np.median(self.durations_s))

    @property
    def typical_active_s(self) -> float:
        return float(np.median(self.active_s)) if self.active_s else self.typical_duration_s

    @property
    def typical_silence_share(self) -> float:
        return float(np.median(self.silence_share)) if self.silence_share else 0.0

    @property
    def typical_loud_share(self) -> float | None:
        return float(np.median(self.loud_share)) if self.loud_share else None

    @property
    def typical_level_dbfs(self) -> float | None:
        return float(np.median(self.levels_dbfs)) if self.levels_dbfs else None

    @property
    def level_spread_db(self) -> float:
        """Spread (10th to 90th percentile) of the files' levels."""
        return float(np.subtract(*np.percentile(self.levels_dbfs, [90, 10]))) if len(self.levels_dbfs) > 1 else 0.0

    def summary(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("durations_s", "levels_dbfs", "active_s",
                                                                  "silence_share", "loud_share")}
        pct = lambda a: [round(float(v), 4) for v in np.percentile(a, [0, 10, 50, 90, 100])] if len(a) else []  # noqa
        d.update({"rates": {str(k): v for k, v in self.rates.items()},
                  "channels": {str(k): v for k, v in self.channels.items()},
                  "duration_s_percentiles_0_10_50_90_100": pct(self.durations_s),
                  "active_s_percentiles_0_10_50_90_100": pct(self.active_s),
                  "level_dbfs_percentiles_0_10_50_90_100": pct(self.levels_dbfs),
                  "silence_share_median": round(self.typical_silence_share, 4),
                  "loud_share_median": None if self.loud_share == [] else round(self.typical_loud_share, 4),
                  "common_rate": self.common_rate, "level_spread_db": round(self.level_spread_db, 2)})
        return d


#: frames this close to a recording's loudest (dB) are its loud ones (the loud share)
LOUD_DB = 20.0


def survey_files(files: list[Path], max_read: int = 200, seed: int = 0, top_db: float = 40.0,
                 csv_rate: float | None = None, columns: list[str] | None = None) -> Survey:
    """Survey ``files``; files whose header cannot be read are listed, not fatal (``fit`` reports them).
    ``csv_rate``: the rate of vibration CSVs without a time column; ``columns``: the sensor columns the model reads
    of them, by name (the channels counted and mixed are those, not a logger's temperature beside them)."""
    if not files:
        raise DataError("survey", "no files to survey")
    headers, bad = {}, []

    def none_read() -> DataError:
        return DataError(files[0].parent, f"none of the {len(files)} files could be read: " + named_problems(bad))

    for f in files:
        try:
            info = audio_info(f, csv_rate)
        except DataError as e:
            bad.append((str(f), e.problem))
            continue
        if info.duration_s <= 0:
            bad.append((str(f), "no samples"))
            continue
        headers[f] = info
    readable = list(headers)
    if not readable:
        raise none_read()
    pick = readable if len(readable) <= max_read else [
        readable[i] for i in sorted(np.random.default_rng(seed).choice(len(readable), max_read, replace=False))]
    levels, active, silence, quiet, cancelled, loud = [], [], [], [], [], []
    for f in pick:
        several = channels_read(headers[f], columns) > 1
        try:
            got = _level_and_bounds(f, headers[f], top_db, csv_rate, columns)
            mix = got[0]
        except DataError as e:  # a header that reads over samples that do not: not counted anywhere
            if not (several and e.problem == MIX_SILENT):
                bad.append((str(f), e.problem))
                del headers[f]
                continue
            got, mix = None, DIGITAL_SILENCE_DBFS  # channels in exactly opposite polarity: a mix of zeros
        if mix < QUIET_DBFS and several and (one := _channel_reading(f, headers[f], top_db, csv_rate, columns)) \
                and (got is None or one[0] > QUIET_DBFS):  # (a mix of zeros: channel 0 however quiet, named so)
            cancelled.append((str(f), round(mix, 1), round(one[0], 1)))
            got = one  # what is modelled: channel 0 (tasks.adapt's channel choice), its level and its sound's bounds
        if got is None:  # the first channel silent too
            bad.append((str(f), MIX_SILENT))
            del headers[f]
            continue
        level, start, end, n, sr, share = got
        levels.append(level)
        if levels[-1] < QUIET_DBFS:
            quiet.append((str(f), round(levels[-1], 1)))
        active.append((end - start) / sr)
        silence.append(1.0 - (end - start) / max(1, n))
        loud.append(share)
    if not headers:
        raise none_read()
    rates = Counter(i.sample_rate for i in headers.values())
    channels = Counter(channels_read(i, columns) for i in headers.values())
    durations = [i.duration_s for i in headers.values()]
    codecs = Counter(i.codec for i in headers.values())
    return Survey(len(files), dict(rates), dict(channels), durations, len(levels), levels, active, silence, loud, bad,
                  quiet, dict(codecs), cancelled)


def _channel_reading(path: Path, info, top_db: float, csv_rate, columns) -> tuple | None:
    """:func:`_level_and_bounds` of the first channel of ``path``, a file whose mix is silent or all but silent: a dead
    input, or channels in opposite polarity that cancel in the mix (its first channel then as loud as ever); None where
    channel 0 is silent too (a dead input)."""
    try:
        return _level_and_bounds(path, info, top_db, csv_rate, columns, channel=0)
    except DataError:
        return None


def _level_and_bounds(path: Path, info, top_db: float, csv_rate, columns, channel: int | None = None
                      ) -> tuple[float, int, int, int, int, float]:
    """``(level dBFS, start, end, samples, rate, loud share)`` of the mono mix of ``path`` (or its ``channel``) at its
    own rate (:func:`~latentbridge.io.level_dbfs`, :func:`~latentbridge.io.active_bounds` of the sound, the share of
    its 20-ms frames within :data:`LOUD_DB` of its loudest): read whole, or in blocks where decoding it
    whole takes more than :data:`~latentbridge.data.blocks.STREAM_BYTES` (hours of audio)."""
    from latentbridge.data.blocks import read_in_blocks
    from latentbridge.io.levels import bounds_of_levels, dbfs, frame_db, frame_levels, sum_of_squares

    if not read_in_blocks(info, info.sample_rate):
        wave, sr = read_audio(path, mono=True, channel=channel, csv_rate=csv_rate, columns=columns)  # (1-D)
        (db, frame), level, n = frame_levels(wave, sr), level_dbfs(wave), len(wave)
    else:
        from latentbridge.io.blockread import RecordingBlocks

        rec, power = RecordingBlocks(path, channel, csv_rate=csv_rate, columns=columns), 0.0
        n, sr, frame = rec.frames, rec.sample_rate, max(1, int(round(0.02 * rec.sample_rate)))

        def mix():
            nonlocal power
            for b in rec:
                power += sum_of_squares(b[:, 0])
                yield b[:, 0]

        db = frame_db(mix(), frame)
        level = dbfs(power, n)
    start, end = bounds_of_levels(db, n, frame, top_db)
    return level, start, end, n, sr, float(np.mean(db > db.max() - LOUD_DB)) if len(db) else 1.0


def conversions_line(rates: dict[str, int], channels: dict[str, int], sample_rate: int, channel,
                     training: bool = False, fitted_channels: int | None = None) -> tuple[str, bool]:
    """``(text, warn)``: one line on the files (path → native rate, channels) resampled to the model's rate and mixed
    down to one channel (``channel``: the model's ``audio.channel``); ``warn`` when the files differ in rate or channels
    (mixed sources), when, ``training``, they are resampled down far enough to lose a band the model never learns, or
    when a model fitted on recordings of ``fitted_channels`` is given recordings of another count, mixed or read on its
    channel. ``("", False)`` when nothing is converted."""
    other = Counter(r for r in rates.values() if r != sample_rate)
    multi = Counter(c for c in channels.values() if c > 1 and channel != ALL_CHANNELS)
    parts = []
    if other:
        parts.append(f"{sum(other.values())} of {len(rates)} files resampled to {sample_rate} Hz (from "
                     + ", ".join(f"{r} Hz x{n}" for r, n in other.most_common()) + ")")
    if multi:
        what = "mixed down to mono" if channel is None else f"read on channel {channel}"
        parts.append(f"{sum(multi.values())} file{'s' if sum(multi.values()) != 1 else ''} {what} (from "
                     + channel_counts(multi.most_common()) + ")")
    lost = max(other) if other and training and max(other) > 1.25 * sample_rate else 0
    if lost:  # a model fitted at a preset's rate learns nothing of the top of the files' band
        parts.append(f"the model learns nothing of what they hold between {sample_rate / 2:g} and {lost / 2:g} Hz "
                     f"(a model at their rate: -o audio.sample_rate={lost} with the features' n_fft, hop_length and "
                     "fmax scaled to it)")
    # (an accelerometer's three axes averaged for a model of one axis; a four-microphone array's mix or channel, or a
    # single microphone, for a model of a stereo pair's: another sensor's signal)
    unlike = Counter(c for c in channels.values() if fitted_channels is not None and c != fitted_channels
                     and channel != ALL_CHANNELS)
    if unlike and channel is None and fitted_channels == 1:
        parts.append("the model was fitted on single-channel recordings: a mix of several is not the signal it "
                     "learned (fit on recordings like these, each channel modelled: -o audio.channel=all)")
    elif unlike:
        how = f", read on channel {channel}," if channel is not None else \
            "" if set(unlike) == {1} else ", mixed to mono,"  # (a recording of one channel is not mixed)
        parts.append(f"the model was fitted on {fitted_channels}-channel recordings: "
                     f"{sum(unlike.values())} of another channel count ({channel_counts(unlike.most_common())})"
                     f"{how} are not the signal it learned (fit on recordings like these)")
    mixed = len(set(rates.values())) > 1 or len(set(channels.values())) > 1
    return "; ".join(parts), bool(parts) and (mixed or bool(lost) or bool(unlike))


def below_band(rate: float, top: float) -> bool:
    """Whether a recording at ``rate`` leaves the top of a band ending at ``top`` Hz empty once resampled."""
    return rate / 2 < 0.98 * top


def band_fmax(features) -> float | None:
    """The top of the band features cover when it is set below Nyquist: a mel scale's ``fmax`` (a transform or
    a ``FeatureConfig``); of STFT features, whose bins always reach Nyquist, the band the training recordings filled,
    where ``fmax`` says so (the survey sets it for recordings at a lower rate than the model's: recordings scored
    at that rate were all named "below the model's band", as the training ones were)."""
    return getattr(features, "fmax", None)


def files_below_band(rates: dict[str, int], sample_rate: int, fmax: float | None) -> dict[str, int]:
    """The files (path → native sample rate) whose rate leaves the top of the band (``fmax``, else
    ``sample_rate / 2``) empty once resampled."""
    top = float(fmax) if fmax else sample_rate / 2
    return {p: r for p, r in rates.items() if below_band(r, top)}


def band_warning(rates: dict[str, int], sample_rate: int, fmax: float | None, kind: str | None = "mel") -> str | None:
    """A warning when files (path → native sample rate) are recorded at a rate whose Nyquist
    frequency lies under the top of the band the features cover (``fmax``, else ``sample_rate / 2``):
    resampled, they hold nothing in the band's top, which the model reads as unlike its training
    sound. None when every file fills the band. The advice for features of another ``kind`` than mel (an STFT's bins
    reach the Nyquist frequency whatever ``fmax`` says: a model fitted with it only stopped the warning) is the rate."""
    top = float(fmax) if fmax else sample_rate / 2
    short = files_below_band(rates, sample_rate, fmax)
    if not short:
        return None
    low = min(short.values())
    names = listed(sorted(short))
    one = len(rates) == 1  # one file, or a stream
    what = (f"{names} is recorded below the model's band ({low} Hz)" if one else
            f"{len(short)} of {len(rates)} files are recorded below the model's band (lowest {low} Hz; {names})")
    they, them, hold, fill = ("it", "it", "holds", "fills") if one else ("they", "them", "hold", "fill")
    fix = f"-o features.fmax={floor_hz(low / 2):g}" if kind == "mel" else \
        f"-o audio.sample_rate={low} (an STFT's bins reach the Nyquist frequency whatever features.fmax says)"
    return (f"{what}: resampled to {sample_rate} Hz {they} {hold} nothing between {low / 2:g} and {top:g} Hz, which "
            f"scores {them} as unlike the training sound for that alone; a model whose band {they} {fill}: {fix}")


#: a frequency band this much weaker (or stronger) in a scored recording than in every training recording, each
#: against its own spectrum, is named: the band holds what the training sound never showed there
BAND_MARGIN_DB = 20.0


def band_centres_hz(features, sample_rate: int) -> np.ndarray:
    """Centre frequency of each row of the features (a ``FeatureConfig``): mel bands or STFT bins."""
    if features.kind == "mel":
        import librosa

        return librosa.mel_frequencies(features.n_mels + 2, fmin=features.fmin,
                                       fmax=features.fmax or sample_rate / 2)[1:-1]
    return np.fft.rfftfreq(features.n_fft, 1.0 / sample_rate)


def _band_unit(config) -> float | None:
    """dB per feature unit of ``config``'s (a ``FeatureConfig``) log-power features; None when they are not on a log
    scale or are min-max normalised (no band profile of them)."""
    if config.scale not in ("db", "log") or config.normalize != "none":
        return None
    return 1.0 if config.scale == "db" else 20.0 / (config.power * np.log(10.0))


def band_power(features: np.ndarray, config) -> np.ndarray | None:
    """(bands,) one recording's mean linear power per band over its windows, channels and frames. ``features``:
    its (N, C, F, T) log-power windows as ``config`` computes them; None when they are not on a log scale
    (:func:`_band_unit`) or there are none. Scoring keeps this per recording instead of every window's features."""
    unit = _band_unit(config)
    if unit is None or features.ndim != 4 or not len(features):
        return None
    total = sum(power.sum(axis=(0, 1, 3)) for _, power in _linear_power(features, unit))
    return total / (len(features) * features.shape[1] * features.shape[3])


def _linear_power(features: np.ndarray, unit: float, chunk_bytes: int = 2 ** 24):
    """``(start, power)`` of the windows of ``features`` (log-power, ``unit`` dB each) as linear power, in float64,
    ``chunk_bytes`` of it at a time (the whole set at once held a float64 copy of every window; 2,048 windows of 2 s at
    48 kHz at a time still took 290 MB)."""
    chunk = max(1, chunk_bytes // (8 * int(np.prod(features.shape[1:]))))
    for s in range(0, len(features), chunk):
        yield s, 10.0 ** (np.asarray(features[s:s + chunk], dtype=np.float64) * unit / 10.0)


def profile_of_powers(powers: np.ndarray) -> np.ndarray:
    """(n_files, bands) mean band powers (:func:`band_power`) -> each file's band profile in dB against the file's
    median band (so that a file's level does not move it); NaN rows stay NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(np.maximum(np.asarray(powers, dtype=np.float64), 1e-30))
    return db - np.median(db, axis=1, keepdims=True)


def file_band_powers(features: np.ndarray, file_index: np.ndarray, n_files: int, config) -> np.ndarray | None:
    """(n_files, bands): each file's mean linear power per band over its windows, channels and frames (what
    :func:`band_power` gives of one file), its windows anywhere in ``features`` (``file_index``). ``features``: (N, C,
    F, T) log-power windows as ``config`` (a ``FeatureConfig``) computes them; None when they are not on a log scale
    or are min-max normalised. Files without windows are NaN rows."""
    unit = _band_unit(config)
    if unit is None or features.ndim != 4:
        return None
    sums = np.zeros((n_files, features.shape[2]))
    counts = np.zeros(n_files)
    for s, power in _linear_power(features, unit):
        np.add.at(sums, file_index[s:s + len(power)], power.mean(axis=(1, 3)))
        np.add.at(counts, file_index[s:s + len(power)], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sums / counts[:, None]


def band_profile_db(features: np.ndarray, file_index: np.ndarray, n_files: int, config) -> np.ndarray | None:
    """(n_files, bands): each file's band profile (:func:`profile_of_powers` of :func:`file_band_powers`); None where
    those are None."""
    powers = file_band_powers(features, file_index, n_files, config)
    return None if powers is None else profile_of_powers(powers)


def _top_run(off: np.ndarray) -> np.ndarray:
    """(n_files,) how many bands, counted down from the top one, are all ``off`` in each row."""
    return np.argmin(np.concatenate([off[:, ::-1], np.zeros((len(off), 1), bool)], axis=1), axis=1)


def band_content_warning(profile: np.ndarray, fitted: dict, names: list[str], centres: np.ndarray,
                         margin: float = BAND_MARGIN_DB) -> str | None:
    """A warning naming the recordings whose spectrum (:func:`band_profile_db`) is cut off at the top: from some
    band up to the last, more than ``margin`` dB under every training recording's (a lossy codec's or another
    recorder's low-pass, a lower original rate), or that far above it (training recordings so cut off).
    ``fitted``: the training files' per-band ``min`` and ``max`` of the same profile. Only a cut from the top
    is named: a change within the band is what a detector is for. The top band alone emptied is a cut (an
    anti-alias filter at 7.2 kHz of a 16-kHz model's 64 bands: the last 33 dB under, the one before 10; a fault adds
    sound), the top band alone louder is not (a fault's whine): more sound is named from two bands. None when no
    recording shows one."""
    lo, hi = np.asarray(fitted["min"], dtype=np.float64), np.asarray(fitted["max"], dtype=np.float64)
    if lo.shape != profile.shape[1:] or len(lo) < 4:
        return None
    texts = []
    for off, less in ((profile < lo - margin, True), (profile > hi + margin, False)):
        run = _top_run(off)
        rows = np.flatnonzero(run >= (1 if less else 2))
        if not len(rows):
            continue
        edge = float(centres[len(centres) - run[rows].min() - 1])  # the highest band both hold
        files = listed([names[i] for i in rows])
        what = ("hold far less sound above {:.0f} Hz than every training recording" if less else
                "hold sound above {:.0f} Hz where every training recording was far quieter").format(edge)
        fix = f"fit on recordings made the same way, or within the band both hold (-o features.fmax={floor_hz(edge):g})"
        cause = ("a lossy codec (MP3, OGG, AAC), another recorder's low-pass or a lower original rate: scored as "
                 f"unlike the training sound for that alone; {fix}" if less else "a fault that adds sound up to the "
                 "top of the band does this (noise, a burst); so do training recordings cut off there (a lossy "
                 "codec, a recorder's low-pass), against which any recording that is not scores as unlike them for "
                 f"that alone: if they were, {fix}")
        texts.append(f"{len(rows)} of {len(profile)} recordings {what} (more than {margin:g} dB, each against its "
                     f"own spectrum; {files}): {cause}")
    return "; ".join(texts) or None


def floor_hz(f: float) -> float:
    """A frequency advised as ``features.fmax``, rounded down to two significant digits (7440 Hz: 7400; a 200-Hz
    sensor's 93 Hz: 93; rounding to whole hundreds advised fmax=0 below 215 Hz)."""
    if not f > 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(f)) - 1)
    return round(math.floor(f / step + 1e-9) * step, 12)  # 4.1 / 0.1 is 40.99999: it gave 4.0


#: where the package's resampler (soxr "HQ", :func:`latentbridge.io.resample`) has fallen by 3 dB, as a share of the
#: new rate's Nyquist frequency: a recording resampled down holds (nearly) nothing above it
RESAMPLED_EDGE = 0.95


def resampled_top_warning(profile: np.ndarray, fitted: dict, rates: list[int | None], sample_rate: int,
                          features, names: list[str], margin: float = 1.0) -> str | None:
    """A warning naming the recordings resampled down to the model's rate whose top band lost what lay above
    :data:`RESAMPLED_EDGE` of the model's Nyquist frequency (the resampler's anti-alias filter) and so reads more
    than ``margin`` dB under every training recording's: training recordings made at the model's rate that hold
    sound up to its Nyquist frequency (synthetic or full-band sound; real recorders' own filters leave that band
    nearly empty) make every such recording score as unlike them for that alone. ``rates``: each recording's own
    rate (None unknown); ``fitted``: the training files' per-band ``min`` of ``profile``'s kind; None otherwise."""
    top = float(band_fmax(features) or sample_rate / 2)
    edge = RESAMPLED_EDGE * sample_rate / 2
    lo = np.asarray(fitted.get("min") or [], dtype=np.float64)
    if top <= edge or lo.shape != profile.shape[1:] or not len(lo):
        return None
    rows = [i for i, r in enumerate(rates) if r is not None and r > sample_rate and profile[i, -1] < lo[-1] - margin]
    if not rows:
        return None
    files = listed([names[i] for i in rows])
    from_rates = ", ".join(f"{r} Hz" for r in sorted({rates[i] for i in rows}))
    below = floor_hz(0.93 * sample_rate / 2)
    fix = (f"-o features.fmax={below:g}" if getattr(features, "kind", None) == "mel"
           else f"-o features.kind=mel -o features.fmax={below:g}")
    return (f"{len(rows)} of {len(profile)} recordings resampled down to the model's {sample_rate} Hz (from {from_rates}; "
            f"{files}) hold less sound in the top band than every training recording (more than {margin:g} dB): "
            f"resampling removes what lies above {edge:.0f} Hz, up to which the training recordings held sound, so "
            f"they score as unlike them for that alone; score recordings made at {sample_rate} Hz, or fit within the "
            f"band both hold ({fix})")


def codec_counts(codecs) -> dict[str, int]:
    """How many files store their samples each way (:attr:`latentbridge.io.AudioInfo.codec`), most common first."""
    return dict(Counter(c for c in codecs if c).most_common())


#: a recording this much quieter than the quietest training recording, or louder than the loudest, is named when
#: scored
QUIET_MARGIN_DB = LOUD_MARGIN_DB = 30.0
#: a recording whose RMS level is above this is named whenever the training recordings are all below full scale (a
#: full-scale square wave is 0 dBFS)
BEYOND_FULL_SCALE_DBFS = 3.0


def level_warnings(pct: list[float] | None, names: list[str], levels_dbfs) -> list[str]:
    """Recordings far quieter than every training recording (a disconnected or dead microphone, a gain set far
    lower), and far louder than every one (integer samples saved in a float file, a gain set far higher): scored as
    they are, and named, so that their scores are read for what they are. ``pct``: the 0/10/50/90/100th percentiles
    of the training recordings' levels (as :meth:`Survey.to_dict` gives them); ``levels_dbfs``: the scored ones'."""
    if not pct or levels_dbfs is None:
        return []
    levels = np.asarray(levels_dbfs, dtype=np.float64)
    texts = []

    def shown(idx) -> str:
        return listed([f"{names[i]} {levels[i]:.0f} dBFS" for i in idx])

    quiet = np.flatnonzero(levels < pct[0] - QUIET_MARGIN_DB)
    if len(quiet):
        texts.append(f"{len(quiet)} of {len(levels)} recordings are more than {QUIET_MARGIN_DB:g} dB quieter than the "
                     f"quietest training recording ({shown(quiet)}; training {pct[0]:.0f} to {pct[-1]:.0f} dBFS): a "
                     "disconnected or dead microphone, or a far lower gain, scores as unlike the training sound for "
                     "that alone")
    # above full scale: a float file's integer samples (training in physical units, vibration tables, may be there)
    beyond = levels > BEYOND_FULL_SCALE_DBFS if pct[-1] <= 0 else np.zeros(len(levels), bool)
    loud = np.flatnonzero((levels > pct[-1] + LOUD_MARGIN_DB) & ~beyond)
    if len(loud):
        texts.append(f"{len(loud)} of {len(levels)} recordings are more than {LOUD_MARGIN_DB:g} dB louder than the "
                     f"loudest training recording ({shown(loud)}; training {pct[0]:.0f} to {pct[-1]:.0f} dBFS): a far "
                     "higher gain scores as unlike the training sound for that alone")
    if beyond.any():
        texts.append(f"{int(beyond.sum())} of {len(levels)} recordings have an RMS level above full scale "
                     f"({shown(np.flatnonzero(beyond))}; training {pct[0]:.0f} to {pct[-1]:.0f} dBFS): no recorder's "
                     "samples reach that; integer samples saved in a float file without scaling (by 32768 for 16 "
                     "bits) read so, and score as unlike the training sound for their level alone")
    return texts


#: share of a recording's samples on plateaus at its extremes (:func:`latentbridge.io.peak_and_clipping`) from which
#: it is named as clipping: one sample in a thousand saturated, a tenth of a second in each 100 s
CLIPPED_SHARE = 1e-3


def _clipped(names: list[str], shares: np.ndarray, idx) -> str:
    return "samples on plateaus at their extremes: " + listed([f"{names[i]} {percent(shares[i])}" for i in idx])


def clipping_summary(shares) -> list[float]:
    """The 0/10/50/90/100th percentiles of recordings' clipped shares (those known), as a model keeps them."""
    shares = np.asarray(shares, dtype=np.float64)
    shares = shares[np.isfinite(shares)]
    return [round(float(v), 6) for v in np.percentile(shares, [0, 10, 50, 90, 100])] if len(shares) else []


def clipping_warnings(pct: list[float] | None, names: list[str], shares, training: bool = False) -> list[str]:
    """Recordings that clip (a saturated recorder, preamplifier or sensor: the level or gain set too high for the
    sound) more than the training recordings did: the distortion spreads harmonics over the band, and the recording
    scores as unlike the training sound for that alone. ``pct``: the training recordings' :func:`clipping_summary`
    (no check without one); ``shares``: the scored ones' clipped shares. ``training``: the training recordings
    themselves, named when they clip at all (the model then takes saturation for normal sound)."""
    if shares is None or (not pct and not training):
        return []
    shares = np.asarray(shares, dtype=np.float64)
    bar = CLIPPED_SHARE if training else max(CLIPPED_SHARE, 2 * pct[3])
    idx = np.flatnonzero(np.nan_to_num(shares) >= bar)
    if not len(idx):
        return []
    if training:
        return [f"{len(idx)} of {len(shares)} training recordings clip ({_clipped(names, shares, idx)}): a saturated recorder or sensor; the model takes its distortion for "
                "normal sound, and recordings that clip as much are not named when scored"]
    told = "none of the training recordings did" if pct[-1] < CLIPPED_SHARE else "fewer than 1 in 10 training " \
        "recordings did" if pct[3] < CLIPPED_SHARE else f"9 in 10 training recordings at most {percent(pct[3])}"
    return [f"{len(idx)} of {len(shares)} recordings clip ({_clipped(names, shares, idx)}; {told}): a saturated recorder or sensor (the level or gain set too high for the "
            "sound) spreads distortion over the band, which scores as unlike the training sound for that alone"]


#: soundfile subtypes whose samples keep 8 bits: quantisation noise 48 dB under full scale, over the whole band
COARSE_PCM = frozenset({"PCM_S8", "PCM_U8"})


def depth_warning(fitted: dict[str, int], codecs: list[str], names: list[str]) -> str | None:
    """A warning naming the scored recordings stored with 8-bit samples when no training recording was: their
    quantisation noise (about 48 dB under full scale, white over the band) fills the quiet bands the training sound
    left empty, so they score as unlike it for that alone, where a codec check (lossless PCM) sees nothing."""
    from latentbridge.io.audio import codec_name

    known = {c: n for c, n in fitted.items() if c}
    if not known or COARSE_PCM & {c.upper() for c in known}:
        return None
    other = [i for i, c in enumerate(codecs) if c and c.upper() in COARSE_PCM]
    if not other:
        return None
    files = listed([names[i] for i in other])
    train = ", ".join(f"{codec_name(c)} x{n}" for c, n in known.items())
    return (f"{len(other)} of {len(codecs)} recordings are stored with 8-bit samples ({files}) and no training "
            f"recording was ({train}): their quantisation noise, about 48 dB under full scale over the whole band, "
            "scores as unlike the training sound for that alone (false alarms on normal sound); record or convert "
            "at 16 bits or more, as the training recordings were")


def header_warnings(fitted_codecs: dict | None, sample_rate: int, features, names: list[str], codecs: list[str],
                    rates: list[int]) -> list[str]:
    """What recordings' headers tell against a model's training recordings: stored the other way (lossy or lossless),
    with 8-bit samples where training had none (``fitted_codecs``: the training recordings' codecs; None for a model
    fitted before they were recorded, which is not checked), recorded at a rate below the band of ``features``
    (``rates``: each recording's, or none where the band is checked elsewhere). ``anomaly score``, ``listen`` and the
    server's uploads say the same."""
    texts = [codec_warning(fitted_codecs, codecs, names), depth_warning(fitted_codecs, codecs, names)] \
        if fitted_codecs and codecs else []
    if rates:
        texts.append(band_warning(dict(zip(names, rates)), sample_rate, band_fmax(features),
                                  getattr(features, "kind", "mel")))
    return [t for t in texts if t]


def codec_warning(fitted: dict[str, int], codecs: list[str], names: list[str]) -> str | None:
    """A warning naming the scored recordings stored lossily (Vorbis, MP3, Opus, GSM, ...) when every training
    recording was stored losslessly, or the other way round, or by another lossy codec than the training recordings'.
    A lossy codec's artefacts lie inside the band
    (quantisation noise shaped under the sound, pre-echo, lost quiet detail): a detector fitted on one kind reads
    them as unlike its training sound, every recording at once, where the band check sees no cut-off. ``fitted``:
    the training files' :func:`codec_counts`; None when the training files mix both kinds or none is known."""
    from latentbridge.io.audio import codec_name, is_lossy

    known = {c: n for c, n in fitted.items() if c}
    if not known or len({is_lossy(c) for c in known}) > 1:
        return None
    fitted_lossy = is_lossy(next(iter(known)))
    # (and by another lossy codec than training's: a model of MP3s flagged every Vorbis copy of normal sound unsaid)
    trained = {c.upper() for c in known}
    other = [i for i, c in enumerate(codecs)
             if c and (is_lossy(c) != fitted_lossy or fitted_lossy and c.upper() not in trained)]
    if not other:
        return None
    kinds = Counter(codec_name(codecs[i]) for i in other)
    files = listed([names[i] for i in other])
    train = ", ".join(f"{codec_name(c)} x{n}" for c, n in known.items())
    what = "stored by a lossy codec" if not fitted_lossy else "stored losslessly or by another lossy codec"
    how = "losslessly" if not fitted_lossy else "by a lossy codec"
    return (f"{len(other)} of {len(codecs)} recordings are {what} (" + ", ".join(f"{k} x{n}" for k, n in
            kinds.most_common()) + f": {files}) and every training recording was stored {how} ({train}): the "
            "codec's artefacts inside the band score as unlike the training sound for that alone (false alarms "
            "on normal sound); fit on recordings stored the same way")
