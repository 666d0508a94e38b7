"""Uploads to the server: the client's file name as a label (never a path), and the upload in a private temporary
file whose reader's errors and warnings name the client's file instead."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fastapi import HTTPException

from latentbridge.errors import DataError
from latentbridge.utils import forget_said, warnings_said


def safe_name(filename: str | None) -> str:
    """The client's file name as a label (its last path component); never used as a path."""
    name = (filename or "upload").replace("\\", "/").rsplit("/", 1)[-1].strip() or "upload"
    suffix = suffix_of(name)  # kept: a long name cut to 200 characters lost it ("unsupported file type")
    return name if len(name) <= 200 else name[:200 - len(suffix)] + suffix


def suffix_of(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 8 else ""


class Upload:
    """An upload written to a private temporary file (named ``upload<ext>``), whose DataErrors are
    re-worded to name the client's file instead."""

    def __init__(self, data: bytes, client_name: str):
        self.client_name = client_name
        self._dir = tempfile.TemporaryDirectory(prefix="latentbridge-serve-")
        self.path = Path(self._dir.name) / f"upload{suffix_of(client_name)}"
        self.path.write_bytes(data)

    def close(self) -> None:
        self._dir.cleanup()

    def error(self, e: DataError) -> HTTPException:
        return HTTPException(422, f"{self.client_name}: {e.problem}".replace(str(self.path), self.client_name))

    def told(self, fn, *args):
        """``(fn(*args), the warnings latentbridge logged meanwhile in this thread)``, naming the client's file: what
        the reader says of a file (a header never finalised, a CSV's Unix-time column or sensors read by position)
        reaches the client, not only the server's log under a temporary path."""
        try:
            with warnings_said() as texts:
                out = fn(*args)
        finally:
            forget_said(str(self.path.parent))  # notes said once per file: this upload's are not met again
        return out, [t.replace(str(self.path), self.client_name).replace(str(self.path.parent), ".") for t in texts]
