"""Gradient codes: which worker holds which data partitions, and how to decode.

Holds the encoding matrices of every scheme (:mod:`.schemes`), the
heterogeneity-aware code and the codes regrouped over a changed set of
workers (:mod:`.regroup`).

Pure NumPy: imports nothing of Dask and no other ``pipeline`` subpackage.
"""

from .regroup import contiguous_groups, expand, group_index, regroup
from .schemes import EXACT_TOL, SCHEMES, GradientCode, make_code

__all__ = [
    "EXACT_TOL",
    "SCHEMES",
    "GradientCode",
    "contiguous_groups",
    "expand",
    "group_index",
    "make_code",
    "regroup",
]
