"""The graphs that cut an adjacency into blocks (``pipeline/pagerank/graphs.py``): dask arrays, validation."""

from __future__ import annotations

import dask.array as da
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from dask_quorum.estimators import PageRank
from dask_quorum.pipeline.pagerank import DaskGraph, LocalGraph
from distributed import Future


@pytest.mark.parametrize("sparse_chunks, chunks", [(False, (50, 35)), (True, (40, 120))])
def test_dask_graph_builds_the_local_graphs_blocks_on_the_workers(client4, directed, sparse_chunks, chunks):
    # (the fit on such a dask array: test_dask_array_input in tests/pagerank/test_power.py)
    source = sp.csr_matrix(directed) if sparse_chunks else directed.toarray()
    X = da.from_array(source, chunks=chunks, asarray=False)
    graph = DaskGraph(client4, X, weighted=True, timeout=30)
    blocks, _ = graph.blocks(4)
    # the blocks are built on the workers: the client only holds futures
    assert all(isinstance(b, Future) for b in blocks)
    local, _ = LocalGraph(directed).blocks(4)
    for remote, mine in zip(client4.gather(blocks), local):
        assert (remote.start, remote.stop) == (mine.start, mine.stop)
        assert abs(remote.transition - mine.transition).max() <= 1e-15


# -- validation ----------------------------------------------------------------
@pytest.mark.parametrize(
    "adjacency, match",
    [
        (sp.csr_array(np.ones((3, 4))), "square"),
        (sp.csr_array((0, 0)), "no vertices"),
        (nx.DiGraph(), "no nodes"),
        (sp.csr_array(np.array([[0.0, -1.0], [1.0, 0.0]])), "negative"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), "NaN"),
        (np.array([[0.0, np.inf], [1.0, 0.0]]), "infinite"),
        (da.from_array(-np.eye(4), chunks=2), "negative"),
        (da.ones((4, 5), chunks=2), "square"),
    ],
)
def test_bad_adjacency(client4, adjacency, match):
    with pytest.raises(ValueError, match=match):
        PageRank().fit(adjacency)

