"""Calibrate the promise on the site's own history: which buffer (and per-customer buffers, and work
minutes where WMS history exists) to set, and whether to turn the learned score on, each with what it
delivered on months it was not chosen on.

Time-respecting evaluation, rolling origin (docs/backtest.md, "How to calibrate your site"):

* the period is cut into months; fold k trains on every month before its validation window (the
  learned score only), chooses every setting on the validation window (`VALIDATION_MONTHS` months), and
  is scored on the test month right after it. An order belongs to the period its deadline falls in, so
  no order is in two periods of a fold. The next fold moves one month on.
* `choose` picks, on the validation window alone, the setting with the most recall among those whose
  precision reaches the target (`--min-precision`); ties go to fewer false alarms, then more lead time,
  then the smaller setting. The test month's figures of that choice are what the fold reports; the mean
  and spread over the folds are what a recommendation promises.
* the recommended setting is the same choice made on the last validation window of the period (the most
  recent months): what the site would set today.

`run_backtest` is the whole job: load, replay (asof_orders), rules and warnings, scores (backtest), the
folds, the learned score per fold (risk), the recommendation; `handoff backtest` and `handoff calibrate`
both run it.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from handoff_lib.errors import HandoffError
from handoff_lib.history import asof_orders
from handoff_lib.history.engines import open_engine
from handoff_lib.load.settings import Settings
from handoff_lib.rules.policy import load_policy

from . import backtest as bt

MIN_PRECISION = 0.8  # the target: a warning should be right at least this often
VALIDATION_MONTHS = 2  # months a setting is chosen on
MIN_TRAIN_MONTHS = 2  # months before the first validation window (the learned score trains on them)
SCORE_THRESHOLDS = 80  # candidate thresholds of the learned score: quantiles of its validation scores
OFF = 2.0  # the "threshold" of the learned score turned off (a probability never reaches it)
MIN_CUSTOMER_ORDERS = 30  # a customer's own buffer needs this many scored orders in a validation window ...
MIN_CUSTOMER_LATE = 5  # ... of which this many late
MIN_WMS_ORDERS = 30  # observed step times need this many orders with both ends of the step
# Turn the learned score on only when, on the test months, it added at least ON_GAIN_PTS points of recall
# to the promise rule, in at least ON_SHARE of the months, and kept precision within PRECISION_SLACK of the target.
ON_GAIN_PTS = 2.0
ON_SHARE = 2 / 3
PRECISION_SLACK = 0.02

FAMILIES = (
    ("current", "Today's setting"),
    ("promise", "Promise rule, buffer chosen"),
    ("recommended", "Promise rule, buffer and customer buffers chosen"),
    ("hours_left", "Plain rule: hours left < X"),
    ("score", "Learned score alone"),
    ("promise_score", "Promise rule + learned score"),
)
FAMILY_NAMES = dict(FAMILIES)
FIGURES = ("precision", "recall", "median_lead_h", "false_alarms_per_review")


@dataclass(frozen=True)
class Fold:
    """One rolling-origin fold: train [train_from, validation_from), choose on [validation_from, test_from),
    score on [test_from, test_to). The final fold has no test: it chooses what to set today."""

    fold: int
    train_from: dt.datetime
    validation_from: dt.datetime
    test_from: dt.datetime
    test_to: dt.datetime
    final: bool = False

    def as_dict(self) -> dict:
        def day(t: dt.datetime) -> str:
            return str(t.date())

        last = self.test_to - dt.timedelta(days=1)
        out = {"fold": self.fold, "trained_on": [day(self.train_from), day(self.validation_from - dt.timedelta(days=1))],
               "chosen_on": [day(self.validation_from), day(self.test_from - dt.timedelta(days=1))]}
        if not self.final:
            out["tested_on"] = [day(self.test_from), day(last)]
        return out


def _months(settings: Settings, date_from: dt.date, date_to: dt.date) -> list[dt.datetime]:
    """Month boundaries in site time: date_from, every first of a month after it, the day after date_to."""
    out = [date_from]
    d = (date_from.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    while d <= date_to:
        out.append(d)
        d = (d + dt.timedelta(days=32)).replace(day=1)
    out.append(date_to + dt.timedelta(days=1))
    return [dt.datetime.combine(x, dt.time(0), settings.tz) for x in out]


def make_folds(
    settings: Settings, date_from: dt.date, date_to: dt.date, validation_months: int = VALIDATION_MONTHS,
    min_train_months: int = MIN_TRAIN_MONTHS,
) -> list[Fold]:
    """The rolling-origin folds of the period, oldest first, then the final one (choose on the last
    `validation_months` months). Raises when the period is too short for one fold."""
    b = _months(settings, date_from, date_to)
    n = len(b) - 1  # months (the first and last may be partial)
    folds = [
        Fold(i + 1, b[0], b[k], b[k + validation_months], b[k + validation_months + 1])
        for i, k in enumerate(range(min_train_months, n - validation_months))
    ]
    if not folds:
        raise HandoffError(
            f"{date_from} to {date_to} is {n} month(s): calibration needs at least {min_train_months + validation_months + 1} "
            f"({min_train_months} to train the learned score on, {validation_months} to choose settings on, 1 to test them on)"
        )
    k = n - validation_months
    folds.append(Fold(len(folds) + 1, b[0], b[k], b[n], b[n], final=True))
    return folds


def choose(rows: pd.DataFrame, min_precision: float, larger_is_safer: bool = False) -> tuple[pd.Series | None, bool]:
    """The setting to use, from the figures of one rule family on one period: the most recall among the
    settings whose precision reaches `min_precision`; ties go to fewer false alarms per review, more lead
    time, fewer warned orders, then the more cautious setting (the smaller buffer or X; with
    `larger_is_safer`, the higher threshold, "off" above all). When none reaches the target: the most
    precise (ties: more recall, then the more cautious). Returns (that row, whether it reaches the target);
    (None, False) when the period has no late order to choose on."""
    if rows.empty or int(rows["late_orders"].max()) == 0:
        return None, False
    r = rows.assign(
        _p=rows["precision"].fillna(0.0), _lead=rows["median_lead_h"].fillna(0.0), _fa=rows["false_alarms_per_review"].fillna(0.0),
        _cautious=-rows["value"] if larger_is_safer else rows["value"],
    )
    ok = r[(r["warned_orders"] > 0) & (r["_p"] >= min_precision - 1e-9)]
    if len(ok):
        best = ok.sort_values(["recall", "_fa", "_lead", "warned_orders", "_cautious"], ascending=[False, True, False, True, True],
                              kind="mergesort")
        return rows.loc[best.index[0]], True
    best = r.sort_values(["_p", "recall", "_cautious"], ascending=[False, False, True], kind="mergesort")
    return rows.loc[best.index[0]], False


# --------------------------------------------------------------------------------------------
# observed work minutes (WMS history)

OBSERVED_STEPS = """
WITH o AS (
    SELECT order_id, released_at, n_lines FROM bt_orders
    WHERE skip_reason IS NULL AND deadline >= $start AND deadline < $end
),
pick AS (SELECT order_id, max(updated_at) AS picked_at FROM linked_pick_tasks WHERE link_status = 'linked' AND order_id IS NOT NULL
         GROUP BY order_id HAVING bool_and(status = 'picked' AND updated_at IS NOT NULL)),
pack AS (SELECT order_id, max(event_at) AS packed_at FROM linked_pack_events WHERE link_status = 'linked' AND status = 'packed'
         GROUP BY order_id),
ship AS (SELECT order_id, max(label_created_at) AS label_at, max(manifested_at) AS manifest_at FROM linked_shipments
         WHERE link_status = 'linked' GROUP BY order_id HAVING count(label_created_at) = count(*)),
steps AS (
    SELECT 'pick_per_line' AS step, (epoch(p.picked_at) - epoch(o.released_at)) / 60.0 / o.n_lines AS minutes
    FROM o JOIN pick p USING (order_id)
    UNION ALL SELECT 'pack', (epoch(k.packed_at) - epoch(p.picked_at)) / 60.0 FROM pick p JOIN pack k USING (order_id) JOIN o USING (order_id)
    UNION ALL SELECT 'label', (epoch(s.label_at) - epoch(k.packed_at)) / 60.0 FROM pack k JOIN ship s USING (order_id) JOIN o USING (order_id)
    UNION ALL SELECT 'manifest', (epoch(s.manifest_at) - epoch(s.label_at)) / 60.0 FROM ship s JOIN o USING (order_id)
    WHERE s.manifest_at IS NOT NULL
)
SELECT step, count(*) AS orders, median(greatest(minutes, 0)) AS median_min, quantile_cont(greatest(minutes, 0), 0.75) AS p75_min
FROM steps WHERE minutes IS NOT NULL GROUP BY step
"""


def observed_work_minutes(
    con: duckdb.DuckDBPyConnection, settings: Settings, start: dt.datetime, end: dt.datetime
) -> tuple[pd.DataFrame, dict[str, int] | None]:
    """Work minutes per step as observed in the WMS and carrier history of the orders due in [start, end):
    pick per line = release to last pick / lines; pack = last pick to last packed carton; label = packed to
    label; manifest = label to manifest (medians over orders). Returns (one row per step: current setting,
    orders observed, median, 75th percentile, what to set) and the work minutes to use, or None when no step
    has MIN_WMS_ORDERS orders observed (no WMS history: the policy's values stay)."""
    policy = load_policy(settings)
    seen = {r[0]: r for r in con.execute(OBSERVED_STEPS, {"start": start, "end": end}).fetchall()}
    rows, work, any_seen = [], dict(policy.work_minutes), False
    for step in ("pick_per_line", "pack", "label", "manifest"):
        n, med, p75 = (seen[step][1], seen[step][2], seen[step][3]) if step in seen else (0, None, None)
        enough = n >= MIN_WMS_ORDERS
        if enough:
            work[step] = max(1, round(med))
            any_seen = True
        rows.append((step, policy.work_minutes[step], int(n), None if med is None else round(med, 1),
                     None if p75 is None else round(p75, 1), work[step],
                     "observed median" if enough else f"kept: {n} orders observed (needs {MIN_WMS_ORDERS})"))
    df = pd.DataFrame(rows, columns=["step", "current_min", "orders_observed", "median_min", "p75_min", "proposed_min", "basis"])
    return df, (work if any_seen else None)


# --------------------------------------------------------------------------------------------
# the learned score, fold by fold

SCORE_WARNINGS = """
(SELECT s.fold, s.review_at, s.order_id, k.rule, k.setting
 FROM bt_score_rows s JOIN bt_score_settings k ON k.fold = s.fold
  AND ((k.rule = 'learned score' AND s.score >= k.value)
    OR (k.rule = 'promise + learned score' AND (s.promise_warns OR s.score >= k.value))))
"""
# the promise rule of each fold as chosen on its validation window: the site buffer, or a customer's own
FOLD_PROMISE_WARNINGS = """
(SELECT b.fold, w.review_at, w.order_id, 'recommended' AS rule, 'site + customer buffers' AS setting
 FROM bt_warnings w JOIN bt_orders o USING (order_id) JOIN bt_fold_buffers b ON w.rule = 'promise'
 LEFT JOIN bt_fold_customer_buffers c ON c.fold = b.fold AND c.customer_id = o.customer_id
 WHERE w.value = coalesce(c.value, b.value))
"""


# every test month's rows, scored by the model of its own fold
POOLED_TEST_ROWS = """
SELECT s.fold, s.review_at, s.order_id, s.score FROM bt_score_rows s JOIN bt_periods p ON p.fold = s.fold AND p.period = 'test'
JOIN bt_orders o USING (order_id) WHERE o.deadline >= p.start_at AND o.deadline < p.end_at
"""
POOLED_WARNINGS = f"""
(SELECT NULL::INTEGER AS fold, t.review_at, t.order_id, k.rule, k.setting
 FROM ({POOLED_TEST_ROWS}) t JOIN bt_curve_settings k ON t.score >= k.value)
"""
CURVE_SETTINGS = "(SELECT *, NULL::INTEGER AS fold FROM bt_curve_settings)"
POOLED_PERIOD = "(SELECT * FROM bt_periods WHERE fold = 0 AND period = 'test months')"
# the promise sweep by customer on the validation windows (per-customer buffers)
SWEEP_WARNINGS = "(SELECT *, CAST(NULL AS INTEGER) AS fold FROM bt_warnings WHERE rule = 'promise')"
SWEEP_SETTINGS = "(SELECT *, CAST(NULL AS INTEGER) AS fold FROM bt_rule_settings WHERE rule = 'promise')"
VALIDATION_PERIODS = "(SELECT * FROM bt_periods WHERE period = 'validation')"
# the promise rule each fold chose (FOLD_PROMISE_WARNINGS) as one setting per fold
FOLD_PROMISE_SETTINGS = "(SELECT b.fold, 'recommended' AS rule, 'site + customer buffers' AS setting, b.value, 0 AS rank FROM bt_fold_buffers b)"


def _score_folds(
    con: duckdb.DuckDBPyConnection, folds: list[Fold], progress: bool
) -> tuple[pd.DataFrame, dict, dict]:
    """Train the learned score once per fold on the orders due before its validation window, score that
    window and the test month, and score the score as a rule (alone, and on top of the fold's promise rule)
    at thresholds taken from the validation scores only. Returns (figures per fold, period and threshold;
    the final fold's model bundle; facts about the fits)."""
    from tqdm.auto import tqdm

    from . import risk

    risk.build_features(con)
    rows = risk.labelled_rows(con)
    warns = con.execute(f"SELECT DISTINCT fold, review_at, order_id FROM {FOLD_PROMISE_WARNINGS}").df()
    score_rows, settings_rows, fits, final_bundle = [], [], [], None
    for f in tqdm(folds, desc="learned score per fold", unit="fold", disable=not progress):
        deadline = rows["true_deadline"]
        train = rows[deadline < pd.Timestamp(f.validation_from)]
        use = rows[(deadline >= pd.Timestamp(f.validation_from)) & (deadline < pd.Timestamp(f.test_to))]
        val_mask = use["true_deadline"] < pd.Timestamp(f.test_from)
        if train["late"].nunique() < 2 or not val_mask.any():
            fits.append({"fold": f.fold, "skipped": "no late and on-time orders to train on, or nothing to choose on"})
            continue
        bundle = risk.fit(train)
        s = risk.predict(bundle, use)
        # thresholds from the validation window's scores only: the test month never shapes a choice
        cuts = sorted(set(np.round(np.quantile(s[val_mask.to_numpy()], np.linspace(0.0, 0.9995, SCORE_THRESHOLDS)), 4)))
        fw = warns[warns["fold"] == f.fold][["review_at", "order_id"]].assign(promise_warns=True)
        part = use[["review_at", "order_id"]].assign(fold=f.fold, score=s).merge(fw, on=["review_at", "order_id"], how="left")
        part["promise_warns"] = part["promise_warns"].fillna(False).astype(bool)
        score_rows.append(part)
        for rule in ("learned score", "promise + learned score"):
            values = cuts + ([OFF] if rule == "promise + learned score" else [])
            settings_rows += [(f.fold, rule, "off" if v == OFF else f"score >= {v:.4f}", float(v)) for v in values]
        fits.append({"fold": f.fold, "train_rows": len(train), "train_orders": int(train["order_id"].nunique()),
                     "train_late_share": round(float(train.groupby("order_id")["late"].first().mean()), 4)})
        if f.final:
            final_bundle = bundle | {"trained_until": str(f.validation_from)}
    if not score_rows:
        return pd.DataFrame(), None, {"fits": fits}
    bt._store(con, "bt_score_rows", pd.concat(score_rows, ignore_index=True))
    ks = pd.DataFrame(settings_rows, columns=["fold", "rule", "setting", "value"])
    ks["rank"] = range(len(ks))
    bt._store(con, "bt_score_settings", ks)
    figures = bt.score(con, warnings=SCORE_WARNINGS, rules="bt_score_settings")
    return figures, final_bundle, {"fits": fits, "model": "median impute + standard scale + LogisticRegression"}


# --------------------------------------------------------------------------------------------
# per-customer buffers

# scored orders (and late ones) per customer in each validation window
CUSTOMER_COUNTS = """
SELECT p.fold, o.customer_id, count(*) AS orders, count(*) FILTER (WHERE o.late) AS late
FROM bt_periods p JOIN bt_orders o ON o.deadline >= p.start_at AND o.deadline < p.end_at
WHERE p.period = 'validation' AND o.outcome IN ('on time', 'late: never handed off', 'late: handed off after the deadline')
GROUP BY ALL
"""


def _customer_buffers(
    con: duckdb.DuckDBPyConnection, folds: list[Fold], site_choice: dict[int, float], min_precision: float
) -> tuple[dict[int, dict[str, float]], dict]:
    """Per fold, the customers whose own buffer (chosen on their validation-window orders) does better there
    than the site's: {fold: {customer: buffer}}; and what the data supports (how many customers qualified)."""
    counts = con.execute(CUSTOMER_COUNTS).df()
    most = int(counts["orders"].max()) if len(counts) else 0
    qualify = counts[(counts["orders"] >= MIN_CUSTOMER_ORDERS) & (counts["late"] >= MIN_CUSTOMER_LATE)]
    support = {
        "customers_qualifying": int(qualify["customer_id"].nunique()),
        "most_orders_of_one_customer_in_a_window": most,
        "needs": f"{MIN_CUSTOMER_ORDERS} scored orders, {MIN_CUSTOMER_LATE} of them late, in a validation window",
    }
    if qualify.empty:  # the data does not support a customer's own buffer: skip scoring by customer
        return {}, support
    by = bt.score(con, warnings=SWEEP_WARNINGS, rules=SWEEP_SETTINGS, by="customer", periods=VALIDATION_PERIODS)
    eligible = by[(by["scored_orders"] >= MIN_CUSTOMER_ORDERS) & (by["late_orders"] >= MIN_CUSTOMER_LATE)]
    out: dict[int, dict[str, float]] = {}
    for (fold, customer), rows in eligible.groupby(["fold", "grp"], sort=True):
        if fold not in site_choice:
            continue
        mine, ok = choose(rows, min_precision)
        if mine is None or mine["value"] == site_choice[fold]:
            continue
        site = rows[rows["value"] == site_choice[fold]].iloc[0]
        site_ok = (site["precision"] or 0) >= min_precision - 1e-9 if site["warned_orders"] else False
        better = (ok and not site_ok) or (ok == site_ok and mine["recall"] > site["recall"])
        if better:
            out.setdefault(int(fold), {})[str(customer)] = float(mine["value"])
    return out, support


# --------------------------------------------------------------------------------------------
# the whole job


def _spread(values: list[float]) -> dict:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    return {"mean": round(float(np.mean(v)), 4), "sd": round(float(np.std(v, ddof=1)), 4) if len(v) > 1 else 0.0,
            "min": round(float(min(v)), 4), "max": round(float(max(v)), 4), "n": len(v)}


def _replay_and_score(con, settings: Settings, eng, folds: list[Fold], date_from: dt.date, date_to: dt.date):
    """After the replay: observed work minutes, the rules' warnings, the periods of the folds, and every rule
    setting's figures per period (on `eng`). Returns (scores, review rows before the deadline was known,
    work-minutes table, observed work minutes or None)."""
    hidden = int(con.execute("SELECT count(*) FROM bt_review_rows WHERE NOT deadline_known").fetchall()[0][0])
    start, end = asof_orders.period_bounds(settings, date_from, date_to)
    work_table, observed = observed_work_minutes(con, settings, start, end)
    rules, custom = bt.rule_settings(settings, work_minutes=observed)
    bt.warnings_of(con, settings, rules, custom, engine=eng)
    tested = [f for f in folds if not f.final]
    periods = [(0, "all", start, end), (0, "test months", tested[0].test_from, tested[-1].test_to)]
    for f in folds:
        periods.append((f.fold, "validation", f.validation_from, f.test_from))
        if not f.final:
            periods.append((f.fold, "test", f.test_from, f.test_to))
    bt.set_periods(con, periods, engine=eng)
    return bt.score(con, engine=eng), hidden, work_table, observed


def run_backtest(
    settings: Settings,
    date_from: dt.date,
    date_to: dt.date,
    times: tuple[dt.time, ...],
    deadline: str = "latest",
    min_precision: float = MIN_PRECISION,
    validation_months: int = VALIDATION_MONTHS,
    min_train_months: int = MIN_TRAIN_MONTHS,
    with_risk: bool = True,
    progress: bool = True,
    con: duckdb.DuckDBPyConnection | None = None,
    engine: str = "duckdb",
) -> bt.BacktestResult:
    """Load the history, replay the reviews, score the rules over the whole period, and calibrate: rolling-
    origin folds, every setting chosen on a validation window and scored on the month after it, the learned
    score trained per fold (with_risk), the recommendation. Returns every table; `meta['calibration']` holds
    the chosen settings, the periods they were chosen and tested on, and the test figures. `engine` 'spark'
    runs the replay and the sweep's scores on Spark (engines.py); the promise decision, the choices and the
    learned score stay on DuckDB and scikit-learn."""
    if not 0 < min_precision <= 1:
        raise HandoffError(f"--min-precision {min_precision}: expected a share between 0 and 1, e.g. 0.8")
    t0 = time.perf_counter()
    con = bt.load_history(settings, con, progress=progress)
    t_load = time.perf_counter() - t0
    policy = load_policy(settings)
    folds = make_folds(settings, date_from, date_to, validation_months, min_train_months)
    accounting = asof_orders.order_history(con, settings, date_from, date_to, deadline)
    reviews = asof_orders.review_times(settings, date_from, date_to, times)
    t1 = time.perf_counter()
    eng = open_engine(engine, con)
    try:
        n_rows = asof_orders.replay(con, settings, reviews, progress=progress, engine=eng)
        scores, hidden, work_table, observed = _replay_and_score(con, settings, eng, folds, date_from, date_to)
    finally:
        if not asof_orders.runs_on(eng, con):
            eng.close()
    t_replay = time.perf_counter() - t1

    # choose on each validation window, report the test month after it
    chosen: dict[tuple[int, str], pd.Series | None] = {}
    meets: dict[tuple[int, str], bool] = {}
    for f in folds:
        val = scores[(scores["fold"] == f.fold) & (scores["period"] == "validation")]
        for family, rule in (("promise", "promise"), ("hours_left", "hours left < X")):
            chosen[(f.fold, family)], meets[(f.fold, family)] = choose(val[val["rule"] == rule], min_precision)
        chosen[(f.fold, "current")], meets[(f.fold, "current")] = val[val["rule"] == bt.CURRENT].iloc[0], True
    site_choice = {f.fold: float(chosen[(f.fold, "promise")]["value"]) for f in folds if chosen[(f.fold, "promise")] is not None}
    customers, support = _customer_buffers(con, folds, site_choice, min_precision)
    bt._store(con, "bt_fold_buffers", pd.DataFrame({"fold": list(site_choice), "value": list(site_choice.values())}))
    bt._store(con, "bt_fold_customer_buffers", pd.DataFrame(
        [(f, c, v) for f, m in customers.items() for c, v in m.items()], columns=["fold", "customer_id", "value"]
    ).astype({"fold": "int64", "customer_id": str, "value": float}))
    rec = bt.score(con, warnings=FOLD_PROMISE_WARNINGS, rules=FOLD_PROMISE_SETTINGS)
    figures = [scores[scores["fold"] > 0], rec]
    for f in folds:
        part = rec[(rec["fold"] == f.fold) & (rec["period"] == "validation")]
        chosen[(f.fold, "recommended")] = part.iloc[0] if len(part) else None
        meets[(f.fold, "recommended")] = bool(len(part)) and (part.iloc[0]["precision"] or 0) >= min_precision - 1e-9

    t2 = time.perf_counter()
    bundle, risk_info = None, {}
    if with_risk:
        sf, bundle, risk_info = _score_folds(con, folds, progress)
        if len(sf):
            figures.append(sf)
            for f in folds:
                val = sf[(sf["fold"] == f.fold) & (sf["period"] == "validation")]
                for family, rule in (("score", "learned score"), ("promise_score", "promise + learned score")):
                    chosen[(f.fold, family)], meets[(f.fold, family)] = choose(val[val["rule"] == rule], min_precision, larger_is_safer=True)
    t_risk = time.perf_counter() - t2
    fold_scores = pd.concat(figures, ignore_index=True)

    calibration = _per_fold(folds, chosen, meets, fold_scores)
    summary, verdicts = _summarise(calibration, min_precision)
    final = folds[-1]
    recommended = _recommendation(settings, policy, final, chosen, customers, observed, support, verdicts)
    fixed = _fixed_on_earlier_months(fold_scores, folds, recommended["buffer_minutes"])
    if fixed:
        summary["fixed"] = fixed

    n_with, n_late = bt.late_handoffs(con)
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
        "ship_by_known_from": asof_orders.ship_by_known_from(settings),
        "orders": int(accounting["orders"].sum()),
        "review_rows": n_rows,
        "review_rows_deadline_not_yet_known": hidden,
        "late_share_pct": round(100 * late / max(int(scored["orders"].sum()), 1), 2),
        "orders_with_items_and_handoff": n_with,
        "handed_off_after_latest_ship_by": n_late,
        "load_s": round(t_load, 2),
        "replay_s": round(t_replay, 2),
        "risk_s": round(t_risk, 2),
        "calibration": {
            "min_precision": min_precision,
            "rule": (f"each setting is chosen on its validation window: the most recall at precision >= {min_precision}, "
                     "ties to fewer false alarms, more lead time, the smaller setting; figures are of the test month after it"),
            "folds": [f.as_dict() for f in folds],
            "recommended": recommended,
            "test": {k: v for k, v in summary.items()},
            "verdicts": verdicts,
            "current": {"buffer_minutes": policy.buffer_minutes, "buffer_by_customer": policy.buffer_by_customer,
                        "work_minutes": policy.work_minutes, "risk_score": _current_risk(settings)},
            "customer_buffers_support": support,
            "work_minutes_observed": observed is not None,
            "learned_score": risk_info,
        },
    }
    whole = scores[scores["fold"] == 0].drop(columns=["fold", "grp"])
    tables = {
        "accounting": accounting,
        "skipped": skipped,
        "bridge": bt.bridge(con),
        "rules": whole[whole["period"] == "all"].drop(columns=["period"]),
        "test_sweep": whole[whole["period"] == "test months"].drop(columns=["period"]),
        "folds": _fold_table(con, folds),
        "fold_scores": fold_scores.drop(columns=["grp"]),
        "calibration": calibration,
        "calibration_summary": _summary_table(summary),
        "work_minutes": work_table,
    }
    if with_risk and bundle is not None:
        from . import risk

        tables["risk_curve"] = _pooled_score_curve(con)
        tables["risk_features"] = risk.feature_table(bundle)
        meta["_model"] = bundle
    meta["wall_s"] = round(time.perf_counter() - t0, 2)
    return bt.BacktestResult(tables, meta)


def _current_risk(settings: Settings) -> dict:
    from .risk import risk_policy

    rp = risk_policy(settings)
    return {"enabled": rp["enabled"], "threshold": rp["threshold"]}


def _per_fold(folds: list[Fold], chosen: dict, meets: dict, fold_scores: pd.DataFrame) -> pd.DataFrame:
    """One row per fold and rule family: what was chosen on the validation window, and its figures there
    and on the test month."""
    rule_of = {"current": bt.CURRENT, "promise": "promise", "recommended": "recommended", "hours_left": "hours left < X",
               "score": "learned score", "promise_score": "promise + learned score"}
    out = []
    for f in folds:
        for family, name in FAMILIES:
            row = chosen.get((f.fold, family))
            if row is None:
                continue
            test = fold_scores[(fold_scores["fold"] == f.fold) & (fold_scores["period"] == "test")
                               & (fold_scores["rule"] == rule_of[family]) & (fold_scores["setting"] == row["setting"])]
            t = test.iloc[0] if len(test) else None
            d = f.as_dict()
            out.append({
                "fold": f.fold, "final": f.final, "family": family, "rule": name, "setting": row["setting"], "value": row["value"],
                "chosen_from": d["chosen_on"][0], "chosen_to": d["chosen_on"][1],
                "tested_from": d.get("tested_on", [None, None])[0], "tested_to": d.get("tested_on", [None, None])[1],
                "meets_target_on_validation": bool(meets.get((f.fold, family))),
                "validation_precision": row["precision"], "validation_recall": row["recall"],
                **{f"test_{k}": (None if t is None else t[k]) for k in FIGURES},
                "test_orders": None if t is None else t["scored_orders"], "test_late_orders": None if t is None else t["late_orders"],
            })
    return pd.DataFrame(out)


def _summarise(calibration: pd.DataFrame, min_precision: float) -> tuple[dict, dict]:
    """Mean and spread over the test folds per family; and the verdicts: does the learned score beat the
    plain rule, and should it be turned on."""
    tested = calibration[~calibration["final"]]
    summary = {}
    for family, name in FAMILIES:
        part = tested[tested["family"] == family]
        if part.empty:
            continue
        summary[family] = {
            "rule": name,
            "tested_on": [str(part["tested_from"].min()), str(part["tested_to"].max())],
            "folds": len(part),
            "settings_chosen": part["setting"].value_counts().to_dict(),
            **{k: _spread(part[f"test_{k}"].astype(float).tolist()) for k in FIGURES},
        }
    verdicts = {}

    def paired(a: str, b: str) -> dict | None:
        x = tested[tested["family"] == a].set_index("fold")
        y = tested[tested["family"] == b].set_index("fold")
        common = x.index.intersection(y.index)
        if not len(common):
            return None
        dr = (x.loc[common, "test_recall"].astype(float) - y.loc[common, "test_recall"].astype(float)) * 100
        dl = x.loc[common, "test_median_lead_h"].astype(float) - y.loc[common, "test_median_lead_h"].astype(float)
        return {"folds": len(common), "recall_gain_pts": _spread(dr.tolist()), "lead_gain_h": _spread(dl.tolist()),
                "better_recall_in": int((dr > 0).sum()), "worse_recall_in": int((dr < 0).sum()),
                "precision": _spread(x.loc[common, "test_precision"].astype(float).tolist()),
                "other_precision": _spread(y.loc[common, "test_precision"].astype(float).tolist())}

    vs_plain = paired("score", "hours_left")
    if vs_plain:
        gain = vs_plain["recall_gain_pts"]["mean"] or 0.0
        beats = gain > 0 and vs_plain["better_recall_in"] > vs_plain["worse_recall_in"]
        vs_plain["beats"] = bool(beats)
        verdicts["score_vs_plain_rule"] = vs_plain
    on_top = paired("promise_score", "recommended")
    if on_top:
        gain = on_top["recall_gain_pts"]["mean"] or 0.0
        share = on_top["better_recall_in"] / on_top["folds"]
        prec = on_top["precision"]["mean"] or 0.0
        on_top["turn_on"] = bool(gain >= ON_GAIN_PTS and share >= ON_SHARE and prec >= min_precision - PRECISION_SLACK)
        on_top["rule"] = (f"on when it adds >= {ON_GAIN_PTS:g} points of recall on the test months, in >= {ON_SHARE:.0%} of them, "
                          f"at precision >= {min_precision - PRECISION_SLACK:.2f}")
        verdicts["score_on_top_of_promise"] = on_top
    return summary, verdicts


def _recommendation(settings, policy, final: Fold, chosen: dict, customers: dict, observed, support: dict, verdicts: dict) -> dict:
    """What to set today: the choices on the last validation window."""
    d = final.as_dict()
    out: dict = {"chosen_on": d["chosen_on"]}
    p = chosen.get((final.fold, "promise"))
    out["buffer_minutes"] = int(p["value"]) if p is not None else policy.buffer_minutes
    out["buffer_by_customer"] = {c: int(v) for c, v in customers.get(final.fold, {}).items()}
    out["work_minutes"] = observed
    on = verdicts.get("score_on_top_of_promise", {}).get("turn_on", False)
    s = chosen.get((final.fold, "promise_score"))
    threshold = float(s["value"]) if s is not None and float(s["value"]) < OFF else None
    out["risk_score"] = {"enabled": bool(on and threshold is not None), "threshold": round(threshold, 4) if threshold else None}
    h = chosen.get((final.fold, "hours_left"))
    out["plain_rule_x_hours"] = float(h["value"]) if h is not None else None
    return out


def _fixed_on_earlier_months(fold_scores: pd.DataFrame, folds: list[Fold], buffer: int) -> dict | None:
    """The recommended buffer, as one fixed setting, on the test months before the window it was chosen on
    (held out from that choice): mean and spread."""
    final = folds[-1]
    early = [f.fold for f in folds if not f.final and f.test_to <= final.validation_from]
    part = fold_scores[(fold_scores["period"] == "test") & (fold_scores["rule"] == "promise") & (fold_scores["value"] == buffer)
                       & fold_scores["fold"].isin(early)]
    if part.empty:
        return None
    first = next(f for f in folds if f.fold == part["fold"].min())
    last = next(f for f in folds if f.fold == part["fold"].max())
    return {
        "rule": f"Recommended buffer ({buffer} min) on the earlier test months",
        "tested_on": [str(first.test_from.date()), str((last.test_to - dt.timedelta(days=1)).date())],
        "folds": len(part),
        "settings_chosen": {f"buffer {buffer} min": len(part)},
        **{k: _spread(part[k].astype(float).tolist()) for k in FIGURES},
    }


def _fold_table(con: duckdb.DuckDBPyConnection, folds: list[Fold]) -> pd.DataFrame:
    rows = []
    for f in folds:
        d = f.as_dict()
        vo, vl = bt.scored_between(con, f.validation_from, f.test_from)
        to, tl = bt.scored_between(con, f.test_from, f.test_to) if not f.final else (None, None)
        rows.append({"fold": f.fold, "final": f.final, "trained_from": d["trained_on"][0], "trained_to": d["trained_on"][1],
                     "chosen_from": d["chosen_on"][0], "chosen_to": d["chosen_on"][1],
                     "tested_from": d.get("tested_on", [None, None])[0], "tested_to": d.get("tested_on", [None, None])[1],
                     "validation_orders": vo, "validation_late": vl, "test_orders": to, "test_late": tl})
    return pd.DataFrame(rows)


def _summary_table(summary: dict) -> pd.DataFrame:
    rows = []
    for family, s in summary.items():
        row = {"family": family, "rule": s["rule"], "tested_from": s["tested_on"][0], "tested_to": s["tested_on"][1], "folds": s["folds"],
               "settings_chosen": "; ".join(f"{k} ({v})" for k, v in s["settings_chosen"].items())}
        for k in FIGURES:
            for stat in ("mean", "sd", "min", "max"):
                row[f"{k}_{stat}"] = s[k][stat]
        rows.append(row)
    return pd.DataFrame(rows)


def _pooled_score_curve(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The learned score as a rule at common thresholds over the test months pooled (each month scored by
    its own fold's model): a chart's curve, nothing is chosen on it."""
    qs = np.linspace(0.0, 0.999, 100)
    test_rows = con.execute(f"SELECT score FROM ({POOLED_TEST_ROWS})").fetchnumpy()["score"]
    cuts = sorted(set(np.round(np.quantile(test_rows, qs), 4))) if len(test_rows) else []
    ks = pd.DataFrame({"rule": "learned score", "setting": [f"score >= {c:.4f}" for c in cuts], "value": cuts})
    ks["rank"] = range(len(ks))
    bt._store(con, "bt_curve_settings", ks)
    df = bt.score(con, warnings=POOLED_WARNINGS, rules=CURVE_SETTINGS, periods=POOLED_PERIOD)
    return df.drop(columns=["fold", "period", "grp"])


# --------------------------------------------------------------------------------------------
# what the report notebook calls


def load_or_run(site_file: str, date_from: str, date_to: str, reviews: str, tables_dir: str = "", data_folder: str = "",
                min_precision: float = MIN_PRECISION) -> bt.BacktestResult:
    """The report notebook's one call: the tables `handoff backtest` wrote into `tables_dir`, or (when it is
    empty) a fresh backtest with these parameters, as parsed from the notebook's strings."""
    from handoff_lib.load.settings import load_settings

    if tables_dir:
        return bt.BacktestResult.read(Path(tables_dir))
    settings = load_settings(site_file, data_folder=data_folder or None)
    result = run_backtest(settings, bt.parse_date(date_from, "date_from"), bt.parse_date(date_to, "date_to"), bt.parse_times(reviews),
                          min_precision=min_precision, progress=False)
    result.meta.pop("_model", None)
    return result


# --------------------------------------------------------------------------------------------
# the proposed change to the site file


def proposed_changes(calibration: dict, model: Path | None, site_file: Path) -> dict[tuple[str, ...], object]:
    """The settings to change (path of keys -> value) for the site to use the recommendation: only those
    that differ from today's. `model`: the learned score's model file, written beside the report (its path
    is written relative to the site file)."""
    import os

    rec, cur = calibration["recommended"], calibration["current"]
    out: dict[tuple[str, ...], object] = {}
    if rec["buffer_minutes"] != cur["buffer_minutes"]:
        out[("policy", "buffer_minutes")] = int(rec["buffer_minutes"])
    for customer, minutes in rec["buffer_by_customer"].items():
        if cur["buffer_by_customer"].get(customer) != minutes:
            out[("policy", "buffer_by_customer", customer)] = int(minutes)
    for step, minutes in (rec.get("work_minutes") or {}).items():
        if cur["work_minutes"].get(step) != minutes:
            out[("policy", "work_minutes", step)] = int(minutes)
    rs = rec["risk_score"]
    if rs["enabled"] and model is not None:
        out[("policy", "risk_score", "enabled")] = True
        out[("policy", "risk_score", "threshold")] = float(rs["threshold"])
        out[("policy", "risk_score", "model")] = Path(os.path.relpath(model.resolve(), site_file.resolve().parent)).as_posix()
    elif cur["risk_score"]["enabled"]:
        out[("policy", "risk_score", "enabled")] = False
    return out
