"""Recurring themes over a multi-day history: planted repeat problems rank first; the planner export."""

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from handoff_lib.errors import HandoffError
from handoff_lib.learn import themes

START = dt.date(2025, 6, 2)  # a Monday


@pytest.fixture
def history(tmp_path):
    """Five days, two reviews a day. Every day SKU-777001 is short and bin D-09-04 is mis-slotted; other
    SKUs and bins come up once. One credit hold stays open all day and is snapshotted in every review
    of day 1 under many orders' noise, to show that days seen, not snapshots, decide a repeat."""
    bl, od = [], []
    n = 0

    def add(day, review, reason, owner, detail, order, customer="C-1", carrier="UPS", bid=None, age=30):
        nonlocal n
        n += 1
        bl.append(
            {
                "site": "dc1",
                "review_date": day,
                "review_time": review,
                "blocker_id": bid or f"b{n}",
                "order_id": order,
                "reason": reason,
                "reason_label": reason,
                "owner": owner,
                "age_minutes": age,
                "detail": detail,
                "source_key": f"k{n}",
            }
        )
        od.append(
            {
                "site": "dc1",
                "review_date": day,
                "review_time": review,
                "order_id": order,
                "customer_id": customer,
                "customer_name": f"Cust {customer}",
                "carrier": carrier,
            }
        )

    for d in range(5):
        day = START + dt.timedelta(days=d)
        for r, review in enumerate(("0900", "1400")):
            add(
                day,
                review,
                "allocation_short",
                "inventory control",
                "line 1 SKU-777001 allocated 0 of 5; partial shipment allowed",
                f"SO-A{d}",
                bid=f"planted-sku-{d}",
                age=60 + r * 300,
            )
            add(
                day,
                review,
                "short_pick",
                "replenishment",
                'line 2 short 0 of 3 at D-09-04, pick task T1 (WMS), note "wrong item in slot"',
                f"SO-L{d}",
                bid=f"planted-loc-{d}",
                customer="C-2",
                carrier="FDX",
                age=45 + r * 300,
            )
            for j in range(4):  # one-off noise: a new SKU and a new bin each time
                add(
                    day,
                    review,
                    "short_pick",
                    "replenishment",
                    f"line 1 short 0 of 2 at A-{d:02d}-{j + 1:02d}, SKU-10{d}{r}{j}00 gone",
                    f"SO-N{d}{r}{j}",
                    customer=f"C-{10 + j}",
                )
    for k in range(6):  # one long-lived hold snapshotted six times on day 1 with a SKU in its note
        add(
            START,
            f"09{k}0",
            "credit_hold",
            "finance",
            'hold H9 code CR "SKU-555555 order over limit"',
            "SO-H",
            bid="hold-h9",
            age=600,
        )
    path = tmp_path / "history.duckdb"
    bdf, odf = pd.DataFrame(bl), pd.DataFrame(od)  # noqa: F841 (read by DuckDB by name)
    con = duckdb.connect(str(path))
    con.execute(themes.DEMO_SNAP_BLOCKERS)
    con.execute(themes.DEMO_SNAP_ORDERS)
    con.execute("INSERT INTO snap_blockers BY NAME SELECT * FROM bdf")
    con.execute("INSERT INTO snap_orders BY NAME SELECT * FROM odf")
    con.close()
    return path


def test_the_sku_short_every_day_and_the_mis_slotted_location_rank_first(history):
    con, scope = themes.open_themes(history)
    assert (scope.site, scope.date_from, scope.date_to) == ("dc1", START, START + dt.timedelta(days=4))
    sku = themes.offenders(con, "sku")
    assert sku.iloc[0][["sku", "days_seen", "blockers"]].tolist() == ["SKU-777001", 5, 5]
    assert sku.iloc[1]["days_seen"] == 1  # the long-lived hold counts once, on its one day
    loc = themes.offenders(con, "location")
    assert loc.iloc[0][["location", "days_seen", "main_theme"]].tolist() == ["D-09-04", 5, "Short / stock-out"]


def test_themes_count_distinct_blockers_per_week_not_snapshots(history):
    con, _ = themes.open_themes(history)
    week = themes.by_week(con)
    credit = week[week["theme"] == "credit_payment"]
    assert credit[["blockers", "days_seen"]].values.tolist() == [[1, 1]]
    short = week[week["theme"] == "short_stockout"]
    assert short["blockers"].iloc[0] == 5 + 5 + 5 * 2 * 4


def test_pareto_is_sorted_with_a_cumulative_share_ending_at_100(history):
    con, _ = themes.open_themes(history)
    p = themes.pareto(con)
    assert p["theme"].iloc[0] == "short_stockout"
    assert p["blockers"].is_monotonic_decreasing and p["cumulative_pct"].iloc[-1] == 100.0


def test_age_by_owner_uses_each_blockers_oldest_snapshot(history):
    con, _ = themes.open_themes(history)
    age = themes.age_by_owner(con).set_index("owner")
    assert age.loc["finance", "blockers"] == 1 and age.loc["finance", "max_age_hours"] == 10.0
    assert age.loc["inventory control", "median_age_hours"] == 6.0


def test_a_date_range_and_filters_narrow_every_view(history):
    con, _scope = themes.open_themes(history, "dc1", "2025-06-03", "2025-06-04")
    assert themes.offenders(con, "sku").iloc[0]["days_seen"] == 2
    f = themes.Filters(owner="finance")
    assert themes.pareto(con, f).empty  # the hold was on day 1 only
    with pytest.raises(HandoffError, match="start is after the end"):
        themes.open_themes(history, "dc1", "2025-06-05", "2025-06-01")
    with pytest.raises(HandoffError, match="no blocker history for site 'nope'"):
        themes.open_themes(history, "nope")


def test_the_planner_export_writes_one_sheet_per_view_with_frozen_readable_headers_and_csvs(history, tmp_path):
    from openpyxl import load_workbook

    written = themes.export(history, "dc1", None, None, tmp_path / "out")
    wb = load_workbook(written["xlsx"])
    assert wb.sheetnames == [
        "pareto",
        "by_week",
        "repeat_sku",
        "repeat_location",
        "repeat_customer",
        "repeat_carrier",
        "repeat_owner",
        "age_by_owner",
    ]
    ws = wb["repeat_sku"]
    assert ws.freeze_panes == "A2" and ws["A1"].value == "Sku" and ws["A2"].value == "SKU-777001"
    assert ws["B1"].value == "Days seen"
    assert all(p.exists() for p in written.values()) and len(written) == 9


def test_the_demo_history_plants_a_daily_short_sku_and_a_mis_slotted_location_that_rank_first(tmp_path):
    path = themes.demo_history(tmp_path / "history_demo.duckdb")
    con, _scope = themes.open_themes(path)
    assert themes.offenders(con, "sku").iloc[0]["sku"] == themes.PLANTED_SKU
    assert themes.offenders(con, "location").iloc[0]["location"] == themes.PLANTED_LOCATION
    again = themes.demo_history(tmp_path / "again_demo.duckdb")
    con2, _ = themes.open_themes(again)
    assert themes.pareto(con).equals(themes.pareto(con2))  # deterministic


def test_a_missing_history_is_an_error_unless_its_name_says_demo(tmp_path):
    with pytest.raises(HandoffError, match="no history database"):
        themes.ensure_history(tmp_path / "history.duckdb")
    assert themes.ensure_history(tmp_path / "history_demo.duckdb").is_file()


def test_a_sites_own_taxonomy_names_the_themes_and_every_other_reason_counts_under_other(history, tmp_path):
    from handoff_lib.learn.taxonomy import load_taxonomy

    fixtures = Path(__file__).resolve().parent / "fixtures" / "notes_site"
    con = duckdb.connect(str(history))
    con.execute("UPDATE snap_blockers SET reason = 'temperature_excursion' WHERE reason = 'credit_hold'")
    con.close()
    con, _ = themes.open_themes(history, taxonomy=load_taxonomy(fixtures / "reasons.yaml"))
    p = themes.pareto(con).set_index("theme")
    assert p.index.tolist() == ["other", "cold_chain"]  # short_pick / allocation_short: no theme of this site claims them
    assert p.loc["cold_chain", ["theme_label", "root_cause_owner", "blockers"]].tolist() == ["Cold chain", "quality", 1]
    assert p.loc["other", "theme_label"] == "Other" and p["cumulative_pct"].iloc[-1] == 100.0
    assert themes.offenders(con, "location").iloc[0]["main_theme"] == "Other"
    raw = yaml.safe_load((Path(__file__).resolve().parent.parent / "parameters/demo.yaml").read_text())
    raw["data"] = {"folder": str(tmp_path), "allowed_roots": [str(tmp_path)]}
    raw["notes"] = {"taxonomy": str(fixtures / "reasons.yaml")}
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(raw))
    assert themes.site_taxonomy(site_file).codes == ["dock_congestion", "cold_chain", "customs_docs"]
    assert themes.site_taxonomy("").codes == load_taxonomy().codes


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    return themes.demo_estate(tmp_path_factory.mktemp("estate") / "estate_demo")


def test_the_estate_views_name_the_site_that_leads_on_each_demo_sites_bent(estate):
    con, scope = themes.open_themes(estate)
    assert scope.site == "estate" and scope.sites == ("dc-east", "dc-south", "dc-west")
    lead = themes.site_themes(con).query("place == 1").set_index("theme")["site"]
    assert lead["credit_payment"] == "dc-east"  # boosted credit holds
    assert lead["labeling_docs_compliance"] == "dc-west"  # boosted missing labels
    assert lead["short_stockout"] == "dc-south"  # boosted short picks
    wide = themes.estate_themes(con).set_index("theme")
    assert wide.loc["short_stockout", "sites"] == 3 and wide.loc["credit_payment", "leading_site"] == "dc-east"
    sku = themes.offenders(con, "sku").iloc[0]
    assert (sku["sku"], sku["sites"]) == (themes.PLANTED_SKU, 3)  # the planted repeat recurs at every site


def test_a_site_filter_or_scope_narrows_every_view_to_those_sites(estate):
    con, _ = themes.open_themes(estate, "dc-west,dc-east")
    assert set(themes.site_week(con)["site"]) == {"dc-west", "dc-east"}
    con, scope = themes.open_themes(estate, "dc-south")
    assert scope.site == "dc-south" and not scope.estate
    f = themes.Filters(sites=("dc-east",))
    con, _ = themes.open_themes(estate)
    assert set(themes.site_themes(con, f)["site"]) == {"dc-east"}
    with pytest.raises(HandoffError, match="no reviews of site 'dc-north' in the store"):
        themes.open_themes(estate, "dc-north")


def test_the_estate_export_adds_the_cross_site_sheets(estate, tmp_path, capsys):
    from openpyxl import load_workbook

    from handoff_lib.cli.notes import themes_main

    assert themes_main(["export", "--store", str(estate), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "3 sites (dc-east, dc-south, dc-west)" in printed and "most widespread theme: Short / stock-out" in printed
    book = next((tmp_path / "out").glob("blocker_themes_estate_*.xlsx"))
    assert load_workbook(book).sheetnames[-3:] == ["estate_themes", "site_themes", "site_week"]
