"""Tests of dask_quorum.pipeline.inject.control (installing, reading and removing the injector)."""

from __future__ import annotations

import time

import pytest
from dask_quorum.pipeline.inject import (
    Slowdown,
    StragglerInjector,
    inject_stragglers,
    injection_log,
    remove_stragglers,
)
from distributed import Client, LocalCluster
from distributed.utils_test import gen_cluster

NAME = StragglerInjector.name
TWO_WORKERS = [("127.0.0.1", 1)] * 2


# --------------------------------------------------------------------------
# Workers named, and the synchronous client
# --------------------------------------------------------------------------


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_unknown_or_repeated_worker_is_rejected(c, s, a, b):
    with pytest.raises(ValueError, match="unknown worker") as info:
        await inject_stragglers(c, {"tcp://127.0.0.1:1": Slowdown(), 7: Slowdown()})
    message = str(info.value)
    assert a.address in message and b.address in message and "7" in message
    with pytest.raises(ValueError, match="more than once"):
        await inject_stragglers(c, {a.name: Slowdown(), a.address: Slowdown()})
    assert NAME not in s.worker_plugins and NAME not in a.plugins


def test_sync_client_helpers():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        slow_address = next(
            addr for addr, w in cluster.scheduler.workers.items() if w.name == 0
        )
        with pytest.raises(ValueError, match="unknown worker"):
            inject_stragglers(client, {"nope": Slowdown()})
        injector = inject_stragglers(
            client, {"0": Slowdown(factor=3)}, seed=1, log_size=2
        )
        assert isinstance(injector, StragglerInjector)
        futs = []
        for _ in range(3):
            fut = client.submit(time.sleep, 0.02, workers=[slow_address], pure=False)
            fut.result()
            futs.append(fut)
        log = injection_log(client)
        assert set(log) == set(cluster.scheduler.workers)
        assert [r.index for r in log[slow_address]] == [1, 2]  # bounded log
        r = log[slow_address][-1]
        assert r.key == futs[-1].key and r.slow and r.added >= 0.95 * 2 * r.natural
        assert remove_stragglers(client) is True
        assert remove_stragglers(client) is False
        assert injection_log(client) == {}
