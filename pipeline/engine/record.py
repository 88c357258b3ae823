"""The record of one coded round: :class:`RoundRecord`.

:class:`~dask_quorum.pipeline.engine.RoundRunner` returns one per round,
the session (:class:`~dask_quorum.pipeline.engine.CodedSession`) renumbers
its workers and keeps it, and
:func:`~dask_quorum.pipeline.engine.rounds_to_dataset` turns the records
of a fit into its ``history_``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoundRecord:
    """What happened in one round.

    Attributes
    ----------
    index : int
        Round number, from 0.
    wall_time : float
        Seconds from the start of the round to the decoded result.
    finished : float
        ``time.perf_counter()`` when the round had its result; differences
        include the driver's work between rounds.
    responders : tuple of int
        Workers whose results were used, in the order they arrived.
    busy : tuple of int
        Workers still computing an older round when this one started.
    decode_error : float
        Normalised decoding error of the responders (0 when exact).
    last_responder : int
        The worker whose answer made the set sufficient: the one waited on.
    stop : str
        Why the round stopped: ``"exact"``, ``"tolerance"``, ``"quorum"``
        or ``"deadline"``.
    scheme : str
        The scheme of the code the round ran with.
    members : tuple of int
        The workers the round's code ran on, in code order (empty when not
        recorded). A session numbers workers by first appearance, so after
        a worker is lost or joins these are not ``0 .. n-1``.
    task_round : int
        The round number in this round's task keys (``-1`` when not
        recorded); it differs from ``index`` after a round ran again on
        fewer workers.
    pending : tuple of (int, float, float)
        ``(worker, seconds, units)`` for every worker whose task (of this
        round or an earlier one) was still running when the round had its
        result: the task had run ``seconds`` on ``units`` work units. A
        straggler model takes ``seconds / units`` as a lower bound of the
        worker's latency in this round (``censored``).
    """

    index: int
    wall_time: float
    finished: float
    responders: tuple[int, ...]
    busy: tuple[int, ...]
    decode_error: float
    last_responder: int
    stop: str
    scheme: str = ""
    members: tuple[int, ...] = ()
    task_round: int = -1
    pending: tuple[tuple[int, float, float], ...] = ()
