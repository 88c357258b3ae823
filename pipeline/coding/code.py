"""The gradient code: an encoding matrix and its least-squares decoder.

``n`` workers share ``k`` data partitions with partial results
``g_1 .. g_k``; the quantity wanted each round is ``g = sum_j g_j``.  An
encoding matrix ``B`` (``n x k``) places partition ``j`` on worker ``i``
when ``B[i, j] != 0``; worker ``i`` returns ``y_i = sum_j B[i, j] g_j``.
From the responders ``S`` a decoder picks weights ``a`` and returns
``sum_{i in S} a_i y_i = (B_S^T a)^T g``, which is exact when
``B_S^T a = 1``.  The error of a responder set is
``err(S) = ||B_S^T a - 1||^2 / k`` (see ``DESIGN.md`` section 2).

The engine asks :func:`~dask_quorum.pipeline.coding.make_code` for a
:class:`GradientCode`, ships partition ``j`` to the workers in
``code.holders(j)``, waits for ``code.min_responders`` answers (or fewer,
on a deadline) and combines them with ``code.decode(responders)``. Every
few rounds it may switch to ``code.rotated(shift)`` (same loads, partitions
relabelled) so that no partition stays behind a persistently slow worker,
re-placing only the replicas that moved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import check_index

logger = logging.getLogger(__name__)

#: ``is_exact`` threshold on ``err(S)`` (a mean squared coefficient error).
EXACT_TOL: float = 1e-10

_RESCALED_SCHEMES = frozenset({"sync", "uncoded"})  # decoded by k / |S| rescaling


@dataclass(frozen=True, eq=False, repr=False)
class GradientCode:
    """An encoding matrix with its decoder.

    Build instances with :func:`~dask_quorum.pipeline.coding.make_code`.

    Parameters
    ----------
    scheme : str
        One of :data:`~dask_quorum.pipeline.coding.SCHEMES`.
    B : array_like of shape (n_workers, n_partitions)
        Encoding matrix; stored as a read-only float64 copy.
    redundancy : int
        Redundancy parameter; ``n_stragglers == redundancy - 1``.
    exact : bool
        Whether decoding is exact from *any* ``min_responders`` workers:
        true for ``sync``, ``frc``, ``cyclic`` and ``heterogeneous``, and
        for every scheme with ``redundancy == 1`` (then all workers are
        waited for).
    stragglers : int, optional
        How many of the slowest workers a round may ignore, when not
        ``redundancy - 1``: an approximate ``heterogeneous`` code ignores
        every likely straggler (:mod:`~dask_quorum.pipeline.coding.rotation`).
        In ``[0, n_workers - 1]``.
    unbiased : bool, default=False
        Scale the least-squares weights so that the decoded weights of the
        partitions add up to ``k`` (:func:`~dask_quorum.pipeline.coding.decoded_weights`
        with ``total=k``): a rotation of the assignment then makes the
        decoded sum unbiased over its period.  No change where decoding is
        exact.

    Attributes
    ----------
    n_workers, n_partitions : int
        Shape of ``B``.
    n_stragglers : int
        How many of the slowest workers a round may ignore
        (``stragglers``, by default ``redundancy - 1``).
    min_responders : int
        ``n_workers - n_stragglers``: a round never needs more answers.
    """

    scheme: str
    B: NDArray[np.float64]
    redundancy: int
    exact: bool
    stragglers: int | None = None
    unbiased: bool = False

    def __post_init__(self) -> None:
        B = np.array(self.B, dtype=np.float64)
        if B.ndim != 2 or 0 in B.shape:
            raise ValueError(f"B must be a non-empty 2-D array, got shape {B.shape}")
        if not 1 <= self.redundancy <= B.shape[0]:
            raise ValueError(
                f"redundancy must be in [1, n_workers={B.shape[0]}], got {self.redundancy}"
            )
        if self.stragglers is not None and not 0 <= self.stragglers < B.shape[0]:
            raise ValueError(
                f"stragglers must be in [0, n_workers - 1 = {B.shape[0] - 1}], got {self.stragglers}"
            )
        B.flags.writeable = False
        object.__setattr__(self, "B", B)

    @property
    def n_workers(self) -> int:
        return self.B.shape[0]

    @property
    def n_partitions(self) -> int:
        return self.B.shape[1]

    @property
    def n_stragglers(self) -> int:
        return self.redundancy - 1 if self.stragglers is None else int(self.stragglers)

    @property
    def min_responders(self) -> int:
        return self.n_workers - self.n_stragglers

    def __repr__(self) -> str:
        return (
            f"GradientCode(scheme={self.scheme!r}, n_workers={self.n_workers}, "
            f"n_partitions={self.n_partitions}, redundancy={self.redundancy}, "
            f"n_stragglers={self.n_stragglers}, exact={self.exact}"
            + (", unbiased=True" if self.unbiased else "")
            + ")"
        )

    def rotated(self, shift: int) -> GradientCode:
        """The same code with its partitions cyclically relabelled by ``shift``.

        Worker ``i`` of the result holds partition ``(j + shift) mod k``
        wherever this code's worker ``i`` holds ``j``:
        ``rotated(shift).B == numpy.roll(B, shift, axis=1)``.  Worker loads,
        redundancy, exactness and the error of every responder set are
        unchanged; only *which* partitions sit behind which workers changes.
        ``rotated(a).rotated(b)`` equals ``rotated(a + b)`` and
        ``rotated(k)`` equals the code itself.

        Rotating every few rounds (Johri, Yardi & Bodas, arXiv 2105.06124)
        keeps a persistently slow worker from always losing the same
        partitions, which would bias the decoded sum.

        Rotation moves data.  Going from shift ``s`` to ``s + 1``, worker
        ``i`` holding the set ``A_i`` must receive the partitions of
        ``A_i + 1`` that are not in ``A_i`` (and may drop as many): one per
        maximal run of cyclically consecutive partitions in ``A_i``, none
        if it holds all ``k``.  ``heterogeneous``, ``cyclic`` and ``frc``
        give every worker a single run, so one step moves exactly one
        replica per worker holding fewer than ``k`` partitions: at most
        ``n_workers`` of the ``redundancy * k`` replicas.  A random
        ``expander`` has mostly isolated partitions per worker and moves
        nearly all of its replicas.  A shift of ``m`` moves at most ``m``
        replicas per run.

        Parameters
        ----------
        shift : int
            Any integer; taken modulo ``n_partitions``.

        Returns
        -------
        GradientCode
        """
        if isinstance(shift, (bool, np.bool_)) or not isinstance(shift, Integral):
            raise ValueError(f"shift must be an integer, got {shift!r}")
        B = np.roll(self.B, int(shift) % self.n_partitions, axis=1)
        return replace(self, B=B)

    def assignment(self, worker: int) -> NDArray[np.intp]:
        """Partition indices held by ``worker`` (nonzero columns of its row)."""
        return np.flatnonzero(self.B[check_index(worker, self.n_workers, "worker")])

    def holders(self, partition: int) -> NDArray[np.intp]:
        """Worker indices holding ``partition`` (nonzero rows of its column)."""
        j = check_index(partition, self.n_partitions, "partition")
        return np.flatnonzero(self.B[:, j])

    def decode(self, responders: ArrayLike) -> NDArray[np.float64]:
        """Decoding weights, one per responder.

        Parameters
        ----------
        responders : sequence of int or boolean mask
            Distinct worker indices in any order, or a boolean mask of
            length ``n_workers``.

        Returns
        -------
        ndarray of shape (n_responders,)
            Weights in the order given (increasing worker index for a mask).
            ``sync`` and ``uncoded`` use the "ignore stragglers" estimator,
            ``k`` over the number of partitions the responders hold for
            every responder (``k / |S|`` when ``B = I``); the other schemes use the
            minimum-norm least-squares solution of ``B_S^T a = 1``, scaled
            so that ``B_S^T a`` adds up to ``k`` when ``unbiased``.

        Raises
        ------
        ValueError
            If ``responders`` is empty, not integer/boolean, out of range or
            has duplicates.
        """
        idx = self._responder_indices(responders)
        if idx.size == 0:
            raise ValueError("responders is empty: at least one worker must respond")
        return self._weights(idx)

    def error(self, responders: ArrayLike) -> float:
        """Decoding error ``||B_S^T a - 1||^2 / k`` with ``a = decode(responders)``.

        An empty responder set has error 1.0 (nothing is recovered).
        """
        idx = self._responder_indices(responders)
        if idx.size == 0:
            return 1.0
        residual = self.B[idx].T @ self._weights(idx) - 1.0
        return float(residual @ residual) / self.n_partitions

    def is_exact(self, responders: ArrayLike) -> bool:
        """Whether ``error(responders) < EXACT_TOL`` (``1e-10``)."""
        return self.error(responders) < EXACT_TOL

    def _weights(self, idx: NDArray[np.intp]) -> NDArray[np.float64]:
        if self.scheme in _RESCALED_SCHEMES:
            # k / (partitions the responders hold): k / |S| when B = I; a code
            # regrouped over fewer workers (coding.regroup) holds several.
            held = int(np.count_nonzero(self.B[idx].any(axis=0)))
            return np.full(idx.size, self.n_partitions / max(held, 1))
        ones = np.ones(self.n_partitions)
        a = np.linalg.lstsq(self.B[idx].T, ones, rcond=None)[0]
        if self.unbiased:
            # min ||B_S^T a - 1|| subject to 1^T B_S^T a = k is the plain
            # least-squares solution scaled by k / 1^T B_S^T a (see rotation.py)
            total = float(np.sum(self.B[idx].T @ a))
            if total > EXACT_TOL:
                a = a * (self.n_partitions / total)
        return a

    def _responder_indices(self, responders: ArrayLike) -> NDArray[np.intp]:
        arr = np.asarray(responders)
        if arr.ndim != 1:
            raise ValueError(
                f"responders must be a 1-D sequence of worker indices or a boolean mask, "
                f"got an array of shape {arr.shape}"
            )
        if arr.dtype == np.bool_:
            if arr.size != self.n_workers:
                raise ValueError(
                    f"boolean responders mask must have length n_workers={self.n_workers}, "
                    f"got {arr.size}"
                )
            return np.flatnonzero(arr)
        if arr.size == 0:
            return np.empty(0, dtype=np.intp)
        if arr.dtype.kind not in "iu":
            raise ValueError(f"responders must be integer worker indices, got dtype {arr.dtype}")
        bad = arr[(arr < 0) | (arr >= self.n_workers)]
        if bad.size:
            raise ValueError(
                f"responders out of range [0, {self.n_workers}): {sorted(set(bad.tolist()))}"
            )
        values, counts = np.unique(arr, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"duplicate responders: {values[counts > 1].tolist()}")
        return arr.astype(np.intp)
