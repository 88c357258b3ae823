"""ASAP runs on the dashboard (``pipeline/asap/progress.py``): live rounds with consensus errors, the final round, the page."""

from __future__ import annotations

import time

import dask
import numpy as np
import pytest
from averaging import AveragingBuilder
from dask_quorum.pipeline.asap import make_graph, run_asap
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers

import dask_quorum
from dask_quorum import LogisticRegression


@pytest.fixture(scope="module")
def board_client(client4):
    """``client4`` with the dashboard registered (recorder, fit board, page)."""
    dask_quorum.register_dashboard(client4)
    return client4


def _board_fits(dask_scheduler):
    """Every fit on the scheduler's board, as plain data (run on the scheduler)."""
    from dask_quorum.pipeline.dashboard import board_of

    board = board_of(dask_scheduler)
    return {
        token: {
            "label": fit.label, "scheme": fit.scheme, "workers": list(fit.workers), "closed": fit.closed,
            "B": None if fit.B is None else fit.B.tolist(), "n_rounds": fit.n_rounds,
            "rounds": [
                {"index": r.index, "wall_time": r.wall_time, "error": r.error, "error_kind": r.error_kind,
                 "stragglers": list(r.stragglers), "responders": list(r.responders), "busy": list(r.busy),
                 "stop": r.stop,
                 "scheme": r.scheme}
                for r in fit.rounds
            ],
        }
        for token, fit in board.fits.items()
    }


def _page(dask_scheduler):
    """Build the page on the scheduler, refresh it, return what it shows."""
    from dask_quorum.pipeline.dashboard import StragglersPage

    page = StragglersPage(dask_scheduler)
    page.update()
    return {
        "fit": page.select.value,
        "status": page.status.text,
        "assignment_title": page.assignment_figure.title.text,
        "error_title": page.error_figure.title.text,
        "assignment": {k: list(v) for k, v in page.assignment.data.items()},
        "rounds": {k: list(v) for k, v in page.rounds.data.items()},
    }


def _asap_fit(client, before):
    """The one ASAP fit on the board that was not in ``before``, once it closed."""
    deadline = time.monotonic() + 20
    while True:
        fits = client.run_on_scheduler(_board_fits)
        new = {t: f for t, f in fits.items() if t not in before and f["scheme"] == "asap"}
        if new and all(f["closed"] for f in new.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(new) == 1, f"expected one new ASAP fit on the board, got {list(new)}"
    return next(iter(new.items()))


def _fit_with_a_straggler(client, X, y, slow, staleness):
    """An ASAP fit with worker ``slow`` 5 ms slower per step; the estimator, the board's token and fit."""
    before = client.run_on_scheduler(_board_fits)
    inject_stragglers(client, {slow: Slowdown(factor=1.0, delay=0.005)}, seed=0)
    try:
        # a few reports per second of page refresh: several in a one-second fit
        with dask.config.set({"quorum.dashboard.update-interval": "100ms"}):
            est = LogisticRegression(scheme="asap", staleness=staleness, tol=1e-6, max_iter=5000, random_state=0)
            est.fit(X, y)
    finally:
        remove_stragglers(client)
    return (est, *_asap_fit(client, before))


def test_asap_fit_reports_rounds_with_consensus_errors(board_client, cancer):
    client, (X, y) = board_client, cancer
    workers = sorted(scheduler_workers(client))
    est, token, fit = _fit_with_a_straggler(client, X, y, workers[1], staleness=0)
    h = est.history_
    assert fit["label"].startswith("asap, logistic loss") and "staleness 0" in fit["label"]
    # the assignment: one partition per worker, by graph position
    assert fit["workers"] == list(h["worker"].values)
    np.testing.assert_array_equal(fit["B"], np.eye(4))
    rounds = fit["rounds"]
    index = [r["index"] for r in rounds]
    assert len(rounds) >= 3 and index == sorted(set(index))
    # the last round comes from the history, with why the fit stopped
    assert index[-1] == est.n_iter_ - 1 and rounds[-1]["stop"] == "converged"
    assert all(r["error_kind"] == "consensus" and r["scheme"] == "asap" for r in rounds)
    # the live rounds carry the same consensus error and wall time as the history
    np.testing.assert_allclose([r["error"] for r in rounds], h["consensus_error"].values[index], rtol=1e-9)
    np.testing.assert_allclose([r["wall_time"] for r in rounds], h["wall_time"].values[index], rtol=1e-9)
    assert rounds[0]["error"] > 100 * rounds[-1]["error"]
    # the slowed worker straggles (its step takes > 2x the round median)
    slow = fit["workers"].index(workers[1])
    assert sum(slow in r["stragglers"] for r in rounds) >= len(rounds) / 2
    assert all(sorted(r["responders"] + r["stragglers"]) == list(range(4)) for r in rounds)

    page = client.run_on_scheduler(_page)
    assert page["fit"] == token  # the latest fit, followed
    assert page["assignment_title"].startswith("ASAP") and page["error_title"].startswith("Consensus error")
    assert sorted(page["assignment"]["weight"]) == [1.0] * 4
    assert page["rounds"]["index"] == index
    assert "scheme asap" in page["status"] and "4 workers x 4 partitions" in page["status"]


def test_stale_versions_used_mark_their_owner_busy(board_client, cancer):
    client, (X, y) = board_client, cancer
    workers = sorted(scheduler_workers(client))
    est, _, fit = _fit_with_a_straggler(client, X, y, workers[2], staleness=2)
    h = est.history_
    assert "staleness 2" in fit["label"]
    live = fit["rounds"][:-1]
    assert live, "no round was reported while the fit ran"
    stale = [r for r in live if " stale, up to " in r["stop"]]
    # a round shows stale versions exactly when the history counts some, and as many
    assert [r["index"] for r in stale] == [r["index"] for r in live if h["stale_reduces"].values[r["index"]] > 0]
    assert [int(r["stop"].split()[0]) for r in stale] == [int(h["stale_reduces"].values[r["index"]]) for r in stale]
    assert stale, "the fast workers never used a stale version of the slowed one"
    assert all(r["busy"] for r in stale) and not any(r["busy"] for r in live if r not in stale)
    # the slowed worker: still on an older round when its peers moved on, and slow
    slow = fit["workers"].index(workers[2])
    assert sum(slow in r["busy"] for r in stale) >= len(stale) / 2
    assert sum(slow in r["stragglers"] for r in live) >= len(live) / 2
    np.testing.assert_allclose([r["error"] for r in live], h["consensus_error"].values[[r["index"] for r in live]],
                               rtol=1e-9)


def test_run_asap_checks_its_error_kind(board_client):
    workers = sorted(scheduler_workers(board_client))
    with pytest.raises(ValueError, match="error must be one of"):
        run_asap(board_client, AveragingBuilder(), [np.zeros(2)] * 4, graph=make_graph(4), staleness=0,
                 max_rounds=3, tol=0.0, workers=workers, error="gossip")
