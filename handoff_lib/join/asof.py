"""As of the review time: a review sees only what was known at `now`.

`apply_as_of(con, settings, now)` runs on the loaded entity tables (after `extracts.load_extracts`,
before `identifiers.build_crosswalk`; `pipeline.build_picture` calls it when it is given `now`), in
set-based SQL. The rules are stated once, in docs/extracts.md ("As of the review time"); in short:

* records created after `now` are **left out** (`left_out`): orders placed after it with their order
  lines, holds placed, cases opened and pack events stamped after it, shipments whose every milestone is
  after it; and records with no time of their own whose references name only records left out (read as
  the crosswalk reads references: that is why this module uses `identifiers`' normalisation);
* milestones stamped after `now` **have not happened yet** and become NULL (`not_yet`), and
  orders.release_status follows them (`status`, see STATUS_AS_OF);
* pick tasks updated after `now` are kept and **flagged** (`ahead`): their state may be ahead of the review.

A blank time is never judged. Nothing here is a reject: `load_report` and `rejects` are not touched. What
was done is kept in `asof_records(source, file, line, key, kind, field, stamped_at, what)`, one row per
record or milestone concerned, and `asof_report(source, file, kind, field, what, n, example)`, counted per
rule with the first record as an example ("SO-2 (orders.csv line 3)"). `summary_text` is the review's
data-banner line. The one knob is the site setting `data_quality.as_of_grace_minutes` (default 0).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from handoff_lib.load.contract import ENTITIES
from handoff_lib.load.settings import Settings, grace_minutes

from .identifiers import REFERENCE_FIELDS, STAGES, norm_expr, rule_for

KINDS = ("left_out", "not_yet", "status", "ahead")

# entity -> the field that stamps a record's creation: a record stamped after the review time is left out.
CREATED_BY: dict[str, str] = {"orders": "ordered_at", "holds": "placed_at", "cases": "opened_at", "pack_events": "event_at"}
SHIPMENT_MILESTONES = ("label_created_at", "manifested_at", "handed_off_at")
# entity -> milestones that count as not yet happened when stamped after the review time.
MILESTONES: dict[str, tuple[str, ...]] = {
    "orders": ("released_at", "cancelled_at"),
    "holds": ("released_at",),
    "cases": ("closed_at",),
    "shipments": SHIPMENT_MILESTONES,
}
# entity -> the field of records that are kept whatever their time, but flagged when it is later.
AHEAD_BY: dict[str, str] = {"pick_tasks": "updated_at"}

LEFT_OUT_WHAT = {
    "orders": "orders placed after the review time: left out",
    "order_lines": "lines of orders placed after the review time: left out",
    "holds": "holds placed after the review time: left out",
    "cases": "cases opened after the review time: left out",
    "pack_events": "pack events stamped after the review time: left out",
    "shipments": "shipments with every milestone after the review time: left out",
}
# Records with no time of their own are left out with the records they refer to (see _note_dependents).
NO_OWN_TIME: dict[str, str] = {
    "pick_tasks": "TRUE",  # updated_at is the last change, not the creation
    "pack_events": "event_at IS NULL",
    "shipments": f"coalesce({', '.join(SHIPMENT_MILESTONES)}) IS NULL",
    "holds": "placed_at IS NULL",
    "cases": "opened_at IS NULL",
}
# identifier kind -> (entity, column) that carries it: what a reference may name (identifiers.REFERENCE_FIELDS)
PARENT_KEYS: dict[str, tuple[str, str]] = {
    "order": ("orders", "order_id"),
    "customer_po": ("orders", "customer_po"),
    "pick_ticket": ("pick_tasks", "pick_ticket"),
    "carton": ("pack_events", "carton_id"),
    "shipment": ("shipments", "shipment_id"),
    "tracking_no": ("shipments", "tracking_no"),
}
DEPENDENT_WHAT = {
    e: f"{e.replace('_', ' ')} with no time of their own that refer only to records left out: left out" for e in NO_OWN_TIME
}
AHEAD_WHAT = {"pick_tasks": "pick tasks updated after the review time: kept, their state may be ahead of the review"}

# orders.release_status as of the review time, from the values as loaded ($cut = the review time + grace):
# released but released later -> cancelled when cancelled by then, else not_released;
# cancelled but cancelled later -> released when released by then, else not_released.
# A status without the time that would move it (NULL released_at / cancelled_at) is kept as the OMS says.
STATUS_AS_OF = """CASE
    WHEN release_status = 'released' AND released_at > $cut
        THEN CASE WHEN cancelled_at <= $cut THEN 'cancelled' ELSE 'not_released' END
    WHEN release_status = 'cancelled' AND cancelled_at > $cut
        THEN CASE WHEN released_at <= $cut THEN 'released' ELSE 'not_released' END
    ELSE release_status END"""

RECORDS_DDL = """CREATE OR REPLACE TABLE asof_records (
    source VARCHAR, file VARCHAR, line BIGINT, "key" VARCHAR, kind VARCHAR, field VARCHAR, stamped_at TIMESTAMPTZ, what VARCHAR)"""

REPORT = """CREATE OR REPLACE TABLE asof_report AS
SELECT source, file, kind, field, what, count(*) AS n,
       arg_min(coalesce("key", '(no key)') || ' (' || coalesce(file, '?') || ' line ' || line || ')', line) AS example
FROM asof_records
GROUP BY source, file, kind, field, what
ORDER BY list_position($kinds, kind), list_position($sources, source), field, what"""


def apply_as_of(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime) -> pd.DataFrame:
    """Leave out what was created after `now`, set to NULL the milestones stamped after it and flag pick tasks
    updated after it, in the loaded entity tables of `con`; writes `asof_records` and `asof_report` and returns
    the report (one row per rule that applied; empty when the extracts hold nothing later than `now`).
    A naive `now` is site local time."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=settings.tz)
    cut = now + dt.timedelta(minutes=grace_minutes(settings))
    p = {"cut": cut}
    con.execute(RECORDS_DDL)

    # 1. records created later: note them (order lines go with their order; records with no time of their
    #    own go with the records they refer to), then remove them.
    for entity, stamp in CREATED_BY.items():
        _note(con, entity, "left_out", stamp, stamp, f"{stamp} > $cut", LEFT_OUT_WHAT[entity], p)
    m = ", ".join(SHIPMENT_MILESTONES)
    _note(con, "shipments", "left_out", "every milestone", f"least({m})", f"least({m}) > $cut", LEFT_OUT_WHAT["shipments"], p)
    con.execute(
        f"""INSERT INTO asof_records
            SELECT 'order_lines', l._file, l._line, {_key('order_lines', 'l.')}, 'left_out', 'ordered_at', o.ordered_at, $what
            FROM order_lines l JOIN orders o ON l.order_id = o.order_id WHERE o.ordered_at > $cut""",
        {**p, "what": LEFT_OUT_WHAT["order_lines"]},
    )
    if con.execute("SELECT count(*) FROM asof_records").fetchone()[0]:
        _note_dependents(con, settings)
        for entity in ENTITIES:
            con.execute(
                f"DELETE FROM {entity} WHERE _line IN (SELECT line FROM asof_records WHERE source = $s AND kind = 'left_out')",
                {"s": entity},
            )

    # 2. milestones stamped later have not happened yet (the order's release status follows).
    for entity, fields in MILESTONES.items():
        for f in fields:
            _note(con, entity, "not_yet", f, f, f"{f} > $cut", f"{f} after the review time: not yet happened", p)
    con.execute(
        f"""INSERT INTO asof_records
            SELECT 'orders', _file, _line, {_key('orders')}, 'status', 'release_status', coalesce(released_at, cancelled_at),
                   'release_status ' || release_status || ' -> ' || ({STATUS_AS_OF}) || ' as of the review time'
            FROM orders WHERE ({STATUS_AS_OF}) IS DISTINCT FROM release_status""",
        p,
    )
    for entity, fields in MILESTONES.items():
        sets = [f"{f} = CASE WHEN {f} > $cut THEN NULL ELSE {f} END" for f in fields]
        if entity == "orders":
            sets.insert(0, f"release_status = {STATUS_AS_OF}")  # right-hand sides see the values before the update
        con.execute(f"UPDATE {entity} SET {', '.join(sets)} WHERE {' OR '.join(f'{f} > $cut' for f in fields)}", p)

    # 3. kept, but flagged: no creation time to judge by.
    for entity, stamp in AHEAD_BY.items():
        _note(con, entity, "ahead", stamp, stamp, f"{stamp} > $cut", AHEAD_WHAT[entity], p)

    con.execute(REPORT, {"kinds": list(KINDS), "sources": list(ENTITIES)})
    return con.execute("SELECT * FROM asof_report").df()


def summary_text(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime) -> str | None:
    """The data banner's line, e.g. "Stamped after Wed 14 Jun 2017 12:00, as of the review: 312 records
    created later left out (orders 173, ...); 40 milestones taken as not yet happened (...)."; None when nothing
    was (or the picture has no `asof_report`)."""
    has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'asof_report' AND NOT temporary").fetchone()[0]
    if not has:
        return None
    rows = con.execute(
        """SELECT kind, source, f, CAST(sum(n) AS BIGINT)
           FROM (SELECT kind, source, CASE WHEN kind = 'not_yet' THEN field END AS f, n FROM asof_report)
           GROUP BY kind, source, f ORDER BY list_position($kinds, kind), list_position($sources, source), f""",
        {"kinds": list(KINDS), "sources": list(ENTITIES)},
    ).fetchall()
    if not rows:
        return None
    if now.tzinfo is not None:
        now = now.astimezone(settings.tz)
    grace = grace_minutes(settings)
    at = f"{now:%a %d %b %Y %H:%M}" + (f" (+{grace} min grace)" if grace else "")

    def part(kind: str, label: str, name=None) -> str | None:
        items = [(s, f, n) for k, s, f, n in rows if k == kind]
        total = sum(n for _, _, n in items)
        each = f" ({', '.join(f'{name(s, f)} {n:,}' for s, f, n in items)})" if name else ""
        return f"{total:,} {label}{each}" if items else None

    parts = [
        part("left_out", "records created later left out", lambda s, f: s.replace("_", " ")),
        part("not_yet", "milestones taken as not yet happened", lambda s, f: f"{s}.{f}"),
        part("ahead", "pick tasks updated later kept (their state may be ahead of the review)"),
    ]
    parts = [x for x in parts if x]
    return f"Stamped after {at}, as of the review: " + "; ".join(parts) + "." if parts else None


def _note_dependents(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """Note as left out the records with no time of their own (NO_OWN_TIME) whose references name records left
    out and no record kept: a pick task of an order placed later, a shipment with no milestone of such an
    order, a carton's shipment when the carton is left out. References are read as the crosswalk reads them
    (the same fields, identifier kinds and normalisation: docs/crosswalk.md), in the crosswalk's order, so a
    left-out pick task takes its pick ticket's cartons along."""
    con.execute("CREATE OR REPLACE TEMP TABLE _asof_keys (kind VARCHAR, \"key\" VARCHAR, gone BOOLEAN)")
    gone = "_line IN (SELECT line FROM asof_records WHERE source = $src AND kind = 'left_out')"

    def add_keys(entity: str) -> None:
        for kind, (ent, col) in PARENT_KEYS.items():
            if ent == entity:
                e = norm_expr(col, rule_for(settings, kind), "k")
                con.execute(
                    f"""INSERT INTO _asof_keys SELECT DISTINCT $kind, {e.sql}, {gone}
                        FROM {ent} WHERE {col} IS NOT NULL AND trim({col}) <> ''""",
                    {**e.params, "kind": kind, "src": ent},
                )

    add_keys("orders")
    for entity in STAGES:
        # Each distinct reference value is read once (many records share one: every task of an order).
        params = {"src": entity, "what": DEPENDENT_WHAT[entity]}
        todo = f"{NO_OWN_TIME[entity]} AND NOT {gone}"
        joins, is_gone, is_kept = [], [], []
        for fi, (field, kinds) in enumerate(REFERENCE_FIELDS[entity]):
            refs = []
            for ki, kind in enumerate(kinds):
                e = norm_expr("v", rule_for(settings, kind), f"f{fi}k{ki}")
                params.update(e.params)
                refs.append(f"SELECT v, '{kind}' AS kind, {e.sql} AS \"key\" FROM _v")
            joins.append(
                f"""LEFT JOIN (
                    WITH _v AS (SELECT DISTINCT {field} AS v FROM {entity} WHERE {todo} AND {field} IS NOT NULL AND trim({field}) <> '')
                    SELECT r.v, bool_or(k.gone) AS gone, bool_or(NOT k.gone) AS kept
                    FROM ({" UNION ALL ".join(refs)}) r JOIN _asof_keys k ON k.kind = r.kind AND k."key" = r."key" AND r."key" <> ''
                    GROUP BY r.v
                ) h{fi} ON h{fi}.v = e.{field}"""
            )
            is_gone.append(f"coalesce(h{fi}.gone, false)")
            is_kept.append(f"coalesce(h{fi}.kept, false)")
        con.execute(
            f"""INSERT INTO asof_records
                SELECT $src, e._file, e._line, {_key(entity, 'e.')}, 'left_out', 'reference', NULL, $what
                FROM {entity} e {" ".join(joins)}
                WHERE ({" OR ".join(is_gone)}) AND NOT ({" OR ".join(is_kept)}) AND {todo.replace('_line', 'e._line')}""",
            params,
        )
        add_keys(entity)
    con.execute("DROP TABLE _asof_keys")


def _key(entity: str, alias: str = "") -> str:
    """SQL of a record's key as text ('SO-1', 'SO-1/2'); NULL when it has none (a hold without hold_id)."""
    parts = ", ".join(f"CAST({alias}{k} AS VARCHAR)" for k in ENTITIES[entity].key)
    return f"nullif(concat_ws('/', {parts}), '')"


def _note(con: duckdb.DuckDBPyConnection, entity: str, kind: str, field: str, stamp: str, where: str, what: str, p: dict) -> None:
    con.execute(
        f"""INSERT INTO asof_records
            SELECT $source, _file, _line, {_key(entity)}, $kind, $field, {stamp}, $what FROM {entity} WHERE {where}""",
        {**p, "source": entity, "kind": kind, "field": field, "what": what},
    )
