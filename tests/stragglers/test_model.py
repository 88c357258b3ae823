"""Straggler models: fitted on the real EC2 traces, recovered from synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dask_quorum.pipeline.stragglers import (
    StragglerModel,
    current_states,
    fit_straggler_model,
    latency_matrix,
    load_trace,
)

TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces" / "aws_ec2_iteration_times.csv"  # ../shared
needs_traces = pytest.mark.skipif(not TRACES.exists(), reason=f"{TRACES} not present")


# ---------------------------------------------------------------------------
# helpers


def _model(n: int = 10, **overrides) -> StragglerModel:
    """Eight quiet workers, one persistent straggler (w8), one intermittent (w9)."""
    p_ss = np.full(n, 0.2)
    p_sf = np.full(n, 0.01)
    p_ss[n - 2], p_sf[n - 2] = 0.9, 0.05  # stationary 1/3, long slow spells
    p_ss[n - 1], p_sf[n - 1] = 0.5, 0.2  # stationary 2/7, short spells
    params = dict(
        workers=[f"w{i}" for i in range(n)],
        p_slow_slow=p_ss,
        p_slow_fast=p_sf,
        shift=np.full(n, 1.0),
        rate=np.full(n, 20.0),
        slow_shift=np.full(n, 8.0),
        slow_rate=np.full(n, 0.5),
        slowdown=np.full(n, 9.0),
        n_rounds=np.zeros(n, dtype=int),
    )
    params.update(overrides)
    params.setdefault("p", params["p_slow_fast"] / (params["p_slow_fast"] + 1 - params["p_slow_slow"]))
    return StragglerModel(**params)


@pytest.fixture(scope="module")
def traces() -> dict[str, StragglerModel]:
    if not TRACES.exists():
        pytest.skip(f"{TRACES} not present")
    names = ("data2", "data3", "data4", "data6", "data7", "data8")
    return {t: fit_straggler_model(load_trace(TRACES, t)) for t in names}


def _slowest_node(trace: str) -> str:
    """The node with the largest median iteration time, straight from the CSV."""
    df = pd.read_csv(TRACES)
    return str(df[df["trace"] == trace].groupby("node")["seconds"].median().idxmax())


# ---------------------------------------------------------------------------
# the real EC2 traces


@needs_traces
@pytest.mark.parametrize("trace", ["data2", "data7", "data8"])
def test_persistent_straggler_found(traces, trace):
    model = traces[trace]
    slow = model.slow_workers()  # p > 0.5
    assert slow == [_slowest_node(trace)]
    i = model.workers.index(slow[0])
    assert 10.0 <= model.slowdown[i] <= 12.5
    assert model.p_slow_slow[i] >= 0.8
    assert model.p[i] >= 0.75
    others = np.delete(np.arange(model.n_workers), i)
    assert np.all(model.p[others] == 0.0)
    assert np.all(model.p_slow_fast[others] < 0.04)  # add-one smoothing only


@needs_traces
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


@needs_traces
def test_data3_no_false_slow_node(traces):
    # data3 has cluster-wide slow rounds (five of eight nodes 2-10x slower at
    # once) that lift the round median; the largest p is node03's 7 of 50.
    model = traces["data3"]
    assert model.slow_workers() == []
    assert model.p.max() <= 0.15
    # no persistence: the few slow rounds rarely follow each other
    # (never-slow workers take the cluster's pooled P(slow|slow))
    assert model.p_slow_slow[model.p > 0].max() < 0.3


@needs_traces
def test_data6_spiking_node(traces):
    model = traces["data6"]
    found = model.slow_workers(p_min=0.1)
    assert found == [_slowest_node("data6")]
    i = model.workers.index(found[0])
    assert model.p[i] == pytest.approx(0.27, abs=0.02)
    assert 7.0 <= model.slowdown[i] <= 12.0
    assert np.delete(model.p, i).max() == 0.0


@needs_traces
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
# synthetic recovery and simulation


def test_recovery_from_own_samples():
    truth = _model()
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


def test_sample_seeded_and_markov():
    model = _model()
    a, states = model.sample(3000, random_state=11, return_states=True)
    np.testing.assert_array_equal(a, model.sample(3000, random_state=11))
    assert not np.array_equal(a, model.sample(3000, random_state=12))
    assert a.shape == states.shape == (3000, model.n_workers)
    assert np.all(a[~states] >= 1.0) and np.all(a[states] >= 8.0)
    s = states[:, -2]  # the persistent one: P(slow | slow) = 0.9
    assert s[1:][s[:-1]].mean() == pytest.approx(0.9, abs=0.03)
    gen = np.random.default_rng(5)
    np.testing.assert_array_equal(model.sample(10, gen), model.sample(10, np.random.default_rng(5)))


def test_sample_from_given_states_forgets_them_at_the_chains_pace():
    model = _model()
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


def test_no_slow_sample_fallbacks():
    x = _model().sample(500, random_state=2)
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


def test_model_views():
    model = fit_straggler_model(_model().sample(300, random_state=4), workers=[f"w{i}" for i in range(10)])
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
        _model().goodness_of_fit()
    with pytest.raises(ValueError, match="p_min"):
        model.slow_workers(p_min=1.0)
    with pytest.raises(ValueError, match="n_rounds"):
        model.sample(0)
    with pytest.raises(ValueError, match="p must be probabilities"):
        _model(p=np.full(10, 1.5))
    with pytest.raises(ValueError, match="one value per worker"):
        _model(shift=np.ones(3))


# ---------------------------------------------------------------------------
# input conversion


def _recorder_dataset(x: np.ndarray, names: list[str], *, round_keys: bool, seed: int = 0) -> xr.Dataset:
    """Shaped like the latency recorder's output, (worker, sample) with NaN / "" padding.

    Samples of a worker are shuffled (the round number must come from the
    key), 80 % declare units, and when ``round_keys`` each worker also ran an
    unrelated task and an erred retry of round 0, and the unknown worker
    ``""`` holds a sample: all three must be ignored.
    """
    rng = np.random.default_rng(seed)
    n_rounds, n_workers = x.shape
    shape = (n_workers + 1, n_rounds + 2)  # row 0: the unknown worker ""
    compute, units, start = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    key = np.full(shape, "", dtype=object)
    erred = np.zeros(shape, dtype=bool)
    for i in range(n_workers):
        r = i + 1
        rows = [t for t in range(n_rounds) if not np.isnan(x[t, i])]
        for t, c in zip(rows, rng.permutation(len(rows))):
            u = float(rng.integers(50, 200)) if rng.random() < 0.8 else np.nan  # NaN: unknown
            compute[r, c] = x[t, i] * (1.0 if np.isnan(u) else u)
            units[r, c] = u
            start[r, c] = 10.0 * t + 0.01 * i
            key[r, c] = str(("quorum-round-0a1b2c3d4e5f", t, i)) if round_keys else f"task-{t}-{i}"
        if round_keys:
            c = len(rows)
            compute[r, c], start[r, c], key[r, c] = 123.0, 5.0, str(("sum-abc", 0))
            compute[r, c + 1], start[r, c + 1], erred[r, c + 1] = 99.0, 1e9, True
            key[r, c + 1] = str(("quorum-round-0a1b2c3d4e5f", 0, i))
    if round_keys:
        compute[0, 0], start[0, 0], key[0, 0] = 50.0, 3e9, str(("quorum-round-ffffffffffff", 1, 0))
    dims = ("worker", "sample")
    return xr.Dataset(
        {
            "compute": (dims, compute),
            "units": (dims, units),
            "start": (dims, start),
            "key": (dims, key),
            "erred": (dims, erred),
        },
        coords={"worker": np.array(["", *names], dtype=str)},
    )


def test_inputs_give_the_same_model():
    names = [f"tcp://10.0.0.{i}:4000" for i in range(10)]
    x = _model().sample(200, random_state=21)
    x[5, 2] = x[17, 8] = x[60, 0] = np.nan
    reference = fit_straggler_model(x, workers=names)

    long = pd.DataFrame(
        [(names[i], t, x[t, i]) for i in range(10) for t in range(200) if not np.isnan(x[t, i])],
        columns=["worker", "round", "seconds"],
    ).sample(frac=1.0, random_state=0)
    from_long = fit_straggler_model(long)

    wide = pd.DataFrame(x, columns=names)
    ds_keys = _recorder_dataset(x, names, round_keys=True)
    # start-time order cannot see gaps: fill them for that path
    ds_start = _recorder_dataset(np.where(np.isnan(x), 1.0, x), names, round_keys=False)

    for other in (from_long, fit_straggler_model(wide), fit_straggler_model(ds_keys)):
        xr.testing.assert_allclose(other.to_dataset(), reference.to_dataset())
        assert not reference.changed(other, tol=0.0)
    filled = fit_straggler_model(np.where(np.isnan(x), 1.0, x), workers=names)
    xr.testing.assert_allclose(fit_straggler_model(ds_start).to_dataset(), filled.to_dataset())

    m, got = latency_matrix(ds_keys)
    assert got == names and m.shape == (200, 10)
    np.testing.assert_allclose(m, x)
    m, got = latency_matrix(long, workers=names[::-1])
    np.testing.assert_allclose(m, x[:, ::-1])


def test_persistence_steps_over_busy_rounds():
    # The engine gives no new task to a worker still busy with an earlier
    # round: a straggler reports one round in ten. Its successive tasks
    # carry the persistence, whatever the rounds in between.
    truth = _model()
    x = truth.sample(4000, random_state=8)
    sparse = x.copy()
    sparse[:, -2] = np.nan
    sparse[::10, -2] = x[:400, -2]  # w8's first 400 tasks, one per 10 rounds
    fitted = fit_straggler_model(sparse, workers=truth.workers)
    assert fitted.n_rounds[-2] == 400
    assert fitted.p_slow_slow[-2] == pytest.approx(truth.p_slow_slow[-2], abs=0.08)
    assert fitted.p_slow_fast[-2] == pytest.approx(truth.p_slow_fast[-2], abs=0.05)


def test_long_frame_aligns_by_round_number():
    df = pd.DataFrame(
        {
            "node": ["a", "a", "a", "b", "b"],
            "iteration": [0, 1, 3, 0, 3],
            "seconds": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    m, names = latency_matrix(df)
    assert names == ["a", "b"]
    np.testing.assert_array_equal(m, [[1, 4], [2, np.nan], [np.nan, np.nan], [3, 5]])


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


@needs_traces
def test_load_trace_matches_csv():
    df = load_trace(TRACES, "data7")
    assert list(df.columns) == ["node", "iteration", "seconds"]
    m, names = latency_matrix(df)
    assert m.shape == (32, 15) and len(names) == 15
    assert int(np.isnan(m).sum()) == 2  # two nodes lack the last iteration


GOOD = "trace,node,iteration,seconds\nt1,n0,0,1.0\nt1,n1,0,1.1\nt1,n0,1,1.2\nt1,n1,1,5.0\nt2,n0,0,2.0\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (GOOD + "t2,n1,0,2.1,9\n", "cannot read"),  # corrupt: extra field
        (GOOD + "t2,n1,0", "missing or non-numeric 'seconds' at line"),  # truncated mid-row
        (GOOD + "t2,n1,", "missing or non-numeric 'seconds' at line"),
        (GOOD.replace("1.2", "1.2x"), "non-numeric 'seconds'"),
        (GOOD.replace("1.2", "-1.2"), "negative"),
        (GOOD.replace("seconds", "secs"), r"lacks the column\(s\) \['seconds'\]"),
        (GOOD.replace(",1,1.2", ",1.5,1.2"), "non-negative integer"),
        ("", "cannot read"),
        (GOOD + "t1,n0,1,3.0\n", "repeats node 'n0' iteration 1"),
    ],
)
def test_load_trace_errors(tmp_path, text, match):
    path = tmp_path / "trace.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_trace(path, "t1")


def test_load_trace_unknown_trace(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text(GOOD)
    df = load_trace(path, "t1")
    assert df["seconds"].tolist() == [1.0, 1.2, 1.1, 5.0]
    with pytest.raises(ValueError, match=r"unknown trace 'data5'.*\['t1', 't2'\]"):
        load_trace(path, "data5")


def test_latency_matrix_errors():
    with pytest.raises(ValueError, match="2-D"):
        latency_matrix([1.0, 2.0])
    with pytest.raises(ValueError, match="numeric"):
        latency_matrix([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match="unknown worker"):
        latency_matrix(pd.DataFrame({"a": [1.0, 2.0]}), workers=["z"])
    with pytest.raises(ValueError, match="2 names for 3"):
        latency_matrix(np.ones((2, 3)), workers=["a", "b"])
    with pytest.raises(ValueError, match="several latencies"):
        latency_matrix(pd.DataFrame({"worker": ["a", "a"], "round": [0, 0], "seconds": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="2 traces"):
        two = {"trace": ["x", "y"], "node": ["a", "a"], "iteration": [0, 1], "seconds": [1.0, 2.0]}
        latency_matrix(pd.DataFrame(two))
    with pytest.raises(ValueError, match="'compute'"):
        latency_matrix(xr.Dataset({"start": (("worker", "sample"), np.zeros((2, 2)))}))
    with pytest.raises(ValueError, match="units must be positive"):
        dims = ("worker", "sample")
        latency_matrix(xr.Dataset({"compute": (dims, np.ones((2, 2))), "units": (dims, np.zeros((2, 2)))}))


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


# ---------------------------------------------------------------------------
# changed


def test_changed_detects_a_worker_turning_slow():
    truth = _model()
    before = fit_straggler_model(truth.sample(4000, random_state=100), workers=truth.workers)
    again = fit_straggler_model(truth.sample(4000, random_state=101), workers=truth.workers)
    assert not before.changed(again) and not again.changed(before)  # noise of the same model
    assert np.abs(before.p - again.p).max() < 3 * np.sqrt(before.p_stderr**2 + again.p_stderr**2).max()

    p_ss, p_sf = truth.p_slow_slow.copy(), truth.p_slow_fast.copy()
    p_ss[3], p_sf[3] = 0.9, 0.2  # w3 now slow two rounds out of three
    worse = _model(p_slow_slow=p_ss, p_slow_fast=p_sf)
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


def test_load_trace_keeps_node_names_as_text_and_rejects_extra_fields(tmp_path):
    good = tmp_path / "names.csv"
    good.write_text("trace,node,iteration,seconds\nt,01,0,1.0\nt,1,0,2.0\nt,01,1,1.0\nt,1,1,2.0\n")
    df = load_trace(good, "t")
    assert sorted(set(df["node"])) == ["01", "1"]
    shifted = tmp_path / "extra.csv"
    shifted.write_text("trace,node,iteration,seconds\ntoy,a,0,1,9\n")
    with pytest.raises(ValueError):
        load_trace(shifted, "a")
    with pytest.raises(ValueError):
        load_trace(shifted, "toy")
