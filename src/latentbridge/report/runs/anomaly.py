"""Files of ``anomaly score`` / ``evaluate`` (anomaly runs) and ``anomaly calibrate``."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np

from latentbridge.report.anomaly import plot_roc, plot_score_histogram
from latentbridge.report.audio import feature_axes, plot_spectrogram_pairs
from latentbridge.report.common import middle_cut
from latentbridge.report.html import write_html_report
from latentbridge.utils import atomic_write_json, atomic_write_text, sheet_safe_path

log = logging.getLogger(__name__)


def scores_csv(res) -> str:
    """``path,start_s,end_s,score,is_anomaly,level``: one row per window and one per file (paths
    :func:`sheet_safe_path`; scores with every digit, so that the metrics recomputed from them are the ones reported:
    6 digits made ties, and another window AUC)."""
    wf = res.windows
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "start_s", "end_s", "score", "is_anomaly", "level"])
    ends = wf.ends_s
    # each file's windows in their order, grouped in one sort (a mask per file was quadratic in the archive's size)
    order = np.argsort(wf.file_index, kind="stable")
    bounds = np.searchsorted(wf.file_index[order], np.arange(len(wf.files) + 1))
    for i, f in enumerate(map(sheet_safe_path, wf.files)):
        for j in order[bounds[i]:bounds[i + 1]]:
            w.writerow([f, f"{wf.starts_s[j]:.3f}", f"{ends[j]:.3f}", repr(float(res.window_scores[j])),
                        int(res.window_scores[j] > res.threshold), "window"])
        w.writerow([f, "0.000", f"{wf.durations_s[i]:.3f}", repr(float(res.file_scores[i])),
                    int(res.file_scores[i] > res.threshold), f"file-{res.aggregate}"])
    return buf.getvalue()


def dcase_submission(res, folder: Path) -> list[Path]:
    """DCASE's submission files, where every scored test recording's name gives its section or machine ID (as the
    challenge's evaluation sets name them: ``section_00_0000.wav``, ``id_00_00000000.wav``; training recordings left
    out): for each machine type (:func:`~latentbridge.data.labels.dcase_machine`: the folder above ``test/``) and
    group, ``dcase/anomaly_score_<machine>_<group>[_test].csv`` (file name, score) and
    ``dcase/decision_result_<machine>_<group>[_test].csv`` (file name, 1 above the threshold). The paths written."""
    from latentbridge.data.labels import dcase_machine, dcase_names, dcase_training

    files = res.windows.files
    groups, _ = dcase_names(files)
    tested = [i for i, f in enumerate(files) if not dcase_training(f)]  # (the challenge scores test recordings)
    if not tested or any(groups[i] is None for i in tested):
        if any(g is not None for g in groups):  # (a stray file in an evaluation folder: no files, no word)
            odd = [files[i].name for i in tested if groups[i] is None]
            log.warning("no DCASE submission files: %d of the %d test recordings' names give no section or machine ID "
                        "(%s)", len(odd), len(tested), ", ".join(odd[:3]))
        return []
    machine = [dcase_machine(f) for f in files]
    written = []
    for m, g in sorted({(machine[i], groups[i]) for i in tested}):
        mine = [i for i in tested if (machine[i], groups[i]) == (m, g)]
        tail = f"{m}_{g}_test" if g.startswith("section") else f"{m}_{g}"
        (folder / "dcase").mkdir(parents=True, exist_ok=True)
        for kind, value in (("anomaly_score", repr),  # (every digit: the challenge ranks these scores)
                            ("decision_result", lambda v: str(int(v > res.threshold)))):
            written.append(path := folder / "dcase" / f"{kind}_{tail}.csv")
            atomic_write_text(path, "".join(f"{files[i].name},{value(float(res.file_scores[i]))}\n" for i in mine))
    return written


def write_scores(res, folder: Path) -> None:
    """``scores.csv``, ``summary.json``, histograms of the file and window scores, example windows and
    ``report.html`` always; with labels ``metrics.json`` and the ROC too."""
    folder = Path(folder)
    atomic_write_text(folder / "scores.csv", scores_csv(res))
    y_files = res.labels
    y_windows = None if y_files is None else y_files[res.windows.file_index]
    atomic_write_json(folder / "summary.json", res.summary)  # (a labelled run wrote none, which the README promised)
    dcase_submission(res, folder)
    if res.metrics is not None:
        atomic_write_json(folder / "metrics.json", res.metrics)
        plot_roc(y_files, res.file_scores, folder / "roc.png", title=f"ROC (AUC {res.metrics['auc']:.3f})")
    plot_score_histogram(res.file_scores, y_files, res.threshold, folder / "histogram.png", title="File scores")
    plot_score_histogram(res.window_scores, y_windows, res.threshold, folder / "histogram_windows.png",
                         title="Window scores")
    ex = res.examples
    titles = [f"{middle_cut(name)} {about}" for name, about in zip(ex["files"], ex["about"])]  # a long name cut
    plot_spectrogram_pairs(ex["inputs"], ex["reconstructions"], titles, folder / "examples.png",
                           **feature_axes(ex["features"]))
    examples = {"heading": "Example windows and their reconstructions",
                "text": "Lowest- and highest-scoring windows: input, reconstruction, absolute difference.",
                "images": ["examples.png"]}
    if ex["reconstructions"] is None:  # the detector scores statistics or distances of the windows, no rebuilt copy
        examples.update(heading="Example windows",
                        text=f"Lowest- and highest-scoring windows (the {res.method} score reconstructs nothing).")
    if res.metrics is None:  # no labels: what was scored and flagged, and the scores' spread
        first = [{"heading": "Summary", "table": res.summary, "text": "No labels: scores and the files and windows "
                  "above the threshold, without detection metrics (give --labels for AUC and the ROC)."},
                 {"heading": "Scores", "images": ["histogram.png", "histogram_windows.png"]}]
    else:
        first = [{"heading": "Metrics", "table": res.metrics},
                 {"heading": "ROC and scores", "images": ["roc.png", "histogram.png", "histogram_windows.png"]}]
    write_html_report(folder / "report.html", "latentbridge anomaly report", [*first, examples])
