"""Tests of dask_quorum.pipeline.recorder.rows: recorder columns -> Dataset (pure, no cluster)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dask_quorum.pipeline.recorder import FIELDS, rows_to_dataset


def test_rows_to_dataset_layout_and_padding():
    nan = math.nan
    columns = {
        "worker": ["tcp://b:2", "tcp://a:1", "tcp://b:2", "tcp://b:2"],
        "key": ["b-late", "a-only", "b-early", "b-nocompute"],
        "prefix": ["b", "a", "b", "b"],
        "queue": [0.1, 0.2, 0.3, nan],
        "compute": [1.0, 2.0, 3.0, 0.0],
        "transfer": [0.0, 0.5, 0.0, 0.0],
        "units": [10.0, nan, 30.0, nan],
        "start": [50.0, 5.0, 10.0, nan],
        "stop": [51.0, 7.0, 13.0, nan],
        "erred": [False, True, False, True],
    }
    ds = rows_to_dataset(columns, attrs={"cursor": 4})
    assert ds["worker"].values.tolist() == ["tcp://a:1", "tcp://b:2"]
    assert dict(ds.sizes) == {"worker": 2, "sample": 3}
    assert ds.attrs == {"cursor": 4}
    for name in ("queue", "compute", "transfer", "units", "start", "stop"):
        assert ds[name].dims == ("worker", "sample") and ds[name].dtype == float
    assert ds["erred"].dtype == bool
    assert ds["key"].dtype == object and ds["prefix"].dtype == object
    # b's samples by start time, the one without a compute interval last.
    assert ds["key"].values.tolist() == [
        ["a-only", "", ""],
        ["b-early", "b-late", "b-nocompute"],
    ]
    assert ds["prefix"].values.tolist() == [["a", "", ""], ["b", "b", "b"]]
    np.testing.assert_array_equal(
        ds["compute"].values, [[2.0, nan, nan], [3.0, 1.0, 0.0]]
    )
    np.testing.assert_array_equal(ds["units"].values, [[nan] * 3, [30.0, 10.0, nan]])
    assert ds["erred"].values.tolist() == [[True, False, False], [False, False, True]]


def test_rows_to_dataset_empty_and_malformed():
    ds = rows_to_dataset({name: [] for name in FIELDS})
    assert dict(ds.sizes) == {"worker": 0, "sample": 0}
    assert set(ds.data_vars) == set(FIELDS) - {"worker"}
    with pytest.raises(ValueError, match="missing"):
        rows_to_dataset({"worker": []})
    with pytest.raises(ValueError, match="length"):
        rows_to_dataset({name: [] for name in FIELDS} | {"key": ["x"]})
