"""The as-of picture of open orders at a review: a ship-by that is set at release is not seen before it
(site setting backtest.ship_by_known_from), and nothing a review does depends on it until then."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import planted_history as ph
import pytest

from handoff_lib.errors import SettingsError
from handoff_lib.history import asof_orders
from handoff_lib.learn import backtest as bt
from handoff_lib.load.settings import load_settings

AT = dt.datetime(2025, 3, 12, 12, 0, tzinfo=dt.UTC)


def _history(tmp_path, known_from):
    site = ph.noisy(tmp_path, known_from=known_from)
    settings = load_settings(site)
    con = bt.load_history(settings)
    asof_orders.order_history(con, settings, ph.FIRST, ph.LAST)
    return settings, con


def _review(con, settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    from handoff_lib.learn import risk

    asof_orders.replay(con, settings, [AT], progress=False)
    rules, custom = bt.rule_settings(settings, buffers=(60, 480, 1440), hours=(4, 24, 48))
    bt.warnings_of(con, settings, rules, custom)
    warnings = con.execute("SELECT rule, setting, order_id FROM bt_warnings ORDER BY ALL").df()
    return warnings, risk.build_features(con).sort_values("order_id").reset_index(drop=True)


def _move_unknown_deadlines(con) -> int:
    """Move the ship-by of every order placed but not released at AT to another time after AT."""
    con.execute("SELECT setseed(0.7)")
    return con.execute(
        """UPDATE bt_orders SET deadline = $at + to_seconds(CAST(3600 + random() * 86400 * 4 AS BIGINT))
           WHERE ordered_at <= $at AND released_at > $at AND deadline > $at""",
        {"at": AT},
    ).fetchall()[0][0]


def test_a_ship_by_set_at_release_is_hidden_from_reviews_before_the_release(tmp_path):
    settings, con = _history(tmp_path, "released")
    asof_orders.replay(con, settings, asof_orders.review_times(settings, ph.FIRST, dt.date(2025, 1, 31), settings.review_times),
                       progress=False)
    rows = con.execute("SELECT released_at IS NULL AS unreleased, deadline, minutes_left, deadline_known FROM bt_review_rows").df()
    hidden = rows[rows["unreleased"]]
    assert len(hidden) > 100 and hidden["deadline"].isna().all() and hidden["minutes_left"].isna().all()
    assert not hidden["deadline_known"].any() and rows[~rows["unreleased"]]["deadline"].notna().all()


def test_moving_a_deadline_not_yet_known_changes_no_warning_or_feature_of_the_review(tmp_path):
    settings, con = _history(tmp_path, "released")
    warnings, features = _review(con, settings)
    assert _move_unknown_deadlines(con) > 5
    warnings2, features2 = _review(con, settings)
    pd.testing.assert_frame_equal(warnings, warnings2)
    pd.testing.assert_frame_equal(features, features2)


def test_where_the_ship_by_is_known_from_the_order_moving_it_does_change_the_review(tmp_path):
    settings, con = _history(tmp_path, "ordered")  # the same history, read as if the ship-by came with the order
    warnings, features = _review(con, settings)
    assert _move_unknown_deadlines(con) > 5
    warnings2, features2 = _review(con, settings)
    assert not features.equals(features2) or not warnings.equals(warnings2)


def test_an_unknown_ship_by_known_from_is_named_with_its_line(tmp_path):
    site = ph.write_site(tmp_path, known_from="approval")
    with pytest.raises(SettingsError, match=r"site.yaml line \d+: backtest.ship_by_known_from must be one of ordered, released"):
        asof_orders.ship_by_known_from(load_settings(site))
