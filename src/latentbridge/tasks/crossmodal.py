"""Measures of generated digits shared by every cross-modal generator of spoken ↔ written digits
(the audio-visual VAE's posterior and bridge routes, multimodal latent diffusion), so that their
figures share key names and meaning (compute only).

Given the test pairs and, for each pair, an image generated from its spoken digit and a log-mel
generated from its image (:func:`generation_metrics`):

- ``coherence_audio_to_image`` / ``coherence_image_to_audio``: the digit classifiers (MNIST; FSDD
  on the same log-mel features) read the intended digit;
- ``coherence_image_to_wav``: the FSDD classifier on the log-mel of the Griffin-Lim audio, and
  ``coherence_image_to_wav_second_judge``: the waveform judge (MFCC statistics of that audio,
  :mod:`latentbridge.tasks.judges`), beside ``second_judge_ceiling``, the same judge on
  Griffin-Lim audio of the *real* test log-mels (the same pairs);
- ``fd_image`` / ``fd_audio``: Fréchet distance of the generated set to the real test set in
  each classifier's penultimate feature space, with ``*_real_floor``: as many real training
  examples against the same test set (``*_real_floor_n``: how many; fewer where the training set is smaller);
- ``diversity_image`` / ``diversity_audio``: mean pairwise RMS distance (pixels in [0, 1]; dB)
  of the samples generated for one digit, averaged over digits (``*_real``: the real test
  examples of one digit); a retrieval route that returns a few typical examples scores low;
- ``memorisation_image`` / ``memorisation_audio``: mean RMS distance of a sample to its nearest
  training example (``*_real``: of a real test example): a copy of a training example scores 0.

Route-specific keys carry the route's suffix (``_bridge``); the ceilings and real references do not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass
class DigitJudges:
    mnist: object
    fsdd: object
    mnist_info: dict
    fsdd_info: dict
    waveform: object
    spec: object
    train_images: np.ndarray  # (N, 1, 28, 28): the MNIST training images the pairs draw from
    train_audio: np.ndarray  # (M, 1, F, T): the log-mels of the training clips


#: a digit classifier reading its own test set below this is named as a weak judge wherever it judges
WEAK_JUDGE = 0.9


def digit_judges(cfg, spec) -> DigitJudges:
    """The classifiers, the waveform judge and the training references of a digits config."""
    from latentbridge.data.digits import images_to_float, training_images
    from latentbridge.tasks.avdigits import classifiers, pairs
    from latentbridge.tasks.judges import load_waveform_judge

    (mnist, mnist_info), (fsdd, fsdd_info) = classifiers(cfg, spec)
    for what, name, info, root in (("images", "mnist", mnist_info, cfg.digits.mnist_root),
                                   ("spoken digits", "fsdd", fsdd_info, cfg.digits.fsdd_root)):
        acc = info.get("test_accuracy")
        if acc is not None and acc < WEAK_JUDGE:  # a judge of 0.43 read coherence at chance without a word
            log.warning("the classifier that judges generated %s (trained on %s) reads its own test set at %.2f: "
                        "coherence and class figures through it are bounded by that (a judge worth its name: "
                        "latentbridge classifier train %s --data %s --out %s --force --epochs N, N larger)", what,
                        (info.get("data") or {}).get("dataset", name.upper()), acc, name, root, info.get("path"))
    images, _ = training_images(cfg.digits)
    train, _ = pairs(cfg, "train")
    _, first = np.unique(train.clip, return_index=True)
    return DigitJudges(mnist, fsdd, mnist_info, fsdd_info, load_waveform_judge(cfg.digits.fsdd_root, spec), spec,
                       images_to_float(images), train.audio[np.sort(first)])


def wav_subset(n_pairs: int, max_pairs: int) -> np.ndarray:
    """The seeded random pairs whose generated audio is turned into waveforms (pairs are sorted by
    digit, so the first N would hold a few digits only)."""
    return np.sort(np.random.default_rng(0).permutation(n_pairs)[:min(n_pairs, max_pairs)])


FULL_SCALE_PEAK = 0.99


def griffin_lim(spec, log_mels, gl_iterations: int = 32, generator: torch.Generator | None = None) -> np.ndarray:
    """(N, 1, F, T) dB log-mels (numpy or torch) → (N, samples) Griffin-Lim audio as it comes (seeded:
    reproducible; may pass full scale; ``generator``: of the starting phases, drawn on through a batch's chunks)."""
    from latentbridge.transforms.spec import build_spectrogram

    x = log_mels if isinstance(log_mels, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(log_mels))
    with torch.no_grad():
        w = build_spectrogram(spec).invert(x.float(), length=spec.window_samples, n_iter=gl_iterations,
                                           generator=generator)
    return w.reshape(len(x), -1).numpy()


def under_full_scale(waves: np.ndarray) -> np.ndarray:
    """(N, samples): a clip whose peak passes full scale scaled down to ``FULL_SCALE_PEAK``, so that what is
    judged is what a 16-bit wav holds (never hard-clipped); the others left as they are."""
    peak = np.abs(waves).max(axis=1, keepdims=True)
    return np.where(peak > 1.0, waves * (FULL_SCALE_PEAK / np.maximum(peak, 1e-12)), waves).astype(np.float32)


def to_waves(spec, log_mels, gl_iterations: int = 32, generator: torch.Generator | None = None) -> np.ndarray:
    """(N, 1, F, T) dB log-mels (numpy or torch) → (N, samples) Griffin-Lim audio kept under full scale
    (:func:`griffin_lim`, then :func:`under_full_scale`): the audio the wav files hold and the judges read."""
    return under_full_scale(griffin_lim(spec, log_mels, gl_iterations, generator))


def _floor(features_real: np.ndarray, n: int, reference: np.ndarray, key: str) -> dict:
    """``key`` (the Fréchet distance of ``n`` real training examples to the test set's) and ``key_n``, how many there
    were: fewer than ``n`` generated samples when the training set is smaller, named (the distance falls as the count
    grows: 600 against 1,200 in 64 dimensions read 3.57, 1,200 read 2.81)."""
    from latentbridge.metrics.generative import frechet_distance

    m = min(n, len(features_real))
    if m < n:
        log.warning("%s rests on %d real training examples against %d generated samples: a Fréchet distance falls as "
                    "the count grows, so the floor reads higher than one of %d would", key, m, n, n)
    idx = np.sort(np.random.default_rng(1).permutation(len(features_real))[:m])
    return {key: frechet_distance(features_real[idx], reference), f"{key}_n": int(m)}


def reference_metrics(j: DigitJudges, test, sub: np.ndarray, gl_iterations: int = 32) -> dict:
    """What every route is read against: the waveform judge's ceiling on the pairs ``sub``, the
    real floors of the Fréchet distances and the real diversity / memorisation."""
    from latentbridge.metrics.generative import diversity, nearest_distance
    from latentbridge.tasks.judges import ceiling

    _, first = np.unique(test.clip, return_index=True)
    clips = np.sort(first)
    n = len(test.label)
    return {
        "second_judge_ceiling": ceiling(j.waveform, test.audio[sub], test.label[sub], j.spec, gl_iterations),
        "second_judge_real_clips": j.waveform.info.get("test_accuracy_real_clips"),
        # the data folders the judges were trained on (kept per folder: a judge of other data reads other figures)
        "mnist_classifier_data": (j.mnist_info.get("data") or {}).get("data_root"),
        "fsdd_classifier_data": (j.fsdd_info.get("data") or {}).get("data_root"),
        "second_judge_data": j.waveform.info.get("data_root"),
        **_floor(j.mnist.embed(j.train_images), n, j.mnist.embed(test.image), "fd_image_real_floor"),
        **_floor(j.fsdd.embed(j.train_audio), n, j.fsdd.embed(test.audio[clips]), "fd_audio_real_floor"),
        "diversity_image_real": diversity(test.image, test.label),
        "diversity_audio_real": diversity(test.audio[clips], test.label[clips]),
        "memorisation_image_real": float(nearest_distance(test.image, j.train_images).mean()),
        "memorisation_audio_real": float(nearest_distance(test.audio[clips], j.train_audio).mean()),
    }


def generation_metrics(j: DigitJudges, test, images: np.ndarray, audio: np.ndarray, sub: np.ndarray,
                       suffix: str = "", gl_iterations: int = 32) -> dict:
    """The measures of one route: ``images`` (N, 1, 28, 28) generated from each test pair's spoken
    digit, ``audio`` (N, 1, F, T) dB log-mels generated from its image; the audio of the pairs
    ``sub`` goes through Griffin-Lim for the waveform measures."""
    from latentbridge.metrics.classification import coherence
    from latentbridge.metrics.generative import diversity, frechet_distance, nearest_distance
    from latentbridge.transforms.spec import build_spectrogram

    _, first = np.unique(test.clip, return_index=True)
    clips = np.sort(first)
    waves = to_waves(j.spec, audio[sub], gl_iterations)
    with torch.no_grad():
        reanalysed = build_spectrogram(j.spec)(torch.from_numpy(waves))
    return {
        f"coherence_audio_to_image{suffix}": coherence(j.mnist, images, test.label)["accuracy"],
        f"coherence_image_to_audio{suffix}": coherence(j.fsdd, audio, test.label)["accuracy"],
        f"coherence_image_to_wav{suffix}": coherence(j.fsdd, reanalysed, test.label[sub])["accuracy"],
        f"coherence_image_to_wav_second_judge{suffix}": j.waveform.accuracy(waves, test.label[sub]),
        f"fd_image{suffix}": frechet_distance(j.mnist.embed(images), j.mnist.embed(test.image)),
        f"fd_audio{suffix}": frechet_distance(j.fsdd.embed(audio), j.fsdd.embed(test.audio[clips])),
        f"diversity_image{suffix}": diversity(images, test.label),
        f"diversity_audio{suffix}": diversity(audio, test.label),
        f"memorisation_image{suffix}": float(nearest_distance(images, j.train_images).mean()),
        f"memorisation_audio{suffix}": float(nearest_distance(audio, j.train_audio).mean()),
    }
