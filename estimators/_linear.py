"""Least squares (optionally ridge-penalised) fitted by coded rounds."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import validate_data

from ._base import QuorumLinearModel


class LinearRegression(RegressorMixin, QuorumLinearModel):
    """Least-squares regression whose gradient rounds tolerate stragglers.

    Minimises the objective of :class:`sklearn.linear_model.Ridge`
    (ordinary least squares when ``alpha=0``)::

        ||y - X @ coef - intercept||^2 + alpha * ||coef||^2

    (scaled by ``1 / (2 * n_samples)`` internally, which does not move the
    minimum). Every loss and gradient evaluation is one coded round on the
    Dask cluster; the driver runs L-BFGS on the decoded sums.

    Parameters
    ----------
    alpha : float, default=0.0
        L2 penalty on the coefficients (not the intercept); non-negative.
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
    def fit(self, X: Any, y: Any) -> LinearRegression:
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : LinearRegression
        """
        X, y = validate_data(
            self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32], y_numeric=True
        )
        coef, intercept = self._fit_rounds(
            X, y.astype(np.float64), "squared", 1, self.alpha / X.shape[0]
        )
        self.coef_ = np.ascontiguousarray(coef[:, 0])
        self.intercept_ = float(intercept[0])
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self._decision(X)
