"""Tests of dask_quorum.pipeline.engine.rounds on a real cluster: rounds, stragglers, leaks.

The rounds run through a CodedSession (which builds the RoundRunner).
"""

from __future__ import annotations

import operator
import time

import dask
import numpy as np
import pytest
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.engine import ROUND_PREFIX, CodedSession, RoundTimeoutError
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers
from distributed import Client, LocalCluster


def scaled(params, part):
    """A partial result: the partition's vector times a scalar parameter."""
    return params * part


def failing(params, part):
    raise ZeroDivisionError("boom in a partition")


def _parts(k, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=d) for _ in range(k)]


def _sorted_workers(client) -> list[str]:
    return sorted(scheduler_workers(client))


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
            # Each record says how long its task had been running when the
            # round ended, and on how many units: the straggler model's
            # lower bound of its latency. The bound grows round by round.
            ran = []
            for r in s.records:
                (entry,) = [p for p in r.pending if p[0] == slow_index]
                assert entry[2] == s._placement.units(slow_index)
                ran.append(entry[1])
            assert np.all(np.diff(ran) > 0) and 0 < ran[-1] < 3.0
            assert [r.task_round for r in s.records] == [0, 1, 2, 3]
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


# --------------------------------------------------------------------------- soak


def _worker_state(client) -> dict[str, tuple[int, int]]:
    def count(dask_worker):
        return len(dask_worker.data), len(dask_worker.state.tasks)

    return client.run(count)


def _recorder_sizes(client) -> tuple[int, int, int, int]:
    def sizes(dask_scheduler):
        plugin = dask_scheduler.plugins["quorum-latency-recorder"]
        return len(plugin), plugin.capacity, len(plugin._entered), len(plugin.membership)

    return client.run_on_scheduler(sizes)


@pytest.fixture
def client2():
    """Two in-process workers: the cheapest rounds (about 5 ms of scheduling per worker)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster, set_as_default=False) as client:
            yield client


def test_soak_1000_rounds_with_stragglers_returns_to_baseline(client2):
    """Tiny rounds with injected stragglers: nothing accumulates on the cluster or the client."""
    from dask_quorum.pipeline.recorder import LatencyRecorder

    client = client2
    client.register_plugin(LatencyRecorder(capacity=500))
    workers = _sorted_workers(client)
    n_tasks = lambda: client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
    baseline = (n_tasks(), _worker_state(client), len(client.futures))
    inject_stragglers(
        client,
        {
            workers[0]: Slowdown(delay=0.02, p_slow_slow=0.6, p_slow_fast=0.1),
            workers[1]: Slowdown(delay=0.05, p_slow_slow=0.3, p_slow_fast=0.05),
        },
        seed=1,
    )
    try:
        with CodedSession(client, scheme="cyclic", redundancy=2, random_state=0) as s:
            parts = _parts(s.n_partitions, d=3)
            s.place(parts)
            want = np.sum(parts, axis=0)
            peak = 0
            for t in range(1000):  # 2000 tasks: the recorder's ring wraps four times
                total = s.round(operator.mul, 1.0)
                if t % 125 == 0:
                    np.testing.assert_allclose(total, want, rtol=1e-9)
                    peak = max(peak, n_tasks())
                    rows, capacity, processing, _ = _recorder_sizes(client)
                    assert rows <= capacity == 500 and processing <= len(workers)
            # replicas + one round task per worker + results fetched or in flight
            assert peak <= int(np.count_nonzero(s.placed_code.B)) + 3 * len(workers)
            assert all(r.stop == "exact" for r in s.records)
            assert sum(bool(r.busy) for r in s.records) > 25  # the stragglers did straggle
            assert not s.events  # and were never taken for lost workers
    finally:
        remove_stragglers(client)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if (n_tasks(), _worker_state(client), len(client.futures)) == baseline:
            break
        time.sleep(0.1)
    assert (n_tasks(), _worker_state(client), len(client.futures)) == baseline
    rows, capacity, processing, membership = _recorder_sizes(client)
    assert rows == capacity == 500 and processing == 0 and membership <= 500
