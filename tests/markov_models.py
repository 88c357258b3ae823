"""A straggler model as the planner sees it, for the planning tests (tests/planning)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MarkovModel:
    """A fitted straggler model as plan() sees it: a plain data object.

    Worker ``i`` is slow or fast following a two-state Markov chain
    (``P(slow | slow) = stay_slow[i]``, ``P(slow | fast) = become_slow[i]``);
    fast rounds take ``shift + Exp(scale)`` seconds per row, slow ones
    ``slowdown`` times that.
    """

    stay_slow: np.ndarray
    become_slow: np.ndarray
    slowdown: float = 10.0
    shift: float = 1e-3
    scale: float = 5e-5
    workers: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.stay_slow = np.asarray(self.stay_slow, dtype=float)
        self.become_slow = np.asarray(self.become_slow, dtype=float)
        self.workers = [f"tcp://10.0.0.{i}:8786" for i in range(self.stay_slow.size)]

    @property
    def p(self) -> np.ndarray:
        """Stationary probability of the slow state."""
        denom = 1.0 - self.stay_slow + self.become_slow
        return np.divide(self.become_slow, denom, out=np.ones_like(denom), where=denom > 0)

    def sample(self, n_rounds: int, random_state=None) -> np.ndarray:
        rng = np.random.default_rng(random_state)
        n = self.stay_slow.size
        slow = rng.random(n) < self.p
        out = np.empty((n_rounds, n))
        for t in range(n_rounds):
            fast = self.shift + rng.exponential(self.scale, n)
            out[t] = fast * np.where(slow, self.slowdown, 1.0)
            u = rng.random(n)
            slow = np.where(slow, u < self.stay_slow, u < self.become_slow)
        return out


def persistent(n: int, slow: list[int], **kwargs) -> MarkovModel:
    """Workers in ``slow`` are slow in every round, the others never."""
    flags = np.isin(np.arange(n), slow).astype(float)
    return MarkovModel(flags, flags, **kwargs)
