"""Order history as one row per order, and the picture of the open orders as of given review times.

Both the backtest (which replays a site's history review by review) and the learned risk score (which
trains on that replay and scores the live review's open orders) read these tables, so they live here,
below both: the live review never imports backtest code.

* `order_history`  `bt_orders`: one row per loaded order: placed, released, ship-by deadline, hand-off,
  lines, ship-from, cancellation; why it cannot be replayed (`skip_reason`) or is not scored (`outcome`).
  Every order ends in one accounting row: nothing is dropped silently.
* `replay`         `bt_reviews`, `bt_review_rows`: one row per (review, open order) with only the facts
  known at that review: released only if released by then, gone once handed off or cancelled, and the
  deadline only once it is known (site setting `backtest.ship_by_known_from`, docs/backtest.md).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from handoff_lib.errors import HandoffError, SettingsError
from handoff_lib.load.settings import Settings

from .engines import DuckDBEngine, Engine

DEADLINES = ("latest", "earliest")  # which line's ship-by is the order's deadline
KNOWN_FROM = ("ordered", "released")  # the event from which an order's ship-by is known
SCORED = ("on time", "late: never handed off", "late: handed off after the deadline")

# One row per order. The deadline is the latest (or earliest) line ship-by, else the order's own;
# an order is handed off when every shipment linked to it is. Skips come first, in this order.
ORDER_HISTORY = """
CREATE OR REPLACE TABLE bt_orders AS
WITH lines AS (
    SELECT order_id, count(*) AS n_lines, CAST(sum(qty) AS BIGINT) AS units, sum(qty * unit_price) AS line_value,
           max(ship_by) AS latest_ship_by, min(ship_by) AS earliest_ship_by,
           arg_min(ship_from, line_no) AS ship_from, count(DISTINCT ship_from) AS n_ship_from
    FROM order_lines GROUP BY order_id
),
ship AS (
    SELECT order_id, count(*) AS n_ship, count(handed_off_at) AS n_handed, max(handed_off_at) AS last_handed_off
    FROM linked_shipments WHERE link_status = 'linked' GROUP BY order_id
),
o AS (
    SELECT o.order_id, o.customer_id, o.ordered_at, o.released_at, o.release_status, o.cancelled_at, o.promised_delivery,
           upper(trim(o.carrier)) AS carrier, upper(trim(o.service)) AS service,
           coalesce(CASE WHEN $deadline = 'latest' THEN l.latest_ship_by ELSE l.earliest_ship_by END, o.ship_by) AS deadline,
           CASE WHEN s.n_ship > 0 AND s.n_handed = s.n_ship THEN s.last_handed_off END AS handed_off_at,
           l.order_id IS NOT NULL AS has_lines, coalesce(l.n_lines, 0) AS n_lines, coalesce(l.units, 0) AS units,
           coalesce(o.order_value, l.line_value) AS order_value, coalesce(l.ship_from, '(none)') AS ship_from,
           coalesce(l.n_ship_from, 0) AS n_ship_from, o._line
    FROM orders o LEFT JOIN lines l USING (order_id) LEFT JOIN ship s USING (order_id)
),
judged AS (
    SELECT *,
           CASE WHEN NOT has_lines THEN 'no items'
                WHEN released_at IS NULL THEN 'missing approval'
                WHEN deadline IS NULL THEN 'no ship-by deadline'
                WHEN handed_off_at < released_at THEN 'hand-off before approval'
           END AS skip_reason
    FROM o
)
SELECT *,
       CASE WHEN skip_reason IS NOT NULL THEN 'skipped: ' || skip_reason
            WHEN deadline < $period_start THEN 'outside the period: due before it'
            WHEN deadline >= $period_end THEN 'outside the period: due after it'
            WHEN release_status = 'cancelled' OR cancelled_at IS NOT NULL THEN 'not scored: cancelled'
            WHEN handed_off_at IS NULL THEN 'late: never handed off'
            WHEN handed_off_at > deadline THEN 'late: handed off after the deadline'
            ELSE 'on time'
       END AS outcome,
       skip_reason IS NULL AND (handed_off_at IS NULL OR handed_off_at > deadline) AS late
FROM judged
ORDER BY _line
"""

ACCOUNTING = """
WITH n AS (SELECT outcome, count(*) AS orders FROM bt_orders GROUP BY outcome)
SELECT split_part(outcome, ':', 1) AS category, outcome, orders, round(100.0 * orders / sum(orders) OVER (), 2) AS share_pct
FROM n
ORDER BY list_position(['skipped', 'outside the period', 'not scored', 'late', 'on time'], split_part(outcome, ':', 1)), outcome
"""

# The as-of picture of a batch of reviews. An order is open at a review when it has been placed, its
# deadline is still ahead, and it was not handed off (or cancelled) by then. Only facts known at the
# review leave this query: a release after the review is NULL here, and so is the deadline (with the
# minutes left to it) while it is not known yet ($known_from = 'released': it is set at release). The
# hand-off time and the outcome stay behind. (Being open at a review uses the true deadline: an order
# whose deadline is set at release cannot pass it before release, so no rule learns anything from that.)
REVIEW_ROWS = """
WITH a AS (
    SELECT r.review_at, o.*, o.released_at <= r.review_at AS released_by_now,
           $known_from = 'ordered' OR o.released_at <= r.review_at AS deadline_known
    FROM {reviews} r
    JOIN bt_orders o ON o.ordered_at <= r.review_at AND r.review_at < o.deadline
    WHERE o.skip_reason IS NULL
      AND NOT coalesce(o.handed_off_at <= r.review_at, FALSE)
      AND NOT coalesce(o.cancelled_at <= r.review_at, FALSE)
)
SELECT review_at, order_id, customer_id, ship_from, n_ship_from, n_lines, units, order_value,
       ordered_at, CASE WHEN released_by_now THEN released_at END AS released_at,
       CASE WHEN deadline_known THEN deadline END AS deadline, promised_delivery,
       CASE WHEN deadline_known THEN (epoch(deadline) - epoch(review_at)) / 60.0 END AS minutes_left, carrier, service,
       deadline_known
FROM a
"""

REVIEW_ROWS_DDL = """
CREATE OR REPLACE TABLE bt_review_rows (
    review_at TIMESTAMPTZ, order_id VARCHAR, customer_id VARCHAR, ship_from VARCHAR, n_ship_from BIGINT, n_lines BIGINT,
    units BIGINT, order_value DOUBLE, ordered_at TIMESTAMPTZ, released_at TIMESTAMPTZ, deadline TIMESTAMPTZ,
    promised_delivery DATE, minutes_left DOUBLE, carrier VARCHAR, service VARCHAR, deadline_known BOOLEAN)
"""


def ship_by_known_from(settings: Settings) -> str:
    """`backtest.ship_by_known_from` of the site: 'ordered' (default: the ship-by is known from the order on)
    or 'released' (it is set when the order is released, e.g. at payment approval)."""
    raw = settings.raw.get("backtest") or {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{settings.where('backtest')}: backtest: must be a mapping, e.g. {{ship_by_known_from: released}}")
    value = str(raw.get("ship_by_known_from", "ordered")).strip().lower()
    if value not in KNOWN_FROM:
        raise SettingsError(
            f"{settings.where('backtest', 'ship_by_known_from')}: backtest.ship_by_known_from must be one of "
            f"{', '.join(KNOWN_FROM)}, not {raw.get('ship_by_known_from')!r}"
        )
    return value


def period_bounds(settings: Settings, date_from: dt.date, date_to: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start of date_from, start of the day after date_to) in site time."""
    if date_to < date_from:
        raise HandoffError(f"--to {date_to} is before --from {date_from}")
    start = dt.datetime.combine(date_from, dt.time(0), settings.tz)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(0), settings.tz)
    return start, end


def order_history(
    con: duckdb.DuckDBPyConnection, settings: Settings, date_from: dt.date, date_to: dt.date, deadline: str = "latest"
) -> pd.DataFrame:
    """Create `bt_orders` (one row per order, its skip reason and outcome) from the loaded, linked extracts;
    returns the accounting: orders per outcome, which adds up to every order read."""
    if deadline not in DEADLINES:
        raise HandoffError(f"deadline must be one of {', '.join(DEADLINES)}, not {deadline!r}")
    start, end = period_bounds(settings, date_from, date_to)
    con.execute(ORDER_HISTORY, {"deadline": deadline, "period_start": start, "period_end": end})
    acc = con.execute(ACCOUNTING).df()
    total = int(con.execute("SELECT count(*) FROM orders").fetchall()[0][0])
    if int(acc["orders"].sum()) != total:  # the promise of this module: every order accounted for once
        raise HandoffError(f"internal error: {int(acc['orders'].sum())} orders accounted for, {total} read")
    return acc


def review_times(settings: Settings, date_from: dt.date, date_to: dt.date, times: tuple[dt.time, ...]) -> list[dt.datetime]:
    """Every review instant from date_from to date_to at `times` (site time), on the site's review days."""
    if not times:
        raise HandoffError("no review times: give --reviews, e.g. 09:00,12:00,16:00")
    out = []
    day = date_from
    while day <= date_to:
        if day.weekday() in settings.review_days:
            out += [dt.datetime.combine(day, t, settings.tz) for t in sorted(times)]
        day += dt.timedelta(days=1)
    return out


def replay(
    con: duckdb.DuckDBPyConnection, settings: Settings, reviews: list[dt.datetime], batch: int = 21, progress: bool = True,
    engine: Engine | None = None,
) -> int:
    """Create `bt_reviews` and `bt_review_rows` (needs `bt_orders`): the as-of picture of every open order at
    every review. Returns the number of rows. Runs on `engine` (default: DuckDB on `con`, in batches of
    reviews under a progress bar); on another engine (Spark) in one pass there, the rows then copied back
    into `con` for the promise decision and the learned score (docs/store.md)."""
    from tqdm.auto import tqdm

    known_from = ship_by_known_from(settings)
    engine = engine or DuckDBEngine(con)
    con.execute("CREATE OR REPLACE TABLE bt_reviews (review_at TIMESTAMPTZ)")
    con.executemany("INSERT INTO bt_reviews VALUES (?)", [(r,) for r in reviews])
    if not runs_on(engine, con):
        engine.put("bt_orders", con.sql("SELECT * FROM bt_orders").to_arrow_table())
        engine.put("bt_reviews", con.sql("SELECT * FROM bt_reviews").to_arrow_table())
        engine.create("bt_review_rows", REVIEW_ROWS.format(reviews="bt_reviews"), {"known_from": known_from})
        copy_back(con, engine, "bt_review_rows", REVIEW_ROWS_DDL)
        return int(con.execute("SELECT count(*) FROM bt_review_rows").fetchall()[0][0])
    con.execute(REVIEW_ROWS_DDL)
    with tqdm(total=len(reviews), desc="replaying reviews", unit="review", disable=not progress) as bar:
        for i in range(0, len(reviews), batch):
            chunk = reviews[i : i + batch]
            con.execute("CREATE OR REPLACE TEMP TABLE bt_review_batch (review_at TIMESTAMPTZ)")
            con.executemany("INSERT INTO bt_review_batch VALUES (?)", [(r,) for r in chunk])
            engine.insert("bt_review_rows", REVIEW_ROWS.format(reviews="bt_review_batch"), {"known_from": known_from})
            bar.update(len(chunk))
    con.execute("DROP TABLE IF EXISTS bt_review_batch")
    return int(con.execute("SELECT count(*) FROM bt_review_rows").fetchall()[0][0])


def runs_on(engine: Engine, con: duckdb.DuckDBPyConnection) -> bool:
    """The engine runs on `con` itself (its tables are con's)."""
    return isinstance(engine, DuckDBEngine) and engine.con is con


def copy_back(con: duckdb.DuckDBPyConnection, engine: Engine, name: str, ddl: str | None = None) -> None:
    """Table `name` of another engine into `con` (with the types of `ddl` when given)."""
    rows = engine.fetch(name)  # noqa: F841 (read by DuckDB by name)
    if ddl is None:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM rows")
    else:
        con.execute(ddl)
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM rows")
