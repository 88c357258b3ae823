"""Tests of dask_quorum.pipeline.inject.plugin (straggler injection)."""

from __future__ import annotations

import asyncio
import time

import dask.array as da
import numpy as np
import pytest
from dask_quorum.pipeline.inject import (
    InjectionRecord,
    Slowdown,
    StragglerInjector,
    inject_stragglers,
    injection_log,
    remove_stragglers,
    slow_states,
)
from dask_quorum.pipeline.inject.plugin import _SlowedNode
from distributed import SchedulerPlugin, wait
from distributed.utils_test import gen_cluster, inc

NAME = StragglerInjector.name
TWO_WORKERS = [("127.0.0.1", 1)] * 2


class ComputeIntervals(SchedulerPlugin):
    """Record, per finished task, the worker and its compute interval."""

    name = "test-compute-intervals"

    def __init__(self):
        self.compute: dict = {}
        self.worker: dict = {}

    def transition(self, key, start, finish, *args, **kwargs):
        if start == "processing" and finish in ("memory", "erred"):
            self.worker[key] = kwargs.get("worker")
            for ss in kwargs.get("startstops", ()):
                if ss["action"] == "compute":
                    self.compute[key] = ss["stop"] - ss["start"]


def add_recorder(s) -> ComputeIntervals:
    rec = ComputeIntervals()
    s.add_plugin(rec)
    return rec


def records(worker) -> list[InjectionRecord]:
    return worker.plugins[NAME].records()


async def wait_executing(worker, fut, timeout: float = 10.0) -> None:
    """Poll until ``fut`` runs in ``worker``'s thread pool (or is already done)."""
    deadline = time.monotonic() + timeout
    while fut.key not in worker.active_threads.values() and not fut.done():
        assert time.monotonic() < deadline, f"{fut.key} never started on {worker}"
        await asyncio.sleep(0.01)


def add(x, y):
    return x + y


class Boom(Exception):
    def __init__(self, payload):
        super().__init__(payload)
        self.payload = payload


def boom(x):
    raise Boom({"x": x})


async def acoro():
    return 7


# --------------------------------------------------------------------------
# Slowdown applies, and is part of the measured compute time
# --------------------------------------------------------------------------


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_slow_worker_compute_interval(c, s, a, b):
    rec = add_recorder(s)
    factor = 4.0
    injector = await inject_stragglers(c, {a.name: Slowdown(factor=factor)})
    assert isinstance(injector, StragglerInjector)

    slow = c.submit(time.sleep, 0.05, workers=[a.address], pure=False)
    fast = c.submit(time.sleep, 0.05, workers=[b.address], pure=False)
    await wait([slow, fast])

    log = await injection_log(c)
    assert log[b.address] == []  # b carries the plugin but is left alone
    [r] = log[a.address]
    assert (r.index, r.key, r.slow) == (0, slow.key, True)
    assert r.natural >= 0.045
    assert r.added >= 0.95 * (factor - 1) * r.natural
    # Scheduler side: the compute interval contains natural + added time.
    assert rec.compute[slow.key] >= 0.99 * (r.natural + r.added)
    assert rec.compute[slow.key] >= 0.95 * factor * 0.05
    # Worker side: its own compute record too.
    [ws] = [x for x in a.state.tasks[slow.key].startstops if x["action"] == "compute"]
    assert ws["stop"] - ws["start"] >= 0.99 * (r.natural + r.added)
    # The fast worker is unchanged: well below the slow one.
    assert rec.compute[fast.key] < rec.compute[slow.key] / 2


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_emulated_work_scales_with_units_and_factor_on_every_worker(c, s, a, b):
    """unit_seconds * units on every worker, times the factor of a slowed one; none without units."""
    import dask

    rec = add_recorder(s)
    factor, unit = 3.0, 0.02
    await inject_stragglers(c, {a.name: Slowdown(factor=factor)}, unit_seconds=unit)
    with dask.annotate(quorum_units=4):
        slow = c.submit(inc, 1, workers=[a.address], pure=False)
        fast = c.submit(inc, 2, workers=[b.address], pure=False)
    plain = c.submit(inc, 3, workers=[b.address], pure=False)  # declares no units
    assert await c.gather([slow, fast, plain]) == [2, 3, 4]

    log = await injection_log(c)
    [rs] = log[a.address]
    assert rs.slow and rs.work == pytest.approx(4 * unit)
    assert rs.added >= 0.95 * factor * 4 * unit  # the slow worker's emulated work is slowed too
    [rf] = [r for r in log[b.address] if r.key == fast.key]
    assert not rf.slow and rf.work == pytest.approx(4 * unit)  # b is emulated, though never slowed
    assert 0.95 * 4 * unit <= rf.added < factor * 4 * unit
    assert all(r.key != plain.key for r in log[b.address])  # untouched: no units, no slowdown
    assert rec.compute[slow.key] >= 0.99 * (rs.natural + rs.added)
    assert rec.compute[plain.key] < unit
    assert "unit_seconds=0.02" in repr(a.plugins[NAME])


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_emulated_work_of_long_running_steps(c, s, a, b):
    from dask_quorum.pipeline.inject import slow_step

    await inject_stragglers(c, {}, unit_seconds=0.01)
    added = await asyncio.to_thread(slow_step, b, 0.0, "step-0", 3)
    assert added >= 0.95 * 0.03
    assert await asyncio.to_thread(slow_step, b, 0.0, "step-1") == 0.0  # no units, nothing to emulate
    [r] = records(b)
    assert (r.key, r.slow, r.work) == ("step-0", False, pytest.approx(0.03))


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_applies_to_dask_array_tasks(c, s, a, b):
    rec = add_recorder(s)
    delay = 0.03
    await inject_stragglers(c, {a.address: Slowdown(delay=delay)})
    x = da.arange(40, chunks=10)
    total = await c.compute((x * 2).sum(), workers=[a.address])
    assert total == (np.arange(40) * 2).sum()

    log = records(a)
    ran_on_a = {k for k, w in rec.worker.items() if w == a.address}
    assert len(ran_on_a) >= 5  # several chunks and the reduction
    assert {r.key for r in log} == ran_on_a
    assert all(r.slow and r.added >= 0.95 * delay for r in log)
    assert all(rec.compute[k] >= 0.95 * delay for k in ran_on_a)
    assert any(isinstance(k, tuple) and "arange" in k[0] for k in ran_on_a)


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_event_loop_keeps_running_during_slow_task(c, s, a, b):
    rec = add_recorder(s)
    delay = 2.0
    await inject_stragglers(c, {a.name: Slowdown(delay=delay)})
    fut = c.submit(inc, 1, workers=[a.address], pure=False)
    await wait_executing(a, fut)

    start = time.monotonic()
    assert await c.run(lambda: 1, workers=[a.address]) == {a.address: 1}
    elapsed = time.monotonic() - start
    assert elapsed < delay / 4
    assert not fut.done()  # the round-trip happened while the task waited

    assert await fut == 2
    assert rec.compute[fut.key] >= 0.99 * delay


# --------------------------------------------------------------------------
# The chain across registrations
# --------------------------------------------------------------------------


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_injector_follows_chain_across_registrations(c, s, a, b):
    spec = Slowdown(delay=0.002, p_slow_slow=0.6, p_slow_fast=0.3)
    n = 25

    async def run(seed):
        await inject_stragglers(c, {a.name: spec}, seed=seed)
        futs = c.map(inc, range(n), workers=[a.address], pure=False)
        await wait(futs)
        log = sorted(records(a), key=lambda r: r.index)
        assert [r.index for r in log] == list(range(n))
        return [r.slow for r in log]

    first = await run(seed=3)
    assert first == slow_states(spec, n, worker=a.name, seed=3).tolist()
    assert await run(seed=3) == first  # re-registration restarts the chain
    other = await run(seed=4)
    assert other == slow_states(spec, n, worker=a.name, seed=4).tolist()
    assert other != first


# --------------------------------------------------------------------------
# Turning off and replacing
# --------------------------------------------------------------------------


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_remove_and_replace(c, s, a, b):
    rec = add_recorder(s)
    delay = 0.5
    await inject_stragglers(c, {a.name: Slowdown(delay=delay)})
    x = c.submit(inc, 1, workers=[a.address], pure=False)
    assert await x == 2
    [r] = records(a)
    assert r.slow and r.added >= 0.95 * delay
    wrapped = a.state.tasks[x.key].run_spec
    assert isinstance(wrapped, _SlowedNode)

    assert await remove_stragglers(c) is True
    assert NAME not in a.plugins and NAME not in s.worker_plugins
    assert a.state.tasks[x.key].run_spec is wrapped.original  # restored
    y = c.submit(inc, 2, workers=[a.address], pure=False)
    assert await y == 3
    assert not isinstance(a.state.tasks[y.key].run_spec, _SlowedNode)
    assert rec.compute[y.key] < delay
    assert await remove_stragglers(c) is False  # nothing left: no error

    await inject_stragglers(c, {b.address: Slowdown(delay=0.2)})
    z = c.submit(inc, 3, workers=[a.address], pure=False)
    w = c.submit(inc, 4, workers=[b.address], pure=False)
    assert await c.gather([z, w]) == [4, 5]
    assert records(a) == []
    [rb] = records(b)
    assert rb.key == w.key and rb.added >= 0.95 * 0.2
    assert rec.compute[w.key] >= 0.99 * 0.2


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_replace_while_task_is_slowed(c, s, a, b):
    rec = add_recorder(s)
    await inject_stragglers(c, {a.name: Slowdown(delay=5.0)})
    f = c.submit(inc, 1, workers=[a.address], pure=False)
    await wait_executing(a, f)

    new = Slowdown(delay=0.2)
    await inject_stragglers(c, {a.name: new})
    assert a.plugins[NAME].slowdowns == {a.name: new}
    # The running task finishes normally, without the rest of its wait.
    assert await f == 2
    assert rec.compute[f.key] < 2.5
    g = c.submit(inc, 2, workers=[a.address], pure=False)
    assert await g == 3
    [r] = records(a)  # the new injector's log
    assert r.key == g.key and r.added >= 0.95 * 0.2
    assert rec.compute[g.key] >= 0.99 * 0.2


# --------------------------------------------------------------------------
# Semantics of the wrapped task
# --------------------------------------------------------------------------


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_results_and_exceptions_pass_through(c, s, a, b):
    await inject_stragglers(c, {a.name: Slowdown(factor=2, delay=0.01)})
    x = c.submit(inc, 1, workers=[b.address], pure=False)  # dependency from b
    y = c.submit(add, x, 10, workers=[a.address], pure=False)
    z = c.submit(boom, y, workers=[a.address], pure=False)
    assert await y == 12
    with pytest.raises(Boom) as info:
        await z
    assert info.value.payload == {"x": 12}
    assert type(info.value) is Boom

    coro = c.submit(acoro, workers=[a.address], pure=False)
    assert await coro == 7

    log = {r.key: r for r in records(a)}
    assert set(log) == {y.key, z.key}  # coroutine tasks are left alone
    assert log[z.key].slow and log[z.key].added >= 0.95 * 0.01


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "slowdowns, kwargs, match",
    [
        ({0: Slowdown(), "0": Slowdown()}, {}, "given twice"),
        ({1.5: Slowdown()}, {}, "address or name"),
        ({0: 2.0}, {}, "must be a Slowdown"),
        ([Slowdown()], {}, "must be a mapping"),
        ({0: Slowdown()}, {"seed": -1}, "seed must be a non-negative integer"),
        ({0: Slowdown()}, {"seed": 1.5}, "seed must be a non-negative integer"),
        ({0: Slowdown()}, {"log_size": 0}, "log_size must be a positive integer"),
        ({0: Slowdown()}, {"unit_seconds": -0.1}, "unit_seconds"),
        ({0: Slowdown()}, {"unit_seconds": float("nan")}, "unit_seconds"),
    ],
)
def test_injector_validation(slowdowns, kwargs, match):
    with pytest.raises(ValueError, match=match):
        StragglerInjector(slowdowns, **kwargs)
