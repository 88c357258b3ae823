"""Time to PageRank within L1 1e-8: sync against coded schemes, with and without stragglers.

Run::

    python benchmarks/bench_pagerank.py --edges 1000000 10000000

For every graph size an R-MAT power-law graph is drawn
(:func:`dask_quorum.datasets.make_rmat_graph`, seeded) and ranked by:

* igraph's PRPACK on one process (the exact reference every L1 is measured
  against; the time of its ``pagerank`` call only);
* ``networkx.pagerank`` with its stopping rule set to the same target, up
  to ``--networkx-max-edges`` edges (it converts the graph and iterates in
  one process and is too slow beyond a few million edges);
* :class:`dask_quorum.PageRank` for every scheme of ``--schemes`` on one
  LocalCluster of worker processes, without stragglers and then with
  ``--stragglers`` persistently slow workers (``--factor`` times slower plus
  ``--delay`` seconds per task, every task), the same workers for every
  scheme. ``tol`` is set so that the returned scores are within the target
  of the exact vector; the time is the whole fit (placing the blocks
  included). ``asap`` is the asynchronous block iteration with strict
  NOTIFY-ACK, ``asap-s<k>`` the same with staleness ``k`` (peers' blocks up
  to ``k`` rounds old); they place each block once, so ``--redundancy``
  does not apply to them.

Prints a markdown table and writes a CSV next to this file.
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
import pandas as pd
from dask_quorum.estimators import PageRank
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

from dask_quorum.datasets import make_rmat_graph


def igraph_reference(A, damping: float) -> tuple[np.ndarray, float]:
    """PRPACK scores of ``A`` and the seconds of the pagerank call."""
    import igraph as ig

    coo = A.tocoo()
    g = ig.Graph(n=A.shape[0], edges=np.column_stack([coo.row, coo.col]), directed=True)
    ig.Graph.Ring(3, directed=True).pagerank()  # the first call pays a one-off set-up
    start = perf_counter()
    scores = np.asarray(g.pagerank(directed=True, damping=damping, implementation="prpack"))
    return scores, perf_counter() - start


def networkx_run(A, damping: float, target: float) -> tuple[np.ndarray, float]:
    """networkx's scores, stopping at the L1 change that guarantees ``target``, and its seconds."""
    import networkx as nx

    G = nx.from_scipy_sparse_array(A, create_using=nx.DiGraph)
    tol = target * (1 - damping) / damping / A.shape[0]  # networkx stops at N * tol
    start = perf_counter()
    ranks = nx.pagerank(G, alpha=damping, weight=None, tol=tol, max_iter=10_000)
    seconds = perf_counter() - start
    return np.array([ranks[v] for v in range(A.shape[0])]), seconds


def supported_schemes() -> set[str]:
    return set(PageRank._parameter_constraints["scheme"][0].options)


def scheme_parameters(name: str, redundancy: int) -> dict | None:
    """PageRank's parameters for a ``--schemes`` entry, or None if the estimator lacks the scheme."""
    base, _, stale = name.partition("-s")
    if base not in supported_schemes():
        return None
    if base == "asap":
        return {"scheme": "asap", "staleness": int(stale or 0)}
    if stale:
        raise SystemExit(f"{name}: only asap takes a staleness (asap-s<k>)")
    return {"scheme": name, "redundancy": redundancy}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--edges", type=float, nargs="+", default=[1e6, 1e7])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--stragglers", type=int, default=1)
    p.add_argument("--redundancy", type=int, help="default: stragglers + 1 (at least 2)")
    p.add_argument("--factor", type=float, default=10.0)
    p.add_argument("--delay", type=float, default=0.1)
    p.add_argument("--schemes", nargs="+", default=["sync", "cyclic", "asap"])
    p.add_argument("--damping", type=float, default=0.85)
    p.add_argument("--target", type=float, default=1e-8, help="L1 distance to PRPACK's scores")
    p.add_argument("--networkx-max-edges", type=float, default=2e6)
    p.add_argument("--max-iter", type=int, default=2000)
    p.add_argument("--threads", action="store_true", help="in-process workers (for quick checks)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "pagerank.csv"))
    args = p.parse_args(argv)

    # ||scores - exact||_1 <= 2 * d / (1 - d) * tol (the 2 covers the final normalisation)
    tol = args.target * (1 - args.damping) / (2 * args.damping)
    redundancy = args.redundancy or max(2, args.stragglers + 1)
    rows = []
    with LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=not args.threads,
        dashboard_address=":0",
    ) as cluster, Client(cluster) as client:
        workers = sorted(scheduler_workers(client))
        slow = Slowdown(factor=args.factor, delay=args.delay)  # slow for every task
        for n_edges in [int(e) for e in args.edges]:
            start = perf_counter()
            A = make_rmat_graph(n_edges, random_state=args.seed)
            gen_s = perf_counter() - start
            ref, ig_s = igraph_reference(A, args.damping)
            base = {"edges": n_edges, "vertices": A.shape[0], "generate_s": gen_s}
            rows.append({**base, "contender": "igraph prpack", "stragglers": 0, "seconds": ig_s,
                         "rounds": "", "mean_round_s": "", "l1": 0.0})
            if n_edges <= args.networkx_max_edges:
                scores, nx_s = networkx_run(A, args.damping, args.target)
                rows.append({**base, "contender": "networkx", "stragglers": 0, "seconds": nx_s,
                             "rounds": "", "mean_round_s": "", "l1": float(np.abs(scores - ref).sum())})
            for n_slow in sorted({0, args.stragglers}):
                if n_slow:
                    inject_stragglers(client, {w: slow for w in workers[:n_slow]}, seed=args.seed)
                for scheme in args.schemes:
                    row = {**base, "contender": scheme, "stragglers": n_slow}
                    params = scheme_parameters(scheme, redundancy)
                    if params is None:
                        rows.append({**row, "seconds": float("nan"), "rounds": "", "mean_round_s": "",
                                     "l1": float("nan")})
                        continue
                    est = PageRank(damping=args.damping, tol=tol, max_iter=args.max_iter,
                                   random_state=args.seed, client=client, **params)
                    start = perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        est.fit(A)
                    seconds = perf_counter() - start
                    rows.append({**row, "seconds": seconds, "rounds": est.n_iter_,
                                 "mean_round_s": float(est.history_["wall_time"].mean()),
                                 "l1": float(np.abs(est.scores_ - ref).sum())})
                if n_slow:
                    remove_stragglers(client)
    print(f"# PageRank on R-MAT graphs, damping {args.damping}, target L1 <= {args.target:g} from "
          f"PRPACK; {args.workers} {'threads' if args.threads else 'worker processes'}, "
          f"{args.stragglers} persistently slow ({args.factor:g}x + {args.delay:g} s per task), "
          f"redundancy {redundancy}")
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"dask {dask.__version__}")
    print("| edges | vertices | contender | slow workers | seconds | rounds | mean round [s] | L1 to PRPACK | "
          "speed-up vs sync |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sync = [s["seconds"] for s in rows if s["edges"] == r["edges"] and s["contender"] == "sync"
                and s["stragglers"] == r["stragglers"]]
        ok = np.isfinite(r["seconds"]) and r["l1"] <= args.target
        speed = f"{sync[0] / r['seconds']:.2f}x" if sync and ok and r["contender"] not in ("igraph prpack", "networkx") else "-"
        seconds = "not built yet" if not np.isfinite(r["seconds"]) else f"{r['seconds']:.2f}"
        mean = f"{r['mean_round_s']:.4f}" if r["mean_round_s"] != "" else "-"
        print(f"| {r['edges']:,} | {r['vertices']:,} | {r['contender']} | {r['stragglers']} | {seconds} | "
              f"{r['rounds'] or '-'} | {mean} | {r['l1']:.1e} | {speed} |")
    skipped = [int(e) for e in args.edges if e > args.networkx_max_edges]
    if skipped:
        print(f"# networkx not run at {skipped} edges (above --networkx-max-edges "
              f"{args.networkx_max_edges:g}: too slow in one process)")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
