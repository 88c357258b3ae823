"""Writing a run: CSV, markdown tables, PNG plots, and the docs page's results section.

Every figure is a ratio measured in one run (all contenders on the same
cluster under the same injected stragglers); the machine's description is
printed under every table and in every plot.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .machine import machine_line
from .plotting import figure, save
from .targets import evaluate_targets, format_target

__all__ = [
    "DOCS_END",
    "DOCS_START",
    "markdown",
    "result_rows",
    "update_docs",
    "write_csv",
    "write_outputs",
    "write_plots",
]

#: Markers around the generated results section of ``docs/benchmarks.md``.
DOCS_START = "<!-- bench-results:start (written by `dask-quorum bench --update-docs`) -->"
DOCS_END = "<!-- bench-results:end -->"


def _speedup(base: float, t: float) -> float:
    if math.isnan(base) or not math.isfinite(t):
        return math.nan
    return base / t


def result_rows(result) -> list[dict]:
    """One flat row per (workload, scenario, contender), the CSV's content."""
    rows = []
    for r in result.scenarios:
        w = result.workloads[r.workload]
        sync = r.outcome("sync")
        base = sync.time_to_target_s if sync is not None else math.nan
        for o in r.outcomes:
            rows.append({
                "workload": r.workload,
                "scenario": r.scenario.name,
                "n_workers": r.scenario.n_workers,
                "redundancy": r.scenario.redundancy,
                "contender": o.contender,
                "family": o.family,
                "time_to_target_s": o.time_to_target_s,
                "speedup_vs_sync": _speedup(base, o.time_to_target_s),
                "x_oracle": o.time_to_target_s / r.oracle_s if r.oracle_s > 0 else math.nan,
                "rounds_to_target": o.rounds_to_target,
                "rounds": o.rounds,
                "final_loss": o.final_loss,
                "final_vs_opt": w.relative(o.final_loss),
                "best_vs_opt": w.relative(o.best_loss),
                "fit_s": o.fit_s,
                "bytes_out": o.bytes_out,
                "bytes_per_round": o.bytes_out / o.rounds if o.rounds > 0 else math.nan,
                "node_bytes_per_round": o.node_bytes_per_round,
                "compute_s": o.compute_s,
                "oracle_s": r.oracle_s,
                "oracle_rounds": r.oracle_rounds,
                "work_s": r.work_s,
                "floor_s": r.floor_s,
                "note": o.note,
            })
    return rows


def write_csv(rows: list[dict], path: str | Path) -> None:
    """Write rows as CSV (nothing when there are none), creating the folder."""
    if not rows:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _num(x: float, fmt: str, never: str = "never") -> str:
    if isinstance(x, float) and math.isinf(x):
        return never
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return format(x, fmt)


def _bytes(x: float) -> str:
    if math.isnan(x):
        return "-"
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if x >= size:
            return f"{x / size:.1f} {unit}"
    return f"{x:.0f} B"


def _scenario_table(workload, rows: list[dict]) -> list[str]:
    lines = [
        ("| contender | time to target [s] | speed-up vs sync | x oracle | rounds to target | rounds "
        f"| {workload.loss_label} | bytes / round | busiest node / round | compute [s] | fit [s] |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['contender']} | {_num(row['time_to_target_s'], '.2f')} "
            f"| {_num(row['speedup_vs_sync'], '.2f')}{'x' if math.isfinite(row['speedup_vs_sync']) else ''} "
            f"| {_num(row['x_oracle'], '.2f')} "
            f"| {row['rounds_to_target'] if row['rounds_to_target'] > 0 else '-'} "
            f"| {row['rounds'] if row['rounds'] > 0 else '-'} | {row['final_vs_opt']:{workload.loss_format}} "
            f"| {_bytes(row['bytes_per_round'])} | {_bytes(row['node_bytes_per_round'])} "
            f"| {_num(row['compute_s'], '.2f')} | {row['fit_s']:.2f} |"
        )
    return lines


def markdown(result, machine: dict[str, str], *, image_prefix: str = "", command: str = "") -> str:
    """The results as markdown: targets, one table per scenario, overhead, the sections, plots."""
    all_rows = result_rows(result)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cfg = result.config
    kind = {True: "single-threaded worker processes", False: "single-threaded in-process workers"}
    out = [f"Measured {stamp}" + (f" with `{command}`" if command else "") + ".", "",
           (f"Machine: {machine_line(machine)}. Clusters: LocalCluster of {kind[bool(cfg.processes)]} "
           f"(overhead table: {kind[cfg.overhead_processes]}); iteration cap {cfg.max_iter}."), ""]
    targets = evaluate_targets(result)
    if targets:
        out += ["### Targets", ""] + [f"- {format_target(t)}" for t in targets] + [""]
    for note in result.notes:
        out.append(f"- note: {note}")
    if result.notes:
        out.append("")
    for name, workload in result.workloads.items():
        mine = [r for r in result.scenarios if r.workload == name]
        if not mine:
            continue
        out += [f"### {workload.description}", "", f"{workload.target_text()}.", ""]
        for r in mine:
            rows = [row for row in all_rows if row["workload"] == name and row["scenario"] == r.scenario.name]
            out += [f"#### {r.scenario.name}: {r.scenario.describe()}", "",
                    (f"Oracle bound {r.oracle_s:.2f} s ({r.oracle_rounds} rounds of {r.work_s * 1e3:.1f} ms "
                    f"of work over the workers' speeds + a {r.floor_s * 1e3:.1f} ms floor); "
                    f"{machine_line(machine, short=True)}."), ""]
            out += _scenario_table(workload, rows)
            out += [f"- note ({row['contender']}): {row['note']}" for row in rows if row["note"]]
            out += [f"- note: {n}" for n in r.notes]
            out += ["", f"![{name} {r.scenario.name}]({image_prefix}{_curve_file(name, r.scenario.name)})", ""]
        out += [f"![{name} speed-ups]({image_prefix}speedup-{name}.png)", ""]
    if result.overhead:
        schemes = list(result.overhead[0].rounds_s)
        out += ["### Engine overhead: an empty round against the bare Dask floor", "",
                (f"{kind[cfg.overhead_processes].capitalize()}. "
                "Bare floor: n no-op tasks pinned to n workers, one gather; engine: one empty coded "
                f"round (parameters shipped, one task per worker, decode); {machine_line(machine, short=True)}."), "",
                "| workers | bare floor [ms] | " + " | ".join(f"`{s}` round [ms] (x floor)" for s in schemes) + " |",
                "|---|---|" + "---|" * len(schemes)]
        for row in result.overhead:
            out.append(f"| {row.workers} | {row.floor_s * 1e3:.1f} | " + " | ".join(
                f"{row.rounds_s[s] * 1e3:.1f} ({row.rounds_s[s] / row.floor_s:.2f}x)" for s in schemes) + " |")
        out += ["", f"![engine overhead]({image_prefix}overhead.png)", ""]
    for section in result.sections:  # extra sections (.sections), after the tables
        out += section.markdown(machine, image_prefix)
    return "\n".join(out)


def _curve_file(workload: str, scenario: str) -> str:
    return f"curves-{workload}-{scenario}.png"


def write_plots(result, machine: dict[str, str], folder: Path) -> list[Path]:
    """Time-to-loss curves per scenario, speed-up bars per workload, overhead ratios."""
    from matplotlib import ticker

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for r in result.scenarios:
        w = result.workloads[r.workload]
        fig, ax = figure(machine, f"{r.workload}: {r.scenario.describe()}")
        for o in r.outcomes:
            gap = np.maximum(w.gap(o.curve_loss), 1e-12)
            if o.family == "dask-quorum":
                ax.semilogy(o.curve_s, gap, label=o.contender, lw=1.2)
            elif len(o.curve_s):
                ax.semilogy(o.curve_s, gap, "o--", label=f"{o.contender} (to target, end)", ms=5)
        ax.axhline(w.gap(w.target()), color="grey", ls=":", label="target")
        if math.isfinite(r.oracle_s):
            ax.axvline(r.oracle_s, color="black", ls="-.", lw=0.8, label="oracle bound")
        ax.set_xlabel("seconds since the fit started")
        ax.set_ylabel(w.gap_label)
        ax.legend(fontsize=7, ncol=2)
        written.append(save(fig, folder / _curve_file(r.workload, r.scenario.name)))
    rows = [row for row in result_rows(result) if row["family"] in ("dask-quorum", "dask-ml")]
    for name in result.workloads:
        mine = [row for row in rows if row["workload"] == name]
        if not mine:
            continue
        scenarios = list(dict.fromkeys(row["scenario"] for row in mine))
        contenders = list(dict.fromkeys(row["contender"] for row in mine))
        fig, ax = figure(machine, f"{name}: speed-up over sync to the target, each contender on the "
                          "same cluster under the same stragglers (missing bar: never reached)")
        width = 0.8 / len(contenders)
        for j, c in enumerate(contenders):
            values = [next((row["speedup_vs_sync"] for row in mine if row["scenario"] == s
                            and row["contender"] == c), math.nan) for s in scenarios]
            ax.bar(np.arange(len(scenarios)) + j * width, values, width, label=c)
        ax.axhline(1.0, color="grey", ls=":")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xticks(np.arange(len(scenarios)) + 0.4 - width / 2, scenarios, fontsize=7, rotation=15)
        ax.set_ylabel("time to target: sync / contender")
        ax.legend(fontsize=7, ncol=4)
        written.append(save(fig, folder / f"speedup-{name}.png"))
    if result.overhead:
        fig, ax = figure(machine, "An empty engine round against the bare Dask floor")
        ns = [row.workers for row in result.overhead]
        for s in result.overhead[0].rounds_s:
            ax.plot(ns, [row.rounds_s[s] / row.floor_s for row in result.overhead], "o-", label=f"{s} round")
        ax.axhline(1.5, color="grey", ls=":", label="target 1.5 x floor")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("workers")
        ax.set_ylabel("empty round / bare Dask floor")
        ax.legend(fontsize=7)
        written.append(save(fig, folder / "overhead.png"))
    for section in result.sections:
        written.extend(section.write_plots(machine, folder))
    return written


def write_outputs(result, machine: dict[str, str], out: Path, *, plots: bool = True, command: str = "") -> dict:
    """Write ``results.csv``, ``overhead.csv``, one CSV per section, ``results.md`` and the PNGs into ``out``.

    Returns
    -------
    dict
        ``{"csv": path, "markdown": path, "plots": [paths]}``.
    """
    out.mkdir(parents=True, exist_ok=True)
    write_csv(result_rows(result), out / "results.csv")
    write_csv([{"workers": r.workers, "floor_s": r.floor_s,
                **{f"{k}_s": v for k, v in r.rounds_s.items()},
                **{f"{k}_x_floor": v / r.floor_s for k, v in r.rounds_s.items()}} for r in result.overhead],
              out / "overhead.csv")
    for section in result.sections:
        write_csv(section.csv_rows(), out / f"{section.name}.csv")
    (out / "results.md").write_text(markdown(result, machine, command=command) + "\n")
    written = write_plots(result, machine, out) if plots else []
    return {"csv": out / "results.csv", "markdown": out / "results.md", "plots": written}


def update_docs(result, machine: dict[str, str], plots: list[Path], docs: Path, *, command: str = "") -> None:
    """Replace the results section of ``docs/benchmarks.md`` and copy the PNGs to ``docs/img/bench/``.

    Raises
    ------
    ValueError
        If the page lacks the :data:`DOCS_START` / :data:`DOCS_END` markers.
    FileNotFoundError
        If ``docs/benchmarks.md`` does not exist.
    """
    page = docs / "benchmarks.md"
    text = page.read_text()
    pattern = re.compile(re.escape(DOCS_START) + ".*?" + re.escape(DOCS_END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{page} has no results section between {DOCS_START!r} and {DOCS_END!r}")
    body = markdown(result, machine, image_prefix="img/bench/", command=command)
    text = pattern.sub(lambda _: f"{DOCS_START}\n\n{body}\n\n{DOCS_END}", text)
    images = docs / "img" / "bench"
    images.mkdir(parents=True, exist_ok=True)
    for path in plots:
        shutil.copy2(path, images / path.name)
    page.write_text(text)
