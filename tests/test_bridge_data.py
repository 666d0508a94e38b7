"""Tests for the bridge data side: vibration CSVs, crack masks, pairing, windows, split, cache."""

from __future__ import annotations

import logging
import os
import re
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from latentbridge.config import VibrationConfig
from latentbridge.data import bridge
from latentbridge.data.bridge import BridgeData, build_windows, discover
from latentbridge.errors import ConfigError, DataError
from latentbridge.io.masks import read_mask_png, write_mask_png
from latentbridge.io.vibration import read_vibration_csv, write_vibration_csv

SR = 100.0


def write_csv(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def table_csv(path, table: np.ndarray, header: str | None = None, delimiter: str = ","):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, table, delimiter=delimiter, fmt="%.15g", header=header or "", comments="")
    return path


def signal(n_ch=3, n=1000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_ch, n))


def vib(**kw) -> VibrationConfig:
    base = dict(window_s=2.0, hop_s=1.0, n_fft=32, hop_length=8, mask_height=8, mask_width=24)
    base.update(kw)
    return VibrationConfig(**base)


def centred(x):
    """A recording as the bridge reader gives it: each channel's constant offset taken out."""
    x = np.asarray(x, np.float64)
    return x - x.mean(axis=-1, keepdims=True)


def crack_mask(h=32, w=96, extent=0.25):
    m = np.zeros((h, w))
    m[:, : int(round(extent * w))] = 1.0
    return m


def make_root(tmp_path, tests: dict, name="root"):
    """tests: id -> dict(n_ch, n, extent (None: no mask), seed, files)."""
    root = tmp_path / name
    for i, (tid, spec) in enumerate(tests.items()):
        for f in range(spec.get("files", 1)):
            wave = signal(spec.get("n_ch", 3), spec.get("n", 1000), seed=spec.get("seed", i) * 10 + f)
            write_vibration_csv(root / "Data" / tid / f"rec{f}.csv", wave, spec.get("sr", SR))
        if spec.get("extent") is not None:
            write_mask_png(root / "Labels" / tid / "mask.png", crack_mask(extent=spec["extent"]))
    return root


# ============================================================================ CSV


def test_csv_header_and_time_column(tmp_path):
    x = signal(4, 300)
    p = write_vibration_csv(tmp_path / "a.csv", x, 250.0)
    wave, sr = read_vibration_csv(p)
    assert sr == 250.0 and wave.dtype == np.float32 and wave.shape == (4, 300)
    np.testing.assert_allclose(wave, x, rtol=1e-6, atol=1e-6)


def test_csv_no_header_with_time_column(tmp_path):
    x = signal(2, 200)
    p = write_vibration_csv(tmp_path / "a.csv", x, 512.0, header=False)
    wave, sr = read_vibration_csv(p)
    assert sr == 512.0 and wave.shape == (2, 200)


def test_csv_no_time_column_needs_rate(tmp_path):
    x = signal(3, 100)
    for header in (True, False):
        p = write_vibration_csv(tmp_path / f"h{header}.csv", x, header=header, time_column=False)
        wave, sr = read_vibration_csv(p, sample_rate=200)
        assert sr == 200.0 and wave.shape == (3, 100)
        with pytest.raises(DataError, match=r"h%s\.csv.*no time column.*sample rate" % header):
            read_vibration_csv(p)


def test_csv_time_column_names_units_and_position(tmp_path):
    t = np.arange(50) * 2.0  # milliseconds -> 500 Hz
    x = signal(2, 50)
    p = table_csv(tmp_path / "ms.csv", np.column_stack([x[0], t, x[1]]), header="a,Time (ms),b")
    wave, sr = read_vibration_csv(p)
    assert sr == 500.0 and wave.shape == (2, 50)
    np.testing.assert_allclose(wave[1], x[1], rtol=1e-6)
    p = table_csv(tmp_path / "ts.csv", np.column_stack([t / 1000 + 1.6e9, x.T]), header="timestamp,x,y")
    assert read_vibration_csv(p)[1] == pytest.approx(500.0, rel=1e-4)


def test_csv_time_in_minutes_and_a_second_time_column(tmp_path, caplog):
    """'Time [min]' was read in seconds (the rate 60 times too low); a logger's second time ('time_s,elapsed_ms,...',
    or timestamps beside 'time_s') was read as a sensor: a ramp among the axes."""
    t = np.arange(600) / 200.0
    x = signal(2, 600)
    for name, minutes in (("Time [min]", t / 60), ("elapsed (minutes)", t / 60), ("time [h]", t / 3600)):
        p = table_csv(tmp_path / "m.csv", np.column_stack([minutes, x.T]), header=f"{name},a,b")
        wave, sr = read_vibration_csv(p)
        assert sr == pytest.approx(200.0, rel=1e-6) and wave.shape == (2, 600), name
    with caplog.at_level("INFO"):
        p = table_csv(tmp_path / "two.csv", np.column_stack([t, 1000 * t, x.T]), header="time_s,elapsed_ms,a,b")
        names = []
        wave, sr = read_vibration_csv(p, names=names)
    assert sr == 200.0 and wave.shape == (2, 600) and names == ["a", "b"]
    np.testing.assert_allclose(wave, x, atol=1e-5)
    assert "column 'elapsed_ms' also times the samples beside the time column 'time_s': left out" in caplog.text
    # a column named like a time that does not step evenly is a sensor still (a shaft's "t" for torque? read, named)
    p = table_csv(tmp_path / "torque.csv", np.column_stack([t, x[0], x[1]]), header="time,t,b")
    assert read_vibration_csv(p)[0].shape == (2, 600)


def test_csv_time_column_of_dates_and_times(tmp_path):
    """A logger's timestamps (ISO 8601 with T, Z or an offset; a space; a decimal comma in a ;-separated file with
    decimal commas) give the rate; a cell that is no date and time is named by line and column."""
    import datetime

    x = signal(2, 400)
    t0 = datetime.datetime(2024, 5, 1, 23, 59, 59, 900000)
    stamps = [t0 + datetime.timedelta(microseconds=500 * i) for i in range(400)]  # 2 kHz, across midnight
    forms = {"iso": (lambda t: t.isoformat(timespec="microseconds") + "Z", ","),
             "offset": (lambda t: t.isoformat(timespec="microseconds") + "+02:00", ","),
             "space": (lambda t: t.strftime("%Y-%m-%d %H:%M:%S.%f"), ","),
             "european": (lambda t: t.strftime("%Y-%m-%d %H:%M:%S,%f"), ";")}
    for name, (fmt, sep) in forms.items():
        rows = [sep.join([fmt(t), *(f"{v:.6f}" for v in x[:, i])]) for i, t in enumerate(stamps)]
        if sep == ";":
            rows = [r.split(";", 1)[0] + ";" + r.split(";", 1)[1].replace(".", ",") for r in rows]
        p = write_csv(tmp_path / f"{name}.csv", f"Date/Time{sep}ax{sep}ay\n" + "\n".join(rows) + "\n")
        wave, sr = read_vibration_csv(p)
        assert sr == 2000.0 and wave.shape == (2, 400), name
        np.testing.assert_allclose(wave, x, atol=1e-6)
    lines = (tmp_path / "space.csv").read_text().splitlines()
    lines[8] = "n/a," + lines[8].split(",", 1)[1]
    p = write_csv(tmp_path / "gap.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"gap\.csv: line 9, column 1: not a date and time like the column's others: "
                                        r"'n/a'"):
        read_vibration_csv(p)


def test_csv_first_column_stepping_evenly_under_a_name_of_its_own(tmp_path, caplog):
    """A first column that steps evenly under a name the reader does not know is the time, in the unit its name gives
    ('Zeit [s]', 'Time [us]', 'Zeit [ms]' in whole milliseconds), or a sample counter left out ('Sample #'); before,
    each was either refused or modelled as one more sensor axis. Dates and times under a units row give the rate."""
    import datetime

    x = signal(2, 400)
    t = np.arange(400) / 2000.0
    cases = {"Zeit [s]": (t, 2000.0), "Time (UTC)": (t, 2000.0), "Time [us]": (t * 1e6, 2000.0),
             "time_us": (t * 1e6, 2000.0), "Time (µs)": (t * 1e6, 2000.0), "Zeit [ms]": (np.arange(400.0), 1000.0),
             "Sample #": (np.arange(400.0), None)}
    for i, (name, (col, rate)) in enumerate(cases.items()):
        p = table_csv(tmp_path / f"c{i}.csv", np.column_stack([col, x.T]), header=f"{name};ax;ay", delimiter=";")
        with caplog.at_level(logging.WARNING, logger="latentbridge.io.vibration"):
            wave, sr = read_vibration_csv(p, sample_rate=None if rate else 500.0)
        assert wave.shape == (2, 400) and sr == (rate or 500.0), name
        np.testing.assert_allclose(wave, x, atol=1e-6)
    assert "'Zeit [s]', steps evenly: read as the time in s" in caplog.text
    assert "'Sample #', steps evenly: read as a sample counter, left out" in caplog.text
    # a logger's dates and times with a units row under the header
    t0 = datetime.datetime(2024, 5, 1, 12)
    rows = [",".join([(t0 + datetime.timedelta(milliseconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                      *(f"{v:.6f}" for v in x[:, i])]) for i in range(400)]
    p = write_csv(tmp_path / "stamps.csv", "Timestamp,X,Y\n,g,g\n" + "\n".join(rows) + "\n")
    wave, sr = read_vibration_csv(p)
    assert sr == 1000.0 and wave.shape == (2, 400)
    # a sample counter before a time column (it was read as a sensor axis: 4 axes for 3)
    rows = [f"{i + 1},{i / 1000:.3f}," + ",".join(f"{v:.6f}" for v in x[:, i]) for i in range(400)]
    p = write_csv(tmp_path / "counted.csv", "Sample #,time_s,X,Y\n" + "\n".join(rows) + "\n")
    wave, sr = read_vibration_csv(p)
    assert sr == 1000.0 and wave.shape == (2, 400)
    np.testing.assert_allclose(wave, x[:, :400], atol=1e-6)


def test_a_note_of_the_csv_reader_is_said_once_per_data_set(tmp_path, caplog):
    """A first column under a name of its own ('Zeit [ms]') was named once per test folder, on every train and evaluate
    (24 times for 24 tests), each line saying the folder's other files are not: now once per data set read, with how
    many files it holds for; a file read alone still says it, once per folder."""
    import latentbridge.utils as utils

    root = make_root(tmp_path, {f"Test_0{i}": {"extent": 0.2, "files": 2} for i in (1, 2, 3)})
    for csv in sorted((root / "Data").rglob("*.csv")):
        lines = csv.read_text().splitlines()
        rows = [ln.split(",", 1) for ln in lines[1:]]
        csv.write_text("\n".join(["Zeit [ms]," + lines[0].split(",", 1)[1]]
                                 + [f"{1000 * float(t):g},{rest}" for t, rest in rows]) + "\n")
    first = (root / "Data" / "Test_01" / "rec0.csv").resolve()
    said = []
    for run in range(2):  # a build, then a run (process) that reads the cache
        utils._SAID.clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            data = build_windows(root, vib(), cache_dir=tmp_path / "cache")
        said.append([r.getMessage() for r in caplog.records if "steps evenly" in r.getMessage()])
    assert data.sample_rate == SR
    assert said[0] == said[1] == [f"{first}: the first column, 'Zeit [ms]', steps evenly: read as the time in ms (so "
                                  f"in 6 files of {root.resolve()}; the others are not named)"], said
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # one file read alone, as `sample --condition` reads it
        read_vibration_csv(root / "Data" / "Test_02" / "rec1.csv")
        read_vibration_csv(root / "Data" / "Test_02" / "rec0.csv")
    assert [r.getMessage() for r in caplog.records] == [
        f"{root / 'Data' / 'Test_02' / 'rec1.csv'}: the first column, 'Zeit [ms]', steps evenly: read as the time in "
        "ms (the folder's other files are not named)"]


def test_csv_units_row_and_text_columns(tmp_path, caplog):
    """An instrument export's units row under the header joins the names (a time in ms is scaled); columns of text
    on every line (a device name, a status) are left out with a note; a sensor column with one word in it is not."""
    x = signal(2, 300)
    rows = [f"{0.5 * i:g},dev-7,{x[0, i]:.6f},{x[1, i]:.6f},{'ok' if i % 50 else 'warn'}" for i in range(300)]
    p = write_csv(tmp_path / "export.csv", "Time,Device,AccX,AccY,Status\nms,,g,g,\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="latentbridge.io.vibration"):
        wave, sr = read_vibration_csv(p)
    assert sr == 2000.0 and wave.shape == (2, 300)
    np.testing.assert_allclose(wave, x, atol=1e-6)
    assert "export.csv: columns 'Device', 'Status' hold text, not numbers: left out" in caplog.text
    rows[7] = rows[7].replace(f"{x[0, 7]:.6f}", "overload")
    p = write_csv(tmp_path / "gap.csv", "Time,Device,AccX,AccY,Status\nms,,g,g,\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"gap\.csv: line 10, column 3: not a number: 'overload'"):
        read_vibration_csv(p)


def test_csv_notes_above_the_table(tmp_path, caplog):
    """A logger's notes above its table (device, date, the sample rate) are told apart by their shape; the rate they
    give is used when the table has no time column and none was given."""
    x = signal(3, 300)
    table = "AccX;AccY;AccZ\n" + "\n".join(";".join(f"{v:.6f}" for v in x[:, i]) for i in range(300)) + "\n"
    p = write_csv(tmp_path / "log.csv", "Logger: ADXL355 #7\nStart: 2024-05-01 12:00\nSampling frequency = 2,5 kHz\n"
                                      "\n" + table)
    with caplog.at_level(logging.INFO, logger="latentbridge.io.vibration"):
        wave, sr = read_vibration_csv(p)
    assert sr == 2500.0 and wave.shape == (3, 300)
    np.testing.assert_allclose(wave, x, atol=1e-6)
    assert "log.csv: the sample rate, 2500 Hz, read from the lines above the table" in caplog.text
    assert read_vibration_csv(p, sample_rate=1000)[1] == 1000.0  # a rate given wins
    p = write_csv(tmp_path / "norate.csv", "Logger: ADXL355 #7\n" + table)
    with pytest.raises(DataError, match=r"norate\.csv: no time column found"):
        read_vibration_csv(p)
    assert read_vibration_csv(p, sample_rate=500)[0].shape == (3, 300)


@pytest.mark.parametrize("delimiter", [";", "\t", " "])
def test_csv_delimiters(tmp_path, delimiter):
    x = signal(3, 40)
    p = write_vibration_csv(tmp_path / "d.csv", x, 100.0, delimiter=delimiter)
    wave, sr = read_vibration_csv(p)
    assert sr == 100.0 and wave.shape == (3, 40)


@pytest.mark.parametrize("header_closed", [True, False])
@pytest.mark.parametrize("delimiter", [",", ";"])
def test_csv_with_a_delimiter_closing_every_line(tmp_path, delimiter, header_closed):
    """Loggers and spreadsheet exports end every line with the delimiter: no empty last column."""
    x = signal(3, 40)
    plain = write_vibration_csv(tmp_path / "d.csv", x, 100.0, delimiter=delimiter)
    lines = plain.read_text().splitlines()
    closed = [ln + delimiter if i or header_closed else ln for i, ln in enumerate(lines)]
    p = tmp_path / "closed.csv"
    p.write_text("\r\n".join(closed) + "\r\n")
    wave, sr = read_vibration_csv(p)
    ref, _ = read_vibration_csv(plain)
    assert sr == 100.0 and wave.shape == (3, 40)
    np.testing.assert_array_equal(wave, ref)
    q = tmp_path / "one_open.csv"  # not every line closed: the missing cell is still reported
    q.write_text("\n".join(closed[:5] + [lines[5]] + closed[6:]) + "\n")
    with pytest.raises(DataError, match=r"one_open\.csv: .*line"):
        read_vibration_csv(q)


def test_csv_index_column_is_dropped(tmp_path):
    x = signal(2, 30)
    p = table_csv(tmp_path / "i.csv", np.column_stack([np.arange(30), x.T]), header=",a,b")
    wave, sr = read_vibration_csv(p, sample_rate=50)
    assert wave.shape == (2, 30) and sr == 50


def test_csv_channels(tmp_path):
    x = signal(4, 20)
    p = write_vibration_csv(tmp_path / "c.csv", x, 100.0)
    wave, _ = read_vibration_csv(p, channels=[3, 1])
    np.testing.assert_allclose(wave, x[[3, 1]], rtol=1e-6)
    with pytest.raises(DataError, match=r"c\.csv: channel 4 out of range.*4 sensor columns.*0\.\.3"):
        read_vibration_csv(p, channels=[0, 4])


def test_csv_blank_lines_and_comments(tmp_path):
    p = write_csv(tmp_path / "b.csv", "# logger v2\ntime,a\n\n0,1\n0.5,2\n1.0,3\n\n")
    wave, sr = read_vibration_csv(p)
    assert sr == 2.0 and wave.tolist() == [[1, 2, 3]]


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("", r"empty"),
        ("  \n\n", r"empty"),
        ("time,a,b\n", r"no data rows"),
        ("time,a\n0,1\n", r"only 1 sample"),
        ("time,a,b\n0,1,2\n0.1,1,2\n0.2,1\n0.3,1,2\n", r"ragged rows: line 4 has 2 fields, expected 3"),
        ("time,a,b\n0,1,2\n0.1,1,2,7\n", r"ragged rows: line 3 has 4 fields, expected 3"),
        ("time,a,b,c\n0,1,2\n", r"header \(line 1\) has 4 fields but the data lines \(from line 2\) have 3"),
        # decimal commas between commas: read as twice the channels, the header skipped as a logger's note
        ("time_s,acc_01,acc_02\n" + "".join(f"{i},000000,-0,{i}12349,0,5\n" for i in range(10)),
         r"header \(line 1\) has 3 fields but the data lines \(from line 2\) have 6.*decimal commas.*';' or tabs"),
        ("1,2\n1,2,3\n4,5,6\n7,8,9\n", r"ragged rows: line 1 has 2 fields, expected 3 \(as on most lines"),
        ("a;b\n1,5;2.5\n3,5;4\n", r"line 2, column 1: not a number: '1,5' \(decimal commas and points mixed"),
        ("0,1\n1,2\n3,3\n3.5,1\n", r"no time column.*first column increases.*vary by up to"),
        ("time,a\n0,1\n0.1,abc\n0.2,3\n", r"line 3, column 2: not a number: 'abc'"),
        ("time,a\n0,1\n0.1,\n0.2,3\n", r"line 3, column 2: empty cell"),
        ("time,a,b\n0,1,2\n0.1,nan,2\n0.2,inf,nan\n", r"3 non-finite values \(2 NaN, 1 inf\); first at line 3, column 2"),
        ("time,a\n0,1\n0.1,2\n0.1,3\n", r"time column 'time' \(column 1\) is not increasing: line 4"),
        ("time,a\n0,1\n0.1,2\n0.3,3\n0.4,3\n", r"not evenly sampled"),
    ],
)
def test_csv_bad_input(tmp_path, text, pattern):
    p = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=r"bad\.csv: .*" + pattern):
        read_vibration_csv(p, sample_rate=None)


def test_csv_decimal_commas(tmp_path):
    """Numbers written 0,125 with ';' or tabs between cells (European spreadsheets and loggers) were refused."""
    p = write_csv(tmp_path / "eu.csv", "Time [ms];Acc X [m/s2];Acc Z [m/s2]\n0,000;0,125;9,81\n1,000;-1,5;9,8\n"
                                       "2,000;2;9,79\n")
    wave, sr = read_vibration_csv(p)
    assert sr == 1000.0
    np.testing.assert_allclose(wave, [[0.125, -1.5, 2.0], [9.81, 9.8, 9.79]], rtol=1e-6)
    wave, sr = read_vibration_csv(write_csv(tmp_path / "tab.csv", "0,000\t1,5\n0,005\t7\n0,010\t3\n0,015\t4\n"))
    assert sr == pytest.approx(200.0) and wave.tolist() == [[1.5, 7.0, 3.0, 4.0]]
    wave, sr = read_vibration_csv(write_csv(tmp_path / "comma.csv", "time,a\n0,1\n0.5,2\n1.0,3\n"))
    assert sr == 2.0 and wave.tolist() == [[1, 2, 3]]  # ',' between cells stays a delimiter


def test_csv_encodings_of_spreadsheets_and_european_loggers(tmp_path):
    """UTF-16 with its byte-order mark (Excel's "Unicode text") and a Windows-1252 header with units: once
    refused as "holds NUL bytes" and "not UTF-8 text"; a binary file is still refused."""
    text = "time_s;acc (m/s\u00b2);T (\u00b0C)\n0;1.5;20\n0.01;2.5;21\n0.02;3.5;22\n"
    for name, raw in (("u16.csv", text.encode("utf-16")), ("cp1252.csv", text.encode("cp1252")),
                      ("latin1.csv", text.encode("latin-1")), ("utf8.csv", text.encode("utf-8-sig"))):
        (tmp_path / name).write_bytes(raw)
        wave, sr = read_vibration_csv(tmp_path / name)
        assert sr == pytest.approx(100.0) and wave.tolist() == [[1.5, 2.5, 3.5], [20, 21, 22]], name
    (tmp_path / "bin.csv").write_bytes(b"time,a\n0,1\n\xff\xd8\xff\xe0 0,2\n")  # not UTF-8 below the header
    with pytest.raises(DataError, match=r"bin\.csv: not UTF-8 text \(byte 11\)"):
        read_vibration_csv(tmp_path / "bin.csv")
    (tmp_path / "nul.csv").write_bytes(b"time,a\n0,1\x00\x00\n")
    with pytest.raises(DataError, match="holds NUL bytes"):
        read_vibration_csv(tmp_path / "nul.csv")
    # Excel's first line naming the delimiter
    (tmp_path / "sep.csv").write_text("sep=;\ntime;a;b\n0;1;2\n0.5;3;4\n1.0;5;6\n")
    wave, sr = read_vibration_csv(tmp_path / "sep.csv")
    assert sr == 2.0 and wave.tolist() == [[1, 3, 5], [2, 4, 6]]


def test_csv_missing_and_conflicting_rate(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_vibration_csv(tmp_path / "nope.csv")
    p = write_vibration_csv(tmp_path / "a.csv", signal(1, 20), 100.0)
    assert read_vibration_csv(p, sample_rate=100.4)[1] == 100.0  # within 1 %
    with pytest.raises(DataError, match=r"time column gives 100 Hz but the sample rate 1000 Hz"):
        read_vibration_csv(p, sample_rate=1000)


def test_csv_nan_in_unused_column_is_ignored(tmp_path):
    p = write_csv(tmp_path / "u.csv", "time,a,b\n0,1,nan\n0.5,2,3\n1.0,3,4\n")
    wave, _ = read_vibration_csv(p, channels=[0])
    assert wave.tolist() == [[1, 2, 3]]
    with pytest.raises(DataError, match="1 non-finite value"):
        read_vibration_csv(p)


# ============================================================================ masks


def test_mask_round_trip_and_resize(tmp_path):
    m = crack_mask(64, 192, extent=0.5)
    p = write_mask_png(tmp_path / "m.png", m)
    same = read_mask_png(p, 64, 192)
    assert same.dtype == np.float32 and same.shape == (64, 192)
    np.testing.assert_array_equal(same, m)
    small = read_mask_png(p, 8, 24)  # other size: accepted and resized
    assert small.shape == (8, 24) and set(np.unique(small)) <= {0.0, 1.0}
    assert small.mean() == pytest.approx(0.5)
    big = read_mask_png(p, 128, 384)
    assert big.shape == (128, 384) and big.mean() == pytest.approx(0.5)


def test_masks_stretched_or_shrunk_away_are_named(tmp_path, caplog):
    import latentbridge.utils as utils

    utils._SAID.clear()  # masks of these sizes are named once per process
    square = write_mask_png(tmp_path / "square.png", crack_mask(64, 64, extent=0.5))
    with caplog.at_level("WARNING"):
        read_mask_png(square, 32, 96)
        read_mask_png(square, 32, 96)  # the same sizes: named once
        read_mask_png(write_mask_png(tmp_path / "wide.png", crack_mask(40, 120, extent=0.5)), 32, 96)  # 3:1 as 3:1
    assert caplog.text.count("is stretched") == 1
    assert "square.png: a 64x64 mask (width x height) is stretched to the model's 96x32: its aspect ratio 1" in caplog.text
    thin = np.zeros((5, 17))
    thin[2, 3:14] = 1  # a one-pixel crack in a 17x5 mask, shrunk: a pixel row covers under half of any output pixel
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert read_mask_png(write_mask_png(tmp_path / "thin.png", thin), 2, 6).sum() == 0
        assert read_mask_png(tmp_path / "thin.png", 2, 6, coverage=0.2).sum() > 0
    assert caplog.text.count("vanishes") == 1
    assert "thin.png: its crack (11 of 85 pixels) vanishes when the mask is shrunk to 6x2 at coverage 0.5" in caplog.text


def test_mask_area_averaging_rule(tmp_path):
    m = np.zeros((4, 4))
    m[0, 0:2] = 1  # top-left 2x2 block: 2 of 4 crack -> crack (>= 0.5)
    m[2, 2] = 1  # bottom-right block: 1 of 4 -> background
    p = write_mask_png(tmp_path / "m.png", m)
    np.testing.assert_array_equal(read_mask_png(p, 2, 2), [[1, 0], [0, 0]])
    np.testing.assert_array_equal(read_mask_png(p, 2, 2, coverage=0.25), [[1, 0], [0, 1]])


def test_mask_threshold(tmp_path):
    g = np.array([[0.2, 0.4, 0.6, 0.9]])
    p = write_mask_png(tmp_path / "g.png", g)
    np.testing.assert_array_equal(read_mask_png(p, 1, 4), [[0, 0, 1, 1]])
    np.testing.assert_array_equal(read_mask_png(p, 1, 4, threshold=0.3), [[0, 1, 1, 1]])
    np.testing.assert_array_equal(read_mask_png(p, 1, 4, threshold=0.7), [[0, 0, 0, 1]])


def test_mask_colour_modes(tmp_path):
    expect = crack_mask(16, 48, 0.25)
    on = expect.astype(bool)
    rgb = np.zeros((16, 48, 3), np.uint8)
    rgb[on] = (255, 255, 255)
    rgba = np.zeros((16, 48, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[on] = (255, 255, 255, 255)
    rgba_transparent_bg = np.zeros((16, 48, 4), np.uint8)
    rgba_transparent_bg[..., :3] = 255  # white but fully transparent: background
    rgba_transparent_bg[on, 3] = 255
    grey16 = (expect * 65535).astype(np.uint16)
    cases = {"rgb": rgb, "rgba": rgba, "rgba_t": rgba_transparent_bg, "g16": grey16,
             "grey": (expect * 255).astype(np.uint8)}
    for name, a in cases.items():
        p = write_mask_png(tmp_path / f"{name}.png", a)
        np.testing.assert_array_equal(read_mask_png(p, 16, 48), expect, err_msg=name)
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    # palette and 1-bit images
    Image.fromarray((expect * 255).astype(np.uint8)).convert("P").save(tmp_path / "pal.png")
    Image.fromarray((expect * 255).astype(np.uint8)).convert("1").save(tmp_path / "bw.png")
    for name in ("pal", "bw"):
        np.testing.assert_array_equal(read_mask_png(tmp_path / f"{name}.png", 16, 48), expect, err_msg=name)
    # a red crack on black, and on a transparent background: a crack (luminance 0.299 once read it as none)
    red = np.zeros((16, 48, 4), np.uint8)
    red[on] = (255, 0, 0, 255)
    p = write_mask_png(tmp_path / "red.png", red[..., :3])
    np.testing.assert_array_equal(read_mask_png(p, 16, 48), expect)
    Image.fromarray(red, mode="RGBA").save(tmp_path / "red_alpha.png")
    np.testing.assert_array_equal(read_mask_png(tmp_path / "red_alpha.png", 16, 48), expect)
    # a black crack on a transparent layer (grey + alpha and RGBA), and numpy's 0/1 array saved as it is: read as
    # no crack at all before, and the evaluation then reported a perfect IoU of 1
    black = np.zeros((16, 48, 4), np.uint8)
    black[on, 3] = 255
    Image.fromarray(black, mode="RGBA").save(tmp_path / "black_alpha.png")
    Image.fromarray(black[..., [0, 3]], mode="LA").save(tmp_path / "black_la.png")
    Image.fromarray(expect.astype(np.uint8)).save(tmp_path / "zero_one.png")
    Image.fromarray(expect.astype(np.uint16)).save(tmp_path / "zero_one16.png")
    margin = np.zeros((16, 48, 4), np.uint8)  # white on opaque black, a transparent margin: read by the levels
    margin[..., 3] = 255
    margin[on, :3] = 255
    margin[:, :2, 3] = 0
    Image.fromarray(margin, mode="RGBA").save(tmp_path / "margin.png")
    for name in ("black_alpha", "black_la", "zero_one", "zero_one16"):
        np.testing.assert_array_equal(read_mask_png(tmp_path / f"{name}.png", 16, 48), expect, err_msg=name)
    inside = expect.copy()
    inside[:, :2] = 0  # the margin is background
    np.testing.assert_array_equal(read_mask_png(tmp_path / "margin.png", 16, 48), inside)
    # stored turned, with the EXIF orientation that turns it back (as a phone or an editor saves it): read as shown
    for orientation, stored in ((3, np.rot90(expect, 2)), (6, np.rot90(expect, 1)), (2, expect[:, ::-1])):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray((stored * 255).astype(np.uint8)).save(tmp_path / "turned.png", exif=exif)
        np.testing.assert_array_equal(read_mask_png(tmp_path / "turned.png", 16, 48), expect, err_msg=orientation)



def test_two_level_masks_and_faint_overlays_read_their_crack(tmp_path, caplog):
    """Masks whose crack level is at or under half grey read as healthy without a word: a red overlay at 40 % opacity
    on a transparent layer, a dark-green crack on black, 0/4095 in a 16-bit PNG, a label map 0/2."""
    expect = crack_mask(16, 48, 0.25)
    on = expect.astype(bool)
    overlay = np.zeros((16, 48, 4), np.uint8)
    overlay[on] = (255, 0, 0, 100)
    green = np.zeros((16, 48, 3), np.uint8)
    green[on] = (0, 100, 0)
    cases = {"overlay": Image.fromarray(overlay, mode="RGBA"), "green": Image.fromarray(green, mode="RGB"),
             "twelve": Image.fromarray(on.astype(np.uint16) * 4095), "labels": Image.fromarray(on.astype(np.uint8) * 2)}
    for name, img in cases.items():
        img.save(tmp_path / f"{name}.png")
        np.testing.assert_array_equal(read_mask_png(tmp_path / f"{name}.png", 16, 48), expect, err_msg=name)
    soft = overlay.copy()  # anti-aliased edges of the overlay: under half its opacity, background
    soft[:, 12, 3] = 40
    Image.fromarray(soft, mode="RGBA").save(tmp_path / "soft.png")
    np.testing.assert_array_equal(read_mask_png(tmp_path / "soft.png", 16, 48), expect)
    faint = np.zeros((16, 48), np.uint8)  # three levels, none above half: no crack, and said so
    faint[on] = 100
    faint[:, 20] = 50
    Image.fromarray(faint).save(tmp_path / "faint.png")
    with caplog.at_level(logging.WARNING):
        assert read_mask_png(tmp_path / "faint.png", 16, 48).sum() == 0
        assert read_mask_png(tmp_path / "labels.png", 16, 48).sum() == 192
    assert caplog.text.count("none above the threshold") == 1
    assert "faint.png: its grey levels run from 0 to 0.392, none above the threshold 0.5" in caplog.text
    # an anti-aliased mask of 12 bits (three levels or more) in a 16-bit PNG: over 4095 as images are, not 65535
    # (read as no crack); an 8-bit one stored in 16 bits over 255
    soft12 = on.astype(np.uint16) * 4000
    soft12[:, 12] = 1000
    for name, a in {"soft12": soft12, "soft8in16": soft12 // 16}.items():
        Image.fromarray(a).save(tmp_path / f"{name}.png")
        np.testing.assert_array_equal(read_mask_png(tmp_path / f"{name}.png", 16, 48), expect, err_msg=name)

def test_mask_bad_files(tmp_path):
    good = write_mask_png(tmp_path / "good.png", crack_mask(64, 64))
    data = good.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.fromarray((crack_mask(8, 8) * 255).astype(np.uint8)).save(tmp_path / "jpeg.png", format="JPEG")
    for name, pattern in [("trunc", "truncated"), ("text", "not a PNG"), ("empty", "empty"),
                          ("jpeg", "not a PNG"), ("missing", "does not exist")]:
        with pytest.raises(DataError, match=rf"{name}\.png: .*{pattern}"):
            read_mask_png(tmp_path / f"{name}.png", 8, 8)


# ============================================================================ discovery


def test_discover_pairing_rules(tmp_path, caplog):
    root = make_root(tmp_path, {"Test_10": {"extent": 0.2}, "Test_2": {"extent": None}, "Test_1": {"extent": 0.0}})
    write_mask_png(root / "Labels" / "Test_99" / "orphan.png", crack_mask())  # mask, no data
    write_mask_png(root / "Labels" / "test-02" / "case.png", crack_mask())  # differs in case, separator, zeros
    write_mask_png(root / "Labels" / "stray.png", crack_mask())
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        recs = discover(root)
    assert [r.test_id for r in recs] == ["Test_1", "Test_2", "Test_10"]  # natural order
    by = {r.test_id: r for r in recs}
    assert by["Test_2"].mask_file is None and not by["Test_2"].has_mask  # never paired with test-02/Test_99
    assert by["Test_10"].mask_file.name == "mask.png" and by["Test_1"].has_mask
    text = caplog.text
    assert "Labels: 3 label(s) of no test, ignored: stray.png, test-02 (resembles Test_2: names must match exactly), " \
        "Test_99" in text, text
    assert "1 of 3 tests have no mask (no Labels/TEST/*.png): kept as unlabeled: Test_2" in text
    caplog.clear()  # a run reads its folder several times (first stage, diffusion, evaluation): warned once
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        discover(root)
    assert caplog.text == ""


def test_a_test_folder_or_recording_linked_in_twice_is_read_once(tmp_path, caplog):
    """A held-out damage state linked in under another name (``Data/Test_13 -> Test_01``) sat in training and in the
    held-out states; links to nothing and an unzipped archive's ``__MACOSX`` folder were read or said as tests."""
    root = make_root(tmp_path, {"Test_01": {"extent": 0.2}, "Test_05": {"extent": 0.1}, "Test_06": {"extent": 0.3}})
    (root / "Data" / "Test_13").symlink_to("Test_01")
    (root / "Labels" / "Test_13").symlink_to("Test_01")
    (root / "Data" / "Test_06" / "rec1.csv").symlink_to(root / "Data" / "Test_05" / "rec0.csv")
    (root / "Data" / "Test_01" / "rec1.csv").symlink_to("rec0.csv")
    (root / "Data" / "Test_05" / "gone.csv").symlink_to(tmp_path / "nothing.csv")
    (root / "Data" / "__MACOSX" / "Test_01").mkdir(parents=True)
    (root / "Data" / "__MACOSX" / "Test_01" / "._rec0.csv").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    (root / "Data" / "Test_06" / "session").mkdir()
    (root / "Data" / "Test_06" / "session" / "._rec9.csv").write_bytes(b"\x00\x05\x16\x07")
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        recs = discover(root)
    assert [r.test_id for r in recs] == ["Test_01", "Test_05", "Test_06"]
    assert {r.test_id: [p.name for p in r.csv_files] for r in recs} == {
        "Test_01": ["rec0.csv"], "Test_05": ["rec0.csv"], "Test_06": ["rec0.csv"]}
    text = caplog.text
    assert "3 test folder(s) or recording(s) reached again through links, read once" in text, text
    assert "Test_01/rec1.csv (Test_01/rec0.csv)" in text and "Test_06/rec1.csv (Test_05/rec0.csv)" in text
    assert "Test_13 (the folder Test_01)" in text
    assert "1 link(s) to nothing left out (Test_05/gone.csv)" in text
    assert "__MACOSX" not in text and "session" not in text and "label(s) of no test" not in text
    # a link named before the folder it stands for, a recording linked from an earlier test: the real ones kept (the
    # link took over the real folder, its mask dropped; the later test lost its only recording)
    other = make_root(tmp_path, {"Test_05": {"extent": 0.2}, "Test_06": {"extent": 0.1}}, name="other")
    (other / "Data" / "Test_01").symlink_to("Test_05")
    (other / "Data" / "Test_05" / "a_link.csv").symlink_to(other / "Data" / "Test_06" / "rec0.csv")
    recs = {r.test_id: r for r in discover(other)}
    assert sorted(recs) == ["Test_05", "Test_06"] and recs["Test_05"].has_mask and recs["Test_06"].has_mask
    assert [p.name for p in recs["Test_06"].csv_files] == ["rec0.csv"]
    assert [p.name for p in recs["Test_05"].csv_files] == ["rec0.csv"]


def test_a_recording_hard_linked_into_another_test_is_read_once(tmp_path, caplog):
    """A recording under a second name by a hard link (``cp -al`` of a test): read once, under the first test's name
    (it was read in both tests: a held-out state's recording in training)."""
    import os

    root = make_root(tmp_path, {"Test_01": {"extent": 0.2}, "Test_05": {"extent": 0.1}})
    os.link(root / "Data" / "Test_01" / "rec0.csv", root / "Data" / "Test_05" / "rec1.csv")
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        recs = {r.test_id: [p.name for p in r.csv_files] for r in discover(root)}
    assert recs == {"Test_01": ["rec0.csv"], "Test_05": ["rec0.csv"]}
    assert "Test_05/rec1.csv (Test_01/rec0.csv)" in caplog.text, caplog.text


def test_a_mask_in_another_image_format_is_refused_by_name(tmp_path):
    root = make_root(tmp_path, {"Test_01": {"extent": None}})
    (root / "Labels" / "Test_01").mkdir(parents=True)
    Image.fromarray((crack_mask() * 255).astype(np.uint8)).save(root / "Labels" / "Test_01" / "mask.jpg")
    with pytest.raises(DataError, match=r"Test_01: the crack mask must be a PNG.*found mask\.jpg"):
        discover(root)
    (root / "Labels" / "Test_01" / "mask.jpg").unlink()
    (root / "Labels" / "Test_01").rmdir()
    for ext in (".jpg", ".tif"):  # saved flat, named after the test: skipped, exit 0 and a model trained on no mask
        Image.fromarray((crack_mask() * 255).astype(np.uint8)).save(root / "Labels" / f"Test_01{ext}")
        with pytest.raises(DataError, match=rf"Labels/Test_01\{ext}: the crack mask must be a PNG.*found Test_01\{ext}"):
            discover(root)
        (root / "Labels" / f"Test_01{ext}").unlink()


def test_discover_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        discover(tmp_path / "nowhere")
    (tmp_path / "r1").mkdir()
    with pytest.raises(DataError, match=r"r1: no Data/ folder"):
        discover(tmp_path / "r1")
    (tmp_path / "r2" / "Data" / "Test_01").mkdir(parents=True)
    write_vibration_csv(tmp_path / "r2" / "Data" / "loose.csv", signal(1, 10), 10.0)
    with pytest.raises(DataError, match=r"r2: no tests.*1 recording lies directly"):
        discover(tmp_path / "r2")
    root = make_root(tmp_path, {"Test_01": {"extent": 0.1}}, name="r3")
    write_mask_png(root / "Labels" / "Test_01" / "second.png", crack_mask())
    with pytest.raises(DataError, match=r"Labels/Test_01: 2 PNG masks for one test"):
        discover(root)


def test_discover_reads_masks_named_after_tests_and_names_what_it_leaves(tmp_path, caplog):
    """Masks saved flat (Labels/Test_01.png) were ignored and the model trained on none, exit 0, with a warning per
    test; label folders Test_1 beside data folders Test_01 got no hint; recordings in a day sub-folder and a test of
    .txt tables were left out without being named."""
    import shutil

    root = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}, "Test_03": {"extent": 0.2}})
    for t in ("Test_01", "Test_02", "Test_03"):  # flat: Labels/Test_XX.png
        shutil.move(root / "Labels" / t / "mask.png", root / "Labels" / f"{t}.png")
        (root / "Labels" / t).rmdir()
    (root / "Data" / "Test_02" / "day2").mkdir()
    shutil.copy(next((root / "Data" / "Test_02").glob("*.csv")), root / "Data" / "Test_02" / "day2" / "rec.csv")
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        recs = discover(root)
    assert [r.mask_file.name for r in recs] == ["Test_01.png", "Test_02.png", "Test_03.png"]
    assert "Data/Test_02: recordings in its sub-folder(s) day2 are not read" in caplog.text
    # every label a near miss of its test (leading zeros): refused, naming the resemblance
    for t in ("Test_01", "Test_02", "Test_03"):
        (root / "Labels" / f"{t}.png").rename(root / "Labels" / f"Test_{int(t[5:])}.png")
    with pytest.raises(DataError, match=r"Labels: none of its 3 masks pairs with a test of Data/: Test_1\.png \(resembles "
                                        r"Test_01: names must match exactly\)"):
        discover(root)
    # a test of .txt tables: named, and its label is not said to lack a data folder
    root = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}}, name="txt")
    for f in (root / "Data" / "Test_02").glob("*.csv"):
        f.rename(f.with_suffix(".txt"))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        assert [r.test_id for r in discover(root)] == ["Test_01"]
    assert re.search(r"Data: 1 folder\(s\) without recordings \(CSV, MATLAB \.mat or audio files: .*\) skipped: "
                     r"Test_02 \(it holds rec0\.txt\)", caplog.text), caplog.text
    assert "Test_02 (its data folder holds no recordings read here)" in caplog.text, caplog.text


# ============================================================================ windows


def test_build_windows_counts_starts_masks(tmp_path):
    root = make_root(tmp_path, {
        "Test_01": {"extent": 0.0, "n": 1000},  # 10 s -> 9 windows of 2 s every 1 s
        "Test_02": {"extent": 0.25, "n": 1050, "files": 2},  # trailing partial window dropped: 9 + 9
        "Test_03": {"extent": None, "n": 500},  # unlabeled: 4 windows
    })
    d = build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert d.tests == ["Test_01", "Test_02", "Test_03"] and d.sample_rate == SR
    assert len(d) == 9 + 18 + 4
    assert np.bincount(d.test_index).tolist() == [9, 18, 4]
    assert d.waves.shape == (31, 3, 200) and d.waves.dtype == np.float32
    np.testing.assert_allclose(d.starts_s[d.test_index == 0], np.arange(9.0))
    np.testing.assert_allclose(d.starts_s[d.test_index == 1], np.r_[np.arange(9.0), np.arange(9.0)])
    # the windows are the recording's samples
    x = signal(3, 1000, seed=0)
    np.testing.assert_allclose(d.waves[3], centred(x)[:, 300:500], rtol=1e-6, atol=1e-5)
    assert set(d.sources[d.test_index == 1]) == {"Data/Test_02/rec0.csv", "Data/Test_02/rec1.csv"}
    # masks and labels
    assert d.masks.shape == (31, 1, 8, 24) and set(np.unique(d.masks)) <= {0.0, 1.0}
    assert d.has_mask.tolist() == [True] * 27 + [False] * 4
    assert np.all(d.masks[~d.has_mask] == 0) and np.all(np.isnan(d.extent[~d.has_mask]))
    np.testing.assert_allclose(d.extent[d.test_index == 1], 0.25)
    assert np.all(d.extent[d.test_index == 0] == 0)
    assert d.test_has_mask().tolist() == [True, True, False]
    np.testing.assert_array_equal(d.test_ids[:1], ["Test_01"])


def test_matlab_recordings_of_a_test(tmp_path):
    """A test's recordings may be MATLAB files (as a DAQ saves them: the sensors in a struct beside the rate): the
    same windows as the same samples in a CSV; vibration.channels picks from them; a channel out of range is named."""
    from scipy.io import savemat

    root = make_root(tmp_path, {"Test_01": {"extent": 0.0, "n": 1000}, "Test_02": {"extent": 0.25, "n": 1000}})
    x = signal(3, 1000, seed=10)  # Test_02's CSV
    (root / "Data" / "Test_02" / "rec0.csv").unlink()
    savemat(root / "Data" / "Test_02" / "rec0.mat", {"daq": {"acc": x.T, "fs": SR}})
    d = build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert np.bincount(d.test_index).tolist() == [9, 9] and set(d.sources[d.test_index == 1]) == {"Data/Test_02/rec0.mat"}
    np.testing.assert_allclose(d.waves[d.test_index == 1][2], centred(x)[:, 200:400], rtol=1e-6, atol=1e-5)
    d = build_windows(root, vib(channels=[2, 0]), cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(d.waves[d.test_index == 1][0], centred(x[[2, 0]])[:, :200], rtol=1e-6, atol=1e-5)
    with pytest.raises(DataError, match=r"rec0\.mat: channel 5 out of range: the file has 3 channels \(valid: 0\.\.2\)"):
        bridge.read_recording(root / "Data" / "Test_02" / "rec0.mat", vib(channels=[5]))
    with pytest.raises(DataError, match=r"rec0\.mat: channels: 0 picked more than once \(\[0, 2, 0\]\): pick each "
                                        r"channel once"):  # one sensor trained on twice, without a word
        bridge.read_recording(root / "Data" / "Test_02" / "rec0.mat", vib(channels=[0, 2, 0]))


def test_matlab_files_without_matlab_s_header_or_without_scipy(tmp_path, monkeypatch):
    """An HDF5 file of the sensors written by another tool (no MATLAB header) failed with scipy's "Unknown mat file
    type, version 0, 0"; it is read as MATLAB 7.3 files are. Without scipy (a small device's edge scorer) a .mat file
    is named with what reads it (it was an ImportError blamed on the model), and an HDF5 one read with h5py alone."""
    import builtins

    import h5py

    from latentbridge.io.matfile import read_mat_recording

    x = signal(3, 1000, seed=4)
    with h5py.File(tmp_path / "plain.mat", "w") as f:
        f["acc"] = x  # (3, T) as stored: MATLAB's column-major transposed back on reading
        f["fs"] = np.array([[float(SR)]])
    data, rate = read_mat_recording(tmp_path / "plain.mat")
    assert rate == SR and data.shape == (1000, 3)
    np.testing.assert_allclose(data, x.T, rtol=1e-6)
    from scipy.io import savemat

    savemat(tmp_path / "v5.mat", {"acc": x.T, "fs": float(SR)})
    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name.startswith("scipy") else real(name, *a, **k))
    with pytest.raises(DataError, match=r"v5\.mat: reading a \.mat file needs the scipy package"):
        read_mat_recording(tmp_path / "v5.mat")
    # an HDF5 file (MATLAB 7.3, or none of MATLAB's) is read with h5py alone (it was refused as needing scipy)
    data, rate = read_mat_recording(tmp_path / "plain.mat")
    assert rate == SR and data.shape == (1000, 3)


def test_inverted_masks_are_named(tmp_path, caplog):
    root = make_root(tmp_path, {"Test_01": {"extent": 0.3}, "Test_02": {"extent": 0.0}})
    for mask in (root / "Labels").rglob("*.png"):  # black crack on white
        write_mask_png(mask, 1.0 - read_mask_png(mask, *Image.open(mask).size[::-1]))
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert re.search(r"the masks are (8|9)\d% crack on average: inverted \(crack drawn dark on white\)\?", caplog.text)


def test_every_mask_empty_is_named(tmp_path, caplog):
    """Masks read as empty in every state (cracks drawn in a way not read as crack): a warning, not a model
    trained to draw nothing and an evaluation reporting IoU 1 of empty masks."""
    root = make_root(tmp_path, {"Test_01": {"extent": 0.0}, "Test_02": {"extent": 0.0}, "Test_03": {"extent": 0.3}})
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert "crack masks are empty" not in caplog.text  # one state with a crack is enough
    for mask in (root / "Labels").rglob("*.png"):
        write_mask_png(mask, np.zeros_like(read_mask_png(mask, *Image.open(mask).size[::-1])))
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        build_windows(root, vib(), cache_dir=tmp_path / "cache2")
    assert "all 3 crack masks are empty" in caplog.text, caplog.text
    # cracks one pixel thin in masks 8 times the model's size: they vanish in the shrinking, said once for the folder
    # (a line a mask), and the masks read empty for that reason (the warning asked whether they were drawn brightly)
    for mask in (root / "Labels").rglob("*.png"):
        thin = np.zeros((64, 192), np.uint8)
        thin[:, 100] = 255
        write_mask_png(mask, thin)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_windows(root, vib(), cache_dir=tmp_path / "cache3")
    assert caplog.text.count("vanishes") == 1 and "the crack of 3 mask(s) vanishes when shrunk to the model's 24x8 " \
        "at vibration.mask_coverage = 0.25" in caplog.text and "Labels/Test_01/mask.png" in caplog.text, caplog.text
    assert "all 3 crack masks are empty: a model learns to draw no crack, and the IoU of empty masks says nothing. " \
           "The cracks of 3 vanish at vibration.mask_coverage = 0.25 (above)" in caplog.text


def test_mismatched_channel_counts_are_an_error(tmp_path):
    root = make_root(tmp_path, {"Test_01": {"n_ch": 3}, "Test_02": {"n_ch": 2}, "Test_03": {"n_ch": 3}})
    with pytest.raises(DataError, match=r"different channel counts.*3: Test_01, Test_03; 2: Test_02"):
        build_windows(root, vib(), cache_dir=tmp_path / "cache")
    d = build_windows(root, vib(channels=[0, 1]), cache_dir=tmp_path / "cache")  # common channels
    assert d.n_channels == 2


def test_sample_rates_must_agree_or_be_resampled(tmp_path, caplog):
    root = make_root(tmp_path, {"Test_01": {"sr": 100.0, "n": 1000}, "Test_02": {"sr": 200.0, "n": 2000}})
    with pytest.raises(DataError, match=r"different sample rates.*resample_to"):
        build_windows(root, vib(), cache_dir=tmp_path / "cache")
    with caplog.at_level("WARNING"):  # the rates read and the resampling are said (they once were silent)
        d = build_windows(root, vib(resample_to=50.0), cache_dir=tmp_path / "cache")
    assert d.sample_rate == 50.0 and d.waves.shape[-1] == 100
    assert np.bincount(d.test_index).tolist() == [9, 9]
    assert re.search(r": 2 recordings at 100 Hz x1, 200 Hz x1, resampled to 50 Hz \(the recordings' rates differ: "
                     r"\S+Test_02\S+ is one of the others\)", caplog.text)
    # upsampled: the top of the band is empty in those recordings, said (25-Hz files for a 100-Hz model went through
    # without a word, their spectra empty above 12.5 Hz where the model's modes lay)
    caplog.clear()
    with caplog.at_level("WARNING"):
        build_windows(root, vib(resample_to=150.0, n_fft=32), cache_dir=tmp_path / "cache")
    assert "1 recording(s) upsampled to 150 Hz (from 100 Hz at the lowest): nothing above 50 Hz in them, 33 % of " \
           "the band the windows hold empty" in caplog.text, caplog.text
    assert "(a time column in milliseconds read as seconds gives such a rate: name it so, e.g. 'time_ms')" \
        in caplog.text  # (a 25.6-kHz logger's times in ms under a bare 'time' read as 25.6 Hz, trained for 93 s)


def test_a_headerless_time_column_written_last(tmp_path, caplog):
    """A logger without a header that writes the time last (x, y, z, t) had its time read as a fourth sensor, a
    ramp from 0 to 3 s, with the rate given; no vibration steps evenly, so the last column is the time, said."""
    x = signal(3, 300)
    t = np.arange(300) / 250.0
    p = table_csv(tmp_path / "last.csv", np.column_stack([x.T, t]), header=None)
    with caplog.at_level("WARNING"):
        wave, sr = read_vibration_csv(p)
    assert wave.shape == (3, 300) and sr == 250.0
    np.testing.assert_allclose(wave, x, atol=1e-4)
    assert "last.csv: the last column steps evenly: read as the time in s" in caplog.text


def test_rate_of_a_rounded_time_column(tmp_path):
    # 1/2048 s written with 6 decimals is 0.000488 s: 1 / median step read 2049.18 Hz
    x = signal(2, 4096)
    t = np.round(np.arange(4096) / 2048.0, 6)
    p = table_csv(tmp_path / "r.csv", np.column_stack([t, x.T]), header="time,a,b")
    assert read_vibration_csv(p)[1] == 2048.0


def test_a_rate_that_cannot_carry_the_windows_is_refused(tmp_path):
    # a time column in milliseconds without a header reads as seconds: 0.2 Hz, which resample_to=100 would
    # upsample 500 times (out of memory on 20-s recordings); a rate given in kHz likewise
    root = make_root(tmp_path, {"Test_01": {"sr": 100.0, "n": 1000}})
    csv = next((root / "Data" / "Test_01").glob("*.csv"))
    x = signal(2, 4000)
    table_csv(csv, np.column_stack([np.arange(4000) * 5.0, x.T]))
    with pytest.raises(DataError, match=r"rec0\.csv: sample rate 0\.2 Hz.*would hold 2 samples.*milliseconds"):
        build_windows(root, vib(window_s=10.0, hop_s=5.0), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"rec0\.csv: sample rate 0\.2 Hz.*upsample it 500 times.*milliseconds"):
        build_windows(root, vib(window_s=200.0, hop_s=100.0, resample_to=100.0), cache_dir=tmp_path / "cache")
    from latentbridge.data import bridge_rates

    assert bridge_rates.MIN_WINDOW_SAMPLES == 16 and bridge_rates.MAX_UPSAMPLING == 8.0
    # a rate given (no time column): the hint leaves the time column out
    table_csv(csv, x.T)
    with pytest.raises(DataError, match=r"sample rate 0\.2 Hz.*would hold 2 samples") as e:
        build_windows(root, vib(window_s=10.0, hop_s=5.0, sample_rate=0.2), cache_dir=tmp_path / "cache")
    assert "milliseconds" not in str(e.value) and "is in Hz" in str(e.value)


def test_config_and_length_errors(tmp_path, caplog):
    root = make_root(tmp_path, {"Test_01": {"n": 150}})
    with pytest.raises(DataError, match=r"Data/Test_01: every recording of the test is shorter than one 2-s window "
                                        r"\(vibration.window_s; the longest 1\.5 s\): give longer recordings"):
        build_windows(root, vib(), cache_dir=tmp_path / "cache")
    # a short recording beside others of its test: left out, named with every other (one stopped the training)
    mixed = make_root(tmp_path, {"Test_01": {"n": 600, "files": 2}, "Test_02": {"n": 600}}, name="mixed")
    write_vibration_csv(mixed / "Data" / "Test_01" / "stray.csv", signal(3, 50), SR)
    with caplog.at_level("WARNING"):
        d = build_windows(mixed, vib(), cache_dir=tmp_path / "cache")
    assert "1 recording(s) shorter than one 2-s window (vibration.window_s) left out: Data/Test_01/stray.csv " \
           "(0.5 s)" in caplog.text, caplog.text
    assert "Data/Test_01/stray.csv" not in set(d.sources) and len(set(d.sources)) == 3
    with pytest.raises(ConfigError, match="n_fft"):
        build_windows(root, vib(window_s=1.0, n_fft=128), cache_dir=tmp_path / "cache")
    bare = tmp_path / "bare"
    write_vibration_csv(bare / "Data" / "Test_01" / "a.csv", signal(2, 400), time_column=False)
    with pytest.raises(DataError, match=r"a\.csv: no time column"):
        build_windows(bare, vib(), cache_dir=tmp_path / "cache")
    assert len(build_windows(bare, vib(sample_rate=100), cache_dir=tmp_path / "cache")) == 3


# ============================================================================ split


def test_split_keeps_tests_apart_and_stratifies(tmp_path, caplog):
    root = make_root(tmp_path, {
        "Test_01": {"extent": 0.0, "n": 400}, "Test_02": {"extent": 0.0, "n": 400},
        "Test_03": {"extent": 0.2, "n": 400}, "Test_04": {"extent": 0.4, "n": 400},
        "Test_05": {"extent": None, "n": 400}, "Test_06": {"extent": None, "n": 400},
    })
    d = build_windows(root, vib(), cache_dir=tmp_path / "cache")
    for seed in range(6):
        train, test = d.split(0.5, seed)
        assert set(train.tests).isdisjoint(test.tests)
        assert set(train.tests) | set(test.tests) == set(d.tests)
        assert {"Test_05", "Test_06"} <= set(train.tests)
        assert len(test.tests) == 2 and test.has_mask.all()
        for part in (train, test):  # healthy and damaged on each side
            ext = part.test_extent()
            assert np.any(ext == 0) and np.any(ext > 0)
        assert len(train) + len(test) == len(d)
        assert np.all(np.asarray(test.tests)[test.test_index] == test.test_ids)
    assert d.split(0.5, 1)[1].tests == d.split(0.5, 1)[1].tests  # seeded
    train, test = d.split(0.0, 0)
    assert len(test) == 0 and train.tests == d.tests
    train, test = d.split(0.9, 0, test_ids=["Test_04"])
    assert test.tests == ["Test_04"] and "Test_04" not in train.tests
    np.testing.assert_array_equal(test.waves, d.waves[d.test_index == 3])
    with pytest.raises(ConfigError, match="Test_05 has no mask"):
        d.split(0.5, 0, test_ids=["Test_05"])
    with pytest.raises(ValueError, match="unknown test 'Test_77'"):
        d.subset_tests(["Test_77"])
    sub = d.subset_tests(["Test_03", "Test_01"])
    assert sub.tests == ["Test_03", "Test_01"] and sub.test_index[0] == 0
    assert sub.waves.shape[0] == sub.sources.shape[0] == len(sub) == 2 * 3
    np.testing.assert_array_equal(sub.waves[:3], d.waves[d.test_index == 2])
    one = d.subset_tests(["Test_03", "Test_05"])  # what a test split of two labelled states leaves for validation
    with caplog.at_level("WARNING"):
        assert len(one.split(0.2, 0, held_for="validation")[1]) == 0
    assert "only 1 labelled test(s) left: nothing held out for validation" in caplog.text, caplog.text


# ============================================================================ cache


def test_cache_reused_and_invalidated(tmp_path, monkeypatch):
    root = make_root(tmp_path, {"Test_01": {"extent": 0.1, "n": 400}, "Test_02": {"extent": None, "n": 400}})
    cache = tmp_path / "cache"
    first = build_windows(root, vib(), cache_dir=cache)
    folder = first.cache_path
    assert folder is not None and folder.parent == cache
    names = {p.name for p in folder.iterdir()}
    assert names == {"masks.npy", "segments.npy", "test_ids.npy", "has_mask.npy", "starts_s.npy", "sources.npy",
                     "manifest.json"}  # no spectrograms: nothing read them
    import json

    man = json.loads((folder / "manifest.json").read_text())
    assert man["sample_rate"] == SR and man["inputs"]["vibration"]["window_s"] == 2.0
    assert {f["path"] for f in man["inputs"]["files"]} >= {"Data/Test_01/rec0.csv", "Labels/Test_01/mask.png"}
    assert man["shapes"]["segments"] == [len(first), 3, 200] and "spectrograms" not in man["shapes"]
    assert man["code_version"].endswith(f"+bridge{bridge.CACHE_VERSION}") and bridge.CACHE_VERSION == 8
    assert np.load(folder / "test_ids.npy").dtype.kind == "U"

    def boom(*a, **k):
        raise AssertionError("read a file although the cache is valid")

    with monkeypatch.context() as m:
        m.setattr(bridge, "read_vibration_csv", boom)
        m.setattr(bridge, "read_masks", boom)
        again = build_windows(root, vib(), cache_dir=cache)
        assert again.cache_path == folder
        for name in ("waves", "masks", "has_mask", "test_index", "starts_s", "sources"):
            np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
        np.testing.assert_array_equal(again.extent, first.extent)  # NaN positions equal too
        assert again.tests == first.tests and isinstance(again, BridgeData)
        with pytest.raises(AssertionError, match="read a file"):  # another config: another key
            build_windows(root, vib(hop_s=0.5), cache_dir=cache)

    # an empty .npy (a power loss after the rename) or a manifest without its tests: rebuilt, every run failed
    # (EOFError, KeyError: 'tests' outside the guard)
    (folder / "segments.npy").write_bytes(b"")
    np.testing.assert_array_equal(build_windows(root, vib(), cache_dir=cache).waves, first.waves)
    man = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({k: v for k, v in man.items() if k != "tests"}))
    np.testing.assert_array_equal(build_windows(root, vib(), cache_dir=cache).waves, first.waves)

    csv = root / "Data" / "Test_01" / "rec0.csv"
    write_vibration_csv(csv, signal(3, 400, seed=42), SR)
    st = csv.stat()
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = build_windows(root, vib(), cache_dir=cache)
    assert changed.cache_path != folder
    assert not np.allclose(changed.waves[0], first.waves[0])
    np.testing.assert_allclose(changed.waves[0], centred(signal(3, 400, seed=42))[:, :200], rtol=1e-6, atol=1e-5)

    nocache = tmp_path / "nocache"
    build_windows(root, vib(), cache_dir=nocache, use_cache=False)
    assert not nocache.exists()


def test_masks_saved_in_16_bits_or_colour_as_0_1_and_a_few_inverted_ones(tmp_path, caplog):
    """A uint16 copy of an 8-bit mask (0/255) and an RGB 0/1 array read as empty; three inverted masks among twelve
    went unnamed (only the average was checked)."""
    from latentbridge.io.masks import read_mask_png

    m = crack_mask()
    Image.fromarray((m * 255).astype(np.uint16)).save(tmp_path / "m16.png")
    Image.fromarray(np.stack([m.astype(np.uint8)] * 3, axis=-1), "RGB").save(tmp_path / "rgb01.png")
    h, w = m.shape
    for name in ("m16.png", "rgb01.png"):
        np.testing.assert_array_equal(read_mask_png(tmp_path / name, h, w), m.astype(np.float32))
    root = make_root(tmp_path, {f"Test_{i:02d}": {"extent": 0.1} for i in range(1, 7)})
    mask = root / "Labels" / "Test_02" / "mask.png"
    Image.fromarray((255 - np.asarray(Image.open(mask).convert("L"))).astype(np.uint8)).save(mask)
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert "1 mask(s) more than half crack, as if drawn dark on white (the others are not): Test_02" in caplog.text


def test_a_column_named_with_its_unit_is_the_column_without_one():
    """A logger's units row joins each name to its unit (x [g]): the same sensor as x, in either header, where a model's
    columns are read from a recording (``units``); not as x of another unit, nor where two columns would take one name.
    A bridge folder's columns are matched as written."""
    from latentbridge.io.columns import by_name, model_order

    assert by_name(["x [g]", "y [g]", "z [g]"], ["x", "y", "z"], units=True) == [0, 1, 2]
    assert by_name(["x [g]", "y [g]", "z [g]"], ["x", "y", "z"]) is None
    assert by_name(["z", "x", "y"], ["x [g]", "y [g]", "z [g]"], units=True) == [1, 2, 0]
    assert by_name(["t [s]", "z [g]", "x [g]", "y [g]"], ["x [g]", "y", "z"], units=True) == [2, 3, 1]
    assert by_name(["x [m/s2]", "y [m/s2]"], ["x [g]", "y [g]"], units=True) is None  # other units: other readings
    assert by_name(["x [g]", "x [m/s2]"], ["x"], units=True) is None  # which one?
    assert by_name(["temp [C]", "rpm"], ["x", "y"], units=True) is None
    with pytest.raises(DataError, match=r"without ay \[g\]: the model reads"):  # ax is there, named with its unit
        model_order(["ax", "by [m/s2]"], ["ax [g]", "ay [g]"], "f.csv", strict=True)


def test_the_same_sensors_in_other_units_are_named_so(caplog):
    """A model of 'ax [m/s2]', 'ay [m/s2]' reading a logger's 'ay [g]', 'ax [g]' said "named otherwise ... read by
    position" (the axes swapped, the units never named): now read by name, the units said."""
    from latentbridge.io.columns import model_order

    with caplog.at_level("WARNING"):
        idx = model_order(["ay [g]", "ax [g]"], ["ax [m/s2]", "ay [m/s2]"], "site/rec.csv")
    assert idx == [1, 0]
    assert "site/rec.csv: sensor columns in other units (ay [g], ax [g]) than the model's training recordings (ax " \
           "[m/s2], ay [m/s2]): read as the same sensors, by name, and their values as they are, in the model's " \
           "units; convert them to those (1 g = 9.81 m/s2)" in caplog.text, caplog.text
    assert model_order(["ax [g]", "ay [g]"], ["ax [m/s2]", "ay [m/s2]"], "site/b.csv") is None  # same order
    with caplog.at_level("WARNING"):  # a header naming a column twice was "named otherwise"
        assert model_order(["ax", "ax", "az"], ["ax", "ay", "az"], "site/twice.csv") is None
    assert "site/twice.csv: its header names ax more than once, so its sensor columns are read by position as the " \
           "model's (ax, ay, az)" in caplog.text, caplog.text


def test_sensor_columns_are_matched_by_name_across_recordings(tmp_path, caplog):
    """A logger writing its columns in another order (ch2, ch1, ch0) had its channels swapped without a word."""
    root = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}})
    f = next((root / "Data" / "Test_02").glob("*.csv"))
    lines = f.read_text().splitlines()
    cells = [ln.split(",") for ln in lines]
    order = [0, 3, 2, 1]  # time first, the sensors reversed, header and values alike
    f.write_text("\n".join(",".join(c[j] for j in order) for c in cells) + "\n")
    expected, _ = read_vibration_csv(f)
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        d = build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert "1 recording(s) list their sensor columns in another order than Data/Test_01/rec0.csv (ch0, ch1, ch2): " \
           "read in its order, by name: Test_02/rec0.csv" in caplog.text, caplog.text
    np.testing.assert_allclose(d.waves[d.test_index == 1][0], centred(expected)[::-1, :d.waves.shape[-1]], atol=1e-5)
    # names that differ are read by position, and named
    f.write_text(f.read_text().replace("ch2,ch1,ch0", "x,y,z", 1))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        build_windows(root, vib(), cache_dir=tmp_path / "cache2")
    assert "name their sensor columns otherwise than Data/Test_01/rec0.csv (ch0, ch1, ch2): read by position: " \
           "Test_02/rec0.csv (x, y, z)" in caplog.text, caplog.text


def test_matlab_channels_are_matched_by_name_as_csv_columns(tmp_path, caplog):
    """A test saved as a .mat file by a rig that names its channels with the file's number and in its own order
    (X002_ch2, X002_ch1, X002_ch0) was read by position: its channels swapped against the CSVs' ch0, ch1, ch2. Now
    read in their numbers' order (io.matfile.number_order), as the CSVs'; by name where the order differs otherwise
    (tests/test_multi_axis.py: DE/FE channels)."""
    from scipy.io import savemat

    root = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}})
    plain = build_windows(root, vib(), cache_dir=tmp_path / "cache")
    f = root / "Data" / "Test_02" / "rec0.csv"
    wave, _ = read_vibration_csv(f)
    savemat(f.with_suffix(".mat"), {**{f"X002_ch{c}": wave[c][:, None] for c in (2, 1, 0)}, "fs": float(SR)})
    f.unlink()
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        d = build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert "another order" not in caplog.text, caplog.text
    assert d.channel_names == ["ch0", "ch1", "ch2"]
    np.testing.assert_allclose(d.waves, plain.waves, atol=1e-5)


def test_a_model_of_some_sensor_columns_reads_them_by_name(tmp_path, caplog):
    """A run trained with vibration.channels=[0, 2] (columns ch0, ch2) read another logger's recordings (ch2, ch1,
    ch0) at positions 0 and 2: ch2 fed in as ch0 although the file holds ch0 (a warning said 'read by position');
    a file holding exactly ch0, ch2 was refused ('channel 2 out of range'). Taken by name, both read as the model's."""
    from latentbridge.tasks.multimodal import windows_of_recording

    train = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}}, name="train")
    picked = build_windows(train, vib(channels=[0, 2]), cache_dir=tmp_path / "cache")
    assert picked.channel_names == ["ch0", "ch2"]
    other = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}}, name="other")
    plain = build_windows(other, vib(channels=[0, 2]), cache_dir=tmp_path / "cache")
    exact = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}}, name="exact")
    for f in (other / "Data").glob("*/*.csv"):  # another logger: the columns reversed
        cells = [ln.split(",") for ln in f.read_text().splitlines()]
        f.write_text("\n".join(",".join(c[j] for j in (0, 3, 2, 1)) for c in cells) + "\n")
    for f in (exact / "Data").glob("*/*.csv"):  # only the model's two sensors
        cells = [ln.split(",") for ln in f.read_text().splitlines()]
        f.write_text("\n".join(",".join(c[j] for j in (0, 1, 3)) for c in cells) + "\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for folder in (other, exact):
            d = build_windows(folder, vib(channels=[0, 2]), cache_dir=tmp_path / "cache", channel_names=["ch0", "ch2"])
            assert d.channel_names == ["ch0", "ch2"]
            np.testing.assert_allclose(d.waves, plain.waves, atol=1e-6)
    assert "read by position" not in caplog.text, caplog.text
    spec = SimpleNamespace(n_channels=2, sample_rate=SR, window_s=2.0, hop_s=1.0)
    one = windows_of_recording(vib(channels=[0, 2]), spec, other / "Data" / "Test_01" / "rec0.csv", ["ch0", "ch2"])[0]
    np.testing.assert_allclose(one, plain.waves[plain.test_index == 0][:len(one)], atol=1e-6)


def test_new_recordings_keep_their_own_rate_and_the_training_rate_is_said(tmp_path, caplog):
    """A run trained on CSVs without a time column (vibration.sample_rate=100) read another folder's files with a time
    column at 200 Hz as refused ('the time column gives 200 Hz but the sample rate 100 Hz was given; drop the given
    rate', a rate the user never gave), and files without one at the training's 100 Hz without a word. Now a file's
    own rate wins, the training's is the rate of files that give none, said; --sample-rate still checks."""
    from latentbridge.tasks.multimodal import bridge_data, windows_of_recording

    cfg = SimpleNamespace(vibration=vib(sample_rate=SR), data=SimpleNamespace(root=None, cache_dir=tmp_path / "c"))
    timed = make_root(tmp_path, {"Test_01": {"extent": 0.1, "sr": 2 * SR, "n": 2000}}, name="timed")
    d = bridge_data(cfg, str(timed), new=True)
    assert d.sample_rate == 2 * SR
    with pytest.raises(DataError, match="the time column gives 200 Hz but the sample rate 100 Hz was given"):
        bridge_data(cfg, str(timed), sample_rate=SR, new=True)  # given now: checked
    bare = tmp_path / "bare"
    write_vibration_csv(bare / "Data" / "Test_01" / "rec.csv", signal(3, 1000), SR, time_column=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        d = bridge_data(cfg, str(bare), new=True)
    assert d.sample_rate == SR and "bare: 1 of 1 recording(s) give no sample rate (no time column): read at 100 Hz, " \
        "the rate the model's training recordings were given (vibration.sample_rate); --sample-rate gives theirs" \
        in caplog.text, caplog.text
    spec = SimpleNamespace(n_channels=3, sample_rate=SR, window_s=2.0, hop_s=1.0)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        windows_of_recording(cfg.vibration, spec, bare / "Data" / "Test_01" / "rec.csv")
    assert "rec.csv: 1 of 1 recording(s) give no sample rate" in caplog.text, caplog.text


def test_picked_channels_are_read_by_name_where_a_recording_lacks_a_column(tmp_path, caplog):
    """vibration.channels picks positions among the columns most recordings name; a logger that lost a column (ch1)
    had, read by position, every channel after the gap shifted to the next sensor without a word. The picked columns
    are read by name; a recording lacking one of them is refused, naming it and the column."""
    root = make_root(tmp_path, {"Test_01": {"extent": 0.1, "n_ch": 4}, "Test_02": {"extent": 0.0, "n_ch": 4},
                                "Test_03": {"extent": 0.2, "n_ch": 4}})
    plain = build_windows(root, vib(), cache_dir=tmp_path / "c")
    f = root / "Data" / "Test_02" / "rec0.csv"
    f.write_text("\n".join(",".join(c[:2] + c[3:]) for c in (ln.split(",") for ln in f.read_text().splitlines()))
                 + "\n")  # time, ch0, ch2, ch3
    with caplog.at_level(logging.WARNING):
        d = build_windows(root, vib(channels=[0, 2, 3]), cache_dir=tmp_path / "c")
    assert d.channel_names == ["ch0", "ch2", "ch3"]
    np.testing.assert_allclose(d.waves, plain.waves[:, [0, 2, 3]], atol=1e-5)
    assert "1 recording(s) hold other sensor columns than Data/Test_01/rec0.csv (ch0, ch1, ch2, ch3) (one lacking, " \
           "or one more): the columns picked by vibration.channels read by name: Test_02/rec0.csv" in caplog.text
    with pytest.raises(DataError, match=r"Test_02/rec0\.csv: lacks the sensor column\(s\) ch1 picked by "
                                        r"vibration\.channels \[1, 2\]"):
        build_windows(root, vib(channels=[1, 2]), cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match=r"rec0\.csv: channel 4 out of range: the file has 4 sensor columns"):
        build_windows(root, vib(channels=[4]), cache_dir=tmp_path / "c")


def test_recordings_with_more_columns_are_read_by_the_common_ones(tmp_path, caplog):
    """Tests whose logger also wrote a temperature (time,ch0,ch1,ch2,temp) beside tests without it were refused at
    training ('tests have different channel counts', advising positional vibration.channels), though evaluate --data
    left such a column out by name. The columns every file names are read, the others left out and named."""
    root = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}, "Test_03": {"extent": 0.2}})
    plain = build_windows(root, vib(), cache_dir=tmp_path / "c")
    f = next((root / "Data" / "Test_02").glob("*.csv"))
    cells = [ln.split(",") for ln in f.read_text().splitlines()]
    f.write_text("\n".join(",".join(c[:2] + ["temp" if i == 0 else "21.5"] + c[2:]) for i, c in enumerate(cells))
                 + "\n")
    with caplog.at_level(logging.WARNING):
        d = build_windows(root, vib(), cache_dir=tmp_path / "c")
    assert d.channel_names == ["ch0", "ch1", "ch2"]
    np.testing.assert_allclose(d.waves, plain.waves, atol=1e-5)
    assert "1 recording(s) hold more columns than Data/Test_01/rec0.csv (ch0, ch1, ch2): the others left out, its " \
           "columns read by name: Test_02/rec0.csv" in caplog.text, caplog.text
    from latentbridge.io.columns import common_columns

    assert common_columns({"a": ["x", "y"], "b": ["x", "y", "t"], "c": ["y", "x"]}, extra=True) == (["x", "y"], [])
    assert common_columns({"a": ["x", "y"], "b": ["x", "t", "u"]}, extra=True) == (None, [])  # none every file names
    assert common_columns({"a": ["x", "y"], "b": ["x", "y", "z"]}, extra=True) == (None, [])  # a tie: a sensor lost?
    # an anomaly model: the set most files name, a file naming more read by it; one lacking a column named
    assert common_columns({"a": ["x", "y"], "b": ["x", "y", "t"], "c": ["x", "y"]}) == (["x", "y"], [])
    assert common_columns({"a": ["x", "y"], "b": ["x"], "c": ["y", "x"]}) == (["x", "y"], ["b (x; without y)"])
    # most tests with the temperature: a trained model's columns are the reference (evaluate --data was refused,
    # 'tests have different channel counts ... when training', though each file alone was read)
    for t in ("Test_01",):  # two tests of three with it
        f = next((root / "Data" / t).glob("*.csv"))
        cells = [ln.split(",") for ln in f.read_text().splitlines()]
        f.write_text("\n".join(",".join(c[:2] + ["temp" if i == 0 else "21.5"] + c[2:]) for i, c in enumerate(cells))
                     + "\n")
    with pytest.raises(DataError, match="tests have different channel counts"):
        build_windows(root, vib(), cache_dir=tmp_path / "c")
    d = build_windows(root, vib(), cache_dir=tmp_path / "c", channel_names=["ch0", "ch1", "ch2"])
    np.testing.assert_allclose(d.waves, plain.waves, atol=1e-5)


def test_one_column_picked_of_recordings_in_two_orders_is_no_file_per_sensor(tmp_path):
    """vibration.channels=[0] of a test whose two recordings list their columns in different orders noted one
    name per file (a, b) and was refused as 'one CSV per sensor', though each file holds three."""
    root = make_root(tmp_path, {"Test_01": {"extent": 0.1, "files": 2}, "Test_02": {"extent": 0.0}})
    f = root / "Data" / "Test_01" / "rec1.csv"
    cells = [ln.split(",") for ln in f.read_text().splitlines()]
    f.write_text("\n".join(",".join(c[j] for j in (0, 2, 1, 3)) for c in cells) + "\n")
    assert build_windows(root, vib(channels=[0]), cache_dir=tmp_path / "c").n_channels == 1


def test_one_csv_per_sensor_is_refused(tmp_path):
    """A logger's export of one CSV per sensor (Test_01/acc_01.csv ... acc_03.csv) trained a model of one channel
    pooling every sensor, with only 'name their sensor columns otherwise: read by position' said."""
    root = tmp_path / "split"
    for t in ("Test_01", "Test_02"):
        x = signal(3, 1000)
        for k in range(3):
            f = root / "Data" / t / f"acc_0{k + 1}.csv"
            write_vibration_csv(f, x[k:k + 1], SR)
            f.write_text(f.read_text().replace(",ch0", f",acc_0{k + 1}", 1))
    with pytest.raises(DataError, match=r"Test_01: its 3 recordings each hold one sensor column of its own \(acc_01, "
                                        r"acc_02, acc_03\): they would be read as 3 recordings of one sensor"):
        build_windows(root, vib(), cache_dir=tmp_path / "c")
    # repeated recordings of one sensor, named alike, are recordings
    for f in root.rglob("acc_0*.csv"):
        f.write_text(f.read_text().replace(f",{f.stem}", ",acc", 1))
    assert build_windows(root, vib(), cache_dir=tmp_path / "c").n_channels == 1


def test_a_constant_offset_is_no_vibration(tmp_path):
    """A DC-coupled accelerometer's gravity (+9.81 on one axis) was read as signal: resampled, it rang into the
    first and last windows (std 0.153 against 0.017 in the middle), and it set the spectra's lowest bin. Taken out
    per channel and recording, the windows are those of the recording without it."""
    plain = make_root(tmp_path, {"Test_01": {"extent": 0.1}}, name="plain")
    moved = make_root(tmp_path, {"Test_01": {"extent": 0.1}}, name="moved")
    f = moved / "Data" / "Test_01" / "rec0.csv"
    wave, sr = read_vibration_csv(f)
    write_vibration_csv(f, wave + np.array([[9.81], [0.0], [-3.0]], np.float32), sr)
    for resample_to in (None, 3 * SR):
        a = build_windows(plain, vib(resample_to=resample_to), cache_dir=tmp_path / "c")
        b = build_windows(moved, vib(resample_to=resample_to), cache_dir=tmp_path / "c")
        np.testing.assert_allclose(b.waves, a.waves, atol=2e-4)
        assert np.abs(b.waves.mean(axis=-1)).max() < 0.2  # no 9.81 left in any window


def test_an_odd_first_recording_does_not_decide_the_columns(tmp_path, caplog):
    """The first recording was the reference: an older logger's file first (x, y, z) left every other recording
    read by position, so one listing ch2, ch1, ch0 and one ch0, ch1, ch2 were read with their channels swapped
    against each other. The set most recordings name is the reference, as for an anomaly model's CSVs."""
    root = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}, "Test_03": {"extent": 0.2},
                                "Test_04": {"extent": 0.3}})
    files = [next((root / "Data" / t).glob("*.csv")) for t in ("Test_01", "Test_02", "Test_03")]
    first = files[0].read_text().splitlines()
    files[0].write_text("\n".join(["time,x,y,z"] + first[1:]) + "\n")
    cells = [ln.split(",") for ln in files[1].read_text().splitlines()]
    files[1].write_text("\n".join(",".join(c[j] for j in (0, 3, 2, 1)) for c in cells) + "\n")
    third, _ = read_vibration_csv(files[2])
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        d = build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert d.channel_names == ["ch2", "ch1", "ch0"]  # the set three of four name, in the first naming it's order
    np.testing.assert_allclose(d.waves[d.test_index == 2][0], centred(third)[::-1, :d.waves.shape[-1]], atol=1e-5)
    # every test names its file rec0.csv: named by their folders (it said "rec0.csv, rec0.csv")
    assert "2 recording(s) list their sensor columns in another order than Data/Test_02/rec0.csv (ch2, ch1, ch0): " \
           "read in its order, by name: Test_03/rec0.csv, Test_04/rec0.csv" in caplog.text, caplog.text
    assert "1 recording(s) name their sensor columns otherwise than Data/Test_02/rec0.csv (ch2, ch1, ch0): read by " \
           "position: Test_01/rec0.csv (x, y, z)" in caplog.text, caplog.text


def test_new_recordings_are_read_in_the_order_of_the_model_s_columns(tmp_path, caplog):
    """`evaluate --data` of a folder, and `sample --condition` / `predict` of one file, whose logger writes the
    sensor columns in another order than the training recordings: read by name in the model's order (they were read
    by position: every channel swapped, silently)."""
    from latentbridge.tasks.multimodal import windows_of_recording

    train = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}}, name="train")
    names = build_windows(train, vib(), cache_dir=tmp_path / "cache").channel_names
    assert names == ["ch0", "ch1", "ch2"]
    other = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}}, name="other")
    plain = build_windows(other, vib(), cache_dir=tmp_path / "cache")
    for f in (other / "Data").glob("*/*.csv"):  # the whole folder written with the columns reversed
        cells = [ln.split(",") for ln in f.read_text().splitlines()]
        f.write_text("\n".join(",".join(c[j] for j in (0, 3, 2, 1)) for c in cells) + "\n")
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        d = build_windows(other, vib(), cache_dir=tmp_path / "cache", channel_names=names)
    assert "2 recording(s) list their sensor columns in another order than the model's training recordings (ch0, ch1, " \
           "ch2): read in its order, by name: Test_01/rec0.csv, Test_02/rec0.csv" in caplog.text, caplog.text
    assert d.channel_names == names
    np.testing.assert_allclose(d.waves, plain.waves, atol=1e-6)
    assert not np.allclose(build_windows(other, vib(), cache_dir=tmp_path / "cache").waves, plain.waves)
    f = other / "Data" / "Test_01" / "rec0.csv"
    spec = SimpleNamespace(n_channels=3, sample_rate=SR, window_s=2.0, hop_s=1.0)
    one = windows_of_recording(vib(), spec, f, names)[0]
    np.testing.assert_allclose(one, plain.waves[plain.test_index == 0][:len(one)], atol=1e-6)
    assert not np.allclose(windows_of_recording(vib(), spec, f)[0], one)  # a run without the record: by position
    # a logger that also writes a temperature: the model's columns by name, the temperature left out and named
    cells = [ln.split(",") for ln in f.read_text().splitlines()]
    extra = tmp_path / "with_temp.csv"
    extra.write_text("\n".join(",".join([c[0], c[1], "temp" if i == 0 else "21.5", c[2], c[3]])
                               for i, c in enumerate(cells)) + "\n")
    with caplog.at_level(logging.WARNING, logger="latentbridge.io.columns"):
        np.testing.assert_allclose(windows_of_recording(vib(), spec, extra, names)[0], one, atol=1e-6)
    assert "with_temp.csv: column(s) the model was not trained on left out (temp); its sensor columns (ch0, ch1, " \
           "ch2) read by name" in caplog.text, caplog.text


def test_numbers_written_by_spreadsheets_and_loggers(tmp_path):
    """Dots grouping thousands (1.108 for 1108) were read as decimal points, silently; a file of decimal commas whose
    first 60 lines are pre-trigger zeros was refused as 'commas and points mixed'; quoted US thousands ("1,108")
    were a ragged-rows error that did not say why."""
    rng = np.random.default_rng(0)
    counts = rng.integers(-3000, 3000, size=(300, 3))
    de = tmp_path / "de.csv"
    de.write_text("a;b;c\n" + "\n".join(";".join(f"{v:,}".replace(",", ".") for v in r) for r in counts) + "\n")
    with pytest.raises(DataError, match=r"de\.csv: line \d+: '-?\d\.\d{3}' among whole numbers of up to three digits: "
                                        r"dots grouping thousands"):
        read_vibration_csv(de, sample_rate=200)
    decimals = tmp_path / "decimals.csv"  # three decimals everywhere: decimal points, not grouping
    decimals.write_text("a;b\n" + "\n".join(f"{v / 1000:.3f};{w / 1000:.3f}" for v, w in counts[:, :2]) + "\n")
    assert read_vibration_csv(decimals, sample_rate=200)[0].shape == (2, 300)
    x = signal(2, 300)
    pre = tmp_path / "pretrigger.csv"
    pre.write_text("a;b\n" + "\n".join("0;0" if i < 60 else f"{x[0, i]:.5f};{x[1, i]:.5f}".replace(".", ",")
                                       for i in range(300)) + "\n")
    wave, _ = read_vibration_csv(pre, sample_rate=200)
    np.testing.assert_allclose(wave[:, 60:], x[:, 60:], atol=1e-5)
    us = tmp_path / "us.csv"
    us.write_text("time,a,b\n" + "\n".join(f'{i / 200:.3f},"{v:,}","{w:,}"' for i, (v, w) in
                                           enumerate(counts[:, :2] * 10)) + "\n")
    with pytest.raises(DataError, match=r"us\.csv: ragged rows: .*: quoted numbers with thousands separators "
                                        r"\(\"-?\d{1,3},\d{3}\"\) split at their commas"):
        read_vibration_csv(us)


def test_a_dead_sensor_is_named(tmp_path, caplog):
    root = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.0}})
    f = next((root / "Data" / "Test_02").glob("*.csv"))
    wave, sr = read_vibration_csv(f)
    wave[1] = 0.0
    write_vibration_csv(f, wave, sr)
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert "channel(s) constant over a whole recording (a dead or unplugged sensor?): channel 1 (ch1, in 1 of 2 " \
           f"recordings: Test_02/{f.name})" in caplog.text, caplog.text
    from latentbridge.data.bridge_columns import ChannelOrder

    order = ChannelOrder()  # a recording of one sample: every channel "never moves", none is known dead
    order.flat(f, np.ones((3, 1)))
    order.flat(f, np.ones((3, 9)))
    assert not order.dead and order.n_files == 0


@pytest.mark.parametrize("rate", [400, 512, 1024, 2048])
def test_csv_times_written_to_milliseconds_and_as_unix_time(tmp_path, rate, caplog):
    """Loggers write each row's time to milliseconds (three decimals, or an ISO time with milliseconds) at 400-2048 Hz:
    the steps then vary by up to a whole millisecond, or repeat, and such files were refused as not evenly sampled or
    not increasing. Others stamp rows with Unix time in milliseconds under 'timestamp': read as seconds, 1 kHz was
    1 Hz. Both are read at their rate now; a missing stretch is still refused."""
    from latentbridge.io import read_vibration_csv

    t = np.arange(rate * 4) / rate
    x = np.sin(2 * np.pi * 13 * t)
    (tmp_path / "ms.csv").write_text("time_s,ax\n" + "".join(f"{a:.3f},{v:.5f}\n" for a, v in zip(t, x)))
    wave, sr = read_vibration_csv(tmp_path / "ms.csv")
    assert sr == rate and wave.shape == (1, len(t))
    np.testing.assert_allclose(wave[0], x - x.mean(), atol=1e-5)
    (tmp_path / "epoch.csv").write_text("timestamp,ax\n" + "".join(
        f"{1714564800000 + round(a * 1000)},{v:.5f}\n" for a, v in zip(t, x)))
    with caplog.at_level("WARNING"):
        assert read_vibration_csv(tmp_path / "epoch.csv")[1] == rate
    assert "holds 1.715e+12, Unix time in ms: read so" in caplog.text
    keep = np.r_[0:rate, rate + 20:len(t)]  # 20 samples missing
    (tmp_path / "gap.csv").write_text("time_s,ax\n" + "".join(f"{t[i]:.3f},{x[i]:.5f}\n" for i in keep))
    with pytest.raises(DataError, match="not evenly sampled"):
        read_vibration_csv(tmp_path / "gap.csv")


@pytest.mark.parametrize("rate,decimals", [(1000, 3), (100, 2)])
def test_csv_times_exact_at_their_resolution_keep_the_strict_checks(tmp_path, rate, decimals):
    """Milliseconds at 1 kHz (hundredths at 100 Hz) are exact: one missing sample or a repeated row is refused, as
    before the allowance for times written coarser than the period."""
    from latentbridge.io import read_vibration_csv

    t = np.arange(rate * 4) / rate
    rows = [f"{a:.{decimals}f},{np.sin(a * 20):.5f}\n" for a in t]
    (tmp_path / "ok.csv").write_text("time_s,ax\n" + "".join(rows))
    assert read_vibration_csv(tmp_path / "ok.csv")[1] == rate
    (tmp_path / "gap.csv").write_text("time_s,ax\n" + "".join(rows[:100] + rows[101:]))
    with pytest.raises(DataError, match="not evenly sampled"):
        read_vibration_csv(tmp_path / "gap.csv")
    (tmp_path / "twice.csv").write_text("time_s,ax\n" + "".join(rows[:101] + rows[100:]))
    with pytest.raises(DataError, match="not increasing"):
        read_vibration_csv(tmp_path / "twice.csv")


def test_csv_empty_columns_after_the_table_and_a_time_read_as_a_channel(tmp_path, caplog):
    """Lines closed by two delimiters (empty columns after the table) were refused at their first empty cell; a
    headerless file whose first column increases unevenly, read at a given rate, made that column a sensor axis
    without a word (the hint was in the error only where no rate was given)."""
    from latentbridge.io import read_vibration_csv

    x = np.sin(np.arange(200) / 5)
    (tmp_path / "closed.csv").write_text("time,ax,,\n" + "".join(f"{i / 100},{v:.5f},,\n" for i, v in enumerate(x)))
    wave, sr = read_vibration_csv(tmp_path / "closed.csv")
    assert sr == 100 and wave.shape == (1, 200)
    t = np.arange(200) / 100 + np.random.default_rng(0).uniform(0, 0.004, 200)
    (tmp_path / "jitter.csv").write_text("".join(f"{a:.5f},{v:.5f}\n" for a, v in zip(t, x)))
    with caplog.at_level("WARNING"):
        wave, sr = read_vibration_csv(tmp_path / "jitter.csv", fallback_rate=100)
    assert wave.shape == (2, 200) and "read at the default 100 Hz, with its first column as a sensor channel (the " \
        "first column increases like a time but its steps vary by up to" in caplog.text


def test_warnings_of_a_build_are_said_again_from_the_cache(tmp_path, caplog):
    """The windows of a second train and of every evaluate come from the cache, which returned before the checks:
    inverted, stretched masks and sensor columns in another order were named once, then never again."""
    import json

    import latentbridge.utils as utils

    root = make_root(tmp_path, {"Test_01": {"extent": 0.3}, "Test_02": {"extent": 0.0}})
    for mask in (root / "Labels").rglob("*.png"):  # black crack on white
        write_mask_png(mask, 1.0 - read_mask_png(mask, *Image.open(mask).size[::-1]))
    write_mask_png(root / "Labels" / "Test_02" / "mask.png", np.ones((64, 64)))  # square: stretched to 24x8
    csv = root / "Data" / "Test_02" / "rec0.csv"  # the sensor columns reversed
    csv.write_text("\n".join(",".join(c[j] for j in (0, 3, 2, 1)) for c in
                             (ln.split(",") for ln in csv.read_text().splitlines())) + "\n")
    stamped = root / "Data" / "Test_01" / "rec0.csv"  # the reader's own warnings too: rows stamped in Unix ms
    lines = stamped.read_text().splitlines()
    stamped.write_text("\n".join([lines[0]] + [f"{1714564800000 + round(float(ln.split(',', 1)[0]) * 1000)},"
                                                f"{ln.split(',', 1)[1]}" for ln in lines[1:]]) + "\n")
    said = []
    for run in range(3):  # a build, then two runs (processes) that read the cache
        utils._SAID.clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            data = build_windows(root, vib(), cache_dir=tmp_path / "cache")
        said.append(sorted(r.getMessage() for r in caplog.records))
    assert len(said[0]) == 4, said[0]
    assert said[1] == said[2] == said[0]
    text = "\n".join(said[1])
    assert "Unix time in ms: read so" in text
    assert "the masks are 85% crack on average: inverted" in text
    assert "a 64x64 mask (width x height) is stretched to the model's 24x8" in text
    assert "1 recording(s) list their sensor columns in another order" in text
    man = json.loads((data.cache_path / "manifest.json").read_text())
    assert sorted(man["warnings"]) == said[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the same process: named once
        build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert not caplog.records


def test_recordings_whose_vibration_lies_above_the_resampled_band_are_named(tmp_path, caplog):
    """1-kHz recordings of a 150-250 Hz vibration under the preset's vibration.resample_to = 100: the model trained on
    their noise floor (std 0.004 for 0.8), and a later folder's level was blamed on its units."""
    rng = np.random.default_rng(0)
    t = np.arange(5000) / 1000.0
    for i, f in enumerate((150.0, 200.0, 250.0)):
        wave = np.stack([np.sin(2 * np.pi * f * t + c) + 0.01 * rng.standard_normal(t.size) for c in range(3)])
        write_vibration_csv(tmp_path / "hf" / "Data" / f"Test_0{i + 1}" / "rec0.csv", wave, 1000.0)
    with caplog.at_level(logging.WARNING):
        build_windows(tmp_path / "hf", vib(resample_to=100.0), cache_dir=tmp_path / "c")
    assert re.search(r"hf: 3 of 3 recordings hold most of their vibration above 50 Hz \(median (99|100) % of its "
                     r"energy\), which vibration.resample_to = 100 Hz removes: .* or null for their own rate "
                     r"\(1000 Hz\): Test_01/rec0.csv, Test_02/rec0.csv, Test_03/rec0.csv", caplog.text), caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the band kept: nothing said
        build_windows(tmp_path / "hf", vib(resample_to=1000.0), cache_dir=tmp_path / "c")
    assert "hold most of their vibration" not in caplog.text
    # a column picked whose vibration the band keeps, beside louder ones above it (they named it); a data/ folder in
    # lower case (a traceback naming the recordings)
    (tmp_path / "hf" / "Data").rename(tmp_path / "hf" / "data")
    for f in (tmp_path / "hf" / "data").rglob("*.csv"):
        x, sr = read_vibration_csv(f)
        x[0] = 0.2 * np.sin(2 * np.pi * 20 * t)
        write_vibration_csv(f, x, sr)
    with caplog.at_level(logging.WARNING):
        build_windows(tmp_path / "hf", vib(resample_to=100.0, channels=[0]), cache_dir=tmp_path / "c")
    assert "hold most of their vibration" not in caplog.text
    with caplog.at_level(logging.WARNING):
        build_windows(tmp_path / "hf", vib(resample_to=120.0, channels=[1]), cache_dir=tmp_path / "c")
    assert "3 of 3 recordings hold most of their vibration above 60 Hz" in caplog.text and "Test_02/rec0.csv" \
        in caplog.text


def test_audio_files_are_recordings_of_their_channels(tmp_path, caplog):
    """A user's microphone or accelerometer recordings saved as audio: 200 test folders of WAVs gave 200 warnings
    ("no CSV or .mat files") and then "no tests"; the audio is read at its header's rate, each channel a sensor."""
    import soundfile as sf

    root = tmp_path / "root"
    x = 0.2 * signal(2, 1000, seed=3)
    for tid, ext in (("Test_01", ".wav"), ("Test_02", ".flac")):
        (root / "Data" / tid).mkdir(parents=True)
        sf.write(root / "Data" / tid / f"rec{ext}", x.T, int(SR), subtype="PCM_24")
        write_mask_png(root / "Labels" / tid / "mask.png", crack_mask(extent=0.25))
    for k in range(3):
        (root / "Data" / f"Notes_{k}").mkdir()
        (root / "Data" / f"Notes_{k}" / "log.txt").write_text("taken on site")
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        d = build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert d.tests == ["Test_01", "Test_02"] and d.sample_rate == SR and d.waves.shape == (18, 2, 200)
    np.testing.assert_allclose(d.waves[3], centred(x)[:, 300:500], atol=2e-6)  # 24-bit samples
    said = [r.getMessage() for r in caplog.records if "without recordings" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("3 folder(s) without recordings (CSV, MATLAB .mat or audio files: .wav, "
                                               ".flac, .mp3, ...) skipped: Notes_0 (it holds log.txt), Notes_1 (it "
                                               "holds log.txt), Notes_2 (it holds log.txt)"), said
    # channels picked by position (a mono file for channel 1 named with the setting); a rate given is that of the
    # recordings that give none (a folder of CSVs without a time column and WAVs could not be read): said once
    assert build_windows(root, vib(channels=[1]), cache_dir=tmp_path / "cache").waves.shape == (18, 1, 200)
    from latentbridge.io.vibration import read_audio_vibration

    with pytest.raises(DataError, match=r"rec\.wav: channel 2 out of range: the file has 2 channels \(vibration\."
                                        r"channels: \[2\]\)"):  # (a trained model's prediction of one recording)
        read_audio_vibration(root / "Data" / "Test_01" / "rec.wav", channels=[2])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert build_windows(root, vib(sample_rate=50.0), cache_dir=tmp_path / "cache").sample_rate == SR
    assert caplog.text.count("read at its header's 100 Hz: the sample rate given, 50 Hz (vibration.sample_rate") == 1
    # a recorder that saturated: named (the anomaly path names it; here it went without a word)
    sf.write(root / "Data" / "Test_02" / "rec.flac", np.clip(8 * x, -1, 1).T, int(SR), subtype="PCM_24")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert re.search(r"Test_02/rec\.flac: \d+% of its samples lie on plateaus at full scale: the recorder or sensor "
                     r"saturated \(clipping\)", caplog.text), caplog.text
    assert "RMS levels span" not in caplog.text  # (an 8-fold gain: 18 dB)
    # a test in sensor units beside the recorder's full scale: the unit would tell the damage states apart
    write_vibration_csv(root / "Data" / "Test_03" / "rec.csv", 50 * x, SR)
    write_mask_png(root / "Labels" / "Test_03" / "mask.png", crack_mask(extent=0.5))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_windows(root, vib(), cache_dir=tmp_path / "cache")
    assert re.search(r"root: the recordings' RMS levels span 3\d dB \(Data/Test_01/rec\.wav at -\d+\.\d dB to "
                     r"Data/Test_03/rec\.csv at \d+\.\d dB\): recordings in other units", caplog.text), caplog.text


def test_pictures_given_as_masks_are_named_once(tmp_path, caplog):
    """Thermal snapshots (many grey levels, a warm ground) given as labels were thresholded at 0.5 without a word: the
    ground learnt as crack. Named in one warning for the folder; anti-aliased drawings are masks."""
    root = make_root(tmp_path, {"Test_01": {"extent": 0.1}, "Test_02": {"extent": 0.1}, "Test_03": {"extent": 0.1}})
    yy, xx = np.mgrid[:32, :96]
    for tid in ("Test_01", "Test_02"):
        thermal = 0.3 + 0.3 * xx / 95 + 0.35 * (((yy - 16) ** 2 + (xx - 40) ** 2) < 36)
        write_mask_png(root / "Labels" / tid / "mask.png", np.clip(thermal, 0, 1))
    soft = crack_mask(32, 96, 0.25)  # a drawing with soft edges: a few per cent of its pixels between the levels
    soft[:, 24:27] = [0.66, 0.33, 0.1]
    write_mask_png(root / "Labels" / "Test_03" / "mask.png", soft)
    with caplog.at_level(logging.WARNING, logger="latentbridge.data.bridge"):
        d = build_windows(root, vib(mask_height=32, mask_width=96), cache_dir=tmp_path / "cache")
    said = [r.getMessage() for r in caplog.records if "pictures rather than masks" in r.getMessage()]
    assert len(said) == 1 and re.search(r"2 mask\(s\) are pictures rather than masks \(Labels/Test_01/mask\.png, "
                                        r"Labels/Test_02/mask\.png, the first: Labels/Test_01/mask\.png\): 8\d% of its "
                                        r"pixels lie between its darkest and brightest levels: .* vibration\."
                                        r"mask_threshold 0\.5 \(3\d% of it\)", said[0]), said
    assert d.masks[d.test_index == 2].mean() == pytest.approx(0.25, abs=0.02)  # the drawing read as drawn


def test_the_labels_size_is_most_masks_as_a_viewer_shows_them(tmp_path):
    from PIL import Image

    from latentbridge.io.masks import labels_size, read_mask_full

    files = [write_mask_png(tmp_path / f"m{i}.png", crack_mask(32, 96, extent=0.3)) for i in range(2)]
    files.append(write_mask_png(tmp_path / "small.png", crack_mask(10, 30, extent=0.3)))
    turned = Image.fromarray(np.zeros((96, 32), dtype=np.uint8))  # stored 32 wide, shown 96 wide (EXIF: 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    turned.save(tmp_path / "turned.png", exif=exif)
    (tmp_path / "broken.png").write_text("not a png")
    assert labels_size([*files, tmp_path / "turned.png", tmp_path / "broken.png"]) == [32, 96]
    assert labels_size([files[2]]) == [10, 30] and labels_size([tmp_path / "broken.png"]) is None
    full = read_mask_full(files[0])  # at its own size, as drawn: the shrunk read is its area average
    assert full.shape == (32, 96) and full.dtype == bool
    np.testing.assert_array_equal(full, read_mask_png(files[0], 32, 96) > 0.5)
