"""Synthetic data sets: large power-law graphs for PageRank.

:func:`make_rmat_graph` draws an R-MAT graph (Chakrabarti, Zhan & Faloutsos,
"R-MAT: A Recursive Model for Graph Mining", SDM 2004; the generator of the
Graph500 benchmark): every edge picks one quadrant of the adjacency matrix
with probabilities ``(a, b, c, d)``, then a quadrant of that quadrant, and so
on ``scale`` times, which gives power-law in- and out-degrees, many vertices
without out-edges (dangling) and a few hubs. Pure NumPy, vectorised over
edges (one pass per level), seeded.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["make_rmat_graph"]

#: Graph500's quadrant probabilities (a, b, c); d = 1 - a - b - c.
GRAPH500_PROBS = (0.57, 0.19, 0.19)
#: Average out-degree of the default vertex count (Graph500's edge factor).
EDGE_FACTOR = 16
#: Edges drawn per batch are this factor times the edges still missing
#: (duplicates are dropped, so a batch falls short).
_OVERDRAW = 1.1


@validate_params(
    {
        "n_edges": [Interval(Integral, 1, None, closed="left")],
        "scale": [Interval(Integral, 1, 31, closed="both"), None],
        "a": [Interval(Real, 0, 1, closed="both")],
        "b": [Interval(Real, 0, 1, closed="both")],
        "c": [Interval(Real, 0, 1, closed="both")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_rmat_graph(
    n_edges: int,
    *,
    scale: int | None = None,
    a: float = GRAPH500_PROBS[0],
    b: float = GRAPH500_PROBS[1],
    c: float = GRAPH500_PROBS[2],
    random_state: Any = None,
) -> sp.csr_array:
    """A directed R-MAT graph with exactly ``n_edges`` distinct edges.

    Parameters
    ----------
    n_edges : int
        Number of distinct directed edges ``i -> j`` (self-loops allowed).
    scale : int or None, default=None
        The graph has ``2 ** scale`` vertices. ``None`` picks the smallest
        scale with at most ``EDGE_FACTOR`` (16) edges per vertex on average,
        for example 16 (65,536 vertices) for a million edges and 20
        (1,048,576 vertices) for ten million.
    a, b, c : float, default=0.57, 0.19, 0.19
        Probabilities of the top-left, top-right and bottom-left quadrants
        (Graph500's values); the bottom-right gets ``1 - a - b - c``. Rows
        are sources, so ``a + b`` is the chance that a source stays in the
        upper half at each level.
    random_state : int, RandomState instance or None, default=None
        The same seed gives the same graph.

    Returns
    -------
    scipy.sparse.csr_array of shape (2 ** scale, 2 ** scale)
        ``A[i, j] == 1.0`` for every edge ``i -> j`` (the scipy / networkx
        convention), indices sorted. Vertex labels are randomly permuted so
        that hubs are spread over the index range, as in Graph500.

    Raises
    ------
    ValueError
        If ``a + b + c > 1``, or the ``4 ** scale`` possible edges are fewer
        than ``n_edges``.

    Examples
    --------
    >>> from dask_quorum.datasets import make_rmat_graph
    >>> A = make_rmat_graph(1000, random_state=0)
    >>> A.shape, A.nnz
    ((64, 64), 1000)
    """
    if a + b + c > 1 + 1e-12:
        raise ValueError(f"a + b + c must be at most 1, got {a} + {b} + {c} = {a + b + c}")
    if scale is None:
        scale = max(1, int(np.ceil(np.log2(n_edges / EDGE_FACTOR))))
    n = 2**scale
    if n * n < n_edges:
        raise ValueError(f"a graph of 2**{scale} = {n} vertices has fewer than {n_edges} edges")
    rng = check_random_state(random_state)
    thresholds = np.cumsum([a, b, c])
    codes = np.empty(0, dtype=np.int64)
    while codes.size < n_edges:
        draw = int(_OVERDRAW * (n_edges - codes.size)) + 16
        src, dst = _rmat_edges(draw, scale, thresholds, rng)
        codes = np.concatenate([codes, src * n + dst])
        # Keep the first occurrence of every edge, in drawing order, so that
        # trimming to n_edges keeps a uniform sample of the distinct edges.
        _, first = np.unique(codes, return_index=True)
        codes = codes[np.sort(first)]
    codes = codes[:n_edges]
    perm = rng.permutation(n)
    src, dst = perm[codes // n], perm[codes % n]
    A = sp.csr_array((np.ones(n_edges), (src, dst)), shape=(n, n))
    A.sort_indices()
    return A


def _rmat_edges(
    size: int, scale: int, thresholds: np.ndarray, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """``size`` (source, destination) pairs, one quadrant choice per level."""
    ab, abc = thresholds[1], thresholds[2]
    src = np.zeros(size, dtype=np.int64)
    dst = np.zeros(size, dtype=np.int64)
    for level in range(scale):
        r = rng.random_sample(size)
        # quadrants: [0, a) top-left, [a, a+b) top-right, [a+b, a+b+c) bottom-left, else bottom-right
        lower = r >= ab
        right = (r >= thresholds[0]) & ~lower | (r >= abc)
        bit = 1 << (scale - 1 - level)
        src += bit * lower
        dst += bit * right
    return src, dst
