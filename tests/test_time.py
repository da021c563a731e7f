"""The site timezone governs cutoffs: daylight-saving change days in both directions, and a review
run after midnight for the previous evening's late pickup."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from scenario_tables import Story, demo_settings

from handoff_lib.cli.main import parse_at
from handoff_lib.load.settings import Cutoff

EVERY_DAY = frozenset(range(7))


def story_with(*cutoffs: Cutoff, **policy) -> Story:
    settings = demo_settings(**policy)
    return Story(replace(settings, cutoffs=settings.cutoffs + cutoffs))


def local(settings, text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=settings.tz)


@pytest.mark.parametrize(
    "day, review, minutes",
    [
        # spring forward: 02:00 EST -> 03:00 EDT; 01:30 EST to 16:00 EDT is 14 h 30 min of wall clock, 13 h 30 min real
        ("2026-03-08", "01:30", 810),
        # fall back: 02:00 EDT -> 01:00 EST; 00:30 EDT to 16:00 EST is 15 h 30 min of wall clock, 16 h 30 min real
        ("2026-11-01", "00:30", 990),
    ],
)
def test_a_cutoff_on_a_daylight_saving_day_is_counted_in_real_minutes(day, review, minutes):
    s = story_with(Cutoff("SUN", "*", dt.time(16, 0), EVERY_DAY), day_starts_at="00:00")
    d = dt.date.fromisoformat(day)
    s.order("SO-1", carrier="SUN", service="X", ordered_at=local(s.settings, f"{day} 00:05"),
            released_at=local(s.settings, f"{day} 00:10"), promised_delivery=d + dt.timedelta(days=3))
    s.analyse(review, day=d)
    cutoff_at, label, left = s.one("SELECT cutoff_at, cutoff_label, minutes_to_cutoff FROM order_cutoffs WHERE order_id = 'SO-1'")
    assert cutoff_at == local(s.settings, f"{day} 16:00")
    assert label.endswith("16:00")
    assert left == minutes


def test_the_wall_clock_hour_repeated_when_clocks_fall_back_is_read_as_its_first_occurrence():
    settings = demo_settings()
    first = parse_at("2026-11-01 01:30", settings)
    assert first.utcoffset() == dt.timedelta(hours=-4)  # EDT, before the clocks went back


def test_a_review_after_midnight_still_sees_the_previous_evenings_late_pickup_as_missed():
    late = Cutoff("NITE", "*", dt.time(23, 30), EVERY_DAY)
    s = story_with(late)  # the demo policy starts the operating day at 04:00
    s.order("SO-N", carrier="NITE", service="X", ordered_at=local(s.settings, "2026-11-24 10:00"),
            released_at=local(s.settings, "2026-11-24 10:05"), promised_delivery=dt.date(2026, 11, 25))
    s.picked("SO-N")
    s.analyse("00:20", day=dt.date(2026, 11, 25))
    cutoff_at, left = s.one("SELECT cutoff_at, minutes_to_cutoff FROM order_cutoffs WHERE order_id = 'SO-N'")
    assert cutoff_at == local(s.settings, "2026-11-24 23:30")
    assert left == -50
    assert s.order_state("SO-N")[0] == "delayed"
    assert s.promise_of("SO-N")[0] == "needs_communication"


def test_the_same_review_time_on_a_plain_day_keeps_to_the_calendar_day():
    late = Cutoff("NITE", "*", dt.time(23, 30), EVERY_DAY)
    s = story_with(late, day_starts_at="00:00")
    s.order("SO-N", carrier="NITE", service="X", ordered_at=local(s.settings, "2026-11-24 10:00"),
            released_at=local(s.settings, "2026-11-24 10:05"), promised_delivery=dt.date(2026, 11, 27))
    s.picked("SO-N")
    s.analyse("00:20", day=dt.date(2026, 11, 25))
    cutoff_at = s.one("SELECT cutoff_at FROM order_cutoffs WHERE order_id = 'SO-N'")[0]
    assert cutoff_at == local(s.settings, "2026-11-25 23:30")  # without an operating day, today's pickup


def test_schedule_after_midnight_catches_up_the_previous_days_late_review(site):
    from handoff_lib.load.settings import load_settings
    from handoff_lib.publish.runs import due_reviews

    settings = replace(load_settings(site), review_times=(dt.time(12, 0), dt.time(23, 45)), review_days=EVERY_DAY)
    now = local(settings, "2026-11-25 00:20")
    due = due_reviews(settings, now, done={(dt.date(2026, 11, 24), "1200")}, days_back=1)
    assert [d.strftime("%Y-%m-%d %H%M") for d in due] == ["2026-11-24 2345"]
