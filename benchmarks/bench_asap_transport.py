"""Worker-to-worker message latency: the transports ASAP could use.

Run::

    python benchmarks/bench_asap_transport.py [--processes] [--messages 300]

A task pinned to worker A sends a payload to worker B and waits for the
answer, ``--messages`` times in a row, with each mechanism:

* ``rpc-handler``: a handler installed on every worker by a WorkerPlugin,
  called over the workers' own connection pool (what ASAP uses,
  :mod:`dask_quorum.pipeline.asap.worker`);
* ``actor``: a method of an actor living on B (``submit(..., actor=True)``);
* ``task``: a task submitted from A, pinned to B, through the scheduler;
* ``queue``: a round trip through two ``distributed.Queue`` objects, which
  live on the scheduler.

Prints the median round trip per payload size, and writes a CSV.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
from time import perf_counter

import dask
import numpy as np
from dask_quorum.pipeline.cluster import scheduler_workers
from distributed import Client, LocalCluster, Queue, get_client, get_worker
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.protocol import to_serialize

from dask_quorum.bench.report import write_csv


class EchoPlugin(WorkerPlugin):
    """Installs an ``echo`` RPC handler, as ASAP installs its own."""

    name = "bench-echo"

    def setup(self, worker):
        worker.handlers["bench_echo"] = self.echo

    def echo(self, payload):
        return {"status": "OK", "payload": to_serialize(payload)}


class Echo:
    """The actor."""

    def echo(self, payload):
        return payload


def _echo(payload):
    return payload


def _time(fn, n):
    times = []
    for _ in range(n):
        start = perf_counter()
        fn()
        times.append(perf_counter() - start)
    return times


def via_rpc(peer, payload, n):
    worker = get_worker()

    async def call():
        return await worker.rpc(peer).bench_echo(payload=to_serialize(payload))

    def once():
        asyncio.run_coroutine_threadsafe(call(), worker.loop.asyncio_loop).result(timeout=30)

    return _time(once, n)


def via_actor(actor, payload, n):
    return _time(lambda: actor.echo(payload).result(timeout=30), n)


def via_task(peer, payload, n):
    client = get_client()
    return _time(lambda: client.submit(_echo, payload, workers=[peer], pure=False).result(timeout=30), n)


def serve_queue(name_in, name_out, n):
    q_in, q_out = Queue(name_in), Queue(name_out)
    for _ in range(n):
        q_out.put(q_in.get(timeout=30))
    return n


def via_queue(name_in, name_out, payload, n):
    q_in, q_out = Queue(name_in), Queue(name_out)

    def once():
        q_in.put(payload)
        q_out.get(timeout=30)

    return _time(once, n)


def measure(client, a, b, mechanism, payload, n):
    if mechanism == "rpc-handler":
        fut = client.submit(via_rpc, b, payload, n, workers=[a], pure=False)
    elif mechanism == "actor":
        actor = client.submit(Echo, workers=[b], actor=True).result()
        fut = client.submit(via_actor, actor, payload, n, workers=[a], pure=False)
    elif mechanism == "task":
        fut = client.submit(via_task, b, payload, n, workers=[a], pure=False)
    else:
        tag = f"bench-{perf_counter()}"
        server = client.submit(serve_queue, f"{tag}-in", f"{tag}-out", n, workers=[b], pure=False)
        fut = client.submit(via_queue, f"{tag}-in", f"{tag}-out", payload, n, workers=[a], pure=False)
        server.result(timeout=300)
    return np.array(fut.result(timeout=300))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=300)
    p.add_argument("--processes", action="store_true", help="worker processes (TCP) instead of threads (inproc)")
    p.add_argument("--sizes", type=int, nargs="+", default=[102, 10_000], help="payload sizes in float64s")
    p.add_argument("--mechanisms", nargs="+", default=["rpc-handler", "actor", "task", "queue"])
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "asap_transport.csv"))
    args = p.parse_args(argv)

    rows = []
    with LocalCluster(
        n_workers=2, threads_per_worker=2, processes=args.processes, dashboard_address=":0"
    ) as cluster, Client(cluster) as client:
        client.register_plugin(EchoPlugin())
        a, b = sorted(scheduler_workers(client))
        for size in args.sizes:
            payload = np.random.default_rng(0).standard_normal(size)
            for mechanism in args.mechanisms:
                measure(client, a, b, mechanism, payload, 5)  # warm up connections
                t = measure(client, a, b, mechanism, payload, args.messages)
                rows.append({
                    "mechanism": mechanism, "payload_bytes": payload.nbytes,
                    "median_ms": 1e3 * float(np.median(t)), "p90_ms": 1e3 * float(np.quantile(t, 0.9)),
                    "through_scheduler": mechanism in ("task", "queue"),
                })
    transport = "worker processes (TCP)" if args.processes else "in-process workers (inproc)"
    print(f"# round trip A -> B -> A, {args.messages} messages, {transport}")
    print(f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, dask {dask.__version__}")
    print("| mechanism | payload [B] | median [ms] | p90 [ms] | through the scheduler |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mechanism']} | {r['payload_bytes']} | {r['median_ms']:.3f} | {r['p90_ms']:.3f} | "
              f"{'yes' if r['through_scheduler'] else 'no'} |")
    write_csv(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
