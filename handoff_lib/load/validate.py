"""Checks across the fields of one row that typing alone cannot make: events out of order.

A shipment handed to the carrier before its label was printed, a hold released before it was placed,
an order released before it was ordered: the row is KEPT (the most advanced milestone wins: a pickup
scan means handed off, whatever the label and manifest times say), and the inversion is flagged in
`rejects` (action 'flag'). Systems' clocks drift: an inversion within
`data_quality.event_tolerance_minutes` (default 30) is only flagged; beyond it, the record also gets a
`data_quality` blocker for the data team (blockers.py), since one of the two systems' times is wrong.
Runs after `extracts.load_extracts`, before the crosswalk; writes `event_issues`.
"""

from __future__ import annotations

import duckdb

from .extracts import write_column_counts
from .settings import Settings

# entity -> (earlier field, later field) pairs that must not be reversed
ORDERED_EVENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "orders": (("ordered_at", "released_at"), ("ordered_at", "cancelled_at")),
    "shipments": (("label_created_at", "manifested_at"), ("label_created_at", "handed_off_at"), ("manifested_at", "handed_off_at")),
    "holds": (("placed_at", "released_at"),),
    "cases": (("opened_at", "closed_at"),),
}
SECONDS_IGNORED = 60  # two systems writing one row may differ by seconds: an inversion this small is not even flagged

EVENT_ISSUES_DDL = """CREATE OR REPLACE TABLE event_issues (
    source VARCHAR, file VARCHAR, line BIGINT, earlier VARCHAR, later VARCHAR, earlier_at TIMESTAMPTZ, later_at TIMESTAMPTZ,
    minutes DOUBLE, beyond_tolerance BOOLEAN)"""

ISSUES = """
INSERT INTO event_issues
SELECT $entity, _file, _line, $a, $b, {a}, {b}, round((epoch({a}) - epoch({b})) / 60.0, 1), epoch({a}) - epoch({b}) > $tol_s
FROM {entity} WHERE {a} IS NOT NULL AND {b} IS NOT NULL AND epoch({a}) - epoch({b}) > $ignored
"""

FLAGS = """
INSERT INTO rejects
SELECT i.source, i.file, i.line, $column_b, strftime(i.later_at, '%Y-%m-%d %H:%M'),
       'events out of order by ' || CAST(round(i.minutes) AS BIGINT) || ' min: ' || i.later || ' '
       || strftime(i.later_at, '%Y-%m-%d %H:%M') || ' is before ' || i.earlier || ' ' || strftime(i.earlier_at, '%Y-%m-%d %H:%M')
       || CASE WHEN i.beyond_tolerance THEN ' (beyond the ' || $tol || '-min tolerance: kept, raised as a data-quality blocker)'
               ELSE ' (within the ' || $tol || '-min tolerance: kept, flagged)' END,
       NULL, 'flag'
FROM event_issues i WHERE i.source = $entity AND i.earlier = $a AND i.later = $b
ORDER BY i.line
"""


def flag_events_out_of_order(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Flag rows whose events are out of order (kept, listed in `rejects` as 'flag' and in `event_issues`);
    returns how many inversions were found. The load report's flag counts and severity follow."""
    tol = settings.data_quality.event_tolerance_minutes
    con.execute(EVENT_ISSUES_DDL)
    found = 0
    for entity, pairs in ORDERED_EVENTS.items():
        columns = settings.sources[entity].columns
        n_before = con.execute("SELECT count(*) FROM event_issues").fetchall()[0][0]
        for a, b in pairs:
            con.execute(
                ISSUES.format(entity=entity, a=a, b=b),
                {"entity": entity, "a": a, "b": b, "tol_s": tol * 60, "ignored": SECONDS_IGNORED},
            )
            con.execute(FLAGS, {"entity": entity, "a": a, "b": b, "column_b": columns.get(b, b), "tol": tol})
        n = con.execute("SELECT count(*) FROM event_issues").fetchall()[0][0] - n_before
        if not n:
            continue
        found += n
        beyond = con.execute(
            "SELECT count(*) FROM event_issues WHERE source = $e AND beyond_tolerance", {"e": entity}
        ).fetchall()[0][0]
        con.execute(
            """UPDATE load_report SET values_flagged = values_flagged + $n,
                      severity = CASE WHEN severity = 'warning' OR $beyond > 0 THEN 'warning' ELSE 'info' END
               WHERE source = $entity""",
            {"n": n, "beyond": beyond, "entity": entity},
        )
        row = con.execute("SELECT file, rows_read - rows_other_entity FROM load_report WHERE source = $e", {"e": entity}).fetchall()[0]
        write_column_counts(con, entity, row[0], row[1])
    return found


def data_warnings(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every source with something to say about its load, worst first: source, file, severity (info |
    warning), rows_read, rows_entity (the rows that are this source's: read less those `where:` leaves to other
    entities), rows_rejected, values_nulled, values_flagged, share_pct (rows rejected of rows_entity), and
    the commonest reason of each kind. info = duplicates dropped or values flagged (nothing lost);
    warning = values nulled or rows rejected (the picture lacks them). A source past the site's
    threshold never gets here: it stops the run (extracts._check_systemic)."""
    return con.execute(
        """SELECT l.source, l.file, l.severity, l.rows_read, l.rows_read - l.rows_other_entity AS rows_entity,
                  l.rows_rejected, l.values_nulled, l.values_flagged,
                  round(100.0 * l.rows_rejected / greatest(l.rows_read - l.rows_other_entity, 1), 2) AS share_pct,
                  (SELECT reason FROM rejects r WHERE r.source = l.source AND r.action = 'row'
                   GROUP BY reason ORDER BY count(*) DESC, reason LIMIT 1) AS top_row_reason,
                  (SELECT reason FROM rejects r WHERE r.source = l.source AND r.action = 'value'
                   GROUP BY reason ORDER BY count(*) DESC, reason LIMIT 1) AS top_value_reason,
                  (SELECT reason FROM rejects r WHERE r.source = l.source AND r.action = 'flag'
                   GROUP BY reason ORDER BY count(*) DESC, reason LIMIT 1) AS top_flag_reason
           FROM load_report l WHERE l.severity IN ('info', 'warning')
           ORDER BY l.severity = 'warning' DESC, l.rows_rejected + l.values_nulled DESC, l.source"""
    ).df().to_dict(orient="records")


def degraded_sources(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """The sources whose picture is missing something (severity warning): values nulled or rows rejected
    other than duplicates. Kept for callers that only want the losses."""
    return [d | {"top_reason": d["top_row_reason"] or d["top_value_reason"]} for d in data_warnings(con) if d["severity"] == "warning"]
