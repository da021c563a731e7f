"""Carrier and site calendars: pickups skip closed days, transit counts the carrier's delivery days.

Warehouse stories of peak season. The demo day, Tuesday 24 November 2026, is two days before Thanksgiving."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import replace

import pytest
from scenario_tables import Story, at, demo_settings

from handoff_lib.errors import SettingsError
from handoff_lib.load.settings import Cutoff
from handoff_lib.rules.calendars import load_calendars

TUE = dt.date(2026, 11, 24)  # the demo day
WED, THU, FRI, MON = (TUE + dt.timedelta(days=d) for d in (1, 2, 3, 6))
US = {"holidays": {"country": "US"}}


def story(calendars: dict | None = None, transit: int = 2, cutoffs: tuple[Cutoff, ...] | None = None, **policy) -> Story:
    """The demo site, its UPS GND transit set to `transit` delivery days, with `calendars` as its calendars: section."""
    settings = demo_settings(
        transit_days=[{"carrier": "UPS", "service": "GND", "days": transit}, {"carrier": "UPS", "service": "SAT", "days": 1}],
        **policy,
    )
    raw = copy.deepcopy(settings.raw)
    if calendars is not None:
        raw["calendars"] = calendars
    settings = replace(settings, raw=raw)
    if cutoffs is not None:
        settings = replace(settings, cutoffs=cutoffs)
    return Story(settings)


def order(s: Story, order_id: str, promised: dt.date, day: dt.date = TUE, service: str = "GND") -> None:
    s.order(order_id, promised_delivery=promised, ordered_at=at("08:00", day), released_at=at("08:30", day), service=service)


def test_thanksgiving_week_an_order_that_misses_tuesdays_truck_arrives_monday_and_the_customer_needs_a_call():
    # Promised Friday. UPS Ground, 2 delivery days. Tuesday's 16:00 pickup would arrive Friday (Wed, Fri: no
    # delivery on Thanksgiving). The order is only released at 15:50: it goes out Wednesday, and Wednesday + 2
    # delivery days is Monday 30 November. The suite used to add calendar days: Wednesday + 2 = Friday, safe.
    s = story({"carriers": {"default": US}})
    order(s, "SO-TG", promised=FRI)
    s.analyse("15:50", TUE)
    status, reason = s.promise_of("SO-TG")
    assert status == "needs_communication"
    assert reason == (
        "35 min of work left; the first pickup it can make, Wed 25 Nov 16:00 + 2 delivery day(s) (no delivery Thu 26 Nov "
        "(Thanksgiving Day)) arrives Mon 30 Nov, after the promised Fri 27 Nov"
    )


def test_without_the_holiday_calendar_the_same_order_would_look_safe():
    s = story({"carriers": {"default": {"holidays": None}}})
    order(s, "SO-TG", promised=FRI)
    s.analyse("15:50", TUE)
    assert s.promise_of("SO-TG")[0] == "safe"  # Wed + Thu, Fri: the calendar is what makes the difference


def test_thanksgiving_week_tuesdays_pickup_still_keeps_a_friday_promise():
    s = story({"carriers": {"default": US}})
    order(s, "SO-TUE", promised=FRI)
    s.analyse("12:00", TUE)  # 35 min of work, 60 min buffer: well before 16:00
    status, reason = s.promise_of("SO-TUE")
    assert status == "safe"
    assert "Tue 24 Nov 16:00 + 2 delivery day(s) (no delivery Thu 26 Nov (Thanksgiving Day)) arrives Fri 27 Nov" in reason


def test_a_friday_pickup_on_a_two_day_service_arrives_tuesday_not_sunday():
    s = story({"carriers": {"default": US}})
    fri = dt.date(2026, 12, 4)
    order(s, "SO-FRI", promised=dt.date(2026, 12, 7), day=fri)  # promised Monday: two delivery days is Tuesday
    s.analyse("10:00", fri)
    status, reason = s.promise_of("SO-FRI")
    assert status == "needs_communication"
    assert "Fri 04 Dec 16:00 + 2 delivery day(s) arrives Tue 08 Dec, after the promised Mon 07 Dec" in reason


def test_a_carrier_that_delivers_on_saturdays_keeps_a_saturday_promise():
    cutoffs = demo_settings().cutoffs + (Cutoff("UPS", "SAT", dt.time(16, 0), frozenset(range(5))),)
    cal = {"carriers": {"default": US, "UPS": {"services": {"SAT": {"delivery_days": ["mon", "tue", "wed", "thu", "fri", "sat"]}}}}}
    s = story(cal, cutoffs=cutoffs)
    fri = dt.date(2026, 12, 4)
    order(s, "SO-SAT", promised=dt.date(2026, 12, 5), day=fri, service="SAT")
    order(s, "SO-GND", promised=dt.date(2026, 12, 7), day=fri)  # Ground does not deliver Saturdays: 2 days from Friday is Tuesday
    s.analyse("10:00", fri)
    assert s.promise_of("SO-SAT")[0] == "safe"
    assert "arrives Sat 05 Dec" in s.promise_of("SO-SAT")[1]
    assert s.promise_of("SO-GND")[0] == "needs_communication"


def test_a_site_closure_moves_the_next_pickup_and_the_reason_says_why():
    # The DC closes on Wednesday for an inventory count; Thursday is Thanksgiving: after Tuesday the next truck is Friday.
    s = story({"site": {"closed": ["2026-11-25"], **US}, "carriers": {"default": US}}, transit=1)
    order(s, "SO-CL", promised=dt.date(2026, 11, 30))
    s.analyse("15:50", TUE)
    status, reason = s.promise_of("SO-CL")
    assert status == "safe"  # Friday + 1 delivery day = Monday, the promised day
    assert reason.startswith(
        "35 min of work left + 60 min buffer fits: Fri 27 Nov 16:00 (no pickup Wed 25 Nov (site closed), Thu 26 Nov (Thanksgiving Day)) "
        "+ 1 delivery day(s) arrives Mon 30 Nov"
    )


def test_a_review_on_the_day_before_a_holiday():
    # Wednesday: today's pickup arrives Friday (Thursday has no delivery); miss it and the next truck is Friday.
    s = story({"site": US, "carriers": {"default": US}}, transit=1)
    order(s, "SO-W1", promised=FRI, day=WED)
    order(s, "SO-W2", promised=FRI, day=WED)
    s.con.execute("UPDATE orders SET release_status = 'not_released', released_at = NULL WHERE order_id = 'SO-W2'")
    s.analyse("14:00", WED)
    assert s.promise_of("SO-W1")[0] == "safe"
    assert "Wed 25 Nov 16:00 + 1 delivery day(s) (no delivery Thu 26 Nov (Thanksgiving Day)) arrives Fri 27 Nov" in s.promise_of("SO-W1")[1]
    s.analyse("16:30", WED)  # after the truck left: the next pickup is Friday, not Thursday
    status, reason = s.promise_of("SO-W1")
    assert status == "needs_communication"
    assert "Fri 27 Nov 16:00 (no pickup Thu 26 Nov (Thanksgiving Day)) + 1 delivery day(s) arrives Mon 30 Nov" in reason


def test_the_due_pickup_skips_the_holiday_too():
    s = story({"site": US, "carriers": {"default": US}}, transit=1)
    s.order("SO-LATE", promised_delivery=None, ordered_at=at("17:00", WED), released_at=at("17:05", WED))
    s.analyse("17:10", WED)
    assert s.one("SELECT cutoff_label FROM order_cutoffs")[0] == "UPS GND pickup Fri 27 Nov 16:00"


def test_the_backtest_counts_transit_in_the_same_calendar():
    from handoff_lib.rules.promise import build_lanes, lane_key

    s = story({"carriers": {"default": US}})
    from handoff_lib.rules.policy import load_policy

    policy = load_policy(s.settings)
    build_lanes(s.con, s.settings, policy, [(lane_key("UPS"), lane_key("GND"))], TUE, MON)
    rows = dict(s.con.execute("SELECT ship_date, arrival FROM lane_arrivals").fetchall())
    assert rows[WED] == MON and rows[TUE] == FRI


def test_holidays_come_from_the_maintained_library_by_country_and_state():
    s = story({"site": {"holidays": {"country": "US", "subdiv": "OH"}, "open": ["2026-12-25"], "closed": ["2026-12-24"]}})
    cal = load_calendars(s.settings)
    assert cal.site.holiday(THU) == "Thanksgiving Day"
    assert cal.site.holiday(dt.date(2026, 12, 25)) is None  # the site works Christmas Day (open:)
    assert cal.site.holiday(dt.date(2026, 12, 24)) == "closed"


@pytest.mark.parametrize(
    ("calendars", "match"),
    [
        ({"site": {"holidays": {"country": "XX"}}}, r"no public holidays known for country 'XX'"),
        ({"carriers": {"UPS": {"delivery_days": ["funday"]}}}, r"'fun' is not a weekday"),
        ({"site": {"closed": ["next tuesday"]}}, r"'next tuesday' is not a date"),
        ({"site": {"delivery_days": ["mon"]}}, r"unknown key calendars.site.delivery_days"),
    ],
)
def test_a_bad_calendar_setting_names_what_to_fix(calendars, match):
    with pytest.raises(SettingsError, match=match):
        load_calendars(story(calendars).settings)
