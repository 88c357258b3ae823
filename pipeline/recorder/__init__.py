"""The latency recorder: a scheduler plugin keeping one row per finished task.

Holds :class:`LatencyRecorder` (scheduler side), :func:`attach` and
:func:`latencies` (client side) and the conversion of its rows to an
:class:`xarray.Dataset`. ``dask scheduler --preload
dask_quorum.pipeline.recorder`` installs it at start-up (:func:`dask_setup`).

Imports Dask and ``dask_quorum.config``; no other ``pipeline`` subpackage.
"""

from .plugin import (
    FIELDS,
    HANDLER,
    ROWS_TOPIC,
    UNITS_ANNOTATION,
    LatencyRecorder,
    attach,
    dask_setup,
    latencies,
    rows_to_dataset,
)

__all__ = [
    "FIELDS",
    "HANDLER",
    "ROWS_TOPIC",
    "UNITS_ANNOTATION",
    "LatencyRecorder",
    "attach",
    "dask_setup",
    "latencies",
    "rows_to_dataset",
]
