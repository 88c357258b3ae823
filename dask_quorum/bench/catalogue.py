"""The scenario catalogue: every scenario a run can pick, by name and by group.

Names are ``none``, ``persistent-<factor>x-n<workers>`` (redundancy = slow
workers + 1), ``persistent-10x-n16-r2`` (redundancy 2, emulated work, no
``asap``), ``trace-<trace>`` and ``halfway-10x``; a group is the part
before the first ``-`` (``persistent`` picks every persistent scenario).
Sizes depend on quick mode; the run's options (``p_slow_fast``, ``delay``,
``seed``, the traces file) apply to every scenario, ``unit_seconds`` to
every scenario but the redundancy-2 one, which emulates its own work
(:data:`R2_PARTITION_S`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .scenarios import R2_SCENARIO, Scenario

__all__ = ["FULL_DEFAULTS", "QUICK_DEFAULTS", "R2_PARTITION_S", "build_scenarios", "catalogue"]

#: Scenarios each workload runs in full mode unless ``--scenarios`` is given.
FULL_DEFAULTS = {
    "flights": ("none", "persistent", "trace", "halfway"),
    "synthetic-logistic": ("none", "persistent"),
    "synthetic-linear": ("none", "persistent-10x-n8"),
    "pagerank": ("none", "persistent-10x-n8", "persistent-10x-n16"),
}

#: Emulated seconds per partition (a worker's share) of the redundancy-2
#: scenario (full, quick), whatever ``--unit-seconds`` says: the scenario is
#: about compute-bound rounds, where a code that waits for a 10x straggler
#: loses about 10 shares of work per round and one that decodes from the 12
#: fast workers 1.3 to 2; with 0.05 s the in-process cluster's fixed cost
#: per round (50-100 ms on 2 cores) was as large as the work itself.
R2_PARTITION_S = 0.2
R2_PARTITION_S_QUICK = 0.01

#: Why the redundancy-2 scenario leaves ``asap`` out (it is about codes; asap is measured in the others).
R2_SKIP_ASAP = (
    "it places no replicas, so redundancy 2 means nothing to it, and under emulated work its ten local "
    "steps per L-BFGS round each wait for the 10x slow workers: minutes per fit, measured in the other "
    "persistent scenarios"
)

#: Scenarios of quick mode.
QUICK_DEFAULTS = ("none", "persistent-10x-n4")


def catalogue(cfg: Any) -> dict[str, Scenario | str]:
    """Every scenario by name; a str instead says why it cannot run here."""
    persistent = {"p_slow_fast": cfg.p_slow_fast, "delay": cfg.delay, "seed": cfg.seed}
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
    # redundancy 2 against 4 slow workers: uniform codes wait for a slow worker every round
    r2 = Scenario(R2_SCENARIO, "persistent", 16, factor=10, redundancy=2,
                  partition_s=R2_PARTITION_S_QUICK if cfg.quick else R2_PARTITION_S, **persistent,
                  skip=("asap",), skip_reason=R2_SKIP_ASAP)
    out[r2.name] = r2
    out["halfway-10x"] = Scenario("halfway-10x", "halfway", base, factor=10, delay=cfg.delay, seed=cfg.seed)
    return {
        k: replace(s, unit_seconds=cfg.unit_seconds) if isinstance(s, Scenario) and not s.partition_s else s
        for k, s in out.items()
    }


def build_scenarios(cfg: Any, names: Sequence[str]) -> tuple[list[Scenario], list[str]]:
    """Scenarios named by ``names`` (names or groups), and notes on those skipped.

    Raises
    ------
    ValueError
        On a name that matches no scenario; the message lists them.
    """
    known = catalogue(cfg)
    picked: list[Scenario] = []
    notes: list[str] = []
    for name in names:
        matches = [k for k in known if name in (k, k.split("-")[0])]
        if not matches:
            raise ValueError(f"unknown scenario {name!r}; known: {list(known)}")
        for key in matches:
            s = known[key]
            if isinstance(s, str):
                notes.append(f"{key} skipped: {s}")
            elif s not in picked:
                picked.append(s)
    return picked, list(dict.fromkeys(notes))
