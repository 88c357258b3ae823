"""Property tests of decoding: plain codes and the codes regrouped over changed workers.

Complements the properties in ``test_code.py`` (decode shapes, order,
monotone error): here every *sufficient* responder set of an exact code
reproduces the sum of arbitrary partial results, also for the codes the
engine builds when workers are lost or join (``coding/regroup.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.coding import (
    contiguous_groups,
    expand,
    group_index,
    make_code,
    regroup,
)
from hypothesis import given, settings
from hypothesis import strategies as st

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
