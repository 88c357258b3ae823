"""The collections benchmark (dask_quorum.bench.collections): a tiny run, its parts, its verdicts.

A run on a few MB with three in-process workers checks what the result
holds and that the report renders; the data, the objective on the cluster,
the RSS sampler and the verdicts are checked on their own. No speed is
asserted (in-process workers share the driver's memory, too, so the RSS
growth of that run is only checked to be measured, not small).
"""

from __future__ import annotations

import csv
import json
import math
import runpy
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from distributed import Client, LocalCluster

from dask_quorum.bench.collections import CollectionsConfig, _lbfgs_iterates, run_collections
from dask_quorum.bench.collections_report import RSS_SHARE_TARGET, judge, render_markdown, result_rows
from dask_quorum.bench.collections_data import (
    PeakRSS,
    make_dataset,
    memory_plan,
    objective_values,
)

REPO = Path(__file__).resolve().parents[2]

TINY = {"gigabytes": 3.2e-5, "n_workers": 3, "n_features": 4, "max_iter": 3, "processes": False}


@pytest.fixture(scope="module")
def client3():
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(
        cluster, set_as_default=False
    ) as client:
        yield client


@pytest.fixture(scope="module")
def tiny_run():
    return run_collections(CollectionsConfig(**TINY, schemes=("sync", "cyclic")), log=lambda _: None)


# -- a whole run -----------------------------------------------------------------


def test_a_tiny_run_reports_every_contender(tiny_run):
    r = tiny_run
    assert [c["name"] for c in r["contenders"]] == ["sync", "cyclic", "dask-ml-lbfgs"]
    assert r["n_samples"] == 2000 and r["data_bytes"] == 2000 * 4 * 4
    assert r["n_chunks"] >= 2 * TINY["n_workers"]
    assert "1 persistently slow (10x" in r["scenario"]
    for c in r["contenders"]:
        assert 1 <= c["iterations"] <= TINY["max_iter"] + 1
        assert len(c["curve_s"]) == len(c["curve_loss"]) >= 1
        assert np.all(np.diff(c["curve_s"]) >= 0), "the clock of a fit runs forward"
        assert all(math.isfinite(v) for v in c["curve_loss"]), "every iterate's objective is known"
        # the driver's RSS growth is measured, and reported against the data size
        assert isinstance(c["rss_growth_bytes"], int) and c["rss_growth_bytes"] >= 0
        assert c["rss_growth_share"] == pytest.approx(c["rss_growth_bytes"] / r["data_bytes"])
        assert c["worker_peak_bytes"] > 0 and c["spilled_bytes"] == 0
    assert r["contenders"][1]["note"] == "redundancy 2"


def test_the_optimum_is_the_best_objective_reached(tiny_run):
    r = tiny_run
    best = min(c["best_loss"] for c in r["contenders"])
    assert r["optimum"] == best
    assert r["target"] == pytest.approx(1.001 * best)
    holder = next(c for c in r["contenders"] if c["name"] == r["optimum_by"])
    assert holder["best_loss"] == best and math.isfinite(holder["time_to_target_s"])
    for c in r["contenders"]:
        hits = [t for t, v in zip(c["curve_s"], c["curve_loss"]) if v <= r["target"]]
        assert c["time_to_target_s"] == (hits[0] if hits else math.inf)


def test_the_report_and_rows_carry_every_contender(tiny_run):
    md = render_markdown(tiny_run)
    for name in ("sync", "cyclic", "dask-ml-lbfgs"):
        assert f"| {name} |" in md
    assert "driver RSS growth during the cyclic fit" in md and "best scheme vs dask-ml lbfgs" in md
    rows = result_rows(tiny_run)
    assert [row["name"] for row in rows] == ["sync", "cyclic", "dask-ml-lbfgs"]
    assert "curve_s" not in rows[0]


def test_the_script_writes_csv_markdown_and_json(tmp_path, monkeypatch):
    out = tmp_path / "dask_input.csv"
    argv = ["bench_dask_input.py", "--threads", "--gigabytes", "3.2e-5", "--workers", "2", "--features", "4",
            "--max-iter", "2", "--schemes", "sync", "--no-dask-ml", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(REPO / "benchmarks" / "bench_dask_input.py"), run_name="__main__")
    assert done.value.code == 0
    with open(out) as f:
        assert [row["name"] for row in csv.DictReader(f)] == ["sync"]
    assert "| sync |" in out.with_suffix(".md").read_text()
    assert json.loads(out.with_suffix(".json").read_text())["config"]["n_workers"] == 2


# -- the parts --------------------------------------------------------------------


def test_the_data_are_seeded_float32_and_chunked_by_rows(client3):
    X, y, w = make_dataset(1000, 6, chunk_rows=300, seed=3)
    X2, y2, _ = make_dataset(1000, 6, chunk_rows=300, seed=3)
    assert X.dtype == np.float32 and y.dtype == np.float32 and X.chunks == ((300, 300, 300, 100), (6,))
    a, b = client3.compute([X, y]), client3.compute([X2, y2])
    (xa, ya), (xb, yb) = client3.gather(a), client3.gather(b)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert set(np.unique(ya)) == {0.0, 1.0}
    # the labels follow the model: the true coefficients separate the classes better than chance
    margin = xa @ w
    assert margin[ya == 1].mean() > margin[ya == 0].mean() + 0.5
    X3, _, _ = make_dataset(1000, 6, chunk_rows=300, seed=4)
    assert not np.array_equal(client3.compute(X3).result(), xa)


def test_objective_values_match_the_objective_on_numpy(client3):
    X, y, _ = make_dataset(900, 5, chunk_rows=200, seed=0)
    xs, ys = client3.gather(client3.compute([X, y]))
    rng = np.random.default_rng(0)
    params = rng.standard_normal((40, 6))  # more columns than one evaluation batch
    got = objective_values(client3, X, y, params, C=0.5, timeout=30)
    for row, value in zip(params, got):
        z = xs.astype(np.float64) @ row[:-1] + row[-1]
        expected = np.mean(np.logaddexp(0, z) - ys * z) + row[:-1] @ row[:-1] / (2 * 0.5 * 900)
        assert value == pytest.approx(expected, rel=1e-10)
    assert objective_values(client3, X, y, np.empty((0, 6)), C=1.0, timeout=30).shape == (0,)


def test_the_dask_ml_callback_sees_every_iterate(client3):
    from dask_ml.linear_model import LogisticRegression as DaskMLLogistic

    X, y, _ = make_dataset(600, 3, chunk_rows=200, seed=1)
    seen = []
    est = DaskMLLogistic(solver="lbfgs", max_iter=5, tol=1e-12, solver_kwargs={"normalize": False})
    with client3.as_current(), _lbfgs_iterates(lambda x: seen.append(np.array(x))), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dask-ml's deprecated dask and scipy options
        est.fit(X, y)
    assert 1 <= len(seen) <= 5
    np.testing.assert_allclose(seen[-1], np.r_[est.coef_, est.intercept_])
    from dask_glm import algorithms
    from scipy.optimize import fmin_l_bfgs_b

    assert algorithms.fmin_l_bfgs_b is fmin_l_bfgs_b, "the solver is restored afterwards"


def test_peak_rss_sees_an_allocation_and_its_baseline():
    with PeakRSS(0.001) as rss:
        block = np.ones(40_000_000 // 8)  # 40 MB, touched
        block[::512] += 1.0
    assert rss.growth >= 30_000_000 and rss.samples >= 1
    assert rss.peak - rss.baseline == rss.growth
    del block


def test_memory_plan_counts_the_source_and_the_replicas():
    plan = memory_plan(8e9, 8, 3, 4e9)
    assert plan["share"] == 1e9 and plan["held"] == 4e9 and plan["placing"] == 5e9
    assert plan["held_fraction"] == 1.0 and plan["target"] == 0.6 and plan["pause"] == 0.8
    assert math.isnan(memory_plan(8e9, 8, 3, None)["held_fraction"])


def test_the_config_derives_rows_chunks_and_the_scenario():
    cfg = CollectionsConfig(gigabytes=4, n_workers=8, n_features=100, n_slow=2)
    assert cfg.n_samples == 10_000_000 and cfg.data_bytes == 4 * 10**9
    assert cfg.chunk_rows == 160_000 and cfg.redundancy == 3
    s = cfg.scenario()
    assert s.kind == "persistent" and s.n_slow == 2 and s.factor == 10 and s.redundancy == 3
    assert s.p_slow_slow == 0.9 and s.p_slow_fast == 0.3  # the suite's persistent chain
    assert CollectionsConfig(gigabytes=0.001, n_workers=6, n_features=10, n_slow=1).scenario().n_slow == 1
    with pytest.raises(ValueError, match="n_slow must be in 1 .. n_workers - 1"):
        CollectionsConfig(n_workers=4, n_slow=4)


# -- verdicts: pure -------------------------------------------------------------------


def _result(rss_shares, times, fits=None):
    data = 10**9
    fits = fits or {}
    contenders = [
        {"name": name, "family": "dask-ml" if name.startswith("dask-ml") else "dask-quorum",
         "time_to_target_s": t, "rss_growth_bytes": int(rss_shares.get(name, 0.0) * data),
         "rss_growth_share": rss_shares.get(name, 0.0), "fit_s": fits.get(name, t), "iterations": 30}
        for name, t in times.items()
    ]
    return {"contenders": contenders, "data_bytes": data}


def _verdicts(result):
    return {t.name: t for t in judge(result)}


def test_judge_checks_the_driver_memory_of_dask_quorum_contenders_only():
    v = _verdicts(_result({"sync": 0.01, "cyclic": 0.2, "dask-ml-lbfgs": 0.5},
                          {"sync": 50.0, "cyclic": 5.0, "dask-ml-lbfgs": 30.0}))
    assert v["driver RSS growth during the sync fit"].met is True
    assert v["driver RSS growth during the cyclic fit"].met is False
    assert "20.00% of the data" in v["driver RSS growth during the cyclic fit"].detail
    assert not any("dask-ml-lbfgs fit" in name for name in v)
    assert RSS_SHARE_TARGET == 0.05


def test_judge_takes_the_fastest_coded_scheme_against_dask_ml_and_sync():
    v = _verdicts(_result({}, {"sync": 50.0, "cyclic": 12.0, "heterogeneous": 8.0, "dask-ml-lbfgs": 30.0}))
    vs_ml, vs_sync = v["best scheme vs dask-ml lbfgs"], v["best scheme vs sync"]
    assert vs_ml.met is True and "dask-ml-lbfgs / heterogeneous" in vs_ml.detail and "= 3.75" in vs_ml.detail
    assert vs_sync.met is True and "= 6.25" in vs_sync.detail
    v = _verdicts(_result({}, {"sync": 20.0, "cyclic": 10.0, "dask-ml-lbfgs": 20.0}))
    assert v["best scheme vs dask-ml lbfgs"].met is False and v["best scheme vs sync"].met is False


def test_judge_says_not_measured_when_a_contender_is_missing_or_never_arrives():
    v = _verdicts(_result({}, {"sync": 20.0, "cyclic": 10.0}))
    assert v["best scheme vs dask-ml lbfgs"].met is None
    v = _verdicts(_result({}, {"sync": 20.0, "cyclic": math.inf, "dask-ml-lbfgs": 5.0}))
    assert v["best scheme vs dask-ml lbfgs"].met is None and v["best scheme vs sync"].met is None
    # a rival stopped short of the target: its whole fit bounds its time to target from below
    v = _verdicts(_result({}, {"sync": math.inf, "cyclic": 10.0, "dask-ml-lbfgs": math.inf},
                          fits={"sync": 120.0, "dask-ml-lbfgs": 20.0}))
    assert v["best scheme vs sync"].met is True
    assert "sync stopped after 30 iterations and 120.00 s" in v["best scheme vs sync"].detail
    assert ">= 120.00 s / 10.00 s = 12.00" in v["best scheme vs sync"].detail
    # a bound under the target decides nothing
    assert v["best scheme vs dask-ml lbfgs"].met is None and ">= 20.00 s" in v["best scheme vs dask-ml lbfgs"].detail
