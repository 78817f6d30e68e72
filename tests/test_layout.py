"""The package's layers: every import (module level or inside a function) points down or sideways, never up.

Layers, bottom to top: the base (``config``, ``a1``, ``quiet_imports``), the parts (``motion``, ``envs``,
``agents``), ``analysis``, ``training``, ``deploy``, ``evaluation``, and the two command-line names
(``amp_jax.evaluate``, ``amp_jax.export_policy``).
"""

from __future__ import annotations

import ast
import itertools
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "amp_jax"

LAYERS: dict[str, int] = {
    "amp_jax": 0, "amp_jax.config": 0, "amp_jax.a1": 0, "amp_jax.quiet_imports": 0,
    "amp_jax.motion": 1, "amp_jax.envs": 1, "amp_jax.agents": 1,
    "amp_jax.analysis": 2,
    "amp_jax.training": 3,
    "amp_jax.deploy": 4,
    "amp_jax.evaluation": 5,
    "amp_jax.evaluate": 6, "amp_jax.export_policy": 6,
}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layered unit a module belongs to: its subpackage, or the root module itself."""
    parts = module.split(".")
    candidate = ".".join(parts[:2])
    return candidate if candidate in LAYERS else "amp_jax"


def project_imports(path: pathlib.Path) -> set[str]:
    """Every ``amp_jax`` module ``path`` imports, at any depth of the file (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("amp_jax")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("amp_jax"):
            for alias in node.names:  # ``from amp_jax.training import trainer`` imports amp_jax.training.trainer
                sub = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or (
                    PACKAGE.parent / sub.replace(".", "/")).is_dir()
                found.add(sub if is_module else node.module)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: project_imports(path) for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    assert {unit(m) for m in MODULES} <= set(LAYERS)
    assert {unit(m) for m in MODULES} == set(LAYERS), "a layer without modules: update LAYERS"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_points_up(module):
    own = LAYERS[unit(module)]
    upward = sorted(dep for dep in GRAPH[module] if LAYERS[unit(dep)] > own)
    assert not upward, f"{module} (layer {own}) imports {upward} from a higher layer"


def test_lower_layers_import_nothing_from_the_run_layers():
    """The issue's check in its own words: envs, motion and agents know nothing of training, evaluation,
    deployment (or the analysis that serves them)."""
    upper = ("amp_jax.analysis", "amp_jax.training", "amp_jax.evaluation", "amp_jax.deploy")
    for module, deps in GRAPH.items():
        if unit(module) in ("amp_jax.envs", "amp_jax.motion", "amp_jax.agents"):
            assert not [d for d in deps if d.startswith(upper)], module


def test_no_cycle_between_units():
    edges = {(unit(m), unit(d)) for m, deps in GRAPH.items() for d in deps if unit(m) != unit(d)}
    units = sorted(LAYERS)
    reach = {u: {v for (a, v) in edges if a == u} for u in units}
    for _ in units:  # transitive closure
        for u, v in itertools.product(units, units):
            if v in reach[u]:
                reach[u] |= reach[v]
    assert not [u for u in units if u in reach[u]]


def test_the_checker_sees_a_lazy_upward_import(tmp_path):
    """The scan finds imports inside functions too (they are the easiest to add by accident)."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from amp_jax.training import trainer\n    return trainer\n")
    assert project_imports(probe) == {"amp_jax.training.trainer"}


def test_the_suite_s_scheduling_order_names_test_files_that_exist():
    """tests/conftest.py hands the longest files to the workers first; a renamed file would silently lose its
    place (and the tiny run its head start), so each name must still be a test file."""
    from conftest import LONGEST_FIRST

    root = PACKAGE.parent
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
    assert [p for p in LONGEST_FIRST if not (root / p).is_file() or not pathlib.Path(p).name.startswith("test_")] == []
    # The second worker starts with a file that trains the tiny run, so its iteration is compiled early.
    assert "tiny_run_dir" in (root / LONGEST_FIRST[1]).read_text()
