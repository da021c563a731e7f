"""As of the review time (handoff_lib/join/asof.py): a review sees only what was known at `now`.

Two kinds of proof:
* hand-written tables, one story per entity rule (orders, order lines, holds, cases, pack events,
  shipments, pick tasks), checked rule by rule;
* the shared real order history (Olist 2017, /work/shared/data/olist-2017-10k): a review at a past moment
  equals the review built from the same files cut back to an export taken at that moment.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from tables import make_tables

from handoff_lib.errors import SettingsError
from handoff_lib.join.asof import apply_as_of, grace_minutes, summary_text
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.picture import analyse
from handoff_lib.publish.pipeline import build_picture

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "parameters" / "demo.yaml"
OLIST = ROOT / "parameters" / "olist.yaml"
TZ_DEMO = load_settings(DEMO).tz
NOW = dt.datetime(2025, 6, 10, 12, 0, tzinfo=TZ_DEMO)


def t(hhmm: str) -> dt.datetime:
    h, m = (int(x) for x in hhmm.split(":"))
    return NOW.replace(hour=h, minute=m)


def site_with(tmp_path: Path, **extra) -> object:
    raw = yaml.safe_load(DEMO.read_text())
    raw["data"] = {"folder": str(tmp_path), "allowed_roots": [str(tmp_path)]}
    raw.update(extra)
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_settings(path)


# ------------------------------------------------------------------ hand-written tables, one rule each

STORY = {
    "orders": [
        {"order_id": "SO-1", "customer_id": "C1", "ordered_at": t("09:00"), "released_at": t("09:30"), "release_status": "released"},
        {"order_id": "SO-2", "customer_id": "C1", "ordered_at": t("13:00"), "released_at": t("13:05"), "release_status": "released"},
        {"order_id": "SO-3", "customer_id": "C1", "ordered_at": t("08:00"), "released_at": t("12:30"), "release_status": "released"},
        {"order_id": "SO-4", "customer_id": "C1", "ordered_at": t("08:00"), "released_at": t("09:00"),
         "cancelled_at": t("13:00"), "release_status": "cancelled"},
        {"order_id": "SO-5", "customer_id": "C1", "ordered_at": t("08:00"), "released_at": t("12:30"),
         "cancelled_at": t("11:00"), "release_status": "released"},
        {"order_id": "SO-6", "customer_id": "C1", "ordered_at": t("08:00"), "cancelled_at": t("14:00"), "release_status": "cancelled"},
        {"order_id": "SO-7", "customer_id": "C1", "release_status": "released"},  # placed at an unknown time
        {"order_id": "SO-8", "customer_id": "C1", "ordered_at": t("12:00"), "release_status": "not_released"},
        {"order_id": "SO-9", "customer_id": "C1", "ordered_at": t("08:00"), "release_status": "cancelled"},  # cancelled, no time
    ],
    "order_lines": [
        {"order_id": "SO-1", "line_no": 1, "sku": "A", "qty": 1},
        {"order_id": "SO-2", "line_no": 1, "sku": "A", "qty": 1},
        {"order_id": "SO-2", "line_no": 2, "sku": "B", "qty": 2},
        {"order_id": "SO-7", "line_no": 1, "sku": "A", "qty": 1},
        {"order_id": "SO-X", "line_no": 1, "sku": "A", "qty": 1},  # no such order: kept, the states report it
    ],
    "holds": [
        {"hold_id": "H-1", "reference": "SO-1", "placed_at": t("10:00"), "released_at": t("12:10")},
        {"hold_id": "H-2", "reference": "SO-1", "placed_at": t("12:01")},
        {"reference": "SO-3", "placed_at": t("13:00")},  # no hold id
        {"hold_id": "H-4", "reference": "SO-1", "placed_at": t("09:00"), "released_at": t("11:00")},
        {"hold_id": "H-5", "reference": "SO-2", "placed_at": t("11:00")},  # placed before the order: it existed, kept
    ],
    "cases": [
        {"case_id": "C-1", "reference": "SO-1", "opened_at": t("10:00"), "closed_at": t("13:00")},
        {"case_id": "C-2", "reference": "SO-1", "opened_at": t("12:05")},
        {"case_id": "C-3", "reference": "SO-1"},  # no time, refers to a kept order: kept
    ],
    "pack_events": [
        {"carton_id": "CTN-1", "order_ref": "SO-1", "status": "packed", "event_at": t("11:00")},
        {"carton_id": "CTN-2", "order_ref": "SO-1", "status": "packed", "event_at": t("12:30")},
        {"carton_id": "CTN-3", "order_ref": "SO-1", "status": "open"},
        {"carton_id": "CTN-4", "pick_ticket": "PT0002-01", "status": "open"},  # no time, packs SO-2's ticket: left out
    ],
    "shipments": [
        {"shipment_id": "S-1", "reference": "CTN-1", "carrier": "UPS", "label_created_at": t("11:50"),
         "manifested_at": t("12:10"), "handed_off_at": t("12:40")},
        {"shipment_id": "S-2", "reference": "CTN-2", "carrier": "UPS", "label_created_at": t("12:20"), "manifested_at": t("12:30")},
        {"shipment_id": "S-3", "reference": "CTN-3", "carrier": "UPS"},
        {"shipment_id": "S-4", "reference": "CTN-1", "carrier": "UPS", "handed_off_at": t("11:00")},
        {"shipment_id": "S-5", "reference": "CTN-1", "carrier": "UPS", "manifested_at": t("12:00"), "handed_off_at": t("14:00")},
        {"shipment_id": "S-6", "reference": "CTN-4", "carrier": "UPS"},  # no milestone, the carton is left out: left out
        {"shipment_id": "S-7", "reference": "so 2", "carrier": "UPS"},  # no milestone, SO-2 is left out: left out
    ],
    "pick_tasks": [
        {"task_id": "T-1", "order_ref": "SO-1", "sku": "A", "qty_required": 1, "status": "picked", "updated_at": t("11:00")},
        {"task_id": "T-2", "order_ref": "SO-1", "sku": "A", "qty_required": 1, "status": "picked", "updated_at": t("12:30")},
        {"task_id": "T-3", "order_ref": "SO-1", "sku": "A", "qty_required": 1, "status": "open"},
        {"task_id": "T-4", "order_ref": "0002", "pick_ticket": "PT-0002-01", "sku": "A", "qty_required": 1, "status": "open",
         "updated_at": t("13:10")},  # a task of SO-2, placed later: left out, not flagged
        {"task_id": "T-5", "order_ref": "SO-1", "sku": "A", "qty_required": 1, "status": "open", "updated_at": t("09:00")},
    ],
}


@pytest.fixture
def story(tmp_path):
    settings = site_with(tmp_path)
    con = duckdb.connect()
    con.execute("SET TimeZone = ?", [settings.timezone])
    make_tables(con, **STORY)
    report = apply_as_of(con, settings, NOW)
    return con, settings, report


def ids(con, table: str, key: str = "order_id") -> list:
    return [r[0] for r in con.execute(f"SELECT {key} FROM {table} ORDER BY _line").fetchall()]


def row(con, table: str, key: str, value: str) -> dict:
    cur = con.execute(f"SELECT * FROM {table} WHERE {key} = ?", [value])
    rows = cur.fetchall()
    assert len(rows) == 1, f"{table} {value}: {len(rows)} rows"
    return dict(zip([d[0] for d in cur.description], rows[0]))


def test_orders_placed_after_the_review_time_are_left_out_with_their_lines(story):
    con, _, _ = story
    assert ids(con, "orders") == ["SO-1", "SO-3", "SO-4", "SO-5", "SO-6", "SO-7", "SO-8", "SO-9"]
    assert con.execute("SELECT order_id, line_no FROM order_lines ORDER BY _line").fetchall() == [("SO-1", 1), ("SO-7", 1), ("SO-X", 1)]


def test_an_order_placed_exactly_at_the_review_time_or_at_an_unknown_time_is_kept(story):
    con, _, _ = story
    assert row(con, "orders", "order_id", "SO-8")["release_status"] == "not_released"
    assert row(con, "orders", "order_id", "SO-7")["release_status"] == "released"  # no release time to judge by


def test_an_order_released_after_the_review_time_is_not_released_yet(story):
    con, _, _ = story
    so3 = row(con, "orders", "order_id", "SO-3")
    assert so3["released_at"] is None and so3["release_status"] == "not_released"
    so1 = row(con, "orders", "order_id", "SO-1")
    assert so1["released_at"] == t("09:30") and so1["release_status"] == "released"


def test_an_order_cancelled_after_the_review_time_is_released_or_not_released_by_its_release_time(story):
    con, _, _ = story
    so4 = row(con, "orders", "order_id", "SO-4")  # released 09:00, cancelled 13:00
    assert (so4["cancelled_at"], so4["release_status"], so4["released_at"]) == (None, "released", t("09:00"))
    so6 = row(con, "orders", "order_id", "SO-6")  # never released, cancelled 14:00
    assert (so6["cancelled_at"], so6["release_status"]) == (None, "not_released")


def test_an_order_released_later_but_cancelled_by_then_stays_cancelled(story):
    con, _, _ = story
    so5 = row(con, "orders", "order_id", "SO-5")  # cancelled 11:00, released 12:30
    assert (so5["released_at"], so5["cancelled_at"], so5["release_status"]) == (None, t("11:00"), "cancelled")


def test_a_cancellation_without_a_time_is_taken_as_known(story):
    con, _, _ = story
    assert row(con, "orders", "order_id", "SO-9")["release_status"] == "cancelled"


def test_holds_placed_later_are_left_out_and_holds_released_later_are_still_open(story):
    con, _, _ = story
    got = con.execute("SELECT hold_id, released_at FROM holds ORDER BY _line").fetchall()
    assert got == [("H-1", None), ("H-4", t("11:00")), ("H-5", None)]


def test_cases_opened_later_are_left_out_and_cases_closed_later_are_still_open(story):
    con, _, _ = story
    assert con.execute("SELECT case_id, closed_at FROM cases ORDER BY _line").fetchall() == [("C-1", None), ("C-3", None)]


def test_pack_events_stamped_later_are_left_out_and_those_without_a_time_are_kept(story):
    con, _, _ = story
    assert ids(con, "pack_events", "carton_id") == ["CTN-1", "CTN-3"]


def test_a_shipment_is_left_out_only_when_every_milestone_is_later(story):
    con, _, _ = story
    got = con.execute("SELECT shipment_id, label_created_at, manifested_at, handed_off_at FROM shipments ORDER BY _line").fetchall()
    assert got == [
        ("S-1", t("11:50"), None, None),  # labelled before, manifested and handed off after
        ("S-3", None, None, None),  # no milestone at all: kept
        ("S-4", None, None, t("11:00")),
        ("S-5", None, t("12:00"), None),  # manifested exactly at the review time: known
    ]


def test_records_with_no_time_of_their_own_go_with_the_records_they_refer_to(story):
    """Read as the crosswalk reads references (the demo site's identifier rules): task T-4 (order_ref 0002) is
    order SO-2's, placed later; carton CTN-4 packs its pick ticket PT0002-01; shipment S-6 ships that carton and
    S-7 cites 'so 2'. None has a time of its own, so each goes with what it refers to."""
    con, _, _ = story
    assert "T-4" not in ids(con, "pick_tasks", "task_id")
    assert "CTN-4" not in ids(con, "pack_events", "carton_id")
    assert {"S-6", "S-7"}.isdisjoint(ids(con, "shipments", "shipment_id"))
    assert "C-3" in ids(con, "cases", "case_id")  # no time, but its order is kept
    assert "H-5" in ids(con, "holds", "hold_id")  # refers to SO-2, but was placed before the review time: it existed


def test_pick_tasks_updated_later_are_kept_and_flagged(story):
    con, _, report = story
    assert ids(con, "pick_tasks", "task_id") == ["T-1", "T-2", "T-3", "T-5"]
    flagged = report[report["kind"] == "ahead"]
    assert flagged[["source", "field", "n", "example"]].values.tolist() == [["pick_tasks", "updated_at", 1, "T-2 (pick_tasks.csv line 3)"]]


def test_the_report_counts_each_rule_with_an_example(story):
    _, _, report = story
    got = {(r.kind, r.source, r.field): (r.n, r.example) for r in report.itertuples() if r.kind != "status"}
    assert got == {
        ("left_out", "orders", "ordered_at"): (1, "SO-2 (orders.csv line 3)"),
        ("left_out", "order_lines", "ordered_at"): (2, "SO-2/1 (order_lines.csv line 3)"),
        ("left_out", "pack_events", "event_at"): (1, "CTN-2 (pack_events.csv line 3)"),
        ("left_out", "holds", "placed_at"): (2, "H-2 (holds.csv line 3)"),
        ("left_out", "shipments", "every milestone"): (1, "S-2 (shipments.csv line 3)"),
        ("left_out", "cases", "opened_at"): (1, "C-2 (cases.csv line 3)"),
        ("left_out", "pick_tasks", "reference"): (1, "T-4 (pick_tasks.csv line 5)"),
        ("left_out", "pack_events", "reference"): (1, "CTN-4 (pack_events.csv line 5)"),
        ("left_out", "shipments", "reference"): (2, "S-6 (shipments.csv line 7)"),
        ("not_yet", "orders", "cancelled_at"): (2, "SO-4 (orders.csv line 5)"),
        ("not_yet", "orders", "released_at"): (2, "SO-3 (orders.csv line 4)"),
        ("not_yet", "holds", "released_at"): (1, "H-1 (holds.csv line 2)"),
        ("not_yet", "shipments", "handed_off_at"): (2, "S-1 (shipments.csv line 2)"),
        ("not_yet", "shipments", "manifested_at"): (1, "S-1 (shipments.csv line 2)"),
        ("not_yet", "cases", "closed_at"): (1, "C-1 (cases.csv line 2)"),
        ("ahead", "pick_tasks", "updated_at"): (1, "T-2 (pick_tasks.csv line 3)"),
    }
    status = report[report["kind"] == "status"]
    assert sorted(status[["what", "n", "example"]].values.tolist()) == [
        ["release_status cancelled -> not_released as of the review time", 1, "SO-6 (orders.csv line 7)"],
        ["release_status cancelled -> released as of the review time", 1, "SO-4 (orders.csv line 5)"],
        ["release_status released -> cancelled as of the review time", 1, "SO-5 (orders.csv line 6)"],
        ["release_status released -> not_released as of the review time", 1, "SO-3 (orders.csv line 4)"],
    ]


def test_every_record_left_out_is_listed_with_file_line_and_time(story):
    con, _, _ = story
    got = con.execute(
        "SELECT source, file, line, key, stamped_at FROM asof_records WHERE kind = 'left_out' AND source = 'holds' ORDER BY line"
    ).fetchall()
    assert got == [("holds", "holds.csv", 3, "H-2", t("12:01")), ("holds", "holds.csv", 4, None, t("13:00"))]


def test_the_banner_line_counts_what_was_stamped_later(story):
    con, settings, _ = story
    assert summary_text(con, settings, NOW) == (
        "Stamped after Tue 10 Jun 2025 12:00, as of the review: 12 records created later left out "
        "(orders 1, order lines 2, pick tasks 1, pack events 2, holds 2, shipments 3, cases 1); 9 milestones taken as not yet happened "
        "(orders.cancelled_at 2, orders.released_at 2, holds.released_at 1, shipments.handed_off_at 2, "
        "shipments.manifested_at 1, cases.closed_at 1); 1 pick tasks updated later kept (their state may be ahead of the review)."
    )


def test_nothing_stamped_later_changes_nothing(tmp_path):
    settings = site_with(tmp_path)
    con = duckdb.connect()
    con.execute("SET TimeZone = ?", [settings.timezone])
    make_tables(con, **STORY)
    before = {tb: con.execute(f"SELECT * FROM {tb} ORDER BY _line").fetchall() for tb in STORY}
    report = apply_as_of(con, settings, NOW.replace(hour=23))
    assert report.empty and summary_text(con, settings, NOW.replace(hour=23)) is None
    assert {tb: con.execute(f"SELECT * FROM {tb} ORDER BY _line").fetchall() for tb in STORY} == before


def test_a_naive_review_time_is_site_local(tmp_path):
    settings = site_with(tmp_path)
    con = duckdb.connect()
    make_tables(con, **STORY)
    apply_as_of(con, settings, NOW.replace(tzinfo=None))
    assert ids(con, "holds", "hold_id") == ["H-1", "H-4", "H-5"]


def test_a_grace_lets_in_what_is_stamped_within_it(tmp_path):
    settings = site_with(tmp_path, data_quality={"as_of_grace_minutes": 15})
    con = duckdb.connect()
    con.execute("SET TimeZone = ?", [settings.timezone])
    make_tables(con, **STORY)
    apply_as_of(con, settings, NOW)
    assert ids(con, "holds", "hold_id") == ["H-1", "H-2", "H-4", "H-5"]  # H-2 placed 12:01: within the grace
    assert row(con, "holds", "hold_id", "H-1")["released_at"] == t("12:10")
    assert ids(con, "cases", "case_id") == ["C-1", "C-2", "C-3"]
    assert row(con, "shipments", "shipment_id", "S-1")["manifested_at"] == t("12:10")
    assert row(con, "orders", "order_id", "SO-3")["release_status"] == "not_released"  # released 12:30: beyond it
    assert "(+15 min grace)" in summary_text(con, settings, NOW)


@pytest.mark.parametrize("value", [-5, 1.5, "10", True, 500])
def test_a_grace_that_is_not_whole_minutes_in_range_is_refused_naming_the_line(tmp_path, value):
    settings = site_with(tmp_path, data_quality={"as_of_grace_minutes": value})
    with pytest.raises(SettingsError, match=r"site\.yaml line \d+: data_quality\.as_of_grace_minutes must be a whole number"):
        grace_minutes(settings)


def test_the_default_grace_is_zero(tmp_path):
    assert grace_minutes(site_with(tmp_path)) == 0


# ------------------------------------------------------------------ through the pipeline: load report, banner

def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_records_left_out_are_not_rejects_and_the_load_report_still_adds_up(tmp_path, demo_day):
    from conftest import make_site

    shutil.copytree(demo_day / "1200", tmp_path / "data")
    settings = load_settings(make_site(tmp_path, tmp_path / "data"))
    at_noon = build_picture(settings, now=dt.datetime(2026, 11, 24, 12, 0, tzinfo=settings.tz))
    earlier = build_picture(settings, now=dt.datetime(2026, 11, 24, 11, 0, tzinfo=settings.tz))
    assert at_noon.execute("SELECT count(*) FROM asof_report").fetchone()[0] == 0  # the demo's 12:00 export holds nothing later
    left = earlier.execute("SELECT CAST(sum(n) AS BIGINT) FROM asof_report WHERE kind = 'left_out'").fetchone()[0]
    assert left > 0
    q = "SELECT source, rows_read, rows_accepted, rows_rejected, rows_other_entity FROM load_report ORDER BY source"
    assert earlier.execute(q).fetchall() == at_noon.execute(q).fetchall()
    assert earlier.execute("SELECT count(*) FROM rejects").fetchone() == at_noon.execute("SELECT count(*) FROM rejects").fetchone()
    n_orders = earlier.execute("SELECT count(*) FROM orders").fetchone()[0]
    out = earlier.execute("SELECT n FROM asof_report WHERE kind = 'left_out' AND source = 'orders'").fetchone()[0]
    assert n_orders + out == at_noon.execute("SELECT count(*) FROM orders").fetchone()[0]


# ------------------------------------------------------------------ the real order history, truncated

# The Olist history (licence CC BY-NC-SA: tests only, never shipped). parameters/olist.yaml reads it from
# ../../shared/data beside the checkout; a git worktree one level deeper (<checkout>/../wt/<name>) finds it
# one level further up.
OLIST_DATA = next(
    (p for p in (ROOT.parent / "shared/data/olist-2017-10k", ROOT.parent.parent / "shared/data/olist-2017-10k") if p.is_dir()),
    None,
)
needs_olist = pytest.mark.skipif(OLIST_DATA is None, reason="Olist history not found in shared/data/olist-2017-10k beside the repo")
STAMPS = ("order_purchase_timestamp", "order_approved_at", "order_delivered_carrier_date", "order_delivered_customer_date")


def truncate_olist(src: Path, dst: Path, moment: dt.datetime) -> dict[str, int]:
    """Rewrite orders.csv and order_items.csv of `src` into `dst` as an export taken at `moment` (naive, site
    local, as the files' timestamps are) would have been. Returns counts of what changed. Each choice:

    * an order placed after the moment is not in the export, nor are its items;
    * an approval, carrier hand-off or customer delivery stamped after the moment has not happened: blank;
    * order_estimated_delivery_date (the promise given at purchase) and the items' shipping_limit_date (the
      seller's deadline) are known when the order is placed: kept;
    * order_status is what the order was at the moment: `created` when its approval is later; else a
      `shipped`/`delivered` order not yet handed to the carrier was being prepared: `processing`; else a
      `delivered` order not yet delivered was `shipped`. A `canceled` or `unavailable` order keeps its status:
      the export has no cancellation time, so when it was cancelled cannot be known (the review takes the
      OMS's word, as apply_as_of does for a cancellation without a time). `created`, `invoiced` and
      `processing` orders approved by then keep their status;
    * timestamps are compared as written (naive local time), like the moment: the one hour that repeats when
      daylight saving ends (2017-02-18 23:00-23:59) is far from the moments tested;
    * "after" is strictly after: a record stamped exactly at the moment is known at it.
    """
    dst.mkdir(parents=True)
    counts = {"orders_removed": 0, "items_removed": 0, "stamps_blanked": 0, "status_changed": 0}

    def later(value: str) -> bool:
        return bool(value.strip()) and dt.datetime.fromisoformat(value.strip()) > moment

    with (src / "orders.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, orders = reader.fieldnames, list(reader)
    kept, removed = [], set()
    for o in orders:
        if later(o["order_purchase_timestamp"]):
            removed.add(o["order_id"])
            counts["orders_removed"] += 1
            continue
        o = dict(o)
        blanked = {c for c in STAMPS[1:] if later(o[c])}
        for c in blanked:
            o[c] = ""
        counts["stamps_blanked"] += len(blanked)
        status = o["order_status"]
        if status in ("canceled", "unavailable", "created"):
            pass
        elif "order_approved_at" in blanked:
            status = "created"
        elif status in ("shipped", "delivered") and not o["order_delivered_carrier_date"]:
            status = "processing"
        elif status == "delivered" and not o["order_delivered_customer_date"]:
            status = "shipped"
        counts["status_changed"] += status != o["order_status"]
        o["order_status"] = status
        kept.append([o[c] for c in header])
    write_csv(dst / "orders.csv", header, kept)

    with (src / "order_items.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, items = reader.fieldnames, list(reader)
    counts["items_removed"] = sum(i["order_id"] in removed for i in items)
    write_csv(dst / "order_items.csv", header, [[i[c] for c in header] for i in items if i["order_id"] not in removed])
    return counts


def olist_site(tmp: Path, data: Path) -> object:
    raw = yaml.safe_load(OLIST.read_text())
    raw["data"] = {"folder": str(data), "allowed_roots": [str(tmp), str(OLIST_DATA.parent)]}
    raw["outputs"] = str(tmp / "outputs")
    path = tmp / "olist.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_settings(path)


def per_order(con) -> dict[str, tuple]:
    """Per order: state, promise status, next pickup, and the sorted reasons of its blockers (no file lines)."""
    rows = con.execute(
        """SELECT b.order_id, b.state, b.promise_status, b.next_pickup_at,
                  list_sort(coalesce((SELECT list(x.reason) FROM blockers x WHERE x.order_id = b.order_id), [])) AS reasons
           FROM order_board b"""
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


OPEN = ("safe", "at_risk", "needs_communication")


@needs_olist
@pytest.mark.parametrize("moment", ["2017-06-14 12:00", "2017-11-24 16:00"])
def test_a_review_of_the_history_at_a_past_moment_equals_the_review_of_the_export_taken_then(tmp_path, moment):
    m = dt.datetime.fromisoformat(moment)
    counts = truncate_olist(OLIST_DATA, tmp_path / "cut", m)
    full = olist_site(tmp_path, OLIST_DATA)
    now = m.replace(tzinfo=full.tz)
    as_of = build_picture(full, now=now)
    cut = build_picture(full.with_data_folder(tmp_path / "cut"), now=now)

    # The cut export holds nothing later than the moment, so the rules find nothing there ...
    assert cut.execute("SELECT count(*) FROM asof_report").fetchone()[0] == 0
    # ... and in the full history they leave out what the cut removed.
    left = dict(as_of.execute("SELECT source, CAST(sum(n) AS BIGINT) FROM asof_report WHERE kind = 'left_out' GROUP BY 1").fetchall())
    assert (left.get("orders", 0), left.get("order_lines", 0)) == (counts["orders_removed"], counts["items_removed"])
    assert counts["orders_removed"] > 0 and counts["stamps_blanked"] > 0

    a, c = per_order(as_of), per_order(cut)
    assert a.keys() == c.keys()
    differ = {k: (a[k], c[k]) for k in a if a[k] != c[k]}
    assert not differ, f"{len(differ)} orders differ, e.g. {list(differ.items())[:3]}"
    q = "SELECT reason, count(*) FROM blockers WHERE order_id IS NULL GROUP BY 1 ORDER BY 1"
    assert as_of.execute(q).fetchall() == cut.execute(q).fetchall()
    assert sum(v[1] in OPEN for v in a.values()) > 0

    # What the review without the as-of rules said at the same moment (load, link, analyse: the old code).
    old_con = build_picture(full)
    analyse(old_con, full, now)
    old = per_order(old_con)
    open_now = {k for k, v in a.items() if v[1] in OPEN}
    hidden = {k for k in open_now if old[k][1] not in OPEN}
    old_nc = {k for k, v in old.items() if v[1] == "needs_communication"}
    wrong_nc = {k for k in old_nc if a.get(k, (None, None))[1] != "needs_communication"}
    not_placed = old.keys() - a.keys()
    print(
        f"\n{moment}: cut export {counts}; {len(open_now)} orders open as of the moment, of which the old code showed "
        f"{len(hidden)} as not open ({sum(old[k][1] == 'handed_off' for k in hidden)} handed off); old code listed "
        f"{len(old_nc)} as needs_communication, {len(wrong_nc)} of them not so as of the moment; it showed {len(not_placed)} "
        f"orders not yet placed ({sum(old[k][1] == 'handed_off' for k in not_placed)} as handed off)"
    )
    assert hidden, "the old picture hid no open order: this moment would not tell the two apart"
