"""A hand-written three-site blocker history, for the engine and store tests: written as each site's
history database would hold it, then into one snapshot store. Made to catch engines that disagree:

* dc1 and dc2 both have a blocker 'b-shared' (same id, different sites: two blockers, not one);
* SKU-300001 is short at every site on every day, with as many 'allocation' as 'pick' snapshots at dc3
  (a tie for its main theme, broken by label);
* an unlinked blocker has no order (no customer, no carrier), and one owner is blank (NULL);
* ages of 9, 21 and 27 minutes make hours of 0.15, 0.35, 0.45 (rounding ties between engines);
* a reason the taxonomy does not know ('mystery') counts under Other;
* a note holds a quote and a semicolon (text travels as data);
* days span two ISO weeks.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd

from handoff_lib.learn import themes

START = dt.date(2025, 6, 5)  # a Thursday: the five days cover two weeks
SITES = ("dc1", "dc2", "dc3")
REVIEWS = ("0900", "1400")


def rows() -> tuple[list[dict], list[dict]]:
    """(blocker rows, order rows) of every site and review."""
    bl: list[dict] = []
    od: list[dict] = []

    def add(site, day, review, bid, reason, owner, detail, order="", customer=None, carrier=None, age=30):
        bl.append({"site": site, "review_date": day, "review_time": review, "blocker_id": bid, "order_id": order or None,
                   "reason": reason, "reason_label": reason.replace("_", " "), "owner": owner, "age_minutes": age,
                   "detail": detail, "source_key": bid})
        if order:
            od.append({"site": site, "review_date": day, "review_time": review, "order_id": order, "customer_id": customer,
                       "customer_name": None if customer is None else f"Customer {customer}", "carrier": carrier,
                       "promise_status": "at_risk" if age > 100 else "safe"})

    for s, site in enumerate(SITES):
        for d in range(5):
            day = START + dt.timedelta(days=d)
            for r, review in enumerate(REVIEWS):
                reason = "short_pick" if (site != "dc3" or r == 0) else "allocation_short"
                add(site, day, review, f"{site}-sku-{d}", reason, "replenishment",
                    f"line 1 short 0 of 4 at A-0{s}-0{d}, SKU-300001 bin empty", f"SO-{site}-{d}", "C-1", "UPS", 9 + 300 * r)
                if site in ("dc1", "dc2") and d == 0:
                    add(site, day, review, "b-shared", "credit_hold", "finance", 'hold H1 code CR "it\'s over; limit"',
                        f"SO-{site}-H", "C-2", "FDX", 21 + 60 * r)
                if site == "dc2":
                    add(site, day, review, f"lbl-{d}", "label_missing", "shipping", f"packed in carton K{d}, no carrier label",
                        f"SO-{site}-L{d}", f"C-{3 + d % 2}", "FDX", 27 + 120 * r)
                if site == "dc3" and d % 2 == 0:
                    add(site, day, review, f"unl-{d}", "unlinked_record", "data team", f'case C{d} cites "SO-999", which matches no order',
                        age=45 + r)
                    add(site, day, review, f"mys-{d}", "mystery", None, "something odd at B-12-01", f"SO-{site}-M{d}", None, "LTL", 600)
    return bl, od


def write_histories(folder: Path) -> list[Path]:
    """One history database per site, as review runs would leave them (snap_blockers, snap_orders)."""
    bl, od = rows()
    paths = []
    for site in SITES:
        path = folder / f"{site}.duckdb"
        bdf = pd.DataFrame([r for r in bl if r["site"] == site])  # noqa: F841 (read by DuckDB by name)
        odf = pd.DataFrame([r for r in od if r["site"] == site])  # noqa: F841
        con = duckdb.connect(str(path))
        con.execute(themes.DEMO_SNAP_BLOCKERS)
        con.execute(themes.DEMO_SNAP_ORDERS)
        con.execute("INSERT INTO snap_blockers BY NAME SELECT * FROM bdf")
        con.execute("INSERT INTO snap_orders BY NAME SELECT * FROM odf")
        con.close()
        paths.append(path)
    return paths


def write_store(folder: Path) -> Path:
    """The three histories exported into one snapshot store under `folder/store`; returns its root."""
    from handoff_lib.history import store

    root = folder / "store"
    for path in write_histories(folder):
        store.export_history(path, root, progress=False)
    return root
