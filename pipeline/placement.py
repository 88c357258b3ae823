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
    """Replicas of the partitions, held on the workers ``code.B`` assigns them to.

    Parameters
    ----------
    client : distributed.Client
    workers : sequence of str
        Worker addresses; worker ``i`` of the code runs on ``workers[i]``.
    B : ndarray of shape (n_workers, n_partitions)
        Encoding matrix: worker ``i`` holds partition ``j`` where ``B[i, j] != 0``.
    partitions : sequence
        One payload per partition (any picklable object).
    timeout : float
        Seconds to wait for the data to land on the workers.

    Attributes
    ----------
    futures : list of list of distributed.Future
        ``futures[i]`` are worker ``i``'s replicas, in the order of
        :attr:`columns`.
    columns : list of ndarray
        ``columns[i]`` are the partition indices worker ``i`` holds.
    """

    def __init__(
        self,
        client: Client,
        workers: Sequence[str],
        B: np.ndarray,
        partitions: Sequence[Any],
        *,
        timeout: float,
    ) -> None:
        n_workers, n_partitions = B.shape
        if len(workers) != n_workers:
            raise ValueError(
                f"the code has {n_workers} workers but {len(workers)} addresses were given"
            )
        if len(partitions) != n_partitions:
            raise ValueError(
                f"the code has {n_partitions} partitions but {len(partitions)} were given"
            )
        self.client = client
        self.workers = list(workers)
        self.columns = [np.flatnonzero(B[i]) for i in range(n_workers)]
        self.futures: list[list[Future]] = []
        for address, cols in zip(self.workers, self.columns):
            replicas = [partitions[j] for j in cols]
            # hash=False: a fresh key per replica, even for equal payloads.
            # scatter returns once the data is on the worker.
            self.futures.append(
                client.scatter(replicas, workers=[address], hash=False, timeout=timeout)
                if replicas
                else []
            )
        logger.debug(
            "placed %d partitions as %d replicas on %d workers",
            n_partitions,
            sum(len(c) for c in self.columns),
            n_workers,
        )

    def release(self) -> None:
        """Drop every replica (the scheduler forgets keys nobody holds)."""
        futures = [f for fs in self.futures for f in fs]
        self.futures = [[] for _ in self.workers]
        for f in futures:
            f.release()
