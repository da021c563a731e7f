"""Read and validate the `policy:` section of a site file: reasons and owners, codes, note rules,
the priority rule, remaining-work minutes, buffers and transit days.

Every error names the site file and line of the setting at fault. `policy_tables` writes the
policy into small `policy_*` tables so the state, blocker and promise SQL can join on it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import duckdb

from handoff_lib.db import insert_rows
from handoff_lib.errors import HandoffError, SettingsError
from handoff_lib.load.settings import Settings, day_starts_at
from handoff_lib.load.settings import operating_day as settings_operating_day
from handoff_lib.load.site_keys import WORK_STEPS

# Reason codes the library raises itself, with the label and owner a site gets when its policy.reasons does
# not set them (a site may relabel or re-route any of them; it need not list them).
BUILT_IN_REASONS: dict[str, tuple[str, str]] = {
    "short_pick": ("Short pick", "replenishment"),
    "allocation_short": ("Allocation short", "inventory control"),
    "unknown_sku": ("Unknown SKU", "master data"),
    "label_missing": ("Label missing", "shipping"),
    "manifest_missing": ("Manifest missing", "shipping"),
    "substitution": ("Substitution against the account's instruction", "customer service"),
    "not_released": ("Not released near cutoff", "order management"),
    "unlinked_record": ("Unlinked record", "data team"),
    "hold_other": ("Hold, reason not recognised", "shift lead"),
    "pack_exception_other": ("Pack exception, reason not recognised", "shift lead"),
    "data_quality": ("Source data inconsistent", "data team"),
}
COMMUNICATE_BY_DEFAULT = ("substitution",)  # the customer must be told, unless the site says otherwise
# Reasons that describe the data, not the work: they never hold an order's promise (docs/states.md).
DATA_REASONS = ("unlinked_record", "data_quality")


@dataclass(frozen=True)
class Reason:
    """A blocker reason: its label, the team that owns it, and whether the customer must be told."""

    code: str
    label: str
    owner: str
    communicate: bool = False
    blocks_work: bool = True  # False for the data reasons (DATA_REASONS): they never hold a promise


@dataclass(frozen=True)
class NoteRule:
    """A note without a code gets `reason` when `pattern` (case-insensitive regex) matches it."""

    reason: str
    pattern: str


@dataclass(frozen=True)
class Band:
    """Points for a value band: `limit` is 'at most' for cutoff minutes, 'at least' for value/lines."""

    limit: float
    points: int


@dataclass(frozen=True)
class Transit:
    carrier: str
    service: str  # '*' = any service of the carrier
    days: int


@dataclass(frozen=True)
class Policy:
    reasons: dict[str, Reason]
    hold_codes: dict[str, str]  # SOURCE CODE (upper) -> reason code
    pack_exception_codes: dict[str, str]
    note_rules: tuple[NoteRule, ...]
    ship_complete_default: bool
    not_released_within_minutes: int
    label_due_minutes_after_pack: int
    paperwork_due_minutes_before_cutoff: int
    manifest_due_minutes_after_label: int
    consolidated_carriers: tuple[str, ...]  # one shipment (e.g. a freight BOL) covers every carton of the order
    day_starts_at: dt.time  # a review before this local time belongs to the previous operating day
    tier_points: dict[int, int]
    tier_default: int
    cutoff_bands: tuple[Band, ...]  # minutes to cutoff at most -> points; past cutoff counts as 0
    value_bands: tuple[Band, ...]  # order value at least -> points
    line_bands: tuple[Band, ...]  # open lines at least -> points
    work_minutes: dict[str, int]
    buffer_minutes: int
    buffer_by_customer: dict[str, int]
    transit: tuple[Transit, ...]
    transit_default: int
    pickup_lookahead_days: int

    @property
    def priority_rule(self) -> str:
        """The priority rule in words, as the board and blocker rows carry it."""
        tiers = ", ".join(f"tier {t} +{p}" for t, p in sorted(self.tier_points.items()))
        cut = ", ".join(
            ("past cutoff" if b.limit <= 0 else f"<= {b.limit:g} min to cutoff") + f" +{b.points}" for b in self.cutoff_bands
        )
        val = ", ".join(f"value >= {b.limit:g} +{b.points}" for b in self.value_bands)
        lines = ", ".join(f">= {b.limit:g} open lines +{b.points}" for b in self.line_bands)
        parts = [f"customer {tiers}, other tiers +{self.tier_default}", f"time: {cut}"]
        if val:
            parts.append(f"value: {val}")
        if lines:
            parts.append(f"size: {lines}")
        return "priority = " + "; ".join(parts) + " (higher first; first band that fits)"


def load_policy(settings: Settings) -> Policy:
    """The site's validated `policy:` section; raises SettingsError naming the file line at fault."""
    raw = settings.raw.get("policy")
    if not isinstance(raw, dict):
        raise SettingsError(
            f"{settings.where('policy')}: missing setting 'policy' (copy the policy: section of parameters/demo.yaml)"
        )

    def where(*keys: Any) -> str:
        return settings.where("policy", *[str(k) for k in keys])

    def need(mapping: Any, key: str, *ctx: Any) -> Any:
        if not isinstance(mapping, dict) or mapping.get(key) in (None, ""):
            raise SettingsError(f"{where(*ctx)}: missing setting 'policy.{'.'.join(map(str, ctx + (key,)))}'")
        return mapping[key]

    def number(value: Any, *ctx: Any, minimum: float = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise SettingsError(f"{where(*ctx)}: policy.{'.'.join(map(str, ctx))} must be a number >= {minimum:g}, not {value!r}")
        return int(value)

    def mapping(key: str) -> dict:
        value = raw.get(key) or {}
        if not isinstance(value, dict):
            raise SettingsError(f"{where(key)}: policy.{key} must be a mapping")
        return value

    reasons: dict[str, Reason] = {
        code: Reason(code, label, owner, code in COMMUNICATE_BY_DEFAULT, code not in DATA_REASONS)
        for code, (label, owner) in BUILT_IN_REASONS.items()
    }
    for code, spec in mapping("reasons").items():
        if not isinstance(spec, dict):
            raise SettingsError(f"{where('reasons', code)}: policy.reasons.{code} must be a mapping with label: and owner:")
        built_in = reasons.get(str(code))
        reasons[str(code)] = Reason(
            str(code),
            str(spec.get("label") or (built_in.label if built_in else need(spec, "label", "reasons", code))),
            str(spec.get("owner") or (built_in.owner if built_in else need(spec, "owner", "reasons", code))),
            bool(spec.get("communicate", built_in.communicate if built_in else False)),
            str(code) not in DATA_REASONS,
        )

    def codes(key: str) -> dict[str, str]:
        out = {}
        for src, reason in mapping(key).items():
            if str(reason) not in reasons:
                raise SettingsError(
                    f"{where(key, src)}: policy.{key}.{src} names reason '{reason}', which policy.reasons does not define"
                )
            out[str(src).strip().upper()] = str(reason)
        return out

    rules = []
    for i, rule in enumerate(raw.get("note_rules") or []):
        reason = str(need(rule, "reason", "note_rules", i))
        pattern = str(need(rule, "pattern", "note_rules", i))
        if reason not in reasons:
            raise SettingsError(f"{where('note_rules', i, 'reason')}: note rule reason '{reason}' is not in policy.reasons")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise SettingsError(f"{where('note_rules', i, 'pattern')}: not a valid regular expression ({exc})") from None
        try:  # the rules run in DuckDB, whose RE2 engine refuses some Python forms (lookarounds, backreferences)
            duckdb.execute("SELECT regexp_matches('', $p, 'i')", {"p": pattern})
        except duckdb.Error as exc:
            raise SettingsError(
                f"{where('note_rules', i, 'pattern')}: policy.note_rules[{i}].pattern is a regular expression DuckDB's RE2 engine cannot run "
                f"(no lookarounds or backreferences): {exc}"
            ) from None
        rules.append(NoteRule(reason, pattern))

    prio = need(raw, "priority")

    def bands(key: str, limit_key: str) -> tuple[Band, ...]:
        out = []
        for i, b in enumerate(prio.get(key) or []):
            out.append(
                Band(
                    float(number(need(b, limit_key, "priority", key, i), "priority", key, i, limit_key)),
                    number(need(b, "points", "priority", key, i), "priority", key, i, "points"),
                )
            )
        return tuple(out)

    tier_points = {
        number(t, "priority", "tier_points", t, minimum=1): number(p, "priority", "tier_points", t)
        for t, p in (prio.get("tier_points") or {}).items()
    }

    work_raw = need(raw, "work_minutes")
    work = {step: number(need(work_raw, step, "work_minutes"), "work_minutes", step) for step in WORK_STEPS}

    transit = []
    for i, t in enumerate(raw.get("transit_days") or []):
        transit.append(
            Transit(
                str(need(t, "carrier", "transit_days", i)).strip().upper(),
                str(t.get("service", "*")).strip().upper(),
                number(need(t, "days", "transit_days", i), "transit_days", i, "days"),
            )
        )

    return Policy(
        reasons=reasons,
        hold_codes=codes("hold_codes"),
        pack_exception_codes=codes("pack_exception_codes"),
        note_rules=tuple(rules),
        ship_complete_default=bool(raw.get("ship_complete_default", False)),
        not_released_within_minutes=number(need(raw, "not_released_within_minutes"), "not_released_within_minutes"),
        label_due_minutes_after_pack=number(need(raw, "label_due_minutes_after_pack"), "label_due_minutes_after_pack"),
        paperwork_due_minutes_before_cutoff=number(
            need(raw, "paperwork_due_minutes_before_cutoff"), "paperwork_due_minutes_before_cutoff"
        ),
        manifest_due_minutes_after_label=number(raw.get("manifest_due_minutes_after_label", 30), "manifest_due_minutes_after_label"),
        day_starts_at=day_starts_at(settings),
        consolidated_carriers=tuple(str(c).strip().upper() for c in (raw.get("consolidated_carriers") or [])),
        tier_points=tier_points,
        tier_default=number(prio.get("tier_default", 0), "priority", "tier_default"),
        cutoff_bands=tuple(sorted(bands("cutoff_bands", "within_minutes"), key=lambda b: b.limit)),
        value_bands=tuple(sorted(bands("value_bands", "at_least"), key=lambda b: -b.limit)),
        line_bands=tuple(sorted(bands("line_bands", "at_least"), key=lambda b: -b.limit)),
        work_minutes=work,
        buffer_minutes=number(need(raw, "buffer_minutes"), "buffer_minutes"),
        buffer_by_customer={str(k): number(v, "buffer_by_customer", k) for k, v in mapping("buffer_by_customer").items()},
        transit=tuple(transit),
        transit_default=number(need(raw, "transit_days_default"), "transit_days_default"),
        pickup_lookahead_days=number(raw.get("pickup_lookahead_days", 14), "pickup_lookahead_days", minimum=1),
    )


def policy_tables(con: duckdb.DuckDBPyConnection, policy: Policy) -> None:
    """(Re)create the `policy_*` tables the state, blocker and promise SQL join on."""
    tables: dict[str, tuple[str, list[tuple]]] = {
        "policy_reasons": (
            "reason VARCHAR, reason_label VARCHAR, owner VARCHAR, communicate BOOLEAN, blocks_work BOOLEAN",
            [(r.code, r.label, r.owner, r.communicate, r.blocks_work) for r in policy.reasons.values()],
        ),
        "policy_hold_codes": ("code VARCHAR, reason VARCHAR", list(policy.hold_codes.items())),
        "policy_pack_codes": ("code VARCHAR, reason VARCHAR", list(policy.pack_exception_codes.items())),
        "policy_note_rules": (
            "rule_no INTEGER, reason VARCHAR, pattern VARCHAR",
            [(i + 1, r.reason, r.pattern) for i, r in enumerate(policy.note_rules)],
        ),
        "policy_tier_points": ("tier BIGINT, points INTEGER", list(policy.tier_points.items())),
        "policy_cutoff_bands": (
            "band_no INTEGER, within_minutes DOUBLE, points INTEGER",
            [(i, b.limit, b.points) for i, b in enumerate(policy.cutoff_bands)],
        ),
        "policy_value_bands": (
            "band_no INTEGER, at_least DOUBLE, points INTEGER",
            [(i, b.limit, b.points) for i, b in enumerate(policy.value_bands)],
        ),
        "policy_line_bands": (
            "band_no INTEGER, at_least DOUBLE, points INTEGER",
            [(i, b.limit, b.points) for i, b in enumerate(policy.line_bands)],
        ),
        "policy_buffers": ("customer_id VARCHAR, buffer_minutes INTEGER", list(policy.buffer_by_customer.items())),
        "policy_transit": (
            "carrier VARCHAR, service VARCHAR, days INTEGER",
            [(t.carrier, t.service, t.days) for t in policy.transit],
        ),
    }
    for name, (columns, rows) in tables.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({columns})")
        insert_rows(con, name, rows)


def operating_day(policy: Policy, settings: Settings, now: dt.datetime) -> dt.date:
    """The operating day a moment belongs to: its local date, or the day before when it falls before
    `policy.day_starts_at` (a 00:20 review still looks at the previous evening's late pickups)."""
    return settings_operating_day(settings, now, policy.day_starts_at)


def prepare(con: duckdb.DuckDBPyConnection, settings: Settings, now: dt.datetime) -> Policy:
    """Validate `now` and the policy, write the one-row `run_clock` table and the `policy_*` tables,
    and return the Policy. Done once per analysis (publish/picture.analyse), before the rules: the state,
    blocker and promise builders take the Policy it returned and read the tables it wrote."""
    if not isinstance(now, dt.datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise HandoffError(f"now must be a timezone-aware datetime (e.g. in {settings.timezone}), not {now!r}")
    policy = load_policy(settings)
    today = operating_day(policy, settings, now)
    day_start = dt.datetime.combine(today, policy.day_starts_at, settings.tz)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE run_clock AS "
        "SELECT CAST($now AS TIMESTAMPTZ) AS now, CAST($day_start AS TIMESTAMPTZ) AS day_start, CAST($today AS DATE) AS today, "
        "CAST($tz AS VARCHAR) AS tz",
        {"now": now, "day_start": day_start, "today": today, "tz": settings.timezone},
    )
    policy_tables(con, policy)
    return policy
