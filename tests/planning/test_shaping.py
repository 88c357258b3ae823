"""The load bound of the heterogeneous code, chosen by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.coding import EXACT_TOL, make_code
from dask_quorum.pipeline.planning import shape_heterogeneous, simulate
from markov_models import persistent


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
