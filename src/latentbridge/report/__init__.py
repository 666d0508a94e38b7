"""Figures (PNG, matplotlib Agg) and single-file HTML reports.

Figures are drawn on a private ``matplotlib.figure.Figure`` with an Agg canvas, so nothing here
touches pyplot's global state or needs a display, and every file is written atomically (a
reader never sees a half-written PNG or HTML file).

Modules, by what they draw (every public function is importable from ``latentbridge.report``):

* :mod:`~latentbridge.report.anomaly`: :func:`plot_roc`, :func:`plot_score_histogram`;
* :mod:`~latentbridge.report.audio`: :func:`plot_spectrogram_pairs`, :func:`plot_waveform_overlay`;
* :mod:`~latentbridge.report.images`: :func:`plot_mask_triplets`, :func:`plot_image_grid`;
* :mod:`~latentbridge.report.embedding`: :func:`embed_2d` (:func:`project_2d` names the method), :func:`plot_embedding`;
* :mod:`~latentbridge.report.charts`: :func:`plot_lines`, :func:`plot_heatmap`;
* :mod:`~latentbridge.report.html`: :func:`write_html_report`;
* :mod:`~latentbridge.report.common`: the shared figure helpers.
"""

from __future__ import annotations

from latentbridge.report.anomaly import plot_roc, plot_score_histogram
from latentbridge.report.audio import plot_spectrogram_pairs, plot_waveform_overlay
from latentbridge.report.charts import plot_heatmap, plot_lines
from latentbridge.report.embedding import embed_2d, plot_embedding, project_2d
from latentbridge.report.html import write_html_report
from latentbridge.report.images import plot_image_grid, plot_mask_triplets

__all__ = [
    "embed_2d",
    "plot_embedding",
    "plot_heatmap",
    "plot_image_grid",
    "plot_lines",
    "plot_mask_triplets",
    "plot_roc",
    "plot_score_histogram",
    "plot_spectrogram_pairs",
    "plot_waveform_overlay",
    "project_2d",
    "write_html_report",
]
