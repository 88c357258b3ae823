"""Placing data partitions on workers according to an encoding matrix.

Every replica of a partition is scattered under a key of its own and pinned
to its worker. Two replicas of one key would be merged back into one by the
Active Memory Manager (``ReduceReplicas``); distinct keys are left alone, so
the redundancy the code relies on survives.

Replicas are tracked by worker address, so that when the workers change
(one is lost, one joins) the replicas a worker already holds stay in place
and only the missing ones are placed. Where a new replica comes from is the
job of a :class:`PartitionSource`: payloads held by the driver are
scattered from it (:class:`DriverPartitions`, what a plain sequence of
payloads becomes); partitions of a dask collection are copied worker to
worker from a live replica, or recomputed from the collection's graph when
none survives (:class:`~dask_quorum.pipeline.data.CollectionPartitions`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from distributed import Client, Future

from .errors import WorkersLostError
from .membership import check_client
from .waits import wait_in_memory

logger = logging.getLogger(__name__)


class PartitionSource(ABC):
    """Where the replicas of ``len(source)`` partitions come from.

    :class:`Placement` asks its source for every replica it places, passing
    the replicas of the same partitions that are still in memory elsewhere,
    so that a source may copy one of those instead of starting afresh.
    """

    @abstractmethod
    def __len__(self) -> int:
        """The number of partitions."""

    @abstractmethod
    def replicas(
        self,
        client: Client,
        address: str,
        indices: Sequence[int],
        live: Mapping[int, Sequence[tuple[str, Future]]],
        timeout: float,
    ) -> list[Future]:
        """New replicas of partitions ``indices`` on worker ``address``, each under a key of its own.

        Parameters
        ----------
        client : distributed.Client
        address : str
            The worker that holds the replicas.
        indices : sequence of int
            Partitions to place there.
        live : mapping of int to sequence of (str, Future)
            Replicas of those partitions in memory on other workers now,
            with the worker holding each.
        timeout : float
            Seconds until the replicas must be in memory.

        Returns
        -------
        list of Future
            In the order of ``indices``, all finished.
        """

    def placed(self) -> None:
        """Called once every worker holds its replicas (a source may let go of its own copies)."""

    def release(self) -> None:
        """Let go of whatever the source holds on the cluster."""


class DriverPartitions(PartitionSource):
    """Payloads held by the driver (or Futures of data already on the cluster).

    Plain payloads are scattered from the driver to each worker; Futures
    are copied worker to worker (:func:`copy_futures`).
    """

    def __init__(self, payloads: Sequence[Any]) -> None:
        self.payloads = payloads

    def __len__(self) -> int:
        return len(self.payloads)

    def replicas(
        self,
        client: Client,
        address: str,
        indices: Sequence[int],
        live: Mapping[int, Sequence[tuple[str, Future]]],
        timeout: float,
    ) -> list[Future]:
        payloads = [self.payloads[j] for j in indices]
        if any(isinstance(p, Future) for p in payloads):
            return copy_futures(client, payloads, address, timeout)
        # hash=False: a fresh key per replica, even for equal payloads;
        # scatter returns once the data is on the worker.
        return client.scatter(payloads, workers=[address], hash=False, timeout=timeout)


class Placement:
    """Replicas of the partitions, held on the workers ``B`` assigns them to.

    Parameters
    ----------
    client : distributed.Client
    workers : sequence of str
        Worker addresses; worker ``i`` of the code runs on ``workers[i]``.
    B : ndarray of shape (n_workers, n_partitions)
        Encoding matrix: worker ``i`` holds partition ``j`` where ``B[i, j] != 0``.
    partitions : sequence or PartitionSource
        One payload per partition (any picklable object, or all Futures of
        data already on the cluster), or a :class:`PartitionSource`. Kept
        by reference so that :meth:`update` can place replicas that move,
        onto any worker.
    timeout : float
        Seconds to wait for the data to land on the workers.
    units : sequence of float, optional
        Work units (rows) of each partition; tasks declare the sum over the
        replicas they read so that latencies can be compared per unit.

    Attributes
    ----------
    columns : list of ndarray
        ``columns[i]`` are the partition indices worker ``i`` holds.

    Raises
    ------
    WorkersLostError
        When the replicas for a worker cannot be placed (it left the
        cluster, or did not take the data within ``timeout``); the error
        names it in ``lost``.
    """

    def __init__(
        self,
        client: Client,
        workers: Sequence[str],
        B: np.ndarray,
        partitions: Sequence[Any],
        *,
        timeout: float,
        units: Sequence[float] | None = None,
    ) -> None:
        if units is not None and len(units) != len(partitions):
            raise ValueError(f"{len(units)} units were given for {len(partitions)} partitions")
        if len(workers) != B.shape[0]:
            raise ValueError(
                f"the code has {B.shape[0]} workers but {len(workers)} addresses were given"
            )
        self.client = client
        self.workers = list(workers)
        self.source = partitions if isinstance(partitions, PartitionSource) else DriverPartitions(partitions)
        self.partitions = partitions
        self._units = np.ones(len(partitions)) if units is None else np.asarray(units, dtype=float)
        self.timeout = timeout
        self.columns: list[np.ndarray] = [np.array([], dtype=int)] * len(self.workers)
        # (worker address, partition) -> Future of the replica on that worker
        self._held: dict[tuple[str, int], Future] = {}
        self.update(B)

    @property
    def replicas(self) -> dict[tuple[int, int], Future]:
        """``(worker index, partition index) -> Future`` of every replica in use."""
        return {
            (i, int(j)): self._held[address, int(j)]
            for i, address in enumerate(self.workers)
            for j in self.columns[i]
        }

    def futures(self, i: int) -> list[Future]:
        """Worker ``i``'s replicas, in the order of ``columns[i]``."""
        address = self.workers[i]
        return [self._held[address, int(j)] for j in self.columns[i]]

    def mean_units(self) -> float:
        """Mean work units of a partition."""
        return float(self._units.mean())

    def units(self, i: int) -> float:
        """Work units worker ``i``'s replicas hold."""
        return float(self._units[self.columns[i]].sum())

    def total_units(self) -> float:
        """Work units of all partitions."""
        return float(self._units.sum())

    def holdings(self, workers: Sequence[str]) -> np.ndarray:
        """``held[r, j]``: worker ``workers[r]`` holds a live replica of partition ``j``."""
        held = np.zeros((len(workers), len(self.partitions)), dtype=bool)
        row = {address: r for r, address in enumerate(workers)}
        for (address, j), fut in self._held.items():
            if address in row and fut.status == "finished":
                held[row[address], j] = True
        return held

    def broken(self) -> list[str]:
        """Workers in use one of whose replicas is no longer in memory (lost with its worker)."""
        return [
            address
            for i, address in enumerate(self.workers)
            if any(self._held[address, int(j)].status != "finished" for j in self.columns[i])
        ]

    def update(self, B: np.ndarray, workers: Sequence[str] | None = None) -> int:
        """Re-place for a new encoding matrix (and workers), moving only what changed.

        Replicas the new ``B`` still has on the same worker stay where they
        are, whatever the worker's index; new ones are placed from the
        partitions given at construction; dropped ones are released.

        Parameters
        ----------
        B : ndarray of shape (n_workers, n_partitions)
        workers : sequence of str, optional
            The workers of the new code's rows; default: the current ones.

        Returns
        -------
        int
            The number of replicas placed.
        """
        workers = self.workers if workers is None else list(workers)
        n_workers, n_partitions = B.shape
        if n_workers != len(workers):
            raise ValueError(
                f"the code has {n_workers} workers but {len(workers)} addresses were given"
            )
        if n_partitions != len(self.partitions):
            raise ValueError(
                f"the code has {n_partitions} partitions but {len(self.partitions)} were given"
            )
        columns = [np.flatnonzero(B[i]) for i in range(n_workers)]
        wanted = {(address, int(j)) for address, cols in zip(workers, columns) for j in cols}
        moved = 0
        for address, cols in zip(workers, columns):
            new = [int(j) for j in cols if (address, int(j)) not in self._held]
            if new:
                futures = self._place(address, new)
                self._held.update({(address, j): f for j, f in zip(new, futures)})
                moved += len(new)
        for pair in set(self._held) - wanted:
            self._held.pop(pair).release()
        self.workers, self.columns = workers, columns
        self.source.placed()
        logger.debug("placed %d replicas (%d new) on %d workers", len(wanted), moved, n_workers)
        return moved

    def live(self, indices: Sequence[int], besides: str = "") -> dict[int, list[tuple[str, Future]]]:
        """``(worker, replica)`` of partitions ``indices`` in memory now (on workers other than ``besides``)."""
        wanted = {int(j) for j in indices}
        out: dict[int, list[tuple[str, Future]]] = {j: [] for j in wanted}
        for (address, j), fut in self._held.items():
            if j in wanted and address != besides and fut.status == "finished":
                out[j].append((address, fut))
        return out

    def _place(self, address: str, new: list[int]) -> list[Future]:
        try:
            return self.source.replicas(self.client, address, new, self.live(new, address), self.timeout)
        except (KeyError, TimeoutError, OSError) as exc:
            check_client(self.client, f"placing partitions on {address}")
            reason = "left the cluster" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            raise WorkersLostError(
                f"could not place {len(new)} partition(s) on worker {address}: {reason}",
                lost=[address],
            ) from exc

    def release(self) -> None:
        """Drop every replica (the scheduler forgets keys nobody holds)."""
        held, self._held = self._held, {}
        for f in held.values():
            f.release()
        self.source.release()


def _replica(payload: Any) -> Any:
    return payload


def copy_futures(client: Client, payloads: Sequence[Any], address: str, timeout: float) -> list[Future]:
    """Copies of payloads already on the cluster (Futures), each under a key of its own on ``address``.

    Partitions computed on the workers (the blocks of a dask collection)
    are placed without passing through the client. Every payload must be a
    Future. Raises the payload's own error if one failed, and TimeoutError
    when the copies are not in place within ``timeout`` seconds.
    """
    if not all(isinstance(p, Future) for p in payloads):
        raise TypeError("partitions must be all Futures or all plain payloads, not a mix")
    copies = [
        client.submit(_replica, p, workers=[address], allow_other_workers=False, pure=False)
        for p in payloads
    ]
    return wait_in_memory(copies, timeout, f"partitions not copied to {address}")
