"""The dask-quorum engine: coding, straggler injection, placement and rounds."""
