"""ASAP on the workers: the plugin whose RPC handlers start, control and collect the runs.

:class:`AsapWorkerPlugin` (a :class:`distributed.WorkerPlugin`) installs RPC
handlers on every worker. Versions and ACKs go straight from worker to
worker over the workers' own connection pools (``worker.rpc(peer)``), never
through the scheduler; the driver only starts the loops, extends their
*lease* (how many rounds they may run), polls a small status and collects
the history at the end. ``benchmarks/bench_asap_transport.py`` measures
this transport against actors, tasks and a scheduler-side Queue.

Every run is a :class:`~dask_quorum.pipeline.asap.PeerRun` (the loop and
its messages: :mod:`~dask_quorum.pipeline.asap.peer_run`), keyed by its
token. A payload that is an :class:`InMemory` is replaced, on the worker,
by that key's value in the worker's memory: data computed on the cluster
reaches its program without passing through the driver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from distributed.diagnostics.plugin import WorkerPlugin
from distributed.protocol import to_serialize

from .peer_run import PeerRun
from .protocol import ProtocolError

if TYPE_CHECKING:
    from distributed import Worker

logger = logging.getLogger(__name__)

__all__ = ["PLUGIN_NAME", "AsapWorkerPlugin", "InMemory"]

#: Name of the worker plugin.
PLUGIN_NAME = "quorum-asap"


@dataclass(frozen=True)
class InMemory:
    """A payload already held by its worker: the key of a task result in that worker's memory."""

    key: Any


class AsapWorkerPlugin(WorkerPlugin):
    """Installs the ASAP handlers on a worker and keeps its runs.

    Handlers (all take the run's ``token``): ``quorum_asap_prepare`` (build
    the run and its program, in the run's thread), ``quorum_asap_notify``
    (a peer's version; the handler replies, which is the ACK, once the
    version is consumed), ``quorum_asap_control`` (lease,
    status, abort), ``quorum_asap_collect`` (history) and
    ``quorum_asap_release`` (stop and forget the run).
    """

    name = PLUGIN_NAME
    idempotent = True

    def __init__(self) -> None:
        self.runs: dict[str, PeerRun] = {}
        self._worker: Worker | None = None

    def setup(self, worker: Worker) -> None:
        self._worker = worker
        self.runs = {}
        worker.handlers.update(
            {
                "quorum_asap_prepare": self.prepare,
                "quorum_asap_notify": self.notify,
                "quorum_asap_control": self.control,
                "quorum_asap_collect": self.collect,
                "quorum_asap_release": self.release,
            }
        )

    def teardown(self, worker: Worker) -> None:
        for run in self.runs.values():
            run.abort(f"worker {worker.address} is closing")
        self.runs.clear()
        for name in ("prepare", "notify", "control", "collect", "release"):
            worker.handlers.pop(f"quorum_asap_{name}", None)

    # -- handlers (event loop) -------------------------------------------------
    def prepare(self, token: str, data: Any, **spec: Any) -> dict[str, Any]:
        """Make run ``token`` and start its loop.

        ``data`` is this worker's payload (an :class:`InMemory` is looked up
        in the worker's memory); ``spec`` holds the other arguments of
        :class:`~dask_quorum.pipeline.asap.PeerRun` (``index``,
        ``addresses``, ``in_peers``, ``out_peers``, ``staleness``,
        ``builder``, ``timeout``, ``flush_interval``, ``grace``).
        """
        assert self._worker is not None
        if token in self.runs:
            return {"status": "error", "message": f"run {token} already exists on {self._worker.address}"}
        if isinstance(data, InMemory):
            if data.key not in self._worker.data:
                return {"status": "error", "message": f"{data.key!r} is not in the memory of {self._worker.address}"}
            data = self._worker.data[data.key]
        run = PeerRun(self._worker, token, data=data, **spec)
        self.runs[token] = run
        run.start()
        return {"status": "OK"}

    def _run(self, token: str) -> PeerRun | dict[str, Any]:
        run = self.runs.get(token)
        if run is None:
            where = self._worker.address if self._worker is not None else "?"
            return {"status": "gone", "message": f"no ASAP run {token} on {where}"}
        return run

    async def notify(self, token: str, sender: int, version: int, payload: Any) -> dict[str, Any]:
        """A peer's version; the reply, sent once the version is consumed, is the ACK."""
        run = self._run(token)
        if isinstance(run, dict):
            return run
        try:
            waiter = run.on_notify(sender, version, payload)
        except ProtocolError as exc:
            run._fail(str(exc))
            return {"status": "error", "message": str(exc)}
        return await waiter

    def control(
        self, token: str, target: int | None = None, final: bool = False, abort: str | None = None,
        report: int | None = None, snapshot: int = 0,
    ) -> dict[str, Any]:
        run = self._run(token)
        if isinstance(run, dict):
            return run
        if abort is not None:
            run.abort(abort)
        elif target is not None:
            run.extend(target, final)
        return {"status": "OK", **run.status(report, snapshot)}

    def collect(self, token: str) -> dict[str, Any]:
        run = self._run(token)
        if isinstance(run, dict):
            return run
        return {"status": "OK", "history": to_serialize(run.history())}

    def release(self, token: str, reason: str = "released") -> dict[str, Any]:
        run = self.runs.pop(token, None)
        if run is not None:
            run.abort(reason)
        return {"status": "OK"}
