"""Normal / anomalous labels of recordings: from folder or file names, or from a CSV."""

from __future__ import annotations

import csv
import io as _io
from pathlib import Path

import numpy as np

from latentbridge.errors import DataError

LABEL_NAMES = {"normal": 0, "anomalous": 1, "anomaly": 1, "0": 0, "1": 1, "abnormal": 1}


def label_from_path(path: Path) -> int | None:
    """0 under a folder named ``normal``, 1 under ``anomalous``/``anomaly``/``abnormal`` (the nearest
    such folder wins), else from a ``normal_`` / ``anomalous_`` file-name prefix; None otherwise."""
    for part in reversed(path.parts[:-1]):
        if part.lower() in ("normal",):
            return 0
        if part.lower() in ("anomalous", "anomaly", "abnormal"):
            return 1
    name = path.name.lower()
    if name.startswith("normal_"):
        return 0
    if name.startswith(("anomalous_", "anomaly_", "abnormal_")):
        return 1
    return None


def read_label_csv(path: str | Path) -> dict[str, int]:
    """``path,label`` rows (label normal/anomalous/0/1; paths relative to the CSV's folder)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "label file does not exist" if not path.exists() else "label file is not a file")
    try:
        rows = list(csv.DictReader(_io.StringIO(path.read_text(encoding="utf-8"))))
    except UnicodeDecodeError:
        raise DataError(path, "label file is not UTF-8 text") from None
    if not rows or not {"path", "label"} <= set(rows[0].keys()):
        raise DataError(path, "label CSV needs the columns 'path,label'")
    out: dict[str, int] = {}
    for n, r in enumerate(rows, start=2):
        lab = str(r["label"]).strip().lower()
        if lab not in LABEL_NAMES:
            raise DataError(path, f"line {n}: label {r['label']!r} is not one of normal/anomalous/0/1")
        p = Path(str(r["path"]).strip())
        if not p.is_absolute():
            p = path.parent / p
        out[str(p.resolve())] = LABEL_NAMES[lab]
        out.setdefault("name:" + p.name, LABEL_NAMES[lab])
    return out


def resolve_labels(files: list[Path], labels: str | None) -> np.ndarray | None:
    """One label per file: ``labels="auto"`` from the paths, or from a label CSV; None without labels.
    Every unlabelled file is listed in one error."""
    if labels is None:
        return None
    out, missing = [], []
    table = None if labels == "auto" else read_label_csv(labels)
    for f in files:
        lab = label_from_path(f) if table is None else table.get(str(f.resolve()), table.get("name:" + f.name))
        if lab is None:
            missing.append(f)
        out.append(lab)
    if missing:
        where = "no path component named 'normal' or 'anomalous'" if table is None else f"not listed in {labels}"
        raise DataError(missing[0], f"no label ({where})" + (
            f"; {len(missing) - 1} more file(s) without a label: " + ", ".join(map(str, missing[1:6]))
            if len(missing) > 1 else ""))
    return np.asarray(out, dtype=int)
