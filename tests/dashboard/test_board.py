"""Tests of the fit board (scheduler store), its reporter and the live model."""

from __future__ import annotations

import logging
import math
import time

import dask
import numpy as np
import pytest
from distributed import wait
from distributed.utils_test import async_poll_for, gen_cluster, inc

from dask_quorum.pipeline.dashboard.board import HANDLER, MARKER, FitBoard, board_of, dask_setup
from dask_quorum.pipeline.dashboard import QUANTILES, LiveModel, summarize_latencies
from dask_quorum.pipeline.recorder import FIELDS, LatencyRecorder, attach
from dask_quorum.pipeline.dashboard import FitReporter
from dask_quorum.pipeline.engine import RoundRecord

TWO_WORKERS = [("127.0.0.1", 1)] * 2
WORKERS = ["tcp://a:1", "tcp://b:2", "tcp://c:3"]
B = [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]]


def assignment(workers=WORKERS, matrix=B, scheme="cyclic"):
    return {"kind": "assignment", "workers": list(workers), "B": matrix, "scheme": scheme}


def round_update(index, responders=(0, 1), **extra):
    return {"kind": "round", "index": index, "time": 100.0 + index, "wall_time": 0.01,
            "responders": list(responders), "busy": [], "error": 0.0, **extra}


# --------------------------------------------------------------------------
# FitBoard, called directly (distributed swallows errors in plugin hooks)
# --------------------------------------------------------------------------


def test_board_keeps_assignment_and_bounded_rounds():
    board = FitBoard(rounds=3, fits=4, max_cells=100)
    reply = board.report("t1", [assignment(), *(round_update(i, responders=[i % 3]) for i in range(5))],
                         label="LogisticRegression")
    assert reply == {"status": "OK", "attached": True, "accepted": 6}
    fit = board.fits["t1"]
    assert fit.label == "LogisticRegression" and fit.scheme == "cyclic"
    assert fit.workers == tuple(WORKERS) and fit.shape == (3, 3)
    np.testing.assert_array_equal(fit.B, B)
    assert not fit.B.flags.writeable
    assert [r.index for r in fit.rounds] == [2, 3, 4]  # ring buffer of 3
    assert fit.n_rounds == 5
    # stragglers: every worker of the assignment that did not respond
    assert [r.stragglers for r in fit.rounds] == [(0, 1), (1, 2), (0, 2)]
    assert fit.rounds[-1].error_kind == "decoding" and fit.rounds[-1].time == 104.0
    board.report("t1", [{"kind": "close"}])
    assert fit.closed and fit.version == 2 and fit.assignment_version == 1
    assert board.latest() is fit


def test_board_drops_closed_fits_first_then_oldest():
    board = FitBoard(rounds=5, fits=2, max_cells=100)
    board.report("old", [assignment()])
    board.report("done", [assignment(), {"kind": "close"}])
    board.report("new", [assignment()])  # full: the closed fit goes, though newer
    assert list(board.fits) == ["old", "new"]
    board.report("old", [round_update(0)])  # touched: now the most recent
    board.report("newest", [])
    assert list(board.fits) == ["old", "newest"]
    assert board.latest().token == "newest"


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ([{"kind": "launch"}], "'kind' is one of"),
        ([assignment(matrix=[[1.0, 0.0]])], "1 rows for 3 workers"),
        ([assignment(matrix=[[1.0, math.inf, 0.0]] * 3)], "finite"),
        ([assignment(matrix=[[1.0] * 40] * 3)], "more than the 100 accepted"),
        ([assignment(workers=[])], "1 to 4096"),
        ([assignment(), round_update(0, responders=[3])], "index 3 out of range for 3 workers"),
        ([round_update(-1)], "non-negative integer"),
        ([round_update(0, error_kind="asap")], "error_kind"),
        ([round_update(0, wall_time=-1.0)], "wall_time"),
        ([round_update(0, stop="x" * 300)], "stop must have"),
    ],
)
def test_board_rejects_malformed_batches_whole(updates, message):
    board = FitBoard(rounds=5, fits=2, max_cells=100)
    board.report("t", [assignment()])
    before = board.fits["t"].version
    with pytest.raises(ValueError, match=message):
        board.report("t", [round_update(7), *updates])
    assert board.fits["t"].version == before
    assert [r.index for r in board.fits["t"].rounds] == []  # round 7 was not applied either


def test_board_checks_token_and_limits():
    board = FitBoard(rounds=5, fits=2, max_cells=100)
    for bad in ("", "x" * 300, 3):
        with pytest.raises(ValueError, match="token"):
            board.report(bad, [])
    with pytest.raises(ValueError, match="updates must be a list"):
        board.report("t", {"kind": "close"})
    with pytest.raises(ValueError, match="at most 4096 updates"):
        board.report("t", [round_update(i) for i in range(4097)])
    board.report("t", [{"kind": "assignment", "workers": WORKERS, "B": None, "shape": [3, 500]}])
    assert board.fits["t"].B is None and board.fits["t"].shape == (3, 500)
    with dask.config.set({"quorum.dashboard.rounds": 0}):
        with pytest.raises(ValueError, match="quorum.dashboard.rounds"):
            FitBoard()
    with dask.config.set({"quorum.dashboard.fits": 3, "quorum.dashboard.rounds": 7}):
        assert (FitBoard().max_fits, FitBoard().max_rounds) == (3, 7)


# --------------------------------------------------------------------------
# FitReporter -> handler -> FitBoard on a real scheduler
# --------------------------------------------------------------------------


def record(index, responders, n_busy=0, error=0.0):
    return RoundRecord(index=index, wall_time=0.02, finished=time.perf_counter(), responders=tuple(responders),
                       busy=tuple(range(n_busy)), decode_error=error, last_responder=responders[-1],
                       stop="exact", scheme="cyclic")


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_reporter_sends_in_order_to_the_board(c, s, a, b):
    await c.register_plugin(FitBoard())
    assert HANDLER in s.handlers
    assert await c.get_metadata(list(MARKER)) is True
    reporter = FitReporter(c, token="fit-1", label="test fit")
    reporter.assignment([a.address, b.address], np.eye(2), "uncoded")
    for t in range(5):
        reporter.round(record(t, [t % 2], error=0.1 * t))
    # a session whose membership changed numbers its workers differently
    everyone = ["tcp://gone:1", b.address, a.address]
    reporter.round(record(5, [0, 1], n_busy=3), workers=everyone)
    reporter.close()
    board = s.plugins[FitBoard.name]
    await async_poll_for(lambda: "fit-1" in board.fits and board.fits["fit-1"].closed, timeout=10)
    fit = board.fits["fit-1"]
    assert fit.label == "test fit" and fit.workers == (a.address, b.address)
    assert fit.scheme == "uncoded" and fit.shape == (2, 2)
    assert [r.index for r in fit.rounds] == list(range(6))
    assert [r.stragglers for r in fit.rounds] == [(1,), (0,), (1,), (0,), (1,), (0,)]
    assert fit.rounds[-1].responders == (1,) and fit.rounds[-1].busy == (1, 0)
    assert [r.error for r in fit.rounds][:5] == pytest.approx([0.1 * t for t in range(5)])
    assert reporter.sent == 8 and reporter.dropped == 0 and reporter.enabled


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_reporter_queue_is_bounded_and_big_codes_go_by_shape(c, s, a, b):
    await c.register_plugin(FitBoard())
    with dask.config.set({"quorum.dashboard.queue": 3, "quorum.dashboard.max-cells": 3}):
        reporter = FitReporter(c, token="fit-2")
    reporter.assignment([a.address, b.address], np.ones((2, 2)), "frc")
    # The loop cannot send before this coroutine awaits: ten rounds queue up.
    for t in range(10):
        reporter.summary(index=t, wall_time=0.01, responders=[0, 1], error=0.5, error_kind="consensus")
    assert reporter.dropped == 7
    board = s.plugins[FitBoard.name]
    await async_poll_for(lambda: reporter.sent == 4, timeout=10)
    fit = board.fits["fit-2"]
    assert [r.index for r in fit.rounds] == [7, 8, 9]
    assert fit.rounds[0].error_kind == "consensus" and fit.rounds[0].stragglers == ()
    assert fit.B is None and fit.shape == (2, 2)  # 4 cells > max-cells


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_reporter_without_board_stays_quiet_then_finds_one(c, s, a, b, caplog):
    caplog.set_level(logging.INFO, logger="dask_quorum.pipeline.dashboard.reporter")
    with dask.config.set({"quorum.dashboard.probe-interval": "50ms"}):
        reporter = FitReporter(c, token="fit-3")
    reporter.assignment([a.address, b.address], np.eye(2), "uncoded")
    reporter.round(record(0, [0]))
    await async_poll_for(lambda: not reporter.enabled and reporter.dropped == 1, timeout=10)
    assert HANDLER not in s.handlers
    assert "No fit board on the scheduler" in caplog.text
    assert "No handler" not in caplog.text  # the probe does not call a missing handler

    dask_setup(s)  # e.g. register() after the fit started
    dask_setup(s)  # idempotent
    assert sum(isinstance(p, FitBoard) for p in s.plugins.values()) == 1
    await async_poll_for(lambda: time.monotonic() - reporter._probed_at > 0.05, timeout=5)
    reporter.round(record(1, [1]))
    board = board_of(s)
    await async_poll_for(lambda: "fit-3" in board.fits and board.fits["fit-3"].rounds, timeout=10)
    fit = board.fits["fit-3"]
    assert fit.workers == (a.address, b.address)  # the kept assignment came along
    assert [r.index for r in fit.rounds] == [1]
    assert reporter.enabled


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_reporter_validates_what_it_is_given(c, s, a, b):
    with pytest.raises(ValueError, match="token"):
        FitReporter(c, token="")
    reporter = FitReporter(c)
    assert len(reporter.token) == 12
    with pytest.raises(ValueError, match="one row per worker"):
        reporter.assignment([a.address], np.eye(2), "uncoded")
    with pytest.raises(ValueError, match="finite"):
        reporter.assignment([a.address, b.address], [[np.nan, 0], [0, 1]], "uncoded")
    with pytest.raises(ValueError, match="error_kind"):
        reporter.summary(index=0, wall_time=0.1, responders=[0], error_kind="gossip")
    with pytest.raises(ValueError, match="wall_time"):
        reporter.summary(index=0, wall_time=-0.1, responders=[0])
    with pytest.raises(ValueError, match="index"):
        reporter.summary(index=-2, wall_time=0.1, responders=[0])
    for bad in (np.inf, -1.0):
        with pytest.raises(ValueError, match="error must be NaN"):
            reporter.summary(index=0, wall_time=0.1, responders=[0], error=bad)
    with dask.config.set({"quorum.dashboard.queue": 5000}):
        with pytest.raises(ValueError, match="quorum.dashboard.queue"):
            FitReporter(c)
    # the handler checks too, whoever calls it
    await c.register_plugin(FitBoard())
    with pytest.raises(ValueError, match="error_kind"):
        await c.scheduler.quorum_fit_report(token="t", updates=[round_update(0, error_kind="gossip")])


def test_reporter_with_a_sync_client_drops_quietly_without_board(client4):
    reporter = FitReporter(client4, token="sync-fit")
    for t in range(50):
        reporter.round(record(t, [0, 1]))
    assert reporter.close(timeout=10)  # the queue drained: dropped, no board
    assert not reporter.enabled and reporter.dropped == 50 and reporter.sent == 0
    assert reporter._close  # kept, with the assignment, should a board appear


# --------------------------------------------------------------------------
# The live model: background re-fits from the recorder
# --------------------------------------------------------------------------


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
