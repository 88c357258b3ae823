"""Tests of the reporter (``pipeline/dashboard/reporter.py``): a fit's updates to the board on a real scheduler."""

from __future__ import annotations

import logging
import time

import dask
import numpy as np
import pytest
from dask_quorum.pipeline.dashboard import FitBoard, FitReporter, board_of
from dask_quorum.pipeline.dashboard.board import dask_setup
from dask_quorum.pipeline.dashboard.messages import HANDLER, MARKER
from dask_quorum.pipeline.engine import RoundRecord
from distributed.utils_test import async_poll_for, gen_cluster

TWO_WORKERS = [("127.0.0.1", 1)] * 2


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
        await c.scheduler.quorum_fit_report(token="t", updates=[{
            "kind": "round", "index": 0, "time": 100.0, "wall_time": 0.01, "responders": [0, 1], "busy": [],
            "error": 0.0, "error_kind": "gossip",
        }])


def test_reporter_with_a_sync_client_drops_quietly_without_board(client4):
    reporter = FitReporter(client4, token="sync-fit")
    for t in range(50):
        reporter.round(record(t, [0, 1]))
    assert reporter.close(timeout=10)  # the queue drained: dropped, no board
    assert not reporter.enabled and reporter.dropped == 50 and reporter.sent == 0
    assert reporter._close  # kept, with the assignment, should a board appear

