"""Slow and fast states: the straggle indicator and its Markov transitions.

Holds the straggle indicator (a worker straggles in a round when its
latency exceeds ``threshold`` times the round median), the per-worker
counts of transitions between successive observations, their
empirical-Bayes shrinkage towards the cluster's pooled rate, and
:func:`current_states`, each worker's last observed state. The definitions
are in :mod:`~dask_quorum.pipeline.stragglers.fit`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._checks import _check_threshold, _check_values
from .matrix import latency_matrix

logger = logging.getLogger(__name__)


def _straggle_indicator(
    x: np.ndarray, threshold: float, censored: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed mask, round medians (NaN for empty rounds) and the straggle indicator.

    ``censored`` holds lower bounds of latencies not measured (NaN in ``x``):
    an entry whose bound exceeds ``threshold`` times the round median is
    observed slow; the medians come from measured latencies only.
    """
    observed = ~np.isnan(x)
    rows = observed.any(axis=1)
    med = np.full(x.shape[0], np.nan)
    med[rows] = np.nanmedian(x[rows], axis=1)
    with np.errstate(invalid="ignore"):
        slow = observed & (x > threshold * med[:, None])
        if censored is not None:
            known_slow = ~observed & (censored > threshold * med[:, None])
            observed, slow = observed | known_slow, slow | known_slow
    return observed, med, slow


def _check_censored(censored: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """``censored`` as a float matrix of ``shape`` (None stays None)."""
    if censored is None:
        return None
    try:
        c = np.array(censored, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"censored must be numeric: {exc}") from exc
    if c.shape != shape:
        raise ValueError(f"censored must have the latency matrix's shape {shape}, got {c.shape}")
    _check_values(c, "censored lower bounds")
    return c


def _transition_counts(observed: np.ndarray, slow: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per worker: slow->slow, slow->fast, fast->slow, fast->fast counts over successive observations."""
    counts = np.zeros((4, observed.shape[1]), dtype=np.int64)
    for i in range(observed.shape[1]):
        s = slow[observed[:, i], i]
        s0, s1 = s[:-1], s[1:]
        counts[:, i] = ((s0 & s1).sum(), (s0 & ~s1).sum(), (~s0 & s1).sum(), (~s0 & ~s1).sum())
    return tuple(counts)


def _shrunk(hits: np.ndarray, misses: np.ndarray, prior: float) -> np.ndarray:
    """Per-worker transition probabilities shrunk towards the cluster's pooled one.

    The posterior mean under a ``Beta(2a m, 2a (1 - m))`` prior whose mean
    ``m`` is the pooled estimate ``(sum hits + a) / (sum trials + 2a)``:
    a worker with few observed transitions takes the cluster's rate, not 1/2.
    """
    m = (hits.sum() + prior) / (hits.sum() + misses.sum() + 2 * prior)
    return (hits + 2 * prior * m) / (hits + misses + 2 * prior)


def current_states(
    latencies: Any,
    *,
    threshold: float = 2.0,
    workers: Sequence[str] | None = None,
    censored: Any = None,
) -> np.ndarray:
    """Each worker's state in the last round it was observed in: True when slow.

    Parameters
    ----------
    latencies : array-like, pandas.DataFrame or xarray.Dataset
        As for :func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`.
    threshold : float, default=2.0
        As for :func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`.
    workers : sequence of str, optional
        As for :func:`~dask_quorum.pipeline.stragglers.latency_matrix`.
    censored : array-like, optional
        As for :func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`:
        a worker still running a task known to exceed the straggle
        threshold is slow now.

    Returns
    -------
    numpy.ndarray of bool, shape (n_workers,)
        False for a worker never observed.
    """
    x, _ = latency_matrix(latencies, workers=workers)
    observed, _, slow = _straggle_indicator(x, _check_threshold(threshold), _check_censored(censored, x.shape))
    last = x.shape[0] - 1 - np.argmax(observed[::-1], axis=0)
    return observed.any(axis=0) & slow[last, np.arange(x.shape[1])]
