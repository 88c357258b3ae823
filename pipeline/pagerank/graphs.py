"""Graphs cut into blocks: a SciPy matrix on the driver, or a dask array on the workers.

Both kinds (:class:`LocalGraph` and :class:`DaskGraph`) have the same
interface: the per-vertex statistics (out-degrees, out-weights,
in-degrees), the dangling vertices, and the cuts into ``n`` contiguous
blocks of vertices (:mod:`~dask_quorum.pipeline.pagerank.blocks`): source
blocks balanced by out-edges plus vertices (:meth:`LocalGraph.blocks`,
coded rounds) and target blocks balanced by in-edges plus vertices
(:meth:`LocalGraph.target_blocks`, ASAP mode). A :class:`LocalGraph` is a
SciPy sparse matrix on the driver, cut there; a :class:`DaskGraph` is a
dask array, whose blocks are assembled on the workers from its chunks, so
the adjacency never passes through the driver, which only gathers O(n)
per-vertex statistics and the validation counts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp
from distributed import Client, Future

from ..engine.waits import compute_within
from .blocks import SourceBlock, TargetBlock

logger = logging.getLogger(__name__)

__all__ = ["DaskGraph", "LocalGraph", "balanced_bounds", "check_square"]


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


def _check_values(n_negative: int, n_nonfinite: int, what: str = "the adjacency matrix") -> None:
    if n_nonfinite:
        raise ValueError(
            f"{what} has {n_nonfinite} NaN or infinite weights; "
            "edge weights must be finite"
        )
    if n_negative:
        raise ValueError(
            f"{what} has {n_negative} negative weights; PageRank needs "
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
    in_degree: np.ndarray

    @property
    def dangling(self) -> np.ndarray:
        """Vertices without out-edges."""
        return self.out_weight == 0

    def bounds(self, n_blocks: int) -> np.ndarray:
        """Vertex bounds of ``n_blocks`` source blocks balanced by edges plus vertices."""
        return balanced_bounds(self.out_degree + 1.0, n_blocks)

    def units(self, bounds: np.ndarray) -> list[float]:
        """Work units (edges + vertices) of the blocks between ``bounds``."""
        return _block_units(self.out_degree, bounds)

    def target_bounds(self, n_blocks: int) -> np.ndarray:
        """Vertex bounds of ``n_blocks`` target blocks balanced by in-edges plus vertices."""
        return balanced_bounds(self.in_degree + 1.0, n_blocks)


def _block_units(degree: np.ndarray, bounds: np.ndarray) -> list[float]:
    """Edges plus vertices of the blocks between ``bounds``, given every vertex's degree."""
    cum = np.concatenate([[0], np.cumsum(degree)])
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
        self.in_degree = np.bincount(A.indices, minlength=self.n_vertices)
        self.n_edges = int(A.nnz)

    def blocks(self, n_blocks: int) -> tuple[list[SourceBlock], list[float]]:
        """``n_blocks`` source blocks and their work units (edges + vertices)."""
        bounds = self.bounds(n_blocks)
        parts = [
            SourceBlock(b, n_blocks, int(lo), int(hi), _normalised(self._A[lo:hi], self.out_weight[lo:hi]))
            for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
        ]
        return parts, self.units(bounds)

    def target_blocks(self, n_blocks: int) -> list[TargetBlock]:
        """``n_blocks`` target blocks (see :meth:`target_bounds`)."""
        bounds = self.target_bounds(n_blocks)
        inflow = sp.csr_array(_normalised(self._A.copy(), self.out_weight).T)
        return [
            TargetBlock(b, n_blocks, int(lo), int(hi), inflow[lo:hi])
            for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))
        ]


# -- dask arrays ----------------------------------------------------------
def _side_by_side(cells: Sequence[Any]) -> sp.csr_array:
    """Chunks of one row chunk (or of some of its columns), side by side, as one float64 CSR matrix."""
    return sp.hstack([sp.csr_array(c, dtype=np.float64) for c in cells], format="csr")


def _overlapping(starts: np.ndarray, lo: int, hi: int) -> tuple[int, int]:
    """The chunks ``first .. stop - 1`` that overlap vertices ``lo .. hi - 1`` (at least one, for an empty block).

    ``starts`` are the chunks' first vertices along one axis, then the end.
    """
    first = min(int(np.searchsorted(starts, lo, side="right")) - 1, len(starts) - 2)
    return first, max(first + 1, int(np.searchsorted(starts, hi, side="left")))


def _row_stats(weighted: bool, *cells: Any) -> tuple[tuple[np.ndarray, np.ndarray, int, int], np.ndarray]:
    """Worker side: out-degree, out-weight, negatives and non-finite values of a row chunk; its in-degrees."""
    A = _edges_only(_side_by_side(cells), weighted)
    n_negative = int((A.data < 0).sum())
    n_nonfinite = int((~np.isfinite(A.data)).sum())
    in_degree = np.bincount(A.indices, minlength=A.shape[1])
    return (np.diff(A.indptr), np.asarray(A.sum(axis=1)).ravel(), n_negative, n_nonfinite), in_degree


def _on_workers(client: Client, parts: list[Any], workers: list[str]) -> list[Future]:
    """Futures of the delayed ``parts``, ``parts[b]`` computed on and kept by ``workers[b]``."""
    if len(workers) != len(parts):
        raise ValueError(f"{len(parts)} target blocks need as many workers, got {len(workers)}")
    return [client.compute(p, workers=[w], allow_other_workers=False) for p, w in zip(parts, workers)]


def _tree_sum(parts: list[Any]) -> Any:
    """A delayed sum of delayed arrays by pairs, so that no one task holds them all."""
    while len(parts) > 1:
        pairs = [parts[i : i + 2] for i in range(0, len(parts), 2)]
        parts = [dask.delayed(np.add, pure=True)(*p) if len(p) == 2 else p[0] for p in pairs]
    return parts[0]


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
    rows = [_side_by_side(cells[r : r + n_col_chunks]) for r in range(0, len(cells), n_col_chunks)]
    A = sp.vstack(rows, format="csr")[start - first_row : stop - first_row]
    P = _normalised(_edges_only(A, weighted), out_weight)
    return SourceBlock(index, n_blocks, start, stop, P)


def _assemble_target(
    index: int,
    n_blocks: int,
    start: int,
    stop: int,
    first_col: int,
    n_col_chunks: int,
    row_starts: np.ndarray,
    out_weight: np.ndarray,
    weighted: bool,
    *cells: Any,
) -> TargetBlock:
    """Worker side: one target block from the chunks covering its columns, in every row chunk.

    ``cells`` are, row chunk by row chunk, the ``n_col_chunks`` chunks that
    cover columns ``start .. stop - 1``; the first of them starts at column
    ``first_col``; row chunk ``r`` holds rows ``row_starts[r] ..
    row_starts[r + 1] - 1``.
    """
    pieces = []
    for r, at in enumerate(range(0, len(cells), n_col_chunks)):
        A = _side_by_side(cells[at : at + n_col_chunks])
        A = _edges_only(A[:, start - first_col : stop - first_col], weighted)
        pieces.append(_normalised(A, out_weight[row_starts[r] : row_starts[r + 1]]))
    return TargetBlock(index, n_blocks, start, stop, sp.csr_array(sp.vstack(pieces, format="csr").T))


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
        self._col_starts = np.concatenate([[0], np.cumsum(adjacency.chunks[1])]).astype(int)
        stats = [dask.delayed(_row_stats, pure=True, nout=2)(weighted, *row) for row in self._cells]
        # per row chunk: O(rows) statistics; the in-degrees (O(n) each) are summed on the workers
        *results, in_degree = compute_within(
            client, [s[0] for s in stats] + [_tree_sum([s[1] for s in stats])], timeout,
            "the pass over the adjacency's chunks",
        )
        degree, weight, negative, nonfinite = zip(*results)
        _check_values(sum(negative), sum(nonfinite))
        self.out_degree = np.concatenate(degree)
        self.out_weight = np.concatenate(weight)
        self.in_degree = np.asarray(in_degree)
        self.n_edges = int(self.out_degree.sum())

    def blocks(self, n_blocks: int) -> tuple[list[Future], list[float]]:
        """Futures of ``n_blocks`` source blocks, computed on the workers, and their units."""
        bounds = self.bounds(n_blocks)
        n_col_chunks = self._cells.shape[1]
        parts = []
        for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            r0, r1 = _overlapping(self._row_starts, lo, hi)  # the row chunks of the block's rows
            cells = self._cells[r0:r1].ravel().tolist()
            parts.append(
                dask.delayed(_assemble, pure=True)(
                    b, n_blocks, int(lo), int(hi), int(self._row_starts[r0]), n_col_chunks,
                    self.out_weight[lo:hi], self.weighted, *cells,
                )
            )
        futures = self.client.compute(parts)
        return futures, self.units(bounds)

    def target_blocks(self, n_blocks: int, workers: list[str]) -> list[Future]:
        """Futures of ``n_blocks`` target blocks, block ``b`` computed on and kept by ``workers[b]``.

        The out-weights go to the cluster once; every block reads, from each
        row chunk, the chunks that cover its columns.
        """
        bounds = self.target_bounds(n_blocks)
        weights = self.client.scatter(self.out_weight, broadcast=False)
        parts = []
        for b, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            c0, c1 = _overlapping(self._col_starts, lo, hi)  # the column chunks of the block's columns
            parts.append(dask.delayed(_assemble_target, pure=True)(
                b, n_blocks, int(lo), int(hi), int(self._col_starts[c0]), c1 - c0, self._row_starts,
                weights, self.weighted, *self._cells[:, c0:c1].ravel().tolist(),
            ))
        return _on_workers(self.client, parts, workers)
