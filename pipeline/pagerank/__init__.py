"""PageRank by coded rounds: the graph in blocks on the workers, coded power iteration.

Holds the source and target blocks of the transition matrix
(:mod:`.blocks`), the graphs that cut them (from a local sparse matrix or a
dask array, :mod:`.graphs`; from a dask dataframe edge list,
:mod:`.edges`), and the coded power iteration with its exact rank
accounting (:mod:`.power`).

May import :mod:`~dask_quorum.pipeline.engine`,
:mod:`~dask_quorum.pipeline.coding` and :mod:`~dask_quorum.pipeline.cluster`.
"""

from .blocks import SourceBlock, TargetBlock
from .edges import EdgeListGraph
from .graphs import DaskGraph, LocalGraph
from .power import (
    GoogleMap,
    PageRankFit,
    RankAccount,
    coded_block_step,
    pagerank_by_rounds,
)

__all__ = [
    "DaskGraph",
    "EdgeListGraph",
    "GoogleMap",
    "LocalGraph",
    "PageRankFit",
    "RankAccount",
    "SourceBlock",
    "TargetBlock",
    "coded_block_step",
    "pagerank_by_rounds",
]
