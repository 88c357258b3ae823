"""Simulated rounds: the engine's stop rule replayed on sampled latencies, without a cluster.

:func:`simulate` follows the stop rule of the engine
(:class:`~dask_quorum.pipeline.engine.RoundRunner` with its defaults
``decode_tol=0`` and no deadline): answers are taken in the order they
arrive and a round stops at the first of exact decoding
(``error <= EXACT_TOL``) or ``code.min_responders`` answers.  It also keeps
the engine's busy-worker rule: a worker still computing an older round gets
no task of the new round until that older task has finished.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..coding import EXACT_TOL, GradientCode
from ._checks import check_latencies, check_real

logger = logging.getLogger(__name__)


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
    lat = check_latencies(latencies_per_unit, code.n_workers)
    rows = check_real(rows_per_partition, "rows_per_partition", strict=True)
    extra = check_real(overhead, "overhead", strict=False)

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
