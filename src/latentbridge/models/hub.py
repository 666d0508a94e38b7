"""A trained model is a folder: ``config.json`` + ``model.safetensors`` + ``README.md``.

Loading never unpickles: weights come from safetensors, everything else from JSON. The folder
is whole or refused:

- ``config.json`` records the SHA-256 of the weight tensors (``integrity.weights_sha256``: every
  tensor's name, dtype, shape and bytes, in name order), so altered or foreign weights are
  refused;
- the safetensors header records the SHA-256 of ``config.json`` (``config_sha256``), so a hand
  edit of ``config.json`` (a threshold, a transform parameter) is refused too; settings that
  users may change have commands that rewrite both (:func:`update_info`, used by
  ``latentbridge anomaly calibrate``);
- the model card ``README.md`` must be present.

Format version 2 (this one) has per-workflow configs, a typed ``transform``
(:mod:`latentbridge.transforms.spec`) and first-stage latent scales; folders of version 1 are
converted by ``latentbridge model upgrade DIR`` (:mod:`latentbridge.models.upgrade`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from latentbridge.errors import CheckpointError, LatentbridgeError, ModelFolderError, out_of_memory
from latentbridge.models.registry import REGISTRY, get_model_class, model_names
from latentbridge.utils import atomic_path, first_time, json_safe

log = logging.getLogger(__name__)

FORMAT = "latentbridge-model"
FORMAT_VERSION = 2
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
REQUIRED = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)


def saved_values(config: dict) -> dict:
    """A saved model's config with the values that meant "off" or nothing when it was trained, and are refused now,
    as the settings they were: a gradient clip or patience of 0 or less (none), an STFT's ``features.fmin`` (0 Hz: its
    bins start there). A folder saved with them stopped loading ("'train.gradient_clip': Input should be greater than
    0")."""
    train, features = dict(config.get("train") or {}), dict(config.get("features") or {})
    for key in ("gradient_clip", "early_stopping_patience"):
        if isinstance(train.get(key), (int, float)) and train[key] <= 0:
            train[key] = None
    if features.get("kind", "mel") != "mel" and (features.get("fmin") or 0) > 0:
        features["fmin"] = 0.0
    return {**config, **({"train": train} if "train" in config else {}),
            **({"features": features} if "features" in config else {})}


@dataclass
class SavedModel:
    model: torch.nn.Module
    info: dict[str, Any]
    path: Path
    _workflow: Any = field(default=None, repr=False)

    @property
    def config(self) -> dict[str, Any]:
        return self.info["config"]

    @property
    def workflow(self):
        """The validated workflow config the model was trained with."""
        if self._workflow is None:
            from latentbridge.config import validate

            self._workflow = validate(saved_values(self.info["config"]), f"{self.path}/{CONFIG_NAME}")
        return self._workflow

    @property
    def transform(self):
        from latentbridge.transforms.spec import parse_transform

        return parse_transform(self.info["transform"])

    @property
    def threshold(self) -> float | None:
        return (self.info.get("anomaly") or {}).get("threshold")


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode("utf-8") + b"\0" + str(t.dtype).encode() + b"\0" + repr(tuple(t.shape)).encode() + b"\0")
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _config_bytes(info: dict) -> bytes:
    # NaN / inf (a diverged loss, say) as null: bare NaN is not JSON, and strict readers (a browser's
    # JSON.parse, other languages' libraries) refused the whole file
    return (json.dumps(json_safe(info), indent=2, sort_keys=False, allow_nan=False) + "\n").encode("utf-8")


def _write(folder: Path, tensors: dict[str, torch.Tensor], info: dict, card: str | None) -> None:
    """config.json and the weights with the config's SHA-256 in their header, as a pair, and the card: all are written
    in full beside the old ones before any replaces its old one (a full disk between the two writes left a new config
    beside the old weights, a folder refused for good), the card renamed first, config.json last, with Ctrl-C and
    SIGTERM held back until all three are in place (one between the renames left the weights without their config).
    A process killed between them leaves the new config.json under its temporary name: :func:`_finish_cut_save`."""
    from contextlib import nullcontext

    from latentbridge.outputs import interrupts_held

    data = _config_bytes(info)
    with interrupts_held(), atomic_path(folder / CONFIG_NAME) as config, \
            atomic_path(folder / WEIGHTS_NAME) as weights, \
            (nullcontext() if card is None else atomic_path(folder / CARD_NAME)) as card_path:
        if card_path is not None:
            card_path.write_text(card, encoding="utf-8", errors="backslashreplace")  # (a name that is not UTF-8)
        config.write_bytes(data)
        try:
            save_file(tensors, str(weights), metadata={"format": FORMAT, "model_class": info["model_class"],
                                                       "config_sha256": hashlib.sha256(data).hexdigest()})
        except Exception as e:  # noqa: BLE001 - safetensors' own error for a full disk is no OSError
            # safetensors names the OS error by number: a full disk (28), a file-size limit (27, ulimit -f)
            found = re.search(r"os error (\d+)", str(e))
            code = int(found.group(1)) if found and int(found.group(1)) in errno.errorcode else errno.EIO
            raise OSError(code, os.strerror(code), str(folder / WEIGHTS_NAME)) from e
        # safetensors writes 0600: the mode the user's umask gives the folder's other files (it was 0644 whatever it)
        os.chmod(weights, os.stat(config).st_mode & 0o777)


def _finish_cut_save(folder: Path) -> bool:
    """A save (:func:`_write`) whose process was killed between its renames: the new weights in place, the config.json
    that belongs to them still under its temporary name beside them (the SHA-256 their header records). Renamed into
    place and said, where no other process holds the folder; True where done."""
    from latentbridge.outputs import FolderLock

    if not (folder / WEIGHTS_NAME).is_file() or FolderLock(folder).held_by():
        return False
    try:
        recorded = _header(folder).get("config_sha256")
        for p in sorted(folder.glob(f".{CONFIG_NAME}.*.partial")):
            if recorded and p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == recorded:
                os.replace(p, folder / CONFIG_NAME)
                log.warning("%s: its last save was cut short after %s was written (the process killed): the %s "
                            "written with it is put in place (from %s)", folder, WEIGHTS_NAME, CONFIG_NAME, p.name)
                return True
    except (ModelFolderError, OSError):
        pass
    return False


def save_model(folder: str | Path, model: torch.nn.Module, *, config: dict, transform, extra: dict | None = None,
               card: str) -> Path:
    """Write ``config.json``, ``model.safetensors`` and the model card ``README.md`` into ``folder``.

    ``config``: the resolved workflow config (dict); ``transform``: its saved preprocessing
    description (:mod:`latentbridge.transforms.spec` object or dict)."""
    name = getattr(type(model), "name", None)
    if name not in REGISTRY or not isinstance(model, REGISTRY[name]):
        raise ValueError(f"{type(model).__name__} is not a registered model")
    from latentbridge.transforms.spec import parse_transform

    spec = parse_transform(transform if isinstance(transform, dict) else transform.model_dump(mode="json"))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    info = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_class": name,
        "model_kwargs": model.config(),
        "config": config,
        "transform": spec.model_dump(mode="json"),
        **(extra or {}),
        "integrity": {"weights_sha256": tensors_sha256(tensors),
                      "weights": "SHA-256 of every tensor's name, dtype, shape and bytes, in name order; "
                                 "model.safetensors' header holds the SHA-256 of this file"},
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _write(folder, tensors, info, card)
    return folder


def _trained_by(folder: Path) -> str:
    """The command that trains the run in ``folder`` (by the task of the ``config.yaml`` its training wrote first)."""
    import yaml

    try:
        task = (yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}).get("task")
    except (OSError, yaml.YAMLError, AttributeError):
        task = None
    return "anomaly fit" if task == "anomaly" else "train"


def _read_json(folder: Path) -> dict:
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file() and not _finish_cut_save(folder):
        from latentbridge.outputs import FolderLock, kept_aside, resumable_run, stopped_early

        if held := FolderLock(folder).held_by():  # a training under way (its --resume refused, its old folder gone)
            raise ModelFolderError(folder, f"missing {CONFIG_NAME}: another latentbridge process is writing it "
                                           f"({held}); wait for it to finish")
        # a killed --force run's: the model it replaced is kept beside it (it was not said here)
        kept = "".join(f"; the model it replaced is kept in {k}" for k in kept_aside(folder))
        if (folder / WEIGHTS_NAME).is_file():  # a finished run's, deleted or not copied (it said: did not finish)
            raise ModelFolderError(folder, f"missing {CONFIG_NAME} beside {WEIGHTS_NAME}: the model was saved, "
                                           f"and its record deleted or left out of a copy since; put it back from a "
                                           f"copy of the folder (it cannot be rebuilt from the weights){kept}")
        if resumable_run(folder):  # a training that did not finish
            raise ModelFolderError(folder, f"missing {CONFIG_NAME}: its training did not finish (continue it with the "
                                           f"same `latentbridge {_trained_by(folder)}` command and --resume){kept}")
        if stopped_early(folder):  # (it said 'missing config.json' alone)
            raise ModelFolderError(folder, f"missing {CONFIG_NAME}: its training stopped before it saved anything to "
                                           f"resume (run `latentbridge {_trained_by(folder)}` again, with --force)"
                                           + kept)
        raise ModelFolderError(folder, f"missing {CONFIG_NAME}" + ("" if folder.is_dir() else " (no such folder)"))
    try:
        info = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFolderError(folder, f"{CONFIG_NAME} is not valid JSON ({e})") from None
    except OSError as e:
        raise ModelFolderError(folder, f"cannot read {CONFIG_NAME} ({e.strerror or e})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ModelFolderError(folder, f"{CONFIG_NAME} is not a latentbridge model config")
    return info


def read_info(folder: str | Path, *, check: bool = True) -> dict[str, Any]:
    """``config.json`` of a model folder, after the whole-folder checks (``check=False`` skips the
    checksum of config.json against the weights' header: for ``model upgrade`` only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(folder, ("not a folder" if folder.exists() else "does not exist")
                               + " (expected a folder of config.json + model.safetensors + README.md)")
    info = _read_json(folder)
    version = info.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFolderError(folder, f"format version {version} is newer than this latentbridge reads "
                                       f"({FORMAT_VERSION}); upgrade latentbridge")
    if version < FORMAT_VERSION:
        raise ModelFolderError(folder, f"format version {version}: this latentbridge reads version {FORMAT_VERSION}; "
                                       f"convert the folder with `latentbridge model upgrade {folder}`")
    for name in REQUIRED:
        if not (folder / name).is_file():
            raise ModelFolderError(folder, f"missing {name} (a model folder holds {', '.join(REQUIRED)})")
    for key in ("model_class", "model_kwargs", "config", "transform", "integrity"):
        if key not in info:
            raise ModelFolderError(folder, f"{CONFIG_NAME} lacks the key '{key}'")
    if info["model_class"] not in model_names():
        raise ModelFolderError(folder, f"unknown model_class '{info['model_class']}' in {CONFIG_NAME}; "
                                       f"known: {model_names()}")
    if check and _check_config_hash(folder):  # a cut save finished: its config.json read
        return read_info(folder)
    return info


#: how a Git LFS pointer file begins: the weights not fetched (a clone without `git lfs pull`)
LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def _header(folder: Path) -> dict[str, str]:
    try:
        with safe_open(str(folder / WEIGHTS_NAME), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        with contextlib.suppress(OSError), open(folder / WEIGHTS_NAME, "rb") as f:
            if f.read(len(LFS_POINTER)) == LFS_POINTER:  # (it read 'header too large')
                raise ModelFolderError(folder, f"{WEIGHTS_NAME} is a Git LFS pointer ({os.path.getsize(f.name)} "
                                               "bytes), not the weights: fetch them (`git lfs pull`)") from None
        raise ModelFolderError(folder, f"cannot read {WEIGHTS_NAME} ({e})") from None


def _check_config_hash(folder: Path) -> bool:
    """ModelFolderError where config.json is not the one the weights' header records; True where it was not and the
    one that is was put in place (:func:`_finish_cut_save`)."""
    recorded = _header(folder).get("config_sha256")
    data = (folder / CONFIG_NAME).read_bytes()
    if hashlib.sha256(data).hexdigest() == recorded:
        return False
    if _finish_cut_save(folder):
        return True
    if not _same_content(data, recorded):  # (line endings or indentation changed, git's autocrlf on Windows or an
        try:  # editor, leave the content as written: it was refused as edited by hand)
            task = (json.loads(data).get("config") or {}).get("task")
        except (ValueError, AttributeError):
            task = None
        # (it offered `anomaly calibrate` as the way out, which refuses the folder as well)
        hint = ("; a threshold is changed with `latentbridge anomaly calibrate MODEL NORMAL_DIR` or `... --threshold "
                "VALUE` on a folder whose config.json is as written, never by editing it" if task == "anomaly" else "")
        raise ModelFolderError(
            folder, f"{CONFIG_NAME} and {WEIGHTS_NAME} do not belong together (the SHA-256 of {CONFIG_NAME} is not "
                    f"the one {WEIGHTS_NAME} records): {CONFIG_NAME} edited by hand, or one of the two copied from "
                    f"another model folder; both are refused: put back the {CONFIG_NAME} that training wrote, byte "
                    f"for byte (a copy, a backup), or retrain{hint}")
    return False


def _same_content(data: bytes, recorded: str | None) -> bool:
    """Whether config.json's ``data``, written again as :func:`_write` writes it, is the config the weights record."""
    try:
        return hashlib.sha256(_config_bytes(json.loads(data))).hexdigest() == recorded
    except (ValueError, UnicodeDecodeError, TypeError):
        return False


def _load_tensors(folder: Path, info: dict) -> dict[str, torch.Tensor]:
    try:
        state = load_file(str(folder / WEIGHTS_NAME), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFolderError(folder, f"cannot read {WEIGHTS_NAME} ({e})") from None
    expected = (info.get("integrity") or {}).get("weights_sha256")
    if not expected:
        raise ModelFolderError(folder, f"{CONFIG_NAME} records no weights checksum (integrity.weights_sha256)")
    if tensors_sha256(state) != expected:
        raise ModelFolderError(folder, f"{WEIGHTS_NAME} does not match the checksum in {CONFIG_NAME} "
                                       "(the file was altered or belongs to another model)")
    return state


def load_model(folder: str | Path, map_location: str | torch.device = "cpu") -> SavedModel:
    """The model of a model folder (``config.json`` + ``model.safetensors``, checked against each other), in eval
    mode on ``map_location`` (a device or its name: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"auto"``), with
    the folder's record (``info``: config.json) and path. A folder that is not a whole, unaltered model folder raises
    :class:`~latentbridge.errors.ModelFolderError` naming the file; a device that is not one, or not here, a
    ``ValueError``."""
    device = _device(map_location)
    folder = Path(folder)
    info = read_info(folder)
    state = _load_tensors(folder, info)
    try:
        model = get_model_class(info["model_class"])(**info["model_kwargs"])
        model.load_state_dict(state, strict=True)
    except (TypeError, RuntimeError, ValueError) as e:
        raise ModelFolderError(folder, f"weights do not fit the model described in {CONFIG_NAME} ({e})") from None
    if (said := model.saved_note(info)) and first_time(("saved note", str(folder.resolve()))):  # (once: a command
        log.warning("model folder %s: %s", folder, said)  # may load a folder twice, `evaluate` of an anomaly run)
    return SavedModel(model=model.to(device).eval(), info=info, path=folder)


def _device(where: str | torch.device) -> torch.device:
    """``map_location`` as a device of this machine (:func:`~latentbridge.utils.inference_device`), or a ValueError
    naming it (a bad name read as a damaged weights file, a torch.device was refused, and ``"cuda"`` without a GPU was
    torch's message of pinned memory)."""
    from latentbridge.utils import inference_device

    try:
        return inference_device(where, "map_location")
    except LatentbridgeError as e:
        raise ValueError(str(e)) from None


def update_info(folder: str | Path, changes: dict[str, Any], card: str | None = None) -> dict[str, Any]:
    """Rewrite ``config.json`` with ``changes`` (top-level keys) and re-sign it in the weights' header.

    The folder is checked first (a hand-edited folder stays refused); the weights are rewritten
    with the same tensors. Returns the new info."""
    folder = Path(folder)
    info = read_info(folder)
    state = _load_tensors(folder, info)
    info = {**info, **changes, "modified_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    _write(folder, state, info, card)
    return info


def write_folder(folder: str | Path, tensors: dict[str, torch.Tensor], info: dict, card: str) -> None:
    """Write a model folder from tensors and an info dict (the integrity entry is recomputed);
    used by the format converter."""
    info = {**info, "integrity": {**(info.get("integrity") or {}), "weights_sha256": tensors_sha256(tensors)}}
    _write(Path(folder), tensors, info, card)


def read_lightning_checkpoint(path: str | Path) -> dict:
    """A Lightning checkpoint loaded with ``weights_only=True`` (no unpickling of code); a corrupt or
    foreign file is a :class:`CheckpointError` naming it."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's notes on a pickle it refuses came before our one-line error
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(path, "checkpoint file does not exist") from None
    except Exception as e:  # noqa: BLE001 - any failure to read a user's file is "not readable"
        if out_of_memory(e):  # but too little memory, which is no fault of the file
            raise
        if isinstance(e, OSError):  # (a folder, no permission, a disk's read error: no damaged file to delete)
            raise CheckpointError(path, f"cannot be read ({e.strerror or e})") from None
        import zipfile

        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not zipfile.is_zipfile(path):  # random bytes read as an old pickle: "holds objects other than tensors"
            first = "damaged, or no checkpoint: not the zip archive torch writes"
        elif any(w in str(e) for w in ("weights_only", "Weights only load failed", "Unsupported global")):
            first = "holds objects other than tensors and plain values"
        first = first[:200].rsplit(". ", 1)[0].rstrip(".") if len(first) > 200 else first  # a whole sentence
        raise CheckpointError(path, f"not a readable latentbridge training checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(path, "not a latentbridge training checkpoint (no 'state_dict')")
    import zipfile

    try:  # torch's reader checks no CRC: bytes damaged on disk (zeroed by a bad sector) loaded, and trained on
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except zipfile.BadZipFile:
        bad = None  # torch's legacy format, no zip archive: no CRC to check
    except (OSError, EOFError) as e:
        bad = f"? ({e})"
    if bad is not None:
        raise CheckpointError(path, f"not a readable latentbridge training checkpoint (damaged: {bad} in it does not "
                                    "match its checksum)")
    return ckpt
