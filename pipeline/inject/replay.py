"""Trace replay: turn a recorded trace into per-worker slowdown schedules.

Holds :class:`TraceReplay`: for each worker, the slowdown factor and
additive delay of its ``t``-th task, computed from measured
per-node iteration times (:meth:`TraceReplay.from_matrix`, or
:meth:`TraceReplay.from_csv` for the EC2 trace CSV, columns ``trace, node,
iteration, seconds``, read by
:func:`~dask_quorum.pipeline.stragglers.trace_rows`). Register it with
:func:`~dask_quorum.pipeline.inject.inject_stragglers`, whose
:class:`~dask_quorum.pipeline.inject.StragglerInjector` applies it.

Examples
--------
>>> replay = TraceReplay.from_matrix([[2.0, 1.0], [1.0, 3.0]], workers=[0, 1])
>>> replay.schedule(1, 3)[0].tolist()
[1.0, 3.0, 1.0]
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import WorkerId, _check_number, _check_worker_ids

logger = logging.getLogger(__name__)


def _check_workers(workers: Any) -> tuple[WorkerId, ...]:
    if isinstance(workers, str | bytes) or not isinstance(workers, Iterable):
        raise ValueError(
            f"workers must be a sequence of worker addresses or names, got {workers!r}"
        )
    workers = tuple(workers)
    if not workers:
        raise ValueError("workers must name at least one worker")
    _check_worker_ids(workers)
    return tuple(w if isinstance(w, str) else int(w) for w in workers)


def _checked_matrix(name: str, value: Any, low: float, column: str) -> np.ndarray:
    """``value`` as a 2-d float array, finite and ``>= low``; ``column`` names its columns.

    The messages name the offending entry by iteration (row) and ``column``
    (``"node"`` for measured seconds, ``"worker"`` for factors and delays).
    """
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric: {error}") from None
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a matrix (n_iterations, n_{column}s), "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        t, i = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"{name} must be finite, got {float(array[t, i])!r} at "
            f"iteration {t}, {column} {i}"
        )
    if (array < low).any():
        t, i = np.argwhere(array < low)[0]
        raise ValueError(
            f"{name} must be >= {low}, got {float(array[t, i])!r} at "
            f"iteration {t}, {column} {i}"
        )
    return array


def _reference_times(seconds: np.ndarray) -> np.ndarray:
    """Lower median of every row: the ceil(n/2)-th fastest node's time."""
    n_nodes = seconds.shape[1]
    return np.partition(seconds, (n_nodes - 1) // 2, axis=1)[:, (n_nodes - 1) // 2]


@dataclass(frozen=True, eq=False, repr=False)
class TraceReplay:
    """Per-worker slowdowns replayed from a recorded trace.

    Worker ``workers[i]`` replays trace node ``nodes[i]``: the ``t``-th task
    it executes under injection (counted as tasks start on that worker, as
    for a :class:`~dask_quorum.pipeline.inject.Slowdown` chain; with one task
    per worker per round, task ``t`` is round ``t``) takes ::

        factors[t % n, i] * natural + delays[t % n, i]

    seconds instead of its natural time, ``n`` being :attr:`n_iterations`:
    tasks beyond the end of the trace **wrap around** to its first iteration,
    so a long run sees the trace's statistics over and over. A task whose
    factor is 1 (and delay 0) is not slowed (``slow=False`` in its
    :class:`~dask_quorum.pipeline.inject.InjectionRecord`). No randomness is
    involved.

    Build it with :meth:`from_csv` or :meth:`from_matrix`, which compute the
    factors and delays from measured seconds (see :meth:`from_matrix` for
    the exact formulas); the constructor takes them ready-made.

    Parameters
    ----------
    workers : sequence of str or int
        Worker addresses or names (``0`` and ``"0"`` are the same name), one
        per column of ``factors``.
    factors : array-like, shape (n_iterations, n_workers)
        Slowdown factors, finite and ``>= 1``.
    delays : array-like, shape (n_iterations, n_workers), optional
        Extra seconds, finite and ``>= 0``; zeros when omitted.
    nodes : sequence of str, optional
        Trace node replayed by each worker (labels only); ``"0", "1", ...``
        when omitted.
    trace : str, default=""
        Name of the replayed trace (label only).

    Attributes
    ----------
    factors, delays : numpy.ndarray, shape (n_iterations, n_workers)
        Read-only copies.

    Raises
    ------
    ValueError
        On an empty or repeated worker list, a worker that is not a str or
        int, a matrix that is not 2-d, empty, non-finite or out of range,
        shapes that disagree with each other or with ``workers``, or a wrong
        number of node labels.

    See Also
    --------
    inject_stragglers : register a replay (``inject_stragglers(client, replay)``).
    TraceReplay.schedule : the factors and delays of a worker's first tasks.

    Examples
    --------
    >>> replay = TraceReplay.from_matrix([[2.0, 1.0], [1.0, 3.0]], workers=[0, 1])
    >>> replay.factors.tolist()
    [[2.0, 1.0], [1.0, 3.0]]
    >>> replay.schedule(0, 3)[0].tolist()  # wraps around after 2 iterations
    [2.0, 1.0, 2.0]
    """

    workers: tuple[WorkerId, ...]
    factors: np.ndarray
    delays: np.ndarray | None = None
    nodes: tuple[str, ...] = ()
    trace: str = ""

    def __post_init__(self) -> None:
        workers = _check_workers(self.workers)
        factors = _checked_matrix("factors", self.factors, 1.0, "worker")
        if self.delays is None:
            delays = np.zeros_like(factors)
        else:
            delays = _checked_matrix("delays", self.delays, 0.0, "worker")
        factors.setflags(write=False)
        delays.setflags(write=False)
        if factors.shape[0] == 0:
            raise ValueError("factors is empty: a replay needs at least one iteration")
        if factors.shape[1] != len(workers):
            raise ValueError(
                f"factors has {factors.shape[1]} columns but {len(workers)} workers "
                f"are given: one column per worker"
            )
        if delays.shape != factors.shape:
            raise ValueError(
                f"delays has shape {delays.shape}, factors {factors.shape}: "
                f"they must agree"
            )
        nodes = tuple(str(n) for n in self.nodes) or tuple(
            str(i) for i in range(len(workers))
        )
        if len(nodes) != len(workers):
            raise ValueError(
                f"{len(nodes)} node labels for {len(workers)} workers: give one "
                f"per worker"
            )
        if not isinstance(self.trace, str):
            raise ValueError(f"trace must be a str, got {self.trace!r}")
        object.__setattr__(self, "workers", workers)
        object.__setattr__(self, "factors", factors)
        object.__setattr__(self, "delays", delays)
        object.__setattr__(self, "nodes", nodes)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(trace={self.trace!r}, workers={self.workers!r}, "
            f"nodes={self.nodes!r}, n_iterations={self.n_iterations})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraceReplay):
            return NotImplemented
        return (
            (self.workers, self.nodes, self.trace)
            == (other.workers, other.nodes, other.trace)
            and np.array_equal(self.factors, other.factors)
            and np.array_equal(self.delays, other.delays)
        )

    def __hash__(self) -> int:
        return hash(
            (
                self.workers,
                self.nodes,
                self.trace,
                self.factors.shape,
                self.factors.tobytes(),
                self.delays.tobytes(),
            )
        )

    @property
    def n_iterations(self) -> int:
        """Number of iterations before the replay wraps around."""
        return int(self.factors.shape[0])

    def column(self, worker: WorkerId) -> int:
        """Index of ``worker`` (address or name) in :attr:`workers`.

        Raises
        ------
        ValueError
            If the replay does not name this worker.
        """
        for i, w in enumerate(self.workers):
            if str(w) == str(worker):
                return i
        raise ValueError(
            f"unknown worker {worker!r}: the replay's workers are "
            f"{list(self.workers)!r}"
        )

    def schedule(self, worker: WorkerId, n_tasks: int) -> tuple[np.ndarray, np.ndarray]:
        """Factors and delays of the first ``n_tasks`` tasks of ``worker``.

        The same values
        :class:`~dask_quorum.pipeline.inject.StragglerInjector` applies (and
        logs in :attr:`~dask_quorum.pipeline.inject.InjectionRecord.factor`
        and :attr:`~dask_quorum.pipeline.inject.InjectionRecord.delay`),
        wrapping around after :attr:`n_iterations` tasks.

        Returns
        -------
        factors, delays : numpy.ndarray of float, shape (n_tasks,)
        """
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 0:
            raise ValueError(f"n_tasks must be a non-negative integer, got {n_tasks!r}")
        i = self.column(worker)
        rows = np.arange(n_tasks) % self.n_iterations
        return self.factors[rows, i].copy(), self.delays[rows, i].copy()

    @classmethod
    def from_matrix(
        cls,
        seconds: Any,
        workers: Iterable[WorkerId],
        *,
        budget: float | None = None,
        scale: float | None = None,
        nodes: Iterable[str] | None = None,
        trace: str = "",
    ) -> TraceReplay:
        """Replay measured seconds ``seconds[t, j]`` of node ``j`` at iteration ``t``.

        Slowdown factors keep the trace's ratios within each iteration::

            reference[t] = lower median of seconds[t, :]   (over all nodes)
            factors[t, j] = max(1, seconds[t, j] / reference[t])

        The reference is the lower median, i.e. the ceil(n/2)-th fastest
        node's time: the plain median for an odd number of nodes, the fastest
        node for 1 or 2 nodes. A median rather than the fastest node, because
        the factor multiplies the *natural* time of a task, which stands for a
        typical node: with 15 nodes varying by a few percent, dividing by the
        fastest would slow every worker by that jitter and inflate every
        straggler factor (13x instead of 12x in ``data2``). Nodes faster than
        the reference get factor 1 (a task cannot be sped up).

        The optional additive delays keep the ratios for tasks too short to
        show them (10 x a 1 ms task is still nothing)::

            delays[t, j] = (factors[t, j] - 1) * scale * reference[t]
                         = scale * max(0, seconds[t, j] - reference[t])

        i.e. the node's lag behind the reference at that iteration, in trace
        seconds times ``scale``. ``budget`` sets the scale so that a replayed
        reference iteration lasts ``budget`` seconds on average:
        ``scale = budget / mean(reference)``, hence ``delays[t, j] =
        (factors[t, j] - 1) * budget * reference[t] / mean(reference)``.
        Give neither for purely multiplicative slowdowns (zero delays).

        A replayed task then takes ``factor * natural + delay``: its lag
        behind a task of the same natural time on a reference worker is
        ``(factor - 1) * (natural + budget)`` (for an average iteration),
        i.e. the lag the trace shows for an iteration lasting
        ``natural + budget`` seconds.

        Parameters
        ----------
        seconds : array-like, shape (n_iterations, n_nodes)
            Measured seconds, finite and ``>= 0``; every iteration's
            reference must be positive. Any array-like works (numpy,
            xarray, nested lists).
        workers : sequence of str or int
            Worker ``workers[i]`` replays node ``i``. More workers than nodes
            is an error; with fewer workers, the first ``len(workers)``
            nodes are replayed and the others only enter the reference.
        budget : float, optional
            Target seconds, ``>= 0``, of an average replayed reference
            iteration (see above). Exclusive with ``scale``.
        scale : float, optional
            Replayed seconds per trace second, ``>= 0``. Exclusive with
            ``budget``.
        nodes : sequence of str, optional
            Labels of all ``n_nodes`` nodes; ``"0", "1", ...`` when omitted.
        trace : str, default=""
            Label of the trace.

        Raises
        ------
        ValueError
            On a non-numeric, non-2-d, empty, non-finite or negative
            ``seconds``, an iteration whose reference time is 0, more workers
            than nodes (the message gives both counts), invalid workers, a
            wrong number of node labels, or both ``budget`` and ``scale``.
        """
        # low=0, not 0.0: the messages say "seconds must be >= 0"
        matrix = _checked_matrix("seconds", seconds, 0, "node")
        n_iterations, n_nodes = matrix.shape
        if n_iterations == 0 or n_nodes == 0:
            raise ValueError(
                f"the trace {trace!r} is empty: seconds has shape {matrix.shape}, "
                f"a replay needs at least one iteration and one node"
            )
        workers = _check_workers(workers)
        if len(workers) > n_nodes:
            raise ValueError(
                f"{len(workers)} workers but the trace {trace!r} has only {n_nodes} "
                f"nodes: each worker replays one node"
            )
        labels = (
            tuple(str(i) for i in range(n_nodes))
            if nodes is None
            else tuple(str(n) for n in nodes)
        )
        if len(labels) != n_nodes:
            raise ValueError(f"{len(labels)} node labels for {n_nodes} nodes")
        if budget is not None and scale is not None:
            raise ValueError("give budget or scale, not both")
        reference = _reference_times(matrix)
        if (reference <= 0).any():
            t = int(np.argmax(reference <= 0))
            raise ValueError(
                f"iteration {t} of trace {trace!r} has a reference (lower median) "
                f"time of 0 seconds: its ratios are undefined"
            )
        if budget is not None:
            _check_number("budget", budget, 0.0)
            scale = float(budget) / float(reference.mean())
        elif scale is not None:
            _check_number("scale", scale, 0.0)
        else:
            scale = 0.0
        factors = np.maximum(1.0, matrix / reference[:, None])[:, : len(workers)]
        delays = (factors - 1.0) * (float(scale) * reference[:, None])
        return cls(workers, factors, delays, labels[: len(workers)], trace)

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        trace: str,
        *,
        workers: Iterable[WorkerId],
        budget: float | None = None,
        scale: float | None = None,
    ) -> TraceReplay:
        """Replay one trace of a CSV file (``trace, node, iteration, seconds``).

        The file is read as CSV text, never unpickled, and checked as a
        whole by :func:`~dask_quorum.pipeline.stragglers.trace_rows` (extra
        columns are ignored). Nodes are numbered in the order they first
        appear in the file: worker ``workers[i]`` replays the ``i``-th node;
        with fewer workers than nodes the first ``len(workers)`` nodes are
        replayed (all nodes still enter the per-iteration reference), more
        workers than nodes is an error. Iterations are ordered by their
        ``iteration`` number; only iterations recorded by *every* node of the
        trace are kept (in ``aws_ec2_iteration_times.csv``, traces ``data4``,
        ``data7`` and ``data8`` have one node with an extra last iteration,
        which is dropped). Factors and delays are then computed as in
        :meth:`from_matrix`.

        Parameters
        ----------
        path : str or os.PathLike
            The CSV file.
        trace : str
            Value of the ``trace`` column to replay.
        workers, budget, scale
            See :meth:`from_matrix`.

        Raises
        ------
        ValueError
            On a file :func:`~dask_quorum.pipeline.stragglers.trace_rows`
            rejects: not CSV text (a pickle, say), empty, a missing column, a
            row with missing or empty fields (truncated file) or too many
            fields, a non-integer or negative iteration, a non-numeric,
            non-finite or negative ``seconds`` (the message gives the line),
            a repeated (node, iteration), an unknown trace (the message lists
            the known ones), a trace without data rows; on an empty trace (no
            iteration recorded by every node), and the errors of
            :meth:`from_matrix`.
        """
        if not isinstance(trace, str):
            raise ValueError(f"trace must be a str, got {trace!r}")
        # Imported here, on the client: a worker that unpickles a replay then
        # loads no pandas, SciPy or xarray.
        from ..stragglers import trace_rows

        rows = trace_rows(path, trace)
        nodes = [str(node) for node in rows["node"].unique()]  # in order of appearance
        wide = rows.pivot(index="iteration", columns="node", values="seconds")
        wide = wide.reindex(columns=nodes).sort_index()
        complete = wide.dropna()  # the iterations every node recorded
        if complete.empty:
            raise ValueError(
                f"trace {trace!r} is empty: no iteration was recorded by every node"
            )
        dropped = int(wide.notna().to_numpy().sum()) - complete.size
        if dropped:
            logger.info(
                "Trace %r: dropped %d rows of iterations not recorded by every node",
                trace,
                dropped,
            )
        return cls.from_matrix(
            complete.to_numpy(), workers, budget=budget, scale=scale, nodes=nodes, trace=trace
        )
