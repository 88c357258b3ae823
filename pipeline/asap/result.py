"""What an ASAP run returns: every worker's history (:class:`AsapResult`), and how it fails.

The driver (:func:`~dask_quorum.pipeline.asap.run_asap`) collects one
history per worker and stacks them, round by round, into an
:class:`AsapResult` (:func:`stack_histories`). A worker that fails, leaves
or cannot reach a peer ends the run with :class:`AsapError`; no progress
within a deadline ends it with :class:`AsapTimeoutError`.
:func:`consensus_error` measures how far the workers' replicas are apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from .graph import PeerGraph

logger = logging.getLogger(__name__)

__all__ = ["AsapError", "AsapResult", "AsapTimeoutError", "consensus_error", "stack_histories"]


class AsapError(RuntimeError):
    """A worker of an ASAP fit failed, left, or could not reach a peer."""


class AsapTimeoutError(TimeoutError):
    """An ASAP fit made no progress within its deadline."""


@dataclass
class AsapResult:
    """Every worker's history of an ASAP run.

    Attributes
    ----------
    workers : list of str
        Addresses, by graph position.
    graph : PeerGraph
    staleness : int
    started : float
        ``time.time()`` when the loops were released.
    converged : bool
        Whether the run stopped on the residual test rather than ``max_rounds``.
    snapshots : ndarray of shape (n_rounds, n_workers, ...)
        Each worker's snapshot (replica) after each round.
    values, residuals, finished, compute, wait, sent, received : ndarray of shape (n_rounds, n_workers)
        Local objective, residual, ``time.time()`` at the end of the round,
        step seconds (injected slowdown included), seconds waited for the
        in-peers, payload bytes of this round's version sent / consumed.
    consumed : list of ndarray
        Per worker, ``(round, peer, version)`` of every version it reduced with.
    final : ndarray of shape (n_workers, ...)
        Each worker's last snapshot.
    """

    workers: list[str]
    graph: PeerGraph
    staleness: int
    started: float
    converged: bool
    snapshots: np.ndarray
    values: np.ndarray
    residuals: np.ndarray
    finished: np.ndarray
    compute: np.ndarray
    wait: np.ndarray
    sent: np.ndarray
    received: np.ndarray
    consumed: list[np.ndarray]
    final: np.ndarray

    @property
    def n_rounds(self) -> int:
        return int(self.values.shape[0])


def consensus_error(snapshots: np.ndarray) -> float:
    """Largest distance of a worker's snapshot from the workers' average.

    Parameters
    ----------
    snapshots : ndarray of shape (n_workers, ...)
        One round's snapshots.
    """
    flat = np.asarray(snapshots, dtype=float).reshape(len(snapshots), -1)
    return float(np.linalg.norm(flat - flat.mean(axis=0), axis=1).max())


def stack_histories(
    workers: list[str], graph: PeerGraph, staleness: int, started: float, converged: bool,
    histories: list[dict[str, Any]],
) -> AsapResult:
    """The :class:`AsapResult` of the workers' collected histories (one per worker, by graph position).

    Raises
    ------
    AsapError
        If the workers ended at different rounds.
    """
    rounds = {len(h["values"]) for h in histories}
    if len(rounds) != 1:
        raise AsapError(f"the workers ended at different rounds: {sorted(rounds)}")

    def stack(name: str) -> np.ndarray:
        return np.stack([h[name] for h in histories], axis=1)

    return AsapResult(
        workers=workers,
        graph=graph,
        staleness=staleness,
        started=started,
        converged=converged,
        snapshots=stack("snapshots"),
        values=stack("values"),
        residuals=stack("residuals"),
        finished=stack("finished"),
        compute=stack("compute"),
        wait=stack("wait"),
        sent=stack("sent"),
        received=stack("received"),
        consumed=[h["consumed"] for h in histories],
        final=np.stack([h["final"] for h in histories]),
    )
