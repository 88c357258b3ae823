"""Re-planning a session when its workers change: who is lost, who joins, the new code.

Between rounds (a *re-encode point*) a coded session
(:class:`~dask_quorum.pipeline.engine.CodedSession`) drops the workers that
were lost (their process died, or they hang: see
:mod:`~dask_quorum.pipeline.engine.membership`) and takes in workers that
joined the cluster, then builds a code for the workers it now has over the
*same* data partitions (:func:`~dask_quorum.pipeline.coding.regroup`) and
places only the replicas that are missing, from the partitions it keeps.
A round whose remaining workers cannot decode is run again on the new code.

This module holds the decisions, on plain values: which workers the
scheduler's view says are lost or joining (:func:`read_changes`), whether
that calls for a new plan (:func:`needs_replan`), the members of the new
plan (:func:`next_members`), their code (:func:`code_after_change`), the
partitions each holds (:func:`regrouped`) and the events that record the
change (:func:`membership_events`). The session applies them: it places
the replicas, rebinds its round runner and logs the events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from ..coding import GradientCode, expand, make_code, regroup
from .errors import WorkersLostError
from .membership import MembershipEvent, SchedulerView
from .placement import Placement

logger = logging.getLogger(__name__)


def read_changes(
    view: SchedulerView,
    workers: Sequence[str],
    gone: Collection[str],
    lost: Mapping[str, str],
    hung: Mapping[str, float],
    missed_rounds: int,
) -> tuple[dict[str, str], list[str]]:
    """The lost workers and the joiners, from what the scheduler says now.

    Parameters
    ----------
    view : SchedulerView
        The scheduler's workers at this re-encode point.
    workers : sequence of str
        The session's current workers.
    gone : collection of str
        Workers lost earlier: they never join again.
    lost : mapping of str to str
        Workers already found lost (by the rounds), with the reason.
    hung : mapping of str to float
        Workers the hang detector found silent, with the seconds of silence
        (:meth:`~dask_quorum.pipeline.engine.HangDetector.hung`).
    missed_rounds : int
        The detector's ``missed_rounds``, for the reason.

    Returns
    -------
    lost : dict of str to str
        ``lost`` plus the workers that left the cluster and the hung ones.
    joiners : list of str
        Workers of the cluster that are not in the session, sorted.
    """
    lost = dict(lost)
    for w in workers:
        if w not in view.workers:
            lost.setdefault(w, "left the cluster")
    for w, quiet in hung.items():
        lost.setdefault(w, f"no heartbeat for {quiet:.1f} s, busy for {missed_rounds}+ rounds")
    joiners = sorted(w for w in view.workers if w not in workers and w not in gone and w not in lost)
    return lost, joiners


def needs_replan(lost: Collection[str], joiners: Sequence[str], n_workers: int, n_partitions: int) -> bool:
    """Whether workers were lost, or joiners can take partitions (at most one worker per partition)."""
    room = n_partitions - (n_workers - len(lost))
    return bool(lost or (joiners and room > 0))


def next_members(
    workers: Sequence[str],
    lost: Mapping[str, str],
    joiners: Sequence[str],
    *,
    n_partitions: int,
    min_workers: int,
    gone: Collection[str],
    index: int,
) -> tuple[list[str], list[str]]:
    """The workers of the new plan: the survivors, then as many joiners as partitions allow.

    Returns
    -------
    members : list of str
        Survivors in their order, then the joiners taken.
    joiners : list of str
        The joiners taken.

    Raises
    ------
    WorkersLostError
        When fewer than ``min_workers`` (at least 1) would be left; it names
        the workers lost now and ``lost`` holds every worker lost so far.
    """
    survivors = [w for w in workers if w not in lost]
    joiners = [w for w in joiners if w not in lost][: max(0, n_partitions - len(survivors))]
    members = survivors + joiners
    if len(members) < max(1, min_workers):
        every = sorted(set(gone) | set(lost))
        raise WorkersLostError(
            f"round {index}: lost worker(s) "
            + "; ".join(f"{w} ({lost[w]})" for w in sorted(lost))
            + f"; {len(members)} worker(s) left, fewer than quorum.faults.min-workers="
            f"{max(1, min_workers)}: the fit cannot go on (all lost so far: {every})",
            lost=every,
        )
    return members, joiners


def code_after_change(
    n: int,
    *,
    scheme: str,
    redundancy: int,
    random_state: Any,
    code_factory: Callable[[int], GradientCode] | None = None,
) -> GradientCode:
    """The code for ``n`` workers after a change (capped redundancy; frc -> cyclic if needed).

    ``code_factory(n)`` when given; else ``make_code(scheme, n, ...)`` with
    the redundancy capped at ``n``, and ``cyclic`` instead of ``frc`` when
    the redundancy does not divide ``n``.
    """
    if code_factory is not None:
        return code_factory(n)
    r = min(int(redundancy), n)
    if scheme == "frc" and n % r:
        logger.warning("frc needs the redundancy %d to divide the %d workers left: using cyclic", r, n)
        scheme = "cyclic"
    return make_code(scheme, n, redundancy=r, random_state=random_state)


def regrouped(
    code: GradientCode, placement: Placement | None, members: Sequence[str], n_partitions: int
) -> tuple[list[np.ndarray], GradientCode]:
    """The groups of partitions for ``code`` on ``members`` and the code over the partitions.

    The groups keep as many partitions as they can where ``placement``
    already holds them (:func:`~dask_quorum.pipeline.coding.regroup`);
    without a placement, none is held.

    Returns
    -------
    groups : list of ndarray
        One group of partitions per column of ``code``.
    expanded : GradientCode
        ``code`` over the data partitions (``n_workers x n_partitions``).
    """
    held = (
        placement.holdings(members)
        if placement is not None
        else np.zeros((len(members), n_partitions), dtype=bool)
    )
    groups = regroup(code, held)
    return groups, expand(code, groups, n_partitions)


def membership_events(index: int, lost: Mapping[str, str], joiners: Sequence[str]) -> list[MembershipEvent]:
    """The events of one change: the lost workers (sorted), then the joiners, from round ``index``."""
    events = [MembershipEvent(index, "lost", w, lost[w]) for w in sorted(lost)]
    events += [MembershipEvent(index, "joined", w, "joined the cluster") for w in joiners]
    return events
