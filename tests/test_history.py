"""History snapshots per review and the 'changed since the last review' comparison."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import duckdb
import pytest

from handoff_lib.history import snapshots as history
from handoff_lib.history.snapshots import ReviewKey, change_summary, changes_since, open_history, write_snapshot

TZ = ZoneInfo("America/New_York")
AT_12 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=TZ)
AT_16 = dt.datetime(2026, 11, 24, 16, 0, tzinfo=TZ)


def picture(orders: list[tuple], blockers: list[tuple]) -> duckdb.DuckDBPyConnection:
    """A picture with just what history needs: (order_id, state, promise_status, priority) and
    (blocker_id, order_id, reason, owner, priority)."""
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE order_board (order_id VARCHAR, state VARCHAR, state_reason VARCHAR, promise_status VARCHAR,
                                     promise_reason VARCHAR, priority DOUBLE)"""
    )
    for o, s, p, pr in orders:
        con.execute("INSERT INTO order_board VALUES (?, ?, ?, ?, ?, ?)", [o, s, f"{o} is {s}", p, f"{o} {p}", pr])
    con.execute(
        """CREATE TABLE blockers (blocker_id VARCHAR, order_id VARCHAR, reason VARCHAR, reason_label VARCHAR, owner VARCHAR,
                                  detail VARCHAR, priority DOUBLE, age_minutes DOUBLE)"""
    )
    for b, o, r, ow, pr in blockers:
        con.execute("INSERT INTO blockers VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [b, o, r, r.replace("_", " "), ow, f"{r} on {o}", pr, 30])
    con.execute("CREATE TABLE join_quality AS SELECT 'pick_tasks' AS source, 'linked' AS status, 10 AS records")
    con.execute("CREATE TABLE load_report AS SELECT 'orders' AS source, 3 AS rows_read, 3 AS rows_accepted, 0 AS rows_rejected")
    return con


NOON = picture(
    [("SO-1", "picked", "safe", 50), ("SO-2", "pickable", "safe", 80), ("SO-3", "packed", "safe", 20)],
    [("B-credit-2", "SO-2", "credit_hold", "finance", 80)],
)


def four_pm() -> duckdb.DuckDBPyConnection:
    # SO-1 now held with a new address hold; SO-2's credit hold cleared and it is packed;
    # SO-3 vanished from the extract; SO-4 is new.
    return picture(
        [("SO-1", "held", "at_risk", 50), ("SO-2", "packed", "safe", 80), ("SO-4", "released", "safe", 10)],
        [("B-addr-1", "SO-1", "address", "customer service", 50)],
    )


@pytest.fixture
def hist(tmp_path):
    path = tmp_path / "history.duckdb"
    write_snapshot(NOON, path, ReviewKey.of("demo", AT_12), AT_12, "run-12")
    return path


def rows(path, sql, params=()):
    con = open_history(path, read_only=True)
    try:
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def test_rerunning_a_review_replaces_its_snapshot_instead_of_duplicating_it(hist):
    write_snapshot(NOON, hist, ReviewKey.of("demo", AT_12), AT_12, "run-12-again")
    assert rows(hist, "SELECT count(*) FROM snap_orders")[0][0] == 3
    assert rows(hist, "SELECT run_id FROM runs") == [("run-12-again",)]


def test_a_failed_snapshot_write_leaves_history_as_it_was(hist, monkeypatch):
    monkeypatch.setitem(history.SNAPSHOT_TABLES, "no_such_table", "snap_nothing")
    with pytest.raises(duckdb.Error):
        write_snapshot(four_pm(), hist, ReviewKey.of("demo", AT_12), AT_12, "run-broken")
    assert rows(hist, "SELECT run_id FROM runs") == [("run-12",)]
    assert rows(hist, "SELECT order_id FROM snap_orders ORDER BY 1") == [("SO-1",), ("SO-2",), ("SO-3",)]


def test_the_4pm_review_lists_what_changed_since_noon(hist):
    con = four_pm()
    prev = changes_since(con, hist, ReviewKey.of("demo", AT_16))
    assert prev == ReviewKey.of("demo", AT_12)
    got = {(k, o) for k, o in con.execute("SELECT kind, order_id FROM changes").fetchall()}
    assert got == {
        ("state_changed", "SO-1"),  # picked -> held
        ("promise_changed", "SO-1"),  # safe -> at_risk
        ("state_changed", "SO-2"),  # pickable -> packed
        ("new_blocker", "SO-1"),  # the new address hold
        ("cleared_blocker", "SO-2"),  # the credit hold was released
        ("missing_order", "SO-3"),  # gone from the extract: flagged, never assumed shipped
        ("new_order", "SO-4"),
    }
    missing = con.execute("SELECT detail FROM changes WHERE kind = 'missing_order'").fetchone()[0]
    assert "not assumed shipped" in missing


def test_high_priority_changes_come_first(hist):
    con = four_pm()
    changes_since(con, hist, ReviewKey.of("demo", AT_16))
    priorities = [p for (p,) in con.execute("SELECT priority FROM changes").fetchall()]
    assert priorities == sorted(priorities, reverse=True)


def test_every_change_count_equals_its_drill_down_list(hist):
    con = four_pm()
    changes_since(con, hist, ReviewKey.of("demo", AT_16))
    for kind, n in change_summary(con).itertuples(index=False):
        assert n == con.execute("SELECT count(*) FROM changes WHERE kind = ?", [kind]).fetchone()[0]
    assert dict(change_summary(con).itertuples(index=False))["missing_order"] == 1


def test_the_first_review_has_nothing_to_compare_with(tmp_path):
    con = four_pm()
    assert changes_since(con, tmp_path / "none.duckdb", ReviewKey.of("demo", AT_16)) is None
    assert con.execute("SELECT count(*) FROM changes").fetchone()[0] == 0


def test_the_previous_review_may_be_on_an_earlier_day(hist):
    next_morning = dt.datetime(2026, 11, 25, 9, 0, tzinfo=TZ)
    con = four_pm()
    assert changes_since(con, hist, ReviewKey.of("demo", next_morning)) == ReviewKey.of("demo", AT_12)


def test_a_writer_that_finds_history_locked_fails_with_a_clear_message(tmp_path, monkeypatch):
    path = tmp_path / "h.duckdb"
    duckdb.connect(str(path)).close()

    def locked(*a, **k):
        raise duckdb.IOException('IO Error: Could not set lock on file "h.duckdb": Conflicting lock is held')

    monkeypatch.setattr(history.duckdb, "connect", locked)
    with pytest.raises(history.HistoryLocked, match="locked by another handoff process"):
        open_history(path, wait_s=0.3)
