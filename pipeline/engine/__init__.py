"""The coded-rounds engine: data placement, rounds, sessions, faults, adaptation, fits.

Holds everything a fit by coded rounds does on the cluster: placing
replicas (:mod:`.placement`), one round to the first sufficient subset
(:mod:`.rounds`: the runner; :mod:`.task`: the round task and its
parameters; :mod:`.answers`: when a round stops; :mod:`.record`: what it
records), a session that keeps one code with its data (:mod:`.session`)
and survives lost and joining workers (:mod:`.membership`: noticing them;
:mod:`.replan`: the new plan), the errors a fit ends with (:mod:`.errors`),
online re-fitting and re-encoding (:mod:`.adapt`; the code it picks:
:mod:`.choice`), the L-BFGS driver
(:mod:`.solver`), the history Dataset (:mod:`.history`) and the fit entry
point (:mod:`.fit`).

May import :mod:`~dask_quorum.pipeline.coding`,
:mod:`~dask_quorum.pipeline.stragglers`, :mod:`~dask_quorum.pipeline.planning`,
:mod:`~dask_quorum.pipeline.recorder`, :mod:`~dask_quorum.pipeline.cluster`
and the dashboard's client-side reporter.
"""

from .adapt import OnlineAdapter, effective_units
from .choice import (
    ADAPTIVE_SCHEMES,
    Forecast,
    choose_code,
    initial_code,
    loads_moved,
    should_rechoose,
    smoothed_probs,
)
from .errors import RoundTimeoutError, SchedulerLostError, WorkersLostError
from .fit import fit_by_rounds, row_partitions
from .history import asap_to_dataset, rounds_to_dataset
from .membership import HangDetector, SchedulerView, heartbeat_lag
from .placement import Placement
from .waits import compute_within, wait_in_memory
from .record import RoundRecord
from .rounds import RoundRunner
from .session import CodedSession
from .solver import SolverResult, lbfgs
from .task import ROUND_PREFIX, coded_partial

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
    "choose_code",
    "coded_partial",
    "compute_within",
    "effective_units",
    "fit_by_rounds",
    "heartbeat_lag",
    "initial_code",
    "lbfgs",
    "loads_moved",
    "rounds_to_dataset",
    "row_partitions",
    "should_rechoose",
    "smoothed_probs",
    "wait_in_memory",
]
