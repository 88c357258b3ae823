"""plan(): every scheme on the same sampled rounds, and a recommendation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dask_quorum.pipeline.coding import EXACT_TOL
from dask_quorum.pipeline.planning import TIME_TIE_RTOL, Plan, plan
from markov_models import MarkovModel, persistent

# --------------------------------------------------------------------------- plan


def test_plan_without_stragglers_prefers_sync_and_coding_costs_more():
    result = plan(persistent(8, []), n_rounds=300, random_state=0)
    table = result.table
    assert isinstance(result, Plan) and list(table.index) == [
        "sync", "uncoded", "frc", "cyclic", "expander", "heterogeneous"
    ]
    assert result.recommended == "sync"
    assert table.loc["sync", "mean_time"] <= 1.05 * table["mean_time"].min()
    for scheme in ("frc", "cyclic", "expander", "heterogeneous"):
        assert table.loc[scheme, "cost_per_round"] > 1.8 * table.loc["sync", "cost_per_round"]
        assert table.loc[scheme, "mean_time"] > 1.5 * table.loc["sync", "mean_time"]
    assert table.loc["sync", "mean_error"] == 0.0
    assert table.loc["uncoded", "mean_error"] == pytest.approx(1 / 7)  # always one partition short


def test_plan_with_one_persistent_straggler_recommends_a_tolerant_exact_code():
    result = plan(persistent(8, [2], slowdown=10.0), n_rounds=300, random_state=1)
    table = result.table
    for scheme in ("cyclic", "frc"):
        assert table.loc["sync", "mean_time"] > 3 * table.loc[scheme, "mean_time"]
        assert table.loc[scheme, "mean_error"] <= EXACT_TOL
    assert result.recommended in ("cyclic", "frc")
    assert "faster than sync" in result.reason
    assert "uncoded" in result.reason  # faster-but-inexact schemes are named


def test_a_model_from_thirteen_rounds_recommends_coding_around_a_persistent_straggler():
    """What scheme="auto" sees at its second re-fit (rounds 3 + 10): one worker 12x slow throughout.

    With transition rows shrunk towards the cluster's pooled rate, the healthy
    workers are expected to stay healthy. Under add-one smoothing (P(slow|fast)
    = 1/13 for each of 14 healthy workers) the plan expected a second
    straggler in most rounds and kept ``sync`` for the whole fit.
    """
    from dask_quorum.pipeline.stragglers import fit_straggler_model

    rng = np.random.default_rng(0)
    x = 1e-5 * (1 + 0.05 * rng.random((13, 15)))
    x[1:, 4] *= 12
    model = fit_straggler_model(x)
    healthy = np.arange(15) != 4
    assert model.slow_workers() == [model.workers[4]]
    assert (model.p_slow_fast[healthy] < 0.01).all()
    result = plan(model, schemes=("sync", "cyclic", "heterogeneous"), redundancy=2, error_tol=1e-9,
                  n_rounds=200, random_state=0, rows_per_partition=4000)
    assert result.recommended != "sync"
    assert result.table.loc[result.recommended, "mean_time"] < 0.6 * result.table.loc["sync", "mean_time"]


def test_plan_heterogeneous_has_the_lowest_error_under_two_persistent_stragglers():
    # redundancy 3: the quorum (6 of 8) does not need the stragglers, so
    # approximate codes decode from the six fast workers.
    model = persistent(8, [0, 4], slowdown=10.0)
    errors = []
    for seed in range(3):
        table = plan(model, redundancy=3, n_rounds=200, random_state=seed, schemes=(
            "uncoded", "expander", "heterogeneous"
        )).table
        errors.append(table["mean_error"])
    errors = pd.DataFrame(errors)
    assert (errors["heterogeneous"] <= EXACT_TOL).all()  # its reliable first pass decodes exactly
    assert (errors["expander"] > 1e-3).all()
    assert (errors["expander"] < errors["uncoded"]).all()
    np.testing.assert_allclose(errors["uncoded"], 2 / 6)


def test_plan_heterogeneous_is_exact_beyond_the_tolerance_of_cyclic():
    # Workers 0 and 1 are both slow: they form an frc group and share a cyclic
    # partition, so at redundancy 2 frc and cyclic must wait for one of them.
    # heterogeneous keeps both out of its reliable first pass, which decodes
    # exactly on its own.
    model = persistent(8, [0, 1], slowdown=10.0)
    result = plan(model, schemes=("sync", "frc", "cyclic", "heterogeneous"), n_rounds=200, random_state=0)
    table = result.table
    assert result.recommended == "heterogeneous"
    assert table.loc["heterogeneous", "mean_error"] <= EXACT_TOL and table.loc["heterogeneous", "exact"]
    assert table.loc["heterogeneous", "mean_time"] < 0.3 * table.loc["sync", "mean_time"]
    assert table.loc["frc", "mean_time"] > 1.5 * table.loc["sync", "mean_time"]
    assert table.loc["cyclic", "mean_time"] > 1.5 * table.loc["sync", "mean_time"]


def test_plan_error_tol_admits_approximate_codes():
    # One persistent straggler: cyclic and uncoded both skip it, but uncoded
    # computes one partition per worker instead of two, at an error of 1/8.
    model = persistent(8, [3], slowdown=10.0)
    schemes = ("sync", "cyclic", "uncoded")
    strict = plan(model, schemes=schemes, n_rounds=200, random_state=0)
    assert strict.recommended == "cyclic"
    assert "faster but not eligible: uncoded (error" in strict.reason and "not exact" in strict.reason
    loose = plan(model, schemes=schemes, n_rounds=200, random_state=0, error_tol=0.2)
    assert loose.recommended == "uncoded"
    assert 1 / 8 <= loose.table.loc["uncoded", "mean_error"] <= 0.2
    assert loose.table.loc["uncoded", "mean_time"] < 0.7 * loose.table.loc["cyclic", "mean_time"]
    assert loose.error_tol == 0.2 and strict.error_tol == EXACT_TOL

def test_plan_breaks_near_ties_by_compute_cost():
    # Overhead dominates: frc skips the 10x worker and is faster than sync, but by
    # less than TIME_TIE_RTOL, while computing twice the rows: sync is recommended.
    model = persistent(4, [3], slowdown=10.0, scale=0.0)
    result = plan(model, schemes=("frc", "sync"), n_rounds=20, overhead=1.0, random_state=0)
    table = result.table
    assert table.loc["frc", "mean_time"] < table.loc["sync", "mean_time"]
    assert table.loc["sync", "mean_time"] < (1 + TIME_TIE_RTOL) * table.loc["frc", "mean_time"]
    assert table.loc["frc", "cost_per_round"] > table.loc["sync", "cost_per_round"]
    assert result.recommended == "sync"
    assert "cheapest" in result.reason


def test_plan_lists_impossible_schemes_as_skipped():
    result = plan(persistent(8, [1]), redundancy=3, n_rounds=50, random_state=0)
    reason = "frc needs redundancy to divide n_workers=8, got redundancy=3"
    assert result.skipped == {"frc": reason}
    assert result.table.loc["frc", "skipped"] == reason
    assert result.table.loc["frc", ["mean_time", "mean_error", "cost_per_round"]].isna().all()
    assert "frc" not in result.runs and result.recommended != "frc"
    assert (result.table.drop(index="frc")["skipped"] == "").all()
    text = str(result)
    assert f"frc           skipped: {reason}" in text
    assert f"recommended: {result.recommended} (" in text
    assert text.count("\n") == len(result.table) + 2
    # more redundancy than workers: only sync can be built
    only_sync = plan(persistent(3, []), redundancy=4, n_rounds=20, random_state=0)
    assert only_sync.recommended == "sync"
    assert set(only_sync.skipped) == {"uncoded", "frc", "cyclic", "expander", "heterogeneous"}


def test_plan_without_an_exact_scheme_recommends_the_smallest_error():
    result = plan(persistent(8, [3]), schemes=("uncoded", "expander"), n_rounds=100, random_state=0)
    best = result.table["mean_error"].idxmin()
    assert result.recommended == best
    assert result.reason.startswith("no scheme is exact")


def test_plan_is_reproducible_and_shares_latencies_between_schemes():
    model = MarkovModel([0.9] * 6, [0.05] * 6)
    first = plan(model, n_rounds=100, random_state=7)
    again = plan(model, n_rounds=100, random_state=7)
    pd.testing.assert_frame_equal(first.table, again.table)
    other = plan(model, n_rounds=100, random_state=8)
    assert not first.table["mean_time"].equals(other.table["mean_time"])
    # sync and uncoded hold the same single partition per worker: on the same
    # latencies uncoded, which stops earlier, is never slower in any round
    assert (first.runs["uncoded"].time <= first.runs["sync"].time + 1e-15).all()
    assert first.codes["heterogeneous"].scheme == "heterogeneous"
    assert first.workers == tuple(model.workers)


class _BadModel:
    workers = ["a", "b", "c"]

    def __init__(self, p, shape=(10, 3)):
        self.p = p
        self.shape = shape

    def sample(self, n_rounds, random_state=None):
        return np.ones(self.shape)


@pytest.mark.parametrize(
    "model, kwargs, match",
    [
        (_BadModel([0.1, 0.2, 0.3]), {"schemes": ("sync", "bogus")}, r"unknown schemes \['bogus'\]"),
        (_BadModel([0.1, 0.2, 0.3]), {"schemes": ("sync", "sync")}, r"schemes has duplicates"),
        (_BadModel([0.1, 0.2, 0.3]), {"schemes": ()}, r"schemes is empty"),
        (_BadModel([0.1, 0.2]), {}, r"model.p must have shape \(3,\), got \(2,\)"),
        (_BadModel([0.1, 0.2, 1.5]), {}, r"model.p must be finite and in \[0, 1\]"),
        (_BadModel([0.1, 0.2, 0.3], shape=(10, 2)), {}, r"latencies must have shape \(10, 3\), got \(10, 2\)"),
        (_BadModel([0.1, 0.2, 0.3], shape=(9, 3)), {}, r"latencies must have shape \(10, 3\), got \(9, 3\)"),
        (_BadModel([0.1, 0.2, 0.3]), {"n_rounds": 0}, r"n_rounds must be an integer >= 1, got 0"),
        (_BadModel([0.1, 0.2, 0.3]), {"error_tol": -1.0}, r"error_tol must be a real number >= 0"),
        (_BadModel([0.1, 0.2, 0.3]), {"random_state": "x"}, r"random_state must be None, an int"),
        (object(), {}, r"model must have workers, p and sample"),
    ],
)
def test_plan_rejects_bad_arguments(model, kwargs, match):
    kwargs = {"n_rounds": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        plan(model, **kwargs)
