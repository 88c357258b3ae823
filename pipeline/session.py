"""A coded session: one code, its data placement and its rounds, on one client."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from dask.utils import parse_bytes
from distributed import Client

from dask_quorum import config

from .cluster import worker_addresses
from .coding import GradientCode, make_code
from .placement import Placement
from .rounds import RoundRecord, RoundRunner

logger = logging.getLogger(__name__)


class CodedSession:
    """Context manager that places data by a gradient code and runs rounds on it.

    Parameters
    ----------
    client : distributed.Client
    scheme : str
        A scheme of :func:`~dask_quorum.pipeline.coding.make_code`.
    redundancy : int
        Replication factor of the code.
    random_state : None, int or numpy.random.RandomState
        Seeds the code's construction.
    decode_tol : float, default=0.0
        See :class:`~dask_quorum.pipeline.rounds.RoundRunner`.
    deadline : float or None, default=None
        Soft per-round deadline in seconds.
    code_factory : callable, optional
        ``code_factory(n_workers) -> GradientCode`` builds the first code
        instead of ``make_code(scheme, ...)`` (adaptive schemes start from a
        code of another scheme).

    Examples
    --------
    >>> with CodedSession(client, scheme="cyclic", redundancy=2) as s:  # doctest: +SKIP
    ...     s.place([chunk_0, chunk_1, ...])   # s.n_partitions payloads
    ...     total = s.round(fn, params)
    """

    def __init__(
        self,
        client: Client,
        *,
        scheme: str,
        redundancy: int,
        random_state: Any = None,
        decode_tol: float = 0.0,
        deadline: float | None = None,
        code_factory: Callable[[int], GradientCode] | None = None,
    ) -> None:
        self.client = client
        self.code_factory = code_factory
        self.scheme = scheme
        self.redundancy = redundancy
        self.random_state = random_state
        self.decode_tol = decode_tol
        self.deadline = deadline
        self.workers: list[str] = []
        self.code: GradientCode | None = None
        self.records: list[RoundRecord] = []
        self._placement: Placement | None = None
        self._runner: RoundRunner | None = None

    def __enter__(self) -> CodedSession:
        self.workers = worker_addresses(self.client)
        if self.code_factory is not None:
            self.code = self.code_factory(len(self.workers))
        else:
            self.code = make_code(
                self.scheme,
                len(self.workers),
                redundancy=self.redundancy,
                random_state=self.random_state,
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def token(self) -> str:
        """The token in this session's round-task keys (see ``rounds.ROUND_PREFIX``)."""
        if self._runner is None:
            raise RuntimeError("place the partitions first")
        return self._runner.token

    def mean_units(self) -> float:
        """Mean work units (rows) of a partition."""
        if self._placement is None:
            raise RuntimeError("place the partitions first")
        return self._placement.mean_units()

    @property
    def n_partitions(self) -> int:
        """How many partitions :meth:`place` expects."""
        if self.code is None:
            raise RuntimeError("enter the session first")
        return self.code.n_partitions

    def place(self, partitions: Sequence[Any], units: Sequence[float] | None = None) -> None:
        """Scatter the partitions' replicas to the workers the code assigns them.

        Parameters
        ----------
        partitions : sequence
            :attr:`n_partitions` payloads.
        units : sequence of float, optional
            Work units (rows) per partition, declared on the round tasks for
            the latency recorder.
        """
        if self.code is None:
            raise RuntimeError("enter the session first")
        timeout = config.get_timeout("setup-timeout")
        self._placement = Placement(
            self.client, self.workers, self.code.B, partitions, timeout=timeout, units=units
        )
        self._runner = RoundRunner(
            self.client,
            self.code,
            self._placement,
            timeout=config.get_timeout("round-timeout"),
            decode_tol=self.decode_tol,
            deadline=self.deadline,
            inline_limit=parse_bytes(config.get("params-inline-limit")),
        )

    def reencode(self, code: GradientCode) -> int:
        """Switch to another code on the same workers, moving only changed replicas.

        Tasks still running from earlier rounds finish under the old code and
        are discarded as stale; the next round uses ``code``.

        Returns
        -------
        int
            The number of replicas that had to be scattered.
        """
        if self._runner is None or self._placement is None:
            raise RuntimeError("place the partitions before re-encoding")
        if code.n_workers != len(self.workers):
            raise ValueError(
                f"the new code has {code.n_workers} workers, the session {len(self.workers)}"
            )
        moved = self._placement.update(code.B)
        self.code = code
        self._runner.code = code
        logger.info("re-encoded with %r, %d replicas moved", code, moved)
        return moved

    def round(self, fn: Callable[[Any, Any], np.ndarray], params: Any) -> np.ndarray:
        """Run one round and return the decoded sum; its record goes to :attr:`records`."""
        if self._runner is None:
            raise RuntimeError("place the partitions before running rounds")
        total, record = self._runner.run(fn, params)
        self.records.append(record)
        return total

    def close(self) -> None:
        """Cancel running tasks and release every replica."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._placement is not None:
            self._placement.release()
            self._placement = None
