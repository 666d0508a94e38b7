"""Live streaming: windowing, sources, event logs, overflow handling and a real microphone."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentbridge.errors import DataError, LatentbridgeError
from latentbridge.io import capture
from latentbridge.io.capture import StreamStats, device_blocks, file_blocks
from latentbridge.io.events import EVENT_FIELDS, EventLog
from latentbridge.io.windows import WindowBuffer, cut_windows
from latentbridge.tasks.listen import listen

LINE = re.compile(r"^\s*\d+\.\d\d-\d+\.\d\d s  score -?\d+\.\d{5}  (normal|ANOMALY)$")


def rms_score(threshold: float):
    def score_fn(windows: np.ndarray):
        assert windows.ndim == 2 and windows.dtype == np.float32
        rms = np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1))
        return rms, rms > threshold

    return score_fn


def tone_wav(path, sr, silence_s, tone_s, amp=0.5, freq=440.0, noise=1e-3, seed=0):
    rng = np.random.default_rng(seed)
    n_sil, n_tone = int(silence_s * sr), int(tone_s * sr)
    t = np.arange(n_tone) / sr
    x = np.concatenate(
        [np.zeros(n_sil), amp * np.sin(2 * np.pi * freq * t), np.zeros(n_sil)]
    )
    x = x + noise * rng.standard_normal(x.shape[0])
    sf.write(str(path), x.astype(np.float32), sr)
    return x.astype(np.float32)


# ---------------------------------------------------------------- WindowBuffer


def _cut(x, window, hop):
    return [(s, x[s : s + window]) for s in range(0, len(x) - window + 1, hop)]


@pytest.mark.parametrize("window,hop", [(64, 23), (64, 64), (50, 100), (1, 1), (97, 13)])
@pytest.mark.parametrize("sizes", [[1, 7, 13, 3, 101, 0, 29], [1000], [5]])
def test_window_buffer_matches_hand_cut(window, hop, sizes):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(1000).astype(np.float32)
    buf = WindowBuffer(window, hop)
    got, pos, i = [], 0, 0
    max_block = 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        i += 1
        block = x[pos : pos + n].reshape(-1, 1)
        max_block = max(max_block, block.shape[0])
        got.extend(buf.push(block))
        assert buf.buffered <= window + max_block  # never grows without bound
        pos += n
    want = _cut(x, window, hop)
    assert [s for s, _ in got] == [s for s, _ in want]
    for (_, w), (_, ref) in zip(got, want):
        assert w.dtype == np.float32 and w.shape == (window,)
        np.testing.assert_array_equal(w, ref)
    assert buf.samples_seen == len(x)


def test_window_buffer_mixes_channels_and_is_bounded():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5000, 3)).astype(np.float32)
    buf = WindowBuffer(256, 100, channels=3)
    got = []
    for pos in range(0, len(x), 37):
        got.extend(buf.push(x[pos : pos + 37]))
        assert buf.buffered <= 256 + 37
    want = _cut(x.mean(axis=1), 256, 100)
    assert len(got) == len(want)
    for (s, w), (s2, ref) in zip(got, want):
        assert s == s2
        np.testing.assert_allclose(w, ref, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError):
        buf.push(np.zeros((10, 2), np.float32))


def _stream_then_flush(x, window, hop, pad, sizes, channels=1):
    """Every window of ``x`` pushed in blocks of ``sizes`` (cycled), then flushed."""
    buf = WindowBuffer(window, hop, channels=channels)
    got, pos, i = [], 0, 0
    while pos < len(x):
        n = sizes[i % len(sizes)]
        i += 1
        block = x[pos : pos + n]
        got.extend(buf.push(block.reshape(-1, 1) if block.ndim == 1 else block))
        assert buf.buffered <= window + max(sizes)
        pos += n
    return got + buf.flush(pad, name="clip.wav")


WINDOW = 64


def _lengths(hop):
    """Shorter than a window; full windows only; partial tails below, at and above half a window."""
    out = {1, 5, 17, 33, 63}
    for k in (0, 1, 3):
        base = WINDOW + k * hop  # k + 1 full windows end exactly here
        nxt = (k + 1) * hop  # start of the window after them
        out |= {base, base + hop - 1}
        for real in (WINDOW // 2 - 1, WINDOW // 2, WINDOW // 2 + 1, WINDOW - 1):
            if base <= nxt + real < base + hop:  # still k + 1 full windows
                out.add(nxt + real)
    return sorted(out)


@pytest.mark.parametrize("pad", ["wrap", "constant", "reflect", "none"])
@pytest.mark.parametrize("hop", [16, 23, 64, 100])
def test_stream_then_flush_gives_the_windows_of_cut_windows(pad, hop):
    rng = np.random.default_rng(hop)
    kept_partial = dropped_partial = padded_short = no_tail = 0
    for n in _lengths(hop):
        x = rng.standard_normal(n).astype(np.float32)
        for sizes in ([7, 1, 30], [n], [1]):
            if pad == "none" and n < WINDOW:
                with pytest.raises(DataError, match=r"clip\.wav: recording too short"):
                    _stream_then_flush(x, WINDOW, hop, pad, sizes)
                continue
            got = _stream_then_flush(x, WINDOW, hop, pad, sizes)
            want_w, want_s = cut_windows(x, WINDOW, hop, pad=pad)
            assert [s for s, _ in got] == want_s.tolist(), (n, sizes)
            for (_, w), ref in zip(got, want_w):
                assert w.dtype == np.float32 and w.shape == (WINDOW,)
                np.testing.assert_array_equal(w, ref, err_msg=f"T={n} sizes={sizes}")
        if n < WINDOW:
            padded_short += 1
            continue
        real = n - ((n - WINDOW) // hop + 1) * hop  # samples of the window after the full ones
        if real > WINDOW / 2 and pad != "none":
            kept_partial += 1
        elif real > 0:
            dropped_partial += 1
        else:
            no_tail += 1
    # every case of the rule was exercised (with hop < window / 2 a tail always holds more than
    # half a window; with hop >= window a recording can also end on a full window)
    assert padded_short == 5
    if pad == "none":
        assert kept_partial == 0 and dropped_partial >= 3
    elif hop < WINDOW // 2:
        assert kept_partial >= 3
    else:
        assert kept_partial >= 3 and dropped_partial >= 3 and no_tail >= 3


def test_flush_ends_on_the_last_window_of_real_samples():
    x = np.arange(1, 101, dtype=np.float32)  # 100 samples, window 64, hop 16
    # full windows at 0, 16, 32; 52 > 32 samples follow 48: one more window, the last 64 samples (no padding)
    for pad in ("wrap", "constant", "reflect"):
        buf = WindowBuffer(64, 16)
        assert [s for s, _ in buf.push(x)] == [0, 16, 32]
        ((start, w),) = buf.flush(pad)
        assert start == 36
        np.testing.assert_array_equal(w, np.arange(37, 101))
    # hop 64: 32 samples after 64 of 96 = half a window: no more window; of 97: the last 64 samples
    buf = WindowBuffer(64, 64)
    assert [s for s, _ in buf.push(x[:96])] == [0]
    assert buf.flush("wrap") == []
    buf = WindowBuffer(64, 64)
    for block in np.array_split(x[:97], 9):  # block by block: the buffer keeps the last window's samples
        buf.push(block)
    ((start, w),) = buf.flush("wrap")
    assert start == 33 and buf.buffered <= 64 + 11
    np.testing.assert_array_equal(w, np.arange(34, 98))
    # shorter than a window: one padded window, as cut_windows pads it
    buf = WindowBuffer(8, 4)
    buf.push(np.array([1, 2, 3], np.float32))
    ((start, w),) = buf.flush("wrap")
    assert start == 0
    np.testing.assert_array_equal(w, [1, 2, 3, 1, 2, 3, 1, 2])


def test_flush_ends_the_stream_until_reset():
    buf = WindowBuffer(4, 2)
    buf.push(np.arange(7, dtype=np.float32))
    assert [s for s, _ in buf.flush("constant")] == [3]  # the last 4 samples
    assert buf.flush("constant") == []
    with pytest.raises(ValueError, match="after flush"):
        buf.push(np.zeros(3, np.float32))
    buf.reset()
    assert [s for s, _ in buf.push(np.arange(4, dtype=np.float32))] == [0]
    with pytest.raises(DataError, match="zero length"):
        WindowBuffer(4, 2).flush()
    with pytest.raises(ValueError, match="pad must be"):
        WindowBuffer(4, 2).flush("bogus")


def test_flush_of_a_multichannel_stream_matches_cut_windows_of_the_mix():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1000, 3)).astype(np.float32)  # 1000 = 64 + 14 * 64 + 40: tail kept
    got = _stream_then_flush(x, 64, 64, "wrap", [37], channels=3)
    want_w, want_s = cut_windows(x.mean(axis=1, dtype=np.float32), 64, 64, pad="wrap")
    assert [s for s, _ in got] == want_s.tolist() and len(got) == 16
    np.testing.assert_allclose(np.stack([w for _, w in got]), want_w, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- file replay


def test_file_replay_flags_exactly_the_tone_windows(tmp_path):
    file_sr, sr = 22050, 16000  # replay resamples to the listening rate
    wav = tmp_path / "sts.wav"
    tone_wav(wav, file_sr, silence_s=1.0, tone_s=1.0)
    out = io.StringIO()
    window_s, hop_s = 0.5, 0.25
    summary = listen(
        rms_score(0.1), sample_rate=sr, window_s=window_s, hop_s=hop_s,
        source=wav, blocksize=333, out=out,
    )
    lines = out.getvalue().splitlines()
    window_lines = [ln for ln in lines if LINE.match(ln)]
    assert len(window_lines) == summary["n_windows"] == len(lines) - 1
    assert "0 overflows" in lines[-1]
    # 3 s of audio, 0.5 s windows every 0.25 s -> 11 windows.
    assert summary["n_windows"] == 11
    flagged = [ln.endswith("ANOMALY") for ln in window_lines]
    starts = [k * hop_s for k in range(summary["n_windows"])]
    # A window is a tone window when it overlaps the tone (1.0-2.0 s); with this hop the
    # overlap is 0, half or all of the window.
    expected = [s + window_s > 1.0 + 1e-9 and s < 2.0 - 1e-9 for s in starts]
    assert flagged == expected
    assert summary["n_anomalies"] == sum(expected) == 5
    assert summary["overflows"] == 0
    assert summary["duration_s"] == pytest.approx(3.0, abs=1e-3)


def test_a_file_replay_stopped_by_ctrl_c_says_what_was_heard(tmp_path, monkeypatch):
    """Ctrl-C at 5,972 s of a 7,200-s file said "listened 7200.00 s": the recording's length, not what was heard."""
    import latentbridge.tasks.listen as listen_module

    wav = tmp_path / "sts.wav"
    tone_wav(wav, 16000, silence_s=1.0, tone_s=1.0)  # 3 s
    replay = listen_module.file_blocks

    def interrupted(*a, **k):
        for n, block in enumerate(replay(*a, **k)):
            if n == 16:  # 16 blocks of 1,000 samples: 1 s heard
                raise KeyboardInterrupt
            yield block

    monkeypatch.setattr(listen_module, "file_blocks", interrupted)
    out = io.StringIO()
    summary = listen(rms_score(0.1), sample_rate=16000, window_s=0.5, hop_s=0.25, source=wav, blocksize=1000, out=out)
    assert summary["duration_s"] == pytest.approx(1.0) and "interrupted" in out.getvalue()


def _recording_score():
    """A score function that keeps every window it is given."""
    seen: list[np.ndarray] = []

    def score_fn(windows):
        seen.extend(windows)
        rms = np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1))
        return rms, rms > 0.1

    return seen, score_fn


@pytest.mark.parametrize("seconds,pad", [(3.0, "wrap"), (3.0, "reflect"), (2.6, "constant"), (0.3, "wrap"),
                                         (0.3, "reflect")])
def test_file_replay_scores_the_windows_of_cut_windows(tmp_path, seconds, pad):
    from latentbridge.io import read_audio

    sr, window_s, hop_s = 8000, 0.5, 0.3
    wav = tmp_path / "rec.wav"
    rng = np.random.default_rng(5)
    sf.write(str(wav), (0.3 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr)
    seen, score_fn = _recording_score()
    log = tmp_path / "events.csv"
    summary = listen(score_fn, sample_rate=sr, window_s=window_s, hop_s=hop_s, source=wav, blocksize=700,
                     events=log, out=None, pad=pad)
    audio, _ = read_audio(wav, sample_rate=sr)
    want, starts = cut_windows(audio, int(window_s * sr), int(hop_s * sr), pad=pad)
    # 3.0 s: 9 full windows and a padded one at 2.7 s (0.3 s > half a window remains);
    # 2.6 s: 8 full windows, the 0.2 s left at 2.4 s are dropped; 0.3 s: one padded window.
    assert len(want) == {3.0: 10, 2.6: 8, 0.3: 1}[seconds]
    assert summary["n_windows"] == len(seen) == len(want)
    np.testing.assert_array_equal(np.stack(seen), want)
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["start_s"]) for r in rows] == pytest.approx((starts / sr).tolist())
    # a window padded past the recording's end ends with it, as anomaly score's rows do
    assert [float(r["end_s"]) for r in rows] == pytest.approx(np.minimum(starts / sr + window_s, seconds).tolist())


def test_file_replay_applies_the_short_recording_rule(tmp_path):
    sr = 8000
    wav = tmp_path / "blip.wav"
    sf.write(str(wav), 0.2 * np.sin(np.arange(900) / 3.0).astype(np.float32), sr)  # 0.1125 s < a quarter of 0.5 s
    seen, score_fn = _recording_score()
    with pytest.raises(DataError, match=r"blip\.wav: recording too short"):
        listen(score_fn, sample_rate=sr, window_s=0.5, hop_s=0.25, source=wav, out=None)
    assert seen == []


def test_only_finite_sources_are_flushed(tmp_path):
    x = np.random.default_rng(6).standard_normal(900).astype(np.float32)  # window 400, hop 200
    blocks = [(x[i : i + 128].reshape(-1, 1), False) for i in range(0, 900, 128)]
    for flush, n_windows in ((None, 3), (False, 3), (True, 4)):  # full windows at 0, 200, 400
        seen, score_fn = _recording_score()
        summary = listen(score_fn, sample_rate=1000, window_s=0.4, hop_s=0.2, source=iter(blocks),
                         out=None, flush=flush)
        assert summary["n_windows"] == len(seen) == n_windows
    # flushed: the windows of cut_windows, the last one (600-1000) holding 300 real samples
    np.testing.assert_array_equal(np.stack(seen), cut_windows(x, 400, 200)[0])
    with pytest.raises(ValueError, match="pad must be"):
        listen(score_fn, sample_rate=1000, window_s=0.4, hop_s=0.2, source=iter(blocks), pad="zeros")


def test_a_lost_device_says_what_it_heard_and_a_short_listen_no_window(caplog):
    """A device lost mid-run ended with its error alone (no closing line of the windows heard); --duration under one
    window listened without a word of scoring nothing."""
    from latentbridge.errors import LatentbridgeError

    rng = np.random.default_rng(3)

    def lost():
        for _ in range(12):
            yield rng.standard_normal((100, 1)).astype(np.float32), False
        raise LatentbridgeError("the default input device stopped after 1.20 s of audio: the device was lost")

    lines = io.StringIO()
    with pytest.raises(LatentbridgeError, match="device was lost"):
        listen(_recording_score()[1], sample_rate=1000, window_s=0.4, hop_s=0.2, source=lost(), out=lines)
    assert lines.getvalue().rstrip().splitlines()[-1].startswith("listened 1.20 s: 5 windows"), lines.getvalue()
    with caplog.at_level("WARNING"):
        summary = listen(_recording_score()[1], sample_rate=1000, window_s=0.4, hop_s=0.2, source=lost(),
                         duration_s=0.3, out=io.StringIO())
    assert summary["n_windows"] == 0 and "no window scored: 0.30 s heard, under one 0.4-s window" in caplog.text


def test_a_muted_input_is_named(caplog):
    """A muted or unplugged microphone gives digital silence: every window of it scores as a fault; the first
    one is named and the summary counts them (they were flagged without a word)."""
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(800), np.zeros(1200), rng.standard_normal(400)]).astype(np.float32)
    blocks = [(x[i : i + 100].reshape(-1, 1), False) for i in range(0, len(x), 100)]
    _, score_fn = _recording_score()
    lines = io.StringIO()
    with caplog.at_level("WARNING"):
        summary = listen(score_fn, sample_rate=1000, window_s=0.4, hop_s=0.2, source=iter(blocks), out=lines)
    assert summary["n_silent_windows"] == 5  # the windows at 0.8 .. 1.6 s lie wholly in the silence
    assert "the window at 0.80 s is digital silence" in caplog.text and caplog.text.count("digital silence") == 1
    assert lines.getvalue().rstrip().endswith(", 5 windows of digital silence")
    # a second dropout after the sound came back is named as it begins (printed and logged as faults alone)
    y = np.concatenate([x, np.zeros(1200), rng.standard_normal(400)]).astype(np.float32)
    caplog.clear()
    with caplog.at_level("WARNING"):
        listen(_recording_score()[1], sample_rate=1000, window_s=0.4, hop_s=0.2, out=io.StringIO(),
               source=iter([(y[i : i + 100].reshape(-1, 1), False) for i in range(0, len(y), 100)]))
    assert caplog.text.count("digital silence") == 2 and "the window at 2.40 s is digital silence" in caplog.text
    # sound in tiny units (a strain table, 1e-7): silence only under the model's floor (every window was "silence")
    tiny = (1e-7 * rng.standard_normal(2000)).astype(np.float32)
    blocks = [(tiny[i : i + 100].reshape(-1, 1), False) for i in range(0, len(tiny), 100)]
    assert listen(_recording_score()[1], sample_rate=1000, window_s=0.4, hop_s=0.2, out=io.StringIO(),
                  source=iter(blocks), silent_peak=1e-13)["n_silent_windows"] == 0
    _, score_fn = _recording_score()
    assert listen(score_fn, sample_rate=1000, window_s=0.4, hop_s=0.2, out=None,
                  source=iter([(rng.standard_normal((2000, 1)).astype(np.float32), False)]))["n_silent_windows"] == 0


def test_a_clipping_input_is_named(caplog):
    """A live input whose converter saturates (the input gain too high) holds samples at full scale: every window
    then scores its distortion. The first is named as it comes and the summary counts the held samples."""
    t = np.arange(2400) / 1000
    x = np.sin(2 * np.pi * 5 * t).astype(np.float32)
    x[1200:] = np.clip(1.5 * x[1200:], -1, 1)  # clipping from 1.2 s
    blocks = [(x[i : i + 100].reshape(-1, 1), False) for i in range(0, len(x), 100)]
    _, score_fn = _recording_score()
    lines = io.StringIO()
    with caplog.at_level("WARNING"):
        summary = listen(score_fn, sample_rate=1000, window_s=0.4, hop_s=0.2, source=iter(blocks), out=lines)
    held = int(np.sum(np.abs(x) == 1.0))
    assert summary["n_clipped_samples"] == pytest.approx(held, abs=12)  # runs cut by block edges: a few samples
    assert "the input clips at 1.20 s" in caplog.text and caplog.text.count("the input clips") == 1
    assert lines.getvalue().rstrip().endswith(f", {summary['n_clipped_samples']} samples clipped")
    _, score_fn = _recording_score()
    assert listen(score_fn, sample_rate=1000, window_s=0.4, hop_s=0.2, out=None,
                  source=iter([(0.99 * x[:1200, None], False)]))["n_clipped_samples"] == 0
    # saturated, then resampled on its way (a sound server's converter): no plateau, samples past full scale
    over = (1.05 * np.sin(2 * np.pi * 7 * t)).astype(np.float32)  # (peak 1.05)
    caplog.clear()
    with caplog.at_level("WARNING"):
        summary = listen(_recording_score()[1], sample_rate=1000, window_s=0.4, hop_s=0.2, out=io.StringIO(),
                         source=iter([(over[i : i + 100].reshape(-1, 1), False) for i in range(0, len(over), 100)]))
    assert summary["n_clipped_samples"] == int(np.sum(np.abs(over) > 1.0)) > 0 and "the input clips" in caplog.text


def test_file_blocks_shapes_and_realtime_pacing(tmp_path):
    wav = tmp_path / "t.wav"
    tone_wav(wav, 8000, silence_s=0.1, tone_s=0.1)
    t0 = time.monotonic()
    blocks = list(file_blocks(wav, 8000, blocksize=500, realtime=True))
    elapsed = time.monotonic() - t0
    assert all(b.shape[1] == 1 and b.dtype == np.float32 and not ov for b, ov in blocks)
    assert sum(b.shape[0] for b, _ in blocks) == 2400
    assert elapsed >= 0.25  # 0.3 s of audio, paced
    t0 = time.monotonic()
    list(file_blocks(wav, 8000, blocksize=500))
    assert time.monotonic() - t0 < 0.25


def test_listen_duration_limit_and_event_log(tmp_path):
    wav = tmp_path / "sts.wav"
    tone_wav(wav, 16000, silence_s=1.0, tone_s=1.0)
    log_path = tmp_path / "logs" / "events.sqlite"
    summary = listen(
        rms_score(0.1), sample_rate=16000, window_s=0.5, hop_s=0.5,
        source=wav, duration_s=1.5, events=log_path, out=None,
    )
    assert summary["duration_s"] == pytest.approx(1.5)
    assert summary["n_windows"] == 3 and summary["n_anomalies"] == 1
    with sqlite3.connect(log_path) as conn:
        rows = conn.execute("SELECT start_s, end_s, is_anomaly FROM events ORDER BY id").fetchall()
    assert rows == [(0.0, 0.5, 0), (0.5, 1.0, 0), (1.0, 1.5, 1)]


def test_listen_rejects_bad_score_fn(tmp_path):
    wav = tmp_path / "sts.wav"
    tone_wav(wav, 16000, silence_s=0.5, tone_s=0.5)
    with pytest.raises(LatentbridgeError, match="scores"):
        listen(lambda w: (np.zeros(1), np.zeros(1, bool)), sample_rate=16000, window_s=0.1,
               hop_s=0.05, source=wav, blocksize=4000, out=None)


# ---------------------------------------------------------------- EventLog


def _event(i, **kw):
    e = {"wall_time": f"2024-01-01T00:00:0{i}+00:00", "start_s": float(i), "end_s": i + 2.0,
         "score": 0.5 * i, "is_anomaly": i % 2 == 1, "overflows": i}
    e.update(kw)
    return e


@pytest.mark.parametrize("suffix", [".sqlite", ".sqlite3", ".db"])
def test_event_log_sqlite_commits_each_row_and_appends(tmp_path, suffix):
    path = tmp_path / f"events{suffix}"
    with EventLog(path) as log:
        log.log(_event(0))
        log.log(_event(1))
        # Committed already: another connection sees the rows while the log is open.
        with sqlite3.connect(path) as other:
            assert other.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2
    with EventLog(path) as log:
        log.log({k: v for k, v in _event(2).items() if k != "wall_time"})
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(EVENT_FIELDS)} FROM events ORDER BY id"
        ).fetchall()
    assert [r[1:] for r in rows] == [(0.0, 2.0, 0.0, 0, 0), (1.0, 3.0, 0.5, 1, 1),
                                     (2.0, 4.0, 1.0, 0, 2)]
    assert rows[0][0] == "2024-01-01T00:00:00+00:00"
    assert rows[2][0].endswith("+00:00") and "T" in rows[2][0]  # filled in, ISO 8601 UTC


@pytest.mark.parametrize("name", ["events.csv", "events.sqlite"])
def test_an_event_log_in_use_is_refused_to_a_second_writer(tmp_path, name):
    """Two listeners given one --events file wrote their rows into it interleaved (each window's time twice), with
    nothing to tell the runs apart."""
    from latentbridge.errors import LatentbridgeError

    with EventLog(tmp_path / name) as log:
        log.log(_event(0))
        with pytest.raises(LatentbridgeError, match="another process is writing this event log"):
            EventLog(tmp_path / name)
        log.log(_event(1))
    with EventLog(tmp_path / name) as log:  # free again once closed
        log.log(_event(2))
        assert log.rows_written == 1


def test_event_log_csv_flushes_each_row_and_appends(tmp_path):
    path = tmp_path / "events.csv"
    with EventLog(path) as log:
        log.log(_event(0))
        log.log(_event(1))
        # Flushed already: the file holds both rows while the log is open.
        assert len(path.read_text().splitlines()) == 3
    with EventLog(path) as log:
        log.log(_event(2))
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(EVENT_FIELDS)
    assert [(float(r["start_s"]), float(r["score"]), r["is_anomaly"], r["overflows"])
            for r in rows] == [(0.0, 0.0, "0", "0"), (1.0, 0.5, "1", "1"), (2.0, 1.0, "0", "2")]
    assert rows[1]["wall_time"] == "2024-01-01T00:00:01+00:00"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full (a full disk) on this system")
def test_a_full_disk_under_the_event_log_is_named(tmp_path):
    """It was "error: No space left on device", the log's path nowhere."""
    full = tmp_path / "full.csv"
    full.symlink_to("/dev/full")
    with pytest.raises(DataError, match=r"full\.csv: cannot write to the event log \(No space left on device\)"):
        EventLog(full)


def test_event_log_unknown_extension_and_foreign_files(tmp_path):
    with pytest.raises(LatentbridgeError, match=re.escape(str(tmp_path / "events.txt"))):
        EventLog(tmp_path / "events.txt")
    with pytest.raises(LatentbridgeError, match="no extension"):
        EventLog(tmp_path / "events")
    bad_csv = tmp_path / "other.csv"
    bad_csv.write_text("a,b\n1,2\n")
    with pytest.raises(LatentbridgeError, match="header"):
        EventLog(bad_csv)
    bad_db = tmp_path / "junk.db"
    bad_db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LatentbridgeError, match="junk.db"):
        EventLog(bad_db)


# ---------------------------------------------------------------- overflow handling


class _Status:
    def __init__(self, input_overflow=False):
        self.input_overflow = input_overflow


def test_callback_drops_and_counts_when_queue_is_full():
    cb = capture._BlockQueue(max_queue_blocks=2)
    for i in range(10):
        cb(np.full((4, 1), i, np.float32), 4, None, _Status(input_overflow=(i == 0)))
    stats = cb.stats
    assert stats.input_overflows == 1
    assert stats.dropped_blocks == 8 and stats.dropped_frames == 32  # the waiting blocks, two at a time
    assert stats.overflows == 9
    assert cb.queue.qsize() == 2  # bounded
    first, ov0 = cb.queue.get_nowait()
    second, ov1 = cb.queue.get_nowait()
    assert first[0, 0] == 8 and ov0  # the freshest blocks, the first after the dropped ones flagged
    assert second[0, 0] == 9 and not ov1
    cb(np.full((4, 1), 10, np.float32), 4, None, _Status(input_overflow=True))
    block, ov = cb.queue.get_nowait()
    assert block[0, 0] == 10 and ov  # after the PortAudio input overflow
    cb(np.full((4, 1), 11, np.float32), 4, None, _Status())
    assert cb.queue.get_nowait()[1] is False
    indata = np.ones((4, 1), np.float32)
    cb(indata, 4, None, None)
    indata[:] = 7
    assert cb.queue.get_nowait()[0][0, 0] == 1  # a copy, not a view of PortAudio's buffer


class _FakeSoundDevice(types.ModuleType):
    """Stands in for sounddevice: a stream whose thread calls the callback as fast as it can."""

    class CallbackStop(Exception):
        pass

    class PortAudioError(Exception):
        pass

    def __init__(self, n_blocks=300, fail=False, period=0.0005):
        super().__init__("sounddevice")
        self.n_blocks = n_blocks
        self.period = period
        self.fail = fail
        fake = self

        class InputStream:
            def __init__(self, device, samplerate, channels, blocksize, dtype, callback):
                if fake.fail:
                    raise fake.PortAudioError(f"Error querying device {device}")
                self.channels, self.blocksize, self.callback = channels, blocksize, callback
                self.active = False

            def _run(self):
                for i in range(fake.n_blocks):
                    data = np.full((self.blocksize, self.channels), i, np.float32)
                    try:
                        self.callback(data, self.blocksize, None, _Status(i == 5))
                    except fake.CallbackStop:
                        break
                    time.sleep(fake.period)
                self.active = False

            def __enter__(self):
                self.active = True
                self.thread = threading.Thread(target=self._run)
                self.thread.start()
                return self

            def __exit__(self, *exc):
                self.thread.join()
                self.active = False

        self.InputStream = InputStream

    def query_devices(self, *args, **kwargs):
        return [
            {"index": 0, "name": "fake out", "max_input_channels": 0, "default_samplerate": 48000.0},
            {"index": 1, "name": "fake mic", "max_input_channels": 2, "default_samplerate": 44100.0},
        ]


def test_device_blocks_slow_consumer_counts_overflows(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", _FakeSoundDevice(n_blocks=300))
    stats = StreamStats()
    got = []
    for block, overflowed in device_blocks(sample_rate=1000, blocksize=10, duration_s=2.0,
                                           max_queue_blocks=3, stats=stats):
        got.append((block, overflowed))
        time.sleep(0.002)  # slower than the producer
    assert stats.frames_captured == 2000  # stopped after duration_s of audio
    assert stats.dropped_blocks > 0 and stats.overflows >= stats.dropped_blocks
    assert len(got) + stats.dropped_blocks == 200
    assert any(ov for _, ov in got)
    assert all(b.shape == (10, 1) for b, _ in got)


def test_a_device_lost_mid_stream_is_an_error(monkeypatch):
    """The stream stopping by itself (a device unplugged, its sound server killed) ended `listen` with exit 0, as if
    its duration had passed."""
    monkeypatch.setitem(sys.modules, "sounddevice", _FakeSoundDevice(n_blocks=50))
    got = []
    with pytest.raises(LatentbridgeError, match=r"the default input device stopped after 0\.50 s of audio: the "
                                                r"device was lost"):
        for block, _ in device_blocks(sample_rate=1000, blocksize=10, duration_s=2.0):
            got.append(block)
    assert len(got) == 50  # every block it gave was passed on first


def test_listen_reports_device_overflows(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", _FakeSoundDevice(n_blocks=1000))

    def slow_score(windows):
        time.sleep(0.005)
        return np.zeros(len(windows)), np.zeros(len(windows), bool)

    out = io.StringIO()
    summary = listen(slow_score, sample_rate=1000, window_s=0.05, hop_s=0.05, blocksize=10,
                     duration_s=5.0, out=out, max_queue_blocks=2)
    assert summary["overflows"] > 0
    assert f"{summary['overflows']} overflows" in out.getvalue().splitlines()[-1]
    assert summary["n_windows"] == len(out.getvalue().splitlines()) - 1


def test_device_open_error_lists_input_devices(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", _FakeSoundDevice(fail=True))
    with pytest.raises(LatentbridgeError) as info:
        next(device_blocks(device="7"))
    message = str(info.value)
    assert "input device 7" in message and "1: fake mic" in message
    assert "fake out" not in message


def test_real_portaudio_unknown_device_is_a_clear_error():
    with pytest.raises(LatentbridgeError, match="12345|sounddevice"):
        next(device_blocks(device=12345))


def test_list_input_devices_fields(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", _FakeSoundDevice())
    assert capture.list_input_devices() == [
        {"index": 1, "name": "fake mic", "max_input_channels": 2, "default_samplerate": 44100.0}
    ]


# ---------------------------------------------------------------- the real thing


@pytest.mark.audio
@pytest.mark.slow
def test_listen_from_virtual_microphone(virtual_microphone, tmp_path):
    import sounddevice as sd

    assert sd.query_devices(kind="input")["name"] in ("default", "pulse") or (
        sd.default.device[0] == virtual_microphone.input_device
    )
    sr = 16000
    wav = tmp_path / "tone.wav"
    tone_wav(wav, sr, silence_s=1.0, tone_s=2.0, noise=0.0)
    player = []

    def play_once_stream_is_open():
        # Start playback only once the input stream delivers audio, so nothing is missed.
        for block, overflowed in device_blocks(sample_rate=sr, blocksize=1024, duration_s=5.0):
            if not player:
                player.append(virtual_microphone.play(wav))
            yield block, overflowed

    threshold = 0.02
    scores: list[float] = []

    def score_fn(windows):
        rms, flags = rms_score(threshold)(windows)
        scores.extend(rms.tolist())
        return rms, flags

    out = io.StringIO()
    log = tmp_path / "events.csv"
    summary = listen(score_fn, sample_rate=sr, window_s=0.5, hop_s=0.25,
                     source=play_once_stream_is_open(), events=log, out=out)
    assert player and player[0].wait(timeout=10) == 0, player[0].stderr.read()
    text = out.getvalue()
    assert summary["duration_s"] == pytest.approx(5.0, abs=0.01)
    assert summary["n_windows"] == 19 == len(scores)
    assert max(scores) > 0.05, text  # the tone was heard (noise floor is ~0)
    assert min(scores) < 0.005, text  # and so was the silence
    flags = [s > threshold for s in scores]
    first, last = flags.index(True), len(flags) - 1 - flags[::-1].index(True)
    assert all(flags[first : last + 1]), text  # one contiguous run of tone windows
    # 2 s of tone, 0.5 s windows every 0.25 s: 7 windows lie inside it and at most 10 overlap it.
    assert 7 <= summary["n_anomalies"] <= 10, text
    assert not flags[0], text  # it starts with silence
    with open(log, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["n_windows"]
    assert [r["is_anomaly"] == "1" for r in rows] == flags


def test_a_live_inputs_offset_is_taken_out_as_a_files_is(caplog):
    """A biased input (a preamplifier's or ADC's offset) loses the offset its first window's blocks show, from every
    block after, as a file loses its mean when read; a muted stretch stays digital silence (named as such); a mean
    within 5 % of the spread (the sound's own slow part) is left, so an unbiased input scores as its file does."""
    rng = np.random.default_rng(8)
    sound = rng.standard_normal(2000).astype(np.float32)
    x = np.concatenate([sound + np.float32(0.3), np.zeros(1000, np.float32), sound[:800] + np.float32(0.3)])
    blocks = [(x[i:i + 128].reshape(-1, 1), False) for i in range(0, len(x), 128)]
    given = [b.copy() for b, _ in blocks]
    seen, score_fn = _recording_score()
    with caplog.at_level("WARNING"):
        summary = listen(score_fn, sample_rate=1000, window_s=0.4, hop_s=0.2, source=iter(blocks), out=None)
    first = x[:512]  # the blocks that bring in the first 400 samples
    offset = np.float32(first.mean())
    assert abs(offset - 0.3) < 0.1
    expected = np.concatenate([x[:2000] - offset, np.zeros(1000, np.float32), x[3000:] - offset])
    np.testing.assert_allclose(np.stack(seen), cut_windows(expected, 400, 200)[0][: len(seen)], atol=1e-6)
    assert summary["n_silent_windows"] == 4 and "digital silence" in caplog.text  # 2.0-2.4 s .. 2.6-3.0 s
    assert all(np.array_equal(b, g) for (b, _), g in zip(blocks, given))  # the caller's blocks left as they were
    seen, score_fn = _recording_score()  # no bias: the windows as they came
    listen(score_fn, sample_rate=1000, window_s=0.4, hop_s=0.2, out=None,
           source=iter([(sound[i:i + 128, None], False) for i in range(0, 2000, 128)]))
    np.testing.assert_array_equal(np.stack(seen), cut_windows(sound, 400, 200)[0][: len(seen)])


def test_a_gap_in_a_stream_ends_its_windows_and_none_spans_it(caplog):
    """Blocks dropped before a block (the server or the microphone fell behind): the samples before end as a
    recording ends (its last window), the windows after start at the block after the gap, and no window holds samples
    from both sides (each was a splice no recording has, scored as a fault). Times stay those of the samples
    received."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(2300).astype(np.float32)
    blocks = [(x[i:i + 100, None], i == 1100) for i in range(0, 2300, 100)]  # samples lost before 1100
    seen, score_fn = _recording_score()
    got = []
    summary = listen(score_fn, sample_rate=1000, window_s=0.4, hop_s=0.2, source=iter(blocks), out=None,
                     flush=True, on_window=got.append)
    starts = [round(e["start_s"] * 1000) for e in got]
    # before: 0..600 at the hop, then the segment's last window (700-1100); after: 1100.., then 1900-2300
    assert starts == [0, 200, 400, 600, 700, 1100, 1300, 1500, 1700, 1900]
    for start, window in zip(starts, seen):
        np.testing.assert_array_equal(window, x[start:start + 400])
    assert all(s + 400 <= 1100 or s >= 1100 for s in starts) and summary["overflows"] == 1

    buf = WindowBuffer(400, 200)  # a gap before a whole window: the samples before are left unscored
    assert buf.push(x[:300, None]) == [] and buf.gap() == []
    assert [s for s, _ in buf.push(x[300:800, None])] == [300] and [s for s, _ in buf.flush()] == [400]
    pieces = [(x[i:i + 300, None], i > 0) for i in range(0, 1800, 300)]  # a loss before every 0.3-s piece
    with caplog.at_level("WARNING"):
        summary = listen(score_fn, sample_rate=1000, window_s=0.4, hop_s=0.2, source=iter(pieces), out=None,
                         flush=True)
    assert summary["n_windows"] == 0 and "no window scored: blocks were lost 5 time(s)" in caplog.text
    buf = WindowBuffer(400, 200)  # too little after the last gap for a window: nothing more
    buf.push(x[:500, None])
    buf.gap()
    buf.push(x[500:700, None])
    assert buf.flush() == []


def test_a_resampled_stream_starts_its_filter_afresh_after_a_gap():
    """Blocks lost before a flagged block: the resampler's filter held up to 35 ms of the audio before the gap and
    gave it out with the block after it (a 48-kHz browser stream to a 16-kHz model: the first window after a gap
    began with the loud sound before it). Now the audio before the gap comes out whole, unflagged, and the flagged
    block's output holds nothing of it."""
    from latentbridge.io.resampling import resample, resampled_blocks

    t = np.arange(48000 * 3) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
    blocks = [(tone[i:i + 4800], False) for i in range(0, len(tone), 4800)]
    blocks += [(np.zeros((4800, 1), np.float32), i == 0) for i in range(10)]  # silence after the gap
    out = list(resampled_blocks(iter(blocks), 48000, 16000, 1))
    flagged = [i for i, (_, f) in enumerate(out) if f]
    assert len(flagged) == 1
    before = np.concatenate([b for b, _ in out[:flagged[0]]])[:, 0]
    after = np.concatenate([b for b, _ in out[flagged[0]:]])[:, 0]
    assert abs(len(before) - 16000 * 3) <= 1 and np.abs(after).max() == 0.0
    np.testing.assert_allclose(before[:47000], resample(tone[:, 0], 48000, 16000)[:47000], atol=1e-5)
