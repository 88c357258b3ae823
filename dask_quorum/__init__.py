"""dask-quorum: straggler-tolerant iterative machine learning on Dask.

The estimators run their rounds of gradient work on a Dask cluster, place
data partitions on workers redundantly (gradient coding) and let every round
go on with the first sufficient set of workers.
"""

from dask_quorum import config  # noqa: F401  (registers the quorum.* defaults)
from dask_quorum.estimators import LinearRegression, LogisticRegression
from dask_quorum.pipeline.coding import make_code
from dask_quorum.pipeline.injection import (
    Slowdown,
    StragglerInjector,
    TraceReplay,
    inject_stragglers,
    remove_stragglers,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "LinearRegression",
    "LogisticRegression",
    "Slowdown",
    "StragglerInjector",
    "TraceReplay",
    "inject_stragglers",
    "make_code",
    "remove_stragglers",
]
