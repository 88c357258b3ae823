"""The benchmark suite, from a source checkout: the same as ``dask-quorum bench``.

Run::

    python benchmarks/run_suite.py --quick          # seconds: tiny problems, in-process workers
    python benchmarks/run_suite.py                  # the full suite (hours on 2 cores)
    python benchmarks/run_suite.py --update-docs    # and rewrite docs/benchmarks.md's results
    python benchmarks/run_suite.py --workloads --overhead-workers --sections scaling   # scaling on paper only

docs/benchmarks.md gives the shorter command (about 25 minutes on 2 cores)
that regenerates the published results.

The code lives in :mod:`dask_quorum.bench` so that an installed package can
run it; ``--help`` lists the options (workloads, scenarios, contenders).
"""

import sys

from dask_quorum.bench import run

if __name__ == "__main__":
    sys.exit(run())
