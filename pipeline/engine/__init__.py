"""The coded-rounds engine: data placement, rounds, sessions, faults, adaptation, fits.

Holds everything a fit by coded rounds does on the cluster: placing
replicas (:mod:`.placement`), one round to the first sufficient subset
(:mod:`.rounds`), a session that keeps one code with its data and survives
lost and joining workers (:mod:`.session`, :mod:`.membership`), online
re-fitting and re-encoding (:mod:`.adapt`), the L-BFGS driver
(:mod:`.solver`), the history Dataset (:mod:`.history`) and the fit entry
point (:mod:`.fit`).

May import :mod:`~dask_quorum.pipeline.coding`,
:mod:`~dask_quorum.pipeline.stragglers`, :mod:`~dask_quorum.pipeline.planning`,
:mod:`~dask_quorum.pipeline.recorder`, :mod:`~dask_quorum.pipeline.cluster`
and the dashboard's client-side reporter.
"""

from .adapt import (
    ADAPTIVE_SCHEMES,
    Forecast,
    OnlineAdapter,
    effective_units,
    initial_code,
    loads_moved,
    smoothed_probs,
)
from .fit import fit_by_rounds, row_partitions
from .history import asap_to_dataset, rounds_to_dataset
from .membership import HangDetector, SchedulerLostError, SchedulerView, WorkersLostError, heartbeat_lag
from .placement import Placement, wait_in_memory
from .rounds import ROUND_PREFIX, RoundRecord, RoundRunner, RoundTimeoutError, coded_partial
from .session import CodedSession
from .solver import SolverResult, lbfgs

__all__ = [
    "ADAPTIVE_SCHEMES",
    "ROUND_PREFIX",
    "CodedSession",
    "Forecast",
    "HangDetector",
    "OnlineAdapter",
    "Placement",
    "RoundRecord",
    "RoundRunner",
    "RoundTimeoutError",
    "SchedulerLostError",
    "SchedulerView",
    "SolverResult",
    "WorkersLostError",
    "asap_to_dataset",
    "coded_partial",
    "effective_units",
    "fit_by_rounds",
    "heartbeat_lag",
    "initial_code",
    "lbfgs",
    "loads_moved",
    "row_partitions",
    "rounds_to_dataset",
    "smoothed_probs",
    "wait_in_memory",
]
