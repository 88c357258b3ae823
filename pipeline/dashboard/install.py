"""The stragglers page on a running cluster: :func:`register`, one call from a client.

:func:`register` attaches the latency recorder (if missing), installs the
fit board and mounts the page ``/individual-stragglers``
(:mod:`~dask_quorum.pipeline.dashboard.page`) on the running scheduler's
dashboard (:func:`~dask_quorum.pipeline.dashboard.mount`). A scheduler
started with ``dask scheduler --preload dask_quorum.dashboard`` has all
three from the start (the preload module :mod:`dask_quorum.dashboard`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import pkgutil
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from ..recorder import attach
from .board import FitBoard
from .page import ROUTE, stragglers_doc
from .route import mount

if TYPE_CHECKING:
    from distributed import Client, Scheduler

__all__ = ["register"]

logger = logging.getLogger(__name__)


def _mount(dask_scheduler: Scheduler) -> bool:
    """Run on the scheduler (``Client.run_on_scheduler``): serve the page."""
    return mount(dask_scheduler, ROUTE, stragglers_doc)


def _page_link(client: Client, served: bool) -> str | None:
    if not served:
        logger.info("The scheduler runs no dashboard: the stragglers page is not served")
        return None
    link = client.dashboard_link
    base = link[: -len("/status")] if link.endswith("/status") else link.rstrip("/")
    return base + ROUTE


#: Run on the scheduler first: imports this module (and with it dask_quorum,
#: scikit-learn, ...: seconds on a busy machine) in a thread, so that the
#: unpickling of the plugins below does not hold the scheduler's event loop.
_IMPORT_OFF_LOOP = functools.partial(asyncio.to_thread, pkgutil.resolve_name, f"{__name__}:ROUTE")


def register(client: Client | None = None) -> str | None | Awaitable[str | None]:
    """Show stragglers and fits on the scheduler's dashboard: one call, idempotent.

    Attaches the latency recorder (if missing), installs the fit board and
    adds the page ``/individual-stragglers`` to the running scheduler's
    dashboard. Works for an in-process or a separate scheduler process.

    Parameters
    ----------
    client : distributed.Client, optional
        Synchronous or asynchronous client (then await the result). Default:
        :func:`distributed.default_client`.

    Returns
    -------
    str or None
        The page's address, or None when the scheduler runs no dashboard
        (the recorder and the board are installed anyway).

    Notes
    -----
    A scheduler process that has not imported dask-quorum yet imports it
    first, in a thread (seconds: scikit-learn comes along), so that its event
    loop keeps serving; installing the pieces then takes milliseconds.
    """
    if client is None:
        from distributed import default_client

        client = default_client()
    if client.asynchronous:
        return _register_async(client)
    client.run_on_scheduler(_IMPORT_OFF_LOOP)
    attach(client)
    client.register_plugin(FitBoard())
    return _page_link(client, bool(client.run_on_scheduler(_mount)))


async def _register_async(client: Client) -> str | None:
    await client.run_on_scheduler(_IMPORT_OFF_LOOP)
    await attach(client)
    await client.register_plugin(FitBoard())
    return _page_link(client, bool(await client.run_on_scheduler(_mount)))
