"""Synthetic bridge vibration with crack masks: the built-in default structural-health data set.

A simply supported, footbridge-like beam is modelled with Euler-Bernoulli beam finite
elements; cracks lower the bending stiffness locally; random ambient forces (traffic- and
wind-like, plus an occasional crossing vehicle) make it vibrate; accelerometers along the
span record the response.  Each *damage state* (a set of cracks, possibly none) becomes one
test folder with one or more acceleration recordings and a crack *mask*: an image of the
beam elevation with the cracks drawn white.  The task the data set poses is to predict the
mask from the vibration.

The beam (its constants, finite elements, crack model and modal response) is modelled in
:mod:`latentbridge.data.synth.beam`, whose public names are also importable from here.  A
recording simulates a warm-up of at least five time constants of mode 1 and drops it, so
recordings start in the steady random state.

Excitation per recording (drawn, stored in the manifest): 3-6 point forces at random
interior nodes, each band-limited noise (0.3 Hz to 0.4 x sample rate, 2nd-order
Butterworth) coloured by a first-order low-pass with a corner of 1.5-6 Hz (traffic and wind
carry most energy at low frequency) plus a weaker white part, with log-normal strengths;
with probability :data:`MOVING_LOAD_PROB` a vehicle (5-20 kN, 2-10 m/s) crosses the span.
Accelerations are output at ``n_sensors`` points equally spaced along the span,
``x_k = k L / (n_sensors + 1)`` (never at a support), interpolated with the element shape
functions, and Gaussian sensor noise is added at ``noise_snr_db`` below the RMS of the
clean accelerations of all channels together (identical sensors share one noise floor).

Everything is deterministic from ``seed`` (integer ``SeedSequence`` spawn keys, so a
state does not depend on how many others are made):

* the set of healthy states: ``SeedSequence(seed, spawn_key=(2,))``;
* the cracks of state *i* (0-based): ``SeedSequence(seed, spawn_key=(0, i))``;
* recording *r* of state *i*: ``SeedSequence(seed, spawn_key=(1, i, r))``, whose two
  children draw the excitation parameters and the random signals.

Layout written by :func:`synth_bridge`::

    out_dir/Data/Test_01/rec_01.csv     time_s,acc_01,...,acc_08 (m/s^2), one row a sample
    out_dir/Labels/Test_01/mask.png     RGB, mask_height x mask_width, black, cracks white
    out_dir/manifest.json
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import signal

from latentbridge.data.synth import check_int, check_out_dir
from latentbridge.data.synth import rounded as _r
from latentbridge.data.synth import seed_sequence as _seed_sequence

# the beam model; its constants not used here stay importable from this module (re-exported)
from latentbridge.data.synth.beam import (  # noqa: F401
    AREA_M2,
    BEAM,
    DAMPING_MODES,
    DAMPING_RATIO,
    DEFAULT_N_ELEMENTS,
    DEFAULT_N_SENSORS,
    DENSITY_KG_M3,
    EI,
    HEIGHT_M,
    INERTIA_M4,
    LENGTH_M,
    MAX_DEPTH_RATIO,
    POISSON,
    RHO_A,
    WIDTH_M,
    YOUNGS_PA,
    _check_elements,
    _crack_element,
    _interp_modes,
    _modal_accelerations,
    _modal_basis,
    _normalise_cracks,
    beam_matrices,
    closed_form_frequencies,
    crack_compliance,
    element_stiffness,
    modal_damping_ratios,
    modal_frequencies,
    rayleigh_coefficients,
    sensor_positions,
)
from latentbridge.errors import ConfigError
from latentbridge.utils import atomic_path

__all__ = [
    "BEAM",
    "DEFAULTS",
    "GENERATOR_VERSION",
    "beam_matrices",
    "closed_form_frequencies",
    "crack_compliance",
    "draw_mask",
    "element_stiffness",
    "modal_damping_ratios",
    "modal_frequencies",
    "rayleigh_coefficients",
    "sensor_positions",
    "simulate_recording",
    "synth_bridge",
]

GENERATOR_VERSION = 1

# excitation
N_FORCES = (3, 6)
FORCE_RMS_N = 100.0  # median RMS of one ambient point force
FORCE_LOG_SIGMA = 0.5
CORNER_HZ = (1.5, 6.0)
WHITE_FRACTION = (0.05, 0.15)  # RMS of the white part re the low-passed part
HIGHPASS_HZ = 0.3
MOVING_LOAD_PROB = 0.3
VEHICLE_N = (5e3, 20e3)
VEHICLE_M_S = (2.0, 10.0)

# damage draws
CRACK_POS = (0.1, 0.9)  # x / L
CRACK_DEPTH = (0.1, 0.6)
N_MANIFEST_MODES = 5

DEFAULTS: dict[str, Any] = {
    "states": 300,
    "seed": 0,
    "sample_rate": 200.0,
    "duration_s": 20.0,
    "n_sensors": DEFAULT_N_SENSORS,
    "n_elements": DEFAULT_N_ELEMENTS,
    "noise_snr_db": 30.0,
    "healthy_fraction": 0.2,
    "max_cracks": 3,
    "mask_height": 512,
    "mask_width": 1536,
    "recordings_per_state": 1,
    "overwrite": False,
}


def _single_thread():
    """Limit BLAS/LAPACK to one thread: the matrices here are tiny, so threads only cost
    (badly so on a busy machine), and results do not depend on the thread count."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# --------------------------------------------------------------------------------------
# excitation and response simulation


def _draw_excitation(rng: np.random.Generator, n_elements: int, duration_s: float, moving_load: bool):
    n_f = int(rng.integers(N_FORCES[0], N_FORCES[1] + 1))
    nodes = np.sort(rng.choice(np.arange(1, n_elements), size=min(n_f, n_elements - 1), replace=False))
    le = LENGTH_M / n_elements
    p: dict[str, Any] = {
        "forces": [
            {"position_m": _r(nd * le), "rms_n": _r(FORCE_RMS_N * math.exp(rng.normal(0.0, FORCE_LOG_SIGMA)), 3)}
            for nd in nodes
        ],
        "corner_hz": _r(rng.uniform(*CORNER_HZ), 4),
        "white_fraction": _r(rng.uniform(*WHITE_FRACTION), 4),
        "vehicle": None,
    }
    has_vehicle = bool(rng.uniform() < MOVING_LOAD_PROB)
    weight, speed, u_dir, u_start = rng.uniform(*VEHICLE_N), rng.uniform(*VEHICLE_M_S), rng.uniform(), rng.uniform()
    if moving_load and has_vehicle:
        crossing = LENGTH_M / speed
        p["vehicle"] = {
            "weight_n": _r(weight, 2),
            "speed_m_s": _r(speed, 4),
            "direction": "left_to_right" if u_dir < 0.5 else "right_to_left",
            "enter_s": _r(u_start * max(duration_s - crossing, 0.0), 4),
        }
    return p


def simulate_recording(
    seed: int | np.random.SeedSequence | tuple[int, ...],
    *,
    cracks: Iterable[Any] = (),
    sample_rate: float = DEFAULTS["sample_rate"],
    duration_s: float = DEFAULTS["duration_s"],
    n_sensors: int = DEFAULTS["n_sensors"],
    n_elements: int = DEFAULTS["n_elements"],
    noise_snr_db: float | None = DEFAULTS["noise_snr_db"],
    moving_load: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Simulate one ambient-vibration recording of the beam with ``cracks``.

    Returns ``(time_s (n,), accelerations (n, n_sensors) in m/s^2, excitation parameters)``.
    ``seed`` is an int, a ``SeedSequence`` or a tuple ``(seed, *spawn_key)``; recording *r*
    of state *i* of :func:`synth_bridge` is ``simulate_recording((seed, 1, i, r), ...)``.
    ``noise_snr_db=None`` gives clean accelerations; ``moving_load=False`` never lets a
    vehicle cross.
    """
    sample_rate, duration_s = _check_rate_duration(sample_rate, duration_s)
    n_sensors = check_int("n_sensors", n_sensors, 1, 99)
    n_elements = _check_elements(n_elements)
    if noise_snr_db is not None:
        noise_snr_db = _check_float("noise_snr_db", noise_snr_db, -20.0, 200.0)
    cracks = _normalise_cracks(cracks)
    with _single_thread():
        return _simulate(seed, cracks, sample_rate, duration_s, n_sensors, n_elements, noise_snr_db, moving_load)


def _simulate(seed, cracks, sample_rate, duration_s, n_sensors, n_elements, noise_snr_db, moving_load):
    param_ss, signal_ss = _seed_sequence(seed).spawn(2)
    prng = np.random.default_rng(param_ss)
    srng = np.random.default_rng(signal_ss)
    params = _draw_excitation(prng, n_elements, duration_s, moving_load)

    w, phi, zeta = _modal_basis(cracks, n_elements, sample_rate)

    dt = 1.0 / sample_rate
    n = int(round(duration_s * sample_rate))
    warm = int(math.ceil(max(5.0 / (zeta[0] * w[0]), 10.0) * sample_rate))
    total = warm + n

    # ambient point forces: band-limited, low-frequency weighted noise
    sos_bp = signal.butter(2, [HIGHPASS_HZ, 0.4 * sample_rate], btype="bandpass", fs=sample_rate, output="sos")
    sos_lp = signal.butter(1, params["corner_hz"], btype="lowpass", fs=sample_rate, output="sos")
    pos = np.array([f["position_m"] for f in params["forces"]])
    rms = np.array([f["rms_n"] for f in params["forces"]])
    white = srng.normal(size=(len(pos), total))
    low = signal.sosfilt(sos_lp, white, axis=1)
    low /= np.sqrt(np.mean(low[:, warm:] ** 2, axis=1, keepdims=True)) + 1e-30
    extra = srng.normal(size=(len(pos), total)) * params["white_fraction"]
    forces = signal.sosfilt(sos_bp, low + extra, axis=1)
    forces *= (rms / (np.sqrt(np.mean(forces[:, warm:] ** 2, axis=1)) + 1e-30))[:, None]
    modal_force = _interp_modes(phi, pos, n_elements).T @ forces  # (n_modes, total)

    veh = params["vehicle"]
    if veh is not None:
        t = (np.arange(total) - warm) * dt - veh["enter_s"]
        on = (t >= 0) & (t * veh["speed_m_s"] <= LENGTH_M)
        x = t[on] * veh["speed_m_s"]
        if veh["direction"] == "right_to_left":
            x = LENGTH_M - x
        modal_force[:, on] += veh["weight_n"] * _interp_modes(phi, x, n_elements).T

    modal_acc = _modal_accelerations(modal_force, w, zeta, dt)
    acc = modal_acc[:, warm:].T @ _interp_modes(phi, sensor_positions(n_sensors), n_elements).T

    if noise_snr_db is not None:
        sigma = math.sqrt(float(np.mean(acc**2))) * 10.0 ** (-noise_snr_db / 20.0)
        acc = acc + srng.normal(size=acc.shape) * sigma
    time = np.arange(n) * dt
    return time, acc, params


# --------------------------------------------------------------------------------------
# damage states and masks


def _draw_cracks(rng: np.random.Generator, max_cracks: int) -> list[dict[str, float]]:
    k = int(rng.integers(1, max_cracks + 1))
    pos = rng.uniform(CRACK_POS[0] * LENGTH_M, CRACK_POS[1] * LENGTH_M, k)
    depth = rng.uniform(*CRACK_DEPTH, k)
    cracks = [{"position_m": _r(x, 4), "depth_ratio": _r(d, 4)} for x, d in zip(pos, depth)]
    return sorted(cracks, key=lambda c: c["position_m"])


def _band_half_width(width: int) -> int:
    """Half the width of one finite element of the default mesh: the simulation smears a crack's
    stiffness loss over its element, so the mask marks the damaged zone at that resolution."""
    return max(1, width // (2 * DEFAULTS["n_elements"]))


def draw_mask(cracks: Iterable[Any], height: int, width: int) -> np.ndarray:
    """Boolean crack mask (height, width) of the beam elevation: x = 0 at column 0,
    x = L at the right edge; a crack is a vertical band ``2 * (width // 80) + 1`` pixels
    wide (one element of the default 40-element mesh; at least 3) centred on column
    ``floor(x / L * width)``, ``round(d * height)``
    pixels high from the bottom edge (the tension face)."""
    mask = np.zeros((int(height), int(width)), dtype=bool)
    hw = _band_half_width(int(width))
    for x, d in _normalise_cracks(cracks):
        col = min(int(x / LENGTH_M * width), width - 1)
        rows = int(round(d * height))
        if rows > 0:
            mask[height - rows :, max(col - hw, 0) : col + hw + 1] = True
    return mask


def _png_bytes(mask: np.ndarray) -> bytes:
    rgb = np.repeat((mask.astype(np.uint8) * 255)[:, :, None], 3, axis=2)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# validation


def _check_float(name: str, v: Any, lo: float, hi: float) -> float:
    if not isinstance(v, (int, float, np.integer, np.floating)) or isinstance(v, bool) or not (lo <= v <= hi):
        raise ConfigError(f"{name} must be a number from {lo} to {hi}, got {v!r}")
    return float(v)


def _check_rate_duration(sample_rate: Any, duration_s: Any) -> tuple[float, float]:
    sample_rate = _check_float("sample_rate", sample_rate, 20.0, 100000.0)
    duration_s = _check_float("duration_s", duration_s, 1.0 / sample_rate, 3600.0)
    return sample_rate, duration_s


# --------------------------------------------------------------------------------------
# public API: the data set


def synth_bridge(
    out_dir: str | Path,
    *,
    states: int = DEFAULTS["states"],
    seed: int = DEFAULTS["seed"],
    sample_rate: float = DEFAULTS["sample_rate"],
    duration_s: float = DEFAULTS["duration_s"],
    n_sensors: int = DEFAULTS["n_sensors"],
    n_elements: int = DEFAULTS["n_elements"],
    noise_snr_db: float = DEFAULTS["noise_snr_db"],
    healthy_fraction: float = DEFAULTS["healthy_fraction"],
    max_cracks: int = DEFAULTS["max_cracks"],
    mask_height: int = DEFAULTS["mask_height"],
    mask_width: int = DEFAULTS["mask_width"],
    recordings_per_state: int = DEFAULTS["recordings_per_state"],
    overwrite: bool = DEFAULTS["overwrite"],
) -> dict[str, Any]:
    """Write the synthetic bridge data set to ``out_dir``; return its manifest.

    ``states`` damage states become ``Data/Test_NN/rec_RR.csv`` (``recordings_per_state``
    each; columns ``time_s,acc_01,...``) and ``Labels/Test_NN/mask.png``.  Exactly
    ``round(healthy_fraction * states)`` states, chosen at random, are healthy (no crack,
    all-black mask); the others have 1..``max_cracks`` cracks at ``U(0.1 L, 0.9 L)`` with
    depth ratios ``U(0.1, 0.6)``.  The folder is built beside ``out_dir`` and renamed into
    place when complete; a non-empty ``out_dir`` is refused (:class:`DataError`) unless
    ``overwrite``.
    """
    out_dir = Path(out_dir)
    states = check_int("states", states, 1, 9999)
    sample_rate, duration_s = _check_rate_duration(sample_rate, duration_s)
    n_sensors = check_int("n_sensors", n_sensors, 1, 99)
    n_elements = _check_elements(n_elements)
    noise_snr_db = _check_float("noise_snr_db", noise_snr_db, -20.0, 200.0)
    healthy_fraction = _check_float("healthy_fraction", healthy_fraction, 0.0, 1.0)
    max_cracks = check_int("max_cracks", max_cracks, 1, 100)
    mask_height = check_int("mask_height", mask_height, 8, 16384)
    mask_width = check_int("mask_width", mask_width, 8, 16384)
    recordings_per_state = check_int("recordings_per_state", recordings_per_state, 1, 999)
    check_out_dir(out_dir, bool(overwrite))
    seed = int(seed)

    n_healthy = int(round(healthy_fraction * states))
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,))).permutation(states)
    healthy = set(int(i) for i in order[:n_healthy])
    id_w = max(2, len(str(states)))
    rec_w = max(2, len(str(recordings_per_state)))
    sensors = sensor_positions(n_sensors)
    header = "time_s," + ",".join(f"acc_{k:02d}" for k in range(1, n_sensors + 1))
    fmt = ",".join(["%.6f"] + ["%.5e"] * n_sensors)
    n_samples = int(round(duration_s * sample_rate))
    a_r, b_r = rayleigh_coefficients(n_elements=n_elements)

    manifest: dict[str, Any] = {
        "generator": "latentbridge.data.synth.bridge",
        "generator_version": GENERATOR_VERSION,
        "beam": {
            **BEAM,
            "n_elements": n_elements,
            "rayleigh_a_per_s": _r(a_r, 9),
            "rayleigh_b_s": _r(b_r, 12),
            "closed_form_frequencies_hz": [_r(f) for f in closed_form_frequencies(N_MANIFEST_MODES)],
            "healthy_frequencies_hz": [_r(f) for f in modal_frequencies(N_MANIFEST_MODES, n_elements=n_elements)],
            "healthy_damping_ratios": [_r(z) for z in modal_damping_ratios(N_MANIFEST_MODES, n_elements=n_elements)],
        },
        "sensors": {
            "quantity": "vertical acceleration",
            "unit": "m/s^2",
            "positions_m": [_r(x) for x in sensors],
            "noise": "Gaussian, noise_snr_db below the RMS of all clean channels",
        },
        "excitation": {
            "ambient_forces": f"{N_FORCES[0]}-{N_FORCES[1]} point forces at random interior nodes",
            "spectrum": (
                f"(first-order low-pass, corner {CORNER_HZ[0]}-{CORNER_HZ[1]} Hz, plus white "
                f"{WHITE_FRACTION[0]}-{WHITE_FRACTION[1]}) band-passed {HIGHPASS_HZ} Hz to 0.4 sample_rate"
            ),
            "median_force_rms_n": FORCE_RMS_N,
            "moving_load_probability": MOVING_LOAD_PROB,
            "vehicle_weight_n": list(VEHICLE_N),
            "vehicle_speed_m_s": list(VEHICLE_M_S),
        },
        "mask": {
            "height": mask_height,
            "width": mask_width,
            "drawing": "beam elevation, x = 0 at the left; crack = white vertical band of "
            f"{2 * _band_half_width(mask_width) + 1} px centred at floor(x / L * width), "
            "depth_ratio * height high from the bottom edge",
        },
        "parameters": {
            "states": states,
            "seed": seed,
            "sample_rate": sample_rate,
            "duration_s": duration_s,
            "n_samples": n_samples,
            "n_sensors": n_sensors,
            "n_elements": n_elements,
            "noise_snr_db": noise_snr_db,
            "healthy_fraction": healthy_fraction,
            "n_healthy": n_healthy,
            "max_cracks": max_cracks,
            "mask_height": mask_height,
            "mask_width": mask_width,
            "recordings_per_state": recordings_per_state,
            "crack_position_range_m": [CRACK_POS[0] * LENGTH_M, CRACK_POS[1] * LENGTH_M],
            "crack_depth_ratio_range": list(CRACK_DEPTH),
            "csv_header": header,
        },
        "states": [],
    }
    with _single_thread(), atomic_path(out_dir) as tmp:
        for i in range(states):
            test_id = f"Test_{i + 1:0{id_w}d}"
            if i in healthy:
                cracks: list[dict[str, float]] = []
            else:
                rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, i)))
                cracks = _draw_cracks(rng, max_cracks)
            for c in cracks:
                c["element"] = _crack_element(c["position_m"], n_elements)
            data_dir = tmp / "Data" / test_id
            label_dir = tmp / "Labels" / test_id
            data_dir.mkdir(parents=True)
            label_dir.mkdir(parents=True)
            mask = draw_mask(cracks, mask_height, mask_width)
            (label_dir / "mask.png").write_bytes(_png_bytes(mask))
            recs = []
            for r in range(recordings_per_state):
                seed_key = [seed, 1, i, r]
                time, acc, exc = simulate_recording(
                    tuple(seed_key),
                    cracks=cracks,
                    sample_rate=sample_rate,
                    duration_s=duration_s,
                    n_sensors=n_sensors,
                    n_elements=n_elements,
                    noise_snr_db=noise_snr_db,
                )
                rel = f"Data/{test_id}/rec_{r + 1:0{rec_w}d}.csv"
                with open(tmp / rel, "w", encoding="utf-8", newline="\n") as fh:
                    np.savetxt(fh, np.column_stack([time, acc]), fmt=fmt, delimiter=",", header=header, comments="")
                recs.append(
                    {
                        "path": rel,
                        "seed_key": seed_key,
                        "rms_m_s2": [_r(v, 9) for v in np.sqrt(np.mean(acc**2, axis=0))],
                        "excitation": exc,
                    }
                )
            manifest["states"].append(
                {
                    "test_id": test_id,
                    "healthy": not cracks,
                    "cracks": cracks,
                    "damage_extent": _r(float(mask.mean()), 8),
                    "modal_frequencies_hz": [
                        _r(f) for f in modal_frequencies(N_MANIFEST_MODES, cracks, n_elements=n_elements)
                    ],
                    "mask": f"Labels/{test_id}/mask.png",
                    "recordings": recs,
                }
            )
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
