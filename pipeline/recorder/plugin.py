"""The latency recorder's scheduler side: :class:`LatencyRecorder` and its preload hook.

:class:`LatencyRecorder` is a :class:`distributed.diagnostics.plugin.SchedulerPlugin`
that keeps one row per task that finishes on the cluster, whoever built the
graph (dask-quorum rounds, ``dask.array``, plain ``client.submit``); the
columns are those of :data:`~dask_quorum.pipeline.recorder.FIELDS`
(:mod:`~dask_quorum.pipeline.recorder.rows`). It serves them through the
scheduler handler :data:`HANDLER`, which
:func:`~dask_quorum.pipeline.recorder.latencies` calls.

Compute and transfer intervals come from the ``startstops`` the worker sends
with the result; the worker already shifts them to the scheduler's clock, so
``queue`` compares two scheduler-clock times (up to the worker's estimate of
the clock offset, a few milliseconds at worst, so tiny negative queue times
are possible). Time a task spends ``queued`` on the scheduler (root-task
queuing) is *not* part of ``queue``: it counts from the moment the scheduler
hands the task to a worker. A task stolen from one worker by another stays
``processing``, so its queue time includes the time spent on both.

The rows live on the scheduler in a ring buffer of fixed capacity (config
``quorum.recorder.capacity``); every row gets the next number of an
ever-increasing sequence, which serves as a cursor:
:func:`~dask_quorum.pipeline.recorder.latencies` with ``since=cursor``
returns only rows recorded after that cursor.

The recorder also keeps the cluster's membership changes: workers the
scheduler adds and removes, and those a fit drops or takes in (event
topic :data:`MEMBERSHIP_TOPIC`), and rows of work done outside Dask tasks
(event topic :data:`ROWS_TOPIC`).

How a task declares its work units
----------------------------------
With a task annotation named ``quorum_units`` (a number, e.g. the rows of
the partition it processes). ``Client.submit`` has no ``annotations=``
keyword; annotations come from the :func:`dask.annotate` context::

    with dask.annotate(quorum_units=len(part)):
        fut = client.submit(gradient, part, params)

The same works around ``client.map``, ``client.compute`` and the creation of
``dask.array`` / ``dask.dataframe`` collections.

To record from the first task on, load the recorder into the scheduler
(:func:`dask_setup`)::

    dask scheduler --preload dask_quorum.pipeline.recorder

(``--preload dask_quorum.pipeline.recorder.plugin`` works as well.)
"""

from __future__ import annotations

import logging
import math
import sys
from collections import deque
from collections.abc import Callable, Mapping
from itertools import islice
from typing import TYPE_CHECKING, Any

import numpy as np
from dask.typing import Key
from dask.utils import key_split
from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.metrics import time

from dask_quorum import config

from .rows import FIELDS, check_since

if TYPE_CHECKING:
    from distributed import Scheduler

logger = logging.getLogger(__name__)

#: Name of the scheduler handler that serves the rows.
HANDLER = "quorum_latencies"
#: Task annotation holding the work units of a task.
UNITS_ANNOTATION = "quorum_units"
#: Configuration key of the ring buffer's capacity.
CAPACITY_KEY = "quorum.recorder.capacity"
#: Event topic under which workers send rows of work done outside Dask tasks
#: (``{"rows": [row, ...]}``, each row a sequence in the order of
#: :data:`~dask_quorum.pipeline.recorder.FIELDS`), e.g. the steps of ASAP's
#: long-running loops.
ROWS_TOPIC = "quorum-latency-rows"
#: Event topic under which fits log the workers they drop as lost or take in
#: (``{"action": "lost" | "joined", "worker", "reason", "round", "session"}``;
#: :func:`dask_quorum.pipeline.engine.membership.log_membership` sends them).
MEMBERSHIP_TOPIC = "quorum-membership"

_NAN = math.nan


def _check_capacity(capacity: Any) -> int:
    if (
        isinstance(capacity, bool)
        or not isinstance(capacity, int | np.integer)
        or capacity < 1
    ):
        raise ValueError(
            f"the latency recorder's capacity ({CAPACITY_KEY}) must be a positive "
            f"integer, got {capacity!r}"
        )
    return int(capacity)


def _as_units(value: Any, key: Key) -> float:
    """Annotation value as a float; NaN (and a debug message) when it is no number."""
    if isinstance(value, bool):
        units = _NAN
    else:
        try:
            units = float(value)
        except (TypeError, ValueError):
            units = _NAN
    if units != units:  # NaN
        logger.debug(
            "Task %r: annotation %s=%r is not a number; recorded as NaN",
            key,
            UNITS_ANNOTATION,
            value,
        )
    return units


class LatencyRecorder(SchedulerPlugin):
    """Scheduler plugin keeping one latency row per finished task.

    Attach it with :func:`~dask_quorum.pipeline.recorder.attach` (idempotent)
    or load it with ``dask scheduler --preload dask_quorum.pipeline.recorder``;
    read the rows with :func:`~dask_quorum.pipeline.recorder.latencies`. See
    :mod:`~dask_quorum.pipeline.recorder.rows` for the columns.

    Parameters
    ----------
    capacity : int, optional
        Rows kept; the oldest are dropped first. Default: the config value
        ``quorum.recorder.capacity`` (100_000) at construction time.

    Attributes
    ----------
    cursor : int
        Number of rows recorded so far: the sequence number the next row
        gets. Rows ``cursor - len(recorder) .. cursor - 1`` are kept.
    membership : collections.deque
        The last 1000 membership changes, ``(time, action, worker, reason)``:
        ``"add-worker"`` / ``"remove-worker"`` as the scheduler saw them, and
        ``"lost"`` / ``"joined"`` as a fit decided (a hung worker is lost to
        the fit long before the scheduler removes it). Served with the rows
        (``latencies(client).attrs["membership"]``).

    Raises
    ------
    ValueError
        On a capacity that is not a positive integer; the message names the
        config key.

    Notes
    -----
    Per transition the plugin does O(1) work: a timestamp in a dict when a
    task enters ``processing``; when it leaves, that timestamp is popped and,
    for ``-> memory`` and ``-> erred``, one tuple is appended to a
    ``deque(maxlen=capacity)``. The dict only holds tasks currently in
    ``processing``: any way out (memory, erred, released, forgotten, worker
    loss) removes the entry. Readers get columns through the scheduler
    handler ``"quorum_latencies"`` (see :meth:`collect`), registered in
    :meth:`start`. Measured on one core: about 3 us of scheduler time per task
    (two transitions) and 0.3 kB per row; a read of 100_000 rows holds the
    scheduler's event loop for roughly 0.1 s (columns plus serialization).
    """

    name = "quorum-latency-recorder"
    idempotent = True

    def __init__(self, capacity: int | None = None):
        if capacity is None:
            # Falls back to quorum.yaml if the global config was reset.
            capacity = config.get(CAPACITY_KEY.removeprefix("quorum."))
        self.capacity = _check_capacity(capacity)
        self.cursor = 0
        self._rows: deque[tuple] = deque(maxlen=self.capacity)
        # key -> scheduler time at which the task entered ``processing``
        self._entered: dict[Key, float] = {}
        self._scheduler: Scheduler | None = None
        # (scheduler time, action, worker, reason) of workers joining and
        # leaving the cluster, and of fits dropping or taking in workers.
        self.membership: deque[tuple[float, str, str, str]] = deque(maxlen=1000)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__}: {len(self._rows)} of {self.capacity} rows, "
            f"cursor {self.cursor}>"
        )

    def __len__(self) -> int:
        return len(self._rows)

    # -- lifecycle ---------------------------------------------------------

    def _bind(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        scheduler.handlers[HANDLER] = _make_handler(scheduler)

    async def start(self, scheduler: Scheduler) -> None:
        self._bind(scheduler)
        logger.info(
            "Latency recorder on scheduler %s (capacity %d rows)",
            scheduler.address,
            self.capacity,
        )

    def restart(self, scheduler: Scheduler) -> None:
        # Every task is gone; rows are history and stay.
        self._entered.clear()

    # -- recording (runs on the scheduler's event loop) ----------------------

    def transition(
        self, key: Key, start: str, finish: str, *args: Any, **kwargs: Any
    ) -> None:
        if finish == "processing":
            self._entered[key] = time()
        elif start == "processing":
            entered = self._entered.pop(key, None)
            if finish == "memory" or finish == "erred":
                self._record(key, entered, finish == "erred", kwargs)

    def _record(
        self, key: Key, entered: float | None, erred: bool, info: Mapping[str, Any]
    ) -> None:
        compute = transfer = 0.0
        begin = end = _NAN
        for startstop in info.get("startstops") or ():
            action = startstop["action"]
            if action == "compute":
                t0 = startstop["start"]
                t1 = startstop["stop"]
                compute += t1 - t0
                if not t0 >= begin:  # also true while begin is NaN
                    begin = t0
                if not t1 <= end:
                    end = t1
            elif action == "transfer":
                transfer += startstop["stop"] - startstop["start"]
        queue = _NAN if entered is None else begin - entered

        units = _NAN
        prefix = None
        if self._scheduler is not None:
            ts = self._scheduler.tasks.get(key)
            if ts is not None:
                prefix = ts.prefix.name  # key_split(key), shared by the prefix
                annotations = ts.annotations
                if annotations:
                    value = annotations.get(UNITS_ANNOTATION)
                    if value is not None:
                        units = _as_units(value, key)
        if prefix is None:
            prefix = key_split(key)
        worker = info.get("worker") or ""
        self._rows.append(
            (
                sys.intern(worker),
                str(key),
                prefix,
                queue,
                compute,
                transfer,
                units,
                begin,
                end,
                erred,
            )
        )
        self.cursor += 1

    def log_event(self, topic: str, msg: Any) -> None:
        # Workers the scheduler adds or removes (topic "all"), and workers a
        # fit drops as lost or takes in (MEMBERSHIP_TOPIC).
        if not isinstance(msg, Mapping):
            return
        action = msg.get("action")
        if topic == "all" and action in ("add-worker", "remove-worker"):
            self.membership.append((time(), action, str(msg.get("worker", "")), ""))
        elif topic == MEMBERSHIP_TOPIC:
            reason = f"{msg.get('reason', '')} (fit {msg.get('session', '')}, round {msg.get('round')})"
            self.membership.append((time(), str(action), str(msg.get("worker", "")), reason))
        elif topic == ROWS_TOPIC:
            self.add_rows(msg.get("rows") or ())

    def add_rows(self, rows: Any) -> int:
        """Record rows of work that ran outside Dask tasks; return how many were kept.

        Long-running loops (ASAP's steps) have no task transitions to record;
        their workers send rows with
        ``worker.log_event(ROWS_TOPIC, {"rows": rows})`` (batched, no round
        trip), and they join the task rows: same columns, same cursor.

        Parameters
        ----------
        rows : iterable of sequence
            Each ``(worker, key, prefix, queue, compute, transfer, units,
            start, stop, erred)`` as in
            :data:`~dask_quorum.pipeline.recorder.FIELDS`, times on the
            scheduler's clock. A malformed row is skipped (logged at debug
            level): a worker must not be able to break the recorder.
        """
        kept = 0
        for row in rows:
            try:
                worker, key, prefix = (str(v) for v in row[:3])
                numbers = tuple(float(v) for v in row[3:9])
                if len(row) != len(FIELDS):
                    raise ValueError(f"{len(row)} fields instead of {len(FIELDS)}")
                erred = bool(row[9])
            except (TypeError, ValueError, IndexError) as exc:
                logger.debug("Skipping a malformed latency row %r: %s", row, exc)
                continue
            self._rows.append((sys.intern(worker), key, prefix, *numbers, erred))
            self.cursor += 1
            kept += 1
        return kept

    # -- reading -------------------------------------------------------------

    def collect(self, since: int | None = None) -> dict[str, Any]:
        """Rows recorded at or after cursor ``since``, as columns.

        Parameters
        ----------
        since : int, optional
            Cursor from an earlier call (its ``"cursor"``); ``None`` or 0 for
            every row kept.

        Returns
        -------
        dict
            msgpack-friendly: ``"columns"`` maps each name of
            :data:`~dask_quorum.pipeline.recorder.FIELDS` to a list (str,
            float or bool); ``"first"`` is the sequence
            number of the first row returned, ``"cursor"`` the one to pass as
            ``since`` next time, ``"dropped"`` the number of rows after
            ``since`` that the ring buffer already overwrote, and
            ``"capacity"`` its size. A ``since`` beyond :attr:`cursor` (a
            cursor of an earlier scheduler) returns no rows.

        Raises
        ------
        ValueError
            On a ``since`` that is not None or a non-negative integer.
        """
        since = check_since(since)
        oldest = self.cursor - len(self._rows)
        first = min(max(since, oldest), self.cursor)
        rows = list(islice(self._rows, first - oldest, None))
        columns = {name: [row[i] for row in rows] for i, name in enumerate(FIELDS)}
        return {
            "status": "OK",
            "attached": True,
            "columns": columns,
            "first": first,
            "cursor": self.cursor,
            "dropped": max(0, oldest - since),
            "capacity": self.capacity,
            "membership": [list(event) for event in self.membership],
        }


def _make_handler(scheduler: Scheduler) -> Callable[..., dict[str, Any]]:
    """Scheduler handler serving the rows of the recorder currently attached.

    It looks the plugin up on every call, so it answers "not attached" once
    the plugin is unregistered, and serves a replacing plugin.
    """

    def quorum_latencies(since: int | None = None) -> dict[str, Any]:
        plugin = scheduler.plugins.get(LatencyRecorder.name)
        if not isinstance(plugin, LatencyRecorder):
            return {"status": "OK", "attached": False}
        return plugin.collect(since)

    return quorum_latencies


def dask_setup(scheduler: Scheduler) -> None:
    """Preload hook: attach a :class:`LatencyRecorder` to a starting scheduler.

    Called by ``dask scheduler --preload dask_quorum.pipeline.recorder``
    (or ``Scheduler(preload=[...])``) before the scheduler accepts tasks, so
    every task is recorded. The capacity comes from the scheduler process's
    ``quorum.recorder.capacity``. Does nothing if a recorder is attached
    already.

    Parameters
    ----------
    scheduler : distributed.Scheduler
        The scheduler being started.
    """
    if LatencyRecorder.name in scheduler.plugins:
        return
    plugin = LatencyRecorder()
    # ``start`` binds too, once the scheduler starts; binding now also covers
    # a scheduler that is already running.
    plugin._bind(scheduler)
    scheduler.add_plugin(plugin)
    logger.info("Latency recorder preloaded (capacity %d rows)", plugin.capacity)
