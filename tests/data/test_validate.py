"""Validation of dask input on the cluster: the same errors as NumPy input gets."""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask_quorum.pipeline.data import check_dask_input, weigh_classes
from sklearn.utils.class_weight import compute_class_weight

from dask_quorum import LinearRegression, LogisticRegression

_rng = np.random.default_rng(0)
X = _rng.normal(size=(40, 3))
Y = (X[:, 0] > 0).astype(int)
W = _rng.uniform(0.5, 2.0, size=40)


def _with(value, where=(5, 1)):
    bad = X.copy()
    bad[where] = value
    return bad


def _dask(a, chunks=(7, 13, 20)):
    a = np.asarray(a)
    return da.from_array(a, chunks=(chunks,) + a.shape[1:])


CASES = [
    # id, estimator, X, y, sample_weight
    ("nan-X", LogisticRegression, _with(np.nan), Y, None),
    ("inf-X", LinearRegression, _with(np.inf), Y, None),
    ("nan-y", LinearRegression, X, np.where(Y, np.nan, 1.0), None),
    ("inf-y", LinearRegression, X, np.where(Y, np.inf, 1.0), None),
    ("one-class", LogisticRegression, X, np.ones(40), None),
    ("continuous-labels", LogisticRegression, X, X[:, 0], None),
    ("negative-weights", LinearRegression, X, Y, -W),
    ("nan-weights", LogisticRegression, X, Y, np.where(Y, np.nan, 1.0)),
    ("zero-weights", LogisticRegression, X, Y, np.zeros(40)),
]


def _error(fit):
    with pytest.raises((ValueError, TypeError)) as info:
        fit()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_dask_input_gets_the_numpy_error(client4, case):
    _, Est, X_, y_, w_ = case
    expected = _error(lambda: Est(scheme="sync").fit(X_, y_, sample_weight=w_))
    w_d = None if w_ is None else _dask(w_, (10, 30))
    got = _error(lambda: Est(scheme="sync").fit(_dask(X_), _dask(y_, (20, 20)), sample_weight=w_d))
    assert got == expected


def test_inconsistent_lengths_and_weight_shape(client4):
    expected = _error(lambda: LinearRegression(scheme="sync").fit(X, Y[:-3]))
    assert "inconsistent numbers of samples: [40, 37]" in expected[1]
    assert _error(lambda: LinearRegression(scheme="sync").fit(_dask(X), _dask(Y[:-3], (37,)))) == expected
    expected = _error(lambda: LinearRegression(scheme="sync").fit(X, Y, sample_weight=W[:-1]))
    got = _error(lambda: LinearRegression(scheme="sync").fit(_dask(X), _dask(Y), sample_weight=_dask(W[:-1], (39,))))
    assert got == expected


def test_one_sample_behaves_as_numpy(client4):
    expected = _error(lambda: LogisticRegression(scheme="sync").fit(X[:1], Y[:1]))
    assert _error(lambda: LogisticRegression(scheme="sync").fit(_dask(X[:1], (1,)), _dask(Y[:1], (1,)))) == expected
    # least squares on one sample is allowed, for both
    ref = LinearRegression(scheme="sync").fit(X[:1], Y[:1])
    ours = LinearRegression(scheme="sync").fit(_dask(X[:1], (1,)), _dask(Y[:1], (1,)))
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-12, atol=1e-14)


def test_no_sample_and_no_feature(client4):
    for shape in [(0, 3), (40, 0)]:
        Xe, ye = np.ones(shape), np.ones(shape[0])
        expected = _error(lambda Xe=Xe, ye=ye: LinearRegression(scheme="sync").fit(Xe, ye))
        got = _error(lambda Xe=Xe, ye=ye: LinearRegression(scheme="sync").fit(da.from_array(Xe), da.from_array(ye)))
        assert got == expected


def test_categorical_and_object_columns_are_named(client4):
    frame = pd.DataFrame({"a": X[:, 0], "colour": pd.Categorical(["red", "blue"] * 20), "name": ["x"] * 40})
    ddf = dd.from_pandas(frame, npartitions=3)
    with pytest.raises(ValueError, match=r"non-numeric columns \['colour', 'name'\].*dask_ml\.preprocessing\.Categorizer"):
        LogisticRegression(scheme="sync").fit(ddf, _dask(Y))


def test_dataframe_gives_feature_names_and_unknown_lengths_are_computed(client4):
    frame = pd.DataFrame(X, columns=["u", "v", "w"])
    ddf = dd.from_pandas(frame, npartitions=3)
    est = LinearRegression(scheme="sync")
    rows = check_dask_input(client4, est, ddf, dd.from_pandas(pd.Series(Y), npartitions=2), y_numeric=True)
    assert list(est.feature_names_in_) == ["u", "v", "w"] and est.n_features_in_ == 3
    assert rows.shape == (40, 3)
    assert sum(rows.X.chunks[0]) == 40 and not np.isnan(rows.X.chunks[0]).any()
    assert rows.weight_sum == 40.0 and rows.sample_weight is None


def test_integers_become_float64_and_float32_stays(client4):
    est = LinearRegression()
    assert check_dask_input(client4, est, _dask((X * 10).astype(int)), _dask(Y), y_numeric=True).dtype == np.float64
    assert check_dask_input(client4, est, _dask(X.astype(np.float32)), _dask(Y), y_numeric=True).dtype == np.float32


@pytest.mark.parametrize("class_weight", ["balanced", {0: 3.0, 1: 0.5}])
@pytest.mark.parametrize("weighted", [False, True])
def test_class_weights_as_sklearn_computes_them(client4, class_weight, weighted):
    labels = np.array(["b", "a", "c"])[_rng.integers(0, 3, size=40)]
    w = W if weighted else None
    cw = {"a": 3.0, "b": 0.5} if isinstance(class_weight, dict) else class_weight
    rows = check_dask_input(
        client4, LogisticRegression(), _dask(X), _dask(labels), None if w is None else _dask(w), classifier=True
    )
    rows = weigh_classes(client4, rows, cw)
    np.testing.assert_array_equal(rows.classes, ["a", "b", "c"])
    expected = compute_class_weight(cw, classes=np.array(["a", "b", "c"]), y=labels, sample_weight=w)
    np.testing.assert_allclose(rows.class_weight, expected, rtol=1e-12)
    per_row = (np.ones(40) if w is None else w) * expected[np.searchsorted(rows.classes, labels)]
    assert rows.weight_sum == pytest.approx(per_row.sum(), rel=1e-12)
