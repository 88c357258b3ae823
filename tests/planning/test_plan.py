"""Tests for dask_quorum.pipeline.planning.plan (simulate rounds, recommend a code)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from dask_quorum.pipeline.coding import EXACT_TOL, make_code
from dask_quorum.pipeline.planning import TIME_TIE_RTOL, Plan, plan, shape_heterogeneous, simulate


@dataclass
class MarkovModel:
    """A fitted straggler model as plan() sees it: a plain data object.

    Worker ``i`` is slow or fast following a two-state Markov chain
    (``P(slow | slow) = stay_slow[i]``, ``P(slow | fast) = become_slow[i]``);
    fast rounds take ``shift + Exp(scale)`` seconds per row, slow ones
    ``slowdown`` times that.
    """

    stay_slow: np.ndarray
    become_slow: np.ndarray
    slowdown: float = 10.0
    shift: float = 1e-3
    scale: float = 5e-5
    workers: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.stay_slow = np.asarray(self.stay_slow, dtype=float)
        self.become_slow = np.asarray(self.become_slow, dtype=float)
        self.workers = [f"tcp://10.0.0.{i}:8786" for i in range(self.stay_slow.size)]

    @property
    def p(self) -> np.ndarray:
        """Stationary probability of the slow state."""
        denom = 1.0 - self.stay_slow + self.become_slow
        return np.divide(self.become_slow, denom, out=np.ones_like(denom), where=denom > 0)

    def sample(self, n_rounds: int, random_state=None) -> np.ndarray:
        rng = np.random.default_rng(random_state)
        n = self.stay_slow.size
        slow = rng.random(n) < self.p
        out = np.empty((n_rounds, n))
        for t in range(n_rounds):
            fast = self.shift + rng.exponential(self.scale, n)
            out[t] = fast * np.where(slow, self.slowdown, 1.0)
            u = rng.random(n)
            slow = np.where(slow, u < self.stay_slow, u < self.become_slow)
        return out


def _persistent(n: int, slow: list[int], **kwargs) -> MarkovModel:
    """Workers in ``slow`` are slow in every round, the others never."""
    flags = np.isin(np.arange(n), slow).astype(float)
    return MarkovModel(flags, flags, **kwargs)


# --------------------------------------------------------------------------- simulate by hand


def test_simulate_stop_rule_and_busy_worker_by_hand_uncoded():
    # uncoded, n = 3, r = 2: min_responders 2, never exact before all 3 answer.
    code = make_code("uncoded", 3, redundancy=2)
    lat = np.array([[1.0, 1.0, 10.0], [5.0, 20.0, 1.0], [1.0, 1.0, 1.0]])
    run = simulate(code, lat)
    # round 0: w0, w1 answer at 1 -> quorum; w2 runs until 10.
    # round 1 (starts at 1): w0 at 6; w2 is free at 10, computes round 1 until 11 -> quorum at 11;
    #   w1 runs until 21.
    # round 2 (starts at 11): w0 and w2 at 12 -> quorum; w1 busy until 21, gets no task.
    np.testing.assert_allclose(run.start, [0, 1, 11])
    np.testing.assert_allclose(run.time, [1, 10, 1])
    np.testing.assert_array_equal(run.n_responders, [2, 2, 2])
    np.testing.assert_array_equal(run.stop, ["quorum"] * 3)
    np.testing.assert_allclose(run.error, [0.5, 0.5, 0.5])  # (n - m) / m
    np.testing.assert_array_equal(
        run.responded, [[True, True, False], [True, False, True], [True, False, True]]
    )
    np.testing.assert_array_equal(
        run.submitted, [[True, True, True], [True, True, True], [True, False, True]]
    )
    np.testing.assert_allclose(run.cost, [12, 26, 2])  # every submitted task runs to completion
    assert run.cost_per_round == pytest.approx(40 / 3)
    assert run.mean_time == pytest.approx(4.0)


def test_simulate_stops_on_exact_decoding_before_the_quorum_frc():
    # frc, n = 4, r = 2: groups {0, 1} and {2, 3}, 2 partitions per worker.
    code = make_code("frc", 4, redundancy=2)
    lat = np.array([[1.0, 5.0, 2.0, 6.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    run = simulate(code, lat, rows_per_partition=1.0, overhead=0.5)
    # round 0: durations 2.5, 10.5, 4.5, 12.5; w0 (error 0.5) then w2 -> exact at 4.5
    # round 1 (from 4.5): w0, w2 at 7 -> exact; w1, w3 busy until 10.5 and 12.5
    # round 2 (from 7): w0, w2 at 9.5 -> exact; w1, w3 still busy: no task
    np.testing.assert_allclose(run.time, [4.5, 2.5, 2.5])
    np.testing.assert_array_equal(run.stop, ["exact"] * 3)
    np.testing.assert_array_equal(run.n_responders, [2, 2, 2])
    np.testing.assert_array_equal(run.error <= EXACT_TOL, [True] * 3)
    np.testing.assert_array_equal(run.submitted[1:], [[True, False, True, False]] * 2)
    np.testing.assert_allclose(run.cost, [30, 5, 5])


def test_simulate_sync_waits_for_every_worker_and_never_leaves_one_busy():
    code = make_code("sync", 3)
    lat = np.array([[1.0, 3.0, 2.0], [4.0, 1.0, 1.0]])
    run = simulate(code, lat, rows_per_partition=2.0)
    np.testing.assert_allclose(run.time, [6.0, 8.0])
    np.testing.assert_array_equal(run.stop, ["exact", "exact"])
    assert run.submitted.all() and run.responded.all()
    np.testing.assert_allclose(run.cost, [12.0, 12.0])


def test_simulate_ties_arrive_in_worker_order():
    code = make_code("uncoded", 4, redundancy=3)  # quorum of 2
    run = simulate(code, np.ones((1, 4)))
    np.testing.assert_array_equal(run.responded, [[True, True, False, False]])
    assert run.time[0] == 1.0


@pytest.mark.parametrize(
    "latencies, kwargs, match",
    [
        (np.ones(4), {}, r"latencies must have shape \(n_rounds, 4\), got \(4,\)"),
        (np.ones((3, 5)), {}, r"latencies must have shape \(n_rounds, 4\), got \(3, 5\)"),
        (np.ones((0, 4)), {}, r"latencies must have shape"),
        (np.full((2, 4), np.nan), {}, r"latencies must be finite and >= 0"),
        (-np.ones((2, 4)), {}, r"latencies must be finite and >= 0"),
        (np.ones((2, 4)), {"rows_per_partition": 0}, r"rows_per_partition must be a real number > 0"),
        (np.ones((2, 4)), {"overhead": -1.0}, r"overhead must be a real number >= 0"),
        (np.ones((2, 4)), {"overhead": True}, r"overhead must be a real number >= 0"),
    ],
)
def test_simulate_rejects_bad_arguments(latencies, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(make_code("cyclic", 4), latencies, **kwargs)


# --------------------------------------------------------------------------- the busy-worker rule


def test_a_10x_straggler_takes_part_in_about_one_round_in_ten():
    model = _persistent(8, [5], slowdown=10.0)
    lat = model.sample(400, random_state=0)
    run = simulate(make_code("cyclic", 8, redundancy=2), lat)
    share = run.participation
    assert 0.07 < share[5] < 0.13, share  # its task spans ~10 rounds of the fast workers
    np.testing.assert_array_equal(np.delete(share, 5), 1.0)
    assert not run.responded[:, 5].any()  # its answers always arrive after their round
    assert (run.n_responders <= 7).all()
    # sync waits for it: it takes part in every round and every round takes its time
    sync = simulate(make_code("sync", 8), lat)
    assert sync.submitted.all()
    assert sync.mean_time > 4 * run.mean_time


# --------------------------------------------------------------------------- plan


def test_plan_without_stragglers_prefers_sync_and_coding_costs_more():
    result = plan(_persistent(8, []), n_rounds=300, random_state=0)
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
    result = plan(_persistent(8, [2], slowdown=10.0), n_rounds=300, random_state=1)
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
    model = _persistent(8, [0, 4], slowdown=10.0)
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
    model = _persistent(8, [0, 1], slowdown=10.0)
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
    model = _persistent(8, [3], slowdown=10.0)
    schemes = ("sync", "cyclic", "uncoded")
    strict = plan(model, schemes=schemes, n_rounds=200, random_state=0)
    assert strict.recommended == "cyclic"
    assert "faster but not eligible: uncoded (error" in strict.reason and "not exact" in strict.reason
    loose = plan(model, schemes=schemes, n_rounds=200, random_state=0, error_tol=0.2)
    assert loose.recommended == "uncoded"
    assert 1 / 8 <= loose.table.loc["uncoded", "mean_error"] <= 0.2
    assert loose.table.loc["uncoded", "mean_time"] < 0.7 * loose.table.loc["cyclic", "mean_time"]
    assert loose.error_tol == 0.2 and strict.error_tol == EXACT_TOL


def test_shape_heterogeneous_keeps_equal_loads_for_one_persistent_straggler():
    # Unbounded, the straggler's load lands on a reliable worker every round
    # waits for; equal loads placed by reliability are as fast as cyclic.
    model = _persistent(15, [4], slowdown=12.0, scale=0.0)
    latencies = model.sample(50, random_state=0)
    probs = np.where(np.arange(15) == 4, 0.95, 0.05)
    code, run = shape_heterogeneous(probs, latencies, redundancy=2, random_state=0)
    np.testing.assert_array_equal(np.count_nonzero(code.B, axis=1), 2)
    unbounded = make_code("heterogeneous", 15, redundancy=2, straggle_probs=probs, random_state=0)
    assert np.count_nonzero(unbounded.B, axis=1).max() == 3
    slower = simulate(unbounded, latencies)
    assert run.mean_time < 0.8 * slower.mean_time
    cyclic = simulate(make_code("cyclic", 15, redundancy=2), latencies)
    assert run.mean_time == pytest.approx(cyclic.mean_time)
    assert run.mean_error <= EXACT_TOL


def test_shape_heterogeneous_shifts_load_when_many_workers_straggle():
    # Six of eight workers are 3x slow in every round, more than any
    # tolerance: with equal loads every round waits for a slow worker, while
    # the two reliable ones can hold every partition between them.
    model = _persistent(8, [0, 1, 2, 3, 4, 5], slowdown=3.0, scale=0.0)
    latencies = model.sample(30, random_state=0)
    probs = np.where(np.arange(8) < 6, 0.9, 0.05)
    code, run = shape_heterogeneous(probs, latencies, redundancy=2, random_state=0)
    loads = np.count_nonzero(code.B, axis=1)
    assert loads[6:].min() > 2 > loads[:6].min()  # work moved from the slow to the reliable
    assert loads[:6].max() <= loads[6:].min()
    equal = make_code("heterogeneous", 8, redundancy=2, straggle_probs=probs, random_state=0, max_load=2)
    assert run.mean_time < 0.9 * simulate(equal, latencies).mean_time


def test_plan_breaks_near_ties_by_compute_cost():
    # Overhead dominates: frc skips the 10x worker and is faster than sync, but by
    # less than TIME_TIE_RTOL, while computing twice the rows: sync is recommended.
    model = _persistent(4, [3], slowdown=10.0, scale=0.0)
    result = plan(model, schemes=("frc", "sync"), n_rounds=20, overhead=1.0, random_state=0)
    table = result.table
    assert table.loc["frc", "mean_time"] < table.loc["sync", "mean_time"]
    assert table.loc["sync", "mean_time"] < (1 + TIME_TIE_RTOL) * table.loc["frc", "mean_time"]
    assert table.loc["frc", "cost_per_round"] > table.loc["sync", "cost_per_round"]
    assert result.recommended == "sync"
    assert "cheapest" in result.reason


def test_plan_lists_impossible_schemes_as_skipped():
    result = plan(_persistent(8, [1]), redundancy=3, n_rounds=50, random_state=0)
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
    only_sync = plan(_persistent(3, []), redundancy=4, n_rounds=20, random_state=0)
    assert only_sync.recommended == "sync"
    assert set(only_sync.skipped) == {"uncoded", "frc", "cyclic", "expander", "heterogeneous"}


def test_plan_without_an_exact_scheme_recommends_the_smallest_error():
    result = plan(_persistent(8, [3]), schemes=("uncoded", "expander"), n_rounds=100, random_state=0)
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
