"""A written digit framed as MNIST's digits were made (:func:`frame_digit`): light ink on black, the paper's level
taken out, the ink's bounding box scaled into :data:`DIGIT_BOX` of the frame, its centre of mass at the frame's centre;
a photo of a sheet less what lies beside the page."""

from __future__ import annotations

import numpy as np

from latentbridge.errors import DataError

__all__ = ["DIGIT_BOX", "PHOTO", "frame_digit"]

DIGIT_BOX = 20 / 28  # MNIST: each digit fitted in a 20 x 20 box of the 28 x 28 frame


def frame_digit(grey: np.ndarray, height: int, width: int, name="image") -> np.ndarray:
    """Grey levels ``(H, W)`` in [0, 1] of a written digit → ``(height, width)`` float32 in MNIST's
    convention: light ink on black (dark ink on light paper inverted; the paper's level, a plane
    fitted to the image's border, taken out, so uneven light is too), specks under 5 % of the
    largest stroke's ink dropped, the ink's bounding box scaled to fit ``DIGIT_BOX`` of the frame
    keeping its aspect ratio, and its centre of mass put at the frame's centre — how MNIST's digits
    were made, so a small digit off to one side of a photo reads like one of them. An image :data:`PHOTO` times the
    frame or more is read as a photo of a sheet: a phone's shadow is taken for paper (the paper's level the higher of
    the plane and the image opened at half its size, wider than any stroke), and what lies beside the page along the
    image's edge, the table, is left out (:func:`_paper_level`, :func:`_beside_the_page`)."""
    from PIL import Image
    from scipy import ndimage

    g = np.asarray(grey, dtype=np.float64)
    photo = min(g.shape) >= PHOTO * max(height, width)
    paper = _paper_level(g, photo)
    if np.median(paper) > 0.5:  # dark ink on light paper
        g, paper = 1.0 - g, 1.0 - paper
    ink = g - paper
    if photo:  # a shadow is wider than any stroke: the paper, opened at half the image's size, is its level there
        side = min(g.shape) // 2
        ink = _beside_the_page(g - np.maximum(paper, ndimage.grey_opening(g, size=(side, side), mode="nearest")))
    peak = float(ink.max()) if ink.size else 0.0
    if peak < 0.1:
        raise DataError(name, "no digit in the image: nothing stands out from the background by 10 % of the "
                              "grey range")
    ink = np.clip(ink / peak, 0.0, 1.0)
    labels, n_parts = ndimage.label(ink > 0.2)
    mass = ndimage.sum(ink, labels, index=np.arange(1, n_parts + 1))
    kept = np.isin(labels, 1 + np.flatnonzero(mass >= 0.05 * mass.max()))
    rows, cols = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
    ink = np.where(ndimage.binary_dilation(kept, iterations=2), ink, 0.0)[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    side = DIGIT_BOX * min(height, width)
    scale = side / max(ink.shape)
    h, w = (max(1, int(round(n * scale))) for n in ink.shape)
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    ink = np.asarray(Image.fromarray(ink.astype(np.float32), "F").resize((w, h), resample), dtype=np.float64)
    ink = np.clip(ink / max(float(ink.max()), 1e-6), 0.0, 1.0)
    cy, cx = ndimage.center_of_mass(ink)
    top, left = int(round(height / 2 - cy)), int(round(width / 2 - cx))  # MNIST: 14, 14 of 28
    out = np.zeros((height, width), np.float32)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, height), min(left + w, width)
    out[r0:r1, c0:c1] = ink[r0 - top:r1 - top, c0 - left:c1 - left]
    return out


#: an image this many times the model's frame or more is read as a photo or scan of a sheet (a smaller one, a digit
#: cropped tight or MNIST's own, as it is: the written copies the digit models align with are made so)
PHOTO = 4
#: a region along a photo's edge this many times thicker than the digit's strokes lies beside the page
THICKER = 1.5


def _paper_level(g: np.ndarray, photo: bool = False) -> np.ndarray:
    """The background of a grey image: a plane ``a + b·row + c·col`` fitted to its outer frame (2 % of the shorter
    side, at least one pixel) by least squares; for a ``photo``, by least absolute deviations (a shadow along part
    of the frame does not tilt it), and without a side of the frame far darker than the others (far brighter for a
    dark background: 0.6 of the brightest side's level or less) — the table beside the sheet along one edge, which
    the plane otherwise followed across the page (the page's left read as ink)."""
    hh, ww = g.shape
    k = max(1, int(round(0.02 * min(hh, ww))))
    sides = [np.zeros(g.shape, bool) for _ in range(4)]
    sides[0][:k], sides[1][-k:], sides[2][:, :k], sides[3][:, -k:] = True, True, True, True
    frame = np.logical_or.reduce(sides)
    if photo:
        level = np.array([np.median(g[s]) for s in sides])
        level = level if np.median(g[frame]) > 0.5 else 1.0 - level  # the paper's side: light paper or dark ground
        frame = np.logical_or.reduce([s for s, v in zip(sides, level) if v > 0.6 * level.max()])
    r, c = np.nonzero(frame)
    design = np.column_stack([np.ones(len(r)), r / hh, c / ww])
    y, weight = g[frame], np.ones(len(r))
    for _ in range(20 if photo else 1):  # iteratively reweighted least squares: least absolute deviations
        coef, *_ = np.linalg.lstsq(design * weight[:, None], y * weight, rcond=None)
        weight = 1.0 / np.sqrt(np.maximum(np.abs(y - design @ coef), 1e-3))
    rr, cc = np.mgrid[0:hh, 0:ww]
    return coef[0] + coef[1] * rr / hh + coef[2] * cc / ww


def _beside_the_page(ink: np.ndarray) -> np.ndarray:
    """``ink`` of a photo less the regions along its edge :data:`THICKER` times thicker than the strokes of a digit
    found inside it (the thickest stroke of the parts that do not touch the edge, specks aside: 3 pixels thick or
    more, and 5 % of the largest one's ink): the table beside
    the sheet, a phone's shadow across a corner, framed in the digit's place as its largest stroke (a shadow: read
    right 22 % of the time). Nothing is left out where no part of the ink stays off the edge: a digit cropped tight,
    its strokes along the edge, is read as it is."""
    from scipy import ndimage

    peak = float(ink.max()) if ink.size else 0.0
    if peak < 0.1:
        return ink
    labels, n = ndimage.label(ink > 0.2 * peak)
    parts = np.arange(1, n + 1)
    edge = np.zeros(ink.shape, bool)
    edge[0], edge[-1], edge[:, 0], edge[:, -1] = True, True, True, True
    along = np.isin(parts, labels[edge])
    mass = np.asarray(ndimage.sum(ink, labels, index=parts))
    half = np.asarray(ndimage.maximum(ndimage.distance_transform_edt(labels > 0), labels, index=parts))
    strokes = ~along & (half >= 3)  # a noise speck is no stroke
    if not strokes.any():
        return ink
    inside = strokes & (mass >= 0.05 * mass[strokes].max())
    beside = along & (half > THICKER * half[inside].max())
    if not beside.any():
        return ink
    rest = np.where(ndimage.binary_dilation(np.isin(labels, parts[beside]), iterations=3), 0.0, ink)
    return rest if rest.max() >= 0.1 else ink
