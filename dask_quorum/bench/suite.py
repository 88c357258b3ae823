"""The benchmark suite: every workload x scenario x contender, in one run.

For each workload the optimum comes from scikit-learn; the target is
``1.001`` x that optimum. For each scenario a fresh
:class:`~distributed.LocalCluster` of single-threaded workers is started
and, before any straggler is injected:

1. the bare Dask floor of a round is timed (:func:`.measure.floor_round`);
2. a synchronous fit without stragglers calibrates the oracle: its compute
   seconds per round are the work of a full pass, its rounds to target the
   rounds an exact optimiser needs (it also warms the cluster up, so no
   contender pays for first-use costs);
3. for dask-ml, the data are scattered as one chunk per worker and the
   iterations each solver needs are found once per workload.

Then every contender fits under the same injected stragglers, one after
the other; the cluster is idle between them and the worker counters
(bytes served, task seconds) are read around each fit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster

from dask_quorum import config
from dask_quorum.pipeline.cluster import scheduler_workers

from . import contenders as C
from .measure import (
    Counters,
    empty_round,
    floor_round,
    place_empty,
    seconds_per_call,
    wait_idle,
    worker_counters,
)
from .oracle import oracle_seconds
from .scenarios import TRACE_FILE, Scenario
from .workloads import WORKLOADS, Workload, WorkloadUnavailable, load_workload

logger = logging.getLogger(__name__)

__all__ = [
    "ALL_CONTENDERS",
    "OverheadRow",
    "ScenarioResult",
    "SuiteConfig",
    "SuiteResult",
    "build_scenarios",
    "run_overhead",
    "run_scenario",
    "run_suite",
]

#: Every contender, in table order.
ALL_CONTENDERS = (*C.QUORUM_SCHEMES, *C.DASK_ML_SOLVERS, "sklearn")

#: Scenarios each workload runs in full mode unless ``--scenarios`` is given.
FULL_DEFAULTS = {
    "flights": ("none", "persistent", "trace", "halfway"),
    "synthetic-logistic": ("none", "persistent"),
    "synthetic-linear": ("none", "persistent-10x-n8"),
    "pagerank": ("none", "persistent-10x-n8", "persistent-10x-n16"),
}

#: Scenarios of quick mode.
QUICK_DEFAULTS = ("none", "persistent-10x-n4")


@dataclass
class SuiteConfig:
    """What one run of the suite measures.

    Parameters
    ----------
    quick : bool, default=False
        Tiny problems, few workers, in-process clusters: seconds, for tests.
    workloads : sequence of str
        Names of :data:`~.workloads.WORKLOADS`.
    scenarios : sequence of str, optional
        Scenario names or groups (``none``, ``persistent``, ``trace``,
        ``halfway``, or a full name such as ``persistent-10x-n16``); None
        runs each workload's defaults.
    contenders : sequence of str
        Names from :data:`ALL_CONTENDERS`.
    traces : path, optional
        The EC2 traces folder (or CSV file); trace scenarios are skipped
        with a note when it is missing.
    processes : bool, optional
        Worker processes (default in full mode) or threads (quick mode).
    max_iter : int, optional
        Iteration cap of every optimiser (150 full, 40 quick): the targets need
        tens of iterations, the rest shows where each contender ends.
    overhead_workers : sequence of int, optional
        Cluster sizes of the overhead table; empty to skip it.
    overhead_rounds : int, optional
        Rounds timed per overhead measurement.
    overhead_processes : bool, default=False
        Worker processes for the overhead table (64 processes on a small
        machine measure the machine, not the engine: in-process by default).
    rows : int, optional
        Rows of every workload instead of its default.
    p_slow_fast : float, default=0.3
        P(slow | fast) of the persistent slow class (stationary slow share
        0.75 with P(slow | slow) = 0.9).
    delay : float, default=0.0
        Extra seconds per slow task (persistent, halfway).
    budget : float, default=0.0
        Seconds per unit of slowdown of a replayed trace.
    unit_seconds : float, default=0.0
        Emulated seconds of work per work unit on every worker, in every
        scenario and in the calibration (:class:`Scenario`). dask-ml's tasks
        declare no work units, so its contenders are skipped then.
    seed : int, default=0
    """

    quick: bool = False
    workloads: Sequence[str] = ("flights", "synthetic-logistic", "synthetic-linear", "pagerank")
    scenarios: Sequence[str] | None = None
    contenders: Sequence[str] = ALL_CONTENDERS
    traces: Path | None = None
    processes: bool | None = None
    max_iter: int | None = None
    overhead_workers: Sequence[int] | None = None
    overhead_rounds: int | None = None
    overhead_processes: bool = False
    rows: int | None = None
    p_slow_fast: float = 0.3
    delay: float = 0.0
    budget: float = 0.0
    unit_seconds: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in self.workloads:
            if name not in WORKLOADS:
                raise ValueError(f"unknown workload {name!r}; expected some of {WORKLOADS}")
        for name in self.contenders:
            C.contender_family(name)  # raises on an unknown name
        if self.processes is None:
            self.processes = not self.quick
        if self.max_iter is None:
            self.max_iter = 40 if self.quick else 150
        if self.overhead_workers is None:
            self.overhead_workers = (2, 4) if self.quick else (4, 8, 16, 32, 64)
        if self.overhead_rounds is None:
            self.overhead_rounds = 10 if self.quick else 100

    @property
    def traces_csv(self) -> Path | None:
        """The traces CSV, if it exists."""
        if self.traces is None:
            return None
        path = Path(self.traces)
        path = path / TRACE_FILE if path.is_dir() else path
        return path if path.is_file() else None


@dataclass
class ScenarioResult:
    """Every contender of one workload under one scenario."""

    workload: str
    scenario: Scenario
    outcomes: list[C.Outcome]
    floor_s: float
    work_s: float
    oracle_rounds: int
    oracle_s: float
    notes: list[str] = field(default_factory=list)

    def outcome(self, contender: str) -> C.Outcome | None:
        return next((o for o in self.outcomes if o.contender == contender), None)


@dataclass(frozen=True)
class OverheadRow:
    """An empty round of the engine against the bare floor, on ``workers`` workers."""

    workers: int
    floor_s: float
    rounds_s: dict[str, float]


@dataclass
class SuiteResult:
    """What :func:`run_suite` measured."""

    config: SuiteConfig
    scenarios: list[ScenarioResult] = field(default_factory=list)
    overhead: list[OverheadRow] = field(default_factory=list)
    workloads: dict[str, Workload] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- the scenario catalogue -------------------------------------------------


def _catalogue(cfg: SuiteConfig) -> dict[str, Scenario | str]:
    """Every scenario by name; a str instead says why it cannot run here."""
    persistent = dict(p_slow_fast=cfg.p_slow_fast, delay=cfg.delay, seed=cfg.seed)
    if cfg.quick:
        sizes, base, traces = (4,), 3, {"data2": 5, "data4": 4, "data8": 4}
    else:
        sizes, base, traces = (8, 16), 8, {"data2": 15, "data4": 10, "data8": 15}
    out: dict[str, Scenario | str] = {"none": Scenario("none", "none", base, seed=cfg.seed)}
    for n in sizes:
        for factor in (5, 10):
            s = Scenario(f"persistent-{factor}x-n{n}", "persistent", n, factor=factor, **persistent)
            out[s.name] = replace(s, redundancy=s.n_slow + 1)
    csv = cfg.traces_csv
    for trace, n in traces.items():
        out[f"trace-{trace}"] = (
            Scenario(f"trace-{trace}", "trace", n, trace=trace, trace_csv=str(csv), budget=cfg.budget)
            if csv is not None
            else f"no traces file at {cfg.traces} (give --traces)"
        )
    out["halfway-10x"] = Scenario("halfway-10x", "halfway", base, factor=10, delay=cfg.delay, seed=cfg.seed)
    return {k: replace(s, unit_seconds=cfg.unit_seconds) if isinstance(s, Scenario) else s for k, s in out.items()}


def build_scenarios(cfg: SuiteConfig, names: Sequence[str]) -> tuple[list[Scenario], list[str]]:
    """Scenarios named by ``names`` (names or groups), and notes on those skipped.

    Raises
    ------
    ValueError
        On a name that matches no scenario; the message lists them.
    """
    catalogue = _catalogue(cfg)
    picked: list[Scenario] = []
    notes: list[str] = []
    for name in names:
        matches = [k for k in catalogue if name in (k, k.split("-")[0])]
        if not matches:
            raise ValueError(f"unknown scenario {name!r}; known: {list(catalogue)}")
        for key in matches:
            s = catalogue[key]
            if isinstance(s, str):
                notes.append(f"{key} skipped: {s}")
            elif s not in picked:
                picked.append(s)
    return picked, list(dict.fromkeys(notes))


# -- running ----------------------------------------------------------------


def _cluster(n_workers: int, processes: bool) -> LocalCluster:
    # In-process workers share this process's memory (the workloads' data
    # included): each one's default limit, total / n_workers, would make all
    # of them pause at once on a large cluster. Only processes get limits.
    return LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=processes, dashboard_address=":0",
        memory_limit="auto" if processes else 0,
    )


def _workers(client: Client) -> list[str]:
    return sorted(scheduler_workers(client))


def _seconds(t: float) -> str:
    return f"{t:.2f} s" if math.isfinite(t) else "never"


def _measured(client: Client, start: Callable[[], None], stop: Callable[[], None], fit: Callable[[], Any]):
    """Run ``fit`` between ``start`` and ``stop``; return its value and the counters' change."""
    before = worker_counters(client)
    start()
    try:
        value = fit()
        # a straggler's leftover task ends within a round's timeout
        wait_idle(client, config.get_timeout("round-timeout"))
    finally:
        stop()
    return value, worker_counters(client) - before


def _run_dask_ml(cfg, workload, name, client, workers, injection, iterations, cache):
    """A dask-ml contender; its data are scattered on first use and kept in ``cache``."""
    target = workload.target()
    # dask-ml computes on the current client: make it this cluster's.
    with client.as_current():
        if "data" not in cache:
            cache["data"] = C.dask_ml_data(workload, client, workers)
        data = cache["data"]
        if name not in iterations:
            iterations[name] = C.dask_ml_iterations(
                workload, C.DASK_ML_SOLVERS[name], data, target=target, max_iter=cfg.max_iter
            )
        last = {}

        def around(fit: Callable[[], float]) -> float:
            seconds, last["counters"] = _measured(client, injection.start, injection.stop, fit)
            return seconds

        outcome = C.run_dask_ml(
            workload, name, data, max_iter=cfg.max_iter, path=iterations[name], target=target, around=around,
        )
    return outcome, last.get("counters", Counters(math.nan, math.nan))


@dataclass(frozen=True)
class _Calibration:
    floor_s: float
    work_s: float
    rounds: int
    clean_s: float


def _calibrate(cfg: SuiteConfig, workload: Workload, client: Client, workers: list[str]) -> _Calibration:
    """The bare floor, then a synchronous fit without stragglers (which also warms the cluster up).

    With emulated work (``cfg.unit_seconds``) the fit emulates it too, so the
    oracle's work per round includes it.
    """
    floor_s = seconds_per_call(lambda: floor_round(client, workers), 15 if cfg.quick else 100)
    clean = Scenario("calibration", "none", len(workers), unit_seconds=cfg.unit_seconds).injection(client, workers)
    sync, counters = _measured(
        client, clean.start, clean.stop,
        lambda: C.run_quorum(workload, "sync", client=client, redundancy=1, max_iter=cfg.max_iter,
                             seed=cfg.seed, target=workload.target()),
    )
    clean = sync.time_to_target_s if math.isfinite(sync.time_to_target_s) else sync.fit_s
    return _Calibration(floor_s, counters.compute_s / max(1, sync.rounds), sync.rounds_to_target, clean)


class _Skipped(Exception):
    """A contender that cannot run on this workload or this installation."""


def _run_contender(cfg, workload, scenario, name, client, workers, injection, iterations, cache):
    """One contender under the scenario: its outcome and the counters' change.

    Raises
    ------
    _Skipped
        When the contender cannot run here; the message says why.
    """
    family = C.contender_family(name)
    if family not in workload.families:
        raise _Skipped(f"{name} skipped: {family} has no {workload.name} workload")
    if family == "dask-ml" and scenario.unit_seconds:
        raise _Skipped(f"{name} skipped: dask-ml's tasks declare no work units, so the emulated work "
                       "(--unit-seconds) would not slow them")
    if family == "dask-ml":
        return _run_dask_ml(cfg, workload, name, client, workers, injection, iterations, cache)
    if name == "asap" and (why := C.asap_status()) is not None:
        raise _Skipped(f"asap skipped: {why}")
    r = C.redundancy_for(name, scenario.n_workers, scenario.redundancy)
    return _measured(
        client, injection.start, injection.stop,
        lambda: C.run_quorum(workload, name, client=client, redundancy=r, max_iter=cfg.max_iter,
                             seed=cfg.seed, target=workload.target()),
    )


def run_scenario(
    cfg: SuiteConfig,
    workload: Workload,
    scenario: Scenario,
    *,
    single: C.Outcome | None,
    iterations: dict[str, C.SolverPath],
    log: Callable[[str], None] = logger.info,
) -> ScenarioResult:
    """Fit every contender of ``cfg`` on ``workload`` under ``scenario``.

    ``single`` is the single-process reference's outcome (measured once per
    workload); ``iterations`` caches the dask-ml solvers' iterations to
    target across the scenarios of a workload (filled on first use). A
    contender that fails is left out with a note; the run goes on.
    """
    notes: list[str] = []
    outcomes: list[C.Outcome] = []
    with _cluster(scenario.n_workers, cfg.processes) as cluster, Client(cluster, set_as_default=False) as client:
        workers = _workers(client)
        cal = _calibrate(cfg, workload, client, workers)
        if scenario.kind == "halfway" and not scenario.switch_s:
            scenario = replace(scenario, switch_s=0.5 * cal.clean_s)
        log(f"{workload.name} / {scenario.name}: floor {cal.floor_s * 1e3:.1f} ms, work "
            f"{cal.work_s * 1e3:.1f} ms/round, sync without stragglers {cal.clean_s:.2f} s")
        injection = scenario.injection(client, workers)
        cache: dict[str, Any] = {}
        for name in cfg.contenders:
            if name == "sklearn":
                outcomes.extend([single] if single is not None else [])
                continue
            try:
                outcome, counters = _run_contender(
                    cfg, workload, scenario, name, client, workers, injection, iterations, cache
                )
            except _Skipped as why:
                notes.append(str(why))
                continue
            except Exception as exc:  # one contender's failure must not end an hours-long run
                logger.exception("%s failed under %s", name, scenario.name)
                notes.append(f"{name} failed: {type(exc).__name__}: {exc}")
                log(f"  {notes[-1]}")
                continue
            outcome.bytes_out, outcome.compute_s = counters.bytes_out, counters.compute_s
            outcomes.append(outcome)
            log(f"  {name}: {_seconds(outcome.time_to_target_s)} to target, fit {outcome.fit_s:.2f} s")
    if cal.rounds > 0:
        factors, delays = scenario.round_slowdowns(workers, cal.rounds, work_s=cal.work_s, floor_s=cal.floor_s)
        oracle_s = oracle_seconds(cal.work_s, cal.floor_s, factors, delays)
    else:
        oracle_s = float("nan")
        notes.append("oracle bound unknown: the synchronous calibration fit never reached the target")
    return ScenarioResult(workload.name, scenario, outcomes, cal.floor_s, cal.work_s, cal.rounds, oracle_s, notes)


def run_overhead(
    cfg: SuiteConfig, schemes: Sequence[str] = ("sync", "cyclic"), log: Callable[[str], None] = logger.info
) -> list[OverheadRow]:
    """An empty engine round against the bare floor, for every size in ``cfg.overhead_workers``."""
    from dask_quorum.pipeline.engine import CodedSession

    rows = []
    for n in cfg.overhead_workers:
        with _cluster(n, cfg.overhead_processes) as cluster, Client(cluster, set_as_default=False) as client:
            workers = _workers(client)
            floor = seconds_per_call(lambda: floor_round(client, workers), cfg.overhead_rounds)
            rounds = {}
            for scheme in schemes:
                with CodedSession(client, scheme=scheme, redundancy=min(2, n), random_state=cfg.seed) as s:
                    place_empty(s)
                    rounds[scheme] = seconds_per_call(lambda: empty_round(s), cfg.overhead_rounds)
        rows.append(OverheadRow(n, floor, rounds))
        log(f"overhead, {n} workers: floor {floor * 1e3:.1f} ms, "
            + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in rounds.items()))
    return rows


def run_suite(cfg: SuiteConfig, log: Callable[[str], None] = logger.info) -> SuiteResult:
    """Run every workload, scenario and contender of ``cfg``, then the overhead table."""
    result = SuiteResult(cfg)
    for name in cfg.workloads:
        try:
            workload = load_workload(name, quick=cfg.quick, seed=cfg.seed, rows=cfg.rows)
        except WorkloadUnavailable as exc:
            result.notes.append(f"workload {name} skipped: {exc}")
            log(result.notes[-1])
            continue
        result.workloads[name] = workload
        log(f"{name}: {workload.description}; optimum {workload.optimum():.6g} "
            f"({workload.reference_s:.1f} s)")
        wanted = cfg.scenarios or (QUICK_DEFAULTS if cfg.quick else FULL_DEFAULTS[name])
        scenarios, notes = build_scenarios(cfg, wanted)
        result.notes.extend(n for n in notes if n not in result.notes)
        single = (
            C.run_single_process(workload, max_iter=cfg.max_iter, target=workload.target())
            if "sklearn" in cfg.contenders else None
        )
        iterations: dict[str, C.SolverPath] = {}
        for scenario in scenarios:
            result.scenarios.append(
                run_scenario(cfg, workload, scenario, single=single, iterations=iterations, log=log)
            )
    if cfg.overhead_workers:
        result.overhead = run_overhead(cfg, log=log)
    return result
