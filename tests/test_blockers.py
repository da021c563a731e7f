"""The blocker queue: reasons from codes first, then note rules; owners, links, priority, cutoff, age."""

import datetime as dt

import pytest
from scenario_tables import DAY, Story, at, demo_settings

from handoff_lib.publish.picture import drill_down, drill_downs, summary, summary_with_drill_down
from handoff_lib.rules.blockers import reason_from_note


def test_scenario_1_short_pick_before_cutoff_makes_the_order_short_with_a_replenishment_blocker_and_puts_the_promise_at_risk():
    s = Story()
    s.order("SO-1001", lines=2, promised_delivery=DAY + dt.timedelta(days=1))  # only today's pickup keeps it
    s.task("T-88811", "SO-1001", 1, required=5, picked=5, status="picked")
    s.task(
        "T-88812",
        "SO-1001",
        2,
        required=5,
        picked=3,
        status="short",
        location="A-12-03",
        note="bin empty",
        updated_at=at("14:10"),
    )
    s.analyse("14:30")
    assert s.order_state("SO-1001") == ("short", "line 2 short 3 of 5 at A-12-03, pick task T-88812 (WMS)")
    [b] = s.blockers_of("SO-1001")
    assert b["reason_label"] == "Short pick"
    assert b["owner"] == "replenishment"
    assert b["cutoff_at"].strftime("%H:%M") == "16:00"
    assert b["source_link"] == "https://wms.example.com/tasks/T-88812"
    assert b["age_minutes"] == 20
    assert 'note "bin empty"' in b["detail"]
    assert s.promise_of("SO-1001")[0] == "at_risk"


def test_scenario_4_two_holds_are_two_blocker_rows_and_the_order_stays_held_until_both_are_released():
    s = Story()
    s.order("SO-1005")
    s.hold("H-1", "SO-1005", note="cust on credit hold - AR to release", placed_at="08:30")
    s.hold("H-2", "SO-1005", note="ADDR INVALID suite missing", placed_at="08:45")
    s.analyse("10:00")
    assert s.order_state("SO-1005")[0] == "held"
    rows = s.blockers_of("SO-1005")
    assert [(b["source_key"], b["reason"], b["owner"]) for b in rows] == [
        ("H-2", "address", "customer service"),
        ("H-1", "credit_hold", "finance"),
    ]
    assert all(b["basis"].startswith("note rule") for b in rows)

    s.con.execute("UPDATE linked_holds SET released_at = ? WHERE hold_id = 'H-1'", [at("10:30")])
    s.analyse("10:45")
    assert s.order_state("SO-1005")[0] == "held"
    assert [b["source_key"] for b in s.blockers_of("SO-1005")] == ["H-2"]

    s.con.execute("UPDATE linked_holds SET released_at = ? WHERE hold_id = 'H-2'", [at("11:00")])
    s.analyse("11:15")
    assert s.order_state("SO-1005")[0] == "pickable"
    assert s.blockers_of("SO-1005") == []


def test_scenario_7_substitution_against_a_no_substitutes_account_needs_the_customer_told():
    s = Story()
    s.instruction("C-NS", "no_substitutes")
    s.order("SO-1007", customer_id="C-NS", lines=[("SKU-A", 5)])
    s.task("T-7", "SO-1007", 1, required=5, picked=5, status="picked", substituted_sku="SKU-B")
    s.analyse("11:00")
    state, reason = s.order_state("SO-1007")
    assert state == "substituted"
    assert "picked SKU-B instead of SKU-A, pick task T-7 (WMS); the account instruction says no substitutes (CRM)" in reason
    [b] = s.blockers_of("SO-1007")
    assert (b["reason"], b["owner"]) == ("substitution", "customer service")
    assert s.promise_of("SO-1007")[0] == "needs_communication"


def test_an_allowed_substitution_is_no_blocker():
    s = Story()
    s.instruction("C-OK", "substitutes_allowed")
    s.order("SO-OK", customer_id="C-OK", lines=[("SKU-A", 5)])
    s.task("T-8", "SO-OK", 1, required=5, picked=5, status="picked", substituted_sku="SKU-B")
    s.analyse("11:00")
    assert s.order_state("SO-OK")[0] == "picked"
    assert s.blockers_of("SO-OK") == []


def test_a_hold_code_mapped_in_policy_wins_over_its_note():
    s = Story()
    s.order("SO-C")
    s.hold("H-5", "SO-C", code="qa", note="customer called about the address")
    s.analyse("10:00")
    [b] = s.blockers_of("SO-C")
    assert (b["reason"], b["owner"], b["basis"]) == ("quality_hold", "quality", "hold code qa")


def test_a_hold_with_no_code_and_no_matching_note_is_routed_to_the_shift_lead():
    s = Story()
    s.order("SO-Q")
    s.hold("H-6", "SO-Q", note="see Bob")
    s.analyse("10:00")
    [b] = s.blockers_of("SO-Q")
    assert (b["reason"], b["owner"], b["basis"]) == ("hold_other", "shift lead", "no code and no note rule matched")


def test_a_pack_exception_without_a_code_gets_its_reason_from_the_note():
    s = Story()
    s.order("SO-E")
    s.picked("SO-E")
    s.carton("C-9", "SO-E", status="exception", note="carton too big - check dims", event_at="12:30")
    s.analyse("13:00")
    [b] = s.blockers_of("SO-E")
    assert (b["reason"], b["owner"], b["source_key"]) == ("item_master", "master data", "C-9")


def test_reason_from_note_applies_the_first_matching_rule():
    s = Story()
    assert reason_from_note(s.con, s.settings, "Cust on CREDIT hold, address also wrong") == "credit_hold"
    assert reason_from_note(s.con, s.settings, "bin empty at A-12-03") == "short_pick"
    assert reason_from_note(s.con, s.settings, "nothing to see") is None



def test_a_hold_note_matching_two_rules_takes_the_first_rule_and_a_site_without_note_rules_leaves_it_unclassified():
    for settings, expected in ((None, ("credit_hold", "note rule 1 on the note")),
                               (demo_settings(note_rules=[]), ("hold_other", "no code and no note rule matched"))):
        s = Story(settings)
        s.order("SO-N")
        s.hold("H-N", "SO-N", note="credit hold, and the address is wrong", placed_at="08:30")
        s.analyse("10:00")
        [b] = s.blockers_of("SO-N")
        assert (b["reason"], b["basis"]) == expected

def test_an_order_line_sku_missing_from_inventory_is_an_unknown_sku_blocker_for_master_data():
    s = Story()
    s.order("SO-U", lines=[("SKU-NEW", 1)], stock=False)
    s.analyse("10:00")
    [b] = s.blockers_of("SO-U")
    assert (b["reason"], b["owner"], b["source_key"]) == ("unknown_sku", "master data", "SO-U/1")
    assert b["source_link"] == "https://oms.example.com/orders/SO-U"


def test_an_unlinked_pick_task_is_a_data_gap_blocker_and_never_vanishes():
    s = Story()
    s.order("SO-1")
    s.task("T-404", None, 1, sku="SKU-1", order_ref="SO-99")
    s.hold("H-7", None, reference="PO-777", link_status="ambiguous")
    s.analyse("10:00")
    rows = s.blockers_of(None)
    assert [(b["reason"], b["source_entity"], b["source_key"]) for b in rows] == [
        ("unlinked_record", "holds", "H-7"),
        ("unlinked_record", "pick_tasks", "T-404"),
    ]
    assert 'pick task T-404 cites "SO-99", which matches no order' in rows[1]["detail"]
    assert "matches more than one order" in rows[0]["detail"]
    assert rows[1]["source_link"] == "https://wms.example.com/tasks/T-404"
    assert rows[1]["owner"] == "data team"


def test_an_order_not_released_two_hours_before_its_cutoff_is_a_blocker_for_order_management():
    s = Story()
    s.order("SO-N", release_status="not_released", released_at=None)
    s.analyse("13:00")
    assert s.blockers_of("SO-N") == []
    s.analyse("14:30")
    [b] = s.blockers_of("SO-N")
    assert (b["reason"], b["owner"]) == ("not_released", "order management")


def test_blocker_ids_are_stable_across_runs():
    s = Story()
    s.order("SO-1")
    s.hold("H-1", "SO-1", code="CR")
    s.analyse("10:00")
    first = s.blockers_of("SO-1")[0]["blocker_id"]
    s.analyse("11:00")
    assert s.blockers_of("SO-1")[0]["blocker_id"] == first


def test_priority_is_the_sum_of_the_policy_points_and_each_row_says_how():
    s = Story()
    s.order("SO-VIP", priority=1, order_value=6000.0)
    s.hold("H-1", "SO-VIP", code="CR")
    s.analyse("15:30")
    [b] = s.blockers_of("SO-VIP")
    assert b["priority"] == 50 + 40 + 20 + 0
    assert b["priority_rule"] == "tier 1 +50, 30 min to cutoff +40, value 6000 +20, 1 open lines +0 = 110"


def test_every_summary_count_equals_the_length_of_its_drill_down_list():
    s = Story()
    s.order("SO-1", lines=2)
    s.task("T-1", "SO-1", 2, picked=1, status="short")
    s.order("SO-2")
    s.hold("H-1", "SO-2", note="credit")
    s.hold("H-2", "SO-2", code="ADDR")
    s.order("SO-3")
    s.picked("SO-3")
    s.task("T-X", None, 1, sku="SKU-1", order_ref="??")
    counts = s.analyse("16:10")
    assert counts["orders"] == 3 and counts["blockers"] == 4
    for name, (count, rows) in summary_with_drill_down(s.con, s.settings).items():
        assert count == len(rows), name
    assert summary(s.con, s.settings) == counts
    assert set(drill_down(s.con, s.settings, "orders.delayed")["order_id"]) == {"SO-3"}
    assert len(drill_downs(s.settings)) == len(counts)


def test_analyse_refuses_a_naive_now():
    import datetime as dt

    from handoff_lib.errors import HandoffError
    from handoff_lib.publish.picture import analyse

    s = Story()
    with pytest.raises(HandoffError, match="timezone-aware"):
        analyse(s.con, s.settings, dt.datetime(2025, 6, 10, 14, 30))


def test_a_hold_and_a_carton_link_to_their_own_kind_of_record_when_the_site_sets_a_template_for_it():
    from dataclasses import replace

    s = Story()
    s.order("SO-H")
    s.hold("H-31", "SO-H", code="CREDIT", placed_at="08:30")
    s.order("SO-C")
    s.carton("C-77", "SO-C", status="exception", note="label printer jam", event_at="09:30")
    s.analyse("10:00")
    links = {b["source_key"]: b["source_link"] for o in ("SO-H", "SO-C") for b in s.blockers_of(o)}
    assert links == {"H-31": "https://wms.example.com/holds/H-31", "C-77": "https://wms.example.com/cartons/C-77"}

    only_system = demo_settings()
    only_system = replace(only_system, links={k: v for k, v in only_system.links.items() if k not in ("holds", "pack_events")})
    s = Story(only_system)
    s.order("SO-H")
    s.hold("H-31", "SO-H", code="CREDIT", placed_at="08:30")
    s.analyse("10:00")
    [b] = s.blockers_of("SO-H")
    assert b["source_link"] is None  # the WMS template wants a task_id, which a hold lacks


def test_a_link_template_for_an_unknown_kind_of_record_is_refused_naming_it(tmp_path):
    import yaml
    from scenario_tables import DEMO

    from handoff_lib.errors import SettingsError
    from handoff_lib.load.settings import load_settings

    raw = yaml.safe_load(DEMO.read_text())
    raw["links"]["pallets"] = "https://wms.example.com/pallets/{pallet_id}"
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(raw))
    with pytest.raises(SettingsError, match=r"site.yaml line \d+: 'pallets' is not a system or a kind of record \(links.pallets\)"):
        load_settings(site)


def test_a_long_hold_note_is_quoted_up_to_200_characters_and_then_says_it_was_cut():
    s = Story()
    s.order("LONG", lines=1)
    s.order("SHORT", lines=1)
    s.hold("H1", "LONG", code="CR", note="credit check " + "x" * 300)
    s.hold("H2", "SHORT", code="CR", note="credit check, call AR")
    s.analyse("10:00")
    details = dict(s.con.execute("SELECT order_id, detail FROM blockers WHERE reason = 'credit_hold'").fetchall())
    quoted = details["LONG"].split('"')[1]
    assert len(quoted) == 200 and quoted.endswith("…") and quoted.startswith("credit check xxx")
    assert '"credit check, call AR"' in details["SHORT"]
