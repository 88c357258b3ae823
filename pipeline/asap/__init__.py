"""ASAP mode: asynchronous stochastic reduce with NOTIFY-ACK, no driver barrier.

Holds the peer graphs (:mod:`.graph`), the NOTIFY-ACK state machine
(:mod:`.protocol`), the per-worker loop and its peer-to-peer messages
(:mod:`.peer_run`), the worker plugin whose handlers start, control and
collect those loops (:mod:`.worker`), the driver that starts, leases and
collects runs (:mod:`.driver`), what a run returns and how it fails
(:mod:`.result`), its round summaries for the dashboard
(:mod:`.progress`), and the two workloads: gradient tracking for the
linear models (:mod:`.glm`, :mod:`.fit`) and asynchronous block iteration
for PageRank (:mod:`.pagerank`).

May import :mod:`~dask_quorum.pipeline.cluster`,
:mod:`~dask_quorum.pipeline.engine`, :mod:`~dask_quorum.pipeline.pagerank`,
:mod:`~dask_quorum.pipeline.inject` (slowed steps),
:mod:`~dask_quorum.pipeline.recorder` and the dashboard's reporter.
"""

from .driver import run_asap
from .fit import AsapFit, fit_asap
from .glm import (
    GLMSpec,
    TrackingBuilder,
    TrackingProgram,
    curvature_bound,
    curvature_sample,
    hessian_blocks,
)
from .graph import GRAPH_KINDS, PeerGraph, default_degree, make_graph, spectral_gap
from .pagerank import (
    BlockRankBuilder,
    BlockRankProgram,
    honest_residuals,
    pagerank_asap,
)
from .peer_run import STEP_PREFIX, PeerRun
from .progress import ERRORS, SLOW_STEP
from .protocol import NotifyAck, ProtocolError, Send
from .result import AsapError, AsapResult, AsapTimeoutError, consensus_error
from .worker import PLUGIN_NAME, AsapWorkerPlugin, InMemory

__all__ = [
    "ERRORS",
    "GRAPH_KINDS",
    "PLUGIN_NAME",
    "SLOW_STEP",
    "STEP_PREFIX",
    "AsapError",
    "AsapFit",
    "AsapResult",
    "AsapTimeoutError",
    "AsapWorkerPlugin",
    "BlockRankBuilder",
    "BlockRankProgram",
    "GLMSpec",
    "InMemory",
    "NotifyAck",
    "PeerGraph",
    "PeerRun",
    "ProtocolError",
    "Send",
    "TrackingBuilder",
    "TrackingProgram",
    "consensus_error",
    "curvature_bound",
    "curvature_sample",
    "default_degree",
    "fit_asap",
    "hessian_blocks",
    "honest_residuals",
    "make_graph",
    "pagerank_asap",
    "run_asap",
    "spectral_gap",
]
