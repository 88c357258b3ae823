"""scikit-learn's own estimator checks, on a real cluster."""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from dask_quorum import LinearRegression, LogisticRegression

# The checks fit unscaled data (iris, ...) with the default max_iter, where
# scikit-learn's own LogisticRegression warns just the same.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module", autouse=True)
def _cluster(client4):
    """Every check fits on the module's default client."""
    return client4


@parametrize_with_checks([LogisticRegression(scheme="cyclic"), LinearRegression(scheme="cyclic")])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
