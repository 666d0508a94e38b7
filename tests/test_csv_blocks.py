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
    (lambda ln: ln.replace(";RUN", ";12"), "line 5, column 4: not a number: 'RUN' (column 4 holds words there and "
                                           "a number or a gap on line 332"),  # the text column's number, named
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


def _rows(n, fmt):
    return "".join(fmt(i) for i in range(n))


@pytest.mark.parametrize("make, expect", [
    # decimal commas beside stamps written with a point (judged once the stamps are numbers)
    (lambda: "timestamp;x\n" + _rows(400, lambda i: f"2024-05-01 12:00:00.{i:03d};0,{i % 97:02d}\n"), (1, 400)),
    # a quoted cell holding the delimiter under a header that ends with one (a traceback)
    (lambda: "time,x,note,\n" + _rows(400, lambda i: f"{i / 1000:.3f},0.5,\"a,b\"\n"), (1, 400)),
    # notes above the table and a long footer of comments (the table's last line was not found)
    (lambda: "Device: LoggerX\nSample rate: 1000 Hz\ntime,x,y\n" + _rows(400, lambda i: f"{i / 1000:.3f},0.5,0.25\n")
     + "# footer line of a logger, long enough to fill a block of text many times over.............\n" * 900,
     (2, 400)),
    # a pre-trigger of whole numbers, decimal commas after it
    (lambda: "time_ms;x;y\n" + _rows(400, lambda i: f"{i};0;0\n" if i < 300 else f"{i};0,{i % 97:02d};-1,5\n"),
     (2, 400)),
    # a bad cell early and a ragged row late: the ragged row first, as a whole read names it
    (lambda: "time,x\n" + _rows(400, lambda i: f"{i / 1000:.3f},{'abc' if i == 8 else '0.5'}"
                                + (",1" if i == 395 else "") + "\n"), "ragged rows: line 397 has 3 fields"),
    # a header wider than the data and one late row of its width: ragged, counted over every line
    (lambda: "time,x,y\n" + _rows(400, lambda i: f"{i / 1000:.3f},0.5" + (",1" if i == 395 else "") + "\n"),
     "ragged rows: line 2 has 2 fields, expected 3 (as in the header on line 1; delimiter ','); 399 lines differ"),
    # the closing delimiter judged on the first 256 data lines whatever the blocks (255 of them at small blocks)
    (lambda: "a;b;\n" + _rows(400, lambda i: f"{i};{i}\n" if i == 255 else f"{i};{i};\n"),
     "ragged rows: line 257 has 2 fields, expected 3"),
    # decimal commas judged on 50 lines that hold a comma or a point, wherever they are (5 at small blocks)
    (lambda: "x;y\n" + _rows(250, lambda i: "0;0\n") + _rows(5, lambda i: "0,5;1,5\n")
     + _rows(100, lambda i: "0.5;1.5\n"),
     "line 252, column 1: not a number: '0,5' (decimal commas and points mixed in one file)"),
    # no header, the most common count over the whole file (not the first block's)
    (lambda: _rows(100, lambda i: f"{i / 1000:.3f},0.5\n") + _rows(300, lambda i: f"{i / 1000:.3f},0.5,1\n"),
     "ragged rows: line 1 has 2 fields, expected 3 (as on most lines; delimiter ','); 100 lines differ"),
])
def test_blocks_read_what_the_whole_file_gives(tmp_path, monkeypatch, make, expect):
    """Found by a differential fuzz of the block reader against a whole read: each file is read alike at blocks of
    about one line, a few lines and 4 MiB."""
    path = tmp_path / "f.csv"
    path.write_text(make())
    out = []
    for chars in (None, 1000, 64):
        if chars:
            monkeypatch.setattr(text_mod, "BLOCK_CHARS", chars)
        try:
            wave, rate = read_vibration_csv(path, fallback_rate=1000.0)
            out.append((wave.shape, rate, wave.tobytes()))
        except DataError as e:
            out.append(str(e))
    assert out[0] == out[1] == out[2]
    if isinstance(expect, tuple):
        assert out[0][0] == expect and out[0][1] == 1000.0
    else:
        assert expect in out[0]
