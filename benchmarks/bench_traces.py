"""Replay the EC2 straggler traces: time to 1.001 x the optimal loss per scheme.

Run::

    python benchmarks/bench_traces.py --traces data2 data4 data8

For every trace, a LocalCluster with one worker per trace node replays the
trace's per-node slowdowns (``TraceReplay``: a node's time over the
iteration's lower-median time, kept as a ratio; ``--budget`` seconds of
extra delay per unit of slowdown), and every scheme fits the same
LogisticRegression problem under the same replay, in one run. The true
objective of every round's iterate is evaluated afterwards on the driver.
Prints a markdown table and writes a CSV.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
from pathlib import Path

import dask
import numpy as np
from distributed import Client, LocalCluster
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from common import fit_measured, make_data, objective, result_cells, write_csv

from dask_quorum import LogisticRegression, TraceReplay, inject_stragglers, remove_stragglers

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces" / "aws_ec2_iteration_times.csv"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--traces", nargs="+", default=["data2", "data4", "data8"])
    p.add_argument("--schemes", nargs="+", default=["sync", "uncoded", "cyclic", "heterogeneous", "auto"])
    p.add_argument("--csv", default=str(TRACES))
    p.add_argument("--budget", type=float, default=0.02, help="seconds per unit of slowdown (see TraceReplay)")
    p.add_argument("--samples", type=int, default=60_000)
    p.add_argument("--features", type=int, default=30)
    p.add_argument("--C", type=float, default=1.0)
    p.add_argument("--redundancy", type=int, default=2)
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--processes", action="store_true", help="worker processes instead of threads")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "traces.csv"))
    args = p.parse_args(argv)

    X, y = make_data(args.samples, args.features, args.seed)
    ref = SkLogisticRegression(C=args.C, tol=1e-12, max_iter=10_000).fit(X, y)
    f_opt = objective(np.r_[ref.coef_[0], ref.intercept_], X, y, args.C)
    target = 1.001 * f_opt

    rows = []
    for trace in args.traces:
        n_nodes = _n_nodes(args.csv, trace)
        with LocalCluster(n_workers=n_nodes, threads_per_worker=1, processes=args.processes,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
            replay = TraceReplay.from_csv(args.csv, trace, workers=workers, budget=args.budget)
            for scheme in args.schemes:
                inject_stragglers(client, replay)
                est = LogisticRegression(C=args.C, scheme=scheme, redundancy=args.redundancy, tol=1e-10,
                                         max_iter=args.max_iter, random_state=args.seed, client=client)
                h, losses, seconds, rounds, fit_s = fit_measured(est, X, y, args.C, target)
                remove_stragglers(client)
                rows.append({
                    "trace": trace, "scheme": scheme, "time_to_target_s": seconds,
                    "rounds_to_target": rounds, "rounds": h.sizes["round"],
                    "mean_round_s": float(h["wall_time"].mean()),
                    "best_loss_over_opt": float(losses.min() / f_opt), "fit_s": fit_s,
                    "switches": h.attrs.get("switches", "[]"),
                })
                print(f"{trace} {scheme}: {seconds:.2f}s to target, {h.sizes['round']} rounds", file=sys.stderr)

    print(f"# LogisticRegression {args.samples} x {args.features}; EC2 traces replayed (budget {args.budget:g} s "
          f"per unit of slowdown), redundancy {args.redundancy}; target 1.001 x optimum")
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, dask {dask.__version__}, "
          f"{'processes' if args.processes else 'threads'}")
    print("| trace | scheme | time to target [s] | rounds to target | rounds | mean round [s] | best loss / opt | speed-up vs sync |")
    print("|---|---|---|---|---|---|---|---|")
    for trace in args.traces:
        mine = [r for r in rows if r["trace"] == trace]
        base = next((r["time_to_target_s"] for r in mine if r["scheme"] == "sync"), float("nan"))
        for r in mine:
            print(f"| {trace} | {r['scheme']} | {result_cells(r, base)}")
    write_csv(rows, args.out)
    return 0


def _n_nodes(path: str, trace: str) -> int:
    """Number of nodes of a trace in the CSV."""
    with open(path, newline="") as f:
        return len({row["node"] for row in csv.DictReader(f) if row["trace"] == trace})


if __name__ == "__main__":
    sys.exit(main())
