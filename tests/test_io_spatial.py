"""Readers of spatial maps: imzML ion images (the imzML.org example files, both storage modes; a
written file read back) and .npy / TIFF / PNG stacks with masks."""

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from latentbridge.errors import DataError
from latentbridge.io import arrays, imzml

EXAMPLES = REPO.parent / "shared" / "data" / "imzml"
MODES = ("Continuous", "Processed")


def _example(mode: str) -> Path:
    path = EXAMPLES / f"Example_{mode}.imzML"
    if not path.is_file() or not path.with_suffix(".ibd").is_file():
        pytest.skip(f"imzML example files not found at {EXAMPLES}")
    return path


def _brute_force(path: Path, target: float, half: float):
    from pyimzml.ImzMLParser import ImzMLParser

    p = ImzMLParser(str(path), parse_lib="ElementTree")
    img, tic = np.zeros((3, 3)), np.zeros((3, 3))
    for i, (x, y, _) in enumerate(p.coordinates):
        mzs, ints = p.getspectrum(i)
        img[y - 1, x - 1] = ints[(mzs >= target - half) & (mzs <= target + half)].sum()
        tic[y - 1, x - 1] = ints.sum()
    p.m.close()
    return img, tic


@pytest.mark.parametrize("mode", MODES)
def test_example_files_ion_images_match_a_brute_force_read(mode):
    path = _example(mode)
    info = imzml.imzml_info(path)
    assert (info["height"], info["width"], info["n_spectra"], info["mode"]) == (3, 3, 9, mode.lower())
    res = imzml.read_ion_images(path, [153.0, 152.0], tolerance=0.1, unit="da")
    assert res.values.shape == (3, 3, 2) and res.mask.all() and res.mode == mode.lower()
    for c, target in enumerate((153.0, 152.0)):
        img, tic = _brute_force(path, target, 0.1)
        np.testing.assert_allclose(res.values[..., c], img, rtol=1e-5)
        assert img.max() > 0
    np.testing.assert_allclose(res.tic, tic, rtol=1e-5)
    # TIC and RMS normalisation divide each pixel by its spectrum's total / root mean square
    t = imzml.read_ion_images(path, [153.0], tolerance=0.1, unit="da", normalization="tic")
    np.testing.assert_allclose(t.values[..., 0], res.values[..., 0] / res.tic, rtol=1e-5)
    r = imzml.read_ion_images(path, [153.0], tolerance=0.1, unit="da", normalization="rms")
    assert np.all(r.values[..., 0] > t.values[..., 0])


def test_both_storage_modes_give_the_same_images_and_ppm_windows_are_relative():
    a = imzml.read_ion_images(_example("Continuous"), [153.0, 152.0], tolerance=700, unit="ppm")
    b = imzml.read_ion_images(_example("Processed"), [153.0, 152.0], tolerance=700, unit="ppm")
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6)
    # 700 ppm of 153 = 0.107 Da: the same window as 0.107 Da
    d = imzml.read_ion_images(_example("Continuous"), [153.0], tolerance=153.0 * 700e-6, unit="da")
    np.testing.assert_allclose(a.values[..., :1], d.values, rtol=1e-6)
    # a window narrower than the 1/12 Da bins, away from any bin, holds nothing: reported, not an error here
    # (training refuses a channel empty in every section; enhance one whose channels are all empty)
    e = imzml.read_ion_images(_example("Continuous"), [153.04], tolerance=10, unit="ppm")
    assert e.empty_channels == [153.04] and not e.values.any()


class _CountingFile:
    """A binary file that records the size of every read."""

    def __init__(self, f, reads):
        self.f, self.reads = f, reads

    def read(self, n=-1):
        data = self.f.read(n)
        self.reads.append(len(data))
        return data

    def __getattr__(self, name):
        return getattr(self.f, name)


def test_reader_reads_one_spectrum_at_a_time(monkeypatch):
    path = _example("Processed")
    reads: list[int] = []
    real_open = open
    monkeypatch.setattr(imzml, "open", lambda p, mode="r": _CountingFile(real_open(p, mode), reads), raising=False)
    imzml.read_ion_images(path, [153.0], tolerance=0.1, unit="da")
    ibd_size = path.with_suffix(".ibd").stat().st_size
    assert reads and max(reads) <= 8399 * 4 < ibd_size / 10  # one m/z or intensity array per read


@pytest.mark.parametrize("mode", ["processed", "continuous"])
def test_written_file_reads_back(tmp_path, mode):
    rng = np.random.default_rng(0)
    grid = np.sort(np.r_[np.linspace(700.0, 900.0, 2001), 760.58, 798.54]) if mode == "continuous" else None
    truth = np.zeros((4, 5, 2), dtype=np.float32)
    spectra = []
    for r in range(4):
        for c in range(5):
            if (r, c) == (2, 3):
                continue  # a pixel without a spectrum
            if mode == "continuous":
                ints = rng.random(len(grid)).astype(np.float32) * 0.01
                i1, i2 = np.searchsorted(grid, [760.58, 798.54])
                ints[i1], ints[i2] = 5 + r, 2 + c
                mzs = grid
            else:
                mzs = np.array([700.1, 760.58 * (1 + 3e-6), 798.54 * (1 - 4e-6), 850.0])
                ints = np.array([1.0, 5 + r, 2 + c, 3.0], dtype=np.float32)
            truth[r, c] = [ints[np.abs(mzs - t).argmin()] for t in (760.58, 798.54)]
            spectra.append((r, c, mzs, ints))
    path = imzml.write_imzml(tmp_path / "section.imzML", spectra, mode=mode, shape=(4, 6))
    assert path.is_file() and path.with_suffix(".ibd").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind
    res = imzml.read_ion_images(path, [760.58, 798.54], tolerance=10, unit="ppm")
    assert res.mode == mode and res.shape == (4, 6)  # the grid, not the extent of the spectra
    assert not res.mask[2, 3] and not res.mask[:, 5].any() and res.mask.sum() == 19
    assert res.values[2, 3].sum() == 0
    np.testing.assert_allclose(res.values[:, :5][res.mask[:, :5]], truth[res.mask[:, :5]], rtol=1e-6)


def test_imzml_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        imzml.read_ion_images(tmp_path / "none.imzML", [760.0])
    bad = tmp_path / "bad.imzML"
    bad.write_text("<not imzml")
    with pytest.raises(DataError, match=r"no binary file bad\.ibd"):
        imzml.read_ion_images(bad, [760.0])
    bad.with_suffix(".ibd").write_bytes(b"\0" * 16)
    with pytest.raises(DataError, match="not a readable imzML"):
        imzml.read_ion_images(bad, [760.0])
    with pytest.raises(ValueError, match="tolerance unit"):
        imzml.mz_windows([760.0], 5, "mda")
    # a pixel written twice (the last spectrum won, silently); a stray coordinate (a 745-GiB grid: MemoryError)
    mzs, ints = np.array([700.0, 760.58]), np.array([1.0, 2.0], dtype=np.float32)
    pixels = [(r, c, mzs, ints) for r in range(3) for c in range(3)]
    twice = imzml.write_imzml(tmp_path / "twice.imzML", [*pixels, (0, 0, mzs, 100 * ints)], mode="processed")
    with pytest.raises(DataError, match=r"twice\.imzML: 1 pixel\(s\) hold more than one spectrum \(spectra 0, 9 at "
                                        r"x = 1, y = 1\)"):
        imzml.read_ion_images(twice, [760.58])
    stray = imzml.write_imzml(tmp_path / "stray.imzML", [*pixels, (199_999, 199_999, mzs, ints)], mode="processed")
    with pytest.raises(DataError, match=r"10 spectra on a grid of 200000 x 200000 pixels: spectrum 9 at x = 200000, "
                                        r"y = 200000 lies far from the others"):
        imzml.read_ion_images(stray, [760.58])
    # two sections on one slide, far apart: named as regions (half the spectra were blamed on one stray coordinate)
    two = imzml.write_imzml(tmp_path / "two.imzML", [*pixels, *((r + 1500, c + 1500, m, i) for r, c, m, i in pixels)],
                            mode="processed")
    with pytest.raises(DataError, match=r"18 spectra on a grid of 1503 x 1503 pixels: they lie in regions 1498 pixels "
                                        r"apart: 9 at (x|y) = 3 or less, 9 at (x|y) = 1501 or more"):
        imzml.read_ion_images(two, [760.58])
    # every spectrum empty: said so (it was 'no signal in any of the model's channels')
    import re

    empty = imzml.write_imzml(tmp_path / "empty.imzML", pixels, mode="processed")
    empty.write_text(re.sub(r'(name="external array length" value=")\d+', r"\g<1>0", empty.read_text()))
    with pytest.raises(DataError, match=r"empty\.imzML: every one of its 9 spectra is empty"):
        imzml.read_ion_images(empty, [760.58])
    # binary arrays stored compressed (zlib): named so (a complete file was refused as truncated)
    from pyimzml.compression import ZlibCompression
    from pyimzml.ImzMLWriter import ImzMLWriter

    with ImzMLWriter(str(tmp_path / "zlib.imzML"), mode="processed", intensity_compression=ZlibCompression()) as w:
        for r, c, m, i in pixels:
            w.addSpectrum(m, i, (c + 1, r + 1, 1))
    with pytest.raises(DataError, match=r"zlib\.imzML: its binary arrays \(intensityArray\) are stored compressed "
                                        r"\(zlib compression\), which this reader does not decompress"):
        imzml.read_ion_images(tmp_path / "zlib.imzML", [760.58])


def test_imzml_grids_cut_from_a_larger_raster_or_on_a_coarser_step(tmp_path, caplog):
    """Coordinates from x = 201 read as a speck in a corner of a 305 x 207 grid (from x = 5001: refused as a stray
    pixel); a raster stepping by 3 as isolated pixels one in nine; a file declared continuous whose spectra hold
    different m/z arrays read every pixel at the first spectrum's m/z."""
    mzs = np.array([700.0, 760.58])
    pixels = [(r, c, mzs, np.array([1.0, 10.0 * r + c], dtype=np.float32)) for r in range(5) for c in range(7)]
    reference = imzml.read_ion_images(imzml.write_imzml(tmp_path / "ref.imzML", pixels, mode="processed"), [760.58])
    for name, move in (("offset", lambda r, c: (r + 300, c + 200)), ("far", lambda r, c: (r + 9000, c + 5000)),
                       ("stride", lambda r, c: (3 * r, 3 * c)), ("both", lambda r, c: (2 * r + 40, 3 * c + 11))):
        moved = [(*move(r, c), m, i) for r, c, m, i in pixels]
        caplog.clear()
        with caplog.at_level("WARNING"):
            got = imzml.read_ion_images(imzml.write_imzml(tmp_path / f"{name}.imzML", moved, mode="processed"),
                                        [760.58])
        assert got.values.shape == (5, 7, 1) and got.mask.all(), name
        np.testing.assert_array_equal(got.values, reference.values)
        assert f"{name}.imzML: the spectra's coordinates start at x = " in caplog.text and "read on their own grid " \
            "of 5 x 7 pixels" in caplog.text, caplog.text
        # where each pixel lies in the file (enhance.json keeps it: maps written back are placed by it)
        x0, y0, sx, sy = (got.grid[k] for k in ("x0", "y0", "x_step", "y_step"))
        assert {(y0 + r * sy - 1, x0 + c * sx - 1) for r in range(5) for c in range(7)} == \
            {move(r, c) for r in range(5) for c in range(7)}, (name, got.grid)
    assert reference.grid == imzml.pixel_grid() and got.grid["x_step"] == 3 and got.grid["y0"] == 41
    assert "both.imzML: the spectra's coordinates start at x = 12, y = 41 and step by 3 in x, 2 in y: read on their " \
           "own grid of 5 x 7 pixels (each map pixel 3 coordinate steps wide and 2 high: the maps and their panels " \
           "are squeezed 3:2 across" in caplog.text, caplog.text
    shifted = [(r, c, mzs + (0.3 if r >= 2 else 0.0), i) for r, c, _, i in pixels]
    liar = imzml.write_imzml(tmp_path / "liar.imzML", shifted, mode="processed")
    text = liar.read_text()
    liar.write_text(text.replace('accession="IMS:1000031" name="processed"', 'accession="IMS:1000030" name="continuous"'))
    assert 'name="continuous"' in liar.read_text()
    caplog.clear()
    with caplog.at_level("WARNING"):
        got = imzml.read_ion_images(liar, [760.58])
    assert not got.values[2:].any() and got.values[:2].any()  # rows 2-4 hold 760.88, not 760.58
    assert "liar.imzML: declared continuous (one m/z array for every spectrum), but its spectra point to" in caplog.text


def test_the_model_channel_count_settles_a_layout_the_shape_leaves_open(tmp_path):
    """A one-row map (1, W, C) read as one channel; an (H, W, C) array in a TIFF (a page per row) as H channels."""
    import tifffile

    a = np.random.default_rng(3).random((40, 48, 5)).astype(np.float32)
    np.save(tmp_path / "row.npy", a[20:21])
    assert arrays.read_array_stack(tmp_path / "row.npy", channels=5).values.shape == (1, 48, 5)
    tifffile.imwrite(tmp_path / "hwc.tif", a)
    got = arrays.read_array_stack(tmp_path / "hwc.tif", channels=5)
    assert got.values.shape == (40, 48, 5) and np.array_equal(got.values, a)
    np.save(tmp_path / "chw.npy", np.moveaxis(a, 2, 0))  # channels first, as before
    assert np.array_equal(arrays.read_array_stack(tmp_path / "chw.npy", channels=5).values, a)


def test_array_stacks_in_every_layout(tmp_path):
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(1)
    cube = rng.random((6, 7, 3)).astype(np.float32)
    np.save(tmp_path / "s.npy", cube)
    got = arrays.read_array_stack(tmp_path / "s.npy")
    assert isinstance(got.values, np.memmap) and np.array_equal(got.values, cube)
    np.save(tmp_path / "one.npy", cube[..., 0])
    assert arrays.read_array_stack(tmp_path / "one.npy").shape == (6, 7, 1)
    np.savez(tmp_path / "z.npz", values=cube, other=cube)
    assert np.array_equal(arrays.read_array_stack(tmp_path / "z.npz").values, cube)
    tifffile.imwrite(tmp_path / "t.tif", np.moveaxis(cube, 2, 0), photometric="minisblack")  # 3 pages
    assert np.array_equal(arrays.read_array_stack(tmp_path / "t.tif").values, cube)
    folder = tmp_path / "pngs"
    folder.mkdir()
    u16 = (cube * 60000).astype(np.uint16)
    for c, name in enumerate(["760.58", "782.57", "798.54"]):
        Image.fromarray(u16[..., c]).save(folder / f"{name}.png")
    stack = arrays.read_array_stack(folder)
    assert np.array_equal(stack.values, u16) and stack.labels == ["760.58", "782.57", "798.54"]
    (tmp_path / "s.channels.txt").write_text("a\nb\nc\n")
    assert arrays.read_array_stack(tmp_path / "s.npy").labels == ["a", "b", "c"]


def test_channels_first_arrays_are_turned_and_png_channels_keep_their_numeric_order(tmp_path, caplog):
    from PIL import Image

    from latentbridge.data.spatial import read_section

    rng = np.random.default_rng(2)
    cube = rng.random((40, 48, 5)).astype(np.float32) + 0.1
    np.save(tmp_path / "cf.npy", np.moveaxis(cube, 2, 0))  # (5, 40, 48), as torch and many exporters write it
    with caplog.at_level("WARNING"):
        got = arrays.read_array_stack(tmp_path / "cf.npy")
    assert got.shape == (40, 48, 5) and np.array_equal(got.values, cube)
    assert "read as (channels, height, width) = (5, 40, 48)" in caplog.text and "cf.npy" in caplog.text
    np.save(tmp_path / "cf.truth.npy", np.moveaxis(cube * 2, 2, 0))  # its clean maps, the same layout
    sec = read_section(tmp_path / "cf.npy", truth=tmp_path / "cf.truth.npy")
    assert sec.values.shape == sec.truth.shape == (40, 48, 5) and np.allclose(sec.truth, cube * 2)
    # channel labels decide an ambiguous layout: 8 labels for the first axis, or 40 for the last
    strip = rng.random((8, 40, 40)).astype(np.float32)
    np.save(tmp_path / "strip.npy", strip)
    (tmp_path / "strip.channels.txt").write_text("\n".join(str(i) for i in range(40)) + "\n")
    assert arrays.read_array_stack(tmp_path / "strip.npy").shape == (8, 40, 40)  # an 8-pixel strip, 40 channels
    (tmp_path / "strip.channels.txt").write_text("\n".join(str(i) for i in range(8)) + "\n")
    assert arrays.read_array_stack(tmp_path / "strip.npy").shape == (40, 40, 8)
    (tmp_path / "strip.channels.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="2 channel labels for 40 channels"):
        arrays.read_array_stack(tmp_path / "strip.npy")
    # a small first axis that is not far shorter than the others stays the height
    np.save(tmp_path / "hwc.npy", rng.random((12, 30, 30)).astype(np.float32))
    assert arrays.read_array_stack(tmp_path / "hwc.npy").shape == (12, 30, 30)
    # ... and where it could as well be the channels (20 ion images of 36 x 48 saved channels first), the reading
    # is said with how to settle it (trained as 48 channels of 20 x 36 maps without a word)
    sub = tmp_path / "cf20"
    sub.mkdir()
    np.save(sub / "s1.npy", rng.random((20, 36, 48)).astype(np.float32))
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert arrays.read_array_stack(sub / "s1.npy").shape == (20, 36, 48)
    assert "read as (height, width, channels) = (20, 36, 48), the documented layout; if its first axis holds the " \
           "channels (saved channels first), list them in NAME.channels.txt" in caplog.text
    folder = tmp_path / "ions"
    folder.mkdir()
    for i in (8, 9, 10, 11):  # lexicographic order would read ch_10 and ch_11 before ch_8
        Image.fromarray(np.full((6, 7), i * 10, np.uint8)).save(folder / f"ch_{i}.png")
    stack = arrays.read_array_stack(folder)
    assert stack.labels == ["ch_8", "ch_9", "ch_10", "ch_11"] and list(stack.values[0, 0]) == [80, 90, 100, 110]
    rgb = np.zeros((6, 7, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(folder / "ch_12.png")  # a colour channel image: its colour is dropped, and said
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert arrays.read_array_stack(folder).shape == (6, 7, 5)
    assert "ch_12.png: a colour image (RGB), read as grey levels" in caplog.text
    # palette PNGs: of greys, read silently; of a colour map whose brightness rises with the index (hot), read with the
    # warning RGB gets; of jet, refused: read as grey its top value read darker than its middle (both were read
    # without a word)
    (folder / "ch_12.png").unlink()
    x = np.linspace(0, 1, 256)
    maps = {"grey": np.stack([x, x, x], -1), "hot": np.stack([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1),
                                                                np.clip(3 * x - 2, 0, 1)], -1),
            "jet": np.stack([np.clip(1.5 - np.abs(4 * x - k), 0, 1) for k in (3, 2, 1)], -1)}
    ramp = np.tile(np.arange(0, 256, 6, dtype=np.uint8)[:42].reshape(6, 7), 1)
    for name, cmap in maps.items():
        im = Image.fromarray(ramp, "P")
        im.putpalette((cmap * 255).round().astype(np.uint8).ravel().tolist())
        im.save(folder / f"ch_13_{name}.png")
    caplog.clear()
    (folder / "ch_13_jet.png").rename(tmp_path / "ch_13_jet.png")
    with caplog.at_level("WARNING"):
        stack = arrays.read_array_stack(folder)
    assert stack.shape == (6, 7, 6) and stack.labels[-2:] == ["ch_13_grey", "ch_13_hot"]
    np.testing.assert_array_equal(stack.values[..., 4], ramp)  # the grey palette: its levels, as they were
    assert np.all(np.diff(stack.values[..., 5].ravel().astype(int)) >= 0)  # hot: the index order kept
    assert "ch_13_hot.png: a colour image (a palette of colours whose brightness rises with the index), read as " \
           "grey levels" in caplog.text and "ch_13_grey" not in caplog.text
    (tmp_path / "ch_13_jet.png").rename(folder / "ch_13_jet.png")
    with pytest.raises(DataError, match="ch_13_jet.png: a colour-mapped PNG \\(a palette\\) whose brightness does not "
                                        "rise with its index"):
        arrays.read_array_stack(folder)
    jet = Image.open(folder / "ch_13_jet.png").convert("L")
    assert (np.asarray(jet)[0, 0], np.asarray(jet)[3, 5], np.asarray(jet)[5, 6]) == (15, 224, 49)  # 0, 156, 246


def test_messages_name_the_file_that_causes_the_problem(tmp_path, caplog):
    """They named the section for an empty mask, no file for a PNG of another size or a section of another
    channel count, and passed on numpy's advice to unpickle a file that is not an array."""
    from PIL import Image

    from latentbridge.config.sections import SpatialDataConfig
    from latentbridge.data.spatial import load_sections, read_section

    (tmp_path / "garbage.npy").write_text("not an array\n")
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name in ("garbage.npy", "objects.npy"):
        with pytest.raises(DataError, match=f"{name}: cannot read the array: not a NumPy array of numbers") as e:
            arrays.read_array_stack(tmp_path / name)
        assert "allow_pickle" not in str(e.value)
    np.save(tmp_path / "s.npy", np.ones((6, 7, 2), np.float32))
    with caplog.at_level("WARNING"):
        assert read_section(tmp_path / "s.npy").valid.all()  # no mask beside it: said how the region is read
    assert "s.npy: no mask (NAME.mask.npy or .png beside it): the 42 of 42 pixels with a non-zero value" in caplog.text
    np.save(tmp_path / "empty.npy", np.zeros((6, 7), np.uint8))
    with pytest.raises(DataError, match=r"empty\.npy: the mask of s\.npy marks no pixel as valid"):
        read_section(tmp_path / "s.npy", mask=tmp_path / "empty.npy")
    folder = tmp_path / "pngs"
    folder.mkdir()
    for name, shape in (("a.png", (6, 7)), ("b.png", (6, 7)), ("c.png", (7, 6))):
        Image.fromarray(np.ones(shape, np.uint8)).save(folder / name)
    with pytest.raises(DataError, match=r"c\.png is \(7, 6\) against a\.png's \(6, 7\)"):
        arrays.read_array_stack(folder)
    root = tmp_path / "sections"
    root.mkdir()
    for i, c in enumerate((3, 3, 4)):
        np.save(root / f"sec_{i}.npy", np.ones((40, 40, c), np.float32))
    with pytest.raises(DataError, match=r"different channel counts \[3, 4\]: sec_2\.npy \(4\) against 3"):
        load_sections(SpatialDataConfig(root=str(root), format="arrays", test_sections=["sec_0"]))


def test_masks_and_array_errors(tmp_path):
    from PIL import Image

    m = np.zeros((6, 7), dtype=np.uint8)
    m[1:5, 2:6] = 255
    np.save(tmp_path / "s.npy", np.ones((6, 7, 2)))
    Image.fromarray(m).save(tmp_path / "s.mask.png")
    found = arrays.find_mask(tmp_path / "s.npy")
    assert found == tmp_path / "s.mask.png"
    np.save(tmp_path / "UP.NPY", np.ones((6, 7, 2)))  # names in any case, as the extension is read
    Image.fromarray(m).save(tmp_path / "UP.MASK.PNG", format="PNG")
    assert arrays.find_mask(tmp_path / "UP.NPY") == tmp_path / "UP.MASK.PNG"
    assert arrays.find_mask(tmp_path / "nothing.npy") is None
    mask = arrays.read_mask(found, (6, 7))
    assert mask.dtype == bool and mask.sum() == 16
    with pytest.raises(DataError, match="does not match"):
        arrays.read_mask(found, (7, 6))
    nan = np.ones((3, 3, 2))
    nan[1, 2, 1] = np.nan  # a pixel without a measurement
    np.save(tmp_path / "nan.npy", nan)
    for mmap in (False, True):
        st = arrays.read_array_stack(tmp_path / "nan.npy", mmap=mmap)
        assert np.argwhere(st.missing).tolist() == [[1, 2]] and np.isfinite(st.values).all()
    nan[0, 0, 0] = -np.inf
    np.save(tmp_path / "inf.npy", nan)
    with pytest.raises(DataError, match=r"inf\.npy: holds infinite values \(the first at row 0, column 0, channel 0\)"):
        arrays.read_array_stack(tmp_path / "inf.npy")
    np.save(tmp_path / "soft.npy", np.where(np.arange(12).reshape(3, 4) > 5, 0.8, 0.1))  # probabilities
    assert arrays.read_mask(tmp_path / "soft.npy").sum() == 6
    np.save(tmp_path / "labels.npy", np.array([[0, 1], [2, 3]]))  # region labels: every region is valid
    assert arrays.read_mask(tmp_path / "labels.npy").sum() == 3
    np.save(tmp_path / "flat.npy", np.ones(5))
    with pytest.raises(DataError, match="shape"):
        arrays.read_array_stack(tmp_path / "flat.npy")
    with pytest.raises(DataError, match="unknown array format"):
        (tmp_path / "x.csv").write_text("1,2")
        arrays.read_array_stack(tmp_path / "x.csv")



def test_an_anti_aliased_png_mask_is_cut_at_half(tmp_path):
    """An anti-aliased drawing saved as an 8-bit PNG made every non-zero pixel valid (its soft edge too); 0/1 and 0/255
    PNGs and region labels stay as they are."""
    from PIL import Image

    yy, xx = np.mgrid[:20, :20]
    r = np.hypot(yy - 10, xx - 10)
    aa = np.clip((8 - r) * 64 + 128, 0, 255).astype(np.uint8)  # a disc of radius 8 with a 4-px soft edge
    Image.fromarray(aa).save(tmp_path / "aa.mask.png")
    Image.fromarray((aa.astype(np.uint16) * 257)).save(tmp_path / "aa16.mask.png")
    assert (aa > 0).sum() == 305 and (aa >= 128).sum() == 197
    assert arrays.read_mask(tmp_path / "aa.mask.png").sum() == 197
    assert arrays.read_mask(tmp_path / "aa16.mask.png").sum() == 197
    for name, values in (("bin", (aa >= 128).astype(np.uint8)), ("b255", (aa >= 128).astype(np.uint8) * 255),
                         ("labels", (aa >= 128).astype(np.uint8) + (r < 3))):  # 0/1, 0/255, regions 0, 1, 2
        Image.fromarray(values).save(tmp_path / f"{name}.mask.png")
        assert arrays.read_mask(tmp_path / f"{name}.mask.png").sum() == 197, name
    # region labels with 255 for "void" (as segmentation sets save them) are labels, not a drawing cut at half
    labels = np.zeros((20, 20), np.uint8)
    labels[2:8, 2:8], labels[2:8, 10:18], labels[10:18, 2:18], labels[18:, :5] = 1, 2, 3, 255
    Image.fromarray(labels).save(tmp_path / "void.mask.png")
    assert arrays.read_mask(tmp_path / "void.mask.png").sum() == (labels > 0).sum() == 222


def test_a_png_folder_s_channels_and_mask_are_found_in_any_case(tmp_path):
    """`Mask.png` was read as a fourth channel (only `mask*` in lower case was left out) and `.PNG` channels were not
    found ("folder holds no .png channel images")."""
    from PIL import Image

    m = np.zeros((6, 7), np.uint8)
    m[1:5, 2:6] = 255
    for name, mask, ext in (("lower", "mask.png", ".png"), ("capital", "Mask.png", ".png"), ("upper", "MASK.PNG", ".PNG")):
        folder = tmp_path / name
        folder.mkdir()
        for c in (1, 2, 3):
            Image.fromarray(np.full((6, 7), 10 * c, np.uint8)).save(folder / f"ch_{c}{ext}", format="PNG")
        Image.fromarray(m).save(folder / mask, format="PNG")
        stack = arrays.read_array_stack(folder)
        assert stack.labels == ["ch_1", "ch_2", "ch_3"] and list(stack.values[0, 0]) == [10, 20, 30], name
        assert arrays.find_mask(folder) == folder / mask
        assert arrays.read_mask(folder / mask, (6, 7)).sum() == 16

def test_a_constant_channel_is_named(tmp_path, caplog):
    """A channel holding one value on every valid pixel (an offset, an export's fill value) carries no spatial
    structure; it was named only if its range differed from training's by 100x, and never at training."""
    from latentbridge.config.sections import SpatialDataConfig
    from latentbridge.data.spatial import load_sections, read_section

    rng = np.random.default_rng(0)
    root = tmp_path / "sections"
    root.mkdir()
    for i in range(3):
        x = rng.random((24, 24, 3)).astype(np.float32)
        x[..., 1] = 5.0  # constant
        x[..., 2] = 0.0 if i == 0 else x[..., 2]  # no signal in one section
        np.save(root / f"sec_{i}.npy", x)
        np.save(root / f"sec_{i}.mask.npy", np.ones((24, 24), np.uint8))
    s = read_section(root / "sec_0.npy")
    assert (s.empty, s.constant) == ([2], [1])
    assert (read_section(root / "sec_1.npy").empty, read_section(root / "sec_1.npy").constant) == ([], [1])
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_sections(SpatialDataConfig(root=str(root), format="arrays", test_sections=["sec_0"]))
    assert caplog.text.count("channel 1 constant (one value on every valid pixel") == 3, caplog.text
    assert "sec_0.npy: no signal in channel 2" in caplog.text


def test_a_stack_whose_end_axes_both_could_be_the_channels(tmp_path):
    """Exactly one end axis holding the model's channel count: that axis; both: (H, W, C), the documented layout."""
    a = np.random.default_rng(4).random((6, 48, 5)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    assert np.array_equal(arrays.read_array_stack(tmp_path / "a.npy", channels=6).values, np.moveaxis(a, 0, 2))
    assert np.array_equal(arrays.read_array_stack(tmp_path / "a.npy", channels=5).values, a)
    b = np.random.default_rng(5).random((6, 48, 6)).astype(np.float32)
    np.save(tmp_path / "b.npy", b)
    assert np.array_equal(arrays.read_array_stack(tmp_path / "b.npy", channels=6).values, b)


def test_an_ibd_of_another_export_is_refused(tmp_path):
    """The continuous example's imzML beside the processed example's .ibd (long enough) was read as spectra: m/z
    values as intensities, every other pixel 764.6 where the right pair reads 8.5-11.4. Its UUID names the pair."""
    import shutil

    cont, proc = _example("Continuous"), _example("Processed")
    shutil.copy(cont, tmp_path / "A.imzML")
    shutil.copy(proc.with_suffix(".ibd"), tmp_path / "A.ibd")
    with pytest.raises(DataError, match=r"A\.imzML: A\.ibd belongs to another imzML: it starts with the UUID "
                                        r"9d501bdc53444916b7e97e795b02c856, this file names 554a27fa"):
        imzml.read_ion_images(tmp_path / "A.imzML", [152.9], tolerance=0.2, unit="da")
    shutil.copy(cont.with_suffix(".ibd"), tmp_path / "A.ibd")  # the right one: read
    assert imzml.read_ion_images(tmp_path / "A.imzML", [152.9], tolerance=0.2, unit="da").values.shape == (3, 3, 1)


def test_hidden_files_of_a_channel_or_section_folder_are_left_out(tmp_path):
    """macOS's ``._ch_1.png`` (AppleDouble metadata, not a PNG) in a folder of PNG channels made `enhance` fail with
    "not a readable PNG", exit 2, and a ``._s1.npy`` in a folder of sections was read as a section; image and
    recording folders never read hidden files (one rule for all)."""
    from PIL import Image

    from latentbridge.data.spatial import list_sections
    from latentbridge.utils import is_hidden

    chans = tmp_path / "chans"
    chans.mkdir()
    for i in (1, 2):
        Image.fromarray(np.full((6, 7), 10 * i, np.uint8)).save(chans / f"ch_{i}.png")
        (chans / f"._ch_{i}.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    stack = arrays.read_array_stack(chans)
    assert stack.labels == ["ch_1", "ch_2"] and list(stack.values[0, 0]) == [10, 20]
    sections = tmp_path / "sections"
    sections.mkdir()
    np.save(sections / "s1.npy", np.ones((6, 7, 2), np.float32))
    (sections / "._s1.npy").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    assert [e["path"].name for e in list_sections(sections)] == ["s1.npy"]
    assert is_hidden(tmp_path / ".git" / "x.png", tmp_path) and not is_hidden(chans / "ch_1.png", tmp_path)


@pytest.mark.parametrize("size, said", [(0, r"A\.ibd is empty \(0 bytes\)"),
                                        (10, r"A\.ibd is cut short: it holds 10 bytes, fewer than the 16 of the UUID"),
                                        (200, r"A\.ibd is truncated: it holds 200 bytes but spectrum 0")])
def test_an_empty_or_short_ibd_says_so(tmp_path, size, said):
    """An .ibd of 0 or 10 bytes was said to belong to another imzML ("it starts with the UUID , this file names
    ..."): it is empty or cut short."""
    import shutil

    cont = _example("Continuous")
    shutil.copy(cont, tmp_path / "A.imzML")
    (tmp_path / "A.ibd").write_bytes(cont.with_suffix(".ibd").read_bytes()[:size])
    with pytest.raises(DataError, match=r"A\.imzML: " + said):
        imzml.read_ion_images(tmp_path / "A.imzML", [152.9], tolerance=0.2, unit="da")


@pytest.mark.parametrize("declared", [300, 5000])
def test_a_header_grid_far_larger_than_the_spectra_is_read_from_their_coordinates(tmp_path, caplog, declared):
    """A 20 x 20 file whose header declares `max count of pixels` 300 read as 300 x 300 maps, 99.6 % without a
    spectrum; one declaring 5000 was refused, blaming spectrum 19 as "a stray coordinate". Both are read on the
    coordinates' grid with a warning; a declared margin of a few pixels (a section's border) is kept."""
    mz = np.array([700.0, 710.0])
    spectra = [(r, c, mz, np.array([r + 1.0, c + 1.0], np.float32)) for r in range(20) for c in range(20)]
    for n in (declared, 22, 45):  # 45: a wide margin (5 times the area), still the file's own grid
        path = imzml.write_imzml(tmp_path / f"h{n}.imzML", spectra, shape=(n, n))
        with caplog.at_level("WARNING"):
            res = imzml.read_ion_images(path, mz, tolerance=0.1, unit="da")
        want = 20 if n == declared else n
        assert res.values.shape == (want, want, 2) and res.mask.sum() == 400
        assert res.values[19, 4, 0] == 20.0 and res.values[19, 4, 1] == 5.0
    assert f"h{declared}.imzML: its header declares a grid of {declared} x {declared} pixels" in caplog.text
    assert "span 20 x 20: read on the coordinates' grid" in caplog.text
    assert "h22.imzML" not in caplog.text and "h45.imzML" not in caplog.text


def test_an_inverted_mask_is_named(tmp_path):
    """A mask drawn white on the background: the section was refused as 'no signal in any of the model's channels'
    (not the kind of data the model was trained on), naming the section, though every channel held signal on every
    pixel the mask left out. The mask is named, and what it marks."""
    from latentbridge.data.spatial import read_section

    rng = np.random.default_rng(0)
    tissue = np.zeros((20, 24), bool)
    tissue[4:16, 5:19] = True
    np.save(tmp_path / "s.npy", (rng.uniform(1, 2, (20, 24, 3)) * tissue[..., None]).astype(np.float32))
    np.save(tmp_path / "s.mask.npy", ~tissue)
    with pytest.raises(DataError, match=r"s\.mask\.npy: the pixels it marks valid hold no signal in any channel of "
                                        r"s\.npy, while 100% of those it leaves out do: an inverted mask\?"):
        read_section(tmp_path / "s.npy")
    np.save(tmp_path / "s.mask.npy", tissue)
    assert read_section(tmp_path / "s.npy").valid.sum() == tissue.sum()


def test_a_npz_section_holds_its_mask(tmp_path, caplog):
    """np.savez(f, values=..., mask=...): the mask was dropped, the only word 'no mask (NAME.mask.npy or .png beside
    it)', and every pixel with a value read as the section. Its 'mask' array is the mask (a file beside it wins)."""
    import logging

    from latentbridge.data.spatial import read_section

    values = np.random.default_rng(0).uniform(1, 2, (8, 9, 2)).astype(np.float32)
    mask = np.zeros((8, 9), bool)
    mask[2:6, 3:7] = True
    np.savez(tmp_path / "s.npz", values=values, mask=mask)
    with caplog.at_level(logging.WARNING):
        sec = read_section(tmp_path / "s.npz")
    assert np.array_equal(sec.valid, mask) and "no mask" not in caplog.text
    np.save(tmp_path / "s.mask.npy", np.ones((8, 9), bool))
    assert read_section(tmp_path / "s.npz").valid.all()
    np.savez(tmp_path / "t.npz", values=values)
    with pytest.raises(DataError, match=r"t\.npz: holds no array named 'mask' \(it holds values\)"):
        arrays.read_mask(tmp_path / "t.npz")


def test_intensities_below_zero_are_named(tmp_path, caplog):
    """Spectra with intensities below 0 (a baseline subtracted) were read without a word, and TIC-normalised into a
    channel 150 % of its pixel's total; an array map partly below 0 where training never was passed every check."""
    from types import SimpleNamespace

    from latentbridge.tasks.spatial_inputs import below_zero

    spectra = [(r, c, np.array([152.9, 329.0, 500.0]), np.array([-5.0 if r < 1 else 10.0, 3.0, 4.0]))
               for r in range(3) for c in range(3)]
    path = imzml.write_imzml(tmp_path / "neg.imzML", spectra)
    with caplog.at_level("WARNING"):
        imzml.read_ion_images(path, [152.9], tolerance=0.1, unit="da", normalization="tic")
    assert "3 of 9 spectra hold intensities below 0 (spectrum 0, row 0, column 0: -5)" in caplog.text
    assert "its pixels' values are no shares of it" in caplog.text
    spec = SimpleNamespace(scale=[1.0, 1.0], center=[0.0, 0.0], lower=[0.0, -0.1], upper=[10.0, 10.0])
    values = np.ones((4, 5, 2), np.float32)
    values[0, :3, :] = -2.0  # three pixels below 0 in both channels; the second's training dipped below 0 too
    section = SimpleNamespace(shape=values.shape, values=values, valid=np.ones((4, 5), bool), labels=["a", "b"])
    assert below_zero(section, spec) == ("a: values below 0 where every training section's were 0 or more (a: 3 "
                                         "pixels, the lowest -2): intensities with a baseline subtracted below 0, or "
                                         "another quantity? The model reads them as it reads counts")
    assert below_zero(SimpleNamespace(**{**vars(section), "values": np.abs(values)}), spec) is None
    assert below_zero(section, spec, skip={0}) is None  # a channel named already (out of the training range)
