"""Communication graphs of ASAP: sparse circulant peer graphs and their averaging matrix.

In ASAP mode (Kadav & Kruus, arXiv 1612.08608) every worker averages its
replica with a few in-peers instead of all workers:
``x_i <- (x_i + sum_{j in In(i)} x_j) / (|In(i)| + 1)``. On a *circulant*
graph the in-peers of worker ``i`` are ``i - s mod n`` for a fixed set of
offsets ``s``, so every worker has the same in- and out-degree ``d`` and the
averaging matrix ``W`` (entries ``1 / (d + 1)``) is doubly stochastic: it
preserves the average of the replicas, and repeated averaging converges to
it at the rate of ``W``'s second largest eigenvalue modulus.

The eigenvalues of a circulant ``W`` are a discrete Fourier transform of its
first row, ``lambda_k = (1 + sum_s exp(2 pi i k s / n)) / (d + 1)``, so the
spectral gap ``1 - max_{k != 0} |lambda_k|`` of any offset set costs one FFT.
:func:`make_graph` chooses offsets greedily for the largest gap (default), or
uses powers of two (a hypercube-like "exponential" graph), or offsets given.

Pure NumPy; nothing here talks to Dask.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GRAPH_KINDS", "PeerGraph", "default_degree", "make_graph", "spectral_gap"]

#: How :func:`make_graph` picks the offsets.
GRAPH_KINDS = ("spectral", "exponential", "symmetric")


@dataclass(frozen=True)
class PeerGraph:
    """A circulant communication graph on ``n`` workers.

    Worker ``i`` receives from ``(i - s) % n`` and sends to ``(i + s) % n``
    for every offset ``s``.

    Attributes
    ----------
    n : int
        Number of workers.
    offsets : tuple of int
        Distinct offsets in ``1 .. n - 1``; their number is the degree.
    kind : str
        How the offsets were chosen (``"spectral"``, ``"exponential"``,
        ``"symmetric"`` or ``"given"``).
    W : ndarray of shape (n, n)
        Averaging matrix: ``W[i, j] = 1 / (degree + 1)`` for ``j == i`` and
        every in-peer ``j`` of ``i``; doubly stochastic.
    spectral_gap : float
        ``1 - max |lambda_k|`` over the eigenvalues of ``W`` other than the
        eigenvalue 1 of the constant vector; in ``(0, 1]`` for a connected
        graph. Averaging shrinks the distance to the mean by at least this
        fraction per round (in the ``W``-norm sense, asymptotically).
    """

    n: int
    offsets: tuple[int, ...]
    kind: str
    W: np.ndarray = field(repr=False, compare=False)
    spectral_gap: float

    @property
    def degree(self) -> int:
        """In-degree (= out-degree) of every worker."""
        return len(self.offsets)

    def in_peers(self, i: int) -> tuple[int, ...]:
        """Workers whose versions worker ``i`` averages with."""
        return tuple((i - s) % self.n for s in self.offsets)

    def out_peers(self, i: int) -> tuple[int, ...]:
        """Workers worker ``i`` sends its versions to."""
        return tuple((i + s) % self.n for s in self.offsets)

    @property
    def symmetric(self) -> bool:
        """Whether every link goes both ways (``W`` symmetric)."""
        return set(self.offsets) == {(-s) % self.n for s in self.offsets}


def default_degree(n: int) -> int:
    """In-degree used when none is given: ``ceil(log2 n)``, capped at ``n - 1``."""
    if n <= 1:
        return 0
    return min(n - 1, max(1, math.ceil(math.log2(n))))


def _eigenvalues(n: int, offsets: Sequence[int]) -> np.ndarray:
    row = np.zeros(n)
    row[0] = 1.0
    for s in offsets:
        row[s % n] += 1.0
    row /= len(offsets) + 1
    # W[i, j] = row[(i - j) % n]: a circulant; its spectrum is the DFT of the row.
    return np.fft.fft(row)


def spectral_gap(n: int, offsets: Sequence[int]) -> float:
    """``1 - max_{k != 0} |lambda_k|`` of the circulant averaging matrix with these offsets."""
    if n <= 1:
        return 1.0
    lam = _eigenvalues(n, offsets)
    return float(1.0 - np.abs(lam[1:]).max())


def _greedy(n: int, degree: int, symmetric: bool) -> list[int]:
    """Add, one at a time, the offset (or offset pair) that maximises the gap.

    Ties go to the smallest offset, so the result is deterministic.
    """
    chosen: list[int] = []
    while len(chosen) < degree:
        room = degree - len(chosen)
        best, best_gap = None, -np.inf
        for s in range(1, n):
            if s in chosen:
                continue
            add = [s]
            if symmetric and (n - s) != s:
                if room < 2:
                    continue
                add = [s, n - s]
            gap = spectral_gap(n, chosen + add)
            if gap > best_gap + 1e-12:
                best, best_gap = add, gap
        if best is None:  # only a self-paired offset n/2 fits the odd remainder
            best = [n // 2]
        chosen += best
    return sorted(chosen)


def _improve(n: int, chosen: list[int]) -> list[int]:
    """Local search: swap single offsets for unused ones while the gap grows."""
    best_gap = spectral_gap(n, chosen)
    improved = True
    while improved:
        improved = False
        for pos in range(len(chosen)):
            for s in range(1, n):
                if s in chosen:
                    continue
                trial = chosen[:pos] + [s] + chosen[pos + 1 :]
                gap = spectral_gap(n, trial)
                if gap > best_gap + 1e-12:
                    chosen, best_gap, improved = trial, gap, True
    return sorted(chosen)


def _exponential(n: int, degree: int) -> list[int]:
    chosen = sorted({(2**j) % n for j in range(degree)} - {0})
    extra = (s for s in range(1, n) if s not in chosen)
    while len(chosen) < degree:  # powers of two repeat modulo small n
        chosen.append(next(extra))
    return sorted(chosen)


def make_graph(
    n: int,
    degree: int | None = None,
    *,
    kind: str = "spectral",
    offsets: Sequence[int] | None = None,
) -> PeerGraph:
    """Build the circulant peer graph ASAP averages over.

    Parameters
    ----------
    n : int
        Number of workers, ``>= 1``.
    degree : int or None, default=None
        In-degree ``d`` (``1 <= d <= n - 1``); None takes ``ceil(log2 n)``
        (:func:`default_degree`). Ignored when ``offsets`` are given.
    kind : {"spectral", "exponential", "symmetric"}, default="spectral"
        ``spectral``: offsets added greedily, each the one that most
        increases the spectral gap, then improved by single swaps; the
        powers of two are kept instead when their gap is larger. ``exponential``: offsets ``1, 2, 4, ...`` (each worker reaches
        every other in ``log2 n`` hops). ``symmetric``: like ``spectral`` but
        in pairs ``s, n - s``, so every link goes both ways and ``W`` is
        symmetric (real spectrum).
    offsets : sequence of int, optional
        Use exactly these offsets (``kind`` becomes ``"given"``).

    Returns
    -------
    PeerGraph

    Raises
    ------
    ValueError
        On ``n < 1``, a degree outside ``1 .. n - 1``, an unknown ``kind``,
        offsets that repeat or leave ``1 .. n - 1``, or offsets whose graph
        is not connected (spectral gap 0: averaging would never mix some
        workers).

    Examples
    --------
    >>> g = make_graph(16)
    >>> g.degree, g.offsets
    (4, (1, 3, 4, 11))
    >>> bool(np.allclose(g.W.sum(axis=0), 1) and np.allclose(g.W.sum(axis=1), 1))
    True
    >>> round(g.spectral_gap, 3)
    0.526
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"n (the number of workers) must be an integer >= 1, got {n!r}")
    n = int(n)
    if offsets is not None:
        chosen = [int(s) for s in offsets]
        if len(set(chosen)) != len(chosen) or any(not 1 <= s <= n - 1 for s in chosen):
            raise ValueError(
                f"offsets must be distinct integers in 1 .. {n - 1} for {n} workers, got {list(offsets)}"
            )
        kind = "given"
    else:
        if kind not in GRAPH_KINDS:
            raise ValueError(f"kind must be one of {GRAPH_KINDS}, got {kind!r}")
        if degree is None:
            degree = default_degree(n)
        if n > 1 and (isinstance(degree, bool) or not isinstance(degree, int | np.integer) or not 1 <= degree <= n - 1):
            raise ValueError(f"degree must be an integer in 1 .. {n - 1} for {n} workers, got {degree!r}")
        degree = int(degree) if n > 1 else 0
        if kind == "exponential":
            chosen = _exponential(n, degree)
        elif kind == "symmetric":
            chosen = _greedy(n, degree, symmetric=True)
        else:
            candidates = [_improve(n, _greedy(n, degree, False)), _exponential(n, degree)]
            chosen = max(candidates, key=lambda c: spectral_gap(n, c))
    gap = spectral_gap(n, chosen)
    if n > 1 and gap <= 1e-12:
        raise ValueError(
            f"offsets {sorted(chosen)} do not connect {n} workers (spectral gap 0); "
            "their greatest common divisor with n must be 1"
        )
    W = np.zeros((n, n))
    weight = 1.0 / (len(chosen) + 1)
    for i in range(n):
        W[i, i] += weight
        for s in chosen:
            W[i, (i - s) % n] += weight
    return PeerGraph(n=n, offsets=tuple(sorted(chosen)), kind=kind, W=W, spectral_gap=gap)
