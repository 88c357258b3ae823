"""Online adaptation: re-fit the straggler model as a fit runs and re-encode.

Until a straggler model exists both adaptive schemes run the best exact
uniform code for the fit's redundancy (:func:`initial_code`: fractional
repetition when the redundancy divides the workers, cyclic repetition
otherwise): no approximate first rounds, and nothing placed by guesses
about who is slow.

Every ``quorum.adapt.every`` rounds the adapter reads this session's round
tasks from the latency recorder, fits a straggler model on the most recent
``quorum.adapt.window`` rounds, and, when the model changed materially,
asks :func:`choose_code`:

* ``heterogeneous``: rebuilds the heterogeneity-aware code from the fitted
  straggle probabilities (:func:`smoothed_probs`): the reliable workers
  take the first replicas, so that they cover every partition and decode
  without the likely stragglers, and load moves from likely stragglers to
  them as far as rounds simulated from the model say it pays
  (:func:`~dask_quorum.pipeline.planning.shape_heterogeneous`). When the
  redundancy is too small for the reliable workers to hold every partition
  (and waiting for the stragglers is slower), the code decodes
  approximately from them and the adapter rotates it between rounds
  (:class:`~dask_quorum.pipeline.coding.Rotation`), so that the decoded sum
  is unbiased over the rotation's period. The new code replaces the
  current one when its simulated rounds are faster by more than
  ``quorum.adapt.min-gain``;
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

from ..coding import (
    MOVE_BUDGET,
    GradientCode,
    Rotation,
    block_size,
    choose_hold,
    make_code,
)
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


def uniform_code(n_workers: int, redundancy: int) -> GradientCode:
    """The best exact code with equal loads: ``frc`` if ``redundancy`` divides ``n_workers``, else ``cyclic``.

    Both decode exactly from any ``n - redundancy + 1`` workers; fractional
    repetition also from many larger straggler sets (one answer per group)
    and needs no least squares. The redundancy is clipped to ``n_workers``
    (after workers are lost); with redundancy 1 the code is ``sync``.
    """
    r = max(1, min(int(redundancy), int(n_workers)))
    if r == 1:
        return make_code("sync", n_workers)
    return make_code("frc" if n_workers % r == 0 else "cyclic", n_workers, redundancy=r)


def initial_code(scheme: str, n_workers: int, redundancy: int, random_state: Any) -> GradientCode:
    """The code an adaptive fit starts with, before any straggler model exists.

    Both ``auto`` and ``heterogeneous`` start with :func:`uniform_code`:
    exact whoever the ``redundancy - 1`` stragglers are, and with no
    approximate first rounds. ``random_state`` is accepted for the
    ``code_factory`` signature; the uniform codes are deterministic.
    """
    if scheme not in ADAPTIVE_SCHEMES:
        raise ValueError(f"scheme must be one of {ADAPTIVE_SCHEMES}, got {scheme!r}")
    return uniform_code(n_workers, redundancy)


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
    ``start``; ``workers`` and ``p`` are the model's. Latencies are drawn
    from those observed in each state when the model keeps its data
    (``StragglerModel.sample(draws="observed")``): a code that waits for
    the slowest of many fast workers is judged on their measured spread,
    not on an exponential tail fitted to it.

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
        draws = "observed" if self.model.latencies is not None else "fitted"
        runs = [
            self.model.sample(self.horizon, random_state=rng, start=self.start, draws=draws)
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
    move_budget : float, default=MOVE_BUDGET
        Share of the replicas the rotation of an approximate code moves per
        round on average (:func:`~dask_quorum.pipeline.coding.choose_hold`):
        1 rotates every round.

    Attributes
    ----------
    model : StragglerModel or None
        The latest fitted model. The code is rebuilt when the ideal load
        of some worker, from :func:`smoothed_probs`, moved by more than the
        factor ``quorum.adapt.tolerance`` since the current code was built.
    switches : list of tuple
        ``(round, scheme)`` for every re-encoding.
    rotation : Rotation or None
        The rotation of the current code when it decodes approximately
        (its ``base`` is the code chosen); None for an exact code.
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
        move_budget: float = MOVE_BUDGET,
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
        self.rotation: Rotation | None = None
        self.move_budget = float(move_budget)
        self._rotation_start = 0
        self._rotated: GradientCode | None = None  # the code the rotation last set
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
        """Call after round ``index``; re-fits after ``first`` rounds, then every ``every``.

        Between re-fits, an approximate code is rotated by its
        :attr:`rotation` (one step every ``rotation.hold`` rounds).
        """
        done = index + 1
        if done < self.first or (done - self.first) % self.every:
            self._rotate(done)
            return
        if not self._refit(index):
            self._rotate(done)

    def _rotate(self, done: int) -> None:
        """Re-encode by the rotation's next step when one is due before round ``done``."""
        rot = self.rotation
        if rot is None or self.session.code is not self._rotated:
            self.rotation = None  # none, or the session re-planned after a change of workers
            return
        t = done - self._rotation_start
        if t <= 0 or t % rot.hold:
            return
        self._rotated = rot.code_at(t)
        moved = self.session.reencode(self._rotated)
        logger.debug("round %d: rotated by %d, %d replicas moved", done, rot.shift_at(t), moved)

    def _refit(self, index: int) -> bool:
        """Re-fit the model and re-encode if it pays; whether the code was replaced."""
        try:
            model = self._fit()
        except ValueError as exc:  # too little data for a model yet
            logger.debug("no straggler model after round %d: %s", index, exc)
            return False
        if model is None or list(model.workers) != list(self.session.workers):
            return False
        self.model = model
        probs = smoothed_probs(model)
        if self._probs is not None and len(self._probs) != len(probs):
            self._probs = None  # the session's workers changed: start afresh
        if self._probs is not None and not loads_moved(self._probs, probs, self.tol):
            return False
        code = self._choose(model, probs)
        self._probs = probs
        current = self.session.code if self.rotation is None else self.rotation.base
        if code is None or (code.scheme == current.scheme and np.array_equal(code.B, current.B)):
            return False
        self.session.reencode(code)
        self.switches.append((index + 1, code.scheme))
        self.rotation = None
        if not code.exact:
            step = block_size(code)
            self.rotation = Rotation(code, step=step, hold=choose_hold(code, step, budget=self.move_budget))
            self._rotation_start = index + 1
            self._rotated = self.session.code
        logger.info(
            "round %d: re-encoded as %s for %s, partitions per worker %s%s", index + 1, code.scheme,
            model.slow_workers(), np.count_nonzero(code.B, axis=1).tolist(),
            f", rotated every {self.rotation.hold} rounds" if self.rotation else "",
        )
        return True

    def _choose(self, model: StragglerModel, probs: np.ndarray) -> GradientCode | None:
        """The code to switch to, or None when none beats the current one materially."""
        return choose_code(
            self.scheme,
            model,
            self._states,
            probs=probs,
            redundancy=self.redundancy,
            horizon=self.every,
            current=self.session.code,
            units=self.session.mean_units(),
            n_partitions=self.session.n_partitions,
            error_tol=self.error_tol,
            min_gain=self.min_gain,
            random_state=self.random_state,
            load_limit=self.session.partition_limit(),
        )


def choose_code(
    scheme: str,
    model: StragglerModel,
    states: np.ndarray,
    *,
    redundancy: int,
    horizon: int,
    current: GradientCode,
    probs: np.ndarray | None = None,
    units: float = 1.0,
    n_partitions: int | None = None,
    error_tol: float = 1e-9,
    min_gain: float = 0.1,
    random_state: int = 0,
    load_limit: int | None = None,
) -> GradientCode | None:
    """The code an adaptive scheme switches to for a fitted model, or None to keep ``current``.

    Candidates and ``current`` are simulated on the same forecast rounds
    (:class:`Forecast`, ``horizon`` rounds from the workers' ``states``); a
    candidate must be faster by more than ``min_gain``, so that
    re-ordering equally loaded workers after small changes of ``p`` moves
    no data for nothing.

    * ``heterogeneous``:
      :func:`~dask_quorum.pipeline.planning.shape_heterogeneous` on
      ``probs`` (default :func:`smoothed_probs`), approximate codes allowed
      where the reliable workers cannot hold every partition (the adapter
      rotates those), over ``n_partitions`` partitions (default one per
      worker; ``units`` stays the rows of one worker's share, ``n / k``
      partitions' worth).
    * ``auto``: :func:`~dask_quorum.pipeline.planning.plan` over
      :data:`AUTO_CANDIDATES` with ``error_tol``: it picks
      ``heterogeneous`` when persistent stragglers are more than the
      redundancy lets a uniform code ignore (the reliable workers then
      cover every partition and decode alone), and ``sync`` (the cheapest
      of ties) when nobody straggles.

    ``load_limit`` (the placed partitions a worker's memory takes,
    :meth:`~dask_quorum.pipeline.engine.CodedSession.partition_limit`)
    bounds the heterogeneous loads, the likely stragglers' included; a
    code that would still place more on some worker is not chosen.
    """
    probs = smoothed_probs(model) if probs is None else probs
    forecast = Forecast(model, states, horizon)
    # plan() draws its sample the same way, so both see the same rounds
    sampled = forecast.sample(SIMULATED_ROUNDS, random_state=random_state)
    if scheme == "heterogeneous":
        try:
            code, run = shape_heterogeneous(
                probs,
                sampled,
                redundancy=redundancy,
                random_state=random_state,
                rows_per_partition=units * model.n_workers / (n_partitions or model.n_workers),
                approximate=True,
                n_partitions=n_partitions,
                load_limit=load_limit,
            )
        except ValueError as exc:
            if load_limit is None:
                raise
            logger.warning("keeping the current code: no heterogeneous code fits the workers' memory (%s)", exc)
            return None
        expected = run.mean_time
    elif scheme == "auto":
        result = plan(
            forecast,
            schemes=AUTO_CANDIDATES,
            redundancy=redundancy,
            n_rounds=SIMULATED_ROUNDS,
            error_tol=error_tol,
            random_state=random_state,
            rows_per_partition=units,
        )
        code = result.codes[result.recommended]
        expected = float(result.table.loc[result.recommended, "mean_time"])
    else:
        raise ValueError(f"scheme must be one of {ADAPTIVE_SCHEMES}, got {scheme!r}")
    if load_limit is not None:
        k = n_partitions or code.n_partitions
        placed = np.count_nonzero(code.B, axis=1) * max(1, k // code.n_partitions)
        if placed.max() > load_limit:
            logger.warning(
                "not switching to %r: it would place %d partitions on a worker whose memory takes %d",
                code, int(placed.max()), load_limit,
            )
            return None
    now = simulate(
        current, sampled, rows_per_partition=units * current.n_workers / current.n_partitions
    ).mean_time
    if expected > (1 - min_gain) * now:
        return None
    return code
