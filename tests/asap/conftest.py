"""Fixtures of the ASAP tests."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="module")
def cancer():
    """The breast cancer data, standardised."""
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y
