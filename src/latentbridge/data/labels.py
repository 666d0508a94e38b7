"""Normal / anomalous labels of recordings: from folder or file names, or from a CSV."""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError
from latentbridge.io.text import csv_records, decode_text
from latentbridge.utils import first_time

log = logging.getLogger(__name__)

LABEL_NAMES = {"normal": 0, "anomalous": 1, "anomaly": 1, "0": 0, "1": 1, "abnormal": 1}


def label_from_path(path: Path, root: Path | None = None) -> int | None:
    """0 under a folder named ``normal``, 1 under ``anomalous``/``anomaly``/``abnormal`` (the nearest
    such folder wins), else from the words of the file's name (:func:`name_label`: ``normal_01.wav``, DCASE's
    ``section_00_target_test_anomaly_0003.wav``); None otherwise. With ``root``, the
    folder the file was found in as the user gave it (a file given by itself: its own folder), only that folder and
    those below it count: the folders above are not the data's (a project folder named ``anomaly`` labelled every file
    under it, the AUC moved with the folder the command ran in)."""
    parts = path.parts[:-1]
    if root is not None and path.parts[:len(Path(root).parts)] == Path(root).parts:
        name = Path(root).name  # as typed (a link's own name, not its target's); '.' and '..' by the folder they are
        parts = (name if name not in ("", ".", "..") else Path(root).resolve().name,) + parts[len(Path(root).parts):]
    for part in reversed(parts):
        if part.lower() in ("normal",):
            return 0
        if part.lower() in ("anomalous", "anomaly", "abnormal"):
            return 1
    return name_label(path.name)


#: the words of a file name that label it: its first word (``normal_01.wav``, ``anomaly_id_00_00000003.wav``; not
#: ``anomaly_free_08.wav`` nor ``anomaly_detection_rig_01.wav``), or one followed by a number (DCASE 2021-2025:
#: ``section_00_source_test_anomaly_0001_vel_6_loc_A.wav``) unless the word before it negates it (``not_normal_01``);
#: ``pump_anomaly_detection_3.wav`` is no label
_NAME_WORDS = {"normal": 0, "anomalous": 1, "anomaly": 1, "abnormal": 1}
_NEGATIONS = {"not", "no", "non", "without", "pre"}
#: second words after which a first word names no label: ``anomaly_free_08.wav``, ``anomaly_detection_rig_01.wav``
_NOT_LABELS = {"free", "detection", "detector", "detect"}


def name_words(name: str) -> list[str]:
    """The lower-case words of a file's name (its stem split at ``_``, ``-``, spaces and dots)."""
    return [w for w in re.split(r"[_\-\s.]+", Path(name).stem.lower()) if w]


def name_label(name: str) -> int | None:
    """0 / 1 from a file's name: a first word ``normal`` / ``anomaly`` / ``anomalous`` / ``abnormal`` followed by
    ``_`` (not ``anomaly_free``, ``anomaly_detection``), or such a word followed by a number and not negated by the
    word before it; None for none, or both."""
    lower, words = Path(name).name.lower(), name_words(name)
    found = {v for w, v in _NAME_WORDS.items() if lower.startswith(w + "_") and not set(words[1:2]) & _NOT_LABELS}
    found |= {_NAME_WORDS[w] for k, w in enumerate(words[:-1]) if w in _NAME_WORDS and words[k + 1].isdigit()
              and not (k and words[k - 1] in _NEGATIONS)}
    return found.pop() if len(found) == 1 else None


def _roots(files: list[Path], given) -> list[Path]:
    """For each file, the deepest folder of ``given`` (the paths the user gave: one or a list) that holds it; a file
    given by itself (a shell's glob), its own folder."""
    given = given if isinstance(given, (list, tuple)) else [given]
    folders = sorted((Path(g) for g in given if Path(g).is_dir()), key=lambda g: -len(g.parts))
    return [next((g for g in folders if f.parts[:len(g.parts)] == g.parts), f.parent) for f in files]


def refuse_anomalous(files: list[Path], given, what: str = "training") -> None:
    """DataError naming the recordings of ``files`` that their folders or names below ``given`` (the paths the user
    gave) mark as anomalous (:func:`label_from_path`): a machine's folder given instead of its ``normal`` folder was
    fitted on its ``abnormal`` recordings without a word (AUC 0.73 against 1.0, no fault of four found)."""
    roots = _roots(files, given)
    marked = [(f, root) for f, root in zip(files, roots) if label_from_path(f, root) == 1]
    if marked:
        shown = ", ".join(str(f) for f, _ in marked[:3]) + (f" and {len(marked) - 3} more" if len(marked) > 3 else "")
        where = sorted({str(r) for _, r in marked})
        raise DataError(", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else ""),
                        f"{len(marked)} of the {len(files)} recordings are marked anomalous by their folder or name "
                        f"({shown}): {what} reads normal recordings only; give the folder of the normal ones (e.g. its "
                        "normal/ folder)")


#: words of a recording's name that say it may not be normal, where they label nothing (``run12-anomaly.wav``)
_SUSPECT_WORDS = {"anomaly", "anomalous", "abnormal", "fault", "faulty", "defect", "defective", "broken"}


def warn_suspect_names(files: list[Path], what: str = "training") -> None:
    """A warning naming the recordings, among others, whose names say anomaly or fault where no label rule reads them
    (``run12-anomaly.wav``, ``motorA_bearing_fault_01.wav``: fitted on without a word; the word last or followed by a
    number: not ``fault_current_sensor_01.wav``); none when every name says so (a project's name)."""
    def says(words: list[str]) -> bool:  # the word last, or followed by a number, and not negated
        return any(w in _SUSPECT_WORDS and not (k and words[k - 1] in _NEGATIONS)
                   and (k == len(words) - 1 or words[k + 1].isdigit()) for k, w in enumerate(words))

    said = [f for f in files if says(name_words(f.name))]
    if said and len(said) < len(files) and first_time(("suspect names", what, tuple(said))):
        log.warning("%d of the %d %s recordings have names that say anomaly or fault (%s): %s reads normal recordings "
                    "only; leave them out if they are", len(said), len(files), what,
                    ", ".join(map(str, said[:3])) + (f" and {len(said) - 3} more" if len(said) > 3 else ""), what)


def list_normal_files(paths, what: str = "training") -> list[Path]:
    """:func:`~latentbridge.data.audio.list_files` of recordings meant to be normal (``fit``, ``calibrate``): refused
    when their folders or names mark some anomalous (:func:`refuse_anomalous`), named when their names say so where no
    rule labels them (:func:`warn_suspect_names`)."""
    from latentbridge.data.audio import list_files

    files = list_files(paths)
    refuse_anomalous(files, paths, what)
    warn_suspect_names(files, what)
    return files


def dcase_machine(path: Path) -> str:
    """The machine type of a recording in DCASE's layout: the folder above its ``train`` / ``test`` (or ``eval``)
    folder, else its own folder."""
    path = Path(path)
    return path.parent.parent.name if path.parent.name.lower() in _SPLIT_FOLDERS else path.parent.name


#: the folders of a machine's training recordings, and of all its recordings, in DCASE's layouts (2021: source_test)
_TRAIN_FOLDERS = ("train", "source_train", "target_train")
_SPLIT_FOLDERS = _TRAIN_FOLDERS + ("test", "eval", "eval_test", "supplemental", "source_test", "target_test")


def dcase_training(path: Path) -> bool:
    """Whether a recording is one of DCASE's training recordings: in a ``train`` folder, or named so
    (``section_00_source_train_normal_0001.wav``)."""
    return "train" in name_words(Path(path).name) or Path(path).parent.name.lower() in _TRAIN_FOLDERS


def dcase_names(files: list[Path]) -> tuple[list[str | None], list[str | None]]:
    """``(groups, domains)``: the group each recording's name gives as DCASE's do, its machine ID (``id_00`` in
    ``normal_id_00_00000000.wav``, DCASE 2020) or section (``section_00``, 2021-2025), and its domain (``source`` /
    ``target``); None where a name gives none (or two), or for a training recording (in a ``train`` folder, or
    ``section_00_source_train_normal_0001.wav``: the challenge scores its test recordings)."""
    groups, domains = [], []
    for f in files:
        words = name_words(Path(f).name)
        pairs = [f"{a}_{b}" for a, b in zip(words, words[1:]) if a in ("id", "section") and b.isdigit()]
        groups.append(pairs[0] if len(pairs) == 1 and not dcase_training(f) else None)
        found = {w for w in words if w in ("source", "target")}
        domains.append(found.pop() if len(found) == 1 else None)
    return groups, domains


def dcase_groups(files: list[Path]) -> tuple[list[str | None] | None, list[str | None] | None]:
    """:func:`dcase_names` where they break the files down: ``(None, None)`` unless the names give a group and at
    least two of them or a domain (domains None where no name gives one). Groups of several machine types
    (:func:`dcase_machine`: ``fan/test/section_00_...``, ``pump/test/section_00_...``) are named with their machine,
    ``fan_section_00``."""
    groups, domains = dcase_names(files)
    named = {g for g in groups if g is not None}
    machines = {dcase_machine(f) for f, g in zip(files, groups) if g is not None}
    has_domains = any(d is not None for d in domains)
    if not named or not (has_domains or len(named) >= 2 or len(machines) >= 2):
        return None, None
    if len(machines) >= 2:
        groups = [None if g is None else f"{dcase_machine(f)}_{g}" for f, g in zip(files, groups)]
    return groups, domains if has_domains else None


AMBIGUOUS = -1  # a file name listed with both labels


def _key(text: str) -> str:
    """A path or name as the label table keys it: Unicode composed (NFC), so that ``café.wav`` written by a
    macOS file system (decomposed) matches the same name typed in a CSV (composed)."""
    return unicodedata.normalize("NFC", text)


def read_label_csv(path: str | Path) -> dict[str, int]:
    """``path,label`` rows, under that header or none (label normal/anomalous/0/1; paths absolute, or relative to the
    CSV's folder or, for a file found only there, to the working folder; a row whose path matches no file labels the
    files of its name when no other row of that name gives the other label). Column names in any case; comma,
    semicolon or tab between them (or Excel's ``sep=X`` line); quoted fields may hold the separator or line breaks;
    UTF-8, UTF-16 or Windows-1252 text."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "label file does not exist" if not path.exists() else "label file is not a file")
    records, _ = csv_records(decode_text(path.read_bytes(), path, "a label CSV (columns path,label)", legacy="all"),
                             {"path", "label"}, headless=lambda c: len(c) == 2 and c[1] in LABEL_NAMES)
    names = [h.strip().lower() for h in (records[0][1] if records else [])]
    headless = len(names) == 2 and names[1] in LABEL_NAMES and "path" not in names  # DCASE's ground truth: name,0|1
    if not ({"path", "label"} <= set(names) or headless):
        raise DataError(path, "label CSV needs the columns 'path,label' (or no header and those two columns)")
    if headless:
        names = ["path", "label"]
    rows = [(n, dict(zip(names, r))) for n, r in records[0 if headless else 1:] if any(c.strip() for c in r)]
    out: dict[str, int] = {}
    by_name: dict[str, set[int]] = {}
    here = []
    for n, r in rows:
        lab = str(r.get("label", "")).strip().lower()
        if lab not in LABEL_NAMES:
            raise DataError(path, f"line {n}: label {r.get('label', '')!r} is not one of normal/anomalous/0/1")
        text = str(r.get("path", "")).strip()
        # a Windows spreadsheet's base\test\n_00.wav: its separators (every such file was 'not listed')
        p = Path(text.replace("\\", "/") if "\\" in text and "/" not in text else text)
        # relative to the CSV's folder first, for every row (a row read from the working folder took another row's
        # file first: files labelled the other way, a wrong AUC)
        out.setdefault(_key(str((full := p if p.is_absolute() else path.parent / p).resolve())), LABEL_NAMES[lab])
        if not p.is_absolute():
            here.append((p, LABEL_NAMES[lab]))
        # a path naming a file that exists labels that file only: its bare name gave a file of that name in another
        # folder, left out of the CSV, its label without a word (an anomalous y/clip.wav counted as x/clip.wav, normal);
        # a bare name labels every file of that name
        if len(p.parts) == 1 or not (full.exists() or (not p.is_absolute() and (Path.cwd() / p).exists())):
            by_name.setdefault(_key(p.name), set()).add(LABEL_NAMES[lab])
    for p, lab in here:  # then relative to the folder the command runs in (as a user writes paths he types)
        out.setdefault(_key(str((Path.cwd() / p).resolve())), lab)
    for name, labs in by_name.items():  # a bare file name stands for its rows only when they agree
        out["name:" + name] = labs.pop() if len(labs) == 1 else AMBIGUOUS
    return out


def resolve_labels(files: list[Path], labels: str | None, given=()) -> np.ndarray | None:
    """One label per file: ``labels="auto"`` from the paths (below the folder of ``given``, the paths the user gave,
    that holds each file: :func:`label_from_path`), or from a label CSV; None without labels. Every unlabelled file
    is listed in one error."""
    if labels is None:
        return None
    out, missing, by_name = [], [], {}
    table = None if labels == "auto" else read_label_csv(labels)
    for f, root in zip(files, _roots(files, given)):
        lab = label_from_path(f, root) if table is None else table.get(_key(str(f.resolve())))
        if lab is None and table is not None and (lab := table.get("name:" + _key(f.name))) is not None:
            by_name.setdefault(f.name, set()).add(f.parent)
        if lab == AMBIGUOUS:  # the first label listed for the name was taken: wrong labels, wrong AUC, no word
            raise DataError(f, f"matches no path listed in {labels}, and its name {f.name} is listed there as normal "
                               "and as anomalous: list paths relative to the CSV's folder, or absolute ones")
        if lab is None:
            missing.append(f)
        out.append(lab)
    if (twice := {n: d for n, d in by_name.items() if len(d) > 1}) and first_time(("bare names", labels, len(twice))):
        name, folders = next(iter(twice.items()))  # a machine's ground truth, names only, labelled another machine's
        log.warning("%d file names listed bare in %s label files in several folders (%s: %s): a bare name labels "
                    "every file of that name; list their paths to label one folder's", len(twice), labels, name,
                    ", ".join(sorted(map(str, folders))[:3]))
    if missing:
        where = ("no folder named normal or anomalous / anomaly / abnormal holds it, and its name neither starts with "
                 "such a word and '_' nor has one followed by a number: normal_01.wav, section_00_source_test_anomaly_"
                 "0001.wav; list such files in a label CSV" if table is None else f"not listed in {labels}")
        raise DataError(missing[0], f"no label ({where})" + (
            f"; {len(missing) - 1} more file(s) without a label: " + ", ".join(map(str, missing[1:6]))
            if len(missing) > 1 else ""))
    return np.asarray(out, dtype=int)
