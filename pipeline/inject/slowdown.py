"""Slowdown specs: how a worker is slowed, as a seeded two-state Markov chain.

Holds :class:`Slowdown` (factor, delay and the chain's transition
probabilities), the chain itself (one uniform draw per task, from a
generator seeded by the injector's seed and the worker's identity) and
:func:`slow_states`, the state sequence a worker goes through under
:class:`~dask_quorum.pipeline.inject.StragglerInjector`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from ._checks import WorkerId, _check_number, _check_seed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slowdown:
    """How one worker is slowed down.

    A task executed while the worker is *slow* takes
    ``factor * natural + delay`` seconds instead of its natural time. Whether
    the worker is slow follows a two-state Markov chain that advances once
    per task the worker executes; the state of the first task is drawn from
    the chain's stationary distribution.

    Parameters
    ----------
    factor : float, default=1.0
        Slowdown factor, ``>= 1``: a slow task takes ``factor`` times its
        natural time.
    delay : float, default=0.0
        Extra seconds, ``>= 0``, added to every slow task. Needed for tiny
        tasks (10 x a 0.5 ms gradient is still nothing).
    p_slow_slow : float, default=1.0
        P(slow at task t+1 | slow at task t), in [0, 1].
    p_slow_fast : float, default=1.0
        P(slow at task t+1 | fast at task t), in [0, 1]. With both
        probabilities at 1 (the defaults) the worker is always slow.

    Raises
    ------
    ValueError
        On a factor below 1, a negative delay, a probability outside [0, 1],
        a non-finite number, or ``p_slow_slow=1, p_slow_fast=0`` (both states
        absorbing: the spec would not say whether the worker is slow).

    See Also
    --------
    slow_states : the state sequence a worker goes through.

    Examples
    --------
    >>> Slowdown(factor=5, p_slow_slow=0.75, p_slow_fast=0.25).slow_fraction
    0.5
    """

    factor: float = 1.0
    delay: float = 0.0
    p_slow_slow: float = 1.0
    p_slow_fast: float = 1.0

    def __post_init__(self) -> None:
        _check_number("factor", self.factor, 1.0)
        _check_number("delay", self.delay, 0.0)
        _check_number("p_slow_slow", self.p_slow_slow, 0.0, 1.0)
        _check_number("p_slow_fast", self.p_slow_fast, 0.0, 1.0)
        if self.p_slow_slow == 1 and self.p_slow_fast == 0:
            raise ValueError(
                "p_slow_slow=1 with p_slow_fast=0 makes both states absorbing, so "
                "the chain has no unique stationary distribution and the initial "
                "state is undefined; use p_slow_fast=1 for an always-slow worker, "
                "or leave the worker out for a never-slow one"
            )

    @property
    def slow_fraction(self) -> float:
        """Stationary probability of the slow state.

        ``p_slow_fast / (1 - p_slow_slow + p_slow_fast)``: the long-run
        fraction of slow tasks and the probability that the first task is
        slow.
        """
        return self.p_slow_fast / (1.0 - self.p_slow_slow + self.p_slow_fast)


class _Chain:
    """Two-state Markov chain, one uniform draw per step."""

    def __init__(self, slowdown: Slowdown, seed: int, worker: WorkerId):
        self._spec = slowdown
        digest = hashlib.sha256(str(worker).encode()).digest()
        entropy = int.from_bytes(digest, "little")
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, entropy]))
        self._slow: bool | None = None

    def step(self) -> bool:
        """Advance to the next task and return whether it is slow."""
        if self._slow is None:
            p = self._spec.slow_fraction
        elif self._slow:
            p = self._spec.p_slow_slow
        else:
            p = self._spec.p_slow_fast
        self._slow = bool(self._rng.random() < p)
        return self._slow



def slow_states(
    slowdown: Slowdown, n_tasks: int, *, worker: WorkerId, seed: int = 0
) -> np.ndarray:
    """States of the first ``n_tasks`` tasks a worker executes under injection.

    The same generator as
    :class:`~dask_quorum.pipeline.inject.StragglerInjector`: with equal
    ``seed`` and ``worker`` (the key used in the ``slowdowns`` mapping; ``0``
    and ``"0"`` are the same) the injector's log shows exactly this
    sequence.

    Parameters
    ----------
    slowdown : Slowdown
        The worker's spec.
    n_tasks : int
        Number of tasks, ``>= 0``.
    worker : str or int
        Worker identity as given in the spec (address or name).
    seed : int, default=0
        Seed of the injector.

    Returns
    -------
    numpy.ndarray of bool, shape (n_tasks,)
        ``True`` where the task is slow.

    Examples
    --------
    >>> slow_states(Slowdown(), 3, worker=0)  # always slow
    array([ True,  True,  True])
    >>> slow_states(Slowdown(p_slow_slow=0.0, p_slow_fast=0.0), 3, worker=0)
    array([False, False, False])
    """
    if not isinstance(slowdown, Slowdown):
        raise ValueError(f"slowdown must be a Slowdown, got {slowdown!r}")
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 0:
        raise ValueError(f"n_tasks must be a non-negative integer, got {n_tasks!r}")
    _check_seed(seed)
    chain = _Chain(slowdown, seed, worker)
    states = (chain.step() for _ in range(n_tasks))
    return np.fromiter(states, dtype=bool, count=n_tasks)
