"""The simplest ASAP program, gossip averaging: what the protocol and the transport are tested with.

Each worker starts from a vector and replaces it, every round, by the mean
of its own version and its in-peers' versions. Under strict NOTIFY-ACK the
workers compute exactly ``x <- W x`` (``W`` from
:func:`~dask_quorum.pipeline.asap.make_graph`) and agree on the mean of the
starting vectors; nothing else is involved. It plugs into
:func:`~dask_quorum.pipeline.asap.run_asap` like any workload: a picklable
builder, ``builder.build(index, payload, in_peers) -> program``. Importable
from the tests as ``averaging`` (pyproject's ``pythonpath = ["tests"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["AveragingBuilder", "AveragingProgram"]


class AveragingProgram:
    """Average with the in-peers every round.

    Parameters
    ----------
    x : array-like
        The starting vector.
    """

    units = 1.0

    def __init__(self, x: Any) -> None:
        self.x = np.array(x, dtype=float)
        self.value = 0.0

    def message(self) -> np.ndarray:
        return self.x.copy()

    def step(self, own: np.ndarray, received: Mapping[int, np.ndarray]) -> None:
        total = own.copy()
        for j in sorted(received):
            total += received[j]
        self.x = total / (len(received) + 1)

    def residual(self) -> float:
        """Never below a positive ``tol``: an averaging run stops at ``max_rounds``."""
        return np.inf

    def snapshot(self) -> np.ndarray:
        return self.x.copy()


class AveragingBuilder:
    """Builds an :class:`AveragingProgram` from the worker's payload (its starting vector)."""

    def build(self, index: int, payload: Any, in_peers: Sequence[int]) -> AveragingProgram:
        return AveragingProgram(payload)
