"""Logistic regression (binary and multinomial) fitted by coded rounds."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from ._base import QuorumLinearModel


class LogisticRegression(ClassifierMixin, QuorumLinearModel):
    """L2-penalised logistic regression whose gradient rounds tolerate stragglers.

    Minimises the same objective as :class:`sklearn.linear_model.LogisticRegression`
    with ``penalty="l2"``::

        mean_i loss(y_i, X_i @ coef + intercept) + ||coef||^2 / (2 * C * n_samples)

    with the binary logistic loss for two classes and the multinomial
    (softmax) loss for more. Every loss and gradient evaluation is one round
    on the Dask cluster: rows are split into one partition per worker, the
    partitions are placed redundantly by the chosen gradient code, and each
    round goes on with the first sufficient set of workers. The driver runs
    L-BFGS on the decoded sums.

    Parameters
    ----------
    C : float, default=1.0
        Inverse of the regularisation strength; must be positive.
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
    }

    def __init__(
        self,
        C: float = 1.0,
        *,
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> LogisticRegression:
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            NumPy, pandas, dask arrays (computed on the driver) or CSR.
        y : array-like of shape (n_samples,)
            Class labels; at least two classes.

        Returns
        -------
        self : LogisticRegression
        """
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                "LogisticRegression needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {self.classes_[0]!r}"
            )
        l2 = 1.0 / (self.C * X.shape[0])
        if n_classes == 2:
            coef, intercept = self._fit_rounds(X, y_index.astype(np.float64), "logistic", 1, l2)
        else:
            coef, intercept = self._fit_rounds(X, y_index.astype(np.intp), "multinomial", n_classes, l2)
        self.coef_ = np.ascontiguousarray(coef.T)
        self.intercept_ = np.array(intercept, dtype=np.float64)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Confidence scores: the signed margin (binary) or one score per class.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        scores = self._decision(X)
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return np.column_stack([expit(-scores), expit(scores)])
        return softmax(scores, axis=1)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Logarithm of :meth:`predict_proba`, computed without underflow.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return np.column_stack([log_expit(-scores), log_expit(scores)])
        return log_softmax(scores, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each sample.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]
