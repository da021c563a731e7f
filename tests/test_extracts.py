"""Loading extracts: typed as the contract says, every bad row kept in `rejects` with its line and
reason, rows read = accepted + rejected for every file, and errors that name what to fix."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest
import yaml

from handoff_lib.db import connect
from handoff_lib.errors import ExtractError, MissingColumnError, UnmappedValueError
from handoff_lib.load.extracts import load_extracts, load_source
from handoff_lib.load.settings import Settings, load_settings

DEMO = Path(__file__).parents[1] / "parameters" / "demo.yaml"
GOOD = Path(__file__).parent / "fixtures" / "extracts" / "good"
NY = ZoneInfo("America/New_York")

LINES_HEADER = "OrderNo,LineNo,Item,OrderQty,AllocQty,SubsOK,UnitPrice\n"
TASKS_HEADER = "TASK_ID,PICK_TICKET,ORDER_REF,LINE,ITEM,LOC,WAVE,QTY_REQ,QTY_PICK,TASK_STAT,SUB_ITEM,LAST_UPD,PICK_NOTE\n"


# ------------------------------------------------------------------------------------------ helpers


# These fixtures hold a handful of rows: one bad value is already a large share of a column. Tests of how
# single bad values are handled raise the threshold so the value is nulled and listed, not a systemic stop
# (the stop itself is tested with the site's default in test_systemic_*).
LENIENT = {"max_bad_share_pct": 100}


def make_site(
    tmp_path: Path, files: dict[str, str | bytes | None] | None = None, sources: dict | None = None, quality: dict | None = None
) -> Settings:
    """The good extract set in tmp_path/data with `files` replaced (None deletes one), read by a
    copy of the demo site file with `sources` settings merged in (None removes a setting) and
    `quality` as its data_quality: section."""
    data = tmp_path / "data"
    shutil.copytree(GOOD, data)
    for name, content in (files or {}).items():
        if content is None:
            (data / name).unlink()
        elif isinstance(content, bytes):
            (data / name).write_bytes(content)
        else:
            (data / name).write_text(content, encoding="utf-8", newline="")
    raw = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    raw["data"] = {"folder": "data", "allowed_roots": ["."]}
    if quality is not None:
        raw["data_quality"] = quality
    for entity, changes in (sources or {}).items():
        if changes is None:
            del raw["sources"][entity]
            continue
        for key, value in changes.items():
            if value is None:
                raw["sources"][entity].pop(key, None)
            else:
                raw["sources"][entity][key] = value
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return load_settings(site)


def site_line(settings: Settings, text: str) -> int:
    """The line of the site file holding `text` (the test's own view of where a setting is)."""
    for i, line in enumerate(settings.path.read_text(encoding="utf-8").splitlines(), start=1):
        if text in line:
            return i
    raise AssertionError(f"{text!r} not in {settings.path}")


@dataclass
class Loaded:
    con: duckdb.DuckDBPyConnection
    report: dict  # the source's load-report row
    rejects: pd.DataFrame  # its rejects, by line


def load_one(tmp_path: Path, entity: str, file: str, content: str | bytes, quality: dict | None = LENIENT, **spec) -> Loaded:
    """Load one source from `content` (with `spec` settings), checking the row accounting."""
    settings = make_site(tmp_path, {file: content}, {entity: spec} if spec else None, quality)
    con = connect(settings)
    report = load_source(con, settings, entity)
    assert_accounting(con)
    return Loaded(con, report, con.execute("SELECT * FROM rejects WHERE source = ? ORDER BY line", [entity]).df())


def assert_accounting(con: duckdb.DuckDBPyConnection) -> None:
    """rows read = accepted + rejected + other entity, and the tables hold exactly the accepted rows."""
    for r in con.execute("SELECT * FROM load_report").df().itertuples():
        assert r.rows_read == r.rows_accepted + r.rows_rejected + r.rows_other_entity, r
        assert con.execute(f"SELECT count(*) FROM {r.source}").fetchone()[0] == r.rows_accepted
        assert con.execute("SELECT count(*) FROM rejects WHERE source = ? AND action = 'row'", [r.source]).fetchone()[0] == r.rows_rejected


def lines_of(con: duckdb.DuckDBPyConnection, table: str, key: str) -> dict[str, int]:
    return dict(con.execute(f"SELECT {key}, _line FROM {table}").fetchall())


def reasons(rejects: pd.DataFrame) -> list[tuple[int, str]]:
    return [(int(r.line), r.reason) for r in rejects.itertuples()]


# ------------------------------------------------------------------------------------------ the good set


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The good extract set, loaded once for the tests that only read it."""
    settings = make_site(tmp_path_factory.mktemp("good"))
    con = connect(settings)
    report = load_extracts(con, settings, progress=True)
    return settings, con, report


def test_good_extract_set_loads_every_source_with_contract_types(good):
    settings, con, report = good
    assert list(report["source"]) == list(settings.sources)
    counts = dict(zip(report["source"], report["rows_accepted"]))
    assert counts == {
        "orders": 3,
        "order_lines": 4,
        "inventory": 3,
        "pick_tasks": 3,
        "pack_events": 2,
        "holds": 2,
        "shipments": 1,
        "cases": 1,
        "account_instructions": 2,
    }
    assert report["rows_rejected"].sum() == 0
    assert_accounting(con)
    types = dict(
        con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'orders'").fetchall()
    )
    assert types["order_id"] == "VARCHAR" and types["priority"] == "BIGINT" and types["order_value"] == "DOUBLE"
    assert types["ordered_at"] == "TIMESTAMP WITH TIME ZONE" and types["promised_delivery"] == "DATE"
    assert types["ship_complete"] == "BOOLEAN" and types["_file"] == "VARCHAR" and types["_line"] == "BIGINT"
    cols = [r[0] for r in con.execute("DESCRIBE orders").fetchall()]
    assert cols[:3] == ["order_id", "customer_id", "customer_name"] and cols[-2:] == ["_file", "_line"]


def test_values_are_parsed_per_type_and_mapping(good):
    con = good[1]
    o = con.execute("SELECT * FROM orders ORDER BY _line").df()
    assert list(o["release_status"]) == ["released", "not_released", "cancelled"]  # 'new' maps case-insensitively
    assert o.loc[0, "customer_name"] == "Acme, Inc." and o.loc[0, "order_value"] == 1250.5
    assert list(o["ship_complete"]) == [True, False, False]  # blank is false: "" is in the site's false spellings
    assert pd.isna(o.loc[2, "priority"]) and pd.isna(o.loc[1, "customer_po"])
    assert con.execute("SELECT promised_delivery FROM orders WHERE _line = 2").fetchone()[0] == dt.date(2026, 3, 4)
    ol = con.execute("SELECT line_no, qty, allocated_qty FROM order_lines WHERE _line = 3").fetchone()
    assert ol == (2, 3, 3)  # ' 3 ' and '3.0' are whole numbers
    assert con.execute("SELECT instruction FROM account_instructions ORDER BY _line").fetchall() == [
        ("ship_complete",),
        ("substitutes_allowed",),
    ]
    assert con.execute("SELECT status FROM pick_tasks ORDER BY _line").fetchall() == [("picked",), ("short",), ("open",)]
    assert con.execute("SELECT text FROM cases").fetchone()[0] == "Where is my order?\nCustomer called twice."


def test_report_lists_extra_columns_and_file_hash(good):
    settings, con, report = good
    report = report.set_index("source")
    assert report.loc["orders", "extra_columns"] == "ExportedBy"
    assert report.loc["orders", "format"] == "csv" and report.loc["orders", "file"] == "oms_orders.csv"
    assert len(report.loc["orders", "sha256"]) == 64
    assert con.execute("SELECT count(*) FROM load_report").fetchone()[0] == len(settings.sources)


def test_naive_and_zoned_timestamps_land_on_the_same_instant(tmp_path):
    text = (
        "CaseNumber,RelatedTo,Opened,Closed,CaseType,Description\n"
        "CS-1,SO-1,2026-03-02 08:20:00,,,\n"  # site local time (New York, EST in March before DST)
        "CS-2,SO-1,2026-03-02T13:20:00Z,,,\n"
        "CS-3,SO-1,2026-03-02 14:20:00+01:00,,,\n"
    )
    settings = make_site(tmp_path, {"crm_cases.csv": text})
    con = duckdb.connect()  # a UTC session: the load still reads naive values as site time
    con.execute("SET TimeZone = 'UTC'")
    load_source(con, settings, "cases")
    opened = {r[0] for r in con.execute("SELECT opened_at FROM cases").fetchall()}
    assert opened == {dt.datetime(2026, 3, 2, 8, 20, tzinfo=NY)}
    assert con.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"  # the session is left as it was


def test_timestamp_format_setting_reads_site_formats(tmp_path):
    text = "HOLD_NO,HOLD_REF,HOLD_CODE,HOLD_NOTE,PLACED_TS,RELEASED_TS,PLACED_BY\nH-1,SO-1,,,02.03.2026 09:10,2026-03-02 10:00,\n"
    r = load_one(tmp_path, "holds", "wms_holds.csv", text, timestamp_format="%d.%m.%Y %H:%M")
    assert r.con.execute("SELECT placed_at, released_at FROM holds").fetchone() == (
        dt.datetime(2026, 3, 2, 9, 10, tzinfo=NY),
        dt.datetime(2026, 3, 2, 10, 0, tzinfo=NY),  # ISO still accepted
    )


# ------------------------------------------------------------------------------------------ rejected rows


def test_blank_required_id_is_rejected(tmp_path):
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + "SO-1,1,SKU-1,2,,,\n,2,SKU-2,1,,,\n")
    assert reasons(r.rejects) == [(3, "blank order_id")]
    assert r.rejects.loc[0, "column"] == "OrderNo" and r.rejects.loc[0, "raw"] == ",2,SKU-2,1,,,"
    assert (r.report["rows_read"], r.report["rows_accepted"], r.report["rows_rejected"]) == (2, 1, 1)


def test_whitespace_only_id_is_rejected_and_other_ids_are_kept_verbatim(tmp_path):
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + " SO-1 ,1,SKU-1,2,,,\n   ,2,SKU-2,1,,,\n")
    assert reasons(r.rejects) == [(3, "blank order_id")] and r.rejects.loc[0, "value"] == "   "
    assert r.con.execute("SELECT order_id FROM order_lines").fetchone()[0] == " SO-1 "


@pytest.mark.parametrize(
    ("qty", "reason"),
    [
        ("abc", "not a number qty 'abc'"),
        ("5.5", "non-integer qty '5.5'"),
        ("-2", "negative qty '-2'"),
        ("0", "qty '0' below the minimum 1"),
        ("1e3", "not a number qty '1e3'"),
        ("", "blank qty"),
    ],
)
def test_bad_quantity_is_nulled_with_its_reason_and_the_line_kept(tmp_path, qty, reason):
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + f"SO-1,1,SKU-1,{qty},,,\n")
    assert reasons(r.rejects) == [(2, reason)] and r.rejects.loc[0, "column"] == "OrderQty"
    assert r.rejects.loc[0, "action"] == "value" and (r.rejects.loc[0, "value"] or "") == qty
    assert r.con.execute("SELECT order_id, line_no, sku, qty FROM order_lines").fetchall() == [("SO-1", 1, "SKU-1", None)]
    assert (r.report["rows_accepted"], r.report["rows_rejected"], r.report["values_nulled"]) == (1, 0, 1)
    assert r.report["severity"] == "warning"


def test_a_blank_key_rejects_the_record_whole(tmp_path):
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + "SO-1,,SKU-1,2,,,\nSO-1,2,SKU-2,1,,,\n")
    assert reasons(r.rejects) == [(2, "blank line_no")] and r.rejects.loc[0, "action"] == "row"
    assert lines_of(r.con, "order_lines", "line_no") == {2: 3}


def test_negative_optional_quantity_and_price_are_rejected(tmp_path):
    body = "SO-1,1,SKU-1,2,-1,,\nSO-1,2,SKU-1,2,,,-0.5\n"
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + body)
    assert reasons(r.rejects) == [(2, "negative allocated_qty '-1'"), (3, "negative unit_price '-0.5'")]


def test_unknown_boolean_spelling_is_nulled(tmp_path):
    r = load_one(
        tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + "SO-1,1,SKU-1,2,,maybe,\nSO-1,2,SKU-1,2,, yes ,\n"
    )
    assert reasons(r.rejects) == [(2, "not a yes/no value substitution_allowed 'maybe'")]
    assert r.con.execute("SELECT substitution_allowed FROM order_lines ORDER BY line_no").fetchall() == [(None,), (True,)]


def test_unparseable_and_impossible_timestamps_are_nulled_naming_the_value(tmp_path):
    text = (
        "HOLD_NO,HOLD_REF,HOLD_CODE,HOLD_NOTE,PLACED_TS,RELEASED_TS,PLACED_BY\n"
        "H-1,SO-1,,,yesterday noon,,\n"
        "H-2,SO-1,,,2026-02-30 10:00,,\n"
        "H-3,SO-1,,,2026-03-02 10:00,2026-13-01,\n"
        "H-4,SO-1,,,infinity,,\n"
    )
    r = load_one(tmp_path, "holds", "wms_holds.csv", text)
    assert reasons(r.rejects) == [
        (2, "unparseable timestamp placed_at 'yesterday noon'"),
        (3, "impossible date placed_at '2026-02-30 10:00'"),
        (4, "impossible date released_at '2026-13-01'"),
        (5, "unparseable timestamp placed_at 'infinity'"),
    ]
    assert list(r.rejects["column"]) == ["PLACED_TS", "PLACED_TS", "RELEASED_TS", "PLACED_TS"]
    assert r.con.execute("SELECT count(*) FROM holds").fetchone()[0] == 4  # every hold is still there


def test_impossible_calendar_date_is_rejected(tmp_path):
    text = (GOOD / "oms_orders.csv").read_text(encoding="utf-8").replace("2026-03-05", "2026-02-30")
    r = load_one(tmp_path, "orders", "oms_orders.csv", text)
    assert reasons(r.rejects) == [(3, "impossible date promised_delivery '2026-02-30'")]


def test_picked_more_than_required_is_rejected(tmp_path):
    body = "T-1,,1001,1,SKU-1,,,5,7,30,,,\nT-2,,1001,2,SKU-2,,,5,5,30,,,\n"
    r = load_one(tmp_path, "pick_tasks", "wms_pick_tasks.csv", TASKS_HEADER + body)
    assert reasons(r.rejects) == [(2, "qty_picked 7 more than qty_required 5")]
    assert r.rejects.loc[0, "column"] == "QTY_PICK" and r.rejects.loc[0, "value"] == "7"


def test_exact_duplicate_is_rejected_naming_the_first_line(tmp_path):
    body = "SO-1,1,SKU-1,2,,,\nSO-1,2,SKU-2,1,,,\nSO-1,1,SKU-1,2,,,\nSO-1,1,SKU-1,2.0,,,\n"
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + body)
    assert reasons(r.rejects) == [(4, "exact duplicate of line 2"), (5, "exact duplicate of line 2")]  # 2.0 is the same quantity
    assert lines_of(r.con, "order_lines", "line_no") == {1: 2, 2: 3}


def test_conflicting_duplicate_key_keeps_the_first_row(tmp_path):
    body = "SO-1,1,SKU-1,2,,,\nSO-1,1,SKU-9,4,,,\nSO-1,1,SKU-9,4,,,\n"
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + body)
    assert reasons(r.rejects) == [
        (3, "conflicting duplicate key order_id='SO-1', line_no='1' (kept line 2)"),
        (4, "exact duplicate of line 3"),
    ]
    assert r.rejects.loc[0, "column"] == "OrderNo, LineNo"
    assert r.con.execute("SELECT sku FROM order_lines").fetchall() == [("SKU-1",)]


def test_holds_without_hold_number_skip_the_key_check_but_not_the_duplicate_check(tmp_path):
    text = (
        "HOLD_NO,HOLD_REF,HOLD_CODE,HOLD_NOTE,PLACED_TS,RELEASED_TS,PLACED_BY\n"
        ",SO-1,CR,,2026-03-02 09:00,,\n"
        ",SO-2,QA,,2026-03-02 09:05,,\n"
        ",SO-2,QA,,2026-03-02 09:05,,\n"
    )
    r = load_one(tmp_path, "holds", "wms_holds.csv", text)
    assert reasons(r.rejects) == [(4, "exact duplicate of line 3")]
    assert r.report["rows_accepted"] == 2


def test_pack_event_needs_an_order_or_a_pick_ticket(tmp_path):
    text = "CARTON,ORDER_REF,PICK_TICKET,PACK_STAT,EXC_CODE,PACK_NOTE,EVENT_TS\nCTN-1,,,PACKED,,,\nCTN-2,,PT-1,PACKED,,,\n"
    r = load_one(tmp_path, "pack_events", "wms_pack_events.csv", text)
    assert reasons(r.rejects) == [(2, "blank order_ref and pick_ticket (at least one is needed to link the record)")]
    assert r.con.execute("SELECT count(*) FROM pack_events").fetchone()[0] == 2  # kept: the crosswalk lists it unmatched


# ------------------------------------------------------------------------------------------ CSV structure


def test_broken_rows_are_structural_rejects_on_their_physical_line(tmp_path):
    body = "SO-1,1,SKU-1,2,,,\nSO-1,2,SKU-2,1,,,,EXTRA\nSO-1,3,SKU-3\nSO-1,4,SKU-4,1,,,\n"
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + body)
    assert reasons(r.rejects) == [(3, "too many columns (expected 7, found 8)"), (4, "too few columns (expected 7, found 3)")]
    assert r.rejects.loc[0, "raw"] == "SO-1,2,SKU-2,1,,,,EXTRA"
    assert lines_of(r.con, "order_lines", "line_no") == {1: 2, 4: 5}
    assert (r.report["rows_read"], r.report["rows_accepted"], r.report["rows_rejected"]) == (4, 2, 2)


def test_quoted_newlines_and_blank_lines_keep_later_line_numbers_right(tmp_path):
    text = (
        "TASK_ID,PICK_TICKET,ORDER_REF,LINE,ITEM,LOC,WAVE,QTY_REQ,QTY_PICK,TASK_STAT,SUB_ITEM,LAST_UPD,PICK_NOTE\r\n"
        'T-1,,1001,1,SKU-1,,,1,1,30,,,"two\r\nlines"\r\n'  # lines 2-3
        "\r\n"  # line 4: blank, not a record
        'T-2,,1001,2,SKU-2,,,1,1,30,,,"three\n\nlines, one blank"\r\n'  # lines 5-7
        'T-3,,1001,3,SKU-3,,,1,1,30,,,"bad\nrow",EXTRA\r\n'  # lines 8-9: too many columns
        "T-4,,1001,4,SKU-4,,,1,x,30,,,\r\n"  # line 10: bad number
        "T-5,,1001,5,SKU-5,,,1,1,30,,,\r\n"  # line 11
    )
    r = load_one(tmp_path, "pick_tasks", "wms_pick_tasks.csv", text)
    assert lines_of(r.con, "pick_tasks", "task_id") == {"T-1": 2, "T-2": 5, "T-4": 10, "T-5": 11}
    assert reasons(r.rejects) == [(8, "too many columns (expected 13, found 14)"), (10, "not a number qty_picked 'x'")]
    assert r.con.execute("SELECT note FROM pick_tasks WHERE task_id = 'T-1'").fetchone()[0] == "two\r\nlines"


def test_unterminated_quote_is_rejected_with_the_lines_it_swallows(tmp_path):
    body = 'SO-1,1,SKU-1,2,,,\nSO-1,2,"SKU-2,1,,,\nSO-1,3,SKU-3,1,,,\n'
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + body)
    assert len(r.rejects) == 1 and r.rejects.loc[0, "line"] == 3
    assert r.rejects.loc[0, "reason"].startswith("unterminated or misplaced quote (the quoted value runs over lines 3-4)")
    assert r.report["rows_read"] == 2 and r.report["rows_accepted"] == 1


def test_truncated_last_line_is_rejected(tmp_path):
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER + "SO-1,1,SKU-1,2,,,\nSO-1,2,SK")
    assert reasons(r.rejects) == [
        (3, "too few columns (expected 7, found 3); the file ends in the middle of this line (truncated export?)")
    ]


def test_header_with_byte_order_mark_is_read(tmp_path):
    content = b"\xef\xbb\xbf" + (LINES_HEADER + "SO-1,1,SKU-\xc3\xa9,2,,,\n").encode("latin-1")
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", content)
    assert r.con.execute("SELECT order_id, sku, _line FROM order_lines").fetchone() == ("SO-1", "SKU-é", 2)


def test_latin1_file_reads_with_the_encoding_setting(tmp_path):
    content = (
        "CaseNumber,RelatedTo,Opened,Closed,CaseType,Description\nCS-1,SO-1,2026-03-02 09:00,,,Müller: Lieferung fehlt\n".encode(
            "latin-1"
        )
    )
    r = load_one(tmp_path, "cases", "crm_cases.csv", content, encoding="latin-1")
    assert r.con.execute("SELECT text FROM cases").fetchone()[0] == "Müller: Lieferung fehlt"


def test_invalid_utf8_without_the_encoding_setting_keeps_the_row_read_as_windows_1252(tmp_path):
    content = "CaseNumber,RelatedTo,Opened,Closed,CaseType,Description\nCS-1,SO-1,2026-03-02 09:00,,,Müller\nCS-2,SO-2,2026-03-02 09:00,,,ok\n".encode(
        "latin-1"
    )
    r = load_one(tmp_path, "cases", "crm_cases.csv", content)
    assert list(r.rejects["line"]) == [2] and r.rejects.loc[0, "action"] == "flag"
    assert r.rejects.loc[0, "reason"].startswith("not valid UTF-8: read as Windows-1252 ('Müller')")
    assert r.con.execute("SELECT case_id, text FROM cases").fetchall() == [("CS-1", "Müller"), ("CS-2", "ok")]


def test_semicolon_delimited_file_reads_with_the_delimiter_setting(tmp_path):
    text = 'Account;Instruction;Comment\nC-1;NO SUBS;"a ; in a note"\n'
    r = load_one(tmp_path, "account_instructions", "crm_account_instructions.csv", text, delimiter=";")
    assert r.con.execute("SELECT customer_id, instruction FROM account_instructions").fetchone() == ("C-1", "no_substitutes")


def test_csv_header_row_skips_a_preamble_and_counts_its_lines(tmp_path):
    text = "Exported 2026-03-02 by CRM\nAccount,Instruction,Comment\nC-1,NO SUBS,x\nC-2,PARTIAL OK,\n"
    r = load_one(tmp_path, "account_instructions", "crm_account_instructions.csv", text, header_row=2)
    assert lines_of(r.con, "account_instructions", "customer_id") == {"C-1": 3, "C-2": 4}


def test_header_only_file_loads_no_rows(tmp_path):
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", LINES_HEADER)
    assert (r.report["rows_read"], r.report["rows_accepted"], r.report["rows_rejected"]) == (0, 0, 0)


# ------------------------------------------------------------------------------------------ errors that stop the load


def test_missing_column_names_the_field_its_mapping_line_and_the_columns_found(tmp_path):
    text = "Order Number,SoldTo,OrderDate,RelStatus\nSO-1,C-1,2026-03-02 09:00,REL\n"
    settings = make_site(tmp_path, {"oms_orders.csv": text})
    line = site_line(settings, "order_id: OrderNo")
    with pytest.raises(MissingColumnError) as err:
        load_source(connect(settings), settings, "orders")
    msg = str(err.value)
    assert msg.startswith(
        f"oms_orders.csv: missing column 'OrderNo' for contract field orders.order_id (mapped at {settings.path} line {line}"
    )
    assert "closest: 'Order Number'" in msg and msg.endswith("columns found: Order Number, SoldTo, OrderDate, RelStatus")


def test_wrong_delimiter_is_named_with_the_setting_to_change(tmp_path):
    text = "OrderNo;LineNo;Item;OrderQty\nSO-1;1;SKU-1;2\n"
    settings = make_site(tmp_path, {"oms_order_lines.csv": text})
    with pytest.raises(
        MissingColumnError,
        match=r'the delimiter looks wrong\. Set delimiter: ";" for sources\.order_lines \(.*site\.yaml line \d+',
    ):
        load_source(connect(settings), settings, "order_lines")


def test_unmapped_status_stops_the_load_naming_values_and_the_values_line(tmp_path):
    body = "T-1,,1001,1,SKU-1,,,1,0,10,,,\nT-2,,1001,2,SKU-2,,,1,0,50,,,\nT-3,,1001,3,SKU-3,,,1,0,50,,,\nT-4,,1001,4,SKU-4,,,1,0,xx,,,\n"
    settings = make_site(tmp_path, {"wms_pick_tasks.csv": TASKS_HEADER + body})
    line = site_line(settings, "        '10': open") - 1  # the `status:` line under values:
    with pytest.raises(UnmappedValueError) as err:
        load_source(connect(settings), settings, "pick_tasks")
    msg = str(err.value)
    assert msg.startswith(
        "wms_pick_tasks.csv: column 'TASK_STAT' (pick_tasks.status) holds 2 value(s) the site mapping does not cover"
    )
    assert "'50' (2 rows, first at line 3), 'xx' (1 row, first at line 5)" in msg
    assert (
        f"sources.pick_tasks.values.status ({settings.path} line {line})" in msg
        and "open, in_progress, picked, short, cancelled" in msg
    )


def test_empty_file_is_a_clear_error(tmp_path):
    settings = make_site(tmp_path, {"wms_inventory.csv": b""})
    with pytest.raises(
        ExtractError, match=r"wms_inventory\.csv: file is empty \(0 bytes\), expected a header with columns ITEM, LOC, QTY_OH"
    ):
        load_source(connect(settings), settings, "inventory")


def test_missing_required_file_names_the_path_and_the_setting(tmp_path):
    settings = make_site(tmp_path, {"wms_holds.csv": None})
    line = site_line(settings, "file: wms_holds.csv")
    with pytest.raises(
        ExtractError,
        match=rf"wms_holds\.csv: file not found at .*data/wms_holds\.csv \(sources\.holds\.file, .*site\.yaml line {line}\)",
    ):
        load_extracts(connect(settings), settings)


def test_optional_source_not_supplied_loads_as_an_empty_typed_table(tmp_path):
    settings = make_site(tmp_path, sources={"cases": None})
    con = connect(settings)
    report = load_extracts(con, settings).set_index("source")
    assert report.loc["cases", "rows_read"] == 0 and pd.isna(report.loc["cases", "file"])
    assert con.execute("SELECT count(*) FROM cases").fetchone()[0] == 0
    assert (
        dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'cases'").fetchall())[
            "opened_at"
        ]
        == "TIMESTAMP WITH TIME ZONE"
    )


def test_reloading_a_source_replaces_its_rejects(tmp_path):
    settings = make_site(tmp_path, {"oms_order_lines.csv": LINES_HEADER + ",1,SKU-1,2,,,\n"})
    con = connect(settings)
    load_source(con, settings, "order_lines")
    load_source(con, settings, "order_lines")
    assert con.execute("SELECT count(*) FROM rejects").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM load_report").fetchone()[0] == 1


# ------------------------------------------------------------------------------------------ XLSX and Parquet


def test_xlsx_source_reads_the_named_sheet_with_sheet_row_numbers(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    wb.active.title = "Notes"
    ws = wb.create_sheet("Stock")
    ws.append(["Stock export 2026-03-02"])  # row 1: a title above the header
    ws.append(["ITEM", "LOC", "QTY_OH", "QTY_ALLOC", "QTY_HOLD"])  # row 2
    ws.append(["SKU-1", "A-01", 10, 2.0, None])  # row 3
    ws.append([])  # row 4: empty, not a record
    ws.append(["SKU-2", "A-02", -1, 0, 0])  # row 5: negative
    ws.append(["SKU-3", "A-03", 4.5, 0, 0])  # row 6: non-integer
    path = tmp_path / "stock.xlsx"
    wb.save(path)
    settings = make_site(tmp_path, sources={"inventory": {"file": "stock.xlsx", "sheet": "Stock", "header_row": 2}}, quality=LENIENT)
    shutil.copy(path, settings.data_folder / "stock.xlsx")
    con = connect(settings)
    report = load_source(con, settings, "inventory")
    assert_accounting(con)
    assert report["format"] == "xlsx" and (report["rows_read"], report["rows_accepted"], report["values_nulled"]) == (3, 3, 2)
    assert con.execute("SELECT sku, on_hand, allocated, on_hold, _line FROM inventory").fetchall() == [
        ("SKU-1", 10, 2, None, 3),
        ("SKU-2", None, 0, 0, 5),
        ("SKU-3", None, 0, 0, 6),
    ]
    assert con.execute("SELECT line, reason FROM rejects ORDER BY line").fetchall() == [
        (5, "negative on_hand '-1'"),
        (6, "non-integer on_hand '4.5'"),
    ]


def test_parquet_source_with_native_types(tmp_path):
    frame = pd.DataFrame(
        {
            "OrderNo": ["SO-1", "SO-1", "SO-2"],
            "LineNo": [1, 2, 1],
            "Item": ["SKU-1", "SKU-2", "SKU-3"],
            "OrderQty": [2.0, 1.0, -3.0],
            "SubsOK": [True, False, True],
            "UnitPrice": [9.5, 1.25, 3.0],
        }
    )
    settings = make_site(tmp_path, sources={"order_lines": {"file": "lines.parquet"}}, quality=LENIENT)
    frame.to_parquet(settings.data_folder / "lines.parquet")
    con = connect(settings)
    report = load_source(con, settings, "order_lines")
    assert_accounting(con)
    assert report["format"] == "parquet" and (report["rows_read"], report["rows_accepted"], report["values_nulled"]) == (3, 3, 1)
    assert con.execute(
        "SELECT line_no, qty, substitution_allowed, unit_price, _line FROM order_lines ORDER BY _line"
    ).fetchall() == [
        (1, 2, True, 9.5, 1),
        (2, 1, False, 1.25, 2),
        (1, None, True, 3.0, 3),
    ]
    assert con.execute("SELECT line, reason FROM rejects").fetchall() == [(3, "negative qty '-3.0'")]


def test_unreadable_parquet_is_a_clear_error(tmp_path):
    settings = make_site(tmp_path, sources={"order_lines": {"file": "lines.parquet"}})
    (settings.data_folder / "lines.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ExtractError, match=r"lines\.parquet: not a readable Parquet file"):
        load_source(connect(settings), settings, "order_lines")


def test_optional_source_whose_file_is_missing_loads_empty_with_a_warning(tmp_path):
    settings = make_site(tmp_path, {"crm_cases.csv": None})
    con = connect(settings)
    with pytest.warns(UserWarning, match=r"crm_cases\.csv: not found .*cases is optional and loads empty"):
        report = load_source(con, settings, "cases")
    assert report["rows_read"] == 0 and report["sha256"] is None
    assert con.execute("SELECT count(*) FROM cases").fetchone()[0] == 0


def test_bytes_invalid_in_the_declared_encoding_are_a_clear_error(tmp_path):
    content = b"Account,Instruction,Comment\nC-1,NO SUBS,ok\nC-2,NO SUBS,bad \x81 byte\n"
    settings = make_site(tmp_path, {"crm_account_instructions.csv": content}, {"account_instructions": {"encoding": "cp1252"}})
    with pytest.raises(
        ExtractError, match=r"crm_account_instructions\.csv: line 3 holds bytes that are not cp1252 .*site\.yaml line \d+"
    ):
        load_source(connect(settings), settings, "account_instructions")


# ------------------------------------------------------------------ mapping extensions (parameters/olist.yaml needs them)


def test_a_site_without_an_export_declares_file_null_and_the_entity_loads_empty(tmp_path):
    site = make_site(tmp_path, {"wms_holds.csv": None}).path
    raw = yaml.safe_load(site.read_text(encoding="utf-8"))
    raw["sources"]["holds"] = {"file": None}
    site.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    settings = load_settings(site)
    con = connect(settings)
    report = load_extracts(con, settings).set_index("source")
    assert report.loc["holds", "rows_read"] == 0 and pd.isna(report.loc["holds", "file"])
    assert con.execute("SELECT count(*) FROM holds").fetchone()[0] == 0


def test_a_constant_fills_a_field_the_export_does_not_have(tmp_path):
    settings = make_site(tmp_path, sources={"shipments": {"columns": {
        "shipment_id": "ShipmentId", "reference": "Reference", "carrier": {"value": "MARKETPLACE"}, "handed_off_at": "PickedUp"}}})
    con = connect(settings)
    load_source(con, settings, "shipments")
    carriers = con.execute("SELECT DISTINCT carrier FROM shipments").fetchall()
    assert carriers == [("MARKETPLACE",)]


def test_a_constant_that_is_not_a_valid_value_stops_the_load_naming_the_setting(tmp_path):
    settings = make_site(tmp_path, sources={"order_lines": {"columns": {
        "order_id": "OrderNo", "line_no": "LineNo", "sku": "Item", "qty": {"value": "one"}}}})
    with pytest.raises(ExtractError, match=r"constant order_lines\.qty = 'one' is not valid .*sources\.order_lines\.columns\.qty"):
        load_source(connect(settings), settings, "order_lines")


def test_one_file_feeds_two_entities_and_one_column_two_fields(tmp_path):
    settings = make_site(tmp_path, sources={"shipments": {"file": "oms_orders.csv", "columns": {
        "shipment_id": "OrderNo", "reference": "OrderNo", "carrier": "Carrier"}}})
    con = connect(settings)
    load_extracts(con, settings)
    n_orders = con.execute("SELECT count(*) FROM orders").fetchone()[0]
    same = con.execute("SELECT count(*) FROM shipments WHERE shipment_id = reference").fetchone()[0]
    assert n_orders > 0 and same == n_orders


def test_a_load_that_stops_keeps_the_table_of_the_last_good_load_and_leaves_no_work_table(tmp_path):
    # The typed rows become the entity table only at the end of a load (no second copy of them):
    # a load stopped before then must leave the last good table as it was.
    settings = make_site(tmp_path)
    con = connect(settings)
    load_source(con, settings, "order_lines")
    before = con.execute("SELECT * FROM order_lines ORDER BY _line").fetchall()
    bad = make_site(tmp_path / "bad", sources={"order_lines": {"columns": {
        "order_id": "OrderNo", "line_no": "LineNo", "sku": "Item", "qty": {"value": "one"}}}})
    with pytest.raises(ExtractError, match="constant order_lines.qty"):
        load_source(con, bad, "order_lines")
    assert con.execute("SELECT * FROM order_lines ORDER BY _line").fetchall() == before
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE starts_with(table_name, '_hx_')").fetchone()[0] == 0
    cols = [r[0] for r in con.execute("DESCRIBE order_lines").fetchall()]
    assert cols[-2:] == ["_file", "_line"] and not any(c.startswith("_r") for c in cols)


@pytest.mark.parametrize(
    "text",
    [
        b"a,b\n1,2\n\n3,4\n",
        b"a,b\r\n1,2\r\n\r\n3,4",
        b"\na,b\n1,2\r3,4\n\r\n",
        b'a,b\n"x\ny",2\n\n\n5,6\r\n',
        b"a,b",
        b"\r\n\n\r\r\n",
    ],
)
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 1 << 24])
def test_line_scan_finds_line_ends_blank_lines_and_bare_carriage_returns(tmp_path, text, chunk_size):
    # The scan reads the file in chunks and looks at the bytes before each \n only when the file
    # holds a \r: checked here, across chunk borders, against a plain reading of the same bytes.
    from handoff_lib.load.extracts import _scan_lines

    path = tmp_path / "x.csv"
    path.write_bytes(text)
    lines = text.split(b"\n")[:-1]  # the lines ended by a \n
    scan = _scan_lines(path, chunk_size=chunk_size)
    assert scan.newlines.tolist() == [i for i, c in enumerate(text) if c == 10]
    assert scan.blank.tolist() == [k + 1 for k, line in enumerate(lines) if line in (b"", b"\r")]
    assert scan.bare_cr == (text.count(b"\r") != text.count(b"\r\n"))
    assert scan.ends_with_newline == text.endswith(b"\n")


# ------------------------------------------------------------------------------------------ values, not facts


ORDERS_HEADER = (GOOD / "oms_orders.csv").read_text(encoding="utf-8").splitlines()[0] + "\n"


def order_row(no: int, name: str = "Acme", prio: str = "1", rel: str = "2026-03-02 09:00", status: str = "REL") -> str:
    return f"SO-{no},C-{no},{name},,EDI,{prio},2026-03-02 08:00,{rel},{status},UPS,GND,,2026-03-04,Y,,100,batch\n"


def test_a_windows_1252_byte_in_a_utf8_file_keeps_its_order_decoded_and_flagged(tmp_path):
    # A top-priority order whose customer name was typed on a Windows machine: one Latin byte, not UTF-8.
    body = (ORDERS_HEADER + order_row(1) + order_row(2, "Caf\u00e9 Zo\u00eb")).encode("utf-8") + order_row(3, "Caf\xe9").encode("cp1252")
    body += '4,C-4,"Cr\u00e8me\nCaf\xe9",,EDI,1,2026-03-02 08:00,,REL,UPS,GND,,,,,1,x\n'.encode("cp1252")  # a quoted line break too
    r = load_one(tmp_path, "orders", "oms_orders.csv", body, quality=None)
    names = dict(r.con.execute("SELECT order_id, customer_name FROM orders").fetchall())
    assert names == {"SO-1": "Acme", "SO-2": "Caf\u00e9 Zo\u00eb", "SO-3": "Caf\u00e9", "4": "Cr\u00e8me\nCaf\u00e9"}  # valid UTF-8 stays
    assert (r.report["rows_rejected"], r.report["values_flagged"], r.report["severity"]) == (0, 2, "info")
    assert list(zip(r.rejects["line"], r.rejects["column"], r.rejects["action"])) == [(4, "SoldToName", "flag"), (5, "SoldToName", "flag")]
    assert r.rejects.loc[0, "reason"].startswith("not valid UTF-8: read as Windows-1252 ('Caf\u00e9')")
    assert lines_of(r.con, "orders", "order_id") == {"SO-1": 2, "SO-2": 3, "SO-3": 4, "4": 5}


def test_priority_codes_in_an_int_field_stop_the_run_naming_column_line_and_value(tmp_path):
    body = ORDERS_HEADER + "".join(order_row(i, prio=f"P{1 + i % 3}") for i in range(1, 41))
    settings = make_site(tmp_path, {"oms_orders.csv": body})
    with pytest.raises(ExtractError) as err:
        load_source(connect(settings), settings, "orders")
    msg = str(err.value)
    line = site_line(settings, "priority: PrioTier")
    assert msg.startswith("oms_orders.csv: 40 of 40 values nulled (100.0%) in column 'PrioTier' (orders.priority")
    assert f"line {line}" in msg and "Commonest: 'P2' (14 rows, first at line 2)" in msg and "sources.orders.values.priority" in msg


def test_a_value_map_reads_priority_codes_into_the_int_field(tmp_path):
    body = ORDERS_HEADER + "".join(order_row(i, prio=p) for i, p in enumerate(["P1", "p2", " P3 ", "2", ""], start=1))
    values = {"priority": {"P1": 1, "P2": 2, "P3": 3}, "release_status": {"REL": "released"}}
    r = load_one(tmp_path, "orders", "oms_orders.csv", body, quality=None, values=values)
    assert dict(r.con.execute("SELECT order_id, priority FROM orders").fetchall()) == {
        "SO-1": 1, "SO-2": 2, "SO-3": 3, "SO-4": 2, "SO-5": None
    }
    assert r.report["values_nulled"] == 0


def test_a_few_bad_values_are_nulled_and_listed_under_the_threshold(tmp_path):
    body = ORDERS_HEADER + "".join(order_row(i, prio="x" if i == 7 else "2") for i in range(1, 201))
    r = load_one(tmp_path, "orders", "oms_orders.csv", body, quality=None)  # the site's default: 2 %, at least 3
    assert r.report["rows_accepted"] == 200 and r.report["values_nulled"] == 1 and r.report["severity"] == "warning"
    cols = r.con.execute("SELECT \"column\", values_nulled, share_pct, top_reason FROM load_columns").fetchall()
    assert cols == [("PrioTier", 1, 0.5, "not a number priority 'x'")]


def test_values_on_a_timestamp_field_is_an_error_naming_the_line(tmp_path):
    from handoff_lib.errors import SettingsError

    with pytest.raises(SettingsError, match=r"site.yaml line \d+: sources.orders.values.ordered_at: a value map applies to enum"):
        make_site(tmp_path, sources={"orders": {"values": {"ordered_at": {"U": "UPS"}, "release_status": {"REL": "released"}}}})


def test_release_status_derived_from_a_blank_release_date(tmp_path):
    # That OMS has no status code: an open order with no release date is not released; a cancel flag cancels.
    header = "OrderNo,SoldTo,OrderDate,ReleaseDate,Cancelled,Carrier,SvcLevel\n"
    body = (
        "SO-1,C-1,2026-03-02 08:00,2026-03-02 09:00,,UPS,GND\n"
        "SO-2,C-1,2026-03-02 08:00,   ,,UPS,GND\n"
        "SO-3,C-1,2026-03-02 08:00,,Y,UPS,GND\n"
        "SO-4,C-1,2026-03-02 08:00,2026-03-02 18:00,,UPS,GND\n"  # released after the review: not yet
    )
    derive = [
        {"value": "cancelled", "when": {"Cancelled": ["Y", "X"]}},
        {"value": "not_released", "when": {"ReleaseDate": "blank"}},
        {"value": "not_released", "when": {"released_at": "after review"}},
        {"value": "REL"},  # a site code: mapped through values:
    ]
    columns = {"order_id": "OrderNo", "customer_id": "SoldTo", "ordered_at": "OrderDate", "released_at": "ReleaseDate",
               "release_status": {"derive": derive}, "carrier": "Carrier", "service": "SvcLevel"}
    settings = make_site(tmp_path, {"oms_orders.csv": header + body}, {"orders": {"columns": columns}})
    con = connect(settings)
    report = load_source(con, settings, "orders", as_of=dt.datetime(2026, 3, 2, 14, 30, tzinfo=NY))
    assert dict(con.execute("SELECT order_id, release_status FROM orders").fetchall()) == {
        "SO-1": "released", "SO-2": "not_released", "SO-3": "cancelled", "SO-4": "not_released"
    }
    assert report["rows_rejected"] == 0 and "Cancelled" not in report["extra_columns"]


def test_a_derive_rule_testing_a_missing_column_names_it_and_the_rule(tmp_path):
    derive = [{"value": "not_released", "when": {"RelDate": "blank"}}, {"value": "released"}]
    columns = yaml.safe_load(DEMO.read_text())["sources"]["orders"]["columns"] | {"release_status": {"derive": derive}}
    settings = make_site(tmp_path, sources={"orders": {"columns": columns}})
    with pytest.raises(MissingColumnError, match=r"column 'RelDate', tested by the derive rule for orders.release_status \(.*line \d+\)"):
        load_source(connect(settings), settings, "orders")


# ------------------------------------------------------------------ ERP shapes (docs/extracts.md, "Shapes ERPs export")

SAP_HEADER = "VBELN;KUNNR;ERDAT;ERZET;LIFSK;ABGRU;VSBED;NETWR\n"
SAP_ROWS = (
    "4500001;C1;01.12.2026;08:15:00;;;UPS-GND;1.234,50\n"
    "4500002;C1;01.12.2026;09:30:00;01;;UPS-GND;99,00\n"
    "4500003;C2;02.12.2026;;08;;ESTES-LTL;12.000,00\n"
    "4500004;C2;02.12.2026;10:00:00; ;X;FEDEX;5,00-\n"
)


def sap_holds(tmp_path: Path, **spec) -> Loaded:
    """Holds read from the order header: a row is a hold when its delivery block (LIFSK) is set."""
    columns = {
        "hold_id": {"join": ["VBELN", "LIFSK"], "separator": "/"},
        "reference": "VBELN",
        "code": "LIFSK",
        "placed_at": {"date": "ERDAT", "time": "ERZET", "date_format": "%d.%m.%Y"},
    }
    spec = {"file": "sap_orders.csv", "delimiter": ";", "columns": columns, "where": {"LIFSK": "not blank"}, **spec}
    settings = make_site(tmp_path, {"sap_orders.csv": SAP_HEADER + SAP_ROWS}, {"holds": spec}, LENIENT)
    con = connect(settings)
    report = load_source(con, settings, "holds")
    assert_accounting(con)
    return Loaded(con, report, con.execute("SELECT * FROM rejects WHERE source = 'holds' ORDER BY line").df())


def test_a_where_filter_keeps_the_rows_of_the_entity_and_counts_the_others_apart(tmp_path):
    r = sap_holds(tmp_path)
    assert r.con.execute("SELECT hold_id, reference, code FROM holds ORDER BY _line").fetchall() == [
        ("4500002/01", "4500002", "01"), ("4500003/08", "4500003", "08")
    ]
    # the two orders without a block (one blank, one only a space) belong to other entities: not rejected, not lost
    assert (r.report["rows_read"], r.report["rows_accepted"], r.report["rows_rejected"], r.report["rows_other_entity"]) == (4, 2, 0, 2)
    assert r.rejects.empty and r.report["severity"] == "ok"
    assert "LIFSK" not in r.report["extra_columns"] and "ERZET" not in r.report["extra_columns"]


def test_a_timestamp_from_a_date_column_and_a_time_column_each_in_its_format(tmp_path):
    r = sap_holds(tmp_path)
    placed = dict(r.con.execute("SELECT hold_id, placed_at FROM holds").fetchall())
    assert placed["4500002/01"] == dt.datetime(2026, 12, 1, 9, 30, tzinfo=NY)
    assert placed["4500003/08"] == dt.datetime(2026, 12, 2, 0, 0, tzinfo=NY)  # a blank time: the start of the day


def test_a_where_column_missing_from_the_file_names_the_setting(tmp_path):
    with pytest.raises(MissingColumnError, match=r"column 'LIFSKK', tested by where: of holds \(.*site\.yaml line \d+\), is not in the file; closest: 'LIFSK'"):
        sap_holds(tmp_path, where={"LIFSKK": "not blank"})


def test_a_where_filter_refuses_a_review_time_test(tmp_path):
    from handoff_lib.errors import SettingsError

    with pytest.raises(SettingsError, match=r"site\.yaml line \d+: where: tests the columns of the file as read"):
        make_site(tmp_path, sources={"holds": {"where": {"placed_at": "after review"}}})


def test_numbers_with_a_decimal_comma_thousands_dots_a_trailing_minus_and_units(tmp_path):
    header = "OrderNo;LineNo;Item;OrderQty;AllocQty;UnitPrice\n"
    rows = [
        "SO-1;10;SKU-1;12,000 ST;12;1.234,50",   # twelve (three decimals of the ERP), a thousands dot
        "SO-1;20;SKU-2;3 st;0;5,00-",            # a unit in any case; a trailing minus
        "SO-1;30;SKU-3;1.500;1.500;0,5",         # 1500 with a thousands dot
        "SO-1;40;SKU-4;12.5;;7",                 # a decimal point is not this export's: a bad value
        "SO-1;50;SKU-5;4 KG;;1.2345,0",          # a unit the site does not list; a misplaced group
        "SO-1;60;SKU-6;-2;;",                    # a negative quantity is still below the minimum
    ]
    fmt = {"decimal": ",", "thousands": ".", "trailing_minus": True, "units": ["ST", "EA"]}
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", header + "\n".join(rows) + "\n", delimiter=";", number_format=fmt)
    got = r.con.execute("SELECT line_no, qty, allocated_qty, unit_price FROM order_lines ORDER BY line_no").fetchall()
    assert got == [(10, 12, 12, 1234.5), (20, 3, 0, None), (30, 1500, 1500, 0.5), (40, None, None, 7.0), (50, None, None, None),
                   (60, None, None, None)]
    bad = {(int(x.line), x.column, x.value): x.reason for x in r.rejects.itertuples()}
    assert set(bad) == {(3, "UnitPrice", "5,00-"), (5, "OrderQty", "12.5"), (6, "OrderQty", "4 KG"), (6, "UnitPrice", "1.2345,0"),
                        (7, "OrderQty", "-2")}
    assert bad[(5, "OrderQty", "12.5")] == (
        "not a number qty '12.5' (number format: decimal ',', thousands '.', trailing minus, units ST, EA)"
    )
    assert bad[(3, "UnitPrice", "5,00-")].startswith("negative unit_price '5,00-'")
    assert r.report["rows_rejected"] == 0  # bad values are nulled, the lines stay


def test_a_column_number_format_overrides_the_source_format(tmp_path):
    header = "OrderNo;LineNo;Item;OrderQty;UnitPrice\n"
    body = "SO-1;1;SKU-1;1.000;1,234.50\nSO-1;2;SKU-2;2;3.5\n"
    columns = {"order_id": "OrderNo", "line_no": "LineNo", "sku": "Item", "qty": "OrderQty",
               "unit_price": {"column": "UnitPrice", "number_format": {"decimal": ".", "thousands": ","}}}
    r = load_one(tmp_path, "order_lines", "oms_order_lines.csv", header + body, delimiter=";", columns=columns,
                 number_format={"decimal": ",", "thousands": "."})
    assert r.con.execute("SELECT qty, unit_price FROM order_lines ORDER BY line_no").fetchall() == [(1000, 1234.5), (2, 3.5)]
    assert r.rejects.empty


def test_a_carrier_code_split_into_carrier_and_service(tmp_path):
    columns = {"order_id": "VBELN", "customer_id": "KUNNR", "ordered_at": {"date": "ERDAT", "time": "ERZET"},
               "release_status": {"value": "released"},
               "carrier": {"column": "VSBED", "split": "-", "part": 1}, "service": {"column": "VSBED", "split": "-", "part": 2},
               "order_value": "NETWR"}
    r = load_one(tmp_path, "orders", "oms_orders.csv", SAP_HEADER + SAP_ROWS, delimiter=";", columns=columns, date_format="%d.%m.%Y",
                 number_format={"decimal": ",", "thousands": ".", "trailing_minus": True}, values=None)
    got = r.con.execute("SELECT order_id, carrier, service, order_value FROM orders ORDER BY _line").fetchall()
    assert got == [("4500001", "UPS", "GND", 1234.5), ("4500002", "UPS", "GND", 99.0), ("4500003", "ESTES", "LTL", 12000.0),
                   ("4500004", "FEDEX", None, None)]  # no service in the code; a negative order value is a bad value
    assert list(r.rejects["column"]) == ["NETWR"]


def test_a_value_map_from_a_shipping_code_to_carrier_and_service(tmp_path):
    header = "OrderNo,SoldTo,OrderDate,RelStatus,ShipCond\n"
    body = "SO-1,C1,2026-03-02 08:00,REL,01\nSO-2,C1,2026-03-02 08:00,REL,02\nSO-3,C1,2026-03-02 08:00,REL,UPS\n"
    columns = {"order_id": "OrderNo", "customer_id": "SoldTo", "ordered_at": "OrderDate", "release_status": "RelStatus",
               "carrier": "ShipCond", "service": "ShipCond"}
    values = {"release_status": {"REL": "released"}, "carrier": {"01": "UPS", "02": "ESTES"}, "service": {"01": "GND", "02": "LTL"}}
    r = load_one(tmp_path, "orders", "oms_orders.csv", header + body, columns=columns, values=values)
    assert r.con.execute("SELECT carrier, service FROM orders ORDER BY _line").fetchall() == [
        ("UPS", "GND"), ("ESTES", "LTL"), ("UPS", "UPS")  # a code the map lacks is kept as written
    ]


def test_a_status_derived_from_several_columns_at_once_with_a_default(tmp_path):
    header = "OrderNo,SoldTo,OrderDate,RelDate,CancelFlag,CreditOK\n"
    body = (
        "SO-1,C1,2026-03-02 08:00,2026-03-02,,Y\n"   # released: a release date, credit fine
        "SO-2,C1,2026-03-02 08:00,2026-03-02,,N\n"   # a release date but credit refused: every test of a rule must hold
        "SO-3,C1,2026-03-02 08:00,,X,Y\n"            # cancelled wins over the blank release date
        "SO-4,C1,2026-03-02 08:00,,,Y\n"             # the default
    )
    derive = [
        {"value": "cancelled", "when": {"CancelFlag": "X"}},
        {"value": "released", "when": {"RelDate": "not blank", "CreditOK": ["Y", "YES"]}},
        {"value": "not_released"},
    ]
    columns = {"order_id": "OrderNo", "customer_id": "SoldTo", "ordered_at": "OrderDate", "release_status": {"derive": derive}}
    r = load_one(tmp_path, "orders", "oms_orders.csv", header + body, columns=columns)
    assert dict(r.con.execute("SELECT order_id, release_status FROM orders").fetchall()) == {
        "SO-1": "released", "SO-2": "not_released", "SO-3": "cancelled", "SO-4": "not_released"
    }
    assert "CreditOK" not in r.report["extra_columns"]


def test_a_number_format_on_a_text_field_is_refused(tmp_path):
    from handoff_lib.errors import SettingsError

    columns = {"carrier": {"column": "Carrier", "number_format": {"decimal": ","}}}
    with pytest.raises(SettingsError, match=r"site\.yaml line \d+: number_format: applies to int and decimal fields; orders.carrier is a text"):
        make_site(tmp_path, sources={"orders": {"columns": yaml.safe_load(DEMO.read_text())["sources"]["orders"]["columns"] | columns}})


def test_rejected_shares_are_of_the_entitys_own_rows_not_of_the_whole_shared_file(tmp_path):
    from handoff_lib.load.validate import data_warnings

    header = "ShipmentId,Reference,CarrierCode,ServiceCode,TrackingNumber,LabelCreated,Manifested,PickedUp\n"
    cartons = "".join(f",CTN-{i},UPS,GND,,,,\n" for i in range(8))  # cartons without a label: not shipments
    body = header + cartons + "SHP-1,CTN-8,UPS,GND,1Z1,2026-03-02 10:40:00,,\n" + ",CTN-9,UPS,GND,1Z2,2026-03-02 10:41:00,,\n"
    r = load_one(tmp_path, "shipments", "carrier_shipments.csv", body, where={"TrackingNumber": "not blank"})
    assert (r.report["rows_read"], r.report["rows_accepted"], r.report["rows_rejected"], r.report["rows_other_entity"]) == (10, 1, 1, 8)
    assert list(r.rejects["reason"]) == ["blank shipment_id"]  # the labelled row without a shipment number
    (warning,) = data_warnings(r.con)
    assert (warning["rows_read"], warning["rows_entity"], warning["share_pct"]) == (10, 2, 50.0)
