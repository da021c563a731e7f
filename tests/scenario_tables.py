"""Build the loaded + crosswalked tables for a warehouse story, row by row, with minimal fields.

`Story(con)` creates all 9 entity tables and the 5 `linked_*` tables empty, with the schema the
loader and the crosswalk produce (derived from handoff_lib/load/contract.py), then its helpers insert
the rows a scenario needs. Defaults make an ordinary released, allocated, in-stock UPS GND order;
a scenario only writes what its story is about.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from handoff_lib.db import connect
from handoff_lib.load.contract import ENTITIES, SQL_TYPES
from handoff_lib.load.settings import Settings, load_settings

DEMO = Path(__file__).resolve().parents[1] / "parameters" / "demo.yaml"
TZ = ZoneInfo("America/New_York")
DAY = dt.date(2025, 6, 10)  # a Tuesday
LINKED = ("pick_tasks", "pack_events", "holds", "shipments", "cases")
LINK_COLUMNS = (
    ("order_id", "VARCHAR"),
    ("link_method", "VARCHAR"),
    ("link_confidence", "DOUBLE"),
    ("link_status", "VARCHAR"),
    ("link_kind", "VARCHAR"),
    ("link_key", "VARCHAR"),
)


def at(hhmm: str, day: dt.date = DAY) -> dt.datetime:
    """'14:30' on the story day (or `day`), site local time."""
    h, m = (int(x) for x in hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(h, m), TZ)


def demo_settings(**policy_changes: Any) -> Settings:
    """The demo site's settings, with `policy:` keys replaced by `policy_changes`."""
    settings = load_settings(DEMO)
    if not policy_changes:
        return settings
    raw = copy.deepcopy(settings.raw)
    raw["policy"].update(policy_changes)
    return replace(settings, raw=raw)


def entity_columns(entity: str) -> list[tuple[str, str]]:
    """(column, DuckDB type) of a loaded entity table, as the loader creates it."""
    cols = [(f.name, SQL_TYPES[f.type]) for f in ENTITIES[entity].fields]
    return cols + [("_file", "VARCHAR"), ("_line", "BIGINT")]


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """All 9 entity tables and the 5 linked_* tables, empty."""
    for name in ENTITIES:
        cols = ", ".join(f'"{c}" {t}' for c, t in entity_columns(name))
        con.execute(f"CREATE OR REPLACE TABLE {name} ({cols})")
    for name in LINKED:
        cols = ", ".join(f'"{c}" {t}' for c, t in entity_columns(name) + list(LINK_COLUMNS))
        con.execute(f"CREATE OR REPLACE TABLE linked_{name} ({cols})")


def insert(con: duckdb.DuckDBPyConnection, table: str, **values: Any) -> None:
    """Insert one row; `_file`/`_line` default to '<table>.csv' and the next line number."""
    values.setdefault("_file", f"{table.removeprefix('linked_')}.csv")
    if "_line" not in values:
        values["_line"] = con.execute(f"SELECT count(*) + 2 FROM {table}").fetchone()[0]
    cols = ", ".join(f'"{c}"' for c in values)
    marks = ", ".join("?" for _ in values)
    con.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(values.values()))


class Story:
    """A warehouse scenario on a fresh in-memory connection set to the demo site timezone."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or demo_settings()
        self.con = connect(self.settings)
        create_tables(self.con)

    def order(
        self,
        order_id: str,
        *,
        lines: int | list[tuple[str, int]] = 1,
        customer_id: str = "C-1",
        allocated: bool = True,
        stock: bool = True,
        **fields: Any,
    ) -> None:
        """An order with `lines` lines (a count, or (sku, qty) pairs), allocated and in stock unless told."""
        row = {
            "order_id": order_id,
            "customer_id": customer_id,
            "customer_name": f"Customer {customer_id}",
            "priority": 2,
            "ordered_at": at("08:00"),
            "released_at": at("09:00"),
            "release_status": "released",
            "carrier": "UPS",
            "service": "GND",
            "promised_delivery": DAY + dt.timedelta(days=2),
            "ship_complete": False,
            "order_value": 500.0,
        }
        row.update(fields)
        insert(self.con, "orders", **row)
        pairs = [(f"SKU-{i}", 5) for i in range(1, lines + 1)] if isinstance(lines, int) else lines
        for n, (sku, qty) in enumerate(pairs, start=1):
            self.line(order_id, n, sku, qty, allocated_qty=qty if allocated else 0)
            if stock:
                self.stock(sku)

    def line(self, order_id: str, line_no: int, sku: str, qty: int, **fields: Any) -> None:
        insert(self.con, "order_lines", order_id=order_id, line_no=line_no, sku=sku, qty=qty, **fields)

    def stock(self, sku: str, location: str = "A-01-01", on_hand: int = 100, **fields: Any) -> None:
        if self.con.execute("SELECT count(*) FROM inventory WHERE sku = ? AND location = ?", [sku, location]).fetchone()[0]:
            return
        insert(self.con, "inventory", sku=sku, location=location, on_hand=on_hand, allocated=0, on_hold=0, **fields)

    def _linked(self, entity: str, order_id: str | None, **values: Any) -> None:
        """The entity row and its crosswalked twin (linked when `order_id` is given)."""
        status = values.pop("link_status", "linked" if order_id else "unmatched")
        kind, key = values.pop("link_kind", None), values.pop("link_key", None)
        insert(self.con, entity, **values)
        line = self.con.execute(f"SELECT max(_line) FROM {entity}").fetchone()[0]
        insert(
            self.con,
            f"linked_{entity}",
            **values,
            _line=line,
            order_id=order_id if status == "linked" else None,
            link_method="test" if status == "linked" else None,
            link_confidence=1.0 if status == "linked" else 0.0,
            link_status=status,
            link_kind=kind,
            link_key=key,
        )

    def task(
        self,
        task_id: str,
        order_id: str | None,
        line_no: int,
        *,
        sku: str | None = None,
        required: int = 5,
        picked: int = 0,
        status: str = "open",
        **fields: Any,
    ) -> None:
        if sku is None:
            found = self.con.execute(
                "SELECT sku FROM order_lines WHERE order_id = ? AND line_no = ?", [order_id, line_no]
            ).fetchone()
            sku = found[0] if found else "SKU-X"
        fields.setdefault("updated_at", at("10:00"))
        fields.setdefault("location", "A-01-01")
        self._linked(
            "pick_tasks",
            order_id,
            task_id=task_id,
            order_ref=fields.pop("order_ref", order_id or "??"),
            line_no=line_no,
            sku=sku,
            qty_required=required,
            qty_picked=picked,
            status=status,
            **fields,
        )

    def picked(self, order_id: str, at_time: str = "11:00") -> None:
        """Every line of the order picked in full by one task each."""
        for line_no, qty in self.con.execute(
            "SELECT line_no, qty FROM order_lines WHERE order_id = ? ORDER BY line_no", [order_id]
        ).fetchall():
            self.task(
                f"T-{order_id}-{line_no}", order_id, line_no, required=qty, picked=qty, status="picked", updated_at=at(at_time)
            )

    def carton(
        self, carton_id: str, order_id: str | None, *, status: str = "packed", event_at: str = "12:00", **fields: Any
    ) -> None:
        self._linked(
            "pack_events",
            order_id,
            carton_id=carton_id,
            order_ref=fields.pop("order_ref", order_id),
            status=status,
            event_at=at(event_at),
            **fields,
        )

    def hold(
        self,
        hold_id: str,
        order_id: str | None,
        *,
        code: str | None = None,
        note: str | None = None,
        placed_at: str = "09:30",
        released_at: str | None = None,
        **fields: Any,
    ) -> None:
        self._linked(
            "holds",
            order_id,
            hold_id=hold_id,
            reference=fields.pop("reference", order_id or "??"),
            code=code,
            note=note,
            placed_at=at(placed_at),
            released_at=at(released_at) if released_at else None,
            **fields,
        )

    def shipment(
        self,
        shipment_id: str,
        order_id: str | None,
        *,
        label: str | None = "13:00",
        manifest: str | None = None,
        handed_off: str | None = None,
        **fields: Any,
    ) -> None:
        self._linked(
            "shipments",
            order_id,
            shipment_id=shipment_id,
            reference=fields.pop("reference", order_id or "??"),
            carrier=fields.pop("carrier", "UPS"),
            service=fields.pop("service", "GND"),
            tracking_no=fields.pop("tracking_no", f"1Z{shipment_id}"),
            label_created_at=at(label) if label else None,
            manifested_at=at(manifest) if manifest else None,
            handed_off_at=at(handed_off) if handed_off else None,
            **fields,
        )

    def instruction(self, customer_id: str, instruction: str, note: str | None = None) -> None:
        insert(self.con, "account_instructions", customer_id=customer_id, instruction=instruction, note=note)

    def analyse(self, now: str, day: dt.date = DAY) -> dict[str, int]:
        from handoff_lib.publish.picture import analyse

        return analyse(self.con, self.settings, at(now, day))

    def one(self, sql: str, params: list | None = None) -> Any:
        return self.con.execute(sql, params or []).fetchone()

    def order_state(self, order_id: str) -> tuple[str, str]:
        return self.one("SELECT state, reason FROM order_states WHERE order_id = ?", [order_id])

    def promise_of(self, order_id: str) -> tuple[str, str]:
        return self.one("SELECT promise_status, promise_reason FROM promise WHERE order_id = ?", [order_id])

    def blockers_of(self, order_id: str | None) -> list[dict]:
        df = self.con.execute(
            "SELECT * FROM blockers WHERE order_id IS NOT DISTINCT FROM ? ORDER BY reason, source_key", [order_id]
        ).df()
        return df.to_dict("records")
