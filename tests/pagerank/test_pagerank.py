"""The PageRank estimator's parameters and API, the R-MAT generator and the PageRank benchmark.

(The coded power iteration is tested in ``test_power.py``, the graphs in
``test_graphs.py``, ASAP mode in ``tests/asap/test_pagerank.py``.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from dask_quorum.estimators import PageRank
from sklearn.base import clone

from dask_quorum.datasets import make_rmat_graph

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


# -- validation ----------------------------------------------------------------
@pytest.mark.parametrize("damping", [0.0, 1.0, 1.5, -0.1])
def test_bad_damping(client4, damping):
    with pytest.raises(ValueError, match="damping"):
        PageRank(damping=damping).fit(sp.eye_array(3, format="csr"))


@pytest.mark.parametrize(
    "personalization, match",
    [
        (np.ones(4), "one weight per vertex"),
        (np.array([1.0, -1.0, 1.0]), "non-negative"),
        (np.zeros(3), "all be zero"),
        ({7: 1.0}, "not in the graph"),
    ],
)
def test_bad_personalization(client4, personalization, match):
    with pytest.raises(ValueError, match=match):
        PageRank(personalization=personalization).fit(sp.eye_array(3, format="csr"))


def test_estimator_api(client4):
    est = PageRank(damping=2.0, tol=-1)  # no validation in __init__
    assert clone(est).get_params() == est.get_params()
    G = nx.DiGraph([(0, 1), (1, 2), (2, 0)])  # a directed cycle: 1/n each
    pr = PageRank(scheme="expander", redundancy=2, random_state=0).fit(G)
    np.testing.assert_allclose(pr.scores_, 1 / 3, atol=1e-10)
    edgeless = PageRank(personalization={0: 3.0, 2: 1.0}).fit(nx.empty_graph(3, create_using=nx.DiGraph))
    np.testing.assert_allclose(edgeless.scores_, [0.75, 0.0, 0.25], atol=1e-12)


# -- the generator and the benchmark -------------------------------------------
def test_rmat_graph():
    A = make_rmat_graph(20_000, random_state=1)
    assert isinstance(A, sp.csr_array) and A.has_sorted_indices
    assert A.shape == (2048, 2048) and A.nnz == 20_000
    assert (A.data == 1.0).all()
    B = A.copy()
    B.sum_duplicates()
    assert B.nnz == A.nnz  # distinct edges
    assert abs(A - make_rmat_graph(20_000, random_state=1)).sum() == 0
    assert abs(A - make_rmat_graph(20_000, random_state=2)).sum() > 0
    out_degree = np.diff(A.indptr)
    assert out_degree.max() > 20 * out_degree.mean()  # hubs: a heavy tail
    assert (out_degree == 0).mean() > 0.1  # dangling vertices
    assert make_rmat_graph(100, scale=12).shape == (4096, 4096)
    with pytest.raises(ValueError, match="at most 1"):
        make_rmat_graph(100, a=0.6, b=0.3, c=0.3)
    with pytest.raises(ValueError, match="fewer than"):
        make_rmat_graph(100, scale=3)


def test_bench_pagerank_prints_a_table(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCH / "bench_pagerank.py"), "--edges", "5000", "--threads",
         "--delay", "0.01", "--schemes", "sync", "cyclic", "asap", "--out", str(tmp_path / "out.csv")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| 5,000")]
    # igraph, networkx, then sync / cyclic / asap without and with the straggler
    assert len(rows) == 8
    assert (tmp_path / "out.csv").read_text().count("\n") == 9
