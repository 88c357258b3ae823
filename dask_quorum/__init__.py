"""dask-quorum: straggler-tolerant iterative machine learning on Dask.

The estimators run their rounds of gradient work on a Dask cluster, place
data partitions on workers redundantly (gradient coding) and let every round
go on with the first sufficient set of workers. A scheduler plugin records
per-worker latencies, from which straggler models are fitted and codes are
shaped.

The public names are imported on first use (PEP 562), so that a scheduler
or worker that imports ``dask_quorum`` for a plugin or a preload does not
pay for scikit-learn on its event loop.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dask_quorum import config  # noqa: F401  (registers the quorum.* defaults)

__version__ = "0.1.0.dev0"

#: public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "LinearRegression": ("dask_quorum.estimators", "LinearRegression"),
    "LogisticRegression": ("dask_quorum.estimators", "LogisticRegression"),
    "PageRank": ("dask_quorum.estimators", "PageRank"),
    "ClusterProfile": ("dask_quorum.pipeline.profiling", "ClusterProfile"),
    "LatencyRecorder": ("dask_quorum.pipeline.recorder", "LatencyRecorder"),
    "Slowdown": ("dask_quorum.pipeline.inject", "Slowdown"),
    "StragglerInjector": ("dask_quorum.pipeline.inject", "StragglerInjector"),
    "StragglerModel": ("dask_quorum.pipeline.stragglers", "StragglerModel"),
    "TraceReplay": ("dask_quorum.pipeline.inject", "TraceReplay"),
    "attach": ("dask_quorum.pipeline.recorder", "attach"),
    "fit_straggler_model": ("dask_quorum.pipeline.stragglers", "fit_straggler_model"),
    "inject_stragglers": ("dask_quorum.pipeline.inject", "inject_stragglers"),
    "latencies": ("dask_quorum.pipeline.recorder", "latencies"),
    "load_profile": ("dask_quorum.pipeline.profiling", "load_profile"),
    "make_code": ("dask_quorum.pipeline.coding", "make_code"),
    "make_rmat_graph": ("dask_quorum.datasets", "make_rmat_graph"),
    "plan": ("dask_quorum.pipeline.planning", "plan"),
    "profile_cluster": ("dask_quorum.pipeline.profiling", "profile_cluster"),
    "register_dashboard": ("dask_quorum.pipeline.dashboard", "register"),
    "remove_stragglers": ("dask_quorum.pipeline.inject", "remove_stragglers"),
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from dask_quorum.datasets import make_rmat_graph
    from dask_quorum.estimators import LinearRegression, LogisticRegression, PageRank
    from dask_quorum.pipeline.coding import make_code
    from dask_quorum.pipeline.dashboard import register as register_dashboard
    from dask_quorum.pipeline.inject import (
        Slowdown,
        StragglerInjector,
        TraceReplay,
        inject_stragglers,
        remove_stragglers,
    )
    from dask_quorum.pipeline.planning import plan
    from dask_quorum.pipeline.profiling import (
        ClusterProfile,
        load_profile,
        profile_cluster,
    )
    from dask_quorum.pipeline.recorder import LatencyRecorder, attach, latencies
    from dask_quorum.pipeline.stragglers import StragglerModel, fit_straggler_model


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'dask_quorum' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
