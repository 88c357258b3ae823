"""PageRank in ASAP mode (asynchronous block iteration) against networkx and PRPACK, on a real cluster."""

from __future__ import annotations

import time

import dask
import dask.array as da
import dask.dataframe as dd
import igraph
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg
from dask_quorum.estimators import PageRank
from dask_quorum.pipeline.asap import AsapError, BlockRankBuilder, honest_residuals
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers
from dask_quorum.pipeline.pagerank import DaskGraph, EdgeListGraph, LocalGraph
from distributed import Future, wait

BUNDLED = (nx.karate_club_graph, nx.les_miserables_graph, nx.florentine_families_graph, nx.davis_southern_women_graph)
#: tol giving scores within 2 d / (1 - d) * TOL = 1e-8 of the exact vector (normalisation included).
TOL = 1e-8 * 0.15 / (2 * 0.85)


def _distance(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).sum())


def _references(A, teleport, weighted=False) -> tuple[np.ndarray, np.ndarray]:
    """networkx (``tol=1e-12``) and igraph PRPACK scores of the digraph ``A`` (rows are sources)."""
    G = nx.from_scipy_sparse_array(A, create_using=nx.DiGraph)
    by_networkx = nx.pagerank(
        G, weight="weight" if weighted else None, personalization=dict(enumerate(teleport)), tol=1e-12,
        max_iter=10_000,
    )
    src, dst = A.nonzero()
    g = igraph.Graph(n=A.shape[0], edges=np.column_stack([src, dst]).tolist(), directed=True)
    by_prpack = g.personalized_pagerank(
        damping=0.85, reset=list(teleport), weights=np.asarray(A[src, dst]).ravel().tolist() if weighted else None
    )
    return np.array([by_networkx[v] for v in range(A.shape[0])]), np.array(by_prpack)


@pytest.fixture(scope="module")
def bundle():
    """The four bundled graphs and a random digraph with dangling vertices, side by side in one matrix.

    The personalization is 1 on the bundled graphs and random, half of it
    zero, on the digraph: each bundled graph's share of the scores,
    renormalised, is its own classic PageRank.
    """
    parts = [nx.to_scipy_sparse_array(make(), weight=None) for make in BUNDLED]
    digraph = nx.to_scipy_sparse_array(nx.gnp_random_graph(200, 0.012, directed=True, seed=5), weight=None)
    assert (np.diff(digraph.indptr) == 0).sum() >= 3  # dangling vertices
    A = sp.csr_array(sp.block_diag([*parts, digraph], format="csr"))
    rng = np.random.default_rng(11)
    teleport = np.ones(A.shape[0])
    teleport[-200:] = rng.random(200) * (rng.random(200) < 0.5)
    sizes = np.cumsum([0] + [p.shape[0] for p in parts])
    return A, teleport, _references(A, teleport), sizes


@pytest.mark.parametrize("staleness", [0, 2])
def test_asap_matches_networkx_and_prpack(client4, bundle, staleness):
    A, teleport, (by_networkx, by_prpack), sizes = bundle
    pr = PageRank(weight=None, personalization=teleport, tol=TOL, scheme="asap", staleness=staleness).fit(A)
    assert _distance(pr.scores_, by_networkx) <= 1e-8
    assert _distance(pr.scores_, by_prpack) <= 1e-8
    assert pr.scores_.sum() == pytest.approx(1.0, abs=1e-12)
    for make, lo, hi in zip(BUNDLED, sizes[:-1], sizes[1:]):
        alone = nx.pagerank(make(), weight=None, tol=1e-12, max_iter=10_000)
        share = pr.scores_[lo:hi] / pr.scores_[lo:hi].sum()
        assert _distance(share, list(alone.values())) <= 1e-8, make.__name__
    h = pr.history_
    assert h.attrs["scheme"] == "asap" and h.attrs["staleness"] == staleness and h.attrs["converged"] == 1
    assert h.sizes["round"] == pr.n_iter_
    assert h["residual"].values[-1] <= pr.tol < h["residual"].values[0]
    assert (np.diff(h["elapsed"].values) >= 0).all()


def test_strict_asap_is_the_power_iteration(client4, bundle):
    A, teleport, _, _ = bundle
    with dask.config.set({"quorum.history.keep-params": True}):
        sync = PageRank(weight=None, personalization=teleport, tol=TOL, scheme="sync").fit(A)
        asap = PageRank(weight=None, personalization=teleport, tol=TOL, scheme="asap").fit(A)
    k = sync.n_iter_
    assert asap.n_iter_ >= k  # the workers stop at the same residual, or a few rounds later
    h = asap.history_
    # round by round the iterates and the residual (one power step's L1 change) are the sync ones
    np.testing.assert_allclose(h["params"].values[:k], sync.history_["params"].values, rtol=0, atol=1e-14)
    np.testing.assert_allclose(h["residual"].values[:k], sync.history_["residual"].values, rtol=0, atol=1e-13)
    assert (h["stale_reduces"] == 0).all()
    # every worker sends its block and its dangling mass to the 3 others, every round
    n, bounds = A.shape[0], LocalGraph(A, weighted=False).target_bounds(4)
    assert (h["bytes_sent"] == 3 * (n + 4) * 8).all()
    assert (h["bytes_max_node"] == (n + 2 * np.diff(bounds).max() + 6) * 8).all()
    # the residual is the sum of the block changes
    np.testing.assert_allclose(h["block_change"].sum("worker"), h["residual"], rtol=1e-12)


@pytest.fixture(scope="module")
def weighted():
    """A weighted random digraph with dangling vertices and a personalization."""
    rng = np.random.default_rng(3)
    n = 150
    A = sp.random_array((n, n), density=0.02, format="csr", rng=rng, data_sampler=lambda size: rng.random(size) + 0.1)
    assert (np.diff(A.indptr) == 0).sum() >= 3
    teleport = rng.random(n)
    return A, teleport / teleport.sum()


def test_straggler_with_staleness(client4, weighted):
    A, teleport = weighted
    workers = sorted(scheduler_workers(client4))
    inject_stragglers(client4, {workers[1]: Slowdown(factor=1.0, delay=0.005)}, seed=0)
    try:
        pr = PageRank(personalization=teleport, tol=TOL, scheme="asap", staleness=2).fit(A)
    finally:
        remove_stragglers(client4)
    by_networkx, by_prpack = _references(A, teleport, weighted=True)
    assert _distance(pr.scores_, by_networkx) <= 1e-8
    assert _distance(pr.scores_, by_prpack) <= 1e-8
    h = pr.history_
    assert float(h["compute"].sel(worker=workers[1]).min()) >= 0.005  # the straggler was slowed
    assert int(h["stale_reduces"].sum()) > 0  # and its peers went on with its older blocks
    assert h["residual"].values[-1] <= TOL


def _check_target_blocks(client, graph, A) -> None:
    """``graph``'s 4 target blocks are built on the workers that own them, and are ``LocalGraph(A)``'s."""
    local = LocalGraph(A)
    np.testing.assert_array_equal(graph.in_degree, local.in_degree)
    workers = sorted(scheduler_workers(client))
    futures = graph.target_blocks(4, workers)
    assert all(isinstance(f, Future) for f in futures)
    wait(futures, timeout=30)
    # each block is built on the worker that will own it (the engine reads it from there)
    assert [tuple(client.who_has(f)[f.key]) for f in futures] == [(w,) for w in workers]
    for remote, mine in zip(client.gather(futures), local.target_blocks(4)):
        assert (remote.start, remote.stop) == (mine.start, mine.stop)
        assert abs(remote.inflow - mine.inflow).max() <= 1e-15


def test_dask_array_blocks_stay_on_their_workers(client4, weighted):
    A, teleport = weighted
    X = da.from_array(A.toarray(), chunks=(50, 35))
    _check_target_blocks(client4, DaskGraph(client4, X, weighted=True, timeout=30), A)
    pr = PageRank(personalization=teleport, tol=TOL, scheme="asap").fit(X)
    assert _distance(pr.scores_, _references(A, teleport, weighted=True)[1]) <= 1e-8


def test_edge_list_blocks_stay_on_their_workers(client4, weighted):
    # (the fit on an edge list against the SciPy fit: tests/pagerank/test_edges.py)
    A, teleport = weighted
    coo = sp.coo_array(A)
    frame = pd.DataFrame({"src": coo.row, "dst": coo.col, "weight": coo.data}).sample(frac=1.0, random_state=0)
    edges = dd.from_pandas(frame, npartitions=5, sort=False)
    _check_target_blocks(client4, EdgeListGraph(client4, edges, weight="weight", n_vertices=A.shape[0], timeout=30), A)
    pr = PageRank(personalization=teleport, tol=TOL, scheme="asap", n_vertices=A.shape[0]).fit(edges)
    assert _distance(pr.scores_, _references(A, teleport, weighted=True)[1]) <= 1e-8


def test_asap_parameters_are_checked(client4):
    A = sp.eye_array(3, format="csr")
    with pytest.raises(ValueError, match="staleness=2 applies to scheme='asap' only"):
        PageRank(scheme="cyclic", staleness=2).fit(A)
    with pytest.raises(ValueError, match="redundancy=2 applies to the coded schemes"):
        PageRank(scheme="asap", redundancy=2).fit(A)
    with pytest.raises(ValueError, match="staleness"):
        PageRank(scheme="asap", staleness=-1).fit(A)
    with dask.config.set({"quorum.scheme": "asap"}), pytest.raises(ValueError, match="redundancy=2"):
        PageRank(redundancy=2).fit(A)


def test_a_dead_worker_ends_the_fit_with_a_clear_error(worker_dies_mid_fit):
    client, victim = worker_dies_mid_fit
    A = nx.to_scipy_sparse_array(nx.gnp_random_graph(300, 0.02, directed=True, seed=1))
    start = time.monotonic()
    with pytest.raises(AsapError) as info:
        PageRank(scheme="asap", tol=0.0, max_iter=100_000, client=client).fit(A)
    assert time.monotonic() - start < 15  # the driver sees the worker go, well before any deadline
    assert victim in str(info.value)


# -- the bound, without a cluster ------------------------------------------------
def test_residual_bounds_a_chaotic_iteration():
    """Programs driven by hand with random delays: ``damping * R(t)`` bounds ``||F(x) - x||_1``."""
    A = nx.to_scipy_sparse_array(nx.gnp_random_graph(150, 0.02, directed=True, seed=2), weight=None)
    graph, n_workers, staleness, d = LocalGraph(A, weighted=False), 3, 3, 0.85
    rng = np.random.default_rng(0)
    teleport = rng.random(A.shape[0])
    teleport /= teleport.sum()
    bounds = graph.target_bounds(n_workers)
    builder = BlockRankBuilder(d, bounds, teleport, graph.dangling, staleness, keep_blocks=False)
    programs = [builder.build(k, block, []) for k, block in enumerate(graph.target_blocks(n_workers))]
    # the Google matrix M, column-stochastic, and the exact vector
    out = np.diff(A.indptr)
    P = sp.diags_array(np.divide(1.0, out, out=np.zeros(out.size), where=out > 0)) @ A
    M = sp.csr_array(P.T) + sp.csr_array(np.outer(teleport, graph.dangling))
    exact = scipy.sparse.linalg.spsolve(sp.csc_array(sp.eye_array(A.shape[0]) - d * M), (1 - d) * teleport)
    versions: list[list[np.ndarray]] = [[] for _ in programs]
    logs: list[list[tuple[int, int, int]]] = [[] for _ in programs]
    changes, true = [], []
    for t in range(400):
        for k, prog in enumerate(programs):
            versions[k].append(prog.message())
        for k, prog in enumerate(programs):
            received = {}
            for j in range(n_workers):
                if j != k:
                    v = int(rng.integers(max(0, t - staleness), t + 1))
                    received[j] = versions[j][v]
                    logs[k].append((t, j, v))
            prog.step(versions[k][t], received)
        x = np.concatenate([prog.x for prog in programs])
        changes.append([prog.value for prog in programs])
        true.append(np.abs(d * (M @ x) + (1 - d) * teleport - x).sum())
    R = honest_residuals(np.array(changes), [np.array(log) for log in logs])
    true = np.array(true)
    assert (true <= d * R * (1 + 1e-9) + 1e-16).all()
    # the delays matter: the last round's block changes alone do not bound it
    assert (true > d * np.array(changes).sum(axis=1)).any()
    assert R[-1] < 1e-12
    assert _distance(x, exact) < 1e-10
