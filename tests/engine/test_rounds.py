"""The engine on a real cluster: placement, coded rounds, stragglers, leaks."""

from __future__ import annotations


import numpy as np
import pytest
import dask

from dask_quorum.pipeline.coding import make_code
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers
from dask_quorum.pipeline.engine import ROUND_PREFIX, RoundTimeoutError
from dask_quorum.pipeline.engine import CodedSession
from dask_quorum.pipeline.cluster import scheduler_workers


def scaled(params, part):
    """A partial result: the partition's vector times a scalar parameter."""
    return params * part


def failing(params, part):
    raise ZeroDivisionError("boom in a partition")


def _parts(k, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=d) for _ in range(k)]


@pytest.mark.parametrize("scheme", ["sync", "frc", "cyclic"])
def test_exact_schemes_decode_the_sum(client4, scheme):
    with CodedSession(client4, scheme=scheme, redundancy=2, random_state=0) as s:
        parts = _parts(s.n_partitions)
        s.place(parts)
        for t in range(3):
            total = s.round(scaled, 2.0 + t)
            np.testing.assert_allclose(total, (2.0 + t) * np.sum(parts, axis=0), rtol=1e-9)
        assert [r.stop for r in s.records] == ["exact"] * 3
        assert all(r.decode_error <= 1e-10 for r in s.records)


def test_large_parameters_are_scattered_once_per_round(client4):
    with dask.config.set({"quorum.params-inline-limit": "1 B"}):
        with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=0) as s:
            parts = _parts(s.n_partitions)
            s.place(parts)
            params = np.full(5, 3.0)
            np.testing.assert_allclose(s.round(scaled, params), 3.0 * np.sum(parts, axis=0))
            assert s._runner.inline_limit == 1


@pytest.mark.parametrize("scheme", ["uncoded", "expander"])
def test_approximate_schemes_stop_at_the_quorum(client4, scheme):
    with CodedSession(client4, scheme=scheme, redundancy=2, random_state=0) as s:
        parts = _parts(s.n_partitions)
        s.place(parts)
        s.round(scaled, 1.0)
        (rec,) = s.records
        assert len(rec.responders) <= s.code.min_responders
        assert rec.stop in {"quorum", "exact"}
        assert rec.decode_error == pytest.approx(s.code.error(list(rec.responders)))


def test_each_replica_has_its_own_key_and_survives_the_amm(client4):
    with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=0) as s:
        s.place(_parts(s.n_partitions))
        keys = [f.key for f in s._placement.replicas.values()]
        assert len(set(keys)) == int(np.count_nonzero(s.code.B))

        def run_amm_and_locate(dask_scheduler, keys=keys):
            dask_scheduler.extensions["amm"].run_once()
            return {k: sorted(ws.address for ws in dask_scheduler.tasks[k].who_has) for k in keys}

        located = client4.run_on_scheduler(run_amm_and_locate)
        expected = {f.key: [s.workers[i]] for (i, _), f in s._placement.replicas.items()}
        assert located == expected


def test_a_straggler_does_not_stall_later_rounds(client4):
    workers = sorted(scheduler_workers(client4))
    slow = workers[0]
    inject_stragglers(client4, {slow: Slowdown(delay=3.0)}, seed=0)
    try:
        with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=0) as s:
            parts = _parts(s.n_partitions)
            s.place(parts)
            for _ in range(4):
                total = s.round(scaled, 1.0)
                np.testing.assert_allclose(total, np.sum(parts, axis=0), rtol=1e-9)
            slow_index = s.workers.index(slow)
            assert all(slow_index not in r.responders for r in s.records)
            # It got the first round's task only: every later round saw it busy
            # instead of queueing more work behind the running one.
            assert all(slow_index in r.busy for r in s.records[1:])
            assert all(r.stop == "exact" for r in s.records)
    finally:
        remove_stragglers(client4)


def test_sync_waits_for_everyone_and_times_out_with_the_names(client4):
    workers = sorted(scheduler_workers(client4))
    inject_stragglers(client4, {workers[1]: Slowdown(delay=5.0)}, seed=0)
    try:
        with dask.config.set({"quorum.round-timeout": "1s"}):
            with CodedSession(client4, scheme="sync", redundancy=1) as s:
                s.place(_parts(s.n_partitions))
                with pytest.raises(RoundTimeoutError, match=workers[1]):
                    s.round(scaled, 1.0)
    finally:
        remove_stragglers(client4)


def test_the_soft_deadline_stops_with_what_has_arrived(client4):
    workers = sorted(scheduler_workers(client4))
    inject_stragglers(client4, {w: Slowdown(delay=3.0) for w in workers[:2]}, seed=0)
    try:
        with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=0, deadline=0.3) as s:
            s.place(_parts(s.n_partitions))
            s.round(scaled, 1.0)
            (rec,) = s.records
            assert rec.stop == "deadline"
            assert set(rec.responders) == {2, 3}
            assert rec.decode_error > 0
    finally:
        remove_stragglers(client4)


def test_a_failing_task_raises_its_error(client4):
    with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=0) as s:
        s.place(_parts(s.n_partitions))
        with pytest.raises(ZeroDivisionError, match="boom"):
            s.round(failing, 1.0)


def test_reencode_moves_only_the_replicas_that_change(client4):
    with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=0) as s:
        parts = _parts(s.n_partitions)
        s.place(parts)
        s.round(scaled, 1.0)
        kept = dict(s._placement.replicas)
        frc = make_code("frc", 4, redundancy=2)
        moved = s.reencode(frc)
        new_pairs = {(i, int(j)) for i in range(4) for j in np.flatnonzero(frc.B[i])}
        assert set(s._placement.replicas) == new_pairs
        assert moved == len(new_pairs - set(kept))
        for pair in new_pairs & set(kept):
            assert s._placement.replicas[pair] is kept[pair]
        np.testing.assert_allclose(s.round(scaled, 2.0), 2.0 * np.sum(parts, axis=0), rtol=1e-9)
        assert s.records[-1].stop == "exact"
        with pytest.raises(ValueError, match="workers"):
            s.reencode(make_code("sync", 3))


def test_round_tasks_declare_their_units_to_the_recorder(client4):
    from dask_quorum.pipeline.recorder import attach, latencies

    attach(client4)
    with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=0) as s:
        s.place(_parts(s.n_partitions), units=[10, 20, 30, 40])
        s.round(scaled, 1.0)
        token = s.token
        expected = {s.workers[i]: s._placement.units(i) for i in range(4)}
    ds = latencies(client4)
    ours = ds["prefix"] == ROUND_PREFIX
    got = {}
    for w in ds["worker"].values:
        sel = ds.sel(worker=w)
        for key, units, mine in zip(sel["key"].values, sel["units"].values, ours.sel(worker=w).values):
            if mine and token in key:
                got[w] = units
    # cyclic, n=4, r=2: worker i reads partitions i and i+1
    assert [expected[w] for w in s.workers] == [30.0, 50.0, 70.0, 50.0]
    assert len(got) >= s.code.min_responders
    assert got == {w: expected[w] for w in got}


def test_session_needs_enter_and_place(client4):
    s = CodedSession(client4, scheme="sync", redundancy=1)
    with pytest.raises(RuntimeError, match="enter"):
        s.place([])
    with s:
        with pytest.raises(RuntimeError, match="place"):
            s.round(scaled, 1.0)
        with pytest.raises(ValueError, match="partitions"):
            s.place(_parts(s.n_partitions + 1))


def test_make_code_is_what_the_session_uses(client4):
    with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=3) as s:
        np.testing.assert_array_equal(s.code.B, make_code("cyclic", 4, redundancy=2, random_state=3).B)
