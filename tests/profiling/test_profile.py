"""Profiling a cluster: the probe workload, the fitted model, the profile file."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from dask_quorum import Slowdown, inject_stragglers, latencies, remove_stragglers
from dask_quorum.pipeline.profiling import (
    PROBE_PREFIX,
    ClusterProfile,
    load_profile,
    plan_profile,
    probe_work,
    profile_cluster,
)
from dask_quorum.pipeline.stragglers import StragglerModel, fit_straggler_model
from dask_quorum.pipeline.cluster import scheduler_workers


def _fitted_model(seed: int = 0, n_rounds: int = 40) -> StragglerModel:
    rng = np.random.default_rng(seed)
    x = 1e-4 * (1.0 + rng.exponential(0.05, size=(n_rounds, 4)))
    x[:, 2] *= 8.0  # a persistent straggler
    x[3, 1] = np.nan  # a missing observation survives the round trip
    return fit_straggler_model(x, workers=["tcp://10.0.0.1:1", "tcp://10.0.0.2:1", "w-2", "w-3"])


def _profile(seed: int = 0) -> ClusterProfile:
    return ClusterProfile(
        model=_fitted_model(seed), task_units=250, unit_seconds=1.1e-4,
        scheduler="tcp://10.0.0.9:8786", created="2026-01-01T00:00:00+00:00",
    )


# -- StragglerModel serialisation (additive in pipeline/stragglers.py) ---------


def test_straggler_model_round_trips_through_netcdf(tmp_path):
    model = _fitted_model()
    path = tmp_path / "model.nc"
    model.to_dataset().to_netcdf(path, engine="scipy")
    with xr.open_dataset(path, engine="scipy") as ds:
        back = StragglerModel.from_dataset(ds.load(), latencies=model.latencies)
    assert back.workers == model.workers
    assert back.threshold == model.threshold
    xr.testing.assert_identical(back.to_dataset(), model.to_dataset())
    assert back.n_rounds.dtype == np.int64
    # the restored latencies make the diagnostics identical
    xr.testing.assert_identical(back.goodness_of_fit(), model.goodness_of_fit())


def test_straggler_model_from_dataset_names_what_is_wrong():
    ds = _fitted_model().to_dataset()
    with pytest.raises(ValueError, match=r"lacks .*\['slow_rate'\]"):
        StragglerModel.from_dataset(ds.drop_vars("slow_rate"))
    no_threshold = ds.copy()
    no_threshold.attrs = {}
    with pytest.raises(ValueError, match="'threshold' attribute"):
        StragglerModel.from_dataset(no_threshold)
    with pytest.raises(ValueError, match="dims"):
        StragglerModel.from_dataset(ds.assign(p=ds["p"].expand_dims(round=2)))
    with pytest.raises(ValueError, match="probabilities"):
        StragglerModel.from_dataset(ds.assign(p=ds["p"] + 2))
    with pytest.raises(ValueError, match="xarray.Dataset"):
        StragglerModel.from_dataset(ds["p"])


# -- the profile file -----------------------------------------------------------


def test_profile_round_trips_through_its_file(tmp_path):
    profile = _profile()
    path = tmp_path / "cluster.nc"
    profile.save(path)
    back = load_profile(path)
    assert (back.task_units, back.unit_seconds) == (profile.task_units, profile.unit_seconds)
    assert (back.scheduler, back.created) == (profile.scheduler, profile.created)
    np.testing.assert_array_equal(back.model.latencies, profile.model.latencies)  # NaN included
    xr.testing.assert_identical(back.to_dataset(), profile.to_dataset())
    assert back.summary() == profile.summary()
    # the file is NetCDF data, not a pickle
    assert path.read_bytes()[:3] == b"CDF"


def test_profile_table_is_in_seconds_per_probe_task():
    profile = _profile()
    table = profile.table()
    assert list(table.index) == list(profile.workers)
    sec = profile.model.latencies * profile.task_units
    np.testing.assert_allclose(table["median_s"], np.nanmedian(sec, axis=0))
    np.testing.assert_allclose(table["p"], profile.model.p)
    assert table.loc["w-2", "p"] > 0.5
    starred = [line for line in profile.summary().splitlines() if " * " in line]
    assert len(starred) == 1 and starred[0].startswith("w-2 *")


def test_load_profile_rejects_what_is_not_a_profile(tmp_path):
    with pytest.raises(FileNotFoundError, match="no profile file"):
        load_profile(tmp_path / "missing.nc")
    garbage = tmp_path / "garbage.nc"
    garbage.write_text("not netcdf")
    with pytest.raises(ValueError, match="cannot read"):
        load_profile(garbage)
    bare = tmp_path / "bare.nc"
    _fitted_model().to_dataset().to_netcdf(bare, engine="scipy")
    with pytest.raises(ValueError, match="not a dask-quorum profile"):
        load_profile(bare)
    ds = _profile().to_dataset()
    with pytest.raises(ValueError, match="version 99"):
        ClusterProfile.from_dataset(ds.assign_attrs(version=99))
    with pytest.raises(ValueError, match="'latency'"):
        ClusterProfile.from_dataset(ds.drop_vars("latency"))
    with pytest.raises(ValueError, match="task_units"):
        ClusterProfile.from_dataset(ds.assign_attrs(task_units="many"))


def test_profile_needs_the_fitted_latencies():
    m = _fitted_model()
    bare = StragglerModel.from_dataset(m.to_dataset())
    with pytest.raises(ValueError, match="latencies"):
        ClusterProfile(model=bare, task_units=1, unit_seconds=1.0)
    with pytest.raises(ValueError, match="task_units"):
        ClusterProfile(model=m, task_units=0, unit_seconds=1.0)
    with pytest.raises(ValueError, match="unit_seconds"):
        ClusterProfile(model=m, task_units=1, unit_seconds=float("nan"))


def test_plan_profile_scales_round_times_with_the_partition_size():
    profile = _profile()
    base = plan_profile(profile, schemes=("sync", "cyclic"), n_rounds=100)
    task = profile.task_units * profile.typical_unit_seconds
    double = plan_profile(profile, schemes=("sync", "cyclic"), n_rounds=100, partition_seconds=2 * task)
    # same seed, same sampled latencies: every duration doubles exactly
    np.testing.assert_allclose(double.table["mean_time"], 2 * base.table["mean_time"], rtol=1e-9)
    assert double.recommended == base.recommended
    with pytest.raises(ValueError, match="partition_seconds"):
        plan_profile(profile, partition_seconds=0)
    with pytest.raises(ValueError, match="ClusterProfile"):
        plan_profile(profile.model)


def test_probe_work_times_its_own_passes():
    assert probe_work(1, size=16) >= 0
    # more passes, more time (a ratio in one run, not a speed assert)
    assert probe_work(400) > probe_work(1)


# -- on a real cluster ---------------------------------------------------------


def test_profile_cluster_finds_the_injected_straggler(client4):
    workers = sorted(scheduler_workers(client4))
    slow = workers[2]
    calls = []
    inject_stragglers(client4, {slow: Slowdown(factor=4.0, delay=0.1)}, seed=1)
    try:
        profile = profile_cluster(
            client4, rounds=6, task_seconds=0.005, progress=lambda d, t: calls.append((d, t))
        )
    finally:
        remove_stragglers(client4)
    assert calls == [(d, 6) for d in range(1, 7)]
    assert profile.workers == tuple(workers)
    assert profile.model.latencies.shape == (6, 4)
    assert np.isfinite(profile.model.latencies).all()
    assert profile.model.slow_workers() == [slow]
    assert profile.scheduler == client4.scheduler.address
    assert profile.task_units >= 1 and profile.unit_seconds > 0
    # the probe tasks are recorded with their work units under their own prefix
    ds = latencies(client4)
    probe = ds["prefix"].to_numpy() == PROBE_PREFIX
    assert probe.sum() == 6 * 4
    assert (ds["units"].to_numpy()[probe] == profile.task_units).all()


def test_profile_cluster_round_timeout_names_the_late_worker(client4):
    workers = sorted(scheduler_workers(client4))
    inject_stragglers(client4, {workers[0]: Slowdown(delay=5.0)}, seed=0)
    try:
        with pytest.raises(TimeoutError, match="still waiting on") as exc:
            profile_cluster(client4, rounds=2, task_seconds=0.001, round_timeout=0.5)
    finally:
        remove_stragglers(client4)  # cuts the sleeping task short
    assert workers[0] in str(exc.value)
    assert not any(w in str(exc.value) for w in workers[1:])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rounds": 1}, "rounds must be an integer >= 2"),
        ({"rounds": 2.5}, "rounds"),
        ({"task_seconds": 0}, "task_seconds"),
        ({"round_timeout": -1}, "round_timeout"),
    ],
)
def test_profile_cluster_rejects_bad_arguments(client4, kwargs, message):
    with pytest.raises(ValueError, match=message):
        profile_cluster(client4, **kwargs)
