"""Trace files: reading the EC2 trace CSV, and every way a file can be refused."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.stragglers import latency_matrix, load_trace, trace_rows

# ---------------------------------------------------------------------------
# the real trace file


def test_load_trace_matches_csv(trace_file):
    df = load_trace(trace_file, "data7")
    assert list(df.columns) == ["node", "iteration", "seconds"]
    m, names = latency_matrix(df)
    assert m.shape == (32, 15) and len(names) == 15
    assert int(np.isnan(m).sum()) == 2  # two nodes lack the last iteration


# ---------------------------------------------------------------------------
# small files


GOOD = "trace,node,iteration,seconds\nt1,n0,0,1.0\nt1,n1,0,1.1\nt1,n0,1,1.2\nt1,n1,1,5.0\nt2,n0,0,2.0\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (GOOD + "t2,n1,0,2.1,9\n", "cannot read"),  # corrupt: extra field
        (GOOD + "t2,n1,0", "missing or non-numeric 'seconds' at line"),  # truncated mid-row
        (GOOD + "t2,n1,", "missing or non-numeric 'seconds' at line"),
        (GOOD.replace("1.2", "1.2x"), "non-numeric 'seconds'"),
        (GOOD.replace("1.2", "-1.2"), "negative"),
        (GOOD.replace("seconds", "secs"), r"lacks the column\(s\) \['seconds'\]"),
        (GOOD.replace(",1,1.2", ",1.5,1.2"), "non-negative integer"),
        ("", "cannot read"),
        (GOOD + "t1,n0,1,3.0\n", "repeats node 'n0' iteration 1"),
        # the messages name the lines and show the first offending one
        (GOOD + "t2,n1,0,2.1,9\n", r"line\(s\) \[7\] \(line 7: too many fields \['t2', 'n1', '0', '2.1', '9'\]"),
        (GOOD + "t2,n1,0", r"'seconds' at line\(s\) \[7\] \(line 7: truncated row \['t2', 'n1', '0'\]"),
        (GOOD + "t2,,0,1.0", r"missing 'node' at line\(s\) \[7\] \(line 7: truncated row"),
        (GOOD.replace("1.2", "1.2x"), r"at line\(s\) \[4\] \(line 4: seconds must be a number, got '1.2x'\)"),
        (GOOD.replace("1.2", "nan"), r"NaN, negative or infinite 'seconds' at line\(s\) \[4\]"),
        (GOOD.replace(",1,1.2", ",one,1.2"), r"line 4: iteration must be an integer, got 'one'"),
        (GOOD.replace(",1,1.2", ",-1,1.2"), r"line 4: iteration must be >= 0, got -1"),
        (GOOD + "t1,n0,1,3.0\n", r"\(line 7: iteration 1 of node 'n0' is given twice\)"),
    ],
)
def test_load_trace_errors(tmp_path, text, match):
    path = tmp_path / "trace.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_trace(path, "t1")


def test_load_trace_unknown_trace(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text(GOOD)
    df = load_trace(path, "t1")
    assert df["seconds"].tolist() == [1.0, 1.2, 1.1, 5.0]
    with pytest.raises(ValueError, match=r"unknown trace 'data5'.*\['t1', 't2'\]"):
        load_trace(path, "data5")


def test_load_trace_keeps_node_names_as_text_and_rejects_extra_fields(tmp_path):
    good = tmp_path / "names.csv"
    good.write_text("trace,node,iteration,seconds\nt,01,0,1.0\nt,1,0,2.0\nt,01,1,1.0\nt,1,1,2.0\n")
    df = load_trace(good, "t")
    assert sorted(set(df["node"])) == ["01", "1"]
    shifted = tmp_path / "extra.csv"
    shifted.write_text("trace,node,iteration,seconds\ntoy,a,0,1,9\n")
    with pytest.raises(ValueError):
        load_trace(shifted, "a")
    with pytest.raises(ValueError):
        load_trace(shifted, "toy")


def test_trace_rows_keep_the_file_order_and_load_trace_sorts_them(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("trace,node,iteration,seconds,host\nt,b,1,2.0,h\nt,a,1,1.0,h\nu,a,0,5.0,h\nt,b,0,3.0,h\nt, a ,0,4.0,h\n")
    rows = trace_rows(path, "t")
    assert list(rows.columns) == ["node", "iteration", "seconds"]
    assert rows["node"].tolist() == ["b", "a", "b", "a"]  # the order of the file, names stripped
    assert rows["iteration"].tolist() == [1, 1, 0, 0] and rows["seconds"].tolist() == [2.0, 1.0, 3.0, 4.0]
    df = load_trace(path, "t")
    assert list(zip(df["node"], df["iteration"])) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]


def test_integral_iterations_are_integers(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("trace,node,iteration,seconds\nt,a,0,1.0\nt,a,1.0,2.0\n")
    assert trace_rows(path, "t")["iteration"].tolist() == [0, 1]
