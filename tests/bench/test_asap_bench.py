"""The ASAP benchmark scripts run end to end (tiny sizes: they work, not how fast)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script, *args, out):
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, list(csv.DictReader(out.open()))


def test_bench_asap_compares_contenders(tmp_path):
    stdout, rows = _run(
        "bench_asap.py", "--workers", "3", "--slow", "1", "--samples", "2000", "--features", "4",
        "--delay", "0.002", "--max-iter", "30", "--asap-rounds", "300",
        "--contenders", "sync", "asap", "asap-s2-f32", out=tmp_path / "asap.csv",
    )
    assert [r["contender"] for r in rows] == ["sync", "asap", "asap-s2-f32"]
    table = [line for line in stdout.splitlines() if line.startswith(("| sync", "| asap"))]
    assert len(table) == 3
    by = {r["contender"]: r for r in rows}
    # the same problem: every contender got to the target (tiny and easy)
    assert all(float(r["best_loss_over_opt"]) < 1.001 for r in rows)
    # float32 messages halve the busiest node's bytes
    ratio = float(by["asap"]["max_node_bytes_per_round"]) / float(by["asap-s2-f32"]["max_node_bytes_per_round"])
    assert 1.9 < ratio < 2.1


def test_bench_asap_transport_measures_every_mechanism(tmp_path):
    stdout, rows = _run("bench_asap_transport.py", "--messages", "10", "--sizes", "8", out=tmp_path / "t.csv")
    assert {r["mechanism"] for r in rows} == {"rpc-handler", "actor", "task", "queue"}
    assert all(float(r["median_ms"]) > 0 for r in rows)
    assert "| rpc-handler | 64 |" in stdout
