"""The constructions of every gradient-coding scheme: :func:`make_code`.

``sync`` and ``uncoded`` (the identity), fractional repetition, cyclic
repetition with BCH-structured coefficients, a random regular
``expander``, and the heterogeneity-aware code
(:mod:`~dask_quorum.pipeline.coding.heterogeneous`). Every scheme here uses
as many partitions as workers.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import heterogeneous
from ._checks import check_count, check_probs
from .code import GradientCode

logger = logging.getLogger(__name__)

#: Names accepted by :func:`make_code`.
SCHEMES: tuple[str, ...] = ("sync", "uncoded", "frc", "cyclic", "expander", "heterogeneous")

_EXACT_SCHEMES = frozenset({"sync", "frc", "cyclic", "heterogeneous"})
_SWAPS_PER_EDGE = 10  # edge switches per edge when randomising the expander


def make_code(
    scheme: str,
    n_workers: int,
    *,
    redundancy: int = 2,
    straggle_probs: ArrayLike | None = None,
    random_state: Any = None,
    max_load: int | None = None,
    approximate: bool = False,
    n_partitions: int | None = None,
    load_limit: int | None = None,
) -> GradientCode:
    """Build the gradient code of ``scheme`` for ``n_workers`` workers.

    Every scheme here uses ``n_partitions == n_workers`` except
    ``heterogeneous``, which may spread ``n_partitions`` partitions.

    Parameters
    ----------
    scheme : {"sync", "uncoded", "frc", "cyclic", "expander", "heterogeneous"}
        ``sync``: ``B = I``, wait for every worker; ``redundancy`` is ignored
        (the code reports ``redundancy=1``) and never raises beyond type
        checks.  ``uncoded``: ``B = I``, ignore the ``redundancy - 1``
        slowest workers and rescale by ``k / |S|``.  ``frc``: fractional
        repetition (Tandon et al., arXiv 1612.03301); ``redundancy`` must
        divide ``n_workers``; each group of ``redundancy`` consecutive
        workers holds the same ``redundancy`` partitions with coefficient 1.
        ``cyclic``: cyclic repetition (same paper), worker ``i`` holds
        partitions ``i .. i + redundancy - 1 (mod n)``; see Notes.
        ``expander``: ``B`` is the adjacency matrix of a random
        ``redundancy``-regular bipartite graph divided by ``redundancy``
        (Raviv et al. arXiv 1707.03858; Charles et al. arXiv 1711.06771).
        ``heterogeneous``: heterogeneity-aware loads from ``straggle_probs``
        (Song & Choi, NeurIPS 2025): reliable workers hold more partitions,
        likely stragglers fewer, every partition has ``redundancy``
        replicas, and real coefficients make any ``n - redundancy + 1``
        workers decode exactly; see Notes.
    n_workers : int
        Number of workers, at least 1.
    redundancy : int, default 2
        Replication factor ``r`` in ``[1, n_workers]``; rounds may ignore
        ``r - 1`` stragglers.
    straggle_probs : array_like of shape (n_workers,), optional
        Per-worker straggle probabilities in ``[0, 1)``.  Required by
        ``heterogeneous``; rejected by every other scheme.
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        Seed for the randomised constructions: the graph of ``expander``,
        and the order among workers with equal ``straggle_probs`` in
        ``heterogeneous``.  The same seed gives the same ``B``.  The other
        schemes are deterministic.
    max_load : int, optional
        ``heterogeneous`` only: no worker holds more than ``max_load``
        partitions (default ``n_workers``: Song & Choi's loads unbounded).
        Must be at least ``redundancy``; ``max_load == redundancy`` gives
        every worker ``redundancy`` partitions, placed by reliability.
        :func:`~dask_quorum.pipeline.planning.shape_heterogeneous` picks it
        by simulating a fitted straggler model.  With ``n_partitions`` above
        ``n_workers`` it may be below ``redundancy * k / n``: it then binds
        the reliable workers and the likely stragglers share the remaining
        replicas evenly (see Notes).
    load_limit : int, optional
        ``heterogeneous`` only: a hard ceiling on every worker's partitions,
        the likely stragglers' included (what a worker's memory takes: a
        round task holds all of a worker's partitions at once). ``max_load``
        may raise the stragglers' loads up to it, never beyond.
    n_partitions : int, optional
        ``heterogeneous`` only: the number of partitions ``k`` (default
        ``n_workers``).  More partitions than workers give fractional
        loads in units of ``n / k`` of a worker's share, so that the
        reliable workers can cover every partition with loads near
        ``k / n_reliable`` each.
    approximate : bool, default=False
        ``heterogeneous`` only: decode from the reliable workers
        (``straggle_probs < 0.5``) without waiting for the others, even
        when they do not hold every partition: the code ignores
        ``n - n_reliable`` stragglers (at least ``redundancy - 1``), is not
        exact, and its decoder is ``unbiased`` (decoded weights add up to
        ``k``), so that rotating it
        (:class:`~dask_quorum.pipeline.coding.Rotation`) makes the decoded
        sum unbiased over a period.

    Returns
    -------
    GradientCode
        ``n_stragglers == redundancy - 1`` (0 for ``sync``); ``exact`` as
        documented on :class:`~dask_quorum.pipeline.coding.GradientCode`.
        With ``redundancy == 1`` every scheme gives ``B = I``.

    Raises
    ------
    ValueError
        Unknown ``scheme``; ``n_workers`` or ``redundancy`` not an integer
        (booleans are rejected) or out of range; ``frc`` with
        ``n_workers % redundancy != 0``; ``straggle_probs`` missing for
        ``heterogeneous`` or given for another scheme; ``straggle_probs``
        not of shape ``(n_workers,)``, not finite or outside ``[0, 1)``;
        ``max_load`` given for another scheme, not an integer or outside
        ``[redundancy, n_workers]``; ``approximate`` given for another
        scheme.

    Notes
    -----
    Heterogeneous loads.  With ``p`` clipped into ``[1e-3, 1 - 1e-3]``,
    ``delta_i = p_i / (1 - p_i)`` and worker ``i`` gets the real load
    ``x_i = clip(c / delta_i, 1, L)``, ``L = max_load`` (default ``k``),
    ``c`` chosen so that the loads add up
    to ``redundancy * k`` (water-filling: proportional to ``1 / delta_i``
    where the bounds do not bind).  Integer loads are ``floor(x_i)`` plus
    one for the largest fractional parts (largest remainder), which keeps
    the total exactly; ties go to the smaller ``p``, then to a random order
    drawn from ``random_state``.  Loads are therefore monotone: a worker
    with a smaller ``p`` never holds fewer partitions than one with a larger
    ``p``.

    With ``k = n_partitions > n`` partitions the same rule gives loads in
    steps of ``1 / c`` of a worker's share (``c = k / n``).  A bound
    ``L < r k / n`` cannot hold every replica when it binds every worker;
    it then binds the reliable workers only, and the likely stragglers
    hold ``L_s = max(L, ceil((r k - L n_R) / n_S))`` each (at most ``k``).
    That is the point of more partitions: with 12 reliable workers of 16,
    ``r = 2`` and ``k = 48``, ``L = 4`` lets the reliable workers cover
    every partition once at 4/3 of a share each while the 4 stragglers hold
    the second copies (12 each), which a round does not wait for.  The
    loads are chosen among such bounds by simulating the fitted model
    (:func:`~dask_quorum.pipeline.planning.shape_heterogeneous`): expected
    throughput decides, and a lower reliable load pays only if the
    simulated rounds, transient slowdowns of reliable workers included,
    get faster.

    Heterogeneous placement.  Workers are sorted by increasing ``p`` (random
    order among equal ``p``) and the sequence of ``redundancy * k`` replicas
    ``0, 1, .., k - 1, 0, 1, ..`` is cut into consecutive blocks of the
    workers' loads: every worker holds a cyclic run of distinct partitions
    and every partition has exactly ``redundancy`` replicas on distinct
    workers.  With uniform ``p`` and ``redundancy`` dividing ``n`` this is
    fractional repetition.  The first pass over the partitions goes to the
    most reliable workers, so if the reliable workers (``p < 0.5``) hold at
    least ``k`` replicas no partition has all its replicas on likely
    stragglers.  When the rounded loads give them fewer, replicas are moved
    one at a time from the most loaded likely straggler to the least loaded
    reliable worker (which keeps the loads monotone) until they hold ``k``;
    this is always possible when ``redundancy >= 2``, at least one
    worker has ``p < 0.5`` and ``max_load`` leaves room.  Otherwise (no reliable worker, or
    ``redundancy == 1``, where ``B = I``) the code is built anyway, best
    effort: exactly ``max(0, k - L)`` partitions, ``L`` the replicas on
    reliable workers, have only likely stragglers as holders, the fewest
    possible; ``approximate=True`` then decodes them approximately from the
    reliable workers.  Rotation
    (:meth:`~dask_quorum.pipeline.coding.GradientCode.rotated`) then keeps
    these partitions from being the same ones all the time.

    Heterogeneous coefficients.  When the support is made of blocks (any
    two workers that share a partition hold the same partitions, as with
    equal loads ``max_load == redundancy`` dividing ``n``), coefficients
    are 0/1 and one answer per block decodes: the reliable workers come
    first in the placement, so each likely straggler shares its block with
    reliable workers, and a reliable worker whose block has another
    reliable holder may be late at no cost.  Otherwise every partition has exactly ``s + 1``
    holders (``s = redundancy - 1``), so the construction of Wang, Liu &
    Shroff (heterogeneity-aware gradient coding, ICDCS 2019) applies: take
    ``C`` (``n x (n - s)``) whose every ``n - s`` rows are independent and
    write ``B = C X``.  Column ``j`` of ``B`` must vanish on the ``n - s -
    1`` workers that do not hold ``j``, which fixes column ``j`` of ``X``
    up to scale (a null vector of those rows of ``C``); scaling every
    column so that ``e^T X = 1`` for one vector ``e`` makes any ``n - s``
    responders ``S`` decode exactly, with ``a^T = e^T C_S^{-1}``.  ``C`` is
    an orthonormalised Gaussian matrix drawn from a seed fixed by the shape
    (not by ``random_state``), so equal supports give equal codes; of a few
    draws the one with the smallest largest coefficient is kept.  ``e`` is
    the sum of the rows of ``C`` of the reliable cover ``P``: the shortest
    prefix of the workers in reliability order that holds every partition.
    Then ``e^T x_j = sum_{i in P} B[i, j] = 1`` for every ``j``, so the rows
    of ``P`` add up to 1 and ``P`` decodes exactly on its own (``a = 1``),
    whatever the other workers do: more than ``s`` persistent stragglers
    cost nothing as long as the most reliable workers answer.  The code is
    exact (``exact`` is true).

    Cyclic coefficients.  Tandon et al. draw a random ``s x n`` matrix ``H``
    (``s = r - 1``) with ``H 1 = 0`` and take row ``b_i`` as the null vector
    of ``H`` restricted to the window ``i .. i + s``.  With Gaussian ``H``
    the null vectors of ``B`` localise and the decoder becomes badly
    conditioned: for ``n = 63, s = 4`` the worst straggler set needs weights
    up to ``1e7 .. 1e10`` (relative decoding error up to ``1e-6``).  Here
    ``H`` is instead spanned by the ``s`` real Fourier modes
    ``exp(i theta_m j)`` with ``theta_m = pi + 2 pi (m - (s - 1)/2) / n``,
    the roots of ``p(z) = prod_m (z - exp(i theta_m))``.  Row ``i`` is
    ``z^i p(z)`` reduced modulo ``z^n - sigma``, ``sigma = (-1)^(n-s+1)``:
    a cyclic code when ``n - s`` is odd, negacyclic (wrapped coefficients
    change sign) when it is even.  The complement of the roots is ``n - s``
    consecutive roots of ``z^n = sigma``, so by the BCH bound any ``n - s``
    rows are independent (Raviv et al. use the same idea).  In the cyclic
    case ``1`` lies in the row space and rows sum to 1 (``a = 1`` decodes
    the full set); in the negacyclic case columns are divided by ``v``, the
    projection of ``1`` onto the row space (``2/n <= v_j``, checked for
    ``n < 400``), which puts ``1`` in the row space.  For ``n <= 64`` and
    ``s <= 4`` the decoding weights stay below ``2e4`` and the relative
    decoding error below ``1e-11`` over all straggler sets checked.
    Conditioning degrades as ``s`` grows, worst near ``s = n / 3`` (the
    roots crowd on one arc): at ``n = 64`` the relative error is about
    ``1e-9`` for ``s = 8`` and ``1e-5`` for ``s = 20 .. 32``, where
    ``err(S)`` can exceed :data:`~dask_quorum.pipeline.coding.EXACT_TOL`.
    The construction is deterministic, so ``random_state`` does not affect
    ``cyclic``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    n = check_count(n_workers, "n_workers")
    r = check_count(redundancy, "redundancy")
    if scheme == "sync":
        r = 1
    elif r > n:
        raise ValueError(f"redundancy must be <= n_workers={n}, got {r}")
    if scheme == "frc" and n % r:
        raise ValueError(f"frc needs redundancy to divide n_workers={n}, got redundancy={r}")
    if scheme == "heterogeneous":
        if straggle_probs is None:
            raise ValueError("scheme='heterogeneous' needs straggle_probs, one per worker")
        probs = check_probs(straggle_probs, n)
        k = n if n_partitions is None else check_count(n_partitions, "n_partitions")
        if k < n:
            raise ValueError(f"n_partitions must be >= n_workers={n}, got {k}")
        cap = k if max_load is None else check_count(max_load, "max_load")
        low = r if k == n else 1
        if not low <= cap <= k:
            raise ValueError(
                f"max_load must be in [{'redundancy=' if k == n else ''}{low}, "
                f"{'n_workers' if k == n else 'n_partitions'}={k}], got {max_load!r}"
            )
        if load_limit is not None:
            load_limit = check_count(load_limit, "load_limit")
        heterogeneous.load_bounds(probs, r, cap, k, load_limit)  # raises when r k replicas do not fit
    else:
        if approximate:
            raise ValueError(
                f"approximate is only used by the heterogeneity-aware scheme 'heterogeneous'; "
                f"scheme={scheme!r} does not use it"
            )
        for name, value in (
            ("straggle_probs", straggle_probs), ("max_load", max_load), ("n_partitions", n_partitions),
            ("load_limit", load_limit),
        ):
            if value is None:
                continue
            if name == "straggle_probs":
                check_probs(value, n)
            raise ValueError(
                f"{name} is only used by the heterogeneity-aware scheme 'heterogeneous'; "
                f"scheme={scheme!r} does not use it"
            )
    if scheme in ("sync", "uncoded") or r == 1:
        B = np.eye(n) if scheme != "heterogeneous" else (np.arange(k) * n // k == np.arange(n)[:, None]) * 1.0
    elif scheme == "frc":
        B = np.kron(np.eye(n // r), np.ones((r, r)))
    elif scheme == "cyclic":
        B = _cyclic_matrix(n, r - 1)
    else:
        rng = random_state
        if not isinstance(rng, np.random.Generator):
            from sklearn.utils import check_random_state  # sklearn loads on first use

            rng = check_random_state(rng)
        if scheme == "heterogeneous":
            support, cover = heterogeneous.support_and_cover(probs, r, cap, rng, k, load_limit)
            B = heterogeneous.coefficients(support, r - 1, cover)
        else:
            B = _random_regular_bipartite(n, r, rng) / r
    exact = scheme in _EXACT_SCHEMES or r == 1
    stragglers = None
    if approximate:
        reliable = heterogeneous.reliable_workers(probs).size
        stragglers = max(r - 1, n - max(reliable, 1))
        exact = stragglers == r - 1 and exact
    code = GradientCode(
        scheme=scheme, B=B, redundancy=r, exact=exact, stragglers=stragglers, unbiased=approximate
    )
    logger.debug("built %r", code)
    return code


def _cyclic_matrix(n: int, s: int) -> NDArray[np.float64]:
    """Cyclic-repetition matrix with BCH-structured coefficients (see make_code)."""
    sigma = 1.0 if (n - s) % 2 else -1.0
    theta = np.pi + 2 * np.pi * (np.arange(s) - (s - 1) / 2) / n
    # p_0 .. p_s: null vector of the modes on s + 1 consecutive positions
    # (an SVD is accurate where expanding prod(z - root) is not, for large s).
    window = np.exp(1j * np.outer(theta, np.arange(s + 1)))
    p = np.linalg.svd(np.vstack([window.real, window.imag]))[2][-1]
    p /= p.sum()  # p(1) != 0: 1 is not a root
    cols = np.arange(n)[:, None] + np.arange(s + 1)
    B = np.zeros((n, n))
    B[np.arange(n)[:, None], cols % n] = p * np.where(cols >= n, sigma, 1.0)
    if sigma < 0:
        # The modes exp(i theta_m j) are orthogonal with norm^2 n, so this is
        # 1 minus its projection on them, i.e. its projection on the row space.
        modes = np.exp(1j * np.outer(theta, np.arange(n)))
        v = 1.0 - (modes.conj().T @ modes.sum(axis=1)).real / n
        B /= v
    return B


def _random_regular_bipartite(n: int, d: int, rng: Any) -> NDArray[np.float64]:
    """0/1 matrix of a random d-regular bipartite graph on n + n vertices.

    Starts from a circulant pattern with relabelled rows and columns, then
    applies random edge switches ``(i1, j1), (i2, j2) -> (i1, j2), (i2, j1)``
    that keep the graph simple; switches preserve all degrees.
    """
    rows = np.repeat(np.arange(n), d)
    cols = rng.permutation(n)[(rows + np.tile(np.arange(d), n)) % n]
    rows = rng.permutation(n)[rows]
    adj = np.zeros((n, n), dtype=bool)
    adj[rows, cols] = True
    n_edges = n * d
    picks = (rng.random((_SWAPS_PER_EDGE * n_edges, 2)) * n_edges).astype(np.intp)
    for e1, e2 in picks:
        i1, j1, i2, j2 = rows[e1], cols[e1], rows[e2], cols[e2]
        if i1 == i2 or j1 == j2 or adj[i1, j2] or adj[i2, j1]:
            continue
        adj[i1, j1] = adj[i2, j2] = False
        adj[i1, j2] = adj[i2, j1] = True
        cols[e1], cols[e2] = j2, j1
    return adj.astype(np.float64)
