"""Tests for the synthetic rotating-machine data set (latentbridge.data.synth.machine)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from latentbridge.data.synth import machine
from latentbridge.data.synth.machine import DEFAULTS, synth_clip, synth_machine
from latentbridge.errors import ConfigError, DataError

SR = 16000
SMALL = dict(sample_rate=SR, duration_s=0.5, n_train=3, n_test_normal=2, n_test_anomalous=4)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "machine"
    manifest = synth_machine(out, seed=3, **SMALL)
    return out, manifest


# ------------------------------------------------------------------------------ files


def test_defaults_match_signature():
    sig = inspect.signature(synth_machine)
    for name, value in DEFAULTS.items():
        assert sig.parameters[name].default == value
    assert set(DEFAULTS) == {n for n in sig.parameters if n != "out_dir"}
    assert DEFAULTS["n_train"] == 60 and DEFAULTS["n_test_normal"] == 40 and DEFAULTS["n_test_anomalous"] == 40


def test_layout_and_counts(small_set):
    out, _ = small_set
    train = sorted(p.name for p in (out / "train" / "normal").iterdir())
    test_n = sorted(p.name for p in (out / "test" / "normal").iterdir())
    test_a = sorted(p.name for p in (out / "test" / "anomalous").iterdir())
    assert train == ["normal_0000.wav", "normal_0001.wav", "normal_0002.wav"]
    assert test_n == ["normal_0000.wav", "normal_0001.wav"]
    assert test_a == [
        "anomalous_bearing_0000.wav",
        "anomalous_click_0001.wav",
        "anomalous_imbalance_0003.wav",
        "anomalous_shift_0002.wav",
    ]
    assert (out / "manifest.json").is_file()
    top = sorted(p.name for p in out.iterdir())
    assert top == ["manifest.json", "test", "train"]
    # no temporary leftovers beside the folder
    assert [p.name for p in out.parent.iterdir()] == ["machine"]


def test_audio_format_and_no_clipping(small_set):
    out, _ = small_set
    wavs = sorted(out.rglob("*.wav"))
    assert len(wavs) == 9
    for p in wavs:
        info = sf.info(p)
        assert info.samplerate == SR
        assert info.channels == 1
        assert info.frames == int(0.5 * SR)
        assert info.subtype == "PCM_16"
        assert info.format == "WAV"
        x, sr = sf.read(p, dtype="int16")
        assert sr == SR and x.dtype == np.int16
        assert np.max(np.abs(x.astype(np.int32))) < 32767  # never at full scale
        xf, _ = sf.read(p, dtype="float32")
        rms = float(np.sqrt(np.mean(xf.astype(np.float64) ** 2)))
        assert 10 ** (-36 / 20) < rms < 10 ** (-18 / 20)  # -26 dBFS +- 6 dB (+ margin)
        assert np.max(np.abs(xf)) < 0.99


def test_manifest_contents(small_set):
    out, manifest = small_set
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    par = manifest["parameters"]
    assert par["seed"] == 3 and par["sample_rate"] == SR and par["duration_s"] == 0.5
    assert (par["n_train"], par["n_test_normal"], par["n_test_anomalous"]) == (3, 2, 4)
    assert par["anomaly_kinds"] == ["bearing", "click", "shift", "imbalance"]
    files = manifest["files"]
    assert sorted(f["path"] for f in files) == sorted(
        str(p.relative_to(out)) for p in out.rglob("*.wav")
    )
    for f in files:
        assert f["split"] in ("train", "test")
        assert f["path"].startswith(f"{f['split']}/{f['label']}/")
        normal = f["params"]["normal"]
        assert machine.F0_MIN <= normal["f0_hz"] <= machine.F0_MAX
        assert -6 <= normal["gain_db"] <= 6
        assert len(normal["harmonic_amps"]) == machine.N_HARMONICS
        if f["label"] == "normal":
            assert f["kind"] is None and f["params"]["anomaly"] is None and f["severity"] is None
        else:
            assert f["label"] == "anomalous" and f["split"] == "test"
            assert f["kind"] in f["path"]
            assert f["params"]["anomaly"]["kind"] == f["kind"]
            assert 0.0 <= f["severity"] <= 1.0
            assert f["severity"] == f["params"]["anomaly"]["severity"]
    kinds = [f["kind"] for f in files if f["label"] == "anomalous"]
    assert kinds == ["bearing", "click", "shift", "imbalance"]
    # the manifest's seed_key re-renders the file exactly
    f = next(f for f in files if f["kind"] == "bearing")
    x, params = synth_clip(tuple(f["seed_key"]), kind="bearing", sample_rate=SR, duration_s=0.5)
    assert json.loads(json.dumps(params)) == f["params"]
    pcm, _ = sf.read(out / f["path"], dtype="int16")
    assert np.array_equal(pcm, machine._to_pcm16(x))


def test_deterministic_bytes(tmp_path, small_set):
    out, _ = small_set
    again = tmp_path / "again"
    synth_machine(again, seed=3, **SMALL)
    assert _tree_bytes(again) == _tree_bytes(out)


def test_different_seed_differs(tmp_path, small_set):
    out, _ = small_set
    other = tmp_path / "other"
    synth_machine(other, seed=4, **SMALL)
    a, b = _tree_bytes(out), _tree_bytes(other)
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)


def test_file_does_not_depend_on_counts(tmp_path, small_set):
    out, _ = small_set
    fewer = tmp_path / "fewer"
    synth_machine(fewer, seed=3, sample_rate=SR, duration_s=0.5, n_train=1, n_test_normal=0, n_test_anomalous=1)
    name = "train/normal/normal_0000.wav"
    assert (fewer / name).read_bytes() == (out / name).read_bytes()
    name = "test/anomalous/anomalous_bearing_0000.wav"
    assert (fewer / name).read_bytes() == (out / name).read_bytes()


def test_refuses_non_empty_folder(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError) as err:
        synth_machine(out, **SMALL)
    assert str(out) in str(err.value)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    # overwrite replaces the whole folder
    synth_machine(out, overwrite=True, **SMALL)
    assert not (out / "keep.txt").exists()
    assert (out / "manifest.json").is_file()


def test_empty_existing_folder_is_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    synth_machine(out, sample_rate=SR, duration_s=0.2, n_train=1, n_test_normal=1, n_test_anomalous=1)
    assert len(list(out.rglob("*.wav"))) == 3


def test_failure_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "data"
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise OSError("disk full")
        return real_write(*args, **kwargs)

    real_write = sf.write
    monkeypatch.setattr(machine.sf, "write", failing_write)
    with pytest.raises(OSError):
        synth_machine(out, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError):
        synth_machine(tmp_path / "a", anomaly_kinds=("bearing", "rust"), **SMALL)
    with pytest.raises(ConfigError):
        synth_machine(tmp_path / "b", sample_rate=SR, duration_s=0.5, n_train=-1)
    with pytest.raises(ConfigError):
        synth_machine(tmp_path / "c", sample_rate=SR, duration_s=0.5, n_test_anomalous=2, anomaly_kinds=())
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ signatures

D = 2.0
KEYS = [(11, 2, i) for i in range(4)]


def _band(x, lo, hi=None):
    if hi is None:
        sos = signal.butter(4, lo, btype="highpass", fs=SR, output="sos")
    else:
        sos = signal.butter(4, [lo, hi], btype="bandpass", fs=SR, output="sos")
    return signal.sosfiltfilt(sos, x)


def _rel_band_energy(x, lo, hi):
    return float(np.mean(_band(x, lo, hi) ** 2) / np.mean(x**2))


def _kurtosis(x):
    x = x - x.mean()
    return float(np.mean(x**4) / np.mean(x**2) ** 2)


def _crest(x):
    return float(np.max(np.abs(x)) / np.sqrt(np.mean(x**2)))


def _amp_at(x, f, tol=0.04):
    """Largest normalised spectrum magnitude within f*(1 +- tol)."""
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)))) / np.sqrt(np.mean(x**2))
    m = (freqs > f * (1 - tol)) & (freqs < f * (1 + tol))
    return float(mag[m].max())


def _pair(key, kind):
    normal, pn = synth_clip(key, kind=None, sample_rate=SR, duration_s=D)
    anom, pa = synth_clip(key, kind=kind, sample_rate=SR, duration_s=D)
    assert pa["normal"] == pn["normal"]  # same clip, plus the fault
    return normal, anom, pa


def test_normal_clip_is_a_machine():
    x, p = synth_clip((5, 0, 0), sample_rate=SR, duration_s=D)
    f0 = p["normal"]["f0_hz"]
    # the shaft harmonic and the blade-pass tone stand out of the background
    freqs = np.fft.rfftfreq(len(x), 1 / SR)
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)))) / np.sqrt(np.mean(x**2))
    floor = float(np.median(mag[(freqs > 1000) & (freqs < 2000)]))
    assert _amp_at(x, f0) > 30 * floor
    assert _amp_at(x, machine.N_BLADES * f0) > 5 * floor
    # the shaft speed drifts a little but stays in range
    assert np.max(np.abs(x)) < 1.0


def test_bearing_signature():
    for key in KEYS:
        normal, anom, p = _pair(key, "bearing")
        assert 3.1 <= p["anomaly"]["fault_order"] <= 3.6
        assert 2000 <= p["anomaly"]["ring_hz"] <= 5000
        assert _rel_band_energy(anom, 2000, 5000) > 1.05 * _rel_band_energy(normal, 2000, 5000)
        assert _kurtosis(_band(anom, 2000, 5000)) > _kurtosis(_band(normal, 2000, 5000))


def test_click_signature():
    for key in KEYS:
        normal, anom, _ = _pair(key, "click")
        assert _crest(_band(anom, 4000)) > 2 * _crest(_band(normal, 4000))
        assert _crest(anom) >= _crest(normal) * 0.99


def test_imbalance_signature():
    for key in KEYS:
        normal, anom, p = _pair(key, "imbalance")
        f0 = p["normal"]["f0_hz"]
        assert _amp_at(anom, f0) > 1.1 * _amp_at(normal, f0)
        assert p["anomaly"]["boost_1x_db"] > p["anomaly"]["boost_2x_db"] > 0


def _find_shift(mode):
    for i in range(200):
        key = (11, 2, i)
        _, p = synth_clip(key, kind="shift", sample_rate=SR, duration_s=0.1)
        if p["anomaly"]["mode"] == mode:
            return key
    raise AssertionError(f"no shift clip of mode {mode}")


def test_shift_speed_moves_spectral_peak():
    key = _find_shift("speed")
    normal, anom, p = _pair(key, "shift")
    freqs = np.fft.rfftfreq(len(anom), 1 / SR)
    band = (freqs > 15) & (freqs < 60)

    def peak(x):
        mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return float(freqs[band][np.argmax(mag[band])])

    assert machine.F0_MIN * 0.97 <= peak(normal) <= machine.F0_MAX * 1.03
    assert not machine.F0_MIN * 0.98 <= peak(anom) <= machine.F0_MAX * 1.02
    assert abs(peak(anom) - p["anomaly"]["f0_hz"]) < 0.05 * p["anomaly"]["f0_hz"]


def test_shift_subharmonic_and_ratio():
    normal, anom, p = _pair(_find_shift("subharmonic"), "shift")
    f0 = p["normal"]["f0_hz"]
    assert _amp_at(anom, 1.5 * f0, 0.02) > 3 * _amp_at(normal, 1.5 * f0, 0.02)
    normal, anom, p = _pair(_find_shift("harmonic_ratio"), "shift")
    k = p["anomaly"]["harmonic"]
    f1 = p["normal"]["f0_hz"]

    def ratio(x):
        return _amp_at(x, k * f1) / _amp_at(x, f1)

    assert ratio(anom) > 1.5 * ratio(normal)


def _auc(neg, pos):
    neg, pos = np.asarray(neg), np.asarray(pos)
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def test_rms_does_not_separate_classes(tmp_path):
    out = tmp_path / "rms"
    manifest = synth_machine(
        out, seed=1, sample_rate=SR, duration_s=0.5, n_train=0, n_test_normal=40, n_test_anomalous=40
    )
    rms = {"normal": [], "anomalous": []}
    for f in manifest["files"]:
        x, _ = sf.read(out / f["path"], dtype="float64")
        rms[f["label"]].append(np.sqrt(np.mean(x**2)))
    auc = _auc(rms["normal"], rms["anomalous"])
    assert 0.3 <= auc <= 0.75, auc


def test_the_help_of_data_synth_gives_each_generator_s_own_defaults():
    """The help writes the defaults (the generators are not imported to parse a command line): they are theirs."""
    import re

    from latentbridge.cli import build_parser
    from latentbridge.data.synth import bridge, machine, tissue

    options = {"machine": (machine.DEFAULTS, {"--sample-rate": "sample_rate", "--duration": "duration_s",
                                              "--n-train": "n_train", "--n-test-normal": "n_test_normal",
                                              "--n-test-anomalous": "n_test_anomalous", "--seed": "seed"}),
               "bridge": (bridge.DEFAULTS, {"--states": "states", "--sample-rate": "sample_rate",
                                            "--duration": "duration_s", "--sensors": "n_sensors",
                                            "--noise-snr": "noise_snr_db", "--seed": "seed"}),
               "tissue": (tissue.DEFAULTS, {"--sections": "sections", "--test-sections": "test_sections",
                                            "--height": "height", "--width": "width", "--channels": "channels",
                                            "--seed": "seed"})}
    kinds = build_parser()._subparsers._group_actions[0].choices["data"]._subparsers._group_actions[0].choices[
        "synth"]._subparsers._group_actions[0].choices
    for kind, (defaults, keys) in options.items():
        helps = {a.option_strings[0]: a.help for a in kinds[kind]._actions if a.option_strings}
        for option, key in keys.items():
            written = re.search(r"default: ([-\d.]+)", helps[option])
            assert written and float(written.group(1)) == float(defaults[key]), (kind, option, helps[option])


def test_data_synth_options_out_of_reach_are_named(tmp_path, capsys):
    """--n-train 10**12 planned its files in memory until it was killed (4.4 GB in 32 s, no file written);
    --count-scale inf was numpy's "lam value too large", 0 blamed a read noise no option sets."""
    from latentbridge.cli import main

    for kind, option, value, said in (("machine", "--n-train", "1000000000000", "--n-train must be an integer from 0 "
                                       "to 1000000"),
                                      ("tissue", "--count-scale", "inf", "--count-scale must be a number above 0"),
                                      ("tissue", "--count-scale", "0", "--count-scale must be a number above 0")):
        assert main(["data", "synth", kind, "--out", str(tmp_path / kind), option, value]) == 2
        err = capsys.readouterr().err
        assert said in err and "lam" not in err and "read noise" not in err, err
        assert not (tmp_path / kind).exists()
