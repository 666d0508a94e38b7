"""The package's shape: data flows one way (no import from a lower layer to a higher one, as in
shared/DESIGN.md), and no module grows past 600 lines."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "latentbridge"

#: module prefix → layer (longest prefix wins); a module may import its own layer or lower ones
LAYERS = {
    "latentbridge": 0, "latentbridge.errors": 0, "latentbridge.utils": 0, "latentbridge.outputs": 0,
    "latentbridge.written": 0, "latentbridge.sampling_args": 0, "latentbridge.arguments": 0,
    "latentbridge.io": 1, "latentbridge.config": 1,  # config: the sections and YAML loading
    "latentbridge.transforms": 2, "latentbridge.nn": 2, "latentbridge.losses": 2, "latentbridge.metrics": 2,
    "latentbridge.data": 3,
    "latentbridge.models": 4,
    "latentbridge.training": 5, "latentbridge.models.hub": 5, "latentbridge.models.upgrade": 5,
    "latentbridge.config.workflows": 5,  # knows every registered model
    "latentbridge.config.workflow_base": 5,
    "latentbridge.tasks": 6, "latentbridge.export": 6,
    "latentbridge.report": 7,
    "latentbridge.commands": 8, "latentbridge.cli": 8, "latentbridge.__main__": 8, "latentbridge.edge": 8,
    "latentbridge.serve": 8,
    "latentbridge.edge_sampler": 8, "latentbridge.interrupts": 8,
}


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("latentbridge"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("latentbridge"))
    return out


def _known(name: str) -> str:
    """``latentbridge.x.y`` for a module or a name imported from one: the module part."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if (SRC.parent / Path(*parts)).with_suffix(".py").exists() or (SRC.parent / Path(*parts)).is_dir():
            return cand
        parts.pop()
    return name


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_goes_up_a_layer(path):
    me = module_name(path)
    bad = []
    for name in imports(path):
        target = _known(name)
        if path.name == "__init__.py" and target.startswith(me + "."):
            continue  # a package re-exporting its own submodules
        if layer(target) > layer(me):
            bad.append(f"{target} (layer {layer(target)})")
    assert not bad, f"{me} (layer {layer(me)}) imports higher layers: {sorted(set(bad))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_over_600_lines(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= 600, f"{path.relative_to(SRC)} has {n} lines"


def test_the_layer_map_covers_every_package():
    tops = {module_name(p).split(".")[1] for p in MODULES if module_name(p) != "latentbridge"}
    assert {t for t in tops if f"latentbridge.{t}" not in LAYERS} == set()
