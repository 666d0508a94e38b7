"""Single-file HTML reports: headings, escaped text, tables, images embedded as data URIs and audio players.

The file is written atomically (a reader never sees a half-written report).
"""

from __future__ import annotations

import base64
import html
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latentbridge.errors import DataError
from latentbridge.utils import atomic_write_text

__all__ = ["write_html_report"]

_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
}

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: .8em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #666; }
figure audio { width: 100%; max-width: 420px; display: block; }
"""

_AUDIO_MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}
#: sounds up to this size are embedded (the report moves alone); larger ones are linked by their path from the report
_EMBED_AUDIO_BYTES = 512 * 1024


def _fmt(v: Any) -> tuple[str, bool]:
    """Escaped cell text and whether it is numeric; ``n/a`` for None and NaN (a value not defined here: no damaged
    state to localise, a metric without its data), a list as its items, a dict as ``key: value`` pairs (each as a cell
    writes it: numbers to 4 significant digits; they were Python's repr of the dict, every digit of a float), ``none``
    for an empty one (a blank cell), a list of pairs or records (skipped files and why) one a line (they ran together,
    path, reason, path, reason), yes / no for a truth value."""
    if v is None:
        return "n/a", False
    if isinstance(v, (Mapping, list, tuple)) and not len(v):
        return "none", False
    if isinstance(v, Mapping):
        return "; ".join(f"{html.escape(str(k))}: {_fmt(x)[0]}" for k, x in v.items()), False
    if isinstance(v, (list, tuple)):
        if all(isinstance(x, (list, tuple, Mapping)) and len(x) for x in v):
            return "<br>".join(_fmt(x)[0] if isinstance(x, Mapping) else " — ".join(_fmt(y)[0] for y in x)
                               for x in v), False
        return ", ".join(_fmt(x)[0] for x in v), False
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no", False
    if isinstance(v, numbers.Integral):
        return str(int(v)), True
    if isinstance(v, numbers.Real):
        f = float(v)
        if math.isnan(f):  # undefined, as metrics.json writes it (null): it read "nan" here
            return "n/a", False
        if not math.isfinite(f):
            return str(f), True
        text, digits = f"{f:.4g}", 4
        while float(text) != f and float(text).is_integer() and abs(f) < 1e4 and digits < 12:  # 0.99995 read "1"
            digits += 1
            text = f"{f:.{digits}g}"
        return text, True
    return html.escape(str(v)), False


def _table_html(table: Mapping | Sequence[Mapping]) -> str:
    if isinstance(table, Mapping):
        rows = []
        for k, v in table.items():
            cell, num = _fmt(v)
            rows.append(f'<tr><th>{html.escape(str(k))}</th><td{" class=num" if num else ""}>{cell}</td></tr>')
        return "<table>\n" + "\n".join(rows) + "\n</table>"
    records = list(table)
    if not records:
        return "<p><em>(empty table)</em></p>"
    cols: list[str] = []
    for r in records:
        if not isinstance(r, Mapping):
            raise ValueError(f"table rows must be dicts, got {type(r).__name__}")
        for k in r:
            if k not in cols:
                cols.append(k)
    head = "<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols) + "</tr>"
    body = []
    for r in records:
        cells = []
        for c in cols:
            cell, num = _fmt(r[c]) if c in r else ("", False)  # a cell the row does not have: empty
            cells.append(f'<td{" class=num" if num else ""}>{cell}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return "<table>\n" + head + "\n" + "\n".join(body) + "\n</table>"


def _text_html(text: str) -> str:
    paras = [p.strip() for p in str(text).replace("\r\n", "\n").split("\n\n")]
    return "\n".join(
        "<p>" + html.escape(p).replace("\n", "<br>\n") + "</p>" for p in paras if p
    )


def _media_file(item: str | Path, base: Path, kind: str, mimes: dict) -> tuple[Path, str]:
    """``(path, MIME type)`` of an image or sound the report shows (``kind``), relative to ``base`` unless absolute;
    DataError naming a file that does not exist or is of a type ``mimes`` does not hold."""
    p = Path(item)
    full = p if p.is_absolute() else base / p
    if not full.is_file():
        raise DataError(full, f"{kind} for the HTML report does not exist")
    mime = mimes.get(full.suffix.lower())
    if mime is None:
        raise DataError(full, f"unsupported {kind} type {full.suffix!r} for the HTML report")
    return full, mime


def _image_html(img: str | Path, base: Path) -> str:
    full, mime = _media_file(img, base, "image", _MIME)
    data = base64.b64encode(full.read_bytes()).decode("ascii")
    name = html.escape(str(img))
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{name}">'
        f"<figcaption>{name}</figcaption></figure>"
    )


def _audio_html(sound: str | Path, base: Path) -> str:
    """A player of ``sound``: embedded as a data URI up to :data:`_EMBED_AUDIO_BYTES`, else linked by its path
    relative to the report (it moves with its folder)."""
    import os
    from urllib.parse import quote

    full, mime = _media_file(sound, base, "audio", _AUDIO_MIME)
    if full.stat().st_size <= _EMBED_AUDIO_BYTES:
        src = f"data:{mime};base64,{base64.b64encode(full.read_bytes()).decode('ascii')}"
    else:
        src = html.escape(quote(Path(os.path.relpath(full, base)).as_posix()))
    name = html.escape(str(sound))
    return (f'<figure><audio controls preload="none" src="{src}" title="{name}"></audio>'
            f"<figcaption>{name}</figcaption></figure>")


def write_html_report(path: str | Path, title: str, sections: Sequence[Mapping[str, Any]]) -> Path:
    """Write one self-contained HTML file (images embedded as base64 data URIs).

    Each section: ``{"heading": str, "text": str?, "table": dict | list[dict]?,
    "images": [paths]?, "audio": [paths]?}``. Image and audio paths are relative to the report's folder (absolute
    paths are used as given); a missing one raises DataError naming it. Audio gets a player each, the file embedded
    when small (:func:`_audio_html`). All text is HTML-escaped.
    """
    path = Path(path)
    base = path.parent
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(str(title))}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(str(title))}</h1>",
    ]
    for i, sec in enumerate(sections):
        if not isinstance(sec, Mapping):
            raise ValueError(f"section {i} must be a dict, got {type(sec).__name__}")
        unknown = set(sec) - {"heading", "text", "table", "images", "audio"}
        if unknown:
            raise ValueError(f"section {i} has unknown keys {sorted(unknown)}")
        parts.append("<section>")
        parts.append(f"<h2>{html.escape(str(sec.get('heading', '')))}</h2>")
        if sec.get("text"):
            parts.append(_text_html(sec["text"]))
        if sec.get("table") is not None:
            parts.append(_table_html(sec["table"]))
        for img in sec.get("images") or ():
            parts.append(_image_html(img, base))
        for sound in sec.get("audio") or ():
            parts.append(_audio_html(sound, base))
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    atomic_write_text(path, "\n".join(parts))
    return path
