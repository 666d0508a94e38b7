"""Tests for latentbridge.io: reading, validation, windowing, writing; the package's import weight."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentbridge.errors import DataError
from latentbridge.io import (
    AUDIO_EXTENSIONS,
    AudioInfo,
    audio_info,
    cut_windows,
    level_dbfs,
    list_audio_files,
    read_audio,
    write_audio,
    write_wav,
)
from latentbridge.io.levels import DIGITAL_SILENCE_DBFS

SR = 16000


def tone(freq=440.0, sr=SR, seconds=0.5, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ----------------------------------------------------------------------------- round trips


def test_wav_round_trip_pcm16(tmp_path):
    x = tone()
    p = write_wav(tmp_path / "a.wav", x, SR)
    y, sr = read_audio(p)
    assert sr == SR and y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1.0 / 2**14
    info = audio_info(p)
    assert info == AudioInfo(sample_rate=SR, frames=x.size, channels=1, duration_s=x.size / SR, codec="PCM_16")
    assert sf.info(str(p)).subtype == "PCM_16" and not info.lossy
    # atomic write leaves no temp files behind
    assert [q.name for q in tmp_path.iterdir()] == ["a.wav"]


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("WAVEX", "wav"), ("RF64", "wav"), ("W64", "w64")])
def test_pcm16_is_read_bit_for_bit_as_libsndfile_reads_it(tmp_path, fmt, ext, monkeypatch):
    """16-bit PCM is read as integers and scaled here, block by block: the samples libsndfile's float read gives, also
    across blocks, for several channels and where the data chunk holds fewer frames than its header declares."""
    import latentbridge.io.wav as wav
    from latentbridge.io.levels import remove_dc

    monkeypatch.setattr(wav, "_PCM16_BLOCK", 1000)  # several blocks and a partial last one
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0, 0.4, (4501, 3)), -1, 1).astype(np.float32)
    x[10:20], x[30:40] = 1.0, -1.0
    p = tmp_path / f"a.{ext}"
    sf.write(p, x, SR, format=fmt, subtype="PCM_16")
    with sf.SoundFile(p) as f:
        libsndfile = f.read(dtype="float32", always_2d=True)
    y, _ = read_audio(p, mono=False)
    assert y.shape == (3, 4501) and y.flags.c_contiguous
    np.testing.assert_array_equal(y, remove_dc(libsndfile.copy()).T)  # less each channel's offset, as read_audio
    with sf.SoundFile(p) as f:
        assert np.array_equal(wav.read_pcm16(f, 4501), libsndfile) and wav.read_pcm16(f, 0).shape == (0, 3)
    with sf.SoundFile(p) as f:  # a file holding fewer frames than asked for: those it holds
        assert np.array_equal(wav.read_pcm16(f, 9000), libsndfile)


def test_flac_round_trip(tmp_path):
    x = tone(seconds=0.3)
    p = write_audio(tmp_path / "a.flac", x, SR, subtype="PCM_24")
    y, sr = read_audio(p)
    assert sr == SR and y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-6
    assert audio_info(p).codec == "PCM_24" and not audio_info(p).lossy


def test_ogg_round_trip(tmp_path):
    x = tone(freq=1000.0, seconds=0.5)
    p = write_audio(tmp_path / "a.ogg", x, SR)
    y, sr = read_audio(p)
    assert sr == SR and y.shape == x.shape  # vorbis is lossy but keeps length
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * SR / y.size - 1000.0) < 5.0
    assert np.corrcoef(x[2000:-2000], y[2000:-2000])[0, 1] > 0.99
    assert audio_info(p).codec == "VORBIS" and audio_info(p).lossy


def test_mp3_listed_and_readable_when_supported(tmp_path):
    assert ".mp3" in AUDIO_EXTENSIONS
    x = tone(seconds=0.5)
    p = write_audio(tmp_path / "a.mp3", x, SR)
    y, sr = read_audio(p)
    assert sr == SR and abs(y.size - x.size) <= 1152


def test_stereo_mono_average_and_channel_pick(tmp_path):
    left = tone(440.0)
    right = tone(880.0, amp=0.25)
    p = write_audio(tmp_path / "s.wav", np.stack([left, right]), SR, subtype="FLOAT")
    mono, _ = read_audio(p)
    assert mono.shape == left.shape
    np.testing.assert_allclose(mono, (left + right) / 2, atol=1e-7)
    both, _ = read_audio(p, mono=False)
    assert both.shape == (2, left.size)
    np.testing.assert_allclose(both[1], right, atol=1e-7)
    r, _ = read_audio(p, channel=1)
    np.testing.assert_allclose(r, right, atol=1e-7)
    r2, _ = read_audio(p, channel=1, mono=False)
    assert r2.shape == (1, left.size)
    with pytest.raises(DataError, match=r"s\.wav: channel 2 out of range"):
        read_audio(p, channel=2)
    assert audio_info(p).channels == 2


def test_resample_keeps_frequency_and_length(tmp_path):
    sr_in = 44100
    x = tone(1000.0, sr=sr_in, seconds=1.0)
    p = write_audio(tmp_path / "hi.wav", x, sr_in, subtype="FLOAT")
    y, sr = read_audio(p, sample_rate=16000)
    assert sr == 16000 and y.dtype == np.float32
    assert abs(y.size - 16000) <= 1
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    peak_hz = np.argmax(spec) * sr / y.size
    assert abs(peak_hz - 1000.0) <= 2.0
    assert abs(np.sqrt(np.mean(y[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


# ----------------------------------------------------------------------------- bad inputs


def _good_wav(path):
    write_wav(path, tone(), SR)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.wav: file does not exist"):
        read_audio(tmp_path / "nope.wav")


def test_wrong_extension(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: unsupported file type '\.txt'"):
        read_audio(p)


def test_truncated_wav_data_chunk(tmp_path):
    p = _good_wav(tmp_path / "cut.wav")
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])
    with pytest.raises(DataError, match=r"cut\.wav: truncated audio file: header declares 8000 frames"):
        read_audio(p)


@pytest.mark.parametrize("name, fmt, subtype", [("cut.aiff", "AIFF", "PCM_24"), ("cut.aifc", "AIFF", "ULAW"),
                                                ("cut.au", "AU", "PCM_16"), ("cut.snd", "AU", "ALAW"),
                                                ("cut.w64", "W64", "FLOAT"), ("cut.rf64", "RF64", "PCM_16")])
def test_truncated_other_containers(tmp_path, name, fmt, subtype):
    """libsndfile reads the samples present of these formats as the whole file: the header's count is compared, by
    the whole read and by the block reader; the whole file reads as written."""
    from latentbridge.io.blockread import RecordingBlocks
    from latentbridge.io.containers import declared_container_frames

    p = tmp_path / name
    sf.write(p, np.stack([tone(), -tone()], axis=1), SR, format=fmt, subtype=subtype)
    assert declared_container_frames(p) == 8000 and read_audio(p, mono=False)[0].shape == (2, 8000)
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])
    assert sf.info(p).frames < 4100  # what libsndfile says of it
    for read in (read_audio, RecordingBlocks):
        with pytest.raises(DataError, match=rf"{name}: truncated audio file: header declares 8000 frames but only "
                                            r"\d+ are present"):
            read(p)


def test_truncated_wav_header(tmp_path):
    p = _good_wav(tmp_path / "head.wav")
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(DataError, match=r"head\.wav: unreadable or truncated audio file \(.+\)"):
        read_audio(p)
    with pytest.raises(DataError, match=r"head\.wav: unreadable"):
        audio_info(p)


def test_truncated_flac(tmp_path):
    p = write_audio(tmp_path / "cut.flac", tone(seconds=3.0), SR)
    b = p.read_bytes()
    p.write_bytes(b[: len(b) // 2])
    with pytest.raises(DataError, match=r"cut\.flac: (unreadable or )?truncated"):
        read_audio(p)


def test_garbage_bytes_named_wav(tmp_path):
    p = tmp_path / "garbage.wav"
    p.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(DataError, match=r"garbage\.wav: unreadable or truncated audio file"):
        read_audio(p)


def test_random_bytes_named_mp3_are_not_called_a_missing_file(tmp_path):
    """libsndfile's text for bytes it cannot decode is 'File does not exist or is not a regular file (possibly a
    pipe?)', which the user read as a wrong path."""
    p = tmp_path / "noise.mp3"
    p.write_bytes(np.random.default_rng(0).bytes(20000))
    with pytest.raises(DataError, match=r"noise\.mp3: unreadable or truncated audio file \(no audio in a format the "
                                        r"decoder recognises") as e:
        read_audio(p)
    assert "does not exist" not in str(e.value)
    with pytest.raises(DataError, match=r"missing\.mp3: file does not exist"):
        read_audio(tmp_path / "missing.mp3")


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.wav: file is empty \(0 bytes\)"):
        read_audio(p)


def test_zero_frame_wav(tmp_path):
    p = tmp_path / "noframes.wav"
    sf.write(str(p), np.zeros(0, np.float32), SR)
    with pytest.raises(DataError, match=r"noframes\.wav: audio has zero length"):
        read_audio(p)


def test_nan_samples(tmp_path):
    x = tone()
    x[[3, 10, 20]] = np.nan
    x[30] = np.inf
    p = tmp_path / "nan.wav"
    sf.write(str(p), x, SR, subtype="FLOAT")
    with pytest.raises(DataError, match=r"nan\.wav: contains 4 non-finite samples \(3 NaN, 1 inf\)"):
        read_audio(p)


def test_samples_too_large_for_the_features(tmp_path):
    """Finite samples of 1e18 (a float WAV of another scale, corrupt values) overflowed the 32-bit features: the CLI
    scored the file NaN and called it normal, the server answered 500, the edge scorer flagged it. Refused where
    every path reads (the whole file, the block reader of the edge scorer and long files); 1e10 is read."""
    from latentbridge.io.blockread import RecordingBlocks

    for scale, refused in ((1e18, True), (1e10, False)):
        p = tmp_path / f"scaled_{scale:g}.wav"
        sf.write(str(p), (scale * tone(amp=1.0)).astype(np.float32), SR, subtype="FLOAT")
        if refused:
            with pytest.raises(DataError, match=r"scaled_1e\+18\.wav: samples reach 1e\+18, beyond 1e\+12: its "
                                                 r"features would overflow"):
                read_audio(p)
            with pytest.raises(DataError, match=r"samples reach 1e\+18, beyond 1e\+12"):
                RecordingBlocks(p, None)
        else:
            assert np.abs(read_audio(p)[0]).max() > 1e9


def test_silent_wav(tmp_path):
    p = tmp_path / "zeros.wav"
    sf.write(str(p), np.zeros(SR, np.float32), SR, subtype="PCM_16")
    with pytest.raises(DataError, match=r"zeros\.wav: audio is silent"):
        read_audio(p)


def test_tables_in_small_units_are_not_silent(tmp_path):
    """A vibration table in a sensor's units (a displacement in metres near 1e-10) is read, and its level said as it
    is; audio that quiet stays silent (under a 24-bit step), and so does a table under 32-bit spectra's precision."""
    t = np.arange(4000) / 1000.0
    for name, scale in (("metres.csv", 2e-10), ("femto.csv", 1e-16)):
        np.savetxt(tmp_path / name, np.c_[t, scale * np.sin(2 * np.pi * 50 * t)], delimiter=",", header="time,x",
                   comments="", fmt="%.6g")
    wave, rate = read_audio(tmp_path / "metres.csv")
    assert rate == 1000 and np.abs(wave).max() == pytest.approx(2e-10, rel=1e-3)
    assert level_dbfs(wave) == pytest.approx(20 * np.log10(2e-10 / np.sqrt(2)), abs=0.1)  # -197 dBFS (was -193)
    with pytest.raises(DataError, match=r"femto\.csv: recording is silent \(every sample has magnitude below 1e-15"):
        read_audio(tmp_path / "femto.csv")
    sf.write(tmp_path / "quiet.wav", (2e-10 * np.sin(2 * np.pi * 50 * t)).astype(np.float32), 1000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"quiet\.wav: audio is silent \(every sample has magnitude below 1e-08"):
        read_audio(tmp_path / "quiet.wav")
    assert level_dbfs(np.zeros(100)) == DIGITAL_SILENCE_DBFS


def test_silent_selected_channel(tmp_path):
    p = write_audio(tmp_path / "half.wav", np.stack([tone(), np.zeros(SR // 2, np.float32)]), SR)
    read_audio(p, channel=0)
    with pytest.raises(DataError, match=r"half\.wav: channel 1 is silent"):
        read_audio(p, channel=1)


def test_write_refuses_nan(tmp_path):
    x = tone()
    x[0] = np.nan
    with pytest.raises(DataError, match=r"bad\.wav: refusing to write"):
        write_wav(tmp_path / "bad.wav", x, SR)
    assert not (tmp_path / "bad.wav").exists()


def test_write_wav_clips_pcm(tmp_path):
    p = write_wav(tmp_path / "loud.wav", np.array([2.0, -3.0, 0.5], np.float32), SR)
    y, _ = sf.read(p)  # the samples as stored (read_audio takes the file's mean out)
    np.testing.assert_allclose(y, [32767 / 32768, -1.0, 0.5], atol=1e-4)


# ----------------------------------------------------------------------------- listing


def test_linked_folders_are_read_and_links_to_nothing_named(tmp_path, caplog):
    """A folder of recordings linked in was left out, a link to nothing skipped, both without a word."""
    import logging

    site = tmp_path / "elsewhere" / "site1"
    site.mkdir(parents=True)
    for i in range(3):
        sf.write(site / f"s{i}.wav", tone(), SR)
    root = tmp_path / "data"
    root.mkdir()
    sf.write(root / "a.wav", tone(), SR)
    (root / "site1").symlink_to(site, target_is_directory=True)
    (root / "site1_again").symlink_to(site, target_is_directory=True)  # the same folder twice: read once
    (root / "loop").symlink_to(root, target_is_directory=True)  # a link to a parent does not loop
    (root / "gone.wav").symlink_to(tmp_path / "missing.wav")
    with caplog.at_level(logging.WARNING, logger="latentbridge"):
        files = list_audio_files(root)
    assert [f.name for f in files] == ["a.wav", "s0.wav", "s1.wav", "s2.wav"]
    assert "1 link to nothing left out (gone.wav)" in caplog.text


def test_a_file_hard_linked_under_two_names_is_read_once(tmp_path, caplog):
    """A recording or an image under a second name by a hard link (``ln``, ``cp -l``): one file, read once as a
    symbolic link's is (it was read twice: fitted or scored twice); two files of the same content are two files."""
    import logging

    from PIL import Image

    from latentbridge.data.audio import list_files
    from latentbridge.io.images import list_image_files

    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / name, tone(), SR)
    os.link(tmp_path / "a.wav", tmp_path / "c.wav")
    with caplog.at_level(logging.WARNING, logger="latentbridge"):
        assert [f.name for f in list_files(tmp_path)] == ["a.wav", "b.wav"]
    assert f"{tmp_path / 'c.wav'} (the same file as {tmp_path / 'a.wav'})" in caplog.text
    images = tmp_path / "images"
    images.mkdir()
    for name in ("x.png", "y.png"):
        Image.new("L", (8, 8), 128).save(images / name)
    os.link(images / "x.png", images / "z.png")
    with caplog.at_level(logging.WARNING, logger="latentbridge"):
        assert [f.name for f in list_image_files(images)] == ["x.png", "y.png"]
    assert "1 image(s) reached twice through links, read once" in caplog.text and "z.png -> x.png" in caplog.text


def test_folders_and_files_that_cannot_be_read_are_named(tmp_path, caplog, monkeypatch):
    """A subfolder without read permission was left out without a word (a model fitted on half the files); a file
    without it was called an unreadable or truncated audio file (libsndfile: "System error.")."""
    import builtins
    import logging
    import os

    from latentbridge.io import read_audio

    root = tmp_path / "data"
    (root / "locked").mkdir(parents=True)
    sf.write(root / "a.wav", tone(), SR)
    sf.write(root / "locked" / "b.wav", tone(), SR)
    scandir, opened = os.scandir, builtins.open

    def refused(path):  # (the tests run as root, whom chmod does not stop)
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", lambda p=".": refused(p) if Path(p).name in ("locked", "data2") else scandir(p))
    with caplog.at_level(logging.WARNING, logger="latentbridge"):
        assert [f.name for f in list_audio_files(root)] == ["a.wav"]
    assert "1 folder(s) could not be read, their files left out" in caplog.text
    assert "locked (Permission denied)" in caplog.text
    (tmp_path / "data2").mkdir()
    with pytest.raises(DataError, match=r"data2: cannot be read \(Permission denied\)"):
        list_audio_files(tmp_path / "data2")
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: refused(f) if str(os.fsdecode(f)).endswith("a.wav")
                        else opened(f, *a, **k))
    import soundfile

    def system_error(*a, **k):
        raise RuntimeError("System error.")

    monkeypatch.setattr(soundfile, "info", system_error)
    monkeypatch.setattr(soundfile, "SoundFile", system_error)
    with pytest.raises(DataError, match=r"a\.wav: cannot be read \(Permission denied\)"):
        read_audio(root / "a.wav")


def test_list_audio_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ["b.wav", "a.FLAC", "sub/c.ogg"]:
        write_audio(tmp_path / name, tone(seconds=0.1), SR)
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "._b.wav").write_bytes(b"junk")  # macOS resource fork: skipped
    files = list_audio_files(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a.FLAC", "b.wav", "sub/c.ogg"]
    flat = list_audio_files(tmp_path, recursive=False)
    assert [f.name for f in flat] == ["a.FLAC", "b.wav"]
    assert list_audio_files(tmp_path / "b.wav") == [tmp_path / "b.wav"]


def test_list_audio_files_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing: does not exist"):
        list_audio_files(tmp_path / "missing")
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("x")
    (d / "b.txt").write_text("x")
    (d / "c.dat").write_text("x")
    with pytest.raises(DataError) as e:
        list_audio_files(d)
    msg = str(e.value)
    assert msg.startswith(str(d) + ": no audio files found")
    assert "saw 3 other files" in msg and ".txt x2" in msg and ".wav" in msg and ".flac" in msg and ".csv" in msg
    (d / "c.csv").write_text("x")  # with no audio file, a folder's CSVs are its (vibration) recordings
    assert list_audio_files(d) == [d / "c.csv"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no audio files found.*holds no files"):
        list_audio_files(empty)
    with pytest.raises(DataError, match=r"a\.txt: not an audio file"):
        list_audio_files(d / "a.txt")


# ----------------------------------------------------------------------------- windows


def test_a_window_view_cuts_what_cut_windows_holds():
    from latentbridge.io.windows import WindowView

    x = np.random.default_rng(0).normal(size=(2, 1000)).astype(np.float32)
    eager, s1 = cut_windows(x, 100, 30)
    lazy, s2 = cut_windows(x, 100, 30, lazy=True)
    assert isinstance(lazy, WindowView) and lazy.shape == eager.shape == (31, 2, 100) and len(lazy) == 31
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(lazy[3:9], eager[3:9])
    np.testing.assert_array_equal(np.asarray(lazy), eager)  # the last window ends on the last sample, as cut
    assert lazy[3:9].flags.c_contiguous and np.shares_memory(lazy._view, x)
    short, _ = cut_windows(x[:, :50], 100, 30, lazy=True)  # padded: an array of its own
    assert isinstance(short, np.ndarray) and short.shape == (1, 2, 100)


def test_long_recordings_are_read_and_checked_block_by_block(tmp_path, monkeypatch):
    """An hour at 48 kHz peaked at 4.2 GB to score (its windows held twice, a float64 copy for its level, a second
    buffer in the decoder); the checks and the level now go block by block, with the same results."""
    import latentbridge.io.levels as io_levels
    from latentbridge.io import level_dbfs

    x = (0.3 * np.sin(np.arange(50_000) / 7.0)).astype(np.float32)
    monkeypatch.setattr(io_levels, "_BLOCK", 4096)
    assert level_dbfs(x) == pytest.approx(10 * np.log10(np.mean(x.astype(np.float64) ** 2)), abs=1e-5)
    # the active part: frames in float64 block by block (a float64 copy of the whole recording before), the same
    # bounds as of the frames of the whole copy: quiet up to 12,345, loud to 31,000 across many blocks
    quiet = x * np.where((np.arange(50_000) < 12_345) | (np.arange(50_000) >= 31_000), 1e-4, 1.0).astype(np.float32)
    db = 20 * np.log10(io_levels.frame_rms(quiet.astype(np.float64), 320))
    loud = np.flatnonzero(db >= db.max() - 40)
    assert io_levels.active_bounds(quiet, 16_000) == (loud[0] * 320, (loud[-1] + 1) * 320) == (12_160, 31_040)
    assert io_levels.active_bounds(quiet[:100], 16_000) == (0, 100) and io_levels.active_bounds(quiet[:0], 16_000) \
        == (0, 0)
    bad = x.copy()
    bad[40_000] = np.nan
    bad[45_001] = np.inf
    write_wav(tmp_path / "ok.wav", x, SR, subtype="FLOAT")
    assert abs(x[x != 0].mean(dtype=np.float64)) < 2.0 ** -15  # an offset under one 16-bit step: read as it is
    np.testing.assert_array_equal(read_audio(tmp_path / "ok.wav")[0], x)
    y = x + np.float32(0.01)  # a real offset, taken out (a zero crossing's odd zero sample with the rest)
    y[0] = 0.0
    write_wav(tmp_path / "biased.wav", y, SR, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(tmp_path / "biased.wav")[0], y - y.mean(dtype=np.float64), atol=1e-6)
    import soundfile as sf

    sf.write(tmp_path / "bad.wav", bad, SR, subtype="FLOAT")
    with pytest.raises(DataError, match=r"bad\.wav: contains 2 non-finite samples \(1 NaN, 1 inf\)"):
        read_audio(tmp_path / "bad.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(50_000, np.float32), SR, subtype="FLOAT")
    with pytest.raises(DataError, match="silent"):
        read_audio(tmp_path / "silent.wav")


def test_cut_windows_exact_and_starts():
    x = np.arange(10, dtype=np.float32)
    w, s = cut_windows(x, 4, 2)
    # full windows at 0,2,4,6; next start 8 has 2 real samples = half -> dropped
    assert s.tolist() == [0, 2, 4, 6]
    assert w.shape == (4, 4)
    np.testing.assert_array_equal(w[3], [6, 7, 8, 9])
    assert w.flags.c_contiguous and w.dtype == np.float32


def test_cut_windows_end_on_the_last_real_samples_when_more_than_half_is_left():
    x = np.arange(11, dtype=np.float32)
    for pad in ("wrap", "constant", "reflect"):
        w, s = cut_windows(x, 4, 4, pad=pad)
        # full at 0,4; 3 samples (> 2) follow 8: one more window, the last 4 samples (once padded: 8, 9, 10, 0)
        assert s.tolist() == [0, 4, 7]
        np.testing.assert_array_equal(w[2], [7, 8, 9, 10])
    w, s = cut_windows(x, 4, 4, pad="none")
    assert s.tolist() == [0, 4]
    # exactly half a window left -> no more window
    w, s = cut_windows(np.arange(10.0), 4, 4)
    assert s.tolist() == [0, 4]
    w, s = cut_windows(np.arange(20.0).reshape(2, 10), 4, 3)  # channels first: the same starts for every channel
    assert s.tolist() == [0, 3, 6] and w.shape == (3, 2, 4)


def test_cut_windows_short_input_padding():
    x = np.array([1.0, 2.0, 3.0])
    w, s = cut_windows(x, 8, 4, pad="wrap")
    assert s.tolist() == [0]
    np.testing.assert_array_equal(w[0], [1, 2, 3, 1, 2, 3, 1, 2])
    w, _ = cut_windows(x, 8, 4, pad="constant")
    np.testing.assert_array_equal(w[0], [1, 2, 3, 0, 0, 0, 0, 0])
    w, _ = cut_windows(x, 6, 4, pad="reflect")
    np.testing.assert_array_equal(w[0], [1, 2, 3, 2, 1, 2])
    with pytest.raises(DataError, match=r"clip\.wav: recording too short: 3 samples"):
        cut_windows(x, 8, 4, pad="none", name="clip.wav")
    with pytest.raises(ValueError):
        cut_windows(x, 8, 4, pad="bogus")


def test_window_starts_counts_the_windows_cut_windows_cuts():
    from latentbridge.io.windows import window_starts

    for pad in ("wrap", "constant", "none"):
        for window in (4, 7):
            for hop in (1, 3, 7, 9):
                for n in range(1, 30):
                    got = window_starts(n, window, hop, pad)
                    if n < window and pad == "none":
                        assert got.size == 0
                        continue
                    assert got.tolist() == cut_windows(np.zeros(n), window, hop, pad=pad)[1].tolist()


def test_no_window_is_cut_twice_and_a_stream_cuts_the_recording_s_windows():
    """With a hop under half a window, the recording's last window (start T - window) was the last full window again:
    `anomaly listen --hop 0.5` of a 2-s model scored, printed and logged 4.00-6.00 s twice (and score cut it twice)."""
    from latentbridge.io.windows import WindowBuffer, window_starts

    for window in (4, 7, 8):
        for hop in (1, 2, 3, 5, 9):
            for n in range(window, 40):
                starts = window_starts(n, window, hop, "wrap")
                assert (np.diff(starts) > 0).all() and starts[-1] + window <= n, (window, hop, n, starts)
                buf, got = WindowBuffer(window, hop), []
                for i in range(0, n, 5):
                    got += [s for s, _ in buf.push(np.arange(i, min(i + 5, n), dtype=np.float32))]
                got += [s for s, _ in buf.flush("wrap")]
                assert got == starts.tolist(), (window, hop, n)
    assert window_starts(96000, 32000, 8000).tolist() == list(range(0, 64001, 8000))  # 6 s, 2-s windows, 0.5-s hop


def test_cut_windows_multichannel_and_large():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 1000)).astype(np.float32)
    w, s = cut_windows(x, 100, 50)
    assert w.shape == (19, 2, 3, 100)
    assert s.tolist() == list(range(0, 901, 50))
    for i, st in enumerate(s):
        np.testing.assert_array_equal(w[i], x[..., st : st + 100])
    # windows are a copy, not a view of the input
    w[0, 0, 0, 0] = 123.0
    assert x[0, 0, 0] != 123.0


# ----------------------------------------------------------------------------- import weight


def test_import_io_loads_no_torch_librosa_or_sounddevice():
    """The edge scorer imports latentbridge.io on devices without torch: keep it light."""
    import latentbridge

    src = str(Path(latentbridge.__file__).resolve().parents[1])  # the code under test
    code = ("import latentbridge.io, sys; "
            "heavy = sorted({'torch', 'librosa', 'sounddevice'} & set(sys.modules)); "
            "assert not heavy, heavy; "
            "from latentbridge.io import read_audio, cut_windows, resample, list_audio_files, write_wav, "
            "audio_info, check_recording_length, read_vibration_csv, read_mask_png; "
            "print(latentbridge.io.__file__)")
    env = {**os.environ, "PYTHONPATH": src}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()).resolve() == Path(src) / "latentbridge" / "io" / "__init__.py"


def test_linked_image_folders_are_read(tmp_path):
    """An image folder's linked class folder was left out (rglob does not follow links)."""
    from PIL import Image

    from latentbridge.io.images import list_image_files

    elsewhere = tmp_path / "elsewhere" / "cats"
    elsewhere.mkdir(parents=True)
    root = tmp_path / "images" / "dogs"
    root.mkdir(parents=True)
    for folder in (elsewhere, root):
        Image.new("L", (8, 8), 128).save(folder / "a.png")
    (tmp_path / "images" / "cats").symlink_to(elsewhere, target_is_directory=True)
    files = list_image_files(tmp_path / "images")
    assert [f.relative_to(tmp_path / "images").as_posix() for f in files] == ["cats/a.png", "dogs/a.png"]


# ----------------------------------------------------------------------------- a recorder's offset, a header's rate


def test_a_constant_offset_is_taken_out_of_audio_as_of_vibration_tables(tmp_path):
    x = tone(seconds=1.0)
    clean = write_audio(tmp_path / "clean.wav", x, SR, subtype="PCM_16")
    biased = write_audio(tmp_path / "biased.wav", np.stack([0.3 + 0.5 * x, -0.2 + 0.5 * x]), SR, subtype="PCM_16")
    y0, _ = read_audio(clean)
    y1, _ = read_audio(biased)  # the mono mix of two channels with opposite offsets
    assert abs(float(y1.mean())) < 1e-6 and abs(float(y0.mean())) < 2.0 ** -15  # under one 16-bit step: left
    np.testing.assert_allclose(y1, 0.5 * y0, atol=1e-4)  # the sound as it was, at its own level
    lsb = np.random.default_rng(0).integers(-1, 2, SR).astype(np.float32) / 32768
    dead = write_audio(tmp_path / "dead.wav", 0.2 + lsb, SR, subtype="PCM_16")
    from latentbridge.io import level_dbfs

    assert level_dbfs(read_audio(dead)[0]) < -90  # a dead microphone with a bias reads as dead, not loud
    write_audio(tmp_path / "dc.wav", np.full(SR, 0.25, np.float32), SR, subtype="PCM_16")
    with pytest.raises(DataError, match=r"dc\.wav: audio is silent .*constant offset"):
        read_audio(tmp_path / "dc.wav")
    # one sample is its own offset: too short, not silent (the server answered "audio is silent" of it)
    write_audio(tmp_path / "one.wav", np.full(1, 0.3, np.float32), SR, subtype="PCM_16")
    with pytest.raises(DataError, match=r"one\.wav: recording too short: 1 sample$"):
        read_audio(tmp_path / "one.wav")


def test_a_rate_the_header_cannot_mean_is_refused_naming_it(tmp_path):
    x = tone(seconds=1.0, sr=8000)
    one_hz = tmp_path / "one_hz.wav"
    sf.write(one_hz, x, 1, subtype="PCM_16")  # an 8-kHz clip whose header says 1 Hz
    with pytest.raises(DataError, match=r"one_hz\.wav: recorded at 1 Hz .* upsample it 8e\+03 times \(at most 32\)"):
        read_audio(one_hz, sample_rate=8000)  # it read 8,000-fold upsampled: gigabytes for a clip
    read_audio(tmp_path / one_hz)  # its own rate: read as it is (a survey reads it so)
    ok = write_audio(tmp_path / "phone.wav", x, 8000, subtype="PCM_16")
    assert read_audio(ok, sample_rate=44100)[1] == 44100  # 5.5-fold: read
    raw = bytearray(ok.read_bytes())
    raw[24:28] = (10**9).to_bytes(4, "little")  # the fmt chunk's rate field
    (tmp_path / "fast.wav").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"fast\.wav: a sample rate of 1e\+09 Hz in its header, above 1e\+08 Hz"):
        read_audio(tmp_path / "fast.wav", sample_rate=8000)
    raw[24:28] = (0).to_bytes(4, "little")
    (tmp_path / "zero.wav").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"zero\.wav: .*header's sample rate or channel count cannot be read"):
        read_audio(tmp_path / "zero.wav")


def test_aifc_is_read_and_formats_without_a_decoder_say_how_to_convert(tmp_path):
    x = tone()
    sf.write(tmp_path / "a.aifc", x, SR, format="AIFF", subtype="PCM_16")
    y, sr = read_audio(tmp_path / "a.aifc")
    assert sr == SR and np.allclose(y, x - x.mean(), atol=1e-4)


def test_digital_zeros_stay_silence_when_the_offset_is_taken_out(tmp_path):
    x = np.zeros(3 * SR, np.float32)
    x[SR:2 * SR] = 0.2 + tone(seconds=1.0)  # a biased recorder's sound between two muted stretches
    y, _ = read_audio(write_audio(tmp_path / "gaps.wav", x, SR, subtype="FLOAT"))
    assert not y[:SR].any() and not y[2 * SR:].any()
    np.testing.assert_allclose(y[SR:2 * SR], tone(seconds=1.0), atol=1e-4)
    # sound in digital silence, a knock or a click: no offset of its own taken out (a pulse came back bent, from -0.36
    # to 0.28, and a rectangular one as "audio is silent")
    for pulse in (0.8 * np.sin(np.pi * np.arange(80) / 80), np.full(10, 0.5), np.full(SR // 20, 0.3)):
        x = np.zeros(SR, np.float32)
        x[SR // 2:SR // 2 + len(pulse)] = pulse
        y, _ = read_audio(write_audio(tmp_path / "knock.wav", x, SR, subtype="FLOAT"))
        np.testing.assert_array_equal(y, x)
    (tmp_path / "memo.m4a").write_bytes(b"\0\0\0\x18ftypM4A ")
    with pytest.raises(DataError, match=r"memo\.m4a: AAC audio \(\.m4a\) is not a format the decoder reads; convert "
                                        r"it first, e\.g\. 'ffmpeg -i memo\.m4a memo\.flac'"):
        list_audio_files(tmp_path / "memo.m4a")
    with pytest.raises(DataError, match=r"memo\.m4a: AAC audio"):
        read_audio(tmp_path / "memo.m4a")


def test_audio_the_decoder_lacks_is_named_so_in_a_folder(tmp_path, caplog):
    # said to be audio the decoder does not read, with how to convert it (it was "not recordings")
    (tmp_path / "memos").mkdir()
    (tmp_path / "memos" / "a.m4a").write_bytes(b"\0\0\0\x18ftypM4A ")
    (tmp_path / "memos" / "b.wma").write_bytes(b"\0" * 16)
    with pytest.raises(DataError, match=r"memos: no audio files found in this folder or its subfolders; saw 2 other "
                       r"files \(\.m4a x1, \.wma x1; AAC/WMA audio is not a format the decoder reads: convert it "
                       r"first, e\.g\. 'ffmpeg -i rec\.m4a rec\.flac' \(lossless\)\); accepted extensions"):
        list_audio_files(tmp_path / "memos")
    write_audio(tmp_path / "memos" / "c.wav", tone(), SR)
    with caplog.at_level("WARNING"):
        assert list_audio_files(tmp_path / "memos") == [tmp_path / "memos" / "c.wav"]
    assert "memos: 2 files left out, not recordings the toolkit reads (.m4a x1, .wma x1; AAC/WMA audio is not a " \
           "format the decoder reads" in caplog.text


def test_a_folder_of_hidden_recordings_says_so(tmp_path):
    (tmp_path / "rec" / ".recordings").mkdir(parents=True)
    for k in range(3):
        write_audio(tmp_path / "rec" / ".recordings" / f"{k}.wav", tone(), SR)
    (tmp_path / "rec" / "._a.wav").write_bytes(b"\0" * 4096)
    with pytest.raises(DataError, match=r"rec: no audio files found .*; it holds 4 hidden files \(names, or folders, "
                                        r"starting with '\.': never read\), and no other"):
        list_audio_files(tmp_path / "rec")


def test_stereo_offset_and_mix_are_computed_channel_by_channel(tmp_path):
    """The offset, zero count, peak and mono mix of (T, C) samples went through numpy's reductions over the first
    axis (30 times slower for stereo); the same numbers now, each channel's own offset."""
    import soundfile as sf

    from latentbridge.io import read_audio
    from latentbridge.io.audio import mix_down
    from latentbridge.io.levels import _peak, remove_dc

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal((48000, 3)) + [0.2, -0.05, 0.0]).astype(np.float32)
    x[1000:3000, 2] = 0.0  # digital zeros on one channel: more than 1 % of all samples, kept as zeros
    y = remove_dc(x.copy())
    kept = np.ones(len(x), bool)
    kept[1000:3000] = False
    np.testing.assert_allclose(y[:, :2].mean(axis=0), 0.0, atol=1e-6)
    assert (y[1000:3000, 2] == 0).all() and abs(y[kept, 2].mean()) < 1e-6
    assert _peak(y) == np.abs(y).max()
    assert np.array_equal(mix_down(y.T), y.T.mean(axis=0))
    sf.write(tmp_path / "st.wav", x[:, :2], 16000, subtype="FLOAT")
    wave, _ = read_audio(tmp_path / "st.wav")
    np.testing.assert_allclose(wave, (x[:, :2] - x[:, :2].mean(axis=0)).mean(axis=1), atol=1e-6)


def test_clipping_is_measured_on_plateaus_at_full_scale(tmp_path):
    """A saturated recorder leaves plateaus at full scale; a clean recording reaches its extremes at isolated
    samples, and a coarsely quantised quiet one repeats its top value at crests without clipping."""
    from latentbridge.io import peak_and_clipping

    sr = 16000
    t = np.arange(sr) / sr
    clean = 0.99 * np.sin(2 * np.pi * 100 * t)
    peak, shares = peak_and_clipping(clean[:, None].astype(np.float32))
    assert peak == pytest.approx(0.99, abs=1e-6) and shares.tolist() == [0.0]
    # 1.5 x a sine held at +-1: held wherever |sin| >= 2/3, 1 - (2/pi) asin(2/3) = 53.5 % of the time
    held = np.clip(1.5 * np.sin(2 * np.pi * 100 * t), -1, 1)
    assert peak_and_clipping(held[:, None].astype(np.float32))[1][0] == pytest.approx(0.5354, abs=0.01)
    # held on one side only: half of that
    one_side = np.minimum(1.5 * np.sin(2 * np.pi * 100 * t), 1.0)
    assert peak_and_clipping(one_side[:, None].astype(np.float32))[1][0] == pytest.approx(0.2677, abs=0.01)
    # a slow tone near full scale in 16 bits holds its crest a few samples, reaching it one step at a time: no clipping
    slow = np.round(0.97 * np.sin(2 * np.pi * 20 * np.arange(48000) / 48000) * 32767) / 32768
    assert peak_and_clipping(slow[:, None].astype(np.float32))[1][0] == 0.0
    # crests repeating their top value: 8-bit steps at -24 dBFS, plateaus of a few samples that are no clipping
    coarse = np.round(0.06 * np.sin(2 * np.pi * 50 * t) * 128) / 128
    assert peak_and_clipping(coarse[:, None].astype(np.float32))[1][0] == 0.0
    # through the reader, of 16-bit files (full scale 32767/32768), channel by channel, less an offset
    stereo = np.stack([clean, held], axis=1) * 0.999 + 0.004
    sf.write(tmp_path / "s.wav", stereo, sr, subtype="PCM_16")
    for channel, expected in [(0, 0.0), (1, 0.535), (None, 0.535)]:
        stats: dict = {}
        read_audio(tmp_path / "s.wav", channel=channel, stats=stats)
        assert stats["clipped_share"] == pytest.approx(expected, abs=0.01), channel
    # a vibration table's full scale is the sensor's: not known
    (tmp_path / "v.csv").write_text("time,x\n" + "".join(f"{i / 100},{v}\n" for i, v in enumerate(held[:400])))
    stats = {}
    read_audio(tmp_path / "v.csv", stats=stats)
    assert stats == {"clipped_share": None}


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_a_wav_header_never_finalised_is_read_whole(tmp_path, subtype, caplog):
    """A recorder writes the data chunk's size when it stops: one killed, or one that lost power, leaves 0, a
    placeholder (0x7FFFFFFF) or an early count. libsndfile trusted it: 8 s of samples under a header declaring 1 s read
    as 1 s (padded and flagged), under 0 as empty. The samples present are read, with a warning naming the file."""
    import struct

    from latentbridge.edge import _wav_stdlib
    from latentbridge.io import audio_info
    from latentbridge.io.wav import wav_layout

    sr = 16000
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(8 * sr) / sr)).astype(np.float32)
    good = tmp_path / "good.wav"
    sf.write(good, x, sr, subtype=subtype)
    ref, _ = read_audio(good)
    layout = wav_layout(good)
    for declared in (layout.block_align * sr, 0, 0x7FFFFFFF):
        bad = tmp_path / f"stale_{declared}.wav"
        raw = bytearray(good.read_bytes())
        raw[layout.data_offset - 4:layout.data_offset] = struct.pack("<I", declared)
        bad.write_bytes(bytes(raw))
        caplog.clear()
        with caplog.at_level("WARNING"):
            wave, _ = read_audio(bad)
            assert audio_info(bad).frames == len(x)
        np.testing.assert_array_equal(wave, ref)
        said = "declares 16000 frames (1 s)" if declared == layout.block_align * sr else \
            "gives its samples no size (0 or a placeholder)"
        assert f"{bad}: its header {said} but 128000 frames (8 s) follow it" in caplog.text, caplog.text
        np.testing.assert_allclose(_wav_stdlib(bad).whole(), ref, atol=1e-6)
    # a chunk after the data (a broadcast WAV's LIST) is no stale header; a data chunk cut short is still truncated
    listed = tmp_path / "listed.wav"
    body = good.read_bytes() + b"LIST" + struct.pack("<I", 4) + b"INFO"
    listed.write_bytes(body[:4] + struct.pack("<I", len(body) - 8) + body[8:])
    np.testing.assert_array_equal(read_audio(listed)[0], ref)
    # a pad byte after an odd-sized data chunk, or a tag appended to the file, are no samples
    odd = tmp_path / "odd.wav"
    sf.write(odd, x[:16001], sr, subtype="PCM_U8")
    tagged = tmp_path / "tagged.wav"
    tagged.write_bytes(good.read_bytes() + b"TAG" + bytes(125))
    assert len(read_audio(odd)[0]) == 16001 and len(read_audio(tagged)[0]) == len(x)
    art = tmp_path / "art.wav"  # an ID3 tag with cover art after a finalised file (its RIFF size ends at the data):
    art.write_bytes(good.read_bytes() + b"ID3\x03" + bytes(range(256)) * 256)  # read as 0.9 s more "audio" (111)
    assert len(read_audio(art)[0]) == len(x) and len(_wav_stdlib(art).whole()) == len(x)
    both = tmp_path / "both.wav"  # a writer that kept both sizes up to date, killed at 1 s: every sample still read
    raw = bytearray(good.read_bytes())
    raw[layout.data_offset - 4:layout.data_offset] = struct.pack("<I", layout.block_align * sr)
    raw[4:8] = struct.pack("<I", layout.data_offset + layout.block_align * sr - 8)
    both.write_bytes(bytes(raw))
    np.testing.assert_array_equal(read_audio(both)[0], ref)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[: layout.data_offset + layout.block_align * sr])
    with pytest.raises(DataError, match="truncated audio file"):
        read_audio(cut)


def test_write_wav_reads_integer_pcm_at_its_full_scale_and_names_a_time_by_channel_array(tmp_path):
    tone = 0.5 * np.sin(np.arange(SR) / 10)
    write_wav(tmp_path / "i16.wav", (tone * 32767).astype(np.int16), SR)  # (clipped to [-1, 1]: a square wave)
    back = read_audio(tmp_path / "i16.wav")[0]
    assert np.abs(back - tone).max() < 1e-3
    write_wav(tmp_path / "u8.wav", np.round(128 + tone * 127).astype(np.uint8), SR, subtype="FLOAT")  # offset binary
    assert np.abs(sf.read(tmp_path / "u8.wav")[0] - tone).max() < 1e-2
    with pytest.raises(DataError, match=r"shape \(16000, 2\) would be 16000 channels of 2 samples: \(C, T\) expected"):
        write_wav(tmp_path / "tc.wav", np.c_[tone, tone], SR)
    assert not (tmp_path / "tc.wav").exists()
    for rate in (float("nan"), float("inf"), 0, 8000.5):
        with pytest.raises(ValueError, match=f"sample_rate must be a positive integer, got {rate!r}"):
            read_audio(tmp_path / "i16.wav", sample_rate=rate)


def test_a_link_loop_or_a_link_to_nothing_is_named_as_such(tmp_path):
    from latentbridge.io.listing import list_audio_files

    (tmp_path / "a.wav").symlink_to("b.wav")
    (tmp_path / "b.wav").symlink_to("a.wav")
    (tmp_path / "c.wav").symlink_to("gone.wav")
    for name, said in (("a.wav", "is a link in a loop"), ("c.wav", r"is a link to nothing \(gone.wav\)"),
                       ("d.wav", "does not exist")):
        with pytest.raises(DataError, match=said):
            list_audio_files(tmp_path / name)


def test_a_recording_at_a_path_beyond_libsndfiles_limit_is_read(tmp_path):
    """libsndfile refuses names of 1,024 bytes or more: such recordings, at legal paths, were 'unreadable or
    truncated'."""
    from latentbridge.io.audio import audio_info, read_audio

    deep = tmp_path.joinpath(*["d" * 60] * 17)
    deep.mkdir(parents=True)
    wave = (0.3 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440)).astype(np.float32)
    sf.write(tmp_path / "a.flac", wave, 8000)  # (libsndfile writes no such name either)
    path = deep / "a.flac"
    os.replace(tmp_path / "a.flac", path)
    assert len(os.fsencode(path)) > 1024
    got, sr = read_audio(path)
    assert sr == 8000 and got.shape == wave.shape and np.abs(got - wave).max() < 1e-3
    assert audio_info(path).frames == 8000


def test_read_audio_refuses_keywords_it_would_misread(tmp_path):
    """From Python: channel "1" was "out of range" of a stereo file, "left" a bare int() error, True channel 1, columns
    "ax" the columns a and x; a logger's 2.5 Hz was read as 2 Hz (every time 25 % off), now refused by name, while a
    time column's jitter (999.7 Hz) still reads as 1000 Hz."""
    p = write_audio(tmp_path / "st.wav", np.stack([tone(), tone(330.0)]), SR)
    for kw in ({"channel": "1"}, {"channel": True}, {"channel": "left"}, {"columns": "ax"}):
        with pytest.raises(ValueError, match="channel: an index or 'all', columns: a list of names"):
            read_audio(p, **kw)
    assert read_audio(p, channel=1)[0].shape == (SR // 2,)
    t = np.arange(400) * 0.4
    np.savetxt(tmp_path / "slow.csv", np.c_[t, np.sin(t)], delimiter=",", header="time,ax", comments="", fmt="%.6g")
    with pytest.raises(DataError, match=r"slow\.csv: a sample rate of 2\.5 Hz .*not a whole number of Hz: read at 2 Hz "
                                        r"its times would be 20 % off"):
        read_audio(tmp_path / "slow.csv")
    t = np.arange(4000) / 999.7
    np.savetxt(tmp_path / "jitter.csv", np.c_[t, np.sin(50 * t)], delimiter=",", header="time,ax", comments="",
               fmt="%.9g")
    assert read_audio(tmp_path / "jitter.csv")[1] == 1000


def test_broadcast_wav_rf64_and_au_by_their_usual_names_are_read(tmp_path):
    """.bwf (a Broadcast WAV), .wave, .rf64 and .snd (AU's usual name) were "not an audio file", named or in a
    folder."""
    x = tone()
    for name, fmt in (("a.bwf", "WAV"), ("b.wave", "WAV"), ("c.rf64", "RF64"), ("d.snd", "AU")):
        sf.write(tmp_path / name, x, SR, format=fmt, subtype="PCM_16")
    assert sorted(p.name for p in list_audio_files(tmp_path)) == ["a.bwf", "b.wave", "c.rf64", "d.snd"]
    for p in list_audio_files(tmp_path):
        np.testing.assert_allclose(read_audio(p)[0], x - x.mean(), atol=2e-4)
