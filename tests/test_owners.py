"""Owner queues on a hand-written day: exactly the owner's blockers, new first, then in act-now order, the
subject's stakes, the board's acknowledgement state, and a note's markup kept as text."""

from __future__ import annotations

from scenario_tables import Story, at
from test_meeting import labour_settings

from handoff_lib.history import acks
from handoff_lib.publish import owners
from handoff_lib.rules.meeting import act_now, build_meeting, store_act_now


def credit_day(tmp_path=None) -> Story:
    """Reviewed at 14:00, previous review 12:00. Finance owns four credit holds on UPS GND 16:00 orders:
    account ACME holds K1, K2 and BOTH (BOTH is also short: clearing credit alone does not save it) and account
    ZED holds Z1. Replenishment owns the short picks of S1, S2 and BOTH (one SKU at one location).
    Act-now: the short SKU saves 2 (S1, S2), ACME saves 2 (K1, K2) with more value, ZED saves 1.
    Z1's hold is new since 12:00; the rest were there before."""
    s = Story(labour_settings())
    for oid in ("S1", "S2"):
        s.order(oid, lines=[("SKU-9", 5)], priority=2)
        s.task(f"T-{oid}", oid, 1, status="short", picked=0, location="Z-01-04")
    for oid in ("K1", "K2"):
        s.order(oid, lines=1, customer_id="ACME", priority=1, order_value=900.0)
        s.hold(f"H-{oid}", oid, code="CR", note="over limit")
    s.order("BOTH", lines=[("SKU-9", 5)], customer_id="ACME", priority=1)
    s.task("T-BOTH", "BOTH", 1, status="short", picked=0, location="Z-01-04")
    s.hold("H-BOTH", "BOTH", code="CR")
    s.order("Z1", lines=1, customer_id="ZED", priority=3)
    s.hold("H-Z1", "Z1", code="CR", note='<script>window.pwned = 1</script> <!channel> call AR & "ask"')
    s.analyse("14:00")
    build_meeting(s.con, s.settings, at("14:00"))
    store_act_now(s.con, act_now(s.con, at("14:00"), at("14:00").replace(hour=23)))
    s.con.execute("CREATE TABLE changes (kind VARCHAR, blocker_id VARCHAR)")
    s.con.execute("INSERT INTO changes SELECT 'new_blocker', blocker_id FROM blockers WHERE order_id = 'Z1'")
    return s


def queues(s: Story, tmp_path=None, previous=True):
    log = acks.log_path(tmp_path / "history.duckdb") if tmp_path else None
    return owners.build_queues(s.con, s.settings, at("14:00"), at("12:00") if previous else None, log)


def test_an_owner_queue_holds_exactly_the_owners_rows_of_the_blocker_queue():
    s = credit_day()
    qs = queues(s)
    for owner, q in qs.items():
        want = {r[0] for r in s.con.execute("SELECT blocker_id FROM blockers WHERE owner = ?", [owner]).fetchall()}
        assert set(q.rows["blocker_id"]) == want and len(q.rows) == len(want), owner
    assert set(qs) == {r[0] for r in s.con.execute("SELECT DISTINCT owner FROM blockers").fetchall()}


def test_new_blockers_come_first_then_the_act_now_order():
    s = credit_day()
    q = queues(s)["finance"]
    ranks = dict(s.con.execute("SELECT group_key, rank FROM act_now WHERE reason = 'credit_hold'").fetchall())
    assert ranks["ACME"] < ranks["ZED"]  # the act-now list puts ACME (2 orders saved) before ZED (1)
    assert q.rows["order_id"].iloc[0] == "Z1"  # new since 12:00, so first although ZED ranks lower
    assert list(q.rows["is_new"]) == [True, False, False, False]
    assert set(q.rows["order_id"][1:]) == {"K1", "K2", "BOTH"}
    assert list(q.rows["act_rank"]) == [ranks["ZED"], ranks["ACME"], ranks["ACME"], ranks["ACME"]]
    assert list(q.rows["rank"]) == [1, 2, 3, 4]


def test_without_a_previous_review_every_blocker_is_new_and_the_act_now_order_decides():
    s = credit_day()
    q = queues(s, previous=False)["finance"]
    assert q.rows["is_new"].all()
    assert list(q.rows["order_id"])[-1] == "Z1"


def test_the_subject_names_the_orders_waiting_on_the_first_coming_pickup_and_the_new_count():
    s = credit_day()
    qs = queues(s)
    assert qs["finance"].subject == "Finance: 4 orders for the 16:00 UPS pickup wait on credit hold, 1 new"
    assert qs["replenishment"].subject == "Replenishment: 3 orders for the 16:00 UPS pickup wait on short pick, 0 new"


def test_a_stale_review_marks_the_subject_and_an_empty_queue_says_so():
    s = credit_day()
    q = owners.build_queues(s.con, s.settings, at("14:00"), at("12:00"), stale=["WMS pick tasks as of 09:00"],
                            owners=["packing"])
    assert q["finance"].subject.startswith("[STALE] Finance: ")
    assert "STALE EXTRACTS" in owners.text(q["finance"])
    assert q["packing"].rows.empty and q["packing"].subject == "[STALE] Packing: no open blockers"


def test_the_boards_acknowledgement_is_shown_per_blocker(tmp_path):
    s = credit_day()
    bid = s.con.execute("SELECT blocker_id FROM blockers WHERE order_id = 'K1'").fetchone()[0]
    acks.record(acks.log_path(tmp_path / "history.duckdb"),
                acks.Entry("demo", bid, "acknowledge", "jdiaz", "J. Diaz", order_id="K1", comment="calling AR <b>now</b>"),
                now=at("13:50"))
    q = queues(s, tmp_path)["finance"]
    ack = dict(zip(q.rows["order_id"], q.rows["ack"]))
    assert ack["K1"].startswith("acknowledged by J. Diaz 13:50") and "calling AR <b>now</b>" in ack["K1"]
    assert ack["K2"] == "not acknowledged"
    page = owners.html(q)
    assert "calling AR &lt;b&gt;now&lt;/b&gt;" in page and "<b>now</b>" not in page


def test_note_markup_is_escaped_in_html_and_inert_in_the_chat_payload():
    s = credit_day()
    q = queues(s)["finance"]
    page = owners.html(q)
    assert "<script" not in page and "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in page
    body = owners.payload(q)
    assert "<script" not in body["text"] and "<!channel>" not in body["text"]
    assert "&lt;script&gt;" in body["text"] and "&lt;!channel&gt;" in body["text"] and "AR &amp;" in body["text"]


def test_the_owner_email_renders_in_chromium_with_the_note_as_text_and_no_script_run(browser, tmp_path):
    s = credit_day()
    q = queues(s)["finance"]
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        path = tmp_path / "finance.html"
        path.write_text(owners.html(q), encoding="utf-8")
        page.goto(path.as_uri())
        assert page.evaluate("window.pwned") is None  # the note's <script> did not run
        assert page.locator("h1").inner_text() == q.subject
        rows = page.locator("tr[data-blocker]")
        assert rows.count() == 4
        first = rows.nth(0).inner_text()
        assert "NEW" in first and "Z1" in first and '<script>window.pwned = 1</script> <!channel> call AR & "ask"' in first
        assert page.locator("script").count() == 0
    finally:
        page.close()
