"""Tests of dask_quorum.pipeline.engine.membership: hang detection and heartbeat lag (no cluster)."""

from __future__ import annotations

import time

from dask_quorum.pipeline.engine import HangDetector, SchedulerView, heartbeat_lag


def _view(last_seen: dict[str, float]) -> SchedulerView:
    return SchedulerView(id="s", address="tcp://s", workers={w: {"last_seen": t} for w, t in last_seen.items()})


def test_hang_detector_needs_missed_rounds_silence_and_an_answered_round():
    detector = HangDetector(missed_rounds=3, heartbeat_timeout=10.0)
    members = ["a", "b", "c"]
    for _ in range(2):
        detector.observe(members, busy=["b", "c"])
    assert detector.suspects() == []  # two rounds are not three
    detector.observe(members, busy=["b", "c"])
    assert detector.suspects() == ["b", "c"]
    view = _view({"a": 100.0, "b": 99.5, "c": 80.0})
    # b heartbeats (a busy straggler), c has been silent for 20 s
    assert detector.hung(view) == {"c": 20.0}
    # c never answered a round: it may be loading modules, not hung
    assert detector.hung(view, eligible=["a", "b"]) == {}
    detector.observe(members, busy=["b"])  # c answered: no longer a suspect
    assert detector.hung(view) == {}
    # alone in the cluster: silence is measured on the driver's clock
    alone = HangDetector(missed_rounds=1, heartbeat_timeout=0.05)
    alone.observe(["x"], busy=["x"])
    assert alone.hung(_view({"x": 5.0})) == {}
    time.sleep(0.1)
    assert set(alone.hung(_view({"x": 5.0}))) == {"x"}
    assert heartbeat_lag("x", _view({"x": 5.0})) is None
