"""Rotating an approximate code so that its decoded sum is unbiased over a period.

When the workers expected to answer do not hold every partition (too
little redundancy for them), a round decodes approximately from them:
the least-squares decoder picks ``a`` so that the decoded weights
``w = B_S^T a`` are as close as possible to all ones. With the same
persistent non-responders every round, a fixed assignment keeps losing
the *same* partitions: the decoded sum is biased. Johri, Yardi & Bodas
(arXiv 2105.06124) shuffle the assignment between rounds; here the
shuffle is a cyclic relabelling of the partitions
(:meth:`~dask_quorum.pipeline.coding.GradientCode.rotated`) by ``step``
every ``hold`` rounds, and the decoder is constrained so that the decoded
weights add up to ``k``.

Why that is unbiased. Let ``w`` be the decoded weights of the base code for
the responders ``S``. Under the code rotated by ``t * step`` partition
``j`` sits where partition ``j - t * step`` sat, so its weight is
``w[j - t * step]``. Over the ``k / g`` shifts of a period (``g =
gcd(step, k)``) partition ``j`` visits every position of its residue class
modulo ``g`` once; if the columns of ``B`` are equal within aligned blocks
of ``g`` partitions (always true for ``g = 1``; true for the block size
of a fractional-repetition-like code), its mean weight is ``sum(w) / k``.
Minimising ``||B_S^T a - 1||^2`` subject to ``1^T B_S^T a = k`` has the
closed form "plain least squares scaled by ``k / 1^T B_S^T a_ls``" (the
Lagrange condition is ``B_S B_S^T a = (1 - lambda) B_S 1``), so
``sum(w) = k`` and every partition's mean weight is exactly 1: the mean
decoded sum over a period is the true sum, for *any* fixed set of
non-responders (the rotation does not need to know who they are).

The cost, and the choice of period. Re-encoding moves the replicas that
change (:meth:`~dask_quorum.pipeline.engine.CodedSession.reencode`, worker
to worker). A shift by one moves one replica per worker holding a cyclic
run (``n`` of the ``r k`` replicas); a shift by the block size ``b`` of a
block code moves whole blocks (``n b``) but needs ``b`` times fewer steps:
over a full period both move about ``n k`` replicas, ``k / r`` times the
whole data. The only way to move less per round is a longer period:
:func:`choose_hold` keeps a step every ``hold`` rounds so that on average at
most a fraction ``budget`` of the replicas moves per round, i.e. a period
of about ``n k / (budget r k)`` rounds. The price is that the decoded sum
is unbiased over the period, not over shorter windows: within a period,
the lost partitions stay lost for ``hold`` rounds. For an optimiser that
averages over many rounds (and for one that re-fits the model every few
rounds) that is the right side of the trade-off; a period of one round
(move every round) would be unbiased sooner but move ``k / r`` times the
data per period. A swap schedule that only cycles partitions through the
positions the *expected* non-responders hold would move fewer replicas
still (``2 r b`` per step), but is unbiased only if the non-responders are
exactly the expected ones; the cyclic shift is robust to a wrong model.

Pure NumPy.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .code import EXACT_TOL, GradientCode

logger = logging.getLogger(__name__)

__all__ = ["MOVE_BUDGET", "Rotation", "block_size", "choose_hold", "decoded_weights", "replicas_moved"]

#: Default share of the replicas a rotation moves per round, on average.
MOVE_BUDGET: float = 0.05


def decoded_weights(code: GradientCode, responders: ArrayLike, *, total: float | None = None) -> NDArray[np.float64]:
    """Decoded weight of every partition, ``B_S^T a``, for the responders ``S``.

    Parameters
    ----------
    code : GradientCode
    responders : sequence of int or boolean mask
        As for :meth:`~dask_quorum.pipeline.coding.GradientCode.decode`.
    total : float, optional
        Constrain the weights to add up to ``total`` (``k`` for an unbiased
        rotation): the least-squares weights scaled by ``total / sum``.
        None uses the code's own decoder (:meth:`GradientCode.decode`).

    Returns
    -------
    ndarray of shape (n_partitions,)
        All ones when ``S`` decodes exactly; the decoded sum is
        ``weights @ g``.
    """
    idx = code._responder_indices(responders)
    if idx.size == 0:
        return np.zeros(code.n_partitions)
    w = code.B[idx].T @ code.decode(idx)
    if total is not None:
        s = float(w.sum())
        if s <= EXACT_TOL:
            raise ValueError("the responders hold no partition: their weights cannot add up to a total")
        w = w * (float(total) / s)
    return w


def block_size(code: GradientCode) -> int:
    """The largest ``b`` dividing ``k`` with equal columns in every aligned block of ``b`` partitions."""
    k = code.n_partitions
    for b in sorted((d for d in range(1, k + 1) if k % d == 0), reverse=True):
        blocks = code.B.reshape(code.n_workers, k // b, b)
        if (blocks == blocks[:, :, :1]).all():
            return b
    return 1  # pragma: no cover - b = 1 always qualifies


def replicas_moved(old: GradientCode, new: GradientCode) -> int:
    """Replicas ``new`` places that ``old`` did not (what re-encoding moves)."""
    return int(np.count_nonzero((new.B != 0) & (old.B == 0)))


@dataclass(frozen=True)
class Rotation:
    """A code shifted by ``step`` partitions every ``hold`` rounds.

    Parameters
    ----------
    base : GradientCode
        The code of rounds ``0 .. hold - 1``.
    step : int, default=1
        Partitions shifted per step; the columns of ``base`` must be equal
        within aligned blocks of ``gcd(step, k)`` partitions (see the module
        docstring), which :func:`block_size` tells.
    hold : int, default=1
        Rounds between steps, ``>= 1``.

    Attributes
    ----------
    n_steps : int
        Distinct codes of a period, ``k / gcd(step, k)``.
    period : int
        Rounds of a period, ``n_steps * hold``.
    """

    base: GradientCode
    step: int = 1
    hold: int = 1

    def __post_init__(self) -> None:
        for name in ("step", "hold"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, Integral) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        g = math.gcd(int(self.step), self.base.n_partitions)
        if block_size(self.base) % g:
            raise ValueError(
                f"step={self.step} shifts by multiples of {g} partitions, but the code's columns are "
                f"equal only within blocks of {block_size(self.base)}: the rotation would be biased"
            )

    @property
    def n_steps(self) -> int:
        return self.base.n_partitions // math.gcd(int(self.step), self.base.n_partitions)

    @property
    def period(self) -> int:
        return self.n_steps * int(self.hold)

    def shift_at(self, round_index: int) -> int:
        """The shift of round ``round_index`` (rounds counted from the base code's first)."""
        return (int(round_index) // int(self.hold)) % self.n_steps * int(self.step)

    def code_at(self, round_index: int) -> GradientCode:
        """The code of round ``round_index``."""
        return self.base.rotated(self.shift_at(round_index))

    def codes(self) -> list[GradientCode]:
        """The ``n_steps`` codes of a period, in order."""
        return [self.base.rotated(t * int(self.step)) for t in range(self.n_steps)]

    def moves_per_step(self) -> int:
        """Replicas one step moves (equal for every step: a shift is a relabelling)."""
        return replicas_moved(self.base, self.base.rotated(int(self.step)))

    def mean_weights(self, responders: ArrayLike) -> NDArray[np.float64]:
        """Each partition's decoded weight averaged over a period, the responders fixed.

        All ones when the base code's decoder is ``unbiased`` (or the
        responders decode exactly).
        """
        return np.mean([decoded_weights(c, responders) for c in self.codes()], axis=0)


def choose_hold(code: GradientCode, step: int, *, budget: float = MOVE_BUDGET) -> int:
    """Rounds between steps so that on average at most ``budget`` of the replicas move per round.

    Raises
    ------
    ValueError
        If ``budget`` is not in ``(0, 1]``.
    """
    if not 0.0 < float(budget) <= 1.0:
        raise ValueError(f"budget must be in (0, 1], got {budget!r}")
    replicas = int(np.count_nonzero(code.B))
    moved = replicas_moved(code, code.rotated(int(step)))
    return max(1, math.ceil(moved / (float(budget) * replicas)))
