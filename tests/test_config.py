"""Defaults live in the dask config and are overridable the dask way."""

from __future__ import annotations

import os
import subprocess
import sys

import dask
import pytest

from dask_quorum import config


def test_defaults_are_registered():
    assert dask.config.get("quorum.scheme") == "cyclic"
    assert dask.config.get("quorum.redundancy") == 2
    assert config.get("local-cluster.n-workers") >= 1
    assert config.get_timeout("round-timeout") > 0


def test_packaged_defaults_survive_a_config_reset():
    saved = dict(dask.config.config)
    try:
        dask.config.config.pop("quorum", None)
        assert config.get("scheme") == "cyclic"
        assert config.get_timeout("setup-timeout") == 60
    finally:
        dask.config.config.clear()
        dask.config.config.update(saved)


def test_dask_config_set_overrides():
    with dask.config.set({"quorum.round-timeout": "3 minutes"}):
        assert config.get_timeout("round-timeout") == 180


def test_non_positive_timeout_is_named():
    with dask.config.set({"quorum.round-timeout": "0s"}):
        with pytest.raises(ValueError, match="quorum.round-timeout"):
            config.get_timeout("round-timeout")


def test_environment_variables_override():
    env = dict(os.environ, DASK_QUORUM__SCHEME="sync", DASK_QUORUM__REDUNDANCY="3")
    code = "import dask, dask_quorum; print(dask.config.get('quorum.scheme'), dask.config.get('quorum.redundancy'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["sync", "3"]


def test_unknown_configured_scheme_is_named(client4):
    import numpy as np

    from dask_quorum import LogisticRegression

    X = np.random.default_rng(0).normal(size=(20, 2))
    y = (X[:, 0] > 0).astype(int)
    with dask.config.set({"quorum.scheme": "fancy"}):
        with pytest.raises(ValueError, match="quorum.scheme"):
            LogisticRegression().fit(X, y)
