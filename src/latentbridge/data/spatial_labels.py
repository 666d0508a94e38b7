"""Channel labels of spatial maps (``NAME.channels.txt``, imzML m/z): which are m/z, and whether sections and a model
agree on them. A map's channels are matched by position; labels that are m/z are the one way to tell a reversed or
foreign order, so every section read for training, evaluation or ``enhance`` is checked here."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from latentbridge.errors import DataError
from latentbridge.utils import listed

__all__ = ["label_mz", "labels_mz", "check_labels", "check_sections"]

#: a label that is an m/z: a number, with "m/z" (or Da, Th) before or after it, a decimal point or comma
_MZ = re.compile(r"\s*(?:m/?z\s*[:=]?\s*)?([-+]?\d+(?:[.,]\d+)?)\s*(?:m/?z|da|th)?\s*", re.IGNORECASE)


def label_mz(label: str) -> float | None:
    """The m/z a channel label gives (``786.601``, ``786.601 m/z``, ``m/z 786,601``), or None for a name."""
    m = _MZ.fullmatch(str(label).lstrip("\ufeff"))
    return float(m.group(1).replace(",", ".")) if m else None


def labels_mz(labels: list[str]) -> list[float] | None:
    """The m/z of every label, or None unless every one is an m/z."""
    values = [label_mz(x) for x in labels]
    return None if not values or any(v is None for v in values) else values


def _listed(values) -> str:
    return listed([f"{v:g}" for v in values], 8)


def check_labels(path, labels: list[str], mz: list[float] | None) -> None:
    """Maps whose channel labels are m/z (``NAME.channels.txt``) must be ``mz``'s, in its order: they were matched by
    position only, and a reversed or foreign list (or one written with units, a byte-order mark or decimal commas,
    which was not read as m/z) ran silently against the wrong channels."""
    from latentbridge.data.spatial import same_mz

    given = labels_mz(labels) if mz and labels else None
    if given is None:
        return  # names, not m/z: nothing to compare
    if len(given) == len(mz) and all(same_mz(a, b) for a, b in zip(given, mz)):
        return
    twice = [a for i, a in enumerate(given) if any(same_mz(a, b) for b in given[:i])]
    missing = [b for b in mz if not any(same_mz(a, b) for a in given)]
    same = len(given) == len(mz) and not twice and not missing  # a permutation (one labelled twice was called one)
    said = "" if same else "".join([f" (m/z {_listed(twice)} labelled twice)" if twice else "",
                                    f" (without m/z {_listed(missing)})" if missing else ""])
    raise DataError(path, f"its channels are labelled m/z {_listed(given)}"
                          + ("; the model reads the same m/z in another order: " if same else "; the model reads m/z ")
                          + _listed(mz) + ("; reorder the maps' channels" if same else said))


def check_sections(sections, mz: list[float] | None, root) -> None:
    """Sections read together (a training folder, ``evaluate --data``): one channel count, one section per name (a
    ``.npy`` and a ``.npz`` of one name were both read, under one name), and channel labels that are m/z in one
    order: ``mz``'s (``data.mz``, the manifest's) when known, else the first labelled section's (sections stored in
    another channel order trained together without a word)."""
    channels = Counter(s.shape[2] for s in sections)
    if len(channels) > 1:
        usual = channels.most_common(1)[0][0]
        odd = [f"{Path(s.source).name} ({s.shape[2]})" for s in sections if s.shape[2] != usual]
        raise DataError(root, f"sections have different channel counts {sorted(channels)}: {', '.join(odd[:5])}"
                              f"{' ...' if len(odd) > 5 else ''} against {usual} in the others")
    names = Counter(s.name for s in sections)
    if twice := [n for n, k in names.items() if k > 1]:
        files = [Path(s.source).name for s in sections if s.name == twice[0]]
        raise DataError(root, f"section {twice[0]!r} is given {len(files)} times ({', '.join(files)}): keep one file "
                              "per section")
    for s in sections:
        if mz is None and labels_mz(s.labels) is not None:
            mz = labels_mz(s.labels)
            continue
        check_labels(Path(s.source), s.labels, mz)
