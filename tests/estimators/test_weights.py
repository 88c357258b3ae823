"""sample_weight and class_weight: scikit-learn's weighted objectives, NumPy and dask input."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import load_diabetes, load_iris, make_classification
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from dask_quorum import LinearRegression, LogisticRegression


@pytest.fixture(scope="module")
def binary():
    X, y = make_classification(n_samples=400, n_features=5, random_state=2)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _weights(n, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 4.0, size=n)


def _sk_objective(est, X, y, w, C):
    """scikit-learn's weighted L2 logistic objective at ``est``'s coefficients."""
    classes = np.unique(y)
    Z = X @ est.coef_.T + est.intercept_
    if len(classes) == 2:
        z, t = Z[:, 0], (y == classes[1]).astype(float)
        losses = np.logaddexp(0, z) - t * z
    else:
        idx = np.searchsorted(classes, y)
        losses = np.logaddexp.reduce(Z, axis=1) - Z[np.arange(len(y)), idx]
    return (w @ losses + 0.5 * np.sum(est.coef_**2) / C) / w.sum()


@pytest.mark.parametrize("dataset", ["binary", "iris"])
@pytest.mark.parametrize("class_weight", [None, "balanced", "dict"])
@pytest.mark.parametrize("scheme", ["sync", "cyclic"])
def test_logistic_weights_match_sklearn(client4, request, dataset, class_weight, scheme):
    X, y = request.getfixturevalue(dataset)
    w = _weights(len(y))
    cw = {0: 2.0, 1: 0.5} if class_weight == "dict" else class_weight
    ref = SkLogisticRegression(C=0.7, class_weight=cw, tol=1e-12, max_iter=10_000).fit(X, y, sample_weight=w)
    ours = LogisticRegression(C=0.7, class_weight=cw, scheme=scheme, tol=1e-9, max_iter=2000, random_state=0)
    ours.fit(X, y, sample_weight=w)
    per_row = w.copy()
    if cw is not None:
        from sklearn.utils.class_weight import compute_class_weight

        per_row *= compute_class_weight(cw, classes=np.unique(y), y=y, sample_weight=w)[np.searchsorted(np.unique(y), y)]
    f_ref, f_ours = _sk_objective(ref, X, y, per_row, 0.7), _sk_objective(ours, X, y, per_row, 0.7)
    assert abs(f_ours - f_ref) <= 1e-7 * abs(f_ref)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=2e-4)
    # the decoded objective is sklearn's weighted objective
    assert ours.history_["loss"].values.min() == pytest.approx(f_ours, rel=1e-7)


@pytest.mark.parametrize("alpha", [0.0, 5.0])
def test_linear_weights_match_ridge(client4, alpha):
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    w = _weights(len(y), seed=1)
    ref = Ridge(alpha=alpha, solver="cholesky").fit(X, y, sample_weight=w)
    ours = LinearRegression(alpha=alpha, scheme="frc", redundancy=2, tol=1e-7, max_iter=2000).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-5, atol=1e-4)
    assert ours.intercept_ == pytest.approx(ref.intercept_, rel=1e-6)


def test_integer_weights_equal_repeated_rows(client4, binary):
    X, y = binary
    reps = np.random.default_rng(4).integers(0, 3, size=len(y))
    weighted = LogisticRegression(scheme="sync", tol=1e-10, max_iter=500).fit(X, y, sample_weight=reps)
    repeated = LogisticRegression(scheme="sync", tol=1e-10, max_iter=500).fit(np.repeat(X, reps, 0), np.repeat(y, reps))
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 2: 0.25}])
def test_dask_class_weights_equal_the_numpy_ones(client4, iris, class_weight):
    X, y = iris
    w = _weights(len(y), seed=5)
    kwargs = {"class_weight": class_weight, "scheme": "cyclic", "redundancy": 2, "tol": 1e-8, "max_iter": 300,
              "random_state": 0}
    ref = LogisticRegression(**kwargs).fit(X, y, sample_weight=w)
    ours = LogisticRegression(**kwargs).fit(
        da.from_array(X, chunks=((17, 100, 33), (4,))), da.from_array(y, chunks=50), sample_weight=da.from_array(w, chunks=40)
    )
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.history_["loss"].values, ref.history_["loss"].values, rtol=1e-8)


def test_bad_class_weight_is_named(client4, binary):
    X, y = binary
    with pytest.raises(ValueError, match="'class_weight' parameter"):
        LogisticRegression(class_weight="heavy").fit(X, y)
