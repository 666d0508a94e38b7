"""More variants of the default detector's distance, measured offline as ``detection_variants.py`` measures its own
(this script reuses its statistics, distances and reference rule): robust standardisation (median and IQR or MAD),
other file aggregations of the window distances (max, median, top share, trimmed, power and geometric means),
training files as neighbours (k nearest files, a file-to-file Chamfer distance, the kNN of file-mean statistics),
p-value fusion of the default's kNN and the Gaussian (each score's tail over the held-out normal windows, summed
(Fisher) or the larger (min-p)), kNN in a PCA subspace (with the residual's Mahalanobis norm), cosine kNN, and robust
standardisation with the level weight and the band change of ``detection_variants.py``. Definitions in
:func:`variants`.

    python benchmarks/bench_detection.py --work /tmp/det_work --detectors default --modes adaptive   # the models
    python benchmarks/detection_variants_more.py --work /tmp/det_work --reference benchmarks/results/bench_detection_session18.json
    python benchmarks/detection_variants_more.py --work /tmp/det_val --tasks v_synth,v_fsdd_lucas,v_fsdd_nicolas,v_fsdd_unseen,v_faint_long,v_gain \
        --reference benchmarks/results/bench_detection_validation_session19.json \
        --reference2 benchmarks/results/bench_detection_validation.json --suffix _validation

Results: ``benchmarks/results/detection_variants_more{,_validation}.json``.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402
from _detection_tasks import TASKS  # noqa: E402
import detection_variants as dv  # noqa: E402


# ----------------------------------------------------------------------------- helpers


def _std(tr, others, how="mean"):
    """Standardise tr and every array of ``others`` by tr's location and scale."""
    if how == "mean":
        mu, sd = tr.mean(0), tr.std(0, ddof=1)
    elif how == "iqr":
        q1, mu, q3 = np.percentile(tr, [25, 50, 75], axis=0)
        sd = (q3 - q1) / 1.349
    elif how == "mad":
        mu = np.median(tr, 0)
        sd = 1.4826 * np.median(np.abs(tr - mu), 0)
    else:
        raise ValueError(how)
    # a robust scale of 0 (a constant majority) falls back to the std
    sd = np.where(sd > 1e-6, sd, np.maximum(tr.std(0, ddof=1), 1e-6))
    return (tr - mu) / sd, [(o - mu) / sd for o in others]


def prepared(t, split=True, how="mean", level_w=1.0, log_spreads=False):
    """(train, val, test) standardised statistics, level split or not."""
    arrs = [t["train"], t["val"], t["test"]]
    if log_spreads:  # spreads (band stds, cepstral stds) are positive and right-skewed: their log
        nb, width = t["n_bands"], t["train"].shape[1]
        nm = (width - 2 * nb) // 2
        cols = np.r_[nb:2 * nb, 2 * nb + nm:width]
        arrs = [a.copy() for a in arrs]
        for a in arrs:
            a[:, cols] = np.log(a[:, cols])
    if split:
        arrs = [dv._split(a, t["n_bands"]) for a in arrs]
    tr, (va, te) = _std(arrs[0], arrs[1:], how)
    if level_w != 1.0 and split:
        for a in (tr, va, te):
            a[:, -1] *= level_w
    return tr, va, te


def agg(window_scores, file_index, n, how="mean"):
    s = np.asarray(window_scores, float)
    fi = np.asarray(file_index)
    if how == "mean":
        c = np.bincount(fi, minlength=n)
        return np.bincount(fi, weights=s, minlength=n) / np.maximum(c, 1)
    out = np.zeros(n)
    order = np.argsort(fi, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(fi, minlength=n))]
    ss = s[order]
    for f in range(n):
        x = np.sort(ss[bounds[f]:bounds[f + 1]])
        if len(x) == 0:
            out[f] = np.nan
            continue
        m = len(x)
        if how == "max":
            out[f] = x[-1]
        elif how == "median":
            out[f] = np.median(x)
        elif how.startswith("top"):  # mean of the ceil(q·m) largest
            q = float(how[3:]) / 100
            out[f] = x[m - max(1, math.ceil(q * m)):].mean()
        elif how.startswith("trim"):  # symmetric trimmed mean, q of each end
            q = float(how[4:]) / 100
            g = int(math.floor(q * m))
            out[f] = x[g:m - g].mean() if m - 2 * g > 0 else x.mean()
        elif how.startswith("pmean"):
            p = float(how[5:])
            out[f] = np.mean(x ** p) ** (1 / p)
        elif how == "geo":
            out[f] = np.exp(np.mean(np.log(np.maximum(x, 1e-12))))
        else:
            raise ValueError(how)
    return out


def nn_dist(tr, te, k=1):
    return dv._knn(tr, te, k)


def per_file_min(d2, fidx, n_files):
    """(N, M) squared distances, file index of the M columns → (N, n_files): min over each file's columns."""
    order = np.argsort(fidx, kind="stable")
    counts = np.bincount(fidx, minlength=n_files)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    keep = counts > 0
    return np.minimum.reduceat(d2[:, order], starts[keep], axis=1)


# p-values against the held-out normal (validation) windows, exponential tail beyond their 90th percentile
def neglogp(cal, s, tail=0.10):
    cal = np.sort(np.asarray(cal, float))
    n = len(cal)
    ge = n - np.searchsorted(cal, s, side="left")  # #cal >= s
    p = (1 + ge) / (n + 1)
    u = np.quantile(cal, 1 - tail)
    exc = cal[cal > u] - u
    beta = max(exc.mean(), 1e-12) if len(exc) else max(cal.std(), 1e-12)
    pu = (1 + np.sum(cal > u)) / (n + 1)
    hi = s > u
    return np.where(hi, -np.log(pu) + (s - u) / beta, -np.log(p))


def lw_maha(tr, te):
    return dv._lw_maha_centred(tr, te)


def variants() -> dict:
    v = {}
    # references (reproduce the harness)
    v["default"] = lambda t: nn_dist(*prepared(t)[::2])
    v["plain_knn"] = lambda t: nn_dist(*prepared(t, split=False)[::2])
    v["gauss"] = lambda t: lw_maha(*prepared(t, split=False)[::2])

    # 1. robust standardisation
    for how in ("iqr", "mad"):
        v[f"robust_{how}"] = lambda t, how=how: nn_dist(*prepared(t, how=how)[::2])
        v[f"robust_{how}_plain"] = lambda t, how=how: nn_dist(*prepared(t, split=False, how=how)[::2])
    v["log_spreads"] = lambda t: nn_dist(*prepared(t, log_spreads=True)[::2])
    v["log_spreads_iqr"] = lambda t: nn_dist(*prepared(t, log_spreads=True, how="iqr")[::2])

    # 2. file aggregation of the default's window distances
    for how in ("max", "median", "top10", "top25", "top50", "trim10", "trim25", "pmean2", "pmean4", "geo"):
        v[f"agg_{how}"] = lambda t, how=how: {"window": nn_dist(*prepared(t)[::2]), "agg": how}

    # 3. training files as neighbours
    def kfiles(t, k):
        tr, _, te = prepared(t)
        nf = int(t["train_file_index"].max()) + 1
        m = per_file_min(dv._sqd(te, tr), t["train_file_index"], nf)
        return np.sqrt(np.sort(m, 1)[:, :k]).mean(1)

    for k in (3, 5):
        v[f"kfiles_{k}"] = lambda t, k=k: kfiles(t, k)

    def chamfer(t):
        """min over training files of the mean over the test file's windows of the distance to that file's
        nearest window: every window of a test file must be matched by one and the same training file."""
        tr, _, te = prepared(t)
        nf = int(t["train_file_index"].max()) + 1
        m = np.sqrt(per_file_min(dv._sqd(te, tr), t["train_file_index"], nf))  # (test windows, train files)
        n = len(t["y"])
        fi = t["file_index"]
        sums = np.zeros((n, m.shape[1]))
        np.add.at(sums, fi, m)
        return {"file": (sums / np.maximum(np.bincount(fi, minlength=n), 1)[:, None]).min(1)}

    v["chamfer_file"] = chamfer

    def file_mean_knn(t):
        tr, _, te = prepared(t)
        nf = int(t["train_file_index"].max()) + 1
        fm_tr = np.stack([tr[t["train_file_index"] == f].mean(0) for f in range(nf) if (t["train_file_index"] == f).any()])
        n = len(t["y"])
        fm_te = np.stack([te[t["file_index"] == f].mean(0) for f in range(n)])
        return {"file": nn_dist(fm_tr, fm_te)}

    v["file_mean_knn"] = file_mean_knn

    # 4. p-value fusion of the default kNN and the Gaussian, calibrated on the held-out normal windows
    def pv(t, gauss_split, how):
        tr, va, te = prepared(t)
        knn_va, knn_te = nn_dist(tr, va), nn_dist(tr, te)
        gtr, gva, gte = prepared(t, split=gauss_split)
        from sklearn.covariance import LedoitWolf

        p = LedoitWolf(assume_centered=True).fit(gtr).precision_
        g = lambda x: np.einsum("bi,ij,bj->b", x, p, x)  # noqa: E731
        a, b = neglogp(knn_va, knn_te), neglogp(g(gva), g(gte))
        if how == "fisher":
            return a + b
        if how == "minp":
            return np.maximum(a, b)
        if how == "knn_only":
            return a
        if how == "gauss_only":
            return b
        raise ValueError(how)

    for gs in (False, True):
        for how in ("fisher", "minp"):
            v[f"pfuse_{how}{'_gsplit' if gs else ''}"] = lambda t, gs=gs, how=how: pv(t, gs, how)
    v["p_knn_only"] = lambda t: pv(t, False, "knn_only")

    # 5. PCA-reduced / cosine kNN
    def pca_knn(t, keep):
        tr, _, te = prepared(t)
        lam, vec = np.linalg.eigh(np.cov(tr.T))
        lam, vec = lam[::-1], vec[:, ::-1]
        r = int(np.searchsorted(np.cumsum(lam) / lam.sum(), keep) + 1)
        return nn_dist(tr @ vec[:, :r], te @ vec[:, :r])

    for keep in (0.95, 0.99):
        v[f"pca_knn_{int(keep * 100)}"] = lambda t, keep=keep: pca_knn(t, keep)

    def pca_knn_resid(t, keep):
        """kNN in the principal subspace plus the Mahalanobis norm of the residual (each standardised on the
        validation windows' median / 90th percentile, summed)."""
        tr, va, te = prepared(t)
        mu = tr.mean(0)
        lam, vec = np.linalg.eigh(np.cov(tr.T))
        lam, vec = lam[::-1], vec[:, ::-1]
        r = int(np.searchsorted(np.cumsum(lam) / lam.sum(), keep) + 1)
        P, Q, lq = vec[:, :r], vec[:, r:], np.maximum(lam[r:], 1e-9)
        kva, kte = nn_dist(tr @ P, va @ P), nn_dist(tr @ P, te @ P)
        res = lambda x: np.sqrt((((x - mu) @ Q) ** 2 / lq).sum(1))  # noqa: E731
        rva, rte = res(va), res(te)
        z = lambda c, s: (s - np.median(c)) / (np.percentile(c, 90) - np.median(c) + 1e-12)  # noqa: E731
        return z(kva, kte) + z(rva, rte)

    for keep in (0.95, 0.99):
        v[f"pca_knn+resid_{int(keep * 100)}"] = lambda t, keep=keep: pca_knn_resid(t, keep)

    def cosine(t):
        tr, _, te = prepared(t)
        a = tr / np.linalg.norm(tr, axis=1, keepdims=True)
        b = te / np.linalg.norm(te, axis=1, keepdims=True)
        return 1 - (b @ a.T).max(1)

    v["cosine_knn"] = cosine

    # combinations of the robust standardisation with ideas documented before (level weight, band change)
    for w in (1.5, 2.0):
        v[f"robust_iqr_level_w{w:g}"] = lambda t, w=w: nn_dist(*prepared(t, how="iqr", level_w=w)[::2])

    def robust_delta(t, w, wl):
        tr, _, te = prepared(t, how="iqr", level_w=wl)
        dtr, (dte,) = _std(t["train_delta"], [t["test_delta"]], "iqr")
        return nn_dist(np.hstack([tr, w * dtr]), np.hstack([te, w * dte]))

    for w, wl in ((0.5, 1.0), (0.5, 1.5), (0.3, 2.0)):
        v[f"robust_iqr_delta_w{w:g}_level_w{wl:g}"] = lambda t, w=w, wl=wl: robust_delta(t, w, wl)

    # p-value fusions with other members
    def pfuse_members(t, members):
        from sklearn.covariance import LedoitWolf

        total = 0
        for m in members:
            if m in ("knn", "knn_iqr", "plain_knn"):
                tr, va, te = prepared(t, split=m != "plain_knn", how="iqr" if m == "knn_iqr" else "mean")
                total = total + neglogp(nn_dist(tr, va), nn_dist(tr, te))
            elif m == "gauss":
                gtr, gva, gte = prepared(t, split=False)
                p = LedoitWolf(assume_centered=True).fit(gtr).precision_
                g = lambda x: np.einsum("bi,ij,bj->b", x, p, x)  # noqa: E731
                total = total + neglogp(g(gva), g(gte))
        return total

    v["pfuse_fisher_knn_iqr+gauss"] = lambda t: pfuse_members(t, ["knn_iqr", "gauss"])
    v["pfuse_fisher_knn+plain_knn"] = lambda t: pfuse_members(t, ["knn", "plain_knn"])
    v["pfuse_fisher_knn+gauss+plain_knn"] = lambda t: pfuse_members(t, ["knn", "gauss", "plain_knn"])
    return v


def file_scores(out, t):
    n = len(t["y"])
    if isinstance(out, dict) and "file" in out:
        return out["file"]
    if isinstance(out, dict):
        return agg(out["window"], t["file_index"], n, out["agg"])
    return agg(out, t["file_index"], n, "mean")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--data", default="/tmp/det_data", help="bench_detection.py's data folder")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--reference", required=True)
    ap.add_argument("--reference2", default="", help="a second reference (margins reported against it too)")
    ap.add_argument("--suffix", default="")
    ap.add_argument("--only", default="")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(1)
    tasks = [t for t in args.tasks.split(",") if t]
    stats = {t: dv.task_statistics(t, Path(args.work), Path(args.data)) for t in tasks}
    for t in tasks:
        s = stats[t]
        print(t, "train", s["train"].shape, "val", s["val"].shape, "test", s["test"].shape, "files", len(s["y"]),
              flush=True)
    refs = {"ref": dv.best_of_bench(Path(args.reference))}
    if args.reference2:
        refs["ref2"] = dv.best_of_bench(Path(args.reference2))
    rows = []
    only = tuple(x for x in args.only.split(",") if x)
    for name, fn in variants().items():
        if only and not name.startswith(only) and name != "default":
            continue
        row = {"variant": name}
        for t in tasks:
            fs = file_scores(fn(stats[t]), stats[t])
            row[t] = round(float(roc_auc_score(stats[t]["y"], fs)), 4)
        for rn, best in refs.items():
            sfx = "" if rn == "ref" else "_2"
            row["passes" + sfx] = sum(row[t] >= best[t]["low"] - 1e-9 for t in tasks)
            row["margin" + sfx] = round(min(row[t] - best[t]["low"] for t in tasks), 4)
        row["fails"] = " ".join(f"{t}({row[t] - refs['ref'][t]['low']:+.4f})" for t in tasks
                                if row[t] < refs["ref"][t]["low"] - 1e-9)
        rows.append(row)
        print(name, [row[t] for t in tasks], {k: row[k] for k in row if k.startswith(("passes", "margin", "fails"))},
              flush=True)
    cols = ["variant", *tasks, "margin", "passes", *(["margin_2", "passes_2"] if args.reference2 else [])]
    print(table(rows, cols, {t: ".4f" for t in tasks}))
    write_results("detection_variants_more" + args.suffix, {"references": refs, "tasks": tasks, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
