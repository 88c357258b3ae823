"""Tests of dask_quorum.pipeline.inject.replay (trace replay of straggler slowdowns)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
from dask_quorum.pipeline.inject import (
    InjectionRecord,
    Slowdown,
    StragglerInjector,
    TraceReplay,
    inject_stragglers,
    injection_log,
)
from distributed import wait
from distributed.utils_test import gen_cluster

NAME = StragglerInjector.name
TWO_WORKERS = [("127.0.0.1", 1)] * 2
TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces" / "aws_ec2_iteration_times.csv"  # ../shared


def records(worker) -> list[InjectionRecord]:
    return worker.plugins[NAME].records()


TOY_CSV = """\
trace,node,iteration,seconds,host
toy,a,1,3.0,h1
toy,a,0,1.0,h1
toy,b,0,2.0,h2
toy,c,0,4.0,h3
toy,b,1,1.5,h2
toy,c,1,1.5,h3
toy,a,2,9.0,h1
other,a,0,5.0,h1
"""


def write_csv(tmp_path, text: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return path


def test_replay_factors_from_small_csv(tmp_path):
    path = write_csv(tmp_path, TOY_CSV)
    replay = TraceReplay.from_csv(path, "toy", workers=["x", "y", "z"])
    # Iterations ordered by number; iteration 2 (node a only) is dropped.
    # Reference = median per iteration: 2.0 then 1.5.
    expected = np.array([[1.0, 1.0, 2.0], [2.0, 1.0, 1.0]])
    np.testing.assert_allclose(replay.factors, expected)
    assert (replay.delays == 0).all()  # neither budget nor scale
    assert replay.n_iterations == 2
    assert (replay.workers, replay.nodes, replay.trace) == (
        ("x", "y", "z"),
        ("a", "b", "c"),
        "toy",
    )

    # scale: delay = scale * (seconds - reference) where slower than it.
    scaled = TraceReplay.from_csv(path, "toy", workers=["x", "y", "z"], scale=0.5)
    np.testing.assert_allclose(scaled.factors, expected)
    np.testing.assert_allclose(scaled.delays, [[0, 0, 0.5 * 2.0], [0.5 * 1.5, 0, 0]])
    # budget: the mean reference iteration (1.75 s) lasts `budget` seconds.
    budget = TraceReplay.from_csv(path, "toy", workers=["x", "y", "z"], budget=0.1)
    unit = 0.1 * np.array([2.0, 1.5]) / 1.75
    np.testing.assert_allclose(budget.delays, (expected - 1) * unit[:, None])

    # Fewer workers: the first nodes, still relative to all nodes' median.
    two = TraceReplay.from_csv(path, "toy", workers=[0, 1], scale=0.5)
    np.testing.assert_allclose(two.factors, expected[:, :2])
    np.testing.assert_allclose(two.delays, scaled.delays[:, :2])
    assert two.nodes == ("a", "b")

    # Frozen, read-only, compared by value.
    assert replay == TraceReplay.from_csv(path, "toy", workers=["x", "y", "z"])
    same = TraceReplay(("x", "y", "z"), expected, None, "abc", "toy")
    assert hash(replay) == hash(same)
    assert replay != scaled
    with pytest.raises(dataclasses.FrozenInstanceError):
        replay.factors = expected
    with pytest.raises(ValueError, match="read-only"):
        replay.factors[0, 0] = 5.0


def test_replay_reference_is_lower_median():
    # Two nodes: the faster one; four nodes: the second fastest.
    two = TraceReplay.from_matrix([[4.0, 1.0]], [0, 1])
    assert two.factors.tolist() == [[4.0, 1.0]]
    four = TraceReplay.from_matrix([[1.0, 2.0, 3.0, 4.0]], range(4))
    assert four.factors.tolist() == [[1.0, 1.0, 1.5, 2.0]]
    assert four.workers == (0, 1, 2, 3) and four.nodes == ("0", "1", "2", "3")


@pytest.mark.skipif(not TRACES.exists(), reason=f"no trace file at {TRACES}")
def test_replay_real_trace_data2_persistent_straggler():
    replay = TraceReplay.from_csv(TRACES, "data2", workers=range(15), budget=0.05)
    assert replay.factors.shape == (100, 15)
    assert (replay.factors >= 1).all()
    straggler = int(np.argmax(np.median(replay.factors, axis=0)))
    assert replay.nodes[straggler] == "node04"
    f = replay.factors[:, straggler]
    assert 10 <= np.median(f) <= 12.5
    assert np.mean((f >= 9.5) & (f <= 13)) >= 0.7  # most iterations
    others = np.delete(replay.factors, straggler, axis=1)
    assert np.median(others) < 1.02 and (others < 1.25).all()
    # About (12 - 1) x budget of extra delay in a typical straggling round.
    assert 0.45 <= np.median(replay.delays[:, straggler]) <= 0.6
    assert np.median(np.delete(replay.delays, straggler, axis=1)) < 0.002

    first = TraceReplay.from_csv(TRACES, "data2", workers=range(5), budget=0.05)
    np.testing.assert_allclose(first.factors, replay.factors[:, :5])
    np.testing.assert_allclose(first.delays, replay.delays[:, :5])


def test_replay_wraps_around():
    replay = TraceReplay.from_matrix(
        [[3.0, 1.0], [1.0, 2.0], [2.0, 1.0]], workers=["w0", "w1"], budget=0.02
    )
    factors, delays = replay.schedule("w0", 7)
    assert factors.tolist() == [3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0]
    np.testing.assert_allclose(delays, [0.04, 0, 0.02, 0.04, 0, 0.02, 0.04])
    factors, delays = replay.schedule("w1", 4)
    assert factors.tolist() == [1.0, 2.0, 1.0, 1.0]
    assert replay.schedule("w1", 0)[0].shape == (0,)


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_replay_on_cluster_follows_matrix(c, s, a, b):
    seconds = [[3.0, 1.0], [1.0, 2.0], [2.0, 1.0]]
    replay = TraceReplay.from_matrix(seconds, [a.name, b.address], budget=0.02)
    factors = {a.address: [3.0, 1.0, 2.0], b.address: [1.0, 2.0, 1.0]}
    injector = await inject_stragglers(c, replay)
    assert isinstance(injector, StragglerInjector)
    assert a.plugins[NAME].replay == replay and a.plugins[NAME].slowdowns == {}

    # 6 tasks on a: two passes over the 3 iterations (wrap-around).
    fa = c.map(time.sleep, [0.02] * 6, workers=[a.address], pure=False)
    fb = c.map(time.sleep, [0.02] * 3, workers=[b.address], pure=False)
    await wait(fa + fb)

    log = await injection_log(c)
    assert {r.key for r in log[a.address]} == {f.key for f in fa}
    assert {r.key for r in log[b.address]} == {f.key for f in fb}
    for worker, n in [(a.address, 6), (b.address, 3)]:
        got = sorted(log[worker], key=lambda r: r.index)
        assert [r.index for r in got] == list(range(n))
        for r in got:
            f = factors[worker][r.index % 3]
            assert r.factor == f
            assert r.delay == pytest.approx((f - 1) * 0.02)
            assert r.slow == (f > 1)
            want = (f - 1) * r.natural + r.delay
            if r.slow:
                assert 0.95 * want <= r.added <= want + 0.25
            else:
                assert r.added == 0.0
    assert sum(r.slow for r in log[a.address]) == 4

    # The Markov path still works after a replay, and logs its factor too.
    await inject_stragglers(c, {a.name: Slowdown(factor=2, delay=0.01)})
    x = c.submit(time.sleep, 0.01, workers=[a.address], pure=False)
    await x
    [r] = records(a)
    assert (r.key, r.slow, r.factor, r.delay) == (x.key, True, 2.0, 0.01)
    assert r.added >= 0.95 * (r.natural + 0.01)
    assert a.plugins[NAME].replay is None


@gen_cluster(client=True, nthreads=TWO_WORKERS)
async def test_replay_unknown_worker_is_rejected(c, s, a, b):
    replay = TraceReplay.from_matrix([[1.0, 2.0], [2.0, 1.0]], [a.name, "nope"])
    with pytest.raises(ValueError, match=r"unknown worker\(s\) \['nope'\]") as info:
        await inject_stragglers(c, replay)
    assert a.address in str(info.value) and b.address in str(info.value)
    assert NAME not in s.worker_plugins and NAME not in a.plugins
    with pytest.raises(ValueError, match="more than once"):
        await inject_stragglers(
            c, TraceReplay.from_matrix([[1.0, 2.0]], [a.name, a.address])
        )
    with pytest.raises(ValueError, match="unknown worker 'nope'"):
        TraceReplay.from_matrix([[1.0, 2.0]], [0, 1]).schedule("nope", 1)


HEADER = "trace,node,iteration,seconds\n"


@pytest.mark.parametrize(
    "text, trace, match",
    [
        ("", "toy", "is empty: expected a header"),
        (
            "trace,node,seconds\ntoy,a,1.0\n",
            "toy",
            r"lacks the column\(s\) \['iteration'\]",
        ),
        (HEADER + "toy,a,0,fast\n", "toy", "line 2: seconds must be a number, got 'f"),
        (HEADER + "toy,a,0,1\ntoy,b,0,-2.5\n", "toy", "line 3: seconds must be finite"),
        (HEADER + "toy,a,0,nan\n", "toy", "seconds must be finite and >= 0, got 'nan'"),
        (HEADER + "toy,a,zero,1.0\n", "toy", "iteration must be an integer"),
        (HEADER + "toy,a,-1,1.0\n", "toy", "iteration must be >= 0"),
        (
            HEADER + "toy,a,0,1\ntoy,b,0,1\nother,a,0,1\n",
            "nope",
            r"unknown trace 'nope'.*known traces: \['other', 'toy'\]",
        ),
        (HEADER, "toy", "trace 'toy' is empty: .* has no data rows"),
        (
            HEADER + "toy,a,0,1\ntoy,b,1,1\n",
            "toy",
            "trace 'toy' is empty: no iteration was recorded by every node",
        ),
        (HEADER + "toy,a,0,1\ntoy,a,1,1\ntoy,b,0,1\ntoy,b,1", "toy", "line 5: trunc"),
        (HEADER + "toy,a,0,1\ntoy,b,0,\n", "toy", "line 3: truncated row"),
        (HEADER + "toy,a,0,1,9\n", "toy", "line 2: too many fields"),
        (HEADER + "toy,a,0,1\ntoy,a,0,2\n", "toy", "iteration 0 of node 'a' .* twice"),
    ],
)
def test_replay_csv_errors(tmp_path, text, trace, match):
    path = write_csv(tmp_path, text)
    with pytest.raises(ValueError, match=match):
        TraceReplay.from_csv(path, trace, workers=[0])


@pytest.mark.parametrize(
    "seconds, workers, kwargs, match",
    [
        ([[1.0, 2.0]], [0, 1, 2], {}, "3 workers but the trace 'toy' has only 2 nodes"),
        ([["a", 1.0]], [0], {}, "seconds must be numeric"),
        ([1.0, 2.0], [0], {}, r"must be a matrix \(n_iterations, n_nodes\)"),
        (np.ones((0, 2)), [0], {}, "trace 'toy' is empty"),
        ([[1.0, np.inf]], [0], {}, "seconds must be finite"),
        ([[1.0, -1.0]], [0], {}, "must be >= 0, got -1.0 at iteration 0, node 1"),
        ([[1.0, 2.0], [0.0, 0.0]], [0], {}, "iteration 1 of trace 'toy' has a refer"),
        ([[1.0, 2.0]], [0], {"budget": 1.0, "scale": 1.0}, "not both"),
        ([[1.0, 2.0]], [0], {"budget": -1.0}, "budget must be finite and >= 0"),
        ([[1.0, 2.0]], [0], {"scale": float("nan")}, "scale must be finite"),
        ([[1.0, 2.0]], [0, "0"], {}, "given twice"),
        ([[1.0, 2.0]], "01", {}, "workers must be a sequence"),
        ([[1.0, 2.0]], [], {}, "at least one worker"),
        ([[1.0, 2.0]], [1.5], {}, "address or name"),
        ([[1.0, 2.0]], [0], {"nodes": ["a"]}, "1 node labels for 2 nodes"),
    ],
)
def test_replay_matrix_errors(seconds, workers, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TraceReplay.from_matrix(seconds, workers, trace="toy", **kwargs)


@pytest.mark.parametrize(
    "args, match",
    [
        (([0], [[0.5]]), "factors must be >= 1.0"),
        (([0], [[1.0]], [[-1.0]]), "delays must be >= 0.0"),
        (([0], [[1.0, 1.0]]), "factors has 2 columns but 1 workers"),
        (([0], [[1.0]], [[0.0], [0.0]]), "delays has shape"),
        (([0], np.ones((0, 1))), "factors is empty"),
        (([0, 1], [[1.0, 1.0]], None, ["a"]), "1 node labels for 2 workers"),
    ],
)
def test_replay_constructor_validation(args, match):
    with pytest.raises(ValueError, match=match):
        TraceReplay(*args)
    with pytest.raises(ValueError, match="mapping of worker to Slowdown, or a"):
        StragglerInjector([TraceReplay([0], [[1.0]])])


def test_replay_is_reexported():
    import dask_quorum.pipeline
    from dask_quorum.pipeline import inject
    from dask_quorum.pipeline.inject import replay

    import dask_quorum

    assert replay.TraceReplay is inject.TraceReplay is TraceReplay
    assert dask_quorum.pipeline.TraceReplay is dask_quorum.TraceReplay is TraceReplay
    assert "TraceReplay" in inject.__all__
