"""Shaping the heterogeneous code to a model: the load bound that simulates fastest."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..coding import GradientCode, make_code
from ..coding.heterogeneous import SLOW_PROB
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
    approximate: bool = False,
    n_partitions: int | None = None,
    load_limit: int | None = None,
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
    approximate : bool, default=False
        Also simulate, for every bound under which the reliable workers
        (``p < 0.5``) do not hold every partition, the approximate code
        that decodes from them alone (``make_code(..., approximate=True)``,
        to be rotated: :class:`~dask_quorum.pipeline.coding.Rotation`).
        It is chosen only when it is faster than the chosen exact code by
        more than :data:`SKEW_MIN_GAIN`: an approximate gradient costs the
        optimiser accuracy the simulated round time does not show.
    n_partitions : int, optional
        Partitions ``k`` of the codes (default one per worker;
        ``rows_per_partition`` is then per one of them).  With ``k > n``
        the bounds also go below ``redundancy * k / n``, down to
        ``ceil(k / n_reliable)``: the reliable workers cover every
        partition once and the likely stragglers hold the other copies
        (:func:`~dask_quorum.pipeline.coding.make_code`, Notes); ties then
        go to the bound nearest the uniform load ``ceil(redundancy k / n)``.
    load_limit : int, optional
        No worker holds more partitions than this, whatever the bound
        (:func:`~dask_quorum.pipeline.coding.make_code`'s ``load_limit``:
        what a worker's memory takes).

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
    build = lambda cap, approx=False: make_code(
        "heterogeneous", probs.size, redundancy=redundancy, straggle_probs=probs,
        random_state=seed, max_load=cap, approximate=approx, n_partitions=n_partitions, load_limit=load_limit,
    )
    reliable = np.flatnonzero(probs < SLOW_PROB)
    free = build(None)
    top = int(np.count_nonzero(free.B, axis=1).max())
    r, n, k = free.redundancy, free.n_workers, free.n_partitions
    uniform = -(-r * k // n)
    low = r if k == n else max(1, -(-k // max(reliable.size, 1)))
    caps = list(range(min(low, uniform), top + 1))
    if len(caps) > MAX_LOAD_CANDIDATES:  # the bounds near uniform, then spread up to the unbounded loads
        near = [c for c in caps if c <= uniform][:1] + [c for c in caps if c >= uniform][:2]
        rest = [c for c in caps if c > max(near)]
        spread = np.geomspace(rest[0], top, MAX_LOAD_CANDIDATES - len(near)).round().astype(int) if rest else []
        caps = sorted({*near, *np.asarray(spread).tolist()})
    feasible = []
    for cap in caps:
        try:
            make_code_check = build(cap) if cap != top else free
        except ValueError:
            continue
        feasible.append((cap, make_code_check))
    caps = sorted((c for c, _ in feasible), key=lambda c: (abs(c - uniform), c))
    built = dict(feasible)
    sim = lambda code: simulate(code, latencies_per_unit, rows_per_partition=rows_per_partition, overhead=overhead)
    runs, approx = [], []
    for cap in caps:
        code = built[cap]
        runs.append((cap, code, sim(code)))
        if approximate and reliable.size and not code.is_exact(reliable):
            code = build(cap, True)
            approx.append((cap, code, sim(code)))
    fastest = min(run.mean_time for _, _, run in runs)
    cap, code, run = next(x for x in runs if x[2].mean_time * (1.0 - SKEW_MIN_GAIN) <= fastest)
    if approx:
        best = min(approx, key=lambda x: x[2].mean_time)
        if best[2].mean_time < (1.0 - SKEW_MIN_GAIN) * run.mean_time:
            cap, code, run = best
    logger.debug(
        "heterogeneous loads bounded by %d of %s: mean round %.3g s (unbounded %.3g s)",
        cap, caps, run.mean_time, max(runs, key=lambda x: x[0])[2].mean_time,
    )
    return code, run
