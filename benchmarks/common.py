"""What the scripts beside this file share; it lives in :mod:`dask_quorum.bench`."""

from dask_quorum.bench.report import write_csv

__all__ = ["write_csv"]
