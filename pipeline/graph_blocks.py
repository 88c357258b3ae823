"""Adjacency matrices cut into blocks of source vertices, the partitions of PageRank.

Block ``b`` holds the out-edges of the source vertices ``start .. stop - 1``
as the matching rows of the transition matrix ``P = D^-1 A`` (every row of
a vertex with out-edges sums to 1; rows of dangling vertices are empty).
Blocks are contiguous in vertex order and balanced by edges plus vertices,
the work of :func:`~dask_quorum.pipeline.pagerank.block_step`.

Two sources of blocks, with the same interface (:class:`LocalGraph` and
:class:`DaskGraph`): a SciPy sparse matrix on the driver, cut there; and a
dask array, whose blocks are assembled on the workers from its chunks, so
the adjacency never passes through the driver, which only gathers O(n)
per-vertex statistics (out-degrees, out-weights) and the validation counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp
from distributed import Client, Future, wait

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceBlock:
    """The out-edges of the source vertices ``start .. stop - 1``.

    Attributes
    ----------
    index, n_blocks : int
        This block's position among the ``n_blocks`` partitions.
    start, stop : int
        Its source vertices.
    transition : scipy.sparse.csr_array of shape (stop - start, n_vertices)
        Rows ``start .. stop - 1`` of the row-normalised adjacency ``D^-1 A``.
    """

    index: int
    n_blocks: int
    start: int
    stop: int
    transition: sp.csr_array

    @property
    def n_vertices(self) -> int:
        return self.transition.shape[1]


def balanced_bounds(cost: np.ndarray, n_blocks: int) -> np.ndarray:
    """``n_blocks + 1`` vertex bounds cutting ``cost`` (per vertex) into contiguous, even parts."""
    total = np.concatenate([[0.0], np.cumsum(cost, dtype=np.float64)])
    targets = total[-1] * np.arange(n_blocks + 1) / n_blocks
    bounds = np.searchsorted(total, targets, side="left")
    bounds[0], bounds[-1] = 0, cost.size
    bounds = np.maximum.accumulate(bounds)
    logger.debug("%d vertices in %d source blocks, costs %s", cost.size, n_blocks, np.diff(total[bounds]))
    return bounds


def check_square(shape: tuple[int, ...]) -> int:
    """The number of vertices of an adjacency matrix of ``shape``; ValueError if it is none."""
    if len(shape) != 2:
        raise ValueError(f"the adjacency matrix must be 2-D, got {len(shape)} dimensions")
    if shape[0] != shape[1]:
        raise ValueError(f"the adjacency matrix must be square, got shape {shape}")
    if shape[0] == 0:
        raise ValueError("the graph is empty: the adjacency matrix has no vertices")
    return int(shape[0])


def _check_values(n_negative: int, n_nonfinite: int) -> None:
    if n_nonfinite:
        raise ValueError(
            f"the adjacency matrix has {n_nonfinite} NaN or infinite weights; "
            "edge weights must be finite"
        )
    if n_negative:
        raise ValueError(
            f"the adjacency matrix has {n_negative} negative weights; PageRank needs "
            "non-negative edge weights"
        )


def _normalised(A: sp.csr_array, out_weight: np.ndarray) -> sp.csr_array:
    """``A`` (a row block, changed in place) with its rows divided by their out-weights."""
    scale = np.divide(1.0, out_weight, out=np.zeros_like(out_weight), where=out_weight > 0)
    A.data *= np.repeat(scale, np.diff(A.indptr))
    return A


def _edges_only(A: Any, weighted: bool) -> sp.csr_array:
    """A float64 CSR copy of ``A`` with explicit zeros dropped, binary when not ``weighted``."""
    A = sp.csr_array(A, dtype=np.float64, copy=True)
    A.sum_duplicates()
    A.eliminate_zeros()
    if not weighted:
        A.data[:] = 1.0
    return A


class _Graph:
    """What both kinds of graphs share, from their per-vertex statistics."""

    n_vertices: int
    n_edges: int
    out_degree: np.ndarray
    out_weight: np.ndarray

    @property
    def dangling(self) -> np.ndarray:
        """Vertices without out-edges."""
        return self.out_weight == 0

    def bounds(self, n_blocks: int) -> np.ndarray:
        """Vertex bounds of ``n_blocks`` source blocks balanced by edges plus vertices."""
        return balanced_bounds(self.out_degree + 1.0, n_blocks)

    def units(self, bounds: np.ndarray) -> list[float]:
        """Work units (edges + vertices) of the blocks between ``bounds``."""
        cum = np.concatenate([[0], np.cumsum(self.out_degree)])
        return [float(cum[hi] - cum[lo] + hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])]


class LocalGraph(_Graph):
    """A graph held by the driver as a SciPy sparse matrix.

    Parameters
    ----------
    adjacency : scipy sparse matrix or array of shape (n, n)
        ``adjacency[i, j] != 0`` is an edge ``i -> j`` of that weight;
        duplicate entries add up. Copied: the caller's matrix is not changed.
    weighted : bool, default=True
        ``False`` gives every edge weight 1.

    Raises
    ------
    ValueError
        Not square, no vertices, NaN or infinite weights, negative weights.
    """

    def __init__(self, adjacency: Any, *, weighted: bool = True) -> None:
        self.n_vertices = check_square(adjacency.shape)
        A = _edges_only(adjacency, weighted)
        _check_values(int((A.data < 0).sum()), int((~np.isfinite(A.data)).sum()))
        self._A = A
        self.out_weight = np.asarray(A.sum(axis=1), dtype=np.float64).ravel()
        self.out_degree = np.diff(A.indptr)
        self.n_edges = int(A.nnz)

    def blocks(self, n_blocks: int) -> tuple[list[SourceBlock], list[float]]:
        """``n_blocks`` source blocks and their work units (edges + vertices)."""
        bounds = self.bounds(n_blocks)
        parts = [
            SourceBlock(b, n_blocks, int(lo), int(hi), _normalised(self._A[lo:hi], self.out_weight[lo:hi]))
            for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
        ]
        return parts, self.units(bounds)


# -- dask arrays ----------------------------------------------------------
def _cell(chunk: Any) -> sp.csr_array:
    return sp.csr_array(chunk, dtype=np.float64)


def _row_stats(weighted: bool, *cells: Any) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Worker side: out-degree, out-weight, negatives and non-finite values of a row chunk."""
    A = _edges_only(sp.hstack([_cell(c) for c in cells], format="csr"), weighted)
    n_negative = int((A.data < 0).sum())
    n_nonfinite = int((~np.isfinite(A.data)).sum())
    return np.diff(A.indptr), np.asarray(A.sum(axis=1)).ravel(), n_negative, n_nonfinite


def _assemble(
    index: int,
    n_blocks: int,
    start: int,
    stop: int,
    first_row: int,
    n_col_chunks: int,
    out_weight: np.ndarray,
    weighted: bool,
    *cells: Any,
) -> SourceBlock:
    """Worker side: one source block from the chunks covering its rows.

    ``cells`` are the chunks of consecutive row chunks, row-major with
    ``n_col_chunks`` per row chunk; the first row chunk starts at vertex
    ``first_row``.
    """
    rows = [
        sp.hstack([_cell(c) for c in cells[r : r + n_col_chunks]], format="csr")
        for r in range(0, len(cells), n_col_chunks)
    ]
    A = sp.vstack(rows, format="csr")[start - first_row : stop - first_row]
    P = _normalised(_edges_only(A, weighted), out_weight)
    return SourceBlock(index, n_blocks, start, stop, P)


class DaskGraph(_Graph):
    """A graph given as a dask array; its blocks are built on the cluster.

    Construction runs one pass over the chunks on the workers and gathers
    per-vertex out-degrees and out-weights (O(n) on the driver) and the
    validation counts.

    Parameters
    ----------
    client : distributed.Client
    adjacency : dask.array.Array of shape (n, n)
        Chunks may be NumPy arrays or SciPy sparse matrices.
    weighted : bool, default=True
    timeout : float
        Seconds to wait for the statistics pass.

    Raises
    ------
    ValueError
        Unknown chunk sizes, not square, no vertices, NaN or infinite
        weights, negative weights.
    TimeoutError
        If the statistics pass does not finish within ``timeout``.
    """

    def __init__(self, client: Client, adjacency: da.Array, *, weighted: bool = True, timeout: float) -> None:
        if any(np.isnan(s) for s in adjacency.shape):
            raise ValueError(
                "the dask adjacency matrix has unknown chunk sizes; call "
                "compute_chunk_sizes() first"
            )
        self.n_vertices = check_square(adjacency.shape)
        self.client = client
        self.weighted = weighted
        self.timeout = timeout
        self._cells = adjacency.to_delayed()
        self._row_starts = np.concatenate([[0], np.cumsum(adjacency.chunks[0])]).astype(int)
        stats = [dask.delayed(_row_stats, pure=True)(weighted, *row) for row in self._cells]
        futures = client.compute(stats)
        try:
            wait(futures, timeout=timeout)
            results = client.gather(futures)
        except TimeoutError as exc:
            raise TimeoutError(
                f"the pass over the adjacency's chunks did not finish within {timeout:g} s"
            ) from exc
        finally:
            client.cancel(futures)
        degree, weight, negative, nonfinite = zip(*results)
        _check_values(sum(negative), sum(nonfinite))
        self.out_degree = np.concatenate(degree)
        self.out_weight = np.concatenate(weight)
        self.n_edges = int(self.out_degree.sum())

    def blocks(self, n_blocks: int) -> tuple[list[Future], list[float]]:
        """Futures of ``n_blocks`` source blocks, computed on the workers, and their units."""
        bounds = self.bounds(n_blocks)
        n_col_chunks = self._cells.shape[1]
        last = self._cells.shape[0] - 1
        parts = []
        for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            # the row chunks that overlap [lo, hi) (at least one, for an empty block)
            r0 = min(int(np.searchsorted(self._row_starts, lo, side="right")) - 1, last)
            r1 = max(r0 + 1, int(np.searchsorted(self._row_starts, hi, side="left")))
            cells = self._cells[r0:r1].ravel().tolist()
            parts.append(
                dask.delayed(_assemble, pure=True)(
                    b, n_blocks, int(lo), int(hi), int(self._row_starts[r0]), n_col_chunks,
                    self.out_weight[lo:hi], self.weighted, *cells,
                )
            )
        futures = self.client.compute(parts)
        return futures, self.units(bounds)
