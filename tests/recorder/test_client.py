"""Tests of dask_quorum.pipeline.recorder.client: attach and latencies, sync and async, cursors."""

from __future__ import annotations

import time

import numpy as np
import pytest
from dask_quorum.pipeline.recorder import LatencyRecorder, attach, latencies
from distributed import Client, LocalCluster, wait
from distributed.utils_test import gen_cluster, inc
from recorded import recorded_keys, row

NAME = LatencyRecorder.name
TWO_WORKERS = [("127.0.0.1", 1)] * 2


# --------------------------------------------------------------------------
# Attaching
# --------------------------------------------------------------------------


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_attach_twice_keeps_one_plugin_and_its_data(c, s, a, b):
    await attach(c)
    plugin = s.plugins[NAME]
    await wait(c.submit(inc, 1, pure=False))
    assert len(plugin) == 1

    await attach(c)
    assert s.plugins[NAME] is plugin
    assert sum(isinstance(p, LatencyRecorder) for p in s.plugins.values()) == 1
    await wait(c.submit(inc, 2, pure=False))
    ds = await latencies(c)
    assert len(recorded_keys(ds)) == 2 and ds.attrs["cursor"] == 2


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_latencies_without_recorder_raises(c, s, a, b):
    with pytest.raises(RuntimeError, match=r"attach\(client\)"):
        await latencies(c)
    await attach(c)
    assert isinstance(await latencies(c), object)
    await c.unregister_scheduler_plugin(NAME)
    with pytest.raises(RuntimeError, match="No latency recorder is attached"):
        await latencies(c)


def test_sync_client_and_default_client():
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster, Client(cluster) as client:
        with pytest.raises(RuntimeError, match="attach"):
            latencies()  # the default client: the one just created
        attach()
        attach(client)
        fut = client.submit(time.sleep, 0.05, pure=False)
        wait(fut)
        ds = latencies()
        assert recorded_keys(ds) == [fut.key]
        assert row(ds, fut.key)["compute"] >= 0.049
        again = client.submit(inc, 1, pure=False)
        wait(again)
        newer = latencies(client, since=ds.attrs["cursor"])
        assert recorded_keys(newer) == [again.key]


# --------------------------------------------------------------------------
# Reading since a cursor
# --------------------------------------------------------------------------


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_since_cursor_and_uneven_workers(c, s, a, b):
    await attach(c)
    old = c.submit(inc, 0, workers=[b.address], pure=False)
    await wait(old)
    first = await latencies(c)
    assert recorded_keys(first) == [old.key] and first.attrs["cursor"] == 1

    on_a = c.map(inc, range(3), workers=[a.address], pure=False)
    on_b = c.submit(inc, 10, workers=[b.address], pure=False)
    await wait([*on_a, on_b])
    newer = await latencies(c, since=first.attrs["cursor"])
    assert sorted(recorded_keys(newer)) == sorted([f.key for f in on_a] + [on_b.key])
    assert newer.attrs["cursor"] == 5 and newer.attrs["dropped"] == 0
    assert newer["worker"].values.tolist() == sorted([a.address, b.address])
    assert dict(newer.sizes) == {"worker": 2, "sample": 3}
    b_compute = newer["compute"].sel(worker=b.address).values
    assert np.isfinite(b_compute[0]) and np.isnan(b_compute[1:]).all()
    assert newer["key"].sel(worker=b.address).values.tolist() == [on_b.key, "", ""]

    nothing = await latencies(c, since=newer.attrs["cursor"])
    assert dict(nothing.sizes) == {"worker": 0, "sample": 0}
    assert nothing.attrs["cursor"] == 5
    with pytest.raises(ValueError, match="since"):
        await latencies(c, since=-1)
