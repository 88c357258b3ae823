"""PageRank from a dask dataframe edge list (``pipeline/pagerank/edges.py``): equal to the SciPy fit, built on the workers."""

from __future__ import annotations

import tracemalloc

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from dask_quorum.estimators import PageRank
from dask_quorum.pipeline.pagerank import EdgeListGraph, LocalGraph
from distributed import Client, Future, LocalCluster
from sklearn.exceptions import ConvergenceWarning

#: Vertices 0 .. 119 have out-edges, 120 .. 139 only in-edges (dangling), 140 .. 149 none (isolated).
N = 150


@pytest.fixture(scope="module")
def edge_frame():
    """A weighted edge list with duplicate rows, self-loops, dangling and isolated vertices, in random order."""
    rng = np.random.default_rng(5)
    m = 1500
    frame = pd.DataFrame({
        "src": rng.integers(0, 120, m),
        "dst": rng.integers(0, 140, m),
        "weight": rng.random(m) + 0.1,
    })
    frame.loc[::50, "dst"] = frame.loc[::50, "src"]  # self-loops
    frame = pd.concat([frame, frame.iloc[:200].assign(weight=lambda f: f.weight * 2)])  # 200 edges given twice
    frame["label"] = "ignored"  # a column PageRank does not read
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)


def _matrix(frame: pd.DataFrame, weighted: bool = True) -> sp.csr_array:
    """The same graph as a SciPy matrix: duplicates add up, as in ``coo_array``."""
    w = frame["weight"].to_numpy() if weighted else np.ones(len(frame))
    return sp.csr_array(sp.coo_array((w, (frame["src"], frame["dst"])), shape=(N, N)))


def _edges(frame: pd.DataFrame, npartitions: int = 7) -> dd.DataFrame:
    return dd.from_pandas(frame, npartitions=npartitions, sort=False)


def test_statistics_and_blocks_are_the_local_graphs(client4, edge_frame):
    graph = EdgeListGraph(client4, _edges(edge_frame), weight="weight", n_vertices=N, timeout=30)
    local = LocalGraph(_matrix(edge_frame))
    assert (graph.n_vertices, graph.n_edges) == (N, local.n_edges)
    assert local.n_edges < len(edge_frame)  # the duplicates were summed into one edge each
    np.testing.assert_array_equal(graph.out_degree, local.out_degree)
    np.testing.assert_array_equal(graph.in_degree, local.in_degree)
    np.testing.assert_allclose(graph.out_weight, local.out_weight, rtol=1e-14)
    np.testing.assert_array_equal(graph.dangling, local.dangling)
    assert graph.dangling[120:].all() and graph.in_degree[140:].sum() == 0
    futures, units = graph.blocks(4)
    assert all(isinstance(f, Future) for f in futures)  # built on the workers
    mine, local_units = local.blocks(4)
    assert units == local_units
    for remote, block in zip(client4.gather(futures), mine):
        assert (remote.index, remote.start, remote.stop) == (block.index, block.start, block.stop)
        assert abs(remote.transition - block.transition).max() <= 1e-15


def test_the_vertex_count_defaults_to_the_largest_id_plus_one(client4, edge_frame):
    graph = EdgeListGraph(client4, _edges(edge_frame), timeout=30)  # weight=None: unweighted
    assert graph.n_vertices == 140 and not graph.weighted
    np.testing.assert_array_equal(graph.out_degree, LocalGraph(_matrix(edge_frame), weighted=False).out_degree[:140])


@pytest.mark.parametrize("weight", ["weight", None])
@pytest.mark.parametrize("scheme", ["sync", "cyclic", "asap"])
def test_fit_equals_the_scipy_fit(client4, edge_frame, scheme, weight):
    teleport = np.linspace(1.0, 2.0, N)
    params = {"scheme": scheme, "weight": weight, "personalization": teleport, "tol": 1e-12}
    if scheme == "cyclic":
        params["redundancy"] = 2
    by_edges = PageRank(n_vertices=N, **params).fit(_edges(edge_frame))
    by_matrix = PageRank(**params).fit(_matrix(edge_frame))
    np.testing.assert_allclose(by_edges.scores_, by_matrix.scores_, rtol=1e-10, atol=1e-15)
    assert by_edges.history_.attrs["n_edges"] == by_matrix.history_.attrs["n_edges"]
    if scheme != "asap":  # the same power iteration, round for round
        assert by_edges.n_iter_ == by_matrix.n_iter_


def test_an_edge_list_without_the_weight_column_is_unweighted(client4, edge_frame):
    unweighted = edge_frame.drop(columns="weight")
    pr = PageRank(scheme="sync", n_vertices=N, tol=1e-12).fit(_edges(unweighted))  # weight="weight", the default
    ref = PageRank(scheme="sync", weight=None, tol=1e-12).fit(_matrix(edge_frame))
    np.testing.assert_allclose(pr.scores_, ref.scores_, rtol=1e-10)


# dask's parquet reader calls reset_index(inplace=True), which pandas 3.1 deprecates: not ours
@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")
def test_fit_from_parquet(client4, edge_frame, tmp_path):
    for i, rows in enumerate(np.array_split(np.arange(len(edge_frame)), 3)):
        edge_frame.iloc[rows].to_parquet(tmp_path / f"part-{i}.parquet", index=False)
    edges = dd.read_parquet(tmp_path)
    assert edges.npartitions >= 2
    pr = PageRank(scheme="cyclic", n_vertices=N, tol=1e-12).fit(edges)
    ref = PageRank(scheme="cyclic", tol=1e-12).fit(_matrix(edge_frame))
    np.testing.assert_allclose(pr.scores_, ref.scores_, rtol=1e-10)


# -- validation ----------------------------------------------------------------
@pytest.mark.parametrize(
    "frame, params, match",
    [
        (pd.DataFrame({"src": [0, -1], "dst": [1, 0]}), {}, "1 negative vertex ids"),
        (pd.DataFrame({"src": [0.0, 1.0], "dst": [1, 0]}), {}, "must hold integer vertex ids"),
        (pd.DataFrame({"source": [0, 1], "dst": [1, 0]}), {}, "has no \\['src'\\]"),
        (pd.DataFrame({"src": [0, 1], "dst": [1, 0], "weight": [1.0, -2.0]}), {}, "1 negative weights"),
        (pd.DataFrame({"src": [0, 1], "dst": [1, 0], "weight": [1.0, np.nan]}), {}, "1 NaN or infinite weights"),
        (pd.DataFrame({"src": [0, 1], "dst": [1, 0], "weight": ["a", "b"]}), {}, "must be numeric"),
        (pd.DataFrame({"src": [0, 5], "dst": [1, 0]}), {"n_vertices": 3}, "1 vertex ids not below n_vertices=3"),
        (pd.DataFrame({"src": np.array([], dtype=int), "dst": np.array([], dtype=int)}), {}, "the graph is empty"),
    ],
)
def test_bad_edge_list(client4, frame, params, match):
    with pytest.raises(ValueError, match=match):
        PageRank(**params).fit(_edges(frame, npartitions=2))


def test_weight_checks_see_summed_duplicates_as_the_matrix_does(client4):
    # -1 and +2 on the same edge sum to a positive weight: valid, as for coo_array
    frame = pd.DataFrame({"src": [0, 0, 1], "dst": [1, 1, 0], "weight": [-1.0, 2.0, 1.0]})
    pr = PageRank(scheme="sync").fit(_edges(frame, npartitions=2))
    np.testing.assert_allclose(pr.scores_, 0.5, atol=1e-10)
    with pytest.raises(ValueError, match="the adjacency matrix has 1 negative weights"):
        PageRank().fit(sp.csr_array(np.array([[0.0, -1.0], [1.0, 0.0]])))


def test_n_vertices_must_match_a_matrix(client4):
    with pytest.raises(ValueError, match="n_vertices=4 does not match the graph's 3 vertices"):
        PageRank(n_vertices=4).fit(sp.eye_array(3, format="csr"))


# -- the edge rows never reach the client --------------------------------------
@pytest.fixture(scope="module")
def process_client():
    """Two worker processes: what they hold is not in this process's memory."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(
        cluster, set_as_default=False
    ) as client, dask.config.set({"quorum.round-timeout": "120s", "quorum.setup-timeout": "120s"}):
        yield client


@pytest.mark.parametrize("scheme", ["cyclic", "asap"])
def test_edge_rows_stay_on_the_workers(process_client, scheme):
    n, m, chunk = 10_000, 4_000_000, 500_000
    ids = da.random.default_rng(0).integers(0, n, size=(m, 2), chunks=(chunk, 2))  # drawn on the workers
    edges = dd.from_dask_array(ids, columns=["src", "dst"])
    size = m * 2 * 8  # 61 MiB of edges; the fit's own allocations on the client measured 2-4 MiB
    assert size >= 32 * 2**20
    params = {"scheme": scheme, "redundancy": 2} if scheme == "cyclic" else {"scheme": scheme}
    pr = PageRank(weight=None, n_vertices=n, max_iter=3, client=process_client, **params)
    tracemalloc.start()
    try:
        with pytest.warns(ConvergenceWarning, match="max_iter"):
            pr.fit(edges)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pr.n_iter_ == 3 and pr.history_.attrs["n_edges"] > 0.95 * m  # distinct edges
    assert peak < size / 8, f"the client allocated {peak / 2**20:.1f} MiB for {size / 2**20:.0f} MiB of edges"
