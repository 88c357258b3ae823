"""Bad input, table-driven: every case gets a specific exception whose message
names the problem, within a bounded time.

Covers the estimators, the coding module, the straggler-model fit, trace
loading and replay (pipeline/stragglers.py, pipeline/replay.py), the
injector's worker check and the command line. Estimator cases run against
the in-process ``client4`` cluster.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dask_quorum.pipeline.cluster import free_port
from dask_quorum.pipeline.coding import make_code
from dask_quorum.pipeline.inject import TraceReplay, inject_stragglers
from dask_quorum.pipeline.stragglers import fit_straggler_model, load_trace
from sklearn.utils._param_validation import InvalidParameterError

from dask_quorum import LinearRegression, LogisticRegression
from dask_quorum.cli import main

#: Longest any bad input may take to be refused.
BOUND = 15.0

GOOD_TRACE = "trace,node,iteration,seconds\nt,a,0,1.0\nt,b,0,2.0\nt,a,1,1.0\nt,b,1,1.5\n"


class CliFailed(Exception):
    """The command line exited non-zero; the message is its status and stderr."""


@dataclass
class Env:
    client: Any
    tmp: Path

    def file(self, text: str | bytes, name: str = "trace.csv") -> str:
        path = self.tmp / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return str(path)

    def pickle_file(self) -> str:
        path = self.tmp / "trace.pkl"
        path.write_bytes(pickle.dumps({"trace": ["t"], "seconds": [1.0]}))
        return str(path)

    def cli(self, *argv: str) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(list(argv))
            except SystemExit as exc:
                code = exc.code
        if code != 0:
            raise CliFailed(f"exit {code}: {err.getvalue()}")


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[Env], Any]
    exception: type[BaseException]
    match: str


_rng = np.random.default_rng(0)
X = _rng.normal(size=(40, 3))
Y = (X[:, 0] > 0).astype(int)


def _with(value, where=(0, 1)):
    bad = X.copy()
    bad[where] = value
    return bad


def _objects(value):
    out = np.empty((40, 3), dtype=object)
    out[:] = [[value] * 3] * 40
    return out


def _logistic(env, X_, y_, **params):
    return LogisticRegression(client=env.client, **params).fit(X_, y_)


def _linear(env, X_, y_, **params):
    return LinearRegression(client=env.client, **params).fit(X_, y_)


CASES = [
    # -- estimators -------------------------------------------------------
    Case("logistic-nan", lambda e: _logistic(e, _with(np.nan), Y), ValueError, "Input X contains NaN"),
    Case("linear-inf", lambda e: _linear(e, _with(np.inf), Y), ValueError, "Input X contains infinity"),
    Case("linear-nan-target", lambda e: _linear(e, X, np.where(Y, np.nan, 1.0)), ValueError, "Input y contains NaN"),
    Case("logistic-empty", lambda e: _logistic(e, np.ones((0, 3)), []), ValueError, "0 sample"),
    Case("logistic-one-sample", lambda e: _logistic(e, X[:1], Y[:1]), ValueError, "only one class"),
    Case("logistic-one-class", lambda e: _logistic(e, X, np.ones(40)), ValueError, "only one class"),
    Case("mismatched-lengths", lambda e: _linear(e, X, Y[:-3]), ValueError, "inconsistent numbers of samples"),
    Case("strings", lambda e: _logistic(e, X.astype(str).astype(object) + "x", Y), ValueError, "could not convert string to float"),
    Case("complex-dtype", lambda e: _linear(e, X + 1j, Y), ValueError, "Complex data not supported"),
    Case("object-dtype", lambda e: _linear(e, _objects({}), Y), TypeError, "real number, not 'dict'"),
    Case("continuous-labels", lambda e: _logistic(e, X, X[:, 0]), ValueError, "Unknown label type"),
    Case("zero-redundancy", lambda e: _linear(e, X, Y, redundancy=0), InvalidParameterError, "'redundancy' parameter"),
    Case("negative-redundancy", lambda e: _linear(e, X, Y, redundancy=-2), InvalidParameterError, "'redundancy' parameter"),
    Case("redundancy-above-workers", lambda e: _logistic(e, X, Y, scheme="cyclic", redundancy=9), ValueError, r"redundancy must be <= n_workers=4, got 9"),
    Case("unknown-scheme", lambda e: _logistic(e, X, Y, scheme="raptor"), InvalidParameterError, "'scheme' parameter"),
    Case("negative-alpha", lambda e: _linear(e, X, Y, alpha=-1.0), InvalidParameterError, "'alpha' parameter"),
    Case("wrong-width-at-predict", lambda e: _linear(e, X, Y).predict(X[:, :2]), ValueError, "X has 2 features"),
    # -- coding -----------------------------------------------------------
    Case("code-unknown-scheme", lambda e: make_code("raptor", 4), ValueError, "scheme must be one of"),
    Case("code-zero-workers", lambda e: make_code("cyclic", 0), ValueError, "n_workers must be an integer >= 1, got 0"),
    Case("code-zero-redundancy", lambda e: make_code("cyclic", 4, redundancy=0), ValueError, "redundancy must be an integer >= 1, got 0"),
    Case("code-redundancy-above-workers", lambda e: make_code("frc", 4, redundancy=8), ValueError, "redundancy must be <= n_workers=4"),
    Case("code-frc-not-dividing", lambda e: make_code("frc", 5, redundancy=2), ValueError, "frc needs redundancy to divide"),
    Case("code-float-workers", lambda e: make_code("cyclic", 4.0), ValueError, "n_workers must be an integer"),
    Case("code-nan-probabilities", lambda e: make_code("heterogeneous", 3, straggle_probs=[0.1, np.nan, 0.2]), ValueError, "straggle_probs must be finite"),
    Case("decode-duplicates", lambda e: make_code("cyclic", 4).decode([1, 1, 2]), ValueError, r"duplicate responders: \[1\]"),
    Case("decode-out-of-range", lambda e: make_code("cyclic", 4).decode([0, 7]), ValueError, r"out of range \[0, 4\): \[7\]"),
    Case("decode-float-indices", lambda e: make_code("cyclic", 4).decode([0.5]), ValueError, "integer worker indices"),
    # -- straggler model ----------------------------------------------------
    Case("model-all-nan", lambda e: fit_straggler_model(np.full((5, 3), np.nan)), ValueError, "all NaN"),
    Case("model-inf", lambda e: fit_straggler_model([[1.0, np.inf], [1.0, 1.0]]), ValueError, "finite or NaN.*inf at round 0, worker 1"),
    Case("model-negative", lambda e: fit_straggler_model([[1.0, -2.0], [1.0, 1.0]]), ValueError, "non-negative"),
    Case("model-empty", lambda e: fit_straggler_model(np.empty((0, 3))), ValueError, "empty"),
    Case("model-one-round", lambda e: fit_straggler_model(np.ones((1, 3))), ValueError, "at least 2 rounds"),
    Case("model-strings", lambda e: fit_straggler_model([["a", "b"], ["c", "d"]]), ValueError, "must be numeric"),
    Case("model-threshold", lambda e: fit_straggler_model(np.ones((4, 3)), threshold=0.5), ValueError, "threshold must be"),
    Case("model-worker-names", lambda e: fit_straggler_model(np.ones((4, 3)), workers=["a", "b"]), ValueError, "2 names for 3"),
    # -- traces -----------------------------------------------------------
    Case("trace-truncated", lambda e: load_trace(e.file(GOOD_TRACE + "t,a,2"), "t"), ValueError, r"non-numeric 'seconds' at line\(s\) \[6\]"),
    Case("replay-truncated", lambda e: TraceReplay.from_csv(e.file(GOOD_TRACE + "t,a,2"), "t", workers=[0, 1]), ValueError, "line 6: truncated row"),
    Case("trace-corrupt-binary", lambda e: load_trace(e.file(b"\x00\xff\xfe\x01garbage"), "t"), ValueError, "not a trace CSV text file"),
    Case("replay-corrupt-binary", lambda e: TraceReplay.from_csv(e.file(b"\x00\xff\xfe\x01garbage"), "t", workers=[0]), ValueError, "not a trace CSV text file"),
    Case("trace-pickle", lambda e: load_trace(e.pickle_file(), "t"), ValueError, "never unpickled"),
    Case("replay-pickle", lambda e: TraceReplay.from_csv(e.pickle_file(), "t", workers=[0]), ValueError, "never unpickled"),
    Case("trace-header-only", lambda e: load_trace(e.file("trace,node,iteration,seconds\n"), "t"), ValueError, "no data rows"),
    Case("trace-negative-seconds", lambda e: load_trace(e.file(GOOD_TRACE + "t,a,2,-1\n"), "t"), ValueError, "negative or infinite 'seconds'"),
    Case("trace-unknown", lambda e: load_trace(e.file(GOOD_TRACE), "data9"), ValueError, r"unknown trace 'data9'.*known traces: \['t'\]"),
    Case("trace-missing-column", lambda e: load_trace(e.file("trace,node,seconds\nt,a,1\n"), "t"), ValueError, r"lacks the column\(s\) \['iteration'\]"),
    Case("trace-missing-file", lambda e: load_trace(e.tmp / "absent.csv", "t"), FileNotFoundError, "absent.csv"),
    Case("replay-more-workers-than-nodes", lambda e: TraceReplay.from_csv(e.file(GOOD_TRACE), "t", workers=[0, 1, 2]), ValueError, "3 workers but the trace 't' has only 2 nodes"),
    Case("replay-unknown-worker", lambda e: TraceReplay.from_csv(e.file(GOOD_TRACE), "t", workers=[0, 1]).column("w7"), ValueError, "unknown worker 'w7'"),
    Case("inject-unknown-worker", lambda e: inject_stragglers(e.client, TraceReplay.from_csv(e.file(GOOD_TRACE), "t", workers=["tcp://127.0.0.1:9", 1])), ValueError, r"unknown worker\(s\) \['tcp://127.0.0.1:9'\]"),
    # -- command line -------------------------------------------------------
    Case("cli-unknown-subcommand", lambda e: e.cli("fly"), CliFailed, "(?s)exit 2: .*invalid choice: 'fly'"),
    Case("cli-no-subcommand", lambda e: e.cli(), CliFailed, "(?s)exit 2: .*required"),
    Case("cli-zero-workers", lambda e: e.cli("demo", "--workers", "0"), CliFailed, "(?s)exit 2: .*--workers.*positive integer"),
    Case("cli-non-numeric-option", lambda e: e.cli("demo", "--max-iter", "many"), CliFailed, "(?s)exit 2: .*--max-iter"),
    Case("cli-unknown-scheme", lambda e: e.cli("demo", "--schemes", "raptor"), CliFailed, "(?s)exit 2: .*invalid choice: 'raptor'"),
    Case("cli-unknown-option", lambda e: e.cli("demo", "--turbo"), CliFailed, "(?s)exit 2: .*unrecognized arguments: --turbo"),
    Case("cli-profile-without-scheduler", lambda e: e.cli("profile"), CliFailed, "(?s)exit 2: .*--scheduler"),
    Case(
        "cli-profile-unreachable-scheduler",
        lambda e: e.cli("profile", "--scheduler", f"tcp://127.0.0.1:{free_port()}", "--connect-timeout", "1"),
        CliFailed,
        "(?s)exit 1: dask-quorum profile: error: .*127.0.0.1",
    ),
    Case("cli-plan-missing-profile", lambda e: e.cli("plan", "--profile", str(e.tmp / "absent.nc")), CliFailed, "(?s)exit 1: dask-quorum plan: error: .*absent.nc"),
    Case(
        "cli-unreachable-scheduler",
        lambda e: e.cli("demo", "--scheduler", f"tcp://127.0.0.1:{free_port()}", "--connect-timeout", "1"),
        CliFailed,
        "(?s)exit 1: dask-quorum demo: error: .*127.0.0.1",
    ),
]


@pytest.fixture
def env(client4, tmp_path):
    return Env(client=client4, tmp=tmp_path)


def test_the_table_covers_every_area():
    prefixes = {c.id.split("-")[0] for c in CASES}
    assert {"logistic", "linear", "code", "decode", "model", "trace", "replay", "inject", "cli"} <= prefixes
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_a_message_naming_the_problem(case, env):
    start = time.monotonic()
    with pytest.raises(case.exception, match=case.match):
        case.run(env)
    assert time.monotonic() - start < BOUND


def test_a_pickle_given_as_a_trace_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):  # unpickling would create the marker file
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.csv"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError, match="never unpickled"):
        load_trace(path, "t")
    with pytest.raises(ValueError, match="never unpickled"):
        TraceReplay.from_csv(path, "t", workers=[0])
    assert not marker.exists()
    # the same bytes unpickled do create it: the test would notice
    with open(path, "rb") as f:
        pickle.load(f).close()
    assert marker.exists()
    os.remove(marker)
