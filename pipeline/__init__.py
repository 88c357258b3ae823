"""The dask-quorum engine, one subpackage per concept.

=================  ==========================================================
``coding``         gradient codes and their decoding (pure NumPy)
``stragglers``     straggler models fitted from latencies (pure NumPy/SciPy)
``planning``       simulate every scheme on a model, recommend one (pure)
``recorder``       the latency-recording scheduler plugin
``profiling``      probe a running cluster, fit and save its model
``inject``         make chosen workers slow: chains, trace replay, emulated work
``cluster``        the client, the scheduler's live workers, a subprocess cluster
``engine``         placement, coded rounds, sessions, faults, adaptation, fits
``data``           dask collections as data: validation, partitions on the workers
``pagerank``       the graph in blocks, coded power iteration
``asap``           asynchronous stochastic reduce with NOTIFY-ACK
``dashboard``      the ``/individual-stragglers`` page and what feeds it
=================  ==========================================================

Each subpackage's docstring says what it may import; ``tests/test_layering.py``
holds the same table and fails on a forbidden import.

The names below are the engine's public entry points: the estimators
(:mod:`dask_quorum.estimators`) import these and nothing else of the
engine. They are imported on first use (PEP 562), so that a scheduler that
preloads :mod:`dask_quorum.pipeline.recorder` does not load the whole
engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> subpackage (relative to this package) that exports it
_EXPORTS: dict[str, str] = {
    # what the estimators use
    "SCHEMES": ".coding",
    "get_client": ".cluster",
    "worker_addresses": ".cluster",
    "fit_by_rounds": ".engine",
    "fit_asap": ".asap",
    "pagerank_by_rounds": ".pagerank",
    "pagerank_asap": ".asap",
    "PageRankFit": ".pagerank",
    "DaskGraph": ".pagerank",
    "EdgeListGraph": ".pagerank",
    "LocalGraph": ".pagerank",
    "check_dask_input": ".data",
    "weigh_classes": ".data",
    "is_dask_input": ".data",
    "map_rows": ".data",
    "schema": ".data",
    "score_on_cluster": ".data",
    # the building blocks, for users of the engine itself
    "GradientCode": ".coding",
    "make_code": ".coding",
    "CodedSession": ".engine",
    "DaskRows": ".data",
    "CollectionPartitions": ".data",
    "RoundRecord": ".engine",
    "RoundRunner": ".engine",
    "RoundTimeoutError": ".engine",
    "Plan": ".planning",
    "plan": ".planning",
    "simulate": ".planning",
    "LatencyRecorder": ".recorder",
    "attach": ".recorder",
    "latencies": ".recorder",
    "Slowdown": ".inject",
    "StragglerInjector": ".inject",
    "TraceReplay": ".inject",
    "inject_stragglers": ".inject",
    "remove_stragglers": ".inject",
    "StragglerModel": ".stragglers",
    "fit_straggler_model": ".stragglers",
    "latency_matrix": ".stragglers",
    "load_trace": ".stragglers",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from .asap import fit_asap, pagerank_asap
    from .cluster import get_client, worker_addresses
    from .coding import SCHEMES, GradientCode, make_code
    from .data import (
        CollectionPartitions,
        DaskRows,
        check_dask_input,
        is_dask_input,
        map_rows,
        schema,
        score_on_cluster,
        weigh_classes,
    )
    from .engine import (
        CodedSession,
        RoundRecord,
        RoundRunner,
        RoundTimeoutError,
        fit_by_rounds,
    )
    from .inject import (
        Slowdown,
        StragglerInjector,
        TraceReplay,
        inject_stragglers,
        remove_stragglers,
    )
    from .pagerank import DaskGraph, EdgeListGraph, LocalGraph, PageRankFit, pagerank_by_rounds
    from .planning import Plan, plan, simulate
    from .recorder import LatencyRecorder, attach, latencies
    from .stragglers import (
        StragglerModel,
        fit_straggler_model,
        latency_matrix,
        load_trace,
    )


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
