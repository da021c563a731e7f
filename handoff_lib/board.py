"""The interactive handoff board for the ops meeting: ipywidgets and plotly figures over the stored
review snapshots, served by Voila (`board_server.py`, `notebooks/board.ipynb`).

Data: the board never recomputes a picture. Picking a review copies that review's snapshot from the
history database into an in-memory DuckDB (the file is attached read-only for the copy and detached
straight after, so a review run that is writing is never blocked for longer than the copy), plus the
changes, promise and drafts tables from the review's own `picture.duckdb` when the run folder is still
there. Every view then queries the in-memory copy one page at a time (`PAGE_SIZE` rows), so a
100,000-order review stays responsive. The order lookup opens the review's `picture.duckdb` read-only
for the few milliseconds of a search.

Untrusted text (notes, comments, customer names, details) only reaches the page through `html_table`
and `text`, which escape every cell; links are anchors only when they are http(s) URLs and open in a
new tab with rel="noopener noreferrer".
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from .errors import HandoffError
from .history import ReviewKey, changes_since, while_locked
from .settings import Settings, load_settings

PROJECT = Path(__file__).resolve().parents[1]
ENV_SITE = "HANDOFF_BOARD_SITE"
ENV_HISTORY = "HANDOFF_BOARD_HISTORY"
DEFAULT_SITE = "parameters/demo.yaml"
PAGE_SIZE = 50
MAX_TEXT = 300  # characters of one text cell shown (the exports hold the full text)
LINK_COLUMNS = ("source_link", "order_link", "source_links")
AGE_OPTIONS = (("any age", ""), ("30 min or older", 30), ("1 h or older", 60), ("2 h or older", 120),
               ("4 h or older", 240), ("8 h or older", 480), ("24 h or older", 1440))
ANY = "(all)"
ALL = ""  # the value of a filter's "(all)" option (ipywidgets shows a None value as no selection)
_HTTP = re.compile(r"https?://[^\s\"'<>]+\Z", re.IGNORECASE)

BLOCKER_COLUMNS = ["priority", "order_id", "order_state", "reason_label", "owner", "carrier", "cutoff_label",
                   "minutes_to_cutoff", "age_minutes", "detail", "source_system", "source_key", "source_link"]
PROMISE_COLUMNS = ["priority", "order_id", "customer_name", "state", "promise_status", "promise_reason", "cutoff_label",
                   "minutes_to_cutoff", "promised_delivery", "n_blockers", "blockers", "order_link"]
ORDER_COLUMNS = ["priority", "order_id", "customer_name", "state", "state_reason", "promise_status", "carrier", "service",
                 "cutoff_label", "minutes_to_cutoff", "n_blockers", "blockers", "order_link"]
CHANGE_COLUMNS = ["priority", "kind", "order_id", "before", "after", "detail", "owner", "age_minutes"]


# ------------------------------------------------------------------------------------ where things are


@dataclass(frozen=True)
class BoardSource:
    """The site and the history database the board reads."""

    settings: Settings
    history_db: Path

    @property
    def site(self) -> str:
        return self.settings.site


def project_path(path: str | Path) -> Path:
    """A relative path is taken from the working directory when it exists there, else from the
    project folder (Voila's kernels run in notebooks/)."""
    p = Path(path).expanduser()
    return p.resolve() if p.is_absolute() or p.exists() else PROJECT / p


def resolve_source(site: str = "", history_db: str = "") -> BoardSource:
    """The site file (argument, else $HANDOFF_BOARD_SITE, else parameters/demo.yaml) and the history
    database (argument, else $HANDOFF_BOARD_HISTORY, else the site's outputs/<site>/history.duckdb)."""
    from .runs import default_history

    settings = load_settings(project_path(site or os.environ.get(ENV_SITE) or DEFAULT_SITE))
    hist = history_db or os.environ.get(ENV_HISTORY) or ""
    return BoardSource(settings, project_path(hist) if hist else default_history(settings))


def _attach_read_only(con: duckdb.DuckDBPyConnection, path: Path, alias: str, wait_s: float) -> None:
    """ATTACH a DuckDB file read-only, waiting (like history.open_history) while a writer holds it."""
    while_locked(lambda: con.execute(f"ATTACH ? AS {alias} (READ_ONLY)", [str(path)]), path, wait_s, interval=0.1)


def _has_table(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND table_name = ?", [catalog, table]
    ).fetchone()[0])


REVIEWS = """
SELECT review_date, review_time, review_at, run_id, outputs FROM hist.runs WHERE site = ?
ORDER BY review_date DESC, review_time DESC
"""


def list_reviews(source: BoardSource, wait_s: float = 30.0) -> pd.DataFrame:
    """Every stored review of the site, newest first (empty when there is none yet)."""
    empty = pd.DataFrame(columns=["review_date", "review_time", "review_at", "run_id", "outputs"])
    if not source.history_db.exists():
        return empty
    con = duckdb.connect()
    try:
        _attach_read_only(con, source.history_db, "hist", wait_s)
        if not _has_table(con, "hist", "runs"):
            return empty
        return con.execute(REVIEWS, [source.site]).df()
    finally:
        con.close()


def review_label(review_date: object, review_time: str) -> str:
    return f"{pd.Timestamp(review_date):%Y-%m-%d} {review_time[:2]}:{review_time[2:]}"


# ------------------------------------------------------------------------------------------- snapshot


@dataclass
class Snapshot:
    """One review copied into an in-memory DuckDB: tables order_board, blockers, blocker_queue,
    changes, promise and (when the run wrote them) drafts."""

    key: ReviewKey
    con: duckdb.DuckDBPyConnection
    review_at: dt.datetime | None
    outputs: Path | None
    picture: Path | None  # the run's picture.duckdb (for the lookup), None when the folder is gone
    previous: ReviewKey | None
    has_drafts: bool
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return review_label(self.key.review_date, self.key.review_time)

    def close(self) -> None:
        self.con.close()


RUN = "SELECT review_at, outputs FROM hist.runs WHERE site = ? AND review_date = ? AND review_time = ?"
PREVIOUS = """
SELECT review_date, review_time FROM hist.runs
WHERE site = ? AND (review_date < ? OR (review_date = ? AND review_time < ?))
ORDER BY review_date DESC, review_time DESC LIMIT 1
"""
COPY_SNAPSHOT = """
CREATE TABLE {dst} AS SELECT * EXCLUDE (site, review_date, review_time) FROM hist.{src}
WHERE site = ? AND review_date = ? AND review_time = ?
"""
BLOCKER_QUEUE = """
CREATE TABLE blocker_queue AS
SELECT row_number() OVER (ORDER BY b.priority DESC NULLS LAST, b.minutes_to_cutoff NULLS LAST,
                                   b.age_minutes DESC NULLS LAST, b.blocker_id) AS rank,
       b.blocker_id, b.priority, b.order_id, b.order_state, b.reason, b.reason_label, b.owner, o.carrier, o.service,
       b.cutoff_label, b.minutes_to_cutoff, b.age_minutes, b.detail, b.source_system, b.source_key, b.source_link
FROM blockers b LEFT JOIN order_board o USING (order_id)
ORDER BY rank
"""
PROMISE_FROM_BOARD = """
CREATE TABLE promise AS
SELECT order_id, state, cutoff_at, cutoff_label, minutes_to_cutoff, CAST(NULL AS BIGINT) AS work_minutes,
       next_pickup_at, promised_delivery, n_blockers, promise_status, promise_reason
FROM order_board
"""


def load_snapshot(source: BoardSource, review_date: dt.date, review_time: str, wait_s: float = 30.0) -> Snapshot:
    """Copy one review of the site into memory (see the module docstring). The history file is
    attached read-only only while the rows are copied."""
    t0 = time.perf_counter()
    key = ReviewKey(source.site, pd.Timestamp(review_date).date(), review_time)
    con = duckdb.connect()
    con.execute("SET TimeZone = ?", [source.settings.timezone])
    try:
        _attach_read_only(con, source.history_db, "hist", wait_s)
        try:
            run = con.execute(RUN, key.params()).fetchone()
            if run is None:
                raise HandoffError(f"{source.history_db}: no review {key.site} {review_label(key.review_date, review_time)}")
            for src, dst in (("snap_orders", "order_board"), ("snap_blockers", "blockers")):
                con.execute(COPY_SNAPSHOT.format(src=src, dst=dst), key.params())
            prev = con.execute(PREVIOUS, [key.site, key.review_date, key.review_date, key.review_time]).fetchone()
        finally:
            con.execute("DETACH hist")
        timings = {"history": time.perf_counter() - t0}
        previous = ReviewKey(key.site, prev[0], prev[1]) if prev else None
        outputs = Path(run[1]) if run[1] else None
        picture = outputs / "picture.duckdb" if outputs else None
        t1 = time.perf_counter()
        picture = _copy_from_picture(con, picture) if picture and picture.exists() else None
        if picture is None:  # the run folder is gone: changes from history, promise without work estimates
            changes_since(con, source.history_db, key)
            con.execute(PROMISE_FROM_BOARD)
        has_drafts = _has_table(con, "memory", "drafts") or _drafts_from_csv(con, outputs)
        con.execute(BLOCKER_QUEUE)
        timings["picture"] = time.perf_counter() - t1
        return Snapshot(key, con, run[0], outputs, picture, previous, has_drafts, timings)
    except BaseException:
        con.close()
        raise


def _copy_from_picture(con: duckdb.DuckDBPyConnection, picture: Path) -> Path | None:
    """Copy changes, promise and drafts (when present) from the run's picture.duckdb; None when it
    cannot be read (e.g. a re-run is replacing the folder right now)."""
    try:
        _attach_read_only(con, picture, "pic", 5.0)
    except HandoffError:
        return None
    try:
        for table in ("changes", "promise"):
            if not _has_table(con, "pic", table):
                return None
        con.execute("CREATE TABLE changes AS SELECT * FROM pic.changes")
        con.execute("CREATE TABLE promise AS SELECT * FROM pic.promise")
        if _has_table(con, "pic", "drafts"):
            con.execute("CREATE TABLE drafts AS SELECT order_id, draft FROM pic.drafts")
        return picture
    finally:
        con.execute("DETACH pic")
        if not _has_table(con, "memory", "promise"):
            for t in ("changes", "drafts"):
                con.execute(f"DROP TABLE IF EXISTS {t}")


def _drafts_from_csv(con: duckdb.DuckDBPyConnection, outputs: Path | None) -> bool:
    """The drafts a run wrote as drafts.csv (notes issue), when there are any."""
    path = outputs / "drafts.csv" if outputs else None
    if path is None or not path.exists():
        return False
    try:
        con.execute("CREATE TABLE drafts AS SELECT order_id, draft FROM read_csv(?, all_varchar = true)", [str(path)])
    except duckdb.Error:
        return False
    return True


# -------------------------------------------------------------------------------------------- queries


@dataclass
class Page:
    rows: pd.DataFrame
    total: int
    page: int
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.size))

    def caption(self) -> str:
        if self.total == 0:
            return "no rows"
        first = self.page * self.size + 1
        return f"rows {first:,}–{first + len(self.rows) - 1:,} of {self.total:,}"


def _page(con: duckdb.DuckDBPyConnection, sql_from: str, params: dict, columns: list[str], order: str,
          page: int, size: int) -> Page:
    """One page of `SELECT columns {sql_from} ORDER BY order`, and the total row count.
    A page past the end is clamped to the last one."""
    total = int(con.execute(f"SELECT count(*) {sql_from}", params).fetchone()[0])
    pages = max(1, math.ceil(total / size))
    page = min(max(page, 0), pages - 1)
    cols = ", ".join(columns)
    rows = con.execute(f"SELECT {cols} {sql_from} ORDER BY {order} LIMIT {int(size)} OFFSET {int(page * size)}",
                       params).df()
    return Page(rows, total, page, size)


def _columns(con: duckdb.DuckDBPyConnection, table: str, wanted: Iterable[str]) -> list[str]:
    have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    return [c for c in wanted if c in have]


@dataclass(frozen=True)
class BlockerFilter:
    """The blocker queue's filters; None = no filter on that field."""

    owner: str | None = None
    reason: str | None = None  # reason label as shown
    min_priority: int | None = None
    carrier: str | None = None
    cutoff: str | None = None  # cutoff label (carrier pickup)
    min_age: int | None = None  # minutes

    def where(self) -> tuple[str, dict]:
        parts, params = [], {}
        for name, sql in (("owner", "owner = $owner"), ("reason", "reason_label = $reason"),
                          ("min_priority", "priority >= $min_priority"), ("carrier", "carrier = $carrier"),
                          ("cutoff", "cutoff_label = $cutoff"), ("min_age", "age_minutes >= $min_age")):
            value = getattr(self, name)
            if value is not None:
                parts.append(sql)
                params[name] = value
        return ("WHERE " + " AND ".join(parts)) if parts else "", params


def blocker_page(snap: Snapshot, flt: BlockerFilter = BlockerFilter(), page: int = 0, size: int = PAGE_SIZE) -> Page:
    """One page of the blocker queue (highest priority, nearest cutoff, oldest first) under the filters."""
    where, params = flt.where()
    return _page(snap.con, f"FROM blocker_queue {where}", params, BLOCKER_COLUMNS, "rank", page, size)


def blocker_options(snap: Snapshot) -> dict[str, list]:
    """The values each blocker filter offers (owners, reasons, carriers, cutoffs, priority thresholds)."""
    con = snap.con

    def distinct(col: str) -> list:
        return [r[0] for r in con.execute(f"SELECT DISTINCT {col} FROM blocker_queue WHERE {col} IS NOT NULL ORDER BY 1").fetchall()]

    prios = [r[0] for r in con.execute(
        "SELECT DISTINCT CAST(floor(priority / 10) * 10 AS INTEGER) FROM blocker_queue WHERE priority IS NOT NULL ORDER BY 1 DESC"
    ).fetchall()]
    return {"owner": distinct("owner"), "reason": distinct("reason_label"), "carrier": distinct("carrier"),
            "cutoff": distinct("cutoff_label"), "min_priority": prios}


def promise_page(snap: Snapshot, status: str | None = None, page: int = 0, size: int = PAGE_SIZE) -> Page:
    """Orders whose promise is at risk or needs communication (or one of them), needs communication
    first, then by priority; with the draft note when the run wrote drafts."""
    statuses = [status] if status else ["needs_communication", "at_risk"]
    cols = [f"o.{c}" for c in _columns(snap.con, "order_board", PROMISE_COLUMNS)]
    join = ""
    if snap.has_drafts:
        cols.append("d.draft AS draft_note")
        join = "LEFT JOIN (SELECT order_id, first(draft) AS draft FROM drafts GROUP BY order_id) d USING (order_id)"
    return _page(snap.con, f"FROM order_board o {join} WHERE list_contains($statuses, o.promise_status)",
                 {"statuses": statuses}, cols,
                 "CASE o.promise_status WHEN 'needs_communication' THEN 0 ELSE 1 END, o.priority DESC NULLS LAST, o.order_id",
                 page, size)


def order_page(snap: Snapshot, state: str | None = None, promise_status: str | None = None, page: int = 0,
               size: int = PAGE_SIZE) -> Page:
    """Orders of the review, highest priority first, optionally of one state / promise status."""
    parts, params = [], {}
    if state:
        parts.append("state = $state")
        params["state"] = state
    if promise_status:
        parts.append("promise_status = $promise_status")
        params["promise_status"] = promise_status
    where = ("WHERE " + " AND ".join(parts)) if parts else ""
    return _page(snap.con, f"FROM order_board {where}", params, _columns(snap.con, "order_board", ORDER_COLUMNS),
                 "priority DESC NULLS LAST, order_id", page, size)


def change_counts(snap: Snapshot) -> pd.DataFrame:
    """Changes since the previous review per kind (every kind listed, zero included)."""
    from .history import change_summary

    return change_summary(snap.con)


def change_page(snap: Snapshot, kind: str | None = None, page: int = 0, size: int = PAGE_SIZE) -> Page:
    """Changes since the previous review, highest priority first, optionally of one kind."""
    where, params = ("WHERE kind = $kind", {"kind": kind}) if kind else ("", {})
    return _page(snap.con, f"FROM changes {where}", params, _columns(snap.con, "changes", CHANGE_COLUMNS),
                 "priority DESC NULLS LAST, kind, order_id", page, size)


HEADLINE = """
SELECT
  (SELECT count(*) FROM order_board) AS orders,
  (SELECT count(*) FROM blockers) AS open_blockers,
  (SELECT count(DISTINCT order_id) FROM blockers) AS blocked_orders,
  (SELECT min(cutoff_at) FROM order_board WHERE minutes_to_cutoff >= 0
      AND promise_status NOT IN ('handed_off', 'cancelled')) AS next_pickup
"""
AT_RISK_NEXT = """
SELECT any_value(cutoff_label) AS label, count(*) FILTER (WHERE promise_status IN ('at_risk', 'needs_communication')) AS n
FROM order_board WHERE cutoff_at = $next
"""


def headline(snap: Snapshot) -> dict[str, Any]:
    """Counts for the tiles: orders by state and by promise status, open blockers (and the orders they
    block), and orders at risk or needing communication on the next carrier pickup still ahead."""
    con = snap.con
    orders, blockers, blocked, next_pickup = con.execute(HEADLINE).fetchone()
    label, at_risk_next = (None, 0)
    if next_pickup is not None:
        label, at_risk_next = con.execute(AT_RISK_NEXT, {"next": next_pickup}).fetchone()
    return {
        "orders": int(orders),
        "by_state": dict(con.execute("SELECT state, count(*) FROM order_board GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()),
        "by_promise": dict(con.execute(
            "SELECT promise_status, count(*) FROM order_board GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()),
        "open_blockers": int(blockers),
        "blocked_orders": int(blocked),
        "next_pickup": label,
        "at_risk_next_pickup": int(at_risk_next or 0),
    }


# ------------------------------------------------------------------------------------- order lookup


@dataclass
class Found:
    order_id: str
    kind: str
    matched: str


@dataclass
class OrderDetail:
    order_id: str
    order: dict  # the order board row ({} when the order is not on this review's board)
    blockers: pd.DataFrame
    timeline: pd.DataFrame  # time, system, event, detail, source
    timeline_note: str = ""  # why there is no timeline, when there is none


def find(snap: Snapshot, settings: Settings, identifier: str) -> list[Found]:
    """Orders an identifier resolves to: any identifier the review's picture indexed (order, PO, pick
    ticket, task, carton, shipment, tracking number, hold, case), else the order id on the board."""
    text = (identifier or "").strip()
    if not text:
        return []
    if snap.picture is not None and snap.picture.exists():
        from .lookup import find_orders

        pic = duckdb.connect(str(snap.picture), read_only=True)
        try:
            return [Found(m.order_id, m.kind, m.matched) for m in find_orders(pic, settings, text)]
        finally:
            pic.close()
    rows = snap.con.execute(
        "SELECT order_id FROM order_board WHERE upper(order_id) = upper($q) ORDER BY order_id", {"q": text}
    ).fetchall()
    return [Found(r[0], "order", r[0]) for r in rows]


TIMELINE = {
    "orders": """
        SELECT ordered_at, 'OMS' AS system, 'order placed' AS event,
               concat_ws(' ', 'customer', customer_id, customer_name, CASE WHEN customer_po IS NOT NULL THEN 'PO ' || customer_po END) AS detail,
               _file || ' line ' || _line AS source FROM orders WHERE order_id = $oid
        UNION ALL SELECT released_at, 'OMS', 'order released', release_status, _file || ' line ' || _line
        FROM orders WHERE order_id = $oid AND released_at IS NOT NULL
        UNION ALL SELECT cancelled_at, 'OMS', 'order cancelled', '', _file || ' line ' || _line
        FROM orders WHERE order_id = $oid AND cancelled_at IS NOT NULL""",
    "linked_pick_tasks": """
        SELECT updated_at, 'WMS', 'pick task ' || coalesce(status, '?'),
               concat_ws(' ', task_id, 'line ' || line_no, sku, 'at ' || location, 'picked ' || qty_picked || ' of ' || qty_required,
                         CASE WHEN substituted_sku IS NOT NULL THEN 'substituted ' || substituted_sku END, note),
               _file || ' line ' || _line FROM linked_pick_tasks WHERE order_id = $oid""",
    "linked_pack_events": """
        SELECT event_at, 'WMS', 'carton ' || coalesce(status, '?'),
               concat_ws(' ', carton_id, exception_code, note), _file || ' line ' || _line
        FROM linked_pack_events WHERE order_id = $oid""",
    "linked_holds": """
        SELECT placed_at, 'WMS', 'hold placed', concat_ws(' ', hold_id, code, note, 'by ' || placed_by), _file || ' line ' || _line
        FROM linked_holds WHERE order_id = $oid
        UNION ALL SELECT released_at, 'WMS', 'hold released', hold_id, _file || ' line ' || _line
        FROM linked_holds WHERE order_id = $oid AND released_at IS NOT NULL""",
    "linked_shipments": """
        SELECT label_created_at, 'carrier', 'label created', concat_ws(' ', shipment_id, carrier, service, 'tracking ' || tracking_no),
               _file || ' line ' || _line FROM linked_shipments WHERE order_id = $oid AND label_created_at IS NOT NULL
        UNION ALL SELECT manifested_at, 'carrier', 'manifested', concat_ws(' ', shipment_id, 'tracking ' || tracking_no), _file || ' line ' || _line
        FROM linked_shipments WHERE order_id = $oid AND manifested_at IS NOT NULL
        UNION ALL SELECT handed_off_at, 'carrier', 'handed off to carrier', concat_ws(' ', shipment_id, 'tracking ' || tracking_no),
               _file || ' line ' || _line FROM linked_shipments WHERE order_id = $oid AND handed_off_at IS NOT NULL""",
    "linked_cases": """
        SELECT opened_at, 'CRM', 'case opened', concat_ws(' ', case_id, case_type, text), _file || ' line ' || _line
        FROM linked_cases WHERE order_id = $oid
        UNION ALL SELECT closed_at, 'CRM', 'case closed', case_id, _file || ' line ' || _line
        FROM linked_cases WHERE order_id = $oid AND closed_at IS NOT NULL""",
}
TIMELINE_COLUMNS = ["time", "system", "event", "detail", "source"]


def order_detail(snap: Snapshot, order_id: str) -> OrderDetail:
    """The order's board row (state and promise with their reasons), its open blockers with source
    links, and its timeline across OMS, WMS, carrier and CRM from the review's picture."""
    row = snap.con.execute("SELECT * FROM order_board WHERE order_id = ?", [order_id]).df()
    blockers = snap.con.execute(
        """SELECT priority, reason_label, owner, cutoff_label, minutes_to_cutoff, age_minutes, detail, source_system,
                  source_key, source_link FROM blockers WHERE order_id = ? ORDER BY priority DESC, blocker_id""",
        [order_id],
    ).df()
    detail = OrderDetail(order_id, row.iloc[0].to_dict() if len(row) else {}, blockers, pd.DataFrame(columns=TIMELINE_COLUMNS))
    if snap.picture is None or not snap.picture.exists():
        detail.timeline_note = "No timeline: this review's run folder (picture.duckdb) is no longer there."
        return detail
    pic = duckdb.connect(str(snap.picture), read_only=True)
    try:
        pic.execute("SET TimeZone = ?", [snap.con.execute("SELECT current_setting('TimeZone')").fetchone()[0]])
        have = {r[0] for r in pic.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        parts = [f'SELECT CAST(ts AS TIMESTAMPTZ) AS "time", system, event, detail, source FROM ({sql.strip()}) t(ts, system, event, detail, source)'
                 for table, sql in TIMELINE.items() if table in have]
        if parts:
            detail.timeline = pic.execute(
                " UNION ALL ".join(parts) + ' ORDER BY "time" NULLS LAST, system, event', {"oid": order_id}
            ).df()
    finally:
        pic.close()
    return detail


# ----------------------------------------------------------------------------------------- rendering


def safe_url(value: object) -> str | None:
    """The value when it is an http(s) URL without spaces or quotes, else None."""
    return value if isinstance(value, str) and _HTTP.match(value.strip()) else None


def _is_missing(v: object) -> bool:
    if v is None or v is pd.NaT:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _fmt(v: object) -> str:
    """One cell as plain text."""
    if isinstance(v, (list, tuple)) or hasattr(v, "tolist") and not isinstance(v, (str, pd.Timestamp)):
        seq = v.tolist() if hasattr(v, "tolist") else v
        if isinstance(seq, list):
            return "; ".join(_fmt(x) for x in seq)
    if _is_missing(v):
        return ""
    if isinstance(v, (pd.Timestamp, dt.datetime)):
        ts = pd.Timestamp(v)
        return ts.strftime("%a %d %b" if ts.tzinfo is None and ts == ts.normalize() else "%a %d %b %H:%M")
    if isinstance(v, dt.date):
        return v.strftime("%a %d %b")
    if isinstance(v, float):
        return f"{v:,.0f}" if v.is_integer() or abs(v) >= 100 else f"{v:,.1f}"
    s = str(v)
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"


def _link(url: str, label: str = "open ↗") -> str:
    u = html.escape(url.strip(), quote=True)
    return f'<a href="{u}" target="_blank" rel="noopener noreferrer" title="{u}">{html.escape(label)}</a>'


def _cell(col: str, v: object) -> str:
    if col in LINK_COLUMNS:
        urls = v.tolist() if hasattr(v, "tolist") and not isinstance(v, str) else (v if isinstance(v, (list, tuple)) else [v])
        safe = [u for u in (safe_url(x) for x in urls) if u]
        if safe:
            return " ".join(_link(u) for u in safe)
    return html.escape(_fmt(v))


def html_table(df: pd.DataFrame, table_id: str, total: int | None = None, version: int = 0) -> str:
    """The rows as an HTML table in which every header and cell is escaped text; *_link columns are
    anchors (http(s) only, new tab, noopener). data-rows / data-total / data-version attributes let
    tests and the benchmark see what is shown."""
    tid = html.escape(table_id, quote=True)
    head = "".join(f"<th>{html.escape(str(c).replace('_', ' '))}</th>" for c in df.columns)
    cols = list(df.columns)
    body = "".join(
        "<tr>" + "".join(f'<td data-col="{html.escape(str(c), quote=True)}">{_cell(c, v)}</td>' for c, v in zip(cols, row)) + "</tr>"
        for row in df.itertuples(index=False, name=None)
    )
    n_total = len(df) if total is None else total
    return (f'<table class="board-table" id="{tid}" data-rows="{len(df)}" data-total="{n_total}" data-version="{version}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def text(s: object, tag: str = "p", cls: str = "") -> str:
    """Escaped text in one element."""
    c = f' class="{html.escape(cls, quote=True)}"' if cls else ""
    return f"<{tag}{c}>{html.escape(_fmt(s) if not isinstance(s, str) else s)}</{tag}>"


def tiles_html(h: dict[str, Any]) -> str:
    """Headline tiles as escaped HTML."""

    def tile(label: str, n: int, cls: str = "", key: str = "") -> str:
        return (f'<div class="board-tile {cls}" data-key="{html.escape(key, quote=True)}" data-count="{int(n)}">'
                f'<div class="n">{int(n):,}</div><div class="l">{html.escape(label)}</div></div>')

    nxt = f"at risk on the next pickup ({h['next_pickup']})" if h["next_pickup"] else "at risk on the next pickup (none ahead)"
    top = [tile("orders", h["orders"], key="orders"),
           tile(f"open blockers on {h['blocked_orders']:,} orders", h["open_blockers"], "warn", "open_blockers"),
           tile(nxt, h["at_risk_next_pickup"], "alert", "at_risk_next_pickup")]
    promise = [tile(f"promise: {k.replace('_', ' ')}", n, f"p-{k}", f"promise.{k}") for k, n in h["by_promise"].items()]
    states = [tile(k.replace("_", " "), n, "state", f"state.{k}") for k, n in h["by_state"].items()]
    return ('<div class="board-tiles">' + "".join(top) + "</div>"
            + '<div class="board-tiles small">' + "".join(promise) + "</div>"
            + '<div class="board-tiles small">' + "".join(states) + "</div>")


def timeline_html(d: OrderDetail, found: Found | None, version: int = 0) -> str:
    """The order lookup answer: what matched, state and promise with their reasons, blockers, timeline."""
    o = d.order
    out = [f'<div class="board-order" data-order="{html.escape(d.order_id, quote=True)}">']
    head = f"Order {d.order_id}"
    if found:
        head += f" (matched {found.kind.replace('_', ' ')} {found.matched})"
    out.append(text(head, "h4"))
    if o:
        facts = [("customer", f"{_fmt(o.get('customer_name'))} ({_fmt(o.get('customer_id'))})"),
                 ("state", f"{_fmt(o.get('state'))}: {_fmt(o.get('state_reason'))}"),
                 ("promise", f"{_fmt(o.get('promise_status'))}: {_fmt(o.get('promise_reason'))}"),
                 ("carrier pickup", f"{_fmt(o.get('carrier'))} {_fmt(o.get('service'))}, {_fmt(o.get('cutoff_label'))}"),
                 ("priority", _fmt(o.get("priority")))]
        out.append('<dl class="board-facts">' + "".join(
            f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts) + "</dl>")
        link = safe_url(o.get("order_link"))
        if link:
            out.append("<p>OMS: " + _link(link, "open the order ↗") + "</p>")
    else:
        out.append(text("This order is not on the board of this review (it may be newer or older than the extract)."))
    out.append(text(f"Open blockers ({len(d.blockers)})", "h5"))
    if len(d.blockers):
        out.append(html_table(d.blockers, "board-order-blockers", version=version))
    out.append(text(f"Timeline across systems ({len(d.timeline)} events)", "h5"))
    if d.timeline_note:
        out.append(text(d.timeline_note))
    else:
        out.append(html_table(d.timeline, "board-order-timeline", version=version))
    out.append("</div>")
    return "".join(out)


STYLE = """<style>
.board-root { font-family: system-ui, sans-serif; font-size: 13px; }
.board-tiles { display: flex; flex-wrap: wrap; gap: 8px; margin: 6px 0; }
.board-tile { border: 1px solid #ccd; border-radius: 6px; padding: 6px 12px; min-width: 110px; background: #fafbfc; }
.board-tile .n { font-size: 24px; font-weight: 600; } .board-tiles.small .board-tile .n { font-size: 16px; }
.board-tile.warn { border-color: #f9a825; } .board-tile.alert { border-color: #c62828; }
.board-tile.p-needs_communication .n { color: #c62828; } .board-tile.p-at_risk .n { color: #b26a00; }
table.board-table { border-collapse: collapse; width: 100%; margin: 4px 0; }
table.board-table th { text-align: left; background: #eef1f5; position: sticky; top: 0; }
table.board-table th, table.board-table td { border-bottom: 1px solid #e3e6ea; padding: 3px 6px; vertical-align: top; }
table.board-table td[data-col="detail"], table.board-table td[data-col="draft_note"] { white-space: pre-wrap; max-width: 520px; }
table.board-table tbody tr:nth-child(even) { background: #f8f9fb; }
.board-facts { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; }
.board-facts dt { font-weight: 600; } .board-facts dd { margin: 0; }
.board-tabs .lm-TabBar-tab, .board-tabs .p-TabBar-tab { flex: 0 0 auto !important; max-width: none !important; }
.board-msg { color: #555; } .board-error { color: #c62828; }
</style>"""


# -------------------------------------------------------------------------------------------- widgets


def _guard(status: Any) -> Callable:
    """Run a widget callback; a HandoffError shows its message on the board, anything else says
    'see the server log' (the traceback goes to the kernel's stderr, never to the page)."""

    def wrap(fn: Callable) -> Callable:
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                fn(*args, **kwargs)
            except HandoffError as exc:
                status.value = text(str(exc), "p", "board-error")
            except Exception:  # noqa: BLE001 - the page must stay usable; details go to the log
                traceback.print_exc(file=sys.stderr)
                status.value = text("Something went wrong; the details are in the board server's log.", "p", "board-error")

        return run

    return wrap


class PagedTable:
    """An HTML table with previous/next buttons; `fetch(page)` returns the `Page` to show."""

    def __init__(self, table_id: str, fetch: Callable[[int], Page], guard: Callable):
        import ipywidgets as w

        self.table_id = table_id
        self.fetch = fetch
        self.page = 0
        self.version = 0
        self.html = w.HTML()
        self.html.add_class(f"{table_id}-html")
        self.info = w.HTML()
        self.prev = w.Button(description="◀ previous", layout=w.Layout(width="110px"))
        self.next = w.Button(description="next ▶", layout=w.Layout(width="110px"))
        self.prev.add_class(f"{table_id}-prev")
        self.next.add_class(f"{table_id}-next")
        self.prev.on_click(guard(lambda _: self.show(self.page - 1)))
        self.next.on_click(guard(lambda _: self.show(self.page + 1)))
        self.widget = w.VBox([w.HBox([self.prev, self.next, self.info]), self.html])

    def show(self, page: int = 0) -> Page:
        p = self.fetch(page)
        self.page = p.page
        self.version += 1
        self.info.value = text(f"{p.caption()} · page {p.page + 1} of {p.pages}", "span", "board-msg")
        self.prev.disabled = p.page == 0
        self.next.disabled = p.page >= p.pages - 1
        self.html.value = html_table(p.rows, self.table_id, p.total, self.version)
        return p


def _v(value: Any) -> Any:
    """A filter widget's value, None for "(all)"."""
    return None if value == ALL else value


def _dropdown(description: str, values: list, fmt: Callable[[Any], str] = str, any_label: str = ANY, cls: str = ""):
    import ipywidgets as w

    d = w.Dropdown(options=[(any_label, ALL)] + [(fmt(v), v) for v in values], value=ALL, description=description,
                   style={"description_width": "initial"}, layout=w.Layout(width="auto"))
    if cls:
        d.add_class(cls)
    return d


def _show_figure(out: Any, fig: Any) -> None:
    """A plotly figure into an Output widget as plotly's JSON mime bundle only (no inlined plotly.js
    in the widget state; Voila renders it with the jupyterlab-plotly extension)."""
    import plotly.io as pio

    out.clear_output(wait=True)
    with out:
        pio.show(fig, renderer="plotly_mimetype", config={"displaylogo": False, "responsive": True})


class Board:
    """The dashboard's state and widgets; `Board(...).widget` is what the notebook shows."""

    def __init__(self, source: BoardSource, review: str = ""):
        import ipywidgets as w

        self.source = source
        self.snap: Snapshot | None = None
        self.status = w.HTML()
        self.status.add_class("board-status")
        guard = _guard(self.status)
        self.guard = guard

        self.picker = w.Dropdown(description="Review", style={"description_width": "initial"}, layout=w.Layout(width="320px"))
        self.picker.add_class("board-review")
        self.refresh = w.Button(description="↻ reviews", tooltip="look for reviews stored since the page was opened",
                                layout=w.Layout(width="100px"))
        self.refresh.add_class("board-refresh")
        self.title = w.HTML()
        self.tiles = w.HTML()
        self.tiles.add_class("board-tiles-html")

        # blocker queue
        self.f_owner = _dropdown("Owner", [], cls="board-filter-owner")
        self.f_reason = _dropdown("Reason", [], cls="board-filter-reason")
        self.f_priority = _dropdown("Priority ≥", [], cls="board-filter-priority", any_label="any")
        self.f_carrier = _dropdown("Carrier", [], cls="board-filter-carrier")
        self.f_cutoff = _dropdown("Pickup", [], cls="board-filter-cutoff")
        self.f_age = w.Dropdown(options=list(AGE_OPTIONS), value=ALL, description="Age",
                                style={"description_width": "initial"}, layout=w.Layout(width="auto"))
        self.f_age.add_class("board-filter-age")
        self.blockers = PagedTable("board-blockers", lambda p: blocker_page(self.snap, self.blocker_filter(), p), guard)
        for d in (self.f_owner, self.f_reason, self.f_priority, self.f_carrier, self.f_cutoff, self.f_age):
            d.observe(guard(lambda _: self.blockers.show(0)), names="value")
        blocker_tab = w.VBox([w.HBox([self.f_owner, self.f_reason, self.f_priority], layout=w.Layout(flex_flow="row wrap")),
                              w.HBox([self.f_carrier, self.f_cutoff, self.f_age], layout=w.Layout(flex_flow="row wrap")),
                              self.blockers.widget])

        # promise
        self.p_status = w.ToggleButtons(options=[("both", ALL), ("needs communication", "needs_communication"),
                                                 ("at risk", "at_risk")], value=ALL)
        self.p_status.add_class("board-promise-status")
        self.promise = PagedTable("board-promise", lambda p: promise_page(self.snap, _v(self.p_status.value), p), guard)
        self.p_status.observe(guard(lambda _: self.promise.show(0)), names="value")
        self.p_note = w.HTML()
        promise_tab = w.VBox([self.p_status, self.p_note, self.promise.widget])

        # changes
        self.c_counts = w.HTML()
        self.c_kind = _dropdown("Kind", [], lambda k: k.replace("_", " "), cls="board-change-kind")
        self.changes = PagedTable("board-changes", lambda p: change_page(self.snap, _v(self.c_kind.value), p), guard)
        self.c_kind.observe(guard(lambda _: self.changes.show(0)), names="value")
        changes_tab = w.VBox([self.c_counts, self.c_kind, self.changes.widget])

        # orders
        self.o_state = _dropdown("State", [], lambda k: k.replace("_", " "), cls="board-order-state")
        self.o_promise = _dropdown("Promise", [], lambda k: k.replace("_", " "), cls="board-order-promise")
        self.orders = PagedTable("board-orders",
                                 lambda p: order_page(self.snap, _v(self.o_state.value), _v(self.o_promise.value), p), guard)
        for d in (self.o_state, self.o_promise):
            d.observe(guard(lambda _: self.orders.show(0)), names="value")
        orders_tab = w.VBox([w.HBox([self.o_state, self.o_promise]), self.orders.widget])

        # lookup
        self.q = w.Text(placeholder="order, PO, pick ticket, task, carton, shipment, tracking no., hold or case",
                        layout=w.Layout(width="480px"), continuous_update=False)
        self.q.add_class("board-lookup-input")
        self.q_go = w.Button(description="Find", button_style="primary", layout=w.Layout(width="80px"))
        self.q_go.add_class("board-lookup-go")
        self.q_pick = w.Dropdown(description="Matches", layout=w.Layout(display="none"))
        self.q_out = w.HTML()
        self.q_out.add_class("board-lookup-result")
        self.q_version = 0
        self.q_found: dict[str, Found] = {}
        self.q_go.on_click(guard(lambda _: self.lookup(self.q.value)))
        self.q.observe(guard(lambda ch: self.lookup(ch["new"])), names="value")
        self.q_pick.observe(guard(lambda ch: ch["new"] and self.show_order(ch["new"])), names="value")
        lookup_tab = w.VBox([w.HBox([self.q, self.q_go]), self.q_pick, self.q_out])

        # charts
        self.fig_funnel, self.fig_owner, self.fig_burn = w.Output(), w.Output(), w.Output()
        charts_tab = w.VBox([self.fig_burn, self.fig_funnel, self.fig_owner])

        # recurring themes (optional: built on demand from the whole history)
        self.t_go = w.Button(description="Show recurring themes", layout=w.Layout(width="200px"))
        self.t_out = w.Output()
        self.t_go.on_click(guard(lambda _: self.show_themes()))
        themes_tab = w.VBox([w.HTML(text("Blocker themes that recur across the stored reviews of this site.")),
                             self.t_go, self.t_out])

        self.tabs = w.Tab(children=[blocker_tab, promise_tab, changes_tab, lookup_tab, charts_tab, orders_tab, themes_tab])
        for i, t in enumerate(("Blocker queue", "Promises at risk", "Changes since last review", "Order lookup",
                               "Cutoff burn-down & charts", "All orders", "Recurring themes")):
            self.tabs.set_title(i, t)
        self.tabs.add_class("board-tabs")
        self.charts_tab = 4
        self.charts_stale = True  # figures are drawn when their tab is first shown (plotly.js loads then)
        self.tabs.observe(guard(lambda _: self.show_charts_if_visible()), names="selected_index")

        self._quiet = False
        self.picker.observe(guard(lambda ch: ch["new"] and not self._quiet and self.open_review(ch["new"])), names="value")
        self.refresh.on_click(guard(lambda _: self.load_reviews(keep=False)))
        self.widget = w.VBox([w.HTML(STYLE), self.title, w.HBox([self.picker, self.refresh]), self.status, self.tiles, self.tabs])
        self.widget.add_class("board-root")
        self.load_reviews(prefer=review)
        self.widget.add_class("board-ready")

    # ---- state
    def blocker_filter(self) -> BlockerFilter:
        return BlockerFilter(owner=_v(self.f_owner.value), reason=_v(self.f_reason.value),
                             min_priority=_v(self.f_priority.value), carrier=_v(self.f_carrier.value),
                             cutoff=_v(self.f_cutoff.value), min_age=_v(self.f_age.value))

    def load_reviews(self, prefer: str = "", keep: bool = True) -> None:
        """Fill the review picker (newest first) and open the preferred review, else the latest."""
        df = list_reviews(self.source)
        if df.empty:
            self.title.value = text(f"{self.source.settings.name}: handoff board", "h2")
            raise HandoffError(f"{self.source.history_db}: no cutoff review of site '{self.source.site}' stored yet "
                               f"(run one: handoff run --site ... --at 'YYYY-MM-DD HH:MM')")
        options = []
        for i, (d, t) in enumerate(zip(df["review_date"], df["review_time"])):
            label = review_label(d, t) + (" (latest)" if i == 0 else "")
            options.append((label, f"{pd.Timestamp(d):%Y-%m-%d}|{t}"))
        values = [v for _, v in options]
        want = prefer.replace(" ", "|").replace(":", "") if prefer else ""
        if want and want not in values:
            raise HandoffError(f"review '{prefer}' is not stored for site '{self.source.site}' (stored: "
                               f"{', '.join(label for label, _ in options[:8])})")
        current = self.snap and f"{self.snap.key.review_date:%Y-%m-%d}|{self.snap.key.review_time}"
        target = want or (current if keep and current in values else values[0])
        self._quiet = True
        try:
            self.picker.options = options
            self.picker.value = target
        finally:
            self._quiet = False
        if target != current or not keep:
            self.open_review(target)

    def open_review(self, value: str) -> None:
        day, hhmm = value.split("|")
        t0 = time.perf_counter()
        snap = load_snapshot(self.source, dt.date.fromisoformat(day), hhmm)
        if self.snap is not None:
            self.snap.close()
        self.snap = snap
        self.title.value = text(f"{self.source.settings.name}: handoff board, cutoff review {snap.label}", "h2")
        h = headline(snap)
        self.tiles.value = tiles_html(h)
        opts = blocker_options(snap)
        for d, key, fmt in ((self.f_owner, "owner", str), (self.f_reason, "reason", str),
                            (self.f_priority, "min_priority", str), (self.f_carrier, "carrier", str),
                            (self.f_cutoff, "cutoff", str)):
            with d.hold_trait_notifications():
                d.options = [(d.options[0][0], ALL)] + [(fmt(v), v) for v in opts[key]]
                d.value = ALL
        self.f_age.value = ALL
        self.blockers.show(0)
        self.p_note.value = "" if snap.has_drafts else text(
            "Draft notes appear here once the review runs write them (notes issue).", "p", "board-msg")
        self.promise.show(0)
        counts = change_counts(snap)
        if snap.previous is None:
            self.c_counts.value = text("No earlier review of this site in the history: nothing to compare with.", "p", "board-msg")
        else:
            prev = review_label(snap.previous.review_date, snap.previous.review_time)
            self.c_counts.value = text(f"Since the review of {prev}:", "p") + html_table(counts, "board-change-counts")
        with self.c_kind.hold_trait_notifications():
            self.c_kind.options = [(ANY, ALL)] + [(k.replace("_", " "), k) for k, n in counts.itertuples(index=False) if n]
            self.c_kind.value = ALL
        self.changes.show(0)
        with self.o_state.hold_trait_notifications():
            self.o_state.options = [(ANY, ALL)] + [(k.replace("_", " "), k) for k in h["by_state"]]
            self.o_state.value = ALL
        with self.o_promise.hold_trait_notifications():
            self.o_promise.options = [(ANY, ALL)] + [(k.replace("_", " "), k) for k in h["by_promise"]]
            self.o_promise.value = ALL
        self.orders.show(0)
        self.q_out.value = ""
        self.q_pick.layout.display = "none"
        self.charts_stale = True
        self.show_charts_if_visible()
        took = time.perf_counter() - t0
        self.status.value = text(f"Review {snap.label} loaded in {took:.1f} s"
                                 + ("" if snap.picture else " (run folder gone: no timelines, changes from history)"),
                                 "p", "board-msg")

    def show_charts_if_visible(self) -> None:
        if self.charts_stale and self.tabs.selected_index == self.charts_tab:
            self.show_charts()

    def show_charts(self) -> None:
        from . import charts

        self.charts_stale = False

        _show_figure(self.fig_burn, charts.cutoff_burndown(self.snap.con))
        _show_figure(self.fig_funnel, charts.state_funnel(self.snap.con))
        _show_figure(self.fig_owner, charts.blockers_by_owner(self.snap.con))

    def lookup(self, identifier: str) -> None:
        if not (identifier or "").strip():
            return
        found = find(self.snap, self.source.settings, identifier)
        self.q_found = {f.order_id: f for f in found}
        if not found:
            self.q_pick.layout.display = "none"
            self.q_version += 1
            self.q_out.value = text(f"'{identifier.strip()}' matches no order in the review of {self.snap.label}.",
                                    "p", "board-msg board-lookup-none")
            return
        if len(found) > 1:
            with self.q_pick.hold_trait_notifications():
                self.q_pick.options = [(f"{f.order_id} ({f.kind} {f.matched})", f.order_id) for f in found]
                self.q_pick.value = found[0].order_id
            self.q_pick.layout.display = ""
        else:
            self.q_pick.layout.display = "none"
        self.show_order(found[0].order_id)

    def show_order(self, order_id: str) -> None:
        self.q_version += 1
        self.q_out.value = timeline_html(order_detail(self.snap, order_id), self.q_found.get(order_id), self.q_version)

    def show_themes(self) -> None:
        try:
            from . import themes

            widget = themes.explorer(self.source.history_db, self.source.site)
        except (ImportError, AttributeError) as exc:
            raise HandoffError(f"recurring themes are not available in this version ({exc})") from None
        from IPython.display import display

        self.t_out.clear_output()
        with self.t_out:
            display(widget)
        self.t_go.layout.display = "none"


def dashboard(history_db: str = "", site: str = "", review: str = ""):
    """The handoff board as one widget. `site`: the site parameters file (default $HANDOFF_BOARD_SITE,
    else parameters/demo.yaml); `history_db`: default $HANDOFF_BOARD_HISTORY, else the site's
    outputs/<site>/history.duckdb; `review`: 'YYYY-MM-DD HH:MM' (default: the latest stored review).
    A missing site file or history shows its message on the page instead of a traceback."""
    import ipywidgets as w

    try:
        return Board(resolve_source(site, history_db), review).widget
    except HandoffError as exc:
        box = w.VBox([w.HTML(STYLE), w.HTML(text("Handoff board", "h2")), w.HTML(text(str(exc), "p", "board-error"))])
        box.add_class("board-root")
        box.add_class("board-ready")
        return box
