"""Which workers a fit can count on: lost, hung and joining workers.

A coded session (:class:`~dask_quorum.pipeline.engine.CodedSession`) asks
this module, between rounds, whether its workers are still there:

* a worker whose process died is gone from the scheduler, and its futures
  are cancelled; the round runner notices at once (see
  :class:`~dask_quorum.pipeline.engine.RoundRunner`) and reports it *lost*;
* a worker that hangs (stopped process, frozen event loop) stays known to
  the scheduler until ``distributed.scheduler.worker-ttl`` (minutes), but it
  stops heartbeating. Its round task never finishes, so every later round
  finds it busy, like a straggler. :class:`HangDetector` turns a worker busy
  at the start of ``quorum.faults.missed-rounds`` rounds in a row into a
  suspect, and a suspect whose last heartbeat is older than
  ``quorum.faults.heartbeat-timeout`` into a *lost* worker (only a worker
  that answered a round of the fit before: loading the engine's modules on
  a worker's first task holds its event loop, heartbeats included, for
  seconds). Heartbeat age is
  read on the scheduler's clock (the freshest heartbeat of the other
  workers stands for "now"), so a slow but healthy worker is never dropped;
* a worker that appears in the scheduler and is not in the session
  *joins* at the next re-encode point.

Membership is read from the scheduler's ``identity`` at most every
``quorum.faults.check-interval`` (and when a round task dies), never per
task. Every change is logged on the scheduler under the event topic
:data:`~dask_quorum.pipeline.recorder.MEMBERSHIP_TOPIC` (which the latency
recorder keeps) and kept as :class:`MembershipEvent` in the session. What
the session does about a change is in
:mod:`~dask_quorum.pipeline.engine.replan`; the errors are in
:mod:`~dask_quorum.pipeline.engine.errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import numpy as np
from distributed import Client

from ..cluster import scheduler_identity
from ..recorder import MEMBERSHIP_TOPIC
from .errors import SchedulerLostError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MembershipEvent:
    """One change of a session's workers.

    Attributes
    ----------
    round : int
        The first round run without (``"lost"``) or with (``"joined"``) the worker.
    action : str
        ``"lost"`` or ``"joined"``.
    worker : str
        The worker's address.
    reason : str
        Why: ``"left the cluster"``, ``"no heartbeat for 12.3 s"``, ...
    """

    round: int
    action: str
    worker: str
    reason: str


@dataclass(frozen=True)
class SchedulerView:
    """What the scheduler says about the cluster at one moment."""

    id: str
    address: str
    workers: Mapping[str, Mapping[str, Any]]


def scheduler_address(client: Client) -> str:
    """The scheduler address of ``client``, for messages."""
    address = getattr(client.scheduler, "address", None) if client.scheduler is not None else None
    return str(address or getattr(client, "_start_arg", None) or "?")


def check_client(client: Client, during: str) -> None:
    """Raise :class:`SchedulerLostError` unless ``client`` is connected.

    Parameters
    ----------
    during : str
        What was going on, for the message (``"round 12"``).
    """
    if client.status != "running":
        raise SchedulerLostError(
            f"{during}: the client is {client.status!r}, not connected to the scheduler "
            f"{scheduler_address(client)} (it died or restarted, or the client was closed); "
            "the fit's data and tasks are gone, so it stops here"
        )


def scheduler_view(
    client: Client, timeout: float, during: str = "membership check", expect_id: str | None = None
) -> SchedulerView:
    """The scheduler's id and workers, within ``timeout`` seconds.

    Parameters
    ----------
    expect_id : str, optional
        The id of the scheduler the caller's data lives on; another id
        means the scheduler restarted.

    Raises
    ------
    SchedulerLostError
        If the client is not connected, the scheduler does not answer in
        time, or it is not the one with ``expect_id``.
    """
    check_client(client, during)
    try:
        info = scheduler_identity(client, timeout)
    except TimeoutError as exc:
        raise SchedulerLostError(
            f"{during}: the scheduler {scheduler_address(client)} did not answer within "
            f"{timeout:g} s"
        ) from exc
    except OSError as exc:
        raise SchedulerLostError(
            f"{during}: lost the connection to the scheduler {scheduler_address(client)}: {exc}"
        ) from exc
    if expect_id is not None and str(info["id"]) != expect_id:
        raise SchedulerLostError(
            f"{during}: the scheduler {scheduler_address(client)} restarted (id {expect_id} is "
            f"now {info['id']}); the data placed on the workers is gone, so the fit stops here"
        )
    return SchedulerView(id=str(info["id"]), address=str(info.get("address")), workers=info["workers"])


def heartbeat_lag(worker: str, view: SchedulerView) -> float | None:
    """How far ``worker``'s last heartbeat lags behind the freshest one of the others.

    Both are times on the scheduler's clock, so no clock offset enters.
    None when the scheduler does not know the worker or it has no other
    worker to compare with.
    """
    info = view.workers.get(worker)
    if info is None or info.get("last_seen") is None:
        return None
    others = [
        float(v["last_seen"]) for w, v in view.workers.items() if w != worker and v.get("last_seen")
    ]
    if not others:
        return None
    return max(0.0, max(others) - float(info["last_seen"]))


class HangDetector:
    """Finds workers that stopped answering, among those that look like stragglers.

    Parameters
    ----------
    missed_rounds : int
        Rounds in a row a worker must be found busy before it is a suspect.
    heartbeat_timeout : float
        Seconds without a heartbeat after which a suspect is lost.
    """

    def __init__(self, missed_rounds: int, heartbeat_timeout: float) -> None:
        if missed_rounds < 1:
            raise ValueError(f"quorum.faults.missed-rounds must be >= 1, got {missed_rounds}")
        self.missed_rounds = int(missed_rounds)
        self.heartbeat_timeout = float(heartbeat_timeout)
        self._streak: dict[str, int] = {}
        # suspect -> (last_seen it had, driver time when first seen with it)
        self._seen: dict[str, tuple[float, float]] = {}

    def observe(self, members: Sequence[str], busy: Iterable[str]) -> None:
        """Count one round: ``busy`` workers were still running an older task at its start."""
        busy = set(busy)
        self._streak = {w: self._streak.get(w, 0) + 1 for w in members if w in busy}
        self._seen = {w: v for w, v in self._seen.items() if w in self._streak}

    def suspects(self) -> list[str]:
        """Workers busy for at least ``missed_rounds`` rounds in a row."""
        return sorted(w for w, n in self._streak.items() if n >= self.missed_rounds)

    def silence(self, worker: str, view: SchedulerView, now: float | None = None) -> float:
        """Seconds since ``worker``'s last heartbeat (0 when the scheduler does not know it).

        :func:`heartbeat_lag` when the cluster has other workers; else how
        long this detector has seen the same ``last_seen`` (driver clock).
        """
        now = perf_counter() if now is None else now
        info = view.workers.get(worker)
        if info is None or info.get("last_seen") is None:
            return 0.0
        lag = heartbeat_lag(worker, view)
        if lag is not None:
            return lag
        seen = float(info["last_seen"])
        previous = self._seen.get(worker)
        if previous is None or previous[0] != seen:
            self._seen[worker] = (seen, now)
            return 0.0
        return now - previous[1]

    def hung(self, view: SchedulerView, eligible: Iterable[str] | None = None) -> dict[str, float]:
        """Suspects silent for longer than ``heartbeat_timeout``: ``{address: seconds}``.

        Only workers in ``eligible`` (default: all) are judged: a worker that
        never answered may be loading modules, which silences it.
        """
        now = perf_counter()
        out = {}
        eligible = None if eligible is None else set(eligible)
        for worker in self.suspects():
            if eligible is not None and worker not in eligible:
                continue
            quiet = self.silence(worker, view, now)
            if quiet >= self.heartbeat_timeout:
                out[worker] = quiet
        return out

    def forget(self, worker: str) -> None:
        self._streak.pop(worker, None)
        self._seen.pop(worker, None)


def log_membership(
    client: Client, events: Sequence[MembershipEvent], session: str, timeout: float
) -> None:
    """Publish ``events`` on the scheduler under :data:`MEMBERSHIP_TOPIC` (best effort)."""
    if not events or client.status != "running":
        return
    for event in events:
        msg = {
            "action": event.action,
            "worker": event.worker,
            "reason": event.reason,
            "round": event.round,
            "session": session,
        }
        try:
            client.sync(
                client.scheduler.log_event, topic=MEMBERSHIP_TOPIC, msg=msg, callback_timeout=timeout
            )
        except (OSError, TimeoutError) as exc:  # the event log is a courtesy
            logger.debug("could not log %r on the scheduler: %s", event, exc)


def membership_variables(
    members: Sequence[Sequence[int]], n_workers: int
) -> dict[str, tuple[tuple[str, str], np.ndarray]]:
    """The ``member`` (round x worker) variable of a fit's history.

    Parameters
    ----------
    members : sequence of sequence of int
        Per round, the indices (into the history's workers) of the workers
        the round's code ran on.
    n_workers : int
        Size of the history's worker dimension.
    """
    member = np.zeros((len(members), n_workers), dtype=bool)
    for r, rows in enumerate(members):
        member[r, list(rows)] = True
    return {"member": (("round", "worker"), member)}
