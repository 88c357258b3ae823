"""ASAP mode: asynchronous stochastic reduce with NOTIFY-ACK, no driver barrier.

Holds the peer graphs (:mod:`.graph`), the NOTIFY-ACK state machine
(:mod:`.protocol`), the per-worker loop and its peer-to-peer transport
(:mod:`.worker`), the driver that starts, leases and collects runs
(:mod:`.driver`), and the two workloads: gradient tracking for the linear
models (:mod:`.glm`, :mod:`.fit`) and asynchronous block iteration for
PageRank (:mod:`.pagerank`).

May import :mod:`~dask_quorum.pipeline.cluster`,
:mod:`~dask_quorum.pipeline.engine`, :mod:`~dask_quorum.pipeline.pagerank`,
:mod:`~dask_quorum.pipeline.inject` (slowed steps),
:mod:`~dask_quorum.pipeline.recorder` and the dashboard's reporter.
"""

from .driver import ERRORS, SLOW_STEP, AsapError, AsapResult, AsapTimeoutError, consensus_error, run_asap
from .fit import AsapFit, fit_asap
from .glm import GLMSpec, TrackingBuilder, TrackingProgram, curvature_bound, curvature_sample, hessian_blocks
from .graph import GRAPH_KINDS, PeerGraph, default_degree, make_graph, spectral_gap
from .pagerank import BlockRankBuilder, BlockRankProgram, honest_residuals, pagerank_asap
from .protocol import NotifyAck, ProtocolError, Send
from .worker import PLUGIN_NAME, STEP_PREFIX, AsapWorkerPlugin, InMemory, PeerRun

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
