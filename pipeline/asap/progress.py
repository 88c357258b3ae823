"""An ASAP run on the dashboard: round summaries piggybacked on the driver's status polls.

The dashboard (``/individual-stragglers``,
:mod:`~dask_quorum.pipeline.dashboard.page`) shows the run like a coded
fit, through a :class:`~dask_quorum.pipeline.dashboard.FitReporter` keyed
by the run's token: the assignment (one partition per worker: the
identity, reported by :func:`~dask_quorum.pipeline.asap.run_asap`), and a
few rounds per page refresh, piggybacked on the status polls
(:class:`Progress`: a poll asks every worker for the newest round all of
them finished; the next reply carries its numbers, and the snapshots when
they are small); the error column is the consensus error (largest distance
of a replica from their average) or, for a workload whose snapshots are
not replicas, the largest residual. Stragglers of a round are the workers
whose step took more than :data:`SLOW_STEP` times the round's median.
Under staleness, the workers a peer reduced with a stale version of count
as *busy* (still on an older round), and the stop column says how many
stale versions were used and how old the oldest was (not as stragglers:
lateness spreads, a peer held back by a straggler is itself late for its
own out-peers, so nearly every worker would count). The last round is
reported from the collected history when the run ends. Reporting never
waits: the reporter only queues.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from time import perf_counter
from typing import Any

import numpy as np

from dask_quorum import config

from ..dashboard import FitReporter
from .result import AsapResult, consensus_error

logger = logging.getLogger(__name__)

__all__ = ["ERRORS", "REPORTS_PER_REFRESH", "SLOW_STEP", "Progress"]

#: What a run may report as the dashboard's error column (see :func:`~dask_quorum.pipeline.asap.run_asap`).
ERRORS = ("consensus", "residual")
#: A worker whose step took more than this many times the round's median step
#: counts as a straggler of that round on the dashboard (the threshold of
#: :func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`).
SLOW_STEP = 2.0
#: Rounds reported to the dashboard per page refresh (``quorum.dashboard.update-interval``).
REPORTS_PER_REFRESH = 4


class Progress:
    """Round summaries of a run for the dashboard, piggybacked on the driver's polls."""

    def __init__(self, reporter: FitReporter, n: int, error: str, started: float) -> None:
        self.reporter = reporter
        self.error = error
        self.started = started
        self.interval = config.get_timeout("dashboard.update-interval") / REPORTS_PER_REFRESH
        # snapshots of one round: at most as many numbers as the largest assignment shown
        self.max_values = max(1, int(config.get("dashboard.max-cells")) // n)
        self.asked: int | None = None
        self.reported = -1
        self._due = perf_counter()

    def ask(self, rounds: Sequence[int]) -> dict[str, int]:
        """Extra arguments of the next poll: the newest round every worker finished, when a report is due."""
        newest = min(rounds) - 1
        if newest <= self.reported or perf_counter() < self._due:
            return {}
        self.asked = newest
        wanted = self.error == "consensus" and self.reporter.enabled
        return {"report": newest, "snapshot": self.max_values if wanted else 0}

    def take(self, replies: Sequence[dict[str, Any]], last: int | None) -> None:
        """Report the asked round from a poll's replies, unless it is ``last`` (reported by :meth:`finish`)."""
        t, self.asked = self.asked, None
        if t is None or t == last:
            return
        reports = [r.get("report") for r in replies]
        if any(rep is None or rep["round"] != t for rep in reports):
            return
        self.reported, self._due = t, perf_counter() + self.interval
        snaps = [rep["snapshot"] for rep in reports]
        if self.error == "residual":
            error = max(rep["residual"] for rep in reports)
        elif all(s is not None for s in snaps):
            error = consensus_error(np.array(snaps))
        else:  # too large to send at every report: the history has it
            error = math.nan
        before = max(self.started if rep["before"] is None else rep["before"] for rep in reports)
        self._send(t, max(rep["finished"] for rep in reports) - before,
                   np.array([rep["compute"] for rep in reports]),
                   [(j, lag) for rep in reports for j, lag in rep["stale"]], error, "")

    def finish(self, result: AsapResult) -> None:
        """Report the run's last round from its history and close the reporter."""
        t = result.n_rounds - 1
        if t > self.reported:
            if self.error == "residual":
                error = float(result.residuals[t].max())
            else:
                error = consensus_error(result.snapshots[t])
            before = result.finished[t - 1].max() if t else result.started
            stale = [(int(c[1]), int(t - c[2])) for consumed in result.consumed for c in consumed
                     if c[0] == t and c[2] < t]
            self._send(t, float(result.finished[t].max() - before), result.compute[t], stale, error,
                       "converged" if result.converged else "max rounds")
        self.reporter.close(timeout=0)

    def _send(
        self, t: int, wall: float, compute: np.ndarray, stale: list[tuple[int, int]], error: float, stop: str
    ) -> None:
        """One round summary; ``stale``: ``(peer, rounds behind)`` of every stale version reduced with."""
        n = len(compute)
        slow = compute > SLOW_STEP * np.median(compute) if n > 1 else np.zeros(n, dtype=bool)
        oldest = max((lag for _, lag in stale), default=0)
        self.reporter.summary(
            index=int(t),
            wall_time=max(float(wall), 0.0) if math.isfinite(wall) else 0.0,
            responders=[int(i) for i in np.flatnonzero(~slow)],
            busy=sorted({j for j, _ in stale}),
            error=float(error) if math.isfinite(error) else math.nan,
            error_kind=self.error,
            stop=stop or (f"{len(stale)} stale, up to {oldest} rounds old" if stale else ""),
            scheme="asap",
        )
