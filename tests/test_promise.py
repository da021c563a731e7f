"""Cutoffs and the customer promise: safe / at_risk / needs_communication, with the reason."""

import datetime as dt

from scenario_tables import DAY, Story, at, demo_settings


def test_scenario_5_packed_without_a_label_half_an_hour_before_pickup_is_at_risk_until_label_and_manifest_exist():
    s = Story()
    s.order("SO-1005", promised_delivery=DAY + dt.timedelta(days=1))  # today's UPS GND pickup arrives tomorrow: just in time
    s.picked("SO-1005", at_time="14:30")
    s.carton("CTN-55", "SO-1005", event_at="15:10")
    s.analyse("15:30")
    assert s.order_state("SO-1005")[0] == "packed"
    [b] = s.blockers_of("SO-1005")
    assert (b["reason"], b["owner"], b["source_key"]) == ("label_missing", "shipping", "CTN-55")
    status, reason = s.promise_of("SO-1005")
    assert status == "at_risk"  # 10 min of label + manifest left, and only the 16:00 pickup keeps Wednesday's promise
    assert reason.startswith("blocked by Label missing (shipping); it must clear now: 10 min of work left and only Tue 10 Jun 16:00")

    s.shipment("SHP-1", "SO-1005", label="15:35", manifest="15:40")
    s.analyse("15:45")
    assert s.order_state("SO-1005")[0] == "ready_for_handoff"
    assert s.blockers_of("SO-1005") == []
    assert s.promise_of("SO-1005") == (
        "safe",
        "ready, waits for Tue 10 Jun 16:00 + 1 delivery day(s) arrives Wed 11 Jun; keeps the promised delivery Wed 11 Jun",
    )


def test_scenario_6_picked_after_the_pickup_left_needs_communication_when_the_promise_is_due_tomorrow():
    s = Story()
    s.order("SO-1006", promised_delivery=DAY + dt.timedelta(days=1))
    s.picked("SO-1006")
    s.analyse("16:05")
    assert s.order_state("SO-1006")[0] == "delayed"
    status, reason = s.promise_of("SO-1006")
    assert status == "needs_communication"
    assert reason == (
        "missed UPS GND pickup Tue 10 Jun 16:00; 25 min of work left; the first pickup it can make, Wed 11 Jun 16:00 + 1 delivery "
        "day(s) arrives Thu 12 Jun, after the promised Wed 11 Jun"
    )


def test_scenario_6_picked_after_the_pickup_left_is_still_safe_when_the_promise_is_two_days_out_and_a_pickup_comes_tomorrow():
    s = Story()
    s.order("SO-1016", promised_delivery=DAY + dt.timedelta(days=2))
    s.picked("SO-1016")
    s.analyse("16:05")
    assert s.order_state("SO-1016")[0] == "delayed"
    status, reason = s.promise_of("SO-1016")
    assert status == "safe"
    assert reason == (
        "missed UPS GND pickup Tue 10 Jun 16:00; 25 min of work left + 60 min buffer fits: Wed 11 Jun 16:00 + 1 delivery day(s) "
        "arrives Thu 12 Jun; keeps the promised delivery Thu 12 Jun"
    )


def test_a_ready_order_needs_no_buffer():
    s = Story()
    s.order("SO-R", promised_delivery=DAY + dt.timedelta(days=1))
    s.picked("SO-R")
    s.carton("CTN-R", "SO-R", event_at="12:00")
    s.shipment("SHP-R", "SO-R", label="12:05", manifest="12:10")
    s.analyse("15:50")  # 10 minutes before the only pickup that keeps the promise
    assert s.promise_of("SO-R")[0] == "safe"


def test_scenario_8_a_customer_buffer_override_turns_the_same_packed_order_at_risk():
    s = Story(demo_settings(buffer_by_customer={"A": 120}))
    s.order("SO-A", customer_id="A", promised_delivery=None)  # no promised date: the promise is its due pickup
    s.order("SO-B", customer_id="B", promised_delivery=None)
    for order_id in ("SO-A", "SO-B"):
        s.picked(order_id, at_time="13:30")
        s.carton(f"CTN-{order_id}", order_id, event_at="14:15")
    s.analyse("14:15")
    assert s.promise_of("SO-A") == (
        "at_risk",
        ("10 min of work left + 120 min buffer runs past Tue 10 Jun 16:00, the last hand-off that keeps its due pickup "
        "Tue 10 Jun 16:00; without the buffer: Tue 10 Jun 16:00"),
    )
    assert s.promise_of("SO-B") == ("safe", "10 min of work left + 60 min buffer fits: Tue 10 Jun 16:00; keeps its due pickup Tue 10 Jun 16:00")


def test_the_buffer_counts_against_the_last_pickup_that_keeps_the_promise_not_todays():
    # Promised in four days: today's pickup is tight with the buffer, but Wednesday's keeps the promise.
    s = Story()
    s.order("SO-4D", promised_delivery=DAY + dt.timedelta(days=4))
    s.analyse("15:00")  # 35 min of work, 60 min buffer, 60 min to today's 16:00 pickup
    assert s.promise_of("SO-4D")[0] == "safe"
    s2 = Story()
    s2.order("SO-1D", promised_delivery=DAY + dt.timedelta(days=1))  # only today's pickup keeps it
    s2.analyse("15:00")
    assert s2.promise_of("SO-1D")[0] == "at_risk"


def test_an_explicit_ship_by_overrides_the_carrier_pickup():
    s = Story()
    s.order("SO-SB", ship_by=at("12:00"))
    s.analyse("11:00")
    assert s.one("SELECT cutoff_source, cutoff_label FROM order_cutoffs") == ("ship_by", "ship-by Tue 10 Jun 12:00 (OMS)")
    assert s.promise_of("SO-SB")[0] == "at_risk"  # 10 + 15 + 5 + 5 min work + 60 min buffer > 60 min left


def test_a_missed_ship_by_needs_communication_when_it_is_the_only_promise():
    s = Story()
    s.order("SO-SB", ship_by=at("12:00"), promised_delivery=None)
    s.analyse("12:30")
    assert s.promise_of("SO-SB") == (
        "needs_communication",
        "missed the ship-by Tue 10 Jun 12:00 (OMS): 35 min of work left, earliest hand-off Tue 10 Jun 13:05",
    )


def test_a_missed_ship_by_is_at_risk_when_the_promised_delivery_still_holds():
    s = Story()
    s.order("SO-SB", ship_by=at("12:00"))  # promised Thursday: today's pickup still delivers on time
    s.analyse("12:30")
    status, reason = s.promise_of("SO-SB")
    assert status == "at_risk"
    assert reason.startswith("misses the ship-by Tue 10 Jun 12:00 (OMS; 35 min of work left + 60 min buffer); the promised delivery")


def test_a_carrier_that_does_not_pick_up_today_is_due_on_its_next_pickup_day():
    s = Story()
    s.order("SO-LTL", carrier="LTL", service="FREIGHT")  # LTL picks up mon/wed/fri at 14:00; DAY is a Tuesday
    s.analyse("10:00")
    assert s.one("SELECT cutoff_label FROM order_cutoffs")[0] == "LTL FREIGHT pickup Wed 11 Jun 14:00"


def test_an_exact_service_entry_beats_the_carrier_wildcard():
    s = Story(demo_settings())
    from dataclasses import replace

    from handoff_lib.load.settings import Cutoff

    s.settings = replace(s.settings, cutoffs=s.settings.cutoffs + (Cutoff("UPS", "*", dt.time(18, 0), frozenset(range(7))),))
    s.order("SO-1")
    s.analyse("10:00")
    assert s.one("SELECT cutoff_label FROM order_cutoffs")[0] == "UPS GND pickup Tue 10 Jun 16:00"



def test_an_exact_service_entry_beats_an_earlier_wildcard_and_a_late_order_takes_the_next_exact_pickup():
    from dataclasses import replace

    from handoff_lib.load.settings import Cutoff

    s = Story()
    s.settings = replace(s.settings, cutoffs=s.settings.cutoffs + (Cutoff("UPS", "*", dt.time(12, 0), frozenset(range(7))),))
    s.order("SO-1")
    s.order("SO-2", ordered_at=at("16:30"))  # after today's 16:00 GND pickup
    s.order("SO-3", service="NEW")  # a service with no entry of its own: the wildcard
    s.analyse("17:00")
    labels = dict(s.con.execute("SELECT order_id, cutoff_label FROM order_cutoffs").fetchall())
    assert labels == {
        "SO-1": "UPS GND pickup Tue 10 Jun 16:00",
        "SO-2": "UPS GND pickup Wed 11 Jun 16:00",
        "SO-3": "UPS NEW pickup Tue 10 Jun 12:00",
    }

def test_an_order_whose_carrier_has_no_pickup_is_at_risk_and_says_what_to_configure():
    s = Story()
    s.order("SO-Z", carrier="ZZZ", service="X")
    s.analyse("10:00")
    status, reason = s.promise_of("SO-Z")
    assert status == "at_risk"
    assert "no pickup configured for carrier ZZZ service X" in reason
