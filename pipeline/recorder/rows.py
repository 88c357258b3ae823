"""A latency row: its columns, a cursor, and recorder columns -> :class:`xarray.Dataset`.

The latency recorder (:class:`~dask_quorum.pipeline.recorder.LatencyRecorder`)
keeps one row per task that finishes on the cluster, with the columns
:data:`FIELDS`:

========  ==============================================================
worker    address of the worker that ran the task (``""`` if unknown)
key       the task's key, as ``str``
prefix    its task prefix (:func:`dask.utils.key_split` of the key)
queue     seconds from the task's transition *into* ``processing`` (it is
          assigned to a worker) to the start of its first compute interval
compute   seconds of its ``"compute"`` intervals
transfer  seconds of its ``"transfer"`` intervals (dependencies fetched
          from other workers)
units     work units it declared (annotation ``quorum_units``), else NaN
start     start of its first compute interval (scheduler clock, epoch s)
stop      end of its last compute interval (scheduler clock, epoch s)
erred     whether it ended ``processing -> erred`` instead of ``-> memory``
========  ==============================================================

Every row gets the next number of an ever-increasing sequence, which
serves as a cursor (:func:`check_since` validates one). The recorder serves
its rows as columns; :func:`rows_to_dataset` turns them into the
``("worker", "sample")`` Dataset that
:func:`~dask_quorum.pipeline.recorder.latencies` returns. Pure: NumPy, and
xarray imported on first use (a scheduler that records never loads it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xarray as xr

#: Columns of a row, in the order of the tuples kept by the recorder.
FIELDS = (
    "worker",
    "key",
    "prefix",
    "queue",
    "compute",
    "transfer",
    "units",
    "start",
    "stop",
    "erred",
)
_FLOAT_FIELDS = ("queue", "compute", "transfer", "units", "start", "stop")
_STR_FIELDS = ("prefix", "key")

_VARIABLE_ATTRS: dict[str, dict[str, str]] = {
    "queue": {"units": "s", "long_name": "from entering processing to compute start"},
    "compute": {"units": "s", "long_name": "compute time"},
    "transfer": {"units": "s", "long_name": "dependency transfer time"},
    "units": {"units": "1", "long_name": "declared work units (quorum_units)"},
    "start": {"units": "s since epoch", "long_name": "compute start (scheduler clock)"},
    "stop": {"units": "s since epoch", "long_name": "compute stop (scheduler clock)"},
    "erred": {"long_name": "task erred"},
    "prefix": {"long_name": "task prefix"},
    "key": {"long_name": "task key"},
}


def check_since(since: Any) -> int:
    """A cursor as an int (0 for None); ValueError when it is not a non-negative integer."""
    if since is None:
        return 0
    if isinstance(since, bool) or not isinstance(since, int | np.integer) or since < 0:
        raise ValueError(
            f"since must be None or a non-negative integer cursor "
            f"(ds.attrs['cursor'] of an earlier result), got {since!r}"
        )
    return int(since)


def rows_to_dataset(
    columns: Mapping[str, list], attrs: Mapping[str, Any] | None = None
) -> xr.Dataset:
    """Turn recorder columns into a ``("worker", "sample")`` Dataset.

    Pure function behind :func:`~dask_quorum.pipeline.recorder.latencies`.

    Parameters
    ----------
    columns : mapping of str to list
        One equally long list per name of :data:`FIELDS`.
    attrs : mapping, optional
        Attributes of the Dataset.

    Returns
    -------
    xarray.Dataset
        As described in :func:`~dask_quorum.pipeline.recorder.latencies`.

    Raises
    ------
    ValueError
        If a column is missing or the columns differ in length.

    Examples
    --------
    >>> ds = rows_to_dataset({
    ...     "worker": ["b", "a", "b"], "key": ["x-1", "y-1", "x-2"],
    ...     "prefix": ["x", "y", "x"], "queue": [0.0, 0.1, 0.2],
    ...     "compute": [1.0, 2.0, 3.0], "transfer": [0.0, 0.0, 0.5],
    ...     "units": [float("nan")] * 3, "start": [20.0, 5.0, 10.0],
    ...     "stop": [21.0, 7.0, 13.0], "erred": [False, False, True]})
    >>> dict(ds.sizes)
    {'worker': 2, 'sample': 2}
    >>> ds["compute"].values.tolist()
    [[2.0, nan], [3.0, 1.0]]
    >>> ds.key.values.tolist()
    [['y-1', ''], ['x-2', 'x-1']]
    """
    import xarray as xr

    missing = [name for name in FIELDS if name not in columns]
    if missing:
        raise ValueError(f"columns {missing} are missing; expected {list(FIELDS)}")
    lengths = {name: len(columns[name]) for name in FIELDS}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns differ in length: {lengths}")

    workers = sorted(set(columns["worker"]))
    index = {worker: i for i, worker in enumerate(workers)}
    n_rows = lengths["worker"]
    row_worker = np.fromiter(
        (index[w] for w in columns["worker"]), dtype=np.intp, count=n_rows
    )
    start = np.asarray(columns["start"], dtype=float)
    # By worker, then compute start (NaN, i.e. no compute interval, last).
    order = np.lexsort((start, row_worker))
    counts = np.bincount(row_worker, minlength=len(workers))
    n_samples = int(counts.max()) if n_rows else 0
    offsets = np.cumsum(counts) - counts
    rows = row_worker[order]
    samples = np.arange(n_rows) - offsets[rows]
    shape = (len(workers), n_samples)
    dims = ("worker", "sample")

    data: dict[str, tuple] = {}
    for name in _FLOAT_FIELDS:
        out = np.full(shape, np.nan)
        out[rows, samples] = np.asarray(columns[name], dtype=float)[order]
        data[name] = (dims, out, _VARIABLE_ATTRS[name])
    erred = np.zeros(shape, dtype=bool)
    erred[rows, samples] = np.asarray(columns["erred"], dtype=bool)[order]
    data["erred"] = (dims, erred, _VARIABLE_ATTRS["erred"])
    for name in _STR_FIELDS:
        out = np.full(shape, "", dtype=object)
        values = np.empty(n_rows, dtype=object)
        values[:] = columns[name]
        out[rows, samples] = values[order]
        data[name] = (dims, out, _VARIABLE_ATTRS[name])

    coords = {"worker": np.array(workers, dtype=str)}
    return xr.Dataset(data, coords=coords, attrs=dict(attrs or {}))
