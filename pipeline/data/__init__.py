"""Dask collections as the data of a fit: validated, partitioned and predicted where they live.

A fit on a dask array or dataframe never brings its rows to the client:

* :mod:`.validate`: :func:`check_dask_input` runs scikit-learn's input
  checks as reductions on the cluster (one computation, with a deadline)
  and returns lazy :class:`DaskRows`; :func:`weigh_classes` adds class
  weights (``"balanced"`` from a bincount on the cluster);
* :mod:`.partitions`: the row partitions, each a task computed on the
  workers, and :class:`CollectionPartitions`, the partition source a
  :class:`~dask_quorum.pipeline.engine.Placement` copies replicas from
  (worker to worker from a live replica, else recomputed from the graph);
* :mod:`.predict`: :func:`map_rows` (lazy predictions chunk-aligned with
  ``X``) and :func:`score_on_cluster` (accuracy, R^2 as reductions);
* every small computation goes through the engine's
  :func:`~dask_quorum.pipeline.engine.compute_within` (a deadline).

May import :mod:`~dask_quorum.pipeline.engine` (the placement's partition
sources) and :mod:`~dask_quorum.pipeline.cluster`.
"""

from .partitions import (
    CollectionPartitions,
    partition_bounds,
    partition_tasks,
    place_one_per_worker,
    sample_rows,
)
from .predict import map_rows, schema, score_on_cluster
from .validate import (
    DaskRows,
    as_dask_array,
    check_dask_input,
    is_dask_input,
    weigh_classes,
    with_known_rows,
)

__all__ = [
    "CollectionPartitions",
    "DaskRows",
    "as_dask_array",
    "check_dask_input",
    "is_dask_input",
    "map_rows",
    "partition_bounds",
    "partition_tasks",
    "place_one_per_worker",
    "sample_rows",
    "schema",
    "score_on_cluster",
    "weigh_classes",
    "with_known_rows",
]
