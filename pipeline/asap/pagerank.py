"""PageRank in ASAP mode: asynchronous block iteration, no driver barrier.

Worker ``k`` owns the ranks ``x_K`` of a block ``K`` of target vertices and
holds the in-edges of ``K`` (a :class:`~dask_quorum.pipeline.pagerank.TargetBlock`: the
columns ``K`` of the transition matrix ``P``). Every round it sends its
block and the block's dangling mass (one number) to every other worker (a
complete peer graph) and recomputes its block from the freshest blocks it
holds, with the Google map of :mod:`~dask_quorum.pipeline.pagerank.power`
(:class:`~dask_quorum.pipeline.pagerank.GoogleMap`, on the block)::

    x_K <- damping * ((P^T x)_K + lost * p_K) + (1 - damping) * p_K

(``lost`` the sum of ``x`` over the dangling vertices, ``p`` the
personalization: networkx's rules). The engine is the one of the linear
models' ASAP mode (:func:`~dask_quorum.pipeline.asap.run_asap`):
messages go from worker to worker, the driver only extends the workers'
lease and polls a small status.

Why it converges to the same vector
-----------------------------------
With strict NOTIFY-ACK (``staleness=0``) round ``t`` of every worker reads
round ``t``'s block of every other worker: the workers compute exactly the
synchronous power iteration, networkx's iterates. With ``staleness = s >=
1`` a worker may read a peer's block up to ``s`` rounds old: a chaotic
(asynchronous) relaxation of ``x = F(x)``. ``F`` is affine with linear part
``damping * M``, ``M`` the column-stochastic Google matrix, non-negative
with spectral radius ``damping < 1``; such an iteration converges to the
unique fixed point for bounded delays whatever the interleaving (Chazan &
Miranker 1969, for ``rho(|A|) < 1``; Kollias, Gallopoulos & Szyld 2006 for
PageRank; Bertsekas & Tsitsiklis 1989, ch. 6).

An honest residual
------------------
Each worker reports the L1 change of its block per round. For round ``t``
the history's ``residual`` is

    R(t) = sum_J sum_{u = v_J(t)}^{t} change_J(u)

with ``v_J(t)`` the oldest version of block ``J`` any worker read in round
``t``: the L1 distance between the blocks every worker used and the blocks
it produced, summed. As ``F_K(x') - x'_K = damping * M_K (x' - z_K)`` (``x'``
the concatenated result of round ``t``, ``z_K`` what worker ``K`` read) and
``M`` is column-stochastic, ``||F(x') - x'||_1 <= damping * R(t)``, so
``||x' - x*||_1 <= damping / (1 - damping) * R(t)``: the same guarantee as
the coded schemes' residual (:mod:`~dask_quorum.pipeline.pagerank.power`). Under
strict NOTIFY-ACK ``v_J(t) = t`` and ``R(t)`` is the L1 change of one
power-iteration step, exactly the coded residual. The workers stop when
``n_workers`` times their last ``s + 1`` block changes are at most ``tol``
each (then ``R <= tol``), at most ``quorum.asap.pagerank-lease`` rounds
after the driver sees it; the driver recomputes ``R`` from the collected
history, and the fit counts as converged only when the last ``R`` is at
most ``tol``. The scores are the concatenated blocks, normalised to sum to
1 (an asynchronous iteration does not keep the mass at exactly 1).

The driver holds O(n_vertices) numbers: the personalization, the dangling
mask and the final blocks (and, with ``quorum.history.keep-params``, one
rank vector per round). The in-edges go from the driver to the workers for
a SciPy matrix, and never leave the cluster for a dask array or a dask
dataframe edge list
(:meth:`~dask_quorum.pipeline.pagerank.DaskGraph.target_blocks` and
:meth:`~dask_quorum.pipeline.pagerank.EdgeListGraph.target_blocks` build each block on its
worker; the engine reads it from that worker's memory).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from time import time
from typing import Any

import dask
import numpy as np
from distributed import Client

from dask_quorum import config

from ..cluster import worker_addresses
from ..engine import asap_to_dataset, wait_in_memory
from ..pagerank import (
    DaskGraph,
    EdgeListGraph,
    GoogleMap,
    LocalGraph,
    PageRankFit,
    TargetBlock,
)
from .driver import run_asap
from .graph import make_graph
from .worker import InMemory

logger = logging.getLogger(__name__)

__all__ = ["BlockRankBuilder", "BlockRankProgram", "honest_residuals", "pagerank_asap"]


class BlockRankProgram:
    """One worker's block of the rank vector (the ASAP program interface of :mod:`~dask_quorum.pipeline.asap.peer_run`).

    Parameters
    ----------
    block : TargetBlock
        The in-edges of the block this worker owns.
    bounds : ndarray of shape (n_workers + 1,)
        Vertex bounds of every worker's block.
    teleport, dangling : ndarray
        The personalization and the dangling mask of this block's vertices.
    damping : float
        With ``teleport`` and ``dangling``, the block's slice of the Google
        map (:class:`~dask_quorum.pipeline.pagerank.GoogleMap`).
    window : int
        ``staleness + 1``: how many recent block changes :meth:`residual` adds up.
    width : int
        Length of :meth:`result` (the largest block: the results of all
        workers stack into one array).
    keep_blocks : bool
        Whether :meth:`snapshot` is the block (for ``keep-params``) or just
        its last change.
    """

    def __init__(
        self,
        block: TargetBlock,
        bounds: np.ndarray,
        teleport: np.ndarray,
        dangling: np.ndarray,
        *,
        damping: float,
        window: int,
        width: int,
        keep_blocks: bool,
    ) -> None:
        self.block = block
        self.bounds = bounds
        self.google = GoogleMap(damping, teleport, dangling)
        self.width = width
        self.keep_blocks = keep_blocks
        self.x = np.full(block.stop - block.start, 1.0 / block.n_vertices)
        self.full = np.empty(block.n_vertices)  # the rank vector assembled from the blocks
        self.changes: deque[float] = deque(maxlen=window)
        self.value = 0.0  # this round's L1 change of the block
        self.units = block.units

    def message(self) -> np.ndarray:
        """The block and its dangling mass, ``[x_K, sum of x_K over dangling vertices]``."""
        return np.r_[self.x, self.google.lost(self.x)]

    def step(self, own: np.ndarray, received: Mapping[int, np.ndarray]) -> None:
        """One Google-map step on the own block from the freshest blocks held."""
        messages = {**received, self.block.index: own}
        lost = 0.0
        for j in sorted(messages):  # a fixed order: the same sum on every worker
            self.full[self.bounds[j] : self.bounds[j + 1]] = messages[j][:-1]
            lost += float(messages[j][-1])
        new = self.google.from_flow(self.block.inflow @ self.full, lost)
        self.value = float(np.abs(new - self.x).sum())
        self.changes.append(self.value)
        self.x = new

    def residual(self) -> float:
        """``n_workers`` times the block's changes over the last ``staleness + 1`` rounds."""
        return self.block.n_blocks * float(sum(self.changes)) if self.changes else np.inf

    def snapshot(self) -> np.ndarray:
        return self.result() if self.keep_blocks else np.array([self.value])

    def result(self) -> np.ndarray:
        """The block, padded with NaN to ``width``."""
        out = np.full(self.width, np.nan)
        out[: self.x.size] = self.x
        return out


@dataclass(frozen=True)
class BlockRankBuilder:
    """Builds a :class:`BlockRankProgram` on the worker from its :class:`TargetBlock`.

    Holds the O(n_vertices) vectors every worker needs a slice of.
    """

    damping: float
    bounds: np.ndarray
    teleport: np.ndarray
    dangling: np.ndarray
    staleness: int
    keep_blocks: bool

    def build(self, index: int, payload: Any, in_peers: Sequence[int]) -> BlockRankProgram:
        if not isinstance(payload, TargetBlock):
            raise TypeError(f"worker {index} got a {type(payload).__name__}, not a TargetBlock")
        lo, hi = int(self.bounds[index]), int(self.bounds[index + 1])
        if (payload.index, payload.start, payload.stop) != (index, lo, hi):
            raise ValueError(
                f"worker {index} got block {payload.index} of vertices {payload.start}..{payload.stop}, "
                f"expected vertices {lo}..{hi}"
            )
        return BlockRankProgram(
            payload, self.bounds, self.teleport[lo:hi], self.dangling[lo:hi],
            damping=self.damping, window=self.staleness + 1,
            width=int(np.diff(self.bounds).max()), keep_blocks=self.keep_blocks,
        )


def honest_residuals(changes: np.ndarray, consumed: Sequence[np.ndarray]) -> np.ndarray:
    """``R(t)`` of the module docstring for every round.

    Parameters
    ----------
    changes : ndarray of shape (n_rounds, n_workers)
        L1 change of every block in every round.
    consumed : sequence of ndarray of shape (n, 3)
        Per worker, ``(round, peer, version)`` of every block it read.

    Returns
    -------
    ndarray of shape (n_rounds,)
    """
    T, n = changes.shape
    oldest = np.repeat(np.arange(T)[:, None], n, axis=1)  # a worker reads its own block fresh
    for log in consumed:
        log = log[log[:, 0] < T]
        np.minimum.at(oldest, (log[:, 0], log[:, 1]), log[:, 2])
    lag = np.arange(T)[:, None] - oldest  # at most the staleness
    total = np.zeros(T)
    for back in range(int(lag.max(initial=0)) + 1):  # sums without cancellation, down to tiny changes
        shifted = np.zeros_like(changes)
        shifted[back:] = changes[: T - back]
        total += np.where(lag >= back, shifted, 0.0).sum(axis=1)
    return total


def _concatenate(blocks: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The rank vector from the workers' padded blocks, ``(n_workers, width)``."""
    return np.concatenate([blocks[k, : hi - lo] for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))])


def pagerank_asap(
    client: Client,
    graph: LocalGraph | DaskGraph | EdgeListGraph,
    *,
    damping: float,
    teleport: np.ndarray,
    tol: float,
    max_iter: int,
    staleness: int,
) -> PageRankFit:
    """PageRank of ``graph`` by asynchronous block iteration on ``client``'s workers.

    Parameters
    ----------
    client : distributed.Client
    graph : LocalGraph, DaskGraph or EdgeListGraph
        Validated adjacency; cut into one target block per worker.
    damping : float
        In (0, 1).
    teleport : ndarray of shape (n_vertices,)
        Personalization, non-negative, summing to 1.
    tol : float
        Stop once the residual ``R`` (module docstring) is at most ``tol``.
    max_iter : int
        At most this many rounds.
    staleness : int
        0: strict NOTIFY-ACK, the synchronous power iteration. ``s >= 1``: a
        worker may read blocks up to ``s`` rounds old.

    Returns
    -------
    PageRankFit
        ``history`` per round: ``residual`` (``R``), ``block_change`` (round
        x worker) and the columns of
        :func:`~dask_quorum.pipeline.engine.asap_to_dataset` that apply to
        blocks (times, bytes, ``stale_reduces``, per-worker ``compute`` and
        ``wait``); with ``quorum.history.keep-params`` also ``params``
        (round x vertex, every round's vector normalised to sum 1).

    Raises
    ------
    AsapError, AsapTimeoutError
        From the engine: a worker failed, left, or made no progress.
    TimeoutError
        If the target blocks of a dask array or edge list are not built within
        ``quorum.setup-timeout``.
    """
    started = time()
    workers = worker_addresses(client)
    n = len(workers)
    keep_params = bool(config.get("history.keep-params"))
    bounds = graph.target_bounds(n)
    futures = []
    try:
        if isinstance(graph, (DaskGraph, EdgeListGraph)):  # built on the workers
            futures = graph.target_blocks(n, workers)
            with client.as_current():  # distributed.wait (in _built) waits through the current client
                payloads: list[Any] = [InMemory(f.key) for f in _built(futures)]
        else:
            payloads = graph.target_blocks(n)
        builder = BlockRankBuilder(float(damping), bounds, teleport, graph.dangling, int(staleness), keep_params)
        with dask.config.set({"quorum.asap.lease": config.get("asap.pagerank-lease")}):
            result = run_asap(
                client, builder, payloads,
                graph=make_graph(n, offsets=range(1, n)), staleness=int(staleness), max_rounds=int(max_iter),
                tol=float(tol), workers=workers, label="asap PageRank", error="residual",
            )
    finally:
        if futures:
            client.cancel(futures)
    residuals = honest_residuals(result.values, result.consumed)
    history = asap_to_dataset(
        result, started=started,
        attrs={"n_vertices": graph.n_vertices, "n_edges": graph.n_edges, "damping": damping, "tol": tol},
    ).drop_vars(["loss", "consensus_error"])  # replicas' numbers: blocks are not replicas
    history["residual"] = ("round", residuals)
    history["block_change"] = (("round", "worker"), result.values)
    if keep_params:
        per_round = np.stack([_concatenate(blocks, bounds) for blocks in result.snapshots])
        history["params"] = (("round", "vertex"), per_round / per_round.sum(axis=1, keepdims=True))
    x = _concatenate(result.final, bounds)
    residual = float(residuals[-1])
    history.attrs["converged"] = int(residual <= tol)
    logger.info("asap PageRank: %d rounds, residual %.3g (tol %g)", result.n_rounds, residual, tol)
    return PageRankFit(x / x.sum(), result.n_rounds, residual <= tol, residual, history)


def _built(futures: list[Any]) -> list[Any]:
    """``futures`` once all are in memory; raise their error, or TimeoutError after ``quorum.setup-timeout``."""
    timeout = config.get_timeout("setup-timeout")
    return wait_in_memory(futures, timeout, "the target blocks were not built", " (quorum.setup-timeout)")
