"""The dask-quorum engine: coding, straggler models, recording, injection, rounds.

Pure NumPy/SciPy: :mod:`.coding`, :mod:`.stragglers`, :mod:`.planning`.
Talking to Dask: :mod:`.cluster`, :mod:`.placement`, :mod:`.rounds`,
:mod:`.session`, :mod:`.fit`, :mod:`.adapt`, :mod:`.recorder`,
:mod:`.injection`.
"""

from .coding import SCHEMES, GradientCode, make_code
from .injection import Slowdown, StragglerInjector, TraceReplay, inject_stragglers, remove_stragglers
from .planning import Plan, plan, simulate
from .recorder import LatencyRecorder, attach, latencies
from .rounds import RoundRecord, RoundRunner, RoundTimeoutError
from .session import CodedSession
from .stragglers import StragglerModel, fit_straggler_model, latency_matrix, load_trace

__all__ = [
    "SCHEMES",
    "CodedSession",
    "GradientCode",
    "LatencyRecorder",
    "Plan",
    "RoundRecord",
    "RoundRunner",
    "RoundTimeoutError",
    "Slowdown",
    "StragglerInjector",
    "StragglerModel",
    "TraceReplay",
    "attach",
    "fit_straggler_model",
    "inject_stragglers",
    "latencies",
    "latency_matrix",
    "load_trace",
    "make_code",
    "plan",
    "remove_stragglers",
    "simulate",
]
