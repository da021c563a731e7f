"""Load and validate a site's parameters YAML: sources and their mappings, cutoffs, links, policy.

Every error names the site file and the line of the setting at fault.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from .contract import ENTITIES
from .errors import PathEscapeError, SettingsError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FORMATS = ("csv", "parquet", "xlsx")
DEFAULT_TRUE = ("true", "t", "yes", "y", "1", "x")
DEFAULT_FALSE = ("false", "f", "no", "n", "0", "")
SYSTEMS = ("oms", "wms", "carrier", "crm")


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
    separators: str = r"[\s\-_./#]"


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
        if spec is None or spec.file is None:
            return None
        return self.data_folder / spec.file

    @property
    def data_is_template(self) -> bool:
        """data.folder holds {date} / {time} placeholders: one extract folder per review."""
        return "{" in str(self.data_folder)

    def for_review(self, at: dt.datetime) -> Settings:
        """A copy whose data folder has {date} (YYYY-MM-DD) and {time} (HHMM) filled for `at`."""
        if not self.data_is_template:
            return self
        folder = str(self.data_folder).replace("{date}", at.strftime("%Y-%m-%d")).replace("{time}", at.strftime("%H%M"))
        return self.with_data_folder(folder)

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
        for canon, col in cols_raw.items():
            if not isinstance(col, dict):
                continue
            at = where("sources", name, "columns", canon)
            if set(col) != {"value"} or isinstance(col["value"], (dict, list)) or col["value"] is None:
                raise SettingsError(
                    f"{at}: sources.{name}.columns.{canon} must name a column, or give one value for every row as "
                    f"{{value: ...}} (e.g. {{value: \"MARKETPLACE\"}}), not {col!r}"
                )
            constants[canon] = str(col["value"])
        columns = {
            f.name: f"(constant {constants[f.name]!r})" if f.name in constants else str(cols_raw.get(f.name, f.name))
            for f in entity.fields
        }
        values: dict[str, dict[str, str]] = {}
        vals_raw = s.get("values") or {}
        for f in entity.fields:
            if f.type != "enum":
                continue
            mapping = vals_raw.get(f.name)
            if mapping is None:
                mapping = {v: v for v in f.values}
            if not isinstance(mapping, dict):
                raise SettingsError(f"{where('sources', name, 'values', f.name)}: values.{f.name} must map source codes to {', '.join(f.values)}")
            out: dict[str, str] = {}
            for src_val, canon in mapping.items():
                if str(canon) not in f.values:
                    raise SettingsError(
                        f"{where('sources', name, 'values', f.name, src_val)}: '{canon}' is not a {f.name} value (use one of {', '.join(f.values)})"
                    )
                out[str(src_val).strip().upper()] = str(canon)
            values[f.name] = out
            if f.name in constants and constants[f.name].strip().upper() not in out:
                raise SettingsError(
                    f"{where('sources', name, 'columns', f.name)}: constant {f.name} '{constants[f.name]}' is not mapped "
                    f"(values.{f.name} maps: {', '.join(out) or 'nothing'}; the contract's values are {', '.join(f.values)})"
                )
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
        identifiers[kind] = IdRule(
            kind=kind,
            prefixes=tuple(str(p).upper() for p in rule.get("prefixes", [])),
            line_suffix=suffix,
            strip_zeros=bool(rule.get("strip_zeros", True)),
        )

    rv = raw.get("reviews") or {}
    review_times = tuple(sorted(_parse_time(t, where("reviews", "times", i)) for i, t in enumerate(rv.get("times") or [])))
    review_days = set()
    for d in rv.get("days", list(WEEKDAYS[:5])):
        d = str(d).strip().lower()[:3]
        if d not in WEEKDAYS:
            raise SettingsError(f"{where('reviews', 'days')}: '{d}' is not a weekday (mon..sun)")
        review_days.add(WEEKDAYS.index(d))

    return Settings(
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
    )
