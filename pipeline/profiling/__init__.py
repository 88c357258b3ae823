"""Profiling a running cluster: a calibrated probe workload, a fitted model, a file.

Holds :func:`profile_cluster` (probe every worker, fit a straggler model:
:mod:`.probe`), the :class:`ClusterProfile` saved as NetCDF and
:func:`plan_profile` (:mod:`.profile`).

May import :mod:`~dask_quorum.pipeline.cluster`,
:mod:`~dask_quorum.pipeline.recorder`, :mod:`~dask_quorum.pipeline.stragglers`,
:mod:`~dask_quorum.pipeline.planning` and the engine's round key prefix.
"""

from .probe import PROBE_PREFIX, PROBE_SIZE, probe_work, profile_cluster
from .profile import ClusterProfile, load_profile, plan_profile

__all__ = [
    "PROBE_PREFIX",
    "PROBE_SIZE",
    "ClusterProfile",
    "load_profile",
    "plan_profile",
    "probe_work",
    "profile_cluster",
]
