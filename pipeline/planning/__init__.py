"""Planning: simulate every scheme on a straggler model and recommend one.

Holds the round simulator, the engine's stop rule without a cluster
(:mod:`.simulation`), the choice of the heterogeneous code's load bound
(:mod:`.shaping`), :func:`plan`, which compares the schemes on the same
sampled rounds and recommends one (:mod:`.recommend`), and the argument
checks of these (:mod:`._checks`; :func:`check_count` and
:func:`check_real` also serve :mod:`~dask_quorum.pipeline.profiling`).

Pure NumPy/pandas: imports :mod:`~dask_quorum.pipeline.coding` only, and
knows the straggler model only by its members (``workers``, ``p``,
``sample``).
"""

from ._checks import check_count, check_real
from .recommend import DEFAULT_SCHEMES, TIME_TIE_RTOL, Plan, plan
from .shaping import SKEW_MIN_GAIN, shape_heterogeneous
from .simulation import SimulatedRounds, simulate

__all__ = [
    "DEFAULT_SCHEMES",
    "SKEW_MIN_GAIN",
    "TIME_TIE_RTOL",
    "Plan",
    "SimulatedRounds",
    "check_count",
    "check_real",
    "plan",
    "shape_heterogeneous",
    "simulate",
]
