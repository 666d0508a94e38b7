"""latentbridge.report: the single-file HTML report and the 2-D embeddings of latent vectors.

(What each figure draws is tested in test_report_plots.py.)
"""

from __future__ import annotations

import base64
import logging
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from latentbridge.errors import DataError
from latentbridge.report import embed_2d, plot_roc, project_2d, write_html_report

# --------------------------------------------------------------------------- HTML report


class _Page(HTMLParser):
    """The parts of a report page the tests look at, as a browser would read them."""

    VOID = frozenset({"br", "img", "meta", "link", "hr", "input"})  # elements without an end tag

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.imgs, self.audio, self.tables, self.texts = [], [], [], [], {}
        self._open: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "img":
            self.imgs.append(attrs)
        if tag == "audio":
            self.audio.append(attrs)
        if tag in self.VOID:
            return
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("th", "td"):
            self.tables[-1][-1].append([tag, "", attrs.get("class")])
        self._open.append(tag)

    def handle_endtag(self, tag):
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data):
        if not self._open:
            return
        tag = self._open[-1]
        if tag in ("th", "td"):
            self.tables[-1][-1][-1][1] += data
        else:
            self.texts.setdefault(tag, []).append(data)


def test_html_report_content(tmp_path):
    rng = np.random.default_rng(0)
    out = tmp_path / "report"
    roc = plot_roc(np.r_[np.zeros(30, int), np.ones(10, int)], rng.random(40), out / "figs" / "roc.png")
    photo = tmp_path / "elsewhere" / "photo.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    sections = [
        {"heading": "Summary <b>", "text": "first <script>alert(1)</script>\nsame paragraph\n\nsecond & last"},
        {"heading": "Metrics", "table": {"auc": 0.912345, "n": 100, "note": "<i>x</i>", "none": None,
                                         "ok": True, "nan": float("nan"), "<u>key</u>": "v", "left_out": [],
                                         "skipped": [("a.wav", "unreadable (x, y)"), ("b.wav", "silent")]}},
        {"heading": "Per file", "table": [{"file": "a.wav", "score": 1.5}, {"file": "b.wav", "extra": True}]},
        {"heading": "Nothing", "table": []},
        {"heading": "Figures", "images": ["figs/roc.png", photo]},
    ]
    path = write_html_report(out / "report.html", "Run <1>", sections)
    assert path == out / "report.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    page = _Page(text)

    # every piece of user text arrives as text, never as markup
    assert page.texts["title"] == ["Run <1>"] and page.texts["h1"] == ["Run <1>"]
    assert page.texts["h2"] == ["Summary <b>", "Metrics", "Per file", "Nothing", "Figures"]
    assert "script" not in page.tags and "b" not in page.tags and "i" not in page.tags
    paragraphs = page.texts["p"]
    assert paragraphs[:2] == ["first <script>alert(1)</script>", "\nsame paragraph"]  # one line break
    assert "second & last" in paragraphs and page.tags.count("br") == 2  # (and one between two skipped files)
    assert "(empty table)" in page.texts["em"]

    # tables: a dict is one key/value row per entry; records share the union of their columns
    metrics, per_file = page.tables
    assert [[c[1] for c in row] for row in metrics] == [
        ["auc", "0.9123"], ["n", "100"], ["note", "<i>x</i>"], ["none", "n/a"], ["ok", "yes"], ["nan", "n/a"],
        ["<u>key</u>", "v"], ["left_out", "none"], ["skipped", "a.wav — unreadable (x, y)b.wav — silent"]]
    assert [row[1][2] for row in metrics] == ["num", "num", None, None, None, None, None, None, None]  # numbers right
    assert [[c[1] for c in row] for row in per_file] == [
        ["file", "score", "extra"], ["a.wav", "1.5", ""], ["b.wav", "", "yes"]]
    assert [c[0] for c in per_file[0]] == ["th", "th", "th"]
    assert [[c[2] for c in row] for row in per_file[1:]] == [[None, "num", None], [None, None, None]]
    assert "u" not in page.tags

    # images: embedded copies of the files named, relative to the report's folder or absolute
    assert [(img["alt"], img["src"].split(",")[0]) for img in page.imgs] == [
        ("figs/roc.png", "data:image/png;base64"), (str(photo), "data:image/jpeg;base64")]
    for img, file in zip(page.imgs, (roc, photo)):
        assert file.is_file()
        assert base64.b64decode(img["src"].split(",", 1)[1]) == file.read_bytes()
    assert page.texts["figcaption"] == ["figs/roc.png", str(photo)]


def test_html_report_tables_write_dicts_and_lists_as_values(tmp_path):
    """A dict in a table (the sampler's settings, the highest window) read as Python's repr, every digit of a float."""
    table = {"sampler": {"steps": 50, "guidance": 1.23456789, "scheduler": "ddim", "eta": None},
             "top_window": {"file": "a<b>.wav", "start_s": 2.0, "score": 12.345678},
             "curve": [0.123456, 2, "x"], "files": ["a.wav", "b.wav"]}
    page = _Page(write_html_report(tmp_path / "r.html", "t", [{"heading": "h", "table": table}]).read_text())
    assert [[c[1] for c in row] for row in page.tables[0]] == [
        ["sampler", "steps: 50; guidance: 1.235; scheduler: ddim; eta: n/a"],
        ["top_window", "file: a<b>.wav; start_s: 2; score: 12.35"],
        ["curve", "0.1235, 2, x"], ["files", "a.wav, b.wav"]]
    assert "b" not in page.tags  # the file name arrives as text


def test_html_report_plays_its_audio(tmp_path):
    """The example WAVs were named in a line of text: each now has a player, a small file embedded (the report
    moves alone), a large one linked by its path from the report (it moves with its folder)."""
    import shutil

    from latentbridge.io import write_wav

    out = tmp_path / "eval"
    small = write_wav(out / "example_0_original.wav", np.zeros(8000, np.float32), 8000)
    large = write_wav(out / "long takes" / "all #1.wav", np.zeros(16000 * 20, np.float32), 16000)
    report = write_html_report(out / "report.html", "t", [
        {"heading": "Example audio", "audio": ["example_0_original.wav", large]}])
    page = _Page(report.read_text())
    assert [a["src"].split(",")[0] for a in page.audio] == ["data:audio/wav;base64", "long%20takes/all%20%231.wav"]
    assert base64.b64decode(page.audio[0]["src"].split(",", 1)[1]) == small.read_bytes()
    assert all("controls" in a for a in page.audio)
    assert page.texts["figcaption"] == ["example_0_original.wav", str(large)]
    moved = shutil.move(out, tmp_path / "moved")  # the folder moved: its link still finds the file
    assert (Path(moved) / "long takes" / "all #1.wav").is_file()
    with pytest.raises(DataError, match=r"gone\.wav: audio for the HTML report does not exist"):
        write_html_report(tmp_path / "x.html", "t", [{"heading": "h", "audio": ["gone.wav"]}])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"unsupported audio type '\.txt'"):
        write_html_report(tmp_path / "x.html", "t", [{"heading": "h", "audio": ["notes.txt"]}])
    assert not (tmp_path / "x.html").exists()


@pytest.mark.parametrize(
    ("sections", "error", "match"),
    [
        ([{"heading": "x", "images": ["missing.png"]}], DataError,
         r"missing\.png: image for the HTML report does not exist"),
        ([{"heading": "x", "images": ["fig.bmp"]}], DataError, r"fig\.bmp: unsupported image type '\.bmp'"),
        ([{"heading": "x", "imgs": []}], ValueError, r"section 0 has unknown keys \['imgs'\]"),
        ([{"heading": "ok"}, ["heading", "x"]], ValueError, "section 1 must be a dict, got list"),
        ([{"heading": "x", "table": [{"a": 1}, ("a", 2)]}], ValueError, "table rows must be dicts, got tuple"),
    ],
)
def test_html_report_bad_input(tmp_path, sections, error, match):
    (tmp_path / "fig.bmp").write_bytes(b"BM")
    with pytest.raises(error, match=match):
        write_html_report(tmp_path / "r.html", "t", sections)
    assert not (tmp_path / "r.html").exists()
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*.partial"))


def test_html_report_replaces_atomically(tmp_path):
    path = tmp_path / "r.html"
    write_html_report(path, "first", [])
    inode = path.stat().st_ino
    with pytest.raises(DataError):
        write_html_report(path, "second", [{"heading": "x", "images": ["missing.png"]}])
    assert _Page(path.read_text()).texts["h1"] == ["first"]  # a failed write leaves the old report
    write_html_report(path, "third", [])
    assert _Page(path.read_text()).texts["h1"] == ["third"]
    # a new file renamed over the old one (a reader never sees a half-written report), not rewritten in place
    assert path.stat().st_ino != inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


# --------------------------------------------------------------------------- 2-D embeddings


@pytest.fixture(scope="module")
def clusters():
    """Three well-separated Gaussian clusters in 16-D, 20 points each, and their labels."""
    rng = np.random.default_rng(4)
    centers = rng.normal(scale=5.0, size=(3, 16))
    x = np.concatenate([c + rng.normal(size=(20, 16)) for c in centers])
    return x, np.repeat(np.arange(3), 20)


@pytest.mark.parametrize("method", ["umap", "tsne", "pca"])
def test_embed_2d_keeps_clusters_apart(clusters, method, caplog):
    x, labels = clusters
    with caplog.at_level(logging.WARNING, logger="latentbridge.report"):
        y = embed_2d(x, method=method, seed=0)
    assert y.shape == (60, 2) and y.dtype == np.float64 and np.all(np.isfinite(y))
    assert silhouette_score(y, labels) > 0.7
    centroids = np.stack([y[labels == k].mean(axis=0) for k in range(3)])
    nearest = np.argmin(np.linalg.norm(y[:, None] - centroids[None], axis=-1), axis=1)
    np.testing.assert_array_equal(nearest, labels)
    if method != "pca":  # the method itself ran: no fallback to PCA
        assert "PCA" not in caplog.text
        assert not np.allclose(y, embed_2d(x, method="pca"))
    np.testing.assert_array_equal(y, embed_2d(x, method=method, seed=0))  # deterministic


@pytest.mark.parametrize(
    ("method", "n", "expected"),
    [
        ("tsne", 61, {"n_components": 2, "perplexity": 20.0, "init": "pca", "random_state": 7}),
        ("tsne", 100, {"perplexity": 30.0}),
        ("umap", 50, {"n_components": 2, "n_neighbors": 15, "random_state": 7}),
        ("umap", 100, {"n_neighbors": 15}),
    ],
)
def test_embed_2d_documented_parameters(monkeypatch, method, n, expected):
    """t-SNE: perplexity min(30, (N - 1) / 3), PCA init; UMAP: n_neighbors 15; both seeded."""
    import sklearn.manifold
    import umap

    seen = {}

    class Reducer:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def fit_transform(self, x):
            return x[:, :2] * 2.0

    monkeypatch.setattr(sklearn.manifold, "TSNE", Reducer)
    monkeypatch.setattr(umap, "UMAP", Reducer)
    x = np.random.default_rng(0).normal(size=(n, 5))
    np.testing.assert_array_equal(embed_2d(x, method=method, seed=7), x[:, :2] * 2.0)
    assert {k: seen[k] for k in expected} == expected


def test_embed_2d_pca(clusters):
    x, _ = clusters
    y = embed_2d(x, method="pca")
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    # the scores on the first two principal axes, up to sign, largest variance first
    np.testing.assert_allclose(np.abs(y), np.abs(xc @ vt[:2].T), atol=1e-9)
    np.testing.assert_allclose(y.var(axis=0) * len(x), s[:2] ** 2, rtol=1e-9)
    # signs are fixed: the largest-magnitude score of each component is positive
    assert all(y[np.argmax(np.abs(y[:, k])), k] > 0 for k in range(2))
    np.testing.assert_array_equal(embed_2d(x.reshape(60, 4, 4), method="pca"), y)  # (N, ...) flattened


def test_embed_2d_pca_fallback_small_n(caplog):
    x = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    with caplog.at_level(logging.WARNING, logger="latentbridge.report"):
        y = embed_2d(x, method="umap", seed=0)
    assert y.shape == (3, 2)
    assert "too few for umap; using PCA" in caplog.text
    np.testing.assert_allclose(y, embed_2d(x, method="pca"))
    # PCA preserves pairwise distances when the data are already 2-D
    d_in = np.linalg.norm(x[:, None] - x[None], axis=-1)
    d_out = np.linalg.norm(y[:, None] - y[None], axis=-1)
    np.testing.assert_allclose(d_out, d_in, atol=1e-12)
    # first component carries the largest variance
    assert y[:, 0].var() >= y[:, 1].var()
    # degenerate inputs: one point, identical points
    np.testing.assert_array_equal(embed_2d(np.ones((1, 4))), np.zeros((1, 2)))
    np.testing.assert_array_equal(embed_2d(np.ones((3, 4)), method="tsne"), np.zeros((3, 2)))


def test_project_2d_names_the_method_and_maps_few_points_by_pca(monkeypatch, clusters, caplog):
    """Plots were titled UMAP over a PCA fallback; and UMAP of 18 points took 22 s of a 28-s evaluation (its first
    call compiles its code): under 50 points UMAP is not started, PCA maps them and the title says so."""
    import umap

    def no_umap(**kwargs):
        raise AssertionError("UMAP started for a small set")

    x, _ = clusters
    with caplog.at_level(logging.INFO, logger="latentbridge.report"):
        monkeypatch.setattr(umap, "UMAP", no_umap)
        y, how = project_2d(x[:49], method="umap")
    assert how == "PCA" and "49 points (under 50) are projected by PCA" in caplog.text
    np.testing.assert_array_equal(y, embed_2d(x[:49], method="pca"))
    assert project_2d(x[:20], method="tsne")[1] == "t-SNE" and project_2d(x, method="pca")[1] == "PCA"
    assert project_2d(x[:3], method="tsne")[1] == "PCA"  # too few for t-SNE
    monkeypatch.setattr(umap, "UMAP", lambda **kw: type("R", (), {"fit_transform": lambda self, a: a[:, :2]})())
    assert project_2d(x, method="umap")[1] == "UMAP"
    monkeypatch.setattr(umap, "UMAP", lambda **kw: 1 / 0)  # a failing UMAP: PCA, named so
    y, how = project_2d(x, method="umap")
    assert how == "PCA" and "umap failed (ZeroDivisionError" in caplog.text


def test_embed_2d_errors():
    with pytest.raises(ValueError, match="unknown embedding method 'mds'"):
        embed_2d(np.zeros((5, 2)), method="mds")
    with pytest.raises(ValueError, match="10 NaN or inf"):
        embed_2d(np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        embed_2d(np.zeros(5))
    with pytest.raises(ValueError, match="empty"):
        embed_2d(np.zeros((0, 3)))


def test_a_cell_near_a_whole_number_keeps_the_digits_that_tell_it_apart():
    """At 4 significant digits an AUC of 0.99995 read '1': a perfect detector."""
    from latentbridge.report.html import _fmt

    assert [_fmt(v)[0] for v in (0.99995, 2.99996, 1.0, 0.5, 0.123456, 123456.7, float("nan"))] == \
        ["0.99995", "2.99996", "1", "0.5", "0.1235", "1.235e+05", "n/a"]  # NaN: undefined, as null in JSON


def test_project_2d_maps_each_distinct_latent_once_and_survives_a_collapsed_space(monkeypatch, caplog):
    """UMAP of latents repeated (a clip's audio latent by each of its pairs) changed from one run of `analyze` to the
    next: each distinct latent is mapped once now, its copies drawn on it. 60 identical latents (a collapsed space)
    ended the process in t-SNE (a segfault)."""
    import umap

    rng = np.random.default_rng(4)  # each latent 4 times, as the analysis's audio latents (one a clip, four pairs)
    distinct = np.concatenate([c + rng.normal(size=(15, 16)) for c in rng.normal(scale=2.0, size=(6, 16))])
    x = np.repeat(distinct, 4, axis=0)[rng.permutation(360)]
    fitted = []

    class Recorder:
        def __init__(self, **kwargs):
            pass

        def fit_transform(self, a):
            fitted.append(a.copy())
            return a[:, :2] * 1.0

    monkeypatch.setattr(umap, "UMAP", Recorder)
    y, how = project_2d(x, method="umap", seed=0)
    assert how == "UMAP" and len(fitted) == 1 and len(fitted[0]) == 90  # the 90 distinct latents, once each
    np.testing.assert_array_equal(y, x[:, :2])  # every copy drawn on its latent's point
    with caplog.at_level(logging.WARNING):
        y, _ = project_2d(np.full((60, 8), 0.5), method="tsne")
    assert np.array_equal(y, np.zeros((60, 2))) and "all 60 latents are identical" in caplog.text
