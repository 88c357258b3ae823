"""Straggler injection: make chosen workers slow for any Dask task, reproducibly.

Holds the slowdown specification (``slowdown``: seeded Markov chains),
trace replay (``replay``), the per-task schedules of both (``schedules``),
the worker plugin that slows tasks and emulates work (``plugin``), and the
client calls that install, read and remove it (``control``).

May import :mod:`~dask_quorum.pipeline.cluster`,
:mod:`~dask_quorum.pipeline.recorder` (the work-units annotation) and
:mod:`~dask_quorum.pipeline.stragglers` (trace files: only when a replay is
read from a CSV, so that a worker that unpickles the injector loads no
pandas, SciPy or xarray; :data:`TRACE_COLUMNS` is the trace reader's, and is
imported on first use too).
"""

from __future__ import annotations

from typing import Any

from .control import inject_stragglers, injection_log, remove_stragglers
from .plugin import InjectionRecord, StragglerInjector, slow_step
from .replay import TraceReplay
from .slowdown import Slowdown, slow_states

__all__ = [
    "TRACE_COLUMNS",
    "InjectionRecord",
    "Slowdown",
    "StragglerInjector",
    "TraceReplay",
    "inject_stragglers",
    "injection_log",
    "remove_stragglers",
    "slow_states",
    "slow_step",
]


def __getattr__(name: str) -> Any:
    if name == "TRACE_COLUMNS":  # the columns a trace CSV must have
        from ..stragglers import TRACE_COLUMNS

        return TRACE_COLUMNS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
