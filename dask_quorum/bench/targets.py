"""The issue's targets, checked against one run's numbers (pure).

Each :class:`Target` says met, missed, or not measured in this run (a
contender or scenario left out), with the numbers it was judged on. The
suite prints them; unit tests never assert them (speed is not a unit-test
property).

Every target compares times to the target loss. A comparison is judged on
measured times only: when a contender it names ran but never reached the
target, the target is **missed** and the detail says who never reached it
and in how long a fit (an infinite or zero ratio would pass for a
measurement); when a contender it names was not run, it is **not
measured**.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .contenders import DASK_ML_SOLVERS, QUORUM_SCHEMES
from .scenarios import R2_SCENARIO
from .workloads import TARGET_RATIO

__all__ = ["EXACT_SCHEMES", "Target", "evaluate_targets", "format_target"]

#: Thresholds of the targets.
PERSISTENT_VS_SYNC = 5.0
PERSISTENT_VS_DASK_ML = 3.0
ORACLE_FACTOR = 1.5
AUTO_VS_SYNC = 1.05
AUTO_VS_BEST = 1.1
HETEROGENEOUS_VS_BEST_EXACT = 1.1
R2_VS_CYCLIC = 3.0
R2_VS_SYNC = 4.0
OVERHEAD_FACTOR = 1.5
ASAP_VS_SYNC = 2.0
ASAP_BYTES = 4.0

#: Fixed schemes that decode exactly; also the schemes ``auto`` chooses from.
EXACT_SCHEMES = ("sync", "frc", "cyclic", "heterogeneous")


_LABELS = {"dask-ml-gd": "dask-ml gradient_descent", "dask-ml-lbfgs": "dask-ml lbfgs"}


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


@dataclass(frozen=True)
class _Time:
    """A contender's time to target: NaN when it did not run, inf when it never got there."""

    label: str
    seconds: float
    fit_s: float = math.nan
    note: str = ""

    @property
    def never(self) -> str:
        """Why this time is no measurement: who never reached the target, in how long a fit."""
        where = f" in {self.fit_s:.1f} s" if math.isfinite(self.fit_s) else ""
        why = f" ({self.note})" if self.note else ""
        return f"{self.label} never reached {TARGET_RATIO:g} x optimum{where}{why}"


def _time(result, name: str) -> _Time:
    label = _LABELS.get(name, name)
    o = result.outcome(name)
    if o is None:
        return _Time(label, math.nan)
    return _Time(label, o.time_to_target_s, o.fit_s, o.note)


def _best(result, names: Sequence[str], label: str) -> _Time:
    """The fastest of ``names`` that ran (``label`` names the group when none reached the target)."""
    ran = [_time(result, n) for n in names if result.outcome(n) is not None]
    if not ran:
        return _Time(label, math.nan)
    reached = [t for t in ran if math.isfinite(t.seconds)]
    if not reached:
        return _Time(f"no {label} ({', '.join(t.label for t in ran)})", math.inf)
    return min(reached, key=lambda t: t.seconds)


def _judge(name: str, num: _Time, den: _Time, bound: float, *, at_least: bool, what: str = "") -> Target:
    """``num / den`` against ``bound``, judged only on measured times."""
    what = what or f"{num.label} / {den.label} time to target"
    missing = [t.label for t in (num, den) if math.isnan(t.seconds)]
    if missing:
        return Target(name, None, f"{what}: not measured ({', '.join(missing)} not run in this run)")
    never = [t.never for t in (num, den) if math.isinf(t.seconds)]
    if never:
        return Target(name, False, f"{what}: " + "; ".join(never))
    if den.seconds <= 0:
        return Target(name, None, f"{what}: not measured ({den.label} took {den.seconds:g} s)")
    ratio = num.seconds / den.seconds
    met = ratio >= bound if at_least else ratio <= bound
    sign = ">=" if at_least else "<="
    return Target(name, met, f"{what} ({num.seconds:.2f} s / {den.seconds:.2f} s) = {ratio:.2f} "
                             f"(target {sign} {bound:g})")


def _value(name: str, value: float, bound: float, what: str, *, at_least: bool) -> Target:
    """A measured quantity (not a time to target) against ``bound``."""
    if not math.isfinite(value):
        return Target(name, None, f"{what}: not measured in this run")
    met = value >= bound if at_least else value <= bound
    return Target(name, met, f"{what} = {value:.2f} (target {'>=' if at_least else '<='} {bound:g})")


def _persistent_targets(r, dask_ml: bool) -> list[Target]:
    label = f"{r.workload}, {r.scenario.name}"
    schemes = [n for n in QUORUM_SCHEMES if n != "sync"]
    best, sync = _best(r, schemes, "scheme"), _time(r, "sync")
    out = [_judge(f"{label}: best scheme vs sync", sync, best, PERSISTENT_VS_SYNC, at_least=True)]
    if dask_ml:
        fastest = _best(r, list(DASK_ML_SOLVERS), "dask-ml solver")
        out.append(_judge(f"{label}: best scheme vs dask-ml's fastest solver", fastest, best,
                          PERSISTENT_VS_DASK_ML, at_least=True))
    oracle = _Time("oracle", r.oracle_s)
    out.append(_judge(f"{label}: best scheme vs oracle bound", best, oracle, ORACLE_FACTOR, at_least=False))
    if r.outcome("asap") is not None:
        out.append(_judge(f"{label}: asap vs sync", sync, _time(r, "asap"), ASAP_VS_SYNC, at_least=True))
    return out


def _r2_targets(r) -> list[Target]:
    """The redundancy-2 scenario: heterogeneous must beat the uniform codes that wait for slow workers."""
    label = f"{r.workload}, {r.scenario.name}"
    het = _time(r, "heterogeneous")
    return [
        _judge(f"{label}: heterogeneous vs cyclic", _time(r, "cyclic"), het, R2_VS_CYCLIC, at_least=True),
        _judge(f"{label}: heterogeneous vs sync", _time(r, "sync"), het, R2_VS_SYNC, at_least=True),
    ]


def _exact_targets(r) -> list[Target]:
    """Heterogeneous (off the redundancy-2 scenario) and auto (everywhere) near the best exact scheme."""
    label = f"{r.workload}, {r.scenario.name}"
    best = _best(r, EXACT_SCHEMES, "exact scheme")
    out = []
    if r.scenario.name != R2_SCENARIO:
        out.append(_judge(f"{label}: heterogeneous vs best exact scheme", _time(r, "heterogeneous"), best,
                          HETEROGENEOUS_VS_BEST_EXACT, at_least=False))
    out.append(_judge(f"{label}: auto vs best exact scheme", _time(r, "auto"), best, AUTO_VS_BEST,
                      at_least=False))
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
        dask_ml = (workload is None or "dask-ml" in workload.families) and not r.scenario.unit_seconds
        if kind == "persistent" and r.scenario.factor == 10:
            out.extend(_persistent_targets(r, dask_ml))
        if name == R2_SCENARIO:
            out.extend(_r2_targets(r))
        if kind == "persistent" and r.scenario.n_workers == 16 and r.outcome("asap") is not None:
            sync_b, asap_b = _node_bytes_per_round(r.outcome("sync")), _node_bytes_per_round(r.outcome("asap"))
            out.append(_value(f"{r.workload}, {name}: asap bytes per round vs sync",
                              sync_b / asap_b if asap_b > 0 else math.nan, ASAP_BYTES,
                              "sync / asap payload bytes per round through the busiest node", at_least=True))
        if kind == "none":
            out.append(_judge(f"{r.workload}, no stragglers: auto vs sync", _time(r, "auto"), _time(r, "sync"),
                              AUTO_VS_SYNC, at_least=False))
            if dask_ml:
                out.append(_judge(f"{r.workload}, no stragglers: sync vs dask-ml gradient_descent",
                                  _time(r, "sync"), _time(r, "dask-ml-gd"), 1.0, at_least=False))
        out.extend(_exact_targets(r))
    for row in result.overhead:
        worst = max(row.rounds_s.values()) / row.floor_s
        out.append(_value(f"engine overhead, {row.workers} workers", worst, OVERHEAD_FACTOR,
                          "slowest empty engine round / bare floor", at_least=False))
    return out
