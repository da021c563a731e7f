"""A site's notes settings (the `notes:` section of its site file: model, taxonomy, labelled notes) and
its blocker reason taxonomy (`parameters/reasons.yaml` by default): the themes free-text notes are
classified into, their labels and root-cause owners, example phrases, the classifier settings, and how
each theme maps onto the site's `policy.reasons` codes. The reason set is the site's own: no theme
code is built in (docs/notes.md).

Every error names the file and the key at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from handoff_lib.errors import SettingsError
from handoff_lib.load.settings import Settings, load_settings
from handoff_lib.load.site_keys import NOTES_KEYS

DEFAULT_TAXONOMY = Path(__file__).resolve().parents[2] / "parameters" / "reasons.yaml"
# The policy reasons a hold / pack exception gets when nothing decided its reason (built-in policy
# reasons, not taxonomy themes).
FALLBACK_REASONS = {"holds": "hold_other", "pack_events": "pack_exception_other"}
# The theme of a policy reason no theme claims (themes views): the taxonomy's own theme of this code when
# it defines one, else a theme labelled "Other" owned by the blocker's owner.
FALLBACK_THEME = "other"
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
    min_examples: int
    sku_pattern: str
    location_pattern: str

    @property
    def codes(self) -> list[str]:
        return list(self.themes)

    def fallback_theme(self) -> tuple[str, str, str | None]:
        """(code, label, root-cause owner) of the theme a policy reason no theme claims counts under:
        the taxonomy's `other` theme when it has one, else ('other', 'Other', None: the blocker's owner)."""
        t = self.themes.get(FALLBACK_THEME)
        return (t.code, t.label, t.owner) if t else (FALLBACK_THEME, "Other", None)

    def theme_of_policy_reason(self) -> dict[str, str]:
        """policy.reasons code -> theme code (a policy code listed nowhere counts under `fallback_theme`)."""
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
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping with 'reasons' (and optional 'settings') at the top level")
    lines = _line_map(text)

    def where(*keys: str) -> str:
        for n in range(len(keys), 0, -1):
            if keys[:n] in lines:
                return f"{path} line {lines[keys[:n]]}"
        return str(path)

    settings = raw.get("settings") or {}
    if not isinstance(settings, dict):
        raise SettingsError(f"{where('settings')}: settings must be a mapping (threshold, min_examples, ...)")
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
        for key in ("label", "owner"):
            if spec.get(key) in (None, ""):
                raise SettingsError(f"{where('reasons', code)}: reasons.{code} lacks '{key}'")
        examples = spec.get("examples") or []
        if not isinstance(examples, list):
            raise SettingsError(f"{where('reasons', code, 'examples')}: reasons.{code}.examples must list example phrases")
        rolls = spec.get("rolls_up") or []
        if not isinstance(rolls, list):
            raise SettingsError(f"{where('reasons', code, 'rolls_up')}: reasons.{code}.rolls_up must be a list of policy codes")
        policy_reason = str(spec.get("policy_reason") or code)  # default: the policy reason of the same code
        for p in (policy_reason, *map(str, rolls)):
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
            description=str(spec.get("description") or ""),
            examples=tuple(str(e) for e in examples),
            policy_reason=policy_reason,
            rolls_up=tuple(str(r) for r in rolls),
        )
    for moved, key in (("model", "model"), ("labelled_notes", "labelled")):
        if moved in settings:
            raise SettingsError(
                f"{where('settings', moved)}: settings.{moved} belongs to the site now: set notes.{key} in the site file "
                "(docs/notes.md) and delete it here"
            )

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


# ------------------------------------------------------------------------------- the site's notes


@dataclass(frozen=True)
class SiteNotes:
    """The `notes:` section of a site file, paths resolved against the site file. `model` None = rules
    only (no model, or `model: null`); `taxonomy` defaults to the shipped parameters/reasons.yaml."""

    site: str
    site_file: Path
    model: Path | None
    taxonomy_path: Path
    labelled: Path | None
    where: dict[str, str]  # setting -> 'site.yaml line 12', for errors

    def taxonomy(self) -> Taxonomy:
        """The site's reason taxonomy (notes.taxonomy, else the shipped one)."""
        if not self.taxonomy_path.is_file():
            raise SettingsError(f"{self.where['taxonomy']}: notes.taxonomy: no reason taxonomy file {self.taxonomy_path}")
        return load_taxonomy(self.taxonomy_path)


def notes_settings(settings: Settings) -> SiteNotes:
    """The site's notes settings (`notes: {model, taxonomy, labelled}` in the site file); raises
    SettingsError naming the line at fault. `{site}` in a path is the site code, so a copied site file
    does not share (and overwrite) another site's model."""
    raw = settings.raw.get("notes")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SettingsError(f"{settings.where('notes')}: notes must be a mapping (model, taxonomy, labelled)")
    unknown = [k for k in raw if k not in NOTES_KEYS]
    if unknown:
        raise SettingsError(f"{settings.where('notes', unknown[0])}: unknown setting notes.{unknown[0]} (known: {', '.join(NOTES_KEYS)})")
    base = settings.path.resolve().parent

    def path(key: str) -> Path | None:
        value = raw.get(key)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise SettingsError(f"{settings.where('notes', key)}: notes.{key} must be a file path, not {value!r}")
        return (base / value.replace("{site}", settings.site)).resolve()

    model, labelled = path("model"), path("labelled")
    if model is not None and labelled is None:
        raise SettingsError(
            f"{settings.where('notes', 'model')}: notes.model needs notes.labelled, the labelled notes (text,reason) it is "
            "trained on and checked against"
        )
    return SiteNotes(
        site=settings.site,
        site_file=settings.path,
        model=model,
        taxonomy_path=path("taxonomy") or DEFAULT_TAXONOMY,
        labelled=labelled,
        where={"notes": settings.where("notes"), **{k: settings.where("notes", k) for k in NOTES_KEYS}},
    )


def site_taxonomy(site_file: str | Path | Settings | None = None) -> Taxonomy:
    """The reason taxonomy of a site (its notes.taxonomy; a site file path or loaded Settings), or the
    shipped parameters/reasons.yaml when `site_file` is None or ''."""
    if site_file in (None, ""):
        return load_taxonomy()
    if not isinstance(site_file, Settings):
        site_file = load_settings(site_file)
    return notes_settings(site_file).taxonomy()
