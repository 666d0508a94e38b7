"""Files of the spatial workflow: ``enhance`` (maps as .npy, panels, ``enhance.json``) and
``evaluate`` (``metrics.json``, per-task panels against the best baseline, latent and uncertainty
maps, ``report.html``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from latentbridge.report.html import write_html_report
from latentbridge.report.maps import plot_latent_maps, plot_map_panels
from latentbridge.utils import atomic_write_json

PANEL_CHANNELS = 4


class RowFile:
    """A float32 ``.npy`` file written by row slices (``f[a:b] = rows``): each write maps the file,
    writes, flushes and unmaps, so a large output never accumulates in resident memory."""

    def __init__(self, path: Path, shape):
        from latentbridge.io.arrays import npy_to_fill

        self.path, self.shape = Path(path), tuple(int(s) for s in shape)
        self.dtype = np.dtype(np.float32)
        m = npy_to_fill(self.path, self.shape)
        m.flush()
        del m

    def __setitem__(self, rows, value) -> None:
        m = np.load(self.path, mmap_mode="r+")
        m[rows] = value
        m.flush()
        del m

    def open(self) -> np.ndarray:
        """The finished array, memory-mapped read-only."""
        return np.load(self.path, mmap_mode="r")


def memmap_allocator(folder: Path):
    """``allocate(name, shape)`` → a :class:`RowFile` ``folder/NAME.npy``."""

    def allocate(name: str, shape) -> RowFile:
        return RowFile(Path(folder) / f"{name}.npy", shape)

    return allocate


def _grid(a, rows, cols, channels=None) -> np.ndarray:
    """``a[rows][:, cols][..., channels]`` read one row at a time (a memory map is never read whole)."""
    a = a.open() if isinstance(a, RowFile) else a
    out = []
    for r in rows:
        row = np.asarray(a[int(r)])[cols]
        out.append(np.array(row if channels is None else row[..., channels]))
    return np.stack(out)


def _panels(res, channels, path: Path, baseline=None, baseline_name: str | None = None, max_pixels: int = 400) -> Path:
    ch = list(channels)
    h, w = res.region.shape
    step = max(1, int(np.ceil(max(h, w) / max_pixels)))
    rows, cols = np.arange(0, h, step), np.arange(0, w, step)
    f = res.input_factor
    enh, sig = _grid(res.enhanced, rows, cols, ch), _grid(res.sigma, rows, cols, ch)
    inp = _grid(res.input, rows // f, cols // f, ch)
    inp = np.where(_grid(res.input_valid, rows, cols)[..., None], inp, np.nan)
    region = _grid(res.region, rows, cols)
    truth = _grid(res.truth, rows, cols, ch) if res.truth is not None else None
    base = _grid(baseline, rows, cols, ch) if baseline is not None else None
    cols_ = ["input", "enhanced"] + ([f"best baseline ({baseline_name})"] if base is not None else []) + \
        (["truth"] if truth is not None else []) + ["uncertainty σ"] + (["|error|"] if truth is not None else [])
    shared = [True, True] + ([True] if base is not None else []) + ([True] if truth is not None else []) + \
        [False] + ([False] if truth is not None else [])
    panel_rows, titles = [], []
    for k, c in enumerate(ch):
        row = [inp[..., k], enh[..., k]] + ([base[..., k]] if base is not None else []) + \
            ([truth[..., k]] if truth is not None else []) + [sig[..., k]] + \
            ([np.abs(enh[..., k] - truth[..., k])] if truth is not None else [])
        panel_rows.append(row)
        titles.append(channel_title(res, c))
    return plot_map_panels(panel_rows, cols_, titles, path, shared=shared, masks=[region] * len(ch))


def channel_title(res, c: int) -> str:
    """A panel's name for channel ``c`` of ``res``: ``m/z 734.569`` for a numeric label, the label itself for another
    name, ``channel 3`` where the input names none (its channels were titled "m/z 0", "m/z 1", ...)."""
    label = res.labels[c] if getattr(res, "labelled", True) and c < len(res.labels) else None
    if label is None:
        return f"channel {c}"
    try:
        float(label)
    except ValueError:
        return str(label)
    return f"m/z {label}"


def write_enhanced(res, folder: Path) -> None:
    """The maps (``enhanced.npy``, ``uncertainty.npy``, ``latent.npy`` already written as memory maps
    by the task, or written here), ``region.npy``, ``panels.png`` and ``enhance.json``."""
    folder = Path(folder)
    for name, arr in (("enhanced", res.enhanced), ("uncertainty", res.sigma), ("latent", res.latent)):
        written = isinstance(arr, RowFile) or (isinstance(arr, np.memmap) and arr.filename
                                                and Path(arr.filename).resolve() == (folder / f"{name}.npy").resolve())
        if not written:
            np.save(folder / f"{name}.npy", np.asarray(arr, dtype=np.float32))
    np.save(folder / "region.npy", np.asarray(res.region, dtype=bool))
    channels = list(res.panels) if res.panels else list(range(min(PANEL_CHANNELS, res.enhanced.shape[2])))
    _panels(res, channels, folder / "panels.png")
    summary = {"task": res.task, "input": res.source, "section": res.name, "shape": list(res.enhanced.shape),
               "channels": res.labels, "panel_channels": [res.labels[c] for c in channels],
               "n_tiles": res.n_tiles, "seconds": res.seconds, "pixels_answered": int(np.asarray(res.region).sum()),
               "metrics": res.metrics or None, "empty_channels": res.empty_channels, **res.sampling,
               "normalization": res.normalization, "normalized_over": res.normalized_over,
               "pixel_grid": res.grid,
               "files": {"enhanced": f"enhanced.npy (H, W, C), {unit_text(res.normalization, res.normalized_over)}; "
                                     "NaN outside region.npy",
                         "uncertainty": "uncertainty.npy (H, W, C): σ; NaN outside region.npy",
                         "latent": "latent.npy (H, W, d): posterior mean", "region": "region.npy (H, W): answered pixels",
                         "panels": "panels.png"}}
    atomic_write_json(folder / "enhance.json", summary)


def unit_text(normalization: str, over: str | None) -> str:
    """The unit of the enhanced maps by the model's per-pixel normalisation and what it summed over (a TIC model's
    maps read as data units)."""
    what = {("tic", "spectrum"): "the pixel's total ion count of its whole spectrum",
            ("tic", "channels"): "the pixel's total ion count over the model's channels",
            ("rms", "spectrum"): "the RMS of the pixel's spectrum",
            ("rms", "channels"): "the RMS of the pixel's values over the model's channels"}
    if normalization not in ("tic", "rms"):
        return "data units"
    return f"intensity / {what[normalization, over or 'spectrum']} (the model's data.normalization: {normalization})"


NOTE = ("PSNR (dB, per channel then averaged), SSIM and spectral angle (degrees) against the clean maps of the "
        "held-out sections; denoise: the valid pixels; inpaint: the missing pixels (the section's dropouts and 20 % "
        "more hidden pixels); upscale: every pixel of the section, from its 2 x 2 block means. Baselines run at the "
        "parameter that scored best on the run's validation sections. coverage_2sigma: the share of true values "
        "within ±2σ of the model's enhanced map (the goal: 0.92-0.98).")


def section_name(name: str) -> str:
    """``section NAME``, or the name alone where it says so (``section_09``: it read "section section_09")."""
    return name if name.lower().startswith("section") else f"section {name}"


def write_evaluation(res, folder: Path) -> None:
    folder = Path(folder)
    m = res.metrics
    atomic_write_json(folder / "metrics.json", m)
    rows, images = [], []
    for task in ("denoise", "inpaint", "upscale"):
        t = m[task]
        rows.append({"task": task, "method": "conditional VAE", "psnr": t["psnr"], "ssim": t["ssim"], "sam": t["sam"],
                     "coverage_2sigma": t.get("coverage_2sigma"), "parameter": None})
        for name, b in t["baselines"].items():
            chosen = {k: v for k, v in b.items() if k not in ("psnr", "ssim", "sam")}  # its tuned parameter
            rows.append({"task": task, "method": name, "psnr": b["psnr"], "ssim": b["ssim"], "sam": b["sam"],
                         "coverage_2sigma": None, "parameter": chosen})
        ex = res.examples.get(task)
        if ex:
            r = ex["result"]
            n = min(PANEL_CHANNELS, r.enhanced.shape[2])
            _panels(r, range(n), folder / f"{task}.png", ex["baseline"], ex["baseline_name"])
            images.append(f"{task}.png")
    sections = [{"heading": "Metrics", "table": rows, "text": NOTE},
                {"heading": "Summary", "table": {k: v for k, v in m.items() if not isinstance(v, (dict, list))}}]
    for task, img in zip(("denoise", "inpaint", "upscale"), images):
        sections.append({"heading": f"{task}: ion images", "images": [img],
                         "text": f"PSNR gain over the best baseline ({m[task]['best_baseline']}, best by its mean "
                                 f"over the sections): {m[task]['psnr_gain_db']:.2f} dB. The images: "
                                 f"{section_name(res.examples[task]['section'])}."})
    ex = res.examples.get("denoise")
    if ex:
        r = ex["result"]
        plot_latent_maps(r.latent, folder / "latent.png", mask=r.region)
        unc = [[r.sigma[..., c], np.abs(r.enhanced[..., c] - r.truth[..., c])] for c in range(min(3, r.enhanced.shape[2]))]
        for task in ("inpaint", "upscale"):
            e = res.examples.get(task)
            if e:
                rr = e["result"]
                unc.append([rr.sigma[..., 0], np.abs(rr.enhanced[..., 0] - rr.truth[..., 0])])
        titles = [f"denoise {channel_title(r, c)}" for c in range(min(3, r.enhanced.shape[2]))] + \
            [f"{t} {channel_title(res.examples[t]['result'], 0)}" for t in ("inpaint", "upscale") if t in res.examples]
        masks = [r.region] * min(3, r.enhanced.shape[2]) + [res.examples[t]["result"].region
                                                           for t in ("inpaint", "upscale") if t in res.examples]
        plot_map_panels(unc, ["predicted σ", "|error| to the truth"], titles, folder / "uncertainty.png",
                        shared=[False, False], masks=masks)
        sections += [{"heading": "Latent maps (posterior mean, denoising pass)", "images": ["latent.png"]},
                     {"heading": "Uncertainty", "images": ["uncertainty.png"],
                      "text": f"Share of true values within ±2σ, all tasks: {m['uncertainty_coverage_2sigma']:.3f}"}]
    write_html_report(folder / "report.html", "latentbridge spatial conditional VAE report", sections)
