"""Asking the scheduler now: its identity (id, address, workers) and its workers, with a deadline.

Every read goes to the scheduler (never the client's cached identity, see
:func:`scheduler_identity`) and ends within a timeout.
:func:`worker_addresses` also waits for a first worker.
"""

from __future__ import annotations

import logging

from distributed import Client

from dask_quorum import config

logger = logging.getLogger(__name__)


def scheduler_identity(client: Client, timeout: float) -> dict:
    """The scheduler's identity (id, address, every worker), asked for now.

    Unlike ``client.scheduler_info()`` this never reads the client's cached
    identity, which the client's periodic refresh overwrites with a copy
    that holds no workers: read right after such a refresh, the cache says
    the cluster is empty.

    Raises
    ------
    TimeoutError
        If the scheduler does not answer within ``timeout`` seconds.
    """
    try:
        return client.sync(client.scheduler.identity, n_workers=-1, callback_timeout=max(timeout, 0.01))
    except TimeoutError as exc:
        raise TimeoutError(
            f"the scheduler behind {client!r} did not list its workers within {timeout:g} s"
        ) from exc


def scheduler_workers(client: Client, timeout: float | None = None) -> dict[str, dict]:
    """The scheduler's current workers, ``{address: info}``, asked for now.

    See :func:`scheduler_identity` for why not ``client.scheduler_info()``.

    Parameters
    ----------
    client : distributed.Client
        A synchronous client.
    timeout : float, optional
        Seconds to wait for the scheduler's answer (default
        ``quorum.setup-timeout``).

    Raises
    ------
    TimeoutError
        If the scheduler does not answer within ``timeout`` seconds.
    """
    if timeout is None:
        timeout = config.get_timeout("setup-timeout")
    return dict(scheduler_identity(client, timeout)["workers"])


def worker_addresses(client: Client, timeout: float | None = None) -> list[str]:
    """Sorted addresses of the client's workers, waiting up to ``timeout`` for one.

    Raises
    ------
    TimeoutError
        If the cluster has no worker after ``timeout`` seconds
        (default ``quorum.setup-timeout``).
    """
    if timeout is None:
        timeout = config.get_timeout("setup-timeout")
    workers = scheduler_workers(client, timeout)
    if not workers:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError as exc:
            raise TimeoutError(
                f"the cluster behind {client!r} has no worker after {timeout:g} s"
            ) from exc
        workers = scheduler_workers(client, timeout)
    return sorted(workers)
