"""Per-worker straggler models fitted from measured latencies.

A *straggler model* says, for every worker, how often it is slow, whether
its slowness persists from one round to the next, and how long a unit of
work takes when it is fast and when it is slow. The engine fits one from the
latencies it measured and uses it to place data, to set deadlines and to
decide when to re-encode (:meth:`StragglerModel.changed`).

The model (DESIGN.md, section 3)
--------------------------------
Latencies are per unit of work (task compute time divided by the rows it
processed) arranged as a ``(n_rounds, n_workers)`` matrix with NaN where a
worker did not report (:func:`latency_matrix`). For every worker ``i``:

* **Straggle indicator.** Worker ``i`` straggles in round ``t`` when
  ``latency[t, i] > threshold * median_j latency[t, j]``, the median being
  over the workers observed in that round (``c x the round median`` with
  ``c = threshold``, default 2). A worker alone in a round never straggles.
* **Frequency.** ``p[i]`` is the fraction of the worker's observed rounds
  in which it straggled (the maximum-likelihood estimate, no smoothing).
* **Persistence.** A two-state Markov chain (fast, slow) fitted from the
  pairs of *consecutive observations* of the worker, i.e. its successive
  observed rounds; rounds in between in which it was not observed (NaN:
  the engine skips a worker still busy with an earlier round's task, so a
  10x straggler reports about one round in ten) are stepped over:
  ``P(slow | slow) = (n_ss + 2a m_s) / (n_ss + n_sf + 2a)`` and
  ``P(slow | fast) = (n_fs + 2a m_f) / (n_fs + n_ff + 2a)``, i.e. the
  posterior mean under a ``Beta(2a m, 2a (1 - m))`` prior of strength
  ``2a`` (``a = prior``, default 1) centred on the *cluster's* pooled rate
  ``m = (sum of the workers' counts + a) / (their trials + 2a)``
  (empirical Bayes). A worker seen for a few rounds thus takes the
  cluster's behaviour, not a coin flip: after three clean rounds a healthy
  worker of fifteen gets P(slow | fast) of about 0.02, where add-one
  smoothing would say 0.25 and make every plan expect a straggler in most
  rounds. Both stay strictly inside (0, 1); a state no worker ever showed
  gets 1/2.
* **Latency per state.** A shifted exponential ``T = shift + Exp(rate)``
  per state with the maximum-likelihood estimates ``shift = min`` and
  ``1 / rate = mean - min`` (Lee et al., arXiv 1512.02673; per node:
  Reisizadeh et al., arXiv 1701.05973). A state with fewer than two samples
  for a worker borrows the cluster's pooled parameters of that state (all
  workers' samples of the state together); if no worker of the cluster
  ever straggled, the slow state is the fast state stretched to the
  straggle threshold: ``slow_shift = threshold * typical`` and
  ``slow_rate = rate / threshold``, with ``typical`` the median of the
  round medians. ``rate`` is ``inf`` when all samples of a state are equal
  (a point mass).
* **Slowdown.** ``median(slow latencies) / typical``. A worker never seen
  slow gets the cluster's pooled value (the median of all workers' slow
  latencies over ``typical``), or, when nobody straggled, the median of its
  stretched slow-state distribution over ``typical``. Borrowed slow-state
  values describe what a slow round of that worker would likely look like;
  ``p`` says how rarely it happens.

Gamma-by-moments fits of both states are reported by
:meth:`StragglerModel.goodness_of_fit` as an alternative to compare with.

Examples
--------
>>> import numpy as np
>>> from dask_quorum.pipeline.stragglers import fit_straggler_model
>>> rng = np.random.default_rng(0)
>>> x = 1.0 + rng.exponential(0.01, size=(200, 4))
>>> x[:, 3] *= 10                      # worker "3" is always ten times slower
>>> model = fit_straggler_model(x)
>>> model.slow_workers()
['3']
>>> round(float(model.slowdown[3]), 1)
10.0
"""

from __future__ import annotations

import logging
import warnings
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

__all__ = [
    "StragglerModel",
    "current_states",
    "fit_straggler_model",
    "latency_matrix",
    "load_trace",
]

logger = logging.getLogger(__name__)

#: Columns of the EC2 trace CSV (``/work/shared/traces``).
TRACE_COLUMNS = ("trace", "node", "iteration", "seconds")
#: Accepted names of the long-format columns, in order of preference.
WORKER_COLUMNS = ("worker", "node")
ROUND_COLUMNS = ("round", "iteration")
VALUE_COLUMN = "seconds"
#: Fewest samples of a state from which a worker's own parameters are fitted.
MIN_STATE_SAMPLES = 2
#: Task keys of the engine's round tasks, ``str((f"quorum-round-{token}", round, worker))``.
ROUND_KEY = re.compile(r"""^\(\s*['"]quorum-round-([^'"]*)['"]\s*,\s*(\d+)\s*,\s*(\d+)\s*,?\s*\)$""")

_FIELDS = (
    "p",
    "p_slow_slow",
    "p_slow_fast",
    "shift",
    "rate",
    "slow_shift",
    "slow_rate",
    "slowdown",
    "n_rounds",
)
_DESCRIPTIONS = {
    "p": "fraction of observed rounds in which the worker straggled",
    "p_slow_slow": "P(slow at t+1 | slow at t)",
    "p_slow_fast": "P(slow at t+1 | fast at t)",
    "shift": "fast state: shift of the shifted exponential (s per unit)",
    "rate": "fast state: rate of the shifted exponential (1 / (s per unit))",
    "slow_shift": "slow state: shift of the shifted exponential (s per unit)",
    "slow_rate": "slow state: rate of the shifted exponential (1 / (s per unit))",
    "slowdown": "median slow latency / median of the round medians",
    "n_rounds": "rounds in which the worker was observed",
}


# ---------------------------------------------------------------------------
# validation helpers


def _check_threshold(threshold: float) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number > 1, got {threshold!r}") from None
    if not math.isfinite(value) or value <= 1.0:
        raise ValueError(
            f"threshold must be a finite number > 1 (a straggler is slower than threshold x "
            f"the round median), got {threshold!r}"
        )
    return value


def _check_names(names: Sequence[Any], n_workers: int) -> list[str]:
    out = [str(w) for w in names]
    if len(out) != n_workers:
        raise ValueError(f"workers has {len(out)} names for {n_workers} worker columns")
    if len(set(out)) != len(out):
        dupes = sorted({w for w in out if out.count(w) > 1})
        raise ValueError(f"worker names must be unique, repeated: {dupes}")
    return out


def _check_values(x: np.ndarray, what: str = "latencies") -> None:
    """Negative or infinite values are errors; NaN marks a missing entry."""
    if np.isinf(x).any():
        t, i = np.argwhere(np.isinf(x))[0]
        raise ValueError(f"{what} must be finite or NaN (missing); found {x[t, i]} at round {t}, worker {i}")
    neg = x < 0  # NaN compares False
    if neg.any():
        t, i = np.argwhere(neg)[0]
        raise ValueError(f"{what} must be non-negative; found {x[t, i]:g} at round {t}, worker {i}")


# ---------------------------------------------------------------------------
# inputs


def load_trace(path: str | PathLike[str], trace: str) -> pd.DataFrame:
    """Read one trace of the EC2 iteration-time CSV.

    The file is read as data with :func:`pandas.read_csv` and validated as a
    whole (a corrupt row anywhere makes the file suspect), then the rows of
    ``trace`` are returned.

    Parameters
    ----------
    path : str or path-like
        CSV file with the columns ``trace, node, iteration, seconds``.
    trace : str
        Name of the trace, for example ``"data2"``.

    Returns
    -------
    pandas.DataFrame
        Long format, columns ``node`` (str), ``iteration`` (int) and
        ``seconds`` (float), sorted by node and iteration; accepted by
        :func:`latency_matrix` and :func:`fit_straggler_model`.

    Raises
    ------
    ValueError
        If the file cannot be parsed as CSV, a column is missing, a value of
        ``node``/``iteration``/``seconds`` is missing or non-numeric,
        ``seconds`` is negative or infinite, ``iteration`` is not a
        non-negative integer, a (node, iteration) pair repeats, or ``trace``
        is not in the file (the message lists the known traces).

    Examples
    --------
    >>> df = load_trace("/work/shared/traces/aws_ec2_iteration_times.csv", "data2")  # doctest: +SKIP
    >>> df.columns.tolist()  # doctest: +SKIP
    ['node', 'iteration', 'seconds']
    """
    try:
        # index_col=False: a row with an extra field is an error (pandas warns,
        # we raise), not a silent shift of every column; names stay text
        # ("01" is not "1").
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(path, index_col=False, dtype={"trace": str, "node": str})
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not a trace CSV text file ({exc}); trace files are parsed as CSV "
            "data, never unpickled"
        ) from None
    except (pd.errors.ParserWarning, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"cannot read {path} as a trace CSV: {exc}") from exc
    missing = [c for c in TRACE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path} lacks the column(s) {missing}; expected {list(TRACE_COLUMNS)}, "
            f"found {list(map(str, df.columns))}"
        )

    def _lines(mask: pd.Series) -> list[int]:
        return (np.flatnonzero(mask.to_numpy())[:5] + 2).tolist()  # header is line 1

    for col in ("trace", "node"):
        bad = df[col].isna()
        if bad.any():
            raise ValueError(f"{path}: missing {col!r} at line(s) {_lines(bad)}")
    seconds = pd.to_numeric(df["seconds"], errors="coerce")
    bad = seconds.isna()
    if bad.any():
        raise ValueError(f"{path}: missing or non-numeric 'seconds' at line(s) {_lines(bad)}")
    bad = (seconds < 0) | ~np.isfinite(seconds)
    if bad.any():
        raise ValueError(f"{path}: negative or infinite 'seconds' at line(s) {_lines(bad)}")
    iteration = pd.to_numeric(df["iteration"], errors="coerce")
    bad = iteration.isna() | (iteration < 0) | (iteration != np.floor(iteration))
    if bad.any():
        raise ValueError(f"{path}: 'iteration' must be a non-negative integer, see line(s) {_lines(bad)}")

    out = pd.DataFrame(
        {
            "trace": df["trace"].astype(str),
            "node": df["node"].astype(str),
            "iteration": iteration.astype(np.int64),
            "seconds": seconds.astype(float),
        }
    )
    known = sorted(out["trace"].unique())
    if not known:
        raise ValueError(f"trace {trace!r} is empty: {path} has no data rows")
    if trace not in known:
        raise ValueError(f"unknown trace {trace!r} in {path}; known traces: {known}")
    out = out[out["trace"] == trace].drop(columns="trace")
    dupes = out.duplicated(["node", "iteration"])
    if dupes.any():
        first = out[dupes].iloc[0]
        raise ValueError(
            f"{path}: trace {trace!r} repeats node {first['node']!r} iteration {first['iteration']}"
        )
    return out.sort_values(["node", "iteration"], kind="stable").reset_index(drop=True)


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


def _from_recorder(ds: xr.Dataset) -> tuple[np.ndarray, list[str]]:
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

    if parsed:
        dropped = int(valid.sum()) - len(parsed)
        if dropped:
            logger.debug("latency_matrix: ignoring %d samples that are not round tasks", dropped)
        first_start: dict[str, float] = {}
        span: dict[str, list[int]] = {}
        for (i, s), (token, r) in parsed.items():
            st = start[i, s]
            first_start[token] = min(first_start.get(token, np.inf), st if np.isfinite(st) else np.inf)
            lo_hi = span.setdefault(token, [r, r])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], r), max(lo_hi[1], r)
        offset, total = {}, 0
        for token in sorted(span, key=lambda tk: (first_start[tk], tk)):
            offset[token] = total - span[token][0]
            total += span[token][1] - span[token][0] + 1
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
          such as one trace of the EC2 CSV (:func:`load_trace`). Rows are
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


# ---------------------------------------------------------------------------
# the model


def _shifted_exp(samples: np.ndarray) -> tuple[float, float]:
    """MLE of a shifted exponential: ``shift = min``, ``1/rate = mean - min`` (inf when constant)."""
    shift = float(samples.min())
    scale = float(samples.mean()) - shift
    return shift, (1.0 / scale if scale > 0 else math.inf)


def _gamma_moments(samples: np.ndarray) -> tuple[float, float]:
    """Gamma by moments: ``shape = mean^2 / var``, ``scale = var / mean`` (NaN when degenerate)."""
    mean, var = float(samples.mean()), float(samples.var())
    if mean <= 0 or var <= 0:
        return math.nan, math.nan
    return mean * mean / var, var / mean


def _ks_shifted_exp(samples: np.ndarray, shift: float, rate: float) -> float:
    if samples.size == 0:
        return math.nan
    if math.isinf(rate):  # point mass at shift: sup |F_n - F| = max(share below, share above)
        return float(max(np.mean(samples < shift), np.mean(samples > shift)))
    return float(stats.kstest(samples, "expon", args=(shift, 1.0 / rate)).statistic)


def _ks_gamma(samples: np.ndarray) -> float:
    shape, scale = _gamma_moments(samples) if samples.size >= MIN_STATE_SAMPLES else (math.nan, math.nan)
    if math.isnan(shape):
        return math.nan
    return float(stats.kstest(samples, "gamma", args=(shape, 0.0, scale)).statistic)


def _frozen(a: Any, name: str, n: int, dtype: type = float) -> np.ndarray:
    arr = np.array(a, dtype=dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one value per worker ({n}), got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


def _transition_counts(observed: np.ndarray, slow: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per worker: slow->slow, slow->fast, fast->slow, fast->fast counts over successive observations."""
    counts = np.zeros((4, observed.shape[1]), dtype=np.int64)
    for i in range(observed.shape[1]):
        s = slow[observed[:, i], i]
        s0, s1 = s[:-1], s[1:]
        counts[:, i] = ((s0 & s1).sum(), (s0 & ~s1).sum(), (~s0 & s1).sum(), (~s0 & ~s1).sum())
    return tuple(counts)


def current_states(latencies: Any, *, threshold: float = 2.0, workers: Sequence[str] | None = None) -> np.ndarray:
    """Each worker's state in the last round it was observed in: True when slow.

    Parameters
    ----------
    latencies : array-like, pandas.DataFrame or xarray.Dataset
        As for :func:`fit_straggler_model`.
    threshold : float, default=2.0
        As for :func:`fit_straggler_model`.
    workers : sequence of str, optional
        As for :func:`latency_matrix`.

    Returns
    -------
    numpy.ndarray of bool, shape (n_workers,)
        False for a worker never observed.
    """
    x, _ = latency_matrix(latencies, workers=workers)
    observed, _, slow = _straggle_indicator(x, _check_threshold(threshold))
    last = x.shape[0] - 1 - np.argmax(observed[::-1], axis=0)
    return observed.any(axis=0) & slow[last, np.arange(x.shape[1])]


def _straggle_indicator(x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed mask, round medians (NaN for empty rounds) and the straggle indicator."""
    observed = ~np.isnan(x)
    rows = observed.any(axis=1)
    med = np.full(x.shape[0], np.nan)
    med[rows] = np.nanmedian(x[rows], axis=1)
    with np.errstate(invalid="ignore"):
        slow = observed & (x > threshold * med[:, None])
    return observed, med, slow


@dataclass(frozen=True, eq=False)
class StragglerModel:
    """Per-worker straggler model: frequency, persistence and latency per state.

    Usually made by :func:`fit_straggler_model`; can be built by hand (for
    simulation) from per-worker arrays. Arrays are copied and read-only.
    See the module docstring for the definitions.

    Parameters
    ----------
    workers : sequence of str
        Worker names.
    p : array-like of float in [0, 1]
        Straggle frequency per worker.
    p_slow_slow, p_slow_fast : array-like of float in [0, 1]
        Markov persistence: P(slow | slow) and P(slow | fast).
    shift, rate : array-like of float
        Fast state: ``T = shift + Exp(rate)`` (per-unit seconds); ``shift
        >= 0``, ``rate > 0`` (``inf`` = no spread).
    slow_shift, slow_rate : array-like of float
        The same for the slow state.
    slowdown : array-like of float
        Median slow latency over the median of the round medians (> 0).
    n_rounds : array-like of int
        Observed rounds per worker (0 for a hand-built model).
    threshold : float, default=2.0
        ``c`` of the straggle indicator, > 1.
    latencies : numpy.ndarray, optional
        The ``(n_rounds, n_workers)`` matrix the model was fitted from;
        needed by :meth:`goodness_of_fit`. Not part of :meth:`to_dataset`.
    """

    workers: tuple[str, ...]
    p: np.ndarray
    p_slow_slow: np.ndarray
    p_slow_fast: np.ndarray
    shift: np.ndarray
    rate: np.ndarray
    slow_shift: np.ndarray
    slow_rate: np.ndarray
    slowdown: np.ndarray
    n_rounds: np.ndarray
    threshold: float = 2.0
    latencies: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        workers = tuple(_check_names(list(self.workers), len(self.workers)))
        if not workers:
            raise ValueError("a StragglerModel needs at least one worker")
        n = len(workers)
        set_ = object.__setattr__
        set_(self, "workers", workers)
        set_(self, "threshold", _check_threshold(self.threshold))
        for name in _FIELDS:
            set_(self, name, _frozen(getattr(self, name), name, n, np.int64 if name == "n_rounds" else float))
        for name in ("p", "p_slow_slow", "p_slow_fast"):
            v = getattr(self, name)
            if not np.all((v >= 0) & (v <= 1)):
                raise ValueError(f"{name} must be probabilities in [0, 1], got {v.tolist()}")
        for name in ("shift", "slow_shift"):
            v = getattr(self, name)
            if not np.all(np.isfinite(v) & (v >= 0)):
                raise ValueError(f"{name} must be finite and >= 0, got {v.tolist()}")
        for name in ("rate", "slow_rate", "slowdown"):
            v = getattr(self, name)
            if not np.all(v > 0):  # NaN fails too
                raise ValueError(f"{name} must be > 0, got {v.tolist()}")
        if np.any(self.n_rounds < 0):
            raise ValueError(f"n_rounds must be >= 0, got {self.n_rounds.tolist()}")
        if self.latencies is not None:
            lat = np.array(self.latencies, dtype=float)
            if lat.ndim != 2 or lat.shape[1] != n:
                raise ValueError(f"latencies must be (n_rounds, {n}), got shape {lat.shape}")
            lat.setflags(write=False)
            set_(self, "latencies", lat)

    # -- derived -----------------------------------------------------------
    @property
    def n_workers(self) -> int:
        """Number of workers."""
        return len(self.workers)

    @property
    def p_stationary(self) -> np.ndarray:
        """Long-run slow fraction of each worker's Markov chain.

        ``P(slow|fast) / (P(slow|fast) + 1 - P(slow|slow))``; ``p`` where the
        chain is frozen (``P(slow|fast) = 0`` and ``P(slow|slow) = 1``).
        """
        a, b = self.p_slow_fast, self.p_slow_slow
        denom = a + 1.0 - b
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, a / np.where(denom > 0, denom, 1.0), self.p)

    @property
    def p_stderr(self) -> np.ndarray:
        """Standard error of each ``p`` estimate, allowing for persistence.

        ``sqrt(p (1 - p) / n * (1 + lam) / (1 - lam))`` with ``lam =
        P(slow|slow) - P(slow|fast)``, the variance of the mean of a
        two-state Markov chain's indicator; ``inf`` for a worker with no
        observed round. Persistent chains make ``p`` noisy: use it to choose
        the ``tol`` of :meth:`changed` (e.g. above 3 x ``sqrt(se_a**2 +
        se_b**2)``).
        """
        lam = self.p_slow_slow - self.p_slow_fast
        n = self.n_rounds.astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = self.p * (1.0 - self.p) / n * (1.0 + lam) / (1.0 - lam)
        return np.where((n > 0) & (lam < 1.0), np.sqrt(np.where(np.isfinite(var), var, 0.0)), np.inf)

    def slow_workers(self, p_min: float = 0.5) -> list[str]:
        """Workers that straggle in more than a fraction ``p_min`` of rounds.

        Parameters
        ----------
        p_min : float, default=0.5
            In [0, 1). 0.5: workers slow more often than not (persistent
            stragglers); a small value such as 0.02 also lists intermittent
            ones.

        Returns
        -------
        list of str
            Names with ``p > p_min``, in worker order.
        """
        if not 0.0 <= float(p_min) < 1.0:
            raise ValueError(f"p_min must be in [0, 1), got {p_min!r}")
        return [w for w, p in zip(self.workers, self.p) if p > p_min]

    # -- simulation --------------------------------------------------------
    def sample(
        self,
        n_rounds: int,
        random_state: int | np.random.Generator | None = None,
        *,
        return_states: bool = False,
        start: Any = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Simulate per-unit latencies round by round.

        Each worker's state follows its Markov chain, starting from the
        stationary distribution (:attr:`p_stationary`), or from ``start``;
        its latency is drawn from the shifted exponential of the current
        state. Workers are independent given the model.

        Parameters
        ----------
        n_rounds : int
            Number of rounds, >= 1.
        random_state : int, numpy.random.Generator or None
            Seed (reproducible) or generator; None draws fresh entropy.
        return_states : bool, default=False
            Also return the boolean ``(n_rounds, n_workers)`` slow states.
        start : array_like of bool, shape (n_workers,), optional
            The states of the first round, e.g. the workers' last observed
            states (:func:`current_states`) to forecast the next rounds:
            the chain then forgets them at the pace of its persistence.

        Returns
        -------
        latencies : numpy.ndarray
            ``(n_rounds, n_workers)`` per-unit latencies.
        states : numpy.ndarray of bool
            Only with ``return_states=True``.
        """
        if isinstance(n_rounds, bool) or not isinstance(n_rounds, (int, np.integer)) or n_rounds < 1:
            raise ValueError(f"n_rounds must be a positive integer, got {n_rounds!r}")
        n = self.n_workers
        if start is not None:
            first = np.asarray(start)
            if first.shape != (n,) or first.dtype != np.bool_:
                raise ValueError(f"start must be a boolean array of shape ({n},), got {start!r}")
        rng = np.random.default_rng(random_state)
        u = rng.random((n_rounds, n))
        e_fast = rng.standard_exponential((n_rounds, n))
        e_slow = rng.standard_exponential((n_rounds, n))
        states = np.empty((n_rounds, n), dtype=bool)
        states[0] = u[0] < self.p_stationary if start is None else first
        for t in range(1, n_rounds):
            states[t] = u[t] < np.where(states[t - 1], self.p_slow_slow, self.p_slow_fast)
        fast = self.shift + e_fast / self.rate
        slow = self.slow_shift + e_slow / self.slow_rate
        x = np.where(states, slow, fast)
        return (x, states) if return_states else x

    # -- diagnostics -------------------------------------------------------
    def goodness_of_fit(self, *, n_simulated: int = 10_000, random_state: int | None = 0) -> xr.Dataset:
        """How well the fitted model describes its data.

        Kolmogorov-Smirnov statistics are computed against distributions
        whose parameters were estimated from the same samples, so they are
        descriptive (smaller is better); the usual KS p-values do not apply.

        Parameters
        ----------
        n_simulated : int, default=10000
            Rounds simulated with :meth:`sample` for the frequency check.
        random_state : int or None, default=0
            Seed of that simulation.

        Returns
        -------
        xarray.Dataset
            Per worker: ``n_fast``, ``n_slow`` (samples per state),
            ``ks_fast`` / ``ks_slow`` (KS statistic of the state's shifted
            exponential; the slow fit is checked only on the worker's own
            slow samples), ``ks_fast_gamma`` / ``ks_slow_gamma`` (the
            Gamma-by-moments alternative), ``p`` (observed), ``p_stationary``
            (of the fitted chains) and ``p_simulated`` (the straggle
            indicator applied to the simulated latencies).

        Raises
        ------
        ValueError
            If the model was not fitted from data (``latencies`` is None).
        """
        if self.latencies is None:
            raise ValueError(
                "goodness_of_fit needs the fitted data: this model has no latencies (built by hand?)"
            )
        x = self.latencies
        _, _, slow = _straggle_indicator(x, self.threshold)
        fast = ~np.isnan(x) & ~slow
        names = ("ks_fast", "ks_slow", "ks_fast_gamma", "ks_slow_gamma")
        cols: dict[str, list[float]] = {k: [] for k in names}
        for i in range(self.n_workers):
            xf, xs = x[fast[:, i], i], x[slow[:, i], i]
            cols["ks_fast"].append(_ks_shifted_exp(xf, self.shift[i], self.rate[i]))
            cols["ks_slow"].append(_ks_shifted_exp(xs, self.slow_shift[i], self.slow_rate[i]))
            cols["ks_fast_gamma"].append(_ks_gamma(xf))
            cols["ks_slow_gamma"].append(_ks_gamma(xs))
        sim = self.sample(n_simulated, random_state)
        _, _, sim_slow = _straggle_indicator(sim, self.threshold)
        data = {
            "n_fast": ("worker", fast.sum(axis=0)),
            "n_slow": ("worker", slow.sum(axis=0)),
            **{k: ("worker", np.array(v)) for k, v in cols.items()},
            "p": ("worker", np.asarray(self.p)),
            "p_stationary": ("worker", self.p_stationary),
            "p_simulated": ("worker", sim_slow.mean(axis=0)),
        }
        return xr.Dataset(
            data,
            coords={"worker": np.array(self.workers, dtype=object)},
            attrs={"threshold": self.threshold, "n_simulated": n_simulated},
        )

    def to_dataset(self) -> xr.Dataset:
        """The per-worker parameters as an :class:`xarray.Dataset` (dim ``worker``)."""
        return xr.Dataset(
            {
                name: ("worker", np.asarray(getattr(self, name)), {"description": _DESCRIPTIONS[name]})
                for name in _FIELDS
            },
            coords={"worker": np.array(self.workers, dtype=object)},
            attrs={"threshold": self.threshold},
        )

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, *, latencies: Any = None) -> StragglerModel:
        """Rebuild a model from :meth:`to_dataset` output, e.g. read back from NetCDF.

        Parameters
        ----------
        ds : xarray.Dataset
            One variable per parameter (``p``, ``p_slow_slow``,
            ``p_slow_fast``, ``shift``, ``rate``, ``slow_shift``,
            ``slow_rate``, ``slowdown``, ``n_rounds``), each of dimension
            ``worker``; coordinate ``worker``; attribute ``threshold``.
            Other variables and attributes are ignored.
        latencies : array-like of shape (n_rounds, n_workers), optional
            The data the model was fitted from (not part of the Dataset);
            needed by :meth:`goodness_of_fit`.

        Returns
        -------
        StragglerModel

        Raises
        ------
        ValueError
            If ``ds`` is no Dataset, lacks a parameter, the ``worker``
            coordinate or the ``threshold`` attribute, a parameter has
            other dimensions than ``("worker",)``, or the values are invalid
            (as in the constructor).
        """
        if not isinstance(ds, xr.Dataset):
            raise ValueError(f"ds must be an xarray.Dataset, got {type(ds).__name__}")
        missing = [name for name in _FIELDS if name not in ds.data_vars]
        if missing:
            raise ValueError(f"the Dataset lacks the straggler model variable(s) {missing}")
        wrong = {name: ds[name].dims for name in _FIELDS if ds[name].dims != ("worker",)}
        if wrong:
            raise ValueError(f"straggler model variables must have dims ('worker',), got {wrong}")
        if "worker" not in ds.coords:
            raise ValueError("the Dataset lacks the 'worker' coordinate")
        if "threshold" not in ds.attrs:
            raise ValueError("the Dataset lacks the 'threshold' attribute")
        threshold = np.asarray(ds.attrs["threshold"], dtype=float)
        if threshold.size != 1:
            raise ValueError(f"the Dataset's threshold attribute must be one number, got {threshold.tolist()}")
        names = [
            w.decode() if isinstance(w, bytes) else str(w) for w in ds["worker"].to_numpy().tolist()
        ]
        return cls(
            workers=tuple(names),
            **{name: ds[name].to_numpy() for name in _FIELDS},
            threshold=threshold.item(),
            latencies=latencies,
        )

    def summary(self) -> str:
        """A fixed-width table, one line per worker (``*`` marks ``p > 0.5``)."""
        head = (
            "worker", "rounds", "p", "P(s|s)", "P(s|f)",
            "shift", "1/rate", "slow_shift", "slow_1/rate", "slowdown",
        )
        rows = []
        for i, w in enumerate(self.workers):
            rows.append(
                (
                    w + (" *" if self.p[i] > 0.5 else ""),
                    str(int(self.n_rounds[i])),
                    f"{self.p[i]:.3f}",
                    f"{self.p_slow_slow[i]:.3f}",
                    f"{self.p_slow_fast[i]:.3f}",
                    f"{self.shift[i]:.4g}",
                    f"{1.0 / self.rate[i]:.4g}",
                    f"{self.slow_shift[i]:.4g}",
                    f"{1.0 / self.slow_rate[i]:.4g}",
                    f"{self.slowdown[i]:.3g}",
                )
            )
        widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
        fmt = "  ".join(f"{{:<{widths[0]}}}" if j == 0 else f"{{:>{widths[j]}}}" for j in range(len(head)))
        return "\n".join(fmt.format(*r) for r in [head, *rows])

    def __repr__(self) -> str:
        return (
            f"StragglerModel({self.n_workers} workers, threshold={self.threshold:g}, "
            f"slow={self.slow_workers()})\n{self.summary()}"
        )

    def changed(self, other: StragglerModel, *, tol: float = 0.1) -> bool:
        """Whether ``other`` differs materially from this model.

        Parameters
        ----------
        other : StragglerModel
            Typically a model re-fitted on newer latencies.
        tol : float, default=0.1
            Largest tolerated move of a worker's straggle frequency ``p``.

        Returns
        -------
        bool
            True if a worker appeared or disappeared, or some worker's ``p``
            moved by more than ``tol``.
        """
        if not isinstance(other, StragglerModel):
            raise ValueError(f"other must be a StragglerModel, got {type(other).__name__}")
        if not 0.0 <= float(tol) < 1.0:
            raise ValueError(f"tol must be in [0, 1), got {tol!r}")
        mine, theirs = set(self.workers), set(other.workers)
        if mine != theirs:
            gone, new = sorted(mine - theirs), sorted(theirs - mine)
            logger.info("straggler model changed: workers gone %s, new %s", gone, new)
            return True
        idx = [other.workers.index(w) for w in self.workers]
        moved = np.abs(np.asarray(other.p)[idx] - self.p)
        if np.any(moved > tol):
            who = [w for w, m in zip(self.workers, moved) if m > tol]
            logger.info("straggler model changed: p moved by more than %g for %s", tol, who)
            return True
        return False


def _shrunk(hits: np.ndarray, misses: np.ndarray, prior: float) -> np.ndarray:
    """Per-worker transition probabilities shrunk towards the cluster's pooled one.

    The posterior mean under a ``Beta(2a m, 2a (1 - m))`` prior whose mean
    ``m`` is the pooled estimate ``(sum hits + a) / (sum trials + 2a)``:
    a worker with few observed transitions takes the cluster's rate, not 1/2.
    """
    m = (hits.sum() + prior) / (hits.sum() + misses.sum() + 2 * prior)
    return (hits + 2 * prior * m) / (hits + misses + 2 * prior)


def fit_straggler_model(
    latencies: Any,
    *,
    threshold: float = 2.0,
    workers: Sequence[str] | None = None,
    prior: float = 1.0,
) -> StragglerModel:
    """Fit a per-worker straggler model from measured latencies.

    Parameters
    ----------
    latencies : array-like, pandas.DataFrame or xarray.Dataset
        Anything :func:`latency_matrix` accepts; a ``(n_rounds, n_workers)``
        matrix of per-unit latencies with NaN for missing entries.
    threshold : float, default=2.0
        A worker straggles in a round when its latency exceeds ``threshold``
        times the median over the workers observed in that round. Must be
        > 1.
    workers : sequence of str, optional
        Names of the matrix columns, or the workers to keep (see
        :func:`latency_matrix`).
    prior : float, default=1.0
        Strength ``a`` of the prior of the transition probabilities: worth
        ``2a`` observed transitions at the cluster's pooled rate (see the
        module docstring). Must be > 0.

    Returns
    -------
    StragglerModel

    Raises
    ------
    ValueError
        If the latencies are empty, all NaN, observed in fewer than 2
        rounds, negative or infinite, if some worker is never observed, if
        ``threshold <= 1`` or ``prior <= 0``.

    See Also
    --------
    latency_matrix, load_trace

    Notes
    -----
    Definitions (indicator, smoothing, fallbacks) are in the module
    docstring; DESIGN.md section 3 for the references.
    """
    threshold = _check_threshold(threshold)
    if not (isinstance(prior, (int, float)) and math.isfinite(prior) and prior > 0):
        raise ValueError(f"prior must be a finite number > 0, got {prior!r}")
    x, names = latency_matrix(latencies, workers=workers)
    observed, med, slow = _straggle_indicator(x, threshold)
    if not observed.any():
        raise ValueError("latencies are all NaN: nothing was observed")
    n_obs_rounds = int(observed.any(axis=1).sum())
    if n_obs_rounds < 2:
        raise ValueError(
            f"need latencies from at least 2 rounds to fit a straggler model, got {n_obs_rounds}"
        )
    n_rounds = observed.sum(axis=0)
    if (n_rounds == 0).any():
        never = [w for w, k in zip(names, n_rounds) if k == 0]
        raise ValueError(f"worker(s) {never} have no latencies (all NaN); drop them before fitting")
    typical = float(np.median(med[~np.isnan(med)]))
    if typical <= 0:
        raise ValueError("the median round latency is 0: latencies carry no timing information")

    p = slow.sum(axis=0) / n_rounds
    n_ss, n_sf, n_fs, n_ff = _transition_counts(observed, slow)
    p_ss = _shrunk(n_ss, n_sf, prior)
    p_sf = _shrunk(n_fs, n_ff, prior)

    fast = observed & ~slow
    pooled_fast = _shifted_exp(x[fast])  # every observed round has a fast worker: never empty
    pooled_slow = _shifted_exp(x[slow]) if slow.sum() >= MIN_STATE_SAMPLES else None
    pooled_slowdown = float(np.median(x[slow])) / typical if slow.any() else None
    n_workers = len(names)
    shift, rate = np.empty(n_workers), np.empty(n_workers)
    slow_shift, slow_rate, slowdown = np.empty(n_workers), np.empty(n_workers), np.empty(n_workers)
    for i in range(n_workers):
        xf, xs = x[fast[:, i], i], x[slow[:, i], i]
        shift[i], rate[i] = _shifted_exp(xf) if xf.size >= MIN_STATE_SAMPLES else pooled_fast
        if xs.size >= MIN_STATE_SAMPLES:
            slow_shift[i], slow_rate[i] = _shifted_exp(xs)
        elif pooled_slow is not None:
            slow_shift[i], slow_rate[i] = pooled_slow
        else:
            slow_shift[i], slow_rate[i] = threshold * typical, rate[i] / threshold
        if xs.size:
            slowdown[i] = float(np.median(xs)) / typical
        elif pooled_slowdown is not None:
            slowdown[i] = pooled_slowdown
        else:
            slowdown[i] = (slow_shift[i] + math.log(2.0) / slow_rate[i]) / typical
    model = StragglerModel(
        workers=tuple(names),
        p=p,
        p_slow_slow=p_ss,
        p_slow_fast=p_sf,
        shift=shift,
        rate=rate,
        slow_shift=slow_shift,
        slow_rate=slow_rate,
        slowdown=slowdown,
        n_rounds=n_rounds,
        threshold=threshold,
        latencies=x,
    )
    logger.debug(
        "fitted straggler model: %d rounds x %d workers, slow workers %s",
        x.shape[0],
        n_workers,
        model.slow_workers(),
    )
    return model
