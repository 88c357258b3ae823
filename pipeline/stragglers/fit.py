"""Fitting per-worker straggler models from measured latencies.

Holds :func:`fit_straggler_model` and the definitions of the model it fits
(below); the model itself is
:class:`~dask_quorum.pipeline.stragglers.StragglerModel`.

A *straggler model* says, for every worker, how often it is slow, whether
its slowness persists from one round to the next, and how long a unit of
work takes when it is fast and when it is slow. The engine fits one from the
latencies it measured and uses it to place data, to set deadlines and to
decide when to re-encode
(:meth:`~dask_quorum.pipeline.stragglers.StragglerModel.changed`).

The model (DESIGN.md, section 3)
--------------------------------
Latencies are per unit of work (task compute time divided by the rows it
processed) arranged as a ``(n_rounds, n_workers)`` matrix with NaN where a
worker did not report
(:func:`~dask_quorum.pipeline.stragglers.latency_matrix`). For every worker
``i``:

* **Straggle indicator.** Worker ``i`` straggles in round ``t`` when
  ``latency[t, i] > threshold * median_j latency[t, j]``, the median being
  over the workers observed in that round (``c x the round median`` with
  ``c = threshold``, default 2). A worker alone in a round never straggles.
* **Frequency.** ``p[i]`` is the fraction of the worker's observed rounds
  in which it straggled (the maximum-likelihood estimate, no smoothing).
* **Persistence.** A two-state Markov chain (fast, slow) fitted from the
  pairs of *consecutive observations* of the worker, i.e. its successive
  observed rounds; rounds in between in which it was not observed (NaN:
  the engine skips a worker still busy with an earlier round's task, so a
  10x straggler reports about one round in ten) are stepped over, unless
  the engine knows the worker's task had run longer than the straggle
  threshold by the round's end (``censored``): such a round is a slow
  observation without a latency:
  ``P(slow | slow) = (n_ss + 2a m_s) / (n_ss + n_sf + 2a)`` and
  ``P(slow | fast) = (n_fs + 2a m_f) / (n_fs + n_ff + 2a)``, i.e. the
  posterior mean under a ``Beta(2a m, 2a (1 - m))`` prior of strength
  ``2a`` (``a = prior``, default 1) centred on the *cluster's* pooled rate
  ``m = (sum of the workers' counts + a) / (their trials + 2a)``
  (empirical Bayes). A worker seen for a few rounds thus takes the
  cluster's behaviour, not a coin flip: after three clean rounds a healthy
  worker of fifteen gets P(slow | fast) of about 0.02, where add-one
  smoothing would say 0.25 and make every plan expect a straggler in most
  rounds. Both stay strictly inside (0, 1); a state no worker ever showed
  gets 1/2.
* **Latency per state.** A shifted exponential ``T = shift + Exp(rate)``
  per state with the maximum-likelihood estimates ``shift = min`` and
  ``1 / rate = mean - min`` (Lee et al., arXiv 1512.02673; per node:
  Reisizadeh et al., arXiv 1701.05973). A worker with fewer than two slow
  latencies but censored slow rounds is fitted on those rounds too, each
  standing for ``max(bound, floor)``: a slow task still running takes at
  least as long as the cluster's measured stragglers (the median of their
  slow latencies) or, before any slow task finished, ``censored_slowdown``
  times ``typical`` (default 10, the slowdown of the persistent stragglers
  of the EC2 traces). The bound alone would say a 12x straggler caught two
  rounds into its task is 2x slow, and a plan would wait for it. A state
  with fewer than two samples
  for a worker borrows the cluster's pooled parameters of that state (all
  workers' samples of the state together); if no worker of the cluster
  ever straggled, the slow state is the fast state stretched to the
  straggle threshold: ``slow_shift = threshold * typical`` and
  ``slow_rate = rate / threshold``, with ``typical`` the median of the
  round medians (stretched to the worker's single slow sample instead of
  the threshold when it has one). ``rate`` is ``inf`` when all samples of a state are equal
  (a point mass).
* **Slowdown.** ``median(slow latencies) / typical``. A worker never seen
  slow gets the cluster's pooled value (the median of all workers' slow
  latencies over ``typical``), or, when nobody straggled, the median of its
  stretched slow-state distribution over ``typical``. Borrowed slow-state
  values describe what a slow round of that worker would likely look like;
  ``p`` says how rarely it happens.

Gamma-by-moments fits of both states are reported by
:meth:`~dask_quorum.pipeline.stragglers.StragglerModel.goodness_of_fit` as
an alternative to compare with.

Examples
--------
>>> import numpy as np
>>> from dask_quorum.pipeline.stragglers import fit_straggler_model
>>> rng = np.random.default_rng(0)
>>> x = 1.0 + rng.exponential(0.01, size=(200, 4))
>>> x[:, 3] *= 10                      # worker "3" is always ten times slower
>>> model = fit_straggler_model(x)
>>> model.slow_workers()
['3']
>>> round(float(model.slowdown[3]), 1)
10.0
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._checks import _check_bound, _check_threshold
from .distributions import MIN_STATE_SAMPLES, _shifted_exp
from .matrix import latency_matrix
from .model import StragglerModel
from .states import _check_censored, _shrunk, _straggle_indicator, _transition_counts

logger = logging.getLogger(__name__)


def fit_straggler_model(
    latencies: Any,
    *,
    threshold: float = 2.0,
    workers: Sequence[str] | None = None,
    prior: float = 1.0,
    censored: Any = None,
    censored_slowdown: float = 10.0,
) -> StragglerModel:
    """Fit a per-worker straggler model from measured latencies.

    Parameters
    ----------
    latencies : array-like, pandas.DataFrame or xarray.Dataset
        Anything :func:`~dask_quorum.pipeline.stragglers.latency_matrix`
        accepts; a ``(n_rounds, n_workers)`` matrix of per-unit latencies
        with NaN for missing entries.
    threshold : float, default=2.0
        A worker straggles in a round when its latency exceeds ``threshold``
        times the median over the workers observed in that round. Must be
        > 1.
    workers : sequence of str, optional
        Names of the matrix columns, or the workers to keep (see
        :func:`~dask_quorum.pipeline.stragglers.latency_matrix`).
    prior : float, default=1.0
        Strength ``a`` of the prior of the transition probabilities: worth
        ``2a`` observed transitions at the cluster's pooled rate (see the
        module docstring). Must be > 0.
    censored : array-like of shape (n_rounds, n_workers), optional
        Lower bounds of per-unit latencies that were not measured (NaN
        elsewhere), aligned with the latency matrix (after ``workers``):
        a worker still running an older task when a round finished, whose
        latency for that round is at least as long as the task had run. An
        entry NaN in the latencies whose bound exceeds ``threshold`` times
        the round median counts as a slow observation of the worker (in
        ``p``, the transitions and ``n_rounds``); a smaller bound tells
        nothing and is ignored. The bounds are no latencies: they enter the
        worker's slow state only where fewer than two slow latencies of it
        were measured, raised to the slow latencies measured on the cluster
        (or to ``censored_slowdown``; see the module docstring). Without
        it, a worker busy for many rounds is seen once per task, and one
        that never finished a task is not seen at all.
    censored_slowdown : float, default=10.0
        Slowdown (over the typical latency) a censored slow round stands for
        at least while no slow task of the cluster has finished. Must be
        >= 1; with 1, and no slow latency measured, the slow state is fitted
        on the bounds as they are.

    Returns
    -------
    StragglerModel
        Fitted to the latencies, which it keeps (for its
        :meth:`~dask_quorum.pipeline.stragglers.StragglerModel.goodness_of_fit`).

    Raises
    ------
    ValueError
        If the latencies are empty, all NaN, observed in fewer than 2
        rounds, negative or infinite, if some worker is never observed, if
        ``threshold <= 1``, ``prior <= 0`` or ``censored_slowdown < 1``.

    See Also
    --------
    latency_matrix, load_trace

    Notes
    -----
    Definitions (indicator, smoothing, fallbacks) are in the module
    docstring; DESIGN.md section 3 for the references.
    """
    threshold = _check_threshold(threshold)
    prior = _check_bound("prior", prior, low=0, inclusive=False)
    censored_slowdown = _check_bound("censored_slowdown", censored_slowdown, low=1, inclusive=True)
    x, names = latency_matrix(latencies, workers=workers)
    censored = _check_censored(censored, x.shape)
    observed, med, slow = _straggle_indicator(x, threshold, censored)
    if not observed.any():
        raise ValueError("latencies are all NaN: nothing was observed")
    n_obs_rounds = int(observed.any(axis=1).sum())
    if n_obs_rounds < 2:
        raise ValueError(
            f"need latencies from at least 2 rounds to fit a straggler model, got {n_obs_rounds}"
        )
    n_rounds = observed.sum(axis=0)
    if (n_rounds == 0).any():
        never = [w for w, k in zip(names, n_rounds) if k == 0]
        raise ValueError(f"worker(s) {never} have no latencies (all NaN); drop them before fitting")
    typical = float(np.median(med[~np.isnan(med)]))
    if typical <= 0:
        raise ValueError("the median round latency is 0: latencies carry no timing information")

    p = slow.sum(axis=0) / n_rounds
    n_ss, n_sf, n_fs, n_ff = _transition_counts(observed, slow)
    p_ss = _shrunk(n_ss, n_sf, prior)
    p_sf = _shrunk(n_fs, n_ff, prior)

    fast = observed & ~slow
    bounded = slow & np.isnan(x)  # censored slow rounds: a lower bound, no latency
    slow = slow & ~bounded
    pooled_fast = _shifted_exp(x[fast])  # every observed round has a fast worker: never empty
    pooled_slow = _shifted_exp(x[slow]) if slow.sum() >= MIN_STATE_SAMPLES else None
    pooled_slowdown = float(np.median(x[slow])) / typical if slow.any() else None
    # what a slow task still running stands for, at least
    censored_floor = (pooled_slowdown if pooled_slowdown is not None else censored_slowdown) * typical
    n_workers = len(names)
    shift, rate = np.empty(n_workers), np.empty(n_workers)
    slow_shift, slow_rate, slowdown = np.empty(n_workers), np.empty(n_workers), np.empty(n_workers)
    for i in range(n_workers):
        xf, xs = x[fast[:, i], i], x[slow[:, i], i]
        shift[i], rate[i] = _shifted_exp(xf) if xf.size >= MIN_STATE_SAMPLES else pooled_fast
        if xs.size < MIN_STATE_SAMPLES and bounded[:, i].any():
            # Slow tasks that had not finished: nearer than any borrowed slow
            # state, but their bounds alone understate it.
            xs = np.concatenate([xs, np.maximum(censored[bounded[:, i], i], censored_floor)])
        if xs.size >= MIN_STATE_SAMPLES:
            slow_shift[i], slow_rate[i] = _shifted_exp(xs)
        elif pooled_slow is not None:
            slow_shift[i], slow_rate[i] = pooled_slow
        else:  # the fast state stretched, to the worker's one slow latency if it has one
            stretch = float(xs[0]) / typical if xs.size else threshold
            slow_shift[i], slow_rate[i] = stretch * typical, rate[i] / stretch
        if xs.size:
            slowdown[i] = float(np.median(xs)) / typical
        elif pooled_slowdown is not None:
            slowdown[i] = pooled_slowdown
        else:
            slowdown[i] = (slow_shift[i] + math.log(2.0) / slow_rate[i]) / typical
    model = StragglerModel(
        workers=tuple(names),
        p=p,
        p_slow_slow=p_ss,
        p_slow_fast=p_sf,
        shift=shift,
        rate=rate,
        slow_shift=slow_shift,
        slow_rate=slow_rate,
        slowdown=slowdown,
        n_rounds=n_rounds,
        threshold=threshold,
        latencies=x,
    )
    logger.debug(
        "fitted straggler model: %d rounds x %d workers, slow workers %s",
        x.shape[0],
        n_workers,
        model.slow_workers(),
    )
    return model
