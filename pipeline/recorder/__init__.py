"""The latency recorder: a scheduler plugin keeping one row per finished task.

Holds :class:`LatencyRecorder` and its preload hook :func:`dask_setup`
(scheduler side, :mod:`.plugin`), :func:`attach` and :func:`latencies`
(client side, :mod:`.client`) and the rows' columns :data:`FIELDS` with
their conversion to an :class:`xarray.Dataset` (:func:`rows_to_dataset`,
:mod:`.rows`). ``dask scheduler --preload dask_quorum.pipeline.recorder``
installs it at start-up (:func:`dask_setup`).

Imports Dask and ``dask_quorum.config``; no other ``pipeline`` subpackage.
"""

from .client import attach, latencies
from .plugin import (
    HANDLER,
    MEMBERSHIP_TOPIC,
    ROWS_TOPIC,
    UNITS_ANNOTATION,
    LatencyRecorder,
    dask_setup,
)
from .rows import FIELDS, rows_to_dataset

__all__ = [
    "FIELDS",
    "HANDLER",
    "MEMBERSHIP_TOPIC",
    "ROWS_TOPIC",
    "UNITS_ANNOTATION",
    "LatencyRecorder",
    "attach",
    "dask_setup",
    "latencies",
    "rows_to_dataset",
]
