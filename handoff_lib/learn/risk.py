"""A learned late-hand-off risk score (scikit-learn), from facts known at review time only.

Features are built in DuckDB from the as-of rows of open orders (`bt_review_rows`, asof_orders.py), so a
review sees only what was known then:

* the order: hours to its deadline (once the deadline is known), hours since it was placed and since it was
  released (if it was by then), lines, units, value, ship-froms, slack between deadline and promised
  delivery, weekday and hour of the review and of the deadline;
* its ship-from's (site, warehouse or seller) track record UP TO the review: share late (an order is
  known late at its deadline, on time at its hand-off), mean hours from release to hand-off, mean
  hand-off time relative to the deadline (the site's figures while a ship-from has no history), and
  from those the hours of work it usually still has ahead and how far behind its usual pace it is.

This module fits and applies the score; it never evaluates it. The time-respecting evaluation (train on
earlier months, choose the threshold on the months after, report on the months after those) is
calibrate.py's; docs/backtest.md explains it.

A site turns the score on for the promise view with `policy.risk_score` (docs/backtest.md):
`apply_to_promise` then marks safe orders whose score reaches the threshold as at_risk. The live review
imports this module and asof_orders.py, never the backtest.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from handoff_lib.errors import HandoffError, SettingsError
from handoff_lib.load.settings import Settings

FEATURES = (
    "log_hours_left",
    "hours_left",
    "hours_since_order",
    "released",
    "hours_since_release",
    "deadline_known",
    "n_lines",
    "units",
    "order_value",
    "n_ship_from",
    "slack_days",
    "review_weekday",
    "review_hour",
    "deadline_weekday",
    "deadline_hour",
    "from_late_share",
    "from_release_to_handoff_h",
    "from_mean_delay_h",
    "expected_remaining_h",
    "margin_h",
    "behind_usual_h",
)
PRIOR_WEIGHT = 5.0  # a ship-from with few resolved orders is pulled toward the site's share late

# What each order taught, and when it was known: late at its deadline when not handed off by then,
# on time at its hand-off; the release-to-hand-off hours and the delay once handed off.
EVENTS = """
CREATE OR REPLACE TABLE risk_events AS
WITH e AS (
    SELECT ship_from, order_id, released_at, handed_off_at, deadline, cancelled_at,
           CASE WHEN handed_off_at <= deadline THEN handed_off_at ELSE deadline END AS known_at,
           NOT coalesce(handed_off_at <= deadline, FALSE) AS late
    FROM bt_orders WHERE skip_reason IS NULL
)
SELECT ship_from, order_id, known_at, CAST(late AS INTEGER) AS late, handed_off_at,
       (epoch(handed_off_at) - epoch(released_at)) / 3600.0 AS release_to_handoff_h,
       (epoch(handed_off_at) - epoch(deadline)) / 3600.0 AS delay_h
FROM e WHERE NOT coalesce(cancelled_at <= known_at, FALSE)
"""

# Running totals per ship-from (the `_all` tables: the whole site) at each moment something became
# known. RANGE frames count every event of the same instant, so an as-of join sees all or none.
HISTORY = """
CREATE OR REPLACE TABLE risk_from_outcomes AS
SELECT ship_from, known_at, count(*) OVER w AS resolved, sum(late) OVER w AS late
FROM risk_events
WINDOW w AS (PARTITION BY ship_from ORDER BY known_at RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
CREATE OR REPLACE TABLE risk_from_handoffs AS
SELECT ship_from, handed_off_at AS known_at,
       count(*) OVER w AS handed, sum(release_to_handoff_h) OVER w AS sum_release_h, sum(delay_h) OVER w AS sum_delay_h
FROM risk_events WHERE handed_off_at IS NOT NULL
WINDOW w AS (PARTITION BY ship_from ORDER BY handed_off_at RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
CREATE OR REPLACE TABLE risk_all_outcomes AS
SELECT known_at, count(*) OVER w AS resolved, sum(late) OVER w AS late
FROM risk_events WINDOW w AS (ORDER BY known_at RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
CREATE OR REPLACE TABLE risk_all_handoffs AS
SELECT handed_off_at AS known_at, count(*) OVER w AS handed, sum(release_to_handoff_h) OVER w AS sum_release_h,
       sum(delay_h) OVER w AS sum_delay_h
FROM risk_events WHERE handed_off_at IS NOT NULL
WINDOW w AS (ORDER BY handed_off_at RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW);
"""

# One feature row per as-of review row. Every history join is as of the review (known_at <= review_at).
# A ship-from without history takes the site's figures. expected_remaining_h: the ship-from's usual
# release-to-hand-off hours still to go; margin_h: hours left beyond that; behind_usual_h: how far
# past the point (relative to the deadline) where the ship-from usually hands off.
FEATURE_ROWS = """
CREATE OR REPLACE TABLE risk_features AS
WITH t AS (SELECT DISTINCT review_at FROM bt_review_rows),
site AS (
    SELECT t.review_at, o.late / o.resolved AS late_share, h.sum_release_h / h.handed AS release_h, h.sum_delay_h / h.handed AS delay_h
    FROM t ASOF LEFT JOIN risk_all_outcomes o ON t.review_at >= o.known_at
           ASOF LEFT JOIN risk_all_handoffs h ON t.review_at >= h.known_at
),
f AS (
    SELECT r.review_at, r.order_id,
           r.minutes_left / 60.0 AS hours_left,
           (epoch(r.review_at) - epoch(r.ordered_at)) / 3600.0 AS hours_since_order,
           CAST(r.released_at IS NOT NULL AS INTEGER) AS released,
           CAST(r.deadline_known AS INTEGER) AS deadline_known,
           (epoch(r.review_at) - epoch(r.released_at)) / 3600.0 AS hours_since_release,
           r.n_lines, r.units, r.order_value, r.n_ship_from,
           date_diff('day', CAST(r.deadline AS DATE), r.promised_delivery) AS slack_days,
           isodow(r.review_at) AS review_weekday, hour(r.review_at) AS review_hour,
           isodow(r.deadline) AS deadline_weekday, hour(r.deadline) AS deadline_hour,
           (coalesce(o.late, 0) + $prior * coalesce(site.late_share, 0.1)) / (coalesce(o.resolved, 0) + $prior) AS from_late_share,
           coalesce(h.sum_release_h / h.handed, site.release_h) AS from_release_to_handoff_h,
           coalesce(h.sum_delay_h / h.handed, site.delay_h) AS from_mean_delay_h
    FROM bt_review_rows r
    ASOF LEFT JOIN risk_from_outcomes o ON r.ship_from = o.ship_from AND r.review_at >= o.known_at
    ASOF LEFT JOIN risk_from_handoffs h ON r.ship_from = h.ship_from AND r.review_at >= h.known_at
    LEFT JOIN site USING (review_at)
)
SELECT *, ln(1 + greatest(hours_left, 0)) AS log_hours_left,
       from_release_to_handoff_h - coalesce(hours_since_release, 0) AS expected_remaining_h,
       hours_left - (from_release_to_handoff_h - coalesce(hours_since_release, 0)) AS margin_h,
       -from_mean_delay_h - hours_left AS behind_usual_h
FROM f
"""


def build_features(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Create `risk_features` from `bt_orders` and `bt_review_rows` (one row per review row);
    returns it ordered by review and order."""
    con.execute(EVENTS)
    con.execute(HISTORY)
    con.execute(FEATURE_ROWS, {"prior": PRIOR_WEIGHT})
    return con.execute("SELECT * FROM risk_features ORDER BY review_at, order_id").df()


def labelled_rows(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Feature rows of scored orders with their label (`late`), order time, the time their outcome became
    known (`known_at`) and their true deadline (`true_deadline`, for assigning them to evaluation periods)."""
    return con.execute(
        """SELECT f.*, o.late, o.ordered_at, e.known_at, o.deadline AS true_deadline
           FROM risk_features f JOIN bt_orders o USING (order_id) JOIN risk_events e USING (order_id)
           WHERE o.outcome IN ('on time', 'late: never handed off', 'late: handed off after the deadline')
           ORDER BY f.review_at, f.order_id"""
    ).df()


def split_rows(rows: pd.DataFrame, split_at: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): train = reviews before split_at of orders whose outcome was known before it;
    test = every review of orders placed at or after split_at. No order is in both."""
    split = pd.Timestamp(split_at)
    train = rows[(rows["review_at"] < split) & (rows["known_at"] < split)]
    test = rows[rows["ordered_at"] >= split]
    return train, test


def fit(rows: pd.DataFrame, seed: int = 0) -> dict:
    """The model bundle fitted on labelled feature rows (`labelled_rows`). Raises when they hold only one
    class (no late or no on-time order to learn from)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if rows["late"].nunique() < 2:
        raise HandoffError(
            f"the learned score needs late and on-time orders to train on; found {len(rows)} review rows "
            f"({int(rows['late'].sum())} late): choose a longer period or more training months"
        )
    # A plain logistic regression: on this kind of history it held up better across months than
    # gradient boosting, whose scores drifted when the share of late orders moved (docs/backtest.md).
    clf = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)
    )
    clf.fit(rows[list(FEATURES)].astype(float), rows["late"].astype(int))
    return {"model": clf, "features": FEATURES, "trained_rows": len(rows), "trained_orders": int(rows["order_id"].nunique())}


def train(con: duckdb.DuckDBPyConnection, until: dt.datetime, seed: int = 0) -> tuple[dict, dict]:
    """Build the features and fit the model on the reviews before `until` of orders whose outcome was known
    before it (the model a site turns on: `policy.risk_score.model`). Returns (model bundle, facts about it)."""
    build_features(con)
    rows = labelled_rows(con)
    tr, _ = split_rows(rows, until)
    bundle = fit(tr, seed) | {"trained_until": str(until)}
    info = {
        "train_rows": len(tr),
        "train_orders": int(tr["order_id"].nunique()),
        "train_late_share": round(float(tr.groupby("order_id")["late"].first().mean()), 4),
        "trained_until": str(until),
        "model": "median impute + standard scale + LogisticRegression",
    }
    return bundle, info


def predict(bundle: dict, rows: pd.DataFrame) -> np.ndarray:
    """The late-hand-off probability of each feature row."""
    return bundle["model"].predict_proba(rows[list(bundle["features"])].astype(float))[:, 1]


def feature_table(bundle: dict) -> pd.DataFrame:
    """The features the score uses, with what each means (known at review time by construction)."""
    meaning = {
        "log_hours_left": "ln(1 + hours_left)",
        "hours_left": "hours from the review to the order's ship-by deadline; empty while it is not known",
        "hours_since_order": "hours since the order was placed",
        "released": "1 when released (approved) by the review",
        "hours_since_release": "hours since release; empty when not released by the review",
        "deadline_known": "1 when the ship-by deadline is known at the review (backtest.ship_by_known_from)",
        "n_lines": "order lines (items)",
        "units": "units ordered",
        "order_value": "order value (sum of line prices)",
        "n_ship_from": "how many ship-froms (sellers, sites) the order spans",
        "slack_days": "days between the ship-by deadline and the promised delivery date",
        "review_weekday": "weekday of the review (1 = Monday)",
        "review_hour": "hour of the review",
        "deadline_weekday": "weekday of the deadline",
        "deadline_hour": "hour of the deadline",
        "from_late_share": f"share of those late (pulled toward the site's share with weight {PRIOR_WEIGHT:g})",
        "from_release_to_handoff_h": "mean hours from release to hand-off of the ship-from's orders handed off by the review",
        "from_mean_delay_h": "mean hand-off time relative to the deadline (h, negative = early), same orders",
        "expected_remaining_h": "the ship-from's usual release-to-hand-off hours minus the hours since release",
        "margin_h": "hours_left minus expected_remaining_h (negative: behind the usual pace)",
        "behind_usual_h": "hours past the point, counted back from the deadline, where the ship-from usually hands off",
    }
    return pd.DataFrame({"feature": list(bundle["features"]), "meaning": [meaning[f] for f in bundle["features"]]})


def save_model(bundle: dict, path: Path) -> Path:
    """Write the model bundle with joblib (a pickle: load only files you wrote yourself)."""
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(bundle, path)
    return path


# --------------------------------------------------------------------------------------------
# the promise view


def risk_policy(settings: Settings) -> dict[str, Any]:
    """`policy.risk_score` of the site: {enabled, model (path), threshold}; enabled False when absent."""
    raw = (settings.raw.get("policy") or {}).get("risk_score") or {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{settings.where('policy', 'risk_score')}: policy.risk_score must be a mapping with enabled:, model:, threshold:")
    enabled = bool(raw.get("enabled", False))
    threshold = raw.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise SettingsError(f"{settings.where('policy', 'risk_score', 'threshold')}: policy.risk_score.threshold must be between 0 and 1")
    model = raw.get("model")
    if enabled and not model:
        raise SettingsError(
            f"{settings.where('policy', 'risk_score')}: policy.risk_score.enabled needs model: (the risk_model.joblib `handoff backtest` writes)"
        )
    path = (settings.path.resolve().parent / str(model)).resolve() if model else None
    return {"enabled": enabled, "model": path, "threshold": float(threshold)}


def apply_to_promise(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime) -> int:
    """When the site turns the score on (`policy.risk_score.enabled`), score every open order of the
    picture as of `now` and add `risk_score` to `promise`; a safe order whose score reaches the
    threshold becomes at_risk, with the score in its reason. Needs `promise` (promise.build_promise)
    and the loaded, linked extracts. Returns how many orders it turned at_risk (0 when off)."""
    import joblib

    from handoff_lib.history.asof_orders import order_history, replay

    rp = risk_policy(settings)
    con.execute("ALTER TABLE promise ADD COLUMN IF NOT EXISTS risk_score DOUBLE")
    if not rp["enabled"]:
        return 0
    if not rp["model"].exists():
        raise HandoffError(
            f"{rp['model']}: no risk model (policy.risk_score.model, {settings.where('policy', 'risk_score', 'model')}); "
            "run `handoff backtest` for the site to train one, or set enabled: false"
        )
    bundle = joblib.load(rp["model"])
    order_history(con, settings, dt.date(1900, 1, 1), dt.date(9999, 12, 30))
    replay(con, settings, [now], progress=False)
    rows = build_features(con)
    scores = rows[["order_id"]].assign(risk_score=predict(bundle, rows) if len(rows) else [])
    con.register("risk_now_df", scores)
    con.execute("UPDATE promise SET risk_score = s.risk_score FROM risk_now_df s WHERE promise.order_id = s.order_id")
    n = con.execute(
        """UPDATE promise SET promise_status = 'at_risk',
                  promise_reason = 'learned late-hand-off risk ' || printf('%.2f', risk_score) || ' >= ' || printf('%.2f', $t)
                                   || ' (policy.risk_score); ' || promise_reason
           WHERE promise_status = 'safe' AND risk_score >= $t""",
        {"t": rp["threshold"]},
    ).fetchall()[0][0]
    con.unregister("risk_now_df")
    return int(n)
