"""What the figures of latentbridge.report draw.

Each plot is checked on its content: the data of the artists it drew (read from the figure as it
is saved) and, for image panels, the pixels of the PNG written to disk.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

from latentbridge.report import (
    plot_embedding,
    plot_heatmap,
    plot_image_grid,
    plot_lines,
    plot_mask_triplets,
    plot_roc,
    plot_score_histogram,
    plot_spectrogram_pairs,
    plot_waveform_overlay,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def drawn(monkeypatch):
    """The figures saved during a test, in order (their PNG files are still written)."""
    figures = []
    savefig = Figure.savefig

    def keep(fig, *args, **kwargs):
        figures.append(fig)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def _panels(fig):
    """Axes holding an image (colourbars hold none), in drawing order."""
    return [ax for ax in fig.axes if ax.images]


def _pixels(fig, ax, png, margin=3):
    """RGB pixels (float) of the PNG ``png`` inside the axes ``ax``, ``margin`` pixels in from its
    frame. The figure was saved with ``bbox_inches="tight"``: the PNG is the figure's tight
    bounding box padded by ``savefig.pad_inches``."""
    img = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64)
    renderer = fig.canvas.get_renderer()
    dpi = fig.dpi
    box = fig.get_tightbbox(renderer).padded(matplotlib.rcParams["savefig.pad_inches"])
    assert abs(img.shape[0] - box.height * dpi) < 1.5 and abs(img.shape[1] - box.width * dpi) < 1.5
    ext = ax.get_window_extent(renderer)
    x0, x1 = round(ext.x0 - box.x0 * dpi), round(ext.x1 - box.x0 * dpi)
    y0, y1 = round(box.y1 * dpi - ext.y1), round(box.y1 * dpi - ext.y0)
    assert x1 - x0 > 4 * margin and y1 - y0 > 4 * margin
    return img[y0 + margin : y1 - margin, x0 + margin : x1 - margin]


def _rgb(cmap, value):
    return 255.0 * np.asarray(matplotlib.colormaps[cmap](value)[:3])


def _assert_colour(pixels, rgb, tol=2.0):
    np.testing.assert_allclose(pixels.reshape(-1, 3), np.broadcast_to(rgb, (pixels[..., 0].size, 3)), atol=tol)


# --------------------------------------------------------------------------- anomaly


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(80, int), np.ones(20, int)]
    scores = np.r_[rng.normal(0, 1, 80), rng.normal(2, 1, 20)]
    return labels, scores


def _roc_line(fig):
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_label().startswith("ROC")]
    return line


@pytest.mark.parametrize("kind", ["mixed", "perfect", "random"])
def test_roc_draws_the_roc_curve(tmp_path, drawn, scored, kind):
    labels, scores = scored
    if kind == "perfect":
        scores = labels + 0.1 * np.random.default_rng(1).random(labels.size)
    elif kind == "random":
        labels = np.random.default_rng(2).integers(0, 2, 4000)
        scores = np.random.default_rng(3).random(4000)
    path = plot_roc(labels, scores, tmp_path / "figs" / "roc.png", title="ROC", max_fpr=0.2)
    assert _is_png(path) and len(drawn) == 1
    fig = drawn[0]
    line = _roc_line(fig)
    fpr, tpr, _ = roc_curve(labels, scores)
    np.testing.assert_array_equal(line.get_xdata(), fpr)
    np.testing.assert_array_equal(line.get_ydata(), tpr)
    auc = roc_auc_score(labels, scores)
    assert f"AUC={auc:.3f}," in line.get_label()
    # the pAUC named as the standardised figure it is (DCASE's), not the shaded area's share
    pauc = roc_auc_score(labels, scores, max_fpr=0.2)
    assert f"pAUC={pauc:.3f} McClish-standardised: chance 0.5" in line.get_label()
    if kind == "perfect":
        assert "AUC=1.000," in line.get_label() and np.any((fpr == 0) & (tpr == 1))
    if kind == "random":
        assert abs(auc - 0.5) < 0.05
    chance = [ln for ln in fig.axes[0].lines if ln.get_label() == "chance"]
    np.testing.assert_array_equal(chance[0].get_xydata(), [[0, 0], [1, 1]])
    # the shaded pAUC area: under the curve from FPR 0 to max_fpr, never beyond
    (fill,) = fig.axes[0].collections
    verts = np.concatenate([p.vertices for p in fill.get_paths()])
    assert verts[:, 0].min() == 0.0 and verts[:, 0].max() == pytest.approx(0.2)
    assert verts[:, 1].max() == pytest.approx(np.interp(0.2, fpr, tpr))
    (span,) = fig.axes[0].patches
    sx = span.get_patch_transform().transform(span.get_path().vertices)[:, 0]
    assert sx.min() == 0.0 and sx.max() == pytest.approx(0.2)
    assert fig.axes[0].get_title() == "ROC"


def test_roc_needs_both_classes(tmp_path):
    with pytest.raises(ValueError, match="no anomalous"):
        plot_roc([0, 0], [1, 2], tmp_path / "r.png")
    assert not (tmp_path / "r.png").exists()


def _bars(fig, finite_scores):
    """{label (on its first bar): (bin edges, heights)} of each histogram drawn, after checking that its bars are
    equal-width bins spanning ``finite_scores``, the same bins for every histogram."""
    out = {}
    for c in fig.axes[0].containers:
        edges = np.histogram_bin_edges(finite_scores, bins=len(c))
        np.testing.assert_allclose([r.get_x() for r in c], edges[:-1])
        np.testing.assert_allclose([r.get_width() for r in c], np.diff(edges))
        out[c[0].get_label()] = (edges, np.array([r.get_height() for r in c]))
    assert len({len(e) for e, _ in out.values()}) == 1
    return out


def test_score_histogram_counts(tmp_path, drawn, scored):
    labels, scores = scored
    scores = scores.copy()
    scores[[3, 90]] = [np.nan, np.inf]  # one normal, one anomalous score unusable
    plot_score_histogram(scores, labels, 1.5, tmp_path / "hist.png", title="scores")
    finite = np.isfinite(scores)
    bars = _bars(drawn[0], scores[finite])
    assert set(bars) == {"normal (n=79)", "anomalous (n=19)"}
    (edges, normal), (_, anomalous) = bars["normal (n=79)"], bars["anomalous (n=19)"]
    np.testing.assert_array_equal(normal, np.histogram(scores[finite & (labels == 0)], edges)[0])
    np.testing.assert_array_equal(anomalous, np.histogram(scores[finite & (labels == 1)], edges)[0])
    assert normal.sum() == 79 and anomalous.sum() == 19
    (thr,) = drawn[0].axes[0].lines
    np.testing.assert_array_equal(thr.get_xdata(), [1.5, 1.5])
    assert thr.get_label() == "threshold=1.5"


def test_score_histogram_without_labels_or_threshold(tmp_path, drawn, scored):
    _, scores = scored
    plot_score_histogram(scores, None, None, tmp_path / "all.png")
    plot_score_histogram(scores, None, float("nan"), tmp_path / "all_nan.png")
    for fig in drawn:
        ((label, (edges, counts)),) = _bars(fig, scores).items()
        assert label == "scores (n=100)"
        np.testing.assert_array_equal(counts, np.histogram(scores, edges)[0])
        assert not fig.axes[0].lines  # no threshold line
    with pytest.raises(ValueError, match="differ in length"):
        plot_score_histogram(scores, np.zeros(3), None, tmp_path / "bad.png")


# --------------------------------------------------------------------------- audio


def test_spectrogram_pairs_panels(tmp_path, drawn):
    rng = np.random.default_rng(1)
    x = rng.random((2, 32, 40))
    y = x * 0.9 + 0.05
    path = plot_spectrogram_pairs(x, y, ["a <1>", "b"], tmp_path / "spec.png", sample_rate=16000, hop_length=256)
    assert _is_png(path)
    panels = _panels(drawn[0])
    assert len(panels) == 6
    for i in range(2):
        inp, rec, diff = (p.images[0] for p in panels[3 * i : 3 * i + 3])
        np.testing.assert_array_equal(inp.get_array(), x[i])
        np.testing.assert_array_equal(rec.get_array(), y[i])
        np.testing.assert_allclose(diff.get_array(), np.abs(x[i] - y[i]))
        both = np.concatenate([x[i].ravel(), y[i].ravel()])
        assert inp.get_clim() == rec.get_clim() == (both.min(), both.max())  # one scale per row
        assert inp.get_extent() == pytest.approx([0.0, 40 * 256 / 16000, 0, 32])
        assert inp.origin == "lower"
    assert panels[0].get_title() == "a <1>: input" and panels[3].get_title() == "b: input"
    assert panels[-1].get_xlabel() == "time (s)"
    # one (F, T) pair, no sample rate: one row, frames on the time axis
    plot_spectrogram_pairs(x[0], y[0], None, tmp_path / "one.png")
    one = _panels(drawn[1])
    assert len(one) == 3 and one[0].images[0].get_extent() == [0, 40, 0, 32]
    assert one[0].get_xlabel() == "frame" and one[0].get_title() == "#0: input"


def test_spectrogram_pairs_errors(tmp_path):
    with pytest.raises(ValueError, match="equal shapes"):
        plot_spectrogram_pairs(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)), ["x"], tmp_path / "s.png")
    with pytest.raises(ValueError, match="titles"):
        plot_spectrogram_pairs(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), ["x"], tmp_path / "s.png")
    assert not (tmp_path / "s.png").exists()


def _with_snr(reference, snr_db, rng):
    """``reference`` plus zero-mean noise orthogonal to it at ``snr_db``: SI-SDR is exactly snr_db."""
    noise = rng.normal(size=reference.shape)
    noise -= noise.mean()
    noise -= (noise @ reference) / (reference @ reference) * reference
    noise *= np.sqrt((reference @ reference) / (noise @ noise) / 10 ** (snr_db / 10))
    return reference + noise


def test_waveform_overlay_draws_each_channel(tmp_path, drawn):
    rng = np.random.default_rng(0)
    t = np.arange(800) / 400.0
    ref = np.stack([np.sin(2 * np.pi * (c + 1) * t) for c in range(6)])  # zero mean: whole periods
    snr = [5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    rec = np.stack([_with_snr(ref[c], snr[c], rng) for c in range(6)])
    path = plot_waveform_overlay(ref, rec, 400, tmp_path / "w" / "wave.png", title="recon")
    assert _is_png(path)
    axes = drawn[0].axes
    assert len(axes) == 4  # the first four channels
    for c, ax in enumerate(axes):
        orig, recon = ax.lines
        np.testing.assert_allclose(orig.get_xdata(), t)
        np.testing.assert_array_equal(orig.get_ydata(), ref[c])
        np.testing.assert_array_equal(recon.get_ydata(), rec[c])
        assert ax.get_title() == f"channel {c} (SI-SDR {snr[c]:.1f} dB)"
    assert axes[-1].get_xlabel() == "time (s)" and [t.get_text() for t in drawn[0].texts] == ["recon"]

    # chosen channels (negative ones count from the end, at most four drawn), no sample rate
    bad = rec.copy()
    bad[1, 5] = np.nan
    plot_waveform_overlay(ref, bad, None, tmp_path / "sel.png", channels=[5, -1, 1, 0, 2])
    axes = drawn[1].axes
    assert [ax.get_title() for ax in axes] == [
        "channel 5 (SI-SDR 30.0 dB)", "channel 5 (SI-SDR 30.0 dB)", "channel 1", "channel 0 (SI-SDR 5.0 dB)"]
    np.testing.assert_array_equal(axes[0].lines[0].get_xdata(), np.arange(800))
    assert axes[-1].get_xlabel() == "sample"

    # one channel given as (T,)
    plot_waveform_overlay(ref[2], rec[2], 400, tmp_path / "one.png")
    assert [ax.get_title() for ax in drawn[2].axes] == ["channel 0 (SI-SDR 15.0 dB)"]


def test_waveform_overlay_errors(tmp_path):
    ref = np.zeros((2, 50))
    with pytest.raises(ValueError, match="equal shapes"):
        plot_waveform_overlay(ref, ref[:, :10], 16000, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="out of range"):
        plot_waveform_overlay(ref, ref, 16000, tmp_path / "bad.png", channels=[2])
    with pytest.raises(ValueError, match="empty"):
        plot_waveform_overlay(ref, ref, 16000, tmp_path / "bad.png", channels=[])
    assert not (tmp_path / "bad.png").exists()
    assert not list(tmp_path.rglob("*.partial"))


# --------------------------------------------------------------------------- images


def test_image_grid_white_next_to_black(tmp_path, drawn):
    white, black = np.ones((8, 8)), np.zeros((8, 8))
    path = plot_image_grid(np.stack([white, black]), None, ["white", "black"], tmp_path / "g.png")
    assert _is_png(path)
    fig = drawn[0]
    left, right = _panels(fig)
    assert [left.get_title(), right.get_title()] == ["white", "black"]
    # magma's ends, which a blank (white) axes cannot pass for
    _assert_colour(_pixels(fig, left, path), _rgb("magma", 1.0))
    _assert_colour(_pixels(fig, right, path), _rgb("magma", 0.0))


def test_image_grid_keeps_a_strips_aspect(tmp_path, drawn):
    """A beam's crack masks (32 x 96, the bridge default) drawn with keep_aspect stay strips; by default every
    panel is square."""
    strips = np.zeros((1, 3, 32, 96))
    strips[:, :, :8] = 1.0  # the top rows: row 0 drawn at the top (origin="upper")
    plot_image_grid(strips, ["mask"], ["a", "b", "c"], tmp_path / "kept.png", cmap="gray", origin="upper",
                    keep_aspect=True)
    plot_image_grid(strips, ["mask"], ["a", "b", "c"], tmp_path / "square.png", cmap="gray", origin="upper")
    for fig, path, lo, hi in ((drawn[0], tmp_path / "kept.png", 2.4, 3.6), (drawn[1], tmp_path / "square.png", 0.7, 1.4)):
        px = _pixels(fig, _panels(fig)[0], path).mean(axis=2)
        assert lo < px.shape[1] / px.shape[0] < hi, (path.name, px.shape)
        h = px.shape[0]
        assert px[: h // 6].mean() > 200 and px[h // 2:].mean() < 50, path.name


def test_image_grid_origin_and_row_scale(tmp_path, drawn):
    top = np.zeros((8, 8))
    top[:4] = 1.0  # array rows 0-3 bright
    flat = np.full((8, 8), 3.0)
    grid = np.stack([[top, 0.5 * top], [4.0 * top, 2.0 * top], [flat, flat]])  # (3 rows, 2 columns)
    shared = plot_image_grid(grid, ["r0", "r1", ""], None, tmp_path / "shared.png", cmap="gray", origin="upper")
    own = plot_image_grid(grid, None, None, tmp_path / "own.png", cmap="gray", origin="lower", share_row_scale=False)

    fig = drawn[0]
    panels = _panels(fig)
    assert [p.get_ylabel() for p in panels] == ["r0", "", "r1", "", "", ""]
    brightest = []
    for ax in panels[:4]:
        px = _pixels(fig, ax, shared).mean(axis=2)
        h = px.shape[0]
        upper, lower = px[: h // 2 - 3], px[h // 2 + 3 :]
        np.testing.assert_allclose(lower, 0.0, atol=1.0)  # origin="upper": array row 0 at the top
        brightest.append(upper.mean())
    # each row on one scale: the half-bright panel is half as bright as its row's full one
    np.testing.assert_allclose(brightest, [255.0, 127.5, 255.0, 127.5], atol=2.0)
    for ax in panels[4:]:  # a constant row sits mid-scale
        _assert_colour(_pixels(fig, ax, shared), _rgb("gray", 0.5))

    fig = drawn[1]
    for ax in _panels(fig)[:4]:
        px = _pixels(fig, ax, own).mean(axis=2)
        h = px.shape[0]
        np.testing.assert_allclose(px[: h // 2 - 3], 0.0, atol=1.0)  # origin="lower": row 0 at the bottom
        np.testing.assert_allclose(px[h // 2 + 3 :], 255.0, atol=1.0)  # own scale: every panel full range


def test_image_grid_value_range_draws_a_flat_reconstruction_grey(tmp_path, drawn):
    """Images in [0, 1] on one scale: a nearly flat reconstruction (0.45-0.53) was stretched to black and white on
    its row's own scale, a texture beside an input it did not have."""
    flat = np.tile(np.linspace(0.45, 0.53, 8), (8, 1))
    digit = np.zeros((8, 8))
    digit[2:6, 3:5] = 1.0
    path = plot_image_grid(np.stack([[digit], [flat]]), ["input", "reconstruction"], None, tmp_path / "r.png",
                           cmap="gray", origin="upper", value_range=(0.0, 1.0))
    fig = drawn[0]
    px = _pixels(fig, _panels(fig)[1], path).mean(axis=2)
    assert 100 < px.min() and px.max() < 150, (px.min(), px.max())  # grey throughout (0.45-0.53 of 255)


def test_image_grid_errors(tmp_path):
    imgs = np.zeros((2, 5, 4, 4))
    with pytest.raises(ValueError, match="column titles"):
        plot_image_grid(imgs, None, ["a"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="row titles"):
        plot_image_grid(imgs, ["a"], None, tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\(R, K, H, W\)"):
        plot_image_grid(np.zeros((4, 4)), None, None, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="origin"):
        plot_image_grid(imgs, None, None, tmp_path / "bad.png", origin="left")
    assert not (tmp_path / "bad.png").exists()


def test_mask_triplets_pixels(tmp_path, drawn):
    full, empty = np.ones((16, 16)), np.zeros((16, 16))
    half = empty.copy()
    half[:8] = 1.0  # the top half
    targets = np.stack([full, empty, half])
    probs = np.stack([empty, full, 0.9 * half])
    path = plot_mask_triplets(None, targets, probs, ["white", "black", "half"], tmp_path / "m.png")
    assert _is_png(path)
    fig = drawn[0]
    panels = _panels(fig)
    assert len(panels) == 9
    px = [_pixels(fig, ax, path) for ax in panels]
    white, black = _rgb("gray", 1.0), _rgb("gray", 0.0)
    _assert_colour(px[0], white)  # target: all white
    _assert_colour(px[1], _rgb("viridis", 0.0))  # probability 0
    _assert_colour(px[2], black)  # nothing above the threshold
    _assert_colour(px[3], black)  # target: all black
    _assert_colour(px[4], _rgb("viridis", 1.0))
    _assert_colour(px[5], white)
    for k, colour_top in ((6, white), (7, _rgb("viridis", 0.9)), (8, white)):  # row 0 at the top
        h = px[k].shape[0]
        _assert_colour(px[k][: h // 2 - 3], colour_top)
        _assert_colour(px[k][h // 2 + 3 :], black if k != 7 else _rgb("viridis", 0.0))
    assert [panels[k].get_title() for k in (0, 2, 5, 8)] == [
        "white: target", "> 0.5: IoU 0.000", "> 0.5: IoU 0.000", "> 0.5: IoU 1.000"]


def test_mask_triplets_inputs_and_threshold(tmp_path, drawn):
    target = np.zeros((2, 1, 16, 16))
    target[:, :, :, :8] = 1.0  # the left half
    prob = 0.7 * target
    colour = np.ones((2, 3, 16, 16))  # channel-first RGB
    colour[0] *= np.array([3.0, 2.0, 1.0])[:, None, None]  # outside [0, 1]: scaled into it
    colour[1] *= np.array([0.2, 0.4, 0.6])[:, None, None]  # inside: drawn as it is
    path = plot_mask_triplets(colour, target, prob, None, tmp_path / "m.png", threshold=0.6)
    fig = drawn[0]
    panels = _panels(fig)
    assert len(panels) == 8 and panels[0].get_title() == "#0: input"
    _assert_colour(_pixels(fig, panels[0], path), [255.0, 127.5, 0.0], tol=1.0)
    _assert_colour(_pixels(fig, panels[4], path), [51.0, 102.0, 153.0], tol=1.0)
    assert panels[3].get_title() == "> 0.6: IoU 1.000"
    np.testing.assert_array_equal(panels[3].images[0].get_array(), target[0, 0])
    # a threshold above the predicted probability leaves nothing: IoU 0
    plot_mask_triplets(target[:, 0], target, prob, ["a", "b"], tmp_path / "m2.png", threshold=0.75)
    panels = _panels(drawn[1])
    assert panels[0].get_title() == "a: input" and panels[3].get_title() == "> 0.75: IoU 0.000"
    np.testing.assert_array_equal(panels[3].images[0].get_array(), np.zeros((16, 16)))


def test_mask_triplets_errors(tmp_path):
    masks = np.zeros((3, 16, 16))
    with pytest.raises(ValueError, match="titles"):
        plot_mask_triplets(None, masks, masks, ["x"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="differ in shape"):
        plot_mask_triplets(None, masks, masks[:2], None, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="inputs must be"):
        plot_mask_triplets(np.zeros((2, 16, 16)), masks, masks, None, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# --------------------------------------------------------------------------- embedding, lines, heatmap


def test_embedding_scatter(tmp_path, drawn):
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(60, 2))
    values = rng.random(60)
    plot_embedding(pts, values, tmp_path / "cont.png", "continuous", label="damage")
    (coll,) = drawn[0].axes[0].collections
    np.testing.assert_array_equal(coll.get_offsets(), pts)
    np.testing.assert_array_equal(coll.get_array(), values)  # coloured by value
    assert drawn[0].axes[1].get_ylabel() == "damage"  # the colourbar

    ids = np.array(["test_c", "test_a", "test_b"])[rng.integers(0, 3, 60)]
    plot_embedding(pts, ids, tmp_path / "cat.png", "by test", categorical=True, label="test id")
    colls = drawn[1].axes[0].collections
    assert [c.get_label() for c in colls] == [f"{k} (n={(ids == k).sum()})" for k in ("test_a", "test_b", "test_c")]
    for c, k in zip(colls, ("test_a", "test_b", "test_c")):
        np.testing.assert_array_equal(c.get_offsets(), pts[ids == k])
    colours = {tuple(c.get_facecolor()[0]) for c in colls}
    assert len(colours) == 3  # one colour each
    assert drawn[1].axes[0].get_legend().get_title().get_text() == "test id"

    many = np.arange(60) % 18  # more categories than tab10 has colours; sorted as numbers
    plot_embedding(pts, many, tmp_path / "many.png", "", categorical=True)
    colls = drawn[2].axes[0].collections
    assert [c.get_label() for c in colls] == [f"{k} (n={(many == k).sum()})" for k in range(18)]
    assert len({tuple(c.get_facecolor()[0]) for c in colls}) == 18  # tab20: a colour each

    plot_embedding(pts, None, tmp_path / "plain.png", "plain")
    (coll,) = drawn[3].axes[0].collections
    np.testing.assert_array_equal(coll.get_offsets(), pts)
    assert drawn[3].axes[0].get_title() == "plain"


def _looks(coll):
    """(colour, marker outline) of a scatter: what tells its points from another's."""
    return tuple(np.round(coll.get_facecolor()[0], 4)), tuple(np.round(coll.get_paths()[0].vertices, 3).ravel())


def test_embedding_of_many_categories_repeats_no_look_and_keeps_its_legend_outside(tmp_path, drawn):
    """75 held-out tests: tab20 drew tests 0 and 20 in one colour, and the 75-entry legend covered the points."""
    rng = np.random.default_rng(5)
    pts = rng.normal(size=(300, 2))
    tests = np.array([f"Test_{i:03d}" for i in range(75)])[np.arange(300) % 75]
    plot_embedding(pts, tests, tmp_path / "tests.png", "latent by test", categorical=True, label="test")
    fig = drawn[0]
    ax = fig.axes[0]
    colls = ax.collections
    assert len(colls) == 75 and len({_looks(c) for c in colls}) == 75  # no colour and marker meaning two tests
    assert len({_looks(c)[0] for c in colls}) == 10  # tab10's colours, each with several markers
    legend = ax.get_legend()
    assert len(legend.get_texts()) == 75 and legend.get_title().get_text() == "test"
    r = fig.canvas.get_renderer()
    assert legend.get_window_extent(r).x0 >= ax.get_window_extent(r).x1  # beside the axes, not over the points
    assert ax.get_title() == "latent by test"

    many = np.arange(300) % 120  # more than colour and marker pairs: one continuous map, no legend
    plot_embedding(pts, many, tmp_path / "many.png", "latent by test", categorical=True)
    ax = drawn[1].axes[0]
    (coll,) = ax.collections
    np.testing.assert_array_equal(coll.get_array(), many)  # coloured by the category's place in order
    assert ax.get_legend() is None and ax.get_title() == "latent by test (120 categories, coloured in order: no legend)"
    assert [t.get_text() for t in drawn[1].axes[1].get_yticklabels()] == ["0", "119"]


def test_embedding_errors(tmp_path):
    pts = np.zeros((5, 2))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot_embedding(np.zeros((5, 3)), None, tmp_path / "bad.png", "")
    with pytest.raises(ValueError, match="colors"):
        plot_embedding(pts, np.zeros(4), tmp_path / "bad.png", "")
    with pytest.raises(ValueError, match="no points"):
        plot_embedding(np.zeros((0, 2)), None, tmp_path / "bad.png", "")


def test_lines(tmp_path, drawn):
    ys = {"train": [5, 4, 3, 2.5, 2], "val": [6, 5, 4, 3.8, 3.9]}
    plot_lines(np.arange(1, 6), ys, tmp_path / "loss.png", "epoch", "loss", "loss curves")
    ax = drawn[0].axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["train", "val"]
    for ln, v in zip(ax.lines, ys.values()):
        np.testing.assert_array_equal(ln.get_xydata(), np.column_stack([np.arange(1, 6), v]))
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("epoch", "loss", "loss curves")
    assert ax.get_yscale() == "linear"
    plot_lines(None, {"loss": [1.0, 0.5, 0.1]}, tmp_path / "log.png", logy=True)
    ax = drawn[1].axes[0]
    np.testing.assert_array_equal(ax.lines[0].get_xydata(), [[0, 1.0], [1, 0.5], [2, 0.1]])
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="x has 2"):
        plot_lines([0, 1], {"a": [1, 2, 3]}, tmp_path / "l.png")
    with pytest.raises(ValueError, match="at least one"):
        plot_lines(None, {}, tmp_path / "l.png")


def test_heatmap(tmp_path, drawn):
    m = np.array([[0.0, 0.25, 1.0], [0.5, 0.75, 0.125]])
    path = plot_heatmap(m, ["a", "b"], ["x", "y", "z"], tmp_path / "h.png", title="rates", fmt=".1f")
    assert _is_png(path)
    ax = drawn[0].axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), m)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y", "z"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert {k: t.get_text() for k, t in cells.items()} == {
        (r, c): format(m[r, c], ".1f") for r in range(2) for c in range(3)}
    # dark text on the bright cells (above 0.6 of the maximum), light text on the others
    assert [cells[(r, c)].get_color() for r, c in ((0, 2), (1, 1), (1, 0))] == ["black", "black", "white"]
    with pytest.raises(ValueError, match="does not match"):
        plot_heatmap(m, ["a"], ["x", "y", "z"], tmp_path / "bad.png")


def test_east_asian_file_names_are_drawn_not_boxed(tmp_path):
    """A title with Chinese / Japanese letters (a user's file name) is drawn with an installed font that has
    them (CI installs fonts-wqy-zenhei); with DejaVu Sans alone matplotlib warns of every missing glyph."""
    import warnings

    from latentbridge.report import plot_roc
    from latentbridge.report.common import _installed_wide_fonts

    if not _installed_wide_fonts():
        pytest.skip("no font with CJK letters installed (Debian: fonts-wqy-zenhei)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_roc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], tmp_path / "roc.png", title="录音_01.wav / 振動センサー")
    assert (tmp_path / "roc.png").stat().st_size > 0
    assert not [w for w in caught if "missing from" in str(w.message)]


def test_east_asian_file_names_laid_out_without_glyph_warnings(tmp_path, drawn):
    """Figures laid out before saving (tight_layout: spectrograms, waveforms, maps) drew their texts in DejaVu Sans
    first: a false "Glyph 24405 missing from font(s) DejaVu Sans" warning for every letter of the name."""
    import warnings

    from latentbridge.report.common import _installed_wide_fonts

    if not _installed_wide_fonts():
        pytest.skip("no font with CJK letters installed (Debian: fonts-wqy-zenhei)")
    x = np.random.default_rng(0).random((1, 8, 10))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_spectrogram_pairs(x, x, ["录音_01.wav"], tmp_path / "spec.png")
        plot_waveform_overlay(x[0], x[0], 8000, tmp_path / "wave.png", title="振動センサー.wav")
    assert [str(w.message) for w in caught] == []
    title = _panels(drawn[0])[0].title
    assert title.get_text() == "录音_01.wav: input"
    assert title.get_fontfamily().count(_installed_wide_fonts()[0]) == 1  # given once, not again when saved


def test_a_letter_no_font_has_is_drawn_without_a_warning(tmp_path):
    """An emoji in a file name (no installed font has it) is drawn as a box: matplotlib warned twice a figure, in
    words that named no file and read as the toolkit's own."""
    import warnings

    from latentbridge.report import plot_roc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        plot_roc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], tmp_path / "roc.png", title="\U0001f3b5 pump.wav")
        plot_spectrogram_pairs(np.ones((1, 4, 5)), None, ["\U0001f3b5 pump.wav"], tmp_path / "spec.png")
    assert _is_png(tmp_path / "roc.png") and _is_png(tmp_path / "spec.png")
    assert [str(w.message) for w in caught] == []


def test_names_with_dollar_signs_are_drawn_as_written(tmp_path, drawn):
    """matplotlib reads the text between two `$` as mathematics: a file name `pump_$12_to_$15.wav` or a test id
    `T_$1_$2` in a title stopped `anomaly score` and `evaluate` with a parse error after all the work."""
    rng = np.random.default_rng(0)
    x = rng.random((1, 16, 20))
    plot_spectrogram_pairs(x, x, ["pump_$12_to_$15.wav"], tmp_path / "spec.png")
    assert _panels(drawn[0])[0].get_title() == "pump_$12_to_$15.wav: input"
    masks = (rng.random((1, 8, 10)) > 0.5).astype(float)
    plot_mask_triplets(None, masks, masks, ["T_$1_$2 \\frac{a}{b}$"], tmp_path / "masks.png")
    plot_image_grid(rng.random((1, 2, 8, 8)), ["$x$"], ["a$", "$b"], tmp_path / "grid.png")
    assert all(_is_png(tmp_path / f) for f in ("spec.png", "masks.png", "grid.png"))


def test_map_panels_keep_their_colour_range_where_the_input_has_gaps(tmp_path, drawn):
    """An inpainting's input holds NaN where it has gaps: the row's colour range was NaN and every shared panel one
    flat colour (values 4 to 462 drawn against a bar from -0.1 to 0.1)."""
    from latentbridge.report.maps import plot_map_panels

    rng = np.random.default_rng(3)
    truth = 4 + 458 * rng.random((20, 24))
    given = truth.copy()
    given[5:9, 6:12] = np.nan
    plot_map_panels([[given, truth, rng.random((20, 24))]], ["input", "enhanced", "uncertainty"], ["s"],
                    tmp_path / "panels.png", shared=[True, True, False])
    inp, out, _ = (p.images[0] for p in _panels(drawn[0]))
    lo, hi = inp.get_clim()
    assert out.get_clim() == (lo, hi) and np.isfinite([lo, hi]).all() and 4 <= lo < 20 and 440 < hi <= 462


def test_map_panels_spread_on_one_scale_gaps_grey_outside_blank(tmp_path, drawn):
    """σ and |error| were each stretched to their own top (a σ of 9 and an error of 70 drawn in one colour), in
    magma, whose top is the near-white of the blank outside a section; an input's gaps were blank too."""
    from latentbridge.report.maps import plot_map_panels

    rng = np.random.default_rng(4)
    truth = 10 + 90 * rng.random((30, 40))
    given = truth.copy()
    given[10:20, 10:20] = np.nan  # a gap inside the section
    region = np.ones((30, 40), dtype=bool)
    region[:, 30:] = False  # outside the section
    sigma, error = 9 * rng.random((30, 40)), 70 * rng.random((30, 40))
    path = plot_map_panels([[given, truth, sigma, error]], ["input", "truth", "σ", "|error|"], ["m/z 1"],
                           tmp_path / "p.png", shared=[True, True, False, False], masks=[region])
    fig = drawn[0]
    inp, _, sig, err = _panels(fig)
    assert sig.images[0].get_clim() == err.images[0].get_clim()  # one scale for σ and |error|
    lo, hi = sig.images[0].get_clim()
    assert lo == 0.0 and 69 < hi <= 70
    top = np.asarray(sig.images[0].get_cmap()(1.0)[:3])
    assert np.abs(top - 1.0).max() > 0.3  # the scale's top is no near-white
    px = _pixels(fig, inp, path, margin=0)
    h, w = px.shape[:2]
    _assert_colour(px[int(h * 15 / 30), int(w * 15 / 40)][None], [153.0, 153.0, 153.0])  # the gap: grey
    _assert_colour(px[int(h * 15 / 30), int(w * 35 / 40)][None], [255.0, 255.0, 255.0])  # outside: blank


def test_latent_maps_outside_the_section_grey_not_the_white_of_zero(tmp_path, drawn):
    """The latent maps' diverging scale is white at 0, and the pixels outside a section were blank (white) too: a
    section's zero latents and the background could not be told apart. Outside is dark grey, and a NaN latent inside
    the section (a gap) light grey: they were the same grey."""
    from latentbridge.report.maps import plot_latent_maps

    latent = np.zeros((30, 40, 2))
    latent[:, :10, 0], latent[:, :10, 1] = 1.0, -1.0  # a band of each sign; the middle 0 (white)
    latent[:, 22:26] = np.nan  # a gap inside the section
    region = np.ones((30, 40), dtype=bool)
    region[:, 30:] = False  # outside the section
    path = plot_latent_maps(latent, tmp_path / "latent.png", mask=region)
    fig = drawn[0]
    px = _pixels(fig, fig.axes[0], path, margin=0)
    h, w = px.shape[:2]
    _assert_colour(px[h // 2, int(w * 20 / 40)][None], [247.0, 247.0, 247.0])  # a latent of 0: (near) white
    _assert_colour(px[h // 2, int(w * 35 / 40)][None], [64.0, 64.0, 64.0])  # outside: dark grey
    _assert_colour(px[h // 2, int(w * 24 / 40)][None], [153.0, 153.0, 153.0])  # the gap inside: light grey
    assert px[h // 2, int(w * 5 / 40), 0] > px[h // 2, int(w * 5 / 40), 2] + 50  # +1: red


def test_figures_at_a_higher_resolution_with_vector_copies(tmp_path, monkeypatch):
    """Every figure was a 100-dpi PNG: $LATENTBRIDGE_FIGURES asks any command for another resolution and for a
    PDF or SVG copy beside each PNG; unset, the PNG alone as before."""
    from latentbridge.cli import main
    from latentbridge.errors import ConfigError
    from latentbridge.report.common import figure_options

    x = np.random.default_rng(0).random((1, 8, 10))
    monkeypatch.delenv("LATENTBRIDGE_FIGURES", raising=False)
    plot_spectrogram_pairs(x, x, ["a"], tmp_path / "plain.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.png"]
    w, h = Image.open(tmp_path / "plain.png").size

    monkeypatch.setenv("LATENTBRIDGE_FIGURES", "300, pdf,svg")
    assert figure_options() == (300, ("pdf", "svg"))
    plot_spectrogram_pairs(x, x, ["a"], tmp_path / "paper.png")
    w3, h3 = Image.open(tmp_path / "paper.png").size
    assert w3 / w == pytest.approx(3, rel=0.02) and h3 / h == pytest.approx(3, rel=0.02)  # three times the dots
    assert (tmp_path / "paper.pdf").read_bytes()[:5] == b"%PDF-"
    assert b"<svg" in (tmp_path / "paper.svg").read_bytes()[:1000]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left

    for bad in ("eps", "30", "9000dpi", "pdf;svg"):
        monkeypatch.setenv("LATENTBRIDGE_FIGURES", bad)
        with pytest.raises(ConfigError, match="LATENTBRIDGE_FIGURES=.*neither a resolution"):
            figure_options()
    # a command refuses it before its work, exit 2 (not at its first figure, after the work)
    monkeypatch.setenv("LATENTBRIDGE_FIGURES", "300,png")
    assert main(["data", "synth", "bridge", "--out", str(tmp_path / "never"), "--states", "2"]) == 2
    assert not (tmp_path / "never").exists()


def test_epoch_axes_tick_whole_epochs(tmp_path, drawn):
    """A two-epoch run's loss axis read 1.0, 1.2, 1.4, ... epochs."""
    plot_lines([1, 2], {"training": [2.0, 1.0]}, tmp_path / "loss.png", xlabel="epoch")
    ticks = drawn[0].axes[0].get_xticks()
    assert len(ticks) >= 2 and np.all(ticks == np.round(ticks))
    plot_lines([0.5, 0.75, 1.0], {"x": [1, 2, 3]}, tmp_path / "frac.png")  # fractions keep their ticks
    assert not np.all(drawn[1].axes[0].get_xticks() == np.round(drawn[1].axes[0].get_xticks()))
    plot_lines([1], {"training": [2.0]}, tmp_path / "one.png", xlabel="epoch")  # one epoch: 0.945, 0.960, ... before
    assert list(drawn[2].axes[0].get_xticks()) == [1.0]
    from latentbridge.report.anomaly import plot_score_histogram

    plot_score_histogram([0.1, 0.5, 0.9], [0, 1, 1], 0.4, tmp_path / "hist.png")  # counts: 0.5, 1.5 before
    ticks = drawn[3].axes[0].get_yticks()
    assert len(ticks) >= 2 and np.all(ticks == np.round(ticks))


def test_a_long_title_is_cut_in_its_middle(tmp_path, drawn):
    """A 250-character file name made the spectrogram figure as wide as its title: a title is cut to 100 characters
    in its middle (callers cut the file names in them to 40)."""
    from latentbridge.report.common import middle_cut

    x = np.random.default_rng(0).random((1, 8, 10))
    long = "trois_数字_" + "y" * 240 + ".wav"
    plot_spectrogram_pairs(x, x, [long], tmp_path / "long.png")
    title = _panels(drawn[0])[0].get_title().replace("\n", " ")  # (wrapped at its spaces to the panel's width)
    assert title.startswith("trois_数字_y") and title.endswith("yyy.wav: input") and "…" in title
    assert len(title) == 100 + len(": input")
    assert middle_cut(long) == "trois_数字_yyyyyy…" + "y" * 20 + ".wav" and len(middle_cut(long)) == 40
    assert middle_cut("short.wav") == "short.wav"


def test_masks_drawn_smaller_than_scored_keep_the_full_size_iou(tmp_path, drawn):
    """The report's masks at the labels' size are drawn at most 768 pixels wide (a crack as any pixel it covers); each
    row's IoU is the full size's, not the drawing's."""
    from latentbridge.metrics.segmentation import iou
    from latentbridge.report.runs.multimodal import full_size_section

    target = np.zeros((64, 2000), dtype=bool)
    target[:, 1000] = True  # one pixel wide
    prob = np.zeros((64, 2000), dtype=np.float32)
    prob[:, 999:1002] = 0.9
    section = full_size_section({"masks_full": [target], "mask_prob_full": [prob], "titles": ["T_01"]}, 0.5, tmp_path)
    assert "drawn 3 times smaller" in section[0]["text"] and _is_png(tmp_path / "masks_full_size.png")
    shown = _panels(drawn[0])
    assert shown[0].images[0].get_array().shape == (21, 666) and shown[0].images[0].get_array().max() == 1.0
    assert shown[2].get_title() == f"> 0.5: IoU {iou(prob[None], target[None], 0.5)[0]:.3f}" == "> 0.5: IoU 0.333"
