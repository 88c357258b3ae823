"""Time to 1.001 x optimum of heterogeneous against cyclic and sync under persistent stragglers.

Run::

    python benchmarks/bench_heterogeneous.py --workers 16 --slow 4 --redundancy 2 \\
        --unit-seconds 2e-5 --rows 20000

One :class:`~distributed.LocalCluster` (in-process workers by default: the
work is emulated, ``--unit-seconds`` per row, so threads behave like
dedicated machines) fits the ``synthetic-logistic`` workload with every
scheme of ``--schemes`` under the suite's persistent scenario
(:class:`dask_quorum.bench.scenarios.Scenario`): the first ``--slow``
workers ``--factor`` times slower with P(slow | slow) = 0.9,
P(slow | fast) = 0.3, the same state sequence for every scheme, and the
redundancy of ``--redundancy``. It goes through the suite's own
:func:`~dask_quorum.bench.suite.run_scenario` (calibration, oracle bound,
counters), then prints every scheme's time to target and the issue's
ratios: heterogeneous >= 3x cyclic and >= 4x sync at redundancy 2, and
within 10 % of the best exact scheme when the redundancy is ``slow + 1``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys

from dask_quorum.bench.scenarios import Scenario
from dask_quorum.bench.suite import SuiteConfig, run_scenario
from dask_quorum.bench.workloads import load_workload


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=16)
    p.add_argument("--slow", type=int, default=4)
    p.add_argument("--redundancy", type=int, default=2)
    p.add_argument("--factor", type=float, default=10.0)
    p.add_argument("--unit-seconds", type=float, default=2e-5)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--max-iter", type=int, default=80)
    p.add_argument("--schemes", nargs="+", default=["heterogeneous", "cyclic", "sync"])
    p.add_argument("--processes", action="store_true", help="worker processes instead of threads")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("bench_heterogeneous").info

    cfg = SuiteConfig(
        quick=False, workloads=("synthetic-logistic",), contenders=tuple(args.schemes),
        processes=args.processes, max_iter=args.max_iter, rows=args.rows,
        unit_seconds=args.unit_seconds, seed=args.seed, overhead_workers=(),
    )
    scenario = Scenario(
        f"persistent-{args.factor:g}x-n{args.workers}-r{args.redundancy}", "persistent", args.workers,
        factor=args.factor, slow_share=args.slow / args.workers, redundancy=args.redundancy,
        seed=args.seed, unit_seconds=args.unit_seconds,
    )
    workload = load_workload("synthetic-logistic", quick=False, seed=args.seed, rows=args.rows)
    log(f"{workload.description}; {scenario.describe()}")
    result = run_scenario(cfg, workload, scenario, single=None, iterations={}, log=log)
    times = {o.contender: o.time_to_target_s for o in result.outcomes}
    print(f"\n{scenario.describe()}")
    print(f"{'scheme':<15}{'to target s':>12}{'rounds':>8}{'fit s':>8}")
    for o in result.outcomes:
        print(f"{o.contender:<15}{o.time_to_target_s:>12.2f}{o.rounds_to_target:>8d}{o.fit_s:>8.2f}")
    print(f"oracle bound {result.oracle_s:.2f} s")
    het = times.get("heterogeneous", math.nan)
    for other in ("cyclic", "sync", "frc"):
        if other in times:
            print(f"{other} / heterogeneous = {times[other] / het:.2f}")
    for note in result.notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
