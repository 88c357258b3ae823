"""The heterogeneity-aware code: loads from straggle probabilities, placement, real coefficients.

The three steps of the ``heterogeneous`` scheme of
:func:`~dask_quorum.pipeline.coding.make_code`, whose Notes give the
definitions: integer loads proportional to ``1 / delta_i`` within bounds
(:func:`integer_loads`, Song & Choi), a placement of cyclic runs in
reliability order with its *reliable cover* (:func:`support_and_cover`),
and coefficients on that support (:func:`coefficients`): 0/1 where the
support is made of blocks (workers holding the same partitions, as in
fractional repetition), which decodes from one answer per block, so a
transiently slow reliable worker whose block has another reliable holder
costs nothing; real ones otherwise, which decode from any ``n - s``
workers and from the reliable cover alone (after Wang, Liu & Shroff 2019).
:func:`reliable_workers` says which workers a round expects to answer.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

#: Straggle probabilities are clipped into this range before
#: ``delta = p / (1 - p)`` so that a perfectly reliable worker (``p = 0``) gets
#: a finite weight ``1 / delta`` (999 at most, i.e. the most reliable worker
#: weighs at most ``999**2`` times the least reliable).
PROB_CLIP = (1e-3, 1.0 - 1e-3)
#: Workers with ``p >= SLOW_PROB`` are likely stragglers.
SLOW_PROB = 0.5


def load_bounds(
    probs: NDArray[np.float64], r: int, cap: int, k: int, limit: int | None = None
) -> NDArray[np.intp]:
    """Each worker's most partitions: ``cap``, raised for the likely stragglers when needed (see make_code).

    With ``k > n`` partitions a bound below ``r k / n`` on every worker
    cannot place ``r k`` replicas; the bound then holds for the reliable
    workers (``p < SLOW_PROB``) and the likely stragglers share the rest
    evenly (at most ``limit`` each, default ``k``: they hold the copies a
    round does not wait for). No bound exceeds ``limit`` (what a worker's
    memory takes).

    Raises
    ------
    ValueError
        If even then the ``r k`` replicas do not fit.
    """
    n = probs.size
    limit = k if limit is None else min(int(limit), k)
    slow = probs >= SLOW_PROB
    n_rel, n_slow = n - int(slow.sum()), int(slow.sum())
    bounds = np.full(n, min(cap, limit), dtype=np.intp)
    if cap * n < r * k and n_slow:
        bounds[slow] = min(limit, max(cap, -(-(r * k - cap * n_rel) // n_slow)))
    if bounds.sum() < r * k:
        raise ValueError(
            f"max_load={cap} (load_limit={limit}) leaves room for {int(bounds.sum())} of the {r * k} "
            f"replicas of {k} partitions at redundancy {r} on {n} workers ({n_slow} likely stragglers)"
        )
    return bounds


def integer_loads(
    probs: NDArray[np.float64], r: int, rank: NDArray[np.intp], cap: int, k: int | None = None,
    limit: int | None = None,
) -> NDArray[np.intp]:
    """Integer loads ``clip(c / delta_i, 1, L_i)`` rounded by largest remainder (see make_code).

    ``L_i`` is :func:`load_bounds`; ``k`` partitions (default one per
    worker).  ``rank`` lists the workers by priority (increasing ``p``,
    random among ties); it breaks ties between equal fractional parts.
    """
    n = probs.size
    k = n if k is None else int(k)
    total = r * k
    cap = load_bounds(probs, r, cap, k, limit)
    p = np.clip(probs, *PROB_CLIP)
    weight = (1.0 - p) / p  # 1 / delta
    lo, hi = 0.0, cap.max() / weight.min()  # sum(clip(c w, 1, L)) is n at c = 0 and sum(L) at hi
    for _ in range(200):
        c = 0.5 * (lo + hi)
        if np.clip(c * weight, 1, cap).sum() < total:
            lo = c
        else:
            hi = c
    real = np.round(np.clip(hi * weight, 1, cap), 9)  # 9 decimals: bisection noise
    loads = np.floor(real).astype(np.intp)
    position = np.empty(n, dtype=np.intp)
    position[rank] = np.arange(n)
    order = np.lexsort((position, loads - real))  # largest remainder first, then rank
    order = order[loads[order] < cap[order]]
    loads[order[: total - loads.sum()]] += 1
    return loads


def support_and_cover(
    probs: NDArray[np.float64], r: int, cap: int, rng: Any, k: int | None = None, limit: int | None = None
) -> tuple[NDArray[np.bool_], NDArray[np.intp]]:
    """Support of the ``heterogeneous`` code over ``k`` partitions and its reliable cover (see make_code, Notes).

    The cover is the shortest prefix of the workers in reliability order
    that holds every partition.
    """
    n = probs.size
    k = n if k is None else int(k)
    ties = rng.random(n) if isinstance(rng, np.random.Generator) else rng.random_sample(n)
    rank = np.lexsort((ties, probs))  # increasing p, random among equal p
    loads = integer_loads(probs, r, rank, cap, k, limit)
    bounds = load_bounds(probs, r, cap, k, limit)
    reliable = probs[rank] < SLOW_PROB  # a prefix of rank
    rel, slow = rank[reliable], rank[~reliable]
    if rel.size and slow.size and loads[rel].sum() < k:
        # Repair: move one replica at a time from the most loaded likely
        # straggler (the last in rank among equals) to the least loaded
        # reliable worker (the first in rank among equals); both keep the
        # loads non-increasing along rank.  Ends with k replicas on reliable
        # workers when r >= 2, unless max_load stops it first.
        while loads[rel].sum() < k and loads[slow].max() > 1 and (loads[rel] < bounds[rel]).any():
            donor = slow[np.flatnonzero(loads[slow] == loads[slow].max())[-1]]
            room = rel[loads[rel] < bounds[rel]]
            taker = room[np.flatnonzero(loads[room] == loads[room].min())[0]]
            loads[donor] -= 1
            loads[taker] += 1
    if loads[rel].sum() < k:
        logger.info(
            "heterogeneous code: the %d reliable workers (p < %g) hold %d replicas, fewer than "
            "the %d partitions; %d partitions are held by likely stragglers only",
            rel.size, SLOW_PROB, loads[rel].sum(), k, k - loads[rel].sum(),
        )
    support = np.zeros((n, k), dtype=bool)
    start = 0
    for i in rank:
        support[i, (start + np.arange(loads[i])) % k] = True
        start += loads[i]
    covered = np.cumsum(support[rank], axis=0).astype(bool).all(axis=1)
    return support, rank[: int(np.argmax(covered)) + 1]


def reliable_workers(probs: NDArray[np.float64]) -> NDArray[np.intp]:
    """Workers a round expects to answer: ``p < SLOW_PROB``, in worker order."""
    return np.flatnonzero(np.asarray(probs) < SLOW_PROB)


def is_blocks(support: NDArray[np.bool_]) -> bool:
    """Whether any two workers that share a partition hold the same partitions.

    Then the workers fall into blocks, each holding its own set of
    partitions, and coefficient 1 decodes from one answer per block.
    """
    S = np.asarray(support, dtype=np.int64)
    overlap = S @ S.T
    size = np.diag(overlap)
    shared = overlap > 0
    return bool(((overlap == size[:, None]) & (overlap == size[None, :]) | ~shared).all())


#: Seed of the matrix ``C`` of the heterogeneous coefficients (with the shape).
_COEFFICIENT_SEED = 20190707


def coefficients(
    support: NDArray[np.bool_], s: int, cover: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Coefficients on ``support`` decoding from any ``n - s`` rows (see make_code, Notes).

    0/1 on a support of blocks (:func:`is_blocks`): every block has ``s + 1``
    holders, so any ``n - s`` rows hold one per block, and so does any set
    with one reliable holder per block, whatever the other reliable workers
    do.  Real coefficients otherwise.
    """
    n, k = support.shape
    if not (support.sum(axis=0) == s + 1).all():
        raise AssertionError("every partition of a heterogeneous code has redundancy holders")
    if is_blocks(support):
        return support.astype(np.float64)
    rng = np.random.default_rng([_COEFFICIENT_SEED, n, k, s])
    best = None
    for _ in range(_coefficient_draws(n)):
        C = np.linalg.qr(rng.standard_normal((n, n - s)))[0]
        e = C[cover].sum(axis=0)
        B = np.zeros((n, k))
        for j in range(k):
            others = C[~support[:, j]]
            # a null vector of those rows (n - s - 1 of them, in n - s dimensions)
            x = np.linalg.svd(others)[2][-1] if others.shape[0] else np.ones(n - s)
            B[:, j] = C @ (x / (e @ x))
            B[~support[:, j], j] = 0.0  # exact zeros where the product leaves ~1e-16
        if best is None or np.abs(B).max() < np.abs(best).max():
            best = B
    return best


def _coefficient_draws(n: int) -> int:
    """Draws of ``C`` to keep the smallest coefficients from: an unlucky draw
    puts a near-zero at a first-pass holder and blows its column up."""
    return 8 if n <= 32 else 3 if n <= 64 else 1
