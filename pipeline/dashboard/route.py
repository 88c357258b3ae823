"""Adding a Bokeh page to the dashboard of a scheduler that is already running.

Distributed reads ``distributed.dashboard.scheduler.applications`` once, when
the scheduler starts its dashboard (so a ``--preload`` module that adds a
route at import time is served). A running scheduler has no public way to
take a new page; :func:`mount` adds one to its Bokeh server the way the
server adds its own pages at start-up, so the page is served like any
other: same prefix, same websocket settings, listed in the Bokeh server's
``app_paths`` (which ``/individual-plots.json`` -- JupyterLab's dask
extension -- and ``/sitemap.json`` read) and, for ``/individual-*`` routes,
in the dashboard's "More..." menu.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dask

if TYPE_CHECKING:
    from bokeh.server.tornado import BokehTornado
    from distributed import Scheduler

__all__ = ["bokeh_server", "menu_entry", "mount"]

logger = logging.getLogger(__name__)

#: ``doc_fn(scheduler, extra, doc)`` (a Bokeh ``Document``), the signature of distributed's pages.
DocFunction = Callable[[Any, dict[str, Any], Any], None]


def bokeh_server(scheduler: Scheduler) -> BokehTornado | None:
    """The Bokeh server of the scheduler's dashboard, or None without a dashboard."""
    try:
        from bokeh.server.tornado import BokehTornado
    except ImportError:  # pragma: no cover - bokeh is a dependency
        return None
    application = getattr(scheduler, "http_application", None)
    for app in getattr(application, "applications", ()):
        if isinstance(app, BokehTornado):
            return app
    return None


def menu_entry(route: str) -> dict[str, str]:
    """The "More..." menu entry distributed makes for an ``/individual-*`` route."""
    url = route.strip("/")
    return {"url": url, "name": " ".join(url.split("-")[1:]).title()}


def _add_to_menu(scheduler: Scheduler, route: str) -> None:
    from distributed.dashboard.scheduler import template_variables

    # Memoised per scheduler; every page's ``extra`` shares its "plots" list.
    plots = template_variables(scheduler)["plots"]
    entry = menu_entry(route)
    if entry not in plots:
        plots.append(entry)
        plots.sort(key=lambda d: d["name"])


def mount(scheduler: Scheduler, route: str, doc_fn: DocFunction) -> bool:
    """Serve ``doc_fn`` at ``route`` on the running scheduler's dashboard; idempotent.

    Call on the scheduler's event loop (from a scheduler plugin's ``start``
    or through ``Client.run_on_scheduler``).

    Parameters
    ----------
    scheduler : distributed.Scheduler
    route : str
        For example ``"/individual-stragglers"``; ``/individual-*`` routes
        also go in the "More..." menu.
    doc_fn : callable
        ``doc_fn(scheduler, extra, doc)``: fills a Bokeh document, like
        the entries of ``distributed.dashboard.scheduler.applications``.

    Returns
    -------
    bool
        Whether the page is served (False: the scheduler runs no dashboard).

    Raises
    ------
    ValueError
        If ``route`` does not start with ``/`` or is ``/``.
    """
    if not route.startswith("/") or route == "/" or route.endswith("/"):
        raise ValueError(f"route must look like '/name', got {route!r}")
    server = bokeh_server(scheduler)
    if server is None:
        return False
    if route in server.app_paths:  # preloaded, or mounted before
        return True

    from bokeh.application import Application
    from bokeh.application.handlers.document_lifecycle import DocumentLifecycleHandler
    from bokeh.application.handlers.function import FunctionHandler
    from bokeh.server.contexts import ApplicationContext
    from bokeh.server.tornado import create_static_handler
    from bokeh.server.urls import per_app_patterns
    from bokeh.server.views.ws import WSHandler
    from distributed.dashboard.scheduler import template_variables

    prefix = server.prefix  # "" or "/something"
    extra = {"prefix": prefix + "/", **template_variables(scheduler)}
    app = Application(FunctionHandler(functools.partial(doc_fn, scheduler, extra)))
    app.add(DocumentLifecycleHandler())
    context = ApplicationContext(app, io_loop=server.io_loop, url=route)

    settings = dask.config.get("distributed.scheduler.dashboard.bokeh-application")
    patterns: list[tuple[str, type, dict[str, Any]]] = []
    for pattern, handler in per_app_patterns:
        kwargs: dict[str, Any] = {"application_context": context}
        if issubclass(handler, WSHandler):
            kwargs["compression_level"] = settings.get("websocket_compression_level")
            kwargs["mem_level"] = settings.get("websocket_compression_mem_level")
        patterns.append((prefix + route + pattern, handler, kwargs))
    websocket = next(p for p, handler, _ in patterns if issubclass(handler, WSHandler))
    for _, _, kwargs in patterns:
        kwargs["bokeh_websocket_path"] = websocket
    patterns.append(create_static_handler(prefix, route, app))

    server.add_handlers(r".*", patterns)
    # ``applications`` is the server's own dict: sessions, cleanup and app_paths.
    server.applications[route] = context  # type: ignore[index]
    context.run_load_hook()
    if route.startswith("/individual-"):
        _add_to_menu(scheduler, route)
    logger.info("Dashboard page %s%s added to scheduler %s", prefix, route, scheduler.address)
    return True
