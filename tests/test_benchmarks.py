"""The benchmark scripts run end to end (tiny sizes: this checks they work, not speed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces" / "aws_ec2_iteration_times.csv"


def _run(script, *args, tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--out", str(tmp_path / "out.csv")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "out.csv").read_text().count("\n") >= 3
    return out.stdout


def test_bench_schemes_prints_a_table(tmp_path):
    stdout = _run(
        "bench_schemes.py", "--workers", "3", "--stragglers", "1", "--samples", "3000",
        "--features", "5", "--max-iter", "8", "--delay", "0.01", "--schemes", "sync", "cyclic",
        "--plot", str(tmp_path / "curves.png"), tmp_path=tmp_path,
    )
    rows = [line for line in stdout.splitlines() if line.startswith("| sync") or line.startswith("| cyclic")]
    assert len(rows) == 2
    assert (tmp_path / "curves.png").stat().st_size > 1000


@pytest.mark.skipif(not TRACES.exists(), reason=f"the EC2 traces are not beside the repo ({TRACES})")
def test_bench_traces_prints_a_table(tmp_path):
    stdout = _run(
        "bench_traces.py", "--traces", "data1", "--csv", str(TRACES), "--samples", "2000",
        "--features", "4", "--max-iter", "5", "--schemes", "sync", "heterogeneous", tmp_path=tmp_path,
    )
    assert sum(line.startswith("| data1 |") for line in stdout.splitlines()) == 2


def test_bench_overhead_prints_ratios(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCH / "bench_overhead.py"), "--workers", "2", "--rounds", "10"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = [line for line in out.stdout.splitlines() if line.startswith("| 2 |")]
    assert row.count("x)") == 2
