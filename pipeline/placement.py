"""Placing data partitions on workers according to an encoding matrix.

Every replica of a partition is scattered under a key of its own and pinned
to its worker. Two replicas of one key would be merged back into one by the
Active Memory Manager (``ReduceReplicas``); distinct keys are left alone, so
the redundancy the code relies on survives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from distributed import Client, Future

logger = logging.getLogger(__name__)


class Placement:
    """Replicas of the partitions, held on the workers ``B`` assigns them to.

    Parameters
    ----------
    client : distributed.Client
    workers : sequence of str
        Worker addresses; worker ``i`` of the code runs on ``workers[i]``.
    B : ndarray of shape (n_workers, n_partitions)
        Encoding matrix: worker ``i`` holds partition ``j`` where ``B[i, j] != 0``.
    partitions : sequence
        One payload per partition (any picklable object). Kept by reference
        so that :meth:`update` can place replicas that move.
    timeout : float
        Seconds to wait for the data to land on the workers.
    units : sequence of float, optional
        Work units (rows) of each partition; tasks declare the sum over the
        replicas they read so that latencies can be compared per unit.

    Attributes
    ----------
    columns : list of ndarray
        ``columns[i]`` are the partition indices worker ``i`` holds.
    replicas : dict
        ``(worker index, partition index) -> Future`` of every replica.
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
        self.partitions = partitions
        self._units = np.ones(len(partitions)) if units is None else np.asarray(units, dtype=float)
        self.timeout = timeout
        self.columns: list[np.ndarray] = [np.array([], dtype=int)] * len(self.workers)
        self.replicas: dict[tuple[int, int], Future] = {}
        self.update(B)

    def futures(self, i: int) -> list[Future]:
        """Worker ``i``'s replicas, in the order of ``columns[i]``."""
        return [self.replicas[i, j] for j in self.columns[i]]

    def mean_units(self) -> float:
        """Mean work units of a partition."""
        return float(self._units.mean())

    def units(self, i: int) -> float:
        """Work units worker ``i``'s replicas hold."""
        return float(self._units[self.columns[i]].sum())

    def update(self, B: np.ndarray) -> int:
        """Re-place for a new encoding matrix, moving only what changed.

        Replicas the new ``B`` still has stay where they are; new ones are
        scattered; dropped ones are released.

        Returns
        -------
        int
            The number of replicas scattered.
        """
        n_workers, n_partitions = B.shape
        if n_workers != len(self.workers):
            raise ValueError(
                f"the code has {n_workers} workers but {len(self.workers)} addresses were given"
            )
        if n_partitions != len(self.partitions):
            raise ValueError(
                f"the code has {n_partitions} partitions but {len(self.partitions)} were given"
            )
        columns = [np.flatnonzero(B[i]) for i in range(n_workers)]
        wanted = {(i, int(j)) for i, cols in enumerate(columns) for j in cols}
        moved = 0
        for i, address in enumerate(self.workers):
            new = [int(j) for j in columns[i] if (i, int(j)) not in self.replicas]
            if new:
                # hash=False: a fresh key per replica, even for equal payloads;
                # scatter returns once the data is on the worker.
                futures = self.client.scatter(
                    [self.partitions[j] for j in new],
                    workers=[address],
                    hash=False,
                    timeout=self.timeout,
                )
                self.replicas.update({(i, j): f for j, f in zip(new, futures)})
                moved += len(new)
        for pair in set(self.replicas) - wanted:
            self.replicas.pop(pair).release()
        self.columns = columns
        logger.debug("placed %d replicas (%d new) on %d workers", len(wanted), moved, n_workers)
        return moved

    def release(self) -> None:
        """Drop every replica (the scheduler forgets keys nobody holds)."""
        replicas, self.replicas = self.replicas, {}
        for f in replicas.values():
            f.release()
