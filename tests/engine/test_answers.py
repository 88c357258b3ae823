"""Tests of dask_quorum.pipeline.engine.answers: when a round stops, what it decodes (no cluster)."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.coding import make_code
from dask_quorum.pipeline.engine.answers import Answers, can_finish


def _answers(scheme, redundancy=2, decode_tol=0.0):
    code = make_code(scheme, 4, redundancy=redundancy, random_state=0)
    columns = [np.flatnonzero(row) for row in code.B]
    return code, Answers(code, columns, decode_tol)


def _results(code, seed=0):
    """Each worker's coded partial of random per-partition vectors, and their sum."""
    g = np.random.default_rng(seed).normal(size=(code.n_partitions, 3))
    return code.B @ g, g.sum(axis=0)


def test_an_exact_code_stops_at_the_first_responders_that_decode_exactly():
    code, answers = _answers("cyclic")  # worker i holds partitions i, i+1
    results, want = _results(code)
    assert answers.take(0, results[0]) is None
    assert answers.error == 1.0  # a partition is missing: no least squares
    assert answers.take(2, results[2]) == "exact"
    assert answers.responders == [0, 2] and answers.error == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(answers.decode(), want)


def test_a_missing_partition_waits_until_the_quorum():
    code, answers = _answers("cyclic")
    results, want = _results(code)
    assert answers.take(0, results[0]) is None
    assert answers.take(1, results[1]) is None  # partition 3 is not covered
    assert answers.take(3, results[3]) == "exact"  # three responders: decoded
    np.testing.assert_allclose(answers.decode(), want)


def test_an_approximate_code_stops_at_the_quorum():
    code, answers = _answers("uncoded")
    results, _ = _results(code)
    assert [answers.take(i, results[i]) for i in range(3)] == [None, None, "quorum"]
    assert answers.error == pytest.approx(code.error([0, 1, 2])) and answers.error > 0


def test_a_tolerance_stops_before_the_quorum_is_checked():
    code, answers = _answers("uncoded", decode_tol=0.5)
    results, _ = _results(code)
    assert answers.take(0, results[0]) is None
    assert answers.error == pytest.approx(code.error([0]))  # a tolerance needs the error
    assert answers.take(1, results[1]) is None
    assert answers.take(2, results[2]) == "tolerance"


def test_the_deadline_decodes_what_arrived():
    code, answers = _answers("uncoded")
    results, _ = _results(code)
    assert answers.take(1, results[1]) is None
    assert answers.at_deadline() == "deadline"
    assert answers.error == pytest.approx(code.error([1]))
    np.testing.assert_allclose(answers.decode(), code.decode([1])[0] * results[1])


def test_can_finish_with_a_quorum_a_deadline_or_an_exact_decoding():
    sync = make_code("sync", 4, redundancy=1)
    cyclic = make_code("cyclic", 4, redundancy=2)
    assert not can_finish(sync, [0, 1, 2], has_deadline=False)
    assert can_finish(sync, [0, 1, 2], has_deadline=True)
    assert not can_finish(sync, [], has_deadline=True)
    assert can_finish(cyclic, [0, 1, 2], has_deadline=False)  # the quorum
    assert can_finish(cyclic, [0, 2], has_deadline=False)  # decodes exactly
    assert not can_finish(cyclic, [0, 1], has_deadline=False)
