"""The straggler model: simulation, views and the change test."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.stragglers import fit_straggler_model

# ---------------------------------------------------------------------------
# simulation


def test_sample_seeded_and_markov(make_model):
    model = make_model()
    a, states = model.sample(3000, random_state=11, return_states=True)
    np.testing.assert_array_equal(a, model.sample(3000, random_state=11))
    assert not np.array_equal(a, model.sample(3000, random_state=12))
    assert a.shape == states.shape == (3000, model.n_workers)
    assert np.all(a[~states] >= 1.0) and np.all(a[states] >= 8.0)
    s = states[:, -2]  # the persistent one: P(slow | slow) = 0.9
    assert s[1:][s[:-1]].mean() == pytest.approx(0.9, abs=0.03)
    gen = np.random.default_rng(5)
    np.testing.assert_array_equal(model.sample(10, gen), model.sample(10, np.random.default_rng(5)))


def test_sample_from_given_states_forgets_them_at_the_chains_pace(make_model):
    model = make_model()
    start = np.zeros(model.n_workers, dtype=bool)
    start[-2] = True  # the persistent one (P(slow | slow) = 0.9) starts slow
    runs = [model.sample(5, random_state=seed, start=start, return_states=True)[1] for seed in range(400)]
    states = np.stack(runs)  # (run, round, worker)
    np.testing.assert_array_equal(states[:, 0], np.broadcast_to(start, states[:, 0].shape))
    # still slow after t rounds with probability >= 0.9 ** t
    assert states[:, 4, -2].mean() >= 0.9**4 - 0.08
    with pytest.raises(ValueError, match=r"start must be a boolean array of shape \(%d,\)" % model.n_workers):
        model.sample(3, start=[True, False])
    with pytest.raises(ValueError, match="start must be a boolean array"):
        model.sample(3, start=np.zeros(model.n_workers))


# ---------------------------------------------------------------------------
# views


def _narrow_latencies(rounds=40, n=8, seed=0):
    """Fast workers within +-1 % of 1 s per unit, workers 0 and 1 always 10x."""
    rng = np.random.default_rng(seed)
    x = 1.0 + 0.01 * rng.uniform(-1, 1, (rounds, n))
    x[:, :2] *= 10
    return x


def test_observed_draws_resample_each_workers_own_latencies():
    x = _narrow_latencies()
    model = fit_straggler_model(x, workers=[f"w{i}" for i in range(x.shape[1])])
    sim, states = model.sample(500, random_state=3, return_states=True, draws="observed")
    for i in range(x.shape[1]):
        # a draw in a state the worker was seen in is one of its own observations there
        seen = states[:, i] if i < 2 else ~states[:, i]
        assert seen.sum() > 100
        assert np.isin(sim[seen, i], x[:, i]).all(), i
    resampled = model.resampled_states()
    assert resampled.shape == (x.shape[1], 2)
    assert (resampled[:2] == [False, True]).all() and (resampled[2:] == [True, False]).all()
    fitted = model.sample(500, random_state=3, draws="fitted")
    # the shifted exponential of the fast state reaches far beyond the observed spread
    assert fitted[~states].max() > x[:, 2:].max() + 0.02
    assert sim[:, 2:][~states[:, 2:]].max() <= x[:, 2:].max()
    np.testing.assert_array_equal(sim, model.sample(500, random_state=3, draws="observed"))


def test_observed_draws_need_enough_observations_and_the_data():
    from dask_quorum.pipeline.stragglers.model import MIN_OBSERVED_DRAWS

    x = _narrow_latencies(rounds=MIN_OBSERVED_DRAWS - 1)
    model = fit_straggler_model(x, workers=[f"w{i}" for i in range(x.shape[1])])
    sim = model.sample(200, random_state=0, draws="observed")
    # too few rounds: the fitted distributions, as with draws="fitted"
    np.testing.assert_array_equal(sim, model.sample(200, random_state=0))
    assert not model.resampled_states().any()
    with pytest.raises(ValueError, match="draws must be"):
        model.sample(5, draws="bootstrap")
    bare = model.__class__(**{f: getattr(model, f) for f in (
        "workers", "p", "p_slow_slow", "p_slow_fast", "shift", "rate", "slow_shift", "slow_rate",
        "slowdown", "n_rounds")})
    with pytest.raises(ValueError, match="latencies"):
        bare.sample(5, draws="observed")
    assert not bare.resampled_states().any()


def test_model_views(make_model):
    model = fit_straggler_model(make_model().sample(300, random_state=4), workers=[f"w{i}" for i in range(10)])
    ds = model.to_dataset()
    assert list(ds.worker.values) == list(model.workers)
    assert ds.attrs["threshold"] == 2.0
    np.testing.assert_array_equal(ds.p.values, model.p)
    text = repr(model)
    assert text.startswith("StragglerModel(10 workers, threshold=2, slow=[])")
    assert "P(s|s)" in text and len(text.splitlines()) == 12
    assert [line.split()[0] for line in text.splitlines()[2:]] == list(model.workers)
    x = np.ones((20, 4))
    x[:, 3] = 10.0
    assert "\n3 *" in repr(fit_straggler_model(x))  # the star marks p > 0.5
    with pytest.raises(ValueError):
        model.p[0] = 1.0  # read-only arrays
    with pytest.raises(ValueError, match="no latencies"):
        make_model().goodness_of_fit()
    with pytest.raises(ValueError, match="p_min"):
        model.slow_workers(p_min=1.0)
    with pytest.raises(ValueError, match="n_rounds"):
        model.sample(0)
    with pytest.raises(ValueError, match="p must be probabilities"):
        make_model(p=np.full(10, 1.5))
    with pytest.raises(ValueError, match="one value per worker"):
        make_model(shift=np.ones(3))


# ---------------------------------------------------------------------------
# changed


def test_changed_detects_a_worker_turning_slow(make_model):
    truth = make_model()
    before = fit_straggler_model(truth.sample(4000, random_state=100), workers=truth.workers)
    again = fit_straggler_model(truth.sample(4000, random_state=101), workers=truth.workers)
    assert not before.changed(again) and not again.changed(before)  # noise of the same model
    assert np.abs(before.p - again.p).max() < 3 * np.sqrt(before.p_stderr**2 + again.p_stderr**2).max()

    p_ss, p_sf = truth.p_slow_slow.copy(), truth.p_slow_fast.copy()
    p_ss[3], p_sf[3] = 0.9, 0.2  # w3 now slow two rounds out of three
    worse = make_model(p_slow_slow=p_ss, p_slow_fast=p_sf)
    after = fit_straggler_model(worse.sample(4000, random_state=102), workers=truth.workers)
    assert before.changed(after)
    assert after.slow_workers() == ["w3"]

    # a worker appearing or disappearing is a change whatever the numbers
    fewer = fit_straggler_model(truth.sample(4000, random_state=101)[:, :-1], workers=truth.workers[:-1])
    assert before.changed(fewer) and fewer.changed(before)
    renamed = fit_straggler_model(truth.sample(4000, random_state=101), workers=[f"v{i}" for i in range(10)])
    assert before.changed(renamed)
    with pytest.raises(ValueError, match="StragglerModel"):
        before.changed(before.to_dataset())
