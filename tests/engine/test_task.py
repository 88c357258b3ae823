"""Tests of dask_quorum.pipeline.engine.task: the round task's key, its worker side, its parameters (no cluster)."""

from __future__ import annotations

import math

import numpy as np
from dask.utils import key_split
from dask_quorum.pipeline.engine import ROUND_PREFIX, coded_partial
from dask_quorum.pipeline.engine.task import round_key, ship_params
from dask_quorum.pipeline.recorder import rows_to_dataset
from dask_quorum.pipeline.stragglers import latency_matrix

TOKEN = "0a1b2c3d4e5f"  # as RoundRunner.token: 12 hex digits


def _recorded(keys: list[tuple[str, object]], compute: list[float]):
    """A latencies() Dataset of one row per ``(worker, key)``."""
    n = len(keys)
    return rows_to_dataset(
        {
            "worker": [w for w, _ in keys],
            "key": [str(k) for _, k in keys],
            "prefix": [key_split(k) for _, k in keys],
            "queue": [0.0] * n,
            "compute": compute,
            "transfer": [0.0] * n,
            "units": [math.nan] * n,
            "start": [float(i) for i in range(n)],
            "stop": [float(i) + c for i, c in enumerate(compute)],
            "erred": [False] * n,
        }
    )


def test_round_keys_are_what_the_recorder_and_the_straggler_model_expect():
    # stragglers/ may not import the engine, so it matches round keys with a
    # regex of its own: it must parse the keys the runner submits.
    assert round_key(TOKEN, 3, 1) == (f"{ROUND_PREFIX}-{TOKEN}", 3, 1)
    assert key_split(round_key(TOKEN, 3, 1)) == ROUND_PREFIX
    keys = [(f"w{i}", round_key(TOKEN, t, i)) for t in range(3) for i in range(2)]
    compute = [1.0 + t + 10 * i for t in range(3) for i in range(2)]
    keys.insert(2, ("w0", ("other-task", 0)))  # not a round task: left out
    compute.insert(2, 99.0)
    matrix, workers = latency_matrix(_recorded(keys, compute))
    assert workers == ["w0", "w1"]
    np.testing.assert_array_equal(matrix, [[1.0, 11.0], [2.0, 12.0], [3.0, 13.0]])


def test_coded_partial_is_the_weighted_sum_of_fn_over_the_parts():
    parts = [np.arange(3.0), np.ones(3), np.full(3, 2.0)]
    total = coded_partial(np.multiply, 2.0, [0.5, -1.0, 0.25], *parts)
    np.testing.assert_allclose(total, 2.0 * (0.5 * parts[0] - parts[1] + 0.25 * parts[2]))
    assert total.dtype == np.float64


def test_small_parameters_travel_inline():
    params = np.zeros(4)
    # at or under the limit nothing is scattered: no client needed
    assert ship_params(None, params, ["tcp://w:1"], inline_limit=10_000, timeout=1.0, hard=0.0) is params
