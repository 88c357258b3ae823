"""Tests of dask_quorum.pipeline.engine.placement: one key per replica, replicas kept by worker."""

from __future__ import annotations

import numpy as np
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.engine import CodedSession, Placement


def _parts(k, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=d) for _ in range(k)]


def _sorted_workers(client) -> list[str]:
    return sorted(scheduler_workers(client))


def test_each_replica_has_its_own_key_and_survives_the_amm(client4):
    with CodedSession(client4, scheme="cyclic", redundancy=2, random_state=0) as s:
        s.place(_parts(s.n_partitions))
        keys = [f.key for f in s._placement.replicas.values()]
        assert len(set(keys)) == int(np.count_nonzero(s.code.B))

        def run_amm_and_locate(dask_scheduler, keys=keys):
            dask_scheduler.extensions["amm"].run_once()
            return {k: sorted(ws.address for ws in dask_scheduler.tasks[k].who_has) for k in keys}

        located = client4.run_on_scheduler(run_amm_and_locate)
        expected = {f.key: [s.workers[i]] for (i, _), f in s._placement.replicas.items()}
        assert located == expected


def test_placement_keeps_replicas_by_worker_when_the_workers_change(client4):
    workers = _sorted_workers(client4)
    B = np.kron(np.eye(2), np.ones((2, 2)))  # frc: workers 0, 1 hold {0, 1}; 2, 3 hold {2, 3}
    placement = Placement(client4, workers, B, _parts(4), timeout=30)
    try:
        before = {(workers[i], j): f for (i, j), f in placement.replicas.items()}
        # the same assignment with the rows in another order moves nothing
        order = [3, 2, 1, 0]
        assert placement.update(B[order], [workers[i] for i in order]) == 0
        after = {(placement.workers[i], j): f for (i, j), f in placement.replicas.items()}
        assert after.keys() == before.keys() and all(after[k] is before[k] for k in after)
        # without the last worker: only what it held elsewhere is placed
        kept = [workers[0], workers[1], workers[2]]
        B3 = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1.0]])
        moved = placement.update(B3, kept)
        assert moved == 1  # partition 2 onto workers[1]; workers[2] keeps 2 and 3
        assert placement.holdings(kept).tolist() == (B3 != 0).tolist()
        assert placement.broken() == []
    finally:
        placement.release()


def test_a_partition_source_is_asked_with_the_live_replicas_of_other_workers(client4):
    from dask_quorum.pipeline.engine.placement import DriverPartitions

    class Recording(DriverPartitions):
        def __init__(self, payloads):
            super().__init__(payloads)
            self.asked = []
            self.settled = 0

        def replicas(self, client, address, indices, live, timeout):
            self.asked.append((address, list(indices), {j: sorted(a for a, _ in v) for j, v in live.items()}))
            return super().replicas(client, address, indices, live, timeout)

        def placed(self):
            self.settled += 1

    workers = _sorted_workers(client4)
    source = Recording(_parts(4))
    B = np.kron(np.eye(2), np.ones((2, 2)))
    placement = Placement(client4, workers, B, source, timeout=30)
    try:
        assert source.asked[0] == (workers[0], [0, 1], {0: [], 1: []})
        # worker 1 is placed after worker 0, whose replicas are live by then
        assert source.asked[1] == (workers[1], [0, 1], {0: [workers[0]], 1: [workers[0]]})
        assert source.settled == 1
        # moving partition 2 onto worker 0: the live replicas are those of workers 2 and 3
        B2 = B.copy()
        B2[0, 2] = 1
        assert placement.update(B2) == 1
        assert source.asked[-1] == (workers[0], [2], {2: [workers[2], workers[3]]})
        assert source.settled == 2
    finally:
        placement.release()
