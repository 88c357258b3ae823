"""Fixtures of the straggler-model tests: a hand-built model and the fitted EC2 traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dask_quorum.pipeline.stragglers import (
    StragglerModel,
    fit_straggler_model,
    load_trace,
)

TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces" / "aws_ec2_iteration_times.csv"  # ../shared


def _model(n: int = 10, **overrides) -> StragglerModel:
    """Eight quiet workers, one persistent straggler (w8), one intermittent (w9)."""
    p_ss = np.full(n, 0.2)
    p_sf = np.full(n, 0.01)
    p_ss[n - 2], p_sf[n - 2] = 0.9, 0.05  # stationary 1/3, long slow spells
    p_ss[n - 1], p_sf[n - 1] = 0.5, 0.2  # stationary 2/7, short spells
    params = dict(
        workers=[f"w{i}" for i in range(n)],
        p_slow_slow=p_ss,
        p_slow_fast=p_sf,
        shift=np.full(n, 1.0),
        rate=np.full(n, 20.0),
        slow_shift=np.full(n, 8.0),
        slow_rate=np.full(n, 0.5),
        slowdown=np.full(n, 9.0),
        n_rounds=np.zeros(n, dtype=int),
    )
    params.update(overrides)
    params.setdefault("p", params["p_slow_fast"] / (params["p_slow_fast"] + 1 - params["p_slow_slow"]))
    return StragglerModel(**params)


@pytest.fixture
def make_model():
    """The factory of a hand-built model: ``make_model(n=10, **overrides)``."""
    return _model


@pytest.fixture(scope="session")
def trace_file() -> Path:
    """The EC2 trace CSV; the test is skipped where it is not present."""
    if not TRACES.exists():
        pytest.skip(f"{TRACES} not present")
    return TRACES


@pytest.fixture(scope="session")
def traces(trace_file) -> dict[str, StragglerModel]:
    names = ("data2", "data3", "data4", "data6", "data7", "data8")
    return {t: fit_straggler_model(load_trace(trace_file, t)) for t in names}
