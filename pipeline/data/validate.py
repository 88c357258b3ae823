"""Validating a dask collection's rows where they live.

:func:`check_dask_input` checks ``X``, ``y`` and ``sample_weight`` given as
dask arrays, dataframes or series the way scikit-learn's ``validate_data``
checks NumPy input, without moving rows to the client: the shapes and dtypes
are read from the collections' metadata, and everything that needs the
values (unknown chunk sizes, NaN and infinity, negative weights, the sum of
the weights, the classes) is computed as reductions on the cluster, in one
computation with a deadline (:func:`~dask_quorum.pipeline.data.compute_within`).
A problem found there is reported by scikit-learn's own check run on a tiny
stand-in array with the same problem, so the messages are the ones NumPy
input gets. :func:`weigh_classes` turns ``class_weight`` into one weight per
class (``"balanced"`` from class counts computed on the cluster).

The result, :class:`DaskRows`, still holds lazy collections; its
:meth:`DaskRows.partition_source` builds the row partitions on the workers
(:mod:`~dask_quorum.pipeline.data.partitions`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
from dask.base import is_dask_collection
from distributed import Client
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from sklearn.utils import check_array, check_consistent_length, column_or_1d
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import _check_sample_weight, check_X_y, validate_data

from dask_quorum import config

from ..engine.waits import compute_within

logger = logging.getLogger(__name__)

#: dtypes scikit-learn keeps as they are; anything else becomes float64
FLOATS = (np.dtype(np.float64), np.dtype(np.float32))

__all__ = ["DaskRows", "as_dask_array", "check_dask_input", "is_dask_input", "weigh_classes"]


def is_dask_input(*arrays: Any) -> bool:
    """Whether any of ``arrays`` is a dask collection (array, dataframe, series)."""
    return any(is_dask_collection(a) for a in arrays)


@dataclass(frozen=True)
class DaskRows:
    """Validated rows of dask collections, still lazy (built by :func:`check_dask_input`).

    Attributes
    ----------
    X : dask.array.Array
        ``(n_samples, n_features)`` with known row chunks, cast (lazily) to ``dtype``.
    y : dask.array.Array
        ``(n_samples,)``: targets, or labels of a classifier.
    sample_weight : dask.array.Array or None
    n_samples, n_features : int
    dtype : numpy.dtype
        float64, or float32 when ``X`` is float32 (as scikit-learn keeps it).
    classes : ndarray or None
        Sorted labels (classifiers).
    class_counts : ndarray or None
        Rows of each class, or their summed weights with ``sample_weight``
        (set by :func:`weigh_classes`).
    class_weight : ndarray or None
        Weight of each class, multiplied into the rows' weights (:func:`weigh_classes`).
    weight_sum : float
        Sum of the rows' weights (``n_samples`` without weights).
    target : {"continuous", "binary", "multiclass"}
        How the partitions encode ``y``: float targets, 0/1 floats of
        ``classes[1]``, or indices into ``classes``.
    """

    X: Any
    y: Any
    sample_weight: Any
    n_samples: int
    n_features: int
    dtype: np.dtype
    classes: np.ndarray | None = None
    class_counts: np.ndarray | None = None
    class_weight: np.ndarray | None = None
    weight_sum: float = 0.0
    target: str = "continuous"

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_samples, n_features)``."""
        return (self.n_samples, self.n_features)

    @property
    def weighted(self) -> bool:
        """Whether the rows carry weights (sample or class weights)."""
        return self.sample_weight is not None or self.class_weight is not None

    def encoded(self, target: str) -> DaskRows:
        """The same rows with ``y`` encoded as ``target`` in the partitions."""
        if target not in ("continuous", "binary", "multiclass"):
            raise ValueError(f"target must be 'continuous', 'binary' or 'multiclass', got {target!r}")
        if target != "continuous" and self.classes is None:
            raise ValueError(f"target {target!r} needs the classes: validate with classifier=True")
        return dataclasses.replace(self, target=target)

    def partition_source(self, client: Client, n_partitions: int) -> Any:
        """The rows in ``n_partitions`` contiguous partitions built on the workers.

        Returns a :class:`~dask_quorum.pipeline.data.CollectionPartitions`
        (what :func:`~dask_quorum.pipeline.engine.fit_by_rounds` places).
        """
        from .partitions import CollectionPartitions

        return CollectionPartitions(self, n_partitions)


def as_dask_array(obj: Any, name: str) -> da.Array:
    """A dask array of a dask array, dataframe or series (row chunks may be unknown).

    Raises
    ------
    ValueError
        For dataframe columns that are not numeric (naming them).
    TypeError
        For a collection of another kind.
    """
    if isinstance(obj, da.Array):
        return obj
    if isinstance(obj, dd.DataFrame):
        bad = [str(c) for c, t in obj.dtypes.items() if not (is_numeric_dtype(t) or is_bool_dtype(t))]
        if bad:
            raise ValueError(
                f"{name} has non-numeric columns {bad} (categorical, string or object); encode "
                "them first, for instance with dask_ml.preprocessing.Categorizer followed by "
                "dask_ml.preprocessing.DummyEncoder"
            )
        return obj.to_dask_array()
    if isinstance(obj, dd.Series):
        return obj.to_dask_array()
    raise TypeError(
        f"{name} must be a dask array, dataframe or series (or a NumPy/pandas/SciPy object), "
        f"got {type(obj).__name__}"
    )


def _with_known_rows(arr: da.Array, lengths: Any) -> da.Array:
    """``arr`` with its row chunks set to the computed ``lengths``."""
    rows = tuple(int(n) for n in lengths)
    return da.Array(arr.dask, arr.name, chunks=(rows, *arr.chunks[1:]), meta=arr._meta)


def _block_length(block: np.ndarray) -> np.ndarray:
    return np.array([block.shape[0]])


def _row_lengths(arr: da.Array) -> Any:
    """A dask array of the lengths of the row chunks when they are unknown, else None.

    (An array, not delayed objects: a mix of both in one computation can
    clash in the optimised graph of a dataframe's array.)
    """
    if not any(np.isnan(c) for c in arr.chunks[0]):
        return None
    if arr.ndim > 1 and arr.numblocks[1] > 1:
        arr = arr.rechunk({1: -1})
    return arr.map_blocks(
        _block_length, dtype=np.int64, chunks=((1,) * arr.numblocks[0],),
        drop_axis=list(range(1, arr.ndim)), meta=np.empty((0,), dtype=np.int64),
    )


def with_known_rows(client: Client, arr: da.Array, timeout: float) -> da.Array:
    """``arr`` with known row chunks (their lengths computed on the cluster if unknown)."""
    lengths = _row_lengths(arr)
    if lengths is None:
        return arr
    (values,) = compute_within(client, [lengths], timeout, "the lengths of the row chunks")
    return _with_known_rows(arr, values)


def _stand_in(shape: tuple[int, ...], value: float, dtype: Any = np.float64) -> np.ndarray:
    """A tiny array of ``shape`` (no memory for large shapes of zero width) filled with ``value``."""
    return np.full(shape, value, dtype=dtype)


def check_dask_input(
    client: Client,
    estimator: Any,
    X: Any,
    y: Any,
    sample_weight: Any = None,
    *,
    classifier: bool = False,
    y_numeric: bool = False,
) -> DaskRows:
    """Validate dask ``X``, ``y`` (and ``sample_weight``) as ``validate_data`` validates arrays.

    Sets ``estimator.n_features_in_`` (and ``feature_names_in_`` from a
    dataframe's columns) like ``validate_data(estimator, X, y)``.

    Parameters
    ----------
    client : distributed.Client
        Where the checks run.
    estimator : BaseEstimator
        Named in the messages and given ``n_features_in_``.
    X : dask array or dask dataframe of shape (n_samples, n_features)
        Numeric; integers and booleans become float64.
    y : dask array or dask series of shape (n_samples,), or array-like
    sample_weight : dask array or array-like of shape (n_samples,), optional
        Finite and non-negative, not all zero.
    classifier : bool, default=False
        Compute the sorted classes of ``y`` (and their counts).
    y_numeric : bool, default=False
        ``y`` holds numbers (regressors): cast to float64.

    Returns
    -------
    DaskRows

    Raises
    ------
    ValueError
        With scikit-learn's message: NaN or infinity in ``X``, ``y`` or the
        weights, inconsistent numbers of samples, no samples or no
        features, ``y`` not 1-D, negative or all-zero weights; non-numeric
        dataframe columns (named).
    TimeoutError
        When the checks do not finish within ``quorum.setup-timeout``.
    """
    timeout = config.get_timeout("setup-timeout")
    validate_data(estimator, X._meta if isinstance(X, dd.DataFrame) else X, reset=True, skip_check_array=True)
    Xa = as_dask_array(X, "X")
    if Xa.ndim != 2:
        check_array(_stand_in((1,) * Xa.ndim, 0.0), estimator=estimator, input_name="X")  # sklearn's "Expected 2D array"
        raise ValueError(f"Expected 2D array, got an array of {Xa.ndim} dimension(s) instead")
    if np.issubdtype(Xa.dtype, np.complexfloating):
        check_array(_stand_in((1, 1), 0.0, Xa.dtype), estimator=estimator, input_name="X")
    dtype = Xa.dtype if Xa.dtype in FLOATS else np.dtype(np.float64)
    Xa = Xa.astype(dtype) if Xa.dtype != dtype else Xa
    if Xa.numblocks[1] > 1:
        Xa = Xa.rechunk({1: -1})  # one block per row chunk
    ya = as_dask_array(y, "y") if is_dask_collection(y) else da.from_array(np.asarray(y))
    if ya.ndim == 2 and ya.shape[1] == 1:
        column_or_1d(_stand_in((1, 1), 0.0), warn=True)  # sklearn's DataConversionWarning
        ya = ya[:, 0]
    elif ya.ndim != 1:
        column_or_1d(np.broadcast_to(0.0, ya.shape))  # raises "y should be a 1d array"
    if y_numeric and ya.dtype.kind in "OUSb":
        ya = ya.astype(np.float64)
    wa = None
    if sample_weight is not None:
        wa = as_dask_array(sample_weight, "sample_weight") if is_dask_collection(sample_weight) else da.from_array(
            np.asarray(sample_weight, dtype=np.float64)
        )
        wa = wa.astype(np.float64) if wa.dtype != np.float64 else wa

    # -- one computation on the cluster: unknown lengths and every reduction
    pending: dict[str, Any] = {}
    for name, arr in (("X", Xa), ("y", ya), ("w", wa)):
        if arr is not None:
            lengths = _row_lengths(arr)
            if lengths is not None:
                pending[f"len_{name}"] = lengths
    if Xa.shape[1]:
        pending["X_nan"] = da.isnan(Xa).any()
        pending["X_inf"] = da.isinf(Xa).any()
    if ya.dtype.kind == "f":
        pending["y_nan"] = da.isnan(ya).any()
        pending["y_inf"] = da.isinf(ya).any()
    if classifier:
        pending["classes"] = da.unique(ya)
    if wa is not None:
        pending["w_nan"] = da.isnan(wa).any()
        pending["w_inf"] = da.isinf(wa).any()
        pending["w_neg"] = (wa < 0).any()
        pending["w_sum"] = wa.sum()
        pending["w_nonzero"] = (wa != 0).any()
    names = list(pending)
    values = dict(zip(names, compute_within(client, [pending[k] for k in names], timeout, "validating the dask input")))
    if "len_X" in values:
        Xa = _with_known_rows(Xa, values["len_X"])
    if "len_y" in values:
        ya = _with_known_rows(ya, values["len_y"])
    if wa is not None and "len_w" in values:
        wa = _with_known_rows(wa, values["len_w"])
    n, d = int(Xa.shape[0]), int(Xa.shape[1])

    # -- scikit-learn's checks, in validate_data's order, on stand-ins
    if n < 1 or d < 1:
        check_array(np.empty((n, d)), estimator=estimator, input_name="X")
    if values.get("X_nan"):
        check_array(_stand_in((1, 1), np.nan, dtype), estimator=estimator, input_name="X")
    if values.get("X_inf"):
        check_array(_stand_in((1, 1), np.inf, dtype), estimator=estimator, input_name="X")
    for flag, value in (("y_nan", np.nan), ("y_inf", np.inf)):
        if values.get(flag):
            check_X_y(np.zeros((1, 1)), _stand_in((1,), value, ya.dtype), estimator=estimator, y_numeric=y_numeric)
    check_consistent_length(np.empty((n, 0)), np.empty((int(ya.shape[0]), 0)))
    weight_sum = float(n)
    if wa is not None:
        if wa.ndim != 1 or int(wa.shape[0]) != n:
            raise ValueError(f"sample_weight.shape == {tuple(int(s) for s in wa.shape)}, expected {(n,)}!")
        for flag, value in (("w_nan", np.nan), ("w_inf", np.inf), ("w_neg", -1.0)):
            if values[flag]:
                _check_sample_weight(_stand_in((1,), value), np.zeros((1, 1)), ensure_non_negative=True)
        if not values["w_nonzero"]:
            _check_sample_weight(_stand_in((1,), 0.0), np.zeros((1, 1)), ensure_non_negative=True)
        weight_sum = float(values["w_sum"])
    classes = None
    if classifier:
        classes = np.asarray(values["classes"])
    logger.debug("validated dask input: %d x %d, %s, weight sum %g", n, d, dtype, weight_sum)
    return DaskRows(
        X=Xa, y=ya, sample_weight=wa, n_samples=n, n_features=d, dtype=np.dtype(dtype),
        classes=classes, weight_sum=weight_sum,
    )


def _label_index(block: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.searchsorted(classes, block)


def weigh_classes(client: Client, rows: DaskRows, class_weight: Any) -> DaskRows:
    """``rows`` whose weights include ``class_weight`` (dict or ``"balanced"``), as scikit-learn weighs them.

    ``"balanced"`` gives class ``k`` the weight ``sum(w) / (n_classes *
    sum of w over class k)``, the class sums computed on the cluster (a
    weighted bincount) when the rows carry sample weights.

    Raises
    ------
    ValueError
        Without classes, or with scikit-learn's message for a bad dict.
    """
    if class_weight is None:
        return rows
    if rows.classes is None:
        raise ValueError("class_weight needs the classes: validate with classifier=True")
    classes = rows.classes
    index = rows.y.map_blocks(_label_index, classes, dtype=np.intp)
    weights_of_rows = None if rows.sample_weight is None else rows.sample_weight.rechunk({0: rows.y.chunks[0]})
    (counts,) = compute_within(
        client,
        [da.bincount(index, weights=weights_of_rows, minlength=len(classes))],
        config.get_timeout("setup-timeout"),
        "counting the classes",
    )
    # class k stands for its (weighted) rows: sklearn's formula on the counts
    weights = compute_class_weight(class_weight, classes=classes, y=classes, sample_weight=np.asarray(counts))
    weight_sum = float(np.dot(weights, counts))
    return dataclasses.replace(
        rows, class_counts=np.asarray(counts, dtype=np.float64), class_weight=weights, weight_sum=weight_sum
    )
