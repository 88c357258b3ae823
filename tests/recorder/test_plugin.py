"""Tests of dask_quorum.pipeline.recorder.plugin: what the LatencyRecorder records, bounded memory, preloading."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from importlib.resources import files

import dask
import dask.array as da
import numpy as np
import pytest
import yaml
from dask.utils import key_split
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.recorder import (
    FIELDS,
    HANDLER,
    LatencyRecorder,
    attach,
    dask_setup,
    latencies,
)
from distributed import Client, SchedulerPlugin, wait
from distributed.utils_test import gen_cluster, inc
from recorded import recorded_keys, row

NAME = LatencyRecorder.name
TWO_WORKERS = [("127.0.0.1", 1)] * 2
DASK = os.path.join(os.path.dirname(sys.executable), "dask")


class FinishedKeys(SchedulerPlugin):
    """Reference: the keys of every task that went processing -> memory."""

    name = "test-finished-keys"

    def __init__(self):
        self.keys: list[str] = []

    def transition(self, key, start, finish, *args, **kwargs):
        if start == "processing" and finish == "memory":
            self.keys.append(str(key))


def fail(x):
    raise ValueError(f"boom {x}")


def startstop(action, t0, t1):
    return {"action": action, "start": t0, "stop": t1}


# --------------------------------------------------------------------------
# What a row measures (real cluster)
# --------------------------------------------------------------------------


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_sleep_task_on_known_worker(c, s, a, b):
    await attach(c)
    fut = c.submit(time.sleep, 0.2, workers=[a.address], pure=False)
    await wait(fut)

    ds = await latencies(c)
    assert ds["worker"].values.tolist() == [a.address]  # b ran nothing
    r = row(ds, fut.key)
    assert r["worker"] == a.address
    assert r["prefix"] == "sleep"
    assert r["compute"] >= 0.199
    assert r["transfer"] == 0.0
    assert 0 <= r["queue"] < 0.5
    assert r["stop"] - r["start"] == pytest.approx(r["compute"])
    assert not r["erred"]
    assert math.isnan(r["units"])


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_dependency_from_other_worker_records_transfer(c, s, a, b):
    await attach(c)
    x = c.submit(np.ones, 2_000_000, workers=[a.address], pure=False)  # 16 MB
    y = c.submit(np.sum, x, workers=[b.address], pure=False)
    assert await y == 2_000_000

    ds = await latencies(c)
    rx, ry = row(ds, x.key), row(ds, y.key)
    assert (rx["worker"], ry["worker"]) == (a.address, b.address)
    assert rx["transfer"] == 0.0
    assert ry["transfer"] > 0.0
    # The worker's own record of y holds the transfer interval we summed.
    transfers = [
        ss["stop"] - ss["start"]
        for ss in b.state.tasks[y.key].startstops
        if ss["action"] == "transfer"
    ]
    assert transfers and ry["transfer"] == pytest.approx(sum(transfers))


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_queue_time_behind_busy_thread(c, s, a, b):
    await attach(c)
    first = c.submit(time.sleep, 0.4, workers=[a.address], pure=False)
    second = c.submit(time.sleep, 0.01, workers=[a.address], pure=False)
    await wait([first, second])

    ds = await latencies(c)
    r1, r2 = row(ds, first.key), row(ds, second.key)
    assert r1["queue"] < 0.2
    assert r2["queue"] >= r1["compute"] - 0.05
    assert r2["start"] >= r1["stop"] - 0.01
    # Samples of a worker are ordered by compute start.
    assert ds["key"].sel(worker=a.address).values.tolist() == [first.key, second.key]


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_units_annotation(c, s, a, b):
    await attach(c)
    with dask.annotate(quorum_units=1000):
        declared = c.submit(inc, 1, pure=False)
    plain = c.submit(inc, 2, pure=False)
    with dask.annotate(quorum_units="many"):
        junk = c.submit(inc, 3, pure=False)
    with dask.annotate(quorum_units=7):
        mapped = c.map(inc, range(3), pure=False)
    await wait([declared, plain, junk, *mapped])

    ds = await latencies(c)
    assert row(ds, declared.key)["units"] == 1000.0
    assert math.isnan(row(ds, plain.key)["units"])
    assert math.isnan(row(ds, junk.key)["units"])
    assert [row(ds, f.key)["units"] for f in mapped] == [7.0, 7.0, 7.0]


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_erred_task_is_flagged(c, s, a, b):
    await attach(c)
    bad = c.submit(fail, 1, workers=[b.address], pure=False)
    good = c.submit(inc, 1, workers=[b.address], pure=False)
    await wait([bad, good])
    assert bad.status == "error"

    ds = await latencies(c)
    rb, rg = row(ds, bad.key), row(ds, good.key)
    assert rb["erred"] and not rg["erred"]
    assert rb["worker"] == b.address
    assert rb["prefix"] == "fail"
    assert np.isfinite(rb["start"]) and rb["compute"] >= 0


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_dask_array_computation_shows_up(c, s, a, b):
    await attach(c)
    reference = FinishedKeys()
    s.add_plugin(reference)
    total = await c.compute(da.ones((1000, 1000), chunks=100).sum())
    assert total == 1_000_000

    ds = await latencies(c)
    keys = recorded_keys(ds)
    assert sorted(keys) == sorted(reference.keys)
    prefixes = [p for p in ds["prefix"].values.ravel() if p]
    assert prefixes == [key_split(k) for k in ds["key"].values.ravel() if k]
    assert prefixes.count("sum") >= 100  # one per chunk (ones fused into sum)
    assert any(k.startswith("('sum-") for k in keys)  # tuple keys, as str
    assert set(ds["worker"].values.tolist()) <= {a.address, b.address}


# --------------------------------------------------------------------------
# Bounded memory
# --------------------------------------------------------------------------


@gen_cluster(
    client=True, nthreads=TWO_WORKERS, config={"quorum.recorder.capacity": 50}
)
async def test_capacity_holds_on_cluster(c, s, a, b):
    await attach(c)
    assert s.plugins[NAME].capacity == 50
    await wait(c.map(inc, range(450), pure=False))
    newest = c.map(inc, range(50), key=[f"newest-{i}" for i in range(50)])
    await wait(newest)

    ds = await latencies(c)
    assert sorted(recorded_keys(ds)) == sorted(f.key for f in newest)
    assert ds.attrs["cursor"] == 500
    assert ds.attrs["dropped"] == 450
    assert ds.attrs["capacity"] == 50
    assert len(s.plugins[NAME]) == 50
    assert not s.plugins[NAME]._entered


def test_million_transitions_keep_memory_bounded():
    capacity = 1000
    rec = LatencyRecorder(capacity=capacity)
    compute = [startstop("compute", 10.0, 10.5)]
    worker = "tcp://127.0.0.1:1"
    transition = rec.transition
    n, finished = 1_000_000, 0
    for i in range(n):
        key = ("x-abc", i)
        transition(key, "waiting", "processing", stimulus_id="s")
        if i % 10 == 9:  # released (e.g. cancelled) or lost with its worker
            transition(key, "processing", "released", stimulus_id="s")
        else:
            end = "erred" if i % 100 == 0 else "memory"
            transition(
                key, "processing", end, stimulus_id="s",
                worker=worker, startstops=compute,
            )
            finished += 1
    assert finished == 900_000
    assert rec.cursor == finished
    assert len(rec) == capacity
    assert rec._entered == {}
    # The timestamp dict never grew: dicts do not shrink after pops.
    assert sys.getsizeof(rec._entered) <= sys.getsizeof({i: i for i in range(8)})
    reply = rec.collect()
    assert reply["columns"]["key"][-1] == str(("x-abc", n - 2))  # newest kept
    assert reply["first"] == finished - capacity
    assert reply["dropped"] == finished - capacity


def test_capacity_from_config_and_validated():
    shipped = yaml.safe_load(files("dask_quorum").joinpath("quorum.yaml").read_text())
    assert shipped["quorum"]["recorder"]["capacity"] == 100_000
    assert LatencyRecorder().capacity == 100_000
    with dask.config.set({"quorum.recorder.capacity": 7}):
        assert LatencyRecorder().capacity == 7
    with dask.config.set({"quorum.recorder.capacity": "big"}):
        with pytest.raises(ValueError, match="quorum.recorder.capacity"):
            LatencyRecorder()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            LatencyRecorder(capacity=bad)


# --------------------------------------------------------------------------
# Plugin methods called directly (distributed swallows errors in hooks)
# --------------------------------------------------------------------------


def test_transition_sums_intervals_and_measures_queue():
    rec = LatencyRecorder(capacity=10)
    key = ("sum-0123abcd", 3, 1)
    rec.transition(key, "queued", "processing", stimulus_id="s")
    entered = rec._entered[key]
    startstops = [
        startstop("transfer", entered + 0.1, entered + 0.3),
        startstop("transfer", entered + 0.2, entered + 0.25),
        startstop("compute", entered + 1.0, entered + 1.5),
        startstop("compute", entered + 2.0, entered + 2.25),  # e.g. a retry
    ]
    rec.transition(
        key, "processing", "memory", stimulus_id="s", worker="tcp://w:1",
        startstops=startstops, nbytes=8, thread=1,
    )
    reply = rec.collect()
    r = {name: col[0] for name, col in reply["columns"].items()}
    assert r["worker"] == "tcp://w:1"
    assert r["key"] == str(key) and r["prefix"] == "sum"
    assert r["compute"] == pytest.approx(0.75)
    assert r["transfer"] == pytest.approx(0.25)
    assert r["start"] == entered + 1.0 and r["stop"] == entered + 2.25
    assert r["queue"] == pytest.approx(1.0)
    assert math.isnan(r["units"])  # no scheduler to read annotations from
    assert r["erred"] is False
    assert not rec._entered


def test_transition_edge_cases():
    rec = LatencyRecorder(capacity=10)
    # Leaving processing any other way frees the timestamp, records nothing.
    for finish in ("released", "forgotten", "waiting", "no-worker"):
        rec.transition(f"t-{finish}", "waiting", "processing", stimulus_id="s")
        rec.transition(f"t-{finish}", "processing", finish, stimulus_id="s")
    assert rec._entered == {} and len(rec) == 0
    # Other transitions are ignored.
    rec.transition("y", "released", "waiting", stimulus_id="s")
    rec.transition("y", "memory", "released", stimulus_id="s")
    assert rec._entered == {} and len(rec) == 0
    # Finished while the recorder did not see it enter: queue unknown.
    rec.transition(
        "late-1", "processing", "memory", stimulus_id="s", worker="tcp://w:1",
        startstops=[startstop("compute", 5.0, 6.0)],
    )
    # Erred with its worker lost (KilledWorker): no worker, no intervals.
    rec.transition("lost-1", "waiting", "processing", stimulus_id="s")
    rec.transition("lost-1", "processing", "erred", stimulus_id="s", cause="lost-1")
    cols = rec.collect()["columns"]
    assert cols["key"] == ["late-1", "lost-1"]
    assert math.isnan(cols["queue"][0]) and cols["compute"][0] == 1.0
    assert cols["worker"][1] == "" and cols["erred"] == [False, True]
    assert cols["compute"][1] == 0.0 and cols["transfer"][1] == 0.0
    assert all(math.isnan(cols[f][1]) for f in ("queue", "start", "stop"))
    assert rec._entered == {}
    rec.restart(None)  # type: ignore[arg-type]
    assert rec.cursor == 2 and len(rec) == 2


def test_collect_cursor_semantics():
    rec = LatencyRecorder(capacity=3)
    for i in range(5):
        rec.transition(f"k-{i}", "processing", "memory", stimulus_id="s", worker="w")
    assert rec.cursor == 5 and len(rec) == 3

    everything = rec.collect()
    assert everything["columns"]["key"] == ["k-2", "k-3", "k-4"]
    assert everything["first"] == 2
    assert (everything["cursor"], everything["dropped"]) == (5, 2)
    newer = rec.collect(since=3)
    assert newer["columns"]["key"] == ["k-3", "k-4"] and newer["dropped"] == 0
    none = rec.collect(since=5)
    assert none["columns"]["key"] == [] and none["cursor"] == 5
    assert set(none["columns"]) == set(FIELDS)
    stale = rec.collect(since=99)  # a cursor from an earlier scheduler
    assert stale["columns"]["key"] == [] and stale["cursor"] == 5
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="since"):
            rec.collect(since=bad)
    # msgpack-friendly: plain lists of str / float / bool.
    assert all(type(v) is list for v in everything["columns"].values())


# --------------------------------------------------------------------------
# The preload hook
# --------------------------------------------------------------------------


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_dask_setup_on_running_scheduler(c, s, a, b):
    dask_setup(s)
    plugin = s.plugins[NAME]
    assert HANDLER in s.handlers
    dask_setup(s)  # again: no new plugin
    await attach(c)  # after the preload hook: keeps it
    assert s.plugins[NAME] is plugin
    fut = c.submit(inc, 1, pure=False)
    await wait(fut)
    assert recorded_keys(await latencies(c)) == [fut.key]


# --------------------------------------------------------------------------
# --preload through the real CLI
# --------------------------------------------------------------------------


def _wait_for(predicate, timeout: float, what: str, procs=()) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[:2]} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("module", ["dask_quorum.pipeline.recorder", "dask_quorum.pipeline.recorder.plugin"])
def test_preload_from_dask_scheduler_cli(tmp_path, module):
    scheduler_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    commands = {
        "scheduler": [
            DASK, "scheduler", "--preload", module,
            "--port", "0", "--scheduler-file", str(scheduler_file), *common,
        ],
        # Started at once: the worker waits for the scheduler file itself.
        "worker": [
            DASK, "worker", "--scheduler-file", str(scheduler_file),
            "--nthreads", "1", "--no-nanny", *common,
        ],
    }
    procs: list[subprocess.Popen] = []
    try:
        for name, command in commands.items():
            with open(tmp_path / f"{name}.log", "wb") as log:
                procs.append(
                    subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
                )
        def written() -> bool:
            return scheduler_file.exists() and bool(
                json.loads(scheduler_file.read_text() or "{}")
            )

        _wait_for(written, 30, "the scheduler file", procs)
        with Client(scheduler_file=str(scheduler_file), timeout="20s") as client:
            client.wait_for_workers(1, timeout=30)
            fut = client.submit(time.sleep, 0.05, pure=False)
            fut.result(timeout=30)
            ds = latencies(client)  # no attach: the preload did it
            [worker] = ds["worker"].values.tolist()
            assert worker in scheduler_workers(client)
            assert recorded_keys(ds) == [fut.key]
            assert row(ds, fut.key)["prefix"] == "sleep"
            attach(client)  # idempotent on top of the preload
            assert recorded_keys(latencies(client)) == [fut.key]
    except (AssertionError, OSError, TimeoutError):
        for name in commands:
            text = (tmp_path / f"{name}.log").read_text(errors="replace")
            sys.stderr.write(f"--- {name} log ---\n{text[-3000:]}\n")
        raise
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
