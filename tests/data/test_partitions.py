"""Row partitions of dask collections on the workers, and where lost replicas come from."""

from __future__ import annotations

import time

import dask.array as da
import numpy as np
import pytest
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.data import (
    CollectionPartitions,
    check_dask_input,
    partition_bounds,
)
from dask_quorum.pipeline.engine import Placement, row_partitions
from distributed import Client, LocalCluster

from dask_quorum import LinearRegression, LogisticRegression

_rng = np.random.default_rng(1)
X = _rng.normal(size=(103, 4))
Y = _rng.integers(0, 3, size=103)
W = _rng.uniform(0.1, 3.0, size=103)
CHUNKS = (10, 41, 2, 50)


def _rows(client, weighted=False, classifier=False):
    est = LogisticRegression() if classifier else LinearRegression()
    w = da.from_array(W, chunks=30) if weighted else None
    rows = check_dask_input(
        client, est, da.from_array(X, chunks=(CHUNKS, (3, 1))), da.from_array(Y, chunks=17), w,
        classifier=classifier, y_numeric=not classifier,
    )
    return rows.encoded("multiclass") if classifier else rows


def _blocks(client, futures):
    return client.gather(futures)


@pytest.mark.parametrize("n_partitions", [1, 4, 7])
def test_bounds_are_those_of_numpy_row_partitions(n_partitions):
    bounds = partition_bounds(103, n_partitions)
    parts = row_partitions(X, Y, n_partitions)
    assert [p[0].shape[0] for p in parts] == np.diff(bounds).tolist()


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("classifier", [False, True])
def test_partitions_equal_the_numpy_ones(client4, weighted, classifier):
    rows = _rows(client4, weighted, classifier)
    source = CollectionPartitions(rows, 5)
    workers = sorted(scheduler_workers(client4))
    try:
        futures = [source.replicas(client4, workers[j % 4], [j], {}, 30)[0] for j in range(5)]
        got = _blocks(client4, futures)
    finally:
        source.release()
    y = Y if classifier else Y.astype(float)
    expected = row_partitions(X, y, 5, W if weighted else None)
    assert source.stats == {"computed": 5, "copied": 0, "recomputed": 0}
    for g, e in zip(got, expected):
        assert len(g) == len(e)
        for a, b in zip(g, e):
            np.testing.assert_array_equal(a, b)
        assert g[1].dtype == (np.intp if classifier else np.float64)


def test_replicas_have_keys_of_their_own_and_the_first_computation_is_released(client4):
    rows = _rows(client4)
    workers = sorted(scheduler_workers(client4))
    B = np.kron(np.eye(2), np.ones((2, 2)))  # workers 0, 1 hold {0, 1}; 2, 3 hold {2, 3}
    source = CollectionPartitions(rows, 4)
    keys = [t.key for t in source.tasks]
    placement = Placement(client4, workers, B, source, timeout=30, units=source.units)
    try:
        replicas = placement.replicas
        assert len({f.key for f in replicas.values()}) == 8
        assert source.stats["computed"] + source.stats["copied"] == 8

        replica_keys = [f.key for f in replicas.values()]

        def where(dask_scheduler, keys=tuple(replica_keys), first=tuple(keys)):
            # a worker that copied a replica from another fetched it first: the
            # Active Memory Manager drops such extra copies (ReduceReplicas)
            dask_scheduler.extensions["amm"].run_once()
            held = {k: sorted(ws.address for ws in dask_scheduler.tasks[k].who_has) for k in keys}
            first_states = [dask_scheduler.tasks[k].state if k in dask_scheduler.tasks else "forgotten" for k in first]
            return held, first_states

        deadline = time.monotonic() + 10
        held, first_states = client4.run_on_scheduler(where)
        while "memory" in first_states and time.monotonic() < deadline:  # releases travel in batches
            time.sleep(0.05)
            held, first_states = client4.run_on_scheduler(where)
        assert held == {f.key: [workers[i]] for (i, _), f in replicas.items()}
        assert "memory" not in first_states  # the sources' memory is freed, their graph kept
        parts = _blocks(client4, [replicas[(0, 0)], replicas[(3, 3)]])
        np.testing.assert_array_equal(parts[0][0], X[:26])
        np.testing.assert_array_equal(parts[1][0], X[77:])
    finally:
        placement.release()


def _close(client, cluster, address, timeout=30.0):
    name = next(k for k, w in cluster.workers.items() if w.address == address)
    client.sync(cluster.workers[name].close)
    deadline = time.monotonic() + timeout
    while address in scheduler_workers(client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert address not in scheduler_workers(client)


@pytest.fixture
def fresh():
    with LocalCluster(n_workers=4, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(
        cluster, set_as_default=False
    ) as client:
        yield cluster, client


def _wait_not_finished(futures, timeout=30.0):
    deadline = time.monotonic() + timeout
    while any(f.status == "finished" for f in futures) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_lost_replica_is_copied_from_a_survivor(fresh):
    cluster, client = fresh
    rows = _rows(client, weighted=True)
    workers = sorted(scheduler_workers(client))
    B = np.kron(np.eye(2), np.ones((2, 2)))
    source = CollectionPartitions(rows, 4)
    placement = Placement(client, workers, B, source, timeout=30, units=source.units)
    try:
        lost = placement.futures(0)
        _close(client, cluster, workers[0])
        _wait_not_finished(lost)
        assert placement.broken() == [workers[0]]
        before = dict(source.stats)
        # workers[2] takes partition 0, whose only replica left is on workers[1]
        survivors = workers[1:]
        B3 = np.array([[1, 1, 0, 0], [1, 0, 1, 1], [0, 1, 1, 1.0]])
        assert placement.update(B3, survivors) == 2
        assert source.stats["copied"] - before["copied"] == 2
        assert source.stats["recomputed"] == before["recomputed"] == 0
        assert placement.broken() == []
        (block,) = _blocks(client, [placement.replicas[(1, 0)]])
        expected = row_partitions(X, Y.astype(float), 4, W)[0]
        for a, b in zip(block, expected):
            np.testing.assert_array_equal(a, b)
    finally:
        placement.release()


def test_a_partition_without_survivors_is_recomputed_from_its_graph(fresh):
    cluster, client = fresh
    rows = _rows(client, classifier=True)
    workers = sorted(scheduler_workers(client))
    source = CollectionPartitions(rows, 4)
    placement = Placement(client, workers, np.eye(4), source, timeout=30, units=source.units)  # one replica each
    try:
        lost = placement.futures(0)
        _close(client, cluster, workers[0])
        _wait_not_finished(lost)
        survivors = workers[1:]
        B3 = np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
        assert placement.update(B3, survivors) == 1
        assert source.stats["recomputed"] == 1 and source.stats["copied"] == 0
        (block,) = _blocks(client, [placement.replicas[(0, 0)]])
        expected = row_partitions(X, Y, 4)[0]
        for a, b in zip(block, expected):
            np.testing.assert_array_equal(a, b)
        assert placement.holdings(survivors).tolist() == (B3 != 0).tolist()
    finally:
        placement.release()
