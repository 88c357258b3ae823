"""Small argument checks shared by the modules of :mod:`~dask_quorum.pipeline.inject`.

Numbers in a range, seeds, and worker identities (an address or a name,
none given twice), as the slowdown specs, the trace replay and the
injector take them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from numbers import Real
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: A worker as named in a spec: its address (str) or its name (str or int).
WorkerId = str | int


def _check_number(name: str, value: Any, low: float, high: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        bounds = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be finite and {bounds}, got {value!r}")


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


def _check_worker_ids(workers: Iterable[Any]) -> None:
    """Each worker is a str address or int/str name, and none is given twice."""
    seen: dict[str, WorkerId] = {}
    for worker in workers:
        if isinstance(worker, bool) or not isinstance(worker, str | int | np.integer):
            raise ValueError(
                f"workers are identified by address or name (str or int), "
                f"got {worker!r}"
            )
        if str(worker) in seen:
            raise ValueError(
                f"worker {worker!r} is given twice "
                f"(as {seen[str(worker)]!r} and {worker!r})"
            )
        seen[str(worker)] = worker
