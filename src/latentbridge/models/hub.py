"""A trained model is a folder: ``config.json`` + ``model.safetensors`` + ``README.md``.

Loading never unpickles: weights come from safetensors, everything else from JSON. The config
records the SHA-256 of the weights file, so a missing or altered file is reported, not loaded.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from latentbridge.errors import ModelFolderError
from latentbridge.models.registry import get_model_class, model_names
from latentbridge.utils import atomic_path, atomic_write_json, atomic_write_text, sha256_file

FORMAT = "latentbridge-model"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"


@dataclass
class SavedModel:
    model: torch.nn.Module
    info: dict[str, Any]
    path: Path

    @property
    def config(self) -> dict[str, Any]:
        return self.info["config"]

    @property
    def threshold(self) -> float | None:
        return (self.info.get("anomaly") or {}).get("threshold")


def save_model(folder: str | Path, model: torch.nn.Module, name: str, *, config: dict, transform: dict,
               extra: dict | None = None, card: str | None = None) -> Path:
    """Write weights, config and model card into ``folder`` (each file atomically)."""
    if name not in model_names() or not isinstance(model, get_model_class(name)):
        raise ValueError(f"model is not a {name!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "model_class": name})
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_class": name,
        "model_kwargs": model.config(),
        "config": config,
        "transform": transform,
        **(extra or {}),
        "files": {WEIGHTS_NAME: sha256_file(folder / WEIGHTS_NAME)},
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(folder / CONFIG_NAME, info)
    atomic_write_text(folder / CARD_NAME, card if card is not None else f"# {name}\n")
    return folder


def read_info(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(folder, "not a folder (expected config.json + model.safetensors + README.md)")
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.exists():
        raise ModelFolderError(folder, f"missing {CONFIG_NAME}")
    try:
        info = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(folder, f"{CONFIG_NAME} is not valid JSON ({e})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ModelFolderError(folder, f"{CONFIG_NAME} is not a latentbridge model config")
    if info.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFolderError(folder, f"format version {info['format_version']} is newer than this "
                                       f"latentbridge supports ({FORMAT_VERSION})")
    for key in ("model_class", "model_kwargs", "config", "transform", "files"):
        if key not in info:
            raise ModelFolderError(folder, f"{CONFIG_NAME} lacks the key '{key}'")
    if info["model_class"] not in model_names():
        raise ModelFolderError(folder, f"unknown model_class '{info['model_class']}' in {CONFIG_NAME}; "
                                       f"known: {model_names()}")
    return info


def load_model(folder: str | Path, map_location: str = "cpu") -> SavedModel:
    folder = Path(folder)
    info = read_info(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.exists():
        raise ModelFolderError(folder, f"missing {WEIGHTS_NAME}")
    expected = info["files"].get(WEIGHTS_NAME)
    if expected and sha256_file(weights) != expected:
        raise ModelFolderError(folder, f"{WEIGHTS_NAME} does not match the checksum in {CONFIG_NAME} "
                                       "(the file was altered or belongs to another model)")
    try:
        state = load_file(str(weights), device=map_location)
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFolderError(folder, f"cannot read {WEIGHTS_NAME} ({e})") from None
    try:
        model = get_model_class(info["model_class"])(**info["model_kwargs"])
        model.load_state_dict(state, strict=True)
    except (TypeError, RuntimeError, ValueError) as e:
        raise ModelFolderError(folder, f"weights do not fit the model described in {CONFIG_NAME} ({e})") from None
    model.eval()
    return SavedModel(model=model, info=info, path=folder)


def state_dict_from_lightning_checkpoint(path: str | Path, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """Model weights from a Lightning checkpoint, loaded with ``weights_only=True`` (no unpickling of code)."""
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    return {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
