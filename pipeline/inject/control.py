"""Straggler injection from the client: install, read and remove the injector.

Holds :func:`inject_stragglers` (checks that every named worker is in the
cluster, then registers a
:class:`~dask_quorum.pipeline.inject.StragglerInjector`),
:func:`remove_stragglers` and :func:`injection_log` (the workers' recent
:class:`~dask_quorum.pipeline.inject.InjectionRecord`). Each works with a
synchronous client, or returns an awaitable with an asynchronous one.

Examples
--------
>>> from dask_quorum.pipeline.inject import (
...     Slowdown, TraceReplay, inject_stragglers, injection_log, remove_stragglers)
>>> inject_stragglers(client, {0: Slowdown(factor=10, delay=0.01)})  # doctest: +SKIP
>>> injection_log(client)  # doctest: +SKIP
>>> replay = TraceReplay.from_csv(
...     "aws_ec2_iteration_times.csv", "data2", workers=range(15), budget=0.05
... )  # doctest: +SKIP
>>> inject_stragglers(client, replay)  # doctest: +SKIP
>>> remove_stragglers(client)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..cluster import scheduler_workers
from ._checks import WorkerId
from .plugin import DEFAULT_LOG_SIZE, InjectionRecord, StragglerInjector
from .replay import TraceReplay
from .slowdown import Slowdown

if TYPE_CHECKING:
    from distributed import Client, Worker

logger = logging.getLogger(__name__)


def _check_known_workers(
    targets: Iterable[WorkerId], workers: Mapping[str, Mapping[str, Any]]
) -> None:
    """Raise if a key names no worker, or two keys name the same worker."""
    names = {address: info.get("name") for address, info in workers.items()}
    unknown = []
    given: dict[str, list[WorkerId]] = {}
    for key in targets:
        hits = [a for a, n in names.items() if str(key) in (a, str(n))]
        if not hits:
            unknown.append(key)
        for address in hits:
            given.setdefault(address, []).append(key)
    if unknown:
        known = ", ".join(f"{a} (name {n!r})" for a, n in sorted(names.items()))
        raise ValueError(
            f"unknown worker(s) {unknown!r}: give an address or a name of a worker "
            f"in the cluster; known workers: {known or 'none'}"
        )
    for address, keys in given.items():
        if len(keys) > 1:
            raise ValueError(f"worker {address} is given more than once: {keys!r}")


def inject_stragglers(
    client: Client,
    slowdowns: Mapping[WorkerId, Slowdown] | TraceReplay,
    *,
    seed: int = 0,
    log_size: int = DEFAULT_LOG_SIZE,
    unit_seconds: float = 0.0,
) -> StragglerInjector | Awaitable[StragglerInjector]:
    """Register a :class:`~dask_quorum.pipeline.inject.StragglerInjector`, replacing any previous one.

    Parameters
    ----------
    client : distributed.Client
        Synchronous or asynchronous client (then await the result).
    slowdowns : mapping of str or int to Slowdown, or TraceReplay
        Per-worker spec, keyed by address or name; or a trace to replay
        (see :class:`~dask_quorum.pipeline.inject.TraceReplay`). Every key,
        or every worker of the replay, must name a worker currently in the
        cluster.
    seed : int, default=0
        Seed of the per-worker chains (unused by a replay, which is
        deterministic).
    log_size : int, default=10_000
        Records kept per worker.
    unit_seconds : float, default=0.0
        Emulated seconds of work per declared work unit on every worker
        (times the worker's slowdown factor): lets a small host emulate a
        cluster of dedicated machines. See "Emulated work" in
        :mod:`~dask_quorum.pipeline.inject.plugin`.

    Returns
    -------
    StragglerInjector
        The client-side copy of the plugin (its log stays empty: read the
        workers' logs with :func:`injection_log`).

    Raises
    ------
    ValueError
        On an invalid spec (see
        :class:`~dask_quorum.pipeline.inject.StragglerInjector`), or a key
        that names no worker of the cluster; the message lists the known
        workers. Nothing is registered then.
    """
    injector = StragglerInjector(slowdowns, seed=seed, log_size=log_size, unit_seconds=unit_seconds)
    if client.asynchronous:
        return _inject_async(client, injector)
    workers = scheduler_workers(client)
    _check_known_workers(injector.workers, workers)
    client.register_plugin(injector)
    return injector


async def _inject_async(
    client: Client, injector: StragglerInjector
) -> StragglerInjector:
    identity = await client.scheduler.identity(n_workers=-1)
    _check_known_workers(injector.workers, identity["workers"])
    await client.register_plugin(injector)
    return injector


def _is_missing_plugin(error: ValueError) -> bool:
    return "does not exist" in str(error)


def remove_stragglers(client: Client) -> bool | Awaitable[bool]:
    """Unregister the straggler injector; no error when there is none.

    Tasks already running return their results at once (their remaining
    extra wait is cut short); later tasks run at natural speed.

    Parameters
    ----------
    client : distributed.Client
        Synchronous or asynchronous client (then await the result).

    Returns
    -------
    bool
        Whether an injector was registered.
    """
    if client.asynchronous:
        return _remove_async(client)
    try:
        client.unregister_worker_plugin(StragglerInjector.name)
    except ValueError as error:
        if not _is_missing_plugin(error):
            raise
        return False
    return True


async def _remove_async(client: Client) -> bool:
    try:
        await client.unregister_worker_plugin(StragglerInjector.name)
    except ValueError as error:
        if not _is_missing_plugin(error):
            raise
        return False
    return True



def _worker_records(dask_worker: Worker) -> list[InjectionRecord] | None:
    plugin = dask_worker.plugins.get(StragglerInjector.name)
    if not isinstance(plugin, StragglerInjector):
        return None
    return plugin.records()


def _collect(responses: Mapping[str, list[InjectionRecord] | None]) -> dict:
    return {w: records for w, records in responses.items() if records is not None}


def injection_log(
    client: Client,
) -> dict[str, list[InjectionRecord]] | Awaitable[dict[str, list[InjectionRecord]]]:
    """Recent :class:`~dask_quorum.pipeline.inject.InjectionRecord` of every worker, by worker address.

    Workers without an injector are absent; workers the injector leaves alone
    have an empty list.

    Parameters
    ----------
    client : distributed.Client
        Synchronous or asynchronous client (then await the result).
    """
    if client.asynchronous:
        return _injection_log_async(client)
    return _collect(client.run(_worker_records))


async def _injection_log_async(client: Client) -> dict[str, list[InjectionRecord]]:
    return _collect(await client.run(_worker_records))
