"""ASAP on the driver: start the per-worker loops, lease rounds, stop, collect.

:func:`run_asap` is workload-agnostic: it takes one data payload per worker,
a picklable *builder* that turns a payload into a program on the worker
(see :mod:`~dask_quorum.pipeline.asap.peer_run`), a peer graph and a stopping rule, and returns
every worker's per-round history (:class:`~dask_quorum.pipeline.asap.AsapResult`). The gradient workload
(:mod:`~dask_quorum.pipeline.asap.fit`) and any other (asynchronous block iteration for PageRank)
plug in through the builder.

Control, not data, goes through the driver:

* **prepare**: every worker gets its payload, the builder and its peers,
  directly over the driver's connection to it (not through the scheduler),
  and builds its program in a thread of its own;
* **lease**: workers may run rounds below a *target* that the driver keeps
  extending to ``max(reported rounds) + lease`` while it polls their status
  every ``poll-interval``; nobody ever passes the target, so when the driver
  stops extending it (all residuals at most ``tol``, or ``max_rounds``),
  every worker ends at the same round and the replicas are comparable;
* **collect** the histories, then **release** the runs.

The dashboard shows the run like a coded fit, a few rounds per page
refresh piggybacked on the status polls
(:mod:`~dask_quorum.pipeline.asap.progress`).

Another workload plugs in with its own builder and program (interface in
:mod:`~dask_quorum.pipeline.asap.peer_run`). PageRank as asynchronous block iteration, for
instance (:mod:`~dask_quorum.pipeline.asap.pagerank`): worker ``b`` owns the rank block ``b`` and the matching rows of
the transition matrix's transpose; a :class:`~dask_quorum.pipeline.asap.PeerGraph`-like object
whose in-peers are the blocks with edges into ``b`` (``run_asap`` uses only
its ``n``, ``in_peers(i)`` and ``out_peers(i)``); the
message is the block's ranks; ``step`` recomputes the own block from the
freshest blocks received (``staleness > 0`` gives the totally asynchronous
iteration of Bertsekas & Tsitsiklis, which converges for this contraction);
``residual`` is the block's L1 change; the final vector is the
concatenation of the snapshots rather than their average.

Every wait has a deadline. A worker that cannot reach a peer, a peer that
breaks the protocol, or a worker that leaves the cluster ends the fit with
:class:`~dask_quorum.pipeline.asap.AsapError` naming the worker; no progress for
``quorum.round-timeout`` seconds ends it with :class:`~dask_quorum.pipeline.asap.AsapTimeoutError`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from time import perf_counter, sleep, time
from typing import Any

import numpy as np
from distributed import Client
from distributed.protocol import to_serialize

from dask_quorum import config

from ..cluster import scheduler_workers
from ..dashboard import FitReporter
from .graph import PeerGraph
from .progress import ERRORS, Progress
from .result import AsapError, AsapResult, AsapTimeoutError, stack_histories
from .worker import AsapWorkerPlugin

logger = logging.getLogger(__name__)

__all__ = ["run_asap"]


def _call_all(client: Client, addresses: Sequence[str], op: str, timeout: float, **kwargs: Any) -> list[Any]:
    """The same RPC to several workers at once; an exception per worker that failed."""

    async def one(address: str) -> Any:
        return await asyncio.wait_for(getattr(client.rpc(address), op)(**kwargs), timeout)

    async def call() -> list[Any]:
        return await asyncio.gather(*(one(a) for a in addresses), return_exceptions=True)

    return client.sync(call)


class _Driver:
    """State of one run on the driver; see :func:`run_asap`."""

    def __init__(self, client: Client, workers: list[str], token: str) -> None:
        self.client = client
        self.workers = workers
        self.token = token
        self.setup_timeout = config.get_timeout("setup-timeout")
        self.round_timeout = config.get_timeout("round-timeout")
        self.poll = config.get_timeout("asap.poll-interval")
        self.control_timeout = config.get_timeout("asap.control-timeout")
        self.check_interval = config.get_timeout("asap.check-interval")
        self._checked = perf_counter()
        self.lease = int(config.get("asap.lease"))
        if self.lease < 1:
            raise ValueError(f"quorum.asap.lease must be >= 1, got {self.lease}")

    def control(self, **kwargs: Any) -> list[dict[str, Any]]:
        """Send a control message to every worker; raise naming the ones that failed."""
        self.check_members()
        replies = _call_all(
            self.client, self.workers, "quorum_asap_control", self.control_timeout, token=self.token, **kwargs
        )
        if any(isinstance(r, BaseException) for r in replies):
            self.check_members(force=True)  # a worker that left says so more clearly
        errors = []
        for address, reply in zip(self.workers, replies):
            if isinstance(reply, BaseException):
                errors.append(
                    f"{address} did not answer within {self.control_timeout:g} s "
                    f"(quorum.asap.control-timeout; {reply!r}): it left the cluster or hangs"
                )
            elif not isinstance(reply, dict):
                errors.append(f"{address} has no ASAP handler any more: it is closing")
            elif reply.get("status") != "OK":
                errors.append(f"{address}: {reply.get('message')}")
            elif reply.get("error"):
                errors.append(f"{address} (worker {reply['index']}): {reply['error']}")
        if errors:
            raise AsapError(f"ASAP fit {self.token} failed: " + "; ".join(errors))
        return replies

    def check_members(self, force: bool = False) -> None:
        """Every ``quorum.asap.check-interval``: raise if a worker of the fit left the cluster."""
        if not force and perf_counter() - self._checked < self.check_interval:
            return
        self._checked = perf_counter()
        present = scheduler_workers(self.client)
        gone = [a for a in self.workers if a not in present]
        if gone:
            raise AsapError(
                f"ASAP fit {self.token}: worker(s) {gone} left the cluster; their replicas and "
                "partitions are lost (an ASAP fit does not re-plan: run it again)"
            )

    def abort(self, reason: str) -> None:
        """Best effort: stop and forget the run on every worker still there (errors ignored)."""
        try:
            present = scheduler_workers(self.client)
            alive = [a for a in self.workers if a in present]
            _call_all(self.client, alive, "quorum_asap_release", self.control_timeout, token=self.token, reason=reason)
        except Exception as exc:  # the cluster itself is gone
            logger.debug("could not abort ASAP run %s: %r", self.token, exc)

    def wait_ready(self) -> None:
        deadline = perf_counter() + self.setup_timeout
        while True:
            replies = self.control()
            waiting = [a for a, r in zip(self.workers, replies) if not r["ready"]]
            if not waiting:
                return
            if perf_counter() > deadline:
                raise AsapTimeoutError(
                    f"ASAP fit {self.token}: workers {waiting} did not build their programs within "
                    f"{self.setup_timeout:g} s (quorum.setup-timeout)"
                )
            sleep(self.poll)

    def drive(self, max_rounds: int, tol: float, progress: Progress | None = None) -> bool:
        """Extend the lease until convergence or ``max_rounds``; return whether it converged."""
        target = min(self.lease, max_rounds)
        replies = self.control(target=target, final=target >= max_rounds)
        last_progress, low = perf_counter(), 0
        converged = False
        final = target >= max_rounds
        while True:
            if progress is not None:
                progress.take(replies, target - 1 if final else None)
            rounds = [r["round"] for r in replies]
            if all(r["done"] for r in replies):
                return converged
            if min(rounds) > low:
                low, last_progress = min(rounds), perf_counter()
            elif perf_counter() - last_progress > self.round_timeout:
                stuck = [a for a, r in zip(self.workers, rounds) if r == low]
                raise AsapTimeoutError(
                    f"ASAP fit {self.token}: no worker passed round {low} for {self.round_timeout:g} s "
                    f"(quorum.round-timeout); slowest: {stuck}"
                )
            if not final:
                if all(r["residual"] <= tol for r in replies):
                    converged = final = True
                else:
                    target = min(max(target, max(rounds) + self.lease), max_rounds)
                    final = target >= max_rounds
            sleep(self.poll)
            ask = {} if progress is None else progress.ask(rounds)
            replies = self.control(target=target, final=final, **ask)

    def collect(self) -> list[dict[str, Any]]:
        replies = _call_all(self.client, self.workers, "quorum_asap_collect", self.round_timeout, token=self.token)
        out = []
        for address, reply in zip(self.workers, replies):
            if not isinstance(reply, dict) or reply.get("status") != "OK":
                raise AsapError(f"ASAP fit {self.token}: could not collect the history of {address}: {reply!r}")
            out.append(reply["history"])
        return out


def run_asap(
    client: Client,
    builder: Any,
    payloads: Sequence[Any],
    *,
    graph: PeerGraph,
    staleness: int,
    max_rounds: int,
    tol: float,
    workers: Sequence[str],
    label: str = "asap",
    error: str = "consensus",
) -> AsapResult:
    """Run an ASAP fit: one program per worker, NOTIFY-ACK over ``graph``.

    Parameters
    ----------
    client : distributed.Client
    builder : object
        Picklable; ``builder.build(index, payload, in_peers)`` returns the
        program on worker ``index`` (see :mod:`~dask_quorum.pipeline.asap.peer_run`).
    payloads : sequence
        One per worker, sent to it once.
    graph : PeerGraph
        On ``len(workers)`` nodes (any object with ``n``, ``in_peers(i)``
        and ``out_peers(i)`` will do).
    staleness : int
        0 for strict NOTIFY-ACK; see :mod:`~dask_quorum.pipeline.asap.protocol`.
    max_rounds : int
        Rounds at most.
    tol : float
        Stop once every worker's latest residual is at most ``tol``.
    workers : sequence of str
        Worker addresses, by graph position.
    label : str, default="asap"
        The run's name on the dashboard (the degree and staleness are added).
    error : {"consensus", "residual"}, default="consensus"
        The dashboard's error column: the consensus error of the snapshots
        (for replicas of one vector) or the largest residual (for a
        workload whose snapshots are parts of the answer, such as blocks).

    Returns
    -------
    AsapResult

    Raises
    ------
    AsapError
        When a worker fails, leaves or cannot reach a peer (the message
        names it and says why).
    AsapTimeoutError
        When the programs are not built within ``quorum.setup-timeout``, or
        no round completes everywhere for ``quorum.round-timeout``.
    ValueError
        On inconsistent arguments.
    """
    workers = list(workers)
    if len(payloads) != len(workers) or graph.n != len(workers):
        raise ValueError(
            f"{len(payloads)} payloads and a graph on {graph.n} nodes for {len(workers)} workers"
        )
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int | np.integer) or max_rounds < 1:
        raise ValueError(f"max_rounds must be a positive integer, got {max_rounds!r}")
    if error not in ERRORS:
        raise ValueError(f"error must be one of {ERRORS}, got {error!r}")
    client.register_plugin(AsapWorkerPlugin())
    token = uuid.uuid4().hex[:12]
    driver = _Driver(client, workers, token)
    flush = config.get_timeout("asap.flush-interval")
    # The dashboard shows the run (silent without a board; never blocks).
    reporter = FitReporter(client, token=token, label=f"{label} ({graph.degree} peers each, staleness {staleness})")
    reporter.assignment(workers, np.eye(len(workers)), "asap")
    try:
        _prepare(client, driver, graph, int(staleness), builder, payloads, flush)
        driver.wait_ready()
        started = time()
        logger.info("ASAP fit %s on %d workers over %r, staleness %d", token, len(workers), graph, staleness)
        progress = Progress(reporter, len(workers), error, started)
        converged = driver.drive(int(max_rounds), float(tol), progress)
        histories = driver.collect()
    except BaseException as exc:
        driver.abort(f"the driver stopped the fit: {exc!r}")
        reporter.close(timeout=0)
        raise
    driver.abort("finished")
    result = stack_histories(workers, graph, int(staleness), started, converged, histories)
    progress.finish(result)
    return result


def _prepare(
    client: Client, driver: _Driver, graph: PeerGraph, staleness: int, builder: Any,
    payloads: Sequence[Any], flush: float,
) -> None:
    """Send every worker its payload, peers and the builder (at once, straight to the workers)."""
    shipped = to_serialize(builder)
    grace = float(config.get("asap.stale-grace"))
    if not grace >= 0:
        raise ValueError(f"quorum.asap.stale-grace must be >= 0, got {grace!r}")

    async def one(i: int, address: str) -> Any:
        call = client.rpc(address).quorum_asap_prepare(
            token=driver.token, index=i, addresses=driver.workers,
            in_peers=list(graph.in_peers(i)), out_peers=list(graph.out_peers(i)),
            staleness=staleness, builder=shipped, data=to_serialize(payloads[i]),
            timeout=driver.round_timeout, flush_interval=flush, grace=grace,
        )
        return await asyncio.wait_for(call, driver.setup_timeout)

    async def call() -> list[Any]:
        return await asyncio.gather(*(one(i, a) for i, a in enumerate(driver.workers)), return_exceptions=True)

    replies = client.sync(call)
    for i, (address, reply) in enumerate(zip(driver.workers, replies)):
        if not isinstance(reply, dict):
            raise AsapError(f"ASAP fit {driver.token}: could not start worker {i} at {address}: {reply!r}")
        if reply.get("status") != "OK":
            raise AsapError(
                f"ASAP fit {driver.token}: worker {i} at {address} refused to start: {reply.get('message')}"
            )
