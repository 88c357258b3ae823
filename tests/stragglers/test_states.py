"""Slow and fast states: the straggle indicator, persistence over gaps, the current states."""

from __future__ import annotations

import numpy as np
import pytest
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
