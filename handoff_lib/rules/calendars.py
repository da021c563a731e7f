"""Site and carrier calendars: which days the site ships, which days a carrier picks up and delivers.

One definition of the working calendar, used wherever a day counts (docs/states.md, "Calendars"):

* a **pickup** of `cutoffs:` happens only on its weekdays, and not on a day the site is closed or the
  carrier does not work (its holidays and closed days);
* **transit** is counted in the carrier's delivery days: a hand-off on day D with T transit days arrives
  on the T-th delivery day after D (delivery days are weekdays such as Mon-Fri or Tue-Sat, minus the
  carrier's holidays and closed days).

Public holidays come from the maintained `holidays` package by country and, where set, state or province
(`subdiv`); a site adds days (`closed:`) and removes them (`open:`) in its site file. There are no lists of
dates in this code.

```yaml
calendars:
  site: {holidays: {country: US, subdiv: OH}, closed: ["2026-12-24"], open: []}
  carriers:
    default: {delivery_days: [mon, tue, wed, thu, fri], holidays: {country: US}}
    UPS:
      holidays: {country: US}
      services:
        SAT: {delivery_days: [mon, tue, wed, thu, fri, sat]}
```

Without a `calendars:` section, carriers deliver Monday to Friday and nothing is a holiday.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from handoff_lib.errors import SettingsError
from handoff_lib.load.settings import WEEKDAYS, Settings

DEFAULT_DELIVERY_DAYS = frozenset(range(5))  # Monday to Friday


@cache
def _public_holidays(country: str, subdiv: str | None, year: int) -> dict[dt.date, str]:
    import holidays

    return dict(holidays.country_holidays(country, subdiv=subdiv, years=year).items())


@dataclass(frozen=True)
class DayRules:
    """Working days of one party: weekdays it works (delivery days for a carrier), its public holidays
    (country, subdivision), and the days the site file closes or opens by hand."""

    weekdays: frozenset[int] = DEFAULT_DELIVERY_DAYS
    country: str | None = None
    subdiv: str | None = None
    closed: frozenset[dt.date] = frozenset()
    opened: frozenset[dt.date] = frozenset()

    def holiday(self, day: dt.date) -> str | None:
        """The name of the holiday or closure that stops work on `day`, else None."""
        if day in self.opened:
            return None
        if day in self.closed:
            return "closed"
        if self.country:
            return _public_holidays(self.country, self.subdiv, day.year).get(day)
        return None

    def works(self, day: dt.date, weekdays: bool = True) -> bool:
        if day in self.opened:
            return True
        return (not weekdays or day.weekday() in self.weekdays) and self.holiday(day) is None


@dataclass(frozen=True)
class Calendars:
    site: DayRules = field(default_factory=lambda: DayRules(weekdays=frozenset(range(7))))
    carriers: dict[tuple[str, str], DayRules] = field(default_factory=dict)  # (CARRIER, SERVICE or '*') -> rules
    default: DayRules = field(default_factory=DayRules)

    def carrier(self, carrier: str, service: str) -> DayRules:
        """The rules of a lane: its service's entry, else its carrier's, else the default."""
        return self.carriers.get((carrier, service)) or self.carriers.get((carrier, "*")) or self.default

    def pickup_closed(self, carrier: str, service: str, day: dt.date) -> str | None:
        """Why no pickup happens on `day` although `cutoffs:` lists it (site closed, carrier holiday), else None."""
        why = self.site.holiday(day)
        if why:
            return f"site {why}" if why == "closed" else why
        return self.carrier(carrier, service).holiday(day)

    def arrival(self, carrier: str, service: str, ship_day: dt.date, transit: int) -> tuple[dt.date, list[tuple[dt.date, str]]]:
        """The day a hand-off on `ship_day` arrives after `transit` delivery days of the lane, and the days
        skipped on the way with why (a weekday without delivery, a holiday)."""
        rules = self.carrier(carrier, service)
        day, left, skipped = ship_day, transit, []
        while left > 0:
            day += dt.timedelta(days=1)
            why = rules.holiday(day)
            if day in rules.opened or (why is None and day.weekday() in rules.weekdays):
                left -= 1
            else:
                skipped.append((day, why or "no delivery on " + day.strftime("%a")))
            if len(skipped) > 366:
                raise SettingsError(f"carrier {carrier} {service}: no delivery day within a year of {ship_day}; check calendars:")
        return day, skipped


def skipped_text(skipped: list[tuple[dt.date, str]]) -> str:
    """'no delivery Thu 26 Nov (Thanksgiving Day), Sat 28 Nov, Sun 29 Nov' for the days a transit skipped."""
    if not skipped:
        return ""
    parts = [d.strftime("%a %d %b") + ("" if why.startswith("no delivery on") else f" ({why})") for d, why in skipped]
    return "no delivery " + ", ".join(parts)


def load_calendars(settings: Settings) -> Calendars:
    """The site's `calendars:` section, validated; every error names the site-file line."""
    raw = settings.raw.get("calendars")
    if raw is None:
        return Calendars()
    if not isinstance(raw, dict):
        raise SettingsError(f"{settings.where('calendars')}: calendars must be a mapping with site: and carriers:")
    unknown = set(raw) - {"site", "carriers"}
    if unknown:
        raise SettingsError(f"{settings.where('calendars', min(unknown))}: unknown key calendars.{min(unknown)} (site, carriers)")
    site = _rules(raw.get("site") or {}, settings, ("calendars", "site"), DayRules(weekdays=frozenset(range(7))), delivery=False)
    carriers: dict[tuple[str, str], DayRules] = {}
    default = DayRules()
    for name, spec in (raw.get("carriers") or {}).items():
        at = ("calendars", "carriers", str(name))
        if str(name) == "default":
            default = _rules(spec or {}, settings, at, DayRules(), delivery=True)
    for name, spec in (raw.get("carriers") or {}).items():
        if str(name) == "default":
            continue
        at = ("calendars", "carriers", str(name))
        spec = spec or {}
        if not isinstance(spec, dict):
            raise SettingsError(f"{settings.where(*at)}: calendars.carriers.{name} must be a mapping (delivery_days:, holidays:, ...)")
        carrier = str(name).strip().upper()
        base = _rules({k: v for k, v in spec.items() if k != "services"}, settings, at, default, delivery=True)
        carriers[(carrier, "*")] = base
        for service, sspec in (spec.get("services") or {}).items():
            carriers[(carrier, str(service).strip().upper())] = _rules(
                sspec or {}, settings, (*at, "services", str(service)), base, delivery=True
            )
    return Calendars(site, carriers, default)


def _rules(spec: Any, settings: Settings, at: tuple[str, ...], base: DayRules, delivery: bool) -> DayRules:
    if not isinstance(spec, dict):
        raise SettingsError(f"{settings.where(*at)}: {'.'.join(at)} must be a mapping")
    known = {"holidays", "closed", "open"} | ({"delivery_days"} if delivery else set())
    for key in spec:
        if key not in known:
            raise SettingsError(f"{settings.where(*at, key)}: unknown key {'.'.join(at)}.{key} (one of {', '.join(sorted(known))})")
    weekdays = base.weekdays
    if "delivery_days" in spec:
        days = set()
        for d in spec["delivery_days"] or []:
            d = str(d).strip().lower()[:3]
            if d not in WEEKDAYS:
                raise SettingsError(f"{settings.where(*at, 'delivery_days')}: '{d}' is not a weekday (mon..sun)")
            days.add(WEEKDAYS.index(d))
        if not days:
            raise SettingsError(f"{settings.where(*at, 'delivery_days')}: a carrier needs at least one delivery day")
        weekdays = frozenset(days)
    country, subdiv = base.country, base.subdiv
    if "holidays" in spec:
        h = spec["holidays"]
        if h in (None, False):
            country = subdiv = None
        elif isinstance(h, dict) and "country" in h and set(h) <= {"country", "subdiv"}:
            country, subdiv = str(h["country"]).strip().upper(), (str(h["subdiv"]).strip().upper() if h.get("subdiv") else None)
            try:
                _public_holidays(country, subdiv, 2026)
            except (NotImplementedError, KeyError, ValueError) as exc:
                raise SettingsError(
                    f"{settings.where(*at, 'holidays')}: no public holidays known for country {country!r}"
                    + (f" subdiv {subdiv!r}" if subdiv else "")
                    + f" ({exc}); use an ISO 3166 code such as US, DE, GB and a state or province code such as OH"
                ) from None
        else:
            raise SettingsError(f"{settings.where(*at, 'holidays')}: holidays: is {{country: US}} or {{country: US, subdiv: OH}}, not {h!r}")
    return DayRules(
        weekdays=weekdays,
        country=country,
        subdiv=subdiv,
        closed=base.closed | _dates(spec.get("closed"), settings, (*at, "closed")),
        opened=base.opened | _dates(spec.get("open"), settings, (*at, "open")),
    )


def _dates(values: Any, settings: Settings, at: tuple[str, ...]) -> frozenset[dt.date]:
    out = set()
    for i, v in enumerate(values or []):
        if isinstance(v, dt.date):
            out.add(v)
            continue
        try:
            out.add(dt.date.fromisoformat(str(v).strip()))
        except ValueError:
            raise SettingsError(f"{settings.where(*at, i)}: '{v}' is not a date as YYYY-MM-DD") from None
    return frozenset(out)
