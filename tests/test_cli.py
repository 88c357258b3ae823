"""The command line: the demo end to end, and clear errors for bad arguments."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dask_quorum.pipeline.cluster import scheduler_workers
from dask_quorum.pipeline.profiling import load_profile, plan_profile
from distributed import Client, LocalCluster

from dask_quorum import Slowdown, inject_stragglers, remove_stragglers
from dask_quorum.cli import SUBCOMMANDS, build_parser, main
from dask_quorum.demo import DemoRow, format_table, run_demo


def test_demo_prints_a_table_with_a_speed_up(capsys):
    assert main(["demo", "--workers", "3", "--max-iter", "5", "--delay", "0.02"]) == 0
    out = capsys.readouterr().out
    assert "dashboard: http" in out
    lines = [l for l in out.splitlines() if l.startswith(("sync", "cyclic"))]
    assert [l.split()[0] for l in lines] == ["sync", "cyclic"]
    assert all(l.rstrip().endswith("x") for l in lines)


def test_run_demo_rows_are_consistent(client4):
    rows = run_demo(client4, schemes=("sync", "frc"), max_iter=3, delay=0.01)
    assert [r.scheme for r in rows] == ["sync", "frc"]
    for r in rows:
        assert r.rounds >= r.iterations >= 1
        assert r.seconds > 0 and 0 <= r.accuracy <= 1 and r.final_loss > 0
    # the same straggler model and the same exact answer for both schemes
    assert rows[0].final_loss == pytest.approx(rows[1].final_loss, rel=1e-9)


def test_run_demo_needs_a_fast_worker(client4):
    with pytest.raises(ValueError, match="no fast worker"):
        run_demo(client4, n_stragglers=4)


def test_format_table_reports_the_ratio_to_the_first_row():
    rows = [DemoRow("sync", 10, 9, 4.0, 0.1, 0.9), DemoRow("cyclic", 10, 9, 2.0, 0.1, 0.9)]
    assert format_table(rows).splitlines()[-1].endswith("2.00x")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--workers", "0"], "positive integer"),
        (["demo", "--schemes", "magic"], "invalid choice"),
        (["nope"], "invalid choice"),
        ([], "required"),
        (["profile"], "--scheduler"),
        (["profile", "--scheduler", "tcp://127.0.0.1:1", "--rounds", "1"], "integer >= 2"),
        (["profile", "--scheduler", "tcp://127.0.0.1:1", "--rounds", "many"], "integer >= 2, got 'many'"),
        (["profile", "--scheduler", "tcp://127.0.0.1:1", "--task-seconds", "-1"], "positive number"),
        (["profile", "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "soon"], "positive number"),
        (["plan"], "--profile"),
        (["plan", "--profile", "p.nc", "--redundancy", "0"], "positive integer"),
        (["plan", "--profile", "p.nc", "--schemes", "magic"], "invalid choice"),
        (["plan", "--profile", "p.nc", "--error-tol", "-1"], ">= 0"),
    ],
)
def test_bad_arguments_exit_non_zero_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_unreachable_scheduler_is_a_one_line_error(capsys):
    code = main(["demo", "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "1"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dask-quorum demo: error:")


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "dask_quorum", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "demo" in proc.stdout


@pytest.mark.parametrize("command", [c.name for c in SUBCOMMANDS])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: dask-quorum {command}")
    assert command in build_parser().format_help()


def test_profile_then_plan_end_to_end(client4, tmp_path, capsys):
    address = client4.scheduler.address
    workers = sorted(scheduler_workers(client4))
    slow = workers[1]
    output = tmp_path / "cluster.nc"
    inject_stragglers(client4, {slow: Slowdown(factor=4.0, delay=0.1)}, seed=2)
    try:
        code = main(["profile", "--scheduler", address, "--rounds", "6",
                     "--task-seconds", "0.005", "--output", str(output)])
    finally:
        remove_stragglers(client4)
    assert code == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(tuple(workers))}
    assert sorted(rows) == workers  # one table row per worker
    assert [w for w, line in rows.items() if f"{w} *" in line] == [slow]
    assert f"profile written to {output}" in out
    profile = load_profile(output)
    assert profile.model.slow_workers() == [slow]
    assert profile.model.latencies.shape == (6, 4)

    assert main(["plan", "--profile", str(output), "--schemes", "sync", "uncoded", "cyclic",
                 "--redundancy", "2", "--rounds", "200"]) == 0
    out = capsys.readouterr().out
    expected = plan_profile(profile, schemes=("sync", "uncoded", "cyclic"), redundancy=2, n_rounds=200)
    assert f"recommended: {expected.recommended} (" in out
    assert f"scheme={expected.recommended!r}, redundancy=2" in out
    for scheme in ("sync", "uncoded", "cyclic"):
        line = next(l for l in out.splitlines() if l[2:].startswith(f"{scheme} "))
        mean_time = float(line.split()[-5])  # columns: mean, p95, error, cost, answers
        assert mean_time == pytest.approx(expected.table.loc[scheme, "mean_time"], rel=1e-3)


def test_plan_errors_are_one_line(tmp_path, capsys):
    assert main(["plan", "--profile", str(tmp_path / "missing.nc")]) == 1
    garbage = tmp_path / "garbage.nc"
    garbage.write_text("not netcdf")
    assert main(["plan", "--profile", str(garbage)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith("dask-quorum plan: error: no profile file")
    assert err[1].startswith("dask-quorum plan: error: cannot read")


def test_profile_checks_the_output_path_before_connecting(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "p.nc"
    assert main(["profile", "--scheduler", "tcp://127.0.0.1:1", "--output", str(missing)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"dask-quorum profile: error: cannot write {missing}: no directory {missing.parent}"
    )
    assert main(["profile", "--scheduler", "tcp://127.0.0.1:1", "--output", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"dask-quorum profile: error: cannot write {tmp_path}: not a writable file path"
    )


def test_malformed_scheduler_address_is_named(capsys):
    assert main(["profile", "--scheduler", "nonsense"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dask-quorum profile: error: invalid scheduler address 'nonsense': "
                   "missing port number in address 'nonsense'"]


def test_profile_of_an_unreachable_scheduler_fails_in_a_subprocess(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dask_quorum", "profile", "--scheduler", "tcp://127.0.0.1:1",
         "--connect-timeout", "1", "--output", str(tmp_path / "p.nc")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith("dask-quorum profile: error:") and "127.0.0.1:1" in err[0]
    assert not (tmp_path / "p.nc").exists()


def test_profile_in_a_subprocess_against_a_tcp_scheduler(tmp_path):
    # A separate process: nothing of the test's own clients can stand in for
    # the command's client (e.g. distributed's default client).
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=":0") as cluster, Client(cluster, set_as_default=False) as client:
        workers = sorted(scheduler_workers(client))
        inject_stragglers(client, {workers[0]: Slowdown(factor=4.0, delay=0.1)}, seed=3)
        output = tmp_path / "cluster.nc"
        proc = subprocess.run(
            [sys.executable, "-m", "dask_quorum", "profile", "--scheduler", cluster.scheduler_address,
             "--rounds", "5", "--task-seconds", "0.005", "--output", str(output)],
            capture_output=True, text=True, timeout=120,
        )
        remove_stragglers(client)
    assert proc.returncode == 0, proc.stderr
    assert f"profiling 3 workers of {cluster.scheduler_address}" in proc.stdout
    profile = load_profile(output)
    assert profile.workers == tuple(workers)
    assert profile.model.slow_workers() == [workers[0]]
    assert profile.scheduler == cluster.scheduler_address


def test_a_worker_killed_during_profile_is_a_one_line_error(tmp_path):
    """A real worker process dies mid-profile: exit 1 and one line naming the problem, no traceback."""
    import signal
    import time

    from dask_quorum.pipeline.cluster import SubprocessCluster

    with SubprocessCluster(2, preload=None) as cluster:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask_quorum", "profile", "--scheduler", cluster.address,
             "--rounds", "200", "--task-seconds", "0.05", "--output", str(tmp_path / "p.nc")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "DASK_QUORUM__PROFILE__ROUND_TIMEOUT": "5s"},
        )
        try:
            deadline = time.monotonic() + 60
            while "profiling 2 workers" not in (line := proc.stdout.readline()) and time.monotonic() < deadline:
                assert line or proc.poll() is None, proc.stderr.read()
            time.sleep(0.5)  # some rounds in
            cluster.signal("w1", signal.SIGKILL)
            _, stderr = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 1, stderr
    assert "Traceback" not in stderr
    [line] = stderr.strip().splitlines()
    assert line.startswith("dask-quorum profile: error: ")


def test_the_cli_page_of_the_docs_covers_every_option():
    page = (Path(__file__).resolve().parent.parent / "docs" / "guide" / "cli.md").read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        section = page.split(f"## `dask-quorum {name}`", 1)
        assert len(section) == 2, f"docs/guide/cli.md has no section for {name}"
        body = section[1].split("\n## ", 1)[0]
        options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
        missing = [o for o in options if o != "--help" and f"`{o}" not in body]
        assert not missing, f"docs/guide/cli.md does not document {name} {missing}"
