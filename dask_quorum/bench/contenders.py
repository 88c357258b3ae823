"""Fitting one contender and measuring it against the target loss.

Three families:

* dask-quorum's schemes (``sync``, ``uncoded``, ``frc``, ``cyclic``,
  ``expander``, ``heterogeneous``, ``auto``, and ``asap`` once the
  estimators accept it). Every round's parameters are kept; the true
  objective of every round whose decoding was approximate is evaluated on
  the driver afterwards, so approximate codes are judged on the real loss,
  not on their own estimate.
* dask-ml's ``LogisticRegression`` / ``LinearRegression`` with the
  ``lbfgs`` and ``gradient_descent`` solvers, on the same cluster, the data
  as dask arrays with one chunk per worker. dask-ml exposes no iterates;
  its path is deterministic, so the number of iterations it needs to reach
  the target is found once per workload by bisection on ``max_iter``
  (:func:`dask_ml_iterations`) and its time to target is the time of a
  fit with exactly that ``max_iter`` under the scenario's stragglers.
* the single-process reference (no cluster): scikit-learn, timed the same
  way; igraph's PRPACK for PageRank.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import dask
import numpy as np
from distributed import Client

from .workloads import GLMWorkload, PageRankWorkload, Workload

__all__ = [
    "DASK_ML_SOLVERS",
    "QUORUM_SCHEMES",
    "Outcome",
    "SolverPath",
    "asap_status",
    "contender_family",
    "dask_ml_data",
    "dask_ml_iterations",
    "first_hit",
    "iterations_to_target",
    "peer_bytes_sent",
    "peer_compute_seconds",
    "redundancy_for",
    "run_dask_ml",
    "run_quorum",
    "run_single_process",
]

#: dask-quorum schemes, in table order.
QUORUM_SCHEMES = ("sync", "uncoded", "frc", "cyclic", "expander", "heterogeneous", "auto", "asap")

#: dask-ml contender names and their solvers.
DASK_ML_SOLVERS = {"dask-ml-lbfgs": "lbfgs", "dask-ml-gd": "gradient_descent"}


def contender_family(name: str) -> str:
    """``"dask-quorum"``, ``"dask-ml"`` or ``"scikit-learn"``.

    Raises
    ------
    ValueError
        On an unknown contender.
    """
    if name in QUORUM_SCHEMES:
        return "dask-quorum"
    if name in DASK_ML_SOLVERS:
        return "dask-ml"
    if name == "sklearn":
        return "scikit-learn"
    raise ValueError(
        f"unknown contender {name!r}; expected one of {[*QUORUM_SCHEMES, *DASK_ML_SOLVERS, 'sklearn']}"
    )


@dataclass
class Outcome:
    """One contender's fit, measured.

    ``rounds`` are objective evaluations of the engine (dask-quorum), or
    solver iterations (dask-ml, scikit-learn; -1 when not reported).
    ``time_to_target_s`` is ``inf`` and ``rounds_to_target`` -1 when the
    target was never reached. Bytes and compute seconds are NaN until the
    cluster's counters are read around the fit. ``node_bytes_per_round``
    is the engine's own account of the payload through the busiest node per
    round (``history_["bytes_max_node"]``: the driver for the driver-centred
    schemes, one worker for ``asap``, whose worker-to-worker RPC messages the
    cluster's transfer counters do not see); NaN for other families.
    ``peer_compute_s`` and ``peer_bytes`` are the work and messages of a
    fit outside Dask tasks, from its own history (``asap``: its workers'
    step seconds, ``history_["compute"]``, and the payload bytes its peers
    sent, ``history_["bytes_sent"]``), which the cluster's counters miss;
    the suite adds them to ``compute_s`` and ``bytes_out``. 0 for the
    others.
    """

    contender: str
    family: str
    time_to_target_s: float
    rounds_to_target: int
    rounds: int
    final_loss: float
    best_loss: float
    fit_s: float
    curve_s: np.ndarray = field(repr=False)
    curve_loss: np.ndarray = field(repr=False)
    bytes_out: float = float("nan")
    compute_s: float = float("nan")
    node_bytes_per_round: float = float("nan")
    peer_compute_s: float = 0.0
    peer_bytes: float = 0.0
    note: str = ""


def first_hit(elapsed: np.ndarray, losses: np.ndarray, target: float) -> tuple[float, int]:
    """(seconds, rounds) until ``losses`` first reach ``target``; ``(inf, -1)`` when never."""
    hit = np.flatnonzero(np.asarray(losses) <= target)
    if hit.size == 0:
        return float("inf"), -1
    return float(np.asarray(elapsed)[hit[0]]), int(hit[0]) + 1


def iterations_to_target(loss_at: Callable[[int], float], target: float, hi: int) -> int | None:
    """Smallest ``m`` in ``1 .. hi`` with ``loss_at(m) <= target``, by bisection.

    Assumes the loss does not increase with ``m`` (a deterministic descent
    method stopped after ``m`` iterations). Returns None when even
    ``loss_at(hi)`` misses the target.
    """
    if loss_at(hi) > target:
        return None
    lo = 0  # loss_at(lo) > target, with loss_at(0) taken as the starting point
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if loss_at(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def redundancy_for(scheme: str, n_workers: int, redundancy: int) -> int:
    """The replication factor a scheme can use: ``frc`` needs a divisor of ``n_workers``."""
    r = max(1, min(redundancy, n_workers))
    if scheme == "frc":
        while n_workers % r:
            r += 1
    return r


def asap_status() -> str | None:
    """None when the estimators accept ``scheme="asap"``, else why they do not."""
    from sklearn.utils._param_validation import InvalidParameterError

    from dask_quorum.estimators import LogisticRegression

    try:
        LogisticRegression(scheme="asap")._validate_params()
    except InvalidParameterError:
        return "the estimators do not accept scheme='asap' yet"
    return None


def run_quorum(
    workload: Workload,
    scheme: str,
    *,
    client: Client,
    redundancy: int,
    max_iter: int,
    seed: int,
    target: float,
) -> Outcome:
    """Fit with a dask-quorum scheme; time to target from every round's true loss."""
    from sklearn.exceptions import ConvergenceWarning

    if scheme == "asap":
        # ASAP places no replicas, and a round is one local gradient step:
        # fits take about ten times the rounds of an L-BFGS fit.
        est = workload.quorum(scheme=scheme, redundancy=None, max_iter=10 * max_iter, random_state=seed, client=client)
    else:
        est = workload.quorum(scheme=scheme, redundancy=redundancy, max_iter=max_iter, random_state=seed, client=client)
    start = perf_counter()
    with dask.config.set({"quorum.history.keep-params": True}), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        est.fit(*workload.fit_data())
    fit_s = perf_counter() - start
    h = est.history_
    losses, note = workload.round_losses(h)
    stopped = [str(w.message).split(";")[0] for w in caught if issubclass(w.category, ConvergenceWarning)]
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    elapsed = np.asarray(h["elapsed"].values, dtype=float)
    seconds, rounds = first_hit(elapsed, losses, target)
    if not stopped and rounds < 0:
        # the solver's own test passed on the decoded (possibly approximate) loss and gradient
        stopped = [f"the solver declared convergence after {est.n_iter_} iterations, short of the target"]
    note = "; ".join([*stopped, *([note] if note else [])])
    return Outcome(
        contender=scheme,
        family="dask-quorum",
        time_to_target_s=seconds,
        rounds_to_target=rounds,
        rounds=int(h.sizes["round"]),
        final_loss=workload.final_loss(est),
        best_loss=float(losses.min()),
        fit_s=fit_s,
        curve_s=elapsed,
        curve_loss=losses,
        node_bytes_per_round=float(h["bytes_max_node"].mean()) if "bytes_max_node" in h else float("nan"),
        peer_compute_s=peer_compute_seconds(h),
        peer_bytes=peer_bytes_sent(h),
        note=note,
    )


def peer_compute_seconds(history: Any) -> float:
    """Step seconds of a fit's work outside Dask tasks, summed over rounds and workers (0 if none).

    ``asap`` records every worker's step time per round (``compute``); the
    engine's coded rounds run as Dask tasks, which the cluster counts.
    """
    if history.attrs.get("scheme") != "asap" or "compute" not in history:
        return 0.0
    return float(np.nansum(np.asarray(history["compute"].values, dtype=float)))


def peer_bytes_sent(history: Any) -> float:
    """Payload bytes a fit's workers sent each other outside Dask, summed over rounds (0 if none)."""
    if history.attrs.get("scheme") != "asap" or "bytes_sent" not in history:
        return 0.0
    return float(np.nansum(np.asarray(history["bytes_sent"].values, dtype=float)))


def dask_ml_data(workload: GLMWorkload, client: Client, workers: list[str]) -> tuple[Any, Any]:
    """``(X, y)`` as dask arrays with one row chunk held by each worker."""
    import dask.array as da

    bounds = np.linspace(0, workload.X.shape[0], len(workers) + 1).round().astype(int)
    xs, ys = [], []
    for w, a, b in zip(workers, bounds[:-1], bounds[1:]):
        fx, fy = client.scatter([workload.X[a:b], workload.y[a:b]], workers=[w], hash=False)
        xs.append(da.from_delayed(fx, shape=(b - a, workload.X.shape[1]), dtype=workload.X.dtype))
        ys.append(da.from_delayed(fy, shape=(b - a,), dtype=workload.y.dtype))
    return da.concatenate(xs), da.concatenate(ys)


def _timed_fit(est: Any, X: Any, y: Any) -> float:
    start = perf_counter()
    with warnings.catch_warnings():
        # dask-ml 2025.1 and dask-glm use deprecated dask/scipy options, and
        # gradient descent overflows exp on its first steps: not ours to fix.
        warnings.simplefilter("ignore")
        est.fit(X, y)
    return perf_counter() - start


@dataclass(frozen=True)
class SolverPath:
    """Where a deterministic solver's path meets the target, found without stragglers."""

    #: Iterations to reach the target; None when ``max_iter`` was not enough.
    iterations: int | None
    #: The loss after ``max_iter`` iterations.
    loss_at_cap: float


def dask_ml_iterations(
    workload: GLMWorkload, solver: str, data: tuple[Any, Any], *, target: float, max_iter: int
) -> SolverPath:
    """Bisect on ``max_iter`` for the iterations dask-ml's ``solver`` needs to reach ``target``."""
    losses: dict[int, float] = {}

    def loss_at(m: int) -> float:
        if m not in losses:
            est = workload.dask_ml(solver, max_iter=m, tol=1e-10)
            _timed_fit(est, *data)
            losses[m] = workload.final_loss(est)
        return losses[m]

    iterations = iterations_to_target(loss_at, target, max_iter)
    return SolverPath(iterations, loss_at(max_iter))


def run_dask_ml(
    workload: GLMWorkload,
    name: str,
    data: tuple[Any, Any],
    *,
    max_iter: int,
    path: SolverPath,
    target: float,
    around: Callable[[Callable[[], float]], float],
) -> Outcome:
    """Fit with a dask-ml solver: with ``path.iterations`` (time to target), then with ``max_iter``.

    ``around(fit)`` runs a fit inside the scenario (stragglers injected)
    and returns its seconds. A solver that does not reach the target within
    ``max_iter`` iterations without stragglers is not fitted again (its
    path is the same under stragglers, only slower): its outcome has the
    loss at ``max_iter`` and no time.
    """
    if path.iterations is None:
        nan = float("nan")
        return Outcome(name, "dask-ml", float("inf"), -1, -1, path.loss_at_cap, path.loss_at_cap, nan,
                       np.array([]), np.array([]),
                       note=f"target not reached in {max_iter} iterations (without stragglers); not re-run")
    solver = DASK_ML_SOLVERS[name]
    note = ""
    est = workload.dask_ml(solver, max_iter=path.iterations, tol=1e-10)
    seconds = around(lambda: _timed_fit(est, *data))
    hit_loss = workload.final_loss(est)
    if hit_loss > target:  # the path changed (a different summation order): report it, do not guess
        note = f"{path.iterations} iterations reached {hit_loss:.6g} > target {target:.6g} here"
        seconds = float("inf")
    est = workload.dask_ml(solver, max_iter=max_iter, tol=1e-10)
    fit_s = around(lambda: _timed_fit(est, *data))
    final = workload.final_loss(est)
    reached = np.isfinite(seconds)
    points_s = np.array([seconds, fit_s] if reached else [fit_s])
    points_loss = np.array([hit_loss, final] if reached else [final])
    return Outcome(
        contender=name,
        family="dask-ml",
        time_to_target_s=seconds,
        rounds_to_target=path.iterations if reached else -1,
        rounds=-1,
        final_loss=final,
        best_loss=float(points_loss.min()),
        fit_s=fit_s,
        curve_s=points_s,
        curve_loss=points_loss,
        note=note,
    )


def run_single_process(workload: Workload, *, max_iter: int, target: float) -> Outcome:
    """The no-cluster reference: scikit-learn (timed to target by bisection on
    ``max_iter``), or igraph's PRPACK for PageRank (the exact reference itself)."""
    if isinstance(workload, PageRankWorkload):
        workload.reference()
        t = workload.reference_s
        return Outcome("igraph", "igraph", t, 1, -1, 0.0, 0.0, t, np.array([t]), np.array([0.0]),
                       note="PRPACK, one process: the exact reference")

    def fit(m: int) -> tuple[float, float]:
        est = workload.sklearn(m)
        seconds = _timed_fit(est, workload.X, workload.y)
        return seconds, workload.final_loss(est)

    fit_s, final = fit(max_iter)
    iterations: int | None = None
    if workload.sklearn_iterative:
        iterations = iterations_to_target(lambda m: fit(m)[1], target, max_iter)
        seconds, hit = fit(iterations) if iterations is not None else (float("inf"), float("inf"))
    else:
        seconds, hit = (fit_s, final) if final <= target else (float("inf"), float("inf"))
    reached = np.isfinite(seconds)
    return Outcome(
        contender="sklearn",
        family="scikit-learn",
        time_to_target_s=seconds,
        rounds_to_target=(iterations or 1) if reached else -1,
        rounds=-1,
        final_loss=final,
        best_loss=min(final, hit),
        fit_s=fit_s,
        curve_s=np.array([seconds, fit_s] if reached else [fit_s]),
        curve_loss=np.array([hit, final] if reached else [final]),
        note="one process, no cluster",
    )
