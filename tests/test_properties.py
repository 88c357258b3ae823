"""Property tests: decoding invariants (plain and regrouped codes) and the straggler-model fit.

Complements the properties in tests/test_coding.py (decode shapes, order,
monotone error): here every *sufficient* responder set of an exact code
reproduces the sum of arbitrary partial results, also for the codes the
engine builds when workers are lost or join (pipeline/regroup.py), and the
straggler model does not depend on how workers are labelled or on the unit
of time.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dask_quorum.pipeline.coding import make_code
from dask_quorum.pipeline.regroup import contiguous_groups, expand, group_index, regroup
from dask_quorum.pipeline.stragglers import fit_straggler_model

PROPERTIES = settings(max_examples=60, deadline=None, derandomize=True, database=None)


@st.composite
def exact_codes(draw, max_workers: int = 12):
    scheme = draw(st.sampled_from(["sync", "frc", "cyclic"]))
    n = draw(st.integers(1, max_workers))
    rs = [r for r in range(1, n + 1) if scheme != "frc" or n % r == 0]
    if scheme == "cyclic":
        rs = [r for r in rs if r <= 5]  # see make_code Notes: conditioning beyond
    r = draw(st.sampled_from(rs))
    return make_code(scheme, n, redundancy=r)


@st.composite
def sufficient_sets(draw, code):
    """Any set of at least ``min_responders`` distinct workers, in any order."""
    size = draw(st.integers(code.min_responders, code.n_workers))
    chosen = draw(st.permutations(range(code.n_workers)))[:size]
    return list(chosen)


def _partials(draw, k: int) -> np.ndarray:
    values = draw(
        st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=3 * k, max_size=3 * k)
    )
    return np.asarray(values).reshape(k, 3)


def _decoded(code, responders, partials):
    idx = np.asarray(responders)
    return code.decode(idx) @ (code.B[idx] @ partials)


def _assert_close_to_sum(decoded, partials):
    total = partials.sum(axis=0)
    scale = max(1.0, np.abs(partials).sum())
    np.testing.assert_allclose(decoded, total, atol=1e-7 * scale, rtol=0)


@PROPERTIES
@given(st.data())
def test_any_sufficient_set_of_an_exact_code_reproduces_the_sum(data):
    code = data.draw(exact_codes())
    responders = data.draw(sufficient_sets(code))
    partials = _partials(data.draw, code.n_partitions)
    assert code.is_exact(responders)
    _assert_close_to_sum(_decoded(code, responders, partials), partials)


@st.composite
def groupings(draw):
    k = draw(st.integers(1, 16))
    n = draw(st.integers(1, min(k, 10)))
    return k, contiguous_groups(k, n, offset=draw(st.integers(0, 40)), start=draw(st.integers(0, 40)))


@PROPERTIES
@given(groupings())
def test_contiguous_groups_split_every_partition_once_with_balanced_sizes(case):
    k, groups = case
    g = group_index(groups, k)  # raises unless a partition of 0 .. k-1
    assert sorted(np.concatenate(groups).tolist()) == list(range(k))
    sizes = [len(m) for m in groups]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert g.shape == (k,)


@PROPERTIES
@given(st.data())
def test_a_code_regrouped_over_fewer_workers_keeps_exact_decoding(data):
    """Workers lost or joined: the code over groups decodes every partition's sum."""
    k = data.draw(st.integers(1, 14), label="partitions")
    code = data.draw(exact_codes(max_workers=k), label="code over groups")
    held = np.asarray(
        data.draw(st.lists(st.booleans(), min_size=code.n_workers * k, max_size=code.n_workers * k))
    ).reshape(code.n_workers, k)
    groups = regroup(code, held)
    expanded = expand(code, groups, k)
    assert expanded.B.shape == (code.n_workers, k)
    assert expanded.min_responders == code.min_responders and expanded.exact
    # every partition has as many replicas as its group
    np.testing.assert_array_equal(
        np.count_nonzero(expanded.B, axis=0), np.count_nonzero(code.B, axis=0)[group_index(groups, k)]
    )
    responders = data.draw(sufficient_sets(code), label="responders")
    partials = _partials(data.draw, k)
    _assert_close_to_sum(_decoded(expanded, responders, partials), partials)


@PROPERTIES
@given(st.data())
def test_regroup_keeps_at_least_as_many_replicas_as_the_plain_grouping(data):
    k = data.draw(st.integers(1, 12))
    code = data.draw(exact_codes(max_workers=k))
    held = np.asarray(
        data.draw(st.lists(st.booleans(), min_size=code.n_workers * k, max_size=code.n_workers * k))
    ).reshape(code.n_workers, k)

    def kept(groups):
        return int(np.count_nonzero((expand(code, groups, k).B != 0) & held))

    assert kept(regroup(code, held)) >= kept(contiguous_groups(k, code.n_workers))


@pytest.mark.parametrize("scheme", ["sync", "uncoded"])
def test_rescaled_schemes_scale_by_the_partitions_the_responders_hold(scheme):
    # 5 partitions in groups of 2, 2, 1: sync needs every worker, weight 1 each
    groups = contiguous_groups(5, 3)
    code = expand(make_code(scheme, 3, redundancy=1 if scheme == "sync" else 2), groups, 5)
    np.testing.assert_allclose(code.decode([0, 1, 2]), 1.0)
    # without the worker holding 2 of the 5 partitions: 5 / 3 for the others
    np.testing.assert_allclose(code.decode([1, 2]), 5 / 3)


# --------------------------------------------------------------------------- straggler model


@st.composite
def latency_matrices(draw):
    n_rounds = draw(st.integers(3, 25))
    n_workers = draw(st.integers(2, 7))
    base = np.asarray(
        draw(st.lists(st.floats(0.5, 2.0), min_size=n_rounds * n_workers, max_size=n_rounds * n_workers))
    ).reshape(n_rounds, n_workers)
    slow = np.asarray(
        draw(st.lists(st.booleans(), min_size=n_rounds * n_workers, max_size=n_rounds * n_workers))
    ).reshape(n_rounds, n_workers)
    factor = draw(st.floats(3.0, 20.0))
    x = np.where(slow, base * factor, base)
    missing = np.asarray(
        draw(st.lists(st.booleans(), min_size=n_rounds * n_workers, max_size=n_rounds * n_workers))
    ).reshape(n_rounds, n_workers)
    missing &= np.arange(n_rounds)[:, None] >= 2  # every worker observed in the first two rounds
    return np.where(missing, np.nan, x)


_PER_WORKER = ("p", "p_slow_slow", "p_slow_fast", "shift", "rate", "slow_shift", "slow_rate", "slowdown", "n_rounds")


@PROPERTIES
@given(latency_matrices(), st.data())
def test_the_fit_is_invariant_to_relabelling_the_workers(x, data):
    names = [f"w{i}" for i in range(x.shape[1])]
    perm = data.draw(st.permutations(range(x.shape[1])))
    model = fit_straggler_model(x, workers=names)
    relabelled = fit_straggler_model(x[:, perm], workers=[names[j] for j in perm])
    for field in _PER_WORKER:
        a = np.asarray(getattr(model, field), dtype=float)[perm]
        b = np.asarray(getattr(relabelled, field), dtype=float)
        np.testing.assert_allclose(b, a, rtol=1e-12, err_msg=field)
    assert sorted(relabelled.slow_workers()) == sorted(model.slow_workers())


@PROPERTIES
@given(latency_matrices())
def test_fitted_probabilities_are_probabilities(x):
    model = fit_straggler_model(x)
    for field in ("p", "p_slow_slow", "p_slow_fast", "p_stationary"):
        values = np.asarray(getattr(model, field), dtype=float)
        assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1).all(), field
    # smoothed transition probabilities never reach 0 or 1
    assert (model.p_slow_slow > 0).all() and (model.p_slow_slow < 1).all()
    np.testing.assert_array_equal(model.n_rounds, (~np.isnan(x)).sum(axis=0))


@PROPERTIES
@given(latency_matrices(), st.floats(1e-3, 1e3))
def test_the_fit_does_not_depend_on_the_unit_of_time(x, c):
    model, scaled = fit_straggler_model(x), fit_straggler_model(x * c)
    for field in ("p", "p_slow_slow", "p_slow_fast", "slowdown"):
        np.testing.assert_allclose(getattr(scaled, field), getattr(model, field), rtol=1e-9, err_msg=field)
    np.testing.assert_allclose(scaled.shift, model.shift * c, rtol=1e-9)
    np.testing.assert_allclose(scaled.slow_shift, model.slow_shift * c, rtol=1e-9)
