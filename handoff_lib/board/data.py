"""The board's data: the stored reviews of a site, and one review read for one role.

The board never recomputes a picture, and a viewer's kernel holds no copy of a review. Opening a review
creates, in an in-memory DuckDB, views over the review's own `picture.duckdb` that select only what the
viewer's role may see (`roles.py`); every query attaches that file read-only for its few milliseconds
(`Snapshot.reading`) and detaches again, so a kernel holds one page of rows (50) and DuckDB's buffers
are freed between queries. Nobody writes a finished picture file, so readers never hold a writer back.
The history database is attached read-only only to list the reviews (and, when a review's run folder is
gone, to copy that review's snapshot, in the role's columns only).

Notes stay out of the kernels of roles without `notes`: their views select the columns listed in
`STATUS_*_COLUMNS` (an allow-list: a column added to the picture later is not shown until listed), the
timeline leaves note and case texts out, draft notes are built from those columns, and the
acknowledgement log is read without comments. Fields the site marks internal (`board: internal_fields:`)
are dropped for roles without `internal_fields`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from handoff_lib.errors import HandoffError
from handoff_lib.history import acks
from handoff_lib.history.snapshots import ReviewKey, changes_since, stale_sources, while_locked
from handoff_lib.load.settings import Settings, load_settings
from handoff_lib.rules.promise import ANSWER_COLUMNS

from .roles import ROLES, Role

PROJECT = Path(__file__).resolve().parents[2]
ENV_SITE = "HANDOFF_BOARD_SITE"
ENV_HISTORY = "HANDOFF_BOARD_HISTORY"
DEFAULT_SITE = "parameters/demo.yaml"
PAGE_SIZE = 50
# A viewer's DuckDB: one thread (50 viewers share 2 cores; a page query takes milliseconds) and its
# allocator handing freed memory back after each query, so a kernel stays near its import size.
KERNEL_DUCKDB = {"threads": 1, "allocator_flush_threshold": "8MB", "memory_limit": "1GB"}

# What roles without `notes` may read (allow-lists; see the module docstring).
STATUS_ORDER_COLUMNS = [
    "order_id", "customer_id", "customer_name", "tier", "state", "promise_status", "promise_reason", "carrier", "service",
    "cutoff_at", "cutoff_label", "minutes_to_cutoff", "promised_delivery", "next_pickup_at", "n_lines", "inventory",
    "allocation", "pick_status", "pack_status", "shipment_status", "open_holds", "open_cases", "n_blockers", "blockers",
    "order_link", "priority", "ship_complete",
]
STATUS_BLOCKER_COLUMNS = [
    "blocker_id", "order_id", "order_state", "reason", "reason_label", "owner", "communicate", "priority", "cutoff_at",
    "cutoff_label", "minutes_to_cutoff", "event_at", "age_minutes", "source_system", "source_entity", "source_file",
    "source_line", "source_key", "source_link", "order_link",
]
STATUS_CHANGE_COLUMNS = ["kind", "order_id", "priority", "before", "after", "blocker_id", "owner", "reason", "age_minutes"]

BLOCKER_COLUMNS = ["priority", "order_id", "order_state", "reason_label", "owner", "carrier", "cutoff_label",
                   "minutes_to_cutoff", "age_minutes", "detail", "source_system", "source_key", "source_link"]
PROMISE_COLUMNS = [*ANSWER_COLUMNS, "order_link"]  # the promise answer (rules/promise.py), with the OMS link
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

    @property
    def ack_log(self) -> Path:
        return acks.log_path(self.history_db)

    @property
    def internal_fields(self) -> frozenset[str]:
        return internal_fields(self.settings)


def board_settings(settings: Settings) -> dict[str, Any]:
    """The site file's `board:` block ({} when there is none)."""
    block = settings.raw.get("board") or {}
    if not isinstance(block, dict):
        raise HandoffError(f"{settings.where('board')}: 'board' must be a mapping (users:, internal_fields:)")
    return block


def internal_fields(settings: Settings) -> frozenset[str]:
    """Fields the site marks internal (e.g. cost fields): only roles with `internal_fields` see them."""
    fields = board_settings(settings).get("internal_fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise HandoffError(f"{settings.where('board', 'internal_fields')}: board.internal_fields must be a list of field names")
    return frozenset(fields)


def project_path(path: str | Path) -> Path:
    """A relative path is taken from the working directory when it exists there, else from the
    project folder (Voila's kernels run in notebooks/)."""
    p = Path(path).expanduser()
    return p.resolve() if p.is_absolute() or p.exists() else PROJECT / p


def resolve_source(site: str = "", history_db: str = "") -> BoardSource:
    """The site file (argument, else $HANDOFF_BOARD_SITE, else parameters/demo.yaml) and the history
    database (argument, else $HANDOFF_BOARD_HISTORY, else the site's outputs/<site>/history.duckdb)."""
    from handoff_lib.publish.runs import default_history

    settings = load_settings(project_path(site or os.environ.get(ENV_SITE) or DEFAULT_SITE))
    internal_fields(settings)  # a malformed board: block fails here, not on the first page
    hist = history_db or os.environ.get(ENV_HISTORY) or ""
    return BoardSource(settings, project_path(hist) if hist else default_history(settings))


def _attach_read_only(con: duckdb.DuckDBPyConnection, path: Path, alias: str, wait_s: float) -> None:
    """ATTACH a DuckDB file read-only, waiting (like history.open_history) while a writer holds it."""
    while_locked(lambda: con.execute(f"ATTACH ? AS {alias} (READ_ONLY)", [str(path)]), path, wait_s, interval=0.1)


def _has_table(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND table_name = ?", [catalog, table]
    ).fetchone()[0])


def _table_columns(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? AND table_name = ? ORDER BY ordinal_position",
        [catalog, table]).fetchall()]


REVIEWS = """
SELECT review_date, review_time, review_at, run_id, outputs, {stale} AS stale FROM hist.runs WHERE site = ?
ORDER BY review_date DESC, review_time DESC
"""


def list_reviews(source: BoardSource, wait_s: float = 30.0) -> pd.DataFrame:
    """Every stored review of the site, newest first (empty when there is none yet), with `stale` (built on
    a source past its freshness limit; false in a history that predates freshness)."""
    empty = pd.DataFrame(columns=["review_date", "review_time", "review_at", "run_id", "outputs", "stale"])
    if not source.history_db.exists():
        return empty
    con = duckdb.connect()
    try:
        _attach_read_only(con, source.history_db, "hist", wait_s)
        if not _has_table(con, "hist", "runs"):
            return empty
        stale = "coalesce(stale, false)" if "stale" in _table_columns(con, "hist", "runs") else "false"
        return con.execute(REVIEWS.format(stale=stale), [source.site]).df()
    finally:
        con.close()


def review_label(review_date: object, review_time: str) -> str:
    return f"{pd.Timestamp(review_date):%Y-%m-%d} {review_time[:2]}:{review_time[2:]}"


def run_folder(source: BoardSource, review_date: dt.date, review_time: str, wait_s: float = 30.0) -> Path | None:
    """The output folder of a stored review (None when history does not name one)."""
    con = duckdb.connect()
    try:
        _attach_read_only(con, source.history_db, "hist", wait_s)
        row = con.execute(RUN, [source.site, review_date, review_time]).fetchone()
    finally:
        con.close()
    return Path(row[1]) if row and row[1] else None


# ------------------------------------------------------------------------------------------- snapshot


def allowed_columns(role: Role, table: str, have: Iterable[str], internal: frozenset[str]) -> list[str]:
    """The columns of a picture table (`order_board`, `blockers`, `changes`) a role may read, in table order."""
    have = list(have)
    if not role.notes:
        allow = {"order_board": STATUS_ORDER_COLUMNS, "blockers": STATUS_BLOCKER_COLUMNS, "changes": STATUS_CHANGE_COLUMNS}[table]
        have = [c for c in have if c in allow]
    if not role.internal_fields:
        have = [c for c in have if c not in internal]
    return have


@dataclass
class Snapshot:
    """One review as one role may read it: views order_board, blockers, promise, changes (and, for a role
    with the blocker queue, blocker_queue) in `con`, over the run's picture.duckdb (attached while
    `reading()`), or over tables copied from history when the run folder is gone (`picture` None)."""

    key: ReviewKey
    con: duckdb.DuckDBPyConnection
    review_at: dt.datetime | None
    outputs: Path | None
    picture: Path | None
    previous: ReviewKey | None
    role: Role
    settings: Settings
    ack_log: Path | None = None
    meeting: bool = False  # the picture holds the meeting view (meeting_pickups, meeting_orders; act_now for the queue)
    stale: list[str] = field(default_factory=list)  # one sentence per source past its freshness limit (freshness.stale_lines)
    stale_headline: str | None = None  # 'STALE: WMS pick tasks as of ...' (freshness.headline), None when fresh
    on_stale: str = "hold"  # freshness.on_stale: drafts of a stale review held back, or marked
    timings: dict[str, float] = field(default_factory=dict)
    _depth: int = 0

    @property
    def label(self) -> str:
        return review_label(self.key.review_date, self.key.review_time)

    @property
    def has_drafts(self) -> bool:
        """Draft notes are built on the board for the promise view (from the order and blocker rows)."""
        return self.role.promise

    @contextlib.contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """`con` with the review's picture attached read-only (nested uses attach once)."""
        if self.picture is None or self._depth:
            self._depth += 1
            try:
                yield self.con
            finally:
                self._depth -= 1
            return
        try:
            self.con.execute("ATTACH ? AS pic (READ_ONLY)", [str(self.picture)])
        except duckdb.Error as exc:
            raise HandoffError(f"{self.picture}: cannot read this review's picture ({exc}); it may be being replaced by a "
                               "re-run: pick the review again in a moment") from None
        self._depth = 1
        try:
            yield self.con
        finally:
            self._depth = 0
            self.con.execute("DETACH pic")

    def query(self, sql: str, params: Any = None) -> pd.DataFrame:
        with self.reading() as con:
            return con.execute(sql, params).df()

    def rows(self, sql: str, params: Any = None) -> list[tuple]:
        with self.reading() as con:
            return con.execute(sql, params).fetchall()

    def close(self) -> None:
        self.con.close()


RUN = "SELECT review_at, outputs FROM hist.runs WHERE site = ? AND review_date = ? AND review_time = ?"
PREVIOUS = """
SELECT review_date, review_time FROM hist.runs
WHERE site = ? AND (review_date < ? OR (review_date = ? AND review_time < ?))
ORDER BY review_date DESC, review_time DESC LIMIT 1
"""
BLOCKER_QUEUE = """
CREATE VIEW blocker_queue AS
SELECT row_number() OVER (ORDER BY b.priority DESC NULLS LAST, b.minutes_to_cutoff NULLS LAST,
                                   b.age_minutes DESC NULLS LAST, b.blocker_id) AS rank,
       b.blocker_id, b.priority, b.order_id, b.order_state, b.reason, b.reason_label, b.owner, o.carrier, o.service,
       b.cutoff_label, b.minutes_to_cutoff, b.age_minutes, b.detail, b.source_system, b.source_key, b.source_link,
       b.cutoff_at, p.cutoff_source
FROM blockers b LEFT JOIN order_board o USING (order_id) LEFT JOIN promise p USING (order_id)
"""
PROMISE_FROM_BOARD = """
SELECT order_id, state, cutoff_at,
       -- the snapshot keeps the label, not its source: promise.CUTOFFS writes an OMS ship-by as 'ship-by ...'
       CASE WHEN starts_with(cutoff_label, 'ship-by ') THEN 'ship_by' WHEN cutoff_at IS NOT NULL THEN 'pickup' END AS cutoff_source,
       cutoff_label, minutes_to_cutoff, CAST(NULL AS BIGINT) AS work_minutes,
       next_pickup_at, promised_delivery, n_blockers, promise_status, promise_reason
FROM order_board
"""


def load_snapshot(source: BoardSource, review_date: dt.date, review_time: str, role: Role | None = None,
                  wait_s: float = 30.0) -> Snapshot:
    """One review of the site for `role` (default ops). Reads only the run entry from history; the rows
    stay in the review's picture.duckdb (see the module docstring)."""
    role = role or ROLES["ops"]
    t0 = time.perf_counter()
    key = ReviewKey(source.site, pd.Timestamp(review_date).date(), review_time)
    con = duckdb.connect(config=KERNEL_DUCKDB)
    con.execute("SET TimeZone = ?", [source.settings.timezone])
    try:
        _attach_read_only(con, source.history_db, "hist", wait_s)
        try:
            run = con.execute(RUN, key.params()).fetchone()
            if run is None:
                raise HandoffError(f"{source.history_db}: no review {key.site} {review_label(key.review_date, review_time)}")
            prev = con.execute(PREVIOUS, [key.site, key.review_date, key.review_date, key.review_time]).fetchone()
            stale = _stale_sources(con, key)
        finally:
            con.execute("USE memory")
            con.execute("DETACH hist")
        previous = ReviewKey(key.site, prev[0], prev[1]) if prev else None
        outputs = Path(run[1]) if run[1] else None
        picture = outputs / "picture.duckdb" if outputs else None
        internal = source.internal_fields
        if not (picture and picture.exists() and _views_over_picture(con, picture, role, internal)):
            picture = None
            _copy_from_history(con, source, key, role, internal, wait_s)
            if role.blocker_queue:
                con.execute(BLOCKER_QUEUE)
        snap = Snapshot(key, con, run[0], outputs, picture, previous, role, source.settings, source.ack_log,
                        meeting=_has_table(con, "memory", "meeting_pickups"))
        _judge_freshness(snap, stale)
        snap.timings["open"] = time.perf_counter() - t0
        return snap
    except BaseException:
        con.close()
        raise


def _select(cols: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in cols)


def _views_over_picture(con: duckdb.DuckDBPyConnection, picture: Path, role: Role, internal: frozenset[str]) -> bool:
    """Create the role's views over the picture (attached while they are created); False when the file
    cannot be read or lacks a table (e.g. a re-run is replacing the folder right now)."""
    try:
        _attach_read_only(con, picture, "pic", 5.0)
    except HandoffError:
        return False
    try:
        for table in ("order_board", "blockers", "changes", "promise"):
            if not _has_table(con, "pic", table):
                return False
        for table in ("order_board", "blockers", "changes"):
            cols = allowed_columns(role, table, _table_columns(con, "pic", table), internal)
            con.execute(f"CREATE VIEW {table} AS SELECT {_select(cols)} FROM pic.{table}")
        con.execute("CREATE VIEW promise AS SELECT * FROM pic.promise")
        if role.blocker_queue:
            con.execute(BLOCKER_QUEUE)  # a view binds when it is created: while the picture is attached
        _meeting_views(con, role, internal)
        return True
    finally:
        con.execute("DETACH pic")


# The meeting view a review run keeps in its picture (meeting.py): the columns the board reads of each. Pickups for
# every role; meeting_orders for roles with the promise view; act_now (its `example` quotes a blocker's detail)
# only for roles with the blocker queue, the example only with notes.
MEETING_PICKUP_COLUMNS = ["pickup_at", "carrier", "service", "pickup", "orders_due", "ready", "to_do", "blocked", "too_late",
                          "at_risk", "carried_over", "short_of_labour", "will_not_make", "verdict", "verdict_text",
                          "binding_area", "work_min", "available_min", "usage_pct"]
MEETING_ORDER_COLUMNS = ["order_id", "customer_name", "priority", "promise_status", "promise_reason", "pickup", "pickup_at",
                         "makes_it", "carried_over", "order_value"]
ACT_NOW_COLUMNS = ["rank", "action", "owner", "orders_saved", "value_saved", "orders_held", "top_priority", "minutes_left",
                   "first_pickup", "example", "source_link"]


def _meeting_views(con: duckdb.DuckDBPyConnection, role: Role, internal: frozenset[str]) -> None:
    """Views over the picture's meeting tables (when the review run made them), in the role's columns."""
    if not _has_table(con, "pic", "meeting_pickups"):
        return
    value = role.internal_fields or "order_value" not in internal  # an order's value, where the site marks it internal
    wanted = {"meeting_pickups": MEETING_PICKUP_COLUMNS}
    if role.promise:  # who calls the customer: orders, customers and their promise
        wanted["meeting_orders"] = [c for c in MEETING_ORDER_COLUMNS if value or c != "order_value"]
    if role.blocker_queue and _has_table(con, "pic", "act_now"):
        wanted["act_now"] = [c for c in ACT_NOW_COLUMNS if (role.notes or c != "example") and (value or c != "value_saved")]
    for table, cols in wanted.items():
        have = set(_table_columns(con, "pic", table))
        con.execute(f"CREATE VIEW {table} AS SELECT {_select([c for c in cols if c in have and c not in internal])} FROM pic.{table}")


def _stale_sources(con: duckdb.DuckDBPyConnection, key: ReviewKey) -> pd.DataFrame:
    """The review's stale sources from history (`hist` attached); empty when none was stale."""
    con.execute("USE hist")
    return stale_sources(con, key.site, key.review_date, key.review_time)


def _judge_freshness(snap: Snapshot, stale: pd.DataFrame | None) -> None:
    """snap.stale, stale_headline and on_stale from the stale sources and the site's freshness settings."""
    if stale is None or not len(stale) or snap.review_at is None:
        return
    from handoff_lib.load import freshness

    at = pd.Timestamp(snap.review_at).to_pydatetime()
    snap.stale = freshness.stale_lines(stale, snap.settings, at)
    snap.stale_headline = freshness.headline(stale, snap.settings, at)
    snap.on_stale = freshness.freshness_settings(snap.settings).on_stale


def _copy_from_history(con: duckdb.DuckDBPyConnection, source: BoardSource, key: ReviewKey, role: Role,
                       internal: frozenset[str], wait_s: float) -> None:
    """The run folder is gone: copy the review's snapshot from history (the role's columns only),
    recompute the changes against the previous snapshot, and the promise view from the board (no work
    estimates)."""
    scratch = duckdb.connect()
    try:
        scratch.execute("SET TimeZone = ?", [source.settings.timezone])
        _attach_read_only(scratch, source.history_db, "hist", wait_s)
        try:
            for src, dst in (("snap_orders", "order_board"), ("snap_blockers", "blockers")):
                scratch.execute(f"""CREATE TABLE {dst} AS SELECT * EXCLUDE (site, review_date, review_time) FROM hist.{src}
                                    WHERE site = ? AND review_date = ? AND review_time = ?""", key.params())
        finally:
            scratch.execute("DETACH hist")
        changes_since(scratch, source.history_db, key)
        for table in ("order_board", "blockers", "changes"):
            cols = allowed_columns(role, table, _table_columns(scratch, "memory", table), internal)
            con.register("_part", scratch.sql(f"SELECT {_select(cols)} FROM {table}").to_arrow_table())
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM _part")
            con.unregister("_part")
        con.register("_part", scratch.sql(PROMISE_FROM_BOARD).to_arrow_table())
        con.execute("CREATE TABLE promise AS SELECT * FROM _part")
        con.unregister("_part")
    finally:
        scratch.close()


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


def _page(snap: Snapshot, sql_from: str, params: dict, columns: list[str], order: str, page: int, size: int) -> Page:
    """One page of `SELECT columns {sql_from} ORDER BY order`, and the total row count.
    A page past the end is clamped to the last one."""
    with snap.reading() as con:
        total = int(con.execute(f"SELECT count(*) {sql_from}", params).fetchone()[0])
        pages = max(1, math.ceil(total / size))
        page = min(max(page, 0), pages - 1)
        rows = con.execute(f"SELECT {', '.join(columns)} {sql_from} ORDER BY {order} LIMIT {int(size)} OFFSET {int(page * size)}",
                           params).df()
    return Page(rows, total, page, size)


def _columns(snap: Snapshot, table: str, wanted: Iterable[str]) -> list[str]:
    with snap.reading() as con:
        have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    return [c for c in wanted if c in have]


HANDLING = (("any handling", ""), ("not acknowledged", "open"), ("acknowledged", "acknowledged"))


@dataclass(frozen=True)
class BlockerFilter:
    """The blocker queue's filters; None = no filter on that field."""

    owner: str | None = None
    reason: str | None = None  # reason label as shown
    min_priority: int | None = None
    carrier: str | None = None
    cutoff: str | None = None  # label of a carrier pickup (orders whose deadline is that pickup)
    ship_by: str | None = None  # label of an OMS ship-by deadline (orders whose deadline it is)
    min_age: int | None = None  # minutes
    handling: str | None = None  # "open" (not acknowledged) or "acknowledged"

    def where(self, acknowledged: list[str] | None = None) -> tuple[str, dict]:
        parts, params = [], {}
        for name, sql in (("owner", "owner = $owner"), ("reason", "reason_label = $reason"),
                          ("min_priority", "priority >= $min_priority"), ("carrier", "carrier = $carrier"),
                          ("cutoff", "cutoff_label = $cutoff AND cutoff_source = 'pickup'"),
                          ("ship_by", "cutoff_label = $ship_by AND cutoff_source = 'ship_by'"), ("min_age", "age_minutes >= $min_age")):
            value = getattr(self, name)
            if value is not None:
                parts.append(sql)
                params[name] = value
        if self.handling:
            params["acked"] = acknowledged or []
            parts.append(("" if self.handling == "acknowledged" else "NOT ") + "list_contains($acked, blocker_id)")
        return ("WHERE " + " AND ".join(parts)) if parts else "", params


def acknowledged_ids(snap: Snapshot) -> list[str]:
    """Blocker ids of the site with an acknowledgement in the log."""
    if snap.ack_log is None:
        return []
    return [b for b, s in acks.states(snap.ack_log, snap.key.site).items() if s.acknowledged_by]


def blocker_page(snap: Snapshot, flt: BlockerFilter = BlockerFilter(), page: int = 0, size: int = PAGE_SIZE) -> Page:
    """One page of the blocker queue (highest priority, nearest cutoff, oldest first) under the filters,
    with `blocker_id` and (when the log has entries) `handling` per row."""
    if not snap.role.blocker_queue:
        raise HandoffError(f"the blocker queue is not part of the {snap.role.name} view")
    where, params = flt.where(acknowledged_ids(snap) if flt.handling else None)
    p = _page(snap, f"FROM blocker_queue {where}", params, ["blocker_id", *BLOCKER_COLUMNS], "rank", page, size)
    p.rows = with_handling(snap, p.rows)
    return p


def with_handling(snap: Snapshot, rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` (with a blocker_id column) with a `handling` column: the acknowledgement summary (with the
    latest comment for roles that see notes)."""
    states = acks.states(snap.ack_log, snap.key.site, rows["blocker_id"].tolist()) if snap.ack_log is not None else {}
    out = rows.copy()
    out["handling"] = [states[b].summary(snap.settings.tz, comment=snap.role.notes) if b in states else ""
                       for b in rows["blocker_id"]]
    return out


def blocker_options(snap: Snapshot) -> dict[str, list]:
    """The values each blocker filter offers: owners, reasons, carriers, carrier pickups and OMS ship-by
    deadlines (each its own filter, in time order), priority thresholds."""
    with snap.reading() as con:
        def distinct(col: str) -> list:
            return [r[0] for r in con.execute(f"SELECT DISTINCT {col} FROM blocker_queue WHERE {col} IS NOT NULL ORDER BY 1").fetchall()]

        def deadlines(source: str) -> list:  # in time order
            return [r[0] for r in con.execute(
                "SELECT cutoff_label FROM blocker_queue WHERE cutoff_source = ? AND cutoff_label IS NOT NULL "
                "GROUP BY cutoff_label ORDER BY min(cutoff_at), cutoff_label", [source]).fetchall()]

        prios = [r[0] for r in con.execute(
            "SELECT DISTINCT CAST(floor(priority / 10) * 10 AS INTEGER) FROM blocker_queue WHERE priority IS NOT NULL ORDER BY 1 DESC"
        ).fetchall()]
        return {"owner": distinct("owner"), "reason": distinct("reason_label"), "carrier": distinct("carrier"),
                "cutoff": deadlines("pickup"), "ship_by": deadlines("ship_by"), "min_priority": prios}


def blocker_choices(snap: Snapshot, rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, blocker_id) for the blockers on a page of the queue, for the act-on-a-blocker picker."""
    return [(f"{r.order_id} · {r.reason_label} · {r.source_key or r.owner}", r.blocker_id)
            for r in rows.itertuples(index=False) if isinstance(r.blocker_id, str)]


def blocker_row(snap: Snapshot, blocker_id: str) -> dict | None:
    """The blocker of this review with that id (None when it is not one of them)."""
    rows = snap.query("SELECT blocker_id, order_id, reason_label, owner FROM blockers WHERE blocker_id = ?", [blocker_id])
    return rows.iloc[0].to_dict() if len(rows) else None


def next_check(settings: Settings, review_at: dt.datetime | None) -> str:
    """When an order is looked at again: the site's next review time that day, if any."""
    if review_at is not None:
        later = [t for t in settings.review_times if t > review_at.astimezone(settings.tz).time().replace(tzinfo=None)]
        if later:
            return f"the {later[0]:%H:%M} cutoff review"
    return "the next cutoff review"


DRAFT_ORDERS = """
SELECT {cols}, strftime(p.next_pickup_at, '%Y-%m-%d %H:%M') AS next_pickup_at
FROM order_board b LEFT JOIN promise p USING (order_id) WHERE list_contains($ids, b.order_id)
"""
DRAFT_BLOCKERS = "SELECT * FROM blockers WHERE list_contains($ids, order_id) ORDER BY order_id, priority DESC, reason, source_key"


def drafts_for(snap: Snapshot, order_ids: list[str]) -> dict[str, str]:
    """The draft note for sales and support of each order (drafts.draft_note), built now from the role's
    columns and the acknowledgement log: a role without notes gets drafts without note text or comments."""
    from handoff_lib.learn.drafts import draft_note

    if not order_ids:
        return {}
    with snap.reading() as con:
        have = [c for c in _table_columns(con, "memory", "order_board") if c != "next_pickup_at"]
        orders = con.execute(DRAFT_ORDERS.format(cols=", ".join(f'b."{c}"' for c in have)), {"ids": order_ids}).df()
        blockers = con.execute(DRAFT_BLOCKERS, {"ids": order_ids}).df()
    orders = orders.astype(object).where(orders.notna(), None)
    blockers = blockers.astype(object).where(blockers.notna(), None)
    states = acks.states(snap.ack_log, snap.key.site, blockers["blocker_id"].tolist()) if snap.ack_log else {}
    by_order: dict[str, list[dict]] = {}
    for b in blockers.to_dict("records"):
        b.setdefault("detail", None)
        by_order.setdefault(b["order_id"], []).append(b)
    check = next_check(snap.settings, snap.review_at)
    notes = {o["order_id"]: draft_note(o, by_order.get(o["order_id"], []), snap.review_at, check, acks=states,
                                       tz=snap.settings.tz)[0]
             for o in orders.to_dict("records")}
    return stale_drafts(snap, notes)


def stale_drafts(snap: Snapshot, notes: dict[str, str]) -> dict[str, str]:
    """The drafts of a review built on stale extracts as the site's `freshness.on_stale` says: `hold` replaces
    each with a line saying it is held back and why; `mark` keeps it, marked on its second line
    (freshness.apply_to_drafts, as the review's drafts.csv)."""
    if not snap.stale or not notes:
        return notes
    from handoff_lib.load.freshness import apply_to_drafts

    df = apply_to_drafts(pd.DataFrame({"order_id": list(notes), "draft": list(notes.values())}), snap.stale, snap.on_stale)
    held = "HELD BACK, not to be sent: this review was built on stale extracts (" + "; ".join(snap.stale) + ")."
    return {o: (held if h else d) for o, d, h in zip(df["order_id"], df["draft"], df["held_back"])}


def promise_page(snap: Snapshot, status: str | None = None, page: int = 0, size: int = PAGE_SIZE) -> Page:
    """Orders whose promise is at risk or needs communication (or one of them), needs communication
    first, then by priority; with the draft note for each (built on the board, see drafts_for)."""
    statuses = [status] if status else ["needs_communication", "at_risk"]
    cols = [f"o.{c}" for c in _columns(snap, "order_board", PROMISE_COLUMNS)]
    p = _page(snap, "FROM order_board o WHERE list_contains($statuses, o.promise_status)", {"statuses": statuses}, cols,
              "CASE o.promise_status WHEN 'needs_communication' THEN 0 ELSE 1 END, o.priority DESC NULLS LAST, o.order_id",
              page, size)
    drafts = drafts_for(snap, p.rows["order_id"].tolist())
    p.rows = p.rows.assign(draft_note=[drafts.get(o) for o in p.rows["order_id"]])
    return p


def meeting_pickups(snap: Snapshot) -> pd.DataFrame:
    """The carrier pickups of the coming hours with their verdicts (meeting.build_meeting), in time order;
    empty when the review run made no meeting view."""
    if not snap.meeting:
        return pd.DataFrame(columns=MEETING_PICKUP_COLUMNS)
    return snap.query("SELECT * FROM meeting_pickups ORDER BY pickup_at, carrier, service")


def act_now_page(snap: Snapshot, page: int = 0, size: int = 10) -> Page:
    """The act-now list (meeting.act_now): blockers grouped where one action clears many, ranked by what
    clearing them saves before the coming pickups."""
    if not snap.role.blocker_queue:
        raise HandoffError(f"the act-now list is not part of the {snap.role.name} view")
    if not snap.meeting:
        return Page(pd.DataFrame(columns=ACT_NOW_COLUMNS), 0, 0, size)
    return _page(snap, "FROM act_now", {}, _columns(snap, "act_now", ACT_NOW_COLUMNS), "rank", page, size)


CALL_OWNERS = """
SELECT order_id, string_agg(DISTINCT owner, ', ' ORDER BY owner) AS owners FROM blockers
WHERE list_contains($ids, order_id) AND owner IS NOT NULL GROUP BY order_id
"""


def calls_page(snap: Snapshot, status: str = "needs_communication", page: int = 0, size: int = 10) -> Page:
    """Who calls the customer (meeting.calls): orders of one promise status, highest priority first, then
    by truck, with the owners of their blockers and their draft note (built for the role, held back or
    marked when the review is stale)."""
    if not snap.role.promise:
        raise HandoffError(f"the promise view is not part of the {snap.role.name} view")
    if not snap.meeting:
        return Page(pd.DataFrame(columns=["order_id"]), 0, 0, size)
    cols = [c for c in _columns(snap, "meeting_orders", ["order_id", "customer_name", "priority", "pickup", "makes_it",
                                                         "promise_reason"])]
    p = _page(snap, "FROM meeting_orders WHERE promise_status = $status", {"status": status}, cols,
              "priority DESC NULLS LAST, pickup_at NULLS LAST, order_id", page, size)
    ids = p.rows["order_id"].tolist()
    owners = dict(snap.rows(CALL_OWNERS, {"ids": ids})) if ids else {}
    p.rows.insert(p.rows.columns.get_loc("pickup"), "owners", [owners.get(o, "") for o in ids])
    if status == "needs_communication":
        drafts = drafts_for(snap, ids)
        p.rows = p.rows.assign(draft_note=[drafts.get(o) for o in ids])
    return p


def order_page(snap: Snapshot, state: str | None = None, promise_status: str | None = None, page: int = 0,
               size: int = PAGE_SIZE) -> Page:
    """Orders of the review, highest priority first, optionally of one state / promise status."""
    if not snap.role.orders:
        raise HandoffError(f"the list of all orders is not part of the {snap.role.name} view")
    parts, params = [], {}
    if state:
        parts.append("state = $state")
        params["state"] = state
    if promise_status:
        parts.append("promise_status = $promise_status")
        params["promise_status"] = promise_status
    where = ("WHERE " + " AND ".join(parts)) if parts else ""
    return _page(snap, f"FROM order_board {where}", params, _columns(snap, "order_board", ORDER_COLUMNS),
                 "priority DESC NULLS LAST, order_id", page, size)


def change_counts(snap: Snapshot) -> pd.DataFrame:
    """Changes since the previous review per kind (every kind listed, zero included)."""
    from handoff_lib.history.snapshots import change_summary

    with snap.reading() as con:
        return change_summary(con)


def change_page(snap: Snapshot, kind: str | None = None, page: int = 0, size: int = PAGE_SIZE) -> Page:
    """Changes since the previous review, highest priority first, optionally of one kind."""
    where, params = ("WHERE kind = $kind", {"kind": kind}) if kind else ("", {})
    return _page(snap, f"FROM changes {where}", params, _columns(snap, "changes", CHANGE_COLUMNS),
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
    block), and orders at risk or needing communication on the next carrier pickup still ahead (the
    meeting view's first truck when the review has one, else the nearest cutoff not yet passed)."""
    with snap.reading() as con:
        orders, blockers, blocked, next_pickup = con.execute(HEADLINE).fetchone()
        label, at_risk_next = (None, 0)
        if next_pickup is not None:
            label, at_risk_next = con.execute(AT_RISK_NEXT, {"next": next_pickup}).fetchone()
        if snap.meeting:  # the meeting's trucks (pickups strictly after the review), so the tile and the cards agree
            first = con.execute("SELECT pickup, at_risk FROM meeting_pickups ORDER BY pickup_at, carrier, service LIMIT 1").fetchone()
            label, at_risk_next = first if first else (None, 0)
        by_state = dict(con.execute("SELECT state, count(*) FROM order_board GROUP BY 1 ORDER BY 2 DESC, 1").fetchall())
        by_promise = dict(con.execute("SELECT promise_status, count(*) FROM order_board GROUP BY 1 ORDER BY 2 DESC, 1").fetchall())
    return {"orders": int(orders), "by_state": by_state, "by_promise": by_promise, "open_blockers": int(blockers),
            "blocked_orders": int(blocked), "next_pickup": label, "at_risk_next_pickup": int(at_risk_next or 0)}


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
        from handoff_lib.join.lookup import find_orders

        pic = duckdb.connect(str(snap.picture), read_only=True)
        try:
            return [Found(m.order_id, m.kind, m.matched) for m in find_orders(pic, settings, text)]
        finally:
            pic.close()
    rows = snap.rows("SELECT order_id FROM order_board WHERE upper(order_id) = upper($q) ORDER BY order_id", {"q": text})
    return [Found(r[0], "order", r[0]) for r in rows]


def order_summaries(snap: Snapshot, order_ids: list[str]) -> pd.DataFrame:
    """order_id, customer_name, state, promise_status, cutoff_label of the orders (those on this review's board)."""
    cols = _columns(snap, "order_board", ["order_id", "customer_name", "state", "promise_status", "cutoff_label"])
    return snap.query(f"SELECT {', '.join(cols)} FROM order_board WHERE list_contains($ids, order_id) ORDER BY order_id",
                      {"ids": order_ids})


# Each system's events of one order; {note}/{text} are the note columns, or NULL for roles without notes.
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
                         CASE WHEN substituted_sku IS NOT NULL THEN 'substituted ' || substituted_sku END, {note}),
               _file || ' line ' || _line FROM linked_pick_tasks WHERE order_id = $oid""",
    "linked_pack_events": """
        SELECT event_at, 'WMS', 'carton ' || coalesce(status, '?'),
               concat_ws(' ', carton_id, exception_code, {note}), _file || ' line ' || _line
        FROM linked_pack_events WHERE order_id = $oid""",
    "linked_holds": """
        SELECT placed_at, 'WMS', 'hold placed', concat_ws(' ', hold_id, code, {note}, 'by ' || placed_by), _file || ' line ' || _line
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
        SELECT opened_at, 'CRM', 'case opened', concat_ws(' ', case_id, case_type, {text}), _file || ' line ' || _line
        FROM linked_cases WHERE order_id = $oid
        UNION ALL SELECT closed_at, 'CRM', 'case closed', case_id, _file || ' line ' || _line
        FROM linked_cases WHERE order_id = $oid AND closed_at IS NOT NULL""",
}
TIMELINE_COLUMNS = ["time", "system", "event", "detail", "source"]
ORDER_BLOCKER_COLUMNS = ["priority", "reason_label", "owner", "cutoff_label", "minutes_to_cutoff", "age_minutes", "detail",
                         "source_system", "source_key", "source_link"]


def order_detail(snap: Snapshot, order_id: str) -> OrderDetail:
    """The order's board row (state and promise with their reasons), its open blockers with source
    links and who is handling them, and its timeline across OMS, WMS, carrier and CRM from the review's
    picture (without note texts for roles without notes)."""
    with snap.reading() as con:
        row = con.execute("SELECT * FROM order_board WHERE order_id = ?", [order_id]).df()
        bcols = ["blocker_id", *_columns(snap, "blockers", ORDER_BLOCKER_COLUMNS)]
        blockers = con.execute(f"SELECT {', '.join(bcols)} FROM blockers WHERE order_id = ? ORDER BY priority DESC, blocker_id",
                               [order_id]).df()
    blockers = with_handling(snap, blockers).drop(columns=["blocker_id"])
    detail = OrderDetail(order_id, row.iloc[0].to_dict() if len(row) else {}, blockers, pd.DataFrame(columns=TIMELINE_COLUMNS))
    if snap.picture is None or not snap.picture.exists():
        detail.timeline_note = "No timeline: this review's run folder (picture.duckdb) is no longer there."
        return detail
    notes = {"note": "note", "text": "text"} if snap.role.notes else {"note": "NULL", "text": "NULL"}
    pic = duckdb.connect(str(snap.picture), read_only=True)
    try:
        pic.execute("SET TimeZone = ?", [snap.settings.timezone])
        have = {r[0] for r in pic.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        parts = [f'SELECT CAST(ts AS TIMESTAMPTZ) AS "time", system, event, detail, source FROM ({sql.format(**notes).strip()}) '
                 "t(ts, system, event, detail, source)" for table, sql in TIMELINE.items() if table in have]
        if parts:
            detail.timeline = pic.execute(
                " UNION ALL ".join(parts) + ' ORDER BY "time" NULLS LAST, system, event', {"oid": order_id}
            ).df()
    finally:
        pic.close()
    return detail
