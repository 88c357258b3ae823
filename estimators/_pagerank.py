"""PageRank whose power iteration runs in coded rounds, or asynchronously, on a Dask cluster."""

from __future__ import annotations

import sys
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from dask_quorum.pipeline import (
    DaskGraph,
    EdgeListGraph,
    LocalGraph,
    PageRankFit,
    get_client,
    pagerank_asap,
    pagerank_by_rounds,
)
from distributed import Client
from sklearn.base import BaseEstimator, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_random_state

from dask_quorum import config

from ._base import ENGINE_CONSTRAINTS, QuorumLinearModel, check_asap_parameters


class PageRank(BaseEstimator):
    """PageRank by power iteration whose mat-vec rounds tolerate stragglers.

    The adjacency matrix is cut into blocks of source vertices (balanced by
    edges), placed on the Dask workers by a gradient code; every iteration
    is one coded round that decodes the rank flowing along all edges from
    the first sufficient set of workers. Dangling vertices and the
    personalization are handled as by :func:`networkx.pagerank`.

    Approximate codes (``uncoded``, ``expander``) do not
    bias the result: every round also decodes how much of each block it
    used, and the driver accounts for exactly that (see
    :mod:`dask_quorum.pipeline.pagerank.power`), so all schemes converge to the
    same vector; approximate ones take more rounds.

    ``scheme="asap"`` drops the driver barrier: every worker owns a block of
    the ranks and the in-edges of that block, and recomputes its block from
    the blocks its peers send it, worker to worker (asynchronous block
    iteration; see :mod:`dask_quorum.pipeline.asap.pagerank`). With
    ``staleness=0`` this is the same power iteration; with ``staleness > 0``
    a worker goes on with peers' blocks up to ``staleness`` rounds old,
    which converges to the same vector because the PageRank map is a
    contraction.

    Parameters
    ----------
    damping : float, default=0.85
        Probability of following an out-edge, in (0, 1) (networkx's ``alpha``).
    personalization : array-like of shape (n_vertices,), dict or None, default=None
        Where the random surfer teleports (and where dangling vertices send
        their rank): non-negative weights, not all zero, normalised to sum
        to 1. A dict maps vertices (nodes of a networkx graph, indices of a
        matrix) to weights, missing ones weigh 0. ``None`` is uniform.
    weight : str or None, default="weight"
        For a networkx graph, the edge attribute holding the weights (edges
        without it weigh 1), as in :func:`networkx.pagerank`; for a dask
        dataframe edge list, the column holding them (an edge list without
        that column weighs every edge 1). ``None`` gives every edge weight
        1, for matrices too (any non-zero entry is an edge of weight 1).
    n_vertices : int or None, default=None
        For a dask dataframe edge list, the number of vertices: ids run
        from 0 to ``n_vertices - 1``, and vertices in no edge are isolated
        (dangling). ``None`` takes the largest id plus one. For the other
        inputs, ``None`` or their number of vertices.
    tol : float, default=1e-10
        Stop when the L1 norm of the change one power-iteration step makes,
        ``||F(u) - u||_1``, is at most ``tol``; then the scores are within
        ``damping / (1 - damping) * tol`` (``5.7 * tol`` at 0.85) of the
        exact PageRank vector in L1. This is an absolute tolerance:
        networkx stops at ``n_vertices * tol``, so ``networkx.pagerank(G,
        tol=t)`` corresponds to ``tol = len(G) * t`` here (networkx's default
        ``1e-6`` is loose on large graphs: ``1e-1`` at 100,000 vertices).
    max_iter : int, default=1000
        Maximum number of rounds (one mat-vec each).
    scheme : {"sync", "uncoded", "frc", "cyclic", "expander", "heterogeneous", "auto", "asap"} or None, default=None
        The gradient code that places the blocks (see
        :func:`dask_quorum.make_code`); ``heterogeneous`` and ``auto`` adapt
        the code to a straggler model fitted while the iteration runs;
        ``asap`` is the asynchronous block iteration (no code, one block
        per worker). ``None`` uses ``quorum.scheme``.
    redundancy : int or None, default=None
        Replicas of each block; a round tolerates ``redundancy - 1``
        stragglers. ``None`` uses ``quorum.redundancy``, capped at the
        number of workers. Must be ``None`` with ``scheme="asap"``.
    staleness : int, default=0
        With ``scheme="asap"`` only: how many rounds old the peers' blocks a
        worker computes with may be. 0 is strict NOTIFY-ACK (every round
        waits for every peer's block of that round: the power iteration
        itself); ``s >= 1`` lets fast workers run up to ``s`` rounds ahead
        of a straggler.
    random_state : int, RandomState instance or None, default=None
        Seeds the construction of randomised codes.
    client : distributed.Client or None, default=None
        The cluster to run on; ``None`` uses the default client, or an
        embedded local cluster.

    Attributes
    ----------
    scores_ : ndarray of shape (n_vertices,)
        PageRank of every vertex, summing to 1; for a networkx graph in the
        order of ``list(G)``.
    n_iter_ : int
        Rounds run.
    history_ : xarray.Dataset
        One row per round: ``residual`` (the L1 change above), ``step`` and
        ``min_coeff`` (how much of the round was applied, and the smallest
        share of a block it decoded), ``wall_time``, ``elapsed``,
        ``n_responders``, ``responded`` (round x worker), ``decode_error``,
        ``stop`` and the other columns of the linear models' ``history_``.
        With ``scheme="asap"``: ``residual`` (the L1 distance between the
        blocks read and the blocks produced, which bounds the error the same
        way), ``block_change`` (round x worker), ``stale_reduces``,
        ``bytes_sent``, ``bytes_max_node``, ``compute`` and ``wait`` (round x
        worker), ``wall_time`` and ``elapsed``.

    See Also
    --------
    networkx.pagerank : The single-machine reference.

    Notes
    -----
    The input is a SciPy sparse matrix or a NumPy array (``adjacency[i, j]``
    is the weight of the edge ``i -> j``), a networkx graph (undirected
    edges go both ways), a dask array, or a dask dataframe edge list
    (columns ``src``, ``dst`` and optionally ``weight``, e.g. from
    :func:`dask.dataframe.read_parquet`). The blocks of a dask array or
    an edge list are assembled on the workers so that the adjacency never
    passes through the client. The client holds a few vectors of
    ``n_vertices`` floats; the adjacency is never densified.

    Examples
    --------
    >>> import networkx as nx
    >>> from dask_quorum import PageRank
    >>> G = nx.karate_club_graph()
    >>> pr = PageRank(weight=None, scheme="cyclic").fit(G)  # doctest: +SKIP
    >>> round(pr.scores_.sum(), 12), pr.scores_.argmax()  # doctest: +SKIP
    (1.0, 33)
    """

    _parameter_constraints: dict = {
        "damping": [Interval(Real, 0, 1, closed="neither")],
        "personalization": ["array-like", dict, None],
        "weight": [str, None],
        "n_vertices": [Interval(Integral, 1, None, closed="left"), None],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        # "asap" dispatches in fit to the asynchronous block iteration.
        **ENGINE_CONSTRAINTS,
    }

    def __init__(
        self,
        damping: float = 0.85,
        *,
        personalization: Any = None,
        weight: str | None = "weight",
        n_vertices: int | None = None,
        tol: float = 1e-10,
        max_iter: int = 1000,
        scheme: str | None = None,
        redundancy: int | None = None,
        staleness: int = 0,
        random_state: Any = None,
        client: Client | None = None,
    ) -> None:
        self.damping = damping
        self.personalization = personalization
        self.weight = weight
        self.n_vertices = n_vertices
        self.tol = tol
        self.max_iter = max_iter
        self.scheme = scheme
        self.redundancy = redundancy
        self.staleness = staleness
        self.random_state = random_state
        self.client = client

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, adjacency: Any, y: None = None) -> PageRank:
        """Compute the PageRank of every vertex.

        Parameters
        ----------
        adjacency : sparse matrix, ndarray, dask array of shape (n, n), networkx graph, or dask dataframe
            ``adjacency[i, j] != 0`` is an edge ``i -> j`` of that weight.
            A :class:`dask.dataframe.DataFrame` is an edge list: one row
            per edge, integer vertex ids from 0 in columns ``src`` and
            ``dst``, the weights in the column named by ``weight``;
            duplicate rows of an edge add up (as duplicate entries of a
            sparse matrix do), and the rows stay on the cluster: the
            statistics and blocks are computed on the workers.
        y : None
            Ignored; for scikit-learn's API.

        Returns
        -------
        self : PageRank

        Raises
        ------
        ValueError
            If the matrix is not square, the graph has no vertices, a weight
            is negative, NaN or infinite, or the personalization is invalid;
            if an edge list has no ``src`` or ``dst`` column, non-integer
            or negative ids, or ids not below ``n_vertices``; if
            ``n_vertices`` does not match a matrix or networkx graph;
            if ``staleness`` is set with a scheme other than ``"asap"``, or
            ``redundancy`` with ``"asap"``.
        AsapError
            With ``scheme="asap"``, when a worker fails or leaves the cluster.
        """
        random_state = check_random_state(self.random_state)
        scheme = self.scheme if self.scheme is not None else config.get("scheme")
        check_asap_parameters(scheme, self.staleness, self.redundancy)
        weighted = self.weight is not None
        nodes = None
        if _is_networkx(adjacency):
            nodes = list(adjacency)
            adjacency = _networkx_adjacency(adjacency, nodes, self.weight)
        if _is_dask_dataframe(adjacency):
            client = get_client(self.client)
            graph = EdgeListGraph(
                client, adjacency, weight=self.weight, n_vertices=self.n_vertices,
                timeout=config.get_timeout("setup-timeout"),
            )
        elif _is_dask_array(adjacency):
            client = get_client(self.client)
            graph = DaskGraph(
                client, adjacency, weighted=weighted, timeout=config.get_timeout("setup-timeout")
            )
        else:  # validated before any cluster is involved
            adjacency = adjacency if sp.issparse(adjacency) else np.asarray(adjacency)
            graph, client = LocalGraph(adjacency, weighted=weighted), None
        if self.n_vertices is not None and self.n_vertices != graph.n_vertices:
            raise ValueError(
                f"n_vertices={self.n_vertices} does not match the graph's {graph.n_vertices} vertices"
            )
        teleport = _teleport(self.personalization, graph.n_vertices, nodes)
        if client is None:
            client = get_client(self.client)
        fitted = self._fit_graph(client, graph, teleport, scheme, random_state)
        if not fitted.converged:
            warnings.warn(
                f"PageRank did not converge after {fitted.n_iter} rounds: the L1 change is "
                f"{fitted.residual:.3g} > tol={self.tol:g}; increase max_iter (now "
                f"{self.max_iter}), or use a scheme that refreshes every block (a straggler "
                "that alone holds a block stalls 'uncoded').",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.scores_ = fitted.scores
        self.n_iter_ = fitted.n_iter
        self.history_ = fitted.history
        return self

    def _fit_graph(
        self, client: Client, graph: LocalGraph | DaskGraph | EdgeListGraph, teleport: np.ndarray, scheme: str, random_state: Any
    ) -> PageRankFit:
        common = {"damping": float(self.damping), "teleport": teleport, "tol": float(self.tol),
                  "max_iter": int(self.max_iter)}
        if scheme == "asap":
            return pagerank_asap(client, graph, staleness=int(self.staleness), **common)
        # The scheme and redundancy resolve as for the linear models.
        scheme, redundancy = QuorumLinearModel._resolve_code(self, client)
        return pagerank_by_rounds(
            client, graph, scheme=scheme, redundancy=redundancy, random_state=random_state, **common
        )


def _is_networkx(obj: Any) -> bool:
    nx = sys.modules.get("networkx")  # no networkx imported: not a networkx graph
    return nx is not None and isinstance(obj, nx.Graph)


def _is_dask_dataframe(obj: Any) -> bool:
    dd = sys.modules.get("dask.dataframe")
    return dd is not None and isinstance(obj, dd.DataFrame)


def _is_dask_array(obj: Any) -> bool:
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(obj, da.Array)


def _networkx_adjacency(G: Any, nodes: list, weight: str | None) -> sp.csr_array:
    import networkx as nx

    if not nodes:
        raise ValueError("the graph is empty: it has no nodes")
    return nx.to_scipy_sparse_array(G, nodelist=nodes, weight=weight, dtype=float, format="csr")


def _teleport(personalization: Any, n: int, nodes: list | None) -> np.ndarray:
    """The personalization as a probability vector over the ``n`` vertices."""
    if personalization is None:
        return np.full(n, 1.0 / n)
    if isinstance(personalization, dict):
        index = {v: i for i, v in enumerate(nodes if nodes is not None else range(n))}
        unknown = [v for v in personalization if v not in index]
        if unknown:
            raise ValueError(f"personalization names vertices not in the graph: {unknown[:5]}")
        p = np.zeros(n)
        for v, w in personalization.items():
            p[index[v]] = w
    else:
        p = np.asarray(personalization, dtype=np.float64)
        if p.shape != (n,):
            raise ValueError(
                f"personalization must have one weight per vertex, shape ({n},), got {p.shape}"
            )
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("personalization weights must be finite and non-negative")
    if p.sum() <= 0:
        raise ValueError("personalization weights must not all be zero")
    return p / p.sum()
