"""NOTIFY-ACK, one worker's side: a pure-Python state machine, no Dask.

ASAP's stochastic reduce (Kadav & Kruus, arXiv 1612.08608) keeps averaging
over a sparse graph consistent with a handshake:

* **NOTIFY.** After each local step a worker *publishes* a new version of
  its message for its out-peers. A version goes to a peer only once that
  peer has ACKed the previous one; until then it waits in the sender's
  outbox. Sending never blocks the sender (send first, then wait).
* **Reduce.** In round ``t`` a worker reduces only when it holds version
  ``t`` from every in-peer, consumes exactly that version of each, and
* **ACK**\\ s every version it consumed, which releases the sender's next
  version to it.

So every version of every worker is consumed exactly once by each of its
out-peers, in order: an asynchronous run computes exactly what the
synchronous iteration ``x <- W x`` computes, the averaging matrix stays
doubly stochastic, and nobody waits for anyone but its in-peers. Cyclic
graphs cannot deadlock: a worker in round ``t`` waits only for versions
``t`` of its in-peers, each of which needs only versions ``t - 1``, which
that worker already consumed and ACKed.

Bounded staleness
-----------------
With ``staleness = s >= 1`` a worker in round ``t`` reduces with the
*latest* version it holds from each in-peer as long as that version is at
least ``t - s``, reusing a version it consumed before when nothing newer
came; it waits only for an in-peer more than ``s`` rounds behind. A sender
keeps only its latest unsent version per peer (older ones are superseded),
so a slow receiver always gets the freshest. The price: a reused or skipped
version breaks the column sums of the effective averaging matrix, so the
average of the replicas drifts (see :mod:`dask_quorum.pipeline.asap.fit` for
what that does to the optimisation and when it still converges).

Every method is called with the caller's lock held; nothing here blocks.
The log of consumed versions (:attr:`NotifyAck.consumed`) lets tests check
that no version is consumed twice in one reduce or lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["NotifyAck", "ProtocolError", "Send"]


class ProtocolError(RuntimeError):
    """A peer broke NOTIFY-ACK (a version out of order, or sent before the ACK)."""


@dataclass(frozen=True)
class Send:
    """A message the caller must deliver: ``kind`` is ``"notify"`` or ``"ack"``."""

    kind: str
    peer: int
    version: int
    payload: Any = None


class NotifyAck:
    """One worker's NOTIFY-ACK state.

    Parameters
    ----------
    me : int
        This worker's index (only for messages).
    in_peers, out_peers : sequence of int
        Workers whose versions this one reduces with / that reduce with its
        versions.
    staleness : int, default=0
        0 for strict NOTIFY-ACK; ``s >= 1`` lets this worker run up to ``s``
        rounds ahead of an in-peer, reusing that peer's latest version.

    Attributes
    ----------
    consumed : list of tuple
        ``(round, peer, version)`` for every version used in a reduce, in
        order (the instrumentation tests read).
    """

    def __init__(self, me: int, in_peers: Sequence[int], out_peers: Sequence[int], *, staleness: int = 0) -> None:
        if isinstance(staleness, bool) or not isinstance(staleness, int) or staleness < 0:
            raise ValueError(f"staleness must be an integer >= 0, got {staleness!r}")
        self.me = me
        self.in_peers = tuple(in_peers)
        self.out_peers = tuple(out_peers)
        self.staleness = staleness
        self.consumed: list[tuple[int, int, int]] = []
        # sender side: versions waiting for the peer's ACK; whether one is in flight
        self._outbox: dict[int, deque[tuple[int, Any]]] = {j: deque() for j in self.out_peers}
        self._in_flight: dict[int, int | None] = {j: None for j in self.out_peers}
        self._published = -1
        # receiver side: (version, payload) not yet consumed, in arrival order
        self._inbox: dict[int, deque[tuple[int, Any]]] = {j: deque() for j in self.in_peers}
        # latest version consumed from each peer (reused under staleness)
        self._last: dict[int, tuple[int, Any] | None] = {j: None for j in self.in_peers}

    # -- sender ------------------------------------------------------------
    def publish(self, version: int, payload: Any) -> list[Send]:
        """A new own version: the notifies to send now (the rest wait for ACKs).

        Raises
        ------
        ProtocolError
            If ``version`` does not follow the last one published.
        """
        if version != self._published + 1:
            raise ProtocolError(
                f"worker {self.me} published version {version} after {self._published}"
            )
        self._published = version
        sends = []
        for j in self.out_peers:
            box = self._outbox[j]
            if self.staleness:
                box.clear()  # a newer version supersedes what the peer has not taken yet
            box.append((version, payload))
            sends += self._release(j)
        return sends

    def on_ack(self, peer: int, version: int) -> list[Send]:
        """``peer`` consumed ``version``: the next queued version for it, if any.

        Raises
        ------
        ProtocolError
            If ``peer`` is no out-peer or ACKs a version that is not in flight.
        """
        if peer not in self._in_flight:
            raise ProtocolError(f"worker {self.me} got an ACK from {peer}, which is not an out-peer")
        if self._in_flight[peer] != version:
            raise ProtocolError(
                f"worker {self.me} got ACK {version} from {peer} while version "
                f"{self._in_flight[peer]} was in flight"
            )
        self._in_flight[peer] = None
        return self._release(peer)

    def _release(self, j: int) -> list[Send]:
        box = self._outbox[j]
        if self._in_flight[j] is not None or not box:
            return []
        version, payload = box.popleft()
        self._in_flight[j] = version
        return [Send("notify", j, version, payload)]

    def pending(self) -> dict[int, int]:
        """Versions published but not yet ACKed, per out-peer (queued plus in flight)."""
        return {j: len(self._outbox[j]) + (self._in_flight[j] is not None) for j in self.out_peers}

    # -- receiver ----------------------------------------------------------
    def on_notify(self, peer: int, version: int, payload: Any) -> None:
        """Store a version ``peer`` sent.

        Raises
        ------
        ProtocolError
            If ``peer`` is no in-peer, sent a second version before this
            worker ACKed the first, or its versions are out of order (strict:
            not the next one; stale: not newer than the last).
        """
        if peer not in self._inbox:
            raise ProtocolError(f"worker {self.me} got a version from {peer}, which is not an in-peer")
        box = self._inbox[peer]
        if box:
            raise ProtocolError(
                f"worker {self.me} got version {version} from {peer} before ACKing version {box[0][0]}"
            )
        last = self._last[peer]
        previous = -1 if last is None else last[0]
        if (self.staleness == 0 and version != previous + 1) or version <= previous:
            raise ProtocolError(
                f"worker {self.me} got version {version} from {peer} after version {previous}"
                + (" (a version was lost)" if version > previous + 1 else "")
            )
        box.append((version, payload))

    def missing(self, round: int, *, fresh: bool = False) -> list[int]:
        """In-peers whose version is still needed to reduce in ``round``.

        With ``fresh=True``, in-peers that have not delivered version
        ``round`` yet (under staleness a reduce may go on without them; a
        worker may still prefer to wait a little for them).
        """
        need = max(round - (0 if fresh else self.staleness), 0)  # at least one version of every peer
        out = []
        for j in self.in_peers:
            box = self._inbox[j]
            if self.staleness == 0:
                if not box or box[0][0] != round:
                    out.append(j)
                continue
            newest = box[-1][0] if box else (self._last[j][0] if self._last[j] is not None else -1)
            if newest < need:
                out.append(j)
        return out

    def consume(self, round: int) -> tuple[dict[int, tuple[int, Any]], list[Send]]:
        """Take one version from every in-peer for the reduce of ``round``.

        Returns
        -------
        versions : dict
            ``peer -> (version, payload)``.
        acks : list of Send
            The ACKs to send (one per version consumed for the first time).

        Raises
        ------
        ProtocolError
            If a needed version is missing (call :meth:`missing` first).
        """
        missing = self.missing(round)
        if missing:
            raise ProtocolError(f"worker {self.me} cannot reduce round {round}: waiting on {missing}")
        versions: dict[int, tuple[int, Any]] = {}
        acks = []
        for j in self.in_peers:
            box = self._inbox[j]
            if box:
                entry = box.popleft()
                acks.append(Send("ack", j, entry[0]))
                self._last[j] = entry
            else:
                entry = self._last[j]
            versions[j] = entry
            self.consumed.append((round, j, entry[0]))
        return versions, acks
