"""Probing a running cluster: the probe workload and profile_cluster."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.profiling import (
    PROBE_PREFIX,
    probe_work,
    profile_cluster,
)

from dask_quorum import Slowdown, inject_stragglers, latencies, remove_stragglers


def test_probe_work_times_its_own_passes():
    assert probe_work(1, size=16) >= 0
    # more passes, more time (a ratio in one run, not a speed assert)
    assert probe_work(400) > probe_work(1)


# -- on a real cluster ---------------------------------------------------------


def test_profile_cluster_finds_the_injected_straggler(client4):
    workers = sorted(scheduler_workers(client4))
    slow = workers[2]
    calls = []
    inject_stragglers(client4, {slow: Slowdown(factor=4.0, delay=0.1)}, seed=1)
    try:
        profile = profile_cluster(
            client4, rounds=6, task_seconds=0.005, progress=lambda d, t: calls.append((d, t))
        )
    finally:
        remove_stragglers(client4)
    assert calls == [(d, 6) for d in range(1, 7)]
    assert profile.workers == tuple(workers)
    assert profile.model.latencies.shape == (6, 4)
    assert np.isfinite(profile.model.latencies).all()
    assert profile.model.slow_workers() == [slow]
    assert profile.scheduler == client4.scheduler.address
    assert profile.task_units >= 1 and profile.unit_seconds > 0
    # the probe tasks are recorded with their work units under their own prefix
    ds = latencies(client4)
    probe = ds["prefix"].to_numpy() == PROBE_PREFIX
    assert probe.sum() == 6 * 4
    assert (ds["units"].to_numpy()[probe] == profile.task_units).all()


def test_profile_cluster_round_timeout_names_the_late_worker(client4):
    workers = sorted(scheduler_workers(client4))
    inject_stragglers(client4, {workers[0]: Slowdown(delay=5.0)}, seed=0)
    try:
        with pytest.raises(TimeoutError, match="still waiting on") as exc:
            profile_cluster(client4, rounds=2, task_seconds=0.001, round_timeout=0.5)
    finally:
        remove_stragglers(client4)  # cuts the sleeping task short
    assert workers[0] in str(exc.value)
    assert not any(w in str(exc.value) for w in workers[1:])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rounds": 1}, "rounds must be an integer >= 2"),
        ({"rounds": 2.5}, "rounds"),
        ({"task_seconds": 0}, "task_seconds"),
        ({"round_timeout": -1}, "round_timeout"),
    ],
)
def test_profile_cluster_rejects_bad_arguments(client4, kwargs, message):
    with pytest.raises(ValueError, match=message):
        profile_cluster(client4, **kwargs)
