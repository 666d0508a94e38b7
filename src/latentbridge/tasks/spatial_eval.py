"""Evaluation of a spatial conditional VAE against the classical baselines (compute only).

On every held-out section that has a clean map (the test split of the run's data, or every
section under ``--data``), three tasks are run, by the model and by the baselines of
:mod:`latentbridge.tasks.baselines`, on the same inputs:

- ``denoise``: the measured section; scored on its valid pixels;
- ``inpaint``: the measured section with a further 20 % of its valid pixels hidden (random pixels,
  small discs and a scan-line gap, seeded by the section's index), scored on every missing pixel
  inside the section (hidden ones and the section's own dropouts);
- ``upscale``: the 2 x 2 block means of the measured section, enlarged 2x; scored on every pixel of
  the section.

Scores (:mod:`latentbridge.metrics.spatial`): PSNR, SSIM and spectral angle against the clean
map, averaged over the sections that have the score (SSIM needs 3 x 3 pixels: a section under 3
pixels is left out of the SSIM's mean, and ``ssim_sections`` of each task counts those scored;
``psnr_sections`` those with a PSNR: a clean map constant on every channel has none);
for the model also the share of true values within ±2σ (and ±1σ). Each baseline runs at the
parameter that scored best on the run's validation sections (their clean maps; defaults when
none has one).

Sections under ``--data`` are read as ``enhance`` reads its input
(:func:`~latentbridge.tasks.spatial_inputs.read_for_model`: the model's m/z list, tolerance and
normalisation; channels labelled with m/z must be the model's, in its order). Where a section is
given both as imzML and as an array (a folder or manifest holding both), the kind of file the
model was trained on is read (runs that do not record it: imzML for a model with an m/z list,
arrays for one without).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from latentbridge.errors import ConfigError, DataError
from latentbridge.tasks import baselines as B

log = logging.getLogger(__name__)

HIDE_FRACTION = 0.2


@dataclass
class SpatialEvaluation:
    metrics: dict
    examples: dict = field(default_factory=dict)
    """Per task: the :class:`~latentbridge.tasks.spatial.Enhanced` result of the first test section
    and the best baseline's map (``baseline``, ``baseline_name``)."""


def _inputs(section, index: int):
    """(denoise, inpaint, upscale) inputs of a section: observed masks and the low-resolution map."""
    from latentbridge.data.spatial import hide_pixels

    rng = np.random.default_rng(1000 + index)
    hidden = hide_pixels(section.valid, HIDE_FRACTION, rng)
    inpaint_obs = section.valid & ~hidden
    low, low_valid = B.block_mean(np.asarray(section.values), section.valid)
    return inpaint_obs, low, low_valid


def _baseline_cases(section, index: int):
    """Per task, the baseline arguments, the truth and the scored pixels of one section."""
    values, valid, truth, outline = np.asarray(section.values), section.valid, np.asarray(section.truth), section.outline
    inpaint_obs, low, low_valid = _inputs(section, index)
    missing = outline & ~inpaint_obs
    h2, w2 = low.shape[0] * 2, low.shape[1] * 2
    masked = np.where(inpaint_obs[..., None], values, 0.0)
    return {
        "denoise": ((values, valid), truth, valid),
        "inpaint": ((masked, inpaint_obs, missing), truth, missing),
        "upscale": ((low, low_valid), truth[:h2, :w2], outline[:h2, :w2]),
    }


BASELINES = {"denoise": B.DENOISERS, "inpaint": B.INPAINTERS, "upscale": B.UPSCALERS}


def _tune_baselines(sections, bar=None) -> dict[str, dict[str, object]]:
    cases = [_baseline_cases(s, 100 + i) for i, s in enumerate(sections)]

    def tuned(b, task):
        value = B.tune(b, [c[task] for c in cases])
        if bar is not None:
            bar.update()
        return value

    return {task: {name: tuned(b, task) for name, b in BASELINES[task].items()} for task in BASELINES}


def _section_means(rows: list[dict], keys) -> dict:
    """Per key, the mean over the sections that have a finite value (NaN when none has one)."""
    from latentbridge.metrics.spatial import finite_mean

    return {k: finite_mean([r[k] for r in rows]) for k in keys}


def evaluate(run_dir: str | Path, data: str | None = None, progress: bool = False) -> SpatialEvaluation:
    """The run's enhancement of its held-out sections (or of every section of ``data``), task by task, against the
    baselines tuned on its validation sections; ``progress``: a bar of the baselines tuned and the sections' tasks
    (minutes of silence on sections of 400 x 480)."""
    from latentbridge.utils import progress_bar

    with progress_bar(0, progress, "evaluating") as bar:
        return _evaluate(run_dir, data, bar)


def _evaluate(run_dir: str | Path, data: str | None, bar) -> SpatialEvaluation:
    from latentbridge.data.spatial import PER_FILE, list_sections, load_sections
    from latentbridge.metrics.spatial import enhancement_metrics
    from latentbridge.models.hub import load_model
    from latentbridge.data.spatial_labels import check_sections
    from latentbridge.tasks.spatial import enhance_section
    from latentbridge.tasks.spatial_inputs import read_for_model

    t0 = time.time()
    saved = load_model(run_dir)
    cfg, spec = saved.workflow, saved.transform
    info = saved.info.get("data") or {}
    if data:
        kind = info.get("files") or ("imzml" if spec.mz else "arrays")
        sections = [read_for_model(spec, e["path"], info.get("files"), mask=e.get("mask"), truth=e["truth"],
                                   tissue=e["tissue"], name=e["name"])
                    for e in list_sections(data, cfg.data.format, prefer=kind)]
        check_sections(sections, None, data)  # one file per section name
        scope = f"every section under {data} ({', '.join(sorted({Path(s.source).suffix for s in sections}))})"
    else:
        root = Path(cfg.data.root) if cfg.data.root else None
        if root is not None and not root.is_absolute() and not root.exists():  # "does not exist" named no cause
            raise DataError(root, f"the run's data.root, relative to the folder it was trained from, is not under "
                                  f"{Path.cwd()}: run evaluate from there, or give the sections with --data DIR")
        _, sections, _ = load_sections(cfg.data, spec.normalized_over or PER_FILE)
        scope = f"the test split of {cfg.data.root}"
        if not sections:  # it blamed the clean maps, which every section held
            raise DataError(cfg.data.root, "the run holds out no test section (a folder of no synthetic test "
                                           "split, and no data.test_sections at train): name them at train (-o "
                                           "data.test_sections=[NAME, ...]), or score other sections with --data DIR")
    sections = [s for s in sections if s.truth is not None]
    if not sections:
        raise DataError(data or cfg.data.root, "no test section with a clean map (NAME.truth.npy) to score against")
    # baselines at their best grid value on the run's validation sections (never on the sections scored)
    val_names = set(info.get("val_sections") or [])
    tuning, untuned = [], ""
    if val_names:
        try:
            train_all, _, _ = load_sections(cfg.data, spec.normalized_over or PER_FILE)
        except (DataError, ConfigError, OSError) as e:
            untuned = f" (the run's validation sections are not readable: {e})"
            log.warning("baselines at their default parameters%s", untuned)
        else:
            tuning = [s for s in train_all if s.name in val_names and s.truth is not None]
    bar.total = (sum(map(len, BASELINES.values())) if tuning else 0) + len(sections) * len(BASELINES)
    params = _tune_baselines(tuning, bar) if tuning else {t: {n: None for n in BASELINES[t]} for t in BASELINES}
    n_samples = cfg.patches.samples
    per_task: dict[str, list[dict]] = {t: [] for t in BASELINES}
    per_base: dict[str, dict[str, list[dict]]] = {t: {n: [] for n in BASELINES[t]} for t in BASELINES}
    pooled_in, pooled_n = 0, 0
    examples: dict = {}
    times = {t: 0.0 for t in BASELINES}
    for i, s in enumerate(sections):
        cases = _baseline_cases(s, i)
        inpaint_obs, low, low_valid = _inputs(s, i)
        runs = {
            "denoise": enhance_section(saved.model, spec, s, "denoise", n_samples=n_samples, seed=i),
            "inpaint": enhance_section(saved.model, spec, s, "inpaint", n_samples=n_samples, seed=i,
                                       observed=inpaint_obs),
            "upscale": enhance_section(saved.model, spec, type(s)(s.name, low, low_valid, s.source, None, None,
                                                                  s.labels), "upscale", n_samples=n_samples, seed=i),
        }
        for task, res in runs.items():
            args, truth, where = cases[task]
            est, sig = res.enhanced[:truth.shape[0], :truth.shape[1]], res.sigma[:truth.shape[0], :truth.shape[1]]
            m = enhancement_metrics(truth, est, where, sig)
            times[task] += res.seconds
            per_task[task].append(m)
            inside = np.abs(truth[where] - est[where]) <= 2 * sig[where]
            pooled_in += int(inside.sum())
            pooled_n += int(inside.size)
            outputs = {}
            for name, b in BASELINES[task].items():
                outputs[name] = B.run(b, args, params[task][name])
                per_base[task][name].append(enhancement_metrics(truth, outputs[name], where))
            bar.update()
            if i == 0:  # the figure's section; its baseline is the best over every section (chosen below)
                res.truth = truth
                examples[task] = {"result": res, "baselines": outputs, "where": where, "section": sections[0].name}
    metrics: dict = {"task": "spatial", "model": str(saved.path), "model_class": saved.info["model_class"],
                     "scope": scope, "sections": [s.name for s in sections], "n_sections": len(sections),
                     "channels": spec.channels, "mz": spec.mz, "hide_fraction_inpaint": HIDE_FRACTION,
                     "calibration": saved.info.get("calibration"),
                     "baseline_tuning": f"on {', '.join(s.name for s in tuning)}" if tuning
                     else f"defaults{untuned}"}
    for task in BASELINES:
        mean = _section_means(per_task[task], per_task[task][0])
        mean["ssim_sections"] = int(sum(np.isfinite(m["ssim"]) for m in per_task[task]))
        mean["psnr_sections"] = int(sum(np.isfinite(m["psnr"]) for m in per_task[task]))
        if not mean["psnr_sections"]:
            log.warning("%s: no section's clean map varies over the scored pixels, so no PSNR can be measured: "
                        "psnr and psnr_gain_db are left empty (null in metrics.json)", task)
        bases = {}
        for name, rows in per_base[task].items():
            bases[name] = _section_means(rows, ("psnr", "ssim", "sam"))
            if params[task][name] is not None:
                bases[name][BASELINES[task][name].param] = params[task][name]
        best = max(bases, key=lambda n: bases[n]["psnr"])
        if task in examples:  # the figure shows the baseline the table calls best (it took the first section's best)
            examples[task].update(baseline=examples[task].pop("baselines")[best], baseline_name=best)
        metrics[task] = {**mean, "baselines": bases, "best_baseline": best,
                         "psnr_gain_db": mean["psnr"] - bases[best]["psnr"], "seconds": round(times[task], 2)}
    metrics["uncertainty_coverage_2sigma"] = pooled_in / max(pooled_n, 1)
    metrics["seconds"] = round(time.time() - t0, 1)
    return SpatialEvaluation(metrics, examples)
