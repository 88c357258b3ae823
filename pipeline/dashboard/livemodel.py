"""The straggler model the dashboard shows, re-fitted in the background.

:class:`LiveModel` lives on the scheduler, one per scheduler, shared by every
open dashboard page. When a page refreshes it calls
:meth:`LiveModel.refresh`, which at most every ``quorum.dashboard.model-interval``
(and only when the latency recorder has new rows) copies the recorder's
``quorum.dashboard.model-rows`` most recent rows and hands them to a
short-lived background thread, where :func:`summarize_latencies` turns them into per-worker
per-unit latency quantiles and a fitted
:class:`~dask_quorum.pipeline.stragglers.StragglerModel`. The event loop
only pays for the copy (:meth:`LatencyRecorder.collect
<dask_quorum.pipeline.recorder.LatencyRecorder.collect>` of those rows).

Measured on this project's 2-core machine with a full recorder (100_000
rows, 16 workers): the copy of the default 5_000 rows holds the event loop
2-5 ms; the background re-fit takes about 0.1 s (every 5 s at most, and
only while a page is open and tasks finish).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

import numpy as np

from dask_quorum import config

from ..recorder import LatencyRecorder, rows_to_dataset
from ..stragglers import StragglerModel, fit_straggler_model, latency_matrix

if TYPE_CHECKING:
    from distributed import Scheduler

__all__ = ["QUANTILES", "LatencyQuantiles", "LiveModel", "ModelSnapshot", "summarize_latencies"]

logger = logging.getLogger(__name__)

#: Quantiles of each worker's per-unit latency shown on the page.
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class LatencyQuantiles:
    """Per-worker quantiles (:data:`QUANTILES`) of per-unit latency, and sample counts."""

    workers: tuple[str, ...]
    values: np.ndarray  # (n_workers, len(QUANTILES)), NaN for a worker without samples
    counts: np.ndarray  # (n_workers,)


@dataclass(frozen=True)
class ModelSnapshot:
    """What one background re-fit produced.

    Attributes
    ----------
    quantiles : LatencyQuantiles or None
        None when the rows held no usable latency.
    model : StragglerModel or None
        None when there were too few rounds to fit one (see ``reason``).
    reason : str
        Why there is no model (empty when there is one).
    rows : int
        Recorder rows it was computed from.
    cursor : int
        The recorder's cursor when the rows were copied.
    seconds : float
        Time the computation took in the background thread.
    """

    quantiles: LatencyQuantiles | None
    model: StragglerModel | None
    reason: str
    rows: int
    cursor: int
    seconds: float = math.nan


def _quantiles(matrix: np.ndarray, workers: list[str]) -> LatencyQuantiles:
    values = np.full((len(workers), len(QUANTILES)), np.nan)
    counts = np.zeros(len(workers), dtype=np.int64)
    for j in range(len(workers)):
        col = matrix[:, j]
        col = col[np.isfinite(col)]
        counts[j] = col.size
        if col.size:
            values[j] = np.quantile(col, QUANTILES)
    return LatencyQuantiles(tuple(workers), values, counts)


def summarize_latencies(columns: Mapping[str, list], *, cursor: int = 0) -> ModelSnapshot:
    """Per-worker latency quantiles and a straggler model from recorder rows.

    Pure function behind :class:`LiveModel`: the rows are arranged with
    :func:`~dask_quorum.pipeline.stragglers.latency_matrix` (round tasks of
    the engine by round, other tasks by order) and fitted with
    :func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`; workers
    without a sample in the rows are left out of the model.

    Parameters
    ----------
    columns : mapping of str to list
        Columns as :meth:`LatencyRecorder.collect
        <dask_quorum.pipeline.recorder.LatencyRecorder.collect>` returns.
    cursor : int, optional
        Recorded in the snapshot.

    Returns
    -------
    ModelSnapshot
    """
    started = perf_counter()
    n_rows = len(columns.get("worker", ()))
    quantiles = model = None
    reason = ""
    try:
        matrix, workers = latency_matrix(rows_to_dataset(columns))
    except ValueError as exc:  # no rows, or none usable
        reason = f"no latencies yet ({exc})"
    else:
        quantiles = _quantiles(matrix, workers)
        seen = quantiles.counts > 0
        try:
            model = fit_straggler_model(matrix[:, seen], workers=[w for w, s in zip(workers, seen) if s])
        except ValueError as exc:
            reason = str(exc)
    return ModelSnapshot(quantiles, model, reason, n_rows, cursor, perf_counter() - started)


class LiveModel:
    """Background re-fits of the straggler model from one scheduler's recorder.

    Parameters
    ----------
    scheduler : distributed.Scheduler
    interval : float, optional
        Seconds between re-fits at most; default ``quorum.dashboard.model-interval``.
    rows : int, optional
        Recorder rows per re-fit; default ``quorum.dashboard.model-rows``.

    Attributes
    ----------
    snapshot : ModelSnapshot or None
        The latest finished re-fit.
    version : int
        Grows with every new snapshot.
    """

    def __init__(self, scheduler: Scheduler, *, interval: float | None = None, rows: int | None = None) -> None:
        self.scheduler = scheduler
        self.interval = float(interval if interval is not None else config.get_timeout("dashboard.model-interval"))
        self.rows = int(rows if rows is not None else config.get("dashboard.model-rows"))
        if self.rows < 2:
            raise ValueError(f"quorum.dashboard.model-rows must be an integer >= 2, got {self.rows!r}")
        self.snapshot: ModelSnapshot | None = None
        self.version = 0
        self._job: Future[ModelSnapshot] | None = None
        self._started = -math.inf
        self._cursor = 0  # the recorder cursor of the last re-fit: none before the first row

    def refresh(self, now: float | None = None) -> bool:
        """Collect a finished re-fit and start a new one if due; call on the event loop.

        Returns
        -------
        bool
            Whether :attr:`snapshot` changed.
        """
        changed = False
        job = self._job
        if job is not None and job.done():
            self._job = None
            try:
                self.snapshot = job.result()
            except Exception:
                logger.exception("Re-fit of the dashboard's straggler model failed")
            else:
                self.version += 1
                changed = True
        now = perf_counter() if now is None else now
        if self._job is None and now - self._started >= self.interval:
            recorder = self.scheduler.plugins.get(LatencyRecorder.name)
            if isinstance(recorder, LatencyRecorder) and recorder.cursor != self._cursor:
                self._started = now
                self._cursor = recorder.cursor
                reply = recorder.collect(since=max(0, recorder.cursor - self.rows))
                self._job = _in_thread(summarize_latencies, reply["columns"], cursor=reply["cursor"])
        return changed

    def wait(self, timeout: float) -> bool:
        """Block until a running re-fit finishes (tests); True if none is running then."""
        job = self._job
        if job is None:
            return True
        try:
            job.result(timeout=timeout)
        except Exception:
            pass
        return job.done()


def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> Future:
    """Run ``fn`` in a short-lived daemon thread (no idle thread stays behind)."""
    future: Future = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="quorum-dashboard-model", daemon=True).start()
    return future
