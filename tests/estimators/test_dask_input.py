"""Dask arrays and dataframes fitted where they live: the same model as NumPy input,
lazy predictions chunk-aligned with X, scores reduced on the cluster."""

from __future__ import annotations

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.preprocessing import StandardScaler

from dask_quorum import LinearRegression, LogisticRegression

# dask's parquet reader still calls pandas with inplace=True (deprecated in pandas 3.1)
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame")

EXACT = ["sync", "frc", "cyclic"]
#: uneven row chunks (and two column chunks) that do not line up with the 4 partitions
ROW_CHUNKS = (37, 120, 3, 90, 50)


@pytest.fixture(scope="module")
def classification():
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=300, n_features=6, noise=5.0, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def weights():
    return np.random.default_rng(3).uniform(0.0, 3.0, size=300)


def _as(kind, X, y, w, tmp_path):
    if kind == "array":
        Xd = da.from_array(X, chunks=(ROW_CHUNKS, (4, 2)))
        yd = da.from_array(y, chunks=100)
        wd = None if w is None else da.from_array(w, chunks=(150, 150))
        return Xd, yd, wd
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["target"] = y
    if w is not None:
        frame["weight"] = w
    folder = tmp_path / "data.parquet"
    folder.mkdir()
    # four files of uneven lengths, written by pandas (one row group each)
    for i, (a, b) in enumerate([(0, 60), (60, 61), (61, 200), (200, 300)]):
        frame.iloc[a:b].to_parquet(folder / f"part.{i}.parquet", index=False)
    ddf = dd.read_parquet(folder)
    assert ddf.npartitions == 4
    features = ddf[[f"f{i}" for i in range(X.shape[1])]]
    return features, ddf["target"], (None if w is None else ddf["weight"])


def _model(Est, scheme):
    extra = {"C": 0.5} if Est is LogisticRegression else {"alpha": 2.0}
    return Est(scheme=scheme, redundancy=2, tol=1e-8, max_iter=200, random_state=0, **extra)


@pytest.mark.parametrize("scheme", EXACT)
@pytest.mark.parametrize("Est", [LogisticRegression, LinearRegression])
@pytest.mark.parametrize("kind", ["array", "parquet"])
@pytest.mark.parametrize("weighted", [False, True])
def test_dask_input_fits_the_numpy_model(client4, tmp_path, classification, regression, weights, scheme, Est, kind, weighted):
    X, y = classification if Est is LogisticRegression else regression
    w = weights if weighted else None
    ref = _model(Est, scheme).fit(X, y, sample_weight=w)
    Xd, yd, wd = _as(kind, X, y, w, tmp_path)
    ours = _model(Est, scheme).fit(Xd, yd, sample_weight=wd)
    # The objective agrees to 1e-8, every round. The parameters differ in the
    # rounding of sums over other partitions and of whichever workers answered
    # first, which L-BFGS carries to ~1e-9 (2.3e-8 relative on a 0.11 intercept, seen in CI).
    np.testing.assert_allclose(ours.history_["loss"].values, ref.history_["loss"].values, rtol=1e-8)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-7, atol=1e-9)
    assert ours.n_iter_ == ref.n_iter_
    if kind == "parquet":
        assert list(ours.feature_names_in_) == list(Xd.columns)
    if Est is LogisticRegression:
        np.testing.assert_array_equal(ours.classes_, ref.classes_)


@pytest.fixture(scope="module")
def fitted(client4, classification, regression):
    Xc, yc = classification
    Xr, yr = regression
    clf = LogisticRegression(scheme="sync", tol=1e-6).fit(Xc, yc)
    binary = LogisticRegression(scheme="sync", tol=1e-6).fit(Xc, (yc == 1).astype(int))
    reg = LinearRegression(scheme="sync", tol=1e-6).fit(Xr, yr)
    return {"multiclass": (clf, Xc, yc), "binary": (binary, Xc, (yc == 1).astype(int)), "regression": (reg, Xr, yr)}


@pytest.mark.parametrize("which", ["multiclass", "binary", "regression"])
def test_predictions_are_lazy_chunk_aligned_and_equal(client4, fitted, which):
    est, X, _ = fitted[which]
    Xd = da.from_array(X, chunks=(ROW_CHUNKS, (4, 2)))
    methods = ["predict"] + (["predict_proba", "predict_log_proba", "decision_function"] if which != "regression" else [])
    for name in methods:
        lazy = getattr(est, name)(Xd)
        assert isinstance(lazy, da.Array), name
        assert lazy.chunks[0] == ROW_CHUNKS, name
        expected = getattr(est, name)(X)
        assert lazy.shape == expected.shape and lazy.dtype == expected.dtype, name
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("which", ["multiclass", "binary", "regression"])
def test_dataframe_predictions_follow_its_partitions(client4, fitted, which):
    est, X, _ = fitted[which]
    ddf = dd.from_pandas(pd.DataFrame(X), npartitions=3)
    lazy = est.predict(ddf)
    assert isinstance(lazy, da.Array) and lazy.numblocks == (3,)
    np.testing.assert_allclose(lazy.compute(), est.predict(X), rtol=1e-12)


@pytest.mark.parametrize("which", ["multiclass", "binary", "regression"])
@pytest.mark.parametrize("weighted", [False, True])
def test_score_on_dask_input_equals_the_numpy_score(client4, fitted, weights, which, weighted):
    est, X, y = fitted[which]
    w = weights if weighted else None
    expected = est.score(X, y, sample_weight=w)
    Xd, yd = da.from_array(X, chunks=(ROW_CHUNKS, (4, 2))), da.from_array(y, chunks=70)
    wd = None if w is None else da.from_array(w, chunks=33)
    got = est.score(Xd, yd, sample_weight=wd)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)
    ddf = dd.from_pandas(pd.DataFrame(X), npartitions=3)
    assert est.score(ddf, dd.from_pandas(pd.Series(y), npartitions=2), sample_weight=wd) == pytest.approx(
        expected, rel=1e-10, abs=1e-12
    )


def test_prediction_checks_the_features(client4, fitted):
    est, X, _ = fitted["regression"]
    with pytest.raises(ValueError, match="X has 5 features, but LinearRegression is expecting 6 features"):
        est.predict(da.from_array(X[:, :5], chunks=100))
    bad = X.copy()
    bad[3, 2] = np.nan
    lazy = est.predict(da.from_array(bad, chunks=100))  # lazy: the block check runs when computed
    with pytest.raises(ValueError, match="Input contains NaN"):
        lazy.compute()
