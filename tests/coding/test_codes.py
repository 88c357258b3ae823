"""Tests for dask_quorum.pipeline.coding.schemes (gradient codes)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dask_quorum.pipeline.coding import EXACT_TOL, SCHEMES, GradientCode, make_code

HYPOTHESIS = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def _valid_redundancies(scheme: str, n: int) -> list[int]:
    return [r for r in range(1, n + 1) if scheme != "frc" or n % r == 0]


def _probs(n: int) -> np.ndarray:
    """Straggle probabilities for ``heterogeneous``: a spread with some likely stragglers."""
    return np.linspace(0.0, 0.95, n)


def _make(scheme: str, n: int, r: int, seed=0) -> GradientCode:
    probs = _probs(n) if scheme == "heterogeneous" else None
    return make_code(scheme, n, redundancy=r, straggle_probs=probs, random_state=seed)


def _loads(code: GradientCode) -> np.ndarray:
    return np.count_nonzero(code.B, axis=1)


def _all_slow_columns(code: GradientCode, probs) -> int:
    slow = np.asarray(probs) >= 0.5
    return sum(bool(slow[code.holders(j)].all()) for j in range(code.n_partitions))


def _decoded_sum(code: GradientCode, responders, partials: np.ndarray) -> np.ndarray:
    idx = np.asarray(responders)
    return code.decode(idx) @ (code.B[idx] @ partials)


def _assert_reproduces_sum(code: GradientCode, responders, partials: np.ndarray) -> None:
    total = partials.sum(axis=0)
    err = np.linalg.norm(_decoded_sum(code, responders, partials) - total)
    assert err <= 1e-8 * np.linalg.norm(total)


# --------------------------------------------------------------------------- exact schemes


@pytest.mark.parametrize("n", range(1, 13))
@pytest.mark.parametrize("scheme", ["frc", "cyclic", "heterogeneous"])
def test_every_tolerated_straggler_set_decodes_exactly(scheme, n):
    rng = np.random.default_rng(n)
    for r in _valid_redundancies(scheme, n):
        code = _make(scheme, n, r)
        assert (code.n_stragglers, code.min_responders, code.exact) == (r - 1, n - r + 1, True)
        partials = rng.standard_normal((n, 3))
        for n_out in range(r):
            for stragglers in itertools.combinations(range(n), n_out):
                responders = np.setdiff1d(np.arange(n), stragglers)
                assert code.error(responders) < 1e-9
                assert code.is_exact(responders)
                _assert_reproduces_sum(code, responders, partials)


def test_cyclic_large_random_responder_sets_decode_exactly():
    n, r = 64, 3
    code = make_code("cyclic", n, redundancy=r, random_state=1)
    rng = np.random.default_rng(2)
    partials = rng.standard_normal((n, 4))
    for _ in range(100):
        responders = rng.permutation(n)[: n - r + 1]
        assert code.is_exact(responders)
        _assert_reproduces_sum(code, responders, partials)


@pytest.mark.parametrize("n, r", [(6, 2), (6, 3), (8, 4)])
def test_frc_loses_exactly_one_group_when_a_group_straggles(n, r):
    code = make_code("frc", n, redundancy=r)
    responders = np.arange(r, n)  # the whole first group is missing
    assert not code.is_exact(responders)
    assert code.error(responders) == pytest.approx(r / n)


def test_frc_by_hand():
    code = make_code("frc", 4, redundancy=2)
    expected = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(code.B, expected)
    np.testing.assert_allclose(code.decode([2, 0]), [1, 1])
    np.testing.assert_allclose(code.decode([0, 1, 2]), [0.5, 0.5, 1])
    assert code.error([0, 1]) == pytest.approx(0.5)
    np.testing.assert_array_equal(code.assignment(3), [2, 3])
    np.testing.assert_array_equal(code.holders(1), [0, 1])


def test_cyclic_supports_are_cyclic_windows():
    n, r = 7, 3
    code = make_code("cyclic", n, redundancy=r)
    for i in range(n):
        np.testing.assert_array_equal(code.assignment(i), sorted((i + np.arange(r)) % n))
        np.testing.assert_array_equal(code.holders(i), sorted((i - np.arange(r)) % n))


@pytest.mark.parametrize("n, r", [(5, 3), (8, 2), (9, 3), (10, 4)])
def test_cyclic_rows_sum_to_one_and_full_set_decodes_with_unit_weights(n, r):
    # n - s odd: the construction is a plain cyclic code containing the ones vector.
    code = make_code("cyclic", n, redundancy=r)
    np.testing.assert_allclose(code.B.sum(axis=1), 1.0)
    np.testing.assert_allclose(code.decode(np.arange(n)), np.ones(n), atol=1e-10)


# --------------------------------------------------------------------------- sync / uncoded


def test_sync_needs_every_worker_and_ignores_redundancy():
    code = make_code("sync", 5, redundancy=9)  # the engine passes its redundancy to every scheme
    assert (code.redundancy, code.n_stragglers, code.min_responders, code.exact) == (1, 0, 5, True)
    np.testing.assert_array_equal(code.B, np.eye(5))
    np.testing.assert_allclose(code.decode(range(5)), np.ones(5))
    assert code.is_exact(range(5))
    for responders in itertools.combinations(range(5), 4):
        assert not code.is_exact(responders)


def test_uncoded_rescales_and_error_matches_hand_computation():
    n = 5
    code = make_code("uncoded", n, redundancy=3)
    assert (code.n_stragglers, code.min_responders, code.exact) == (2, 3, False)
    np.testing.assert_allclose(code.decode([4, 0, 2]), [5 / 3] * 3)
    # B_S^T a - 1 = [2/3, -1, 2/3, -1, 2/3] -> (3 * 4/9 + 2) / 5 = 2/3
    assert code.error([4, 0, 2]) == pytest.approx(2 / 3)
    assert not code.is_exact([0, 1, 2, 3])
    assert code.is_exact(range(n))
    for m in range(1, n + 1):  # the closed form (n - m) / m of the rescaled estimator
        assert code.error(range(m)) == pytest.approx((n - m) / m)


# --------------------------------------------------------------------------- expander


@pytest.mark.parametrize("n, d", [(1, 1), (5, 2), (12, 3), (24, 5), (10, 10), (40, 7)])
@pytest.mark.parametrize("seed", [0, 1])
def test_expander_is_regular_simple_and_scaled(n, d, seed):
    code = make_code("expander", n, redundancy=d, random_state=seed)
    assert set(np.unique(code.B)) <= {0.0, 1.0 / d}
    np.testing.assert_array_equal(np.count_nonzero(code.B, axis=0), d)
    np.testing.assert_array_equal(np.count_nonzero(code.B, axis=1), d)
    assert code.is_exact(range(n))
    assert code.error(range(n)) < 1e-20
    assert code.exact is (d == 1)


def test_expander_is_not_exact_in_general():
    code = make_code("expander", 24, redundancy=3, random_state=0)
    assert not code.exact
    stragglers = [(0, 1), (2, 5), (7, 19)]
    assert not all(code.is_exact(np.setdiff1d(np.arange(24), t)) for t in stragglers)


def test_expander_error_decreases_with_degree_and_beats_uncoded():
    n, p = 24, 0.2
    rng = np.random.default_rng(3)
    masks = rng.random((200, n)) >= p
    masks = masks[masks.any(axis=1)]
    uncoded = make_code("uncoded", n, redundancy=2)
    uncoded_err = np.mean([uncoded.error(m) for m in masks])
    mean_err = []
    for d in (1, 2, 3, 4, 6):
        code = make_code("expander", n, redundancy=d, random_state=4)
        mean_err.append(np.mean([code.error(m) for m in masks]))
    assert np.all(np.diff(mean_err) < 0), mean_err
    assert max(mean_err) < uncoded_err
    assert mean_err[-1] < 0.1 * uncoded_err


# --------------------------------------------------------------------------- heterogeneous

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
    loads = _loads(code)
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
        assert _all_slow_columns(code, probs) == 0
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
    np.testing.assert_array_equal(_loads(code), [1, 2, 3, 3, 4, 5])
    # worker 5 (most reliable) takes the first replicas, then 4, 2|3, 1, 0: cyclic runs
    np.testing.assert_array_equal(code.assignment(5), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(code.assignment(4), [0, 1, 2, 5])
    np.testing.assert_array_equal(code.assignment(0), [5])


def test_heterogeneous_bounds_and_largest_remainder_rounding():
    # two likely stragglers hit the lower bound 1; the six others share 14 replicas,
    # 2.33 each: floors 2, and the two remaining units go to two of the (tied) six.
    probs = [0.9, 0.9, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]
    code = make_code("heterogeneous", 8, redundancy=2, straggle_probs=probs, random_state=0)
    assert sorted(_loads(code)) == [1, 1, 2, 2, 2, 2, 3, 3]
    np.testing.assert_array_equal(_loads(code)[:2], [1, 1])
    # a perfectly reliable worker is clipped to p = 1e-3, not given an infinite load: upper bound k
    probs = [0.0, 0.3, 0.3, 0.3]
    code = make_code("heterogeneous", 4, redundancy=2, straggle_probs=probs, random_state=0)
    assert _loads(code)[0] == 4 and sorted(_loads(code)[1:]) == [1, 1, 2]  # a random one of the tied


def test_heterogeneous_repairs_loads_so_no_partition_sits_on_stragglers_only():
    # 1/delta is nearly flat (1.22 vs 0.82): the rounded loads give the three
    # reliable workers 6 replicas for 8 partitions; two are moved to them.
    probs = [0.45, 0.45, 0.45, 0.55, 0.55, 0.55, 0.55, 0.55]
    code = make_code("heterogeneous", 8, redundancy=2, straggle_probs=probs, random_state=0)
    loads = _loads(code)
    assert loads[:3].sum() == 8 and loads.sum() == 16
    assert loads[:3].min() >= loads[3:].max()
    assert _all_slow_columns(code, probs) == 0


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
    assert _all_slow_columns(code, probs) == all_slow  # the fewest possible
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
        loads = _loads(code)
        assert loads.max() <= cap and loads.sum() == r * n
        _assert_heterogeneous_invariants(code, probs, r)
        if cap >= _loads(free).max():
            np.testing.assert_array_equal(code.B, free.B)  # the bound does not bind
    equal = make_code("heterogeneous", n, redundancy=r, straggle_probs=probs, random_state=0, max_load=r)
    np.testing.assert_array_equal(_loads(equal), r)
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


@pytest.mark.parametrize("scheme", SCHEMES)
def test_rotated_keeps_loads_and_relabels_columns(scheme):
    n, r = 8, 2
    code = _make(scheme, n, r)
    rng = np.random.default_rng(5)
    sets = [rng.permutation(n)[: rng.integers(1, n + 1)] for _ in range(20)]
    for shift in (1, 3, -2, n + 1):
        rotated = code.rotated(shift)
        assert (rotated.scheme, rotated.redundancy, rotated.exact) == (code.scheme, code.redundancy, code.exact)
        np.testing.assert_array_equal(rotated.B, code.B[:, (np.arange(n) - shift) % n])
        np.testing.assert_array_equal(_loads(rotated), _loads(code))
        for worker in range(n):
            np.testing.assert_array_equal(
                rotated.assignment(worker), np.sort((code.assignment(worker) + shift) % n)
            )
        for responders in sets:  # relabelling partitions changes no error
            assert rotated.error(responders) == pytest.approx(code.error(responders), abs=1e-12)
    np.testing.assert_array_equal(code.rotated(3).rotated(2).B, code.rotated(5).B)
    np.testing.assert_array_equal(code.rotated(n).B, code.B)
    assert not code.rotated(1).B.flags.writeable


def test_rotation_moves_one_replica_per_worker_and_spreads_every_partition():
    probs = np.array([0.9, 0.05, 0.05, 0.9, 0.05, 0.05, 0.05, 0.0])
    n, r = 8, 3
    code = make_code("heterogeneous", n, redundancy=r, straggle_probs=probs, random_state=0)
    loads = _loads(code)
    assert loads.max() == n  # the p = 0 worker holds everything: it never moves data
    for s in range(n):
        before, after = code.rotated(s).B != 0, code.rotated(s + 1).B != 0
        moved = np.count_nonzero(after & ~before, axis=1)  # replicas each worker must receive
        np.testing.assert_array_equal(moved, (loads < n).astype(int))
    # over k shifts every partition spends load_i shifts on worker i: none is stuck
    # behind the likely stragglers
    total = sum((code.rotated(s).B != 0).astype(int) for s in range(n))
    np.testing.assert_array_equal(total, np.outer(loads, np.ones(n, dtype=int)))


@pytest.mark.parametrize("shift", [1.0, True, "1", None])
def test_rotated_rejects_non_integer_shift(shift):
    with pytest.raises(ValueError, match="shift must be an integer"):
        make_code("cyclic", 4).rotated(shift)


# --------------------------------------------------------------------------- decoding properties


@st.composite
def codes_and_responders(draw):
    scheme = draw(st.sampled_from(SCHEMES))
    n = draw(st.integers(1, 16))
    r = draw(st.sampled_from(_valid_redundancies(scheme, n)))
    probs = None
    if scheme == "heterogeneous":
        probs = draw(st.lists(st.floats(0.0, 0.999), min_size=n, max_size=n))
    code = make_code(
        scheme, n, redundancy=r, straggle_probs=probs, random_state=draw(st.integers(0, 2**16))
    )
    responders = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    return code, responders, draw(st.permutations(responders))


@HYPOTHESIS
@given(codes_and_responders())
def test_decode_shapes_order_and_mask(case):
    code, responders, permuted = case
    weights = code.decode(responders)
    assert weights.shape == (len(responders),)
    assert np.all(np.isfinite(weights))
    # the weight of a worker does not depend on where it appears in the list
    by_worker = dict(zip(responders, weights))
    tol = 1e-9 * max(1.0, np.abs(weights).max())
    np.testing.assert_allclose(code.decode(permuted), [by_worker[w] for w in permuted], atol=tol)
    mask = np.zeros(code.n_workers, dtype=bool)
    mask[responders] = True
    np.testing.assert_allclose(code.decode(mask), [by_worker[w] for w in sorted(responders)], atol=tol)
    assert code.error(mask) == pytest.approx(code.error(responders), abs=1e-12)
    residual = code.B[responders].T @ weights - 1.0
    assert code.error(responders) == pytest.approx(residual @ residual / code.n_partitions, abs=1e-12)
    assert code.is_exact(responders) == (code.error(responders) < EXACT_TOL)


@HYPOTHESIS
@given(codes_and_responders())
def test_least_squares_error_never_grows_with_more_responders(case):
    code, responders, _ = case
    if code.scheme in ("sync", "uncoded") or len(responders) == code.n_workers:
        return
    extra = np.setdiff1d(np.arange(code.n_workers), responders)[0]
    assert code.error([*responders, extra]) <= code.error(responders) + 1e-12
    assert 0.0 <= code.error(responders) <= 1.0 + 1e-12


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_invariants(scheme):
    n = 12
    code = _make(scheme, n, 3)
    assert code.scheme == scheme
    assert code.B.shape == (n, n) and code.B.dtype == np.float64
    assert (code.n_workers, code.n_partitions) == (n, n)
    expected_stragglers = 0 if scheme == "sync" else 2
    assert code.n_stragglers == expected_stragglers == code.redundancy - 1
    assert code.min_responders == n - expected_stragglers
    assert code.exact is (scheme in ("sync", "frc", "cyclic", "heterogeneous"))
    assert code.is_exact(range(n))
    assert code.error([]) == 1.0 and not code.is_exact([])
    for worker in range(n):
        for partition in code.assignment(worker):
            assert worker in code.holders(partition)
    assert repr(code).startswith(f"GradientCode(scheme={scheme!r}, n_workers=12")
    assert len(repr(code)) < 150


# --------------------------------------------------------------------------- immutability, seeding


def test_b_is_read_only_and_code_is_frozen():
    code = make_code("cyclic", 6, redundancy=2)
    assert not code.B.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        code.B[0, 0] = 5.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        code.scheme = "sync"
    source = np.eye(3)
    GradientCode(scheme="sync", B=source, redundancy=1, exact=True)
    assert source.flags.writeable  # the caller's array is copied, not frozen


def test_expander_seeding():
    def build(seed):
        return make_code("expander", 16, redundancy=3, random_state=seed).B

    np.testing.assert_array_equal(build(7), build(7))
    np.testing.assert_array_equal(build(np.random.default_rng(7)), build(np.random.default_rng(7)))
    np.testing.assert_array_equal(build(np.random.RandomState(7)), build(np.random.RandomState(7)))
    assert not np.array_equal(build(7), build(8))
    assert not np.array_equal(build(np.random.default_rng(7)), build(np.random.default_rng(8)))


def test_cyclic_is_deterministic():
    # documented: the cyclic coefficients come from a fixed, well-conditioned construction
    first = make_code("cyclic", 9, redundancy=3, random_state=0).B
    np.testing.assert_array_equal(first, make_code("cyclic", 9, redundancy=3, random_state=1).B)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (
            ("bogus", 4),
            {},
            r"scheme must be one of \('sync', 'uncoded', 'frc', 'cyclic', 'expander', "
            r"'heterogeneous'\), got 'bogus'",
        ),
        (("cyclic", 0), {}, r"n_workers must be an integer >= 1, got 0"),
        (("cyclic", -3), {}, r"n_workers must be an integer >= 1, got -3"),
        (("cyclic", 4.0), {}, r"n_workers must be an integer >= 1, got 4.0"),
        (("cyclic", True), {}, r"n_workers must be an integer >= 1, got True"),
        (("cyclic", "4"), {}, r"n_workers must be an integer >= 1, got '4'"),
        (("cyclic", 4), {"redundancy": 0}, r"redundancy must be an integer >= 1, got 0"),
        (("frc", 4), {"redundancy": 2.0}, r"redundancy must be an integer >= 1, got 2.0"),
        (("sync", 4), {"redundancy": False}, r"redundancy must be an integer >= 1, got False"),
        (("uncoded", 3), {"redundancy": 4}, r"redundancy must be <= n_workers=3, got 4"),
        (("expander", 3), {"redundancy": 5}, r"redundancy must be <= n_workers=3, got 5"),
        (("frc", 5), {"redundancy": 2}, r"frc needs redundancy to divide n_workers=5, got redundancy=2"),
        (("cyclic", 3), {"straggle_probs": [0.1, 0.2]}, r"straggle_probs must have shape \(3,\), got \(2,\)"),
        (("cyclic", 2), {"straggle_probs": [[0.1, 0.2]]}, r"straggle_probs must have shape \(2,\), got \(1, 2\)"),
        (("cyclic", 2), {"straggle_probs": [0.1, 1.0]}, r"straggle_probs must be finite and in \[0, 1\)"),
        (("cyclic", 2), {"straggle_probs": [-0.1, 0.5]}, r"straggle_probs must be finite and in \[0, 1\)"),
        (("cyclic", 2), {"straggle_probs": [np.nan, 0.5]}, r"straggle_probs must be finite and in \[0, 1\)"),
        (("cyclic", 2), {"straggle_probs": ["a", "b"]}, r"straggle_probs must be numeric"),
        (
            ("frc", 2),
            {"straggle_probs": [0.1, 0.0]},
            r"straggle_probs is only used by the heterogeneity-aware scheme 'heterogeneous'; "
            r"scheme='frc' does not use it",
        ),
        (("heterogeneous", 3), {}, r"scheme='heterogeneous' needs straggle_probs, one per worker"),
        (
            ("heterogeneous", 3),
            {"straggle_probs": [0.1, 0.2]},
            r"straggle_probs must have shape \(3,\), got \(2,\)",
        ),
        (
            ("heterogeneous", 2),
            {"straggle_probs": [0.1, 1.0]},
            r"straggle_probs must be finite and in \[0, 1\), got \[0.1, 1.0\]",
        ),
        (("heterogeneous", 2), {"straggle_probs": [-0.01, 0.2]}, r"must be finite and in \[0, 1\)"),
        (("heterogeneous", 2), {"straggle_probs": [0.1, np.nan]}, r"must be finite and in \[0, 1\)"),
        (("heterogeneous", 2), {"straggle_probs": [0.1, np.inf]}, r"must be finite and in \[0, 1\)"),
        (("heterogeneous", 2), {"straggle_probs": [None, 0.1]}, r"must be finite and in \[0, 1\)"),
        (
            ("heterogeneous", 3),
            {"straggle_probs": [0.1, 0.2, 0.3], "redundancy": 4},
            r"redundancy must be <= n_workers=3, got 4",
        ),
        (
            ("heterogeneous", 4),
            {"straggle_probs": [0.1] * 4, "redundancy": 3, "max_load": 2},
            r"max_load must be in \[redundancy=3, n_workers=4\], got 2",
        ),
        (
            ("heterogeneous", 4),
            {"straggle_probs": [0.1] * 4, "max_load": 5},
            r"max_load must be in \[redundancy=2, n_workers=4\], got 5",
        ),
        (("heterogeneous", 4), {"straggle_probs": [0.1] * 4, "max_load": 2.5}, r"max_load must be an integer"),
        (
            ("cyclic", 4),
            {"max_load": 2},
            r"max_load is only used by the heterogeneity-aware scheme 'heterogeneous'; "
            r"scheme='cyclic' does not use it",
        ),
    ],
)
def test_make_code_rejects_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_code(*args, **kwargs)


def test_sync_accepts_any_redundancy_and_numpy_integers():
    assert make_code("sync", 2, redundancy=8).min_responders == 2
    code = make_code("cyclic", np.int64(6), redundancy=np.int32(2))
    assert (code.n_workers, code.redundancy) == (6, 2)
    assert isinstance(code.n_workers, int) and isinstance(code.redundancy, int)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(
    "responders, match",
    [
        ([], r"responders is empty"),
        (np.zeros(5, dtype=bool), r"responders is empty"),
        ([0, 7, 5, -1], r"responders out of range \[0, 5\): \[-1, 5, 7\]"),
        ([1, 3, 1, 3, 2], r"duplicate responders: \[1, 3\]"),
        ([0.0, 1.0], r"responders must be integer worker indices, got dtype float64"),
        (np.ones(4, dtype=bool), r"boolean responders mask must have length n_workers=5, got 4"),
        ([[0, 1]], r"responders must be a 1-D sequence"),
        (3, r"responders must be a 1-D sequence"),
    ],
)
def test_decode_rejects_bad_responders(scheme, responders, match):
    code = _make(scheme, 5, 1 if scheme == "frc" else 2)
    with pytest.raises(ValueError, match=match):
        code.decode(responders)
    if match != "responders is empty":
        with pytest.raises(ValueError, match=match):
            code.error(responders)


@pytest.mark.parametrize(
    "method, value, match",
    [
        ("assignment", 5, r"worker must be in \[0, 5\), got 5"),
        ("assignment", -1, r"worker must be in \[0, 5\), got -1"),
        ("assignment", True, r"worker must be an integer index, got True"),
        ("holders", 1.0, r"partition must be an integer index, got 1.0"),
        ("holders", 9, r"partition must be in \[0, 5\), got 9"),
    ],
)
def test_index_accessors_reject_bad_indices(method, value, match):
    code = make_code("uncoded", 5)
    with pytest.raises(ValueError, match=match):
        getattr(code, method)(value)


def test_gradient_code_validates_its_matrix():
    with pytest.raises(ValueError, match=r"B must be a non-empty 2-D array, got shape \(3,\)"):
        GradientCode(scheme="sync", B=np.ones(3), redundancy=1, exact=True)
    with pytest.raises(ValueError, match=r"redundancy must be in \[1, n_workers=2\], got 3"):
        GradientCode(scheme="uncoded", B=np.eye(2), redundancy=3, exact=False)
