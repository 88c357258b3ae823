"""Tests of dask_quorum.pipeline.cluster.identity: the scheduler's workers, asked for now."""

from __future__ import annotations

import dask
import pytest
from dask_quorum.pipeline.cluster import scheduler_workers, worker_addresses
from distributed import Client, LocalCluster


def test_a_cluster_without_workers_times_out_with_a_message():
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as lc, Client(lc, set_as_default=False) as c:
        with pytest.raises(TimeoutError, match="no worker"):
            worker_addresses(c, timeout=0.5)


def test_scheduler_workers_never_reads_the_clients_emptied_cache():
    # The client's periodic refresh replaces its cached identity with one that
    # lists no workers; with a 1 ms refresh the cache is empty most of the time.
    with dask.config.set({"distributed.client.scheduler-info-interval": "1ms"}):
        with LocalCluster(n_workers=2, processes=False, dashboard_address=":0") as lc, Client(
            lc, set_as_default=False
        ) as c:
            c.wait_for_workers(2, timeout=30)
            seen = [len(scheduler_workers(c)) for _ in range(200)]
            assert seen == [2] * 200
            assert worker_addresses(c) == sorted(lc.scheduler.workers)


def test_scheduler_workers_has_a_deadline():
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as lc, Client(
        lc, set_as_default=False
    ) as c:
        assert len(scheduler_workers(c, timeout=5)) == 1
        lc.scheduler.handlers["identity"] = _never_answers
        with pytest.raises(TimeoutError, match="did not list its workers within 0.2 s"):
            scheduler_workers(c, timeout=0.2)


async def _never_answers(*args, **kwargs):
    import asyncio

    await asyncio.sleep(3600)
