"""The extract contract: which entities handoff reads, and the fields, types and units of each.

This module is the single source of truth for docs/extracts.md (a test keeps them in step).
A site maps its own export column names and status vocabularies onto these canonical names
in `parameters/<site>.yaml`; nothing here is specific to any one site or system.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Canonical field types. How each is parsed from text is decided in extracts.py.
#   id        identifier as the source writes it, kept verbatim; required ids may not be blank
#   text      free text (untrusted: notes, comments, names)
#   int       whole number (quantities are in eaches, the unit the WMS counts)
#   decimal   number with a fraction (money in the site currency)
#   bool      yes/no; accepted spellings set per site (`booleans:` in the site file)
#   timestamp instant; naive values are read in the site timezone, zoned values converted
#   date      calendar date in the site timezone
#   enum      one of a fixed vocabulary; the site maps its own codes onto it (`values:`)
TYPES = ("id", "text", "int", "decimal", "bool", "timestamp", "date", "enum")
SQL_TYPES = {
    "id": "VARCHAR",
    "text": "VARCHAR",
    "enum": "VARCHAR",
    "int": "BIGINT",
    "decimal": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
}  # the DuckDB column type each contract type is loaded as


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool = False
    description: str = ""
    unit: str = ""
    values: tuple[str, ...] = ()  # the canonical vocabulary of an enum
    min_value: float | None = None  # numeric fields: smallest valid value


@dataclass(frozen=True)
class Entity:
    name: str
    system: str  # oms, wms, carrier, crm: which system's URL templates its links use
    description: str
    fields: tuple[Field, ...]
    key: tuple[str, ...] = ()  # fields that identify a record; a repeated key is a conflict
    any_of: tuple[str, ...] = ()  # at least one of these must be present on every row
    required_file: bool = True
    extras: dict[str, str] = field(default_factory=dict)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)


RELEASE_STATUS = ("not_released", "released", "cancelled")
TASK_STATUS = ("open", "in_progress", "picked", "short", "cancelled")
PACK_STATUS = ("open", "packed", "exception", "cancelled")
INSTRUCTIONS = ("ship_complete", "no_substitutes", "partial_allowed", "substitutes_allowed")

ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity(
            "orders",
            "oms",
            "One row per customer order as the OMS/ERP knows it (the commercial promise).",
            (
                Field("order_id", "id", True, "Order number as the OMS writes it, e.g. SO-0012345"),
                Field("customer_id", "id", True, "Account / sold-to number"),
                Field("customer_name", "text", False, "Account name (untrusted text)"),
                Field("customer_po", "id", False, "The customer's purchase-order reference"),
                Field("channel", "text", False, "Sales channel, e.g. EDI, WEB, PHONE"),
                Field(
                    "priority",
                    "int",
                    False,
                    "Customer priority tier, 1 = highest",
                    "tier",
                    min_value=1,
                ),
                Field("ordered_at", "timestamp", True, "When the customer placed the order"),
                Field("released_at", "timestamp", False, "When the order was released to the warehouse"),
                Field(
                    "release_status",
                    "enum",
                    True,
                    "Where the OMS says the order is",
                    values=RELEASE_STATUS,
                ),
                Field("carrier", "text", False, "Carrier code, e.g. UPS (matches `cutoffs:`)"),
                Field("service", "text", False, "Carrier service, e.g. GND (matches `cutoffs:`)"),
                Field("ship_by", "timestamp", False, "Explicit ship-by time; overrides the carrier cutoff"),
                Field("promised_delivery", "date", False, "Delivery date promised to the customer"),
                Field("ship_complete", "bool", False, "Order must ship complete (no partial shipments)"),
                Field("cancelled_at", "timestamp", False, "When the order was cancelled"),
                Field("order_value", "decimal", False, "Order value", "site currency", min_value=0),
            ),
            key=("order_id",),
        ),
        Entity(
            "order_lines",
            "oms",
            "One row per order line.",
            (
                Field("order_id", "id", True, "Order number as the OMS writes it"),
                Field("line_no", "int", True, "Line number within the order", min_value=0),
                Field("sku", "id", True, "Item number"),
                Field("qty", "int", True, "Ordered quantity", "each", min_value=1),
                Field("allocated_qty", "int", False, "Quantity the ERP has allocated", "each", min_value=0),
                Field("substitution_allowed", "bool", False, "A substitute SKU may be shipped"),
                Field("ship_by", "timestamp", False, "Per-line ship-by deadline, when the OMS has one"),
                Field("ship_from", "id", False, "Site, warehouse or seller that fulfils the line, when several do"),
                Field("unit_price", "decimal", False, "Price per each", "site currency", min_value=0),
            ),
            key=("order_id", "line_no"),
        ),
        Entity(
            "inventory",
            "wms",
            "Stock by SKU and location at extract time.",
            (
                Field("sku", "id", True, "Item number"),
                Field("location", "id", True, "Storage location, e.g. A-12-03"),
                Field("on_hand", "int", True, "Physical quantity", "each", min_value=0),
                Field("allocated", "int", False, "Quantity promised to open tasks", "each", min_value=0),
                Field("on_hold", "int", False, "Quantity blocked (QA, damage)", "each", min_value=0),
            ),
            key=("sku", "location"),
        ),
        Entity(
            "pick_tasks",
            "wms",
            "One row per WMS pick task, in its latest state.",
            (
                Field("task_id", "id", True, "WMS task number"),
                Field("pick_ticket", "id", False, "Pick ticket, often the order number with a line suffix"),
                Field("order_ref", "id", True, "The order number as the WMS writes it"),
                Field("line_no", "int", False, "Order line the task picks", min_value=0),
                Field("sku", "id", True, "Item number to pick"),
                Field("location", "id", False, "Pick location"),
                Field("wave", "id", False, "Wave the task was released in"),
                Field("qty_required", "int", True, "Quantity to pick", "each", min_value=0),
                Field("qty_picked", "int", False, "Quantity picked so far", "each", min_value=0),
                Field("status", "enum", True, "Task status", values=TASK_STATUS),
                Field("substituted_sku", "id", False, "SKU actually picked when substituted"),
                Field("updated_at", "timestamp", False, "Last change of the task"),
                Field("note", "text", False, "Picker / exception note (untrusted text)"),
            ),
            key=("task_id",),
        ),
        Entity(
            "pack_events",
            "wms",
            "Packing events per carton.",
            (
                Field("carton_id", "id", True, "Carton / LPN number"),
                Field("order_ref", "id", False, "Order number as the pack station writes it"),
                Field("pick_ticket", "id", False, "Pick ticket packed into the carton"),
                Field("status", "enum", True, "Carton status", values=PACK_STATUS),
                Field("exception_code", "id", False, "Pack exception code, e.g. DIMS, NOCARTON"),
                Field("note", "text", False, "Packer note (untrusted text)"),
                Field("event_at", "timestamp", False, "When the event happened"),
            ),
            key=("carton_id",),
            any_of=("order_ref", "pick_ticket"),
        ),
        Entity(
            "holds",
            "wms",
            "Holds placed on an order, ticket or PO, open or released.",
            (
                Field("hold_id", "id", False, "Hold number; the file line is used when absent"),
                Field("reference", "id", True, "What is held: order id, PO or pick ticket as written"),
                Field("code", "id", False, "Hold code; may be blank"),
                Field("note", "text", False, "Free-text reason (untrusted text)"),
                Field("placed_at", "timestamp", True, "When the hold was placed"),
                Field("released_at", "timestamp", False, "When it was released; blank = still open"),
                Field("placed_by", "text", False, "Who placed it"),
            ),
            key=("hold_id",),
        ),
        Entity(
            "shipments",
            "carrier",
            "Carrier shipments (labels, manifests, hand-offs).",
            (
                Field("shipment_id", "id", True, "Shipment number in the carrier system"),
                Field("reference", "id", True, "What the carrier system cites: carton, pick ticket or order"),
                Field("carrier", "text", True, "Carrier code"),
                Field("service", "text", False, "Carrier service"),
                Field("tracking_no", "id", False, "Tracking number"),
                Field("label_created_at", "timestamp", False, "Label printed"),
                Field("manifested_at", "timestamp", False, "Shipment manifested / closed out"),
                Field("handed_off_at", "timestamp", False, "Picked up by / handed to the carrier"),
            ),
            key=("shipment_id",),
        ),
        Entity(
            "cases",
            "crm",
            "Customer-service cases.",
            (
                Field("case_id", "id", True, "CRM case number"),
                Field("reference", "id", True, "What the case cites: order id, PO or tracking number"),
                Field("opened_at", "timestamp", True, "Case opened"),
                Field("closed_at", "timestamp", False, "Case closed; blank = open"),
                Field("case_type", "text", False, "Case type, e.g. WISMO, CHANGE"),
                Field("text", "text", False, "Case text (untrusted text)"),
            ),
            key=("case_id",),
            required_file=False,
        ),
        Entity(
            "account_instructions",
            "crm",
            "Standing account instructions.",
            (
                Field("customer_id", "id", True, "Account number, as in orders.customer_id"),
                Field("instruction", "enum", True, "The instruction", values=INSTRUCTIONS),
                Field("note", "text", False, "Free text (untrusted text)"),
            ),
            key=("customer_id", "instruction"),
            required_file=False,
        ),
    )
}


def contract_tables() -> str:
    """The per-entity field tables of docs/extracts.md, generated from ENTITIES."""
    out: list[str] = []
    for e in ENTITIES.values():
        req = "required" if e.required_file else "optional"
        out += [f"### `{e.name}` ({e.system.upper()}, {req} file)", "", e.description, ""]
        if e.key:
            out += [f"Key: {', '.join(f'`{k}`' for k in e.key)} (a repeated key with other values is rejected)."]
        if e.any_of:
            out += [f"Each row needs at least one of {', '.join(f'`{k}`' for k in e.any_of)}."]
        out += ["", "| field | type | required | unit / values | meaning |", "|---|---|---|---|---|"]
        for f in e.fields:
            extra = ", ".join(f"`{v}`" for v in f.values) if f.values else f.unit
            if f.min_value is not None:
                extra = (extra + "; " if extra else "") + f">= {f.min_value:g}"
            out.append(f"| `{f.name}` | {f.type} | {'yes' if f.required else 'no'} | {extra} | {f.description} |")
        out.append("")
    return "\n".join(out)
