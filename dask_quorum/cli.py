"""The ``dask-quorum`` command line (also ``python -m dask_quorum``).

Subcommands are rows of :data:`SUBCOMMANDS`: a name, a one-line help, a
description, a function adding the arguments and a function running it.
The command line only parses arguments and prints; the work is done in
:mod:`dask_quorum.pipeline` and :mod:`dask_quorum.demo`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from distributed import Client
from distributed.comm import resolve_address

from dask_quorum import config
from dask_quorum.pipeline.cluster import scheduler_workers

DEFAULT_PROFILE = "quorum-profile.nc"


# ---------------------------------------------------------------------------
# argument types


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def _rounds(text: str) -> int:
    return _int_at_least(text, 2, "an integer >= 2")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not (value >= 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


@contextmanager
def _elapsed(desc: str) -> Iterator[None]:
    """A progress line with the elapsed time, for work whose steps are not counted.

    Shown on stderr when it is a terminal (like the progress bars).
    """
    from tqdm import tqdm

    bar = tqdm(desc=desc, bar_format="{desc}: {elapsed}", file=sys.stderr, disable=None)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.5):
            bar.refresh()

    ticker = threading.Thread(target=tick, name="dask-quorum-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        bar.close()


def _connect(address: str, timeout: float) -> Client:
    """A client of the scheduler at ``address``; OSError if it is not reached within ``timeout``."""
    # A malformed address would fail inside Client() and leave a half-built
    # client whose cleanup at exit prints a traceback: check it first.
    try:
        resolve_address(address)
    except ValueError as exc:
        raise ValueError(f"invalid scheduler address {address!r}: {exc}") from None
    except OSError as exc:
        raise OSError(f"cannot resolve the scheduler address {address!r}: {exc}") from None
    return Client(address, timeout=timeout, set_as_default=False)


# ---------------------------------------------------------------------------
# demo


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
    schemes = ["sync", "uncoded", "frc", "cyclic", "expander"]
    demo.add_argument("--workers", type=_positive_int, default=4, metavar="N",
                      help="workers of the local cluster (default 4)")
    demo.add_argument("--scheduler", metavar="ADDRESS",
                      help="address of an existing scheduler instead of a local cluster")
    demo.add_argument("--connect-timeout", type=_positive_float, default=10.0, metavar="S",
                      help="seconds to reach --scheduler (default 10)")
    demo.add_argument("--schemes", nargs="+", default=["sync", "cyclic"], choices=schemes,
                      metavar="SCHEME",
                      help=f"schemes to compare, among {', '.join(schemes)} (default: sync cyclic)")
    demo.add_argument("--stragglers", type=_positive_int, default=1, metavar="N",
                      help="slow workers (default 1)")
    demo.add_argument("--factor", type=float, default=10.0, help="slowdown factor (default 10)")
    demo.add_argument("--delay", type=float, default=0.05, metavar="S",
                      help="extra seconds per slow task (default 0.05)")
    demo.add_argument("--max-iter", type=_positive_int, default=200, metavar="N",
                      help="L-BFGS iterations per fit (default 200)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the stragglers and codes (default 0)")


def _demo(args: argparse.Namespace) -> int:
    from dask_quorum.demo import format_table, local_cluster, run_demo

    if args.scheduler:
        client = _connect(args.scheduler, args.connect_timeout)
        cluster = None
    else:
        cluster = local_cluster(args.workers)
        client = Client(cluster)
    try:
        print(f"dask-quorum demo: {len(scheduler_workers(client))} workers, "
              f"{args.stragglers} persistent straggler(s) {args.factor:g}x slower (+{args.delay:g} s)")
        print(f"dashboard: {client.dashboard_link}")
        with _elapsed(f"fitting with {len(args.schemes)} scheme(s)"):
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


# ---------------------------------------------------------------------------
# profile


def _profile_arguments(profile: argparse.ArgumentParser) -> None:
    profile.add_argument("--scheduler", required=True, metavar="ADDRESS",
                         help="address of the scheduler, e.g. tcp://10.0.0.1:8786")
    profile.add_argument("--rounds", type=_rounds, default=None, metavar="N",
                         help=f"probe rounds, >= 2 (default {config.get('profile.rounds')}, "
                              "quorum.profile.rounds)")
    profile.add_argument("--output", default=DEFAULT_PROFILE, metavar="FILE",
                         help=f"NetCDF file the profile is written to (default {DEFAULT_PROFILE})")
    profile.add_argument("--task-seconds", type=_positive_float, default=None, metavar="S",
                         help="compute seconds of one probe task on a typical worker "
                              f"(default {config.get_timeout('profile.task-seconds'):g}, "
                              "quorum.profile.task-seconds)")
    profile.add_argument("--connect-timeout", type=_positive_float, default=None, metavar="S",
                         help="seconds to reach the scheduler "
                              f"(default {config.get_timeout('profile.connect-timeout'):g}, "
                              "quorum.profile.connect-timeout)")


def _profile(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from dask_quorum.pipeline.profiling import profile_cluster

    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write {args.output}: no directory {folder}")
    if not os.access(folder, os.W_OK) or os.path.isdir(args.output):
        raise ValueError(f"cannot write {args.output}: not a writable file path")
    timeout = args.connect_timeout or config.get_timeout("profile.connect-timeout")
    rounds = args.rounds or int(config.get("profile.rounds"))
    client = _connect(args.scheduler, timeout)
    try:
        n_workers = len(scheduler_workers(client))
        print(f"profiling {n_workers} workers of {client.scheduler.address} "
              f"with {rounds} rounds of probe tasks")
        with tqdm(total=rounds, desc="probe rounds", unit="round", file=sys.stderr, disable=None) as bar:
            profile = profile_cluster(
                client,
                rounds=rounds,
                task_seconds=args.task_seconds,
                progress=lambda done, total: bar.update(done - bar.n),
            )
    finally:
        client.close()
    print(profile.summary())
    profile.save(args.output)
    print(f"profile written to {args.output}; next: dask-quorum plan --profile {args.output}")
    return 0


# ---------------------------------------------------------------------------
# plan


def _plan_arguments(plan: argparse.ArgumentParser) -> None:
    from dask_quorum.pipeline.planning import DEFAULT_SCHEMES

    plan.add_argument("--profile", required=True, metavar="FILE",
                      help="a profile written by `dask-quorum profile`")
    plan.add_argument("--redundancy", type=_positive_int, default=None, metavar="R",
                      help="workers holding each partition; a round tolerates R - 1 stragglers "
                           f"(default {config.get('redundancy')}, quorum.redundancy)")
    plan.add_argument("--schemes", nargs="+", default=list(DEFAULT_SCHEMES), choices=DEFAULT_SCHEMES,
                      metavar="SCHEME",
                      help=f"schemes to compare, among {', '.join(DEFAULT_SCHEMES)} (default: all)")
    plan.add_argument("--error-tol", type=_non_negative_float, default=None, metavar="E",
                      help="largest acceptable mean decoding error (default: exact schemes only)")
    plan.add_argument("--partition-seconds", type=_positive_float, default=None, metavar="S",
                      help="compute seconds of one data partition on a typical worker "
                           "(default: one probe task of the profile)")
    plan.add_argument("--rounds", type=_positive_int, default=500, metavar="N",
                      help="rounds to simulate (default 500)")
    plan.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")


def _plan(args: argparse.Namespace) -> int:
    from dask_quorum.pipeline.profiling import load_profile, plan_profile

    profile = load_profile(args.profile)
    redundancy = args.redundancy if args.redundancy is not None else int(config.get("redundancy"))
    model = profile.model
    print(f"profile {args.profile}: {model.n_workers} workers of {profile.scheduler or '?'}, "
          f"{model.latencies.shape[0]} rounds, taken {profile.created or '?'}; "
          f"slow in most rounds: {model.slow_workers() or 'none'}")
    seconds = args.partition_seconds or profile.task_units * profile.typical_unit_seconds
    print(f"round times for partitions of {seconds:.3g} s of work on a typical worker")
    with _elapsed(f"simulating {args.rounds} rounds of {len(args.schemes)} scheme(s)"):
        result = plan_profile(
            profile,
            schemes=args.schemes,
            redundancy=redundancy,
            n_rounds=args.rounds,
            error_tol=args.error_tol,
            partition_seconds=args.partition_seconds,
            random_state=args.seed,
        )
    print(result)
    print(f"use: LogisticRegression(scheme={result.recommended!r}, redundancy={redundancy})")
    return 0


def _bench_arguments(bench: argparse.ArgumentParser) -> None:
    from dask_quorum.bench.cli import add_arguments

    add_arguments(bench)


def _bench(args: argparse.Namespace) -> int:
    from dask_quorum.bench.cli import main as bench_main

    return bench_main(args)


# ---------------------------------------------------------------------------
# the table of subcommands


@dataclass(frozen=True)
class Subcommand:
    """One subcommand of ``dask-quorum``.

    Attributes
    ----------
    name : str
    help : str
        One line, shown by ``dask-quorum --help``.
    description : str
        Shown by ``dask-quorum NAME --help``.
    arguments : callable
        Adds the subcommand's arguments to its parser.
    run : callable
        Runs it with the parsed arguments; returns the exit status.
    """

    name: str
    help: str
    description: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        "demo",
        "fit with sync and coded rounds under injected stragglers",
        "Fit LogisticRegression on the digits data with each scheme, on an embedded "
        "LocalCluster (or --scheduler) where some workers are made persistently slow, "
        "and print rounds, time, final loss and speed-up.",
        _demo_arguments,
        _demo,
    ),
    Subcommand(
        "profile",
        "measure the workers of a running cluster and fit a straggler model",
        "Run a calibrated probe workload on an existing cluster (rounds of a fixed "
        "amount of NumPy work per worker, recorded by the latency recorder), fit a "
        "per-worker straggler model, print it and write it to a NetCDF file for "
        "`dask-quorum plan`.",
        _profile_arguments,
        _profile,
    ),
    Subcommand(
        "plan",
        "expected round time, error and cost per scheme for a profiled cluster",
        "Simulate every scheme on the straggler model of a profile (written by "
        "`dask-quorum profile`) and recommend the fastest one whose decoding is "
        "exact (or within --error-tol).",
        _plan_arguments,
        _plan,
    ),
    Subcommand(
        "bench",
        "run the benchmark suite",
        "Time to 1.001 x the optimal loss of every dask-quorum scheme, dask-ml and "
        "scikit-learn on the same cluster under the same injected stragglers, with the "
        "ratio to an oracle bound and the per-round engine overhead against the bare "
        "Dask floor. Writes CSV, markdown and PNG plots; prints every target as met or "
        "missed.",
        _bench_arguments,
        _bench,
    ),
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dask-quorum``, one subparser per row of :data:`SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="dask-quorum",
        description="Straggler-tolerant iterative machine learning on Dask.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        subparser = sub.add_parser(command.name, help=command.help, description=command.description)
        command.arguments(subparser)
        subparser.set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Bad arguments exit with status 2 (argparse); an error while running (an
    unreachable scheduler, a missing or invalid file, a timeout) prints one
    line ``dask-quorum COMMAND: error: ...`` to stderr and returns 1.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return args.func(args)
    except (ValueError, TimeoutError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"dask-quorum {args.command}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
