"""ASAP's peer graphs: circulant, doubly stochastic, connected (pure NumPy)."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.asap import (
    GRAPH_KINDS,
    default_degree,
    make_graph,
    spectral_gap,
)


@pytest.mark.parametrize("kind", GRAPH_KINDS)
def test_averaging_matrix_is_doubly_stochastic_with_a_gap(kind):
    for n in range(2, 65):
        g = make_graph(n, kind=kind)
        W = g.W
        np.testing.assert_allclose(W.sum(axis=0), 1.0, atol=1e-12, err_msg=f"n={n}")
        np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12, err_msg=f"n={n}")
        assert (W >= 0).all()
        assert g.spectral_gap > 0, (n, g.offsets)
        # the gap is that of W's spectrum (second largest modulus), not a formula's
        moduli = np.sort(np.abs(np.linalg.eigvals(W)))
        assert g.spectral_gap == pytest.approx(1 - moduli[-2], abs=1e-9)
        # in-degree about log2 n, the same for every worker, and the peers agree with W
        assert g.degree == default_degree(n)
        for i in range(n):
            assert set(np.flatnonzero(W[i])) == {i, *g.in_peers(i)}
            assert all(i in g.in_peers(j) for j in g.out_peers(i))


def test_default_degree_is_ceil_log2():
    assert [default_degree(n) for n in (1, 2, 3, 4, 5, 16, 17, 64)] == [0, 1, 2, 2, 3, 4, 5, 6]


def test_spectral_choice_beats_or_matches_powers_of_two():
    for n in (8, 15, 16, 31, 32, 48, 64):
        assert make_graph(n).spectral_gap >= make_graph(n, kind="exponential").spectral_gap - 1e-12


def test_symmetric_graphs_have_symmetric_matrices():
    for n in (4, 9, 16, 33):
        g = make_graph(n, kind="symmetric")
        assert g.symmetric
        np.testing.assert_allclose(g.W, g.W.T)


def test_averaging_converges_to_the_mean_at_the_gap_rate():
    g = make_graph(16)
    x = np.random.default_rng(0).normal(size=16)
    mean = x.mean()
    for _ in range(40):
        x = g.W @ x
    assert x.mean() == pytest.approx(mean, abs=1e-12)  # the average is preserved
    assert np.abs(x - mean).max() <= 10 * (1 - g.spectral_gap) ** 40


def test_given_offsets_are_used_and_checked():
    g = make_graph(10, offsets=[1, 5])
    assert g.offsets == (1, 5) and g.kind == "given"
    assert g.spectral_gap == pytest.approx(spectral_gap(10, [1, 5]))
    with pytest.raises(ValueError, match="do not connect"):
        make_graph(8, offsets=[2, 4])
    with pytest.raises(ValueError, match="distinct integers in 1 .. 7"):
        make_graph(8, offsets=[1, 8])
    with pytest.raises(ValueError, match="distinct"):
        make_graph(8, offsets=[3, 3])


@pytest.mark.parametrize(
    "args, kwargs, match",
    [((0,), {}, "n \\(the number of workers\\)"), ((4, 4), {}, "degree must be an integer in 1 .. 3"),
     ((4, 0), {}, "degree"), ((4,), {"kind": "ring"}, "kind must be one of")],
)
def test_bad_arguments_are_named(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_graph(*args, **kwargs)


def test_a_single_worker_has_no_peers():
    g = make_graph(1)
    assert g.degree == 0 and g.spectral_gap == 1.0
    np.testing.assert_array_equal(g.W, [[1.0]])
