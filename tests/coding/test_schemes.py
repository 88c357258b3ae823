"""The constructions of every scheme: exactness, supports, coefficients, seeding, argument checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from codes import assert_reproduces_sum, make, valid_redundancies
from dask_quorum.pipeline.coding import SCHEMES, make_code


@pytest.mark.parametrize("n", range(1, 13))
@pytest.mark.parametrize("scheme", ["frc", "cyclic", "heterogeneous"])
def test_every_tolerated_straggler_set_decodes_exactly(scheme, n):
    rng = np.random.default_rng(n)
    for r in valid_redundancies(scheme, n):
        code = make(scheme, n, r)
        assert (code.n_stragglers, code.min_responders, code.exact) == (r - 1, n - r + 1, True)
        partials = rng.standard_normal((n, 3))
        for n_out in range(r):
            for stragglers in itertools.combinations(range(n), n_out):
                responders = np.setdiff1d(np.arange(n), stragglers)
                assert code.error(responders) < 1e-9
                assert code.is_exact(responders)
                assert_reproduces_sum(code, responders, partials)


def test_cyclic_large_random_responder_sets_decode_exactly():
    n, r = 64, 3
    code = make_code("cyclic", n, redundancy=r, random_state=1)
    rng = np.random.default_rng(2)
    partials = rng.standard_normal((n, 4))
    for _ in range(100):
        responders = rng.permutation(n)[: n - r + 1]
        assert code.is_exact(responders)
        assert_reproduces_sum(code, responders, partials)


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

@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_invariants(scheme):
    n = 12
    code = make(scheme, n, 3)
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
