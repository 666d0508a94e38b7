"""Event log of scored windows: append-only CSV or SQLite, each row durable when logged."""

from __future__ import annotations

import csv
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from latentbridge.errors import DataError, LatentbridgeError

__all__ = ["EVENT_FIELDS", "EventLog", "utc_now_iso"]

#: Columns of an event log, in order.
EVENT_FIELDS: tuple[str, ...] = ("wall_time", "start_s", "end_s", "score", "is_anomaly", "overflows")

_SQLITE_SUFFIXES = {".sqlite", ".sqlite3", ".db"}
_CSV_SUFFIXES = {".csv"}


def utc_now_iso() -> str:
    """The current time, ISO 8601 UTC with milliseconds (the ``wall_time`` of an event)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class EventLog:
    """Append-only log of scored windows, in SQLite (``.sqlite``, ``.sqlite3``, ``.db``) or CSV
    (``.csv``).  Each :meth:`log` call is committed (SQLite) or flushed (CSV) before it returns,
    so a killed process keeps every row it logged.  An existing log is appended to.

    Rows hold :data:`EVENT_FIELDS`: ``wall_time`` (ISO 8601 UTC; filled in when missing),
    ``start_s``, ``end_s``, ``score``, ``is_anomaly`` and ``overflows`` (cumulative).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix in _SQLITE_SUFFIXES:
            self.kind = "sqlite"
        elif suffix in _CSV_SUFFIXES:
            self.kind = "csv"
        else:
            raise LatentbridgeError(
                f"{self.path}: unknown event log type {suffix or '(no extension)'!r}; "
                "use .csv, .sqlite, .sqlite3 or .db"
            )
        self._conn: sqlite3.Connection | None = None
        self._file: TextIO | None = None
        self._writer: Any = None
        self.rows_written = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(self.path, f"cannot create the event log folder: {exc}") from None
        if self.kind == "sqlite":
            self._open_sqlite()
        else:
            self._open_csv()
        self._lock_fd = self._lock()

    def _lock(self) -> int | None:
        """An advisory lock on the log while it is open: a second listener refused (two wrote their rows into one
        log, interleaved, each window's time twice, and nothing said which run wrote which)."""
        try:
            import fcntl
        except ImportError:  # (Windows)
            return None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self.close()
            raise LatentbridgeError(f"{self.path}: another process is writing this event log (a listener running): "
                                    "give each its own --events file") from None
        return fd

    def _open_sqlite(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS events ("
                "id INTEGER PRIMARY KEY AUTOINCREMENT, wall_time TEXT NOT NULL, "
                "start_s REAL NOT NULL, end_s REAL NOT NULL, score REAL, "
                "is_anomaly INTEGER NOT NULL, overflows INTEGER NOT NULL)"
            )
            conn.commit()
            columns = [row[1] for row in conn.execute("PRAGMA table_info(events)")]
        except sqlite3.Error as exc:
            raise DataError(self.path, f"cannot use as an SQLite event log: {exc}") from None
        missing = [f for f in EVENT_FIELDS if f not in columns]
        if missing:
            conn.close()
            raise DataError(self.path, f"existing 'events' table lacks columns {missing}")
        self._conn = conn

    def _open_csv(self) -> None:
        exists = self.path.is_file() and self.path.stat().st_size > 0
        if exists:
            with open(self.path, newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), [])
            if tuple(header) != EVENT_FIELDS:
                raise DataError(
                    self.path,
                    f"existing CSV header {header} is not an event log header {list(EVENT_FIELDS)}",
                )
        try:
            self._file = open(self.path, "a", newline="", encoding="utf-8")
        except OSError as exc:
            raise DataError(self.path, f"cannot open event log: {exc}") from None
        self._writer = csv.writer(self._file)
        if not exists:
            try:
                self._writer.writerow(EVENT_FIELDS)
                self._file.flush()
            except OSError as exc:  # a full disk, a device file
                raise DataError(self.path, f"cannot write to the event log ({exc.strerror or exc})") from None

    def log(self, event: dict) -> None:
        unknown = set(event) - set(EVENT_FIELDS)
        if unknown:
            raise ValueError(f"unknown event fields {sorted(unknown)}; expected {EVENT_FIELDS}")
        missing = [f for f in EVENT_FIELDS[1:] if f not in event]
        if missing:
            raise ValueError(f"event lacks fields {missing}")
        row = (
            str(event.get("wall_time") or utc_now_iso()),
            float(event["start_s"]),
            float(event["end_s"]),
            float(event["score"]),
            int(bool(event["is_anomaly"])),
            int(event["overflows"]),
        )
        try:
            if self._conn is not None:
                self._conn.execute(
                    "INSERT INTO events (wall_time, start_s, end_s, score, is_anomaly, overflows) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    row,
                )
                self._conn.commit()
            elif self._file is not None:
                self._writer.writerow(row)
                self._file.flush()
            else:
                raise LatentbridgeError(f"{self.path}: event log is closed")
        except (OSError, sqlite3.Error) as exc:  # a full disk, a device or a file removed meanwhile
            raise DataError(self.path, f"cannot write to the event log ({getattr(exc, 'strerror', None) or exc})") \
                from None
        self.rows_written += 1

    def close(self) -> None:
        if getattr(self, "_lock_fd", None) is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
