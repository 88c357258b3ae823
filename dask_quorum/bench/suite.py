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
(bytes served, task seconds) are read around each fit; work outside Dask
tasks (``asap``'s peer loops) is added from the fit's own history.

After the workloads: the overhead table, then the extra sections
(:mod:`.sections`: the scaling report, the fit of a persisted dask array). The scenario
catalogue is in :mod:`.catalogue`.
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
from .catalogue import FULL_DEFAULTS, QUICK_DEFAULTS, build_scenarios
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
from .scaling import SIZES as SCALING_SIZES
from .scenarios import TRACE_FILE, Scenario
from .sections import SECTIONS, Section, SectionUnavailable
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
        declare no work units, so its contenders are skipped then. The
        redundancy-2 scenario emulates its work even at 0
        (:data:`~.catalogue.R2_PARTITION_S` seconds per partition).
    seed : int, default=0
    sections : sequence of str, optional
        Extra sections (:data:`~.sections.SECTIONS`) run after the
        workloads; default ``("scaling", "dask-input")``, empty for none.
    scaling_sizes : sequence of int, optional
        Cluster sizes of the scaling section (16 64 256; 8 16 quick).
    scaling_rounds : int, optional
        Rounds of the synthetic trace (12; 10 quick): the simulator's cost grows
        with rounds x workers^2 and more (minutes at 256 workers).
    dask_input_gigabytes : float, optional
        Size of the float32 features of the dask-input section
        (:mod:`.collections_section`), in 10**9 bytes (1.0; 0.02 quick).
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
    sections: Sequence[str] | None = None
    scaling_sizes: Sequence[int] | None = None
    scaling_rounds: int | None = None
    dask_input_gigabytes: float | None = None

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
        if self.sections is None:
            self.sections = ("scaling", "dask-input")
        for name in self.sections:
            if name not in SECTIONS:
                raise ValueError(f"unknown section {name!r}; expected some of {list(SECTIONS)}")
        if self.scaling_sizes is None:
            self.scaling_sizes = (8, 16) if self.quick else SCALING_SIZES
        if self.scaling_rounds is None:
            self.scaling_rounds = 10 if self.quick else 12
        if self.dask_input_gigabytes is None:
            self.dask_input_gigabytes = 0.02 if self.quick else 1.0
        elif not self.dask_input_gigabytes > 0:  # NaN too
            raise ValueError(f"dask_input_gigabytes must be positive, got {self.dask_input_gigabytes}")

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
    #: Extra sections (:mod:`.sections`), in run order.
    sections: list[Section] = field(default_factory=list)


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


def _calibrate(
    cfg: SuiteConfig, workload: Workload, client: Client, workers: list[str], unit_seconds: float
) -> _Calibration:
    """The bare floor, then a synchronous fit without stragglers (which also warms the cluster up).

    With emulated work (the scenario's ``unit_seconds``) the fit emulates it
    too, so the oracle's work per round includes it.
    """
    floor_s = seconds_per_call(lambda: floor_round(client, workers), 15 if cfg.quick else 100)
    clean = Scenario("calibration", "none", len(workers), unit_seconds=unit_seconds).injection(client, workers)
    sync, counters = _measured(
        client, clean.start, clean.stop,
        lambda: C.run_quorum(workload, "sync", client=client, redundancy=1, max_iter=cfg.max_iter,
                             seed=cfg.seed, target=workload.target()),
    )
    clean = sync.time_to_target_s if math.isfinite(sync.time_to_target_s) else sync.fit_s
    return _Calibration(floor_s, counters.compute_s / max(1, sync.rounds), sync.rounds_to_target, clean)


def workload_rows(workload: Workload) -> int | None:
    """Rows of a workload's data (the work units its tasks declare), None when it has no row matrix."""
    X = getattr(workload, "X", None)
    return int(X.shape[0]) if X is not None else None


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
    if name in scenario.skip:
        raise _Skipped(f"{name} skipped in {scenario.name}: {scenario.skip_reason}")
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
        cal = _calibrate(cfg, workload, client, workers, scenario.unit_seconds)
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
            # asap's peer loops run outside Dask tasks: its own history counts their steps and messages
            outcome.bytes_out = counters.bytes_out + outcome.peer_bytes
            outcome.compute_s = counters.compute_s + outcome.peer_compute_s
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
            floor = seconds_per_call(lambda: floor_round(client, workers), cfg.overhead_rounds)  # noqa: B023
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
    """Run every workload, scenario and contender of ``cfg``, then the overhead table and the sections."""
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
            try:
                scenario = scenario.for_rows(workload_rows(workload))
            except ValueError as exc:
                result.notes.append(f"{scenario.name} skipped on {name}: {exc}")
                continue
            result.scenarios.append(
                run_scenario(cfg, workload, scenario, single=single, iterations=iterations, log=log)
            )
    if cfg.overhead_workers:
        result.overhead = run_overhead(cfg, log=log)
    for name in cfg.sections:
        try:
            result.sections.append(SECTIONS[name](cfg, log))
        except SectionUnavailable as exc:
            result.notes.append(f"section {name} skipped: {exc}")
            log(result.notes[-1])
    return result
