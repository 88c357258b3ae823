"""A coded session: one code, its data placement and its rounds, on one client.

:class:`CodedSession` picks the code for the cluster's workers, places the
data partitions' replicas (:class:`~dask_quorum.pipeline.engine.Placement`),
runs rounds (:class:`~dask_quorum.pipeline.engine.RoundRunner`), switches
codes on the same workers (:meth:`CodedSession.reencode`) and builds the
fit's history from its round records.

The session also keeps the fit going when its workers change: between
rounds it drops lost workers, takes in joiners and re-plans on the same
data partitions (the decisions are in
:mod:`~dask_quorum.pipeline.engine.replan`), and a round whose remaining
workers cannot decode is run again on the new code. Every change is a
:class:`~dask_quorum.pipeline.engine.membership.MembershipEvent` in
:attr:`CodedSession.events` and an event on the scheduler.
"""

from __future__ import annotations

import dataclasses
import logging
from asyncio import CancelledError
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

import dask
import numpy as np
import xarray as xr
from dask.utils import parse_bytes
from distributed import Client

from dask_quorum import config

from ..cluster import worker_addresses
from ..coding import GradientCode, contiguous_groups, expand, make_code
from ..dashboard import FitReporter
from .errors import SchedulerLostError, WorkersLostError
from .history import rounds_to_dataset
from .membership import (
    HangDetector,
    MembershipEvent,
    check_client,
    log_membership,
    membership_variables,
    scheduler_view,
)
from .placement import PartitionSource, Placement
from .record import RoundRecord
from .replan import (
    code_after_change,
    membership_events,
    needs_replan,
    next_members,
    read_changes,
    regrouped,
)
from .rounds import RoundRunner

logger = logging.getLogger(__name__)


class CodedSession:
    """Context manager that places data by a gradient code and runs rounds on it.

    Parameters
    ----------
    client : distributed.Client
    scheme : str
        A scheme of :func:`~dask_quorum.pipeline.coding.make_code`.
    redundancy : int
        Replication factor of the code.
    random_state : None, int or numpy.random.RandomState
        Seeds the code's construction.
    decode_tol : float, default=0.0
        See :class:`~dask_quorum.pipeline.engine.RoundRunner`.
    deadline : float or None, default=None
        Soft per-round deadline in seconds.
    code_factory : callable, optional
        ``code_factory(n_workers) -> GradientCode`` builds the first code
        (and the code after the workers change) instead of
        ``make_code(scheme, ...)`` (adaptive schemes start from a code of
        another scheme).
    label : str, optional
        Names the fit on the dashboard page (default: the scheme).

    Attributes
    ----------
    workers : list of str
        The workers the current code runs on, in code order.
    all_workers : list of str
        Every worker the session used, in order of first use; the worker
        indices of :attr:`records` refer to this list.
    code : GradientCode
        The current code, over one group of partitions per worker
        (``n_workers x n_workers``, as :func:`make_code` builds it).
    records : list of RoundRecord
    events : list of MembershipEvent
        Workers lost and joined, with the round from which it applies.

    Examples
    --------
    >>> with CodedSession(client, scheme="cyclic", redundancy=2) as s:  # doctest: +SKIP
    ...     s.place([chunk_0, chunk_1, ...])   # s.n_partitions payloads
    ...     total = s.round(fn, params)
    """

    def __init__(
        self,
        client: Client,
        *,
        scheme: str,
        redundancy: int,
        random_state: Any = None,
        decode_tol: float = 0.0,
        deadline: float | None = None,
        code_factory: Callable[[int], GradientCode] | None = None,
        label: str | None = None,
    ) -> None:
        self.client = client
        self.label = label
        self.code_factory = code_factory
        self.scheme = scheme
        self.redundancy = redundancy
        self.random_state = random_state
        self.decode_tol = decode_tol
        self.deadline = deadline
        self.workers: list[str] = []
        self.all_workers: list[str] = []
        self.code: GradientCode | None = None
        self.records: list[RoundRecord] = []
        self.events: list[MembershipEvent] = []
        self._n_partitions = 0
        self._groups: list[np.ndarray] = []
        self._expanded: GradientCode | None = None
        self._placement: Placement | None = None
        self._runner: RoundRunner | None = None
        self._reporter: FitReporter | None = None
        self._gone: set[str] = set()  # lost workers are never used again
        self._scheduler_id: str | None = None
        self._last_check = -np.inf
        self.check_interval = config.get_timeout("faults.check-interval")
        self.heartbeat_timeout = config.get_timeout("faults.heartbeat-timeout")
        self.min_workers = int(config.get("faults.min-workers"))
        self._detector = HangDetector(int(config.get("faults.missed-rounds")), self.heartbeat_timeout)

    def __enter__(self) -> CodedSession:
        setup = config.get_timeout("setup-timeout")
        self.workers = worker_addresses(self.client, setup)
        self._scheduler_id = scheduler_view(self.client, setup, "starting a session").id
        self.all_workers = list(self.workers)
        n = len(self.workers)
        per_worker = int(config.get("faults.partitions-per-worker"))
        if per_worker < 1:
            raise ValueError(f"quorum.faults.partitions-per-worker must be >= 1, got {per_worker}")
        if self.scheme in ("heterogeneous", "auto"):  # fractional loads need k > n (coding.make_code)
            per_worker = max(per_worker, int(config.get("adapt.partitions-per-worker")))
        if self.code_factory is not None:
            self.code = self.code_factory(n)
        else:
            self.code = make_code(
                self.scheme,
                n,
                redundancy=self.redundancy,
                random_state=self.random_state,
            )
        self._n_partitions = per_worker * n
        self._groups = contiguous_groups(self._n_partitions, n)
        self._last_check = perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def token(self) -> str:
        """The token in this session's round-task keys (:data:`~dask_quorum.pipeline.engine.ROUND_PREFIX`)."""
        if self._runner is None:
            raise RuntimeError("place the partitions first")
        return self._runner.token

    def mean_units(self) -> float:
        """Mean work units (rows) a worker's group of partitions holds."""
        if self._placement is None:
            raise RuntimeError("place the partitions first")
        return self._placement.total_units() / len(self.workers)

    def partition_limit(self) -> int | None:
        """Most partitions a worker of the session can hold for one round task, or None without memory limits.

        A round task takes all of a worker's partitions as its inputs, and
        distributed's scheduler refuses a task whose inputs exceed the
        worker's ``memory_limit``. The limit is the smallest memory limit
        of the session's workers times ``distributed.worker.memory.target``
        (room for what else they hold, such as a persisted collection),
        over the largest placed partition's bytes (the scheduler's
        ``nbytes`` of the replicas).
        """
        if self._placement is None:
            raise RuntimeError("place the partitions first")
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        limits = [info[w].get("memory_limit") for w in self.workers if w in info]
        if not limits or not all(limits):
            return None
        keys = [f.key for f in self._placement.replicas.values()]
        sizes = self.client.nbytes(keys, summary=False) if keys else {}
        largest = max(sizes.values(), default=0)
        if largest <= 0:
            return None
        target = dask.config.get("distributed.worker.memory.target") or 1.0
        return max(1, int(min(limits) * float(target) // largest))

    @property
    def placed_code(self) -> GradientCode:
        """The code the rounds run: :attr:`code` over the data partitions (``n_workers x n_partitions``).

        Equal to :attr:`code` until workers change (or with
        ``quorum.faults.partitions-per-worker`` above 1); its ``B`` says which
        partitions each worker of :attr:`workers` holds.
        """
        if self._expanded is None:
            raise RuntimeError("place the partitions first")
        return self._expanded

    @property
    def n_partitions(self) -> int:
        """How many partitions :meth:`place` expects."""
        if self.code is None:
            raise RuntimeError("enter the session first")
        return self._n_partitions

    def place(self, partitions: Sequence[Any] | PartitionSource, units: Sequence[float] | None = None) -> None:
        """Place the partitions' replicas on the workers the code assigns them.

        Parameters
        ----------
        partitions : sequence or PartitionSource
            :attr:`n_partitions` payloads, or a
            :class:`~dask_quorum.pipeline.engine.placement.PartitionSource`
            of as many partitions (the partitions of a dask collection,
            built on the workers). The session keeps them, to place
            replicas again when workers are lost or join.
        units : sequence of float, optional
            Work units (rows) per partition, declared on the round tasks for
            the latency recorder.
        """
        if self.code is None:
            raise RuntimeError("enter the session first")
        if len(partitions) != self._n_partitions:
            raise ValueError(
                f"the session expects {self._n_partitions} partitions, got {len(partitions)}"
            )
        timeout = config.get_timeout("setup-timeout")
        self._expanded = expand(self.code, self._groups, self._n_partitions)
        for _ in range(len(self.workers) + 1):
            try:
                self._placement = Placement(
                    self.client, self.workers, self._expanded.B, partitions, timeout=timeout, units=units
                )
                break
            except WorkersLostError as exc:
                # A worker left before it took its data: plan without it.
                self._replan({w: str(exc) for w in exc.lost}, [], 0)
        if self._placement is None:
            raise WorkersLostError(
                f"could not place the partitions on any worker; lost: {sorted(self._gone)}",
                lost=sorted(self._gone),
            )
        self._runner = RoundRunner(
            self.client,
            self._expanded,
            self._placement,
            timeout=config.get_timeout("round-timeout"),
            decode_tol=self.decode_tol,
            deadline=self.deadline,
            inline_limit=parse_bytes(config.get("params-inline-limit")),
            check_interval=self.check_interval,
            heartbeat_timeout=self.heartbeat_timeout,
            scheduler_id=self._scheduler_id,
        )
        # The dashboard page (pipeline/dashboard/) shows the fit; the
        # reporter never blocks a round and is silent without a board.
        self._reporter = FitReporter(
            self.client, token=self._runner.token, label=self.label or self.scheme
        )
        self._report_assignment()

    def reencode(self, code: GradientCode) -> int:
        """Switch to another code on the same workers, moving only changed replicas.

        Tasks still running from earlier rounds finish under the old code and
        are discarded as stale; the next round uses ``code``.

        Parameters
        ----------
        code : GradientCode
            ``n_workers x n_workers``, one column per group of partitions
            (what :func:`make_code` builds for ``len(self.workers)``).

        Returns
        -------
        int
            The number of replicas that had to be placed.
        """
        if self._runner is None or self._placement is None:
            raise RuntimeError("place the partitions before re-encoding")
        if code.n_workers != len(self.workers):
            raise ValueError(
                f"the new code has {code.n_workers} workers, the session {len(self.workers)}"
            )
        expanded = expand(code, self._groups, self._n_partitions)
        try:
            moved = self._placement.update(expanded.B)
        except WorkersLostError as exc:
            self._replan({w: str(exc) for w in exc.lost}, [], len(self.records))
            return 0
        self.code, self._expanded = code, expanded
        self._runner.rebind(expanded, self._placement)
        self._report_assignment()
        logger.info("re-encoded with %r, %d replicas moved", code, moved)
        return moved

    def busy_workers(self, wait: float = 0.0) -> list[str]:
        """Workers still running a round task after waiting up to ``wait`` seconds (none before :meth:`place`)."""
        return [] if self._runner is None else self._runner.busy_workers(wait)

    def round(self, fn: Callable[[Any, Any], np.ndarray], params: Any) -> np.ndarray:
        """Run one round and return the decoded sum; its record goes to :attr:`records`.

        Raises
        ------
        WorkersLostError
            Fewer than ``quorum.faults.min-workers`` workers are left.
        SchedulerLostError
            The client lost its scheduler.
        RoundTimeoutError
            No sufficient set of results within ``quorum.round-timeout``.
        """
        if self._runner is None:
            raise RuntimeError("place the partitions before running rounds")
        index = len(self.records)
        for _ in range(len(self.all_workers) + 2):
            self._maintain(index)
            try:
                total, record = self._runner.run(fn, params)
                break
            except WorkersLostError as exc:
                logger.warning("round %d: %s; running it again on the other workers", index, exc)
            except (Exception, CancelledError) as exc:
                # Whatever a call on a client that lost its scheduler raised
                # (ClosedClientError, CancelledError, ...): say so plainly.
                if not isinstance(exc, SchedulerLostError) and self.client.status != "running":
                    check_client(self.client, f"round {index}")
                raise
        else:
            raise WorkersLostError(
                f"round {index} could not finish after re-planning {len(self.all_workers) + 2} "
                f"times; lost workers: {sorted(self._gone)}",
                lost=sorted(self._gone),
            )
        self._detector.observe(self.workers, [self.workers[i] for i in record.busy])
        position = {w: p for p, w in enumerate(self.all_workers)}
        members = tuple(position[w] for w in self.workers)
        record = dataclasses.replace(
            record,
            index=index,
            responders=tuple(members[i] for i in record.responders),
            busy=tuple(members[i] for i in record.busy),
            last_responder=members[record.last_responder],
            members=members,
            pending=tuple((members[i], seconds, units) for i, seconds, units in record.pending),
        )
        self.records.append(record)
        if self._reporter is not None:
            self._reporter.round(record, workers=self.all_workers)
        return total

    @property
    def reporter(self) -> FitReporter | None:
        """What sends this session's assignment and rounds to the dashboard (None before :meth:`place`)."""
        return self._reporter

    def _report_assignment(self) -> None:
        if self._reporter is not None and self._expanded is not None:
            self._reporter.assignment(self.workers, self._expanded.B, self._expanded.scheme)

    # -- membership (the decisions: replan.py) ---------------------------
    def _maintain(self, index: int) -> None:
        """Re-encode point: drop lost workers, take in joiners, re-plan if anything changed."""
        assert self._runner is not None
        lost = self._runner.take_lost()
        joiners: list[str] = []
        now = perf_counter()
        if lost or now - self._last_check >= self.check_interval:
            self._last_check = now
            view = scheduler_view(
                self.client,
                config.get_timeout("setup-timeout"),
                f"round {index}",
                expect_id=self._scheduler_id,
            )
            hung = self._detector.hung(view, self._runner.warm)
            lost, joiners = read_changes(
                view, self.workers, self._gone, lost, hung, self._detector.missed_rounds
            )
        if needs_replan(lost, joiners, len(self.workers), self._n_partitions):
            self._replan(lost, joiners, index)

    def _new_code(self, n: int) -> GradientCode:
        """The code for ``n`` workers after a change.

        See :func:`~dask_quorum.pipeline.engine.replan.code_after_change`.
        """
        return code_after_change(
            n,
            scheme=self.scheme,
            redundancy=self.redundancy,
            random_state=self.random_state,
            code_factory=self.code_factory,
        )

    def _replan(self, lost: dict[str, str], joiners: list[str], index: int) -> None:
        """Build a code for the survivors plus joiners and place what is missing."""
        members, joiners = next_members(
            self.workers,
            lost,
            joiners,
            n_partitions=self._n_partitions,
            min_workers=self.min_workers,
            gone=self._gone,
            index=index,
        )
        code = self._new_code(len(members))
        groups, expanded = regrouped(code, self._placement, members, self._n_partitions)
        moved = 0
        if self._placement is not None:
            try:
                moved = self._placement.update(expanded.B, members)
            except WorkersLostError as exc:  # one of them left while we placed
                more = {w: f"could not take its data: {exc}" for w in exc.lost}
                self._replan({**lost, **more}, joiners, index)
                return
        self.workers, self.code, self._groups, self._expanded = members, code, groups, expanded
        self._gone |= set(lost)
        for w in lost:
            self._detector.forget(w)
        self.all_workers += [w for w in joiners if w not in self.all_workers]
        if self._runner is not None and self._placement is not None:
            self._runner.rebind(expanded, self._placement)
        self._report_assignment()
        events = membership_events(index, lost, joiners)
        self.events += events
        log_membership(
            self.client, events, self._runner.token if self._runner else "", self.check_interval + 5
        )
        logger.warning(
            "round %d: workers lost %s, joined %s; re-planned %r on %d workers, %d replicas placed",
            index, sorted(lost), joiners, code, len(members), moved,
        )

    # -- history --------------------------------------------------------
    def membership_variables(self) -> dict[str, Any]:
        """History variables: ``member`` (round x worker of :attr:`all_workers`)."""
        return membership_variables([r.members for r in self.records], len(self.all_workers))

    def membership_attrs(self) -> dict[str, Any]:
        """History attributes: ``lost_workers``, ``joined_workers`` and the ``membership`` events."""
        return {
            "lost_workers": [e.worker for e in self.events if e.action == "lost"],
            "joined_workers": [e.worker for e in self.events if e.action == "joined"],
            "membership": str([(e.round, e.action, e.worker, e.reason) for e in self.events]),
        }

    def history(
        self,
        variables: dict[str, Any],
        *,
        scheme: str,
        started: float,
        switches: Sequence[Any] = (),
        attrs: dict[str, Any] | None = None,
    ) -> xr.Dataset:
        """The fit's ``history_``: the session's rounds and membership next to ``variables``.

        Parameters
        ----------
        variables : dict
            Per-round variables of the workload (``loss``, ``residual``, ...),
            as for :func:`~dask_quorum.pipeline.engine.rounds_to_dataset`.
        scheme : str
            The scheme the fit asked for (``auto`` stays ``auto``).
        started : float
            ``time.perf_counter()`` at the start of the fit.
        switches : sequence, default=()
            The online adapter's scheme switches.
        attrs : dict, optional
            Attributes of the workload, added to the session's own
            (``scheme``, ``redundancy``, ``n_partitions``, ``n_stragglers``,
            ``switches`` and the membership attributes).

        Returns
        -------
        xarray.Dataset
        """
        return rounds_to_dataset(
            self.records,
            self.all_workers,
            variables={**variables, **self.membership_variables()},
            attrs={
                "scheme": scheme,
                "redundancy": self.code.redundancy,
                "n_partitions": self.n_partitions,
                "n_stragglers": self.code.n_stragglers,
                "switches": str(list(switches)),
                **(attrs or {}),
                **self.membership_attrs(),
            },
            started=started,
        )

    def close(self) -> None:
        """Cancel running tasks and release every replica."""
        if self._reporter is not None:
            self._reporter.close(timeout=0)
            self._reporter = None
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._placement is not None:
            self._placement.release()
            self._placement = None
