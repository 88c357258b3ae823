"""The notebooks run top to bottom, and are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
#: Notebooks that must be there (every notebook in the folder is checked and run).
EXPECTED = [
    "asap_vs_coded_vs_sync.ipynb",
    "pagerank_on_a_large_graph.ipynb",
    "profile_and_choose_a_scheme.ipynb",
    "quickstart.ipynb",
]
#: Seconds one cell may run; a notebook takes well under 30 s in total.
CELL_TIMEOUT = 120


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_notebooks_are_there():
    names = [p.name for p in _notebooks()]
    assert [name for name in EXPECTED if name not in names] == []


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_committed_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"cell {index} of {path.name} has outputs: strip them"
        assert cell.execution_count is None, f"cell {index} of {path.name} has an execution count"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.slow
@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    # The "python3" kernel of ipykernel: jupyter_client starts it with this
    # interpreter (sys.executable), i.e. the current virtual environment.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # files it writes land here
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code)
    errors = [o for cell in code for o in cell.outputs if o.output_type == "error"]
    assert errors == []
    printed = "".join(
        o.get("text", "") for cell in code for o in cell.outputs if o.output_type == "stream"
    )
    assert "Traceback" not in printed
