"""Measure, simulate, then roll out: choosing a gradient code for a cluster.

A fitted straggler model (per-worker straggle probabilities and a sampler
of per-row latencies) is turned into a recommendation without touching the
cluster: :func:`plan` samples latencies once, replays the same rounds under
every candidate scheme with :func:`simulate`, and picks the fastest scheme
whose decoding error is acceptable.

:func:`simulate` follows the stop rule of the engine
(:class:`~dask_quorum.pipeline.engine.rounds.RoundRunner` with its defaults
``decode_tol=0`` and no deadline): answers are taken in the order they
arrive and a round stops at the first of exact decoding
(``error <= EXACT_TOL``) or ``code.min_responders`` answers.  It also keeps
the engine's busy-worker rule: a worker still computing an older round gets
no task of the new round until that older task has finished.

The module is pure NumPy/pandas; it does not know the straggler model's
class, only its members ``workers``, ``p`` and ``sample(n_rounds,
random_state=...)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from ..coding import EXACT_TOL, SCHEMES, GradientCode, make_code

__all__ = [
    "DEFAULT_SCHEMES",
    "SKEW_MIN_GAIN",
    "TIME_TIE_RTOL",
    "Plan",
    "SimulatedRounds",
    "plan",
    "shape_heterogeneous",
    "simulate",
]

logger = logging.getLogger(__name__)

#: Schemes :func:`plan` compares by default.
DEFAULT_SCHEMES: tuple[str, ...] = ("sync", "uncoded", "frc", "cyclic", "expander", "heterogeneous")

#: :func:`plan` treats schemes whose mean round times are within this
#: relative margin of the fastest eligible one as tied, and recommends the
#: cheapest (least compute per round) of them: a difference that small is
#: within sampling noise and does not justify extra compute.
TIME_TIE_RTOL: float = 0.02

# Straggle probabilities of the model are clipped to at most this before
# building the heterogeneous code, which accepts p in [0, 1): a fitted
# frequency of 1.0 (a worker slow in every measured round) is legitimate.
_P_MAX = 1.0 - 1e-3
_TABLE_COLUMNS = (
    "mean_time",
    "p95_time",
    "mean_error",
    "cost_per_round",
    "mean_responders",
    "exact",
    "skipped",
)


@dataclass(frozen=True, eq=False)
class SimulatedRounds:
    """Per-round outcome of :func:`simulate`.

    Attributes
    ----------
    scheme : str
        The simulated code's scheme.
    start : ndarray of shape (n_rounds,)
        Start of each round in seconds (a round starts when the previous
        one stops; the first at 0).
    time : ndarray of shape (n_rounds,)
        Duration of each round, from its start to the answer that stopped it.
    error : ndarray of shape (n_rounds,)
        Normalised decoding error ``code.error(responders)`` of each round.
    n_responders : ndarray of int, shape (n_rounds,)
        Answers the round used.
    cost : ndarray of shape (n_rounds,)
        Compute-seconds of the tasks submitted in the round, all of them
        run to completion, including those the round no longer needed (and
        those finishing in later rounds).
    submitted : ndarray of bool, shape (n_rounds, n_workers)
        Whether the worker was given the round's task (false when it was
        busy with an older round for the whole round).
    responded : ndarray of bool, shape (n_rounds, n_workers)
        Whether the worker's answer was used by the round.
    stop : ndarray of str, shape (n_rounds,)
        ``"exact"`` or ``"quorum"``, as in
        :class:`~dask_quorum.pipeline.engine.RoundRecord`.
    """

    scheme: str
    start: NDArray[np.float64]
    time: NDArray[np.float64]
    error: NDArray[np.float64]
    n_responders: NDArray[np.intp]
    cost: NDArray[np.float64]
    submitted: NDArray[np.bool_]
    responded: NDArray[np.bool_]
    stop: NDArray[np.str_]

    @property
    def n_rounds(self) -> int:
        return self.time.size

    @property
    def mean_time(self) -> float:
        return float(self.time.mean())

    @property
    def p95_time(self) -> float:
        return float(np.percentile(self.time, 95))

    @property
    def mean_error(self) -> float:
        return float(self.error.mean())

    @property
    def cost_per_round(self) -> float:
        return float(self.cost.mean())

    @property
    def participation(self) -> NDArray[np.float64]:
        """Fraction of rounds in which each worker was given a task."""
        return self.submitted.mean(axis=0)


def simulate(
    code: GradientCode,
    latencies_per_unit: ArrayLike,
    *,
    rows_per_partition: float = 1.0,
    overhead: float = 0.0,
) -> SimulatedRounds:
    """Replay rounds of ``code`` on given per-row latencies.

    Worker ``i``'s task of round ``t`` takes
    ``latencies_per_unit[t, i] * len(code.assignment(i)) * rows_per_partition
    + overhead`` seconds.  Rounds run back to back; within a round:

    * a worker idle at the start of the round starts the round's task at
      once; a worker still busy with an older round's task starts it when
      that task finishes, provided this happens before the round stops
      (the engine hands the new task over as soon as it sees the old one
      finish); otherwise it gets no task in this round;
    * answers are taken in order of arrival (ties by worker index); the
      round stops at the first answer after which the responders decode
      exactly (``code.error <= EXACT_TOL``) or number
      ``code.min_responders``;
    * every submitted task runs to completion and its compute time counts,
      even when the round no longer needs it; a task still running when
      its round stops keeps its worker busy into the next rounds, and its
      late answer is not used (the engine discards stale answers).

    Not modelled: the engine's ``decode_tol`` and ``deadline`` options,
    time spent by the client between rounds (decoding, solver step),
    communication, and the data movement of
    :meth:`~dask_quorum.pipeline.coding.GradientCode.rotated` (rotation does
    not change round times or errors, only which partitions are lost).

    Parameters
    ----------
    code : GradientCode
    latencies_per_unit : array_like of shape (n_rounds, n_workers)
        Seconds per row of worker ``i`` in round ``t``; finite and ``>= 0``.
    rows_per_partition : float, default=1.0
        Rows in each partition (``> 0``).
    overhead : float, default=0.0
        Fixed seconds added to every task (``>= 0``).

    Returns
    -------
    SimulatedRounds

    Raises
    ------
    ValueError
        If ``latencies_per_unit`` has the wrong shape or invalid values,
        or ``rows_per_partition`` / ``overhead`` are out of range.
    """
    if not isinstance(code, GradientCode):
        raise ValueError(f"code must be a GradientCode, got {type(code).__name__}")
    lat = _check_latencies(latencies_per_unit, code.n_workers)
    rows = _check_real(rows_per_partition, "rows_per_partition", strict=True)
    extra = _check_real(overhead, "overhead", strict=False)

    n_rounds, n = lat.shape
    loads = np.count_nonzero(code.B, axis=1).astype(np.float64)
    durations = lat * (loads * rows) + extra
    errors: dict[int, float] = {}  # the error depends on the responder set only

    start = np.empty(n_rounds)
    time = np.empty(n_rounds)
    error = np.empty(n_rounds)
    n_responders = np.empty(n_rounds, dtype=np.intp)
    cost = np.empty(n_rounds)
    submitted = np.zeros((n_rounds, n), dtype=bool)
    responded = np.zeros((n_rounds, n), dtype=bool)
    stop = np.empty(n_rounds, dtype="<U6")

    free_at = np.zeros(n)  # when each worker finishes its last task
    now = 0.0
    workers = np.arange(n)
    for t in range(n_rounds):
        finish = np.maximum(now, free_at) + durations[t]
        mask = 0
        count = 0
        err = 1.0
        for i in np.lexsort((workers, finish)):
            mask |= 1 << int(i)
            count += 1
            err = errors.get(mask)
            if err is None:
                err = errors[mask] = code.error(responded[t] | (workers == i))
            responded[t, i] = True
            if err <= EXACT_TOL:
                stop[t] = "exact"
                break
            if count >= code.min_responders:
                stop[t] = "quorum"
                break
        end = float(finish[i])
        given = free_at <= end
        submitted[t] = given
        free_at[given] = finish[given]
        start[t] = now
        time[t] = end - now
        error[t] = err
        n_responders[t] = count
        cost[t] = durations[t, given].sum()
        now = end
    logger.debug(
        "simulated %d rounds of %r: mean time %.3g s, mean error %.3g",
        n_rounds, code, time.mean(), error.mean(),
    )
    return SimulatedRounds(
        scheme=code.scheme,
        start=start,
        time=time,
        error=error,
        n_responders=n_responders,
        cost=cost,
        submitted=submitted,
        responded=responded,
        stop=stop,
    )


#: Most load bounds :func:`shape_heterogeneous` simulates.
MAX_LOAD_CANDIDATES = 6

#: :func:`shape_heterogeneous` skews loads beyond a smaller bound only when
#: the simulated rounds get faster by more than this fraction.
SKEW_MIN_GAIN = 0.1


def shape_heterogeneous(
    straggle_probs: ArrayLike,
    latencies_per_unit: ArrayLike,
    *,
    redundancy: int = 2,
    random_state: Any = None,
    rows_per_partition: float = 1.0,
    overhead: float = 0.0,
) -> tuple[GradientCode, SimulatedRounds]:
    """The ``heterogeneous`` code whose load bound simulates fastest.

    Song & Choi's loads move work from likely stragglers to reliable
    workers, which pays when several workers straggle at once but not when
    the stragglers are few: with one persistent straggler and ``k = n``
    partitions its lost load lands on a reliable worker that every round
    then waits for.  This builds the code for a few bounds ``max_load``
    (from ``redundancy``, equal loads placed by reliability, up to the
    unbounded loads; at most :data:`MAX_LOAD_CANDIDATES`), simulates each
    on the same latencies (:func:`simulate`) and keeps the fastest.  Bounds
    whose mean round times are within :data:`SKEW_MIN_GAIN` (10 %) of it
    count as tied and the smallest wins: the least skewed loads lose the
    least when the model is wrong about who is slow, and a model fitted on
    few rounds still borrows much of its straggling from the prior.

    Parameters
    ----------
    straggle_probs : array_like of shape (n_workers,)
        As in :func:`~dask_quorum.pipeline.coding.make_code`.
    latencies_per_unit : array_like of shape (n_rounds, n_workers)
        Seconds per row, as in :func:`simulate` (a straggler model's
        ``sample``).
    redundancy : int, default=2
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        Breaks ties in the order of equally reliable workers (one draw,
        shared by every bound).
    rows_per_partition, overhead : float
        As in :func:`simulate`.

    Returns
    -------
    code : GradientCode
    rounds : SimulatedRounds
        Its simulated rounds on ``latencies_per_unit``.

    Raises
    ------
    ValueError
        As :func:`~dask_quorum.pipeline.coding.make_code` and
        :func:`simulate` do for bad arguments.
    """
    probs = np.asarray(straggle_probs, dtype=np.float64)
    seed = int(_as_generator(random_state).integers(2**31 - 1))
    build = lambda cap: make_code(  # noqa: E731
        "heterogeneous", probs.size, redundancy=redundancy, straggle_probs=probs,
        random_state=seed, max_load=cap,
    )
    free = build(None)
    top = int(np.count_nonzero(free.B, axis=1).max())
    r = free.redundancy
    caps = list(range(r, top + 1))
    if len(caps) > MAX_LOAD_CANDIDATES:  # the small bounds, then spread up to the unbounded loads
        caps = sorted({*caps[:3], *np.geomspace(caps[3], top, MAX_LOAD_CANDIDATES - 3).round().astype(int).tolist()})
    runs = []
    for cap in caps:
        code = free if cap == top else build(cap)
        run = simulate(code, latencies_per_unit, rows_per_partition=rows_per_partition, overhead=overhead)
        runs.append((cap, code, run))
    fastest = min(run.mean_time for _, _, run in runs)
    cap, code, run = next(x for x in runs if x[2].mean_time * (1.0 - SKEW_MIN_GAIN) <= fastest)
    logger.debug(
        "heterogeneous loads bounded by %d of %s: mean round %.3g s (unbounded %.3g s)",
        cap, caps, run.mean_time, runs[-1][2].mean_time,
    )
    return code, run


@dataclass(frozen=True, eq=False)
class Plan:
    """Outcome of :func:`plan`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per requested scheme (index ``scheme``), columns
        ``mean_time`` and ``p95_time`` (seconds per round), ``mean_error``
        (normalised decoding error), ``cost_per_round`` (compute-seconds of
        all workers), ``mean_responders``, ``exact`` (the code's guarantee)
        and ``skipped`` (why a scheme could not be built, ``""`` otherwise;
        its numbers are NaN).
    recommended : str
        The recommended scheme.
    reason : str
        Why, in one sentence.
    error_tol : float
        The error tolerance the recommendation used.
    workers : tuple of str
        The model's workers, in code order.
    redundancy : int
    runs : dict of str to SimulatedRounds
        The simulated rounds of every scheme that was built.
    codes : dict of str to GradientCode
        The codes that were simulated.
    skipped : dict of str to str
        Schemes that could not be built, with the reason.
    """

    table: pd.DataFrame
    recommended: str
    reason: str
    error_tol: float
    workers: tuple[str, ...]
    redundancy: int
    runs: dict[str, SimulatedRounds] = field(repr=False)
    codes: dict[str, GradientCode] = field(repr=False)
    skipped: dict[str, str]

    def __str__(self) -> str:
        n_rounds = next(iter(self.runs.values())).n_rounds
        lines = [
            f"Plan for {len(self.workers)} workers, redundancy {self.redundancy}, "
            f"{n_rounds} simulated rounds, error_tol {self.error_tol:g}",
            f"  {'scheme':<14}{'mean s':>11}{'p95 s':>11}{'error':>10}"
            f"{'cost s/round':>14}{'answers':>9}",
        ]
        for scheme, row in self.table.iterrows():
            mark = "*" if scheme == self.recommended else " "
            if row["skipped"]:
                lines.append(f"{mark} {scheme:<14}skipped: {row['skipped']}")
                continue
            lines.append(
                f"{mark} {scheme:<14}{row['mean_time']:>11.4g}{row['p95_time']:>11.4g}"
                f"{row['mean_error']:>10.2g}{row['cost_per_round']:>14.4g}"
                f"{row['mean_responders']:>9.2f}"
            )
        lines.append(f"recommended: {self.recommended} ({self.reason})")
        return "\n".join(lines)


def plan(
    model: Any,
    *,
    schemes: Sequence[str] = DEFAULT_SCHEMES,
    redundancy: int = 2,
    n_rounds: int = 500,
    error_tol: float | None = None,
    random_state: Any = None,
    rows_per_partition: float = 1.0,
    overhead: float = 0.0,
) -> Plan:
    """Recommend a gradient code for a cluster described by a straggler model.

    Samples ``n_rounds`` rounds of per-row latencies from ``model`` once,
    simulates every scheme on those same latencies (:func:`simulate`) and
    recommends the fastest scheme (lowest mean round time) whose mean
    decoding error is at most ``error_tol``.  Schemes whose mean times are
    within :data:`TIME_TIE_RTOL` (2 %) of that fastest one count as tied;
    the cheapest of them (compute-seconds per round) is recommended.

    Parameters
    ----------
    model : fitted straggler model
        Anything with ``workers`` (sequence of names), ``p`` (per-worker
        straggle probabilities, shape ``(n_workers,)``) and
        ``sample(n_rounds, random_state=...)`` returning an array of shape
        ``(n_rounds, n_workers)`` of seconds per row.
    schemes : sequence of str, default=DEFAULT_SCHEMES
        Schemes to compare, each in
        :data:`~dask_quorum.pipeline.coding.SCHEMES`.  A scheme whose code
        cannot be built with these parameters (``frc`` when ``redundancy``
        does not divide ``n_workers``, any coded scheme when ``redundancy >
        n_workers``) is skipped; the table says why.
    redundancy : int, default=2
        Passed to :func:`~dask_quorum.pipeline.coding.make_code`.
    n_rounds : int, default=500
        Rounds to simulate.
    error_tol : float or None, default=None
        Largest acceptable mean normalised decoding error.  ``None`` accepts
        only exact schemes: codes that guarantee exact decoding from any
        ``min_responders`` workers (``code.exact``: ``sync``, ``frc``,
        ``cyclic``, ``heterogeneous``, every scheme at ``redundancy=1``) and that also decoded
        exactly in the simulation (mean error ``<= EXACT_TOL``).  An
        approximate code that happened to decode exactly in every simulated
        round is not enough: its luck depends on the model being right.
        With a number, any scheme whose mean error is at most ``error_tol``
        qualifies; for approximate codes driving a stochastic optimiser
        ``1e-3`` is a reasonable tolerance.
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        Seeds the latency sample and the randomised codes (``expander``,
        ties of ``heterogeneous``).
    rows_per_partition, overhead : float
        As in :func:`simulate`.

    Returns
    -------
    Plan

    Raises
    ------
    ValueError
        Unknown scheme, duplicated schemes, bad ``n_rounds`` /
        ``error_tol``, a model whose ``p`` or samples do not match its
        workers, or no scheme could be built.

    Notes
    -----
    ``heterogeneous`` is built from ``model.p`` clipped to at most
    ``1 - 1e-3`` (a worker slow in every measured round has ``p = 1``),
    with the load bound of :func:`shape_heterogeneous` chosen on the same
    sampled latencies (so its time is the best of a few, measured in
    sample).  If
    no scheme qualifies (only possible without ``sync``), the one with the
    lowest mean error is recommended and the reason says so.
    """
    names = _check_schemes(schemes)
    n_rounds = _check_count(n_rounds, "n_rounds")
    tol = EXACT_TOL if error_tol is None else _check_real(error_tol, "error_tol", strict=False)
    workers, p = _check_model(model)
    n = len(workers)
    rng = _as_generator(random_state)
    latencies = _check_latencies(model.sample(n_rounds, random_state=rng), n, n_rounds=n_rounds)

    runs: dict[str, SimulatedRounds] = {}
    codes: dict[str, GradientCode] = {}
    skipped: dict[str, str] = {}
    for scheme in names:
        try:
            if scheme == "heterogeneous":
                code, run = shape_heterogeneous(
                    np.clip(p, 0.0, _P_MAX), latencies, redundancy=redundancy, random_state=rng,
                    rows_per_partition=rows_per_partition, overhead=overhead,
                )
            else:
                code = make_code(scheme, n, redundancy=redundancy, random_state=rng)
                run = simulate(code, latencies, rows_per_partition=rows_per_partition, overhead=overhead)
        except ValueError as exc:
            skipped[scheme] = str(exc)
            logger.info("plan: skipping %s: %s", scheme, exc)
            continue
        codes[scheme] = code
        runs[scheme] = run
    if not runs:
        raise ValueError(f"no scheme could be built: {skipped}")

    table = _table(names, runs, codes, skipped)
    recommended, reason = _recommend(table, tol, error_tol is None)
    logger.info("plan: recommending %s (%s)", recommended, reason)
    return Plan(
        table=table,
        recommended=recommended,
        reason=reason,
        error_tol=tol,
        workers=tuple(workers),
        redundancy=int(redundancy),
        runs=runs,
        codes=codes,
        skipped=skipped,
    )


def _table(
    names: Sequence[str],
    runs: dict[str, SimulatedRounds],
    codes: dict[str, GradientCode],
    skipped: dict[str, str],
) -> pd.DataFrame:
    rows = []
    for scheme in names:
        if scheme in skipped:
            rows.append([math.nan] * 5 + [pd.NA, skipped[scheme]])
            continue
        run = runs[scheme]
        rows.append([
            run.mean_time,
            run.p95_time,
            run.mean_error,
            run.cost_per_round,
            float(run.n_responders.mean()),
            codes[scheme].exact,
            "",
        ])
    table = pd.DataFrame(rows, index=pd.Index(list(names), name="scheme"), columns=list(_TABLE_COLUMNS))
    return table.astype({"exact": "boolean"})


def _recommend(table: pd.DataFrame, tol: float, exact_only: bool) -> tuple[str, str]:
    built = table[table["skipped"] == ""]
    eligible = built[built["mean_error"] <= tol]
    if exact_only:
        eligible = eligible[eligible["exact"].astype(bool)]
    criterion = "guarantees exact decoding" if exact_only else f"has mean error <= {tol:g}"
    if eligible.empty:
        best = str(built["mean_error"].idxmin())
        return best, (
            f"no scheme {'is exact' if exact_only else f'meets error_tol={tol:g}'}; "
            f"{best} has the lowest mean error, "
            f"{built.loc[best, 'mean_error']:.3g}"
        )
    fastest = eligible["mean_time"].min()
    tied = eligible[eligible["mean_time"] <= fastest * (1.0 + TIME_TIE_RTOL)]
    best = str(tied["cost_per_round"].idxmin())
    row = built.loc[best]
    parts = [
        f"fastest scheme that {criterion}: mean round {row['mean_time']:.3g} s, "
        f"p95 {row['p95_time']:.3g} s, {row['cost_per_round']:.3g} compute-s per round"
    ]
    if "sync" in built.index and best != "sync" and row["mean_time"] > 0:
        parts.append(f"{built.loc['sync', 'mean_time'] / row['mean_time']:.2f}x faster than sync")
    others = [s for s in tied.index if s != best]
    if others:
        parts.append(f"cheapest of the schemes within {TIME_TIE_RTOL:.0%} of the fastest ({', '.join([best, *others])})")
    faster = built[(built["mean_time"] < row["mean_time"]) & ~built.index.isin(eligible.index)]
    if not faster.empty:
        listed = ", ".join(
            f"{s} (error {e:.2g}{', not exact' if exact_only and not x else ''})"
            for s, e, x in zip(faster.index, faster["mean_error"], faster["exact"])
        )
        parts.append(f"faster but not eligible: {listed}")
    return best, "; ".join(parts)


def _check_schemes(schemes: Sequence[str]) -> list[str]:
    if isinstance(schemes, str):
        schemes = [schemes]
    names = list(schemes)
    if not names:
        raise ValueError("schemes is empty")
    unknown = [s for s in names if s not in SCHEMES]
    if unknown:
        raise ValueError(f"unknown schemes {unknown}; each must be one of {SCHEMES}")
    if len(set(names)) != len(names):
        raise ValueError(f"schemes has duplicates: {names}")
    return names


def _check_model(model: Any) -> tuple[list[str], NDArray[np.float64]]:
    missing = [m for m in ("workers", "p", "sample") if not hasattr(model, m)]
    if missing:
        raise ValueError(
            f"model must have workers, p and sample(n_rounds, random_state); "
            f"{type(model).__name__} lacks {missing}"
        )
    workers = list(model.workers)
    if not workers:
        raise ValueError("model has no workers")
    p = np.asarray(model.p, dtype=np.float64)
    if p.shape != (len(workers),):
        raise ValueError(f"model.p must have shape ({len(workers)},), got {p.shape}")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError(f"model.p must be finite and in [0, 1], got {p.tolist()}")
    return workers, p


def _check_latencies(
    latencies: ArrayLike, n_workers: int, *, n_rounds: int | None = None
) -> NDArray[np.float64]:
    lat = np.asarray(latencies, dtype=np.float64)
    expected = f"({'n_rounds' if n_rounds is None else n_rounds}, {n_workers})"
    if lat.ndim != 2 or lat.shape[0] < 1 or lat.shape[1] != n_workers:
        raise ValueError(f"latencies must have shape {expected}, got {lat.shape}")
    if n_rounds is not None and lat.shape[0] != n_rounds:
        raise ValueError(f"latencies must have shape {expected}, got {lat.shape}")
    if not (np.isfinite(lat).all() and (lat >= 0).all()):
        raise ValueError("latencies must be finite and >= 0")
    return lat


def _check_real(value: Any, name: str, *, strict: bool) -> float:
    bound = "> 0" if strict else ">= 0"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number {bound}, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or (x <= 0 if strict else x < 0):
        raise ValueError(f"{name} must be a real number {bound}, got {value!r}")
    return x


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _as_generator(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    if random_state is None or (
        isinstance(random_state, Integral) and not isinstance(random_state, (bool, np.bool_))
    ):
        return np.random.default_rng(random_state)
    raise ValueError(
        "random_state must be None, an int, a numpy RandomState or Generator, "
        f"got {random_state!r}"
    )
