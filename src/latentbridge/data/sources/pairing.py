"""Audio-visual pairs: each spoken-digit clip of a split with MNIST images of the same digit drawn
from that split's images only."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from latentbridge.data.sources.common import SPLITS, _check_split
from latentbridge.data.sources.fsdd import FSDD, FSDDItem
from latentbridge.errors import DataError

__all__ = ["AVPair", "pair_audio_visual"]


class AVPair(NamedTuple):
    """A spoken-digit clip and an image of the same digit."""

    clip_idx: int  # index into the fsdd_items given to pair_audio_visual
    image_idx: int  # index into the image pool (mnist_labels)


def pair_audio_visual(
    fsdd_items: Sequence[FSDDItem],
    mnist_labels: np.ndarray,
    split: str,
    seed: int,
    per_clip: int = 1,
    *,
    image_splits: Mapping[str, np.ndarray],
    digits: Iterable[int] = range(10),
    image_file: Mapping[str, Path | None] | None = None,
    test_rule: str | None = None,
) -> list[AVPair]:
    """Pair every FSDD clip of ``split`` with ``per_clip`` MNIST images of the same digit.

    ``mnist_labels`` are the labels of one image pool and ``image_splits`` maps ``"train"`` and
    ``"test"`` to that pool's rows belonging to each split (see
    :meth:`~latentbridge.data.sources.mnist.MNIST.pool`); images for ``split`` are drawn only
    from ``image_splits[split]``. The two index sets must not overlap, and no clip of one split
    may be a clip of the other (DataError otherwise), so test pairs never reuse a training clip
    or a training image. Clips are those items whose
    :attr:`~latentbridge.data.sources.fsdd.FSDDItem.split` is ``split``, for the requested
    ``digits``.

    Within a digit, images are dealt out in seeded random order without replacement; only
    when a digit has more clip slots than images does a fresh shuffle start (reuse inside the
    split). The result is deterministic for a given ``seed`` and does not depend on the other
    split. Sorted by clip, then draw. A requested digit with no clips or no images in the
    split raises DataError naming the digit, and the image label file where ``image_file`` gives each split's
    (``test_rule``: how the clips were split, said there).
    """
    _check_split(split)
    if int(per_clip) != per_clip or per_clip < 1:
        raise ValueError(f"per_clip must be a positive integer, got {per_clip!r}")
    labels = np.asarray(mnist_labels).reshape(-1)
    missing = [s for s in SPLITS if s not in image_splits]
    if missing:
        raise ValueError(f"image_splits needs both {SPLITS} index sets; missing {missing}")
    sets = {s: np.unique(np.asarray(image_splits[s], dtype=np.int64)) for s in SPLITS}
    for s, idx in sets.items():
        if idx.size and (idx.min() < 0 or idx.max() >= len(labels)):
            raise ValueError(f"image_splits[{s!r}] has rows outside 0..{len(labels) - 1}")
    overlap = np.intersect1d(sets["train"], sets["test"])
    if overlap.size:
        raise DataError(
            "image splits", f"{overlap.size} image(s) are in both train and test (e.g. row {int(overlap[0])})"
        )
    by_split_paths = {s: {Path(it.path).resolve() for it in fsdd_items if it.split == s} for s in SPLITS}
    shared = by_split_paths["train"] & by_split_paths["test"]
    if shared:
        raise DataError(next(iter(shared)), "clip listed in both the train and the test split")

    split_code = SPLITS.index(split)
    pool = sets[split]
    pool_labels = labels[pool]
    pairs: list[AVPair] = []
    for digit in sorted({int(d) for d in digits}):
        clips = [i for i, it in enumerate(fsdd_items) if it.split == split and it.digit == digit]
        if not clips:
            held = sorted({it.digit for it in fsdd_items if it.split == split})
            where = (Path(os.path.commonpath([str(Path(it.path).parent) for it in fsdd_items])) if fsdd_items
                     else f"digit {digit}")  # (the first item's folder: test/0 for a digit missing from train/)
            index = f"{FSDD.TEST_INDICES} and up" if split == "train" else f"0-{FSDD.TEST_INDICES - 1}"
            rule = f"test: {test_rule}" if test_rule else f"index {index} of a speaker's recordings"
            raise DataError(where, f"no recordings of digit {digit} in the {split!r} split ({rule}; it holds digit(s) "
                                   f"{', '.join(map(str, held)) or 'none'}): pairs are drawn for all ten digits")
        cand = pool[pool_labels == digit]
        if cand.size == 0:
            held = sorted({int(d) for d in pool_labels})
            raise DataError((image_file or {}).get(split) or f"digit {digit}",
                            f"no images of digit {digit} in the {split!r} split ({pool.size} image(s) of digit(s) "
                            f"{', '.join(map(str, held)) or 'none'}): pairs are drawn for all ten digits")
        rng = np.random.default_rng([int(seed), split_code, digit])
        need = len(clips) * int(per_clip)
        draws = np.concatenate([rng.permutation(cand) for _ in range(-(-need // cand.size))])[:need]
        for k, clip in enumerate(clips):
            for j in range(int(per_clip)):
                pairs.append(AVPair(int(clip), int(draws[k * int(per_clip) + j])))
    pairs.sort(key=lambda p: p.clip_idx)  # stable: draw order kept within a clip
    return pairs
