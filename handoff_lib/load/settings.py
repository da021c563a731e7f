"""Load and validate a site's parameters YAML: sources and their mappings, cutoffs, links, policy.

Every error names the site file and the line of the setting at fault.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from handoff_lib.errors import PathEscapeError, SettingsError

from .contract import ENTITIES
from .databases import parse_databases
from .databases import parse_source as parse_db_source
from .files import is_file_pattern, pick_file
from .site_keys import COLUMN_FORMS, SYSTEMS, check_site_keys

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FORMATS = ("csv", "parquet", "xlsx")
DEFAULT_TRUE = ("true", "t", "yes", "y", "1", "x")
DEFAULT_FALSE = ("false", "f", "no", "n", "0", "")
GRACE_SETTING = ("data_quality", "as_of_grace_minutes")
MAX_GRACE_MINUTES = 120  # more than this is not clock skew: it is a review at another time
MAPPED_TYPES = ("enum", "int", "id", "text")  # field types a `values:` map applies to (docs/extracts.md, "Value maps")


@dataclass(frozen=True)
class SourceSpec:
    """How one entity is read: its file, format, and the mapping onto the contract."""

    entity: str
    file: str | None  # relative to the data folder; None = not supplied by this site
    format: str
    delimiter: str
    encoding: str
    sheet: str | int | None
    columns: dict[str, str]  # canonical field -> column name in the file
    values: dict[str, dict[str, str]]  # canonical enum field -> {SOURCE VALUE (upper): canonical}
    timestamp_format: str | None
    header_row: int  # xlsx: 1-based row that holds the header
    constants: dict[str, str] = field(default_factory=dict)  # canonical field -> value for every row (no column)
    derived: dict[str, tuple[DeriveRule, ...]] = field(default_factory=dict)  # canonical field -> rules (no column)
    date_format: str | list[str] | None = None  # format(s) of `date` fields (default: ISO, or timestamp_format's date part)
    # The shapes of ERP exports (docs/extracts.md): rows that belong to this entity, fields made from several
    # columns or part of one, numbers written with other separators. Empty = none: no SQL is made for them.
    where: tuple[Condition, ...] = ()  # a row is this entity's when every test holds ("not this entity" otherwise)
    combined: dict[str, Combined] = field(default_factory=dict)  # canonical field -> how it is made from columns
    number_formats: dict[str, NumberFormat] = field(default_factory=dict)  # int / decimal field -> its number format

    database: str | None = None  # a database source (dbsource.py): the name under `databases:`; `file` is then its label
    query: str | None = None  # ... read by this SELECT
    table: str | None = None  # ... or by reading this table or view
    order_by: tuple[str, ...] = ()  # ... in this order (table: only)


@dataclass(frozen=True)
class Condition:
    """One test of a derive rule: a file column holds one of `values` / is blank / is not blank, or a
    contract timestamp field of the same entity is (not) after the review time."""

    target: str  # a column name of the file, or (for after_review / not_after_review) a contract field
    test: str  # in | blank | not_blank | after_review | not_after_review
    values: tuple[str, ...] = ()  # for `in`: trimmed, upper-cased


@dataclass(frozen=True)
class DeriveRule:
    """`value` (the canonical value, as text) when every condition holds; no condition = the default."""

    value: str
    when: tuple[Condition, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c.target for c in self.when if c.test in ("in", "blank", "not_blank"))


@dataclass(frozen=True)
class NumberFormat:
    """How an export writes numbers (docs/extracts.md, "Number formats"): `1.234,50`, `12,000 ST`, `5,00-`."""

    decimal: str = "."  # the decimal mark: "." or ","
    thousands: str | None = None  # the group separator ("," "." " " "'"), None when the export writes none
    trailing_minus: bool = False  # `5,00-` is minus five
    units: tuple[str, ...] = ()  # unit words a value may end in (upper-cased), dropped: `12,000 ST`


@dataclass(frozen=True)
class Combined:
    """A field made from file columns (docs/extracts.md, "Columns combined and split"): the columns joined
    (`join`), a date column and a time column (`datetime`), or one piece of a column (`split`)."""

    kind: str  # join | datetime | split
    columns: tuple[str, ...]  # join: the columns in order; datetime: (date column, time column); split: (the column,)
    separator: str = "-"  # join: put between the non-blank parts; split: cut at
    part: int = 1  # split: the 1-based piece
    formats: tuple[str, ...] = ()  # datetime: formats of "date time", then of the date alone (a blank time)

    @property
    def label(self) -> str:
        """What `rejects.column` and the messages call it: the column, or the columns joined by '+'."""
        return self.columns[0] if self.kind == "split" else "+".join(self.columns)


@dataclass(frozen=True)
class DataQuality:
    """When bad input stops a run instead of losing a few values (docs/extracts.md, "What happens to bad input")."""

    max_bad_share_pct: float = 2.0  # a source fails when more than this share of its rows, or of a column's values, is bad ...
    min_bad_count: int = 3  # ... and at least this many are; a column whose every value is bad always fails
    event_tolerance_minutes: int = 30  # milestones out of order by up to this much are only flagged


@dataclass(frozen=True)
class Cutoff:
    """A carrier pickup: carrier and service ('*' = any) leave at `pickup` on `days`."""

    carrier: str
    service: str
    pickup: dt.time
    days: frozenset[int]  # 0 = Monday


@dataclass(frozen=True)
class IdRule:
    """Normalisation of one kind of identifier before matching across systems."""

    kind: str
    prefixes: tuple[str, ...] = ()
    line_suffix: str | None = None  # regex of a line suffix to drop, e.g. '-\\d{1,3}$'
    strip_zeros: bool = True
    separators: str = r"[\s\-_./#]"  # a regex character class of the characters dropped when matching


@dataclass
class Settings:
    path: Path
    site: str
    name: str
    timezone: str
    data_folder: Path
    allowed_roots: tuple[Path, ...]
    outputs: Path
    sources: dict[str, SourceSpec]
    cutoffs: tuple[Cutoff, ...]
    links: dict[str, str]
    identifiers: dict[str, IdRule]
    booleans: tuple[frozenset[str], frozenset[str]]
    raw: dict[str, Any]
    review_times: tuple[dt.time, ...] = ()
    review_days: frozenset[int] = frozenset(range(5))
    lines: dict[tuple[str, ...], int] = field(default_factory=dict, repr=False)
    data_quality: DataQuality = field(default_factory=DataQuality)
    databases: dict[str, Any] = field(default_factory=dict)  # name -> dbsource.Database (`databases:`)
    review_at: dt.datetime | None = None  # the review for_review resolved the data folder and file patterns for
    file_patterns: dict[str, str] = field(default_factory=dict)  # entity -> its `file:` pattern, once resolved to a file

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def where(self, *keys: str) -> str:
        """'parameters/demo.yaml line 12' for the deepest of `keys` the file has."""
        k = tuple(str(x) for x in keys)
        while k and k not in self.lines:
            k = k[:-1]
        line = self.lines.get(k)
        return f"{self.path} line {line}" if line else str(self.path)

    def source_path(self, entity: str) -> Path | None:
        spec = self.sources.get(entity)
        if spec is None or spec.file is None or spec.database is not None:
            return None
        if is_file_pattern(spec.file):  # e.g. wms_tasks_%Y%m%d_%H%M.csv: the file as of review_at (files.pick_file)
            return pick_file(self.data_folder, entity, str(spec.file), self.where("sources", entity, "file"), self.review_at,
                             self.tz, grace_minutes(self))
        return self.data_folder / spec.file

    @property
    def data_is_template(self) -> bool:
        """data.folder holds {date} / {time} placeholders: one extract folder per review."""
        return "{" in str(self.data_folder)

    def for_review(self, at: dt.datetime) -> Settings:
        """A copy whose data folder has {date} (YYYY-MM-DD) and {time} (HHMM) filled for `at`, and whose file
        patterns name the file as of `at` (docs/extracts.md, "How current the extracts are")."""
        new = Settings(**self.__dict__)
        if self.data_is_template:
            folder = str(self.data_folder).replace("{date}", at.strftime("%Y-%m-%d")).replace("{time}", at.strftime("%H%M"))
            new = self.with_data_folder(folder)
        new.review_at = at
        return new.with_files_resolved()

    def with_files_resolved(self) -> Settings:
        """A copy whose `file:` patterns are resolved to one file each (as of review_at, else the newest), so
        that every step of a review reads the same file; the patterns are kept in file_patterns."""
        new = self
        for entity, spec in self.sources.items():
            pattern = self.file_patterns.get(entity, spec.file)  # a copy resolved for another review picks again
            if is_file_pattern(pattern) and self.data_folder.is_dir():
                path = new.with_source_file(entity, pattern, pattern).source_path(entity)
                new = new.with_source_file(entity, str(path.relative_to(self.data_folder)), pattern)
        return new

    def with_source_file(self, entity: str, file: str, pattern: str) -> Settings:
        """A copy whose `entity` reads `file` (one of the files its `file:` pattern names)."""
        new = Settings(**self.__dict__)
        new.sources = dict(self.sources) | {entity: dataclasses.replace(self.sources[entity], file=file)}
        new.file_patterns = dict(self.file_patterns) | {entity: pattern}
        return new

    def with_data_folder(self, folder: str | Path) -> Settings:
        """A copy reading extracts from `folder` (which must lie under an allowed root)."""
        folder = Path(folder).resolve()
        _check_under(folder, self.allowed_roots, f"data folder {folder}", self.where("data"))
        new = Settings(**self.__dict__)
        new.data_folder = folder
        return new


def _line_map(node: yaml.Node, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = prefix + (str(k.value),)
            out[key] = k.start_mark.line + 1
            _line_map(v, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            key = prefix + (str(i),)
            out[key] = v.start_mark.line + 1
            _line_map(v, key, out)


def _check_under(path: Path, roots: tuple[Path, ...], what: str, where: str) -> None:
    for root in roots:
        if path == root or root in path.parents:
            return
    allowed = ", ".join(str(r) for r in roots)
    raise PathEscapeError(f"{where}: {what} is outside the allowed folders ({allowed}); add its folder to data.allowed_roots")


def _parse_time(value: Any, where: str) -> dt.time:
    if isinstance(value, int):  # YAML 1.1 reads 16:00 as a sexagesimal int
        return dt.time(value // 60, value % 60)
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise SettingsError(f"{where}: '{value}' is not a time of day as HH:MM")
    return dt.time(int(m.group(1)), int(m.group(2)))


def grace_minutes(settings: Settings) -> int:
    """`data_quality.as_of_grace_minutes` of the site file (default 0): records and milestones stamped up to
    this many minutes after the review time count as known (a source whose clock runs ahead). The as-of cut
    (join/asof.py) and the file a pattern names for a review (files.pick_file) both use it."""
    section = settings.raw.get(GRACE_SETTING[0]) or {}
    value = section.get(GRACE_SETTING[1], 0) if isinstance(section, dict) else 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_GRACE_MINUTES:
        raise SettingsError(
            f"{settings.where(*GRACE_SETTING)}: {'.'.join(GRACE_SETTING)} must be a whole number of minutes from 0 to "
            f"{MAX_GRACE_MINUTES}, not {value!r}"
        )
    return value


def day_starts_at(settings: Settings) -> dt.time:
    """`policy.day_starts_at` of the site file (default 00:00): a moment before this local time belongs to the
    previous operating day. Read here, below the rules, because the freshness check needs the operating day too."""
    raw = settings.raw.get("policy") or {}
    value = raw.get("day_starts_at", "00:00") if isinstance(raw, dict) else "00:00"
    return _parse_time(value, settings.where("policy", "day_starts_at"))


def operating_day(settings: Settings, now: dt.datetime, starts_at: dt.time | None = None) -> dt.date:
    """The operating day a moment belongs to: its local date, or the day before when it falls before
    `policy.day_starts_at` (a 00:20 review still looks at the previous evening's late pickups). The one
    definition: policy.operating_day and the freshness check both call it. `starts_at`: the day start when
    the caller already has it (Policy.day_starts_at), else it is read from the site file."""
    local = now.astimezone(settings.tz)
    start = day_starts_at(settings) if starts_at is None else starts_at
    return local.date() - dt.timedelta(days=1) if local.time() < start else local.date()


def _separator_class(chars: str) -> str:
    """`identifiers.<kind>.separators: " -_./#:"` -> the regex character class of those characters (a space
    stands for any white space)."""
    out = "".join("\\s" if c == " " else ("\\" + c if c in "\\]^-[" else c) for c in dict.fromkeys(chars))
    return f"[{out}]" if out else "[^\\s\\S]"


def _derive_rules(
    raw: Any,
    entity: Any,
    canon: str,
    mapping: dict[str, str],
    booleans: tuple[frozenset[str], frozenset[str]],
    at_keys: tuple[str, ...],
    where_of: Any,
) -> tuple[DeriveRule, ...]:
    """The validated `derive:` rules of sources.<entity>.columns.<canon> (docs/extracts.md, Derived fields)."""

    def where(*keys: Any) -> str:
        return where_of(*at_keys, *keys)

    f = entity.field(canon)
    if not isinstance(raw, list) or not raw:
        raise SettingsError(
            f"{where('derive')}: derive: must be a list of rules such as {{value: not_released, when: {{ReleaseDate: blank}}}}, "
            f"the last without when: as the default"
        )
    if f.type in ("timestamp", "date", "decimal"):
        raise SettingsError(f"{where('derive')}: {entity.name}.{canon} is a {f.type} field; derive: gives enum, int, bool, id or text fields")
    rules = []
    for i, rule in enumerate(raw):
        at = where("derive", i)
        if not isinstance(rule, dict) or "value" not in rule or set(rule) - {"value", "when"}:
            raise SettingsError(f"{at}: each derive rule is {{value: ..., when: {{COLUMN: test, ...}}}} (when: left out for the default), not {rule!r}")
        value = str(rule["value"]).strip()
        if f.type == "enum":
            value = value if value in f.values else mapping.get(value.upper(), "")
            if not value:
                raise SettingsError(
                    f"{at}: derive value '{rule['value']}' is not a {canon} value (use one of {', '.join(f.values)}, or a code mapped under values.{canon})"
                )
        elif f.type == "int":
            value = mapping.get(value.upper(), value)
            if not re.fullmatch(r"[+-]?\d+", value):
                raise SettingsError(f"{at}: derive value '{rule['value']}' of the int field {canon} is not a whole number")
        elif f.type == "bool":
            low = value.lower()
            if low not in booleans[0] and low not in booleans[1]:
                raise SettingsError(f"{at}: derive value '{rule['value']}' is not one of the site's yes/no spellings (booleans:)")
            value = "true" if low in booleans[0] else "false"
        when = rule.get("when")
        conds = _conditions(when, (*at_keys, "derive", i, "when"), where_of, entity) if when else ()
        rules.append(DeriveRule(value, conds))
    return tuple(rules)


def _column_form(col: dict, at: str, entity: str, canon: str) -> str:
    """Which form a `columns:` entry given as a mapping takes (site_keys.COLUMN_FORMS): value, derive, column,
    join or date; a mapping that is none of them, or mixes them, is an error naming the line."""
    forms = [k for k in COLUMN_FORMS if k in col]
    extra = set(col) - set(COLUMN_FORMS[forms[0]]) if len(forms) == 1 else set()
    if len(forms) != 1 or extra:
        raise SettingsError(
            f"{at}: sources.{entity}.columns.{canon} must name a column, or be one of: {{value: ...}} (one value for every row), "
            f"{{derive: [...]}} (rules over other columns), {{column: ..., number_format: ..., split: ..., part: ...}}, "
            f"{{join: [A, B], separator: ...}}, {{date: ..., time: ..., date_format: ..., time_format: ...}} "
            f"(docs/extracts.md){'; it mixes ' + ', '.join(forms) if len(forms) > 1 else ''}"
            f"{'; ' + ', '.join(sorted(map(str, extra))) + ' does not go with ' + forms[0] + ':' if extra else ''}, not {col!r}"
        )
    form = forms[0]
    if form == "value" and (isinstance(col["value"], (dict, list)) or col["value"] is None):
        raise SettingsError(f"{at}: {{value: ...}} gives one value for every row (e.g. {{value: \"MARKETPLACE\"}}), not {col['value']!r}")
    if form == "column" and (isinstance(col["column"], (dict, list)) or col["column"] in (None, "")):
        raise SettingsError(f"{at}: {{column: ...}} names one column of the file, not {col['column']!r}")
    return "datetime" if form == "date" else form


def _formats(value: Any, default: tuple[str, ...], at: str, what: str) -> tuple[str, ...]:
    if value is None:
        return default
    out = tuple(str(v) for v in (value if isinstance(value, list) else [value]))
    if not out or any("%" not in v for v in out):
        raise SettingsError(f"{at}: {what} is a strptime format such as \"%d.%m.%Y\" (or a list of them), not {value!r}")
    return out


def _combined(kind: str, col: dict, at_keys: tuple[str, ...], where_of: Any, f: Any, date_format: Any) -> Combined:
    """A field made from columns (docs/extracts.md, "Columns combined and split"), validated."""
    at = where_of(*at_keys)
    if kind == "join":
        parts = col["join"]
        if not isinstance(parts, list) or len(parts) < 2 or any(isinstance(p, (dict, list)) or p in (None, "") for p in parts):
            raise SettingsError(f"{where_of(*at_keys, 'join')}: join: lists two or more columns, e.g. [VBELN, LIFSK], not {parts!r}")
        sep = col.get("separator", "-")
        if not isinstance(sep, str):
            raise SettingsError(f"{where_of(*at_keys, 'separator')}: separator: is the text put between the parts, e.g. \"-\"")
        return Combined("join", tuple(str(p) for p in parts), separator=sep)
    if kind == "split":
        sep, part = col.get("split"), col.get("part")
        if not isinstance(sep, str) or sep == "" or isinstance(part, bool) or not isinstance(part, int) or part < 1:
            raise SettingsError(
                f"{at}: a split column needs split: (the separator, e.g. \"-\") and part: (1 for the text before the first "
                f"separator, 2 for the piece after it, ...), not split: {sep!r}, part: {part!r}"
            )
        return Combined("split", (str(col["column"]),), separator=sep, part=part)
    if f.type != "timestamp":
        raise SettingsError(f"{at}: {{date: ..., time: ...}} makes a timestamp; {f.name} is a {f.type} field")
    if "time" not in col or isinstance(col["time"], (dict, list)) or col["time"] in (None, "") or col["date"] in (None, ""):
        raise SettingsError(f"{at}: {{date: COLUMN, time: COLUMN}} names the date column and the time column, not {col!r}")
    dates = _formats(col.get("date_format", date_format), ("%Y-%m-%d",), where_of(*at_keys, "date_format"), "date_format:")
    times = _formats(col.get("time_format"), ("%H:%M:%S", "%H:%M"), where_of(*at_keys, "time_format"), "time_format:")
    return Combined("datetime", (str(col["date"]), str(col["time"])), formats=(*(f"{d} {t}" for d in dates for t in times), *dates))


def _number_format(raw: Any, at_keys: tuple[str, ...], where_of: Any) -> NumberFormat:
    """A `number_format:` mapping (docs/extracts.md, "Number formats"), validated."""
    at = where_of(*at_keys)
    if not isinstance(raw, dict):
        raise SettingsError(f"{at}: number_format: is a mapping such as {{decimal: \",\", thousands: \".\"}}, not {raw!r}")
    decimal = str(raw.get("decimal", "."))
    if decimal not in (".", ","):
        raise SettingsError(f"{where_of(*at_keys, 'decimal')}: number_format.decimal is \".\" or \",\", not {raw.get('decimal')!r}")
    thousands = raw.get("thousands")
    thousands = None if thousands in (None, "", False) else str(thousands)
    if thousands is not None and (thousands not in (",", ".", " ", "'") or thousands == decimal):
        raise SettingsError(
            f"{where_of(*at_keys, 'thousands')}: number_format.thousands is one of \",\" \".\" \" \" \"'\" (not the decimal "
            f"mark {decimal!r}), or left out when the export writes none; not {raw.get('thousands')!r}"
        )
    minus = raw.get("trailing_minus", False)
    if not isinstance(minus, bool):
        raise SettingsError(f"{where_of(*at_keys, 'trailing_minus')}: number_format.trailing_minus is true or false, not {minus!r}")
    units = raw.get("units") or []
    units = units if isinstance(units, list) else [units]
    if any(not re.fullmatch(r"[^\W\d_]+", str(u).strip()) for u in units):
        raise SettingsError(f"{where_of(*at_keys, 'units')}: number_format.units lists unit words such as [ST, EA, PC], not {raw.get('units')!r}")
    return NumberFormat(decimal, thousands, minus, tuple(str(u).strip().upper() for u in units))


def _conditions(raw: Any, at_keys: tuple[str, ...], where_of: Any, entity: Any, review: bool = True) -> tuple[Condition, ...]:
    """The tests of a derive rule's `when:` or a source's `where:` (one condition language, docs/extracts.md):
    a file column -> a list of values / one value / blank / not blank; with `review`, also a timestamp field
    of the entity -> after review / not after review. Every test must hold."""
    what = "when:" if review else "where:"
    if not isinstance(raw, dict) or not raw:
        raise SettingsError(
            f"{where_of(*at_keys)}: {what} maps a column to a test (a list of values, a value, blank, not blank), not {raw!r}"
        )
    timestamps = {x.name for x in entity.fields if x.type == "timestamp"}
    conds = []
    for target, test in raw.items():
        target = str(target)
        if isinstance(test, list):
            conds.append(Condition(target, "in", tuple(str(v).strip().upper() for v in test)))
            continue
        if isinstance(test, dict):
            raise SettingsError(f"{where_of(*at_keys, target)}: {what} {target}: is a list of values, a value, blank or not blank, not {test!r}")
        word = re.sub(r"[\s_]+", " ", str(test).strip().lower()) if test is not None else "blank"
        if word in ("after review", "not after review"):
            if not review:
                raise SettingsError(
                    f"{where_of(*at_keys, target)}: where: tests the columns of the file as read (a list of values, a value, "
                    f"blank, not blank); '{test}' needs typed fields: use it in a derive rule"
                )
            if target not in timestamps:
                raise SettingsError(
                    f"{where_of(*at_keys, target)}: '{test}' compares a timestamp field of {entity.name} with the review "
                    f"time; '{target}' is not one (timestamp fields: {', '.join(sorted(timestamps))})"
                )
            conds.append(Condition(target, word.replace(" ", "_")))
        elif word in ("blank", "not blank"):
            conds.append(Condition(target, word.replace(" ", "_")))
        else:
            conds.append(Condition(target, "in", (str(test).strip().upper(),)))
    return tuple(conds)


def load_settings(path: str | Path, data_folder: str | Path | None = None) -> Settings:
    """Read and validate `parameters/<site>.yaml`; `data_folder` overrides the file's data.folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{path}: site parameters file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read site parameters file ({exc})") from None
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        raise SettingsError(f"{path}{at}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping of settings at the top level")
    check_site_keys(node, path)  # an unknown or misspelled key anywhere is an error naming its line (site_keys.py)
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _line_map(node, (), lines)

    def where(*keys: Any) -> str:
        k = tuple(str(x) for x in keys)
        while k and k not in lines:
            k = k[:-1]
        return f"{path} line {lines[k]}" if k in lines else str(path)

    def need(mapping: dict, key: str, *ctx: Any) -> Any:
        if not isinstance(mapping, dict) or key not in mapping or mapping[key] in (None, ""):
            raise SettingsError(f"{where(*ctx)}: missing setting '{'.'.join(map(str, ctx + (key,)))}'")
        return mapping[key]

    site = str(need(raw, "site"))
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", site):
        raise SettingsError(f"{where('site')}: site '{site}' may only hold letters, digits, '-' and '_' (it names output folders)")
    tzname = str(need(raw, "timezone"))
    try:
        ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{where('timezone')}: unknown timezone '{tzname}' (use an IANA name such as Europe/Berlin)") from None

    base = path.resolve().parent
    data = raw.get("data") or {}
    roots_raw = data.get("allowed_roots") or [".."]
    if not isinstance(roots_raw, list):
        raise SettingsError(f"{where('data', 'allowed_roots')}: data.allowed_roots must be a list of folders")
    roots = tuple((base / str(r)).resolve() for r in roots_raw)
    folder = Path(data_folder).resolve() if data_folder is not None else (base / str(need(data, "folder", "data"))).resolve()
    _check_under(folder, roots, f"data folder {folder}", where("data", "folder"))
    outputs = (base / str(raw.get("outputs", "../outputs"))).resolve()

    # booleans
    bools = raw.get("booleans") or {}
    # YAML 1.1 reads the keys `true:` / `false:` as booleans: accept either spelling of the key.
    true_set = frozenset(str(v).strip().lower() for v in bools.get("true", bools.get(True, DEFAULT_TRUE)))
    false_set = frozenset(str(v).strip().lower() for v in bools.get("false", bools.get(False, DEFAULT_FALSE)))

    # sources
    src_raw = need(raw, "sources")
    if not isinstance(src_raw, dict):
        raise SettingsError(f"{where('sources')}: sources must map entity names to their files")
    for name in src_raw:
        if name not in ENTITIES:
            raise SettingsError(f"{where('sources', name)}: unknown source '{name}' (the contract has: {', '.join(ENTITIES)})")
    databases = parse_databases(raw, where, path)
    sources: dict[str, SourceSpec] = {}
    for name, entity in ENTITIES.items():
        s = src_raw.get(name)
        if s is None and name in src_raw:
            raise SettingsError(
                f"{where('sources', name)}: source '{name}' is empty; give it file: and columns:, or file: null when the site has no such export"
            )
        if s is None:
            if entity.required_file:
                raise SettingsError(
                    f"{where('sources')}: missing source '{name}' (required by the extract contract); a site that has no "
                    f"such export declares it with `{name}: {{file: null}}` and it loads empty"
                )
            sources[name] = SourceSpec(name, None, "csv", ",", "utf-8", None, {}, {}, None, 1)
            continue
        if not isinstance(s, dict):
            raise SettingsError(f"{where('sources', name)}: source '{name}' must be a mapping with file: and columns:")
        if "file" in s and s["file"] is None:  # declared as not supplied by this site: loads as an empty typed table
            sources[name] = SourceSpec(name, None, "csv", ",", "utf-8", None, {}, {}, None, 1)
            continue
        db_fields: dict[str, Any] = {}
        if s.get("database") is not None:  # a query or table of a database instead of a file (dbsource.py)
            file, db_fields = parse_db_source(name, s, databases, where)
            fmt = "database"
        else:
            file = str(need(s, "file", "sources", name))
            if Path(file).is_absolute() or ".." in Path(file).parts:
                raise PathEscapeError(f"{where('sources', name, 'file')}: source file '{file}' must be a path inside the data folder")
            fmt = str(s.get("format") or Path(file).suffix.lstrip(".").lower())
            if fmt not in FORMATS:
                raise SettingsError(f"{where('sources', name, 'file')}: cannot tell the format of '{file}' (set format: to one of {', '.join(FORMATS)})")
        cols_raw = s.get("columns") or {}
        if not isinstance(cols_raw, dict):
            raise SettingsError(f"{where('sources', name, 'columns')}: columns must map contract fields to file columns")
        known = {f.name for f in entity.fields}
        for canon in cols_raw:
            if canon not in known:
                raise SettingsError(
                    f"{where('sources', name, 'columns', canon)}: '{canon}' is not a field of {name} (fields: {', '.join(sorted(known))})"
                )
        constants: dict[str, str] = {}
        derive_raw: dict[str, Any] = {}
        combined: dict[str, Combined] = {}
        named: dict[str, str] = {}  # canonical field -> the column of a {column: ...} form
        column_formats: dict[str, NumberFormat] = {}
        for canon, col in cols_raw.items():
            if not isinstance(col, dict):
                continue
            at = ("sources", name, "columns", canon)
            form = _column_form(col, where(*at), name, canon)
            if form == "derive":
                derive_raw[canon] = col["derive"]
            elif form == "value":
                constants[canon] = str(col["value"])
            elif form == "column":
                named[canon] = str(col["column"])
                if "number_format" in col:
                    if entity.field(canon).type not in ("int", "decimal"):
                        raise SettingsError(
                            f"{where(*at, 'number_format')}: number_format: applies to int and decimal fields; {name}.{canon} is a "
                            f"{entity.field(canon).type} field"
                        )
                    column_formats[canon] = _number_format(col["number_format"], (*at, "number_format"), where)
                if "split" in col or "part" in col:
                    combined[canon] = _combined("split", col, at, where, entity.field(canon), None)
            else:
                combined[canon] = _combined(form, col, at, where, entity.field(canon), s.get("date_format"))
        source_format = (
            _number_format(s["number_format"], ("sources", name, "number_format"), where) if s.get("number_format") is not None else None
        )
        number_formats: dict[str, NumberFormat] = {}
        for f in entity.fields:
            nf = column_formats.get(f.name, source_format)
            if f.type in ("int", "decimal") and f.name not in constants and f.name not in derive_raw and nf not in (None, NumberFormat()):
                number_formats[f.name] = nf
        where_raw = s.get("where")
        row_filter = _conditions(where_raw, ("sources", name, "where"), where, entity, review=False) if where_raw is not None else ()
        vals_raw = s.get("values") or {}
        if not isinstance(vals_raw, dict):
            raise SettingsError(f"{where('sources', name, 'values')}: sources.{name}.values must map contract fields to code maps")
        for canon in vals_raw:
            if canon not in known:
                raise SettingsError(
                    f"{where('sources', name, 'values', canon)}: '{canon}' is not a field of {name} (fields: {', '.join(sorted(known))})"
                )
            ftype = entity.field(canon).type
            if ftype not in MAPPED_TYPES:
                raise SettingsError(
                    f"{where('sources', name, 'values', canon)}: sources.{name}.values.{canon}: a value map applies to enum fields "
                    f"(status codes), int fields (e.g. priority P1 -> 1) and id or text fields (e.g. a shipping code -> its carrier), "
                    f"and {name}.{canon} is a {ftype} field; remove it, or map the column in columns: instead"
                )
        values: dict[str, dict[str, str]] = {}
        for f in entity.fields:
            if f.type not in MAPPED_TYPES:
                continue
            mapping = vals_raw.get(f.name)
            if mapping is None:
                if f.type != "enum":
                    continue
                mapping = {v: v for v in f.values}
            if not isinstance(mapping, dict):
                target = {"enum": ", ".join(f.values), "int": "whole numbers"}.get(f.type, "values")
                raise SettingsError(f"{where('sources', name, 'values', f.name)}: values.{f.name} must map source codes to {target}")
            out: dict[str, str] = {}
            for src_val, canon in mapping.items():
                at = where("sources", name, "values", f.name, src_val)
                if f.type == "enum" and str(canon) not in f.values:
                    raise SettingsError(f"{at}: '{canon}' is not a {f.name} value (use one of {', '.join(f.values)})")
                if f.type == "int" and (isinstance(canon, bool) or not re.fullmatch(r"[+-]?\d+", str(canon).strip())):
                    raise SettingsError(f"{at}: values.{f.name} maps '{src_val}' to '{canon}', which is not a whole number")
                out[str(src_val).strip().upper()] = str(canon).strip()
            values[f.name] = out
            if f.type == "enum" and f.name in constants and constants[f.name].strip().upper() not in out:
                raise SettingsError(
                    f"{where('sources', name, 'columns', f.name)}: constant {f.name} '{constants[f.name]}' is not mapped "
                    f"(values.{f.name} maps: {', '.join(out) or 'nothing'}; the contract's values are {', '.join(f.values)})"
                )
        derived = {
            canon: _derive_rules(rules, entity, canon, values.get(canon, {}), (true_set, false_set), ("sources", name, "columns", canon), where)
            for canon, rules in derive_raw.items()
        }
        columns = {
            f.name: f"(constant {constants[f.name]!r})"
            if f.name in constants
            else "(derived)"
            if f.name in derived
            else combined[f.name].label
            if f.name in combined
            else named.get(f.name) or str(cols_raw.get(f.name, f.name))
            for f in entity.fields
        }
        sheet = s.get("sheet")
        sources[name] = SourceSpec(
            entity=name,
            file=file,
            format=fmt,
            delimiter=str(s.get("delimiter", ",")),
            encoding=str(s.get("encoding", "utf-8")).lower(),
            sheet=sheet,
            columns=columns,
            values=values,
            timestamp_format=s.get("timestamp_format"),
            header_row=int(s.get("header_row", 1)),
            constants=constants,
            derived=derived,
            date_format=s.get("date_format"),
            where=row_filter,
            combined=combined,
            number_formats=number_formats,
            **db_fields,
        )

    # cutoffs
    cutoffs: list[Cutoff] = []
    for i, c in enumerate(raw.get("cutoffs") or []):
        carrier = str(need(c, "carrier", "cutoffs", i)).strip().upper()
        service = str(c.get("service", "*")).strip().upper()
        pickup = _parse_time(need(c, "pickup", "cutoffs", i), where("cutoffs", i, "pickup"))
        days_raw = c.get("days", list(WEEKDAYS[:5]))
        days = set()
        for d in days_raw:
            d = str(d).strip().lower()[:3]
            if d not in WEEKDAYS:
                raise SettingsError(f"{where('cutoffs', i, 'days')}: '{d}' is not a weekday (mon..sun)")
            days.add(WEEKDAYS.index(d))
        cutoffs.append(Cutoff(carrier, service, pickup, frozenset(days)))

    # links
    links: dict[str, str] = {}
    for system, template in (raw.get("links") or {}).items():
        if system not in SYSTEMS and system not in ENTITIES:  # a system's template, or one kind of record's (holds)
            raise SettingsError(f"{where('links', system)}: unknown system or record kind '{system}' (a system: "
                                f"{', '.join(SYSTEMS)}; or a record kind: {', '.join(ENTITIES)})")
        template = str(template)
        if not re.match(r"https?://", template):
            raise SettingsError(f"{where('links', system)}: links.{system} template must start with http:// or https://")
        links[system] = template

    # identifier normalisation rules
    identifiers: dict[str, IdRule] = {}
    for kind, rule in (raw.get("identifiers") or {}).items():
        rule = rule or {}
        suffix = rule.get("line_suffix")
        if suffix:
            try:
                re.compile(suffix)
            except re.error as exc:
                raise SettingsError(f"{where('identifiers', kind, 'line_suffix')}: not a valid regular expression ({exc})") from None
        seps = rule.get("separators")
        identifiers[kind] = IdRule(
            kind=kind,
            prefixes=tuple(str(p).upper() for p in rule.get("prefixes", [])),
            line_suffix=suffix,
            strip_zeros=bool(rule.get("strip_zeros", True)),
            **({"separators": _separator_class(str(seps))} if seps is not None else {}),
        )

    rv = raw.get("reviews") or {}
    review_times = tuple(sorted(_parse_time(t, where("reviews", "times", i)) for i, t in enumerate(rv.get("times") or [])))
    review_days = set()
    for d in rv.get("days", list(WEEKDAYS[:5])):
        d = str(d).strip().lower()[:3]
        if d not in WEEKDAYS:
            raise SettingsError(f"{where('reviews', 'days')}: '{d}' is not a weekday (mon..sun)")
        review_days.add(WEEKDAYS.index(d))

    dq_raw = raw.get("data_quality") or {}
    if not isinstance(dq_raw, dict):
        raise SettingsError(f"{where('data_quality')}: data_quality must be a mapping (max_bad_share_pct:, min_bad_count:, event_tolerance_minutes:)")

    def dq(key: str, default: float, kind: type) -> Any:
        value = dq_raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SettingsError(f"{where('data_quality', key)}: data_quality.{key} must be a number >= 0, not {value!r}")
        return kind(value)

    data_quality = DataQuality(
        max_bad_share_pct=dq("max_bad_share_pct", DataQuality.max_bad_share_pct, float),
        min_bad_count=dq("min_bad_count", DataQuality.min_bad_count, int),
        event_tolerance_minutes=dq("event_tolerance_minutes", DataQuality.event_tolerance_minutes, int),
    )

    return Settings(
        data_quality=data_quality,
        review_times=review_times,
        review_days=frozenset(review_days),
        path=path,
        site=site,
        name=str(raw.get("name", site)),
        timezone=tzname,
        data_folder=folder,
        allowed_roots=roots,
        outputs=outputs,
        sources=sources,
        cutoffs=tuple(cutoffs),
        links=links,
        identifiers=identifiers,
        booleans=(true_set, false_set),
        raw=raw,
        lines=lines,
        databases=databases,
    )
