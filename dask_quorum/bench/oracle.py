"""The oracle bound: how fast a fit could be, knowing every injected slowdown.

An oracle that knows each worker's speed in every round gives each worker a
share of the round's work proportional to its speed, so all finish at
once, and pays the bare Dask floor of a round on top::

    t0          = work_s / n                      natural time of a 1/n share
    speed_i(t)  = t0 / (factor_i(t) * t0 + delay_i(t))
    round(t)    = work_s / sum_i speed_i(t) + floor_s
    oracle      = sum over the rounds the exact optimiser needs of round(t)

``work_s`` is the measured compute time of one full pass over the data
(worker-seconds of a round of the synchronous scheme without stragglers),
``floor_s`` the measured time of an empty round (n no-op tasks and a
gather). Pure NumPy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["oracle_seconds", "round_seconds"]


def _speeds(work_s: float, factors: np.ndarray, delays: np.ndarray) -> np.ndarray:
    t0 = work_s / factors.shape[-1]
    if t0 <= 0:
        return np.ones_like(factors)
    return t0 / (factors * t0 + delays)


def round_seconds(work_s: float, floor_s: float, factors: np.ndarray, delays: np.ndarray) -> float:
    """The oracle's time for one round with these per-worker slowdowns.

    Parameters
    ----------
    work_s : float
        Worker-seconds of natural compute in one full round, ``>= 0``.
    floor_s : float
        Seconds of an empty round, ``>= 0``.
    factors, delays : array-like of shape (n_workers,)
        Each worker's slowdown factor (``>= 1``) and extra seconds (``>= 0``)
        in this round.

    Examples
    --------
    Four equal workers share 2 s of work, 0.1 s floor:

    >>> round_seconds(2.0, 0.1, [1, 1, 1, 1], [0, 0, 0, 0])
    0.6
    """
    factors = np.asarray(factors, dtype=float)
    delays = np.asarray(delays, dtype=float)
    return float(work_s / _speeds(work_s, factors, delays).sum() + floor_s)


def oracle_seconds(work_s: float, floor_s: float, factors: np.ndarray, delays: np.ndarray) -> float:
    """The oracle bound over rounds: the sum of :func:`round_seconds`.

    Parameters
    ----------
    work_s, floor_s : float
        See :func:`round_seconds`.
    factors, delays : array-like of shape (n_rounds, n_workers)
        Per-round, per-worker slowdowns.

    Raises
    ------
    ValueError
        On negative work or floor, mismatched shapes, factors below 1 or
        negative delays.
    """
    factors = np.atleast_2d(np.asarray(factors, dtype=float))
    delays = np.atleast_2d(np.asarray(delays, dtype=float))
    if work_s < 0 or floor_s < 0:
        raise ValueError(f"work_s and floor_s must be >= 0, got {work_s!r} and {floor_s!r}")
    if factors.shape != delays.shape:
        raise ValueError(f"factors {factors.shape} and delays {delays.shape} must have the same shape")
    if (factors < 1).any() or (delays < 0).any():
        raise ValueError("factors must be >= 1 and delays >= 0")
    if factors.shape[0] == 0:
        return 0.0
    speeds = _speeds(work_s, factors, delays).sum(axis=1)
    return float(np.sum(work_s / speeds + floor_s))
