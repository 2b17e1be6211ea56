"""The house's layering, checked on the source: imports point down (core ← ros ← tools; training → core only),
and modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"core": set(), "ros": {"core"}, "tools": {"core", "ros"}}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "ai4mars_perception" and len(parts) > 1 and parts[1] in LAYERS else None


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_package_layers_import_downwards(layer):
    bad = []
    for path in sorted((REPO / "ai4mars_perception" / layer).rglob("*.py")):
        used = {_layer_of(m) for m in _imports(path)} - {None, layer}
        bad += [f"{path.name} imports {u}" for u in sorted(used - LAYERS[layer])]
    assert not bad, bad


def test_training_depends_on_the_core_only():
    bad = []
    for path in sorted((REPO / "training" / "ai4mars_training").rglob("*.py")):
        for m in _imports(path):
            if m.startswith("ai4mars_perception") and _layer_of(m) != "core":
                bad.append(f"{path.name} imports {m}")
    assert not bad, bad


def test_modules_stay_small():
    sources = [*(REPO / "ai4mars_perception").rglob("*.py"), *(REPO / "training" / "ai4mars_training").rglob("*.py")]
    big = {p.relative_to(REPO).as_posix(): n for p in sources if (n := len(p.read_text().splitlines())) > 300}
    assert not big, big
