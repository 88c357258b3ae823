"""Straggler models: who is slow, how often, how persistently, how slow.

Holds latency matrices (from arrays, long frames, trace CSVs or the
recorder's Dataset), the per-worker two-state Markov model with its
shifted-exponential latencies, and its fitting.

Pure NumPy/SciPy/pandas/xarray: imports nothing of Dask and no other
``pipeline`` subpackage.
"""

from .model import StragglerModel, current_states, fit_straggler_model, latency_matrix, load_trace

__all__ = ["StragglerModel", "current_states", "fit_straggler_model", "latency_matrix", "load_trace"]
