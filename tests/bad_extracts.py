"""The bad-extract corpus: each case changes one file of the good extract set (tests/fixtures/extracts/good)
and states the outcome a site must get. Add a case here when a new kind of bad export turns up.

Outcomes:
  error(regex)            the load stops with an error whose message matches (file, column/setting, line)
  rejects(n, regex)       n rows are rejected whole (their identity is unreadable, or the CSV record is broken, or
                          a duplicate), each reason matching; the rest loads; read = accepted + rejected
  nulled(n, regex)        n values are bad: each is NULL in the table and listed with its reason; every record stays
  flagged(n, regex)       n values are kept but flagged (decoded as Windows-1252, events out of order); every record stays
  loads(check)            the file loads whole; `check(con)` asserts what must be true
  unmatched(source, key)  the row loads but the crosswalk lists it as unmatched (never linked, never dropped)
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GOOD = Path(__file__).parent / "fixtures" / "extracts" / "good"


@dataclass
class Case:
    name: str
    file: str
    content: Callable[[str], str | bytes]  # good text -> bad content
    outcome: str  # error | rejects | nulled | flagged | loads | unmatched
    match: str = ""  # regex the error / every reject reason must match
    n: int = 0  # rejected rows / nulled or flagged values
    source_settings: dict = field(default_factory=dict)  # sources.<entity> settings to merge
    check: Callable | None = None
    key: str = ""  # unmatched: the record key


def good(name: str) -> str:
    return (GOOD / name).read_text(encoding="utf-8")


def append(row: str) -> Callable[[str], str]:
    return lambda text: text + (row if row.endswith("\n") else row + "\n")


def xlsx(sheets: dict[str, list[list]], merged: str | None = None) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
        if merged:
            ws.merge_cells(merged)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def parquet(columns: dict[str, list]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def rows_of(text: str) -> list[list[str]]:
    import csv

    return list(csv.reader(io.StringIO(text)))


TASKS = "wms_pick_tasks.csv"
ORDERS = "oms_orders.csv"
LINES = "oms_order_lines.csv"
SHIP = "carrier_shipments.csv"
HOLDS = "wms_holds.csv"
TASK_ROW = "T-9,PT-1001-9,1001,1,SKU-100,A-01-01,W1,{req},{picked},10,,2026-03-02 10:05:00,"


def _lines_qty(v: str) -> Callable[[str], str]:
    return append(f"SO-0001002,7,SKU-100,{v},1,N,1.00")


def _task(req: str, picked: str) -> Callable[[str], str]:
    return append(TASK_ROW.format(req=req, picked=picked))


CASES: list[Case] = [
    # --- columns
    Case("missing required column", TASKS, lambda t: t.replace("TASK_STAT", "STATE_X", 1), "error",
         r"wms_pick_tasks\.csv: missing column 'TASK_STAT' for contract field pick_tasks\.status \(mapped at .*line \d+.*columns found: .*STATE_X"),
    Case("renamed column (case differs only)", ORDERS, lambda t: t.replace("OrderNo", "ORDERNO", 1), "loads",
         check=lambda con: con.execute("SELECT count(*) FROM orders").fetchone()[0] == 3),
    Case("renamed column (different name)", LINES, lambda t: t.replace("OrderQty", "Qty", 1), "error",
         r"oms_order_lines\.csv: missing column 'OrderQty'.*line \d+"),
    Case("extra column", SHIP, lambda t: t.replace("PickedUp", "PickedUp,Depot", 1).replace("\n", ",X\n").replace(",X\n", "\n", 1),
         "loads", check=lambda con: "Depot" in con.execute("SELECT extra_columns FROM load_report WHERE source='shipments'").fetchone()[0]),
    # --- types and values
    Case("wrong type in a quantity", LINES, _lines_qty("five"), "nulled", r"not a number qty 'five'", 1),
    Case("non-integer quantity", LINES, _lines_qty("2.5"), "nulled", r"non-integer qty '2\.5'", 1),
    Case("negative quantity", TASKS, _task("-3", "0"), "nulled", r"qty_required|negative|below the minimum", 1),
    Case("picked more than required", TASKS, _task("2", "5"), "nulled", r"qty_picked 5 more than qty_required 2", 1),
    Case("unparseable timestamp", ORDERS, lambda t: t.replace("2026-03-02 08:15:00", "yesterday 8am"),
         "nulled", r"unparseable timestamp ordered_at 'yesterday 8am'", 1),
    Case("impossible timestamp", ORDERS, lambda t: t.replace("2026-03-02 08:15:00", "2026-02-30 08:15:00"), "nulled",
         r"(impossible date|unparseable timestamp) ordered_at '2026-02-30 08:15:00'", 1),
    Case("naive and zoned timestamps", ORDERS, lambda t: t, "loads",
         check=lambda con: str(con.execute("SELECT ordered_at FROM orders WHERE order_id='SO-0001002'").fetchone()[0]).startswith(
             "2026-03-02 08:20:00")),
    Case("unknown status value", TASKS, lambda t: t.replace(",10,,2026-03-02 11:00", ",55,,2026-03-02 11:00"),
         "nulled", r"unmapped status '55'", 1),
    Case("unknown status value on every row (the mapping is wrong)", TASKS,
         lambda t: t.replace(",30,,", ",55,,").replace(",10,,", ",55,,").replace(",40,", ",55,"),
         "error", r"wms_pick_tasks\.csv: column 'TASK_STAT'.*'55' \(3 rows, first at line 2\).*values\.status .*line \d+"),
    Case("priority codes in an integer field", ORDERS, lambda t: t.replace(",EDI,1,", ",EDI,P1,").replace(",WEB,2,", ",WEB,P2,")
         .replace(",PHONE,,", ",PHONE,P3,"), "error",
         r"oms_orders\.csv: 3 of 3 values nulled .*'PrioTier' \(orders\.priority, mapped at .*line \d+\).*sources\.orders\.values\.priority"),
    Case("null id", TASKS, append(",PT-1,1001,1,SKU-100,A-01-01,W1,1,0,10,,2026-03-02 10:05:00,"), "rejects", r"blank task_id", 1),
    Case("whitespace-only id", TASKS, append("   ,PT-1,1001,1,SKU-100,A-01-01,W1,1,0,10,,2026-03-02 10:05:00,"), "rejects",
         r"blank task_id", 1),
    # --- file shape
    Case("empty 0-byte file", TASKS, lambda t: b"", "error", r"wms_pick_tasks\.csv.*empty \(0 bytes\)"),
    Case("header only", TASKS, lambda t: t.splitlines(keepends=True)[0], "loads",
         check=lambda con: con.execute("SELECT rows_read FROM load_report WHERE source='pick_tasks'").fetchone()[0] == 0),
    Case("UTF-8 byte-order mark", ORDERS, lambda t: "\ufeff" + t, "loads",
         check=lambda con: con.execute("SELECT count(*) FROM orders").fetchone()[0] == 3),
    Case("Latin-1 file declared latin-1", ORDERS, lambda t: t.replace("Crane & Sons", "Crâne & Söhne").encode("latin-1"), "loads",
         source_settings={"encoding": "latin-1"},
         check=lambda con: con.execute("SELECT customer_name FROM orders WHERE order_id='SO-0001003'").fetchone()[0] == "Crâne & Söhne"),
    Case("Latin-1 file read as UTF-8", ORDERS, lambda t: t.replace("Crane & Sons", "Crâne & Söhne").encode("latin-1"), "flagged",
         r"not valid UTF-8: read as Windows-1252 \('Crâne & Söhne'\)", 1),
    Case("mixed encodings (one Latin-1 line)", ORDERS,
         lambda t: t.encode("utf-8").replace(b"Bolt Supply", "Bölt Supply".encode("latin-1")), "flagged",
         r"not valid UTF-8: read as Windows-1252 \('Bölt Supply'\)", 1),
    Case("wrong delimiter", LINES, lambda t: t.replace(",", ";"), "error", r"delimiter"),
    Case("quoted newline keeps later line numbers", TASKS,
         lambda t: t.replace('"bin empty, only 1 found"', '"bin empty,\nonly 1 found\nchecked twice"'), "loads",
         check=lambda con: con.execute("SELECT _line FROM pick_tasks WHERE task_id='T-3'").fetchone()[0] == 6),
    Case("truncated last line", TASKS, lambda t: t + "T-4,PT-1002-2,SO1002,2,SKU-2", "rejects", r"too few columns.*truncated", 1),
    Case("too many columns on one row", TASKS, append(TASK_ROW.format(req="1", picked="0") + ",extra,more"), "rejects",
         r"too many columns", 1),
    Case("duplicate row (exact)", TASKS, lambda t: t + t.splitlines(keepends=True)[1], "rejects", r"exact duplicate of line 2", 1),
    Case("duplicate key with conflicting values", TASKS,
         lambda t: t + t.splitlines(keepends=True)[1].replace(",5,5,30,", ",5,4,40,"), "rejects",
         r"conflicting duplicate key task_id='T-1' \(kept line 2\)", 1),
    Case("very long note field", TASKS, append(TASK_ROW.format(req="1", picked="0").rstrip(",") + "," + "x" * 100_000), "loads",
         check=lambda con: con.execute("SELECT max(length(note)) FROM pick_tasks").fetchone()[0] == 100_000),
    Case("events out of order (handed off before the label)", SHIP,
         append("SHP-9,CTN-0001,UPS,GND,1Z9,2026-03-02 10:40:00,2026-03-02 10:45:00,2026-03-02 09:00:00"), "flagged",
         r"events out of order by 1\d\d min: handed_off_at 2026-03-02 09:00 is before (label_created_at 2026-03-02 10:40|manifested_at 2026-03-02 10:45) "
         r"\(beyond the 30-min tolerance", 2),
    Case("pickup scan stamped minutes before the manifest (clock skew)", SHIP,
         append("SHP-9,CTN-0001,UPS,GND,1Z9,2026-03-02 10:40:00,2026-03-02 10:52:00,2026-03-02 10:47:00"), "flagged",
         r"events out of order by 5 min: handed_off_at 2026-03-02 10:47 is before manifested_at 2026-03-02 10:52 \(within the 30-min",
         1),
    Case("hold released before it was placed", HOLDS, append("H-9,SO-0001001,CR,,2026-03-02 09:10:00,2026-03-01 09:00:00,jdoe"),
         "flagged", r"events out of order by 1450 min: released_at", 1),
    # --- references
    Case("reference to an unknown order", TASKS, append("T-8,PT-9999-1,9999,1,SKU-100,A-01-01,W1,1,0,10,,2026-03-02 10:05:00,"),
         "unmatched", key="T-8"),
    Case("id differing only by look-alike characters", TASKS,
         append("T-7,PT-1001-1,SO-OOO1001,1,SKU-100,A-01-01,W1,1,0,10,,2026-03-02 10:05:00,"), "unmatched", key="T-7"),
    Case("id with a Cyrillic look-alike letter", TASKS,
         append("T-6,PT-1001-1,\u0421O-0001001,1,SKU-100,A-01-01,W1,1,0,10,,2026-03-02 10:05:00,"), "unmatched", key="T-6"),
    # --- other formats
    Case("XLSX with several sheets (the mapped one is read)", "wms_pick_tasks.xlsx",
         lambda t: xlsx({"Notes": [["nothing here"]], "Tasks": rows_of(good(TASKS))}), "loads",
         source_settings={"file": "wms_pick_tasks.xlsx", "sheet": "Tasks"},
         check=lambda con: con.execute("SELECT count(*) FROM pick_tasks").fetchone()[0] == 3),
    Case("XLSX sheet missing", "wms_pick_tasks.xlsx", lambda t: xlsx({"Other": rows_of(good(TASKS))}), "error",
         r"no sheet named 'Tasks'.*sheet:", source_settings={"file": "wms_pick_tasks.xlsx", "sheet": "Tasks"}),
    Case("XLSX with a merged title row above the header", "wms_pick_tasks.xlsx",
         lambda t: xlsx({"Tasks": [["Pick tasks export"] + [None] * 12] + rows_of(good(TASKS))}, merged="A1:M1"), "loads",
         source_settings={"file": "wms_pick_tasks.xlsx", "sheet": "Tasks", "header_row": 2},
         check=lambda con: con.execute("SELECT count(*) FROM pick_tasks").fetchone()[0] == 3),
    Case("XLSX merged header not declared", "wms_pick_tasks.xlsx",
         lambda t: xlsx({"Tasks": [["Pick tasks export"] + [None] * 12] + rows_of(good(TASKS))}, merged="A1:M1"), "error",
         r"missing column 'TASK_ID'", source_settings={"file": "wms_pick_tasks.xlsx", "sheet": "Tasks"}),
    Case("Parquet with a different schema", "wms_pick_tasks.parquet",
         lambda t: parquet({"TASK_ID": ["T-1"], "ORDER_REF": ["1001"], "ITEM": ["SKU-100"], "QTY_REQ": [1]}), "error",
         r"missing column 'TASK_STAT'", source_settings={"file": "wms_pick_tasks.parquet"}),
]


def markdown_table() -> str:
    """The case table of docs/reliability.md, made from CASES (a test keeps the two in step)."""

    def code(text: str) -> str:
        return "`" + text.replace("|", "\\|") + "`"

    def outcome(c: Case) -> str:
        if c.outcome == "error":
            return f"stops with an error matching {code(c.match)}"
        if c.outcome == "rejects":
            return f"{c.n} row(s) rejected whole, reason matching {code(c.match)}; the rest loads"
        if c.outcome == "nulled":
            return f"{c.n} value(s) nulled, reason matching {code(c.match)}; every record loads"
        if c.outcome == "flagged":
            return f"{c.n} value(s) kept and flagged, reason matching {code(c.match)}; every record loads"
        if c.outcome == "unmatched":
            return f"loads; record `{c.key}` listed as unmatched and raised as an *unlinked record* blocker"
        return "loads whole (checked)"

    rows = ["| # | case | file | outcome |", "|---|---|---|---|"]
    rows += [f"| {i} | {c.name} | `{c.file}` | {outcome(c)} |" for i, c in enumerate(CASES, start=1)]
    return "\n".join(rows) + "\n"
