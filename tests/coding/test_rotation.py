"""Rotation of approximate codes: unbiased over a period, few replicas moved per round."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from dask_quorum.pipeline.coding import (
    GradientCode,
    Rotation,
    block_size,
    choose_hold,
    decoded_weights,
    make_code,
    replicas_moved,
)


def _probs(n, n_slow):
    return np.r_[np.full(n - n_slow, 0.05), np.full(n_slow, 0.75)]


@pytest.mark.parametrize(
    ("n", "n_slow", "r", "cap"),
    [(16, 9, 2, 2), (16, 4, 1, 1), (16, 12, 3, 3), (12, 8, 2, 2), (10, 7, 3, 3)],
)
def test_mean_decoded_sum_over_a_period_is_the_true_sum(n, n_slow, r, cap):
    code = make_code(
        "heterogeneous", n, redundancy=r, straggle_probs=_probs(n, n_slow), random_state=0,
        max_load=cap, approximate=True,
    )
    fast = np.arange(n - n_slow)  # the persistent non-responders are the same every round
    assert not code.is_exact(fast)  # too little redundancy for an exact decode from them
    assert code.min_responders == fast.size
    g = np.random.default_rng(0).standard_normal((n, 5))  # partial results, one per partition
    step = block_size(code)
    rotation = Rotation(code, step=step, hold=choose_hold(code, step))
    decoded = []
    for t in range(rotation.period):
        c = rotation.code_at(t)
        y = c.B[fast] @ g  # what the responders return
        decoded.append(c.decode(fast) @ y)
    np.testing.assert_allclose(np.mean(decoded, axis=0), g.sum(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(rotation.mean_weights(fast), 1.0, rtol=0, atol=1e-12)
    # while a single round is biased: some partitions are lost
    assert decoded_weights(code, fast).min() < 0.5


def test_without_the_sum_constraint_a_rotation_stays_biased():
    code = make_code("heterogeneous", 16, redundancy=2, straggle_probs=_probs(16, 9), random_state=0,
                     max_load=2, approximate=True)
    plain = GradientCode(scheme=code.scheme, B=code.B, redundancy=2, exact=False, stragglers=9)
    fast = np.arange(7)
    assert np.abs(Rotation(plain).mean_weights(fast) - 1).max() > 0.1
    np.testing.assert_allclose(Rotation(code).mean_weights(fast), 1.0, atol=1e-12)
    # the constrained decoder is the least-squares one scaled to add up to k
    w = decoded_weights(plain, fast, total=16)
    np.testing.assert_allclose(w, decoded_weights(code, fast), atol=1e-12)
    assert w.sum() == pytest.approx(16)


def test_decoded_weights_are_ones_when_exact_and_rotation_changes_nothing_then():
    code = make_code("cyclic", 8, redundancy=3)
    np.testing.assert_allclose(decoded_weights(code, range(6)), 1.0, atol=1e-9)
    np.testing.assert_allclose(Rotation(code, hold=2).mean_weights(range(6)), 1.0, atol=1e-9)
    assert decoded_weights(code, []).tolist() == [0.0] * 8
    with pytest.raises(ValueError, match="no partition"):
        decoded_weights(GradientCode(scheme="expander", B=np.eye(3)[:, [0, 0, 1]] * [[1, 1, 0], [0, 0, 0], [0, 0, 0]],
                                     redundancy=1, exact=False), [1], total=3)


def test_rotation_period_moves_and_blocks():
    code = make_code("frc", 16, redundancy=2)
    assert block_size(code) == 2
    assert block_size(make_code("cyclic", 16, redundancy=2)) == 1
    by_block = Rotation(code, step=2, hold=1)
    by_one = Rotation(code, step=1, hold=1)
    assert (by_block.n_steps, by_one.n_steps) == (8, 16)
    # a block step moves every replica, a unit step one per worker; a period moves the same
    assert by_block.moves_per_step() == 32 and by_one.moves_per_step() == 16
    assert by_block.moves_per_step() * by_block.n_steps == by_one.moves_per_step() * by_one.n_steps
    # the hold keeps the average under the budget
    hold = choose_hold(code, 2, budget=0.05)
    assert hold == 20 and 32 / hold <= 0.05 * 32
    rot = Rotation(code, step=2, hold=hold)
    assert rot.period == 160
    assert [rot.shift_at(t) for t in (0, 19, 20, 159, 160)] == [0, 0, 2, 14, 0]
    assert replicas_moved(rot.code_at(19), rot.code_at(20)) == 32
    assert np.array_equal(rot.code_at(40).B, code.rotated(4).B)
    with pytest.raises(ValueError, match="biased"):
        Rotation(make_code("cyclic", 16, redundancy=2), step=2)
    with pytest.raises(ValueError, match="hold"):
        Rotation(code, hold=0)
    with pytest.raises(ValueError, match="budget"):
        choose_hold(code, 1, budget=0)


def test_rotated_and_expanded_codes_keep_the_decoder_and_stragglers():
    from dask_quorum.pipeline.coding import contiguous_groups, expand

    code = make_code("heterogeneous", 8, redundancy=2, straggle_probs=_probs(8, 5), random_state=0,
                     max_load=2, approximate=True)
    for other in (code.rotated(3), expand(code, contiguous_groups(16, 8), 16)):
        assert other.unbiased and other.n_stragglers == code.n_stragglers == 5 and not other.exact
    with pytest.raises(ValueError, match="stragglers"):
        GradientCode(scheme="uncoded", B=np.eye(3), redundancy=1, exact=False, stragglers=3)
    with pytest.raises(ValueError, match="approximate"):
        make_code("cyclic", 4, approximate=True)


def test_heterogeneous_decodes_from_the_fast_workers_and_from_most_fast_minus_one():
    # 16 workers, 4 persistently slow, redundancy 2: the 12 fast hold every partition
    probs = _probs(16, 4)
    code = make_code("heterogeneous", 16, redundancy=2, straggle_probs=probs, random_state=0, max_load=2)
    assert code.exact and np.count_nonzero(code.B, axis=1).tolist() == [2] * 16
    fast = list(range(12))
    assert code.is_exact(fast)
    spare = [d for d in fast if code.is_exact([f for f in fast if f != d])]
    # 24 fast slots over 16 partitions: 8 partitions have two fast holders,
    # so at most 8 fast workers can be late alone; all 8 are
    assert len(spare) == 8
    # and every slow worker shares its block with a fast one
    for s in range(12, 16):
        partners = [i for i in range(16) if i != s and np.array_equal(code.B[i] != 0, code.B[s] != 0)]
        assert partners and all(p < 12 for p in partners)
    # still exact from any 15
    assert all(code.is_exact([i for i in range(16) if i != d]) for d in range(16))
    # unequal loads are not blocks: real coefficients, exact from any n - s and the fast cover
    skewed = make_code("heterogeneous", 16, redundancy=2, straggle_probs=probs, random_state=0, max_load=3)
    assert not set(np.unique(skewed.B)) <= {0.0, 1.0}
    assert skewed.is_exact(fast)
    assert all(skewed.is_exact(list(c)) for c in itertools.combinations(range(16), 15))
