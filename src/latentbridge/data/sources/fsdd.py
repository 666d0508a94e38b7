"""Free Spoken Digit Dataset (FSDD): a local ``recordings/*.wav`` folder, or the GitHub archive of
commit ``26eb9aa`` downloaded and checked against the md5 listing of its recordings."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import warnings
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from latentbridge.data.sources.common import _check_split
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
    """One FSDD recording: ``{digit}_{speaker}_{index}.wav``."""

    path: Path
    digit: int
    speaker: str
    index: int

    @property
    def split(self) -> str:
        """Official split: repetitions 0-4 are test, 5-49 train."""
        return "test" if self.index < FSDD.TEST_INDICES else "train"


_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z][A-Za-z0-9-]*)_(\d+)\.(?i:wav)$")  # (.WAV too: a recorder's case)


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
        rec = self._find_recordings()
        if rec is None:
            if not download:
                raise DataError(
                    self.root,
                    f"no FSDD recordings found (expected recordings/*.wav): point {setting} at a folder holding "
                    "recordings/*.wav" + (f" ({fetch} fetches them)" if fetch else ""),
                )
            self._download()
            rec = self._find_recordings()
            if rec is None:  # pragma: no cover - _download checks this
                raise DataError(self.root, "no recordings after download")
        self.recordings_dir = rec

    def _find_recordings(self) -> Path | None:
        for cand in (self.root / "recordings", self.root):
            if cand.is_dir() and any(p.suffix.lower() == ".wav" for p in cand.iterdir()):
                return cand
        return None

    def _download(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        archive = self.root / Path(self.URL).name
        if self.ARCHIVE_SHA256 is None:
            log.warning("FSDD archive checksum not pinned yet; verifying the extracted recordings instead")
        download(self.URL, archive, sha256=self.ARCHIVE_SHA256)
        self._extract(archive)
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
            items, skipped = [], []
            for p in sorted(self.recordings_dir.iterdir()):
                if p.name.startswith(".") or not p.is_file():
                    continue
                m = _FSDD_NAME.match(p.name)
                if m is None:
                    skipped.append(p)
                    continue
                items.append(FSDDItem(p, int(m.group(1)), m.group(2), int(m.group(3))))
            if skipped:
                warnings.warn(
                    f"{self.recordings_dir}: skipped {len(skipped)} file(s) not named "
                    f"{{digit}}_{{speaker}}_{{index}}.wav (e.g. {skipped[0].name!r})",
                    stacklevel=2,
                )
            if not items:
                raise DataError(self.recordings_dir, "no recordings named {digit}_{speaker}_{index}.wav")
            items.sort(key=lambda it: (it.digit, it.speaker, it.index))
            self._items, self.skipped = items, skipped
        return list(self._items)

    def split(self, split: str) -> list[FSDDItem]:
        """Items of the official ``"train"`` (index 5-49) or ``"test"`` (index 0-4) split."""
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
