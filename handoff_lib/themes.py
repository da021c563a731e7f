"""Recurring blocker themes across cutoff reviews, read from the history database (`snap_blockers`,
`snap_orders`): counts by theme and week, repeat offenders by SKU, location, customer, carrier and owner,
blocker age by owner, and a Pareto of themes; plotly figures of each (returned, never displayed); the
planner export (XLSX, one sheet per view, plus CSVs); an ipywidgets explorer for analysts; and
`demo_history`, a small deterministic multi-day history with planted repeat problems.

A theme is the taxonomy theme of a blocker's policy reason (`reasons.<theme>.policy_reason` /
`rolls_up` in the site's taxonomy, `notes.taxonomy`; a reason no theme claims counts under `other`).
A blocker stays open across several reviews: views count distinct blockers (`blocker_id`) and the days
on which they were seen, so a problem that comes back every day outranks one long-lived blocker that was
snapshotted many times. SKU and location come from the blocker's `sku` / `location` columns when history
has them, else from its detail text (`settings.sku_pattern` / `settings.location_pattern` of the taxonomy).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .db import insert_rows
from .errors import HandoffError
from .exports import write_csv, write_xlsx
from .taxonomy import Taxonomy, load_taxonomy

DIMENSIONS = {  # offender dimension -> SQL expression over theme_blockers
    "sku": "sku",
    "location": "location",
    "customer": "customer",
    "carrier": "carrier",
    "owner": "owner",
}

BASE = """
CREATE OR REPLACE TEMP TABLE theme_blockers AS
SELECT b.site, b.review_date, b.review_time, b.blocker_id, b.order_id, b.reason, b.reason_label, b.owner,
       coalesce(r.theme, $fallback_theme) AS theme, coalesce(r.theme_label, $fallback_label) AS theme_label,
       coalesce(r.root_owner, b.owner) AS root_owner,
       {sku} AS sku, {location} AS location,
       CASE WHEN o.customer_id IS NULL THEN NULL ELSE coalesce(o.customer_name || ' (' || o.customer_id || ')', o.customer_id) END AS customer,
       o.carrier, b.age_minutes, b.event_at, b.source_system, b.source_entity, b.source_key, b.detail,
       CAST(date_trunc('week', b.review_date) AS DATE) AS week
FROM hist.snap_blockers b
LEFT JOIN taxonomy_rollup r ON r.policy_reason = b.reason
LEFT JOIN hist.snap_orders o
       ON o.site = b.site AND o.review_date = b.review_date AND o.review_time = b.review_time AND o.order_id = b.order_id
WHERE b.site = $site AND b.review_date BETWEEN $date_from AND $date_to
"""

BY_WEEK = """
SELECT week, theme, any_value(theme_label) AS theme_label, count(DISTINCT blocker_id) AS blockers,
       count(DISTINCT review_date) AS days_seen, count(DISTINCT order_id) AS orders
FROM theme_blockers {where} GROUP BY week, theme ORDER BY week, blockers DESC, theme
"""

OFFENDERS = """
SELECT {expr} AS value, count(DISTINCT review_date) AS days_seen, count(DISTINCT blocker_id) AS blockers,
       count(DISTINCT order_id) AS orders, mode(theme_label) AS main_theme,
       string_agg(DISTINCT theme_label, ', ' ORDER BY theme_label) AS themes,
       min(review_date) AS first_seen, max(review_date) AS last_seen,
       arg_max(detail, review_date || review_time) AS latest_detail
FROM theme_blockers {where}
GROUP BY 1 HAVING {expr} IS NOT NULL
ORDER BY days_seen DESC, blockers DESC, value
LIMIT $top
"""

AGE_BY_OWNER = """
WITH last AS (
    SELECT blocker_id, arg_max(owner, review_date || review_time) AS owner, max(age_minutes) AS age_minutes,
           arg_max(theme_label, review_date || review_time) AS theme_label
    FROM theme_blockers {where} GROUP BY blocker_id
)
SELECT owner, count(*) AS blockers,
       round(median(age_minutes) / 60, 1) AS median_age_hours,
       round(quantile_cont(age_minutes, 0.9) / 60, 1) AS p90_age_hours,
       round(max(age_minutes) / 60, 1) AS max_age_hours,
       mode(theme_label) AS main_theme
FROM last GROUP BY owner ORDER BY median_age_hours DESC NULLS LAST, owner
"""

PARETO = """
WITH t AS (
    SELECT theme, any_value(theme_label) AS theme_label, any_value(root_owner) AS root_cause_owner,
           count(DISTINCT blocker_id) AS blockers, count(DISTINCT review_date) AS days_seen
    FROM theme_blockers {where} GROUP BY theme
)
SELECT theme, theme_label, root_cause_owner, blockers, days_seen,
       round(100.0 * blockers / sum(blockers) OVER (), 1) AS share_pct,
       round(100.0 * sum(blockers) OVER (ORDER BY blockers DESC, theme ROWS UNBOUNDED PRECEDING) / sum(blockers) OVER (), 1) AS cumulative_pct
FROM t ORDER BY blockers DESC, theme
"""


@dataclass(frozen=True)
class Scope:
    site: str
    date_from: dt.date
    date_to: dt.date
    history_db: Path


@dataclass(frozen=True)
class Filters:
    """Optional filters the explorer applies to every view."""

    themes: tuple[str, ...] = ()
    owner: str | None = None

    def where(self) -> tuple[str, dict]:
        parts, params = [], {}
        if self.themes:
            parts.append("list_contains($themes, theme)")
            params["themes"] = list(self.themes)
        if self.owner:
            parts.append("owner = $owner")
            params["owner"] = self.owner
        return ("WHERE " + " AND ".join(parts) if parts else ""), params


PROJECT = Path(__file__).resolve().parents[1]


def project_path(path: str | Path) -> Path:
    """A relative path is relative to the project folder (so notebooks run from any working directory)."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT / p


def site_taxonomy(site_file: str | Path = "") -> Taxonomy:
    """The taxonomy whose themes the views use: the notes.taxonomy of the site file `site_file` (relative =
    under the project folder), or the shipped parameters/reasons.yaml when it is ''."""
    from .taxonomy import site_taxonomy as of_site

    return of_site(project_path(site_file) if site_file not in (None, "") else None)


def ensure_history(history_db: str | Path) -> Path:
    """The history database path (relative = under the project folder). When it is missing and its file
    name says demo (e.g. outputs/demo/history_demo.duckdb), build the demo history there; otherwise a
    missing file is an error, never silently replaced by demo data."""
    path = project_path(history_db)
    if path.is_file():
        return path
    if "demo" in path.name:
        return demo_history(path)
    raise HandoffError(f"{path}: no history database (run cutoff reviews first; a file name with 'demo' builds the demo history)")


def parse_date(value: str | dt.date | None, what: str) -> dt.date | None:
    """'YYYY-MM-DD' (or a date, or '' / None for open-ended) as a date; HandoffError otherwise."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise HandoffError(f"{what} '{value}': expected a date YYYY-MM-DD") from None


def open_themes(
    history_db: str | Path,
    site: str | None = None,
    date_from: str | dt.date | None = None,
    date_to: str | dt.date | None = None,
    taxonomy: Taxonomy | None = None,
) -> tuple[duckdb.DuckDBPyConnection, Scope]:
    """An in-memory connection with the history attached read-only and the `theme_blockers` table (one
    row per blocker per review in the range, with theme, sku, location, customer, carrier, week) built;
    and the resolved scope. site None = the only site in history; open dates = its first / last review."""
    path = project_path(history_db)
    if not path.is_file():
        raise HandoffError(f"{path}: no history database (run reviews first, or build a demo one: themes.demo_history)")
    taxonomy = taxonomy or load_taxonomy()
    con = duckdb.connect()
    try:
        con.execute("ATTACH ? AS hist (READ_ONLY)", [str(path)])
    except duckdb.Error as exc:
        raise HandoffError(f"{path}: cannot open the history database read-only ({exc})") from None
    have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'hist'").fetchall()}
    for table in ("snap_blockers", "snap_orders"):
        if table not in have:
            raise HandoffError(f"{path}: the history database has no table {table} (no review snapshot written yet)")
    sites = [r[0] for r in con.execute("SELECT DISTINCT site FROM hist.snap_blockers ORDER BY 1").fetchall()]
    if site in (None, ""):
        if len(sites) != 1:
            raise HandoffError(f"{path}: holds sites {', '.join(sites) or '(none)'}; say which one (--site)")
        site = sites[0]
    elif site not in sites:
        raise HandoffError(f"{path}: no blocker history for site '{site}' (sites: {', '.join(sites) or 'none'})")
    lo, hi = con.execute("SELECT min(review_date), max(review_date) FROM hist.snap_blockers WHERE site = ?", [site]).fetchone()
    d_from = parse_date(date_from, "date from") or lo
    d_to = parse_date(date_to, "date to") or hi
    if d_from > d_to:
        raise HandoffError(f"date range {d_from} .. {d_to}: the start is after the end")
    con.execute(
        "CREATE TEMP TABLE taxonomy_rollup (policy_reason VARCHAR, theme VARCHAR, theme_label VARCHAR, root_owner VARCHAR)"
    )
    insert_rows(con, "taxonomy_rollup", taxonomy.rollup_rows())
    cols = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'hist' AND table_name = 'snap_blockers'"
        ).fetchall()
    }
    from_text = {
        "sku": "nullif(regexp_extract(b.detail, $sku_pattern), '')",
        "location": "nullif(regexp_extract(b.detail, $location_pattern), '')",
    }
    exprs = {k: (f"coalesce(b.{k}, {v})" if k in cols else v) for k, v in from_text.items()}
    con.execute(
        BASE.format(**exprs),
        {
            "site": site,
            "date_from": d_from,
            "date_to": d_to,
            "sku_pattern": taxonomy.sku_pattern,
            "location_pattern": taxonomy.location_pattern,
            "fallback_theme": taxonomy.fallback_theme()[0],
            "fallback_label": taxonomy.fallback_theme()[1],
        },
    )
    return con, Scope(site, d_from, d_to, path)


# --------------------------------------------------------------------------------------------- views


def by_week(con: duckdb.DuckDBPyConnection, filters: Filters = Filters()) -> pd.DataFrame:
    """Distinct blockers per theme per week (week = its Monday), with days seen and orders."""
    where, params = filters.where()
    return con.execute(BY_WEEK.format(where=where), params).df()


def offenders(con: duckdb.DuckDBPyConnection, dimension: str, top: int = 15, filters: Filters = Filters()) -> pd.DataFrame:
    """Repeat offenders by `dimension` (sku, location, customer, carrier, owner): days seen, distinct
    blockers and orders, main theme, first/last seen, latest detail; most days first."""
    if dimension not in DIMENSIONS:
        raise HandoffError(f"no offender dimension '{dimension}' (known: {', '.join(DIMENSIONS)})")
    where, params = filters.where()
    sql = OFFENDERS.format(expr=DIMENSIONS[dimension], where=where)
    return con.execute(sql, {**params, "top": int(top)}).df().rename(columns={"value": dimension})


def age_by_owner(con: duckdb.DuckDBPyConnection, filters: Filters = Filters()) -> pd.DataFrame:
    """Blocker age per owning team (each blocker at its oldest snapshot): count, median, p90, max hours."""
    where, params = filters.where()
    return con.execute(AGE_BY_OWNER.format(where=where), params).df()


def pareto(con: duckdb.DuckDBPyConnection, filters: Filters = Filters()) -> pd.DataFrame:
    """Themes by distinct blockers, biggest first, with share and cumulative share (%)."""
    where, params = filters.where()
    return con.execute(PARETO.format(where=where), params).df()


def all_views(con: duckdb.DuckDBPyConnection, top: int = 15, filters: Filters = Filters()) -> dict[str, pd.DataFrame]:
    """Every view by name, as the planner export writes them."""
    views = {"pareto": pareto(con, filters), "by_week": by_week(con, filters)}
    for dim in DIMENSIONS:
        views[f"repeat_{dim}"] = offenders(con, dim, top, filters)
    views["age_by_owner"] = age_by_owner(con, filters)
    return views


def summary_text(con: duckdb.DuckDBPyConnection, scope: Scope) -> str:
    """Two lines on what the range holds and which repeat problems lead."""
    n, days, reviews = con.execute(
        "SELECT count(DISTINCT blocker_id), count(DISTINCT review_date), count(DISTINCT (review_date, review_time)) FROM theme_blockers"
    ).fetchone()
    lines = [f"{scope.site}: {n} distinct blockers over {days} days ({reviews} reviews), {scope.date_from} to {scope.date_to}"]
    for dim in ("sku", "location"):
        top = offenders(con, dim, 1)
        if len(top):
            r = top.iloc[0]
            lines.append(f"top repeat {dim}: {r[dim]} on {r['days_seen']} of {days} days ({r['main_theme']})")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- charts


def _plotly_renderer() -> None:
    """Figures must render in papermill/nbconvert HTML offline (STACK.md)."""
    import plotly.io as pio

    if "plotly_mimetype" in str(pio.renderers.default) and "notebook" not in str(pio.renderers.default):
        pio.renderers.default = "plotly_mimetype+notebook"


def chart_by_week(df: pd.DataFrame):
    """Stacked bars: distinct blockers per theme per week."""
    import plotly.express as px

    _plotly_renderer()
    fig = px.bar(
        df,
        x="week",
        y="blockers",
        color="theme_label",
        title="Blockers by theme and week",
        labels={"week": "Week (Monday)", "blockers": "Distinct blockers", "theme_label": "Theme"},
    )
    return fig.update_layout(barmode="stack", xaxis_type="category")


def chart_pareto(df: pd.DataFrame):
    """Pareto: bars of blockers per theme, line of the cumulative share."""
    import plotly.graph_objects as go

    _plotly_renderer()
    fig = go.Figure()
    fig.add_bar(x=df["theme_label"], y=df["blockers"], name="Blockers")
    fig.add_scatter(x=df["theme_label"], y=df["cumulative_pct"], name="Cumulative %", yaxis="y2", mode="lines+markers")
    return fig.update_layout(
        title="Pareto of blocker themes",
        yaxis={"title": "Distinct blockers"},
        yaxis2={"title": "Cumulative %", "overlaying": "y", "side": "right", "range": [0, 105]},
        legend={"orientation": "h"},
    )


def chart_offenders(df: pd.DataFrame, dimension: str):
    """Horizontal bars: days seen per repeat offender, most first."""
    import plotly.express as px

    _plotly_renderer()
    d = df.assign(**{dimension: df[dimension].astype(str)}).iloc[::-1]
    fig = px.bar(
        d,
        x="days_seen",
        y=dimension,
        orientation="h",
        color="main_theme",
        hover_data=["blockers", "orders", "latest_detail"],
        title=f"Repeat offenders by {dimension}",
        labels={"days_seen": "Days seen", "main_theme": "Main theme"},
    )
    return fig.update_layout(yaxis={"categoryorder": "array", "categoryarray": list(d[dimension])})


def chart_age_by_owner(df: pd.DataFrame):
    """Bars: median and p90 blocker age (hours) per owner."""
    import plotly.graph_objects as go

    _plotly_renderer()
    fig = go.Figure()
    fig.add_bar(x=df["owner"], y=df["median_age_hours"], name="Median")
    fig.add_bar(x=df["owner"], y=df["p90_age_hours"], name="90th percentile")
    return fig.update_layout(title="Blocker age by owner (hours)", barmode="group", yaxis={"title": "Hours"})


# -------------------------------------------------------------------------------------------- export


def export(
    history_db: str | Path,
    site: str | None,
    date_from: str | dt.date | None,
    date_to: str | dt.date | None,
    out_dir: str | Path,
    top: int = 25,
    taxonomy: Taxonomy | None = None,
) -> dict[str, Path]:
    """Write the planner export: `blocker_themes_<site>_<from>_<to>.xlsx` (one sheet per view, readable
    headers, frozen header, formulas neutralised) and one CSV per view, under `out_dir`. Returns name -> path."""
    con, scope = open_themes(history_db, site, date_from, date_to, taxonomy)
    try:
        views = all_views(con, top)
    finally:
        con.close()
    out = project_path(out_dir)
    stem = f"blocker_themes_{scope.site}_{scope.date_from}_{scope.date_to}"
    written = {"xlsx": write_xlsx(views, out / f"{stem}.xlsx")}
    for name, df in views.items():
        written[name] = write_csv(df, out / f"{stem}_{name}.csv")
    return written


# ------------------------------------------------------------------------------------------ explorer


def explorer(history_db: str | Path, site: str | None = None, taxonomy: Taxonomy | None = None):
    """An ipywidgets dashboard over the whole history of a site: date range, themes, owner and
    offender-dimension filters; shows the Pareto, the repeat offenders (table and chart) and the
    blockers behind them. Returns the widget."""
    import ipywidgets as w

    taxonomy = taxonomy or load_taxonomy()
    con, scope = open_themes(history_db, site, None, None, taxonomy)
    themes = [r[0] for r in con.execute("SELECT DISTINCT theme_label FROM theme_blockers ORDER BY 1").fetchall()]
    label_to_code = dict(con.execute("SELECT DISTINCT theme_label, theme FROM theme_blockers").fetchall())
    owners = [
        r[0] for r in con.execute("SELECT DISTINCT owner FROM theme_blockers WHERE owner IS NOT NULL ORDER BY 1").fetchall()
    ]

    d_from = w.DatePicker(description="From", value=scope.date_from)
    d_to = w.DatePicker(description="To", value=scope.date_to)
    pick_themes = w.SelectMultiple(options=themes, description="Themes", rows=min(8, max(len(themes), 1)))
    owner = w.Dropdown(options=["(all)", *owners], description="Owner")
    dim = w.ToggleButtons(options=list(DIMENSIONS), description="Repeat by")
    out = w.Output()

    def refresh(*_: Any) -> None:
        nonlocal con
        # Fill the Output by setting its outputs, not with `with out:` capture: executing a capture
        # context under papermill/nbclient can hang (STACK.md, Voila reliability finding).
        out.outputs = ()
        try:
            con.close()
            con, sc = open_themes(history_db, scope.site, d_from.value, d_to.value, taxonomy)
        except HandoffError as exc:
            out.append_stdout(f"{exc}\n")
            return
        f = Filters(tuple(label_to_code[t] for t in pick_themes.value), None if owner.value == "(all)" else owner.value)
        out.append_stdout(summary_text(con, sc) + "\n")
        out.append_display_data(chart_pareto(pareto(con, f)))
        top = offenders(con, dim.value, 15, f)
        out.append_display_data(chart_offenders(top, dim.value))
        out.append_display_data(top)

    for control in (d_from, d_to, pick_themes, owner, dim):
        control.observe(refresh, names="value")
    refresh()
    return w.VBox([w.HBox([d_from, d_to]), w.HBox([pick_themes, w.VBox([owner, dim])]), out])


# ---------------------------------------------------------------------------------------- demo history

PLANTED_SKU = "SKU-400123"
PLANTED_LOCATION = "C-14-03"

DEMO_SNAP_BLOCKERS = """
CREATE TABLE IF NOT EXISTS snap_blockers (
    site VARCHAR, review_date DATE, review_time VARCHAR, blocker_id VARCHAR, order_id VARCHAR, order_state VARCHAR,
    reason VARCHAR, reason_label VARCHAR, owner VARCHAR, communicate BOOLEAN, basis VARCHAR, priority INTEGER,
    priority_rule VARCHAR, cutoff_at TIMESTAMPTZ, cutoff_label VARCHAR, minutes_to_cutoff DOUBLE, event_at TIMESTAMPTZ,
    age_minutes BIGINT, source_system VARCHAR, source_entity VARCHAR, source_file VARCHAR, source_line BIGINT,
    source_key VARCHAR, source_link VARCHAR, order_link VARCHAR, detail VARCHAR)
"""
DEMO_SNAP_ORDERS = """
CREATE TABLE IF NOT EXISTS snap_orders (
    site VARCHAR, review_date DATE, review_time VARCHAR, order_id VARCHAR, customer_id VARCHAR, customer_name VARCHAR,
    tier BIGINT, state VARCHAR, carrier VARCHAR, service VARCHAR, promise_status VARCHAR, n_blockers BIGINT)
"""
DEMO_RUNS = """
CREATE TABLE IF NOT EXISTS runs (
    site VARCHAR, review_date DATE, review_time VARCHAR, review_at TIMESTAMPTZ, run_id VARCHAR, written_at TIMESTAMPTZ,
    data_folder VARCHAR, outputs VARCHAR, summary JSON)
"""
# (reason, label, owner, weight, detail template); {sku} {loc} {n} {m} {key} are filled in.
DEMO_REASONS = (
    (
        "short_pick",
        "Short pick",
        "replenishment",
        8,
        'line {n} short {m} of {n} at {loc}, pick task {key} (WMS), note "bin empty"',
    ),
    (
        "allocation_short",
        "Allocation short",
        "inventory control",
        7,
        "line {n} {sku} allocated {m} of {n}; partial shipment allowed: the rest can ship",
    ),
    ("credit_hold", "Credit hold", "finance", 4, 'hold {key} code CR "cust on credit hold - AR to release"'),
    ("address", "Address problem", "customer service", 3, 'hold {key} code ADDR "addr validation failed"'),
    ("label_missing", "Label missing", "shipping", 4, "packed in carton {key}, no carrier label"),
    ("item_master", "Item master data wrong", "master data", 2, 'carton {key} in pack exception DIMS "dims over max for {sku}"'),
    ("packing_supplies", "Packing supplies", "packing", 2, 'carton {key} in pack exception NOCARTON "out of cartons size C"'),
    ("quality_hold", "Quality or damage", "quality", 2, 'hold {key} code QA "QA hold lot 24-117"'),
    ("customer_request", "Customer asked to hold", "customer service", 2, 'hold {key} code CUST "cust requested hold"'),
    ("unlinked_record", "Unlinked record", "data team", 2, 'case {key} cites "SO-00{n}", which matches no order'),
    ("not_released", "Not released near cutoff", "order management", 2, "order not released in the OMS"),
    ("hold_other", "Hold, reason not recognised", "shift lead", 1, 'hold {key} "see notes"'),
)
DEMO_CARRIERS = (("UPS", "GND"), ("UPS", "NDA"), ("FDX", "2DAY"), ("FDX", "GRD"), ("LTL", "STD"))


def demo_history(
    path: str | Path, days: int = 10, end: str = "2026-11-24", site: str = "demo", seed: int = 7, overwrite: bool = False
) -> Path:
    """Build (if absent, or `overwrite`) a small deterministic history database: `days` weekdays up to
    `end`, three reviews a day (09:00, 12:00, 14:30), ~40 background blockers a day that persist across a
    day's reviews, and two planted repeat problems: SKU-400123 short every day and location C-14-03
    mis-slotted (wrong item in slot) every day. Same tables and columns as history.write_snapshot writes
    (snap_blockers / snap_orders / runs). Returns the path."""
    from zoneinfo import ZoneInfo

    import numpy as np

    path = Path(path)
    if path.exists() and not overwrite:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    tz = ZoneInfo("America/New_York")
    weights = np.array([r[3] for r in DEMO_REASONS], dtype=float)
    customers = [(f"C-{1000 + i}", f"Customer {i:02d}") for i in range(60)]
    cust_w = 1 / np.arange(1, 61) ** 0.8
    cust_w /= cust_w.sum()
    day_list: list[dt.date] = []
    d = dt.date.fromisoformat(end)
    while len(day_list) < days:
        if d.weekday() < 5:
            day_list.append(d)
        d -= dt.timedelta(days=1)
    day_list.reverse()
    reviews = ("0900", "1200", "1430")
    b_rows, o_rows, r_rows = [], [], []
    order_no = 30000
    for day in day_list:
        todays = []  # (blocker fields, opened at review index, closed after review index)
        n_bg = int(rng.integers(34, 46))
        picks = rng.choice(len(DEMO_REASONS), n_bg, p=weights / weights.sum())
        for i in picks:
            reason, label, owner, _, tpl = DEMO_REASONS[i]
            order_no += 1
            todays.append(
                {
                    "reason": reason,
                    "label": label,
                    "owner": owner,
                    "order": f"SO-{order_no}",
                    "detail": tpl.format(
                        sku=f"SKU-{int(rng.integers(100000, 999999))}",
                        loc=_loc(rng),
                        n=int(rng.integers(2, 9)),
                        m=int(rng.integers(0, 2)),
                        key=f"K{order_no}",
                    ),
                    "opened": int(rng.integers(0, 3)),
                    "closes": int(rng.integers(0, 3)),
                }
            )
        # the planted repeats: the same SKU short and the same location mis-slotted, every day
        planted = [
            (
                "allocation_short",
                "Allocation short",
                "inventory control",
                0,
                f"line 1 {PLANTED_SKU} allocated 0 of 6; partial shipment allowed: the rest can ship",
            ),
            (
                "short_pick",
                "Short pick",
                "replenishment",
                1,
                f'line 2 short 0 of 4 at {_loc(rng)}, pick task T{{n}} (WMS), note "{PLANTED_SKU} bin empty again"',
            ),
            (
                "short_pick",
                "Short pick",
                "replenishment",
                0,
                f'line 1 short 0 of 3 at {PLANTED_LOCATION}, pick task T{{n}} (WMS), note "wrong item in slot"',
            ),
            (
                "short_pick",
                "Short pick",
                "replenishment",
                1,
                f'line 3 short 1 of 2 at {PLANTED_LOCATION}, pick task T{{n}} (WMS), note "other sku in this bin"',
            ),
        ]
        for reason, label, owner, opened, detail in planted:
            order_no += 1
            todays.append(
                {
                    "reason": reason,
                    "label": label,
                    "owner": owner,
                    "order": f"SO-{order_no}",
                    "detail": detail.replace("{n}", str(order_no)),
                    "opened": opened,
                    "closes": 2,
                }
            )
        for b in todays:  # customer (a few big accounts), carrier, when the blocker started
            b["customer"] = customers[int(rng.choice(len(customers), p=cust_w))]
            b["carrier"] = DEMO_CARRIERS[int(rng.integers(0, len(DEMO_CARRIERS)))]
            back = (
                int(rng.integers(0, 4)) if b["reason"] in ("credit_hold", "quality_hold", "customer_request", "hold_other") else 0
            )
            b["opened_at"] = dt.datetime.combine(day - dt.timedelta(days=back), dt.time(6, 0), tz) + dt.timedelta(
                minutes=int(rng.integers(0, 150 + 150 * b["opened"]))
            )
        for k, rt in enumerate(reviews):
            now = dt.datetime.combine(day, dt.time(int(rt[:2]), int(rt[2:])), tz)
            r_rows.append((site, day, rt, now, f"demo-{day}-{rt}", now, "", "", "{}"))
            for b in todays:
                if not (b["opened"] <= k <= max(b["opened"], b["closes"])):
                    continue
                (cust_id, cust_name), (carrier, service) = b["customer"], b["carrier"]
                age = max(int((now - b["opened_at"]).total_seconds() // 60), 0)
                bid = f"{int(b['order'][3:]):08d}{DEMO_REASONS_INDEX[b['reason']]:04d}"
                b_rows.append(
                    (
                        site,
                        day,
                        rt,
                        bid,
                        b["order"],
                        "held",
                        b["reason"],
                        b["label"],
                        b["owner"],
                        False,
                        "demo",
                        50,
                        "",
                        None,
                        None,
                        None,
                        b["opened_at"],
                        age,
                        "wms",
                        "holds",
                        "demo.csv",
                        2,
                        f"K{b['order'][3:]}",
                        None,
                        None,
                        b["detail"],
                    )
                )
                o_rows.append((site, day, rt, b["order"], cust_id, cust_name, 2, "held", carrier, service, "at_risk", 1))
    con = duckdb.connect(str(tmp))
    try:
        for ddl in (DEMO_RUNS, DEMO_SNAP_BLOCKERS, DEMO_SNAP_ORDERS):
            con.execute(ddl)
        for table, rows in (("runs", r_rows), ("snap_blockers", b_rows), ("snap_orders", o_rows)):
            names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
            frame = pd.DataFrame(rows, columns=names)  # noqa: F841 (DuckDB reads it by name)
            con.execute(f"INSERT INTO {table} SELECT * FROM frame")
    finally:
        con.close()
    tmp.replace(path)
    return path


DEMO_REASONS_INDEX = {r[0]: i for i, r in enumerate(DEMO_REASONS)}


def _loc(rng) -> str:
    return f"{'ABCDEFGHJKLM'[int(rng.integers(0, 12))]}-{int(rng.integers(1, 99)):02d}-{int(rng.integers(1, 9)):02d}"
