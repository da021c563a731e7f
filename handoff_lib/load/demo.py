"""Realistic, deterministic demo extracts: one site's day as each system would export it at review time(s).

Two steps. `_simulate` builds one timeline for the whole day with vectorised numpy: orders placed,
held, released in waves, each pick task started and picked / shorted / substituted, cartons opened,
packed or excepted, labels, manifests, carrier pickups, CRM cases. `_Snapshot` then cuts that
timeline at a review time T into each system's extract as it would look at T: only what had happened
by T is visible. The ground truth (which record belongs to which order, which conditions were
injected, which rows were exported twice) goes to `truth/`, with an `at` column per review time.

Times are int64 seconds of the site's local wall clock (naive); the carrier file is written in UTC.
Same arguments -> byte-identical files: every random draw comes from one numpy Generator, in a fixed
order, and the timeline does not depend on the review times.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from handoff_lib.errors import HandoffError

from .settings import Settings, load_settings

MIN = 60
HOUR = 3600
DAY = 86400
NEVER = np.int64(1 << 62)  # "does not happen": later than any review time

ORDER_BASE = 20_000  # order numbers start just above this (SO-0020001)
UNKNOWN_ORDERS = (10_001, 20_001)  # numbers below the base: never an order, used by orphans
MAX_ORDERS = 5_000_000  # keeps order numbers well below carton numbers
CARTON_BASE = 9_000_000  # CTN09000001...
ORPHAN_CARTON_BASE = 8_000_000  # cartons the WMS never had
SHIPMENT_BASE = 70_000_000  # SHP70000001...
PO_BASE = 4_500_000_000  # PO-45000xxxxx: a number space apart from order numbers
PO_SPACE = 10**7

# Release waves, site local time on the review day.
WAVES = (5.5, 7.0, 8.5, 10.0, 11.5, 12.5, 13.5, 14.5, 15.5, 16.5)
# Share of orders per carrier/service (cutoffs not listed get a default weight).
MIX = {("UPS", "NDA"): 10, ("UPS", "GND"): 34, ("FDX", "2DAY"): 12, ("FDX", "GRD"): 32, ("LTL", "*"): 12}
TRANSIT = {"NDA": (1, 1), "2DAY": (2, 2), "GND": (1, 5), "GRD": (1, 5)}  # business days; others (2, 5)
FREIGHT_SERVICE = "STD"  # what the OMS writes as service for a "*" (any service) cutoff
CHANNELS = ("EDI", "WEB", "PHONE", "MARKETPLACE")
LINES_P = (0.25, 0.22, 0.17, 0.12, 0.09, 0.07, 0.05, 0.03)  # 1..8 lines, mean ~3.1
REF_P = (0.85, 0.05, 0.04, 0.03, 0.03)  # how often each form of _order_ref is written
PT_P = (0.90, 0.03, 0.03, 0.02, 0.01, 0.01, 0.0)  # how often each form of _pick_ticket is written by a task

FIRST = (
    "Northwind", "Acme", "Blue Ridge", "Summit", "Great Lakes", "Buckeye", "Riverside", "Keystone", "Pioneer",
    "Harbor", "Evergreen", "Lakeshore", "Maple", "Ironwood", "Prairie", "Redstone", "Silver Creek", "Tri-County",
    "Heartland", "Cardinal", "Liberty", "Frontier", "Granite", "Copperfield", "Oak Valley", "Westgate", "Eastside",
    "Union", "Sterling", "Bluewater", "Crescent", "Highland", "Meridian", "Pinnacle", "Sunrise", "Twin City",
)  # fmt: skip
SECOND = (
    "Supply", "Hardware", "Outfitters", "Medical", "Foods", "Industrial", "Electric", "Auto Parts", "Pet Supply",
    "Office Products", "Home Center", "Distributors", "Pharmacy", "Garden", "Sporting Goods", "Janitorial",
    "Plumbing", "Safety", "Packaging", "Beauty",
)  # fmt: skip
SUFFIX = (" Inc.", " LLC", " Co.", " Corp", "", " Ltd", " & Sons", " Group", " Wholesale", ", Inc.")
# Untrusted names, given to frequent customers so even small demos carry them.
TRICKY_NAMES = (
    "Smith & Wesson Outfitters",
    'O\'Malley "Big Box" Supply',
    "<b>Bold Retail</b> LLC",
    "<script>alert(1)</script> Traders",
    "Müller Küchen GmbH",
    "AT&T Field Ops",
    '=HYPERLINK("http://example.com","Acme")',
    "  Padded Name Inc  ",
    'Fish & Chips "Express" Co.',
    "Ben & Jerry's <Wholesale>",
)
INSTRUCTION_NOTES = {
    "ship_complete": ("ship complete only - they refuse partial deliveries", "NO PARTIALS per buyer J. Ramos", "", "ship compl."),
    "no_substitutes": (
        "no subs - contract items only",
        "NO SUBSTITUTIONS!!",
        "",
        "call <b>Dana</b> before subbing? no - never sub",
    ),
    "partial_allowed": ("partial ok, backorder rest", "", "partials fine, notify cust"),
    "substitutes_allowed": ("subs ok if same brand", "", "equivalent items OK"),
}
SHORT_NOTES = (
    "bin empty", "BIN EMTPY loc {loc}", "no stock - replen not done", "loc mislabeled", "dmg'd item", "Bin empty!!",
    "found {picked} only", "cant find, chkd overflow", "qty off in sys - pls cycle count", "item not in loc {loc}",
    "short {short} ea", "replen pending fr reserve", "wrong item in slot {loc}", "  empty bin  ", "DMGD - 2 crushed",
    "short, see lead", "sys says {req} but only {picked}",
)  # fmt: skip
SUB_NOTES = (
    "subbed w/ {sub}", "SUB per lead - {sub}", "used alt item {sub} (same size)", "orig dmgd, sent {sub}",
    "substitute ok'd by CS?", "subst {sub} - orig out of stock", "pick {sub} instead per supervisor",
)  # fmt: skip
MISC_PICK_NOTES = ("ok", "2nd bin used", "heavy - team lift", "pick from overflow {loc}", "recount done", "Picked.")
ORPHAN_PICK_NOTES = ("order not in system?", "ORDER NOT FOUND - ask CS", "", "old task, pls purge")
EXCEPTIONS = {
    "DIMS": ("dims over max for ctn", "DIMS - box 24x18x18 too big", "oversize, need bigger box"),
    "NOCARTON": ("no 12x12x8 ctn avail", "out of cartons size C", "NO CTN"),
    "LABELERR": ("label printer jam", "lbl wont print - zpl err", "label smudged, reprint"),
    "DOCS": ("packing slip missing", "need commercial inv", "docs not printed"),
    "WEIGHT": ("scale err, wt mismatch", "weight off by 2 lb vs expected", "WT > 70lb"),
    "DAMAGE": ("item dmgd at pack", "crushed box, repack"),
}
MISC_PACK_NOTES = ("fragile", "2 ctns", "void fill low", "FRAGILE - glass")
VOID_NOTES = ("void - repack", "VOID wrong ctn size", "voided, dup carton")
HOLDS = {  # code: (share, notes, placed by); "" = the code is missing, the reason only in the note
    "CREDIT": (0.30, ("cust on credit hold - AR to release", "CREDIT LIMIT EXCEEDED", "past due 60+ days, hold per AR"), ("AR_AUTO", "jpatel", "kwong")),
    "ADDR": (0.18, ("ADDR INVALID suite missing", "addr validation failed", "bad zip?", "PO box not allowed for GND"), ("ADDR_VALID", "mgarcia")),
    "QA": (0.10, ("QA hold lot 24-117", "qa - recall check", "inspect before ship"), ("qa.lead", "tnguyen")),
    "CUST": (0.16, ("cust requested hold", "hold per customer - will call", "customer wants to combine w/ next PO"), ("cs.rep1", "lbrown")),
    "COMPL": (0.10, ("export compliance review", "hazmat docs needed", "COMPL - denied party screen"), ("compliance", "SYSTEM")),
    "": (0.16, ("hold - see notes", "do not ship until further notice!!", "per Mike hold this", "credit? addr? ask CS",
                "cust called - hold til monday", "addr incomplete, no suite #", "past due invoice, hold"), ("jsmith", "night.sup")),
}  # fmt: skip
PRE_RELEASE_HOLDS = ("CREDIT", "ADDR")  # placed when the order drops; the order is not released while open
CASES = {  # type: (share, descriptions)
    "WISMO": (0.45, ("Customer asking where order is, said promised {promise}", "WISMO - cust called twice, needs tracking",
                     "where is my order??? ref {ref}", "cust says nothing rec'd yet")),
    "CHANGE": (0.20, ("chg ship-to: 123 Main St Ste 4", "add 2 ea to line 3 if not shipped", "change svc to NDA pls",
                      "customer wants to change PO # on invoice")),
    "COMPLAINT": (0.10, ("wrong item rec'd last order, wants this one checked", "box arrived crushed last time - pack better!!",
                         "<img src=x onerror=alert(1)> see photo", "Robert\"); DROP TABLE orders;--")),
    "EXPEDITE": (0.10, ("pls expedite!!! customer VIP", "EXPEDITE - line down at cust plant", "needs by fri or cancel")),
    "CANCEL": (0.08, ("cust wants to cancel if not shipped", "cancel line 2 pls", "CANCEL ENTIRE ORDER")),
    "RETURN": (0.07, ("RMA request for prior shipment\nsee email thread (2 lines)", "return label needed, \"asap\"")),
}  # fmt: skip


# --------------------------------------------------------------------------------------------- helpers


def _str(a: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(a)), pa.string())


def _pad(a: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(_str(a), width, "0")


def _cat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and literals (null if any part is null)."""
    return pc.binary_join_element_wise(*parts, "")


def _null() -> pa.Scalar:
    return pa.scalar(None, pa.string())


def _keep(mask: np.ndarray, arr: pa.Array) -> pa.Array:
    """`arr` where `mask`, blank elsewhere."""
    return pc.if_else(pa.array(mask), arr, _null())


def _choose(variant: np.ndarray, *arrays: pa.Array) -> pa.Array:
    return pc.choose(pa.array(variant.astype(np.int8)), *arrays)


def _flag(rng: np.random.Generator, pool: np.ndarray, rate: float, minimum: int = 0) -> np.ndarray:
    """A mask choosing about `rate` of the True entries of `pool` (at least `minimum` of them)."""
    idx = np.flatnonzero(pool)
    k = min(idx.size, max(minimum, round(rate * idx.size)))
    out = np.zeros(pool.size, bool)
    if k:
        out[rng.choice(idx, k, replace=False)] = True
    return out


def _u(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    """Uniform whole seconds in [lo, hi)."""
    return rng.integers(int(lo), max(int(hi), int(lo) + 1), n, dtype=np.int64)


def _fill(templates: Sequence[str], choice: np.ndarray, fields: dict[str, pa.Array]) -> np.ndarray:
    """Object array of texts: row i gets templates[choice[i]] with {name} filled from fields (None where choice < 0)."""
    out = np.full(choice.size, None, dtype=object)
    for t, tpl in enumerate(templates):
        rows = np.flatnonzero(choice == t)
        if not rows.size:
            continue
        pieces: list[pa.Array | str] = []
        for part in re.split(r"(\{\w+\})", tpl):
            if part.startswith("{") and part.endswith("}"):
                pieces.append(fields[part[1:-1]].take(pa.array(rows)))
            elif part:
                pieces.append(part)
        if all(isinstance(p, str) for p in pieces):
            out[rows] = "".join(pieces)  # type: ignore[arg-type]
        elif len(pieces) == 1:
            out[rows] = pieces[0].to_numpy(zero_copy_only=False)  # type: ignore[union-attr]
        else:
            out[rows] = _cat(*pieces).to_numpy(zero_copy_only=False)
    out[out == ""] = None
    return out


def _text(obj: np.ndarray) -> pa.Array:
    return pa.array(obj, type=pa.string())


def _ts(sec: np.ndarray, valid: np.ndarray) -> pa.Array:
    """'YYYY-MM-DD HH:MM:SS' where valid, blank elsewhere (a cast: far faster than strftime)."""
    return pc.cast(pa.array(np.where(valid, sec, 0), type=pa.timestamp("s"), mask=~valid), pa.string())


def _ts_utc(sec: np.ndarray, valid: np.ndarray) -> pa.Array:
    """'YYYY-MM-DDTHH:MM:SSZ' for UTC seconds."""
    return _cat(pc.replace_substring(_ts(sec, valid), " ", "T"), "Z")


def _hm(sec: np.ndarray) -> pa.Array:
    """'HH:MM' of each time."""
    return pc.utf8_slice_codeunits(_ts(sec, np.ones(sec.size, bool)), 11, 16)


def _utc(sec: np.ndarray, tz: ZoneInfo) -> np.ndarray:
    """Local wall-clock seconds -> UTC seconds (offset looked up once per distinct hour)."""
    if not sec.size:
        return sec
    hours = sec // HOUR
    uniq, inv = np.unique(hours, return_inverse=True)
    epoch = dt.datetime(1970, 1, 1)
    offs = np.array([int((epoch + dt.timedelta(hours=int(h))).replace(tzinfo=tz).utcoffset().total_seconds()) for h in uniq])
    return sec - offs[inv]


def _reorder(d: dict[str, np.ndarray], key: np.ndarray) -> dict[str, np.ndarray]:
    order = np.argsort(key, kind="stable")
    return {k: v[order] for k, v in d.items()}


def _order_ref(num: np.ndarray, variant: np.ndarray) -> pa.Array:
    """The order number as the WMS writes it: 12345 / 0012345 / SO12345 / ' so12345 ' / SO-0012345."""
    plain, padded = _str(num), _pad(num, 7)
    return _choose(variant, plain, padded, _cat("SO", plain), _cat(" so", plain, " "), _cat("SO-", padded))


def _oms_id(num: np.ndarray) -> pa.Array:
    return _cat("SO-", _pad(num, 7))


def _pick_ticket(num: np.ndarray, line: np.ndarray, variant: np.ndarray) -> pa.Array:
    """PT0012345-02 and its noise: pt0012345-02, PT12345-2, PT0012345-002, ' PT0012345-02', 'PT0012345-02 ',
    PT0012345 (order level, no line suffix)."""
    padded, l2 = _pad(num, 7), _pad(line, 2)
    std = _cat("PT", padded, "-", l2)
    return _choose(
        variant,
        std,
        _cat("pt", padded, "-", l2),
        _cat("PT", _str(num), "-", _str(line)),
        _cat("PT", padded, "-", _pad(line, 3)),
        _cat(" ", std),
        _cat(std, " "),
        _cat("PT", padded),
    )


def _po_text(po: np.ndarray, variant: np.ndarray) -> pa.Array:
    """PO-4500012345 / 4500012345 / po 4500012345 / PO4500012345."""
    s = _str(po)
    return _choose(variant, _cat("PO-", s), s, _cat("po ", s), _cat("PO", s))


def _crm_order(num: np.ndarray, variant: np.ndarray) -> pa.Array:
    """SO-0012345 / ' so 12345' / so-12345 / 'SO0012345 '."""
    plain, padded = _str(num), _pad(num, 7)
    return _choose(variant, _cat("SO-", padded), _cat(" so ", plain), _cat("so-", plain), _cat("SO", padded, " "))


# --------------------------------------------------------------------------------------------- site


@dataclass(frozen=True)
class _Service:
    carrier: str
    service: str  # as the OMS and carrier write it
    freight: bool  # a "*" cutoff: one shipment per order, manifested once before pickup
    pickups: np.ndarray  # local seconds of every pickup, day-7 .. day+14, sorted
    today: int  # today's pickup, or NEVER


@dataclass(frozen=True)
class _Vocab:
    """How the site writes columns and codes (parameters/<site>.yaml), inverted for writing."""

    columns: dict[str, dict[str, str]]  # entity -> {canonical field: file column}, in the file's order
    codes: dict[str, dict[str, dict[str, list[str]]]]  # entity -> field -> canonical value -> source codes
    yes: str
    no: str
    files: dict[str, str]

    def code(self, entity: str, fld: str, canonical: str, which: int = 0) -> str:
        options = self.codes.get(entity, {}).get(fld, {}).get(canonical) or [canonical]
        return options[min(which, len(options) - 1)]


def _vocab(settings: Settings) -> _Vocab:
    raw = settings.raw.get("sources") or {}
    columns, codes, files = {}, {}, {}
    for entity, spec in settings.sources.items():
        if spec.file is None:
            continue
        files[entity] = spec.file
        mapped = (raw.get(entity) or {}).get("columns") or {}
        columns[entity] = {str(k): str(v) for k, v in mapped.items()}  # exactly the site file's columns, in its order
        codes[entity] = {}
        for fld, mapping in ((raw.get(entity) or {}).get("values") or {}).items():
            inv: dict[str, list[str]] = {}
            for src, canon in mapping.items():
                inv.setdefault(str(canon), []).append(str(src))
            codes[entity][str(fld)] = inv
    b = settings.raw.get("booleans") or {}
    yes = str((b.get("true") or ["Y"])[0])
    no = str(next((v for v in (b.get("false") or ["N"]) if str(v) != ""), "N"))
    return _Vocab(columns, codes, yes, no, files)


def _services(settings: Settings, day: dt.date) -> list[_Service]:
    d0 = (day - dt.date(1970, 1, 1)).days * DAY
    out = []
    for c in settings.cutoffs:
        secs = c.pickup.hour * HOUR + c.pickup.minute * MIN
        days = [d for d in range(-7, 15) if (day + dt.timedelta(days=d)).weekday() in c.days]
        pickups = np.array([d0 + d * DAY + secs for d in days], dtype=np.int64)
        today = d0 + secs if day.weekday() in c.days else NEVER
        freight = c.service == "*"
        out.append(_Service(c.carrier, FREIGHT_SERVICE if freight else c.service, freight, pickups, int(today)))
    if not out:
        raise HandoffError(f"{settings.path}: the demo needs at least one carrier cutoff under cutoffs:")
    return out


# --------------------------------------------------------------------------------------------- timeline


@dataclass
class _Sim:
    d0: int
    day: dt.date
    tz: ZoneInfo
    services: list[_Service]
    cust: dict[str, np.ndarray | pa.Array]
    orders: dict[str, np.ndarray]
    lines: dict[str, np.ndarray]
    tasks: dict[str, np.ndarray]
    cartons: dict[str, np.ndarray]
    ships: dict[str, np.ndarray]
    holds: dict[str, np.ndarray]
    cases: dict[str, np.ndarray]
    inv: dict[str, np.ndarray]
    text: dict[str, pa.Array] = field(default_factory=dict)  # static string columns, "entity.column"


@dataclass(frozen=True)
class _Ctx:
    """What every stage of the simulation shares: the random stream, the day and the site's carriers."""

    rng: np.random.Generator
    n: int  # orders
    day: dt.date
    d0: int  # local midnight starting the review day
    waves: np.ndarray  # release wave times on the day
    services: list[_Service]


def _simulate(n: int, seed: int, day: dt.date, services: list[_Service], tz: ZoneInfo) -> _Sim:
    """The whole day, stage by stage. Stages run in a fixed order: each draws from the one random stream."""
    d0 = (day - dt.date(1970, 1, 1)).days * DAY
    c = _Ctx(np.random.default_rng(seed), n, day, d0, d0 + (np.array(WAVES) * HOUR).astype(np.int64), services)
    cust = _customers(c)
    o = _orders(c, cust)
    o = {**o, **_release(c, o)}
    hold = _holds(c, o)
    o = {**o, "release": hold.pop("release"), "wave": hold.pop("wave")}
    lines = _lines(c, o, cust)
    o["value"] = np.bincount(lines["order"], weights=lines["qty"] * lines["price"], minlength=n).astype(np.int64)
    locs = _locations(c, lines["S"])
    tasks = _tasks(c, o, lines, locs, cust)
    cartons, o["cancel"] = _cartons(c, o, lines, tasks, hold)
    ships = _shipments(c, o, cartons)
    cases = _cases(c, o, ships)
    holds = _hold_records(c, o, hold)
    inv = _inventory(c, locs, tasks)
    o["po_v"] = c.rng.choice(4, n, p=[0.97, 0.0, 0.0, 0.03])  # how the OMS writes the PO: PO-4500012345 mostly

    text: dict[str, pa.Array] = {"cust.name": _text(cust["name"]), "cust.id": _cat("C", _str(cust["acct"]))}
    text["sku"] = _cat("SKU-", _pad(lines["sku_num"], 6))
    text["inv.loc"] = _cat(
        pa.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")).take(pa.array(locs["loc"] // (99 * 9))),
        "-",
        _pad(locs["loc"] // 9 % 99 + 1, 2),
        "-",
        _pad(locs["loc"] % 9 + 1, 2),
    )
    mmdd = f"{day.month:02d}{day.day:02d}"
    waves = pa.array([f"W{mmdd}-{i + 1:02d}" for i in range(c.waves.size)] + [f"HOT-{mmdd}"])
    text |= _task_text(tasks, text["inv.loc"], waves, text["sku"])
    text |= _carton_text(cartons)
    text |= _ship_text(ships, services, seed, text["carton.id"])
    text |= _hold_text(holds)
    text |= _case_text(cases, o["promise"], text["ship.track"])
    return _Sim(d0, day, tz, services, cust, o, lines, tasks, cartons, ships, holds, cases, inv, text)


def _customers(c: _Ctx) -> dict[str, np.ndarray]:
    """Accounts, their names and standing instructions; account 0 orders most."""
    rng, nc = c.rng, max(40, c.n // 25)
    names = _cat(
        pa.array(FIRST).take(rng.integers(0, len(FIRST), nc)),
        " ",
        pa.array(SECOND).take(rng.integers(0, len(SECOND), nc)),
        pa.array(SUFFIX).take(rng.integers(0, len(SUFFIX), nc)),
    ).to_numpy(zero_copy_only=False)
    for i, name in zip(range(3, nc, 2), TRICKY_NAMES):
        names[i] = name
    acct = 100_000 + rng.choice(900_000, nc, replace=False)
    sc = rng.random(nc) < 0.07
    ns = rng.random(nc) < 0.05
    sc[[6, 9]] = True  # fairly frequent accounts carry each instruction, so small demos show them
    ns[[8, 9]] = True
    pok = ~sc & (rng.random(nc) < 0.10)
    sok = ~ns & (rng.random(nc) < 0.08)
    weight = 1.0 / np.arange(1, nc + 1) ** 0.75
    return {"acct": acct, "name": names, "sc": sc, "ns": ns, "pok": pok, "sok": sok, "weight": weight / weight.sum()}


def _orders(c: _Ctx, cust: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Orders as placed: when, by whom, PO, carrier and service, the pickup they aim at, the promise; cancels."""
    rng, n, d0 = c.rng, c.n, c.d0
    seg = rng.choice(3, n, p=[0.05, 0.50, 0.45])  # older backlog / yesterday after cutoff / today
    older = d0 - 3 * DAY + _u(rng, 0, 2.5 * DAY, n)
    yday = d0 - 12 * HOUR + _u(rng, 0, 12 * HOUR, n)
    today = d0 + 4 * HOUR + (rng.beta(1.6, 2.4, n) * 13.5 * HOUR).astype(np.int64)
    ordered = np.sort(np.select([seg == 0, seg == 1], [older, yday], today))
    gap = rng.random(n) < 0.015  # numbers the OMS skipped (deleted drafts): never an order
    num = ORDER_BASE + np.cumsum(1 + gap)
    ocust = rng.choice(cust["acct"].size, n, p=cust["weight"])
    channel = rng.choice(len(CHANNELS), n, p=[0.45, 0.30, 0.10, 0.15])
    has_po = (channel != 1) | (rng.random(n) < 0.3)
    po_off = int(rng.integers(0, PO_SPACE))
    po = PO_BASE + (np.arange(n, dtype=np.int64) * 1_000_003 + po_off) % PO_SPACE  # unique per order
    partner = np.full(n, -1)
    cand = np.flatnonzero(has_po & (ordered < d0 + 8 * HOUR))
    k = min(max(2, n // 1500), cand.size // 2)
    if k:  # a few orders share a PO (split/re-keyed orders): a PO reference is ambiguous
        sel = rng.choice(cand, 2 * k, replace=False)
        a, b = sel[:k], sel[k:]
        po[b], ocust[b], partner[a], partner[b] = po[a], ocust[a], b, a

    services = c.services
    mix = np.array([MIX.get((s.carrier, "*" if s.freight else s.service), 10) for s in services], float)
    combo = rng.choice(len(services), n, p=mix / mix.sum())
    prio = rng.choice([1, 2, 3], n, p=[0.1, 0.3, 0.6])
    is_nda = np.isin(combo, [i for i, s in enumerate(services) if s.service == "NDA"])
    prio = np.where(is_nda & (rng.random(n) < 0.3), 1, prio)
    target = np.empty(n, np.int64)  # the first pickup at least two hours after the order, today at the earliest
    earliest = np.maximum(ordered + 2 * HOUR, d0)
    lo_t, hi_t = np.empty(n, np.int64), np.empty(n, np.int64)
    for i, s in enumerate(services):
        m = combo == i
        target[m] = s.pickups[np.minimum(np.searchsorted(s.pickups, earliest[m]), s.pickups.size - 1)]
        lo_t[m], hi_t[m] = TRANSIT.get(s.service, (2, 5))
    due_today = (target >= d0) & (target < d0 + DAY)
    ov_time = d0 + rng.choice(np.array([10, 11, 12, 13, 13.5]) * HOUR, n).astype(np.int64)
    override = _flag(rng, due_today & (ov_time >= ordered + HOUR) & (ov_time < target), 0.03, 2)
    ship_by = np.where(override, ov_time, NEVER)
    transit = rng.integers(lo_t, hi_t + 1)
    # the OMS promises in carrier business days, which know the public holidays (no delivery on Thanksgiving)
    promise = np.busday_offset((target // DAY).astype("datetime64[D]"), transit, roll="forward", holidays=_us_holidays(c))
    sc_flag = np.where(cust["sc"][ocust], rng.random(n) < 0.95, rng.random(n) < 0.04)
    cxl = _flag(rng, np.ones(n, bool), 0.015, 3)
    cancel = np.where(cxl, ordered + _u(rng, 10 * MIN, 10 * HOUR, n), NEVER)
    return {
        "num": num, "cust": ocust, "ordered": ordered, "channel": channel, "has_po": has_po, "po": po,
        "partner": partner, "combo": combo, "prio": prio, "target": target, "due_today": due_today,
        "ship_by": ship_by, "due": np.minimum(target, ship_by), "promise": promise, "sc_flag": sc_flag,
        "cancel": np.where(cancel > d0 + 20 * HOUR, NEVER, cancel),
        "freight": np.array([s.freight for s in services])[combo],
        # never an order number or PO: what orphan records cite
        "unknown": np.concatenate([num[gap] - 1, np.arange(*UNKNOWN_ORDERS)]),
        "unknown_po": PO_BASE + (np.arange(n, n + 5000, dtype=np.int64) * 1_000_003 + po_off) % PO_SPACE,
    }  # fmt: skip


def _us_holidays(c: _Ctx) -> np.ndarray:
    """US public holidays around the demo day (the `holidays` package), as numpy days."""
    import holidays

    day = dt.date(1970, 1, 1) + dt.timedelta(days=int(c.d0 // DAY))
    years = sorted({day.year, day.year + 1})
    return np.array(sorted(holidays.country_holidays("US", years=years)), dtype="datetime64[D]")


def _release(c: _Ctx, o: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Release in waves; tomorrow's orders mostly wait; a few hot releases close to the cutoff, a few never."""
    rng, n, waves = c.rng, c.n, c.waves
    wi = np.searchsorted(waves, o["ordered"] + 20 * MIN)
    release = np.where(wi < waves.size, waves[np.minimum(wi, waves.size - 1)] + _u(rng, 0, 240, n), NEVER)
    wave = np.where(wi < waves.size, wi, -1)
    release = np.where(~o["due_today"] & (rng.random(n) >= 0.35), NEVER, release)
    due, ordered, open_ = o["due"], o["ordered"], o["cancel"] == NEVER
    late = _flag(rng, o["due_today"] & open_ & (release != NEVER) & (due - ordered > HOUR), 0.015, 3)
    release = np.where(late, np.maximum(due - _u(rng, 5 * MIN, 40 * MIN, n), ordered + 5 * MIN), release)
    wave = np.where(late, -1, wave)
    stuck = _flag(rng, o["due_today"] & ~late & open_, 0.01, 3)
    return {"release": np.where(stuck, NEVER, release), "wave": wave}


def _holds(c: _Ctx, o: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Holds on orders (about 3%, some orders twice). Credit and address holds come when the order drops and
    keep it from release while open; the others come later and stop packing. Returns the holds and the
    release times and waves they leave."""
    rng, n, d0, waves = c.rng, c.n, c.d0, c.waves
    ordered, partner, release, wave = o["ordered"], o["partner"], o["release"], o["wave"]
    held = np.flatnonzero(_flag(rng, np.ones(n, bool), 0.03, 4))
    second = held[_flag(rng, np.ones(held.size, bool), 0.12, 2)]
    pairs_a = np.flatnonzero(partner >= 0)
    pairs_a = pairs_a[pairs_a < partner[pairs_a]][:3]  # a PO-cited hold on a few shared-PO orders
    h_order = np.concatenate([held, second, pairs_a])
    nh, regular = h_order.size, held.size + second.size
    codes = list(HOLDS)
    h_code = rng.choice(len(codes), nh, p=[HOLDS[x][0] for x in codes])
    h_code[regular:] = codes.index("CUST")
    blank = codes.index("")
    if (h_code == blank).sum() < 2:
        h_code[rng.choice(held.size, min(2, held.size), replace=False)] = blank
    pre = np.isin(h_code, [codes.index(x) for x in PRE_RELEASE_HOLDS]) | ((h_code == blank) & (rng.random(nh) < 0.5))
    pre[regular:] = False
    placed = ordered[h_order] + _u(rng, 2 * MIN, 90 * MIN, nh)
    lasts = np.where(rng.random(nh) < 0.6, _u(rng, 20 * MIN, 5 * HOUR, nh), NEVER)  # NEVER = still open
    rel = np.where(lasts == NEVER, NEVER, placed + lasts)
    m = pre & (placed < release[h_order])
    blocked = np.full(n, -1, np.int64)  # released only in the first wave after the last pre-release hold lifts
    np.maximum.at(blocked, h_order[m], rel[m])
    bw = np.searchsorted(waves, blocked + 5 * MIN)
    hit = blocked >= 0
    after = np.where((blocked == NEVER) | (bw >= waves.size), NEVER, waves[np.minimum(bw, waves.size - 1)] + _u(rng, 0, 240, n))
    moved = hit & (release != NEVER) & (after > release)
    release = np.where(moved, after, release)
    wave = np.where(moved & (after != NEVER), np.minimum(bw, waves.size - 1), wave)
    release = np.where(o["cancel"] <= release, NEVER, release)  # cancelled before release: never released
    base = np.where(release != NEVER, release, np.maximum(ordered, d0 + 6 * HOUR))
    later = base[h_order] + _u(rng, 5 * MIN, 4 * HOUR, nh)
    shared_at = np.maximum(ordered[h_order], ordered[np.maximum(partner[h_order], 0)])
    later[regular:] = np.maximum(shared_at, d0 + 7 * HOUR)[regular:] + _u(rng, 10 * MIN, 90 * MIN, pairs_a.size)
    placed = np.where(pre, placed, later)
    rel = np.where(lasts == NEVER, NEVER, placed + lasts)
    return {"order": h_order, "code": h_code, "pre": pre, "placed": placed, "released": rel, "regular": np.array(regular),
            "release": release, "wave": wave}  # fmt: skip


def _lines(c: _Ctx, o: dict[str, np.ndarray], cust: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """1-8 lines per order (about 3); SKUs by popularity; some lines under-allocated."""
    rng, n = c.rng, c.n
    nl = rng.choice(np.arange(1, 9), n, p=LINES_P)
    L = int(nl.sum())
    l_order = np.repeat(np.arange(n), nl)
    S = max(300, n // 20)
    sku_num = np.sort(rng.choice(999_999, S, replace=False) + 1)
    sku_w = 1.0 / (rng.permutation(S) + 1) ** 0.9
    l_sku = rng.choice(S, L, p=sku_w / sku_w.sum())
    price = np.maximum(50, np.round(np.exp(rng.normal(2.8, 0.9, S)) * 100)).astype(np.int64)
    l_price = np.where(rng.random(L) < 0.05, price[l_sku] * 9 // 10, price[l_sku])
    l_qty = rng.geometric(0.45, L).astype(np.int64)
    l_qty = np.where(o["freight"][l_order], l_qty * rng.integers(5, 20, L), l_qty)
    under = _flag(rng, np.ones(L, bool), 0.025, 5)
    return {
        "order": l_order,
        "no": np.arange(L) - np.repeat(np.cumsum(nl) - nl, nl) + 1,
        "sku": l_sku,
        "qty": l_qty,
        "alloc": np.where(under, (rng.random(L) * l_qty).astype(np.int64), l_qty),
        "subs": (rng.random(L) < 0.55) & ~cust["ns"][o["cust"][l_order]],
        "price": l_price,
        "S": np.array(S),
        "sku_num": sku_num,
    }


def _locations(c: _Ctx, S: np.ndarray) -> dict[str, np.ndarray]:
    """Each SKU in 1-3 bins (a bin may hold several SKUs); pairs sorted by SKU, the first is the SKU's primary bin."""
    rng, S = c.rng, int(S)
    nloc = 26 * 99 * 9
    per = rng.choice([1, 2, 3], S, p=[0.5, 0.35, 0.15])
    key = np.unique(np.repeat(np.arange(S), per) * nloc + rng.integers(0, nloc, int(per.sum())))
    p_sku = key // nloc
    return {
        "sku": p_sku,
        "loc": key % nloc,
        "first": np.searchsorted(p_sku, np.arange(S)),
        "count": np.bincount(p_sku, minlength=S),
    }


def _tasks(c: _Ctx, o: dict, lines: dict, locs: dict, cust: dict) -> dict[str, np.ndarray]:
    """One pick task per allocated line of a released order, plus orphans; rows in creation (task id) order."""
    rng, d0, S = c.rng, c.d0, int(lines["S"])
    tl = np.flatnonzero((o["release"][lines["order"]] != NEVER) & (lines["alloc"] > 0))
    nt = tl.size
    t_order = lines["order"][tl]
    created = o["release"][t_order]
    # Pickers work through released tasks first come, first served (earliest deadline first within a
    # quarter hour of release) at the rate that clears the day's tasks by mid-afternoon: the backlog
    # goes early, late waves queue behind it, and some tight orders run close to their cutoff.
    shift0, shift1 = d0 + int(5.5 * HOUR), d0 + int(16.25 * HOUR)
    rank = np.empty(nt, np.int64)
    rank[np.lexsort((o["due"][t_order], created // (15 * MIN)))] = np.arange(nt)
    slot = shift0 + rank * (shift1 - shift0) // max(nt, 1)
    start = np.maximum(created, slot) + _u(rng, 30, 10 * MIN, nt)
    req = lines["alloc"][tl]
    done = start + _u(rng, 60, 6 * MIN, nt) + 15 * np.minimum(req, 40)
    short = _flag(rng, np.ones(nt, bool), 0.015, 4)
    subs_ok = lines["subs"][tl]
    ns_line = cust["ns"][o["cust"][t_order]]
    sub = (
        _flag(rng, ~short & subs_ok, 0.005, 4)
        | _flag(rng, ~short & ns_line, 0.02, 2)
        | _flag(rng, ~short & ~subs_ok & ~ns_line, 0.001, 1)
    )
    picked = np.where(short, (rng.random(nt) * req).astype(np.int64), req)
    cancel = o["cancel"][t_order]
    t_cxl = np.where(cancel < done, np.maximum(cancel, created), NEVER)
    t_sku = lines["sku"][tl]
    first, count = locs["first"], locs["count"]
    t_pair = first[t_sku] + np.where(rng.random(nt) < 0.85, 0, (rng.random(nt) * count[t_sku]).astype(np.int64))
    sub_sku = (t_sku + rng.integers(1, S, nt)) % S
    k = max(2, nt // 700)  # orphans: tasks of orders the OMS never had
    o_created = d0 + _u(rng, 5 * HOUR, 13 * HOUR, k)
    o_started = rng.random(k) < 0.5
    o_start = np.where(o_started, o_created + _u(rng, 10 * MIN, 2 * HOUR, k), NEVER)
    o_sku = rng.integers(0, S, k)
    o_req = rng.integers(1, 6, k)
    o_short = o_started & (rng.random(k) < 0.3)
    tasks = {
        "order": np.concatenate([t_order, np.full(k, -1)]),
        "num": np.concatenate([o["num"][t_order], rng.choice(o["unknown"], k)]),
        "line_no": np.concatenate([lines["no"][tl], rng.integers(1, 4, k)]),
        "created": np.concatenate([created, o_created]),
        "start": np.concatenate([start, o_start]),
        "done": np.concatenate(
            [np.where(t_cxl == NEVER, done, NEVER), np.where(o_started, o_start + _u(rng, MIN, 5 * MIN, k), NEVER)]
        ),
        "nominal": np.concatenate([done, np.where(o_started, o_start + 5 * MIN, NEVER)]),
        "cxl": np.concatenate([t_cxl, np.full(k, NEVER)]),
        "short": np.concatenate([short, o_short]),
        "sub": np.concatenate([sub, np.zeros(k, bool)]),
        "subs_ok": np.concatenate([subs_ok, np.ones(k, bool)]),
        "ns_acct": np.concatenate([ns_line, np.zeros(k, bool)]),
        "req": np.concatenate([req, o_req]),
        "picked": np.concatenate([picked, np.where(o_short, o_req - 1, o_req)]),
        "sku": np.concatenate([t_sku, o_sku]),
        "sub_sku": np.concatenate([sub_sku, o_sku]),
        "pair": np.concatenate([t_pair, first[o_sku]]),
        "wave": np.concatenate([o["wave"][t_order], np.maximum(np.searchsorted(c.waves, o_created, side="right") - 1, 0)]),
        "ref_v": rng.choice(len(REF_P), nt + k, p=REF_P),
        "pt_v": rng.choice(len(PT_P), nt + k, p=PT_P),
        "misc": rng.random(nt + k) < 0.003,
        "note_pick": rng.integers(0, 1000, nt + k),
    }
    tasks["dup"] = _dups(rng, tasks["created"], d0, 0.001, 2)
    return _reorder(tasks, tasks["created"] * 64 + (tasks["order"] < 0))


def _cartons(c: _Ctx, o: dict, lines: dict, tasks: dict, hold: dict) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Cartons once all of an order's tasks are done (ship-complete orders with a shortage wait; open holds
    stop packing); a few voided, a few in exception. Returns the cartons and the cancels that stand (an
    order cancelled after packing started is not cancelled)."""
    rng, n, d0 = c.rng, c.n, c.d0
    real = tasks["order"] >= 0
    live = real & (tasks["cxl"] == NEVER)
    o_done = np.full(n, -1, np.int64)
    np.maximum.at(o_done, tasks["order"][live], tasks["done"][live])
    units = np.bincount(tasks["order"][live], weights=tasks["picked"][live], minlength=n)
    short_any = np.bincount(tasks["order"][real & tasks["short"]], minlength=n) > 0
    under_any = np.bincount(lines["order"][lines["alloc"] < lines["qty"]], minlength=n) > 0
    eligible = (o["release"] != NEVER) & (units > 0) & ~(o["sc_flag"] & (short_any | under_any))
    pack_start = np.where(eligible, o_done + _u(rng, 5 * MIN, 45 * MIN, n), NEVER)
    h_order = hold["order"]
    m = ~hold["pre"] & (hold["placed"] < pack_start[h_order])
    need = np.full(n, -1, np.int64)
    np.maximum.at(need, h_order[m], hold["released"][m])
    waited = np.where(need >= 0, np.maximum(pack_start, need + _u(rng, 3 * MIN, 20 * MIN, n)), pack_start)
    pack_start = np.where(need == NEVER, NEVER, waited)
    cancel = o["cancel"]
    pack_start = np.where(cancel < pack_start, NEVER, pack_start)
    cancel = np.where((cancel != NEVER) & (pack_start != NEVER), NEVER, cancel)
    packing = np.flatnonzero(pack_start != NEVER)
    freight = o["freight"][packing]
    ncart = np.where(freight, np.clip(np.ceil(units[packing] / 60), 1, 3), np.clip(np.ceil(units[packing] / 8), 1, 4))
    ncart = ncart.astype(np.int64)
    voided = packing[_flag(rng, np.ones(packing.size, bool), 0.004, 2)]
    c_order = np.concatenate([np.repeat(packing, ncart), voided])
    c_seq = np.concatenate([np.arange(ncart.sum()) - np.repeat(np.cumsum(ncart) - ncart, ncart), np.zeros(voided.size, np.int64)])
    c_void = np.concatenate([np.zeros(int(ncart.sum()), bool), np.ones(voided.size, bool)])
    nct = c_order.size
    c_open = pack_start[c_order] + c_seq * _u(rng, 60, 240, nct) - np.where(c_void, _u(rng, 60, 4 * MIN, nct), 0)
    c_close = np.where(c_void, NEVER, c_open + _u(rng, 2 * MIN, 9 * MIN, nct))
    c_void_ts = np.where(c_void, c_open + _u(rng, 30, 50, nct), NEVER)
    exc = _flag(rng, ~c_void, 0.012, 4)
    exc_ts = np.where(exc, c_open + _u(rng, 30, 110, nct), NEVER)
    resolved = exc & (rng.random(nct) < 0.4)
    c_close = np.where(exc, np.where(resolved, exc_ts + _u(rng, 15 * MIN, 90 * MIN, nct), NEVER), c_close)
    k = max(1, nct // 1000)  # orphans: cartons packed against an order the OMS never had
    ok_open = d0 + _u(rng, 6 * HOUR, 13 * HOUR, k)
    cartons = {
        "order": np.concatenate([c_order, np.full(k, -1)]),
        "num": np.concatenate([o["num"][c_order], rng.choice(o["unknown"], k)]),
        "open": np.concatenate([c_open, ok_open]),
        "close": np.concatenate([c_close, np.where(rng.random(k) < 0.5, ok_open + 5 * MIN, NEVER)]),
        "void": np.concatenate([c_void, np.zeros(k, bool)]),
        "void_ts": np.concatenate([c_void_ts, np.full(k, NEVER)]),
        "exc": np.concatenate([exc, np.zeros(k, bool)]),
        "exc_ts": np.concatenate([exc_ts, np.full(k, NEVER)]),
        "exc_code": rng.integers(0, len(EXCEPTIONS), nct + k),
        "exc_note": rng.integers(0, 1000, nct + k),
        "misc": rng.random(nct + k) < 0.01,
        "cite": rng.choice(3, nct + k, p=[0.55, 0.10, 0.35]),  # 0 both refs, 1 pick ticket only, 2 order ref only
        "pt_line": np.where(rng.random(nct + k) < 0.5, 1, 0),  # 0 = order-level ticket PT0012345
        "ref_v": rng.choice(len(REF_P), nct + k, p=REF_P),
    }
    cartons["cite"] = np.where(cartons["order"] < 0, 2 * (rng.random(nct + k) < 0.7), cartons["cite"])
    cartons["dup"] = _dups(rng, cartons["open"], d0, 0.001, 1)
    return _reorder(cartons, cartons["open"]), cancel


def _shipments(c: _Ctx, o: dict, cartons: dict) -> dict[str, np.ndarray]:
    """One shipment per packed parcel carton, one per fully packed freight order: label, manifest upload,
    carrier pickup; a few labels and manifests fail; orphans cite cartons the WMS never had."""
    rng, n, d0 = c.rng, c.n, c.d0
    c_ord = cartons["order"]
    real_c = c_ord >= 0
    fr = o["freight"][np.maximum(c_ord, 0)]
    parcel = np.flatnonzero(real_c & ~fr & (cartons["close"] != NEVER))
    fr_open = np.zeros(n, bool)
    fr_open[c_ord[real_c & fr & ~cartons["void"] & (cartons["close"] == NEVER)]] = True
    last_close = np.full(n, -1, np.int64)
    fr_c = np.flatnonzero(real_c & fr & ~cartons["void"] & (cartons["close"] != NEVER))
    np.maximum.at(last_close, c_ord[fr_c], cartons["close"][fr_c])
    fr_orders = np.flatnonzero((last_close >= 0) & ~fr_open)
    fr_carton = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(fr_carton, c_ord[fr_c], fr_c)  # first carton of each freight order
    s_carton = np.concatenate([parcel, fr_carton[fr_orders]])
    s_order = c_ord[s_carton]
    s_ready = np.concatenate([cartons["close"][parcel], last_close[fr_orders]])
    ns = s_carton.size
    s_freight = o["freight"][s_order]
    label = s_ready + np.where(s_freight, _u(rng, 5 * MIN, 30 * MIN, ns), _u(rng, 30, 12 * MIN, ns))
    nolabel = _flag(rng, np.ones(ns, bool), 0.015, 3)
    row_anyway = nolabel & (rng.random(ns) < 0.4)  # the carrier has the shipment, the label failed
    s_created = np.where(nolabel, np.where(row_anyway, s_ready + _u(rng, MIN, 6 * MIN, ns), NEVER), label)
    label = np.where(nolabel, NEVER, label)
    manifest = np.full(ns, NEVER)
    pickup = np.full(ns, NEVER)
    s_combo = o["combo"][s_order]
    for i, s in enumerate(c.services):
        m = (s_combo == i) & (label != NEVER)
        if s.today == NEVER or not m.any():
            continue
        close_out = s.today - (45 if s.freight else 20) * MIN
        # parcel shipments upload every 15 minutes until the close-out; freight closes once before pickup
        uploads = {close_out} if s.freight else set(range(d0 + 6 * HOUR + 5 * MIN, close_out, 15 * MIN)) | {close_out}
        ups = np.array(sorted(uploads), np.int64)
        j = np.searchsorted(ups, label[m] + MIN)
        manifest[m] = np.where(j < ups.size, ups[np.minimum(j, ups.size - 1)] + _u(rng, 0, 120, int(m.sum())), NEVER)
        pickup[m] = np.where(j < ups.size, s.today, NEVER)
    nomanifest = _flag(rng, manifest != NEVER, 0.01, 3)
    expected_manifest = np.where(nomanifest, manifest, NEVER)
    manifest = np.where(nomanifest, NEVER, manifest)
    handed = np.where((pickup != NEVER) & (~nomanifest | (rng.random(ns) < 0.5)), pickup + _u(rng, 0, 25 * MIN, ns), NEVER)
    k = max(2, ns // 1000)
    os_created = d0 + _u(rng, 6 * HOUR, 13 * HOUR, k)
    ships = {
        "order": np.concatenate([s_order, np.full(k, -1)]),
        "carton": np.concatenate([s_carton, np.full(k, -1)]),
        "num": np.concatenate([o["num"][s_order], rng.choice(o["unknown"], k)]),
        "combo": np.concatenate([s_combo, rng.choice(len(c.services), k)]),
        "ready": np.concatenate([s_ready, os_created]),
        "created": np.concatenate([s_created, os_created]),
        "label": np.concatenate([label, os_created]),
        "manifest": np.concatenate([manifest, np.full(k, NEVER)]),
        "expected_manifest": np.concatenate([expected_manifest, np.full(k, NEVER)]),
        "handed": np.concatenate([handed, np.full(k, NEVER)]),
        "nolabel": np.concatenate([nolabel, np.zeros(k, bool)]),
        # what the carrier cites: 0 carton, 1 pick ticket, 2 order number
        "cite": np.concatenate(
            [
                np.where(s_freight, np.where(rng.random(ns) < 0.6, 2, 1), rng.choice(3, ns, p=[0.90, 0.08, 0.02])),
                np.where(rng.random(k) < 0.6, 0, 1),
            ]
        ),
        "ref_v": rng.choice(3, ns + k, p=[0.95, 0.03, 0.02]),
        "pt_v": rng.choice(len(PT_P), ns + k, p=PT_P),
        "orphan_carton": ORPHAN_CARTON_BASE + rng.integers(1, 999_999, ns + k),
    }
    ships["dup"] = _dups(rng, ships["created"], d0, 0.001, 2)
    return _reorder(ships, ships["created"])


def _cases(c: _Ctx, o: dict, ships: dict) -> dict[str, np.ndarray]:
    """CRM cases on about 2.5% of orders, citing the order, its PO or (once labelled) a tracking number;
    one per shared-PO pair citing the PO; orphans."""
    rng, n, d0 = c.rng, c.n, c.d0
    ordered, partner = o["ordered"], o["partner"]
    chosen = _flag(rng, np.ones(n, bool), 0.025, 6)
    pa_ = np.flatnonzero(partner >= 0)
    pa_ = pa_[pa_ < partner[pa_]]
    first_label = np.full(n, NEVER)
    sl = ships["order"] >= 0
    np.minimum.at(first_label, ships["order"][sl], ships["label"][sl])
    label_ship = np.full(n, -1)
    srt = np.flatnonzero(sl)[np.argsort(ships["label"][sl], kind="stable")]
    firsts, at_ = np.unique(ships["order"][srt], return_index=True)
    label_ship[firsts] = srt[at_]  # each order's first labelled shipment
    c_ord = np.flatnonzero(chosen)
    nk = c_ord.size
    opened = np.maximum(ordered[c_ord] + _u(rng, 20 * MIN, 6 * HOUR, nk), d0 + 7 * HOUR + _u(rng, 0, 9 * HOUR, nk))
    r = rng.random(nk)
    can_track = (first_label[c_ord] + 10 * MIN < d0 + 18 * HOUR) & (label_ship[c_ord] >= 0)
    cite = np.where(can_track & (r < 0.3), 2, np.where(o["has_po"][c_ord] & (r > 0.7), 1, 0))  # 0 order, 1 PO, 2 tracking
    opened = np.where(cite == 2, np.maximum(opened, first_label[c_ord] + _u(rng, 10 * MIN, 3 * HOUR, nk)), opened)
    keep = opened <= d0 + 18 * HOUR
    c_ord, opened, cite = c_ord[keep], opened[keep], cite[keep]
    sh_open = np.maximum(np.maximum(ordered[pa_], ordered[partner[pa_]]), d0 + 7 * HOUR) + _u(rng, 15 * MIN, 2 * HOUR, pa_.size)
    k = max(2, (c_ord.size + pa_.size) // 40)
    ncs = c_ord.size + pa_.size + k
    cases = {
        "order": np.concatenate([c_ord, pa_, np.full(k, -1)]),
        "cite": np.concatenate([cite, np.ones(pa_.size, np.int64), rng.choice(3, k, p=[0.5, 0.25, 0.25])]),
        "num": np.concatenate([o["num"][c_ord], o["num"][pa_], rng.choice(o["unknown"], k)]),
        "po": np.concatenate([o["po"][c_ord], o["po"][pa_], rng.choice(o["unknown_po"], k)]),
        "ship": np.concatenate([label_ship[c_ord], np.full(pa_.size + k, -1)]),
        "opened": np.concatenate([opened, sh_open, d0 + _u(rng, 7 * HOUR, 13 * HOUR, k)]),
        "type": rng.choice(len(CASES), ncs, p=[CASES[t][0] for t in CASES]),
        "desc": rng.integers(0, 1000, ncs),
        "ref_v": rng.choice(4, ncs, p=[0.7, 0.1, 0.1, 0.1]),
        "po_v": rng.choice(4, ncs, p=[0.4, 0.3, 0.2, 0.1]),
        "orphan_track": np.arange(ncs) + 10**6,  # tracking sequence numbers no shipment has
    }
    cases["closed"] = np.where(rng.random(ncs) < 0.35, cases["opened"] + _u(rng, 10 * MIN, 4 * HOUR, ncs), NEVER)
    return _reorder(cases, cases["opened"])


def _hold_records(c: _Ctx, o: dict, hold: dict) -> dict[str, np.ndarray]:
    """The holds as the WMS lists them: what each cites (order in WMS or OMS form, PO, pick ticket), plus orphans."""
    rng, d0 = c.rng, c.d0
    h_order, regular = hold["order"], int(hold["regular"])
    nh = h_order.size
    k = max(2, nh // 50)
    cite = rng.choice(4, nh, p=[0.45, 0.20, 0.15, 0.20])  # 0 WMS order ref, 1 OMS id, 2 PO, 3 pick ticket
    cite = np.where((cite == 2) & ~o["has_po"][h_order], 0, cite)
    cite = np.where((cite == 3) & ~(hold["placed"] >= o["release"][h_order]), 0, cite)  # tickets exist once released
    cite[regular:] = 2
    oh_placed = d0 + _u(rng, 6 * HOUR, 13 * HOUR, k)
    holds = {
        "order": np.concatenate([h_order, np.full(k, -1)]),
        "num": np.concatenate([o["num"][h_order], rng.choice(o["unknown"], k)]),
        "po": np.concatenate([o["po"][h_order], rng.choice(o["unknown_po"], k)]),
        "code": np.concatenate([hold["code"], rng.choice(len(HOLDS), k)]),
        "pre": np.concatenate([hold["pre"], np.zeros(k, bool)]),
        "placed": np.concatenate([hold["placed"], oh_placed]),
        "released": np.concatenate([hold["released"], np.where(rng.random(k) < 0.3, oh_placed + HOUR, NEVER)]),
        "cite": np.concatenate([cite, np.where(rng.random(k) < 0.7, 0, 2)]),
        "ref_v": rng.choice(len(REF_P), nh + k, p=REF_P),
        "po_v": rng.choice(4, nh + k, p=[0.4, 0.3, 0.2, 0.1]),
        "note": rng.integers(0, 1000, nh + k),
        "by": rng.integers(0, 1000, nh + k),
    }
    holds["dup"] = _dups(rng, holds["placed"], d0, 0.002, 1)
    return _reorder(holds, holds["placed"])


def _inventory(c: _Ctx, locs: dict, tasks: dict) -> dict[str, np.ndarray]:
    """Start-of-day stock per bin: what the day's picks take plus a rest (none where a pick came up short)."""
    rng, size = c.rng, locs["sku"].size
    done = tasks["done"] != NEVER
    day_picked = np.bincount(tasks["pair"][done], weights=tasks["picked"][done], minlength=size).astype(np.int64)
    emptied = np.zeros(size, bool)
    emptied[tasks["pair"][tasks["short"]]] = True
    rest = np.where(rng.random(size) < 0.1, rng.integers(200, 2000, size), rng.integers(0, 80, size))
    return {
        "sku": locs["sku"],
        "loc": locs["loc"],
        "base": day_picked + np.where(emptied, 0, rest),
        "hold": np.where(rng.random(size) < 0.03, rng.integers(1, 12, size), 0),
    }


def _dups(rng: np.random.Generator, created: np.ndarray, d0: int, rate: float, minimum: int) -> np.ndarray:
    """Extra exact copies each record gets in the export (0 for almost all); early records so every review shows some."""
    pick = _flag(rng, created <= d0 + 12 * HOUR, rate, minimum)
    return np.where(pick, np.where(rng.random(created.size) < 0.85, 1, 2), 0)


def _task_text(tasks: dict, loc_txt: pa.Array, wave_txt: pa.Array, sku: pa.Array) -> dict[str, pa.Array]:
    nt = tasks["num"].size
    real = tasks["order"] >= 0
    loc = loc_txt.take(pa.array(tasks["pair"]))
    sub = sku.take(pa.array(tasks["sub_sku"]))
    fields = {
        "loc": loc,
        "sub": sub,
        "req": _str(tasks["req"]),
        "picked": _str(tasks["picked"]),
        "short": _str(tasks["req"] - tasks["picked"]),
    }
    pick = tasks["note_pick"]
    notes = np.full(nt, None, dtype=object)
    for mask, templates in (
        (tasks["misc"] & real, MISC_PICK_NOTES),
        (tasks["sub"], SUB_NOTES),
        (tasks["short"], SHORT_NOTES),
        (~real & (pick < 700), ORPHAN_PICK_NOTES),
    ):
        notes = np.where(mask, _fill(templates, np.where(mask, pick % len(templates), -1), fields), notes)
    return {
        "task.id": _cat("T-", _pad(np.arange(1, nt + 1), 7)),
        "task.ref": _order_ref(tasks["num"], tasks["ref_v"]),
        "task.pt": _pick_ticket(tasks["num"], tasks["line_no"], tasks["pt_v"]),
        "task.loc": loc,
        "task.wave": wave_txt.take(pa.array(np.where(tasks["wave"] < 0, len(wave_txt) - 1, tasks["wave"]))),
        "task.sku": sku.take(pa.array(tasks["sku"])),
        "task.sub": sub,
        "task.note": _text(notes),
    }


def _carton_text(cartons: dict) -> dict[str, pa.Array]:
    nc = cartons["num"].size
    pt = _pick_ticket(cartons["num"], np.ones(nc, np.int64), np.where(cartons["pt_line"] == 1, 0, 6))
    codes = list(EXCEPTIONS)
    pick = cartons["exc_note"]
    notes = np.full(nc, None, dtype=object)
    for i, code in enumerate(codes):
        m = cartons["exc"] & (cartons["exc_code"] == i)
        notes = np.where(m, _fill(EXCEPTIONS[code], np.where(m, pick % len(EXCEPTIONS[code]), -1), {}), notes)
    misc = cartons["misc"] & ~cartons["exc"]
    notes = np.where(misc, _fill(MISC_PACK_NOTES, np.where(misc, pick % len(MISC_PACK_NOTES), -1), {}), notes)
    void = cartons["void"]
    notes = np.where(void, _fill(VOID_NOTES, np.where(void, pick % len(VOID_NOTES), -1), {}), notes)
    return {
        "carton.id": _cat("CTN", _pad(CARTON_BASE + np.arange(1, nc + 1), 8)),
        "carton.ref": _keep(cartons["cite"] != 1, _order_ref(cartons["num"], cartons["ref_v"])),
        "carton.pt": _keep(cartons["cite"] != 2, pt),
        "carton.exc_code": pa.array(codes).take(pa.array(cartons["exc_code"])),
        "carton.note": _text(notes),
    }


def _tracking(carrier: str, seq: np.ndarray, service: pa.Array, seed: int) -> pa.Array:
    """UPS 1Z + 16 alphanumerics, FedEx 12 digits, anything else a 9-digit PRO number (unique per sequence number)."""
    if carrier == "UPS":
        shipper = "".join(np.random.default_rng(seed + 7).choice(list("0123456789ABCDEFGHJKLMNPRSTUVWXY"), 6))
        svc = pc.if_else(pc.equal(service, "NDA"), "01", pc.if_else(pc.equal(service, "GND"), "03", "02"))
        return _cat("1Z", shipper, svc, _pad((seq * 7_919_993 + 1_234_567) % 10**8, 8))
    if carrier in ("FDX", "FEDEX"):
        return _cat("7", _pad((seq * 9_999_991 + 12_345) % 10**11, 11))
    return _cat("2", _pad((seq * 7_000_003 + 4_242) % 10**8, 8))


def _ship_text(ships: dict, services: list[_Service], seed: int, carton_id: pa.Array) -> dict[str, pa.Array]:
    ns = ships["num"].size
    combo = pa.array(ships["combo"])
    service = pa.array([s.service for s in services]).take(combo)
    track = pa.nulls(ns, pa.string())
    seq = np.arange(ns, dtype=np.int64)
    for i, s in enumerate(services):
        m = ships["combo"] == i
        if m.any():
            track = pc.if_else(pa.array(m), _tracking(s.carrier, seq, service, seed), track)
    carton = np.maximum(ships["carton"], 0)
    cid = carton_id.take(pa.array(carton))
    carton_ref = _choose(ships["ref_v"], cid, pc.utf8_lower(cid), _cat("CTN", _str(CARTON_BASE + 1 + carton)))
    carton_ref = pc.if_else(pa.array(ships["order"] < 0), _cat("CTN", _pad(ships["orphan_carton"], 8)), carton_ref)
    pt = _pick_ticket(ships["num"], np.ones(ns, np.int64), ships["pt_v"])
    order = _choose(np.where(ships["ref_v"] == 0, 0, 1), _oms_id(ships["num"]), _str(ships["num"]))
    return {
        "ship.id": _cat("SHP", _pad(SHIPMENT_BASE + np.arange(1, ns + 1), 8)),
        "ship.carrier": pa.array([s.carrier for s in services]).take(combo),
        "ship.service": service,
        "ship.track": track,
        "ship.ref": _choose(ships["cite"], carton_ref, pt, order),
    }


def _hold_text(holds: dict) -> dict[str, pa.Array]:
    nh = holds["num"].size
    codes = list(HOLDS)
    wms = _order_ref(holds["num"], holds["ref_v"])
    po = _po_text(holds["po"], holds["po_v"])
    pt = _pick_ticket(holds["num"], np.ones(nh, np.int64), np.where(holds["ref_v"] == 0, 0, 2))
    notes = np.full(nh, None, dtype=object)
    by = np.full(nh, None, dtype=object)
    for i, code in enumerate(codes):
        m = holds["code"] == i
        _, ntpl, who = HOLDS[code]
        notes = np.where(m, _fill(ntpl, np.where(m, holds["note"] % len(ntpl), -1), {}), notes)
        by = np.where(m, _fill(who, np.where(m, holds["by"] % len(who), -1), {}), by)
    return {
        "hold.id": _cat("HLD", _pad(np.arange(1, nh + 1), 6)),
        "hold.ref": _choose(holds["cite"], wms, _oms_id(holds["num"]), po, pt),
        "hold.code": pa.array([x or None for x in codes], pa.string()).take(pa.array(holds["code"])),
        "hold.note": _text(notes),
        "hold.by": _text(by),
    }


def _case_text(cases: dict, promise: np.ndarray, tracking: pa.Array) -> dict[str, pa.Array]:
    nk = cases["num"].size
    types = list(CASES)
    track = tracking.take(pa.array(np.maximum(cases["ship"], 0)))
    orphan_track = _cat("1Z", "ORPH", _pad(cases["orphan_track"], 12))  # never a tracking number we issued
    track = pc.if_else(pa.array(cases["ship"] < 0), orphan_track, track)
    ref = _choose(cases["cite"], _crm_order(cases["num"], cases["ref_v"]), _po_text(cases["po"], cases["po_v"]), track)
    prom = pa.array(np.datetime_as_string(promise[np.maximum(cases["order"], 0)]))
    fields = {"ref": pc.utf8_trim_whitespace(ref), "promise": prom}
    desc = np.full(nk, None, dtype=object)
    for i, t in enumerate(types):
        m = cases["type"] == i
        tpl = CASES[t][1]
        desc = np.where(m, _fill(tpl, np.where(m, cases["desc"] % len(tpl), -1), fields), desc)
    return {
        "case.id": _cat("CS-", _pad(np.arange(1, nk + 1), 7)),
        "case.ref": ref,
        "case.desc": _text(desc),
        "case.type": pa.array(types).take(pa.array(cases["type"])),
    }


# --------------------------------------------------------------------------------------------- render at T


def _tf(b: np.ndarray) -> pa.Array:
    return pa.array(np.where(b, "true", "false"))


def _money(cents: np.ndarray) -> pa.Array:
    return _cat(_str(cents // 100), ".", _pad(cents % 100, 2))


class _Snapshot:
    """The extracts and truth rows of one review time T: only what had happened by T is visible."""

    def __init__(self, sim: _Sim, T: int, at: str, vocab: _Vocab):
        self.sim, self.T, self.at, self.vocab, self.files = sim, T, at, vocab, vocab.files
        self.extracts: dict[str, pa.Table] = {}  # entity -> table under canonical field names
        self.dups: dict[str, np.ndarray] = {}  # entity -> extra copies of each row of its table
        self.links: list[pa.Table] = []
        self.conditions: list[pa.Table] = []
        self.duplicates: list[pa.Table] = []
        self.oms_id = _oms_id(sim.orders["num"])
        self._orders()
        self._pick_tasks()
        self._inventory()
        self._pack_events()
        self._shipments()
        self._holds()
        self._crm()

    # ---- truth rows

    def _order_ids(self, order: np.ndarray) -> pa.Array:
        return pc.if_else(pa.array(order >= 0), self.oms_id.take(pa.array(np.maximum(order, 0))), _null())

    def cond(self, name: str, order: np.ndarray, detail: pa.Array | str, file: str, key=None, line=None) -> None:
        """conditions.csv rows: `order` indexes the orders (-1 = none), `key` the records' own ids."""
        m = order.size
        if not m:
            return
        self.conditions.append(
            pa.table(
                {
                    "at": pa.array([self.at] * m),
                    "order_id": self._order_ids(order),
                    "line_no": pa.array(line, pa.int64()) if line is not None else pa.nulls(m, pa.int64()),
                    "condition": pa.array([name] * m),
                    "detail": detail if isinstance(detail, pa.Array) else pa.array([detail] * m),
                    "source_file": pa.array([file] * m),
                    "record_key": key if key is not None else pa.nulls(m, pa.string()),
                }
            )
        )

    def link(self, entity: str, key: pa.Array, order: np.ndarray, via: pa.Array, ambiguous: np.ndarray) -> None:
        """links.csv rows for every visible record of `entity`; orphans are also a condition."""
        m = order.size
        file = self.files[entity]
        self.links.append(
            pa.table(
                {
                    "at": pa.array([self.at] * m),
                    "source": pa.array([entity] * m),
                    "file": pa.array([file] * m),
                    "record_key": key,
                    "true_order_id": self._order_ids(order),
                    "via": via,
                    "orphan": _tf(order < 0),
                    "ambiguous": _tf(ambiguous),
                }
            )
        )
        orphan = pa.array(order < 0)
        detail = _cat("reference matches no order (", via.filter(orphan), ")")
        self.cond("orphan", order[order < 0], detail, file, key.filter(orphan))

    def duplicated(self, entity: str, key: pa.Array, copies: np.ndarray, order: np.ndarray) -> None:
        """Rows exported more than once: the copies to append, duplicates.csv rows, a condition."""
        self.dups[entity] = copies
        d = copies > 0
        if not d.any():
            return
        file, n, kk = self.files[entity], int(d.sum()), key.filter(pa.array(d))
        self.duplicates.append(
            pa.table(
                {"at": pa.array([self.at] * n), "file": pa.array([file] * n), "record_key": kk, "copies": pa.array(copies[d])}
            )
        )
        self.cond("duplicate_export", order[d], _cat(_str(copies[d]), " extra identical row(s)"), file, kk)

    def ambiguous_po(self, order: np.ndarray, via_po: np.ndarray) -> np.ndarray:
        """A PO reference is ambiguous once the other order sharing the PO exists too."""
        o = self.sim.orders
        p = o["partner"][np.maximum(order, 0)]
        return via_po & (order >= 0) & (p >= 0) & (o["ordered"][np.maximum(p, 0)] <= self.T)

    # ---- extracts, system by system

    def _orders(self) -> None:
        sim, T, vocab, files = self.sim, self.T, self.vocab, self.files
        o, li, tx = sim.orders, sim.lines, sim.text
        visible = o["ordered"] <= T
        oi = np.flatnonzero(visible)
        rel = o["release"][oi] <= T
        cxl = o["cancel"][oi] <= T
        fresh = (T - o["ordered"][oi]) < HOUR  # NEW for the first hour, then OPEN
        status = np.where(cxl, 3, np.where(rel, 2, np.where(fresh, 0, 1)))
        codes = [vocab.code("orders", "release_status", "not_released", i) for i in (0, 1)]
        codes += [vocab.code("orders", "release_status", x) for x in ("released", "cancelled")]
        cust = pa.array(o["cust"][oi])
        combo = pa.array(o["combo"][oi])
        self.extracts["orders"] = pa.table(
            {
                "order_id": self.oms_id.take(pa.array(oi)),
                "customer_id": tx["cust.id"].take(cust),
                "customer_name": tx["cust.name"].take(cust),
                "customer_po": _keep(o["has_po"][oi], _po_text(o["po"][oi], o["po_v"][oi])),
                "channel": pa.array(CHANNELS).take(pa.array(o["channel"][oi])),
                "priority": pa.array(o["prio"][oi]),
                "ordered_at": _ts(o["ordered"][oi], np.ones(oi.size, bool)),
                "released_at": _ts(o["release"][oi], rel),
                "release_status": pa.array(codes).take(pa.array(status)),
                "carrier": pa.array([x.carrier for x in sim.services]).take(combo),
                "service": pa.array([x.service for x in sim.services]).take(combo),
                "ship_by": _ts(o["ship_by"][oi], o["ship_by"][oi] != NEVER),
                "promised_delivery": pa.array(np.datetime_as_string(o["promise"][oi])),
                "ship_complete": pa.array(np.where(o["sc_flag"][oi], vocab.yes, vocab.no)),
                "cancelled_at": _ts(o["cancel"][oi], cxl),
                "order_value": _money(o["value"][oi]),
            }
        )
        lr = np.flatnonzero(visible[li["order"]])
        self.extracts["order_lines"] = pa.table(
            {
                "order_id": self.oms_id.take(pa.array(li["order"][lr])),
                "line_no": pa.array(li["no"][lr]),
                "sku": tx["sku"].take(pa.array(li["sku"][lr])),
                "qty": pa.array(li["qty"][lr]),
                "allocated_qty": pa.array(li["alloc"][lr]),
                "substitution_allowed": pa.array(np.where(li["subs"][lr], vocab.yes, vocab.no)),
                "unit_price": _money(li["price"][lr]),
            }
        )
        ua = lr[li["alloc"][lr] < li["qty"][lr]]
        detail = _cat("allocated ", _str(li["alloc"][ua]), " of ", _str(li["qty"][ua]))
        self.cond("under_allocated", li["order"][ua], detail, files["order_lines"], None, li["no"][ua])
        instructions = files.get("account_instructions", "")
        sc = sim.cust["sc"][o["cust"][oi]]
        flag = np.where(o["sc_flag"][oi][sc], "Y", "N")
        self.cond(
            "ship_complete_account", oi[sc], _cat("account instruction SHIP COMPLETE; order flag ", pa.array(flag)), instructions
        )
        ns = sim.cust["ns"][o["cust"][oi]]
        self.cond("no_substitute_account", oi[ns], "account instruction NO SUBS", instructions)
        ci = oi[cxl]
        self.cond("cancelled", ci, _cat("cancelled ", _ts(o["cancel"][ci], np.ones(ci.size, bool))), files["orders"])
        due, today = o["due"][oi], o["due_today"][oi]
        nr = today & ~rel & ~cxl & (T >= due - 2 * HOUR)  # due out today, cutoff within two hours, not released
        self.cond("not_released", oi[nr], _cat("due ", _hm(due[nr]), ", not released"), files["orders"])
        late = today & rel & (o["release"][oi] >= due - 45 * MIN)  # released in the last 45 minutes before its cutoff
        detail = _cat("released ", _hm(o["release"][oi][late]), ", due ", _hm(due[late]))
        self.cond("late_release", oi[late], detail, files["orders"])
        p = o["partner"][oi]
        sp = (p >= 0) & (o["ordered"][np.maximum(p, 0)] <= T)
        self.cond("shared_po", oi[sp], _cat("customer PO shared with ", self.oms_id.take(pa.array(p[sp]))), files["orders"])

    def _pick_tasks(self) -> None:
        T, t, tx, file = self.T, self.sim.tasks, self.sim.text, self.files["pick_tasks"]
        tv = np.flatnonzero(t["created"] <= T)
        cx = t["cxl"][tv] <= T
        dn = ~cx & (t["done"][tv] <= T)
        ip = ~cx & ~dn & (t["start"][tv] <= T)
        sh = dn & t["short"][tv]
        sb = dn & t["sub"][tv]
        status = np.select([cx, sh, dn, ip], [4, 3, 2, 1], 0)
        codes = [self.vocab.code("pick_tasks", "status", x) for x in ("open", "in_progress", "picked", "short", "cancelled")]
        span = np.maximum(t["nominal"][tv] - t["start"][tv], 1)
        so_far = (t["picked"][tv] * np.clip(T - t["start"][tv], 0, None) // span).astype(np.int64)
        qty = np.where(dn, t["picked"][tv], np.where(ip, np.minimum(so_far, t["picked"][tv]), 0))
        updated = np.select([cx, dn, ip], [t["cxl"][tv], t["done"][tv], t["start"][tv]], t["created"][tv])
        rows = pa.array(tv)
        tid = tx["task.id"].take(rows)
        self.extracts["pick_tasks"] = pa.table(
            {
                "task_id": tid,
                "pick_ticket": tx["task.pt"].take(rows),
                "order_ref": tx["task.ref"].take(rows),
                "line_no": pa.array(t["line_no"][tv]),
                "sku": tx["task.sku"].take(rows),
                "location": tx["task.loc"].take(rows),
                "wave": tx["task.wave"].take(rows),
                "qty_required": pa.array(t["req"][tv]),
                "qty_picked": pa.array(qty),
                "status": pa.array(codes).take(pa.array(status)),
                "substituted_sku": _keep(sb, tx["task.sub"].take(rows)),
                "updated_at": _ts(updated, np.ones(tv.size, bool)),
                "note": _keep(dn | (t["order"][tv] < 0), tx["task.note"].take(rows)),
            }
        )
        order = t["order"][tv]
        self.link("pick_tasks", tid, order, pa.array(["order_ref"] * tv.size), np.zeros(tv.size, bool))
        self.duplicated("pick_tasks", tid, t["dup"][tv], order)
        real = order >= 0

        def rows_of(x: np.ndarray) -> tuple[pa.Array, pa.Array, pa.Array]:
            r = pa.array(tv[x])
            return tid.filter(pa.array(x)), tx["task.sku"].take(r), tx["task.sub"].take(r)

        x = sh & real
        key, _, _ = rows_of(x)
        where = tx["task.loc"].take(pa.array(tv[x]))
        detail = _cat("picked ", _str(qty[x]), " of ", _str(t["req"][tv][x]), " at ", where, " task ", key)
        self.cond("short_pick", order[x], detail, file, key, t["line_no"][tv][x])
        x = sb & real
        key, sku, sub = rows_of(x)
        self.cond("substitution", order[x], _cat(sku, " -> ", sub, " task ", key), file, key, t["line_no"][tv][x])
        x = x & (~t["subs_ok"][tv] | t["ns_acct"][tv])
        key, sku, sub = rows_of(x)
        why = pa.array(np.where(t["ns_acct"][tv][x], "account NO SUBS", "line SubsOK=N"))
        self.cond("substitution_against_instruction", order[x], _cat(sku, " -> ", sub, "; ", why), file, key, t["line_no"][tv][x])

    def _inventory(self) -> None:
        T, t, inv, tx = self.T, self.sim.tasks, self.sim.inv, self.sim.text
        size = inv["sku"].size
        done = (t["done"] <= T) & (t["cxl"] > T)
        taken = np.bincount(t["pair"][done], weights=t["picked"][done], minlength=size).astype(np.int64)
        pending = (t["created"] <= T) & ~done & (t["cxl"] > T)
        alloc = np.bincount(t["pair"][pending], weights=t["req"][pending], minlength=size).astype(np.int64)
        self.extracts["inventory"] = pa.table(
            {
                "sku": tx["sku"].take(pa.array(inv["sku"])),
                "location": tx["inv.loc"],
                "on_hand": pa.array(np.maximum(inv["base"] - taken, 0)),
                "allocated": pa.array(alloc),
                "on_hold": pa.array(inv["hold"]),
            }
        )

    def _pack_events(self) -> None:
        T, c, tx = self.T, self.sim.cartons, self.sim.text
        cv = np.flatnonzero(c["open"] <= T)
        vd = c["void_ts"][cv] <= T
        ec = ~vd & (c["exc_ts"][cv] <= T) & (c["close"][cv] > T)
        pk = ~vd & ~ec & (c["close"][cv] <= T)
        codes = [self.vocab.code("pack_events", "status", x) for x in ("open", "packed", "exception", "cancelled")]
        rows = pa.array(cv)
        cid = tx["carton.id"].take(rows)
        self.extracts["pack_events"] = pa.table(
            {
                "carton_id": cid,
                "order_ref": tx["carton.ref"].take(rows),
                "pick_ticket": tx["carton.pt"].take(rows),
                "status": pa.array(codes).take(pa.array(np.select([vd, ec, pk], [3, 2, 1], 0))),
                "exception_code": _keep(ec, tx["carton.exc_code"].take(rows)),
                "note": _keep(vd | (c["exc_ts"][cv] <= T) | (pk & c["misc"][cv]), tx["carton.note"].take(rows)),
                "event_at": _ts(
                    np.select([vd, ec, pk], [c["void_ts"][cv], c["exc_ts"][cv], c["close"][cv]], c["open"][cv]),
                    np.ones(cv.size, bool),
                ),
            }
        )
        order = c["order"][cv]
        via = pa.array(np.where(c["cite"][cv] == 1, "pick_ticket", "order_ref"))
        self.link("pack_events", cid, order, via, np.zeros(cv.size, bool))
        self.duplicated("pack_events", cid, c["dup"][cv], order)
        x = ec & (order >= 0)
        code = tx["carton.exc_code"].take(pa.array(cv[x]))
        self.cond("pack_exception", order[x], code, self.files["pack_events"], cid.filter(pa.array(x)))

    def _shipments(self) -> None:
        T, s, tx, tz, file = self.T, self.sim.ships, self.sim.text, self.sim.tz, self.files["shipments"]
        sv = np.flatnonzero(s["created"] <= T)
        rows = pa.array(sv)
        lab = s["label"][sv] <= T
        man = s["manifest"][sv] <= T
        hof = s["handed"][sv] <= T
        sid = tx["ship.id"].take(rows)

        def utc(local: np.ndarray, valid: np.ndarray) -> pa.Array:
            return _ts_utc(np.where(valid, _utc(np.where(valid, local, 0), tz), 0), valid)

        self.extracts["shipments"] = pa.table(
            {
                "shipment_id": sid,
                "reference": tx["ship.ref"].take(rows),
                "carrier": tx["ship.carrier"].take(rows),
                "service": tx["ship.service"].take(rows),
                "tracking_no": _keep(lab, tx["ship.track"].take(rows)),
                "label_created_at": utc(s["label"][sv], lab),
                "manifested_at": utc(s["manifest"][sv], man),
                "handed_off_at": utc(s["handed"][sv], hof),
            }
        )
        order = s["order"][sv]
        via = pa.array(np.array(["carton", "pick_ticket", "order_ref"])[s["cite"][sv]])
        self.link("shipments", sid, order, via, np.zeros(sv.size, bool))
        self.duplicated("shipments", sid, s["dup"][sv], order)
        x = hof & (order >= 0)
        self.cond("handed_off", order[x], _cat("picked up ", _hm(s["handed"][sv][x])), file, sid.filter(pa.array(x)))
        x = (s["expected_manifest"][sv] + 10 * MIN <= T) & (order >= 0)  # its upload plus ten minutes has passed
        detail = _cat("label ", _hm(s["label"][sv][x]), ", not manifested (due by ", _hm(s["expected_manifest"][sv][x]), ")")
        self.cond("missing_manifest", order[x], detail, file, sid.filter(pa.array(x)))
        ml = np.flatnonzero(s["nolabel"] & (s["order"] >= 0) & (s["ready"] + 20 * MIN <= T))  # packed 20+ minutes ago
        row = np.where(s["created"][ml] <= T, ", shipment without label", ", no shipment")
        detail = _cat("packed ", _hm(s["ready"][ml]), pa.array(row))
        self.cond(
            "missing_label", s["order"][ml], detail, self.files["pack_events"], tx["carton.id"].take(pa.array(s["carton"][ml]))
        )

    def _holds(self) -> None:
        T, h, tx, file = self.T, self.sim.holds, self.sim.text, self.files["holds"]
        hv = np.flatnonzero(h["placed"] <= T)
        rows = pa.array(hv)
        rel = h["released"][hv] <= T
        hid = tx["hold.id"].take(rows)
        self.extracts["holds"] = pa.table(
            {
                "hold_id": hid,
                "reference": tx["hold.ref"].take(rows),
                "code": tx["hold.code"].take(rows),
                "note": tx["hold.note"].take(rows),
                "placed_at": _ts(h["placed"][hv], np.ones(hv.size, bool)),
                "released_at": _ts(h["released"][hv], rel),
                "placed_by": tx["hold.by"].take(rows),
            }
        )
        order = h["order"][hv]
        cite = h["cite"][hv]
        via = pa.array(np.array(["order_ref", "order_ref", "customer_po", "pick_ticket"])[cite])
        self.link("holds", hid, order, via, self.ambiguous_po(order, cite == 2))
        self.duplicated("holds", hid, h["dup"][hv], order)
        real = order >= 0
        code = pc.fill_null(tx["hold.code"].take(rows), "")
        state = pc.if_else(pa.array(rel), _cat("released ", _hm(np.where(rel, h["released"][hv], 0))), "open")
        blank = pc.equal(code, "").to_numpy(zero_copy_only=False)
        x = pa.array(real & ~blank)
        self.cond("hold_coded", order[real & ~blank], _cat(code.filter(x), "; ", state.filter(x)), file, hid.filter(x))
        x = pa.array(real & blank)
        self.cond("hold_blank_code", order[real & blank], _cat("no code; ", state.filter(x)), file, hid.filter(x))
        n = self.sim.orders["num"].size
        count = np.bincount(order[real], minlength=n)
        last = np.full(n, -1)
        np.maximum.at(last, order[real], np.flatnonzero(real))  # latest visible hold per order (rows are in placement order)
        mo = np.flatnonzero(count >= 2)
        self.cond("multiple_holds", mo, _cat(_str(count[mo]), " holds"), file, hid.take(pa.array(last[mo])))

    def _crm(self) -> None:
        T, sim, tx = self.T, self.sim, self.sim.text
        if "cases" in self.files:
            k = sim.cases
            kv = np.flatnonzero(k["opened"] <= T)
            rows = pa.array(kv)
            kid = tx["case.id"].take(rows)
            self.extracts["cases"] = pa.table(
                {
                    "case_id": kid,
                    "reference": tx["case.ref"].take(rows),
                    "opened_at": _ts(k["opened"][kv], np.ones(kv.size, bool)),
                    "closed_at": _ts(k["closed"][kv], k["closed"][kv] <= T),
                    "case_type": tx["case.type"].take(rows),
                    "text": tx["case.desc"].take(rows),
                }
            )
            cite = k["cite"][kv]
            via = pa.array(np.array(["order_ref", "customer_po", "tracking_no"])[cite])
            self.link("cases", kid, k["order"][kv], via, self.ambiguous_po(k["order"][kv], cite == 1))
        if "account_instructions" in self.files:
            names = list(INSTRUCTION_NOTES)
            flags = [sim.cust[x] for x in ("sc", "ns", "pok", "sok")]  # in the order of INSTRUCTION_NOTES
            ac = np.concatenate([np.flatnonzero(f) for f in flags])
            ai = np.concatenate([np.full(int(f.sum()), i) for i, f in enumerate(flags)])
            srt = np.lexsort((ai, sim.cust["acct"][ac]))
            ac, ai = ac[srt], ai[srt]
            notes = np.full(ac.size, None, dtype=object)
            for i, name in enumerate(names):
                m = ai == i
                tpl = INSTRUCTION_NOTES[name]
                notes = np.where(m, _fill(tpl, np.where(m, sim.cust["acct"][ac] % len(tpl), -1), {}), notes)
            codes = [self.vocab.code("account_instructions", "instruction", x) for x in names]
            self.extracts["account_instructions"] = pa.table(
                {
                    "customer_id": tx["cust.id"].take(pa.array(ac)),
                    "instruction": pa.array(codes).take(pa.array(ai)),
                    "note": _text(notes),
                }
            )


# --------------------------------------------------------------------------------------------- writing


def _site_table(table: pa.Table, entity: str, vocab: _Vocab) -> pa.Table:
    """Rename canonical fields to the site's column names, in the site file's order."""
    cols = vocab.columns[entity]
    arrays = [table.column(f) if f in table.column_names else pa.nulls(table.num_rows, pa.string()) for f in cols]
    return pa.table(arrays, names=list(cols.values()))


def _write(con: duckdb.DuckDBPyConnection, table: pa.Table, path: Path) -> int:
    con.from_arrow(table).write_csv(str(path), header=True)
    return table.num_rows


def _truth_orders(sim: _Sim) -> pa.Table:
    """The whole day's simulated timeline per order (not as-of: it knows what happens later)."""
    o, t, c, s = sim.orders, sim.tasks, sim.cartons, sim.ships
    n = o["num"].size

    def last_of(order: np.ndarray, ts: np.ndarray) -> np.ndarray:
        real = order >= 0
        out = np.full(n, -1, np.int64)
        np.maximum.at(out, order[real], ts[real])
        return np.where(out < 0, NEVER, out)

    live = t["cxl"] == NEVER
    picked = last_of(t["order"][live], t["done"][live])
    nv = ~c["void"]
    packed = last_of(c["order"][nv], c["close"][nv])
    labelled = last_of(s["order"], s["label"])
    manifested = last_of(s["order"], s["manifest"])
    handed = last_of(s["order"], s["handed"])
    due = o["due"]

    def col(x: np.ndarray) -> pa.Array:
        return _ts(x, x != NEVER)

    return pa.table(
        {
            "order_id": _oms_id(o["num"]),
            "ordered_at": col(o["ordered"]),
            "due_at": col(due),
            "target_pickup": col(o["target"]),
            "released_at": col(o["release"]),
            "cancelled_at": col(o["cancel"]),
            "picked_at": col(picked),
            "packed_at": col(packed),
            "labelled_at": col(labelled),
            "manifested_at": col(manifested),
            "handed_off_at": col(handed),
        }
    )


def _parse_at(value: str) -> tuple[str, int]:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise HandoffError(f"demo: review time '{value}' is not a time of day as HH:MM")
    h, mi = int(m.group(1)), int(m.group(2))
    return f"{h:02d}{mi:02d}", h * HOUR + mi * MIN


def generate(
    orders: int,
    seed: int,
    out: str | Path,
    date: str = "2026-11-24",
    at: Sequence[str] = ("14:30",),
    site_file: str | Path = "parameters/demo.yaml",
    progress: bool = True,
) -> dict:
    """Write one demo site's day as each system would export it at each review time in `at`.

    With one review time the extracts go straight into `out/`; with several, into `out/<HHMM>/`.
    Ground truth goes into `out/truth/` (links.csv, conditions.csv, duplicates.csv, orders.csv).
    Returns {"out", "date", "at": [HHMM...], "orders", "order_lines", "folders": {HHMM: extracts folder},
    "rows": {path relative to out: data rows written (exported duplicates included)}}.
    """
    if not isinstance(orders, (int, np.integer)) or orders < 1 or orders > MAX_ORDERS:
        raise HandoffError(f"demo: orders must be a whole number from 1 to {MAX_ORDERS:,} (got {orders!r})")
    try:
        day = dt.date.fromisoformat(str(date))
    except ValueError:
        raise HandoffError(f"demo: date '{date}' is not a date as YYYY-MM-DD") from None
    if isinstance(at, str):
        at = (at,)
    times = [_parse_at(a) for a in at]
    labels = [lab for lab, _ in times]
    if not times or len(set(labels)) != len(labels):
        raise HandoffError(f"demo: review times must be given, each once (got {list(at)})")
    settings = load_settings(site_file)
    vocab = _vocab(settings)
    services = _services(settings, day)
    out = Path(out)
    truth_dir = out / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    folders: dict[str, str] = {}
    entities = list(vocab.files)
    con = duckdb.connect()
    links: list[pa.Table] = []
    conds: list[pa.Table] = []
    dupl: list[pa.Table] = []
    # one step for the simulation, then one per file written
    with tqdm(total=1 + len(times) * len(entities) + 4, desc="demo data", unit="step", disable=not progress) as bar:
        bar.set_postfix_str("simulating the day")
        sim = _simulate(int(orders), int(seed), day, services, settings.tz)
        bar.update()
        for label, secs in times:
            folder = out if len(times) == 1 else out / label
            folder.mkdir(parents=True, exist_ok=True)
            folders[label] = str(folder)
            snap = _Snapshot(sim, sim.d0 + secs, label, vocab)
            for entity in entities:
                table = _site_table(snap.extracts[entity], entity, vocab)
                copies = snap.dups.get(entity)
                if copies is not None and copies.any():  # a re-sent page: the copies follow the export
                    again = np.repeat(np.arange(copies.size), copies)
                    table = pa.concat_tables([table, table.take(pa.array(again))])
                path = folder / vocab.files[entity]
                bar.set_postfix_str(path.relative_to(out).as_posix())
                written[path.relative_to(out).as_posix()] = _write(con, table, path)
                bar.update()
            links += snap.links
            conds += snap.conditions
            dupl += snap.duplicates
        truth = {
            "links.csv": _concat(links, LINK_SCHEMA),
            "conditions.csv": _concat(conds, CONDITION_SCHEMA),
            "duplicates.csv": _concat(dupl, DUPLICATE_SCHEMA),
            "orders.csv": _truth_orders(sim),
        }
        for name, table in truth.items():
            bar.set_postfix_str(f"truth/{name}")
            written[f"truth/{name}"] = _write(con, table, truth_dir / name)
            bar.update()
    con.close()
    return {
        "out": str(out),
        "date": day.isoformat(),
        "at": labels,
        "orders": int(orders),
        "order_lines": int(sim.lines["order"].size),
        "folders": folders,
        "rows": written,
    }


LINK_SCHEMA = pa.schema(
    [(n, pa.string()) for n in ("at", "source", "file", "record_key", "true_order_id", "via", "orphan", "ambiguous")]
)
CONDITION_SCHEMA = pa.schema(
    [("at", pa.string()), ("order_id", pa.string()), ("line_no", pa.int64()), ("condition", pa.string()),
     ("detail", pa.string()), ("source_file", pa.string()), ("record_key", pa.string())]
)  # fmt: skip
DUPLICATE_SCHEMA = pa.schema([("at", pa.string()), ("file", pa.string()), ("record_key", pa.string()), ("copies", pa.int64())])


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    if not tables:
        return schema.empty_table()
    return pa.concat_tables([t.cast(schema) for t in tables])
