"""Faults on a real multi-process cluster: killed, hung and joining workers,
losses beyond what the code tolerates, a lost client or scheduler (the
session, its membership checks and re-planning, end to end).

The cluster is ``dask scheduler`` + ``dask worker --no-nanny`` processes
(:class:`~dask_quorum.pipeline.cluster.SubprocessCluster`): a
worker killed with SIGKILL stays dead, one stopped with SIGSTOP hangs. The
cluster is shared by the module; every test first tops it up to the workers
it needs.
"""

from __future__ import annotations

import operator
import signal
import threading
import time
import warnings

import dask
import numpy as np
import pytest
from dask_quorum.pipeline.cluster import SubprocessCluster, scheduler_workers
from dask_quorum.pipeline.engine import (
    ROUND_PREFIX,
    CodedSession,
    SchedulerLostError,
    WorkersLostError,
)
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers
from dask_quorum.pipeline.recorder import latencies
from sklearn.datasets import make_classification

from dask_quorum import LogisticRegression

#: Fault detection settings for the tests: quick, but far above the 0.5 s
#: heartbeat interval of a small cluster.
FAST_FAULTS = {
    "quorum.faults.missed-rounds": 3,
    "quorum.faults.heartbeat-timeout": "2s",
    "quorum.faults.check-interval": "250ms",
    "quorum.round-timeout": "60s",
}


class Clusters:
    """The module's subprocess cluster, restarted if a test killed its scheduler."""

    def __init__(self) -> None:
        self.cluster: SubprocessCluster | None = None

    def ensure(self, n_workers: int) -> SubprocessCluster:
        if self.cluster is not None and self.cluster.scheduler.poll() is not None:
            self.cluster.close()
            self.cluster = None
        if self.cluster is None:
            self.cluster = SubprocessCluster(n_workers, timeout=60)
            return self.cluster
        alive = [n for n, p in self.cluster.workers.items() if p.poll() is None]
        if len(alive) < n_workers:
            self.cluster.add_workers(n_workers - len(alive))
        return self.cluster


@pytest.fixture(scope="module")
def clusters():
    holder = Clusters()
    yield holder
    if holder.cluster is not None:
        holder.cluster.close()


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=1000, n_features=10, n_informative=5, random_state=0)
    return X * np.logspace(0, 0.7, 10), y


def _fit(client, X, y, scheme="cyclic"):
    clf = LogisticRegression(scheme=scheme, redundancy=2, max_iter=300, tol=1e-9, random_state=0, client=client)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning would not change the comparison
        clf.fit(X, y)
    return clf


@pytest.fixture(scope="module")
def reference(clusters, data):
    """The clean run's final loss (also loads the fit's modules into every worker)."""
    cluster = clusters.ensure(4)
    with cluster.client() as client:
        return float(_fit(client, *data).history_["loss"][-1])


def _names(client) -> dict[str, str]:
    return {a: info["name"] for a, info in scheduler_workers(client).items()}


def _cursor(client) -> int:
    """Tasks the latency recorder has seen finish (it is preloaded on the scheduler)."""
    return latencies(client, since=2**62).attrs["cursor"]


def _after_tasks(client, n: int, action, timeout: float = 60) -> threading.Thread:
    """Run ``action()`` in a thread once ``n`` more tasks have finished on the cluster."""
    start = _cursor(client)

    def watch():
        deadline = time.monotonic() + timeout
        while _cursor(client) < start + n and time.monotonic() < deadline:
            time.sleep(0.02)
        action()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _wait_gone(client, address: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while address in scheduler_workers(client) and time.monotonic() < deadline:
        time.sleep(0.05)


def _sorted_workers(client) -> list[str]:
    return sorted(scheduler_workers(client))


def _kill_during_fit(cluster, client, after_tasks: int, X, y):
    """SIGKILL the second worker once ``after_tasks`` tasks ran, during a fit; ``(victim, history_)``."""
    victim = _sorted_workers(client)[1]
    name = _names(client)[victim]
    killer = _after_tasks(client, after_tasks, lambda: cluster.signal(name, signal.SIGKILL))
    clf = _fit(client, X, y)
    killer.join(10)
    return victim, clf.history_


def test_a_worker_killed_mid_fit_is_dropped_and_the_fit_reaches_the_clean_loss(clusters, data, reference):
    cluster = clusters.ensure(4)
    with cluster.client() as client, dask.config.set(FAST_FAULTS):
        victim, history = _kill_during_fit(cluster, client, 20, *data)
        assert history.attrs["lost_workers"] == [victim]
        assert float(history["loss"][-1]) == pytest.approx(reference, rel=1e-3)
        member = history["member"].sel(worker=victim).values
        first_without = int(np.argmin(member))
        assert member[:first_without].all() and not member[first_without:].any() and first_without > 0
        # after the loss it never answers; the others decode exactly every round
        assert not history["responded"].sel(worker=victim).values[first_without:].any()
        assert (history["decode_error"].values <= 1e-10).all()
        assert "left the cluster" in history.attrs["membership"]
        # the latency recorder saw the scheduler remove it and the fit drop it
        events = {(action, worker) for _, action, worker, _ in latencies(client).attrs["membership"]}
        assert {("remove-worker", victim), ("lost", victim)} <= events


def test_a_worker_killed_mid_fit_on_dask_input_is_rebuilt_on_the_workers(clusters, data, reference):
    """The same kill with the rows in a dask array: its partitions are copied from the
    survivors' replicas (never from the driver) and the fit reaches the clean loss."""
    import dask.array as da

    X, y = data
    cluster = clusters.ensure(4)
    with cluster.client() as client, dask.config.set(FAST_FAULTS):
        Xd = da.from_array(X, chunks=((130, 370, 77, 423), (10,)))
        yd = da.from_array(y, chunks=250)
        # validating and partitioning take some tens of tasks: kill during the rounds
        victim, history = _kill_during_fit(cluster, client, 150, Xd, yd)
        assert history.attrs["lost_workers"] == [victim]
        assert float(history["loss"][-1]) == pytest.approx(reference, rel=1e-3)
        member = history["member"].sel(worker=victim).values
        first_without = int(np.argmin(member))
        assert first_without > 0 and not member[first_without:].any(), f"lost before round 1: {member[:5]}"
        assert (history["decode_error"].values <= 1e-10).all()


def test_a_hung_worker_is_a_straggler_then_lost_and_the_fit_reaches_the_clean_loss(clusters, data, reference):
    cluster = clusters.ensure(3)
    with cluster.client() as client, dask.config.set(FAST_FAULTS):
        workers = _sorted_workers(client)
        victim = workers[2]
        name = _names(client)[victim]
        # every task waits 0.13 s, so the fit lasts long enough to see the hang
        inject_stragglers(client, {w: Slowdown(delay=0.13) for w in workers}, seed=0)
        try:
            stopper = _after_tasks(client, 12, lambda: cluster.signal(name, signal.SIGSTOP))
            clf = _fit(client, *data)
            stopper.join(10)
            history = clf.history_
            assert history.attrs["lost_workers"] == [victim]
            assert "no heartbeat" in history.attrs["membership"]
            assert float(history["loss"][-1]) == pytest.approx(reference, rel=1e-3)
            member = history["member"].sel(worker=victim).values
            assert member[0] and not member[-1]
            # While it hung but was still a member, the rounds went on without it:
            # its last member rounds all found it busy, none got an answer from it
            # or waited on it. (Before the hang it may be busy at the start of a
            # round, 0.13 s into its task, and still answer that round last.)
            busy = history["busy"].sel(worker=victim).values
            answered = history["responded"].sel(worker=victim).values
            rounds = np.flatnonzero(member)
            silent = busy[rounds] & ~answered[rounds]
            tail = rounds[len(silent) - np.argmin(silent[::-1]) if not silent.all() else 0:]
            assert len(tail) >= FAST_FAULTS["quorum.faults.missed-rounds"]
            assert victim not in set(history["waited_on"].values[tail])
            assert any(a == "lost" and w == victim for _, a, w, _ in latencies(client).attrs["membership"])
        finally:
            cluster.signal(name, signal.SIGCONT)
            cluster.signal(name, signal.SIGKILL)
            _wait_gone(client, victim)
            remove_stragglers(client)


def _parts(k, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=d) for _ in range(k)]


def _replicas_per_partition(session) -> np.ndarray:
    counts = np.zeros(session.n_partitions, dtype=int)
    for (i, j), fut in session._placement.replicas.items():
        assert fut.status == "finished"
        counts[j] += 1
    return counts


def test_a_joining_worker_is_used_from_a_later_round(clusters):
    cluster = clusters.ensure(2)
    with cluster.client() as client, dask.config.set({**FAST_FAULTS, "quorum.faults.partitions-per-worker": 2}):
        with CodedSession(client, scheme="cyclic", redundancy=2, random_state=0) as s:
            parts = _parts(s.n_partitions)
            s.place(parts)
            before = list(s.workers)
            (new,) = cluster.add_workers(1, wait=False)
            deadline = time.monotonic() + 60

            def answered() -> bool:  # the newcomer answered a round (it first imports the engine)
                return bool(s.all_workers[len(before):]) and any(
                    len(before) in r.responders for r in s.records
                )

            t = 0
            while not answered() and time.monotonic() < deadline:
                np.testing.assert_allclose(s.round(operator.mul, 1.0 + t), (1.0 + t) * np.sum(parts, axis=0))
                t += 1
                time.sleep(0.02)
            (event,) = s.events
            joined = event.worker
            assert event.action == "joined" and _names(client)[joined] == new
            assert s.workers == before + [joined] and s.all_workers == before + [joined]
            index = s.all_workers.index(joined)
            assert answered() and index == len(before)
            assert all(index in r.members for r in s.records[event.round :])
            assert not any(index in r.members for r in s.records[: event.round])
            assert (_replicas_per_partition(s) == 2).all()
            assert all(r.stop == "exact" for r in s.records)


def _round_tasks_on_workers(client) -> int:
    def count(dask_worker):
        return sum(ROUND_PREFIX in str(k) for k in dask_worker.state.tasks)

    return sum(client.run(count).values())


def test_a_closed_client_stops_the_fit_with_a_clear_error_and_leaves_no_tasks(clusters, data):
    cluster = clusters.ensure(2)
    client = cluster.client()
    try:
        inject_stragglers(client, {w: Slowdown(delay=0.3) for w in _sorted_workers(client)}, seed=0)
        closer = _after_tasks(client, 4, client.close)
        start = time.monotonic()
        with pytest.raises(SchedulerLostError, match="closed|not connected"):
            _fit(client, *data)
        closer.join(10)
        assert time.monotonic() - start < 30
    finally:
        client.close()
    with cluster.client() as other:
        remove_stragglers(other)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            tasks = other.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
            if tasks == 0 and _round_tasks_on_workers(other) == 0:
                break
            time.sleep(0.1)
        assert other.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0
        assert _round_tasks_on_workers(other) == 0


def test_losing_more_workers_than_the_code_tolerates_replans_then_stops_naming_them(clusters):
    cluster = clusters.ensure(3)
    with cluster.client() as client, dask.config.set(FAST_FAULTS):
        with CodedSession(client, scheme="cyclic", redundancy=2, random_state=0) as s:
            parts = _parts(s.n_partitions)
            s.place(parts)
            s.round(operator.mul, 1.0)
            names = _names(client)
            doomed = s.workers[:-1]
            for w in doomed:  # two or more at once: cyclic with redundancy 2 tolerates one
                cluster.signal(names[w], signal.SIGKILL)
            start = time.monotonic()
            total = s.round(operator.mul, 2.0)
            np.testing.assert_allclose(total, 2.0 * np.sum(parts, axis=0))
            assert sorted(e.worker for e in s.events if e.action == "lost") == sorted(doomed)
            (survivor,) = s.workers
            assert s.code.n_workers == 1 and (_replicas_per_partition(s) == 1).all()
            # the last one: nothing left to re-plan on, a clear error within bounded time
            cluster.signal(names[survivor], signal.SIGKILL)
            with pytest.raises(WorkersLostError, match="fewer than quorum.faults.min-workers") as err:
                for _ in range(100):
                    s.round(operator.mul, 3.0)
            assert set(err.value.lost) == set(doomed) | {survivor}
            assert all(w in str(err.value) for w in [survivor, *doomed])
            assert time.monotonic() - start < 30


def test_a_restarted_scheduler_stops_the_fit_with_a_clear_error_and_the_workers_exit(clusters, data):
    cluster = clusters.ensure(1)
    workers = [p for p in cluster.workers.values() if p.poll() is None]
    with cluster.client(timeout=5) as client:
        inject_stragglers(client, {w: Slowdown(delay=0.2) for w in _sorted_workers(client)}, seed=0)
        restarter = _after_tasks(client, 4, cluster.restart_scheduler)
        start = time.monotonic()
        with pytest.raises(SchedulerLostError, match="scheduler"):
            _fit(client, *data, scheme="sync")
        restarter.join(30)
        assert time.monotonic() - start < 60
    # no worker goes on running round tasks for a scheduler that is gone: they shut down
    for p in workers:
        assert p.wait(30) is not None


# --------------------------------------------------------------------------- in-process checks


def test_a_scheduler_with_another_id_is_a_restarted_scheduler(client4):
    with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=0) as s:
        s.place(_parts(s.n_partitions))
        s.round(operator.mul, 1.0)
        s._scheduler_id = "an-earlier-scheduler"
        s._last_check = -np.inf  # read the cluster at the next round
        with pytest.raises(SchedulerLostError, match="restarted"):
            s.round(operator.mul, 1.0)


def test_an_adaptive_fit_keeps_adapting_after_losing_a_worker(client4):
    from dask_quorum.pipeline.engine import OnlineAdapter, initial_code

    factory = lambda n: initial_code("heterogeneous", n, 2, 0)
    with CodedSession(client4, scheme="heterogeneous", redundancy=2, random_state=0, code_factory=factory) as s:
        s.place(_parts(s.n_partitions))
        adapter = OnlineAdapter(s, scheme="heterogeneous", redundancy=2, random_state=0, every=4, window=20)
        for t in range(8):
            s.round(operator.mul, 1.0)
            adapter.after_round(t)
        assert adapter.model is not None and len(adapter.model.workers) == 4
        dropped = s.workers[1]
        s._replan({dropped: "dropped by the test"}, [], len(s.records))  # as after a loss
        assert s.code.n_workers == 3 and s.code.scheme in {"cyclic", "heterogeneous"}  # uniform until re-fit
        for t in range(8, 30):
            s.round(operator.mul, 1.0)
            adapter.after_round(t)
        assert list(adapter.model.workers) == s.workers and dropped not in s.workers
        assert s.code.n_workers == 3 and (_replicas_per_partition(s) == 2).all()
