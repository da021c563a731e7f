"""Order histories written here, not by handoff_lib/load/demo.py, for the calibration tests.

`planted`: a history where the right buffer is known by construction. Reviews at 09:00, 12:00 and 16:00
every day; every order is placed and released at 10:00 two days before its ship-by day, has one line and
10 minutes of work (pick_per_line 10, no pack/label/manifest minutes).

* late orders (a fifth of the others): ship-by 19:00-20:00, handed off the next day or never. The 16:00
  review sees 180-240 minutes left: only a buffer of 240 (10 + 240 > 240) warns every one of them there,
  180 catches a sixth, 120 none.
* on time "A" (two fifths): ship-by 18:00, handed off between 12:30 and 15:00. The 12:00 review sees 360
  minutes left: a buffer of 360 or more warns them (10 + 360 > 360) and drops precision to about 0.4.
* on time "B" (two fifths): handed off the day before, seen only with 32 hours or more left.
* customer SLOW (one order a day, half of them late): ship-by 23:00, on-time orders handed off at 13:00.
  Its late orders need 480 (10 + 480 > 420 at 16:00); 720 would warn its on-time ones at 12:00 (660 left).

So on every month: buffer 240 has precision 1 and catches every late order but SLOW's; 360 and more fall
below precision 0.8 for the site; SLOW alone is best served by 480. `wms=True` adds pick, pack and carrier
times with known step minutes (STEP_MINUTES).

`noisy`: eight sellers with different shares late and random times, for the learned score.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

FIRST, LAST = dt.date(2025, 1, 1), dt.date(2025, 6, 30)
STEP_MINUTES = {"pick_per_line": 12, "pack": 8, "label": 3, "manifest": 20}
RIGHT_BUFFER, SLOW_BUFFER = 240, 480

SITE = """# A planted order history (tests/planted_history.py): the right buffer is known.
site: planted
name: Planted history
timezone: UTC

data:
  folder: {data}
  allowed_roots: [{root}]

outputs: {outputs}

reviews:
  times: ["09:00", "12:00", "16:00"]
  days: [mon, tue, wed, thu, fri, sat, sun]   # every day

sources:
  orders:
    file: orders.csv
    columns:
      order_id: order_id
      customer_id: customer_id
      ordered_at: ordered_at
      released_at: released_at
      release_status: status
      ship_by: ship_by
      carrier: {{value: TRUCK}}
  order_lines:
    file: order_lines.csv
    columns: {{order_id: order_id, line_no: line_no, sku: sku, qty: qty, unit_price: unit_price, ship_from: ship_from}}
  shipments:
    file: shipments.csv
    columns:
      shipment_id: shipment_id
      reference: order_id
      carrier: {{value: TRUCK}}
      label_created_at: label_created_at
      manifested_at: manifested_at
      handed_off_at: handed_off_at
  pick_tasks: {pick_tasks}
  pack_events: {pack_events}
  inventory: {{file: null}}
  holds: {{file: null}}

cutoffs: []                          # the history carries its own ship-by

identifiers:
  order: {{strip_zeros: false}}
  shipment: {{strip_zeros: false}}

backtest:
  ship_by_known_from: {known_from}

policy:
  reasons: {{}}
  hold_codes: {{}}
  pack_exception_codes: {{}}
  note_rules: []
  not_released_within_minutes: 120
  label_due_minutes_after_pack: 20
  paperwork_due_minutes_before_cutoff: 45
  priority:
    tier_points: {{}}
    cutoff_bands: []
    value_bands: []
    line_bands: []
  # Work left and the buffer on top of it (docs/states.md, promise rule).
  work_minutes: {{pick_per_line: 10, pack: 0, label: 0, manifest: 0}}
  buffer_minutes: 60                 # the site's guess before calibrating
  buffer_by_customer: {{}}
  transit_days: []
  transit_days_default: 2
  risk_score:
    enabled: false                   # the learned score is off until calibrate says otherwise
    threshold: 0.5
"""

PICK_TASKS = ("{file: pick_tasks.csv, columns: {task_id: task_id, order_ref: order_id, line_no: line_no, sku: sku, "
              "qty_required: qty, qty_picked: qty, status: status, updated_at: updated_at}}")
PACK_EVENTS = "{file: pack_events.csv, columns: {carton_id: carton_id, order_ref: order_id, status: status, event_at: event_at}}"


def _ts(t: dt.datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M")


def write_site(folder: Path, known_from: str = "ordered", wms: bool = False) -> Path:
    """The site file of a history written into `folder` (data in folder/data)."""
    text = SITE.format(data=folder / "data", root=folder, outputs=folder / "outputs", known_from=known_from,
                       pick_tasks=PICK_TASKS if wms else "{file: null}", pack_events=PACK_EVENTS if wms else "{file: null}")
    path = folder / "site.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _write(folder: Path, name: str, header: list[str], rows: list[tuple]) -> None:
    with open(folder / name, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def planted(folder: Path, wms: bool = False, seed: int = 5, known_from: str = "ordered") -> Path:
    """Write the planted history (see the module text) and its site file into `folder`; returns the site file."""
    rng = random.Random(seed)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    orders, lines, ships, tasks, packs = [], [], [], [], []
    day, n = FIRST, 0
    while day <= LAST:
        kinds = ["late"] + ["A"] * 2 + ["B"] * 2 + rng.sample(["late", "A", "A", "B", "B"], 1) + ["slow"]
        for kind in kinds:
            n += 1
            oid = f"P{n:05d}"
            placed = dt.datetime.combine(day - dt.timedelta(days=2), dt.time(10, 0))
            customer = "SLOW" if kind == "slow" else f"C{n % 3 + 1}"
            if kind == "late":
                ship_by = dt.datetime.combine(day, dt.time(19, 0)) + dt.timedelta(minutes=rng.randrange(1, 60))
                handed = None if rng.random() < 0.3 else ship_by + dt.timedelta(hours=14)
            elif kind == "A":
                ship_by = dt.datetime.combine(day, dt.time(18, 0))
                handed = dt.datetime.combine(day, dt.time(12, 30)) + dt.timedelta(minutes=rng.randrange(0, 150))
            elif kind == "B":
                ship_by = dt.datetime.combine(day, dt.time(17, 0)) + dt.timedelta(minutes=rng.randrange(0, 180))
                handed = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(10, 0))
            else:  # SLOW: half late, else handed off the day before
                ship_by = dt.datetime.combine(day, dt.time(23, 0))
                handed = ship_by + dt.timedelta(hours=5) if rng.random() < 0.5 else dt.datetime.combine(day, dt.time(13))
            orders.append((oid, customer, _ts(placed), _ts(placed), "released", _ts(ship_by)))
            lines.append((oid, 1, f"SKU{n % 17}", 1, 20.0, "DC1"))
            label = manifest = None
            if wms and handed is not None:
                picked = placed + dt.timedelta(minutes=STEP_MINUTES["pick_per_line"])
                packed = picked + dt.timedelta(minutes=STEP_MINUTES["pack"])
                label = packed + dt.timedelta(minutes=STEP_MINUTES["label"])
                manifest = label + dt.timedelta(minutes=STEP_MINUTES["manifest"])
                tasks.append((f"T{n:05d}", oid, 1, f"SKU{n % 17}", 1, "picked", _ts(picked)))
                packs.append((f"K{n:05d}", oid, "packed", _ts(packed)))
            ships.append((f"S{n:05d}", oid, _ts(label), _ts(manifest), _ts(handed)))
        day += dt.timedelta(days=1)
    _write(data, "orders.csv", ["order_id", "customer_id", "ordered_at", "released_at", "status", "ship_by"], orders)
    _write(data, "order_lines.csv", ["order_id", "line_no", "sku", "qty", "unit_price", "ship_from"], lines)
    _write(data, "shipments.csv", ["shipment_id", "order_id", "label_created_at", "manifested_at", "handed_off_at"], ships)
    if wms:
        _write(data, "pick_tasks.csv", ["task_id", "order_id", "line_no", "sku", "qty", "status", "updated_at"], tasks)
        _write(data, "pack_events.csv", ["carton_id", "order_id", "status", "event_at"], packs)
    return write_site(folder, known_from, wms)


def noisy(folder: Path, seed: int = 3, known_from: str = "released") -> Path:
    """Eight sellers with different shares late; orders placed at random times with a delivery date promised
    8 days on, released 0-30 hours later (the ship-by is set at release, 1-3 days on), handed off at random
    times before it, or after it / never for late ones. Returns the site file."""
    rng = random.Random(seed)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    late_share = {f"S{i}": p for i, p in enumerate((0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.45))}
    orders, lines, ships = [], [], []
    start = dt.datetime.combine(FIRST - dt.timedelta(days=4), dt.time(0))
    end = dt.datetime.combine(LAST, dt.time(0))
    n, t = 0, start
    while t < end:
        t += dt.timedelta(minutes=rng.expovariate(1 / 110))
        n += 1
        oid = f"N{n:05d}"
        seller = rng.choice(list(late_share))
        released = t + dt.timedelta(minutes=rng.uniform(5, 30 * 60))
        ship_by = released + dt.timedelta(hours=rng.uniform(24, 72))
        if rng.random() < late_share[seller]:
            handed = None if rng.random() < 0.1 else ship_by + dt.timedelta(hours=rng.uniform(0.5, 48))
        else:
            handed = released + (ship_by - released) * rng.uniform(0.1, 0.98)
        n_lines = rng.choice((1, 1, 1, 2, 3))
        orders.append((oid, f"K{n}", _ts(t), _ts(released), "released", "", (t + dt.timedelta(days=8)).date().isoformat()))
        for ln in range(1, n_lines + 1):
            lines.append((oid, ln, f"SKU{rng.randrange(50)}", 1, round(rng.uniform(5, 200), 2), seller, _ts(ship_by)))
        ships.append((f"S{n:05d}", oid, "", "", _ts(handed)))
    _write(data, "orders.csv", ["order_id", "customer_id", "ordered_at", "released_at", "status", "ship_by", "promised_delivery"], orders)
    _write(data, "order_lines.csv", ["order_id", "line_no", "sku", "qty", "unit_price", "ship_from", "ship_by"], lines)
    _write(data, "shipments.csv", ["shipment_id", "order_id", "label_created_at", "manifested_at", "handed_off_at"], ships)
    site = write_site(folder, known_from)
    text = site.read_text(encoding="utf-8").replace(
        "columns: {order_id: order_id, line_no: line_no, sku: sku, qty: qty, unit_price: unit_price, ship_from: ship_from}",
        "columns: {order_id: order_id, line_no: line_no, sku: sku, qty: qty, unit_price: unit_price, ship_from: ship_from, "
        "ship_by: ship_by}",
    ).replace("      ship_by: ship_by\n", "      ship_by: ship_by\n      promised_delivery: promised_delivery\n")
    site.write_text(text, encoding="utf-8")
    return site
