"""Tests for the perceptual speech metrics in latentbridge.metrics.signal (PESQ, STOI)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pesq")
pytest.importorskip("pystoi")

from latentbridge.metrics.signal import (  # noqa: E402
    audio_metrics,
    pesq_batch,
    pesq_score,
    stoi_batch,
    stoi_score,
)

REPO = Path(__file__).resolve().parents[1]
FSDD = REPO.parent / "shared" / "data" / "fsdd" / "recordings"
SNRS = (30, 20, 10, 0)
PESQ_MAX_NB = 4.549  # P.862 MOS-LQO of identical signals, narrow-band
PESQ_MAX_WB = 4.644  # P.862.2, wide-band


def vowel(sr: int, dur: float = 2.0) -> np.ndarray:
    """Vowel-like test signal: 120 Hz glottal harmonics with vibrato, formants near 700 and
    1200 Hz, and a 2 Hz syllable envelope that never falls below 30 %."""
    t = np.arange(int(sr * dur)) / sr
    f0 = 120.0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = np.zeros_like(t)
    for k in range(1, int(sr / 2 / 130)):
        amp = (
            np.exp(-((k * 120 - 700) ** 2) / (2 * 150**2))
            + 0.5 * np.exp(-((k * 120 - 1200) ** 2) / (2 * 200**2))
            + 0.05 / k
        )
        x += amp * np.sin(k * phase)
    env = 0.3 + 0.7 * 0.5 * (1 - np.cos(2 * np.pi * 2 * t))
    x = x * env
    return 0.5 * x / np.abs(x).max()


def add_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    n = np.random.default_rng(seed).standard_normal(x.shape)
    n *= np.sqrt(np.mean(x**2) / np.mean(n**2) / 10 ** (snr_db / 10))
    return x + n


@pytest.fixture(scope="module")
def george():
    """Real 8 kHz speech: George saying the ten digits, recordings concatenated (~4.9 s;
    one FSDD recording is only ~0.3 s, too short for STOI's 30 non-silent frames)."""
    sf = pytest.importorskip("soundfile")
    files = [FSDD / f"{d}_george_0.wav" for d in range(10)]
    if not all(f.exists() for f in files):
        pytest.skip(f"FSDD recordings not found under {FSDD}")
    parts = []
    for f in files:
        x, sr = sf.read(f, dtype="float64")
        assert sr == 8000
        parts.append(x)
    return np.concatenate(parts)


def _strictly_decreasing(values) -> bool:
    return all(a > b for a, b in zip(values, values[1:]))


# --- real speech, 8 kHz narrow-band ------------------------------------------------------------


def test_pesq_single_fsdd_recording_identical_is_max():
    sf = pytest.importorskip("soundfile")
    path = FSDD / "0_george_0.wav"
    if not path.exists():
        pytest.skip(f"{path} not found")
    x, sr = sf.read(path, dtype="float64")
    assert sr == 8000 and len(x) >= 0.25 * sr
    d = pesq_score(x, x, sr, return_details=True)
    assert d["mode"] == "nb" and d["sample_rate"] == 8000 and d["resampled_from"] is None
    assert d["pesq"] == pytest.approx(PESQ_MAX_NB, abs=0.01)


def test_pesq_of_a_long_recording_is_the_mean_over_segments(george):
    """The pesq package killed the process (segmentation fault) on about a minute of audio: `audio reconstruct` of a
    90-s recording crashed with exit 139 and no output."""
    rng = np.random.default_rng(0)
    long = np.tile(np.r_[george, np.zeros(4000)], 16)[: 75 * 8000]  # 75 s of speech
    assert pesq_score(long, long, 8000) == pytest.approx(PESQ_MAX_NB, abs=0.01)
    noisy = long + 0.02 * rng.standard_normal(long.size)
    bounds = ((0, 160000), (160000, 320000), (320000, 480000), (480000, 600000))  # 20 s x 3 and the last 15 s
    pieces = [pesq_score(noisy[a:b], long[a:b], 8000) for a, b in bounds]
    assert pesq_score(noisy, long, 8000) == pytest.approx(np.mean(pieces), abs=1e-6)
    quiet_end = long.copy()
    quiet_end[480000:] = 0.0  # the reference silent in the last 15 s, where the estimate is loud noise
    loud_end = quiet_end + np.where(np.arange(long.size) >= 480000, 0.5 * rng.standard_normal(long.size), 0.0)
    with pytest.warns(RuntimeWarning, match=r"1 of the 4 20-s segments hold no speech in the reference \(60-75 s\)"):
        whole = pesq_score(loud_end, quiet_end, 8000)
    assert whole == pytest.approx(np.mean([pesq_score(loud_end[a:b], quiet_end[a:b], 8000) for a, b in bounds[:3]]),
                                  abs=1e-6)  # (the mean of the three segments with speech: what is scored, said)


def test_pesq_speech_decreases_with_noise(george):
    clean = pesq_score(george, george, 8000)
    assert clean == pytest.approx(PESQ_MAX_NB, abs=0.01)
    noisy = [pesq_score(add_noise(george, s), george, 8000) for s in SNRS]
    assert _strictly_decreasing([clean, *noisy]), noisy
    assert noisy[0] < clean - 0.5 and noisy[-1] < 2.0
    # level of the pair does not matter
    quiet = pesq_score(0.1 * add_noise(george, 20), 0.1 * george, 8000)
    assert quiet == pytest.approx(noisy[1], abs=1e-3)


def test_stoi_speech_decreases_with_noise(george):
    assert stoi_score(george, george, 8000) == pytest.approx(1.0, abs=1e-6)
    noisy = [stoi_score(add_noise(george, s), george, 8000) for s in SNRS]
    assert _strictly_decreasing([1.0, *noisy]), noisy
    assert noisy[-1] < 0.8
    ext = stoi_score(add_noise(george, 10), george, 8000, extended=True)
    assert 0.0 < ext < 1.0 and ext != pytest.approx(noisy[2])


# --- synthetic vowel, 16 kHz wide-band -----------------------------------------------------------


def test_pesq_stoi_synthetic_wideband():
    x = vowel(16000)
    d = pesq_score(x, x, 16000, return_details=True)
    assert d["mode"] == "wb" and d["sample_rate"] == 16000 and d["resampled_from"] is None
    assert d["pesq"] == pytest.approx(PESQ_MAX_WB, abs=0.01)
    pesqs = [pesq_score(add_noise(x, s), x, 16000) for s in SNRS]
    assert _strictly_decreasing([d["pesq"], *pesqs]), pesqs
    assert stoi_score(x, x, 16000) == pytest.approx(1.0, abs=1e-6)
    stois = [stoi_score(add_noise(x, s), x, 16000) for s in SNRS]
    assert _strictly_decreasing([1.0, *stois]), stois
    # narrow-band may be asked for at 16 kHz
    nb = pesq_score(x, x, 16000, mode="nb", return_details=True)
    assert nb["mode"] == "nb" and nb["pesq"] == pytest.approx(PESQ_MAX_NB, abs=0.01)


def test_pesq_resamples_other_rates():
    x = vowel(22050)
    d = pesq_score(x, x, 22050, return_details=True)
    assert d["mode"] == "wb" and d["sample_rate"] == 16000 and d["resampled_from"] == 22050
    assert d["pesq"] == pytest.approx(PESQ_MAX_WB, abs=0.01)
    noisy = [pesq_score(add_noise(x, s), x, 22050) for s in (30, 10)]
    assert d["pesq"] > noisy[0] > noisy[1]
    # same as resampling by hand (soxr_hq) and scoring at 16 kHz
    librosa = pytest.importorskip("librosa")
    def rs(v):
        return librosa.resample(v, orig_sr=22050, target_sr=16000, res_type="soxr_hq")

    assert noisy[0] == pytest.approx(pesq_score(rs(add_noise(x, 30)), rs(x), 16000), abs=1e-6)
    # below 16 kHz: narrow-band at 8 kHz; wide-band impossible
    z = vowel(11025)
    d2 = pesq_score(z, z, 11025, return_details=True)
    assert (d2["mode"], d2["sample_rate"], d2["resampled_from"]) == ("nb", 8000, 11025)
    with pytest.raises(ValueError, match="wide-band"):
        pesq_score(z, z, 11025, mode="wb")
    with pytest.raises(ValueError, match="wide-band"):
        pesq_score(z[:8000], z[:8000], 8000, mode="wb")


def test_too_short_and_bad_input():
    x = vowel(16000, dur=0.5)
    with pytest.raises(ValueError, match="0.25 s"):
        pesq_score(x[:3999], x[:3999], 16000)
    pesq_score(x[:4000], x[:4000], 16000)  # exactly 0.25 s is accepted
    with pytest.raises(ValueError, match="0.25 s"):
        pesq_batch(np.stack([x[:1000]] * 2), np.stack([x[:1000]] * 2), 16000)
    with pytest.raises(ValueError, match="mode"):
        pesq_score(x, x, 16000, mode="fb")
    with pytest.raises(ValueError, match="shape"):
        pesq_score(x, x[:-1], 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        pesq_score(x, x, 0)
    with pytest.raises(ValueError, match=r"\(T,\)"):
        pesq_score(np.stack([x, x]), np.stack([x, x]), 16000)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        stoi_score(bad, x, 16000)


def test_silence_gives_nan_with_warning():
    ref = np.zeros(8000)
    with pytest.warns(RuntimeWarning, match="no utterances"):
        assert math.isnan(pesq_score(np.zeros(8000), ref, 8000))
    with pytest.warns(RuntimeWarning, match="no utterances"):
        hiss = 1e-9 * np.random.default_rng(0).standard_normal(8000)
        assert math.isnan(pesq_score(hiss, ref, 8000))
    # STOI: too little speech (0.3 s) -> NaN instead of pystoi's 1e-5 placeholder
    x = vowel(8000, dur=0.3)
    with pytest.warns(RuntimeWarning, match="30 non-silent frames"):
        assert math.isnan(stoi_score(x, x, 8000))


# --- batches and the summary -------------------------------------------------------------------


def test_batches_and_audio_metrics():
    x = vowel(8000, dur=1.5)
    refs = np.stack([x, x, x, np.zeros_like(x)])
    ests = np.stack([x, add_noise(x, 20), add_noise(x, 0), add_noise(x, 0)])
    with pytest.warns(RuntimeWarning):
        p = pesq_batch(ests, refs, 8000)
    assert p.shape == (4,)
    assert p[0] == pytest.approx(PESQ_MAX_NB, abs=0.01) and p[0] > p[1] > p[2]
    assert math.isnan(p[3])
    s = stoi_batch(ests[:3], refs[:3], 8000)
    assert s.shape == (3,) and s[0] == pytest.approx(1.0, abs=1e-6) and s[0] > s[1] > s[2]
    # (N, C, T) keeps the leading shape
    assert pesq_batch(ests[:3].reshape(3, 1, -1), refs[:3].reshape(3, 1, -1), 8000).shape == (3, 1)

    m = audio_metrics(ests, refs, 8000)
    assert m["n"] == 4 and m["pesq_nan"] == 1 and m["pesq_mode"] == "nb"
    assert m["pesq"] == pytest.approx(np.nanmean(p))
    assert m["pesq_sample_rate"] == 8000 and m["pesq_resampled_from"] is None
    for key in ("si_sdr", "snr", "lsd", "mae", "mse", "cosine", "stoi"):
        assert math.isfinite(m[key]), key
    assert isinstance(m["stoi_nan"], int)
    json.dumps(m)
    single = audio_metrics(x, x, 8000)
    assert single["n"] == 1 and single["pesq"] == pytest.approx(PESQ_MAX_NB, abs=0.01)
    assert single["stoi"] == pytest.approx(1.0, abs=1e-6) and single["lsd"] == 0.0


def test_stoi_of_a_silent_reference_is_nan_with_a_warning():
    x = 0.1 * np.sin(np.arange(16000) / 7)
    with pytest.warns(RuntimeWarning, match="reference is silent"):
        assert math.isnan(stoi_score(x, np.zeros_like(x), 8000))  # (read 0.0: as if unintelligible)
