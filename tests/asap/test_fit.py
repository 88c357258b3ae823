"""ASAP mode on a real cluster: accuracy, history, recorder, stragglers, failures."""

from __future__ import annotations

import time

import dask
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from dask_quorum import LinearRegression, LogisticRegression
from dask_quorum.pipeline.asap import make_graph
from dask_quorum.pipeline.asap import AsapError
from dask_quorum.pipeline.asap import STEP_PREFIX
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, injection_log, remove_stragglers
from dask_quorum.pipeline.recorder import attach, latencies
from dask_quorum.pipeline.stragglers import fit_straggler_model, latency_matrix
from dask_quorum.pipeline.cluster import scheduler_workers


def _scaled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def cancer():
    return _scaled(load_breast_cancer)


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


def test_recorder_receives_a_row_per_step(client4, cancer):
    X, y = cancer
    attach(client4)
    cursor = latencies(client4).attrs["cursor"]
    with pytest.warns(ConvergenceWarning, match="ASAP rounds"):
        est = LogisticRegression(scheme="asap", tol=0.0, max_iter=40).fit(X, y)
    deadline = time.monotonic() + 10
    while True:  # rows arrive in batches over the workers' event streams
        ds = latencies(client4, since=cursor)
        steps = ds["prefix"] == STEP_PREFIX
        if int(steps.sum()) >= 4 * 40 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    per_worker = steps.sum("sample").values
    assert list(per_worker) == [40] * 4
    units = ds["units"].where(steps).values
    assert set(np.unique(units[np.isfinite(units)])) <= {142.0, 143.0}  # rows of each partition
    assert float(ds["compute"].where(steps).min()) > 0
    assert est.n_iter_ == 40
    # straggler models read them like rounds: one row per step, per unit of work
    matrix, names = latency_matrix(ds)
    assert matrix.shape == (40, 4) and np.isfinite(matrix).all()
    assert len(fit_straggler_model(ds).workers) == 4


def test_injected_straggler_slows_its_steps_and_its_peers_wait(client4, cancer):
    X, y = cancer
    workers = sorted(scheduler_workers(client4))
    inject_stragglers(client4, {workers[0]: Slowdown(factor=1.0, delay=0.01)}, seed=0)
    try:
        with pytest.warns(ConvergenceWarning):
            est = LogisticRegression(scheme="asap", tol=0.0, max_iter=30).fit(X, y)
        log = injection_log(client4)
    finally:
        remove_stragglers(client4)
    slowed = [r for r in log[workers[0]] if STEP_PREFIX in str(r.key)]
    assert len(slowed) == 30 and all(r.slow for r in slowed)
    assert not any(STEP_PREFIX in str(r.key) for w in workers[1:] for r in log.get(w, []))
    h = est.history_
    assert float(h["compute"].sel(worker=workers[0]).min()) >= 0.01
    assert float(h["compute"].sel(worker=workers[1:]).median()) < 0.01
    # strict NOTIFY-ACK: the others spend the straggler's delay waiting for it
    assert float(h["wait"].sel(worker=workers[1:]).mean()) > 0.003


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


def test_a_dead_worker_ends_the_fit_with_a_clear_error(worker_dies_mid_fit):
    client, victim = worker_dies_mid_fit
    X, y = _scaled(load_breast_cancer)
    start = time.monotonic()
    with pytest.raises(AsapError) as info:
        LogisticRegression(scheme="asap", tol=0.0, max_iter=100_000, client=client).fit(X, y)
    # well before any deadline: the driver sees the worker go
    assert time.monotonic() - start < 15
    assert victim in str(info.value)


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


@pytest.mark.parametrize("staleness", [0, 2])
def test_the_transport_delivers_every_version_once_in_order(client4, staleness):
    """On the real transport, with a straggler: the consumed-version logs of every worker."""
    from averaging import AveragingBuilder
    from dask_quorum.pipeline.asap import run_asap

    workers = sorted(scheduler_workers(client4))
    graph = make_graph(4)
    x0 = np.arange(8.0).reshape(4, 2)
    inject_stragglers(client4, {workers[2]: Slowdown(factor=1.0, delay=0.003)}, seed=0)
    try:
        result = run_asap(
            client4, AveragingBuilder(), list(x0), graph=graph, staleness=staleness,
            max_rounds=30, tol=0.0, workers=workers,
        )
    finally:
        remove_stragglers(client4)
    assert result.n_rounds == 30 and not result.converged
    for i, log in enumerate(result.consumed):
        assert len(log) == 30 * graph.degree  # one version per in-peer per reduce
        for peer in graph.in_peers(i):
            mine = log[log[:, 1] == peer]
            assert list(mine[:, 0]) == list(range(30))
            if staleness == 0:
                assert list(mine[:, 2]) == list(range(30))  # that round's version: none lost, none twice
            else:
                assert (np.diff(mine[:, 2]) >= 0).all() and (mine[:, 2] >= mine[:, 0] - staleness).all()
    if staleness == 0:  # exactly the synchronous averaging x <- W x, 30 times
        np.testing.assert_allclose(result.final, np.linalg.matrix_power(graph.W, 30) @ x0, rtol=1e-12)
    # doubly stochastic or not, every replica stays a convex combination, and they agree at the end
    assert np.ptp(result.final, axis=0).max() < 1e-3


def test_recorder_keeps_external_rows_and_skips_malformed_ones():
    from dask_quorum.pipeline.recorder import FIELDS, ROWS_TOPIC, LatencyRecorder

    recorder = LatencyRecorder(capacity=10)
    good = ["tcp://w:1", "('quorum-asap-step-x', 0, 1)", STEP_PREFIX, float("nan"), 0.5, 0.1, 100, 1.0, 1.5, False]
    recorder.log_event(ROWS_TOPIC, {"rows": [good, good[:5], ["w", "k", "p", "x", 1, 1, 1, 1, 1, False]]})
    assert recorder.cursor == 1
    columns = recorder.collect()["columns"]
    assert columns["prefix"] == [STEP_PREFIX] and columns["compute"] == [0.5] and columns["units"] == [100.0]
    assert len(FIELDS) == len(good)
    recorder.log_event("some-other-topic", {"rows": [good]})
    assert recorder.cursor == 1
