"""Test helper: reading the rows of a :func:`~dask_quorum.pipeline.recorder.latencies` Dataset."""

from __future__ import annotations

import numpy as np
from dask_quorum.pipeline.recorder import FIELDS


def row(ds, key: str) -> dict:
    """The one sample of ``ds`` whose key is ``key``, as a dict with its worker."""
    hits = np.argwhere(ds["key"].values == key)
    assert len(hits) == 1, f"{key} recorded {len(hits)} times"
    w, i = hits[0]
    out = {name: ds[name].values[w, i] for name in FIELDS if name != "worker"}
    out["worker"] = str(ds["worker"].values[w])
    return out


def recorded_keys(ds) -> list[str]:
    keys = ds["key"].values.ravel()
    return [k for k in keys if k != ""]
