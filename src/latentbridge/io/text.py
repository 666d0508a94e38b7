"""Text files as users' tools write them: UTF-8 (with or without a byte-order mark), UTF-16 with its
byte-order mark (Excel's "Unicode text"), and Windows-1252 / Latin-1 (Excel's "CSV" on Western Windows,
European data loggers), and the ``sep=X`` line Excel writes to name a CSV's delimiter."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from latentbridge.errors import DataError


def decode_text(raw: bytes, path: str | Path, what: str, legacy: str = "header") -> str:
    """The text of ``raw`` (read from ``path``; ``what`` names the expected content in errors): UTF-8 (a
    byte-order mark ignored) or UTF-16 with its byte-order mark; bytes that are not UTF-8 are read as
    Windows-1252 in the first line only (``legacy="header"``: a CSV of numbers under a header of names such
    as ``m/s\u00b2``) or anywhere (``"all"``: names throughout, e.g. file paths). NUL bytes without a
    UTF-16 mark: not text."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as e:
            raise DataError(path, f"not UTF-16 text after its byte-order mark (byte {e.start})") from None
    if b"\x00" in raw[:65536]:
        raise DataError(path, f"not a text file (holds NUL bytes); expected {what}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        start = e.start
    if legacy == "all":
        return raw.decode("cp1252", errors="replace")
    head, newline, rest = raw.partition(b"\n")
    if start < len(head):  # only the header is not UTF-8: its names, in a legacy code page
        try:
            body = rest.decode("utf-8")
            return head.decode("cp1252", errors="replace") + newline.decode() + body
        except UnicodeDecodeError:
            pass
    raise DataError(path, f"not UTF-8 text (byte {start}); expected {what}")


def excel_separator(line: str) -> str | None:
    """The delimiter named by Excel's ``sep=X`` first line, or None when ``line`` is not one."""
    m = re.fullmatch(r'"?sep=(.)"?', line.strip())
    return m.group(1) if m else None


def csv_records(text: str, wanted: set[str], headless=None) -> tuple[list[tuple[int, list[str]]], str]:
    """The records of a CSV ``text`` (the header first), each with the line it starts on, and the delimiter: Excel's
    ``sep=X`` first line, else the first of comma, semicolon and tab whose header cells hold every name of ``wanted``
    (in any case, quoted or not) or, for a file without a header, whose first line's cells pass ``headless`` (a
    predicate), else comma. Quotes are read before lines are split: a quoted cell may hold the delimiter or a line
    break (splitting the text into lines first cut such a row in two)."""
    first, _, rest = text.partition("\n")
    skip = 0
    if sep := excel_separator(first.rstrip("\r")):
        text, first, skip = rest, rest.partition("\n")[0], 1
    cells = {d: [h.strip().strip('"').lower() for h in first.rstrip("\r").split(d)] for d in (",", ";", "\t")}
    delim = sep or next((d for d, c in cells.items() if wanted <= set(c)), None) or \
        next((d for d, c in cells.items() if headless and headless(c)), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    records, start = [], 1
    for cells in reader:
        records.append((start + skip, cells))
        start = reader.line_num + 1
    return records, delim


#: characters of a text split into lines at a time by :class:`LineBlocks` (about 100,000 lines of a CSV of numbers)
BLOCK_CHARS = 4 << 20


class LineBlocks:
    """The lines of a long text, split a block at a time: a list of every line of a 1-h vibration CSV took 2.5 times
    the file's size (a Python string per line). ``lines[i]`` is line ``i`` (0-based, of the whole text, as
    ``text.splitlines()`` numbers them) among those held; :meth:`read` splits the next block."""

    def __init__(self, text: str, chars: int | None = None):
        self._text, self._pos, self.first, self._lines = text, 0, 0, []
        self._chars = max(1, chars or BLOCK_CHARS)
        self._nl = "\n" if "\n" in text else "\r"  # (a classic Mac file ends its lines with CR alone)
        #: at least as many lines as the text has (a bound for arrays of its rows)
        self.bound = text.count(self._nl) + 1

    @property
    def done(self) -> bool:
        return self._pos >= len(self._text)

    def read(self, keep: bool = False) -> list[int]:
        """Split the next block of lines (``keep``: beside those held, else in their place); its rows with data: the
        numbers of its lines that are neither blank nor a ``#`` comment."""
        end = self._text.find(self._nl, min(self._pos + self._chars, len(self._text)) - 1)
        end = len(self._text) if end < 0 else end + 1
        part = self._text[self._pos:end].splitlines()
        self._pos = end
        if not keep:
            self.first, self._lines = self.first + len(self._lines), []
        base = self.first + len(self._lines)
        self._lines += part
        return [base + k for k, ln in enumerate(part) if ln.strip() and not ln.lstrip().startswith("#")]

    def last_row(self) -> str:
        """The text's last line with data (neither blank nor a comment; "" when none): looked for in its last 64k
        characters, then in 4 times as many (a logger's footer of comments), up to the whole text."""
        size = 65536
        while True:
            for ln in reversed(self._text[-size:].splitlines()[1 if size < len(self._text) else 0:]):
                if ln.strip() and not ln.lstrip().startswith("#"):
                    return ln
            if size >= len(self._text):
                return ""
            size *= 4

    def __getitem__(self, i: int) -> str:
        return self._lines[i - self.first]

    def __setitem__(self, i: int, line: str) -> None:
        self._lines[i - self.first] = line
