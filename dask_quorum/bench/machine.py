"""The machine a benchmark ran on, printed next to every figure."""

from __future__ import annotations

import os
import platform
from importlib import metadata

__all__ = ["describe_machine", "machine_line"]

#: Distributions whose versions the description names (absent ones are left out).
_VERSIONS = ("dask", "distributed", "numpy", "scikit-learn", "dask-ml", "dask-quorum")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    import psutil  # a dependency of distributed

    return psutil.virtual_memory().total / 2**30


def describe_machine() -> dict[str, str]:
    """Cores, RAM, CPU model, OS, and the versions of Python and the libraries measured.

    Returns
    -------
    dict of str to str
        Keys ``cpu``, ``cores``, ``ram_gib``, ``os``, ``python`` and one per
        installed distribution of interest (``dask``, ``distributed``, ...).
    """
    info = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "ram_gib": f"{_ram_gib():.0f}",
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
    }
    for name in _VERSIONS:
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return info


def machine_line(info: dict[str, str], *, short: bool = False) -> str:
    """One line for a table caption or a figure footnote (``short``: cores, RAM, Python, dask).

    Examples
    --------
    >>> machine_line({"cores": "2", "ram_gib": "24", "cpu": "x", "os": "Linux",
    ...               "python": "3.11.9", "dask": "2026.8.0"})
    '2 cores, 24 GiB RAM (x, Linux); Python 3.11.9, dask 2026.8.0'
    >>> machine_line({"cores": "2", "ram_gib": "24", "python": "3.11.9", "dask": "2026.8.0"}, short=True)
    '2 cores, 24 GiB RAM, Python 3.11.9, dask 2026.8.0'
    """
    if short:
        return (f"{info['cores']} cores, {info['ram_gib']} GiB RAM, Python {info['python']}, "
                f"dask {info.get('dask', '?')}")
    libs = ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("cpu", "cores", "ram_gib", "os", "python"))
    return (
        f"{info['cores']} cores, {info['ram_gib']} GiB RAM ({info['cpu']}, {info['os']}); "
        f"Python {info['python']}" + (f", {libs}" if libs else "")
    )
