"""The documentation's code runs, and prints what the documentation says it prints.

A python block preceded by ``<!-- snippet: NAME ... -->`` in a docs page is
executed as written (in a fresh folder, so the files it writes land there);
the ``text`` block after it is its expected output, compared line by line.
The clients and clusters the snippet starts are closed afterwards.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"

_SNIPPET = re.compile(
    r"<!-- snippet: (?P<name>[\w-]+).*?-->\s*```python\n(?P<code>.*?)```\s*(?:prints\s*)?```text\n(?P<out>.*?)```",
    re.DOTALL,
)


def snippets(page: str) -> dict[str, tuple[str, str]]:
    """``{name: (code, expected output)}`` of the marked snippets of a docs page."""
    text = (DOCS / page).read_text()
    return {m["name"]: (m["code"], m["out"]) for m in _SNIPPET.finditer(text)}


def run_snippet(code: str) -> str:
    """Execute ``code`` as a script would; return what it printed. Closes its clients and clusters."""
    from distributed import Client, LocalCluster

    namespace: dict = {"__name__": "__snippet__"}
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<docs snippet>", "exec"), namespace)  # noqa: S102 -- running the docs is the point
    finally:
        for value in list(namespace.values()):
            if isinstance(value, Client):
                value.close()
        for value in list(namespace.values()):
            if isinstance(value, LocalCluster):
                value.close()
    return out.getvalue()


def test_the_snippet_pattern_finds_code_and_output():
    page = "<!-- snippet: demo -->\n\n```python\nprint(1)\n```\n\nprints\n\n```text\n1\n```\n"
    (m,) = _SNIPPET.finditer(page)
    assert (m["name"], m["code"], m["out"]) == ("demo", "print(1)\n", "1\n")


# dask 2026.8's read_parquet calls a pandas API that pandas 3.1 deprecates: not ours to fix
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.*is deprecated")
def test_getting_started_fits_from_parquet_as_documented(tmp_path, monkeypatch):
    code, expected = snippets("getting-started.md")["parquet-fit"]
    monkeypatch.chdir(tmp_path)
    printed = run_snippet(code)
    assert (tmp_path / "quickstart-data").is_dir() and any((tmp_path / "quickstart-data").glob("*.parquet"))
    assert printed.strip().splitlines() == expected.strip().splitlines()


@pytest.mark.parametrize("page", ["getting-started.md"])
def test_every_marked_snippet_has_an_output_block(page):
    text = (DOCS / page).read_text()
    assert text.count("<!-- snippet:") == len(snippets(page)) >= 1
