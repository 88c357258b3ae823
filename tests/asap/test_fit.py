"""ASAP fits of the linear models (``pipeline/asap/fit.py``) on a real cluster: accuracy, history, staleness, parameters."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from dask_quorum.pipeline.asap import make_graph
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.preprocessing import StandardScaler

from dask_quorum import LinearRegression, LogisticRegression


def _scaled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _objective(est, X, y):
    """The objective the estimators minimise, at the fitted model (their own code)."""
    from dask_quorum.estimators._losses import GLMPartial, PenalisedMean

    if isinstance(est, LinearRegression):
        partial, l2, target = GLMPartial("squared", X.shape[1], 1, True), est.alpha / len(y), y.astype(float)
        params = np.r_[est.coef_, est.intercept_]
    else:
        k = len(est.classes_)
        loss, K = ("logistic", 1) if k == 2 else ("multinomial", k)
        partial, l2 = GLMPartial(loss, X.shape[1], K, True), 1.0 / (est.C * len(y))
        target = np.searchsorted(est.classes_, y).astype(float if k == 2 else np.intp)
        params = np.vstack([est.coef_.T, est.intercept_[None, :]]).ravel()
    return PenalisedMean(partial, len(y), l2)(params, partial(params, (X, target)))[0]


@pytest.mark.parametrize(
    "make, loader, asap_tol",
    [
        (lambda **kw: LogisticRegression(**kw), load_breast_cancer, 1e-6),
        # multinomial (10 classes, 650 parameters); C=0.1 keeps it to ~200 rounds
        (lambda **kw: LogisticRegression(C=0.1, **kw), load_digits, 3e-5),
        (lambda **kw: LinearRegression(**kw), load_diabetes, 1e-4),
    ],
    ids=["cancer", "digits", "diabetes"],
)
def test_asap_reaches_the_sync_objective(client4, make, loader, asap_tol):
    X, y = _scaled(loader)
    sync = make(scheme="sync", tol=1e-7, max_iter=1000).fit(X, y)
    asap = make(scheme="asap", tol=asap_tol, max_iter=5000, random_state=0).fit(X, y)
    f_sync, f_asap = _objective(sync, X, y), _objective(asap, X, y)
    assert abs(f_asap - f_sync) <= 1e-4 * abs(f_sync)
    assert asap.history_.attrs["converged"] == 1
    assert asap.n_iter_ == asap.history_.sizes["round"] < 5000
    np.testing.assert_allclose(asap.predict(X), sync.predict(X), rtol=1e-3, atol=1e-3 * np.abs(y).max())


def test_history_reports_consensus_and_bytes(client4, cancer):
    X, y = cancer
    with dask.config.set({"quorum.history.keep-params": True}):
        est = LogisticRegression(scheme="asap", tol=1e-6, max_iter=2000, random_state=0).fit(X, y)
    h = est.history_
    n, p = 4, X.shape[1] + 1
    g = make_graph(n)
    assert set(h.dims) == {"round", "worker", "param"}
    assert h.attrs["scheme"] == "asap" and h.attrs["degree"] == g.degree
    assert h.attrs["spectral_gap"] == pytest.approx(g.spectral_gap)
    # every worker sends [x - alpha P y, sigma] (2 p float64) to each out-peer every round
    assert (h["bytes_sent"] == n * g.degree * 2 * p * 8).all()
    assert (h["bytes_max_node"] == 2 * g.degree * 2 * p * 8).all()
    assert (h["stale_reduces"] == 0).all()
    # replicas start equal, spread, then agree again
    err = h["consensus_error"].values
    assert err.max() > 1e-2 and err[-1] < 1e-5
    assert np.all(np.diff(h["elapsed"].values) >= 0)
    assert h["compute"].dims == ("round", "worker") and (h["compute"] > 0).all()
    # the model is the average of the final replicas, which history keeps per round
    np.testing.assert_allclose(h["params"].values[-1], np.r_[est.coef_[0], est.intercept_], rtol=1e-12)
    # mean local objective at the replicas = the objective once they agree
    assert h["loss"].values[-1] == pytest.approx(_objective(est, X, y), rel=1e-5)


def test_driver_centred_history_counts_bytes_through_the_driver(client4, cancer):
    X, y = cancer
    est = LogisticRegression(scheme="sync", tol=1e-6).fit(X, y)
    h = est.history_
    p = X.shape[1] + 1
    # parameters (p floats) to 4 workers, one result (1 + p floats) from each
    expected = 4 * p * 8 + 4 * (1 + p) * 8
    assert (h["bytes_sent"] == expected).all()
    assert (h["bytes_max_node"] == h["bytes_sent"]).all()


def test_staleness_runs_ahead_of_a_straggler_and_stays_exact(client4, cancer):
    X, y = cancer
    workers = sorted(scheduler_workers(client4))
    sync = LogisticRegression(scheme="sync", tol=1e-8, max_iter=1000).fit(X, y)
    inject_stragglers(client4, {workers[1]: Slowdown(factor=1.0, delay=0.005)}, seed=0)
    try:
        est = LogisticRegression(scheme="asap", staleness=3, tol=1e-6, max_iter=5000, random_state=0).fit(X, y)
    finally:
        remove_stragglers(client4)
    assert int(est.history_["stale_reduces"].sum()) > 0
    assert est.history_.attrs["staleness"] == 3
    f_sync, f_asap = _objective(sync, X, y), _objective(est, X, y)
    assert abs(f_asap - f_sync) <= 1e-4 * abs(f_sync)


def test_asap_parameters_are_checked(client4, cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="staleness=2 applies to scheme='asap' only"):
        LogisticRegression(scheme="sync", staleness=2).fit(X, y)
    with pytest.raises(ValueError, match="redundancy=2 applies to the coded schemes"):
        LogisticRegression(scheme="asap", redundancy=2).fit(X, y)
    with pytest.raises(ValueError, match="staleness"):
        LogisticRegression(scheme="asap", staleness=-1).fit(X, y)
    with dask.config.set({"quorum.asap.message-dtype": "float16"}), pytest.raises(ValueError, match="message-dtype"):
        LogisticRegression(scheme="asap").fit(X, y)
    assert LogisticRegression(scheme="asap", staleness=4).get_params()["staleness"] == 4

