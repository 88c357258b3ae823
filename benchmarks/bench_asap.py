"""ASAP against the driver-centred schemes under persistent stragglers.

Run::

    python benchmarks/bench_asap.py --workers 16 --slow 4 --factor 5 --p-slow-slow 0.9

Every contender fits the same LogisticRegression problem (the suite's
synthetic data, :func:`dask_quorum.bench.workloads.make_classification_data`)
on the same in-process cluster, with the same injected stragglers: the first
``--slow`` workers follow a two-state Markov chain (slow = ``factor`` x the
natural time + ``delay``). ASAP steps are slowed by the same chains
(:func:`~dask_quorum.pipeline.inject.slow_step`). For every round the
true objective of the round's iterate (for ASAP: the average of the
replicas) is evaluated on the driver afterwards, so all contenders are
judged on the same loss. Reported: time and rounds to reach
``1.001 x`` the optimum, and payload bytes per round, in total and through
the busiest node (the driver for sync/cyclic, one worker for ASAP).
Contenders ``asap-s<k>`` run ASAP with ``staleness=k``; ``asap-f32`` sends
float32 messages; ``asap-a<x>`` multiplies the step by ``x``
(``quorum.asap.step-scale``); parts combine (``asap-s8-f32``). Prints a markdown table and writes a CSV.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import warnings
from time import perf_counter

import dask
import numpy as np
from dask_quorum.pipeline.cluster import scheduler_workers
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

from dask_quorum import (
    LogisticRegression,
    Slowdown,
    inject_stragglers,
    remove_stragglers,
)
from dask_quorum.bench.measure import wait_idle
from dask_quorum.bench.report import write_csv
from dask_quorum.bench.workloads import (
    TARGET_RATIO,
    GLMWorkload,
    make_classification_data,
)


def contender(name: str, args, client) -> tuple[LogisticRegression, dict]:
    """The estimator a contender name stands for, and config overrides."""
    common = dict(C=args.C, tol=1e-10, random_state=args.seed, client=client)
    if name.startswith("asap"):
        staleness, overrides = 0, {}
        for part in name.split("-")[1:]:
            if part.startswith("s"):
                staleness = int(part[1:])
            elif part == "f32":
                overrides["quorum.asap.message-dtype"] = "float32"
            elif part.startswith("a"):
                overrides["quorum.asap.step-scale"] = float(part[1:])
        est = LogisticRegression(scheme="asap", staleness=staleness, max_iter=args.asap_rounds, **common)
        return est, overrides
    redundancy = max(2, args.slow + 1) if name != "sync" else None
    return LogisticRegression(scheme=name, redundancy=redundancy, max_iter=args.max_iter, **common), {}


def fit_one(name, args, client, workload, slow_workers):
    est, overrides = contender(name, args, client)
    wait_idle(client, 60)
    if slow_workers or args.unit_seconds:
        slow = Slowdown(factor=args.factor, delay=args.delay, p_slow_slow=args.p_slow_slow, p_slow_fast=args.p_slow_fast)
        inject_stragglers(client, {w: slow for w in slow_workers}, seed=args.seed, unit_seconds=args.unit_seconds)
    start = perf_counter()
    try:
        with dask.config.set({"quorum.history.keep-params": True, **overrides}), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(*workload.fit_data())
    finally:
        if slow_workers or args.unit_seconds:
            remove_stragglers(client)
    fit_s = perf_counter() - start
    h = est.history_
    losses = np.array([workload.objective(p) for p in h["params"].values])
    hit = np.flatnonzero(losses <= workload.target())
    elapsed = h["elapsed"].values
    return {
        "contender": name,
        "time_to_target_s": float(elapsed[hit[0]]) if hit.size else float("inf"),
        "rounds_to_target": int(hit[0]) + 1 if hit.size else -1,
        "rounds": int(h.sizes["round"]),
        "mean_round_ms": 1e3 * float(np.mean(np.diff(np.r_[0.0, elapsed]))),
        "best_loss_over_opt": float(losses.min() / workload.optimum()),
        "bytes_per_round": float(h["bytes_sent"].mean()),
        "max_node_bytes_per_round": float(h["bytes_max_node"].mean()),
        "fit_s": fit_s,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--slow", type=int, default=4, help="number of straggling workers")
    p.add_argument("--factor", type=float, default=5.0)
    p.add_argument("--delay", type=float, default=0.02, help="extra seconds of a slow step")
    p.add_argument("--p-slow-slow", type=float, default=0.9)
    p.add_argument("--p-slow-fast", type=float, default=0.03)
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--features", type=int, default=50)
    p.add_argument("--C", type=float, default=1.0)
    p.add_argument("--max-iter", type=int, default=300, help="L-BFGS iterations of sync / cyclic")
    p.add_argument("--asap-rounds", type=int, default=1500, help="rounds of the ASAP contenders")
    p.add_argument("--contenders", nargs="+", default=["sync", "cyclic", "asap", "asap-s8", "asap-f32"])
    p.add_argument("--unit-seconds", type=float, default=0.0,
                   help="emulated seconds of work per row on every worker, times its slowdown (a small "
                   "host behaving like a cluster of dedicated machines; see pipeline/injection.py)")
    p.add_argument("--processes", action="store_true", help="worker processes instead of in-process workers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "asap.csv"))
    args = p.parse_args(argv)

    X, y = make_classification_data(args.samples, args.features, args.seed)
    workload = GLMWorkload(
        "synthetic-logistic", "logistic", X, y, f"synthetic {args.samples} x {args.features}", C=args.C
    )
    workload.optimum()
    rows = []
    with LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=args.processes, dashboard_address=":0"
    ) as cluster, Client(cluster) as client:
        workers = sorted(scheduler_workers(client))
        for name in args.contenders:
            rows.append(fit_one(name, args, client, workload, workers[: args.slow]))
    base = next((r for r in rows if r["contender"] == "sync"), rows[0])
    print(
        f"# LogisticRegression {args.samples} x {args.features} (C={args.C}), {args.workers} workers, "
        f"{args.slow} slow ({args.factor:g}x + {args.delay:g} s, P(slow|slow)={args.p_slow_slow}, "
        f"P(slow|fast)={args.p_slow_fast}); target {TARGET_RATIO} x optimum"
        + (f"; every step emulates {args.unit_seconds:g} s per row" if args.unit_seconds else "")
        + ("; worker processes" if args.processes else "; in-process workers")
    )
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, dask {dask.__version__}")
    print(
        "| contender | time to target [s] | rounds to target | rounds | mean round [ms] | best loss / opt "
        "| bytes / round | busiest node bytes / round | speed-up vs sync | busiest-node bytes vs sync |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        t = r["time_to_target_s"]
        speed = f"{base['time_to_target_s'] / t:.2f}x" if np.isfinite(t) and np.isfinite(base["time_to_target_s"]) else "-"
        print(
            f"| {r['contender']} | {t:.2f} | {r['rounds_to_target']} | {r['rounds']} | {r['mean_round_ms']:.1f} "
            f"| {r['best_loss_over_opt']:.6f} | {r['bytes_per_round']:.0f} | {r['max_node_bytes_per_round']:.0f} "
            f"| {speed} | {base['max_node_bytes_per_round'] / r['max_node_bytes_per_round']:.2f}x fewer |"
        )
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
