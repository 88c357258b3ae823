"""scikit-learn compatible estimators running on the dask-quorum engine."""
