"""Shared figure helpers of :mod:`latentbridge.report`: a private Agg figure, atomic PNG saving and
argument checks used by several plots.

Figures are drawn on a private ``matplotlib.figure.Figure`` with an Agg canvas, so nothing here
touches pyplot's global state or needs a display, and every file is written atomically (a
reader never sees a half-written PNG). ``$LATENTBRIDGE_FIGURES`` asks every command for figures at another
resolution and for vector copies beside them (:func:`figure_options`).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path

import numpy as np

from latentbridge.utils import atomic_path

_DPI = 100


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _literal(texts) -> None:
    """Every text (of a figure) drawn as written: matplotlib reads the text between two ``$`` as mathematics, so a file
    name or test id such as ``pump_$12_to_$15.wav`` stopped a report with a parse error, after all the work. A name
    that is not UTF-8 (its odd bytes read as surrogates) is drawn with ``\\udcXX`` escapes, as reports write it (the
    font renderer refused it with a TypeError)."""
    for t in texts:
        t.set_parse_math(False)
        text = t.get_text()
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            t.set_text(text.encode("utf-8", "backslashreplace").decode("utf-8"))


def _tight(fig, **kw) -> None:
    """``fig.tight_layout`` of its texts as they will be saved (:func:`_drawn`: the layout draws them; before, it drew
    East Asian file names in DejaVu Sans and warned of every missing glyph)."""
    with _drawn(fig):
        fig.tight_layout(**kw)


@contextlib.contextmanager
def _drawn(fig):
    """A block that draws ``fig``: its texts as written (:func:`_literal`), East Asian letters in a font that has
    them (:func:`_wide_glyphs`), whose "font weight normal not found" notes are kept quiet."""
    import logging

    from matplotlib.text import Text

    texts = fig.findobj(Text)  # (once: each walk of the figure took a tenth of a report's figures' time)
    _literal(texts)
    quiet = logging.getLogger("matplotlib.font_manager")
    level = quiet.level
    if _wide_glyphs(texts):  # such fonts log "font weight normal not found, using 500" for every text
        quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # a letter no installed font has (an emoji in a file name) is drawn as a
            # box: matplotlib's warning of it, twice a figure, named no file and read as the toolkit's own
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from (current )?font",
                                    category=UserWarning)
            yield
    finally:
        quiet.setLevel(level)


def _save(fig, path: str | Path) -> Path:
    """``fig`` as the PNG ``path`` (and its vector copies beside it, as :func:`figure_options` asks)."""
    path = Path(path)
    dpi, vectors = figure_options()
    with _drawn(fig):
        for kind in vectors:
            with atomic_path(path.with_suffix(f".{kind}")) as tmp:
                fig.savefig(tmp, format=kind, bbox_inches="tight")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


FIGURES_ENV = "LATENTBRIDGE_FIGURES"
_MAX_DPI = 600


def figure_options() -> tuple[int, tuple[str, ...]]:
    """(the PNGs' resolution in dots per inch, the vector formats written beside each PNG) as
    ``$LATENTBRIDGE_FIGURES`` asks: comma-separated, a resolution (``300``) and/or ``pdf``, ``svg``; unset, 100-dpi
    PNGs alone. ConfigError naming the variable for anything else (the CLI checks it before any work)."""
    import os

    text = os.environ.get(FIGURES_ENV, "")
    dpi, vectors = _DPI, []
    for item in (t.strip().lower() for t in text.replace(" ", ",").split(",")):
        if item in ("pdf", "svg"):
            vectors += [item] if item not in vectors else []
        elif item.removesuffix("dpi").isdigit() and 50 <= int(item.removesuffix("dpi")) <= _MAX_DPI:
            dpi = int(item.removesuffix("dpi"))
        elif item:
            from latentbridge.errors import ConfigError

            raise ConfigError(f"{FIGURES_ENV}={text!r}: {item!r} is neither a resolution (50 to {_MAX_DPI} dpi, e.g. "
                              "300) nor a vector format (pdf, svg); e.g. LATENTBRIDGE_FIGURES=300,pdf")
    return dpi, tuple(vectors)


# fonts with Chinese, Japanese and Korean letters (which matplotlib's DejaVu Sans lacks), the first installed used
_WIDE_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR", "Source Han Sans",
               "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "AR PL UMing CN", "Microsoft YaHei",
               "SimHei", "Yu Gothic", "MS Gothic", "Malgun Gothic", "PingFang SC", "Hiragino Sans",
               "Apple SD Gothic Neo")


def _wide_glyphs(texts) -> bool:
    """Texts (of a figure) holding East Asian letters (file names, class names) fall back to an installed
    font that has them, instead of empty boxes; nothing changes when no such font is installed. True
    when a text was given the font."""
    texts = [t for t in texts if any(ord(c) >= 0x2E80 for c in t.get_text())]
    fonts = _installed_wide_fonts() if texts else []
    for t in texts if fonts else []:
        if fonts[0] not in t.get_fontfamily():
            t.set_fontfamily([*t.get_fontfamily(), fonts[0]])
    return bool(texts and fonts)


@functools.lru_cache(maxsize=1)
def _installed_wide_fonts() -> list[str]:
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    return [f for f in _WIDE_FONTS if f in have]


def _paired_arrays(x, y, layout: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` as float64 arrays of equal shape with the dimensions of ``layout`` (e.g.
    "(n, F, T)"); one leading dimension short is added as a single row."""
    ndim = layout.count(",") + 1
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.ndim == ndim - 1:
        a = a[None]
    if b.ndim == ndim - 1:
        b = b[None]
    if a.ndim != ndim or a.shape != b.shape:
        raise ValueError(f"{what} must both be {layout} with equal shapes; got {np.shape(x)} and {np.shape(y)}")
    return a, b


def _finite_range(*arrays) -> tuple[float, float]:
    vals = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = float(vals.min()), float(vals.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _titles(titles, n: int, what: str, default: str = "#{}") -> list[str]:
    if titles is None:
        return [default.format(i) for i in range(n)]
    titles = [middle_cut(t, _MAX_TITLE) for t in titles]
    if len(titles) != n:
        raise ValueError(f"got {len(titles)} {what} for {n}")
    return titles


#: the longest title a panel is given (callers cut file names in them to 40 characters: :func:`middle_cut`)
_MAX_TITLE = 100


def middle_cut(text, limit: int = 40) -> str:
    """``text`` of at most ``limit`` characters, an ellipsis in place of its middle: a long file name's start and end
    (its extension) both kept, in a figure's title (a 250-character name set the figure's width)."""
    text = str(text)
    if len(text) <= limit:
        return text
    head = (limit - 1) * 2 // 5
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def _whole_epochs(ax) -> None:
    """Ticks of ``ax``'s x axis on whole numbers (epochs: a short run's axis read 1.2, 1.4, ...); a run of one epoch,
    whose axis holds fewer than two whole numbers (where matplotlib's integer locator gives up: 0.945, 0.960, ...),
    gets its one."""
    whole_ticks(ax.xaxis, [x for line in ax.get_lines() for x in np.asarray(line.get_xdata(), float).ravel()])


def whole_ticks(axis, values=()) -> None:
    """``axis`` (an x or y axis) ticked on whole numbers (epochs, counts); where its data ``values`` span fewer than
    two whole numbers, on those it holds (one epoch: 1; counts of 0 and 1: 0, 1)."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    values = np.asarray([v for v in values if np.isfinite(v)], float)
    whole = np.arange(np.ceil(values.min()), np.floor(values.max()) + 1) if values.size else np.empty(0)
    axis.set_major_locator(FixedLocator(whole) if 0 < len(whole) < 2 else MaxNLocator(integer=True))
