"""Slow and fast states: the straggle indicator, persistence over gaps, the current states."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from dask_quorum.pipeline.stragglers import current_states, fit_straggler_model

# ---------------------------------------------------------------------------
# the straggle indicator and its transitions


def test_straggle_indicator_is_strict_and_per_round():
    # worker "2" sits exactly at 2x the round median in round 0 (not slow),
    # just above it in round 1 (slow); in round 2 the median is over the two
    # workers present (5.0), so 7.0 is not slow
    x = [[1.0, 1.0, 2.0], [1.0, 1.0, 2.01], [np.nan, 3.0, 7.0], [1.0, 1.0, 1.0]]
    model = fit_straggler_model(x, threshold=2.0)
    np.testing.assert_allclose(model.p, [0.0, 0.0, 0.25])
    # worker "2": pairs (0,1) fast->slow, (1,2) slow->fast, (2,3) fast->fast;
    # worker "0" is not observed in round 2: its pairs are (0,1) and (1,3), both fast->fast;
    # worker "1": three fast->fast pairs. The prior (a = 1) is worth two transitions at the
    # cluster's pooled rate: slow row 0 of 1 -> m_s = 1/3; fast row 1 of 7 -> m_f = 2/9.
    m_s, m_f = (0 + 1) / (1 + 2), (1 + 1) / (7 + 2)
    assert model.p_slow_slow[2] == pytest.approx((0 + 2 * m_s) / (1 + 2))
    assert model.p_slow_fast[2] == pytest.approx((1 + 2 * m_f) / (2 + 2))
    assert model.p_slow_fast[0] == pytest.approx((0 + 2 * m_f) / (2 + 2))
    assert model.p_slow_fast[1] == pytest.approx((0 + 2 * m_f) / (3 + 2))


def test_persistence_steps_over_busy_rounds(make_model):
    # The engine gives no new task to a worker still busy with an earlier
    # round: a straggler reports one round in ten. Its successive tasks
    # carry the persistence, whatever the rounds in between.
    truth = make_model()
    x = truth.sample(4000, random_state=8)
    sparse = x.copy()
    sparse[:, -2] = np.nan
    sparse[::10, -2] = x[:400, -2]  # w8's first 400 tasks, one per 10 rounds
    fitted = fit_straggler_model(sparse, workers=truth.workers)
    assert fitted.n_rounds[-2] == 400
    assert fitted.p_slow_slow[-2] == pytest.approx(truth.p_slow_slow[-2], abs=0.08)
    assert fitted.p_slow_fast[-2] == pytest.approx(truth.p_slow_fast[-2], abs=0.05)


def _busy_straggler() -> tuple[np.ndarray, np.ndarray]:
    """Worker "3" finishes a 10x task in rounds 0 and 6 and is busy in between.

    ``censored`` holds how long its running task had taken at the end of
    each busy round, per unit: 3, 6, 9, ... (the round median is 1).
    """
    x = np.ones((12, 4))
    x[:, 3] = np.nan
    x[0, 3] = x[6, 3] = 10.0
    censored = np.full(x.shape, np.nan)
    censored[1:6, 3] = 3.0 * np.arange(1, 6)
    censored[7:12, 3] = 3.0 * np.arange(1, 6)
    return x, censored


def test_censored_rounds_of_a_busy_worker_are_slow_observations():
    x, censored = _busy_straggler()
    plain = fit_straggler_model(x)
    model = fit_straggler_model(x, censored=censored)
    # without the bounds: seen twice, both slow; with them, slow in all its 12 rounds
    assert plain.n_rounds[3] == 2 and model.n_rounds[3] == 12
    assert plain.p[3] == 1.0 and model.p[3] == 1.0
    # slow -> slow in 11 transitions instead of 1: the chain knows it stays slow
    assert model.p_slow_slow[3] > plain.p_slow_slow[3] + 0.2
    assert model.p_slow_slow[3] > 0.8
    # the bounds are not latencies: the slow state is fitted on the two measured tasks
    assert model.slowdown[3] == plain.slowdown[3] == 10.0
    assert model.slow_shift[3] == plain.slow_shift[3]
    np.testing.assert_array_equal(model.latencies, x)
    # the healthy workers are untouched
    np.testing.assert_array_equal(model.n_rounds[:3], plain.n_rounds[:3])


def test_censored_bounds_below_the_threshold_say_nothing():
    x, censored = _busy_straggler()
    short = np.where(np.isnan(censored), np.nan, 1.5)  # ran 1.5x the median so far: not yet slow
    model = fit_straggler_model(x, censored=short)
    xr.testing.assert_identical(model.to_dataset(), fit_straggler_model(x).to_dataset())
    # a bound where a latency was measured is ignored: the measurement wins
    over = censored.copy()
    over[2, 0] = 50.0
    assert fit_straggler_model(x, censored=over).p[0] == 0.0


def test_a_worker_that_never_finished_is_known_slow_from_its_bounds():
    x, censored = _busy_straggler()
    x[:, 3] = np.nan  # still running its first task
    censored[0, 3], censored[6, 3] = 2.5, 20.0
    with pytest.raises(ValueError, match="have no latencies"):
        fit_straggler_model(x)
    model = fit_straggler_model(x, censored=censored)
    assert model.p[3] == 1.0 and model.n_rounds[3] == 12
    assert model.slow_workers() == ["3"]
    # no slow latency was measured: the slow state is fitted on the bounds, not
    # borrowed (nobody else was slow: the fallback would be 2x the fast state),
    # each raised to censored_slowdown (10) x the typical latency (1)
    bounds = censored[:, 3]
    assert model.slowdown[3] == pytest.approx(np.median(np.maximum(bounds, 10.0)))
    assert model.slow_shift[3] == pytest.approx(10.0)
    assert model.slowdown[3] > 2 * fit_straggler_model(x[:, :3]).slowdown.max()
    # censored_slowdown=1 takes the bounds as they are
    as_is = fit_straggler_model(x, censored=censored, censored_slowdown=1)
    assert as_is.slowdown[3] == pytest.approx(np.median(bounds))
    assert as_is.slow_shift[3] == pytest.approx(bounds.min())
    states = current_states(x, censored=censored)
    np.testing.assert_array_equal(states, [False, False, False, True])
    np.testing.assert_array_equal(current_states(x), [False] * 4)


def test_a_task_still_running_is_as_slow_as_the_measured_stragglers():
    # worker "3" was caught 2.5x into its first slow task; worker "2" finished
    # two 6x tasks: the bound stands for the cluster's measured slow latency
    x = np.ones((6, 4))
    x[1:, 3] = np.nan
    x[2, 2] = x[4, 2] = 6.0
    censored = np.full(x.shape, np.nan)
    censored[1:, 3] = [2.5, 3.5, 4.5, 5.5, 6.5]
    model = fit_straggler_model(x, censored=censored)
    assert model.p[3] == pytest.approx(5 / 6)
    np.testing.assert_allclose(model.slow_shift[2:], 6.0)
    # the bounds above the measured slowdown are kept as they are
    assert model.slowdown[3] == pytest.approx(6.0)
    # with nobody's slow task measured, censored_slowdown=1 leaves the bounds as they are
    x[2, 2] = x[4, 2] = 1.0
    assert fit_straggler_model(x, censored=censored, censored_slowdown=1).slowdown[3] == pytest.approx(4.5)
    assert fit_straggler_model(x, censored=censored).slowdown[3] == pytest.approx(10.0)


def test_a_single_slow_latency_stretches_the_fallback_slow_state_to_itself():
    # one 12x task on worker "3", nobody else slow: too few samples to fit a
    # slow state or pool one, so the fast state is stretched to that task
    # (to the 2x threshold when a worker has no slow sample at all)
    x = 1.0 + 0.01 * np.arange(20).reshape(5, 4) % 3
    x[2, 3] = 12.0
    model = fit_straggler_model(x)
    typical = float(np.median(np.median(x, axis=1)))
    assert model.slow_shift[3] == pytest.approx(12.0)
    assert model.slow_rate[3] == pytest.approx(model.rate[3] * typical / 12.0)
    assert model.slowdown[3] == pytest.approx(12.0 / typical)
    assert model.slow_shift[0] == pytest.approx(2.0 * typical)


@pytest.mark.parametrize("bad", [0.5, float("nan"), float("inf"), "10"])
def test_censored_slowdown_is_checked(bad):
    x, censored = _busy_straggler()
    with pytest.raises(ValueError, match="censored_slowdown must be a finite number >= 1"):
        fit_straggler_model(x, censored=censored, censored_slowdown=bad)


def test_censored_bounds_are_checked():
    x, censored = _busy_straggler()
    with pytest.raises(ValueError, match=r"censored must have the latency matrix's shape \(12, 4\)"):
        fit_straggler_model(x, censored=censored[:-1])
    censored[3, 3] = -1.0
    with pytest.raises(ValueError, match="censored lower bounds must be non-negative"):
        fit_straggler_model(x, censored=censored)
    with pytest.raises(ValueError, match="censored must be numeric"):
        current_states(x, censored=[["a"] * 4] * 12)


# ---------------------------------------------------------------------------
# current states


def test_current_states_are_the_last_observed_ones():
    x = np.ones((4, 6))
    x[1, 0] = 10.0  # slow in round 1, fast after
    x[3, 1] = 10.0  # slow in its last round
    x[2, 2] = 10.0
    x[3, 2] = np.nan  # last seen (slow) in round 2
    x[:, 3] = np.nan  # never observed
    np.testing.assert_array_equal(current_states(x), [False, True, True, False, False, False])
    np.testing.assert_array_equal(current_states(x, threshold=20.0), [False] * 6)
    with pytest.raises(ValueError, match="threshold must be"):
        current_states(x, threshold=0.5)
