"""Simulated rounds: the stop rule and the busy-worker rule, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.coding import EXACT_TOL, make_code
from dask_quorum.pipeline.planning import simulate
from markov_models import persistent


def test_simulate_stop_rule_and_busy_worker_by_hand_uncoded():
    # uncoded, n = 3, r = 2: min_responders 2, never exact before all 3 answer.
    code = make_code("uncoded", 3, redundancy=2)
    lat = np.array([[1.0, 1.0, 10.0], [5.0, 20.0, 1.0], [1.0, 1.0, 1.0]])
    run = simulate(code, lat)
    # round 0: w0, w1 answer at 1 -> quorum; w2 runs until 10.
    # round 1 (starts at 1): w0 at 6; w2 is free at 10, computes round 1 until 11 -> quorum at 11;
    #   w1 runs until 21.
    # round 2 (starts at 11): w0 and w2 at 12 -> quorum; w1 busy until 21, gets no task.
    np.testing.assert_allclose(run.start, [0, 1, 11])
    np.testing.assert_allclose(run.time, [1, 10, 1])
    np.testing.assert_array_equal(run.n_responders, [2, 2, 2])
    np.testing.assert_array_equal(run.stop, ["quorum"] * 3)
    np.testing.assert_allclose(run.error, [0.5, 0.5, 0.5])  # (n - m) / m
    np.testing.assert_array_equal(
        run.responded, [[True, True, False], [True, False, True], [True, False, True]]
    )
    np.testing.assert_array_equal(
        run.submitted, [[True, True, True], [True, True, True], [True, False, True]]
    )
    np.testing.assert_allclose(run.cost, [12, 26, 2])  # every submitted task runs to completion
    assert run.cost_per_round == pytest.approx(40 / 3)
    assert run.mean_time == pytest.approx(4.0)


def test_simulate_stops_on_exact_decoding_before_the_quorum_frc():
    # frc, n = 4, r = 2: groups {0, 1} and {2, 3}, 2 partitions per worker.
    code = make_code("frc", 4, redundancy=2)
    lat = np.array([[1.0, 5.0, 2.0, 6.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    run = simulate(code, lat, rows_per_partition=1.0, overhead=0.5)
    # round 0: durations 2.5, 10.5, 4.5, 12.5; w0 (error 0.5) then w2 -> exact at 4.5
    # round 1 (from 4.5): w0, w2 at 7 -> exact; w1, w3 busy until 10.5 and 12.5
    # round 2 (from 7): w0, w2 at 9.5 -> exact; w1, w3 still busy: no task
    np.testing.assert_allclose(run.time, [4.5, 2.5, 2.5])
    np.testing.assert_array_equal(run.stop, ["exact"] * 3)
    np.testing.assert_array_equal(run.n_responders, [2, 2, 2])
    np.testing.assert_array_equal(run.error <= EXACT_TOL, [True] * 3)
    np.testing.assert_array_equal(run.submitted[1:], [[True, False, True, False]] * 2)
    np.testing.assert_allclose(run.cost, [30, 5, 5])


def test_simulate_sync_waits_for_every_worker_and_never_leaves_one_busy():
    code = make_code("sync", 3)
    lat = np.array([[1.0, 3.0, 2.0], [4.0, 1.0, 1.0]])
    run = simulate(code, lat, rows_per_partition=2.0)
    np.testing.assert_allclose(run.time, [6.0, 8.0])
    np.testing.assert_array_equal(run.stop, ["exact", "exact"])
    assert run.submitted.all() and run.responded.all()
    np.testing.assert_allclose(run.cost, [12.0, 12.0])


def test_simulate_ties_arrive_in_worker_order():
    code = make_code("uncoded", 4, redundancy=3)  # quorum of 2
    run = simulate(code, np.ones((1, 4)))
    np.testing.assert_array_equal(run.responded, [[True, True, False, False]])
    assert run.time[0] == 1.0


@pytest.mark.parametrize(
    "latencies, kwargs, match",
    [
        (np.ones(4), {}, r"latencies must have shape \(n_rounds, 4\), got \(4,\)"),
        (np.ones((3, 5)), {}, r"latencies must have shape \(n_rounds, 4\), got \(3, 5\)"),
        (np.ones((0, 4)), {}, r"latencies must have shape"),
        (np.full((2, 4), np.nan), {}, r"latencies must be finite and >= 0"),
        (-np.ones((2, 4)), {}, r"latencies must be finite and >= 0"),
        (np.ones((2, 4)), {"rows_per_partition": 0}, r"rows_per_partition must be a real number > 0"),
        (np.ones((2, 4)), {"overhead": -1.0}, r"overhead must be a real number >= 0"),
        (np.ones((2, 4)), {"overhead": True}, r"overhead must be a real number >= 0"),
    ],
)
def test_simulate_rejects_bad_arguments(latencies, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(make_code("cyclic", 4), latencies, **kwargs)


# --------------------------------------------------------------------------- the busy-worker rule


def test_a_10x_straggler_takes_part_in_about_one_round_in_ten():
    model = persistent(8, [5], slowdown=10.0)
    lat = model.sample(400, random_state=0)
    run = simulate(make_code("cyclic", 8, redundancy=2), lat)
    share = run.participation
    assert 0.07 < share[5] < 0.13, share  # its task spans ~10 rounds of the fast workers
    np.testing.assert_array_equal(np.delete(share, 5), 1.0)
    assert not run.responded[:, 5].any()  # its answers always arrive after their round
    assert (run.n_responders <= 7).all()
    # sync waits for it: it takes part in every round and every round takes its time
    sync = simulate(make_code("sync", 8), lat)
    assert sync.submitted.all()
    assert sync.mean_time > 4 * run.mean_time
