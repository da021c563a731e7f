"""Backtesting the promise rules on real order history (the Olist 2017 sample beside the repo, read
through parameters/olist.yaml): every order accounted for, each review sees only its past, and the
rules are scored against what happened."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from handoff_lib import backtest as bt
from handoff_lib.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "parameters" / "olist.yaml"
DATA = (SITE.parent / "../../shared/data/olist-2017-10k").resolve()
TIMES = (dt.time(9), dt.time(12), dt.time(16))

needs_history = pytest.mark.skipif(
    not (DATA / "orders.csv").exists(),
    reason=f"Olist history not found at {DATA} (shared/data/olist-2017-10k beside the repo); backtests need it",
)


@needs_history
def test_reading_through_the_mapping_finds_952_of_9753_orders_handed_off_after_their_latest_ship_by(year):
    _, con, result = year
    assert bt.late_handoffs(con) == (9753, 952)
    assert result.meta["handed_off_after_latest_ship_by"] == 952


@needs_history
def test_every_order_is_accounted_for_once_and_skips_are_counted_by_reason(year):
    _, con, result = year
    acc = result.tables["accounting"]
    assert int(acc["orders"].sum()) == 10_000
    skipped = dict(zip(result.tables["skipped"]["reason"], result.tables["skipped"]["orders"]))
    assert skipped == {"no items": 111, "missing approval": 3, "hand-off before approval": 16}
    # a skipped order never reaches a review
    leaked = con.execute(
        "SELECT count(*) FROM bt_review_rows r JOIN bt_orders o USING (order_id) WHERE o.skip_reason IS NOT NULL"
    ).fetchall()[0][0]
    assert leaked == 0


@needs_history
def test_an_order_is_reviewed_only_while_placed_open_and_before_its_deadline(year):
    _, con, _ = year
    bad = con.execute(
        """SELECT count(*) FROM bt_review_rows r JOIN bt_orders o USING (order_id)
           WHERE r.review_at < o.ordered_at OR r.review_at >= o.deadline OR o.handed_off_at <= r.review_at
              OR (r.released_at IS NOT NULL AND r.released_at > r.review_at)
              OR (r.released_at IS NULL AND o.released_at <= r.review_at)"""
    ).fetchall()[0][0]
    assert bad == 0


@needs_history
def test_rules_are_scored_by_setting_with_precision_recall_and_lead_time(year):
    _, _, result = year
    rules = result.tables["rules"]
    promise = rules[rules["rule"] == "promise"]
    assert len(promise) >= 5 and promise["setting"].str.contains("policy").any()
    baseline = rules[rules["rule"] == "hours left < X"].set_index("setting")
    assert baseline.loc["X = 24 h", "recall"] > baseline.loc["X = 4 h", "recall"]
    assert baseline.loc["X = 24 h", "precision"] < baseline.loc["X = 4 h", "precision"]
    assert baseline.loc["X = 24 h", "median_lead_h"] > baseline.loc["X = 4 h", "median_lead_h"]
    # a wider buffer warns earlier and about more orders
    assert promise["warned_orders"].is_monotonic_increasing and promise["median_lead_h"].is_monotonic_increasing


def _as_of(con, settings, at: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Warnings and learned-score features of one review."""
    from handoff_lib import risk

    bt.replay(con, [at], progress=False)
    bt.warnings_of(con, settings, bt.rule_settings(settings))
    warnings = con.execute("SELECT rule, setting, order_id, minutes_left FROM bt_warnings ORDER BY ALL").df()
    features = risk.build_features(con)
    return warnings, features.sort_values("order_id").reset_index(drop=True)


@needs_history
def test_shuffling_what_happened_after_a_review_does_not_change_its_warnings_or_features():
    settings = load_settings(SITE)
    con = bt.load_history(settings)
    bt.order_history(con, settings, dt.date(2017, 1, 1), dt.date(2017, 12, 31))
    at = dt.datetime(2017, 6, 14, 12, 0, tzinfo=settings.tz)
    warnings, features = _as_of(con, settings, at)
    assert len(warnings) > 0 and len(features) > 20
    # Rewrite every fact dated after the review: hand-offs move to random later times (or never
    # happen), later releases move, statuses and cancellations change. Skip reasons are judged on
    # the whole history (data quality), so the rewrite keeps hand-offs after releases.
    con.execute("SELECT setseed(0.42)")
    con.execute(
        """UPDATE bt_orders SET
             released_at = CASE WHEN released_at > $at THEN $at + to_seconds(CAST(1 + random() * 86400 * 5 AS BIGINT))
                                ELSE released_at END"""
        , {"at": at}
    )
    con.execute(
        """UPDATE bt_orders SET
             handed_off_at = CASE WHEN handed_off_at > $at OR handed_off_at IS NULL THEN
                                  CASE WHEN random() < 0.2 THEN NULL
                                       ELSE greatest($at, released_at) + to_seconds(CAST(1 + random() * 86400 * 20 AS BIGINT)) END
                             ELSE handed_off_at END,
             release_status = CASE WHEN random() < 0.3 THEN 'cancelled' ELSE release_status END,
             cancelled_at = CASE WHEN random() < 0.1 THEN $at + INTERVAL 3 DAY ELSE cancelled_at END,
             late = random() < 0.5"""
        , {"at": at}
    )
    changed = con.execute("SELECT count(*) FROM bt_orders WHERE handed_off_at > $at OR handed_off_at IS NULL", {"at": at}).fetchall()
    assert changed[0][0] > 1000
    warnings2, features2 = _as_of(con, settings, at)
    pd.testing.assert_frame_equal(warnings, warnings2)
    pd.testing.assert_frame_equal(features, features2)


@needs_history
def test_cli_writes_tables_and_the_html_report(tmp_path, capsys):
    from handoff_lib.backtest_cli import backtest_main

    out = tmp_path / "bt"
    code = backtest_main(["--site", str(SITE), "--from", "2017-03-01", "--to", "2017-05-31", "--reviews", "09:00,16:00",
                          "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"outputs written to {out.resolve()}" in printed and "skipped (no items)" in printed
    for name in ("accounting", "skipped", "rules", "risk_vs_rules", "risk_curve"):
        assert (out / f"{name}.csv").stat().st_size > 0
    assert (out / "backtest_report.html").exists() and (out / "risk_model.joblib").exists()
    again = bt.BacktestResult.read(out)
    assert again.meta["reviews"] == 92 * 2 and "accounting" in again.tables


def test_bad_review_times_and_dates_are_named():
    from handoff_lib.errors import HandoffError

    with pytest.raises(HandoffError, match="review time '9h': expected HH:MM"):
        bt.parse_times("9h,12:00")
    with pytest.raises(HandoffError, match="--from '2017-13-01': expected a date"):
        bt.parse_date("2017-13-01", "--from")


def test_default_split_is_a_month_start_two_thirds_into_the_period():
    assert bt.default_split(dt.date(2017, 1, 1), dt.date(2017, 12, 31)) == dt.date(2017, 9, 1)
    assert dt.date(2017, 3, 1) < bt.default_split(dt.date(2017, 3, 1), dt.date(2017, 4, 30)) <= dt.date(2017, 4, 30)
