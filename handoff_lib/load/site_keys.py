"""Every setting a site file may hold, in one place, and the check that refuses any other.

`settings.load_settings` checks the whole file against `schema()` before it reads a value: a key that is
not known at its place, in any section, is a SettingsError naming the line, the setting and the nearest
known key (docs/extracts.md, "Strict site files"). The modules that read the sections (settings.py,
policy.py, calendars.py, taxonomy.py, asof.py, risk.py, dbsource.py, freshness.py, store.py, labour.py, asof_orders.py, notify.py,
board/) read no
key this schema lacks:
tests/test_site_keys.py checks the two stay in step, so a new setting is added here and in its reader.

A code a section maps (a hold code, a status code, a `when:` value) that YAML would read as something else
than the text written (`01` as the number 1, `yes` as true) is refused too: quoted, it stays as written.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from handoff_lib.errors import SettingsError

from .contract import ENTITIES

# ------------------------------------------------------------------------------------------ the keys

# The forms of a `columns:` entry given as a mapping: the key that names the form -> every key it may hold
# (docs/extracts.md: "Mapping your export", "Derived fields", "Number formats", "Columns combined and split").
COLUMN_FORMS: dict[str, tuple[str, ...]] = {
    "value": ("value",),
    "derive": ("derive",),
    "column": ("column", "number_format", "split", "part"),
    "join": ("join", "separator"),
    "date": ("date", "time", "date_format", "time_format"),
}
NUMBER_FORMAT_KEYS = ("decimal", "thousands", "trailing_minus", "units")
SYSTEMS = ("oms", "wms", "carrier", "crm")  # links: one URL template per system, or per kind of record (settings.py)
WORK_STEPS = ("pick_per_line", "pack", "label", "manifest")  # policy.work_minutes (policy.py)
NOTES_KEYS = ("model", "taxonomy", "labelled")  # notes: (taxonomy.py)
# identifiers: the kinds a site sets normalisation rules for (identifiers.py: the first six link records)
IDENTIFIER_KINDS = ("order", "customer_po", "pick_ticket", "carton", "shipment", "tracking_no", "task", "case", "hold")
# Keys of one source besides columns / values / where / number_format (a file source; docs/extracts.md).
SOURCE_FILE_KEYS = ("file", "format", "delimiter", "encoding", "sheet", "header_row", "timestamp_format", "date_format")
# ... and of a database source (dbsource.py: a query, or a table or view in an order, instead of a file)
SOURCE_DATABASE_KEYS = ("database", "query", "table", "order_by")
LABOUR_AREAS = ("pick", "pack", "ship")  # labour.shifts[].people: people per area (labour.py)
LABOUR_UNITS = ("pick_line", "pack_order", "label", "manifest")  # labour.minutes: labour minutes of one unit of work
# YAML reads each of these keys as true or false (booleans: {true: [...], false: [...]}).
BOOLEAN_KEYS = tuple(w.lower() for w in ("true", "yes", "on", "false", "no", "off")) + (
    "True", "TRUE", "Yes", "YES", "On", "ON", "False", "FALSE", "No", "NO", "Off", "OFF",
)


@dataclass(frozen=True)
class Each:
    """A mapping whose keys are the site's own (entities, codes, carriers): each value follows `node`.
    `keys` limits them (None = any), `what` names one in an error ('a field of orders')."""

    node: Any = None
    keys: tuple[str, ...] | None = None
    what: str = ""
    codes: bool = False  # the keys are codes: refuse one YAML reads as another value (01 -> 1)


@dataclass(frozen=True)
class Seq:
    """A list whose items follow `node`."""

    node: Any = None


@dataclass(frozen=True)
class Code:
    """A code, or a list of codes, compared as text (a `when:` value, a constant)."""


@dataclass(frozen=True)
class Keys:
    """A mapping with these keys only (`nodes`: key -> node; None = a value not looked into)."""

    nodes: dict[str, Any] = field(default_factory=dict)


def _keys(*names: str, **nodes: Any) -> Keys:
    return Keys({**dict.fromkeys(names), **nodes})


def _day_rules(carrier: bool) -> Keys:
    """calendars.site / calendars.carriers.<name> (calendars.py `_rules`)."""
    base = {"holidays": _keys("country", "subdiv"), "closed": None, "open": None}
    if carrier:
        base["delivery_days"] = None
    return Keys(base)


def _source(entity: str) -> Keys:
    """sources.<entity>: the file, its columns and values, the rows that belong to it, its number format."""
    fields = tuple(f.name for f in ENTITIES[entity].fields)
    when = Each(Code())
    number_format = _keys(*NUMBER_FORMAT_KEYS)
    column = _keys(
        *sorted({k for keys in COLUMN_FORMS.values() for k in keys} - {"derive", "number_format", "value"}),
        value=Code(),
        derive=Seq(_keys(value=Code(), when=when)),
        number_format=number_format,
    )
    return _keys(
        *SOURCE_FILE_KEYS,
        *SOURCE_DATABASE_KEYS,
        columns=Each(column, fields, f"a field of {entity}"),
        values=Each(Each(codes=True), fields, f"a field of {entity}"),
        where=when,
        number_format=number_format,
    )


@cache
def schema() -> Keys:
    """The whole site file (entities and their fields from the contract; the key lists above)."""
    codes = Each(codes=True)
    band = {"cutoff_bands": "within_minutes", "value_bands": "at_least", "line_bands": "at_least"}
    return _keys(
        "site", "name", "timezone", "outputs",
        data=_keys("folder", "allowed_roots"),
        reviews=_keys("times", "days"),
        booleans=Each(keys=BOOLEAN_KEYS, what="a yes/no list (true: or false:)"),
        data_quality=_keys("max_bad_share_pct", "min_bad_count", "event_tolerance_minutes", "as_of_grace_minutes"),
        notes=_keys(*NOTES_KEYS),
        databases=Each(_keys("timeout_s", "connect_timeout_s", url=_keys("env", "file"))),  # dbsource.py
        freshness=_keys(  # freshness.py
            "on_stale",
            max_age=Each(keys=(*ENTITIES, "default"), what="a source (or default)"),
            as_of=Each(keys=tuple(ENTITIES), what="a source"),
        ),
        store=_keys("root", "engine"),  # store.py
        backtest=_keys("ship_by_known_from"),  # asof_orders.py
        notify=_keys(  # notify.py
            "send_when", "quiet_hours", "allowed_domains", "retry_days",
            smtp=_keys("host", "port", "security", "from", "user", "password", "password_env", "password_file"),
            owners=Each(_keys("email", "send_when", "quiet_hours",
                              webhook=_keys("url", "url_env", "url_file", "template", "token", "token_env", "token_file"))),
        ),
        labour=_keys(  # labour.py
            "productive_share", "load_minutes", "lookahead_hours", "at_risk_above_pct",
            minutes=Each(keys=LABOUR_UNITS, what="a unit of work"),
            shifts=Seq(_keys("name", "start", "end", "days", people=Each(keys=LABOUR_AREAS, what="an area"))),
            observed=_keys("window_minutes", "min_units"),
        ),
        sources=Each(None, tuple(ENTITIES), "an entity of the extract contract"),  # each entity: _source(entity)
        cutoffs=Seq(_keys("carrier", "service", "pickup", "days")),
        links=Each(keys=(*SYSTEMS, *ENTITIES), what="a system or a kind of record"),  # links.py: template_for
        board=_keys("users", "internal_fields"),  # board/auth.py, board/data.py (docs/board.md)
        identifiers=Each(_keys("prefixes", "line_suffix", "strip_zeros", "separators"), IDENTIFIER_KINDS, "an identifier kind"),
        calendars=_keys(site=_day_rules(False), carriers=Each(Keys({**_day_rules(True).nodes, "services": Each(_day_rules(True))}))),
        policy=_keys(
            "ship_complete_default", "not_released_within_minutes", "label_due_minutes_after_pack",
            "paperwork_due_minutes_before_cutoff", "manifest_due_minutes_after_label", "consolidated_carriers",
            "buffer_minutes", "transit_days_default", "pickup_lookahead_days", "day_starts_at",
            reasons=Each(_keys("label", "owner", "communicate")),
            hold_codes=codes,
            pack_exception_codes=codes,
            note_rules=Seq(_keys("reason", "pattern")),
            priority=_keys("tier_default", tier_points=Each(), **{k: Seq(_keys(v, "points")) for k, v in band.items()}),
            work_minutes=_keys(*WORK_STEPS),
            buffer_by_customer=codes,
            transit_days=Seq(_keys("carrier", "service", "days")),
            risk_score=_keys("enabled", "model", "threshold"),
        ),
    )


# ------------------------------------------------------------------------------------------ the check


def check_site_keys(root: yaml.Node | None, path: Path) -> None:
    """Raise SettingsError at the first key of the site file (its composed YAML) that is not known at its
    place, or the first code YAML would read as another value."""
    if root is not None:
        _check(root, schema(), (), path)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _dotted(keys: tuple[str, ...]) -> str:
    out = ""
    for k in keys:
        out += f"[{k}]" if k.isdigit() and out else ("." if out else "") + k
    return out


def _unknown(path: Path, key_node: yaml.Node, keys: tuple[str, ...], known: tuple[str, ...], what: str) -> SettingsError:
    key = str(key_node.value)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6) or [k for k in known if k.casefold() == key.casefold()][:1]
    near = f"; did you mean '{close[0]}'?" if close else ""
    if not close and key in NUMBER_FORMAT_KEYS and "number_format" in known:  # a number-format key one level too high
        near = f"; it belongs under number_format: (number_format: {{{key}: ...}})"
    shown = ", ".join(sorted(known, key=str.casefold)) if len(known) <= 40 else ", ".join(sorted(known)[:40]) + ", ..."
    dotted = _dotted((*keys, key))
    if what:
        return SettingsError(f"{path} line {_line(key_node)}: '{key}' is not {what} ({dotted}){near} (known: {shown})")
    return SettingsError(f"{path} line {_line(key_node)}: unknown setting {dotted}{near} (known here: {shown})")


def _code(node: yaml.Node, keys: tuple[str, ...], path: Path) -> None:
    """A plain scalar used as a code must read back as the text written (`01` is the number 1 to YAML)."""
    if not isinstance(node, yaml.ScalarNode) or node.style is not None or node.tag.endswith((":str", ":null")):
        return
    try:
        value = yaml.safe_load(node.value)  # what the plain scalar reads as
    except yaml.YAMLError:
        return
    if value is not None and not isinstance(value, str) and str(value) != node.value:
        raise SettingsError(
            f"{path} line {_line(node)}: {_dotted(keys)}: YAML reads {node.value} as {type(value).__name__} {value!r}, not as the code "
            f"'{node.value}'; quote it (\"{node.value}\") so it stays as written"
        )


def _check(node: yaml.Node, spec: Any, keys: tuple[str, ...], path: Path) -> None:
    if isinstance(spec, Code):
        for item in node.value if isinstance(node, yaml.SequenceNode) else [node]:
            _code(item, keys, path)
        return
    if isinstance(spec, Seq):
        if isinstance(node, yaml.SequenceNode) and spec.node is not None:
            for i, item in enumerate(node.value):
                _check(item, spec.node, (*keys, str(i)), path)
        return
    if not isinstance(node, yaml.MappingNode) or spec is None:
        return  # a scalar where a mapping belongs: its reader says what it should be
    for k, v in node.value:
        if k.tag == "tag:yaml.org,2002:merge":
            continue
        key = str(k.value)
        here = (*keys, key)
        if isinstance(spec, Keys):
            if key not in spec.nodes:
                raise _unknown(path, k, keys, tuple(spec.nodes), "")
            _check(v, spec.nodes[key], here, path)
            continue
        # Each
        if spec.keys is not None and key not in spec.keys:
            raise _unknown(path, k, keys, spec.keys, spec.what)
        if spec.codes:
            _code(k, here, path)
        node_spec = _source(key) if keys == ("sources",) else spec.node
        _check(v, node_spec, here, path)
