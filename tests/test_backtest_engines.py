"""The backtest replay on Spark: the same as-of rows, warnings and scores as on DuckDB, from the one
definition of each query (asof_orders.REVIEW_ROWS, backtest.WARNINGS and SCORES compiled by engines.py),
over two months of the public Olist order history."""

from __future__ import annotations

import datetime as dt

from conftest import needs_history, olist_site

from handoff_lib.history import asof_orders
from handoff_lib.history.engines import SparkEngine, differences
from handoff_lib.learn import backtest as bt
from handoff_lib.load.settings import load_settings


def _replayed(settings, con, engine):
    reviews = asof_orders.review_times(settings, dt.date(2017, 3, 1), dt.date(2017, 4, 30), (dt.time(9), dt.time(16)))
    asof_orders.replay(con, settings, reviews, progress=False, engine=engine)
    rules, custom = bt.rule_settings(settings)
    bt.warnings_of(con, settings, rules, custom, engine=engine)
    start, end = asof_orders.period_bounds(settings, dt.date(2017, 3, 1), dt.date(2017, 4, 30))
    bt.set_periods(con, [(0, "all", start, end), (1, "validation", start, dt.datetime(2017, 4, 1, tzinfo=settings.tz)),
                         (1, "test", dt.datetime(2017, 4, 1, tzinfo=settings.tz), end)], engine=engine)
    rows = con.execute("SELECT * FROM bt_review_rows ORDER BY review_at, order_id").df()
    warnings = con.execute("SELECT * FROM bt_warnings ORDER BY review_at, order_id, rule, setting").df()
    return rows, warnings, bt.score(con, engine=engine)


@needs_history
def test_the_replay_its_warnings_and_scores_are_the_same_on_spark_as_on_duckdb(spark, tmp_path):
    settings = load_settings(olist_site(tmp_path))
    con = bt.load_history(settings)
    asof_orders.order_history(con, settings, dt.date(2017, 3, 1), dt.date(2017, 4, 30))
    duck = _replayed(settings, con, None)
    engine = SparkEngine(spark)
    try:
        sparked = _replayed(settings, con, engine)
    finally:
        engine.close()
    assert len(duck[0]) > 5000 and len(duck[1]) > 5000
    assert not duck[0]["deadline_known"].all()  # the as-of rows hide deadlines set at approval, on both engines
    for a, b in zip(duck, sparked):
        assert differences(a, b) == []
    rules = sparked[2][sparked[2]["period"] == "all"].set_index("setting")
    assert rules.loc["X = 24 h", "recall"] > rules.loc["X = 4 h", "recall"]


@needs_history
def test_calibrating_on_spark_chooses_and_reports_exactly_what_it_does_on_duckdb(spark, tmp_path):
    from handoff_lib.learn import calibrate

    settings = load_settings(olist_site(tmp_path))
    times = (dt.time(9), dt.time(16))

    def run(engine):
        return calibrate.run_backtest(settings, dt.date(2017, 1, 1), dt.date(2017, 5, 31), times, progress=False, with_risk=False,
                                      engine=engine)

    duck, sparked = run("duckdb"), run("spark")
    assert sparked.meta["engine"] == "spark"
    for name in ("rules", "fold_scores", "calibration", "calibration_summary", "bridge"):
        assert differences(duck.tables[name], sparked.tables[name]) == [], name
    assert sparked.meta["calibration"]["recommended"] == duck.meta["calibration"]["recommended"]
