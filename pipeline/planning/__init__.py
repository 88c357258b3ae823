"""Planning: simulate every scheme on a straggler model and recommend one.

Holds the round simulator (the engine's stop rule without a cluster), the
choice of the heterogeneous code's load bound and :func:`plan`.

Pure NumPy/pandas: imports :mod:`~dask_quorum.pipeline.coding` only, and
knows the straggler model only by its members (``workers``, ``p``,
``sample``).
"""

from .plan import (
    DEFAULT_SCHEMES,
    SKEW_MIN_GAIN,
    TIME_TIE_RTOL,
    Plan,
    SimulatedRounds,
    plan,
    shape_heterogeneous,
    simulate,
)

__all__ = [
    "DEFAULT_SCHEMES",
    "SKEW_MIN_GAIN",
    "TIME_TIE_RTOL",
    "Plan",
    "SimulatedRounds",
    "plan",
    "shape_heterogeneous",
    "simulate",
]
