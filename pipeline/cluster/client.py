"""Finding the Dask client a fit runs on.

An estimator with ``client=None`` uses the current default client when there
is one, and otherwise one embedded :class:`~distributed.LocalCluster` per
process, started on first use (its size from ``quorum.local-cluster.*``) and
closed at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import threading

import distributed
from distributed import Client, LocalCluster

from dask_quorum import config

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_embedded: dict[str, object] = {}


def embedded_client() -> Client:
    """Return the process-wide embedded client, starting its cluster if needed.

    The cluster is a :class:`~distributed.LocalCluster` sized by
    ``quorum.local-cluster.{n-workers,threads-per-worker,processes,dashboard-address}``.
    Its client is not made the default client, so the user's own dask
    computations are not redirected to it.
    """
    with _lock:
        client = _embedded.get("client")
        if client is not None and client.status == "running":
            return client
        cluster = LocalCluster(
            n_workers=int(config.get("local-cluster.n-workers")),
            threads_per_worker=int(config.get("local-cluster.threads-per-worker")),
            processes=bool(config.get("local-cluster.processes")),
            dashboard_address=config.get("local-cluster.dashboard-address"),
        )
        client = Client(cluster, set_as_default=False)
        _embedded.update(cluster=cluster, client=client)
        logger.info("started embedded %r, dashboard at %s", cluster, client.dashboard_link)
        return client


def close_embedded() -> None:
    """Close the embedded client and cluster, if one was started."""
    with _lock:
        client = _embedded.pop("client", None)
        cluster = _embedded.pop("cluster", None)
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


atexit.register(close_embedded)


def get_client(client: Client | None = None) -> Client:
    """Resolve the client a fit should use.

    Parameters
    ----------
    client : distributed.Client or None
        Used as is when given. Otherwise the current default client
        (:func:`distributed.default_client`), and failing that the embedded
        local cluster of :func:`embedded_client`.

    Raises
    ------
    TypeError
        If ``client`` is neither None nor a :class:`distributed.Client`.
    ValueError
        If ``client`` is closed.
    """
    if client is not None:
        if not isinstance(client, Client):
            raise TypeError(
                f"client must be a distributed.Client or None, got {type(client).__name__}"
            )
        if client.status != "running":
            raise ValueError(f"client {client!r} is not running (status {client.status!r})")
        return client
    try:
        return distributed.default_client()
    except ValueError:
        return embedded_client()
