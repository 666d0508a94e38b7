"""Errors that reach users: each names the file or key and the problem."""

from __future__ import annotations

from pathlib import Path


#: problems named one by one in an error about many files (the rest are counted)
MAX_NAMED = 10


def named_problems(problems: list) -> str:
    """``"a; b; ...; and N more"``: the first :data:`MAX_NAMED` problems of an error about many files. Problems given
    as :class:`DataError` or ``(path, problem)`` pairs are grouped: the files of one problem named together (three,
    then a count), the problem said once (ten files recorded below a model's rate made one line of 2,500
    characters)."""
    texts, groups = [], {}
    for p in problems:
        if isinstance(p, (DataError, tuple)):
            path, problem = (p.path, p.problem) if isinstance(p, DataError) else p
            groups.setdefault(problem, []).append(str(path))
        else:
            texts.append(str(p))
    for problem, paths in groups.items():
        texts.append(", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "") + f": {problem}")
    more = len(texts) - MAX_NAMED
    return "; ".join(texts[:MAX_NAMED]) + (f"; and {more} more" if more > 0 else "")


class LatentbridgeError(Exception):
    """Base class for errors the CLI reports as one clear line (exit code 2)."""


class DataError(LatentbridgeError):
    """A data file or folder that cannot be used."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(LatentbridgeError):
    """A config file or override with unknown keys or wrong values; ``problems``, where the config was validated,
    is the message without its source (the keys and what is wrong with them)."""

    def __init__(self, message: str, problems: str | None = None):
        self.problems = problems
        super().__init__(message)


class ModelFolderError(LatentbridgeError):
    """A saved model folder that is missing files or has been altered."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"model folder {self.path}: {problem}")


class CheckpointError(LatentbridgeError):
    """A training checkpoint that cannot be read or does not fit the run (corrupt, foreign, other model)."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class BusyError(LatentbridgeError):
    """An output folder another process is writing (its lock is held)."""


class Stopped(LatentbridgeError):
    """Work stopped before its end because its caller asked (the server's client went away)."""


def os_error_text(e: OSError, out=None) -> str:
    """One line for an OSError of the user's environment (permissions, a full disk, a missing folder): the file and
    the problem; a full disk also names ``out``, the output being written (the file that failed is often a temporary
    one, whose name says nothing to the user)."""
    import errno
    import re

    name = e.filename
    if name:  # a temporary file's name (.config.json.x1y2.partial, .run.tmp-123) said as the file it was to become
        path = Path(str(name))
        if m := re.fullmatch(r"\.(.+?)(?:\.[a-z0-9_]{8}\.partial|\.tmp-\d+)", path.name):
            name = path.parent / m.group(1)
    text = f"{name}: {e.strerror or e}" if name else str(e.strerror or e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) and out:
        text += f" (while writing {out})"
    return text
