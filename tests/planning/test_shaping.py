"""The load bound of the heterogeneous code, chosen by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.coding import EXACT_TOL, make_code
from dask_quorum.pipeline.planning import shape_heterogeneous, simulate
from markov_models import MarkovModel, persistent


def test_shape_heterogeneous_keeps_equal_loads_for_one_persistent_straggler():
    # Unbounded, the straggler's load lands on a reliable worker every round
    # waits for; equal loads placed by reliability are as fast as cyclic.
    model = persistent(15, [4], slowdown=12.0, scale=0.0)
    latencies = model.sample(50, random_state=0)
    probs = np.where(np.arange(15) == 4, 0.95, 0.05)
    code, run = shape_heterogeneous(probs, latencies, redundancy=2, random_state=0)
    np.testing.assert_array_equal(np.count_nonzero(code.B, axis=1), 2)
    unbounded = make_code("heterogeneous", 15, redundancy=2, straggle_probs=probs, random_state=0)
    assert np.count_nonzero(unbounded.B, axis=1).max() == 3
    slower = simulate(unbounded, latencies)
    assert run.mean_time < 0.8 * slower.mean_time
    cyclic = simulate(make_code("cyclic", 15, redundancy=2), latencies)
    assert run.mean_time == pytest.approx(cyclic.mean_time)
    assert run.mean_error <= EXACT_TOL


def test_shape_heterogeneous_shifts_load_when_many_workers_straggle():
    # Six of eight workers are 3x slow in every round, more than any
    # tolerance: with equal loads every round waits for a slow worker, while
    # the two reliable ones can hold every partition between them.
    model = persistent(8, [0, 1, 2, 3, 4, 5], slowdown=3.0, scale=0.0)
    latencies = model.sample(30, random_state=0)
    probs = np.where(np.arange(8) < 6, 0.9, 0.05)
    code, run = shape_heterogeneous(probs, latencies, redundancy=2, random_state=0)
    loads = np.count_nonzero(code.B, axis=1)
    assert loads[6:].min() > 2 > loads[:6].min()  # work moved from the slow to the reliable
    assert loads[:6].max() <= loads[6:].min()
    equal = make_code("heterogeneous", 8, redundancy=2, straggle_probs=probs, random_state=0, max_load=2)
    assert run.mean_time < 0.9 * simulate(equal, latencies).mean_time


def _r2_scenario():
    """16 workers, the last 4 10x slow with P(slow|slow)=0.9, P(slow|fast)=0.3 (the suite's chain)."""
    slow = np.arange(16) >= 12
    return MarkovModel(np.where(slow, 0.9, 0.0), np.where(slow, 0.3, 0.0), slowdown=10.0, scale=2e-4)


def test_heterogeneous_is_well_below_cyclic_and_sync_on_the_redundancy_2_scenario():
    from dask_quorum.pipeline.planning import plan

    model = _r2_scenario()
    result = plan(model, schemes=("sync", "frc", "cyclic", "heterogeneous"), redundancy=2,
                  n_rounds=300, random_state=0)
    assert result.recommended == "heterogeneous"
    t = result.table["mean_time"]
    assert t["heterogeneous"] < t["cyclic"] / 5
    assert t["heterogeneous"] < t["sync"] / 4
    code = result.codes["heterogeneous"]
    assert code.exact and code.is_exact(list(range(12)))  # the 12 fast decode alone
    np.testing.assert_array_equal(np.count_nonzero(code.B, axis=1), 2)
    # and the rounds stop on the fast workers
    assert (result.runs["heterogeneous"].responded[:, 12:].mean() < 0.1)


def test_shape_heterogeneous_decodes_approximately_only_without_the_redundancy_for_it():
    model = _r2_scenario()
    latencies = model.sample(100, random_state=0)
    probs = np.where(np.arange(16) >= 12, 0.75, 0.05)
    # redundancy 2: the fast workers cover every partition, the code stays exact
    code, run = shape_heterogeneous(probs, latencies, redundancy=2, random_state=0, approximate=True)
    assert code.exact and run.mean_error <= EXACT_TOL
    # redundancy 1: nothing to cover the slow workers' partitions with; waiting
    # for them is 10x slower than decoding approximately from the fast ones
    exact, slow_run = shape_heterogeneous(probs, latencies, redundancy=1, random_state=0)
    approx, fast_run = shape_heterogeneous(probs, latencies, redundancy=1, random_state=0, approximate=True)
    assert exact.exact and not approx.exact and approx.unbiased
    assert approx.min_responders == 12
    assert fast_run.mean_time < 0.3 * slow_run.mean_time
    # 4 of 16 partitions lost, the 12 others weighted 16 / 12: (12 (1/3)^2 + 4) / 16
    assert fast_run.mean_error == pytest.approx(1 / 3, rel=0.2)
