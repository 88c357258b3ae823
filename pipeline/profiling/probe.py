"""Profiling a running cluster with a calibrated probe workload: :func:`profile_cluster`.

:func:`profile_cluster` measures every worker of a running cluster the way
the engine would see it, without any data of the user's:

1. **Calibration.** Every worker runs a short probe task (a warm-up and a
   first estimate), then one of the estimated full size; the median over
   workers of the measured seconds per unit of work sets the number of
   units per task, so that a probe task takes about ``task_seconds`` on a
   typical worker.
2. **Rounds.** ``rounds`` times, every worker gets one probe task of that
   many units, pinned to it and declaring its units
   (``dask.annotate(quorum_units=...)``), and the round waits for all of
   them (within ``round_timeout``). Their keys follow the engine's round
   tasks, ``("quorum-round-probe-<token>", round, worker_index)``, so the
   latency recorder's rows line up by round.
3. **Fit.** The rows of these tasks are read back from the
   :class:`~dask_quorum.pipeline.recorder.LatencyRecorder` (attached if it
   is not), arranged by :func:`~dask_quorum.pipeline.stragglers.latency_matrix`
   (compute seconds per unit) and fitted with
   :func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`, giving a
   :class:`~dask_quorum.pipeline.profiling.ClusterProfile`.

A unit of probe work is one ``numpy.cos`` pass over a buffer of
:data:`PROBE_SIZE` float64 values: single-threaded, no BLAS, no
allocation, the same on every worker. Injected stragglers
(:func:`~dask_quorum.pipeline.inject.inject_stragglers`) slow it down
like any other task.

Examples
--------
>>> from dask_quorum.pipeline.profiling import load_profile, plan_profile, profile_cluster
>>> profile = profile_cluster(client, rounds=20)  # doctest: +SKIP
>>> print(profile.summary())  # doctest: +SKIP
>>> profile.save("cluster.nc")  # doctest: +SKIP
>>> print(plan_profile(load_profile("cluster.nc"), redundancy=2))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime, timezone
from time import perf_counter

import dask
import numpy as np
from distributed import Client, Future

from dask_quorum import config

from ..cluster import worker_addresses
from ..engine import ROUND_PREFIX
from ..planning import check_count, check_real
from ..recorder import attach, latencies
from ..stragglers import fit_straggler_model, latency_matrix
from .profile import ClusterProfile

logger = logging.getLogger(__name__)

#: Key prefix of the probe tasks (their task prefix in the dashboard).
PROBE_PREFIX = f"{ROUND_PREFIX}-probe"
#: Values in the buffer of one unit of probe work.
PROBE_SIZE = 8192
#: Units of the calibration tasks.
CALIBRATION_UNITS = 20

# Reads no recorder row: a cursor beyond any recorder's, to learn the current one.
_NO_ROWS = 2**62


def probe_work(units: int, size: int = PROBE_SIZE) -> float:
    """Worker side of a probe task: ``units`` passes of ``numpy.cos`` over ``size`` values.

    Parameters
    ----------
    units : int
        Passes, >= 1.
    size : int, default=PROBE_SIZE
        Values in the buffer.

    Returns
    -------
    float
        Seconds the passes took, measured inside the task (an injected
        slowdown, added after the task's function returns, is not part of it).
    """
    buf = np.linspace(0.0, 1.0, size)
    start = perf_counter()
    for _ in range(units):
        np.cos(buf, out=buf)
    return perf_counter() - start


def _run_round(
    client: Client,
    workers: Sequence[str],
    key: str,
    t: int,
    units: int,
    timeout: float,
    annotate: bool,
) -> list[float]:
    """One probe task per worker, pinned to it; wait for all within ``timeout``."""
    futures: list[Future] = []
    with dask.annotate(quorum_units=units) if annotate else nullcontext():
        for i, worker in enumerate(workers):
            futures.append(
                client.submit(
                    probe_work,
                    units,
                    key=(key, t, i),
                    workers=[worker],
                    allow_other_workers=False,
                    pure=False,
                )
            )
    # distributed.wait would wait through the default client, not ``client``:
    # count the finished futures instead.
    pending = [len(futures)]
    lock = threading.Lock()
    all_done = threading.Event()

    def _finished(_: Future) -> None:
        with lock:
            pending[0] -= 1
            if pending[0] == 0:
                all_done.set()

    try:
        for f in futures:
            f.add_done_callback(_finished)
        if not all_done.wait(timeout):
            late = sorted(workers[i] for i, f in enumerate(futures) if not f.done())
            client.cancel(futures)
            raise TimeoutError(
                f"probe round {t} did not finish within {timeout:g} s; still waiting on {late}"
            )
        return [float(x) for x in client.gather(futures)]  # raises a task's error
    finally:
        for f in futures:
            f.release()


def profile_cluster(
    client: Client,
    *,
    rounds: int | None = None,
    task_seconds: float | None = None,
    round_timeout: float | None = None,
    threshold: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
) -> ClusterProfile:
    """Run the probe workload on every worker and fit a straggler model.

    Parameters
    ----------
    client : distributed.Client
        Connected to the cluster to profile; it needs at least one worker.
    rounds : int, optional
        Probe rounds, >= 2. Default ``quorum.profile.rounds``.
    task_seconds : float, optional
        Compute time of one probe task on a typical worker, in seconds.
        Default ``quorum.profile.task-seconds``.
    round_timeout : float, optional
        Longest one round (calibration included) may take, in seconds.
        Default ``quorum.profile.round-timeout``.
    threshold : float, default=2.0
        Straggle threshold of :func:`fit_straggler_model`.
    progress : callable, optional
        Called as ``progress(done, total)`` after every probe round.

    Returns
    -------
    ClusterProfile

    Raises
    ------
    ValueError
        On an invalid argument.
    TimeoutError
        If the cluster has no worker within ``quorum.setup-timeout``, or a
        round does not finish within ``round_timeout`` (the message names
        the workers it waited on).

    Notes
    -----
    The tasks stay on the cluster's recorder like any others: a fit's
    adapter reads only its own session's round tasks, so a profile taken
    while a fit runs does not disturb it (but it does compete for the
    workers).
    """
    rounds = check_count(rounds if rounds is not None else config.get("profile.rounds"), "rounds")
    if rounds < 2:
        raise ValueError(f"rounds must be an integer >= 2 (a model needs two rounds), got {rounds}")
    target = check_real(
        task_seconds if task_seconds is not None else config.get_timeout("profile.task-seconds"),
        "task_seconds",
        strict=True,
    )
    timeout = check_real(
        round_timeout if round_timeout is not None else config.get_timeout("profile.round-timeout"),
        "round_timeout",
        strict=True,
    )
    workers = worker_addresses(client)
    token = uuid.uuid4().hex[:12]

    # Calibration: a short warm-up round gives a first estimate of the seconds
    # per unit; a round of full-size tasks, all workers at once as in the
    # probe rounds, refines it (short tasks rarely overlap and miss the
    # contention of workers sharing a machine).
    calibrate = f"quorum-probe-calibrate-{token}"
    units = CALIBRATION_UNITS
    for step in range(2):
        measured = _run_round(client, workers, calibrate, step, units, timeout, annotate=False)
        unit_seconds = max(float(np.median(measured)) / units, 1e-9)
        units = max(1, round(target / unit_seconds))
    logger.info(
        "probe: %d workers, %.3g s per unit, %d units per task, %d rounds",
        len(workers), unit_seconds, units, rounds,
    )

    attach(client)
    cursor = latencies(client, since=_NO_ROWS).attrs["cursor"]
    key = f"{PROBE_PREFIX}-{token}"
    for t in range(rounds):
        _run_round(client, workers, key, t, units, timeout, annotate=True)
        if progress is not None:
            progress(t + 1, rounds)

    ds = latencies(client, since=cursor)
    if ds.attrs.get("dropped"):
        logger.warning(
            "the latency recorder dropped %d rows during the profile; raise quorum.recorder.capacity",
            ds.attrs["dropped"],
        )
    keys = ds["key"].to_numpy()
    mine = np.array([key in k for k in keys.ravel()], dtype=bool).reshape(keys.shape)
    ds["key"] = (ds["key"].dims, np.where(mine, keys, ""))
    matrix, names = latency_matrix(ds, workers=workers)
    model = fit_straggler_model(matrix, workers=names, threshold=threshold)
    return ClusterProfile(
        model=model,
        task_units=units,
        unit_seconds=unit_seconds,
        scheduler=str(client.scheduler.address),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
