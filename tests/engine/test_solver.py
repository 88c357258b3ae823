"""Tests of dask_quorum.pipeline.engine.solver (L-BFGS over rounds); pure NumPy, no cluster."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.engine import lbfgs


def _least_squares(noisy_rounds: int, dropped: float = 0.05):
    """A least-squares problem whose first ``noisy_rounds`` rounds decode approximately.

    Such a round drops a random ``dropped`` share of the rows and rescales, as
    an approximate code does before the fit's re-encoding makes it exact.
    """
    rng = np.random.default_rng(0)
    n, d = 200, 20
    A = rng.standard_normal((n, d)) @ np.diag(np.logspace(0, 2, d))
    b = rng.standard_normal(n)
    x_opt = np.linalg.lstsq(A, b, rcond=None)[0]
    calls = [0]

    def round_sum(x):
        calls[0] += 1
        keep = np.random.default_rng(calls[0]).random(n) >= (dropped if calls[0] <= noisy_rounds else 0.0)
        r = A[keep] @ x - b[keep]
        scale = n / keep.sum()
        return np.r_[0.5 * scale * r @ r, scale * A[keep].T @ r]

    def true_loss(x):
        return 0.5 * float(np.sum((A @ x - b) ** 2))

    return round_sum, (lambda x, total: (total[0], total[1:])), true_loss, true_loss(x_opt), d


def test_restarts_carry_lbfgs_past_approximate_rounds_to_the_optimum():
    results = {}
    for restarts in (0, 10):
        round_sum, objective, true_loss, optimum, d = _least_squares(noisy_rounds=12)
        res = lbfgs(round_sum, objective, np.zeros(d), max_iter=300, tol=1e-8, restarts=restarts)
        results[restarts] = (true_loss(res.x) / optimum - 1, res)
    gap_plain, plain = results[0]
    gap_restarted, restarted = results[10]
    # plain L-BFGS stops inside the approximate phase, far above the optimum ...
    assert gap_plain > 1e-2 and len(plain.losses) <= 12
    # ... restarted from its last point it goes on once the rounds are exact
    assert gap_restarted < 1e-6
    assert restarted.n_iter > plain.n_iter


def test_exact_rounds_never_restart():
    round_sum, objective, true_loss, optimum, d = _least_squares(noisy_rounds=0)
    a = lbfgs(round_sum, objective, np.zeros(d), max_iter=300, tol=1e-6, restarts=0)
    round_sum, objective, true_loss, optimum, d = _least_squares(noisy_rounds=0)
    b = lbfgs(round_sum, objective, np.zeros(d), max_iter=300, tol=1e-6, restarts=10)
    assert a.message == b.message and a.n_iter == b.n_iter
    assert a.losses == b.losses  # the same path, round for round: nothing to restart
    assert true_loss(a.x) / optimum - 1 < 1e-6


@pytest.mark.parametrize("restarts", [0, 3])
def test_max_iter_bounds_every_restart_together(restarts):
    round_sum, objective, _, _, d = _least_squares(noisy_rounds=10**9, dropped=0.2)
    res = lbfgs(round_sum, objective, np.zeros(d), max_iter=8, tol=1e-12, restarts=restarts)
    assert res.n_iter <= 8
