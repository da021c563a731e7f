"""The third site (tests/fixtures/site3): a warehouse whose ERP exports the way SAP-like systems do, written by
hand (not by demo.py) and checked against its own hand-written truth (truth.csv) at the 11:00 review of
Thursday 3 December 2026. Its site file uses every shape of docs/extracts.md ("Shapes ERPs export"): holds
read from the order header's delivery block, a carton + label manifest feeding two entities, decimal commas
and units in the cell, release date and time in two columns, a cancel flag column, carrier and service in one
shipping code.

Each row of truth.csv is one warehouse story: the expected order state, promise status and the owners of its
open blockers, with a "why" worked out by hand from docs/states.md."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
import yaml

from handoff_lib.load.settings import load_settings
from handoff_lib.load.validate import data_warnings, degraded_sources
from handoff_lib.publish.pipeline import build_picture

SITE_DIR = Path(__file__).resolve().parent / "fixtures" / "site3"
SITE = SITE_DIR / "site.yaml"
TZ = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 12, 3, 11, 0, tzinfo=TZ)
TRUTH = list(csv.DictReader(io.StringIO((SITE_DIR / "truth.csv").read_text(encoding="utf-8"), newline="")))
BY_ID = {r["order_id"]: r for r in TRUTH}

# Records in each file (header excluded) and how many of them are each source's: (read, accepted, other entity).
ROWS = {
    "orders": (16, 16, 0),
    "order_lines": (25, 25, 0),
    "inventory": (10, 10, 0),
    "pick_tasks": (11, 11, 0),
    "pack_events": (6, 6, 0),
    "holds": (16, 3, 13),  # the order header: 3 rows carry a delivery block
    "shipments": (6, 4, 2),  # the manifest: 2 cartons have no tracking number yet
}


@pytest.fixture(scope="module")
def picture() -> duckdb.DuckDBPyConnection:
    return build_picture(load_settings(SITE), now=NOW)


def board(con: duckdb.DuckDBPyConnection) -> dict[str, dict]:
    rows = con.execute("SELECT order_id, state, state_reason, promise_status, promise_reason FROM order_board").df()
    return {r["order_id"]: r for r in rows.to_dict(orient="records")}


def owners(con: duckdb.DuckDBPyConnection, order_id: str) -> list[str]:
    return sorted(r[0] for r in con.execute("SELECT DISTINCT owner FROM blockers WHERE order_id = ?", [order_id]).fetchall())


def truth_owners(row: dict) -> list[str]:
    return sorted(o.strip() for o in row["owners"].split(";") if o.strip())


def value(con: duckdb.DuckDBPyConnection, table: str, column: str, where: str, *params: object) -> object:
    row = con.execute(f'SELECT "{column}" FROM {table} WHERE {where}', list(params)).fetchone()
    assert row is not None, f"no {table} row where {where} {params}"
    return row[0]


# --------------------------------------------------------------------------------------------
# the ground truth


def test_state_promise_and_owner_accuracy_against_the_hand_written_truth(picture):
    got = board(picture)
    assert set(got) == set(BY_ID), f"missing: {sorted(set(BY_ID) - set(got))}; not in the truth: {sorted(set(got) - set(BY_ID))}"
    wrong = {
        "state": [o for o, t in BY_ID.items() if got[o]["state"] != t["state"]],
        "promise": [o for o, t in BY_ID.items() if got[o]["promise_status"] != t["promise"]],
        "owner": [o for o, t in BY_ID.items() if owners(picture, o) != truth_owners(t)],
    }
    n = len(TRUTH)
    figures = ", ".join(f"{what} accuracy {n - len(w)}/{n} = {100 * (n - len(w)) / n:.1f} %" for what, w in wrong.items())
    print(f"\nthird site at {NOW:%a %d %b %Y %H:%M %Z}: {figures}")
    assert not any(wrong.values()), f"{figures}; wrong: {wrong}"


def story_params() -> list:
    return [pytest.param(r["order_id"], id=f"{r['order_id']} {r['story']}") for r in TRUTH]


@pytest.mark.parametrize("order_id", story_params())
def test_each_warehouse_story_gets_its_state_promise_and_owners(picture, order_id):
    truth, got = BY_ID[order_id], board(picture)[order_id]
    expected = (truth["state"], truth["promise"], truth_owners(truth))
    actual = (got["state"], got["promise_status"], owners(picture, order_id))
    assert actual == expected, (
        f"{order_id} ({truth['story']}): expected {expected}, got {actual}\n  why (truth): {truth['why']}\n"
        f"  state reason: {got['state_reason']}\n  promise reason: {got['promise_reason']}"
    )


# --------------------------------------------------------------------------------------------
# loading: nothing lost, nothing rejected, no banner


def test_rows_read_are_accepted_or_another_entitys_and_none_is_lost(picture):
    report = {
        r[0]: r[1:]
        for r in picture.execute("SELECT source, rows_read, rows_accepted, rows_rejected, rows_other_entity FROM load_report").fetchall()
    }
    for source, (read, accepted, other) in ROWS.items():
        got = report[source]
        assert got[0] == got[1] + got[2] + got[3], f"{source}: read != accepted + rejected + other entity: {got}"
        assert got == (read, accepted, 0, other), f"{source}: expected read {read}, accepted {accepted}, other entity {other}; got {got}"
        assert picture.execute(f"SELECT count(*) FROM {source}").fetchone()[0] == accepted


def test_a_site_where_nothing_is_wrong_gets_no_data_warning_and_no_degraded_banner(picture):
    assert picture.execute("SELECT count(*) FROM rejects").fetchone()[0] == 0
    assert {r[0] for r in picture.execute("SELECT DISTINCT severity FROM load_report").fetchall()} == {"ok"}
    assert data_warnings(picture) == [] and degraded_sources(picture) == []


def test_every_record_links_to_its_order(picture):
    status = picture.execute("SELECT source, status, count(*) FROM xref GROUP BY ALL ORDER BY ALL").fetchall()
    assert status == [("holds", "linked", 3), ("pack_events", "linked", 6), ("pick_tasks", "linked", 11), ("shipments", "linked", 4)]


# --------------------------------------------------------------------------------------------
# the shapes


def test_delivery_blocks_on_the_order_header_become_holds_with_their_reason_and_owner(picture):
    holds = picture.execute("SELECT hold_id, reference, code, released_at FROM holds ORDER BY hold_id").fetchall()
    assert holds == [("0004500102/01", "0004500102", "01", None), ("0004500103/08", "0004500103", "08", None),
                     ("0004500105/01", "0004500105", "01", None)]  # a block of one space (0004500104) is no block
    rows = picture.execute("SELECT order_id, reason, owner, basis FROM blockers WHERE source_entity = 'holds' ORDER BY order_id").fetchall()
    assert rows == [("0004500102", "credit_hold", "credit management", "hold code 01"),
                    ("0004500103", "address_check", "customer service", "hold code 08")]  # 0004500105 is cancelled


def test_without_the_row_filter_every_open_order_would_be_on_hold(tmp_path):
    # What the issue saw: mapping holds from the order file without where: makes every header row a hold.
    raw = yaml.safe_load(SITE.read_text(encoding="utf-8"))
    del raw["sources"]["holds"]["where"]
    raw["data"] = {"folder": str(SITE_DIR / "extracts"), "allowed_roots": [str(SITE_DIR)]}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    con = build_picture(load_settings(tmp_path / "site.yaml"), now=NOW)
    states = {s for o, s in con.execute("SELECT order_id, state FROM order_board").fetchall() if o not in ("0004500105", "0004500108")}
    assert states == {"held"}


def test_quantities_with_a_decimal_comma_and_a_unit_are_eaches(picture):
    qty = lambda order, line: value(picture, "order_lines", "qty", "order_id = ? AND line_no = ?", order, line)
    assert (qty("0004500101", 10), qty("0004500109", 10), qty("0004500114", 10)) == (2, 5, 1500)  # 2,000 ST / 5,000 ST / 1.500,000 ST
    assert value(picture, "order_lines", "allocated_qty", "order_id = ? AND line_no = ?", "0004500112", 20) == 0  # 0,000 ST
    assert value(picture, "orders", "order_value", "order_id = ?", "0004500114") == pytest.approx(12345.67)  # 12.345,67
    assert value(picture, "order_lines", "unit_price", "order_id = ? AND line_no = ?", "0004500102", 40) == pytest.approx(5720.0)
    assert "short 3 of 5" in board(picture)["0004500109"]["state_reason"]


def test_times_from_a_date_column_and_a_time_column(picture):
    local = lambda col, order: value(picture, "orders", col, "order_id = ?", order).astimezone(TZ).replace(tzinfo=None)
    assert local("ordered_at", "0004500101") == dt.datetime(2026, 12, 2, 14, 20)  # 02.12.2026 + 14:20:00
    assert local("released_at", "0004500101") == dt.datetime(2026, 12, 2, 16, 5, 10)
    assert value(picture, "orders", "released_at", "order_id = ?", "0004500110") is None  # blank release date
    placed = value(picture, "holds", "placed_at", "hold_id = ?", "0004500102/01")
    assert placed.astimezone(TZ).replace(tzinfo=None) == dt.datetime(2026, 12, 2, 9, 12)


def test_release_status_from_the_release_date_the_release_time_and_the_cancel_flag(picture):
    got = dict(picture.execute("SELECT order_id, release_status FROM orders").fetchall())
    assert {o: got[o] for o in ("0004500101", "0004500103", "0004500105", "0004500110", "0004500111")} == {
        "0004500101": "released",
        "0004500103": "not_released",  # blank FREI_DAT
        "0004500105": "cancelled",  # STORNO = X, although released and blocked
        "0004500110": "not_released",
        "0004500111": "not_released",  # FREI_DAT today, FREI_ZEIT 13:00: after the review
    }


def test_carrier_and_service_split_from_one_shipping_code(picture):
    orders = dict(picture.execute("SELECT order_id, carrier || '/' || service FROM orders").fetchall())
    assert (orders["0004500101"], orders["0004500104"], orders["0004500110"]) == ("UPS/GRD", "ESTES/LTL", "FEDEX/GRD")
    ships = picture.execute("SELECT DISTINCT carrier, service FROM shipments ORDER BY 1").fetchall()
    assert ships == [("ESTES", "LTL"), ("UPS", "GRD")]
    assert value(picture, "orders", "priority", "order_id = ?", "0004500102") == 1  # LPRIO "01"


def test_one_manifest_feeds_the_cartons_and_the_labelled_shipments(picture):
    assert picture.execute("SELECT count(*) FROM pack_events").fetchone()[0] == 6
    ships = picture.execute("SELECT shipment_id, tracking_no FROM shipments ORDER BY shipment_id").fetchall()
    assert [s for s, _ in ships] == [
        "1Z4F00A10300000061/00312345670000000061", "1Z4F00A10300000081/00312345670000000081",
        "PRO58812/00312345670000000041", "PRO58812/00312345670000000042",  # one PRO number, one row per pallet
    ]
    cartons = dict(picture.execute("SELECT carton_id, shipment_id FROM carton_status WHERE order_id = '0004500106'").fetchall())
    assert cartons == {"00312345670000000061": "1Z4F00A10300000061/00312345670000000061", "00312345670000000062": None}


def test_the_shapes_apply_to_a_database_source_as_to_a_file(tmp_path):
    # The same delivery blocks read from the ERP's database (a table holding the header export's rows) instead of
    # its file: where:, the joined key and the date + time columns work on a query's rows as on a file's.
    import sqlite3

    import pandas as pd

    from handoff_lib.load.extracts import load_source

    header = pd.read_csv(SITE_DIR / "extracts" / "erp_vbak.csv", sep=";", encoding="cp1252", dtype=str, keep_default_na=False)
    header.insert(0, "seq", range(1, len(header) + 1))
    with sqlite3.connect(tmp_path / "erp.sqlite") as lite:
        header.replace({"": None}).to_sql("vbak", lite, index=False)
    raw = yaml.safe_load(SITE.read_text(encoding="utf-8"))
    raw["data"] = {"folder": str(SITE_DIR / "extracts"), "allowed_roots": [str(SITE_DIR)]}
    raw["databases"] = {"erp": {"url": f"sqlite:///{tmp_path / 'erp.sqlite'}"}}
    holds = raw["sources"]["holds"]
    raw["sources"]["holds"] = {"database": "erp", "table": "vbak", "order_by": ["seq"], "where": holds["where"], "columns": holds["columns"]}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    con = duckdb.connect()
    report = load_source(con, load_settings(tmp_path / "site.yaml"), "holds")
    assert (report["format"], report["rows_read"], report["rows_accepted"], report["rows_rejected"], report["rows_other_entity"]) == (
        "database", 16, 3, 0, 13)
    file_holds = build_picture(load_settings(SITE), now=NOW).execute("SELECT hold_id, reference, code, placed_at FROM holds ORDER BY 1")
    assert con.execute("SELECT hold_id, reference, code, placed_at FROM holds ORDER BY 1").fetchall() == file_holds.fetchall()
