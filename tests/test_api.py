"""The public namespace."""

import dask_quorum.pipeline

import dask_quorum


def test_public_names_resolve():
    for name in dask_quorum.__all__:
        assert getattr(dask_quorum, name) is not None, name
    for name in dask_quorum.pipeline.__all__:
        assert getattr(dask_quorum.pipeline, name) is not None, name


def test_top_level_names_are_the_engine_objects():
    assert dask_quorum.latencies is dask_quorum.pipeline.recorder.latencies
    assert dask_quorum.attach is dask_quorum.pipeline.recorder.attach
    assert dask_quorum.StragglerInjector is dask_quorum.pipeline.inject.StragglerInjector
