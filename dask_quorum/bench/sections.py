"""Extra sections of a suite run: measurements beside the workload x scenario tables.

A section is anything with the members of :class:`Section`: a name (its
CSV is ``<name>.csv``, its plots ``<name>*.png``), a title, its rows, its
markdown and its plots. :data:`SECTIONS` maps a name to a runner
``runner(cfg, log) -> Section``; :func:`~dask_quorum.bench.suite.run_suite`
runs those named by ``SuiteConfig.sections`` after the workloads, and
:mod:`~dask_quorum.bench.report` writes each one's CSV, markdown (after
the scenario tables and the overhead table) and plots, into the docs page
too. To add one: write its runner and register it here.

A runner raises :class:`SectionUnavailable` when it cannot run here (a
missing file or package); the run goes on with a note.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .collections_section import run_dask_input

logger = logging.getLogger(__name__)

__all__ = ["SECTIONS", "Section", "SectionUnavailable", "run_dask_input", "run_scaling"]


class SectionUnavailable(RuntimeError):
    """A section cannot run here; the message says why."""


class Section(Protocol):
    """What the report needs of a section."""

    name: str
    title: str

    def csv_rows(self) -> list[dict]: ...

    def markdown(self, machine: dict[str, str], image_prefix: str = "") -> list[str]: ...

    def write_plots(self, machine: dict[str, str], folder: Path) -> list[Path]: ...

    def summary(self) -> str: ...


def run_scaling(cfg: Any, log: Callable[[str], None] = logger.info) -> Section:
    """The scaling report (:mod:`~dask_quorum.bench.scaling`) on the run's EC2 traces.

    Raises
    ------
    SectionUnavailable
        Without the traces CSV.
    """
    from .scaling import TRACES, ScalingSection, scaling_rows, trace_models

    csv = cfg.traces_csv
    if csv is None:
        raise SectionUnavailable(f"no traces file at {cfg.traces} (give --traces)")
    rows = scaling_rows(trace_models(csv, TRACES), tuple(cfg.scaling_sizes), n_rounds=cfg.scaling_rounds,
                        seed=cfg.seed)
    section = ScalingSection(rows, traces=TRACES, n_rounds=cfg.scaling_rounds, redundancy=2)
    log(f"scaling: {section.summary()}")
    return section


#: Section runners by name, in the order the report shows them.
SECTIONS: dict[str, Callable[..., Section]] = {
    "scaling": run_scaling,
    "dask-input": run_dask_input,
}
