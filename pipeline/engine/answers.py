"""The answers one round has taken, and the rule that stops the round.

A round (:class:`~dask_quorum.pipeline.engine.RoundRunner`) takes results
in the order they arrive and stops at the first of:

* the responders decode exactly (``"exact"``);
* their decoding error is at most ``decode_tol`` (``"tolerance"``);
* ``code.min_responders`` workers answered (``"quorum"``: approximate codes
  decode the best estimate those answers allow);
* the soft deadline passed with at least one answer (``"deadline"``, decided
  by the runner, which keeps the clock).

:class:`Answers` keeps the responders and their results and applies the
first three; the least squares behind ``code.error`` run only when the
responders could stop the round. :func:`can_finish` says whether the
workers left after a loss can still stop a round.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..coding import EXACT_TOL, GradientCode


class Answers:
    """The results one round has taken so far, and whether they suffice.

    Parameters
    ----------
    code : GradientCode
        The code the round runs (``n_workers x n_partitions``).
    columns : sequence of array of int
        Per worker, the partitions it holds (``Placement.columns``).
    decode_tol : float
        Stop as soon as the responders decode with at most this error.

    Attributes
    ----------
    responders : list of int
        Workers whose results were taken, in the order they arrived.
    results : list of ndarray
        Their results, in the same order.
    error : float
        Normalised decoding error of the responders, as last computed (1.0
        before it is).
    """

    def __init__(self, code: GradientCode, columns: Sequence[np.ndarray], decode_tol: float) -> None:
        self.code = code
        self.columns = columns
        self.decode_tol = float(decode_tol)
        self.responders: list[int] = []
        self.results: list[np.ndarray] = []
        self.error = 1.0
        # Replicas of each partition among the responders: a set that misses
        # a partition cannot decode exactly, so it needs no least squares
        # (unless a decoding tolerance could stop the round early).
        self._covered = np.zeros(code.n_partitions, dtype=int)

    def take(self, i: int, value: np.ndarray) -> str | None:
        """Take worker ``i``'s result; why the round stops now, or None to wait for more.

        Returns
        -------
        str or None
            ``"exact"``, ``"tolerance"``, ``"quorum"`` or None.
        """
        self.responders.append(i)
        self.results.append(value)
        self._covered[self.columns[i]] += 1
        enough = len(self.responders) >= self.code.min_responders
        if self._covered.min() == 0 and self.decode_tol <= 0 and not enough:
            return None
        self.error = self.code.error(self.responders)
        if self.error <= EXACT_TOL:
            return "exact"
        if self.error <= self.decode_tol:
            return "tolerance"
        if enough:
            return "quorum"
        return None

    def at_deadline(self) -> str:
        """Stop with the answers taken (at least one): their error, approximate decoding."""
        self.error = self.code.error(self.responders)
        return "deadline"

    def decode(self) -> np.ndarray:
        """The decoded sum of the results taken (exact when :attr:`error` is 0)."""
        weights = self.code.decode(self.responders)
        total = weights[0] * self.results[0]
        for w, r in zip(weights[1:], self.results[1:]):
            total = total + w * r
        return total


def can_finish(code: GradientCode, alive: Sequence[int], has_deadline: bool) -> bool:
    """Whether the workers ``alive`` (indices into the code) can still stop a round.

    They can when there are any and they are enough for the quorum, or a
    soft deadline will stop the round with whatever they answer, or they
    decode exactly.
    """
    return bool(alive) and (
        len(alive) >= code.min_responders or has_deadline or code.error(alive) <= EXACT_TOL
    )
