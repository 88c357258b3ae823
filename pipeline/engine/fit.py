"""Fitting by coded rounds: place row partitions, optimise, record history.

This is the one entry point the estimators use; everything that talks to
Dask during a fit happens below it. The rows come either from the driver
(NumPy, SciPy: split by :func:`row_partitions` and scattered) or from a
dask collection: then ``X`` is anything with a ``partition_source(client,
n_partitions)`` method (:class:`~dask_quorum.pipeline.data.DaskRows`) and
the partitions are built on the workers, with the same bounds.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np
import xarray as xr
from distributed import Client

from dask_quorum import config

from .adapt import OnlineAdapter
from .choice import ADAPTIVE_SCHEMES, initial_code
from .session import CodedSession
from .solver import SolverResult, lbfgs

logger = logging.getLogger(__name__)


def row_partitions(
    X: Any, y: np.ndarray, n_partitions: int, sample_weight: np.ndarray | None = None
) -> list[tuple[Any, ...]]:
    """Split ``(X, y)`` (and ``sample_weight``) into ``n_partitions`` contiguous row blocks.

    Some may be empty. Blocks are ``(X_j, y_j)``, or ``(X_j, y_j, w_j)``
    with weights.
    """
    bounds = np.linspace(0, X.shape[0], n_partitions + 1).round().astype(int)
    if sample_weight is None:
        return [(X[a:b], y[a:b]) for a, b in itertools.pairwise(bounds)]
    return [(X[a:b], y[a:b], sample_weight[a:b]) for a, b in itertools.pairwise(bounds)]


def on_cluster(X: Any) -> bool:
    """Whether ``X`` stands for rows that live on the cluster (it has ``partition_source``)."""
    return callable(getattr(X, "partition_source", None))


def round_bytes(record: Any, n_workers: int, params_bytes: int, result_bytes: int) -> int:
    """Payload bytes of one driver-centred round: parameters shipped plus results returned.

    The parameters go to every worker of the round that was idle when it
    started (busy ones get them later, if at all); one result comes back
    per responder. Message headers, task specs and the scheduler's relaying
    are not counted (nor are ASAP's): payload only.
    """
    members = len(record.members) if getattr(record, "members", ()) else n_workers
    shipped = max(members - len(record.busy), len(record.responders))
    return int(params_bytes * shipped + result_bytes * len(record.responders))


@dataclass
class RoundsFit:
    """Result of :func:`fit_by_rounds`: the solver's result and the history."""

    result: SolverResult
    history: xr.Dataset


def fit_by_rounds(
    client: Client,
    X: Any,
    y: np.ndarray | None,
    partial: Callable[[np.ndarray, Any], np.ndarray],
    objective: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    scheme: str,
    redundancy: int,
    random_state: Any,
    max_iter: int,
    tol: float,
    sample_weight: np.ndarray | None = None,
) -> RoundsFit:
    """Minimise a sum-over-rows objective with coded rounds on ``client``.

    Parameters
    ----------
    client : distributed.Client
    X, y : array-like
        Rows to split into one partition per worker. Or ``X`` is rows on
        the cluster (:class:`~dask_quorum.pipeline.data.DaskRows`, from
        :func:`~dask_quorum.pipeline.data.check_dask_input`) and ``y`` is
        None: the partitions are computed on the workers and their replicas
        copied worker to worker (lost ones from a surviving replica, else
        recomputed from the collection's graph); no row reaches the client.
    partial : callable
        ``partial(x, (X_j, y_j)) -> ndarray`` (``(X_j, y_j, w_j)`` with
        weights), run on the workers; its sum over partitions is what each
        round decodes.
    objective : callable
        ``objective(x, total) -> (value, gradient)``, run on the driver.
    x0 : ndarray
        Starting parameters.
    scheme, redundancy, random_state
        The coding scheme (see :func:`~dask_quorum.pipeline.coding.make_code`),
        or ``"heterogeneous"`` / ``"auto"``, which adapt the code to a
        straggler model re-fitted while the fit runs
        (:class:`~dask_quorum.pipeline.engine.OnlineAdapter`).
    max_iter, tol
        Passed to :func:`~dask_quorum.pipeline.engine.lbfgs`.
    sample_weight : ndarray of shape (n_samples,), optional
        Weights of the rows of an array ``X`` (the partitions then carry
        ``w_j``); rows on the cluster carry their own.
    """
    keep_params = bool(config.get("history.keep-params"))
    started = perf_counter()
    adaptive = scheme in ADAPTIVE_SCHEMES
    factory = (lambda n: initial_code(scheme, n, redundancy, random_state)) if adaptive else None
    with CodedSession(
        client, scheme=scheme, redundancy=redundancy, random_state=random_state, code_factory=factory
    ) as session:
        if on_cluster(X):
            source = X.partition_source(client, session.n_partitions)
            session.place(source, units=source.units)
        else:
            parts = row_partitions(X, y, session.n_partitions, sample_weight)
            session.place(parts, units=[p[0].shape[0] for p in parts])
        adapter = (
            OnlineAdapter(session, scheme=scheme, redundancy=redundancy, random_state=random_state)
            if adaptive
            else None
        )

        traffic: list[int] = []

        def round_sum(x: np.ndarray) -> np.ndarray:
            total = session.round(partial, x)
            traffic.append(round_bytes(session.records[-1], len(session.workers), np.asarray(x).nbytes, total.nbytes))
            if adapter is not None:
                adapter.after_round(len(session.records) - 1)
            return total

        result = lbfgs(
            round_sum,
            objective,
            x0,
            max_iter=max_iter,
            tol=tol,
            keep_params=keep_params,
            # approximate decodings (and codes that change mid-fit) can break
            # L-BFGS's line search far from the optimum: start afresh then
            restarts=int(config.get("solver.restarts")) if adaptive or not session.code.exact else 0,
        )
        variables: dict[str, Any] = {"loss": np.asarray(result.losses)}
        # Every byte of a driver-centred round goes through the driver.
        variables["bytes_sent"] = ("round", np.asarray(traffic, dtype=np.int64), {"units": "B"})
        variables["bytes_max_node"] = ("round", np.asarray(traffic, dtype=np.int64), {"units": "B"})
        if keep_params:
            variables["params"] = (("round", "param"), np.asarray(result.params))
        history = session.history(
            variables,
            scheme=scheme,
            started=started,
            switches=adapter.switches if adapter is not None else (),
        )
    return RoundsFit(result=result, history=history)
