"""The heterogeneity-aware code: loads from straggle probabilities, placement, real coefficients.

The three steps of the ``heterogeneous`` scheme of
:func:`~dask_quorum.pipeline.coding.make_code`, whose Notes give the
definitions: integer loads proportional to ``1 / delta_i`` within bounds
(:func:`integer_loads`, Song & Choi), a placement of cyclic runs in
reliability order with its *reliable cover* (:func:`support_and_cover`),
and real coefficients on that support that decode from any ``n - s``
workers and from the reliable cover alone (:func:`coefficients`, after
Wang, Liu & Shroff 2019).
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


def integer_loads(
    probs: NDArray[np.float64], r: int, rank: NDArray[np.intp], cap: int
) -> NDArray[np.intp]:
    """Integer loads ``clip(c / delta_i, 1, cap)`` rounded by largest remainder (see make_code).

    ``rank`` lists the workers by priority (increasing ``p``, random among
    ties); it breaks ties between equal fractional parts.
    """
    n = k = probs.size
    total = r * k
    p = np.clip(probs, *PROB_CLIP)
    weight = (1.0 - p) / p  # 1 / delta
    lo, hi = 0.0, cap / weight.min()  # sum(clip(c w, 1, cap)) is n at c = 0 and n cap at hi
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
    order = order[loads[order] < cap]
    loads[order[: total - loads.sum()]] += 1
    return loads


def support_and_cover(
    probs: NDArray[np.float64], r: int, cap: int, rng: Any
) -> tuple[NDArray[np.bool_], NDArray[np.intp]]:
    """Support of the ``heterogeneous`` code and its reliable cover (see make_code, Notes).

    The cover is the shortest prefix of the workers in reliability order
    that holds every partition.
    """
    n = k = probs.size
    ties = rng.random(n) if isinstance(rng, np.random.Generator) else rng.random_sample(n)
    rank = np.lexsort((ties, probs))  # increasing p, random among equal p
    loads = integer_loads(probs, r, rank, cap)
    reliable = probs[rank] < SLOW_PROB  # a prefix of rank
    rel, slow = rank[reliable], rank[~reliable]
    if rel.size and slow.size and loads[rel].sum() < k:
        # Repair: move one replica at a time from the most loaded likely
        # straggler (the last in rank among equals) to the least loaded
        # reliable worker (the first in rank among equals); both keep the
        # loads non-increasing along rank.  Ends with k replicas on reliable
        # workers when r >= 2, unless max_load stops it first.
        while loads[rel].sum() < k and loads[slow].max() > 1 and loads[rel].min() < cap:
            donor = slow[np.flatnonzero(loads[slow] == loads[slow].max())[-1]]
            taker = rel[np.flatnonzero(loads[rel] == loads[rel].min())[0]]
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


#: Seed of the matrix ``C`` of the heterogeneous coefficients (with the shape).
_COEFFICIENT_SEED = 20190707


def coefficients(
    support: NDArray[np.bool_], s: int, cover: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Real coefficients on ``support`` decoding from any ``n - s`` rows (see make_code, Notes)."""
    n, k = support.shape
    if not (support.sum(axis=0) == s + 1).all():
        raise AssertionError("every partition of a heterogeneous code has redundancy holders")
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
