"""Errors that reach users: each names the file or key and the problem."""

from __future__ import annotations

from pathlib import Path


class LatentbridgeError(Exception):
    """Base class for errors the CLI reports as one clear line (exit code 2)."""


class DataError(LatentbridgeError):
    """A data file or folder that cannot be used."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(LatentbridgeError):
    """A config file or override with unknown keys or wrong values."""


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
