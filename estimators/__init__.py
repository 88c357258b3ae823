"""scikit-learn compatible estimators running on the dask-quorum engine."""

from ._linear import LinearRegression
from ._logistic import LogisticRegression

__all__ = ["LinearRegression", "LogisticRegression"]
