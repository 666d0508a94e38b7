"""YAML presets with composition, dotted ``key.sub=value`` overrides, readable validation errors.

A preset may build on others: ``base: other.yaml`` (one parent) or ``defaults: [a.yaml, b.yaml]``
(applied in order), paths relative to the preset's own folder; a nested mapping holding ``base``
(a config inside a config, e.g. a first stage's) composes the same way. Mappings merge key by key (the
child wins), lists and scalars are replaced, and a section whose ``name`` changes (another model)
is replaced whole, since each model has its own keys. The resolved config is what a run folder
saves.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import ValidationError

from latentbridge.errors import ConfigError
from latentbridge.utils import PATH_KEY

COMPOSE_KEYS = ("base", "defaults")

#: the presets shipped in the package (a source checkout's ``configs/`` links here)
PRESETS = Path(__file__).resolve().parent.parent / "presets"

log = logging.getLogger(__name__)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def preset_path(path: str | Path) -> Path:
    """``--config`` as given where it is a file, else the preset it names: ``mmvae_bridge``, ``mmvae_bridge.yaml`` or
    ``configs/mmvae_bridge.yaml``, the folder's own ``configs/`` first, then the packaged presets (an installed
    package has no ``configs/`` beside the user's work, where the README's commands name them)."""
    p = Path(path)
    if p.is_file() or len(p.parts) > 2 or (len(p.parts) == 2 and p.parts[0] != "configs"):
        return p  # (a folder of the preset's name, a run's --out, is no config: the preset is read)
    name = f"{p.stem}.yaml" if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml"
    return next((q for q in (Path("configs") / name, PRESETS / name) if q.is_file()), p)


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping: the last one won without a word (a second
    ``train:`` section appended to a preset replaced the preset's, its learning rate back to the default)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except (TypeError, yaml.YAMLError):
                continue  # a key YAML's own constructor refuses, with its own words
            if key != "<<" and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} given twice in one mapping (lines {seen[key]} and "
                    f"{key_node.start_mark.line + 1}): the second would replace the first without a word; merge them",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _load(text: str):
    return yaml.load(text, Loader=_UniqueKeys)  # noqa: S506 - a SafeLoader: plain data only


def _yaml_problem(e: Exception) -> str:
    """A YAML error in one line: the problem and where."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or " ".join(str(e).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.max_epochs=3"`` → (["train", "max_epochs"], 3); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected key.sub=value")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': empty key")
    try:
        parsed = _load(value) if value.strip() != "" else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override '{text}': cannot parse value ({_yaml_problem(e)})") from None
    return key.split("."), parsed


def set_path(raw: dict, parts: list[str], value: Any, what: str) -> None:
    """Set ``raw[parts[0]][parts[1]]... = value`` (creating sections); ``what`` names it in errors."""
    node = raw
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{what}: '{p}' is not a section")
        node = nxt
    node[parts[-1]] = value


def _at(raw: dict, parts: list[str]) -> Any:
    """The value at a dotted path of ``raw``; None where there is none."""
    for p in parts:
        raw = raw.get(p) if isinstance(raw, dict) else None
    return raw


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """Apply dotted overrides to a raw config dict (a copy), as a config file over its ``base:`` is: a mapping merges
    into the section (``-o 'train={max_epochs: 1}'`` replaced the whole section, the preset's learning rate and
    weight decay silently dropped), and another ``name`` (``-o model.name=pca``) starts that section anew (the
    preset's other model's keys were refused as unknown). Such name changes first, so that ``-o model.latent_dim=8
    -o model.name=conv_vae`` keeps the latent size. Unknown keys surface at validation."""
    out = copy.deepcopy(raw)
    parsed = [(text, *parse_override(text)) for text in overrides or []]
    renames = [o for o in parsed if o[1][-1] == "name" and len(o[1]) > 1]
    for text, parts, value in renames + [o for o in parsed if o not in renames]:
        if parts[-1] in COMPOSE_KEYS:  # presets are composed when a file is read, before any -o (an unknown key)
            raise ConfigError(f"override '{text}': '{parts[-1]}' is read in a config file only; write the presets in "
                              "one (its own base: ...), or give the settings they hold with -o one by one")
        if isinstance(value, dict) and isinstance(old := _at(out, parts), dict) \
                and old.get("name") in (None, value.get("name", old.get("name"))):  # (another name: anew)
            value = deep_merge(old, value)
        elif (text, parts, value) in renames and isinstance(section := _at(out, parts[:-1]), dict) \
                and section.get("name") not in (None, value):
            parts, value = parts[:-1], {"name": value}
        set_path(out, parts, value, f"override '{text}'")
    return out


def apply_sets(raw: dict, sets: dict | None, overridden: set[str], path=None) -> dict:
    """``raw`` with the command line's arguments ``sets`` (dotted keys: ``anomaly fit DIR``'s ``data.train_dir``) set
    over it. The same key given otherwise by ``-o`` (``overridden``: the dotted keys of the overrides) is refused; a
    config file's other value is replaced, with a warning (a run's config.yaml given for new data). Both went unread
    without a word (the folder given was fitted)."""
    from latentbridge.utils import existing_path

    for key, value in (sets or {}).items():
        if isinstance(value, list) and len(value) == 1:  # one path of a command's list: the path, as a config gives it
            value = value[0]
        old = _at(raw, key.split("."))
        if (folder := existing_path(old)) is not None and folder == existing_path(value):
            old = value  # one folder, spelled otherwise
        if key in overridden and old != value:
            raise ConfigError(f"-o {key}={old}: the command's own argument gives it ({value}): give it once")
        if old is not None and old != value and key != "task":
            log.warning("%s: %s %s replaced by the command's argument, %s", path or "the config", key, old, value)
        set_path(raw, key.split("."), value, key)
    return raw


def expand_home(raw: dict, args=(), prefix: str = "") -> dict:
    """``raw`` with ``~`` expanded in the values of its path keys (:data:`PATH_KEY`: ``data.train_dir: ~/normal`` was
    refused as '~/normal: does not exist'), lists of them too (``[~/day1, ~/day2]``), in place; in a file and in -o
    values alike (no shell expands ~ after ``data.root=``: the word is no variable assignment), but not in the dotted
    keys ``args``, the command's own arguments, which the shell expanded (a folder named ``~`` is that folder)."""
    for k, v in raw.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            expand_home(v, args, f"{key}.")
        elif isinstance(v, list) and PATH_KEY.search(key) and key not in args:
            raw[k] = [os.path.expanduser(x) if isinstance(x, str) else x for x in v]
        elif isinstance(v, str) and v.startswith("~") and PATH_KEY.search(key) and key not in args:
            raw[k] = os.path.expanduser(v)
    return raw


def deep_merge(base: dict, child: dict, presets: bool = False) -> dict:
    """``child`` over ``base``: mappings merge recursively, anything else is replaced. ``presets`` (a preset over
    its parents): a child's mapping that names its own ``base`` / ``defaults`` (a first stage built from another
    preset) replaces the parent's whole (merged into it, the parent's stage won over the preset named)."""
    out = copy.deepcopy(base)
    for k, v in child.items():
        other_model = isinstance(v, dict) and isinstance(out.get(k), dict) and "name" in v \
            and "name" in out[k] and v["name"] != out[k]["name"]
        own_preset = presets and isinstance(v, dict) and any(c in v for c in COMPOSE_KEYS)
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not other_model and not own_preset:
            out[k] = deep_merge(out[k], v, presets)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError(f"{path}: config file does not exist (a preset by its name: {', '.join(preset_names())})")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    try:
        raw = _load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
    except UnicodeDecodeError:  # (a UTF-16 or Windows-1252 file was 'not a text file')
        raise ConfigError(f"{path}: not UTF-8 text (save it as UTF-8)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    if "format" in raw and "model_class" in raw and "config" in raw:  # (35 unknown keys, listed)
        raise ConfigError(f"{path}: a model folder's config.json, not a config: give its config.yaml "
                          f"(--config {path.with_name('config.yaml')})")
    return raw


def load_raw(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """A preset with its ``base`` / ``defaults`` resolved (the composition keys removed); ``path`` a file, or a packaged
    preset's name (:func:`preset_path`)."""
    path = Path(path) if _chain else preset_path(path)
    resolved = path.resolve()
    if resolved in _chain:
        raise ConfigError(f"{path}: presets include each other in a cycle: "
                          + " → ".join(p.name for p in (*_chain, resolved)))
    raw = _read_yaml(path)
    parents: list[tuple[str, str]] = []  # (the key naming it, the preset)
    if "base" in raw:
        base = raw.pop("base")
        if not isinstance(base, str):
            raise ConfigError(f"{path}: 'base' must be one preset file name, got {base!r}")
        parents.append(("base", base))
    if "defaults" in raw:
        defaults = raw.pop("defaults")
        if not isinstance(defaults, list) or not all(isinstance(d, str) for d in defaults):
            raise ConfigError(f"{path}: 'defaults' must be a list of preset file names, got {defaults!r}")
        parents.extend(("defaults", d) for d in defaults)
    merged: dict = {}
    for key, parent in parents:
        merged = deep_merge(merged, load_raw(_parent_file(path, parent, key), (*_chain, resolved)))
    return _compose_nested(deep_merge(merged, raw, presets=True), path, (*_chain, resolved))


def _parent_file(path: Path, parent: str, key: str) -> Path:
    """The preset ``parent`` that ``path`` names under ``key`` (``base``, ``defaults``), read beside it; a missing one
    named with the config and key that name it (a preset copied alone said '.../mel_ae.yaml: config file does not
    exist', naming neither)."""
    found = path.parent / os.path.expanduser(parent)  # (~/presets/x.yaml was looked for beside the config)
    if not found.exists() and path.is_symlink() and (beside := path.resolve().parent / parent).exists():
        found = beside  # a link to a preset: the presets it builds on beside the preset itself (refused before)
    if not found.exists() and len(Path(parent).parts) == 1 and (PRESETS / parent).is_file():
        found = PRESETS / parent  # a packaged preset that a user's own config builds on (no configs/ beside it)
    if not found.exists():
        if Path(os.path.expanduser(parent)).is_absolute():
            raise ConfigError(f"{path}: {key}: {found} not found")
        raise ConfigError(f"{path}: {key}: {parent} not found (presets it builds on are read from its own folder, "
                          f"{path.parent}: copy {parent} beside it, or write its settings in)")
    return found


def key_source(path: str | Path, key: str) -> Path | None:
    """The preset among ``path`` and the presets it builds on (``base``, ``defaults``) that writes the dotted ``key``:
    ``path`` itself where it does, else the nearest parent that does; None where none does (an override's)."""
    path, seen = Path(path), set()
    todo = [path]
    while todo:
        p = todo.pop(0)
        if p.resolve() in seen:
            continue
        seen.add(p.resolve())
        try:
            raw = _read_yaml(p)
        except ConfigError:
            return None
        if _at(raw, key.split(".")) is not None:
            return p
        for naming, parent in ([("base", raw["base"])] if isinstance(raw.get("base"), str) else []) + [
                ("defaults", d) for d in (raw.get("defaults") or []) if isinstance(d, str)]:
            with contextlib.suppress(ConfigError):  # (a missing one: named when the preset is read)
                todo.append(_parent_file(p, parent, naming))
    return None


def _compose_nested(node: dict, path: Path, chain: tuple[Path, ...]) -> dict:
    """Nested mappings that hold ``base`` / ``defaults`` (a whole config inside a config, such as a
    first stage's) compose like a preset, relative to the preset that holds them."""
    out = {}
    for k, v in node.items():
        if isinstance(v, dict) and any(c in v for c in COMPOSE_KEYS):
            defaults = v.get("defaults") or []  # a string was split into its letters ('k: config file does not exist')
            parents = [v["base"]] if "base" in v else []
            parents += list(defaults) if isinstance(defaults, list) else [defaults]
            if not isinstance(defaults, list) or not all(isinstance(p, str) for p in parents):
                raise ConfigError(f"{path}: '{k}.base' / '{k}.defaults' must name preset files, got {parents!r}")
            merged: dict = {}
            for parent in parents:
                merged = deep_merge(merged, load_raw(_parent_file(path, parent, f"{k}.base / {k}.defaults"), chain))
            v = deep_merge(merged, {kk: vv for kk, vv in v.items() if kk not in COMPOSE_KEYS})
        out[k] = _compose_nested(v, path, chain) if isinstance(v, dict) else v
    return out


def format_validation_error(err: ValidationError, source: str, tags: set[str] = frozenset(), roots: tuple = ()) -> str:
    """One line naming every bad key (dotted, union tags such as the task or model name removed)."""
    return f"{source}: invalid config: " + validation_problems(err, tags, roots)


def _sections(annotation) -> list:
    """The config classes an annotation holds (a section, an optional one, a union of them, a list of them)."""
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [c for a in get_args(annotation) for c in _sections(a)]


def _suggestion(loc: list[str], roots: tuple) -> str:
    """`` (did you mean 'KEY'?)`` for an unknown key at ``loc`` (pydantic's, union tags in it) close to a key the
    classes below ``roots`` take there, else ""."""
    import difflib

    classes, top = list(roots), []
    for part in loc[:-1]:  # a union's tag (the task, a model's name) picks the variant it names, a field its sections
        tagged = [c for c in classes
                  if part in {f.default for f in c.model_fields.values() if isinstance(f.default, str)}]
        below = tagged if len(classes) > 1 and tagged else [
            c for cls in classes if part in cls.model_fields for c in _sections(cls.model_fields[part].annotation)]
        classes = below or classes
        top = top or (tagged if len(roots) > 1 else list(roots))
    close = difflib.get_close_matches(loc[-1], sorted({k for c in classes for k in c.model_fields}), n=1, cutoff=0.75)
    if close and close[0] != loc[-1]:  # (the key itself, another variant's: "did you mean" the key typed)
        return f" (did you mean '{close[0]}'?)"
    elsewhere = sorted({f"{name}.{k}" for c in top for name, f in c.model_fields.items()
                        for s in _sections(f.annotation)
                        for k in difflib.get_close_matches(loc[-1], list(s.model_fields), n=1, cutoff=0.9)
                        if not (name in loc and k == loc[-1])})  # (the key typed, another variant's)
    return f" (did you mean {' / '.join(repr(e) for e in elsewhere[:3])}?)" if len(loc) > 2 and elsewhere else ""


def validation_problems(err: ValidationError, tags: set[str] = frozenset(), roots: tuple = ()) -> str:
    """:func:`format_validation_error` without its source; ``roots``: the config classes validated (an unknown key's
    closest known one is suggested)."""
    lines, by_key = [], {}
    for e in err.errors():
        raw = [str(p) for p in e["loc"]]
        loc = [p for i, p in enumerate(raw) if not (p in tags and (i == 0 or raw[i - 1] in ("model", "augment")))
               and not _UNION_BRANCH.fullmatch(p)]  # (a union's branches: 'train.num_threads.literal['all']')
        key = ".".join(loc) or "(top level)"
        msg = str(e["msg"]).removeprefix("Value error, ")
        section_check = e["type"] == "value_error" and loc and isinstance(e.get("input"), dict)
        if section_check and (named := re.match(r"(\w+): ", msg)):
            lines.append(f"'{key}.{named.group(1)}': {msg[named.end():]}")  # a section's check of one of its keys (it
            continue  # printed pydantic's wording and the whole section)
        if e["type"] == "int_parsing" and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", str(e.get("input"))):
            msg += " (YAML reads 1e3 as text: write the number in full, 1000)"
        if key in by_key and e["type"] not in ("extra_forbidden", "union_tag_invalid", "union_tag_not_found"):
            lines[by_key[key]] = lines[by_key[key]].replace(" (got ", f" or {msg} (got ", 1)  # a union's branches
            continue
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{key}'" + _suggestion(raw, roots))
        elif e["type"] == "union_tag_invalid":
            ctx = e.get("ctx", {})
            disc = str(ctx.get("discriminator", "name")).strip("'\"")
            lines.append(f"'{key}.{disc}': {ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}")
        elif e["type"] == "union_tag_not_found":
            lines.append(f"'{key}': missing the key '{e.get('ctx', {}).get('discriminator', 'name')}'")
        elif not loc:  # a check across keys: its message names them, the input is the whole config
            lines.append(msg)
        else:
            by_key[key] = len(lines)
            lines.append(f"'{key}': {msg} (got {e.get('input')!r})")
    return "; ".join(lines)


#: a union branch pydantic puts in an error's location (``int``, ``str``, ``literal['all']``), no key of a config
_UNION_BRANCH = re.compile(r"(int|float|str|bool|none|[\w-]+\[.*\])")


def dump_yaml_dict(d: dict) -> str:
    return yaml.safe_dump(d, sort_keys=False)


def model_key_hint(err: ValidationError, models) -> str:
    """For an unknown ``model.<key>`` that other ``models`` of the task take (their classes): which, and how to pick
    one (``anomaly fit``'s default detector has no VAE keys: ``-o model.channels=...`` needs a VAE)."""
    hints = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        if e["type"] != "extra_forbidden" or "model" not in loc or loc.index("model") + 2 >= len(loc):
            continue
        key = loc[-1]
        takers = sorted(c.name for c in models if key in c.config_class.model_fields)
        if takers:
            hints.append(f"'model.{key}' is a key of model.name {' / '.join(takers)}: choose one with "
                         f"-o model.name=NAME")
    return f" ({'; '.join(hints)})" if hints else ""


def is_text_field(workflow: type, parts: list[str], value: str) -> bool:
    """Whether the key names a string field (a path, a name; or paths, ``data.train_dir``, unless ``value`` is [..])."""
    import typing

    if len(parts) != 2 or parts[0] not in workflow.model_fields:
        return False
    section = workflow.model_fields[parts[0]].annotation
    fields = getattr(section, "model_fields", None)
    if not fields or parts[1] not in fields:
        return False
    ann = fields[parts[1]].annotation
    args = set(typing.get_args(ann)) - {type(None)} - (set() if value.lstrip().startswith("[") else {list[str]})
    return ann is str or (typing.get_origin(ann) in (Union, getattr(__import__("types"), "UnionType", Union))
                          and args == {str})
