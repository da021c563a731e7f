"""Cutoff assignment and the customer-promise view: safe / at_risk / needs_communication.

Two steps, both set-based DuckDB SQL over the loaded tables:

- `assign_cutoffs` gives every order the pickup it is due on (tables `pickup_calendar`, `order_cutoffs`).
  States need it (an order past its cutoff is `delayed`), so it runs first.
- `build_promise` decides each open order's promise status (table `promise`) by THE promise rule of
  docs/states.md: from the work actually left, the earliest hand-off and the first pickup that catches it;
  that pickup plus transit against the promise (promised delivery, else ship-by, else the due pickup), with
  the buffer to spare; an open blocker that must clear before the next review; a blocker the customer must
  hear about. It runs after states and blockers.

The decision itself (`PROMISE_FACTS` + `STATUS`) reads one input row per (order, moment) and the lane tables
`lane_pickups` / `lane_arrivals` (`build_lanes`), so the backtest replays exactly the same rule
(backtest.py builds its own input rows from order history and calls `decide`).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from handoff_lib.db import insert_rows
from handoff_lib.load.settings import Settings

from .calendars import load_calendars, skipped_text
from .policy import Policy, operating_day

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
    `days` days: carrier, service, pickup_at, pickup_date. A pickup of `cutoffs:` happens on its weekdays,
    but not on a day the site is closed or the carrier does not work (calendars.py)."""
    cal = load_calendars(settings)
    today = today or now.astimezone(settings.tz).date()
    rows = []
    for d in range(days + 1):
        day = today + dt.timedelta(days=d)
        for c in settings.cutoffs:
            if day.weekday() in c.days and not cal.pickup_closed(c.carrier, c.service, day):
                rows.append((c.carrier, c.service, dt.datetime.combine(day, c.pickup, settings.tz), day))
    frame = pd.DataFrame(rows, columns=["carrier", "service", "pickup_at", "pickup_date"])
    return frame


def assign_cutoffs(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, policy: Policy) -> duckdb.DuckDBPyRelation:
    """Create `pickup_calendar` and `order_cutoffs`; returns `order_cutoffs`: order_id, carrier,
    service, cutoff_at (NULL when no pickup is configured), cutoff_source ('ship_by' | 'pickup'),
    cutoff_label, minutes_to_cutoff (negative once passed). `policy`: what policy.prepare returned for this connection."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE pickup_calendar (carrier VARCHAR, service VARCHAR, pickup_at TIMESTAMPTZ, pickup_date DATE)"
    )
    today = operating_day(policy, settings, now)
    rows = pickup_calendar(settings, now, policy.pickup_lookahead_days, today).itertuples(index=False)
    insert_rows(con, "pickup_calendar", [tuple(r) for r in rows])
    con.execute(ORDER_CUTOFFS)
    return con.table("order_cutoffs")



# ------------------------------------------------------------------------------------------ lanes


def lane_key(value: object) -> str:
    """The carrier or service as lanes match it: upper-cased, trimmed, '' for none."""
    return "" if value is None else str(value).strip().upper()


def transit_for(policy: Policy, carrier: str, service: str) -> int:
    """Transit days of a lane: the exact service entry, else the carrier's '*', else transit_days_default."""
    exact = [t.days for t in policy.transit if t.carrier == carrier and t.service == service]
    anyservice = [t.days for t in policy.transit if t.carrier == carrier and t.service == "*"]
    return (exact or anyservice or [policy.transit_default])[0]


def build_lanes(
    con: duckdb.DuckDBPyConnection, settings: Settings, policy: Policy, lanes: list[tuple[str, str]], first: dt.date, last: dt.date
) -> None:
    """(Re)create, for the lanes (carrier, service as `lane_key` writes them) over the days [first, last]:

    * `lane_arrivals(carrier, service, ship_date, arrival, transit_days, note)`: a hand-off on ship_date arrives
      after the lane's transit days counted in the carrier's delivery days (calendars.py); `note` names the
      holidays and closures skipped on the way;
    * `lane_pickups(carrier, service, pickup_at, pickup_date, arrival, note, closed_note)`: the lane's pickups (the
      cutoffs entries of its exact service, else of '*') on their weekdays, except days the site is closed or the
      carrier does not work; `closed_note` names such skipped pickup days just before this pickup;
    * `lane_last_pickup(carrier, service, arrival, last_pickup_at)`: the latest pickup arriving on each date."""
    cal = load_calendars(settings)
    arrivals, pickups = [], []
    days = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
    for carrier, service in sorted(set(lanes)):
        transit = transit_for(policy, carrier, service)
        exact = [c for c in settings.cutoffs if c.carrier == carrier and c.service == service]
        entries = exact or [c for c in settings.cutoffs if c.carrier == carrier and c.service == "*"]
        closed: list[str] = []  # pickup days skipped since the last pickup of the lane
        for day in days:
            arrives, skipped = cal.arrival(carrier, service, day, transit)
            note = skipped_text([(d, why) for d, why in skipped if not why.startswith("no delivery on")])
            arrivals.append((carrier, service, day, arrives, transit, note or None))
            why = cal.pickup_closed(carrier, service, day)
            for c in sorted(entries, key=lambda c: c.pickup):
                if day.weekday() not in c.days:
                    continue
                if why:
                    closed.append(f"{day:%a %d %b} ({why})")
                    continue
                at = dt.datetime.combine(day, c.pickup, settings.tz)
                pickups.append((carrier, service, at, day, arrives, note or None, "no pickup " + ", ".join(dict.fromkeys(closed)) if closed else None))
                closed = []
    con.execute(
        """CREATE OR REPLACE TEMP TABLE lane_arrivals (
               carrier VARCHAR, service VARCHAR, ship_date DATE, arrival DATE, transit_days INTEGER, note VARCHAR)"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE lane_pickups (
               carrier VARCHAR, service VARCHAR, pickup_at TIMESTAMPTZ, pickup_date DATE, arrival DATE, note VARCHAR,
               closed_note VARCHAR)"""
    )
    _insert_frame(
        con, "lane_arrivals", pd.DataFrame(arrivals, columns=["carrier", "service", "ship_date", "arrival", "transit_days", "note"])
    )
    _insert_frame(
        con,
        "lane_pickups",
        pd.DataFrame(pickups, columns=["carrier", "service", "pickup_at", "pickup_date", "arrival", "note", "closed_note"]),
    )
    # per lane and arrival date, the last pickup arriving that day: the latest pickup that keeps a promised date
    con.execute(
        """CREATE OR REPLACE TEMP TABLE lane_last_pickup AS
           SELECT carrier, service, arrival, max(pickup_at) AS last_pickup_at FROM lane_pickups GROUP BY ALL"""
    )


def _insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    if len(frame):
        con.register("_lane_frame", frame)
        con.execute(f"INSERT INTO {table} SELECT * FROM _lane_frame")
        con.unregister("_lane_frame")


def next_review_after(settings: Settings, now: dt.datetime) -> dt.datetime:
    """The horizon of the promise rule: the site's next review time after `now` (reviews: times on review
    days the site is open, calendars.py), else now + 24 h when the site has none configured."""
    if settings.review_times:
        site = load_calendars(settings).site
        local = now.astimezone(settings.tz)
        for k in range(15):
            day = local.date() + dt.timedelta(days=k)
            if day.weekday() not in settings.review_days or site.holiday(day):
                continue
            for t in settings.review_times:
                at = dt.datetime.combine(day, t, settings.tz)
                if at > now:
                    return at
    return now + dt.timedelta(hours=24)


# ------------------------------------------------------------------------------------------ the rule

# THE promise rule (docs/states.md, "Promise rule"), on one row per (order, moment) of `{input}` with:
#   order_id, now, state, carrier, service (lane keys), work_minutes, buffer_minutes, promised_delivery,
#   ship_by, due_at (the due pickup, when the cutoff is a pickup), n_work_blockers, communicate, horizon_at.
# $continuous: the site has no pickup schedule at all (cutoffs: []): every lane hands off any time.
PROMISE_FACTS = """
WITH i AS (
    SELECT x.*,
           x.now + to_microseconds(CAST(greatest(x.work_minutes, 0) * 60000000 AS BIGINT)) AS e_at,
           -- the buffer covers the uncertainty of the work left: an order with none needs no buffer
           x.now + to_microseconds(CAST(greatest(x.work_minutes + CASE WHEN x.work_minutes > 0 THEN x.buffer_minutes ELSE 0 END, 0)
                                        * 60000000 AS BIGINT)) AS eb_at,
           coalesce(x.carrier, '') AS lane_carrier, coalesce(x.service, '') AS lane_service
    FROM {input} x
),
c AS (
    SELECT i.*, p.pickup_at AS c_pickup, p.arrival AS c_arrival, p.note AS c_note, p.closed_note AS c_closed_note
    FROM i ASOF LEFT JOIN lane_pickups p
      ON p.carrier = i.lane_carrier AND p.service = i.lane_service AND p.pickup_at >= i.e_at
),
cb AS (
    SELECT c.*, p.pickup_at AS cb_pickup
    FROM c ASOF LEFT JOIN lane_pickups p
      ON p.carrier = c.lane_carrier AND p.service = c.lane_service AND p.pickup_at >= c.eb_at
),
ld AS (  -- the latest pickup whose arrival keeps the promised delivery date
    SELECT cb.*, l.last_pickup_at AS ld_pickup
    FROM cb ASOF LEFT JOIN lane_last_pickup l
      ON l.carrier = cb.lane_carrier AND l.service = cb.lane_service AND l.arrival <= cb.promised_delivery
),
cont AS (  -- a site without a pickup schedule: hand-off any time; the last hand-off day that keeps the date
    SELECT ld.*, a.ship_date AS ld_ship_date, e.arrival AS e_arrival, e.transit_days AS lane_transit, e.note AS e_note
    FROM ld
    ASOF LEFT JOIN lane_arrivals a ON a.carrier = ld.lane_carrier AND a.service = ld.lane_service AND a.arrival <= ld.promised_delivery
    LEFT JOIN lane_arrivals e ON e.carrier = ld.lane_carrier AND e.service = ld.lane_service
     AND e.ship_date = CAST(timezone($tz, ld.e_at) AS DATE)
),
lanes AS (SELECT DISTINCT carrier, service FROM lane_pickups),
f AS (
    SELECT cont.*,
           $continuous OR l.carrier IS NOT NULL AS has_pickups,
           CASE WHEN $continuous THEN e_at ELSE c_pickup END AS catch_at,
           CASE WHEN $continuous THEN e_arrival ELSE c_arrival END AS catch_arrival,
           CASE WHEN $continuous THEN e_note ELSE c_note END AS catch_note,
           CASE WHEN $continuous THEN NULL ELSE c_closed_note END AS catch_closed_note,
           CASE WHEN $continuous THEN eb_at ELSE cb_pickup END AS catch_b_at,
           CASE WHEN $continuous THEN timezone($tz, CAST(ld_ship_date + 1 AS TIMESTAMP)) - INTERVAL 1 SECOND
                ELSE ld_pickup END AS keep_d_at
    FROM cont LEFT JOIN lanes l ON l.carrier = cont.lane_carrier AND l.service = cont.lane_service
),
b AS (
    SELECT f.*,
           CASE WHEN promised_delivery IS NOT NULL AND has_pickups THEN 'promised_delivery'
                WHEN ship_by IS NOT NULL THEN 'ship_by'
                WHEN due_at IS NOT NULL THEN 'due_pickup' END AS basis
    FROM f
)
SELECT b.*,
       CASE basis WHEN 'promised_delivery' THEN keep_d_at WHEN 'ship_by' THEN ship_by ELSE due_at END AS promise_by,
       coalesce(CASE basis WHEN 'promised_delivery' THEN catch_at <= keep_d_at WHEN 'ship_by' THEN e_at <= ship_by
                           ELSE catch_at <= due_at END, FALSE) AS keeps,
       coalesce(CASE basis WHEN 'promised_delivery' THEN catch_b_at <= keep_d_at WHEN 'ship_by' THEN eb_at <= ship_by
                           ELSE catch_b_at <= due_at END, FALSE) AS keeps_buffer,
       CASE basis WHEN 'promised_delivery' THEN keep_d_at WHEN 'ship_by' THEN ship_by ELSE due_at END
           - (eb_at - now) AS clear_by  -- the latest a blocker may clear and the work + buffer still fit
FROM b
"""

# The decision on PROMISE_FACTS' columns, first match wins (docs/states.md).
STATUS = """
CASE
  WHEN state = 'cancelled' THEN 'cancelled'
  WHEN state = 'handed_off' THEN 'handed_off'
  WHEN basis IS NULL THEN 'at_risk'
  WHEN communicate THEN 'needs_communication'
  WHEN NOT keeps THEN CASE WHEN basis = 'due_pickup' THEN 'at_risk' ELSE 'needs_communication' END
  WHEN n_work_blockers > 0 AND clear_by < horizon_at THEN 'at_risk'
  WHEN basis = 'promised_delivery' AND ship_by IS NOT NULL AND eb_at > ship_by THEN 'at_risk'
  WHEN NOT keeps_buffer THEN 'at_risk'
  ELSE 'safe'
END"""


def decide(
    con: duckdb.DuckDBPyConnection, input_sql: str, out: str, settings: Settings, params: dict | None = None, reasons: bool = False
) -> None:
    """Create table `out` with the promise facts and `promise_status` of every row of `input_sql` (see
    PROMISE_FACTS for its columns), by the one promise rule; with `reasons`, also `promise_reason`.
    Needs lane_pickups / lane_arrivals / lane_last_pickup (`build_lanes`) covering the rows' moments."""
    sql = f"CREATE OR REPLACE TABLE {out} AS WITH facts AS ({PROMISE_FACTS.replace('{input}', input_sql)}) "
    sql += f"SELECT facts.*, {STATUS} AS promise_status"
    sql += f", {REASON} AS promise_reason" if reasons else ""
    sql += " FROM facts"
    con.execute(sql, {"continuous": not settings.cutoffs, "tz": settings.timezone, **(params or {})})


def _label(ts: str) -> str:
    return f"strftime(timezone($tz, {ts}), '%a %d %b %H:%M')"


def _day(d: str) -> str:
    return f"strftime({d}, '%a %d %b')"


# The reason: what the decision rests on, in words, citing only facts that hold.
_WORK = "CASE WHEN work_minutes = 0 THEN 'no work left' ELSE concat(work_minutes, ' min of work left') END"
_PROMISE_TEXT = f"""CASE basis
    WHEN 'promised_delivery' THEN concat('the promised delivery ', {_day('promised_delivery')})
    WHEN 'ship_by' THEN concat('the ship-by ', {_label('ship_by')}, ' (OMS)')
    ELSE concat('its due pickup ', {_label('due_at')}) END"""
_CATCH = f"""concat({_label('catch_at')}, coalesce(' (' || catch_closed_note || ')', ''),
    CASE WHEN basis = 'promised_delivery' AND catch_arrival IS NOT NULL
    THEN concat(' + ', coalesce(lane_transit, datediff('day', CAST(timezone($tz, catch_at) AS DATE), catch_arrival)),
                ' delivery day(s)', coalesce(' (' || catch_note || ')', ''), ' arrives ', {_day('catch_arrival')}) ELSE '' END)"""
_MISSED = "CASE WHEN due_at < now THEN concat('missed ', coalesce(cutoff_label, 'its pickup'), '; ') ELSE '' END"
REASON = f"""
CASE
  WHEN state IN ('cancelled', 'handed_off') THEN state_reason
  WHEN basis IS NULL THEN concat('no pickup configured for carrier ', coalesce(nullif(carrier, ''), '(blank)'), ' service ',
       coalesce(nullif(service, ''), '(blank)'), ' and no ship-by date: add it to cutoffs: in the site file')
  WHEN communicate THEN 'customer must be told: ' || coalesce(communicate_text, 'a blocker says so')
  WHEN NOT keeps AND basis = 'ship_by' THEN concat(CASE WHEN now > ship_by THEN 'missed' ELSE 'cannot make' END,
       ' the ship-by ', {_label('ship_by')}, ' (OMS): ', {_WORK}, ', earliest hand-off ', {_label('e_at')})
  WHEN NOT keeps AND catch_at IS NULL THEN concat({_MISSED}, {_WORK}, '; no pickup in the next ', $lookahead, ' days keeps ',
       {_PROMISE_TEXT})
  WHEN NOT keeps AND basis = 'promised_delivery' THEN concat({_MISSED}, {_WORK}, '; the first pickup it can make, ', {_CATCH},
       ', after the promised ', {_day('promised_delivery')})
  WHEN NOT keeps THEN concat('misses its due pickup ', {_label('due_at')}, ' (', {_WORK}, '); next pickup ', {_label('catch_at')},
       '; no promised delivery or ship-by date to check the customer promise against')
  WHEN n_work_blockers > 0 AND clear_by < now THEN concat('blocked by ', coalesce(blocker_text, 'an open blocker'),
       '; it must clear now: ', {_WORK}, ' and only ', {_label('promise_by')}, ' keeps ', {_PROMISE_TEXT})
  WHEN n_work_blockers > 0 THEN concat('blocked by ', coalesce(blocker_text, 'an open blocker'), '; ',
       CASE WHEN clear_by < horizon_at THEN 'must clear by ' ELSE 'the promise holds if it clears by ' END, {_label('clear_by')},
       ' (', {_WORK}, ') to leave by ', {_label('promise_by')}, ' and keep ', {_PROMISE_TEXT},
       CASE WHEN clear_by < horizon_at THEN concat(', before the next review ', {_label('horizon_at')}) ELSE '' END)
  WHEN basis = 'promised_delivery' AND ship_by IS NOT NULL AND eb_at > ship_by THEN concat(
       CASE WHEN e_at > ship_by THEN 'misses' ELSE 'has less than the buffer before' END, ' the ship-by ', {_label('ship_by')},
       ' (OMS; ', {_WORK}, CASE WHEN work_minutes > 0 THEN concat(' + ', buffer_minutes, ' min buffer') ELSE '' END,
       '); the promised delivery ', {_day('promised_delivery')}, ' still holds: ', {_CATCH})
  WHEN NOT keeps_buffer THEN concat({_MISSED}, {_WORK}, ' + ', buffer_minutes, ' min buffer runs past ', {_label('promise_by')},
       ', the last hand-off that keeps ', {_PROMISE_TEXT}, '; without the buffer: ', {_CATCH})
  WHEN work_minutes = 0 THEN concat({_MISSED}, 'ready, waits for ', {_CATCH}, '; keeps ', {_PROMISE_TEXT})
  ELSE concat({_MISSED}, {_WORK}, ' + ', buffer_minutes, ' min buffer fits: ', {_CATCH}, '; keeps ', {_PROMISE_TEXT})
END"""

# The live review's input rows: one per order, from the picture's tables.
LIVE_INPUT = """
(WITH clock AS (SELECT * FROM run_clock),
lines AS (
    SELECT order_id, count(*) FILTER (WHERE NOT is_picked AND NOT backorder AND state NOT IN ('cancelled', 'handed_off')) AS lines_to_pick
    FROM line_states GROUP BY order_id
),
blk AS (
    SELECT order_id, count(*) AS n_blockers, count(*) FILTER (WHERE blocks_work) AS n_work_blockers,
           bool_or(communicate) AS communicate,
           nullif(array_to_string(list_sort(list_distinct(list(reason_label || ' (' || owner || ')') FILTER (WHERE blocks_work))), ', '), '')
               AS blocker_text,  -- sorted: the same text every run
           nullif(array_to_string(list_sort(list_distinct(list(reason_label || ' (' || owner || ')') FILTER (WHERE communicate))), ', '), '')
               AS communicate_text
    FROM blockers WHERE order_id IS NOT NULL GROUP BY order_id
)
SELECT s.order_id, clock.now, s.state, s.reason AS state_reason, f.customer_id, c.carrier, c.service,
       coalesce(l.lines_to_pick, 0) * $pick_per_line
         + CASE WHEN f.packed THEN 0 ELSE $pack END
         + CASE WHEN f.n_ship > 0 AND f.n_labelled = f.n_ship AND f.n_cartons_unlabelled = 0 THEN 0 ELSE $label END
         + CASE WHEN f.n_ship > 0 AND f.n_manifested = f.n_ship THEN 0 ELSE $manifest END AS work_minutes,
       coalesce(pb.buffer_minutes, $buffer) AS buffer_minutes,
       f.promised_delivery, CASE WHEN c.cutoff_source = 'ship_by' THEN c.cutoff_at END AS ship_by,
       CASE WHEN c.cutoff_source = 'pickup' THEN c.cutoff_at END AS due_at,
       c.cutoff_at, c.cutoff_source, c.cutoff_label, c.minutes_to_cutoff,
       coalesce(k.n_blockers, 0) AS n_blockers, coalesce(k.n_work_blockers, 0) AS n_work_blockers,
       coalesce(k.communicate, FALSE) AS communicate, k.blocker_text, k.communicate_text,
       CAST($horizon AS TIMESTAMPTZ) AS horizon_at
FROM order_states s CROSS JOIN clock
JOIN order_facts f USING (order_id)
LEFT JOIN order_cutoffs c USING (order_id)
LEFT JOIN lines l USING (order_id)
LEFT JOIN policy_buffers pb ON pb.customer_id = f.customer_id
LEFT JOIN blk k USING (order_id))
"""

# The promise answer per order, as promise.csv of a review and the snapshot store's promise table hold it
# (columns of order_board).
ANSWER_COLUMNS = [
    "priority", "order_id", "customer_name", "state", "promise_status", "promise_reason", "cutoff_label",
    "minutes_to_cutoff", "promised_delivery", "n_blockers", "blockers",
]

PROMISE_COLUMNS = """
CREATE OR REPLACE TABLE promise AS
SELECT order_id, state, cutoff_at, cutoff_source, cutoff_label, minutes_to_cutoff, work_minutes, buffer_minutes,
       e_at AS earliest_handoff_at, catch_at AS next_pickup_at, lane_transit AS transit_days, catch_arrival AS next_arrival,
       promised_delivery, ship_by, basis AS promise_basis, promise_by, keeps, keeps_buffer,
       round((epoch(promise_by) - epoch(e_at)) / 60.0) AS slack_minutes,
       CASE WHEN n_work_blockers > 0 THEN clear_by END AS clear_by, horizon_at, n_blockers, n_work_blockers,
       promise_status, promise_reason
FROM promise_decided
"""


def build_promise(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, policy: Policy) -> duckdb.DuckDBPyRelation:
    """Create `promise` (needs order_cutoffs, line_states, order_states, order_facts, blockers) by the one
    promise rule. Returns it: one row per order with promise_status (safe | at_risk | needs_communication |
    handed_off | cancelled), promise_reason, the work and buffer minutes, the earliest hand-off, the first
    pickup that catches it (next_pickup_at) and its arrival, the promise basis and the latest hand-off that
    keeps it (promise_by), the slack, and the time a blocker must clear by. `policy`: what policy.prepare returned
    for this connection."""
    work = policy.work_minutes
    today = operating_day(policy, settings, now)
    lanes = [(lane_key(c), lane_key(s)) for c, s in con.execute("SELECT DISTINCT carrier, service FROM order_cutoffs").fetchall()]
    build_lanes(con, settings, policy, lanes, today - dt.timedelta(days=1), today + dt.timedelta(days=policy.pickup_lookahead_days))
    params = {
        "lookahead": policy.pickup_lookahead_days,
        "pick_per_line": work["pick_per_line"],
        "pack": work["pack"],
        "label": work["label"],
        "manifest": work["manifest"],
        "buffer": policy.buffer_minutes,
        "horizon": next_review_after(settings, now),
    }
    decide(con, LIVE_INPUT, "promise_decided", settings, params, reasons=True)
    con.execute(PROMISE_COLUMNS)
    con.execute("DROP TABLE promise_decided")
    return con.table("promise")
