"""Time to reach 1.001 x the optimal loss: sync against coded schemes under stragglers.

Run::

    python benchmarks/bench_schemes.py --workers 8 --stragglers 2

Every scheme is fitted on the same LocalCluster, with the same injected
persistent stragglers (a two-state Markov chain per slow worker), in one
run; the optimum comes from scikit-learn on one machine. The true objective
of every round's iterate is evaluated on the driver afterwards, so schemes
that decode approximately are judged on the real loss, not on their own
estimate. Prints a markdown table and writes a CSV next to this file.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import dask
import numpy as np
from distributed import Client, LocalCluster
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from common import fit_measured, make_data, objective, plot, result_cells, write_csv

from dask_quorum import LogisticRegression, Slowdown, inject_stragglers, remove_stragglers


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--stragglers", type=int, default=2)
    p.add_argument("--redundancy", type=int, help="default: stragglers + 1 (at least 2)")
    p.add_argument("--factor", type=float, default=10.0)
    p.add_argument("--delay", type=float, default=0.1)
    p.add_argument("--p-slow-slow", type=float, default=0.9)
    p.add_argument("--p-slow-fast", type=float, default=0.03)
    p.add_argument("--samples", type=int, default=100_000)
    p.add_argument("--features", type=int, default=50)
    p.add_argument("--C", type=float, default=1.0)
    p.add_argument("--max-iter", type=int, default=300)
    p.add_argument("--schemes", nargs="+", default=["sync", "uncoded", "cyclic"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "schemes.csv"))
    p.add_argument("--plot", help="also write a PNG of loss against time here (needs matplotlib)")
    args = p.parse_args(argv)

    X, y = make_data(args.samples, args.features, args.seed)
    ref = SkLogisticRegression(C=args.C, tol=1e-12, max_iter=10_000).fit(X, y)
    f_opt = objective(np.r_[ref.coef_[0], ref.intercept_], X, y, args.C)
    target = 1.001 * f_opt

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        slow = Slowdown(factor=args.factor, delay=args.delay, p_slow_slow=args.p_slow_slow, p_slow_fast=args.p_slow_fast)
        rows, curves = [], {}
        for scheme in args.schemes:
            # the same seed per scheme: every contender meets the same straggler sequence per task
            if args.stragglers:
                inject_stragglers(client, {w: slow for w in workers[: args.stragglers]}, seed=args.seed)
            redundancy = args.redundancy or max(2, args.stragglers + 1)
            est = LogisticRegression(C=args.C, scheme=scheme, redundancy=redundancy, tol=1e-10, max_iter=args.max_iter, random_state=args.seed, client=client)
            h, losses, seconds, rounds, fit_seconds = fit_measured(est, X, y, args.C, target)
            if args.stragglers:
                remove_stragglers(client)
            curves[scheme] = (h["elapsed"].values, losses)
            best = float(losses.min())
            rows.append({
                "scheme": scheme,
                "time_to_target_s": seconds,
                "rounds_to_target": rounds,
                "rounds": h.sizes["round"],
                "mean_round_s": float(h["wall_time"].mean()),
                "best_loss_over_opt": best / f_opt,
                "fit_s": fit_seconds,
            })
    base = rows[0]["time_to_target_s"]
    title = (f"LogisticRegression {args.samples} x {args.features}, {args.workers} workers, "
             f"{args.stragglers} slow ({args.factor:g}x + {args.delay:g} s)")
    if args.plot:
        plot(curves, f_opt, args.plot, title)
    print(f"# LogisticRegression {args.samples} x {args.features}, {args.workers} workers, "
          f"{args.stragglers} slow ({args.factor:g}x + {args.delay:g} s, P(slow|slow)={args.p_slow_slow}, "
          f"P(slow|fast)={args.p_slow_fast}); target 1.001 x optimum")
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"dask {dask.__version__}")
    print("| scheme | time to target [s] | rounds to target | rounds | mean round [s] | best loss / opt | speed-up vs " + rows[0]["scheme"] + " |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scheme']} | {result_cells(r, base)}")
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
