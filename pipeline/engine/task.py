"""One round task: its key, how the round's parameters reach it, what it runs on a worker.

A round submits one task per idle worker, keyed
``(f"{ROUND_PREFIX}-{token}", round, worker)`` (:func:`round_key`; the
latency recorder, the straggler model and the adapter find round tasks by
this prefix). The task
runs :func:`coded_partial` on the worker's replicas; the parameters travel
inside the task message when small and are scattered once per round when
large (:func:`ship_params`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import Any

import numpy as np
from dask.sizeof import sizeof
from distributed import Client

from .membership import check_client

logger = logging.getLogger(__name__)

#: Task prefix of the round tasks; their keys are ``(f"{ROUND_PREFIX}-{token}", round, worker)``.
ROUND_PREFIX = "quorum-round"


def round_key(token: str, t: int, i: int) -> tuple[str, int, int]:
    """The key of worker ``i``'s task in round ``t`` of the runner with ``token``."""
    return (f"{ROUND_PREFIX}-{token}", t, i)


def coded_partial(
    fn: Callable[[Any, Any], np.ndarray], params: Any, coeffs: Sequence[float], *parts: Any
) -> np.ndarray:
    """Worker side of a round: ``sum_j coeffs[j] * fn(params, parts[j])``."""
    total = None
    for c, part in zip(coeffs, parts):
        r = np.asarray(fn(params, part), dtype=np.float64)
        total = c * r if total is None else total + c * r
    return total


def ship_params(
    client: Client,
    params: Any,
    targets: list[str],
    *,
    inline_limit: int,
    timeout: float,
    hard: float,
) -> Any:
    """Parameters as the round's tasks take them: inline when small, else scattered once.

    Small parameters ride inside the task messages: a separate scatter
    costs a round trip per round (measured 4 ms in-process, 12 ms with
    worker processes, against a 20-30 ms round). Large ones are
    broadcast once to the workers that get a task now (not to busy
    ones, which may have stopped answering) and shared by the round's
    tasks; a task submitted later fetches them from a peer.

    Parameters
    ----------
    client : distributed.Client
    params : object
        The round's parameters.
    targets : list of str
        The workers that get a task now.
    inline_limit : int
        Parameters up to this many bytes travel inside the task messages.
    timeout : float
        Longest the scatter may take, in seconds.
    hard : float
        ``time.perf_counter()`` at the round's hard limit; the scatter ends
        by then.

    Returns
    -------
    object
        ``params`` itself, or a :class:`distributed.Future` of them (the
        caller releases it).
    """
    if sizeof(params) <= inline_limit:
        return params
    try:
        return client.scatter(
            params,
            workers=targets or None,
            broadcast=True,
            hash=False,
            timeout=max(0.01, min(timeout, hard - perf_counter())),
        )
    except (KeyError, TimeoutError, OSError) as exc:
        check_client(client, "scattering the round's parameters")
        logger.warning("scattering the parameters failed (%s); sending them inline", exc)
        return params
