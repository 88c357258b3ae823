"""Fixtures of the PageRank tests."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp


@pytest.fixture(scope="module")
def directed():
    """A weighted random digraph with dangling vertices and self-loops."""
    rng = np.random.default_rng(3)
    n = 120
    A = sp.random_array((n, n), density=0.02, format="csr", rng=rng, data_sampler=lambda size: rng.random(size) + 0.1)
    A = (A + sp.diags_array(np.where(rng.random(n) < 0.05, 1.0, 0.0))).tocsr()
    A.eliminate_zeros()
    assert (np.diff(A.indptr) == 0).sum() >= 3
    return A

