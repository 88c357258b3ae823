"""The command line: the demo end to end, and clear errors for bad arguments."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dask_quorum.cli import main
from dask_quorum.demo import DemoRow, format_table, run_demo


def test_demo_prints_a_table_with_a_speed_up(capsys):
    assert main(["demo", "--workers", "3", "--max-iter", "5", "--delay", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "dashboard: http" in out
    lines = [l for l in out.splitlines() if l.startswith(("sync", "cyclic"))]
    assert [l.split()[0] for l in lines] == ["sync", "cyclic"]
    assert all(l.rstrip().endswith("x") for l in lines)


def test_run_demo_rows_are_consistent(client4):
    rows = run_demo(client4, schemes=("sync", "frc"), max_iter=3, delay=0.01)
    assert [r.scheme for r in rows] == ["sync", "frc"]
    for r in rows:
        assert r.rounds >= r.iterations >= 1
        assert r.seconds > 0 and 0 <= r.accuracy <= 1 and r.final_loss > 0
    # the same straggler model and the same exact answer for both schemes
    assert rows[0].final_loss == pytest.approx(rows[1].final_loss, rel=1e-9)


def test_run_demo_needs_a_fast_worker(client4):
    with pytest.raises(ValueError, match="no fast worker"):
        run_demo(client4, n_stragglers=4)


def test_format_table_reports_the_ratio_to_the_first_row():
    rows = [DemoRow("sync", 10, 9, 4.0, 0.1, 0.9), DemoRow("cyclic", 10, 9, 2.0, 0.1, 0.9)]
    assert format_table(rows).splitlines()[-1].endswith("2.00x")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--workers", "0"], "positive integer"),
        (["demo", "--schemes", "magic"], "invalid choice"),
        (["nope"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_unreachable_scheduler_is_a_one_line_error(capsys):
    code = main(["demo", "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "1"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dask-quorum demo: error:")


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "dask_quorum", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "demo" in proc.stdout
