"""Backtesting the promise on real order history (the Olist 2017 sample beside the repo, read through
parameters/olist.yaml): every order accounted for, each review sees only its past (deadlines included),
the rules are scored against what happened, and the plain count of late hand-offs bridges to the accounting."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import needs_history, olist_site

from handoff_lib.history import asof_orders
from handoff_lib.learn import backtest as bt
from handoff_lib.load.settings import load_settings


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
    skipped = dict(zip(result.tables["skipped"]["reason"], result.tables["skipped"]["orders"], strict=True))
    assert skipped == {"no items": 111, "missing approval": 3, "hand-off before approval": 16}
    # a skipped order never reaches a review
    leaked = con.execute(
        "SELECT count(*) FROM bt_review_rows r JOIN bt_orders o USING (order_id) WHERE o.skip_reason IS NOT NULL"
    ).fetchall()[0][0]
    assert leaked == 0


@needs_history
def test_the_plain_count_of_952_late_hand_offs_bridges_to_the_1002_late_orders_scored(year):
    _, _, result = year
    b = result.tables["bridge"].set_index("step")["orders"]
    assert b["Handed off after the latest line ship-by (plain count)"] == 952
    assert b["- outside the period: due after it"] == -34 and b["- skipped: missing approval"] == -3
    assert b["= Late: handed off after the deadline, in the period"] == 915
    assert b["+ Late: never handed off"] == 87 and b["= Late orders scored"] == 1002
    late = result.tables["accounting"].query("category == 'late'")["orders"].sum()
    assert b["= Late orders scored"] == late
    # every step between the first and the subtotal is accounted for
    steps = result.tables["bridge"]["orders"].tolist()
    assert steps[0] + sum(steps[1:-3]) == b["= Late: handed off after the deadline, in the period"]


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
def test_a_review_before_approval_does_not_see_the_ship_by_set_at_approval(year):
    settings, con, result = year
    assert asof_orders.ship_by_known_from(settings) == "released"  # parameters/olist.yaml says so
    hidden = con.execute(
        "SELECT count(*) FILTER (WHERE deadline IS NULL), count(*) FILTER (WHERE NOT deadline_known), "
        "count(*) FILTER (WHERE released_at IS NULL) FROM bt_review_rows"
    ).fetchall()[0]
    assert hidden[0] == hidden[1] == hidden[2] == result.meta["review_rows_deadline_not_yet_known"]
    assert 0.10 < hidden[0] / result.meta["review_rows"] < 0.13  # measured: 10,774 of 94,670 (11.4 %)
    warned_blind = con.execute(
        """SELECT count(*) FROM bt_warnings w JOIN bt_review_rows r USING (review_at, order_id)
           WHERE NOT r.deadline_known AND w.rule = 'hours left < X'"""
    ).fetchall()[0][0]
    assert warned_blind == 0  # "hours left" cannot be counted to a deadline nobody knows yet


@needs_history
def test_rules_are_scored_by_setting_with_precision_recall_and_lead_time(year):
    _, _, result = year
    rules = result.tables["rules"]
    promise = rules[rules["rule"] == "promise"]
    assert len(promise) >= 10 and (rules["rule"] == bt.CURRENT).sum() == 1
    baseline = rules[rules["rule"] == "hours left < X"].set_index("setting")
    assert baseline.loc["X = 24 h", "recall"] > baseline.loc["X = 4 h", "recall"]
    assert baseline.loc["X = 24 h", "precision"] < baseline.loc["X = 4 h", "precision"]
    assert baseline.loc["X = 24 h", "median_lead_h"] > baseline.loc["X = 4 h", "median_lead_h"]
    # a wider buffer warns earlier and about more orders
    assert promise["warned_orders"].is_monotonic_increasing and promise["median_lead_h"].is_monotonic_increasing
    # today's setting is the sweep's own row at the policy buffer (same work minutes, no customer buffers)
    cur = rules[rules["rule"] == bt.CURRENT].iloc[0]
    same = promise[promise["value"] == cur["value"]].iloc[0]
    assert (cur["warned_orders"], cur["recall"]) == (same["warned_orders"], same["recall"])


def _as_of(con, settings, at: dt.datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Warnings and learned-score features of one review."""
    from handoff_lib.learn import risk

    asof_orders.replay(con, settings, [at], progress=False)
    rules, custom = bt.rule_settings(settings, buffers=(0, 60, 480, 1440), hours=(4, 24))
    bt.warnings_of(con, settings, rules, custom)
    warnings = con.execute("SELECT rule, setting, order_id FROM bt_warnings ORDER BY ALL").df()
    features = risk.build_features(con)
    return warnings, features.sort_values("order_id").reset_index(drop=True)


@needs_history
def test_rewriting_what_happened_after_a_review_deadlines_included_changes_none_of_its_warnings_or_features(tmp_path):
    settings = load_settings(olist_site(tmp_path))
    con = bt.load_history(settings)
    asof_orders.order_history(con, settings, dt.date(2017, 1, 1), dt.date(2017, 12, 31))
    at = dt.datetime(2017, 6, 14, 12, 0, tzinfo=settings.tz)
    warnings, features = _as_of(con, settings, at)
    assert len(warnings) > 0 and len(features) > 20
    # Rewrite every fact dated after the review: hand-offs move to random later times (or never happen),
    # later releases move, statuses and cancellations change, and the ship-by of every order not yet approved
    # (set at approval here) moves to a random later time. Skip reasons are judged on the whole history (data
    # quality), so the rewrite keeps hand-offs after releases.
    con.execute("SELECT setseed(0.42)")
    moved = con.execute(
        """UPDATE bt_orders SET deadline = $at + to_seconds(CAST(3600 + random() * 86400 * 6 AS BIGINT))
           WHERE released_at > $at AND ordered_at <= $at AND deadline > $at""",
        {"at": at},
    ).fetchall()[0][0]
    assert moved >= 10  # 12 orders placed and not yet approved at this review
    con.execute(
        """UPDATE bt_orders SET
             released_at = CASE WHEN released_at > $at THEN $at + to_seconds(CAST(1 + random() * 86400 * 5 AS BIGINT))
                                ELSE released_at END""",
        {"at": at},
    )
    con.execute(
        """UPDATE bt_orders SET
             handed_off_at = CASE WHEN handed_off_at > $at OR handed_off_at IS NULL THEN
                                  CASE WHEN random() < 0.2 THEN NULL
                                       ELSE greatest($at, released_at) + to_seconds(CAST(1 + random() * 86400 * 20 AS BIGINT)) END
                             ELSE handed_off_at END,
             release_status = CASE WHEN random() < 0.3 THEN 'cancelled' ELSE release_status END,
             cancelled_at = CASE WHEN random() < 0.1 THEN $at + INTERVAL 3 DAY ELSE cancelled_at END,
             late = random() < 0.5""",
        {"at": at},
    )
    changed = con.execute("SELECT count(*) FROM bt_orders WHERE handed_off_at > $at OR handed_off_at IS NULL", {"at": at}).fetchall()
    assert changed[0][0] > 1000
    warnings2, features2 = _as_of(con, settings, at)
    pd.testing.assert_frame_equal(warnings, warnings2)
    pd.testing.assert_frame_equal(features, features2)


@needs_history
def test_cli_writes_tables_the_calibration_and_the_html_report(tmp_path, capsys):
    import json

    from handoff_lib.cli.backtest import backtest_main

    site = olist_site(tmp_path)
    out = tmp_path / "bt"
    code = backtest_main(["--site", str(site), "--from", "2017-01-01", "--to", "2017-05-31", "--reviews", "09:00,16:00",
                          "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"outputs written to {out.resolve()}" in printed and "skipped (no items)" in printed
    assert "Today's setting, a buffer of 60 min" in printed and "Recommended: buffer" in printed
    for name in ("accounting", "skipped", "bridge", "rules", "test_sweep", "folds", "fold_scores", "calibration", "risk_curve"):
        assert (out / f"{name}.csv").stat().st_size > 0
    assert (out / "backtest_report.html").exists() and (out / "risk_model.joblib").exists()
    meta = json.loads((out / "backtest.json").read_text())
    cal = meta["calibration"]
    assert cal["folds"][0] == {"fold": 1, "trained_on": ["2017-01-01", "2017-02-28"], "chosen_on": ["2017-03-01", "2017-04-30"],
                               "tested_on": ["2017-05-01", "2017-05-31"]}
    assert cal["recommended"]["chosen_on"] == ["2017-04-01", "2017-05-31"]
    again = bt.BacktestResult.read(out)
    assert again.meta["reviews"] == 151 * 2 and "accounting" in again.tables


def test_bad_review_times_and_dates_are_named():
    from handoff_lib.errors import HandoffError

    with pytest.raises(HandoffError, match="review time '9h': expected HH:MM"):
        bt.parse_times("9h,12:00")
    with pytest.raises(HandoffError, match="--from '2017-13-01': expected a date"):
        bt.parse_date("2017-13-01", "--from")
