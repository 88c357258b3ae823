"""One worker's loop and its messages (``pipeline/asap/peer_run.py``) on a real cluster: transport, step rows, slowdowns."""

from __future__ import annotations

import time

import numpy as np
import pytest
from dask_quorum.pipeline.asap import STEP_PREFIX, make_graph
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.inject import (
    Slowdown,
    inject_stragglers,
    injection_log,
    remove_stragglers,
)
from dask_quorum.pipeline.recorder import attach, latencies
from dask_quorum.pipeline.stragglers import fit_straggler_model, latency_matrix
from sklearn.exceptions import ConvergenceWarning

from dask_quorum import LogisticRegression


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
