"""Vibration CSVs read a block of lines at a time (:class:`latentbridge.io.text.LineBlocks`): the same numbers, rate,
names and messages (with the lines they name) as a read of the whole text, and the memory of a long recording."""

from __future__ import annotations

import numpy as np
import pytest

from latentbridge.errors import DataError
from latentbridge.io import text as text_mod
from latentbridge.io.vibration import read_vibration_csv


def _read_both(path, monkeypatch, **kw):
    """(whole, in blocks of ~3 lines): each a (wave, rate, names) or the DataError's message."""
    out = []
    for chars in (None, 50):
        if chars:
            monkeypatch.setattr(text_mod, "BLOCK_CHARS", chars)
        try:
            wave, rate = read_vibration_csv(path, names=(names := []), **kw)
            out.append((wave, rate, names))
        except DataError as e:
            out.append(str(e))
    return out


def _logger_csv(path, n=400, rate=500.0):
    """A logger's file: notes with the rate, a header and a units row, dates and times, decimal commas between ';'
    cells, a text column, a closing ';' on every line, comment and blank lines within the table."""
    rng = np.random.default_rng(0)
    lines = ["Device: DAQ-7", "Sample rate: 500 Hz", "time;ax;ay;state;", "s;g;g;;"]
    for i in range(n):
        sec = i / rate
        stamp = f"2024-05-01 12:00:{int(sec):02d},{int(round((sec % 1) * 1e6)):06d}"
        x, y = rng.normal(size=2)
        lines.append(f"{stamp};{x:.5f};{y:.5f};RUN;".replace(".", ",").replace(f"{stamp}".replace(".", ","), stamp))
        if i in (150, 300):
            lines += ["# pause marker", ""]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_blocks_read_the_same_as_the_whole_text(tmp_path, monkeypatch):
    whole, blocks = _read_both(_logger_csv(tmp_path / "log.csv"), monkeypatch)
    assert not isinstance(whole, str), whole
    np.testing.assert_array_equal(whole[0], blocks[0])
    assert whole[0].shape == (2, 400) and whole[1] == blocks[1] == 500.0
    assert whole[2] == blocks[2] == ["ax [g]", "ay [g]"]


@pytest.mark.parametrize("damage, message", [
    (lambda ln: ln.rsplit(";", 2)[0] + ";", "ragged rows: line 332 has 3 fields, expected 4"),  # a cell short
    (lambda ln: ln.replace(";RUN", ";12"), "line 5, column 4: not a number: 'RUN'"),  # the text column's number
    (lambda ln: ln.replace("RUN", "RUN;x"), "ragged rows: line 332 has 5 fields"),
])
def test_blocks_name_the_lines_a_whole_read_names(tmp_path, monkeypatch, damage, message):
    path = _logger_csv(tmp_path / "log.csv")
    lines = path.read_text().splitlines()
    lines[331] = damage(lines[331])  # (line 332, in a late block)
    if "5 fields" in message:  # a second ragged line, in another block
        lines[390] = lines[390].replace("RUN", "RUN;y")
        message += ", expected 4 (as in the header on line 3; delimiter ';'); 2 lines differ in all"
    path.write_text("\n".join(lines) + "\n")
    whole, blocks = _read_both(path, monkeypatch)
    assert isinstance(whole, str) and whole == blocks, (whole, blocks)
    assert message in whole


def test_time_and_values_errors_name_late_lines(tmp_path, monkeypatch):
    t = np.arange(300) / 100.0
    rows = [f"{a:.2f},{b:.4f}" for a, b in zip(t, np.sin(t))]
    rows[250] = f"{t[250]:.2f},nan"
    path = tmp_path / "nan.csv"
    path.write_text("time,x\n" + "\n".join(rows) + "\n")
    whole, blocks = _read_both(path, monkeypatch)
    assert whole == blocks and "first at line 252, column 2" in whole
    rows[250] = f"{t[248]:.2f},0.1"
    path.write_text("time,x\n" + "\n".join(rows) + "\n")
    whole, blocks = _read_both(path, monkeypatch)
    assert whole == blocks and "is not increasing: line 252" in whole


def test_a_long_recording_is_read_in_little_more_than_its_own_size(tmp_path):
    """A 1-h CSV of 3 axes at 2 kHz (253 MB) peaked at 1,456 MB read whole; in blocks at 614 MB (`/usr/bin/time`).
    Here a 20 MB file in a child process: its peak above the interpreter's stays under 3 times the file."""
    import subprocess
    import sys
    n = 600_000
    t = np.arange(n) / 2000
    x = np.random.default_rng(1).normal(size=(n, 3))
    path = tmp_path / "long.csv"
    with open(path, "w") as f:
        f.write("time,ax,ay,az\n")
        np.savetxt(f, np.column_stack([t, x]), fmt=["%.4f", "%.5f", "%.5f", "%.5f"], delimiter=",")
    size = path.stat().st_size / 2**20
    code = ("import resource, sys\nfrom latentbridge.io.vibration import read_vibration_csv\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "w, sr = read_vibration_csv(sys.argv[1])\nassert w.shape == (3, 600000) and sr == 2000.0\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    grown = float(out.stdout.split()[-1])
    assert grown < 3 * size, (grown, size)
