"""Logistic regression (binary and multinomial) fitted by coded rounds."""

from __future__ import annotations

from functools import partial
from numbers import Real
from typing import Any

import numpy as np
from dask_quorum.pipeline import is_dask_input, weigh_classes
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets

from ._base import QuorumLinearModel


def _scores(block: Any, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Decision values of rows: ``(rows,)`` for two classes, ``(rows, n_classes)`` for more."""
    scores = np.asarray(block @ coef.T) + intercept
    return scores[:, 0] if scores.shape[1] == 1 else scores


def _proba(scores: np.ndarray) -> np.ndarray:
    if scores.ndim == 1:
        return np.column_stack([expit(-scores), expit(scores)])
    return softmax(scores, axis=1)


def _log_proba(scores: np.ndarray) -> np.ndarray:
    if scores.ndim == 1:
        return np.column_stack([log_expit(-scores), log_expit(scores)])
    return log_softmax(scores, axis=1)


def _labels(scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
    index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
    return classes[index]


def _block(block: np.ndarray, coef: np.ndarray, intercept: np.ndarray, what: str, classes: np.ndarray) -> np.ndarray:
    """One of decision/proba/log-proba/labels of one block of rows (run on the workers for dask input)."""
    scores = _scores(block, coef, intercept)
    if what == "decision":
        return scores
    if what == "proba":
        return _proba(scores)
    if what == "log_proba":
        return _log_proba(scores)
    return _labels(scores, classes)


class LogisticRegression(ClassifierMixin, QuorumLinearModel):
    """L2-penalised logistic regression whose gradient rounds tolerate stragglers.

    Minimises the same objective as :class:`sklearn.linear_model.LogisticRegression`
    with ``penalty="l2"``::

        sum_i w_i loss(y_i, X_i @ coef + intercept) / sum_i w_i + ||coef||^2 / (2 * C * sum_i w_i)

    with the binary logistic loss for two classes and the multinomial
    (softmax) loss for more; ``w_i`` is ``sample_weight`` times the weight
    of the row's class (1 without either). Dask arrays and dataframes are
    fitted where they live: validated by reductions on the cluster,
    partitioned on the workers, never gathered on the client. Every loss and gradient evaluation is one round
    on the Dask cluster: rows are split into one partition per worker, the
    partitions are placed redundantly by the chosen gradient code, and each
    round goes on with the first sufficient set of workers. The driver runs
    L-BFGS on the decoded sums.

    Parameters
    ----------
    C : float, default=1.0
        Inverse of the regularisation strength; must be positive.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes, multiplied into the rows' weights:
        ``{label: weight}``, or ``"balanced"`` for
        ``n_samples / (n_classes * bincount(y))`` (with ``sample_weight``,
        the weighted counts; for dask input counted on the cluster).
    fit_intercept : bool, default=True
        Fit an (unpenalised) intercept.
    max_iter : int, default=100
        Maximum number of L-BFGS iterations; with ``scheme="asap"``, of
        rounds (one local step each: fits take hundreds).
    tol : float, default=1e-4
        Stop when the largest component of the gradient (with ``asap``: of
        every worker's tracked gradient) is at most ``tol``.
    scheme : {"sync", "uncoded", "frc", "cyclic", "expander", "asap"} or None, default=None
        How rounds tolerate stragglers. ``sync`` waits for every worker;
        ``uncoded`` ignores the ``redundancy - 1`` slowest workers and rescales
        (biased); ``frc`` and ``cyclic`` decode exactly from any
        ``n_workers - redundancy + 1`` workers; ``expander`` decodes
        approximately. ``asap`` has no driver barrier at all: every worker
        keeps a replica of the parameters, takes one local gradient-tracking
        step per round and averages with ``ceil(log2 n)`` peers under the
        NOTIFY-ACK protocol; the model is the average of the replicas (see
        :mod:`dask_quorum.pipeline.asap.fit`). None uses ``quorum.scheme``
        from the dask config.
    redundancy : int or None, default=None
        Workers holding each partition. None uses ``quorum.redundancy``,
        capped at the number of workers. Must be None with ``asap``.
    staleness : int, default=0
        ``asap`` only: how many rounds a worker may run ahead of a slow
        in-peer, reducing with that peer's latest version instead of waiting
        for the fresh one. 0 is strict NOTIFY-ACK.
    random_state : int, RandomState instance or None, default=None
        Seeds the construction of the randomised codes (cyclic, expander).
    client : distributed.Client or None, default=None
        The cluster to run on. None uses the default client, or else an
        embedded :class:`~distributed.LocalCluster` (``quorum.local-cluster``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : int
        L-BFGS iterations run.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when ``X`` has string column names.
    history_ : xarray.Dataset
        One entry per round: ``loss`` (objective), ``wall_time``, ``elapsed``,
        ``n_responders``, ``decode_error``, ``responded``, ``busy`` and
        ``member`` (round x worker), ``waited_on``, ``stop``. Workers lost
        (died or hung) or taken in while the fit ran are listed in
        ``attrs["lost_workers"]`` and ``attrs["joined_workers"]``, with the
        round of each change in ``attrs["membership"]``; ``worker`` then
        holds every worker the fit used.
        ``bytes_sent`` and ``bytes_max_node``: payload bytes of the round
        (parameters shipped plus results returned) and the most through one
        node (the driver). With ``asap`` the rounds are the workers' local
        steps: ``loss`` (mean local objective at the replicas),
        ``consensus_error``, ``residual``, ``elapsed``, ``wall_time``,
        ``bytes_sent``, ``bytes_max_node``, ``stale_reduces``, and per worker
        ``compute`` and ``wait``.

    See Also
    --------
    sklearn.linear_model.LogisticRegression : The single-machine reference.
    LinearRegression : Least squares on the same engine.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import scale
    >>> from dask_quorum import LogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = LogisticRegression(scheme="cyclic").fit(scale(X), y)  # doctest: +SKIP
    >>> clf.score(scale(X), y)  # doctest: +SKIP
    0.98...
    """

    _parameter_constraints: dict = {
        **QuorumLinearModel._parameter_constraints,
        "C": [Interval(Real, 0, None, closed="neither")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self,
        C: float = 1.0,
        *,
        class_weight: dict | str | None = None,
        fit_intercept: bool = True,
        max_iter: int = 100,
        tol: float = 1e-4,
        scheme: str | None = None,
        redundancy: int | None = None,
        staleness: int = 0,
        random_state: Any = None,
        client: Any = None,
    ) -> None:
        super().__init__(
            fit_intercept=fit_intercept,
            max_iter=max_iter,
            tol=tol,
            scheme=scheme,
            redundancy=redundancy,
            staleness=staleness,
            random_state=random_state,
            client=client,
        )
        self.C = C
        self.class_weight = class_weight

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LogisticRegression:
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array, dask dataframe} of shape (n_samples, n_features)
            NumPy, pandas or CSR input is partitioned on the driver. A dask
            array or dataframe (numeric columns) stays on the cluster: it is
            validated there (NaN, infinity, shapes, the classes, by
            reductions) and its row partitions are built on the workers.
        y : array-like, dask array or dask series of shape (n_samples,)
            Class labels; at least two classes.
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Non-negative row weights; multiplied by ``class_weight``.

        Returns
        -------
        self : LogisticRegression
        """
        X, y, sample_weight = self._validate_fit(X, y, sample_weight, classifier=True)
        if y is None:  # dask input: the classes were computed on the cluster
            check_classification_targets(X.classes)
            self.classes_ = X.classes
        else:
            check_classification_targets(y)
            self.classes_, y = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                "LogisticRegression needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {self.classes_[0]!r}"
            )
        if y is None:
            X = weigh_classes(self._client(), X, self.class_weight)
            X = X.encoded("binary" if n_classes == 2 else "multiclass")
        elif self.class_weight is not None:
            weights = compute_class_weight(
                self.class_weight, classes=self.classes_, y=self.classes_[y], sample_weight=sample_weight
            )
            base = np.ones(X.shape[0]) if sample_weight is None else sample_weight
            sample_weight = base * weights[y]
        l2 = 1.0 / (self.C * self._weight_sum(X, sample_weight))
        if n_classes == 2:
            y = None if y is None else y.astype(np.float64)
            coef, intercept = self._fit_rounds(X, y, "logistic", 1, l2, sample_weight)
        else:
            y = None if y is None else y.astype(np.intp)
            coef, intercept = self._fit_rounds(X, y, "multinomial", n_classes, l2, sample_weight)
        self.coef_ = np.ascontiguousarray(coef.T)
        self.intercept_ = np.array(intercept, dtype=np.float64)
        return self

    def _on_rows(self, X: Any, what: str, n_columns: int | None, dtype: Any) -> Any:
        fn = partial(_block, coef=self.coef_, intercept=self.intercept_, what=what, classes=self.classes_)
        return self._map_rows(X, fn, n_columns, dtype)

    def _binary(self) -> bool:
        return self.coef_.shape[0] == 1

    def decision_function(self, X: Any) -> Any:
        """Confidence scores: the signed margin (binary) or one score per class.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array, dask dataframe} of shape (n_samples, n_features)

        Returns
        -------
        ndarray or dask array of shape (n_samples,) or (n_samples, n_classes)
            A lazy dask array with the row chunks of dask ``X``.
        """
        if is_dask_input(X):
            return self._on_rows(X, "decision", None if self._binary() else len(self.classes_), np.float64)
        scores = self._decision(X)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, columns in the order of ``classes_``.

        Returns
        -------
        ndarray or dask array of shape (n_samples, n_classes)
            A lazy dask array with the row chunks of dask ``X``.
        """
        if is_dask_input(X):
            return self._on_rows(X, "proba", len(self.classes_), np.float64)
        return _proba(self.decision_function(X))

    def predict_log_proba(self, X: Any) -> Any:
        """Logarithm of :meth:`predict_proba`, computed without underflow.

        Returns
        -------
        ndarray or dask array of shape (n_samples, n_classes)
        """
        if is_dask_input(X):
            return self._on_rows(X, "log_proba", len(self.classes_), np.float64)
        return _log_proba(self.decision_function(X))

    def predict(self, X: Any) -> Any:
        """Most probable class of each sample.

        Returns
        -------
        ndarray or dask array of shape (n_samples,)
            A lazy dask array with the row chunks of dask ``X``.
        """
        if is_dask_input(X):
            return self._on_rows(X, "labels", None, self.classes_.dtype)
        return _labels(self.decision_function(X), self.classes_)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of :meth:`predict` (on dask ``X``: reduced on the cluster).

        Returns
        -------
        float
        """
        if is_dask_input(X):
            return self._score_on_cluster("accuracy", X, y, sample_weight)
        return super().score(X, y, sample_weight)
