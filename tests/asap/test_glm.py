"""The gradient workload of ASAP in lock step (pure NumPy, no cluster)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
from dask_quorum.estimators._losses import GLMPartial, PenalisedMean
from dask_quorum.pipeline.asap import (
    GLMSpec,
    TrackingBuilder,
    curvature_bound,
    curvature_sample,
    make_graph,
)
from dask_quorum.pipeline.engine import row_partitions
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.preprocessing import StandardScaler


def _problem(name):
    if name == "logistic":
        X, y = load_breast_cancer(return_X_y=True)
        return StandardScaler().fit_transform(X), y.astype(float), "logistic", 1, 1.0 / len(y)
    if name == "multinomial":
        X, y = load_iris(return_X_y=True)
        return StandardScaler().fit_transform(X), y, "multinomial", 3, 1.0 / len(y)
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), y.astype(float), "squared", 1, 0.0


def _setup(name, n, dtype="float64"):
    X, y, loss, K, l2 = _problem(name)
    partial = GLMPartial(loss, X.shape[1], K, True)
    objective = PenalisedMean(partial, len(y), l2)
    graph = make_graph(n)
    spec = GLMSpec(partial, objective, l2, len(y), n)
    sample = curvature_sample(X, y, 20 * (X.shape[1] + 1), np.random.RandomState(0))
    alpha = graph.spectral_gap**2 / curvature_bound(loss)
    builder = TrackingBuilder(spec, sample, np.zeros(partial.n_params), alpha, 10, 2000, dtype)
    parts = row_partitions(X, y, n)
    programs = [builder.build(i, parts[i], graph.in_peers(i)) for i in range(n)]

    def full(x):
        return objective(x, partial(x, (X, y)))

    return programs, graph, full, spec, parts


def _lockstep(programs, graph, rounds):
    for _ in range(rounds):
        msgs = [p.message() for p in programs]
        for i, p in enumerate(programs):
            p.step(msgs[i], {j: msgs[j] for j in graph.in_peers(i)})
    return np.mean([p.x for p in programs], axis=0)


@pytest.mark.parametrize("name", ["logistic", "multinomial", "squared"])
def test_tracking_reaches_the_optimum_with_a_constant_step(name):
    programs, graph, full, _, _ = _setup(name, 5)
    opt = scipy.optimize.minimize(
        full, np.zeros(programs[0].x.size), jac=True, method="L-BFGS-B",
        options={"gtol": 1e-12, "ftol": 1e-16, "maxiter": 10_000},
    ).fun
    xbar = _lockstep(programs, graph, 600)
    value, grad = full(xbar)
    assert value == pytest.approx(opt, rel=1e-9)
    assert np.abs(grad).max() < 1e-6
    # the replicas agree, and every tracker is the (zero) average gradient
    assert max(np.linalg.norm(p.x - xbar) for p in programs) < 1e-6
    assert max(p.residual() for p in programs) < 1e-6


def test_float32_messages_move_the_answer_by_rounding_only():
    exact, graph, full, _, _ = _setup("logistic", 5)
    rounded, _, _, _, _ = _setup("logistic", 5, "float32")
    a, b = _lockstep(exact, graph, 600), _lockstep(rounded, graph, 600)
    assert rounded[0].message().dtype == np.float32  # (message() pushes mass: only after the run)
    assert full(b)[0] == pytest.approx(full(a)[0], rel=1e-9)
    assert np.abs(full(b)[1]).max() < 1e-5


@pytest.mark.parametrize("name", ["logistic", "multinomial", "squared"])
def test_local_curvature_stays_within_the_bound_the_step_uses(name):
    """lambda_max(P_i H_i) <= curvature_bound: the step rule relies on it."""
    programs, _, _, spec, parts = _setup(name, 4)
    rng = np.random.default_rng(0)
    for i, program in enumerate(programs):
        x = program.x + 0.3 * rng.standard_normal(program.x.size)  # not only at 0
        program.x = x
        program._P = program._precondition()
        h = 1e-5
        cols = [
            (spec.local(x + h * e, parts[i])[1] - spec.local(x - h * e, parts[i])[1]) / (2 * h)
            for e in np.eye(x.size)
        ]
        H_i = np.column_stack(cols)  # the true local Hessian, by central differences
        P_H = np.column_stack([program._P(col, program.K) for col in H_i.T])
        top = np.max(np.linalg.eigvals(P_H).real)
        assert top <= curvature_bound(spec.partial.loss) * (1 + 1e-5)
        assert top >= 0.5  # and the bound is not vacuous


def test_step_must_be_positive():
    programs, *_ = _setup("squared", 2)
    with pytest.raises(ValueError, match="positive"):
        programs[0].set_step(0.0)
