"""Honest verdicts, the redundancy-2 scenario, ASAP's counted work, trace synthesis and the scaling report.

The verdict rules are pure (hand-made outcomes); ASAP's compute seconds and
bytes come from a real fit on a real in-process cluster; synthesis and the
scaling report are pure NumPy and assert properties that can fail (shapes,
nesting, monotone round times), never wall clock.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from dask_quorum.pipeline.coding import EXACT_TOL
from dask_quorum.pipeline.stragglers import StragglerModel
from dask_quorum.pipeline.stragglers.synthesis import synthesize_model, synthesize_trace

from dask_quorum.bench import contenders as C
from dask_quorum.bench.catalogue import R2_PARTITION_S
from dask_quorum.bench.scaling import ScalingSection, scaling_rows
from dask_quorum.bench.scenarios import R2_SCENARIO, Scenario
from dask_quorum.bench.suite import (
    ScenarioResult,
    SuiteConfig,
    SuiteResult,
    build_scenarios,
    run_scenario,
)
from dask_quorum.bench.targets import evaluate_targets
from dask_quorum.bench.workloads import load_workload

# -- verdicts: never reached -> missed; reached -> judged by the ratio ------------


def _outcome(name, t, fit_s=12.34, note=""):
    return C.Outcome(name, C.contender_family(name), t, 5, 10, 1.0, 1.0, fit_s, np.zeros(1), np.zeros(1),
                     note=note)


def _targets(*scenarios):
    return {t.name: t for t in evaluate_targets(SuiteResult(SuiteConfig(quick=True), list(scenarios)))}


def _result(scenario, *outcomes):
    return ScenarioResult("w", scenario, list(outcomes), 0.01, 0.1, 10, 1.0)


def test_a_contender_that_never_reaches_the_target_misses_and_says_so():
    none = Scenario("none", "none", 8)
    r = _result(none, _outcome("sync", 3.0), _outcome("auto", math.inf, fit_s=20.5),
                _outcome("dask-ml-gd", math.inf, fit_s=7.25, note="target not reached in 100 iterations"))
    t = _targets(r)
    gd = t["w, no stragglers: sync vs dask-ml gradient_descent"]
    # a never-reached time is no ratio of 0 (which would pass "<= 1"): missed, with who and how long
    assert gd.met is False
    assert "dask-ml gradient_descent never reached 1.001 x optimum in 7.2 s" in gd.detail
    assert "target not reached in 100 iterations" in gd.detail and "0.00" not in gd.detail
    auto = t["w, no stragglers: auto vs sync"]
    assert auto.met is False and "auto never reached 1.001 x optimum in 20.5 s" in auto.detail
    # a baseline that never reached it does not make the comparison pass either
    r = _result(Scenario("p", "persistent", 16, factor=10), _outcome("sync", math.inf, fit_s=99.0),
                _outcome("cyclic", 2.0))
    vs_sync = _targets(r)["w, p: best scheme vs sync"]
    assert vs_sync.met is False and "sync never reached 1.001 x optimum in 99.0 s" in vs_sync.detail


def test_reached_contenders_are_judged_by_their_ratio():
    none = Scenario("none", "none", 8)
    fast = _targets(_result(none, _outcome("sync", 2.0), _outcome("auto", 2.08), _outcome("dask-ml-gd", 4.0)))
    slow = _targets(_result(none, _outcome("sync", 2.0), _outcome("auto", 2.2), _outcome("dask-ml-gd", 1.0)))
    assert fast["w, no stragglers: auto vs sync"].met is True  # 1.04 <= 1.05
    assert "= 1.04 (target <= 1.05)" in fast["w, no stragglers: auto vs sync"].detail
    assert slow["w, no stragglers: auto vs sync"].met is False  # 1.10 > 1.05
    assert fast["w, no stragglers: sync vs dask-ml gradient_descent"].met is True  # 0.5 <= 1
    assert slow["w, no stragglers: sync vs dask-ml gradient_descent"].met is False  # 2 > 1
    # auto and heterogeneous against the best exact scheme (cyclic here), within 10 %
    t = _targets(_result(none, _outcome("sync", 2.0), _outcome("cyclic", 1.0), _outcome("auto", 1.09),
                         _outcome("heterogeneous", 1.2), _outcome("uncoded", 0.1)))
    assert t["w, none: auto vs best exact scheme"].met is True
    assert "cyclic" in t["w, none: auto vs best exact scheme"].detail  # uncoded is no exact scheme
    assert t["w, none: heterogeneous vs best exact scheme"].met is False  # 1.2 > 1.1


def test_a_contender_left_out_is_not_measured():
    t = _targets(_result(Scenario("none", "none", 8), _outcome("sync", 2.0)))
    assert t["w, no stragglers: auto vs sync"].met is None
    assert "auto not run" in t["w, no stragglers: auto vs sync"].detail


def test_redundancy_two_scenario_targets_heterogeneous_against_the_uniform_codes():
    r2 = next(s for s in build_scenarios(SuiteConfig(), ["persistent"])[0] if s.name == R2_SCENARIO)
    t = _targets(_result(r2, _outcome("sync", 3.9), _outcome("cyclic", 3.5), _outcome("heterogeneous", 1.0),
                         _outcome("auto", 1.05)))
    assert t[f"w, {R2_SCENARIO}: heterogeneous vs cyclic"].met is True  # 3.5 >= 3
    assert t[f"w, {R2_SCENARIO}: heterogeneous vs sync"].met is False  # 3.9 < 4
    assert t[f"w, {R2_SCENARIO}: auto vs best exact scheme"].met is True  # 1.05 <= 1.1 x heterogeneous
    assert f"w, {R2_SCENARIO}: heterogeneous vs best exact scheme" not in t  # its own targets instead


# -- the redundancy-2 scenario ---------------------------------------------------


def test_redundancy_two_scenario_is_in_the_persistent_group_and_emulates_its_work():
    picked, _ = build_scenarios(SuiteConfig(), ["persistent"])
    r2 = next(s for s in picked if s.name == R2_SCENARIO)
    assert (r2.n_workers, r2.n_slow, r2.redundancy, r2.factor) == (16, 4, 2, 10)
    assert (r2.p_slow_slow, r2.p_slow_fast) == (0.9, 0.3)  # the persistent scenarios' chain
    assert r2.skip == ("asap",) and "replicas" in r2.skip_reason
    assert all(s.redundancy == s.n_slow + 1 for s in picked if s.name != R2_SCENARIO)
    # R2_PARTITION_S per partition of 1/16 of 32,000 rows: 2,000 rows each
    assert r2.partition_s == R2_PARTITION_S
    assert r2.for_rows(32_000).unit_seconds == pytest.approx(R2_PARTITION_S * 16 / 32_000)
    explicit, _ = build_scenarios(SuiteConfig(unit_seconds=1e-4), [R2_SCENARIO, "none"])
    assert explicit[0].for_rows(32_000).unit_seconds == pytest.approx(R2_PARTITION_S / 2_000)  # its own work
    assert explicit[1].unit_seconds == 1e-4  # --unit-seconds for the others
    with pytest.raises(ValueError, match="needs a workload with rows"):
        r2.for_rows(None)


# -- asap's compute seconds and bytes are counted ------------------------------------


def test_asap_history_counts_its_steps_and_messages():
    workload = load_workload("synthetic-logistic", quick=True, rows=600)
    cfg = SuiteConfig(quick=True, workloads=("synthetic-logistic",), contenders=("asap",), max_iter=8,
                      sections=())
    r = run_scenario(cfg, workload, Scenario("none", "none", 3), single=None, iterations={})
    (o,) = r.outcomes
    assert o.contender == "asap" and o.rounds > 0
    # the peer loops run outside Dask tasks: their own history has the seconds and bytes
    assert o.peer_compute_s > 0 and o.peer_bytes > 0
    assert o.compute_s >= o.peer_compute_s and o.bytes_out >= o.peer_bytes
    # every round every worker sends its version to its out-peers: float64 parameters, 6 features
    assert o.peer_bytes >= o.rounds * 3 * 6 * 8


# -- trace synthesis -------------------------------------------------------------


def _source(n_fast=3, seed=0):
    """A hand-built fitted model: ``n_fast`` steady workers and one persistent 10x straggler."""
    n = n_fast + 1
    rng = np.random.default_rng(seed)
    shift = 2.0 + 0.1 * rng.random(n)
    return StragglerModel([f"n{i}" for i in range(n)], p=[0.0] * n_fast + [0.8],
                          p_slow_slow=[0.5] * n_fast + [0.9], p_slow_fast=[0.0] * n_fast + [0.4],
                          shift=shift, rate=np.full(n, 10.0), slow_shift=10 * shift, slow_rate=np.full(n, 1.0),
                          slowdown=np.full(n, 10.0), n_rounds=[50] * n)


def test_synthesized_workers_copy_rescaled_profiles_of_the_sources():
    a, b = _source(3, seed=1), _source(1, seed=2)  # 6 workers, 2 of them stragglers
    big = synthesize_model([a, b], 3000, scale=0.5, random_state=4)
    assert big.n_workers == 3000 and len(set(big.workers)) == 3000
    pooled = [(p, s / np.median(m.shift) * 0.5) for m in (a, b) for p, s in zip(m.p, m.shift)]
    drawn = set(zip(big.p.tolist(), big.shift.round(12).tolist()))
    assert drawn <= {(p, round(s, 12)) for p, s in pooled}  # every worker is some source worker
    assert abs(np.mean(big.p > 0.5) - 2 / 6) < 0.03  # the sources' share of stragglers
    assert np.median(big.shift) == pytest.approx(0.5, rel=0.05)  # the typical fast worker at ``scale``
    assert np.allclose(big.slow_shift / big.shift, 10.0)  # each worker keeps its slow/fast ratio
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="n_workers"):
            synthesize_model(a, bad)
    with pytest.raises(ValueError, match="at least one"):
        synthesize_model([], 4)


def test_synthetic_trace_replays_and_nests():
    trace = synthesize_trace([_source(3)], 40, 30, random_state=0)
    assert trace.latencies.shape == (30, 40) == trace.states.shape
    assert np.array_equal(trace.sample(10, random_state=123), trace.latencies[:10])  # a replay, not a draw
    small = trace.first(8)
    assert small.workers == trace.workers[:8] and np.array_equal(small.latencies, trace.latencies[:, :8])
    slow = trace.latencies[trace.states]
    assert slow.size and slow.min() > trace.latencies[~trace.states].max()  # 10x stragglers stand out
    with pytest.raises(ValueError, match="30 rounds"):
        trace.sample(31)
    with pytest.raises(ValueError, match="n_workers"):
        trace.first(41)


# -- the scaling report ------------------------------------------------------------


def test_scaling_report_on_nested_synthetic_clusters():
    schemes = ("sync", "uncoded", "cyclic", "heterogeneous")
    rows = scaling_rows([_source(5, seed=3)], (8, 16, 32), schemes=schemes, n_rounds=12, seed=1)
    assert [(r.workers, r.scheme) for r in rows] == [(n, s) for n in (8, 16, 32) for s in schemes]
    by = {(r.workers, r.scheme): r for r in rows}
    for n in (8, 16, 32):
        assert sum(by[(n, s)].recommended for s in schemes) == 1
        for s in ("sync", "cyclic", "heterogeneous"):
            assert by[(n, s)].exact and by[(n, s)].mean_error <= EXACT_TOL
        # the 6-partition straggler set is persistent: moving work off it beats waiting for it
        assert by[(n, "heterogeneous")].mean_time < by[(n, "sync")].mean_time
        assert by[(n, "sync")].p95_time >= by[(n, "sync")].mean_time
    # nested clusters on the same rounds: sync waits for the slowest, which only gets slower
    sync = [by[(n, "sync")].mean_time for n in (8, 16, 32)]
    assert sync == sorted(sync)
    assert by[(32, "sync")].slow_workers >= by[(8, "sync")].slow_workers > 0
    # uncoded loses the stragglers' partitions: a decoding error
    assert by[(8, "uncoded")].mean_error > 0
    section = ScalingSection(rows, traces=("t",), n_rounds=12, redundancy=2)
    md = "\n".join(section.markdown({}, "img/"))
    assert md.count("\n| ") == len(schemes) + 1 and "![scaling](img/scaling.png)" in md
    assert len(section.csv_rows()) == len(rows)
    with pytest.raises(ValueError, match="redundancy"):
        scaling_rows([_source()], (1, 8), n_rounds=3)
