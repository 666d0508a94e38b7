"""Anomaly detection that adapts to its data: the survey and its choices, silence trimming, level
handling, the detectors beside the VAE and the closed-form baselines."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import FAST, FSDD
from latentbridge.cli import main
from latentbridge.config import load_config
from latentbridge.io.levels import DIGITAL_SILENCE_DBFS
from latentbridge.data.survey import survey_files
from latentbridge.io import active_bounds, list_audio_files, trim_silence
from latentbridge.tasks.adapt import adapt, choose_settings


def _write(path, seconds, sr, rng, lead=0.0, tail=0.0, gain=1.0):
    t = np.arange(int(seconds * sr)) / sr
    x = gain * (0.3 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.normal(size=t.shape))
    x = np.concatenate([1e-4 * rng.normal(size=int(lead * sr)), x, 1e-4 * rng.normal(size=int(tail * sr))])
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), sr)
    return path


def _choices(folder):
    return {c.key: c.value for c in choose_settings(survey_files(list_audio_files(folder)))}



def test_the_band_advised_for_a_low_rate_sensor_is_not_zero():
    """A 200-Hz model's recordings resampled down from 1 kHz were advised `-o features.fmax=0` (whole hundreds)."""
    from types import SimpleNamespace

    from latentbridge.data.survey import floor_hz, resampled_top_warning

    assert [floor_hz(f) for f in (7440, 3720, 93, 186, 20506, 4.1, 9.7, 1.2, 0.567)] == \
        [7400, 3700, 93, 180, 20000, 4.1, 9.7, 1.2, 0.56]
    text = resampled_top_warning(np.array([[0.0, -30.0]]), {"min": [0.0, -10.0]}, [1000], 200,
                                 SimpleNamespace(kind="stft"), ["acc.csv"])
    assert "resampling removes what lies above 95 Hz" in text and "-o features.fmax=93)" in text, text

def test_one_short_recording_is_cut_into_windows_a_fit_can_split(tmp_path, monkeypatch, capsys):
    """One 4-s recording in 2-s windows (half a window apart) gave three windows; the split in time held out the last
    and left out the one crossing its cut: one to train on, and the fit was refused. Windows are now no longer than an
    eighth of all the sound (0.5 s), the STFT kept that of stationary sound; more sound keeps 2-s windows."""
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    one = _write(tmp_path / "one" / "rec.wav", 4.0, 16000, rng)
    c = _choices(one.parent)
    assert (c["audio.window_s"], c["audio.hop_s"], c["features.n_fft"], c["features.hop_length"]) == (0.5, 0.25, 1024,
                                                                                                      512)
    assert main(["anomaly", "fit", str(one), "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "audio.window_s = 0.5  (the typical recording lasts 4 s; 4 s of sound in all: windows of at most 1/8 of " \
           "it)" in out, out
    d = json.loads((tmp_path / "m" / "config.json").read_text())["data"]
    assert d["n_train_windows"] >= 8 and d["n_val_windows"] >= 2, d
    for i in range(3):  # three files of 5 s: 15 s in all, windows of 1.75 s (no longer than the recordings either)
        _write(tmp_path / "three" / f"r{i}.wav", 5.0, 16000, rng)
    assert _choices(tmp_path / "three")["audio.window_s"] == 1.75
    _write(tmp_path / "long" / "rec.wav", 16.0, 16000, rng)
    assert (_choices(tmp_path / "long")["audio.window_s"], _choices(tmp_path / "long")["audio.hop_s"]) == (2.0, 1.0)


def test_choices_follow_the_data(tmp_path, machine_data):
    rng = np.random.default_rng(0)
    # long 16 kHz machine recordings: the defaults that suit stationary sound
    c = _choices(machine_data / "train" / "normal")
    assert (c["audio.sample_rate"], c["audio.window_s"], c["audio.hop_s"], c["audio.pad"]) == (16000, 2.0, 1.0, "wrap")
    assert (c["features.n_fft"], c["features.hop_length"], c["features.n_mels"]) == (1024, 512, 64)
    # short 8 kHz clips: no window longer than the typical clip, finer STFT, silence padding
    for i in range(12):
        _write(tmp_path / "short" / f"c{i}.wav", 0.3 + 0.02 * i, 8000, rng)
    c = _choices(tmp_path / "short")
    assert c["audio.sample_rate"] == 8000 and 0.35 <= c["audio.window_s"] <= 0.45 and c["audio.pad"] == "constant"
    assert (c["features.n_fft"], c["features.hop_length"], c["features.n_mels"]) == (256, 64, 64)
    assert c["audio.hop_s"] == pytest.approx(c["audio.window_s"] / 2)
    # long recordings at 44.1 kHz keep 2-s windows; the STFT scales with the rate
    for i in range(3):
        _write(tmp_path / "long" / f"l{i}.wav", 30.0, 44100, rng)
    c = _choices(tmp_path / "long")
    assert (c["audio.sample_rate"], c["audio.window_s"], c["features.n_fft"]) == (44100, 2.0, 2048)
    # mixed rates: the most common one, said so
    for i in range(5):
        _write(tmp_path / "mixed" / f"a{i}.wav", 1.0, 16000, rng)
    for i in range(2):
        _write(tmp_path / "mixed" / f"b{i}.wav", 1.0, 48000, rng)
    ch = {x.key: x for x in choose_settings(survey_files(list_audio_files(tmp_path / "mixed")))}
    assert ch["audio.sample_rate"].value == 16000 and "rates differ" in ch["audio.sample_rate"].reason
    # clips with long silences around the sound: trimmed, window from the sound's length
    for i in range(8):
        _write(tmp_path / "quiet" / f"q{i}.wav", 0.5, 16000, rng, lead=0.6, tail=0.6)
    c = _choices(tmp_path / "quiet")
    assert c["audio.trim_db"] == 40.0 and c["audio.window_s"] == pytest.approx(0.5, abs=0.06)


def test_the_band_stops_where_a_share_of_the_files_ends(tmp_path):
    from latentbridge.data.survey import band_warning

    rng = np.random.default_rng(0)
    for i in range(6):
        _write(tmp_path / "m" / f"a{i}.wav", 1.0, 16000, rng)
    for i in range(3):
        _write(tmp_path / "m" / f"b{i}.wav", 1.0, 8000, rng)
    ch = {x.key: x for x in choose_settings(survey_files(list_audio_files(tmp_path / "m")))}
    assert ch["audio.sample_rate"].value == 16000 and ch["features.n_fft"].value == 1024
    assert ch["features.fmax"].value == 4000.0 and "3 of the 9 files" in ch["features.fmax"].reason
    assert ch["features.n_mels"].value == 64 and "256 FFT bins up to 4000 Hz" in ch["features.n_mels"].reason
    # low-rate files under 10 % of the folder keep the whole band
    for i in range(24):
        _write(tmp_path / "m" / f"c{i}.wav", 1.0, 16000, rng)
    ch = {x.key: x for x in choose_settings(survey_files(list_audio_files(tmp_path / "m")))}
    assert "features.fmax" not in ch and "up to 8000 Hz" in ch["features.n_mels"].reason
    # ... and such files are named when they meet a model whose band they do not fill
    rates = {"a.wav": 16000, "b.wav": 8000, "c.wav": 48000}
    text = band_warning(rates, 16000, None)
    assert text.startswith("1 of 3 files") and "b.wav" in text and "features.fmax=4000" in text
    assert band_warning(rates, 16000, 4000.0) is None and band_warning({"a.wav": 16000}, 16000, None) is None


def test_an_stft_model_of_low_rate_recordings_reads_their_band(tmp_path):
    """The STFT preset at 44.1 kHz on 16-kHz recordings: the survey 'chose' 64 mel bands and an fmax the STFT never
    reads, and every recording scored later, recorded as the training ones were, was named "below the model's band".
    The fmax is the band the training recordings fill, said so, and the checks read it."""
    from latentbridge.data.survey import band_fmax, band_warning
    from latentbridge.transforms.spec import SpectrogramParams

    rng = np.random.default_rng(0)
    for i in range(4):
        _write(tmp_path / "m" / f"a{i}.wav", 1.0, 16000, rng)
    cfg = load_config(None, [f"data.train_dir={tmp_path / 'm'}", "audio.sample_rate=44100", "features.kind=stft"])
    new, _, applied = adapt(cfg, cfg.data.train_dir)
    ch = {c.key: c for c in applied}
    assert "features.n_mels" not in ch and new.features.fmax == 8000.0
    assert "the STFT keeps every bin, and recordings scored later are checked against the band up to there" \
        in ch["features.fmax"].reason
    stft = SpectrogramParams(sample_rate=44100, n_fft=2048, hop_length=512, kind="stft", fmax=8000.0)
    assert band_fmax(stft) == 8000.0 and band_warning({"t.wav": 16000}, 44100, band_fmax(stft)) is None
    assert "below the model's band" in band_warning({"t.wav": 8000}, 44100, band_fmax(stft))


def test_a_spectrum_cut_off_at_the_top_is_named_and_a_change_within_the_band_is_not():
    from latentbridge.data.survey import band_content_warning, band_profile_db

    rng = np.random.default_rng(0)
    # four files of two windows (1 channel, 8 bands, 5 frames), flat spectra at different levels
    feats = np.repeat(rng.normal(0, 0.5, (8, 1, 8, 5)) + np.repeat(rng.uniform(-40, -10, 4), 2)[:, None, None, None],
                      1, axis=0)
    cfg = type("F", (), {"scale": "db", "normalize": "none", "power": 1.0})()
    train = band_profile_db(feats, np.repeat(np.arange(4), 2), 4, cfg)
    assert train.shape == (4, 8) and np.abs(train).max() < 1.0  # the level taken out of each file
    fitted = {"min": train.min(0).tolist(), "max": train.max(0).tolist()}
    centres = np.array([100, 300, 600, 1000, 1600, 2500, 3600, 5000.0])
    test = feats[:6].copy()
    test[0:2, :, 6:] -= 45      # file 0: its top two bands 45 dB down (a codec's low-pass)
    test[2:4, :, 3] += 45       # file 1: one band within loud (a fault, e.g. a whine)
    prof = band_profile_db(test, np.repeat(np.arange(3), 2), 3, cfg)
    text = band_content_warning(prof, fitted, ["lossy.ogg", "whine.wav", "ok.wav"], centres)
    assert text.startswith("1 of 3 recordings hold far less sound above 2500 Hz") and "lossy.ogg" in text
    assert "features.fmax=2500" in text and "whine" not in text and "ok.wav" not in text
    # the other way round: training recordings cut off at the top, a full-band one scored
    cut = fitted | {"max": (np.array(fitted["max"]) - [0, 0, 0, 0, 0, 40, 40, 40]).tolist(),
                    "min": (np.array(fitted["min"]) - [0, 0, 0, 0, 0, 40, 40, 40]).tolist()}
    text = band_content_warning(prof[1:], cut, ["whine.wav", "ok.wav"], centres)
    assert text.startswith("2 of 2 recordings hold sound above 1600 Hz where every training recording was far "
                           "quieter") and "training recordings cut off there" in text
    # which a broadband fault does too: the note names both, and advises the band only if they were cut off
    # (it said "the training recordings were cut off there" of lossless ones and faults of noise bursts)
    assert "a fault that adds sound up to the top of the band does this" in text
    assert text.endswith("if they were, fit on recordings made the same way, or within the band both hold "
                         "(-o features.fmax=1600)"), text
    assert band_content_warning(prof[2:], fitted, ["ok.wav"], centres) is None
    # the top band alone: emptied, a cut (an anti-alias filter); louder, what a fault may do
    top = feats[:4].copy()
    top[0:2, :, 7] -= 35
    top[2:4, :, 7] += 35
    text = band_content_warning(band_profile_db(top, np.repeat(np.arange(2), 2), 2, cfg), fitted,
                                ["filtered.wav", "whistle.wav"], centres)
    assert text.startswith("1 of 2 recordings hold far less sound above 3600 Hz") and "whistle" not in text
    assert band_profile_db(feats, np.zeros(8, int), 1, type("F", (), {"scale": "linear"})()) is None


def test_sound_in_short_events_has_its_timing_read_or_is_named(tmp_path, caplog):
    """A valve's clicks at regular times: the default detector scored a click moved by 0.2 s at AUC 0.55 (about chance),
    and the survey called the sound "stationary". The default now reads the level envelope's timing for such sound
    (model.timing chosen, said); the statistics detectors that cannot are named with a warning; given by hand, the
    user's value stays."""
    rng = np.random.default_rng(0)
    sr = 16000
    for i in range(4):
        x = 1e-3 * rng.normal(size=3 * sr)
        for t in (0.5, 1.0, 1.5, 2.0, 2.5):
            k = int((t + rng.uniform(-0.01, 0.01)) * sr)
            x[k:k + 400] += 0.5 * rng.normal(size=400) * np.exp(-np.arange(400) / 80)
        (tmp_path / "valve").mkdir(exist_ok=True)
        sf.write(tmp_path / "valve" / f"v{i}.wav", x, sr, subtype="PCM_16")
        _write(tmp_path / "hum" / f"h{i}.wav", 3.0, sr, rng)
    clicks, hum = (survey_files(list_audio_files(tmp_path / d)) for d in ("valve", "hum"))
    assert clicks.typical_loud_share < 0.1 and hum.typical_loud_share > 0.9
    for folder, name, warned, timing in (("valve", "knn_stats", False, 0.5), ("hum", "knn_stats", False, 0.0),
                                         ("valve", "conv_vae", False, None), ("valve", "gaussian_stats", True, None),
                                         ("valve", "pca", True, None)):
        cfg = load_config(None, [], sets={"task": "anomaly", "data.train_dir": str(tmp_path / folder),
                                          "model.name": name})
        caplog.clear()
        with caplog.at_level("WARNING"):
            new, _, choices = adapt(cfg, [str(tmp_path / folder)])
        assert ("the sound comes in short events" in caplog.text) is warned, (folder, name, caplog.text)
        assert "stationary sound" not in next(c.reason for c in choices if c.key == "features.n_fft")
        assert getattr(new.model, "timing", None) == timing
        assert getattr(new.model, "duration", None) == (None if timing is None else 16 * timing)
        assert any(c.key == "model.timing" for c in choices) is bool(timing)
    given = load_config(None, ["model.timing=0"], sets={"task": "anomaly", "data.train_dir": str(tmp_path / "valve")})
    caplog.clear()
    with caplog.at_level("WARNING"):
        new, _, choices = adapt(given, [str(tmp_path / "valve")])
    assert new.model.timing == 0 and "model.timing" not in {c.key for c in choices}
    assert new.model.duration == 8.0  # (the duration is chosen still: only the timing was given)
    assert "the sound comes in short events" in caplog.text  # the user's detector reads no timing: named


def test_recordings_all_but_silent_are_named(tmp_path, caplog):
    # a stereo pair in opposite polarity mixes to ~-96 dBFS, a dead microphone's one-bit noise likewise: both once
    # passed the survey in silence (and pulled a fitted threshold down from 19.1 to 4.9). The dead one is named; the
    # pair's mix cancels, its first channel does not: channel 0 is modelled (the mix of nothing was fitted on, and
    # refused as "copies of one another"), its level the survey's
    rng = np.random.default_rng(0)
    for i in range(3):
        _write(tmp_path / "q" / f"ok{i}.wav", 1.0, 16000, rng)
    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    sf.write(tmp_path / "q" / "antiphase.wav", np.stack([x, -x + 1e-5 * rng.normal(size=x.shape)], 1), 16000,
             subtype="PCM_16")
    sf.write(tmp_path / "q" / "dead.wav", rng.integers(-1, 2, 16000).astype(np.int16), 16000)
    s = survey_files(list_audio_files(tmp_path / "q"))
    assert [p.split("/")[-1] for p, _ in s.quiet] == ["dead.wav"] and s.quiet[0][1] < -80
    (path, mix, one), = s.cancelled
    assert path.endswith("antiphase.wav") and mix < -80 and one == pytest.approx(-13.5, abs=0.2)
    assert sorted(s.levels_dbfs)[0] < -80 < sorted(s.levels_dbfs)[1] and one in [round(v, 1) for v in s.levels_dbfs]
    cfg = load_config(None, [], sets={"task": "anomaly", "data.train_dir": str(tmp_path / "q")})
    with caplog.at_level("WARNING"):
        cfg, _, choices = adapt(cfg, [str(tmp_path / "q")])
    assert "1 recording is all but silent" in caplog.text and "dead.wav" in caplog.text
    assert "antiphase.wav" not in caplog.text
    channel = next(c for c in choices if c.key == "audio.channel")
    assert channel.value == 0 == cfg.audio.channel and "antiphase.wav: the mix at" in channel.reason
    # a folder of such pairs only: fitted on channel 0
    (tmp_path / "pairs").mkdir()
    for i in range(4):
        y = 0.3 * np.sin(2 * np.pi * (200 + 30 * i) * np.arange(32000) / 16000) + 0.05 * rng.normal(size=32000)
        sf.write(tmp_path / "pairs" / f"p{i}.wav", np.stack([y, -y], 1), 16000, subtype="PCM_16")
    assert main(["anomaly", "fit", str(tmp_path / "pairs"), "--out", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "config.json").read_text())["config"]["audio"]["channel"] == 0
    # exactly opposite (int16 L and -L: a mix of zeros, which the reader refuses) were all "unreadable": the fit was
    # refused, or its settings chosen from the others alone; now they are read as the pairs above, on channel 0
    (tmp_path / "exact").mkdir()
    for i in range(4):
        y = np.round(32767 * (0.3 * np.sin(2 * np.pi * (200 + 30 * i) * np.arange(32000) / 16000))).astype(np.int16)
        sf.write(tmp_path / "exact" / f"e{i}.wav", np.stack([y, -y], 1), 16000, subtype="PCM_16")
    s = survey_files(list_audio_files(tmp_path / "exact"))
    assert s.unreadable == [] and s.n_read == 4 and [c[1] for c in s.cancelled] == [-400.0] * 4
    assert s.levels_dbfs == pytest.approx([-13.5] * 4, abs=0.1) and min(s.active_s) > 1.9  # channel 0's sound
    z = (3e-5 * np.sin(2 * np.pi * 200 * np.arange(16000) / 16000)).astype(np.float32)  # and at -93 dBFS: quiet
    sf.write(tmp_path / "faint.wav", np.stack([z, -z], 1), 16000, subtype="FLOAT")
    s = survey_files([tmp_path / "faint.wav"])
    assert s.unreadable == [] and s.cancelled[0][1] == -400.0 and s.quiet[0][1] == pytest.approx(-93.5, abs=0.2)
    caplog.clear()
    assert main(["anomaly", "fit", str(tmp_path / "exact"), "--out", str(tmp_path / "e")]) == 0
    said = json.loads((tmp_path / "e" / "config.json").read_text())["config"]
    assert said["audio"]["channel"] == 0 and said["audio"]["window_s"] == 1.0  # (4 files of 2 s: 1-s windows)


def test_scoring_files_below_the_band(machine_data, feature_cache, tmp_path, caplog):
    """A normal recording at half the rate: a full-band model flags it for its empty top band and says
    why; a model fitted with files at that rate among its training files (band cut there) does not."""
    from latentbridge.io import read_audio, resample

    half = tmp_path / "half"
    normal = sorted((machine_data / "test" / "normal").glob("*.wav"))[0]
    wave, sr = read_audio(normal, mono=True)
    half.mkdir()
    sf.write(half / "normal_8k.wav", resample(wave, sr, sr // 2), sr // 2)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i, f in enumerate(sorted((machine_data / "train" / "normal").glob("*.wav"))):  # a third at half the rate
        w, r = read_audio(f, mono=True)
        sf.write(mixed / f.name, resample(w, r, r // 2) if i % 3 == 0 else w, r // 2 if i % 3 == 0 else r)
    scores = {}
    for name, train in (("full", machine_data / "train" / "normal"), ("cut", mixed)):
        out = tmp_path / name
        assert main(["anomaly", "fit", str(train), "--out", str(out)]) == 0
        fmax = json.loads((out / "config.json").read_text())["config"]["features"]["fmax"]
        assert fmax == (None if name == "full" else sr / 4)
        caplog.clear()
        assert main(["anomaly", "score", str(out), str(half), "--out", str(tmp_path / f"s_{name}")]) == 0
        warned = [r.getMessage() for r in caplog.records if "below the model's band" in r.getMessage()]
        assert len(warned) == (1 if name == "full" else 0), warned
        threshold = json.loads((out / "config.json").read_text())["anomaly"]["threshold"]
        rows = (tmp_path / f"s_{name}" / "scores.csv").read_text().splitlines()
        scores[name] = float([r for r in rows if r.endswith("file-mean")][0].split(",")[3]) / threshold
    assert scores["full"] > 3.0 and scores["cut"] < 1.5, scores
    # the conversions are said: a warning when the files differ (two rates, one stereo), else with -v only
    stereo = np.stack([wave, 0.5 * wave], axis=1)
    sf.write(half / "stereo_16k.wav", stereo, sr)
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main(["anomaly", "score", str(tmp_path / "full"), str(half), "--out", str(tmp_path / "s_mix")]) == 0
    said = [r for r in caplog.records if r.getMessage().startswith("1 of 2 files resampled")]
    assert len(said) == 1 and said[0].levelname == "WARNING", said
    assert said[0].getMessage() == ("1 of 2 files resampled to 16000 Hz (from 8000 Hz x1); 1 file mixed down to mono "
                                    "(from 2 channels x1); the model was fitted on single-channel recordings: a mix of "
                                    "several is not the signal it learned (fit on recordings like these, each channel "
                                    "modelled: -o audio.channel=all)")


@pytest.mark.skipif(not FSDD.is_dir(), reason="FSDD not available")
def test_fsdd_clips_get_the_settings_tuned_for_them():
    c = _choices(FSDD)
    assert (c["audio.sample_rate"], c["audio.pad"], c["features.n_fft"], c["features.hop_length"]) == \
        (8000, "constant", 256, 64)
    assert 0.3 <= c["audio.window_s"] <= 0.5


def test_settings_given_by_the_user_win(machine_data):
    cfg = load_config(None, [f"data.train_dir={machine_data / 'train' / 'normal'}", "audio.window_s=1.0",
                             "features.n_mels=32"])
    new, survey, applied = adapt(cfg, cfg.data.train_dir)
    assert new.audio.window_s == 1.0 and new.features.n_mels == 32
    assert "audio.window_s" not in {c.key for c in applied} and "features.n_mels" not in {c.key for c in applied}
    assert new.audio.sample_rate == 16000
    off = load_config(None, [f"data.train_dir={machine_data / 'train' / 'normal'}", "audio.auto=false"])
    assert adapt(off, off.data.train_dir)[2] == []
    # what follows from a setting the user gave follows the user's value: the STFT of 16 kHz (1024) once met
    # a rate of 1 kHz set with -o and the fit was refused as the survey's fault
    low = load_config(None, [f"data.train_dir={machine_data / 'train' / 'normal'}", "audio.sample_rate=1000",
                             "audio.window_s=0.5"])
    new, _, applied = adapt(low, low.data.train_dir)
    assert (new.audio.sample_rate, new.audio.window_s, new.audio.hop_s) == (1000, 0.5, 0.25)
    assert (new.features.n_fft, new.features.hop_length, new.features.n_mels) == (32, 8, 8)


def test_band_limits_wait_for_the_rate_the_survey_chooses(tmp_path, capsys):
    """A band edge above the default rate's Nyquist is the user's to set for 48-kHz recordings; it is
    checked against the rate the survey chooses (and fmin must stay below the band's top)."""
    from latentbridge.errors import ConfigError

    rng = np.random.default_rng(0)
    for i in range(4):
        _write(tmp_path / "d48" / f"{i}.wav", 2.0, 48000, rng)
    cfg = load_config(None, [f"data.train_dir={tmp_path / 'd48'}", "features.fmax=12000"])  # refused before
    new, _, _ = adapt(cfg, cfg.data.train_dir)
    assert new.audio.sample_rate == 48000 and new.features.fmax == 12000
    cfg = load_config(None, [f"data.train_dir={tmp_path / 'd48'}", "features.fmax=30000"])
    with pytest.raises(ConfigError, match=r"survey of .*d48.*fmax \(30000.0\) is above Nyquist \(24000.0\)"):
        adapt(cfg, cfg.data.train_dir)
    with pytest.raises(ConfigError, match="fmin.*not below the top of the band") as e:
        load_config(None, ["audio.sample_rate=16000", "features.fmin=9000"])
    assert "got {" not in str(e.value)  # a check across keys does not print the whole config
    with pytest.raises(ConfigError, match="fmin.*not below the top of the band"):
        load_config(None, ["features.fmin=5000", "features.fmax=4000"])
    with pytest.raises(ConfigError, match="fmax.*above Nyquist"):  # no survey: checked at once
        load_config(None, ["audio.auto=false", "features.fmax=12000"])
    assert main(["anomaly", "fit", str(tmp_path / "d48"), "--out", str(tmp_path / "m"), "-o", "features.fmin=30000"]) == 2
    err = capsys.readouterr().err
    assert "fmin (30000 Hz) is not below the top of the band (Nyquist of audio.sample_rate 48000" in err


def test_fit_prints_and_stores_its_choices(machine_data, feature_cache, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(out),
                 *[x for o in FAST for x in ("-o", o)]]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("chosen from the data:")]
    assert any("audio.sample_rate = 16000" in line for line in printed) and len(printed) >= 6
    info = json.loads((out / "config.json").read_text())
    assert info["data"]["survey"]["n_files"] == 6 and info["data"]["survey"]["common_rate"] == 16000
    assert {r["key"] for r in info["data"]["settings_chosen"]} >= {"audio.sample_rate", "audio.window_s"}
    card = (out / "README.md").read_text()
    assert "Chosen from a survey of the training files" in card and "`audio.window_s = 2.0`" in card


def test_silence_trimming():
    sr = 8000
    rng = np.random.default_rng(1)
    x = np.concatenate([1e-4 * rng.normal(size=4000), np.sin(np.arange(2000) / 3), 1e-4 * rng.normal(size=8000)])
    start, end = active_bounds(x, sr)
    assert abs(start - 4000) <= 160 and abs(end - 6000) <= 160
    assert abs(len(trim_silence(x, sr)) - 2000) <= 320
    loud = np.sin(np.arange(8000) / 3)
    assert len(trim_silence(loud, sr)) == 8000  # nothing quiet: kept whole


def test_silence_trimming_above_a_noise_floor():
    """Background noise 31 dB under the sound is within top_db 40 of the peak, so the plain rule keeps
    it; with floor_margin_db the floor measured away from the sound trims it. A recording without quiet
    frames away from its sound measures no floor: the rule is the plain one."""
    sr = 8000
    rng = np.random.default_rng(2)
    tone = 0.05 * np.sin(np.arange(2400) / 3)
    x = np.concatenate([np.zeros(3200), tone, np.zeros(4800)]) + 1e-3 * rng.normal(size=10400)
    assert active_bounds(x, sr) == (0, len(x))  # noise -60 dBFS, tone -29 dBFS: all "active"
    start, end = active_bounds(x, sr, floor_margin_db=6)
    assert abs(start - 3200) <= 160 and abs(end - 5600) <= 160
    tight = np.concatenate([1e-3 * rng.normal(size=400), tone, 1e-3 * rng.normal(size=400)])
    assert active_bounds(tight, sr, floor_margin_db=6) == active_bounds(tight, sr)


def test_level_norm_makes_the_score_gain_invariant_and_keeps_the_level_as_a_score():
    from latentbridge.models.vae import ConvVAE

    torch.manual_seed(0)
    x = torch.randn(40, 1, 16, 20) * 5 - 40
    for level_norm in (False, True):
        model = ConvVAE((1, 16, 20), latent_dim=3, channels=[4, 8], level_norm=level_norm).eval()
        model.fit_normalizer(x)
        model.fit_detector(x)
        louder = x[:5] + 12.0  # the same sound, 12 dB louder (another gain)
        same = torch.allclose(model.score(x[:5], "mse"), model.score(louder, "mse"), atol=1e-5)
        assert same == level_norm
    lv = model.score(torch.cat([x[:5], x[:5] + 12.0]), "level")
    spread = float(model.level(x).std())
    np.testing.assert_allclose((lv[5:] - lv[:5]).abs().numpy(), np.full(5, 12.0 / spread), rtol=0.05)
    with pytest.raises(ValueError, match="level_norm"):
        ConvVAE((1, 16, 20), latent_dim=3, channels=[4, 8]).eval().score(x, "level")


def test_separate_level_moves_a_gain_change_into_one_feature():
    from latentbridge.transforms.stats import dct_matrix, separate_level, window_statistics

    torch.manual_seed(0)
    x = torch.randn(6, 1, 16, 20) * 5 - 40
    dct = dct_matrix(8, 16)
    plain = window_statistics(x, dct)
    split = separate_level(plain, 16)
    assert split.shape == plain.shape == (6, 2 * 16 + 2 * 8)
    moved = separate_level(window_statistics(x + 12.0, dct), 16) - split  # the same sound, 12 dB louder
    np.testing.assert_allclose(moved[:, -1].numpy(), 12.0, rtol=1e-5)  # the level feature moves by the gain
    assert moved[:, :-1].abs().max() < 1e-3  # nothing else does
    changed = (window_statistics(x + 12.0, dct) - plain).abs() > 1e-3
    assert changed.sum(1).tolist() == [17] * 6  # the plain statistics: every band mean and c0


def _gain_decoupled_windows(n_train=200, n_test=60, seed=0):
    """Feature windows (dB) where loudness and anomaly are decoupled: training gains within ±3 dB;
    test normals and anomalies (two bands 4 dB louder) alike at gains from -15 to +3 dB."""
    g = torch.Generator().manual_seed(seed)
    shape = torch.linspace(-30, -60, 24).view(1, 1, 24, 1)

    def windows(n, low, high, anomalous=False):
        x = shape + 2.0 * torch.randn(n, 1, 24, 30, generator=g)
        x = x + (low + (high - low) * torch.rand(n, 1, 1, 1, generator=g))
        if anomalous:
            x[:, :, 10:12] += 4.0
        return x

    test = torch.cat([windows(n_test, -15, 3), windows(n_test, -15, 3, anomalous=True)])
    return windows(n_train, -3, 3), test, np.r_[np.zeros(n_test), np.ones(n_test)]


def test_the_level_as_one_feature_keeps_the_neighbour_distance_from_mistaking_gain_for_faults():
    from latentbridge.metrics.anomaly import roc_auc
    from latentbridge.models.detectors import KNNStatsDetector

    train, test, y = _gain_decoupled_windows()
    auc = {}
    for separate in (False, True):
        det = KNNStatsDetector((1, 24, 30), n_mfcc=8, separate_level=separate)
        det.fit_closed_form(train.numpy())
        auc[separate] = roc_auc(y, det.score(test).numpy())
    assert auc[True] > 0.95 and auc[False] < 0.85, auc  # the plain statistics count the gain 25 times


def _events(onsets, t=40, bands=8, rng=None, gain=0.0):
    """(1, 1, bands, t) dB frames: noise at -60 dB, +40 dB in every band at the ``onsets``."""
    rng = rng or np.random.default_rng(0)
    x = -60.0 + gain + rng.normal(0, 1.0, (1, 1, bands, t))
    for o in onsets:
        x[..., int(o)] += 40.0
    return torch.tensor(x, dtype=torch.float32)


def test_the_envelope_autocorrelation_reads_when_events_happen():
    """Clicks at regular times peak at their period; one moved lowers the peak; the gain and a short recording's
    padding (digital silence) change nothing; steady noise gives no peak."""
    from latentbridge.transforms.stats import envelope_autocorrelation as ac

    regular = ac(_events([5, 13, 21, 29, 37]), 20)[0]
    assert int(regular[1:].argmax()) + 2 == 8 and regular[7] > 0.5, regular  # lag 8 frames: the period
    assert regular[7] - ac(_events([5, 13, 24, 29, 37]), 20)[0, 7] > 0.3  # one event moved by 3 frames
    torch.testing.assert_close(ac(_events([5, 13, 21, 29, 37], gain=12.0), 20), ac(_events([5, 13, 21, 29, 37]), 20))
    short = _events([3, 11, 19], t=22)
    padded = torch.cat([short, torch.full((1, 1, 8, 18), -100.0)], dim=-1)  # padded to 40 frames with silence
    torch.testing.assert_close(ac(padded, 20), ac(short, 20))
    steady = ac(_events([], t=200), 20)[0]  # the noise of products, no peak
    assert steady.abs().mean() < 0.1 and steady.max() < 0.3, steady


def test_the_chosen_hop_fits_a_window_length_given(tmp_path):
    """-o features.win_length=300: the survey chose hop 512 (half of n_fft), and the config refused it as the user's."""
    rng = np.random.default_rng(0)
    for i in range(3):
        _write(tmp_path / "hum" / f"h{i}.wav", 3.0, 16000, rng)
    cfg = load_config(None, ["features.win_length=300"],
                      sets={"task": "anomaly", "data.train_dir": str(tmp_path / "hum")})
    new, _, choices = adapt(cfg, [str(tmp_path / "hum")])
    assert new.features.hop_length == 150 and new.features.win_length == 300
    assert "half of the features.win_length given" in next(c.reason for c in choices if c.key == "features.hop_length")


def test_the_longest_event_is_counted_in_frames():
    """Runs of loud frames (above half-way between the window's mean level and its loudest): the longest, in frames; no
    event where nothing stands 10 dB out; a short recording's padding (digital silence) is no frame of its mean."""
    from latentbridge.transforms.stats import longest_event

    assert longest_event(_events([5, 6, 7, 20, 30, 31]))[0] == 3
    assert longest_event(_events([]))[0] == 0  # noise alone
    t = torch.arange(40)
    assert longest_event(_events([]) + 4.0 * ((t >= 10) & (t < 16)).float())[0] == 0  # 4 dB up: no event
    assert longest_event(_events(range(2, 34)))[0] == 32  # 80 % of the window: against the mean level, none
    short = _events([3, 4, 11], t=22)
    padded = torch.cat([short, torch.full((1, 1, 8, 18), -100.0)], dim=-1)
    assert longest_event(padded)[0] == longest_event(short)[0] == 2


def test_the_duration_of_events_tells_a_long_burst_from_normal_ones():
    """One to four bursts of 2-3 frames at random times; anomalies have one or two, one of them 7 frames long (as many
    loud frames as normal windows hold). The statistics (a set of frames) read it at chance; with the longest event
    beside them the detector separates them, and a burst shorter than normal adds nothing."""
    from latentbridge.metrics.anomaly import roc_auc
    from latentbridge.models.detectors import KNNStatsDetector

    rng = np.random.default_rng(2)

    def window(length):
        n = int(rng.integers(1, 3) if length else rng.integers(1, 5))
        starts = rng.choice(np.arange(1, 29, 9), n, replace=False)
        lengths = [int(rng.integers(2, 4)) for _ in range(n)]
        if length:
            lengths[0] = length
        return _events([s + k for s, m in zip(starts, lengths) for k in range(m)], rng=rng)

    train = torch.cat([window(0) for _ in range(60)])
    test = torch.cat([window(0) for _ in range(20)] + [window(7) for _ in range(20)])
    y = np.r_[np.zeros(20), np.ones(20)]
    auc, dets = {}, {}
    for duration in (0.0, 8.0):
        det = dets[duration] = KNNStatsDetector((1, 8, 40), n_mfcc=4, separate_level=True, duration=duration)
        det.fit_closed_form(train.numpy())
        auc[duration] = roc_auc(y, det.score(test).numpy())
    assert auc[8.0] > 0.95 and auc[0.0] < 0.75, auc
    assert det.dim == 2 * 8 + 2 * 4 + 1 and det.config()["duration"] == 8.0
    short = torch.cat([_events([o], rng=rng) for o in (3, 12, 25)])  # a burst of one frame: shorter, scored as before
    torch.testing.assert_close(det.score(short), dets[0.0].score(short), rtol=1e-5, atol=1e-5)
    # a normal length above the training windows' mean (3 frames of 2-3) is no excess either: the term counts from
    # their upper quartile (from the mean, normal events of varied length were flagged on it alone)
    usual = torch.cat([_events([o, o + 1, o + 2], rng=rng) for o in (3, 12, 25)])
    torch.testing.assert_close(det.score(usual), dets[0.0].score(usual), rtol=1e-5, atol=1e-5)


def test_the_timing_of_events_tells_a_moved_click_from_a_normal_one():
    """Five clicks at regular times, at any phase in the window; anomalies have one moved by 3 frames. The statistics
    (a set of frames) are at chance; with the envelope's autocorrelation beside them the detector separates them."""
    from latentbridge.metrics.anomaly import roc_auc
    from latentbridge.models.detectors import KNNStatsDetector

    rng = np.random.default_rng(1)

    def window(moved):
        onsets = rng.integers(0, 8) + 8 * np.arange(5)
        if moved:
            k = rng.integers(1, 4)
            onsets[k] += rng.choice([-3, 3])
        return _events(onsets, rng=rng)

    train = torch.cat([window(False) for _ in range(60)])
    test = torch.cat([window(False) for _ in range(20)] + [window(True) for _ in range(20)])
    y = np.r_[np.zeros(20), np.ones(20)]
    auc = {}
    for timing in (0.0, 0.5):
        det = KNNStatsDetector((1, 8, 40), n_mfcc=4, separate_level=True, timing=timing)
        det.fit_closed_form(train.numpy())
        auc[timing] = roc_auc(y, det.score(test).numpy())
    assert auc[0.5] > 0.95 and auc[0.0] < 0.75, auc
    assert det.dim == 2 * 8 + 2 * 4 + 20 and det.config()["timing"] == 0.5


def test_fit_with_no_options_is_the_level_aware_neighbour_detector(machine_data, feature_cache, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(out)]) == 0
    assert "chosen from the data" in capsys.readouterr().out
    info = json.loads((out / "config.json").read_text())
    assert info["model_class"] == "knn_stats" and info["model_kwargs"]["separate_level"] is True
    assert info["anomaly"]["score"] == "knn" and info["training"]["epochs"] == 0
    card = (out / "README.md").read_text()  # the card lists the files there are, and no "0.0 s" fit
    assert "`logs/`" not in card and not (out / "logs").exists() and "in 0.0 s" not in card
    assert re.search(r"fitted in closed form \(no gradient training\) in [0-9.e-]+ s once the features", card)
    assert main(["anomaly", "score", str(out), str(machine_data / "test"), "--labels", "auto",
                 "--out", str(tmp_path / "s")]) == 0
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["auc"] >= 0.9 and metrics["data"] == [str(machine_data / "test")]
    # no reconstruction to show: the windows alone (the input was drawn as a perfect "reconstruction")
    report = (tmp_path / "s" / "report.html").read_text()
    assert "<h2>Example windows</h2>" in report and "reconstruction" not in report.lower()


def test_training_settings_a_closed_form_model_does_not_read_are_named(machine_data, feature_cache, tmp_path,
                                                                        caplog):
    # (accepted without a word: a user who asked for 50 epochs at lr 0.01 got the neighbour detector's one fit)
    # (a run's own config.yaml, which lists every key at its default, named them all, advising another model)
    for i, args in enumerate((["-o", "train.max_epochs=50", "-o", "train.lr=0.01", "-o", "train.seed=3"], [],
                              ["--config", str(tmp_path / "m1" / "config.yaml")])):
        caplog.clear()
        assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(tmp_path / f"m{i}"),
                     *args]) == 0
        named = [r.getMessage() for r in caplog.records if "not used: model" in r.getMessage()]
        assert named == (["train.max_epochs, train.lr not used: model knn_stats is fitted in closed form, without "
                          "training steps (a trained model reads them: -o model.name=mel_vae, or a preset such as "
                          "configs/anomaly_vae.yaml)"] if i == 0 else []), named


def test_synthetic_anomalies_change_every_window():
    from latentbridge.data.augment import synthetic_anomalies

    x = torch.randn(50, 1, 32, 40) * 3 - 40
    y = synthetic_anomalies(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.isfinite(y).all()
    diff = (y - x).abs().flatten(1).amax(1)
    assert (diff > 1.0).all()  # every copy is corrupted somewhere


@pytest.mark.parametrize("preset, score, extra", [
    ("anomaly_pca", "mse", []), ("anomaly_gaussian_stats", "mahalanobis", []), ("anomaly_knn_stats", "knn", []),
    (None, "knn", []), (None, "knn", ["-o", "model.timing=0.5", "-o", "model.duration=8"])])  # None: the default
# (timing and duration: events' sound)
def test_baselines_fit_score_export_and_edge(preset, score, extra, machine_data, feature_cache, tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    out = tmp_path / "m"
    preset_args = ["--config", str(REPO / "configs" / f"{preset}.yaml")] if preset else []
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(out), *preset_args,
                 "-o", "train.progress_bar=false", *extra]) == 0
    info = json.loads((out / "config.json").read_text())
    assert info["anomaly"]["score"] == score and info["training"]["epochs"] == 0
    assert main(["anomaly", "score", str(out), str(machine_data / "test"), "--labels", "auto",
                 "--out", str(tmp_path / "s")]) == 0
    m = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert m["auc"] > 0.5, m["auc"]  # better than chance on the synthetic faults
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # two TracerWarnings with source lines once
        warnings.simplefilter("always")
        assert main(["export", str(out), "--out", str(tmp_path / "m.onnx")]) == 0
    assert not [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    wav = sorted((machine_data / "test" / "anomalous").glob("*.wav"))[0]
    res = subprocess.run([sys.executable, "-m", "latentbridge.edge", str(tmp_path / "m.onnx"), str(wav)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert main(["anomaly", "score", str(out), str(wav), "--out", str(tmp_path / "w")]) == 0
    import csv

    ref = [float(r["score"]) for r in csv.DictReader(open(tmp_path / "w" / "scores.csv")) if r["level"] == "window"]
    got = [float(line.split("\t")[2]) for line in res.stdout.splitlines()[1:] if "\tfile\t" not in line]
    np.testing.assert_allclose(got, ref, rtol=1e-3)


@pytest.mark.parametrize("extra", [["anomaly.score=combined", "features.level_norm=true"],
                                   ["anomaly.score=latent_knn"],
                                   ["anomaly.score=aux", "anomaly.synthetic_anomalies=1.0"]])
def test_detectors_beside_the_vae(extra, machine_data, feature_cache, tmp_path):
    out = tmp_path / "m"
    assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", str(out),
                 *[x for o in [*FAST, *extra] for x in ("-o", o)]]) == 0
    score = extra[0].split("=")[1]
    assert json.loads((out / "config.json").read_text())["anomaly"]["score"] == score
    assert main(["anomaly", "score", str(out), str(machine_data / "test"), "--labels", "auto",
                 "--out", str(tmp_path / "s")]) == 0
    m = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert np.isfinite(m["auc"])
    assert main(["export", str(out), "--out", str(tmp_path / "m.onnx")]) == 0


def test_scores_a_model_does_not_offer_are_config_errors(capsys, machine_data):
    vae = "model.name=conv_vae"
    for extra, needle in ((["anomaly.score=mahalanobis"], "offers"), ([vae, "anomaly.score=level"], "level_norm"),
                          ([vae, "anomaly.score=aux"], "synthetic_anomalies"),
                          (["model.name=pca", "anomaly.synthetic_anomalies=1"], "gradient descent")):
        assert main(["anomaly", "fit", str(machine_data / "train" / "normal"), "--out", "/tmp/never",
                     *[x for o in extra for x in ("-o", o)]]) == 2
        assert needle in capsys.readouterr().err


def test_dcase_preset_batches_hold_the_recipes_512_vectors():
    """The DCASE 2020 recipe's batch is 512 stacked-frame vectors; a training sample here is a window
    of many vectors, so the preset's batch of windows must hold about 512 vectors (a batch of 512
    windows made every epoch a single step on small sets: the baseline never converged)."""
    from conftest import REPO

    cfg = load_config(str(REPO / "configs" / "dcase2020_baseline.yaml"), [])
    vectors_per_window = cfg.n_frames - cfg.model.context_frames + 1
    assert cfg.features.n_mels * cfg.model.context_frames == 640
    assert 0.9 * 512 <= cfg.train.batch_size * vectors_per_window <= 1.1 * 512


def test_silent_tail_frames_are_the_frames_that_reach_the_cut():
    from latentbridge.transforms.numpy_stft import MIN_SILENT_TAIL, silence_tail, silent_tail_frames

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 2, 4096)).astype(np.float32)
    w[0, :, 3000:] = 0  # 1,096 zeros: centred frames of 1024 every 256 reach sample 3000 from frame 10
    w[1, 0, 4000:] = 0  # one channel only: not silence
    w[2, :, -(MIN_SILENT_TAIL - 1):] = 0  # too few zeros to be digital silence
    first = silent_tail_frames(w, 1024, 256, center=True)
    assert first[0] == 10 and (9 * 256 + 512 <= 3000 < 10 * 256 + 512)
    assert (first[1:] > 10**9).all()
    assert silent_tail_frames(w[:1], 1024, 256, center=False)[0] == 8  # frames [k*256, k*256+1024): k*256+1024 > 3000
    mag = np.ones((4, 2, 513, 17), dtype=np.float32)
    silence_tail(mag, w, 1024, 256)
    assert mag[0, ..., :10].min() == 1 and mag[0, ..., 10:].max() == 0 and mag[1:].min() == 1
    t = torch.ones(4, 2, 513, 17)
    assert torch.equal(silence_tail(t, w, 1024, 256), torch.from_numpy(mag))
    # a sound shorter than a frame in digital silence (a knock) is no cut: kept whole (every frame holding it was
    # silenced, the window scored as digital silence); one frame long or more, the frames reaching its end are cut
    knock = np.zeros((3, 1, 4096), np.float32)
    knock[0, 0, 2000:2080] = 0.8
    knock[1, 0, 2000:3023] = 0.8
    knock[2, 0, 1000:3000] = 0.8
    first = silent_tail_frames(knock, 1024, 256, center=True)
    assert (first[:2] > 10**9).all() and first[2] == 10


def test_a_normal_clip_shorter_than_every_training_clip_scores_as_normal(tmp_path, caplog):
    """The default detector on stationary 2-s clips, silence padding: a 1-s normal clip padded to one window
    scored 204 against a threshold of 19 on the one frame that straddles the cut to the padding."""
    from latentbridge.tasks.anomaly import Detector
    from latentbridge.transforms.numpy_stft import silence_tail, stft_magnitude

    rng = np.random.default_rng(1)
    sr, b = 16000, np.array([0.2, 0.5, 0.2])

    def clip(path, seconds, click=False):
        x = np.convolve(rng.normal(size=int(seconds * sr)), b, mode="same") * 0.1
        x += 0.05 * np.sin(2 * np.pi * 1000 * np.arange(len(x)) / sr)
        if click:
            x[::1600] += 0.8
        sf.write(path, x.astype(np.float32), sr)

    (tmp_path / "train").mkdir()
    for i in range(16):
        clip(tmp_path / "train" / f"n{i:02d}.wav", 2.0)
    clip(tmp_path / "short_normal.wav", 1.0)
    clip(tmp_path / "short_click.wav", 1.0, click=True)
    assert main(["anomaly", "fit", str(tmp_path / "train"), "--out", str(tmp_path / "m"),
                 "-o", "audio.pad=constant", "-o", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    det = Detector.load(tmp_path / "m")
    ex = det.extractor(use_cache=False)
    wf = ex.extract([tmp_path / "short_normal.wav", tmp_path / "short_click.wav"])
    normal, click = det.score_features(wf.features)
    assert normal < 1.2 * det.threshold < click  # 204 against 19 before
    # the edge scorer's numpy path silences the same frames
    windows, _ = ex.windows_of(ex.read(tmp_path / "short_normal.wav"))
    t = det.transform
    mag = silence_tail(stft_magnitude(windows, t.n_fft, t.hop_length, power=t.power), windows, t.n_fft, t.hop_length)
    np.testing.assert_allclose(t.features_from_magnitude(torch.from_numpy(mag)).numpy(), wf.features[:1], atol=1e-3)
    # a model that reads the silence too (PCA of the frames) says so when it scores a padded clip
    from conftest import REPO

    assert main(["anomaly", "fit", str(tmp_path / "train"), "--out", str(tmp_path / "pca"), "--config",
                 str(REPO / "configs" / "anomaly_pca.yaml"), "-o", "audio.pad=constant"]) == 0
    assert main(["anomaly", "fit", str(tmp_path / "train"), "--out", str(tmp_path / "wrap"),
                 "-o", "audio.pad=wrap"]) == 0
    # the statistics detector with wrapped padding, that its statistics of fewer frames scatter more (normal clips cut
    # to half its window were flagged 8 to 10 times in 10 without a word of it); padded with silence it calibrates
    # for the share of the window a clip fills, and has nothing to say
    for model, why, fix in (("pca", "their scores also measure the padding", "fit with a window no longer than them"),
                            ("wrap", "their statistics come from fewer frames than a whole window's and scatter more",
                             "fit again with -o audio.pad=constant"), ("m", None, None)):
        caplog.clear()
        assert main(["anomaly", "score", str(tmp_path / model), str(tmp_path / "short_normal.wav"),
                     "--out", str(tmp_path / f"s_{model}")]) == 0
        if why is None:
            assert "the model was fitted on none" not in caplog.text, caplog.text
            continue
        pad = "constant" if model == "pca" else "wrap"
        assert f"were padded ({pad}), and the model was fitted on none: {why}" in caplog.text, caplog.text
        assert f"(short_normal.wav); {fix}" in caplog.text, caplog.text


def test_the_survey_counts_only_the_files_it_could_read(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(5):
        _write(tmp_path / f"n{i}.wav", 1.0, 16000, rng)
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)  # a header, no samples
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF" + bytes(rng.integers(0, 255, 400, dtype=np.uint8)))
    survey = survey_files(list_audio_files(tmp_path))
    assert survey.n_files == 7 and survey.rates == {16000: 5} and min(survey.durations_s) == pytest.approx(1.0)
    assert sorted(p.split("/")[-1] for p, _ in survey.unreadable) == ["corrupt.wav", "empty.wav"]
    rate = next(c for c in choose_settings(survey) if c.key == "audio.sample_rate")
    # it once said "all 7 files at 16000 Hz", and counted the empty file's 0 s among the durations
    assert rate.reason == "all 5 files that could be read (2 could not) at 16000 Hz"


def test_fit_lists_its_training_folder_once(machine_data, feature_cache, tmp_path, monkeypatch, caplog):
    import latentbridge.data.audio as audio

    walked = []
    real = audio.list_audio_files
    monkeypatch.setattr(audio, "list_audio_files", lambda p: walked.append(p) or real(p))
    folder = tmp_path / "train"
    folder.mkdir()
    for f in sorted((machine_data / "train" / "normal").glob("*.wav"))[:4]:
        (folder / f.name).symlink_to(f)
    first = sorted(folder.glob("*.wav"))[0]
    (folder / "zz_again.wav").symlink_to(first)  # one recording under two names
    assert main(["anomaly", "fit", str(folder), "--out", str(tmp_path / "m")]) == 0
    assert [str(p) for p in walked] == [str(folder)]  # the survey and the features walked it once each before
    assert caplog.text.count("reached more than once") == 1
    assert f"taken once: {folder / 'zz_again.wav'} (the same file as {first})" in caplog.text


def test_level_and_depth_warnings_name_the_odd_recordings():
    from latentbridge.data.survey import depth_warning, level_warnings

    pct = [-60.0, -55.0, -50.0, -45.0, -40.0]
    names = ["ok", "dead", "hot", "unscaled"]
    texts = level_warnings(pct, names, [-50.0, -95.0, -5.0, 60.0])
    assert len(texts) == 3 and texts[0].startswith("1 of 4 recordings are more than 30 dB quieter than the quietest "
                                                   "training recording (dead -95 dBFS")
    assert texts[1].startswith("1 of 4 recordings are more than 30 dB louder than the loudest training recording "
                               "(hot -5 dBFS")
    assert texts[2].startswith("1 of 4 recordings have an RMS level above full scale (unscaled 60 dBFS")
    assert level_warnings(pct, names, [-50.0, -85.0, -15.0, -45.0]) == []  # within 30 dB either way: nothing
    # training in physical units (vibration tables of m/s^2, levels above 0 dB): full scale means nothing
    assert level_warnings([-5.0, 0.0, 5.0, 10.0, 12.0], ["a"], [20.0]) == []
    assert level_warnings(None, ["a"], [60.0]) == []
    text = depth_warning({"PCM_16": 4, "FLOAT": 1}, ["PCM_16", "PCM_U8", "PCM_S8", "VORBIS"], list("abcd"))
    assert text.startswith("2 of 4 recordings are stored with 8-bit samples (b, c) and no training recording was "
                           "(16-bit PCM x4, 32-bit float x1)"), text
    assert depth_warning({"PCM_U8": 3}, ["PCM_U8"], ["a"]) is None  # fitted on 8-bit recordings: they are alike
    assert depth_warning({"PCM_16": 3}, ["PCM_24", "FLOAT"], ["a", "b"]) is None


def test_codec_warning_names_recordings_stored_the_other_way():
    from latentbridge.data.survey import codec_counts, codec_warning

    fitted = codec_counts(["PCM_16"] * 3 + ["FLOAT", ""])
    assert fitted == {"PCM_16": 3, "FLOAT": 1}
    assert codec_warning(fitted, ["PCM_24", "FLOAT", "CSV", ""], ["a", "b", "c", "d"]) is None
    text = codec_warning(fitted, ["PCM_16", "MPEG_LAYER_III", "VORBIS", "MPEG_LAYER_III"], list("abcd"))
    assert text.startswith("3 of 4 recordings are stored by a lossy codec (MP3 x2, Vorbis x1: b, c, d) and every "
                           "training recording was stored losslessly (16-bit PCM x3, 32-bit float x1)"), text
    # fitted on lossy copies: the lossless recordings are the ones unlike them
    text = codec_warning({"VORBIS": 5}, ["VORBIS", "PCM_16"], ["a.ogg", "b.wav"])
    assert text.startswith("1 of 2 recordings are stored losslessly or by another lossy codec (16-bit PCM x1: b.wav) "
                           "and every training recording was stored by a lossy codec (Vorbis x5)"), text
    # fitted on MP3s: Vorbis or u-law copies of normal sound were flagged without a word
    text = codec_warning({"MPEG_LAYER_III": 30}, ["MPEG_LAYER_III", "VORBIS", "ULAW"], ["a.mp3", "b.ogg", "c.wav"])
    assert text.startswith("2 of 3 recordings are stored losslessly or by another lossy codec (Vorbis x1, "), text
    # training files of both kinds, or none known: nothing to tell
    assert codec_warning({"VORBIS": 2, "PCM_16": 2}, ["MPEG_LAYER_III"], ["a.mp3"]) is None
    assert codec_warning({}, ["VORBIS"], ["a.ogg"]) is None
    from latentbridge.tasks.anomaly_card import _codecs  # the model card's line

    assert _codecs({"VORBIS": 2, "PCM_16": 1}) == "Vorbis x2, 16-bit PCM x1 (lossless and lossy mixed)"
    assert _codecs({"MPEG_LAYER_III": 4}) == "MP3 x4 (lossy; recordings stored the other way are named at scoring)"


def test_a_low_rate_sensor_gets_frames_that_resolve_its_spectrum():
    """At 100 Hz the time rule's frames hold 8 samples (5 bins 12.5 Hz apart, 2 mel bands): up to about 500 Hz the
    survey chooses frames that resolve stationary vibration (up to 1024 samples, 8 to a window, within the
    recordings); at 1 kHz (33 bins) the choice only names them (a simulated gearbox lost 0.02 AUC with them)."""
    from latentbridge.data.survey import Survey

    def chosen(rate, seconds, given=None):
        s = Survey(10, {rate: 10}, {1: 10}, [seconds] * 10)
        return {c.key: c for c in choose_settings(s, given)}

    c = chosen(100, 120.0)
    assert (c["features.n_fft"].value, c["features.hop_length"].value) == (1024, 512)
    assert (c["audio.window_s"].value, c["audio.hop_s"].value) == (46.25, 23.125)
    assert c["features.n_fft"].reason.startswith("0.0977-Hz bins at 100 Hz for stationary vibration: the time rule "
                                                  "(80 ms at 100 Hz (windows of 1 s or more: frequency resolution)) "
                                                  "would leave 5 bins 12.5 Hz apart")
    assert c["audio.window_s"].reason.startswith("8 frames of 1024 samples (features.n_fft)")
    # recordings too short for 8 frames of 1024 samples: the largest frame that fits
    c = chosen(100, 20.0)
    assert (c["features.n_fft"].value, c["audio.window_s"].value) == (256, 11.75)
    # a window or STFT the user set: the time rule, the finer settings named
    c = chosen(100, 120.0, {"audio.window_s": 10.0})["features.n_fft"]
    assert c.value == 8 and "only 5 frequency bins, 12.5 Hz apart" in c.reason
    assert "-o features.n_fft=1024 -o features.hop_length=512 -o audio.window_s=46.25" in c.reason
    c = chosen(1000, 10.0)["features.n_fft"]
    assert c.value == 64 and "only 33 frequency bins, 15.6 Hz apart: for a finer look" in c.reason
    assert chosen(16000, 10.0)["features.n_fft"].reason == ("64 ms at 16000 Hz (windows of 1 s or more: frequency "
                                                            "resolution)")  # 513 bins
    # clips too short for 8 frames of even twice the time rule's (50 ms at 1 kHz): the time rule, the window within
    # the clips (the finer frames made 0.5-s windows, and every 50-ms clip was refused as too short)
    c = chosen(1000, 0.05)
    assert (c["features.n_fft"].value, c["audio.window_s"].value) == (32, 0.05), c
    assert "for a finer look" not in c["features.n_fft"].reason


def test_the_band_is_not_cut_to_files_the_model_cannot_read():
    """9 accelerometer files at 25.6 kHz and 3 at 200 Hz: the survey stopped the band at 100 Hz (4 mel bands) for the
    200-Hz files, which reading at 25.6 kHz then refuses (upsampled 128 times); the whole band is kept. Files at a rate
    the model does read (6.4 kHz) still stop it."""
    from latentbridge.data.survey import Survey

    keys = {c.key: c.value for c in choose_settings(Survey(12, {25600: 9, 200: 3}, {1: 12}, [10.0] * 12))}
    assert "features.fmax" not in keys and keys["audio.sample_rate"] == 25600 and keys["features.n_mels"] == 64
    keys = {c.key: c.value for c in choose_settings(Survey(12, {25600: 9, 6400: 3}, {1: 12}, [10.0] * 12))}
    assert keys["features.fmax"] == 3200.0


def test_the_survey_s_rate_floor_and_reasons_for_odd_folders():
    """Recordings in a sensor's physical units (strain of 1e-5 in a CSV: -101 dBFS) were features at the -100 dB
    floor in every band but their loudest (faults scored 0, AUC 0.11, windows called copies of each other): the floor
    follows their level; rates tied 8 to 8 took the highest (a 192-kHz model of 16-kHz files, nothing used above 8
    kHz) and counted files it refuses into the band's reason; a window shortened for want of sound was said to be
    "of 1 s or more"."""
    from latentbridge.data.survey import Survey

    def chosen(levels, rates=None, seconds=10.0, given=None):
        rates = rates or {1000: len(levels)}
        s = Survey(len(levels), rates, {1: len(levels)}, [seconds] * len(levels), len(levels), levels_dbfs=levels)
        return {c.key: c for c in choose_settings(s, given)}

    quiet = chosen([-101.3] * 19 + [-95.0])
    assert quiet["features.amin"].value == pytest.approx(2.7e-9)
    # of power features (the DCASE preset's, 10·log10 of the power): the floor 70 dB under them too (amin floors
    # the power: the magnitude's floor left 82 % of such bins at it)
    assert chosen([-101.3] * 5, given={"features.power": 2.0})["features.amin"].value == pytest.approx(7.4e-18)
    assert quiet["features.amin"].reason.startswith("the median recording's level is -101 dBFS, far under full scale")
    for levels in ([-30.0] * 5, [DIGITAL_SILENCE_DBFS] * 5, [-79.0] * 5):  # the default floor; digital silence
        assert "features.amin" not in chosen(levels)
    mixed = chosen([-20.0] * 20, {192000: 8, 16000: 8, 500: 4})
    assert mixed["audio.sample_rate"].value == 16000
    assert mixed["audio.sample_rate"].reason.endswith("the most common, others resampled (the lowest of as many)")
    band = chosen([-20.0] * 20, {25600: 16, 8000: 2, 200: 2})["features.fmax"]
    assert band.value == 4000.0 and band.reason.startswith("2 of the 20 files are recorded at 8000 Hz or less")
    short = chosen([-20.0] * 2, {16000: 2}, seconds=1.0)
    assert short["audio.window_s"].value < 1.0 and "windows of 1 s or more" not in short["features.n_fft"].reason
    assert "their windows shortened for want of sound" in short["features.n_fft"].reason
    from latentbridge.data.survey import percent

    # (a square wave clipped "1e+02 %")
    assert [percent(x) for x in (1.0, 0.555, 1.2e-5)] == ["100 %", "56 %", "0.0012 %"]


def test_audio_files_of_differing_channel_counts_are_mixed_and_said_so():
    """A folder of 6- and 8-channel array recordings is mixed to one signal: the reason said was 'microphones hearing
    one sound', a stereo pair's."""
    from latentbridge.data.survey import Survey
    from latentbridge.tasks.adapt import _channel_choice

    from latentbridge.utils import channel_counts

    assert channel_counts([(1, 4), (3, 2)]) == "1 channel x4, 3 channels x2"  # it said "1 channels x4"
    mixed = _channel_choice(Survey(8, {48000: 8}, {6: 5, 8: 3}, [5.0] * 8, codecs={"PCM_24": 8}))
    assert mixed.value is None and "6 channels x5, 8 channels x3: mixed to one signal (the channel counts differ" \
        in mixed.reason
    stereo = _channel_choice(Survey(4, {48000: 4}, {2: 4}, [5.0] * 4, codecs={"PCM_16": 4}))
    assert stereo.value is None and "(microphones hearing one sound)" in stereo.reason


def test_a_short_burst_in_a_long_recording_is_kept_with_its_silence(tmp_path, capsys):
    """Relay-like recordings (3 s, one to three 50-ms bursts at random times): the survey trims them and takes the
    median sound's window, and the recordings of one burst, trimmed to 80 ms, were refused as too short by `fit`
    (and by `score`, a 150-ms anomaly). Trimming keeps the silence around a short sound up to the shortest
    recording the model reads (`io.levels.widened`); listen and score read the same windows; listen's summary gives
    the recording's length (it said 0.23 s of a 3-s file)."""
    import io

    from latentbridge.io.levels import widened
    from latentbridge.tasks.listen import listen_model

    assert widened(100, 180, 3000, 225) == (28, 253) and widened(0, 50, 3000, 225) == (0, 225)
    assert widened(2900, 3000, 3000, 225) == (2775, 3000) and widened(10, 20, 100, 225) == (0, 100)
    assert widened(100, 500, 3000, 225) == (100, 500)
    rng, sr = np.random.default_rng(0), 16000
    for split, n in (("train", 16), ("test", 3)):
        (tmp_path / split).mkdir()
        for i in range(n):
            x = 1e-3 * rng.standard_normal(3 * sr)
            for _ in range(1 + i % 3 if split == "train" else 1):
                at = int(rng.integers(sr // 4, 3 * sr - sr // 4))
                x[at:at + sr // 20] += 0.2 * rng.standard_normal(sr // 20)
            sf.write(tmp_path / split / f"r{i:02d}.wav", x.astype(np.float32), sr)
    assert main(["anomaly", "fit", str(tmp_path / "train"), "--out", str(tmp_path / "m")]) == 0
    printed = capsys.readouterr().out
    assert "audio.trim_db = 40.0" in printed and "recording too short" not in printed
    assert main(["anomaly", "score", str(tmp_path / "m"), str(tmp_path / "test"), "--out", str(tmp_path / "s")]) == 0
    rows = [r.split(",") for r in (tmp_path / "s" / "scores.csv").read_text().splitlines()[1:] if "r00.wav" in r]
    out = io.StringIO()
    summary = listen_model(tmp_path / "m", source=tmp_path / "test" / "r00.wav", out=out)
    assert summary["duration_s"] == pytest.approx(3.0) and summary["n_windows"] == 1
    window = next(r for r in rows if r[-1] == "window")
    assert f"{float(window[1]):.2f}-{float(window[2]):.2f} s  score {float(window[3]):.7g}" in out.getvalue()


def test_windows_of_digital_silence_in_every_recording_are_not_called_copies(tmp_path, caplog):
    """A gated logger's recordings (an impact in exact zeros): their silent windows, alike in every file, were "windows
    the model was fitted on (the training recordings, or copies of them)", where no file was a copy."""
    rng, sr = np.random.default_rng(1), 8000
    (tmp_path / "train").mkdir()
    t = np.arange(sr // 10) / sr
    for i in range(20):
        x = np.zeros(sr, np.float32)
        at = int(rng.integers(0, sr - len(t)))
        x[at:at + len(t)] = 0.5 * np.sin(2 * np.pi * 1000 * t) * np.exp(-t / 0.02) * (1 + 0.1 * rng.standard_normal())
        sf.write(tmp_path / "train" / f"i{i:02d}.wav", x, sr)
    with caplog.at_level("WARNING"):
        assert main(["anomaly", "fit", str(tmp_path / "train"), "--out", str(tmp_path / "m"), "-o",
                     "audio.trim_db=null", "-o", "audio.window_s=0.2", "-o", "audio.hop_s=0.1"]) == 0
    assert "windows of digital silence, alike in every recording" in caplog.text, caplog.text
    assert "copies of them" not in caplog.text


def test_the_printed_default_config_fits_as_the_defaults_do(tmp_path, capsys, feature_cache):
    """`latentbridge config > c.yaml` printed every audio and feature key, so a fit from it chose nothing: 16 kHz and
    n_fft 1024 for 8-kHz recordings, where the fit without it chose 8 kHz and 512. The keys the survey chooses are
    left out, said in a comment."""
    rng = np.random.default_rng(0)
    for i in range(6):
        _write(tmp_path / "d" / f"{i}.wav", 2.0, 8000, rng)
    assert main(["config"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# audio.auto: the audio and feature settings not given here are chosen from the data")
    (tmp_path / "c.yaml").write_text(printed)
    chosen = []
    for i, extra in enumerate(([], ["--config", str(tmp_path / "c.yaml")])):
        assert main(["anomaly", "fit", str(tmp_path / "d"), "--out", str(tmp_path / f"m{i}"), *extra]) == 0
        cfg = json.loads((tmp_path / f"m{i}" / "config.json").read_text())["config"]
        chosen.append((cfg["audio"]["sample_rate"], cfg["features"]["n_fft"]))
    assert chosen[0] == chosen[1] and chosen[0][0] == 8000
