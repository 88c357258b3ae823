"""Fitting on a Dask collection the driver never holds: the big-data benchmark.

One run generates a float32 classification problem *on the workers*
(:func:`make_dataset`: ``dask.array``'s seeded generator, correlated
features, labels drawn from a known logistic model), persists it, and fits
it with every contender under the same persistent stragglers
(:class:`~dask_quorum.bench.scenarios.Scenario` of kind ``persistent``, the
suite's convention: the first ``n_slow`` workers in address order follow a
two-state Markov chain, ``P(slow | slow) = 0.9``, ``P(slow | fast) = 0.3``,
a slow task takes ``slowdown`` times its natural time; the chain is
re-seeded before every fit). Contenders, all on the very same persisted
dask array:

* dask-quorum's schemes (``sync`` and the coded ones, redundancy
  ``n_slow + 1``; ``frc`` is raised to a divisor of the cluster size);
* dask-ml's ``LogisticRegression(solver="lbfgs")`` (``normalize=False``, so
  that it solves our problem; see
  :meth:`~dask_quorum.bench.workloads.GLMWorkload.dask_ml`).

What is measured, per contender:

``time to target``
    Seconds from the call to ``fit`` until the first iterate whose
    objective is at most ``1.001 x`` the optimum, where the optimum is the
    lowest objective any contender reached in the run. dask-quorum keeps
    every round's parameters (``quorum.history.keep-params``) and its
    ``history_["elapsed"]`` clock starts inside ``fit``: the seconds ``fit``
    spent outside that clock (validation before, clean-up after) are added
    to every round, which can only make dask-quorum look slower. dask-ml
    exposes no iterates: its L-BFGS (SciPy's ``fmin_l_bfgs_b`` called by
    ``dask_glm.algorithms.lbfgs``) is run with a ``callback`` that stamps
    the time and keeps the iterate after every iteration
    (:func:`_lbfgs_iterates`), in the same single fit that is timed. The
    objective of every kept iterate that the engine did not evaluate
    exactly itself (all of dask-ml's, approximate rounds of ours) is
    evaluated afterwards in one pass over the data on the cluster
    (:func:`objective_values`): the same function, scikit-learn's
    objective, for everyone.
``driver RSS growth``
    The client process's peak resident set size while ``fit`` runs, sampled
    by a thread every few milliseconds (:class:`PeakRSS`), minus the value
    just before the call; reported in bytes and as a share of the data
    size.
``worker peak memory``
    The largest process memory of any worker while the fit ran, from the
    workers' own system monitors (a sample every 500 ms), and the bytes
    spilled to disk at the end of the fit.

Both contenders stop on the same rule: the largest component of the
gradient of the *mean* objective at most ``tol`` (dask-ml's ``tol`` is on the
gradient of the *summed* objective, so it gets ``tol * n_samples``), or
``max_iter`` iterations.

:func:`run_collections` returns a plain dict (JSON-serialisable);
:mod:`.collections_report` turns it into the issue's targets and a
report.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from time import perf_counter
from typing import Any

import dask
import numpy as np
import psutil
from distributed import Client, LocalCluster, wait

from dask_quorum import config
from dask_quorum.pipeline.cluster import scheduler_workers

from .collections_data import (
    PeakRSS,
    make_dataset,
    memory_plan,
    objective_values,
    worker_memory,
)
from .contenders import first_hit, redundancy_for
from .machine import describe_machine
from .measure import wait_idle
from .scenarios import Scenario
from .workloads import TARGET_RATIO

logger = logging.getLogger(__name__)

__all__ = [
    "BENCH_MEMORY_FRACTIONS",
    "CollectionsConfig",
    "run_collections",
]

#: Worker memory fractions of the benchmark's cluster (Dask's defaults: 0.6, 0.7, 0.8, 0.95).
#: At 4 GB on 8 workers with redundancy 2 a worker's managed memory peaks at
#: about 0.64 of RAM / 8 while the partitions are placed (the persisted
#: chunks, the two replicas and the first computation they are copied from:
#: ``memory_plan``), just above Dask's ``target``; on a machine that runs
#: nothing else these leave 10-15 % of headroom for task temporaries and
#: keep every byte in memory, so that no contender's time includes disk.
BENCH_MEMORY_FRACTIONS = {"target": 0.85, "spill": 0.9, "pause": 0.93, "terminate": 0.97}



@dataclass(frozen=True)
class CollectionsConfig:
    """What one run of the collections benchmark measures.

    Parameters
    ----------
    gigabytes : float, default=4.0
        Size of the float32 feature matrix, in 10**9 bytes.
    n_workers : int, default=8
        Single-threaded worker processes (threads with ``processes=False``).
    n_features : int, default=100
    slowdown : float, default=10.0
        Factor of a slow task of a slow worker.
    n_slow : int, default=1
        Workers in the slow class; the coded schemes get redundancy
        ``n_slow + 1``.
    max_iter : int, default=100
        Iteration cap of every optimiser.
    sync_max_iter : int, optional
        A lower cap for ``sync`` alone: under a 10x straggler its rounds
        are the longest of the run. When it stops before the target, the
        report gives the speed-up over it as a lower bound.
    tol : float, default=1e-6
        Largest component of the mean objective's gradient at which every
        optimiser stops.
    schemes : sequence of str, default=("sync", "cyclic", "heterogeneous")
        dask-quorum schemes to fit, in order.
    dask_ml : bool, default=True
        Fit dask-ml's ``lbfgs`` too.
    chunk_mb : float, default=64.0
        Target size of a row chunk of ``X`` in MB (at least two chunks per
        worker are made).
    C : float, default=1.0
        Inverse regularisation of the logistic loss.
    seed : int, default=0
        Seed of the data, the codes and the straggler chains.
    processes : bool, default=True
        Worker processes (threads otherwise: for tests).
    memory_limit : str, int or None, default=None
        Per-worker memory limit passed to the cluster; None means the
        machine's RAM / ``n_workers`` with processes (LocalCluster's
        ``"auto"`` would give every single-threaded worker RAM x 1 / cores,
        overcommitting a small machine) and no limit with threads.
    memory_fractions : dict, default=BENCH_MEMORY_FRACTIONS
        ``distributed.worker.memory.*`` fractions of the workers (see
        :data:`BENCH_MEMORY_FRACTIONS`); ``{}`` keeps Dask's.
    round_timeout : str, default="600s"
        ``quorum.round-timeout`` during the run: a synchronous round waits
        for a worker ``slowdown`` times slower, on partitions of gigabytes.
    sample_interval : float, default=0.005
        Seconds between two samples of the driver's RSS.
    """

    gigabytes: float = 4.0
    n_workers: int = 8
    n_features: int = 100
    slowdown: float = 10.0
    n_slow: int = 1
    max_iter: int = 100
    sync_max_iter: int | None = None
    tol: float = 1e-6
    schemes: Sequence[str] = ("sync", "cyclic", "heterogeneous")
    dask_ml: bool = True
    chunk_mb: float = 64.0
    C: float = 1.0
    seed: int = 0
    processes: bool = True
    memory_limit: str | int | None = None
    memory_fractions: dict = field(default_factory=lambda: dict(BENCH_MEMORY_FRACTIONS))
    round_timeout: str = "600s"
    sample_interval: float = 0.005

    def __post_init__(self) -> None:
        if self.gigabytes <= 0 or self.n_features < 1:
            raise ValueError(f"gigabytes and n_features must be positive, got {self.gigabytes}, {self.n_features}")
        if not 1 <= self.n_slow < self.n_workers:
            raise ValueError(f"n_slow must be in 1 .. n_workers - 1 = {self.n_workers - 1}, got {self.n_slow}")
        object.__setattr__(self, "schemes", tuple(self.schemes))

    @property
    def n_samples(self) -> int:
        """Rows of ``X``: ``gigabytes`` of float32 features."""
        return max(2 * self.n_workers, int(self.gigabytes * 1e9 / (4 * self.n_features)))

    @property
    def data_bytes(self) -> int:
        """Bytes of the float32 feature matrix."""
        return 4 * self.n_samples * self.n_features

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk: about ``chunk_mb``, and at least two chunks per worker."""
        by_size = max(1, int(self.chunk_mb * 1e6 / (4 * self.n_features)))
        return min(by_size, math.ceil(self.n_samples / (2 * self.n_workers)))

    @property
    def redundancy(self) -> int:
        """Replication of the coded schemes: one more than the slow workers."""
        return self.n_slow + 1

    def scenario(self) -> Scenario:
        """The suite's persistent scenario with ``n_slow`` slow workers of factor ``slowdown``."""
        share = (self.n_slow - 0.5) / self.n_workers  # Scenario rounds the share up
        return Scenario(f"persistent-{self.slowdown:g}x-n{self.n_workers}", "persistent", self.n_workers,
                        factor=self.slowdown, slow_share=share, redundancy=self.redundancy, seed=self.seed)


# -- contenders --------------------------------------------------------------------


@dataclass
class _Trajectory:
    name: str
    family: str
    fit_s: float
    rss_growth: int
    times: np.ndarray
    params: np.ndarray
    losses: np.ndarray  # NaN where the loss is still to be evaluated
    final: np.ndarray
    iterations: int
    worker_peak: float = math.nan
    spilled: float = 0.0
    note: str = ""
    final_loss: float = math.nan


def _pack(coef: Any, intercept: Any) -> np.ndarray:
    return np.r_[np.ravel(coef), np.ravel(intercept)].astype(np.float64)


def _fit_quorum(cfg: CollectionsConfig, scheme: str, X: Any, y: Any, client: Client) -> _Trajectory:
    from sklearn.exceptions import ConvergenceWarning

    from dask_quorum.estimators import LogisticRegression
    from dask_quorum.pipeline.coding import EXACT_TOL

    r = 1 if scheme == "sync" else redundancy_for(scheme, cfg.n_workers, cfg.redundancy)
    max_iter = cfg.sync_max_iter if scheme == "sync" and cfg.sync_max_iter else cfg.max_iter
    est = LogisticRegression(C=cfg.C, tol=cfg.tol, max_iter=max_iter, scheme=scheme, redundancy=r,
                             random_state=cfg.seed, client=client)
    with dask.config.set({"quorum.history.keep-params": True}), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with PeakRSS(cfg.sample_interval) as rss:
            start = perf_counter()
            est.fit(X, y)
            fit_s = perf_counter() - start
    h = est.history_
    elapsed = np.asarray(h["elapsed"].values, dtype=float)
    losses = np.asarray(h["loss"].values, dtype=float).copy()
    if "decode_error" in h:
        losses[np.asarray(h["decode_error"].values) > EXACT_TOL] = np.nan  # the engine's estimate only
    outside = max(0.0, fit_s - (elapsed[-1] if elapsed.size else 0.0))
    return _Trajectory(scheme, "dask-quorum", fit_s, rss.growth, elapsed + outside, np.asarray(h["params"].values),
                       losses, _pack(est.coef_, est.intercept_), int(est.n_iter_),
                       note=f"redundancy {r}" if scheme != "sync" else "")


@contextlib.contextmanager
def _lbfgs_iterates(record: Callable[[np.ndarray], None]) -> Iterator[None]:
    """Make dask-glm's L-BFGS call ``record(x)`` after every iteration (SciPy's ``callback``)."""
    from dask_glm import algorithms

    original = algorithms.fmin_l_bfgs_b

    def with_callback(*args: Any, **kwargs: Any) -> Any:
        kwargs["callback"] = record
        return original(*args, **kwargs)

    algorithms.fmin_l_bfgs_b = with_callback
    try:
        yield
    finally:
        algorithms.fmin_l_bfgs_b = original


def _fit_dask_ml(cfg: CollectionsConfig, X: Any, y: Any, client: Client) -> _Trajectory:
    from dask_ml.linear_model import LogisticRegression as DaskMLLogistic

    est = DaskMLLogistic(C=cfg.C, solver="lbfgs", max_iter=cfg.max_iter, tol=cfg.tol * X.shape[0],
                         solver_kwargs={"normalize": False})
    times: list[float] = []
    iterates: list[np.ndarray] = []
    start = math.nan

    def record(x: np.ndarray) -> None:
        times.append(perf_counter() - start)
        iterates.append(np.array(x, dtype=np.float64))

    with client.as_current(), _lbfgs_iterates(record), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dask-ml 2025.1 / dask-glm use deprecated dask and scipy options
        with PeakRSS(cfg.sample_interval) as rss:
            start = perf_counter()
            est.fit(X, y)
            fit_s = perf_counter() - start
    params = np.asarray(iterates).reshape(len(iterates), -1)
    return _Trajectory("dask-ml-lbfgs", "dask-ml", fit_s, rss.growth, np.asarray(times), params,
                       np.full(len(times), np.nan), _pack(est.coef_, est.intercept_), len(times),
                       note="iterates from SciPy's callback")


def _warm_up(cfg: CollectionsConfig, X: Any, y: Any, client: Client) -> None:
    """One tiny fit per family without stragglers: module imports and first-use costs."""
    rows = min(X.shape[0], 50 * cfg.n_workers)
    small = replace(cfg, max_iter=2)
    Xs, ys = client.persist([X[:rows], y[:rows]])
    _fit_quorum(small, "sync", Xs, ys, client)
    if cfg.dask_ml:
        with contextlib.suppress(ImportError):
            _fit_dask_ml(small, Xs, ys, client)
    del Xs, ys


def _cluster(cfg: CollectionsConfig) -> LocalCluster:
    if cfg.memory_limit is not None:
        limit = cfg.memory_limit
    else:
        limit = int(psutil.virtual_memory().total / cfg.n_workers) if cfg.processes else 0
    return LocalCluster(n_workers=cfg.n_workers, threads_per_worker=1, processes=cfg.processes,
                        dashboard_address=":0", memory_limit=limit)


def _worker_limit(client: Client) -> float | None:
    limits = [w.get("memory_limit") for w in client.scheduler_info(n_workers=-1)["workers"].values()]
    return float(min(limits)) if limits and all(limits) else None


# -- the run --------------------------------------------------------------------------


def run_collections(cfg: CollectionsConfig, log: Callable[[str], None] = logger.info) -> dict[str, Any]:
    """Generate and persist the data, fit every contender under the stragglers, measure.

    Returns
    -------
    dict
        ``config``, ``machine``, ``n_samples``, ``data_bytes``,
        ``persist_s``, ``memory_plan``, ``optimum`` (and ``optimum_by``),
        ``target``, ``contenders`` (one dict per contender: ``name``,
        ``family``, ``fit_s``, ``iterations``, ``time_to_target_s`` (inf when
        never), ``final_loss``, ``best_loss``, ``rss_growth_bytes``,
        ``rss_growth_share``, ``worker_peak_bytes``, ``spilled_bytes``,
        ``curve_s``, ``curve_loss``, ``note``), ``notes``.
    """
    scenario = cfg.scenario()
    notes: list[str] = []
    deadline = config.get_timeout("setup-timeout") * max(1.0, cfg.gigabytes * 4)
    trajectories: list[_Trajectory] = []
    settings = {f"distributed.worker.memory.{k}": v for k, v in cfg.memory_fractions.items()}
    settings["quorum.round-timeout"] = cfg.round_timeout
    settings["quorum.setup-timeout"] = f"{deadline:g}s"  # placing gigabytes of replicas
    with dask.config.set(settings), _cluster(cfg) as cluster, Client(cluster, set_as_default=False) as client, \
            client.as_current():
        workers = sorted(scheduler_workers(client))
        X, y, _ = make_dataset(cfg.n_samples, cfg.n_features, chunk_rows=cfg.chunk_rows, seed=cfg.seed)
        start = perf_counter()
        X, y = client.persist([X, y])
        wait([X, y], timeout=deadline)
        persist_s = perf_counter() - start
        plan = memory_plan(cfg.data_bytes, cfg.n_workers, max(cfg.redundancy, 1), _worker_limit(client))
        log(f"data: {cfg.n_samples:,} x {cfg.n_features} float32 ({cfg.data_bytes / 1e9:.2f} GB, "
            f"{X.numblocks[0]} chunks) persisted on {len(workers)} workers in {persist_s:.1f} s; "
            f"per worker {plan['held'] / 2**30:.2f} GiB during a coded fit, limit {plan['limit'] / 2**30:.2f} GiB")
        if plan["placing_fraction"] > plan["target"]:
            notes.append(f"a worker's managed memory reaches about {plan['placing_fraction']:.0%} of its limit while "
                         f"the partitions are placed, above distributed.worker.memory.target={plan['target']:g}: "
                         "it spills to disk")
        _warm_up(cfg, X, y, client)
        injection = scenario.injection(client, workers)
        runs: list[tuple[str, Callable[[], _Trajectory]]] = [
            (s, lambda s=s: _fit_quorum(cfg, s, X, y, client)) for s in cfg.schemes
        ]
        if cfg.dask_ml:
            runs.append(("dask-ml-lbfgs", lambda: _fit_dask_ml(cfg, X, y, client)))
        for name, fit in runs:
            wait_idle(client, config.get_timeout("round-timeout"))
            since = time.time()
            injection.start()
            try:
                t = fit()
            except Exception as exc:  # one contender's failure must not end the run
                logger.exception("%s failed", name)
                notes.append(f"{name} failed: {type(exc).__name__}: {exc}")
                log(f"  {notes[-1]}")
                continue
            finally:
                injection.stop()
            time.sleep(1.0)  # one more system-monitor sample on every worker
            memory = client.run(worker_memory, since=since).values()
            t.worker_peak = max((m for m, _ in memory), default=math.nan)
            t.spilled = sum(s for _, s in memory)
            trajectories.append(t)
            log(f"  {name}: fit {t.fit_s:.1f} s, {t.iterations} iterations, driver RSS +{t.rss_growth / 2**20:.1f} "
                f"MiB, worker peak {t.worker_peak / 2**30:.2f} GiB")
        _evaluate(client, X, y, trajectories, cfg, deadline)
    return _result(cfg, scenario, trajectories, persist_s, plan, X.numblocks[0], notes)


def _evaluate(client: Client, X: Any, y: Any, trajectories: list[_Trajectory], cfg: CollectionsConfig,
              timeout: float) -> None:
    """Fill in every loss still unknown, and every final loss, in one pass over the data."""
    batch, where = [], []
    for i, t in enumerate(trajectories):
        for r in np.flatnonzero(np.isnan(t.losses)):
            batch.append(t.params[r])
            where.append((i, int(r)))
        batch.append(t.final)
        where.append((i, -1))
    if not batch:
        return
    values = objective_values(client, X, y, np.asarray(batch), C=cfg.C, timeout=timeout)
    for (i, r), v in zip(where, values):
        if r < 0:
            trajectories[i].final_loss = float(v)
        else:
            trajectories[i].losses[r] = float(v)


def _result(cfg, scenario, trajectories, persist_s, plan, n_chunks, notes) -> dict[str, Any]:
    finite = [(float(np.nanmin(np.r_[t.losses, t.final_loss])), t.name) for t in trajectories]
    optimum, optimum_by = min(finite) if finite else (math.nan, "")
    target = TARGET_RATIO * optimum
    contenders = []
    for t in trajectories:
        seconds, _ = first_hit(t.times, t.losses, target)
        contenders.append({
            "name": t.name, "family": t.family, "fit_s": t.fit_s, "iterations": t.iterations,
            "time_to_target_s": seconds, "final_loss": t.final_loss,
            "best_loss": float(np.nanmin(np.r_[t.losses, t.final_loss])),
            "rss_growth_bytes": t.rss_growth, "rss_growth_share": t.rss_growth / cfg.data_bytes,
            "worker_peak_bytes": t.worker_peak, "spilled_bytes": t.spilled,
            "curve_s": t.times.tolist(), "curve_loss": t.losses.tolist(), "note": t.note,
        })
    return {
        "config": {**asdict(cfg), "schemes": list(cfg.schemes)},
        "scenario": scenario.describe(),
        "machine": describe_machine(),
        "n_samples": cfg.n_samples, "n_features": cfg.n_features, "n_chunks": n_chunks,
        "data_bytes": cfg.data_bytes, "persist_s": persist_s, "memory_plan": plan,
        "optimum": optimum, "optimum_by": optimum_by, "target": target,
        "contenders": contenders, "notes": list(notes),
    }
