"""A cluster's profile: its straggler model and the probe it was measured with, as a file.

A :class:`ClusterProfile` is saved as NetCDF (data, never a pickle) with
:meth:`ClusterProfile.save` and read back with :func:`load_profile`;
:func:`plan_profile` turns it into a recommendation of a gradient code with
:func:`~dask_quorum.pipeline.planning.plan`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..planning import DEFAULT_SCHEMES, Plan, check_count, check_real, plan
from ..stragglers import StragglerModel

logger = logging.getLogger(__name__)

#: ``format`` attribute of a saved profile.
PROFILE_FORMAT = "dask-quorum-profile"
#: Version of the saved layout; bumped when it changes incompatibly.
PROFILE_VERSION = 1


@dataclass(frozen=True, eq=False)
class ClusterProfile:
    """What :func:`~dask_quorum.pipeline.profiling.profile_cluster` measured, and the straggler model fitted from it.

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
        object.__setattr__(self, "task_units", check_count(self.task_units, "task_units"))
        object.__setattr__(self, "unit_seconds", check_real(self.unit_seconds, "unit_seconds", strict=True))

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


def _scalar(value: Any, name: str) -> float:
    arr = np.asarray(value if value is not None else np.nan)
    if arr.size != 1 or arr.dtype.kind not in "iuf" or not np.isfinite(arr).all():
        raise ValueError(f"the profile's attribute {name!r} must be one finite number, got {value!r}")
    return float(arr.item())


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
        rows = check_real(partition_seconds, "partition_seconds", strict=True) / profile.typical_unit_seconds
    return plan(
        profile.model,
        schemes=schemes,
        redundancy=redundancy,
        n_rounds=n_rounds,
        error_tol=error_tol,
        random_state=random_state,
        rows_per_partition=rows,
    )
