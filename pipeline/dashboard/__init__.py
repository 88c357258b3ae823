"""The dashboard page ``/individual-stragglers`` and what feeds it.

Holds the page (:mod:`.page`), its route onto a running scheduler's Bokeh
server (:mod:`.route`), :func:`register`, which puts the page, the fit
board and the latency recorder on a running cluster (:mod:`.install`),
the scheduler-side fit board (:mod:`.board`), the updates fits send it and
their checks (:mod:`.messages`), the client-side reporter a fit sends its
rounds with (:mod:`.reporter`) and the live straggler model re-fitted off
the scheduler's loop (:mod:`.livemodel`).

May import :mod:`~dask_quorum.pipeline.recorder` and
:mod:`~dask_quorum.pipeline.stragglers`; never the engine (the engine
imports the reporter).
"""

from .board import FitBoard, FitState, RoundSummary, board_of
from .install import register
from .livemodel import (
    QUANTILES,
    LatencyQuantiles,
    LiveModel,
    ModelSnapshot,
    summarize_latencies,
)
from .page import (
    ROUTE,
    SOURCES,
    StragglersPage,
    live_model,
    stragglers_doc,
    worker_labels,
)
from .reporter import FitReporter
from .route import bokeh_server, menu_entry, mount

__all__ = [
    "QUANTILES",
    "ROUTE",
    "SOURCES",
    "FitBoard",
    "FitReporter",
    "FitState",
    "LatencyQuantiles",
    "LiveModel",
    "ModelSnapshot",
    "RoundSummary",
    "StragglersPage",
    "board_of",
    "bokeh_server",
    "live_model",
    "menu_entry",
    "mount",
    "register",
    "stragglers_doc",
    "summarize_latencies",
    "worker_labels",
]
