"""The page /individual-stragglers: its models, runtime registration, preload, a real browser."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import operator
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from dask_quorum.pipeline.cluster import SubprocessCluster, scheduler_workers
from dask_quorum.pipeline.dashboard import (
    ROUTE,
    SOURCES,
    FitBoard,
    FitReporter,
    StragglersPage,
    board_of,
    bokeh_server,
    live_model,
    menu_entry,
    mount,
    register,
    worker_labels,
)
from dask_quorum.pipeline.dashboard.board import dask_setup as board_setup
from dask_quorum.pipeline.engine import CodedSession
from dask_quorum.pipeline.inject import Slowdown, inject_stragglers, remove_stragglers
from dask_quorum.pipeline.recorder import LatencyRecorder, attach, latencies
from distributed import Client, Scheduler, SpecCluster, Worker, wait
from distributed.utils_test import async_poll_for, gen_cluster, inc
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from dask_quorum import LogisticRegression

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=window.__quorum_xss=1>"
LABEL = "<b id=quorum-injected>fit</b>"
NAMES = [SCRIPT, IMG, "w2"]


@contextlib.asynccontextmanager
async def named_workers(s, names=NAMES):
    """In-process workers with the given names (gen_cluster names its own 0, 1, ...)."""
    async with contextlib.AsyncExitStack() as stack:
        workers = [await stack.enter_async_context(Worker(s.address, name=name, nthreads=1)) for name in names]
        yield workers


def columns(source) -> dict:
    return {k: list(v) for k, v in source.data.items()}


# --------------------------------------------------------------------------
# The page's models, built directly on a scheduler
# --------------------------------------------------------------------------


@gen_cluster(client=True, nthreads=[])
async def test_worker_labels_are_names_unique_and_raw(c, s):
    async with named_workers(s) as workers:
        addresses = [w.address for w in workers]
        assert worker_labels(s, addresses) == [SCRIPT, IMG, "w2"]
        assert worker_labels(s, ["tcp://10.1.2.3:4567"]) == ["10.1.2.3:4567"]  # gone: its address
        ws = s.workers[addresses[0]]
        ws.name = "w2"  # two workers with one label: addresses appended
        try:
            assert worker_labels(s, addresses[::2]) == [
                f"w2 ({addresses[0].split('://')[1]})", f"w2 ({addresses[2].split('://')[1]})"
            ]
        finally:
            ws.name = SCRIPT


@gen_cluster(client=True, nthreads=[])
async def test_page_shows_the_board_and_follows_the_latest_fit(c, s):
    async with named_workers(s) as workers:
        page = StragglersPage(s)
        page.update()
        assert "No fit board" in page.status.text
        board_setup(s)
        board = board_of(s)
        B = np.array([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 1.0]])
        rounds = [{"kind": "round", "index": t, "wall_time": 0.1 * t, "responders": [t % 3], "error": 0.5}
                  for t in range(25)]
        board.report("first", [
            {"kind": "assignment", "workers": [w.address for w in workers], "B": B.tolist(), "scheme": "frc"},
            *rounds,
        ], label=LABEL)
        page.update()
        assert page.select.value == "first"
        cells = columns(page.assignment)
        rows, cols = np.nonzero(B)
        assert sorted(zip(cells["worker"], cells["partition"], cells["weight"])) == sorted(
            (NAMES[i], str(j), B[i, j]) for i, j in zip(rows, cols)
        )
        assert page.assignment_figure.y_range.factors == NAMES[::-1]  # first worker on top
        shown = columns(page.rounds)
        assert shown["index"] == list(range(25))
        assert shown["n_responders"] == [1] * 25 and shown["n_stragglers"] == [2] * 25
        assert shown["stragglers"][0] == f"{IMG}, w2"
        assert columns(page.recent)["index"] == list(range(24, 4, -1))  # the newest 20, newest first
        # the status line is HTML: everything from outside is escaped
        assert "&lt;b id=quorum-injected&gt;fit&lt;/b&gt;" in page.status.text
        assert "<b id=" not in page.status.text

        board.report("second", [{"kind": "round", "index": 0, "wall_time": 0.1, "responders": [],
                                 "error_kind": "consensus"}])
        page.update()
        assert page.select.value == "second"  # followed: the newest
        assert [v for v, _ in page.select.options] == ["second", "first"]
        assert page.error_figure.title.text.startswith("Consensus error")
        assert columns(page.assignment)["worker"] == []
        page.select.value = "first"  # the viewer picks one: it stays
        board.report("second", [{"kind": "close"}])
        page.update()
        assert page.select.value == "first" and columns(page.rounds)["index"] == list(range(25))
        assert page.select.options[0][1].endswith("(finished)")


@gen_cluster(client=True, nthreads=[])
async def test_page_shows_latencies_and_model_from_the_recorder(c, s):
    async with named_workers(s) as workers:
        await attach(c)
        page = StragglersPage(s)
        page.update()
        assert "waiting for the latency recorder" in page.status.text
        for _ in range(5):
            await wait([c.submit(inc, i, workers=[w.address], pure=False) for i, w in enumerate(workers)])
        live = live_model(s)
        assert live is page.live  # one per scheduler, shared by every page
        live._started = -np.inf  # due now
        page.update()
        assert live.wait(10)
        page.update()
        latency = columns(page.latency)
        assert sorted(latency["worker"]) == sorted(NAMES)
        assert latency["n"] == [5, 5, 5]
        assert all(lo <= med <= hi for lo, med, hi in zip(latency["q05"], latency["q50"], latency["q95"]))
        model = columns(page.model)
        assert sorted(model["worker"]) == sorted(NAMES)
        assert all(0 <= p <= 1 for p in model["p"] + model["p_slow_slow"] + model["p_slow_fast"])
        assert model["n_rounds"] == [5, 5, 5]
        assert "Model</b> from the last 15 recorder rows" in page.status.text


@gen_cluster(client=True, nthreads=[("127.0.0.1", 1)])
async def test_register_without_dashboard_installs_recorder_and_board(c, s, a):
    assert bokeh_server(s) is None
    assert await register(c) is None
    assert isinstance(s.plugins[LatencyRecorder.name], LatencyRecorder)
    assert isinstance(s.plugins[FitBoard.name], FitBoard)
    assert not mount(s, ROUTE, lambda *args: None)
    for bad in ("individual-x", "/", "/x/"):
        with pytest.raises(ValueError, match="route"):
            mount(s, bad, lambda *args: None)


# --------------------------------------------------------------------------
# A real fit on a cluster with hostile worker names, the page served at runtime
# --------------------------------------------------------------------------


def asap_fits(dask_scheduler):
    """Closed ASAP fits on the board: token -> reported round indices (run on the scheduler)."""
    board = board_of(dask_scheduler)
    return {t: [r.index for r in f.rounds] for t, f in board.fits.items() if f.scheme == "asap" and f.closed}


def fit_asap(client) -> dict:
    """An ASAP fit (no stragglers yet: a second), and what the board got of it."""
    X, y = load_breast_cancer(return_X_y=True)
    est = LogisticRegression(scheme="asap", tol=1e-6, max_iter=2000, random_state=0, client=client)
    est.fit(StandardScaler().fit_transform(X), y)
    deadline = time.monotonic() + 20
    while not (fits := client.run_on_scheduler(asap_fits)) and time.monotonic() < deadline:
        time.sleep(0.05)
    [(token, rounds)] = fits.items()
    assert rounds[-1] == est.n_iter_ - 1
    return {"asap_token": token, "asap_rounds": rounds}


@pytest.fixture(scope="module")
def live_fit():
    """An in-process cluster, ``register`` once, an ASAP fit then a coded fit reported to the board."""
    names = [SCRIPT, IMG, "w2", "w3"]
    spec = {name: {"cls": Worker, "options": {"nthreads": 1}} for name in names}
    with SpecCluster(
        scheduler={"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}},
        workers=spec,
    ) as cluster, Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(4, timeout=30)
        url = register(client)
        assert register(client) == url  # idempotent
        asap = fit_asap(client)
        by_name = {info["name"]: addr for addr, info in scheduler_workers(client).items()}
        slow = by_name[SCRIPT]
        inject_stragglers(
            client, {addr: Slowdown(delay=0.12 if addr == slow else 0.01) for addr in by_name.values()}, seed=0
        )
        try:
            with CodedSession(client, scheme="cyclic", redundancy=2, random_state=0, label=LABEL) as session:
                parts = [np.full(3, j + 1.0) for j in range(session.n_partitions)]
                session.place(parts, units=[100] * session.n_partitions)
                for _ in range(30):
                    session.round(operator.mul, 1.0)  # importable by worker processes
                # The session reports its assignment and every round by itself.
                reporter = session.reporter
                assert reporter is not None and reporter.flush(timeout=10)
                assert reporter.sent == 31
                fit = {"token": session.token, "B": session.code.B.copy(), "records": list(session.records),
                       "workers": list(session.workers)}
        finally:
            remove_stragglers(client)
        yield {"cluster": cluster, "client": client, "url": url, "slow": slow, **fit, **asap}


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as reply:
        assert reply.status == 200
        return reply.read().decode()


def pulled(url: str) -> dict:
    """The page's document over its websocket, as a browser gets it: sources' data and the status text.

    Bokeh's client runs its own event loop; a thread of its own keeps it away
    from the loops of the clusters in this module.
    """
    from bokeh.client import pull_session

    def pull() -> dict:
        with pull_session(url=url) as session:
            doc = session.document
            out = {name: {k: list(v) for k, v in doc.select_one({"name": name}).data.items()} for name in SOURCES}
            out["quorum-status"] = doc.select_one({"name": "quorum-status"}).text
            return out

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(pull).result(timeout=60)


def check_served(url: str) -> None:
    """The page, its menu entry and its listing in JupyterLab's index, over HTTP."""
    base = url[: -len(ROUTE)]
    assert "<title>Dask: Stragglers</title>" in fetch(url)  # the document was built
    assert json.loads(fetch(base + "/individual-plots.json"))["Individual Stragglers"] == ROUTE
    assert f'href="{menu_entry(ROUTE)["url"]}"' in fetch(base + "/status").replace("./", "")


def test_register_at_runtime_serves_the_page(live_fit):
    url, scheduler = live_fit["url"], live_fit["cluster"].scheduler
    assert url.endswith(ROUTE)
    check_served(url)
    server = bokeh_server(scheduler)
    assert sum(1 for path in server.app_paths if path == ROUTE) == 1
    from distributed.dashboard.scheduler import template_variables

    assert template_variables(scheduler)["plots"].count(menu_entry(ROUTE)) == 1

    doc = pulled(url)
    rounds = doc["quorum-rounds"]
    assert rounds["index"] == [r.index for r in live_fit["records"]]
    assert rounds["n_responders"] == [len(r.responders) for r in live_fit["records"]]
    assert sorted(doc["quorum-assignment"]["weight"]) == sorted(live_fit["B"][live_fit["B"] != 0])


def _browser_options(chromium: str, profile: str):
    from selenium import webdriver  # the test extra: pip install -e .[test]

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1400,1400",
    ):
        options.add_argument(flag)
    return options


@pytest.fixture
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("chromium and chromedriver not found (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="quorum-chromium-") as profile:
        driver = webdriver.Chrome(options=_browser_options(chromium, profile), service=Service(driver_path))
        try:
            driver.set_page_load_timeout(30)
            driver.set_script_timeout(30)
            yield driver
        finally:
            driver.quit()


@pytest.fixture
def artifacts(request) -> Path:
    """Directory for screenshots: $QUORUM_TEST_ARTIFACTS, default test-artifacts/ (gitignored)."""
    path = Path(os.environ.get("QUORUM_TEST_ARTIFACTS", request.config.rootpath / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# Reads the page's Bokeh document and walks the DOM, shadow roots included.
PAGE_STATE = """
const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
if (!doc) { return null; }
const entries = (data) => data instanceof Map ? [...data.entries()] : Object.entries(data);
const sources = {};
for (const name of arguments[0]) {
  const source = doc.get_model_by_name(name);
  sources[name] = source ? Object.fromEntries(entries(source.data).map(([k, v]) => [k, Array.from(v)])) : null;
}
const renderers = [];
for (const model of doc.all_models) {
  if (model.constructor.__name__ === "GlyphRenderer") {
    renderers.push([model.data_source.name, model.data_source.get_length()]);
  }
}
function* walk(root) {
  for (const el of root.querySelectorAll("*")) {
    yield el;
    if (el.shadowRoot) { yield* walk(el.shadowRoot); }
  }
}
const injected = [];
let text = document.body.innerText;
let canvases = 0;
for (const el of walk(document)) {
  if (el.id === "quorum-injected") { injected.push("element with the injected id"); }
  if (el.tagName === "IMG" && el.getAttribute("src") === "x") { injected.push("img from a worker name"); }
  if (el.tagName === "SCRIPT" && el.textContent.includes("alert(1)")) { injected.push("script from a worker name"); }
  if (el.tagName === "CANVAS") { canvases += 1; }
  if (el.shadowRoot) { text += "\\n" + el.shadowRoot.textContent; }
}
return {sources, renderers, injected, text, canvases, xss: window.__quorum_xss === undefined ? null : 1};
"""


def test_page_in_a_real_browser(live_fit, browser, artifacts):
    from selenium.common.exceptions import NoAlertPresentException

    browser.get(live_fit["url"])
    deadline = time.monotonic() + 30
    state = None
    while time.monotonic() < deadline:
        state = browser.execute_script(PAGE_STATE, list(SOURCES))
        if state and all(state["sources"][n] and state["sources"][n]["worker" if n in SOURCES[:3] else "index"]
                         for n in SOURCES) and len(state["sources"]["quorum-model"]["worker"]) == 4:
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"the page's plots never got data; last state: {state and state['sources']}")
    shot = artifacts / "individual-stragglers.png"
    assert browser.save_screenshot(str(shot))

    sources = state["sources"]
    labels = {SCRIPT, IMG, "w2", "w3"}
    # per-worker latency distributions and the fitted model: the slow worker stands out
    latency, model = sources["quorum-latency"], sources["quorum-model"]
    assert set(latency["worker"]) == labels and set(model["worker"]) == labels
    medians = dict(zip(latency["worker"], latency["q50"]))
    assert max(medians, key=medians.get) == SCRIPT
    p = dict(zip(model["worker"], model["p"]))
    assert max(p, key=p.get) == SCRIPT and p[SCRIPT] > 0.5
    # the coded assignment and the rounds of the fit
    B = live_fit["B"]
    assert sorted(sources["quorum-assignment"]["weight"]) == sorted(B[B != 0])
    assert sources["quorum-rounds"]["index"] == [r.index for r in live_fit["records"]]
    assert sources["quorum-rounds-table"]["index"][0] == live_fit["records"][-1].index
    # every glyph is drawn from a source with data, on canvases
    assert len(state["renderers"]) >= 9 and all(n > 0 for _, n in state["renderers"])
    assert state["canvases"] >= 6

    # nothing from a worker name or a fit label became markup or script ...
    assert state["injected"] == [] and state["xss"] is None
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert
    # ... yet they are on the page, as text
    assert LABEL in state["text"]  # status line and the fit menu
    assert SCRIPT in state["text"]  # the table's straggler column

    from PIL import Image

    with Image.open(shot) as image:  # Pillow comes with matplotlib (the test extra)
        assert image.size[0] >= 1000
        colors = image.getcolors(maxcolors=1 << 16)  # None: more colours than that
        assert colors is None or len(colors) > 100  # drawn plots, not a blank page

    # the viewer picks the earlier ASAP fit in the menu: its rounds and consensus errors come in
    browser.execute_script(
        'Bokeh.documents[0].get_model_by_name("quorum-fit").value = arguments[0];', live_fit["asap_token"]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sources = browser.execute_script(PAGE_STATE, list(SOURCES))["sources"]
        if sources["quorum-rounds"]["index"] == live_fit["asap_rounds"]:
            break
        time.sleep(0.25)
    else:
        pytest.fail(f"the page never showed the ASAP fit's rounds; last: {sources['quorum-rounds']}")
    errors = sources["quorum-rounds"]["error"]
    assert all(e > 0 for e in errors) and errors[0] > errors[-1]  # consensus errors, shrinking
    assert sources["quorum-rounds-table"]["stop"][0] == "converged"  # newest first: the final round
    assert sorted(sources["quorum-assignment"]["weight"]) == [1.0] * 4  # one partition per worker
    assert browser.save_screenshot(str(artifacts / "individual-stragglers-asap.png"))


# --------------------------------------------------------------------------
# A scheduler process: --preload, and register() from a client
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_scheduler_processes_preload_and_register():
    """Two ``dask scheduler`` processes: one with ``--preload``, one given the page by ``register``."""
    with contextlib.ExitStack() as stack:
        # both start at once; a client waits (up to the timeout) for its scheduler
        clusters = {
            how: stack.enter_context(SubprocessCluster(0, preload=preload, timeout=60))
            for how, preload in (("preload", "dask_quorum.dashboard"), ("register", None))
        }
        for how, cluster in clusters.items():
            try:
                with cluster.client(set_as_default=False) as client:
                    url = client.dashboard_link.replace("/status", ROUTE)
                    if how == "preload":
                        latencies(client)  # no attach: the recorder was preloaded (raises otherwise)
                        assert register(client) == url  # on top of the preload: changes nothing
                    else:
                        with pytest.raises(RuntimeError, match="attach"):
                            latencies(client)
                        assert register(client) == url
                        assert register(client) == url  # idempotent
                        latencies(client)
                    reporter = FitReporter(client, token=f"{how}-fit", label=f"{how} fit")
                    reporter.assignment(["tcp://10.0.0.1:1", "tcp://10.0.0.2:1"], np.eye(2), "uncoded")
                    for t in range(4):
                        reporter.summary(index=t, wall_time=0.01, responders=[t % 2], error=0.5)
                    assert reporter.close(timeout=20) and reporter.sent == 6
                    check_served(url)
                    if how == "preload":  # the document's data, over the websocket: once is enough
                        doc = pulled(url)
                        assert doc["quorum-rounds"]["index"] == [0, 1, 2, 3]
                        assert doc["quorum-rounds"]["n_stragglers"] == [1, 1, 1, 1]
                        assert "uncoded" in doc["quorum-status"] and f"{how} fit" in doc["quorum-status"]
            except (AssertionError, OSError, TimeoutError):
                sys.stderr.write(f"--- {how} scheduler log ---\n{cluster.log('scheduler')[-3000:]}\n")
                raise


@gen_cluster(client=True, nthreads=[("127.0.0.1", 1)], scheduler_kwargs={"dashboard": True, "dashboard_address": ":0"})
async def test_register_async_client(c, s, a):
    url = await register(c)
    assert url is not None and url.endswith(ROUTE)
    assert ROUTE in bokeh_server(s).app_paths
    await async_poll_for(lambda: board_of(s) is not None, timeout=5)
