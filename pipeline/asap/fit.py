"""Fitting a linear model in ASAP mode: decentralised gradient tracking with NOTIFY-ACK.

Every worker holds one row partition and a replica of the parameters, takes
one local step per round and averages with its in-peers on a sparse
circulant graph (:func:`~dask_quorum.pipeline.asap.make_graph`); no driver
barrier, no all-to-one reduce. The final model is the average of the
replicas. The algorithm (gradient tracking, exact with a constant step) is
in :mod:`~dask_quorum.pipeline.asap.glm`, the protocol in :mod:`~dask_quorum.pipeline.asap.protocol`, the transport in
:mod:`~dask_quorum.pipeline.asap.peer_run` and :mod:`~dask_quorum.pipeline.asap.worker`, and the control in
:mod:`~dask_quorum.pipeline.asap.driver`.

Bounded staleness: what it does to the answer
---------------------------------------------
With ``staleness = s >= 1`` a worker that has waited for a late in-peer as
long as fresh versions usually take (``quorum.asap.stale-grace``) reduces
with that peer's latest version, up to ``s`` rounds old, instead of
blocking. The effective mixing matrix of such a round is still
row-stochastic (every reduce is an average) but no longer
column-stochastic: a reused version counts twice, a superseded one never.

* For the replicas ``x`` this means the plain average of the replicas is
  not preserved round to round: it drifts towards the fast workers (the
  bias the NOTIFY-ACK handshake exists to prevent), by differences between
  versions of one worker, i.e. of the order of ``s`` times the movement per
  round. At a fixed point stale and fresh versions are equal, so the drift
  changes the path, not the limit.
* Had the trackers ``y`` been averaged the same way, the drift would be
  fatal: each stale reduce adds such a difference to ``sum_i y_i`` and
  nothing removes it again, so the trackers no longer sum to the gradients
  and the fit converges to a wrong point or diverges (it did, in our first
  trials). The trackers therefore travel as running sums of *mass*
  (:mod:`~dask_quorum.pipeline.asap.glm`): a reused version adds nothing, a superseded one
  arrives with the next, and ``sum_i y_i`` plus the mass in flight equals
  ``sum_i grad f_i`` exactly, in any interleaving. At any fixed point no
  mass is in flight and the replicas agree, so the average gradient is
  zero: **the stale fit converges to the exact optimum, not to a biased
  point** (the same device as in ASY-SONATA: Tian, Sun & Scutari, IEEE TAC
  2020).

When does it converge? Asynchronous gradient tracking with delays bounded
by ``s`` converges linearly for a step small enough against ``s`` and the
spectral gap (Tian et al.); the step here is the strict one
(``gap**2 / L``), which converged in every test and benchmark, in more
rounds than strict NOTIFY-ACK when stale versions are used often (each
carries older information). Lower ``quorum.asap.step-scale`` if a stale fit
oscillates. ``history_["stale_reduces"]`` counts the stale versions used
per round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from time import time
from typing import Any

import numpy as np
import xarray as xr
from distributed import Client

from dask_quorum import config

from ..cluster import worker_addresses
from ..data import place_one_per_worker, sample_rows
from ..engine import asap_to_dataset, compute_within, row_partitions
from ..engine.fit import on_cluster
from .driver import run_asap
from .glm import GLMSpec, TrackingBuilder, curvature_bound, curvature_sample
from .graph import make_graph
from .worker import InMemory

logger = logging.getLogger(__name__)

__all__ = ["AsapFit", "fit_asap"]


@dataclass
class AsapFit:
    """Result of :func:`fit_asap`.

    Attributes
    ----------
    x : ndarray
        The average of the workers' final replicas.
    n_iter : int
        Rounds run.
    converged : bool
        Whether every worker's tracked gradient reached ``tol``.
    history : xarray.Dataset
    """

    x: np.ndarray
    n_iter: int
    converged: bool
    history: xr.Dataset


def fit_asap(
    client: Client,
    X: Any,
    y: np.ndarray | None,
    partial: Callable[[np.ndarray, Any], np.ndarray],
    objective: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    l2: float,
    staleness: int,
    random_state: np.random.RandomState,
    max_iter: int,
    tol: float,
    sample_weight: np.ndarray | None = None,
) -> AsapFit:
    """Minimise ``objective`` by decentralised gradient tracking on ``client``'s workers.

    Parameters
    ----------
    client : distributed.Client
    X, y : array-like
        Split into one contiguous row partition per worker. Or ``X`` is
        rows on the cluster (:class:`~dask_quorum.pipeline.data.DaskRows`)
        and ``y`` None: partition ``i`` is computed on the cluster and
        copied to worker ``i``, whose program reads it from its memory
        (:class:`~dask_quorum.pipeline.asap.InMemory`); only the curvature
        sample (``quorum.asap.curvature-rows`` rows per parameter block)
        comes to the driver.
    partial, objective
        As for :func:`~dask_quorum.pipeline.engine.fit_by_rounds`; ``partial``
        must describe a linear model (``GLMPartial``).
    x0 : ndarray
        Starting parameters of every replica.
    l2 : float
        Penalty strength in ``objective`` (for the curvature).
    staleness : int
        0: strict NOTIFY-ACK (exact). ``s >= 1``: a worker may run ``s``
        rounds ahead of an in-peer (see the module docstring for the bias).
    random_state : numpy.random.RandomState
        Draws the curvature sample.
    max_iter : int
        Rounds at most.
    tol : float
        Stop when every worker's tracked gradient has no component above ``tol``.
    sample_weight : ndarray of shape (n_samples,), optional
        Row weights of an array ``X`` (``partial`` reads ``(X_j, y_j, w_j)``).

    Returns
    -------
    AsapFit
    """
    started = time()
    workers = worker_addresses(client)
    n = len(workers)
    graph = make_graph(n, config.get("asap.degree"), kind=config.get("asap.graph"))
    # Hessian blocks are (n_features + intercept) square, one per output.
    block = int(getattr(partial, "n_features", X.shape[1])) + int(bool(getattr(partial, "fit_intercept", True)))
    rows = int(config.get("asap.curvature-rows")) * block
    if on_cluster(X):
        sample = _cluster_sample(client, X, rows, random_state)
    else:
        sample = curvature_sample(X, y, rows, random_state)
    # the objective's normaliser: the rows, or the sum of their weights
    spec = GLMSpec(partial, objective, float(l2), getattr(objective, "n_samples", int(X.shape[0])), n)
    scale = float(config.get("asap.step-scale"))
    if not scale > 0:
        raise ValueError(f"quorum.asap.step-scale must be positive, got {scale!r}")
    # Curvature relative to the preconditioner is at most L (asap_glm), and
    # gradient tracking is stable for alpha * L of the order of gap**2.
    alpha = scale * graph.spectral_gap**2 / curvature_bound(str(getattr(partial, "loss", "")))
    dtype = str(config.get("asap.message-dtype"))
    if dtype not in ("float64", "float32"):
        raise ValueError(f"quorum.asap.message-dtype must be 'float64' or 'float32', got {dtype!r}")
    builder = TrackingBuilder(
        spec, sample, np.asarray(x0, dtype=np.float64), alpha,
        int(config.get("asap.curvature-every")), int(config.get("asap.max-dense")), dtype,
    )
    placed = []
    if on_cluster(X):
        placed = place_one_per_worker(client, X, workers, config.get_timeout("setup-timeout"))
        payloads: list[Any] = [InMemory(f.key) for f in placed]
    else:
        payloads = row_partitions(X, y, n, sample_weight)
    try:
        result = run_asap(
            client, builder, payloads,
            graph=graph, staleness=staleness, max_rounds=int(max_iter), tol=float(tol), workers=workers,
            label=f"asap, {getattr(partial, 'loss', 'linear')} loss",
        )
    finally:
        for f in placed:
            f.release()
    keep_params = bool(config.get("history.keep-params"))
    history = asap_to_dataset(result, keep_params=keep_params, started=started, attrs={"step": alpha})
    x = result.final.mean(axis=0)
    return AsapFit(x=x, n_iter=result.n_rounds, converged=result.converged, history=history)


def _cluster_sample(client: Client, rows: Any, size: int, random_state: np.random.RandomState) -> tuple[Any, Any]:
    """The curvature sample of rows on the cluster: the same draw as :func:`curvature_sample`, computed there."""
    n = int(rows.n_samples)
    index = np.arange(n) if size >= n else np.sort(random_state.choice(n, size=size, replace=False))
    (block,) = compute_within(
        client, [sample_rows(rows, index)], config.get_timeout("setup-timeout"), "the curvature sample"
    )
    return block
