"""Helpers of the gradient-code tests (tests/coding): building codes, checking decoded sums."""

from __future__ import annotations

import numpy as np
from dask_quorum.pipeline.coding import GradientCode, make_code
from hypothesis import settings

HYPOTHESIS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def valid_redundancies(scheme: str, n: int) -> list[int]:
    return [r for r in range(1, n + 1) if scheme != "frc" or n % r == 0]


def probs_for(n: int) -> np.ndarray:
    """Straggle probabilities for ``heterogeneous``: a spread with some likely stragglers."""
    return np.linspace(0.0, 0.95, n)


def make(scheme: str, n: int, r: int, seed=0) -> GradientCode:
    probs = probs_for(n) if scheme == "heterogeneous" else None
    return make_code(scheme, n, redundancy=r, straggle_probs=probs, random_state=seed)


def worker_loads(code: GradientCode) -> np.ndarray:
    return np.count_nonzero(code.B, axis=1)


def all_slow_columns(code: GradientCode, probs) -> int:
    slow = np.asarray(probs) >= 0.5
    return sum(bool(slow[code.holders(j)].all()) for j in range(code.n_partitions))


def decoded_sum(code: GradientCode, responders, partials: np.ndarray) -> np.ndarray:
    idx = np.asarray(responders)
    return code.decode(idx) @ (code.B[idx] @ partials)


def assert_reproduces_sum(code: GradientCode, responders, partials: np.ndarray) -> None:
    total = partials.sum(axis=0)
    err = np.linalg.norm(decoded_sum(code, responders, partials) - total)
    assert err <= 1e-8 * np.linalg.norm(total)
