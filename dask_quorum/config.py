"""Default configuration of dask-quorum, merged into ``dask.config``.

Every key lives under ``quorum.`` and can be overridden the dask way:
``dask.config.set({"quorum.scheme": "sync"})``, a YAML file in
``~/.config/dask/``, or environment variables such as
``DASK_QUORUM__SCHEME=sync``.
"""

from __future__ import annotations

import os
from typing import Any

import dask.config
import yaml

_FILE = os.path.join(os.path.dirname(__file__), "quorum.yaml")

with open(_FILE) as f:
    _defaults = yaml.safe_load(f)

dask.config.update_defaults(_defaults)


def get(key: str) -> Any:
    """Read ``quorum.<key>`` from the dask configuration.

    Falls back to the packaged default when the key is absent from
    ``dask.config.config`` (a test harness may reset the global config to a
    snapshot taken before dask-quorum was imported).

    Parameters
    ----------
    key : str
        Dotted key below ``quorum``, for example ``"local-cluster.n-workers"``.
    """
    fallback = dask.config.get(f"quorum.{key}", config=_defaults)
    return dask.config.get(f"quorum.{key}", default=fallback)


def get_timeout(key: str) -> float:
    """Read a duration ``quorum.<key>`` (``"60s"``, ``"2 minutes"``, ``30``) in seconds."""
    from dask.utils import parse_timedelta

    value = parse_timedelta(get(key), default="seconds")
    if value is None or value <= 0:
        raise ValueError(f"quorum.{key} must be a positive duration, got {get(key)!r}")
    return float(value)
