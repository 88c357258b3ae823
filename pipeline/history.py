"""Turning round records into the ``history_`` Dataset of a fit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .rounds import RoundRecord


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
