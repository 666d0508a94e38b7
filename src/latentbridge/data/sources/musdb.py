"""MUSDB18-style stems: reader for ``root/<track>/{mixture,drums,bass,other,vocals}.wav``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError, reading_memory_error
from latentbridge.io import AUDIO_EXTENSIONS, resample
from latentbridge.io.wav import soundfile_source

__all__ = ["MUSDB_STEMS", "MUSDBStems", "stem_file", "stem_files", "track_root"]

MUSDB_STEMS: tuple[str, ...] = ("mixture", "drums", "bass", "other", "vocals")


def stem_file(folder: Path, stem: str) -> Path | None:
    """``folder/<stem>.wav``, its name in any case (``Vocals.wav`` was not found), else the stem in another audio
    format libsndfile reads (``vocals.flac``: the track was left out as having no vocals), or None."""
    exact = folder / f"{stem}.wav"
    if exact.is_file():
        return exact
    named = [q for q in sorted(folder.iterdir()) if q.stem.lower() == stem and q.suffix.lower() in AUDIO_EXTENSIONS
             and q.is_file()]
    return min(named, key=lambda q: AUDIO_EXTENSIONS.index(q.suffix.lower()), default=None)  # .wav first


def _track_folders(root: Path) -> list[Path]:
    """The sub-folders of ``root`` holding at least one stem file (sorted)."""
    return [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")
            and any(stem_file(p, s) is not None for s in MUSDB_STEMS)]


def track_root(root: Path, split: str) -> Path:
    """The folder whose sub-folders are the tracks: ``root``, or ``root/<split>`` when ``root`` is MUSDB18's own root
    (``train/`` and ``test/`` folders of tracks, no track of its own): a model trains on ``train``, ``evaluate --data``
    of that root reads ``test`` (found nothing, then scored every file under the root, every stem and the mixture)."""
    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir() and not _track_folders(root):
        return root / split
    return root


def stem_files(root: Path, stems: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The ``<track>/<stem>.wav`` files of ``stems`` under ``root`` (stem by stem, tracks in order; names in any
    case), and the tracks that lack one of them (left out: a track without vocals was skipped without a word)."""
    tracks = _track_folders(Path(root))
    found = {t: {s: stem_file(t, s) for s in stems} for t in tracks}
    files = [found[t][s] for s in stems for t in tracks if found[t][s] is not None]
    missing = [f"{t.name} (no {', '.join(s for s in stems if found[t][s] is None)})" for t in tracks
               if any(found[t][s] is None for s in stems)]
    return files, missing


class MUSDBStems:
    """MUSDB18-style folder of decoded stems: ``root/<track>/{mixture,drums,bass,other,vocals}.wav``.

    (MUSDB18 ships ``.stem.mp4`` files; decode them to this layout, as ``musdb``'s
    ``--wav`` variant does, e.g. ``root = MUSDB18-HQ/train``.) Stems may be silent: unlike
    :func:`latentbridge.io.read_audio`, silence is not an error here.
    """

    STEMS = MUSDB_STEMS

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(self.root, "MUSDB folder does not exist")

    def tracks(self) -> list[str]:
        """Names of the track folders (sorted) holding at least one stem file."""
        return [p.name for p in _track_folders(self.root)]

    def load(
        self, track: str, stems: Sequence[str] | None = None, sample_rate: int | None = None
    ) -> dict[str, np.ndarray]:
        """``{stem: float32 array (C, T)}``; resampled to ``sample_rate`` when given.

        DataError (naming the file) for a missing track or stem, an unreadable file, or stems
        whose sample rates, channel counts or lengths differ from the first stem's.
        """
        import soundfile as sf

        stems = list(self.STEMS if stems is None else stems)
        unknown = [s for s in stems if s not in self.STEMS]
        if unknown:
            raise ValueError(f"unknown stem(s) {unknown}; stems are {self.STEMS}")
        if not stems:
            raise ValueError("stems must not be empty")
        folder = self.root / track
        if not folder.is_dir():
            raise DataError(folder, "no such track folder")
        out: dict[str, np.ndarray] = {}
        ref: tuple[str, int, int, int] | None = None  # (file, sr, channels, frames)
        for stem in stems:
            path = stem_file(folder, stem) or folder / f"{stem}.wav"
            if not path.is_file():
                have = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
                raise DataError(path, f"missing stem {stem!r} (track folder holds: "
                                      f"{', '.join(have) or 'no audio files'})")
            try:
                with sf.SoundFile(soundfile_source(path)) as f:
                    sr, ch, declared = int(f.samplerate), int(f.channels), int(f.frames)
                    data = f.read(dtype="float32", always_2d=True)
            except MemoryError as e:  # too little memory is no fault of the file
                raise reading_memory_error(path, e) from None
            except Exception as exc:  # noqa: BLE001 - libsndfile errors
                raise DataError(path, f"unreadable audio file ({exc})") from exc
            if data.shape[0] < declared or data.shape[0] == 0:
                raise DataError(path, f"truncated or empty: {data.shape[0]} of {declared} frames")
            if not np.all(np.isfinite(data)):
                raise DataError(path, "contains NaN or inf samples")
            frames = data.shape[0]
            if ref is None:
                ref = (path.name, sr, ch, frames)
            else:
                if sr != ref[1]:
                    raise DataError(path, f"sample rate {sr} Hz differs from {ref[0]} ({ref[1]} Hz)")
                if ch != ref[2]:
                    raise DataError(path, f"{ch} channel(s), {ref[0]} has {ref[2]}")
                if frames != ref[3]:
                    raise DataError(path, f"length {frames} frames differs from {ref[0]} ({ref[3]} frames)")
            out[stem] = np.ascontiguousarray(data.T)
        if sample_rate is not None and ref is not None and int(sample_rate) != ref[1]:
            out = {k: resample(v, ref[1], int(sample_rate)) for k, v in out.items()}
        return out

    def sample_rate(self, track: str) -> int:
        """Sample rate of the track's first stem file present."""
        import soundfile as sf

        for stem in self.STEMS:
            p = stem_file(self.root / track, stem)
            if p is not None:
                return int(sf.info(soundfile_source(p)).samplerate)
        raise DataError(self.root / track, "no stem files")
