"""Argument checks shared by the planning modules (and the profiling of a cluster).

Scheme lists, straggler models, latency matrices, real numbers and seeds
as :func:`~dask_quorum.pipeline.planning.simulate`,
:func:`~dask_quorum.pipeline.planning.shape_heterogeneous` and
:func:`~dask_quorum.pipeline.planning.plan` take them. Counts are checked by
:func:`~dask_quorum.pipeline.coding.check_count`, the check of the codes.
:func:`check_count` and :func:`check_real` are exported for
:mod:`~dask_quorum.pipeline.profiling`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..coding import SCHEMES, check_count

logger = logging.getLogger(__name__)

# check_count is coding's: imported here so that the planning modules (and
# profiling, through the subpackage) find every argument check in one place.
__all__ = ["as_generator", "check_count", "check_latencies", "check_model", "check_real", "check_schemes"]


def check_schemes(schemes: Sequence[str]) -> list[str]:
    if isinstance(schemes, str):
        schemes = [schemes]
    names = list(schemes)
    if not names:
        raise ValueError("schemes is empty")
    unknown = [s for s in names if s not in SCHEMES]
    if unknown:
        raise ValueError(f"unknown schemes {unknown}; each must be one of {SCHEMES}")
    if len(set(names)) != len(names):
        raise ValueError(f"schemes has duplicates: {names}")
    return names


def check_model(model: Any) -> tuple[list[str], NDArray[np.float64]]:
    missing = [m for m in ("workers", "p", "sample") if not hasattr(model, m)]
    if missing:
        raise ValueError(
            f"model must have workers, p and sample(n_rounds, random_state); "
            f"{type(model).__name__} lacks {missing}"
        )
    workers = list(model.workers)
    if not workers:
        raise ValueError("model has no workers")
    p = np.asarray(model.p, dtype=np.float64)
    if p.shape != (len(workers),):
        raise ValueError(f"model.p must have shape ({len(workers)},), got {p.shape}")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError(f"model.p must be finite and in [0, 1], got {p.tolist()}")
    return workers, p


def check_latencies(
    latencies: ArrayLike, n_workers: int, *, n_rounds: int | None = None
) -> NDArray[np.float64]:
    lat = np.asarray(latencies, dtype=np.float64)
    expected = f"({'n_rounds' if n_rounds is None else n_rounds}, {n_workers})"
    if lat.ndim != 2 or lat.shape[0] < 1 or lat.shape[1] != n_workers:
        raise ValueError(f"latencies must have shape {expected}, got {lat.shape}")
    if n_rounds is not None and lat.shape[0] != n_rounds:
        raise ValueError(f"latencies must have shape {expected}, got {lat.shape}")
    if not (np.isfinite(lat).all() and (lat >= 0).all()):
        raise ValueError("latencies must be finite and >= 0")
    return lat


def check_real(value: Any, name: str, *, strict: bool) -> float:
    bound = "> 0" if strict else ">= 0"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number {bound}, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or (x <= 0 if strict else x < 0):
        raise ValueError(f"{name} must be a real number {bound}, got {value!r}")
    return x


def as_generator(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31))
    if random_state is None or (
        isinstance(random_state, Integral) and not isinstance(random_state, (bool, np.bool_))
    ):
        return np.random.default_rng(random_state)
    raise ValueError(
        "random_state must be None, an int, a numpy RandomState or Generator, "
        f"got {random_state!r}"
    )
