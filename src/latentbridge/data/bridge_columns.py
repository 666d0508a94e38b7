"""The sensor columns of a bridge folder's recordings, matched by their header names (:class:`ChannelOrder`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.data.bridge_layout import _warn_once, recording_names
from latentbridge.errors import DataError
from latentbridge.io.columns import by_name, common_columns
from latentbridge.io.levels import constant_channels
from latentbridge.io.vibration import pick_channels
from latentbridge.utils import listed


class ChannelOrder:
    """Sensor columns matched by their header names: a logger that writes its columns in another order (acc_08 ...
    acc_01) had its channels swapped without a word. The reference is a trained model's columns (``reference``) where
    a recording holds them all, else the set most recordings name, in the order of the first naming it
    (:func:`~latentbridge.io.columns.common_columns`, the anomaly path's rule: an odd first file no longer decides for
    the others). Same names in another order: the rows reordered; more names: those left out; other names: read by
    position, and named. Channels that never move are named too. ``whole``: the names noted are every sensor column
    of a recording's header, which the one-sensor-per-file check needs. ``positions`` (``vibration.channels`` of a
    training): the sensor columns picked, positions among the columns most recordings name, read by name in each
    recording (by position, one of a logger that lacked a column shifted every channel after it to the next sensor
    without a word); a recording lacking a picked column is refused, one of other names read by position."""

    def __init__(self, reference: list[str] | None = None, whole: bool = True, positions: list[int] | None = None):
        self.reference, self.whole = (list(reference) if reference else None), whole
        self.positions = None if positions is None else list(positions)
        self.named: dict[Path, list[str]] = {}
        self.ref: tuple[Path | None, list[str]] | None = None  # (the first recording naming them; None: a model's)
        self.reordered: list[Path] = []
        self.extra: list[Path] = []
        self.renamed: list[tuple[Path, list[str]]] = []
        self.other: list[Path] = []  # (positions) recordings of other columns than the reference's, the picked read
        self.picked: dict[Path, list[int]] = {}  # the channels each recording gave (none: all of them)
        self.n_files, self.dead = 0, {}  # recordings read; channel -> the recordings where it is constant

    def note(self, path: Path, names: list[str]) -> None:
        """A recording's header names (every recording before :meth:`settle`)."""
        self.named[path] = list(names)

    def settle(self) -> None:
        """The reference columns, once every recording is noted; DataError for a test whose recordings each hold
        one sensor of their own (``acc_01.csv`` ... ``acc_08.csv``: a logger's export per sensor), which trained a
        model of one channel pooling every sensor."""
        by_test: dict[Path, list[str]] = {}
        for p, n in self.named.items() if self.whole else ():  # one column picked of three is no file per sensor
            if len(n) == 1:
                by_test.setdefault(p.parent, []).append(n[0])
        for test, names in by_test.items():
            if len(names) >= 2 and len(set(names)) == len(names):
                raise DataError(test, f"its {len(names)} recordings each hold one sensor column of its own "
                                      f"({listed(names, 4, count=True)}): they would be read as {len(names)} "
                                      "recordings of one sensor, a model of one channel pooling every sensor; "
                                      "join a test's sensors into one CSV (a time column and one column per sensor)")
        if self.reference is not None:  # a trained model's columns, where a recording holds them (and maybe more)
            if any(by_name(n, self.reference) is not None for n in self.named.values()):
                self.ref = (None, self.reference)
                return
        columns, _ = common_columns(self.named, extra=self.positions is None)
        if columns is not None:
            first = next(p for p, n in self.named.items() if n == columns)
            if self.positions is not None:  # the picked columns, named
                columns = [columns[i] for i in pick_channels(first, self.positions, len(columns), "sensor column")]
            self.ref = (first, columns)

    def flat(self, path: Path, wave: np.ndarray) -> None:
        """Count the channels of one recording that never move (a dead or unplugged sensor); a recording of a few
        samples tells nothing (one of 0.01 s named every sensor dead before it was refused as too short)."""
        if wave.shape[-1] < 10:
            return
        self.n_files += 1
        for c in constant_channels(wave).tolist():
            self.dead.setdefault(c, []).append(path)

    def align(self, path: Path, wave: np.ndarray) -> np.ndarray:
        names = self.named.get(path)

        def by_position() -> np.ndarray:  # (vibration.channels: positions, checked against this recording)
            return wave if self.positions is None else pick(pick_channels(path, self.positions, wave.shape[0],
                                                                          "sensor column"))

        def pick(idx: list[int]) -> np.ndarray:
            self.picked[path] = list(idx)
            return wave[idx]

        if self.ref is None or not names or len(names) != wave.shape[0]:
            return by_position()
        if names == self.ref[1] and self.positions is None:
            return wave
        if (idx := by_name(names, self.ref[1])) is not None:  # another order, or a temperature, an rpm... left out
            if self.positions is None:
                (self.extra if len(names) > len(idx) else self.reordered).append(path)
            elif self.ref[0] is not None and sorted(names) != sorted(self.named[self.ref[0]]):
                self.other.append(path)  # a column not picked lacking, or one more
            elif idx != self.positions:
                self.reordered.append(path)
            return pick(idx)
        if self.positions is not None and self.ref[0] is not None and set(names) & set(self.named[self.ref[0]]):
            raise DataError(path, f"lacks the sensor column(s) {listed([c for c in self.ref[1] if c not in names])} "
                                  f"picked by vibration.channels {self.positions} (columns of "
                                  f"{self.ref[0].name}: {listed(self.ref[1], 6)}); its columns: {listed(names, 6)}")
        self.renamed.append((path, names))
        return by_position()

    def picked_share(self, path: Path, above: np.ndarray, total: np.ndarray) -> float:
        """The share of the energy of the channels ``path`` gave (:meth:`align`) that lies ``above`` a band, of each
        channel's ``total`` (one column of a logger's many, the others read above the band, named it)."""
        idx = self.picked.get(path, slice(None))
        return float(above[idx].sum() / t) if (t := float(total[idx].sum())) > 0 else 0.0

    def report(self, root: Path) -> None:
        def rel(paths) -> list[str]:  # a test's recordings are named with their test (Test_07/rec_01.csv)
            return recording_names(root, paths)

        if self.dead:
            _warn_once("%s: channel(s) constant over a whole recording (a dead or unplugged sensor?): %s", root,
                       "; ".join(f"channel {c} ({'' if self.ref is None else self.ref[1][c] + ', '}in {len(ps)} of "
                                 f"{self.n_files} recordings: {listed(rel(ps), 3, count=True)})"
                                 for c, ps in sorted(self.dead.items())))
        if self.ref is None:
            return
        first = (f"{self.ref[0].relative_to(root).as_posix()}" if self.ref[0] is not None else
                 "the model's training recordings") + f" ({listed(self.ref[1], 4)})"
        if self.reordered:
            _warn_once("%s: %d recording(s) list their sensor columns in another order than %s: read in its order, by "
                       "name: %s", root, len(self.reordered), first, listed(rel(self.reordered), 5, count=True))
        if self.other:
            _warn_once("%s: %d recording(s) hold other sensor columns than %s (one lacking, or one more): the columns "
                       "picked by vibration.channels read by name: %s", root, len(self.other),
                       f"{self.ref[0].relative_to(root).as_posix()} ({listed(self.named[self.ref[0]], 4)})",
                       listed(rel(self.other), 5, count=True))
        if self.extra:
            _warn_once("%s: %d recording(s) hold more columns than %s: the others left out, its columns read by "
                       "name: %s", root, len(self.extra), first, listed(rel(self.extra), 5, count=True))
        if self.renamed:  # each with what it lacks of the reference's names (a list cut at 4 hid the difference)
            _warn_once("%s: %d recording(s) name their sensor columns otherwise than %s: read by position: %s", root,
                       len(self.renamed), first, listed([
                           f"{n} ({listed(c, 4)}" + (f"; without {listed([x for x in self.ref[1] if x not in c], 4)}"
                                                      if set(c) & set(self.ref[1]) else "") + ")"
                           for n, (_, c) in zip(rel([p for p, _ in self.renamed]), self.renamed)], 3, count=True))
