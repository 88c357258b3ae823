"""The gradient workload of ASAP: gradient tracking with a curvature preconditioner.

Pure NumPy/SciPy; one :class:`TrackingProgram` per worker, driven by the
ASAP engine (:mod:`~dask_quorum.pipeline.asap.driver`) or by a plain loop over ``W`` (tests).

The problem is ``F(x) = mean_i f_i(x)`` with one local function per worker,
``f_i(x) = objective(x, n * partial(x, part_i))``: ``n`` times the worker's
share of the summed loss plus the whole penalty, so that the mean over the
workers is exactly the objective of the driver-centred schemes.

Algorithm
---------
Gradient tracking (DIGing: Nedic, Olshevsky & Shi, SIAM J. Optim. 2017),
with the averaging of ``x`` applied after the local step::

    x_i <- sum_j W_ij (x_j - alpha P_j y_j)
    y_i <- sum_j W_ij y_j + grad f_i(x_i, new) - grad f_i(x_i, old)

``y_i`` tracks the average gradient: ``W`` doubly stochastic keeps
``mean_i y_i = mean_i grad f_i(x_i)`` at every round, so a fixed point has
consensus and a zero average gradient, i.e. the exact optimum, with a
constant step (plain decentralised gradient descent only reaches a
neighbourhood of it).

The tracker travels as *mass*, not as a value: every round a worker keeps
``y_i / (d + 1)`` and adds the same share to a running sum ``sigma_i`` that
it sends; a receiver adds what arrived since the last reduce,
``sigma_j - (sigma_j seen before)``. With fresh versions that is exactly the
averaging above; a version reused under bounded staleness adds nothing, a
superseded one is not lost (the next running sum carries it), so the sum
of the trackers plus the mass in flight stays the sum of the gradients and
the fixed point stays exact under staleness too (a reused ``x`` version
does not matter at a fixed point). One message per round: ``[x - alpha P
y, sigma]``, 2 x n_params numbers.

Preconditioner ``P_i``: the inverse of the mean of two Hessian estimates at
the worker's own replica, refreshed every ``curvature_every`` rounds: one on
a *curvature sample* (uniform rows shared by all workers; subsampled Newton,
Byrd, Chin, Neveitt & Nocedal 2011; Roosta-Khorasani & Mahoney 2016), one
on the worker's own rows (at most as many, evenly spaced); block-diagonal
per class for the multinomial loss, diagonal beyond ``max_dense``
parameters. Any symmetric positive definite ``P_i``, even different per
worker and changing, leaves the fixed point exact (at a fixed point the
``y_i`` are a common ``y`` with ``sum_j W_ij P_j y = 0``, hence ``y = 0``):
``P`` only sets the speed. (All workers refresh in the same rounds: under
NOTIFY-ACK a refreshing worker delays its peers, so staggered refreshes
would slow every round instead of one in ``curvature_every``.) Because the own-rows estimate is half of
``P_i^-1``, a local Hessian is at most :func:`curvature_bound` in ``P_i``'s
metric (exactly so when the own estimate uses all rows, at refresh points),
and the step is ``alpha = step_scale * gap**2 / curvature_bound`` with
``gap`` the spectral gap of ``W``: gradient tracking is stable for
``alpha L`` of the order of ``(1 - sigma_2)**2`` (Qu & Li, IEEE TCNS 2018;
Pu & Nedic, Math. Prog. 2021).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from scipy.special import expit, softmax

logger = logging.getLogger(__name__)

__all__ = [
    "GLMSpec",
    "TrackingBuilder",
    "TrackingProgram",
    "curvature_bound",
    "curvature_sample",
    "hessian_blocks",
]


@dataclass(frozen=True)
class GLMSpec:
    """What the gradient workload needs to know about a linear model.

    Parameters
    ----------
    partial : callable
        ``partial(x, (X_j, y_j)) -> [sum of losses, gradient...]`` over rows
        (``GLMPartial`` of the estimators); must have attributes ``loss``
        (``"logistic"``, ``"multinomial"`` or ``"squared"``), ``n_features``,
        ``n_outputs`` and ``fit_intercept``.
    objective : callable
        ``objective(x, total) -> (value, gradient)``: the driver-side mean
        plus penalty (``PenalisedMean``).
    l2 : float
        Penalty on the coefficients (not the intercept), as in ``objective``.
    n_samples : int
        Rows of the whole data set (``objective`` divides the summed loss by it).
    n_workers : int
        Number of local functions ``f_i``.
    """

    partial: Callable[[np.ndarray, Any], np.ndarray]
    objective: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]
    l2: float
    n_samples: int
    n_workers: int

    def local(self, x: np.ndarray, part: Any) -> tuple[float, np.ndarray]:
        """``(f_i(x), grad f_i(x))`` on one worker's rows."""
        return self.objective(x, self.n_workers * np.asarray(self.partial(x, part), dtype=np.float64))


def curvature_bound(loss: str) -> float:
    """Upper bound of ``lambda_max(P_i H_i)``: a local Hessian in the metric of its preconditioner.

    ``P_i^-1 = (B_own + B_sample) / 2`` with ``B`` the blocks of
    :func:`hessian_blocks`, so ``H_i <= c B_own <= 2 c P_i^-1`` where ``c``
    bounds the Hessian by its blocks: 1 when the blocks are the exact
    Hessian (logistic, squared), 2 for the multinomial loss, whose per-row
    Hessian ``diag(p) - p p^T`` is at most ``2 diag(p (1 - p))`` (its
    quadratic form is ``sum_{k<l} p_k p_l (v_k - v_l)^2``, and
    ``(v_k - v_l)^2 <= 2 v_k^2 + 2 v_l^2``). Exact at the points where the
    preconditioner is refreshed.
    """
    return 4.0 if loss == "multinomial" else 2.0


def curvature_sample(X: Any, y: np.ndarray, rows: int, random_state: np.random.RandomState) -> tuple[Any, np.ndarray]:
    """A uniform sample of ``min(rows, n_samples)`` rows (all rows when fewer), in row order."""
    n = X.shape[0]
    if rows >= n:
        return X, y
    idx = np.sort(random_state.choice(n, size=rows, replace=False))
    return X[idx], y[idx]


def _with_intercept(X: Any, fit_intercept: bool) -> Any:
    if not fit_intercept:
        return X
    ones = np.ones((X.shape[0], 1))
    return sp.hstack([X, ones], format="csr") if sp.issparse(X) else np.hstack([X, ones])


def hessian_blocks(spec: GLMSpec, x: np.ndarray, sample: tuple[Any, np.ndarray], *, dense: bool) -> np.ndarray:
    """Hessian of the mean loss plus penalty on ``sample`` at ``x``, per output block.

    Returns
    -------
    ndarray
        ``(n_outputs, m, m)`` blocks (``m = n_features + fit_intercept``)
        when ``dense``, else ``(n_outputs, m)`` diagonals. The multinomial
        loss keeps the diagonal blocks ``A^T diag(p_k (1 - p_k)) A`` of its
        Hessian and drops the cross-class ones (the bound
        ``diag(p) - p p^T <= diag(p)`` is safe but, for a confident model,
        far too flat to be a useful preconditioner).
    """
    partial = spec.partial
    Xs, ys = sample
    A = _with_intercept(Xs, partial.fit_intercept)
    m, K = A.shape[1], partial.n_outputs
    W = np.asarray(x).reshape(m, K)
    Z = np.asarray(A @ W)
    if partial.loss == "logistic":
        s = expit(Z[:, 0])
        weights = (s * (1 - s))[:, None]
    elif partial.loss == "multinomial":
        prob = softmax(Z, axis=1)
        weights = prob * (1 - prob)
    elif partial.loss == "squared":
        weights = np.ones((A.shape[0], 1))
    else:
        raise ValueError(f"no curvature for loss {partial.loss!r}")
    rows = max(A.shape[0], 1)
    penalty = _penalty(spec, m)
    out = []
    for k in range(K):
        d = weights[:, k] / rows
        if dense:
            Ad = A.multiply(d[:, None]) if sp.issparse(A) else A * d[:, None]
            H = np.asarray((A.T @ Ad).todense() if sp.issparse(Ad) else A.T @ Ad)
            H[np.diag_indices(m)] += penalty
            out.append(H)
        else:
            sq = A.multiply(A) if sp.issparse(A) else A * A
            out.append(np.asarray(sq.T @ d).ravel() + penalty)
    return np.array(out)


def _penalty(spec: GLMSpec, m: int) -> np.ndarray:
    """Diagonal of the penalty's Hessian over one output block (0 for the intercept)."""
    penalty = np.full(m, spec.l2)
    if spec.partial.fit_intercept:
        penalty[-1] = 0.0
    return penalty


class _Preconditioner:
    """``P = H^-1`` for Hessian blocks, with a floor on tiny eigenvalues."""

    def __init__(self, blocks: np.ndarray, dense: bool) -> None:
        self.dense = dense
        # A relative floor keeps P bounded where the sample has no curvature
        # (an unpenalised intercept of a saturated model, unused features).
        if dense:
            scale = max(float(np.max([np.trace(b) for b in blocks])) / blocks.shape[1], 1e-300)
            self._factors = []
            for b in blocks:
                b = b + 1e-8 * scale * np.eye(b.shape[0])
                self._factors.append(scipy.linalg.cho_factor(b, lower=True, check_finite=False))
        else:
            scale = max(float(blocks.mean()), 1e-300)
            self._inv = 1.0 / np.maximum(blocks, 1e-8 * scale)

    def __call__(self, v: np.ndarray, K: int) -> np.ndarray:
        V = v.reshape(-1, K)
        if self.dense:
            out = np.column_stack(
                [scipy.linalg.cho_solve(f, V[:, k], check_finite=False) for k, f in enumerate(self._factors)]
            )
        else:
            out = self._inv.T * V
        return out.ravel()


class TrackingProgram:
    """One worker's gradient tracking (see the module docstring).

    Parameters
    ----------
    spec : GLMSpec
    part : tuple
        The worker's rows ``(X_i, y_i)``.
    sample : tuple
        The shared curvature sample ``(X_s, y_s)``.
    x0 : ndarray
        Starting parameters (the same on every worker).
    n_peers : int
        In-degree of the worker (its reduce averages ``n_peers + 1`` versions).
    curvature_every : int
        Rounds between refreshes of the preconditioner.
    max_dense : int
        Dense Hessian blocks up to this many rows/columns, diagonal beyond.
    message_dtype : str, default="float64"
        Floating-point type of the messages. ``"float32"`` halves the bytes;
        the tracker's mass is still conserved up to one rounding of its
        running sum (receivers take differences of the rounded sums, which
        telescope), so the fixed point moves by float32 precision only.

    Attributes
    ----------
    x, y, g : ndarray
        Replica, gradient tracker and local gradient at ``x``.
    value : float
        ``f_i(x)``.
    alpha : float
        Step, set by :meth:`set_step` before the first message.
    """

    def __init__(
        self,
        spec: GLMSpec,
        part: tuple[Any, np.ndarray],
        sample: tuple[Any, np.ndarray],
        x0: np.ndarray,
        *,
        n_peers: int,
        curvature_every: int,
        max_dense: int,
        message_dtype: str = "float64",
    ) -> None:
        self.spec = spec
        self.dtype = np.dtype(message_dtype)
        self.part = part
        # The local Hessian is estimated on at most as many of the worker's
        # rows as the shared sample has (evenly spaced): refreshing it costs
        # no more than the sample's, whatever the partition's size.
        rows = part[0].shape[0]
        keep = max(int(sample[0].shape[0]), 1)
        if rows > keep:
            idx = np.linspace(0, rows - 1, keep).round().astype(int)
            self._own = (part[0][idx], part[1][idx])
        else:
            self._own = part[:2]  # (X, y): the weights of (X, y, w) do not enter the preconditioner
        self.sample = sample
        self.n_peers = n_peers
        self.curvature_every = max(1, int(curvature_every))
        m = spec.partial.n_features + spec.partial.fit_intercept
        self.dense = m <= max_dense
        self.K = spec.partial.n_outputs
        self.x = np.array(x0, dtype=np.float64)
        self.value, self.g = spec.local(self.x, part)
        self.y = self.g.copy()
        self.alpha = np.nan
        self.rounds = 0
        self._P = self._precondition()
        # Tracker mass pushed to the out-peers so far (each gets 1 / (d + 1)
        # of y per round), and what arrived from each in-peer so far.
        self.sigma = np.zeros_like(self.y)
        self._rho: dict[int, np.ndarray] = {}

    @property
    def units(self) -> float:
        """Rows this worker's gradient reads."""
        return float(self.part[0].shape[0])

    def _precondition(self) -> _Preconditioner:
        sample = hessian_blocks(self.spec, self.x, self.sample, dense=self.dense)
        own = hessian_blocks(self.spec, self.x, self._own, dense=self.dense)
        # hessian_blocks averages the loss over the rows it gets and adds the
        # whole penalty; f_i weighs its rows by n / N: rescale the loss part.
        weight = self.spec.n_workers * self.part[0].shape[0] / self.spec.n_samples
        penalty = _penalty(self.spec, own.shape[1])
        if self.dense:
            penalty = np.diag(penalty)
        own = weight * (own - penalty) + penalty
        return _Preconditioner(0.5 * (own + sample), self.dense)

    def set_step(self, alpha: float) -> None:
        """Fix the step ``alpha`` (the same on every worker)."""
        if not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"the step must be a positive number, got {alpha!r}")
        self.alpha = float(alpha)

    # -- the engine's interface -------------------------------------------
    def message(self) -> np.ndarray:
        """This round's version: ``[x - alpha P y, sigma]``, pushing ``y / (d + 1)`` into ``sigma``.

        Call once per round, before :meth:`step`.
        """
        self.sigma = self.sigma + self.y / (self.n_peers + 1)
        return np.concatenate([self.x - self.alpha * self._P(self.y, self.K), self.sigma]).astype(self.dtype)

    def step(self, own: np.ndarray, received: Mapping[int, np.ndarray]) -> None:
        """Average with the in-peers' versions, then one local gradient evaluation.

        ``x`` is the plain average of the versions' first halves. The
        tracker takes the mass that arrived since the last reduce,
        ``sigma_j - (sigma_j seen before)``, from each in-peer: with fresh
        versions this is exactly the averaging ``(y_i + sum_j y_j) / (d +
        1)``; a reused version adds nothing and a skipped one is not lost,
        so ``sum_i y_i`` plus the mass in flight stays ``sum_i grad f_i``
        under staleness too.
        """
        p = self.x.size
        x = own[:p].astype(np.float64)
        y = self.y / (self.n_peers + 1)
        for j, v in received.items():
            x += v[:p]
            sigma = v[p:].astype(np.float64)
            before = self._rho.get(j)
            y += sigma if before is None else sigma - before
            self._rho[j] = sigma
        self.x = x / (len(received) + 1)
        value, g = self.spec.local(self.x, self.part)
        self.y = y + g - self.g
        self.g, self.value = g, value
        self.rounds += 1
        if self.rounds % self.curvature_every == 0:
            self._P = self._precondition()

    def residual(self) -> float:
        """Largest component of the tracked gradient (the stopping test's number)."""
        return float(np.max(np.abs(self.y))) if self.y.size else 0.0

    def snapshot(self) -> np.ndarray:
        """What the history keeps per round: the replica."""
        return self.x.copy()


@dataclass(frozen=True)
class TrackingBuilder:
    """Builds a worker's :class:`TrackingProgram` on the worker (shipped once per fit).

    Parameters
    ----------
    spec : GLMSpec
    sample : tuple
        The curvature sample, shared by every worker.
    x0 : ndarray
    alpha : float
        The step.
    curvature_every, max_dense : int
        See :class:`TrackingProgram`.
    message_dtype : str
        See :class:`TrackingProgram`.
    """

    spec: GLMSpec
    sample: tuple[Any, np.ndarray]
    x0: np.ndarray
    alpha: float
    curvature_every: int
    max_dense: int
    message_dtype: str = "float64"

    def build(self, index: int, part: tuple[Any, np.ndarray], in_peers: Any) -> TrackingProgram:
        program = TrackingProgram(
            self.spec, part, self.sample, self.x0,
            n_peers=len(in_peers), curvature_every=self.curvature_every, max_dense=self.max_dense,
            message_dtype=self.message_dtype,
        )
        program.set_step(self.alpha)
        return program
