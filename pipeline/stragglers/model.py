"""The straggler model: per-worker frequency, persistence and latency per state.

Holds :class:`StragglerModel` (its parameters, validation, simulation,
goodness of fit, Dataset round trip, summary and change test). It is
usually made by :func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`;
the definitions of its parameters are in
:mod:`~dask_quorum.pipeline.stragglers.fit`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ._checks import _check_names, _check_threshold
from .distributions import _ks_gamma, _ks_shifted_exp
from .states import _straggle_indicator

logger = logging.getLogger(__name__)

_FIELDS = (
    "p",
    "p_slow_slow",
    "p_slow_fast",
    "shift",
    "rate",
    "slow_shift",
    "slow_rate",
    "slowdown",
    "n_rounds",
)
_DESCRIPTIONS = {
    "p": "fraction of observed rounds in which the worker straggled",
    "p_slow_slow": "P(slow at t+1 | slow at t)",
    "p_slow_fast": "P(slow at t+1 | fast at t)",
    "shift": "fast state: shift of the shifted exponential (s per unit)",
    "rate": "fast state: rate of the shifted exponential (1 / (s per unit))",
    "slow_shift": "slow state: shift of the shifted exponential (s per unit)",
    "slow_rate": "slow state: rate of the shifted exponential (1 / (s per unit))",
    "slowdown": "median slow latency / median of the round medians",
    "n_rounds": "rounds in which the worker was observed",
}


def _frozen(a: Any, name: str, n: int, dtype: type = float) -> np.ndarray:
    arr = np.array(a, dtype=dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one value per worker ({n}), got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


#: Fewest latencies of a worker in one state that ``sample(draws="observed")``
#: resamples; with fewer, that state's draws come from the fitted distribution.
MIN_OBSERVED_DRAWS = 8


@dataclass(frozen=True, eq=False)
class StragglerModel:
    """Per-worker straggler model: frequency, persistence and latency per state.

    Usually made by :func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`;
    can be built by hand (for simulation) from per-worker arrays. Arrays are
    copied and read-only. See :mod:`~dask_quorum.pipeline.stragglers.fit`
    for the definitions.

    Parameters
    ----------
    workers : sequence of str
        Worker names.
    p : array-like of float in [0, 1]
        Straggle frequency per worker.
    p_slow_slow, p_slow_fast : array-like of float in [0, 1]
        Markov persistence: P(slow | slow) and P(slow | fast).
    shift, rate : array-like of float
        Fast state: ``T = shift + Exp(rate)`` (per-unit seconds); ``shift
        >= 0``, ``rate > 0`` (``inf`` = no spread).
    slow_shift, slow_rate : array-like of float
        The same for the slow state.
    slowdown : array-like of float
        Median slow latency over the median of the round medians (> 0).
    n_rounds : array-like of int
        Observed rounds per worker (0 for a hand-built model).
    threshold : float, default=2.0
        ``c`` of the straggle indicator, > 1.
    latencies : numpy.ndarray, optional
        The ``(n_rounds, n_workers)`` matrix the model was fitted from;
        needed by :meth:`goodness_of_fit`. Not part of :meth:`to_dataset`.
    """

    workers: tuple[str, ...]
    p: np.ndarray
    p_slow_slow: np.ndarray
    p_slow_fast: np.ndarray
    shift: np.ndarray
    rate: np.ndarray
    slow_shift: np.ndarray
    slow_rate: np.ndarray
    slowdown: np.ndarray
    n_rounds: np.ndarray
    threshold: float = 2.0
    latencies: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        workers = tuple(_check_names(list(self.workers), len(self.workers)))
        if not workers:
            raise ValueError("a StragglerModel needs at least one worker")
        n = len(workers)
        set_ = object.__setattr__
        set_(self, "workers", workers)
        set_(self, "threshold", _check_threshold(self.threshold))
        for name in _FIELDS:
            set_(self, name, _frozen(getattr(self, name), name, n, np.int64 if name == "n_rounds" else float))
        for name in ("p", "p_slow_slow", "p_slow_fast"):
            v = getattr(self, name)
            if not np.all((v >= 0) & (v <= 1)):
                raise ValueError(f"{name} must be probabilities in [0, 1], got {v.tolist()}")
        for name in ("shift", "slow_shift"):
            v = getattr(self, name)
            if not np.all(np.isfinite(v) & (v >= 0)):
                raise ValueError(f"{name} must be finite and >= 0, got {v.tolist()}")
        for name in ("rate", "slow_rate", "slowdown"):
            v = getattr(self, name)
            if not np.all(v > 0):  # NaN fails too
                raise ValueError(f"{name} must be > 0, got {v.tolist()}")
        if np.any(self.n_rounds < 0):
            raise ValueError(f"n_rounds must be >= 0, got {self.n_rounds.tolist()}")
        if self.latencies is not None:
            lat = np.array(self.latencies, dtype=float)
            if lat.ndim != 2 or lat.shape[1] != n:
                raise ValueError(f"latencies must be (n_rounds, {n}), got shape {lat.shape}")
            lat.setflags(write=False)
            set_(self, "latencies", lat)

    # -- derived -----------------------------------------------------------
    @property
    def n_workers(self) -> int:
        """Number of workers."""
        return len(self.workers)

    @property
    def p_stationary(self) -> np.ndarray:
        """Long-run slow fraction of each worker's Markov chain.

        ``P(slow|fast) / (P(slow|fast) + 1 - P(slow|slow))``; ``p`` where the
        chain is frozen (``P(slow|fast) = 0`` and ``P(slow|slow) = 1``).
        """
        a, b = self.p_slow_fast, self.p_slow_slow
        denom = a + 1.0 - b
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, a / np.where(denom > 0, denom, 1.0), self.p)

    @property
    def p_stderr(self) -> np.ndarray:
        """Standard error of each ``p`` estimate, allowing for persistence.

        ``sqrt(p (1 - p) / n * (1 + lam) / (1 - lam))`` with ``lam =
        P(slow|slow) - P(slow|fast)``, the variance of the mean of a
        two-state Markov chain's indicator; ``inf`` for a worker with no
        observed round. Persistent chains make ``p`` noisy: use it to choose
        the ``tol`` of :meth:`changed` (e.g. above 3 x ``sqrt(se_a**2 +
        se_b**2)``).
        """
        lam = self.p_slow_slow - self.p_slow_fast
        n = self.n_rounds.astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            var = self.p * (1.0 - self.p) / n * (1.0 + lam) / (1.0 - lam)
        return np.where((n > 0) & (lam < 1.0), np.sqrt(np.where(np.isfinite(var), var, 0.0)), np.inf)

    def slow_workers(self, p_min: float = 0.5) -> list[str]:
        """Workers that straggle in more than a fraction ``p_min`` of rounds.

        Parameters
        ----------
        p_min : float, default=0.5
            In [0, 1). 0.5: workers slow more often than not (persistent
            stragglers); a small value such as 0.02 also lists intermittent
            ones.

        Returns
        -------
        list of str
            Names with ``p > p_min``, in worker order.
        """
        if not 0.0 <= float(p_min) < 1.0:
            raise ValueError(f"p_min must be in [0, 1), got {p_min!r}")
        return [w for w, p in zip(self.workers, self.p) if p > p_min]

    # -- simulation --------------------------------------------------------
    def sample(
        self,
        n_rounds: int,
        random_state: int | np.random.Generator | None = None,
        *,
        return_states: bool = False,
        start: Any = None,
        draws: str = "fitted",
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Simulate per-unit latencies round by round.

        Each worker's state follows its Markov chain, starting from the
        stationary distribution (:attr:`p_stationary`), or from ``start``;
        its latency is drawn from the shifted exponential of the current
        state, or from the latencies observed in it. Workers are
        independent given the model.

        Parameters
        ----------
        n_rounds : int
            Number of rounds, >= 1.
        random_state : int, numpy.random.Generator or None
            Seed (reproducible) or generator; None draws fresh entropy.
        return_states : bool, default=False
            Also return the boolean ``(n_rounds, n_workers)`` slow states.
        start : array_like of bool, shape (n_workers,), optional
            The states of the first round, e.g. the workers' last observed
            states (:func:`~dask_quorum.pipeline.stragglers.current_states`)
            to forecast the next rounds: the chain then forgets them at the
            pace of its persistence.
        draws : {"fitted", "observed"}, default="fitted"
            ``"observed"`` draws each latency from the worker's own
            latencies in that state in the matrix the model was fitted from
            (:attr:`latencies`; uniformly, with replacement), where it has at
            least :data:`MIN_OBSERVED_DRAWS` of them, and from the shifted
            exponential otherwise. The exponential's tail is fixed by the
            mean and the minimum; when the spread of a fast worker is
            narrower (emulated work, dedicated machines), it overstates how
            long the slowest of many fast workers takes, and so the cost of a
            code that waits for all of them.

        Returns
        -------
        latencies : numpy.ndarray
            ``(n_rounds, n_workers)`` per-unit latencies.
        states : numpy.ndarray of bool
            Only with ``return_states=True``.

        Raises
        ------
        ValueError
            On a bad ``n_rounds`` or ``start``, an unknown ``draws``, or
            ``draws="observed"`` on a model without :attr:`latencies`.
        """
        if draws not in ("fitted", "observed"):
            raise ValueError(f"draws must be 'fitted' or 'observed', got {draws!r}")
        if draws == "observed" and self.latencies is None:
            raise ValueError("draws='observed' needs the latencies the model was fitted from (model.latencies is None)")
        if isinstance(n_rounds, bool) or not isinstance(n_rounds, (int, np.integer)) or n_rounds < 1:
            raise ValueError(f"n_rounds must be a positive integer, got {n_rounds!r}")
        n = self.n_workers
        if start is not None:
            first = np.asarray(start)
            if first.shape != (n,) or first.dtype != np.bool_:
                raise ValueError(f"start must be a boolean array of shape ({n},), got {start!r}")
        rng = np.random.default_rng(random_state)
        u = rng.random((n_rounds, n))
        e_fast = rng.standard_exponential((n_rounds, n))
        e_slow = rng.standard_exponential((n_rounds, n))
        states = np.empty((n_rounds, n), dtype=bool)
        states[0] = u[0] < self.p_stationary if start is None else first
        for t in range(1, n_rounds):
            states[t] = u[t] < np.where(states[t - 1], self.p_slow_slow, self.p_slow_fast)
        fast = self.shift + e_fast / self.rate
        slow = self.slow_shift + e_slow / self.slow_rate
        if draws == "observed":
            self._observed_draws(fast, slow, rng)
        x = np.where(states, slow, fast)
        return (x, states) if return_states else x

    def _state_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """Rounds of :attr:`latencies` in which each worker was seen fast, and seen slow."""
        observed, _, straggled = _straggle_indicator(self.latencies, self.threshold)
        return observed & ~straggled, straggled

    def resampled_states(self) -> np.ndarray:
        """``(n_workers, 2)`` bool: whether ``sample(draws="observed")`` resamples each worker's fast and slow state.

        A state is resampled when the worker was seen in it in at least
        :data:`MIN_OBSERVED_DRAWS` rounds of :attr:`latencies`; all False
        for a model without latencies.
        """
        if self.latencies is None:
            return np.zeros((self.n_workers, 2), dtype=bool)
        fast, slow = self._state_masks()
        return np.stack([fast.sum(axis=0), slow.sum(axis=0)], axis=1) >= MIN_OBSERVED_DRAWS

    def _observed_draws(self, fast: np.ndarray, slow: np.ndarray, rng: np.random.Generator) -> None:
        """Replace, in place, each worker's column by draws from its observed latencies in that state."""
        x = self.latencies
        seen_fast, seen_slow = self._state_masks()
        for i in range(self.n_workers):
            for out, mask in ((fast, seen_fast[:, i]), (slow, seen_slow[:, i])):
                seen = x[mask, i]
                if seen.size >= MIN_OBSERVED_DRAWS:
                    out[:, i] = rng.choice(seen, size=out.shape[0])

    # -- diagnostics -------------------------------------------------------
    def goodness_of_fit(self, *, n_simulated: int = 10_000, random_state: int | None = 0) -> xr.Dataset:
        """How well the fitted model describes its data.

        Kolmogorov-Smirnov statistics are computed against distributions
        whose parameters were estimated from the same samples, so they are
        descriptive (smaller is better); the usual KS p-values do not apply.

        Parameters
        ----------
        n_simulated : int, default=10000
            Rounds simulated with :meth:`sample` for the frequency check.
        random_state : int or None, default=0
            Seed of that simulation.

        Returns
        -------
        xarray.Dataset
            Per worker: ``n_fast``, ``n_slow`` (samples per state),
            ``ks_fast`` / ``ks_slow`` (KS statistic of the state's shifted
            exponential; the slow fit is checked only on the worker's own
            slow samples), ``ks_fast_gamma`` / ``ks_slow_gamma`` (the
            Gamma-by-moments alternative), ``p`` (observed), ``p_stationary``
            (of the fitted chains) and ``p_simulated`` (the straggle
            indicator applied to the simulated latencies).

        Raises
        ------
        ValueError
            If the model was not fitted from data (``latencies`` is None).
        """
        if self.latencies is None:
            raise ValueError(
                "goodness_of_fit needs the fitted data: this model has no latencies (built by hand?)"
            )
        x = self.latencies
        _, _, slow = _straggle_indicator(x, self.threshold)
        fast = ~np.isnan(x) & ~slow
        names = ("ks_fast", "ks_slow", "ks_fast_gamma", "ks_slow_gamma")
        cols: dict[str, list[float]] = {k: [] for k in names}
        for i in range(self.n_workers):
            xf, xs = x[fast[:, i], i], x[slow[:, i], i]
            cols["ks_fast"].append(_ks_shifted_exp(xf, self.shift[i], self.rate[i]))
            cols["ks_slow"].append(_ks_shifted_exp(xs, self.slow_shift[i], self.slow_rate[i]))
            cols["ks_fast_gamma"].append(_ks_gamma(xf))
            cols["ks_slow_gamma"].append(_ks_gamma(xs))
        sim = self.sample(n_simulated, random_state)
        _, _, sim_slow = _straggle_indicator(sim, self.threshold)
        data = {
            "n_fast": ("worker", fast.sum(axis=0)),
            "n_slow": ("worker", slow.sum(axis=0)),
            **{k: ("worker", np.array(v)) for k, v in cols.items()},
            "p": ("worker", np.asarray(self.p)),
            "p_stationary": ("worker", self.p_stationary),
            "p_simulated": ("worker", sim_slow.mean(axis=0)),
        }
        return xr.Dataset(
            data,
            coords={"worker": np.array(self.workers, dtype=object)},
            attrs={"threshold": self.threshold, "n_simulated": n_simulated},
        )

    def to_dataset(self) -> xr.Dataset:
        """The per-worker parameters as an :class:`xarray.Dataset` (dim ``worker``)."""
        return xr.Dataset(
            {
                name: ("worker", np.asarray(getattr(self, name)), {"description": _DESCRIPTIONS[name]})
                for name in _FIELDS
            },
            coords={"worker": np.array(self.workers, dtype=object)},
            attrs={"threshold": self.threshold},
        )

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, *, latencies: Any = None) -> StragglerModel:
        """Rebuild a model from :meth:`to_dataset` output, e.g. read back from NetCDF.

        Parameters
        ----------
        ds : xarray.Dataset
            One variable per parameter (``p``, ``p_slow_slow``,
            ``p_slow_fast``, ``shift``, ``rate``, ``slow_shift``,
            ``slow_rate``, ``slowdown``, ``n_rounds``), each of dimension
            ``worker``; coordinate ``worker``; attribute ``threshold``.
            Other variables and attributes are ignored.
        latencies : array-like of shape (n_rounds, n_workers), optional
            The data the model was fitted from (not part of the Dataset);
            needed by :meth:`goodness_of_fit`.

        Returns
        -------
        StragglerModel
            With the Dataset's parameters (and ``latencies``, if given).

        Raises
        ------
        ValueError
            If ``ds`` is no Dataset, lacks a parameter, the ``worker``
            coordinate or the ``threshold`` attribute, a parameter has
            other dimensions than ``("worker",)``, or the values are invalid
            (as in the constructor).
        """
        if not isinstance(ds, xr.Dataset):
            raise ValueError(f"ds must be an xarray.Dataset, got {type(ds).__name__}")
        missing = [name for name in _FIELDS if name not in ds.data_vars]
        if missing:
            raise ValueError(f"the Dataset lacks the straggler model variable(s) {missing}")
        wrong = {name: ds[name].dims for name in _FIELDS if ds[name].dims != ("worker",)}
        if wrong:
            raise ValueError(f"straggler model variables must have dims ('worker',), got {wrong}")
        if "worker" not in ds.coords:
            raise ValueError("the Dataset lacks the 'worker' coordinate")
        if "threshold" not in ds.attrs:
            raise ValueError("the Dataset lacks the 'threshold' attribute")
        threshold = np.asarray(ds.attrs["threshold"], dtype=float)
        if threshold.size != 1:
            raise ValueError(f"the Dataset's threshold attribute must be one number, got {threshold.tolist()}")
        names = [
            w.decode() if isinstance(w, bytes) else str(w) for w in ds["worker"].to_numpy().tolist()
        ]
        return cls(
            workers=tuple(names),
            **{name: ds[name].to_numpy() for name in _FIELDS},
            threshold=threshold.item(),
            latencies=latencies,
        )

    def summary(self) -> str:
        """A fixed-width table, one line per worker (``*`` marks ``p > 0.5``)."""
        head = (
            "worker", "rounds", "p", "P(s|s)", "P(s|f)",
            "shift", "1/rate", "slow_shift", "slow_1/rate", "slowdown",
        )
        rows = []
        for i, w in enumerate(self.workers):
            rows.append(
                (
                    w + (" *" if self.p[i] > 0.5 else ""),
                    str(int(self.n_rounds[i])),
                    f"{self.p[i]:.3f}",
                    f"{self.p_slow_slow[i]:.3f}",
                    f"{self.p_slow_fast[i]:.3f}",
                    f"{self.shift[i]:.4g}",
                    f"{1.0 / self.rate[i]:.4g}",
                    f"{self.slow_shift[i]:.4g}",
                    f"{1.0 / self.slow_rate[i]:.4g}",
                    f"{self.slowdown[i]:.3g}",
                )
            )
        widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
        fmt = "  ".join(f"{{:<{widths[0]}}}" if j == 0 else f"{{:>{widths[j]}}}" for j in range(len(head)))
        return "\n".join(fmt.format(*r) for r in [head, *rows])

    def __repr__(self) -> str:
        return (
            f"StragglerModel({self.n_workers} workers, threshold={self.threshold:g}, "
            f"slow={self.slow_workers()})\n{self.summary()}"
        )

    def changed(self, other: StragglerModel, *, tol: float = 0.1) -> bool:
        """Whether ``other`` differs materially from this model.

        Parameters
        ----------
        other : StragglerModel
            Typically a model re-fitted on newer latencies.
        tol : float, default=0.1
            Largest tolerated move of a worker's straggle frequency ``p``.

        Returns
        -------
        bool
            True if a worker appeared or disappeared, or some worker's ``p``
            moved by more than ``tol``.
        """
        if not isinstance(other, StragglerModel):
            raise ValueError(f"other must be a StragglerModel, got {type(other).__name__}")
        if not 0.0 <= float(tol) < 1.0:
            raise ValueError(f"tol must be in [0, 1), got {tol!r}")
        mine, theirs = set(self.workers), set(other.workers)
        if mine != theirs:
            gone, new = sorted(mine - theirs), sorted(theirs - mine)
            logger.info("straggler model changed: workers gone %s, new %s", gone, new)
            return True
        idx = [other.workers.index(w) for w in self.workers]
        moved = np.abs(np.asarray(other.p)[idx] - self.p)
        if np.any(moved > tol):
            who = [w for w, m in zip(self.workers, moved) if m > tol]
            logger.info("straggler model changed: p moved by more than %g for %s", tol, who)
            return True
        return False
