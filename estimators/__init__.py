"""scikit-learn compatible estimators running on the dask-quorum engine."""

from ._linear import LinearRegression
from ._logistic import LogisticRegression
from ._pagerank import PageRank

__all__ = ["LinearRegression", "LogisticRegression", "PageRank"]
