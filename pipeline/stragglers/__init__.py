"""Straggler models: who is slow, how often, how persistently, how slow.

Holds trace files (``traces``: reading the EC2 trace CSV), latency
matrices (``matrix``: from arrays, long frames, trace CSVs or the
recorder's Dataset), the slow/fast states (``states``: the straggle
indicator, its transitions, the current states), the per-state latency
distributions (``distributions``), the per-worker two-state Markov model
with its shifted-exponential latencies (``model``) and its fitting
(``fit``, which also states the model's definitions).

Pure NumPy/SciPy/pandas/xarray: imports nothing of Dask and no other
``pipeline`` subpackage.
"""

from .fit import fit_straggler_model
from .matrix import latency_matrix, round_spans
from .model import StragglerModel
from .states import current_states
from .traces import TRACE_COLUMNS, load_trace, trace_rows

__all__ = [
    "TRACE_COLUMNS",
    "StragglerModel",
    "current_states",
    "fit_straggler_model",
    "latency_matrix",
    "load_trace",
    "round_spans",
    "trace_rows",
]
