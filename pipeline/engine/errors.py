"""The engine's errors: a round that timed out, lost workers, a lost scheduler.

A fit by coded rounds ends early with one of these (all three are exported
by :mod:`dask_quorum.pipeline.engine`):

* :class:`RoundTimeoutError`: a round found no sufficient set of results
  within ``quorum.round-timeout`` (raised by
  :class:`~dask_quorum.pipeline.engine.RoundRunner`);
* :class:`WorkersLostError`: the workers left cannot decode a round (the
  session re-plans and runs it again) or are fewer than
  ``quorum.faults.min-workers`` (the fit stops);
* :class:`SchedulerLostError`: the client lost its scheduler.
"""

from __future__ import annotations

from collections.abc import Iterable


class RoundTimeoutError(TimeoutError):
    """A round found no sufficient set of results before its timeout."""


class WorkersLostError(RuntimeError):
    """Workers a fit needs are gone and it cannot go on without them.

    Raised by a round whose remaining workers cannot decode (the session
    then re-plans on the survivors and runs the round again), and by a
    session left with fewer than ``quorum.faults.min-workers`` workers.

    Attributes
    ----------
    lost : tuple of str
        Addresses of the lost workers.
    """

    def __init__(self, message: str, lost: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.lost = tuple(lost)


class SchedulerLostError(ConnectionError):
    """The client lost its scheduler (it died, restarted or the client was closed)."""
