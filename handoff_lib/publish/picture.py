"""The joined order picture: one `analyse(con, settings, now)` runs cutoffs, states, blockers and the
promise in order, builds the order board, and returns summary counts.

Every summary count is the length of a named drill-down list (`drill_down`), computed from the same
query, so a number on a report always matches the list behind it.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from handoff_lib.errors import HandoffError
from handoff_lib.join.links import link_sql
from handoff_lib.learn.risk import apply_to_promise
from handoff_lib.load.contract import ENTITIES
from handoff_lib.load.settings import Settings
from handoff_lib.rules.blockers import build_blockers
from handoff_lib.rules.policy import Policy, load_policy, prepare
from handoff_lib.rules.promise import assign_cutoffs, build_promise
from handoff_lib.rules.states import STATE_NAMES, build_states

PROMISE_STATUSES = ("safe", "at_risk", "needs_communication", "handed_off", "cancelled")

ORDER_BOARD = """
CREATE OR REPLACE TABLE order_board AS
WITH blk AS (
    SELECT order_id, count(*) AS n_blockers,
           string_agg(reason_label || ' (' || owner || ')', '; ' ORDER BY reason_label, source_key) AS blockers,
           list_sort(list_distinct(list(source_link))) AS source_links  -- sorted: the same list every run
    FROM blockers WHERE order_id IS NOT NULL GROUP BY order_id
)
SELECT s.order_id, f.customer_id, f.customer_name, f.tier, s.state, s.reason AS state_reason, s.line_summary, s.n_lines,
       s.n_in_stock_lines || ' of ' || s.n_lines || ' lines in stock' AS inventory,
       s.n_allocated_lines || ' of ' || s.n_lines || ' lines allocated' AS allocation,
       s.n_picked_lines || ' of ' || s.n_lines || ' lines picked' AS pick_status,
       CASE WHEN f.n_packed + f.n_open_cartons + f.n_exceptions = 0 THEN 'not packed'
            ELSE f.n_packed || ' packed, ' || f.n_open_cartons || ' open, ' || f.n_exceptions || ' in exception' END AS pack_status,
       CASE WHEN f.n_ship = 0 THEN 'no shipment'
            ELSE f.n_labelled || ' of ' || f.n_ship || ' labelled, ' || f.n_manifested || ' manifested, ' || f.n_handed || ' handed off'
       END AS shipment_status,
       f.n_open_holds AS open_holds, f.hold_text, f.n_open_cases AS open_cases,
       f.carrier, f.service, c.cutoff_at, c.cutoff_label, c.minutes_to_cutoff,
       p.promise_status, p.promise_reason, f.promised_delivery, p.next_pickup_at,
       coalesce(b.n_blockers, 0) AS n_blockers, b.blockers,
       {order_link} AS order_link, coalesce(b.source_links, []) AS source_links,
       pr.priority, pr.priority_rule, f.ship_complete, f.ship_complete_source
FROM order_states s
JOIN order_facts f USING (order_id)
JOIN orders o USING (order_id)
LEFT JOIN order_cutoffs c USING (order_id)
LEFT JOIN promise p USING (order_id)
LEFT JOIN order_priority pr USING (order_id)
LEFT JOIN blk b USING (order_id)
ORDER BY pr.priority DESC, c.cutoff_at NULLS LAST, s.order_id
"""

REQUIRED = tuple(ENTITIES) + tuple(f"linked_{e}" for e in ("pick_tasks", "pack_events", "holds", "shipments", "cases"))


def build_board(con: duckdb.DuckDBPyConnection, settings: Settings) -> duckdb.DuckDBPyRelation:
    """Create `order_board` (one row per order: state and reason, inventory, allocation, pick, pack and
    shipment status, open holds, carrier cutoff, promise and reason, blockers, links, priority); returns it."""
    expr, params = link_sql(settings.links.get("oms"), {f.name: f"o.{f.name}" for f in ENTITIES["orders"].fields}, "link_order")
    con.execute(ORDER_BOARD.replace("{order_link}", expr), params)
    return con.table("order_board")


def _check_inputs(con: duckdb.DuckDBPyConnection) -> None:
    have = {
        r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views()").fetchall()
    }
    missing = [t for t in REQUIRED if t not in have]
    if missing:
        raise HandoffError(
            f"the connection lacks the tables {', '.join(missing)}: load the extracts and build the crosswalk before analysing"
        )


def analyse(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, note_model: object | None = None) -> dict[str, int]:
    """Run cutoffs -> states -> blockers -> promise -> board on the loaded, crosswalked tables in `con`
    and return the summary counts (see `summary`). Creates order_cutoffs, order_facts, line_states,
    order_states, note_reasons, order_priority, blockers, promise and order_board."""
    _check_inputs(con)
    policy = prepare(con, settings, now)  # once: every rule below reads this policy and its tables
    assign_cutoffs(con, settings, now, policy)
    build_states(con, settings, policy)
    build_blockers(con, settings, policy, note_model)
    build_promise(con, settings, now, policy)
    apply_to_promise(con, settings, now)  # the learned risk score, when the site turns it on
    build_board(con, settings)
    return summary(con, settings, policy)


def drill_downs(settings: Settings, policy: Policy | None = None) -> dict[str, tuple[str, list]]:
    """Every summary figure's drill-down list as (query, parameters), by name:
    orders, orders.<state>, promise.<status>, blockers, blockers.<reason>, blockers.owner.<owner>.
    `policy`: the site's, when the caller has it already (else it is read from `settings`)."""
    policy = policy or load_policy(settings)
    out: dict[str, tuple[str, list]] = {"orders": ("SELECT * FROM order_board", [])}
    for state in STATE_NAMES:
        out[f"orders.{state}"] = ("SELECT * FROM order_board WHERE state = ?", [state])
    for status in PROMISE_STATUSES:
        out[f"promise.{status}"] = ("SELECT * FROM order_board WHERE promise_status = ?", [status])
    out["blockers"] = ("SELECT * FROM blockers", [])
    for reason in policy.reasons:
        out[f"blockers.{reason}"] = ("SELECT * FROM blockers WHERE reason = ?", [reason])
    for owner in sorted({r.owner for r in policy.reasons.values()}):
        out[f"blockers.owner.{owner}"] = ("SELECT * FROM blockers WHERE owner = ?", [owner])
    return out


def drill_down(con: duckdb.DuckDBPyConnection, settings: Settings, name: str) -> pd.DataFrame:
    """The rows behind summary figure `name` (e.g. 'orders.held', 'blockers.short_pick')."""
    queries = drill_downs(settings)
    if name not in queries:
        raise HandoffError(f"no summary figure '{name}' (known: {', '.join(queries)})")
    sql, params = queries[name]
    return con.execute(sql, params).df()


def summary(con: duckdb.DuckDBPyConnection, settings: Settings, policy: Policy | None = None) -> dict[str, int]:
    """Each summary figure's count: the row count of its drill-down query, so the two always agree."""
    return {
        name: int(con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0])
        for name, (sql, params) in drill_downs(settings, policy).items()
    }


def summary_with_drill_down(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, tuple[int, pd.DataFrame]]:
    """(count, rows) per summary figure, for reports that show both."""
    counts = summary(con, settings)
    return {name: (counts[name], drill_down(con, settings, name)) for name in counts}
