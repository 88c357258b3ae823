"""Profiling a cluster: a calibrated probe workload, a straggler model, a file.

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
   :func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`.

The result, a :class:`ClusterProfile`, is saved as NetCDF (data, never a
pickle) with :meth:`ClusterProfile.save` and read back with
:func:`load_profile`; :func:`plan_profile` turns it into a recommendation
of a gradient code with :func:`~dask_quorum.pipeline.planning.plan`.

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
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from os import PathLike
from time import perf_counter
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr
from distributed import Client, Future

from dask_quorum import config

from ..cluster import worker_addresses
from ..planning.plan import DEFAULT_SCHEMES, Plan, _check_count, _check_real, plan
from ..recorder import attach, latencies
from ..engine import ROUND_PREFIX
from ..stragglers import StragglerModel, fit_straggler_model, latency_matrix

__all__ = [
    "PROBE_PREFIX",
    "PROBE_SIZE",
    "ClusterProfile",
    "load_profile",
    "plan_profile",
    "probe_work",
    "profile_cluster",
]

logger = logging.getLogger(__name__)

#: Key prefix of the probe tasks (their task prefix in the dashboard).
PROBE_PREFIX = f"{ROUND_PREFIX}-probe"
#: Values in the buffer of one unit of probe work.
PROBE_SIZE = 8192
#: Units of the calibration tasks.
CALIBRATION_UNITS = 20
#: ``format`` attribute of a saved profile.
PROFILE_FORMAT = "dask-quorum-profile"
#: Version of the saved layout; bumped when it changes incompatibly.
PROFILE_VERSION = 1
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


# ---------------------------------------------------------------------------
# the profile


@dataclass(frozen=True, eq=False)
class ClusterProfile:
    """What :func:`profile_cluster` measured, and the straggler model fitted from it.

    Parameters
    ----------
    model : StragglerModel
        Fitted from the probe rounds, with its ``latencies`` (seconds per
        unit of probe work, rounds x workers).
    task_units : int
        Units of work in every probe task.
    unit_seconds : float
        Seconds per unit measured by the calibration (median over workers).
    scheduler : str
        Address of the profiled scheduler.
    created : str
        When the profile was taken (ISO 8601, UTC).

    Raises
    ------
    ValueError
        If ``model`` has no latencies, or ``task_units`` / ``unit_seconds``
        are not positive.
    """

    model: StragglerModel
    task_units: int
    unit_seconds: float
    scheduler: str = ""
    created: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.model, StragglerModel):
            raise ValueError(f"model must be a StragglerModel, got {type(self.model).__name__}")
        if self.model.latencies is None:
            raise ValueError("the profile's model needs the latencies it was fitted from")
        object.__setattr__(self, "task_units", _check_count(self.task_units, "task_units"))
        object.__setattr__(self, "unit_seconds", _check_real(self.unit_seconds, "unit_seconds", strict=True))

    @property
    def workers(self) -> tuple[str, ...]:
        """The profiled workers."""
        return self.model.workers

    @property
    def task_seconds(self) -> np.ndarray:
        """``(n_rounds, n_workers)`` compute seconds of every probe task (NaN if missing)."""
        return self.model.latencies * self.task_units

    @property
    def typical_unit_seconds(self) -> float:
        """Median over rounds of the round's median seconds per unit."""
        lat = self.model.latencies
        rows = ~np.isnan(lat).all(axis=1)
        return float(np.median(np.nanmedian(lat[rows], axis=1)))

    def table(self) -> pd.DataFrame:
        """One row per worker: the probe tasks' times and the fitted model.

        Returns
        -------
        pandas.DataFrame
            Index ``worker``; columns ``rounds`` (observed), ``median_s``,
            ``p95_s`` and ``max_s`` (seconds per probe task), ``p``
            (straggle frequency), ``p_slow_slow``, ``p_slow_fast`` and
            ``slowdown`` (see :class:`StragglerModel`).
        """
        sec = self.task_seconds
        m = self.model
        with np.errstate(all="ignore"):
            return pd.DataFrame(
                {
                    "rounds": m.n_rounds,
                    "median_s": np.nanmedian(sec, axis=0),
                    "p95_s": np.nanpercentile(sec, 95, axis=0),
                    "max_s": np.nanmax(sec, axis=0),
                    "p": m.p,
                    "p_slow_slow": m.p_slow_slow,
                    "p_slow_fast": m.p_slow_fast,
                    "slowdown": m.slowdown,
                },
                index=pd.Index(list(m.workers), name="worker"),
            )

    def summary(self) -> str:
        """The per-worker table as text; ``*`` marks workers slow in most rounds."""
        table = self.table()
        slow = set(self.model.slow_workers())
        table.index = [f"{w} *" if w in slow else w for w in table.index]
        table.index.name = "worker"
        lines = [
            f"{self.model.n_workers} workers, {self.model.latencies.shape[0]} rounds of probe tasks "
            f"of {self.task_units} units (typically {self.task_units * self.typical_unit_seconds:.3g} s), "
            f"straggler threshold {self.model.threshold:g} x the round median",
            table.to_string(
                formatters={
                    "median_s": "{:.4f}".format,
                    "p95_s": "{:.4f}".format,
                    "max_s": "{:.4f}".format,
                    "p": "{:.3f}".format,
                    "p_slow_slow": "{:.3f}".format,
                    "p_slow_fast": "{:.3f}".format,
                    "slowdown": "{:.3g}".format,
                }
            ),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"ClusterProfile({self.model.n_workers} workers of {self.scheduler or '?'}, "
            f"{self.model.latencies.shape[0]} rounds, slow={self.model.slow_workers()})"
        )

    # -- serialisation -------------------------------------------------------
    def to_dataset(self) -> xr.Dataset:
        """The profile as an :class:`xarray.Dataset`.

        The model's parameters (:meth:`StragglerModel.to_dataset`), the
        variable ``latency`` (dims ``round, worker``: seconds per unit of
        probe work, NaN where missing) and the attributes ``format``,
        ``version``, ``task_units``, ``unit_seconds``, ``scheduler`` and
        ``created``.
        """
        ds = self.model.to_dataset()
        ds["latency"] = (
            ("round", "worker"),
            np.asarray(self.model.latencies, dtype=float),
            {"description": "compute seconds per unit of probe work", "units": "s"},
        )
        ds.attrs.update(
            format=PROFILE_FORMAT,
            version=PROFILE_VERSION,
            task_units=self.task_units,
            unit_seconds=self.unit_seconds,
            scheduler=self.scheduler,
            created=self.created,
        )
        return ds

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> ClusterProfile:
        """Rebuild a profile from :meth:`to_dataset` output.

        Raises
        ------
        ValueError
            If the Dataset is not a dask-quorum profile of this version, or
            a variable or attribute is missing or invalid.
        """
        if not isinstance(ds, xr.Dataset):
            raise ValueError(f"ds must be an xarray.Dataset, got {type(ds).__name__}")
        fmt = ds.attrs.get("format")
        if fmt != PROFILE_FORMAT:
            raise ValueError(f"not a dask-quorum profile: format attribute is {fmt!r}, expected {PROFILE_FORMAT!r}")
        version = _scalar(ds.attrs.get("version"), "version")
        if version != PROFILE_VERSION:
            raise ValueError(f"profile version {version:g} is not supported (expected {PROFILE_VERSION})")
        if "latency" not in ds.data_vars or ds["latency"].dims != ("round", "worker"):
            raise ValueError("the profile lacks the variable 'latency' with dims ('round', 'worker')")
        model = StragglerModel.from_dataset(ds, latencies=ds["latency"].to_numpy())
        return cls(
            model=model,
            task_units=int(_scalar(ds.attrs.get("task_units"), "task_units")),
            unit_seconds=_scalar(ds.attrs.get("unit_seconds"), "unit_seconds"),
            scheduler=str(ds.attrs.get("scheduler", "")),
            created=str(ds.attrs.get("created", "")),
        )

    def save(self, path: str | PathLike[str]) -> None:
        """Write the profile to a NetCDF file (:meth:`to_dataset`, scipy engine).

        Raises
        ------
        OSError
            If the file cannot be written.
        """
        self.to_dataset().to_netcdf(path, engine="scipy")
        logger.info("profile of %d workers written to %s", self.model.n_workers, path)


def load_profile(path: str | PathLike[str]) -> ClusterProfile:
    """Read a profile written by :meth:`ClusterProfile.save`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ClusterProfile

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        If the file is not NetCDF or not a dask-quorum profile.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no profile file {os.fspath(path)!r}")
    try:
        with xr.open_dataset(path, engine="scipy") as ds:
            ds = ds.load()
    except (TypeError, ValueError, OSError) as exc:
        raise ValueError(f"cannot read {os.fspath(path)!r} as a NetCDF profile: {exc}") from exc
    return ClusterProfile.from_dataset(ds)


# ---------------------------------------------------------------------------
# measuring


def _scalar(value: Any, name: str) -> float:
    arr = np.asarray(value if value is not None else np.nan)
    if arr.size != 1 or arr.dtype.kind not in "iuf" or not np.isfinite(arr).all():
        raise ValueError(f"the profile's attribute {name!r} must be one finite number, got {value!r}")
    return float(arr.item())


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
    rounds = _check_count(rounds if rounds is not None else config.get("profile.rounds"), "rounds")
    if rounds < 2:
        raise ValueError(f"rounds must be an integer >= 2 (a model needs two rounds), got {rounds}")
    target = _check_real(
        task_seconds if task_seconds is not None else config.get_timeout("profile.task-seconds"),
        "task_seconds",
        strict=True,
    )
    timeout = _check_real(
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


# ---------------------------------------------------------------------------
# planning


def plan_profile(
    profile: ClusterProfile,
    *,
    schemes: Sequence[str] = DEFAULT_SCHEMES,
    redundancy: int = 2,
    n_rounds: int = 500,
    error_tol: float | None = None,
    partition_seconds: float | None = None,
    random_state: Any = 0,
) -> Plan:
    """Expected round time, decoding error and cost per scheme for a profiled cluster.

    :func:`~dask_quorum.pipeline.planning.plan` on the profile's model, with
    partitions of a given amount of work.

    Parameters
    ----------
    profile : ClusterProfile
    schemes, redundancy, n_rounds, error_tol, random_state
        As in :func:`~dask_quorum.pipeline.planning.plan`.
    partition_seconds : float, optional
        Compute seconds of one data partition on a typical worker (a worker
        of a coded scheme holds ``redundancy`` of them). Default: the
        profile's probe task.

    Returns
    -------
    Plan

    Raises
    ------
    ValueError
        On an invalid argument (see :func:`~dask_quorum.pipeline.planning.plan`).
    """
    if not isinstance(profile, ClusterProfile):
        raise ValueError(f"profile must be a ClusterProfile, got {type(profile).__name__}")
    if partition_seconds is None:
        rows = float(profile.task_units)
    else:
        rows = _check_real(partition_seconds, "partition_seconds", strict=True) / profile.typical_unit_seconds
    return plan(
        profile.model,
        schemes=schemes,
        redundancy=redundancy,
        n_rounds=n_rounds,
        error_tol=error_tol,
        random_state=random_state,
        rows_per_partition=rows,
    )
