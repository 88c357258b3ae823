"""Scheduler preload: the stragglers page, the latency recorder and the fit board.

Start a scheduler with::

    dask scheduler --preload dask_quorum.dashboard

and its dashboard serves ``/individual-stragglers`` (listed in the "More..."
menu and in JupyterLab's dask extension) from the start, the latency
recorder records every task and fits can report to the fit board. Importing
this module adds the page to ``distributed.dashboard.scheduler.applications``,
which the scheduler reads when it starts its dashboard; :func:`dask_setup`
then installs the recorder and the board on that scheduler.

On a cluster that is already running, use
:func:`dask_quorum.pipeline.dashboard.register` instead.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dask_quorum.pipeline import recorder
from dask_quorum.pipeline.dashboard import ROUTE, board, stragglers_doc

if TYPE_CHECKING:
    from distributed import Scheduler

__all__ = ["dask_setup"]

logger = logging.getLogger(__name__)

try:
    from distributed.dashboard.scheduler import applications
except ImportError:  # no bokeh: distributed serves no dashboard either
    logger.info("distributed's dashboard is unavailable: %s is not served", ROUTE)
else:
    applications.setdefault(ROUTE, stragglers_doc)


def dask_setup(scheduler: Scheduler) -> None:
    """Preload hook: install the latency recorder and the fit board (idempotent).

    Parameters
    ----------
    scheduler : distributed.Scheduler
        The scheduler being started.
    """
    recorder.dask_setup(scheduler)
    board.dask_setup(scheduler)
