"""Whole sections through the spatial conditional VAE in overlapping tiles (compute only).

A section of any size is cut into ``patch_size`` tiles that overlap by ``overlap`` pixels (the
stride is even, so tiles stay aligned with 2 x 2 blocks and the latent grid); each tile is
normalised on the fly from the (possibly memory-mapped) input, run through the model in batches
of ``batch_tiles`` and blended with a window that ramps over the overlap. Tiles are processed row
by row and only a band of ``patch_size`` rows is accumulated: finished rows are written to the
output arrays (which may be memory maps) and dropped, so memory does not grow with the section.

Outputs per pixel: the enhanced map (posterior-mode reconstruction, data units), its standard
deviation (``sqrt(k^2 (aleatoric + latent-sample variance))`` with the calibration factor ``k`` of
the pixel's kind: observed, missing or coarse input; data units) and the latent posterior mean
(nearest-upsampled to the pixel grid).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from latentbridge.errors import Stopped
from latentbridge.data.spatial import coords_of

#: kinds of pixel in a model input, in the order of the model's ``sigma_scale`` factors
PIXEL_KINDS = ("observed", "missing", "coarse")
#: the seeds of :func:`run_tiles` (torch's generator takes 64-bit integers): the CLI's and the server's bound
SEED_RANGE = (-(2 ** 63), 2 ** 63 - 1)


def tile_starts(n: int, size: int, stride: int) -> list[int]:
    """Start offsets of tiles of ``size`` covering [0, n) with at most ``stride`` between starts
    (the last tile ends at ``n``; ``n >= size``)."""
    if n <= size:
        return [0]
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] != n - size:
        starts.append(n - size)
    return starts


def blend_window(size: int, overlap: int) -> np.ndarray:
    """(size, size) weights of one tile: 1 inside, a linear ramp over the ``overlap`` border, > 0
    everywhere (a pixel covered by one tile only keeps its value)."""
    i = np.arange(size, dtype=np.float64) + 0.5
    ramp = np.minimum(1.0, np.minimum(i, size - i) / max(overlap, 1)) if overlap else np.ones(size)
    ramp = np.maximum(ramp, 1e-3)
    return np.outer(ramp, ramp).astype(np.float32)


def n_tiles(h: int, w: int, size: int, overlap: int) -> int:
    stride = max(2, size - overlap)
    return len(tile_starts(max(h, size), size, stride)) * len(tile_starts(max(w, size), size, stride))


def even_stride(size: int, overlap: int) -> int:
    """Tile stride (even, so tiles stay aligned with 2 x 2 blocks and the latent grid)."""
    s = size - overlap
    return max(2, s - s % 2)


def ceil_even(n: int) -> int:
    return int(math.ceil(n / 2) * 2)


@dataclass
class TileSource:
    """What the model sees on the output grid (H, W): ``fetch(y0, x0, size)`` → normalised values
    (C, size, size), observed (size, size), coarse (size, size), all zero outside the grid."""

    height: int
    width: int
    channels: int
    fetch: Callable[[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]
    frame: tuple[float, float, float, float]


def _crop(a: np.ndarray, y0: int, x0: int, size: int, fill=0) -> np.ndarray:
    """``a[y0:y0+size, x0:x0+size]`` padded with ``fill`` beyond the array's end. A memory-mapped
    ``.npy`` is mapped afresh for the read and unmapped after it, so the pages read do not stay in
    the process's resident memory (reading a large section does not grow it)."""
    filename = getattr(a, "filename", None)
    # only the file's own layout is mapped afresh: a view of it turned from (C, H, W) is not contiguous
    fresh = np.load(filename, mmap_mode="r") if isinstance(a, np.memmap) and a.flags.c_contiguous \
        and str(filename or "").endswith(".npy") else None
    if fresh is not None and fresh.shape == a.shape:
        part = np.array(fresh[y0:y0 + size, x0:x0 + size])
        del fresh
    else:
        part = np.asarray(a[y0:y0 + size, x0:x0 + size])
    if part.shape[:2] == (size, size):
        return part
    out = np.full((size, size) + a.shape[2:], fill, dtype=part.dtype)
    out[:part.shape[0], :part.shape[1]] = part
    return out


def full_source(values: np.ndarray, observed: np.ndarray, spec, frame) -> TileSource:
    """Measured maps (H, W, C) at the output resolution: denoising and inpainting."""
    center, scale = np.asarray(spec.center, np.float32), np.asarray(spec.scale, np.float32)

    def fetch(y0, x0, size):
        ok = _crop(observed, y0, x0, size, False)
        v = (_crop(values, y0, x0, size).astype(np.float32) - center) / scale
        return np.moveaxis(v * ok[..., None], 2, 0), ok, np.zeros_like(ok)

    return TileSource(values.shape[0], values.shape[1], values.shape[2], fetch, frame)


def coarse_source(low: np.ndarray, low_valid: np.ndarray, spec, frame, factor: int = 2) -> TileSource:
    """A map at half the output resolution (h, w, C): each value repeated over its 2 x 2 block."""
    center, scale = np.asarray(spec.center, np.float32), np.asarray(spec.scale, np.float32)

    def fetch(y0, x0, size):
        ly, lx, ls = y0 // factor, x0 // factor, size // factor
        ok = _crop(low_valid, ly, lx, ls, False)
        v = (_crop(low, ly, lx, ls).astype(np.float32) - center) / scale * ok[..., None]
        up = lambda a: np.repeat(np.repeat(a, factor, 0), factor, 1)
        ok2 = up(ok)
        return np.moveaxis(up(v), 2, 0), ok2, ok2

    return TileSource(low.shape[0] * factor, low.shape[1] * factor, low.shape[2], fetch, frame)


@dataclass
class TiledOutput:
    mean: np.ndarray
    sigma: np.ndarray
    latent: np.ndarray
    n_tiles: int


def _allocate(name: str, shape) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


def run_tiles(model, spec, source: TileSource, *, n_samples: int = 8, batch_tiles: int = 32, seed: int = 0,
              allocate: Callable = _allocate, answered: np.ndarray | None = None, progress: bool = False,
              stop=None) -> TiledOutput:
    """Enhance the whole grid of ``source`` (see the module docstring); ``allocate(name, shape)``
    gives the output arrays (``enhanced``, ``uncertainty``, ``latent``); with ``answered`` (H, W), the
    enhanced map and its σ are NaN at the other pixels, and tiles holding none of them are not run (the latent
    map is 0 where no tile ran: a small section on a large empty canvas costs its own tiles); ``progress``: a
    bar of tiles on stderr; ``stop``: a :class:`threading.Event` whose setting ends the work between two batches
    of tiles (:class:`~latentbridge.errors.Stopped`: the server's client went away)."""
    from latentbridge.utils import progress_bar

    size, overlap = spec.patch_size, spec.overlap
    h, w, c = source.height, source.width, source.channels
    d = model.latent_shape[0]
    stride = even_stride(size, overlap)
    hp, wp = max(size, ceil_even(h)), max(size, ceil_even(w))
    ys, xs = tile_starts(hp, size, stride), tile_starts(wp, size, stride)
    win = blend_window(size, overlap)
    scale = np.asarray(spec.scale, np.float32)
    center = np.asarray(spec.center, np.float32)
    k = model.sigma_scale.detach().cpu().numpy().astype(np.float32)
    out_mean, out_sigma = allocate("enhanced", (h, w, c)), allocate("uncertainty", (h, w, c))
    out_latent = allocate("latent", (h, w, d))
    band = {"mean": np.zeros((size, wp, c), np.float32), "var": np.zeros((size, wp, c), np.float32),
            "lat": np.zeros((size, wp, d), np.float32), "w": np.zeros((size, wp), np.float32)}
    b0 = 0
    gen = torch.Generator().manual_seed(int(seed))
    model.eval()

    def flush(upto: int) -> None:
        """Write the finished rows [b0, upto) and move the band down to start at ``upto``."""
        nonlocal b0
        n = upto - b0
        if n <= 0:
            return
        m = min(upto, h) - b0
        if m > 0:
            wsum = np.maximum(band["w"][:m, :w], 1e-12)[..., None]
            mean_rows = band["mean"][:m, :w] / wsum * scale + center
            sigma_rows = np.sqrt(band["var"][:m, :w] / wsum) * scale
            if answered is not None:
                outside = ~np.asarray(answered[b0:b0 + m], dtype=bool)
                mean_rows[outside] = np.nan
                sigma_rows[outside] = np.nan
            out_mean[b0:b0 + m] = mean_rows
            out_sigma[b0:b0 + m] = sigma_rows
            out_latent[b0:b0 + m] = band["lat"][:m, :w] / wsum
        for a in band.values():
            if n >= size:
                a[:] = 0
            else:
                a[:size - n] = a[n:].copy()
                a[size - n:] = 0
        b0 = upto

    bar = progress_bar(len(ys) * len(xs), progress, "enhancing", unit="tile")
    n_run = 0
    for y0 in ys:
        flush(y0)
        tiles = [(y0, x0) for x0 in xs]
        if answered is not None:  # a tile with no pixel to answer (all outside the section) is not run
            kept = [(ty, tx) for ty, tx in tiles if np.asarray(answered[ty:ty + size, tx:tx + size]).any()]
            bar.update(len(tiles) - len(kept))
            tiles = kept
        n_run += len(tiles)
        for i in range(0, len(tiles), batch_tiles):
            if stop is not None and stop.is_set():
                raise Stopped(f"enhancement stopped after {n_run - len(tiles) + i} tiles")
            chunk = tiles[i:i + batch_tiles]
            parts = [source.fetch(ty, tx, size) for ty, tx in chunk]
            x = torch.from_numpy(np.stack([p[0] for p in parts]))
            observed = torch.from_numpy(np.stack([p[1] for p in parts])[:, None].astype(np.float32))
            coarse = torch.from_numpy(np.stack([p[2] for p in parts])[:, None].astype(np.float32))
            coords = torch.from_numpy(np.stack([coords_of(source.frame, ty, tx, size, size) for ty, tx in chunk]))
            with torch.no_grad():
                res = model.enhance(x, observed, coarse, coords, n_samples=n_samples, generator=gen)
            kind = np.where(coarse[:, 0].numpy() > 0, 2, np.where(observed[:, 0].numpy() > 0, 0, 1))
            kk = k[kind][:, None]  # (B, 1, P, P)
            var = (res["aleatoric_var"] + res["latent_var"]).numpy() * kk ** 2
            mean = res["mean"].numpy()
            lat = np.repeat(np.repeat(res["latent"].numpy(), 2, 2), 2, 3)
            for j, (ty, tx) in enumerate(chunk):
                r = ty - b0
                sl = (slice(r, r + size), slice(tx, tx + size))
                band["w"][sl] += win
                band["mean"][sl] += np.moveaxis(mean[j], 0, 2) * win[..., None]
                band["var"][sl] += np.moveaxis(var[j], 0, 2) * win[..., None]
                band["lat"][sl] += np.moveaxis(lat[j], 0, 2) * win[..., None]
            bar.update(len(chunk))
    flush(b0 + size)
    bar.close()
    return TiledOutput(out_mean, out_sigma, out_latent, n_run)
