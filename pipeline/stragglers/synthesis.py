"""Synthetic clusters: a straggler model for ``n`` workers drawn from fitted ones.

The EC2 traces have 8 to 15 nodes. To ask how a code would do on a cluster
of hundreds, :func:`synthesize_model` pools the per-worker profiles of one
or more fitted :class:`~dask_quorum.pipeline.stragglers.StragglerModel`
(frequency, persistence and per-state latencies of every node) and draws
``n_workers`` of them with replacement: a cluster whose workers straggle
the way the measured nodes did, in the same proportion. Each source model
is first rescaled so that its median fast-state shift is 1 (traces measured
at different problem sizes then share one time unit: seconds per unit of a
typical fast worker); the result's latencies are in that unit, times
``scale``.

:func:`synthesize_trace` also samples the synthetic cluster's latencies
once, as a :class:`SyntheticTrace` that replays them: planning on it (and
on its first ``m`` workers) sees the same rounds, as a replayed trace would.

Pure NumPy; imports nothing outside this subpackage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .model import StragglerModel

__all__ = ["SyntheticTrace", "synthesize_model", "synthesize_trace"]

#: Per-worker fields of a profile; latencies (shift, 1 / rate) are rescaled, the rest kept.
_PROBABILITIES = ("p", "p_slow_slow", "p_slow_fast", "slowdown")
_SHIFTS = ("shift", "slow_shift")
_RATES = ("rate", "slow_rate")


def _profiles(models: Sequence[StragglerModel]) -> dict[str, np.ndarray]:
    """Every worker of ``models`` as one row, latencies in units of its model's median fast shift."""
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in (*_PROBABILITIES, *_SHIFTS, *_RATES)}
    for m in models:
        unit = float(np.median(m.shift))
        if not np.isfinite(unit) or unit <= 0:
            raise ValueError(
                f"cannot rescale a model whose median fast-state shift is {unit!r}: it needs a positive "
                "typical latency"
            )
        for k in _PROBABILITIES:
            pooled[k].append(np.asarray(getattr(m, k), dtype=float))
        for k in _SHIFTS:
            pooled[k].append(np.asarray(getattr(m, k), dtype=float) / unit)
        for k in _RATES:
            pooled[k].append(np.asarray(getattr(m, k), dtype=float) * unit)
    return {k: np.concatenate(v) for k, v in pooled.items()}


def synthesize_model(
    models: StragglerModel | Sequence[StragglerModel],
    n_workers: int,
    *,
    scale: float = 1.0,
    random_state: int | np.random.Generator | None = None,
    threshold: float | None = None,
) -> StragglerModel:
    """A straggler model of ``n_workers`` workers drawn from fitted models' workers.

    Every synthetic worker copies the profile (straggle frequency, Markov
    persistence, fast and slow latency distributions) of a worker drawn
    uniformly, with replacement, from the workers of ``models``; latencies
    are rescaled so that each source model's median fast-state shift is
    ``scale``. The expected share of stragglers is therefore the pooled
    share of the sources, whatever ``n_workers``.

    Parameters
    ----------
    models : StragglerModel or sequence of StragglerModel
        Fitted models (e.g. one per EC2 trace).
    n_workers : int
        Workers of the synthetic cluster, ``>= 1``.
    scale : float, default=1.0
        Seconds per unit of a typical fast worker (``> 0``).
    random_state : int, numpy.random.Generator or None
        Seeds the draw.
    threshold : float, optional
        Straggle threshold of the result; default the first model's.

    Returns
    -------
    StragglerModel
        Workers ``w0000`` ... in draw order, ``n_rounds`` 0 (not observed).

    Raises
    ------
    ValueError
        With no model, ``n_workers < 1``, ``scale <= 0``, or a source model
        whose median fast shift is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> one = StragglerModel(["a", "b"], p=[0.0, 0.8], p_slow_slow=[0.5, 0.9], p_slow_fast=[0.0, 0.4],
    ...                      shift=[2.0, 2.0], rate=[5.0, 5.0], slow_shift=[20.0, 20.0],
    ...                      slow_rate=[1.0, 1.0], slowdown=[10.0, 10.0], n_rounds=[50, 50])
    >>> big = synthesize_model(one, 100, random_state=0)
    >>> big.n_workers, float(np.median(big.shift))
    (100, 1.0)
    """
    sources = [models] if isinstance(models, StragglerModel) else list(models)
    if not sources:
        raise ValueError("synthesize_model needs at least one fitted model")
    if not all(isinstance(m, StragglerModel) for m in sources):
        raise ValueError("models must be StragglerModel instances")
    if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    pool = _profiles(sources)
    rng = np.random.default_rng(random_state)
    pick = rng.integers(0, len(pool["p"]), size=int(n_workers))
    fields = {k: v[pick] for k, v in pool.items()}
    for k in _SHIFTS:
        fields[k] = fields[k] * scale
    for k in _RATES:
        fields[k] = fields[k] / scale
    width = max(4, len(str(n_workers - 1)))
    return StragglerModel(
        workers=[f"w{i:0{width}d}" for i in range(int(n_workers))],
        n_rounds=np.zeros(int(n_workers), dtype=np.int64),
        threshold=sources[0].threshold if threshold is None else threshold,
        **fields,
    )


@dataclass(frozen=True, eq=False)
class SyntheticTrace:
    """Per-row latencies of a synthetic cluster, replayed round by round.

    Has what :func:`~dask_quorum.pipeline.planning.plan` asks of a model
    (``workers``, ``p``, ``sample``), so a plan can be made on it; ``sample``
    replays the first rounds of the trace instead of drawing new ones, so
    that every plan on it, and on its :meth:`first` workers, sees the same
    rounds.

    Attributes
    ----------
    workers : tuple of str
    p : ndarray of shape (n_workers,)
        Long-run slow fraction of each worker's chain (``p_stationary`` of
        the model it was drawn from): what a fitted model would believe.
    latencies : ndarray of shape (n_rounds, n_workers)
        Seconds per row.
    states : ndarray of bool, shape (n_rounds, n_workers)
        Whether each worker was slow in each round.
    """

    workers: tuple[str, ...]
    p: np.ndarray
    latencies: np.ndarray
    states: np.ndarray

    @property
    def n_workers(self) -> int:
        return len(self.workers)

    @property
    def n_rounds(self) -> int:
        return int(self.latencies.shape[0])

    def sample(self, n_rounds: int, random_state: object = None) -> np.ndarray:
        """The first ``n_rounds`` rounds of the trace (``random_state`` is ignored: a replay).

        Raises
        ------
        ValueError
            If the trace has fewer than ``n_rounds`` rounds.
        """
        if isinstance(n_rounds, bool) or not isinstance(n_rounds, (int, np.integer)) or n_rounds < 1:
            raise ValueError(f"n_rounds must be a positive integer, got {n_rounds!r}")
        if n_rounds > self.n_rounds:
            raise ValueError(f"the trace has {self.n_rounds} rounds, {n_rounds} were asked for")
        return self.latencies[:n_rounds].copy()

    def first(self, n_workers: int) -> SyntheticTrace:
        """The trace of the first ``n_workers`` workers (the same rounds)."""
        if isinstance(n_workers, bool) or not isinstance(n_workers, (int, np.integer)) or not (
            1 <= n_workers <= self.n_workers
        ):
            raise ValueError(f"n_workers must be in 1 .. {self.n_workers}, got {n_workers!r}")
        k = int(n_workers)
        return SyntheticTrace(self.workers[:k], self.p[:k], self.latencies[:, :k], self.states[:, :k])


def synthesize_trace(
    models: StragglerModel | Sequence[StragglerModel],
    n_workers: int,
    n_rounds: int,
    *,
    scale: float = 1.0,
    random_state: int | np.random.Generator | None = None,
) -> SyntheticTrace:
    """A replayable trace of ``n_rounds`` rounds on ``n_workers`` synthetic workers.

    Draws the workers with :func:`synthesize_model`, then their latencies
    with the model's :meth:`~dask_quorum.pipeline.stragglers.StragglerModel.sample`
    (each chain starting from its stationary distribution). The
    :meth:`SyntheticTrace.first` ``m`` workers of the result are a cluster
    of ``m`` drawn the same way, on the same rounds.

    Parameters
    ----------
    models, n_workers, scale
        As in :func:`synthesize_model`.
    n_rounds : int
        Rounds of the trace, ``>= 1``.
    random_state : int, numpy.random.Generator or None
        Seeds the draw of the workers and of their latencies.

    Returns
    -------
    SyntheticTrace
    """
    rng = np.random.default_rng(random_state)
    model = synthesize_model(models, n_workers, scale=scale, random_state=rng)
    latencies, states = model.sample(n_rounds, random_state=rng, return_states=True)
    p = np.array(model.p_stationary, dtype=float)
    for a in (p, latencies, states):
        a.setflags(write=False)
    return SyntheticTrace(model.workers, p, latencies, states)
