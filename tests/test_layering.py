"""The layering of the package: which subpackage may import which.

The table below is the one the subpackages' docstrings state in words. The
test reads every module's import statements (also those inside functions;
only ``if TYPE_CHECKING:`` blocks, which never run, are left out) and fails
on any import the table does not allow, naming the file and the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dask_quorum.pipeline
import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipeline"
ESTIMATORS = REPO / "estimators"

#: subpackage of dask_quorum.pipeline -> the other subpackages it may import
MAY_IMPORT: dict[str, set[str]] = {
    "coding": set(),
    "stragglers": set(),
    "planning": {"coding"},
    "recorder": set(),
    "cluster": set(),
    "inject": {"cluster", "recorder", "stragglers"},
    "dashboard": {"recorder", "stragglers"},
    "engine": {"coding", "stragglers", "planning", "recorder", "cluster", "dashboard"},
    "profiling": {"cluster", "recorder", "stragglers", "planning", "engine"},
    "pagerank": {"engine", "coding", "cluster"},
    "asap": {"engine", "cluster", "pagerank", "inject", "recorder", "dashboard", "data"},
    "data": {"engine", "cluster"},
}
#: pure NumPy/SciPy subpackages: no Dask at all (not even dask_quorum.config, which loads dask)
PURE = {"coding", "stragglers", "planning"}
DASK = ("dask", "distributed")


def _module_name(path: Path) -> str:
    if path.is_relative_to(PIPELINE):
        parts = ("dask_quorum", "pipeline", *path.relative_to(PIPELINE).with_suffix("").parts)
    else:
        parts = ("dask_quorum", "estimators", *path.relative_to(ESTIMATORS).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str, list[str]]]:
    """``(line, absolute module, names)`` of every import that runs, relative ones resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((child.lineno, alias.name, []))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.append((child.lineno, base, [a.name for a in child.names]))
            visit(child)

    visit(ast.parse(source))
    return found


def _subpackage(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] == ["dask_quorum", "pipeline"] and len(parts) > 2:
        return parts[2]
    return None


def forbidden_imports(path: Path, source: str | None = None) -> list[str]:
    """What the layering forbids in one file of ``pipeline/`` or ``estimators/``."""
    source = path.read_text() if source is None else source
    module = _module_name(path)
    problems = []
    for line, target, names in imports(source, module, path.name == "__init__.py"):
        where = f"{path.relative_to(REPO)}:{line}: imports {target}"
        top = target.split(".")[0]
        if module.startswith("dask_quorum.estimators"):
            if target.startswith("dask_quorum.pipeline.") or (
                target == "dask_quorum.pipeline" and not set(names) <= set(dask_quorum.pipeline.__all__)
            ):
                problems.append(f"{where}: estimators use only the entry points of dask_quorum.pipeline")
            elif target.startswith("dask_quorum") and not target.startswith(("dask_quorum.estimators", "dask_quorum.pipeline")) and target != "dask_quorum" and target != "dask_quorum.config":
                problems.append(f"{where}: estimators import the engine, the config and their own modules only")
            elif top == "dask" or (top == "distributed" and set(names) - {"Client"}):
                problems.append(f"{where}: estimators leave Dask to the engine (only distributed.Client, for the parameter type)")
            continue
        mine = _subpackage(module)
        if mine is None:  # pipeline/__init__.py: the table of entry points
            continue
        theirs = _subpackage(target)
        if mine in PURE and (top in DASK or target in ("dask_quorum", "dask_quorum.config")):
            problems.append(f"{where}: {mine}/ is pure NumPy/SciPy and imports no Dask")
        elif target.startswith("dask_quorum") and not target.startswith("dask_quorum.pipeline"):
            if target not in ("dask_quorum", "dask_quorum.config") or names and set(names) - {"config"}:
                problems.append(f"{where}: the engine imports only dask_quorum.config from outside pipeline/")
        elif theirs is not None and theirs != mine and theirs not in MAY_IMPORT[mine]:
            problems.append(f"{where}: {mine}/ may import {sorted(MAY_IMPORT[mine]) or 'no other subpackage'}")
        elif target == "dask_quorum.pipeline" and mine is not None:
            problems.append(f"{where}: import from the subpackage that holds the name, not the entry-point table")
    return problems


def _sources() -> list[Path]:
    return sorted([*PIPELINE.rglob("*.py"), *ESTIMATORS.rglob("*.py")])


def test_every_subpackage_is_in_the_table():
    found = {p.name for p in PIPELINE.iterdir() if (p / "__init__.py").exists()}
    assert found == set(MAY_IMPORT)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_follow_the_layering(path):
    assert forbidden_imports(path) == []


@pytest.mark.parametrize(
    "where, source, reason",
    [
        ("coding/schemes.py", "import numpy as np\ndef f():\n    import distributed\n", "pure NumPy"),
        ("stragglers/x.py", "from dask_quorum import config\n", "pure NumPy"),
        ("planning/x.py", "from ..engine import CodedSession\n", "may import ['coding']"),
        ("dashboard/x.py", "from ..engine.rounds import RoundRecord\n", "may import"),
        ("engine/x.py", "from dask_quorum.estimators import LogisticRegression\n", "only dask_quorum.config"),
        ("engine/x.py", "from .. import fit_asap\n", "entry-point table"),
    ],
)
def test_a_forbidden_import_in_the_engine_is_reported(where, source, reason):
    (problem,) = forbidden_imports(PIPELINE / where, source)
    assert reason in problem and where in problem


@pytest.mark.parametrize(
    "source, reason",
    [
        ("from dask_quorum.pipeline.engine import fit_by_rounds\n", "entry points"),
        ("from dask_quorum.pipeline import RoundRunner_that_is_not_there\n", "entry points"),
        ("import dask.array as da\n", "leave Dask to the engine"),
        ("from distributed import wait\n", "leave Dask to the engine"),
        ("from dask_quorum.bench import run\n", "their own modules only"),
    ],
)
def test_a_forbidden_import_in_an_estimator_is_reported(source, reason):
    (problem,) = forbidden_imports(ESTIMATORS / "_x.py", source)
    assert reason in problem


def test_imports_under_type_checking_do_not_count():
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import distributed\n"
    assert forbidden_imports(PIPELINE / "coding" / "x.py", source) == []


def test_every_subpackage_is_installed():
    """A plain ``pip install .`` (the README's demo command) installs only the listed packages."""
    with open(REPO / "pyproject.toml", "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    wanted = {"dask_quorum.pipeline", *(f"dask_quorum.pipeline.{name}" for name in MAY_IMPORT)}
    assert wanted <= listed


#: "No module over about 500 lines" (one job per module): a little slack for docstrings.
MAX_LINES = 550


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_stay_small(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(REPO)} has {n} lines: split it by job"
