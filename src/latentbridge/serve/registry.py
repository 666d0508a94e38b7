"""The model folders a server serves: each loaded once at start (through the hub, with its integrity
checks), read-only, under its folder name.

A served model knows which endpoints it has (by its workflow's task; an audio autoencoder calibrated by
``anomaly calibrate`` is served as the anomaly detector it became) and describes itself for
``GET /api/models``: task, model class, the model card and its fields, the threshold, and the input
each endpoint takes. Nothing here computes: scoring and prediction are the task functions'.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentbridge.errors import LatentbridgeError
from latentbridge.io import AUDIO_EXTENSIONS
from latentbridge.io.images import IMAGE_EXTENSIONS
from latentbridge.models.hub import CARD_NAME, SavedModel, load_model

log = logging.getLogger(__name__)

#: workflow task → the endpoints its models have (beside GET /api/models)
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "anomaly": ("score", "stream"),
    "multimodal": ("predict",),
    "avdigits": ("predict", "sample"),
    "diffusion": ("sample",),
    "spatial": ("enhance",),
}

#: array stacks an enhance upload may be (imzML needs its .ibd beside it: convert it with the CLI)
SPATIAL_EXTENSIONS = (".npy", ".npz", ".tif", ".tiff")


@dataclass
class ServedModel:
    name: str
    saved: SavedModel
    detector: Any = None  # latentbridge.tasks.anomaly.Detector for anomaly models
    extractor: Any = None  # its FeatureExtractor (no feature cache: uploads are read once)
    card: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def task(self) -> str:
        """The workflow's task; ``anomaly`` for every detector (an audio autoencoder's too, once calibrated)."""
        return "anomaly" if self.detector is not None else self.saved.workflow.task

    @property
    def endpoints(self) -> tuple[str, ...]:
        return () if self.unserved else ENDPOINTS[self.task]

    @property
    def unserved(self) -> str | None:
        """Why no upload can reach this model's endpoints (None: they can): a spatial model normalised by whole
        spectra needs imzML files, which an upload cannot be (the .ibd beside it); every request was refused."""
        spec = self.saved.transform
        if self.task == "spatial" and getattr(spec, "normalized_over", None) == "spectrum":
            return (f"divides each pixel by its whole spectrum's {spec.normalization} (trained on imzML), which only "
                    "an imzML file gives, and uploads are arrays: enhance its sections with `latentbridge enhance`")
        return None

    def input_format(self) -> dict:
        """What each endpoint of this model takes, in words a client can act on."""
        spec = self.saved.transform
        audio = ", ".join(AUDIO_EXTENSIONS)
        if self.task == "anomaly":
            w = spec.windowing
            n = int(self.saved.model.input_shape[0])
            read = ("any channel count (mixed to mono" if w.channel is None else
                    f"{n} channels (each read" if w.channel == "all" else
                    f"at least {w.channel + 1} channels (channel {w.channel} read")
            channels = ('"channels": ' + str(n)) if w.channel == "all" else \
                ('"channels": ' + f"{w.channel + 1} or more") if w.channel else 'optional "channels"'
            return {
                "score": f"multipart field 'file': an audio file ({audio}) or a vibration recording (.csv, .mat), "
                         f"any rate, {read} and resampled to {spec.sample_rate} Hz)",
                "stream": 'first message {"sample_rate": SR, "format": "f32"|"s16"} (' + channels + '), '
                          'then binary little-endian PCM frames; {"end": true} ends a finite recording',
                "sample_rate": spec.sample_rate, "window_s": w.window_s, "hop_s": w.hop_s, "pad": w.pad,
                "channel": w.channel, "n_channels": n,
            }
        if self.task == "multimodal":
            v = self.saved.workflow.vibration
            return {
                "predict": "multipart field 'file': a vibration CSV (one column per sensor, optional time "
                           "column; see the README's bridge quickstart), a MATLAB .mat recording or an audio file "
                           "(each channel a sensor)",
                "n_channels": spec.n_channels, "sample_rate": spec.sample_rate, "window_s": spec.window_s,
                "hop_s": spec.hop_s, "resample_to": v.resample_to, "csv_sample_rate": v.sample_rate,
                "mask_shape": [spec.mask.height, spec.mask.width],
            }
        if self.task == "diffusion":
            cfg, info = self.saved.workflow, self.saved.info
            return {
                "sample": 'JSON {"n": 1..16, "seed": integer, "label": class name or index (optional), '
                          '"guidance": 0..20, "steps": 1..1000, "scheduler": "ddpm"|"ddim"|"dpm", '
                          '"condition": [numbers] (models with continuous conditions)}; unset: the run\'s',
                "image_shape": list(cfg.image_shape), "class_names": info.get("class_names") or [],
                "condition_names": info.get("condition_names") or [],
                "defaults": {"scheduler": cfg.sampling.scheduler, "steps": cfg.sampling.steps,
                             "guidance": cfg.sampling.guidance},
            }
        if self.task == "spatial":
            return {
                "enhance": f"none: the model {self.unserved}" if self.unserved else (
                    f"multipart field 'file': a section as an array ({', '.join(SPATIAL_EXTENSIONS)}; H x W x "
                    f"{spec.channels} channels), optional field 'mask' (.npy or .png of the valid pixels), field "
                    "'task': denoise | inpaint | upscale, optional 'seed', 'samples'"),
                "channels": spec.channels, "mz": spec.mz, "normalization": spec.normalization,
                "normalized_over": spec.normalized_over,
                "patch_size": spec.patch_size, "tasks": ["denoise", "inpaint", "upscale"],
            }
        h, w = self.saved.model.kwargs["image_shape"][1:]
        return {
            "predict": f"multipart field 'file': a spoken digit ({audio}) → an image, or an image of a written "
                       f"digit ({', '.join(IMAGE_EXTENSIONS)}; a photo, scan or drawing of any size) → a spoken "
                       "digit; optional field 'route': posterior (default) or bridge",
            "sample": 'JSON {"n": 1..16, "seed": integer}: synthetic image + audio pairs from the prior',
            "sample_rate": spec.sample_rate, "clip_s": spec.windowing.window_s, "image_shape": [h, w],
            "bridge_fitted": bool(self.saved.model.bridge_fitted),
        }

    def describe(self) -> dict:
        info = self.saved.info
        out = {
            "name": self.name, "task": self.task, "model_class": info["model_class"],
            "endpoints": list(self.endpoints), "unserved": self.unserved, "input": self.input_format(),
            "threshold": None, "card": self.card,
            "card_fields": {
                "description": self.saved.workflow.description or None,
                "created_utc": info.get("created_utc"),
                "modified_utc": info.get("modified_utc"),
                "data": info.get("data"),
                "training": info.get("training"),
                "transform": info.get("transform"),
            },
        }
        if self.detector is not None:
            out["threshold"] = self.detector.threshold
            out["score"] = self.detector.method
            out["aggregate"] = self.detector.anomaly_config.aggregate
            out["card_fields"]["anomaly"] = info.get("anomaly")
        elif self.task == "multimodal":
            out["threshold"] = float((info.get("mask_threshold") or {}).get("threshold", 0.5))
            out["card_fields"]["mask_threshold"] = info.get("mask_threshold")
        return out


def load_served_model(folder: str | Path) -> ServedModel:
    """Load one model folder (refused as everywhere else when a file is missing or altered)."""
    from latentbridge.tasks.anomaly import DETECTOR_TASKS, Detector

    folder = Path(folder)
    saved = load_model(folder)
    task = saved.workflow.task
    if task not in ENDPOINTS and task not in DETECTOR_TASKS:
        raise LatentbridgeError(f"model folder {folder}: a {task!r} model; the server serves {', '.join(ENDPOINTS)} "
                                "models, and audio autoencoders made detectors by `latentbridge anomaly calibrate`")
    name = Path(os.path.abspath(folder)).name or folder.resolve().name  # the name typed (a link's own, `current`)
    served = ServedModel(name, saved, card=(folder / CARD_NAME).read_text(encoding="utf-8"))
    if task in DETECTOR_TASKS:  # as `anomaly score` loads it: a model without a threshold is refused, naming calibrate
        served.detector = Detector(saved)
        served.extractor = served.detector.extractor(use_cache=False)
    return served


def load_models(folders) -> dict[str, ServedModel]:
    """Every folder, by its folder name; two folders with one name are refused."""
    models: dict[str, ServedModel] = {}
    where: dict[str, Path] = {}
    if not folders:
        raise LatentbridgeError("serve: give at least one model folder")
    for folder in folders:
        m = load_served_model(folder)
        if m.name in models:
            raise LatentbridgeError(f"two model folders are named {m.name!r} ({where[m.name]} and {folder}); "
                                    "each model is served under its folder name")
        models[m.name] = m
        where[m.name] = Path(folder)
        if m.unserved:
            log.warning("model %s is listed but serves nothing: it %s", m.name, m.unserved)
    return models
