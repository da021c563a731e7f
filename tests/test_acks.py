"""The acknowledgement log: append-only, concurrent writers, readers that never wait, a review writing
history at the same moment; and its use in the next review's report and draft notes."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import re
import sqlite3
import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from handoff_lib.errors import HandoffError
from handoff_lib.history import acks

TZ = ZoneInfo("America/New_York")
AT = dt.datetime(2026, 11, 24, 19, 35, tzinfo=dt.UTC)  # 14:35 in Columbus


def entry(what="acknowledge", blocker="B1", actor="jdiaz", name="J. Diaz", **kw) -> acks.Entry:
    return acks.Entry("demo", blocker, what, actor, name, **kw)


def test_the_log_sits_beside_the_history_database():
    assert acks.log_path(Path("/x/outputs/demo/history.duckdb")) == Path("/x/outputs/demo/history.acks.sqlite")


def test_the_latest_entry_sets_each_part_of_a_blockers_state(tmp_path):
    log = tmp_path / "h.acks.sqlite"
    acks.record(log, entry(expected_by=acks.parse_expected("15:10", TZ, AT)), now=AT)
    acks.record(log, entry("assign", actor="mchen", name="M. Chen", assignee="R. Ortiz"), now=AT + dt.timedelta(minutes=5))
    acks.record(log, entry("comment", actor="mchen", name="M. Chen", comment="<script>x()</script>"), now=AT + dt.timedelta(minutes=6))
    acks.record(log, entry("assign", blocker="B2", assignee="Bo"), now=AT)
    s = acks.states(log, "demo")
    assert set(s) == {"B1", "B2"} and s["B1"].n_entries == 3
    assert s["B1"].summary(TZ, now=AT) == ('acknowledged by J. Diaz 14:35, assigned to R. Ortiz, expected 15:10: '
                                           '"<script>x()</script>" (M. Chen)')
    assert s["B1"].summary(TZ, comment=False, now=AT) == "acknowledged by J. Diaz 14:35, assigned to R. Ortiz, expected 15:10"
    assert s["B2"].summary(TZ, now=AT) == "not acknowledged, assigned to Bo"
    assert list(acks.states(log, "demo", ["B2"])) == ["B2"] and acks.states(log, "other") == {}
    assert [e["what"] for e in acks.history(log, "demo", "B1")] == ["acknowledge", "assign", "comment"]


def test_no_log_yet_reads_as_no_entries(tmp_path):
    assert acks.states(tmp_path / "none.acks.sqlite", "demo") == {}
    assert acks.history(tmp_path / "none.acks.sqlite", "demo", "B1") == []
    assert not (tmp_path / "none.acks.sqlite").exists()


def test_the_log_refuses_updates_and_deletes(tmp_path):
    log = tmp_path / "h.acks.sqlite"
    acks.record(log, entry(), now=AT)
    con = sqlite3.connect(log)
    for sql in ("UPDATE acks SET actor = 'someone else'", "DELETE FROM acks"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(sql)
    con.close()
    assert acks.states(log, "demo")["B1"].acknowledged_by == "J. Diaz"


@pytest.mark.parametrize("bad, message", [
    (entry("assign"), "give the name of the person"),
    (entry("comment", comment="   "), "the comment is empty"),
    (entry("comment", comment="x" * 281), "at most 280"),
    (entry("escalate"), "not an action on a blocker"),
    (entry(actor=""), "signed-in user"),
])
def test_an_incomplete_entry_is_refused(tmp_path, bad, message):
    with pytest.raises(HandoffError, match=message):
        acks.record(tmp_path / "h.acks.sqlite", bad)


def test_expected_by_is_a_site_time_today_or_a_full_time():
    now = dt.datetime(2026, 11, 24, 14, 30, tzinfo=TZ)
    assert acks.parse_expected("15:10", TZ, now) == dt.datetime(2026, 11, 24, 15, 10, tzinfo=TZ)
    assert acks.parse_expected("9:05", TZ, now) == dt.datetime(2026, 11, 24, 9, 5, tzinfo=TZ)
    assert acks.parse_expected("01:00", TZ, now) == dt.datetime(2026, 11, 25, 1, 0, tzinfo=TZ)  # long past: tomorrow
    assert acks.parse_expected("2026-11-25 08:00", TZ, now) == dt.datetime(2026, 11, 25, 8, 0, tzinfo=TZ)
    assert acks.parse_expected(" ", TZ, now) is None
    with pytest.raises(HandoffError, match="HH:MM"):
        acks.parse_expected("after lunch", TZ, now)


def _write_many(log: str, who: str, n: int, start) -> None:
    start.wait()
    for i in range(n):
        acks.record(log, entry("comment", blocker=f"B{i % 7}", actor=who, name=who, comment=f"{who} {i}"))


def test_two_users_writing_at_the_same_moment_both_land(tmp_path):
    log = str(tmp_path / "h.acks.sqlite")
    acks.record(log, entry(), now=AT)  # the file exists before the race
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_write_many, args=(log, who, 60, start)) for who in ("jdiaz", "mchen")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    rows = sqlite3.connect(log).execute("SELECT actor, count(*) FROM acks WHERE what = 'comment' GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [("jdiaz", 60), ("mchen", 60)]


def test_acting_while_a_review_writes_history_neither_fails_nor_waits_for_it(tmp_path):
    """A review holds history.duckdb for writing (here: for the whole test); recording and reading
    acknowledgements beside it still complete."""
    history = tmp_path / "history.duckdb"
    writer = duckdb.connect(str(history))  # the review's writer: DuckDB allows no other process in
    writer.execute("CREATE TABLE snap_orders AS SELECT 1 AS x")
    done = []

    def act():
        acks.record(acks.log_path(history), entry())
        done.append(acks.states(acks.log_path(history), "demo")["B1"].acknowledged_by)

    t = threading.Thread(target=act)
    t.start()
    t.join(30)  # liveness bound, not a timing figure: the writer is never released while we wait
    writer.close()
    assert done == ["J. Diaz"]


def test_a_reader_sees_committed_entries_while_a_writer_holds_the_log(tmp_path):
    log = tmp_path / "h.acks.sqlite"
    acks.record(log, entry(), now=AT)
    w = sqlite3.connect(log, isolation_level=None)
    w.execute("BEGIN IMMEDIATE")  # a writer in the middle of its transaction
    w.execute("INSERT INTO acks (site, blocker_id, what, actor, actor_name, acted_at) VALUES ('demo', 'B9', 'comment', 'x', 'x', '2026-01-01')")
    try:
        assert set(acks.states(log, "demo")) == {"B1"}  # WAL: the reader does not wait and sees only what is committed
    finally:
        w.execute("ROLLBACK")
        w.close()


# --------------------------------------------------------------------- the next review and its drafts


def test_the_next_review_shows_who_handles_each_blocker_and_counts_the_unacknowledged(site, tmp_path):
    from handoff_lib.history.snapshots import ReviewKey, write_snapshot
    from handoff_lib.load.settings import load_settings
    from handoff_lib.publish.review import Review

    settings = load_settings(site)
    history = tmp_path / "outputs" / settings.site / "history.duckdb"
    first = Review.open(str(site), "2026-11-24 12:00", history_db=str(history))
    try:
        write_snapshot(first.con, history, ReviewKey.of(settings.site, first.at), first.at, "t-1200")
        blocker_id, order_id, owner = first.con.execute(
            """SELECT b.blocker_id, b.order_id, b.owner FROM blockers b JOIN order_board o USING (order_id)
               WHERE o.promise_status IN ('at_risk', 'needs_communication') ORDER BY b.blocker_id LIMIT 1""").fetchone()
    finally:
        first.close()
    acks.record(acks.log_path(history), acks.Entry(settings.site, blocker_id, "acknowledge", "jdiaz", "J. Diaz",
                                                   expected_by=dt.datetime(2026, 11, 24, 15, 10, tzinfo=settings.tz),
                                                   comment="<img src=x onerror=alert(1)>"), now=AT)
    nxt = Review.open(str(site), "2026-11-24 12:00", history_db=str(history))  # the same blockers are open again
    try:
        queue = nxt.blocker_queue().data
        assert "acknowledged by J. Diaz 14:35" in queue and "expected 15:10" in queue
        assert "&lt;img src=x onerror=alert(1)&gt;" in queue and "<img src=x" not in queue
        summary = nxt.blocker_summary().data
        assert 'id="unacknowledged-by-owner"' in summary
        unacked = nxt.con.execute("SELECT count(*) FROM blockers WHERE owner = ? AND blocker_id <> ?", [owner, blocker_id]).fetchone()[0]
        assert re.search(rf'<td class="txt">{re.escape(owner)}</td>\s*<td class="num">{unacked}</td>', summary)
        assert 'id="acknowledged-blockers"' in summary and "acknowledged by J. Diaz 14:35" in summary.split("acknowledged-blockers", 1)[1]
        draft = nxt.con.execute("SELECT draft FROM drafts WHERE order_id = ?", [order_id]).fetchone()[0]
        assert "What is being done: [" in draft and "acknowledged by J. Diaz" in draft and "onerror" not in draft
    finally:
        nxt.close()
