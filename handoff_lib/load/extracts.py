"""Read each source extract per the site mapping, type it in DuckDB, and keep every rejected row.

`load_extracts(con, settings)` fills, in `con`:

* one table per contract entity (`orders`, `order_lines`, ...): the canonical fields in contract
  order with DuckDB types, plus `_file` and `_line` (where the record is in its file: the 1-based
  physical line for CSV, header = line 1; the sheet row for XLSX; the 1-based row for Parquet);
* `rejects(source, file, line, "column", value, reason, raw)`: one row per rejected record;
* `load_report(source, file, format, rows_read, rows_accepted, rows_rejected, rows_other_entity, extra_columns,
  sha256, ...)`; rows_read = rows_accepted + rows_rejected + rows_other_entity holds for every file, and is
  checked (rows_other_entity: rows the source's `where:` leaves to other entities of a shared file).
  A database source (dbsource.py) has its label as `file`, `database` as format and its row fingerprint as sha256.

A problem with a whole file or with the site mapping (missing file or column, 0-byte file,
unmapped status code) stops the load with an ExtractError naming the file and the setting to fix.
A problem with a row rejects that row and keeps it. Typing is set-based SQL: no loop over rows.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import difflib
import hashlib
import io
import re
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from handoff_lib.errors import ExtractError, MissingColumnError, UnmappedValueError

from .columns import REJECT_COLUMNS, _cell_text, _match_columns, _Source
from .contract import ENTITIES, SQL_TYPES, Entity, Field
from .dbsource import read_database
from .settings import Condition, DeriveRule, NumberFormat, Settings, SourceSpec

# action: 'row' = the record was rejected whole (its identity is unreadable, broken CSV structure, a duplicate);
#         'value' = the value was bad and is NULL in the table, the record stays;
#         'flag' = the value is kept but flagged (decoded as Windows-1252, events out of order)
REJECTS_DDL = """CREATE TABLE IF NOT EXISTS rejects (
    source VARCHAR, file VARCHAR, line BIGINT, "column" VARCHAR, value VARCHAR, reason VARCHAR, raw VARCHAR, action VARCHAR)"""
REPORT_DDL = """CREATE TABLE IF NOT EXISTS load_report (
    source VARCHAR, file VARCHAR, format VARCHAR, rows_read BIGINT, rows_accepted BIGINT,
    rows_rejected BIGINT, extra_columns VARCHAR, sha256 VARCHAR, values_nulled BIGINT, values_flagged BIGINT,
    severity VARCHAR, rows_other_entity BIGINT)"""
COLUMNS_DDL = """CREATE TABLE IF NOT EXISTS load_columns (
    source VARCHAR, file VARCHAR, "column" VARCHAR, values_nulled BIGINT, values_flagged BIGINT, share_pct DOUBLE,
    top_reason VARCHAR)"""
SEVERITIES = ("ok", "info", "warning", "error")  # docs/extracts.md: duplicates / flags = info, values or rows lost = warning

WHITESPACE = " \t\r\n\u00a0"  # trimmed before a value is judged blank or parsed (ids and text keep it)
EDGE_CODES = "(9, 10, 12, 13, 32, 160)"  # tab, LF, FF, CR, space, NBSP (RE2's [\s\x{00A0}]): trim() is worth calling
INT_RE = r"[+-]?[0-9]+(\.0*)?"  # 5, +5, 5.0, 5.
NUM_RE = r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)"  # plain decimal notation: no exponent, no separators
ISO_DATE_RE = r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
VALUE_IN_REASON = 80  # characters of a bad value quoted in its reason
MAX_VALUE = 200  # characters of a bad value kept in rejects.value
CSV_BUFFER = 16 << 20  # bytes DuckDB's CSV reader reads at a time: measured ~1/5 less CPU than its default

# Checks across the fields of one row, on the typed values p_<field>: entity -> (column blamed,
# SQL condition, SQL reason). They see a row only when all its fields parsed.
ROW_RULES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "pick_tasks": (
        (
            "qty_picked",
            "p_qty_picked > p_qty_required",
            "'qty_picked ' || p_qty_picked || ' more than qty_required ' || p_qty_required",
        ),
    ),
}

# DuckDB's structural CSV error types -> the start of the reject reason.
STRUCTURAL_REASONS = {
    "TOO MANY COLUMNS": "too many columns",
    "MISSING COLUMNS": "too few columns",
    "UNQUOTED VALUE": "unterminated or misplaced quote",
    "INVALID ENCODING": "invalid UTF-8 bytes",
    "INVALID UNICODE": "invalid UTF-8 bytes",
    "LINE SIZE OVER MAXIMUM": "line longer than the maximum line size (2 MB)",
}

TMP = "_hx_"  # prefix of the temporary tables and views of one load (dropped afterwards)
# The typed rows, good and rejected, in file order: not a temporary table, because once the
# rejected rows are moved out and the check columns dropped it is renamed to the entity table
# (no second copy of the rows).
TYPED = f"{TMP}typed"



# --------------------------------------------------------------------------------------------
# public API


def load_extracts(
    con: duckdb.DuckDBPyConnection, settings: Settings, progress: bool = False, as_of: dt.datetime | None = None
) -> pd.DataFrame:
    """Load every source of the site into `con` (fresh `rejects`, `load_report` and `load_columns` tables);
    returns the load report, one row per source in contract order. `as_of` is the review time the derive
    rules' `after review` compares with (default: now)."""
    from tqdm.auto import tqdm

    for table in ("rejects", "load_report", "load_columns"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    names = list(settings.sources)
    bar = tqdm(names, desc="loading extracts", unit="source", disable=not progress)
    for entity in bar:
        bar.set_postfix_str(entity)
        load_source(con, settings, entity, as_of=as_of)
    return con.execute("SELECT * FROM load_report ORDER BY list_position($names, source)", {"names": names}).df()


def load_source(con: duckdb.DuckDBPyConnection, settings: Settings, entity: str, as_of: dt.datetime | None = None) -> dict:
    """Load one entity into table `entity` and replace its rows in `rejects`, `load_report` and
    `load_columns`; returns its load-report row as a dict. A source the site does not supply loads empty.
    Raises ExtractError when the file cannot be read as mapped, or when so much of it is bad that the
    mapping, not the data, must be wrong (docs/extracts.md, "What happens to bad input")."""
    ent = ENTITIES[entity]
    spec = settings.sources[entity]
    for ddl in (REJECTS_DDL, REPORT_DDL, COLUMNS_DDL):
        con.execute(ddl)
    for table in ("rejects", "load_report", "load_columns"):
        con.execute(f"DELETE FROM {table} WHERE source = $s", {"s": entity})
    if _scalar(con, "SELECT count(*) FROM duckdb_views() WHERE view_name = $e AND NOT temporary AND NOT internal", {"e": entity}):
        con.execute(f"DROP VIEW {entity}")  # after a crosswalk a linked source is a view over linked_<entity>
    if spec.database is not None:  # a query or table of a database (dbsource.py): no file to find or hash
        return _load(con, settings, ent, spec, None, str(spec.file), as_of)
    path = settings.source_path(entity)
    where_file = settings.where("sources", entity, "file")
    if path is None or (not path.exists() and not ent.required_file):
        if path is not None:
            warnings.warn(f"{spec.file}: not found at {path}; {entity} is optional and loads empty ({where_file})", stacklevel=2)
        _create_empty(con, ent)
        return _report(con, entity, spec.file, spec.format, 0, 0, 0, [], None)
    file = str(spec.file)
    if not path.exists():
        raise ExtractError(
            f"{file}: file not found at {path} (sources.{entity}.file, {where_file}); the {entity} extract is "
            f"required: export it into {settings.data_folder} or correct the file name"
        )
    if not path.is_file():
        raise ExtractError(f"{file}: {path} is not a file (sources.{entity}.file, {where_file})")
    if path.stat().st_size == 0:
        raise ExtractError(
            f"{file}: file is empty (0 bytes), expected a header with columns {_required_names(ent, spec)} "
            f"(sources.{entity}.file, {where_file}); re-export it"
        )
    return _load(con, settings, ent, spec, path, file, as_of)


def _load(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    ent: Entity,
    spec: SourceSpec,
    path: Path | None,
    file: str,
    as_of: dt.datetime | None = None,
) -> dict:
    """Read, type, check and write one source (`path` None: a database source); its load-report row."""
    entity = ent.name
    review_at = as_of or dt.datetime.now(dt.UTC)
    # The file's hash is computed beside DuckDB's work (hashlib releases the GIL).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff-sha256") as pool:
        sha = pool.submit(_sha256, path) if path is not None else None
        with _session(con, settings.timezone), tempfile.TemporaryDirectory(prefix="handoff-") as tmp:
            try:
                src = _read(con, settings, ent, spec, path, Path(tmp))
                src.rule_cols = _match_rule_columns(src.names, ent, spec, settings)
                _type_rows(con, ent, spec, settings, src, file, review_at)
                if spec.where:
                    src.rows_other = _count_other(con, spec, src)
                _check_constants(con, ent, spec, settings)
                n_dups = _find_duplicates(con, ent, spec)
                _check_systemic(con, ent, spec, settings, src, file)
                counts = _write(con, ent, file, src, n_dups)
            finally:
                _drop_temp(con)
                con.execute(f"DROP TABLE IF EXISTS {TYPED}")  # left over only when the load failed
        accepted, rejected, other = counts["accepted"], counts["rejected"], src.rows_other
        if src.rows_read != accepted + rejected + other:  # the promise of this module: no row lost, none counted twice
            raise ExtractError(
                f"{file}: internal error, rows read {src.rows_read} != accepted {accepted} + rejected {rejected} + other entity {other}"
            )
        used = set(src.cols.values()) | set(src.rule_cols.values())
        extras = [n for i, n in enumerate(src.names) if i not in used]
        severity = _severity(con, entity)
        fingerprint = sha.result() if sha is not None else src.fingerprint
        return _report(
            con, entity, file, spec.format, src.rows_read, accepted, rejected, extras, fingerprint,
            counts["nulled"], counts["flagged"], severity, other,
        )


# --------------------------------------------------------------------------------------------
# reading: every format ends in _hx_src(c0.., _line) of VARCHAR values


def _read(con: duckdb.DuckDBPyConnection, settings: Settings, ent: Entity, spec: SourceSpec, path: Path | None, tmp: Path) -> _Source:
    if spec.database is not None:
        return read_database(con, settings, ent, spec)
    if spec.format == "csv":
        return _read_csv(con, settings, ent, spec, path, tmp)
    if spec.format == "parquet":
        return _read_parquet(con, settings, ent, spec, path)
    if spec.format == "xlsx":
        return _read_xlsx(con, settings, ent, spec, path)
    raise ExtractError(f"{spec.file}: unknown format '{spec.format}' ({settings.where('sources', ent.name, 'format')})")


def _read_csv(
    con: duckdb.DuckDBPyConnection, settings: Settings, ent: Entity, spec: SourceSpec, path: Path, tmp: Path
) -> _Source:
    """DuckDB's CSV reader with a fixed dialect (no sniffing); broken records land in its
    rejects tables, which are temporary: they are turned into our rejects before the load ends."""
    file = str(spec.file)
    delim = _delimiter(spec, settings)
    read_path = _utf8_copy(path, spec, settings, tmp)
    skip = max(spec.header_row, 1) - 1
    names, header_lines = _csv_header(read_path, delim, skip)
    if not names:
        raise ExtractError(
            f"{file}: no header line found, expected columns {_required_names(ent, spec)} "
            f"(sources.{ent.name}, {settings.where('sources', ent.name)})"
        )
    cols = _match_columns(names, ent, spec, settings)  # before reading the rows: a wrong mapping fails fast
    n = len(names)
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(n)) + "}"
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="handoff-lines") as pool:
        scanning = pool.submit(_scan_lines, read_path)  # beside DuckDB's read (numpy releases the GIL)
        try:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE {TMP}csv AS
                    SELECT * FROM read_csv($path, columns = {columns}, auto_detect = false, header = true, skip = $skip,
                                           delim = $delim, quote = '"', escape = '"', buffer_size = {CSV_BUFFER},
                                           store_rejects = true, rejects_table = '{TMP}reject_errors', rejects_scan = '{TMP}reject_scans')""",
                {"path": str(read_path), "skip": skip, "delim": delim},
            )
        except duckdb.Error as exc:
            raise ExtractError(
                f"{file}: cannot be read as CSV ({_first_line(exc)}); check sources.{ent.name} ({settings.where('sources', ent.name)})"
            ) from None
        scan = scanning.result()
    n_rows = _scalar(con, f"SELECT count(*) FROM {TMP}csv")
    errors = con.execute(  # one record can fail several ways: keep its first error
        f"""SELECT line, line_byte_position, column_name, error_type, csv_line, error_message
            FROM (SELECT *, row_number() OVER (PARTITION BY line ORDER BY column_idx) AS k FROM {TMP}reject_errors)
            WHERE k = 1 ORDER BY line"""
    ).df()
    first = header_lines + 1  # the first physical line after the header
    rej_spans = np.array([_span(s) for s in errors["csv_line"]], dtype=np.int64)
    rej_pos = errors["line_byte_position"].to_numpy(np.int64)
    blank = scan.blank[scan.blank >= first]
    if len(errors) == 0 and len(blank) == 0 and scan.one_line_per_row(header_lines, n_rows):
        rej_lines, row_lines = np.searchsorted(scan.newlines, rej_pos, side="left") + 1, None
    else:
        multi = con.execute(_multiline_sql(n)).fetchnumpy()
        rej_lines, row_lines = _physical_lines(scan, first, n_rows, multi["rid"], multi["span"], rej_pos, rej_spans, blank)
    # Most files need no line map: then _hx_src is a view, and the rows are not copied again.
    if row_lines is None:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {TMP}src AS SELECT *, {int(first)} + rowid AS _line FROM {TMP}csv")
    else:
        con.register(f"{TMP}lines_df", pd.DataFrame({"_line": row_lines}))
        con.execute(f"CREATE OR REPLACE TEMP TABLE {TMP}lines AS SELECT _line FROM {TMP}lines_df")
        con.unregister(f"{TMP}lines_df")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {TMP}src AS SELECT * FROM {TMP}csv POSITIONAL JOIN {TMP}lines")
    bad_bytes = errors["error_type"].isin(["INVALID ENCODING", "INVALID UNICODE"]).to_numpy()
    fixed, flags, repaired = (
        _decode_cp1252(read_path, errors.loc[bad_bytes], rej_lines[bad_bytes], rej_spans[bad_bytes], scan.newlines, names, delim)
        if bad_bytes.any()
        else ([], None, np.zeros(0, dtype=bool))
    )
    keep = np.ones(len(errors), dtype=bool)
    keep[np.flatnonzero(bad_bytes)[repaired]] = False  # rows read again as Windows-1252 are no longer rejects
    structural = _structural_rejects(
        errors.loc[keep].reset_index(drop=True), rej_lines[keep], rej_spans[keep], names, read_path, settings, ent.name
    )
    if fixed:  # the rows read again join the others, in file order
        con.register(f"{TMP}fixed_df", pd.DataFrame(fixed, columns=[*(f"c{i}" for i in range(n)), "_line"]))
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {TMP}src2 AS
                SELECT * FROM (SELECT * FROM {TMP}src UNION ALL SELECT * FROM {TMP}fixed_df) ORDER BY _line"""
        )
        con.unregister(f"{TMP}fixed_df")
        con.execute(f"DROP {'VIEW' if row_lines is None else 'TABLE'} {TMP}src")
        con.execute(f"ALTER TABLE {TMP}src2 RENAME TO {TMP}src")
    return _Source(
        names,
        cols,
        n_rows + len(fixed) + len(structural),
        structural,
        delimiter=delim,
        first_line=int(first) if row_lines is None and not fixed else None,
        flags=flags,
    )


def _cp1252(data: bytes) -> str:
    """Windows-1252 text; the five bytes it leaves undefined are read as Latin-1 (never an error)."""
    return data.decode("cp1252", errors="handoff_latin1")


codecs.register_error("handoff_latin1", lambda e: (e.object[e.start : e.end].decode("latin-1"), e.end))


def _decode_cp1252(
    path: Path,
    errors: pd.DataFrame,
    lines: np.ndarray,
    spans: np.ndarray,
    newlines: np.ndarray,
    names: list[str],
    delim: str,
) -> tuple[list[list], pd.DataFrame, np.ndarray]:
    """Records DuckDB refused for bytes that are not UTF-8, read again: each value that is not valid UTF-8
    is decoded as Windows-1252 (what such a byte almost always is) and flagged; valid values stay as they
    are. Returns (rows as [c0.., _line], the flags, which records were read again). A record that still
    does not have the header's columns stays a reject."""
    rows, flags, done = [], [], np.zeros(len(errors), dtype=bool)
    with open(path, "rb") as fh:
        data = fh.read()
    for i, (line, span) in enumerate(zip(lines, spans)):
        start = int(newlines[int(line) - 2]) + 1 if line > 1 else 0  # the byte after the newline ending the line before
        last = int(line) + int(span) - 2  # index of the newline ending the record's last physical line
        end = int(newlines[last]) if last < len(newlines) else len(data)
        raw = data[start:end].rstrip(b"\r")
        text = raw.decode("utf-8", errors="surrogateescape")
        record = next(csv.reader(io.StringIO(text, newline=""), delimiter=delim, quotechar='"', doublequote=True), [])
        if len(record) != len(names):
            continue
        values = []
        for k, value in enumerate(record):
            original = value.encode("utf-8", errors="surrogateescape")
            try:
                values.append(original.decode("utf-8"))
            except UnicodeDecodeError:
                decoded = _cp1252(original)
                values.append(decoded)
                flags.append(
                    {
                        "line": int(line),
                        "column": names[k],
                        "value": decoded[:MAX_VALUE],
                        "reason": f"not valid UTF-8: read as Windows-1252 ('{decoded[:VALUE_IN_REASON]}'); set the source's encoding if the whole file is",
                        "raw": _cp1252(raw),
                    }
                )
        rows.append([v if v != "" else None for v in values] + [int(line)])
        done[i] = True
    return rows, pd.DataFrame(flags, columns=REJECT_COLUMNS), done


def _read_parquet(con: duckdb.DuckDBPyConnection, settings: Settings, ent: Entity, spec: SourceSpec, path: Path) -> _Source:
    file = str(spec.file)
    try:
        desc = con.execute("DESCRIBE SELECT * FROM read_parquet($path)", {"path": str(path)}).fetchall()
    except duckdb.Error as exc:
        raise ExtractError(
            f"{file}: not a readable Parquet file ({_first_line(exc)}); re-export it or set sources.{ent.name}.format "
            f"({settings.where('sources', ent.name, 'file')})"
        ) from None
    names = [str(r[0]) for r in desc]
    cols = _match_columns(names, ent, spec, settings)
    select = ", ".join(f"CAST(#{i + 1} AS VARCHAR) AS c{i}" for i in range(len(names)))  # by position: no names in SQL
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {TMP}src AS
            SELECT {select}, file_row_number + 1 AS _line FROM read_parquet($path, file_row_number = true)""",
        {"path": str(path)},
    )
    n = _scalar(con, f"SELECT count(*) FROM {TMP}src")
    return _Source(names, cols, n, pd.DataFrame(columns=REJECT_COLUMNS), native_bools=True)


def _read_xlsx(con: duckdb.DuckDBPyConnection, settings: Settings, ent: Entity, spec: SourceSpec, path: Path) -> _Source:
    """One sheet through openpyxl (DuckDB's excel extension cannot be downloaded here). Cells are
    turned into the text a CSV export would hold; `_line` is the sheet row number."""
    import pyarrow as pa

    file = str(spec.file)
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - a declared dependency
        raise ExtractError(f"{file}: reading .xlsx extracts needs openpyxl: pip install openpyxl") from None
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:  # what a broken or non-XLSX file raises
        raise ExtractError(
            f"{file}: not a readable XLSX workbook ({exc}); re-export it ({settings.where('sources', ent.name, 'file')})"
        ) from None
    try:
        ws = _sheet(wb, spec, settings)
        header_row = max(spec.header_row, 1)
        rows = ws.iter_rows(min_row=header_row, values_only=True)
        names = [(_cell_text(v) or "").strip() for v in (next(rows, None) or ())]
        while names and names[-1] == "":
            names.pop()
        if not names:
            raise ExtractError(
                f"{file}: sheet '{ws.title}' has no header in row {header_row}, expected columns {_required_names(ent, spec)} "
                f"(header_row: {settings.where('sources', ent.name, 'header_row')})"
            )
        cols = _match_columns(names, ent, spec, settings)
        n = len(names)
        data: list[list[str | None]] = [[] for _ in range(n)]
        lines: list[int] = []
        structural: list[dict] = []
        for i, row in enumerate(rows):
            values = [_cell_text(v) for v in row]
            filled = [k for k, v in enumerate(values) if v is not None and v.strip() != ""]
            if not filled:
                continue  # an empty sheet row is not a record
            line = header_row + 1 + i
            if filled[-1] >= n:
                raw = ",".join(v or "" for v in values[: filled[-1] + 1])
                reason = f"too many columns (expected {n}, found {filled[-1] + 1}): a value right of the last header column"
                structural.append({"line": line, "column": None, "value": None, "reason": reason, "raw": raw})
                continue
            values += [None] * (n - len(values))
            for k in range(n):
                data[k].append(values[k])
            lines.append(line)
    finally:
        wb.close()
    table = pa.table(
        {**{f"c{k}": pa.array(data[k], type=pa.string()) for k in range(n)}, "_line": pa.array(lines, type=pa.int64())}
    )
    con.register(f"{TMP}xlsx", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {TMP}src AS SELECT * FROM {TMP}xlsx")
    con.unregister(f"{TMP}xlsx")
    frame = pd.DataFrame(structural, columns=REJECT_COLUMNS)
    return _Source(names, cols, len(lines) + len(structural), frame, native_bools=True)


def _sheet(wb: Any, spec: SourceSpec, settings: Settings) -> Any:
    """The worksheet `sheet:` names: a name, a 1-based position, or (unset) the first sheet."""
    sheet, where = spec.sheet, settings.where("sources", spec.entity, "sheet")
    if sheet is None:
        return wb.worksheets[0]
    if isinstance(sheet, int) and not isinstance(sheet, bool):
        if not 1 <= sheet <= len(wb.worksheets):
            raise ExtractError(
                f"{spec.file}: has {len(wb.worksheets)} sheet(s), no sheet number {sheet} (sheet: counts from 1, {where})"
            )
        return wb.worksheets[sheet - 1]
    if str(sheet) in wb.sheetnames:
        return wb[str(sheet)]
    raise ExtractError(f"{spec.file}: no sheet named '{sheet}' (sheets: {', '.join(wb.sheetnames)}); fix sheet: at {where}")


def _delimiter(spec: SourceSpec, settings: Settings) -> str:
    d = spec.delimiter
    d = {"tab": "\t", "\\t": "\t", "pipe": "|", "semicolon": ";", "comma": ","}.get(d.lower(), d)
    if len(d) != 1:
        raise ExtractError(
            f"{spec.file}: delimiter '{spec.delimiter}' must be one character, e.g. ',' ';' '|' or \"\\t\" "
            f"(sources.{spec.entity}.delimiter, {settings.where('sources', spec.entity, 'delimiter')})"
        )
    return d


def _utf8_copy(path: Path, spec: SourceSpec, settings: Settings, tmp: Path) -> Path:
    """`path` itself when the file is UTF-8; else a UTF-8 copy in `tmp` (with the same lines)."""
    enc = spec.encoding.strip().lower().replace("_", "-")
    if enc in ("utf-8", "utf8", "utf-8-sig"):
        return path
    where = settings.where("sources", spec.entity, "encoding")
    try:
        decoder = codecs.getincrementaldecoder(codecs.lookup(enc).name)(errors="strict")
    except LookupError:
        raise ExtractError(
            f"{spec.file}: unknown encoding '{spec.encoding}' ({where}); use e.g. utf-8, latin-1, cp1252 or utf-16"
        ) from None
    out = tmp / "utf8.csv"
    line = 1
    with open(path, "rb") as src, open(out, "w", encoding="utf-8", newline="") as dst:
        while chunk := src.read(1 << 22):
            try:
                dst.write(decoder.decode(chunk))
            except UnicodeDecodeError as exc:
                at = line + chunk[: exc.start].count(b"\n")
                raise ExtractError(
                    f"{spec.file}: line {at} holds bytes that are not {spec.encoding} ({exc.reason}); "
                    f"fix encoding: of sources.{spec.entity} ({where})"
                ) from None
            line += chunk.count(b"\n")
        dst.write(decoder.decode(b"", final=True))
    return out


def _csv_header(path: Path, delim: str, skip: int) -> tuple[list[str], int]:
    """The header names of a UTF-8 CSV, and how many physical lines it and the `skip` lines before
    it take up."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20).decode("utf-8-sig", errors="replace")
    lines = io.StringIO(head, newline="")
    for _ in range(skip):
        lines.readline()
    reader = csv.reader(lines, delimiter=delim, quotechar='"', doublequote=True, strict=False)
    names = [n.strip() for n in next(reader, None) or []]
    while names and names[-1] == "":  # a trailing delimiter on the header line
        names.pop()
    return names, skip + reader.line_num


def _multiline_sql(n: int) -> str:
    """Rows holding line breaks (quoted newlines) and the number of physical lines each spans."""
    count = " + ".join(f"coalesce(length(c{i}) - length(replace(c{i}, chr(10), '')), 0)" for i in range(n))
    cond = " OR ".join(f"contains(c{i}, chr(10))" for i in range(n))
    return f"SELECT rowid AS rid, 1 + {count} AS span FROM {TMP}csv WHERE {cond}"


def _span(csv_line: Any) -> int:
    """Physical lines of a rejected record, from the text DuckDB kept of it."""
    return 1 + str(csv_line or "").strip("\r\n").count("\n")


@dataclass
class _Lines:
    """Where the physical lines of a CSV file are, from one pass over its bytes."""

    newlines: np.ndarray  # byte offset of every \n
    blank: np.ndarray  # 1-based numbers of the empty lines ('' or a lone \r), which DuckDB skips
    bare_cr: bool  # a \r not followed by \n somewhere (a line end of old Macs, or a \r inside a value)
    ends_with_newline: bool

    def one_line_per_row(self, header_lines: int, n_rows: int) -> bool:
        """True when no row read can hold a line break: every \n of the file is then the end of
        the header or of one row. With no reject and no blank line between the rows, each \n is in
        the header, inside a quoted value, or ends a row (each row but an unterminated last one);
        so when the count of \n leaves none over for quoted values, there is none. A bare \r could
        end a row without a \n and upset the count: then the rows are checked one by one."""
        if n_rows == 0:
            return True
        ended = n_rows if self.ends_with_newline else n_rows - 1
        return not self.bare_cr and len(self.newlines) == header_lines + ended


def _scan_lines(path: Path, chunk_size: int = 1 << 24) -> _Lines:
    """One pass over the bytes, a chunk at a time into one reused buffer (cheaper than mapping the
    file). Only a file holding a \r at all needs the bytes before each \n: most have none."""
    size = path.stat().st_size
    if size == 0:
        return _Lines(np.zeros(0, np.int64), np.zeros(0, np.int64), False, False)
    parts: list[np.ndarray] = []
    has_cr, last, base = False, 0, 0
    chunk = bytearray(min(size, chunk_size))
    with open(path, "rb") as fh:
        while n := fh.readinto(chunk):
            parts.append(np.flatnonzero(np.frombuffer(chunk, np.uint8, n) == 10) + base)
            has_cr = has_cr or chunk.find(b"\r", 0, n) >= 0
            last, base = chunk[n - 1], base + n
    nl = np.concatenate(parts)
    length = np.diff(nl, prepend=-1) - 1  # bytes of each line before its \n
    blank = length == 0
    bare_cr = False
    if has_cr:
        buf = np.memmap(path, dtype=np.uint8, mode="r")
        try:
            cr_before = np.zeros(len(nl), dtype=bool)  # the line ends in \r\n
            cr_before[nl > 0] = buf[nl[nl > 0] - 1] == 13
            blank |= (length == 1) & cr_before  # a lone \r
            bare_cr = int(np.count_nonzero(buf == 13)) != int(np.count_nonzero(cr_before))
        finally:
            del buf
    return _Lines(nl, np.flatnonzero(blank) + 1, bare_cr, last == 10)


def _physical_lines(
    lines: _Lines,
    first: int,
    n_rows: int,
    multi_rid: np.ndarray,
    multi_span: np.ndarray,
    rej_pos: np.ndarray,
    rej_span: np.ndarray,
    blank: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Physical line numbers of the structural rejects and of the rows read (in file order).

    DuckDB places a reject by byte position; rows come in file order. Each row starts where the
    one before it ended (its quoted line breaks counted) unless a rejected record or a blank line
    (which DuckDB skips; `blank`: those from line `first` on) lies between. Returns (reject lines,
    row lines; None when row k is simply on line `first + k`). Vectorised but for one step per
    reject or blank line."""
    rej_lines = np.searchsorted(lines.newlines, rej_pos, side="left") + 1  # newlines before the record, + 1
    events = sorted([(int(a), int(b)) for a, b in zip(rej_lines, rej_span)] + [(int(b), 1) for b in blank])
    if not events and len(multi_rid) == 0:
        return rej_lines, None
    spans = np.ones(n_rows, dtype=np.int64)
    spans[multi_rid.astype(np.int64)] = multi_span
    s = np.zeros(n_rows + 1, dtype=np.int64)  # s[k]: lines taken by the rows before row k
    np.cumsum(spans, out=s[1:])
    bump = np.zeros(n_rows + 1, dtype=np.int64)
    offset = covered = 0
    for line, span in events:
        if line < covered:  # a blank line inside a rejected multi-line record
            continue
        rel = line - first - offset
        k = int(np.searchsorted(s, rel, side="left"))
        if k <= n_rows and s[k] == rel:  # between two records; otherwise inside a quoted value
            bump[k] += span
            offset += span
            covered = line + span
    return rej_lines, first + s[:n_rows] + np.cumsum(bump)[:n_rows]


def _structural_rejects(
    errors: pd.DataFrame, lines: np.ndarray, spans: np.ndarray, names: list[str], path: Path, settings: Settings, entity: str
) -> pd.DataFrame:
    """DuckDB's CSV errors as reject rows (one per record)."""
    with open(path, "rb") as fh:
        fh.seek(-1, 2)
        ends_with_newline = fh.read(1) == b"\n"
    last = int(lines.max()) if len(lines) else -1
    out = []
    for e, line, span in zip(errors.itertuples(index=False), lines.tolist(), spans.tolist()):
        kind = str(e.error_type)
        reason = STRUCTURAL_REASONS.get(kind, kind.lower())
        if kind in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
            found = re.search(r"Found:\s*(\d+)", str(e.error_message or ""))
            reason += f" (expected {len(names)}, found {found.group(1) if found else '?'})"
            if kind == "MISSING COLUMNS" and line == last and not ends_with_newline:
                reason += "; the file ends in the middle of this line (truncated export?)"
        elif kind == "UNQUOTED VALUE" and span > 1:
            reason += f" (the quoted value runs over lines {line}-{line + span - 1})"
        elif kind in ("INVALID ENCODING", "INVALID UNICODE"):
            reason += (
                f"; if the file is not UTF-8, set sources.{entity}.encoding, e.g. latin-1 ({settings.where('sources', entity)})"
            )
        m = re.fullmatch(r"c(\d+)", e.column_name) if isinstance(e.column_name, str) else None
        column = names[int(m.group(1))] if m and int(m.group(1)) < len(names) else None
        out.append({"line": line, "column": column, "value": None, "reason": reason, "raw": str(e.csv_line or "").strip("\r\n")})
    return pd.DataFrame(out, columns=REJECT_COLUMNS)


# --------------------------------------------------------------------------------------------
# header and vocabulary: problems with the mapping stop the load


def _check_constants(con: duckdb.DuckDBPyConnection, ent: Entity, spec: SourceSpec, settings: Settings) -> None:
    """Stop the load when a constant (columns: {field: {value: ...}}) is not a valid value of its
    field: it would be bad in every row."""
    for name, value in spec.constants.items():
        col = spec.columns[name]
        row = con.execute(
            f"""SELECT coalesce(CASE WHEN _rcol = $col THEN _reason END,
                                list_filter(_vals, lambda x: x.c = $col)[1].r)
                FROM {TYPED} WHERE _rcol = $col OR list_contains(list_transform(_vals, lambda x: x.c), $col) LIMIT 1""",
            {"col": col},
        ).fetchall()
        if row:
            raise ExtractError(
                f"{spec.file}: constant {ent.name}.{name} = '{value}' is not valid ({row[0][0]}); fix "
                f"sources.{ent.name}.columns.{name} ({settings.where('sources', ent.name, 'columns', name)})"
            )


def _match_rule_columns(names: list[str], ent: Entity, spec: SourceSpec, settings: Settings) -> dict[str, int]:
    """Column read by a derive rule, the `where:` filter or a combined field -> its index in the file (exact
    name, else a unique case-insensitive match). One that is missing stops the load naming the setting."""
    wanted: list[tuple[str, str, tuple[str, ...]]] = []  # (column, what reads it, site-file keys)
    for canon, rules in spec.derived.items():
        for i, rule in enumerate(rules):
            wanted += [(col, f"tested by the derive rule for {ent.name}.{canon}", ("columns", canon, "derive", str(i))) for col in rule.columns]
    wanted += [(c.target, f"tested by where: of {ent.name}", ("where", c.target)) for c in spec.where]
    for canon, comb in spec.combined.items():
        wanted += [(col, f"read for {ent.name}.{canon}", ("columns", canon)) for col in comb.columns]
    out: dict[str, int] = {}
    for col, what, keys in wanted:
        if col in out:
            continue
        idx = [k for k, n in enumerate(names) if n == col] or [k for k, n in enumerate(names) if n.casefold() == col.casefold()]
        if len(idx) != 1:
            close = difflib.get_close_matches(col, names, n=1, cutoff=0.6)
            problem = "is not in the file" if not idx else f"appears {len(idx)} times in the header"
            raise MissingColumnError(
                f"{spec.file}: column '{col}', {what} ({settings.where('sources', ent.name, *keys)}), {problem}"
                + (f"; closest: '{close[0]}'" if close else "")
                + f"; columns found: {', '.join(names[:40])}"
            )
        out[col] = idx[0]
    return out


def _count_other(con: duckdb.DuckDBPyConnection, spec: SourceSpec, src: _Source) -> int:
    """Rows of the file that `where:` leaves to other entities."""
    params: dict[str, Any] = {"ws": WHITESPACE}
    return int(_scalar(con, f"SELECT count(*) FROM {TMP}src WHERE NOT ({_where_sql(spec, src, params)})", params))


def _where_sql(spec: SourceSpec, src: _Source, params: dict[str, Any]) -> str:
    """SQL over _hx_src: the row belongs to this entity (every test of `where:` holds; never NULL)."""
    return " AND ".join(_test_sql(c, _trimmed(f"c{src.rule_cols[c.target]}"), params, f"where_{k}") for k, c in enumerate(spec.where))


def _test_sql(c: Condition, col: str, params: dict[str, Any], key: str) -> str:
    """SQL of one test of the condition language (derive `when:`, source `where:`) on the trimmed column `col`."""
    if c.test == "blank":
        return f"{col} IS NULL"
    if c.test == "not_blank":
        return f"{col} IS NOT NULL"
    params[key] = list(c.values)
    return f"coalesce(list_contains(${key}, upper({col})), FALSE)"


def _check_systemic(con: duckdb.DuckDBPyConnection, ent: Entity, spec: SourceSpec, settings: Settings, src: _Source, file: str) -> None:
    """Stop the load when so much of a source is bad that the mapping or the export, not a few values,
    must be wrong: rows rejected, or one column's values nulled, above `data_quality.max_bad_share_pct`
    and at least `min_bad_count` of them (a whole column rejected is both). The error names the column,
    the site-file line and the commonest bad value, and says what to set."""
    dq = settings.data_quality
    read = max(src.rows_read - src.rows_other, 1)  # this entity's rows

    def systemic(bad: int, of: int) -> bool:
        return bad >= max(dq.min_bad_count, 1) and 100.0 * bad / max(of, 1) > dq.max_bad_share_pct

    rows = con.execute(
        f"""SELECT _rcol, _rval, _reason, count(*) OVER () AS n, count(*) OVER (PARTITION BY _rcol, _rval) AS k, _line
            FROM {TYPED} WHERE _reason IS NOT NULL ORDER BY k DESC, _line LIMIT 1"""
    ).fetchall()
    n_rows = (rows[0][3] if rows else 0) + len(src.structural)
    if systemic(n_rows, read):
        if rows:
            col, val, reason, _, k, line = rows[0]
        else:
            first = src.structural.iloc[0]
            col, val, reason, k, line = first["column"], first["value"], first["reason"], len(src.structural), first["line"]
        raise ExtractError(_systemic_message(ent, spec, settings, file, col, val, reason, k, line, n_rows, read, "rows rejected"))
    cols = con.execute(
        f"""WITH b AS (SELECT _line, unnest(_vals) AS b FROM {TYPED} WHERE _reason IS NULL AND _vals IS NOT NULL),
                 per AS (SELECT b.c AS col, b.v AS val, b.r AS reason, count(*) AS k, min(_line) AS line FROM b GROUP BY ALL)
            SELECT col, arg_max(val, k), arg_max(reason, k), max(k), arg_max(line, k), sum(k)::BIGINT AS n
            FROM per GROUP BY col ORDER BY n DESC"""
    ).fetchall()
    good_rows = max(read - n_rows, 1)
    enums = {spec.columns[f.name] for f in ent.fields if f.type == "enum"}
    for col, val, reason, k, line, n in cols:
        if not systemic(int(n), good_rows):
            continue
        if col in enums:
            raise UnmappedValueError(_unmapped_message(con, ent, spec, settings, file, col, int(n), good_rows))
        raise ExtractError(_systemic_message(ent, spec, settings, file, col, val, reason, k, line, int(n), good_rows, "values nulled"))


def _unmapped_message(
    con: duckdb.DuckDBPyConnection, ent: Entity, spec: SourceSpec, settings: Settings, file: str, col: str, n: int, of: int
) -> str:
    """The systemic failure of an enum column: every code the site mapping does not cover, with its rows."""
    f = next(f for f in ent.fields if spec.columns.get(f.name) == col)
    rows = con.execute(
        f"""WITH b AS (SELECT _line, unnest(_vals) AS b FROM {TYPED} WHERE _reason IS NULL AND _vals IS NOT NULL)
            SELECT upper(trim(b.v, $ws)) AS code, arg_min(trim(b.v, $ws), _line), count(*), min(_line)
            FROM b WHERE b.c = $col AND b.v IS NOT NULL AND trim(b.v, $ws) <> '' GROUP BY code ORDER BY min(_line)""",
        {"col": col, "ws": WHITESPACE},
    ).fetchall()
    shown = ", ".join(f"{ex!r} ({k} row{'s' if k != 1 else ''}, first at line {line})" for _, ex, k, line in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    if ("sources", ent.name, "values", f.name) in settings.lines:
        at = f"sources.{ent.name}.values.{f.name} ({settings.where('sources', ent.name, 'values', f.name)})"
    else:
        at = f"a new sources.{ent.name}.values.{f.name} mapping (sources.{ent.name} is at {settings.where('sources', ent.name)})"
    dq = settings.data_quality
    return (
        f"{file}: column '{col}' ({ent.name}.{f.name}) holds {len(rows)} value(s) the site mapping does not cover: {shown}{more}; "
        f"{n} of {of} rows ({100.0 * n / max(of, 1):.1f}%) is more than the site allows (data_quality.max_bad_share_pct "
        f"{dq.max_bad_share_pct:g}%), so the run stops. Map each onto one of {', '.join(f.values)} in {at}"
    )


def _systemic_message(
    ent: Entity, spec: SourceSpec, settings: Settings, file: str, col: Any, val: Any, reason: Any, k: int, line: int, n: int,
    of: int, what: str,
) -> str:
    dq = settings.data_quality
    fields = [f for f in ent.fields if spec.columns.get(f.name) == col]
    f = fields[0] if fields else None
    where = settings.where("sources", ent.name, "columns", f.name) if f else settings.where("sources", ent.name)
    mapped = f"column '{col}' ({ent.name}.{f.name}, mapped at {where})" if f else f"column '{col}'"
    hint = "check the export and the mapping of this column"
    if f is not None and f.type == "enum":
        hint = f"map the codes under sources.{ent.name}.values.{f.name} ({settings.where('sources', ent.name, 'values')})"
    elif f is not None and f.type == "int":
        hint = (
            f"if the column holds codes (e.g. P1/P2/P3), map them under sources.{ent.name}.values.{f.name}, "
            f"e.g. {{P1: 1, P2: 2}}; otherwise check columns.{f.name}"
        )
    elif f is not None and f.type in ("timestamp", "date"):
        key = "timestamp_format" if f.type == "timestamp" else "date_format"
        hint = f"set sources.{ent.name}.{key} to the format the export uses, e.g. \"%m/%d/%Y %H:%M\" (a list for several)"
    elif f is not None and f.type == "decimal":
        hint = f"check the number format of columns.{f.name} (plain decimals such as 12.5)"
    elif f is not None and f.name in identity_fields(ent):
        hint = f"the column identifies each {ent.name} record: check columns.{f.name} maps the right column"
    elif f is None and not col:
        hint = f"check delimiter, quoting and encoding of sources.{ent.name} ({settings.where('sources', ent.name)})"
    shown = "" if val is None else f"'{str(val)[:VALUE_IN_REASON]}' "
    return (
        f"{file}: {n} of {of} {what} ({100.0 * n / max(of, 1):.1f}%) in {mapped}: more than the site allows "
        f"(data_quality.max_bad_share_pct {dq.max_bad_share_pct:g}%, {settings.where('data_quality')}), so the run stops rather "
        f"than show a picture missing them. Commonest: {shown}({k} row{'s' if k != 1 else ''}, first at line {line}): {reason}. "
        f"To fix: {hint}"
    )


# --------------------------------------------------------------------------------------------
# typing: l1 raw and trimmed -> l2 parsed -> l3 the first problem of each row


def identity_fields(ent: Entity) -> tuple[str, ...]:
    """The fields a record of `ent` is known by: its required key fields. Only a blank or unreadable value
    there rejects the whole record; any other bad value is nulled and listed (docs/extracts.md)."""
    return tuple(k for k in ent.key if ent.field(k).required)


def _type_rows(
    con: duckdb.DuckDBPyConnection,
    ent: Entity,
    spec: SourceSpec,
    settings: Settings,
    src: _Source,
    file: str,
    review_at: dt.datetime,
) -> None:
    """`_hx_typed(<fields typed>, _file, _line, _reason, _rcol, _rval, _vals)`: _reason is NULL unless the
    record's identity cannot be read (the row is rejected); `_vals` lists the values that were bad and are
    NULL in the typed fields ({c: column, v: value as read, r: reason}), NULL on a clean row.

    Levels: l0 the value as read (v_; of the rows `where:` keeps, from a column or made from several) and its
    typed value where `_fast_sql` is sure of it (q_); l1 the trimmed text (t_, NULL when blank; only where q_
    is NULL, else the value as read); l1n, only for a source with a number format, that text in plain
    notation (n_); l2 the typed value (p_); l2d the derived fields (from the trimmed columns they test and the
    typed fields); l3 each field's problem (e_); l4 the row's identity problem and its list of bad values.
    An id or text is kept verbatim, so it only needs to know whether it is blank: it gets its p_ in l1."""
    params: dict[str, Any] = {
        "ws": WHITESPACE,
        "re_int": INT_RE,
        "re_num": NUM_RE,
        "re_iso": ISO_DATE_RE,
        "file": file,
        "review_at": review_at,
    }
    true_set, false_set = (set(s) for s in settings.booleans)
    if src.native_bools:
        true_set.add("true")
        false_set.add("false")
    params["bool_true"], params["bool_false"] = sorted(true_set), sorted(false_set)
    naive, zoned = _timestamp_formats(spec.timestamp_format)
    params["fmt_naive"], params["fmt_zoned"] = naive, zoned
    dates = _timestamp_formats(spec.date_format)
    params["fmt_date"] = sorted({*dates[0], *dates[1]} or {_date_part(f) for f in naive + zoned})
    ident = set(identity_fields(ent))

    # the file columns the derive rules test, carried through the levels as d<i> (raw) / dt<i> (trimmed)
    tested = sorted({src.rule_cols[c] for rules in spec.derived.values() for r in rules for c in r.columns})
    carry0 = [f"c{i} AS d{i}" for i in tested]
    carry1 = [f"{_trimmed(f'd{i}')} AS dt{i}" for i in tested]
    carry = [f"dt{i}" for i in tested]

    l0, l1, l2, l3, idents, vals, nulls = ["_line", *carry0], ["_line", *carry1], ["_line", *carry], ["_line"], [], [], []
    derived_sql: list[str] = []
    for f in ent.fields:
        n = f.name
        params[f"name_{n}"] = n
        params[f"col_{n}"] = spec.columns[n]
        v, t, q, p, e = f"v_{n}", f"t_{n}", f"q_{n}", f"p_{n}", f"e_{n}"
        if n in spec.derived:
            derived_sql.append(f"{_derive_sql(f, spec.derived[n], src, params)} AS {p}")
            l3.append(f"CAST({p} AS VARCHAR) AS {v}, {p}")
            if f.required:
                l3.append(f"CASE WHEN {p} IS NULL THEN 'no derive rule matched for ' || $name_{n} END AS {e}")
                (idents if n in ident else vals).append(n)
            continue
        if n in spec.constants:
            params[f"const_{n}"] = spec.constants[n]
            raw = f"CAST($const_{n} AS VARCHAR)"
        elif n in spec.combined:
            raw = _combined_sql(f, spec, src, params)
        elif n in src.cols:
            raw = f"c{src.cols[n]}"
        else:
            raw = "NULL::VARCHAR"
        l0.append(f"{raw} AS {v}")
        slow_only = (n in spec.values and f.type == "int") or n in spec.number_formats or n in spec.combined
        fast = None if slow_only else _fast_sql(f, spec, params, raw, bool(naive or zoned))
        if f.type in ("id", "text"):  # verbatim, but blank is NULL
            if n in spec.values:  # a code the site maps (a shipping code -> its carrier); other values as read
                params[f"keys_{n}"], params[f"vals_{n}"] = list(spec.values[n]), list(spec.values[n].values())
                l1.append(f"{v}, coalesce(map_extract_value(MAP($keys_{n}, $vals_{n}), upper(trim({v}, $ws))), {_verbatim(v)}) AS {p}")
            else:
                l1.append(f"{v}, {_verbatim(v)} AS {p}")
            l2.append(f"{v}, {p}")
            if not f.required:
                l3.append(f"{v}, {p}")
                continue  # never bad
            l3.append(f"{v}, {p}, CASE WHEN {p} IS NULL THEN 'blank ' || $name_{n} END AS {e}")
        elif fast:  # the value read is typed straight away where that is sure; the others go the whole way
            l0.append(f"{fast} AS {q}")
            l1.append(f"{v}, {q}, CASE WHEN {q} IS NOT NULL THEN {v} ELSE {_trimmed(v)} END AS {t}")
            slow = _parse_sql(f, spec, params, naive, zoned)
            l2.append(f"{v}, {t}, CASE WHEN {q} IS NOT NULL THEN {q} ELSE {slow} END AS {p}")
            l3.append(f"{v}, {p}, {_error_sql(f, params, spec)} AS {e}")
        else:
            l1.append(f"{v}, {_trimmed(v)} AS {t}")
            num = f", n_{n}" if n in spec.number_formats else ""  # the number in plain notation (NULL: not in the format)
            l2.append(f"{v}, {t}{num}, {_parse_sql(f, spec, params, naive, zoned)} AS {p}")
            l3.append(f"{v}, {p}, {_error_sql(f, params, spec)} AS {e}")
        (idents if n in ident else vals).append(n)
        if f.type in ("int", "decimal") and f.min_value is not None:
            nulls.append(n)  # in range is checked on the typed value: out of range must be nulled
    # checks across fields: the blamed field's value is nulled (the record stays)
    rule_vals: list[tuple[str, str]] = []
    checked = set(idents) | set(vals)
    for i, (blame, cond, reason) in enumerate(ROW_RULES.get(ent.name, ())):
        valid = [f"e_{n} IS NULL" for n in sorted(set(re.findall(r"\bp_(\w+)", cond)) & checked)]  # only on good values
        l3.append(f"CASE WHEN {' AND '.join([*valid, cond])} THEN {reason} END AS r_{i}")
        rule_vals.append((f"r_{i}", blame))
    if ent.any_of:
        params["any_of_reason"] = f"blank {' and '.join(ent.any_of)} (at least one is needed to link the record)"
        params["any_of_cols"] = ", ".join(spec.columns[n] for n in ent.any_of)
        l3.append(f"CASE WHEN {' AND '.join(f'p_{n} IS NULL' for n in ent.any_of)} THEN $any_of_reason END AS r_any")

    def typed(f: Field) -> str:
        n = f.name
        bad = [f"e_{n}"] if n in nulls else []
        bad += [r for r, blame in rule_vals if blame == n]
        return f'CASE WHEN {" AND ".join(f"{b} IS NULL" for b in bad)} THEN p_{n} END AS "{n}"' if bad else f'p_{n} AS "{n}"'

    reason = f"coalesce({', '.join(f'e_{n}' for n in idents)})" if idents else "NULL::VARCHAR"
    where = " ".join(f"WHEN e_{n} IS NOT NULL THEN $col_{n}" for n in idents)
    what = " ".join(f"WHEN e_{n} IS NOT NULL THEN v_{n}" for n in idents)
    items = [(f"e_{n}", f"$col_{n}", f"v_{n}") for n in vals]
    items += [(r, f"$col_{blame}", f"v_{blame}") for r, blame in rule_vals]
    if ent.any_of:
        items.append(("r_any", "$any_of_cols", "NULL::VARCHAR"))
    if items:
        any_bad = " OR ".join(f"{e} IS NOT NULL" for e, _, _ in items)
        structs = ", ".join(f"{{'c': {c}, 'v': left({v}, {MAX_VALUE}), 'r': {e}}}" for e, c, v in items)
        bad_vals = f"CASE WHEN {any_bad} THEN list_filter([{structs}], lambda x: x.r IS NOT NULL) END"
    else:
        bad_vals = "NULL::STRUCT(c VARCHAR, v VARCHAR, r VARCHAR)[]"
    l2d = f"SELECT *{', ' if derived_sql else ''}{', '.join(derived_sql)} FROM l2"
    rows = f"{TMP}src WHERE {_where_sql(spec, src, params)}" if spec.where else f"{TMP}src"  # this entity's rows
    numbers = _numbers_sql(spec, params)  # l1n: int / decimal fields in the site's number format, in plain notation
    sql = f"""
        CREATE OR REPLACE TABLE {TYPED} AS
        WITH l0 AS (SELECT {", ".join(l0)} FROM {rows}),
             l1 AS (SELECT {", ".join(l1)} FROM l0),{f"{chr(10)}             l1n AS ({numbers})," if numbers else ""}
             l2 AS (SELECT {", ".join(l2)} FROM {"l1n" if numbers else "l1"}),
             l2d AS ({l2d}),
             l3 AS (SELECT {", ".join(l3)} FROM l2d),
             l4 AS (SELECT *, {reason} AS _reason FROM l3)
        SELECT {", ".join(typed(f) for f in ent.fields)}, $file AS _file, _line, _reason,
               {f"CASE WHEN _reason IS NULL THEN NULL {where} END" if where else "NULL::VARCHAR"} AS _rcol,
               {f"CASE WHEN _reason IS NULL THEN NULL {what} END" if what else "NULL::VARCHAR"} AS _rval,
               CASE WHEN _reason IS NULL THEN {bad_vals} END AS _vals
        FROM l4"""
    _run(con, sql, params)


def _derive_sql(f: Field, rules: tuple[DeriveRule, ...], src: _Source, params: dict[str, Any]) -> str:
    """SQL for a derived field's typed value: the first rule whose conditions hold (docs/extracts.md)."""
    cast = SQL_TYPES[f.type]
    whens, default = [], None
    for i, rule in enumerate(rules):
        key = f"drv_{f.name}_{i}"
        params[key] = rule.value
        value = f"CAST(${key} AS {cast})"
        conds = []
        for k, c in enumerate(rule.when):
            if c.test in ("after_review", "not_after_review"):
                test = f"coalesce(p_{c.target} > $review_at, FALSE)"
                conds.append(test if c.test == "after_review" else f"NOT {test}")
                continue
            conds.append(_test_sql(c, f"dt{src.rule_cols[c.target]}", params, f"{key}_{k}"))
        if conds:
            whens.append(f"WHEN {' AND '.join(conds)} THEN {value}")
        elif default is None:
            default = value
    return f"CASE {' '.join(whens)} ELSE {default or f'NULL::{cast}'} END" if whens else (default or f"NULL::{cast}")


def _combined_sql(f: Field, spec: SourceSpec, src: _Source, params: dict[str, Any]) -> str:
    """SQL of the text a combined field is read from (docs/extracts.md, "Columns combined and split"), over the
    file's columns: the non-blank parts joined; one piece of a column; the date and the time (blank time:
    the date alone; blank date: blank)."""
    comb, n = spec.combined[f.name], f.name
    cols = [_trimmed(f"c{src.rule_cols[c]}") for c in comb.columns]
    params[f"sep_{n}"] = comb.separator
    if comb.kind == "join":
        return f"nullif(concat_ws($sep_{n}, {', '.join(cols)}), '')"
    if comb.kind == "split":
        return f"nullif(trim(split_part({cols[0]}, $sep_{n}, {int(comb.part)}), $ws), '')"
    day, time = cols
    return f"CASE WHEN {day} IS NOT NULL THEN {day} || coalesce(' ' || {time}, '') END"


def _number_pattern(fmt: NumberFormat) -> str:
    """RE2 pattern of a number in `fmt`, with the groups sign, integer digits (with group separators), fraction
    digits and trailing minus: `-1.234,50`, `12,000 ST`, `5,00-`."""
    group = {",": ",", ".": r"\.", " ": r"[ \x{00A0}]", "'": "'"}
    digits = rf"[0-9]{{1,3}}(?:{group[fmt.thousands]}[0-9]{{3}})+|[0-9]+" if fmt.thousands else "[0-9]+"
    mark = r"\." if fmt.decimal == "." else ","
    minus = r"\s*(-?)" if fmt.trailing_minus else "()"
    unit = r"(?:\s*(?i:" + "|".join(fmt.units) + "))?" if fmt.units else ""
    return rf"^([+-]?)({digits})(?:{mark}([0-9]*))?{minus}{unit}$"


def _format_text(fmt: NumberFormat) -> str:
    parts = [f"decimal '{fmt.decimal}'", f"thousands '{fmt.thousands}'" if fmt.thousands else "no thousands separator"]
    parts += ["trailing minus"] if fmt.trailing_minus else []
    parts += [f"units {', '.join(fmt.units)}"] if fmt.units else []
    return "number format: " + ", ".join(parts)


def _numbers_sql(spec: SourceSpec, params: dict[str, Any]) -> str | None:
    """The l1n level: each int / decimal field with a number format gets n_<field>, its trimmed text in plain
    notation (`1.234,50-` -> `-1234.50`), NULL when it is not a number in that format. None when the source
    sets no number format (then no SQL is made for it)."""
    if not spec.number_formats:
        return None
    extract, plain = [], []
    for n, fmt in spec.number_formats.items():
        params[f"nf_re_{n}"] = _number_pattern(fmt)
        extract.append(f"regexp_extract(t_{n}, $nf_re_{n}, ['s', 'i', 'f', 'm']) AS x_{n}")
        digits = f"x_{n}.i"
        if fmt.thousands:  # the pattern has checked the groups: keep the digits
            digits = f"regexp_replace({digits}, '[^0-9]', '', 'g')"
        plain.append(
            f"CASE WHEN x_{n}.i <> '' THEN x_{n}.s || x_{n}.m || {digits} || CASE WHEN x_{n}.f <> '' THEN '.' || x_{n}.f ELSE '' END END AS n_{n}"
        )
    return f"SELECT *, {', '.join(plain)} FROM (SELECT *, {', '.join(extract)} FROM l1)"


def _trimmed(c: str) -> str:
    """SQL: column `c` without surrounding whitespace, NULL when blank.

    trim() with a set of characters is slow: it runs only for a value whose first or last character
    is white space (the code points of RE2's `[\\s\\x{00A0}]`). Each test is a WHEN of its own: a CASE
    looks at a row only while no WHEN before has taken it, where AND / OR would compute both sides."""
    trim = f"nullif(trim({c}, $ws), '')"
    return (
        f"CASE WHEN {c} = '' THEN NULL WHEN ord({c}) IN {EDGE_CODES} THEN {trim} "
        f"WHEN ord(right({c}, 1)) IN {EDGE_CODES} THEN {trim} ELSE {c} END"
    )


def _verbatim(c: str) -> str:
    """SQL: `c` as it is, NULL when blank (`_trimmed(c)` IS NULL): an id or a text. Only a value
    starting with white space can trim to nothing, so trim() runs for those alone."""
    return (
        f"CASE WHEN {c} = '' THEN NULL WHEN ord({c}) NOT IN {EDGE_CODES} THEN {c} "
        f"WHEN trim({c}, $ws) = '' THEN NULL ELSE {c} END"
    )


def _timestamp_formats(fmt: Any) -> tuple[list[str], list[str]]:
    """The site's timestamp_format (one or a list) split into naive formats and zoned ones."""
    if not fmt:
        return [], []
    fmts = [str(x) for x in (fmt if isinstance(fmt, list) else [fmt])]
    zoned = [x for x in fmts if "%z" in x or "%Z" in x]
    return [x for x in fmts if x not in zoned], zoned


def _date_part(fmt: str) -> str:
    """'%d.%m.%Y %H:%M' -> '%d.%m.%Y': date fields in a site that sets a timestamp format."""
    m = re.search(r"[ T]?%[HIMSpfzZ]", fmt)
    return fmt[: m.start()].strip() if m else fmt


def _parse_sql(f: Field, spec: SourceSpec, params: dict[str, Any], naive: list[str], zoned: list[str]) -> str:
    """SQL for the typed value of `f` from t_<f> (trimmed; NULL when blank) and v_<f> (as read)."""
    t, v = f"t_{f.name}", f"v_{f.name}"
    if f.type in ("id", "text"):
        return f"CASE WHEN {t} IS NOT NULL THEN {v} END"  # verbatim, but blank is NULL
    number = f"n_{f.name}" if f.name in spec.number_formats else t  # in plain notation
    if f.type == "int":
        if f.name in spec.values:  # codes mapped onto whole numbers (P1 -> 1); other values are read as numbers
            mapping = spec.values[f.name]
            params[f"keys_{f.name}"], params[f"vals_{f.name}"] = list(mapping), list(mapping.values())
            number = f"coalesce(map_extract_value(MAP($keys_{f.name}, $vals_{f.name}), upper({t})), {number})"
        return f"CASE WHEN regexp_full_match({number}, $re_int) THEN TRY_CAST({number} AS BIGINT) END"
    if f.type == "decimal":
        return f"CASE WHEN regexp_full_match({number}, $re_num) THEN TRY_CAST({number} AS DOUBLE) END"
    if f.type == "bool":
        key = f"lower(coalesce({t}, ''))"
        return f"CASE WHEN list_contains($bool_true, {key}) THEN true WHEN list_contains($bool_false, {key}) THEN false END"
    # DuckDB also casts 'infinity' and 'epoch': only text starting with a digit goes to the cast.
    iso = f"CASE WHEN left({t}, 1) BETWEEN '0' AND '9' THEN TRY_CAST({t} AS TIMESTAMPTZ) END"
    if f.type == "timestamp" and f.name in spec.combined:  # a date column and a time column, each in its format
        params[f"fmt_{f.name}"] = list(spec.combined[f.name].formats)
        return f"coalesce(CAST(try_strptime({t}, $fmt_{f.name}) AS TIMESTAMPTZ), {iso})"
    if f.type == "timestamp":  # naive text is read in the session TimeZone, which is the site's
        parts = [f"CAST(try_strptime({t}, $fmt_naive) AS TIMESTAMPTZ)"] if naive else []
        parts += [f"try_strptime({t}, $fmt_zoned)"] if zoned else []
        return f"coalesce({', '.join([*parts, iso])})"
    if f.type == "date":
        day = f"CASE WHEN length({t}) <= 10 AND left({t}, 1) BETWEEN '0' AND '9' THEN TRY_CAST({t} AS DATE) END"
        parts = [day, f"CAST({iso} AS DATE)"]
        parts += [f"CAST(try_strptime({t}, $fmt_date) AS DATE)"] if params.get("fmt_date") else []  # date_format, or timestamp_format's date part
        return f"coalesce({', '.join(parts)})"
    if f.type == "enum":
        mapping = spec.values.get(f.name, {})
        params[f"keys_{f.name}"], params[f"vals_{f.name}"] = list(mapping), list(mapping.values())
        return f"map_extract_value(MAP($keys_{f.name}, $vals_{f.name}), upper(coalesce({t}, '')))"
    raise ValueError(f"unknown field type {f.type}")


def _fast_sql(f: Field, spec: SourceSpec, params: dict[str, Any], raw: str, formats: bool) -> str | None:
    """SQL for the typed value of `f` straight from the text as read (`raw`), where that is surely
    what `_parse_sql` makes of the trimmed text, else NULL; None for a type without such a shortcut.
    Most values have no white space to trim, and trimming costs more than parsing:
    * a number matching its pattern has no white space in it;
    * a timestamp starting with a digit (no format set): DuckDB skips trailing spaces itself, and
      fails on the other white space, which then goes the whole way.
    (A MAP lookup of bool and enum spellings here changed how DuckDB lays out the rows of the
    tables it writes, which the picture's tie-breaks notice: left out.)"""
    if f.type == "int":
        return f"CASE WHEN regexp_full_match({raw}, $re_int) THEN TRY_CAST({raw} AS BIGINT) END"
    if f.type == "decimal":
        return f"CASE WHEN regexp_full_match({raw}, $re_num) THEN TRY_CAST({raw} AS DOUBLE) END"
    if f.type == "timestamp" and not formats:
        return f"CASE WHEN ord({raw}) BETWEEN 48 AND 57 THEN TRY_CAST({raw} AS TIMESTAMPTZ) END"
    return None


def _error_sql(f: Field, params: dict[str, Any], spec: SourceSpec) -> str:
    """SQL for why field `f` rejects its row, or NULL."""
    n, t, v, p = f.name, f"t_{f.name}", f"v_{f.name}", f"p_{f.name}"
    judged, fmt = t, ""  # the text a number is judged by: in plain notation when the site sets a number format
    if n in spec.number_formats:  # (NULL when it is not a number in that format); the reason names the format
        judged, fmt = f"n_{n}", f" || $nfdesc_{n}"
        params[f"nfdesc_{n}"] = f" ({_format_text(spec.number_formats[n])})"
    name, quoted = f"$name_{n}", f"'''' || left({v}, {VALUE_IN_REASON}) || ''''"
    in_range = "NULL"
    if f.type in ("int", "decimal") and f.min_value is not None:
        params[f"min_{n}"] = f.min_value
        below = f"WHEN {p} < $min_{n} THEN {name} || ' ' || {quoted} || ' below the minimum ' || $min_{n}::VARCHAR"
        negative = f"WHEN {p} < 0 THEN 'negative ' || {name} || ' ' || {quoted} " if f.min_value >= 0 else ""
        in_range = f"CASE {negative}{below} END"
    bad_date = f"regexp_matches({t}, $re_iso) AND TRY_CAST(regexp_extract({t}, $re_iso) AS DATE) IS NULL"
    failure = {
        "id": "NULL",
        "text": "NULL",
        "int": (
            f"CASE WHEN regexp_full_match({judged}, $re_int) THEN 'out of range ' "
            f"WHEN regexp_full_match({judged}, $re_num) THEN 'non-integer ' ELSE 'not a number ' END || {name} || ' ' || {quoted}{fmt}"
        ),
        "decimal": f"'not a number ' || {name} || ' ' || {quoted}{fmt}",
        "bool": f"'not a yes/no value ' || {name} || ' ' || {quoted}",
        "timestamp": f"CASE WHEN {bad_date} THEN 'impossible date ' ELSE 'unparseable timestamp ' END || {name} || ' ' || {quoted}",
        "date": f"CASE WHEN {bad_date} THEN 'impossible date ' ELSE 'unparseable date ' END || {name} || ' ' || {quoted}",
        "enum": f"'unmapped ' || {name} || ' ' || {quoted}",
    }[f.type]
    blank = f"'blank ' || {name}" if f.required else "NULL"
    return f"CASE WHEN {p} IS NOT NULL THEN {in_range} WHEN {t} IS NULL THEN {blank} ELSE {failure} END"


# --------------------------------------------------------------------------------------------
# duplicates


def _find_duplicates(con: duckdb.DuckDBPyConnection, ent: Entity, spec: SourceSpec) -> int:
    """`_hx_dups(_line, reason, "column", value)`: good rows repeating an earlier row exactly, or
    repeating its key with other values (the first row of a key is kept). Returns how many.

    Hashes find the candidate groups cheaply: they are fetched and sorted in numpy (a fraction of
    the cost of a GROUP BY over every row), and most files repeat none. The windows then compare
    the values themselves, for the rows carrying a repeated hash only, so a hash collision cannot
    make a false duplicate. When every key field is required (a good row always has its key), two
    equal rows share their key: the key hash alone finds every candidate, and the whole row is
    hashed only for the entities without such a key."""
    every = ", ".join(f'"{f.name}"' for f in ent.fields)
    params: dict[str, Any] = {}
    key_window, key_reason, key_col, key_val = "NULL::BIGINT", "", "", ""
    hashes: dict[str, str] = {}  # temporary table for the repeated hashes -> SQL of the hash (NULL: none)
    if ent.key:
        key = ", ".join(f'"{k}"' for k in ent.key)
        present = " AND ".join(f'"{k}" IS NOT NULL' for k in ent.key)  # a blank optional key (holds.hold_id) is no key
        shown = " || ', ' || ".join(f"$kname_{i} || '=''' || \"{k}\"::VARCHAR || ''''" for i, k in enumerate(ent.key))
        params.update({f"kname_{i}": k for i, k in enumerate(ent.key)})
        params["key_cols"] = ", ".join(spec.columns[k] for k in ent.key)
        hashes[f"{TMP}rep_key"] = f"CASE WHEN {present} THEN hash({key}) END"
        key_window = f"CASE WHEN {present} THEN min(_line) OVER (PARTITION BY {key}) END"
        key_reason = (
            f"WHEN _line > _key_first THEN 'conflicting duplicate key ' || {shown} || ' (kept line ' || _key_first || ')'"
        )
        key_col = "WHEN _line > _key_first THEN $key_cols"
        key_val = "WHEN _line > _key_first THEN " + " || ', ' || ".join(f'"{k}"::VARCHAR' for k in ent.key)
    if not (ent.key and all(ent.field(k).required for k in ent.key)):
        hashes[f"{TMP}rep_row"] = f"hash({every})"
    cand = []
    for table, expr in hashes.items():
        h = con.execute(f"SELECT h FROM (SELECT {expr} AS h FROM {TYPED} WHERE _reason IS NULL) WHERE h IS NOT NULL")
        h = np.sort(np.asarray(h.fetchnumpy()["h"], dtype=np.uint64))
        repeated = np.unique(h[1:][h[1:] == h[:-1]])
        if len(repeated):
            con.register(f"{table}_df", pd.DataFrame({"h": repeated}))
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT h FROM {table}_df")
            con.unregister(f"{table}_df")
            cand.append(f"{expr} IN (SELECT h FROM {table})")
    if not cand:
        return 0
    sql = f"""
        CREATE OR REPLACE TEMP TABLE {TMP}dups AS
        WITH w AS (SELECT _line, {every}, min(_line) OVER (PARTITION BY {every}) AS _same_first, {key_window} AS _key_first
                   FROM {TYPED} WHERE _reason IS NULL AND ({" OR ".join(cand)}))
        SELECT _line,
               CASE WHEN _line > _same_first THEN 'exact duplicate of line ' || _same_first {key_reason} END AS reason,
               CASE WHEN _line > _same_first THEN NULL {key_col} END AS "column",
               CASE WHEN _line > _same_first THEN NULL {key_val} END AS value
        FROM w WHERE _line > _same_first OR _line > _key_first"""
    _run(con, sql, params)
    return int(_scalar(con, f"SELECT count(*) FROM {TMP}dups"))


# --------------------------------------------------------------------------------------------
# output


def _write(con: duckdb.DuckDBPyConnection, ent: Entity, file: str, src: _Source, n_dups: int) -> dict[str, int]:
    """Write the rejects (whole rows, nulled values, flagged values) and the per-column counts, and make
    `_hx_typed` the entity table (in file order); returns accepted, rejected (rows), nulled, flagged (values)."""
    if n_dups:  # mark the few duplicates in place: the good rows stay a plain filter, in file order
        con.execute(
            f"""UPDATE {TYPED} SET _reason = d.reason, _rcol = d."column", _rval = d.value
                FROM {TMP}dups d WHERE {TYPED}._line = d._line"""
        )
    params = {"source": ent.name, "file": file, "delim": src.delimiter}
    _run(
        con,
        f"""INSERT INTO rejects
            SELECT $source, $file, r._line, r._rcol, r._rval, r._reason, {_raw_sql(len(src.names))}, 'row'
            FROM (SELECT _line, _rcol, _rval, _reason FROM {TYPED} WHERE _reason IS NOT NULL) r
            JOIN {_rejected_src(src, "_reason IS NOT NULL")} s ON s._line = r._line
            ORDER BY r._line""",
        params,
    )
    _run(
        con,
        f"""INSERT INTO rejects
            SELECT $source, $file, r._line, r.b.c, r.b.v, r.b.r, {_raw_sql(len(src.names))}, 'value'
            FROM (SELECT _line, unnest(_vals) AS b FROM {TYPED} WHERE _reason IS NULL AND _vals IS NOT NULL) r
            JOIN {_rejected_src(src, "_reason IS NULL AND _vals IS NOT NULL")} s ON s._line = r._line
            ORDER BY r._line""",
        params,
    )
    for frame, action in ((src.structural, "row"), (src.flags, "flag")):
        if frame is not None and len(frame):
            con.register(f"{TMP}frame", frame.assign(source=ent.name, file=file))
            con.execute(
                f"""INSERT INTO rejects
                    SELECT source, file, CAST(line AS BIGINT), CAST("column" AS VARCHAR), CAST(value AS VARCHAR), reason, raw,
                           $action
                    FROM {TMP}frame ORDER BY line""",
                {"action": action},
            )
            con.unregister(f"{TMP}frame")
    # The good rows stay where they are, in file order: the few rejected ones are deleted and the
    # check columns dropped (DuckDB drops a column without copying the others).
    con.execute(f"DELETE FROM {TYPED} WHERE _reason IS NOT NULL")
    for col in ("_reason", "_rcol", "_rval", "_vals"):
        con.execute(f"ALTER TABLE {TYPED} DROP COLUMN {col}")
    con.execute(f"DROP TABLE IF EXISTS {ent.name}")
    con.execute(f"ALTER TABLE {TYPED} RENAME TO {ent.name}")
    accepted = _scalar(con, f"SELECT count(*) FROM {ent.name}")
    n = con.execute(
        """SELECT count(*) FILTER (WHERE action = 'row'), count(*) FILTER (WHERE action = 'value'),
                  count(*) FILTER (WHERE action = 'flag')
           FROM rejects WHERE source = $s""",
        {"s": ent.name},
    ).fetchall()[0]
    write_column_counts(con, ent.name, file, int(accepted) + int(n[0]))
    return {"accepted": int(accepted), "rejected": int(n[0]), "nulled": int(n[1]), "flagged": int(n[2])}


def _severity(con: duckdb.DuckDBPyConnection, source: str) -> str:
    """warning: values nulled or records rejected (the picture lacks them); info: only exact duplicates
    dropped or values flagged (nothing lost); ok: nothing to say."""
    warn, info = con.execute(
        """SELECT count(*) FILTER (WHERE action = 'value' OR (action = 'row' AND NOT starts_with(reason, 'exact duplicate'))),
                  count(*) FILTER (WHERE action = 'flag' OR starts_with(reason, 'exact duplicate'))
           FROM rejects WHERE source = $s""",
        {"s": source},
    ).fetchall()[0]
    return "warning" if warn else "info" if info else "ok"


def write_column_counts(con: duckdb.DuckDBPyConnection, source: str, file: str | None, rows_read: int) -> None:
    """(Re)write `load_columns` for `source` from its value-level rejects: values nulled and flagged per
    column, their share of the rows read, and the commonest reason."""
    con.execute(COLUMNS_DDL)
    con.execute("DELETE FROM load_columns WHERE source = $s", {"s": source})
    con.execute(
        """INSERT INTO load_columns
           SELECT $s, $f, "column", count(*) FILTER (WHERE action = 'value'), count(*) FILTER (WHERE action = 'flag'),
                  round(100.0 * count(*) FILTER (WHERE action = 'value') / greatest($n, 1), 2), mode(reason)
           FROM rejects WHERE source = $s AND action IN ('value', 'flag') GROUP BY "column"
           ORDER BY 4 DESC, 1""",
        {"s": source, "f": file, "n": rows_read},
    )


def _rejected_src(src: _Source, which: str) -> str:
    """SQL: the rows of `_hx_src` whose typed row matches `which` (a condition on _hx_typed). When the line
    is the row id plus an offset, they are fetched by row id, which DuckDB does without reading every row."""
    if src.first_line is None:
        return f"{TMP}src"
    off = int(src.first_line)
    return (
        f"(SELECT *, {off} + rowid AS _line FROM {TMP}csv "
        f"WHERE rowid IN (SELECT _line - {off} FROM {TYPED} WHERE {which}))"
    )


def _raw_sql(n: int) -> str:
    """The record as one delimited line again (quoted where needed), for `rejects.raw`."""

    def one(c: str) -> str:
        special = " OR ".join(f"contains(s.{c}, {x})" for x in ("$delim", "'\"'", "chr(10)", "chr(13)"))
        return f"CASE WHEN s.{c} IS NULL THEN '' WHEN {special} THEN '\"' || replace(s.{c}, '\"', '\"\"') || '\"' ELSE s.{c} END"

    return "concat_ws($delim, " + ", ".join(one(f"c{i}") for i in range(n)) + ")" if n else "''"


def _create_empty(con: duckdb.DuckDBPyConnection, ent: Entity) -> None:
    cols = ", ".join(f'"{f.name}" {SQL_TYPES[f.type]}' for f in ent.fields)
    con.execute(f"CREATE OR REPLACE TABLE {ent.name} ({cols}, _file VARCHAR, _line BIGINT)")


def _report(
    con: duckdb.DuckDBPyConnection,
    entity: str,
    file: str | None,
    fmt: str,
    read: int,
    accepted: int,
    rejected: int,
    extras: list[str],
    sha: str | None,
    nulled: int = 0,
    flagged: int = 0,
    severity: str = "ok",
    other: int = 0,
) -> dict:
    row = {
        "source": entity,
        "file": file,
        "format": fmt,
        "rows_read": int(read),
        "rows_accepted": int(accepted),
        "rows_rejected": int(rejected),
        "extra_columns": ", ".join(extras),
        "sha256": sha,
        "values_nulled": int(nulled),
        "values_flagged": int(flagged),
        "severity": severity,
        "rows_other_entity": int(other),
    }
    con.execute(
        """INSERT INTO load_report (source, file, format, rows_read, rows_accepted, rows_rejected, extra_columns, sha256,
                                    values_nulled, values_flagged, severity, rows_other_entity)
           VALUES ($source, $file, $format, $rows_read, $rows_accepted, $rows_rejected, $extra_columns,
                   $sha256, $values_nulled, $values_flagged, $severity, $rows_other_entity)""",
        row,
    )
    return row


# --------------------------------------------------------------------------------------------
# helpers


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> None:
    """Execute with the named parameters `sql` uses (DuckDB refuses unused ones)."""
    used = set(re.findall(r"\$(\w+)", sql))
    con.execute(sql, {k: v for k, v in params.items() if k in used})


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> Any:
    """The one value `sql` returns (fetched to the end: DuckDB 2 refuses register() while a result is open)."""
    return con.execute(sql, params or {}).fetchall()[0][0]


def _required_names(ent: Entity, spec: SourceSpec) -> str:
    return ", ".join(spec.columns[f.name] for f in ent.fields if f.required and f.name not in spec.constants)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def _session(con: duckdb.DuckDBPyConnection, timezone: str) -> Iterator[None]:
    """Parse in the site timezone and keep file order while loading; restore the settings after."""
    wanted: dict[str, Any] = {"TimeZone": timezone, "preserve_insertion_order": True}
    old = {k: _scalar(con, "SELECT current_setting($k)", {"k": k}) for k in wanted}
    for k, v in wanted.items():
        if old[k] != v:
            con.execute(f"SET {k} = $v", {"v": v})
    try:
        yield
    finally:
        for k, v in old.items():
            if v != wanted[k]:
                con.execute(f"SET {k} = $v", {"v": v})


def _drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    for kind, catalog, col in (("VIEW", "duckdb_views()", "view_name"), ("TABLE", "duckdb_tables()", "table_name")):
        for (name,) in con.execute(
            f"SELECT {col} FROM {catalog} WHERE temporary AND starts_with({col}, $p)", {"p": TMP}
        ).fetchall():
            con.execute(f'DROP {kind} IF EXISTS "{name}"')


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
