"""Finding and asking the Dask cluster: the client, its live workers, a real test cluster.

Holds the client a fit runs on (:mod:`.client`: the default client or an
embedded :class:`~distributed.LocalCluster`), deadline-bound reads of the
scheduler's identity and workers (:mod:`.identity`), and
:class:`SubprocessCluster` (:mod:`.processes`: ``dask scheduler`` and ``dask
worker`` processes on loopback, for integration tests).

Imports Dask and ``dask_quorum.config``; no other ``pipeline`` subpackage.
"""

from .client import get_client
from .identity import scheduler_identity, scheduler_workers, worker_addresses
from .processes import SCHEDULER_PRELOAD, SubprocessCluster, TLSFiles, free_port

__all__ = [
    "SCHEDULER_PRELOAD",
    "SubprocessCluster",
    "TLSFiles",
    "free_port",
    "get_client",
    "scheduler_identity",
    "scheduler_workers",
    "worker_addresses",
]
