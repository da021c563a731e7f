"""The learned late-hand-off score: features from facts known at the review only, training rows from
before the split, and used by the promise view only when a site turns it on. (Its evaluation, threshold
chosen on other months than it is scored on, is tested in test_calibrate.py.)"""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import ROOT, needs_history, olist_site

from handoff_lib.errors import HandoffError
from handoff_lib.history import asof_orders
from handoff_lib.learn import backtest as bt
from handoff_lib.learn import risk
from handoff_lib.load.settings import load_settings


@needs_history
def test_training_rows_come_before_the_split_and_test_orders_after_it(year):
    settings, con, _ = year
    split = dt.datetime(2017, 9, 1, tzinfo=settings.tz)
    rows = risk.labelled_rows(con)
    train, test = risk.split_rows(rows, split)
    assert len(train) > 10_000 and len(test) > 10_000
    assert (train["review_at"] < split).all() and (train["known_at"] < split).all()  # outcome known before the split too
    assert (test["ordered_at"] >= split).all() and (test["review_at"] >= split).all()
    assert not set(train["order_id"]) & set(test["order_id"])


@needs_history
def test_a_ship_from_track_record_counts_only_outcomes_known_by_the_review(year):
    _, con, _ = year
    # recompute one ship-from's share late by hand for a few review rows
    rows = con.execute(
        """SELECT f.review_at, r.ship_from, f.from_late_share FROM risk_features f JOIN bt_review_rows r USING (review_at, order_id)
           WHERE r.ship_from = (SELECT ship_from FROM bt_orders GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)
           ORDER BY f.review_at LIMIT 200"""
    ).df()
    site = con.execute("SELECT known_at, late FROM risk_events ORDER BY known_at").df()
    events = con.execute("SELECT ship_from, known_at, late FROM risk_events").df()
    for r in rows.iloc[::20].itertuples(index=False):
        mine = events[(events["ship_from"] == r.ship_from) & (events["known_at"] <= r.review_at)]
        past = site[site["known_at"] <= r.review_at]
        site_share = past["late"].mean() if len(past) else 0.1
        expected = (mine["late"].sum() + risk.PRIOR_WEIGHT * site_share) / (len(mine) + risk.PRIOR_WEIGHT)
        assert r.from_late_share == pytest.approx(expected)


@needs_history
def test_the_promise_view_uses_the_score_only_when_the_site_turns_it_on(tmp_path):
    settings = load_settings(olist_site(tmp_path))
    con = bt.load_history(settings)
    asof_orders.order_history(con, settings, dt.date(2017, 1, 1), dt.date(2017, 12, 31))
    asof_orders.replay(con, settings, asof_orders.review_times(settings, dt.date(2017, 1, 1), dt.date(2017, 8, 31), (dt.time(12),)),
                       progress=False)
    bundle, info = risk.train(con, dt.datetime(2017, 9, 1, tzinfo=settings.tz))
    assert info["train_orders"] > 1000 and 0 < info["train_late_share"] < 0.5
    model = risk.save_model(bundle, tmp_path / "risk_model.joblib")
    now = dt.datetime(2017, 11, 20, 12, 0, tzinfo=settings.tz)
    con.execute("CREATE OR REPLACE TABLE promise AS SELECT order_id, 'safe' AS promise_status, 'fits' AS promise_reason FROM orders")
    assert risk.apply_to_promise(con, settings, now) == 0  # olist.yaml ships with the score off
    assert con.execute("SELECT count(risk_score) FROM promise").fetchall()[0][0] == 0

    settings.raw["policy"]["risk_score"] = {"enabled": True, "model": str(model), "threshold": 0.5}
    turned = risk.apply_to_promise(con, settings, now)
    scored, at_risk = con.execute(
        "SELECT count(risk_score), count(*) FILTER (WHERE promise_status = 'at_risk') FROM promise"
    ).fetchall()[0]
    assert scored > 50 and turned == at_risk > 0
    reason = con.execute("SELECT promise_reason FROM promise WHERE promise_status = 'at_risk' LIMIT 1").fetchall()[0][0]
    assert reason.startswith("learned late-hand-off risk 0.") and "(policy.risk_score)" in reason


def test_turning_the_score_on_without_a_model_is_refused():
    settings = load_settings(ROOT / "parameters" / "olist.yaml")
    settings.raw["policy"]["risk_score"] = {"enabled": True}
    with pytest.raises(HandoffError, match="policy.risk_score.enabled needs model:"):
        risk.risk_policy(settings)
