"""The handoff board's data functions: snapshot copy, filters, paging, lookup, timeline, escaping."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from handoff_lib import board
from handoff_lib.history import ReviewKey, write_snapshot
from handoff_lib.review import Review
from handoff_lib.settings import load_settings

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2; alert(1)">'


def build_history(tmp: Path, demo_day: Path, times=("12:00", "16:00"), note: str | None = None) -> Path:
    """A site file and a history database holding one review per time, written the way a review run
    writes them (picture.duckdb in the review's folder, snapshot in history) but without papermill.
    With `note`, every open hold's note and one customer's name carry that text."""
    from conftest import make_site

    data = tmp / "data"
    shutil.copytree(demo_day, data)
    if note is not None:
        for hhmm in ("1200", "1600"):
            holds = pd.read_csv(data / hhmm / "wms_holds.csv", dtype=str, keep_default_na=False)
            holds.loc[holds["RELEASED_TS"] == "", "HOLD_NOTE"] = note
            holds.to_csv(data / hhmm / "wms_holds.csv", index=False)
            orders = pd.read_csv(data / hhmm / "oms_orders.csv", dtype=str, keep_default_na=False)
            orders.loc[0, "SoldToName"] = note
            orders.to_csv(data / hhmm / "oms_orders.csv", index=False)
    site_file = make_site(tmp, data / "{time}")
    settings = load_settings(site_file)
    history = tmp / "outputs" / settings.site / "history.duckdb"
    for hhmm in times:
        at = dt.datetime(2026, 11, 24, int(hhmm[:2]), int(hhmm[3:]), tzinfo=settings.tz)
        out = tmp / "outputs" / settings.site / "2026-11-24" / at.strftime("%H%M")
        review = Review.open(str(site_file), at.strftime("%Y-%m-%d %H:%M"), history_db=str(history), out_dir=str(out))
        try:
            write_snapshot(review.con, history, ReviewKey.of(settings.site, at), at, f"test-{hhmm}", outputs=str(out))
        finally:
            review.close()
    return site_file


@pytest.fixture(scope="module")
def board_site(tmp_path_factory, demo_day) -> Path:
    return build_history(tmp_path_factory.mktemp("board"), demo_day)


@pytest.fixture(scope="module")
def source(board_site) -> board.BoardSource:
    return board.resolve_source(str(board_site))


@pytest.fixture(scope="module")
def snap(source):
    s = board.load_snapshot(source, dt.date(2026, 11, 24), "1600")
    yield s
    s.close()


def hist(source: board.BoardSource) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(source.history_db), read_only=True)


def test_reviews_are_listed_newest_first(source):
    df = board.list_reviews(source)
    assert list(df["review_time"]) == ["1600", "1200"]


def test_the_snapshot_copy_holds_every_order_and_blocker_of_the_review(source, snap):
    with hist(source) as con:
        n_orders = con.execute("SELECT count(*) FROM snap_orders WHERE review_time = '1600'").fetchone()[0]
        n_blockers = con.execute("SELECT count(*) FROM snap_blockers WHERE review_time = '1600'").fetchone()[0]
    h = board.headline(snap)
    assert h["orders"] == n_orders == sum(h["by_state"].values()) == sum(h["by_promise"].values())
    assert h["open_blockers"] == n_blockers > 0
    assert snap.previous == ReviewKey(source.site, dt.date(2026, 11, 24), "1200")
    assert snap.picture is not None


def test_the_history_file_is_not_held_open_after_loading(source, snap):
    con = duckdb.connect(str(source.history_db))  # a writer can open it: the board holds no lock
    con.close()


def test_a_filter_narrows_the_blocker_queue_to_exactly_the_matching_rows(source, snap):
    opts = board.blocker_options(snap)
    owner = opts["owner"][0]
    page = board.blocker_page(snap, board.BlockerFilter(owner=owner), size=1000)
    with hist(source) as con:
        expected = con.execute(
            "SELECT blocker_id FROM snap_blockers WHERE review_time = '1600' AND owner = ?", [owner]
        ).fetchall()
    assert page.total == len(expected) == len(page.rows)
    assert set(page.rows["owner"]) == {owner}


def test_filters_combine(snap):
    full = board.blocker_page(snap, size=10_000).rows
    flt = board.BlockerFilter(min_priority=int(full["priority"].median()), min_age=30, carrier=full["carrier"].dropna().iloc[0])
    got = board.blocker_page(snap, flt, size=10_000).rows
    want = full[(full["priority"] >= flt.min_priority) & (full["age_minutes"] >= 30) & (full["carrier"] == flt.carrier)]
    assert len(got) == len(want)


def test_pages_cover_the_queue_once_in_priority_order(snap):
    total = board.blocker_page(snap).total
    seen = []
    for p in range(board.blocker_page(snap, size=7).pages):
        seen.extend(board.blocker_page(snap, page=p, size=7).rows.to_dict("records"))
    assert len(seen) == total
    prios = [r["priority"] for r in seen]
    assert prios == sorted(prios, reverse=True)


def test_a_page_past_the_end_shows_the_last_page(snap):
    p = board.blocker_page(snap, page=10_000, size=50)
    assert p.page == p.pages - 1 and len(p.rows) > 0


def test_promise_view_lists_needs_communication_first(snap):
    rows = board.promise_page(snap, size=10_000).rows
    assert set(rows["promise_status"]) <= {"needs_communication", "at_risk"}
    first_at_risk = list(rows["promise_status"]).index("at_risk")
    assert "needs_communication" not in list(rows["promise_status"])[first_at_risk:]
    assert ("draft_note" in rows.columns) == snap.has_drafts  # drafts shown when the run wrote them, else left out
    if snap.has_drafts:
        assert rows["draft_note"].dropna().str.startswith("DRAFT").all()


def test_change_counts_equal_their_lists(snap):
    for kind, n in board.change_counts(snap).itertuples(index=False):
        assert board.change_page(snap, kind, size=10_000).total == n


def test_lookup_by_tracking_number_finds_the_order_and_its_timeline(source, snap):
    with duckdb.connect(str(snap.picture), read_only=True) as pic:
        tracking, order_id = pic.execute(
            "SELECT tracking_no, order_id FROM linked_shipments WHERE order_id IS NOT NULL AND tracking_no IS NOT NULL LIMIT 1"
        ).fetchone()
    found = board.find(snap, source.settings, tracking)
    assert [f.order_id for f in found] == [order_id]
    assert found[0].kind == "tracking_no"
    detail = board.order_detail(snap, order_id)
    events = list(detail.timeline["event"])
    assert "order placed" in events and "label created" in events
    assert detail.order["state"]


def test_an_unknown_identifier_finds_nothing(source, snap):
    assert board.find(snap, source.settings, "NO-SUCH-THING-42") == []


def test_without_the_run_folder_changes_come_from_history(tmp_path, source):
    snap2 = board.load_snapshot(source, dt.date(2026, 11, 24), "1600")
    try:
        n = snap2.con.execute("SELECT count(*) FROM changes").fetchone()[0]
    finally:
        snap2.close()
    moved = board.BoardSource(source.settings, source.history_db)
    runs = board.list_reviews(moved)
    folder = Path(runs["outputs"].iloc[0])
    shutil.move(folder, tmp_path / "moved")
    try:
        snap3 = board.load_snapshot(moved, dt.date(2026, 11, 24), "1600")
        assert snap3.picture is None
        assert snap3.con.execute("SELECT count(*) FROM changes").fetchone()[0] == n
        assert board.order_detail(snap3, snap3.con.execute("SELECT order_id FROM order_board LIMIT 1").fetchone()[0]).timeline_note
        snap3.close()
    finally:
        shutil.move(tmp_path / "moved", folder)


def test_every_cell_is_escaped_and_only_http_links_become_anchors():
    df = pd.DataFrame({"detail": [XSS], "source_link": ["javascript:alert(1)"], "order_link": ["https://oms.example.com/o?a=1&b=2"]})
    out = board.html_table(df, "t")
    assert "<script" not in out and "<img" not in out and "&lt;script&gt;" in out
    assert 'href="javascript' not in out
    assert 'href="https://oms.example.com/o?a=1&amp;b=2" target="_blank" rel="noopener noreferrer"' in out


def test_safe_url_refuses_anything_but_http():
    assert board.safe_url("https://x.example/a") == "https://x.example/a"
    for bad in ("javascript:alert(1)", "data:text/html,x", "//evil", 'https://x" onmouseover="a', None, 5):
        assert board.safe_url(bad) is None


def test_a_missing_history_shows_a_message_not_a_traceback(tmp_path, board_site):
    w = board.dashboard(history_db=str(tmp_path / "none.duckdb"), site=str(board_site))
    html = " ".join(getattr(c, "value", "") for c in w.children)
    assert "no cutoff review" in html and "Traceback" not in html


def test_the_dashboard_opens_the_latest_review_and_filters(board_site):
    b = board.Board(board.resolve_source(str(board_site)))
    assert "16:00" in b.title.value
    before = b.blockers.html.value
    b.f_owner.value = b.f_owner.options[1][1]
    assert b.blockers.html.value != before and "board-error" not in b.status.value
    b.picker.value = b.picker.options[1][1]
    assert "12:00" in b.title.value
    b.q.value = b.snap.con.execute("SELECT order_id FROM order_board LIMIT 1").fetchone()[0]
    assert "Timeline across systems" in b.q_out.value


# ---------------------------------------------------------------------------------- the launcher


def test_the_server_binds_to_loopback_with_culling_and_without_tracebacks():
    from handoff_lib import board_server

    argv = board_server.voila_argv(board_server.DEFAULT_HOST, 8866)
    assert board_server.DEFAULT_HOST == "127.0.0.1" and "--Voila.ip=127.0.0.1" in argv
    assert "--VoilaConfiguration.show_tracebacks=False" in argv and "--VoilaConfiguration.preheat_kernel=True" in argv
    assert any(a.startswith("--MappingKernelManager.cull_idle_timeout=") and int(a.split("=")[1]) > 0 for a in argv)


def test_the_kernel_limit_refuses_one_page_too_many(monkeypatch):
    import asyncio

    from tornado.web import HTTPError

    from handoff_lib.board_server import LimitedKernelManager

    km = LimitedKernelManager(max_kernels=2)
    monkeypatch.setattr(km, "list_kernel_ids", lambda: ["a", "b"])
    with pytest.raises(HTTPError) as err:
        asyncio.run(km.start_kernel())
    assert err.value.status_code == 503


def test_after_a_send_a_socket_with_pending_receives_rechecks_its_events():
    from handoff_lib.board_server import _rearm

    class Sock:
        _current_loop = None
        rechecked = 0

        def __init__(self, pending):
            self._recv_futures = pending

        def _schedule_remaining_events(self):
            self.rechecked += 1

    waiting, idle = Sock(["reply"]), Sock([])
    _rearm(waiting)
    _rearm(idle)
    assert (waiting.rechecked, idle.rechecked) == (1, 0)


def test_the_session_send_patch_wraps_once():
    from jupyter_client.session import Session

    from handoff_lib.board_server import patch_session_send

    original = Session.send
    try:
        first = patch_session_send()
        assert patch_session_send() is False
        assert getattr(Session.send, "_handoff_rearm", False) and (first or original is Session.send)
    finally:
        Session.send = original
        Session.send_raw = getattr(Session.send_raw, "__wrapped__", Session.send_raw)
