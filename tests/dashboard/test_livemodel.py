"""Tests of the live model (``pipeline/dashboard/livemodel.py``): background re-fits from the latency recorder."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.dashboard import QUANTILES, LiveModel, summarize_latencies
from dask_quorum.pipeline.recorder import FIELDS, LatencyRecorder, attach
from distributed import wait
from distributed.utils_test import gen_cluster, inc

TWO_WORKERS = [("127.0.0.1", 1)] * 2


def recorder_columns(per_unit, units=10.0, tag="quorum-round-abc"):
    """Recorder columns of round tasks with the given (rounds, workers) per-unit latencies."""
    cols = {name: [] for name in FIELDS}
    n_rounds, n_workers = per_unit.shape
    for t in range(n_rounds):
        for i in range(n_workers):
            compute = per_unit[t, i] * units
            cols["worker"].append(f"tcp://w:{i}")
            cols["key"].append(str((tag, t, i)))
            cols["prefix"].append(tag)
            cols["queue"].append(0.0)
            cols["compute"].append(compute)
            cols["transfer"].append(0.0)
            cols["units"].append(units)
            cols["start"].append(1000.0 + t)
            cols["stop"].append(1000.0 + t + compute)
            cols["erred"].append(False)
    return cols


def test_summarize_latencies_quantiles_and_model():
    rng = np.random.default_rng(0)
    per_unit = 0.01 + rng.exponential(0.001, size=(40, 4))
    per_unit[:, 2] *= 8  # worker 2 is persistently slow
    snap = summarize_latencies(recorder_columns(per_unit), cursor=160)
    assert snap.rows == 160 and snap.cursor == 160 and snap.reason == ""
    q = snap.quantiles
    assert q.workers == tuple(f"tcp://w:{i}" for i in range(4))
    np.testing.assert_allclose(q.values, np.quantile(per_unit, QUANTILES, axis=0).T)
    assert q.counts.tolist() == [40] * 4
    assert snap.model.slow_workers() == ["tcp://w:2"]
    assert snap.model.p[2] == 1.0 and snap.model.p_slow_slow[2] > 0.9


def test_summarize_latencies_without_enough_data():
    empty = summarize_latencies({name: [] for name in FIELDS})
    assert empty.quantiles is None and empty.model is None and "no latencies" in empty.reason
    one_round = summarize_latencies(recorder_columns(np.full((1, 3), 0.01)))
    assert one_round.quantiles.counts.tolist() == [1, 1, 1]
    assert one_round.model is None and "at least 2 rounds" in one_round.reason


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_live_model_refits_at_most_every_interval_on_a_bounded_window(c, s, a, b):
    await attach(c)
    recorder = s.plugins[LatencyRecorder.name]
    live = LiveModel(s, interval=5.0, rows=6)
    assert not live.refresh(now=0.0)  # no rows yet: nothing to fit
    assert live._job is None
    await wait(c.map(inc, range(20), pure=False))
    assert recorder.cursor == 20
    assert not live.refresh(now=1.0)  # the first re-fit starts ...
    assert live._job is not None and live.wait(10)
    assert live.refresh(now=2.0)  # ... and is collected on the next refresh
    snap = live.snapshot
    assert snap.rows == 6 and snap.cursor == 20  # only the newest rows
    assert sum(snap.quantiles.counts) == 6
    assert live._job is None  # not due yet
    assert not live.refresh(now=6.5) and live._job is None  # due, but no new rows
    await wait(c.submit(inc, 100, pure=False))
    live.refresh(now=6.6)
    assert live._job is not None and live.wait(10)
    assert live.refresh(now=6.7) and live.version == 2 and live.snapshot.cursor == 21
    with pytest.raises(ValueError, match="model-rows"):
        LiveModel(s, rows=1)
