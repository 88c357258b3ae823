"""Online adaptation on a real cluster: re-fit the model, re-encode, switch scheme."""

from __future__ import annotations

import itertools

import dask
import numpy as np
import pytest
from dask_quorum.pipeline.engine import (
    CodedSession,
    Forecast,
    OnlineAdapter,
    effective_units,
    initial_code,
    loads_moved,
    should_rechoose,
    smoothed_probs,
)
from dask_quorum.pipeline.engine import choose_code
from dask_quorum.pipeline.inject import (
    Slowdown,
    inject_stragglers,
    injection_log,
    remove_stragglers,
)
from dask_quorum.pipeline.stragglers import current_states, fit_straggler_model


def scaled(params, part):
    return params * part


def _run(session, adapter, n_rounds, parts):
    for _ in range(n_rounds):
        total = session.round(scaled, 1.0)
        adapter.after_round(len(session.records) - 1)
        # every round still decodes to (nearly) the true sum
        assert np.linalg.norm(total - np.sum(parts, axis=0)) <= 0.5 * np.linalg.norm(np.sum(parts, axis=0))


def _session(client, scheme):
    return CodedSession(
        client,
        scheme=scheme,
        redundancy=2,
        random_state=0,
        code_factory=lambda n: initial_code(scheme, n, 2, np.random.RandomState(0)),
    )


def _loads(code):
    return np.count_nonzero(code.B, axis=1)


def _exact_pairs(code):
    return [pair for pair in itertools.combinations(range(code.n_workers), 2) if code.is_exact(pair)]


def test_heterogeneous_moves_intermittent_stragglers_out_of_the_reliable_cover(client4):
    # Every task takes 20 ms more than its natural ~1 ms, so that timing noise
    # of an in-process cluster does not look like straggling.
    base = Slowdown(delay=0.02)
    with _session(client4, "heterogeneous") as s:
        parts = [np.full(3, float(j + 1)) for j in range(s.n_partitions)]
        s.place(parts, units=[100] * s.n_partitions)
        adapter = OnlineAdapter(s, scheme="heterogeneous", redundancy=2, random_state=0, every=5, window=30)
        assert len(set(_loads(s.code))) == 1  # equal loads while nothing is known
        # Two workers that hold the same partitions turn slow in about 60 % of
        # their tasks, independently: in a third of the rounds both straggle,
        # more than redundancy 2 tolerates, and the round waits for them.
        held = s.code.B != 0
        cover = next(p for p in itertools.combinations(range(4), 2) if (held[p[0]] == held[p[1]]).all())
        flaky = Slowdown(delay=0.2, p_slow_slow=0.7, p_slow_fast=0.5)
        slow = {s.workers[i] for i in cover}
        try:
            inject_stragglers(client4, {w: base for w in s.workers}, seed=0)
            _run(s, adapter, 10, parts)
            assert not adapter.switches  # nothing to gain
            inject_stragglers(client4, {w: (flaky if w in slow else base) for w in s.workers}, seed=0)
            _run(s, adapter, 40, parts)
            probs = smoothed_probs(adapter.model)
            reliable = sorted(set(range(4)) - set(cover))
            assert probs[list(cover)].min() > probs[reliable].max()
            assert any(r > 10 for r, _ in adapter.switches)
            # the two reliable workers now hold every partition and decode alone
            assert tuple(reliable) in _exact_pairs(s.code)
            # and, with this code kept for 40 more rounds, no round uses a task slowed down
            since = len(s.records)
            for _ in range(40):
                s.round(scaled, 1.0)
            slowed = {
                (rec.key[1], s.workers.index(w))
                for w, records in injection_log(client4).items()
                if w in slow
                for rec in records
                if rec.slow and isinstance(rec.key, tuple) and rec.key[1] >= since
            }
            assert slowed  # the flaky workers did straggle meanwhile
            for record in s.records[since:]:
                assert record.stop == "exact"
                assert not {(record.index, i) for i in record.responders} & slowed
            # recovered: the model forgets the slow rounds
            inject_stragglers(client4, {w: base for w in s.workers}, seed=0)
            _run(s, adapter, 45, parts)
        finally:
            remove_stragglers(client4)
        assert not slow & set(adapter.model.slow_workers())
        assert (smoothed_probs(adapter.model) < 0.2).all()
        # equal shares (r = 2) for all, in partitions of n / k of a share
        np.testing.assert_array_equal(_loads(s.code) * s.code.n_workers // s.code.n_partitions, 2)


def test_auto_starts_uniform_and_goes_synchronous_without_stragglers(client4):
    with _session(client4, "auto") as s:
        assert s.code.scheme == "frc"  # the best exact uniform code until a model exists
        parts = [np.ones(3)] * s.n_partitions
        s.place(parts, units=[100] * s.n_partitions)
        adapter = OnlineAdapter(s, scheme="auto", redundancy=2, random_state=0, every=5, window=20)
        # 20 ms tasks: an in-process cluster's millisecond jitter is not straggling
        inject_stragglers(client4, {w: Slowdown(delay=0.02) for w in s.workers}, seed=0)
        try:
            _run(s, adapter, 30, parts)
        finally:
            remove_stragglers(client4)
        # nobody straggles: redundancy is wasted work, sync is the cheapest of equals
        assert s.code.scheme == "sync"
        assert [scheme for _, scheme in adapter.switches] == ["sync"]
        # re-fits after 3 rounds, then every 5; the switch is checked 3 rounds after it is made
        (switched, _), refits = adapter.switches[0], adapter.refits
        assert refits[0] == 3 and switched <= 8
        assert {switched + 3, 13, 18, 23, 28} <= set(refits)


def test_re_fits_come_every_round_until_the_recorder_holds_a_model(client4):
    with dask.config.set({"quorum.adapt.first": 1}), _session(client4, "auto") as s:
        parts = [np.ones(3)] * s.n_partitions
        s.place(parts, units=[100] * s.n_partitions)
        adapter = OnlineAdapter(s, scheme="auto", redundancy=2, random_state=0, every=5, window=20)
        _run(s, adapter, 1, parts)
        # one round gives at most one latency per worker: too few for a model
        assert adapter.refits == [1] and adapter.model is None
        _run(s, adapter, 5, parts)
        # not at 6 (first + every) only: the next round tried again
        assert adapter.refits[:2] == [1, 2] and adapter.model is not None


def test_a_straggler_that_never_finished_a_task_is_in_the_model(client4):
    # Worker 1's first task outlasts every re-fit: the recorder has no
    # latency of it, but every round ended with it still running.
    with _session(client4, "heterogeneous") as s:
        parts = [np.ones(3)] * s.n_partitions
        s.place(parts, units=[100] * s.n_partitions)
        adapter = OnlineAdapter(s, scheme="heterogeneous", redundancy=2, random_state=0, every=4, window=20)
        inject_stragglers(
            client4, {w: Slowdown(delay=5.0 if i == 1 else 0.02) for i, w in enumerate(s.workers)}, seed=0
        )
        try:
            _run(s, adapter, 8, parts)
        finally:
            remove_stragglers(client4)
        assert all(1 in {i for i, *_ in r.pending} for r in s.records)
        model = adapter.model
        assert model is not None and model.n_rounds[1] >= 4
        assert model.slow_workers() == [s.workers[1]]
        assert adapter._states.tolist() == [False, True, False, False]


def _straggler_under_sync(client, quiet_rounds, slow_rounds):
    """auto on 20 ms tasks (re-fits at 3 and 23 only) for ``quiet_rounds``, and on until it is in
    sync (round 3; a round later when a task outlasted the wait for busy workers), then worker 1
    10x slow (+0.3 s) for ``slow_rounds``; the session and adapter."""
    with dask.config.set({"quorum.adapt.first": 3}), _session(client, "auto") as s:
        parts = [np.ones(3)] * s.n_partitions
        s.place(parts, units=[100] * s.n_partitions)
        adapter = OnlineAdapter(s, scheme="auto", redundancy=2, random_state=0, every=20, window=30)
        base = Slowdown(delay=0.02)
        try:
            inject_stragglers(client, {w: base for w in s.workers}, seed=0)
            _run(s, adapter, quiet_rounds, parts)
            while s.code.scheme != "sync" and len(s.records) < quiet_rounds + 2:
                _run(s, adapter, 1, parts)
            assert s.code.scheme == "sync" and adapter.switches in ([(3, "sync")], [(4, "sync")])
            slow = Slowdown(factor=10, delay=0.3)
            inject_stragglers(client, {w: (slow if i == 1 else base) for i, w in enumerate(s.workers)}, seed=0)
            _run(s, adapter, slow_rounds, parts)
        finally:
            remove_stragglers(client)
    return s, adapter


def test_auto_leaves_sync_one_slow_round_after_a_straggler_appears(client4):
    # The switch between the scheduled re-fits comes from the slow round itself.
    s, adapter = _straggler_under_sync(client4, 10, 10)
    (synced, first), (when, scheme) = adapter.switches
    assert first == "sync" and scheme != "sync" and 10 < when <= 13
    assert any(10 < r < 23 and r != synced + 3 for r in adapter.refits)  # not a scheduled one
    # after the switch, rounds no longer wait for the straggler
    assert not any(1 in r.responders for r in s.records[when + 1 :])


def test_a_code_slow_from_its_first_round_is_judged_against_the_rounds_before_it(client4):
    # The straggler appears just as auto switches to sync (round 3): every sync
    # round waits for it, so only the rounds before the switch show it is slow.
    s, adapter = _straggler_under_sync(client4, 3, 6)
    synced = adapter.switches[0][0]
    assert synced + 1 in adapter.refits  # after the first slow sync round, before the check 3 rounds on
    assert s.code.scheme != "sync"


def test_auto_does_not_switch_to_sync_while_a_worker_runs_a_long_task(client4):
    # Worker 1's tasks from round 3 on run 2 s. At the re-fit after round 3 the first has run
    # one round: the model has no slow sample of it and prefers sync, whose next
    # round would wait the rest of those 2 s.
    with dask.config.set({"quorum.adapt.first": 3}), _session(client4, "auto") as s:
        parts = [np.ones(3)] * s.n_partitions
        s.place(parts, units=[100] * s.n_partitions)
        adapter = OnlineAdapter(s, scheme="auto", redundancy=2, random_state=0, every=20, window=30)
        base, long = Slowdown(delay=0.02), Slowdown(delay=2.0)
        try:
            inject_stragglers(client4, {w: base for w in s.workers}, seed=0)
            _run(s, adapter, 2, parts)
            inject_stragglers(client4, {w: (long if i == 1 else base) for i, w in enumerate(s.workers)}, seed=0)
            assert s.busy_workers(wait=5.0) == []  # worker 1 takes round 3's task at its start
            _run(s, adapter, 1, parts)
            assert s.busy_workers() == [s.workers[1]]
            _run(s, adapter, 3, parts)
        finally:
            remove_stragglers(client4)
        assert adapter.model is not None and {3, 4} <= set(adapter.refits)  # 4: the re-check
        assert "sync" not in [scheme for _, scheme in adapter.switches]
        # no round waited for the 2 s task: worker 1 answered none after round 3 (a sync round needs it)
        assert not any(1 in r.responders for r in s.records[3:])


def test_auto_keeps_a_coded_scheme_under_a_persistent_straggler(client4):
    with _session(client4, "auto") as s:
        parts = [np.ones(3)] * s.n_partitions
        s.place(parts, units=[100] * s.n_partitions)
        adapter = OnlineAdapter(s, scheme="auto", redundancy=2, random_state=0, every=5, window=20)
        inject_stragglers(client4, {s.workers[1]: Slowdown(factor=10, delay=0.1)}, seed=0)
        try:
            _run(s, adapter, 15, parts)
        finally:
            remove_stragglers(client4)
        assert s.code.scheme in {"frc", "cyclic", "heterogeneous"}
        assert "sync" not in [scheme for _, scheme in adapter.switches]
        # no round waited for the straggler: redundancy 2 ignores one worker from the start
        assert np.mean([1 in r.responders for r in s.records]) < 0.3


def _r2_model(n_slow=4, n=16, rounds=40, seed=1):
    """A model fitted on latencies of the r=2 scenario: the last ``n_slow`` of ``n`` 10x slow, P(slow|slow)=0.9."""
    from dask_quorum.pipeline.stragglers import (
        StragglerModel,
        current_states,
        fit_straggler_model,
    )

    slow = np.arange(n) >= n - n_slow
    true = StragglerModel(
        workers=[f"w{i:02d}" for i in range(n)], p=np.where(slow, 0.75, 0.0),
        p_slow_slow=np.where(slow, 0.9, 0.0), p_slow_fast=np.where(slow, 0.3, 0.0),
        shift=np.full(n, 1.0), rate=np.full(n, 20.0), slow_shift=np.full(n, 10.0), slow_rate=np.full(n, 2.0),
        slowdown=np.where(slow, 10.0, 1.0), n_rounds=np.full(n, rounds),
    )
    x = true.sample(rounds, random_state=seed)
    model = fit_straggler_model(x, workers=true.workers)
    return true, model, current_states(x, workers=true.workers, threshold=model.threshold)


@pytest.mark.parametrize(("n", "r", "scheme"), [(16, 2, "frc"), (15, 2, "cyclic"), (16, 5, "cyclic"), (6, 3, "frc"), (4, 1, "sync")])
def test_initial_code_is_the_best_exact_uniform_code(n, r, scheme):
    from dask_quorum.pipeline.coding import make_code

    for adaptive in ("heterogeneous", "auto"):
        code = initial_code(adaptive, n, r, np.random.RandomState(0))
        assert code.scheme == scheme and code.exact and code.n_stragglers == (r - 1)
        np.testing.assert_array_equal(code.B, make_code(scheme, n, redundancy=r).B)
        np.testing.assert_array_equal(np.count_nonzero(code.B, axis=1), r)  # equal loads
    assert initial_code("auto", 3, 5, 0).redundancy == 3  # capped after workers are lost


def test_both_adaptive_schemes_pick_heterogeneous_on_the_redundancy_2_scenario():
    from dask_quorum.pipeline.planning import simulate

    true, model, states = _r2_model()
    current = initial_code("auto", 16, 2, 0)
    rounds = true.sample(300, random_state=7)
    for scheme in ("auto", "heterogeneous"):
        code = choose_code(scheme, model, states, redundancy=2, horizon=10, current=current, random_state=0)
        assert code is not None and code.scheme == "heterogeneous" and code.exact
        fast = list(range(12))
        assert code.is_exact(fast)  # decodes from the 12 fast workers alone
        # and from most of them minus one: 8 of the 12 may be late alone
        assert sum(code.is_exact([f for f in fast if f != d]) for d in fast) == 8
        het, uniform = simulate(code, rounds).mean_time, simulate(current, rounds).mean_time
        assert het < uniform / 5
    # with enough redundancy for the stragglers (r = slow + 1) the uniform code is kept
    assert choose_code("heterogeneous", model, states, redundancy=5, horizon=10,
                       current=initial_code("heterogeneous", 16, 5, 0), random_state=0) is None


def test_auto_stays_uniform_or_synchronous_without_stragglers():
    _, model, states = _r2_model(n_slow=0)
    current = initial_code("auto", 16, 2, 0)
    code = choose_code("auto", model, states, redundancy=2, horizon=10, current=current, random_state=0)
    assert code is not None and code.scheme == "sync"
    assert choose_code("heterogeneous", model, states, redundancy=2, horizon=10, current=current,
                       random_state=0) is None
    with pytest.raises(ValueError, match="scheme"):
        choose_code("cyclic", model, states, redundancy=2, horizon=10, current=current)


def test_auto_keeps_redundancy_for_a_straggler_caught_in_its_first_slow_task():
    # Round 3 of trace data2: worker 4 turned 12x slow in round 1 and is still
    # busy with that task, 2.2x the typical latency so far. The bound alone
    # makes it look 2x slow, sync's rounds cheap; as a straggler not yet
    # measured (censored_slowdown) it keeps auto on a code that ignores it.
    rng = np.random.default_rng(0)
    x = 1.0 + rng.normal(0, 0.03, size=(3, 15))
    x[1:, 4] = np.nan
    censored = np.full(x.shape, np.nan)
    censored[1:, 4] = [1.05, 2.2]
    states = current_states(x, censored=censored)
    assert states[4] and states.sum() == 1
    current = initial_code("auto", 15, 2, 0)
    picks = {}
    for slowdown in (1.0, 10.0):
        model = fit_straggler_model(x, censored=censored, censored_slowdown=slowdown)
        code = choose_code("auto", model, states, redundancy=2, horizon=10, current=current, random_state=0)
        picks[slowdown] = current if code is None else code
    assert picks[1.0].scheme == "sync"  # what auto did before
    assert picks[10.0].scheme != "sync"
    assert picks[10.0].is_exact([i for i in range(15) if i != 4])


def test_heterogeneous_rotates_an_approximate_code_so_rounds_average_to_the_true_sum(client4):
    # Redundancy 1: nothing covers the straggler's partitions; waiting for it
    # costs a second a round, so the code decodes from the three others and
    # rotates every round (move_budget=1), unbiased over a period of 4 rounds.
    with CodedSession(client4, scheme="heterogeneous", redundancy=1, random_state=0,
                      code_factory=lambda n: initial_code("heterogeneous", n, 1, 0)) as s:
        parts = [np.full(3, float(j + 1)) ** 2 for j in range(s.n_partitions)]
        s.place(parts, units=[100] * s.n_partitions)
        adapter = OnlineAdapter(s, scheme="heterogeneous", redundancy=1, random_state=0, every=5,
                                window=20, move_budget=1.0)
        slow = s.workers[2]
        inject_stragglers(client4, {w: Slowdown(delay=1.0 if w == slow else 0.02) for w in s.workers}, seed=0)
        totals = []
        try:
            for _ in range(12):
                totals.append(s.round(scaled, 1.0))
                adapter.after_round(len(s.records) - 1)
        finally:
            remove_stragglers(client4)
        assert adapter.rotation is not None and adapter.rotation.hold == 1 and adapter.rotation.period == 4
        start = adapter.switches[0][0]
        assert start + 4 <= 12
        code = adapter.rotation.base
        assert not code.exact and code.unbiased and code.min_responders == 3
        period = s.records[start : start + 4]
        assert all(s.workers.index(slow) not in r.responders for r in period)
        assert all(r.decode_error > 0 for r in period)  # every round approximate ...
        np.testing.assert_allclose(  # ... and their mean is the true sum
            np.mean(totals[start : start + 4], axis=0), np.sum(parts, axis=0), rtol=1e-12
        )


def test_forecast_restarts_every_horizon_from_the_current_states():
    from dask_quorum.pipeline.stragglers import fit_straggler_model

    rng = np.random.default_rng(0)
    x = 1e-5 * (1 + 0.05 * rng.random((3, 6)))
    x[:, 4] *= 12  # three rounds, worker 4 slow in all of them
    model = fit_straggler_model(x)
    assert model.p_stationary[4] < 0.5  # the prior still dominates its chain
    start = np.arange(6) == 4
    forecast = Forecast(model, start, horizon=5)
    assert forecast.workers == model.workers and forecast.p is model.p
    latencies = forecast.sample(23, random_state=1)
    assert latencies.shape == (23, 6)
    np.testing.assert_array_equal(latencies, forecast.sample(23, random_state=1))
    # every run of five rounds starts with worker 4 slow and the others fast
    slow = latencies > 2 * np.median(latencies, axis=1, keepdims=True)
    np.testing.assert_array_equal(slow[::5], np.broadcast_to(start, slow[::5].shape))
    assert slow[:, 4].mean() > 0.5


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_effective_units_add_the_fixed_cost_in_units():
    # compute = 10 ms + 1 ms per unit: a task counts as units + 10
    rng = np.random.default_rng(0)
    units = rng.integers(1, 5, 300).astype(float)
    compute = 0.010 + 0.001 * units
    np.testing.assert_allclose(effective_units(compute, units), units + 10)
    # nearly one load: scipy's confidence interval is undefined, the slope is not
    units = np.r_[np.full(1000, 2.0), [1.0]]
    np.testing.assert_allclose(effective_units(0.010 + 0.001 * units, units), units + 10)
    flat = np.full(500, 2.0)
    np.testing.assert_array_equal(effective_units(0.01 + 0.001 * flat, flat), flat)
    # time that the load does not explain: every task is one unit
    np.testing.assert_array_equal(effective_units(0.01 - 0.001 * units, units), np.ones_like(units))
    assert np.isnan(effective_units(np.r_[0.01, np.nan], np.r_[1.0, np.nan])[1])


def test_smoothed_probs_shrink_sparse_workers_to_the_cluster_rate():
    from types import SimpleNamespace

    # worker 2 was seen in 2 rounds only (busy), never slow; worker 3 once slow in 15
    model = SimpleNamespace(p=np.array([0.0, 0.0, 0.0, 1 / 15]), n_rounds=np.array([15, 15, 2, 15]))
    probs = smoothed_probs(model)
    assert probs[0] == probs[1] == probs[2] == pytest.approx(0.05)  # floor, not pushed toward 1/2
    assert 0.05 <= probs[3] < 0.1  # one slow round does not make a straggler
    slow = SimpleNamespace(p=np.array([0.0, 1.0]), n_rounds=np.array([20, 3]))
    assert smoothed_probs(slow)[1] > 0.5


def test_a_code_is_rechosen_when_loads_or_current_states_moved():
    probs = np.array([0.05, 0.05, 0.05, 0.6])
    calm = np.array([False, False, False, True])
    assert should_rechoose(None, probs, calm, 1.5)  # nothing chosen yet
    chosen = (probs, calm)
    assert not should_rechoose(chosen, probs + 0.005, calm.copy(), 1.5)
    assert should_rechoose(chosen, np.array([0.05, 0.3, 0.05, 0.6]), calm, 1.5)  # a load moved
    # a hiccup slowed workers 0 and 1 for a round when the code was chosen: they are fast again
    hiccup = np.array([True, True, False, True])
    assert should_rechoose((probs, hiccup), probs, calm, 1.5)
    assert should_rechoose(chosen, probs[:3], calm[:3], 1.5)  # the session's workers changed


def test_loads_moved_is_a_factor_on_the_ideal_load():
    base = np.array([0.05, 0.05, 0.05])
    assert not loads_moved(base, np.array([0.05, 0.06, 0.05]), 1.5)  # noise
    assert loads_moved(base, np.array([0.05, 0.3, 0.05]), 1.5)  # turned slow
    assert loads_moved(np.array([0.05, 0.24, 0.05]), base, 1.5)  # recovered


def test_adapter_rejects_static_schemes(client4):
    with CodedSession(client4, scheme="cyclic", redundancy=2) as s:
        s.place([np.ones(2)] * s.n_partitions)
        with pytest.raises(ValueError, match="heterogeneous"):
            OnlineAdapter(s, scheme="cyclic", redundancy=2, random_state=0)
    with pytest.raises(ValueError, match="auto"):
        initial_code("cyclic", 4, 2, None)


@pytest.mark.parametrize("scheme", ["auto", "heterogeneous"])
def test_estimators_fit_with_adaptive_schemes(client4, scheme):
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import scale

    from dask_quorum import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True)
    X = scale(X)
    ref = LogisticRegression(scheme="sync", tol=1e-8, max_iter=500).fit(X, y)
    est = LogisticRegression(scheme=scheme, tol=1e-8, max_iter=500, random_state=0).fit(X, y)
    assert est.history_.attrs["scheme"] == scheme
    assert set(est.history_["scheme"].values) <= {"sync", "frc", "cyclic", "heterogeneous"}
    f = lambda m: m.history_["loss"].values.min()
    assert f(est) == pytest.approx(f(ref), rel=1e-4)


def test_choose_code_keeps_to_the_workers_memory():
    true, model, states = _r2_model()
    current = initial_code("heterogeneous", 16, 2, 0)
    free = choose_code("heterogeneous", model, states, redundancy=2, horizon=10, current=current,
                       n_partitions=48, random_state=0)
    assert free is not None
    bounded = choose_code("heterogeneous", model, states, redundancy=2, horizon=10, current=current,
                          n_partitions=48, random_state=0, load_limit=7)
    assert bounded is not None and _loads(bounded).max() <= 7 and bounded.is_exact(list(range(12)))
    # nothing fits 2 placed partitions per worker (redundancy 2 needs 6 of 48 on average): keep the code
    for scheme in ("heterogeneous", "auto"):
        assert choose_code(scheme, model, states, redundancy=2, horizon=10, current=current,
                           n_partitions=48, random_state=0, load_limit=2) is None
