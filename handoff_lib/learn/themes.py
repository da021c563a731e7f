"""Recurring blocker themes across cutoff reviews: counts by theme and week, repeat offenders by SKU,
location, customer, carrier and owner, blocker age by owner, a Pareto of themes and, over several sites,
the estate views (which themes recur across sites, which sites lead on which theme, weekly trends per
site); plotly figures of each (returned, never displayed); the planner export (XLSX, one sheet per view,
plus CSVs); an ipywidgets explorer for analysts; and `demo_history` / `demo_estate`, small deterministic
histories with planted repeat problems.

The source is a site's history database (DuckDB) or the snapshot store (store.py: Parquet, any number
of sites). Every query below is defined once and runs on DuckDB or on Apache Spark (engines.py); the
Spark engine reads the store only. A test runs every view on both engines and compares them row by row.

A theme is the taxonomy theme of a blocker's policy reason (`reasons.<theme>.policy_reason` /
`rolls_up` in the site's taxonomy, `notes.taxonomy`; a reason no theme claims counts under its fallback theme, `other`). A blocker stays open across several reviews: views count
distinct blockers (site + `blocker_id`) and the days on which they were seen, so a problem that comes
back every day outranks one long-lived blocker that was snapshotted many times. SKU and location come
from the blocker's `sku` / `location` columns when the source has them, else from its detail text
(`settings.sku_pattern` / `settings.location_pattern` of the taxonomy). Where a view names one value
for a group (the main theme, the latest detail), ties are broken explicitly (most snapshots, then the
alphabetically first label; the latest review, then site and blocker id), so both engines agree.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from handoff_lib.errors import HandoffError
from handoff_lib.exports import write_csv, write_xlsx
from handoff_lib.history.engines import DuckDBEngine, Engine, check_engine, open_engine

from .taxonomy import Taxonomy, load_taxonomy

DIMENSIONS = {  # offender dimension -> column of theme_blockers
    "sku": "sku",
    "location": "location",
    "customer": "customer",
    "carrier": "carrier",
    "owner": "owner",
}

# One row per blocker per review in scope. `blockers` is the store's table, or the same made from a
# history database (store.snapshot_selects: each blocker with its order's customer and carrier).
BASE = """
SELECT b.site, b.review_date, b.review_time, b.blocker_id, b.order_id,
       b.site || '/' || b.blocker_id AS blocker_key, b.site || '/' || b.order_id AS order_key,
       CAST(b.review_date AS VARCHAR) || ' ' || b.review_time || ' ' || b.site || '/' || b.blocker_id AS seen_key,
       b.reason, b.reason_label, b.owner,
       coalesce(r.theme, $fallback_theme) AS theme, coalesce(r.theme_label, $fallback_label) AS theme_label,
       coalesce(r.root_owner, b.owner) AS root_owner,
       {sku} AS sku, {location} AS location,
       CASE WHEN b.customer_id IS NULL THEN NULL
            ELSE coalesce(b.customer_name || ' (' || b.customer_id || ')', b.customer_id) END AS customer,
       b.carrier, b.age_minutes, b.detail,
       CAST(date_trunc('week', b.review_date) AS DATE) AS week
FROM blockers b
LEFT JOIN taxonomy_rollup r ON r.policy_reason = b.reason
WHERE b.review_date BETWEEN $date_from AND $date_to {sites}
"""

REVIEWS = """
SELECT DISTINCT site, review_date, review_time FROM {reviews}
WHERE review_date BETWEEN $date_from AND $date_to {sites}
"""

BY_WEEK = """
SELECT week, theme, min(theme_label) AS theme_label, count(DISTINCT blocker_key) AS blockers,
       count(DISTINCT review_date) AS days_seen, count(DISTINCT order_key) AS orders
FROM theme_blockers {where} GROUP BY week, theme ORDER BY week, blockers DESC, theme
"""

OFFENDERS = """
WITH v AS (SELECT {expr} AS value, * FROM theme_blockers {where}),
seen AS (SELECT * FROM v WHERE value IS NOT NULL),
labels AS (SELECT value, theme_label, count(*) AS n FROM seen GROUP BY value, theme_label),
main AS (
    SELECT value, theme_label AS main_theme,
           row_number() OVER (PARTITION BY value ORDER BY n DESC, theme_label) AS place
    FROM labels
),
listed AS (SELECT value, string_agg(theme_label, ', ' ORDER BY theme_label) AS themes FROM labels GROUP BY value),
g AS (
    SELECT value, count(DISTINCT review_date) AS days_seen, count(DISTINCT blocker_key) AS blockers,
           count(DISTINCT order_key) AS orders, min(review_date) AS first_seen, max(review_date) AS last_seen,
           arg_max(detail, seen_key) AS latest_detail, count(DISTINCT site) AS sites
    FROM seen GROUP BY value
)
SELECT g.value, g.days_seen, g.blockers, g.orders, m.main_theme, l.themes, g.first_seen, g.last_seen,
       g.latest_detail, g.sites
FROM g JOIN main m ON m.value = g.value AND m.place = 1 JOIN listed l ON l.value = g.value
ORDER BY g.days_seen DESC, g.blockers DESC, g.value
LIMIT $top
"""

AGE_BY_OWNER = """
WITH last AS (
    SELECT blocker_key, arg_max(owner, seen_key) AS owner, max(age_minutes) AS age_minutes,
           arg_max(theme_label, seen_key) AS theme_label
    FROM theme_blockers {where} GROUP BY blocker_key
),
labels AS (SELECT owner, theme_label, count(*) AS n FROM last GROUP BY owner, theme_label),
main AS (
    SELECT owner, theme_label AS main_theme,
           row_number() OVER (PARTITION BY owner ORDER BY n DESC, theme_label) AS place
    FROM labels
),
ages AS (
    SELECT owner, count(*) AS blockers, median(age_minutes) / 60 AS median_h,
           quantile_cont(age_minutes, 0.9) / 60 AS p90_h, max(age_minutes) / 60 AS max_h
    FROM last GROUP BY owner
)
SELECT a.owner, a.blockers, round(a.median_h, 1) AS median_age_hours, round(a.p90_h, 1) AS p90_age_hours,
       round(a.max_h, 1) AS max_age_hours, m.main_theme
FROM ages a JOIN main m ON m.owner IS NOT DISTINCT FROM a.owner AND m.place = 1
ORDER BY median_age_hours DESC NULLS LAST, a.owner
"""

PARETO = """
WITH t AS (
    SELECT theme, min(theme_label) AS theme_label, min(root_owner) AS root_cause_owner,
           count(DISTINCT blocker_key) AS blockers, count(DISTINCT review_date) AS days_seen
    FROM theme_blockers {where} GROUP BY theme
)
SELECT theme, theme_label, root_cause_owner, blockers, days_seen,
       round(100 * CAST(blockers AS DOUBLE) / sum(blockers) OVER (), 1) AS share_pct,
       round(100 * CAST(sum(blockers) OVER (ORDER BY blockers DESC, theme ROWS UNBOUNDED PRECEDING) AS DOUBLE)
             / sum(blockers) OVER (), 1) AS cumulative_pct
FROM t ORDER BY blockers DESC, theme
"""

# ------------------------------------------------------------------ estate views (several sites)

ESTATE_THEMES = """
WITH per_site AS (
    SELECT theme, site, min(theme_label) AS theme_label, count(DISTINCT blocker_key) AS blockers,
           count(DISTINCT review_date) AS days_seen, min(review_date) AS first_seen, max(review_date) AS last_seen
    FROM theme_blockers {where} GROUP BY theme, site
),
ranked AS (SELECT *, row_number() OVER (PARTITION BY theme ORDER BY blockers DESC, site) AS place FROM per_site)
SELECT theme, min(theme_label) AS theme_label, count(*) AS sites, CAST(sum(days_seen) AS BIGINT) AS site_days,
       CAST(sum(blockers) AS BIGINT) AS blockers, max(CASE WHEN place = 1 THEN site END) AS leading_site,
       round(100 * CAST(max(CASE WHEN place = 1 THEN blockers END) AS DOUBLE) / sum(blockers), 1) AS leading_share_pct,
       min(first_seen) AS first_seen, max(last_seen) AS last_seen
FROM ranked GROUP BY theme
ORDER BY sites DESC, site_days DESC, blockers DESC, theme
"""

SITE_THEMES = """
WITH r AS (SELECT site, count(*) AS reviews FROM theme_reviews GROUP BY site),
t AS (
    SELECT theme, site, min(theme_label) AS theme_label, count(DISTINCT blocker_key) AS blockers,
           count(DISTINCT review_date) AS days_seen
    FROM theme_blockers {where} GROUP BY theme, site
),
rated AS (SELECT t.*, r.reviews, CAST(t.blockers AS DOUBLE) / r.reviews AS per_review FROM t JOIN r ON r.site = t.site)
SELECT theme, theme_label, site, blockers, days_seen, reviews, round(per_review, 2) AS blockers_per_review,
       rank() OVER (PARTITION BY theme ORDER BY per_review DESC) AS place,
       round(100 * CAST(blockers AS DOUBLE) / sum(blockers) OVER (PARTITION BY theme), 1) AS share_of_theme_pct
FROM rated
ORDER BY theme, place, site
"""

SITE_WEEK = """
SELECT week, site, theme, min(theme_label) AS theme_label, count(DISTINCT blocker_key) AS blockers,
       count(DISTINCT review_date) AS days_seen
FROM theme_blockers {where} GROUP BY week, site, theme ORDER BY week, site, blockers DESC, theme
"""


@dataclass(frozen=True)
class Scope:
    """What a themes session covers: its sites, dates, source (history database or store) and engine."""

    site: str  # the one site, or "estate" when there are several
    date_from: dt.date
    date_to: dt.date
    history_db: Path | None = None
    sites: tuple[str, ...] = ()
    store: Path | str | None = None
    engine: str = "duckdb"

    @property
    def source(self) -> Path | str:
        return self.store if self.store is not None else self.history_db

    @property
    def estate(self) -> bool:
        """More than one site: the estate views apply."""
        return len(self.sites) > 1


@dataclass(frozen=True)
class Filters:
    """Optional filters the explorer and the notebook apply to every view."""

    themes: tuple[str, ...] = ()
    owner: str | None = None
    sites: tuple[str, ...] = ()

    def where(self) -> tuple[str, dict]:
        parts, params = [], {}
        if self.themes:
            parts.append("list_contains($filter_themes, theme)")
            params["filter_themes"] = list(self.themes)
        if self.owner:
            parts.append("owner = $filter_owner")
            params["filter_owner"] = self.owner
        if self.sites:
            parts.append("list_contains($filter_sites, site)")
            params["filter_sites"] = list(self.sites)
        return ("WHERE " + " AND ".join(parts) if parts else ""), params


PROJECT = Path(__file__).resolve().parents[2]


def project_path(path: str | Path) -> Path:
    """A relative path is relative to the project folder (so notebooks run from any working directory)."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT / p


def site_taxonomy(site_file: str | Path = "") -> Taxonomy:
    """The taxonomy whose themes the views use: the notes.taxonomy of the site file `site_file` (relative =
    under the project folder), or the shipped parameters/reasons.yaml when it is ''."""
    from .taxonomy import site_taxonomy as of_site

    return of_site(project_path(site_file) if site_file not in (None, "") else None)


def is_store(source: str | Path) -> bool:
    """A snapshot store (a folder, or an object-store URL) rather than a history database file."""
    return "://" in str(source) or Path(source).is_dir()


def ensure_source(source: str | Path) -> Path | str:
    """The history database or snapshot store at `source` (relative = under the project folder). When it is
    missing and its name says demo, build it: a `.duckdb` name gets the demo history of one site, any
    other name the demo estate store of three sites. Otherwise a missing source is an error, never
    silently replaced by demo data."""
    if "://" in str(source):
        return str(source)
    path = project_path(source)
    if path.exists():
        return path
    if "demo" in path.name:
        return demo_history(path) if path.suffix == ".duckdb" else demo_estate(path)
    raise HandoffError(
        f"{path}: no history database or snapshot store (run cutoff reviews first; a name with 'demo' builds demo data)"
    )


def ensure_history(history_db: str | Path) -> Path:
    """ensure_source for a history database (kept for the notebooks that read one)."""
    return Path(ensure_source(history_db))


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


def parse_sites(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """'dc1,dc2' (or a list) as a tuple of site codes; () for none / ''."""
    if value in (None, ""):
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(s.strip() for s in items if s and s.strip()))


def open_themes(
    source: str | Path,
    site: str | list[str] | tuple[str, ...] | None = None,
    date_from: str | dt.date | None = None,
    date_to: str | dt.date | None = None,
    taxonomy: Taxonomy | None = None,
    engine: str = "duckdb",
) -> tuple[Engine, Scope]:
    """An engine with the table `theme_blockers` (one row per blocker per review in scope, with theme,
    sku, location, customer, carrier, week) and `theme_reviews` (the reviews in scope) made; and the
    resolved scope. `source` is a history database (DuckDB only) or a snapshot store folder or URL.
    `site`: one code, several ('dc1,dc2' or a list), or None: the only site of a history database, every
    site of a store. Open dates = the first / last review in the source."""
    check_engine(engine)
    taxonomy = taxonomy or load_taxonomy()
    wanted = parse_sites(site)
    if is_store(source):
        eng, sites, reviews = _open_store(source, wanted, engine)
        history_db, store_root = None, source
    else:
        if engine != "duckdb":
            raise HandoffError(
                f"{source}: the {engine} engine reads the snapshot store, not a history database: "
                "write it into a store first (handoff store export), then give the store folder"
            )
        eng, sites = _open_history(project_path(source), wanted)
        reviews = "hist_reviews"
        history_db, store_root = project_path(source), None
    try:
        params = {"sites": list(sites)}
        clause = "AND list_contains($sites, site)"
        lo, hi = eng.rows(f"SELECT min(review_date), max(review_date) FROM {reviews} WHERE TRUE {clause}", params)[0]
        d_from = parse_date(date_from, "date from") or _as_date(lo)
        d_to = parse_date(date_to, "date to") or _as_date(hi)
        if d_from is None or d_to is None:
            raise HandoffError(f"{source}: no reviews of {', '.join(sites)} yet")
        if d_from > d_to:
            raise HandoffError(f"date range {d_from} .. {d_to}: the start is after the end")
        rollup = pd.DataFrame(taxonomy.rollup_rows(), columns=["policy_reason", "theme", "theme_label", "root_owner"])
        eng.put("taxonomy_rollup", rollup)
        cols = set(eng.columns("blockers"))
        from_text = {
            "sku": "nullif(regexp_extract(b.detail, $sku_pattern), '')",
            "location": "nullif(regexp_extract(b.detail, $location_pattern), '')",
        }
        exprs = {k: (f"coalesce(b.{k}, {v})" if k in cols else v) for k, v in from_text.items()}
        scoped = {"date_from": d_from, "date_to": d_to, **params}
        eng.create(
            "theme_blockers",
            BASE.format(sites="AND list_contains($sites, b.site)", **exprs),
            {
                **scoped,
                "sku_pattern": taxonomy.sku_pattern,
                "location_pattern": taxonomy.location_pattern,
                "fallback_theme": taxonomy.fallback_theme()[0],
                "fallback_label": taxonomy.fallback_theme()[1],
            },
        )
        eng.create("theme_reviews", REVIEWS.format(reviews=reviews, sites=clause), scoped)
    except BaseException:
        eng.close()
        raise
    label = sites[0] if len(sites) == 1 else "estate"
    return eng, Scope(label, d_from, d_to, history_db, tuple(sites), store_root, engine)


def _as_date(value: Any) -> dt.date | None:
    if value is None or value is pd.NaT:
        return None
    return value.date() if isinstance(value, dt.datetime) else value


def _open_history(path: Path, wanted: tuple[str, ...]) -> tuple[DuckDBEngine, list[str]]:
    """A DuckDB engine over the history database (read-only) with views `blockers` (each with its order's
    customer and carrier) and `hist_reviews`; and the sites in scope."""
    from handoff_lib.history.store import snapshot_selects

    if not path.is_file():
        raise HandoffError(f"{path}: no history database (run reviews first, or build a demo one: themes.demo_history)")
    eng = DuckDBEngine()
    try:
        con = eng.con
        try:
            con.execute("ATTACH ? AS hist (READ_ONLY)", [str(path)])
        except duckdb.Error as exc:
            raise HandoffError(f"{path}: cannot open the history database read-only ({exc})") from None
        have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'hist'").fetchall()}
        for table in ("snap_blockers", "snap_orders"):
            if table not in have:
                raise HandoffError(f"{path}: the history database has no table {table} (no review snapshot written yet)")
        con.execute("CREATE TEMP VIEW blockers AS " + snapshot_selects(con, have, keyed=False)["blockers"])
        con.execute(
            "CREATE TEMP VIEW hist_reviews AS SELECT site, review_date, review_time FROM hist.snap_blockers"
            + (" UNION SELECT site, review_date, review_time FROM hist.runs" if "runs" in have else "")
        )
        sites = [r[0] for r in con.execute("SELECT DISTINCT site FROM hist.snap_blockers ORDER BY 1").fetchall()]
        if not wanted:
            if len(sites) != 1:
                raise HandoffError(f"{path}: holds sites {', '.join(sites) or '(none)'}; say which one (--site)")
            wanted = (sites[0],)
        for s in wanted:
            if s not in sites:
                raise HandoffError(f"{path}: no blocker history for site '{s}' (sites: {', '.join(sites) or 'none'})")
    except BaseException:
        eng.close()
        raise
    return eng, list(wanted)


def _open_store(root: str | Path, wanted: tuple[str, ...], engine: str) -> tuple[Engine, list[str], str]:
    """An engine with the store's `blockers` and `reviews` as views; the sites in scope."""
    from handoff_lib.history.store import register

    eng = open_engine(engine)
    try:
        register(eng, root, ("blockers", "reviews"))
        sites = [r[0] for r in eng.rows("SELECT DISTINCT site FROM reviews ORDER BY site")]
        for s in wanted:
            if s not in sites:
                raise HandoffError(f"{root}: no reviews of site '{s}' in the store (sites: {', '.join(sites) or 'none'})")
    except BaseException:
        eng.close()
        raise
    return eng, list(wanted or sites), "reviews"


# --------------------------------------------------------------------------------------------- views


def by_week(con: Engine, filters: Filters = Filters()) -> pd.DataFrame:
    """Distinct blockers per theme per week (week = its Monday), with days seen and orders."""
    where, params = filters.where()
    return con.query(BY_WEEK.format(where=where), params)


def offenders(con: Engine, dimension: str, top: int = 15, filters: Filters = Filters()) -> pd.DataFrame:
    """Repeat offenders by `dimension` (sku, location, customer, carrier, owner): days seen, distinct
    blockers and orders, main theme (most snapshots, ties by label), first/last seen, latest detail, and
    at how many sites; most days first."""
    if dimension not in DIMENSIONS:
        raise HandoffError(f"no offender dimension '{dimension}' (known: {', '.join(DIMENSIONS)})")
    where, params = filters.where()
    sql = OFFENDERS.format(expr=DIMENSIONS[dimension], where=where)
    return con.query(sql, {**params, "top": int(top)}).rename(columns={"value": dimension})


def age_by_owner(con: Engine, filters: Filters = Filters()) -> pd.DataFrame:
    """Blocker age per owning team (each blocker at its oldest snapshot): count, median, p90, max hours."""
    where, params = filters.where()
    return con.query(AGE_BY_OWNER.format(where=where), params)


def pareto(con: Engine, filters: Filters = Filters()) -> pd.DataFrame:
    """Themes by distinct blockers, biggest first, with share and cumulative share (%)."""
    where, params = filters.where()
    return con.query(PARETO.format(where=where), params)


def estate_themes(con: Engine, filters: Filters = Filters()) -> pd.DataFrame:
    """Which themes recur across sites: per theme, at how many sites, on how many site-days, distinct
    blockers, the leading site (most blockers, ties by name) and its share; most widespread first."""
    where, params = filters.where()
    return con.query(ESTATE_THEMES.format(where=where), params)


def site_themes(con: Engine, filters: Filters = Filters()) -> pd.DataFrame:
    """Which sites lead on which theme: per theme and site, distinct blockers, days seen, reviews of the
    site in scope, blockers per review, the site's place on the theme (1 = most per review) and its share."""
    where, params = filters.where()
    return con.query(SITE_THEMES.format(where=where), params)


def site_week(con: Engine, filters: Filters = Filters()) -> pd.DataFrame:
    """Trends: distinct blockers per week, site and theme."""
    where, params = filters.where()
    return con.query(SITE_WEEK.format(where=where), params)


ESTATE_VIEWS = ("estate_themes", "site_themes", "site_week")


def all_views(con: Engine, top: int = 15, filters: Filters = Filters(), estate: bool = False) -> dict[str, pd.DataFrame]:
    """Every view by name, as the planner export writes them (the estate views too when `estate`)."""
    views = {"pareto": pareto(con, filters), "by_week": by_week(con, filters)}
    for dim in DIMENSIONS:
        views[f"repeat_{dim}"] = offenders(con, dim, top, filters)
    views["age_by_owner"] = age_by_owner(con, filters)
    if estate:
        views.update(estate_themes=estate_themes(con, filters), site_themes=site_themes(con, filters), site_week=site_week(con, filters))
    return views


def summary_text(con: Engine, scope: Scope) -> str:
    """A few lines on what the scope holds and which repeat problems lead."""
    n, days = con.rows("SELECT count(DISTINCT blocker_key), count(DISTINCT review_date) FROM theme_blockers")[0]
    reviews = con.rows("SELECT count(*) FROM theme_reviews")[0][0]
    who = scope.site if not scope.estate else f"{len(scope.sites)} sites ({', '.join(scope.sites)})"
    lines = [f"{who}: {n} distinct blockers over {days} days ({reviews} reviews), {scope.date_from} to {scope.date_to}"]
    for dim in ("sku", "location"):
        top = offenders(con, dim, 1)
        if len(top):
            r = top.iloc[0]
            at = f", at {r['sites']} sites" if scope.estate else ""
            lines.append(f"top repeat {dim}: {r[dim]} on {r['days_seen']} of {days} days ({r['main_theme']}{at})")
    if scope.estate:
        wide = estate_themes(con)
        if len(wide):
            r = wide.iloc[0]
            lines.append(
                f"most widespread theme: {r['theme_label']} at {r['sites']} of {len(scope.sites)} sites, "
                f"led by {r['leading_site']} ({r['leading_share_pct']} % of its blockers)"
            )
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
        _week_text(df),
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


def _week_text(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with its week (a Monday) as YYYY-MM-DD text, for category axes."""
    return df.assign(week=pd.to_datetime(df["week"]).dt.strftime("%Y-%m-%d"))


def chart_site_themes(df: pd.DataFrame):
    """Heatmap: distinct blockers per review, site by theme (which sites lead on which theme)."""
    import plotly.express as px

    _plotly_renderer()
    grid = df.pivot_table(index="site", columns="theme_label", values="blockers_per_review", aggfunc="sum", fill_value=0)
    fig = px.imshow(
        grid,
        text_auto=".2f",
        aspect="auto",
        color_continuous_scale="Reds",
        title="Blockers per review by site and theme",
        labels={"x": "Theme", "y": "Site", "color": "Blockers per review"},
    )
    return fig.update_layout(margin={"t": 60, "b": 140})


def chart_site_week(df: pd.DataFrame, theme: str | None = None):
    """Lines: distinct blockers per week and site (of one theme, or all)."""
    import plotly.express as px

    _plotly_renderer()
    part = df if theme is None else df[(df["theme"] == theme) | (df["theme_label"] == theme)]
    weekly = _week_text(part).groupby(["week", "site"], as_index=False)["blockers"].sum()
    title = "Blockers per week by site" + (f": {theme}" if theme else "")
    fig = px.line(weekly, x="week", y="blockers", color="site", markers=True, title=title,
                  labels={"week": "Week (Monday)", "blockers": "Distinct blockers", "site": "Site"})
    return fig.update_layout(xaxis_type="category")


# -------------------------------------------------------------------------------------------- export


def write_export(con: Engine, scope: Scope, out_dir: str | Path, top: int = 25) -> dict[str, Path]:
    """Write the planner export of an open themes session: `blocker_themes_<site|estate>_<from>_<to>.xlsx`
    (one sheet per view, readable headers, frozen header, formulas neutralised; the estate views too when
    the scope has several sites) and one CSV per view, under `out_dir`. Returns name -> path."""
    views = all_views(con, top, estate=scope.estate)
    out = project_path(out_dir)
    stem = f"blocker_themes_{scope.site}_{scope.date_from}_{scope.date_to}"
    written = {"xlsx": write_xlsx(views, out / f"{stem}.xlsx")}
    for name, df in views.items():
        written[name] = write_csv(df, out / f"{stem}_{name}.csv")
    return written


def export(
    source: str | Path,
    site: str | list[str] | tuple[str, ...] | None,
    date_from: str | dt.date | None,
    date_to: str | dt.date | None,
    out_dir: str | Path,
    top: int = 25,
    taxonomy: Taxonomy | None = None,
    engine: str = "duckdb",
) -> dict[str, Path]:
    """open_themes + write_export + close: the planner export of a history database or a store."""
    con, scope = open_themes(source, site, date_from, date_to, taxonomy, engine)
    try:
        return write_export(con, scope, out_dir, top)
    finally:
        con.close()


# ------------------------------------------------------------------------------------------ explorer


def explorer(source: str | Path, site: str | None = None, taxonomy: Taxonomy | None = None):
    """An ipywidgets dashboard over the whole history of a site (or of the sites of a store): date range,
    themes, owner, site and offender-dimension filters; shows the Pareto, the repeat offenders (table and
    chart) and the blockers behind them. Returns the widget. Runs on DuckDB."""
    import ipywidgets as w

    taxonomy = taxonomy or load_taxonomy()
    con, scope = open_themes(source, site, None, None, taxonomy)
    themes = [r[0] for r in con.rows("SELECT DISTINCT theme_label FROM theme_blockers ORDER BY 1")]
    label_to_code = dict(con.rows("SELECT DISTINCT theme_label, theme FROM theme_blockers"))
    owners = [r[0] for r in con.rows("SELECT DISTINCT owner FROM theme_blockers WHERE owner IS NOT NULL ORDER BY 1")]

    d_from = w.DatePicker(description="From", value=scope.date_from)
    d_to = w.DatePicker(description="To", value=scope.date_to)
    pick_themes = w.SelectMultiple(options=themes, description="Themes", rows=min(8, max(len(themes), 1)))
    owner = w.Dropdown(options=["(all)", *owners], description="Owner")
    pick_sites = w.SelectMultiple(options=list(scope.sites), description="Sites", rows=min(6, max(len(scope.sites), 1)))
    dim = w.ToggleButtons(options=list(DIMENSIONS), description="Repeat by")
    out = w.Output()

    def refresh(*_: Any) -> None:
        nonlocal con
        # Fill the Output by setting its outputs, not with `with out:` capture: executing a capture
        # context under papermill/nbclient can hang (STACK.md, Voila reliability finding).
        out.outputs = ()
        try:
            con.close()
            con, sc = open_themes(source, list(scope.sites), d_from.value, d_to.value, taxonomy)
        except HandoffError as exc:
            out.append_stdout(f"{exc}\n")
            return
        f = Filters(
            tuple(label_to_code[t] for t in pick_themes.value), None if owner.value == "(all)" else owner.value, tuple(pick_sites.value)
        )
        out.append_stdout(summary_text(con, sc) + "\n")
        out.append_display_data(chart_pareto(pareto(con, f)))
        top = offenders(con, dim.value, 15, f)
        out.append_display_data(chart_offenders(top, dim.value))
        out.append_display_data(top)

    controls = [d_from, d_to, pick_themes, owner, dim] + ([pick_sites] if scope.estate else [])
    for control in controls:
        control.observe(refresh, names="value")
    refresh()
    side = [owner, dim] + ([pick_sites] if scope.estate else [])
    return w.VBox([w.HBox([d_from, d_to]), w.HBox([pick_themes, w.VBox(side)]), out])


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
    path: str | Path,
    days: int = 10,
    end: str = "2026-11-24",
    site: str = "demo",
    seed: int = 7,
    overwrite: bool = False,
    reason_boost: dict[str, float] | None = None,
) -> Path:
    """Build (if absent, or `overwrite`) a small deterministic history database: `days` weekdays up to
    `end`, three reviews a day (09:00, 12:00, 14:30), ~40 background blockers a day that persist across a
    day's reviews, and two planted repeat problems: SKU-400123 short every day and location C-14-03
    mis-slotted (wrong item in slot) every day. Same tables and columns as history.write_snapshot writes
    (snap_blockers / snap_orders / runs). `reason_boost` multiplies the background weight of some
    reasons (a site with more of one problem). Returns the path."""
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
    weights = np.array([r[3] * (reason_boost or {}).get(r[0], 1.0) for r in DEMO_REASONS], dtype=float)
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


# The demo estate: three sites, each with its own bent (one reason boosted), the planted SKU and
# location problems at every site. (site, seed, reason_boost)
DEMO_SITES = (
    ("dc-east", 11, {"credit_hold": 4.0}),
    ("dc-west", 12, {"label_missing": 5.0, "packing_supplies": 3.0}),
    ("dc-south", 13, {"short_pick": 2.5}),
)


def demo_estate(path: str | Path, days: int = 10, end: str = "2026-11-24", overwrite: bool = False) -> Path:
    """Build (if absent, or `overwrite`) a small snapshot store of DEMO_SITES: each site's demo history
    (demo_history, its own seed and boosted reasons) written into the store as reviews would write it.
    Built beside `path` and renamed into place whole. Returns the path."""
    from handoff_lib.history.store import export_history

    path = Path(path)
    if path.exists() and not overwrite:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="handoff-demo-estate-") as tmp:
        for site, seed, boost in DEMO_SITES:
            history = demo_history(Path(tmp) / f"{site}_demo.duckdb", days, end, site, seed, reason_boost=boost)
            export_history(history, part, progress=False)
    shutil.rmtree(path, ignore_errors=True)
    part.replace(path)
    return path
