"""PageRank by coded rounds (``pipeline/pagerank/power.py``) against networkx and igraph's PRPACK, on a real cluster."""

from __future__ import annotations

import dask
import dask.array as da
import igraph
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg
from dask_quorum.estimators import PageRank
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.coding import SCHEMES, make_code
from dask_quorum.pipeline.engine import coded_partial
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers
from dask_quorum.pipeline.pagerank import (
    GoogleMap,
    LocalGraph,
    RankAccount,
    coded_block_step,
)
from sklearn.exceptions import ConvergenceWarning

REAL_GRAPHS = {
    "karate": nx.karate_club_graph,
    "les_miserables": nx.les_miserables_graph,
    "florentine": nx.florentine_families_graph,
    "davis": nx.davis_southern_women_graph,
}
EXACT = ["frc", "cyclic"]
#: Scores within 2 d / (1 - d) * TOL = 1e-8 of the exact vector (normalisation included).
TOL = 1e-8 * 0.15 / (2 * 0.85)
APPROXIMATE = ["expander"]


def l1(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).sum())


def networkx_scores(G, **kw) -> np.ndarray:
    ranks = nx.pagerank(G, tol=1e-12, max_iter=10_000, **kw)
    return np.array([ranks[v] for v in G])


def prpack_scores(A, personalization=None, weighted=False) -> np.ndarray:
    """igraph's PRPACK on the adjacency ``A`` (rows are sources)."""
    coo = sp.coo_array(A)
    g = igraph.Graph(n=A.shape[0], edges=np.column_stack([coo.row, coo.col]).tolist(), directed=True)
    weights = coo.data.tolist() if weighted else None
    reset = None if personalization is None else list(personalization)
    return np.array(g.personalized_pagerank(directed=True, damping=0.85, reset=reset, weights=weights))


@pytest.fixture(scope="module")
def zoo():
    """networkx's four bundled real graphs and a random digraph with dangling vertices, as one graph.

    The personalization is uniform on the real graphs and random (half of
    it zero) on the digraph. The components do not exchange rank except
    along the personalization, which is uniform within every real graph, so
    each real graph's share of the scores, renormalised, is its classic
    PageRank: one fit checks every bundled graph and the digraph at once.
    """
    parts = [nx.DiGraph(make()) for make in REAL_GRAPHS.values()]
    digraph = nx.gnp_random_graph(150, 0.015, directed=True, seed=7)
    G = nx.disjoint_union_all([*parts, digraph])
    rng = np.random.default_rng(0)
    weights = np.ones(len(G))
    weights[-len(digraph):] = rng.random(len(digraph)) * (rng.random(len(digraph)) < 0.5)
    personalization = dict(zip(G, weights))
    sizes = [len(g) for g in parts]
    A = nx.to_scipy_sparse_array(G, weight=None)
    assert (np.diff(A.indptr)[-len(digraph):] == 0).sum() >= 3  # dangling vertices
    return {
        "G": G,
        "personalization": personalization,
        "networkx": networkx_scores(G, weight=None, personalization=personalization),
        "prpack": prpack_scores(A, weights),
        "slices": np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1]),
    }


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_matches_networkx_and_prpack(client4, zoo, scheme):
    pr = PageRank(
        weight=None, personalization=zoo["personalization"], tol=TOL, scheme=scheme, redundancy=2,
        random_state=0,
    ).fit(zoo["G"])
    assert l1(pr.scores_, zoo["networkx"]) <= 1e-8
    assert l1(pr.scores_, zoo["prpack"]) <= 1e-8
    assert pr.scores_.sum() == pytest.approx(1.0, abs=1e-12)
    for (name, make), idx in zip(REAL_GRAPHS.items(), zoo["slices"]):
        alone = networkx_scores(make(), weight=None)
        assert l1(pr.scores_[idx] / pr.scores_[idx].sum(), alone) <= 1e-8, name
    h = pr.history_
    assert h.sizes["round"] == pr.n_iter_
    assert h["residual"].values[-1] <= pr.tol < h["residual"].values[0]
    assert (np.diff(h["elapsed"].values) > 0).all()


def test_sync_is_networkx_power_iteration(client4, directed):
    G = nx.from_scipy_sparse_array(directed, create_using=nx.DiGraph)
    with dask.config.set({"quorum.history.keep-params": True}):
        pr = PageRank(scheme="sync", tol=TOL).fit(G)
    h = pr.history_
    assert h["params"].shape == (pr.n_iter_, len(G))
    np.testing.assert_array_equal(h["params"].values[-1], pr.scores_)
    # every round decodes everything: the residual is the iterates' L1 change,
    # which shrinks by at least the damping factor per step
    assert (h["n_responders"] == 4).all() and (h["step"] == 1).all()
    r = h["residual"].values
    assert (r[1:] <= 0.85 * r[:-1] * (1 + 1e-9)).all()
    assert l1(pr.scores_, networkx_scores(G)) <= 1e-8


@pytest.fixture
def one_slow_worker(client4):
    workers = sorted(scheduler_workers(client4))
    inject_stragglers(client4, {workers[0]: Slowdown(factor=10, delay=0.05)}, seed=0)
    yield 0
    remove_stragglers(client4)


@pytest.mark.parametrize("scheme", EXACT + APPROXIMATE)
def test_persistent_straggler(client4, directed, one_slow_worker, scheme):
    pr = PageRank(tol=TOL, scheme=scheme, redundancy=2, random_state=0).fit(directed)
    assert l1(pr.scores_, prpack_scores(directed, weighted=True)) <= (1e-8 if scheme in EXACT else 1e-6)
    # the rounds went on without the slow worker (else this tested nothing)
    assert pr.history_["responded"].values[:, one_slow_worker].mean() < 0.5


def test_uncoded_persistent_straggler_is_reported(client4, directed, one_slow_worker):
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        pr = PageRank(scheme="uncoded", redundancy=2, max_iter=30).fit(directed)
    h = pr.history_
    assert h["min_coeff"].values.min() == 0.0  # a block was left out
    residual = float(h["residual"].values[-1])
    assert residual > pr.tol
    # the residual bounds the real error (times 2 d / (1 - d), normalisation included)
    assert l1(pr.scores_, prpack_scores(directed, weighted=True)) <= 2 * 0.85 / 0.15 * residual


# -- inputs -----------------------------------------------------------------
def test_weighted_networkx_graph(client4):
    G = nx.karate_club_graph()  # carries weights
    pr = PageRank(tol=TOL, scheme="cyclic").fit(G)
    assert l1(pr.scores_, networkx_scores(G)) <= 1e-8
    assert l1(pr.scores_, prpack_scores(nx.to_scipy_sparse_array(G), weighted=True)) <= 1e-8


def test_dense_array_input(client4, directed):
    pr = PageRank(tol=TOL, scheme="frc", redundancy=2).fit(directed.toarray())
    assert l1(pr.scores_, prpack_scores(directed, weighted=True)) <= 1e-8


@pytest.mark.parametrize("sparse_chunks, chunks", [(False, (50, 35)), (True, (40, 120))])
def test_dask_array_input(client4, directed, sparse_chunks, chunks):
    # (that a DaskGraph cuts the same blocks as a LocalGraph: tests/pagerank/test_graphs.py)
    source = sp.csr_matrix(directed) if sparse_chunks else directed.toarray()
    X = da.from_array(source, chunks=chunks, asarray=False)
    teleport = np.linspace(0.0, 1.0, directed.shape[0])
    pr = PageRank(personalization=teleport, tol=TOL, scheme="cyclic").fit(X)
    assert l1(pr.scores_, prpack_scores(directed, teleport, weighted=True)) <= 1e-8


# -- the driver's bookkeeping, without a cluster -----------------------------
def _simulate(A, code, rounds, responders):
    """RankAccount fed with the decoded sums of ``code`` for the given responders per round."""
    graph = LocalGraph(A, weighted=False)
    k = code.n_partitions
    blocks, _ = graph.blocks(k)
    n = graph.n_vertices
    teleport = np.full(n, 1.0 / n)
    account = RankAccount(GoogleMap(0.85, teleport, graph.dangling), graph.bounds(k), teleport)
    iterates = []
    for t in range(rounds):
        S = responders(t)
        delta = account.delta()
        answers = [
            coded_partial(coded_block_step, delta, code.B[i, code.assignment(i)], *[blocks[j] for j in code.assignment(i)])
            for i in S
        ]
        account.absorb(sum(w * y for w, y in zip(code.decode(S), answers)), delta)
        iterates.append(account.x.copy())
    return account, iterates


def _exact(A):
    """PageRank by a direct sparse solve (dangling rank spread uniformly)."""
    n = A.shape[0]
    out = np.asarray((A != 0).sum(axis=1)).ravel()
    P = sp.diags_array(np.divide(1.0, out, out=np.zeros(n), where=out > 0)) @ (A != 0).astype(float)
    M = sp.csc_array(P.T) + sp.csc_array(np.outer(np.full(n, 1.0 / n), out == 0))
    return scipy.sparse.linalg.spsolve(sp.eye_array(n, format="csc") - 0.85 * M, np.full(n, 0.15 / n))


def test_rank_account_converges_exactly_under_random_approximate_rounds():
    # Les Miserables is where plain over-relaxed sums (c = 4/3) diverge
    A = nx.to_scipy_sparse_array(nx.les_miserables_graph(), weight=None)
    rng = np.random.default_rng(0)
    for code in [make_code("uncoded", 4, redundancy=2), make_code("expander", 6, redundancy=3, random_state=0)]:
        account, _ = _simulate(A, code, 600, lambda t: rng.permutation(code.n_workers)[: code.min_responders])
        assert account.residual <= 1e-12
        assert l1(account.scores(), _exact(A)) <= 1e-11


def test_rank_account_residual_is_honest_when_a_block_is_never_refreshed():
    A = nx.to_scipy_sparse_array(nx.les_miserables_graph(), weight=None)
    account, iterates = _simulate(A, make_code("uncoded", 4, redundancy=2), 300, lambda t: [0, 1, 2])
    # the iterates stopped moving (a naive L1-change test would stop here) ...
    assert l1(iterates[-1], iterates[-2]) <= 1e-12
    # ... but they are wrong, and the residual says so
    assert l1(account.scores(), _exact(A)) > 1e-3
    assert account.residual > 1e-3


def test_rank_account_drops_rounds_with_negative_coefficients():
    A = nx.to_scipy_sparse_array(nx.florentine_families_graph(), weight=None)
    code = make_code("cyclic", 4, redundancy=3)
    # a lone responder of this code decodes a negative share of some block
    lone = next([i] for i in range(4) if (code.B[[i]].T @ code.decode([i])).min() < -0.1)
    account, iterates = _simulate(A, code, 3, lambda t: lone)
    np.testing.assert_array_equal(iterates[-1], np.full(A.shape[0], 1.0 / A.shape[0]))
    assert not account.u.any()


