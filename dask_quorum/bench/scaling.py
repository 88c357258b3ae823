"""Internet scale on paper: :func:`~dask_quorum.pipeline.planning.plan` on synthetic clusters.

The EC2 traces have at most 15 nodes. This section fits the straggler model
on each shipped trace (``data2``, ``data4``, ``data8`` by default), draws a
synthetic cluster of ``max(sizes)`` workers from the fitted nodes' profiles
and samples one trace of it
(:func:`~dask_quorum.pipeline.stragglers.synthesis.synthesize_trace`), then
runs the planner's simulator on the trace's first ``n`` workers for every
``n`` in ``sizes`` (16, 64, 256): the expected round time and decoding
error of every scheme, and the scheme :func:`plan` recommends. The clusters
are nested (the 16 are among the 64, on the same rounds) and every worker
holds the same amount of data (weak scaling), so times are comparable
across sizes: a round's time is in units of a typical fast worker's task
(its median latency for one partition). No cluster is started.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dask_quorum.pipeline.coding import EXACT_TOL
from dask_quorum.pipeline.planning import DEFAULT_SCHEMES, plan
from dask_quorum.pipeline.stragglers import (
    StragglerModel,
    fit_straggler_model,
    load_trace,
)
from dask_quorum.pipeline.stragglers.synthesis import synthesize_trace

from .plotting import figure, save

__all__ = ["SIZES", "TRACES", "ScalingRow", "ScalingSection", "scaling_rows", "trace_models"]

#: Cluster sizes of the report.
SIZES = (16, 64, 256)
#: EC2 traces the synthetic clusters are drawn from (those the suite replays).
TRACES = ("data2", "data4", "data8")


@dataclass(frozen=True)
class ScalingRow:
    """One scheme on one synthetic cluster size, as :func:`plan` simulated it."""

    workers: int
    scheme: str
    #: Workers slow in at least one round of the trace.
    slow_workers: int
    mean_time: float
    p95_time: float
    mean_error: float
    cost_per_round: float
    exact: bool
    recommended: bool
    skipped: str = ""


def trace_models(csv: str | Path, traces: tuple[str, ...] = TRACES) -> list[StragglerModel]:
    """The straggler model fitted on each of ``traces`` in the EC2 traces CSV."""
    return [fit_straggler_model(load_trace(csv, t)) for t in traces]


def scaling_rows(
    models: list[StragglerModel],
    sizes: tuple[int, ...] = SIZES,
    *,
    schemes: tuple[str, ...] = DEFAULT_SCHEMES,
    redundancy: int = 2,
    n_rounds: int = 12,
    seed: int = 0,
) -> list[ScalingRow]:
    """Plan every scheme on nested synthetic clusters of ``sizes`` workers, on one replayed trace.

    Parameters
    ----------
    models : list of StragglerModel
        Fitted models to draw the workers from (:func:`trace_models`).
    sizes : tuple of int
        Cluster sizes, each ``>= redundancy``.
    schemes : tuple of str
        Passed to :func:`plan`.
    redundancy : int, default=2
    n_rounds : int, default=12
        Rounds of the trace every size replays.
    seed : int, default=0

    Returns
    -------
    list of ScalingRow
        ``len(sizes) * len(schemes)`` rows, by size then scheme.

    Raises
    ------
    ValueError
        On an empty ``sizes`` or a size below ``redundancy``.
    """
    sizes = tuple(sorted(int(n) for n in sizes))
    if not sizes or sizes[0] < max(1, redundancy):
        raise ValueError(f"sizes must be non-empty and each >= redundancy={redundancy}, got {sizes}")
    trace = synthesize_trace(models, sizes[-1], n_rounds, random_state=seed)
    # a typical fast worker's latency per partition is the time unit
    unit = float(np.median(trace.latencies[~trace.states])) if (~trace.states).any() else 1.0
    rows: list[ScalingRow] = []
    for n in sizes:
        cluster = trace.first(n)
        result = plan(cluster, schemes=schemes, redundancy=redundancy, n_rounds=n_rounds, random_state=seed,
                      rows_per_partition=1.0 / unit)
        slow = int(np.count_nonzero(cluster.states.any(axis=0)))
        for scheme, r in result.table.iterrows():
            rows.append(ScalingRow(
                workers=n, scheme=str(scheme), slow_workers=slow, mean_time=float(r["mean_time"]),
                p95_time=float(r["p95_time"]), mean_error=float(r["mean_error"]),
                cost_per_round=float(r["cost_per_round"]), exact=bool(r["exact"]) if not r["skipped"] else False,
                recommended=scheme == result.recommended, skipped=str(r["skipped"]),
            ))
    return rows


def _cell(row: ScalingRow) -> str:
    if row.skipped:
        return "skipped"
    mark = " **(plan)**" if row.recommended else ""
    error = "0" if row.mean_error <= EXACT_TOL else f"{row.mean_error:.2g}"
    return f"{row.mean_time:.2f} / {error}{mark}"


class ScalingSection:
    """The scaling report as a section of the suite: CSV rows, a markdown table, one plot."""

    name = "scaling"
    title = "Internet scale on paper: the planner's simulator on synthetic clusters drawn from the EC2 traces"

    def __init__(self, rows: list[ScalingRow], *, traces: tuple[str, ...], n_rounds: int, redundancy: int) -> None:
        self.rows = rows
        self.traces = traces
        self.n_rounds = n_rounds
        self.redundancy = redundancy

    @property
    def sizes(self) -> list[int]:
        return sorted({r.workers for r in self.rows})

    @property
    def schemes(self) -> list[str]:
        return list(dict.fromkeys(r.scheme for r in self.rows))

    def csv_rows(self) -> list[dict]:
        """One row per (size, scheme)."""
        return [dict(vars(r)) for r in self.rows]

    def markdown(self, machine: dict[str, str], image_prefix: str = "") -> list[str]:
        """The table (mean round time / mean decoding error per scheme and size) and the plot."""
        by = {(r.workers, r.scheme): r for r in self.rows}
        slow = {r.workers: r.slow_workers for r in self.rows}
        out = [
            f"### {self.title}", "",
            (f"Workers drawn from the straggler models fitted on the EC2 traces {', '.join(self.traces)} "
            f"(each worker copies a measured node's frequency, persistence and latencies), one trace of "
            f"{self.n_rounds} rounds replayed by every scheme, redundancy {self.redundancy}, the same data per "
            "worker at every size; simulated with the engine's stop rule "
            "(`dask_quorum.pipeline.planning.plan`), no cluster. Cell: mean round time in units of a typical "
            "fast worker's task / mean normalised decoding error (0: exact); **(plan)**: the scheme `plan()` "
            "recommends; straggling: workers slow in some round of the trace."),
            "",
            "| scheme | " + " | ".join(f"n = {n} ({slow[n]} straggling)" for n in self.sizes) + " |",
            "|---|" + "---|" * len(self.sizes),
        ]
        for s in self.schemes:
            out.append(f"| {s} | " + " | ".join(_cell(by[(n, s)]) for n in self.sizes) + " |")
        out += ["", f"![scaling]({image_prefix}{self.name}.png)", ""]
        return out

    def write_plots(self, machine: dict[str, str], folder: Path) -> list[Path]:
        """``scaling.png``: round time and decoding error against cluster size, per scheme."""
        folder.mkdir(parents=True, exist_ok=True)
        fig, (left, right) = figure(machine, f"plan()'s simulator on synthetic clusters drawn from the EC2 traces "
                                    f"{', '.join(self.traces)}, redundancy {self.redundancy}, "
                                    f"{self.n_rounds} replayed rounds", ncols=2)
        for s in self.schemes:
            mine = [r for r in self.rows if r.scheme == s and not r.skipped]
            ns = [r.workers for r in mine]
            left.plot(ns, [r.mean_time for r in mine], "o-", label=s)
            right.plot(ns, [max(r.mean_error, 1e-6) for r in mine], "o-", label=s)  # exact drawn at 1e-6
        for ax in (left, right):
            ax.set_xscale("log", base=2)
            ax.set_xticks(self.sizes, [str(n) for n in self.sizes])
            ax.set_xlabel("workers")
        left.set_ylabel("mean round time (typical fast tasks)")
        right.set_yscale("log")
        right.set_ylabel("mean decoding error (1e-6: exact)")
        left.legend(fontsize=7)
        return [save(fig, folder / f"{self.name}.png")]

    def summary(self) -> str:
        """One line per size: the recommended scheme and its speed-up over sync."""
        parts = []
        for n in self.sizes:
            mine = {r.scheme: r for r in self.rows if r.workers == n}
            best = next((r for r in mine.values() if r.recommended), None)
            sync = mine.get("sync")
            if best is None:
                continue
            gain = sync.mean_time / best.mean_time if sync and best.mean_time > 0 else math.nan
            parts.append(f"n={n}: plan recommends {best.scheme} ({gain:.2f}x sync)")
        return "; ".join(parts)
