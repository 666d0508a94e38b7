"""Coordinate-conditioned enhancement of spatial maps (task ``spatial``): fit, enhance, evaluate
(compute only; :mod:`latentbridge.report.runs.spatial` writes the files).

Fit
    Sections come from ``data.root`` (:func:`latentbridge.data.spatial.load_sections`); the test
    split is left out. With three training sections or more, ``data.val_fraction`` of them (at
    least one, seeded) are held out for validation (the best checkpoint, the uncertainty
    calibration); otherwise validation patches come from the training sections. The per-channel
    normalisation is fitted on the training sections' valid pixels and saved as the model's
    :class:`~latentbridge.transforms.spec.SpatialTransform`. Training needs no clean map: every
    target is the measured patch (:class:`~latentbridge.data.spatial.PatchDataset`).

Noise model
    A model with the blind spot and ``fuse`` (the preset) fits its per-channel noise variance model
    on the validation patches after training (:meth:`~latentbridge.models.spatial.SpatialCVAE.fit_noise_model`),
    before the calibration below, so the calibrated σ is that of the fused maps. ``data.target=clean``
    switches the blind spot off (the targets are not the inputs' noisy values).

Uncertainty calibration
    After training, the predicted standard deviation (variance head + spread of decoded latent
    samples) is scaled per kind of pixel (observed, missing, coarse input) so that 95 % of the
    reference values lie within ±2σ on the validation patches. The reference is the clean map when
    the validation sections have one (the built-in data), else the measured value: then σ also
    covers the measurement noise (wider intervals). Which one was used is in ``config.json``.

Enhance (:func:`enhance`)
    ``denoise``: the input's valid pixels; ``inpaint``: also the holes inside the section (the
    model fills every pixel of its outline); ``upscale``: the input is a map to enlarge 2x, each
    value standing for a 2 x 2 block of the output. Whole sections go through
    :mod:`latentbridge.tasks.enhance` (tiles, bounded memory).

Evaluate (:func:`evaluate`): :mod:`latentbridge.tasks.spatial_eval`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentbridge.training.fit import best_loss_text
from latentbridge.errors import ConfigError, DataError
from latentbridge.tasks.enhance import PIXEL_KINDS, SEED_RANGE, coarse_source, full_source, run_tiles
from latentbridge.utils import check_seed

log = logging.getLogger(__name__)
TASKS = ("denoise", "inpaint", "upscale")


@dataclass
class SpatialFitResult:
    out_dir: Path
    n_train_sections: int
    n_val_sections: int
    n_test_sections: int
    best_val_loss: float | None
    epochs: int
    seconds: float
    calibration_reference: str


def _split_validation(sections, fraction: float, seed: int):
    if len(sections) < 3 or fraction <= 0:
        return sections, []
    n_val = max(1, int(round(fraction * len(sections))))
    order = np.random.default_rng(seed).permutation(len(sections))
    val = sorted(order[:n_val].tolist())
    return [s for i, s in enumerate(sections) if i not in val], [sections[i] for i in val]


def _stacked(dataset, keys=None, limit: int | None = None) -> dict[str, torch.Tensor]:
    """The first ``limit`` (default all) patches of ``dataset`` as one batch (every key, or ``keys``)."""
    items = [dataset[i] for i in range(len(dataset) if limit is None else min(len(dataset), limit))]
    return {k: torch.stack([it[k] for it in items]) for k in (keys or items[0])}


@torch.no_grad()
def calibrate(model, dataset, n_samples: int, seed: int, coverage: float = 0.95) -> dict:
    """Fit ``model.sigma_scale`` (one factor per kind of pixel) on ``dataset`` (see the module docstring)."""
    from latentbridge.utils import batched

    batch = _stacked(dataset)
    ref_key = "truth" if "truth" in batch else "target"
    gen = torch.Generator().manual_seed(seed)
    model.eval()
    out = batched(lambda b: tuple(model.enhance(b["x"], b["observed"], b["coarse"], b["coords"], n_samples, gen)[k]
                                  for k in ("mean", "aleatoric_var", "latent_var")), batch, batch_size=64)
    mean, avar, lvar = out
    z = ((batch[ref_key] - mean).abs() / (avar + lvar).sqrt().clamp_min(1e-8))  # (N, C, P, P)
    kind = torch.where(batch["coarse"] > 0, 2, torch.where(batch["observed"] > 0, 0, 1)).expand_as(z)
    # every measured pixel (a blind-spot patch's target is its hidden pixels only; the others were measured too)
    valid = ((batch["target_valid"] > 0) | ((batch["observed"] > 0) & (batch["coarse"] == 0))).expand_as(z)
    factors, counts = [], {}
    for i, name in enumerate(PIXEL_KINDS):
        sel = z[valid & (kind == i)]
        counts[name] = int(sel.numel())
        factors.append(float(torch.quantile(sel.double()[:2_000_000], coverage)) / 2.0 if sel.numel() else 1.0)
    model.sigma_scale.copy_(torch.tensor(factors, dtype=model.sigma_scale.dtype))
    zs = z / torch.tensor(factors, dtype=z.dtype)[kind]
    return {"reference": "clean map" if ref_key == "truth" else "measured values", "coverage_target": coverage,
            "factors": dict(zip(PIXEL_KINDS, factors)), "n_values": counts,
            "validation_coverage_2sigma": float((zs[valid] <= 2.0).double().mean())}


def fit(cfg, out_dir: str | Path, *, resume: bool = False, force: bool = False,
        notify=None) -> SpatialFitResult | None:  # notify: the workflow chooses no setting from the data
    from latentbridge.config.workflows import transform_spec
    from latentbridge.data.spatial import PatchDataset, channel_statistics, load_sections, prepare
    from latentbridge.io.imzml import overlapping_windows
    from latentbridge.models.registry import build_model
    from latentbridge.tasks.pipeline import training_run
    from latentbridge.training.fit import make_loader

    t0 = time.time()
    if twice := sorted({m for m in cfg.data.mz or () if cfg.data.mz.count(m) > 1}):  # one ion image trained as two
        raise ConfigError(f"data.mz: {', '.join(f'{m:g}' for m in twice)} given more than once: each m/z once")
    train_all, test, mz = load_sections(cfg.data)
    if mz is not None and any(str(x.source).lower().endswith(".imzml") for x in train_all) and \
            (both := overlapping_windows(mz, cfg.data.tolerance, cfg.data.tolerance_unit)):
        raise ConfigError(f"data.mz: {', '.join(f'{a:g} and {b:g}' for a, b in both)} lie within each other's window "
                          f"(data.tolerance {cfg.data.tolerance:g} {cfg.data.tolerance_unit}): a peak between them "
                          "would be read in both channels; narrow the tolerance or give one of them")
    train, val = _split_validation(train_all, cfg.data.val_fraction, cfg.train.seed)
    channels = train[0].shape[2]
    if mz is not None and len(mz) != channels:
        raise ConfigError(f"data.mz: {len(mz)} m/z values for sections of {channels} channels")
    stats = channel_statistics(train, cfg.data.scaling)
    spec = transform_spec(cfg, n_channels=channels, mz=mz, labels=train[0].labels,
                          normalized_over=train[0].normalized_over, **stats)
    fit_sections = prepare(train, spec)
    val_sections = prepare(val, spec) if val else fit_sections
    data_info = {"root": str(cfg.data.root), "format": cfg.data.format, "target": cfg.data.target,
                 "files": "imzml" if Path(train[0].source).suffix.lower() == ".imzml" else "arrays",
                 "train_sections": [s.name for s in train],
                 "val_sections": [s.name for s in val], "test_sections": [s.name for s in test],
                 "channels": channels, "shapes": {s.name: list(s.shape) for s in train_all + test},
                 "validation": "held-out sections" if val else "patches of the training sections"}
    # every data error before the run folder is touched
    model_cfg = cfg.model
    if cfg.data.target == "clean" and getattr(model_cfg, "blind_spot", 0):
        log.info("data.target=clean: the targets are not the inputs' noisy values, so no blind spot "
                 "(model.blind_spot set to 0)")
        model_cfg = model_cfg.model_copy(update={"blind_spot": 0})
    blind_spot = getattr(model_cfg, "blind_spot", 0)
    train_ds = PatchDataset(fit_sections, cfg.patches, cfg.patches.per_epoch, seed=cfg.train.seed,
                            target=cfg.data.target, blind_spot=blind_spot)
    val_ds = PatchDataset(val_sections, cfg.patches, cfg.patches.val_patches, seed=cfg.train.seed + 1, fixed=True,
                          target=cfg.data.target, blind_spot=blind_spot)
    sources = [Path(sec.source) for sec in train_all + test]  # recorded: a resume over changed sections is refused
    files = sources + [p.with_suffix(".ibd") for p in sources if p.with_suffix(".ibd").is_file()]
    with training_run(cfg, out_dir, resume=resume, force=force, data_files=files) as run:
        run.held_out = [Path(sec.source) for sec in list(val or []) + list(test)]
        model = build_model(model_cfg, n_channels=channels, patch_size=cfg.patches.size,
                            loss_weights=cfg.losses.model_dump())
        model.set_bounds(stats["lower"], stats["upper"])
        run.fit(model, make_loader(train_ds, cfg.train, True), make_loader(val_ds, cfg.train, False))
        if run.outcome is None:
            return None
        noise = fit_noise(model, val_ds)
        calibration = calibrate(model, val_ds, cfg.patches.samples, cfg.train.seed)
        _fit_latent_scale(model, val_ds)
        s = run.summary
        run.save(model, transform=spec, extra={"data": data_info, "calibration": calibration, "noise_model": noise},
                 card=_card(cfg, model.params, spec, data_info, calibration, s, noise))
        return SpatialFitResult(run.dir, len(train), len(val), len(test), s["best_val_loss"], s["epochs"],
                                round(time.time() - t0, 1), calibration["reference"])


def fit_noise(model, dataset) -> dict | None:
    """Fit the model's noise model (fusion of blind-spot predictions with the measurement; see
    :class:`~latentbridge.models.spatial.SpatialCVAE`) on ``dataset``'s patches; None for a model
    without fusion."""
    if not model.params.get("fuse"):
        return None
    batch = _stacked(dataset, ("x", "observed", "coarse", "coords"))
    try:
        coef = model.fit_noise_model(batch["x"], batch["observed"], batch["coarse"], batch["coords"])
    except ValueError as e:  # too small a validation set: the blind-spot prediction alone
        log.warning("no fusion with the measurement: %s (more patches.val_patches)", e)
        return {"fitted": False, "reason": str(e)}
    return {"fitted": True, "variance": "a * level + b per channel (normalised units)", **coef}


@torch.no_grad()
def _fit_latent_scale(model, dataset) -> None:
    batch = _stacked(dataset, ("x", "observed", "coarse", "coords"), limit=128)
    q = model.posterior(batch["x"], batch["observed"], batch["coarse"], model.condition(batch["coords"]))
    model.latent_scale.fill_(float(q.mode().double().std().clamp_min(1e-8)))


def _card(cfg, params: dict, spec, data: dict, cal: dict, training: dict, noise: dict | None = None) -> str:
    m = cfg.model
    paths = ("skip connections from the encoder" + (", the mean a correction to the input's local average"
                                                    if params["residual"] else "")) if params["skips"] \
        else "the latent the only path from input to output"
    blind = (f"blind spot: trained to predict hidden pixels only; {params['blind_spot']} passes per tile, each "
             "measured pixel predicted while hidden") if params["blind_spot"] else "no blind spot"
    if noise and noise.get("fitted"):
        blind += ("; each measured pixel fused with its own value (noise variance a * level + b per channel, "
                  "fitted on the validation patches)")
    elif noise:
        blind += f"; no fusion ({noise['reason']})"
    mz = ", ".join(f"{v:g}" for v in spec.mz[:8]) + (" ..." if spec.mz and len(spec.mz) > 8 else "") \
        if spec.mz else "(array channels)"
    return f"""# latentbridge spatial conditional VAE: {m.name}

{cfg.description or 'Coordinate-conditioned VAE enhancing spatial maps.'}

## Data
- Sections from `{data['root']}` ({data['format']}; targets: the {data['target']} maps):
  {len(data['train_sections'])} for training, {len(data['val_sections'])} for validation ({data['validation']}),
  {len(data['test_sections'])} held out for testing.
- {spec.channels} channels: m/z {mz}; tolerance {spec.tolerance:g} {spec.tolerance_unit}, per-pixel normalisation
  {spec.normalization}{f' (over the pixel’s {spec.normalized_over})' if spec.normalized_over else ''};
  per-channel standardisation (mean/std of the training pixels) stored in `config.json`.

## Model
- {m.name}: latent {m.latent_dim} x {spec.patch_size // 2} x {spec.patch_size // 2} per {spec.patch_size}-pixel patch,
  widths {m.channels}, {m.fourier_frequencies} Fourier frequencies of the coordinates (up to {m.max_frequency:g}).
  {paths}; {blind}.
- Training: {training['epochs']} epochs, {best_loss_text(training)}, {training['seconds']} s.
- Uncertainty: σ calibrated to 95 % within ±2σ on the validation patches against the {cal['reference']}
  (factors {', '.join(f'{k} {v:.3g}' for k, v in cal['factors'].items())}).

## Use
`latentbridge enhance RUN INPUT --task denoise|inpaint|upscale --out DIR` (INPUT: {'imzML or an array' if spec.mz
else 'an array of the training channels, in their order'});
whole sections run in {spec.patch_size}-pixel tiles overlapping by {spec.overlap}.
"""


# ----------------------------------------------------------------------------- enhance


@dataclass
class Enhanced:
    """One enhanced section (arrays in data units; ``region``: the pixels the task answers for)."""

    task: str
    name: str
    source: str
    input: np.ndarray
    """What the model was given (upscaling: at half the output's resolution, ``input_factor`` 2)."""
    input_valid: np.ndarray
    """The pixels of the output grid the input gave a value for."""
    enhanced: np.ndarray
    sigma: np.ndarray
    latent: np.ndarray
    region: np.ndarray
    labels: list[str]
    truth: np.ndarray | None = None
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    n_tiles: int = 0
    panels: list[int] = field(default_factory=list)
    """Channels shown in figures (``--mz``); the arrays keep every channel."""
    input_factor: int = 1
    empty_channels: list[str] = field(default_factory=list)
    """Channels of the input without signal (an m/z none of its spectra holds)."""
    sampling: dict = field(default_factory=dict)
    """``{"seed", "samples"}``: what reproduces the uncertainty (``enhance.json`` records it)."""
    normalization: str = "none"
    """Each pixel divided by its ``tic`` or ``rms`` as the model reads it: the maps' unit."""
    normalized_over: str | None = None
    """What that ``tic`` / ``rms`` summed over: the pixel's whole ``spectrum`` or the model's ``channels``."""
    grid: dict | None = None
    """The output's pixels in the imzML file's coordinates (:func:`output_grid`); None for arrays."""
    labelled: bool = True
    """Whether ``labels`` are the input's own (m/z, names); False: its channels counted, ``"0"``, ``"1"``, ..."""


def _scan(a, region: np.ndarray, rows: int = 256) -> tuple[int, int, float]:
    """(non-finite values, values below 0, the lowest of them or 0) of the maps ``a`` (H, W, C) in ``region``, read
    once, ``rows`` rows at a time."""
    bad, n, low = 0, 0, 0.0
    for r in range(0, a.shape[0], rows):
        b = np.asarray(a[r:r + rows])[region[r:r + rows]]
        bad += int((~np.isfinite(b)).sum())
        n, low = n + int((b < 0).sum()), min(low, float(np.min(b, initial=0.0, where=np.isfinite(b))))
    return bad, n, low


def enhance_section(model, spec, section, task: str, *, n_samples: int = 8, batch_tiles: int = 32, seed: int = 0,
                    observed: np.ndarray | None = None, allocate: Callable | None = None,
                    blank_outside: bool = False, progress: bool = False, stop=None) -> Enhanced:
    """Enhance a :class:`~latentbridge.data.spatial.Section` (``observed``: the pixels given to the
    model, default its valid pixels; the others are filled). ``blank_outside``: the enhanced map and σ
    are NaN at the pixels the task does not answer for (the files users read; evaluation compares
    whole arrays); ``stop``: :func:`~latentbridge.tasks.enhance.run_tiles`'s."""
    from latentbridge.data.spatial import coordinate_frame, outline_of
    from latentbridge.metrics.spatial import enhancement_metrics
    from latentbridge.tasks.baselines import block_mean  # noqa: F401 - the same blocks as the baselines

    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    if section.shape[2] != spec.channels:
        raise DataError(section.source, f"has {section.shape[2]} channels; the model reads {spec.channels}")
    t0 = time.time()
    obs = section.valid if observed is None else observed
    kw = {} if allocate is None else {"allocate": allocate}
    if task == "upscale":
        f = spec.upscale_factor
        up_valid = np.repeat(np.repeat(obs, f, 0), f, 1)
        frame = coordinate_frame(up_valid)
        source = coarse_source(section.values, obs, spec, frame, f)
        region = outline_of(up_valid)
        shown_valid = up_valid
    else:
        frame = coordinate_frame(obs)
        source = full_source(section.values, obs, spec, frame)
        region = obs if task == "denoise" else (section.outline & (obs | outline_of(obs)))
        shown_valid = obs
    out = run_tiles(model, spec, source, n_samples=n_samples, batch_tiles=batch_tiles, seed=seed,
                    answered=region if blank_outside else None, progress=progress, stop=stop, **kw)
    mean, sigma, latent = (a.open() if hasattr(a, "open") else a for a in (out.mean, out.sigma, out.latent))
    truth = section.truth if task != "upscale" else None
    res = Enhanced(task, section.name, section.source, section.values, shown_valid, mean, sigma, latent, region,
                   section.labels or [str(i) for i in range(spec.channels)], truth, {}, 0.0, out.n_tiles,
                   input_factor=spec.upscale_factor if task == "upscale" else 1, labelled=bool(section.labels))
    if truth is not None and truth.shape == mean.shape:
        where = region if task == "denoise" else region & ~obs
        if where.any():
            res.metrics = enhancement_metrics(np.asarray(truth), np.asarray(mean), where, np.asarray(sigma))
    res.seconds = round(time.time() - t0, 3)
    res.sampling = {"seed": int(seed), "samples": int(n_samples)}
    res.grid = output_grid(section.grid, res.input_factor)
    return res


def output_grid(grid: dict | None, factor: int = 1) -> dict | None:
    """An imzML section's pixel grid (:func:`latentbridge.io.imzml.pixel_grid`) for maps ``factor`` times finer (an
    upscaling): each input pixel's ``factor`` x ``factor`` output pixels share its area, their centres a step of
    1/``factor`` apart about its centre, so that x = x0 + c * x_step still places output column c."""
    if grid is None or factor == 1:
        return grid
    half = (factor - 1) / (2 * factor)
    return {**grid, "x0": grid["x0"] - half * grid["x_step"], "y0": grid["y0"] - half * grid["y_step"],
            "x_step": grid["x_step"] / factor, "y_step": grid["y_step"] / factor,
            "reads": f"pixel (row r, column c) lies at x = x0 + c * x_step, y = y0 + r * y_step in the imzML file's "
                     f"coordinates (an upscaling by {factor}: between its spectra, which lie at whole x and y)"}


def enhance(run_dir: str | Path, input_path: str | Path, task: str, *, mz: list[float] | None = None,
            mask: str | None = None, truth: str | None = None, n_samples: int | None = None, seed: int = 0,
            allocate: Callable | None = None, progress: bool = False) -> Enhanced:
    """Enhance an imzML file or an array stack with the model folder ``run_dir``. The input is read with
    the model's own m/z list, tolerance and normalisation; ``mz`` picks the channels shown in figures
    (each within the model's tolerance), the arrays keep every channel. ``allocate(name, shape)``
    gives the output arrays (e.g. memory maps in the output folder)."""
    from latentbridge.models.hub import load_model

    return enhance_saved(load_model(run_dir), input_path, task, mz=mz, mask=mask, truth=truth, n_samples=n_samples,
                         seed=seed, allocate=allocate, progress=progress)


def enhance_saved(saved, input_path: str | Path, task: str, *, mz: list[float] | None = None,
                  mask: str | None = None, truth: str | None = None, n_samples: int | None = None, seed: int = 0,
                  allocate: Callable | None = None, progress: bool = False, stop=None,
                  mask_hint: str = "--mask FILE, or NAME.mask.npy or .png beside it") -> Enhanced:
    """:func:`enhance` with a loaded model folder (``latentbridge serve`` holds its models loaded; ``stop``:
    :func:`~latentbridge.tasks.enhance.run_tiles`'s; ``mask_hint``: how a mask is given, for the warning of an array
    without one)."""
    from latentbridge.tasks.spatial_inputs import channel_indices, check_input, check_truth, read_for_model
    from latentbridge.io.arrays import sibling

    run_dir = saved.path
    spec = saved.transform
    if getattr(spec, "type", None) != "spatial":
        raise ConfigError(f"{run_dir}: not a spatial model (its task is {saved.workflow.task!r})")
    panels = channel_indices(spec, mz) if mz else []  # before any work: a wrong m/z is an error at once
    path = Path(input_path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    truth_sibling = sibling(path.parent, f"{stem}.truth.npy")
    if n_samples is not None and n_samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {n_samples}")
    check_seed(seed, *SEED_RANGE)  # a traceback from the generator before
    if mask and path.suffix.lower() == ".imzml":  # it was ignored without a word
        raise ConfigError(f"--mask {mask}: an imzML section's valid pixels are those with a spectrum; --mask is for "
                          "array inputs")
    # an upscale's clean maps have the output's shape: read by check_truth, not against the section's shape
    truth_file = None if task == "upscale" else truth or truth_sibling
    files = (saved.info.get("data") or {}).get("files")
    try:
        section = read_for_model(spec, path, files, mask=mask, truth=truth_file, mask_hint=mask_hint)
    except DataError as e:  # clean maps found beside it at another shape (an imzML raster's, the section cut from it)
        if truth or truth_file is None or Path(e.path) != Path(truth_file) or "does not match" not in e.problem:
            raise
        log.warning("%s: %s: the clean maps found beside the section are left out and the output is not scored "
                    "(--truth gives maps of the section's shape)", e.path, e.problem)
        truth_file = None
        section = read_for_model(spec, path, files, mask=mask, truth=None, mask_hint=mask_hint)
    truth_maps, scored = check_truth(truth if task == "upscale" else truth_file, task, section, spec)
    check_input(section, spec, path, task)
    cfg = saved.workflow
    res = enhance_section(saved.model, spec, section, task, n_samples=n_samples or cfg.patches.samples,
                          batch_tiles=cfg.patches.batch_tiles, seed=seed, allocate=allocate, blank_outside=True,
                          progress=progress, stop=stop)
    # in one pass of row blocks per map (the region was copied whole: 200 MB at 1000 x 1000 x 50): non-finite values,
    # never written (a 1e30 pixel blanked a whole tile; outside the region the maps are NaN by design), and values below 0
    scans = {name: _scan(a, res.region) for name, a in (("enhanced", res.enhanced), ("uncertainty", res.sigma))}
    for name, (bad, _, _) in scans.items():
        if bad:
            v = np.nan_to_num(np.abs(np.asarray(section.values, np.float64)), posinf=np.inf)
            r, c, ch = np.unravel_index(int(np.argmax(v)), v.shape)
            raise DataError(path, f"the model gave {bad} non-finite {name} values; the input's largest value, "
                                  f"{section.values[r, c, ch]:.4g} at row {r}, column {c}, channel {ch}, may lie far "
                                  f"outside what it was trained on")
    # maps of counts (every input value 0 or more) enhanced below 0: nothing clamps a model's answer, so it is said
    _, n, low = scans["enhanced"]
    if n and min(float(np.nanmin(section.values[r:r + 256][section.valid[r:r + 256]], initial=0.0))
                 for r in range(0, section.values.shape[0], 256)) >= 0:
        log.warning("%s: %d enhanced value(s) below 0 (down to %.3g) where every input value is 0 or more: the model "
                    "answers outside its data's range there (too little training, or maps unlike the training "
                    "ones); they are written as they came", path, n, low)
    if truth_maps is not None and task == "upscale":
        from latentbridge.metrics.spatial import enhancement_metrics

        # the section's pixels: not those whose clean map is 0 or NaN in every channel (a background the upsampled
        # outline takes in at its edge, scored at a spectral angle of 90 degrees; evaluate scores the section's)
        res.truth = truth_maps
        res.metrics = enhancement_metrics(truth_maps, res.enhanced, scored, res.sigma)
    res.panels = panels
    res.empty_channels = [section.labels[c] if c < len(section.labels) else str(c) for c in section.empty]
    res.normalization = spec.normalization
    res.normalized_over = section.normalized_over
    return res


def evaluate(run_dir: str | Path, data: str | None = None, progress: bool = False):
    from latentbridge.tasks.spatial_eval import evaluate as _evaluate

    return _evaluate(run_dir, data, progress)
