"""Fitting a dask array the driver never holds, under persistent 10x stragglers.

Run::

    python benchmarks/bench_dask_input.py                       # 4 GB, 8 worker processes, 1 slow worker
    python benchmarks/bench_dask_input.py --gigabytes 0.5       # a few minutes on 2 cores

A float32 logistic problem of ``--gigabytes`` is generated on the workers
with ``dask.array``'s seeded generator and persisted; then dask-quorum's
schemes and dask-ml's ``lbfgs`` fit that same persisted array under the
same injected stragglers (the first ``--n-slow`` workers follow the suite's
persistent Markov chain, ``--slowdown`` times slower when slow). Reported
per contender: time to ``1.001 x`` the best objective any contender
reached, the driver's peak RSS growth during the fit (target: under 5 % of
the data), the largest worker's memory, and the issue's verdicts. The code
is :mod:`dask_quorum.bench.collections`; this script prints its markdown
and writes a CSV of the contenders, the full result as JSON and the
markdown next to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from dask_quorum.bench.collections import CollectionsConfig, run_collections
from dask_quorum.bench.collections_report import render_markdown, result_rows
from dask_quorum.bench.report import write_csv

logger = logging.getLogger("bench_dask_input")


def _json_default(value):
    """NumPy values as lists and numbers; anything else as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gigabytes", type=float, default=4.0, help="size of the float32 features, in 10**9 bytes")
    p.add_argument("--workers", type=int, default=8, help="single-threaded worker processes")
    p.add_argument("--features", type=int, default=100)
    p.add_argument("--slowdown", type=float, default=10.0, help="factor of a slow task")
    p.add_argument("--n-slow", type=int, default=1, help="slow workers; the coded schemes get n_slow + 1 replicas")
    p.add_argument("--max-iter", type=int, default=100, help="iteration cap of every optimiser")
    p.add_argument("--sync-max-iter", type=int, default=None,
                   help="a lower cap for sync alone (its rounds wait for the straggler); short of the target, "
                        "the speed-up over it is reported as a lower bound")
    p.add_argument("--tol", type=float, default=1e-6, help="stop at this largest mean-gradient component")
    p.add_argument("--schemes", nargs="+", default=["sync", "cyclic", "heterogeneous"],
                   help="dask-quorum schemes (sync, frc, cyclic, heterogeneous, auto, ...)")
    p.add_argument("--no-dask-ml", action="store_true", help="leave dask-ml's lbfgs out")
    p.add_argument("--chunk-mb", type=float, default=64.0, help="row chunk size of the dask array")
    p.add_argument("--memory-limit", default=None,
                   help="per-worker memory limit (e.g. 2.5GiB); default: total RAM / workers")
    p.add_argument("--round-timeout", default="600s", help="quorum.round-timeout during the run")
    p.add_argument("--threads", action="store_true", help="in-process workers instead of processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "dask_input.csv"),
                   help="CSV path; the markdown (.md) and the full result (.json) go beside it")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = CollectionsConfig(
        gigabytes=args.gigabytes, n_workers=args.workers, n_features=args.features, slowdown=args.slowdown,
        n_slow=args.n_slow, max_iter=args.max_iter, sync_max_iter=args.sync_max_iter, tol=args.tol, schemes=args.schemes,
        dask_ml=not args.no_dask_ml, chunk_mb=args.chunk_mb, seed=args.seed, processes=not args.threads,
        memory_limit=args.memory_limit, round_timeout=args.round_timeout,
    )
    result = run_collections(cfg, log=logger.info)
    markdown = render_markdown(result)
    sys.stdout.write(markdown)
    out = Path(args.out)
    write_csv(result_rows(result), out)
    out.with_suffix(".md").write_text(markdown)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=_json_default))
    logger.info("wrote %s, %s and %s", out, out.with_suffix(".md"), out.with_suffix(".json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
