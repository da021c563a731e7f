"""Line and order states, each with a plain-language reason citing the source records behind it.

Set-based DuckDB SQL over the loaded tables (orders, order_lines, inventory, account_instructions)
and the crosswalked `linked_*` tables. Needs `order_cutoffs` (promise.assign_cutoffs) for `delayed`.
The model (states, meaning, precedence, roll-up) is written out in docs/states.md.

Tables created:
- `order_facts`: one row per order: effective ship-complete and substitution instructions, open holds,
  carton and shipment counts, cutoff.
- `line_states`: one row per order line: state, reason, the facts behind it, `backorder` (an
  unallocated line of a partial-allowed order, left out of the roll-up) and `rollup_rank`.
- `order_states`: one row per order: state (its least advanced line), reason, line counts.
"""

from __future__ import annotations

import duckdb

from handoff_lib.db import insert_rows
from handoff_lib.load.settings import Settings

from .policy import Policy

# Roll-up order: an order takes the state of its lowest-ranked line. Exceptions first, then the
# progress states from least to most advanced. (state, meaning) - docs/states.md repeats these.
STATES: tuple[tuple[str, str], ...] = (
    ("held", "an open hold, or a ship-complete order waiting for an unallocated line"),
    ("short", "a pick task closed short and nothing is open to pick the rest"),
    ("substituted", "the WMS picked another SKU although the line or the account does not allow substitutes"),
    ("delayed", "past its cutoff and not handed off"),
    ("not_released", "the OMS has not released the order to the warehouse"),
    ("released", "released, but not pickable yet: not allocated, unknown SKU, or no task and no stock"),
    ("pickable", "released and allocated, with an open pick task or enough pickable stock"),
    ("picked", "picked in full"),
    ("packed", "picked and packed, label or manifest still missing"),
    ("ready_for_handoff", "packed, labelled and manifested: waits for the carrier"),
    ("handed_off", "every shipment of the order handed to the carrier"),
    ("cancelled", "cancelled in the OMS"),
)
STATE_NAMES = tuple(s for s, _ in STATES)

ORDER_FACTS = """
CREATE OR REPLACE TABLE order_facts AS
WITH clock AS (SELECT * FROM run_clock),
instr AS (
    SELECT customer_id,
           bool_or(instruction = 'ship_complete') AS ship_complete,
           bool_or(instruction = 'partial_allowed') AS partial_allowed,
           bool_or(instruction = 'no_substitutes') AS no_substitutes,
           bool_or(instruction = 'substitutes_allowed') AS substitutes_allowed
    FROM account_instructions GROUP BY customer_id
),
holds AS (
    SELECT order_id, count(*) AS n_open_holds,
           string_agg('hold ' || coalesce(hold_id, _file || ' line ' || _line) || coalesce(' ' || nullif(trim(code), ''), '')
                      || coalesce(' "' || left(nullif(trim(note), ''), 60) || '"', ''), '; ' ORDER BY placed_at, hold_id) AS hold_text
    FROM linked_holds WHERE link_status = 'linked' AND released_at IS NULL GROUP BY order_id
),
cov AS (
    SELECT order_id, count(*) AS n_cartons_packed, count(*) FILTER (WHERE shipment_id IS NULL) AS n_cartons_unshipped,
           count(*) FILTER (WHERE label_created_at IS NULL) AS n_cartons_unlabelled
    FROM carton_status GROUP BY order_id
),
cartons AS (
    SELECT order_id,
           count(*) FILTER (WHERE status = 'packed') AS n_packed,
           count(*) FILTER (WHERE coalesce(status, 'open') = 'open') AS n_open_cartons,  -- an unreadable status: not known packed
           count(*) FILTER (WHERE status = 'exception') AS n_exceptions,
           max(event_at) FILTER (WHERE status = 'packed') AS last_packed_at,
           arg_max(carton_id, {t: event_at, c: carton_id}) FILTER (WHERE status = 'packed') AS last_carton,  -- ties: the higher id
           -- an ordered string_agg sorts per group and is slow at scale: sort each order's small list instead
           -- (the NULL filter keeps string_agg's meaning: NULLs skipped, NULL when nothing is left)
           array_to_string(list_sort(list(carton_id) FILTER (WHERE status = 'packed' AND carton_id IS NOT NULL)), ', ')
               AS packed_cartons
    FROM linked_pack_events WHERE link_status = 'linked' AND coalesce(status, 'open') <> 'cancelled' GROUP BY order_id
),
ships AS (
    SELECT order_id, count(*) AS n_ship, count(label_created_at) AS n_labelled, count(manifested_at) AS n_manifested,
           count(handed_off_at) AS n_handed, max(handed_off_at) AS last_handed_at,
           -- as packed_cartons above: sorted lists, not ordered string_aggs
           array_to_string(list_sort(list(shipment_id) FILTER (WHERE shipment_id IS NOT NULL)), ', ') AS shipment_ids,
           array_to_string(list_sort(list(tracking_no) FILTER (WHERE tracking_no IS NOT NULL)), ', ') AS tracking_nos
    FROM linked_shipments WHERE link_status = 'linked' GROUP BY order_id
),
cases AS (
    SELECT order_id, count(*) FILTER (WHERE closed_at IS NULL) AS n_open_cases
    FROM linked_cases WHERE link_status = 'linked' GROUP BY order_id
)
SELECT o.order_id, o.customer_id, o.customer_name, o.priority AS tier,
       -- release as of the review: an unreadable status is read from released_at (set = released), and a release
       -- stamped after the review has not happened yet (docs/states.md)
       CASE WHEN o.release_status = 'cancelled' THEN 'cancelled'
            WHEN coalesce(o.released_at > clock.now, FALSE) THEN 'not_released'
            WHEN o.release_status IS NULL THEN CASE WHEN o.released_at IS NOT NULL THEN 'released' ELSE 'not_released' END
            ELSE o.release_status END AS release_status,
       o.release_status IS NULL AS release_status_unreadable, o.ordered_at, o.released_at,
       o.promised_delivery, o.carrier, o.service, o.order_value, o._file, o._line,
       o.release_status = 'cancelled' OR o.cancelled_at IS NOT NULL AS cancelled, o.cancelled_at,
       CASE WHEN coalesce(o.ship_complete, FALSE) OR coalesce(i.ship_complete, FALSE) THEN TRUE
            WHEN o.ship_complete IS NOT NULL OR coalesce(i.partial_allowed, FALSE) THEN FALSE
            ELSE $ship_complete_default END AS ship_complete,
       CASE WHEN coalesce(o.ship_complete, FALSE) THEN 'order flag (OMS)'
            WHEN coalesce(i.ship_complete, FALSE) THEN 'account instruction (CRM)'
            WHEN coalesce(i.partial_allowed, FALSE) THEN 'account instruction partial allowed (CRM)'
            WHEN o.ship_complete IS NOT NULL THEN 'order flag (OMS)'
            ELSE 'site default (policy.ship_complete_default)' END AS ship_complete_source,
       coalesce(i.no_substitutes, FALSE) AS no_substitutes, coalesce(i.substitutes_allowed, FALSE) AS substitutes_allowed,
       coalesce(h.n_open_holds, 0) AS n_open_holds, h.hold_text,
       coalesce(c.n_packed, 0) AS n_packed, coalesce(c.n_open_cartons, 0) AS n_open_cartons, coalesce(c.n_exceptions, 0) AS n_exceptions,
       c.last_packed_at, c.last_carton, c.packed_cartons,
       coalesce(s.n_ship, 0) AS n_ship, coalesce(s.n_labelled, 0) AS n_labelled, coalesce(s.n_manifested, 0) AS n_manifested,
       coalesce(s.n_handed, 0) AS n_handed, s.last_handed_at, s.shipment_ids, s.tracking_nos,
       coalesce(k.n_open_cases, 0) AS n_open_cases,
       coalesce(s.n_ship, 0) > 0 AND s.n_handed = s.n_ship AS handed_off,
       coalesce(c.n_packed, 0) > 0 AND c.n_open_cartons = 0 AND c.n_exceptions = 0 AS packed,
       coalesce(c.n_packed, 0) > 0 AND c.n_open_cartons = 0 AND c.n_exceptions = 0
           AND coalesce(s.n_ship, 0) > 0 AND s.n_labelled = s.n_ship AND s.n_manifested = s.n_ship
           AND coalesce(cv.n_cartons_unlabelled, 0) = 0 AS ready,
       coalesce(cv.n_cartons_unshipped, 0) AS n_cartons_unshipped, coalesce(cv.n_cartons_unlabelled, 0) AS n_cartons_unlabelled,
       co.cutoff_at, co.cutoff_label, co.minutes_to_cutoff, co.cutoff_at < clock.now AS past_cutoff
FROM orders o
CROSS JOIN clock
LEFT JOIN instr i USING (customer_id)
LEFT JOIN holds h USING (order_id)
LEFT JOIN cartons c USING (order_id)
LEFT JOIN ships s USING (order_id)
LEFT JOIN cov cv USING (order_id)
LEFT JOIN cases k USING (order_id)
LEFT JOIN order_cutoffs co USING (order_id)
"""

# One row per packed carton and the shipment that carries it. A shipment citing the carton carries it;
# shipments citing the order or a pick ticket carry the cartons no shipment cites, one each in packing
# order - or all of them when the order's carrier is in policy.consolidated_carriers (one freight BOL).
CARTON_STATUS = """
CREATE OR REPLACE TABLE carton_status AS
WITH packed AS (
    SELECT p.order_id, p.carton_id, p.event_at AS packed_at, p._file, p._line
    FROM linked_pack_events p WHERE p.link_status = 'linked' AND p.status = 'packed'
),
ships AS (SELECT * FROM linked_shipments WHERE link_status = 'linked'),
direct AS (
    SELECT k.*, arg_min(s.shipment_id, s.shipment_id) AS shipment_id
    FROM packed k LEFT JOIN ships s
      ON s.order_id = k.order_id AND s.link_kind = 'carton' AND s.link_key = upper(trim(k.carton_id))
    GROUP BY ALL
),
uncited AS (
    SELECT d.*, row_number() OVER (PARTITION BY d.order_id ORDER BY d.packed_at, d.carton_id) AS n
    FROM direct d WHERE d.shipment_id IS NULL
),
order_level AS (
    SELECT s.order_id, s.shipment_id,
           row_number() OVER (PARTITION BY s.order_id ORDER BY s.label_created_at NULLS LAST, s.shipment_id) AS n
    FROM ships s WHERE s.link_kind IS DISTINCT FROM 'carton'
),
consolidated AS (
    SELECT o.order_id FROM orders o WHERE upper(trim(o.carrier)) IN (SELECT carrier FROM policy_consolidated)
),
assigned AS (
    SELECT d.order_id, d.carton_id, d.packed_at, d._file, d._line, d.shipment_id FROM direct d WHERE d.shipment_id IS NOT NULL
    UNION ALL
    SELECT u.order_id, u.carton_id, u.packed_at, u._file, u._line, ol.shipment_id
    FROM uncited u LEFT JOIN order_level ol
      ON ol.order_id = u.order_id
     AND (ol.n = u.n OR (ol.n = 1 AND u.order_id IN (SELECT order_id FROM consolidated)))
)
SELECT a.*, s.label_created_at, s.manifested_at, s.handed_off_at
FROM assigned a LEFT JOIN ships s USING (shipment_id)
"""

# One row per order line: the pick, stock and allocation facts, then the state and its reason.
LINE_STATES = """
CREATE OR REPLACE TABLE line_states AS
WITH clock AS (SELECT * FROM run_clock),
-- a task without a line number belongs to its order's first line of that SKU; only those tasks' (order, SKU)
-- pairs are looked up, rather than grouping every order line
line_by_sku AS (
    SELECT l.order_id, l.sku, min(l.line_no) AS line_no FROM order_lines l
    SEMI JOIN (SELECT order_id, sku FROM linked_pick_tasks WHERE line_no IS NULL) t ON t.order_id = l.order_id AND t.sku = l.sku
    GROUP BY ALL
),
tasks AS (
    SELECT t.*, coalesce(t.line_no, s.line_no) AS line_key,
           t.status = 'short' OR (t.status = 'picked' AND coalesce(t.qty_picked, 0) < t.qty_required) AS is_short,
           coalesce(t.status, 'open') IN ('open', 'in_progress') AS is_open,  -- an unreadable status: the work is not known done
           t.substituted_sku IS NOT NULL AND upper(trim(t.substituted_sku)) <> upper(trim(t.sku)) AS is_sub
    FROM linked_pick_tasks t
    LEFT JOIN line_by_sku s ON t.line_no IS NULL AND s.order_id = t.order_id AND s.sku = t.sku
    WHERE t.link_status = 'linked' AND coalesce(t.status, 'open') <> 'cancelled'
),
task_totals AS (
    SELECT order_id, line_key AS line_no, count(*) AS n_tasks,
           count(*) FILTER (WHERE is_open) AS n_open, count(*) FILTER (WHERE is_short) AS n_short,
           sum(coalesce(qty_picked, 0))::BIGINT AS qty_picked, sum(qty_required)::BIGINT AS qty_required,
           -- sorting each line's small list beats an ordered string_agg; min(x) is arg_min(x, x)
           array_to_string(list_sort(list(task_id) FILTER (WHERE task_id IS NOT NULL)), ', ') AS task_ids
    FROM tasks GROUP BY ALL
),
-- the short / open / substituting task of a line: aggregated over the few flagged tasks only (about one
-- task in seven), since carrying these seven filtered aggregates through every line's group is slow
task_flags AS (
    SELECT order_id, line_key AS line_no,
           min(task_id) FILTER (WHERE is_short) AS short_task,
           arg_min(location, task_id) FILTER (WHERE is_short) AS short_location,
           min(task_id) FILTER (WHERE is_open) AS open_task,
           arg_min(status, task_id) FILTER (WHERE is_open) AS open_status,
           arg_min(location, task_id) FILTER (WHERE is_open) AS open_location,
           min(task_id) FILTER (WHERE is_sub) AS sub_task,
           arg_min(substituted_sku, task_id) FILTER (WHERE is_sub) AS sub_sku
    FROM tasks WHERE is_short OR is_open OR is_sub GROUP BY ALL
),
task_agg AS (SELECT t.*, f.* EXCLUDE (order_id, line_no) FROM task_totals t LEFT JOIN task_flags f USING (order_id, line_no)),
inv AS (
    SELECT sku, sum(on_hand)::BIGINT AS on_hand,
           sum(on_hand - coalesce(on_hold, 0))::BIGINT AS pickable_qty,
           sum(on_hand - coalesce(allocated, 0) - coalesce(on_hold, 0))::BIGINT AS free_qty,
           arg_max(location, {q: on_hand - coalesce(on_hold, 0), l: location}) AS best_location  -- ties: the higher location
    FROM inventory GROUP BY sku
),
-- per order: its unallocated lines. Only a line allocated below its quantity in a released order can be
-- one, so only those few lines are matched to their tasks here (rather than re-reading every line's facts)
alloc_candidates AS (
    SELECT l.order_id, l.line_no, l.sku, l.qty, l.allocated_qty, l._file, l._line
    FROM order_lines l JOIN order_facts f USING (order_id)
    WHERE f.release_status = 'released' AND coalesce(l.allocated_qty, l.qty) < l.qty
),
-- (read from linked_pick_tasks, not from `tasks`: a third reader would make DuckDB buffer all of `tasks`)
alloc_candidate_tasks AS (
    SELECT c.order_id, c.line_no, sum(coalesce(t.qty_picked, 0))::BIGINT AS qty_picked, sum(t.qty_required)::BIGINT AS qty_required
    FROM alloc_candidates c JOIN linked_pick_tasks t ON t.order_id = c.order_id
    LEFT JOIN line_by_sku s ON t.line_no IS NULL AND s.order_id = t.order_id AND s.sku = t.sku
    WHERE t.link_status = 'linked' AND coalesce(t.status, 'open') <> 'cancelled' AND coalesce(t.line_no, s.line_no) = c.line_no  -- as in `tasks`
    GROUP BY ALL
),
alloc_short_lines AS (
    SELECT c.order_id,
           string_agg('line ' || c.line_no || ' ' || c.sku || ' allocated ' || coalesce(c.allocated_qty, 0) || ' of ' || c.qty
                      || ' (' || c._file || ' line ' || c._line || ')', '; ' ORDER BY c.line_no, c._line) AS short_alloc_lines
    FROM alloc_candidates c LEFT JOIN alloc_candidate_tasks t USING (order_id, line_no)
    WHERE coalesce(t.qty_required, 0) < c.qty AND coalesce(t.qty_picked, 0) < c.qty  -- as allocation_short below
    GROUP BY c.order_id
),
-- per order, once: the flags the line states need and the reasons that are the same for every line of the
-- order (cancelled, held, not released, and handed off / ready / packed for a picked line). Building these
-- texts per order rather than per line, and carrying one text instead of the facts behind it, is the same
-- result for less work: the texts read order facts only.
order_side AS (
    SELECT f.order_id, f.cancelled, f.release_status, f.ship_complete, f.no_substitutes, f.n_open_holds,
           f.handed_off AS order_handed_off, f.packed AS order_packed, f.ready AS order_ready,
           coalesce(f.past_cutoff, FALSE) AS past_cutoff,
           f.ship_complete AND a.order_id IS NOT NULL AS complete_waits,
           CASE WHEN f.cancelled THEN 'order cancelled in the OMS'
                || coalesce(' at ' || strftime(timezone(clock.tz, f.cancelled_at), '%a %d %b %H:%M'), '') END AS cancelled_reason,
           CASE WHEN f.n_open_holds > 0 THEN 'on hold: ' || f.hold_text || ' (WMS)'
                WHEN a.order_id IS NOT NULL THEN 'ship-complete order (' || f.ship_complete_source || ') waits for ' || a.short_alloc_lines
           END AS held_reason,
           CASE WHEN f.release_status = 'not_released' THEN 'order not released in the OMS (status not_released, ordered '
                || coalesce(strftime(timezone(clock.tz, f.ordered_at), '%a %d %b %H:%M'), 'at an unknown time') || ')' END
               AS not_released_reason,
           -- a picked line's progress past picking is the order's: handed off, else ready, else packed
           CASE WHEN f.handed_off THEN 'handed to ' || coalesce(f.carrier, 'the carrier') || ' at '
                     || coalesce(strftime(timezone(clock.tz, f.last_handed_at), '%a %d %b %H:%M'), '?') || ', shipment ' || f.shipment_ids
                     || ' (carrier)'
                WHEN f.ready THEN 'packed, labelled and manifested, shipment ' || f.shipment_ids
                     || coalesce(', tracking ' || f.tracking_nos, '') || ' (carrier); waits for ' || coalesce(f.cutoff_label, 'the carrier')
                WHEN f.packed THEN 'packed in carton ' || f.packed_cartons || ' (WMS)'
                     || CASE WHEN f.n_labelled = 0 THEN ', no label yet' ELSE ', labelled, not manifested (carrier)' END
           END AS packed_reason,
           CASE WHEN f.past_cutoff THEN 'missed ' || f.cutoff_label || '; ' END AS missed_cutoff  -- only a delayed line uses it
    FROM order_facts f CROSS JOIN clock LEFT JOIN alloc_short_lines a USING (order_id)
),
facts AS (
    -- an unreadable SKU or quantity (nulled by the load, listed in rejects) must not blank the line's reason: the
    -- quantity falls back to what the pick tasks ask for, and texts say what is unknown
    SELECT l.order_id, l.line_no, coalesce(l.sku, '(unreadable SKU)') AS sku, coalesce(l.qty, t.qty_required) AS qty,
           coalesce(CAST(coalesce(l.qty, t.qty_required) AS VARCHAR), '? (unreadable)') AS qty_text,
           l.allocated_qty, l.substitution_allowed, l._file, l._line, f.* EXCLUDE (order_id),
           coalesce(t.n_tasks, 0) AS n_tasks, coalesce(t.n_open, 0) AS n_open, coalesce(t.n_short, 0) AS n_short,
           coalesce(t.qty_picked, 0) AS qty_picked, coalesce(t.qty_required, 0) AS qty_required, t.task_ids,
           t.short_task, t.short_location, t.open_task, t.open_status, t.open_location, t.sub_task, t.sub_sku,
           i.sku IS NOT NULL AS sku_known, i.on_hand, i.pickable_qty, i.free_qty, i.best_location,
           coalesce(f.release_status = 'released' AND coalesce(l.allocated_qty, l.qty) < l.qty
               AND coalesce(t.qty_required, 0) < l.qty AND coalesce(t.qty_picked, 0) < l.qty, FALSE) AS allocation_short
    FROM order_lines l
    JOIN order_side f USING (order_id)
    LEFT JOIN task_agg t USING (order_id, line_no)
    LEFT JOIN inv i USING (sku)
),
flags AS (
    SELECT facts.*,
           n_tasks > 0 AND n_open = 0 AND qty_picked >= qty AS is_picked,
           n_short > 0 AND n_open = 0 AND qty_picked < qty AS is_short,
           -- the line's own flag is the most specific instruction; the account's 'no substitutes' applies to every line
           sub_sku IS NOT NULL AND (no_substitutes OR substitution_allowed = FALSE) AS sub_blocked
    FROM facts
),
progress AS (
    SELECT flags.*,
           CASE
             WHEN release_status = 'not_released' AND n_tasks = 0 THEN 'not_released'
             WHEN is_picked AND order_handed_off THEN 'handed_off'
             WHEN is_picked AND order_ready THEN 'ready_for_handoff'
             WHEN is_picked AND order_packed THEN 'packed'
             WHEN is_picked THEN 'picked'
             WHEN allocation_short OR NOT sku_known THEN 'released'
             WHEN n_open > 0 THEN 'pickable'
             WHEN n_tasks = 0 AND coalesce(allocated_qty, qty) >= qty AND coalesce(pickable_qty, 0) >= qty THEN 'pickable'
             ELSE 'released'
           END AS progress_state
    FROM flags
),
stated AS (
    SELECT progress.*,
           CASE
             WHEN cancelled THEN 'cancelled'
             WHEN order_handed_off THEN 'handed_off'  -- the most advanced milestone wins: a pickup scan means handed off
             WHEN n_open_holds > 0 OR complete_waits THEN 'held'
             WHEN is_short THEN 'short'
             WHEN sub_blocked THEN 'substituted'
             WHEN past_cutoff THEN 'delayed'
             ELSE progress_state
           END AS state
    FROM progress
),
reasoned AS (
    SELECT stated.*,
           CASE progress_state
             WHEN 'not_released' THEN not_released_reason
             WHEN 'handed_off' THEN packed_reason
             WHEN 'ready_for_handoff' THEN packed_reason
             WHEN 'packed' THEN packed_reason
             WHEN 'picked' THEN 'line ' || line_no || ' picked ' || qty_picked || ' of ' || qty_text || ', pick task ' || task_ids || ' (WMS)'
             WHEN 'pickable' THEN 'line ' || line_no || ' ' || coalesce('pick task ' || open_task || ' ' || open_status || ', ' || qty_picked
                  || ' of ' || qty_text || ' picked' || coalesce(' at ' || open_location, '') || ' (WMS)',
                  'allocated, ' || pickable_qty || ' pickable at ' || best_location || ' and more, no pick task yet (WMS)')
             WHEN 'released' THEN 'line ' || line_no || ' ' || CASE
                  WHEN allocation_short THEN sku || ' allocated ' || coalesce(allocated_qty, 0) || ' of ' || qty_text
                       || ' (' || _file || ' line ' || _line || ')'
                       || CASE WHEN ship_complete THEN '' ELSE ', partial shipment allowed: the rest can ship' END
                  WHEN NOT sku_known THEN 'SKU ' || sku || ' is not in the WMS inventory (unknown SKU)' || ' (' || _file || ' line ' || _line || ')'
                  ELSE sku || ' released, no pick task and ' || coalesce(pickable_qty, 0) || ' of ' || qty_text || ' pickable (WMS)' END
           END AS progress_reason
    FROM stated
)
SELECT order_id, line_no, sku, qty, allocated_qty, qty_picked, qty_required, n_tasks, n_open, task_ids,
       on_hand, pickable_qty, free_qty, best_location, sku_known, allocation_short, is_picked, ship_complete,
       state, progress_state,
       CASE state
         WHEN 'cancelled' THEN cancelled_reason
         WHEN 'held' THEN held_reason
         WHEN 'short' THEN 'line ' || line_no || ' short ' || qty_picked || ' of ' || qty_text || coalesce(' at ' || short_location, '')
              || ', pick task ' || short_task || ' (WMS)'
         WHEN 'substituted' THEN 'line ' || line_no || ' picked ' || sub_sku || ' instead of ' || sku || ', pick task ' || sub_task || ' (WMS); '
              || CASE WHEN no_substitutes THEN 'the account instruction says no substitutes (CRM)'
                      ELSE 'the order line does not allow substitutes (OMS)' END
         WHEN 'delayed' THEN missed_cutoff || progress_reason
         ELSE progress_reason
       END AS reason,
       allocation_short AND NOT ship_complete AND state NOT IN ('cancelled', 'handed_off') AS backorder,
       sub_sku, sub_task, short_task, short_location, is_short, sub_blocked, _file, _line
FROM reasoned
"""

# One pass over line_states per order: the deciding (lowest) roll-up rank, the line counts, the count per
# state for line_summary, and every line's (rank, line, reason) for the reason text. This replaces separate
# GROUP BYs joined back to the lines (each a hash table over a million rows); line_summary's pieces are
# written out per state in roll-up order, and concat_ws skips the states an order has no line in.
_STATE_COUNTS = ",\n".join(f"           count(*) FILTER (WHERE l.state = '{s}') AS n_{s}" for s in STATE_NAMES)
_SUMMARY_PIECES = ",\n".join(f"                  CASE WHEN n_{s} > 0 THEN n_{s} || ' {s}' END" for s in STATE_NAMES)

ORDER_STATES = """
CREATE OR REPLACE TABLE order_states AS
WITH per_order AS (
    SELECT l.order_id, min(r.rank + CASE WHEN l.backorder THEN 100 ELSE 0 END) AS rollup_rank, count(*) AS n_lines,
           count(*) FILTER (WHERE l.state NOT IN ('handed_off', 'cancelled')) AS n_open_lines,
           count(*) FILTER (WHERE l.is_picked) AS n_picked_lines,
           count(*) FILTER (WHERE NOT l.allocation_short) AS n_allocated_lines,
           count(*) FILTER (WHERE l.sku_known AND coalesce(l.pickable_qty, 0) >= l.qty - l.qty_picked) AS n_in_stock_lines,
{state_counts},
           list({'rank': r.rank + CASE WHEN l.backorder THEN 100 ELSE 0 END, 'line_no': l.line_no, 'reason': l.reason}) AS lines,
           string_agg(l.reason, '; ' ORDER BY l.line_no) FILTER (WHERE l.backorder) AS backorder_text
    FROM line_states l LEFT JOIN state_ranks r USING (state)
    GROUP BY l.order_id
),
-- the deciding lines' reasons ordered by line: sort (line, reason) pairs, keep each reason's first occurrence
-- (at its lowest line), which orders the distinct reasons by (first line, reason)
deciding AS (
    SELECT * EXCLUDE (lines),
           list_transform(list_sort(list_transform(list_filter(lines, lambda x: x.rank = rollup_rank),
                                                   lambda x: {'line_no': x.line_no, 'reason': x.reason})),
                          lambda x: x.reason) AS line_reasons
    FROM per_order
),
decided AS (
    SELECT * EXCLUDE (line_reasons),
           list_filter(line_reasons, lambda x, i: list_position(line_reasons, x) = i) AS reasons,
           nullif(concat_ws(', ',
{summary_pieces}), '') AS line_summary
    FROM deciding
)
SELECT f.order_id,
       CASE WHEN d.rollup_rank IS NULL THEN CASE WHEN f.cancelled THEN 'cancelled' WHEN f.release_status = 'not_released'
                 THEN 'not_released' ELSE 'released' END
            ELSE s.state END AS state,
       CASE WHEN d.rollup_rank IS NULL THEN 'no order lines in the extract for this order (OMS)'
            ELSE array_to_string(d.reasons[1:3], '; ')
                 || CASE WHEN len(d.reasons) > 3 THEN '; and ' || (len(d.reasons) - 3) || ' more lines' ELSE '' END
                 || CASE WHEN d.rollup_rank < 100 AND d.backorder_text IS NOT NULL THEN '; not in this shipment: ' || d.backorder_text
                         ELSE '' END
       END AS reason,
       coalesce(d.n_lines, 0) AS n_lines, coalesce(d.n_open_lines, 0) AS n_open_lines,
       coalesce(d.n_picked_lines, 0) AS n_picked_lines, coalesce(d.n_allocated_lines, 0) AS n_allocated_lines,
       coalesce(d.n_in_stock_lines, 0) AS n_in_stock_lines, d.line_summary
FROM order_facts f
LEFT JOIN decided d USING (order_id)
LEFT JOIN state_ranks s ON s.rank = d.rollup_rank % 100
""".replace("{state_counts}", _STATE_COUNTS).replace("{summary_pieces}", _SUMMARY_PIECES)


def build_states(con: duckdb.DuckDBPyConnection, settings: Settings, policy: Policy) -> duckdb.DuckDBPyRelation:
    """Create `order_facts`, `line_states` and `order_states` (needs `order_cutoffs`); returns `order_states`:
    order_id, state, reason, n_lines, n_open_lines, n_picked_lines, n_allocated_lines, n_in_stock_lines, line_summary.
    `policy`: what policy.prepare returned for this connection (its run clock and policy tables are read)."""
    con.execute("CREATE OR REPLACE TEMP TABLE state_ranks (state VARCHAR, rank INTEGER, meaning VARCHAR)")
    insert_rows(con, "state_ranks", [(s, i + 1, m) for i, (s, m) in enumerate(STATES)])
    con.execute("CREATE OR REPLACE TEMP TABLE policy_consolidated (carrier VARCHAR)")
    insert_rows(con, "policy_consolidated", [(c,) for c in policy.consolidated_carriers])
    con.execute(CARTON_STATUS)
    con.execute(ORDER_FACTS, {"ship_complete_default": policy.ship_complete_default})
    con.execute(LINE_STATES)
    con.execute(ORDER_STATES)
    return con.table("order_states")
