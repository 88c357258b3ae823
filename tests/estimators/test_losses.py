"""GLMPartial: the blocked evaluation equals the textbook formulas on the whole partition."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import expit, logsumexp

from dask_quorum.estimators._losses import GLMPartial, block_rows


def reference(loss, X, y, w, params, n_outputs, fit_intercept):
    """``[sum w loss, gradient]`` on the whole partition in float64, written out directly."""
    X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=np.float64)
    W = params.reshape(X.shape[1] + fit_intercept, n_outputs)
    coef, b = (W[:-1], W[-1]) if fit_intercept else (W, np.zeros(n_outputs))
    Z = X @ coef + b
    w = np.ones(X.shape[0]) if w is None else w
    if loss == "logistic":
        losses, dZ = np.logaddexp(0, Z[:, 0]) - y * Z[:, 0], (expit(Z[:, 0]) - y)[:, None]
    elif loss == "squared":
        losses, dZ = 0.5 * (Z[:, 0] - y) ** 2, (Z[:, 0] - y)[:, None]
    else:
        P = np.exp(Z - logsumexp(Z, axis=1, keepdims=True))
        losses = logsumexp(Z, axis=1) - Z[np.arange(len(y)), y]
        dZ = P - np.eye(n_outputs)[y]
    dZ = dZ * w[:, None]
    grad = X.T @ dZ
    if fit_intercept:
        grad = np.vstack([grad, dZ.sum(axis=0)])
    return np.r_[w @ losses, grad.ravel()]


@pytest.mark.parametrize("loss, n_outputs", [("logistic", 1), ("squared", 1), ("multinomial", 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_blocks_match_the_whole_partition(loss, n_outputs, dtype, weighted, fit_intercept):
    rng = np.random.default_rng(0)
    n_features = 40
    n = 3 * block_rows(n_features) + 17  # several blocks and a short last one
    X = rng.standard_normal((n, n_features)).astype(dtype)
    y = rng.integers(0, n_outputs, n) if loss == "multinomial" else (
        rng.random(n) < 0.5).astype(float) if loss == "logistic" else rng.standard_normal(n)
    w = rng.random(n) + 0.5 if weighted else None
    f = GLMPartial(loss, n_features, n_outputs, fit_intercept)
    params = rng.standard_normal(f.n_params) * 0.1
    part = (X, y) if w is None else (X, y, w)
    got = f(params, part)
    want = reference(loss, X, y, w, params, n_outputs, fit_intercept)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-9)
    assert got.dtype == np.float64


def test_sparse_and_tiny_partitions_take_one_block():
    rng = np.random.default_rng(1)
    f = GLMPartial("logistic", 5, 1, True)
    params = rng.standard_normal(6)
    X = sp.random(50, 5, density=0.3, format="csr", random_state=1, dtype=np.float32)
    y = (rng.random(50) < 0.5).astype(float)
    np.testing.assert_allclose(f(params, (X, y)), reference("logistic", X, y, None, params, 1, True), rtol=1e-12)
    one = f(params, (np.ones((1, 5)), np.ones(1)))
    np.testing.assert_allclose(one, reference("logistic", np.ones((1, 5)), np.ones(1), None, params, 1, True))
    assert not f(params, (np.empty((0, 5)), np.empty(0))).any()


def test_block_rows_hold_about_a_mebibyte():
    assert block_rows(100) == 2**20 // 800
    assert block_rows(10**7) == 1  # never zero rows
    assert block_rows(0) == 2**20 // 8
