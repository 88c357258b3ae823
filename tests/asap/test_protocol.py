"""NOTIFY-ACK as a state machine, under random interleavings (no cluster).

A tiny event simulator runs one :class:`NotifyAck` per worker: at every
step it picks a random enabled action (a worker publishing, a worker
reducing, or *any* message in flight being delivered, in any order), so the
schedules cover reorderings the real transport may or may not produce.
"""

from __future__ import annotations

import numpy as np
import pytest
from averaging import AveragingProgram
from dask_quorum.estimators._losses import GLMPartial, PenalisedMean
from dask_quorum.pipeline.asap import (
    GLMSpec,
    NotifyAck,
    ProtocolError,
    TrackingBuilder,
    curvature_sample,
    make_graph,
)
from dask_quorum.pipeline.engine import row_partitions
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler


def simulate(programs, graph, rounds, *, staleness=0, seed=0, slow=(), slow_weight=0.1):
    """Run ``rounds`` rounds of every program over NOTIFY-ACK in a random order.

    Workers in ``slow`` are picked with a lower probability. Returns the
    protocols (their ``consumed`` logs) and the number of versions delivered.
    """
    rng = np.random.default_rng(seed)
    n = graph.n
    protos = [NotifyAck(i, graph.in_peers(i), graph.out_peers(i), staleness=staleness) for i in range(n)]
    t = [0] * n
    own = [None] * n
    published = [False] * n
    flight = []  # (sender, Send)
    sent = 0
    while True:
        actions = []
        for i in range(n):
            if t[i] >= rounds:
                continue
            if not published[i] or not protos[i].missing(t[i]):
                actions.append(("worker", i))
        actions += [("deliver", k) for k in range(len(flight))]
        if not actions:
            break
        weights = np.array([slow_weight if a[0] == "worker" and a[1] in slow else 1.0 for a in actions])
        kind, k = actions[rng.choice(len(actions), p=weights / weights.sum())]
        if kind == "deliver":
            src, send = flight.pop(k)
            if send.kind == "notify":
                protos[send.peer].on_notify(src, send.version, send.payload)
                sent += 1
            else:
                flight += [(send.peer, s) for s in protos[send.peer].on_ack(src, send.version)]
            continue
        i = k
        if not published[i]:
            own[i] = programs[i].message()
            out = protos[i].publish(t[i], own[i])
            flight += [(i, s) for s in out]
            published[i] = True
            continue
        versions, acks = protos[i].consume(t[i])
        flight += [(i, s) for s in acks]
        programs[i].step(own[i], {j: p for j, (v, p) in versions.items()})
        t[i] += 1
        published[i] = False
    assert t == [rounds] * n, f"deadlock: workers stopped at rounds {t}"
    return protos, sent


@pytest.mark.parametrize("n, seed", [(2, 0), (5, 1), (8, 2), (13, 3), (16, 4)])
def test_strict_protocol_computes_exactly_the_synchronous_averaging(n, seed):
    graph = make_graph(n)
    x0 = np.random.default_rng(seed).normal(size=(n, 3))
    programs = [AveragingProgram(x0[i]) for i in range(n)]
    rounds = 12
    protos, sent = simulate(programs, graph, rounds, seed=seed, slow={0})
    lockstep = [AveragingProgram(x0[i]) for i in range(n)]
    for _ in range(rounds):
        msgs = [p.message() for p in lockstep]
        for i, p in enumerate(lockstep):
            p.step(msgs[i], {j: msgs[j] for j in graph.in_peers(i)})
    # bit for bit what a lock-step run computes: the same versions, in the same order
    np.testing.assert_array_equal(np.array([p.x for p in programs]), np.array([p.x for p in lockstep]))
    np.testing.assert_allclose(np.array([p.x for p in programs]), np.linalg.matrix_power(graph.W, rounds) @ x0)
    assert sent == n * graph.degree * rounds  # every version went to every out-peer, once


@pytest.mark.parametrize("seed", range(4))
def test_a_reduce_takes_one_version_per_peer_and_no_version_is_lost(seed):
    graph = make_graph(9)
    programs = [AveragingProgram(np.zeros(1)) for _ in range(9)]
    protos, _ = simulate(programs, graph, 10, seed=seed, slow={2, 5})
    for i, proto in enumerate(protos):
        log = np.array(proto.consumed)
        for peer in graph.in_peers(i):
            mine = log[log[:, 1] == peer]
            # exactly one version of this peer per reduce ...
            assert list(mine[:, 0]) == list(range(10))
            # ... and it is that round's version: 0, 1, 2, ... none twice, none skipped
            assert list(mine[:, 2]) == list(range(10))


@pytest.mark.parametrize("staleness", [1, 3])
def test_stale_reduces_use_the_latest_version_within_the_bound(staleness):
    graph = make_graph(8)
    programs = [AveragingProgram(np.full(2, float(i))) for i in range(8)]
    protos, _ = simulate(programs, graph, 30, staleness=staleness, seed=7, slow={0, 1}, slow_weight=0.02)
    used_stale = 0
    for i, proto in enumerate(protos):
        log = np.array(proto.consumed)
        assert (log[:, 2] >= log[:, 0] - staleness).all()  # never older than allowed
        for peer in graph.in_peers(i):
            versions = log[log[:, 1] == peer][:, 2]
            assert (np.diff(versions) >= 0).all()  # never goes back
        used_stale += int((log[:, 2] < log[:, 0]).sum())
    assert used_stale > 0  # the slow workers did make the others reuse versions


def test_stale_gradient_tracking_still_reaches_the_optimum():
    """The tracker's mass survives reused and superseded versions (asap_glm)."""
    X, y = load_breast_cancer(return_X_y=True)
    X, y = StandardScaler().fit_transform(X), y.astype(float)
    n, l2 = 6, 1.0 / len(y)
    partial = GLMPartial("logistic", X.shape[1], 1, True)
    objective = PenalisedMean(partial, len(y), l2)
    graph = make_graph(n)
    spec = GLMSpec(partial, objective, l2, len(y), n)
    sample = curvature_sample(X, y, 20 * 31, np.random.RandomState(0))
    builder = TrackingBuilder(spec, sample, np.zeros(31), graph.spectral_gap**2 / 2, 10, 2000)
    parts = row_partitions(X, y, n)

    def final_gradient(staleness):
        programs = [builder.build(i, parts[i], graph.in_peers(i)) for i in range(n)]
        protos, _ = simulate(programs, graph, 400, staleness=staleness, seed=3, slow={0}, slow_weight=0.05)
        stale = sum(int((np.array(p.consumed)[:, 2] < np.array(p.consumed)[:, 0]).sum()) for p in protos)
        xbar = np.mean([p.x for p in programs], axis=0)
        return np.abs(objective(xbar, partial(xbar, (X, y)))[1]).max(), stale

    strict, none = final_gradient(0)
    stale, used = final_gradient(4)
    assert none == 0 and used > 100
    assert strict < 1e-8
    assert stale < 1e-6


def test_protocol_violations_raise():
    proto = NotifyAck(0, [1], [1])
    proto.on_notify(1, 0, "v0")
    with pytest.raises(ProtocolError, match="before ACKing version 0"):
        proto.on_notify(1, 1, "v1")  # a second version before the ACK
    proto.consume(0)
    with pytest.raises(ProtocolError, match="a version was lost"):
        proto.on_notify(1, 2, "v2")  # version 1 never came
    with pytest.raises(ProtocolError, match="not an in-peer"):
        proto.on_notify(5, 0, "x")
    sends = proto.publish(0, "mine")
    assert [(s.kind, s.peer, s.version) for s in sends] == [("notify", 1, 0)]
    assert proto.publish(1, "next") == []  # waits for the ACK of version 0
    assert proto.pending() == {1: 2}
    with pytest.raises(ProtocolError, match="while version 0 was in flight"):
        proto.on_ack(1, 1)
    [again] = proto.on_ack(1, 0)
    assert (again.version, again.payload) == (1, "next")
    with pytest.raises(ProtocolError, match="published version 3 after 1"):
        proto.publish(3, "skip")
    with pytest.raises(ProtocolError, match="cannot reduce round 1"):
        proto.consume(1)
    with pytest.raises(ValueError, match="staleness"):
        NotifyAck(0, [], [], staleness=-1)


def test_a_stale_sender_sends_only_its_latest_version():
    proto = NotifyAck(0, [], [1], staleness=2)
    assert len(proto.publish(0, "a")) == 1
    assert proto.publish(1, "b") == [] and proto.publish(2, "c") == []
    [send] = proto.on_ack(1, 0)
    assert (send.version, send.payload) == (2, "c")  # "b" was superseded, never sent
