"""Trace files: the EC2 iteration-time CSV, read as data and checked as a whole.

Holds :data:`TRACE_COLUMNS`, :func:`trace_rows` (the checked rows of one
trace, in file order) and :func:`load_trace` (the same rows sorted by node
and iteration, ready for
:func:`~dask_quorum.pipeline.stragglers.latency_matrix`). The one reader
serves both the model fit and the trace replay
(:meth:`dask_quorum.pipeline.inject.TraceReplay.from_csv`).

A file is parsed as CSV text with :mod:`csv`, never unpickled or executed
(a binary file, a pickle say, is rejected), and validated as a whole: a
corrupt row anywhere makes the file suspect, whichever trace is asked for.
An error about rows names the lines (the first five) and shows the first
offending one.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from os import PathLike

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

#: Columns a trace CSV must have (others are ignored), as in the EC2 trace
#: CSV (``/work/shared/traces``).
TRACE_COLUMNS = ("trace", "node", "iteration", "seconds")
#: Most line numbers an error message lists.
_MAX_LINES = 5
#: The row checks, in the order they are reported: what is wrong, per column.
_PROBLEMS = {
    "extra": "cannot read it as a trace CSV: extra fields",
    "trace": "missing 'trace'",
    "node": "missing 'node'",
    "seconds": "missing or non-numeric 'seconds'",
    "seconds-range": "NaN, negative or infinite 'seconds'",
    "iteration": "'iteration' is not a non-negative integer",
    "fields": "missing fields",
}


def trace_rows(path: str | PathLike[str], trace: str) -> pd.DataFrame:
    """The rows of one trace of a trace CSV, checked, in file order.

    Parameters
    ----------
    path : str or path-like
        CSV file with (at least) the columns ``trace, node, iteration,
        seconds``; other columns are ignored.
    trace : str
        Value of the ``trace`` column to read.

    Returns
    -------
    pandas.DataFrame
        The rows of ``trace`` in the order of the file, long format: columns
        ``node`` (str), ``iteration`` (int) and ``seconds`` (float).

    Raises
    ------
    ValueError
        If the file is not CSV text or is empty, a column is missing, a row
        has too many fields, a row is short or has an empty ``trace``,
        ``node``, ``iteration`` or ``seconds`` (a truncated file), a value
        of ``seconds`` is non-numeric, NaN, negative or infinite, a value of
        ``iteration`` is not a non-negative integer, the file has no data
        rows, ``trace`` is not in the file (the message lists the known
        traces), or a (node, iteration) pair of ``trace`` repeats.
    FileNotFoundError
        If there is no file at ``path``.
    """
    where = os.fspath(path)
    try:
        header, rows = _read_rows(where)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(
            f"{where} is not a trace CSV text file ({exc}); trace files are parsed as CSV data "
            f"with columns {', '.join(TRACE_COLUMNS)}, never unpickled"
        ) from None
    col = {name: header.index(name) for name in TRACE_COLUMNS}
    fields = f"{len(header)} non-empty fields ({', '.join(header)})"

    bad: dict[str, list[tuple[int, str]]] = {check: [] for check in _PROBLEMS}
    names, nodes, iterations, seconds = [], [], [], []
    for line, row in rows:
        value = {name: row[i].strip() if i < len(row) else "" for name, i in col.items()}
        truncated = f"truncated row {row!r}, expected {fields}"
        if len(row) > len(header):
            bad["extra"].append((line, f"too many fields {row!r}, expected {fields}"))
        for name in ("trace", "node"):
            if not value[name]:
                bad[name].append((line, truncated))
        number, problem = _seconds(value["seconds"])
        if problem is not None:
            check = "seconds" if number is None else "seconds-range"
            bad[check].append((line, truncated if not value["seconds"] else problem))
        count, problem = _iteration(value["iteration"])
        if problem is not None:
            bad["iteration"].append((line, truncated if not value["iteration"] else problem))
        if len(row) < len(header):
            bad["fields"].append((line, truncated))
        names.append(value["trace"])
        nodes.append(value["node"])
        iterations.append(count)
        seconds.append(number)
    for check, found in bad.items():
        if found:
            line, detail = found[0]
            raise ValueError(
                f"{where}: {_PROBLEMS[check]} at line(s) {[n for n, _ in found[:_MAX_LINES]]} "
                f"(line {line}: {detail})"
            )

    known = sorted(set(names))
    if not known:
        raise ValueError(f"trace {trace!r} is empty: {where} has no data rows")
    if trace not in known:
        raise ValueError(f"unknown trace {trace!r} in {where}; known traces: {known}")
    mine = [k for k, name in enumerate(names) if name == trace]
    seen: set[tuple[str, int]] = set()
    for k in mine:
        pair = (nodes[k], iterations[k])
        if pair in seen:
            raise ValueError(
                f"{where}: trace {trace!r} repeats node {pair[0]!r} iteration {pair[1]} "
                f"(line {rows[k][0]}: iteration {pair[1]} of node {pair[0]!r} is given twice)"
            )
        seen.add(pair)
    return pd.DataFrame(
        {
            "node": pd.Series([nodes[k] for k in mine], dtype=object).astype(str),
            "iteration": np.array([iterations[k] for k in mine], dtype=np.int64),
            "seconds": np.array([seconds[k] for k in mine], dtype=float),
        }
    )


def _read_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header (stripped) and the non-blank rows with their line numbers."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(
                f"cannot read {path} as a trace CSV: the file is empty: expected a header "
                f"with columns {', '.join(TRACE_COLUMNS)}"
            )
        header = [name.strip() for name in header]
        missing = [name for name in TRACE_COLUMNS if name not in header]
        if missing:
            raise ValueError(
                f"{path} lacks the column(s) {missing}; expected {list(TRACE_COLUMNS)}, found {header}"
            )
        rows = [(reader.line_num, row) for row in reader if row]  # blank lines are skipped
    return header, rows


def _seconds(raw: str) -> tuple[float | None, str | None]:
    """``seconds`` parsed (None when it is no number) and what is wrong with it (None when nothing is)."""
    try:
        value = float(raw)
    except ValueError:
        return None, f"seconds must be a number, got {raw!r}"
    if not math.isfinite(value) or value < 0:
        return value, f"seconds must be finite and >= 0, got {raw!r}"
    return value, None


def _iteration(raw: str) -> tuple[int, str | None]:
    """``iteration`` parsed (0 when it is no integer) and what is wrong with it (None when nothing is)."""
    try:
        value = int(raw)
    except ValueError:
        try:
            number = float(raw)  # "3.0" is the integer 3
        except ValueError:
            number = math.nan
        if not number.is_integer():
            return 0, f"iteration must be an integer, got {raw!r}"
        value = int(number)
    if value < 0:
        return value, f"iteration must be >= 0, got {value}"
    return value, None


def load_trace(path: str | PathLike[str], trace: str) -> pd.DataFrame:
    """Read one trace of the EC2 iteration-time CSV.

    The file is read as data (see :func:`trace_rows`, which states every
    check) and validated as a whole (a corrupt row anywhere makes the file
    suspect), then the rows of ``trace`` are returned.

    Parameters
    ----------
    path : str or path-like
        CSV file with the columns ``trace, node, iteration, seconds``.
    trace : str
        Name of the trace, for example ``"data2"``.

    Returns
    -------
    pandas.DataFrame
        Long format, columns ``node`` (str), ``iteration`` (int) and
        ``seconds`` (float), sorted by node and iteration; accepted by
        :func:`~dask_quorum.pipeline.stragglers.latency_matrix` and
        :func:`~dask_quorum.pipeline.stragglers.fit_straggler_model`.

    Raises
    ------
    ValueError
        If the file cannot be parsed as CSV, a column is missing, a row is
        truncated or has too many fields, a value of
        ``node``/``iteration``/``seconds`` is missing or non-numeric,
        ``seconds`` is negative or infinite, ``iteration`` is not a
        non-negative integer, a (node, iteration) pair repeats, or ``trace``
        is not in the file (the message lists the known traces).

    Examples
    --------
    >>> df = load_trace("/work/shared/traces/aws_ec2_iteration_times.csv", "data2")  # doctest: +SKIP
    >>> df.columns.tolist()  # doctest: +SKIP
    ['node', 'iteration', 'seconds']
    """
    rows = trace_rows(path, trace)
    return rows.sort_values(["node", "iteration"], kind="stable").reset_index(drop=True)
