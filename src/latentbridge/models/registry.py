"""Every saved model class, by name: the one lookup ``hub`` uses (no import strings)."""

from __future__ import annotations

from torch import nn

from latentbridge.models.vae import MODELS as SINGLE_MODALITY


def _multimodal() -> dict[str, type[nn.Module]]:
    from latentbridge.models.multimodal import MultimodalVAE, Spec2Mask

    return {"mmvae": MultimodalVAE, "spec2mask": Spec2Mask}


def model_classes() -> dict[str, type[nn.Module]]:
    return {**SINGLE_MODALITY, **_multimodal()}
