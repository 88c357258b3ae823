"""The main job: the same fit with and without coding, under injected stragglers."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from time import perf_counter

from distributed import Client, LocalCluster
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from dask_quorum.estimators import LogisticRegression
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoRow:
    """One line of the demo's table."""

    scheme: str
    rounds: int
    iterations: int
    seconds: float
    final_loss: float
    accuracy: float


def run_demo(
    client: Client,
    *,
    schemes: tuple[str, ...] = ("sync", "cyclic"),
    n_stragglers: int = 1,
    factor: float = 10.0,
    delay: float = 0.05,
    p_slow_slow: float = 0.95,
    p_slow_fast: float = 0.5,
    max_iter: int = 200,
    seed: int = 0,
) -> list[DemoRow]:
    """Fit multinomial logistic regression on the digits data once per scheme.

    The first ``n_stragglers`` workers are made persistently slow (Markov
    chain ``p_slow_slow``/``p_slow_fast``; a slow task takes ``factor`` times
    its time plus ``delay`` seconds) for every fit alike.
    """
    workers = sorted(scheduler_workers(client))
    if n_stragglers >= len(workers):
        raise ValueError(
            f"n_stragglers={n_stragglers} leaves no fast worker among {len(workers)}"
        )
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    slow = Slowdown(factor=factor, delay=delay, p_slow_slow=p_slow_slow, p_slow_fast=p_slow_fast)
    inject_stragglers(client, {w: slow for w in workers[:n_stragglers]}, seed=seed)
    rows = []
    try:
        for scheme in schemes:
            clf = LogisticRegression(
                scheme=scheme, redundancy=n_stragglers + 1, max_iter=max_iter, random_state=seed, client=client
            )
            start = perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(X, y)
            seconds = perf_counter() - start
            rows.append(
                DemoRow(
                    scheme=scheme,
                    rounds=int(clf.history_.sizes["round"]),
                    iterations=clf.n_iter_,
                    seconds=seconds,
                    final_loss=float(clf.history_["loss"][-1]),
                    accuracy=float(clf.score(X, y)),
                )
            )
    finally:
        remove_stragglers(client)
    return rows


def format_table(rows: list[DemoRow]) -> str:
    """The demo's table, with the speed-up of each scheme over the first."""
    base = rows[0].seconds
    lines = [f"{'scheme':<10}{'rounds':>8}{'time [s]':>10}{'final loss':>14}{'accuracy':>10}{'speed-up':>10}"]
    for r in rows:
        lines.append(
            f"{r.scheme:<10}{r.rounds:>8}{r.seconds:>10.2f}{r.final_loss:>14.6f}"
            f"{r.accuracy:>10.3f}{base / r.seconds:>9.2f}x"
        )
    return "\n".join(lines)


def local_cluster(n_workers: int) -> LocalCluster:
    """A LocalCluster of single-threaded worker processes for the demo."""
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0")


__all__ = ["DemoRow", "format_table", "local_cluster", "run_demo"]

