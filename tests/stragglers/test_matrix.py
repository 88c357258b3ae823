"""Latency matrices: every input form gives the same matrix and model; bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from dask_quorum.pipeline.stragglers import fit_straggler_model, latency_matrix, round_spans

# ---------------------------------------------------------------------------
# input conversion


def _recorder_dataset(x: np.ndarray, names: list[str], *, round_keys: bool, seed: int = 0) -> xr.Dataset:
    """Shaped like the latency recorder's output, (worker, sample) with NaN / "" padding.

    Samples of a worker are shuffled (the round number must come from the
    key), 80 % declare units, and when ``round_keys`` each worker also ran an
    unrelated task and an erred retry of round 0, and the unknown worker
    ``""`` holds a sample: all three must be ignored.
    """
    rng = np.random.default_rng(seed)
    n_rounds, n_workers = x.shape
    shape = (n_workers + 1, n_rounds + 2)  # row 0: the unknown worker ""
    compute, units, start = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    key = np.full(shape, "", dtype=object)
    erred = np.zeros(shape, dtype=bool)
    for i in range(n_workers):
        r = i + 1
        rows = [t for t in range(n_rounds) if not np.isnan(x[t, i])]
        for t, c in zip(rows, rng.permutation(len(rows))):
            u = float(rng.integers(50, 200)) if rng.random() < 0.8 else np.nan  # NaN: unknown
            compute[r, c] = x[t, i] * (1.0 if np.isnan(u) else u)
            units[r, c] = u
            start[r, c] = 10.0 * t + 0.01 * i
            key[r, c] = str(("quorum-round-0a1b2c3d4e5f", t, i)) if round_keys else f"task-{t}-{i}"
        if round_keys:
            c = len(rows)
            compute[r, c], start[r, c], key[r, c] = 123.0, 5.0, str(("sum-abc", 0))
            compute[r, c + 1], start[r, c + 1], erred[r, c + 1] = 99.0, 1e9, True
            key[r, c + 1] = str(("quorum-round-0a1b2c3d4e5f", 0, i))
    if round_keys:
        compute[0, 0], start[0, 0], key[0, 0] = 50.0, 3e9, str(("quorum-round-ffffffffffff", 1, 0))
    dims = ("worker", "sample")
    return xr.Dataset(
        {
            "compute": (dims, compute),
            "units": (dims, units),
            "start": (dims, start),
            "key": (dims, key),
            "erred": (dims, erred),
        },
        coords={"worker": np.array(["", *names], dtype=str)},
    )


def test_inputs_give_the_same_model(make_model):
    names = [f"tcp://10.0.0.{i}:4000" for i in range(10)]
    x = make_model().sample(200, random_state=21)
    x[5, 2] = x[17, 8] = x[60, 0] = np.nan
    reference = fit_straggler_model(x, workers=names)

    long = pd.DataFrame(
        [(names[i], t, x[t, i]) for i in range(10) for t in range(200) if not np.isnan(x[t, i])],
        columns=["worker", "round", "seconds"],
    ).sample(frac=1.0, random_state=0)
    from_long = fit_straggler_model(long)

    wide = pd.DataFrame(x, columns=names)
    ds_keys = _recorder_dataset(x, names, round_keys=True)
    # start-time order cannot see gaps: fill them for that path
    ds_start = _recorder_dataset(np.where(np.isnan(x), 1.0, x), names, round_keys=False)

    for other in (from_long, fit_straggler_model(wide), fit_straggler_model(ds_keys)):
        xr.testing.assert_allclose(other.to_dataset(), reference.to_dataset())
        assert not reference.changed(other, tol=0.0)
    filled = fit_straggler_model(np.where(np.isnan(x), 1.0, x), workers=names)
    xr.testing.assert_allclose(fit_straggler_model(ds_start).to_dataset(), filled.to_dataset())

    m, got = latency_matrix(ds_keys)
    assert got == names and m.shape == (200, 10)
    np.testing.assert_allclose(m, x)
    m, got = latency_matrix(long, workers=names[::-1])
    np.testing.assert_allclose(m, x[:, ::-1])


def test_long_frame_aligns_by_round_number():
    df = pd.DataFrame(
        {
            "node": ["a", "a", "a", "b", "b"],
            "iteration": [0, 1, 3, 0, 3],
            "seconds": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    m, names = latency_matrix(df)
    assert names == ["a", "b"]
    np.testing.assert_array_equal(m, [[1, 4], [2, np.nan], [np.nan, np.nan], [3, 5]])


def test_round_spans_name_the_rows_of_each_fit():
    # Rounds 3..7 of one fit and 0..1 of a later one: the matrix stacks them
    # in the order of their first start, and round_spans says which rows are whose.
    dims = ("worker", "sample")
    keys = [str(("quorum-round-aaaaaaaaaaaa", t, 0)) for t in range(3, 8)]
    keys += [str(("quorum-round-bbbbbbbbbbbb", t, 0)) for t in range(2)] + ["other-task"]
    n = len(keys)
    ds = xr.Dataset(
        {
            "compute": (dims, np.arange(1.0, n + 1)[None, :]),
            "start": (dims, np.arange(float(n))[None, :]),
            "key": (dims, np.array(keys, dtype=object)[None, :]),
        },
        coords={"worker": ["w"]},
    )
    spans = round_spans(ds)
    assert list(spans.items()) == [("aaaaaaaaaaaa", (3, 7)), ("bbbbbbbbbbbb", (0, 1))]
    m, _ = latency_matrix(ds)
    np.testing.assert_array_equal(m[:, 0], np.arange(1.0, n))  # rows 0-4: first fit, 5-6: second
    # a round that erred has no sample: it does not stretch the span
    ds["erred"] = (dims, np.array([[False] * 4 + [True] + [False] * 3]))
    assert round_spans(ds)["aaaaaaaaaaaa"] == (3, 6)
    assert round_spans(ds.drop_vars("key")) == {}


# ---------------------------------------------------------------------------
# bad input


def test_latency_matrix_errors():
    with pytest.raises(ValueError, match="2-D"):
        latency_matrix([1.0, 2.0])
    with pytest.raises(ValueError, match="numeric"):
        latency_matrix([["a", "b"], ["c", "d"]])
    with pytest.raises(ValueError, match="unknown worker"):
        latency_matrix(pd.DataFrame({"a": [1.0, 2.0]}), workers=["z"])
    with pytest.raises(ValueError, match="2 names for 3"):
        latency_matrix(np.ones((2, 3)), workers=["a", "b"])
    with pytest.raises(ValueError, match="several latencies"):
        latency_matrix(pd.DataFrame({"worker": ["a", "a"], "round": [0, 0], "seconds": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="2 traces"):
        two = {"trace": ["x", "y"], "node": ["a", "a"], "iteration": [0, 1], "seconds": [1.0, 2.0]}
        latency_matrix(pd.DataFrame(two))
    with pytest.raises(ValueError, match="'compute'"):
        latency_matrix(xr.Dataset({"start": (("worker", "sample"), np.zeros((2, 2)))}))
    with pytest.raises(ValueError, match="units must be positive"):
        dims = ("worker", "sample")
        latency_matrix(xr.Dataset({"compute": (dims, np.ones((2, 2))), "units": (dims, np.zeros((2, 2)))}))
