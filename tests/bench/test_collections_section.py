"""The dask-input section of the suite (dask_quorum.bench.collections_section).

One quick run of the section on 0.01 GB with four in-process workers checks
its CSV rows, markdown, plot and summary; the suite's settings and the
registry are checked on their own. No speed is asserted.
"""

from __future__ import annotations

import math
import sys

import pytest

from dask_quorum.bench.collections_section import (
    DASK_INPUT_SCHEMES,
    STANDALONE,
    DaskInputSection,
    section_config,
)
from dask_quorum.bench.machine import describe_machine
from dask_quorum.bench.report import write_csv
from dask_quorum.bench.sections import SECTIONS
from dask_quorum.bench.suite import SuiteConfig

CONTENDERS = [*DASK_INPUT_SCHEMES, "dask-ml-lbfgs"]


def _quick(**kwargs):
    return SuiteConfig(quick=True, workloads=(), sections=("dask-input",), dask_input_gigabytes=0.01, max_iter=6,
                       **kwargs)


@pytest.fixture(scope="module")
def section():
    logged = []
    section = SECTIONS["dask-input"](_quick(), logged.append)
    assert any(line.startswith("dask-input: 0.01 GB: ") for line in logged), logged
    return section


def test_the_quick_section_reports_every_contender(section, tmp_path):
    assert isinstance(section, DaskInputSection) and section.name == "dask-input"
    rows = section.csv_rows()
    assert [r["name"] for r in rows] == CONTENDERS
    assert section.result["data_bytes"] == 10**7 and section.result["config"]["n_workers"] == 4
    assert section.result["config"]["processes"] is False  # quick mode runs threads
    for r in rows:
        assert 1 <= r["iterations"] <= 7 and r["fit_s"] > 0
        assert math.isfinite(r["final_loss"]) and r["final_loss"] >= section.result["optimum"]
    assert any(math.isfinite(r["time_to_target_s"]) for r in rows), "whoever set the optimum reached it"
    write_csv(rows, tmp_path / "dask-input.csv")
    assert (tmp_path / "dask-input.csv").read_text().count("\n") == 1 + len(CONTENDERS)


def test_the_markdown_has_one_heading_the_table_the_targets_and_the_command(section):
    lines = section.markdown(describe_machine(), "img/bench/")
    md = "\n".join(lines)
    assert lines[0] == f"### {section.title}"
    assert not any(line.startswith("## ") for line in lines), "the report's own heading is replaced"
    for name in CONTENDERS:
        assert f"| {name} |" in md
    for name in DASK_INPUT_SCHEMES:
        assert f"driver RSS growth during the {name} fit: " in md
    assert "best scheme vs dask-ml lbfgs: " in md and "best scheme vs sync: " in md
    assert f"`{STANDALONE}`" in md and "--gigabytes 4 --workers 8" in STANDALONE
    assert "![dask-input](img/bench/dask-input.png)" in md
    assert "- note: in-process workers share the driver's memory" in md  # the section's note, in the report


def test_the_plot_and_the_summary(section, tmp_path):
    (png,) = section.write_plots(describe_machine(), tmp_path / "plots")
    assert png == tmp_path / "plots" / "dask-input.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    summary = section.summary()
    assert "\n" not in summary and summary.startswith("0.01 GB: ")
    assert "best scheme vs dask-ml lbfgs: " in summary and "best scheme vs sync: " in summary
    assert summary.index("vs dask-ml") < summary.index("vs sync")


def test_the_suite_settings_and_a_missing_dask_ml(monkeypatch):
    full, notes = section_config(SuiteConfig())
    assert (full.gigabytes, full.n_workers, full.processes, full.max_iter, full.sync_max_iter) == (1.0, 8, True, 40, 20)
    assert full.schemes == DASK_INPUT_SCHEMES and full.dask_ml and notes == []
    # worker processes even when the scenarios run threads: the driver's memory is measured apart
    threads, notes = section_config(SuiteConfig(processes=False, seed=7, dask_input_gigabytes=0.5, max_iter=30))
    assert (threads.gigabytes, threads.processes, threads.seed, threads.max_iter) == (0.5, True, 7, 30)
    assert notes == []
    quick, notes = section_config(SuiteConfig(quick=True))
    assert (quick.gigabytes, quick.n_workers, quick.processes, quick.max_iter, quick.sync_max_iter) == (
        0.02, 4, False, 40, None)
    assert len(notes) == 1 and "in-process workers share the driver's memory" in notes[0]
    monkeypatch.setitem(sys.modules, "dask_ml", None)  # makes `import dask_ml...` fail here
    without, notes = section_config(_quick())
    assert without.dask_ml is False
    assert len(notes) == 2 and "dask-ml is not importable" in notes[0]


@pytest.mark.parametrize("gigabytes", [0.0, -1.0, math.nan])
def test_the_suite_rejects_a_non_positive_size(gigabytes):
    with pytest.raises(ValueError, match="dask_input_gigabytes must be positive"):
        SuiteConfig(dask_input_gigabytes=gigabytes)


def test_the_section_is_registered_after_scaling_and_on_by_default():
    assert list(SECTIONS)[:2] == ["scaling", "dask-input"]
    assert tuple(SuiteConfig().sections) == ("scaling", "dask-input")
    assert tuple(SuiteConfig(quick=True).sections) == ("scaling", "dask-input")
    assert tuple(SuiteConfig(sections=()).sections) == ()
