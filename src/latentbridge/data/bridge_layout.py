"""Bridge data folders: which recordings and which crack mask make each test (damage state), and the masks read
(:func:`read_masks`).

Layout (``root``)::

    ROOT/Data/Test_XX/*.csv     accelerometer recordings (see latentbridge.io.vibration; MATLAB .mat
                                files too, latentbridge.io.matfile; audio files: .wav, .flac, ...,
                                latentbridge.io.read_audio, each channel a sensor)
    ROOT/Labels/Test_XX/*.png   one crack mask per test (any size, any PNG colour type), or
    ROOT/Labels/Test_XX.png     the same mask named after its test

Pairing rules (:func:`discover`)
--------------------------------
* A *test* is a sub-folder of ``Data/`` holding at least one recording (``.csv``, ``.mat`` or audio); its name is
  the test id. ``Data`` and ``Labels`` are found case-insensitively; hidden files and folders
  (name starting with ".") are ignored. Tests are ordered naturally (``Test_2`` before
  ``Test_10``). Recordings in sub-folders of a test folder are not read (a warning names them).
* A test is paired with ``Labels/<same folder name>/`` or ``Labels/<same name>.png`` only — exact name, never a
  guess. A label name that differs from a data folder's only in case or in its numbers' leading zeros
  (``Test_1`` / ``Test_01``) is *not* paired (the warning says which data folder it resembles).
* A test folder or a recording reached again through a link (``Data/Test_13 -> Test_01``) is read once, under
  its first name, named in a warning: one damage state under two names sat in training and in the held-out states.
  Links to nothing are named in a warning; an unzipped archive's ``__MACOSX`` folder is not a test.
* Data but no mask (no label folder, or one without a PNG, or no ``Labels/`` at all): the test
  is kept as *unlabeled* (``has_mask`` False, extent NaN, mask zeros); one warning lists them.
* Mask but no data (a label with no matching test): one warning lists them; it is never paired with another
  test. Masks in ``Labels/`` that pair with no test at all, leaving every test unlabelled: DataError.
* Several PNGs for one test (in its label folder, or a folder and a file): DataError naming them.
* A mask in another image format (``Labels/Test_XX/mask.jpg``, ``Labels/Test_XX.jpg`` or ``.tif``): DataError
  naming it (a set labelled so trained as unlabelled).
* Data folders without recordings: one warning naming them and what they hold; they are skipped.
* ``root`` missing, no ``Data/`` folder, or no test at all: DataError naming ``root``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError
from latentbridge.io.images import IMAGE_EXTENSIONS
from latentbridge.io.masks import picture_text, read_mask_png
from latentbridge.io.audio import RECORDING_EXTENSIONS
from latentbridge.utils import first_time, is_hidden, listed, natural_key, seen_before

log = logging.getLogger("latentbridge.data.bridge")

#: the recordings a test folder's files are read as, in words
READ_HERE = "CSV, MATLAB .mat or audio files: .wav, .flac, .mp3, ..."

__all__ = ["TestRecord", "discover"]


@dataclass
class TestRecord:
    """One test (damage state): its recordings and its crack mask (None when unlabeled)."""

    __test__ = False  # not a pytest test class

    test_id: str
    csv_files: list[Path]  # the test's recordings: CSV and .mat files
    mask_file: Path | None = None

    @property
    def has_mask(self) -> bool:
        return self.mask_file is not None


def _child_dir(root: Path, name: str) -> Path | None:
    exact = root / name
    if exact.is_dir():
        return exact
    for p in sorted(root.iterdir()):
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def _visible(folder: Path):
    """A folder's entries in natural order, hidden ones (``.DS_Store``, macOS's ``._x.csv``) and the ``__MACOSX``
    folder of an unzipped archive left out."""
    return sorted((p for p in folder.iterdir() if not is_hidden(p, folder)), key=lambda p: natural_key(p.name))


def _warn_once(msg: str, *args) -> None:
    """A warning about the data folder, once per process (:func:`latentbridge.utils.first_time`): a run reads
    its folder several times, and once printed the same warning three times."""
    text = msg % args if args else msg
    if first_time(("bridge data", text)):
        log.warning(text)


def _not_png(where: Path, found: list[str]) -> DataError:
    """A mask saved in another image format (JPEG, TIFF): refused by name, as a set labelled so trained as unlabelled."""
    return DataError(where, f"the crack mask must be a PNG (lossless), found {', '.join(found[:3])}: convert it (e.g. "
                            "with PIL: Image.open(f).save(f.with_suffix('.png')))")


def _number_key(name: str) -> str:
    """A folder name with the leading zeros of its numbers dropped, lower case, its separators one: ``Test_01``,
    ``test_1`` and ``test-01`` alike."""
    return re.sub(r"[\s_.-]+", "_", re.sub(r"\d+", lambda m: str(int(m.group())), name).lower())


def discover(root: str | Path) -> list[TestRecord]:
    """Pair ``Data/Test_XX`` with ``Labels/Test_XX`` by folder name (rules in the module docstring)."""
    root = Path(root)
    layout = "expected ROOT/Data/Test_XX/*.csv (or .mat, .wav, ...) and ROOT/Labels/Test_XX/*.png"
    if not root.exists():
        raise DataError(root, f"data root does not exist ({layout})")
    if not root.is_dir():
        raise DataError(root, f"data root is not a folder ({layout})")
    data_dir = _child_dir(root, "Data")
    if data_dir is None:
        raise DataError(root, f"no Data/ folder in the data root ({layout})")

    tests: dict[str, list[Path]] = {}
    skipped: set[str] = set()
    aliases: set[str] = set()  # test folders that are links to another test folder: read once
    loose = 0
    empty: list[str] = []  # test folders without recordings, with what they hold
    twice: list[str] = []
    broken: list[str] = []
    entries = _visible(data_dir)
    # a folder or a recording reached twice through links is read once, under its own name (a link named first took
    # over the real folder, and its mask was dropped); a held-out state linked in under another name was trained on
    real_tests: dict[Path, str] = {}
    for d in sorted((d for d in entries if d.is_dir()), key=lambda d: d.is_symlink()):
        if (real := d.resolve()) in real_tests:
            twice.append(f"{d.name} (the folder {real_tests[real]})")
            aliases.add(d.name)
        else:
            real_tests[real] = d.name
    owners: dict = {}
    claimed: set[Path] = set()
    for q in sorted((q for d in entries if d.is_dir() and d.name not in aliases for q in _visible(d)
                     if q.is_file() and q.suffix.lower() in RECORDING_EXTENSIONS), key=lambda q: q.is_symlink()):
        if (first := seen_before(q, owners)) is not None:  # one recording, under two tests' names or twice in one
            twice.append(f"{q.parent.name}/{q.name} ({first.parent.name}/{first.name})")  # (hard links too)
        else:
            claimed.add(q)
    for d in entries:
        if d.is_file():
            loose += d.suffix.lower() in RECORDING_EXTENSIONS
            continue
        if not d.is_dir():
            if d.is_symlink():
                broken.append(d.name)
            continue
        if d.name in aliases:
            continue
        inside = _visible(d)
        broken += [f"{d.name}/{p.name}" for p in inside if p.is_symlink() and not p.exists()
                   and p.suffix.lower() in RECORDING_EXTENSIONS]
        csvs = [p for p in inside if p in claimed]
        deeper = [q.name for q in inside if q.is_dir() and any(x.suffix.lower() in RECORDING_EXTENSIONS
                                                                for x in q.rglob("*")
                                                                if x.is_file() and not is_hidden(x, q))]
        if deeper:  # a session or day folder inside a test: its recordings were left out without a word
            _warn_once("%s: recordings in its sub-folder(s) %s are not read: a test's recordings lie directly in its "
                       "folder (a test per folder of Data/)", d, listed(deeper, 5, count=True))
        if not csvs:
            held = [q.name for q in inside if q.is_file()]
            empty.append(f"{d.name} ({'it holds ' + listed(held, 2, count=True) if held else 'empty'})")
            skipped.add(d.name)
            continue
        tests[d.name] = csvs
    if empty:  # one line for them all (a folder of 200 tests of other files gave 200 lines)
        _warn_once("%s: %d folder(s) without recordings (%s) skipped: %s", data_dir, len(empty), READ_HERE,
                   listed(empty, 3, count=True))
    if not tests:
        hint = (f"; {loose} recording{'s lie' if loose != 1 else ' lies'} directly in {data_dir.name}/: put each "
                f"test's recordings in its own folder" if loose else "")
        raise DataError(root, f"no tests: {data_dir.name}/ holds no sub-folder with recordings ({READ_HERE}; "
                              f"{layout}){hint}")
    if loose:
        _warn_once("%s: %d recording(s) directly in this folder belong to no test; ignored", data_dir, loose)
    if twice:
        _warn_once("%s: %d test folder(s) or recording(s) reached again through links, read once (a damage state "
                   "under two names would sit in training and in the held-out states): %s", data_dir, len(twice),
                   listed(twice, 5, count=True))
    if broken:
        _warn_once("%s: %d link(s) to nothing left out (%s)", data_dir, len(broken), listed(broken, 5, count=True))

    masks: dict[str, Path] = {}
    labels_dir = _child_dir(root, "Labels")
    unmatched: list[str] = []  # labels of no test, with what they resemble
    if labels_dir is None:
        _warn_once("%s: no Labels/ folder; every test is unlabeled", root)
    else:
        alike = {_number_key(t): t for t in tests}

        def no_test(label: Path, name: str) -> None:
            if name in aliases:  # the label of a test folder read under its own name (said above)
                return
            near = alike.get(_number_key(name))
            unmatched.append(label.name + (f" (resembles {near}: names must match exactly)" if near else
                                           " (its data folder holds no recordings read here)" if name in skipped
                                           else ""))

        for d in _visible(labels_dir):
            if d.is_file():
                if d.suffix.lower() != ".png":
                    if d.stem in tests and d.suffix.lower() in IMAGE_EXTENSIONS:  # Labels/Test_XX.jpg: skipped
                        raise _not_png(d, [d.name])
                    continue
                if d.stem not in tests:
                    no_test(d, d.stem)
                elif d.stem in masks:
                    raise DataError(d, f"a second mask for {d.stem}, beside {masks[d.stem]}: one mask per test")
                else:
                    masks[d.stem] = d  # Labels/Test_XX.png: the mask named after its test
                continue
            if not d.is_dir():
                continue
            if d.name not in tests:
                no_test(d, d.name)
                continue
            pngs = [p for p in _visible(d) if p.is_file() and p.suffix.lower() == ".png"]
            if len(pngs) > 1 or pngs and d.name in masks:
                names = [p.name for p in pngs] + ([str(masks[d.name])] if d.name in masks else [])
                raise DataError(d, f"{len(names)} PNG masks for one test ({listed(names, 6, count=True)}); expected "
                                   "one mask per test")
            if not pngs:
                others = [p.name for p in _visible(d) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
                if others:  # a set labelled in JPEG would silently train as unlabelled
                    raise _not_png(d, others)
                _warn_once("%s: label folder holds no PNG mask", d)
                continue
            masks[d.name] = pngs[0]
        if unmatched and not masks:  # every test unlabelled for a naming slip: a crack model trained on no mask
            raise DataError(labels_dir, f"none of its {len(unmatched)} masks pairs with a test of {data_dir.name}/: "
                                        f"{listed(unmatched, 3, count=True)}; expected {labels_dir.name}/Test_XX/*.png "
                                        f"or {labels_dir.name}/Test_XX.png named exactly as {data_dir.name}/Test_XX")
        if unmatched:
            _warn_once("%s: %d label(s) of no test, ignored: %s", labels_dir, len(unmatched),
                       listed(unmatched, 5, count=True))

    records = [TestRecord(t, tests[t], masks.get(t)) for t in sorted(tests, key=natural_key)]
    bare = [r.test_id for r in records if not r.has_mask]
    if bare and labels_dir is not None:
        _warn_once("%s: %d of %d tests have no mask (no %s/TEST/*.png): kept as unlabeled: %s", root, len(bare),
                   len(records), labels_dir.name, listed(bare, 5, count=True))
    return records


def recording_names(root: Path, paths) -> list[str]:
    """Recordings of a bridge folder ``root`` named with their test (``Test_07/rec_01.csv``): relative to its
    ``Data/`` folder, whatever its case (discover's rule); a path elsewhere by its name."""
    data_dir = _child_dir(root, "Data")
    return [p.relative_to(data_dir).as_posix() if data_dir is not None and p.is_relative_to(data_dir) else p.name
            for p in paths]


def read_masks(root: Path, records: list[TestRecord], vib) -> tuple[np.ndarray, np.ndarray]:
    """Every test's mask ``(n_tests, 1, H, W)`` and whether it has one; masks that look inverted or all empty named."""
    H, W = vib.mask_height, vib.mask_width
    test_masks = np.zeros((len(records), 1, H, W), dtype=np.float32)
    test_has = np.zeros(len(records), dtype=bool)
    vanished: list[Path] = []
    pictures: list[tuple] = []
    for ti, r in enumerate(records):
        if r.mask_file is not None:
            test_masks[ti, 0] = read_mask_png(r.mask_file, H, W, threshold=vib.mask_threshold,
                                               coverage=vib.mask_coverage, vanished=vanished, pictures=pictures)
            test_has[ti] = True
    if pictures:  # one warning for the folder, said by the first
        path, mid, crack = pictures[0]
        _warn_once("%s: %d mask(s) are pictures rather than masks (%s, the first: %s): %s", root, len(pictures),
                   listed([p.relative_to(root).as_posix() for p, _, _ in pictures], 3, count=True),
                   path.relative_to(root).as_posix(), picture_text(mid, crack, vib.mask_threshold))
    if vanished:  # one warning for the folder (it was one a mask: 32 lines)
        _warn_once("%s: the crack of %d mask(s) vanishes when shrunk to the model's %dx%d at vibration.mask_coverage "
                   "= %g (a crack thinner than that share of an output pixel): lower vibration.mask_coverage to keep "
                   "thin cracks: %s", root, len(vanished), W, H, vib.mask_coverage,
                   listed([p.relative_to(root).as_posix() for p in vanished], 3, count=True))
    if test_has.any() and (share := float(test_masks[test_has].mean())) > 0.5:
        _warn_once("%s: the masks are %.0f%% crack on average: inverted (crack drawn dark on white)? A crack is "
                   "what is brighter than vibration.mask_threshold", root, 100 * share)
    elif odd := [r.test_id for r, m, has in zip(records, test_masks, test_has) if has and m.mean() > 0.5]:
        _warn_once("%s: %d mask(s) more than half crack, as if drawn dark on white (the others are not): %s; a crack "
                   "is what is brighter than vibration.mask_threshold", root, len(odd), listed(odd, 5, count=True))
    if test_has.sum() >= 2 and not test_masks[test_has].any():
        _warn_once("%s: all %d crack masks are empty: a model learns to draw no crack, and the IoU of empty masks "
                   "says nothing. %s", root, int(test_has.sum()),
                   f"The cracks of {len(vanished)} vanish at vibration.mask_coverage = {vib.mask_coverage:g} (above)"
                   if vanished else "Are the cracks drawn in a way not read as crack (a crack is what is brighter "
                   f"than vibration.mask_threshold = {vib.mask_threshold:g}, or a transparent layer's drawn pixels)?")
    return test_masks, test_has


def mask_labels_size(root) -> list[int] | None:
    """``[height, width]`` of most of a bridge folder's crack masks (:func:`latentbridge.io.masks.labels_size`): a
    run keeps it, and writes its predicted masks at that size too."""
    from latentbridge.io.masks import labels_size

    return labels_size(r.mask_file for r in discover(Path(root).resolve()) if r.mask_file is not None)


def labels_at_full_size(root, test_ids, threshold: float):
    """The crack mask of each of ``test_ids`` (one per window), read at its own size, binarised at ``threshold`` and not
    shrunk (:func:`latentbridge.io.masks.read_mask_full`), as an iterator: a state's mask is read once for a run of its
    windows and let go after it (camera-sized drawings of 75 states took gigabytes held at once); None when a test has
    no mask file in ``root`` (its masks came from elsewhere)."""
    from latentbridge.io.masks import read_mask_full

    files = {r.test_id: r.mask_file for r in discover(Path(root).resolve()) if r.mask_file is not None}
    if not set(test_ids) <= set(files):
        return None

    def masks():
        last, mask = None, None
        for t in test_ids:
            if t != last:
                last, mask = t, read_mask_full(files[t], threshold)
            yield mask

    return masks()
