"""A choice at fit time, from the normal training files only, between the Gaussian (Ledoit-Wolf Mahalanobis, the
``gauss`` detector) and a kNN, measured offline over the default's per-window statistics as
``detection_variants.py`` measures its variants (this script reuses its statistics, its members through
``detection_variants_more.variants()`` and its reference rule).

Members (a file's score is the mean of its windows' scores, as ``anomaly score`` does):

* ``gauss``      LW Mahalanobis, plain statistics (the ``gauss`` detector)
* ``plain_knn``  nearest-neighbour distance, plain statistics (the ``knn`` detector)
* ``default``    nearest-neighbour distance, level split (the default; must reproduce the reference's AUC to 1e-4)
* ``robust_iqr``, ``robust_iqr_level_w2``, ``robust_iqr_delta_w0.3_level_w2``  the kNN-side variants of
                 ``detection_variants_more.variants()`` closest to the rule on the six tasks: the default with robust
                 standardisation (median, IQR), the level weighted 2, and each band's frame-to-frame change weighted 0.3

Rules (each looks only at the normal training windows, train and validation files pooled; 5 folds of whole files,
the files permuted by ``numpy.random.default_rng(0)``; each fold's statistics standardised by its training part):

* ``lw0.9``      the Liu-West shrunk kernel density N(mu + a(x_i - mu), h^2 S), S the LW covariance,
                 a = sqrt(1 - h^2), h = 0.9, has a higher mean held-out log-likelihood than the Gaussian N(mu, S)
                 (h = 1): the kNN side, else the Gaussian. Two pairs: [gauss | plain_knn] and [gauss | default].
* ``tail1.3``    the held-out Mahalanobis^2's 95th percentile over its median, divided by the chi^2's (as many
                 degrees of freedom as statistics), is above 1.3 (heavier tails than one Gaussian): kNN.
* ``files>100``  more than 100 normal training files: kNN. A deliberately spurious rule, a control.

Every criterion is paired with every kNN side: [gauss | X] for X in ``KNN_SIDES``.

Each AUC is checked against the issue's rule (``detection_variants.best_of_bench``: at least the lower end of the 95 %
interval of the reference's best non-default detector; margin = the worst AUC minus that end) and against the
reference's PCA row; ``rule_passes`` counts the tasks where both hold (per set of tasks: main, replicates, choice).
``rule_passes_vs_all`` counts them against the best row with the default included: where the default is the best, a
rule that would replace it must reach the default's own interval.

    python benchmarks/bench_detection.py --work /tmp/det_work --data /tmp/det_data --detectors default,gauss,knn,pca \
        --modes adaptive --jobs 1   # the models
    python benchmarks/detection_choice.py --work /tmp/det_work --data /tmp/det_data \
        --reference benchmarks/results/bench_detection_session19.json
    python benchmarks/detection_choice.py --work /tmp/det_val --data /tmp/det_data \
        --tasks v_synth,v_fsdd_lucas,v_fsdd_nicolas,v_fsdd_unseen,v_faint_long,v_gain \
        --reference benchmarks/results/bench_detection_validation_session19.json \
        --reference2 benchmarks/results/bench_detection_validation.json --suffix _validation

The tasks that tell multimodality apart from the number of files and from gain changes
(``_detection_tasks.CHOICE``), and every task at once against the references of its own runs (comma-separated):

    python benchmarks/bench_detection.py --tasks fsdd_unseen_few,synth_many,fsdd_unseen_gain,machines_mixed \
        --work /tmp/choice_work --data /tmp/choice_data --detectors default,gauss,knn,pca --modes adaptive --jobs 1
    # then rename results/bench_detection_partial.json to results/bench_detection_choice_tasks.json
    python benchmarks/detection_choice.py --work /tmp/choice_work --data /tmp/choice_data \
        --tasks synth,fsdd_george,fsdd_jackson,fsdd_unseen,faint_long,gain,v_synth,v_fsdd_lucas,v_fsdd_nicolas,\
v_fsdd_unseen,v_faint_long,v_gain,fsdd_unseen_few,synth_many,fsdd_unseen_gain,machines_mixed \
        --reference MAIN.json,REPLICATES.json,benchmarks/results/bench_detection_choice_tasks.json --suffix _all

Results: ``benchmarks/results/detection_choice{,_validation,_all}.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_results  # noqa: E402
from _detection_tasks import CHOICE, PROBES, TASKS, VALIDATION  # noqa: E402
import detection_variants as dv  # noqa: E402
import detection_variants_more as dvm  # noqa: E402

KNN_SIDES = ("plain_knn", "default", "robust_iqr", "robust_iqr_level_w2", "robust_iqr_delta_w0.3_level_w2")
MEMBERS = ("gauss", *KNN_SIDES)
H_LW = 0.9
TAIL = 1.3
MANY_FILES = 100
CRITERIA = {"lw": f"lw{H_LW:g}", "tail": f"tail{TAIL:g}", "files": f"files>{MANY_FILES}"}
# rule name -> (Gaussian side, kNN side, criterion name)
RULES = {f"{label} (gauss, {k})": ("gauss", k, c) for c, label in CRITERIA.items() for k in KNN_SIDES}
#: the letter after a rule's AUC in the table: its choice
ABBR = {"gauss": "G", "plain_knn": "P", "default": "D", "robust_iqr": "R", "robust_iqr_level_w2": "R2",
        "robust_iqr_delta_w0.3_level_w2": "RD"}
SETS = {"main": TASKS, "replicates": VALIDATION, "choice": tuple(CHOICE), "probes": tuple(PROBES)}


# ----------------------------------------------------------------------------- criteria (normal files only)


def pooled(t) -> tuple[np.ndarray, np.ndarray]:
    """All normal training windows (train and validation files, plain statistics) and each window's file."""
    x = np.vstack([t["train"], t["val"]])
    f = np.r_[t["train_file_index"], t["val_file_index"] + t["train_file_index"].max() + 1]
    return x, f


def folds(f: np.ndarray, k: int = 5, seed: int = 0) -> list[np.ndarray]:
    """k boolean masks of held-out windows, whole files in each."""
    perm = np.random.default_rng(seed).permutation(np.unique(f))
    return [np.isin(f, perm[i::k]) for i in range(k)]


def fold_loglik(tr: np.ndarray, te: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-densities of te under the Gaussian (mean, LW covariance S of tr) and under the shrunk kernel density
    N(mu + a(x_i - mu), h^2 S), a = sqrt(1 - h^2); and te's squared Mahalanobis distances."""
    from scipy.special import logsumexp
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf().fit(tr)
    lam, vec = np.linalg.eigh(lw.covariance_)
    w = vec / np.sqrt(lam)  # whitened by S, the kernel is isotropic with variance h^2
    z_tr, z_te = (tr - lw.location_) @ w, (te - lw.location_) @ w
    n, d = z_tr.shape
    const = 0.5 * (np.log(lam).sum() + d * np.log(2 * np.pi))
    maha2 = (z_te ** 2).sum(1)
    a = np.sqrt(1 - h * h)
    kde = logsumexp(-dv._sqd(z_te, a * z_tr) / (2 * h * h), axis=1) - np.log(n) - const - d * np.log(h)
    return -0.5 * maha2 - const, kde, maha2


def criteria(t) -> dict:
    from scipy.stats import chi2

    x, f = pooled(t)
    ll_g, ll_k, maha2 = [], [], []
    for held in folds(f):
        tr, (te,) = dvm._std(x[~held], [x[held]])
        g, k, m = fold_loglik(tr, te, H_LW)
        ll_g.append(g)
        ll_k.append(k)
        maha2.append(m)
    ll_g, ll_k, maha2 = map(np.concatenate, (ll_g, ll_k, maha2))
    d = x.shape[1]
    tail = (np.percentile(maha2, 95) / np.median(maha2)) / (chi2.ppf(0.95, d) / chi2.median(d))
    n_files = len(np.unique(f))
    return {"ll_gauss": float(ll_g.mean()), "ll_lw": float(ll_k.mean()), "tail": float(tail), "n_files": n_files,
            "knn_side": {"lw": bool(ll_k.mean() > ll_g.mean()), "tail": bool(tail > TAIL),
                         "files": bool(n_files > MANY_FILES)}}


# ----------------------------------------------------------------------------- references


def reference_auc(references: str, detector: str) -> dict:
    """task -> the adaptive AUC of one detector (e.g. ``default/knn``, ``pca/mse``) in bench_detection.py results
    files (comma-separated; a task's figures from the last file that has it)."""
    out = {}
    for ref in references.split(","):
        res = json.loads(Path(ref).read_text())
        out.update({task: next(r["auc"] for r in info["rows"] if r["mode"] == "adaptive" and r["detector"] == detector)
                    for task, info in res["tasks"].items()})
    return out


def best_of(references: str) -> dict:
    """``detection_variants.best_of_bench`` over comma-separated results files."""
    out = {}
    for ref in references.split(","):
        out.update(dv.best_of_bench(Path(ref)))
    return out


def best_of_all(references: str) -> dict:
    """Per task: the best adaptive row, the default's included (where the default is the best, a rule that
    replaces it must reach the default's own interval), with its AUC interval."""
    out = {}
    for ref in references.split(","):
        for task, info in json.loads(Path(ref).read_text())["tasks"].items():
            b = max((r for r in info["rows"] if r["mode"] == "adaptive" and r.get("auc") is not None),
                    key=lambda r: r["auc"])
            out[task] = {"detector": b["detector"], "auc": b["auc"], "low": b["auc_ci"][0]}
    return out


def judge(row: dict, tasks: list[str], best: dict, sfx: str = "") -> None:
    """The issue's rule on a row of per-task AUCs: passes, margin (the worst AUC minus the interval's low end)."""
    row["passes" + sfx] = sum(row[t] >= best[t]["low"] - 1e-9 for t in tasks)
    row["margin" + sfx] = round(min(row[t] - best[t]["low"] for t in tasks), 4)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="a bench_detection.py work folder (its default models)")
    ap.add_argument("--data", required=True, help="bench_detection.py's data folder")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--reference", required=True, help="the bench_detection.py results a rule must reach "
                                                       "(comma-separated files: each task from the last that has it)")
    ap.add_argument("--reference2", default="", help="a second reference (passes and margin against it too)")
    ap.add_argument("--suffix", default="", help="results file name suffix")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    tasks = [t for t in args.tasks.split(",") if t]
    refs = {"": best_of(args.reference)}
    if args.reference2:
        refs["_2"] = best_of(args.reference2)
    default_ref = reference_auc(args.reference, "default/knn")
    pca = reference_auc(args.reference, "pca/mse")
    best_all = best_of_all(args.reference)
    variants = dvm.variants()

    auc, crit = {}, {}
    for t in tasks:
        s = dv.task_statistics(t, Path(args.work), Path(args.data))
        auc[t] = {m: dv.file_auc(variants[m](s), s) for m in MEMBERS}
        assert abs(auc[t]["default"] - default_ref[t]) < 1e-4, (t, auc[t]["default"], default_ref[t])
        crit[t] = criteria(s)
        c = crit[t]
        print(t, {m: round(a, 4) for m, a in auc[t].items()}, f"files {c['n_files']}",
              f"LL gauss {c['ll_gauss']:.2f} LW0.9 {c['ll_lw']:.2f} tail {c['tail']:.3f}", flush=True)

    rows = [{"variant": m, **{t: auc[t][m] for t in tasks}} for m in MEMBERS]
    for name, (g_side, k_side, c) in RULES.items():
        choice = {t: k_side if crit[t]["knn_side"][c] else g_side for t in tasks}
        rows.append({"variant": name, **{t: auc[t][choice[t]] for t in tasks}, "choice": choice})
    for row in rows:
        for sfx, best in refs.items():
            judge(row, tasks, best, sfx)
        row["below_pca"] = [t for t in tasks if row[t] < pca[t]]
        ok = {t: row[t] >= refs[""][t]["low"] - 1e-9 and row[t] >= pca[t] for t in tasks}
        row["rule_passes"] = sum(ok.values())  # inside the best's interval and not below PCA
        row["rule_passes_by_set"] = {k: f"{sum(ok[t] for t in tasks if t in v)}/{sum(t in v for t in tasks)}"
                                     for k, v in SETS.items() if any(t in v for t in tasks)}
        strict = {t: row[t] >= best_all[t]["low"] - 1e-9 and row[t] >= pca[t] for t in tasks}
        row["rule_passes_vs_all"] = sum(strict.values())
        row["fails_vs_all"] = " ".join(f"{t}({row[t] - best_all[t]['low']:+.4f})" for t in tasks if not strict[t])
        row["fails"] = " ".join(f"{t}({row[t] - refs[''][t]['low']:+.4f}{', <PCA' if row[t] < pca[t] else ''})"
                                for t in tasks if not ok[t])

    shown = [{**r, **{t: f"{r[t]:.4f}" + (f" {ABBR[r['choice'][t]]}" if "choice" in r else "") for t in tasks},
              "by set": " ".join(f"{k} {v}" for k, v in r["rule_passes_by_set"].items())} for r in rows]
    print("reference (best non-default, low end):",
          {t: (refs[""][t]["detector"], round(refs[""][t]["low"], 4)) for t in tasks})
    print(table(shown, ["variant", *tasks, "passes", "margin", *(["passes_2", "margin_2"] if args.reference2 else []),
                        "rule_passes", "by set", "fails"], {"margin": "+.4f", "margin_2": "+.4f"}))
    print("against the best row with the default included:",
          {t: (best_all[t]["detector"], round(best_all[t]["low"], 4)) for t in tasks if best_all[t] != refs[""][t]})
    print(table(shown, ["variant", "rule_passes_vs_all", "fails_vs_all"]))
    for r in rows:
        for t in tasks:
            r[t] = round(r[t], 4)
    write_results("detection_choice" + args.suffix,
                  {"references": refs, "references_with_default": best_all, "reference_files": [args.reference, args.reference2], "tasks": tasks,
                   "settings": {"h": H_LW, "tail": TAIL, "many_files": MANY_FILES, "folds": 5, "seed": 0},
                   "criteria": crit, "auc": auc, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
