"""PageRank by coded rounds: power iteration whose mat-vecs tolerate stragglers.

The rank vector solves ``x = F(x)`` with the affine Google map

    F(v) = damping * (P^T v + (sum of v over dangling vertices) * p) + (1 - damping) * p

(``P = D^-1 A`` row-normalised, ``p`` the personalization, which also
receives the rank of dangling vertices: networkx's rules). ``P^T v`` is the
sum over source blocks ``b`` of ``P_b^T v_b``, so one coded round
(:class:`~dask_quorum.pipeline.engine.CodedSession`) computes it from the
first sufficient set of workers.

Exact accounting of inexact rounds
----------------------------------
An approximate code (``uncoded``, ``expander``, ``heterogeneous``) decodes
``sum_b c_b P_b^T v_b`` with per-block coefficients ``c = B_S^T a`` that are
not all 1, so a plain power iteration on such sums would converge to a
wrong vector, or not at all. :class:`RankAccount` keeps the iteration exact
instead of hoping the errors average out:

* every partition also returns its one-hot indicator, so a round decodes
  the coefficients ``c`` it applied next to the flow (:func:`coded_block_step`);
* the driver keeps ``u``, the rank already *accounted for*, and the flow
  ``y = P^T u``, exactly. Each round ships the unaccounted part
  ``delta = x - u`` and, having decoded ``P^T (c * delta)`` and ``c``, adds
  ``step * c * delta`` to ``u`` and ``step * P^T (c * delta)`` to ``y``,
  with ``step = 1 / max(1, max c)`` so that no block is over-relaxed;
* the next iterate is ``x = F(u)``.

This is an asynchronous (chaotic) relaxation of the linear system
``(I - damping M) x = (1 - damping) p``, ``M`` the column-stochastic Google
matrix, which converges to the exact PageRank vector for relaxation
coefficients in ``[0, 1]`` as long as every block keeps being refreshed
(Chazan & Miranker 1969; Kollias, Gallopoulos & Szyld 2006 for PageRank).
A round that leaves a block out (``c_b = 0``) only delays that block. The
residual reported per round, ``||F(u) - u||_1``, is the L1 change one
exact power-iteration step would make from ``u``, computed exactly: it is
honest under any code, and ``||F(u) - x*||_1 <= damping / (1 - damping) *
residual``. With an exact code (``sync``, ``frc``, ``cyclic``) ``c = 1``,
``u`` is the previous iterate and the iteration *is* networkx's power
iteration. A block that a persistent straggler alone holds (``uncoded``)
is never refreshed: the residual then stays up and the fit says so.

The pieces are separate so that other engines can reuse them:
:meth:`LocalGraph.blocks <dask_quorum.pipeline.pagerank.LocalGraph.blocks>`
(or :class:`~dask_quorum.pipeline.pagerank.DaskGraph`'s) cuts the adjacency
into source blocks; :func:`block_step` is the per-block step, ``P_b^T v_b``,
on any vector (an asynchronous engine such as ASAP can run it on a worker's
own replica of the rank vector); :class:`GoogleMap` is the update, here on
the driver (ASAP's block owners apply it to their own blocks,
:mod:`~dask_quorum.pipeline.asap.pagerank`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np
import xarray as xr
from distributed import Client

from dask_quorum import config

from ..engine import ADAPTIVE_SCHEMES, CodedSession, OnlineAdapter, initial_code
from .blocks import SourceBlock
from .edges import EdgeListGraph
from .graphs import DaskGraph, LocalGraph

logger = logging.getLogger(__name__)

__all__ = ["GoogleMap", "PageRankFit", "RankAccount", "block_step", "coded_block_step", "pagerank_by_rounds"]

#: Decoded block coefficients below this are treated as negative (a
#: least-squares decode of very few responders); such a round is not applied.
NEGATIVE_COEFF = -1e-9


def block_step(v: np.ndarray, block: SourceBlock) -> np.ndarray:
    """The per-block step: the rank that flows out of a block's sources.

    Parameters
    ----------
    v : ndarray of shape (n_vertices,)
        A rank vector (or a difference of two); only
        ``v[block.start:block.stop]`` is read.
    block : SourceBlock

    Returns
    -------
    ndarray of shape (n_vertices,)
        ``P_b^T v[start:stop]``: what the block's vertices send along their
        out-edges. Summed over all blocks this is ``P^T v``.
    """
    return block.transition.T @ v[block.start : block.stop]


def coded_block_step(v: np.ndarray, block: SourceBlock) -> np.ndarray:
    """What one partition contributes to a round: :func:`block_step` and its indicator.

    Returns ``[block_step(v, block), e_b]`` (length ``n_vertices + n_blocks``):
    decoded over the responders, the tail is the coefficient vector
    ``c = B_S^T a`` the round applied to each block.
    """
    n = block.n_vertices
    out = np.zeros(n + block.n_blocks)
    out[:n] = block_step(v, block)
    out[n + block.index] = 1.0
    return out


@dataclass(frozen=True)
class GoogleMap:
    """The affine PageRank map ``F`` (see the module docstring).

    Attributes
    ----------
    damping : float
        In (0, 1).
    teleport : ndarray of shape (n_vertices,)
        The personalization, non-negative, summing to 1; dangling vertices
        send their rank along it too.
    dangling : ndarray of bool, shape (n_vertices,)
        Vertices without out-edges.
    """

    damping: float
    teleport: np.ndarray
    dangling: np.ndarray

    def __call__(self, flow: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``F(v)`` given ``flow = P^T v``."""
        return self.from_flow(flow, self.lost(v))

    def lost(self, v: np.ndarray) -> float:
        """The rank of ``v`` on the dangling vertices, which goes along the personalization."""
        return float(v[self.dangling].sum())

    def from_flow(self, flow: np.ndarray, lost: float) -> np.ndarray:
        """``F`` given the rank that flows along the edges and the ``lost`` rank of the dangling vertices.

        On a map of one block of vertices (``teleport`` and ``dangling`` the
        block's slices) this is the block of ``F(v)``, given the block of
        ``P^T v`` and the dangling rank of the whole ``v``: what the block's
        owner computes in :mod:`~dask_quorum.pipeline.asap.pagerank`.
        """
        return self.damping * (flow + lost * self.teleport) + (1.0 - self.damping) * self.teleport


class RankAccount:
    """Driver state of the power iteration under inexact rounds.

    Holds four vectors of ``n_vertices`` floats: the iterate ``x``, the
    accounted rank ``u``, the flow ``y = P^T u`` and the teleport vector.

    Parameters
    ----------
    google : GoogleMap
    bounds : ndarray of shape (n_blocks + 1,)
        Vertex bounds of the source blocks.
    x0 : ndarray of shape (n_vertices,)
        Starting iterate.
    """

    def __init__(self, google: GoogleMap, bounds: np.ndarray, x0: np.ndarray) -> None:
        self.google = google
        self.sizes = np.diff(bounds)
        self.x = np.array(x0, dtype=np.float64)
        self.u = np.zeros_like(self.x)
        self.y = np.zeros_like(self.x)
        self.residual = float(np.abs(self.x).sum())

    @property
    def n_vertices(self) -> int:
        return self.x.size

    def delta(self) -> np.ndarray:
        """The rank not accounted for yet: what the next round multiplies."""
        return self.x - self.u

    def absorb(self, decoded: np.ndarray, delta: np.ndarray) -> float:
        """Apply a round's decoded ``[P^T (c * delta), c]``; return the step taken.

        ``step * c`` is applied, with ``step = 1 / max(1, max c)``, or 0 (the
        round is dropped) when some ``c_b`` is negative.
        """
        n = self.n_vertices
        flow, coeffs = decoded[:n], decoded[n:]
        if coeffs.min() < NEGATIVE_COEFF:
            logger.debug("round dropped: decoded block coefficients %s", coeffs)
            return 0.0
        step = 1.0 / max(1.0, float(coeffs.max()))
        self.u += np.repeat(step * coeffs, self.sizes) * delta
        self.y += step * flow
        self.x = self.google(self.y, self.u)
        self.residual = float(np.abs(self.x - self.u).sum())
        return step

    def scores(self) -> np.ndarray:
        """The current iterate, normalised to sum to 1."""
        return self.x / self.x.sum()


@dataclass
class PageRankFit:
    """Result of :func:`pagerank_by_rounds`."""

    scores: np.ndarray
    n_iter: int
    converged: bool
    residual: float
    history: xr.Dataset


def pagerank_by_rounds(
    client: Client,
    graph: LocalGraph | DaskGraph | EdgeListGraph,
    *,
    damping: float,
    teleport: np.ndarray,
    tol: float,
    max_iter: int,
    scheme: str,
    redundancy: int,
    random_state: Any,
) -> PageRankFit:
    """PageRank of ``graph`` by coded rounds on ``client``.

    Parameters
    ----------
    client : distributed.Client
    graph : LocalGraph, DaskGraph or EdgeListGraph
        Validated adjacency; cut into one source block per partition of
        the code.
    damping : float
        In (0, 1).
    teleport : ndarray of shape (n_vertices,)
        Personalization, non-negative, summing to 1.
    tol : float
        Stop once the residual ``||F(u) - u||_1`` is at most ``tol``.
    max_iter : int
        At most this many rounds.
    scheme, redundancy, random_state
        The code (see :func:`~dask_quorum.pipeline.coding.make_code`), or
        ``"heterogeneous"`` / ``"auto"``, adapted to a straggler model
        re-fitted during the fit.

    Returns
    -------
    PageRankFit
        ``history`` per round: ``residual``, ``step`` and ``min_coeff`` (the
        smallest block coefficient the round decoded) next to the columns of
        :func:`~dask_quorum.pipeline.engine.history.rounds_to_dataset`; with
        ``quorum.history.keep-params`` also ``params`` (round x vertex).
    """
    started = perf_counter()
    keep_params = bool(config.get("history.keep-params"))
    factory = None
    if scheme in ADAPTIVE_SCHEMES:
        factory = lambda n: initial_code(scheme, n, redundancy, random_state)
    google = GoogleMap(damping, teleport, graph.dangling)
    n = graph.n_vertices
    residuals, steps, min_coeffs, params = [], [], [], []
    # client.as_current(): the engine's waits on futures (distributed.wait) go through the current client
    with client.as_current(), CodedSession(
        client, scheme=scheme, redundancy=redundancy, random_state=random_state, code_factory=factory
    ) as session:
        k = session.n_partitions
        blocks, units = graph.blocks(k)
        session.place(blocks, units=units)
        adapter = None
        if factory is not None:
            adapter = OnlineAdapter(
                session, scheme=scheme, redundancy=redundancy, random_state=random_state
            )
        account = RankAccount(google, graph.bounds(k), np.full(n, 1.0 / n))
        while len(residuals) < max_iter and not (residuals and residuals[-1] <= tol):
            delta = account.delta()
            decoded = session.round(coded_block_step, delta)
            steps.append(account.absorb(decoded, delta))
            residuals.append(account.residual)
            min_coeffs.append(float(decoded[n:].min()))
            if keep_params:
                params.append(account.scores())
            if adapter is not None:
                adapter.after_round(len(session.records) - 1)
        variables: dict[str, Any] = {
            "residual": np.asarray(residuals),
            "step": np.asarray(steps),
            "min_coeff": np.asarray(min_coeffs),
        }
        if keep_params:
            variables["params"] = (("round", "vertex"), np.asarray(params))
        history = session.history(
            variables,
            scheme=scheme,
            started=started,
            switches=adapter.switches if adapter is not None else (),
            attrs={"n_vertices": n, "n_edges": graph.n_edges, "damping": damping, "tol": tol},
        )
    converged = bool(residuals) and residuals[-1] <= tol
    return PageRankFit(account.scores(), len(residuals), converged, account.residual, history)

