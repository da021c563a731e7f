"""Order lookup by any identifier, as each system writes it."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from handoff_lib.cli.main import main
from handoff_lib.join.lookup import find_orders, format_view, order_view
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.pipeline import build_picture


@pytest.fixture(scope="module")
def picture(tmp_path_factory, demo_day):
    from conftest import make_site

    tmp = tmp_path_factory.mktemp("lookup")
    settings = load_settings(make_site(tmp, demo_day / "1600"))
    con = build_picture(settings, now=dt.datetime(2026, 11, 24, 16, 0, tzinfo=settings.tz))
    return settings, con


def one(con, sql):
    return con.execute(sql).fetchone()


@pytest.mark.parametrize(
    "sql, kind",
    [
        ("SELECT order_id, order_id FROM orders LIMIT 1", "order"),
        (("SELECT customer_po, order_id FROM orders WHERE customer_po IS NOT NULL AND customer_po IN "
         "(SELECT customer_po FROM orders GROUP BY 1 HAVING count(*) = 1) LIMIT 1"), "customer_po"),
        ("SELECT pick_ticket, order_id FROM linked_pick_tasks WHERE link_status = 'linked' LIMIT 1", "pick_ticket"),
        ("SELECT task_id, order_id FROM linked_pick_tasks WHERE link_status = 'linked' LIMIT 1", "task"),
        ("SELECT carton_id, order_id FROM linked_pack_events WHERE link_status = 'linked' LIMIT 1", "carton"),
        ("SELECT shipment_id, order_id FROM linked_shipments WHERE link_status = 'linked' LIMIT 1", "shipment"),
        ("SELECT tracking_no, order_id FROM linked_shipments WHERE link_status = 'linked' AND tracking_no IS NOT NULL LIMIT 1",
         "tracking_no"),
        ("SELECT case_id, order_id FROM linked_cases WHERE link_status = 'linked' LIMIT 1", "case"),
    ],
)
def test_any_identifier_finds_its_order(picture, sql, kind):
    settings, con = picture
    ident, order_id = one(con, sql)
    matches = find_orders(con, settings, ident)
    assert [m.order_id for m in matches] == [order_id]
    assert matches[0].kind == kind


def test_the_wms_spelling_of_an_order_id_finds_it(picture):
    settings, con = picture
    order_id = one(con, "SELECT order_id FROM orders LIMIT 1")[0]
    digits = order_id.split("-")[1].lstrip("0")
    for spelling in (digits, f" so{digits} ", f"SO {digits}", order_id.lower()):
        assert [m.order_id for m in find_orders(con, settings, spelling)] == [order_id], spelling


def test_a_po_two_orders_share_lists_both(picture):
    settings, con = picture
    row = one(con, "SELECT customer_po, count(*) FROM orders WHERE customer_po IS NOT NULL GROUP BY 1 HAVING count(*) > 1 LIMIT 1")
    if row is None:
        pytest.skip("this small demo day has no shared PO")
    assert len(find_orders(con, settings, row[0])) == row[1]


def test_an_unknown_identifier_finds_nothing(picture):
    settings, con = picture
    assert find_orders(con, settings, "NO-SUCH-THING-42") == []


def test_the_view_shows_state_promise_blockers_and_every_linked_record(picture):
    _settings, con = picture
    order_id = one(con, "SELECT order_id FROM blockers WHERE order_id IS NOT NULL LIMIT 1")[0]
    text = format_view(order_view(con, order_id))
    assert text.startswith(f"Order {order_id}")
    assert "STATE " in text and "PROMISE " in text and "BLOCKERS " in text
    for title in ("order lines (OMS)", "pick tasks (WMS)", "shipments (carrier)", "cases (CRM)"):
        assert f"-- {title}:" in text
    n_tasks = one(con, f"SELECT count(*) FROM linked_pick_tasks WHERE order_id = '{order_id}'")[0]
    assert f"-- pick tasks (WMS): {n_tasks}" in text


def test_cli_lookup_prints_the_order_and_exits_2_for_unknown_ids(picture, capsys):
    settings, con = picture
    tracking, order_id = one(con, "SELECT tracking_no, order_id FROM linked_shipments WHERE link_status = 'linked' "
                                  "AND tracking_no IS NOT NULL LIMIT 1")
    args = ["--site", str(settings.path), "--at", "2026-11-24 16:00"]
    assert main(["lookup", tracking.lower(), *args]) == 0
    out = capsys.readouterr().out
    assert f"Order {order_id}" in out and "matched tracking_no" in out
    assert main(["lookup", "NOPE-0", *args]) == 2
    assert "matches no order" in capsys.readouterr().err


def test_dates_print_as_dates():
    from handoff_lib.join.lookup import _fmt

    assert _fmt(pd.Timestamp("2026-11-26")) == "2026-11-26"


def test_cli_lookup_shows_the_calendar_behind_a_promise(picture, capsys):
    # Thanksgiving week: an order whose next pickup's transit skips the holiday says so in its promise line.
    settings, con = picture
    row = one(con, "SELECT order_id, promise_reason FROM promise WHERE promise_reason LIKE '%Thanksgiving Day%' LIMIT 1")
    assert row, "the demo day at 16:00 has orders whose transit crosses Thanksgiving"
    assert main(["lookup", row[0], "--site", str(settings.path), "--at", "2026-11-24 16:00"]) == 0
    out = capsys.readouterr().out
    assert "PROMISE  " in out and "(no delivery Thu 26 Nov (Thanksgiving Day))" in out
