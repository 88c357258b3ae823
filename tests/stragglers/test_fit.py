"""Fitting straggler models: on the real EC2 traces, recovered from synthetic data, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dask_quorum.pipeline.stragglers import fit_straggler_model

# ---------------------------------------------------------------------------
# the real EC2 traces


def _slowest_node(path, trace: str) -> str:
    """The node with the largest median iteration time, straight from the CSV."""
    df = pd.read_csv(path)
    return str(df[df["trace"] == trace].groupby("node")["seconds"].median().idxmax())


@pytest.mark.parametrize("trace", ["data2", "data7", "data8"])
def test_persistent_straggler_found(traces, trace_file, trace):
    model = traces[trace]
    slow = model.slow_workers()  # p > 0.5
    assert slow == [_slowest_node(trace_file, trace)]
    i = model.workers.index(slow[0])
    assert 10.0 <= model.slowdown[i] <= 12.5
    assert model.p_slow_slow[i] >= 0.8
    assert model.p[i] >= 0.75
    others = np.delete(np.arange(model.n_workers), i)
    assert np.all(model.p[others] == 0.0)
    assert np.all(model.p_slow_fast[others] < 0.04)  # add-one smoothing only


def test_data4_three_intermittent_stragglers(traces):
    # Rule: a worker is a straggler when it exceeded 2x the round median in
    # more than 2 % of its rounds, i.e. slow_workers(p_min=0.02). In data4
    # exactly three nodes ever do (p = 0.54, 0.285, 0.039); the other seven
    # never do (p = 0), so any p_min in (0, 0.038) gives the same answer.
    model = traces["data4"]
    found = model.slow_workers(p_min=0.02)
    assert len(found) == 3
    p = dict(zip(model.workers, model.p))
    assert sorted(round(p[w], 2) for w in found) == [0.04, 0.29, 0.54]
    assert all(p[w] == 0.0 for w in model.workers if w not in found)
    idx = [model.workers.index(w) for w in found]
    # intermittent, not persistent: being slow now says little about the next round
    assert np.all(model.p_slow_slow[idx] < 0.6)
    assert np.all(np.abs(model.p_slow_slow[idx] - model.p_slow_fast[idx]) < 0.15)
    # only the one slow more often than not counts as a persistent straggler
    assert model.slow_workers() == [found[int(np.argmax(model.p[idx]))]]


def test_data3_no_false_slow_node(traces):
    # data3 has cluster-wide slow rounds (five of eight nodes 2-10x slower at
    # once) that lift the round median; the largest p is node03's 7 of 50.
    model = traces["data3"]
    assert model.slow_workers() == []
    assert model.p.max() <= 0.15
    # no persistence: the few slow rounds rarely follow each other
    # (never-slow workers take the cluster's pooled P(slow|slow))
    assert model.p_slow_slow[model.p > 0].max() < 0.3


def test_data6_spiking_node(traces, trace_file):
    model = traces["data6"]
    found = model.slow_workers(p_min=0.1)
    assert found == [_slowest_node(trace_file, "data6")]
    i = model.workers.index(found[0])
    assert model.p[i] == pytest.approx(0.27, abs=0.02)
    assert 7.0 <= model.slowdown[i] <= 12.0
    assert np.delete(model.p, i).max() == 0.0


def test_goodness_of_fit_on_trace(traces):
    model = traces["data8"]
    gof = model.goodness_of_fit(n_simulated=5000, random_state=1)
    assert set(gof.data_vars) >= {"ks_fast", "n_fast", "n_slow", "p_simulated", "p_stationary"}
    assert int(gof.n_fast.sum() + gof.n_slow.sum()) == int(model.n_rounds.sum())
    i = model.workers.index(model.slow_workers()[0])
    assert int(gof.n_slow[i]) == round(model.p[i] * model.n_rounds[i])
    assert float(gof.p_simulated[i]) == pytest.approx(model.p[i], abs=0.05)
    assert np.all((gof.ks_fast.values > 0) & (gof.ks_fast.values < 1))


# ---------------------------------------------------------------------------
# synthetic recovery and fallbacks


def test_recovery_from_own_samples(make_model):
    truth = make_model()
    fitted = fit_straggler_model(truth.sample(4000, random_state=7), workers=truth.workers)
    assert fitted.workers == truth.workers
    np.testing.assert_allclose(fitted.p, truth.p, atol=0.06)
    np.testing.assert_allclose(fitted.p_slow_slow[-2:], truth.p_slow_slow[-2:], atol=0.05)
    np.testing.assert_allclose(fitted.p_slow_fast, truth.p_slow_fast, atol=0.03)
    np.testing.assert_allclose(fitted.shift, truth.shift, atol=0.01)
    np.testing.assert_allclose(fitted.rate, truth.rate, rtol=0.1)
    np.testing.assert_allclose(fitted.slow_shift[-2:], truth.slow_shift[-2:], atol=0.05)
    np.testing.assert_allclose(fitted.slow_rate[-2:], truth.slow_rate[-2:], rtol=0.15)
    assert fitted.slow_workers(p_min=0.2) == ["w8", "w9"]
    gof = fitted.goodness_of_fit(random_state=3)
    assert float(gof.ks_fast.max()) < 0.05  # the right family fits
    np.testing.assert_allclose(gof.p_simulated, fitted.p, atol=0.03)
    np.testing.assert_allclose(gof.p_stationary, fitted.p, atol=0.02)


def test_no_slow_sample_fallbacks(make_model):
    x = make_model().sample(500, random_state=2)
    x[:, 0] = 1.0  # constant worker: point mass
    fitted = fit_straggler_model(np.minimum(x, 1.5))  # nobody ever straggles
    assert np.all(fitted.p == 0)
    assert np.isinf(fitted.rate[0]) and fitted.shift[0] == 1.0
    assert np.all(fitted.slow_shift >= fitted.threshold * 1.0)
    assert np.all(fitted.slowdown >= fitted.threshold)
    assert np.all((fitted.p_slow_slow == 0.5) & (fitted.p_slow_fast > 0) & (fitted.p_slow_fast < 0.01))
    sim = fitted.sample(100, random_state=0)
    assert np.all(sim[:, 0] >= 1.0) and np.isfinite(sim).all()
    gof = fitted.goodness_of_fit(n_simulated=200)
    assert float(gof.ks_fast[0]) == 0.0 and np.isnan(float(gof.ks_slow[0]))


# ---------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        (np.empty((0, 3)), {}, "empty"),
        (np.full((5, 3), np.nan), {}, "all NaN"),
        (np.ones((1, 3)), {}, "at least 2 rounds"),
        ([[1.0, np.nan], [np.nan, np.nan], [np.nan, np.nan]], {}, "at least 2 rounds"),
        ([[1.0, -2.0], [1.0, 1.0]], {}, "non-negative"),
        ([[1.0, np.inf], [1.0, 1.0]], {}, "finite"),
        ([[1.0, np.nan], [1.0, np.nan]], {}, r"worker\(s\) \['1'\] have no latencies"),
        (np.ones((3, 2)), {"threshold": 1.0}, "threshold"),
        (np.ones((3, 2)), {"threshold": 0.5}, "threshold"),
        (np.ones((3, 2)), {"threshold": float("nan")}, "threshold"),
        (np.ones((3, 2)), {"prior": 0.0}, "prior"),
        (np.zeros((3, 2)), {}, "median round latency is 0"),
    ],
)
def test_fit_rejects_bad_input(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_straggler_model(data, **kwargs)
