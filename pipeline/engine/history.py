"""Turning round records into the ``history_`` Dataset of a fit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .record import RoundRecord

if TYPE_CHECKING:
    from ..asap import AsapResult


def rounds_to_dataset(
    records: Sequence[RoundRecord],
    workers: Sequence[str],
    *,
    variables: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    started: float | None = None,
) -> xr.Dataset:
    """Build an :class:`xarray.Dataset` indexed by round from round records.

    Parameters
    ----------
    records : sequence of RoundRecord
    workers : sequence of str
        Worker addresses, in code order (``RoundRecord`` holds indices).
    variables : mapping, optional
        Extra per-round variables: ``name -> array`` whose first axis is the
        round (for example the objective), or ``name -> (dims, array)``.
    attrs : mapping, optional
        Dataset attributes (scheme, redundancy, ...).
    started : float, optional
        ``time.perf_counter()`` at the start of the fit; ``elapsed`` is then
        wall-clock time since it, driver work between rounds included.
        Without it, ``elapsed`` sums the rounds' own times.

    Returns
    -------
    xarray.Dataset
        Dimensions ``round`` and ``worker``; variables ``wall_time``,
        ``elapsed``, ``n_responders``, ``decode_error``, ``responded``
        (round x worker), ``busy`` (round x worker), ``waited_on`` (the
        worker whose answer completed each round), ``stop`` and ``scheme``
        (the code each round ran with; adaptive fits switch).
    """
    n_rounds, n_workers = len(records), len(workers)
    responded = np.zeros((n_rounds, n_workers), dtype=bool)
    busy = np.zeros((n_rounds, n_workers), dtype=bool)
    for r, rec in enumerate(records):
        responded[r, list(rec.responders)] = True
        busy[r, list(rec.busy)] = True
    wall = np.array([rec.wall_time for rec in records], dtype=float)
    if started is None:
        elapsed = np.cumsum(wall)
    else:
        elapsed = np.array([rec.finished for rec in records], dtype=float) - started
    data: dict[str, Any] = {
        "wall_time": ("round", wall, {"units": "s"}),
        "elapsed": ("round", elapsed, {"units": "s"}),
        "n_responders": ("round", responded.sum(axis=1)),
        "decode_error": ("round", np.array([rec.decode_error for rec in records], dtype=float)),
        "responded": (("round", "worker"), responded),
        "busy": (("round", "worker"), busy),
        "waited_on": ("round", np.array([workers[rec.last_responder] for rec in records], dtype=object)),
        "stop": ("round", np.array([rec.stop for rec in records], dtype=object)),
        "scheme": ("round", np.array([rec.scheme for rec in records], dtype=object)),
    }
    for name, value in (variables or {}).items():
        data[name] = value if isinstance(value, tuple) else ("round", np.asarray(value))
    return xr.Dataset(
        data,
        coords={"round": np.arange(n_rounds), "worker": np.array(list(workers), dtype=object)},
        attrs=dict(attrs or {}),
    )


def asap_to_dataset(
    result: AsapResult,
    *,
    keep_params: bool = False,
    started: float | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Build the ``history_`` of an ASAP fit, one entry per round.

    Round ``t`` is every worker's ``t``-th reduce and the local step after
    it; its replicas are the workers' snapshots after that step.

    Parameters
    ----------
    result : AsapResult
    keep_params : bool, default=False
        Also keep the average of the replicas of every round (``params``).
    started : float, optional
        ``time.time()`` when the fit started; default the release of the loops.
    attrs : mapping, optional
        More Dataset attributes.

    Returns
    -------
    xarray.Dataset
        Dimensions ``round`` and ``worker``. ``loss``: mean over the workers
        of the local objective at their replicas (the objective of the
        average once the replicas agree); ``consensus_error``: largest
        distance of a replica from the average; ``residual``: largest tracked
        gradient component; ``elapsed`` (the last worker's end of the round,
        since the start) and ``wall_time``; ``bytes_sent`` (payload bytes of
        the round's versions, all workers) and ``bytes_max_node`` (largest
        sent plus received by one worker); ``stale_reduces`` (versions reused
        or older than the round, under staleness); per worker ``compute``
        (step seconds, injected slowdown included) and ``wait`` (seconds
        blocked on in-peers).
    """
    T, n = result.values.shape
    snaps = result.snapshots.reshape(T, n, -1)
    mean = snaps.mean(axis=1)
    consensus = np.linalg.norm(snaps - mean[:, None, :], axis=2).max(axis=1) if T else np.zeros(0)
    origin = result.started if started is None else started
    ends = result.finished.max(axis=1) if T else np.zeros(0)
    elapsed = ends - origin
    wall = np.diff(np.r_[result.started, ends]) if T else np.zeros(0)
    stale = np.zeros(T, dtype=int)
    for consumed in result.consumed:
        old = consumed[consumed[:, 2] < consumed[:, 0]]
        np.add.at(stale, old[:, 0], 1)
    data: dict[str, Any] = {
        "loss": ("round", result.values.mean(axis=1)),
        "consensus_error": ("round", consensus),
        "residual": ("round", result.residuals.max(axis=1)),
        "wall_time": ("round", wall, {"units": "s"}),
        "elapsed": ("round", elapsed, {"units": "s"}),
        "bytes_sent": ("round", result.sent.sum(axis=1), {"units": "B"}),
        "bytes_max_node": ("round", (result.sent + result.received).max(axis=1), {"units": "B"}),
        "stale_reduces": ("round", stale),
        "compute": (("round", "worker"), result.compute, {"units": "s"}),
        "wait": (("round", "worker"), result.wait, {"units": "s"}),
    }
    if keep_params:
        data["params"] = (("round", "param"), mean)
    graph = result.graph
    return xr.Dataset(
        data,
        coords={"round": np.arange(T), "worker": np.array(result.workers, dtype=object)},
        attrs={
            "scheme": "asap",
            "staleness": result.staleness,
            "degree": graph.degree,
            "offsets": str(list(graph.offsets)),
            "graph": graph.kind,
            "spectral_gap": graph.spectral_gap,
            "converged": int(result.converged),
            **dict(attrs or {}),
        },
    )
