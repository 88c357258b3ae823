"""Tests of dask_quorum.pipeline.cluster.client: which client a fit runs on."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from dask_quorum.pipeline.cluster import client as cluster
from dask_quorum.pipeline.cluster import scheduler_workers
from distributed import Client, LocalCluster

from dask_quorum import LinearRegression


@pytest.fixture
def no_default_client():
    from distributed.client import _get_global_client

    assert _get_global_client() is None, "another test left a default client"
    yield
    cluster.close_embedded()


def test_without_a_client_an_embedded_cluster_is_started(no_default_client):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.3
    overrides = {
        "quorum.local-cluster.n-workers": 2,
        "quorum.local-cluster.processes": False,
        "quorum.local-cluster.dashboard-address": ":0",
    }
    with dask.config.set(overrides):
        est = LinearRegression(scheme="cyclic", tol=1e-10).fit(X, y)
        client = cluster.embedded_client()
        assert len(scheduler_workers(client)) == 2
        assert cluster.get_client() is client  # reused, not started twice
    np.testing.assert_allclose(est.coef_, [1.0, -2.0, 0.5], atol=1e-6)
    assert est.intercept_ == pytest.approx(0.3, abs=1e-6)
    assert est.history_.sizes["worker"] == 2


def test_the_default_client_is_preferred():
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as lc, Client(lc) as c:
        assert cluster.get_client() is c


def test_an_explicit_client_must_be_a_running_client():
    with pytest.raises(TypeError, match="distributed.Client"):
        cluster.get_client("tcp://127.0.0.1:8786")
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as lc:
        c = Client(lc, set_as_default=False)
        c.close()
        with pytest.raises(ValueError, match="not running"):
            cluster.get_client(c)
