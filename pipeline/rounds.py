"""One coded round: submit, take the first sufficient subset, decode.

A round ships the parameters once, submits one coded task per idle worker
(``pure=False``, pinned to the worker that holds the task's replicas) and
consumes results in the order they finish. It stops at the first of:

* the responders decode exactly;
* the decoding error of the responders is at most ``decode_tol``;
* ``code.min_responders`` workers answered (approximate codes decode the
  best estimate those answers allow);
* the soft ``deadline`` passed with at least one answer.

A worker that is still computing an earlier round when a round starts is
not given a second task to queue behind the first (cancelling a running
Dask task does not stop its thread). The round counts it as busy and
submits to it only once its old task finishes, so a straggler still at
round ``t`` never holds up round ``t + 1`` on the other workers. Every wait
has a deadline: a round that cannot finish within ``timeout`` seconds raises
:class:`RoundTimeoutError` naming the workers it was waiting on.
"""

from __future__ import annotations

import functools
import logging
import math
import queue
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import dask
import numpy as np
from dask.sizeof import sizeof
from distributed import Client, Future

from .coding import EXACT_TOL, GradientCode
from .placement import Placement

logger = logging.getLogger(__name__)

#: Task prefix of the round tasks; their keys are ``(f"{ROUND_PREFIX}-{token}", round, worker)``.
ROUND_PREFIX = "quorum-round"


class RoundTimeoutError(TimeoutError):
    """A round found no sufficient set of results before its timeout."""


@dataclass(frozen=True)
class RoundRecord:
    """What happened in one round.

    Attributes
    ----------
    index : int
        Round number, from 0.
    wall_time : float
        Seconds from the start of the round to the decoded result.
    finished : float
        ``time.perf_counter()`` when the round had its result; differences
        include the driver's work between rounds.
    responders : tuple of int
        Workers whose results were used, in the order they arrived.
    busy : tuple of int
        Workers still computing an older round when this one started.
    decode_error : float
        Normalised decoding error of the responders (0 when exact).
    last_responder : int
        The worker whose answer made the set sufficient: the one waited on.
    stop : str
        Why the round stopped: ``"exact"``, ``"tolerance"``, ``"quorum"``
        or ``"deadline"``.
    scheme : str
        The scheme of the code the round ran with.
    """

    index: int
    wall_time: float
    finished: float
    responders: tuple[int, ...]
    busy: tuple[int, ...]
    decode_error: float
    last_responder: int
    stop: str
    scheme: str = ""


def coded_partial(
    fn: Callable[[Any, Any], np.ndarray], params: Any, coeffs: Sequence[float], *parts: Any
) -> np.ndarray:
    """Worker side of a round: ``sum_j coeffs[j] * fn(params, parts[j])``."""
    total = None
    for c, part in zip(coeffs, parts):
        r = np.asarray(fn(params, part), dtype=np.float64)
        total = c * r if total is None else total + c * r
    return total


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
    ) -> None:
        self.client = client
        self.inline_limit = int(inline_limit)
        self.code = code
        self.placement = placement
        self.timeout = float(timeout)
        self.decode_tol = float(decode_tol)
        self.deadline = math.inf if deadline is None else float(deadline)
        self.token = uuid.uuid4().hex[:12]
        self._round = 0
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._inflight: dict[int, Future] = {}
        self._closed = False

    # -- submission -----------------------------------------------------
    def _ship(self, params: Any) -> Any:
        """Parameters as the round's tasks take them: inline when small, else scattered once.

        Small parameters ride inside the task messages: a separate scatter
        costs a round trip per round (measured 4 ms in-process, 12 ms with
        worker processes, against a 20-30 ms round). Large ones are
        broadcast once and shared by the round's tasks.
        """
        if sizeof(params) <= self.inline_limit:
            return params
        return self.client.scatter(params, broadcast=True, hash=False, timeout=self.timeout)

    def _submit(self, t: int, i: int, fn: Callable, params: Any) -> None:
        cols = self.placement.columns[i]
        # The latency recorder normalises compute time by these work units.
        with dask.annotate(quorum_units=self.placement.units(i)):
            fut = self.client.submit(
                coded_partial,
                fn,
                params,
                self.code.B[i, cols].tolist(),
                *self.placement.futures(i),
                key=(f"{ROUND_PREFIX}-{self.token}", t, i),
                workers=[self.placement.workers[i]],
                allow_other_workers=False,
                pure=False,
            )
        self._inflight[i] = fut
        fut.add_done_callback(functools.partial(self._on_done, t, i))

    def _on_done(self, t: int, i: int, fut: Future) -> None:
        # Runs in distributed's callback thread: only hand over.
        self._done.put((t, i, fut))

    def _fetch(self, futures: list[Future], hard: float) -> list[Any]:
        """Results of finished futures, in one transfer, within the round's deadline."""
        # Client.gather takes no timeout; the coroutine behind it, run through
        # client.sync with callback_timeout, gets the round's deadline.
        return self.client.sync(
            self.client._gather, futures, callback_timeout=max(0.0, hard - perf_counter())
        )

    def _retire(self, i: int, fut: Future) -> None:
        if self._inflight.get(i) is fut:
            del self._inflight[i]

    def _raise_if_failed(self, i: int, fut: Future, remaining: float) -> None:
        if fut.status == "error":
            exc = fut.exception(timeout=remaining)
            raise exc
        if fut.status != "finished":
            raise RuntimeError(
                f"the round task on worker {self.placement.workers[i]} ended as {fut.status!r}"
            )

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
        """
        if self._closed:
            raise RuntimeError("this RoundRunner is closed")
        t = self._round
        self._round += 1
        start = perf_counter()
        hard = start + self.timeout
        soft = start + self.deadline

        busy = self._collect_finished()
        params_future = self._ship(params)
        submitted = set()
        for i in range(self.code.n_workers):
            if i not in self._inflight:
                self._submit(t, i, fn, params_future)
                submitted.add(i)

        responders: list[int] = []
        results: list[np.ndarray] = []
        stop = None
        error = 1.0
        # Replicas of each partition among the responders: a set that misses
        # a partition cannot decode exactly, so it needs no least squares
        # (unless a decoding tolerance could stop the round early).
        covered = np.zeros(self.code.n_partitions, dtype=int)
        while stop is None:
            now = perf_counter()
            until = min(hard, soft) if responders else hard
            try:
                batch = [self._done.get(timeout=max(0.0, until - now))]
            except queue.Empty:
                if perf_counter() >= hard:
                    waiting = sorted(self.placement.workers[w] for w in self._inflight)
                    raise RoundTimeoutError(
                        f"round {t} found no sufficient set of results within "
                        f"{self.timeout:g} s; {len(responders)} of {self.code.n_workers} "
                        f"workers answered, still waiting on {waiting}"
                    ) from None
                stop = "deadline"
                break
            while True:  # everything else already finished: one fetch for all
                try:
                    batch.append(self._done.get_nowait())
                except queue.Empty:
                    break
            fresh = []
            for rt, i, fut in batch:
                self._retire(i, fut)
                self._raise_if_failed(i, fut, hard - perf_counter())
                if rt == t:
                    fresh.append((i, fut))
                    continue
                # An older round's straggler is free again: give it this round.
                fut.release()
                if i not in submitted:
                    self._submit(t, i, fn, params_future)
                    submitted.add(i)
            if not fresh:
                continue
            values = self._fetch([f for _, f in fresh], hard)
            for (i, fut), value in zip(fresh, values):
                fut.release()
                if stop is not None:
                    continue
                responders.append(i)
                results.append(value)
                covered[self.placement.columns[i]] += 1
                enough = len(responders) >= self.code.min_responders
                if covered.min() == 0 and self.decode_tol <= 0 and not enough:
                    continue
                error = self.code.error(responders)
                if error <= EXACT_TOL:
                    stop = "exact"
                elif error <= self.decode_tol:
                    stop = "tolerance"
                elif len(responders) >= self.code.min_responders:
                    stop = "quorum"

        if isinstance(params_future, Future):
            params_future.release()
        if stop == "deadline":
            error = self.code.error(responders)
        weights = self.code.decode(responders)
        total = weights[0] * results[0]
        for w, r in zip(weights[1:], results[1:]):
            total = total + w * r
        finished = perf_counter()
        record = RoundRecord(
            index=t,
            wall_time=finished - start,
            finished=finished,
            responders=tuple(responders),
            busy=busy,
            decode_error=float(error),
            last_responder=responders[-1],
            stop=stop,
            scheme=self.code.scheme,
        )
        return total, record

    def _collect_finished(self) -> tuple[int, ...]:
        """Retire tasks of earlier rounds that finished; return the still busy workers."""
        while True:
            try:
                _, i, fut = self._done.get_nowait()
            except queue.Empty:
                break
            self._retire(i, fut)
            self._raise_if_failed(i, fut, self.timeout)
            fut.release()
        return tuple(sorted(self._inflight))

    def close(self) -> None:
        """Cancel what is still running and drop every reference."""
        self._closed = True
        futures = list(self._inflight.values())
        self._inflight.clear()
        if futures:
            self.client.cancel(futures)
            for f in futures:
                f.release()
        while True:
            try:
                self._done.get_nowait()
            except queue.Empty:
                break
