"""Shared pieces of the benchmarks: the problem, the true objective, the plots."""

from __future__ import annotations

import csv
import os
import warnings
from time import perf_counter

import dask
import numpy as np
from sklearn.exceptions import ConvergenceWarning


def make_data(n_samples: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A binary problem with correlated features (condition number ~1e3), so
    that L-BFGS needs tens of rounds, as on real data."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
    X = rng.standard_normal((n_samples, n_features)) @ (Q * np.logspace(0, 1.5, n_features)) @ Q.T
    w = rng.standard_normal(n_features) / np.sqrt(n_features)
    y = (rng.random(n_samples) < 1 / (1 + np.exp(-(X @ w) * 3))).astype(int)
    return X, y


def objective(params: np.ndarray, X: np.ndarray, y: np.ndarray, C: float) -> float:
    coef, intercept = params[:-1], params[-1]
    z = X @ coef + intercept
    return float(np.mean(np.logaddexp(0, z) - y * z) + coef @ coef / (2 * C * len(y)))


def true_losses(history, X, y, C) -> np.ndarray:
    """The full-data objective at every round's parameters."""
    return np.array([objective(p, X, y, C) for p in history["params"].values])


def time_to_target(history, losses, target) -> tuple[float, int]:
    """(seconds, rounds) until the objective first reaches ``target``; (inf, -1) when never."""
    hit = np.flatnonzero(losses <= target)
    if hit.size == 0:
        return float("inf"), -1
    r = int(hit[0])
    return float(history["elapsed"].values[r]), r + 1


def plot(curves, f_opt, path, title) -> None:
    """Suboptimality against time, one line per scheme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for scheme, (elapsed, losses) in curves.items():
        ax.semilogy(elapsed, np.maximum(losses / f_opt - 1, 1e-9), label=scheme)
    ax.axhline(1e-3, color="grey", linestyle=":", label="target 1.001 x optimum")
    ax.set_xlabel("seconds")
    ax.set_ylabel("loss / optimum - 1")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fit_measured(est, X, y, C, target):
    """Fit ``est`` keeping every iterate; return the history, true losses and timings.

    Returns ``(history, losses, seconds_to_target, rounds_to_target, fit_seconds)``.
    """
    start = perf_counter()
    with dask.config.set({"quorum.history.keep-params": True}), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    fit_seconds = perf_counter() - start
    h = est.history_
    losses = true_losses(h, X, y, C)
    seconds, rounds = time_to_target(h, losses, target)
    return h, losses, seconds, rounds, fit_seconds


def result_cells(row: dict, base: float) -> str:
    """Markdown cells from time to target to the speed-up over ``base`` seconds."""
    t = row["time_to_target_s"]
    reached = np.isfinite(t)
    return (
        f"{t:.2f} | {row['rounds_to_target']} | " if reached else "never | - | "
    ) + (
        f"{row['rounds']} | {row['mean_round_s']:.4f} | {row['best_loss_over_opt']:.6f} | "
        + (f"{base / t:.2f}x |" if reached else "- |")
    )


def write_csv(rows: list[dict], path: str) -> None:
    """Write the result rows as CSV, creating the folder."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
