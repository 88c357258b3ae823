"""Waiting on the cluster within a deadline: futures in memory, small computed values.

Every wait of the engine and of the layers above it that is not a round
goes through one of these two, so that a slow or lost computation ends in
a ``TimeoutError`` that says what was waited for and which setting bounds
it:

* :func:`wait_in_memory`: futures the caller keeps (placed replicas,
  partitions built on the workers);
* :func:`compute_within`: dask collections computed together for their
  small values (validation checks, class counts, scores, graph
  statistics), gathered, then released.

Futures are *released*, never cancelled, once their values are in: a
future may share keys with other computations of the same client (blocks
of one collection), and cancelling those trips an assertion of
distributed's scheduler (2026.8). Only a computation that timed out is
cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from distributed import Client, Future
from distributed import wait as wait_futures

logger = logging.getLogger(__name__)

__all__ = ["compute_within", "wait_in_memory"]


def wait_in_memory(futures: list[Future], timeout: float, what: str, hint: str = "") -> list[Future]:
    """``futures`` once all have finished; raise the first task's error if one failed.

    Raises
    ------
    TimeoutError
        ``"<what> within <timeout> s<hint>"`` when they have not all finished in time.
    """
    try:
        if futures:
            # distributed.wait asks the current client: make it theirs (not
            # necessarily the default one)
            with futures[0].client.as_current():
                wait_futures(futures, timeout=timeout)
    except TimeoutError as exc:
        raise TimeoutError(f"{what} within {timeout:g} s{hint}") from exc
    for f in futures:
        if f.status == "error":
            raise f.exception()
    return futures


def compute_within(
    client: Client, collections: Sequence[Any], timeout: float, what: str, setting: str = "quorum.setup-timeout"
) -> list[Any]:
    """The values of ``collections``, computed together on ``client``'s cluster.

    The collections go to the cluster in one graph
    (:meth:`distributed.Client.compute`, so blocks shared between them are
    computed once) and only their values come back.

    Parameters
    ----------
    client : distributed.Client
    collections : sequence
        Dask collections (arrays, delayed objects, dataframe scalars).
    timeout : float
        Seconds the computation may take.
    what : str
        What is computed, for the error message.
    setting : str, default="quorum.setup-timeout"
        The setting ``timeout`` comes from, for the error message.

    Returns
    -------
    list
        One value per collection, in order.

    Raises
    ------
    TimeoutError
        ``"<what> was not computed within <timeout> s (<setting>)"`` when
        the values are not ready in time (the tasks are cancelled).
    Exception
        The first task error (for instance a cast of a string to float),
        as the task raised it.
    """
    if not collections:
        return []
    futures = client.compute(list(collections))
    try:
        try:
            wait_in_memory(futures, timeout, f"{what} was not computed", f" ({setting})")
        except TimeoutError:
            client.cancel(futures)
            raise
        return client.gather(futures)
    finally:
        for f in futures:
            f.release()
