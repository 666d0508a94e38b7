"""Spoken and written digits as data sets: fixed-length FSDD clips and their log-mel features,
MNIST images, audio-visual pairs, and the classifiers' train/test arrays.

One feature definition (a saved :class:`~latentbridge.transforms.spec.AudioTransform` with
``clip="centre"``) serves every digit model (mel autoencoders, the audio-visual VAE, the FSDD
classifier that scores cross-modal coherence), so a generated spectrogram can be judged by the
classifier without a trip through audio. :func:`default_digit_spec` is the built-in one (8 kHz,
1-s clips → 64 x 128 dB log-mel).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latentbridge.errors import ConfigError, DataError, named_problems
from latentbridge.io import audio_info, read_audio
from latentbridge.utils import batched, file_stamp, stable_hash

log = logging.getLogger(__name__)


def default_digit_spec():
    """The built-in spoken-digit features (see :data:`latentbridge.config.sections.DIGIT_FEATURES`)."""
    from latentbridge.config.sections import DIGIT_AUDIO, DIGIT_FEATURES
    from latentbridge.transforms.spec import AudioTransform, SpectrogramParams, Windowing

    return AudioTransform(windowing=Windowing(window_s=DIGIT_AUDIO["window_s"], hop_s=DIGIT_AUDIO["hop_s"],
                                              pad=DIGIT_AUDIO["pad"], clip="centre"),
                          features=SpectrogramParams(sample_rate=DIGIT_AUDIO["sample_rate"], **DIGIT_FEATURES),
                          standardize=True)


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Centre-crop a longer clip; pad a shorter one with zeros after it."""
    n = wave.shape[-1]
    if n >= length:
        start = (n - length) // 2
        return wave[..., start:start + length]
    return np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, length - n)])


#: The shortest user's recording of a spoken digit, as a share of the clip (unless the model's own rule is stricter):
#: FSDD's shortest clips last 0.14 s of 1 s; a 50-ms file holds no word (it was read as one).
MIN_CONDITION_SHARE = 0.1


def _say_conversions(path, spec) -> None:
    """What reading a user's recording did: a warning when it was recorded below the model's band (resampled, its
    top is empty, which reads as another sound), else an info line (``-v``) on resampling and mixing down."""
    from latentbridge.data.survey import below_band

    info = audio_info(path)
    f = spec.features
    top = float(f.fmax) if f.kind == "mel" and f.fmax else spec.sample_rate / 2
    if below_band(info.sample_rate, top):
        log.warning("%s: recorded at %d Hz, below the model's band: resampled to %d Hz it holds nothing between %g and "
                    "%g Hz, which no training clip lacks (what is drawn from it may be of another digit)", path,
                    info.sample_rate, spec.sample_rate, info.sample_rate / 2, top)
    elif info.sample_rate != spec.sample_rate or info.channels > 1:
        log.info("%s: %s%s", path, f"resampled from {info.sample_rate} to {spec.sample_rate} Hz"
                 if info.sample_rate != spec.sample_rate else "", f"; mixed down from {info.channels} channels"
                 if info.channels > 1 else "")


#: a user's spoken digit peaking below this (dBFS) is named: its features lie near their floor
QUIET_CONDITION_DBFS = -70.0


def load_clips(paths, spec, trim: dict | None = None) -> np.ndarray:
    """(N, clip samples) float32 mono clips at the spec's rate: recordings of any rate and channel count resampled and
    mixed down, what was done counted in a line (a warning where the recordings mix rates or channel counts: other
    recordings mixed in are worth seeing; an info line where all were converted alike). ``trim``:
    :func:`latentbridge.io.audio.trim_silence` arguments applied to each recording before it is fitted to the clip
    length (a user's recording: :data:`CONDITION_TRIM`); without it, a recording longer than the clip loses its quiet
    (:data:`CONDITION_TRIM`) before it is centre-cropped (recordings with 1.5 s of quiet before the word kept 38 % of
    its energy in the median, none of it in 71 % of them; 20 FSDD clips are longer than 1 s)."""
    from latentbridge.io.levels import trim_silence

    sr, length = spec.sample_rate, spec.window_samples
    out = np.zeros((len(paths), length), dtype=np.float32)
    bad: list[DataError] = []
    converted = Counter()
    for i, p in enumerate(paths):
        try:
            wave = _read_clip(p, sr, None if trim else converted)
        except DataError as e:  # every unusable recording named at once (one per run before, fixed one by one)
            bad.append(e)
            continue
        if trim:  # a user's recording: as long as the model's shortest clips, and one word
            least = int(np.ceil(min(spec.windowing.min_share, MIN_CONDITION_SHARE) * length))
            if wave.shape[-1] < least:  # (check_recording_length's advice, a model setting, is no sampler's to take)
                raise DataError(p, f"too short for a spoken digit: {wave.shape[-1] / sr:.3g} s; a recording of one "
                                   f"must last at least {least / sr:.3g} s")
            _say_conversions(p, spec)
            peak = 20 * np.log10(max(float(np.abs(wave).max()), 1e-12))
            if peak < QUIET_CONDITION_DBFS:  # at -84 dBFS read as a confident wrong digit, without a word
                log.warning("%s: very quiet (peak %.0f dBFS): its spectrogram lies near the features' floor, where "
                            "the model reads little of the word (what is drawn from it may be of another digit); "
                            "record it louder, or raise its level", p, peak)
            wave = trim_silence(wave.reshape(-1), sr, **trim)
            if wave.shape[-1] > 1.05 * length:  # (a click 1.2 s after the word kept 1.5 s, cut to 1 s silently)
                log.warning("%s: %.3g s of sound once its quiet is trimmed; the model reads one %.3g-s spoken "
                            "digit, so only the middle %.3g s is used (a longer word, several words, or a click or "
                            "breath beside the word: cut the recording to one word)", p,
                            wave.shape[-1] / sr, length / sr, length / sr)
        elif wave.shape[-1] > length:  # centre-cropped: its quiet first trimmed, so that the crop keeps the word
            wave = trim_silence(wave.reshape(-1), sr, **CONDITION_TRIM)
        out[i] = fit_length(wave, length)
    if len(bad) == 1:
        raise bad[0]
    if bad:
        where = Path(os.path.commonpath([os.path.dirname(str(e.path)) for e in bad]))  # (was the first one's folder)
        raise DataError(where, f"{len(bad)} of {len(paths)} recordings cannot be used: " + named_problems(bad))
    if files := converted.pop(None, 0):  # (the files converted at all; the others were read as they are)
        mixed = files < len(paths) or len(converted) > 1 + any(w.startswith("mixed") for w in converted)
        (log.warning if mixed else log.info)("%d recordings read as the model's clips: %s", len(paths), ", ".join(
            f"{n} {what}" for what, n in sorted(converted.items()))
            + (f" (the other {len(paths) - files} as they are)" if files < len(paths) else ""))
    return out


def _read_clip(path, sample_rate: int, converted: Counter | None = None) -> np.ndarray:
    """A recording at ``sample_rate``, mono; ``converted`` counts what reading did (resampled from a rate, mixed
    down)."""
    if converted is not None:
        info = audio_info(path)
        done = [w for w, d in ((f"resampled from {info.sample_rate} Hz", info.sample_rate != sample_rate),
                               (f"mixed down from {info.channels} channels", info.channels > 1)) if d]
        converted.update(done + [None] * bool(done))
    return read_audio(path, sample_rate=sample_rate, mono=True)[0]


@torch.no_grad()
def clip_features(waves: np.ndarray, spec, batch: int = 256) -> np.ndarray:
    """(N, T) clips → (N, 1, n_mels, n_frames) features of ``spec``."""
    from latentbridge.transforms.spec import build_spectrogram

    t = build_spectrogram(spec)
    if not len(waves):
        f = spec.features
        return np.zeros((0, 1, f.n_mels if f.kind == "mel" else f.n_fft // 2 + 1, f.n_frames or 0), np.float32)
    return batched(t, waves, batch_size=batch).numpy()


#: A spoken-digit condition loses its leading and trailing quiet (:func:`spoken_digit_features`): frames
#: more than ``top_db`` below its loudest one, or within ``floor_margin_db`` of its background noise.
CONDITION_TRIM = {"top_db": 40.0, "floor_margin_db": 6.0}


def spoken_digit_features(path, spec) -> np.ndarray:
    """(1, 1, F, T) features of a user's spoken digit (any audio file, rate or channel count) prepared as
    the training clips are: mono at the features' rate, its leading and trailing quiet trimmed
    (:data:`CONDITION_TRIM`, :func:`latentbridge.io.audio.active_bounds`), so that the word starts the
    clip as in FSDD, then centre-cropped or padded to the clip length.

    The digits MLD preset reads FSDD test clips with 0.4 s / 0.6 s of quiet noise around the word
    (and 12 dB quieter, 44.1 kHz stereo) right 0.48 of the time untrimmed, 0.79 trimmed, and 0.95 trimmed
    once its audio encoder is aligned with such recordings (:func:`as_recorded_clips`; ``benchmarks/README.md``
    §10); the level itself barely matters (0.98 at -12 dB)."""
    return clip_features(load_clips([path], spec, trim=CONDITION_TRIM), spec)


#: How :func:`as_recorded_clips` hands a training clip over, as a user's recorder might: the word's gain
#: (dB); in a share of copies a room's reverberation (decay time in s, reverberant energy relative to the
#: direct sound in dB) and in another a microphone's band (a band-pass between the two edges, Hz); the
#: quiet before and after the word (s); background noise under the word's loudest 20-ms frame (dB; white,
#: pink or brown), none in ``noiseless_share`` of the copies (an edited file).
RECORDED = {"gain_db": (-20.0, 6.0), "room_share": 0.5, "rt60_s": (0.1, 0.7), "reverb_db": (-10.0, 6.0),
            "band_share": 0.3, "low_hz": (50.0, 400.0), "high_hz": (2500.0, 3900.0),
            "lead_s": (0.0, 0.5), "tail_s": (0.0, 0.8), "noise_below_peak_db": (15.0, 60.0), "noiseless_share": 0.15}


def as_recorded_clips(waves: np.ndarray, sample_rate: int, copies: int, seed: int,
                      conditions: dict | None = None) -> np.ndarray:
    """(copies, N, T) float32: each clip of ``waves`` (N, T) as a recorder might hand it over
    (:data:`RECORDED`: random level, sometimes a room's reverberation or a microphone's band, quiet before
    and after the word, background noise of a random colour and level throughout) and then prepared as a
    user's condition is (:func:`spoken_digit_features`: the quiet trimmed with :data:`CONDITION_TRIM`,
    centre-cropped or padded to ``T``). Trailing exact zeros of a clip (its padding to ``T``) are not part
    of the word. ``conditions``: entries of :data:`RECORDED` to draw differently. Seeded: the same copies for
    the same seed."""
    from scipy.signal import butter, fftconvolve, sosfilt

    from latentbridge.data.augment import coloured_noise
    from latentbridge.io.levels import frame_rms, trim_silence

    waves = np.asarray(waves, dtype=np.float32)
    n, length = waves.shape
    r = {**RECORDED, **(conditions or {})}
    rng = np.random.default_rng([int(seed), 7])
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
    frame = max(1, int(round(0.02 * sample_rate)))
    out = np.zeros((int(copies), n, length), dtype=np.float32)
    for c in range(int(copies)):
        for i in range(n):
            word = np.trim_zeros(waves[i], "b")
            if len(word) < frame:
                word = waves[i]
            word = word * np.float32(10 ** (rng.uniform(*r["gain_db"]) / 20))
            if rng.random() < r["room_share"]:  # exponentially decaying noise after the direct sound
                rt60 = rng.uniform(*r["rt60_s"])
                n_decay = int(rt60 * sample_rate)
                decay = rng.standard_normal(n_decay) * np.exp(-6.91 * np.arange(n_decay) / (rt60 * sample_rate))  # -60 dB
                decay *= 10 ** (rng.uniform(*r["reverb_db"]) / 20) / np.sqrt((decay ** 2).sum() + 1e-20)
                word = fftconvolve(word, np.concatenate([[1.0], decay])).astype(np.float32)
            if rng.random() < r["band_share"]:
                band = [rng.uniform(*r["low_hz"]), min(rng.uniform(*r["high_hz"]), 0.49 * sample_rate)]
                word = sosfilt(butter(4, band, btype="bandpass", fs=sample_rate, output="sos"), word).astype(np.float32)
            lead, tail = (int(rng.uniform(*r[k]) * sample_rate) for k in ("lead_s", "tail_s"))
            rec = np.concatenate([np.zeros(lead, np.float32), word, np.zeros(tail, np.float32)])
            if rng.random() >= r["noiseless_share"]:
                level = frame_rms(word, frame).max() * 10 ** (-rng.uniform(*r["noise_below_peak_db"]) / 20)
                colour = float(rng.integers(3))
                rec = rec + coloured_noise((len(rec),), colour, gen).numpy() * np.float32(level)
            rec = np.clip(rec, -1.0, 1.0)
            out[c, i] = fit_length(trim_silence(rec, sample_rate, **CONDITION_TRIM), length)
    return out


class RecordedClips(torch.utils.data.Dataset):
    """Examples for aligning an encoder with recorded conditions (:func:`latentbridge.training.align.align_encoder`):
    ``{"x", "target"}`` where ``x`` is, with probability ``share``, one of a clip's recorded copies
    (:func:`as_recorded_clips`, as features) and the clip's own features otherwise, and ``target`` is the
    clip's row of ``targets`` (its latent). The draws are seeded by (seed, row, use count), so a run is
    reproducible."""

    def __init__(self, clean: np.ndarray, recorded: np.ndarray, share: float, seed: int, targets: np.ndarray):
        if recorded.shape[1:] != clean.shape or len(targets) != len(clean):
            raise ValueError(f"recorded copies {recorded.shape} and targets {targets.shape} do not match the clips "
                             f"{clean.shape}")
        self.clean, self.recorded = torch.from_numpy(clean), torch.from_numpy(recorded)
        self.targets = torch.from_numpy(np.asarray(targets))
        self.share, self.seed = float(share), int(seed)
        self.uses = np.zeros(len(clean), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.clean)

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, int(i), int(self.uses[i])])
        self.uses[i] += 1
        x = self.recorded[rng.integers(len(self.recorded)), i] if rng.random() < self.share else self.clean[i]
        return {"x": x, "target": self.targets[i]}


#: the longest side a written digit's photo is framed at (larger ones are box-averaged to it first): a digit a tenth
#: of its frame's width is still 200 px, ten times MNIST's 20
MAX_DIGIT_SIDE = 2048


def read_digit_image(path, height: int, width: int) -> np.ndarray:
    """A written digit as a user hands it over — a PNG, JPEG, BMP, TIFF or WebP of any size, colour
    and orientation (EXIF), or strokes on a transparent canvas — as ``(height, width)`` float32 in
    [0, 1] framed as MNIST's digits are (:func:`frame_digit`). A blank image is refused naming the file."""
    from latentbridge.io.images import read_image

    grey = read_image(path, channels=1, background="contrast")[0]
    if (factor := -(-max(grey.shape) // MAX_DIGIT_SIDE)) > 1:  # a phone's 12-megapixel photo took 0.9 GB to frame,
        from PIL import Image                                   # an 8000-px one 3.3 GB: box-averaged first

        grey = np.asarray(Image.fromarray(grey).reduce(int(factor)))
    grey = grey.astype(np.float64) / 255.0
    if max(grey.shape) < max(height, width) / 2:  # framed all the same, but blurred: say so
        log.warning("%s: a %dx%d image, under half the model's %dx%d: blown up, its strokes blur", path,
                    grey.shape[1], grey.shape[0], width, height)
    return frame_digit(grey, height, width, path)


WRITTEN = {"low_res_share": 0.5, "low_res_px": (7, 16), "blur_share": 0.5, "blur_sigma": (0.3, 1.2),
           "stroke_share": 0.5, "rotate_deg": (-15.0, 15.0), "shear": (-0.3, 0.3), "gamma": (0.5, 2.0)}
"""How :func:`as_written_copies` draws other writers, pens and sources of a digit."""
ALIGNED_WITH = {"recorded": "recorded conditions (level, a room's reverberation, a microphone's band, quiet around "
                            "the word, background noise; trimmed as a user's condition is)",
                "written": "written digits from other sources (a coarser scan, blur, another pen, slant and "
                           "contrast; framed as a user's digit is)"}
"""What a first stage's encoder was aligned with (:func:`latentbridge.training.align.align_encoder`), by kind."""


def as_written_copies(images: np.ndarray, copies: int, seed: int) -> np.ndarray:
    """(copies, N, 1, H, W) float32: each MNIST-framed digit of ``images`` (N, 1, H, W) in [0, 1] as
    another source might give it (:data:`WRITTEN`: a coarser scan — box-averaged to 7-16 px and
    enlarged again —, blur, a thicker or thinner pen, another slant and rotation, another ink
    contrast), then read as a user's digit is (:func:`frame_digit`). Seeded."""
    from PIL import Image
    from scipy import ndimage

    x = np.asarray(images, dtype=np.float64)
    n, _, h, w = x.shape
    r = WRITTEN
    rng = np.random.default_rng([int(seed), 11])
    out = np.empty((int(copies), n, 1, h, w), dtype=np.float32)
    for c in range(int(copies)):
        for i in range(n):
            a = x[i, 0]
            if rng.random() < r["low_res_share"]:
                px = int(rng.integers(r["low_res_px"][0], r["low_res_px"][1] + 1))
                small = Image.fromarray(a.astype(np.float32), "F").resize((px, px), Image.Resampling.BOX)
                a = np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)
            if rng.random() < r["stroke_share"]:
                size = int(rng.integers(2, 4))
                a = (ndimage.grey_dilation if rng.random() < 0.6 else ndimage.grey_erosion)(a, size=(size, size))
            angle, shear = np.deg2rad(rng.uniform(*r["rotate_deg"])), rng.uniform(*r["shear"])
            m = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.array([[1, 0], [shear, 1]])
            centre = np.array([h / 2, w / 2])
            a = ndimage.affine_transform(a, m, offset=centre - m @ centre, order=1)
            if rng.random() < r["blur_share"]:
                a = ndimage.gaussian_filter(a, rng.uniform(*r["blur_sigma"]))
            a = np.clip(a, 0, None) ** rng.uniform(*r["gamma"])
            try:
                out[c, i, 0] = frame_digit(a, h, w)
            except DataError:  # the pen thinned the digit away: the digit itself
                out[c, i, 0] = x[i, 0]
    return out


DIGIT_BOX = 20 / 28  # MNIST: each digit fitted in a 20 x 20 box of the 28 x 28 frame


#: a sheet of paper on a darker table (a phone's photo): "ink" whose holes filled fill this much of its box (a digit's
#: outline at most pi / 4: a bold 0), over this share of the image, with something darker than the border in its holes
SHEET_FILL, SHEET_SHARE = 0.85, 0.2


def frame_digit(grey: np.ndarray, height: int, width: int, name="image", within_sheet: bool = False) -> np.ndarray:
    """Grey levels ``(H, W)`` in [0, 1] of a written digit → ``(height, width)`` float32 in MNIST's
    convention: light ink on black (dark ink on light paper inverted; the paper's level, a plane
    fitted to the image's border, taken out, so uneven light is too), specks under 5 % of the
    largest stroke's ink dropped, the ink's bounding box scaled to fit ``DIGIT_BOX`` of the frame
    keeping its aspect ratio, and its centre of mass put at the frame's centre — how MNIST's digits
    were made, so a small digit off to one side of a photo reads like one of them. A sheet on a darker table
    (:data:`SHEET_FILL`: read as light ink, its digit a hole) is read within it (``within_sheet``: that reading)."""
    from PIL import Image
    from scipy import ndimage

    g = np.asarray(grey, dtype=np.float64)
    if g.ndim != 2 or not g.size or not np.isfinite(g).all():
        raise DataError(name, f"a written digit's grey levels must be a finite 2-D array, got shape {g.shape}"
                              + ("" if not g.size or np.isfinite(g).all() else " with NaN or infinite values"))
    paper = _paper_level(g)
    if np.median(paper) > 0.5:  # dark ink on light paper
        g, paper = 1.0 - g, 1.0 - paper
    raw = g - paper
    peak = float(raw.max()) if raw.size else 0.0
    if peak < 0.1:
        raise DataError(name, "no digit in the image: nothing stands out from the background by 10 % of the "
                              "grey range")
    ink = np.clip(raw / peak, 0.0, 1.0)
    labels, n_parts = ndimage.label(ink > 0.2)
    mass = ndimage.sum(ink, labels, index=np.arange(1, n_parts + 1))
    kept = np.isin(labels, 1 + np.flatnonzero(mass >= 0.05 * mass.max()))
    rows, cols = np.flatnonzero(kept.any(axis=1)), np.flatnonzero(kept.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    solid = ndimage.binary_fill_holes(kept[r0:r1, c0:c1]) if not within_sheet and (r1 - r0) * (c1 - c0) > \
        SHEET_SHARE * kept.size else kept[r0:r1, c0:c1]
    written, dr, dc = solid & ~kept[r0:r1, c0:c1], max(1, (r1 - r0) // 20), max(1, (c1 - c0) // 20)
    if written.mean() > 0.005 and solid.mean() > SHEET_FILL and np.mean(raw[r0:r1, c0:c1][written]) < -0.1:
        try:  # (a bold digit's counters are the background's level; it framed a white rectangle with a grey 7 in it)
            return frame_digit(np.asarray(grey)[r0 + dr:r1 - dr, c0 + dc:c1 - dc], height, width, name, True)
        except DataError:
            pass  # nothing written on it after all: read as it is
    ink = np.where(ndimage.binary_dilation(kept, iterations=2), ink, 0.0)[r0:r1, c0:c1]
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


def _paper_level(g: np.ndarray) -> np.ndarray:
    """The background of a grey image: a plane ``a + b·row + c·col`` fitted (least squares) to its
    outer frame (2 % of the shorter side, at least one pixel), evaluated everywhere."""
    hh, ww = g.shape
    k = max(1, int(round(0.02 * min(hh, ww))))
    frame = np.zeros(g.shape, bool)
    frame[:k], frame[-k:], frame[:, :k], frame[:, -k:] = True, True, True, True
    r, c = np.nonzero(frame)
    design = np.column_stack([np.ones(len(r)), r / hh, c / ww])
    coef, *_ = np.linalg.lstsq(design, g[frame], rcond=None)
    rr, cc = np.mgrid[0:hh, 0:ww]
    return coef[0] + coef[1] * rr / hh + coef[2] * cc / ww


def images_to_float(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) → float32 (N, 1, 28, 28) in [0, 1]."""
    return (np.asarray(images, dtype=np.float32) / 255.0)[:, None]


def clips_and_features_cached(paths: list[Path], spec) -> tuple[np.ndarray, np.ndarray]:
    """Clips and their features, cached as .npy keyed by the files and the feature definition."""
    from latentbridge.data.feature_cache import digit_set

    key = stable_hash({"transform": spec.model_dump(mode="json"), "reader": 4,  # 2: io.remove_dc, 3: long clips trimmed
                       # 4: remove_dc spares sound in silence
                       "files": [(str(p.resolve()), file_stamp(p)) for p in paths]})

    def compute():
        waves = load_clips(paths, spec)
        return waves, clip_features(waves, spec)

    return digit_set(key, ("waves", "features"), lambda w, f: len(w) == len(f) == len(paths), compute,
                     "digit feature")


# ----------------------------------------------------------------------------- audio-visual pairs


@dataclass
class DigitPairs:
    audio: np.ndarray  # (N, 1, n_mels, frames) dB log-mel
    image: np.ndarray  # (N, 1, 28, 28) in [0, 1]
    label: np.ndarray  # (N,)
    clip: np.ndarray  # (N,) clip id (index into the FSDD item list)
    speaker: list[str]
    waves: np.ndarray  # (N, T) clips

    def __len__(self) -> int:
        return int(len(self.label))

    def subset(self, mask: np.ndarray) -> "DigitPairs":
        return DigitPairs(self.audio[mask], self.image[mask], self.label[mask], self.clip[mask],
                          [s for s, m in zip(self.speaker, mask) if m], self.waves[mask])

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"audio": torch.from_numpy(self.audio), "image": torch.from_numpy(self.image),
                "label": torch.from_numpy(self.label.astype(np.int64))}

    def split_val(self, fraction: float, seed: int) -> tuple["DigitPairs", "DigitPairs"]:
        """Hold out whole clips (with all their pairs) for validation; a digit whose every clip was drawn keeps one
        for training (a digit of one training clip drawn lost all its training pairs without a word)."""
        clips = np.unique(self.clip)
        n_val = int(round(fraction * len(clips)))
        drawn = np.random.default_rng(seed).permutation(clips)[:n_val].tolist()
        val_clips = set(drawn)
        digit = dict(zip(self.clip.tolist(), self.label.tolist()))
        for d in set(digit.values()):
            if all(c in val_clips for c, x in digit.items() if x == d):
                val_clips.discard(next(c for c in reversed(drawn) if digit[c] == d))
        mask = np.array([c in val_clips for c in self.clip])
        return self.subset(~mask), self.subset(mask)


def digit_sources(digits_cfg):
    """(spoken, written digits) of a ``digits`` config section: FSDD or a folder of one's own recordings
    (:class:`~latentbridge.data.sources.FSDD`), MNIST or a folder of one's own images
    (:func:`~latentbridge.data.sources.written_digits`). Without MNIST's training images, the offline split of its test
    images is the fixed one (seed 0) whatever the run's seed, like FSDD's official split: the digit judges are trained
    on it, and a run of train.seed 1 had 83 % of its test images among the judge's training images."""
    from latentbridge.data.sources import FSDD, written_digits

    d = digits_cfg
    if not d.fsdd_root or not d.mnist_root:
        raise ConfigError("digits.fsdd_root and digits.mnist_root: both data folders are needed (e.g. -o "
                          "digits.fsdd_root=../shared/data/fsdd -o digits.mnist_root=../shared/data/mnist; with -o "
                          "digits.download=true, folders to download the data sets into)")
    return FSDD(d.fsdd_root, download=d.download), written_digits(d.mnist_root, download=d.download)


def build_pairs(digits_cfg, spec, split: str, seed: int) -> tuple[DigitPairs, dict]:
    """The seeded audio-visual pairs of ``split`` (test pairs never reuse a training clip or image)."""
    from latentbridge.data.sources import pair_audio_visual

    fsdd, mnist = digit_sources(digits_cfg)
    items = fsdd.items()
    if held := set(digits_cfg.held_out_speakers):
        known = {it.speaker for it in items}
        if unknown := sorted(held - known):
            raise ConfigError(f"digits.held_out_speakers: {unknown} are not speakers of {fsdd.name} "
                              f"({', '.join(sorted(known))})")
        items = [it for it in items if it.speaker not in held]
    images, labels, splits = mnist.pool()
    pairs = pair_audio_visual(items, labels, split, seed, digits_cfg.pairs_per_clip, image_splits=splits,
                              image_file={s: mnist.labels_file(s) for s in ("train", "test")},
                              test_rule=fsdd.split_rule["test"])
    limit = digits_cfg.limit_train_clips if split == "train" else digits_cfg.limit_test_clips
    if limit:
        clips = sorted({p.clip_idx for p in pairs})
        keep = set(np.random.default_rng(seed).permutation(clips)[:limit].tolist())
        pairs = [p for p in pairs if p.clip_idx in keep]
    clip_ids = sorted({p.clip_idx for p in pairs})
    waves, feats = clips_and_features_cached([items[i].path for i in clip_ids], spec)
    row = {c: r for r, c in enumerate(clip_ids)}
    idx = np.array([row[p.clip_idx] for p in pairs])
    img = np.array([p.image_idx for p in pairs])
    data = DigitPairs(audio=feats[idx], image=images_to_float(images[img]),
                      label=np.array([items[p.clip_idx].digit for p in pairs]),
                      clip=np.array([p.clip_idx for p in pairs]),
                      speaker=[items[p.clip_idx].speaker for p in pairs], waves=waves[idx])
    info = {"split": split, "n_pairs": len(pairs), "n_clips": len(clip_ids),
            "n_images": len(set(img.tolist())), "mnist_offline_split": bool(mnist.offline_split),
            "audio_source": fsdd.name, "image_source": mnist.name}
    return data, info


def training_images(digits_cfg) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST training images (uint8) and their digits: the pool the training pairs draw from."""
    _, mnist = digit_sources(digits_cfg)
    images, labels, splits = mnist.pool()
    return images[splits["train"]], np.asarray(labels)[splits["train"]]


class RedrawnPairs(torch.utils.data.Dataset):
    """Training pairs whose image is drawn afresh on every use among the training images of the
    clip's digit (``digits.redraw_images``). The draws are seeded by (seed, row, use count), so a
    run is reproducible."""

    def __init__(self, data: DigitPairs, images: np.ndarray, image_labels: np.ndarray, seed: int):
        self.audio = torch.from_numpy(data.audio)
        self.label = torch.from_numpy(data.label.astype(np.int64))
        self.images = images
        self.rows = {int(d): np.flatnonzero(image_labels == d) for d in np.unique(data.label)}
        empty = [d for d, r in self.rows.items() if not len(r)]
        if empty:
            raise DataError("MNIST", f"no training image of digit(s) {empty} to pair with the clips")
        self.seed = seed
        self.uses = np.zeros(len(self.label), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i):
        rows = self.rows[int(self.label[i])]
        r = rows[np.random.default_rng([self.seed, int(i), int(self.uses[i])]).integers(len(rows))]
        self.uses[i] += 1
        return {"audio": self.audio[i], "image": torch.from_numpy(images_to_float(self.images[r:r + 1])[0]),
                "label": self.label[i]}


# ----------------------------------------------------------------------------- classifier data


def _subset(x: np.ndarray, y: np.ndarray, n: int | None, seed: int, which: int):
    if n is None or n >= len(y):
        return x, y
    idx = np.sort(np.random.default_rng([seed, which]).permutation(len(y))[: int(n)])
    return x[idx], y[idx]


#: how a classifier's data folder is given (`classifier train KIND --data DIR`, a config's data.root)
CLASSIFIER_ROOT = "--data DIR (a classifier config's data.root)"


def classifier_data(kind: str, root, spec=None, *, n_train: int | None = None, n_test: int | None = None,
                    seed: int = 0) -> dict:
    """``{"x_train", "y_train", "x_test", "y_test", "data_config"}``: float32 model inputs and int64
    labels of the MNIST images or the FSDD clips' features (``spec``), with where they came from.
    ``n_train`` / ``n_test``: seeded subsets (quick runs and tests)."""
    from latentbridge.data.sources import FSDD, written_digits

    if kind == "mnist":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*MNIST training images absent.*")
            ds = written_digits(root, setting=CLASSIFIER_ROOT, fetch=None)
        xtr, ytr = ds.load("train")
        xte, yte = ds.load("test")
        out = {"x_train": images_to_float(xtr), "y_train": ytr.astype(np.int64),
               "x_test": images_to_float(xte), "y_test": yte.astype(np.int64),
               "data_config": {"data_root": str(Path(ds.root).resolve()), "dataset": ds.name,
                               "offline_split": bool(ds.offline_split), "split_seed": ds.seed, "split": ds.split_rule}}
    elif kind == "fsdd":
        ds = FSDD(root, setting=CLASSIFIER_ROOT, fetch=None)
        out, split = {}, {s: ds.split(s) for s in ("train", "test")}
        for s, items in split.items():
            if not items:
                raise DataError(ds.recordings_dir, f"no recordings in the {s!r} split ({ds.split_rule[s]})")
        every = split["train"] + split["test"]  # read at once: both splits' bad recordings named in one error
        x = clip_features(load_clips([it.path for it in every], spec), spec)
        out["x_train"], out["x_test"] = x[:len(split["train"])], x[len(split["train"]):]
        for s, items in split.items():
            out[f"y_{s}"] = np.array([it.digit for it in items], dtype=np.int64)
        out["data_config"] = {
            "data_root": str(Path(ds.root).resolve()), "dataset": ds.name, "offline_split": False,
            "split": ds.split_rule, "speakers": ds.speakers, "speaker_overlap": True,
            "test_measures": "new recordings of the training speakers (every speaker is in both splits)"
            if ds.name == "FSDD" else "recordings held out of training (their speakers may be in training too)",
        }
    else:
        raise ValueError(f"kind must be 'mnist' or 'fsdd', got {kind!r}")
    for which, (s, n) in enumerate((("train", n_train), ("test", n_test))):
        before = len(out[f"y_{s}"])
        out[f"x_{s}"], out[f"y_{s}"] = _subset(out[f"x_{s}"], out[f"y_{s}"], n, seed, which)
        if len(out[f"y_{s}"]) < before:  # the split says what was used: a seeded subset of it
            split = out["data_config"]["split"]
            split[s] = f"a seeded (seed {seed}) {len(out[f'y_{s}'])} of {split[s]}"
    return out
