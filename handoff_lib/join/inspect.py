"""Read a folder of extracts and draft a site file for it (`handoff inspect FOLDER`; docs/extracts.md,
"Your own site in three steps").

What it works out, from the files alone:

* the contract entity each file most likely is (from its columns and values), with the runner-up;
* for each contract field the column that most likely holds it (its name, in several spellings and languages,
  and its values: dates, quantities, money, tracking numbers, SKU- and location-like codes), with a confidence;
* every date and timestamp format a column uses;
* the distinct values of status-like columns with a proposed mapping onto the contract's vocabulary, and the
  derived release status where the release date tells it better than the status word;
* identifier spellings across files and the normalisation rules that join them, checked by trying the join and
  counting the references each rule links.

The draft uses only keys `settings.load_settings` accepts, and every line says why. Whatever it is unsure of is
marked `# TODO`, and `Draft.todos` lists the same places.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import json
import os
import re
import unicodedata
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from handoff_lib.errors import HandoffError
from handoff_lib.load.contract import ENTITIES, Entity, Field
from handoff_lib.load.settings import IdRule, _separator_class

from .identifiers import norm_expr

SUFFIXES = (".csv", ".txt", ".tsv", ".xlsx", ".parquet")
MAX_ROWS = 200_000  # rows profiled per file (the first ones)
SURE = 0.7  # a proposal at or above this confidence is not marked TODO
MARGIN = 0.08  # ... unless the runner-up column is this close
ENTITY_MIN = 0.45  # a file scoring below this for every entity is left out

# --- names ---------------------------------------------------------------------------------------------------
# Words of other languages (and abbreviations) read as the English word the synonyms below use.
WORDS = {
    "no": "id", "nr": "id", "num": "id", "number": "id", "nummer": "id", "numero": "id", "#": "id", "key": "id",
    "auftrag": "order", "bestellung": "order", "pedido": "order", "commande": "order", "ordine": "order", "ord": "order",
    "artikel": "item", "articulo": "item", "artigo": "item", "article": "item", "produto": "item", "produit": "item",
    "material": "item", "matnr": "item", "part": "item", "articolo": "item",
    "menge": "qty", "quantity": "qty", "cantidad": "qty", "quantidade": "qty", "quantite": "qty", "quantita": "qty",
    "anzahl": "qty", "units": "qty", "pcs": "qty",
    "lagerplatz": "location", "ubicacao": "location", "platz": "location", "ubicacion": "location", "localizacao": "location",
    "emplacement": "location", "loc": "location", "bin": "location", "slot": "location", "ubicazione": "location",
    "kunde": "customer", "cliente": "customer", "client": "customer", "cust": "customer", "debitor": "customer",
    "status": "status", "stat": "status", "estado": "status", "statut": "status", "situacao": "status", "stato": "status",
    "state": "status",
    "sendung": "shipment", "envio": "shipment", "expedition": "shipment", "spedizione": "shipment", "shp": "shipment",
    "spediteur": "carrier", "transportadora": "carrier", "transportista": "carrier", "transporteur": "carrier",
    "vettore": "carrier", "scac": "carrier",
    "karton": "carton", "caja": "carton", "caixa": "carton", "colis": "carton", "lpn": "carton", "sscc": "carton",
    "ctn": "carton", "package": "carton", "box": "carton",
    "sperre": "hold", "bloqueo": "hold", "bloqueio": "hold", "blocage": "hold",
    "datum": "date", "fecha": "date", "dt": "date", "ts": "time", "timestamp": "time", "zeit": "time", "hora": "time",
    "preis": "price", "precio": "price", "preco": "price", "prix": "price", "prezzo": "price",
    "wert": "value", "valor": "value", "valeur": "value", "amount": "value", "betrag": "value", "importe": "value",
    "bemerkung": "note", "kommentar": "note", "comentario": "note", "observacao": "note", "remarque": "note",
    "comment": "note", "comments": "note", "remark": "note", "remarks": "note", "notes": "note",
    "linea": "line", "zeile": "line", "posicion": "line", "position": "line", "pos": "line", "ln": "line",
    "seq": "line", "ligne": "line", "riga": "line",
    "qc": "hold", "blocked": "hold", "gesperrt": "hold",
    "lieferung": "delivery", "entrega": "delivery", "livraison": "delivery",
    "req": "required", "reqd": "required", "soll": "required",
    "alloc": "allocated", "reserved": "allocated", "reserviert": "allocated", "reservado": "allocated",
    "oh": "on hand", "onhand": "on hand", "bestand": "on hand", "stock": "on hand", "existencia": "on hand",
    "upd": "update", "updated": "update", "modified": "update", "changed": "update",
    "canceled": "cancel", "cancelled": "cancel", "cancellation": "cancel", "storno": "cancel", "cxl": "cancel",
    "svc": "service", "servicio": "service", "servico": "service",
    "prio": "priority", "prioritaet": "priority", "prioridad": "priority", "prioridade": "priority",
    "sku": "item", "items": "item",
    "tarea": "task", "aufgabe": "task", "tache": "task", "tarefa": "task", "compito": "task", "pickauftrag": "task",
    "zustand": "status",
    "onda": "wave", "welle": "wave", "vague": "wave",
    "solicitada": "required", "requerida": "required", "pedida": "required",
    "recogida": "picked", "pickeada": "picked", "separada": "picked", "kommissioniert": "picked", "gepickt": "picked",
    "actualizado": "update", "atualizado": "update", "geaendert": "update", "modifie": "update",
    "seguimiento": "tracking", "rastreio": "tracking", "sendungsnummer": "tracking",
}
# Contract field -> names that mean it (as normalised by `name_tokens`).
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "orders": {
        "order_id": ("order id", "sales order", "so", "so id", "sales order id", "order", "order ref"),
        "customer_id": ("customer id", "customer", "bill to", "sold to", "account", "account id", "ship to", "customer account"),
        "customer_name": ("customer name", "sold to name", "bill to name", "account name", "name", "company"),
        "customer_po": ("customer po", "po", "po id", "purchase order", "customer order", "customer reference", "customer ref"),
        "channel": ("channel", "sales channel", "order source", "source", "origin"),
        "priority": ("priority", "priority tier", "tier", "priority tier id"),
        "ordered_at": ("ordered at", "order date", "order time", "entered", "created", "created at", "order purchase time",
                       "purchase time", "order created", "placed", "entry date", "order entry"),
        "released_at": ("released at", "release date", "release time", "release", "released", "approved at", "approved",
                        "order approved at"),
        "release_status": ("release status", "status", "order status", "rel status"),
        "carrier": ("carrier", "carrier id", "carrier code", "ship via", "shipper", "forwarder"),
        "service": ("service", "service level", "service code", "ship method", "shipping method", "service type"),
        "ship_by": ("ship by", "must ship by", "ship by override", "ship by date", "ship deadline", "latest ship date"),
        "promised_delivery": ("promised delivery", "promise date", "promised date", "estimated delivery date",
                              "delivery date", "due date", "requested delivery date", "promised delivery date"),
        "ship_complete": ("ship complete", "complete shipment", "ship complete flag", "no partial"),
        "cancelled_at": ("cancel at", "cancel date", "cancel time"),
        "order_value": ("order value", "order total", "total", "value", "order value", "net value", "total value"),
    },
    "order_lines": {
        "order_id": ("order id", "sales order", "so", "sales order id", "order"),
        "line_no": ("line id", "line", "order item id", "item id", "order line", "line item"),
        "sku": ("item", "item id", "item code", "product id", "product", "product code", "sku"),
        "qty": ("qty", "qty ordered", "order qty", "ordered qty", "qty order"),
        "allocated_qty": ("allocated qty", "qty allocated", "allocated"),
        "substitution_allowed": ("substitution allowed", "sub ok", "subs ok", "substitute ok", "allow sub", "substitution"),
        "ship_by": ("ship by", "shipping limit date", "ship limit date", "ship deadline", "must ship by"),
        "ship_from": ("ship from", "seller id", "seller", "warehouse", "warehouse id", "site", "plant", "fulfilment center"),
        "unit_price": ("unit price", "price", "price each", "net price", "unit cost"),
    },
    "inventory": {
        "sku": ("item", "item id", "item code", "product id", "product"),
        "location": ("location", "location id", "storage location", "from location"),
        "on_hand": ("on hand", "qty on hand", "on hand qty", "physical", "qty"),
        "allocated": ("allocated", "qty allocated", "allocated qty"),
        "on_hold": ("on hold", "qty hold", "hold", "hold qty", "damaged"),
    },
    "pick_tasks": {
        "task_id": ("task id", "task", "pick task", "pick task id"),
        "pick_ticket": ("pick ticket", "ticket", "pick ticket id", "pick list", "pick slip"),
        "order_ref": ("order ref", "order", "order id", "order reference"),
        "line_no": ("line id", "line", "order line"),
        "sku": ("item", "item id", "item code", "product id", "product"),
        "location": ("location", "from location", "pick location", "location id"),
        "wave": ("wave", "wave id", "batch"),
        "qty_required": ("qty required", "required qty", "qty to pick", "required", "qty"),
        "qty_picked": ("qty picked", "picked qty", "qty pick", "picked"),
        "status": ("status", "task status"),
        "substituted_sku": ("substituted item", "sub item", "substitute item", "subs item", "substituted sku"),
        "updated_at": ("update at", "last update", "update", "last update time", "changed at", "last change", "time",
                       "update time"),
        "note": ("note", "pick note", "picker note"),
    },
    "pack_events": {
        "carton_id": ("carton id", "carton", "container", "container id", "carton number"),
        "order_ref": ("order ref", "order", "order id"),
        "pick_ticket": ("pick ticket", "ticket", "pick ticket id"),
        "status": ("status", "pack status", "carton status"),
        "exception_code": ("exception code", "exc code", "exception", "exception reason"),
        "note": ("note", "packer note", "pack note"),
        "event_at": ("event at", "event time", "scan time", "time", "packed at", "pack time", "event date"),
    },
    "holds": {
        "hold_id": ("hold id", "hold"),
        "reference": ("reference", "held ref", "hold ref", "ref", "held reference"),
        "code": ("code", "hold code", "reason code", "reason"),
        "note": ("note", "hold note", "reason text"),
        "placed_at": ("placed at", "placed", "placed time", "hold date", "hold placed"),
        "released_at": ("released at", "released", "released time", "release date", "cleared"),
        "placed_by": ("placed by", "user", "created by"),
    },
    "shipments": {
        "shipment_id": ("shipment id", "shipment", "bol", "bill of lading"),
        "reference": ("reference", "ref", "shipment reference"),
        "carrier": ("carrier", "carrier code", "carrier id"),
        "service": ("service", "service code", "service level"),
        "tracking_no": ("tracking id", "tracking", "tracking pro", "awb", "pro id", "tracking number"),
        "label_created_at": ("label created", "label printed", "label date", "label created at", "label time"),
        "manifested_at": ("manifested", "manifest closed", "manifested at", "manifest date", "manifest time"),
        "handed_off_at": ("handed off at", "picked up", "pickup scan", "pickup time", "delivered carrier date",
                          "order delivered carrier date", "carrier pickup", "handed over"),
    },
    "cases": {
        "case_id": ("case id", "case", "case number", "ticket id", "ticket"),
        "reference": ("reference", "related to", "regarding", "ref"),
        "opened_at": ("opened", "opened at", "created", "created at", "open date"),
        "closed_at": ("closed", "closed at", "close date", "resolved"),
        "case_type": ("case type", "type", "category"),
        "text": ("text", "description", "subject", "body", "summary"),
    },
    "account_instructions": {
        "customer_id": ("account", "customer id", "customer", "account id"),
        "instruction": ("instruction", "instructions", "rule"),
        "note": ("note",),
    },
}
# File-name words that suggest an entity (the file name counts less than its columns).
FILE_WORDS = {
    "orders": ("order", "orders", "header", "pedidos", "auftraege"),
    "order_lines": ("line", "lines", "item", "items", "detail", "positions"),
    "inventory": ("inventory", "stock", "onhand", "bestand"),
    "pick_tasks": ("pick", "picks", "task", "tasks"),
    "pack_events": ("pack", "carton", "cartons", "packing"),
    "holds": ("hold", "holds"),
    "shipments": ("shipment", "shipments", "carrier", "ship", "tracking"),
    "cases": ("case", "cases", "crm", "tickets"),
    "account_instructions": ("instruction", "instructions", "account"),
}

# --- values --------------------------------------------------------------------------------------------------
INT_RE = re.compile(r"^[+-]?\d+(\.0+)?$")
NUM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
CODE_INT_RE = re.compile(r"^([A-Za-z]{1,3})\s*-?\s*(\d{1,2})$")  # P1, TIER 2: an int field with a value map
ISO_RE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?$")
ZONED_RE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
TIME_FORMATS = ("%H:%M:%S", "%H:%M", "%I:%M %p", "%I:%M:%S %p", "%I:%M%p")
DATE_FORMATS = ("%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y", "%m-%d-%Y", "%Y%m%d", "%m/%d/%y", "%d/%m/%y",
                "%d.%m.%y", "%d-%b-%Y", "%d %b %Y")
TRACKING = (re.compile(r"^1Z[0-9A-Z]{16}$"), re.compile(r"^\d{12}$|^\d{15}$|^\d{20,22}$"), re.compile(r"^[A-Z]{2}\d{9}[A-Z]{2}$"),
            re.compile(r"^\d{10}$"))
LOCATION_RE = re.compile(r"^[A-Z]{1,3}[-. ]?\d{1,3}([-. ]\d{1,3}){1,3}$")
SKU_RE = re.compile(r"^[A-Z]{2,5}[-_]?\d{3,8}[A-Z]?$")
CARRIERS = {"UPS", "FEDEX", "FDX", "USPS", "DHL", "ODFL", "LTL", "TNT", "GLS", "DPD", "HERMES", "CORREIOS", "XPO", "SAIA",
            "ESTES", "ONTRAC", "LASERSHIP", "PUROLATOR", "CANPAR", "ROYALMAIL", "POSTNL", "COLISSIMO", "CHRONOPOST"}
SERVICES = {"GND", "GROUND", "GRD", "2DA", "2DAY", "NDA", "1DA", "PRIORITY", "EXPRESS", "STANDARD", "STD", "ECONOMY",
            "OVERNIGHT", "FREIGHT", "LTL", "3DS", "SAVER", "FIRST", "PARCEL"}
YES = {"y", "yes", "true", "t", "1", "x", "j", "ja", "si", "sim", "oui"}
NO = {"n", "no", "false", "f", "0", "nein", "nao", "non"}

# enum vocabularies: (pattern on the lower-cased value, canonical value), first match wins
VOCAB: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("orders", "release_status"): (
        (r"cancel|^cxl$|^cnl$|void|deleted|storn|anul", "cancelled"),
        (r"^(new|open|created|entered|pending|booked|not.?released|unreleased|hold|on.?hold|draft)$", "not_released"),
        ((r"^(rel|released|approved|invoiced|processing|shipped|delivered|picking|in.?progress|allocated|waved|complete|"
          r"completed|closed|packed|picked|fulfilled)$"), "released"),
    ),
    ("pick_tasks", "status"): (
        (r"cancel|^cxl$|void|deleted|anulad|storn|annul", "cancelled"),
        (r"short|falta|fehlmenge|manquant|^corto", "short"),
        (r"progress|started|active|picking|wip|^in.?work$|en curso|en proceso|em andamento|in bearbeitung|en cours", "in_progress"),
        ((r"^(picked|complete|completed|done|closed|confirmed|finished|recogid[ao]|separad[ao]|kommissioniert|erledigt|"
          r"termin[ée]e?|preparad[ao])$"), "picked"),
        (r"^(open|new|created|released|assigned|pending|ready|waiting|abiert[ao]|abert[ao]|offen|ouvert[e]?|pendiente)$", "open"),
    ),
    ("pack_events", "status"): (
        (r"cancel|^cxl$|void|deleted", "cancelled"),
        (r"^exc|exception|error|problem|fault", "exception"),
        (r"^(packed|closed|complete|completed|done|sealed|shipped)$", "packed"),
        (r"^(open|new|created|in.?progress|packing)$", "open"),
    ),
    ("account_instructions", "instruction"): (
        (r"\bno\b.*subs?|subs?\w*.*\b(not|no)\b|no.?subs?", "no_substitutes"),
        (r"subs?\w*.*\b(ok|allowed|yes|fine)\b", "substitutes_allowed"),
        (r"partial", "partial_allowed"),
        (r"complete", "ship_complete"),
    ),
}


@dataclass
class Column:
    """What one column of a file holds."""

    name: str
    tokens: str  # the name, normalised (`name_tokens`)
    values: list[str]  # non-blank values as read (stripped), in file order
    n_rows: int
    distinct: int
    share: dict[str, float] = field(default_factory=dict)  # int, num, code_int, ts, date, bool, tracking, location, sku, ...
    ts_formats: dict[str, int] = field(default_factory=dict)  # format (or "ISO", "ISO with zone") -> values using it
    has_time: bool = False  # a date-like column with times other than midnight

    @property
    def blank_share(self) -> float:
        return 1 - len(self.values) / self.n_rows if self.n_rows else 1.0


@dataclass
class Extract:
    """One file of the folder as read."""

    path: Path
    format: str
    encoding: str
    delimiter: str
    columns: list[Column]
    n_rows: int
    notes: list[str] = field(default_factory=list)  # why the encoding / delimiter

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass
class Proposal:
    """A contract field's proposed source: a column, a constant or derive rules, with confidence and why."""

    field: str
    column: str | None = None
    constant: str | None = None
    derive: list[dict] | None = None
    confidence: float = 0.0
    why: str = ""
    todo: bool = False


@dataclass
class SourceDraft:
    entity: str
    extract: Extract | None
    score: float
    runner_up: str
    fields: dict[str, Proposal] = field(default_factory=dict)
    values: dict[str, dict[str, tuple[str, bool, str]]] = field(default_factory=dict)  # field -> {code: (canon, todo, why)}
    timestamp_formats: list[str] = field(default_factory=list)
    date_formats: list[str] = field(default_factory=list)
    format_notes: list[str] = field(default_factory=list)
    why: str = ""


@dataclass
class Draft:
    """The draft site file and what it is unsure of."""

    text: str
    sources: dict[str, SourceDraft]
    identifiers: dict[str, tuple[IdRule, int, int, str]]  # kind -> (rule, references linked, of, why)
    todos: list[str]
    left_out: list[str]


# --- reading -------------------------------------------------------------------------------------------------


def _encoding(data: bytes) -> tuple[str, str]:
    """The encoding to declare, and why."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "UTF-16 byte-order mark"
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8", "UTF-8 byte-order mark"
    bad = good = 0
    for line in data.split(b"\n"):
        if max(line, default=0) < 0x80:
            continue
        try:
            line.decode("utf-8")
            good += 1
        except UnicodeDecodeError:
            bad += 1
    if bad and not good:
        return "cp1252", f"{bad} line(s) with bytes that are not UTF-8 and none that are: Windows-1252"
    if bad:
        return "utf-8", f"UTF-8 ({good} line(s) of UTF-8 text; {bad} with stray bytes the load flags as Windows-1252)"
    return "utf-8", "UTF-8" if good else "plain ASCII"


def _delimiter(text: str) -> str:
    head = "\n".join(text.splitlines()[:50])
    try:
        return csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        first = head.splitlines()[0] if head else ""
        return max(",;\t|", key=first.count)


def read_extract(path: Path) -> Extract:
    """Every value of `path` as text (the first MAX_ROWS rows), with its encoding and delimiter."""
    suffix = path.suffix.lower()
    rows: list[list[str]]
    notes: list[str] = []
    enc, delim = "utf-8", ","
    if suffix in (".csv", ".txt", ".tsv"):
        data = path.read_bytes()
        enc, why = _encoding(data)
        text = data.decode("utf-8-sig" if enc == "utf-8" else enc, errors="replace")
        delim = _delimiter(text)
        notes.append(f"encoding: {why}")
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
        header = next(reader, [])
        rows = []
        for i, r in enumerate(reader):
            if i >= MAX_ROWS:
                break
            rows.append(r)
        fmt = "csv"
    elif suffix == ".xlsx":
        import pandas as pd

        df = pd.read_excel(path, dtype=str, keep_default_na=False)
        header, rows, fmt = [str(c) for c in df.columns], df.head(MAX_ROWS).astype(str).values.tolist(), "xlsx"
    elif suffix == ".parquet":
        con = duckdb.connect()
        rel = con.sql("SELECT * FROM read_parquet(?) LIMIT ?", params=[str(path), MAX_ROWS])
        header = list(rel.columns)
        casts = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in header)
        rows = [["" if v is None else v for v in r] for r in
                con.execute(f"SELECT {casts} FROM read_parquet(?) LIMIT ?", [str(path), MAX_ROWS]).fetchall()]
        fmt = "parquet"
    else:
        raise HandoffError(f"{path}: cannot inspect a {suffix} file (CSV, XLSX or Parquet)")
    header = [h.strip() for h in header]
    while header and header[-1] == "":
        header.pop()
    cols = []
    for i, name in enumerate(header):
        values = [r[i].strip() for r in rows if i < len(r) and r[i] is not None and r[i].strip() != ""]
        cols.append(_profile(name, values, len(rows)))
    return Extract(path, fmt, enc, delim, cols, len(rows), notes)


def name_tokens(name: str) -> str:
    """'OrderNo' -> 'order id', 'QTY_OH' -> 'qty on hand', 'Tracking/PRO' -> 'tracking pro'."""
    name = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))  # Artículo -> Articulo
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", name.replace("#", " # "))
    parts = [p for p in re.split(r"[^A-Za-z0-9#]+", s.lower()) if p]
    out = []
    for p in parts:
        out.extend(WORDS.get(p, p).split())
    return " ".join(out)


ALL_FORMATS = tuple(f"{d} {t}".strip() for d in DATE_FORMATS for t in ("", *TIME_FORMATS))
_PARTS = {"%m": r"\d{1,2}", "%d": r"\d{1,2}", "%H": r"\d{1,2}", "%I": r"\d{1,2}", "%M": r"\d{2}", "%S": r"\d{2}",
          "%Y": r"\d{4}", "%y": r"\d{2}", "%b": r"[A-Za-z]{3}", "%p": r"\s*[AaPp][Mm]"}


def _format_re(fmt: str) -> re.Pattern:
    """A quick regular expression of a strptime format: only values it matches go to strptime (which is slow)."""
    out, i = "", 0
    while i < len(fmt):
        if fmt[i] == "%" and fmt[i:i + 2] in _PARTS:
            out += _PARTS[fmt[i:i + 2]]
            i += 2
        else:
            out += r"\s*" if fmt[i] == " " else re.escape(fmt[i])
            i += 1
    return re.compile(out)


FORMAT_RES = {f: _format_re(f) for f in ALL_FORMATS}


def fitting_formats(v: str, dates_only: bool = False) -> list[str]:
    """The strptime formats (of ALL_FORMATS) that read `v`."""
    out = []
    for fmt, rx in FORMAT_RES.items():
        if dates_only and "%H" in fmt or dates_only and "%I" in fmt:
            continue
        if rx.fullmatch(v):
            try:
                dt.datetime.strptime(v, fmt)
                out.append(fmt)
            except ValueError:
                pass
    return out


def _ts_format(v: str) -> str | None:
    """The format a timestamp or date value is written in ('ISO', 'ISO with zone' or a strptime format)."""
    if ISO_RE.match(v):
        return "ISO with zone" if ZONED_RE.search(v) and "-" in v[:8] else "ISO"
    fits = fitting_formats(v)
    return fits[0] if fits else None


def _profile(name: str, values: list[str], n_rows: int) -> Column:
    col = Column(name, name_tokens(name), values, n_rows, len(set(values)))
    sample = values[:2000]
    n = len(sample) or 1

    def share(pred) -> float:
        return sum(1 for v in sample if pred(v)) / n

    col.share = {
        "int": share(lambda v: bool(INT_RE.match(v))),
        "num": share(lambda v: bool(NUM_RE.match(v)) or bool(re.match(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$", v))),
        "code_int": share(lambda v: bool(CODE_INT_RE.match(v))),
        "bool": share(lambda v: v.lower() in YES | NO),
        "tracking": share(lambda v: any(p.match(v) for p in TRACKING)),
        "location": share(lambda v: bool(LOCATION_RE.match(v))),
        "sku": share(lambda v: bool(SKU_RE.match(v))),
        "carrier": share(lambda v: v.upper() in CARRIERS),
        "service": share(lambda v: v.upper() in SERVICES),
        "spaces": share(lambda v: " " in v),
        "long": share(lambda v: len(v) > 40),
    }
    fmts: Counter[str] = Counter()
    midnight = True
    for v in sample:
        f = _ts_format(v) if re.match(r"^\d", v) and (re.search(r"[-/.: ]", v) or re.fullmatch(r"\d{8}|\d{14}", v)) else None
        if f:
            fmts[f] += 1
            if re.search(r"[ T](?!0{1,2}:00(:00)?\b)\d{1,2}:\d{2}", v):
                midnight = False
    col.ts_formats = dict(fmts)
    col.share["ts"] = sum(fmts.values()) / n if sample else 0.0
    col.has_time = not midnight
    return col


# --- scoring -------------------------------------------------------------------------------------------------


def name_score(tokens: str, synonyms: tuple[str, ...], contract_name: str) -> tuple[float, str]:
    """How well a column name means a field (1 = exactly), and the synonym that matched."""
    if tokens == name_tokens(contract_name) or tokens.replace(" ", "_") == contract_name:
        return 1.0, contract_name
    words = tokens.split()
    best, why = 0.0, ""
    for syn in synonyms:
        s = syn.split()
        if tokens == syn:
            return 0.95, syn
        if all(w in words for w in s):
            score = 0.6 + 0.3 * len(s) / len(words)
            if score > best:
                best, why = score, syn
    return best, why


def type_score(f: Field, col: Column) -> float:
    """How well a column's values suit a field's type and meaning (0..1)."""
    if not col.values:
        return 0.4  # an empty column: only its name can tell
    s = col.share
    ts = s["ts"]
    if f.type == "timestamp":
        return ts
    if f.type == "date":
        return ts * (0.75 if col.has_time else 1.0)
    if ts > 0.5:
        return 0.05
    if f.type == "int":
        return max(s["int"], s["code_int"] * 0.95 if col.distinct <= 20 else 0)
    if f.type == "decimal":
        return s["num"] * (1.0 if s["int"] < 0.95 else 0.8)
    if f.type == "bool":
        return s["bool"] if col.distinct <= 4 else 0.0
    if f.type == "enum":
        return 1.0 if col.distinct <= 25 and s["int"] < 1.0 else (0.6 if col.distinct <= 25 else 0.1)
    if f.type == "text":
        return 1.0 if s["spaces"] > 0.3 else 0.7
    # id
    score = 0.9 if s["spaces"] < 0.1 and s["long"] < 0.05 else 0.3
    if s["num"] > 0.9 and s["int"] < 0.9:
        score = 0.2  # prices, not identifiers
    if f.name in ("tracking_no",):
        score = max(score * 0.6, s["tracking"])
    if f.name == "location":
        score = max(score * 0.7, s["location"])
    if f.name in ("sku", "substituted_sku"):
        score = max(score * 0.8, s["sku"])
    return score


def field_score(entity: Entity, f: Field, col: Column) -> tuple[float, str]:
    """Confidence that `col` holds `entity.f`, and why."""
    ns, syn = name_score(col.tokens, SYNONYMS[entity.name].get(f.name, ()), f.name)
    tscore = type_score(f, col)
    extra = 0.0
    if f.name == "carrier" and col.share.get("carrier", 0) > 0.5:
        extra = 0.3
    if f.name == "service" and col.share.get("service", 0) > 0.5:
        extra = 0.3
    if f.name == "tracking_no" and col.share.get("tracking", 0) > 0.5:
        extra = 0.3
    if f.name == "location" and col.share.get("location", 0) > 0.7:
        extra = 0.15
    if entity.key == (f.name,) and col.values:
        unique = col.distinct / len(col.values)
        extra += 0.1 if unique >= 0.98 else (0.0 if unique >= 0.9 else -0.3)  # a few repeats: duplicate exports
    if ns == 0:
        conf = min(0.6, 0.35 * tscore + extra)
    else:
        conf = 0.65 * ns + 0.35 * tscore + extra
    if tscore < 0.3:
        conf *= 0.5
    conf = max(0.0, min(1.0, conf))
    why = []
    if ns:
        why.append(f"name ~ '{syn}'" if syn != f.name else "name ~ the contract's")
    why.append(_value_why(f, col))
    return conf, "; ".join(w for w in why if w)


def _value_why(f: Field, col: Column) -> str:
    if not col.values:
        return "column is empty"
    s = col.share
    if f.type in ("timestamp", "date"):
        return f"{s['ts']:.0%} read as {'dates' if f.type == 'date' else 'times'}"
    if f.type == "int":
        return f"{max(s['int'], s['code_int']):.0%} whole numbers" + (" or codes like " + col.values[0] if s["code_int"] > 0.5 else "")
    if f.type == "decimal":
        return f"{s['num']:.0%} numbers"
    if f.type == "enum":
        return f"{col.distinct} distinct values"
    if f.name == "tracking_no" and s["tracking"] > 0.5:
        return f"{s['tracking']:.0%} look like carrier tracking numbers"
    if f.name == "carrier" and s["carrier"] > 0.5:
        return f"{s['carrier']:.0%} are carrier codes"
    if f.name == "location" and s["location"] > 0.5:
        return f"{s['location']:.0%} look like locations"
    if f.name in ("sku", "substituted_sku") and s["sku"] > 0.5:
        return f"{s['sku']:.0%} look like SKUs"
    if f.type == "id":
        return f"{col.distinct} distinct of {len(col.values)}" + (" (unique)" if col.distinct == len(col.values) else "")
    return ""


def map_fields(entity: Entity, ex: Extract) -> dict[str, Proposal]:
    """Each field's best column in `ex` (one column per field, each column used once), with confidence."""
    scored = []
    for f in entity.fields:
        for col in ex.columns:
            conf, why = field_score(entity, f, col)
            if conf > 0.3:
                scored.append((conf, f.name, col.name, why))
    scored.sort(key=lambda x: -x[0])
    best_other: dict[str, tuple[float, str]] = {}
    for conf, fname, cname, _ in scored:
        best_other.setdefault(fname, (0.0, ""))
    out: dict[str, Proposal] = {}
    used: set[str] = set()
    for conf, fname, cname, why in scored:
        if fname in out or cname in used:
            continue
        out[fname] = Proposal(fname, column=cname, confidence=conf, why=why)
        used.add(cname)
    # the runner-up column of each field, and TODO where it is close or the best is weak
    for fname, p in out.items():
        others = [(c, n) for c, f, n, _ in scored if f == fname and n != p.column]
        if others:
            p.why += f"; runner-up '{others[0][1]}' {others[0][0]:.2f}"
        p.todo = p.confidence < SURE or bool(others and p.confidence - others[0][0] < MARGIN and others[0][1] not in used)
        if p.confidence < 0.5 and not entity.field(fname).required:
            p.todo = True
    return {k: v for k, v in out.items() if v.confidence >= 0.45 or entity.field(k).required}


def entity_score(entity: Entity, ex: Extract, props: dict[str, Proposal]) -> float:
    req = [props[f].confidence if f in props else 0.0 for f in entity.required]
    opt = sorted((p.confidence for k, p in props.items() if not entity.field(k).required and p.confidence >= 0.6), reverse=True)
    score = 0.7 * (sum(req) / len(req)) + 0.3 * min(1.0, sum(opt[:4]) / 4)
    words = set(re.split(r"[^a-z]+", ex.path.stem.lower()))
    if words & set(FILE_WORDS[entity.name]):
        score += 0.1
    if entity.name == "orders" and words & {"line", "lines", "item", "items"}:
        score -= 0.1
    return score


# --- dates and values ----------------------------------------------------------------------------------------


def formats_used(col: Column) -> list[str]:
    """Every format the column's values use, commonest first (a value fitting several counts for the first)."""
    return [f for f, _ in sorted(col.ts_formats.items(), key=lambda x: -x[1])]


def _cover(values: list[str], kind: str) -> list[str]:
    """Non-ISO strptime formats that read every value, fewest first: month/day and day/month are told apart by
    values with a part above 12; a value read either way counts for the format the others need."""
    need: list[set[str]] = []
    for v in set(values):
        if ISO_RE.match(v) or not (re.search(r"[-/.: ]", v) or re.fullmatch(r"\d{8}|\d{14}", v)):
            continue
        fits = set(fitting_formats(v, dates_only=kind == "date"))
        if fits:
            need.append(fits)
    chosen: list[str] = []
    while need:
        best = max(sorted({f for s in need for f in s}), key=lambda f: (sum(f in s for s in need), "%m/%d" in f))
        chosen.append(best)
        need = [s for s in need if best not in s]
    return chosen


def propose_values(entity: Entity, f: Field, col: Column) -> dict[str, tuple[str, bool, str]]:
    """Every distinct value of an enum (or coded int) column -> (proposed contract value, TODO?, why)."""
    counts = Counter(col.values)
    out: dict[str, tuple[str, bool, str]] = {}
    if f.type == "int":
        for v, n in counts.most_common():
            m = CODE_INT_RE.match(v)
            if m:
                out[v] = (m.group(2).lstrip("0") or "0", False, f"{n} rows; the number in the code")
        return out
    rules = VOCAB.get((entity.name, f.name), ())
    numeric = all(INT_RE.match(v) for v in counts)
    for v, n in sorted(counts.items(), key=lambda x: (x[0].isdigit() and int(x[0]), x[0])):
        low = v.strip().lower()
        canon = next((c for pat, c in rules if re.search(pat, low)), None)
        if low in f.values:
            out[v] = (low, False, f"{n} rows; the contract's own word")
        elif canon:
            out[v] = (canon, False, f"{n} rows; reads as '{canon}'")
        elif numeric:
            out[v] = ("", True, f"{n} rows; a numeric code")
        else:
            out[v] = ("", True, f"{n} rows; no known meaning")
    if numeric and any(c == "" for c, _, _ in out.values()):
        # status codes in steps (10 open, 20 in progress, ...): propose them in the contract's order, the highest
        # code 90+ as cancelled; always TODO
        codes = sorted(out, key=int)
        vocab = [x for x in f.values if x != "cancelled"]
        for i, code in enumerate(codes):
            if "cancelled" in f.values and int(code) >= 90:
                out[code] = ("cancelled", True, out[code][2] + "; 90+ is usually cancelled")
            elif i < len(vocab):
                out[code] = (vocab[i], True, out[code][2] + f"; step {i + 1} of the contract's order")
    return out


def _release_rules(ex: Extract, props: dict[str, Proposal], values: dict[str, tuple[str, bool, str]]) -> list[dict] | None:
    """Derive release_status from the release date when the status word contradicts it: rows whose status reads
    `not_released` mostly have a release date (the word means 'open', not 'not released')."""
    rel = props.get("released_at")
    st = props.get("release_status")
    if rel is None or rel.todo or st is None or st.column is None:
        return None
    rcol, scol = ex.column(rel.column), ex.column(st.column)
    if not (0 < rcol.blank_share < 1):
        return None
    idx_r = _positions(ex, rcol.name)
    idx_s = _positions(ex, scol.name)
    open_words = {v for v, (c, _, _) in values.items() if c == "not_released"}
    n_open = sum(1 for i, v in idx_s.items() if v in open_words)
    with_date = sum(1 for i, v in idx_s.items() if v in open_words and i in idx_r)
    if n_open == 0 or with_date / n_open < 0.5:
        return None
    cancel = sorted(v for v, (c, _, _) in values.items() if c == "cancelled")
    rules: list[dict] = []
    if cancel:
        rules.append({"value": "cancelled", "when": {scol.name: cancel}})
    rules += [
        {"value": "not_released", "when": {rcol.name: "blank"}},
        {"value": "not_released", "when": {"released_at": "after review"}},
        {"value": "released"},
    ]
    return rules


def _task_code_evidence(sd: SourceDraft) -> None:
    """Numeric task status codes proposed in the contract's order are checked against the quantities: a code whose
    tasks are all picked in full is `picked`, the code proposed `open` or `cancelled` whose tasks have nothing picked
    is taken as such (no TODO); the others stay TODO."""
    req, got = sd.fields.get("qty_required"), sd.fields.get("qty_picked")
    status = sd.fields["status"]
    if req is None or got is None or req.column is None or got.column is None or req.todo or got.todo:
        return
    ex = sd.extract
    assert ex is not None
    names = [c.name for c in ex.columns]
    si, ri, gi = names.index(status.column), names.index(req.column), names.index(got.column)
    full: Counter[str] = Counter()
    zero: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for r in _rows(ex):
        if max(si, ri, gi) >= len(r):
            continue
        code, q, p = r[si].strip(), r[ri].strip(), r[gi].strip() or "0"
        if not (INT_RE.match(q) and INT_RE.match(p)):
            continue
        seen[code] += 1
        full[code] += float(p) >= float(q) > 0
        zero[code] += float(p) == 0
    mapping = sd.values["status"]
    for code, (canon, todo, why) in list(mapping.items()):
        n = seen[code]
        if not todo or not n:
            continue
        if canon == "picked" and full[code] >= 0.95 * n:
            mapping[code] = (canon, False, why + f"; {full[code]} of {n} tasks picked in full")
        elif canon in ("open", "cancelled") and zero[code] >= 0.95 * n:
            mapping[code] = (canon, False, why + f"; {zero[code]} of {n} tasks have nothing picked")
        else:
            mapping[code] = (canon, True, why + f"; of {n} tasks {full[code]} picked in full, {zero[code]} nothing picked")


def _positions(ex: Extract, name: str) -> dict[int, str]:
    """Row index -> non-blank value of column `name` (re-read: profiles keep values, not rows)."""
    rows = _rows(ex)
    i = [c.name for c in ex.columns].index(name)
    return {k: r[i].strip() for k, r in enumerate(rows) if i < len(r) and r[i].strip()}


_ROWS: dict[Path, list[list[str]]] = {}


def _rows(ex: Extract) -> list[list[str]]:
    if ex.path not in _ROWS:
        if ex.format == "csv":
            data = ex.path.read_bytes()
            text = data.decode("utf-8-sig" if ex.encoding == "utf-8" else ex.encoding, errors="replace")
            reader = csv.reader(io.StringIO(text, newline=""), delimiter=ex.delimiter)
            next(reader, None)
            _ROWS[ex.path] = [r for _, r in zip(range(MAX_ROWS), reader)]
        else:
            import pandas as pd

            df = pd.read_excel(ex.path, dtype=str, keep_default_na=False) if ex.format == "xlsx" else pd.read_parquet(ex.path)
            _ROWS[ex.path] = df.head(MAX_ROWS).astype(str).replace({"None": "", "nan": "", "NaT": ""}).values.tolist()
    return _ROWS[ex.path]


# --- identifiers ---------------------------------------------------------------------------------------------

# kind -> where its values are indexed (entity, field), and the reference fields that may cite it
ID_KINDS: dict[str, tuple[tuple[str, str], tuple[tuple[str, str], ...]]] = {
    "order": (("orders", "order_id"), (("pick_tasks", "order_ref"), ("pack_events", "order_ref"), ("pack_events", "pick_ticket"),
                                       ("holds", "reference"), ("shipments", "reference"), ("cases", "reference"),
                                       ("order_lines", "order_id"))),
    "customer_po": (("orders", "customer_po"), (("holds", "reference"), ("shipments", "reference"), ("cases", "reference"))),
    "pick_ticket": (("pick_tasks", "pick_ticket"), (("pack_events", "pick_ticket"), ("holds", "reference"),
                                                    ("shipments", "reference"), ("cases", "reference"))),
    "carton": (("pack_events", "carton_id"), (("shipments", "reference"), ("holds", "reference"), ("cases", "reference"))),
    "shipment": (("shipments", "shipment_id"), (("cases", "reference"),)),
    "tracking_no": (("shipments", "tracking_no"), (("cases", "reference"),)),
}
DEFAULT_SEPARATORS = " -_./#"
GENERIC_FOLDERS = {"extracts", "extract", "data", "export", "exports", "latest", "files", "in", "inbox", "drop"}


def _column_values(sources: dict[str, SourceDraft], entity: str, fname: str) -> list[str]:
    sd = sources.get(entity)
    if sd is None or sd.extract is None or fname not in sd.fields or sd.fields[fname].column is None:
        return []
    return sorted(set(sd.extract.column(sd.fields[fname].column).values))


def count_links(con: duckdb.DuckDBPyConnection, index: list[str], refs: list[str], rule: IdRule) -> int:
    """How many of `refs` equal a value of `index` once both are normalised under `rule` (the crosswalk's SQL)."""
    e = norm_expr("v", rule, "n")
    con.execute("CREATE OR REPLACE TEMP TABLE ix AS SELECT unnest($vals) AS v", {"vals": index or [""]})
    con.execute("CREATE OR REPLACE TEMP TABLE rf AS SELECT unnest($vals) AS v", {"vals": refs or [""]})
    sql = f"SELECT count(*) FROM rf WHERE {e.sql} IN (SELECT {e.sql} FROM ix WHERE v <> '') AND v <> ''"
    return int(con.execute(sql, e.params).fetchone()[0])


def _prefixes(values: list[str]) -> list[str]:
    """Letter prefixes written before digits in at least 5 % of the values (or 2 of them)."""
    c = Counter()
    for v in values:
        m = re.match(r"^([A-Za-z]{1,4})[^A-Za-z0-9]*\d", v)
        if m:
            c[m.group(1).upper()] += 1
    return [p for p, n in c.most_common() if n >= 3]


def propose_identifiers(sources: dict[str, SourceDraft]) -> dict[str, tuple[IdRule, int, int, str]]:
    """Per identifier kind the normalisation rule that links the most references, tried on the data."""
    con = duckdb.connect()
    out: dict[str, tuple[IdRule, int, int, str]] = {}
    for kind, ((ient, ifield), reffields) in ID_KINDS.items():
        index = _column_values(sources, ient, ifield)
        refs = sorted({v for e, f in reffields for v in _column_values(sources, e, f)} - set())
        if not index or not refs:
            continue
        extra = sorted({ch for v in index + refs for ch in v if not ch.isalnum() and ch not in DEFAULT_SEPARATORS and ch.isprintable()})
        extra = [ch for ch in extra if ch in ":;|,~+*"]
        prefixes = _prefixes(index + refs)
        suffix = None
        if kind == "pick_ticket":  # a line suffix most tickets carry; its length as the tickets and the references write it
            with_suffix = [v for v in index if re.search(r"-\d{1,3}$", v)]
            if len(with_suffix) >= 0.8 * len(index):
                cited = [v for v in refs if re.search(r"-\d{1,3}$", v) and any(v.upper().startswith(p) for p in prefixes[:4])]
                lengths = {len(re.search(r"-(\d{1,3})$", v).group(1)) for v in with_suffix + cited}
                lo, hi = min(lengths), max(lengths)
                suffix = rf"-\d{{{lo}}}$" if lo == hi else rf"-\d{{{lo},{hi}}}$"
        pre_options: list[tuple[str, ...]] = [()]
        for k in (1, 2):
            pre_options += [tuple(x) for x in itertools.combinations(prefixes[:4], k)]
        candidates = []
        for pre in pre_options:
            for seps in ([DEFAULT_SEPARATORS, DEFAULT_SEPARATORS + "".join(extra)] if extra else [DEFAULT_SEPARATORS]):
                for zeros in (True, False):
                    for suf in ([None, suffix] if suffix else [None]):
                        rule = IdRule(kind, pre, suf, zeros, _separator_class(seps))
                        n = count_links(con, index, refs, rule)
                        complexity = len(pre) + (seps != DEFAULT_SEPARATORS) + (not zeros) + (suf is not None)
                        candidates.append((n, -complexity, rule, seps))
        candidates.sort(key=lambda x: (x[0], x[1]), reverse=True)
        n, _, rule, seps = candidates[0]
        for p in prefixes[4:12] + [x for x in prefixes[:4] if x not in rule.prefixes]:  # more prefixes, one at a time
            more = IdRule(kind, (*rule.prefixes, p), rule.line_suffix, rule.strip_zeros, rule.separators)
            m = count_links(con, index, refs, more)
            if m > n:
                n, rule = m, more
                candidates.append((m, 0, more, seps))
        base = next(c for c in candidates if not c[2].prefixes and c[3] == DEFAULT_SEPARATORS and c[2].strip_zeros and not c[2].line_suffix)
        fields = ", ".join(f"{e}.{f}" for e, f in reffields if _column_values(sources, e, f))
        why = (f"links {n} of the {len(refs)} distinct values of {fields} to one of the {len(index)} {ient}.{ifield} "
               f"(the default rule: {base[0]}; {len(candidates)} rules tried)")
        if kind == "pick_ticket" and suffix and not rule.line_suffix:
            rule = IdRule(kind, rule.prefixes, suffix, rule.strip_zeros, rule.separators)
            why += f"; {suffix} drops the line suffix every ticket has, so a ticket also finds its order"
        out[kind] = (IdRule(kind, rule.prefixes, rule.line_suffix, rule.strip_zeros, seps), n, len(refs), why)  # type: ignore[arg-type]
    return out


# --- the whole folder ----------------------------------------------------------------------------------------


def inspect_folder(folder: str | Path, progress: bool = True) -> tuple[dict[str, SourceDraft], list[str]]:
    """Read every extract of `folder` and propose a source per contract entity; also the files left out."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    if not folder.is_dir():
        raise HandoffError(f"{folder}: not a folder of extracts")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise HandoffError(f"{folder}: no CSV, XLSX or Parquet files to inspect")
    extracts = []
    for p in tqdm(files, desc="reading extracts", unit="file", disable=not progress):
        try:
            extracts.append(read_extract(p))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, duckdb.Error) as exc:
            raise HandoffError(f"{p}: cannot be read as {p.suffix.lstrip('.').upper()} ({exc}); move it out of the folder or fix it") from None
    table: list[tuple[float, str, Extract, dict[str, Proposal]]] = []
    for ex in tqdm(extracts, desc="matching columns", unit="file", disable=not progress):
        for ent in ENTITIES.values():
            props = map_fields(ent, ex)
            table.append((entity_score(ent, ex, props), ent.name, ex, props))
    by_file: dict[Path, list[tuple[float, str]]] = {}
    for score, ename, ex, _ in table:
        by_file.setdefault(ex.path, []).append((score, ename))
    for v in by_file.values():
        v.sort(reverse=True)

    sources: dict[str, SourceDraft] = {}
    taken: set[Path] = set()
    for score, ename, ex, props in sorted(table, key=lambda x: -x[0]):
        if score < ENTITY_MIN or ename in sources or ex.path in taken:
            continue
        ranked = by_file[ex.path]
        runner = next(((s, e) for s, e in ranked if e != ename), (0.0, "-"))
        sources[ename] = SourceDraft(ename, ex, score, f"{runner[1]} {runner[0]:.2f}", props,
                                     why=f"{ename} {score:.2f}; runner-up {runner[1]} {runner[0]:.2f}")
        taken.add(ex.path)
    # a required entity no file is: a file already used may also feed it (one shipment per order row)
    for ename, ent in ENTITIES.items():
        if ename in sources or not ent.required_file:
            continue
        best = max(((s, ex, p) for s, e, ex, p in table if e == ename and ex.path in taken), key=lambda x: x[0], default=None)
        strong = [p for p in (best[2].values() if best else []) if p.confidence >= SURE and ent.field(p.field).type != "id"]
        if best and strong and ename == "shipments":
            _one_per_row(ent, best[1], best[2], sources)
            sources[ename] = SourceDraft(ename, best[1], best[0], "-", best[2],
                                         why=f"no file of its own; {best[1].path.name} holds "
                                             f"{', '.join(p.field for p in strong)}: one {ename[:-1]} per row")
    left_out = [f"{p.name} (best: {by_file[p][0][1]} {by_file[p][0][0]:.2f})" for p in files if p not in taken]
    for sd in sources.values():
        _complete(sd)
    return sources, left_out


def _one_per_row(ent: Entity, ex: Extract, props: dict[str, Proposal], sources: dict[str, SourceDraft]) -> None:
    """A shipments source read from another entity's file: its ids are that file's key column."""
    owner = next(sd for sd in sources.values() if sd.extract is ex)
    key = ENTITIES[owner.entity].key[0]
    key_col = owner.fields[key].column
    for fname in ("shipment_id", "reference"):
        props[fname] = Proposal(fname, column=key_col, confidence=0.75,
                                why=f"the file's key ({owner.entity}.{key}): one {ent.name[:-1]} per row, citing it")
    for fname in list(props):
        if fname not in ("shipment_id", "reference") and (props[fname].confidence < SURE or ent.field(fname).type == "id"):
            del props[fname]
    # a column used by the owner for another meaning stays allowed: one column may feed several fields


def _complete(sd: SourceDraft) -> None:
    """Values, formats, derived rules and constants for required fields without a column."""
    ent, ex = ENTITIES[sd.entity], sd.extract
    assert ex is not None
    for fname, p in list(sd.fields.items()):
        f = ent.field(fname)
        col = ex.column(p.column) if p.column else None
        if col is None:
            continue
        if f.type == "enum" or (f.type == "int" and col.share["code_int"] > 0.5):
            sd.values[fname] = propose_values(ent, f, col)
    if sd.entity == "pick_tasks" and "status" in sd.values:
        _task_code_evidence(sd)
    if sd.entity == "orders" and "release_status" in sd.values:
        rules = _release_rules(ex, sd.fields, sd.values["release_status"])
        if rules:
            st = sd.fields["release_status"]
            n_open = sum(1 for c, _, _ in sd.values["release_status"].values() if c == "not_released")
            sd.fields["release_status"] = Proposal(
                "release_status", derive=rules, confidence=0.75,
                why=f"'{st.column}' says open ({n_open} word(s)) on orders that have a release date: the release date "
                    f"tells released, the status word only tells cancelled")
            del sd.values["release_status"]
    for f in ent.fields:
        if f.required and f.name not in sd.fields:
            if f.type == "int":
                sd.fields[f.name] = Proposal(f.name, constant="1", confidence=0.3, todo=True,
                                             why="no column holds it: one per row? (a constant for every row)")
            elif f.type in ("text", "id"):
                sd.fields[f.name] = Proposal(f.name, constant="UNKNOWN", confidence=0.1, todo=True,
                                             why="no column holds it: set the column, or one value for every row")
            elif f.name == "release_status":
                sd.fields[f.name] = Proposal(f.name, derive=[{"value": "released"}], confidence=0.1, todo=True,
                                             why="no status column: every order taken as released")
    # formats: every format each date column uses; the source setting lists the non-ISO ones
    ts_vals, date_vals = [], []
    for fname, p in sd.fields.items():
        f = ent.field(fname)
        if p.column and f.type in ("timestamp", "date"):
            col = ex.column(p.column)
            (ts_vals if f.type == "timestamp" else date_vals).extend(col.values[:5000])
            used = formats_used(col)
            if used:
                sd.format_notes.append(f"{p.column}: " + ", ".join(f"{u} ({col.ts_formats[u]})" for u in used))
    sd.timestamp_formats = _cover(ts_vals, "timestamp")
    dates = _cover(date_vals, "date")
    implied = {re.split(r" %[HI]", x)[0] for x in sd.timestamp_formats}
    sd.date_formats = [] if set(dates) <= implied and len(sd.timestamp_formats) <= 1 else dates


# --- the site file -------------------------------------------------------------------------------------------


def _q(v: object) -> str:
    """A YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(str(v), ensure_ascii=False)


def _site_code(folder: Path) -> str:
    folder = folder.resolve()
    while folder.parent != folder and (folder.name.lower() in GENERIC_FOLDERS or re.fullmatch(r"[\d_\-]+", folder.name)):
        folder = folder.parent  # extracts/, data/, 0900/, 2026-11-24/: the site is named by a folder above
    s = re.sub(r"[^A-Za-z0-9_\-]+", "-", folder.name).strip("-")
    return s or "site"


def render(folder: Path, out: Path | None, sources: dict[str, SourceDraft], ids: dict[str, tuple[IdRule, int, int, str]],
           left_out: list[str], timezone: str | None) -> tuple[str, list[str]]:
    """The draft site file's text, and the TODOs in it."""
    todos: list[str] = []
    base = (out.resolve().parent if out else Path.cwd())
    rel = os.path.relpath(folder.resolve(), base)
    L = [
        f"# Draft site file written by `handoff inspect {folder}` on {dt.date.today():%Y-%m-%d}.",
        "# Every line says why. Fix each `# TODO`, then: handoff picture --site THIS_FILE (join quality and rejects",
        "# per column), then handoff run (docs/extracts.md, \"Your own site in three steps\").",
        f"site: {_site_code(folder)}",
        f"name: {_q(_site_code(folder))}",
    ]
    if timezone:
        L.append(f"timezone: {timezone}")
    else:
        offsets = Counter(m.group(0) for sd in sources.values() if sd.extract is not None for p in sd.fields.values()
                          if p.column and ENTITIES[sd.entity].field(p.field).type == "timestamp"
                          for v in sd.extract.column(p.column).values[:2000] if (m := re.search(r"[+-]\d{2}:?\d{2}$", v)))
        hint = f"; times written with an offset carry {', '.join(o for o, _ in offsets.most_common(3))}" if offsets else ""
        L.append(f"timezone: UTC                 # TODO: the site's IANA timezone (naive times are read in it){hint}")
        todos.append("timezone")
    L += ["", "data:", f"  folder: {_q(rel)}", f"  allowed_roots: [{_q(rel)}]", "", "outputs: outputs", ""]
    if left_out:
        L.append("# Files left out (no contract entity fits): " + "; ".join(left_out))
    L.append("sources:")
    for ename, ent in ENTITIES.items():
        sd = sources.get(ename)
        if sd is None:
            req = "required" if ent.required_file else "optional"
            L.append(f"  {ename}: {{file: null}}   # no file looks like {ename} ({req}): it loads empty")
            continue
        ex = sd.extract
        assert ex is not None
        L.append(f"  {ename}:")
        L.append(f"    file: {_q(ex.path.name)}   # {sd.why}")
        if ex.format == "csv":
            if ex.delimiter != ",":
                L.append(f"    delimiter: {_q(ex.delimiter)}   # the most regular separator of the first lines")
            if ex.encoding != "utf-8":
                L.append(f"    encoding: {ex.encoding}   # {ex.notes[0] if ex.notes else ''}")
            elif ex.notes and "stray" in ex.notes[0]:
                L.append(f"    # {ex.notes[0]}")
        for note in sd.format_notes:
            L.append(f"    # formats used by {note}")
        if sd.timestamp_formats:
            L.append(f"    timestamp_format: [{', '.join(_q(x) for x in sd.timestamp_formats)}]   "
                     "# the non-ISO formats the time columns use; ISO values (with or without a zone) are read as they are")
        if sd.date_formats:
            L.append(f"    date_format: [{', '.join(_q(x) for x in sd.date_formats)}]   # the formats the date columns use")
        ambiguous = [x for x in sd.timestamp_formats + sd.date_formats if "%m/%d" in x or "%d/%m" in x]
        if ambiguous and not _month_day_told(sd):
            L.append("    # TODO: every date has day and month <= 12: month/day or day/month cannot be told from the values")
            todos.append(f"{ename}.timestamp_format")
        L.append("    columns:")
        for f in ent.fields:
            p = sd.fields.get(f.name)
            if p is None:
                continue
            mark = "  # TODO" if p.todo else "  #"
            if p.todo:
                todos.append(f"{ename}.columns.{f.name}")
            if p.derive is not None:
                L.append(f"      {f.name}:{mark} {p.confidence:.2f}: {p.why}")
                L.append("        derive:")
                for r in p.derive:
                    parts = [f"value: {_q(r['value'])}"]
                    if "when" in r:
                        conds = ", ".join(f"{_q(k)}: " + (f"[{', '.join(_q(x) for x in v)}]" if isinstance(v, list) else _q(v))
                                          for k, v in r["when"].items())
                        parts.append(f"when: {{{conds}}}")
                    L.append(f"          - {{{', '.join(parts)}}}")
            elif p.constant is not None:
                L.append(f"      {f.name}: {{value: {_q(p.constant)}}}{mark} {p.why}")
            else:
                L.append(f"      {f.name}: {_q(p.column)}{mark} {p.confidence:.2f}: {p.why}")
        unmapped = [f.name for f in ent.fields if f.name not in sd.fields]
        if unmapped:
            L.append(f"      # not found (optional): {', '.join(unmapped)}")
        extra = [c.name for c in ex.columns if c.name not in {p.column for p in sd.fields.values()}]
        if extra:
            L.append(f"      # columns not used: {', '.join(extra)}")
        if sd.values:
            L.append("    values:")
            for fname, mapping in sd.values.items():
                L.append(f"      {fname}:")
                for code, (canon, todo, why) in mapping.items():
                    f = ent.field(fname)
                    if todo:
                        todos.append(f"{ename}.values.{fname}.{code}")
                    if not canon:
                        L.append(f"        # {_q(code)}:   # TODO: {why}; one of {', '.join(f.values)}")
                        continue
                    L.append(f"        {_q(code)}: {canon if f.type == 'int' else _q(canon)}   #{' TODO' if todo else ''} {why}")
    L.append("")
    L += _cutoffs(sources, todos)
    L.append("")
    L.append("# How identifiers are normalised before they are matched (docs/crosswalk.md), tried on these files.")
    L.append("identifiers:")
    if not ids:
        L.append("  {}")
    for kind, (rule, n, of, why) in ids.items():
        parts = []
        if rule.prefixes:
            parts.append(f"prefixes: [{', '.join(rule.prefixes)}]")
        if rule.line_suffix:
            parts.append(f"line_suffix: {json.dumps(rule.line_suffix)}")
        parts.append(f"strip_zeros: {'true' if rule.strip_zeros else 'false'}")
        if rule.separators != DEFAULT_SEPARATORS:
            parts.append(f"separators: {_q(rule.separators)}")
        todo = False
        if todo:
            todos.append(f"identifiers.{kind}")
        L.append(f"  {kind}: {{{', '.join(parts)}}}   #{' TODO:' if todo else ''} {why}")
    L += ["", *POLICY]
    return "\n".join(L) + "\n", todos


def _month_day_told(sd: SourceDraft) -> bool:
    ex = sd.extract
    assert ex is not None
    for p in sd.fields.values():
        if p.column and ENTITIES[sd.entity].field(p.field).type in ("timestamp", "date"):
            for v in ex.column(p.column).values:
                m = re.match(r"^(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}", v)
                if m and max(int(m.group(1)), int(m.group(2))) > 12:
                    return True
    return False


def _cutoffs(sources: dict[str, SourceDraft], todos: list[str]) -> list[str]:
    pairs: Counter[tuple[str, str]] = Counter()
    for ename in ("orders", "shipments"):
        sd = sources.get(ename)
        if sd is None or sd.extract is None:
            continue
        c, s = sd.fields.get("carrier"), sd.fields.get("service")
        if c is None or c.column is None:
            continue
        rows = _rows(sd.extract)
        names = [x.name for x in sd.extract.columns]
        ci = names.index(c.column)
        si = names.index(s.column) if s is not None and s.column else None
        for r in rows:
            if ci < len(r) and r[ci].strip():
                pairs[(r[ci].strip().upper(), r[si].strip().upper() if si is not None and si < len(r) and r[si].strip() else "*")] += 1
        break
    if not pairs:
        return ["cutoffs: []   # no carrier column found: every order needs its own ship_by (or add carrier pickups here)"]
    todos.append("cutoffs")
    out = ["# Carrier pickups, site local time: one per carrier and service the orders name (with how many orders).",
           "cutoffs:   # TODO: each pickup time and its days"]
    for (carrier, service), n in sorted(pairs.items())[:30]:
        out.append(f"  - {{carrier: {_q(carrier)}, service: {_q(service)}, pickup: \"17:00\", days: [mon, tue, wed, thu, fri]}}   # {n} orders")
    return out


POLICY = [
    "# Blocker and promise policy (docs/states.md): the demo's defaults, to tune once the first reviews run.",
    "policy:",
    "  ship_complete_default: false",
    "  not_released_within_minutes: 120",
    "  label_due_minutes_after_pack: 20",
    "  paperwork_due_minutes_before_cutoff: 45",
    "  priority:",
    "    tier_points: {1: 50, 2: 30, 3: 15}",
    "    tier_default: 0",
    "    cutoff_bands: [{within_minutes: 0, points: 60}, {within_minutes: 60, points: 40}, {within_minutes: 240, points: 10}]",
    "    value_bands: []",
    "    line_bands: []",
    "  work_minutes: {pick_per_line: 10, pack: 15, label: 5, manifest: 5}",
    "  buffer_minutes: 60",
    "  transit_days_default: 3",
    "  pickup_lookahead_days: 14",
]


def draft_site(folder: str | Path, out: str | Path | None = None, timezone: str | None = None, progress: bool = True) -> Draft:
    """Inspect `folder` and write the draft site file to `out` (when given)."""
    from tqdm.auto import tqdm

    folder = Path(folder)
    _ROWS.clear()
    sources, left_out = inspect_folder(folder, progress=progress)
    with tqdm(total=1, desc="trying identifier joins", disable=not progress) as bar:
        ids = propose_identifiers(sources)
        bar.update()
    text, todos = render(folder, Path(out) if out else None, sources, ids, left_out, timezone)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
    _ROWS.clear()
    return Draft(text, sources, ids, todos, left_out)


# --- measuring a draft against a known site file -------------------------------------------------------------


@dataclass
class Score:
    """A draft's proposals against a site file known to be right: counts per kind and the details."""

    counts: dict[str, Counter] = field(default_factory=dict)  # entities / fields / values -> Counter(right, wrong, todo)
    wrong: list[str] = field(default_factory=list)  # what was proposed wrong, and what is right
    todo: list[str] = field(default_factory=list)
    links: tuple[int, int] = (0, 0)  # distinct references linked under the draft's identifier rules, under the truth's

    def add(self, kind: str, verdict: str, what: str = "") -> None:
        self.counts.setdefault(kind, Counter())[verdict] += 1
        if verdict == "wrong":
            self.wrong.append(f"{kind}: {what}")
        elif verdict == "todo":
            self.todo.append(f"{kind}: {what}")


def _source_of(spec, fname: str, header: set[str]) -> str | None:
    """How a site file's source gives a field: 'column X', 'constant V', 'derived', or None (not at all)."""
    if fname in spec.derived:
        return "derived"
    if fname in spec.constants:
        return f"constant {spec.constants[fname].strip().upper()}"
    col = spec.columns.get(fname)
    if col and col.casefold() in header:
        return f"column {col.casefold()}"
    return None


def score_draft(draft_path: str | Path, truth_path: str | Path, todos: list[str]) -> Score:
    """Compare the draft site file at `draft_path` (its TODOs in `todos`) with the right one at `truth_path`:
    which file each entity reads, each field's source, each status code's mapping, and how many references the
    identifier rules link. A proposal marked TODO counts as TODO whatever it says; a field or code the right file
    maps and the draft leaves out without a TODO counts as wrong."""
    from handoff_lib.load.settings import load_settings

    draft, truth = load_settings(draft_path), load_settings(truth_path)
    todo = set(todos)
    score = Score()
    headers: dict[Path, set[str]] = {}
    for ename, ent in ENTITIES.items():
        t, d = truth.sources[ename], draft.sources[ename]
        tfile, dfile = (Path(t.file).name if t.file else None), (Path(d.file).name if d.file else None)
        score.add("entities", "right" if tfile == dfile else "wrong", f"{ename}: draft reads {dfile}, right is {tfile}")
        if t.file is None:
            continue
        path = truth.data_folder / t.file
        if path not in headers:
            headers[path] = {c.name.casefold() for c in read_extract(path).columns}
        header = headers[path]
        dheader = header if tfile == dfile else set()
        for f in ent.fields:
            right, got = _source_of(t, f.name, header), _source_of(d, f.name, dheader) if dfile else None
            if right is None and got is None:
                continue
            what = f"{ename}.{f.name}: draft {got}, right {right}"
            if f"{ename}.columns.{f.name}" in todo:
                score.add("fields", "todo", what)
            else:
                score.add("fields", "right" if got == right else "wrong", what)
            if right is None or not right.startswith("column") or f.type not in ("enum", "int") or f.name not in t.values:
                continue
            values = Counter(v.strip().upper() for v in read_extract(path).column(_header_name(path, t.columns[f.name])).values)
            for code in sorted(values):
                if code not in t.values[f.name] and f.type == "int":
                    continue  # a number read as a number
                want = t.values[f.name].get(code)
                have = d.values.get(f.name, {}).get(code)
                what = f"{ename}.{f.name} {code!r}: draft {have}, right {want}"
                if any(x.startswith(f"{ename}.values.{f.name}.") and x.split(".", 3)[3].upper() == code for x in todo):
                    score.add("values", "todo", what)
                else:
                    score.add("values", "right" if have == want else "wrong", what)
    score.links = (_links_under(draft), _links_under(truth))
    return score


def _header_name(path: Path, col: str) -> str:
    return next(c.name for c in read_extract(path).columns if c.name.casefold() == col.casefold())


def _links_under(settings) -> int:
    """Distinct references (ID_KINDS) that match their kind's index under the site file's identifier rules."""
    from .identifiers import rule_for

    con = duckdb.connect()
    cache: dict[tuple[str, str], list[str]] = {}

    def values(entity: str, fname: str) -> list[str]:
        spec = settings.sources[entity]
        if spec.file is None or fname in spec.constants or fname in spec.derived:
            return []
        key = (entity, fname)
        if key not in cache:
            path = settings.data_folder / spec.file
            names = {c.name.casefold(): c for c in read_extract(path).columns}
            col = names.get(spec.columns[fname].casefold())
            cache[key] = sorted(set(col.values)) if col else []
        return cache[key]

    total = 0
    for kind, ((ient, ifield), reffields) in ID_KINDS.items():
        index = values(ient, ifield)
        refs = sorted({v for e, f in reffields for v in values(e, f)})
        if index and refs:
            total += count_links(con, index, refs, rule_for(settings, kind))
    return total


def fix_todos_from(draft: str | Path, right: str | Path, todos: list[str], out: str | Path) -> Path:
    """The draft site file with what each of its TODOs points at taken from the site file known to be right, and
    nothing else changed: what a user fixing the TODOs does, for measuring (comments are not kept)."""
    import yaml

    raw = yaml.safe_load(Path(draft).read_text(encoding="utf-8"))
    good = yaml.safe_load(Path(right).read_text(encoding="utf-8"))
    for todo in todos:
        parts = todo.split(".", 3)
        if todo in ("timezone", "cutoffs"):
            raw[todo] = good.get(todo) or []
        elif parts[0] == "identifiers":
            raw["identifiers"][parts[1]] = good.get("identifiers", {}).get(parts[1], {})
        elif parts[1] == "columns":
            cols = raw["sources"][parts[0]]["columns"]
            want = good["sources"][parts[0]].get("columns", {}).get(parts[2])
            if want is None:
                cols.pop(parts[2], None)
            else:
                cols[parts[2]] = want
        elif parts[1] == "values":
            want = good["sources"][parts[0]].get("values", {}).get(parts[2], {})
            code = next(k for k in want if str(k).upper() == parts[3].upper())
            raw["sources"][parts[0]].setdefault("values", {}).setdefault(parts[2], {})[code] = want[code]
        elif parts[1] == "timestamp_format":
            for key in ("timestamp_format", "date_format"):
                raw["sources"][parts[0]][key] = good["sources"][parts[0]].get(key)
    Path(out).write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return Path(out)
