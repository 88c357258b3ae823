"""Tests of dask_quorum.pipeline.engine.replan: the decisions when a session's workers change (no cluster).

The session applies them on a real cluster: see test_faults.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.coding import make_code
from dask_quorum.pipeline.engine import SchedulerView, WorkersLostError
from dask_quorum.pipeline.engine.replan import (
    code_after_change,
    membership_events,
    needs_replan,
    next_members,
    read_changes,
    regrouped,
)


def _view(*workers: str) -> SchedulerView:
    return SchedulerView(id="s", address="tcp://s", workers={w: {"last_seen": 1.0} for w in workers})


def test_read_changes_finds_the_departed_the_hung_and_the_joiners():
    lost, joiners = read_changes(
        _view("a", "b", "d", "e", "f"),
        workers=["a", "b", "c"],
        gone={"e"},  # lost before: never taken in again
        lost={"b": "its task failed with KilledWorker", "f": "left the cluster with its data"},
        hung={"a": 12.34, "b": 5.0},
        missed_rounds=3,
    )
    assert lost == {
        "b": "its task failed with KilledWorker",  # the round's reason is kept
        "f": "left the cluster with its data",
        "c": "left the cluster",
        "a": "no heartbeat for 12.3 s, busy for 3+ rounds",
    }
    assert joiners == ["d"]


def test_a_replan_needs_a_loss_or_a_joiner_with_a_partition_to_take():
    assert needs_replan({"a": "left"}, [], n_workers=4, n_partitions=4)
    assert needs_replan({}, ["x"], n_workers=3, n_partitions=4)
    assert not needs_replan({}, ["x"], n_workers=4, n_partitions=4)  # no partition left for it
    assert needs_replan({"a": "left"}, ["x"], n_workers=4, n_partitions=4)
    assert not needs_replan({}, [], n_workers=4, n_partitions=4)


def test_next_members_keeps_the_survivors_order_and_caps_the_joiners():
    members, joiners = next_members(
        ["a", "b", "c"], {"b": "left"}, ["x", "y", "z"], n_partitions=4, min_workers=1, gone=set(), index=7
    )
    assert members == ["a", "c", "x", "y"] and joiners == ["x", "y"]


def test_next_members_stops_below_min_workers_naming_every_lost_worker():
    with pytest.raises(WorkersLostError, match="fewer than quorum.faults.min-workers=2") as err:
        next_members(["a", "b"], {"b": "left the cluster"}, [], n_partitions=4, min_workers=2, gone={"z"}, index=5)
    assert "round 5" in str(err.value) and "b (left the cluster)" in str(err.value)
    assert err.value.lost == ("b", "z")
    with pytest.raises(WorkersLostError, match="min-workers=1"):  # never fewer than one
        next_members(["a"], {"a": "left"}, [], n_partitions=4, min_workers=0, gone=set(), index=0)


def test_the_code_after_a_change_caps_the_redundancy_and_falls_back_to_cyclic():
    kw = dict(random_state=0, code_factory=None)
    assert code_after_change(3, scheme="frc", redundancy=2, **kw).scheme == "cyclic"  # 2 does not divide 3
    assert code_after_change(4, scheme="frc", redundancy=2, **kw).scheme == "frc"
    capped = code_after_change(2, scheme="cyclic", redundancy=3, **kw)
    assert capped.n_workers == 2 and capped.redundancy == 2
    made = make_code("sync", 3)
    assert code_after_change(3, scheme="cyclic", redundancy=2, random_state=0, code_factory=lambda n: made) is made


def test_regrouped_without_a_placement_expands_over_every_partition():
    code = make_code("cyclic", 3, redundancy=2)
    groups, expanded = regrouped(code, None, ["a", "b", "c"], 6)
    assert len(groups) == 3 and sorted(np.concatenate(groups).tolist()) == list(range(6))
    assert expanded.B.shape == (3, 6)
    assert (np.count_nonzero(expanded.B, axis=0) == 2).all()  # every partition twice


def test_membership_events_list_the_lost_then_the_joiners():
    events = membership_events(4, {"b": "left", "a": "hung"}, ["x"])
    assert [(e.round, e.action, e.worker, e.reason) for e in events] == [
        (4, "lost", "a", "hung"),
        (4, "lost", "b", "left"),
        (4, "joined", "x", "joined the cluster"),
    ]
