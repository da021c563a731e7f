"""Cutoff assignment and the customer-promise view: safe / at_risk / needs_communication.

Two steps, both set-based DuckDB SQL over the loaded tables:

- `assign_cutoffs` gives every order the pickup it is due on (tables `pickup_calendar`, `order_cutoffs`).
  States need it (an order past its cutoff is `delayed`), so it runs first.
- `build_promise` weighs remaining work + buffer against the time left, and when an order cannot
  make (or missed) its pickup, checks the next pickup + transit days against the promised delivery
  date (table `promise`). It runs after states and blockers.

The rules are written out in docs/states.md ("Promise rule").
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from .db import insert_rows
from .policy import Policy, operating_day, prepare
from .settings import Settings

# Every order: its due cutoff. An explicit ship-by (the order's, else its earliest line's) wins;
# otherwise the first pickup of its carrier+service (an exact service entry beats '*') at or after
# the later of the order time and the start of today (site time): orders placed after today's
# pickup are due on the next one, older orders on today's.
ORDER_CUTOFFS = """
CREATE OR REPLACE TABLE order_cutoffs AS
WITH clock AS (SELECT * FROM run_clock),
-- lines without a ship-by add nothing to min(): leave them out before grouping (most lines have none)
line_ship_by AS (SELECT order_id, min(ship_by) AS ship_by FROM order_lines WHERE ship_by IS NOT NULL GROUP BY order_id),
o AS (
    SELECT o.order_id, upper(trim(o.carrier)) AS carrier, upper(trim(o.service)) AS service,
           coalesce(o.ship_by, l.ship_by) AS ship_by, greatest(coalesce(o.ordered_at, clock.day_start), clock.day_start) AS due_from
    FROM orders o CROSS JOIN clock LEFT JOIN line_ship_by l USING (order_id)
),
-- each pickup's time in words, once per calendar entry rather than once per order
calendar AS (
    SELECT c.carrier, c.service, c.pickup_at, strftime(timezone(clock.tz, c.pickup_at), '%a %d %b %H:%M') AS pickup_text
    FROM pickup_calendar c CROSS JOIN clock
),
exact AS (SELECT * FROM calendar WHERE service <> '*'),
any_service AS (SELECT * FROM calendar WHERE service = '*'),
-- the first pickup at or after due_from, of the exact service if it has one, else of '*': an as-of join per
-- kind finds the least pickup_at of that kind, as a join with every later pickup and a min() would
p AS (
    SELECT o.*, coalesce(e.pickup_at, a.pickup_at) AS pickup_at,
           CASE WHEN e.pickup_at IS NOT NULL THEN e.pickup_text ELSE a.pickup_text END AS pickup_text
    FROM o
    ASOF LEFT JOIN exact e ON e.carrier = o.carrier AND e.service = o.service AND e.pickup_at >= o.due_from
    ASOF LEFT JOIN any_service a ON a.carrier = o.carrier AND a.pickup_at >= o.due_from
)
SELECT p.order_id, p.carrier, p.service,
       coalesce(p.ship_by, p.pickup_at) AS cutoff_at,
       CASE WHEN p.ship_by IS NOT NULL THEN 'ship_by' WHEN p.pickup_at IS NOT NULL THEN 'pickup' END AS cutoff_source,
       CASE WHEN p.ship_by IS NOT NULL THEN 'ship-by ' || strftime(timezone(clock.tz, p.ship_by), '%a %d %b %H:%M') || ' (OMS)'
            WHEN p.pickup_at IS NOT NULL THEN coalesce(p.carrier, '') || ' ' || coalesce(p.service, '') || ' pickup ' || p.pickup_text
       END AS cutoff_label,
       round((epoch(coalesce(p.ship_by, p.pickup_at)) - epoch(clock.now)) / 60.0, 1) AS minutes_to_cutoff
FROM p CROSS JOIN clock
"""


def pickup_calendar(settings: Settings, now: dt.datetime, days: int, today: dt.date | None = None) -> pd.DataFrame:
    """Every carrier pickup from the operating day `today` (default: the local date of `now`) for
    `days` days: carrier, service, pickup_at, pickup_date."""
    today = today or now.astimezone(settings.tz).date()
    rows = []
    for d in range(days + 1):
        day = today + dt.timedelta(days=d)
        for c in settings.cutoffs:
            if day.weekday() in c.days:
                rows.append((c.carrier, c.service, dt.datetime.combine(day, c.pickup, settings.tz), day))
    frame = pd.DataFrame(rows, columns=["carrier", "service", "pickup_at", "pickup_date"])
    return frame


def assign_cutoffs(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime) -> duckdb.DuckDBPyRelation:
    """Create `pickup_calendar` and `order_cutoffs`; returns `order_cutoffs`: order_id, carrier,
    service, cutoff_at (NULL when no pickup is configured), cutoff_source ('ship_by' | 'pickup'),
    cutoff_label, minutes_to_cutoff (negative once passed)."""
    policy = prepare(con, settings, now)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE pickup_calendar (carrier VARCHAR, service VARCHAR, pickup_at TIMESTAMPTZ, pickup_date DATE)"
    )
    today = operating_day(policy, settings, now)
    rows = pickup_calendar(settings, now, policy.pickup_lookahead_days, today).itertuples(index=False)
    insert_rows(con, "pickup_calendar", [tuple(r) for r in rows])
    con.execute(ORDER_CUTOFFS)
    return con.table("order_cutoffs")


# Remaining work, buffer, next pickup and transit per open order, then the decision.
PROMISE = """
CREATE OR REPLACE TABLE promise AS
WITH clock AS (SELECT * FROM run_clock),
lines AS (
    SELECT order_id,
           count(*) FILTER (WHERE state NOT IN ('picked', 'packed', 'ready_for_handoff', 'handed_off', 'cancelled') AND NOT backorder)
               AS lines_to_pick
    FROM line_states GROUP BY order_id
),
blk AS (
    SELECT order_id, count(*) AS n_blockers, bool_or(communicate) AS communicate,
           nullif(array_to_string(list_sort(list_distinct(list(reason_label || ' (' || owner || ')'))), ', '), '') AS blocker_text,  -- sorted: the same text every run
           nullif(array_to_string(list_sort(list_distinct(list(reason_label || ' (' || owner || ')') FILTER (WHERE communicate))), ', '), '')
               AS communicate_text
    FROM blockers WHERE order_id IS NOT NULL GROUP BY order_id
),
base AS (
    SELECT s.order_id, s.state, s.reason AS state_reason, f.customer_id, f.promised_delivery,
           c.cutoff_at, c.cutoff_source, c.cutoff_label, c.minutes_to_cutoff, c.carrier, c.service,
           coalesce(l.lines_to_pick, 0) * $pick_per_line
             + CASE WHEN f.packed OR s.state IN ('packed', 'ready_for_handoff') THEN 0 ELSE $pack END
             + CASE WHEN f.n_ship > 0 AND f.n_labelled = f.n_ship THEN 0 ELSE $label END
             + CASE WHEN f.n_ship > 0 AND f.n_manifested = f.n_ship THEN 0 ELSE $manifest END AS work_minutes,
           coalesce(b.buffer_minutes, $buffer) AS buffer_minutes,
           coalesce(k.n_blockers, 0) AS n_blockers, coalesce(k.communicate, FALSE) AS communicate,
           k.blocker_text, k.communicate_text
    FROM order_states s
    JOIN order_facts f USING (order_id)
    LEFT JOIN order_cutoffs c USING (order_id)
    LEFT JOIN lines l USING (order_id)
    LEFT JOIN policy_buffers b ON b.customer_id = f.customer_id
    LEFT JOIN blk k USING (order_id)
),
timed AS (
    SELECT base.*,
           cutoff_at IS NOT NULL AND minutes_to_cutoff >= work_minutes AS can_make,
           clock.now + to_microseconds(CAST(greatest(work_minutes, 0) * 60000000 AS BIGINT)) AS earliest_ready
    FROM base CROSS JOIN clock
),
next_pickup AS (
    SELECT t.order_id,
           coalesce(min(p.pickup_at) FILTER (WHERE p.service <> '*'), min(p.pickup_at) FILTER (WHERE p.service = '*')) AS next_pickup_at
    FROM timed t JOIN pickup_calendar p
      ON p.carrier = t.carrier AND (p.service = t.service OR p.service = '*')
     AND p.pickup_at >= t.earliest_ready AND (t.cutoff_at IS NULL OR p.pickup_at > t.cutoff_at)
    WHERE NOT t.can_make
    GROUP BY t.order_id
),
-- transit days depend on the carrier and service only: worked out once per pair, not once per order
transit AS (
    SELECT k.carrier, k.service,
           coalesce(min(tr.days) FILTER (WHERE tr.service <> '*'), min(tr.days) FILTER (WHERE tr.service = '*'), $transit_default) AS transit_days
    FROM (SELECT DISTINCT carrier, service FROM order_cutoffs) k
    LEFT JOIN policy_transit tr ON tr.carrier = k.carrier AND (tr.service = k.service OR tr.service = '*')
    GROUP BY ALL
),
judged AS (
    SELECT t.*, n.next_pickup_at, tr.transit_days,
           CAST(timezone(clock.tz, n.next_pickup_at) AS DATE) + tr.transit_days AS next_arrival,
           strftime(timezone(clock.tz, n.next_pickup_at), '%a %d %b %H:%M') AS next_label,
           concat(CASE WHEN t.minutes_to_cutoff < 0 THEN 'missed ' ELSE 'cannot make ' END, coalesce(t.cutoff_label, '')) AS miss_text,
           CASE WHEN t.minutes_to_cutoff IS NOT NULL THEN concat(round(t.minutes_to_cutoff)::BIGINT, ' min to ', coalesce(t.cutoff_label, ''))
           END AS left_text
    FROM timed t CROSS JOIN clock LEFT JOIN next_pickup n USING (order_id)
    LEFT JOIN transit tr ON tr.carrier IS NOT DISTINCT FROM t.carrier AND tr.service IS NOT DISTINCT FROM t.service
)
SELECT order_id, state, cutoff_at, cutoff_source, cutoff_label, minutes_to_cutoff, work_minutes, buffer_minutes,
       next_pickup_at, transit_days, next_arrival, promised_delivery, n_blockers,
       CASE
         WHEN state = 'cancelled' THEN 'cancelled'
         WHEN state = 'handed_off' THEN 'handed_off'
         WHEN cutoff_at IS NULL THEN 'at_risk'
         WHEN communicate THEN 'needs_communication'
         WHEN NOT can_make AND cutoff_source = 'ship_by' THEN 'needs_communication'
         WHEN NOT can_make AND next_pickup_at IS NULL THEN 'needs_communication'
         WHEN NOT can_make AND promised_delivery IS NULL THEN 'at_risk'
         WHEN NOT can_make AND next_arrival > promised_delivery THEN 'needs_communication'
         WHEN n_blockers > 0 THEN 'at_risk'
         WHEN NOT can_make THEN 'safe'
         WHEN work_minutes = 0 THEN 'safe'
         WHEN work_minutes + buffer_minutes > minutes_to_cutoff THEN 'at_risk'
         ELSE 'safe'
       END AS promise_status,
       -- concat() builds a text in one go where a chain of || builds a string per piece. It skips a NULL
       -- piece where || gives NULL, so it is used where no piece can be NULL: past the cutoff_at IS NULL
       -- branch the cutoff's minutes and label are set (order_cutoffs sets the three together), the work,
       -- buffer and transit figures are coalesced, and below the next_pickup_at / promised_delivery IS NULL
       -- branches an order that cannot make its cutoff has both. The blocker texts keep ||.
       CASE
         WHEN state = 'cancelled' THEN state_reason
         WHEN state = 'handed_off' THEN state_reason
         WHEN cutoff_at IS NULL THEN concat('no pickup configured for carrier ', coalesce(carrier, '(blank)'), ' service ',
              coalesce(service, '(blank)'), ' and no ship-by date: add it to cutoffs: in the site file')
         WHEN communicate THEN 'customer must be told: ' || communicate_text
         WHEN NOT can_make AND cutoff_source = 'ship_by' THEN concat(miss_text, ' with ', work_minutes, ' min of work left')
         WHEN NOT can_make AND next_pickup_at IS NULL THEN concat(miss_text, '; no later pickup in the next ', $lookahead, ' days')
         WHEN NOT can_make AND promised_delivery IS NULL THEN concat(miss_text, '; next pickup ', next_label,
              ', no promised delivery date to check it against')
         WHEN NOT can_make AND next_arrival > promised_delivery THEN concat(miss_text, '; next pickup ', next_label, ' + ',
              transit_days, ' transit day(s) arrives ', strftime(next_arrival, '%a %d %b'), ', after the promised ',
              strftime(promised_delivery, '%a %d %b'))
         WHEN n_blockers > 0 AND NOT can_make THEN concat(miss_text, '; next pickup ', next_label, ' still meets the promised ',
              strftime(promised_delivery, '%a %d %b'), ', but blocked by ') || blocker_text
         WHEN n_blockers > 0 THEN 'blocked by ' || blocker_text || '; ' || left_text
         WHEN NOT can_make THEN concat(miss_text, '; next pickup ', next_label, ' + ', transit_days, ' transit day(s) arrives ',
              strftime(next_arrival, '%a %d %b'), ', by the promised ', strftime(promised_delivery, '%a %d %b'))
         WHEN work_minutes = 0 THEN concat('no work left; waits for ', cutoff_label, ' (', round(minutes_to_cutoff)::BIGINT, ' min)')
         WHEN work_minutes + buffer_minutes > minutes_to_cutoff THEN concat(work_minutes, ' min work + ', buffer_minutes,
              ' min buffer > ', left_text)
         ELSE concat(work_minutes, ' min work + ', buffer_minutes, ' min buffer fits ', left_text)
       END AS promise_reason
FROM judged
"""


def build_promise(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime) -> duckdb.DuckDBPyRelation:
    """Create `promise` (needs order_cutoffs, line_states, order_states, order_facts, blockers).

    Returns it: one row per order with promise_status (safe | at_risk | needs_communication |
    handed_off | cancelled), promise_reason, cutoff, work and buffer minutes, next pickup, transit
    days, next arrival and the promised delivery date."""
    policy: Policy = prepare(con, settings, now)
    work = policy.work_minutes
    con.execute(
        PROMISE,
        {
            "lookahead": policy.pickup_lookahead_days,
            "pick_per_line": work["pick_per_line"],
            "pack": work["pack"],
            "label": work["label"],
            "manifest": work["manifest"],
            "buffer": policy.buffer_minutes,
            "transit_default": policy.transit_default,
        },
    )
    return con.table("promise")
