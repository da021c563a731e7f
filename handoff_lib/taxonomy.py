"""Load and validate the blocker reason taxonomy (`parameters/reasons.yaml`): the themes free-text notes
are classified into, their labels and root-cause owners, example phrases, the classifier settings, and
how each theme maps onto the site's `policy.reasons` codes.

Every error names the file and the key at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import SettingsError

DEFAULT_TAXONOMY = Path(__file__).resolve().parents[1] / "parameters" / "reasons.yaml"
REQUIRED_CODES = (
    "short_stockout",
    "replenishment",
    "location_slotting",
    "item_master_data",
    "packaging_carton",
    "labeling_docs_compliance",
    "carrier_pickup",
    "credit_payment",
    "address",
    "customer_request",
    "quality_damage",
    "labor_capacity",
    "system_data_error",
    "other",
)
FALLBACK_REASONS = {"holds": "hold_other", "pack_events": "pack_exception_other"}
CODE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Theme:
    """One reason of the taxonomy."""

    code: str
    label: str
    owner: str  # the team that fixes the root cause
    description: str
    examples: tuple[str, ...]
    policy_reason: str  # the policy.reasons code a classified note becomes
    rolls_up: tuple[str, ...]  # further policy.reasons codes counted under this theme


@dataclass(frozen=True)
class Taxonomy:
    path: Path
    themes: dict[str, Theme]
    threshold: float
    labelled_notes: Path
    model_path: Path
    min_examples: int
    sku_pattern: str
    location_pattern: str

    @property
    def codes(self) -> list[str]:
        return list(self.themes)

    def theme_of_policy_reason(self) -> dict[str, str]:
        """policy.reasons code -> theme code (a policy code listed nowhere counts under 'other')."""
        out: dict[str, str] = {}
        for t in self.themes.values():
            for code in (t.policy_reason, *t.rolls_up):
                out.setdefault(code, t.code)
        return out

    def policy_reason(self, code: str, entity: str, known: set[str] | frozenset[str]) -> tuple[str, str]:
        """(policy reason code, note) a note classified as theme `code` becomes for a record of `entity`
        ('holds' / 'pack_events'), given the policy codes the site defines (`known`). A theme whose
        policy_reason the site lacks falls back to hold_other / pack_exception_other, and the note says so."""
        fallback = FALLBACK_REASONS.get(entity, "hold_other")
        target = self.themes[code].policy_reason
        if target in FALLBACK_REASONS.values():
            return fallback, ""
        if target in known:
            return target, ""
        return fallback, f"policy.reasons has no '{target}'"

    def rollup_rows(self) -> list[tuple[str, str, str, str]]:
        """(policy_reason, theme, theme_label, root-cause owner) rows for SQL joins."""
        return [(p, t, self.themes[t].label, self.themes[t].owner) for p, t in self.theme_of_policy_reason().items()]


def _line_map(text: str) -> dict[tuple[str, ...], int]:
    """Best-effort (key path) -> line number for the two-level `reasons:` / `settings:` mapping."""
    lines: dict[tuple[str, ...], int] = {}
    stack: list[tuple[int, str]] = []
    for no, raw in enumerate(text.splitlines(), start=1):
        m = re.match(r"^(\s*)([A-Za-z_][\w]*)\s*:", raw)
        if not m or raw.lstrip().startswith("#"):
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        lines.setdefault(tuple(k for _, k in stack), no)
    return lines


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """The validated taxonomy from `path` (default parameters/reasons.yaml); raises SettingsError naming
    the file line at fault."""
    path = Path(path) if path else DEFAULT_TAXONOMY
    if not path.is_file():
        raise SettingsError(f"{path}: no reason taxonomy file (copy parameters/reasons.yaml)")
    text = path.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc})") from None
    lines = _line_map(text)

    def where(*keys: str) -> str:
        for n in range(len(keys), 0, -1):
            if keys[:n] in lines:
                return f"{path} line {lines[keys[:n]]}"
        return str(path)

    settings = raw.get("settings") or {}
    reasons = raw.get("reasons")
    if not isinstance(reasons, dict) or not reasons:
        raise SettingsError(f"{where('reasons')}: missing mapping 'reasons' (code: {{label, owner, ...}})")

    themes: dict[str, Theme] = {}
    seen_policy: dict[str, str] = {}
    for code, spec in reasons.items():
        code = str(code)
        if not CODE.match(code):
            raise SettingsError(f"{where('reasons', code)}: reason code '{code}' must be lower_snake_case")
        if not isinstance(spec, dict):
            raise SettingsError(f"{where('reasons', code)}: reasons.{code} must be a mapping with label, owner, policy_reason")
        for key in ("label", "owner", "policy_reason", "description"):
            if spec.get(key) in (None, ""):
                raise SettingsError(f"{where('reasons', code)}: reasons.{code} lacks '{key}'")
        examples = spec.get("examples") or []
        if not isinstance(examples, list) or not examples:
            raise SettingsError(f"{where('reasons', code, 'examples')}: reasons.{code}.examples must list example phrases")
        rolls = spec.get("rolls_up") or []
        if not isinstance(rolls, list):
            raise SettingsError(f"{where('reasons', code, 'rolls_up')}: reasons.{code}.rolls_up must be a list of policy codes")
        for p in (str(spec["policy_reason"]), *map(str, rolls)):
            if p in seen_policy and seen_policy[p] != code and p not in FALLBACK_REASONS.values():
                raise SettingsError(
                    f"{where('reasons', code)}: policy reason '{p}' is mapped by both '{seen_policy[p]}' and '{code}'; "
                    "each policy.reasons code belongs to one theme"
                )
            seen_policy[p] = code
        themes[code] = Theme(
            code=code,
            label=str(spec["label"]),
            owner=str(spec["owner"]),
            description=str(spec["description"]),
            examples=tuple(str(e) for e in examples),
            policy_reason=str(spec["policy_reason"]),
            rolls_up=tuple(str(r) for r in rolls),
        )
    missing = [c for c in REQUIRED_CODES if c not in themes]
    if missing:
        raise SettingsError(f"{where('reasons')}: the taxonomy lacks the reason codes {', '.join(missing)}")

    def number(key: str, default: Any, lo: float, hi: float) -> float:
        value = settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise SettingsError(f"{where('settings', key)}: settings.{key} must be a number in [{lo:g}, {hi:g}], not {value!r}")
        return float(value)

    def pattern(key: str, default: str) -> str:
        value = str(settings.get(key, default))
        try:
            re.compile(value)
        except re.error as exc:
            raise SettingsError(f"{where('settings', key)}: settings.{key} is not a valid regular expression ({exc})") from None
        return value

    return Taxonomy(
        path=path,
        themes=themes,
        threshold=number("threshold", 0.6, 0.0, 1.0),
        labelled_notes=(path.parent / str(settings.get("labelled_notes", "labelled_notes.csv"))).resolve(),
        model_path=(path.parent / str(settings.get("model", "../outputs/models/notes_model.joblib"))).resolve(),
        min_examples=int(number("min_examples", 10, 1, 1e9)),
        sku_pattern=pattern("sku_pattern", r"\bSKU-?\d{3,}\b"),
        location_pattern=pattern("location_pattern", r"\b[A-Z]{1,2}-\d{2}-\d{2}\b"),
    )


def check_against_policy(taxonomy: Taxonomy, policy_codes: set[str] | frozenset[str]) -> list[str]:
    """Problems in how the taxonomy maps onto a site's policy.reasons codes, in words (empty = consistent):
    themes whose policy_reason the policy lacks (their notes fall back to hold_other / pack_exception_other)
    and rolls_up codes the policy does not define."""
    problems = []
    for t in taxonomy.themes.values():
        if t.policy_reason not in policy_codes:
            problems.append(
                f"{taxonomy.path}: reasons.{t.code}.policy_reason '{t.policy_reason}' is not in policy.reasons: "
                f"notes classified {t.code} become hold_other / pack_exception_other (add {t.policy_reason} to policy.reasons)"
            )
        for r in t.rolls_up:
            if r not in policy_codes:
                problems.append(f"{taxonomy.path}: reasons.{t.code}.rolls_up names '{r}', which policy.reasons does not define")
    return problems
