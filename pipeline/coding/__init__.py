"""Gradient codes: which worker holds which data partitions, and how to decode.

Holds the code itself, an encoding matrix with its least-squares decoder
(:mod:`.code`), the constructions of every scheme (:mod:`.schemes`), the
heterogeneity-aware code's loads, placement and coefficients
(:mod:`.heterogeneous`), the codes regrouped over a changed set of
workers (:mod:`.regroup`), the rotation of an approximate code that
makes its decoded sum unbiased over a period (:mod:`.rotation`) and the argument checks of the codes
(:mod:`._checks`; :func:`check_count` also serves
:mod:`~dask_quorum.pipeline.planning`).

Pure NumPy: imports nothing of Dask and no other ``pipeline`` subpackage.
"""

from ._checks import check_count
from .code import EXACT_TOL, GradientCode
from .regroup import contiguous_groups, expand, group_index, regroup
from .rotation import (
    MOVE_BUDGET,
    Rotation,
    block_size,
    choose_hold,
    decoded_weights,
    replicas_moved,
)
from .schemes import SCHEMES, make_code

__all__ = [
    "EXACT_TOL",
    "MOVE_BUDGET",
    "SCHEMES",
    "GradientCode",
    "Rotation",
    "block_size",
    "check_count",
    "choose_hold",
    "contiguous_groups",
    "decoded_weights",
    "expand",
    "group_index",
    "make_code",
    "regroup",
    "replicas_moved",
]
