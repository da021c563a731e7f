"""Backtest the promise-risk rules on a site's own order history: replay it as a sequence of cutoff
reviews, each seeing only what was known at that moment, and score every warning against what
happened.

The history is read through the site mapping like any extract set (`load_history`); nothing here is
special to one source. Steps, each set-based DuckDB SQL:

1. `order_history`  one row per order (`bt_orders`): placed, released, ship-by deadline, hand-off,
   lines, ship-from, cancellation; and why an order cannot be replayed (`skip_reason`) or is not
   scored (`outcome`). Every order ends in `bt_accounting`: nothing is dropped silently.
2. `replay`         `bt_review_rows`: one row per (review, open order) as of that review, with only
   facts known by then (released if released by then; gone once handed off); then `bt_warnings`:
   which rule, at which setting, warned about which order at which review.
3. `score`          per rule and setting: precision, recall, lead time before the deadline, false
   alarms per review (`bt_scores`).

The rules are the promise rules of docs/states.md as they apply to order-level history (no WMS
facts: every line is still to pick), with the policy's work minutes; the buffer is swept. The plain
baseline "not handed off and less than X hours to the deadline" is scored beside them. The learned
score lives in risk.py. docs/backtest.md explains the choices.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from .engines import DuckDBEngine, Engine
from .errors import HandoffError
from .policy import load_policy
from .settings import Settings

BUFFER_SWEEP = (0, 60, 240, 480, 720, 1440, 2880)  # minutes
HOURS_LEFT = (4, 8, 12, 24, 48, 72, 96)  # the baseline's X
DEADLINES = ("latest", "earliest")  # which line's ship-by is the order's deadline

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

# The as-of picture of a batch of reviews. An order is open at a review when it has been placed,
# its deadline is still ahead, and it was not handed off (or cancelled) by then. Only facts known at
# the review leave this query: a release after the review is NULL here. The hand-off time and the
# outcome stay behind.
REVIEW_ROWS = """
SELECT r.review_at, o.order_id, o.customer_id, o.ship_from, o.n_ship_from, o.n_lines, o.units, o.order_value,
       o.ordered_at, CASE WHEN o.released_at <= r.review_at THEN o.released_at END AS released_at,
       o.deadline, o.promised_delivery,
       (epoch(o.deadline) - epoch(r.review_at)) / 60.0 AS minutes_left, o.carrier, o.service
FROM {reviews} r
JOIN bt_orders o ON o.ordered_at <= r.review_at AND r.review_at < o.deadline
WHERE o.skip_reason IS NULL
  AND NOT coalesce(o.handed_off_at <= r.review_at, FALSE)
  AND NOT coalesce(o.cancelled_at <= r.review_at, FALSE)
"""

REVIEW_ROWS_DDL = """
CREATE OR REPLACE TABLE bt_review_rows (
    review_at TIMESTAMPTZ, order_id VARCHAR, customer_id VARCHAR, ship_from VARCHAR, n_ship_from BIGINT, n_lines BIGINT,
    units BIGINT, order_value DOUBLE, ordered_at TIMESTAMPTZ, released_at TIMESTAMPTZ, deadline TIMESTAMPTZ,
    promised_delivery DATE, minutes_left DOUBLE, carrier VARCHAR, service VARCHAR)
"""

# The rules, one row per (rule, setting) in bt_rule_settings(rule, setting, value):
#   promise                          THE promise rule of docs/states.md (promise.decide), replayed at every review
#                                    with the buffer swept: warns when the order is at_risk or needs_communication
#   promise: needs_communication     the same rule at the policy's buffer, needs_communication only
#   promise: at_risk                 the same rule at the policy's buffer, at_risk only
#   promise: at_risk (not released)  the not_released blocker: not released, deadline within value minutes
#   hours left < X                   the plain baseline: less than value hours to the deadline
# Order history knows no picks, packs or labels: the work is the policy's for every line and step
# (pick_per_line x lines + pack + label + manifest); its only blocker is not_released. The deadline (the line
# ship-by) is the rule's ship-by, the estimated delivery its promised delivery.
PROMISE_INPUT = """
(SELECT r.review_at AS now, r.order_id, 'open' AS state, CAST(NULL AS VARCHAR) AS state_reason, r.carrier, r.service,
        $pick_per_line * r.n_lines + $pack + $label + $manifest AS work_minutes, CAST(k.value AS INTEGER) AS buffer_minutes,
        r.promised_delivery, r.deadline AS ship_by, CAST(NULL AS TIMESTAMPTZ) AS due_at,
        CASE WHEN r.released_at IS NULL AND r.minutes_left <= $not_released_within THEN 1 ELSE 0 END AS n_work_blockers,
        FALSE AS communicate, h.horizon_at, r.minutes_left, k.rule, k.setting
 FROM bt_review_rows r JOIN bt_horizons h USING (review_at)
 JOIN bt_rule_settings k ON k.rule = 'promise' OR (k.rule IN ('promise: needs_communication', 'promise: at_risk')))
"""
WARNINGS = """
SELECT now AS review_at, order_id, minutes_left, rule, setting FROM bt_promise
WHERE (rule = 'promise' AND promise_status IN ('at_risk', 'needs_communication'))
   OR (rule = 'promise: needs_communication' AND promise_status = 'needs_communication')
   OR (rule = 'promise: at_risk' AND promise_status = 'at_risk')
UNION ALL
SELECT r.review_at, r.order_id, r.minutes_left, k.rule, k.setting
FROM bt_review_rows r JOIN bt_rule_settings k ON
     (k.rule = 'promise: at_risk (not released)' AND r.released_at IS NULL AND r.minutes_left <= k.value)
  OR (k.rule = 'hours left < X' AND r.minutes_left < 60 * k.value)
"""

# Per rule and setting, over the scored orders (late or on time) placed at or after $since:
# order-level precision and recall (an order counts as warned from its first warning on), lead time
# of the first warning before the deadline, and false alarms (warnings on orders that were on time)
# per review.
SCORES = """
WITH scored AS (
    SELECT order_id, late, deadline FROM bt_orders
    WHERE outcome IN ('on time', 'late: never handed off', 'late: handed off after the deadline') AND ordered_at >= $since
),
n AS (SELECT count(*) FILTER (WHERE late) AS late_orders, count(*) AS orders FROM scored),
reviews AS (SELECT count(*) AS reviews FROM bt_reviews WHERE review_at >= $since),
first AS (
    SELECT w.rule, w.setting, w.order_id, min(w.review_at) AS first_at, count(*) AS n_warnings
    FROM {warnings} w JOIN scored s USING (order_id) WHERE w.review_at >= $since GROUP BY ALL
),
per AS (
    SELECT f.rule, f.setting, count(*) AS warned_orders, count(*) FILTER (WHERE s.late) AS true_warnings,
           sum(f.n_warnings) FILTER (WHERE NOT s.late) AS false_alarm_warnings,
           median((epoch(s.deadline) - epoch(f.first_at)) / 3600.0) FILTER (WHERE s.late) AS median_lead_h,
           quantile_cont((epoch(s.deadline) - epoch(f.first_at)) / 3600.0, 0.25) FILTER (WHERE s.late) AS lead_p25_h
    FROM first f JOIN scored s USING (order_id) GROUP BY ALL
)
SELECT k.rule, k.setting, k.value, n.orders AS scored_orders, n.late_orders,
       coalesce(p.warned_orders, 0) AS warned_orders, coalesce(p.true_warnings, 0) AS true_warnings,
       round(p.true_warnings / nullif(p.warned_orders, 0), 4) AS precision,
       round(coalesce(p.true_warnings, 0) / nullif(n.late_orders, 0), 4) AS recall,
       round(p.median_lead_h, 1) AS median_lead_h, round(p.lead_p25_h, 1) AS lead_p25_h,
       round(coalesce(p.false_alarm_warnings, 0) / nullif(r.reviews, 0), 2) AS false_alarms_per_review
FROM {settings} k CROSS JOIN n CROSS JOIN reviews r LEFT JOIN per p USING (rule, setting)
ORDER BY k.rank
"""


@dataclass
class BacktestResult:
    """The tables of one backtest (each a DataFrame, written as CSV) and what it was run on."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def write(self, out: Path) -> dict[str, Path]:
        """Write every table as `<name>.csv` and the run facts as `backtest.json` under `out`."""
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, df in self.tables.items():
            path = out / f"{name}.csv"
            df.to_csv(path, index=False)
            written[name] = path
        path = out / "backtest.json"
        path.write_text(json.dumps(self.meta, indent=2, default=str), encoding="utf-8")
        written["meta"] = path
        return written

    @classmethod
    def read(cls, folder: Path) -> BacktestResult:
        """The result `write` left in `folder`."""
        folder = Path(folder)
        if not (folder / "backtest.json").exists():
            raise HandoffError(f"{folder}: no backtest.json: not a backtest output folder (run `handoff backtest` first)")
        meta = json.loads((folder / "backtest.json").read_text(encoding="utf-8"))
        tables = {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}
        return cls(tables, meta)

    def summary_markdown(self) -> str:
        """What was replayed, in a few lines of Markdown (the report's opening)."""
        m = self.meta
        acc = self.tables["accounting"]
        by_cat = acc.groupby("category", sort=False)["orders"].sum()
        scored = int(by_cat.get("late", 0) + by_cat.get("on time", 0))
        lines = [
            (
                f"**{m['site_name']}**: {m['reviews']} reviews ({', '.join(m['review_times'])}, {m['date_from']} to "
                f"{m['date_to']}), {m['orders']} orders read through `{m['site_file']}`; deadline = the {m['deadline']} line ship-by."
            ),
            "",
            f"- scored: {scored} orders, of which {int(by_cat.get('late', 0))} late ({m['late_share_pct']} %)",
            (
                f"- skipped (cannot be replayed): {int(by_cat.get('skipped', 0))}; outside the period: "
                f"{int(by_cat.get('outside the period', 0))}; not scored (cancelled): {int(by_cat.get('not scored', 0))}"
            ),
            f"- open order-reviews replayed: {m['review_rows']}; replay took {m['replay_s']} s",
        ]
        if m.get("risk"):
            r = m["risk"]
            lines.append(
                f"- learned score: trained on reviews before {r['split_at']} ({r['train_rows']} rows, {r['train_orders']} orders), "
                f"tested on orders placed from {r['split_at']} ({r['test_orders']} orders)"
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# reading the history


def load_history(settings: Settings, con: duckdb.DuckDBPyConnection | None = None, progress: bool = False) -> duckdb.DuckDBPyConnection:
    """Load the site's extracts through its mapping and link shipments to orders (the crosswalk);
    returns the connection (a new in-memory one when None)."""
    from .db import connect
    from .extracts import load_extracts
    from .identifiers import build_crosswalk

    con = con or connect(settings)
    load_extracts(con, settings, progress=progress)
    build_crosswalk(con, settings)
    return con


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
    """Create `bt_orders` (one row per order, its skip reason and outcome); returns the accounting:
    orders per outcome, which adds up to every order read."""
    if deadline not in DEADLINES:
        raise HandoffError(f"deadline must be one of {', '.join(DEADLINES)}, not {deadline!r}")
    start, end = period_bounds(settings, date_from, date_to)
    con.execute(ORDER_HISTORY, {"deadline": deadline, "period_start": start, "period_end": end})
    acc = con.execute(ACCOUNTING).df()
    total = int(con.execute("SELECT count(*) FROM orders").fetchall()[0][0])
    if int(acc["orders"].sum()) != total:  # the promise of this module: every order accounted for once
        raise HandoffError(f"internal error: {int(acc['orders'].sum())} orders accounted for, {total} read")
    return acc


def late_handoffs(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(orders with items and a carrier hand-off, of which handed off after their latest line ship-by)
    over every order read, regardless of period, skip or status."""
    row = con.execute(
        """WITH l AS (SELECT order_id, max(ship_by) AS latest FROM order_lines GROUP BY order_id),
                s AS (SELECT order_id, max(handed_off_at) AS handed_off_at FROM linked_shipments
                      WHERE link_status = 'linked' GROUP BY order_id HAVING count(handed_off_at) = count(*))
           SELECT count(*), count(*) FILTER (WHERE s.handed_off_at > l.latest) FROM l JOIN s USING (order_id)"""
    ).fetchall()[0]
    return int(row[0]), int(row[1])


# --------------------------------------------------------------------------------------------
# replay


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
    con: duckdb.DuckDBPyConnection, reviews: list[dt.datetime], batch: int = 21, progress: bool = True, engine: Engine | None = None
) -> int:
    """Create `bt_reviews` and `bt_review_rows` (needs `bt_orders`): the as-of picture of every open
    order at every review. Returns the number of rows. Runs on `engine` (default: DuckDB on `con`, in
    batches of reviews under a progress bar); on another engine (Spark) in one pass there, the rows
    then copied back into `con` for the learned score."""
    from tqdm.auto import tqdm

    engine = engine or DuckDBEngine(con)
    con.execute("CREATE OR REPLACE TABLE bt_reviews (review_at TIMESTAMPTZ)")
    con.executemany("INSERT INTO bt_reviews VALUES (?)", [(r,) for r in reviews])
    if not _on(engine, con):
        engine.put("bt_orders", con.sql("SELECT * FROM bt_orders").to_arrow_table())
        engine.put("bt_reviews", con.sql("SELECT * FROM bt_reviews").to_arrow_table())
        engine.create("bt_review_rows", REVIEW_ROWS.format(reviews="bt_reviews"))
        _copy_back(con, engine, "bt_review_rows", REVIEW_ROWS_DDL)
        return int(con.execute("SELECT count(*) FROM bt_review_rows").fetchall()[0][0])
    con.execute(REVIEW_ROWS_DDL)
    with tqdm(total=len(reviews), desc="replaying reviews", unit="review", disable=not progress) as bar:
        for i in range(0, len(reviews), batch):
            chunk = reviews[i : i + batch]
            con.execute("CREATE OR REPLACE TEMP TABLE bt_review_batch (review_at TIMESTAMPTZ)")
            con.executemany("INSERT INTO bt_review_batch VALUES (?)", [(r,) for r in chunk])
            engine.insert("bt_review_rows", REVIEW_ROWS.format(reviews="bt_review_batch"))
            bar.update(len(chunk))
    con.execute("DROP TABLE IF EXISTS bt_review_batch")
    return int(con.execute("SELECT count(*) FROM bt_review_rows").fetchall()[0][0])


def _on(engine: Engine, con: duckdb.DuckDBPyConnection) -> bool:
    """The engine runs on `con` itself (its tables are con's)."""
    return isinstance(engine, DuckDBEngine) and engine.con is con


def _copy_back(con: duckdb.DuckDBPyConnection, engine: Engine, name: str, ddl: str | None = None) -> None:
    """Table `name` of another engine into `con` (with the types of `ddl` when given)."""
    rows = engine.fetch(name)  # noqa: F841 (read by DuckDB by name)
    if ddl is None:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM rows")
    else:
        con.execute(ddl)
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM rows")


def rule_settings(settings: Settings, buffers: tuple[int, ...] = BUFFER_SWEEP, hours: tuple[int, ...] = HOURS_LEFT) -> pd.DataFrame:
    """The rules to score, one row per setting: rule, setting (label), value, rank. The policy's own
    buffer is always in the sweep."""
    policy = load_policy(settings)
    buffers = tuple(sorted(set(buffers) | {policy.buffer_minutes}))
    rows = [("promise", f"buffer {b} min" + (" (policy)" if b == policy.buffer_minutes else ""), float(b)) for b in buffers]
    rows += [("promise: needs_communication", f"buffer {policy.buffer_minutes} min (policy)", float(policy.buffer_minutes))]
    rows += [("promise: at_risk", f"buffer {policy.buffer_minutes} min (policy)", float(policy.buffer_minutes))]
    rows += [
        (
            "promise: at_risk (not released)",
            f"within {policy.not_released_within_minutes} min (policy)",
            float(policy.not_released_within_minutes),
        )
    ]
    rows += [("hours left < X", f"X = {h} h", float(h)) for h in hours]
    df = pd.DataFrame(rows, columns=["rule", "setting", "value"])
    df["rank"] = range(len(df))
    return df


def warnings_of(con: duckdb.DuckDBPyConnection, settings: Settings, rules: pd.DataFrame, engine: Engine | None = None) -> int:
    """Create `bt_promise` (the promise rule's decision at every review, per buffer setting) and `bt_warnings`
    (review_at, order_id, minutes_left, rule, setting) from `bt_review_rows`; returns how many warnings.
    The decision is promise.decide, on DuckDB (`con`) whatever the engine: its pickups and arrivals are
    as-of joins over the lane tables. On another engine (Spark) the review rows were made there and copied
    back (replay); the warnings and the rule settings are sent to it for the scores."""
    from .promise import build_lanes, decide, lane_key

    policy = load_policy(settings)
    engine = engine or DuckDBEngine(con)
    con.register("bt_rule_settings_df", rules)
    con.execute("CREATE OR REPLACE TABLE bt_rule_settings AS SELECT * FROM bt_rule_settings_df")
    con.unregister("bt_rule_settings_df")
    # the horizon of each review: the next review replayed (a day after the last)
    con.execute(
        """CREATE OR REPLACE TEMP TABLE bt_horizons AS
           SELECT review_at, coalesce(lead(review_at) OVER (ORDER BY review_at), review_at + INTERVAL 1 DAY) AS horizon_at
           FROM bt_reviews"""
    )
    span = con.execute(
        "SELECT min(CAST(timezone($tz, review_at) AS DATE)), max(CAST(timezone($tz, deadline) AS DATE)), max(promised_delivery) "
        "FROM bt_review_rows",
        {"tz": settings.timezone},
    ).fetchall()[0]
    lanes = [(lane_key(c), lane_key(v)) for c, v in con.execute("SELECT DISTINCT carrier, service FROM bt_review_rows").fetchall()]
    if span[0] is not None:
        last = max(d for d in span[1:] if d is not None) + dt.timedelta(days=policy.pickup_lookahead_days)
        build_lanes(con, settings, policy, lanes, span[0] - dt.timedelta(days=1), last)
    else:
        build_lanes(con, settings, policy, [], dt.date(2000, 1, 1), dt.date(2000, 1, 1))
    params = {**policy.work_minutes, "not_released_within": policy.not_released_within_minutes}
    decide(con, PROMISE_INPUT, "bt_promise", settings, params)
    con.execute("CREATE OR REPLACE TABLE bt_warnings AS " + WARNINGS)
    if not _on(engine, con):
        engine.put("bt_rule_settings", con.sql("SELECT * FROM bt_rule_settings").to_arrow_table())
        engine.put("bt_warnings", con.sql("SELECT * FROM bt_warnings").to_arrow_table())
    return int(con.execute("SELECT count(*) FROM bt_warnings").fetchall()[0][0])


def score(
    con: duckdb.DuckDBPyConnection, since: dt.datetime | None = None, warnings: str = "bt_warnings", rules: str = "bt_rule_settings",
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Per rule and setting: precision, recall, median lead time (h), false alarms per review, over
    scored orders placed at or after `since` (all when None). On `engine` (default DuckDB on `con`)."""
    since = since or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (engine or DuckDBEngine(con)).query(SCORES.format(warnings=warnings, settings=rules), {"since": since})


# --------------------------------------------------------------------------------------------
# the whole job


def run_backtest(
    settings: Settings,
    date_from: dt.date,
    date_to: dt.date,
    times: tuple[dt.time, ...],
    split_at: dt.date | None = None,
    deadline: str = "latest",
    with_risk: bool = True,
    progress: bool = True,
    con: duckdb.DuckDBPyConnection | None = None,
    engine: str = "duckdb",
) -> BacktestResult:
    """Load the history, replay the reviews, score the rules, and (with_risk) train and compare the
    learned score; returns every table. `split_at` (default: two thirds into the period, on a month
    start) separates training months from test months for the learned score. `engine` 'spark' runs the
    replay, the warnings and the scores on Spark (engines.py), the rest on DuckDB."""
    import time

    from .engines import open_engine

    t0 = time.perf_counter()
    con = load_history(settings, con, progress=progress)
    t_load = time.perf_counter() - t0
    accounting = order_history(con, settings, date_from, date_to, deadline)
    reviews = review_times(settings, date_from, date_to, times)
    t1 = time.perf_counter()
    eng = open_engine(engine, con)
    try:
        n_rows = replay(con, reviews, progress=progress, engine=eng)
        rules = rule_settings(settings)
        warnings_of(con, settings, rules, engine=eng)
        scores = score(con, engine=eng)
    finally:
        if not _on(eng, con):
            eng.close()
    t_replay = time.perf_counter() - t1
    n_with, n_late = late_handoffs(con)
    skipped = accounting[accounting["category"] == "skipped"][["outcome", "orders"]].rename(columns={"outcome": "reason"})
    skipped["reason"] = skipped["reason"].str.removeprefix("skipped: ")
    scored = accounting[accounting["category"].isin(["late", "on time"])]
    late = int(scored[scored["category"] == "late"]["orders"].sum())
    meta = {
        "site": settings.site,
        "site_name": settings.name,
        "site_file": str(settings.path),
        "data_folder": str(settings.data_folder),
        "date_from": str(date_from),
        "date_to": str(date_to),
        "review_times": [t.strftime("%H:%M") for t in times],
        "reviews": len(reviews),
        "deadline": deadline,
        "engine": engine,
        "orders": int(accounting["orders"].sum()),
        "review_rows": n_rows,
        "late_share_pct": round(100 * late / max(int(scored["orders"].sum()), 1), 2),
        "orders_with_items_and_handoff": n_with,
        "handed_off_after_latest_ship_by": n_late,
        "load_s": round(t_load, 2),
        "replay_s": round(t_replay, 2),
    }
    tables = {"accounting": accounting, "skipped": skipped, "rules": scores}
    if with_risk:
        from . import risk

        split = split_at or default_split(date_from, date_to)
        split_dt = dt.datetime.combine(split, dt.time(0), settings.tz)
        t2 = time.perf_counter()
        model, info = risk.train(con, split_dt)
        tables["risk_vs_rules"] = risk.compare_at_equal_precision(con, model, split_dt)
        tables["risk_curve"] = risk.score_curve(con, split_dt)
        tables["risk_features"] = risk.feature_table(model)
        meta["risk"] = info | {"split_at": str(split), "fit_s": round(time.perf_counter() - t2, 2)}
        meta["_model"] = model
    meta["wall_s"] = round(time.perf_counter() - t0, 2)
    return BacktestResult(tables, meta)


def default_split(date_from: dt.date, date_to: dt.date) -> dt.date:
    """The first month start after the point two thirds into the period (2017-01-01..12-31 ->
    2017-09-01); for a short period, the month start before that point, else its middle."""
    at = date_from + (date_to - date_from) * 2 / 3
    after = (dt.date(at.year, at.month, 1) + dt.timedelta(days=32)).replace(day=1)
    if after <= date_to:
        return after
    before = dt.date(at.year, at.month, 1)
    return before if before > date_from else date_from + (date_to - date_from) / 2


def load_or_run(
    site_file: str, date_from: str, date_to: str, reviews: str, split_at: str = "", tables_dir: str = ""
) -> BacktestResult:
    """The report notebook's one call: the tables `handoff backtest` wrote into `tables_dir`, or (when
    it is empty) a fresh backtest with these parameters, as parsed from the notebook's strings."""
    from .settings import load_settings

    if tables_dir:
        return BacktestResult.read(Path(tables_dir))
    settings = load_settings(site_file)
    result = run_backtest(
        settings,
        parse_date(date_from, "date_from"),
        parse_date(date_to, "date_to"),
        parse_times(reviews),
        split_at=parse_date(split_at, "split_at") if split_at else None,
        progress=False,
    )
    result.meta.pop("_model", None)
    return result


def parse_date(value: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise HandoffError(f"{what} '{value}': expected a date as YYYY-MM-DD") from None


def parse_times(value: str) -> tuple[dt.time, ...]:
    """'09:00,12:00,16:00' -> review times of day."""
    out = []
    for part in str(value).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            t = dt.time.fromisoformat(part)
        except ValueError:
            raise HandoffError(f"review time '{part}': expected HH:MM, e.g. 09:00,12:00,16:00") from None
        out.append(t)
    if not out:
        raise HandoffError(f"reviews '{value}': give at least one time, e.g. 09:00,12:00,16:00")
    return tuple(sorted(set(out)))


# --------------------------------------------------------------------------------------------
# report figures (returned, never displayed)


def sweep_chart(result: BacktestResult):
    """Precision and recall of the promise rule against its buffer, and of the baseline against X."""
    from plotly.subplots import make_subplots

    df = result.tables["rules"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("promise rule: buffer sweep (minutes)", "baseline: less than X hours left"))
    for col, rule in ((1, "promise"), (2, "hours left < X")):
        part = df[df["rule"] == rule]
        for metric, colour in (("precision", "#1565c0"), ("recall", "#c62828")):
            fig.add_scatter(x=part["value"], y=part[metric], name=metric, mode="lines+markers", marker_color=colour,
                            showlegend=col == 1, row=1, col=col)
    fig.update_yaxes(range=[0, 1])
    fig.update_layout(height=380, template="plotly_white", margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def tradeoff_chart(result: BacktestResult):
    """Precision against recall for every rule and setting, and the learned score's curve (test months)."""
    import plotly.graph_objects as go

    df = result.tables["rules"]
    fig = go.Figure()
    for rule, part in df.groupby("rule", sort=False):
        fig.add_scatter(x=part["recall"], y=part["precision"], mode="markers+lines", name=rule, text=part["setting"],
                        hovertemplate="%{text}<br>recall %{x:.2f}, precision %{y:.2f}")
    if "risk_curve" in result.tables:
        c = result.tables["risk_curve"]
        for name, part in c.groupby("rule", sort=False):
            fig.add_scatter(x=part["recall"], y=part["precision"], mode="lines", name=f"{name} (test months)",
                            line={"dash": "dot"}, text=part["setting"], hovertemplate="%{text}<br>recall %{x:.2f}, precision %{y:.2f}")
    fig.update_layout(title="Precision vs recall of warnings (order level)", xaxis_title="recall", yaxis_title="precision",
                      xaxis_range=[0, 1], yaxis_range=[0, 1], height=460, template="plotly_white",
                      margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig
