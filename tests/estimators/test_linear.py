"""The estimators against scikit-learn, on a real cluster."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import xarray as xr
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from dask_quorum import LinearRegression, LogisticRegression

EXACT = ["sync", "frc", "cyclic"]


def _scaled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def cancer():
    return _scaled(load_breast_cancer)


@pytest.fixture(scope="module")
def digits():
    return _scaled(load_digits)


@pytest.fixture(scope="module")
def diabetes():
    return _scaled(load_diabetes)


def logistic_objective(coef, intercept, X, y, C):
    """scikit-learn's L2 logistic objective (mean loss + ||w||^2 / (2 C n))."""
    classes = np.unique(y)
    Z = X @ coef.T + intercept
    if len(classes) == 2:
        z = Z[:, 0]
        t = (y == classes[1]).astype(float)
        loss = np.mean(np.logaddexp(0, z) - t * z)
    else:
        idx = np.searchsorted(classes, y)
        lse = np.logaddexp.reduce(Z, axis=1)
        loss = np.mean(lse - Z[np.arange(len(y)), idx])
    return loss + np.sum(coef**2) / (2 * C * len(y))


def ridge_objective(coef, intercept, X, y, alpha):
    r = y - X @ coef - intercept
    return r @ r + alpha * coef @ coef


@pytest.mark.parametrize("scheme", EXACT)
@pytest.mark.parametrize("dataset, C", [("cancer", 1.0), ("cancer", 0.1), ("digits", 1.0)])
def test_logistic_matches_sklearn_objective(client4, request, scheme, dataset, C):
    X, y = request.getfixturevalue(dataset)
    ref = SkLogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
    ours = LogisticRegression(C=C, scheme=scheme, tol=1e-8, max_iter=1000, random_state=0).fit(X, y)
    f_ref = logistic_objective(ref.coef_, ref.intercept_, X, y, C)
    f_ours = logistic_objective(ours.coef_, ours.intercept_, X, y, C)
    assert abs(f_ours - f_ref) <= 1e-4 * abs(f_ref)
    assert ours.coef_.shape == ref.coef_.shape
    assert ours.intercept_.shape == ref.intercept_.shape
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-3)
    assert (ours.predict(X) == ref.predict(X)).mean() > 0.99
    # the last round's decoded loss is the objective of the returned iterate's neighbourhood
    assert ours.history_["loss"].values.min() == pytest.approx(f_ours, rel=1e-6)


@pytest.mark.parametrize("scheme", EXACT)
@pytest.mark.parametrize("alpha", [0.0, 10.0])
def test_linear_matches_ridge_objective(client4, diabetes, scheme, alpha):
    X, y = diabetes
    ref = Ridge(alpha=alpha, tol=1e-12, solver="cholesky").fit(X, y)
    ours = LinearRegression(alpha=alpha, scheme=scheme, tol=1e-6, max_iter=1000).fit(X, y)
    f_ref = ridge_objective(ref.coef_, ref.intercept_, X, y, alpha)
    f_ours = ridge_objective(ours.coef_, ours.intercept_, X, y, alpha)
    assert abs(f_ours - f_ref) <= 1e-4 * abs(f_ref)
    assert isinstance(ours.intercept_, float)
    assert ours.coef_.shape == (X.shape[1],)
    assert ours.score(X, y) == pytest.approx(ref.score(X, y), abs=1e-4)


def test_exact_scheme_is_exact_under_stragglers(client4, cancer):
    X, y = cancer
    workers = sorted(scheduler_workers(client4))
    clean = LogisticRegression(scheme="sync", tol=1e-8, max_iter=500).fit(X, y)
    inject_stragglers(client4, {workers[0]: Slowdown(factor=5, delay=0.02)}, seed=1)
    try:
        coded = LogisticRegression(scheme="cyclic", redundancy=2, tol=1e-8, max_iter=500, random_state=0).fit(X, y)
    finally:
        remove_stragglers(client4)
    h = coded.history_
    assert (h["decode_error"] <= 1e-10).all()
    # the straggler was left out of most rounds, yet the answer is the same
    assert h["responded"].sel(worker=workers[0]).mean() < 0.5
    np.testing.assert_allclose(coded.coef_, clean.coef_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["numpy", "pandas", "dask", "csr"])
def test_input_types_give_the_same_model(client4, cancer, kind):
    X, y = cancer
    ref = LogisticRegression(scheme="sync", tol=1e-8, max_iter=500).fit(X, y)
    if kind == "pandas":
        Xk = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
        yk = pd.Series(y)
    elif kind == "dask":
        Xk, yk = da.from_array(X, chunks=100), da.from_array(y, chunks=100)
    elif kind == "csr":
        Xk, yk = sp.csr_matrix(X), y
    else:
        Xk, yk = X, y
    est = LogisticRegression(scheme="sync", tol=1e-8, max_iter=500).fit(Xk, yk)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    if kind == "pandas":
        assert list(est.feature_names_in_) == list(Xk.columns)


def test_history_is_a_dataset_indexed_by_round(client4, cancer):
    X, y = cancer
    est = LogisticRegression(scheme="cyclic", random_state=0).fit(X, y)
    h = est.history_
    assert isinstance(h, xr.Dataset)
    assert set(h.dims) == {"round", "worker"}
    n_rounds = h.sizes["round"]
    assert n_rounds >= est.n_iter_ >= 1
    for name in ["loss", "wall_time", "elapsed", "n_responders", "decode_error", "waited_on", "stop"]:
        assert h[name].dims == ("round",)
    assert h["responded"].dims == ("round", "worker")
    assert h.attrs["scheme"] == "cyclic"
    assert (h["n_responders"] == h["responded"].sum("worker")).all()
    assert np.all(np.diff(h["elapsed"].values) > 0)
    # elapsed is wall-clock time since the fit started: driver work included
    assert h["elapsed"].values[-1] >= h["wall_time"].values.sum()
    # L-BFGS accepts only decreasing steps: the best loss is the last iterate's
    assert h["loss"].values[-1] <= h["loss"].values[0]


def test_keep_params_records_every_iterate(client4, cancer):
    import dask

    X, y = cancer
    with dask.config.set({"quorum.history.keep-params": True}), pytest.warns(ConvergenceWarning):
        est = LogisticRegression(scheme="sync", max_iter=5).fit(X, y)
    assert est.history_["params"].shape == (est.history_.sizes["round"], X.shape[1] + 1)


def test_convergence_warning_names_max_iter(client4, digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        LogisticRegression(scheme="sync", max_iter=2).fit(X, y)


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), [0, 1], "infinity"),
        (np.ones((3, 2)), [0, 1], "inconsistent numbers of samples"),
        (np.ones(4), [0, 1, 0, 1], "Expected 2D array"),
        (np.ones((4, 2)), [1, 1, 1, 1], "only one class"),
        (np.array([["a", "b"], ["c", "d"]]), [0, 1], "could not convert|convert"),
        (np.ones((0, 2)), [], "0 sample"),
        (np.ones((4, 2)), [0.1, 0.5, 0.2, 0.7], "Unknown label type"),
    ],
)
def test_bad_input_gets_sklearn_errors(client4, X, y, match):
    with pytest.raises(ValueError, match=match):
        LogisticRegression().fit(X, y)


def test_bad_parameters_are_named(client4, cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="scheme"):
        LogisticRegression(scheme="nope").fit(X, y)
    with pytest.raises(ValueError, match="redundancy"):
        LogisticRegression(redundancy=0).fit(X, y)
    with pytest.raises(ValueError, match="redundancy"):
        LogisticRegression(scheme="cyclic", redundancy=9).fit(X, y)
    with pytest.raises(ValueError, match="C"):
        LogisticRegression(C=0).fit(X, y)
    with pytest.raises(ValueError, match="client"):
        LogisticRegression(client="tcp://nowhere").fit(X, y)


def test_predict_before_fit_raises(client4, cancer):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        LogisticRegression().predict(cancer[0])
    with pytest.raises(NotFittedError):
        LinearRegression().predict(cancer[0])


def test_binary_labels_are_kept(client4, cancer):
    X, y = cancer
    labels = np.where(y == 1, "benign", "malignant")
    est = LogisticRegression(scheme="sync").fit(X, labels)
    assert set(est.predict(X)) <= {"benign", "malignant"}
    assert list(est.classes_) == ["benign", "malignant"]
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(est.predict_log_proba(X)), proba, rtol=1e-12, atol=1e-300)
    assert np.isfinite(est.predict_log_proba(X)).all()
    assert est.decision_function(X).shape == (X.shape[0],)
