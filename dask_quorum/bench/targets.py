"""The issue's targets, checked against one run's numbers (pure).

Each :class:`Target` says met, missed, or not measured in this run (a
contender or scenario left out), with the numbers it was judged on. The
suite prints them; unit tests never assert them (speed is not a unit-test
property).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .contenders import DASK_ML_SOLVERS, QUORUM_SCHEMES

__all__ = ["Target", "evaluate_targets", "format_target"]

#: Thresholds of the targets.
PERSISTENT_VS_SYNC = 5.0
PERSISTENT_VS_DASK_ML = 3.0
ORACLE_FACTOR = 1.5
AUTO_VS_SYNC = 1.1
OVERHEAD_FACTOR = 1.5
ASAP_VS_SYNC = 2.0
ASAP_BYTES = 4.0


_UNMEASURED = "not measured in this run (a contender or scenario left out, or neither reached the target)"


@dataclass(frozen=True)
class Target:
    """One target: ``met`` is True, False, or None when not measured."""

    name: str
    met: bool | None
    detail: str


def format_target(t: Target) -> str:
    """``[met] name: detail`` (or ``[missed]``, ``[not measured]``)."""
    status = {True: "met", False: "missed", None: "not measured"}[t.met]
    return f"[{status}] {t.name}: {t.detail}"


def _time(result, name: str) -> float:
    o = result.outcome(name)
    return o.time_to_target_s if o is not None else math.nan


def _ratio(a: float, b: float) -> float:
    """a / b for times where inf means never: a finite over never is 0, never over finite inf."""
    if math.isnan(a) or math.isnan(b) or (math.isinf(a) and math.isinf(b)):
        return math.nan
    return a / b


def _best_scheme(result) -> tuple[str, float]:
    times = [
        (o.time_to_target_s, o.contender)
        for o in result.outcomes
        if o.contender in QUORUM_SCHEMES and o.contender != "sync"
    ]
    if not times:
        return "", math.nan
    t, name = min(times)
    return name, t


def _at_least(name: str, ratio: float, bound: float, what: str) -> Target:
    if math.isnan(ratio):
        return Target(name, None, f"{what}: {_UNMEASURED}")
    return Target(name, ratio >= bound, f"{what} = {ratio:.2f} (target >= {bound:g})")


def _at_most(name: str, ratio: float, bound: float, what: str) -> Target:
    if math.isnan(ratio):
        return Target(name, None, f"{what}: {_UNMEASURED}")
    return Target(name, ratio <= bound, f"{what} = {ratio:.2f} (target <= {bound:g})")


def _persistent_targets(r, dask_ml: bool) -> list[Target]:
    label = f"{r.workload}, {r.scenario.name}"
    best, t_best = _best_scheme(r)
    sync = _time(r, "sync")
    best = best or "best scheme"
    out = [
        _at_least(f"{label}: best scheme vs sync", _ratio(sync, t_best), PERSISTENT_VS_SYNC,
                  f"sync / {best} time to target ({sync:.2f} s / {t_best:.2f} s)"),
    ]
    if dask_ml:
        times = [_time(r, n) for n in DASK_ML_SOLVERS if r.outcome(n) is not None]
        out.append(_at_least(f"{label}: best scheme vs dask-ml's fastest solver",
                             _ratio(min(times, default=math.nan), t_best), PERSISTENT_VS_DASK_ML,
                             f"fastest dask-ml / {best} time to target"))
    out.append(_at_most(f"{label}: best scheme vs oracle bound", _ratio(t_best, r.oracle_s), ORACLE_FACTOR,
                        f"{best} / oracle ({t_best:.2f} s / {r.oracle_s:.2f} s)"))
    if r.outcome("asap") is not None:
        out.append(_at_least(f"{label}: asap vs sync", _ratio(sync, _time(r, "asap")), ASAP_VS_SYNC,
                             "sync / asap time to target"))
    return out


def _node_bytes_per_round(o) -> float:
    """Payload bytes per round through the busiest node, from the engine's history."""
    return o.node_bytes_per_round if o is not None else math.nan


def evaluate_targets(result) -> list[Target]:
    """Every target the run can judge, in a stable order.

    Parameters
    ----------
    result : SuiteResult
    """
    out: list[Target] = []
    for r in result.scenarios:
        kind, name = r.scenario.kind, r.scenario.name
        workload = result.workloads.get(r.workload)
        dask_ml = workload is None or "dask-ml" in workload.families
        if kind == "persistent" and r.scenario.factor == 10:
            out.extend(_persistent_targets(r, dask_ml))
        if kind == "persistent" and r.scenario.n_workers == 16 and r.outcome("asap") is not None:
            sync_b, asap_b = _node_bytes_per_round(r.outcome("sync")), _node_bytes_per_round(r.outcome("asap"))
            out.append(_at_least(f"{r.workload}, {name}: asap bytes per round vs sync",
                                 _ratio(sync_b, asap_b), ASAP_BYTES,
                                 "sync / asap payload bytes per round through the busiest node"))
        if kind == "none":
            sync = _time(r, "sync")
            out.append(_at_most(f"{r.workload}, no stragglers: auto vs sync", _ratio(_time(r, "auto"), sync),
                                AUTO_VS_SYNC, "auto / sync time to target"))
            if dask_ml:
                out.append(_at_most(f"{r.workload}, no stragglers: sync vs dask-ml gradient_descent",
                                    _ratio(sync, _time(r, "dask-ml-gd")), 1.0,
                                    "sync / dask-ml gradient_descent time to target"))
    for row in result.overhead:
        worst = max(row.rounds_s.values()) / row.floor_s
        out.append(_at_most(f"engine overhead, {row.workers} workers", worst, OVERHEAD_FACTOR,
                            "slowest empty engine round / bare floor"))
    return out
