"""``dask-quorum bench``: the argument parser and the command.

Wire it into the main command line with::

    from dask_quorum.bench import cli as bench_cli
    bench_cli.add_parser(subparsers)   # sets func=bench_cli.main

or run it on its own with :func:`run` (``python benchmarks/run_suite.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .machine import describe_machine
from .report import update_docs, write_outputs
from .sections import SECTIONS
from .suite import ALL_CONTENDERS, SuiteConfig, run_suite
from .targets import evaluate_targets, format_target
from .workloads import WORKLOADS

__all__ = ["add_arguments", "add_parser", "main", "run"]

DESCRIPTION = (
    "Time to 1.001 x the optimal loss of every dask-quorum scheme, dask-ml and scikit-learn, on "
    "the same cluster under the same injected stragglers (none, persistent two-class, EC2 traces "
    "replayed, a worker turning slow halfway), with the ratio to an oracle bound, and the "
    "per-round engine overhead against the bare Dask floor, the planner's simulator on synthetic "
    "clusters of 16 to 256 workers drawn from the EC2 traces, and a fit of a dask array persisted on the "
    "workers (the driver never holds it) against dask-ml. Writes CSV, markdown and PNG plots; "
    "prints every target as met or missed."
)


def _repo_root() -> Path | None:
    """The source checkout the package runs from, if any (editable install)."""
    import dask_quorum

    root = Path(dask_quorum.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "benchmarks").is_dir() else None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the suite's options to ``parser``."""
    root = _repo_root()
    parser.add_argument("--quick", action="store_true",
                        help="tiny problems on 3-5 in-process workers: seconds, not hours")
    parser.add_argument("--out", type=Path,
                        default=(root / "benchmarks" / "results") if root else Path("bench-results"),
                        help="output folder for CSV, markdown and PNGs (default: benchmarks/results)")
    parser.add_argument("--traces", type=Path,
                        default=(root.parent / "shared" / "traces") if root else None,
                        help="folder (or CSV) of the EC2 traces (default: ../shared/traces beside the repo)")
    parser.add_argument("--workloads", nargs="*", choices=WORKLOADS, default=list(WORKLOADS), metavar="NAME",
                        help=f"workloads to fit, of {', '.join(WORKLOADS)} (default: all; the option "
                        "alone, with no name: only the overhead table)")
    parser.add_argument("--scenarios", nargs="+",
                        help="scenario names or groups: none, persistent, trace, halfway, "
                        "persistent-10x-n16, trace-data4, ... (default: each workload's set)")
    parser.add_argument("--contenders", nargs="+", choices=ALL_CONTENDERS, default=list(ALL_CONTENDERS),
                        metavar="NAME", help=f"of {', '.join(ALL_CONTENDERS)} (default: all)")
    procs = parser.add_mutually_exclusive_group()
    procs.add_argument("--processes", dest="processes", action="store_true", default=None,
                       help="worker processes (the default in full mode)")
    procs.add_argument("--threads", dest="processes", action="store_false",
                       help="in-process workers (the default with --quick)")
    parser.add_argument("--max-iter", type=_positive_int,
                        help="iteration cap of every optimiser (default 150; 40 with --quick)")
    parser.add_argument("--rows", type=_positive_int, help="rows of every workload instead of its default")
    parser.add_argument("--overhead-workers", type=int, nargs="*",
                        help="cluster sizes of the overhead table (default 4 8 16 32 64; the option "
                        "alone, with no size: skip the table)")
    parser.add_argument("--overhead-rounds", type=_positive_int, help="rounds timed per size (default 100)")
    parser.add_argument("--overhead-processes", action="store_true",
                        help="worker processes for the overhead table (default: in-process)")
    parser.add_argument("--p-slow-fast", type=float, default=0.3,
                        help="P(slow|fast) of the persistent slow class (default 0.3)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="extra seconds per slow task (default 0: factors only, fair to contenders "
                        "with many small tasks)")
    parser.add_argument("--budget", type=float, default=0.0,
                        help="seconds per unit of slowdown of replayed traces (default 0: ratios only)")
    parser.add_argument("--unit-seconds", type=float, default=0.0,
                        help="emulated seconds of work per work unit on every worker, times its "
                        "slowdown (default 0: real compute only). Lets a small host behave like a "
                        "cluster of dedicated machines; skips dask-ml, whose tasks declare no units")
    parser.add_argument("--sections", nargs="*", choices=list(SECTIONS), default=None, metavar="NAME",
                        help=f"extra sections, of {', '.join(SECTIONS)} (default: all; the option alone: "
                        "none). scaling: plan() on synthetic clusters drawn from the EC2 traces; dask-input: "
                        "fitting a dask array persisted on the workers, against dask-ml")
    parser.add_argument("--scaling-sizes", type=_positive_int, nargs="+",
                        help="cluster sizes of the scaling section (default 16 64 256; 8 16 with --quick)")
    parser.add_argument("--scaling-rounds", type=_positive_int,
                        help="rounds of the synthetic trace of the scaling section (default 12)")
    parser.add_argument("--dask-input-gigabytes", type=_positive_float, metavar="GB",
                        help="size of the float32 features of the dask-input section (default 1; 0.02 with "
                        "--quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plots", action="store_true", help="skip the PNGs (no matplotlib needed)")
    parser.add_argument("--update-docs", nargs="?", type=Path, const=(root / "docs") if root else Path("docs"),
                        metavar="DOCS", help="also rewrite the results section of DOCS/benchmarks.md "
                        "and DOCS/img/bench/*.png (default DOCS: the checkout's docs/, else ./docs)")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``bench`` sub-command to a sub-parsers action; it calls :func:`main`."""
    parser = subparsers.add_parser(
        "bench", help="run the benchmark suite", description=DESCRIPTION
    )
    add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def _command(args: argparse.Namespace) -> str:
    parts = ["dask-quorum bench"]
    if args.quick:
        parts.append("--quick")
    for flag, value, default in (
        ("--workloads", args.workloads, list(WORKLOADS)),
        ("--scenarios", args.scenarios, None),
        ("--contenders", args.contenders, list(ALL_CONTENDERS)),
    ):
        if value != default:
            parts.append(" ".join([flag, *value]))
    if args.max_iter:
        parts.append(f"--max-iter {args.max_iter}")
    if args.rows:
        parts.append(f"--rows {args.rows}")
    if args.unit_seconds:
        parts.append(f"--unit-seconds {args.unit_seconds:g}")
    if args.budget:
        parts.append(f"--budget {args.budget:g}")
    if args.processes is not None:
        parts.append("--processes" if args.processes else "--threads")
    if args.sections is not None:
        parts.append(" ".join(["--sections", *args.sections]))
    if args.scaling_sizes:
        parts.append(f"--scaling-sizes {' '.join(map(str, args.scaling_sizes))}")
    if args.scaling_rounds:
        parts.append(f"--scaling-rounds {args.scaling_rounds}")
    if args.dask_input_gigabytes:
        parts.append(f"--dask-input-gigabytes {args.dask_input_gigabytes:g}")
    if args.overhead_workers is not None:
        parts.append(" ".join(["--overhead-workers", *map(str, args.overhead_workers)]))
    return " ".join(parts)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    """Run the suite as ``args`` say; print the markdown and the targets; return 0.

    Raises
    ------
    ValueError
        On ``--update-docs`` with ``--no-plots`` (the page shows the plots),
        or an unknown workload, scenario or contender.
    """
    if args.update_docs is not None and args.no_plots:
        raise ValueError("--update-docs needs the plots: drop --no-plots")
    cfg = SuiteConfig(
        quick=args.quick,
        workloads=args.workloads,
        scenarios=args.scenarios,
        contenders=args.contenders,
        traces=args.traces,
        processes=args.processes,
        max_iter=args.max_iter,
        overhead_workers=args.overhead_workers,
        overhead_rounds=args.overhead_rounds,
        overhead_processes=args.overhead_processes,
        rows=args.rows,
        p_slow_fast=args.p_slow_fast,
        delay=args.delay,
        budget=args.budget,
        unit_seconds=args.unit_seconds,
        seed=args.seed,
        sections=args.sections,
        scaling_sizes=args.scaling_sizes,
        scaling_rounds=args.scaling_rounds,
        dask_input_gigabytes=args.dask_input_gigabytes,
    )
    machine = describe_machine()
    result = run_suite(cfg, log=_progress)
    command = _command(args)
    written = write_outputs(result, machine, args.out, plots=not args.no_plots, command=command)
    print(written["markdown"].read_text())
    print("Targets:")
    for target in evaluate_targets(result):
        print("  " + format_target(target))
    if args.update_docs is not None:
        update_docs(result, machine, written["plots"], args.update_docs, command=command)
        print(f"updated {args.update_docs / 'benchmarks.md'}", file=sys.stderr)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` as ``dask-quorum bench`` would and run; for scripts."""
    parser = argparse.ArgumentParser(prog="dask-quorum bench", description=DESCRIPTION)
    add_arguments(parser)
    return main(parser.parse_args(argv))
