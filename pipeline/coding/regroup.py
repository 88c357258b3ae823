"""Codes for a changed set of workers over the same data partitions.

A fit splits its data into ``k`` partitions once. When workers leave (a
process dies or hangs) or join, the engine builds a code for the ``n``
workers it now has without re-partitioning the data: the ``k`` partitions
are cut into ``n`` *groups* of consecutive partitions, a code ``C`` of
:func:`~dask_quorum.pipeline.coding.make_code` is built over the groups
(``n x n``), and worker ``r`` computes ``sum_j C[r, g(j)] * fn(partition j)``
where ``g(j)`` is the group of partition ``j``. The partition-level matrix is
``B = C[:, g]`` (``n x k``), and since the groups are disjoint ::

    B_S^T a = 1  (over partitions)  <=>  C_S^T a = 1  (over groups)

so exactness, the stragglers tolerated and the decoding weights are those of
``C``. Only the grouping decides which replicas a worker needs;
:func:`regroup` picks, among cyclic runs of partitions, the grouping under
which the workers already hold the most of them, so that a change moves as
few replicas as possible.

Pure NumPy; the Dask side is :mod:`~dask_quorum.pipeline.engine.session`.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from .code import GradientCode

__all__ = ["contiguous_groups", "expand", "group_index", "regroup"]

#: Groupings scored by :func:`regroup` at most (offsets are thinned beyond).
MAX_CANDIDATES = 1024


def contiguous_groups(
    n_partitions: int, n_groups: int, *, offset: int = 0, start: int = 0
) -> list[NDArray[np.intp]]:
    """Cut partitions ``0 .. k-1`` into ``n_groups`` runs of consecutive partitions.

    Runs are taken cyclically from partition ``offset``; their sizes differ by
    at most one, the ``k mod n_groups`` longer runs being runs ``start``,
    ``start + 1``, ... (cyclically).

    Raises
    ------
    ValueError
        If ``n_groups`` is not in ``[1, n_partitions]``: every group must
        hold a partition.
    """
    k, n = int(n_partitions), int(n_groups)
    if not 1 <= n <= k:
        raise ValueError(
            f"cannot cut {k} partitions into {n} non-empty groups: "
            f"the number of groups must be in [1, {k}]"
        )
    base, extra = divmod(k, n)
    sizes = np.full(n, base)
    sizes[(start + np.arange(extra)) % n] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    order = (offset + np.arange(k)) % k
    return [order[a:b].astype(np.intp) for a, b in zip(bounds[:-1], bounds[1:])]


def group_index(groups: list[NDArray[np.intp]], n_partitions: int) -> NDArray[np.intp]:
    """``g`` with ``g[j]`` the group of partition ``j``.

    Raises
    ------
    ValueError
        If the groups do not split ``0 .. n_partitions - 1`` exactly once.
    """
    g = np.full(n_partitions, -1, dtype=np.intp)
    for r, members in enumerate(groups):
        members = np.asarray(members, dtype=np.intp)
        if members.size == 0:
            raise ValueError(f"group {r} is empty")
        if (g[members] != -1).any():
            raise ValueError(f"group {r} repeats partitions {members[g[members] != -1].tolist()}")
        g[members] = r
    if (g == -1).any():
        raise ValueError(f"partitions {np.flatnonzero(g == -1).tolist()} are in no group")
    return g


def expand(code: GradientCode, groups: list[NDArray[np.intp]], n_partitions: int) -> GradientCode:
    """The partition-level code ``B = code.B[:, g]`` of a code over groups.

    Parameters
    ----------
    code : GradientCode
        A code with one column per group (``code.n_partitions == len(groups)``).
    groups : list of ndarray
        Partition indices of each group.
    n_partitions : int
        ``k``.

    Returns
    -------
    GradientCode
        Same scheme, redundancy, exactness, stragglers and decoder, shape
        ``(code.n_workers, k)``.  A code whose columns already are the
        ``k`` partitions (a ``heterogeneous`` code built with
        ``n_partitions=k``) is returned as is.
    """
    if code.n_partitions == n_partitions and len(groups) != n_partitions:
        return code
    if code.n_partitions != len(groups):
        raise ValueError(f"the code has {code.n_partitions} columns for {len(groups)} groups")
    g = group_index(groups, n_partitions)
    return replace(code, B=code.B[:, g])


def regroup(code: GradientCode, held: np.ndarray) -> list[NDArray[np.intp]]:
    """Groups for ``code`` under which the workers keep the most replicas they hold.

    Parameters
    ----------
    code : GradientCode
        The code over groups, ``n x n``; row ``r`` is worker ``r``.
    held : ndarray of bool, shape (n, k)
        ``held[r, j]``: worker ``r`` already holds partition ``j``.

    Returns
    -------
    list of ndarray
        ``n`` cyclic runs of partitions (:func:`contiguous_groups`); among
        all offsets (thinned to about :data:`MAX_CANDIDATES` candidates) and
        placements of the longer runs, the first that maximises the number of
        replicas the workers keep.
    """
    held = np.asarray(held, dtype=bool)
    n, k = held.shape
    if code.n_workers != n or code.n_partitions != n:
        raise ValueError(f"the code must be {n} x {n} for {n} workers, got {code.B.shape}")
    support = code.B != 0
    starts = range(n) if k % n else range(1)
    offsets = np.arange(k)
    if k * len(starts) > MAX_CANDIDATES:
        offsets = np.unique(np.linspace(0, k - 1, max(1, MAX_CANDIDATES // len(starts))).astype(int))
    best, best_kept = None, -1
    for offset in offsets:
        for start in starts:
            groups = contiguous_groups(k, n, offset=int(offset), start=start)
            g = group_index(groups, k)
            kept = int(np.count_nonzero(support[:, g] & held))
            if kept > best_kept:
                best, best_kept = groups, kept
    assert best is not None
    return best
