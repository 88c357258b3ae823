"""Shaping the heterogeneous code to a model: the load bound that simulates fastest."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..coding import GradientCode, make_code
from ._checks import as_generator
from .simulation import SimulatedRounds, simulate

logger = logging.getLogger(__name__)

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
    on the same latencies (:func:`~dask_quorum.pipeline.planning.simulate`)
    and keeps the fastest.  Bounds whose mean round times are within
    :data:`SKEW_MIN_GAIN` (10 %) of it count as tied and the smallest wins:
    the least skewed loads lose the least when the model is wrong about who
    is slow, and a model fitted on few rounds still borrows much of its
    straggling from the prior.

    Parameters
    ----------
    straggle_probs : array_like of shape (n_workers,)
        As in :func:`~dask_quorum.pipeline.coding.make_code`.
    latencies_per_unit : array_like of shape (n_rounds, n_workers)
        Seconds per row, as in :func:`~dask_quorum.pipeline.planning.simulate`
        (a straggler model's ``sample``).
    redundancy : int, default=2
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        Breaks ties in the order of equally reliable workers (one draw,
        shared by every bound).
    rows_per_partition, overhead : float
        As in :func:`~dask_quorum.pipeline.planning.simulate`.

    Returns
    -------
    code : GradientCode
    rounds : SimulatedRounds
        Its simulated rounds on ``latencies_per_unit``.

    Raises
    ------
    ValueError
        As :func:`~dask_quorum.pipeline.coding.make_code` and
        :func:`~dask_quorum.pipeline.planning.simulate` do for bad arguments.
    """
    probs = np.asarray(straggle_probs, dtype=np.float64)
    seed = int(as_generator(random_state).integers(2**31 - 1))
    build = lambda cap: make_code(
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
