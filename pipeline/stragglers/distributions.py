"""Latency distributions of a state: shifted-exponential and Gamma fits, KS statistics.

Holds the maximum-likelihood shifted exponential ``T = shift + Exp(rate)``
of a state's samples (the model's family), the Gamma-by-moments
alternative, and the Kolmogorov-Smirnov statistics of both, used by
:meth:`~dask_quorum.pipeline.stragglers.StragglerModel.goodness_of_fit`.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import stats

logger = logging.getLogger(__name__)

#: Fewest samples of a state from which a worker's own parameters are fitted.
MIN_STATE_SAMPLES = 2


def _shifted_exp(samples: np.ndarray) -> tuple[float, float]:
    """MLE of a shifted exponential: ``shift = min``, ``1/rate = mean - min`` (inf when constant)."""
    shift = float(samples.min())
    scale = float(samples.mean()) - shift
    return shift, (1.0 / scale if scale > 0 else math.inf)


def _gamma_moments(samples: np.ndarray) -> tuple[float, float]:
    """Gamma by moments: ``shape = mean^2 / var``, ``scale = var / mean`` (NaN when degenerate)."""
    mean, var = float(samples.mean()), float(samples.var())
    if mean <= 0 or var <= 0:
        return math.nan, math.nan
    return mean * mean / var, var / mean


def _ks_shifted_exp(samples: np.ndarray, shift: float, rate: float) -> float:
    if samples.size == 0:
        return math.nan
    if math.isinf(rate):  # point mass at shift: sup |F_n - F| = max(share below, share above)
        return float(max(np.mean(samples < shift), np.mean(samples > shift)))
    return float(stats.kstest(samples, "expon", args=(shift, 1.0 / rate)).statistic)


def _ks_gamma(samples: np.ndarray) -> float:
    shape, scale = _gamma_moments(samples) if samples.size >= MIN_STATE_SAMPLES else (math.nan, math.nan)
    if math.isnan(shape):
        return math.nan
    return float(stats.kstest(samples, "gamma", args=(shape, 0.0, scale)).statistic)
