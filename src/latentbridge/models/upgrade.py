"""``latentbridge model upgrade DIR``: convert a model folder of format version 1 to version 2.

Version 1 kept one flat config for every workflow, a transform in one of three ad-hoc formats,
the SHA-256 of the weights file, and no first-stage latent scales. The converter checks the old
checksum, rewrites the config into its workflow's schema (keys the workflow does not have are
dropped and listed), builds the typed transform, adds the new buffers at their neutral values
(latent scale 1: not fitted, and said so in ``config.json``), and writes the folder whole
(converted in a sibling copy that replaces the original in one rename).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from latentbridge.errors import ConfigError, DataError, ModelFolderError
from latentbridge.utils import file_checksum


IGNORED_V1_SECTIONS = {"avdigits": ("audio", "features")}


def convert_config(old: dict, model_class: str, model_kwargs: dict) -> tuple[dict, list[str]]:
    """A version-1 flat config → a valid version-2 workflow config dict, and the dropped keys."""
    from latentbridge.config.workflows import WORKFLOWS, config_to_dict, validate
    from latentbridge.models.registry import get_model_class

    task = old.get("task", "anomaly")
    dropped: list[str] = []
    if task == "classifier":  # version 1 classifiers kept only their training summary
        cls = get_model_class(model_class)
        raw = {"task": "classifier", "model": {"name": model_class, **{
            k: v for k, v in model_kwargs.items() if k in cls.config_class.model_fields}},
            "data": {"root": old.get("data_root")}}
        train = old.get("train") or {}
        raw["train"] = {k: v for k, v in (("max_epochs", train.get("epochs")), ("seed", train.get("seed")),
                                           ("batch_size", train.get("batch_size")), ("lr", train.get("lr")))
                        if v is not None}
        return config_to_dict(validate(raw, "converted classifier config")), dropped
    workflow = WORKFLOWS[task]
    raw: dict = {"task": task}
    #: sections a version-1 workflow read nothing from (avdigits used its constant 8 kHz digit transform
    #: whatever ``audio`` / ``features`` said): carrying them over would change the model's transform
    ignored = IGNORED_V1_SECTIONS.get(task, ())
    for section, value in old.items():
        if section == "task":
            continue
        if section in ignored:
            dropped.append(section)
            continue
        if section not in workflow.model_fields:
            if value not in (None, "", {}) and section != "description":
                dropped.append(section)
            continue
        if section == "model":
            cls = get_model_class(model_class)
            keep = set(cls.config_class.model_fields)
            raw["model"] = {k: v for k, v in value.items() if k in keep}
            raw["model"]["name"] = model_class
            dropped += [f"model.{k}" for k in value if k not in keep]
        elif isinstance(value, dict):
            ann = workflow.model_fields[section].annotation
            keep = set(getattr(ann, "model_fields", {}) or value)
            raw[section] = {k: v for k, v in value.items() if k in keep}
            dropped += [f"{section}.{k}" for k in value if k not in keep]
        else:
            raw[section] = value
    return config_to_dict(validate(raw, "converted config")), dropped


def upgrade_folder(folder: str | Path) -> dict:
    """Convert ``folder`` (format version 1) in place; returns ``{"from", "to", "dropped_keys"}``. The folder's
    lock is held throughout (:class:`latentbridge.outputs.FolderLock`): a second upgrade, or a command writing the
    folder, is refused while one runs. A read-only parent takes no lock: the checks refuse it, unchanged."""
    from latentbridge.outputs import FolderLock

    folder = Path(folder)
    if folder.is_symlink() and folder.is_dir():  # the folder the link names (the link was replaced by an upgraded
        folder = folder.resolve()  # copy, the folder left at version 1, a stray link beside it)
    if not os.access(folder.parent, os.W_OK | os.X_OK):
        return _upgrade(folder)
    with FolderLock(folder, advice="wait for it to finish"):
        return _upgrade(folder)


def _upgrade(folder: Path) -> dict:
    from safetensors.torch import load_file

    from latentbridge.config.workflows import WORKFLOWS, transform_spec, validate
    from latentbridge.models import hub
    from latentbridge.models.registry import get_model_class, model_names

    if not folder.is_dir():
        raise ModelFolderError(folder, "not a folder" if folder.exists() else "does not exist")
    info = hub._read_json(folder)
    version = info.get("format_version", 0)
    if version == hub.FORMAT_VERSION:
        raise ModelFolderError(folder, f"already format version {version}; nothing to upgrade")
    if version != 1:
        raise ModelFolderError(folder, f"format version {version}: only version 1 folders can be upgraded")
    weights = folder / hub.WEIGHTS_NAME
    if not weights.is_file():
        raise ModelFolderError(folder, f"missing {hub.WEIGHTS_NAME}")
    expected = (info.get("files") or {}).get(hub.WEIGHTS_NAME)
    if not expected or file_checksum(weights, "sha256") != expected:
        raise ModelFolderError(folder, f"{hub.WEIGHTS_NAME} does not match the checksum in {hub.CONFIG_NAME}; "
                                       "refusing to upgrade an altered folder")
    model_class, kwargs, old_config = info.get("model_class"), info.get("model_kwargs"), info.get("config")
    if model_class not in model_names() or not all(isinstance(v, dict) for v in (
            kwargs, old_config, info.get("data") or {}, info.get("transform") or {})):
        raise ModelFolderError(folder, f"{hub.CONFIG_NAME} is damaged: 'model_class' must name a known model, "
                                       "'model_kwargs', 'config', 'data' and 'transform' must be mappings "
                                       "(nothing was changed)")
    if old_config.get("task", "anomaly") not in WORKFLOWS and old_config.get("task") != "classifier":
        raise ModelFolderError(folder, f"{hub.CONFIG_NAME} is damaged: unknown task {old_config.get('task')!r} "
                                       "(nothing was changed)")
    for where in (folder, folder.parent):  # the folder is replaced whole: its parent is written too
        if not os.access(where, os.W_OK | os.X_OK):
            raise ModelFolderError(folder, f"{where} is read-only; make it writable to upgrade (nothing was changed)")
    try:
        config, dropped = convert_config(old_config, model_class, kwargs)
    except ConfigError as e:
        raise ModelFolderError(folder, f"{hub.CONFIG_NAME} is damaged: {e} (nothing was changed)") from None
    cfg = validate(config, f"{folder}/{hub.CONFIG_NAME} (converted)")
    data = info.get("data") or {}
    old_t = info.get("transform") or {}
    spec = transform_spec(cfg, sample_rate=data.get("sample_rate", old_t.get("sample_rate")),
                          n_channels=data.get("n_channels", kwargs.get("n_channels")))
    cls = get_model_class(model_class)
    try:
        model = cls(**kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ModelFolderError(folder, f"{hub.CONFIG_NAME} is damaged: its model_kwargs do not build a "
                                       f"{model_class} ({e}); nothing was changed") from None
    new_state = model.state_dict()
    old_state = load_file(str(weights))
    extra = sorted(set(old_state) - set(new_state))
    if extra:
        raise ModelFolderError(folder, f"weights hold tensors this latentbridge does not know: {extra[:5]}")
    added = sorted(set(new_state) - set(old_state))
    tensors = {k: (old_state[k] if k in old_state else new_state[k]).detach().cpu().contiguous() for k in new_state}
    model.load_state_dict({k: v for k, v in tensors.items()}, strict=True)
    new_info = {k: v for k, v in info.items() if k not in ("files", "format_version", "transform", "config")}
    new_info.update({"format_version": hub.FORMAT_VERSION, "config": config,
                     "transform": spec.model_dump(mode="json"),
                     "upgraded_from": {"format_version": 1, "dropped_config_keys": dropped,
                                       "added_tensors": added,
                                       "note": "latent scales (first-stage protocol) were not fitted: 1.0"}})
    order = ["format", "format_version", "model_class", "model_kwargs", "config", "transform"]
    new_info = {**{k: new_info[k] for k in order}, **{k: v for k, v in new_info.items() if k not in order}}
    if (folder / hub.CARD_NAME).is_file():  # a user's note typed in another encoding (20\xb0C) was a traceback
        from latentbridge.io.text import decode_text

        try:
            card = decode_text((folder / hub.CARD_NAME).read_bytes(), folder / hub.CARD_NAME, "a model card",
                               legacy="all")
        except DataError as e:
            raise ModelFolderError(folder, f"{e} (nothing was changed)") from None
    else:
        card = f"# {model_class}\n\nUpgraded from a format-1 folder without a model card.\n"
    tmp = folder.parent / f".{folder.name}.upgrade-{os.getpid()}"
    old = folder.parent / f".{folder.name}.v1-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        try:  # links as links: a user's link to a recording since moved failed the copy (Python's list of errors)
            shutil.copytree(folder, tmp, symlinks=True)
        except (shutil.Error, OSError) as e:
            problems = e.args[0] if isinstance(e, shutil.Error) and isinstance(e.args[0], list) else [(folder, "", e)]
            raise ModelFolderError(folder, "could not copy it to upgrade: " + "; ".join(
                f"{src}: {why}" for src, _, why in problems[:3]) + " (nothing was changed)") from None
        hub.write_folder(tmp, tensors, new_info, card)
        if (tmp / "config.yaml").is_file():
            from latentbridge.config.workflows import dump_yaml

            (tmp / "config.yaml").write_text(dump_yaml(cfg), encoding="utf-8")
        hub.load_model(tmp)  # the converted folder must load before it replaces the original
        os.replace(folder, old)
        try:
            os.replace(tmp, folder)
        except OSError:
            os.replace(old, folder)  # the original comes back as it was
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {"from": 1, "to": hub.FORMAT_VERSION, "dropped_keys": dropped, "added_tensors": added,
            "config": json.loads(json.dumps(config))}
