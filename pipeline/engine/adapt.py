"""Online adaptation: re-fit the straggler model as a fit runs and re-encode.

Every ``quorum.adapt.every`` rounds the adapter reads this session's round
tasks from the latency recorder, fits a straggler model on the most recent
``quorum.adapt.window`` rounds, and, when the model changed materially:

* ``heterogeneous``: rebuilds the heterogeneity-aware code from the fitted
  straggle probabilities (:func:`smoothed_probs`): the most reliable
  workers take the first replicas, and load moves from likely stragglers to
  them as far as rounds simulated from the model say it pays
  (:func:`~dask_quorum.pipeline.planning.shape_heterogeneous`); the new code
  replaces the current one when its simulated rounds are faster by more
  than ``quorum.adapt.min-gain``;
* ``auto``: asks :func:`~dask_quorum.pipeline.planning.plan` which scheme is
  fastest for the fitted cluster and switches when the expected round time
  improves by more than ``quorum.adapt.min-gain``.

Re-encoding moves only the replicas that change
(:meth:`~dask_quorum.pipeline.engine.CodedSession.reencode`), so a worker
that turns slow stops holding rounds back within a few rounds, and one that
recovers gets its load back.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from typing import Any

import numpy as np
import scipy.stats

from dask_quorum import config

from ..coding import GradientCode, make_code
from ..planning import plan, shape_heterogeneous, simulate
from ..recorder import attach, latencies
from ..stragglers import (
    StragglerModel,
    current_states,
    fit_straggler_model,
    latency_matrix,
)
from .session import CodedSession
from .task import ROUND_PREFIX

logger = logging.getLogger(__name__)

ADAPTIVE_SCHEMES = ("heterogeneous", "auto")

#: Rounds simulated from the fitted model to choose a code.
SIMULATED_ROUNDS = 100

#: Schemes ``auto`` chooses from (``heterogeneous`` is built from the model).
AUTO_CANDIDATES = ("sync", "frc", "cyclic", "heterogeneous")


def initial_code(scheme: str, n_workers: int, redundancy: int, random_state: Any) -> GradientCode:
    """The code an adaptive fit starts with, before any latency is known.

    ``auto`` starts synchronous (no extra work when nobody straggles);
    ``heterogeneous`` starts with equal straggle probabilities (equal loads).
    """
    if scheme == "auto":
        return make_code("sync", n_workers)
    if scheme == "heterogeneous":
        return make_code(
            "heterogeneous",
            n_workers,
            redundancy=redundancy,
            straggle_probs=np.full(n_workers, 0.05),
            random_state=random_state,
        )
    raise ValueError(f"scheme must be one of {ADAPTIVE_SCHEMES}, got {scheme!r}")


def effective_units(compute: np.ndarray, units: np.ndarray, *, max_points: int = 400) -> np.ndarray:
    """Work units that account for a task's fixed cost: ``units + a / b``.

    Per-unit latency ``compute / units`` makes a lightly loaded worker look
    slow whenever tasks have a fixed cost (scheduling, a sleep, Python
    overhead); a heterogeneous code would then unload it further and
    further. With ``compute ~ a + b * units`` fitted robustly (Theil-Sen over
    at most ``max_points`` finite samples, so stragglers do not tilt the
    line), dividing by ``units + a / b`` compares every worker with what its
    load should take. When the load does not explain the time at all
    (slope <= 0) every task counts as one unit; with no fixed cost, or too
    few distinct loads to tell, ``units`` is returned as is.
    """
    units = np.asarray(units, dtype=float)
    ok = np.isfinite(compute) & np.isfinite(units) & (units > 0)
    c, u = np.asarray(compute)[ok], units[ok]
    if c.size > max_points:
        pick = np.linspace(0, c.size - 1, max_points).astype(int)
        c, u = c[pick], u[pick]
    if c.size < 8 or np.ptp(u) == 0:  # after the subsample: it may hold a single load
        return units
    # Only the point estimate is used: its confidence interval, which scipy
    # computes too, is undefined (NaN, with warnings) when few loads differ.
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        slope, intercept, *_ = scipy.stats.theilslopes(c, u)
    if slope <= 0:
        return np.where(np.isfinite(units), 1.0, np.nan)
    if intercept <= 0:
        return units
    return units + intercept / slope


#: Pseudo-rounds of the cluster-wide prior in :func:`smoothed_probs`.
PRIOR_ROUNDS = 2.0
#: No worker is assumed to straggle less often than this.
P_FLOOR = 0.05


def smoothed_probs(model: StragglerModel) -> np.ndarray:
    """Straggle probabilities fit to build loads from.

    Heterogeneous loads go as ``(1 - p) / p``, so raw frequencies from a
    short window are too sharp: a healthy worker seen slow once and one never
    seen slow would get loads tens of times apart. Each worker's frequency is
    shrunk toward the cluster's pooled frequency with ``PRIOR_ROUNDS``
    pseudo-rounds (a worker observed in few rounds, such as one that was busy
    straggling, stays near the cluster's rate rather than near 1/2), and
    floored at ``P_FLOOR``.
    """
    p = np.asarray(model.p, dtype=float)
    n = np.asarray(model.n_rounds, dtype=float)
    pooled = float(np.sum(p * n) / max(np.sum(n), 1.0))
    shrunk = (p * n + PRIOR_ROUNDS * pooled) / (n + PRIOR_ROUNDS)
    return np.clip(shrunk, P_FLOOR, 1 - 1e-3)


def loads_moved(old: np.ndarray, new: np.ndarray, factor: float) -> bool:
    """Whether some worker's ideal load ``(1 - p) / p`` changed by more than ``factor``."""
    odds = lambda p: (1 - p) / p
    return bool(np.max(np.abs(np.log(odds(new) / odds(old)))) > np.log(factor))


class Forecast:
    """A straggler model seen from now: the next ``horizon`` rounds, many times over.

    :func:`~dask_quorum.pipeline.planning.plan` judges a code by simulating
    a model from its stationary state, the long-run view. An adapter that
    re-fits every ``horizon`` rounds cares about those rounds only, and they
    start from the workers' current states: a worker slow in every round so
    far is slow now, whatever its chain's stationary probability (which the
    prior pulls towards the cluster's after few rounds). :meth:`sample`
    stacks independent runs of ``horizon`` rounds, each starting from
    ``start``; ``workers`` and ``p`` are the model's.

    Parameters
    ----------
    model : StragglerModel
    start : ndarray of bool, shape (n_workers,)
        The workers' current states (:func:`~dask_quorum.pipeline.stragglers.current_states`).
    horizon : int
        Rounds until the next re-fit.
    """

    def __init__(self, model: StragglerModel, start: np.ndarray, horizon: int) -> None:
        self.model = model
        self.start = np.asarray(start, dtype=bool)
        self.horizon = max(int(horizon), 1)
        self.workers = model.workers
        self.p = model.p

    def sample(self, n_rounds: int, random_state: Any = None) -> np.ndarray:
        """``(n_rounds, n_workers)`` per-unit latencies, runs of ``horizon`` rounds from ``start``."""
        rng = np.random.default_rng(random_state)
        runs = [
            self.model.sample(self.horizon, random_state=rng, start=self.start)
            for _ in range(-(-n_rounds // self.horizon))
        ]
        return np.concatenate(runs)[:n_rounds]


class OnlineAdapter:
    """Keeps a session's code in line with a straggler model fitted while it runs.

    Parameters
    ----------
    session : CodedSession
        An entered session whose partitions are placed.
    scheme : {"heterogeneous", "auto"}
    redundancy : int
    random_state : numpy.random.RandomState
    every, window : int, optional
        Re-fit every ``every`` rounds on the last ``window`` rounds
        (defaults ``quorum.adapt.every`` and ``quorum.adapt.window``); the
        first re-fit comes after ``quorum.adapt.first`` rounds.

    Attributes
    ----------
    model : StragglerModel or None
        The latest fitted model. The code is rebuilt when the ideal load
        of some worker, from :func:`smoothed_probs`, moved by more than the
        factor ``quorum.adapt.tolerance`` since the current code was built.
    switches : list of tuple
        ``(round, scheme)`` for every re-encoding.
    """

    def __init__(
        self,
        session: CodedSession,
        *,
        scheme: str,
        redundancy: int,
        random_state: Any,
        every: int | None = None,
        window: int | None = None,
    ) -> None:
        if scheme not in ADAPTIVE_SCHEMES:
            raise ValueError(f"scheme must be one of {ADAPTIVE_SCHEMES}, got {scheme!r}")
        self.session = session
        self.scheme = scheme
        self.redundancy = redundancy
        # One seed for every code built here: equal inputs give equal codes,
        # so a re-fit that changes nothing moves nothing.
        from sklearn.utils import check_random_state  # sklearn loads on first use

        self.random_state = int(check_random_state(random_state).randint(2**31 - 1))
        self.every = int(every if every is not None else config.get("adapt.every"))
        self.first = min(int(config.get("adapt.first")), self.every)
        self.error_tol = float(config.get("adapt.error-tol"))
        self.window = int(window if window is not None else config.get("adapt.window"))
        self.tol = float(config.get("adapt.tolerance"))
        self.min_gain = float(config.get("adapt.min-gain"))
        self.model: StragglerModel | None = None
        self._states = np.zeros(len(session.workers), dtype=bool)
        self._probs: np.ndarray | None = None
        self.switches: list[tuple[int, str]] = []
        attach(session.client)
        # Recorder cursors at the last few re-fits: reading from the oldest
        # keeps each read to about ``window`` rounds of rows.
        self._cursors: deque[int] = deque(
            [latencies(session.client).attrs["cursor"]], maxlen=-(-self.window // self.every) + 1
        )

    def _fit(self) -> StragglerModel | None:
        ds = latencies(self.session.client, since=self._cursors[0])
        self._cursors.append(ds.attrs["cursor"])
        # Only this session's round tasks: blank the keys of everything else.
        tag = f"{ROUND_PREFIX}-{self.session.token}"
        keys = ds["key"].values
        mine = np.array([tag in k for k in keys.ravel()], dtype=bool).reshape(keys.shape)
        if mine.sum() < 2 * len(self.session.workers):
            return None
        ds["key"] = (ds["key"].dims, np.where(mine, keys, ""))
        units = ds["units"].values.copy()
        units[mine] = effective_units(ds["compute"].values[mine], units[mine])
        ds["units"] = (ds["units"].dims, units)
        matrix, names = latency_matrix(ds, workers=self.session.workers)
        model = fit_straggler_model(matrix[-self.window :], workers=names)
        self._states = current_states(matrix[-self.window :], workers=names, threshold=model.threshold)
        return model

    def after_round(self, index: int) -> None:
        """Call after round ``index``; re-fits after ``first`` rounds, then every ``every``."""
        done = index + 1
        if done < self.first or (done - self.first) % self.every:
            return
        try:
            model = self._fit()
        except ValueError as exc:  # too little data for a model yet
            logger.debug("no straggler model after round %d: %s", index, exc)
            return
        if model is None or list(model.workers) != list(self.session.workers):
            return
        self.model = model
        probs = smoothed_probs(model)
        if self._probs is not None and len(self._probs) != len(probs):
            self._probs = None  # the session's workers changed: start afresh
        if self._probs is not None and not loads_moved(self._probs, probs, self.tol):
            return
        code = self._choose(model, probs)
        self._probs = probs
        current = self.session.code
        if code is None or (code.scheme == current.scheme and np.array_equal(code.B, current.B)):
            return
        self.session.reencode(code)
        self.switches.append((index + 1, code.scheme))
        logger.info("round %d: re-encoded as %s for %s", index + 1, code.scheme, model.slow_workers())

    def _choose(self, model: StragglerModel, probs: np.ndarray) -> GradientCode | None:
        """The code to switch to, or None when none beats the current one materially.

        Candidates and the current code are simulated on the same forecast
        rounds (:class:`Forecast`); a candidate must be faster by more than
        ``quorum.adapt.min-gain``, so that re-ordering equally loaded workers
        after small changes of ``p`` moves no data for nothing.
        """
        units = self.session.mean_units()
        forecast = Forecast(model, self._states, self.every)
        # plan() draws its sample the same way, so both see the same rounds
        sampled = forecast.sample(SIMULATED_ROUNDS, random_state=self.random_state)
        if self.scheme == "heterogeneous":
            code, run = shape_heterogeneous(
                probs,
                sampled,
                redundancy=self.redundancy,
                random_state=self.random_state,
                rows_per_partition=units,
            )
            expected = run.mean_time
        else:
            result = plan(
                forecast,
                schemes=AUTO_CANDIDATES,
                redundancy=self.redundancy,
                n_rounds=SIMULATED_ROUNDS,
                error_tol=self.error_tol,
                random_state=self.random_state,
                rows_per_partition=units,
            )
            code = result.codes[result.recommended]
            expected = float(result.table.loc[result.recommended, "mean_time"])
        now = simulate(self.session.code, sampled, rows_per_partition=units).mean_time
        if expected > (1 - self.min_gain) * now:
            return None
        return code
