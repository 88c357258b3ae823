"""The ``dask-quorum`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from distributed import Client


def _demo(args: argparse.Namespace) -> int:
    from dask_quorum.demo import format_table, local_cluster, run_demo

    if args.scheduler:
        client = Client(args.scheduler, timeout=args.connect_timeout)
        cluster = None
    else:
        cluster = local_cluster(args.workers)
        client = Client(cluster)
    try:
        print(f"dask-quorum demo: {len(client.scheduler_info(n_workers=-1)['workers'])} workers, "
              f"{args.stragglers} persistent straggler(s) {args.factor:g}x slower (+{args.delay:g} s)")
        print(f"dashboard: {client.dashboard_link}")
        rows = run_demo(
            client,
            schemes=tuple(args.schemes),
            n_stragglers=args.stragglers,
            factor=args.factor,
            delay=args.delay,
            max_iter=args.max_iter,
            seed=args.seed,
        )
        print("LogisticRegression, digits (1797 x 64, 10 classes), same stragglers for every scheme")
        print(format_table(rows))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dask-quorum``."""
    parser = argparse.ArgumentParser(
        prog="dask-quorum",
        description="Straggler-tolerant iterative machine learning on Dask.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        help="fit with sync and coded rounds under injected stragglers",
        description="Fit LogisticRegression on the digits data with each scheme, on an "
        "embedded LocalCluster (or --scheduler) where some workers are made persistently "
        "slow, and print rounds, time, final loss and speed-up.",
    )
    demo.add_argument("--workers", type=_positive_int, default=4, help="local workers (default 4)")
    demo.add_argument("--scheduler", help="address of an existing scheduler instead of a local cluster")
    demo.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to reach --scheduler")
    demo.add_argument("--schemes", nargs="+", default=["sync", "cyclic"],
                      choices=["sync", "uncoded", "frc", "cyclic", "expander"])
    demo.add_argument("--stragglers", type=_positive_int, default=1, help="slow workers (default 1)")
    demo.add_argument("--factor", type=float, default=10.0, help="slowdown factor (default 10)")
    demo.add_argument("--delay", type=float, default=0.05, help="extra seconds per slow task (default 0.05)")
    demo.add_argument("--max-iter", type=_positive_int, default=200)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return args.func(args)
    except (ValueError, TimeoutError, OSError) as exc:
        print(f"dask-quorum {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
