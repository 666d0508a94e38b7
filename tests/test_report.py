"""Tests for latentbridge.report: PNG figures and the single-file HTML report."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from latentbridge.errors import DataError
from latentbridge.report import (
    plot_lines,
    plot_roc,
    plot_score_histogram,
    plot_spectrogram_pairs,
    write_html_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(80, int), np.ones(20, int)]
    scores = np.r_[rng.normal(0, 1, 80), rng.normal(2, 1, 20)]
    return labels, scores


def test_plots_write_png(tmp_path, scored):
    labels, scores = scored
    p1 = plot_roc(labels, scores, tmp_path / "figs" / "roc.png", title="ROC")
    p2 = plot_score_histogram(scores, labels, 1.5, tmp_path / "hist.png", title="scores")
    p3 = plot_score_histogram(scores, None, None, tmp_path / "hist_all.png")
    rng = np.random.default_rng(1)
    x = rng.random((2, 32, 40))
    p4 = plot_spectrogram_pairs(x, x * 0.9, ["a <1>", "b"], tmp_path / "spec.png", sample_rate=16000, hop_length=256)
    p5 = plot_spectrogram_pairs(x[0], x[0], None, tmp_path / "spec1.png")
    p6 = plot_lines(np.arange(1, 6), {"train": [5, 4, 3, 2.5, 2], "val": [6, 5, 4, 3.8, 3.9]},
                    tmp_path / "loss.png", "epoch", "loss", "loss curves")
    p7 = plot_lines(None, {"loss": [1.0, 0.5, 0.1]}, tmp_path / "loss_log.png", logy=True)
    for p in (p1, p2, p3, p4, p5, p6, p7):
        assert _is_png(p), p
    # atomic writes leave no partial files
    assert not list(tmp_path.rglob("*.partial"))


def test_plot_input_errors(tmp_path):
    with pytest.raises(ValueError, match="equal shapes"):
        plot_spectrogram_pairs(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)), ["x"], tmp_path / "s.png")
    with pytest.raises(ValueError, match="titles"):
        plot_spectrogram_pairs(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), ["x"], tmp_path / "s.png")
    with pytest.raises(ValueError, match="x has 2"):
        plot_lines([0, 1], {"a": [1, 2, 3]}, tmp_path / "l.png")
    with pytest.raises(ValueError, match="no anomalous"):
        plot_roc([0, 0], [1, 2], tmp_path / "r.png")
    assert not (tmp_path / "s.png").exists() and not (tmp_path / "r.png").exists()


def test_html_report_embeds_images_and_escapes(tmp_path, scored):
    labels, scores = scored
    out = tmp_path / "report"
    roc = plot_roc(labels, scores, out / "figs" / "roc.png")
    sections = [
        {"heading": "Summary <b>", "text": "first <script>alert(1)</script>\n\nsecond & last"},
        {"heading": "Metrics", "table": {"auc": 0.912345, "n": 100, "note": "<i>x</i>", "none": None}},
        {"heading": "Per file", "table": [{"file": "a.wav", "score": 1.5}, {"file": "b.wav", "extra": True}]},
        {"heading": "Figures", "images": ["figs/roc.png"]},
    ]
    path = write_html_report(out / "report.html", "Run <1>", sections)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "second &amp; last" in text
    assert "<title>Run &lt;1&gt;</title>" in text
    assert "Summary &lt;b&gt;" in text and "&lt;i&gt;x&lt;/i&gt;" in text
    assert "0.9123" in text and ">100<" in text
    assert "<th>extra</th>" in text and "True" in text
    m = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert m is not None
    assert base64.b64decode(m.group(1)) == roc.read_bytes()
    assert 'src="figs/' not in text  # self-contained: no external references


def test_html_report_missing_image(tmp_path):
    with pytest.raises(DataError, match=r"missing\.png: image for the HTML report does not exist"):
        write_html_report(tmp_path / "r.html", "t", [{"heading": "x", "images": ["missing.png"]}])
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(ValueError, match="unknown keys"):
        write_html_report(tmp_path / "r.html", "t", [{"heading": "x", "imgs": []}])
