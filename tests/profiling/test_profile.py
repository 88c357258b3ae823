"""The cluster profile: its file (over the model's NetCDF form), its table, and plans made from it."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from dask_quorum.pipeline.profiling import (
    ClusterProfile,
    load_profile,
    plan_profile,
)
from dask_quorum.pipeline.stragglers import StragglerModel, fit_straggler_model


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
    with pytest.raises(TypeError, match="rows_per_partition"):
        plan_profile(profile, rows_per_partition=3.0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        plan_profile(profile, redundancy_=2)
