"""Straggler scenarios: what is injected, and the slowdowns the oracle bound sees.

A :class:`Scenario` names a cluster size and one way of slowing workers
down, applied identically to every contender through
:func:`~dask_quorum.pipeline.inject.inject_stragglers` (which slows any
Dask task, whoever built the graph):

``none``
    Nobody is slowed.
``persistent``
    Two classes of workers: the first ``ceil(slow_share * n)`` (in address
    order) follow a two-state Markov chain per task, P(slow | slow) =
    ``p_slow_slow``, P(slow | fast) = ``p_slow_fast``, and a slow task takes
    ``factor`` times its natural time plus ``delay``; the others are never
    slowed. The chain is re-seeded before every fit, so every contender
    meets the same state sequence task by task.
``trace``
    One worker per node of an EC2 trace replays that node's per-iteration
    slowdown (:class:`~dask_quorum.pipeline.inject.TraceReplay`).
``halfway``
    One worker turns ``factor`` times slower ``switch_s`` seconds after the
    fit starts (for the whole rest of the fit). The switch is timed, not
    counted in tasks, so contenders with more tasks per iteration (dask-ml)
    meet it at the same moment of their fit.

``persistent-10x-n16-r2`` is the one persistent scenario with a fixed
redundancy of 2 instead of ``slow + 1``: 4 of 16 workers slow at 10x, more
than a uniform code with redundancy 2 (``cyclic``, ``frc``) can ignore, so
those wait for a slow worker in nearly every round, while a code that moves
the slow workers' partitions to fast ones need not. It emulates its work
(``partition_s`` seconds per partition, see :attr:`Scenario.partition_s`)
so that 16 workers on a small host act as 16 machines.

Slowdown *factors* scale a task's natural time, so they weigh the same on
contenders that cut an iteration into many small tasks and on those that run
one task per worker and round; an additive ``delay`` (seconds per slow task)
does not: it is charged once per task, which penalises contenders with more
tasks per iteration. The defaults therefore use factors only.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from distributed import Client

from dask_quorum.pipeline.inject import (
    Slowdown,
    TraceReplay,
    inject_stragglers,
    remove_stragglers,
    slow_states,
)

from .oracle import round_seconds

logger = logging.getLogger(__name__)

__all__ = ["KINDS", "R2_SCENARIO", "TRACE_FILE", "Injection", "Scenario"]

#: Scenario kinds.
KINDS = ("none", "persistent", "trace", "halfway")

#: The persistent scenario with redundancy 2 (4 of 16 workers slow at 10x).
R2_SCENARIO = "persistent-10x-n16-r2"

#: File name of the EC2 traces inside the traces folder.
TRACE_FILE = "aws_ec2_iteration_times.csv"


@dataclass(frozen=True)
class Scenario:
    """One way of slowing down the workers of a cluster of ``n_workers``.

    Parameters
    ----------
    name : str
        Label in tables and file names.
    kind : {"none", "persistent", "trace", "halfway"}
    n_workers : int
    factor : float, default=1.0
        Slowdown factor of a slow task (``persistent``, ``halfway``).
    delay : float, default=0.0
        Extra seconds per slow task (``persistent``, ``halfway``).
    slow_share : float, default=0.25
        Share of workers in the slow class (``persistent``), rounded up.
    p_slow_slow, p_slow_fast : float
        Markov chain of the slow class (``persistent``).
    trace : str, default=""
        Trace name, e.g. ``"data2"`` (``trace``).
    trace_csv : str, default=""
        Path of the traces CSV (``trace``).
    budget : float, default=0.0
        Seconds of extra delay per unit of slowdown of an average iteration
        (``trace``; see :meth:`TraceReplay.from_matrix`); 0 replays the
        ratios only.
    switch_s : float, default=0.0
        Seconds after the start of a fit when the worker turns slow
        (``halfway``).
    redundancy : int, default=2
        Replication factor of the coded schemes in this scenario.
    seed : int, default=0
        Seed of the Markov chains.
    unit_seconds : float, default=0.0
        Emulated seconds of work per declared work unit on every worker,
        times its slowdown factor (see "Emulated work" in
        :mod:`~dask_quorum.pipeline.inject.plugin`): makes a small host behave
        like a cluster of dedicated machines. Applies in every kind,
        ``none`` included; only tasks that declare work units get it.
    partition_s : float, default=0.0
        Emulated seconds of work per partition (``1 / n_workers`` of the
        workload's rows), for a scenario that must emulate its work whatever
        the run's ``unit_seconds``: :meth:`for_rows` turns it into
        ``unit_seconds`` once the workload's rows are known (an explicit
        ``unit_seconds`` wins).
    skip : tuple of str, default=()
        Contenders this scenario does not run, whatever the run asks for
        (each gets a note with ``skip_reason``).
    skip_reason : str, default=""
    """

    name: str
    kind: str
    n_workers: int
    factor: float = 1.0
    delay: float = 0.0
    slow_share: float = 0.25
    p_slow_slow: float = 0.9
    p_slow_fast: float = 0.3
    trace: str = ""
    trace_csv: str = ""
    budget: float = 0.0
    switch_s: float = 0.0
    redundancy: int = 2
    seed: int = 0
    unit_seconds: float = 0.0
    partition_s: float = 0.0
    skip: tuple[str, ...] = ()
    skip_reason: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"scenario kind must be one of {KINDS}, got {self.kind!r}")
        if self.n_workers < 1:
            raise ValueError(f"scenario {self.name!r} needs at least one worker, got {self.n_workers}")
        if self.kind == "persistent" and self.n_slow >= self.n_workers:
            raise ValueError(
                f"scenario {self.name!r}: slow_share={self.slow_share} of {self.n_workers} workers "
                f"leaves no fast worker"
            )
        if self.kind == "trace" and not Path(self.trace_csv).is_file():
            raise ValueError(f"scenario {self.name!r}: the traces file {self.trace_csv!r} does not exist")

    def for_rows(self, rows: int | None) -> Scenario:
        """This scenario with ``partition_s`` turned into ``unit_seconds`` for ``rows`` rows.

        Raises
        ------
        ValueError
            If the scenario needs ``partition_s`` of emulated work and
            ``rows`` is unknown (a workload whose tasks declare no rows).
        """
        if not self.partition_s or self.unit_seconds:
            return self
        if not rows:
            raise ValueError(f"scenario {self.name!r} emulates {self.partition_s:g} s per partition and needs "
                             "a workload with rows")
        return replace(self, unit_seconds=self.partition_s * self.n_workers / rows)

    @property
    def n_slow(self) -> int:
        """Workers that may be slowed."""
        if self.kind == "persistent":
            return max(1, math.ceil(self.slow_share * self.n_workers))
        if self.kind == "halfway":
            return 1
        if self.kind == "trace":
            return self.n_workers
        return 0

    def describe(self) -> str:
        """One sentence for the tables."""
        emulated = f"; every task emulates {self.unit_seconds:.3g} s per work unit" if self.unit_seconds else ""
        if self.partition_s:
            emulated += f" ({self.partition_s:g} s per partition)"
        return self._describe() + emulated

    def _describe(self) -> str:
        if self.kind == "none":
            return f"{self.n_workers} workers, no stragglers"
        if self.kind == "persistent":
            return (
                f"{self.n_workers} workers, {self.n_slow} persistently slow ({self.factor:g}x"
                + (f" + {self.delay:g} s" if self.delay else "")
                + f" per slow task; P(slow|slow)={self.p_slow_slow:g}, P(slow|fast)={self.p_slow_fast:g}, "
                f"slow {self.slowdown().slow_fraction:.0%} of the time), redundancy {self.redundancy}"
            )
        if self.kind == "trace":
            return (
                f"{self.n_workers} workers replaying the first {self.n_workers} nodes of EC2 trace "
                f"{self.trace}" + (f" ({self.budget:g} s per unit of slowdown)" if self.budget else "")
                + f", redundancy {self.redundancy}"
            )
        return (
            f"{self.n_workers} workers, one turns {self.factor:g}x slower {self.switch_s:.2f} s into "
            f"every fit, redundancy {self.redundancy}"
        )

    def slowdown(self) -> Slowdown:
        """The slow class's spec (``persistent``, ``halfway``)."""
        if self.kind == "halfway":
            return Slowdown(factor=self.factor, delay=self.delay)  # always slow
        return Slowdown(
            factor=self.factor, delay=self.delay, p_slow_slow=self.p_slow_slow, p_slow_fast=self.p_slow_fast
        )

    def replay(self, workers: list[str]) -> TraceReplay:
        """The trace replay on ``workers`` (``trace``)."""
        return TraceReplay.from_csv(
            self.trace_csv, self.trace, workers=workers, budget=self.budget or None
        )

    def injection(self, client: Client, workers: list[str]) -> Injection:
        """A fresh :class:`Injection` of this scenario on ``workers`` (address order)."""
        return Injection(self, client, workers)

    def round_slowdowns(
        self, workers: list[str], n_rounds: int, *, work_s: float, floor_s: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Factor and delay of every worker in rounds ``0 .. n_rounds - 1``.

        The values the injector applies task by task, the ``t``-th task of a
        worker standing for round ``t``. ``halfway`` is timed: rounds are
        fast until the oracle's own rounds (``work_s``, ``floor_s``, see
        :func:`~dask_quorum.bench.oracle.round_seconds`) pass ``switch_s``.

        Returns
        -------
        factors, delays : ndarray of shape (n_rounds, n_workers)
        """
        factors = np.ones((n_rounds, len(workers)))
        delays = np.zeros((n_rounds, len(workers)))
        if self.kind == "persistent":
            spec = self.slowdown()
            for i, w in enumerate(workers[: self.n_slow]):
                slow = slow_states(spec, n_rounds, worker=w, seed=self.seed)
                factors[slow, i] = spec.factor
                delays[slow, i] = spec.delay
        elif self.kind == "trace":
            replay = self.replay(workers)
            for i, w in enumerate(workers):
                factors[:, i], delays[:, i] = replay.schedule(w, n_rounds)
        elif self.kind == "halfway":
            elapsed = 0.0
            for t in range(n_rounds):
                if elapsed >= self.switch_s:
                    factors[t:, 0], delays[t:, 0] = self.factor, self.delay
                    break
                elapsed += round_seconds(work_s, floor_s, factors[t], delays[t])
        return factors, delays


class Injection:
    """Starts and stops one scenario's slowdowns around each fit.

    ``start()`` before a fit (re-seeds the chains, rewinds the replay, or
    arms the halfway timer), ``stop()`` after it (removes the injector, cuts
    short the waits of tasks still running).
    """

    def __init__(self, scenario: Scenario, client: Client, workers: list[str]) -> None:
        self.scenario = scenario
        self.client = client
        self.workers = workers
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._armed = False
        self._injected = False

    def _inject(self, slowed: bool = True) -> None:
        """Register the scenario's injector (``slowed=False``: the emulated work only)."""
        s = self.scenario
        work = {"unit_seconds": s.unit_seconds}
        if not slowed or s.kind == "none":
            inject_stragglers(self.client, {}, **work)
        elif s.kind == "persistent":
            spec = s.slowdown()
            inject_stragglers(self.client, {w: spec for w in self.workers[: s.n_slow]}, seed=s.seed, **work)
        elif s.kind == "trace":
            inject_stragglers(self.client, s.replay(self.workers), **work)
        elif s.kind == "halfway":
            inject_stragglers(self.client, {self.workers[0]: s.slowdown()}, seed=s.seed, **work)

    def _switch(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self._inject()
            self._injected = True
            logger.info("scenario %s: worker %s turned slow", self.scenario.name, self.workers[0])

    def start(self) -> None:
        """Apply the slowdowns (``halfway``: arm the timer) for the next fit."""
        with self._lock:
            if self.scenario.kind == "none" and not self.scenario.unit_seconds:
                return
            if self.scenario.kind == "halfway":
                if self.scenario.unit_seconds:  # emulated work from the start, the slowdown later
                    self._inject(slowed=False)
                    self._injected = True
                self._armed = True
                self._timer = threading.Timer(self.scenario.switch_s, self._switch)
                self._timer.daemon = True
                self._timer.start()
                return
            self._inject()
            self._injected = True

    def stop(self) -> None:
        """Remove the slowdowns (and disarm a timer that has not fired)."""
        with self._lock:
            self._armed = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._injected:
                remove_stragglers(self.client)
                self._injected = False
