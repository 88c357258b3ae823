"""Tests of dask_quorum.pipeline.engine.session: the session's life cycle, its code and re-encoding."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.coding import make_code
from dask_quorum.pipeline.engine import CodedSession


def scaled(params, part):
    """A partial result: the partition's vector times a scalar parameter."""
    return params * part


def _parts(k, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=d) for _ in range(k)]


def test_reencode_moves_only_the_replicas_that_change(client4):
    with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=0) as s:
        parts = _parts(s.n_partitions)
        s.place(parts)
        s.round(scaled, 1.0)
        kept = dict(s._placement.replicas)
        frc = make_code("frc", 4, redundancy=2)
        moved = s.reencode(frc)
        new_pairs = {(i, int(j)) for i in range(4) for j in np.flatnonzero(frc.B[i])}
        assert set(s._placement.replicas) == new_pairs
        assert moved == len(new_pairs - set(kept))
        for pair in new_pairs & set(kept):
            assert s._placement.replicas[pair] is kept[pair]
        np.testing.assert_allclose(s.round(scaled, 2.0), 2.0 * np.sum(parts, axis=0), rtol=1e-9)
        assert s.records[-1].stop == "exact"
        with pytest.raises(ValueError, match="workers"):
            s.reencode(make_code("sync", 3))


def test_session_needs_enter_and_place(client4):
    s = CodedSession(client4, scheme="sync", redundancy=1)
    with pytest.raises(RuntimeError, match="enter"):
        s.place([])
    with s:
        with pytest.raises(RuntimeError, match="place"):
            s.round(scaled, 1.0)
        with pytest.raises(ValueError, match="partitions"):
            s.place(_parts(s.n_partitions + 1))


def test_make_code_is_what_the_session_uses(client4):
    with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=3) as s:
        np.testing.assert_array_equal(s.code.B, make_code("cyclic", 4, redundancy=2, random_state=3).B)


def test_partition_limit_is_what_the_smallest_worker_memory_takes():
    import dask
    from dask.sizeof import sizeof
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=3, threads_per_worker=1, processes=False, dashboard_address=":0",
                      memory_limit="8GiB") as cluster, Client(cluster, set_as_default=False) as client:
        with CodedSession(client, scheme="cyclic", redundancy=2, random_state=0) as s:
            with pytest.raises(RuntimeError, match="place the partitions first"):
                s.partition_limit()
            parts = [np.ones(2**17) * j for j in range(s.n_partitions)]  # 1 MiB each
            s.place(parts)
            with dask.config.set({"distributed.worker.memory.target": 0.5}):
                assert s.partition_limit() == int(8 * 2**30 * 0.5 // sizeof(parts[0]))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0",
                      memory_limit=0) as cluster, Client(cluster, set_as_default=False) as client:
        with CodedSession(client, scheme="sync", redundancy=1, random_state=0) as s:
            s.place([np.ones(4) for _ in range(s.n_partitions)])
            assert s.partition_limit() is None  # no memory limits: no bound
