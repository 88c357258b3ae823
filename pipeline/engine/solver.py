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
    restarts: int = 0,
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
        Maximum number of L-BFGS iterations (over all restarts).
    tol : float
        Stop when the largest gradient component is at most ``tol``.
    keep_params : bool, default=False
        Record the parameters of every round in ``result.params``.
    restarts : int, default=0
        How many times L-BFGS starts afresh (empty memory, from its last
        point) after stopping short of ``tol`` (its line search failed, or
        its relative-reduction test fired) with iterations left. Approximately decoded rounds
        return values and gradients that are not exactly those of one
        function; the curvature pairs built from them can then point the
        line search nowhere, which ends a plain L-BFGS run far from the
        optimum. A restart that does not lower the objective ends the fit.

    Notes
    -----
    Restarts are for approximate codes; with exact rounds a failed line
    search means the objective is flat to rounding, and 0 is right.
    """
    losses: list[float] = []
    params: list[np.ndarray] = []

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = objective(x, round_sum(x))
        losses.append(float(value))
        if keep_params:
            params.append(x.copy())
        return value, grad

    x = np.asarray(x0, dtype=np.float64)
    n_iter, left, best = 0, int(restarts), np.inf
    while True:
        res = scipy.optimize.minimize(
            fun,
            x,
            jac=True,
            method="L-BFGS-B",
            options={
                "maxiter": max(1, max_iter - n_iter),
                "maxls": 50,
                "gtol": tol,
                "ftol": 64 * np.finfo(float).eps,
            },
        )
        n_iter += int(res.nit)
        message = res.message if isinstance(res.message, str) else res.message.decode()
        improved = not np.isfinite(best) or float(res.fun) < best - 1e-12 * max(1.0, abs(best))
        best = min(best, float(res.fun))
        # stopped short: a failed line search, or a "relative reduction"
        # stop fooled by values that do not come from one function
        short = res.status in (0, 2) and float(np.max(np.abs(res.jac), initial=0.0)) > tol
        if not short or left <= 0 or n_iter >= max_iter or not improved:
            break
        left -= 1
        logger.debug("L-BFGS restart after %d iterations (%s); objective %.10g", n_iter, message, res.fun)
        x = res.x
    return SolverResult(
        x=res.x,
        n_iter=n_iter,
        converged=res.status == 0,
        message=message,
        losses=losses,
        params=params,
    )
