"""Shared fixtures: real in-process Dask clusters, never mocks."""

from __future__ import annotations

import dask
import pytest
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
