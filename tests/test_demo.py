"""The demo day: each system's extract as of a review time, deterministic, with ground truth that checks out."""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import Counter, defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from handoff_lib.errors import HandoffError
from handoff_lib.load.contract import ENTITIES
from handoff_lib.load.demo import generate

SITE = Path(__file__).resolve().parents[1] / "parameters" / "demo.yaml"
RAW = yaml.safe_load(SITE.read_text(encoding="utf-8"))
SOURCES = RAW["sources"]
TZ = ZoneInfo(RAW["timezone"])
DATE = "2026-11-24"
AT = ("09:00", "12:00", "16:30")
LINKED = ("pick_tasks", "pack_events", "holds", "shipments", "cases")


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def col(entity: str, field: str) -> str:
    return SOURCES[entity]["columns"].get(field, field)


def key_col(entity: str) -> str:
    return col(entity, ENTITIES[entity].key[0])


def norm(value: str, kind: str) -> str:
    """The site's identifier normalisation (parameters/demo.yaml `identifiers:`), written out independently."""
    rule = RAW["identifiers"][kind]
    v = re.sub(r"\s+", "", value.upper())
    if rule.get("line_suffix"):
        v = re.sub(rule["line_suffix"], "", v)
    for p in sorted(rule.get("prefixes", []), key=len, reverse=True):
        if re.match(rf"^[\-_./#]*{p}", v):
            v = re.sub(rf"^[\-_./#]*{p}", "", v)
            break
    v = re.sub(r"[\-_./#]", "", v)
    if rule.get("strip_zeros", True):
        v = v.lstrip("0") or ("0" if v else "")
    return v


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> tuple[Path, dict]:
    """2000 orders, reviewed at 09:00, 12:00 and 16:30."""
    out = tmp_path_factory.mktemp("demo")
    return out, generate(orders=2000, seed=11, out=out, date=DATE, at=AT, site_file=SITE, progress=False)


def snap(out: Path, at: str, entity: str) -> list[dict[str, str]]:
    return read(out / at.replace(":", "") / SOURCES[entity]["file"])


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tmp_path):
    a = generate(orders=400, seed=3, out=tmp_path / "a", site_file=SITE, progress=False)
    b = generate(orders=400, seed=3, out=tmp_path / "b", site_file=SITE, progress=False)
    generate(orders=400, seed=4, out=tmp_path / "c", site_file=SITE, progress=False)
    assert a["rows"] == b["rows"]
    for name in a["rows"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "oms_orders.csv").read_bytes() != (tmp_path / "c" / "oms_orders.csv").read_bytes()
    assert (tmp_path / "a" / "wms_pick_tasks.csv").read_bytes() != (tmp_path / "c" / "wms_pick_tasks.csv").read_bytes()


def test_one_review_time_writes_into_out_and_several_into_hhmm_folders(tmp_path, day):
    one = generate(orders=300, seed=1, out=tmp_path, site_file=SITE, progress=False)
    assert (tmp_path / "oms_orders.csv").is_file() and (tmp_path / "truth" / "links.csv").is_file()
    assert one["at"] == ["1430"] and one["folders"] == {"1430": str(tmp_path)}
    out, summary = day
    for at in ("0900", "1200", "1630"):
        assert (out / at / "wms_pick_tasks.csv").is_file()
        assert summary["rows"][f"{at}/oms_orders.csv"] > 0
    assert not (out / "oms_orders.csv").exists()


def test_a_review_time_renders_the_same_alone_or_among_others(tmp_path, day):
    out, _ = day
    generate(orders=2000, seed=11, out=tmp_path, date=DATE, at=("12:00",), site_file=SITE, progress=False)
    for spec in SOURCES.values():
        assert (tmp_path / spec["file"]).read_bytes() == (out / "1200" / spec["file"]).read_bytes(), spec["file"]


def test_every_extract_has_exactly_the_columns_the_site_file_maps(day):
    out, _ = day
    for spec in SOURCES.values():
        for at in AT:
            assert header(out / at.replace(":", "") / spec["file"]) == list(spec["columns"].values()), spec["file"]


def test_status_codes_are_the_site_codes(day):
    out, _ = day
    for entity, spec in SOURCES.items():
        for field, mapping in (spec.get("values") or {}).items():
            seen = {r[col(entity, field)] for r in snap(out, "16:30", entity)}
            assert seen and seen <= set(mapping), (entity, field, seen - set(mapping))
    tasks = Counter(r["TASK_STAT"] for r in snap(out, "12:00", "pick_tasks"))
    assert {"10", "20", "30", "40"} <= set(tasks)


def test_timestamps_are_local_naive_except_the_carrier_file_in_utc(day):
    out, _ = day
    local = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
    utc = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
    for entity, spec in SOURCES.items():
        pattern = utc if entity == "shipments" else local
        fields = [f.name for f in ENTITIES[entity].fields if f.type == "timestamp" and f.name in spec["columns"]]
        for row in snap(out, "16:30", entity):
            for f in fields:
                v = row[col(entity, f)]
                assert v == "" or pattern.fullmatch(v), (entity, f, v)
    promised = {r["PromiseDate"] for r in snap(out, "16:30", "orders")}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", p) for p in promised)


def _event_time(entity: str, value: str) -> dt.datetime:
    if value.endswith("Z"):
        return dt.datetime.fromisoformat(value[:-1]).replace(tzinfo=dt.UTC).astimezone(TZ).replace(tzinfo=None)
    return dt.datetime.fromisoformat(value)


@pytest.mark.parametrize("at", AT)
def test_nothing_in_a_snapshot_happened_after_its_review_time(day, at):
    out, _ = day
    cut = dt.datetime.fromisoformat(f"{DATE} {at}:00")
    for entity, spec in SOURCES.items():
        # ship_by is a deadline, not an event
        fields = [
            f.name for f in ENTITIES[entity].fields if f.type == "timestamp" and f.name != "ship_by" and f.name in spec["columns"]
        ]
        for row in snap(out, at, entity):
            for f in fields:
                v = row[col(entity, f)]
                assert v == "" or _event_time(entity, v) <= cut, (entity, f, v, at)


def test_as_of_rendering_only_moves_forward(day):
    out, _ = day
    for early, late in (("09:00", "12:00"), ("12:00", "16:30")):
        for entity in SOURCES:
            if not ENTITIES[entity].key or entity in ("inventory", "account_instructions", "order_lines"):
                continue
            k = key_col(entity)
            before = {r[k] for r in snap(out, early, entity)}
            after = {r[k] for r in snap(out, late, entity)}
            assert before and before <= after, (entity, early, late)
        t0 = {r["TASK_ID"]: r for r in snap(out, early, "pick_tasks")}
        t1 = {r["TASK_ID"]: r for r in snap(out, late, "pick_tasks")}
        finished = [k for k, r in t0.items() if r["TASK_STAT"] in ("30", "40", "90")]
        assert finished
        for k in finished:
            assert (t1[k]["TASK_STAT"], t1[k]["QTY_PICK"], t1[k]["LAST_UPD"]) == (
                t0[k]["TASK_STAT"],
                t0[k]["QTY_PICK"],
                t0[k]["LAST_UPD"],
            )
        for k, r in t0.items():
            assert int(t1[k]["QTY_PICK"]) >= int(r["QTY_PICK"])
        h0 = {r["HOLD_NO"]: r for r in snap(out, early, "holds")}
        h1 = {r["HOLD_NO"]: r for r in snap(out, late, "holds")}
        assert all(h1[k]["RELEASED_TS"] == r["RELEASED_TS"] for k, r in h0.items() if r["RELEASED_TS"])
        s0 = {r["ShipmentId"]: r for r in snap(out, early, "shipments")}
        s1 = {r["ShipmentId"]: r for r in snap(out, late, "shipments")}
        for k, r in s0.items():
            for c in ("TrackingNumber", "LabelCreated", "Manifested", "PickedUp"):
                assert not r[c] or s1[k][c] == r[c]
        o0 = {r["OrderNo"]: r["RelStatus"] for r in snap(out, early, "orders")}
        o1 = {r["OrderNo"]: r["RelStatus"] for r in snap(out, late, "orders")}
        assert all(o1[k] in ("REL", "CXL") for k, v in o0.items() if v == "REL")
        assert all(o1[k] == "CXL" for k, v in o0.items() if v == "CXL")


def test_order_lines_are_about_three_per_order(day):
    out, summary = day
    assert 2.7 <= summary["order_lines"] / summary["orders"] <= 3.5
    orders = snap(out, "16:30", "orders")
    lines = snap(out, "16:30", "order_lines")
    assert 2.7 <= len(lines) / len(orders) <= 3.5
    per = Counter(r["OrderNo"] for r in lines)
    assert min(per.values()) == 1 and max(per.values()) <= 8
    assert set(per) == {r["OrderNo"] for r in orders}


def test_only_released_orders_have_pick_tasks(day):
    out, _ = day
    truth = _links(out)
    for at in AT:
        orders = {r["OrderNo"]: r for r in snap(out, at, "orders")}
        for row in truth[(at.replace(":", ""), "pick_tasks")]:
            if row["orphan"] == "false":
                order = orders[row["true_order_id"]]
                assert order["ReleaseDate"] and order["RelStatus"] in ("REL", "CXL")


def test_order_ids_and_pos_have_the_documented_forms(day):
    out, _ = day
    orders = snap(out, "16:30", "orders")
    assert all(re.fullmatch(r"SO-\d{7}", r["OrderNo"]) for r in orders)
    assert len({r["OrderNo"] for r in orders}) == len(orders)
    assert all(re.fullmatch(r"PO-?\d{10}", r["CustPO"]) for r in orders if r["CustPO"])
    pos = Counter(r["CustPO"] for r in orders if r["CustPO"])
    assert 1 <= sum(1 for n in pos.values() if n > 1) <= 10  # a few shared on purpose
    carriers = {(r["Carrier"], r["SvcLevel"]) for r in orders}
    assert carriers <= {("UPS", "NDA"), ("UPS", "GND"), ("FDX", "2DAY"), ("FDX", "GRD"), ("LTL", "STD")}
    assert Counter(r["PrioTier"] for r in orders)["1"] / len(orders) == pytest.approx(0.12, abs=0.05)


def test_customer_names_carry_untrusted_text(day):
    out, _ = day
    names = {r["SoldToName"] for r in snap(out, "16:30", "orders")}
    assert any("<script>" in n for n in names)
    assert any("&" in n for n in names)
    assert any('"' in n for n in names)


def _links(out: Path) -> dict[tuple[str, str], list[dict[str, str]]]:
    by: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in read(out / "truth" / "links.csv"):
        by[(row["at"], row["source"])].append(row)
    return by


def test_truth_links_cover_every_distinct_record_and_duplicates_are_exact_copies(day):
    out, _ = day
    links = _links(out)
    dups = defaultdict(dict)
    for row in read(out / "truth" / "duplicates.csv"):
        dups[(row["at"], row["file"])][row["record_key"]] = int(row["copies"])
    assert dups
    for at in AT:
        hhmm = at.replace(":", "")
        for entity in LINKED:
            file = SOURCES[entity]["file"]
            with open(out / hhmm / file, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))[1:]
            k = header(out / hhmm / file).index(key_col(entity))
            keys = Counter(r[k] for r in rows)
            truth = [r["record_key"] for r in links[(hhmm, entity)]]
            assert len(truth) == len(set(truth))
            assert set(truth) == set(keys), (at, entity)
            extra = dups.get((hhmm, file), {})
            assert {key: n - 1 for key, n in keys.items() if n > 1} == extra
            for key in extra:  # the repeated rows are exact copies
                assert len({tuple(r) for r in rows if r[k] == key}) == 1


def test_references_normalise_to_their_true_order_and_orphans_to_none(day):
    """What the crosswalk must achieve: every reference, normalised under ANY identifier kind, finds its
    true order and no other (both orders of a shared PO when ambiguous; nothing for an orphan)."""
    out, _ = day
    links = _links(out)
    for at in AT:
        hhmm = at.replace(":", "")
        orders = snap(out, at, "orders")
        truth = {(e, r["record_key"]): r["true_order_id"] for e in LINKED for r in links[(hhmm, e)]}
        index: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for r in orders:
            index["order"][norm(r["OrderNo"], "order")].add(r["OrderNo"])
            if r["CustPO"]:
                index["customer_po"][norm(r["CustPO"], "customer_po")].add(r["OrderNo"])
        for r in snap(out, at, "pick_tasks"):
            if truth[("pick_tasks", r["TASK_ID"])]:
                index["pick_ticket"][norm(r["PICK_TICKET"], "pick_ticket")].add(truth[("pick_tasks", r["TASK_ID"])])
        for r in snap(out, at, "pack_events"):
            if truth[("pack_events", r["CARTON"])]:
                index["carton"][norm(r["CARTON"], "carton")].add(truth[("pack_events", r["CARTON"])])
        for r in snap(out, at, "shipments"):
            if r["TrackingNumber"] and truth[("shipments", r["ShipmentId"])]:
                index["tracking_no"][norm(r["TrackingNumber"], "tracking_no")].add(truth[("shipments", r["ShipmentId"])])

        def resolve(value: str, index=index) -> set[str]:
            return set().union(*(keys.get(norm(value, kind), set()) for kind, keys in index.items()))

        for entity, fields in (
            ("pick_tasks", ("ORDER_REF", "PICK_TICKET")),
            ("pack_events", ("ORDER_REF", "PICK_TICKET")),
            ("shipments", ("Reference",)),
            ("holds", ("HOLD_REF",)),
            ("cases", ("RelatedTo",)),
        ):
            records = {r[key_col(entity)]: r for r in snap(out, at, entity)}
            for link in links[(hhmm, entity)]:
                for value in (records[link["record_key"]][f] for f in fields):
                    if not value:
                        continue
                    found = resolve(value)
                    if link["orphan"] == "true":
                        assert not found and not link["true_order_id"], (entity, link, value, found)
                    elif link["ambiguous"] == "true":
                        assert link["true_order_id"] in found and len(found) == 2, (entity, link, value, found)
                    else:
                        assert found == {link["true_order_id"]}, (entity, link, value, found)
        vias = Counter((r["source"], r["via"]) for r in read(out / "truth" / "links.csv") if r["at"] == hhmm)
        if at == "16:30":
            assert {v for _, v in vias} == {"order_ref", "pick_ticket", "customer_po", "carton", "tracking_no"}


def test_orphans_exist_in_every_linked_file_and_are_recorded(day):
    out, _ = day
    links = _links(out)
    conditions = read(out / "truth" / "conditions.csv")
    orphan_conditions = {(c["at"], c["source_file"], c["record_key"]) for c in conditions if c["condition"] == "orphan"}
    for entity in LINKED:
        orphans = [r for r in links[("1200", entity)] if r["orphan"] == "true"]
        assert orphans, entity
        for r in orphans:
            assert ("1200", r["file"], r["record_key"]) in orphan_conditions
    assert any(r["ambiguous"] == "true" for rows in links.values() for r in rows)


INJECTED = {
    "short_pick", "substitution", "substitution_against_instruction", "hold_coded", "hold_blank_code",
    "multiple_holds", "pack_exception", "missing_label", "missing_manifest", "late_release", "not_released",
    "cancelled", "under_allocated", "ship_complete_account", "no_substitute_account", "orphan",
    "duplicate_export", "handed_off", "shared_po",
}  # fmt: skip


def test_every_injected_condition_appears_and_points_at_a_real_record(day):
    out, _ = day
    conditions = read(out / "truth" / "conditions.csv")
    assert INJECTED <= {c["condition"] for c in conditions}
    assert INJECTED - {"handed_off"} <= {c["condition"] for c in conditions if c["at"] == "1200"}
    keys: dict[tuple[str, str], set[str]] = {}
    for at in AT:
        hhmm = at.replace(":", "")
        for entity in SOURCES:
            if ENTITIES[entity].key and entity not in ("inventory", "order_lines", "account_instructions"):
                keys[(hhmm, SOURCES[entity]["file"])] = {r[key_col(entity)] for r in snap(out, at, entity)}
        orders = keys[(hhmm, SOURCES["orders"]["file"])]
        for c in (c for c in conditions if c["at"] == hhmm):
            if c["condition"] == "orphan":
                assert not c["order_id"]
            elif c["condition"] != "duplicate_export":
                assert c["order_id"] in orders, c
            if c["record_key"]:
                assert c["record_key"] in keys[(hhmm, c["source_file"])], c


def test_conditions_agree_with_what_the_extracts_show(day):
    out, _ = day
    conditions = read(out / "truth" / "conditions.csv")
    tasks = {r["TASK_ID"]: r for r in snap(out, "16:30", "pick_tasks")}
    shorts = [c for c in conditions if c["at"] == "1630" and c["condition"] == "short_pick"]
    assert shorts and all(tasks[c["record_key"]]["TASK_STAT"] == "40" and tasks[c["record_key"]]["PICK_NOTE"] for c in shorts)
    against = [c for c in conditions if c["at"] == "1630" and c["condition"] == "substitution_against_instruction"]
    assert any(c["detail"].endswith("account NO SUBS") for c in against)
    assert any(c["detail"].endswith("line SubsOK=N") for c in against)
    subs = [c for c in conditions if c["at"] == "1630" and c["condition"] == "substitution"]
    assert subs and all(tasks[c["record_key"]]["SUB_ITEM"] for c in subs)
    assert sum(1 for t in tasks.values() if t["SUB_ITEM"] and t["ORDER_REF"]) >= len(subs)
    cartons = {r["CARTON"]: r for r in snap(out, "16:30", "pack_events")}
    exc = [c for c in conditions if c["at"] == "1630" and c["condition"] == "pack_exception"]
    assert exc and all(cartons[c["record_key"]]["PACK_STAT"] == "EXC" and cartons[c["record_key"]]["EXC_CODE"] for c in exc)
    assert all(r["ORDER_REF"] or r["PICK_TICKET"] for r in cartons.values())
    assert any(not r["ORDER_REF"] for r in cartons.values())
    holds = {r["HOLD_NO"]: r for r in snap(out, "16:30", "holds")}
    blank = [c for c in conditions if c["at"] == "1630" and c["condition"] == "hold_blank_code"]
    assert blank and all(not holds[c["record_key"]]["HOLD_CODE"] and holds[c["record_key"]]["HOLD_NOTE"] for c in blank)
    ships = {r["ShipmentId"]: r for r in snap(out, "16:30", "shipments")}
    nomanifest = [c for c in conditions if c["at"] == "1630" and c["condition"] == "missing_manifest"]
    assert nomanifest and all(
        ships[c["record_key"]]["LabelCreated"] and not ships[c["record_key"]]["Manifested"] for c in nomanifest
    )


def test_bad_arguments_name_what_is_wrong(tmp_path):
    with pytest.raises(HandoffError, match="25:00"):
        generate(orders=10, seed=1, out=tmp_path, at=("25:00",), site_file=SITE, progress=False)
    with pytest.raises(HandoffError, match="each once"):
        generate(orders=10, seed=1, out=tmp_path, at=("09:00", "9:00"), site_file=SITE, progress=False)
    with pytest.raises(HandoffError, match="orders"):
        generate(orders=0, seed=1, out=tmp_path, site_file=SITE, progress=False)
    with pytest.raises(HandoffError, match="date"):
        generate(orders=10, seed=1, out=tmp_path, date="24/11/2026", site_file=SITE, progress=False)
