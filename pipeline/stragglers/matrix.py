"""Latency matrices: measured latencies as a ``(n_rounds, n_workers)`` matrix.

Holds :func:`latency_matrix` and its readers: wide arrays and DataFrames,
long frames (a worker, a round and a ``seconds`` column, such as one trace
of :func:`~dask_quorum.pipeline.stragglers.load_trace`) and the latency
recorder's Dataset, whose samples are aligned by the round number parsed
from the engine's task keys.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ._checks import _check_names, _check_values

logger = logging.getLogger(__name__)

#: Accepted names of the long-format columns, in order of preference.
WORKER_COLUMNS = ("worker", "node")
ROUND_COLUMNS = ("round", "iteration")
VALUE_COLUMN = "seconds"
#: Task keys of the engine's round tasks, ``str((f"quorum-round-{token}", round, worker))``.
ROUND_KEY = re.compile(r"""^\(\s*['"]quorum-round-([^'"]*)['"]\s*,\s*(\d+)\s*,\s*(\d+)\s*,?\s*\)$""")


def _pick_column(df: pd.DataFrame, names: Sequence[str], role: str) -> str:
    present = [c for c in names if c in df.columns]
    if not present:
        raise ValueError(
            f"long-format latencies need a {role} column named one of {list(names)}; "
            f"found {list(df.columns)}"
        )
    if len(present) > 1:
        raise ValueError(f"ambiguous {role} column: both {present} are present")
    return present[0]


def _from_long(df: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    wcol = _pick_column(df, WORKER_COLUMNS, "worker")
    rcol = _pick_column(df, ROUND_COLUMNS, "round")
    if VALUE_COLUMN not in df.columns:
        raise ValueError(f"long-format latencies need a {VALUE_COLUMN!r} column; found {list(df.columns)}")
    if "trace" in df.columns and df["trace"].nunique() > 1:
        raise ValueError(
            f"the frame holds {df['trace'].nunique()} traces {sorted(df['trace'].unique())}; "
            "select one (load_trace(path, trace) does)"
        )
    rounds = pd.to_numeric(df[rcol], errors="coerce")
    if rounds.isna().any() or (rounds != np.floor(rounds)).any():
        raise ValueError(f"column {rcol!r} must hold integer round numbers")
    coerced = pd.to_numeric(df[VALUE_COLUMN], errors="coerce")
    if (coerced.isna() & df[VALUE_COLUMN].notna()).any():
        raise ValueError(f"column {VALUE_COLUMN!r} holds non-numeric values")
    values = coerced.to_numpy(dtype=float)
    if "units" in df.columns:
        units = pd.to_numeric(df["units"], errors="coerce").to_numpy(dtype=float)
        values = _per_unit(values, units)
    frame = pd.DataFrame(
        {"w": df[wcol].astype(str).to_numpy(), "r": rounds.astype(np.int64).to_numpy(), "v": values}
    )
    if frame.duplicated(["w", "r"]).any():
        first = frame[frame.duplicated(["w", "r"])].iloc[0]
        raise ValueError(f"worker {first['w']!r} has several latencies for {rcol} {first['r']}")
    wide = frame.pivot(index="r", columns="w", values="v")
    if len(wide):
        wide = wide.reindex(np.arange(wide.index.min(), wide.index.max() + 1))  # gaps become NaN rows
    names = sorted(frame["w"].unique())
    wide = wide.reindex(columns=names)
    return wide.to_numpy(dtype=float), names


def _per_unit(compute: np.ndarray, units: np.ndarray) -> np.ndarray:
    known = np.isfinite(units)
    if (units[known] <= 0).any():
        bad = units[known][units[known] <= 0][0]
        raise ValueError(f"units must be positive where known (NaN = unknown); found {bad:g}")
    return np.where(known, compute / np.where(known, units, 1.0), compute)


def _parse_round_key(key: Any) -> tuple[str, int] | None:
    if isinstance(key, tuple):
        key = str(key)
    if not isinstance(key, str):
        return None
    m = ROUND_KEY.match(key.strip())
    return (m.group(1), int(m.group(2))) if m else None


def _recorder_samples(ds: xr.Dataset) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray, dict]:
    """Per-unit values, worker names, start times, valid mask and parsed round keys of a recorder Dataset."""
    if "compute" not in ds.data_vars:
        raise ValueError(f"the Dataset needs a 'compute' variable (seconds); found {list(ds.data_vars)}")
    dims = set(ds["compute"].dims)
    if dims != {"worker", "sample"}:
        raise ValueError(f"'compute' must have dims ('worker', 'sample'), got {ds['compute'].dims}")

    def _var(name: str) -> np.ndarray | None:
        return ds[name].transpose("worker", "sample").to_numpy() if name in ds.variables else None

    compute = np.asarray(_var("compute"), dtype=float)
    n_workers, n_samples = compute.shape
    if "worker" in ds.coords:
        names = [str(w) for w in ds["worker"].to_numpy()]
    else:
        names = [str(i) for i in range(n_workers)]
    units = _var("units")
    value = compute if units is None else _per_unit(compute, np.asarray(units, dtype=float))
    start = _var("start")
    if start is None:  # no start times: the recorder's sample order
        start = np.broadcast_to(np.arange(n_samples, dtype=float), compute.shape)
    start = np.asarray(start, dtype=float)
    keys = _var("key")
    valid = ~np.isnan(value)
    erred = _var("erred")
    if erred is not None:  # a failed task's time is no latency
        valid &= ~np.asarray(erred, dtype=bool)
    if "" in names:  # the recorder's row for tasks whose worker is unknown
        valid[names.index("")] = False

    parsed: dict[tuple[int, int], tuple[str, int]] = {}
    if keys is not None:
        for i, s in zip(*np.nonzero(valid)):
            pk = _parse_round_key(keys[i, s])
            if pk is not None:
                parsed[(i, s)] = pk
    return value, names, start, valid, parsed


def _from_recorder(ds: xr.Dataset) -> tuple[np.ndarray, list[str]]:
    value, names, start, valid, parsed = _recorder_samples(ds)
    n_workers = len(names)

    if parsed:
        dropped = int(valid.sum()) - len(parsed)
        if dropped:
            logger.debug("latency_matrix: ignoring %d samples that are not round tasks", dropped)
        offset, total = {}, 0
        for token, (lo, hi) in _spans(parsed, start).items():
            offset[token] = total - lo
            total += hi - lo + 1
        x = np.full((total, n_workers), np.nan)
        # the latest measurement of a (round, worker) wins (e.g. a resubmitted task)
        order = np.where(np.isnan(start), -np.inf, start)
        for (i, s), (token, r) in sorted(parsed.items(), key=lambda kv: order[kv[0]]):
            x[offset[token] + r, i] = value[i, s]
        return _drop_unknown_worker(x, names)

    counts = valid.sum(axis=1)
    x = np.full((int(counts.max(initial=0)), n_workers), np.nan)
    for i in range(n_workers):
        idx = np.flatnonzero(valid[i])
        idx = idx[np.argsort(start[i, idx], kind="stable")]
        x[: len(idx), i] = value[i, idx]
    return _drop_unknown_worker(x, names)


def _spans(parsed: dict[tuple[int, int], tuple[str, int]], start: np.ndarray) -> dict[str, tuple[int, int]]:
    """First and last round of each token, in the order of the tokens' first start."""
    first_start: dict[str, float] = {}
    span: dict[str, tuple[int, int]] = {}
    for (i, s), (token, r) in parsed.items():
        st = start[i, s]
        first_start[token] = min(first_start.get(token, np.inf), st if np.isfinite(st) else np.inf)
        lo, hi = span.get(token, (r, r))
        span[token] = (min(lo, r), max(hi, r))
    return {token: span[token] for token in sorted(span, key=lambda tk: (first_start[tk], tk))}


def round_spans(ds: xr.Dataset) -> dict[str, tuple[int, int]]:
    """The rounds of each fit in a recorder Dataset, as :func:`latency_matrix` stacks them.

    Parameters
    ----------
    ds : xarray.Dataset
        The latency recorder's Dataset (see :func:`latency_matrix`).

    Returns
    -------
    dict
        ``{token: (first round, last round)}`` of the engine's round tasks
        with a valid sample, in the order of their rows in the matrix: the
        rows of ``token`` are its rounds ``first .. last``. Empty when no
        key parses as a round task.

    Raises
    ------
    ValueError
        If the Dataset lacks ``compute`` or has other dims.
    """
    _, _, start, _, parsed = _recorder_samples(ds)
    return _spans(parsed, start)


def _drop_unknown_worker(x: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    if "" not in names:
        return x, names
    keep = [j for j, w in enumerate(names) if w != ""]
    logger.debug("latency_matrix: dropping the samples of unknown workers")
    return x[:, keep], [names[j] for j in keep]


def latency_matrix(
    data: Any,
    *,
    workers: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Arrange measured latencies as a ``(n_rounds, n_workers)`` matrix.

    Parameters
    ----------
    data : array-like, pandas.DataFrame or xarray.Dataset
        One of

        * a 2-D array-like, rounds x workers (NaN = missing); a wide
          DataFrame's columns name the workers;
        * a long DataFrame with a worker column (``worker`` or ``node``), a
          round column (``round`` or ``iteration``, integers) and
          ``seconds``, optionally ``units`` (rows processed; NaN = unknown),
          such as one trace of the EC2 CSV
          (:func:`~dask_quorum.pipeline.stragglers.load_trace`). Rows are
          aligned by round number (missing rounds in between become NaN
          rows), workers sorted by name;
        * an :class:`xarray.Dataset` shaped like the latency recorder's
          output: dims ``(worker, sample)``, ``compute`` (seconds),
          ``units`` (rows; NaN when unknown), ``start`` and ``key`` (str of
          the task key). Samples whose key parses as an engine round task,
          ``str(("quorum-round-<token>", round, worker_index))``, are aligned
          by round number (several tokens are stacked in order of their
          first start; the latest sample wins for a repeated round) and
          other tasks are ignored; when no key parses, the i-th sample of
          every worker in start-time order forms round i. Samples with
          ``erred`` True and the worker ``""`` (tasks whose worker the
          scheduler did not report) are left out.
    workers : sequence of str, optional
        For an array: the worker names (default ``"0"``, ``"1"``, ...). For
        a DataFrame or Dataset: the workers to keep, in this order.

    Returns
    -------
    latencies : numpy.ndarray
        ``(n_rounds, n_workers)`` float matrix of per-unit latencies
        (``compute / units`` where units are known), NaN where missing.
    workers : list of str
        Worker names, one per column.

    Raises
    ------
    ValueError
        If the input is not 2-D, is empty, holds non-numeric, negative or
        infinite values, lacks a needed column or variable, holds several
        traces, or ``workers`` names an unknown worker or has the wrong
        length.
    """
    names: list[str] | None = None
    if isinstance(data, xr.Dataset):
        x, names = _from_recorder(data)
    elif (
        isinstance(data, pd.DataFrame)
        and any(c in data.columns for c in WORKER_COLUMNS)
        and VALUE_COLUMN in data.columns
    ):
        x, names = _from_long(data)
    else:
        if isinstance(data, pd.DataFrame):
            names = [str(c) for c in data.columns]
        elif isinstance(data, xr.DataArray):
            raise ValueError(
                "pass an xarray.DataArray as data.values (rounds x workers) or a recorder Dataset"
            )
        try:
            x = np.array(data, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"latencies must be numeric: {exc}") from exc
        if x.ndim != 2:
            raise ValueError(f"latencies must be 2-D (rounds x workers), got shape {x.shape}")
        if names is None:
            if workers is None:
                names = [str(i) for i in range(x.shape[1])]
            else:
                names = _check_names(workers, x.shape[1])
            workers = None
    if x.size == 0:
        raise ValueError(f"latencies are empty (shape {x.shape})")
    _check_values(x)
    names = _check_names(names, x.shape[1])
    if workers is not None:
        wanted = [str(w) for w in workers]
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ValueError(f"unknown worker(s) {unknown}; known: {names}")
        x = x[:, [names.index(w) for w in wanted]]
        names = _check_names(wanted, len(wanted))
    return x, names
