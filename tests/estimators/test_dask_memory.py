"""Rows of a dask collection never reach the client: a fit on data generated on the
workers allocates far less on the client than the data's size.

The workers are processes (their memory is not the client's); the client's
Python allocations are traced during the fit (``tracemalloc`` sees NumPy's
buffers and every message the client receives). Gathering the data, or even
one partition of it, would go far over the bound.
"""

from __future__ import annotations

import tracemalloc
import warnings

import dask
import dask.array as da
import pytest
from distributed import Client, LocalCluster

from dask_quorum import LinearRegression, LogisticRegression

N_ROWS, N_FEATURES = 400_000, 20  # 64 MB of float64, in 16 chunks of 4 MB
DATA_BYTES = N_ROWS * N_FEATURES * 8


@pytest.fixture(scope="module")
def process_client():
    with dask.config.set({"quorum.round-timeout": "120s", "quorum.setup-timeout": "120s"}), LocalCluster(
        n_workers=4, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster, Client(cluster, set_as_default=False) as client:
        yield client


def _data():
    X = da.random.RandomState(0).standard_normal((N_ROWS, N_FEATURES), chunks=(25_000, N_FEATURES))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    return X, y


@pytest.mark.parametrize("scheme", ["sync", "frc", "cyclic", "heterogeneous", "auto", "asap"])
def test_the_client_never_holds_the_rows(process_client, scheme):
    X, y = _data()
    redundancy = None if scheme == "asap" else 2
    est = LogisticRegression(scheme=scheme, redundancy=redundancy, max_iter=5, random_state=0, client=process_client)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 5 iterations do not converge
            est.fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert est.coef_.shape == (1, N_FEATURES) and est.n_iter_ >= 1
    assert peak < DATA_BYTES / 8, f"the client allocated {peak / 2**20:.1f} MiB during the fit"


def test_predict_and_score_stay_on_the_cluster(process_client):
    X, _ = _data()
    est = LinearRegression(scheme="sync", max_iter=5, client=process_client)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, X[:, 0] * 2.0 + 1.0)
    tracemalloc.start()
    try:
        score = est.score(X, X[:, 0] * 2.0 + 1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert score > 0.99
    assert peak < DATA_BYTES / 8, f"the client allocated {peak / 2**20:.1f} MiB for the score"


def test_the_bound_sees_rows_that_do_reach_the_client(process_client):
    """The control: a quarter of the rows gathered on the client goes over the bound."""
    X, _ = _data()
    tracemalloc.start()
    try:
        part = process_client.compute(X[: N_ROWS // 4]).result(timeout=120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert part.shape == (N_ROWS // 4, N_FEATURES)
    assert peak > DATA_BYTES / 8
