"""The blocker queue: one row per open blocker with reason, owner, source link, priority, cutoff and age.

Reasons come from structured facts first: hold codes and pack exception codes (mapped in
`policy.hold_codes` / `policy.pack_exception_codes`), short picks, a missing label or manifest near the
cutoff, a substitution against an instruction, an order not released near its cutoff, an unallocated
line, and data gaps (a record the crosswalk could not link, an order line whose SKU the WMS does not
know). A hold or pack exception whose code is blank (or unknown) gets its reason from its note through
`note_reasons` (`build_note_reasons`): the site's note rules (`policy.note_rules`) first, then the site's
notes model when the caller hands one in (precedence: docs/notes.md). Owners come from `policy.reasons`
(the routing table); priority from the visible rule in `policy.priority`.

Needs: order_cutoffs, order_facts, line_states, order_states (promise.assign_cutoffs, states.build_states).
Tables created: `note_reasons`, `note_model`, `note_decisions`, `order_priority`, `blockers`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

import duckdb

from handoff_lib.join.links import link_sql, template_for
from handoff_lib.load.contract import ENTITIES
from handoff_lib.load.settings import Settings

from .policy import Policy, load_policy, policy_tables

if TYPE_CHECKING:
    import pandas as pd

LINKED = ("pick_tasks", "pack_events", "holds", "shipments", "cases")

# Notes that need a reason: holds and pack exceptions whose code the policy does not map.
NOTES_TO_CLASSIFY = """
SELECT 'holds' AS entity, coalesce(h.hold_id, h._file || ':' || h._line) AS record_key, h.note
FROM linked_holds h LEFT JOIN policy_hold_codes c ON c.code = upper(trim(h.code))
WHERE c.code IS NULL AND nullif(trim(h.note), '') IS NOT NULL
UNION ALL
SELECT 'pack_events', p.carton_id, p.note
FROM linked_pack_events p LEFT JOIN policy_pack_codes c ON c.code = upper(trim(p.exception_code))
WHERE p.status = 'exception' AND c.code IS NULL AND nullif(trim(p.note), '') IS NOT NULL
"""

# The keyword rules: the first rule (by rule_no) whose pattern matches the note wins. One WHEN per rule,
# tried in rule order, with the pattern as a parameter: a pattern read from a column is compiled again
# for every note, a parameter once (0.25 -> 0.02 s at 1M lines). DISTINCT: one row per note, as before.
APPLY_NOTE_RULES = """
WITH n AS ({notes}),
matched AS (SELECT n.*, CASE {rules} END AS rule_no FROM n)
SELECT DISTINCT m.entity, m.record_key, m.note, r.reason, 'note rule ' || m.rule_no AS classified_by,
       CAST(NULL AS VARCHAR) AS theme, CAST(NULL AS DOUBLE) AS confidence, 'rule' AS status
FROM matched m JOIN policy_note_rules r USING (rule_no)
"""
# The notes no rule decided, for the site's model (one row per distinct note of a record).
NOTES_LEFT = """
SELECT DISTINCT n.entity, n.record_key, n.note FROM ({notes}) n ANTI JOIN note_reasons r USING (entity, record_key, note)
ORDER BY n.entity, n.record_key, n.note
"""
NOTE_REASONS_COLUMNS = ("entity", "record_key", "note", "reason", "classified_by", "theme", "confidence", "status")

# How the reason of every hold and pack exception of the extracts was decided (docs/notes.md): its code,
# a note rule, the site's model, or nobody (needs review: hold_other / pack_exception_other).
NOTE_DECISIONS = """
CREATE OR REPLACE TABLE note_decisions AS
WITH records AS (
    SELECT 'holds' AS entity, coalesce(h.hold_id, h._file || ':' || h._line) AS record_key, h.note, c.code IS NOT NULL AS coded
    FROM linked_holds h LEFT JOIN policy_hold_codes c ON c.code = upper(trim(h.code))
    UNION ALL
    SELECT 'pack_events', p.carton_id, p.note, c.code IS NOT NULL
    FROM linked_pack_events p LEFT JOIN policy_pack_codes c ON c.code = upper(trim(p.exception_code))
    WHERE p.status = 'exception'
),
decided AS (
    SELECT CASE WHEN r.coded THEN 'code' WHEN n.status IS NULL THEN 'needs_review' ELSE n.status END AS decided_by,
           CASE WHEN NOT r.coded AND n.status = 'rule' THEN n.classified_by END AS rule
    FROM records r LEFT JOIN note_reasons n ON NOT r.coded AND n.entity = r.entity AND n.record_key = r.record_key AND n.note = r.note
)
SELECT decided_by, rule, count(*) AS records FROM decided GROUP BY ALL ORDER BY decided_by, rule
"""
NOTE_MODEL_COLUMNS = "model VARCHAR, sha256 VARCHAR, trained_at VARCHAR, site VARCHAR, threshold DOUBLE"


class NoteClassifier(Protocol):
    """The site's trained notes model as `build_note_reasons` uses it (handoff_lib.learn.notes.NotesModel is
    one). The caller hands it in: this module never imports the learning code."""

    def note_reasons(self, notes: pd.DataFrame, known_reasons: set[str]) -> pd.DataFrame:
        """For `notes` (entity, record_key, note): one row each with the NOTE_REASONS_COLUMNS, status 'model'
        (at or above the model's threshold) or 'needs_review' (reason hold_other / pack_exception_other)."""
        ...

    def describe(self) -> dict[str, Any]:
        """The model's path, sha256, trained_at, site and threshold (the `note_model` table, the manifest)."""
        ...


def _note_rules_sql(con: duckdb.DuckDBPyConnection, notes: str) -> tuple[str, dict[str, str]]:
    """APPLY_NOTE_RULES over the query `notes` (entity, record_key, note) with the rules now in
    `policy_note_rules`, and the patterns as parameters."""
    rules = con.execute("SELECT rule_no, pattern FROM policy_note_rules ORDER BY rule_no").fetchall()
    whens = " ".join(f"WHEN regexp_matches(n.note, $rule_{no}, 'i') THEN {no}" for no, _ in rules)
    return (
        APPLY_NOTE_RULES.format(notes=notes, rules=whens or "WHEN FALSE THEN 0"),
        {f"rule_{no}": pattern for no, pattern in rules},
    )


def build_note_reasons(con: duckdb.DuckDBPyConnection, model: NoteClassifier | None = None) -> duckdb.DuckDBPyRelation:
    """Create `note_reasons` (entity, record_key, note, reason, classified_by, theme, confidence, status) for
    every hold and pack exception whose code the policy does not map and that has a note, in the order of
    docs/notes.md: the site's note rules first (status 'rule'); a note no rule matches goes to the site's
    `model` when it has one (status 'model' at or above its threshold, else 'needs_review' with the best
    guess in classified_by); without a model it gets no row (hold_other / pack_exception_other). Also
    creates `note_model` (the model used, or one row of NULLs: rules only) and `note_decisions` (records
    decided by code / rule / model / needs_review). Returns `note_reasons`."""
    sql, params = _note_rules_sql(con, NOTES_TO_CLASSIFY)
    con.execute("CREATE OR REPLACE TABLE note_reasons AS " + sql, params)
    con.execute(f"CREATE OR REPLACE TABLE note_model ({NOTE_MODEL_COLUMNS})")
    if model is None:
        con.execute("INSERT INTO note_model VALUES (NULL, NULL, NULL, NULL, NULL)")
    else:
        info = model.describe()
        con.execute(
            "INSERT INTO note_model VALUES ($model, $sha256, $trained_at, $site, $threshold)",
            {k: info.get(k) for k in ("model", "sha256", "trained_at", "site", "threshold")},
        )
        left = con.execute(NOTES_LEFT.format(notes=NOTES_TO_CLASSIFY)).df()
        if len(left):
            known = {r[0] for r in con.execute("SELECT reason FROM policy_reasons").fetchall()}
            decided = model.note_reasons(left, known)[list(NOTE_REASONS_COLUMNS)]  # noqa: F841 - read by DuckDB by name
            con.execute("INSERT INTO note_reasons BY NAME SELECT * FROM decided")
    con.execute(NOTE_DECISIONS)
    return con.table("note_reasons")


def reason_from_note(con: duckdb.DuckDBPyConnection, settings: Settings, note: str) -> str | None:
    """The reason code the note rules give one free-text note, or None when no rule matches."""
    policy_tables(con, load_policy(settings))
    sql, params = _note_rules_sql(con, "SELECT 'note' AS entity, 'note' AS record_key, CAST($note AS VARCHAR) AS note")
    row = con.execute(sql, {**params, "note": note}).fetchone()
    return row[3] if row else None


ORDER_PRIORITY = """
CREATE OR REPLACE TABLE order_priority AS
WITH line_value AS (
    -- only orders without an OMS order value need the sum of their lines
    SELECT l.order_id, sum(l.qty * l.unit_price) AS value FROM order_lines l
    SEMI JOIN (SELECT order_id FROM orders WHERE order_value IS NULL) o USING (order_id)
    GROUP BY l.order_id
),
-- each band table as one sorted list, looked up per order below: the first band that fits is the band
-- the old arg_min / arg_max over a join gave (a join of every order with every band, then a GROUP BY)
bands AS (
    SELECT (SELECT list({'lim': within_minutes, 'pts': points} ORDER BY within_minutes, band_no) FROM policy_cutoff_bands) AS cut,
           (SELECT list({'lim': at_least, 'pts': points} ORDER BY at_least DESC, band_no) FROM policy_value_bands) AS val,
           (SELECT list({'lim': at_least, 'pts': points} ORDER BY at_least DESC, band_no) FROM policy_line_bands) AS lin
),
base AS (
    SELECT f.order_id, f.tier, coalesce(f.order_value, v.value) AS value, s.n_open_lines, c.minutes_to_cutoff,
           greatest(c.minutes_to_cutoff, 0) AS m
    FROM order_facts f JOIN order_states s USING (order_id)
    LEFT JOIN order_cutoffs c USING (order_id) LEFT JOIN line_value v USING (order_id)
),
banded AS (
    SELECT b.*, list_filter(bands.cut, lambda x: b.m <= x.lim)[1].pts AS cut_band,
           list_filter(bands.val, lambda x: b.value >= x.lim)[1].pts AS val_band,
           list_filter(bands.lin, lambda x: b.n_open_lines >= x.lim)[1].pts AS lin_band
    FROM base b CROSS JOIN bands
),
pts AS (
    SELECT b.* EXCLUDE (cut_band, val_band, lin_band), coalesce(t.points, $tier_default) AS tier_pts,
           coalesce(b.cut_band, 0) AS cut_pts, coalesce(b.val_band, 0) AS val_pts, coalesce(b.lin_band, 0) AS lin_pts
    FROM banded b LEFT JOIN policy_tier_points t ON t.tier = b.tier
)
SELECT order_id, tier_pts + cut_pts + val_pts + lin_pts AS priority,
       -- concat, not a chain of ||: one string built per order instead of one per piece. Every piece is
       -- non-NULL (coalesced points and texts, the open-line count), so it is the same text
       concat('tier ', coalesce(CAST(tier AS VARCHAR), '?'), ' +', tier_pts, ', ',
              CASE WHEN minutes_to_cutoff IS NULL THEN 'no cutoff' WHEN minutes_to_cutoff < 0 THEN 'past cutoff'
                   ELSE concat(CAST(round(minutes_to_cutoff) AS BIGINT), ' min to cutoff') END, ' +', cut_pts, ', ',
              'value ', coalesce(CAST(CAST(round(value) AS BIGINT) AS VARCHAR), '?'), ' +', val_pts, ', ',
              n_open_lines, ' open lines +', lin_pts, ' = ', tier_pts + cut_pts + val_pts + lin_pts) AS priority_rule
FROM pts
"""

# A note quoted in a blocker's detail ({quoted_note:<alias>}) is cut at 200 characters, and then ends in "…" (never
# cut silently).
QUOTED_NOTE = "CASE WHEN length(trim({a}.note)) > 200 THEN left(trim({a}.note), 199) || '…' ELSE nullif(trim({a}.note), '') END"
# Each branch gives: order_id, reason, basis, source_system, source_entity, source_file, source_line,
# source_key, source_link, event_at, detail. {link} is an expression built by links.link_sql from
# contract field names; every value travels as a named parameter.
BRANCHES = {
    "holds": """
SELECT h.order_id,
       coalesce(c.reason, n.reason, 'hold_other') AS reason,
       CASE WHEN c.reason IS NOT NULL THEN 'hold code ' || trim(h.code)
            WHEN n.reason IS NOT NULL THEN n.classified_by || ' on the note'
                 || coalesce(' (code ' || nullif(trim(h.code), '') || ' is not in policy.hold_codes)', '')
            WHEN nullif(trim(h.code), '') IS NOT NULL THEN 'code ' || trim(h.code) || ' is not in policy.hold_codes'
            ELSE 'no code and no note rule matched' END AS basis,
       'wms' AS source_system, 'holds' AS source_entity, h._file AS source_file, h._line AS source_line,
       coalesce(h.hold_id, h._file || ':' || h._line) AS source_key, {link} AS source_link, h.placed_at AS event_at,
       'hold ' || coalesce(h.hold_id, h._file || ':' || h._line) || coalesce(' code ' || nullif(trim(h.code), ''), '')
       || coalesce(' "' || {quoted_note:h} || '"', '') || coalesce(' placed by ' || h.placed_by, '')
       || coalesce(' at ' || strftime(timezone(clock.tz, h.placed_at), '%a %d %b %H:%M'), '') AS detail
FROM linked_holds h CROSS JOIN clock
LEFT JOIN policy_hold_codes c ON c.code = upper(trim(h.code))
LEFT JOIN note_reasons n ON n.entity = 'holds' AND n.record_key = coalesce(h.hold_id, h._file || ':' || h._line)
WHERE h.link_status = 'linked' AND h.released_at IS NULL
""",
    "pack_events": """
SELECT p.order_id,
       coalesce(c.reason, n.reason, 'pack_exception_other') AS reason,
       CASE WHEN c.reason IS NOT NULL THEN 'pack exception code ' || trim(p.exception_code)
            WHEN n.reason IS NOT NULL THEN n.classified_by || ' on the note'
                 || coalesce(' (code ' || nullif(trim(p.exception_code), '') || ' is not in policy.pack_exception_codes)', '')
            WHEN nullif(trim(p.exception_code), '') IS NOT NULL THEN 'code ' || trim(p.exception_code) || ' is not in policy.pack_exception_codes'
            ELSE 'no code and no note rule matched' END AS basis,
       'wms', 'pack_events', p._file, p._line, p.carton_id, {link}, p.event_at,
       'carton ' || p.carton_id || ' in pack exception' || coalesce(' ' || nullif(trim(p.exception_code), ''), '')
       || coalesce(' "' || {quoted_note:p} || '"', '')
       || coalesce(' at ' || strftime(timezone(clock.tz, p.event_at), '%a %d %b %H:%M'), '')
FROM linked_pack_events p CROSS JOIN clock
LEFT JOIN policy_pack_codes c ON c.code = upper(trim(p.exception_code))
LEFT JOIN note_reasons n ON n.entity = 'pack_events' AND n.record_key = p.carton_id
WHERE p.link_status = 'linked' AND p.status = 'exception'
""",
    "short_pick": """
SELECT l.order_id, 'short_pick', 'task status short', 'wms', 'pick_tasks', t._file, t._line, t.task_id, {link}, t.updated_at,
       l.reason || coalesce(', note "' || {quoted_note:t} || '"', '')
FROM line_states l JOIN linked_pick_tasks t ON t.task_id = l.short_task AND t.order_id = l.order_id
WHERE l.is_short AND l.state NOT IN ('cancelled', 'handed_off')
""",
    "substitution": """
SELECT l.order_id, 'substitution', 'substituted SKU on the pick task', 'wms', 'pick_tasks', t._file, t._line, t.task_id, {link},
       t.updated_at, l.reason
FROM line_states l JOIN linked_pick_tasks t ON t.task_id = l.sub_task AND t.order_id = l.order_id
WHERE l.sub_blocked AND l.state NOT IN ('cancelled', 'handed_off')
""",
    "allocation_short": """
SELECT l.order_id, 'allocation_short', 'allocated quantity below ordered quantity', 'oms', 'order_lines', l._file, l._line,
       l.order_id || '/' || l.line_no, {link}, coalesce(f.released_at, f.ordered_at),
       'line ' || l.line_no || ' ' || l.sku || ' allocated ' || coalesce(l.allocated_qty, 0) || ' of ' || coalesce(CAST(l.qty AS VARCHAR), '?')
       || CASE WHEN l.ship_complete THEN '; ship-complete order is held until it is allocated'
               ELSE '; partial shipment allowed: the rest can ship' END
FROM line_states l JOIN order_facts f USING (order_id) JOIN order_lines ol ON ol.order_id = l.order_id AND ol.line_no = l.line_no
WHERE l.allocation_short AND l.state NOT IN ('cancelled', 'handed_off')
""",
    "unknown_sku": """
SELECT l.order_id, 'unknown_sku', 'order line SKU not in the inventory extract', 'oms', 'order_lines', l._file, l._line,
       l.order_id || '/' || l.line_no, {link}, f.ordered_at,
       'line ' || l.line_no || ' SKU ' || l.sku || ' is not in the WMS inventory extract; check the item master'
FROM line_states l JOIN order_facts f USING (order_id) JOIN order_lines ol ON ol.order_id = l.order_id AND ol.line_no = l.line_no
WHERE NOT l.sku_known AND l.state NOT IN ('cancelled', 'handed_off')
""",
    "not_released": """
SELECT f.order_id, 'not_released', 'not released within policy.not_released_within_minutes of the cutoff', 'oms', 'orders',
       f._file, f._line, f.order_id, {link}, f.ordered_at,
       'order not released in the OMS; ' || f.cutoff_label
       || CASE WHEN f.minutes_to_cutoff < 0 THEN ' has passed' ELSE ' in ' || CAST(round(f.minutes_to_cutoff) AS BIGINT) || ' min' END
FROM order_facts f JOIN orders o USING (order_id)
WHERE f.release_status = 'not_released' AND NOT f.cancelled AND f.minutes_to_cutoff <= $not_released_within
""",
    "label_missing": """
SELECT c.order_id, 'label_missing',
       CASE WHEN c.shipment_id IS NULL THEN 'packed carton with no carrier shipment' ELSE 'packed carton, shipment without a label' END,
       'wms', 'pack_events', c._file, c._line, c.carton_id, {link}, c.packed_at,
       'carton ' || c.carton_id || ' packed at ' || strftime(timezone(clock.tz, c.packed_at), '%H:%M')
       || CASE WHEN c.shipment_id IS NULL THEN ', no carrier shipment for it'
               ELSE ', shipment ' || c.shipment_id || ' has no label' END
       || '; ' || coalesce(f.cutoff_label, 'no cutoff')
FROM carton_status c CROSS JOIN clock JOIN order_facts f USING (order_id)
JOIN linked_pack_events p ON p._line = c._line
WHERE c.label_created_at IS NULL AND NOT f.cancelled AND NOT f.handed_off
  AND ((epoch(clock.now) - epoch(c.packed_at)) / 60 >= $label_due OR f.minutes_to_cutoff <= $paperwork_due)
""",
    "manifest_missing": """
SELECT s.order_id, 'manifest_missing', 'labelled, not manifested in time', 'carrier', 'shipments', s._file, s._line,
       s.shipment_id, {link}, s.label_created_at,
       'shipment ' || s.shipment_id || coalesce(' tracking ' || s.tracking_no, '') || ' labelled at '
       || strftime(timezone(clock.tz, s.label_created_at), '%H:%M') || ', not manifested; ' || f.cutoff_label
FROM linked_shipments s CROSS JOIN clock JOIN order_facts f USING (order_id)
WHERE s.link_status = 'linked' AND s.label_created_at IS NOT NULL AND s.manifested_at IS NULL AND s.handed_off_at IS NULL
  AND NOT f.cancelled
  AND ((epoch(clock.now) - epoch(s.label_created_at)) / 60 >= $manifest_due OR f.minutes_to_cutoff <= $paperwork_due)
""",
}

# Records the crosswalk could not link (or linked to several orders): each is a data-gap blocker.
UNLINKED = {
    "pick_tasks": ("task_id", "order_ref", "updated_at", "pick task"),
    "pack_events": ("carton_id", "coalesce(r.order_ref, r.pick_ticket)", "event_at", "carton"),
    "holds": ("coalesce(r.hold_id, r._file || ':' || r._line)", "reference", "placed_at", "hold"),
    "shipments": ("shipment_id", "reference", "coalesce(r.label_created_at, r.manifested_at, r.handed_off_at)", "shipment"),
    "cases": ("case_id", "reference", "opened_at", "case"),
}
UNLINKED_BRANCH = """
SELECT CAST(NULL AS VARCHAR), 'unlinked_record', 'crosswalk ' || r.link_status, '{system}', '{entity}', r._file, r._line,
       {key}, {link}, {event},
       '{what} ' || {key} || ' cites "' || coalesce({ref}, '') || '", which '
       || CASE WHEN r.link_status = 'ambiguous' THEN 'matches more than one order' ELSE 'matches no order' END
       || ' (' || r._file || ' line ' || r._line || ')'
FROM linked_{entity} r
WHERE r.link_status IS DISTINCT FROM 'linked'
"""
# Events out of order beyond the site's tolerance (validate.flag_events_out_of_order): the record is kept and
# its most advanced milestone counts, but one of the two systems' clocks or records is wrong: a data-quality
# blocker for the data team, one per record (the largest inversion cited). It is raised even for an order
# that is handed off (the data is still wrong) and never holds a promise (policy.DATA_REASONS).
DATA_QUALITY = {  # entity -> (table the record is in, its key, its order_id)
    "orders": ("orders", "r.order_id", "r.order_id"),
    "shipments": ("linked_shipments", "r.shipment_id", "r.order_id"),
    "holds": ("linked_holds", "coalesce(r.hold_id, r._file || ':' || r._line)", "r.order_id"),
    "cases": ("linked_cases", "r.case_id", "r.order_id"),
}
DATA_QUALITY_BRANCH = """
SELECT {order_id}, 'data_quality', 'events out of order beyond data_quality.event_tolerance_minutes', '{system}', '{entity}',
       r._file, r._line, {key}, {link}, i.later_at,
       '{entity} ' || {key} || ': ' || i.later || ' ' || strftime(timezone(clock.tz, i.later_at), '%a %d %b %H:%M') || ' is '
       || CAST(round(i.minutes) AS BIGINT) || ' min before ' || i.earlier || ' '
       || strftime(timezone(clock.tz, i.earlier_at), '%a %d %b %H:%M') || ' (' || r._file || ' line ' || r._line || ')'
       || CASE WHEN i.n > 1 THEN '; and ' || (i.n - 1) || ' more inversion(s)' ELSE '' END
FROM (SELECT file, line, arg_max(earlier, minutes) AS earlier, arg_max(later, minutes) AS later,
             arg_max(earlier_at, minutes) AS earlier_at, arg_max(later_at, minutes) AS later_at, max(minutes) AS minutes,
             count(*) AS n
      FROM event_issues WHERE source = '{entity}' AND beyond_tolerance GROUP BY file, line) i
CROSS JOIN clock JOIN {table} r ON r._file = i.file AND r._line = i.line
"""

ORPHAN_LINES = """
SELECT CAST(NULL AS VARCHAR), 'unlinked_record', 'order line without an order', 'oms', 'order_lines', ol._file, ol._line,
       ol.order_id || '/' || ol.line_no, {link}, CAST(NULL AS TIMESTAMPTZ),
       'order line ' || ol.order_id || '/' || ol.line_no || ' has no order ' || ol.order_id || ' in the orders extract'
FROM order_lines ol ANTI JOIN orders o USING (order_id)
"""

BLOCKERS = """
CREATE OR REPLACE TABLE blockers AS
WITH clock AS (SELECT * FROM run_clock),
found AS (
{branches}
)
SELECT substr(md5(r.reason || '|' || r.source_entity || '|' || r.source_key || '|' || coalesce(r.order_id, '')), 1, 16) AS blocker_id,
       r.order_id, s.state AS order_state, r.reason, pr.reason_label, pr.owner, pr.communicate,
       -- a line left out of this shipment (a backorder line of a partial-allowed order) does not hold its work
       pr.blocks_work AND bo.source_key IS NULL AS blocks_work, r.basis,
       coalesce(p.priority, 0) AS priority, coalesce(p.priority_rule, 'no order linked: data gap +0 = 0') AS priority_rule,
       c.cutoff_at, c.cutoff_label, c.minutes_to_cutoff,
       r.event_at, CAST(round((epoch(clock.now) - epoch(r.event_at)) / 60) AS BIGINT) AS age_minutes,
       r.source_system, r.source_entity, r.source_file, r.source_line, r.source_key, r.source_link,
       {order_link} AS order_link, r.detail
FROM found r CROSS JOIN clock
LEFT JOIN (SELECT order_id || '/' || line_no AS source_key, 'order_lines' AS source_entity FROM line_states WHERE backorder) bo
  ON bo.source_key = r.source_key AND bo.source_entity = r.source_entity
LEFT JOIN order_states s USING (order_id)
LEFT JOIN policy_reasons pr ON pr.reason = r.reason
LEFT JOIN order_priority p USING (order_id)
LEFT JOIN order_cutoffs c USING (order_id)
LEFT JOIN orders o USING (order_id)
WHERE r.order_id IS NULL OR s.state IS NULL OR s.state NOT IN ('cancelled', 'handed_off') OR r.reason = 'data_quality'
ORDER BY priority DESC, c.cutoff_at NULLS LAST, r.order_id, r.reason, r.source_key
"""

BRANCH_SOURCE = {  # branch -> (entity whose fields the link may use, SQL alias of that record)
    "holds": ("holds", "h"),
    "pack_events": ("pack_events", "p"),
    "short_pick": ("pick_tasks", "t"),
    "substitution": ("pick_tasks", "t"),
    "allocation_short": ("order_lines", "ol"),
    "unknown_sku": ("order_lines", "ol"),
    "not_released": ("orders", "o"),
    "label_missing": ("pack_events", "p"),
    "manifest_missing": ("shipments", "s"),
}


def _link(settings: Settings, entity: str, alias: str, name: str) -> tuple[str, dict[str, str]]:
    """A link expression for records of `entity` under `alias`: the entity's system template filled
    from its contract fields (plus the linked OMS order_id)."""
    spec = ENTITIES[entity]
    columns = {f.name: f"{alias}.{f.name}" for f in spec.fields}
    if entity in LINKED:
        columns["order_id"] = f"{alias}.order_id"
    return link_sql(template_for(settings, entity), columns, name)


def blocker_sql(settings: Settings, con_tables: set[str] | None = None) -> tuple[str, dict[str, object]]:
    """The CREATE TABLE blockers statement and its link parameters (`con_tables`: the tables the connection
    has; the data-quality branch runs when `event_issues` is among them)."""
    con_tables = con_tables or set()
    parts: list[str] = []
    params: dict[str, object] = {}
    for branch, sql in BRANCHES.items():
        if branch == "unknown_sku" and settings.sources["inventory"].file is None:
            continue  # the site supplies no inventory extract: an unknown SKU cannot be told from a missing file
        entity, alias = BRANCH_SOURCE[branch]
        expr, p = _link(settings, entity, alias, f"link_{branch}")
        sql = re.sub(r"\{quoted_note:(\w+)\}", lambda m: QUOTED_NOTE.replace("{a}", m.group(1)), sql)
        parts.append(sql.replace("{link}", expr))
        params.update(p)
    for entity, (key, ref, event, what) in UNLINKED.items():
        expr, p = _link(settings, entity, "r", f"link_unlinked_{entity}")
        col = lambda c: c if "(" in c else f"r.{c}"
        parts.append(
            UNLINKED_BRANCH.replace("{system}", ENTITIES[entity].system)
            .replace("{entity}", entity)
            .replace("{what}", what)
            .replace("{key}", col(key))
            .replace("{ref}", col(ref))
            .replace("{event}", col(event))
            .replace("{link}", expr)
        )
        params.update(p)
    if "event_issues" in con_tables:
        for entity, (table, key, order_id) in DATA_QUALITY.items():
            expr, p = _link(settings, entity, "r", f"link_dq_{entity}")
            parts.append(
                DATA_QUALITY_BRANCH.replace("{order_id}", order_id)
                .replace("{system}", ENTITIES[entity].system)
                .replace("{entity}", entity)
                .replace("{table}", table)
                .replace("{key}", key)
                .replace("{link}", expr)
            )
            params.update(p)
    expr, p = _link(settings, "order_lines", "ol", "link_orphan")
    parts.append(ORPHAN_LINES.replace("{link}", expr))
    params.update(p)
    order_expr, p = _link(settings, "orders", "o", "link_order")
    params.update(p)
    sql = BLOCKERS.replace("{branches}", "\nUNION ALL\n".join(parts)).replace("{order_link}", order_expr)
    return sql, params


def build_priority(con: duckdb.DuckDBPyConnection, policy: Policy) -> duckdb.DuckDBPyRelation:
    """Create `order_priority` (order_id, priority, priority_rule: the points behind it in words); returns it."""
    con.execute(ORDER_PRIORITY, {"tier_default": policy.tier_default})
    return con.table("order_priority")


def build_blockers(
    con: duckdb.DuckDBPyConnection, settings: Settings, policy: Policy, note_model: NoteClassifier | None = None
) -> duckdb.DuckDBPyRelation:
    """Create `note_reasons`, `order_priority` and `blockers`; returns `blockers`, one row per open blocker:
    blocker_id (stable across runs), order_id (NULL for an unlinked record), order_state, reason,
    reason_label, owner, communicate, basis (which code/rule/model gave the reason), priority, priority_rule,
    cutoff_at, cutoff_label, minutes_to_cutoff, event_at, age_minutes, source_system, source_entity,
    source_file, source_line, source_key, source_link, order_link, detail. Highest priority first.
    `note_model`: the site's trained notes model (pipeline.trained_note_model), consulted only for notes
    no note rule matches (build_note_reasons); None = the note rules only. `policy`: what policy.prepare returned
    for this connection (its run clock and policy tables are read)."""
    build_note_reasons(con, note_model)
    build_priority(con, policy)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
    sql, params = blocker_sql(settings, tables)
    params.update(
        {
            "not_released_within": policy.not_released_within_minutes,
            "label_due": policy.label_due_minutes_after_pack,
            "paperwork_due": policy.paperwork_due_minutes_before_cutoff,
            "manifest_due": policy.manifest_due_minutes_after_label,
        }
    )
    con.execute(sql, params)
    return con.table("blockers")
