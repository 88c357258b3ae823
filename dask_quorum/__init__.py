"""dask-quorum: straggler-tolerant iterative machine learning on Dask.

The estimators run their rounds of gradient work on a Dask cluster, place
data partitions on workers redundantly (gradient coding) and let every round
go on with the first sufficient set of workers. A scheduler plugin records
per-worker latencies, from which straggler models are fitted and codes are
shaped.
"""

from dask_quorum import config  # noqa: F401  (registers the quorum.* defaults)
from dask_quorum.estimators import LinearRegression, LogisticRegression
from dask_quorum.pipeline import (
    LatencyRecorder,
    Slowdown,
    StragglerInjector,
    StragglerModel,
    TraceReplay,
    attach,
    fit_straggler_model,
    inject_stragglers,
    latencies,
    make_code,
    plan,
    remove_stragglers,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "LatencyRecorder",
    "LinearRegression",
    "LogisticRegression",
    "Slowdown",
    "StragglerInjector",
    "StragglerModel",
    "TraceReplay",
    "attach",
    "fit_straggler_model",
    "inject_stragglers",
    "latencies",
    "make_code",
    "plan",
    "remove_stragglers",
]
