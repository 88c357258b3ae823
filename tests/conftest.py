"""Shared fixtures: real in-process Dask clusters, never mocks."""

from __future__ import annotations

import threading

import dask
import pytest
from dask_quorum.pipeline.cluster import scheduler_workers
from distributed import Client, LocalCluster

# Before distributed.utils_test loads: it snapshots dask.config at import and
# resets to that snapshot around its tests, so the quorum.* defaults must
# already be registered.
import dask_quorum  # noqa: F401

pytest_plugins = ["distributed.utils_test"]


def _local_client(n_workers: int):
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=False,
        dashboard_address=":0",
    )
    client = Client(cluster)  # the default client: estimators with client=None use it
    return cluster, client


@pytest.fixture(scope="module")
def client4():
    """Four single-threaded in-process workers, the default client of the module."""
    cluster, client = _local_client(4)
    with dask.config.set({"quorum.round-timeout": "60s"}):
        yield client
    client.close()
    cluster.close()


@pytest.fixture
def worker_dies_mid_fit():
    """``(client, victim)``: 3 in-process workers whose every task or step takes 20 ms
    more; worker ``victim`` closes one second after the fixture starts."""
    from dask_quorum import Slowdown, inject_stragglers

    with LocalCluster(n_workers=3, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(
        cluster, set_as_default=False
    ) as client, dask.config.set({"quorum.round-timeout": "20s"}):
        workers = sorted(scheduler_workers(client))
        victim = workers[1]
        inject_stragglers(client, {w: Slowdown(factor=1.0, delay=0.02) for w in workers}, seed=0)
        name = next(k for k, w in cluster.workers.items() if w.address == victim)
        killer = threading.Timer(1.0, lambda: client.sync(cluster.workers[name].close))
        killer.start()
        try:
            yield client, victim
        finally:
            killer.join()
