"""The driver of an ASAP run (``pipeline/asap/driver.py``): a worker that leaves ends the fit, named."""

from __future__ import annotations

import time

import pytest
from dask_quorum.pipeline.asap import AsapError

from dask_quorum import LogisticRegression


def test_a_dead_worker_ends_the_fit_with_a_clear_error(worker_dies_mid_fit, cancer):
    client, victim = worker_dies_mid_fit
    X, y = cancer
    start = time.monotonic()
    with pytest.raises(AsapError) as info:
        LogisticRegression(scheme="asap", tol=0.0, max_iter=100_000, client=client).fit(X, y)
    # well before any deadline: the driver sees the worker go
    assert time.monotonic() - start < 15
    assert victim in str(info.value)

