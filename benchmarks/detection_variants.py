"""Variants of the default detector's distance, measured on ``bench_detection.py``'s tasks before any of
them could become a detector of the toolkit.

For every task the default model of a finished ``bench_detection.py`` run (``WORK/TASK/adaptive/default``)
gives the settings; its feature extractor reads the training windows it was fitted on (the same
train/validation split) and the test files, and :func:`latentbridge.transforms.stats.window_statistics`
gives each window's statistics. Each variant below scores the test windows from those statistics; a
file's score is the mean over its windows, as ``anomaly score`` does. The ``default`` row must reproduce
``bench_detection.py``'s default figures (it is the same computation), which checks the harness.

Variants (statistics standardised by the training windows' mean and spread; "level split": band means
relative to the window's level, no c0, the level as one feature — :func:`separate_level`):

* ``default``             nearest-neighbour distance, level split (``knn_stats``, the default)
* ``plain_knn``           the same without the level split (the ``knn`` preset)
* ``gauss``               Ledoit-Wolf Mahalanobis distance, plain statistics (the ``gauss`` preset)
* ``knn_level_wW``        the default with the level feature weighted W
* ``knn_kK``              mean distance to the K nearest
* ``shrunk_whiten_cC``    nearest-neighbour distance after whitening with the training covariance shrunk
                          towards the identity: eigenvalues λ → λ + C·mean(λ) (C → ∞: the default; C → 0:
                          full whitening, a kNN form of the Gaussian)
* ``knn+whiten_cC``       sum of the default's and ``shrunk_whiten_cC``'s distances, each standardised by
                          its training windows' leave-one-out distances (median, 90th percentile)
* ``level_wW_whiten_cC``  both: the level feature weighted W, then the whitening shrunk by C
* ``gmm_K``               negative log-likelihood under a K-component Gaussian mixture (full covariances
                          regularised by 0.1 on the standardised scale)
* ``local_maha_K``        Ledoit-Wolf Mahalanobis distance to the K nearest training windows' Gaussian
* ``bands_only``, ``cepstra_only``  the default on one family of statistics (plus the level)
* ``family_bB_sS_cC``     the default with its families weighted: band means B, band spreads S, cepstral
                          statistics C (the level 1)
* ``delta_wW``            the default plus each band's frame-to-frame change (the RMS over time of the
                          difference of consecutive active frames: how fast the band moves, which impacts and
                          modulation raise), standardised and weighted W
* ``delta_wW_level_wL``   both: the frame-to-frame change weighted W, the level feature weighted L
* ``lof_kK``              the default's distance over the local scale: the mean leave-one-out nearest-neighbour
                          distance of the K nearest training windows (a local outlier factor's idea)

Each variant's AUC is checked against the issue's rule with the intervals of ``results/bench_detection.json``
(the best adaptive detector of the task other than the default, which a variant would replace, and its
95 % bootstrap interval): "pass" when the variant's AUC is at least the lower end of the best's interval.

    python benchmarks/bench_detection.py --work /tmp/det_work --detectors default --modes adaptive  # models
    python benchmarks/detection_variants.py --work /tmp/det_work

A setting chosen on the benchmark's own test files is no evidence, so the same variants can be measured on
replicates of the six tasks built from other seeds and other speakers (``_detection_tasks.VALIDATION``),
against the best rows of a ``bench_detection.py`` run on those replicates:

    python benchmarks/bench_detection.py --tasks v_synth,v_fsdd_lucas,v_fsdd_nicolas,v_fsdd_unseen,v_faint_long,v_gain \
        --modes adaptive --detectors default,gauss,knn,pca --work /tmp/det_val --jobs 2
    mv benchmarks/results/bench_detection_partial.json benchmarks/results/bench_detection_validation.json
    python benchmarks/detection_variants.py --work /tmp/det_val --tasks v_synth,v_fsdd_lucas,v_fsdd_nicolas,v_fsdd_unseen,v_faint_long,v_gain \
        --reference benchmarks/results/bench_detection_validation.json --suffix _validation

Results: ``benchmarks/results/detection_variants{,_validation}.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, table, write_results  # noqa: E402
from _detection_tasks import TASKS, build  # noqa: E402


def task_statistics(task_name: str, work: Path, data: Path) -> dict:
    import torch

    from latentbridge.data.audio import list_files
    from latentbridge.data.holdout import split_train_val
    from latentbridge.tasks.anomaly import Detector
    from latentbridge.transforms.stats import window_statistics

    task = build(task_name, data)
    det = Detector.load(work / task_name / "adaptive" / "default" / "model")
    ex = det.extractor()
    train, val = split_train_val(ex.extract(list_files([task.train]), skip_bad=True), det.cfg.data.val_fraction,
                                 det.cfg.train.seed)
    test = ex.extract(list_files([task.test]), skip_bad=True)
    model = det.model

    def stats(wf):
        with torch.no_grad():
            return torch.cat([window_statistics(torch.from_numpy(wf.features[i:i + 512]), model.dct, model.top_db)
                              for i in range(0, len(wf), 512)]).double().numpy()

    y = np.array([int(f.parent.name == "anomalous") for f in test.files])
    return {"train": stats(train), "val": stats(val), "test": stats(test), "file_index": test.file_index, "y": y,
            "train_file_index": train.file_index, "val_file_index": val.file_index,
            "n_bands": int(train.features.shape[1] * train.features.shape[2]),
            "train_delta": band_change(train.features, model.top_db), "val_delta": band_change(val.features, model.top_db),
            "test_delta": band_change(test.features, model.top_db)}


def band_change(x: np.ndarray, top_db: float) -> np.ndarray:
    """(B, C, F, T) dB windows → (B, C·F): per band, the RMS of the change between consecutive frames that
    are both active (:func:`latentbridge.transforms.stats.active_frames`, the frames the statistics keep)."""
    import torch

    from latentbridge.transforms.stats import active_frames

    frames = x.reshape(len(x), -1, x.shape[-1]).astype(np.float64)
    active = active_frames(torch.from_numpy(frames), top_db).numpy()
    both = active[:, 1:] * active[:, :-1]
    w = both / np.maximum(both.sum(1, keepdims=True), 1.0)
    return np.sqrt((np.diff(frames, axis=2) ** 2 * w[:, None]).sum(-1) + 1e-6)


# ----------------------------------------------------------------------------- distances


def _split(s: np.ndarray, n_bands: int) -> np.ndarray:
    import torch

    from latentbridge.transforms.stats import separate_level

    return separate_level(torch.from_numpy(s), n_bands).numpy()


def _standardise(tr, te):
    mu, sd = tr.mean(0), np.maximum(tr.std(0, ddof=1), 1e-6)
    return (tr - mu) / sd, (te - mu) / sd


def _sqd(a, b):
    import torch

    from latentbridge.transforms.stats import squared_distances

    return squared_distances(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def _knn(tr, te, k=1):
    return np.sqrt(np.sort(_sqd(te, tr), 1)[:, :k]).mean(1)


def _loo_knn(tr):
    d2 = _sqd(tr, tr)
    np.fill_diagonal(d2, np.inf)
    return np.sqrt(d2.min(1))


def _shrunk_whiten(tr, te, c):
    lam, vec = np.linalg.eigh(np.cov(tr.T))
    lam = np.clip(lam, 0, None)
    tau = c * lam.mean()
    w = vec / np.sqrt(lam + tau) * np.sqrt(lam.mean() + tau)
    return tr @ w, te @ w


def _zscore_by_training(tr, te):
    ref = _loo_knn(tr)
    med = np.median(ref)
    return (_knn(tr, te) - med) / (np.percentile(ref, 90) - med + 1e-12)


def _lw_maha(x, te):
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(x)
    d = te - lw.location_
    return np.sqrt(np.einsum("bi,ij,bj->b", d, lw.precision_, d))


def variants() -> dict:
    def level_split(t, w=1.0):
        tr, te = _standardise(_split(t["train"], t["n_bands"]), _split(t["test"], t["n_bands"]))
        tr[:, -1] *= w
        te[:, -1] *= w
        return tr, te

    def groups(t, keep):
        """Columns of the level-split statistics kept: 0 band means and spreads, 1 cepstral ones; the
        level (last column) always."""
        nb, width = t["n_bands"], t["train"].shape[1]
        g = np.r_[np.zeros(2 * nb, int), np.ones(width - 2 * nb - 1, int), [2]]
        return np.isin(g, [*keep, 2])

    def gmm(t, k):
        from sklearn.mixture import GaussianMixture

        tr, te = level_split(t)
        return -GaussianMixture(k, covariance_type="full", reg_covar=0.1, random_state=0, n_init=2).fit(tr) \
            .score_samples(te)

    def local_maha(t, k):
        tr, te = level_split(t)
        idx = np.argsort(_sqd(te, tr), 1)[:, :k]
        return np.array([_lw_maha(tr[idx[i]], te[i:i + 1])[0] for i in range(len(te))])

    def combo(t, c):
        tr, te = level_split(t)
        return _zscore_by_training(tr, te) + _zscore_by_training(*_shrunk_whiten(tr, te, c))

    def subset(t, keep):
        tr, te = level_split(t)
        m = groups(t, keep)
        return _knn(tr[:, m], te[:, m])

    v = {
        "default": lambda t: _knn(*level_split(t)),
        "plain_knn": lambda t: _knn(*_standardise(t["train"], t["test"])),
        "gauss": lambda t: _lw_maha_centred(*_standardise(t["train"], t["test"])),
    }
    for w in (1.5, 2.0, 3.0):
        v[f"knn_level_w{w:g}"] = lambda t, w=w: _knn(*level_split(t, w))
    for k in (3, 10):
        v[f"knn_k{k}"] = lambda t, k=k: _knn(*level_split(t), k)
    for c in (0.1, 0.3, 1.0, 3.0, 10.0):
        v[f"shrunk_whiten_c{c:g}"] = lambda t, c=c: _knn(*_shrunk_whiten(*level_split(t), c))
    for c in (0.3, 1.0):
        v[f"knn+whiten_c{c:g}"] = lambda t, c=c: combo(t, c)
    for w in (1.0, 1.5, 2.0, 3.0):  # the level weight and the whitening together
        for c in (3.0, 10.0, 30.0):
            v[f"level_w{w:g}_whiten_c{c:g}"] = lambda t, w=w, c=c: _knn(*_shrunk_whiten(*level_split(t, w), c))
    for k in (1, 4, 8):
        v[f"gmm_{k}"] = lambda t, k=k: gmm(t, k)
    for k in (100, 300):
        v[f"local_maha_{k}"] = lambda t, k=k: local_maha(t, k)
    v["bands_only"] = lambda t: subset(t, [0])
    v["cepstra_only"] = lambda t: subset(t, [1])

    def family(t, wb, ws, wc):
        tr, te = level_split(t)
        nb, width = t["n_bands"], tr.shape[1]
        for cols, w in ((slice(0, nb), wb), (slice(nb, 2 * nb), ws), (slice(2 * nb, width - 1), wc)):
            tr[:, cols] *= w
            te[:, cols] *= w
        return _knn(tr, te)

    for wb, ws, wc in ((0.5, 1.0, 1.0), (1.0, 0.5, 1.0), (0.5, 0.5, 1.0), (1.0, 1.0, 1.5), (1.0, 1.0, 2.0)):
        v[f"family_b{wb:g}_s{ws:g}_c{wc:g}"] = lambda t, wb=wb, ws=ws, wc=wc: family(t, wb, ws, wc)

    def delta(t, w, wl=1.0):
        tr, te = level_split(t, wl)
        dtr, dte = _standardise(t["train_delta"], t["test_delta"])
        return _knn(np.hstack([tr, w * dtr]), np.hstack([te, w * dte]))

    def lof(t, k):
        """The nearest-neighbour distance over the local scale: the mean leave-one-out nearest-neighbour distance of
        the test window's k nearest training windows (a local outlier factor's idea: sparse regions of the training
        windows, a speaker's varied voice, tolerate larger distances than dense ones)."""
        tr, te = level_split(t)
        loo = _loo_knn(tr)
        d2 = _sqd(te, tr)
        idx = np.argsort(d2, 1)[:, :k]
        return np.sqrt(d2.min(1)) / np.maximum(loo[idx].mean(1), 1e-9)

    for k in (1, 5, 20):
        v[f"lof_k{k}"] = lambda t, k=k: lof(t, k)
    for w in (0.5, 1.0):
        v[f"delta_w{w:g}"] = lambda t, w=w: delta(t, w)
    for w in (0.3, 0.5):
        for wl in (1.5, 2.0):
            v[f"delta_w{w:g}_level_w{wl:g}"] = lambda t, w=w, wl=wl: delta(t, w, wl)
    return v


def _lw_maha_centred(tr, te):
    from sklearn.covariance import LedoitWolf

    p = LedoitWolf(assume_centered=True).fit(tr).precision_
    return np.einsum("bi,ij,bj->b", te, p, te)


def file_auc(window_scores: np.ndarray, t: dict) -> float:
    from sklearn.metrics import roc_auc_score

    n = len(t["y"])
    s, c = np.zeros(n), np.zeros(n)
    np.add.at(s, t["file_index"], window_scores)
    np.add.at(c, t["file_index"], 1)
    return float(roc_auc_score(t["y"], s / np.maximum(c, 1)))


def best_of_bench(reference: Path = RESULTS_DIR / "bench_detection.json") -> dict:
    """Per task: the best adaptive row of a ``bench_detection.py`` results file other than the default's
    (the detector a variant would replace), with its AUC interval."""
    res = json.loads(Path(reference).read_text())
    out = {}
    for task, info in res["tasks"].items():
        rows = [r for r in info["rows"] if r["mode"] == "adaptive" and r.get("auc") is not None
                and r["detector"] != res["default"]]
        b = max(rows, key=lambda r: r["auc"])
        out[task] = {"detector": b["detector"], "auc": b["auc"], "low": b["auc_ci"][0]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/det_work", help="a bench_detection.py work folder (its default models)")
    ap.add_argument("--data", default="/tmp/det_data", help="bench_detection.py's data folder")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--reference", default=str(RESULTS_DIR / "bench_detection.json"),
                    help="the bench_detection.py results whose best rows a variant must reach (for the validation "
                         "replicates: their partial run's results)")
    ap.add_argument("--suffix", default="", help="results file name suffix")
    ap.add_argument("--only", default="", help="measure only the variants whose names start with one of these "
                                               "(comma-separated; default: all)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    tasks = [t for t in args.tasks.split(",") if t]
    stats = {t: task_statistics(t, Path(args.work), Path(args.data)) for t in tasks}
    best = best_of_bench(Path(args.reference))
    rows = []
    only = tuple(x for x in args.only.split(",") if x)
    for name, fn in variants().items():
        if only and not name.startswith(only):
            continue
        row = {"variant": name}
        for t in tasks:
            row[t] = round(file_auc(fn(stats[t]), stats[t]), 4)
        row["passes"] = sum(row[t] >= best[t]["low"] - 1e-9 for t in tasks)
        row["worst"] = min(row[t] for t in tasks)
        row["margin"] = round(min(row[t] - best[t]["low"] for t in tasks), 4)  # < 0: the worst shortfall
        rows.append(row)
        print(name, [row[t] for t in tasks], f"passes {row['passes']}/{len(tasks)}", flush=True)
    print(table(rows, ["variant", *tasks, "worst", "margin", "passes"], {t: ".3f" for t in [*tasks, "worst"]}))
    write_results("detection_variants" + args.suffix, {"best_in_bench_detection": best, "reference": args.reference,
                                                        "tasks": tasks, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
