"""Plotly figures of the cutoff picture. Every function returns a figure; nothing is displayed here."""

from __future__ import annotations

import re

import duckdb
import plotly.graph_objects as go
import plotly.io as pio
from plotly.io._base_renderers import NotebookRenderer  # no public hook to turn off its MathJax CDN tag

from handoff_lib.rules.states import STATE_NAMES

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


# ------------------------------------------------------------------------------ the next pickups: work vs labour

AREA_COLOURS = {"pick": "#1565c0", "pack": "#6a1b9a", "ship": "#00838f"}
VERDICT_COLOURS = {"will make": "#2e7d32", "at risk": "#f9a825", "will miss": "#c62828"}


def pickup_capacity(pickups, curve) -> go.Figure:
    """Per area, the labour minutes it can deliver from now (a line) against the labour minutes each pickup needs
    by its deadline (bars: what earlier pickups took plus this pickup's orders still to do), the pickup as a
    dashed line. `pickups` / `curve`: meeting.build_meeting's Meeting.pickups and .curve."""
    fig = go.Figure()
    for area, colour in AREA_COLOURS.items():
        c = curve[curve["area"] == area]
        fig.add_scatter(x=c["at"], y=c["capacity_min"], mode="lines", name=f"{area} labour available", line={"color": colour})
        fig.add_bar(x=pickups["deadline_at"], y=pickups[f"{area}_need_min"], name=f"{area} work needed", marker_color=colour,
                    opacity=0.45, text=[f"{n} to do" for n in pickups["to_do"]], width=5 * 60 * 1000)
    for p in pickups.itertuples():
        fig.add_vline(x=p.pickup_at, line_dash="dash", line_color=VERDICT_COLOURS.get(p.verdict, "#555"))
    fig.update_layout(barmode="group", yaxis_title="labour minutes")
    return _layout(fig, "Work left against labour available, per area, to each pickup", 420)


def pickup_capacity_svg(pickups, curve, now, width: int = 1180, height: int = 380) -> str:
    """The same chart as `pickup_capacity`, drawn as a self-contained SVG (the HTML report carries no plotly.js):
    x = clock time from now, y = labour minutes; per area its capacity line and the work each pickup needs by
    its deadline as a bar labelled with the orders still to do; each pickup a dashed line in its verdict's colour."""
    import datetime as dt
    import html

    esc = html.escape
    if pickups is None or len(pickups) == 0:
        return '<p class="chart-empty">No carrier pickup in the coming hours.</p>'
    left, right, top, bottom = 70, 170, 40, 40
    w, h = width - left - right, height - top - bottom
    end = max(max(pickups["pickup_at"]), now) + dt.timedelta(minutes=20)
    span = max((end - now).total_seconds(), 60)
    ymax = max(float(curve["capacity_min"].max() or 0), *(float(pickups[f"{a}_need_min"].max() or 0) for a in AREA_COLOURS), 1.0) * 1.08

    def x(t) -> float:
        return left + w * (t - now).total_seconds() / span

    def y(v: float) -> float:
        return top + h * (1 - v / ymax)

    head = (f'<svg class="pickup-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="work left against labour available per pickup" '
            'style="font: 12px sans-serif; background: #fff">')
    out = [head]
    step = _nice_step(ymax)
    v = 0.0
    while v <= ymax:
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#555">{v:,.0f}</text>')
        v += step
    out.append(f'<text x="14" y="{top + h / 2:.0f}" transform="rotate(-90 14 {top + h / 2:.0f})" text-anchor="middle" fill="#333">'
               "labour minutes</text>")
    tick = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    while tick < end:
        out.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top + h}" y2="{top + h + 5}" stroke="#999"/>'
                   f'<text x="{x(tick):.1f}" y="{top + h + 18}" text-anchor="middle" fill="#555">{tick:%H:%M}</text>')
        tick += dt.timedelta(hours=1)
    out.append(f'<text x="{left}" y="{top + h + 18}" text-anchor="middle" fill="#333">now {now:%H:%M}</text>')
    out.append(f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" stroke="#999"/>')
    bar = max(w * 300 / span, 3)  # 5 minutes wide
    for i, p in enumerate(pickups.itertuples()):
        for k, (area, colour) in enumerate(AREA_COLOURS.items()):
            need = float(getattr(p, f"{area}_need_min") or 0)
            bx = x(p.deadline_at) + (k - 1.5) * bar
            out.append(f'<rect x="{bx:.1f}" y="{y(need):.1f}" width="{bar:.1f}" height="{y(0) - y(need):.1f}" fill="{colour}" '
                       f'fill-opacity="0.45"><title>{esc(str(p.pickup))}: {area} work needed by {p.deadline_at:%H:%M}: '
                       f'{need:,.0f} labour min</title></rect>')
        colour = VERDICT_COLOURS.get(p.verdict, "#555")
        px = x(p.pickup_at)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{top}" y2="{top + h}" stroke="{colour}" stroke-width="2" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{px + 3:.1f}" y="{top - 6 - 13 * (i % 2)}" fill="{colour}">{esc(str(p.pickup))}: {esc(p.verdict)}</text>')
        out.append(f'<text x="{x(p.deadline_at):.1f}" y="{top + h - 4}" text-anchor="middle" fill="#333">{int(p.to_do):,} to do</text>')
    for area, colour in AREA_COLOURS.items():
        c = curve[curve["area"] == area]
        pts = " ".join(f"{x(t):.1f},{y(float(v)):.1f}" for t, v in zip(c["at"], c["capacity_min"]))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
    ly = top + 6
    for area, colour in AREA_COLOURS.items():
        out.append(f'<line x1="{left + w + 14}" x2="{left + w + 34}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/>'
                   f'<text x="{left + w + 40}" y="{ly + 4}">{area} labour available</text>')
        out.append(f'<rect x="{left + w + 18}" y="{ly + 12}" width="12" height="10" fill="{colour}" fill-opacity="0.45"/>'
                   f'<text x="{left + w + 40}" y="{ly + 21}">{area} work needed</text>')
        ly += 40
    out.append(f'<line x1="{left + w + 14}" x2="{left + w + 34}" y1="{ly}" y2="{ly}" stroke="#555" stroke-width="2" stroke-dasharray="6 4"/>'
               f'<text x="{left + w + 40}" y="{ly + 4}">pickup (verdict colour)</text>')
    out.append("</svg>")
    return "".join(out)


def _nice_step(top: float) -> float:
    raw = top / 5
    mag = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
