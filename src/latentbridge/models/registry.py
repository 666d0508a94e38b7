"""Every model class, by name: the one lookup the package uses (no import strings).

Adding a model is: write the class (with ``name``, ``config_class``, ``tasks`` and, for
autoencoder-like models, the first-stage protocol), add it to :data:`REGISTRY`, add a preset in
``configs/``. The workflow config schemas, the model-folder loader and the contract test all read
this dict; nothing else learns the name.
"""

from __future__ import annotations

from torch import nn

from latentbridge.models.audiovisual import AudioVisualVAE
from latentbridge.models.autoencoders import ConvImageAE, DenseImageAE, MelAE, MelVAE
from latentbridge.models.classifiers import FSDDClassifier, MNISTClassifier
from latentbridge.models.denoisers import DDPMUNet, DiffusersUNet, SeedUNet
from latentbridge.models.detectors import GaussianStatsDetector, KNNStatsDetector, PCADetector
from latentbridge.models.mld import LatentDenoiser
from latentbridge.models.multimodal import MultimodalVAE, Spec2Mask
from latentbridge.models.spatial import SpatialCVAE
from latentbridge.models.vae import ConvAE, ConvVAE, DenseAE

REGISTRY: dict[str, type[nn.Module]] = {cls.name: cls for cls in (
    ConvVAE, ConvAE, DenseAE,
    MelAE, MelVAE, DenseImageAE, ConvImageAE,
    MultimodalVAE, Spec2Mask, AudioVisualVAE,
    MNISTClassifier, FSDDClassifier,
    PCADetector, GaussianStatsDetector, KNNStatsDetector,
    DDPMUNet, SeedUNet, DiffusersUNet,
    LatentDenoiser,
    SpatialCVAE,
)}


def model_names() -> list[str]:
    return sorted(REGISTRY)


def get_model_class(name: str) -> type[nn.Module]:
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {model_names()}")
    return REGISTRY[name]


def models_for_task(task: str) -> list[type[nn.Module]]:
    """The registered classes a workflow trains (their ``tasks`` name it), in registry order."""
    return [cls for cls in REGISTRY.values() if task in getattr(cls, "tasks", ())]


def build_model(model_cfg, **data):
    """The registered model for a model config section (``name`` picks the class) and the
    data-derived constructor arguments ``data`` (input shapes, rates)."""
    return get_model_class(model_cfg.name).from_config(model_cfg, **data)
