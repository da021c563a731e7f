"""The backtest replay on Spark: the same as-of rows, warnings and scores as on DuckDB, from the one
definition of each query (backtest.REVIEW_ROWS, WARNINGS, SCORES compiled by engines.py), over two
months of the public Olist order history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from handoff_lib import backtest as bt
from handoff_lib.engines import SparkEngine, differences
from handoff_lib.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "parameters" / "olist.yaml"
DATA = (SITE.parent / "../../shared/data/olist-2017-10k").resolve()

needs_history = pytest.mark.skipif(
    not (DATA / "orders.csv").exists(),
    reason=f"Olist history not found at {DATA} (shared/data/olist-2017-10k beside the repo); backtests need it",
)


def _replayed(settings, con, engine):
    reviews = bt.review_times(settings, dt.date(2017, 3, 1), dt.date(2017, 4, 30), (dt.time(9), dt.time(16)))
    bt.replay(con, reviews, progress=False, engine=engine)
    bt.warnings_of(con, settings, bt.rule_settings(settings), engine=engine)
    rows = con.execute("SELECT * FROM bt_review_rows ORDER BY review_at, order_id").df()
    warnings = con.execute("SELECT * FROM bt_warnings ORDER BY review_at, order_id, rule, setting").df()
    return rows, warnings, bt.score(con, engine=engine)


@needs_history
def test_the_replay_its_warnings_and_scores_are_the_same_on_spark_as_on_duckdb(spark):
    settings = load_settings(SITE)
    con = bt.load_history(settings)
    bt.order_history(con, settings, dt.date(2017, 3, 1), dt.date(2017, 4, 30))
    duck = _replayed(settings, con, None)
    engine = SparkEngine(spark)
    try:
        sparked = _replayed(settings, con, engine)
    finally:
        engine.close()
    assert len(duck[0]) > 5000 and len(duck[1]) > 5000
    for a, b in zip(duck, sparked):
        assert differences(a, b) == []
    rules = sparked[2].set_index("setting")
    assert rules.loc["X = 24 h", "recall"] > rules.loc["X = 4 h", "recall"]
