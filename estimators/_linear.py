"""Least squares (optionally ridge-penalised) fitted by coded rounds."""

from __future__ import annotations

from functools import partial
from numbers import Real
from typing import Any

import numpy as np
from dask_quorum.pipeline import is_dask_input
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval

from ._base import QuorumLinearModel


def _predict_block(block: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    """Predicted targets of one block of rows (run on the workers for dask input)."""
    return block @ coef + intercept


class LinearRegression(RegressorMixin, QuorumLinearModel):
    """Least-squares regression whose gradient rounds tolerate stragglers.

    Minimises the objective of :class:`sklearn.linear_model.Ridge`
    (ordinary least squares when ``alpha=0``)::

        sum_i w_i (y_i - X_i @ coef - intercept)^2 + alpha * ||coef||^2

    (``w_i = 1`` without ``sample_weight``; scaled by
    ``1 / (2 * sum_i w_i)`` internally, which does not move the minimum).
    Every loss and gradient evaluation is one coded round on the Dask
    cluster; the driver runs L-BFGS on the decoded sums. Dask arrays and
    dataframes are fitted where they live: validated by reductions on the
    cluster, partitioned on the workers, never gathered on the client.

    Parameters
    ----------
    alpha : float, default=0.0
        L2 penalty on the coefficients (not the intercept); non-negative.
        As in :class:`~sklearn.linear_model.Ridge`, it is not scaled by the
        weights: with ``sample_weight`` the objective is the weighted sum of
        squares plus ``alpha * ||coef||^2``.
    fit_intercept : bool, default=True
    max_iter : int, default=100
        Maximum number of L-BFGS iterations (``asap``: of rounds).
    tol : float, default=1e-4
        Stop when the largest component of the gradient of the scaled
        objective is at most ``tol``.
    scheme : {"sync", "uncoded", "frc", "cyclic", "expander", "asap"} or None, default=None
        See :class:`LogisticRegression`.
    redundancy : int or None, default=None
        See :class:`LogisticRegression`.
    staleness : int, default=0
        See :class:`LogisticRegression` (``asap`` only).
    random_state : int, RandomState instance or None, default=None
    client : distributed.Client or None, default=None

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    intercept_ : float
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
    history_ : xarray.Dataset
        See :class:`LogisticRegression`.

    See Also
    --------
    sklearn.linear_model.Ridge : The single-machine reference.
    """

    _parameter_constraints: dict = {
        **QuorumLinearModel._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        alpha: float = 0.0,
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
        self.alpha = alpha

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearRegression:
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array, dask dataframe} of shape (n_samples, n_features)
            NumPy, pandas or CSR input is partitioned on the driver. A dask
            array or dataframe (numeric columns) stays on the cluster: it is
            validated there and its row partitions are built on the workers.
        y : array-like, dask array or dask series of shape (n_samples,)
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Non-negative row weights (scikit-learn's weighted objective).

        Returns
        -------
        self : LinearRegression
        """
        X, y, sample_weight = self._validate_fit(X, y, sample_weight, classifier=False)
        if y is not None:
            y = y.astype(np.float64)
        l2 = self.alpha / self._weight_sum(X, sample_weight)
        coef, intercept = self._fit_rounds(X, y, "squared", 1, l2, sample_weight)
        self.coef_ = np.ascontiguousarray(coef[:, 0])
        self.intercept_ = float(intercept[0])
        return self

    def predict(self, X: Any) -> Any:
        """Predicted targets.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array, dask dataframe} of shape (n_samples, n_features)

        Returns
        -------
        ndarray or dask array of shape (n_samples,)
            A lazy dask array with the row chunks of dask ``X`` (one chunk
            per partition of a dask dataframe).
        """
        if is_dask_input(X):
            return self._map_rows(X, partial(_predict_block, coef=self.coef_, intercept=self.intercept_), None, np.float64)
        return self._decision(X)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R^2 of :meth:`predict` (on dask ``X``: reduced on the cluster).

        Returns
        -------
        float
        """
        if is_dask_input(X):
            return self._score_on_cluster("r2", X, y, sample_weight)
        return super().score(X, y, sample_weight)
