"""L-BFGS driven by rounds: every evaluation of the objective is one round."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize

logger = logging.getLogger(__name__)


@dataclass
class SolverResult:
    """Outcome of :func:`lbfgs`.

    Attributes
    ----------
    x : ndarray
        Final parameters.
    n_iter : int
        L-BFGS iterations (each takes one or more rounds).
    converged : bool
        Whether the gradient tolerance was met.
    message : str
        The optimiser's own explanation.
    losses : list of float
        Objective value of every round, in order.
    params : list of ndarray
        Parameters of every round, when ``keep_params`` was set.
    """

    x: np.ndarray
    n_iter: int
    converged: bool
    message: str
    losses: list[float] = field(default_factory=list)
    params: list[np.ndarray] = field(default_factory=list)


def lbfgs(
    round_sum: Callable[[np.ndarray], np.ndarray],
    objective: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    keep_params: bool = False,
) -> SolverResult:
    """Minimise ``objective`` with L-BFGS, one round per evaluation.

    Parameters
    ----------
    round_sum : callable
        ``round_sum(x)`` runs one round at parameters ``x`` and returns the
        decoded sum of the partial results.
    objective : callable
        ``objective(x, total) -> (value, gradient)`` turns that sum into the
        objective and its gradient (adds the penalty, normalises).
    x0 : ndarray
        Starting parameters.
    max_iter : int
        Maximum number of L-BFGS iterations.
    tol : float
        Stop when the largest gradient component is at most ``tol``.
    keep_params : bool, default=False
        Record the parameters of every round in ``result.params``.
    """
    losses: list[float] = []
    params: list[np.ndarray] = []

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = objective(x, round_sum(x))
        losses.append(float(value))
        if keep_params:
            params.append(x.copy())
        return value, grad

    res = scipy.optimize.minimize(
        fun,
        np.asarray(x0, dtype=np.float64),
        jac=True,
        method="L-BFGS-B",
        options={
            "maxiter": max_iter,
            "maxls": 50,
            "gtol": tol,
            "ftol": 64 * np.finfo(float).eps,
        },
    )
    message = res.message if isinstance(res.message, str) else res.message.decode()
    return SolverResult(
        x=res.x,
        n_iter=int(res.nit),
        converged=res.status == 0,
        message=message,
        losses=losses,
        params=params,
    )
