"""Per-round engine overhead: an empty coded round against the bare Dask floor.

Run::

    python benchmarks/bench_overhead.py --workers 4 15 [--processes]

The floor is n no-op tasks submitted to n workers (pinned, ``pure=False``)
and gathered at once; the engine round ships parameters, submits one coded
task per worker, consumes results as they finish and decodes. Both are
timed on the same cluster in the same run, after a warm-up.
"""

from __future__ import annotations

import argparse
import sys
from time import perf_counter

import numpy as np
from distributed import Client, LocalCluster

from dask_quorum.pipeline.session import CodedSession


def noop(x, i):
    return i


def scaled(params, part):
    return params * part


def floor_round(client, workers):
    client.gather([client.submit(noop, 1, i, workers=[w], pure=False) for i, w in enumerate(workers)])


def timed(fn, rounds):
    for _ in range(max(5, rounds // 10)):
        fn()
    start = perf_counter()
    for _ in range(rounds):
        fn()
    return (perf_counter() - start) / rounds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--processes", action="store_true")
    p.add_argument("--schemes", nargs="+", default=["sync", "cyclic"])
    args = p.parse_args(argv)
    print("| workers | bare floor [ms] | " + " | ".join(f"{s} [ms] (x floor)" for s in args.schemes) + " |")
    print("|---|---|" + "---|" * len(args.schemes))
    for n in args.workers:
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=args.processes,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
            floor = timed(lambda: floor_round(client, workers), args.rounds)
            cells = []
            for scheme in args.schemes:
                with CodedSession(client, scheme=scheme, redundancy=2, random_state=0) as s:
                    s.place([np.ones(3)] * s.n_partitions)
                    t = timed(lambda: s.round(scaled, 1.0), args.rounds)
                cells.append(f"{t * 1e3:.1f} ({t / floor:.2f}x)")
            print(f"| {n} | {floor * 1e3:.1f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
