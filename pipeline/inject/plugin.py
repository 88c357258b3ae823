"""Straggler injection on the workers: the plugin that makes chosen workers slow for any task.

:class:`StragglerInjector` is a :class:`distributed.WorkerPlugin` that slows
down every task a chosen worker executes, whoever built the graph
(dask-quorum, ``dask.array``, dask-ml, plain ``client.submit``), so that
contenders can be measured under identical, reproducible conditions.

Holds :class:`InjectionRecord`, the slowed graph node, the plugin
:class:`StragglerInjector` and :func:`slow_step` (for loops that run
outside Dask tasks). The client calls that install, read and remove the
plugin are in :mod:`~dask_quorum.pipeline.inject.control`; the specs it
applies in :mod:`~dask_quorum.pipeline.inject.slowdown` and
:mod:`~dask_quorum.pipeline.inject.replay`.

How a task is slowed
--------------------
When a task enters the ``executing`` state the plugin's ``transition`` hook
runs synchronously inside the worker's state machine, before
``Worker.execute`` reads ``ts.run_spec`` (the ``Execute`` instruction is only
dispatched to an asyncio task after all transitions of the stimulus ran).
The hook replaces ``ts.run_spec`` by a thin graph node that, *in the
executor thread*, runs the original task with the very same dependency
values, times it, and when the worker's Markov chain says "slow" waits an
extra ``(factor - 1) * natural + delay`` seconds on a
:class:`threading.Event`. Hence:

* the worker's event loop never sleeps (heartbeats, transfers and
  ``client.run`` answer while a slowed task runs), and no CPU is spun;
* the extra time lies between the start and stop stamps the worker takes
  around ``task(data)``, so it is part of the ``"compute"`` interval of the
  scheduler's ``startstops`` and of every duration derived from it.

Results and exceptions pass through unchanged; coroutine tasks and tasks
sent to a non-thread executor are left alone.

Emulated work: a small host standing in for a cluster
------------------------------------------------------
Fifteen workers sharing two cores do not behave like fifteen machines: their
real compute runs one after another, so whoever straggles, a round costs the
total work of all workers, and a scheme that places replicas pays for them
twice. With ``unit_seconds > 0`` every task that declares its work units
(the ``quorum_units`` annotation,
:data:`~dask_quorum.pipeline.recorder.UNITS_ANNOTATION`; ASAP steps declare
theirs too) also
waits ``factor * unit_seconds * units``, on *every* worker: the time the
task would take on a machine of its own, times the worker's current
slowdown. The waits are sleeps, so they overlap like work on separate
machines do, and the slow/fast ratios of a chain or a replayed trace hold
for that emulated work exactly. Tasks without declared units (other
libraries' graphs) get no emulated work, so only compare contenders that
declare theirs under it.

Replaying a recorded trace
--------------------------
Instead of a Markov chain per worker, the injector can replay measured
per-node iteration times
(:class:`~dask_quorum.pipeline.inject.TraceReplay`, built with
:meth:`~dask_quorum.pipeline.inject.TraceReplay.from_csv` or
:meth:`~dask_quorum.pipeline.inject.TraceReplay.from_matrix`): worker
``workers[i]`` replays trace node ``i``, and its ``t``-th task is slowed by
that node's slowdown factor at iteration ``t`` (wrapping around at the end
of the trace), plus an optional additive delay scaled to a time budget. The
replay is deterministic, and each :class:`InjectionRecord` shows the factor
and delay applied to its task.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from dask._task_spec import GraphNode
from distributed.diagnostics.plugin import WorkerPlugin

from ..recorder import UNITS_ANNOTATION
from ._checks import WorkerId, _check_number, _check_seed, _check_worker_ids
from .replay import TraceReplay
from .schedules import _ChainSchedule, _ReplaySchedule, _Schedule
from .slowdown import Slowdown

if TYPE_CHECKING:
    from distributed import Worker

logger = logging.getLogger(__name__)

#: Default number of records kept per worker by :class:`StragglerInjector`.
DEFAULT_LOG_SIZE = 10_000


class InjectionRecord(NamedTuple):
    """One task executed by a worker that is slowed, replays a trace, or emulates work.

    That is, by a worker with a :class:`~dask_quorum.pipeline.inject.Slowdown`,
    a :class:`~dask_quorum.pipeline.inject.TraceReplay` or ``unit_seconds`` of
    emulated work. A task waits ``factor * work + (factor - 1) * natural + delay`` seconds
    after its natural run (``factor = 1``, no delay, when fast); ``added`` is
    the time actually waited.
    """

    #: Position of the task in the worker's chain or replay (0 for the first
    #: task; a replay uses iteration ``index % n_iterations``).
    index: int
    #: Dask key of the task.
    key: Any
    #: Whether the task was slowed (chain said slow, or replayed factor > 1).
    slow: bool
    #: Seconds the original task took.
    natural: float
    #: Seconds added by the injector (0 when fast).
    added: float
    #: Slowdown factor applied (1.0 when fast).
    factor: float = 1.0
    #: Additive delay applied, in seconds (0.0 when fast).
    delay: float = 0.0
    #: Emulated work of the task, ``unit_seconds * units`` (before the factor).
    work: float = 0.0


class _SlowedNode(GraphNode):
    """Run spec that runs ``original`` with the same values, then waits.

    Called by the worker in its executor thread as ``node(data)``.
    """

    __slots__ = ("original", "injector", "index", "slow", "factor", "delay", "work")

    def __init__(
        self,
        original: GraphNode,
        injector: StragglerInjector,
        index: int,
        slow: bool,
        factor: float = 1.0,
        delay: float = 0.0,
        work: float = 0.0,
    ):
        self.key = original.key
        self._dependencies = original.dependencies
        self.original = original
        self.injector = injector
        self.index = index
        self.slow = slow
        self.factor = factor if slow else 1.0
        self.delay = delay if slow else 0.0
        self.work = work

    def __call__(self, values: Any = ()) -> Any:
        start = time.perf_counter()
        try:
            result = self.original(values)
        except Exception:
            self._after(start)
            raise
        self._after(start)
        return result

    def _after(self, start: float) -> None:
        natural = time.perf_counter() - start
        injector = self.injector
        added = injector._wait(self.slow, self.factor, self.delay, natural, self.work)
        record = InjectionRecord(
            self.index, self.key, self.slow, natural, added, self.factor, self.delay, self.work
        )
        injector._record(record)

    def __repr__(self) -> str:
        state = "slow" if self.slow else "fast"
        return f"<{state} {self.original!r}>"



class StragglerInjector(WorkerPlugin):
    """Worker plugin that makes chosen workers slow for every task.

    Register it with :func:`~dask_quorum.pipeline.inject.inject_stragglers`
    (which checks the workers exist), or
    ``client.register_plugin(StragglerInjector(...))``. Each worker gets its
    own copy; a worker not named in ``slowdowns`` (or in the
    replay's workers) is left alone. Registering again replaces the previous
    injector: its ``teardown`` restores every run spec it changed and cuts
    short the waits of tasks already running (they return their results at
    once).

    Parameters
    ----------
    slowdowns : mapping of str or int to Slowdown, or TraceReplay
        Per-worker spec, keyed by worker address (``"tcp://..."``) or name
        (``LocalCluster`` names workers ``0 .. n-1``; ``0`` and ``"0"`` are
        the same name); or a
        :class:`~dask_quorum.pipeline.inject.TraceReplay`, whose workers
        then replay their trace node task by task (deterministically).
    seed : int, default=0
        Seed; the chain of each worker uses a generator derived from
        ``(seed, str(key))``, so its sequence of slow/fast states is the same
        run to run (see :func:`~dask_quorum.pipeline.inject.slow_states`).
        Unused by a replay.
    log_size : int, default=10_000
        Number of :class:`InjectionRecord` kept per worker (oldest dropped).
    unit_seconds : float, default=0.0
        Emulated seconds of work per declared work unit, on every worker
        (slowed ones times their factor); see "Emulated work" in the module
        docstring. 0 emulates nothing.

    Attributes
    ----------
    slowdowns : dict of str or int to Slowdown
        The Markov-chain specs (empty for a replay).
    replay : TraceReplay or None
        The replayed trace, if any.
    log : collections.deque of InjectionRecord
        On the worker, the most recent tasks in completion order. Read it
        through :func:`~dask_quorum.pipeline.inject.injection_log` or
        :meth:`records`.

    Raises
    ------
    ValueError
        On a key that is not a str or int, two keys naming the same worker
        (``0`` and ``"0"``), a value that is not a
        :class:`~dask_quorum.pipeline.inject.Slowdown`, a negative or
        non-integer seed, a ``log_size`` below 1, or a negative
        or non-finite ``unit_seconds``.

    Notes
    -----
    The chain (or replay) advances when a task enters ``executing`` (in the
    order tasks start on the worker), and the extra time is waited in the
    executor thread, so it counts as the task's compute time. The wait is a
    sleep, recorded by ``distributed`` as ``thread-noncpu`` time rather than
    CPU. A task that raises is slowed as well, then its exception propagates
    unchanged.
    """

    name = "quorum-straggler-injector"
    idempotent = False

    def __init__(
        self,
        slowdowns: Mapping[WorkerId, Slowdown] | TraceReplay,
        *,
        seed: int = 0,
        log_size: int = DEFAULT_LOG_SIZE,
        unit_seconds: float = 0.0,
    ):
        replay = slowdowns if isinstance(slowdowns, TraceReplay) else None
        if replay is not None:
            slowdowns = {}
        elif not isinstance(slowdowns, Mapping):
            raise ValueError(
                f"slowdowns must be a mapping of worker to Slowdown, or a "
                f"TraceReplay, got {slowdowns!r}"
            )
        _check_worker_ids(slowdowns)
        for worker, spec in slowdowns.items():
            if not isinstance(spec, Slowdown):
                raise ValueError(
                    f"slowdown of worker {worker!r} must be a Slowdown, got {spec!r}"
                )
        _check_seed(seed)
        if isinstance(log_size, bool) or not isinstance(log_size, int) or log_size < 1:
            raise ValueError(f"log_size must be a positive integer, got {log_size!r}")
        _check_number("unit_seconds", unit_seconds, 0.0)

        self.slowdowns: dict[WorkerId, Slowdown] = dict(slowdowns)
        self.replay: TraceReplay | None = replay
        self.seed = int(seed)
        self.unit_seconds = float(unit_seconds)
        self.log: deque[InjectionRecord] = deque(maxlen=log_size)
        # Runtime state, created on the worker in ``setup``.
        self._worker: Worker | None = None
        self._identity: WorkerId | None = None
        self._schedule: _Schedule | None = None
        self._count = 0
        self._stop: threading.Event | None = None
        self._lock: threading.Lock | None = None

    def __repr__(self) -> str:
        work = f", unit_seconds={self.unit_seconds:g}" if self.unit_seconds else ""
        if self.replay is not None:
            return f"{type(self).__name__}({self.replay!r}{work})"
        return f"{type(self).__name__}({self.slowdowns!r}, seed={self.seed}{work})"

    @property
    def workers(self) -> tuple[WorkerId, ...]:
        """The workers this injector slows down (addresses or names)."""
        if self.replay is not None:
            return self.replay.workers
        return tuple(self.slowdowns)

    # -- lifecycle ---------------------------------------------------------

    def setup(self, worker: Worker) -> None:
        identities = {worker.address, str(worker.name)}
        matches = [w for w in self.workers if str(w) in identities]
        if len(matches) > 1:
            raise ValueError(
                f"worker {worker.address} (name {worker.name!r}) is given more than "
                f"once in the slowdowns: {matches!r}"
            )
        self._worker = worker
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if matches:
            self._identity = identity = matches[0]
            if self.replay is not None:
                replay = self.replay
                self._schedule = _ReplaySchedule(replay, identity)
                node = replay.nodes[replay.column(identity)]
                what = f"replay of node {node!r} of trace {replay.trace!r}"
            else:
                spec = self.slowdowns[identity]
                self._schedule = _ChainSchedule(spec, self.seed, identity)
                what = repr(spec)
            logger.info(
                "Straggler injection on worker %s (as %r): %s",
                worker.address,
                identity,
                what,
            )

    def teardown(self, worker: Worker) -> None:
        if self._stop is not None:
            self._stop.set()
        self._schedule = None
        restored = 0
        for ts in worker.state.tasks.values():
            run_spec = ts.run_spec
            if isinstance(run_spec, _SlowedNode) and run_spec.injector is self:
                ts.run_spec = run_spec.original
                restored += 1
        if self._identity is not None:
            logger.info(
                "Straggler injection removed from worker %s (%d run specs restored)",
                worker.address,
                restored,
            )

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish != "executing" or self._worker is None:
            return
        if self._schedule is None and not self.unit_seconds:
            return
        ts = self._worker.state.tasks.get(key)
        if ts is None or ts.run_spec is None:
            return
        run_spec = ts.run_spec
        if isinstance(run_spec, _SlowedNode):  # never wrap twice
            run_spec = run_spec.original
        if run_spec.is_coro:
            return
        executor = (ts.annotations or {}).get("executor", "default")
        # Same test as Worker.execute: other executors (processes) would
        # have to pickle the wrapper and run it elsewhere.
        if "ThreadPoolExecutor" not in str(type(self._worker.executors.get(executor))):
            logger.debug("Not slowing %r: executor %r is no thread pool", key, executor)
            return
        work = self._work((ts.annotations or {}).get(UNITS_ANNOTATION))
        if self._schedule is None and not work:
            return
        slow, factor, delay = self._schedule.step() if self._schedule is not None else (False, 1.0, 0.0)
        ts.run_spec = _SlowedNode(run_spec, self, self._count, slow, factor, delay, work)
        self._count += 1

    def _work(self, units: Any) -> float:
        """Emulated seconds of a task declaring ``units`` (0 without emulation or units)."""
        if not self.unit_seconds or isinstance(units, bool) or not isinstance(units, (int, float)):
            return 0.0
        return self.unit_seconds * float(units) if math.isfinite(units) and units > 0 else 0.0

    def _wait(self, slow: bool, factor: float, delay: float, natural: float, work: float) -> float:
        """Wait out a task's slowdown and emulated work (cut short on teardown); the seconds waited."""
        stop = self._stop
        extra = factor * work + ((factor - 1.0) * natural + delay if slow else 0.0)
        if extra <= 0 or stop is None or stop.is_set():
            return 0.0
        begin = time.perf_counter()
        # Event.wait blocks without spinning and ends early on teardown.
        stop.wait(extra)
        return time.perf_counter() - begin

    # -- long-running loops ---------------------------------------------------

    def slow_step(self, natural: float, key: Any, units: float | None = None) -> float:
        """Slow one step of a long-running loop as if it were a task; return the seconds added.

        Work that runs outside Dask tasks (ASAP's per-worker loops) never
        enters ``executing``, so :meth:`transition` cannot slow it. Such a
        loop calls this after each step, in its own thread: the worker's
        schedule advances by one, exactly as for a task, and a slow step
        waits ``(factor - 1) * natural + delay`` more seconds (cut short on
        teardown) and is logged.

        Parameters
        ----------
        natural : float
            Seconds the step took.
        key : object
            Name of the step in the log.
        units : float, optional
            Work units of the step, for the emulated work (``unit_seconds``).
        """
        work = self._work(units)
        if (self._schedule is None and not work) or self._lock is None or self._stop is None:
            return 0.0
        with self._lock:
            slow, factor, delay = self._schedule.step() if self._schedule is not None else (False, 1.0, 0.0)
            index = self._count
            self._count += 1
        factor, delay = (factor, delay) if slow else (1.0, 0.0)
        added = self._wait(slow, factor, delay, natural, work)
        self._record(InjectionRecord(index, key, slow, natural, added, factor, delay, work))
        return added

    # -- log -----------------------------------------------------------------

    def _record(self, record: InjectionRecord) -> None:
        assert self._lock is not None
        with self._lock:
            self.log.append(record)

    def records(self) -> list[InjectionRecord]:
        """Snapshot of :attr:`log`, safe while tasks are running."""
        if self._lock is None:
            return list(self.log)
        with self._lock:
            return list(self.log)



def slow_step(worker: Worker, natural: float, key: Any, units: float | None = None) -> float:
    """Apply ``worker``'s injected slowdown to one step of a long-running loop.

    A no-op (returns 0) when the worker has no :class:`StragglerInjector`
    or the injector leaves it alone. See :meth:`StragglerInjector.slow_step`.

    Parameters
    ----------
    worker : distributed.Worker
    natural : float
        Seconds the step took.
    key : object
        Name of the step in the injection log.
    units : float, optional
        Work units of the step (for emulated work).

    Returns
    -------
    float
        Seconds the step was made to wait.
    """
    plugin = worker.plugins.get(StragglerInjector.name)
    if not isinstance(plugin, StragglerInjector):
        return 0.0
    return plugin.slow_step(natural, key, units)
