"""How current each extract is at the review time: its as-of time, its age, and whether it is stale.

The rules are stated once, in docs/extracts.md ("How current the extracts are"). In short, per source:

* its **data time** is the newest value of its as-of fields (`DATA_FIELDS`, or the fields the site names
  under `freshness.as_of`), read from the loaded table before the as-of cut (asof.py);
* its **file time** is the time in its file name when `file:` is a pattern with a time
  (`wms_tasks_%Y%m%d_%H%M.csv`), else the file's modification time;
* its **as-of time** is the file-name time when there is one, else the data time when the source has one,
  else the modification time (`freshness.as_of.<source>: file` judges a quiet source by its file);
* its **age** is the review time minus the as-of time (0 for an extract newer than the review: the as-of
  rules cut it back), and its **status** `fresh`, `stale` (older than `freshness.max_age.<source>`) or
  `earlier_day` (stale and older than the start of the review's operating day, `policy.day_starts_at`):
  a review run refuses that unless it is told to go on (`--allow-stale`), and then it is marked stale.

`record` adds the figures to `load_report` (columns at its end), `check` refuses an earlier day's extract,
`describe` / `stale_lines` are the report's words (history/snapshots.py `stale_sources` reads a stored review's
stale sources back, for the board), `fits_review` tells `handoff schedule` whether a past review's folder
holds extracts of that review at all, and `apply_to_drafts` holds back or marks the drafts of a stale review.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from handoff_lib.errors import SettingsError, StaleExtractError

from .contract import ENTITIES
from .files import is_file_pattern, modified, name_pattern, name_time
from .settings import Settings, day_starts_at, operating_day

# entity -> the timestamp fields whose newest value is the data's as-of time (what the source last saw happen).
# Sources not listed (order lines, inventory, account instructions) carry no event time: their file tells.
DATA_FIELDS: dict[str, tuple[str, ...]] = {
    "orders": ("ordered_at", "released_at", "cancelled_at"),
    "pick_tasks": ("updated_at",),
    "pack_events": ("event_at",),
    "holds": ("placed_at", "released_at"),
    "shipments": ("label_created_at", "manifested_at", "handed_off_at"),
    "cases": ("opened_at", "closed_at"),
}
SYSTEM_NAMES = {"oms": "OMS", "wms": "WMS", "carrier": "carrier", "crm": "CRM"}
STALE = ("stale", "earlier_day")  # statuses that make a review stale
ON_STALE = ("hold", "mark")  # drafts (and later owner queues) of a stale review: held back, or sent marked stale
SETTING_KEYS = ("max_age", "as_of", "on_stale")

# Columns added at the end of load_report (after the loader's own).
REPORT_COLUMNS = (
    ("data_as_of", "TIMESTAMPTZ"),  # newest value of the source's as-of fields
    ("file_as_of", "TIMESTAMPTZ"),  # the time in the file name, else its modification time
    ("as_of", "TIMESTAMPTZ"),  # the one judged
    ("as_of_basis", "VARCHAR"),  # e.g. 'updated_at', 'file name', 'file modified'
    ("age_minutes", "DOUBLE"),  # review time - as_of, 0 when the extract is newer than the review
    ("max_age_minutes", "DOUBLE"),  # freshness.max_age of the source; NULL = no limit
    ("freshness", "VARCHAR"),  # fresh | stale | earlier_day; NULL for a source the site does not supply
)



@dataclass(frozen=True)
class FreshnessSettings:
    """The site's `freshness:` block (docs/extracts.md, "How current the extracts are")."""

    max_age: dict[str, float | None] = field(default_factory=dict)  # entity (or 'default') -> minutes; None = no limit
    as_of: dict[str, str | tuple[str, ...]] = field(default_factory=dict)  # entity -> 'file' | 'data' | fields
    on_stale: str = "hold"  # drafts of a stale review: 'hold' (held back) | 'mark' (kept, marked stale)

    def limit(self, entity: str) -> float | None:
        return self.max_age.get(entity, self.max_age.get("default"))


# ------------------------------------------------------------------------------------------------ settings


def freshness_settings(settings: Settings) -> FreshnessSettings:
    """The validated `freshness:` block of the site file; every error names its line."""
    raw = settings.raw.get("freshness")
    if raw is None:
        return FreshnessSettings()
    if not isinstance(raw, dict):
        raise SettingsError(f"{settings.where('freshness')}: freshness must be a mapping ({', '.join(k + ':' for k in SETTING_KEYS)})")
    for key in raw:
        if key not in SETTING_KEYS:
            raise SettingsError(f"{settings.where('freshness', key)}: unknown setting freshness.{key} (known: {', '.join(SETTING_KEYS)})")
    max_age: dict[str, float | None] = {}
    ages = raw.get("max_age") or {}
    if not isinstance(ages, dict):
        raise SettingsError(f"{settings.where('freshness', 'max_age')}: freshness.max_age maps a source to an age, e.g. {{pick_tasks: 30 min}}")
    for name, value in ages.items():
        name = str(name)
        if name != "default" and name not in ENTITIES:
            raise SettingsError(
                f"{settings.where('freshness', 'max_age', name)}: freshness.max_age.{name}: unknown source (one of "
                f"{', '.join(ENTITIES)}, or default for the others)"
            )
        max_age[name] = parse_age(value, f"{settings.where('freshness', 'max_age', name)}: freshness.max_age.{name}")
    as_of: dict[str, str | tuple[str, ...]] = {}
    bases = raw.get("as_of") or {}
    if not isinstance(bases, dict):
        raise SettingsError(f"{settings.where('freshness', 'as_of')}: freshness.as_of maps a source to file, data or a list of its fields")
    for name, value in bases.items():
        at = settings.where("freshness", "as_of", name)
        if name not in ENTITIES:
            raise SettingsError(f"{at}: freshness.as_of.{name}: unknown source (one of {', '.join(ENTITIES)})")
        stamps = [f.name for f in ENTITIES[name].fields if f.type == "timestamp"]
        if isinstance(value, str) and value in ("file", "data"):
            if value == "data" and name not in DATA_FIELDS:
                raise SettingsError(f"{at}: {name} has no default as-of fields: name them (one or more of {', '.join(stamps) or 'none'}) or use file")
            as_of[name] = value
            continue
        fields = value if isinstance(value, list) else [value]
        bad = [str(f) for f in fields if str(f) not in stamps]
        if not fields or bad:
            raise SettingsError(
                f"{at}: freshness.as_of.{name} is file, data or a list of {name}'s timestamp fields "
                f"({', '.join(stamps) or 'it has none: use file'}), not {value!r}"
            )
        as_of[name] = tuple(str(f) for f in fields)
    on_stale = str(raw.get("on_stale", "hold")).strip().lower()
    if on_stale not in ON_STALE:
        raise SettingsError(
            f"{settings.where('freshness', 'on_stale')}: freshness.on_stale is hold (drafts of a stale review are held back) or "
            f"mark (kept, marked stale), not {raw.get('on_stale')!r}"
        )
    return FreshnessSettings(max_age, as_of, on_stale)


_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*(m|min|mins|minutes?|h|hrs?|hours?|d|days?)?", re.IGNORECASE)


def parse_age(value: Any, what: str) -> float | None:
    """'30 min', '2 h', '1.5 h', '1 d' or a number of minutes -> minutes; 'none' -> None (no limit)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "no limit")):
        return None
    if isinstance(value, bool):
        m = None
    elif isinstance(value, (int, float)):
        minutes = float(value)
        m = True
    else:
        m = _AGE.fullmatch(str(value).strip())
        if m:
            unit = (m.group(2) or "min").lower()[0]
            minutes = float(m.group(1)) * {"m": 1, "h": 60, "d": 1440}[unit]
    if not m or minutes <= 0:
        raise SettingsError(f"{what}: expected an age such as 30 min, 2 h or 1 d (or none), not {value!r}")
    return minutes


# ------------------------------------------------------------------------------------------------ judging


def operating_day_bounds(settings: Settings, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Start of the review's operating day (`policy.day_starts_at`) and of the next one, site local."""
    starts_at = day_starts_at(settings)
    day = operating_day(settings, at, starts_at)
    start = dt.datetime.combine(day, starts_at, settings.tz)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), starts_at, settings.tz)


def label(entity: str) -> str:
    """'WMS pick tasks', 'OMS orders', 'carrier shipments'."""
    return f"{SYSTEM_NAMES.get(ENTITIES[entity].system, ENTITIES[entity].system)} {entity.replace('_', ' ')}"


def assess(con: duckdb.DuckDBPyConnection, settings: Settings, at: dt.datetime, entities: list[str] | None = None) -> pd.DataFrame:
    """One row per source (or per `entities`): source, label, file, data_as_of, data_field, file_as_of, file_basis,
    as_of, as_of_basis, age_minutes, max_age_minutes, freshness, later_day (its as-of is in an operating day
    after the review's). Data times come from the entity tables loaded in `con` (a source whose table is not
    there is judged by its file)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=settings.tz)
    fs = freshness_settings(settings)
    day_start, next_day = operating_day_bounds(settings, at)
    have = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()}
    rows = []
    for entity, spec in settings.sources.items():
        if entities is not None and entity not in entities:
            continue
        row: dict[str, Any] = {"source": entity, "label": label(entity), "file": spec.file, "data_as_of": None, "data_field": None,
                               "file_as_of": None, "file_basis": None, "as_of": None, "as_of_basis": None, "age_minutes": None,
                               "max_age_minutes": fs.limit(entity), "freshness": None, "later_day": False}
        if spec.file is None:
            rows.append(row)
            continue
        path = settings.source_path(entity)
        if getattr(spec, "database", None) is not None and "db_reads" in have:  # a database source: when its query ran
            ran = con.execute("SELECT max(started_at) FROM db_reads WHERE source = $s", {"s": entity}).fetchall()[0][0]
            row["file_as_of"], row["file_basis"] = (ran, "query ran") if ran is not None else (None, None)
        elif path is not None and path.is_file():
            row["file"] = str(path.relative_to(settings.data_folder)) if path.is_relative_to(settings.data_folder) else path.name
            pattern = settings.file_patterns.get(entity, spec.file if is_file_pattern(spec.file) else None)
            stamped = name_time(pattern, path.name, settings.tz) if pattern else None
            row["file_as_of"], row["file_basis"] = (stamped, "file name") if stamped else (modified(path, settings.tz), "file modified")
        basis = fs.as_of.get(entity, "data")
        fields = basis if isinstance(basis, tuple) else DATA_FIELDS.get(entity, ())
        if entity in have and fields and basis != "file":
            row["data_as_of"], row["data_field"] = _data_time(con, entity, fields, settings)
        if row["file_basis"] == "file name" or basis == "file" or row["data_as_of"] is None:
            row["as_of"], row["as_of_basis"] = row["file_as_of"], row["file_basis"]
        else:
            row["as_of"], row["as_of_basis"] = row["data_as_of"], row["data_field"]
        if row["as_of"] is not None:
            age = max(0.0, (at - row["as_of"]).total_seconds() / 60)
            row["age_minutes"] = round(age, 1)
            limit = row["max_age_minutes"]
            past_limit = limit is not None and age > limit
            earlier = row["as_of"] < day_start and (limit is None or past_limit)
            row["freshness"] = "earlier_day" if earlier else "stale" if past_limit else "fresh"
            row["later_day"] = row["as_of"] >= next_day and row["as_of_basis"] != "file modified"
        rows.append(row)
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else None)


def _data_time(con: duckdb.DuckDBPyConnection, entity: str, fields: tuple[str, ...], settings: Settings) -> tuple[Any, Any]:
    cols = {r[0] for r in con.execute(f"DESCRIBE {entity}").fetchall()}
    fields = tuple(f for f in fields if f in cols)
    if not fields:
        return None, None
    values = con.execute(f"SELECT {', '.join(f'max({f})' for f in fields)} FROM {entity}").fetchone()
    best = [(v, f) for v, f in zip(values, fields) if v is not None]
    if not best:
        return None, None
    value, name = max(best, key=lambda x: x[0])
    return pd.Timestamp(value).tz_convert(settings.tz).to_pydatetime(), name


def record(con: duckdb.DuckDBPyConnection, settings: Settings, at: dt.datetime) -> pd.DataFrame:
    """Judge every source loaded in `con` as of the review time `at` and write the figures into load_report's
    freshness columns (added at its end when missing); returns `assess`'s frame."""
    frame = assess(con, settings, at)
    for name, typ in REPORT_COLUMNS:
        con.execute(f'ALTER TABLE load_report ADD COLUMN IF NOT EXISTS "{name}" {typ}')
    sets = ", ".join(f'"{n}" = f."{n}"' for n, _ in REPORT_COLUMNS)
    upd = frame[["source", *[n for n, _ in REPORT_COLUMNS]]].astype(object).where(frame.notna(), None)
    con.register("_hx_fresh", upd)
    try:
        con.execute(
            f"""UPDATE load_report SET {sets}
                FROM (SELECT source, CAST(data_as_of AS TIMESTAMPTZ) AS data_as_of, CAST(file_as_of AS TIMESTAMPTZ) AS file_as_of,
                             CAST(as_of AS TIMESTAMPTZ) AS as_of, CAST(as_of_basis AS VARCHAR) AS as_of_basis,
                             CAST(age_minutes AS DOUBLE) AS age_minutes, CAST(max_age_minutes AS DOUBLE) AS max_age_minutes,
                             CAST(freshness AS VARCHAR) AS freshness FROM _hx_fresh) f
                WHERE load_report.source = f.source"""
        )
    finally:
        con.unregister("_hx_fresh")
    return frame


def problems(frame: pd.DataFrame, settings: Settings, at: dt.datetime, later_too: bool = False, brief: bool = False) -> list[str]:
    """Why the extracts are not of the review `at`, one phrase per source: its as-of time is before the review's
    operating day and past its limit; with `later_too` (a past review), also: its data or file name is of a later
    operating day. Empty when every source is of the review's day. `brief`: source and as-of time only."""
    bad = frame[(frame["freshness"] == "earlier_day") | (frame["later_day"].astype(bool) if later_too else False)]
    named = freshness_settings(settings).max_age
    out = []
    for r in bad.to_dict(orient="records"):
        what = f"{r['source']} ({r['file']}) as of {_stamp(r['as_of'], settings)}"
        if brief:
            out.append(what)
            continue
        what += f" ({_basis(r['as_of_basis'])})"
        if r["freshness"] == "earlier_day":
            key = r["source"] if r["source"] in named else "default"
            limit = (f"past freshness.max_age.{key} {fmt_age(r['max_age_minutes'])} ({settings.where('freshness', 'max_age', key)})"
                     if _known(r["max_age_minutes"]) else f"no freshness.max_age.{r['source']} set")
            out.append(f"{what}, {fmt_age(r['age_minutes'])} old, {limit}")
        else:
            out.append(f"{what}, of a later operating day")
    return out


def _day(settings: Settings, at: dt.datetime) -> str:
    start, end = operating_day_bounds(settings, at)
    return (f"its operating day runs from {start:%a %d %b %Y %H:%M} to {end:%a %d %b %H:%M} (policy.day_starts_at, "
            f"{settings.where('policy', 'day_starts_at')})")


def check(frame: pd.DataFrame, settings: Settings, at: dt.datetime) -> None:
    """Raise StaleExtractError naming each source whose as-of time is before the review's operating day and past
    its limit (`problems`): the review would present an earlier day as the current picture."""
    found = problems(frame, settings, at)
    if found:
        raise StaleExtractError(
            f"extracts of an earlier day for the review {at:%Y-%m-%d %H:%M} ({_day(settings, at)}): " + "; ".join(found)
            + ". The export may not have run: review once it has, or give --allow-stale to review these extracts anyway, "
            "marked stale"
        )


def fits_review(settings: Settings, at: dt.datetime) -> str | None:
    """Whether the folder a past review would read holds extracts of that review: None when it does, else why
    not (its folder does not exist, or its sources of another operating day: `problems` with later days too).
    Loads only the sources judged by their data, into a scratch connection; the review makes its own checks."""
    from handoff_lib.db import connect

    from .extracts import load_source

    settings = settings.for_review(at)
    if not settings.data_folder.is_dir():
        return f"folder {settings.data_folder} does not exist"
    con = connect(settings)
    try:
        for entity in judged_by_data(settings):
            load_source(con, settings, entity, as_of=at)
        found = problems(assess(con, settings, at), settings, at, later_too=True, brief=True)
    finally:
        con.close()
    return f"{settings.data_folder} holds {', '.join(found)}; {_day(settings, at)}" if found else None


def judged_by_data(settings: Settings) -> list[str]:
    """The sources whose as-of time comes from their data (not from a time in their file name, nor from the
    file by the site's choice)."""
    fs = freshness_settings(settings)
    out = []
    for entity, spec in settings.sources.items():
        basis = fs.as_of.get(entity, "data")
        pattern = settings.file_patterns.get(entity, spec.file if is_file_pattern(spec.file) else None)
        if spec.file is None or basis == "file" or (pattern and name_pattern(Path(pattern).name)[1]):
            continue
        if isinstance(basis, tuple) or entity in DATA_FIELDS:
            out.append(entity)
    return out


# ------------------------------------------------------------------------------------------------ words


def fmt_age(minutes: float | None) -> str:
    """3 min, 1 h 05 min, 24 h 02 min, 2 d 3 h."""
    if minutes is None or pd.isna(minutes):
        return "no limit"
    m = round(float(minutes))
    if m < 60:
        return f"{m} min"
    if m < 2880:  # up to two days in hours: "24 h 02 min" says more than "1 d"
        return f"{m // 60} h {m % 60:02d} min" if m % 60 else f"{m // 60} h"
    return f"{m // 1440} d {m % 1440 // 60} h" if m % 1440 // 60 else f"{m // 1440} d"


def _stamp(value: Any, settings: Settings, review: dt.datetime | None = None) -> str:
    t = pd.Timestamp(value).tz_convert(settings.tz)
    if review is not None and t.date() == review.astimezone(settings.tz).date():
        return f"{t:%H:%M}"
    return f"{t:%a %d %b %Y %H:%M}"


def _known(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def _basis(basis: Any) -> str:
    return str(basis) if basis in ("file name", "file modified") else f"newest {basis}"


def describe(row: dict, settings: Settings, at: dt.datetime) -> str:
    """'WMS pick tasks as of 08:57, 3 min before the review' (+ the limit when it is past, or 'after the review')."""
    if row.get("as_of") is None or pd.isna(row.get("as_of")):
        return f"{row['label']}: not supplied" if row.get("file") is None else f"{row['label']}: as-of time unknown"
    by_file = row.get("as_of_basis") in ("file name", "file modified")
    text = f"{row['label']} as of {_stamp(row['as_of'], settings, at)}" + (f" ({row['as_of_basis']})" if by_file else "")
    if pd.Timestamp(row["as_of"]) > pd.Timestamp(at):
        return text + (", after the review" if by_file else ", after the review (cut back to it)")
    text += f", {fmt_age(row['age_minutes'])} before the review" if row["age_minutes"] >= 0.5 else ", at the review time"
    if row.get("freshness") in STALE:
        notes = [f"limit {fmt_age(row['max_age_minutes'])}"] if _known(row.get("max_age_minutes")) else []
        notes += ["an earlier operating day"] if row.get("freshness") == "earlier_day" else []
        text += f" ({'; '.join(notes)})"
    return text


def stale_rows(frame: pd.DataFrame) -> list[dict]:
    """The stale sources of an `assess` frame or a load report, oldest first."""
    if "freshness" not in frame.columns:
        return []
    rows = frame[frame["freshness"].isin(STALE)].sort_values("age_minutes", ascending=False)
    return [r | {"label": r.get("label") or label(r["source"])} for r in rows.to_dict(orient="records")]


def stale_lines(frame: pd.DataFrame, settings: Settings, at: dt.datetime) -> list[str]:
    """One sentence per stale source, for the headline: 'WMS pick tasks as of Tue 24 Nov 2026 15:59, 17 h 01 min
    before the review (limit 30 min)'."""
    return [describe(r, settings, at) for r in stale_rows(frame)]


# ------------------------------------------------------------------------------------------------ drafts


def apply_to_drafts(drafts: pd.DataFrame, stale: list[str], on_stale: str) -> pd.DataFrame:
    """The drafts of a review with columns `stale` (built on stale extracts) and `held_back` (not to be sent:
    freshness.on_stale: hold). With `mark`, each draft says so on its second line. `stale`: stale_lines."""
    out = drafts.copy()
    out["stale"] = bool(stale)
    out["held_back"] = bool(stale) and on_stale == "hold"
    if stale and on_stale == "mark" and len(out):
        note = "STALE EXTRACTS - check before sending: " + "; ".join(stale) + "."
        out["draft"] = out["draft"].map(lambda d: _second_line(str(d), note))
    return out


def _second_line(text: str, line: str) -> str:
    head, sep, rest = text.partition("\n")
    return f"{head}\n{line}{sep}{rest}" if sep else f"{head}\n{line}"


def headline(df: pd.DataFrame, settings: Settings, at: dt.datetime) -> str | None:
    """The first-screen sentence for a stale review ('STALE: WMS pick tasks as of 15:59, 17 h 01 min before the
    review (limit 30 min).'), from `stale_sources` or a load report; None when nothing is stale."""
    lines = stale_lines(df, settings, at)
    return ("STALE: " + "; ".join(lines) + ".") if lines else None
