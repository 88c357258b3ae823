"""Row partitions of a dask collection, built and kept on the workers.

Partition ``j`` holds rows ``[bounds[j], bounds[j + 1])`` with the bounds
:func:`~dask_quorum.pipeline.engine.row_partitions` uses for NumPy input
(:func:`partition_bounds`), so a fit sees the same partitions whichever
way its data came. Each partition is one task over the slices of the
collection's chunks (:func:`partition_tasks`): computed on the cluster, it
returns the NumPy block ``(X_j, y_j)`` or ``(X_j, y_j, w_j)``, with ``y``
encoded as the loss wants it and the class weights multiplied into ``w``.
The client only ever holds Futures.

:class:`CollectionPartitions` is the
:class:`~dask_quorum.pipeline.engine.placement.PartitionSource` of such
partitions. Every replica a :class:`~dask_quorum.pipeline.engine.Placement`
asks for is a copy made worker to worker under a key of its own
(:func:`~dask_quorum.pipeline.engine.placement.copy_futures`), from, in
order of preference:

1. a live replica of the same partition on another worker;
2. the partition as first computed (held only until every worker has its
   replicas: :meth:`CollectionPartitions.placed` releases it, which frees
   its memory while the scheduler keeps its graph);
3. the partition computed again from the collection's graph (Dask lineage),
   when no replica of it survives.

Never from the driver. :attr:`CollectionPartitions.stats` counts each.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from dask import delayed
from distributed import Client, Future

from ..engine.placement import PartitionSource, copy_futures
from .validate import DaskRows

logger = logging.getLogger(__name__)

__all__ = ["CollectionPartitions", "partition_bounds", "partition_tasks", "place_one_per_worker"]


def partition_bounds(n_samples: int, n_partitions: int) -> np.ndarray:
    """Row bounds of ``n_partitions`` contiguous partitions (as for NumPy input)."""
    return np.linspace(0, n_samples, n_partitions + 1).round().astype(int)


@dataclasses.dataclass(frozen=True)
class Encoding:
    """How a partition task turns its rows into the block a loss reads.

    Attributes
    ----------
    dtype : numpy.dtype
        Of ``X_j``.
    target : {"continuous", "binary", "multiclass"}
    classes : ndarray or None
    class_weight : ndarray or None
        One weight per class, multiplied into the rows' weights.
    weighted : bool
        Whether the block carries weights ``w_j``.
    """

    dtype: np.dtype
    target: str
    classes: np.ndarray | None
    class_weight: np.ndarray | None
    weighted: bool

    def __call__(self, X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, ...]:
        X = np.ascontiguousarray(X, dtype=self.dtype)
        y = np.asarray(y)
        index = None
        if self.target == "continuous":
            y = y.astype(np.float64)
        else:
            index = np.searchsorted(self.classes, y)
            y = index.astype(np.float64) if self.target == "binary" else index.astype(np.intp)
        if not self.weighted:
            return X, y
        w = np.ones(X.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
        if self.class_weight is not None:
            w = w * self.class_weight[index]
        return X, y, w


def _block(encoding: Encoding, X: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, ...]:
    return encoding(X, y, w)


def _encoding(rows: DaskRows) -> Encoding:
    return Encoding(
        dtype=rows.dtype,
        target=rows.target,
        classes=rows.classes,
        class_weight=rows.class_weight,
        weighted=rows.weighted,
    )


def partition_tasks(rows: DaskRows, n_partitions: int) -> list[Any]:
    """One delayed task per partition: the encoded NumPy block of its rows."""
    bounds = partition_bounds(rows.n_samples, n_partitions)
    encoding = _encoding(rows)
    tasks = []
    for a, b in itertools.pairwise(bounds):
        w = rows.sample_weight[a:b] if rows.sample_weight is not None else None
        tasks.append(delayed(_block, pure=True)(encoding, rows.X[a:b], rows.y[a:b], w))
    return tasks


def sample_rows(rows: DaskRows, index: np.ndarray) -> Any:
    """A delayed task of the encoded block of the rows ``index`` (sorted), without weights."""
    encoding = dataclasses.replace(_encoding(rows), weighted=False)
    return delayed(_block, pure=True)(encoding, rows.X[index], rows.y[index], None)


class CollectionPartitions(PartitionSource):
    """The row partitions of validated dask rows, placed without the driver.

    Parameters
    ----------
    rows : DaskRows
    n_partitions : int

    Attributes
    ----------
    tasks : list
        The delayed task of each partition (its lineage).
    units : ndarray
        Rows of each partition.
    stats : dict
        Replicas placed ``"computed"`` (from the first computation),
        ``"copied"`` (from a live replica) and ``"recomputed"`` (from the graph).
    """

    def __init__(self, rows: DaskRows, n_partitions: int) -> None:
        self.rows = rows
        self.tasks = partition_tasks(rows, n_partitions)
        self.units = np.diff(partition_bounds(rows.n_samples, n_partitions)).astype(float)
        self.stats = {"computed": 0, "copied": 0, "recomputed": 0}
        self._first: list[Future] | None = None
        self._settled = False

    def __len__(self) -> int:
        return len(self.tasks)

    def replicas(
        self,
        client: Client,
        address: str,
        indices: Sequence[int],
        live: Mapping[int, Sequence[tuple[str, Future]]],
        timeout: float,
    ) -> list[Future]:
        if self._first is None and not self._settled:
            # Every partition at once, in one graph: chunks shared by two
            # partitions are read once.
            self._first = client.compute(self.tasks)
        sources: list[Future] = []
        fresh: list[Future] = []
        for j in indices:
            alive = [(a, f) for a, f in live.get(j, ()) if f.status == "finished"]
            if alive:
                # Copy through a stand-in key on the holder (the same object
                # there, no memory): the worker that copies fetches the
                # stand-in, which goes away with it, and never a second
                # replica of the holder's key (which the Active Memory
                # Manager could then drop from the holder instead).
                holder, replica = alive[0]
                (proxy,) = copy_futures(client, [replica], holder, timeout)
                fresh.append(proxy)
                sources.append(proxy)
                self.stats["copied"] += 1
            elif self._first is not None and self._first[j].status in ("pending", "finished"):
                sources.append(self._first[j])
                self.stats["computed"] += 1
            else:
                # no replica survives: Dask recomputes the partition from its graph
                f = client.compute(self.tasks[j])
                fresh.append(f)
                sources.append(f)
                self.stats["recomputed"] += 1
                logger.info("partition %d has no live replica: recomputing it from its graph", j)
        try:
            return copy_futures(client, sources, address, timeout)
        finally:
            for f in fresh:
                f.release()

    def placed(self) -> None:
        """Release the first computation: the replicas are copies of their own."""
        first, self._first = self._first, None
        self._settled = True
        for f in first or ():
            f.release()

    def release(self) -> None:
        self.placed()


def place_one_per_worker(client: Client, rows: DaskRows, workers: Sequence[str], timeout: float) -> list[Future]:
    """Partition ``i`` of ``len(workers)`` on ``workers[i]``, each a copy under a key of its own.

    The caller holds (and in the end releases) the returned Futures; the
    ASAP fit hands their keys to its workers
    (:class:`~dask_quorum.pipeline.asap.InMemory`).
    """
    source = CollectionPartitions(rows, len(workers))
    try:
        return [source.replicas(client, address, [i], {}, timeout)[0] for i, address in enumerate(workers)]
    finally:
        source.release()
