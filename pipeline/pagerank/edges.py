"""A graph given as a dask dataframe edge list, cut into blocks on the workers.

An :class:`EdgeListGraph` has the interface of
:class:`~dask_quorum.pipeline.pagerank.LocalGraph` and
:class:`~dask_quorum.pipeline.pagerank.DaskGraph` (the per-vertex statistics,
the dangling vertices, source and target blocks), from a
:class:`dask.dataframe.DataFrame` with one row per edge ``src -> dst`` and
an optional weight column. The rows never reach the driver:

* the statistics pass (at construction) runs one task per partition that
  checks its rows (integer ids, none negative, none beyond a given vertex
  count) and splits them into groups by ``src`` modulo the number of groups;
  one task per group then builds its rows of the adjacency, duplicates
  summed, and computes their out-degrees, out-weights and in-degrees and the
  counts of negative and non-finite weights. The driver gathers these O(n)
  vectors and O(n_partitions) numbers;
* each cut (:meth:`EdgeListGraph.blocks`, :meth:`EdgeListGraph.target_blocks`)
  runs one task per partition that splits its rows by block (of ``src`` for
  source blocks, of ``dst`` for target blocks), then one task per block
  that concatenates its pieces into the block's CSR matrix.

Either pass reads the edge list once (two reads per fit: statistics, then
one cut). No task holds more than one partition or one block of edges.

Duplicate rows of an edge add up, as duplicate entries of a sparse matrix
do in :class:`~dask_quorum.pipeline.pagerank.LocalGraph`, and edges whose
weights sum to zero are no edges; unweighted, an edge given twice counts
once. The fit on an edge list is the fit on the matrix
``scipy.sparse.coo_array((weight, (src, dst)), shape=(n, n))``, and so are
the weight checks (negative and non-finite weights after summing).
"""

from __future__ import annotations

import logging
from itertools import pairwise
from typing import Any

import dask
import numpy as np
import pandas as pd
import scipy.sparse as sp
from distributed import Client, Future

from ..cluster import worker_addresses
from ..engine.waits import compute_within
from .blocks import SourceBlock, TargetBlock
from .graphs import (
    _check_values,
    _edges_only,
    _Graph,
    _normalised,
    _on_workers,
    _row_stats,
    _tree_sum,
)

logger = logging.getLogger(__name__)

__all__ = ["EDGE_COLUMNS", "EdgeListGraph"]

#: The columns of an edge list: the source and the target vertex of every edge.
EDGE_COLUMNS = ("src", "dst")

#: What the edge list is called in the error messages (``graphs._check_values``'s subject).
WHAT = "the edge list"

_Pieces = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def _id_error(dtypes: Any) -> ValueError:
    return ValueError(
        f"{WHAT}'s {' and '.join(map(repr, EDGE_COLUMNS))} columns must hold integer vertex ids, "
        f"got dtypes {', '.join(map(str, dtypes))}"
    )


def _weight_column(edges: Any, weight: str | None) -> str | None:
    """The column of ``edges`` holding the weights, or None (every edge weighs 1); ValueError on bad columns."""
    missing = [c for c in EDGE_COLUMNS if c not in edges.columns]
    if missing:
        raise ValueError(
            f"{WHAT} needs integer columns {list(EDGE_COLUMNS)}; it has no {missing}, only {list(edges.columns)}"
        )
    dtypes = [edges.dtypes[c] for c in EDGE_COLUMNS]
    if not all(pd.api.types.is_integer_dtype(d) for d in dtypes):
        raise _id_error(dtypes)
    if weight is None or weight not in edges.columns:
        return None
    if not pd.api.types.is_numeric_dtype(edges.dtypes[weight]):
        raise ValueError(f"{WHAT}'s weight column {weight!r} must be numeric, got dtype {edges.dtypes[weight]}")
    return weight


def _arrays(frame: pd.DataFrame, weight: str | None) -> _Pieces:
    """Worker side: the sources, targets and weights (None: unweighted) of a partition."""
    src, dst = (frame[c].to_numpy() for c in EDGE_COLUMNS)
    if not (np.issubdtype(src.dtype, np.integer) and np.issubdtype(dst.dtype, np.integer)):
        raise _id_error([src.dtype, dst.dtype])
    w = None if weight is None else frame[weight].to_numpy(dtype=np.float64, na_value=np.nan)
    return src.astype(np.int64, copy=False), dst.astype(np.int64, copy=False), w


def _grouped(edges: _Pieces, group: np.ndarray, n_groups: int) -> tuple[_Pieces, ...]:
    """``edges`` split into ``n_groups`` pieces by ``group`` (each edge's group, in ``0 .. n_groups - 1``)."""
    order = np.argsort(group, kind="stable")
    cuts = np.cumsum(np.bincount(group, minlength=n_groups))[:-1]
    split = [np.split(a[order], cuts) if a is not None else [None] * n_groups for a in edges]
    return tuple(zip(*split))


def _checked_groups(frame: pd.DataFrame, weight: str | None, n_vertices: int | None, n_groups: int) -> tuple:
    """Worker side, statistics pass: the partition's checks, then its valid edges in groups by ``src % n_groups``.

    The checks are ``(negative ids, ids not below n_vertices, largest id)``;
    edges with an id out of range are left out of the groups (the driver
    raises on the counts).
    """
    src, dst, w = _arrays(frame, weight)
    negative = int((src < 0).sum() + (dst < 0).sum())
    beyond = 0 if n_vertices is None else int((src >= n_vertices).sum() + (dst >= n_vertices).sum())
    largest = int(max(src.max(initial=-1), dst.max(initial=-1)))
    if negative or beyond:
        keep = (src >= 0) & (dst >= 0)
        if n_vertices is not None:
            keep &= (src < n_vertices) & (dst < n_vertices)
        src, dst, w = src[keep], dst[keep], None if w is None else w[keep]
    return ((negative, beyond, largest), *_grouped((src, dst, w), src % n_groups, n_groups))


def _vertex_count(n_vertices: int | None, *checks: tuple[int, int, int]) -> int:
    """The number of vertices: ``n_vertices``, or the largest id plus one."""
    return int(n_vertices) if n_vertices is not None else max((c[2] for c in checks), default=-1) + 1


def _stacked(pieces: tuple[_Pieces, ...]) -> _Pieces:
    """One block's pieces from every partition, concatenated; weight 1 when unweighted."""
    src, dst, w = (np.concatenate(a) if a[0] is not None else None for a in zip(*pieces))
    return src, dst, np.ones(src.size) if w is None else w


def _group_stats(group: int, n_groups: int, n_vertices: int, weighted: bool, *pieces: _Pieces) -> tuple:
    """Worker side: the statistics (``graphs._row_stats``) of the vertices ``group, group + n_groups, ...``."""
    src, dst, w = _stacked(pieces)
    rows = max(0, -(-(n_vertices - group) // n_groups))
    return _row_stats(weighted, sp.coo_array((w, (src // n_groups, dst)), shape=(rows, n_vertices)))


def _split(frame: pd.DataFrame, weight: str | None, column: int, bounds: np.ndarray) -> tuple[_Pieces, ...]:
    """Worker side: the partition's edges split into the blocks between ``bounds`` of ``src`` (0) or ``dst`` (1)."""
    edges = _arrays(frame, weight)
    return _grouped(edges, np.searchsorted(bounds, edges[column], side="right") - 1, len(bounds) - 1)


def _source_block(
    index: int, n_blocks: int, start: int, stop: int, n_vertices: int, out_weight: np.ndarray, weighted: bool,
    *pieces: _Pieces,
) -> SourceBlock:
    """Worker side: one source block (the rows ``start .. stop - 1``) from its pieces of every partition."""
    src, dst, w = _stacked(pieces)
    A = sp.coo_array((w, (src - start, dst)), shape=(stop - start, n_vertices))
    return SourceBlock(index, n_blocks, start, stop, _normalised(_edges_only(A, weighted), out_weight))


def _target_block(
    index: int, n_blocks: int, start: int, stop: int, n_vertices: int, out_weight: np.ndarray, weighted: bool,
    *pieces: _Pieces,
) -> TargetBlock:
    """Worker side: one target block (the columns ``start .. stop - 1``) from its pieces of every partition."""
    src, dst, w = _stacked(pieces)
    A = sp.coo_array((w, (src, dst - start)), shape=(n_vertices, stop - start))  # rows: the sources
    return TargetBlock(index, n_blocks, start, stop, sp.csr_array(_normalised(_edges_only(A, weighted), out_weight).T))


class EdgeListGraph(_Graph):
    """A graph given as a dask dataframe of edges; its statistics and blocks are computed on the cluster.

    Parameters
    ----------
    client : distributed.Client
    edges : dask.dataframe.DataFrame
        One row per edge ``src -> dst``: integer columns ``src`` and
        ``dst`` (vertex ids from 0), optionally a weight column; other
        columns are not read. Duplicate rows of an edge add up.
    weight : str or None, default=None
        The column holding the weights; ``None``, or a name the edge list
        has no column of, gives every edge weight 1.
    n_vertices : int or None, default=None
        The number of vertices (ids ``0 .. n_vertices - 1``; vertices in no
        edge are isolated, dangling). ``None``: the largest id plus one.
    timeout : float
        Seconds to wait for the statistics pass.

    Raises
    ------
    ValueError
        No ``src`` or ``dst`` column, non-integer or negative ids, ids not
        below ``n_vertices``, a non-numeric weight column, no vertices, NaN
        or infinite weights, negative weights.
    TimeoutError
        If the statistics pass does not finish within ``timeout``.
    """

    def __init__(
        self, client: Client, edges: Any, *, weight: str | None = None, n_vertices: int | None = None, timeout: float,
    ) -> None:
        self.weight = _weight_column(edges, weight)
        self.weighted = self.weight is not None
        self.client = client
        self.timeout = timeout
        columns = [*EDGE_COLUMNS, *([self.weight] if self.weighted else [])]
        self._parts = edges[columns].to_delayed()
        n_groups = max(1, min(len(self._parts), len(worker_addresses(client))))
        split = [
            dask.delayed(_checked_groups, pure=True, nout=n_groups + 1)(p, self.weight, n_vertices, n_groups)
            for p in self._parts
        ]
        checks = [s[0] for s in split]
        n = dask.delayed(_vertex_count, pure=True)(n_vertices, *checks)
        stats = [
            dask.delayed(_group_stats, pure=True, nout=2)(g, n_groups, n, self.weighted, *[s[1 + g] for s in split])
            for g in range(n_groups)
        ]
        # the checks in one output: cancelling a future that other tasks of the pass depend on trips the scheduler
        checks, *results, in_degree = compute_within(
            client, [dask.delayed(list, pure=True)(checks), *[s[0] for s in stats], _tree_sum([s[1] for s in stats])],
            timeout, f"the pass over {WHAT}'s {len(self._parts)} partitions",
        )
        self._check_ids(checks, n_vertices)
        degree, weights, negative, nonfinite = zip(*results)
        _check_values(sum(negative), sum(nonfinite), WHAT)
        self.n_vertices = _vertex_count(n_vertices, *checks)
        self.out_degree = np.empty(self.n_vertices, dtype=np.int64)
        self.out_weight = np.empty(self.n_vertices)
        for g in range(n_groups):
            self.out_degree[g::n_groups], self.out_weight[g::n_groups] = degree[g], weights[g]
        self.in_degree = np.asarray(in_degree)
        self.n_edges = int(self.out_degree.sum())
        logger.debug("%s: %d vertices, %d edges, %d partitions", WHAT, self.n_vertices, self.n_edges, len(self._parts))

    @staticmethod
    def _check_ids(checks: list[tuple[int, int, int]], n_vertices: int | None) -> None:
        negative, beyond = sum(c[0] for c in checks), sum(c[1] for c in checks)
        if negative:
            raise ValueError(f"{WHAT} has {negative} negative vertex ids; ids count from 0")
        if beyond:
            raise ValueError(f"{WHAT} has {beyond} vertex ids not below n_vertices={n_vertices}")
        if _vertex_count(n_vertices, *checks) == 0:
            raise ValueError(f"the graph is empty: {WHAT} has no edges and n_vertices is not given")

    def _cut(self, function: Any, column: int, bounds: np.ndarray, out_weight: Any, pieces_first: bool = False) -> list[Any]:
        """Delayed blocks between ``bounds``: one split per partition, one ``function`` per block.

        ``pieces_first`` computes the splits' pieces before (as futures):
        a block's graph then holds only the block's task, so that pinning it
        to a worker does not pin the splits there too.
        """
        n_blocks = len(bounds) - 1
        split = [dask.delayed(_split, pure=True, nout=n_blocks)(p, self.weight, column, bounds) for p in self._parts]
        pieces = [[s[b] for s in split] for b in range(n_blocks)]
        if pieces_first:
            flat = iter(self.client.compute([p for block in pieces for p in block]))
            pieces = [[next(flat) for _ in block] for block in pieces]
        return [
            dask.delayed(function, pure=True)(
                b, n_blocks, int(lo), int(hi), self.n_vertices, out_weight(lo, hi), self.weighted, *pieces[b],
            )
            for b, (lo, hi) in enumerate(pairwise(bounds))
        ]

    def blocks(self, n_blocks: int) -> tuple[list[Future], list[float]]:
        """Futures of ``n_blocks`` source blocks, assembled on the workers, and their units."""
        bounds = self.bounds(n_blocks)
        parts = self._cut(_source_block, 0, bounds, lambda lo, hi: self.out_weight[lo:hi])
        return self.client.compute(parts), self.units(bounds)

    def target_blocks(self, n_blocks: int, workers: list[str]) -> list[Future]:
        """Futures of ``n_blocks`` target blocks, block ``b`` assembled on and kept by ``workers[b]``.

        The out-weights go to the cluster once, for every block's task.
        """
        weights = self.client.scatter(self.out_weight, broadcast=False)
        parts = self._cut(_target_block, 1, self.target_bounds(n_blocks), lambda lo, hi: weights, pieces_first=True)
        return _on_workers(self.client, parts, workers)
