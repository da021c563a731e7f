"""The extracts of one moment, loaded and linked: every source read into its table (refusing a file an export job
rewrote while it was read), each source's freshness judged, the records cut back to what was known at the review
time, events out of order flagged, and the crosswalk and order picture built. Also writes the foundation outputs
(the joined picture, join quality, load report, rejects). publish/pipeline.py analyses what this builds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd

from handoff_lib.db import connect
from handoff_lib.errors import ExtractError
from handoff_lib.load.extracts import load_extracts
from handoff_lib.load.freshness import check as check_freshness
from handoff_lib.load.freshness import record as record_freshness
from handoff_lib.load.settings import Settings
from handoff_lib.load.validate import flag_events_out_of_order

from .asof import apply_as_of
from .identifiers import build_crosswalk, build_order_picture


def load_and_link(
    settings: Settings,
    now: dt.datetime | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    progress: bool = False,
    allow_stale: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Load, validate and link the site's extracts into `con` (a new in-memory connection when None). With
    `now`, also judge how current each extract is (load_report's freshness columns) and keep only what was known
    at `now`; with `allow_stale=False`, an extract of an earlier operating day stops the build right after the
    load (errors.StaleExtractError)."""
    con = con or connect(settings)
    before = _fingerprints(settings)
    load_extracts(con, settings, progress=progress, as_of=now)
    _check_unchanged(settings, before)
    if now is not None:
        judged = record_freshness(con, settings, now)  # docs/extracts.md, "How current the extracts are"
        if not allow_stale:
            check_freshness(judged, settings, now)
        apply_as_of(con, settings, now)  # only what was known at `now`: docs/extracts.md, "As of the review time"
    flag_events_out_of_order(con, settings)
    build_crosswalk(con, settings)
    build_order_picture(con)
    return con


def _fingerprints(settings: Settings) -> dict[str, tuple[int, int]]:
    """(size, mtime in ns) of every source file before it is read."""
    out = {}
    for entity in settings.sources:
        path = settings.source_path(entity)
        if path is not None and path.is_file():
            st = path.stat()
            out[entity] = (st.st_size, st.st_mtime_ns)
    return out


def _check_unchanged(settings: Settings, before: dict[str, tuple[int, int]]) -> None:
    """Refuse a picture built from a file that an export job rewrote while it was being read."""
    for entity, (size, mtime) in before.items():
        path = settings.source_path(entity)
        st = path.stat() if path.is_file() else None
        if st is None or (st.st_size, st.st_mtime_ns) != (size, mtime):
            raise ExtractError(
                f"{path.name}: the file changed while it was being read (size {size} -> {st.st_size if st else 'gone'} bytes); "
                f"the export job was still writing it. Run again once the export has finished."
            )


def write_foundation_outputs(con: duckdb.DuckDBPyConnection, out: Path) -> dict[str, Path]:
    """Write the joined order picture, the join-quality report, the load report and the rejects
    under `out`; returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for table in ("order_picture", "join_quality", "load_report", "rejects", "xref"):
        path = out / f"{table}.csv"
        con.execute(f"COPY (SELECT * FROM {table}) TO '{_sql_path(path)}' (HEADER, DELIMITER ',')")
        written[table] = path
    path = out / "join_quality.md"
    path.write_text(join_quality_markdown(con), encoding="utf-8")
    written["join_quality_report"] = path
    return written


def join_quality_markdown(con: duckdb.DuckDBPyConnection) -> str:
    """The join-quality report as Markdown: per source, linked by method, ambiguous, unmatched."""
    jq = con.execute("SELECT * FROM join_quality").df()
    load = con.execute("SELECT * FROM load_report").df()
    lines = ["# Join quality", "", "## Rows per extract (read = accepted + rejected + other entity)", ""]
    lines += _md_table(load[["source", "file", "rows_read", "rows_accepted", "rows_rejected", "rows_other_entity"]])
    lines += ["", "## Links per source", ""]
    lines += _md_table(jq)
    return "\n".join(lines) + "\n"


def _md_table(df: pd.DataFrame) -> list[str]:
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    rows = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    rows += ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return rows


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
