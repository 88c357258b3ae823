"""Measuring on the cluster: worker counters, idleness, the per-round floor.

* :func:`worker_counters` reads, on every worker, the bytes it served to
  others (results gathered by the driver and worker-to-worker transfers:
  ``Worker.transfer_outgoing_bytes_total``) and the seconds its executor
  threads spent running tasks, injected waits included (the ``execute``
  digests, thread CPU plus non-CPU time).
* :func:`wait_idle` waits until no task is processing, so that no
  contender starts behind another's straggling leftovers.
* :func:`floor_round` / :func:`empty_round`: the bare Dask floor of a round
  (n no-op tasks pinned to n workers, one gather) and an empty round of the
  engine, timed by :func:`seconds_per_call`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic, perf_counter, sleep
from typing import Any

import numpy as np
from distributed import Client

from dask_quorum import config
from dask_quorum.pipeline.engine import CodedSession

__all__ = [
    "Counters",
    "empty_round",
    "floor_round",
    "place_empty",
    "seconds_per_call",
    "wait_idle",
    "worker_counters",
]


@dataclass(frozen=True)
class Counters:
    """Cluster-wide totals since the workers started."""

    bytes_out: float
    compute_s: float

    def __sub__(self, other: Counters) -> Counters:
        return Counters(self.bytes_out - other.bytes_out, self.compute_s - other.compute_s)


def _read_counters(dask_worker: Any) -> tuple[int, float]:
    compute = sum(
        v
        for k, v in dask_worker.digests_total.items()
        if k[0] == "execute" and k[-1] == "seconds" and k[-2] in ("thread-cpu", "thread-noncpu")
    )
    return int(dask_worker.transfer_outgoing_bytes_total), float(compute)


def worker_counters(client: Client) -> Counters:
    """Bytes served and task seconds, summed over the workers."""
    values = client.run(_read_counters).values()
    return Counters(float(sum(b for b, _ in values)), float(sum(c for _, c in values)))


def wait_idle(client: Client, timeout: float) -> None:
    """Wait until no task is processing on the cluster.

    Raises
    ------
    TimeoutError
        If tasks are still processing after ``timeout`` seconds; the
        message names the busy workers.
    """
    deadline = monotonic() + timeout
    while True:
        busy = {w: len(keys) for w, keys in client.processing().items() if keys}
        if not busy:
            return
        if monotonic() > deadline:
            raise TimeoutError(f"tasks still processing after {timeout:g} s: {busy}")
        sleep(0.02)


def _noop(i: int) -> int:
    return i


def floor_round(client: Client, workers: list[str]) -> None:
    """The bare Dask floor of a round: one no-op task pinned to each worker, one gather."""
    futures = [client.submit(_noop, i, workers=[w], pure=False) for i, w in enumerate(workers)]
    # A deadline (a paused or lost worker must end the run, not hang it) that
    # costs the measured path no extra round trip: a timer cancels the futures,
    # and gather then raises.
    watchdog = threading.Timer(config.get_timeout("round-timeout"), client.cancel, args=(futures,))
    watchdog.daemon = True
    watchdog.start()
    try:
        client.gather(futures)
    finally:
        watchdog.cancel()


def _scaled(params: float, part: np.ndarray) -> np.ndarray:
    return params * part


def empty_round(session: CodedSession) -> None:
    """An engine round with (next to) no work, on a session placed with tiny partitions."""
    session.round(_scaled, 1.0)


def place_empty(session: CodedSession) -> None:
    """Place a 3-float partition per slot, for :func:`empty_round`."""
    session.place([np.ones(3)] * session.n_partitions)


def seconds_per_call(fn: Callable[[], Any], calls: int, warmup: int | None = None) -> float:
    """Mean seconds of ``fn()`` over ``calls`` calls, after a warm-up."""
    for _ in range(max(3, calls // 10) if warmup is None else warmup):
        fn()
    start = perf_counter()
    for _ in range(calls):
        fn()
    return (perf_counter() - start) / calls
