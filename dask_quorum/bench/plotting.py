"""Figures of the suite: one style, the machine under every plot (matplotlib, Agg)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from .machine import machine_line

__all__ = ["figure", "pyplot", "save"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(machine: dict[str, str], title: str, *, ncols: int = 1) -> tuple[Any, Any]:
    """A figure with ``ncols`` axes, ``title`` on top and the machine's description below."""
    plt = pyplot()
    fig, ax = plt.subplots(1, ncols, figsize=(8 if ncols == 1 else 10, 4.8))
    fig.text(0.01, 0.01, textwrap.fill(machine_line(machine), 150), fontsize=6, color="grey")
    if ncols == 1:
        ax.set_title(textwrap.fill(title, 100), fontsize=8)
    else:
        fig.suptitle(textwrap.fill(title, 120), fontsize=8)
    return fig, ax


def save(fig: Any, path: Path) -> Path:
    """Lay out, write ``path`` (PNG) and close ``fig``."""
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
