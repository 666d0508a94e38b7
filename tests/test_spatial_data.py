"""Sections, patches and their corruptions, coordinates, and whole-section tiling (exact blending,
bounded memory)."""

import tracemalloc

import numpy as np
import pytest
import torch

from latentbridge.config.sections import PatchConfig
from latentbridge.data.spatial import (
    PatchDataset,
    PreparedSection,
    Section,
    channel_statistics,
    coarse_input,
    coordinate_frame,
    coords_of,
    hide_pixels,
    make_patch,
    outline_of,
)
from latentbridge.tasks.enhance import blend_window, coarse_source, full_source, run_tiles, tile_starts
from latentbridge.transforms.spec import SpatialTransform


def _spec(c=2, size=16, overlap=4, center=0.0, scale=1.0):
    return SpatialTransform(channels=c, center=[center] * c, scale=[scale] * c, lower=[-9.0] * c, upper=[9.0] * c,
                            patch_size=size, overlap=overlap)


def test_coordinates_map_the_bounding_box_to_minus_one_one():
    mask = np.zeros((10, 12), bool)
    mask[2:8, 3:12] = True
    frame = coordinate_frame(mask)
    assert frame == (2.0, 7.0, 3.0, 11.0)
    c = coords_of(frame, 0, 0, 10, 12)
    assert c.shape == (2, 10, 12)
    assert c[0, 2, 5] == -1.0 and c[0, 7, 5] == 1.0 and c[1, 4, 3] == -1.0 and c[1, 4, 11] == 1.0
    np.testing.assert_allclose(np.diff(c[0, :, 0]), 2 / 5)


def test_statistics_corruptions_and_patches():
    rng = np.random.default_rng(0)
    values = rng.gamma(3.0, 2.0, (40, 44, 3)).astype(np.float32)
    valid = np.ones((40, 44), bool)
    valid[:5] = False
    st = channel_statistics([Section("s", values, valid, "mem")])
    np.testing.assert_allclose(st["center"], values[valid].mean(0), rtol=1e-5)
    np.testing.assert_allclose(st["scale"], values[valid].std(0), rtol=1e-4)
    np.testing.assert_allclose(st["lower"], -values[valid].mean(0) / values[valid].std(0), rtol=1e-4)
    hidden = hide_pixels(valid, 0.3, rng)
    assert not (hidden & ~valid).any() and 0.25 < hidden.sum() / valid.sum() < 0.5
    up, ok = coarse_input(values[:4, :4], valid[:4, :4] | True)
    np.testing.assert_allclose(up[0, 0], values[:2, :2].reshape(-1, 3).mean(0), rtol=1e-6)
    assert np.array_equal(up[0, 0], up[1, 1]) and ok.all()
    sec = PreparedSection(values, valid, coordinate_frame(valid))
    cfg = PatchConfig(size=16)
    for mode in ("denoise", "inpaint", "upscale"):
        ex = make_patch(sec, 10, 12, 16, mode, cfg, rng)
        assert ex["x"].shape == ex["target"].shape == (3, 16, 16) and ex["coords"].shape == (2, 16, 16)
        np.testing.assert_array_equal(ex["target"], np.moveaxis(values[10:26, 12:28], 2, 0))
        if mode == "denoise":
            np.testing.assert_array_equal(ex["x"], ex["target"])
        elif mode == "inpaint":
            assert 0 < (1 - ex["observed"]).sum() and (ex["x"][:, ex["observed"][0] == 0] == 0).all()
        else:
            assert (ex["coarse"] == ex["observed"]).all() and np.array_equal(ex["x"][:, 0, 0], ex["x"][:, 1, 1])
    ds = PatchDataset([sec], cfg, 20, seed=3, fixed=True)
    again = PatchDataset([sec], cfg, 20, seed=3, fixed=True)
    assert all(torch.equal(ds[i]["x"], again[i]["x"]) for i in range(20))
    modes = torch.stack([ds[i]["mode"] for i in range(20)])
    assert len(set(modes.tolist())) > 1
    assert all(float(ds[i]["target_valid"].mean()) >= cfg.min_valid for i in range(20))


def test_blind_spot_patches_hide_a_share_of_pixels_and_target_only_the_hidden():
    rng = np.random.default_rng(4)
    values = rng.normal(0, 1, (40, 40, 2)).astype(np.float32)
    valid = np.ones((40, 40), bool)
    valid[:, :3] = False
    sec = PreparedSection(values, valid, coordinate_frame(valid))
    cfg = PatchConfig(size=32)
    ex = make_patch(sec, 4, 0, 32, "denoise", cfg, rng, blind_spot=4)
    ok, obs, tv = valid[4:36, :32], ex["observed"][0] > 0, ex["target_valid"][0] > 0
    hidden = ok & ~obs
    assert 0.18 < hidden.sum() / ok.sum() < 0.32  # about 1/4 of the measured pixels
    assert np.array_equal(tv, hidden) and not (obs & ~ok).any()
    assert (ex["x"][:, ~obs] == 0).all() and np.array_equal(ex["x"][:, obs], ex["target"][:, obs])
    ex = make_patch(sec, 4, 0, 32, "inpaint", cfg, rng, blind_spot=4)
    assert np.array_equal(ex["target_valid"][0] > 0, ok & ~(ex["observed"][0] > 0))
    ex = make_patch(sec, 4, 0, 32, "upscale", cfg, rng, blind_spot=4)  # the target is not in the input
    assert np.array_equal(ex["target_valid"][0] > 0, ok)
    # a clean target needs no blind spot: the dataset switches it off
    assert PatchDataset([sec], cfg, 2, seed=0, blind_spot=4).blind_spot == 4
    sec_clean = PreparedSection(values, valid, coordinate_frame(valid), truth=values)
    assert PatchDataset([sec_clean], cfg, 2, seed=0, target="clean", blind_spot=4).blind_spot == 0


def test_noise_scaling_recovers_each_channels_noise_level():
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:60, :70] / 30.0
    smooth = np.stack([20 + 10 * np.sin(yy + c) * np.cos(xx) for c in range(3)], axis=2)
    sigmas = np.array([0.5, 2.0, 4.0])
    values = (smooth + rng.normal(0, 1, smooth.shape) * sigmas).astype(np.float32)
    valid = np.ones((60, 70), bool)
    valid[20:25] = False  # holes are left out of the estimate
    st = channel_statistics([Section("s", values, valid, "mem")], scaling="noise")
    np.testing.assert_allclose(st["scale"], sigmas, rtol=0.1)
    assert st["center"] == channel_statistics([Section("s", values, valid, "mem")])["center"]


def test_outline_fills_holes():
    valid = np.zeros((12, 12), bool)
    valid[2:10, 2:10] = True
    holes = valid.copy()
    holes[5, 3:8] = False
    holes[7, 7] = False
    assert np.array_equal(outline_of(holes), valid)


class PositionModel:
    """A stand-in model whose outputs are functions of the pixel's coordinates only: any correct
    tiling and blending gives back exactly those functions."""

    latent_shape = (2, 8, 8)
    sigma_scale = torch.tensor([1.0, 2.0, 3.0])

    def eval(self):
        return self

    def enhance(self, x, observed, coarse, coords, n_samples=0, generator=None):
        mean = torch.cat([coords[:, :1] * 3.0, coords[:, 1:] - 1.0] * (x.shape[1] // 2), 1)
        return {"mean": mean, "aleatoric_var": torch.full_like(mean, 0.25), "latent_var": torch.zeros_like(mean),
                "latent": coords[:, :, ::2, ::2]}


@pytest.mark.parametrize("shape", [(16, 16), (37, 50), (10, 9)])
def test_tiles_blend_back_exactly(shape):
    h, w = shape
    rng = np.random.default_rng(1)
    values = rng.random((h, w, 2)).astype(np.float32)
    valid = np.ones((h, w), bool)
    valid[0, 0] = False
    spec = _spec(center=5.0, scale=2.0)
    frame = coordinate_frame(valid)
    out = run_tiles(PositionModel(), spec, full_source(values, valid, spec, frame), n_samples=0, batch_tiles=3)
    c = coords_of(frame, 0, 0, h, w)
    np.testing.assert_allclose(out.mean[..., 0], c[0] * 3.0 * 2.0 + 5.0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.mean[..., 1], (c[1] - 1.0) * 2.0 + 5.0, rtol=1e-5, atol=1e-5)
    # sigma: sqrt(0.25) x the factor of the pixel's kind x the channel scale
    assert out.sigma[1, 1, 0] == pytest.approx(0.5 * 1.0 * 2.0) and out.sigma[0, 0, 0] == pytest.approx(0.5 * 2.0 * 2.0)
    np.testing.assert_allclose(out.latent[..., 0][::2, ::2], c[0][::2, ::2], atol=1e-5)
    assert out.n_tiles == len(tile_starts(max(16, h + h % 2), 16, 12)) * len(tile_starts(max(16, w + w % 2), 16, 12))
    # upscaling: the output grid is twice the input's; coarse pixels get the third factor
    low = values[: h // 2, : w // 2]
    up = run_tiles(PositionModel(), spec, coarse_source(low, np.ones(low.shape[:2], bool), spec, frame), n_samples=0)
    assert up.mean.shape == (2 * (h // 2), 2 * (w // 2), 2) and up.sigma[0, 0, 0] == pytest.approx(0.5 * 3.0 * 2.0)


def test_tiles_without_a_pixel_to_answer_are_not_run():
    """A small section on a large empty canvas ran every tile of the canvas (625 for 0.35 % of the pixels)."""
    rng = np.random.default_rng(2)
    values = rng.random((120, 130, 2)).astype(np.float32)
    valid = np.zeros((120, 130), bool)
    valid[40:60, 50:75] = True
    spec = _spec(center=5.0, scale=2.0)
    frame = coordinate_frame(valid)
    whole = run_tiles(PositionModel(), spec, full_source(values, valid, spec, frame), n_samples=0)
    part = run_tiles(PositionModel(), spec, full_source(values, valid, spec, frame), n_samples=0, answered=valid)
    assert whole.n_tiles == len(tile_starts(120, 16, 12)) * len(tile_starts(130, 16, 12)) == 110
    assert part.n_tiles == 8  # the tiles that touch the 20 x 25 region (2 rows x 4 columns of them)
    np.testing.assert_allclose(part.mean[valid], whole.mean[valid], rtol=1e-6)
    assert np.isnan(part.mean[~valid]).all()


def test_tiling_memory_does_not_grow_with_the_section(tmp_path):
    from numpy.lib.format import open_memmap

    def peak_of(h, w, c=8):
        folder = tmp_path / f"{h}x{w}"
        folder.mkdir()
        values = open_memmap(folder / "in.npy", mode="w+", dtype=np.float32, shape=(h, w, c))
        valid = np.ones((h, w), bool)
        spec = _spec(c=c, size=32, overlap=8)

        def allocate(name, shape):
            return open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)

        tracemalloc.start()
        out = run_tiles(PositionModel(), spec, full_source(values, valid, spec, coordinate_frame(valid)),
                        n_samples=0, allocate=allocate, batch_tiles=8)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert isinstance(out.mean, np.memmap)
        return peak

    small, large = peak_of(240, 360), peak_of(960, 360)
    # four times the rows: the same working memory (a band of one tile row), far below one output map
    assert large < 1.25 * small and large < 0.3 * (960 * 360 * 8 * 4), (small, large)
    assert blend_window(32, 8).min() > 0 and blend_window(32, 8)[16, 16] == 1.0


def test_scale_check_samples_values_not_pixels():
    """The intensity-scale check copied every pixel of a section as float64 below 2**20 pixels (400 MiB for a moment
    at 1000 x 1000 x 50): its sample is now capped by values, in float32, and still names a map on another scale."""
    from latentbridge.tasks.spatial_inputs import scale_mismatch

    rng = np.random.default_rng(0)
    values = rng.gamma(3.0, 2.0, (600, 600, 20)).astype(np.float32)
    valid = np.ones((600, 600), bool)
    spec = SpatialTransform(channels=20, center=[6.0] * 20, scale=[3.5] * 20, lower=[-1.7] * 20, upper=[5.0] * 20,
                            patch_size=16, overlap=4)
    assert scale_mismatch(Section("same", values, valid, "mem"), spec) == []
    tracemalloc.start()
    loud = scale_mismatch(Section("loud", values * 1e3, valid, "mem"), spec)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [m["channel"] for m in loud] == list(range(20)) and not any(m["outside"] for m in loud)
    # values * 1e3 itself is 28.8 MB; a float64 copy of every pixel would add 57.6 MB
    assert peak < values.nbytes + 0.6 * 8 * values.size, peak


def test_a_negated_map_is_named_whatever_its_training_bound_rounds_to():
    """A negated channel with zeros (its background) passed the check silently: its 99.5th percentile, 0, is not
    below a training lower bound of 0; one was named only because its bound rounded to 7.11e-15 (printed "in
    training 7.11e-15 to 198"). Values mostly below 0 where training's were 0 or more are now named, the bound 0."""
    from latentbridge.tasks.spatial_inputs import scale_mismatch

    rng = np.random.default_rng(0)
    v = rng.gamma(3.0, 20.0, (40, 40, 2))
    v[:10] = 0.0  # a background of zeros
    flat = v.reshape(-1, 2)
    mean, std = flat.mean(0), flat.std(0)
    for nudge in (-1e-12, 0.0, 1e-12):  # the training lower bound a hair below, at or above 0
        spec = SpatialTransform(channels=2, center=mean.tolist(), scale=std.tolist(),
                                lower=((nudge - mean) / std).tolist(), upper=((flat.max(0) - mean) / std).tolist(),
                                patch_size=16)
        valid = np.ones((40, 40), bool)
        assert scale_mismatch(Section("same", v.astype(np.float32), valid, "mem"), spec) == []
        negated = scale_mismatch(Section("negated", -v.astype(np.float32), valid, "mem"), spec)
        assert [(m["channel"], m["outside"], m["trained"][0], m["high"]) for m in negated] == [(0, True, 0.0, 0.0),
                                                                                                (1, True, 0.0, 0.0)]
        some = v.copy()
        some[rng.random(v.shape) < 0.2] *= -0.1  # a baseline-corrected map: a few small negative values
        assert scale_mismatch(Section("corrected", some.astype(np.float32), valid, "mem"), spec) == []
    # training maps whose noise dips under 0 (a bound of -6 % of the range) let a negated map through: named now
    noisy = v + rng.normal(0.0, 4.0, v.shape)
    flat = noisy.reshape(-1, 2)
    mean, std = flat.mean(0), flat.std(0)
    spec = SpatialTransform(channels=2, center=mean.tolist(), scale=std.tolist(),
                            lower=((np.percentile(flat, 0.5, axis=0) - mean) / std).tolist(),
                            upper=((np.percentile(flat, 99.5, axis=0) - mean) / std).tolist(), patch_size=16)
    assert all(m["trained"][0] < 0 for m in scale_mismatch(Section("n", -noisy.astype(np.float32), valid, "mem"), spec))
    assert [m["outside"] for m in scale_mismatch(Section("n", -noisy.astype(np.float32), valid, "mem"), spec)] == \
        [True, True]
    assert scale_mismatch(Section("same", noisy.astype(np.float32), valid, "mem"), spec) == []


def test_channel_labels_that_are_m_z_are_read_however_written_and_checked(tmp_path):
    """Labels with units ('786.601 m/z'), a byte-order mark with CRLF (Notepad) or decimal commas were not read as m/z,
    so a reversed order ran silently; sections of one training in different channel orders, a data.mz that
    contradicts them, and one section given as .npy and .npz went unnoticed."""
    from types import SimpleNamespace

    from latentbridge.data.spatial_labels import check_labels, check_sections, label_mz, labels_mz
    from latentbridge.errors import DataError
    from latentbridge.io.arrays import channel_labels

    assert [label_mz(x) for x in ("786.601", "786.601 m/z", "m/z 786,601", "\ufeff734.569", "GFP", "ch_8")] == [
        786.601, 786.601, 786.601, 734.569, None, None]
    mz = [734.569, 760.585, 782.567, 786.601]
    np.save(tmp_path / "rev.npy", np.zeros((4, 5, 4), np.float32))
    (tmp_path / "rev.channels.txt").write_bytes("\ufeff# reversed\r\n".encode() + "\r\n".join(
        f"{m} m/z" for m in mz[::-1]).encode("utf-8"))
    labels = channel_labels(tmp_path / "rev.npy")
    assert labels_mz(labels) == mz[::-1]
    with pytest.raises(DataError, match=r"rev\.npy: its channels are labelled m/z 786\.601, 782\.567, 760\.585, "
                                        r"734\.569; the model reads the same m/z in another order"):
        check_labels(tmp_path / "rev.npy", labels, mz)
    check_labels(tmp_path / "rev.npy", ["GFP", "RFP", "DAPI", "Cy5"], mz)  # names: nothing to compare
    with pytest.raises(DataError, match=r"the model reads m/z 734\.569, 760\.585, 782\.567, 786\.601 \(m/z 734\.569 "
                                        r"labelled twice\) \(without m/z 760\.585\)$"):  # "reorder" could not mend it
        check_labels(tmp_path / "rev.npy", ["734.569", "734.569", "782.567", "786.601"], mz)

    def section(name, labels, source=None, channels=4):
        return SimpleNamespace(name=name, labels=labels, source=str(tmp_path / (source or f"{name}.npy")),
                               shape=(5, 5, channels))

    plain = [f"{m}" for m in mz]
    check_sections([section("s1", plain), section("s3", plain)], None, tmp_path)
    with pytest.raises(DataError, match=r"s2\.npy: its channels are labelled m/z 786\.601.*in another order"):
        check_sections([section("s1", plain), section("s2", plain[::-1]), section("s3", plain)], None, tmp_path)
    with pytest.raises(DataError, match=r"s1\.npy: its channels are labelled m/z 734\.569"):  # data.mz reversed
        check_sections([section("s1", plain)], mz[::-1], tmp_path)
    with pytest.raises(DataError, match=r"section 's4' is given 2 times \(s4\.npy, s4\.npz\): keep one file per "
                                        r"section"):
        check_sections([section("s4", plain), section("s4", plain, "s4.npz")], None, tmp_path)
    with pytest.raises(DataError, match=r"sections have different channel counts \[3, 4\]: s5\.npy \(3\)"):
        check_sections([section("s1", plain), section("s3", plain), section("s5", plain[:3], channels=3)], None,
                       tmp_path)


def test_pixels_whose_normalisation_is_undefined_are_not_measurements(tmp_path, caplog):
    """Baseline-corrected maps (negative values) under TIC normalisation: pixels with a total of 0 or less were zeroed
    and kept as valid, and near-zero totals blew the others up."""
    from latentbridge.data.spatial import read_section

    v = np.full((4, 5, 3), 2.0, np.float32)
    v[0, :2] = [-3.0, 1.0, 1.0]  # totals -1: undefined
    np.save(tmp_path / "s.npy", v)
    np.save(tmp_path / "s.mask.npy", np.ones((4, 5), bool))
    with caplog.at_level("WARNING"):
        s = read_section(tmp_path / "s.npy", normalization="tic")
    assert int(s.valid.sum()) == 18 and not s.valid[0, :2].any()
    assert "s.npy: 2 pixel(s) with a tic of 0 or less (empty or baseline-corrected spectra)" in caplog.text
    np.testing.assert_allclose(s.values[1, 1], [1 / 3] * 3, rtol=1e-6)
