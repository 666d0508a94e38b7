"""Tests for the waveform/mask/grid/embedding plots and embed_2d in latentbridge.report."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from latentbridge.report import (
    embed_2d,
    plot_embedding,
    plot_image_grid,
    plot_mask_triplets,
    plot_waveform_overlay,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def test_waveform_overlay(tmp_path):
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(6, 400))
    rec = ref + 0.1 * rng.normal(size=ref.shape)
    p1 = plot_waveform_overlay(ref, rec, 16000, tmp_path / "w" / "wave.png", title="recon")
    p2 = plot_waveform_overlay(ref[0], rec[0], None, tmp_path / "wave1.png")
    p3 = plot_waveform_overlay(ref, rec, 8000, tmp_path / "wave_sel.png", channels=[5, -1, 0, 1, 2])
    for p in (p1, p2, p3):
        assert _is_png(p), p
    with pytest.raises(ValueError, match="equal shapes"):
        plot_waveform_overlay(ref, rec[:, :10], 16000, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="out of range"):
        plot_waveform_overlay(ref, rec, 16000, tmp_path / "bad.png", channels=[6])
    assert not (tmp_path / "bad.png").exists()
    assert not list(tmp_path.rglob("*.partial"))


def test_mask_triplets(tmp_path):
    rng = np.random.default_rng(1)
    targets = (rng.random((3, 16, 16)) > 0.8).astype(np.float32)
    targets[2] = 0  # healthy sample
    probs = np.clip(targets * 0.8 + 0.3 * rng.random(targets.shape), 0, 1)
    p1 = plot_mask_triplets(None, targets, probs, ["a", "b", "healthy"], tmp_path / "m.png")
    gray = rng.random((3, 16, 16))
    p2 = plot_mask_triplets(gray, targets[:, None], probs[:, None], None, tmp_path / "m_in.png")
    rgb = rng.normal(size=(3, 3, 16, 16))  # channel-first colour, outside [0, 1]
    p3 = plot_mask_triplets(rgb, targets, probs, None, tmp_path / "m_rgb.png", threshold=0.6)
    for p in (p1, p2, p3):
        assert _is_png(p), p
    with pytest.raises(ValueError, match="titles"):
        plot_mask_triplets(None, targets, probs, ["x"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="differ in shape"):
        plot_mask_triplets(None, targets, probs[:2], None, tmp_path / "bad.png")


def test_image_grid(tmp_path):
    rng = np.random.default_rng(2)
    imgs = rng.random((2, 5, 12, 20))
    imgs[1] = imgs[1] > 0.5
    p1 = plot_image_grid(imgs, ["spectrogram", "mask"], [f"t={t:.2f}" for t in np.linspace(0, 1, 5)],
                         tmp_path / "grid.png")
    p2 = plot_image_grid(imgs[0], None, None, tmp_path / "row.png", cmap="viridis", origin="upper",
                         share_row_scale=False)
    p3 = plot_image_grid(np.zeros((1, 1, 4, 4)), None, None, tmp_path / "const.png")
    for p in (p1, p2, p3):
        assert _is_png(p), p
    with pytest.raises(ValueError, match="column titles"):
        plot_image_grid(imgs, None, ["a"], tmp_path / "bad.png")
    with pytest.raises(ValueError, match=r"\(R, K, H, W\)"):
        plot_image_grid(np.zeros((4, 4)), None, None, tmp_path / "bad.png")


def test_embedding_plot(tmp_path):
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(60, 2))
    p1 = plot_embedding(pts, rng.random(60), tmp_path / "cont.png", "continuous", label="damage")
    ids = np.array(["test_a", "test_b", "test_c"])[rng.integers(0, 3, 60)]
    p2 = plot_embedding(pts, ids, tmp_path / "cat.png", "by test", categorical=True, label="test id")
    p3 = plot_embedding(pts, rng.integers(0, 25, 60), tmp_path / "many.png", "", categorical=True)
    p4 = plot_embedding(pts, None, tmp_path / "plain.png", "plain")
    for p in (p1, p2, p3, p4):
        assert _is_png(p), p
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot_embedding(rng.normal(size=(5, 3)), None, tmp_path / "bad.png", "")
    with pytest.raises(ValueError, match="colors"):
        plot_embedding(pts, np.zeros(5), tmp_path / "bad.png", "")


@pytest.fixture(scope="module")
def latents():
    rng = np.random.default_rng(4)
    centers = rng.normal(scale=5.0, size=(3, 16))
    return np.concatenate([c + rng.normal(size=(20, 16)) for c in centers])


@pytest.mark.parametrize("method", ["umap", "tsne", "pca"])
def test_embed_2d_deterministic(latents, method):
    a = embed_2d(latents, method=method, seed=0)
    b = embed_2d(latents, method=method, seed=0)
    assert a.shape == (60, 2) and a.dtype == np.float64
    assert np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)


def test_embed_2d_pca_fallback_small_n(caplog):
    x = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    with caplog.at_level(logging.WARNING, logger="latentbridge.report"):
        y = embed_2d(x, method="umap", seed=0)
    assert y.shape == (3, 2)
    assert "PCA" in caplog.text
    np.testing.assert_allclose(y, embed_2d(x, method="pca"))
    # PCA preserves pairwise distances when the data are already 2-D
    d_in = np.linalg.norm(x[:, None] - x[None], axis=-1)
    d_out = np.linalg.norm(y[:, None] - y[None], axis=-1)
    np.testing.assert_allclose(d_out, d_in, atol=1e-12)
    # first component carries the largest variance
    assert y[:, 0].var() >= y[:, 1].var()
    # degenerate inputs: one point, identical points, (N, ...) flattened
    np.testing.assert_array_equal(embed_2d(np.ones((1, 4))), np.zeros((1, 2)))
    np.testing.assert_array_equal(embed_2d(np.ones((3, 4)), method="tsne"), np.zeros((3, 2)))
    assert embed_2d(np.random.default_rng(0).normal(size=(4, 2, 3))).shape == (4, 2)


def test_embed_2d_errors():
    with pytest.raises(ValueError, match="unknown embedding method"):
        embed_2d(np.zeros((5, 2)), method="mds")
    with pytest.raises(ValueError, match="NaN"):
        embed_2d(np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        embed_2d(np.zeros(5))
