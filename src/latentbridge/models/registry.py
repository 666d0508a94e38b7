"""Every saved model class, by name: the one lookup ``hub`` uses (no import strings).

Each entry imports its module only when that model is asked for, so a model folder of one kind
loads without importing the code of every other kind.
"""

from __future__ import annotations

from typing import Callable

from torch import nn


def _vae():
    from latentbridge.models import vae

    return vae


def _multimodal():
    from latentbridge.models import multimodal

    return multimodal


def _audiovisual():
    from latentbridge.models import audiovisual

    return audiovisual


def _autoencoders():
    from latentbridge.models import autoencoders

    return autoencoders


def _classifiers():
    from latentbridge.models import classifiers

    return classifiers


def _entry(module: Callable, cls: str) -> Callable[[], type[nn.Module]]:
    return lambda: getattr(module(), cls)


REGISTRY: dict[str, Callable[[], type[nn.Module]]] = {
    "conv_vae": _entry(_vae, "ConvVAE"),
    "conv_ae": _entry(_vae, "ConvAE"),
    "dense_ae": _entry(_vae, "DenseAE"),
    "mmvae": _entry(_multimodal, "MultimodalVAE"),
    "spec2mask": _entry(_multimodal, "Spec2Mask"),
    "avmvae": _entry(_audiovisual, "AudioVisualVAE"),
    "mel_ae": _entry(_autoencoders, "MelAE"),
    "mel_vae": _entry(_autoencoders, "MelVAE"),
    "image_dense_ae": _entry(_autoencoders, "DenseImageAE"),
    "image_conv_ae": _entry(_autoencoders, "ConvImageAE"),
    "mnist_classifier": _entry(_classifiers, "MNISTClassifier"),
    "fsdd_classifier": _entry(_classifiers, "FSDDClassifier"),
}


def model_names() -> list[str]:
    return sorted(REGISTRY)


def get_model_class(name: str) -> type[nn.Module]:
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {model_names()}")
    return REGISTRY[name]()
