"""The handoff board's data functions: reading a review per role, filters, paging, lookup, timeline, drafts,
acknowledgements, escaping; the server's launcher settings."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from handoff_lib import board
from handoff_lib.board import actions
from handoff_lib.board.roles import ROLES, Viewer
from handoff_lib.errors import HandoffError
from handoff_lib.history import acks
from handoff_lib.history.snapshots import ReviewKey, write_snapshot
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.review import Review

XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2; alert(1)">'


def build_history(tmp: Path, demo_day: Path, times=("12:00", "16:00"), note: str | None = None, stale_1600: bool = False) -> Path:
    """A site file and a history database holding one review per time, written the way a review run
    writes them (picture.duckdb in the review's folder, snapshot in history) but without papermill.
    With `note`, every open hold's note and one customer's name carry that text. With `stale_1600`, the
    16:00 review reads the 12:00 files (the export jobs did not run since): a review stored stale."""
    from conftest import make_site

    data = tmp / "data"
    shutil.copytree(demo_day, data)
    if stale_1600:
        shutil.rmtree(data / "1600")
        shutil.copytree(data / "1200", data / "1600")
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
            write_snapshot(review.con, history, ReviewKey.of(settings.site, at), at, f"test-{hhmm}", outputs=str(out),
                           stale=bool(review.stale_lines()))
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


def test_the_review_read_holds_every_order_and_blocker_of_the_review(source, snap):
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


def test_a_viewer_holds_no_copy_of_the_review(snap):
    """Only views over the run's picture.duckdb, which is attached only while a query runs."""
    tables = snap.con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = 'memory'").fetchone()[0]
    attached = [r[0] for r in snap.con.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal").fetchall()]
    assert tables == 0 and attached == ["memory"]
    assert board.blocker_page(snap).total > 0
    assert [r[0] for r in snap.con.execute("SELECT database_name FROM duckdb_databases() WHERE NOT internal").fetchall()] == ["memory"]


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


def test_the_pickup_filter_offers_carrier_pickups_only_and_ship_by_deadlines_are_their_own(source, snap):
    opts = board.blocker_options(snap)
    with duckdb.connect(str(snap.picture), read_only=True) as pic:
        by_source = dict(pic.execute(
            "SELECT p.cutoff_source, list(DISTINCT b.cutoff_label ORDER BY b.cutoff_label) FROM blockers b JOIN promise p USING (order_id) "
            "WHERE b.cutoff_label IS NOT NULL GROUP BY 1").fetchall())
        first = dict(pic.execute("SELECT cutoff_label, min(cutoff_at) FROM blockers GROUP BY 1").fetchall())
    assert by_source["ship_by"] and by_source["pickup"]  # the demo day has both
    assert sorted(opts["cutoff"]) == by_source["pickup"] and sorted(opts["ship_by"]) == by_source["ship_by"]
    assert [first[c] for c in opts["cutoff"]] == sorted(first[c] for c in opts["cutoff"])  # in time order
    ship_by = opts["ship_by"][0]
    got = board.blocker_page(snap, board.BlockerFilter(ship_by=ship_by), size=10_000)
    assert got.total > 0 and set(got.rows["cutoff_label"]) == {ship_by}
    assert board.blocker_page(snap, board.BlockerFilter(cutoff=ship_by)).total == 0  # not a pickup


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
    assert rows["draft_note"].str.startswith("DRAFT").all()  # one draft per order, built on the board


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


def test_a_po_two_orders_share_lists_both_to_choose_from_and_shows_neither(source):
    b = board.Board(source, "2026-11-24 16:00", viewer=OPS)
    with duckdb.connect(str(b.snap.picture), read_only=True) as pic:
        po, orders = pic.execute(
            "SELECT raw_key, list_sort(list(DISTINCT order_id)) FROM id_index WHERE kind = 'customer_po' "
            "GROUP BY raw_key HAVING count(DISTINCT order_id) > 1 ORDER BY raw_key LIMIT 1").fetchone()
    b.lookup(orders[0])  # an answer on screen first: it must not stay there
    assert f'data-order="{orders[0]}"' in b.q_out.value
    b.lookup(po)
    assert [v for _, v in b.q_pick.options][1:] == orders and b.q_pick.value == "" and b.q_pick.layout.display == ""
    assert f'data-matches="{len(orders)}"' in b.q_out.value and "data-order=" not in b.q_out.value
    assert all(o in b.q_out.value for o in orders) and "board-error" not in b.status.value
    b.q_pick.value = orders[1]  # chosen: that order is shown
    assert f'data-order="{orders[1]}"' in b.q_out.value


def test_a_widget_error_shows_a_plain_message_and_logs_its_traceback(source, capfd):
    b = board.Board(source, "2026-11-24 16:00", viewer=OPS)

    def broken(_):
        raise ZeroDivisionError("an internal detail")

    b.guard(broken)(None)
    assert "Something went wrong (ZeroDivisionError)" in b.status.value and "internal detail" not in b.status.value
    err = capfd.readouterr().err
    assert "Traceback" in err and "ZeroDivisionError: an internal detail" in err and "in broken" in err


def test_an_unknown_identifier_finds_nothing(source, snap):
    assert board.find(snap, source.settings, "NO-SUCH-THING-42") == []


def test_without_the_run_folder_changes_come_from_history(tmp_path, source):
    snap2 = board.load_snapshot(source, dt.date(2026, 11, 24), "1600")
    try:
        n = snap2.rows("SELECT count(*) FROM changes")[0][0]
    finally:
        snap2.close()
    moved = board.BoardSource(source.settings, source.history_db)
    runs = board.list_reviews(moved)
    folder = Path(runs["outputs"].iloc[0])
    shutil.move(folder, tmp_path / "moved")
    try:
        snap3 = board.load_snapshot(moved, dt.date(2026, 11, 24), "1600")
        assert snap3.picture is None
        assert snap3.rows("SELECT count(*) FROM changes")[0][0] == n
        assert board.order_detail(snap3, snap3.rows("SELECT order_id FROM order_board LIMIT 1")[0][0]).timeline_note
        snap3.close()
        status = board.load_snapshot(moved, dt.date(2026, 11, 24), "1600", ROLES["status"])  # the copy: role columns only
        assert "state_reason" not in status.query("SELECT * FROM order_board LIMIT 1").columns
        assert "detail" not in status.query("SELECT * FROM blockers LIMIT 1").columns
        status.close()
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
    assert b.tab_names[0] == "Cutoff meeting" and b.blockers.html.value == ""  # the queue fills when first shown
    b.tabs.selected_index = b.tab_names.index("Blocker queue")
    before = b.blockers.html.value
    b.f_owner.value = b.f_owner.options[1][1]
    assert b.blockers.html.value != before and "board-error" not in b.status.value
    b.picker.value = b.picker.options[1][1]
    assert "12:00" in b.title.value
    b.q.value = b.snap.rows("SELECT order_id FROM order_board LIMIT 1")[0][0]
    assert "Timeline across systems" in b.q_out.value


# ---------------------------------------------------------------------------------- the cutoff meeting


def test_the_meeting_tab_comes_first_with_the_reports_pickups_act_now_and_calls(source):
    b = board.Board(source, "2026-11-24 16:00", viewer=OPS)
    assert b.tab_names[0] == "Cutoff meeting" and b.snap.meeting
    with duckdb.connect(str(b.snap.picture), read_only=True) as pic:
        pickups = pic.execute("SELECT pickup, verdict, verdict_text FROM meeting_pickups ORDER BY pickup_at, carrier, service").fetchall()
        actions = [r[0] for r in pic.execute("SELECT action FROM act_now ORDER BY rank LIMIT 10").fetchall()]
        calls = [r[0] for r in pic.execute(
            "SELECT order_id FROM meeting_orders WHERE promise_status = 'needs_communication' "
            "ORDER BY priority DESC, pickup_at NULLS LAST, order_id LIMIT 10").fetchall()]
        n_calls = pic.execute("SELECT count(*) FROM meeting_orders WHERE promise_status = 'needs_communication'").fetchone()[0]
    assert pickups and actions and calls  # the demo day has all three
    cards = b.m_pickups.value
    assert f'data-pickups="{len(pickups)}"' in cards
    positions = [cards.index(html_escape(label)) for label, _, _ in pickups]
    assert positions == sorted(positions)  # in time order
    for label, verdict, verdict_text in pickups:
        assert f'data-verdict="{verdict}"' in cards and html_escape(verdict_text) in cards
    shown = board.act_now_page(b.snap)
    assert shown.rows["action"].tolist() == actions and f'data-rows="{len(actions)}"' in b.m_act.html.value
    got = board.calls_page(b.snap)
    assert got.rows["order_id"].tolist() == calls and got.total == n_calls
    assert got.rows["draft_note"].str.startswith("DRAFT").all()
    assert "changes since the review of 2026-11-24 12:00" in b.m_changes.value
    with duckdb.connect(str(b.snap.picture), read_only=True) as pic:  # the tile names the first card's truck
        first = pic.execute("SELECT pickup, at_risk FROM meeting_pickups ORDER BY pickup_at, carrier, service LIMIT 1").fetchone()
    h = board.headline(b.snap)
    assert (h["next_pickup"], h["at_risk_next_pickup"]) == first and f"at risk on the next pickup ({first[0]})" in b.tiles.value


def test_a_status_meeting_has_pickups_and_calls_but_no_act_now_and_no_note_text(noted_site):
    source = board.resolve_source(str(noted_site))
    snap = status_snap(source)
    try:
        assert snap.meeting and not board.data._has_table(snap.con, "memory", "act_now")
        with pytest.raises(HandoffError, match="not part of the status view"):
            board.act_now_page(snap)
        assert len(board.meeting_pickups(snap))
        for status in ("needs_communication", "at_risk"):
            rows = board.calls_page(snap, status, size=1000).rows
            assert not rows.astype(str).apply(lambda c: c.str.contains("__xss")).to_numpy().any()
    finally:
        snap.close()


def html_escape(s: str) -> str:
    import html

    return html.escape(s)


@pytest.fixture(scope="module")
def stale_site(tmp_path_factory, demo_day) -> Path:
    return build_history(tmp_path_factory.mktemp("stale"), demo_day, stale_1600=True)


def test_a_stale_review_says_which_source_and_how_old_on_the_first_screen_and_holds_its_drafts(stale_site):
    from handoff_lib.history.snapshots import stale_sources
    from handoff_lib.load import freshness

    source = board.resolve_source(str(stale_site))
    with duckdb.connect(str(source.history_db), read_only=True) as con:
        stale = stale_sources(con, source.site, dt.date(2026, 11, 24), "1600")
    assert "pick_tasks" in set(stale["source"])  # the fixture: 16:00 read the 12:00 files
    at = dt.datetime(2026, 11, 24, 16, 0, tzinfo=source.settings.tz)
    b = board.Board(source, viewer=OPS)
    assert b.snap.stale_headline == freshness.headline(stale, source.settings, at)
    assert b.snap.stale_headline.startswith("STALE: ") and "WMS pick tasks as of 12:00" in b.snap.stale_headline
    assert 'class="board-stale"' in b.stale.value and html_escape(b.snap.stale_headline) in b.stale.value
    assert "held back" in b.stale.value
    labels = [label for label, _ in b.picker.options]
    assert labels[0].endswith("(latest) STALE") and not labels[1].endswith("STALE")  # 12:00 was fresh
    calls = board.calls_page(b.snap, size=5).rows
    assert len(calls) and calls["draft_note"].str.startswith("HELD BACK, not to be sent").all()
    assert "WMS pick tasks as of 12:00" in calls["draft_note"].iloc[0]
    b.snap.on_stale = "mark"  # the site's other choice: kept, marked on the second line
    marked = board.data.drafts_for(b.snap, calls["order_id"].tolist())
    assert all(d.startswith("DRAFT") and d.split("\n")[1].startswith("STALE EXTRACTS - check before sending: ") for d in marked.values())
    b.picker.value = b.picker.options[1][1]  # the fresh 12:00 review: no banner
    assert b.stale.value == "" and not b.snap.stale


# ------------------------------------------------------------------------------------------ roles

OPS = Viewer("jdiaz", "J. Diaz", ROLES["ops"], can_act=True, signed_in=True)
SALES = Viewer("sam", "Sam Sales", ROLES["status"], can_act=True, signed_in=True)


@pytest.fixture(scope="module")
def noted_site(tmp_path_factory, demo_day) -> Path:
    """Every open hold's note (and one customer name) carries XSS; the site marks order_value-like fields internal."""
    return build_history(tmp_path_factory.mktemp("board_noted"), demo_day, note=XSS)


def status_snap(source) -> board.Snapshot:
    return board.load_snapshot(source, dt.date(2026, 11, 24), "1600", ROLES["status"])


def test_a_status_view_has_no_blocker_queue_and_no_note_columns(noted_site):
    source = board.resolve_source(str(noted_site))
    snap = status_snap(source)
    try:
        views = {r[0] for r in snap.con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert "blocker_queue" not in views and {"order_board", "blockers", "changes", "promise"} <= views
        with snap.reading() as con:
            assert not {"state_reason", "hold_text"} & {r[0] for r in con.execute("DESCRIBE order_board").fetchall()}
            assert "detail" not in {r[0] for r in con.execute("DESCRIBE blockers").fetchall()}
            assert "detail" not in {r[0] for r in con.execute("DESCRIBE changes").fetchall()}
        with pytest.raises(HandoffError, match="not part of the status view"):
            board.blocker_page(snap)
        with pytest.raises(HandoffError, match="not part of the status view"):
            board.order_page(snap)
    finally:
        snap.close()


def test_a_status_lookup_and_drafts_show_no_note_text(noted_site):
    """The hold note (XSS) is in the ops lookup, draft and queue; never in anything the status role reads."""
    source = board.resolve_source(str(noted_site))
    ops = board.load_snapshot(source, dt.date(2026, 11, 24), "1600")
    snap = status_snap(source)
    try:
        held = ops.rows("SELECT order_id FROM blockers WHERE contains(detail, '<script>window.__xss') ORDER BY order_id")
        order_id = held[0][0]
        ops_detail = board.order_detail(ops, order_id)
        assert XSS in " ".join(map(str, ops_detail.timeline["detail"]))
        detail = board.order_detail(snap, order_id)
        shown = " ".join(map(str, [*detail.order.values(), *detail.blockers.to_numpy().ravel(), *detail.timeline.to_numpy().ravel()]))
        assert "hold placed" in shown and "__xss" not in shown
        at_risk = [r[0] for r in ops.rows(  # at risk first, when the day has one (a draft is written for any order)
            "SELECT order_id FROM order_board WHERE order_id IN (SELECT order_id FROM blockers WHERE contains(detail, '__xss')) "
            "ORDER BY promise_status NOT IN ('at_risk', 'needs_communication'), order_id")]
        assert at_risk, "the fixture has an order with a noted hold"
        assert "__xss" in board.data.drafts_for(ops, at_risk)[at_risk[0]]
        drafts = board.data.drafts_for(snap, at_risk)
        assert drafts[at_risk[0]].startswith("DRAFT") and not any("__xss" in d for d in drafts.values())
        pages = [board.promise_page(snap, size=1000).rows, board.change_page(snap, size=10_000).rows]
        assert not any(df.astype(str).apply(lambda c: c.str.contains("__xss")).to_numpy().any() for df in pages)
    finally:
        ops.close()
        snap.close()


def test_fields_the_site_marks_internal_are_read_by_ops_only(tmp_path, board_site):
    import yaml

    raw = yaml.safe_load(board_site.read_text())
    raw["board"] = {"internal_fields": ["customer_name", "tier"]}
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(raw))
    source = board.BoardSource(board.resolve_source(str(site)).settings, board.resolve_source(str(board_site)).history_db)
    for role, hidden in (("ops", False), ("status", True)):
        snap = board.load_snapshot(source, dt.date(2026, 11, 24), "1600", ROLES[role])
        try:
            cols = set(snap.query("SELECT * FROM order_board LIMIT 1").columns)
            assert ({"customer_name", "tier"} & cols == set()) == hidden
        finally:
            snap.close()


def test_a_malformed_board_block_names_the_site_file_line(tmp_path, board_site):
    import yaml

    raw = yaml.safe_load(board_site.read_text())
    raw["board"] = {"internal_fields": "order_value"}
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(raw))
    with pytest.raises(HandoffError, match=r"site.yaml line \d+: board.internal_fields must be a list"):
        board.resolve_source(str(site))


def test_each_role_gets_only_its_tabs(board_site):
    source = board.resolve_source(str(board_site))
    tabs = {name: board.Board(source, viewer=Viewer("u", "U", ROLES[name], can_act=True)).tab_names for name in ROLES}
    assert tabs["status"] == ["Order lookup", "Cutoff meeting", "Promises at risk", "Changes since last review"]
    assert tabs["planner"] == ["Cutoff meeting", "Cutoff burn-down & charts", "Recurring themes", "Exports"]
    assert tabs["ops"][:2] == ["Cutoff meeting", "Blocker queue"] and {"All orders", "Exports", "Order lookup"} <= set(tabs["ops"])
    status = board.Board(source, viewer=SALES)
    assert status.blockers is None and status.act is None and status.orders is None and status.m_act is None
    planner = board.Board(source, viewer=Viewer("p", "P", ROLES["planner"], can_act=True))
    assert planner.m_act is None and planner.m_calls is None  # next pickups only, and nothing else of the meeting is read
    assert [board.data._has_table(planner.snap.con, "memory", t) for t in ("meeting_pickups", "meeting_orders", "act_now")] == [
        True, False, False]


def test_a_tab_reads_its_rows_when_first_shown(board_site):
    b = board.Board(board.resolve_source(str(board_site)), viewer=SALES)
    assert b.promise.html.value == "" and b.changes.html.value == ""  # the page opens on the lookup
    b.tabs.selected_index = b.tab_names.index("Promises at risk")
    assert 'id="board-promise"' in b.promise.html.value and b.changes.html.value == ""


def test_a_page_kernel_learns_its_viewer_from_the_server_not_the_page(tmp_path, monkeypatch):
    from handoff_lib.board import session

    monkeypatch.delenv(session.ENV_SESSIONS, raising=False)
    assert board.viewer().role.name == "ops" and board.viewer().can_act  # outside the board server: the local user
    sessions = session.Sessions(tmp_path / "sessions")
    monkeypatch.setenv(session.ENV_SESSIONS, str(sessions.folder))
    monkeypatch.setenv("VOILA_KERNEL_ID", "k-1")
    with pytest.raises(HandoffError, match="did not say who opened this page"):
        board.viewer(timeout_s=0.1)  # a pre-heated kernel waits here until its page is requested
    sessions.bind("k-1", SALES)
    assert board.viewer() == SALES and sessions.owner("k-1") == "sam"
    assert oct((tmp_path / "sessions").stat().st_mode & 0o777) == "0o700"
    sessions.forget("k-1")
    assert sessions.owner("k-1") is None and not (tmp_path / "sessions" / "k-1.json").exists()


# -------------------------------------------------------------------------------- acknowledgements


@pytest.fixture
def acked(tmp_path, demo_day):
    """A fresh site (its own acknowledgement log), and the 16:00 ops read of it."""
    site = build_history(tmp_path, demo_day)
    source = board.resolve_source(str(site))
    snap = board.load_snapshot(source, dt.date(2026, 11, 24), "1600")
    yield source, snap
    snap.close()


def test_an_acknowledgement_shows_in_the_queue_for_everyone_and_in_the_drafts(acked):
    source, snap = acked
    row = snap.rows("""SELECT b.blocker_id, b.order_id FROM blockers b JOIN order_board o USING (order_id)
                       WHERE o.promise_status IN ('at_risk', 'needs_communication') ORDER BY b.blocker_id LIMIT 1""")[0]
    now = dt.datetime(2026, 11, 24, 19, 35, tzinfo=dt.UTC)  # 14:35 at the site
    actions.record(source, snap, OPS, "acknowledge", row[0], assignee="M. Chen", comment="recount <b>bin</b>",
                   expected_by="15:10", now=now)
    queue = board.blocker_page(snap, size=1000).rows.set_index("blocker_id")
    assert re.fullmatch(r'acknowledged by J\. Diaz 14:35( \(Tue 24 Nov\))?, assigned to M\. Chen, expected 15:10: '
                        r'"recount <b>bin</b>" \(J\. Diaz\)', queue.loc[row[0], "handling"])  # a date when not today
    assert (queue.drop(index=row[0])["handling"] == "").all()
    acked_only = board.blocker_page(snap, board.BlockerFilter(handling="acknowledged")).rows
    assert list(acked_only["blocker_id"]) == [row[0]]
    assert row[0] not in set(board.blocker_page(snap, board.BlockerFilter(handling="open"), size=1000).rows["blocker_id"])
    draft = board.data.drafts_for(snap, [row[1]])[row[1]]
    assert "What is being done: [" in draft and "acknowledged by J. Diaz" in draft and "expected 15:10" in draft
    status = status_snap(source)
    try:  # a status reader sees who is on it, never the comment
        status_draft = board.data.drafts_for(status, [row[1]])[row[1]]
        assert "acknowledged by J. Diaz" in status_draft and "recount" not in status_draft
        lookup = board.order_detail(status, row[1]).blockers
        assert any("acknowledged by J. Diaz" in h for h in lookup["handling"]) and not any("recount" in h for h in lookup["handling"])
    finally:
        status.close()


def test_only_a_signed_in_ops_user_can_act(acked):
    source, snap = acked
    blocker_id = snap.rows("SELECT blocker_id FROM blockers LIMIT 1")[0][0]
    for viewer in (SALES, Viewer("anon", "anonymous", ROLES["ops"], can_act=False)):
        with pytest.raises(HandoffError, match="cannot act"):
            actions.record(source, snap, viewer, "acknowledge", blocker_id)
    with pytest.raises(HandoffError, match="pick a blocker of this review"):
        actions.record(source, snap, OPS, "acknowledge", "not-a-blocker-of-this-review")
    assert acks.states(source.ack_log, source.site) == {}


def test_the_act_panel_signs_with_the_viewer_the_server_named(acked):
    source, _ = acked
    b = board.Board(source, viewer=OPS)
    b.tabs.selected_index = b.tab_names.index("Blocker queue")
    blocker_id = b.act.pick.value
    b.act.comment.value = "on it"
    b.act.buttons["comment"].click()
    assert "board-error" not in b.status.value, b.status.value
    entry = acks.history(source.ack_log, source.site, blocker_id)[-1]
    assert (entry["what"], entry["actor_name"], entry["comment"]) == ("comment", "J. Diaz", "on it")
    assert "on it" in b.act.log.value and "on it" in b.blockers.html.value
    b.act.buttons["assign"].click()  # no assignee: refused, shown on the board
    assert "give the name of the person" in b.status.value


# ---------------------------------------------------------------------------------- the launcher


def test_the_server_binds_to_loopback_with_culling_and_without_tracebacks():
    from handoff_lib.board import server as board_server

    argv = board_server.voila_argv(board_server.DEFAULT_HOST, 8866)
    assert board_server.DEFAULT_HOST == "127.0.0.1" and "--Voila.ip=127.0.0.1" in argv
    assert "--VoilaConfiguration.show_tracebacks=False" in argv and "--VoilaConfiguration.preheat_kernel=True" in argv
    idle = [int(a.split("=")[1]) for a in argv if a.startswith("--MappingKernelManager.cull_idle_timeout=")]
    interval = [int(a.split("=")[1]) for a in argv if a.startswith("--MappingKernelManager.cull_interval=")]
    assert idle and interval and 0 < idle[0] + interval[0] <= 90  # an abandoned page's kernel goes within about a minute
    assert "--MappingKernelManager.cull_connected=False" in argv


def _record(failed: list, call) -> None:
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - handed back to the test's thread
        failed.append(exc)


def test_the_kernel_limit_refuses_a_page_one_too_many(monkeypatch):
    import asyncio
    import threading

    from tornado.web import HTTPError

    from handoff_lib.board.server import LimitedKernelManager

    km = LimitedKernelManager(max_kernels=2)
    monkeypatch.setattr(km, "list_kernel_ids", lambda: ["a", "b"])
    assert not km.room_for_page("board.ipynb")
    # on a thread of its own: a session browser (Playwright's sync API) keeps an event loop running on this thread
    failed: list[BaseException] = []
    worker = threading.Thread(target=lambda: _record(failed, lambda: asyncio.run(km.start_kernel(env={"VOILA_PREHEAT": "False"}))))
    worker.start()
    worker.join()
    assert len(failed) == 1 and isinstance(failed[0], HTTPError), failed
    assert failed[0].status_code == 503
    monkeypatch.setattr(km, "list_kernel_ids", lambda: ["a"])
    assert km.room_for_page("board.ipynb")


def test_after_a_send_a_socket_with_pending_receives_rechecks_its_events():
    from handoff_lib.board.server import _rearm

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

    from handoff_lib.board.server import patch_session_send

    original = Session.send
    try:
        first = patch_session_send()
        assert patch_session_send() is False
        assert getattr(Session.send, "_handoff_rearm", False) and (first or original is Session.send)
    finally:
        Session.send = original
        Session.send_raw = getattr(Session.send_raw, "__wrapped__", Session.send_raw)
