"""Finite-element model of the simply supported footbridge beam of the synthetic bridge data set
(:mod:`latentbridge.data.synth.bridge`): matrices, modes, Rayleigh damping, crack compliance,
mode shapes at sensor positions and the modal filters that integrate the response.

Beam (module constants; "a small concrete footbridge"):

=====================  ==========================================================
span ``L``             20 m, simply supported (pinned-roller)
material               concrete-like: ``E`` = 30 GPa, density 2500 kg/m^3,
                       Poisson's ratio 0.2
section                solid rectangle 2.0 m wide x 0.8 m deep:
                       ``A`` = 1.6 m^2, ``I`` = b h^3 / 12 = 0.08533 m^4,
                       ``EI`` = 2.56e9 N m^2, ``rho A`` = 4000 kg/m
natural frequencies    f_n = n^2 pi / (2 L^2) sqrt(EI / (rho A)) = n^2 * pi Hz:
                       3.14, 12.57, 28.27, 50.27, 78.54 Hz (closed form)
damping                Rayleigh, C = a M + b K, 1.5 % of critical at modes 1 and 3
                       (fixed material damping: a and b come from the healthy beam)
=====================  ==========================================================

Finite elements: ``n_elements`` equal two-node Hermite-cubic elements, two degrees of
freedom per node (deflection w, rotation theta), the standard element stiffness
``EI / l^3 [[12, 6l, -12, 6l], ...]`` and consistent mass ``rho A l / 420 [[156, 22l, 54,
-13l], ...]``.  The supports fix the deflection at both ends; rotations are free.

Cracks: an open edge crack of depth ratio ``d = a / h`` (0 to 0.6) at ``x`` opens from the
tension (bottom) face.  It acts as a rotational spring of compliance (fracture-mechanics
energy method, Ostachowicz & Krawczuk 1991, J. Sound Vib. 150(2):191-201, with the
stress-intensity factor of an edge crack in bending from Tada, Paris & Irwin)::

    c(d) = 6 pi (1 - nu^2) h / (E I) * f(d)
    f(d) = 0.6272 d^2 - 1.04533 d^3 + 4.5948 d^4 - 9.9736 d^5 + 20.2948 d^6
           - 33.0351 d^7 + 47.1063 d^8 - 40.7556 d^9 + 19.6 d^10

(plane strain, the deck being wide).  The spring is smeared over the element that contains
``x``: in series with the element's own flexibility under constant moment,
``l / EI_e = l / EI + sum(c)``, so the added flexibility does not depend on the mesh size
(unlike a reduced section ``EI (1 - d)^3`` smeared over an element, which does).  Several
cracks in one element add their compliances.  A 0.5-depth crack at mid-span lowers the
first natural frequency by about 10 % (:func:`modal_frequencies`); a 0.2-depth crack by
about 1 %.

Response: because the damping is classical, the equations decouple into modes.  All modes
below 0.45 x the sample rate are kept (modal truncation: the forces are band-limited below
0.4 x the sample rate, where higher modes respond only quasi-statically, with negligible
acceleration).  Each mode is a linear oscillator integrated *exactly* for forces that are
piecewise linear between samples (first-order-hold discretisation of its state-space model,
run as a 2nd-order IIR filter), so the integration is unconditionally stable and costs a
few milliseconds per recording.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import linalg, signal

from latentbridge.errors import ConfigError

__all__ = [
    "BEAM",
    "DEFAULT_N_ELEMENTS",
    "DEFAULT_N_SENSORS",
    "beam_matrices",
    "closed_form_frequencies",
    "crack_compliance",
    "element_stiffness",
    "modal_damping_ratios",
    "modal_frequencies",
    "rayleigh_coefficients",
    "sensor_positions",
]

LENGTH_M = 20.0
YOUNGS_PA = 30e9
DENSITY_KG_M3 = 2500.0
WIDTH_M = 2.0
HEIGHT_M = 0.8
POISSON = 0.2
AREA_M2 = WIDTH_M * HEIGHT_M
INERTIA_M4 = WIDTH_M * HEIGHT_M**3 / 12.0
EI = YOUNGS_PA * INERTIA_M4  # N m^2
RHO_A = DENSITY_KG_M3 * AREA_M2  # kg/m

DAMPING_RATIO = 0.015
DAMPING_MODES = (1, 3)  # Rayleigh anchor modes (1-based)
MAX_DEPTH_RATIO = 0.6  # validity limit of the crack compliance fit

#: the beam, as stored in the manifest
BEAM: dict[str, Any] = {
    "length_m": LENGTH_M,
    "support": "simply supported (deflection fixed at both ends, rotations free)",
    "youngs_modulus_pa": YOUNGS_PA,
    "density_kg_m3": DENSITY_KG_M3,
    "poisson_ratio": POISSON,
    "section": "solid rectangle",
    "width_m": WIDTH_M,
    "height_m": HEIGHT_M,
    "area_m2": AREA_M2,
    "second_moment_m4": INERTIA_M4,
    "bending_stiffness_nm2": EI,
    "mass_per_length_kg_m": RHO_A,
    "damping": {"model": "Rayleigh C = a M + b K", "ratio": DAMPING_RATIO, "anchor_modes": list(DAMPING_MODES)},
    "crack_model": (
        "open edge crack as a rotational spring, compliance c = 6 pi (1 - nu^2) h f(a/h) / (E I) "
        "(Ostachowicz & Krawczuk 1991), smeared over the element containing it: l/EI_e = l/EI + sum c"
    ),
}

#: mesh and sensor count of the simulated data set (``synth_bridge``'s defaults)
DEFAULT_N_ELEMENTS = 40
DEFAULT_N_SENSORS = 8


# --------------------------------------------------------------------------------------
# finite elements


def crack_compliance(depth_ratio: float) -> float:
    """Rotational compliance (rad per N m) of an open edge crack of ``a / h = depth_ratio``."""
    d = float(depth_ratio)
    if not (0.0 <= d <= MAX_DEPTH_RATIO):
        raise ConfigError(f"crack depth ratio must be between 0 and {MAX_DEPTH_RATIO}, got {depth_ratio!r}")
    coeffs = (0.6272, -1.04533, 4.5948, -9.9736, 20.2948, -33.0351, 47.1063, -40.7556, 19.6)
    f = sum(c * d ** (k + 2) for k, c in enumerate(coeffs))
    return 6.0 * math.pi * (1.0 - POISSON**2) * HEIGHT_M * f / EI


def _normalise_cracks(cracks: Iterable[Any]) -> list[tuple[float, float]]:
    out = []
    for c in cracks:
        if isinstance(c, dict):
            x, d = c["position_m"], c["depth_ratio"]
        else:
            x, d = c
        x, d = float(x), float(d)
        if not (0.0 <= x <= LENGTH_M):
            raise ConfigError(f"crack position must be between 0 and {LENGTH_M} m, got {x!r}")
        if not (0.0 <= d <= MAX_DEPTH_RATIO):
            raise ConfigError(f"crack depth ratio must be between 0 and {MAX_DEPTH_RATIO}, got {d!r}")
        out.append((x, d))
    return out


def _check_elements(n_elements: Any) -> int:
    if not isinstance(n_elements, (int, np.integer)) or isinstance(n_elements, bool) or not (4 <= n_elements <= 1000):
        raise ConfigError(f"n_elements must be an integer from 4 to 1000, got {n_elements!r}")
    return int(n_elements)


def _crack_element(x: float, n_elements: int) -> int:
    return min(int(x / (LENGTH_M / n_elements)), n_elements - 1)


def element_stiffness(cracks: Iterable[Any] = (), n_elements: int = DEFAULT_N_ELEMENTS) -> np.ndarray:
    """Bending stiffness ``EI`` (N m^2) of each element with the cracks smeared in."""
    n_elements = _check_elements(n_elements)
    le = LENGTH_M / n_elements
    extra = np.zeros(n_elements)
    for x, d in _normalise_cracks(cracks):
        extra[_crack_element(x, n_elements)] += crack_compliance(d)
    return le / (le / EI + extra)


def _free_dofs(n_elements: int) -> np.ndarray:
    n_dof = 2 * (n_elements + 1)
    fixed = {0, 2 * n_elements}  # deflection at both supports
    return np.array([i for i in range(n_dof) if i not in fixed])


def beam_matrices(
    cracks: Iterable[Any] = (), n_elements: int = DEFAULT_N_ELEMENTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mass, stiffness and Rayleigh damping matrices ``(M, K, C)`` on the free DOFs.

    DOF order: node 0 (w, theta), node 1 (w, theta), ... with the two support deflections
    removed.  ``C = a M + b K`` with the healthy beam's :func:`rayleigh_coefficients`.
    """
    n_elements = _check_elements(n_elements)
    m, k = _assemble(element_stiffness(cracks, n_elements), n_elements)
    a, b = rayleigh_coefficients(n_elements=n_elements)
    return m, k, a * m + b * k


def _assemble(ei: np.ndarray, n_elements: int) -> tuple[np.ndarray, np.ndarray]:
    le = LENGTH_M / n_elements
    n_dof = 2 * (n_elements + 1)
    kb = np.array(
        [[12, 6 * le, -12, 6 * le], [6 * le, 4 * le**2, -6 * le, 2 * le**2],
         [-12, -6 * le, 12, -6 * le], [6 * le, 2 * le**2, -6 * le, 4 * le**2]]
    ) / le**3
    mb = RHO_A * le / 420.0 * np.array(
        [[156, 22 * le, 54, -13 * le], [22 * le, 4 * le**2, 13 * le, -3 * le**2],
         [54, 13 * le, 156, -22 * le], [-13 * le, -3 * le**2, -22 * le, 4 * le**2]]
    )
    K = np.zeros((n_dof, n_dof))
    M = np.zeros((n_dof, n_dof))
    for e in range(n_elements):
        s = slice(2 * e, 2 * e + 4)
        K[s, s] += ei[e] * kb
        M[s, s] += mb
    free = _free_dofs(n_elements)
    return M[np.ix_(free, free)], K[np.ix_(free, free)]


def _modes(cracks: Iterable[Any], n_elements: int) -> tuple[np.ndarray, np.ndarray]:
    """Angular frequencies (rad/s, ascending) and mass-normalised mode shapes on all DOFs
    (read-only arrays, cached)."""
    return _modes_cached(tuple(_normalise_cracks(cracks)), _check_elements(n_elements))


@functools.lru_cache(maxsize=128)
def _modes_cached(cracks: tuple[tuple[float, float], ...], n_elements: int) -> tuple[np.ndarray, np.ndarray]:
    M, K = _assemble(element_stiffness(cracks, n_elements), n_elements)
    w2, phi = linalg.eigh(K, M)
    full = np.zeros((2 * (n_elements + 1), phi.shape[1]))
    full[_free_dofs(n_elements)] = phi
    # a sign convention, so mode shapes are reproducible: positive slope at the left support
    full *= np.where(full[1] < 0, -1.0, 1.0)
    w = np.sqrt(np.maximum(w2, 0.0))
    w.flags.writeable = False
    full.flags.writeable = False
    return w, full


def _check_n_modes(n_modes: Any) -> int:
    if not isinstance(n_modes, (int, np.integer)) or isinstance(n_modes, bool) or n_modes < 1:
        raise ConfigError(f"n_modes must be a positive integer, got {n_modes!r}")
    return int(n_modes)


def modal_frequencies(
    n_modes: int, cracks: Iterable[Any] = (), *, n_elements: int = DEFAULT_N_ELEMENTS
) -> np.ndarray:
    """The first ``n_modes`` finite-element natural frequencies (Hz) of the beam.

    ``cracks``: ``(position_m, depth_ratio)`` pairs or dicts with those keys.
    """
    n_modes = _check_n_modes(n_modes)
    w, _ = _modes(cracks, n_elements)
    if n_modes > len(w):
        raise ConfigError(f"n_modes={n_modes} exceeds the {len(w)} modes of a {n_elements}-element mesh")
    return w[:n_modes] / (2 * math.pi)


def closed_form_frequencies(n_modes: int) -> np.ndarray:
    """Euler-Bernoulli natural frequencies of the healthy simply supported beam (Hz):
    ``f_n = n^2 pi / (2 L^2) sqrt(EI / (rho A))``."""
    n = np.arange(1, _check_n_modes(n_modes) + 1, dtype=float)
    return n**2 * math.pi / (2 * LENGTH_M**2) * math.sqrt(EI / RHO_A)


def rayleigh_coefficients(
    zeta: tuple[float, float] = (DAMPING_RATIO, DAMPING_RATIO),
    modes: tuple[int, int] = DAMPING_MODES,
    *,
    n_elements: int = DEFAULT_N_ELEMENTS,
) -> tuple[float, float]:
    """``(a, b)`` of ``C = a M + b K`` giving damping ratios ``zeta`` at the two (1-based)
    ``modes`` of the healthy beam: ``zeta_n = a / (2 w_n) + b w_n / 2``."""
    i, j = int(modes[0]), int(modes[1])
    if i == j or min(i, j) < 1:
        raise ConfigError(f"Rayleigh anchor modes must be two different positive mode numbers, got {modes!r}")
    w, _ = _modes((), n_elements)
    wi, wj = w[i - 1], w[j - 1]
    zi, zj = float(zeta[0]), float(zeta[1])
    a = 2 * wi * wj * (zi * wj - zj * wi) / (wj**2 - wi**2)
    b = 2 * (zj * wj - zi * wi) / (wj**2 - wi**2)
    return float(a), float(b)


def modal_damping_ratios(
    n_modes: int, cracks: Iterable[Any] = (), *, n_elements: int = DEFAULT_N_ELEMENTS
) -> np.ndarray:
    """Damping ratios of the first ``n_modes`` modes under the beam's Rayleigh damping."""
    w = 2 * math.pi * modal_frequencies(n_modes, cracks, n_elements=n_elements)
    a, b = rayleigh_coefficients(n_elements=n_elements)
    return a / (2 * w) + b * w / 2


def sensor_positions(n_sensors: int = DEFAULT_N_SENSORS) -> np.ndarray:
    """Sensor positions (m): ``k L / (n_sensors + 1)``, k = 1..n_sensors."""
    return np.arange(1, int(n_sensors) + 1) * LENGTH_M / (int(n_sensors) + 1)


def _interp_modes(phi: np.ndarray, x: np.ndarray, n_elements: int) -> np.ndarray:
    """Mode-shape deflections at points ``x`` (Hermite shape functions): (len(x), n_modes)."""
    le = LENGTH_M / n_elements
    x = np.clip(np.asarray(x, dtype=float), 0.0, LENGTH_M)
    e = np.minimum((x / le).astype(int), n_elements - 1)
    xi = x / le - e
    n = np.stack(
        [1 - 3 * xi**2 + 2 * xi**3, le * (xi - 2 * xi**2 + xi**3), 3 * xi**2 - 2 * xi**3, le * (-(xi**2) + xi**3)],
        axis=1,
    )
    out = np.zeros((len(x), phi.shape[1]))
    for k in range(4):
        out += n[:, k : k + 1] * phi[2 * e + k]
    return out


# --------------------------------------------------------------------------------------
# modal response


def _modal_basis(
    cracks: Iterable[Any], n_elements: int, sample_rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The modes a simulation at ``sample_rate`` keeps: angular frequencies (rad/s), mode shapes
    on all DOFs and Rayleigh damping ratios of the modes below 0.45 x the sample rate (mode 1
    always)."""
    w_all, phi_all = _modes(cracks, n_elements)
    keep = w_all / (2 * math.pi) < 0.45 * sample_rate
    keep[0] = True
    w, phi = w_all[keep], phi_all[:, keep]
    a_r, b_r = rayleigh_coefficients(n_elements=n_elements)
    zeta = a_r / (2 * w) + b_r * w / 2
    return w, phi, zeta


def _mode_filter(w: float, zeta: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """IIR filter from modal force to modal acceleration, exact for piecewise-linear force."""
    a_c = np.array([[0.0, 1.0], [-(w**2), -2 * zeta * w]])
    b_c = np.array([[0.0], [1.0]])
    c_c = np.array([[-(w**2), -2 * zeta * w]])
    d_c = np.array([[1.0]])
    ad, bd, cd, dd, _ = signal.cont2discrete((a_c, b_c, c_c, d_c), dt, method="foh")
    num, den = signal.ss2tf(ad, bd, cd, dd)
    return np.asarray(num[0], dtype=float), np.asarray(den, dtype=float)


def _modal_accelerations(modal_force: np.ndarray, w: np.ndarray, zeta: np.ndarray, dt: float) -> np.ndarray:
    """Modal accelerations (n_modes, n) of the modes ``w`` (rad/s) with damping ratios ``zeta``
    under the modal forces (n_modes, n) sampled every ``dt`` seconds."""
    modal_acc = np.empty_like(modal_force)
    for j in range(len(w)):
        num, den = _mode_filter(float(w[j]), float(zeta[j]), dt)
        modal_acc[j] = signal.lfilter(num, den, modal_force[j])
    return modal_acc
