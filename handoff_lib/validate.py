"""Checks across the fields of one row that typing alone cannot make: events out of order.

A shipment handed to the carrier before its label was printed, a hold released before it was
placed, an order released before it was ordered: such a row is moved from its table to `rejects`
with the reason, and the load report's counts follow, so rows read = accepted + rejected still
holds. Runs after `extracts.load_extracts`, before the crosswalk.
"""

from __future__ import annotations

import duckdb

from .settings import Settings

# entity -> (earlier field, later field) pairs that must not be reversed
ORDERED_EVENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "orders": (("ordered_at", "released_at"), ("ordered_at", "cancelled_at")),
    "shipments": (("label_created_at", "manifested_at"), ("label_created_at", "handed_off_at"), ("manifested_at", "handed_off_at")),
    "holds": (("placed_at", "released_at"),),
    "cases": (("opened_at", "closed_at"),),
}
TOLERANCE_MINUTES = 1  # clocks of two systems writing one row may differ by seconds


def reject_events_out_of_order(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Move rows whose events are out of order into `rejects`; returns how many were moved."""
    moved = 0
    for entity, pairs in ORDERED_EVENTS.items():
        columns = settings.sources[entity].columns
        bad = [f"({a} IS NOT NULL AND {b} IS NOT NULL AND {b} < {a} - INTERVAL {TOLERANCE_MINUTES} MINUTE)" for a, b in pairs]
        where = " OR ".join(bad)
        n = con.execute(f"SELECT count(*) FROM {entity} WHERE {where}").fetchone()[0]
        if not n:
            continue
        column = " ".join(f"WHEN {c} THEN '{columns.get(b, b)}'" for c, (_, b) in zip(bad, pairs))
        value = " ".join(f"WHEN {c} THEN strftime({b}, '%Y-%m-%d %H:%M')" for c, (_, b) in zip(bad, pairs))
        reason = " ".join(
            f"WHEN {c} THEN '{b} ' || strftime({b}, '%Y-%m-%d %H:%M') || ' is before {a} ' || strftime({a}, '%Y-%m-%d %H:%M')"
            for c, (a, b) in zip(bad, pairs)
        )
        con.execute(
            f"""INSERT INTO rejects
                SELECT $entity, _file, _line, CASE {column} END, CASE {value} END,
                       'events out of order: ' || CASE {reason} END, NULL
                FROM {entity} WHERE {where}""",
            {"entity": entity},
        )
        con.execute(f"DELETE FROM {entity} WHERE {where}")
        con.execute(
            """UPDATE load_report SET rows_accepted = rows_accepted - $n, rows_rejected = rows_rejected + $n
               WHERE source = $entity""",
            {"n": n, "entity": entity},
        )
        moved += n
    return moved


def degraded_sources(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Sources with rejected rows: source, file, rows_read, rows_rejected, share (%), top reason.
    Every review shows these loudly: the picture of such a source is missing those rows."""
    return con.execute(
        """SELECT l.source, l.file, l.rows_read, l.rows_rejected,
                  round(100.0 * l.rows_rejected / greatest(l.rows_read, 1), 2) AS share_pct,
                  (SELECT reason FROM rejects r WHERE r.source = l.source GROUP BY reason ORDER BY count(*) DESC, reason LIMIT 1)
                      AS top_reason
           FROM load_report l WHERE l.rows_rejected > 0 ORDER BY share_pct DESC, l.source"""
    ).df().to_dict(orient="records")
