"""The dashboard page ``/individual-stragglers``: stragglers and coded fits, live.

A Bokeh page on the scheduler's own dashboard (so it is listed in the
dashboard's "More..." menu and in JupyterLab's dask extension), refreshed
every ``quorum.dashboard.update-interval``. It shows

* every worker's per-unit latency distribution (quantiles of compute time
  over declared work units, from the latency recorder's recent rows);
* the fitted straggler model of each worker: straggle probability ``p``
  and persistence ``P(slow | slow)``, ``P(slow | fast)``
  (:class:`~dask_quorum.pipeline.dashboard.LiveModel`, re-fitted in a
  background thread at most every ``quorum.dashboard.model-interval``);
* for the fit chosen in the menu (the latest by default), the current coded
  assignment as a worker x partition heat map and its recent rounds: wall
  time, responders vs. stragglers, decoding error, from the
  :class:`~dask_quorum.pipeline.dashboard.FitBoard`. An ASAP fit
  (:func:`~dask_quorum.pipeline.asap.run_asap`) shows its one
  partition per worker, a few rounds per refresh with the consensus error
  (or the residual), and as stragglers the workers whose step was slow or
  whose stale version a peer used.

The page is read-only: it changes nothing on the cluster. Worker names, fit
labels and tokens are rendered as text only (canvas text, escaped table
cells and option labels, HTML-escaped status line).

Cost on the scheduler: nothing per task beyond the recorder's row. An open
page refreshes in about 10 us when nothing changed and 0.2-0.7 ms when a
round or a new model arrived (16 workers, 200 rounds kept; measured on this
project's 2-core machine), plus Bokeh's sending of the changed columns;
the model is re-fitted in a background thread (see
:mod:`~dask_quorum.pipeline.dashboard.livemodel`).

Two ways to get it:

* on a running cluster, one call:
  :func:`~dask_quorum.pipeline.dashboard.register` (attaches the latency
  recorder, installs the fit board, adds the page:
  :mod:`~dask_quorum.pipeline.dashboard.install`);
* ``dask scheduler --preload dask_quorum.dashboard``.

Fits show up when they report with a
:class:`~dask_quorum.pipeline.dashboard.FitReporter`.
"""

from __future__ import annotations

import html
import logging
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dask_quorum import config

from .board import FitBoard, FitState, board_of
from .livemodel import QUANTILES, LiveModel, ModelSnapshot

if TYPE_CHECKING:
    from bokeh.document import Document
    from distributed import Scheduler

__all__ = ["ROUTE", "SOURCES", "StragglersPage", "live_model", "stragglers_doc", "worker_labels"]

logger = logging.getLogger(__name__)

#: Where the page is served on the scheduler's dashboard.
ROUTE = "/individual-stragglers"
#: Rounds listed in the page's table (the plots show every round kept).
TABLE_ROUNDS = 20
#: Names of the page's data sources (stable, for tests and embedding).
SOURCES = ("quorum-latency", "quorum-model", "quorum-assignment", "quorum-rounds", "quorum-rounds-table")
#: Titles of the error plot, by the rounds' error kind.
_ERROR_TITLES = {"decoding": "Decoding error", "consensus": "Consensus error (largest distance from the average)",
                 "residual": "Residual"}
#: Titles of the heat map, by scheme (default: the coded one).
_ASSIGNMENT_TITLES = {"asap": "ASAP: one partition per worker (worker x partition)"}
_ROUND_COLUMNS = ("index", "time", "wall_time", "n_responders", "n_stragglers", "error", "stragglers", "stop",
                  "scheme")

_CODED_TITLE = "Coded assignment (worker x partition, coefficient of B)"

_live_models: weakref.WeakKeyDictionary[Any, LiveModel] = weakref.WeakKeyDictionary()


def live_model(scheduler: Scheduler) -> LiveModel:
    """The scheduler's :class:`LiveModel`, shared by every open page."""
    model = _live_models.get(scheduler)
    if model is None:
        model = _live_models[scheduler] = LiveModel(scheduler)
    return model


def worker_labels(scheduler: Scheduler, addresses: Sequence[str]) -> list[str]:
    """Axis labels of workers: their names when they have one, else ``host:port``.

    Labels are unique: a clash appends the address.
    """
    labels = []
    for address in addresses:
        ws = scheduler.workers.get(address)
        name = None if ws is None else ws.name
        short = address.split("://", 1)[-1]
        labels.append(str(name) if name is not None and str(name) != address else short)
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    return [
        f"{label} ({address.split('://', 1)[-1]})" if seen[label] > 1 else label
        for label, address in zip(labels, addresses)
    ]


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


class StragglersPage:
    """The Bokeh models of one open page and their refresh.

    Parameters
    ----------
    scheduler : distributed.Scheduler
    """

    def __init__(self, scheduler: Scheduler) -> None:
        from bokeh.layouts import column, row
        from bokeh.models import (
            ColumnDataSource,
            DataTable,
            DateFormatter,
            Div,
            FactorRange,
            HoverTool,
            LinearColorMapper,
            NumberFormatter,
            ScientificFormatter,
            Select,
            StringFormatter,
            TableColumn,
        )
        from bokeh.palettes import Viridis256
        from bokeh.plotting import figure
        from bokeh.transform import dodge

        self.scheduler = scheduler
        self.live = live_model(scheduler)
        self._seen: dict[str, Any] = {}
        self._followed = ""  # the fit the menu follows while the viewer has not picked one
        common = {"sizing_mode": "stretch_width", "toolbar_location": None, "tools": ""}

        self.status = Div(text="", sizing_mode="stretch_width", name="quorum-status")
        self.select = Select(title="Fit", options=[], value="", width=420, name="quorum-fit")

        self.latency = ColumnDataSource(
            {k: [] for k in ("worker", "n", *(f"q{int(q * 100):02d}" for q in QUANTILES))},
            name=SOURCES[0],
        )
        fig = figure(title="Per-unit latency by worker (box 25-75 %, whiskers 5-95 %, median)",
                     x_range=FactorRange(), height=340, y_axis_label="seconds per work unit", **common)
        fig.segment(x0="worker", y0="q05", x1="worker", y1="q95", source=self.latency, color="black")
        fig.vbar(x="worker", bottom="q25", top="q75", width=0.6, source=self.latency,
                 fill_color="#6baed6", line_color="black")
        fig.scatter(x="worker", y="q50", marker="dash", size=22, line_width=3, color="black",
                    source=self.latency)
        fig.add_tools(HoverTool(tooltips=[("worker", "@worker"), ("samples", "@n"), ("median", "@q50{0.000e}")]))
        fig.xaxis.major_label_orientation = 0.6
        self.latency_figure = fig

        self.model = ColumnDataSource(
            {k: [] for k in ("worker", "p", "p_slow_slow", "p_slow_fast", "slowdown", "n_rounds")},
            name=SOURCES[1],
        )
        fig = figure(title="Fitted straggler model", x_range=FactorRange(), y_range=(0, 1.05),
                     height=340, y_axis_label="probability", **common)
        for column_name, offset, color, label in (
            ("p", -0.25, "#d62728", "P(straggle)"),
            ("p_slow_slow", 0.0, "#ff7f0e", "P(slow | slow)"),
            ("p_slow_fast", 0.25, "#2ca02c", "P(slow | fast)"),
        ):
            fig.vbar(x=dodge("worker", offset, range=fig.x_range), top=column_name, width=0.22,
                     source=self.model, color=color, legend_label=label)
        fig.legend.orientation = "horizontal"
        fig.add_layout(fig.legend[0], "above")
        fig.add_tools(HoverTool(tooltips=[
            ("worker", "@worker"), ("P(straggle)", "@p{0.00}"), ("P(slow|slow)", "@p_slow_slow{0.00}"),
            ("P(slow|fast)", "@p_slow_fast{0.00}"), ("slowdown", "@slowdown{0.0}x"), ("rounds", "@n_rounds"),
        ]))
        fig.xaxis.major_label_orientation = 0.6
        self.model_figure = fig

        self.assignment = ColumnDataSource({"worker": [], "partition": [], "weight": []}, name=SOURCES[2])
        fig = figure(title=_CODED_TITLE, x_range=FactorRange(),
                     y_range=FactorRange(), height=300, x_axis_label="partition", **common)
        self._colors = LinearColorMapper(palette=Viridis256, low=0, high=1)
        fig.rect(x="partition", y="worker", width=0.95, height=0.95, source=self.assignment, line_color=None,
                 fill_color={"field": "weight", "transform": self._colors})
        fig.add_tools(HoverTool(tooltips=[("worker", "@worker"), ("partition", "@partition"),
                                          ("coefficient", "@weight{0.000}")]))
        self.assignment_figure = fig

        self.rounds = ColumnDataSource({k: [] for k in _ROUND_COLUMNS}, name=SOURCES[3])
        # the table lists the newest rounds first
        self.recent = ColumnDataSource({k: [] for k in _ROUND_COLUMNS}, name=SOURCES[4])
        fig = figure(title="Recent rounds: responders vs. stragglers", height=220, y_axis_label="workers", **common)
        fig.vbar_stack(["n_responders", "n_stragglers"], x="index", width=0.8, source=self.rounds,
                       color=["#2ca02c", "#d62728"], legend_label=["responders", "stragglers"])
        fig.legend.orientation = "horizontal"
        fig.add_layout(fig.legend[0], "above")
        fig.add_tools(HoverTool(tooltips=[("round", "@index"), ("responders", "@n_responders"),
                                          ("stragglers", "@stragglers"), ("stop", "@stop")]))
        self.rounds_figure = fig
        fig = figure(title="Round wall time", height=200, y_axis_label="seconds", x_range=self.rounds_figure.x_range,
                     **common)
        fig.line(x="index", y="wall_time", source=self.rounds)
        fig.scatter(x="index", y="wall_time", source=self.rounds, size=4)
        self.time_figure = fig
        fig = figure(title="Decoding error", height=200, y_axis_label="decoding error",
                     x_range=self.rounds_figure.x_range, **common)
        fig.scatter(x="index", y="error", source=self.rounds, size=5, color="#9467bd")
        self.error_figure = fig

        self.table = DataTable(
            source=self.recent,
            columns=[
                TableColumn(field="index", title="round", width=60),
                TableColumn(field="time", title="time (UTC)", formatter=DateFormatter(format="%H:%M:%S")),
                TableColumn(field="wall_time", title="wall time (s)", formatter=NumberFormatter(format="0.0000")),
                TableColumn(field="n_responders", title="responders", width=80),
                TableColumn(field="stragglers", title="stragglers", formatter=StringFormatter(), width=300),
                TableColumn(field="error", title="error", formatter=ScientificFormatter(precision=2)),
                TableColumn(field="stop", title="stop", formatter=StringFormatter()),
                TableColumn(field="scheme", title="scheme", formatter=StringFormatter()),
            ],
            height=260,
            sizing_mode="stretch_width",
            index_position=None,
            sortable=False,
            name="quorum-table",
        )
        self.root = column(
            row(self.select, self.status, sizing_mode="stretch_width"),
            row(self.latency_figure, self.model_figure, sizing_mode="stretch_width"),
            row(self.assignment_figure, column(self.rounds_figure, self.time_figure, self.error_figure,
                                               sizing_mode="stretch_width"), sizing_mode="stretch_width"),
            self.table,
            sizing_mode="stretch_width",
        )

    # -- refresh ---------------------------------------------------------------

    def update(self) -> None:
        """Refresh from the board and the live model; cheap when nothing changed."""
        from bokeh.core.property.validation import validate

        with validate(False):  # values are built here, like distributed's own pages do
            self._update()

    def _update(self) -> None:
        self.live.refresh()
        board = board_of(self.scheduler)
        fit = self._choose_fit(board)
        names = tuple(sorted((a, str(ws.name)) for a, ws in self.scheduler.workers.items()))
        if (self.live.version, names) != self._seen.get("model"):
            self._seen["model"] = (self.live.version, names)
            self._show_model(self.live.snapshot)
        key = None if fit is None else (fit.token, fit.version, names)
        if key != self._seen.get("fit"):
            self._seen["fit"] = key
            self._show_fit(fit, names)
        self.status.text = self._status(board, fit, self.live.snapshot)

    def _choose_fit(self, board: FitBoard | None) -> FitState | None:
        fits = [] if board is None else list(reversed(board.fits.values()))  # latest first
        options = [(f.token, f"{f.label} [{f.token}]" + (" (finished)" if f.closed else "")) for f in fits]
        if options != self.select.options:
            self.select.options = options
        chosen = next((f for f in fits if f.token == self.select.value), None)
        if chosen is None or self.select.value == self._followed:
            # follow the latest fit until the viewer picks another one
            chosen = fits[0] if fits else None
            self._followed = "" if chosen is None else chosen.token
            if self.select.value != self._followed:
                self.select.value = self._followed
        return chosen

    def _show_model(self, snap: ModelSnapshot | None) -> None:
        q = None if snap is None else snap.quantiles
        if q is None:
            self.latency.data = {k: [] for k in self.latency.data}
            self.latency_figure.x_range.factors = []
        else:
            labels = worker_labels(self.scheduler, q.workers)
            data: dict[str, Any] = {"worker": labels, "n": q.counts.tolist()}
            for j, quantile in enumerate(QUANTILES):
                data[f"q{int(quantile * 100):02d}"] = q.values[:, j]
            self.latency.data = data
            self.latency_figure.x_range.factors = labels
        m = None if snap is None else snap.model
        if m is None:
            self.model.data = {k: [] for k in self.model.data}
            self.model_figure.x_range.factors = []
            return
        labels = worker_labels(self.scheduler, m.workers)
        self.model.data = {
            "worker": labels,
            "p": m.p,
            "p_slow_slow": m.p_slow_slow,
            "p_slow_fast": m.p_slow_fast,
            "slowdown": m.slowdown,
            "n_rounds": m.n_rounds,
        }
        self.model_figure.x_range.factors = labels

    def _show_fit(self, fit: FitState | None, names: Any) -> None:
        if fit is None:
            for source in (self.assignment, self.rounds, self.recent):
                source.data = {k: [] for k in source.data}
            return
        labels = worker_labels(self.scheduler, fit.workers) if fit.workers else []
        akey = (fit.token, fit.assignment_version, names)
        if akey != self._seen.get("assignment"):
            self._seen["assignment"] = akey
            title = _ASSIGNMENT_TITLES.get(fit.scheme, _CODED_TITLE)
            if self.assignment_figure.title.text != title:
                self.assignment_figure.title.text = title
            if fit.B is not None:
                rows, cols = np.nonzero(fit.B)
                partitions = [str(j) for j in range(fit.shape[1])]
                self.assignment.data = {
                    "worker": [labels[i] for i in rows],
                    "partition": [partitions[j] for j in cols],
                    "weight": fit.B[rows, cols],
                }
                self.assignment_figure.x_range.factors = partitions
                self.assignment_figure.y_range.factors = labels[::-1]
                self.assignment_figure.xaxis.major_label_text_alpha = 1.0 if len(partitions) <= 64 else 0.0
                self._colors.low = min(float(fit.B.min()), 0.0)
                self._colors.high = max(float(fit.B.max()), 1e-12)
            else:
                self.assignment.data = {k: [] for k in self.assignment.data}
        rounds = list(fit.rounds)
        data = {
            "index": [r.index for r in rounds],
            "time": [r.time * 1000.0 for r in rounds],
            "wall_time": [r.wall_time for r in rounds],
            "n_responders": [len(r.responders) for r in rounds],
            "n_stragglers": [len(r.stragglers) for r in rounds],
            "error": [r.error for r in rounds],
            "stragglers": [", ".join(labels[i] for i in r.stragglers if i < len(labels)) for r in rounds],
            "stop": [r.stop for r in rounds],
            "scheme": [r.scheme for r in rounds],
        }
        self.rounds.data = data
        self.recent.data = {k: v[: -TABLE_ROUNDS - 1 : -1] for k, v in data.items()}
        kind = rounds[-1].error_kind if rounds else "decoding"
        title = _ERROR_TITLES[kind]
        if self.error_figure.title.text != title:
            self.error_figure.title.text = title
            self.error_figure.yaxis.axis_label = "residual" if kind == "residual" else f"{kind} error"

    def _status(self, board: FitBoard | None, fit: FitState | None, snap: ModelSnapshot | None) -> str:
        parts = []
        if board is None:
            parts.append("<b>No fit board</b> on this scheduler: fits are not reported "
                         "(dask_quorum.pipeline.dashboard.register(client) installs one).")
        elif fit is None:
            parts.append("<b>No fit reported yet.</b>")
        else:
            n, k = fit.shape
            last = fit.rounds[-1].index if fit.rounds else None
            parts.append(
                f"<b>Fit</b> {_text(fit.label)} &middot; scheme {_text(fit.scheme or '?')} &middot; "
                f"{n} workers x {k} partitions &middot; {fit.n_rounds} rounds reported"
                + ("" if last is None else f" (last: round {last})")
                + (" &middot; finished" if fit.closed else "")
            )
        if snap is None:
            parts.append("<b>Model</b>: waiting for the latency recorder's rows.")
        elif snap.model is None:
            parts.append(f"<b>Model</b>: {_text(snap.reason)}")
        else:
            slow = worker_labels(self.scheduler, snap.model.slow_workers(0.5))
            parts.append(
                f"<b>Model</b> from the last {snap.rows} recorder rows "
                f"({int(snap.model.n_rounds.max())} rounds); "
                f"persistent stragglers: {_text(', '.join(slow) or 'none')}"
            )
        return "<br>".join(parts)


def stragglers_doc(scheduler: Scheduler, extra: dict[str, Any], doc: Document) -> None:
    """Fill a Bokeh document with the page (``doc_fn`` of the dashboard route)."""
    from distributed.dashboard.components.scheduler import BOKEH_THEME

    page = StragglersPage(scheduler)
    page.update()
    interval = config.get_timeout("dashboard.update-interval")
    doc.add_periodic_callback(page.update, int(interval * 1000))
    doc.add_root(page.root)
    doc.title = "Dask: Stragglers"
    doc.theme = BOKEH_THEME
