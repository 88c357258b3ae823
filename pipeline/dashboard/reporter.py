"""Client side of the fit board: report a running fit to the scheduler.

A :class:`FitReporter` sends a fit's coded assignment and a summary of each
round to the :class:`~dask_quorum.pipeline.dashboard.FitBoard` on the
scheduler, where the dashboard page ``/individual-stragglers`` shows them.
A :class:`~dask_quorum.pipeline.engine.CodedSession` reports every round;
:func:`~dask_quorum.pipeline.asap.run_asap` reports an ASAP run's
identity assignment and a few rounds per page refresh with
:meth:`FitReporter.summary` (``error_kind="consensus"`` or ``"residual"``).

Reporting never holds a round up: :meth:`FitReporter.assignment` and
:meth:`FitReporter.round` only put a small message in a bounded queue and
return; the client's event loop sends queued messages in order, in batches,
one batch at a time, each within ``quorum.dashboard.send-timeout``. When the
scheduler is slower than the fit, the oldest round summaries are dropped
(``quorum.dashboard.queue`` are kept); the latest assignment is always kept.
When the scheduler has no board the reporter logs one line and stays quiet,
looking again every ``quorum.dashboard.probe-interval``.

Examples
--------
>>> reporter = FitReporter(client, token=session.token, label="LogisticRegression")  # doctest: +SKIP
>>> reporter.assignment(session.workers, session.code.B, session.code.scheme)  # doctest: +SKIP
>>> total = session.round(fn, params)  # doctest: +SKIP
>>> reporter.round(session.records[-1])  # doctest: +SKIP
>>> reporter.close()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dask_quorum import config

from .messages import ERROR_KINDS, HANDLER, MARKER, MAX_BATCH, MAX_WORKERS, check_text

if TYPE_CHECKING:
    from distributed import Client

    from ..engine import RoundRecord

__all__ = ["FitReporter"]

logger = logging.getLogger(__name__)


class FitReporter:
    """Fire-and-forget reports of one fit to the scheduler's fit board.

    Parameters
    ----------
    client : distributed.Client
        Synchronous or asynchronous client of the fit.
    token : str, optional
        Key of the fit on the board; default a new random token. Use the
        session's round-task token (``CodedSession.token``) to tie the
        reports to the latency recorder's rows.
    label : str, optional
        A name to show for the fit (e.g. the estimator and scheme).

    Attributes
    ----------
    sent : int
        Updates the board accepted.
    dropped : int
        Round summaries dropped because the queue was full, a send failed
        or the board was missing.
    enabled : bool
        False while the scheduler has no board (then round summaries are
        dropped, but the latest assignment is kept for when one appears).

    Raises
    ------
    ValueError
        On a token or label that is not a string of 1 to 256 characters,
        or a ``quorum.dashboard.queue`` outside [1, 4094].

    Notes
    -----
    The driver thread's cost per call is a dict and a ``deque.append``
    under a lock; the send runs on the client's event loop. Messages are
    bounded: an assignment of more than ``quorum.dashboard.max-cells``
    cells is sent by its shape only, a batch carries at most
    ``quorum.dashboard.queue`` round summaries (each O(workers)).
    """

    def __init__(self, client: Client, *, token: str | None = None, label: str | None = None) -> None:
        self.client = client
        self.token = check_text(token if token is not None else uuid.uuid4().hex[:12], "token")
        if not self.token:
            raise ValueError("token must not be empty")
        self.label = None if label is None else check_text(label, "label")
        self.max_cells = int(config.get("dashboard.max-cells"))
        self.timeout = config.get_timeout("dashboard.send-timeout")
        self.probe_interval = config.get_timeout("dashboard.probe-interval")
        queue = config.get("dashboard.queue")
        if isinstance(queue, bool) or not isinstance(queue, int) or not 1 <= queue <= MAX_BATCH - 2:
            raise ValueError(f"quorum.dashboard.queue must be an integer in [1, {MAX_BATCH - 2}], got {queue!r}")
        self.sent = 0
        self.dropped = 0
        self._rounds: deque[dict[str, Any]] = deque(maxlen=queue)
        self._assignment: dict[str, Any] | None = None
        self._rows: dict[str, int] = {}  # address -> row of the last reported assignment
        self._close = False
        self._lock = threading.Lock()
        self._draining = False
        self._idle = threading.Event()
        self._idle.set()
        # None until the first probe, then whether the scheduler has a board.
        self._board: bool | None = None
        self._probed_at = -math.inf
        self._told = False

    @property
    def enabled(self) -> bool:
        """False once the reporter found no board on the scheduler (it keeps looking)."""
        return self._board is not False

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "no board"
        return f"<{type(self).__name__} {self.token!r}: {state}, {self.sent} sent, {self.dropped} dropped>"

    # -- what a fit reports --------------------------------------------------

    def assignment(self, workers: Sequence[str], B: Any, scheme: str) -> None:
        """Report the current coded assignment (call again after a re-encoding).

        Parameters
        ----------
        workers : sequence of str
            Worker addresses, one per row of ``B`` (the session's workers).
        B : array-like
            The code's ``(n_workers, n_partitions)`` encoding matrix.
        scheme : str
            Its scheme.

        Raises
        ------
        ValueError
            If ``B`` is not a finite 2-D matrix with one row per worker.
        """
        workers = [check_text(str(w), "a worker address") for w in workers]
        matrix = np.asarray(B, dtype=float)
        if matrix.ndim != 2 or matrix.shape[0] != len(workers) or not 1 <= len(workers) <= MAX_WORKERS:
            raise ValueError(
                f"B must be 2-D with one row per worker ({len(workers)}, at most {MAX_WORKERS}), "
                f"got shape {matrix.shape}"
            )
        if matrix.shape[1] < 1 or not np.isfinite(matrix).all():
            raise ValueError("B must have at least one partition and finite entries")
        message: dict[str, Any] = {"kind": "assignment", "workers": workers, "scheme": check_text(scheme, "scheme")}
        if matrix.size <= self.max_cells:
            message["B"] = matrix.tolist()
        else:
            message["B"] = None
            message["shape"] = list(matrix.shape)
        with self._lock:
            self._assignment = message
            self._rows = {w: i for i, w in enumerate(workers)}
        self._kick()

    def round(self, record: RoundRecord, workers: Sequence[str] | None = None) -> None:
        """Report one finished coded round (a :class:`~dask_quorum.pipeline.engine.RoundRecord`).

        Parameters
        ----------
        record : RoundRecord
        workers : sequence of str, optional
            The addresses the record's worker indices refer to, when they
            are not the rows of the last reported assignment (a session whose
            membership changed numbers workers in ``session.all_workers``).
            Indices are then mapped onto the assignment's workers by address;
            workers outside it are left out.
        """
        responders, busy = record.responders, record.busy
        if workers is not None:
            workers = list(workers)
            with self._lock:
                rows = dict(self._rows)
            responders = [rows[workers[i]] for i in responders if workers[i] in rows]
            busy = [rows[workers[i]] for i in busy if workers[i] in rows]
        self.summary(
            index=record.index,
            wall_time=record.wall_time,
            responders=responders,
            busy=busy,
            error=record.decode_error,
            error_kind="decoding",
            stop=record.stop,
            scheme=record.scheme,
        )

    def summary(
        self,
        *,
        index: int,
        wall_time: float,
        responders: Sequence[int],
        busy: Sequence[int] = (),
        error: float = math.nan,
        error_kind: str = "decoding",
        stop: str = "",
        scheme: str = "",
    ) -> None:
        """Report one round of any kind of fit (ASAP: ``error_kind="consensus"``).

        Parameters
        ----------
        index : int
            Round number, from 0.
        wall_time : float
            Seconds the round took.
        responders : sequence of int
            Indices (into the reported workers) of the workers whose results
            the round used; the others count as stragglers.
        busy : sequence of int, optional
            Workers still busy with an older round when it started.
        error : float, optional
            Decoding error (coded rounds), consensus error (ASAP) or the
            residual (an ASAP workload without replicas).
        error_kind : {"decoding", "consensus", "residual"}
        stop : str, optional
            Why the round stopped.
        scheme : str, optional
            The scheme it ran with.

        Raises
        ------
        ValueError
            On a negative index or wall time, an error that is neither NaN
            nor finite and >= 0, an unknown ``error_kind`` or more indices
            than workers.
        """
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or index < 0:
            raise ValueError(f"index must be a non-negative integer, got {index!r}")
        if not (wall_time >= 0 and math.isfinite(wall_time)):
            raise ValueError(f"wall_time must be a finite number >= 0, got {wall_time!r}")
        if error_kind not in ERROR_KINDS:
            raise ValueError(f"error_kind must be one of {ERROR_KINDS}, got {error_kind!r}")
        if not (math.isnan(error) or (math.isfinite(error) and error >= 0)):
            raise ValueError(f"error must be NaN (unknown) or a finite number >= 0, got {error!r}")
        responders = [int(i) for i in responders]
        busy = [int(i) for i in busy]
        if max(len(responders), len(busy)) > MAX_WORKERS:
            raise ValueError(f"at most {MAX_WORKERS} responders and busy workers per round")
        message = {
            "kind": "round",
            "index": int(index),
            "time": time.time(),
            "wall_time": float(wall_time),
            "responders": responders,
            "busy": busy,
            "error": float(error),
            "error_kind": error_kind,
            "stop": check_text(stop, "stop"),
            "scheme": check_text(scheme, "scheme"),
        }
        with self._lock:
            if len(self._rounds) == self._rounds.maxlen:
                self.dropped += 1
            self._rounds.append(message)
        self._kick()

    def close(self, timeout: float | None = None) -> bool:
        """Mark the fit finished and send what is queued, waiting at most ``timeout`` s.

        Parameters
        ----------
        timeout : float, optional
            Longest wait for the queue to drain; default
            ``quorum.dashboard.send-timeout``. 0 returns at once. An
            asynchronous client never waits here (its loop does the sending).

        Returns
        -------
        bool
            As :meth:`flush`: whether no send is under way any more.
        """
        with self._lock:
            self._close = True
        self._kick()
        return self.flush(timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (default ``send-timeout``) until no send is under way.

        Returns True when the queue was sent, or dropped because the board is
        missing or unreachable (the latest assignment and a close are then
        kept for the next attempt).
        """
        if self.client.asynchronous or self._on_loop():
            return self._idle.is_set()
        return self._idle.wait(self.timeout if timeout is None else max(0.0, float(timeout)))

    # -- sending (on the client's event loop) ----------------------------------

    def _on_loop(self) -> bool:
        loop = getattr(self.client.loop, "asyncio_loop", None)
        try:
            return loop is not None and asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def _kick(self) -> None:
        with self._lock:
            if self._draining:
                return
            self._draining = True
            self._idle.clear()
        try:
            self.client.loop.add_callback(self._drain)
        except (AttributeError, RuntimeError):  # the client's loop is gone or closed
            self._settle()

    def _settle(self) -> None:
        with self._lock:
            self._draining = False
            self._idle.set()

    def _take(self) -> list[dict[str, Any]]:
        """The queued messages, in order; ends the drain (atomically) when there are none."""
        with self._lock:
            batch = []
            if self._assignment is not None:
                batch.append(self._assignment)
                self._assignment = None
            batch.extend(self._rounds)
            self._rounds.clear()
            if self._close:
                batch.append({"kind": "close"})
                self._close = False
            if not batch:
                self._draining = False
                self._idle.set()
            return batch

    def _discard(self, batch: list[dict[str, Any]]) -> None:
        """Drop an undelivered batch, keeping its assignment (if none newer) and close for later."""
        with self._lock:
            for message in batch:
                if message["kind"] == "assignment":
                    if self._assignment is None:
                        self._assignment = message
                elif message["kind"] == "round":
                    self.dropped += 1
                else:
                    self._close = True
            self._draining = False
            self._idle.set()

    def _note(self, message: str, *args: Any) -> None:
        """Log the first problem at INFO, later ones at DEBUG: reporting stays quiet."""
        logger.log(logging.DEBUG if self._told else logging.INFO, message, *args)
        self._told = True

    async def _has_board(self) -> bool:
        if self._board:
            return True
        now = time.monotonic()
        if self._board is False and now - self._probed_at < self.probe_interval:
            return False
        self._probed_at = now
        self._board = bool(
            await asyncio.wait_for(
                self.client.scheduler.get_metadata(keys=list(MARKER), default=None), self.timeout
            )
        )
        if not self._board:
            self._note(
                "No fit board on the scheduler: fit %r is not shown on the dashboard "
                "(dask_quorum.pipeline.dashboard.register(client) installs one)",
                self.token,
            )
        return self._board

    async def _drain(self) -> None:
        while batch := self._take():
            try:
                if not await self._has_board():
                    self._discard(batch)
                    return
                reply = await asyncio.wait_for(
                    getattr(self.client.scheduler, HANDLER)(
                        token=self.token, updates=batch, label=self.label
                    ),
                    self.timeout,
                )
            except Exception as exc:
                self._discard(batch)
                self._note("Fit %r: could not report to the scheduler: %r", self.token, exc)
                return
            if not reply or not reply.get("attached"):
                self._board, self._probed_at = False, time.monotonic()
                self._discard(batch)
                self._note("Fit %r: the scheduler's fit board is gone", self.token)
                return
            self.sent += int(reply.get("accepted", 0))
