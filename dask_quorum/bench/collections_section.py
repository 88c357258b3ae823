"""Data that never visits the driver, as a section of the suite (``dask-input``).

The collections benchmark (:mod:`.collections`) on the suite's settings: a
float32 logistic problem generated and persisted on the workers, fitted by
dask-quorum's ``sync``, ``cyclic`` and ``heterogeneous`` and by dask-ml's
``lbfgs`` under the same persistent stragglers (one slow worker, 10x).
:func:`section_config` maps a :class:`~dask_quorum.bench.suite.SuiteConfig`
to a :class:`~.collections.CollectionsConfig` (1 GB on 8 worker processes;
0.02 GB on 4 in-process workers with ``quick``); :func:`run_dask_input`
runs it and wraps the result in a :class:`DaskInputSection`: the
contenders' CSV rows, the markdown report with the issue's targets, and one
plot of the objective's gap to the optimum against time. The 4 GB run of
the issue stays a standalone script (:data:`STANDALONE`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .collections import CollectionsConfig, run_collections
from .collections_report import judge, render_markdown, result_rows
from .plotting import figure, save
from .targets import format_target
from .workloads import TARGET_RATIO

logger = logging.getLogger(__name__)

__all__ = [
    "DASK_INPUT_SCHEMES",
    "STANDALONE",
    "DaskInputSection",
    "dask_ml_status",
    "run_dask_input",
    "section_config",
]

#: Iteration cap of the section's optimisers (L-BFGS reaches 1.001 x the
#: optimum in 20-35 iterations on this problem).
SECTION_MAX_ITER = 40

#: ``sync``'s cap in a full run: its rounds wait for the 10x straggler, about
#: 7 s each at 1 GB on 2 cores.
SECTION_SYNC_MAX_ITER = 20

#: dask-quorum schemes the section fits, in order.
DASK_INPUT_SCHEMES = ("sync", "cyclic", "heterogeneous")

#: The issue's full-size run, too long for the suite.
STANDALONE = "python benchmarks/bench_dask_input.py --gigabytes 4 --workers 8 --slowdown 10 --n-slow 1"

#: Gaps to the optimum below this are drawn at it (the contender that set the optimum reaches 0).
_GAP_FLOOR = 1e-9

#: Names of the speed-up targets of :func:`~.collections.judge`, in the summary's order.
_SPEEDUPS = ("best scheme vs dask-ml lbfgs", "best scheme vs sync")


def dask_ml_status() -> str | None:
    """None when dask-ml's ``LogisticRegression`` and dask-glm import here, else why not."""
    try:
        import dask_glm.algorithms  # noqa: F401
        import dask_ml.linear_model  # noqa: F401
    except ImportError as exc:
        return f"dask-ml is not importable here ({exc}): dask-ml-lbfgs left out, its target not measured"
    return None


def section_config(cfg: Any) -> tuple[CollectionsConfig, list[str]]:
    """The collections benchmark's settings for a suite run, and notes on what was left out.

    Parameters
    ----------
    cfg : SuiteConfig
        Its ``dask_input_gigabytes``, ``quick`` (4 in-process workers
        instead of 8 worker processes: the driver's memory is only measured
        apart from the workers' with processes, so a full run always uses
        them, whatever ``--threads`` says for the scenarios), ``max_iter``
        (at most :data:`SECTION_MAX_ITER`; ``sync`` stops after
        :data:`SECTION_SYNC_MAX_ITER` in a full run, and the speed-up over
        it is then a lower bound) and ``seed`` are used.

    Returns
    -------
    config : CollectionsConfig
    notes : list of str
        When dask-ml cannot be imported (the run goes on without it), and
        when the workers are threads of the driver's process (quick mode).
    """
    why = dask_ml_status()
    notes = [why] if why else []
    processes = not cfg.quick
    if not processes:
        notes.append("in-process workers share the driver's memory: its RSS growth includes what the workers "
                     "allocate, so the driver-memory targets say nothing in this run (worker processes: the "
                     "full mode)")
    config = CollectionsConfig(
        gigabytes=float(cfg.dask_input_gigabytes), n_workers=4 if cfg.quick else 8,
        max_iter=min(int(cfg.max_iter), SECTION_MAX_ITER), sync_max_iter=None if cfg.quick else SECTION_SYNC_MAX_ITER,
        schemes=DASK_INPUT_SCHEMES, dask_ml=why is None, seed=int(cfg.seed), processes=processes,
    )
    return config, notes


class DaskInputSection:
    """One run of the collections benchmark as a section: CSV rows, the markdown report, one plot.

    Parameters
    ----------
    result : dict
        What :func:`~.collections.run_collections` returned.
    """

    name = "dask-input"
    title = "Fitting a persisted dask array under persistent stragglers"

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result

    def csv_rows(self) -> list[dict]:
        """One row per contender (:func:`~.collections.result_rows`)."""
        return result_rows(self.result)

    def markdown(self, machine: dict[str, str], image_prefix: str = "") -> list[str]:
        """The run's report under this section's heading, the standalone command, the plot."""
        body = render_markdown(self.result).rstrip("\n").split("\n")
        if body and body[0].startswith("## "):  # the report's own heading: the section's replaces it
            body = body[1:]
        return [
            f"### {self.title}", *body, "",
            f"The issue's full-size run (4 GB, 8 worker processes), too long for the suite: `{STANDALONE}`.",
            "", f"![{self.name}]({image_prefix}{self.name}.png)", "",
        ]

    def write_plots(self, machine: dict[str, str], folder: Path) -> list[Path]:
        """``dask-input.png``: objective / optimum - 1 against seconds, one line per contender."""
        folder.mkdir(parents=True, exist_ok=True)
        r = self.result
        fig, ax = figure(machine, f"{r['n_samples']:,} x {r['n_features']} float32 ({r['data_bytes'] / 1e9:.2f} GB) "
                         f"persisted on the workers; {r['scenario']}")
        optimum = r["optimum"]
        for c in r["contenders"]:
            s, loss = np.asarray(c["curve_s"], dtype=float), np.asarray(c["curve_loss"], dtype=float)
            known = np.isfinite(loss)
            if not known.any() or not math.isfinite(optimum) or optimum <= 0:
                continue
            gap = np.maximum(loss[known] / optimum - 1.0, _GAP_FLOOR)
            style = "o--" if c["family"] == "dask-ml" else ".-"
            ax.semilogy(s[known], gap, style, label=c["name"], lw=1.2, ms=3)
        ax.axhline(TARGET_RATIO - 1.0, color="grey", ls=":", label=f"target ({TARGET_RATIO:g} x optimum)")
        ax.set_xlabel("seconds since the fit started")
        ax.set_ylabel(f"objective / optimum - 1 ({_GAP_FLOOR:g}: the optimum)")
        ax.legend(fontsize=7)
        return [save(fig, folder / f"{self.name}.png")]

    def summary(self) -> str:
        """The fastest coded scheme's time-to-target ratios against dask-ml's ``lbfgs`` and ``sync``."""
        by = {t.name: t for t in judge(self.result)}
        gb = self.result["data_bytes"] / 1e9
        return f"{gb:.2f} GB: " + "; ".join(format_target(by[name]) for name in _SPEEDUPS if name in by)


def run_dask_input(cfg: Any, log: Callable[[str], None] = logger.info) -> DaskInputSection:
    """Run the collections benchmark on the suite's settings (:func:`section_config`).

    Without dask-ml the run goes on without it, with a note in the report.
    """
    collections_cfg, notes = section_config(cfg)
    log(f"dask-input: {collections_cfg.gigabytes:g} GB on {collections_cfg.n_workers} "
        f"{'worker processes' if collections_cfg.processes else 'in-process workers'}")
    for note in notes:
        log(f"dask-input: {note}")
    result = run_collections(collections_cfg, log=log)
    result["notes"] = [*notes, *result["notes"]]
    section = DaskInputSection(result)
    log(f"dask-input: {section.summary()}")
    return section
