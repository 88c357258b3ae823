"""Measure, simulate, then roll out: :func:`plan` recommends a gradient code for a cluster.

A fitted straggler model (per-worker straggle probabilities and a sampler
of per-row latencies) is turned into a recommendation without touching the
cluster: :func:`plan` samples latencies once, replays the same rounds under
every candidate scheme with :func:`~dask_quorum.pipeline.planning.simulate`,
and picks the fastest scheme whose decoding error is acceptable.

It does not know the straggler model's class, only its members
``workers``, ``p`` and ``sample(n_rounds, random_state=...)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..coding import EXACT_TOL, GradientCode, make_code
from ._checks import (
    as_generator,
    check_count,
    check_latencies,
    check_model,
    check_real,
    check_schemes,
)
from .shaping import shape_heterogeneous
from .simulation import SimulatedRounds, simulate

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
    simulates every scheme on those same latencies
    (:func:`~dask_quorum.pipeline.planning.simulate`) and recommends the
    fastest scheme (lowest mean round time) whose mean
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
        As in :func:`~dask_quorum.pipeline.planning.simulate`.

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
    with the load bound of
    :func:`~dask_quorum.pipeline.planning.shape_heterogeneous` chosen on the
    same sampled latencies (so its time is the best of a few, measured in
    sample).  If
    no scheme qualifies (only possible without ``sync``), the one with the
    lowest mean error is recommended and the reason says so.
    """
    names = check_schemes(schemes)
    n_rounds = check_count(n_rounds, "n_rounds")
    tol = EXACT_TOL if error_tol is None else check_real(error_tol, "error_tol", strict=False)
    workers, p = check_model(model)
    n = len(workers)
    rng = as_generator(random_state)
    latencies = check_latencies(model.sample(n_rounds, random_state=rng), n, n_rounds=n_rounds)

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
