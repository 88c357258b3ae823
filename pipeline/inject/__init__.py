"""Straggler injection: make chosen workers slow for any Dask task, reproducibly.

Holds the slowdown specification (seeded Markov chains), trace replay, the
worker plugin that slows tasks and emulates work, and the client calls
that install, read and remove it.

May import :mod:`~dask_quorum.pipeline.cluster`,
:mod:`~dask_quorum.pipeline.recorder` (the work-units annotation) and
:mod:`~dask_quorum.pipeline.stragglers` (trace files).
"""

from .plugin import (
    InjectionRecord,
    Slowdown,
    StragglerInjector,
    inject_stragglers,
    injection_log,
    remove_stragglers,
    slow_states,
    slow_step,
)
from .replay import TRACE_COLUMNS, TraceReplay

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
