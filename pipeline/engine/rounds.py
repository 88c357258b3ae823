"""One coded round: submit, take the first sufficient subset, decode.

:class:`RoundRunner` runs the rounds of a session on placed data. A round
ships the parameters once (:func:`~dask_quorum.pipeline.engine.task.ship_params`),
submits one coded task per idle worker
(:func:`~dask_quorum.pipeline.engine.coded_partial`, ``pure=False``, pinned
to the worker that holds the task's replicas) and consumes results in the
order they finish, until they suffice
(:class:`~dask_quorum.pipeline.engine.answers.Answers`: exact, within
``decode_tol``, ``code.min_responders`` answers) or the soft ``deadline``
passed with at least one answer.

A worker that is still computing an earlier round when a round starts is
not given a second task to queue behind the first (cancelling a running
Dask task does not stop its thread). The round counts it as busy and
submits to it only once its old task finishes, so a straggler still at
round ``t`` never holds up round ``t + 1`` on the other workers. Every wait
has a deadline: a round that cannot finish within ``timeout`` seconds raises
:class:`~dask_quorum.pipeline.engine.RoundTimeoutError` naming the workers
it was waiting on.

Failures. A worker whose process dies takes its replicas with it: its
futures are cancelled and the scheduler forgets it. The runner then checks
the scheduler (one call, only on such an anomaly, and every
``check_interval`` seconds while a round waits) and records the worker in
:attr:`RoundRunner.lost` instead of raising; the round goes on when the
remaining workers can still decode, and raises
:class:`~dask_quorum.pipeline.engine.WorkersLostError` when they cannot
(the session re-plans and runs the round again). A worker the round waits
on that has not heartbeated for ``heartbeat_timeout`` seconds is lost too,
once it answered a round before (a worker's first task loads the engine's
modules, which holds its event loop and heartbeats for seconds).
A task that fails on a live worker raises its own error; a client that lost
its scheduler raises
:class:`~dask_quorum.pipeline.engine.SchedulerLostError`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import queue
import uuid
from asyncio import CancelledError
from collections.abc import Callable
from time import perf_counter
from typing import Any

import dask
import distributed
import numpy as np
from distributed import Client, Future
from distributed.scheduler import KilledWorker

from ..coding import GradientCode
from .answers import Answers, can_finish
from .errors import RoundTimeoutError, WorkersLostError
from .membership import SchedulerView, check_client, heartbeat_lag, scheduler_view
from .placement import Placement
from .record import RoundRecord
from .task import coded_partial, round_key, ship_params

logger = logging.getLogger(__name__)


class RoundRunner:
    """Runs coded rounds on placed data.

    Parameters
    ----------
    client : distributed.Client
    code : GradientCode
    placement : Placement
        The replicas, placed according to ``code.B``.
    timeout : float
        Hard limit of one round, in seconds.
    decode_tol : float, default=0.0
        Stop as soon as the responders decode with at most this error.
    deadline : float or None, default=None
        Soft limit in seconds: once passed, the round stops with whatever
        answers it has (at least one), decoding approximately.
    inline_limit : int, default=65536
        Parameters up to this many bytes travel inside the task messages;
        larger ones are scattered to every worker once per round.
    check_interval : float, default=1.0
        While a round waits, seconds between checks that the workers it
        waits on are still in the cluster and heartbeating.
    heartbeat_timeout : float, default=inf
        A worker the round waits on whose last heartbeat is older than this
        is lost.
    scheduler_id : str, optional
        Id of the scheduler the data was placed through; a different id
        means the scheduler restarted (:class:`~dask_quorum.pipeline.engine.SchedulerLostError`).

    Attributes
    ----------
    lost : dict of str to str
        Workers found gone, with the reason; they get no more tasks. The
        session takes them with :meth:`take_lost` and re-plans.
    """

    def __init__(
        self,
        client: Client,
        code: GradientCode,
        placement: Placement,
        *,
        timeout: float,
        decode_tol: float = 0.0,
        deadline: float | None = None,
        inline_limit: int = 65536,
        check_interval: float = 1.0,
        heartbeat_timeout: float = math.inf,
        scheduler_id: str | None = None,
    ) -> None:
        self.client = client
        self.inline_limit = int(inline_limit)
        self.code = code
        self.placement = placement
        self.timeout = float(timeout)
        self.decode_tol = float(decode_tol)
        self.deadline = math.inf if deadline is None else float(deadline)
        self.check_interval = float(check_interval)
        self.heartbeat_timeout = float(heartbeat_timeout)
        self.scheduler_id = scheduler_id
        self.token = uuid.uuid4().hex[:12]
        self.lost: dict[str, str] = {}
        # Workers that delivered a result: they have loaded everything a task
        # needs. Loading blocks a worker's event loop (heartbeats included), so
        # silence is held against a worker only once it is warm.
        self.warm: set[str] = set()
        self._round = 0
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        # worker address -> its unfinished round task (at most one per worker)
        self._inflight: dict[str, Future] = {}
        # When each worker's latest task was submitted, and its work units.
        self._started: dict[str, tuple[float, float]] = {}
        # worker address -> (future, background fetch) of its current-round result
        self._fetching: dict[str, tuple[Future, Any]] = {}
        self._abandoned: dict[Any, Future] = {}
        self._closed = False

    # -- membership -----------------------------------------------------
    def rebind(self, code: GradientCode, placement: Placement) -> None:
        """Run the next rounds with ``code`` on ``placement`` (possibly other workers).

        Tasks still running on workers that stay are kept (they finish as
        stale results); those of workers no longer in the code are dropped.
        """
        self.code = code
        self.placement = placement
        members = set(placement.workers)
        for address in [a for a in self._inflight if a not in members]:
            self._inflight.pop(address).release()
        self.lost = {a: r for a, r in self.lost.items() if a in members}

    def take_lost(self) -> dict[str, str]:
        """The workers found lost since the last call, with the reason."""
        lost, self.lost = self.lost, {}
        return lost

    def _present(self, address: str, t: int, hard: float) -> bool:
        """Whether the scheduler still has ``address`` (raises if the scheduler changed)."""
        return address in self._view(t, hard).workers

    def _view(self, t: int, hard: float) -> SchedulerView:
        return scheduler_view(
            self.client, max(0.5, hard - perf_counter()), f"round {t}", expect_id=self.scheduler_id
        )

    def _mark_lost(self, address: str, reason: str) -> None:
        if address not in self.lost:
            logger.warning("worker %s is lost: %s", address, reason)
            self.lost[address] = reason
        fut = self._inflight.pop(address, None)
        if fut is not None:
            fut.release()

    def _check_feasible(self, t: int) -> None:
        """Raise WorkersLostError when the workers not lost cannot finish the round."""
        if not self.lost:
            return
        workers = self.placement.workers
        alive = [i for i, a in enumerate(workers) if a not in self.lost]
        if can_finish(self.code, alive, math.isfinite(self.deadline)):
            return
        lost = sorted(a for a in workers if a in self.lost)
        raise WorkersLostError(
            f"round {t} cannot finish: worker(s) {lost} are lost "
            f"({'; '.join(f'{a}: {self.lost[a]}' for a in lost)}) and the other "
            f"{len(alive)} of {len(workers)} workers cannot decode the {self.code.scheme} code",
            lost=lost,
        )

    def _classify(self, address: str, fut: Future, t: int, hard: float) -> None:
        """A round task that did not finish: mark its worker lost, or raise."""
        status = fut.status
        if status == "error":
            exc = fut.exception(timeout=max(0.0, hard - perf_counter()))
            if isinstance(exc, KilledWorker) or not self._present(address, t, hard):
                self._mark_lost(address, f"its task failed with {type(exc).__name__}")
                return
            raise exc
        check_client(self.client, f"round {t}")
        if self._present(address, t, hard):
            raise RuntimeError(
                f"round {t}: the task on worker {address} ended as {status!r} while the worker "
                "is still in the cluster (was it cancelled by another call on this client?)"
            )
        self._mark_lost(address, "left the cluster")

    def _check_waiting(self, t: int, hard: float, waited: float) -> None:
        """While a round waits: drop workers it waits on that left or stopped heartbeating."""
        waiting = [a for a in self.placement.workers if a in self._inflight]
        if not waiting:
            return
        view = self._view(t, hard)
        for address in waiting:
            if address not in view.workers:
                self._mark_lost(address, "left the cluster")
            elif waited >= self.heartbeat_timeout and address in self.warm:
                lag = heartbeat_lag(address, view)
                if lag is not None and lag >= self.heartbeat_timeout:
                    self._mark_lost(address, f"no heartbeat for {lag:.1f} s")

    # -- submission -----------------------------------------------------
    def _submit(self, t: int, i: int, fn: Callable, params: Any) -> None:
        address = self.placement.workers[i]
        cols = self.placement.columns[i]
        # The latency recorder normalises compute time by these work units.
        units = self.placement.units(i)
        with dask.annotate(quorum_units=units):
            fut = self.client.submit(
                coded_partial,
                fn,
                params,
                self.code.B[i, cols].tolist(),
                *self.placement.futures(i),
                key=round_key(self.token, t, i),
                workers=[address],
                allow_other_workers=False,
                pure=False,
            )
        self._inflight[address] = fut
        self._started[address] = (perf_counter(), units)
        fut.add_done_callback(functools.partial(self._on_done, t, address))

    def _on_done(self, t: int, address: str, fut: Future) -> None:
        # Runs in distributed's callback thread: only hand over.
        self._done.put(("done", t, address, fut))

    def _start_fetch(self, t: int, i: int, address: str, fut: Future) -> None:
        """Fetch a finished result in the background; it arrives as a ``"value"`` message.

        One scheduler ``gather`` call per result, outside the client's
        batching of concurrent gathers, so that a result stuck on a worker
        that stopped answering after it finished holds up nothing but itself.
        """
        key = fut.key

        async def gather_one() -> Any:
            response = await self.client.scheduler.gather(keys=[key])
            if response["status"] != "OK":
                raise LookupError(f"the result {key} is no longer on worker {address}")
            return response["data"][key]

        try:
            cf = asyncio.run_coroutine_threadsafe(gather_one(), self.client.loop.asyncio_loop)
        except RuntimeError:  # the client's event loop is gone
            check_client(self.client, f"round {t}")
            raise
        self._fetching[address] = (fut, cf)
        cf.add_done_callback(lambda cf: self._done.put(("value", t, i, address, fut, cf)))

    def _stop_fetches(self) -> None:
        """Leave the fetches still running (results the round did not need) to finish alone.

        Their futures are released when they end (a fetch from a worker that
        stopped answering may never end; :meth:`close` drops it).
        """
        for fut, cf in self._fetching.values():
            self._abandoned[cf] = fut
        self._fetching = {}

    def _drop_abandoned(self, cf: Any) -> None:
        fut = self._abandoned.pop(cf, None)
        if fut is not None:
            fut.release()

    def _fetched(self, t: int, address: str, fut: Future, cf: Any, hard: float) -> tuple[bool, Any]:
        """``(True, value)`` of a completed fetch, or ``(False, None)`` when its worker is lost."""
        try:
            return True, cf.result()
        except (Exception, CancelledError) as exc:
            check_client(self.client, f"round {t}")
            if fut.status == "finished" and self._present(address, t, hard):
                raise exc
            self._mark_lost(address, "its result was lost with it")
            return False, None

    def _retire(self, address: str, fut: Future) -> bool:
        """Stop tracking ``fut``; False if it was no longer tracked (a dropped worker)."""
        if self._inflight.get(address) is fut:
            del self._inflight[address]
            return True
        return False

    # -- one round ------------------------------------------------------
    def run(self, fn: Callable[[Any, Any], np.ndarray], params: Any) -> tuple[np.ndarray, RoundRecord]:
        """Run one round of ``fn`` over every partition and decode the sum.

        Parameters
        ----------
        fn : callable
            ``fn(params, partition) -> 1-D ndarray``; picklable (a module
            level function or an instance of a module level class).
        params : object
            Sent once to the workers and passed to every call of ``fn``.

        Returns
        -------
        total : ndarray
            The decoded ``sum_j fn(params, partition_j)`` (exact when
            ``record.decode_error`` is 0).
        record : RoundRecord

        Raises
        ------
        RoundTimeoutError
            No sufficient set of results within ``timeout``.
        WorkersLostError
            Workers were lost and the others cannot decode.
        SchedulerLostError
            The client is not connected to (the same) scheduler.
        """
        if self._closed:
            raise RuntimeError("this RoundRunner is closed")
        check_client(self.client, f"round {self._round}")
        t = self._round
        self._round += 1
        start = perf_counter()
        hard = start + self.timeout
        soft = start + self.deadline
        workers = self.placement.workers
        row = {address: i for i, address in enumerate(workers)}

        self._collect_finished(t, hard)
        for address in self.placement.broken():
            if address not in self.lost and not self._present(address, t, hard):
                self._mark_lost(address, "left the cluster with its data")
        busy = tuple(sorted(row[a] for a in self._inflight if a in row))
        self._check_feasible(t)
        idle = [i for i, a in enumerate(workers) if a not in self._inflight and a not in self.lost]
        targets = [workers[i] for i in idle]
        params_future = ship_params(
            self.client, params, targets, inline_limit=self.inline_limit, timeout=self.timeout, hard=hard
        )
        try:
            submitted = set(idle)
            for i in idle:
                self._submit(t, i, fn, params_future)

            answers = Answers(self.code, self.placement.columns, self.decode_tol)
            stop = None
            next_check = start + self.check_interval
            while stop is None:
                now = perf_counter()
                until = min(hard, soft) if answers.responders else hard
                try:
                    msg = self._done.get(timeout=max(0.0, min(until, next_check) - now))
                except queue.Empty:
                    now = perf_counter()
                    if now >= hard:
                        waiting = sorted(a for a in workers if a in self._inflight or a in self._fetching)
                        raise RoundTimeoutError(
                            f"round {t} found no sufficient set of results within "
                            f"{self.timeout:g} s; {len(answers.responders)} of {self.code.n_workers} "
                            f"workers answered, still waiting on {waiting}"
                        ) from None
                    if answers.responders and now >= soft:
                        stop = answers.at_deadline()
                        break
                    self._check_waiting(t, hard, now - start)
                    self._check_feasible(t)
                    next_check = perf_counter() + self.check_interval
                    continue
                # One message at a time: when handling it raises (the workers left
                # cannot decode), the others stay queued for the next round, which
                # retires their tasks; a message taken and dropped would leave its
                # worker busy forever.
                if msg[0] == "value":
                    answer = self._take_value(t, msg, hard)
                    if answer is not None:
                        stop = answers.take(*answer)
                    continue
                # An older round's straggler that is free again gets this round.
                free = self._task_ended(t, msg, row, hard)
                if free is not None and free not in submitted and workers[free] not in self.lost:
                    self._submit(t, free, fn, params_future)
                    submitted.add(free)
        finally:
            # also when the round raises: no fetch or scattered parameters outlive it
            self._stop_fetches()
            if isinstance(params_future, Future):
                params_future.release()
        total = answers.decode()
        finished = perf_counter()
        pending = tuple(
            (row[a], finished - self._started[a][0], self._started[a][1])
            for a in sorted(self._inflight)
            if a in row and a in self._started
        )
        record = RoundRecord(
            index=t,
            wall_time=finished - start,
            finished=finished,
            responders=tuple(answers.responders),
            busy=busy,
            decode_error=float(answers.error),
            last_responder=answers.responders[-1],
            stop=stop,
            scheme=self.code.scheme,
            task_round=t,
            pending=pending,
        )
        return total, record

    def _take_value(self, t: int, msg: tuple, hard: float) -> tuple[int, Any] | None:
        """A fetched result of round ``t`` as ``(worker index, value)``; None when there is none to use.

        A result no longer awaited (its round stopped without it) is
        dropped; one lost with its worker marks the worker lost.
        """
        _, rt, i, address, fut, cf = msg
        if self._fetching.get(address, (None, None))[1] is not cf:
            self._drop_abandoned(cf)  # a result its round did not need
            return None
        del self._fetching[address]
        ok, value = self._fetched(t, address, fut, cf, hard)
        fut.release()
        if not ok:
            self._check_feasible(t)
            return None
        return i, value

    def _task_ended(self, t: int, msg: tuple, row: dict[str, int], hard: float) -> int | None:
        """Handle a round task that ended; the index of its worker if it is free for round ``t``.

        A task of round ``t`` that finished has its result fetched; one
        that did not finish marks its worker lost (or raises). A finished
        task of an earlier round frees its worker: its index is returned.
        """
        _, rt, address, fut = msg
        if not self._retire(address, fut):
            fut.release()  # a worker dropped since: nothing to use
            return None
        if fut.status != "finished":
            self._classify(address, fut, t, hard)
            fut.release()
            self._check_feasible(t)
            return None
        self.warm.add(address)
        i = row.get(address)
        if rt == t and i is not None:
            self._start_fetch(t, i, address, fut)
            return None
        fut.release()
        return i

    def _collect_finished(self, t: int, hard: float) -> None:
        """Retire tasks of earlier rounds that ended; classify those that did not finish."""
        while True:
            try:
                msg = self._done.get_nowait()
            except queue.Empty:
                break
            if msg[0] != "done":
                self._drop_abandoned(msg[-1])  # a result its round did not need
                continue
            _, _, address, fut = msg
            if self._retire(address, fut):
                if fut.status != "finished":
                    self._classify(address, fut, t, hard)
                else:
                    self.warm.add(address)
            fut.release()

    def busy_workers(self, wait: float = 0.0) -> list[str]:
        """Workers still running a round task, after waiting up to ``wait`` seconds for those to end."""
        until = perf_counter() + wait
        for fut in [fut for fut in self._inflight.values() if not fut.done()]:
            try:  # returns when the task ends, whatever its outcome (which the next round handles)
                fut.exception(timeout=max(0.0, until - perf_counter()))
            except (distributed.TimeoutError, CancelledError):
                break
        return sorted(a for a, fut in self._inflight.items() if not fut.done())

    def close(self) -> None:
        """Cancel what is still running and drop every reference."""
        self._closed = True
        self._stop_fetches()
        abandoned, self._abandoned = self._abandoned, {}
        for cf, fut in abandoned.items():
            cf.cancel()
            fut.release()
        futures = list(self._inflight.values())
        self._inflight.clear()
        if futures:
            if self.client.status == "running":
                try:
                    self.client.sync(self.client._cancel, futures, callback_timeout=self.check_interval + 5)
                except (OSError, TimeoutError) as exc:
                    logger.debug("could not cancel %d round tasks: %s", len(futures), exc)
            for f in futures:
                f.release()
        while True:
            try:
                self._done.get_nowait()
            except queue.Empty:
                break
