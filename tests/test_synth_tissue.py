"""The built-in synthetic tissue sections: deterministic, Poisson noise around a ground truth,
dropouts, and an imzML file that reads back to the arrays."""

import json

import numpy as np
import pytest

from latentbridge.cli import main
from latentbridge.data.synth.tissue import REGIONS, anatomy, channel_mz, synth_tissue
from latentbridge.errors import DataError
from latentbridge.io.imzml import read_ion_images


@pytest.fixture(scope="module")
def tissue(tmp_path_factory):
    out = tmp_path_factory.mktemp("tissue") / "data"
    assert main(["data", "synth", "tissue", "--out", str(out), "--sections", "3", "--test-sections", "1",
                 "--height", "40", "--width", "48", "--channels", "6", "--seed", "4"]) == 0
    return out


def test_layout_and_manifest(tissue):
    m = json.loads((tissue / "manifest.json").read_text())
    assert [s["split"] for s in m["sections"]] == ["train", "train", "test"]
    assert m["mz"] == channel_mz(6) and len(m["abundance"]) == len(REGIONS)
    for s in m["sections"]:
        for f in s["files"].values():
            assert (tissue / f).is_file(), f
        x = np.load(tissue / s["files"]["values"])
        truth = np.load(tissue / s["files"]["truth"])
        valid = np.load(tissue / s["files"]["mask"])
        outline = np.load(tissue / s["files"]["tissue"])
        assert x.shape == truth.shape == (40, 48, 6) and x.dtype == np.float32
        assert not (valid & ~outline).any() and (outline & ~valid).sum() == s["n_dropouts"] > 0
        assert (x[~valid] == 0).all() and (truth[~outline] == 0).all() and (truth[outline] > 0).all()
        assert 0.3 < outline.mean() < 0.9  # an oval section inside a rectangle
        assert (tissue / f"{s['name']}.channels.txt").read_text().split() == [str(v) for v in m["mz"]]


def test_noise_is_poisson_around_the_truth(tissue):
    x = np.load(tissue / "section_01.npy")
    truth = np.load(tissue / "section_01.truth.npy")
    valid = np.load(tissue / "section_01.mask.npy")
    t, n = truth[valid], x[valid]
    assert abs(float((n - t).mean())) < 0.05 * float(t.mean())
    # variance of counts ≈ mean (+ read noise 1): check on the bright half
    bright = t > np.median(t)
    ratio = float(((n - t)[bright] ** 2).mean() / (t[bright].mean() + 1.0))
    assert 0.8 < ratio < 1.2


def test_imzml_reads_back_to_the_arrays(tissue):
    m = json.loads((tissue / "manifest.json").read_text())
    res = read_ion_images(tissue / "section_02.imzML", m["mz"], tolerance=10, unit="ppm")
    x = np.load(tissue / "section_02.npy")
    assert res.shape == x.shape[:2]
    np.testing.assert_array_equal(res.mask, np.load(tissue / "section_02.mask.npy"))
    np.testing.assert_allclose(res.values, x, rtol=1e-6)
    assert (res.tic[res.mask] > x.sum(-1)[res.mask]).all()  # isotopes and background peaks too


def test_deterministic_and_independent_of_the_section_count(tmp_path, tissue):
    synth_tissue(tmp_path / "a", sections=2, test_sections=0, height=40, width=48, channels=6, seed=4, imzml=False)
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "section_02.npy"), np.load(tissue / "section_02.npy"))
    synth_tissue(tmp_path / "b", sections=1, test_sections=0, height=40, width=48, channels=6, seed=5, imzml=False)
    assert not np.array_equal(np.load(tmp_path / "b" / "section_01.npy"), np.load(tissue / "section_01.npy"))
    with pytest.raises(DataError, match="not empty"):
        synth_tissue(tmp_path / "a", sections=1, test_sections=0)


def test_regions_and_channel_list():
    frac, outline, _ = anatomy(60, 72, np.random.default_rng(0))
    assert frac.shape == (len(REGIONS), 60, 72)
    np.testing.assert_allclose(frac.sum(0)[outline], 1.0, atol=1e-5)
    assert (frac.sum(0)[~outline] == 0).all()
    assert all(frac[r].sum() > 5 for r in range(len(REGIONS)))  # every region is drawn
    mz = channel_mz(50)
    assert len(mz) == len(set(mz)) == 50 and min(np.diff(np.sort(mz))) > 0.05


@pytest.mark.parametrize("how", ["tic", "rms"])
def test_per_pixel_normalisation_reads_the_clean_maps_in_the_values_units(tissue, how):
    """With data.normalization tic / rms the clean maps were read raw, thousands of times off the normalised values
    (sigma calibrated against them came out ~3,700x too large): each pixel is divided alike, imzML and arrays."""
    import json

    from latentbridge.data.spatial import read_section

    root = tissue
    mz = [float(m) for m in json.loads((root / "manifest.json").read_text())["mz"]]
    for path, kw in ((root / "section_01.npy", {}), (root / "section_01.imzML", {"mz": mz})):
        s = read_section(path, normalization=how, truth=root / "section_01.truth.npy", **kw)
        v, t = s.values[s.valid], s.truth[s.valid]
        ratio = np.median(t[v > 0] / v[v > 0])
        assert 0.5 < ratio < 2.0, (path.suffix, how, ratio)
