"""The GradientCode itself: rotation, decoding, read-only matrix, argument checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from codes import HYPOTHESIS, make, valid_redundancies, worker_loads
from dask_quorum.pipeline.coding import EXACT_TOL, SCHEMES, GradientCode, make_code
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize("scheme", SCHEMES)
def test_rotated_keeps_loads_and_relabels_columns(scheme):
    n, r = 8, 2
    code = make(scheme, n, r)
    rng = np.random.default_rng(5)
    sets = [rng.permutation(n)[: rng.integers(1, n + 1)] for _ in range(20)]
    for shift in (1, 3, -2, n + 1):
        rotated = code.rotated(shift)
        assert (rotated.scheme, rotated.redundancy, rotated.exact) == (code.scheme, code.redundancy, code.exact)
        np.testing.assert_array_equal(rotated.B, code.B[:, (np.arange(n) - shift) % n])
        np.testing.assert_array_equal(worker_loads(rotated), worker_loads(code))
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
    loads = worker_loads(code)
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
    r = draw(st.sampled_from(valid_redundancies(scheme, n)))
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
    code = make(scheme, 5, 1 if scheme == "frc" else 2)
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
