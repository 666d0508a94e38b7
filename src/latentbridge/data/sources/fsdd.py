"""Free Spoken Digit Dataset (FSDD): a local ``recordings/*.wav`` folder, or the GitHub archive of
commit ``26eb9aa`` downloaded and checked against the md5 listing of its recordings."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from latentbridge.data.sources.common import _check_split, folder_digit, refuse_missing
from latentbridge.data.sources.downloads import (
    default_data_dir,
    download,
    file_checksum,
)
from latentbridge.errors import DataError
from latentbridge.utils import atomic_path

log = logging.getLogger(__name__)

__all__ = ["FSDD", "FSDDItem"]


@dataclass(frozen=True)
class FSDDItem:
    """One spoken-digit recording: FSDD's ``{digit}_{speaker}_{index}.wav``, or one of a folder of one's own."""

    path: Path
    digit: int
    speaker: str
    index: int
    test: bool | None = None
    """Whether it is in the test split, as :func:`_split` decided for its folder; None (an item made by hand): FSDD's
    rule by repetition index."""

    @property
    def split(self) -> str:
        """Official split: repetitions 0-4 are test, 5-49 train (unless the item's folder decided it)."""
        if self.test is not None:
            return "test" if self.test else "train"
        return "test" if self.index < FSDD.TEST_INDICES else "train"


# (.WAV too: a recorder's case; numbered speakers too: AudioMNIST's 01 ... 60)
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z0-9][A-Za-z0-9-]*)_(\d+)\.(?i:wav)$")
#: the share of a speaker's repetitions of a digit, or of a class folder's recordings, in the test split (FSDD's: 5 of
#: 50 repetitions)
FOLDER_TEST_SHARE = 0.1


def _folder_items(root: Path) -> tuple[list[FSDDItem], list[Path]]:
    """The spoken digits of a folder of one's own, and the audio files left out: recordings named as FSDD's (in
    sub-folders, as AudioMNIST's ``01/0_01_0.wav``; any audio format), or in class folders named by digit (``3/``,
    ``three/``: the spoken-command sets' layout), its speaker the name's first ``_``-token when it has one. A file is
    read where it really lies below ``root`` (:func:`~latentbridge.data.sources.common.real_place`), once. The split:
    :func:`_split`."""
    from latentbridge.data.sources.common import real_place
    from latentbridge.io.audio import AUDIO_EXTENSIONS, UNDECODED_AUDIO
    from latentbridge.utils import first_time, is_hidden, listed, seen_before, walk_files

    found, skipped, seen, top, broken, files = [], [], set(), Path(os.path.realpath(root)), [], {}
    twice = []
    for p in sorted(walk_files(root)):  # (in order: of two hard links to one recording, the first name kept)
        if is_hidden(p, root) or not p.is_file():
            if p.is_symlink() and not p.exists() and not is_hidden(p, root):
                broken.append(p.relative_to(root).as_posix())
            continue
        rel = real_place(p, root, top)
        if rel in seen:  # a link to a recording of the folder: one recording
            continue
        seen.add(rel)
        if (first := seen_before(root / rel, files)) is not None:  # a hard link: one recording (it was in both splits)
            twice.append(f"{rel.as_posix()} ({first.relative_to(root).as_posix()})")
            continue
        if p.suffix.lower() not in AUDIO_EXTENSIONS:
            if p.suffix.lower() in UNDECODED_AUDIO:  # (an .m4a class folder was left out without a word)
                skipped.append(p)
            continue
        p = root / rel
        m = _FSDD_NAME.match(p.stem + ".wav")  # a class folder's digit before the name's (seven/2_alice_3.wav: 7)
        digit = next((d for part in reversed(rel.parts[:-1]) if (d := folder_digit(part)) is not None),
                     int(m.group(1)) if m else None)
        if digit is None:
            skipped.append(p)
            continue
        found.append((digit, m.group(2) if m else p.stem.split("_")[0] if "_" in p.stem else "",
                      int(m.group(3)) if m else -1, p))
    if twice and first_time(("spoken digits twice", str(top))):
        warnings.warn(f"{root}: {len(twice)} recording(s) under a second name (hard links) read once: "
                      f"{listed(twice, 5)}", stacklevel=3)
    if broken and first_time(("spoken digit links to nothing", str(top))):  # (dropped without a word)
        warnings.warn(f"{root}: {len(broken)} link(s) to nothing left out ({listed(sorted(broken), 5)})", stacklevel=3)
    return _split(found, root), skipped


def _split(found: list[tuple[int, str, int, Path]], root: Path) -> list[FSDDItem]:
    """Items of ``(digit, speaker, index or -1, path)``, sorted, split: a ``train/`` or ``test/`` folder above the
    file decides, else for named files the repetitions below 10 % (:data:`FOLDER_TEST_SHARE`) of a speaker's highest
    repetition number of the digit, rounded half up (FSDD's and AudioMNIST's official 0-4 of 0-49, whatever files are
    missing), else for files in class folders a draw seeded by the file's path
    (the same whatever else the folder holds); every digit of two files or more undecided by folders keeps one on each
    side (:func:`~latentbridge.data.sources.common.both_sides`)."""
    from latentbridge.data.sources.common import both_sides, drawn_splits, folder_split

    found = sorted(found, key=lambda f: (f[0], f[1], f[2], f[3].as_posix()))
    by_folder = [folder_split(f[3].relative_to(root).parts) for f in found]
    named = [i for i, f in enumerate(found) if f[2] >= 0 and by_folder[i] is None]
    last: dict = {}
    for i in named:
        last[found[i][:2]] = max(last.get(found[i][:2], 0), found[i][2])
    cut = {group: int(FOLDER_TEST_SHARE * (n + 1) + 0.5) for group, n in last.items()}  # FSDD's 0-49: 5, half up
    flags = dict(zip(named, both_sides([found[i][2] < cut[found[i][:2]] for i in named],
                                       [found[i][0] for i in named], [found[i][2] for i in named])))
    drawn = [i for i, f in enumerate(found) if f[2] < 0 and by_folder[i] is None]
    flags.update(zip(drawn, drawn_splits([found[i][3].relative_to(root).as_posix() for i in drawn],
                                         [found[i][0] for i in drawn], FOLDER_TEST_SHARE)))
    items, count = [], {}
    for i, (digit, speaker, index, p) in enumerate(found):  # a class folder's files numbered in name order
        if index < 0:
            index = count[(digit, speaker)] = count.get((digit, speaker), -1) + 1
        items.append(FSDDItem(p, digit, speaker, index, by_folder[i] == "test" if by_folder[i] else flags[i]))
    return items


def _recordings_digest(files: Iterable[Path]) -> str:
    """md5 of the md5sum listing of the recordings, the same as
    ``(cd fsdd && find recordings -type f -name '*.wav' -print0 | LC_ALL=C sort -z
    | xargs -0 md5sum) | md5sum``."""
    lines = [f"{file_checksum(p, 'md5')}  recordings/{p.name}\n" for p in sorted(files, key=lambda p: p.name.encode())]
    return hashlib.md5("".join(lines).encode()).hexdigest()


class FSDD:
    """Free Spoken Digit Dataset (6 speakers x 10 digits x 50 repetitions, 8 kHz mono).

    ``root`` is a folder holding ``recordings/*.wav`` (or the ``recordings`` folder itself),
    used as is; by default ``default_data_dir() / "fsdd"``. With ``download=True`` and no
    recordings there, the GitHub archive of commit ``26eb9aa`` is downloaded and its
    ``recordings/`` folder extracted into ``root/recordings`` (the archive's top folder,
    ``free-spoken-digit-dataset-26eb9aa...``, is skipped whatever its exact name).

    Checksums: GitHub builds archives on the fly, so their bytes are not guaranteed to stay
    the same; ``ARCHIVE_SHA256`` is therefore ``None`` until it is pinned — **verify it and
    set it on the first real download** (``file_checksum(path, "sha256")``). What is pinned
    is the content: ``RECORDINGS_MD5``, the md5 of the ``md5sum`` listing of the 3,000
    recordings at that commit, checked after every extraction (and by :meth:`verify`).
    """

    URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/26eb9aa.zip"
    #: sha256 of the archive at URL. TO PIN: verify and set on the first real download.
    ARCHIVE_SHA256: str | None = None
    #: md5 of the md5sum listing of recordings/*.wav at commit 26eb9aa (3,000 files).
    RECORDINGS_MD5: str | None = "d5bddbb0b920c3be379675bfafa71524"
    N_RECORDINGS = 3000
    SAMPLE_RATE = 8000
    #: repetitions with index < TEST_INDICES form the official test split
    TEST_INDICES = 5

    def __init__(self, root: str | Path | None = None, download: bool = False, *, setting: str = "digits.fsdd_root",
                 fetch: str | None = "digits.download=true"):
        """``setting``: the option that names the folder, ``fetch`` the one that downloads the clips (None: the
        caller has none), for the message of a folder without them."""
        self.root = Path(root) if root is not None else default_data_dir() / "fsdd"
        self._items: list[FSDDItem] | None = None
        self.skipped: list[Path] = []
        #: "fsdd": FSDD's flat folder of named recordings; "folders": a folder of one's own (:func:`_folder_items`)
        self.layout = "fsdd"
        refuse_missing(self.root, root, download, setting, fetch, "FSDD")
        rec, skipped = self._find_recordings(), []
        if rec is None and self.root.is_dir():
            items, skipped = _folder_items(self.root)
            if items:
                self.layout, self._items, self.skipped, rec = "folders", items, skipped, self.root
                self._say_skipped(skipped, "in no class folder named by a digit (0-9, zero-nine) nor named "
                                           "{digit}_{speaker}_{index}, or of a format the decoder does not read "
                                           "(.m4a, .wma, ...: convert them to WAV or FLAC first)")
        if rec is None:
            if not download:
                raise DataError(
                    self.root,
                    f"no spoken digits found: point {setting} at FSDD's folder (recordings/*.wav" + (
                        f"; {fetch} fetches them" if fetch else "") + "), or at recordings of your own named "
                    "{digit}_{speaker}_{index}.wav or in class folders named by digit (0/ ... 9/ or zero/ ... nine/; "
                    "train/ and test/ above them split them)" + (
                        f"; it holds {len(skipped)} file(s) none of these (e.g. "
                        f"{skipped[0].relative_to(self.root).as_posix()!r})" if skipped else ""),
                )
            from latentbridge.outputs import FolderLock

            # one process fetches them: another one's extraction failed on the archive it removed, or replaced the
            # folder a third one was reading (1,555 of 3,000 recordings read, exit 0)
            lock = FolderLock(self.root / "recordings").acquire_waiting("fetches the recordings")
            try:
                rec = self._find_recordings()  # (fetched while this one waited)
                if rec is None:
                    self._download()
                    rec = self._find_recordings()
            finally:
                lock.release()
            if rec is None:  # pragma: no cover - _download checks this
                raise DataError(self.root, "no recordings after download")
        self.recordings_dir = rec

    def _find_recordings(self) -> Path | None:
        """FSDD's flat folder: ``recordings/`` or the root holding recordings named as FSDD's (or, with no class
        folders below, any .wav: :meth:`items` names what is wrong with their names)."""
        cands = [c for c in (self.root / "recordings", self.root) if c.is_dir()]
        for cand in cands:
            if any(_FSDD_NAME.match(p.name) for p in cand.iterdir()):
                return cand
        for cand in cands:
            if any(p.suffix.lower() == ".wav" for p in cand.iterdir()) and not any(
                    p.is_dir() and folder_digit(p.name) is not None for p in cand.iterdir()):
                return cand
        return None

    #: FSDD's speakers (commit 26eb9aa): a flat folder of others' recordings named alike is one's own, not FSDD
    SPEAKERS = frozenset({"george", "jackson", "lucas", "nicolas", "theo", "yweweler"})

    @property
    def name(self) -> str:
        fsdd = self.layout == "fsdd" and set(self.speakers) <= self.SPEAKERS
        return "FSDD" if fsdd else f"spoken digits of {self.root}"

    @property
    def split_rule(self) -> dict[str, str]:
        """How the items were split, for a run's record."""
        rule = (f"the first {FOLDER_TEST_SHARE:.0%} of a speaker's repetitions of a digit (FSDD's official split: "
                f"repetitions 0-{self.TEST_INDICES - 1} of 50)")
        if self.layout != "fsdd":
            rule = (f"train/ and test/ folders where they name it, else {rule}, and a seeded {FOLDER_TEST_SHARE:.0%} "
                    "of a class folder's recordings (by file path)")
        return {"train": "the rest", "test": rule + "; every digit keeps one file on each side"}

    def _say_skipped(self, skipped: list[Path], why: str) -> None:
        from latentbridge.utils import first_time

        if skipped and first_time(("spoken digits skipped", str(self.root.resolve()), len(skipped))):
            warnings.warn(f"{self.recordings_dir if self.layout == 'fsdd' else self.root}: skipped {len(skipped)} "
                          f"file(s) {why} (e.g. {skipped[0].relative_to(self.root).as_posix()!r})", stacklevel=3)

    def _download(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        archive = self.root / Path(self.URL).name
        download(self.URL, archive, sha256=self.ARCHIVE_SHA256,
                 unchecked=None if self.ARCHIVE_SHA256 else "the extracted recordings are checked instead")
        try:
            self._extract(archive)
        except DataError as e:  # (an archive that fails is no FSDD's: kept, it was extracted again on every run)
            if e.path != str(archive):  # the folder's problem (full, read-only): the archive is kept
                raise
            archive.unlink(missing_ok=True)
            raise DataError(archive, f"{e.problem}; the archive was removed: the next run downloads it again") \
                from None
        archive.unlink()

    def _extract(self, archive: Path) -> None:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = []
                for info in zf.infolist():
                    parts = Path(info.filename).parts
                    # <top folder>/recordings/<name>.wav, or recordings/<name>.wav
                    if (
                        not info.is_dir()
                        and len(parts) >= 2
                        and parts[-2] == "recordings"
                        and len(parts) <= 3
                        and parts[-1].lower().endswith(".wav")
                    ):
                        members.append(info)
                if not members:
                    raise DataError(archive, "archive holds no recordings/*.wav")
                dest = self.root / "recordings"
                with atomic_path(dest) as tmp:
                    tmp.mkdir()
                    for info in members:
                        name = Path(info.filename).name  # never a path outside tmp
                        with zf.open(info) as src, open(tmp / name, "wb") as out:
                            shutil.copyfileobj(src, out)
                    if self.RECORDINGS_MD5 is not None:
                        got = _recordings_digest(tmp.glob("*.wav"))
                        if got != self.RECORDINGS_MD5:
                            raise DataError(
                                archive,
                                f"extracted recordings do not match: expected listing md5 "
                                f"{self.RECORDINGS_MD5}, got {got} ({len(members)} files)",
                            )
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise DataError(archive, f"corrupt zip archive ({exc})") from exc
        except OSError as exc:  # the data folder full or read-only (it was named as the run folder's problem)
            raise DataError(self.root, f"cannot extract the recordings there: {exc.strerror or exc}") from exc

    def verify(self) -> None:
        """Check the recordings against ``RECORDINGS_MD5``; DataError when they differ."""
        if self.RECORDINGS_MD5 is None:
            return
        got = _recordings_digest(self.recordings_dir.glob("*.wav"))
        if got != self.RECORDINGS_MD5:
            raise DataError(
                self.recordings_dir,
                f"recordings differ from FSDD commit 26eb9aa: listing md5 {got}, "
                f"expected {self.RECORDINGS_MD5}",
            )

    def items(self) -> list[FSDDItem]:
        """Every recording, sorted by (digit, speaker, index). Files whose names do not parse
        as ``{digit}_{speaker}_{index}.wav`` are skipped (listed in ``self.skipped``) and
        counted in one warning."""
        if self._items is None:
            found, skipped = [], []
            for p in sorted(self.recordings_dir.iterdir()):
                if p.name.startswith(".") or not p.is_file():
                    continue
                m = _FSDD_NAME.match(p.name)
                if m is None:
                    skipped.append(p)
                    continue
                found.append((int(m.group(1)), m.group(2), int(m.group(3)), p))
            self._say_skipped(skipped, "not named {digit}_{speaker}_{index}.wav")
            if not found:
                raise DataError(self.recordings_dir, "no recordings named {digit}_{speaker}_{index}.wav")
            self._items, self.skipped = _split(found, self.recordings_dir), skipped
        return list(self._items)

    def split(self, split: str) -> list[FSDDItem]:
        """Items of the ``"train"`` or ``"test"`` split (FSDD's official: repetitions 5-49 and 0-4; :func:`_split`)."""
        _check_split(split)
        return [it for it in self.items() if it.split == split]

    @property
    def speakers(self) -> list[str]:
        return sorted({it.speaker for it in self.items()})

    def by_digit(self, split: str | None = None) -> dict[int, list[FSDDItem]]:
        """``{digit: items}`` for one split (or all items when ``split`` is None)."""
        items = self.items() if split is None else self.split(split)
        out: dict[int, list[FSDDItem]] = {}
        for it in items:
            out.setdefault(it.digit, []).append(it)
        return dict(sorted(out.items()))

    def __len__(self) -> int:
        return len(self.items())
