"""Plotly figures of the cutoff picture. Every function returns a figure; nothing is displayed here."""

from __future__ import annotations

import re

import duckdb
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import NotebookRenderer  # no public hook to turn off its MathJax CDN tag

from .states import STATE_NAMES

# Order of the funnel: how far orders are, least advanced first, then the exceptions.
FUNNEL = (
    "not_released",
    "released",
    "pickable",
    "picked",
    "packed",
    "ready_for_handoff",
    "handed_off",
    "held",
    "short",
    "substituted",
    "delayed",
    "cancelled",
)
PROMISE_COLOURS = {
    "safe": "#2e7d32",
    "at_risk": "#f9a825",
    "needs_communication": "#c62828",
    "handed_off": "#546e7a",
    "cancelled": "#9e9e9e",
}


OFFLINE_RENDERER = "plotly_mimetype+handoff_offline"
_MATHJAX_CDN = re.compile(r'<script[^>]*src="https?://[^"]*mathjax[^"]*"[^>]*>\s*</script>', re.IGNORECASE)


class OfflineNotebookRenderer(NotebookRenderer):
    """plotly's notebook renderer (plotly.js inlined once per notebook) without the MathJax script
    it loads from a CDN, so exported HTML reports need no network at all."""

    def to_mimebundle(self, fig_dict):
        bundle = super().to_mimebundle(fig_dict)
        bundle["text/html"] = _MATHJAX_CDN.sub("", bundle["text/html"])
        return bundle


def use_offline_renderer() -> None:
    """Make notebook figures carry both plotly's JSON (JupyterLab) and self-contained HTML (reports).
    Call it once, before the first figure is displayed."""
    if "handoff_offline" not in pio.renderers:
        pio.renderers["handoff_offline"] = OfflineNotebookRenderer()
    pio.renderers.default = OFFLINE_RENDERER


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10}, template="plotly_white", legend_title_text="")
    return fig


def state_funnel(con: duckdb.DuckDBPyConnection) -> go.Figure:
    """Orders by state (bars in funnel order), split by promise status."""
    df = con.execute("SELECT state, promise_status, count(*) AS orders FROM order_board GROUP BY ALL").df()
    order = [s for s in FUNNEL if s in set(STATE_NAMES) | set(df["state"])] + sorted(set(df["state"]) - set(FUNNEL))
    fig = go.Figure()
    for status, colour in PROMISE_COLOURS.items():
        part = df[df["promise_status"] == status].set_index("state")["orders"]
        fig.add_bar(y=order, x=[int(part.get(s, 0)) for s in order], name=status.replace("_", " "), orientation="h", marker_color=colour)
    fig.update_layout(barmode="stack", yaxis={"autorange": "reversed"})
    return _layout(fig, "Orders by state and promise status", 420)


def blockers_by_owner(con: duckdb.DuckDBPyConnection) -> go.Figure:
    """Open blockers per owner, stacked by reason."""
    df = con.execute("SELECT owner, reason_label, count(*) AS n FROM blockers GROUP BY ALL ORDER BY owner").df()
    owners = sorted(df["owner"].unique()) if len(df) else []
    fig = go.Figure()
    for reason in sorted(df["reason_label"].unique()) if len(df) else []:
        part = df[df["reason_label"] == reason].set_index("owner")["n"]
        fig.add_bar(x=owners, y=[int(part.get(o, 0)) for o in owners], name=reason)
    fig.update_layout(barmode="stack", xaxis_title="owner", yaxis_title="open blockers")
    return _layout(fig, "Open blockers by owner and reason", 420)


def cutoff_burndown(con: duckdb.DuckDBPyConnection) -> go.Figure:
    """Per carrier pickup still ahead: remaining work (labour minutes, from the promise view's
    estimate) against the minutes left until the pickup, with the open order count."""
    df = con.execute(
        """SELECT coalesce(cutoff_label, 'no cutoff') AS pickup, min(cutoff_at) AS cutoff_at,
                  count(*) AS open_orders, CAST(sum(coalesce(work_minutes, 0)) AS DOUBLE) AS work_minutes,
                  max(greatest(minutes_to_cutoff, 0)) AS minutes_left
           FROM promise WHERE promise_status NOT IN ('handed_off', 'cancelled') AND minutes_to_cutoff >= 0
           GROUP BY ALL ORDER BY cutoff_at NULLS LAST"""
    ).df()
    fig = go.Figure()
    fig.add_bar(x=df["pickup"], y=df["work_minutes"], name="open work (labour minutes)", marker_color="#1565c0",
                text=[f"{n} orders" for n in df["open_orders"]], textposition="outside")
    fig.add_scatter(x=df["pickup"], y=df["minutes_left"], name="minutes left to pickup", mode="markers+lines",
                    marker={"size": 12, "color": "#c62828"})
    fig.update_layout(yaxis_title="minutes")
    return _layout(fig, "Cutoff burn-down: open work vs time left per carrier pickup", 420)
