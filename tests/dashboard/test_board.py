"""Tests of the fit board (``pipeline/dashboard/board.py``), the scheduler's store of running fits, and the checks of its updates."""

from __future__ import annotations

import math

import dask
import numpy as np
import pytest
from dask_quorum.pipeline.dashboard import FitBoard

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


