"""Online adaptation: re-fit the straggler model as a fit runs and re-encode.

Until a straggler model exists both adaptive schemes run the best exact
uniform code for the fit's redundancy (:func:`initial_code`: fractional
repetition when the redundancy divides the workers, cyclic repetition
otherwise): no approximate first rounds, and nothing placed by guesses
about who is slow.

Every ``quorum.adapt.every`` rounds (and at once after a round far slower
than the ones before it) the adapter reads this session's round tasks from
the latency recorder, fits a straggler model on the most recent
``quorum.adapt.window`` rounds, and, when the model changed materially,
asks :func:`choose_code`. Workers still running a task when a round ended
are censored observations (:attr:`RoundRecord.pending`): a straggler busy
for many rounds, or one that never finished a task yet, is slow in each of
them, not seen once per task. Then:

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
* ``auto``: weighs that heterogeneous code against the uniform ones
  (``sync``, ``frc``, ``cyclic``) on the same simulated rounds and switches
  to the fastest (the cheapest of near ties) when the expected round time
  improves by more than ``quorum.adapt.min-gain``.

No switch is made to an exact code that cannot decode without a worker
still busy with a task past a short wait: a round of it would wait for
that task, and a straggler's first slow task is still running when the
model has no sample of it. The code is chosen again after the next round.

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

from ..coding import EXACT_TOL, MOVE_BUDGET, GradientCode, Rotation, block_size, choose_hold
from ..recorder import attach, latencies
from ..stragglers import (
    StragglerModel,
    current_states,
    fit_straggler_model,
    latency_matrix,
    round_spans,
)
from .choice import ADAPTIVE_SCHEMES, choose_code, should_rechoose, smoothed_probs
from .session import CodedSession
from .task import ROUND_PREFIX

logger = logging.getLogger(__name__)

#: A round this many times slower than the code's typical round re-fits at once ...
SLOW_ROUND_FACTOR = 3.0
#: ... the median of the first this many rounds after the code was set.
REFERENCE_ROUNDS = 3
#: Before switching to a code that cannot decode without a busy worker, wait
#: this share of the recent median round for its task to end.
BUSY_WAIT = 0.5


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


def _share(code: GradientCode) -> float:
    """The share of the data the median worker of ``code`` computes in a round."""
    return float(np.median(np.count_nonzero(code.B, axis=1))) / code.n_partitions


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
        first re-fit comes after ``quorum.adapt.first`` rounds, and one
        follows every round until the recorder holds enough for a model.
    move_budget : float, default=MOVE_BUDGET
        Share of the replicas the rotation of an approximate code moves per
        round on average (:func:`~dask_quorum.pipeline.coding.choose_hold`):
        1 rotates every round.

    Attributes
    ----------
    model : StragglerModel or None
        The latest fitted model. The code is re-chosen when the ideal load
        of some worker, from :func:`smoothed_probs`, moved by more than the
        factor ``quorum.adapt.tolerance`` since the current code was chosen,
        or some worker's current state (slow or fast) changed since.
    switches : list of tuple
        ``(round, scheme)`` for every re-encoding.
    refits : list of int
        The rounds done at every re-fit: scheduled, after a switch, or
        triggered by a slow round.
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
        self.censored_slowdown = float(config.get("adapt.censored-slowdown"))
        self.model: StragglerModel | None = None
        self._states = np.zeros(len(session.workers), dtype=bool)
        self._chosen: tuple[np.ndarray, np.ndarray] | None = None  # the probabilities and states of the last choice
        self.switches: list[tuple[int, str]] = []
        self.rotation: Rotation | None = None
        self.move_budget = float(move_budget)
        self._rotation_start = 0
        self._rotated: GradientCode | None = None  # the code the rotation last set
        attach(session.client)
        # Recorder cursors at past re-fits, with the rounds done then: reading
        # from the newest one at least ``window`` rounds old keeps each read
        # to about ``window`` rounds of rows, however often re-fits come.
        self._cursors: deque[tuple[int, int]] = deque([(0, latencies(session.client).attrs["cursor"])])
        self._last_refit = 0
        self.refits: list[int] = []
        self._encoded = 0  # rounds done when the current code was set
        self._gap = 1  # rounds from a re-fit to the next one a slow round may trigger
        self._predicted: float | None = None  # the current code's round time, from the previous code's
        self._recheck = -1  # rounds done at the re-fit that re-checks a switch deferred for busy workers

    def _fit(self, done: int) -> StragglerModel | None:
        while len(self._cursors) > 1 and self._cursors[1][0] <= done - self.window:
            self._cursors.popleft()
        ds = latencies(self.session.client, since=self._cursors[0][1])
        self._cursors.append((done, ds.attrs["cursor"]))
        # Only this session's round tasks: blank the keys of everything else.
        tag = f"{ROUND_PREFIX}-{self.session.token}"
        keys = ds["key"].values
        mine = np.array([tag in k for k in keys.ravel()], dtype=bool).reshape(keys.shape)
        if mine.sum() < 2 * len(self.session.workers):
            return None
        ds["key"] = (ds["key"].dims, np.where(mine, keys, ""))
        pending = self._pending(ds)
        # The fixed cost per task, fitted on the measured tasks, applies to the pending ones too.
        units = ds["units"].values.copy()
        pending_units = np.array([u for *_, u in pending], dtype=float)
        both = effective_units(
            np.concatenate([ds["compute"].values[mine], np.full(len(pending), np.nan)]),
            np.concatenate([units[mine], pending_units]),
        )
        units[mine] = both[: mine.sum()]
        ds["units"] = (ds["units"].dims, units)
        # A worker still running its first task has no sample yet: a NaN column.
        names = list(self.session.workers)
        recorded = {str(w) for w in ds["worker"].values}
        measured, present = latency_matrix(ds, workers=[w for w in names if w in recorded])
        matrix = np.full((measured.shape[0], len(names)), np.nan)
        matrix[:, [names.index(w) for w in present]] = measured
        censored = np.full(matrix.shape, np.nan)
        for (row, address, seconds, _), u in zip(pending, both[mine.sum() :]):
            if address in names and u > 0:
                censored[row, names.index(address)] = seconds / u
        x, c = matrix[-self.window :], censored[-self.window :]
        model = fit_straggler_model(x, workers=names, censored=c, censored_slowdown=self.censored_slowdown)
        self._states = current_states(x, workers=names, threshold=model.threshold, censored=c)
        return model

    def _pending(self, ds: Any) -> list[tuple[int, str, float, float]]:
        """``(matrix row, worker, seconds, units)`` of the tasks still running at the end of recorded rounds.

        A worker busy with a slow task reports once per task; the rounds it
        spent busy are lower bounds of its latency
        (:attr:`RoundRecord.pending`), which the model counts as slow when
        they exceed the straggle threshold.
        """
        span = round_spans(ds).get(self.session.token)
        if span is None:
            return []
        first, last = span
        workers = self.session.all_workers
        out = []
        for record in reversed(self.session.records):
            if record.task_round < first:
                break
            if record.task_round <= last:
                out += [(record.task_round - first, workers[i], sec, u) for i, sec, u in record.pending]
        return out

    def after_round(self, index: int) -> None:
        """Call after round ``index``; re-fits after ``first`` rounds, then every ``every``.

        A re-encoding is followed by a re-fit ``first`` rounds later: the
        model that chose the code saw few rounds of the new one. A switch
        to an exact code that cannot decode without a worker still busy
        with a task (``sync`` chosen while a straggler's first slow task is
        running: the model has no slow sample of it yet) is not made; the
        code is chosen again after the next round, when the task has run
        long enough to count (:meth:`_needed_busy`).

        A round more than :data:`SLOW_ROUND_FACTOR` times slower than the
        code's typical round re-fits at once. The typical round is the
        lesser of the median of the :data:`REFERENCE_ROUNDS` rounds after
        the code was set and, after a switch, the median of the rounds
        before it scaled by the share of the data a median worker computes
        under each code (a code that waits for a straggler from its first
        round is slow against the rounds before it): a straggler that appears
        under a code that cannot ignore it (``sync`` after a quiet start)
        holds back a round or two, not ``every``. While rounds stay slow and
        re-fits change nothing, the rounds between such re-fits double (up
        to ``every``). Between re-fits, an approximate code is rotated by
        its :attr:`rotation` (one step every ``rotation.hold`` rounds).
        """
        done = index + 1
        scheduled = done >= self.first and (done - self.first) % self.every == 0
        # a switch is checked on fresh rounds soon after it is made
        scheduled = scheduled or (self._encoded > 0 and done == self._encoded + self.first)
        scheduled = scheduled or done == self._recheck
        # until a model exists, as soon as the recorder holds enough rounds for one
        scheduled = scheduled or (self.model is None and done > self.first)
        triggered = not scheduled and self._round_was_slow(done)
        if not (scheduled or triggered):
            self._rotate(done)
            return
        self._last_refit = done
        self.refits.append(done)
        old = self.session.code
        if self._refit(index):
            self._encoded, self._gap = done, 1
            # the new code's round, predicted from the old one's by the share of data a worker computes
            before = [r.wall_time for r in self.session.records[max(0, done - REFERENCE_ROUNDS) : done]]
            self._predicted = float(np.median(before)) * _share(self.session.code) / _share(old)
            return
        if triggered:
            self._gap = min(2 * self._gap, self.every)
        self._rotate(done)

    def _round_was_slow(self, done: int) -> bool:
        """Whether the last round took far longer than the current code's typical round."""
        if done < self.first or done - self._last_refit < self._gap:
            return False
        start = self._encoded
        typical = [self._predicted] if self._predicted is not None else []
        if done - start > REFERENCE_ROUNDS:
            reference = self.session.records[start : start + REFERENCE_ROUNDS]
            typical.append(float(np.median([r.wall_time for r in reference])))
        if not typical:
            return False
        return self.session.records[done - 1].wall_time > SLOW_ROUND_FACTOR * min(typical)

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
            model = self._fit(index + 1)
        except ValueError as exc:  # too little data for a model yet
            logger.debug("no straggler model after round %d: %s", index, exc)
            return False
        if model is None or list(model.workers) != list(self.session.workers):
            return False
        self.model = model
        probs = smoothed_probs(model)
        if not should_rechoose(self._chosen, probs, self._states, self.tol):
            return False
        code = self._choose(model, probs)
        self._chosen = (probs, self._states.copy())
        current = self.session.code if self.rotation is None else self.rotation.base
        if code is None or (code.scheme == current.scheme and np.array_equal(code.B, current.B)):
            return False
        busy = self._needed_busy(code)
        if busy:
            # Choose again after the next round, which shows how long the busy tasks run (once in a row).
            done = index + 1
            self._recheck = done + 1 if self._recheck != done else -1
            self._chosen = None
            logger.info(
                "round %d: not switching to %s while %s still run tasks it cannot decode without",
                done, code.scheme, busy,
            )
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

    def _needed_busy(self, code: GradientCode) -> list[str]:
        """Workers still busy that the exact ``code`` needs to decode and the running code does not.

        A round under ``code`` would wait for their tasks: a code that needs
        every worker (``sync``), chosen while the model has yet to see a
        straggler that started a long task in the last round, would wait
        for that task to end. Tasks get :data:`BUSY_WAIT` of the recent
        median round to end first: the replicas a redundant code did not
        wait for are usually about to.
        """
        if not code.exact:  # an approximate code is shaped to decode without the likely stragglers
            return []
        names = list(self.session.workers)
        current = self.session.code

        def needed(busy: list[str]) -> bool:
            free = [i for i, w in enumerate(names) if w not in busy]
            return bool(free) and code.error(free) > current.error(free) + EXACT_TOL

        busy = self.session.busy_workers()
        if not busy or not needed(busy):
            return []
        recent = [r.wall_time for r in self.session.records[-REFERENCE_ROUNDS:]]
        busy = self.session.busy_workers(wait=BUSY_WAIT * float(np.median(recent)) if recent else 0.0)
        return busy if busy and needed(busy) else []

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


