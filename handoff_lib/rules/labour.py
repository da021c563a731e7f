"""The site's labour: who works when, what a unit of work costs, and the labour minutes available until a time.

The `labour:` section of the site file (docs/board.md, "Labour and the pickup verdict"):

```yaml
labour:
  minutes: {pick_line: 0.75, pack_order: 2, label: 0.5, manifest: 0}   # labour minutes of one unit of work
  shifts:                                    # people on the floor per area (pick, pack, ship), site local time
    - {name: early, start: "06:00", end: "14:30", people: {pick: 36, pack: 40, ship: 10}}
    - {name: late,  start: "14:30", end: "23:00", people: {pick: 30, pack: 32, ship: 8}, days: [mon, tue, wed, thu, fri]}
  productive_share: 0.85                     # share of paid time spent on the work above (breaks, travel, meetings)
  load_minutes: 15                           # work must be done this long before a pickup (staging, loading)
  lookahead_hours: 12                        # pickups this far ahead are judged
  at_risk_above_pct: 85                      # a pickup needing more than this share of an area's labour is at risk
  observed: {window_minutes: 120, min_units: 50}   # throughput of the last 120 min, where an area did >= 50 units
```

These minutes are touch time (what a person spends), not the promise's `work_minutes` (the elapsed time one
order needs, queueing included). A site without a `labour:` section gets `DEFAULT_PEOPLE` all day at
`DEFAULT_MINUTES`, and the report says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from handoff_lib.errors import SettingsError
from handoff_lib.load.settings import WEEKDAYS, Settings
from handoff_lib.load.site_keys import LABOUR_AREAS as AREAS
from handoff_lib.load.site_keys import LABOUR_UNITS as UNITS

AREA_OF_UNIT = {"pick_line": "pick", "pack_order": "pack", "label": "ship", "manifest": "ship"}
DEFAULT_MINUTES = {"pick_line": 1.0, "pack_order": 3.0, "label": 0.5, "manifest": 0.0}
DEFAULT_PEOPLE = {"pick": 10, "pack": 5, "ship": 2}


@dataclass(frozen=True)
class Shift:
    name: str
    start: dt.time
    end: dt.time  # at or before start: the shift ends the next day
    people: dict[str, float]
    days: frozenset[int] = frozenset(range(7))


@dataclass(frozen=True)
class Labour:
    minutes: dict[str, float]
    shifts: tuple[Shift, ...]
    productive_share: float = 0.85
    load_minutes: float = 15.0
    lookahead_hours: float = 12.0
    at_risk_above_pct: float = 85.0
    window_minutes: float = 120.0
    min_units: int = 50
    configured: bool = True  # False: the site file has no labour: section (defaults in use)
    where: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The plan in words, for the report."""
        if not self.configured:
            return (f"the site file sets no labour: section, so the built-in default is used: "
                    f"{_people_text(DEFAULT_PEOPLE)} all day, {_minutes_text(self.minutes)} ({self.where})")
        shifts = "; ".join(f"{s.name} {s.start:%H:%M}-{s.end:%H:%M} {_people_text(s.people)}" for s in self.shifts)
        return f"{shifts}; {_minutes_text(self.minutes)}; {self.productive_share:.0%} of paid time productive ({self.where})"

    def people_minutes(self, area: str, start: dt.datetime, end: dt.datetime) -> float:
        """Person-minutes on the floor in `area` between `start` and `end` (aware datetimes), from the shifts."""
        if end <= start:
            return 0.0
        tz = start.tzinfo
        total = 0.0
        first = start.astimezone(tz).date() - dt.timedelta(days=1)
        for k in range((end.date() - first).days + 1):
            day = first + dt.timedelta(days=k)
            for s in self.shifts:
                if day.weekday() not in s.days or not s.people.get(area):
                    continue
                a = dt.datetime.combine(day, s.start, tz)
                b = dt.datetime.combine(day if s.end > s.start else day + dt.timedelta(days=1), s.end, tz)
                lo, hi = max(a, start), min(b, end)
                if hi > lo:
                    total += (hi - lo).total_seconds() / 60 * s.people[area]
        return total


def _people_text(people: dict[str, float]) -> str:
    return ", ".join(f"{people.get(a, 0):g} {a}" for a in AREAS)


def _minutes_text(minutes: dict[str, float]) -> str:
    return "labour minutes per " + ", ".join(f"{u.replace('_', ' ')} {minutes[u]:g}" for u in UNITS)


def load_labour(settings: Settings) -> Labour:
    """The site's `labour:` section, validated (every error names the site-file line); the default when absent."""
    raw = settings.raw.get("labour")
    if raw is None:
        return Labour(dict(DEFAULT_MINUTES), (Shift("all day", dt.time(0), dt.time(0), dict(DEFAULT_PEOPLE)),),
                      configured=False, where=f"{settings.path}: add labour: to set it")
    if not isinstance(raw, dict):
        raise SettingsError(f"{settings.where('labour')}: labour must be a mapping (minutes:, shifts:, ...)")
    known = {"minutes", "shifts", "productive_share", "load_minutes", "lookahead_hours", "at_risk_above_pct", "observed"}
    for key in raw:
        if key not in known:
            raise SettingsError(f"{settings.where('labour', key)}: unknown key labour.{key} (one of {', '.join(sorted(known))})")

    def number(value: Any, at: tuple, what: str, low: float = 0.0, high: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (high is not None and value > high):
            rng = f">= {low:g}" + (f" and <= {high:g}" if high is not None else "")
            raise SettingsError(f"{settings.where(*at)}: {what} must be a number {rng}, not {value!r}")
        return float(value)

    minutes = dict(DEFAULT_MINUTES)
    for unit, value in (raw.get("minutes") or {}).items():
        if unit not in UNITS:
            raise SettingsError(f"{settings.where('labour', 'minutes', unit)}: unknown unit labour.minutes.{unit} (one of {', '.join(UNITS)})")
        minutes[unit] = number(value, ("labour", "minutes", unit), f"labour.minutes.{unit}")
    shifts = []
    for i, s in enumerate(raw.get("shifts") or []):
        at = ("labour", "shifts", i)
        if not isinstance(s, dict) or "start" not in s or "end" not in s or not isinstance(s.get("people"), dict):
            raise SettingsError(f"{settings.where(*at)}: a shift is {{name:, start: 'HH:MM', end: 'HH:MM', people: {{pick: N, pack: N, ship: N}}}}")
        people = {}
        for area, n in s["people"].items():
            if area not in AREAS:
                raise SettingsError(f"{settings.where(*at, 'people', area)}: unknown area {area!r} (one of {', '.join(AREAS)})")
            people[area] = number(n, (*at, "people", area), f"people in {area}")
        days = frozenset(range(7))
        if "days" in s:
            bad = [d for d in s["days"] or [] if str(d).strip().lower()[:3] not in WEEKDAYS]
            if bad:
                raise SettingsError(f"{settings.where(*at, 'days')}: '{bad[0]}' is not a weekday (mon..sun)")
            days = frozenset(WEEKDAYS.index(str(d).strip().lower()[:3]) for d in s["days"] or [])
        shifts.append(Shift(str(s.get("name", f"shift {i + 1}")), _time(s["start"], settings, (*at, "start")),
                            _time(s["end"], settings, (*at, "end")), people, days))
    if not shifts:
        raise SettingsError(f"{settings.where('labour')}: labour: needs at least one shift under shifts: (people per area)")
    observed = raw.get("observed") or {}
    if not isinstance(observed, dict) or set(observed) - {"window_minutes", "min_units"}:
        raise SettingsError(f"{settings.where('labour', 'observed')}: labour.observed is {{window_minutes: N, min_units: N}}")
    return Labour(
        minutes=minutes,
        shifts=tuple(shifts),
        productive_share=number(raw.get("productive_share", 0.85), ("labour", "productive_share"), "labour.productive_share", 0.01, 1.0),
        load_minutes=number(raw.get("load_minutes", 15), ("labour", "load_minutes"), "labour.load_minutes"),
        lookahead_hours=number(raw.get("lookahead_hours", 12), ("labour", "lookahead_hours"), "labour.lookahead_hours", 0.5),
        at_risk_above_pct=number(raw.get("at_risk_above_pct", 85), ("labour", "at_risk_above_pct"), "labour.at_risk_above_pct", 1, 100),
        window_minutes=number(observed.get("window_minutes", 120), ("labour", "observed", "window_minutes"), "window_minutes", 1),
        min_units=int(number(observed.get("min_units", 50), ("labour", "observed", "min_units"), "min_units")),
        configured=True,
        where=settings.where("labour"),
    )


def _time(value: Any, settings: Settings, at: tuple) -> dt.time:
    if isinstance(value, int):  # YAML 1.1 reads an unquoted 06:00 as a sexagesimal number of minutes
        return dt.time(value // 60 % 24, value % 60)
    try:
        return dt.time.fromisoformat(str(value).strip())
    except ValueError:
        raise SettingsError(f"{settings.where(*at)}: '{value}' is not a time as HH:MM") from None


# Units of each area done in the window before the review (the day's own event stamps): pick task lines picked,
# orders with a carton packed, orders labelled, orders manifested.
OBSERVED = """
SELECT
  (SELECT count(*) FROM linked_pick_tasks WHERE status = 'picked' AND updated_at > $since AND updated_at <= $now) AS pick_line,
  (SELECT count(DISTINCT order_id) FROM linked_pack_events WHERE status = 'packed' AND event_at > $since AND event_at <= $now) AS pack_order,
  (SELECT count(DISTINCT order_id) FROM linked_shipments WHERE label_created_at > $since AND label_created_at <= $now) AS label,
  (SELECT count(DISTINCT order_id) FROM linked_shipments WHERE manifested_at > $since AND manifested_at <= $now) AS manifest
"""


def observed_units(con, labour: Labour, now: dt.datetime) -> dict[str, int]:
    """Units of work done in the `labour.window_minutes` before `now`, per unit (0 where the table is missing)."""
    have = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if not {"linked_pick_tasks", "linked_pack_events", "linked_shipments"} <= have:
        return dict.fromkeys(UNITS, 0)
    row = con.execute(OBSERVED, {"since": now - dt.timedelta(minutes=labour.window_minutes), "now": now}).fetchone()
    return dict(zip(UNITS, (int(v or 0) for v in row)))


def capacity_rates(labour: Labour, now: dt.datetime, observed: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per area: the factor that turns the plan's person-minutes into labour minutes (`factor`), and where it
    came from. Plan: productive_share. Observed (the area did >= min_units units in the window): the labour
    minutes those units took / the plan's person-minutes in the window, so the plan's shifts still say who is
    there from now on and the floor's own pace says how much they get done."""
    since = now - dt.timedelta(minutes=labour.window_minutes)
    out = {}
    for area in AREAS:
        units = {u: observed.get(u, 0) for u in UNITS if AREA_OF_UNIT[u] == area}
        done = sum(n * labour.minutes[u] for u, n in units.items())
        planned = labour.people_minutes(area, since, now)
        n_units = sum(units.values())
        if n_units >= labour.min_units and done > 0 and planned > 0:
            factor = done / planned
            what = (f"observed: {_units_text(units)} in the last {labour.window_minutes:g} min = {done:,.0f} labour min, "
                    f"{factor:.0%} of the {planned:,.0f} person-minutes the plan had on the floor")
            out[area] = {"factor": factor, "source": "observed", "text": what, "units": n_units, "window_labour": done}
        else:
            why = ("nobody on the plan in that window" if planned <= 0
                   else f"{n_units} units in the last {labour.window_minutes:g} min, fewer than {labour.min_units}")
            out[area] = {"factor": labour.productive_share, "source": "plan" if labour.configured else "default",
                         "text": f"{'plan' if labour.configured else 'built-in default'} at {labour.productive_share:.0%} productive ({why})",
                         "units": n_units, "window_labour": done}
    return out


def _units_text(units: dict[str, int]) -> str:
    names = {"pick_line": "lines picked", "pack_order": "orders packed", "label": "orders labelled", "manifest": "orders manifested"}
    return ", ".join(f"{n:,} {names[u]}" for u, n in units.items() if n or u != "manifest")


def capacity(labour: Labour, rates: dict[str, dict[str, Any]], area: str, now: dt.datetime, until: dt.datetime) -> float:
    """Labour minutes `area` can deliver between now and `until`."""
    return labour.people_minutes(area, now, until) * rates[area]["factor"]
