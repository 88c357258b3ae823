"""Shared machinery of the dask-quorum linear models."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from dask_quorum.pipeline import (
    SCHEMES,
    check_dask_input,
    fit_asap,
    fit_by_rounds,
    get_client,
    is_dask_input,
    map_rows,
    schema,
    score_on_cluster,
    worker_addresses,
)
from distributed import Client
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    check_random_state,
    validate_data,
)

from dask_quorum import config

from ._losses import GLMPartial, PenalisedMean

#: Constraints of the engine's parameters, shared by every estimator.
ENGINE_CONSTRAINTS: dict = {
    "scheme": [StrOptions(set(SCHEMES) | {"auto", "asap"}), None],
    "redundancy": [Interval(Integral, 1, None, closed="left"), None],
    "staleness": [Interval(Integral, 0, None, closed="left")],
    "random_state": ["random_state"],
    "client": [Client, None],
}


def check_asap_parameters(scheme: str, staleness: int, redundancy: int | None) -> None:
    """``staleness`` belongs to ``scheme="asap"``, ``redundancy`` to the coded schemes.

    Raises
    ------
    ValueError
        On ``staleness`` with another scheme, or ``redundancy`` with ``asap``
        (which places every partition once).
    """
    if scheme != "asap" and staleness:
        raise ValueError(f"staleness={staleness} applies to scheme='asap' only; this fit uses {scheme!r}")
    if scheme == "asap" and redundancy is not None:
        raise ValueError(
            f"redundancy={redundancy} applies to the coded schemes; scheme='asap' places "
            "each partition once (use redundancy=None)"
        )


class QuorumLinearModel(BaseEstimator):
    """Base of the linear models fitted by coded rounds on a Dask cluster.

    Subclasses validate their input (:meth:`_validate_fit`), call
    :meth:`_fit_rounds` and turn the fitted matrix into ``coef_`` and
    ``intercept_``. Dask input (arrays, dataframes) goes to the engine's
    data layer (:func:`~dask_quorum.pipeline.data.check_dask_input`) and
    stays on the cluster; NumPy, pandas and SciPy input is validated by
    scikit-learn and partitioned on the driver.
    """

    _parameter_constraints: dict = {
        "fit_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        **ENGINE_CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        fit_intercept: bool = True,
        max_iter: int = 100,
        tol: float = 1e-4,
        scheme: str | None = None,
        redundancy: int | None = None,
        staleness: int = 0,
        random_state: Any = None,
        client: Client | None = None,
    ) -> None:
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.scheme = scheme
        self.redundancy = redundancy
        self.staleness = staleness
        self.random_state = random_state
        self.client = client

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- fitting --------------------------------------------------------
    def _client(self) -> Client:
        """The client this estimator runs on (``client``, the default one, or an embedded cluster)."""
        return get_client(self.client)

    def _resolve_code(self, client: Client) -> tuple[str, int]:
        """The scheme and redundancy this fit uses (``None`` -> ``quorum.*`` config)."""
        scheme = self.scheme if self.scheme is not None else config.get("scheme")
        if scheme not in (*SCHEMES, "auto"):
            raise ValueError(
                f"quorum.scheme must be one of {sorted((*SCHEMES, 'auto'))}, got {scheme!r}"
            )
        if self.redundancy is not None:
            return scheme, int(self.redundancy)
        # The configured default adapts to small clusters; an explicit value does not.
        n_workers = len(worker_addresses(client))
        return scheme, max(1, min(int(config.get("redundancy")), n_workers))

    def _validate_fit(self, X: Any, y: Any, sample_weight: Any, *, classifier: bool) -> tuple[Any, Any, Any]:
        """``(X, y, sample_weight)`` checked as scikit-learn checks them.

        For dask ``X``: ``(DaskRows, None, None)``, the rows still on the
        cluster (the weights are part of the rows). Otherwise NumPy/CSR
        ``X``, ``y`` and float64 weights (or None).
        """
        if is_dask_input(X):
            rows = check_dask_input(
                self._client(), self, X, y, sample_weight, classifier=classifier, y_numeric=not classifier
            )
            return rows, None, None
        X, y = validate_data(
            self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32], y_numeric=not classifier
        )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        return X, y, sample_weight

    @staticmethod
    def _weight_sum(X: Any, sample_weight: np.ndarray | None) -> float:
        """What the summed loss is divided by: the rows, or the sum of their weights."""
        if hasattr(X, "weight_sum"):
            return float(X.weight_sum)
        return float(X.shape[0]) if sample_weight is None else float(np.sum(sample_weight))

    def _fit_rounds(
        self,
        X: Any,
        y: np.ndarray | None,
        loss: str,
        n_outputs: int,
        l2: float,
        sample_weight: np.ndarray | None = None,
    ) -> np.ndarray:
        random_state = check_random_state(self.random_state)
        client = get_client(self.client)
        partial = GLMPartial(loss, X.shape[1], n_outputs, bool(self.fit_intercept))
        objective = PenalisedMean(partial, self._weight_sum(X, sample_weight), l2)
        scheme = self.scheme if self.scheme is not None else config.get("scheme")
        check_asap_parameters(scheme, self.staleness, self.redundancy)
        if scheme == "asap":
            return self._fit_asap(client, X, y, partial, objective, l2, random_state, sample_weight)
        scheme, redundancy = self._resolve_code(client)
        fitted = fit_by_rounds(
            client,
            X,
            y,
            partial,
            objective,
            np.zeros(partial.n_params),
            scheme=scheme,
            redundancy=redundancy,
            random_state=random_state,
            max_iter=self.max_iter,
            tol=self.tol,
            sample_weight=sample_weight,
        )
        result = fitted.result
        if not result.converged:
            warnings.warn(
                f"{type(self).__name__} did not converge after {result.n_iter} iterations "
                f"({result.message}); increase max_iter (now {self.max_iter}), scale the "
                "data, or use an exact scheme (sync, frc, cyclic).",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.n_iter_ = result.n_iter
        self.history_ = fitted.history
        return partial.unpack(result.x)

    def _fit_asap(
        self,
        client: Client,
        X: Any,
        y: np.ndarray | None,
        partial: GLMPartial,
        objective: PenalisedMean,
        l2: float,
        random_state: Any,
        sample_weight: np.ndarray | None,
    ) -> np.ndarray:
        """ASAP mode: decentralised gradient tracking (:func:`~dask_quorum.pipeline.asap.fit_asap`)."""
        fitted = fit_asap(
            client,
            X,
            y,
            partial,
            objective,
            np.zeros(partial.n_params),
            l2=l2,
            staleness=int(self.staleness),
            random_state=random_state,
            max_iter=self.max_iter,
            tol=self.tol,
            sample_weight=sample_weight,
        )
        if not fitted.converged:
            warnings.warn(
                f"{type(self).__name__} did not converge after {fitted.n_iter} ASAP rounds "
                f"(largest tracked gradient {float(fitted.history['residual'][-1]):.3g} > tol={self.tol}); "
                f"increase max_iter (now {self.max_iter}; an ASAP round is one local gradient "
                "step, so fits take hundreds of them) or scale the data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.n_iter_ = fitted.n_iter
        self.history_ = fitted.history
        return partial.unpack(fitted.x)

    def _decision(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        return safe_sparse_dot(X, self.coef_.T, dense_output=True) + self.intercept_

    def _map_rows(self, X: Any, fn: Any, n_columns: int | None, dtype: Any) -> Any:
        """``fn`` of the fitted model on every row block of dask ``X``: a lazy dask array."""
        check_is_fitted(self)
        validate_data(self, schema(X), reset=False, skip_check_array=True)
        return map_rows(X, fn, n_columns=n_columns, dtype=dtype)

    def _score_on_cluster(self, kind: str, X: Any, y: Any, sample_weight: Any) -> float:
        """Accuracy or R^2 of :meth:`predict` on dask ``X``, reduced on the cluster."""
        return score_on_cluster(self._client(), kind, self.predict(X), y, sample_weight)
