"""Backtest the promise on a site's own order history: replay it as a sequence of cutoff reviews, each
seeing only what was known at that moment, and score every warning against what happened.

The history is read through the site mapping like any extract set (`load_history`); nothing here is
special to one source. The as-of order rows come from asof_orders.py (shared with the learned score);
this module adds, each step set-based DuckDB SQL in a named query:

1. `rule_settings` / `warnings_of`  the rules and their settings (`bt_rule_settings`), and which of them
   warned about which order at which review (`bt_warnings`). The promise rule is THE rule of
   docs/states.md (promise.decide), replayed at every review with the buffer swept, and once more as the
   site has it configured today (its buffer, per-customer buffers and work minutes); the plain baseline
   "less than X hours to the deadline" is scored beside it.
2. `score`  per period (`bt_periods`: the whole period, or the validation and test months of each fold of
   calibrate.py) and per rule setting: precision, recall, lead time before the deadline, false alarms per
   review.
3. `bridge`  from the plain count of orders handed off after their ship-by to the accounting categories.

Choosing settings and the learned score's evaluation are calibrate.py's: imports point one way
(calibrate -> backtest -> asof_orders, promise). docs/backtest.md explains the choices.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from handoff_lib.errors import HandoffError
from handoff_lib.history.asof_orders import SCORED, runs_on
from handoff_lib.history.engines import DuckDBEngine, Engine
from handoff_lib.load.settings import Settings
from handoff_lib.rules.policy import load_policy

BUFFER_SWEEP = (0, 30, 60, 120, 180, 240, 360, 480, 600, 720, 960, 1200, 1440, 2160, 2880)  # minutes
HOURS_LEFT = (2, 4, 6, 8, 10, 12, 16, 24, 36, 48, 72, 96)  # the baseline's X
CURRENT = "current setting"  # the rule as the site has it configured today

# Input rows of the promise rule (promise.decide) for every review row and every promise setting of
# bt_rule_settings. Order history knows no picks, packs or labels: the work is the setting's for every
# line and step (pick_per_line x lines + pack + label + manifest); its only blocker is not_released. The
# deadline (the line ship-by, NULL while not known) is the rule's ship-by, the estimated delivery its
# promised delivery. The buffer is the setting's, or the customer's own (bt_customer_buffers) where the
# setting has one.
PROMISE_INPUT = """
(SELECT r.review_at AS now, r.order_id, 'open' AS state, CAST(NULL AS VARCHAR) AS state_reason, r.carrier, r.service,
        k.pick_per_line * r.n_lines + k.pack + k.label + k.manifest AS work_minutes,
        CAST(coalesce(cb.buffer_minutes, k.value) AS INTEGER) AS buffer_minutes,
        r.promised_delivery, r.deadline AS ship_by, CAST(NULL AS TIMESTAMPTZ) AS due_at,
        CASE WHEN r.released_at IS NULL AND r.minutes_left <= $not_released_within THEN 1 ELSE 0 END AS n_work_blockers,
        FALSE AS communicate, h.horizon_at, k.rule, k.setting, k.value
 FROM bt_review_rows r JOIN bt_horizons h USING (review_at)
 JOIN bt_rule_settings k ON k.kind = 'promise'
 LEFT JOIN bt_customer_buffers cb ON cb.rule = k.rule AND cb.setting = k.setting AND cb.customer_id = r.customer_id)
"""
# A warning: the promise rule says at_risk or needs_communication; the baseline: less than X hours left
# (never while the deadline is not known).
WARNINGS = """
SELECT now AS review_at, order_id, rule, setting, value FROM bt_promise
WHERE promise_status IN ('at_risk', 'needs_communication')
UNION ALL
SELECT r.review_at, r.order_id, k.rule, k.setting, k.value
FROM bt_review_rows r JOIN bt_rule_settings k ON k.kind = 'hours_left' AND r.minutes_left < 60 * k.value
"""

# Per period and rule setting, over the scored orders (late or on time) whose deadline falls in the
# period: order-level precision and recall (an order counts as warned from its first warning on), lead
# time of the first warning before the deadline, and false alarms (warnings on orders that were on time)
# per review of the period. {warnings}: review_at, order_id, rule, setting, fold (NULL: every fold);
# {settings}: rule, setting, value, rank, fold (NULL: every fold); {group}: a column of bt_orders to
# score by (customer_id), or a constant; {periods}: bt_periods or a part of it.
SCORES = """
WITH scored AS (
    SELECT p.fold, p.period, {group} AS grp, o.order_id, o.late, o.deadline
    FROM {periods} p JOIN bt_orders o ON o.deadline >= p.start_at AND o.deadline < p.end_at
    WHERE o.outcome IN ('on time', 'late: never handed off', 'late: handed off after the deadline')
),
n AS (SELECT fold, period, grp, count(*) FILTER (WHERE late) AS late_orders, count(*) AS orders FROM scored GROUP BY ALL),
reviews AS (
    SELECT p.fold, p.period, count(r.review_at) AS reviews
    FROM {periods} p LEFT JOIN bt_reviews r ON r.review_at >= p.start_at AND r.review_at < p.end_at GROUP BY ALL
),
first AS (
    SELECT s.fold, s.period, s.grp, w.rule, w.setting, w.order_id, min(w.review_at) AS first_at, count(*) AS n_warnings
    FROM {warnings} w JOIN scored s ON s.order_id = w.order_id AND (w.fold IS NULL OR w.fold = s.fold)
    GROUP BY ALL
),
per AS (
    SELECT f.fold, f.period, f.grp, f.rule, f.setting, count(*) AS warned_orders, count(*) FILTER (WHERE s.late) AS true_warnings,
           sum(f.n_warnings) FILTER (WHERE NOT s.late) AS false_alarm_warnings,
           median((epoch(s.deadline) - epoch(f.first_at)) / 3600.0) FILTER (WHERE s.late) AS median_lead_h,
           quantile_cont((epoch(s.deadline) - epoch(f.first_at)) / 3600.0, 0.25) FILTER (WHERE s.late) AS lead_p25_h
    FROM first f JOIN scored s USING (fold, period, grp, order_id) GROUP BY ALL
)
SELECT n.fold, n.period, n.grp, k.rule, k.setting, k.value, k.rank, n.orders AS scored_orders, n.late_orders,
       coalesce(p.warned_orders, 0) AS warned_orders, coalesce(p.true_warnings, 0) AS true_warnings,
       round(p.true_warnings / nullif(p.warned_orders, 0), 4) AS precision,
       round(coalesce(p.true_warnings, 0) / nullif(n.late_orders, 0), 4) AS recall,
       round(p.median_lead_h, 1) AS median_lead_h, round(p.lead_p25_h, 1) AS lead_p25_h,
       round(coalesce(p.false_alarm_warnings, 0) / nullif(r.reviews, 0), 3) AS false_alarms_per_review,
       r.reviews
FROM n JOIN reviews r USING (fold, period) JOIN {settings} k ON k.fold IS NULL OR k.fold = n.fold
LEFT JOIN per p ON p.fold = n.fold AND p.period = n.period AND p.grp = n.grp AND p.rule = k.rule AND p.setting = k.setting
ORDER BY n.fold, n.period, n.grp, k.rank
"""
SCORE_GROUPS = {"all": "'all'", "customer": "o.customer_id"}

# From the plain count (orders with items and a carrier hand-off, handed off after their latest line
# ship-by, over every order read) to the orders scored late: what each accounting category takes out.
BRIDGE = """
WITH l AS (SELECT order_id, max(ship_by) AS latest FROM order_lines GROUP BY order_id),
s AS (SELECT order_id, max(handed_off_at) AS handed_off_at FROM linked_shipments
      WHERE link_status = 'linked' GROUP BY order_id HAVING count(handed_off_at) = count(*)),
plain AS (SELECT order_id FROM l JOIN s USING (order_id) WHERE s.handed_off_at > l.latest)
SELECT o.outcome, p.order_id IS NOT NULL AS in_plain, count(*) AS orders
FROM bt_orders o LEFT JOIN plain p USING (order_id)
WHERE p.order_id IS NOT NULL OR o.outcome LIKE 'late:%'
GROUP BY ALL
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
        meta = {k: v for k, v in self.meta.items() if not k.startswith("_")}
        path.write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        written["meta"] = path
        return written

    @classmethod
    def read(cls, folder: Path) -> BacktestResult:
        """The result `write` left in `folder`."""
        folder = Path(folder)
        if not (folder / "backtest.json").exists():
            raise HandoffError(f"{folder}: no backtest.json: not a backtest output folder (run `handoff backtest` first)")
        meta = json.loads((folder / "backtest.json").read_text(encoding="utf-8"))
        tables = {p.stem: pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in sorted(folder.glob("*.csv"))}
        return cls(tables, meta)


# --------------------------------------------------------------------------------------------
# reading the history


def load_history(settings: Settings, con: duckdb.DuckDBPyConnection | None = None, progress: bool = False) -> duckdb.DuckDBPyConnection:
    """Load the site's extracts through its mapping and link shipments to orders (the crosswalk);
    returns the connection (a new in-memory one when None)."""
    from handoff_lib.db import connect
    from handoff_lib.join.identifiers import build_crosswalk
    from handoff_lib.load.extracts import load_extracts

    con = con or connect(settings)
    load_extracts(con, settings, progress=progress)
    build_crosswalk(con, settings)
    return con


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


def bridge(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The bridge from the plain count of late hand-offs to the late orders the backtest scores: step,
    orders, what it means. Needs `bt_orders` (asof_orders.order_history) and the linked extracts."""
    rows = con.execute(BRIDGE).df()
    plain = rows[rows["in_plain"]]
    n_plain = int(plain["orders"].sum())
    out = [("Handed off after the latest line ship-by (plain count)", n_plain,
            "every order read that has items and a carrier hand-off time")]
    for r in plain[plain["outcome"] != "late: handed off after the deadline"].sort_values("outcome").itertuples(index=False):
        why = {
            "skipped": "cannot be replayed",
            "outside the period": "deadline outside the period",
            "not scored": "cancelled: whether it would have been late is unknowable",
            "on time": "handed off by the order's deadline (earliest line ship-by, --deadline earliest)",
        }.get(r.outcome.split(":")[0], "")
        out.append((f"- {r.outcome}", -int(r.orders), why))
    extra = rows[(~rows["in_plain"]) & (rows["outcome"] == "late: handed off after the deadline")]["orders"].sum()
    if extra:
        out.append(("+ late by the earliest line ship-by only", int(extra), "--deadline earliest"))
    late_handed = int(rows[rows["outcome"] == "late: handed off after the deadline"]["orders"].sum())
    out.append(("= Late: handed off after the deadline, in the period", late_handed, "scored late"))
    never = int(rows[rows["outcome"] == "late: never handed off"]["orders"].sum())
    out.append(("+ Late: never handed off", never, "no carrier hand-off at all: late at the deadline"))
    out.append(("= Late orders scored", late_handed + never, "what a warning should catch"))
    return pd.DataFrame(out, columns=["step", "orders", "meaning"])


# --------------------------------------------------------------------------------------------
# rules and warnings


def rule_settings(
    settings: Settings,
    buffers: tuple[int, ...] = BUFFER_SWEEP,
    hours: tuple[int, ...] = HOURS_LEFT,
    work_minutes: dict[str, int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rules to score: (settings, customer buffers). Settings, one row per setting: kind ('promise' |
    'hours_left'), rule, setting (label), value, rank, and the work minutes of a promise setting. The sweep
    ('promise', one buffer for every order, with `work_minutes`, default the policy's) always holds the
    policy's buffer and every per-customer buffer; CURRENT is the rule as configured (policy work minutes,
    buffer and buffer_by_customer, which fill the customer-buffer table)."""
    policy = load_policy(settings)
    work = dict(work_minutes or policy.work_minutes)
    buffers = tuple(sorted(set(buffers) | {policy.buffer_minutes} | set(policy.buffer_by_customer.values())))
    rows = [("promise", CURRENT, f"buffer {policy.buffer_minutes} min", float(policy.buffer_minutes), policy.work_minutes)]
    rows += [("promise", "promise", f"buffer {b} min", float(b), work) for b in buffers]
    rows += [("hours_left", "hours left < X", f"X = {h} h", float(h), {}) for h in hours]
    df = pd.DataFrame(
        [
            (kind, rule, setting, value, *(int(w.get(k, 0)) for k in ("pick_per_line", "pack", "label", "manifest")))
            for kind, rule, setting, value, w in rows
        ],
        columns=["kind", "rule", "setting", "value", "pick_per_line", "pack", "label", "manifest"],
    )
    df["rank"] = range(len(df))
    custom = pd.DataFrame(
        [(CURRENT, f"buffer {policy.buffer_minutes} min", str(c), int(b)) for c, b in policy.buffer_by_customer.items()],
        columns=["rule", "setting", "customer_id", "buffer_minutes"],
    )
    return df, custom


def _store(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame) -> None:
    con.register("_bt_frame", df)
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _bt_frame")
    con.unregister("_bt_frame")


def warnings_of(
    con: duckdb.DuckDBPyConnection, settings: Settings, rules: pd.DataFrame, customer_buffers: pd.DataFrame | None = None,
    engine: Engine | None = None,
) -> int:
    """Create `bt_rule_settings`, `bt_promise` (the promise rule's decision at every review, per promise
    setting) and `bt_warnings` (review_at, order_id, rule, setting, value) from `bt_review_rows`; returns how
    many warnings. The decision is promise.decide, on DuckDB (`con`) whatever the engine: its pickups and
    arrivals are as-of joins over the lane tables. On another engine (Spark) the review rows were made there
    and copied back (asof_orders.replay); the warnings and the rule settings are sent to it for the scores."""
    from handoff_lib.rules.promise import build_lanes, decide, lane_key

    policy = load_policy(settings)
    _store(con, "bt_rule_settings", rules)
    custom = customer_buffers if customer_buffers is not None else pd.DataFrame(columns=["rule", "setting", "customer_id", "buffer_minutes"])
    _store(con, "bt_customer_buffers", custom.astype({"rule": str, "setting": str, "customer_id": str, "buffer_minutes": "int64"}))
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
    known = [d for d in span[1:] if d is not None]
    if span[0] is not None:
        last = max(known or [span[0]]) + dt.timedelta(days=policy.pickup_lookahead_days)
        build_lanes(con, settings, policy, lanes, span[0] - dt.timedelta(days=1), last)
    else:
        build_lanes(con, settings, policy, [], dt.date(2000, 1, 1), dt.date(2000, 1, 1))
    decide(con, PROMISE_INPUT, "bt_promise", settings, {"not_released_within": policy.not_released_within_minutes})
    con.execute("CREATE OR REPLACE TABLE bt_warnings AS " + WARNINGS)
    if engine is not None and not runs_on(engine, con):
        engine.put("bt_rule_settings", con.sql("SELECT * FROM bt_rule_settings").to_arrow_table())
        engine.put("bt_warnings", con.sql("SELECT * FROM bt_warnings").to_arrow_table())
    return int(con.execute("SELECT count(*) FROM bt_warnings").fetchall()[0][0])


# --------------------------------------------------------------------------------------------
# scoring


def set_periods(
    con: duckdb.DuckDBPyConnection, periods: list[tuple[int, str, dt.datetime, dt.datetime]], engine: Engine | None = None
) -> None:
    """(Re)create `bt_periods(fold, period, start_at, end_at)`: the periods `score` scores in (on `engine` too)."""
    _store(con, "bt_periods", pd.DataFrame(periods, columns=["fold", "period", "start_at", "end_at"]))
    if engine is not None and not runs_on(engine, con):
        engine.put("bt_periods", con.sql("SELECT * FROM bt_periods").to_arrow_table())


def score(
    con: duckdb.DuckDBPyConnection,
    warnings: str = "(SELECT *, CAST(NULL AS INTEGER) AS fold FROM bt_warnings)",
    rules: str = "(SELECT *, CAST(NULL AS INTEGER) AS fold FROM bt_rule_settings)",
    by: str = "all",
    periods: str = "bt_periods",
    engine: Engine | None = None,
) -> pd.DataFrame:
    """Per period of `bt_periods` and rule setting (and customer, with by='customer'): precision, recall,
    median lead time (h), false alarms per review, over the scored orders whose deadline is in the period.
    `warnings` and `rules` name tables or subqueries of the shapes SCORES describes. On `engine` (default
    DuckDB on `con`), which must hold the tables named."""
    sql = SCORES.format(warnings=warnings, settings=rules, group=SCORE_GROUPS[by], periods=periods)
    return (engine or DuckDBEngine(con)).query(sql)


def scored_between(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime) -> tuple[int, int]:
    """(scored orders, late orders) whose deadline is in [start, end)."""
    row = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE late) FROM bt_orders
            WHERE outcome IN ({", ".join("?" for _ in SCORED)}) AND deadline >= ? AND deadline < ?""",
        [*SCORED, start, end],
    ).fetchall()[0]
    return int(row[0]), int(row[1])


# --------------------------------------------------------------------------------------------
# parsing the command line and the notebook's strings


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
