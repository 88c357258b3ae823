"""Argument checks of the gradient codes: counts, indices, straggle probabilities.

Counts (``n_workers``, ``redundancy``, ``max_load``) and straggle
probabilities as :func:`~dask_quorum.pipeline.coding.make_code` takes them,
worker and partition indices as the
:class:`~dask_quorum.pipeline.coding.GradientCode` accessors take them.
:func:`check_count` is also the count check of
:mod:`~dask_quorum.pipeline.planning` and, through it,
:mod:`~dask_quorum.pipeline.profiling`.
"""

from __future__ import annotations

import logging
from numbers import Integral
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)


def check_count(value: Any, name: str) -> int:
    """``value`` as an ``int``: an integer ``>= 1`` (booleans are rejected).

    Raises
    ------
    ValueError
        ``"<name> must be an integer >= 1, got <value>"`` otherwise.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_index(value: Any, size: int, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer index, got {value!r}")
    if not 0 <= value < size:
        raise ValueError(f"{name} must be in [0, {size}), got {value!r}")
    return int(value)


def check_probs(probs: ArrayLike, n: int) -> NDArray[np.float64]:
    try:
        p = np.asarray(probs, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"straggle_probs must be numeric, got {probs!r}") from exc
    if p.shape != (n,):
        raise ValueError(f"straggle_probs must have shape ({n},), got {p.shape}")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p < 1).all()):
        raise ValueError(f"straggle_probs must be finite and in [0, 1), got {p.tolist()}")
    return p
