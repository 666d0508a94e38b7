"""The frozen first stages of a multimodal latent diffusion run (:mod:`latentbridge.tasks.mld`): where they lie in a
folder (one multimodal model, model folders named after the modalities, the bridge's supervised network, or an MLD
run's ``first_stage``), loaded and frozen, and their latents: std-scaled posterior modes, decoded back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentbridge.errors import ModelFolderError
from latentbridge.transforms.postfilter import saved_postfilter
from latentbridge.utils import batched

STAGE_DIR = "first_stage"

@dataclass
class Stages:
    """The frozen first stages of an MLD model: one first-stage view per modality."""

    views: dict  # modality → FirstStage
    saved: dict  # stage key → SavedModel
    keys: dict  # modality → stage key
    postfilters: dict = field(default_factory=dict)  # modality → GlobalVariancePostFilter (audio stages)

    @property
    def widened(self) -> dict[str, str]:
        """Modality → key of the stage whose code widens its latent (the bridge's supervised stage)."""
        return {"spec": SUPERVISED} if SUPERVISED in self.saved and "spec" in self.views else {}

    @property
    def latent_dims(self) -> list[int]:
        return [int(np.prod(v.latent_shape)) for v in self.views.values()]

    def scale(self, m: str) -> float:
        return float(self.views[m].latent_scale)

    def encode(self, m: str, x, batch_size: int = 256) -> torch.Tensor:
        """Std-scaled posterior modes (N, d) of data ``x`` of modality ``m``."""
        stage = self.views[m]
        return batched(lambda b: stage.encode(b).mode().flatten(1), x, batch_size=batch_size) / self.scale(m)

    def decode(self, m: str, z: torch.Tensor, batch_size: int = 256, postfilter: bool = True) -> torch.Tensor:
        """Data of modality ``m`` from std-scaled latents (N, d); log-mels through the stage's
        global-variance post-filter where it has one (``postfilter=False``: the decoder's raw output)."""
        stage = self.views[m]
        shape = tuple(stage.latent_shape)
        pf = self.postfilters.get(m) if postfilter else None

        def one(b):
            x = stage.decode((b * self.scale(m)).reshape(len(b), *shape))
            return pf.apply(x) if pf is not None else x

        return batched(one, z, batch_size=batch_size)

    def workflow(self, key: str | None = None):
        return self.saved[key or next(iter(self.saved))].workflow


#: the bridge's supervised first stage (a spec2mask network with a mask stage): its bottleneck holds the
#: masks, and its code of a vibration window widens the vibration latent, so the diffusion conditions on what
#: the network knows about the crack
SUPERVISED = "supervised"


def _is_model_folder(p: Path) -> bool:
    return (p / "config.json").is_file() and (p / "model.safetensors").is_file()


def stage_places(folder: str | Path, modalities) -> dict[str, Path]:
    """Stage key → model folder of the first stages in ``folder``: one multimodal model folder, a
    folder of model folders named after the modalities and / or ``multimodal`` (a modality's own
    stage wins; the multimodal one serves the others), or an MLD run (its ``first_stage``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(folder, "no such first-stage folder")
    if _is_model_folder(folder) and (folder / STAGE_DIR).is_dir():
        folder = folder / STAGE_DIR
    if _is_model_folder(folder):
        from latentbridge.models.hub import read_info

        # (it was a warning that a supervised stage was missing, then a refusal)
        if read_info(folder).get("model_class") == "spec2mask":
            raise ModelFolderError(folder, "a supervised spectrogram -> mask network alone: the bridge's first stages "
                                   "are a multimodal VAE with, optionally, such a network beside it (a folder holding "
                                   "multimodal/ and supervised/)")
        return {"multimodal": folder}
    for sub in (folder / k for k in (*modalities, SUPERVISED, "multimodal")):
        if sub.is_dir() and (absent := [f for f in ("config.json", "model.safetensors") if not (sub / f).is_file()]):
            raise ModelFolderError(sub, f"an incomplete model folder: missing {', '.join(absent)}")
    places = {m: folder / m for m in (*modalities, SUPERVISED) if _is_model_folder(folder / m)}
    if SUPERVISED in places and "mask" in places:
        raise ModelFolderError(folder, "holds both mask/ and supervised/ (the supervised network is the mask stage)")
    missing = [m for m in modalities if m not in places and not (m == "mask" and SUPERVISED in places)]
    if missing and _is_model_folder(folder / "multimodal"):
        return {"multimodal": folder / "multimodal", **places}
    if missing:
        raise ModelFolderError(folder, "not a first stage (no model folder here, nor "
                               f"{' / '.join(missing)}/ or multimodal/ inside)")
    return places


def load_stages(folder: str | Path, modalities) -> Stages:
    """The first stages in ``folder`` (:func:`stage_places`), frozen."""
    from latentbridge.models.hub import load_model

    saved = {k: load_model(p) for k, p in stage_places(folder, modalities).items()}
    views, keys = {}, {}
    for m in modalities:
        key = m if m in saved else SUPERVISED if m == "mask" and SUPERVISED in saved else "multimodal"
        model = saved[key].model.eval()
        want = "" if key == m else m
        if want not in getattr(model, "first_stage_modalities", ()):
            raise ModelFolderError(saved[key].path, f"a {saved[key].info['model_class']} model offers no first stage "
                                   f"for {m!r}")
        for p in model.parameters():
            p.requires_grad_(False)
        views[m], keys[m] = model.first_stage(want), key
    if SUPERVISED in saved and "spec" in views:
        from latentbridge.models.base import WidenedStage

        views["spec"] = WidenedStage(views["spec"], saved[SUPERVISED].model.first_stage("condition"))
    postfilters = {m: pf for m, k in keys.items() if (pf := saved_postfilter(saved[k])) is not None}
    return Stages(views, saved, keys, postfilters)
