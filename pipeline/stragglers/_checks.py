"""Argument checks shared by the straggler-model modules.

The straggle threshold, worker names and latency values are checked the
same way whether they reach :func:`~dask_quorum.pipeline.stragglers.latency_matrix`,
:func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`,
:func:`~dask_quorum.pipeline.stragglers.current_states` or the
:class:`~dask_quorum.pipeline.stragglers.StragglerModel` constructor.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def _check_bound(name: str, value: Any, *, low: float, inclusive: bool) -> float:
    """``value`` as a float; ValueError naming ``name`` unless it is a finite real number above ``low`` (or at it)."""
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < low or (value == low and not inclusive):
        raise ValueError(f"{name} must be a finite number {'>=' if inclusive else '>'} {low:g}, got {value!r}")
    return float(value)


def _check_threshold(threshold: float) -> float:
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number > 1, got {threshold!r}") from None
    if not math.isfinite(value) or value <= 1.0:
        raise ValueError(
            f"threshold must be a finite number > 1 (a straggler is slower than threshold x "
            f"the round median), got {threshold!r}"
        )
    return value


def _check_names(names: Sequence[Any], n_workers: int) -> list[str]:
    out = [str(w) for w in names]
    if len(out) != n_workers:
        raise ValueError(f"workers has {len(out)} names for {n_workers} worker columns")
    if len(set(out)) != len(out):
        dupes = sorted({w for w in out if out.count(w) > 1})
        raise ValueError(f"worker names must be unique, repeated: {dupes}")
    return out


def _check_values(x: np.ndarray, what: str = "latencies") -> None:
    """Negative or infinite values are errors; NaN marks a missing entry."""
    if np.isinf(x).any():
        t, i = np.argwhere(np.isinf(x))[0]
        raise ValueError(f"{what} must be finite or NaN (missing); found {x[t, i]} at round {t}, worker {i}")
    neg = x < 0  # NaN compares False
    if neg.any():
        t, i = np.argwhere(neg)[0]
        raise ValueError(f"{what} must be non-negative; found {x[t, i]:g} at round {t}, worker {i}")
