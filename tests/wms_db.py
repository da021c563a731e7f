"""A demo day held in PostgreSQL as a WMS/ERP would hold it, and a site file that reads it there.

The ERP, WMS, carrier and CRM tables have their own schema, table and column names (`erp.sales_order_header`,
`wms.pick_task.qty_required`, ...), typed columns where the day's values allow, an `export_seq` column (the
row's number in the day's file: the order the system hands rows out in), and reporting views over them
(`reporting.v_*`), which a site reads through a read-only role, as docs/extracts.md ("Your database")
recommends.

A column gets its database type (integer, numeric, boolean, date, timestamp, timestamptz) only when every
non-blank value of the day's file converts to it the way the file path reads it (the site's booleans, its
timezone); otherwise it stays text, as legacy systems often keep such columns. `TYPED` records which.

Used by tests/test_dbsource.py (the database equals the files, table for table) and bench/db_load.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import pyarrow.csv as pacsv
import yaml

# entity -> (schema.table, file, {file column: (database column, wanted type)})
TABLES: dict[str, tuple[str, str, dict[str, tuple[str, str]]]] = {
    "orders": (
        "erp.sales_order_header",
        "oms_orders.csv",
        {
            "OrderNo": ("so_number", "text"),
            "SoldTo": ("sold_to_account", "text"),
            "SoldToName": ("sold_to_name", "text"),
            "CustPO": ("customer_po_ref", "text"),
            "Channel": ("sales_channel", "text"),
            "PrioTier": ("priority_tier", "integer"),
            "OrderDate": ("created_ts", "timestamp"),
            "ReleaseDate": ("released_ts", "timestamp"),
            "RelStatus": ("status_code", "text"),
            "Carrier": ("carrier_scac", "text"),
            "SvcLevel": ("service_level", "text"),
            "ShipByOverride": ("ship_by_ts", "timestamp"),
            "PromiseDate": ("promise_date", "date"),
            "ShipComplete": ("ship_complete_flag", "boolean"),
            "CancelDate": ("cancelled_ts", "timestamp"),
            "OrderValue": ("order_total", "numeric(14,2)"),
        },
    ),
    "order_lines": (
        "erp.sales_order_line",
        "oms_order_lines.csv",
        {
            "OrderNo": ("so_number", "text"),
            "LineNo": ("line_number", "integer"),
            "Item": ("item_code", "text"),
            "OrderQty": ("qty_ordered", "integer"),
            "AllocQty": ("qty_allocated", "integer"),
            "SubsOK": ("substitute_ok", "boolean"),
            "UnitPrice": ("unit_price", "numeric(12,4)"),
        },
    ),
    "inventory": (
        "wms.stock_by_location",
        "wms_inventory.csv",
        {
            "ITEM": ("item_code", "text"),
            "LOC": ("location_code", "text"),
            "QTY_OH": ("qty_on_hand", "integer"),
            "QTY_ALLOC": ("qty_allocated", "integer"),
            "QTY_HOLD": ("qty_on_hold", "integer"),
        },
    ),
    "pick_tasks": (
        "wms.pick_task",
        "wms_pick_tasks.csv",
        {
            "TASK_ID": ("task_no", "text"),
            "PICK_TICKET": ("pick_ticket_no", "text"),
            "ORDER_REF": ("order_ref", "text"),
            "LINE": ("order_line", "integer"),
            "ITEM": ("item_code", "text"),
            "LOC": ("from_location", "text"),
            "WAVE": ("wave_no", "text"),
            "QTY_REQ": ("qty_required", "integer"),
            "QTY_PICK": ("qty_picked", "integer"),
            "TASK_STAT": ("task_status", "smallint"),
            "SUB_ITEM": ("substitute_item", "text"),
            "LAST_UPD": ("last_update_ts", "timestamp"),
            "PICK_NOTE": ("picker_note", "text"),
        },
    ),
    "pack_events": (
        "wms.pack_carton_event",
        "wms_pack_events.csv",
        {
            "CARTON": ("carton_lpn", "text"),
            "ORDER_REF": ("order_ref", "text"),
            "PICK_TICKET": ("pick_ticket_no", "text"),
            "PACK_STAT": ("carton_status", "text"),
            "EXC_CODE": ("exception_code", "text"),
            "PACK_NOTE": ("packer_note", "text"),
            "EVENT_TS": ("event_ts", "timestamp"),
        },
    ),
    "holds": (
        "wms.order_hold",
        "wms_holds.csv",
        {
            "HOLD_NO": ("hold_no", "text"),
            "HOLD_REF": ("held_reference", "text"),
            "HOLD_CODE": ("hold_reason_code", "text"),
            "HOLD_NOTE": ("hold_comment", "text"),
            "PLACED_TS": ("placed_ts", "timestamp"),
            "RELEASED_TS": ("released_ts", "timestamp"),
            "PLACED_BY": ("placed_by_user", "text"),
        },
    ),
    "shipments": (
        "tms.shipment",
        "carrier_shipments.csv",
        {
            "ShipmentId": ("shipment_no", "text"),
            "Reference": ("shipper_reference", "text"),
            "CarrierCode": ("carrier_scac", "text"),
            "ServiceCode": ("service_code", "text"),
            "TrackingNumber": ("tracking_number", "text"),
            "LabelCreated": ("label_created_utc", "timestamptz"),
            "Manifested": ("manifested_utc", "timestamptz"),
            "PickedUp": ("picked_up_utc", "timestamptz"),
        },
    ),
    "cases": (
        "crm.service_case",
        "crm_cases.csv",
        {
            "CaseNumber": ("case_number", "text"),
            "RelatedTo": ("related_reference", "text"),
            "Opened": ("opened_ts", "timestamp"),
            "Closed": ("closed_ts", "timestamp"),
            "CaseType": ("case_type", "text"),
            "Description": ("description", "text"),
        },
    ),
    "account_instructions": (
        "crm.account_instruction",
        "crm_account_instructions.csv",
        {
            "Account": ("account_number", "text"),
            "Instruction": ("instruction_text", "text"),
            "Comment": ("comment", "text"),
        },
    ),
}
# Sources the site reads with `query:` (ordered by export_seq); the others with `table:` on the view plus order_by.
BY_QUERY = ("orders", "pick_tasks", "shipments")
READER = "handoff_reader"
READER_PASSWORD = "reader-secret"


def _convert_sql(col: str, kind: str, booleans: tuple[list[str], list[str]]) -> tuple[str, str]:
    """DuckDB SQL: the typed value of text column `col` as the file path reads it, and the condition
    under which a non-blank value fails to convert (so the column must stay text)."""
    t = f"nullif(trim(\"{col}\"), '')"
    if kind in ("integer", "smallint"):
        val = f"CASE WHEN regexp_full_match({t}, '[+-]?[0-9]+') THEN TRY_CAST({t} AS BIGINT) END"
    elif kind.startswith("numeric"):
        val = f"CASE WHEN regexp_full_match({t}, '[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)') THEN TRY_CAST({t} AS DECIMAL(18,4)) END"
    elif kind == "boolean":
        yes, no = ([f"'{v.lower()}'" for v in side if v] for side in booleans)
        val = f"CASE WHEN lower({t}) IN ({', '.join(yes)}) THEN true WHEN lower({t}) IN ({', '.join(no)}) THEN false END"
    elif kind == "date":
        val = f"CASE WHEN regexp_full_match({t}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') THEN TRY_CAST({t} AS DATE) END"
    elif kind == "timestamp":  # naive wall-clock text only
        val = f"CASE WHEN regexp_full_match({t}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[ T][0-9:.]+') THEN TRY_CAST({t} AS TIMESTAMP) END"
    elif kind == "timestamptz":  # ISO text with Z or an offset (naive text is the session's, i.e. the site's, time)
        val = f"CASE WHEN regexp_full_match({t}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[ T][0-9:.]+(Z|[+-][0-9:]+)?') THEN TRY_CAST({t} AS TIMESTAMPTZ) END"
    else:
        return f'"{col}"', "false"
    return val, f"{t} IS NOT NULL AND ({val}) IS NULL"


def _ident(name: str) -> str:
    return ".".join(f'"{p}"' for p in name.split("."))


def load_day(pg, data: Path, site_file: Path, entities: tuple[str, ...] | None = None, progress: bool = False) -> dict[str, dict]:
    """Create the schemas, tables, views and the read-only role in the database `pg` (a psycopg
    connection with rights to do so) and copy the day's files in `data` into them. Returns per entity
    {"table", "view", "rows", "typed": {column: type}, "text": [columns kept text]}."""
    site = yaml.safe_load(Path(site_file).read_text())
    bools = site.get("booleans") or {}
    booleans = (
        [str(v) for v in bools.get(True, bools.get("true", []))],
        [str(v) for v in bools.get(False, bools.get("false", []))],
    )
    tz = site["timezone"]
    con = duckdb.connect()
    con.execute("SET TimeZone = ?", [tz])
    out: dict[str, dict] = {}
    with pg.cursor() as cur:
        cur.execute(f"SET TimeZone = '{tz}'")
        for schema in ("erp", "wms", "tms", "crm", "reporting"):
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        cur.execute(f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN "
                    f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'; END IF; END$$")  # fmt: skip
        cur.execute(f"GRANT USAGE ON SCHEMA reporting TO {READER}")
        for entity, (table, file, columns) in TABLES.items():
            if entities is not None and entity not in entities:
                continue
            path = data / file
            con.execute(
                "CREATE OR REPLACE TABLE f AS SELECT *, CAST(row_number() OVER () AS BIGINT) AS export_seq "
                "FROM read_csv(?, all_varchar = true, header = true, auto_detect = false, columns = ?, quote = '\"', escape = '\"')",
                [str(path), {c: "VARCHAR" for c in _header(path)}],
            )
            typed, text, select, ddl = {}, [], [], []
            for col, (dbcol, kind) in columns.items():
                val, bad = _convert_sql(col, kind, booleans)
                ok = kind == "text" or con.execute(f"SELECT count(*) FROM f WHERE {bad}").fetchall()[0][0] == 0
                if not ok:
                    text.append(dbcol)
                    val, kind = f'"{col}"', "text"
                elif kind != "text":
                    typed[dbcol] = kind
                select.append(f"{val} AS {dbcol}")
                ddl.append(f"{dbcol} {kind}")
            cur.execute(f"DROP TABLE IF EXISTS {_ident(table)} CASCADE")
            cur.execute(f"CREATE TABLE {_ident(table)} (export_seq bigint PRIMARY KEY, {', '.join(ddl)})")
            buf = io.BytesIO()
            frame = con.sql(f"SELECT export_seq, {', '.join(select)} FROM f ORDER BY export_seq").to_arrow_table()
            pacsv.write_csv(frame, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
            names = ", ".join(["export_seq", *(c for c, _ in columns.values())])
            with cur.copy(f"COPY {_ident(table)} ({names}) FROM STDIN (FORMAT csv)") as cp:
                cp.write(buf.getvalue())
            view = "reporting.v_" + table.split(".")[1]
            cur.execute(f"CREATE VIEW {_ident(view)} AS SELECT * FROM {_ident(table)}")
            cur.execute(f"GRANT SELECT ON {_ident(view)} TO {READER}")
            rows = con.execute("SELECT count(*) FROM f").fetchall()[0][0]
            out[entity] = {"table": table, "view": view, "rows": rows, "typed": typed, "text": text}
    con.close()
    return out


def _header(path: Path) -> list[str]:
    import csv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        return [h.strip() for h in next(csv.reader(fh))]


def db_site(file_site: Path, out: Path, url_env: str = "HANDOFF_TEST_WMS_URL", entities: tuple[str, ...] | None = None) -> Path:
    """A copy of `file_site` whose sources (all, or `entities`) are read from the database named by
    environment variable `url_env`, with the columns mapped to the database's names."""
    raw = yaml.safe_load(Path(file_site).read_text())
    raw["databases"] = {"wms": {"url": {"env": url_env}, "timeout_s": 60}}
    for entity, (table, _file, columns) in TABLES.items():
        if entities is not None and entity not in entities:
            continue
        src = raw["sources"][entity]
        file_cols = src.get("columns") or {}
        mapped = {field: columns[col][0] for field, col in file_cols.items() if isinstance(col, str)}
        new = {"database": "wms"}
        view = "reporting.v_" + table.split(".")[1]
        if entity in BY_QUERY:
            cols = ", ".join(dict.fromkeys(mapped.values()))
            new["query"] = f"SELECT {cols} FROM {view} ORDER BY export_seq"
        else:
            new["table"] = view
            new["order_by"] = ["export_seq"]
        new["columns"] = mapped
        for key, value in src.items():
            if key not in ("file", "columns", "format", "delimiter", "encoding"):
                new[key] = value
        raw["sources"][entity] = new
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out
