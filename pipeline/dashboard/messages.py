"""What a fit sends the scheduler's fit board: the handler, the limits, and the checks of every update.

A fit's :class:`~dask_quorum.pipeline.dashboard.FitReporter` sends batches of
updates to the scheduler handler :data:`HANDLER`, where the
:class:`~dask_quorum.pipeline.dashboard.FitBoard` checks every update of a
batch (:func:`check_assignment`, :func:`check_round`) before it applies
any. The limits here bound both sides: texts (:data:`MAX_TEXT`), workers
(:data:`MAX_WORKERS`) and updates per batch (:data:`MAX_BATCH`). Pure
Python and NumPy: the scheduler runs it on its event loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "ERROR_KINDS",
    "HANDLER",
    "KINDS",
    "MARKER",
    "MAX_BATCH",
    "MAX_TEXT",
    "MAX_WORKERS",
    "check_assignment",
    "check_indices",
    "check_number",
    "check_round",
    "check_text",
]

logger = logging.getLogger(__name__)

#: Name of the scheduler handler that takes the updates.
HANDLER = "quorum_fit_report"
#: Scheduler metadata (``Client.get_metadata``) set when a board is installed:
#: reporters look for it instead of calling a handler that may be missing
#: (which logs a warning with a traceback on the scheduler). The scheduler
#: drops the metadata of a task key when that task is forgotten, hence a
#: name no task is given.
MARKER = ("dask_quorum.pipeline.dashboard.board", "installed")
#: Longest accepted token, label, scheme, stop reason or worker address.
MAX_TEXT = 256
#: Largest number of workers in one assignment or round summary.
MAX_WORKERS = 4096
#: Kinds of error a round summary may carry: the decoding error of a coded
#: round, the consensus error of an ASAP round (replicas' largest distance
#: from their average), or a residual (an ASAP workload without replicas).
ERROR_KINDS = ("decoding", "consensus", "residual")
#: Kinds of update the handler takes.
KINDS = ("assignment", "round", "close")
#: Most updates in one batch (a reporter's queue is smaller).
MAX_BATCH = 4096


def check_text(value: Any, what: str, *, empty: bool = True) -> str:
    """``value`` if it is a string of at most :data:`MAX_TEXT` characters (and not empty unless ``empty``)."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT or (not empty and not value):
        raise ValueError(f"{what} must have 1 to {MAX_TEXT} characters, got {len(value)}")
    return value


def check_number(value: Any, what: str, *, nan: bool = False, minimum: float = -math.inf) -> float:
    """``value`` as a float if it is a finite number of at least ``minimum`` (or NaN, when ``nan``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{what} must be a number, got {type(value).__name__}")
    out = float(value)
    if math.isnan(out):
        if nan:
            return out
        raise ValueError(f"{what} must not be NaN")
    if math.isinf(out) or out < minimum:
        raise ValueError(f"{what} must be finite and >= {minimum:g}, got {out!r}")
    return out


def check_indices(value: Any, what: str, n_workers: int | None) -> tuple[int, ...]:
    """``value`` as a tuple of worker indices: at most :data:`MAX_WORKERS`, each below ``n_workers`` if known."""
    if not isinstance(value, list | tuple) or len(value) > MAX_WORKERS:
        raise ValueError(f"{what} must be a list of at most {MAX_WORKERS} worker indices")
    out = []
    for i in value:
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or i < 0:
            raise ValueError(f"{what} must hold non-negative integers, got {i!r}")
        if n_workers is not None and i >= n_workers:
            raise ValueError(f"{what}: worker index {i} out of range for {n_workers} workers")
        out.append(int(i))
    return tuple(out)


def check_assignment(update: Mapping[str, Any], max_cells: int) -> dict[str, Any]:
    """The fields of an ``"assignment"`` update, checked; ``B`` (read-only) only up to ``max_cells`` cells."""
    workers = update.get("workers")
    if not isinstance(workers, list | tuple) or not 1 <= len(workers) <= MAX_WORKERS:
        raise ValueError(f"workers must be a list of 1 to {MAX_WORKERS} addresses")
    workers = tuple(check_text(w, "a worker address", empty=False) for w in workers)
    scheme = check_text(update.get("scheme", ""), "scheme")
    B = update.get("B")
    if B is None:
        shape = update.get("shape")
        if not isinstance(shape, list | tuple) or len(shape) != 2:
            raise ValueError("an assignment without B needs its shape [n_workers, n_partitions]")
        n, k = (int(check_number(s, "shape", minimum=1)) for s in shape)
        matrix = None
    else:
        if not isinstance(B, list | tuple) or len(B) > MAX_WORKERS:
            raise ValueError("B must be a list of rows (one per worker)")
        cells = sum(len(row) if isinstance(row, list | tuple) else 0 for row in B)
        if cells > max_cells:
            raise ValueError(f"B has {cells} cells, more than the {max_cells} accepted")
        try:
            matrix = np.array(B, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"B must be a rectangular matrix of numbers: {exc}") from None
        if matrix.ndim != 2 or matrix.shape[1] < 1:
            raise ValueError(f"B must be 2-D (workers x partitions), got shape {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise ValueError("B must be finite")
        matrix.setflags(write=False)
        n, k = matrix.shape
    if n != len(workers):
        raise ValueError(f"B has {n} rows for {len(workers)} workers")
    return {"workers": workers, "scheme": scheme, "B": matrix, "shape": (n, k)}


def check_round(update: Mapping[str, Any], n_workers: int | None) -> dict[str, Any]:
    """The fields of a ``"round"`` update, checked (worker indices against ``n_workers`` if known)."""
    index = update.get("index")
    if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
        raise ValueError(f"a round's index must be a non-negative integer, got {index!r}")
    kind = update.get("error_kind", "decoding")
    if kind not in ERROR_KINDS:
        raise ValueError(f"error_kind must be one of {ERROR_KINDS}, got {kind!r}")
    return {
        "index": int(index),
        "time": check_number(update.get("time", math.nan), "time", nan=True),
        "wall_time": check_number(update.get("wall_time"), "wall_time", minimum=0.0),
        "responders": check_indices(update.get("responders", ()), "responders", n_workers),
        "busy": check_indices(update.get("busy", ()), "busy", n_workers),
        "error": check_number(update.get("error", math.nan), "error", nan=True, minimum=0.0),
        "error_kind": kind,
        "stop": check_text(update.get("stop", ""), "stop"),
        "scheme": check_text(update.get("scheme", ""), "scheme"),
    }
