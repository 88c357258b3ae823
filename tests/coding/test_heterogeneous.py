"""The heterogeneity-aware code: loads, placement, reliable cover, coefficients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from codes import HYPOTHESIS, all_slow_columns, worker_loads
from dask_quorum.pipeline.coding import GradientCode, make_code
from hypothesis import given
from hypothesis import strategies as st

HETEROGENEOUS_CASES = [
    ([0.9, 0.9, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05], 2),
    ([0.05, 0.9, 0.05, 0.05, 0.9, 0.05, 0.05, 0.05], 3),
    ([0.0, 0.3, 0.6, 0.2, 0.99, 0.1, 0.45, 0.7, 0.8, 0.05], 2),
    ([0.45, 0.45, 0.45, 0.55, 0.55, 0.55, 0.55, 0.55], 2),  # needs the repair step
    ([0.2] * 7, 3),
    ([0.01, 0.5, 0.5, 0.98], 4),
]


def _assert_heterogeneous_invariants(code: GradientCode, probs, r: int) -> None:
    probs = np.asarray(probs)
    n = probs.size
    loads = worker_loads(code)
    assert code.B.shape == (n, n)
    assert loads.sum() == r * n
    assert loads.min() >= 1 and loads.max() <= n
    # reliability order: smaller p never holds fewer partitions
    for a, b in itertools.permutations(range(n), 2):
        if probs[a] < probs[b]:
            assert loads[a] >= loads[b], (probs, loads)
    # every partition has exactly r replicas (rows are workers: distinct by construction)
    np.testing.assert_array_equal(np.count_nonzero(code.B, axis=0), r)
    if r >= 2 and (probs < 0.5).any():
        assert all_slow_columns(code, probs) == 0
    assert code.exact
    # any n - r + 1 responders decode exactly (all sets when few, else a sample)
    sets = list(itertools.combinations(range(n), r - 1))
    if len(sets) > 60:
        sets = [sets[i] for i in np.random.default_rng(n).choice(len(sets), 60, replace=False)]
    for stragglers in sets:
        assert code.is_exact(np.setdiff1d(np.arange(n), stragglers)), stragglers


@pytest.mark.parametrize("probs, r", HETEROGENEOUS_CASES)
def test_heterogeneous_loads_follow_reliability_and_cover_every_partition(probs, r):
    code = make_code("heterogeneous", len(probs), redundancy=r, straggle_probs=probs, random_state=0)
    assert (code.scheme, code.redundancy, code.exact) == ("heterogeneous", r, True)
    assert (code.n_stragglers, code.min_responders) == (r - 1, len(probs) - r + 1)
    _assert_heterogeneous_invariants(code, probs, r)


@HYPOTHESIS
@given(
    st.integers(1, 14).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(0.0, 0.999), min_size=n, max_size=n),
            st.integers(1, n),
            st.integers(0, 2**16),
        )
    )
)
def test_heterogeneous_invariants_hold_for_any_probabilities(case):
    probs, r, seed = case
    code = make_code("heterogeneous", len(probs), redundancy=r, straggle_probs=probs, random_state=seed)
    _assert_heterogeneous_invariants(code, probs, r)


def test_heterogeneous_loads_are_proportional_to_inverse_delta_by_hand():
    # 1 / delta = (1 - p) / p = [1, 2, 3, 3, 4, 5], total 18 = redundancy * k: no bound binds
    probs = [1 / 2, 1 / 3, 1 / 4, 1 / 4, 1 / 5, 1 / 6]
    code = make_code("heterogeneous", 6, redundancy=3, straggle_probs=probs, random_state=0)
    np.testing.assert_array_equal(worker_loads(code), [1, 2, 3, 3, 4, 5])
    # worker 5 (most reliable) takes the first replicas, then 4, 2|3, 1, 0: cyclic runs
    np.testing.assert_array_equal(code.assignment(5), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(code.assignment(4), [0, 1, 2, 5])
    np.testing.assert_array_equal(code.assignment(0), [5])


def test_heterogeneous_bounds_and_largest_remainder_rounding():
    # two likely stragglers hit the lower bound 1; the six others share 14 replicas,
    # 2.33 each: floors 2, and the two remaining units go to two of the (tied) six.
    probs = [0.9, 0.9, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]
    code = make_code("heterogeneous", 8, redundancy=2, straggle_probs=probs, random_state=0)
    assert sorted(worker_loads(code)) == [1, 1, 2, 2, 2, 2, 3, 3]
    np.testing.assert_array_equal(worker_loads(code)[:2], [1, 1])
    # a perfectly reliable worker is clipped to p = 1e-3, not given an infinite load: upper bound k
    probs = [0.0, 0.3, 0.3, 0.3]
    code = make_code("heterogeneous", 4, redundancy=2, straggle_probs=probs, random_state=0)
    assert worker_loads(code)[0] == 4 and sorted(worker_loads(code)[1:]) == [1, 1, 2]  # a random one of the tied


def test_heterogeneous_repairs_loads_so_no_partition_sits_on_stragglers_only():
    # 1/delta is nearly flat (1.22 vs 0.82): the rounded loads give the three
    # reliable workers 6 replicas for 8 partitions; two are moved to them.
    probs = [0.45, 0.45, 0.45, 0.55, 0.55, 0.55, 0.55, 0.55]
    code = make_code("heterogeneous", 8, redundancy=2, straggle_probs=probs, random_state=0)
    loads = worker_loads(code)
    assert loads[:3].sum() == 8 and loads.sum() == 16
    assert loads[:3].min() >= loads[3:].max()
    assert all_slow_columns(code, probs) == 0


@pytest.mark.parametrize(
    "probs, r, all_slow",
    [
        ([0.6, 0.6, 0.7, 0.9, 0.9, 0.95], 2, 6),  # no reliable worker at all
        ([0.6, 0.1, 0.7, 0.2, 0.9, 0.6], 1, 4),  # redundancy 1: B = I, one holder each
    ],
)
def test_heterogeneous_best_effort_when_stragglers_cannot_be_avoided(probs, r, all_slow):
    code = make_code("heterogeneous", 6, redundancy=r, straggle_probs=probs, random_state=0)
    _assert_heterogeneous_invariants(code, probs, r)
    assert all_slow_columns(code, probs) == all_slow  # the fewest possible
    if r == 1:
        np.testing.assert_array_equal(code.B, np.eye(6))
        assert code.exact


def test_heterogeneous_error_beats_expander_and_uncoded_under_heterogeneous_stragglers():
    n, r = 8, 2
    probs = np.array([0.9, 0.05, 0.05, 0.9, 0.05, 0.05, 0.05, 0.05])
    rng = np.random.default_rng(11)
    masks = rng.random((1000, n)) >= probs  # responders drawn from p
    masks = masks[masks.any(axis=1)]

    def mean_error(code):
        return np.mean([code.error(m) for m in masks])

    hetero = [
        mean_error(make_code("heterogeneous", n, redundancy=r, straggle_probs=probs, random_state=s))
        for s in range(3)
    ]
    expander = [mean_error(make_code("expander", n, redundancy=r, random_state=s)) for s in range(3)]
    uncoded = mean_error(make_code("uncoded", n, redundancy=r))
    assert max(hetero) < 0.5 * np.mean(expander), (hetero, expander)
    assert max(hetero) < 0.1 * uncoded
    # with exactly the reliable workers responding, the reliable first pass decodes exactly
    reliable = np.flatnonzero(probs < 0.5)
    code = make_code("heterogeneous", n, redundancy=r, straggle_probs=probs, random_state=0)
    assert code.is_exact(reliable)
    assert make_code("uncoded", n, redundancy=r).error(reliable) == pytest.approx(2 / 6)


@pytest.mark.parametrize("n, r", [(8, 2), (15, 2), (15, 3), (12, 4)])
def test_heterogeneous_max_load_bounds_the_loads(n, r):
    probs = np.r_[0.95, 0.9, np.full(n - 2, 0.05)]
    free = make_code("heterogeneous", n, redundancy=r, straggle_probs=probs, random_state=0)
    for cap in range(r, n + 1):
        code = make_code("heterogeneous", n, redundancy=r, straggle_probs=probs, random_state=0, max_load=cap)
        loads = worker_loads(code)
        assert loads.max() <= cap and loads.sum() == r * n
        _assert_heterogeneous_invariants(code, probs, r)
        if cap >= worker_loads(free).max():
            np.testing.assert_array_equal(code.B, free.B)  # the bound does not bind
    equal = make_code("heterogeneous", n, redundancy=r, straggle_probs=probs, random_state=0, max_load=r)
    np.testing.assert_array_equal(worker_loads(equal), r)
    # placed by reliability: the two likely stragglers take the last replicas
    assert set(equal.assignment(0)) | set(equal.assignment(1)) <= set(range(n))
    assert {0, 1}.isdisjoint(equal.holders(0))


@pytest.mark.parametrize("n, r, cap", [(8, 2, 2), (7, 2, 2), (8, 2, None), (15, 3, None), (11, 3, 3)])
def test_heterogeneous_reliable_cover_decodes_alone_beyond_the_tolerance(n, r, cap):
    # more likely stragglers than the code tolerates: the most reliable
    # workers that hold every partition decode exactly without any of them
    rng = np.random.default_rng(n)
    probs = np.where(np.arange(n) % 3 == 0, 0.95, rng.uniform(0.01, 0.2, n))
    assert (probs >= 0.5).sum() > r - 1
    code = make_code("heterogeneous", n, redundancy=r, straggle_probs=probs, random_state=0, max_load=cap)
    order = np.argsort(probs, kind="stable")
    held = np.cumsum(code.B[order] != 0, axis=0).all(axis=1)
    cover = order[: int(np.argmax(held)) + 1]
    assert (probs[cover] < 0.5).all()
    assert code.is_exact(cover)
    np.testing.assert_allclose(code.B[cover].sum(axis=0), 1.0, atol=1e-12)  # a = 1 decodes
    assert not code.is_exact(cover[:-1])  # and none of it can be missed


def test_heterogeneous_coefficients_depend_on_the_support_only():
    probs = [0.9, 0.9, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]
    a = make_code("heterogeneous", 8, redundancy=2, straggle_probs=probs, random_state=3)
    b = make_code("heterogeneous", 8, redundancy=2, straggle_probs=probs, random_state=3)
    np.testing.assert_array_equal(a.B, b.B)
    assert np.abs(a.B).max() < 100  # the best-conditioned of a few draws


def test_heterogeneous_seeding_breaks_ties_reproducibly():
    probs = [0.9, 0.9, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]  # six-way tie among the reliable

    def build(seed):
        return make_code("heterogeneous", 8, redundancy=2, straggle_probs=probs, random_state=seed).B

    np.testing.assert_array_equal(build(3), build(3))
    np.testing.assert_array_equal(build(np.random.default_rng(3)), build(np.random.default_rng(3)))
    np.testing.assert_array_equal(build(np.random.RandomState(3)), build(np.random.RandomState(3)))
    assert len({build(s).tobytes() for s in range(10)}) > 1
    # without ties the construction does not depend on the seed
    distinct = np.linspace(0.01, 0.9, 8)
    first = make_code("heterogeneous", 8, redundancy=2, straggle_probs=distinct, random_state=0).B
    other = make_code("heterogeneous", 8, redundancy=2, straggle_probs=distinct, random_state=1).B
    np.testing.assert_array_equal(first, other)


# --------------------------------------------------------------------------- rotation
