"""Score audio with an exported ONNX model using only numpy and onnxruntime (no torch).

Meant for small devices such as a Raspberry Pi: copy the ``.onnx`` file, install
``numpy onnxruntime`` (plus ``soxr`` to score recordings at another sample rate, ``soundfile`` to read audio
formats other than WAV and ``scipy`` for MATLAB files; vibration CSVs need nothing more), then::

    python -m latentbridge.edge model.onnx recording.wav [more.wav folder/ ...]

with this package installed without its dependencies (``pip install --no-deps`` of its wheel: this module and
the readers it uses import no torch; a copy of ``edge.py`` alone does not run). The STFT is computed here with
numpy; everything after it (mel, dB, standardisation, network, score) runs in the ONNX graph, whose metadata
carries the preprocessing parameters and the threshold. ``import latentbridge.edge`` does not
import torch.

Output. Once, before the first file's rows, the model's threshold: ``# threshold THRESHOLD`` (a comment line,
as ``#`` lines are to most table readers). Then one line per window on stdout,
``PATH<TAB>START_S<TAB>SCORE<TAB>normal|ANOMALY`` (start in seconds with 3 decimals, as scores.csv), then one
per file, ``PATH<TAB>file<TAB>SCORE<TAB>...`` (mean of the window scores, or the maximum when the
model was fitted with ``anomaly.aggregate=max``). ``PATH`` is the path as given (for a folder
argument, each audio file found under it, as ``anomaly score`` lists them). Nothing scored: nothing on stdout.

Memory: an audio recording of any length is read in blocks (:class:`latentbridge.io.blockread.RecordingBlocks`: one
pass for each channel's offset and the checks, one for the windows), resampled, cut and scored :data:`BATCH_WINDOWS`
windows at a time; the windows are those of the whole recording, to the bit. A vibration CSV's text is split and parsed
a block of lines at a time into one table of its numbers (an hour of three axes at 1 kHz, a 123-MB CSV: 381 MB at its
peak, 834 MB when its lines were split at once); MATLAB files are read whole.

Checks: the same as ``anomaly score``, so the device refuses what the CLI refuses.

* Files are read in blocks with :func:`latentbridge.io.read_audio`'s checks (mono mix, or the model's
  ``audio.channel``), which name the file and the problem for: missing, a folder, an unsupported extension, empty,
  unreadable, truncated (a WAV ``data`` chunk cut short), zero frames, NaN/inf samples, silence.
  Only when soundfile cannot be imported at all does a small standard-library WAV reader take
  over for audio (PCM 8/16/24/32-bit and IEEE float WAV; other audio formats need soundfile), with the same
  checks; vibration CSVs and MATLAB files are read as with it.
* A file at another sample rate is resampled to the model's rate with
  :func:`latentbridge.io.resample` (soxr, as in training); one ``note:`` line on stderr says so.
* The short-recording rule of :func:`latentbridge.io.check_recording_length`: a recording shorter
  than a quarter of a window is refused; one shorter than a window is padded to one window with
  the model's pad mode (one ``note:`` line on stderr); windows are cut by
  :func:`latentbridge.io.cut_windows` exactly as in training and ``anomaly score``, and the STFT frames
  that reach into a window's trailing zero padding are silence, as there
  (:func:`latentbridge.transforms.numpy_stft.silence_tail`).

Errors. Every problem is one line on stderr, ``error: PATH: problem``, never a traceback:

====================================================  ==================================  =====
input                                                 effect                              exit
====================================================  ==================================  =====
every file scored                                     decisions on stdout                 0
a bad file (missing, empty, not audio, truncated,     ``error: FILE: ...``; no decision   2
NaN/inf samples, silent, too short, ...)              for it; the other files are scored
the model gives a NaN/inf score for a file            ``error: FILE: ...``; as above      2
model missing, a folder, empty, not an ONNX file      ``error: MODEL: ...``; nothing      2
(e.g. a WAV or a text file), or an ONNX file          is scored
without (or with damaged) latentbridge metadata
``--threads`` below 1                                 ``error: --threads ...``; nothing   2
                                                      is scored
====================================================  ==================================  =====
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError, LatentbridgeError, memory_text, os_error_text, out_of_memory, stdout_gone
from latentbridge.io import (  # numpy only at import time
    ALL_CHANNELS,
    AUDIO_EXTENSIONS,
    MIN_WINDOW_SHARE,
    cut_windows,
    list_audio_files,
)
from latentbridge.io.audio import is_table, rate_problem
from latentbridge.io.blockread import BlockWindows, RecordingBlocks
from latentbridge.io.windows import TRIMMED, check_windows
from latentbridge.io.wav import WAV_SUFFIXES, declared_frames, sample_width, unfinalised_frames, wav_layout
from latentbridge.transforms.numpy_stft import silence_tail, stft_magnitude
from latentbridge.arguments import ArgumentParser
from latentbridge.utils import seen_before, sheet_safe_path, tolerant_stdout

__all__ = ["EdgeModelError", "EdgeScorer", "FileScores", "main", "read_recording"]

METADATA_KEY = "latentbridge"  # the same key as latentbridge.export (which imports torch)
FORMAT_VERSION = 2
#: windows read, cut and scored at a time (of C channels: this many // C): a recording of any length is scored in the
#: memory of this many (30 MB for 2-s windows at 16 kHz, mostly their float64 STFT; a 20-min recording at 25.6 kHz read
#: whole, with its windows, took 3.25 GB)
BATCH_WINDOWS = 16


class EdgeModelError(DataError):
    """The ONNX model file cannot be used (message: ``PATH: problem``)."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------------------- model


class EdgeScorer:
    """An exported latentbridge ONNX model: windows → (scores, decisions), files → :class:`FileScores`.

    Raises :class:`EdgeModelError` (``PATH: problem``) when the model file is missing, a folder,
    empty, not an ONNX model, or has no usable latentbridge metadata.
    """

    def __init__(self, onnx_path: str | Path, threads: int = 1):
        if int(threads) != threads or threads < 1:  # onnxruntime took 0 as a thread per core, a negative count silently
            raise LatentbridgeError(f"--threads must be at least 1, got {threads}")
        path = Path(onnx_path)
        self.path = path
        if not path.exists():
            raise EdgeModelError(path, "model file does not exist")
        if path.is_dir():
            raise EdgeModelError(path, "is a folder, not an ONNX model file (a model folder is exported "
                                       "with: latentbridge export MODEL_DIR --format onnx --out model.onnx)")
        if path.stat().st_size == 0:
            raise EdgeModelError(path, "model file is empty (0 bytes)")
        try:
            with open(path, "rb") as f:
                head = f.read(12)
        except OSError as exc:
            raise EdgeModelError(path, f"cannot read the model file ({exc.strerror or exc})") from None
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            raise EdgeModelError(path, "is a WAV audio file, not an ONNX model (the model comes first: "
                                       "python -m latentbridge.edge MODEL.onnx FILE ...)")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EdgeModelError(path, f"cannot load: onnxruntime is not installed ({exc}); "
                                       "pip install onnxruntime") from None

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own classes (InvalidProtobuf, Fail, ...)
            raise EdgeModelError(path, f"not a loadable ONNX model ({_one_line(exc)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise EdgeModelError(path, f"not a latentbridge export (no {METADATA_KEY!r} metadata; export a model "
                                       "folder with: latentbridge export MODEL_DIR --format onnx --out model.onnx)")
        try:
            self.meta = json.loads(meta[METADATA_KEY])
            kind = self.meta.get("format")
            if kind not in (None, "latentbridge-onnx"):  # a diffusion denoiser was "an earlier latentbridge's" export
                raise EdgeModelError(path, f"not an anomaly scorer export (format {kind!r}): "
                                           + ("a diffusion denoiser, which python -m latentbridge.edge_sampler runs"
                                              if kind == "latentbridge-onnx-denoiser" else "another kind of model"))
            version = int(self.meta.get("format_version", 1))
            if version < FORMAT_VERSION:
                raise EdgeModelError(path, f"exported by an earlier latentbridge (format_version {version}); "
                                           "export the model folder again with this one")
            self.threshold = float(self.meta["threshold"])
            # the saved preprocessing description (latentbridge.transforms.spec.AudioTransform)
            spec = self.meta["transform"]
            t, w = spec["features"], spec["windowing"]
            self.stft_kwargs = dict(n_fft=int(t["n_fft"]), hop_length=int(t["hop_length"]),
                                    win_length=t.get("win_length"), window=t.get("window", "hann"),
                                    center=t.get("center", True), power=t.get("power", 1.0),
                                    n_frames=t.get("n_frames"))
            self.sample_rate = int(t["sample_rate"])
            self.fmax = float(t["fmax"]) if t.get("fmax") else None  # the band's top (survey.band_fmax)
            self.window = int(round(float(w["window_s"]) * self.sample_rate))
            self.hop = max(1, int(round(float(w["hop_s"]) * self.sample_rate)))
            self.pad = str(w.get("pad", "wrap"))
            self.trim_db = w.get("trim_db")
            self.min_share = float(w.get("min_share", MIN_WINDOW_SHARE))
            self.channel = w.get("channel")
            self.n_channels = int(self.meta.get("n_channels", 1))  # what a channel "all" model reads
            self.csv_rate = w.get("csv_rate")  # the rate of vibration files that give none
            self.columns = w.get("columns")  # a vibration CSV's sensor columns, read by their header names
            self.aggregate = str(self.meta.get("aggregate", "mean"))
            self.clipped_pct = self.meta.get("clipped_share_percentiles")  # (None: an export without them)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EdgeModelError(path, f"damaged latentbridge metadata ({type(exc).__name__}: "
                                       f"{_one_line(exc)})") from None
        if version > FORMAT_VERSION:
            raise EdgeModelError(path, f"exported by a newer latentbridge (format_version {version}; this "
                                       f"scorer reads {FORMAT_VERSION})")
        n_fft, hop_length = self.stft_kwargs["n_fft"], self.stft_kwargs["hop_length"]
        # the STFT's too (a hop of 0 was blamed on every audio file)
        if self.sample_rate <= 0 or self.window <= 0 or not np.isfinite(self.threshold) or min(n_fft, hop_length) < 1:
            raise EdgeModelError(path, f"damaged latentbridge metadata (sample_rate {self.sample_rate}, window "
                                       f"{self.window} samples, threshold {self.threshold}, n_fft {n_fft}, "
                                       f"hop_length {hop_length})")
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != ["magnitude"] or "score" not in outputs:
            raise EdgeModelError(path, f"the graph has inputs {inputs} and outputs {outputs}; a latentbridge "
                                       "export takes 'magnitude' and returns 'score'")

    # --- windows → scores --------------------------------------------------------------------
    def magnitude(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        k = self.stft_kwargs
        mag = silence_tail(stft_magnitude(windows, **k), windows, k["n_fft"], k["hop_length"], k["center"])
        return mag[:, None] if mag.ndim == 3 else mag  # (B, 1, F, T)

    def score_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, window_samples) at ``sample_rate`` → (scores, decisions); windows of another length are a ValueError
        (:func:`~latentbridge.io.windows.check_windows`), a window holding NaN or inf scores NaN (no decision: not an
        alarm)."""
        windows = check_windows(windows, self.window, self.sample_rate,
                                self.n_channels if self.channel == ALL_CHANNELS else 1)
        score = self.session.run(["score"], {"magnitude": self.magnitude(windows).astype(np.float32)})[0]
        score = np.asarray(score).reshape(-1)
        return score, score > self.threshold

    def windows(self, x: np.ndarray, name: str | Path = "<waveform>") -> tuple[np.ndarray, np.ndarray]:
        """The same windows as training and ``anomaly score`` cut (start times in seconds)."""
        windows, starts = cut_windows(x, self.window, self.hop, pad=self.pad, name=name)
        return windows, starts / self.sample_rate

    # --- files → scores ----------------------------------------------------------------------
    def prepare(self, path: str | Path) -> tuple[Iterator[tuple[np.ndarray, np.ndarray]], list[str]]:
        """Read, check, resample and cut one file: ``(batches, notes)``, where ``batches`` yields ``(windows,
        starts_s)`` of at most :data:`BATCH_WINDOWS` windows, read, resampled and cut as they are needed (the
        file is never held whole: :class:`~latentbridge.io.blockread.RecordingBlocks`); ``notes`` is complete once
        they are all read.

        Raises DataError naming the file for everything ``anomaly score`` refuses (here, or while the batches are
        read).
        """
        notes: list[str] = []
        with _reader_notes(path, notes):
            blocks = open_recording(path, channel=self.channel,
                                    expect_channels=self.n_channels if self.channel == ALL_CHANNELS else None,
                                    csv_rate=self.csv_rate, columns=self.columns)
        sr = blocks.sample_rate
        if problem := rate_problem(sr, self.sample_rate):
            raise DataError(path, problem)
        if sr != self.sample_rate:
            try:
                import soxr  # noqa: F401
            except ImportError as exc:
                raise DataError(path, f"{sr} Hz needs resampling to the model's {self.sample_rate} Hz, "
                                      f"which needs the soxr package ({exc})") from None
            from latentbridge.data.survey import below_band  # numpy only

            top = self.fmax or self.sample_rate / 2
            notes.append(f"resampled from {sr} Hz to the model's {self.sample_rate} Hz"
                         + (f"; recorded below the model's band, it holds nothing between {sr / 2:g} and {top:g} Hz, "
                            "which scores it as unlike the training sound for that alone" if below_band(sr, top) else ""))
        from latentbridge.data.survey import header_warnings  # numpy only

        # stored lossily where training was not (or 8-bit), as `anomaly score` says (none for an export before codecs)
        notes.extend(WARNING + t for t in header_warnings(self.meta.get("codecs"), self.sample_rate, None,
                                                          [str(path)], [blocks.codec], []))
        if self.channel is None and blocks.channels > 1 and blocks.channels != self.meta.get("fitted_channels"):
            notes.append(f"mixed to one channel from {blocks.channels}: the model reads one channel")
        windows = BlockWindows(blocks, self.sample_rate, self.window, self.hop, self.pad, self.trim_db, self.min_share)
        if windows.padded:
            notes.append(f"shorter than one {self.window / self.sample_rate:.4g}-s window"
                         f"{TRIMMED if self.trim_db else ''}; padded to one window ({self.pad})")
        def batches():  # every channel's windows: as many signals at a time as BATCH_WINDOWS mono windows
            from latentbridge.data.survey import clipping_warnings

            yield from windows.batches(max(1, BATCH_WINDOWS // windows.width))
            # read through: a recording that clips more than the training ones did, as `anomaly score` names it
            notes.extend(clipping_warnings(self.clipped_pct, [str(path)], [blocks.clipped_share]))

        return batches(), notes

    def score_file(self, path: str | Path) -> FileScores:
        """Window scores, decisions and the file score of one recording (DataError for a bad file)."""
        batches, notes = self.prepare(path)
        parts = [(starts_s, *self.score_windows(windows)) for windows, starts_s in batches]
        starts_s, scores, flags = (np.concatenate(x) for x in zip(*parts))
        bad = ~np.isfinite(scores)
        if bad.any():
            raise DataError(path, f"the model gave non-finite scores for {int(bad.sum())} of {len(scores)} "
                                  "windows; no decision")
        agg = float(scores.max() if self.aggregate == "max" else scores.mean())
        return FileScores(str(path), starts_s, scores, flags, agg, agg > self.threshold, notes)


@dataclass
class FileScores:
    path: str
    starts_s: np.ndarray
    scores: np.ndarray
    decisions: np.ndarray
    file_score: float
    file_decision: bool
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Tab-separated rows: path, window start (s) or ``file``, score, decision. Tabs and line breaks in the path
        are written as ``\\t``, ``\\n``, ``\\r`` (a name holding them split its row into other fields or lines); a
        relative path that begins as a spreadsheet formula from ``./`` (:func:`~latentbridge.utils.sheet_safe_path`)."""
        path = sheet_safe_path(self.path).translate(_ESCAPES)
        out = [f"{path}\t{s:.3f}\t{sc:.6g}\t{'ANOMALY' if fl else 'normal'}"
               for s, sc, fl in zip(self.starts_s, self.scores, self.decisions)]
        out.append(f"{path}\tfile\t{self.file_score:.6g}\t{'ANOMALY' if self.file_decision else 'normal'}")
        return out


_ESCAPES = str.maketrans({"\t": "\\t", "\n": "\\n", "\r": "\\r"})


# --------------------------------------------------------------------------------------- reading

_SOUNDFILE: bool | None = None


def _soundfile_available() -> bool:
    global _SOUNDFILE
    if _SOUNDFILE is None:
        try:
            import soundfile  # noqa: F401
        except (ImportError, OSError):  # OSError: the libsndfile library is missing
            _SOUNDFILE = False
        else:
            _SOUNDFILE = True
    return _SOUNDFILE


def open_recording(path: str | Path, channel: int | str | None = None, expect_channels: int | None = None,
                   csv_rate: float | None = None, columns: list[str] | None = None) -> RecordingBlocks:
    """A recording to read block by block (:class:`~latentbridge.io.blockread.RecordingBlocks`: mono, or channel
    ``channel``, or every channel of the ``expect_channels`` a ``channel="all"`` model reads; a vibration CSV's
    sensor columns in the order of the model's ``columns``, by name), checked like training:
    through soundfile when it can be imported, else the standard-library WAV reader's header checks
    (:func:`_wav_stdlib`). Raises DataError naming the file."""
    if _soundfile_available() or is_table(Path(path)):  # vibration tables are read without soundfile
        return RecordingBlocks(path, channel, expect_channels, csv_rate, columns=columns)
    return _wav_stdlib(path, channel, expect_channels)


def read_recording(path: str | Path, channel: int | str | None = None,
                   expect_channels: int | None = None, csv_rate: float | None = None) -> tuple[np.ndarray, int]:
    """Mono (or channel ``channel``, or every channel of the ``expect_channels`` a ``channel="all"`` model reads)
    float32 samples and the file's rate, checked like training, whole: :func:`open_recording`'s blocks (the samples
    :func:`latentbridge.io.read_audio` gives). Raises DataError naming the file."""
    blocks = open_recording(path, channel=channel, expect_channels=expect_channels, csv_rate=csv_rate)
    return blocks.whole(), blocks.sample_rate


def _wav_stdlib(path: str | Path, channel: int | str | None = None,
                expect_channels: int | None = None) -> RecordingBlocks:
    """WAV reader for devices without soundfile: numpy only (PCM 8/16/24/32-bit, float 32/64-bit).

    The standard library's ``wave`` module reads integer PCM only, but soundfile writes float32
    WAV (format tag 3) by default, and that is where NaN/inf samples occur, so the RIFF chunks are
    parsed by :mod:`latentbridge.io.wav`, as for a header a recorder never finalised. Applies the checks of
    :func:`latentbridge.io.read_audio` with its messages (those on the samples by
    :class:`~latentbridge.io.blockread.RecordingBlocks`, which reads them block by block).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file does not exist")
    if path.is_dir():
        raise DataError(path, "is a folder, not an audio file")
    suffix = path.suffix.lower()
    if suffix not in AUDIO_EXTENSIONS:
        raise DataError(path, f"unsupported file type {path.suffix or '(no extension)'!r}; "
                              f"accepted extensions: {', '.join(AUDIO_EXTENSIONS)}")
    size = path.stat().st_size
    if size == 0:
        raise DataError(path, "file is empty (0 bytes)")
    if suffix not in WAV_SUFFIXES:
        raise DataError(path, f"reading {suffix} files needs the soundfile package (pip install soundfile); "
                              "without it only WAV files can be read")
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise DataError(path, f"cannot read the file ({exc.strerror or exc})") from None
    if head[:4] in (b"RF64", b"BW64") and head[8:12] == b"WAVE":  # "not a RIFF/WAVE file" said nothing of it
        raise DataError(path, "a 64-bit WAV (RF64, for files over 4 GB) needs the soundfile package")
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        raise DataError(path, "unreadable or truncated audio file (not a RIFF/WAVE file)")
    if head[:4] == b"RIFX":
        raise DataError(path, "big-endian WAV (RIFX) needs the soundfile package")
    layout = wav_layout(path)
    if layout is None:
        raise DataError(path, "unreadable or truncated audio file (no complete 'fmt ' and 'data' chunks)")
    n_channels, sr = layout.channels, layout.sample_rate
    if n_channels < 1 or layout.block_align < 1 or layout.block_align % n_channels:
        raise DataError(path, f"unreadable audio file (invalid header: {n_channels} channels, "
                              f"block align {layout.block_align})")
    if sample_width(layout) is None:
        raise DataError(path, f"unsupported WAV encoding (format tag {layout.fmt_tag}, {layout.bits} bits) for the "
                              "reader without soundfile; pip install soundfile")
    n_read = layout.present_bytes // layout.block_align
    if (n_stale := unfinalised_frames(layout)) is not None:  # a header never finalised: the samples present
        n_read = n_stale
    elif (n_declared := declared_frames(layout)) is not None:
        if n_read < n_declared:
            raise DataError(path, f"truncated audio file: header declares {n_declared} frames but only {n_read} "
                                  "are present")
        n_read = n_declared
    if n_read == 0:
        raise DataError(path, "audio has zero length (no samples)")
    if sr <= 0:
        raise DataError(path, f"invalid sample rate {sr} in header")
    return RecordingBlocks(path, channel, expect_channels, layout=layout, frames=n_read)


# --------------------------------------------------------------------------------------- CLI


def _expand(arg: str) -> list[str]:
    """A folder → the audio files under it (as ``anomaly score`` lists them); anything else as is."""
    if Path(arg).is_dir():
        return [str(p) for p in list_audio_files(arg)]
    return [arg]


#: how the scorer is run, as its errors name it
COMMAND = "python -m latentbridge.edge"


#: how a note that is a warning of the readers begins (said as a "warning:" line, not a "note:" one)
WARNING = "warning: "


@contextlib.contextmanager
def _reader_notes(path, notes: list[str]):
    """The reader's warnings of one file (sensor columns read by name, others left out) taken as its ``notes``, which
    are said for the first file and counted for the others (a line a file, 8 for 8 CSVs)."""
    logger = logging.getLogger("latentbridge.io.columns")

    class Notes(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            notes.append(WARNING + (text[len(f"{path}: "):] if text.startswith(f"{path}: ") else text))

    handler, propagate = Notes(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog=COMMAND,
                       description="Score audio files with an exported latentbridge ONNX model "
                                   "(exit 0: every file scored; 2: a file or the model failed).")
    p.add_argument("model", help="the .onnx file written by `latentbridge export`")
    p.add_argument("files", nargs="+", help="audio files or folders")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.add_argument("--sample-rate", type=float, help="Hz of vibration CSVs and .mat files that give no rate "
                   "(default: the model's audio.csv_rate; a file that gives its own is read at it)")
    args = p.parse_args(argv)
    tolerant_stdout()
    # what the readers log (columns left out or reordered, a folder's files left out) as warning lines, not bare ones
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")

    def error(e: Exception) -> None:
        print(f"error: {_one_line(memory_text(e, COMMAND) if out_of_memory(e) else e)}", file=sys.stderr, flush=True)

    try:
        scorer = EdgeScorer(args.model, threads=args.threads)
        if args.sample_rate is not None:
            from latentbridge.io.vibration import given_rate

            scorer.csv_rate = given_rate(args.sample_rate)
    except (LatentbridgeError, MemoryError) as e:
        error(e)
        return 2
    status, scored = 0, False
    noted: Counter[str] = Counter()  # each note is printed for the first file it concerns, then counted
    seen: dict = {}  # each file scored once, as `anomaly score` scores it (a hard link to one was scored twice)
    for arg in args.files:
        try:
            files = _expand(arg)
        except DataError as e:
            error(e)
            status = 2
            continue
        for f in files:
            if (first := seen_before(f, seen)) is not None:
                print(f"note: {f}: the same file as {first}, scored once", file=sys.stderr, flush=True)
                continue
            try:
                res = scorer.score_file(f)
            except DataError as e:
                error(e)
                status = 2
                continue
            except Exception as e:  # noqa: BLE001 - onnxruntime failing on one file must not stop the rest
                error(DataError(f, memory_text(e, COMMAND, named=True) if out_of_memory(e) else
                                f"the model could not score it ({type(e).__name__}: {_one_line(e)})"))
                status = 2
                continue
            for note in res.notes:
                noted[note] += 1
                if noted[note] == 1:
                    print(_said(note, f), file=sys.stderr, flush=True)
            if not scored:  # the threshold the decisions use, said once (and never when nothing is scored)
                print(f"# threshold {scorer.threshold:.6g}")
                scored = True
            print("\n".join(res.lines()), flush=True)
    for note, n in noted.items():
        if n > 1:
            print(_said(note, f"{n - 1} more file(s) too"), file=sys.stderr, flush=True)
    return status


def _said(note: str, about) -> str:
    """A note's line about a file (or the count of other files it concerns): "note: ...", or "warning: ..." for the
    readers' warnings (:func:`_reader_notes`)."""
    if note.startswith(WARNING):
        return f"{WARNING}{about}: {note[len(WARNING):]}"
    return f"note: {about}: {note}"


def _run() -> int:
    """:func:`main`, ending quietly when the reader of its output goes away (``| head``) as shell tools do: exit 141
    (a broken pipe), no traceback."""
    try:
        return main()
    except BrokenPipeError as e:
        if stdout_gone(e):  # (the interpreter's last flush goes nowhere)
            return 141
        raise
    except OSError as e:  # its output cannot be written (a full disk: a traceback), said as the CLI says it
        print(f"error: {os_error_text(e) if e.filename else f'the scores cannot be written ({e.strerror or e})'}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(_run())
