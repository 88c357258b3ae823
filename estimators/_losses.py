"""Per-partition loss and gradient sums of the linear models (pure NumPy).

Each function returns one vector ``[sum of losses, gradient...]``: linear in
the rows, so the sum over partitions, which a coded round decodes, is the
full-data loss and gradient. With row weights the sums are weighted, and
the driver divides by the sum of the weights (scikit-learn's objective).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, logsumexp

LOSSES = ("logistic", "multinomial", "squared")

#: Bytes of float64 in one block of rows of :class:`GLMPartial` (a dense
#: partition is evaluated block by block; measured on 156,250 x 100 float32
#: rows, one core: 8.4 ms in blocks of 1,310 rows, 26 ms on the whole
#: partition converted once, 88 ms as NumPy's mixed float32 @ float64).
BLOCK_BYTES = 2**20


@dataclass(frozen=True)
class GLMPartial:
    """Loss and gradient sum of a linear model over one partition.

    Parameters are packed as a ``(n_features + fit_intercept, n_outputs)``
    matrix ``W`` raveled in C order; the last row is the intercept.

    Parameters
    ----------
    loss : {"logistic", "multinomial", "squared"}
        ``logistic``: y in {0, 1}; ``multinomial``: y in 0..n_outputs-1;
        ``squared``: 0.5 * residual**2.
    n_features : int
    n_outputs : int
        1 for logistic and squared, the number of classes for multinomial.
    fit_intercept : bool
    """

    loss: str
    n_features: int
    n_outputs: int
    fit_intercept: bool

    @property
    def n_params(self) -> int:
        """Length of the packed parameter vector."""
        return (self.n_features + self.fit_intercept) * self.n_outputs

    def unpack(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split packed parameters into ``(coef (n_features, n_outputs), intercept (n_outputs,))``."""
        W = np.asarray(params).reshape(self.n_features + self.fit_intercept, self.n_outputs)
        if self.fit_intercept:
            return W[:-1], W[-1]
        return W, np.zeros(self.n_outputs)

    def __call__(self, params: np.ndarray, part: tuple[Any, ...]) -> np.ndarray:
        """``[sum_i w_i loss_i, gradient...]`` over the rows of ``part = (X, y)`` or ``(X, y, w)``.

        A dense ``X`` is taken in blocks of :func:`block_rows` rows, each
        converted to float64 once and used for both products while it is
        in cache: float32 data is evaluated in float64 at about the cost
        of one pass over it (NumPy's mixed-precision ``X @ coef`` would
        convert the whole partition, twice per call, outside BLAS).
        """
        X, y = part[0], part[1]
        w = part[2] if len(part) > 2 else None
        coef, intercept = self.unpack(params)
        out = np.zeros(1 + self.n_params)
        n = X.shape[0]
        if n == 0:
            return out
        step = block_rows(X.shape[1]) if isinstance(X, np.ndarray) else n
        loss = 0.0
        grad = np.zeros((self.n_features, self.n_outputs))
        dsum = np.zeros(self.n_outputs)
        for start in range(0, n, step):
            rows = slice(start, start + step) if step < n else slice(None)
            Xb = X[rows]
            if isinstance(Xb, np.ndarray) and Xb.dtype != np.float64:
                Xb = Xb.astype(np.float64)
            block_loss, dZ = self._block(Xb, y[rows], None if w is None else w[rows], coef, intercept)
            loss += block_loss
            grad += np.asarray(Xb.T @ dZ)
            dsum += dZ.sum(axis=0)
        out[0] = loss
        if self.fit_intercept:
            grad = np.vstack([grad, dsum])
        out[1:] = grad.ravel()
        return out

    def _block(
        self, X: Any, y: np.ndarray, w: np.ndarray | None, coef: np.ndarray, intercept: np.ndarray
    ) -> tuple[float, np.ndarray]:
        """``(sum of (weighted) losses, d loss / d Z)`` on one block of rows."""
        Z = np.asarray(X @ coef) + intercept
        if self.loss == "logistic":
            z = Z[:, 0]
            losses = np.logaddexp(0.0, z) - y * z
            dZ = (expit(z) - y)[:, None]
        elif self.loss == "multinomial":
            lse = logsumexp(Z, axis=1)
            rows = np.arange(Z.shape[0])
            losses = lse - Z[rows, y]
            dZ = np.exp(Z - lse[:, None])
            dZ[rows, y] -= 1.0
        elif self.loss == "squared":
            r = Z[:, 0] - y
            losses = 0.5 * r * r
            dZ = r[:, None]
        else:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        if w is None:
            return float(np.sum(losses)), dZ
        return float(np.dot(w, losses)), dZ * w[:, None]


def block_rows(n_features: int) -> int:
    """Rows of a block of :class:`GLMPartial`: about :data:`BLOCK_BYTES` of float64."""
    return max(1, BLOCK_BYTES // (8 * max(int(n_features), 1)))


@dataclass(frozen=True)
class PenalisedMean:
    """Driver side: ``mean loss + 0.5 * l2 * ||coef||^2`` from a decoded sum.

    Parameters
    ----------
    partial : GLMPartial
    n_samples : float
        What the summed loss is divided by: the number of rows, or the sum
        of their weights when the partitions carry weights.
    l2 : float
        Penalty strength on the coefficients (never on the intercept).
    """

    partial: GLMPartial
    n_samples: float
    l2: float

    def __call__(self, params: np.ndarray, total: np.ndarray) -> tuple[float, np.ndarray]:
        coef, _ = self.partial.unpack(params)
        value = total[0] / self.n_samples + 0.5 * self.l2 * np.sum(coef * coef)
        grad = total[1:] / self.n_samples
        if self.l2:
            penalty = np.zeros_like(params).reshape(-1, self.partial.n_outputs)
            penalty[: self.partial.n_features] = self.l2 * coef
            grad = grad + penalty.ravel()
        return float(value), grad
