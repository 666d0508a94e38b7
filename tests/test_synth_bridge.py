"""Tests for the synthetic bridge data set (latentbridge.data.synth.bridge) and its beam model
(latentbridge.data.synth.beam)."""

from __future__ import annotations

import csv
import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import linalg, signal

from latentbridge.data.synth import beam, bridge
from latentbridge.data.synth.bridge import (
    DEFAULTS,
    beam_matrices,
    closed_form_frequencies,
    draw_mask,
    modal_damping_ratios,
    modal_frequencies,
    rayleigh_coefficients,
    simulate_recording,
    synth_bridge,
)
from latentbridge.errors import ConfigError, DataError

L = bridge.LENGTH_M
MID = L / 2
SMALL = dict(
    states=5,
    duration_s=3.0,
    sample_rate=200.0,
    healthy_fraction=0.4,
    mask_height=64,
    mask_width=192,
    recordings_per_state=2,
)


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "bridge"
    manifest = synth_bridge(out, seed=7, **SMALL)
    return out, manifest


# ------------------------------------------------------------------------------ physics


def test_defaults_match_signature():
    sig = inspect.signature(synth_bridge)
    for name, value in DEFAULTS.items():
        assert sig.parameters[name].default == value
    assert set(DEFAULTS) == {n for n in sig.parameters if n != "out_dir"}
    # the beam functions default to the data set's mesh and sensor count
    assert inspect.signature(modal_frequencies).parameters["n_elements"].default == DEFAULTS["n_elements"]
    assert inspect.signature(bridge.sensor_positions).parameters["n_sensors"].default == DEFAULTS["n_sensors"]


def test_beam_model_is_importable_from_bridge():
    """The beam model moved to synth/beam.py; its names stay importable from synth/bridge.py."""
    for name in (*beam.__all__, "LENGTH_M", "HEIGHT_M", "EI", "RHO_A", "DAMPING_RATIO", "DAMPING_MODES",
                 "MAX_DEPTH_RATIO"):
        assert getattr(bridge, name) is getattr(beam, name), name
    assert set(bridge.__all__) <= {n for n in dir(bridge) if not n.startswith("_")}


def test_fe_frequencies_match_closed_form():
    fe = modal_frequencies(3)
    cf = closed_form_frequencies(3)
    np.testing.assert_allclose(fe, cf, rtol=0.005)
    assert np.all(fe >= cf * (1 - 1e-9))  # consistent-mass FE bounds from above
    # the documented beam: f_n = n^2 pi Hz, a footbridge-like first mode of a few Hz
    np.testing.assert_allclose(cf, [math.pi, 4 * math.pi, 9 * math.pi], rtol=1e-9)
    assert 2.0 < fe[0] < 5.0


def test_crack_lowers_frequencies():
    healthy = modal_frequencies(3)
    prev = healthy
    for depth in (0.1, 0.3, 0.5):
        f = modal_frequencies(3, [(MID, depth)])
        assert np.all(f < prev)  # deeper crack, lower frequencies
        prev = f
    drop = 1 - modal_frequencies(3, [(MID, 0.5)]) / healthy
    # mode 2 has its node at mid-span: a mid-span crack hardly changes it
    assert drop[0] > 0.05 and drop[0] > 10 * drop[1]
    assert drop[2] > 0.05  # mode 3 has an antinode at mid-span
    # an off-centre crack affects mode 2, and two cracks lower more than one
    quarter = 1 - modal_frequencies(3, [(L / 4, 0.5)]) / healthy
    assert quarter[1] > 0.05
    two = modal_frequencies(3, [(L / 4, 0.5), (MID, 0.5)])
    assert np.all(two < modal_frequencies(3, [(MID, 0.5)]))
    # dicts (as in the manifest) work like pairs
    np.testing.assert_array_equal(
        modal_frequencies(3, [{"position_m": MID, "depth_ratio": 0.5}]), modal_frequencies(3, [(MID, 0.5)])
    )


def test_crack_effect_does_not_depend_on_the_mesh():
    drops = [
        1 - modal_frequencies(1, [(MID - 0.01, 0.5)], n_elements=n)[0] / modal_frequencies(1, n_elements=n)[0]
        for n in (20, 40, 80)
    ]
    assert max(drops) - min(drops) < 0.05 * max(drops)


def test_rayleigh_damping_anchor_modes():
    M, K, C = beam_matrices()
    w2, phi = linalg.eigh(K, M)
    w = np.sqrt(w2[:5])
    zeta = np.diag(phi[:, :5].T @ C @ phi[:, :5]) / (2 * w)
    a1, a2 = bridge.DAMPING_MODES
    assert zeta[a1 - 1] == pytest.approx(bridge.DAMPING_RATIO, rel=1e-6)
    assert zeta[a2 - 1] == pytest.approx(bridge.DAMPING_RATIO, rel=1e-6)
    assert zeta[1] < bridge.DAMPING_RATIO < zeta[4]  # Rayleigh: lower between, higher beyond
    np.testing.assert_allclose(modal_damping_ratios(5), zeta, rtol=1e-6)
    # other anchors / ratios
    a, b = rayleigh_coefficients((0.01, 0.02), (1, 2))
    w12 = 2 * np.pi * modal_frequencies(2)
    np.testing.assert_allclose(a / (2 * w12) + b * w12 / 2, [0.01, 0.02], rtol=1e-9)


def test_bad_crack_and_arguments():
    with pytest.raises(ConfigError):
        modal_frequencies(3, [(MID, 0.7)])
    with pytest.raises(ConfigError):
        modal_frequencies(3, [(L + 1, 0.2)])
    with pytest.raises(ConfigError):
        modal_frequencies(0)
    with pytest.raises(ConfigError):
        synth_bridge("/nonexistent/never", states=0)


def _welch_peak(acc: np.ndarray, sr: float, channel: int) -> float:
    f, p = signal.welch(acc[:, channel], fs=sr, nperseg=4096)
    return float(f[np.argmax(p)])


def test_healthy_spectral_peak_is_mode_1():
    sr = 200.0
    t, acc, params = simulate_recording(11, duration_s=60.0, sample_rate=sr, moving_load=False)
    assert acc.shape == (12000, 8) and t.shape == (12000,)
    assert params["vehicle"] is None and 3 <= len(params["forces"]) <= 6
    assert np.all(np.isfinite(acc))
    f1 = modal_frequencies(1)[0]
    peak = _welch_peak(acc, sr, 3)  # sensor 4, next to mid-span
    assert abs(peak - f1) < 0.05 * f1
    # a deep mid-span crack moves the peak down by about the FE frequency drop
    _, acc_d, _ = simulate_recording(11, cracks=[(MID, 0.5)], duration_s=60.0, sample_rate=sr, moving_load=False)
    f1_d = modal_frequencies(1, [(MID, 0.5)])[0]
    peak_d = _welch_peak(acc_d, sr, 3)
    assert abs(peak_d - f1_d) < 0.05 * f1_d
    assert peak_d < peak - 0.2


def test_sensor_noise_level():
    _, clean, _ = simulate_recording(3, duration_s=20.0, noise_snr_db=None, moving_load=False)
    _, noisy, _ = simulate_recording(3, duration_s=20.0, noise_snr_db=20.0, moving_load=False)
    snr = 10 * np.log10(np.mean(clean**2) / np.mean((noisy - clean) ** 2))
    assert snr == pytest.approx(20.0, abs=0.3)


def test_draw_mask_position_and_height():
    h, w = 512, 1536
    m = draw_mask([(5.0, 0.5)], h, w)
    cols = np.flatnonzero(m.any(axis=0))
    centre = int(5.0 / L * w)  # 384
    half = w // 80  # the damaged zone is one element of the 40-element mesh wide
    assert cols.min() == centre - half and cols.max() == centre + half
    assert abs(cols.mean() - 5.0 / L * w) <= 1.0
    rows = np.flatnonzero(m.any(axis=1))
    assert rows.max() == h - 1 and len(rows) == 256  # opens from the bottom edge
    assert not draw_mask([], h, w).any()


# ------------------------------------------------------------------------------ files


def test_layout(small_set):
    out, manifest = small_set
    assert sorted(p.name for p in out.iterdir()) == ["Data", "Labels", "manifest.json"]
    ids = [f"Test_{i:02d}" for i in range(1, 6)]
    assert sorted(p.name for p in (out / "Data").iterdir()) == ids
    assert sorted(p.name for p in (out / "Labels").iterdir()) == ids
    for tid in ids:
        assert sorted(p.name for p in (out / "Data" / tid).iterdir()) == ["rec_01.csv", "rec_02.csv"]
        assert sorted(p.name for p in (out / "Labels" / tid).iterdir()) == ["mask.png"]
    assert [s["test_id"] for s in manifest["states"]] == ids
    # no temporary leftovers beside the folder
    assert [p.name for p in out.parent.iterdir()] == ["bridge"]


def test_csv_content(small_set):
    out, manifest = small_set
    path = out / "Data" / "Test_03" / "rec_02.csv"
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header = ["time_s"] + [f"acc_{k:02d}" for k in range(1, 9)]
    assert rows[0] == header
    data = np.array(rows[1:], dtype=float)
    assert data.shape == (600, 9)
    np.testing.assert_allclose(data[:, 0], np.arange(600) / 200.0, atol=1e-9)
    assert np.all(np.isfinite(data)) and np.all(np.std(data[:, 1:], axis=0) > 0)
    rms = np.sqrt(np.mean(data[:, 1:] ** 2, axis=0))
    assert 1e-4 < rms.mean() < 1.0  # m/s^2, an ambient-vibration level
    rec = manifest["states"][2]["recordings"][1]
    assert rec["path"] == "Data/Test_03/rec_02.csv"
    np.testing.assert_allclose(rec["rms_m_s2"], rms, rtol=1e-4)


def test_masks(small_set):
    out, manifest = small_set
    states = manifest["states"]
    assert sum(s["healthy"] for s in states) == 2  # round(0.4 * 5)
    for s in states:
        m = _mask(out / s["mask"])
        assert m.shape == (64, 192, 3) and m.dtype == np.uint8
        assert Image.open(out / s["mask"]).mode == "RGB"
        assert set(np.unique(m)) <= {0, 255}
        assert np.array_equal(m[..., 0], m[..., 1]) and np.array_equal(m[..., 0], m[..., 2])
        white = m[..., 0] == 255
        if s["healthy"]:
            assert s["cracks"] == [] and not white.any() and s["damage_extent"] == 0
        else:
            assert 1 <= len(s["cracks"]) <= DEFAULTS["max_cracks"]
            assert np.array_equal(white, draw_mask(s["cracks"], 64, 192))
            assert s["damage_extent"] == pytest.approx(white.mean(), abs=1e-7)
            for c in s["cracks"]:
                assert 0.1 * L <= c["position_m"] <= 0.9 * L and 0.1 <= c["depth_ratio"] <= 0.6
                col = int(c["position_m"] / L * 192)
                assert white[-1, col]  # the crack reaches the bottom edge at its x
                assert white[:, col].sum() >= round(c["depth_ratio"] * 64)


def test_manifest(small_set):
    out, manifest = small_set
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    p = manifest["parameters"]
    assert p["seed"] == 7 and p["states"] == 5 and p["sample_rate"] == 200.0 and p["n_samples"] == 600
    assert p["recordings_per_state"] == 2 and p["n_sensors"] == 8 and p["noise_snr_db"] == 30.0
    beam = manifest["beam"]
    assert beam["length_m"] == L and len(beam["healthy_frequencies_hz"]) == 5
    assert len(manifest["sensors"]["positions_m"]) == 8
    assert 0 < min(manifest["sensors"]["positions_m"]) and max(manifest["sensors"]["positions_m"]) < L
    for s in manifest["states"]:
        np.testing.assert_allclose(s["modal_frequencies_hz"], modal_frequencies(5, s["cracks"]), rtol=1e-6)
        if s["healthy"]:
            assert s["modal_frequencies_hz"] == beam["healthy_frequencies_hz"]
        else:
            assert s["modal_frequencies_hz"][0] < beam["healthy_frequencies_hz"][0]
        assert [r["seed_key"] for r in s["recordings"]] == [[7, 1, int(s["test_id"][5:]) - 1, r] for r in (0, 1)]


def test_recording_reproducible_from_seed_key(small_set):
    out, manifest = small_set
    s = manifest["states"][1]
    rec = s["recordings"][0]
    _, acc, params = simulate_recording(tuple(rec["seed_key"]), cracks=s["cracks"], duration_s=3.0)
    assert params == rec["excitation"]
    data = np.loadtxt(out / rec["path"], delimiter=",", skiprows=1)
    np.testing.assert_allclose(data[:, 1:], acc, rtol=1e-5, atol=1e-9)


def test_determinism(tmp_path, small_set):
    out, _ = small_set
    again = tmp_path / "again"
    synth_bridge(again, seed=7, **SMALL)
    assert _tree_bytes(again) == _tree_bytes(out)
    other = tmp_path / "other"
    synth_bridge(other, seed=8, **SMALL)
    assert _tree_bytes(other) != _tree_bytes(out)


def test_refuses_non_empty_folder(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError) as e:
        synth_bridge(out, seed=1, states=2, duration_s=1.0, mask_height=16, mask_width=48)
    assert str(out) in str(e.value)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
    # an empty folder is fine; overwrite replaces a non-empty one
    empty = tmp_path / "empty"
    empty.mkdir()
    synth_bridge(empty, seed=1, states=2, duration_s=1.0, mask_height=16, mask_width=48)
    synth_bridge(out, seed=1, states=2, duration_s=1.0, mask_height=16, mask_width=48, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["Data", "Labels", "manifest.json"]
