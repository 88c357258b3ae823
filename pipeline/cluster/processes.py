"""A real cluster of separate processes on this machine: ``dask scheduler`` + ``dask worker``.

For integration and failure tests that need what a :class:`~distributed.LocalCluster`
does not give: a scheduler started from the command line with a
``--preload`` module, workers without a nanny (so a killed worker stays
dead instead of being restarted), worker processes to kill, stop
(``SIGSTOP``) or add while a fit runs, and TLS. Everything listens on the
loopback interface only.

Examples
--------
>>> with SubprocessCluster(n_workers=3) as cluster:  # doctest: +SKIP
...     with cluster.client() as client:
...         LogisticRegression(client=client).fit(X, y)
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distributed import Client
from distributed.security import Security

from .identity import scheduler_workers

logger = logging.getLogger(__name__)

__all__ = ["SCHEDULER_PRELOAD", "SubprocessCluster", "TLSFiles", "free_port"]

#: Module the scheduler preloads: the dashboard module, which attaches the
#: latency recorder too.
SCHEDULER_PRELOAD = "dask_quorum.dashboard"

#: Seconds a process gets to exit on SIGTERM in :meth:`SubprocessCluster.close`.
GRACE = 5.0


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of a TLS setup: the CA certificate, and a certificate + key it signed."""

    ca_file: str
    cert_file: str
    key_file: str

    def security(self) -> Security:
        """A :class:`~distributed.security.Security` that requires encryption with these files."""
        return Security(
            tls_ca_file=self.ca_file,
            tls_client_cert=self.cert_file,
            tls_client_key=self.key_file,
            require_encryption=True,
        )

    def cli_options(self) -> list[str]:
        """``--tls-ca-file``, ``--tls-cert``, ``--tls-key`` for ``dask scheduler|worker``."""
        return ["--tls-ca-file", self.ca_file, "--tls-cert", self.cert_file, "--tls-key", self.key_file]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SubprocessCluster:
    """``dask scheduler`` and ``dask worker --no-nanny`` processes on 127.0.0.1.

    Parameters
    ----------
    n_workers : int, default=3
        Workers started with the cluster.
    nthreads : int, default=1
        Threads per worker.
    preload : str or None, default=SCHEDULER_PRELOAD
        Module the scheduler preloads (``--preload``); None for none.
    tls : TLSFiles, optional
        Serve ``tls://`` with these files (scheduler, workers and
        :meth:`client` alike) instead of plain ``tcp://``.
    timeout : float, default=60
        Seconds to wait for the scheduler and the workers to come up.
    env : mapping, optional
        Extra environment variables of the processes (e.g. dask config as
        ``DASK_DISTRIBUTED__...``).

    Attributes
    ----------
    address : str
        The scheduler's address.
    workers : dict of str to subprocess.Popen
        Worker processes by name (``"w0"``, ``"w1"``, ...), running or not.
    """

    def __init__(
        self,
        n_workers: int = 3,
        *,
        nthreads: int = 1,
        preload: str | None = SCHEDULER_PRELOAD,
        tls: TLSFiles | None = None,
        timeout: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.nthreads = int(nthreads)
        self.tls = tls
        self.timeout = float(timeout)
        self.env = {**os.environ, **(env or {})}
        self._logs = tempfile.TemporaryDirectory(prefix="quorum-cluster-")
        self.workers: dict[str, subprocess.Popen] = {}
        self._stopped: set[int] = set()
        self._count = 0
        port = free_port()
        protocol = "tls" if tls is not None else "tcp"
        self.address = f"{protocol}://127.0.0.1:{port}"
        args = ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", "127.0.0.1:0"]
        if tls is not None:
            args += ["--protocol", "tls", *tls.cli_options()]
        if preload:
            args += ["--preload", preload]
        self._scheduler_args = args
        self.scheduler = self._spawn("scheduler", args)
        try:
            self.add_workers(n_workers)
        except BaseException:
            self.close()
            raise

    # -- processes ------------------------------------------------------
    def _spawn(self, name: str, args: Sequence[str]) -> subprocess.Popen:
        log = open(Path(self._logs.name) / f"{name}.log", "wb")
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "dask", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        finally:
            log.close()

    def log(self, name: str) -> str:
        """The output of process ``name`` (``"scheduler"`` or a worker name) so far."""
        path = Path(self._logs.name) / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def security(self) -> Security | None:
        """What a client needs to connect: the TLS :class:`Security`, or None."""
        return self.tls.security() if self.tls is not None else None

    def client(self, **kwargs: object) -> Client:
        """A new client of this cluster (``timeout`` defaults to the cluster's)."""
        kwargs.setdefault("timeout", self.timeout)
        if self.tls is not None:
            kwargs.setdefault("security", self.security())
        return Client(self.address, **kwargs)

    def add_workers(self, n: int, *, wait: bool = True) -> list[str]:
        """Start ``n`` more workers; with ``wait``, return once they are connected.

        Returns
        -------
        list of str
            Names of the new workers.
        """
        names = []
        for _ in range(n):
            name = f"w{self._count}"
            self._count += 1
            args = [
                "worker", self.address, "--no-nanny", "--nthreads", str(self.nthreads),
                "--host", "127.0.0.1", "--no-dashboard", "--name", name, "--memory-limit", "0",
                "--death-timeout", str(int(self.timeout)),
                "--local-directory", str(Path(self._logs.name) / name),
            ]
            if self.tls is not None:
                args += self.tls.cli_options()
            self.workers[name] = self._spawn(name, args)
            names.append(name)
        if wait and names:
            self.wait_for(names)
        return names

    def wait_for(self, names: Sequence[str]) -> None:
        """Wait until the workers ``names`` are connected to the scheduler.

        Raises
        ------
        TimeoutError
            After :attr:`timeout` seconds, with the processes' output.
        RuntimeError
            If a process exits first.
        """
        deadline = time.monotonic() + self.timeout
        with self._first_client(deadline) as client:
            while True:
                present = {info.get("name") for info in scheduler_workers(client).values()}
                missing = [n for n in names if n not in present]
                if not missing:
                    return
                for name in missing:
                    if self.workers[name].poll() is not None:
                        raise RuntimeError(f"worker {name} exited early:\n{self.log(name)[-3000:]}")
                if self.scheduler.poll() is not None:
                    raise RuntimeError(f"the scheduler exited early:\n{self.log('scheduler')[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"workers {missing} did not connect to {self.address} within "
                        f"{self.timeout:g} s:\n{self.log(missing[0])[-3000:]}"
                    )
                time.sleep(0.1)

    def _first_client(self, deadline: float) -> Client:
        """A client, retried until ``deadline`` while the scheduler process starts listening.

        A scheduler still starting can accept a connection and close it in
        the handshake (``CommClosedError``, an ``OSError``).
        """
        while True:
            try:
                return self.client(timeout=max(1.0, deadline - time.monotonic()))
            except OSError as exc:
                if self.scheduler.poll() is not None:
                    raise RuntimeError(f"the scheduler exited early:\n{self.log('scheduler')[-3000:]}") from exc
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no client could connect to {self.address} within {self.timeout:g} s "
                        f"({exc}):\n{self.log('scheduler')[-3000:]}"
                    ) from exc
                logger.debug("scheduler at %s not ready yet: %s", self.address, exc)
                time.sleep(0.2)

    def pid(self, name: str) -> int:
        """Process id of worker ``name``."""
        return self.workers[name].pid

    def signal(self, name: str, signum: int) -> None:
        """Send ``signum`` to worker ``name`` (``SIGSTOP``-ped workers are continued on close)."""
        pid = self.pid(name)
        os.kill(pid, signum)
        if signum == signal.SIGSTOP:
            self._stopped.add(pid)
        elif signum in (signal.SIGCONT, signal.SIGKILL):
            self._stopped.discard(pid)

    def restart_scheduler(self) -> None:
        """Kill the scheduler (``SIGKILL``) and start a new one at the same address.

        Workers without a nanny shut down when they lose their scheduler; the
        new scheduler starts with none.
        """
        self.scheduler.kill()
        self.scheduler.wait(10)
        self.scheduler = self._spawn("scheduler", self._scheduler_args)

    def close(self) -> None:
        """Stop every process: workers, then the scheduler.

        ``SIGTERM`` first (a stopped worker is continued), ``SIGKILL`` for a
        process still running :data:`GRACE` seconds later; then the logs
        and the workers' local directories are removed.
        """
        for group in (list(self.workers.values()), [self.scheduler]):
            for p in group:
                if p.poll() is None:
                    if p.pid in self._stopped:
                        os.kill(p.pid, signal.SIGCONT)
                    p.terminate()
            deadline = time.monotonic() + GRACE
            for p in group:
                try:
                    p.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        self._stopped.clear()
        self._logs.cleanup()

    def __enter__(self) -> SubprocessCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
