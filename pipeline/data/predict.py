"""Predictions on dask input, lazily, block by block; scores as cluster reductions.

:func:`map_rows` applies a fitted model's NumPy function (decision values,
probabilities, labels) to every row block of a dask array, or every
partition of a dask dataframe, and returns a lazy dask array with the
same row chunks. :func:`score_on_cluster` computes accuracy or R^2 of such
predictions as a few sums on the cluster: only scalars reach the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
from dask.base import is_dask_collection
from distributed import Client
from sklearn.utils import check_array

from dask_quorum import config

from ..engine.waits import compute_within
from .validate import as_dask_array, with_known_rows

logger = logging.getLogger(__name__)

__all__ = ["map_rows", "schema", "score_on_cluster"]


def schema(X: Any) -> Any:
    """What scikit-learn's ``validate_data(..., skip_check_array=True)`` reads of ``X``.

    A dask dataframe's empty pandas frame (its columns give the feature
    names); ``X`` itself for a dask array (its shape gives ``n_features``).
    """
    return X._meta if isinstance(X, dd.DataFrame) else X


def _apply(block: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    # the checks predict runs on NumPy input, on each block (NaN, inf, strings)
    block = check_array(block, dtype=[np.float64, np.float32], ensure_min_samples=0)
    return fn(block)


def map_rows(X: Any, fn: Callable[[np.ndarray], np.ndarray], *, n_columns: int | None, dtype: Any) -> da.Array:
    """``fn`` on every row block of ``X``, lazily.

    Parameters
    ----------
    X : dask array or dask dataframe of shape (n_samples, n_features)
    fn : callable
        Picklable ``fn(block (rows, n_features)) -> ndarray`` of shape
        ``(rows,)`` or ``(rows, n_columns)``, run on the workers.
    n_columns : int or None
        Columns of the result; None for one value per row.
    dtype : dtype
        Of the result.

    Returns
    -------
    dask.array.Array
        Row chunks of ``X`` (of the dataframe's partitions: unknown sizes).
    """
    arr = as_dask_array(X, "X")
    if arr.ndim != 2:
        raise ValueError(f"Expected 2D array, got an array of {arr.ndim} dimension(s) instead")
    if arr.numblocks[1] > 1:
        arr = arr.rechunk({1: -1})
    if n_columns is None:
        return arr.map_blocks(_apply, fn, dtype=dtype, drop_axis=1, chunks=(arr.chunks[0],),
                              meta=np.empty((0,), dtype=dtype))
    return arr.map_blocks(_apply, fn, dtype=dtype, chunks=(arr.chunks[0], (int(n_columns),)),
                          meta=np.empty((0, 0), dtype=dtype))


def _aligned(client: Client, pred: da.Array, other: Any, name: str, timeout: float) -> da.Array:
    """``other`` as a dask array with the row chunks of ``pred`` (computing unknown sizes)."""
    arr = as_dask_array(other, name) if is_dask_collection(other) else da.from_array(np.asarray(other))
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    arr = with_known_rows(client, arr, timeout)
    if arr.shape[0] != pred.shape[0]:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"{[int(arr.shape[0]), int(pred.shape[0])]}"
        )
    return arr.rechunk({0: pred.chunks[0]})


def score_on_cluster(
    client: Client,
    kind: str,
    pred: da.Array,
    y: Any,
    sample_weight: Any = None,
) -> float:
    """Accuracy (``kind="accuracy"``) or R^2 (``"r2"``) of lazy predictions, reduced on the cluster.

    Both as scikit-learn's ``accuracy_score`` and ``r2_score`` (weighted
    with ``sample_weight``; R^2 of constant targets is 1.0 for a perfect
    fit and 0.0 otherwise).

    Raises
    ------
    ValueError
        For another ``kind``, or when ``y`` and the predictions have
        different numbers of samples.
    """
    if kind not in ("accuracy", "r2"):
        raise ValueError(f"kind must be 'accuracy' or 'r2', got {kind!r}")
    timeout = config.get_timeout("round-timeout")
    pred = with_known_rows(client, pred, timeout)
    y = _aligned(client, pred, y, "y", timeout)
    if sample_weight is None:
        w = da.ones(pred.shape[0], chunks=pred.chunks[0])
    else:
        w = _aligned(client, pred, sample_weight, "sample_weight", timeout).astype(np.float64)
    if kind == "accuracy":
        hits, total = compute_within(client, [(w * (pred == y)).sum(), w.sum()], timeout, "the accuracy")
        return float(hits / total)
    yf = y.astype(np.float64)
    res, sw, swy, swy2 = compute_within(
        client,
        [(w * (yf - pred) ** 2).sum(), w.sum(), (w * yf).sum(), (w * yf * yf).sum()],
        timeout,
        "the R^2 score",
    )
    tot = swy2 - swy * swy / sw
    if tot <= 1e-12 * max(abs(swy2), 1e-300):
        return 1.0 if res == 0 else 0.0
    return float(1.0 - res / tot)
