"""mkdocs hook: a source tree in which mkdocstrings finds every dask-quorum sub-package.

``pyproject.toml`` maps ``dask_quorum.pipeline`` to ``pipeline/`` and
``dask_quorum.estimators`` to ``estimators/`` (``[tool.setuptools.package-dir]``),
but griffe, which reads the sources for mkdocstrings, looks for a sub-package
inside its parent's folder. Before the pages are rendered this hook lays out
``build/docs-src/dask_quorum/`` as the installed package looks (symbolic
links to the real files, so ``mkdocs serve`` sees edits) and points the
Python handler at it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import tomllib
from mkdocs.plugins import event_priority

log = logging.getLogger("mkdocs.hooks.source_tree")

TREE = Path("build") / "docs-src"


def _package_dirs(root: Path) -> dict[str, Path]:
    with open(root / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: root / folder for name, folder in mapping.items()}


def build_tree(root: Path) -> Path:
    """Lay out the packages under ``root / TREE``; return that folder."""
    tree = root / TREE
    if tree.exists():
        shutil.rmtree(tree)
    for name, folder in sorted(_package_dirs(root).items()):
        target = tree.joinpath(*name.split("."))
        if "." in name:  # a mapped sub-package: one link to its folder
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(folder.resolve(), target_is_directory=True)
            continue
        target.mkdir(parents=True)
        for entry in folder.iterdir():  # a top-level package: link its entries
            if entry.name != "__pycache__":
                (target / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return tree


@event_priority(100)  # before mkdocstrings creates its handlers in its own on_config
def on_config(config):
    root = Path(config.config_file_path).resolve().parent
    tree = build_tree(root)
    python = config.plugins["mkdocstrings"].config.handlers.setdefault("python", {})
    python["paths"] = [str(tree)]
    log.debug("mkdocstrings reads the sources from %s", tree)
    return config
