"""Order lookup by any identifier: order id, customer PO, pick ticket, task, carton, shipment,
tracking number, hold or case number, in whatever form a system writes it."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from handoff_lib.load.settings import Settings

from .identifiers import KINDS, norm_expr, rule_for

# What each record table contributes to the answer: (title, table, order column, sort column).
RECORDS = (
    ("order lines (OMS)", "order_lines", "order_id", "line_no"),
    ("pick tasks (WMS)", "linked_pick_tasks", "order_id", "_line"),
    ("pack events (WMS)", "linked_pack_events", "order_id", "_line"),
    ("holds (WMS)", "linked_holds", "order_id", "_line"),
    ("shipments (carrier)", "linked_shipments", "order_id", "_line"),
    ("cases (CRM)", "linked_cases", "order_id", "_line"),
)


@dataclass
class Match:
    order_id: str
    kind: str  # which kind of identifier the query matched
    matched: str  # the identifier as the source system writes it


@dataclass
class OrderView:
    order_id: str
    order: dict
    records: dict[str, pd.DataFrame] = field(default_factory=dict)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)  # states, blockers, promise when computed


def find_orders(con: duckdb.DuckDBPyConnection, settings: Settings, identifier: str) -> list[Match]:
    """Every order the identifier resolves to, with the kind of identifier it matched.
    Empty when nothing matches; several when the identifier is ambiguous (e.g. a shared PO)."""
    parts, params = [], {"q": identifier}
    for i, kind in enumerate(KINDS):
        e = norm_expr("$q", rule_for(settings, kind), f"k{i}")
        params.update(e.params)
        params[f"kind{i}"] = kind
        parts.append(f"SELECT $kind{i} AS kind, {e.sql} AS key")
    rows = con.execute(
        f"""
        WITH q AS ({' UNION ALL '.join(parts)})
        SELECT DISTINCT i.order_id, i.kind, i.raw_key,
               (i.raw_key = upper(trim($q))) AS exact
        FROM q JOIN id_index i ON i.kind = q.kind AND i.key = q.key AND q.key <> ''
        ORDER BY exact DESC, i.order_id, i.kind
        """,
        params,
    ).fetchall()
    # an exact hit on the identifier as written beats normalised hits on other kinds
    exact = [r for r in rows if r[3]]
    chosen = exact or rows
    seen: dict[str, Match] = {}
    for order_id, kind, raw, _ in chosen:
        seen.setdefault(order_id, Match(order_id, kind, raw))
    return list(seen.values())


def order_view(con: duckdb.DuckDBPyConnection, order_id: str) -> OrderView:
    """The order row and every record linked to it, per source system."""
    order = con.execute("SELECT * FROM orders WHERE order_id = ?", [order_id]).df()
    view = OrderView(order_id, order.iloc[0].to_dict() if len(order) else {})
    for title, table, col, sort in RECORDS:
        view.records[title] = con.execute(f"SELECT * FROM {table} WHERE {col} = ? ORDER BY {sort}", [order_id]).df()
    for title, table in (("state", "order_states"), ("blockers", "blockers"), ("promise", "promise")):
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[0]
        if exists:
            view.extra[title] = con.execute(f"SELECT * FROM {table} WHERE order_id = ?", [order_id]).df()
    return view


def format_view(view: OrderView, match: Match | None = None) -> str:
    """Plain text for the terminal."""
    out = [f"Order {view.order_id}" + (f"  (matched {match.kind} {match.matched})" if match else "")]
    o = view.order
    if o:
        keys = ("customer_id", "customer_name", "customer_po", "priority", "release_status", "carrier", "service",
                "ship_by", "promised_delivery", "ship_complete")
        out.append("  " + "  ".join(f"{k}={_fmt(o.get(k))}" for k in keys if _fmt(o.get(k)) != ""))
    state = view.extra.get("state")
    if state is not None and len(state):
        out.append(f"STATE    {state.iloc[0]['state']}: {state.iloc[0]['reason']}")
    promise = view.extra.get("promise")
    if promise is not None and len(promise):
        p = promise.iloc[0]
        out.append(f"PROMISE  {p['promise_status']}: {p['promise_reason']}")
    blockers = view.extra.get("blockers")
    if blockers is not None:
        out.append(f"BLOCKERS {len(blockers)} open")
        for b in blockers.itertuples(index=False):
            out.append(f"  - {b.reason_label} (owner {b.owner}, priority {b.priority:g}, {b.cutoff_label or 'no cutoff'}, "
                       f"age {b.age_minutes} min): {b.detail}")
            if b.source_link:
                out.append(f"    source: {b.source_link}")
    for title, df in view.records.items():
        out.append(f"-- {title}: {len(df)}")
        if len(df):
            hide = ("order_id", "_file", "link_status", "link_kind", "link_key", "link_confidence")
            show = df.drop(columns=[c for c in df.columns if c in hide]).dropna(axis=1, how="all")
            out.extend("  " + line for line in show.to_string(index=False, max_colwidth=40).splitlines())
    return "\n".join(out)


def _fmt(v: object) -> str:
    if isinstance(v, pd.Timestamp) and v.tz is None and v == v.normalize():
        return v.strftime("%Y-%m-%d")  # a calendar date (e.g. promised delivery)
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NaT:
        return ""
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    return str(v)
