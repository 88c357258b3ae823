"""Which code an adaptive fit runs: at the start, and for a fitted straggler model.

Holds the code both adaptive schemes start with (:func:`initial_code`, the
best exact uniform code), the straggle probabilities codes are shaped on
(:func:`smoothed_probs`) and when they moved enough to re-encode
(:func:`loads_moved`, :func:`should_rechoose`), the model seen from now (:class:`Forecast`) and
:func:`choose_code`, which simulates candidates on forecast rounds and
says what to switch to. Pure NumPy over the planning and coding layers:
nothing here talks to the cluster (the adapter, :mod:`.adapt`, does).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..coding import GradientCode, make_code
from ..planning import TIME_TIE_RTOL, shape_heterogeneous, simulate
from ..stragglers import StragglerModel

logger = logging.getLogger(__name__)

ADAPTIVE_SCHEMES = ("heterogeneous", "auto")

#: Rounds simulated from the fitted model to choose a code.
SIMULATED_ROUNDS = 100

#: The uniform schemes ``auto`` weighs against the heterogeneous code shaped on the model.
AUTO_UNIFORM = ("sync", "frc", "cyclic")


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


def should_rechoose(
    chosen: tuple[np.ndarray, np.ndarray] | None, probs: np.ndarray, states: np.ndarray, factor: float
) -> bool:
    """Whether a re-fit chooses the code afresh.

    ``chosen`` holds the straggle probabilities (:func:`smoothed_probs`)
    and the workers' current states the code was chosen on; None before
    the first choice. A choice is made again when the workers changed, when
    some ideal load moved by more than ``factor`` (:func:`loads_moved`), or
    when some worker's current state did: a code chosen while a hiccup of
    the machine slowed a few workers for a round is reconsidered once they
    are fast again, though their frequencies hardly moved.
    """
    if chosen is None or chosen[0].shape != np.shape(probs):
        return True
    old_probs, old_states = chosen
    return loads_moved(old_probs, probs, factor) or not np.array_equal(old_states, states)


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


def _shaped(
    probs: np.ndarray,
    sampled: np.ndarray,
    *,
    error_tol: float | None,
    load_limit: int | None,
    **kwargs: Any,
) -> tuple[GradientCode, Any] | None:
    """The heterogeneous code shaped on the forecast and its simulated rounds; None if none fits memory.

    Approximate codes (rotated by the adapter) are allowed; with
    ``error_tol`` only while their simulated mean error stays within it,
    else the exact code is shaped instead.
    """
    try:
        code, run = shape_heterogeneous(probs, sampled, approximate=True, load_limit=load_limit, **kwargs)
        if error_tol is not None and run.mean_error > error_tol:
            code, run = shape_heterogeneous(probs, sampled, approximate=False, load_limit=load_limit, **kwargs)
    except ValueError as exc:
        if load_limit is None:
            raise
        logger.warning("no heterogeneous code fits the workers' memory (%s)", exc)
        return None
    return code, run


def _uniform_run(
    scheme: str, n_workers: int, redundancy: int, sampled: np.ndarray, units: float
) -> tuple[GradientCode, Any] | None:
    """``scheme``'s code and its simulated rounds; None where it cannot be built (frc, r not dividing n)."""
    try:
        code = make_code(scheme, n_workers, redundancy=redundancy)
    except ValueError:
        return None
    return code, simulate(code, sampled, rows_per_partition=units)


def _fastest(candidates: list[tuple[GradientCode, Any] | None]) -> tuple[GradientCode, float]:
    """The fastest candidate; of those within ``TIME_TIE_RTOL`` of it, the cheapest per round."""
    built = [c for c in candidates if c is not None]
    fastest = min(run.mean_time for _, run in built)
    tied = [(code, run) for code, run in built if run.mean_time <= fastest * (1 + TIME_TIE_RTOL)]
    code, run = min(tied, key=lambda c: c[1].cost_per_round)
    return code, run.mean_time


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
    * ``auto``: the same heterogeneous code (approximate only while its
      simulated error stays within ``error_tol``) against the uniform
      codes of :data:`AUTO_UNIFORM`, on the same forecast rounds; the
      fastest wins, and of those within
      :data:`~dask_quorum.pipeline.planning.TIME_TIE_RTOL` of it the
      cheapest per round, so ``sync`` when nobody straggles and the
      heterogeneous code when persistent stragglers are more than the
      redundancy lets a uniform code ignore.

    ``load_limit`` (the placed partitions a worker's memory takes,
    :meth:`~dask_quorum.pipeline.engine.CodedSession.partition_limit`)
    bounds the heterogeneous loads, the likely stragglers' included; a
    code that would still place more on some worker is not chosen.
    """
    probs = smoothed_probs(model) if probs is None else probs
    if scheme not in ADAPTIVE_SCHEMES:
        raise ValueError(f"scheme must be one of {ADAPTIVE_SCHEMES}, got {scheme!r}")
    sampled = Forecast(model, states, horizon).sample(SIMULATED_ROUNDS, random_state=random_state)
    shaped = _shaped(
        probs, sampled, redundancy=redundancy, random_state=random_state,
        rows_per_partition=units * model.n_workers / (n_partitions or model.n_workers),
        n_partitions=n_partitions, load_limit=load_limit,
        # auto keeps to codes that decode within error_tol in the forecast
        error_tol=None if scheme == "heterogeneous" else error_tol,
    )
    if scheme == "heterogeneous":
        if shaped is None:
            return None
        code, expected = shaped[0], shaped[1].mean_time
    else:
        code, expected = _fastest(
            [shaped, *(_uniform_run(s, model.n_workers, redundancy, sampled, units) for s in AUTO_UNIFORM)]
        )
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
