"""One worker's part of one ASAP run: its loop, in a thread of its own, and its messages.

Each fit is a *run* (one :class:`PeerRun` per worker, keyed by a token),
started and controlled through the worker plugin's handlers
(:mod:`~dask_quorum.pipeline.asap.worker`). Its loop runs in a thread of its
own (no Dask task is busy for the whole fit, and the straggler injector's
per-task wrapper does not apply): per round

1. publish this round's version to the out-peers (NOTIFY; a version whose
   peer has not ACKed the previous one waits in the outbox: see
   :mod:`~dask_quorum.pipeline.asap.protocol`), without waiting;
2. wait, with a deadline, until the protocol holds the versions it needs
   from the in-peers;
3. consume them, ACK, and let the *program* reduce and step;
4. apply the worker's injected slowdown to the step
   (:func:`~dask_quorum.pipeline.inject.slow_step`) and record a latency
   row (prefix ``quorum-asap-step``), sent to the scheduler's
   :class:`~dask_quorum.pipeline.recorder.LatencyRecorder` in batches.

A version goes to a peer as an RPC over the worker's own connection pool
(``worker.rpc(peer)``), never through the scheduler; the peer's reply to it
is the ACK.

The program
-----------
The program is the workload, built on the worker by the picklable
*builder* the driver ships, ``builder.build(index, data, in_peers)``. It
has ``message()`` (this round's version, an ndarray: its ``nbytes`` are
counted), ``step(own, received)`` (reduce the own version with the
in-peers' ones, ``{in-peer: version}``, and take the local step), a float
``units`` (the work of a step, for the latency rows), and for the history
``snapshot()``, ``value`` (a float) and ``residual()`` (the driver stops
once every worker's is at most ``tol``). The simplest program, gossip
averaging, is the tests' ``averaging`` module (``tests/averaging.py``).
Optionally, a program with a ``result()`` method gives the history's
``final`` entry from it instead of ``snapshot()`` (when the per-round
snapshots are kept small).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import traceback
from collections import deque
from collections.abc import Sequence
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

import numpy as np
from distributed.protocol import to_serialize

from ..inject import slow_step
from ..recorder import ROWS_TOPIC
from .protocol import NotifyAck, ProtocolError, Send

if TYPE_CHECKING:
    from distributed import Worker

logger = logging.getLogger(__name__)

__all__ = ["STEP_PREFIX", "PeerRun"]

#: Task prefix of the step rows in the latency recorder.
STEP_PREFIX = "quorum-asap-step"


class _Aborted(Exception):
    """The run was stopped from outside (driver, peer failure, teardown)."""


class PeerRun:
    """One worker's part of one ASAP fit.

    Parameters
    ----------
    worker : distributed.Worker
    token : str
        The fit's id.
    index : int
        This worker's position in the graph.
    addresses : sequence of str
        Addresses of all the fit's workers, by position.
    in_peers, out_peers : sequence of int
    staleness : int
        See :class:`~dask_quorum.pipeline.asap.NotifyAck`.
    builder : object
        ``builder.build(index, data, in_peers)`` makes the program.
    data : object
        This worker's data.
    timeout : float
        Longest wait for the in-peers' versions or for a lease extension.
    grace : float, default=2.0
        Under staleness, how long to wait for fresh versions before reusing
        stale ones, in multiples of the time they usually take to come (a
        peer later than that counts as slow).
    flush_interval : float
        Seconds between two batches of step rows sent to the scheduler.
    """

    def __init__(
        self,
        worker: Worker,
        token: str,
        index: int,
        addresses: Sequence[str],
        in_peers: Sequence[int],
        out_peers: Sequence[int],
        *,
        staleness: int,
        builder: Any,
        data: Any,
        timeout: float,
        flush_interval: float,
        grace: float = 2.0,
    ) -> None:
        self.worker = worker
        self.grace = float(grace)
        self.token = token
        self.index = index
        self.addresses = list(addresses)
        self.timeout = timeout
        self.flush_interval = flush_interval
        self.protocol = NotifyAck(index, in_peers, out_peers, staleness=staleness)
        self._builder, self._data = builder, data
        self._cond = threading.Condition()
        self.program: Any = None
        self.round = 0
        self.target = 0
        self.final = False
        self.ready = False
        self.done = False
        self.error: str | None = None
        self._stop: str | None = None
        # history, one entry per round
        self.snapshots: list[np.ndarray] = []
        self.values: list[float] = []
        self.residuals: list[float] = []
        self.finished: list[float] = []
        self.computes: list[float] = []
        self.waits: list[float] = []
        self.sent: dict[int, int] = {}
        self.received: dict[int, int] = {}
        self._rows: list[list] = []
        self._waiters: dict[tuple[int, int], asyncio.Future] = {}
        self._lags: deque[float] = deque(maxlen=20)
        self._flushed = perf_counter()
        self.thread = threading.Thread(target=self._main, name=f"quorum-asap-{token}-{index}", daemon=True)

    # -- control (event loop) -----------------------------------------------
    def status(self, report: int | None = None, snapshot: int = 0) -> dict[str, Any]:
        """Progress for the driver; with ``report``, also that finished round's numbers.

        ``report`` is a round this worker already finished (else it is left
        out): its end time and the previous round's, step and wait seconds,
        residual, ``[in-peer, rounds behind]`` of every stale version it
        reduced with, and its
        snapshot (flattened) when that has at most ``snapshot`` values. The
        driver asks for one round per dashboard report (:mod:`~dask_quorum.pipeline.asap.progress`).
        """
        with self._cond:
            out = {
                "index": self.index,
                "round": self.round,
                "ready": self.ready,
                "done": self.done,
                "error": self.error,
                "residual": self.residuals[-1] if self.residuals else math.inf,
            }
            if report is not None and 0 <= report < min(self.round, len(self.snapshots)):
                out["report"] = self._describe(int(report), int(snapshot))
            return out

    def _describe(self, t: int, snapshot: int) -> dict[str, Any]:
        """Round ``t``'s numbers for a dashboard report (lock held; O(degree x rounds since t))."""
        stale = []
        consumed = self.protocol.consumed
        for k in range(len(consumed) - 1, -1, -1):  # newest first; rounds in order
            r, peer, version = consumed[k]
            if r < t:
                break
            if r == t and version < t:
                stale.append([int(peer), int(t - version)])
        snap = self.snapshots[t]
        return {
            "round": t,
            "finished": self.finished[t],
            "before": self.finished[t - 1] if t else None,
            "compute": self.computes[t],
            "wait": self.waits[t],
            "residual": self.residuals[t],
            "stale": sorted(stale),
            "snapshot": np.ravel(snap).tolist() if 0 < np.size(snap) <= snapshot else None,
        }

    def extend(self, target: int, final: bool) -> None:
        """Allow rounds up to ``target`` (never less than before); ``final``: stop there."""
        with self._cond:
            self.target = max(self.target, int(target))
            self.final = self.final or bool(final)
            self._cond.notify_all()

    def abort(self, reason: str) -> None:
        with self._cond:
            if self._stop is None:
                self._stop = reason
            self._cond.notify_all()
        self._release_waiters(reason)

    def _fail(self, message: str) -> None:
        with self._cond:
            if self.error is None and not self.done:
                self.error = message
                logger.warning("ASAP run %s, worker %d: %s", self.token, self.index, message)
            if self._stop is None:
                self._stop = message
            self._cond.notify_all()
        self._release_waiters(message)

    # -- messages (event loop) -------------------------------------------------
    # A NOTIFY is an RPC whose reply is the ACK: the receiver's handler
    # answers only once the version was consumed. One request and one reply
    # per version and link, instead of two of each.
    def on_notify(self, sender: int, version: int, payload: Any) -> asyncio.Future:
        """Store a version; the returned future resolves (to the ACK) when it is consumed."""
        waiter = asyncio.get_running_loop().create_future()
        with self._cond:
            if self._stop is not None:
                waiter.set_result({"status": "gone", "message": f"run stopped: {self._stop}"})
                return waiter
            self.protocol.on_notify(sender, version, payload)
            self._waiters[sender, version] = waiter
            self._cond.notify_all()
        return waiter

    def _acknowledge(self, acks: list[Send]) -> None:
        """Reply to the NOTIFYs of the versions just consumed (loop thread -> event loop)."""
        with self._cond:
            waiters = [self._waiters.pop((a.peer, a.version), None) for a in acks]
        for waiter in waiters:
            if waiter is not None:
                self.worker.loop.add_callback(_resolve, waiter, {"status": "OK"})

    def _release_waiters(self, reason: str) -> None:
        with self._cond:
            waiters, self._waiters = list(self._waiters.values()), {}
        for waiter in waiters:
            self.worker.loop.add_callback(_resolve, waiter, {"status": "gone", "message": reason})

    def _deliver(self, sends: list[Send]) -> None:
        for send in sends:
            self.worker.loop.add_callback(self._transmit, send)

    async def _transmit(self, send: Send) -> None:
        address = self.addresses[send.peer]
        with self._cond:
            self.sent[send.version] = self.sent.get(send.version, 0) + int(send.payload.nbytes)
        try:
            call = self.worker.rpc(address).quorum_asap_notify(
                token=self.token, sender=self.index, version=send.version, payload=to_serialize(send.payload)
            )
            # the ACK comes once the peer reached this version: within its
            # own deadlines (peers, lease) unless it hangs
            reply = await asyncio.wait_for(call, 3 * self.timeout)
        except Exception as exc:  # the peer is gone, unreachable, or hangs
            if not (self.done or self._stop):
                self._fail(f"peer {send.peer} at {address} did not take version {send.version}: {exc!r}")
            return
        if self._stop:
            return
        # (a worker that finished its rounds still owes its out-peers the
        # versions queued behind their ACKs: keep releasing them)
        if not isinstance(reply, dict):  # no handler: the peer is closing
            self._fail(f"peer {send.peer} at {address} has no ASAP handler any more (it is closing)")
            return
        if reply.get("status") != "OK":
            self._fail(f"peer {send.peer} at {address} refused version {send.version}: {reply.get('message')}")
            return
        try:
            with self._cond:
                sends = self.protocol.on_ack(send.peer, send.version)
        except ProtocolError as exc:
            self._fail(str(exc))
            return
        self._deliver(sends)

    # -- the loop (own thread) -------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def _wait(self, ready: Any, what: Any, timeout: float | None = None, strict: bool = True) -> None:
        """Wait (lock held) until ``ready()``; raise on abort, and after the timeout when ``strict``."""
        timeout = self.timeout if timeout is None else timeout
        deadline = perf_counter() + timeout
        while not ready():
            if self._stop is not None:
                raise _Aborted(self._stop)
            left = deadline - perf_counter()
            if left <= 0:
                if not strict:
                    return
                raise TimeoutError(f"worker {self.index} waited more than {timeout:g} s for {what()}")
            self._cond.wait(left)
        if self._stop is not None:
            raise _Aborted(self._stop)

    def _main(self) -> None:
        try:
            self.program = self._builder.build(self.index, self._data, self.protocol.in_peers)
            self._data = None
            with self._cond:
                self.ready = True
            while self._one_round():
                pass
            with self._cond:
                self.done = True
        except _Aborted as exc:
            logger.debug("ASAP run %s, worker %d stopped: %s", self.token, self.index, exc)
        except Exception as exc:
            logger.debug("ASAP run %s, worker %d failed:\n%s", self.token, self.index, traceback.format_exc())
            self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            self._flush(force=True)
            if not self.done:  # nobody will collect a failed run: drop its data now
                with self._cond:
                    self.program = self._data = None
                    self.snapshots.clear()

    def _one_round(self) -> bool:
        t = self.round
        proto = self.protocol
        with self._cond:
            self._wait(
                lambda: t < self.target or self.final,
                lambda: f"the driver to allow round {t} (lease ends at {self.target})",
            )
            if t >= self.target:
                return False
        own = self.program.message()
        with self._cond:
            sends = proto.publish(t, own)
        self._deliver(sends)
        begin = perf_counter()
        with self._cond:
            if proto.staleness and self.computes:
                # Use a stale version only for a peer that is late: wait for
                # the fresh ones `grace` times as long as they usually take
                # (median of the recent rounds in which all came in time),
                # or as a step of this worker takes, whichever is longer.
                usual = max(np.median(self._lags) if self._lags else 0.0, np.median(self.computes[-10:]))
                self._wait(lambda: not proto.missing(t, fresh=True), lambda: "", timeout=self.grace * usual, strict=False)
                if not proto.missing(t, fresh=True):
                    self._lags.append(perf_counter() - begin)
            self._wait(
                lambda: not proto.missing(t),
                lambda: f"round {t} versions of peers {[self.addresses[j] for j in proto.missing(t)]}",
            )
            versions, acks = proto.consume(t)
            self.received[t] = sum(
                int(payload.nbytes) for j, (v, payload) in versions.items() if any(a.peer == j for a in acks)
            )
        self._acknowledge(acks)
        waited = perf_counter() - begin
        start = perf_counter()
        self.program.step(own, {j: payload for j, (v, payload) in versions.items()})
        natural = perf_counter() - start
        key = str((f"{STEP_PREFIX}-{self.token}", t, self.index))
        slow_step(self.worker, natural, key, float(self.program.units))
        stop = perf_counter()
        wall = time()
        with self._cond:
            self.snapshots.append(self.program.snapshot())
            self.values.append(float(self.program.value))
            self.residuals.append(self.program.residual())
            self.finished.append(wall)
            self.computes.append(stop - start)
            self.waits.append(waited)
            self.round = t + 1
        shift = wall - stop + self.worker.scheduler_delay
        self._rows.append(
            [self.worker.address, key, STEP_PREFIX, math.nan, stop - start, waited,
             float(self.program.units), start + shift, stop + shift, False]
        )
        self._flush()
        return True

    def _flush(self, force: bool = False) -> None:
        """Send the step rows to the scheduler's latency recorder (batched, no round trip)."""
        if not self._rows or not (force or perf_counter() - self._flushed >= self.flush_interval):
            return
        rows, self._rows = self._rows, []
        self._flushed = perf_counter()
        try:
            self.worker.log_event(ROWS_TOPIC, {"rows": rows})
        except Exception as exc:  # a closing worker: the rows are lost, the fit is not
            logger.debug("could not send %d step rows: %r", len(rows), exc)

    # -- the result -----------------------------------------------------------
    def history(self) -> dict[str, Any]:
        """Per-round arrays of this worker (rounds ``0 .. round - 1``)."""
        with self._cond:
            T = self.round
            return {
                "snapshots": np.array(self.snapshots[:T]),
                "values": np.array(self.values[:T]),
                "residuals": np.array(self.residuals[:T]),
                "finished": np.array(self.finished[:T]),
                "compute": np.array(self.computes[:T]),
                "wait": np.array(self.waits[:T]),
                "sent": np.array([self.sent.get(t, 0) for t in range(T)], dtype=np.int64),
                "received": np.array([self.received.get(t, 0) for t in range(T)], dtype=np.int64),
                "consumed": np.array(self.protocol.consumed, dtype=np.int64).reshape(-1, 3),
                "final": _final(self.program),
            }


def _final(program: Any) -> Any:
    """The program's last state for the history: ``result()`` if it has one, else ``snapshot()``."""
    if program is None:
        return None
    return program.result() if hasattr(program, "result") else program.snapshot()


def _resolve(waiter: asyncio.Future, reply: dict[str, Any]) -> None:
    if not waiter.done():
        waiter.set_result(reply)
