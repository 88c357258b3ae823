"""Computing small results of dask collections on the cluster, within a deadline.

Every reduction the data layer needs (validation checks, class counts,
scores, a curvature sample) is computed by :func:`compute_within`: the
collections go to the cluster in one graph (:meth:`distributed.Client.compute`,
so blocks shared between them are computed once), the wait is bounded, and
only the small results come back to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from distributed import Client
from distributed import wait as wait_futures

logger = logging.getLogger(__name__)


def compute_within(client: Client, collections: Sequence[Any], timeout: float, what: str) -> list[Any]:
    """The values of ``collections``, computed together on ``client``'s cluster.

    Parameters
    ----------
    client : distributed.Client
    collections : sequence
        Dask collections (arrays, delayed objects, dataframe scalars).
    timeout : float
        Seconds the computation may take.
    what : str
        What is computed, for the error message.

    Returns
    -------
    list
        One value per collection, in order.

    Raises
    ------
    TimeoutError
        When the values are not ready within ``timeout`` (the tasks are
        cancelled).
    Exception
        The first task error (for instance a cast of a string to float),
        as the task raised it.
    """
    if not collections:
        return []
    futures = client.compute(list(collections))
    try:
        try:
            with client.as_current():  # distributed.wait asks the current client
                wait_futures(futures, timeout=timeout)
        except TimeoutError as exc:
            client.cancel(futures)
            raise TimeoutError(
                f"{what} was not computed within {timeout:g} s (quorum.setup-timeout)"
            ) from exc
        for f in futures:
            if f.status == "error":
                raise f.exception()
        return client.gather(futures)
    finally:
        for f in futures:
            f.release()
