"""The client side of the latency recorder: :func:`attach` it, read its rows with :func:`latencies`.

Both take a synchronous or an asynchronous client (then await the result)
and default to :func:`distributed.default_client`. The rows come from the
scheduler handler of :class:`~dask_quorum.pipeline.recorder.LatencyRecorder`
and become a Dataset (:func:`~dask_quorum.pipeline.recorder.rows_to_dataset`).

Examples
--------
>>> from dask_quorum.pipeline.recorder import attach, latencies
>>> attach(client)  # doctest: +SKIP
>>> ds = latencies(client)  # doctest: +SKIP
>>> ds["compute"].mean("sample")  # mean compute seconds per worker  # doctest: +SKIP
>>> newer = latencies(client, since=ds.attrs["cursor"])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from .plugin import LatencyRecorder
from .rows import check_since, rows_to_dataset

if TYPE_CHECKING:
    import xarray as xr
    from distributed import Client

logger = logging.getLogger(__name__)


def _client(client: Client | None) -> Client:
    if client is None:
        from distributed import default_client

        client = default_client()
    return client


def attach(client: Client | None = None) -> None | Awaitable[None]:
    """Attach the latency recorder to the client's scheduler; idempotent.

    Attaching again (or after ``--preload``) keeps the recorder in place,
    with its rows.

    Parameters
    ----------
    client : distributed.Client, optional
        Synchronous or asynchronous client (then await the result). Default:
        :func:`distributed.default_client`.

    Notes
    -----
    The capacity is read from ``quorum.recorder.capacity`` in the calling
    process when the recorder is created; it has no effect if a recorder is
    already attached.
    """
    client = _client(client)
    plugin = LatencyRecorder()
    if client.asynchronous:
        return _attach_async(client, plugin)
    client.register_plugin(plugin)
    return None


async def _attach_async(client: Client, plugin: LatencyRecorder) -> None:
    await client.register_plugin(plugin)


def latencies(
    client: Client | None = None, since: int | None = None
) -> xr.Dataset | Awaitable[xr.Dataset]:
    """Latency rows recorded on the scheduler, per worker.

    Parameters
    ----------
    client : distributed.Client, optional
        Synchronous or asynchronous client (then await the result). Default:
        :func:`distributed.default_client`.
    since : int, optional
        ``attrs["cursor"]`` of an earlier result: return only rows recorded
        after it. Default: every row the recorder still holds.

    Returns
    -------
    xarray.Dataset
        Dimensions ``("worker", "sample")``; coordinate ``worker``, the
        addresses in sorted order (``""`` for tasks whose worker the
        scheduler did not report, e.g. lost with their worker). A worker's
        samples are ordered by compute start. Float variables ``queue``,
        ``compute``, ``transfer``, ``units``, ``start``, ``stop`` (NaN
        padding when a worker has fewer samples), bool ``erred`` (False
        padding), object variables ``prefix`` and ``key`` (``""`` padding).
        ``attrs``: ``cursor`` (pass as ``since`` next time), ``dropped``
        (rows after ``since`` already overwritten by the ring buffer),
        ``capacity``. Select variables with ``ds["compute"]``: the attribute
        ``ds.compute`` is the Dataset's ``compute`` method.

    Raises
    ------
    RuntimeError
        If no recorder is attached to the scheduler; the message says how to
        attach one.
    ValueError
        On a ``since`` that is not None or a non-negative integer.
    """
    since = check_since(since)
    client = _client(client)
    if client.asynchronous:
        return _latencies_async(client, since)
    reply = client.sync(client.scheduler.quorum_latencies, since=since)
    return _to_dataset(reply, client)


async def _latencies_async(client: Client, since: int) -> xr.Dataset:
    reply = await client.scheduler.quorum_latencies(since=since)
    return _to_dataset(reply, client)


def _to_dataset(
    reply: Mapping[str, Any] | None, client: Client | None = None
) -> xr.Dataset:
    # An unknown handler gets ``None`` back (and a warning in the scheduler log).
    if not reply or not reply.get("attached"):
        where = f" at {client.scheduler.address}" if client is not None else ""
        raise RuntimeError(
            f"No latency recorder is attached to the scheduler{where}: call "
            f"dask_quorum.pipeline.recorder.attach(client) first, or start the "
            f"scheduler with `dask scheduler --preload dask_quorum.pipeline.recorder.plugin`"
        )
    attrs: dict[str, Any] = {key: int(reply[key]) for key in ("cursor", "dropped", "capacity")}
    # [time, action, worker, reason]: "add-worker" / "remove-worker" seen by
    # the scheduler, "lost" / "joined" decided by a fit.
    attrs["membership"] = [tuple(event) for event in reply.get("membership", ())]
    return rows_to_dataset(reply["columns"], attrs=attrs)
