"""Per-task schedules: a spec as a sequence of (slow, factor, delay), one per task.

Holds the protocol the injector steps once per task it slows, and its two
implementations: a :class:`~dask_quorum.pipeline.inject.Slowdown`'s seeded
Markov chain and one worker's column of a
:class:`~dask_quorum.pipeline.inject.TraceReplay` (wrapping around).
"""

from __future__ import annotations

import logging
from typing import Protocol

from ._checks import WorkerId
from .replay import TraceReplay
from .slowdown import Slowdown, _Chain

logger = logging.getLogger(__name__)


class _Schedule(Protocol):
    def step(self) -> tuple[bool, float, float]:
        """Advance to the next task: (slow, factor, delay)."""


class _ChainSchedule:
    """A :class:`Slowdown`'s Markov chain as a per-task schedule."""

    def __init__(self, slowdown: Slowdown, seed: int, worker: WorkerId):
        self._spec = slowdown
        self._chain = _Chain(slowdown, seed, worker)

    def step(self) -> tuple[bool, float, float]:
        if self._chain.step():
            return True, self._spec.factor, self._spec.delay
        return False, 1.0, 0.0


class _ReplaySchedule:
    """One worker's column of a :class:`TraceReplay`, wrapping around."""

    def __init__(self, replay: TraceReplay, worker: WorkerId):
        column = replay.column(worker)
        self._factors = replay.factors[:, column].tolist()
        self._delays = replay.delays[:, column].tolist()
        self._t = 0

    def step(self) -> tuple[bool, float, float]:
        t = self._t % len(self._factors)
        self._t += 1
        factor, delay = self._factors[t], self._delays[t]
        return factor > 1.0 or delay > 0.0, factor, delay

