"""Gradient codes: redundant assignment of data partitions to workers.

``n`` workers share ``k`` data partitions with partial results
``g_1 .. g_k``; the quantity wanted each round is ``g = sum_j g_j``.  An
encoding matrix ``B`` (``n x k``) places partition ``j`` on worker ``i``
when ``B[i, j] != 0``; worker ``i`` returns ``y_i = sum_j B[i, j] g_j``.
From the responders ``S`` a decoder picks weights ``a`` and returns
``sum_{i in S} a_i y_i = (B_S^T a)^T g``, which is exact when
``B_S^T a = 1``.  The error of a responder set is
``err(S) = ||B_S^T a - 1||^2 / k`` (see ``DESIGN.md`` section 2).

The module is pure NumPy and knows nothing about Dask.  The engine asks
:func:`make_code` for a :class:`GradientCode`, ships partition ``j`` to the
workers in ``code.holders(j)``, waits for ``code.min_responders`` answers
(or fewer, on a deadline) and combines them with ``code.decode(responders)``.
Every few rounds it may switch to ``code.rotated(shift)`` (same loads,
partitions relabelled) so that no partition stays behind a persistently slow
worker, re-placing only the replicas that moved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["SCHEMES", "EXACT_TOL", "GradientCode", "make_code"]

logger = logging.getLogger(__name__)

#: Names accepted by :func:`make_code`.
SCHEMES: tuple[str, ...] = ("sync", "uncoded", "frc", "cyclic", "expander", "heterogeneous")

#: ``is_exact`` threshold on ``err(S)`` (a mean squared coefficient error).
EXACT_TOL: float = 1e-10

_EXACT_SCHEMES = frozenset({"sync", "frc", "cyclic", "heterogeneous"})
_RESCALED_SCHEMES = frozenset({"sync", "uncoded"})  # decoded by k / |S| rescaling
_SWAPS_PER_EDGE = 10  # edge switches per edge when randomising the expander
#: ``heterogeneous``: straggle probabilities are clipped into this range before
#: ``delta = p / (1 - p)`` so that a perfectly reliable worker (``p = 0``) gets
#: a finite weight ``1 / delta`` (999 at most, i.e. the most reliable worker
#: weighs at most ``999**2`` times the least reliable).
_PROB_CLIP = (1e-3, 1.0 - 1e-3)
#: ``heterogeneous``: workers with ``p >= _SLOW_PROB`` are likely stragglers.
_SLOW_PROB = 0.5


@dataclass(frozen=True, eq=False, repr=False)
class GradientCode:
    """An encoding matrix with its decoder.

    Build instances with :func:`make_code`.

    Parameters
    ----------
    scheme : str
        One of :data:`SCHEMES`.
    B : array_like of shape (n_workers, n_partitions)
        Encoding matrix; stored as a read-only float64 copy.
    redundancy : int
        Redundancy parameter; ``n_stragglers == redundancy - 1``.
    exact : bool
        Whether decoding is exact from *any* ``min_responders`` workers:
        true for ``sync``, ``frc``, ``cyclic`` and ``heterogeneous``, and
        for every scheme with ``redundancy == 1`` (then all workers are
        waited for).

    Attributes
    ----------
    n_workers, n_partitions : int
        Shape of ``B``.
    n_stragglers : int
        How many of the slowest workers a round may ignore.
    min_responders : int
        ``n_workers - n_stragglers``: a round never needs more answers.
    """

    scheme: str
    B: NDArray[np.float64]
    redundancy: int
    exact: bool

    def __post_init__(self) -> None:
        B = np.array(self.B, dtype=np.float64)
        if B.ndim != 2 or 0 in B.shape:
            raise ValueError(f"B must be a non-empty 2-D array, got shape {B.shape}")
        if not 1 <= self.redundancy <= B.shape[0]:
            raise ValueError(
                f"redundancy must be in [1, n_workers={B.shape[0]}], got {self.redundancy}"
            )
        B.flags.writeable = False
        object.__setattr__(self, "B", B)

    @property
    def n_workers(self) -> int:
        return self.B.shape[0]

    @property
    def n_partitions(self) -> int:
        return self.B.shape[1]

    @property
    def n_stragglers(self) -> int:
        return self.redundancy - 1

    @property
    def min_responders(self) -> int:
        return self.n_workers - self.n_stragglers

    def __repr__(self) -> str:
        return (
            f"GradientCode(scheme={self.scheme!r}, n_workers={self.n_workers}, "
            f"n_partitions={self.n_partitions}, redundancy={self.redundancy}, "
            f"n_stragglers={self.n_stragglers}, exact={self.exact})"
        )

    def rotated(self, shift: int) -> GradientCode:
        """The same code with its partitions cyclically relabelled by ``shift``.

        Worker ``i`` of the result holds partition ``(j + shift) mod k``
        wherever this code's worker ``i`` holds ``j``:
        ``rotated(shift).B == numpy.roll(B, shift, axis=1)``.  Worker loads,
        redundancy, exactness and the error of every responder set are
        unchanged; only *which* partitions sit behind which workers changes.
        ``rotated(a).rotated(b)`` equals ``rotated(a + b)`` and
        ``rotated(k)`` equals the code itself.

        Rotating every few rounds (Johri, Yardi & Bodas, arXiv 2105.06124)
        keeps a persistently slow worker from always losing the same
        partitions, which would bias the decoded sum.

        Rotation moves data.  Going from shift ``s`` to ``s + 1``, worker
        ``i`` holding the set ``A_i`` must receive the partitions of
        ``A_i + 1`` that are not in ``A_i`` (and may drop as many): one per
        maximal run of cyclically consecutive partitions in ``A_i``, none
        if it holds all ``k``.  ``heterogeneous``, ``cyclic`` and ``frc``
        give every worker a single run, so one step moves exactly one
        replica per worker holding fewer than ``k`` partitions: at most
        ``n_workers`` of the ``redundancy * k`` replicas.  A random
        ``expander`` has mostly isolated partitions per worker and moves
        nearly all of its replicas.  A shift of ``m`` moves at most ``m``
        replicas per run.

        Parameters
        ----------
        shift : int
            Any integer; taken modulo ``n_partitions``.

        Returns
        -------
        GradientCode
        """
        if isinstance(shift, (bool, np.bool_)) or not isinstance(shift, Integral):
            raise ValueError(f"shift must be an integer, got {shift!r}")
        B = np.roll(self.B, int(shift) % self.n_partitions, axis=1)
        return GradientCode(scheme=self.scheme, B=B, redundancy=self.redundancy, exact=self.exact)

    def assignment(self, worker: int) -> NDArray[np.intp]:
        """Partition indices held by ``worker`` (nonzero columns of its row)."""
        return np.flatnonzero(self.B[_check_index(worker, self.n_workers, "worker")])

    def holders(self, partition: int) -> NDArray[np.intp]:
        """Worker indices holding ``partition`` (nonzero rows of its column)."""
        j = _check_index(partition, self.n_partitions, "partition")
        return np.flatnonzero(self.B[:, j])

    def decode(self, responders: ArrayLike) -> NDArray[np.float64]:
        """Decoding weights, one per responder.

        Parameters
        ----------
        responders : sequence of int or boolean mask
            Distinct worker indices in any order, or a boolean mask of
            length ``n_workers``.

        Returns
        -------
        ndarray of shape (n_responders,)
            Weights in the order given (increasing worker index for a mask).
            ``sync`` and ``uncoded`` use the "ignore stragglers" estimator,
            ``k`` over the number of partitions the responders hold for
            every responder (``k / |S|`` when ``B = I``); the other schemes use the
            minimum-norm least-squares solution of ``B_S^T a = 1``.

        Raises
        ------
        ValueError
            If ``responders`` is empty, not integer/boolean, out of range or
            has duplicates.
        """
        idx = self._responder_indices(responders)
        if idx.size == 0:
            raise ValueError("responders is empty: at least one worker must respond")
        return self._weights(idx)

    def error(self, responders: ArrayLike) -> float:
        """Decoding error ``||B_S^T a - 1||^2 / k`` with ``a = decode(responders)``.

        An empty responder set has error 1.0 (nothing is recovered).
        """
        idx = self._responder_indices(responders)
        if idx.size == 0:
            return 1.0
        residual = self.B[idx].T @ self._weights(idx) - 1.0
        return float(residual @ residual) / self.n_partitions

    def is_exact(self, responders: ArrayLike) -> bool:
        """Whether ``error(responders) < EXACT_TOL`` (``1e-10``)."""
        return self.error(responders) < EXACT_TOL

    def _weights(self, idx: NDArray[np.intp]) -> NDArray[np.float64]:
        if self.scheme in _RESCALED_SCHEMES:
            # k / (partitions the responders hold): k / |S| when B = I; a code
            # regrouped over fewer workers (pipeline.regroup) holds several.
            held = int(np.count_nonzero(self.B[idx].any(axis=0)))
            return np.full(idx.size, self.n_partitions / max(held, 1))
        ones = np.ones(self.n_partitions)
        return np.linalg.lstsq(self.B[idx].T, ones, rcond=None)[0]

    def _responder_indices(self, responders: ArrayLike) -> NDArray[np.intp]:
        arr = np.asarray(responders)
        if arr.ndim != 1:
            raise ValueError(
                f"responders must be a 1-D sequence of worker indices or a boolean mask, "
                f"got an array of shape {arr.shape}"
            )
        if arr.dtype == np.bool_:
            if arr.size != self.n_workers:
                raise ValueError(
                    f"boolean responders mask must have length n_workers={self.n_workers}, "
                    f"got {arr.size}"
                )
            return np.flatnonzero(arr)
        if arr.size == 0:
            return np.empty(0, dtype=np.intp)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"responders must be integer worker indices, got dtype {arr.dtype}")
        bad = arr[(arr < 0) | (arr >= self.n_workers)]
        if bad.size:
            raise ValueError(
                f"responders out of range [0, {self.n_workers}): {sorted(set(bad.tolist()))}"
            )
        values, counts = np.unique(arr, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"duplicate responders: {values[counts > 1].tolist()}")
        return arr.astype(np.intp)


def make_code(
    scheme: str,
    n_workers: int,
    *,
    redundancy: int = 2,
    straggle_probs: ArrayLike | None = None,
    random_state: Any = None,
    max_load: int | None = None,
) -> GradientCode:
    """Build the gradient code of ``scheme`` for ``n_workers`` workers.

    Every scheme here uses ``n_partitions == n_workers``.

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
        by simulating a fitted straggler model.

    Returns
    -------
    GradientCode
        ``n_stragglers == redundancy - 1`` (0 for ``sync``); ``exact`` as
        documented on :class:`GradientCode`.  With ``redundancy == 1`` every
        scheme gives ``B = I``.

    Raises
    ------
    ValueError
        Unknown ``scheme``; ``n_workers`` or ``redundancy`` not an integer
        (booleans are rejected) or out of range; ``frc`` with
        ``n_workers % redundancy != 0``; ``straggle_probs`` missing for
        ``heterogeneous`` or given for another scheme; ``straggle_probs``
        not of shape ``(n_workers,)``, not finite or outside ``[0, 1)``;
        ``max_load`` given for another scheme, not an integer or outside
        ``[redundancy, n_workers]``.

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
    possible.  Rotation (:meth:`GradientCode.rotated`) then keeps these
    partitions from being the same ones all the time.

    Heterogeneous coefficients.  Every partition has exactly ``s + 1``
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
    ``err(S)`` can exceed :data:`EXACT_TOL`.  The construction is
    deterministic, so ``random_state`` does not affect ``cyclic``.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    n = _check_int(n_workers, "n_workers")
    r = _check_int(redundancy, "redundancy")
    if scheme == "sync":
        r = 1
    elif r > n:
        raise ValueError(f"redundancy must be <= n_workers={n}, got {r}")
    if scheme == "frc" and n % r:
        raise ValueError(f"frc needs redundancy to divide n_workers={n}, got redundancy={r}")
    if scheme == "heterogeneous":
        if straggle_probs is None:
            raise ValueError("scheme='heterogeneous' needs straggle_probs, one per worker")
        probs = _check_probs(straggle_probs, n)
        cap = n if max_load is None else _check_int(max_load, "max_load")
        if not r <= cap <= n:
            raise ValueError(
                f"max_load must be in [redundancy={r}, n_workers={n}], got {max_load!r}"
            )
    else:
        for name, value in (("straggle_probs", straggle_probs), ("max_load", max_load)):
            if value is None:
                continue
            if name == "straggle_probs":
                _check_probs(value, n)
            raise ValueError(
                f"{name} is only used by the heterogeneity-aware scheme 'heterogeneous'; "
                f"scheme={scheme!r} does not use it"
            )
    if scheme in ("sync", "uncoded") or r == 1:
        B = np.eye(n)
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
            support, cover = _heterogeneous_support(probs, r, cap, rng)
            B = _heterogeneous_coefficients(support, r - 1, cover)
        else:
            B = _random_regular_bipartite(n, r, rng) / r
    exact = scheme in _EXACT_SCHEMES or r == 1
    code = GradientCode(scheme=scheme, B=B, redundancy=r, exact=exact)
    logger.debug("built %r", code)
    return code


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_index(value: Any, size: int, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer index, got {value!r}")
    if not 0 <= value < size:
        raise ValueError(f"{name} must be in [0, {size}), got {value!r}")
    return int(value)


def _check_probs(probs: ArrayLike, n: int) -> NDArray[np.float64]:
    try:
        p = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"straggle_probs must be numeric, got {probs!r}") from exc
    if p.shape != (n,):
        raise ValueError(f"straggle_probs must have shape ({n},), got {p.shape}")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p < 1).all()):
        raise ValueError(f"straggle_probs must be finite and in [0, 1), got {p.tolist()}")
    return p


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


def _heterogeneous_loads(
    probs: NDArray[np.float64], r: int, rank: NDArray[np.intp], cap: int
) -> NDArray[np.intp]:
    """Integer loads ``clip(c / delta_i, 1, cap)`` rounded by largest remainder (see make_code).

    ``rank`` lists the workers by priority (increasing ``p``, random among
    ties); it breaks ties between equal fractional parts.
    """
    n = k = probs.size
    total = r * k
    p = np.clip(probs, *_PROB_CLIP)
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


def _heterogeneous_support(
    probs: NDArray[np.float64], r: int, cap: int, rng: Any
) -> tuple[NDArray[np.bool_], NDArray[np.intp]]:
    """Support of the ``heterogeneous`` code and its reliable cover (see make_code, Notes).

    The cover is the shortest prefix of the workers in reliability order
    that holds every partition.
    """
    n = k = probs.size
    ties = rng.random(n) if isinstance(rng, np.random.Generator) else rng.random_sample(n)
    rank = np.lexsort((ties, probs))  # increasing p, random among equal p
    loads = _heterogeneous_loads(probs, r, rank, cap)
    reliable = probs[rank] < _SLOW_PROB  # a prefix of rank
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
            rel.size, _SLOW_PROB, loads[rel].sum(), k, k - loads[rel].sum(),
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


def _heterogeneous_coefficients(
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
