"""Blocks of vertices, the partitions of PageRank: the two cuts of the transition matrix.

Two cuts of the transition matrix ``P = D^-1 A`` (every row of a vertex
with out-edges sums to 1; rows of dangling vertices are empty), both into
blocks of vertices contiguous in vertex order:

* a *source* block (:class:`SourceBlock`) holds the out-edges of the
  source vertices ``start .. stop - 1``, the matching rows of ``P``; the
  work of :func:`~dask_quorum.pipeline.pagerank.power.block_step` (coded
  rounds);
* a *target* block (:class:`TargetBlock`) holds the in-edges of the target
  vertices ``start .. stop - 1``, the matching columns of ``P`` stored as
  rows of ``P^T``. The owner of a target block computes its vertices' share
  of ``P^T x`` from the whole ``x``
  (:mod:`~dask_quorum.pipeline.asap.pagerank`).

The graphs that cut them, from a SciPy matrix on the driver or from a dask
array on the workers, are in :mod:`~dask_quorum.pipeline.pagerank.graphs`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import scipy.sparse as sp

logger = logging.getLogger(__name__)

__all__ = ["SourceBlock", "TargetBlock"]


@dataclass(frozen=True)
class _Block:
    """What both kinds of blocks share: their place among the partitions and their vertices.

    Attributes
    ----------
    index, n_blocks : int
        This block's position among the ``n_blocks`` partitions.
    start, stop : int
        Its vertices.
    """

    index: int
    n_blocks: int
    start: int
    stop: int

    @property
    def _matrix(self) -> sp.csr_array:
        """The block's rows of its matrix, one column per vertex of the graph."""
        raise NotImplementedError

    @property
    def n_vertices(self) -> int:
        """Vertices of the whole graph."""
        return self._matrix.shape[1]


@dataclass(frozen=True)
class SourceBlock(_Block):
    """The out-edges of the source vertices ``start .. stop - 1``.

    Attributes
    ----------
    index, n_blocks, start, stop : int
        Block ``index`` of the ``n_blocks`` partitions, of the source
        vertices ``start .. stop - 1``.
    transition : scipy.sparse.csr_array of shape (stop - start, n_vertices)
        Rows ``start .. stop - 1`` of the row-normalised adjacency ``D^-1 A``.
    """

    transition: sp.csr_array

    @property
    def _matrix(self) -> sp.csr_array:
        return self.transition


@dataclass(frozen=True)
class TargetBlock(_Block):
    """The in-edges of the target vertices ``start .. stop - 1``.

    Attributes
    ----------
    index, n_blocks, start, stop : int
        Block ``index`` of the ``n_blocks`` partitions, of the target
        vertices ``start .. stop - 1``.
    inflow : scipy.sparse.csr_array of shape (stop - start, n_vertices)
        Columns ``start .. stop - 1`` of the row-normalised adjacency
        ``D^-1 A``, transposed: ``inflow @ x`` is ``(P^T x)[start:stop]``,
        the rank that flows into the block along its in-edges.
    """

    inflow: sp.csr_array

    @property
    def _matrix(self) -> sp.csr_array:
        return self.inflow

    @property
    def units(self) -> float:
        """Work of one step on the block: in-edges plus vertices."""
        return float(self.inflow.nnz + self.stop - self.start)
