"""Tests of dask_quorum.pipeline.inject.slowdown (slowdown specs and their Markov chains)."""

from __future__ import annotations

import numpy as np
import pytest
from dask_quorum.pipeline.inject import Slowdown, slow_states

# --------------------------------------------------------------------------
# Markov chain
# --------------------------------------------------------------------------


def test_chain_is_seeded_and_reproducible():
    spec = Slowdown(factor=3, p_slow_slow=0.7, p_slow_fast=0.2)
    first = slow_states(spec, 200, worker=0, seed=5)
    assert first.dtype == bool and first.shape == (200,)
    assert np.array_equal(first, slow_states(spec, 200, worker=0, seed=5))
    assert np.array_equal(first, slow_states(spec, 200, worker="0", seed=5))
    assert not np.array_equal(first, slow_states(spec, 200, worker=0, seed=6))
    assert not np.array_equal(first, slow_states(spec, 200, worker=1, seed=5))
    assert 0 < first.sum() < 200


@pytest.mark.parametrize(
    "p_slow_slow, p_slow_fast", [(0.7, 0.2), (0.9, 0.05), (0.2, 0.6)]
)
def test_chain_matches_transition_probabilities(p_slow_slow, p_slow_fast):
    spec = Slowdown(p_slow_slow=p_slow_slow, p_slow_fast=p_slow_fast)
    states = slow_states(spec, 20_000, worker="tcp://127.0.0.1:1234", seed=0)
    prev, nxt = states[:-1], states[1:]
    assert abs(nxt[prev].mean() - p_slow_slow) < 0.03
    assert abs(nxt[~prev].mean() - p_slow_fast) < 0.03
    assert abs(states.mean() - spec.slow_fraction) < 0.05


def test_chain_initial_state_follows_stationary_distribution():
    spec = Slowdown(p_slow_slow=0.9, p_slow_fast=0.05)  # slow_fraction = 1/3
    firsts = [slow_states(spec, 1, worker=w)[0] for w in range(600)]
    assert abs(np.mean(firsts) - 1 / 3) < 0.07


def test_chain_degenerate_cases():
    assert slow_states(Slowdown(), 50, worker=0).all()
    assert not slow_states(Slowdown(p_slow_slow=0, p_slow_fast=0), 50, worker=0).any()
    alternating = slow_states(Slowdown(p_slow_slow=0, p_slow_fast=1), 50, worker=0)
    assert (alternating[1:] != alternating[:-1]).all()
    assert Slowdown().slow_fraction == 1.0
    assert Slowdown(p_slow_slow=0, p_slow_fast=0).slow_fraction == 0.0


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"factor": 0.5}, "factor must be finite and >= 1"),
        ({"factor": float("nan")}, "factor must be finite"),
        ({"factor": "2"}, "factor must be a real number"),
        ({"delay": -0.1}, "delay must be finite and >= 0"),
        ({"delay": float("inf")}, "delay must be finite"),
        ({"p_slow_slow": 1.5}, r"p_slow_slow must be finite and in \[0.0, 1.0\]"),
        ({"p_slow_fast": -0.1}, r"p_slow_fast must be finite and in \[0.0, 1.0\]"),
        ({"p_slow_slow": 1.0, "p_slow_fast": 0.0}, "absorbing"),
    ],
)
def test_slowdown_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Slowdown(**kwargs)
