"""Property tests of the straggler-model fit: labels and units of time do not matter."""

from __future__ import annotations

import numpy as np
from dask_quorum.pipeline.stragglers import fit_straggler_model
from hypothesis import given, settings
from hypothesis import strategies as st

PROPERTIES = settings(max_examples=60, deadline=None, derandomize=True, database=None)

@st.composite
def latency_matrices(draw):
    n_rounds = draw(st.integers(3, 25))
    n_workers = draw(st.integers(2, 7))
    base = np.asarray(
        draw(st.lists(st.floats(0.5, 2.0), min_size=n_rounds * n_workers, max_size=n_rounds * n_workers))
    ).reshape(n_rounds, n_workers)
    slow = np.asarray(
        draw(st.lists(st.booleans(), min_size=n_rounds * n_workers, max_size=n_rounds * n_workers))
    ).reshape(n_rounds, n_workers)
    factor = draw(st.floats(3.0, 20.0))
    x = np.where(slow, base * factor, base)
    missing = np.asarray(
        draw(st.lists(st.booleans(), min_size=n_rounds * n_workers, max_size=n_rounds * n_workers))
    ).reshape(n_rounds, n_workers)
    missing &= np.arange(n_rounds)[:, None] >= 2  # every worker observed in the first two rounds
    return np.where(missing, np.nan, x)


_PER_WORKER = ("p", "p_slow_slow", "p_slow_fast", "shift", "rate", "slow_shift", "slow_rate", "slowdown", "n_rounds")


@PROPERTIES
@given(latency_matrices(), st.data())
def test_the_fit_is_invariant_to_relabelling_the_workers(x, data):
    names = [f"w{i}" for i in range(x.shape[1])]
    perm = data.draw(st.permutations(range(x.shape[1])))
    model = fit_straggler_model(x, workers=names)
    relabelled = fit_straggler_model(x[:, perm], workers=[names[j] for j in perm])
    for field in _PER_WORKER:
        a = np.asarray(getattr(model, field), dtype=float)[perm]
        b = np.asarray(getattr(relabelled, field), dtype=float)
        np.testing.assert_allclose(b, a, rtol=1e-12, err_msg=field)
    assert sorted(relabelled.slow_workers()) == sorted(model.slow_workers())


@PROPERTIES
@given(latency_matrices())
def test_fitted_probabilities_are_probabilities(x):
    model = fit_straggler_model(x)
    for field in ("p", "p_slow_slow", "p_slow_fast", "p_stationary"):
        values = np.asarray(getattr(model, field), dtype=float)
        assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all(), field
    # smoothed transition probabilities never reach 0 or 1
    assert (model.p_slow_slow > 0).all() and (model.p_slow_slow < 1).all()
    np.testing.assert_array_equal(model.n_rounds, (~np.isnan(x)).sum(axis=0))


@PROPERTIES
@given(latency_matrices(), st.floats(1e-3, 1e3))
def test_the_fit_does_not_depend_on_the_unit_of_time(x, c):
    model, scaled = fit_straggler_model(x), fit_straggler_model(x * c)
    for field in ("p", "p_slow_slow", "p_slow_fast", "slowdown"):
        np.testing.assert_allclose(getattr(scaled, field), getattr(model, field), rtol=1e-9, err_msg=field)
    np.testing.assert_allclose(scaled.shift, model.shift * c, rtol=1e-9)
    np.testing.assert_allclose(scaled.slow_shift, model.slow_shift * c, rtol=1e-9)
