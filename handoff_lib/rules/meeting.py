"""The cutoff meeting's three questions, from the picture tables: which trucks we will miss (the next pickups
and their verdicts), what to do first (`act_now`), and who calls the customer (`calls`).

Rules in words: docs/board.md, "What a shift lead sees first and why". Every function reads named tables of
the picture (promise, order_cutoffs, order_facts, line_states, order_lines, order_priority, blockers, drafts,
linked_*) through the connection it is given and creates its own tables beside them:

* `meeting_orders`  one row per open order: the truck it is due on (its due pickup, or the next pickup of its
  lane once that has passed), its work left in units and labour minutes per area, and its fate on that truck;
* `meeting_pickups` one row per carrier pickup in the coming hours: orders due, ready, blocked, at risk, work
  against the labour available, and the verdict (will make / at risk / will miss N orders);
* `act_now`         blockers grouped where one action clears many, ranked by what clearing them saves.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import duckdb
import pandas as pd

from handoff_lib.load.settings import Settings

from .labour import AREAS, Labour, capacity, capacity_rates, load_labour, observed_units
from .promise import pickup_calendar

VERDICTS = ("will make", "at risk", "will miss")

# One row per open order with its truck. The due pickup (order_cutoffs) while it is ahead; an explicit ship-by:
# the lane's last pickup at or before it while that is ahead; otherwise (the due pickup or ship-by has passed)
# the lane's next pickup: the order is carried over. Exact service beats '*', as for the due pickup.
MEETING_ORDERS = """
CREATE OR REPLACE TABLE meeting_orders AS
WITH cal AS (SELECT carrier, service, pickup_at FROM _meeting_calendar),
exact AS (SELECT * FROM cal WHERE service <> '*'),
any_service AS (SELECT * FROM cal WHERE service = '*'),
lines AS (
    SELECT order_id, count(*) FILTER (WHERE NOT is_picked AND NOT backorder AND state NOT IN ('cancelled', 'handed_off')) AS lines_to_pick
    FROM line_states GROUP BY order_id
),
-- only orders without an OMS order value need the sum of their lines (as order_priority does)
line_value AS (
    SELECT l.order_id, sum(l.qty * l.unit_price) AS value FROM order_lines l
    SEMI JOIN (SELECT order_id FROM order_facts WHERE order_value IS NULL) o USING (order_id) GROUP BY l.order_id
),
o AS (
    SELECT p.order_id, c.carrier, c.service, c.cutoff_source, c.cutoff_at, c.cutoff_label, p.work_minutes,
           p.earliest_handoff_at, p.n_work_blockers, p.promise_status, p.promise_reason, coalesce(pr.priority, 0) AS priority,
           f.customer_id, f.customer_name, coalesce(f.order_value, v.value) AS order_value,
           -- the same work the promise counts (promise.LIVE_INPUT), in units instead of elapsed minutes
           coalesce(l.lines_to_pick, 0) AS lines_to_pick,
           NOT coalesce(f.packed, FALSE) AS to_pack,
           NOT coalesce(f.n_ship > 0 AND f.n_labelled = f.n_ship AND f.n_cartons_unlabelled = 0, FALSE) AS to_label,
           NOT coalesce(f.n_ship > 0 AND f.n_manifested = f.n_ship, FALSE) AS to_manifest,
           CAST($now AS TIMESTAMPTZ) AS now_at,
           CASE WHEN c.cutoff_source = 'ship_by' AND c.cutoff_at >= $now THEN c.cutoff_at END AS ship_by_ahead
    FROM promise p JOIN order_cutoffs c USING (order_id) JOIN order_facts f USING (order_id)
    LEFT JOIN lines l USING (order_id) LEFT JOIN line_value v USING (order_id) LEFT JOIN order_priority pr USING (order_id)
    WHERE p.promise_status NOT IN ('handed_off', 'cancelled')
),
sb AS (
    SELECT o.*, coalesce(e.pickup_at, a.pickup_at) AS sb_pickup FROM o
    ASOF LEFT JOIN exact e ON e.carrier = o.carrier AND e.service = o.service AND e.pickup_at <= o.ship_by_ahead
    ASOF LEFT JOIN any_service a ON a.carrier = o.carrier AND a.pickup_at <= o.ship_by_ahead
),
nx AS (
    SELECT sb.*, coalesce(e.pickup_at, a.pickup_at) AS next_pickup FROM sb
    ASOF LEFT JOIN exact e ON e.carrier = sb.carrier AND e.service = sb.service AND e.pickup_at >= sb.now_at
    ASOF LEFT JOIN any_service a ON a.carrier = sb.carrier AND a.pickup_at >= sb.now_at
),
t AS (
    SELECT nx.*,
           CASE WHEN cutoff_source = 'pickup' AND cutoff_at >= now_at THEN cutoff_at
                WHEN sb_pickup >= now_at THEN sb_pickup
                ELSE next_pickup END AS pickup_at
    FROM nx
)
SELECT order_id, carrier, service, pickup_at,
       CASE WHEN pickup_at IS NOT NULL THEN concat(coalesce(carrier, ''), ' ', coalesce(service, ''), ' ',
            strftime(timezone($tz, pickup_at), '%a %H:%M')) END AS pickup,
       cutoff_at < now_at AS carried_over, cutoff_label, promise_status, promise_reason, priority, customer_id, customer_name,
       order_value, lines_to_pick, to_pack, to_label, to_manifest,
       lines_to_pick * $pick_line AS pick_min,
       CASE WHEN to_pack THEN $pack_order ELSE 0 END AS pack_min,
       CASE WHEN to_label THEN $label ELSE 0 END + CASE WHEN to_manifest THEN $manifest ELSE 0 END AS ship_min,
       work_minutes, earliest_handoff_at, n_work_blockers,
       CASE WHEN work_minutes > 0 AND earliest_handoff_at > pickup_at THEN 'too late'
            WHEN n_work_blockers > 0 THEN 'blocked'
            WHEN work_minutes = 0 THEN 'ready'
            ELSE 'to do' END AS fate,
       -- the latest a blocker may clear for the order still to make this truck
       pickup_at - to_microseconds(CAST(greatest(work_minutes, 0) * 60000000 AS BIGINT)) AS clear_by,
       CASE WHEN pickup_at IS NULL THEN 'no pickup' END AS makes_it  -- filled in by build_meeting
FROM t
"""


@dataclass
class Meeting:
    """What the meeting view computed: the labour plan and where each area's pace came from."""

    now: dt.datetime
    labour: Labour
    rates: dict
    pickups: pd.DataFrame
    curve: pd.DataFrame


def build_meeting_orders(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, labour: Labour) -> None:
    """Create `meeting_orders` (see MEETING_ORDERS)."""
    days = max(8, math.ceil(labour.lookahead_hours / 24) + 1)
    cal = pickup_calendar(settings, now, days, (now - dt.timedelta(days=1)).astimezone(settings.tz).date())
    cal["carrier"] = cal["carrier"].str.strip().str.upper()
    cal["service"] = cal["service"].str.strip().str.upper()
    calendar = cal[["carrier", "service", "pickup_at"]]  # noqa: F841 - read by DuckDB by name
    con.execute("CREATE OR REPLACE TEMP TABLE _meeting_calendar AS SELECT * FROM calendar")
    m = labour.minutes
    con.execute(MEETING_ORDERS, {"now": now, "tz": settings.timezone, "pick_line": m["pick_line"], "pack_order": m["pack_order"],
                                 "label": m["label"], "manifest": m["manifest"]})
    con.execute("DROP TABLE _meeting_calendar")


def schedule(orders: pd.DataFrame, pickups: list[dt.datetime], avail: dict[dt.datetime, dict[str, float]]) -> tuple[pd.Series, list[dict]]:
    """Which workable orders ('to do') fit the labour, pickup by pickup in time order: within a pickup highest
    priority first; an order makes it when the labour minutes of every area, counted from the first order of
    this pickup, fit what is left of that area's capacity by the pickup's deadline (`avail[pickup][area]`,
    cumulative from now). Labour taken by orders that made an earlier pickup is gone; orders that do not fit
    take none. Returns ('fits' | 'short of labour' per order index, one dict per pickup: work, available,
    used before, orders that fit / do not)."""
    result = pd.Series(pd.NA, index=orders.index, dtype="object")
    used = dict.fromkeys(AREAS, 0.0)
    per_pickup = []
    for p in pickups:
        mine = orders[(orders["pickup_at"] == p) & (orders["fate"] == "to do")].sort_values(["priority", "order_id"], ascending=[False, True])
        left = {a: max(avail[p][a] - used[a], 0.0) for a in AREAS}
        fits = pd.Series(True, index=mine.index)
        for a in AREAS:
            fits &= mine[f"{a}_min"].cumsum() <= left[a] + 1e-9
        fits = fits.cummin()  # highest priority first: once one does not fit, the ones after it wait too
        work = {a: float(mine[f"{a}_min"].sum()) for a in AREAS}
        before = dict(used)
        for a in AREAS:
            used[a] += float(mine.loc[fits, f"{a}_min"].sum())
        result[mine.index] = fits.map({True: "fits", False: "short of labour"})
        per_pickup.append({"pickup_at": p, "work": work, "left": left, "used_before": before, "fit": int(fits.sum()),
                           "short": int((~fits).sum())})
    return result, per_pickup


PICKUP_COUNTS = """
SELECT pickup_at, any_value(carrier) AS carrier, any_value(service) AS service, any_value(pickup) AS pickup,
       count(*) AS orders_due,
       count(*) FILTER (WHERE fate = 'ready') AS ready,
       count(*) FILTER (WHERE fate = 'to do') AS to_do,
       count(*) FILTER (WHERE fate = 'blocked') AS blocked,
       count(*) FILTER (WHERE fate = 'too late') AS too_late,
       count(*) FILTER (WHERE promise_status IN ('at_risk', 'needs_communication')) AS at_risk,
       count(*) FILTER (WHERE carried_over) AS carried_over,
       min(clear_by) FILTER (WHERE fate = 'blocked') AS first_clear_by
FROM meeting_orders WHERE pickup_at > $now AND pickup_at <= $until
GROUP BY pickup_at, carrier, service ORDER BY pickup_at, carrier, service
"""


def build_meeting(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime, labour: Labour | None = None) -> Meeting:
    """Create `meeting_orders` and `meeting_pickups` (one row per carrier pickup in the next
    `labour.lookahead_hours`: pickup, orders_due, ready, to_do, blocked, too_late, at_risk, carried_over,
    work and capacity in labour minutes of the binding area, usage_pct, short_of_labour, will_not_make, verdict,
    verdict_text); returns them with the capacity curve for the chart."""
    labour = labour or load_labour(settings)
    build_meeting_orders(con, settings, now, labour)
    until = now + dt.timedelta(hours=labour.lookahead_hours)
    rates = capacity_rates(labour, now, observed_units(con, labour, now))
    counts = con.execute(PICKUP_COUNTS, {"now": now, "until": until}).df()
    # one truck per pickup time and lane; the same time on two lanes is two trucks
    orders = con.execute(
        "SELECT order_id, pickup_at, carrier, service, priority, fate, pick_min, pack_min, ship_min FROM meeting_orders "
        "WHERE pickup_at > $now AND pickup_at <= $until", {"now": now, "until": until}).df()
    orders["truck"] = list(zip(orders["pickup_at"], orders["carrier"].fillna(""), orders["service"].fillna("")))
    trucks = list(zip(counts["pickup_at"], counts["carrier"].fillna(""), counts["service"].fillna("")))
    deadline = {t: pd.Timestamp(t[0]).to_pydatetime() - dt.timedelta(minutes=labour.load_minutes) for t in trucks}
    avail = {t: {a: capacity(labour, rates, a, now, deadline[t]) for a in AREAS} for t in trucks}
    fate, per = schedule(orders.assign(pickup_at=orders["truck"]), trucks, avail)
    orders["makes_it"] = fate.where(fate.notna(), orders["fate"])
    _store_makes_it(con, orders)
    rows = []
    for (_, c), p in zip(counts.iterrows(), per):
        need = {a: p["used_before"][a] + p["work"][a] for a in AREAS}
        cap = avail[p["pickup_at"]]
        usage = {a: (p["work"][a] / p["left"][a] if p["left"][a] > 0 else (math.inf if p["work"][a] > 0 else 0.0)) for a in AREAS}
        binding = max(AREAS, key=lambda a: usage[a])
        not_make = int(c["too_late"]) + p["short"]
        if not_make:
            verdict = "will miss"
            text = f"will miss {not_make:,} of {int(c['orders_due']):,} orders"
        elif c["blocked"] or usage[binding] * 100 > labour.at_risk_above_pct:
            verdict = "at risk"
            why = []
            if c["blocked"]:
                why.append(f"{int(c['blocked']):,} blocked")
            if usage[binding] * 100 > labour.at_risk_above_pct:
                why.append(f"{binding} needs {usage[binding]:.0%} of its labour")
            text = "at risk: " + ", ".join(why)
        else:
            verdict, text = "will make", "will make"
        rows.append({**c.to_dict(), "short_of_labour": p["short"], "will_not_make": not_make, "verdict": verdict, "verdict_text": text,
                     "binding_area": binding, "work_min": round(p["work"][binding]), "available_min": round(p["left"][binding]),
                     "usage_pct": None if math.isinf(usage[binding]) else round(usage[binding] * 100),
                     **{f"{a}_work_min": round(p["work"][a]) for a in AREAS}, **{f"{a}_left_min": round(p["left"][a]) for a in AREAS},
                     **{f"{a}_need_min": round(need[a]) for a in AREAS}, **{f"{a}_capacity_min": round(cap[a]) for a in AREAS},
                     "deadline_at": deadline[p["pickup_at"]]})
    pickups = pd.DataFrame(rows, columns=list(counts.columns) + ["short_of_labour", "will_not_make", "verdict", "verdict_text", "binding_area",
                                                                "work_min", "available_min", "usage_pct"]
                           + [f"{a}_{k}_min" for k in ("work", "left", "need", "capacity") for a in AREAS] + ["deadline_at"])
    con.execute("CREATE OR REPLACE TABLE meeting_pickups AS SELECT * FROM pickups ORDER BY pickup_at, carrier, service")
    curve = capacity_curve(labour, rates, now, max(deadline.values()) if deadline else now)
    return Meeting(now, labour, rates, pickups, curve)


def _store_makes_it(con: duckdb.DuckDBPyConnection, orders: pd.DataFrame) -> None:
    """meeting_orders.makes_it: the schedule's answer for orders on the judged pickups, 'later pickup' for the
    rest ('no pickup' when their lane has none)."""
    fates = orders[["order_id", "makes_it"]]  # noqa: F841 - read by DuckDB by name
    con.execute(
        """CREATE OR REPLACE TABLE meeting_orders AS
           SELECT m.* REPLACE (coalesce(f.makes_it, m.makes_it, 'later pickup') AS makes_it)
           FROM meeting_orders m LEFT JOIN fates f USING (order_id)"""
    )


def capacity_curve(labour: Labour, rates: dict, now: dt.datetime, until: dt.datetime, step_minutes: int = 10) -> pd.DataFrame:
    """Cumulative labour minutes each area can deliver from now, every `step_minutes` until `until`
    (and at `until`): minutes_from_now, at, area, capacity_min."""
    rows = []
    total = max((until - now).total_seconds() / 60, 0)
    marks = sorted({*range(0, int(total) + 1, step_minutes), total})
    for m in marks:
        at = now + dt.timedelta(minutes=m)
        for a in AREAS:
            rows.append((m, at, a, capacity(labour, rates, a, now, at)))
    return pd.DataFrame(rows, columns=["minutes_from_now", "at", "area", "capacity_min"])


# ------------------------------------------------------------------------------------------ act now

# How blockers group into one action (docs/board.md, "Act now"): one SKU short at one location is one
# replenishment, one account is one credit call, one carrier's labels are one print run. Reasons not listed
# here are one action per source record.
GROUP_BY = {
    "short_pick": "location_sku",
    "replenishment": "location_sku",
    "allocation_short": "sku",
    "unknown_sku": "sku",
    "credit_hold": "customer",
    "customer_request": "customer",
    "substitution": "customer",
    "label_missing": "carrier",
    "manifest_missing": "carrier",
    "not_released": "pickup",
    "packing_supplies": "reason",
}

# the open work blockers of orders, each with the group (reason, group_key) one action clears; the act-now ranking
# and the owner queues (owners.py) both start from it
ACT_NOW_KEYED = """
WITH g AS (SELECT * FROM _act_group_by),
tasks AS (SELECT task_id, any_value(sku) AS sku, any_value(location) AS location FROM linked_pick_tasks GROUP BY task_id),
b AS (
    SELECT b.*, coalesce(g.kind, 'record') AS kind,
           coalesce(t.sku, ol.sku) AS sku, t.location, f.customer_id, f.customer_name, m.carrier, m.service, m.pickup,
           m.pickup_at, m.fate, m.clear_by, m.order_value, m.earliest_handoff_at
    FROM blockers b
    LEFT JOIN g ON g.reason = b.reason
    LEFT JOIN tasks t ON b.source_entity = 'pick_tasks' AND t.task_id = b.source_key
    LEFT JOIN order_lines ol ON b.source_entity = 'order_lines' AND ol._file = b.source_file AND ol._line = b.source_line
    LEFT JOIN order_facts f ON f.order_id = b.order_id
    LEFT JOIN meeting_orders m ON m.order_id = b.order_id
    WHERE b.blocks_work AND b.order_id IS NOT NULL
),
keyed AS (
    SELECT b.*,
           CASE kind WHEN 'location_sku' THEN CASE WHEN sku IS NULL THEN source_entity || ' ' || source_key
                                                  ELSE concat(coalesce(location, '?'), ' ', sku) END
                     WHEN 'sku' THEN coalesce(sku, source_key)
                     WHEN 'customer' THEN coalesce(customer_id, order_id)
                     WHEN 'carrier' THEN concat(coalesce(carrier, '?'), ' ', coalesce(service, ''))
                     WHEN 'pickup' THEN coalesce(pickup, 'no pickup')
                     WHEN 'reason' THEN reason
                     ELSE source_entity || ' ' || source_key END AS group_key
    FROM b
)
"""

ACT_NOW = ACT_NOW_KEYED + """,
-- an order is saved by clearing a group when every open work blocker it has is in that group
order_groups AS (SELECT order_id, count(DISTINCT reason || '|' || group_key) AS n_groups FROM keyed GROUP BY order_id),
per_order AS (
    SELECT k.reason, k.group_key, k.order_id, any_value(k.kind) AS kind, any_value(k.reason_label) AS reason_label,
           any_value(k.owner) AS owner, max(k.priority) AS priority, any_value(k.order_value) AS order_value,
           any_value(k.pickup) AS pickup, any_value(k.pickup_at) AS pickup_at, any_value(k.clear_by) AS clear_by,
           any_value(k.fate) AS fate, any_value(k.sku) AS sku, any_value(k.location) AS location,
           any_value(k.customer_name) AS customer_name, any_value(k.customer_id) AS customer_id, any_value(k.carrier) AS carrier,
           count(*) AS n_records,
           -- the example: the order's most urgent record, ties broken by blocker_id, so every run shows the same one
           arg_max(k.blocker_id, (k.priority, k.blocker_id)) AS example_id,
           arg_max(k.source_link, (k.priority, k.blocker_id)) AS source_link, arg_max(k.detail, (k.priority, k.blocker_id)) AS detail,
           og.n_groups = 1 AS only_this,
           coalesce(k.pickup_at > $now AND k.pickup_at <= $until AND k.fate = 'blocked', FALSE) AS on_coming_pickup
    FROM keyed k JOIN order_groups og USING (order_id)
    GROUP BY k.reason, k.group_key, k.order_id, og.n_groups, k.pickup_at, k.fate
)
SELECT reason, group_key, any_value(kind) AS kind, any_value(reason_label) AS reason_label, any_value(owner) AS owner,
       count(DISTINCT order_id) AS orders_held,
       count(DISTINCT order_id) FILTER (WHERE on_coming_pickup AND only_this) AS orders_saved,
       -- summed as exact decimals: a DOUBLE sum depends on the order the threads add in, and its rounding could flip
       CAST(round(coalesce(sum(CAST(order_value AS DECIMAL(18, 4))) FILTER (WHERE on_coming_pickup AND only_this), 0)) AS BIGINT)
           AS value_saved,
       CAST(round(coalesce(sum(CAST(order_value AS DECIMAL(18, 4))), 0)) AS BIGINT) AS value_held,
       max(priority) AS top_priority,
       CAST(floor(min((epoch(clear_by) - epoch(CAST($now AS TIMESTAMPTZ))) / 60) FILTER (WHERE on_coming_pickup)) AS BIGINT) AS minutes_left,
       min(pickup_at) FILTER (WHERE on_coming_pickup) AS first_pickup_at,
       arg_min(pickup, pickup_at) FILTER (WHERE on_coming_pickup) AS first_pickup,
       CAST(sum(n_records) AS BIGINT) AS records,
       -- what the group is about, only where it is one thing: the SKU and location, the account, the carrier
       CASE WHEN any_value(kind) IN ('location_sku', 'sku') THEN any_value(sku) END AS sku,
       CASE WHEN any_value(kind) = 'location_sku' THEN any_value(location) END AS location,
       CASE WHEN any_value(kind) = 'customer' THEN any_value(customer_name) END AS customer_name,
       CASE WHEN any_value(kind) = 'customer' THEN any_value(customer_id) END AS customer_id,
       CASE WHEN any_value(kind) = 'carrier' THEN any_value(carrier) END AS carrier,
       CASE WHEN sum(n_records) = 1 OR count(DISTINCT source_link) = 1 THEN any_value(source_link)
            ELSE arg_max(source_link, (priority, example_id)) END AS source_link,
       arg_max(detail, (priority, example_id)) AS example
FROM per_order
GROUP BY reason, group_key
"""


def act_now(con: duckdb.DuckDBPyConnection, now: dt.datetime, until: dt.datetime) -> pd.DataFrame:
    """Open work-blocking blockers, grouped where one action clears many (GROUP_BY), ranked by what clearing them
    saves before the pickups up to `until`: orders saved (orders due on those pickups that can still make them,
    whose only open blockers are in this group), the order value saved, the top priority, and the minutes left to
    clear it for the first of them; then orders held. One row per action: rank, action, owner, reason, orders_saved,
    value_saved, orders_held, top_priority, minutes_left, first_pickup, source_link, example, ... Reads blockers,
    meeting_orders (build_meeting), order_facts, order_lines and linked_pick_tasks; changes nothing."""
    groups = pd.DataFrame({"reason": list(GROUP_BY), "kind": list(GROUP_BY.values())})  # noqa: F841 - read by DuckDB by name
    df = con.execute(ACT_NOW.replace("_act_group_by", "groups"), {"now": now, "until": until}).df()
    df = df.sort_values(["orders_saved", "value_saved", "top_priority", "minutes_left", "orders_held", "reason", "group_key"],
                        ascending=[False, False, False, True, False, True, True], na_position="last").reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    df.insert(1, "action", [action_text(r) for r in df.to_dict("records")])
    return df


def action_text(r: dict) -> str:
    """One line saying what to do for a group of blockers."""
    n = int(r["orders_held"])
    orders = f"{n:,} order{'s' if n != 1 else ''}"
    kind, label = r["kind"], str(r["reason_label"] or r["reason"])
    if kind == "location_sku" and r.get("sku"):
        return f"{label}: replenish {r['sku']} at {r.get('location') or 'its pick location'} ({orders})"
    if kind == "sku":
        return f"{label}: {r['group_key']} ({orders})"
    if kind == "customer":
        who = r.get("customer_name") or r["group_key"]
        return f"{label}: account {who} ({r['group_key']}, {orders})" if r.get("customer_name") else f"{label}: account {who} ({orders})"
    if kind == "carrier":
        return f"{label}: {r['group_key'].strip()} ({orders})"
    if kind == "pickup":
        return f"{label}: release the orders for {r['group_key']} ({orders})"
    if kind == "reason":
        return f"{label} ({orders})"
    return f"{label}: {r['group_key']}" + (f" ({orders})" if n > 1 else "")


def act_now_members(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Which act-now action each open work blocker belongs to: blocker_id, reason, group_key (the key of its
    `act_now` row). Blockers that do not block work, or hold no order, are in no action."""
    groups = pd.DataFrame({"reason": list(GROUP_BY), "kind": list(GROUP_BY.values())})  # noqa: F841 - read by DuckDB by name
    return con.execute(ACT_NOW_KEYED.replace("_act_group_by", "groups") + " SELECT DISTINCT blocker_id, reason, group_key FROM keyed").df()


def store_act_now(con: duckdb.DuckDBPyConnection, df: pd.DataFrame) -> None:
    """Keep the ranking in the picture (table `act_now`) for the board and the owner queues."""
    con.execute("CREATE OR REPLACE TABLE act_now AS SELECT * FROM df ORDER BY rank")


# ------------------------------------------------------------------------------------------ who calls

CALLS = """
SELECT m.order_id, m.customer_name, m.customer_id, m.priority, m.promise_status, m.pickup, m.makes_it, d.owners,
       m.promise_reason, d.draft
FROM meeting_orders m LEFT JOIN drafts d USING (order_id)
WHERE m.promise_status = $status
ORDER BY m.priority DESC, m.pickup_at NULLS LAST, m.order_id
"""


def calls(con: duckdb.DuckDBPyConnection, status: str = "needs_communication", limit: int | None = None) -> tuple[pd.DataFrame, int]:
    """Orders of one promise status (needs_communication: the customer must be called; at_risk), highest priority
    first, with their truck and draft note; the first `limit` and how many there are."""
    total = con.execute("SELECT count(*) FROM meeting_orders WHERE promise_status = ?", [status]).fetchone()[0]
    sql = CALLS + (" LIMIT $limit" if limit is not None else "")
    params = {"status": status, **({"limit": limit} if limit is not None else {})}
    df = con.execute(sql, params).df()
    cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'drafts'").fetchall()}
    if "held_back" in cols and con.execute("SELECT count(*) FROM drafts WHERE held_back").fetchone()[0]:
        # a stale review's drafts are held back (freshness.on_stale: hold): the meeting sees who to call, not a text to send
        df["draft"] = "(held back: this review's extracts are stale)"
    return df, int(total)
