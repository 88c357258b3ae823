"""dask-quorum: straggler-tolerant iterative machine learning on Dask."""
