"""Write parameters/demo_labelled_notes.csv (text,reason): the demo site's labelled blocker notes.

Seeded and reproducible: `python bench/make_labelled_notes.py [--seed 11] [--per-reason 125] [--out ...]`.
Each note is put together from a reason's phrases (several wordings per idea, some Spanish, German and
Portuguese), optional context (bins, SKUs, orders, people, times, quantities) in random order and
punctuation, then roughed up the way floor notes are: abbreviations, typos (dropped, doubled, swapped or
neighbouring keys), shouting or all lower case. Exact duplicates are dropped, so no note text appears
twice and a held-out split never sees its own test notes.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "parameters" / "demo_labelled_notes.csv"

# reason -> phrases. {loc} {sku} {n} {m} {ord} {who} {day} {time} {po} {lot} {door} {carrier} are filled in.
PHRASES: dict[str, list[str]] = {
    "short_stockout": [
        "bin empty",
        "bin is empty",
        "empty bin at {loc}",
        "nothing in the bin",
        "no stock",
        "no stock on hand",
        "out of stock",
        "OOS",
        "short {n} ea",
        "short {n} units",
        "picked {m} of {n}",
        "only found {m}",
        "found {m} only, need {n}",
        "system says {n} but only {m} there",
        "sys shows {n} on hand, physically 0",
        "inventory count wrong, 0 in loc",
        "cant find item anywhere",
        "item not found at {loc}",
        "zero on hand",
        "stockout on {sku}",
        "qty short on {sku}",
        "short pick {sku}",
        "phantom inventory {loc}",
        "checked overflow, none",
        "nothing avail to allocate",
        "no inventory to allocate",
        "ran out of {sku}",
        "last case already picked, short",
        "cycle count needed - shows stock but empty",
        "backordered, no stock",
        "sin stock",
        "falta producto en {loc}",
        "ubicacion vacia",
        "faltan {n} unidades",
        "agotado {sku}",
        "Fach leer",
        "kein Bestand",
        "Fehlmenge {n} Stk",
        "Bestand 0 bei {sku}",
        "sem estoque",
        "falta {n} pecas",
        "estoque zerado {sku}",
    ],
    "replenishment": [
        "replen not done",
        "replenishment not done",
        "waiting on replen",
        "replen pending from reserve",
        "waiting for drop from reserve",
        "pick face empty, reserve has {n}",
        "pallet still up in reserve",
        "need a drop from upper level",
        "reach truck hasnt dropped the pallet",
        "min/max didnt trigger",
        "replen task open since {time}",
        "top off not done for {loc}",
        "stock in reserve {loc} not brought down",
        "forklift replen late",
        "no letdown for {sku}",
        "letdown not completed",
        "replen wave not released",
        "reserve pallet not moved to pick face",
        "waiting on replenishment task",
        "replen trigger missed",
        "pick slot needs refill from overstock",
        "overstock has it, forward pick empty",
        "drop requested {time}",
        "replen queue backed up",
        "asked driver for replen twice",
        "refill pick face pls",
        "reposicion pendiente",
        "falta reposicion desde reserva",
        "esperando reposicion {loc}",
        "Nachschub fehlt",
        "Nachschub aus Reserve ausstehend",
        "Palette noch im Hochregal",
        "reposicao nao feita",
        "aguardando reabastecimento",
        "reabastecer posicao {loc}",
    ],
    "location_slotting": [
        "wrong item in slot {loc}",
        "item in wrong location",
        "slotted in wrong loc",
        "loc mislabeled",
        "location label wrong at {loc}",
        "bin label missing {loc}",
        "two skus in same bin",
        "mixed bin {loc}",
        "sku moved but loc not updated",
        "putaway to wrong location",
        "item found in {loc} not {loc}",
        "slotting error aisle {aisle}",
        "location not in system",
        "loc {loc} doesnt exist in wms",
        "wrong slot assignment",
        "bin swapped with neighbour",
        "product in overflow not primary loc",
        "re-slot needed for {sku}",
        "location capacity too small, item spills to next bin",
        "pick path sends to old slot",
        "slot mapping wrong",
        "{sku} sits in {loc} but system says {loc}",
        "bin {loc} has wrong product",
        "needs reslotting",
        "ubicacion equivocada",
        "producto en ubicacion incorrecta {loc}",
        "etiqueta de ubicacion mal",
        "falscher Lagerplatz",
        "Artikel im falschen Fach {loc}",
        "Platz falsch beschriftet",
        "local errado",
        "produto no endereco errado {loc}",
        "endereco sem etiqueta",
    ],
    "item_master_data": [
        "dims wrong in item master",
        "dimensions missing for {sku}",
        "item dims not set up",
        "weight off vs expected",
        "weight mismatch {n} lb",
        "wt in system wrong",
        "UPC wont scan",
        "barcode doesnt match item",
        "no UPC on file",
        "case qty wrong in system",
        "UOM wrong ea vs cs",
        "pack qty {n} in sys, actual {m}",
        "item master needs update",
        "cube wrong for {sku}",
        "oversize per dims",
        "item setup incomplete",
        "gtin missing",
        "scan gives different sku",
        "item not set up for shipping",
        "master data wrong for {sku}",
        "no weight on item record",
        "length x width wrong",
        "catch weight not maintained",
        "item attributes missing",
        "hazmat flag missing on item",
        "dimensiones incorrectas",
        "peso incorrecto en sistema",
        "codigo de barras no coincide",
        "Stammdaten falsch",
        "Gewicht im System falsch",
        "Abmessungen fehlen fuer {sku}",
        "EAN passt nicht",
        "cadastro do item errado",
        "peso errado no sistema",
        "codigo de barras nao bate",
    ],
    "packaging_carton": [
        "no carton size {size}",
        "out of cartons",
        "no {size} boxes left",
        "need bigger box",
        "box too small",
        "out of tape",
        "tape gun empty",
        "no dunnage",
        "void fill out",
        "no bubble wrap",
        "out of stretch wrap",
        "no pallets for LTL",
        "need pallet for {ord}",
        "carton shortage at station {n}",
        "cartonization picked wrong box",
        "no mailers",
        "ran out of {size} ctns",
        "box supplier late",
        "no poly bags",
        "corner boards out",
        "no shrink wrap",
        "packing supplies low",
        "wrong carton suggested, doesnt fit",
        "need double wall box",
        "no hay cajas",
        "sin cinta",
        "falta caja tamano {size}",
        "sin material de embalaje",
        "keine Kartons",
        "Klebeband leer",
        "Karton zu klein",
        "kein Fuellmaterial",
        "sem caixa",
        "acabou a fita",
        "caixa pequena demais",
        "falta material de embalagem",
    ],
    "labeling_docs_compliance": [
        "label printer jam",
        "label wont print",
        "lbl printer down station {n}",
        "label smudged reprint",
        "packing slip missing",
        "no packing list",
        "need commercial invoice",
        "commercial inv not ready",
        "hazmat docs needed",
        "SDS missing",
        "export docs pending",
        "customs paperwork",
        "cert of origin needed",
        "customer needs GS1 labels",
        "ASN label missing",
        "compliance labels per routing guide",
        "BOL not printed",
        "carton labels wrong format",
        "UCC-128 label needed",
        "lithium battery label missing",
        "docs not printed",
        "zpl error on label",
        "ship label voided, reprint",
        "denied party screening",
        "customer routing guide labels",
        "falta factura comercial",
        "etiqueta no imprime",
        "documentos de exportacion pendientes",
        "Etikettendrucker klemmt",
        "Lieferschein fehlt",
        "Zollpapiere fehlen",
        "Gefahrgutpapiere noetig",
        "etiqueta nao imprime",
        "falta nota fiscal",
        "documentos de exportacao pendentes",
    ],
    "carrier_pickup": [
        "{carrier} missed pickup",
        "carrier no show",
        "driver didnt come",
        "pickup rescheduled to tmrw",
        "trailer full",
        "no trailer at door {door}",
        "carrier cut off early",
        "{carrier} truck late",
        "LTL carrier rescheduled",
        "service not available to zip",
        "carrier rejected load",
        "pickup window missed",
        "driver left without {ord}",
        "appointment not booked with carrier",
        "freight not tendered",
        "need PRO number",
        "{carrier} system down cant manifest",
        "carrier capacity full today",
        "no dock appt",
        "truck broke down",
        "rate quote needed for LTL",
        "carrier refused hazmat",
        "shipment not picked up",
        "waiting for {carrier} pickup",
        "transportista no vino",
        "camion no llego",
        "recoleccion reprogramada",
        "Spediteur nicht gekommen",
        "Abholung verschoben",
        "LKW voll",
        "transportadora nao veio",
        "coleta remarcada",
        "caminhao atrasado",
    ],
    "credit_payment": [
        "credit hold",
        "credit limit exceeded",
        "past due {n} days",
        "AR hold",
        "hold per AR",
        "waiting on prepayment",
        "prepay not received",
        "payment pending",
        "invoice overdue",
        "account on credit hold",
        "finance to release",
        "over credit limit by ${amount}",
        "cc declined",
        "card declined",
        "wire not received",
        "need payment before ship",
        "collections hold",
        "open balance too high",
        "terms exceeded",
        "awaiting credit approval",
        "COD not approved",
        "check bounced",
        "credit review pending",
        "unpaid invoices",
        "release after payment clears",
        "retenido por credito",
        "pago pendiente",
        "limite de credito excedido",
        "Kreditlimit ueberschritten",
        "Zahlung ausstehend",
        "Vorkasse fehlt",
        "bloqueio de credito",
        "pagamento pendente",
        "limite de credito estourado",
    ],
    "address": [
        "address invalid",
        "addr invalid suite missing",
        "bad zip",
        "zip code wrong",
        "PO box not allowed",
        "address validation failed",
        "undeliverable address",
        "missing apt number",
        "no street number",
        "ship-to incomplete",
        "city and zip dont match",
        "address not found by carrier",
        "need suite #",
        "residential flag wrong",
        "wrong state on address",
        "ship to address changed, confirm",
        "postcode invalid",
        "no phone for delivery address",
        "addr line 2 missing",
        "cannot validate ship-to",
        "ship to is a PO box",
        "direccion invalida",
        "falta codigo postal",
        "direccion incompleta",
        "Adresse ungueltig",
        "PLZ falsch",
        "Hausnummer fehlt",
        "endereco invalido",
        "CEP errado",
        "falta numero do endereco",
    ],
    "customer_request": [
        "cust requested hold",
        "customer asked to hold",
        "hold per customer",
        "customer will call before ship",
        "combine with next PO",
        "customer wants to combine orders",
        "deliver after the {n}th",
        "ship with {po}",
        "cust called, hold til monday",
        "customer changed their mind",
        "buyer asked to delay",
        "ship on request only",
        "customer wants partial held",
        "customer requested date change",
        "hold for customer pickup",
        "customer asked to add lines",
        "wait for customer confirmation",
        "per buyer {who} do not ship yet",
        "customer needs appointment delivery",
        "cust wants to change ship method",
        "customer asked to cancel line",
        "hold until customer approves",
        "customer requested ship complete",
        "consolidate per customer",
        "cliente pidio retener",
        "cliente quiere combinar pedidos",
        "esperar confirmacion del cliente",
        "Kunde wuenscht Zurueckhaltung",
        "Kunde ruft an",
        "auf Kundenwunsch warten",
        "cliente pediu para segurar",
        "aguardar confirmacao do cliente",
        "cliente quer juntar pedidos",
    ],
    "quality_damage": [
        "item damaged",
        "damaged at pack",
        "crushed box",
        "broken on shelf",
        "leaking",
        "product leaking",
        "QA hold lot {lot}",
        "qa inspection required",
        "recall check",
        "expired product",
        "short dated",
        "lot on hold",
        "water damage",
        "torn packaging",
        "dented cans",
        "glass broken in case",
        "quality hold",
        "inspect before ship",
        "contaminated",
        "mold on product",
        "failed inspection",
        "QC reject",
        "best before passed",
        "damaged pallet",
        "scratched unit, customer wont accept",
        "producto danado",
        "caja aplastada",
        "retenido por calidad",
        "Ware beschaedigt",
        "Qualitaetssperre",
        "Karton zerdrueckt",
        "produto avariado",
        "caixa amassada",
        "bloqueio de qualidade",
    ],
    "labor_capacity": [
        "short staffed",
        "not enough pickers",
        "no forklift driver",
        "wave too big for cutoff",
        "pack station down",
        "call outs on {shift} shift",
        "understaffed today",
        "no one on the pack line",
        "conveyor down",
        "need more people in packing",
        "backlog at pack out",
        "team on break",
        "overtime not approved",
        "temps didnt show",
        "only {n} packers today",
        "sorter down",
        "equipment down",
        "reach truck broken",
        "labor short in zone {aisle}",
        "too many orders for cutoff",
        "capacity maxed",
        "no trained staff for hazmat",
        "shift change delay",
        "batteries dead on RF guns and lifts",
        "waiting on a picker",
        "falta personal",
        "poca gente hoy",
        "montacargas descompuesto",
        "Personalmangel",
        "zu wenig Leute",
        "Stapler defekt",
        "falta de pessoal",
        "pouca gente hoje",
        "empilhadeira quebrada",
    ],
    "system_data_error": [
        "order not in system",
        "order not in wms",
        "interface down",
        "sync error between oms and wms",
        "duplicate order in system",
        "RF gun keeps timing out",
        "scanner error",
        "wms error {n}",
        "system crash",
        "order stuck in status",
        "cant release, system error",
        "EDI failed",
        "integration error",
        "data missing from feed",
        "task not generated",
        "no pick task created",
        "status wont update",
        "record locked",
        "server down",
        "order dropped twice",
        "api error from oms",
        "wms froze",
        "allocation job failed",
        "batch job didnt run",
        "ticket stuck in queue",
        "error del sistema",
        "pedido no aparece en sistema",
        "sistema caido",
        "Systemfehler",
        "Auftrag nicht im System",
        "Schnittstelle ausgefallen",
        "erro de sistema",
        "pedido nao aparece no sistema",
        "sistema fora do ar",
    ],
    "other": [
        "see notes",
        "see email",
        "call me",
        "pls call",
        "ask {who}",
        "per {who}",
        "fyi",
        "hold",
        "check",
        "??",
        "pls advise",
        "dont ship yet",
        "talk to lead",
        "do not ship until further notice",
        "tbd",
        "pending",
        "on hold - see supervisor",
        "wait",
        "question on this one",
        "ask CS",
        "special handling",
        "see comments",
        "reviewing",
        "manager to decide",
        "not sure why held",
        "ver notas",
        "preguntar a {who}",
        "siehe Notiz",
        "bitte klaeren",
        "ver observacoes",
        "perguntar ao {who}",
    ],
}
# Context that any note can carry: it says nothing about the reason.
CONTEXT = [
    "{ord}",
    "ord {ord}",
    "re {ord}",
    "loc {loc}",
    "@ {loc}",
    "sku {sku}",
    "{sku}",
    "item {sku}",
    "per {who}",
    "- {who}",
    "{who}",
    "{time}",
    "at {time}",
    "pls",
    "asap",
    "pls advise",
    "urgent",
    "fyi",
    "thx",
    "!!",
    "2nd time",
    "again",
    "{day}",
    "today",
    "wave {wave}",
    "tote {tote}",
    "line {n}",
    "pt {pt}",
]
ABBREV = {
    "please": "pls",
    "customer": "cust",
    "location": "loc",
    "quantity": "qty",
    "order": "ord",
    "with": "w/",
    "carton": "ctn",
    "cartons": "ctns",
    "damaged": "dmgd",
    "received": "rcvd",
    "warehouse": "whse",
    "because": "bc",
    "replenishment": "replen",
    "available": "avail",
    "number": "#",
    "address": "addr",
    "system": "sys",
    "tomorrow": "tmrw",
    "before": "b4",
    "without": "w/o",
    "label": "lbl",
    "weight": "wt",
    "inventory": "inv",
    "dimensions": "dims",
    "supervisor": "sup",
    "shipment": "shpmt",
    "pickup": "p/u",
}
NEAR = dict(zip("qwertyuiopasdfghjklzxcvbnm", "wertyuiopqsdfghjklazxcvbnmx"))
WHO = ["Mike", "jsmith", "Dana", "K. Wong", "tnguyen", "Ana", "Jorge", "Sven", "Joao", "lead", "sup", "night sup", "CS", "Priya"]
CARRIERS = ["UPS", "FedEx", "FDX", "LTL", "XPO", "Estes", "DHL", "the carrier"]
DAYS = ["mon", "Monday", "tue", "wed", "thurs", "fri", "Friday", "tmrw", "yday"]


def fill(rng: random.Random, text: str) -> str:
    def loc() -> str:
        return f"{rng.choice('ABCDEFGHJKLM')}-{rng.randint(1, 99):02d}-{rng.randint(1, 9):02d}"

    values = {
        "loc": loc,
        "sku": lambda: rng.choice(["SKU-", "sku ", "SKU", "#", ""]) + str(rng.randint(100000, 999999)),
        "n": lambda: str(rng.randint(2, 60)),
        "m": lambda: str(rng.randint(0, 4)),
        "ord": lambda: rng.choice(["SO-", "SO", "ord ", "#"]) + str(rng.randint(20000, 29999)),
        "who": lambda: rng.choice(WHO),
        "day": lambda: rng.choice(DAYS),
        "time": lambda: f"{rng.randint(6, 22)}:{rng.choice(['00', '15', '30', '45', '10'])}",
        "po": lambda: f"PO {rng.randint(4500000, 4599999)}",
        "lot": lambda: f"{rng.randint(20, 26)}-{rng.randint(100, 999)}",
        "door": lambda: str(rng.randint(1, 24)),
        "carrier": lambda: rng.choice(CARRIERS),
        "size": lambda: rng.choice(["A", "B", "C", "D", "12x12x8", "18x14x10", "24x18x18", "XL"]),
        "aisle": lambda: rng.choice("ABCDEFGH") + str(rng.randint(1, 30)),
        "amount": lambda: f"{rng.randint(1, 90)},{rng.randint(100, 999)}",
        "shift": lambda: rng.choice(["1st", "2nd", "3rd", "night", "day"]),
        "wave": lambda: f"W{rng.randint(1, 40):02d}",
        "tote": lambda: f"T{rng.randint(1000, 9999)}",
        "pt": lambda: f"PT{rng.randint(100000, 999999)}",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)](), text)


def typo(rng: random.Random, word: str) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randint(1, len(word) - 2)
    kind = rng.random()
    if kind < 0.3:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap
    if kind < 0.55:
        return word[:i] + word[i + 1 :]  # drop
    if kind < 0.75:
        return word[:i] + word[i] + word[i:]  # double
    c = word[i].lower()
    return word[:i] + NEAR.get(c, c) + word[i + 1 :]  # neighbouring key


def roughen(rng: random.Random, text: str) -> str:
    words = text.split(" ")
    out = []
    for w in words:
        low = w.lower()
        if low in ABBREV and rng.random() < 0.5:
            w = ABBREV[low]
        elif rng.random() < 0.07:
            w = typo(rng, w)
        out.append(w)
    text = " ".join(out)
    style = rng.random()
    if style < 0.35:
        text = text.lower()
    elif style < 0.5:
        text = text.upper()
    elif style < 0.6:
        text = text[:1].upper() + text[1:]
    if rng.random() < 0.15:
        text = text.rstrip(".!? ") + rng.choice(["!", "!!", "?", ".", "...", " ??"])
    if rng.random() < 0.05:
        text = "  " + text + " "
    return text


def note(rng: random.Random, reason: str) -> str:
    phrases = PHRASES[reason]
    parts = [fill(rng, rng.choice(phrases))]
    if rng.random() < 0.25:
        second = fill(rng, rng.choice(phrases))
        if second != parts[0]:
            parts.append(second)
    for _ in range(rng.choices([0, 1, 2, 3], [0.3, 0.4, 0.22, 0.08])[0]):
        ctx = fill(rng, rng.choice(CONTEXT))
        parts.insert(rng.randint(0, len(parts)), ctx)
    text = parts[0]
    for p in parts[1:]:
        text += rng.choice([" - ", ", ", "; ", " ", ". ", " / ", " -- ", " | "]) + p
    return roughen(rng, text)


def generate(seed: int = 11, per_reason: int = 125) -> list[tuple[str, str]]:
    """(text, reason) rows, `per_reason` distinct notes per reason, shuffled; deterministic for a seed."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    for reason in PHRASES:
        n, tries = 0, 0
        while n < per_reason and tries < per_reason * 50:
            tries += 1
            text = note(rng, reason)
            key = " ".join(text.lower().split())
            if key in seen:
                continue
            seen.add(key)
            rows.append((text, reason))
            n += 1
    rng.shuffle(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--per-reason", type=int, default=125)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = generate(args.seed, args.per_reason)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "reason"])
        w.writerows(rows)
    print(f"{len(rows)} labelled notes ({len(PHRASES)} reasons) written to {args.out}")


if __name__ == "__main__":
    main()
