"""Synthetic rotating-machine recordings: the built-in default anomaly-detection data set.

One machine type (a fan/pump-like rotating machine with a 7-blade rotor) recorded many
times, each recording varied the way real recordings vary: shaft speed and its slow drift,
harmonic amplitudes, structural resonances, noise colour, background noise level, slow
amplitude modulation and microphone gain.  Anomalous clips are drawn exactly like normal
clips and then get one fault added:

``bearing``
    periodic impacts at a non-integer multiple of the shaft rate (outer-race fault,
    3.1-3.6 x shaft) with a little slip jitter; each impact rings a 2-5 kHz resonance with
    exponential decay, and the impact strength is modulated by the shaft rotation.
``click``
    sporadic short broadband transients at random times.
``shift``
    the harmonic pattern changes: the speed leaves the normal range (3-15 % outside it),
    a half-order sub-harmonic series appears, or the harmonic ratios change (looseness).
``imbalance``
    a strong increase of the 1x shaft component and a mild increase of 2x.

Every fault has a random ``severity`` in [0, 1] so that some are subtle and some obvious.
Each clip is normalised to a drawn recording level (like a recorder whose gain was set per
recording), so the overall level does not give the anomalies away.

Everything is deterministic from ``seed``: clip *i* of a group uses the seed sequence
``SeedSequence(seed, spawn_key=(group, i))`` -- the *i*-th child that
``SeedSequence(seed, spawn_key=(group,)).spawn`` would give -- so a clip does not depend on
how many other clips are made or in which order.  Inside a clip, separate child streams
draw the normal parameters, the fault parameters and the noise, so the same clip can be
rendered with and without its fault (see :func:`synth_clip`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy import signal

from latentbridge.data.synth import check_int, check_out_dir
from latentbridge.data.synth import rounded as _r
from latentbridge.data.synth import seed_sequence as _seed_sequence
from latentbridge.errors import ConfigError
from latentbridge.utils import atomic_path

__all__ = ["ANOMALY_KINDS", "DEFAULTS", "GENERATOR_VERSION", "synth_clip", "synth_machine"]

GENERATOR_VERSION = 1

ANOMALY_KINDS: tuple[str, ...] = ("bearing", "click", "shift", "imbalance")

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "sample_rate": 16000,
    "duration_s": 10.0,
    "n_train": 60,
    "n_test_normal": 40,
    "n_test_anomalous": 40,
    "anomaly_kinds": ANOMALY_KINDS,
    "overwrite": False,
}

# Machine constants (the "machine type"): what stays the same across recordings.
F0_MIN, F0_MAX = 27.0, 33.0  # normal shaft speed range, Hz (1620-1980 rpm)
N_BLADES = 7  # blade-pass frequency = 7 x shaft
N_HARMONICS = 16
LEVEL_DBFS = -26.0  # nominal clip RMS level before the per-clip gain
GAIN_DB = 6.0  # per-clip gain drawn uniformly in [-GAIN_DB, +GAIN_DB]
PEAK_LIMIT = 0.98

_GROUPS = {"train": 0, "test_normal": 1, "test_anomalous": 2}


# --------------------------------------------------------------------------------------
# parameter draws




def _draw_normal(rng: np.random.Generator) -> dict[str, Any]:
    decay = rng.uniform(0.9, 1.2)
    jitter = rng.normal(0.0, 0.15, N_HARMONICS)
    jitter[0] = 0.0  # 1x is the amplitude reference
    amps = np.arange(1, N_HARMONICS + 1, dtype=float) ** -decay * np.exp(jitter)
    return {
        "f0_hz": _r(rng.uniform(F0_MIN, F0_MAX)),
        "drift_sin_depth": _r(rng.uniform(0.002, 0.008)),
        "drift_sin_hz": _r(rng.uniform(0.03, 0.3)),
        "drift_sin_phase": _r(rng.uniform(0, 2 * np.pi)),
        "drift_walk_depth": _r(rng.uniform(0.002, 0.01)),
        "harmonic_decay": _r(decay),
        "harmonic_amps": [_r(a) for a in amps],
        "harmonic_phases": [_r(p) for p in rng.uniform(0, 2 * np.pi, N_HARMONICS)],
        "n_blades": N_BLADES,
        "blade_pass_db": _r(rng.uniform(-13.0, -9.0)),
        "blade_pass_2x_db": _r(rng.uniform(-8.0, -6.0)),
        "blade_sideband_db": _r(rng.uniform(-13.0, -11.0)),
        "resonance_hz": _r(rng.uniform(600.0, 800.0)),
        "resonance_q": _r(rng.uniform(5.0, 8.0)),
        "resonance_db": _r(rng.uniform(-13.0, -11.0)),
        "resonance2_hz": _r(rng.uniform(2800.0, 3400.0)),
        "resonance2_q": _r(rng.uniform(5.0, 12.0)),
        "resonance2_db": _r(rng.uniform(-27.0, -23.0)),
        "resonance_shaft_mod": _r(rng.uniform(0.1, 0.4)),
        "colored_noise_alpha": _r(rng.uniform(1.1, 1.5)),
        "colored_noise_db": _r(rng.uniform(-16.0, -14.0)),
        "background_snr_db": _r(rng.uniform(22.0, 30.0)),
        "am_depth": _r(rng.uniform(0.02, 0.1)),
        "am_hz": _r(rng.uniform(0.05, 0.5)),
        "am_phase": _r(rng.uniform(0, 2 * np.pi)),
        "gain_db": _r(rng.uniform(-GAIN_DB, GAIN_DB)),
    }


#: anomaly severity is drawn uniformly from this range (0: barely there, 1: obvious)
SEVERITY_RANGE = (0.3, 1.0)


def _draw_anomaly(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    s = float(rng.uniform(*SEVERITY_RANGE))
    p: dict[str, Any] = {"kind": kind, "severity": _r(s)}
    if kind == "bearing":
        p["fault_order"] = _r(rng.uniform(3.1, 3.6))  # impacts per shaft revolution
        p["ring_hz"] = _r(rng.uniform(2000.0, 5000.0))
        p["ring_decay_ms"] = _r(rng.uniform(0.4, 1.5))
        p["slip_jitter"] = _r(rng.uniform(0.005, 0.02))
        p["shaft_mod_depth"] = _r(rng.uniform(0.3, 0.9))
        p["level_db"] = _r(-32.0 + 16.0 * s)  # ring RMS re the machine RMS
    elif kind == "click":
        p["rate_hz"] = _r(rng.uniform(0.2, 1.2))
        p["duration_ms"] = _r(rng.uniform(0.3, 2.0))
        p["peak_re_rms_db"] = _r(1.0 + 17.0 * s)  # click peak re the clip RMS
    elif kind == "shift":
        mode = ["speed", "subharmonic", "harmonic_ratio"][int(rng.integers(0, 3))]
        p["mode"] = mode
        if mode == "speed":
            up = bool(rng.integers(0, 2))
            frac = 0.04 + 0.12 * s
            p["direction"] = "up" if up else "down"
            p["outside_range"] = _r(frac)
            p["f0_hz"] = _r(F0_MAX * (1 + frac) if up else F0_MIN * (1 - frac))
        elif mode == "subharmonic":
            # half-order series (looseness / rub): 0.5x, 1.5x, ... 5.5x
            p["orders"] = [0.5 + i for i in range(6)]
            p["level_db"] = _r(-8.0 + 12.0 * s)  # re the harmonic envelope there
            p["phases"] = [_r(x) for x in rng.uniform(0, 2 * np.pi, 6)]
        else:
            k = int(rng.integers(2, 5))  # harmonic 2, 3 or 4 grows
            p["harmonic"] = k
            p["boost_db"] = _r(6.0 + 12.0 * s)
            p["neighbour_boost_db"] = _r((6.0 + 12.0 * s) / 3)
    elif kind == "imbalance":
        p["boost_1x_db"] = _r(4.0 + 12.0 * s)
        p["boost_2x_db"] = _r(1.0 + 3.0 * s)
    else:  # pragma: no cover - validated by callers
        raise ConfigError(f"unknown anomaly kind {kind!r}; known: {', '.join(ANOMALY_KINDS)}")
    return p


# --------------------------------------------------------------------------------------
# rendering


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-30))


def _db(x: float) -> float:
    return 10.0 ** (x / 20.0)


def _colored_noise(rng: np.random.Generator, n: int, sr: int, alpha: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^alpha (pink at 1, brown at 2), floor at 10 Hz."""
    spec = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= np.maximum(f, 10.0) ** (-alpha / 2.0)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return x / _rms(x)


def _resonance(noise: np.ndarray, fc: float, q: float, sr: int) -> np.ndarray:
    fc = min(fc, 0.45 * sr)
    b, a = signal.iirpeak(fc, q, fs=sr)
    y = signal.lfilter(b, a, noise)
    return y / _rms(y)


def _shaft_freq(p: dict[str, Any], f0: float, n: int, sr: int, rng: np.random.Generator):
    """Instantaneous shaft frequency (Hz) with slow sinusoidal + random-walk drift."""
    t = np.arange(n) / sr
    dur = n / sr
    n_knots = max(int(dur * 2) + 2, 3)  # random walk knots every ~0.5 s
    walk = np.cumsum(rng.normal(size=n_knots))
    walk -= np.linspace(walk[0], walk[-1], n_knots)  # no net trend: drift, not ramp
    walk -= walk.mean()
    walk /= max(np.max(np.abs(walk)), 1e-9)
    walk_t = np.interp(t, np.linspace(0.0, dur, n_knots), walk)
    drift = p["drift_sin_depth"] * np.sin(2 * np.pi * p["drift_sin_hz"] * t + p["drift_sin_phase"])
    drift += p["drift_walk_depth"] * walk_t
    return f0 * (1.0 + drift)


def _render(
    normal: dict[str, Any],
    anomaly: dict[str, Any] | None,
    noise_rng: np.random.Generator,
    fault_rng: np.random.Generator,
    sr: int,
    n: int,
) -> np.ndarray:
    kind = anomaly["kind"] if anomaly else None
    mode = anomaly.get("mode") if anomaly else None
    nyq_safe = 0.45 * sr
    t = np.arange(n) / sr

    # Noise draws first, always in the same order, so a clip with and without its fault
    # shares its noise realisation.
    f0 = anomaly["f0_hz"] if mode == "speed" else normal["f0_hz"]
    fshaft = _shaft_freq(normal, f0, n, sr, noise_rng)
    res_exc = noise_rng.normal(size=n)
    res2_exc = noise_rng.normal(size=n)
    colored = _colored_noise(noise_rng, n, sr, normal["colored_noise_alpha"])
    background = noise_rng.normal(size=n)

    theta = 2 * np.pi * np.cumsum(fshaft) / sr  # shaft angle, rad

    # Harmonic series of the shaft.
    amps = np.array(normal["harmonic_amps"], dtype=float)
    phases = np.array(normal["harmonic_phases"], dtype=float)
    if kind == "imbalance":
        amps[0] *= _db(anomaly["boost_1x_db"])
        amps[1] *= _db(anomaly["boost_2x_db"])
    elif mode == "harmonic_ratio":
        k = anomaly["harmonic"] - 1
        amps[k] *= _db(anomaly["boost_db"])
        for j in (k - 1, k + 1):
            if 1 <= j < len(amps):
                amps[j] *= _db(anomaly["neighbour_boost_db"])
    tonal = np.zeros(n)
    fmax = float(np.max(fshaft))
    for k in range(len(amps)):
        if (k + 1) * fmax < nyq_safe:
            tonal += amps[k] * np.sin((k + 1) * theta + phases[k])
    if mode == "subharmonic":
        a_sub = _db(anomaly["level_db"])
        for order, ph in zip(anomaly["orders"], anomaly["phases"]):
            envelope = max(order, 1.0) ** -normal["harmonic_decay"]
            if order * fmax < nyq_safe:
                tonal += a_sub * envelope * np.sin(order * theta + ph)
    # Normal harmonic RMS (without fault changes) is the level reference for the others.
    ref = math.sqrt(0.5 * float(np.sum(np.square(normal["harmonic_amps"]))))

    # Blade-pass tone, its 2nd harmonic and shaft sidebands.
    nb = normal["n_blades"]
    bp = _db(normal["blade_pass_db"]) * ref
    blade = np.zeros(n)
    for mult, rel in ((nb, 1.0), (2 * nb, _db(normal["blade_pass_2x_db"]))):
        if mult * fmax < nyq_safe:
            blade += rel * np.sin(mult * theta + 0.7 * mult)
    for side in (nb - 1, nb + 1):
        blade += _db(normal["blade_sideband_db"]) * np.sin(side * theta + 1.3 * side)
    blade *= bp

    # Structural resonances excited by broadband noise, modulated by the rotation.
    mod = 1.0 + normal["resonance_shaft_mod"] * np.cos(theta)
    res = _db(normal["resonance_db"]) * ref * _resonance(res_exc, normal["resonance_hz"], normal["resonance_q"], sr)
    res += _db(normal["resonance2_db"]) * ref * _resonance(res2_exc, normal["resonance2_hz"], normal["resonance2_q"], sr)
    res *= mod

    machine = tonal + blade + res + _db(normal["colored_noise_db"]) * ref * colored
    machine_rms = _rms(machine)

    if kind == "bearing":
        machine += _bearing(anomaly, theta, fault_rng, sr, n) * _db(anomaly["level_db"]) * machine_rms

    am = 1.0 + normal["am_depth"] * np.sin(2 * np.pi * normal["am_hz"] * t + normal["am_phase"])
    x = machine * am
    x += background * (machine_rms * _db(-normal["background_snr_db"]))

    if kind == "click":
        x += _clicks(anomaly, fault_rng, sr, n) * _db(anomaly["peak_re_rms_db"]) * _rms(x)

    # Recording level: normalise, then the drawn gain; never clip.
    x *= _db(LEVEL_DBFS + normal["gain_db"]) / _rms(x)
    peak = float(np.max(np.abs(x)))
    if peak > PEAK_LIMIT:
        x *= PEAK_LIMIT / peak
    return x


def _bearing(p: dict[str, Any], theta: np.ndarray, rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Unit-RMS outer-race fault signal: impacts ringing a resonance, shaft-modulated."""
    fault_phase = theta * p["fault_order"] / (2 * np.pi)  # impacts at integer crossings
    n_imp = int(np.floor(fault_phase[-1]))
    if n_imp < 1:
        return np.zeros(n)
    # Impact times from the fault phase, each with a little slip jitter.
    targets = np.arange(1, n_imp + 1) + rng.normal(0.0, p["slip_jitter"], n_imp)
    idx = np.searchsorted(fault_phase, targets).clip(0, n - 1)
    strength = (1.0 + p["shaft_mod_depth"] * np.cos(theta[idx])) * rng.uniform(0.7, 1.3, n_imp)
    impulses = np.zeros(n)
    np.add.at(impulses, idx, strength)
    tau = p["ring_decay_ms"] / 1000.0
    tk = np.arange(int(min(8 * tau * sr, n))) / sr
    kernel = np.exp(-tk / tau) * np.sin(2 * np.pi * min(p["ring_hz"], 0.45 * sr) * tk)
    y = signal.fftconvolve(impulses, kernel)[:n]
    return y / _rms(y)


def _clicks(p: dict[str, Any], rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Sporadic broadband clicks with peak amplitude ~1 (random 0.5-1)."""
    dur = n / sr
    n_clicks = max(1, int(rng.poisson(p["rate_hz"] * dur)))
    tau = p["duration_ms"] / 1000.0
    length = max(int(6 * tau * sr), 4)
    y = np.zeros(n + length)
    env = np.exp(-np.arange(length) / (tau * sr))
    for _ in range(n_clicks):
        start = int(rng.integers(0, n))
        burst = rng.normal(size=length) * env
        burst /= np.max(np.abs(burst))
        y[start : start + length] += burst * rng.uniform(0.5, 1.0)
    return y[:n]


# --------------------------------------------------------------------------------------
# public API




def synth_clip(
    seed: int | np.random.SeedSequence | tuple[int, ...],
    *,
    kind: str | None = None,
    sample_rate: int = 16000,
    duration_s: float = 10.0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Render one clip; return ``(audio float64 in [-1, 1], parameters)``.

    ``seed`` is an int, a ``SeedSequence`` or a tuple ``(seed, *spawn_key)``; the clip
    :func:`synth_machine` writes as file *i* of group *g* (0 train, 1 test normal,
    2 test anomalous) is ``synth_clip((seed, g, i), kind=...)`` before 16-bit quantisation.
    With ``kind=None`` the same seed gives the same clip without a fault.
    """
    if kind is not None and kind not in ANOMALY_KINDS:
        raise ConfigError(f"unknown anomaly kind {kind!r}; known: {', '.join(ANOMALY_KINDS)}")
    ss = _seed_sequence(seed)
    normal_ss, fault_ss, noise_ss, fault_noise_ss = ss.spawn(4)
    normal = _draw_normal(np.random.default_rng(normal_ss))
    anomaly = _draw_anomaly(np.random.default_rng(fault_ss), kind) if kind else None
    n = int(round(duration_s * sample_rate))
    x = _render(
        normal,
        anomaly,
        np.random.default_rng(noise_ss),
        np.random.default_rng(fault_noise_ss),
        int(sample_rate),
        n,
    )
    params: dict[str, Any] = {"normal": normal, "anomaly": anomaly}
    return x, params


def _to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32767, 32767).astype(np.int16)


#: the most recordings of one kind a set holds (a million 1-s clips: 32 GB)
MAX_RECORDINGS = 1_000_000


def _validate(sample_rate, duration_s, counts: dict[str, int], kinds) -> tuple[str, ...]:
    if not isinstance(sample_rate, (int, np.integer)) or isinstance(sample_rate, bool) or sample_rate < 8000:
        raise ConfigError(f"sample_rate must be an integer >= 8000 Hz, got {sample_rate!r}")
    if not isinstance(duration_s, (int, float)) or isinstance(duration_s, bool) or not (0.1 <= duration_s <= 600):
        raise ConfigError(f"duration_s must be between 0.1 and 600 seconds, got {duration_s!r}")
    for name, v in counts.items():  # (10**12 planned its files in memory until it was killed, writing none)
        check_int(name, v, 0, MAX_RECORDINGS)
    if isinstance(kinds, str):
        kinds = (kinds,)
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in ANOMALY_KINDS]
    if unknown:
        raise ConfigError(f"unknown anomaly kind(s) {', '.join(map(repr, unknown))}; known: {', '.join(ANOMALY_KINDS)}")
    if len(set(kinds)) != len(kinds):
        raise ConfigError(f"anomaly_kinds has duplicates: {kinds!r}")
    if counts["n_test_anomalous"] > 0 and not kinds:
        raise ConfigError("anomaly_kinds is empty but n_test_anomalous > 0")
    return kinds


def synth_machine(
    out_dir: str | Path,
    *,
    seed: int = DEFAULTS["seed"],
    sample_rate: int = DEFAULTS["sample_rate"],
    duration_s: float = DEFAULTS["duration_s"],
    n_train: int = DEFAULTS["n_train"],
    n_test_normal: int = DEFAULTS["n_test_normal"],
    n_test_anomalous: int = DEFAULTS["n_test_anomalous"],
    anomaly_kinds: tuple[str, ...] | list[str] = DEFAULTS["anomaly_kinds"],
    overwrite: bool = DEFAULTS["overwrite"],
) -> dict[str, Any]:
    """Write the synthetic machine data set to ``out_dir``; return its manifest.

    Layout: ``train/normal/normal_NNNN.wav``, ``test/normal/normal_NNNN.wav``,
    ``test/anomalous/anomalous_<kind>_NNNN.wav`` (16-bit PCM mono) and ``manifest.json``.
    Anomalous clips cycle through ``anomaly_kinds`` in order.  The folder is built beside
    ``out_dir`` and renamed into place only when complete.  An existing non-empty
    ``out_dir`` is refused (:class:`DataError`) unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    counts = {"n_train": n_train, "n_test_normal": n_test_normal, "n_test_anomalous": n_test_anomalous}
    kinds = _validate(sample_rate, duration_s, counts, anomaly_kinds)
    check_out_dir(out_dir, overwrite)

    seed = int(seed)
    sample_rate = int(sample_rate)
    n_samples = int(round(duration_s * sample_rate))
    plan: list[tuple[str, str, str | None, int, str]] = []
    plan += [("train", "normal", None, i, f"train/normal/normal_{i:04d}.wav") for i in range(n_train)]
    plan += [("test", "normal", None, i, f"test/normal/normal_{i:04d}.wav") for i in range(n_test_normal)]
    for i in range(n_test_anomalous):
        k = kinds[i % len(kinds)]
        plan.append(("test", "anomalous", k, i, f"test/anomalous/anomalous_{k}_{i:04d}.wav"))

    manifest: dict[str, Any] = {
        "generator": "latentbridge.data.synth.machine",
        "generator_version": GENERATOR_VERSION,
        "machine": {
            "shaft_hz_range": [F0_MIN, F0_MAX],
            "n_blades": N_BLADES,
            "n_harmonics": N_HARMONICS,
            "level_dbfs": LEVEL_DBFS,
            "gain_db_range": [-GAIN_DB, GAIN_DB],
        },
        "parameters": {
            "seed": seed,
            "sample_rate": sample_rate,
            "duration_s": float(duration_s),
            "n_samples": n_samples,
            "n_train": int(n_train),
            "n_test_normal": int(n_test_normal),
            "n_test_anomalous": int(n_test_anomalous),
            "anomaly_kinds": list(kinds),
            "format": "wav PCM_16 mono",
        },
        "files": [],
    }
    with atomic_path(out_dir) as tmp:
        for sub in ("train/normal", "test/normal", "test/anomalous"):
            (tmp / sub).mkdir(parents=True)
        for split, label, kind, i, rel in plan:
            group = _GROUPS["train"] if split == "train" else _GROUPS[f"test_{label}"]
            seed_key = [seed, group, i]
            x, params = synth_clip(tuple(seed_key), kind=kind, sample_rate=sample_rate, duration_s=duration_s)
            pcm = _to_pcm16(x)
            sf.write(tmp / rel, pcm, sample_rate, subtype="PCM_16", format="WAV")
            manifest["files"].append(
                {
                    "path": rel,
                    "split": split,
                    "label": label,
                    "kind": kind,
                    "severity": params["anomaly"]["severity"] if params["anomaly"] else None,
                    "seed_key": seed_key,
                    "rms_dbfs": _r(20 * math.log10(_rms(pcm / 32768.0))),
                    "peak": _r(float(np.max(np.abs(pcm))) / 32768.0),
                    "params": params,
                }
            )
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
