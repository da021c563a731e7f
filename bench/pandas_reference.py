"""The plain-pandas reference: how an analyst would derive order states in a notebook.

`pd.read_csv` every extract, normalise the ids with string methods, `merge` the systems on them, and
derive line and order states with pandas operations, following docs/states.md as closely as a notebook
reasonably would. It is the yardstick for the suite's speed (bench/run.py times it as its own process)
and a cross-check of the suite's states (bench/run.py compares the two on the 100,000-line day).

Knowingly left out, as a notebook would: no row-level validation or reject list (unparseable values
become NaN/NaT, rows with a qty_picked above qty_required are kept), no ambiguity handling in the
crosswalk (the first match wins), no reasons, blockers or promise. Exact duplicate rows are dropped.

    .venv/bin/python bench/pandas_reference.py --data DIR [--out order_states.parquet] [--result R.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent
SITE_FILE = REPO / "parameters" / "demo.yaml"
NOW = "2026-11-24 14:30"

RANKS = [
    "held", "short", "substituted", "delayed", "not_released", "released", "pickable", "picked", "packed",
    "ready_for_handoff", "handed_off", "cancelled",
]  # fmt: skip
RANK = {s: i + 1 for i, s in enumerate(RANKS)}
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def read(folder: Path, name: str) -> pd.DataFrame:
    """pd.read_csv as an analyst would call it (ids as text, so leading zeros survive), duplicates dropped."""
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False, na_values=[""]).drop_duplicates()


def ts(s: pd.Series, tz: str) -> pd.Series:
    """Timestamps in the site timezone: naive text is site time, text ending in Z is UTC."""
    s = s.str.strip()
    utc = s.str.endswith("Z", na=False)
    out = pd.Series(pd.NaT, index=s.index, dtype=f"datetime64[us, {tz}]")
    if utc.any():
        out[utc] = pd.to_datetime(s[utc], utc=True, errors="coerce").dt.tz_convert(tz)
    if (~utc).any():
        out[~utc] = pd.to_datetime(s[~utc], errors="coerce", format="mixed").dt.tz_localize(
            tz, ambiguous="NaT", nonexistent="NaT"
        )
    return out


def num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def norm(s: pd.Series, prefixes: list[str], suffix: str | None = None) -> pd.Series:
    """The site's id normalisation with str methods: upper, no spaces, line suffix and prefix off,
    separators out, leading zeros stripped."""
    s = s.fillna("").str.upper().str.replace(r"\s+", "", regex=True)
    if suffix:
        s = s.str.replace(suffix, "", regex=True)
    if prefixes:
        s = s.str.replace(r"^[\-_./#]*(" + "|".join(sorted(prefixes, key=len, reverse=True)) + ")", "", regex=True)
    s = s.str.replace(r"[\s\-_./#]", "", regex=True).str.lstrip("0")
    return s.where(s != "", None)


def link(refs: pd.Series, *maps: tuple[pd.Series, dict], via: list | None = None) -> pd.Series:
    """The order each reference names: the first (normalised key -> order_id) map that knows it.
    With `via` (a list), appends a Series saying which map (0, 1, ...) gave each link."""
    out = pd.Series(None, index=refs.index, dtype=object)
    which = pd.Series(-1, index=refs.index)
    for i, (keys, mapping) in enumerate(maps):
        hit = out.isna() & keys.notna()
        out[hit] = keys[hit].map(mapping)
        which[hit & out.notna()] = i
    if via is not None:
        via.append(which)
    return out


def derive(folder: Path, site_file: Path = SITE_FILE, now_text: str = NOW) -> pd.DataFrame:
    """order_id, state (and the line states it came from) for every OMS order of the day in `folder`."""
    site = yaml.safe_load(site_file.read_text())
    tz = site["timezone"]
    ids = site["identifiers"]
    true_words = {w.upper() for w in site["booleans"].get(True, site["booleans"].get("true", []))}
    now = pd.Timestamp(now_text, tz=tz)
    today = now.normalize()

    # ---- read every extract
    o = read(folder, "oms_orders.csv")
    ol = read(folder, "oms_order_lines.csv")
    inv = read(folder, "wms_inventory.csv")
    pt = read(folder, "wms_pick_tasks.csv")
    pe = read(folder, "wms_pack_events.csv")
    ho = read(folder, "wms_holds.csv")
    sh = read(folder, "carrier_shipments.csv")
    ai = read(folder, "crm_account_instructions.csv")

    # ---- orders: status, instructions, ship-complete policy
    o["rel"] = (
        o["RelStatus"]
        .str.strip()
        .str.upper()
        .map({"NEW": "not_released", "OPEN": "not_released", "REL": "released", "CXL": "cancelled"})
    )
    o["ordered_at"] = ts(o["OrderDate"], tz)
    o["cancelled"] = (o["rel"] == "cancelled") | o["CancelDate"].notna()
    ai["instr"] = (
        ai["Instruction"]
        .str.strip()
        .str.upper()
        .map(
            {
                "SHIP COMPLETE": "ship_complete",
                "NO SUBS": "no_substitutes",
                "PARTIAL OK": "partial_allowed",
                "SUBS OK": "substitutes_allowed",
            }
        )
    )
    instr = pd.crosstab(ai["Account"], ai["instr"]).gt(0)
    for c in ("ship_complete", "no_substitutes", "partial_allowed", "substitutes_allowed"):
        if c not in instr:
            instr[c] = False
    o = o.merge(instr.add_prefix("acct_"), left_on="SoldTo", right_index=True, how="left")
    for c in ("acct_ship_complete", "acct_no_substitutes", "acct_partial_allowed", "acct_substitutes_allowed"):
        o[c] = o[c].astype("boolean").fillna(False).astype(bool)
    flag = o["ShipComplete"].str.strip().str.upper()
    o["ship_complete"] = np.where(
        flag.isin(true_words) | o["acct_ship_complete"],
        True,
        np.where(flag.notna() | o["acct_partial_allowed"], False, bool(site["policy"].get("ship_complete_default", False))),
    )

    # ---- the crosswalk: normalised keys -> order
    order_key = norm(o["OrderNo"], ids["order"]["prefixes"])
    by_order = dict(zip(order_key, o["OrderNo"]))
    by_po = dict(zip(norm(o["CustPO"], ids["customer_po"]["prefixes"]), o["OrderNo"]))
    pick_rule = ids["pick_ticket"]
    pt["order_id"] = link(pt["ORDER_REF"], (norm(pt["ORDER_REF"], ids["order"]["prefixes"]), by_order),
                          (norm(pt["ORDER_REF"], ids["customer_po"]["prefixes"]), by_po))  # fmt: skip
    by_ticket = dict(zip(norm(pt["PICK_TICKET"], pick_rule["prefixes"], pick_rule["line_suffix"]), pt["order_id"]))
    pe["order_id"] = link(pe["ORDER_REF"], (norm(pe["ORDER_REF"], ids["order"]["prefixes"]), by_order),
                          (norm(pe["ORDER_REF"], ids["customer_po"]["prefixes"]), by_po))  # fmt: skip
    pe["order_id"] = pe["order_id"].fillna(
        link(pe["PICK_TICKET"], (norm(pe["PICK_TICKET"], pick_rule["prefixes"], pick_rule["line_suffix"]), by_ticket))
    )
    by_carton = dict(zip(norm(pe["CARTON"], ids["carton"]["prefixes"]), pe["order_id"]))
    ref = sh["Reference"]
    via: list[pd.Series] = []
    sh["carton_key"] = norm(ref, ids["carton"]["prefixes"])
    sh["order_id"] = link(ref, (sh["carton_key"], by_carton),
                          (norm(ref, pick_rule["prefixes"], pick_rule["line_suffix"]), by_ticket),
                          (norm(ref, ids["order"]["prefixes"]), by_order), (norm(ref, ids["customer_po"]["prefixes"]), by_po), via=via)  # fmt: skip
    sh["by_carton"] = via[0] == 0
    ref = ho["HOLD_REF"]
    ho["order_id"] = link(ref, (norm(ref, ids["order"]["prefixes"]), by_order), (norm(ref, ids["customer_po"]["prefixes"]), by_po),
                          (norm(ref, pick_rule["prefixes"], pick_rule["line_suffix"]), by_ticket),
                          (norm(ref, ids["carton"]["prefixes"]), by_carton))  # fmt: skip

    # ---- per-order facts from the WMS and the carrier
    ho = ho[ho["order_id"].notna() & ho["RELEASED_TS"].isna()]
    holds = ho.groupby("order_id").size().rename("n_open_holds")
    pe["status"] = (
        pe["PACK_STAT"].str.strip().str.upper().map({"OPEN": "open", "PACKED": "packed", "EXC": "exception", "VOID": "cancelled"})
    )
    pe = pe[pe["order_id"].notna() & (pe["status"] != "cancelled")]
    cartons = pd.crosstab(pe["order_id"], pe["status"])
    for c in ("packed", "open", "exception"):
        if c not in cartons:
            cartons[c] = 0
    sh = sh[sh["order_id"].notna()]
    ships = sh.groupby("order_id").agg(
        n_ship=("ShipmentId", "size"),
        n_labelled=("LabelCreated", "count"),
        n_manifested=("Manifested", "count"),
        n_handed=("PickedUp", "count"),
    )
    f = o.set_index("OrderNo")[
        ["rel", "cancelled", "ship_complete", "acct_no_substitutes", "ordered_at", "Carrier", "SvcLevel", "ShipByOverride"]
    ]
    f = (
        f.join(holds)
        .join(cartons[["packed", "open", "exception"]])
        .join(ships)
        .fillna(
            {
                "n_open_holds": 0,
                "packed": 0,
                "open": 0,
                "exception": 0,
                "n_ship": 0,
                "n_labelled": 0,
                "n_manifested": 0,
                "n_handed": 0,
            }
        )
    )
    f["handed_off"] = (f["n_ship"] > 0) & (f["n_handed"] == f["n_ship"])
    f["is_packed"] = (f["packed"] > 0) & (f["open"] == 0) & (f["exception"] == 0)
    # every packed carton needs a labelled shipment: one citing the carton, else an order-level one (one
    # carton each, labelled shipments first; a consolidated carrier's first shipment carries them all)
    packed = pe[pe["status"] == "packed"].assign(carton_key=lambda d: norm(d["CARTON"], ids["carton"]["prefixes"]))
    cited = sh[sh["by_carton"]].sort_values("ShipmentId").drop_duplicates(["order_id", "carton_key"])
    packed = packed.merge(
        cited[["order_id", "carton_key", "LabelCreated"]], on=["order_id", "carton_key"], how="left", indicator=True
    )
    direct_unlabelled = packed[(packed["_merge"] == "both") & packed["LabelCreated"].isna()].groupby("order_id").size()
    uncited = packed[packed["_merge"] == "left_only"].groupby("order_id").size()
    order_level_labelled = sh[~sh["by_carton"] & sh["LabelCreated"].notna()].groupby("order_id").size()
    cov = (
        pd.DataFrame({"direct": direct_unlabelled, "uncited": uncited, "labelled": order_level_labelled})
        .reindex(f.index)
        .fillna(0)
    )
    consolidated = f["Carrier"].str.strip().str.upper().isin([c.upper() for c in site["policy"].get("consolidated_carriers", [])])
    cov["unlabelled"] = cov["direct"] + np.where(
        consolidated, np.where(cov["labelled"] > 0, 0, cov["uncited"]), (cov["uncited"] - cov["labelled"]).clip(lower=0)
    )
    f["ready"] = (
        f["is_packed"]
        & (f["n_ship"] > 0)
        & (f["n_labelled"] == f["n_ship"])
        & (f["n_manifested"] == f["n_ship"])
        & (cov["unlabelled"] == 0)
    )

    # ---- cutoff: explicit ship-by, else the first pickup of carrier + service at or after max(ordered, today 00:00)
    f["cutoff"] = ts(f["ShipByOverride"], tz)
    start = f["ordered_at"].where(f["ordered_at"] > today, today).fillna(today)
    need = f["cutoff"].isna()
    cal = pd.DataFrame(
        [
            (
                r["carrier"].upper(),
                str(r["service"]).upper(),
                pd.Timestamp(f"{(today + pd.Timedelta(days=d)):%Y-%m-%d} {r['pickup']}", tz=tz),
            )
            for d in range(15)
            for r in site["cutoffs"]
            if WEEKDAYS[(today + pd.Timedelta(days=d)).weekday()] in r["days"]
        ],
        columns=["carrier", "service", "pickup_at"],
    )
    key = pd.DataFrame({"order_id": f.index, "carrier": f["Carrier"].str.strip().str.upper().to_numpy(),
                        "service": f["SvcLevel"].str.strip().str.upper().to_numpy(), "start": start.to_numpy()})  # fmt: skip
    exact = key.merge(cal[cal["service"] != "*"], on=["carrier", "service"])
    star = key.merge(cal[cal["service"] == "*"].drop(columns="service"), on="carrier")
    star = star[~star.set_index(["carrier", "service", star["pickup_at"].dt.date]).index.isin(
        exact.set_index(["carrier", "service", exact["pickup_at"].dt.date]).index)]  # fmt: skip
    cand = pd.concat([exact, star])
    best = cand[cand["pickup_at"] >= cand["start"]].groupby("order_id")["pickup_at"].min()
    f["cutoff"] = f["cutoff"].where(~need, f.index.to_series().map(best))
    f["past_cutoff"] = f["cutoff"] < now

    # ---- order lines with their tasks and stock
    ol["qty"] = num(ol["OrderQty"])
    ol["alloc"] = num(ol["AllocQty"])
    ol["line_no"] = num(ol["LineNo"]).astype(float)
    ol["subs_ok"] = ol["SubsOK"].str.strip().str.upper().isin(true_words)
    ol["subs_no"] = ol["SubsOK"].notna() & ~ol["subs_ok"]
    pt["status"] = (
        pt["TASK_STAT"].str.strip().map({"10": "open", "20": "in_progress", "30": "picked", "40": "short", "90": "cancelled"})
    )
    pt = pt[pt["order_id"].notna() & (pt["status"] != "cancelled")].copy()
    pt["line_no"] = num(pt["LINE"]).astype(float)  # a task without a line number: the order's first line of that SKU
    first_line = ol.groupby(["OrderNo", "Item"], as_index=False)["line_no"].min().rename(columns={"line_no": "first_line"})
    pt = pt.merge(first_line, left_on=["order_id", "ITEM"], right_on=["OrderNo", "Item"], how="left")
    pt["line_no"] = pt["line_no"].fillna(pt["first_line"])
    pt["req"], pt["picked"] = num(pt["QTY_REQ"]), num(pt["QTY_PICK"]).fillna(0)
    pt["is_open"] = pt["status"].isin(["open", "in_progress"])
    pt["is_short"] = (pt["status"] == "short") | ((pt["status"] == "picked") & (pt["picked"] < pt["req"]))
    sub = pt["SUB_ITEM"].fillna("").str.strip().str.upper()
    pt["is_sub"] = (sub != "") & (sub != pt["ITEM"].fillna("").str.strip().str.upper())
    tasks = pt.groupby(["order_id", "line_no"]).agg(
        n_tasks=("TASK_ID", "size"), n_open=("is_open", "sum"), n_short=("is_short", "sum"),
        qty_picked=("picked", "sum"), qty_required=("req", "sum"), has_sub=("is_sub", "any"),
    )  # fmt: skip
    inv["pickable"] = num(inv["QTY_OH"]).fillna(0) - num(inv["QTY_HOLD"]).fillna(0)
    stock = inv.groupby("ITEM")["pickable"].sum()

    x = ol.merge(f, left_on="OrderNo", right_index=True, how="inner")
    x = x.merge(tasks, left_on=["OrderNo", "line_no"], right_index=True, how="left")
    x[["n_tasks", "n_open", "n_short", "qty_picked", "qty_required"]] = x[
        ["n_tasks", "n_open", "n_short", "qty_picked", "qty_required"]
    ].fillna(0)
    x["has_sub"] = x["has_sub"].astype("boolean").fillna(False).astype(bool)
    x["sku_known"] = x["Item"].isin(stock.index)
    x["pickable_qty"] = x["Item"].map(stock).fillna(0)

    # ---- line states (docs/states.md precedence)
    x["alloc_short"] = (
        (x["rel"] == "released")
        & (x["alloc"].fillna(x["qty"]) < x["qty"])
        & (x["qty_required"] < x["qty"])
        & (x["qty_picked"] < x["qty"])
    )
    x["is_picked"] = (x["n_tasks"] > 0) & (x["n_open"] == 0) & (x["qty_picked"] >= x["qty"])
    x["is_short"] = (x["n_short"] > 0) & (x["n_open"] == 0) & (x["qty_picked"] < x["qty"])
    x["sub_blocked"] = x["has_sub"] & (x["acct_no_substitutes"] | x["subs_no"])
    x["complete_waits"] = x["ship_complete"] & x.groupby("OrderNo")["alloc_short"].transform("any")
    progress = np.select(
        [
            (x["rel"] == "not_released") & (x["n_tasks"] == 0),
            x["is_picked"] & x["handed_off"],
            x["is_picked"] & x["ready"],
            x["is_picked"] & x["is_packed"],
            x["is_picked"],
            x["alloc_short"] | ~x["sku_known"],
            x["n_open"] > 0,
            (x["n_tasks"] == 0) & (x["alloc"].fillna(x["qty"]) >= x["qty"]) & (x["pickable_qty"] >= x["qty"]),
        ],
        ["not_released", "handed_off", "ready_for_handoff", "packed", "picked", "released", "pickable", "pickable"],
        "released",
    )
    x["state"] = np.select(
        [
            x["cancelled"],
            x["handed_off"] & (x["is_picked"] | (x["n_tasks"] == 0)),
            (x["n_open_holds"] > 0) | x["complete_waits"],
            x["is_short"],
            x["sub_blocked"],
            x["past_cutoff"].fillna(False).astype(bool),
        ],
        ["cancelled", "handed_off", "held", "short", "substituted", "delayed"],
        progress,
    )
    x["backorder"] = x["alloc_short"] & ~x["ship_complete"] & ~x["state"].isin(["cancelled", "handed_off"])

    # ---- roll-up: the least advanced line; backorder lines only count when nothing else is left
    x["rank"] = x["state"].map(RANK) + np.where(x["backorder"], 100, 0)
    rolled = x.groupby("OrderNo")["rank"].min()
    out = pd.DataFrame({"order_id": f.index})
    out["state"] = out["order_id"].map((rolled % 100).map({v: k for k, v in RANK.items()}))
    no_lines = out["state"].isna()
    fallback = np.where(f["cancelled"], "cancelled", np.where(f["rel"] == "not_released", "not_released", "released"))
    out.loc[no_lines, "state"] = pd.Series(fallback, index=out.index)[no_lines]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="plain-pandas order states for one demo day")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", default="", help="parquet file for the order states")
    ap.add_argument("--result", default="", help="JSON file for the timing")
    a = ap.parse_args()
    t0 = time.perf_counter()
    states = derive(Path(a.data))
    seconds = time.perf_counter() - t0
    if a.out:
        states.to_parquet(a.out, index=False)
    res = {
        "status": "ok",
        "seconds": round(seconds, 3),
        "orders": len(states),
        "states": states["state"].value_counts().to_dict(),
    }
    if a.result:
        Path(a.result).write_text(json.dumps(res, indent=2))
    else:
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
