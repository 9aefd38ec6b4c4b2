"""The package's layering (docs/ARCHITECTURE.md): imports flow one way and never in a circle."""

import os
import shutil
import subprocess
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = {"core": 0, "ops": 1, "models": 2, "data": 3, "tasks": 3, "train": 4, "apps": 5, "book": 5, "cli": 6}


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("divekit", include_external_packages=False, exclude_type_checking_imports=True)


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. the import cycles."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle(graph):
    assert _cycles(graph) == []


def test_every_module_sits_in_a_layer(graph):
    outside = [m for m in graph.modules if m not in ("divekit", "divekit.__main__") and m.split(".")[1] not in LAYERS]
    assert outside == [], f"modules outside the layers of docs/ARCHITECTURE.md: {outside}"


def test_imports_only_point_down(graph):
    """Also imports inside functions: a lazy import may defer loading, never climb a layer."""
    wrong = []
    for module in graph.modules:
        if module.count(".") < 1 or module == "divekit.__main__":
            continue
        here = module.split(".")[1]
        for imported in graph.find_modules_directly_imported_by(module):
            there = imported.split(".")[1] if imported.count(".") else None
            if there is not None and there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module} -> {imported}")
    assert wrong == []


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed (pip install -e .[test])")
def test_import_linter_contracts_hold():
    run = subprocess.run([shutil.which("lint-imports")], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed (pip install -e .[test])")
def test_a_back_import_breaks_the_contract(tmp_path):
    """The check can fail: a copy of the package with one upward import (models -> train) is refused."""
    shutil.copytree(REPO / "divekit", tmp_path / "divekit", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    lenet = tmp_path / "divekit" / "models" / "lenet.py"
    lenet.write_text(lenet.read_text() + "\nfrom ..train import config  # noqa: E402,F401\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    run = subprocess.run([shutil.which("lint-imports")], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "divekit.models.lenet -> divekit.train" in run.stdout
