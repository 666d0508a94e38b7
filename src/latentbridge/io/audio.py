"""Audio files: reading with validation, resampling (numpy, soundfile, soxr; no torch); writing is
:mod:`latentbridge.io.audio_write`.

Every problem with a file is raised as :class:`latentbridge.errors.DataError`, whose message
names the file and the problem ("PATH: problem").

Decisions worth knowing:

* ``AUDIO_EXTENSIONS`` includes ``.mp3`` because the libsndfile bundled with soundfile
  (>= 1.1) decodes MPEG audio; ``read_audio`` on an mp3 goes through the same checks.
* A WAV file whose ``data`` chunk was cut off is reported as truncated: libsndfile quietly
  returns only the frames present, so the header's declared size is compared with the bytes
  on disk. For other formats (FLAC, MP3) the frame count in the header is compared with the
  frames actually decoded.
* A vibration CSV (one column per channel and a time column, :func:`latentbridge.io.read_vibration_csv`) is
  a recording like an audio file: its rate comes from the time column, or ``csv_rate`` when it has none;
  each channel loses its mean (gravity, a sensor's offset), as an audio file's channels do (a recorder's bias:
  :func:`remove_dc`). A model that keeps its sensor columns' header names (``columns``) reads a CSV's columns by
  name, in its own order (:mod:`latentbridge.io.columns`).
  A folder is listed as its audio files, or, when it holds none, as its CSVs (a label CSV beside audio files
  is not a recording): :mod:`latentbridge.io.listing`.
* :func:`resample` (:mod:`latentbridge.io.resampling`) is the package's one resampler; the short-recording rule is
  :func:`latentbridge.io.windows.check_recording_length`. Cutting recordings into analysis windows is
  :mod:`latentbridge.io.windows`.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError, reading_memory_error
from latentbridge.io.containers import declared_frames_of
from latentbridge.io.levels import _blocks, _peak, column_sums, peak_and_clipping, remove_dc
from latentbridge.io.resampling import resample
from latentbridge.io.vibration import MAX_RATE, RECORDING_SUFFIXES
from latentbridge.io.wav import (PCM16_FORMATS, STALE_MIN_BYTES, WAV_SUFFIXES, WavLayout, declared_frames, read_pcm16,
                                 read_wav_samples, soundfile_source, unfinalised_frames, wav_layout)
from latentbridge.utils import file_stamp, first_time, positive_integer

log = logging.getLogger(__name__)

__all__ = ["AUDIO_EXTENSIONS", "RECORDING_EXTENSIONS", "AudioInfo", "audio_info", "read_audio",
           "select_channels", "ALL_CHANNELS", "SILENCE_LEVEL", "TABLE_SILENCE_LEVEL", "silence_level", "silent",
           "resample", "rate_problem", "MAX_AUDIO_UPSAMPLING"]

AUDIO_EXTENSIONS: tuple[str, ...] = (*WAV_SUFFIXES, ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".aifc", ".mp3",
                                     ".caf", ".w64", ".rf64", ".au", ".snd")
#: audio formats libsndfile does not decode, with what to do about them
UNDECODED_AUDIO = {".m4a": "AAC", ".aac": "AAC", ".mp4": "AAC", ".wma": "WMA", ".amr": "AMR", ".ac3": "AC-3",
                   ".webm": "WebM", ".mka": "Matroska", ".ape": "Monkey's Audio", ".wv": "WavPack"}
#: the most a recording is upsampled to the model's rate: beyond it most of the model's band is empty, and a rate
#: mistyped in a header (1 Hz for 8 kHz) upsamples it thousands of times, out of memory
MAX_AUDIO_UPSAMPLING = 32.0
#: what reads as a recording: audio, and vibration CSVs (see the module docstring)
RECORDING_EXTENSIONS: tuple[str, ...] = (*AUDIO_EXTENSIONS, *RECORDING_SUFFIXES)
#: how vibration recordings are stored (:attr:`AudioInfo.codec` of a CSV or a MATLAB file)
VIBRATION_CODECS = ("CSV", "MAT")

#: An audio file whose samples all have magnitude below this is treated as silent (under a 24-bit step).
SILENCE_LEVEL = 1e-8
#: the same for a vibration table in a sensor's units (a displacement in metres near 1e-10 was refused as silent), at
#: which 32-bit spectra still hold their precision
TABLE_SILENCE_LEVEL = 1e-15


def silence_level(path: str | Path) -> float:
    """The magnitude under which every sample of ``path`` makes it silent (audio or a table)."""
    return TABLE_SILENCE_LEVEL if is_table(Path(path)) else SILENCE_LEVEL


def silent(path: str | Path) -> str:
    return (f"{'recording' if is_table(Path(path)) else 'audio'} is silent (every sample has magnitude below "
            f"{silence_level(path):g} once each channel's constant offset is taken out)")

#: The largest sample magnitude read: features in 32-bit floats overflow from about 1e16 (a window's spectrum
#: squared), and no sensor's unit comes near (raw 32-bit counts reach 2.1e9)
MAX_SAMPLE = 1e12


def too_large(path, peak: float) -> DataError:
    """The error of a recording whose samples reach ``peak`` > :data:`MAX_SAMPLE`."""
    return DataError(path, f"samples reach {peak:.3g}, beyond {MAX_SAMPLE:g}: its features would overflow 32-bit "
                           "floats (scored as NaN, or as normal); values of another scale, or corrupt ones: scale "
                           "the recording down")


def check_peak(path, peak: float, frames: int | None = None) -> None:
    """Refuse a recording whose largest magnitude (offsets out) is silence or beyond :data:`MAX_SAMPLE`: the one
    check of :func:`read_audio` and the block reader (``frames``: its length; one sample is no silence but too short:
    its offset taken out leaves nothing)."""
    if peak < silence_level(path):
        raise DataError(path, "recording too short: 1 sample" if frames == 1 else silent(path))
    if peak > MAX_SAMPLE:
        raise too_large(path, peak)


#: what is said of a mono mix whose channels cancel out
MIX_SILENT = "mono mix is silent (the channels cancel out)"

#: ``channel`` value that keeps every channel of a recording (a model of every axis of a multi-axis sensor)
ALL_CHANNELS = "all"


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int
    channels: int
    duration_s: float
    codec: str = ""
    """How the samples are stored: soundfile's subtype (``PCM_16``, ``FLOAT``, ``VORBIS``, ``MPEG_LAYER_III``, ...);
    ``CSV`` for a vibration CSV."""
    columns: tuple[str, ...] = ()
    """A vibration CSV's sensor columns by their header names, in file order, or a MATLAB file's channels by theirs
    (empty: no header, a matrix's columns, or audio)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def lossy(self) -> bool:
        return is_lossy(self.codec)


#: soundfile subtypes that keep an approximation of the samples: perceptual codecs (their artefacts lie inside the
#: band: quantisation noise shaped under the sound, pre-echo) and speech / telephone codecs
LOSSY_CODECS = frozenset({"VORBIS", "OPUS", "MPEG_LAYER_I", "MPEG_LAYER_II", "MPEG_LAYER_III", "GSM610", "IMA_ADPCM",
                          "MS_ADPCM", "VOX_ADPCM", "G721_32", "G723_24", "G723_40", "NMS_ADPCM_16", "NMS_ADPCM_24",
                          "NMS_ADPCM_32", "ULAW", "ALAW"})
_CODEC_NAMES = {"VORBIS": "Vorbis", "OPUS": "Opus", "MPEG_LAYER_III": "MP3", "MPEG_LAYER_II": "MP2",
                "MPEG_LAYER_I": "MP1", "GSM610": "GSM", "ULAW": "u-law", "ALAW": "A-law"}


def is_lossy(codec: str) -> bool:
    """Whether a soundfile subtype (:attr:`AudioInfo.codec`) stores an approximation of the samples."""
    return codec.upper() in LOSSY_CODECS


def codec_name(codec: str) -> str:
    """A reader's name for a soundfile subtype: ``MPEG_LAYER_III`` -> ``MP3``, ``PCM_16`` -> ``16-bit PCM``."""
    c = codec.upper()
    if c in _CODEC_NAMES:
        return _CODEC_NAMES[c]
    if c.startswith("PCM_"):
        return f"{c[4:].lstrip('SU')}-bit PCM"
    return {"FLOAT": "32-bit float", "DOUBLE": "64-bit float", "CSV": "CSV", "MAT": "MATLAB .mat"}.get(
        c, codec or "unknown")


def _accepted() -> str:
    return ", ".join(AUDIO_EXTENSIONS) + " (or .csv / .mat: vibration recordings)"


def _not_audio(path: Path, lead: str = "not an audio file (extension {ext})") -> str:
    """Why ``path`` is not read as a recording: its extension, and for a format the decoder lacks, how to convert."""
    fmt = UNDECODED_AUDIO.get(path.suffix.lower())
    if fmt:
        return (f"{fmt} audio ({path.suffix}) is not a format the decoder reads; convert it first, e.g. "
                f"'ffmpeg -i {path.name} {path.stem}.flac' (lossless); accepted extensions: {_accepted()}")
    return lead.format(ext=repr(path.suffix or "(none)")) + f"; accepted extensions: {_accepted()}"


def _is_audio_name(path: Path) -> bool:
    return path.suffix.lower() in RECORDING_EXTENSIONS


def is_table(path: Path) -> bool:
    """A vibration recording stored as numbers (a CSV or a MATLAB file), not as audio."""
    return path.suffix.lower() in RECORDING_SUFFIXES


# --------------------------------------------------------------------------- reading


def _check_file(path: Path) -> os.stat_result:
    try:
        st = path.stat()  # one call for what exists(), is_dir() and a size asked three times
    except (FileNotFoundError, NotADirectoryError):
        raise DataError(path, "file does not exist") from None
    except OSError as e:  # a link in a loop, a folder the user may not enter
        raise DataError(path, f"cannot be opened ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(path, "is a folder, not an audio file")
    if not _is_audio_name(path):
        raise DataError(path, _not_audio(path, "unsupported file type {ext}"))
    if st.st_size == 0:
        raise DataError(path, "file is empty (0 bytes)")
    return st


def _sf_error_text(exc: BaseException, path: Path | None = None) -> str:
    text = str(getattr(exc, "error_string", None) or str(exc)).strip() or type(exc).__name__
    if "SF_INFO struct incomplete" in text:  # libsndfile's words for a header with no rate or no channels
        return "its header's sample rate or channel count cannot be read (0, or beyond what the format holds)"
    if path is not None and "does not exist or is not a regular file" in text and path.is_file():
        # libsndfile says so of a file it opened but whose bytes are no audio it decodes (random bytes named .mp3)
        return "no audio in a format the decoder recognises: a damaged file, or another format than its name says"
    return text


def unreadable_text(exc: BaseException, path: Path) -> str:
    """The problem of an audio file the decoder could not open: one the user may not read (libsndfile said "System
    error.", blamed as a damaged file), else an unreadable or truncated one (:func:`_sf_error_text`)."""
    try:
        with open(os.fsencode(path), "rb"):
            pass
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    return f"unreadable or truncated audio file ({_sf_error_text(exc, path)})"


def _layout(path: Path) -> WavLayout | None:
    """A WAV file's chunk layout (:func:`~latentbridge.io.wav.wav_layout`); None for other files."""
    return wav_layout(path) if path.suffix.lower() in WAV_SUFFIXES else None


#: bytes per sample of the WAV encodings :mod:`latentbridge.io.wav` decodes
_SAMPLE_BYTES = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}


def _beyond_header(path: Path, info, size: int) -> bool:
    """Whether a WAV file of ``size`` bytes may hold samples its header does not count (no frames, or more bytes than
    its frames and a header with metadata take): only then are its chunks parsed (20 us a file, on every file a folder
    lists)."""
    width = _SAMPLE_BYTES.get(str(info.subtype))
    if path.suffix.lower() not in WAV_SUFFIXES or width is None:
        return False
    return not info.frames or size - int(info.frames) * int(info.channels) * width >= STALE_MIN_BYTES


def _unfinalised(path: Path, layout: WavLayout | None) -> tuple[WavLayout, int] | None:
    """A WAV file's layout and the frames it holds where its header was never finalised (:mod:`latentbridge.io.wav`),
    named in a warning once per file."""
    if (frames := unfinalised_frames(layout)) is None:
        return None
    if first_time(("unfinalised", str(path))):
        declared = declared_frames(layout)
        said = "gives its samples no size (0 or a placeholder)" if declared is None else \
            f"declares {declared} frames ({declared / layout.sample_rate:.3g} s)"
        log.warning("%s: its header %s but %d frames (%.3g s) follow it, as a recorder leaves a header it never "
                    "finalised (stopped, killed, power lost): all of them read", path, said, frames,
                    frames / layout.sample_rate)
    return layout, frames


def _open_info(path: Path):
    import soundfile as sf

    try:
        return sf.info(soundfile_source(path))  # bytes: a name that is not UTF-8 is opened as it is
    except MemoryError as e:  # too little memory is no fault of the file: never a bad file (skipped with skip_bad)
        raise reading_memory_error(path, e) from None
    except Exception as exc:  # LibsndfileError, RuntimeError, TypeError from odd headers
        raise DataError(path, unreadable_text(exc, path)) from exc


def _csv_rate(rate: float, path: Path) -> int:
    if not math.isfinite(rate) or rate > MAX_RATE:  # resampling to it ran without end (a time column in another unit)
        raise DataError(path, f"a sample rate of {rate:g} Hz, above {MAX_RATE:g} Hz: times in another unit than "
                              "seconds, or a mistyped --sample-rate?")
    r = int(round(rate))
    if r < 1:
        raise DataError(path, f"a sample rate of {rate:g} Hz (from its time column, or as given), under 1 Hz: times in "
                              "another unit than seconds (a column named time_ms is read as milliseconds), or a rate "
                              "given in kHz?")
    if abs(rate - r) > 0.01 * rate:  # (a 2.5-Hz logger was read at 2 Hz, without a word)
        raise DataError(path, f"a sample rate of {rate:g} Hz (from its time column, or as given), not a whole number "
                              f"of Hz: read at {r} Hz its times would be {100 * abs(rate - r) / rate:.0f} % off; the "
                              "toolkit reads whole-Hz rates (resample the table to one)")
    return r


def _read_table(path: Path, csv_rate: float | None, columns: list[str] | None = None,
                names: list | None = None) -> tuple[np.ndarray, int]:
    """(samples (T, C) float32, rate rounded to whole Hz) of a vibration CSV or MATLAB file. ``columns``: the sensor
    columns a model reads, by header name (a MATLAB file's channels by their names:
    :func:`~latentbridge.io.matfile.channel_names`): a file naming them in another order is read in theirs, one naming
    others is refused (:func:`~latentbridge.io.columns.model_order`); a file without a header is read by position.
    ``names``, when given, gets the names of the channels returned."""
    from latentbridge.io.columns import model_order
    from latentbridge.io.matfile import read_mat_recording
    from latentbridge.io.vibration import read_vibration_csv

    found: list[str] = []
    if path.suffix.lower() == ".mat":
        data, rate = read_mat_recording(path, fallback_rate=csv_rate, names=found)
        wave = data.T
    else:
        try:
            wave, rate = read_vibration_csv(path, fallback_rate=csv_rate, names=found)
        except DataError as e:
            if "no time column" not in e.problem:
                raise
            raise DataError(path, "a CSV recording without a time column (a first column named like 'time', 'time_s' "
                                  "or 'time_ms', or evenly increasing): its sample rate is unknown; give it with "
                                  "-o audio.csv_rate=HZ at fit (a model keeps it for the recordings it scores) or "
                                  "--sample-rate HZ at anomaly score / calibrate / listen --source / evaluate and "
                                  "python -m latentbridge.edge (sample_rate in a /score request)") from None
    if (order := model_order(found, columns, path, strict=True)) is not None:
        wave, found = wave[order], list(columns)
    if names is not None:
        names.extend(found)
    # each channel's mean (gravity on a vertical axis, a sensor's offset) is no vibration: it would set the
    # recording's level and its lowest band
    return (wave - wave.mean(axis=1, keepdims=True)).astype(np.float32, copy=False).T, _csv_rate(rate, path)


@functools.lru_cache(maxsize=4096)
def _table_info(path: str, stamp: tuple, csv_rate: float | None) -> AudioInfo:
    data, sr = _read_table(Path(path), csv_rate, names=(names := []))
    return AudioInfo(sample_rate=sr, frames=data.shape[0], channels=data.shape[1], duration_s=data.shape[0] / sr,
                     codec="MAT" if path.lower().endswith(".mat") else "CSV", columns=tuple(names))


def audio_info(path: str | Path, csv_rate: float | None = None) -> AudioInfo:
    """Sample rate, frame count, channel count and duration from the file header (a CSV is read whole, once per
    version of the file; ``csv_rate``: its rate when it has no time column).

    For a WAV file whose data chunk is cut short, ``frames`` counts the frames actually present.
    """
    path = Path(path)
    size = _check_file(path).st_size
    if is_table(path):
        return _table_info(str(path), tuple(file_stamp(path).values()), csv_rate)
    info = _open_info(path)
    sr = int(info.samplerate)
    frames = int(info.frames)
    if _beyond_header(path, info, size) and (stale := _unfinalised(path, _layout(path))) is not None:
        frames = stale[1]
    return AudioInfo(
        sample_rate=sr,
        frames=frames,
        channels=int(info.channels),
        duration_s=frames / sr if sr > 0 else 0.0,
        codec=str(info.subtype or ""),
    )


def _read_soundfile(path: Path, layout: WavLayout | None = None) -> tuple[np.ndarray, int, int]:
    """(samples (T, C) float32, rate, frames the header declares) of an audio file (a WAV file whose header was never
    finalised: the frames it holds)."""
    import soundfile as sf

    if (stale := _unfinalised(path, layout)) is not None:
        layout, frames = stale
        return read_wav_samples(path, layout, frames), layout.sample_rate, frames
    try:
        with sf.SoundFile(soundfile_source(path)) as f:
            header_frames = int(f.frames)
            sr = int(f.samplerate)
            # into one buffer: soundfile's own read held the samples twice at its peak (1.4 GB for an hour at 48 kHz)
            data = read_pcm16(f, header_frames) if f.subtype == "PCM_16" and f.format in PCM16_FORMATS else \
                f.read(out=np.empty((max(0, header_frames), int(f.channels)), dtype=np.float32))
    except MemoryError as e:  # a long recording on a small machine: no fault of the file (it was skipped as unreadable)
        raise reading_memory_error(path, e) from None
    except Exception as exc:
        raise DataError(path, unreadable_text(exc, path)) from exc
    return data, sr, header_frames


def read_audio(
    path: str | Path,
    sample_rate: int | None = None,
    mono: bool = True,
    channel: int | str | None = None,
    csv_rate: float | None = None,
    expect_channels: int | None = None,
    stats: dict | None = None,
    columns: list[str] | None = None,
) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 samples (full scale 1), less each channel's mean (:func:`remove_dc`; a vibration
    CSV: its values less each channel's mean, its rate from the time column or ``csv_rate``); return
    ``(wave, sample_rate)``.

    Shapes: ``mono=True`` averages the channels -> ``(T,)``; ``mono=False`` -> ``(C, T)``.
    ``channel=k`` keeps only channel ``k`` (0-based): ``(T,)`` when ``mono`` else ``(1, T)``.
    ``channel="all"`` keeps every channel, ``(C, T)`` whatever ``mono`` says (a model of every axis of a
    multi-axis sensor); ``expect_channels``, when given, is the count the file must hold.
    When ``sample_rate`` is given and differs from the file's, the audio is resampled with
    :func:`resample`. ``stats``, when given, gets ``clipped_share``: the largest share of samples on plateaus at a
    read channel's extremes near full scale (:func:`~latentbridge.io.levels.peak_and_clipping`: a saturated recorder),
    before resampling; None for a vibration table, whose full scale is the sensor's and unknown. ``columns``: the
    sensor columns a model reads, by their header names (a vibration CSV is read in their order: :func:`_read_table`).

    Raises DataError (naming the file) when the file does not exist, has an unsupported
    extension, is empty, unreadable or truncated, holds zero frames, contains NaN/inf samples,
    or is silent (every sample's magnitude below :func:`silence_level`), when ``channel``
    is out of range or the file does not hold ``expect_channels`` channels, and when a CSV names other sensor columns
    than ``columns``.
    """
    path = Path(path)
    if isinstance(channel, (bool, str)) and channel != ALL_CHANNELS or isinstance(columns, str):
        raise ValueError(f"channel: an index or {ALL_CHANNELS!r}, columns: a list of names; got {channel!r}, "
                         f"{columns!r}")  # ("1" was "out of range" of a stereo file, "ax" the columns a and x)
    _check_file(path)
    if sample_rate is not None:
        positive_integer(sample_rate, "sample_rate")

    if is_table(path):
        data, sr = _read_table(path, csv_rate, columns)
        header_frames = data.shape[0]
    else:
        data, sr, header_frames = _read_soundfile(path, layout := _layout(path))
    check_frames(path, data.shape[0], header_frames, None if is_table(path) else declared_frames_of(path, layout), sr,
                 sample_rate)
    sums = None if is_table(path) else column_sums(data)  # (a vibration table lost its means when read)
    if not (np.isfinite(sums[0]).all() if sums is not None else all(np.isfinite(b).all() for b in _blocks(data))):
        raise non_finite(path, [data])
    _, clipped = peak_and_clipping(data)  # as recorded: a biased sensor saturates at full scale, not less its offset
    if sums is not None:
        remove_dc(data, sums)
    check_peak(path, _peak(data), data.shape[0])

    wave = select_channels(data, path, channel, mono, expect_channels)
    if stats is not None:
        read = clipped if channel is None or channel == ALL_CHANNELS else clipped[int(channel):int(channel) + 1]
        stats["clipped_share"] = None if is_table(path) else round(float(read.max()), 6)

    if sample_rate is not None and int(sample_rate) != sr:
        wave = resample(wave, sr, int(sample_rate))
        sr = int(sample_rate)
    return wave, sr


def check_frames(path: Path, n_read: int, header_frames: int, declared: int | None, sr: int,
                 sample_rate: int | None = None) -> None:
    """:func:`read_audio`'s checks of the frames read from ``path`` (``declared``: a WAV header's count) and its rate
    (``sample_rate``: the rate it is read at): DataError naming the file."""
    if declared is not None and n_read < declared:
        raise DataError(path, f"truncated audio file: header declares {declared} frames but only {n_read} are present")
    # MP3 frame counts in headers are estimates; allow a small slack there.
    slack = max(1152, header_frames // 50) if path.suffix.lower() == ".mp3" else 0
    if n_read + slack < header_frames:
        raise DataError(path, f"truncated audio file: header declares {header_frames} frames "
                              f"but only {n_read} could be decoded")
    if n_read == 0:
        raise DataError(path, "audio has zero length (no samples)")
    if sr <= 0:
        raise DataError(path, f"invalid sample rate {sr} in header")
    if problem := rate_problem(sr, sample_rate):
        raise DataError(path, problem)


def non_finite(path: Path, blocks) -> DataError:
    """The error of a recording holding NaN or inf samples, counted over its ``blocks`` of samples."""
    n_nan = n_inf = size = 0
    for b in blocks:
        n_nan, n_inf, size = n_nan + int(np.isnan(b).sum()), n_inf + int(np.isinf(b).sum()), size + b.size
    return DataError(path, f"contains {n_nan + n_inf} non-finite samples ({n_nan} NaN, {n_inf} inf) out of {size}")


def rate_problem(rate: float, target: float | None = None) -> str | None:
    """Why a recording at ``rate`` cannot be read for a model at ``target`` Hz, or None: a rate above
    :data:`~latentbridge.io.vibration.MAX_RATE`, or one the model's rate is more than :data:`MAX_AUDIO_UPSAMPLING`
    times (most of its band would be empty; a header's rate mistyped, 1 Hz for 8 kHz, upsampled the samples
    thousands of times, out of memory)."""
    if rate > MAX_RATE:
        return f"a sample rate of {rate:g} Hz in its header, above {MAX_RATE:g} Hz: a damaged or mistyped header?"
    if target is not None and float(target) > MAX_AUDIO_UPSAMPLING * rate:
        return (f"recorded at {rate:g} Hz (its header's rate, its time column's or the rate given for it): reading it "
                f"at the model's {float(target):g} Hz would upsample it {float(target) / rate:.3g} times (at most "
                f"{MAX_AUDIO_UPSAMPLING:g}), leaving all but the bottom {100 / (float(target) / rate):.2g} % of the band "
                "empty; a wrong rate (in its header, or given), or not the sound the model reads")
    return None


def select_channels(data: np.ndarray, path: str | Path, channel: int | str | None = None, mono: bool = True,
                    expect_channels: int | None = None) -> np.ndarray:
    """A file's ``(T, C)`` samples as :func:`read_audio` returns them (its ``channel``, ``mono`` and
    ``expect_channels``): ``(T,)``, ``(1, T)`` or ``(C, T)`` float32; DataError naming ``path``. The caller has
    refused samples that are silent as a whole; a silent channel picked or a mix that cancels are refused here."""
    n_channels = data.shape[1]
    if expect_channels is not None and expect_channels != n_channels:
        raise DataError(path, f"{n_channels} channel{'s' if n_channels != 1 else ''}, where the model reads every "
                              f"channel of {expect_channels}-channel recordings (audio.channel: all)")
    wave = data.T  # (C, T)
    if channel == ALL_CHANNELS:
        mono = False
    elif channel is not None:
        if int(channel) != channel or not 0 <= channel < n_channels:
            raise DataError(
                path,
                f"channel {channel!r} out of range: the file has {n_channels} channel"
                f"{'s' if n_channels != 1 else ''} (valid: 0..{n_channels - 1})",
            )
        wave = wave[int(channel) : int(channel) + 1]
        if _peak(wave.T) < silence_level(path):
            raise DataError(path, f"channel {channel} is silent")
    if mono and wave.shape[0] > 1:
        wave = mix_down(wave)
        if _peak(wave) < silence_level(path):
            raise DataError(path, MIX_SILENT)
    elif mono:
        wave = wave[0]  # one channel, whose silence the caller checked with the file's
    return np.ascontiguousarray(wave, dtype=np.float32)


def mix_down(wave: np.ndarray) -> np.ndarray:
    """The mean of ``wave``'s channels ``(C, T)`` -> ``(T,)`` float32, channel by channel: numpy's mean over the first
    axis of the transposed ``(T, C)`` samples a file is read into took 8 ms for 10 s of stereo, this 0.3 ms."""
    out = np.array(wave[0], dtype=np.float32)
    for row in wave[1:]:
        out += row
    out /= np.float32(len(wave))  # as numpy's mean, to the bit
    return out
