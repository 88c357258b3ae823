"""Heterogeneous codes over more partitions than workers (fractional loads)."""

import numpy as np
import pytest
from dask_quorum.pipeline.coding import contiguous_groups, expand, make_code
from dask_quorum.pipeline.planning import shape_heterogeneous, simulate

PROBS = np.r_[[0.75] * 4, [0.05] * 12]


def test_low_bound_binds_reliable_workers_and_stragglers_take_the_rest():
    code = make_code("heterogeneous", 16, redundancy=2, straggle_probs=PROBS, n_partitions=48,
                     max_load=4, random_state=0)
    loads = np.count_nonzero(code.B, axis=1)
    assert code.B.shape == (16, 48)
    assert (loads[4:] == 4).all() and (loads[:4] == 12).all()
    assert (np.count_nonzero(code.B, axis=0) == 2).all()
    assert code.is_exact(np.arange(4, 16))  # the fast workers decode alone
    assert code.is_exact(np.r_[0, 2, 3, 5:16])  # any n - 1 do too


def test_infeasible_bound_is_rejected():
    with pytest.raises(ValueError, match="leaves room"):
        make_code("heterogeneous", 16, redundancy=2, straggle_probs=np.full(16, 0.1),
                  n_partitions=48, max_load=4)
    with pytest.raises(ValueError, match="n_partitions is only used"):
        make_code("cyclic", 4, n_partitions=8)


def test_expand_keeps_a_code_over_the_partitions():
    code = make_code("heterogeneous", 4, redundancy=2, straggle_probs=[0.8, 0.1, 0.1, 0.1],
                     n_partitions=12, random_state=0)
    assert expand(code, contiguous_groups(12, 4), 12) is code


def test_shaping_over_partitions_gives_fast_workers_fractional_loads():
    rng = np.random.default_rng(0)
    lat = np.ones((200, 16))
    lat[:, :4] = 10.0
    lat[:, :4] *= np.where(rng.random((200, 4)) < 0.25, 0.1, 1.0)  # stragglers sometimes fast
    code, run = shape_heterogeneous(PROBS, lat, redundancy=2, random_state=0,
                                    rows_per_partition=1 / 3, n_partitions=48)
    loads = np.count_nonzero(code.B, axis=1)
    assert loads[4:].max() <= 5  # well under the uniform 6 (two shares)
    even, _ = shape_heterogeneous(PROBS, lat, redundancy=2, random_state=0, rows_per_partition=1.0)
    assert run.mean_time < 0.8 * simulate(even, lat).mean_time


def test_load_limit_bounds_every_worker_the_likely_stragglers_included():
    probs = np.r_[np.full(4, 0.8), np.full(12, 0.05)]
    free = make_code("heterogeneous", 16, redundancy=2, straggle_probs=probs, n_partitions=48, max_load=4,
                     random_state=0)
    assert np.count_nonzero(free.B, axis=1).max() == 12  # the stragglers hold the second copies
    code = make_code("heterogeneous", 16, redundancy=2, straggle_probs=probs, n_partitions=48, max_load=5,
                     load_limit=9, random_state=0)
    loads = np.count_nonzero(code.B, axis=1)
    assert loads.max() <= 9 and loads.sum() == 96
    assert code.exact and code.is_exact(np.arange(4, 16))  # still decodes from the 12 fast workers
    # 12 x 4 + 4 x 10 = 88 < 96 replicas: does not fit, and says so
    with pytest.raises(ValueError, match=r"max_load=4 \(load_limit=10\) leaves room for 88 of the 96"):
        make_code("heterogeneous", 16, redundancy=2, straggle_probs=probs, n_partitions=48, max_load=4,
                  load_limit=10)
    with pytest.raises(ValueError, match="load_limit must be an integer >= 1"):
        make_code("heterogeneous", 16, redundancy=2, straggle_probs=probs, load_limit=0)
    with pytest.raises(ValueError, match="load_limit is only used by"):
        make_code("cyclic", 16, redundancy=2, load_limit=4)


def test_shaping_keeps_to_the_load_limit():
    from dask_quorum.pipeline.planning import shape_heterogeneous

    rng = np.random.default_rng(0)
    probs = np.r_[np.full(4, 0.8), np.full(12, 0.05)]
    latencies = np.where((rng.random((200, 16)) < 0.8) & (np.arange(16) < 4), 10.0, 1.0)  # fast ones never slow
    free, _ = shape_heterogeneous(probs, latencies, redundancy=2, n_partitions=48, random_state=0)
    bounded, _ = shape_heterogeneous(probs, latencies, redundancy=2, n_partitions=48, random_state=0, load_limit=7)
    assert np.count_nonzero(free.B, axis=1).max() > 7
    assert np.count_nonzero(bounded.B, axis=1).max() <= 7 and bounded.is_exact(np.arange(4, 16))
