"""Snapshots per cutoff review in a DuckDB history database, and what changed since the last review.

A snapshot is keyed by (site, review_date, review_time). Writing one replaces any earlier snapshot
with the same key in a single transaction, so re-running a review is idempotent and a failed run
leaves history as it was. DuckDB allows one writer per file: a writer that finds the file locked
waits (up to `wait_s`) and then fails with a clear message; readers open it read-only.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb
import pandas as pd

from handoff_lib.errors import HandoffError
from handoff_lib.load.freshness import label as source_label

from .faults import crash_point

# picture table -> history table
SNAPSHOT_TABLES = {
    "order_board": "snap_orders",
    "blockers": "snap_blockers",
    "drafts": "snap_drafts",
    "join_quality": "snap_join_quality",
    "load_report": "snap_load",
}


OPTIONAL_TABLES = {"drafts"}  # snapshotted when the review made them


class HistoryLocked(HandoffError):
    """Another process holds the history database for writing."""


@dataclass(frozen=True)
class ReviewKey:
    site: str
    review_date: dt.date
    review_time: str  # HHMM, site local

    @classmethod
    def of(cls, site: str, at: dt.datetime) -> ReviewKey:
        return cls(site, at.date(), at.strftime("%H%M"))

    def params(self) -> list:
        return [self.site, self.review_date, self.review_time]


T = TypeVar("T")


def while_locked(action: Callable[[], T], path: Path, wait_s: float, interval: float = 0.2) -> T:
    """Run `action` (an open or ATTACH of the DuckDB file `path`), retrying while another process
    holds the file's lock; after `wait_s` fail with HistoryLocked. Other errors fail at once."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return action()
        except duckdb.Error as exc:
            if "lock" not in str(exc).lower():
                raise HandoffError(f"{path}: cannot open the database ({exc})") from None
            if time.monotonic() >= deadline:
                raise HistoryLocked(
                    f"{path}: locked by another handoff process (a review run writing its snapshot); waited "
                    f"{wait_s:.0f} s. Try again when it has finished."
                ) from None
            time.sleep(interval)


def open_history(path: str | Path, read_only: bool = False, wait_s: float = 60.0) -> duckdb.DuckDBPyConnection:
    """A connection to the history database; waits while another writer holds it."""
    path = Path(path)
    if read_only and not path.exists():
        raise HandoffError(f"{path}: no history database yet (run a review first: handoff run)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return while_locked(lambda: duckdb.connect(str(path), read_only=read_only), path, wait_s)


def _ensure_runs(con: duckdb.DuckDBPyConnection, schema: str = "main") -> None:
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {schema}.runs (
              site VARCHAR, review_date DATE, review_time VARCHAR, review_at TIMESTAMPTZ,
              run_id VARCHAR, written_at TIMESTAMPTZ, data_folder VARCHAR, outputs VARCHAR, summary JSON)"""
    )
    # added later: a history file written before gets the column on its next write (NULL for its old reviews)
    con.execute(f"ALTER TABLE {schema}.runs ADD COLUMN IF NOT EXISTS stale BOOLEAN")  # a source past its freshness limit


def write_snapshot(
    picture: duckdb.DuckDBPyConnection,
    history_path: str | Path,
    key: ReviewKey,
    review_at: dt.datetime,
    run_id: str,
    data_folder: str = "",
    outputs: str = "",
    summary: str = "{}",
    wait_s: float = 60.0,
    stale: bool = False,
) -> None:
    """Copy the picture's order board, blockers, join quality and load report into history under
    `key`, replacing an earlier snapshot with the same key. One transaction: all or nothing.
    `stale`: the review was built on a source past its freshness limit (runs.stale; which sources, and
    how old, is in the load snapshot: stale_sources)."""
    history_path = Path(history_path)
    history_path.parent.mkdir(parents=True, exist_ok=True)
    # The picture connection attaches the history file, waiting for the lock like open_history.
    while_locked(lambda: picture.execute("ATTACH ? AS hist", [str(history_path)]), history_path, wait_s)
    have = {r[0] for r in picture.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()").fetchall()}
    tables = {src: dst for src, dst in SNAPSHOT_TABLES.items() if src in have or src not in OPTIONAL_TABLES}
    try:
        _ensure_runs(picture, "hist")
        for src, dst in tables.items():
            picture.execute(
                f"""CREATE TABLE IF NOT EXISTS hist.{dst} AS
                    SELECT CAST(NULL AS VARCHAR) AS site, CAST(NULL AS DATE) AS review_date,
                           CAST(NULL AS VARCHAR) AS review_time, * FROM {src} LIMIT 0"""
            )
            _add_missing_columns(picture, src, dst)
        picture.execute("BEGIN TRANSACTION")
        try:
            picture.execute("DELETE FROM hist.runs WHERE site = ? AND review_date = ? AND review_time = ?", key.params())
            picture.execute(
                """INSERT INTO hist.runs (site, review_date, review_time, review_at, run_id, written_at, data_folder, outputs,
                                          summary, stale) VALUES (?, ?, ?, ?, ?, now(), ?, ?, ?, ?)""",
                [*key.params(), review_at, run_id, data_folder, outputs, summary, bool(stale)],
            )
            for src, dst in tables.items():
                picture.execute(f"DELETE FROM hist.{dst} WHERE site = ? AND review_date = ? AND review_time = ?", key.params())
                crash_point("history-write")
                picture.execute(
                    f"""INSERT INTO hist.{dst} BY NAME
                        SELECT ? AS site, ? AS review_date, ? AS review_time, * FROM {src}""",
                    key.params(),
                )
            picture.execute("COMMIT")
        except BaseException:
            picture.execute("ROLLBACK")
            raise
    finally:
        picture.execute("DETACH hist")


def _add_missing_columns(con: duckdb.DuckDBPyConnection, src: str, dst: str) -> None:
    """A newer version may add columns to a picture table: add them to history too."""
    have = {r[0] for r in con.execute(f"DESCRIBE hist.{dst}").fetchall()}
    for name, typ, *_ in con.execute(f"DESCRIBE {src}").fetchall():
        if name not in have:
            con.execute(f'ALTER TABLE hist.{dst} ADD COLUMN "{name}" {typ}')


def list_reviews(history: duckdb.DuckDBPyConnection, site: str) -> pd.DataFrame:
    """Every stored review of a site, newest first, with `stale` (built on a source past its freshness limit;
    false for reviews stored before freshness was judged)."""
    _exists = history.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'").fetchone()[0]
    if not _exists:
        return pd.DataFrame(columns=["review_date", "review_time", "review_at", "run_id", "written_at", "outputs", "stale"])
    has_stale = history.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'runs' AND column_name = 'stale'"
    ).fetchone()[0]
    return history.execute(
        f"""SELECT review_date, review_time, review_at, run_id, written_at, outputs,
                   {'coalesce(stale, false)' if has_stale else 'false'} AS stale FROM runs WHERE site = ?
            ORDER BY review_date DESC, review_time DESC""",
        [site],
    ).df()


def previous_review(history: duckdb.DuckDBPyConnection, key: ReviewKey) -> ReviewKey | None:
    """The latest stored review of the same site strictly before `key` (same day first, else the last one before it)."""
    exists = history.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'runs'").fetchone()[0]
    if not exists:
        return None
    row = history.execute(
        """SELECT review_date, review_time FROM runs
           WHERE site = ? AND (review_date < ? OR (review_date = ? AND review_time < ?))
           ORDER BY review_date DESC, review_time DESC LIMIT 1""",
        [key.site, key.review_date, key.review_date, key.review_time],
    ).fetchone()
    return ReviewKey(key.site, row[0], row[1]) if row else None


# ---------------------------------------------------------------- changed since the last review

CHANGE_KINDS = ("state_changed", "promise_changed", "new_blocker", "cleared_blocker", "missing_order", "new_order")


def changes_since(picture: duckdb.DuckDBPyConnection, history_path: str | Path | None, key: ReviewKey) -> ReviewKey | None:
    """Compare the picture in `picture` (tables order_board, blockers) with the previous stored
    review of the same site and write table `changes` (one row per change, high priority first):
    kind, order_id, priority, before, after, detail, blocker_id, owner, reason, age_minutes.
    Orders that vanished from the extract are `missing_order` (never assumed shipped).
    Returns the previous review's key, or None when there is none (the table is then empty)."""
    picture.execute(
        """CREATE OR REPLACE TABLE changes (kind VARCHAR, order_id VARCHAR, priority DOUBLE, before VARCHAR,
               after VARCHAR, detail VARCHAR, blocker_id VARCHAR, owner VARCHAR, reason VARCHAR, age_minutes DOUBLE)"""
    )
    if history_path is None or not Path(history_path).exists():
        return None
    hist = open_history(history_path, read_only=True)
    try:
        prev = previous_review(hist, key)
        if prev is None:
            return None
        prev_orders = hist.execute(
            "SELECT * FROM snap_orders WHERE site = ? AND review_date = ? AND review_time = ?", prev.params()
        ).df()
        prev_blockers = hist.execute(
            "SELECT * FROM snap_blockers WHERE site = ? AND review_date = ? AND review_time = ?", prev.params()
        ).df()
    finally:
        hist.close()
    picture.register("_prev_orders", prev_orders)
    picture.register("_prev_blockers", prev_blockers)
    try:
        picture.execute(
            """
            INSERT INTO changes
            SELECT 'state_changed', c.order_id, c.priority, p.state, c.state, c.state_reason, NULL, NULL, NULL, NULL
            FROM order_board c JOIN _prev_orders p USING (order_id) WHERE c.state IS DISTINCT FROM p.state
            UNION ALL
            SELECT 'promise_changed', c.order_id, c.priority, p.promise_status, c.promise_status, c.promise_reason,
                   NULL, NULL, NULL, NULL
            FROM order_board c JOIN _prev_orders p USING (order_id)
            WHERE c.promise_status IS DISTINCT FROM p.promise_status
            UNION ALL
            SELECT 'new_blocker', b.order_id, b.priority, NULL, b.reason_label, b.detail, b.blocker_id, b.owner,
                   b.reason, b.age_minutes
            FROM blockers b WHERE b.blocker_id NOT IN (SELECT blocker_id FROM _prev_blockers)
            UNION ALL
            SELECT 'cleared_blocker', p.order_id, p.priority, p.reason_label, coalesce(o.state, 'missing from extract'),
                   p.detail, p.blocker_id, p.owner, p.reason, p.age_minutes
            FROM _prev_blockers p LEFT JOIN order_board o USING (order_id)
            WHERE p.blocker_id NOT IN (SELECT blocker_id FROM blockers)
            UNION ALL
            SELECT 'missing_order', p.order_id, p.priority, p.state, NULL,
                   'in the previous review but not in this extract: check the OMS export (not assumed shipped)',
                   NULL, NULL, NULL, NULL
            FROM _prev_orders p WHERE p.order_id NOT IN (SELECT order_id FROM order_board)
            UNION ALL
            SELECT 'new_order', c.order_id, c.priority, NULL, c.state, c.state_reason, NULL, NULL, NULL, NULL
            FROM order_board c WHERE c.order_id NOT IN (SELECT order_id FROM _prev_orders)
            """
        )
        picture.execute("CREATE OR REPLACE TABLE changes AS SELECT * FROM changes ORDER BY priority DESC NULLS LAST, kind, order_id")
    finally:
        picture.unregister("_prev_orders")
        picture.unregister("_prev_blockers")
    return prev


def change_summary(picture: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Count per change kind (every kind listed, zero included); each equals its drill-down list."""
    return picture.execute(
        """SELECT k.kind, count(c.kind) AS count
           FROM (SELECT unnest($kinds) AS kind, generate_subscripts($kinds, 1) AS i) k
           LEFT JOIN changes c ON c.kind = k.kind GROUP BY k.kind, k.i ORDER BY k.i""",
        {"kinds": list(CHANGE_KINDS)},
    ).df()


def stale_sources(history: duckdb.DuckDBPyConnection | str | Path, site: str, review_date: dt.date | str,
                  review_time: str) -> pd.DataFrame:
    """The stale sources of a stored review (site, date, HHMM) read from history's load snapshot, oldest first:
    source, label, file, as_of, as_of_basis, age_minutes, max_age_minutes, freshness. Empty when none was stale,
    or when the history predates freshness (no such columns). Opens a path read-only."""
    columns = ["source", "label", "file", "as_of", "as_of_basis", "age_minutes", "max_age_minutes", "freshness"]
    con = open_history(history, read_only=True) if isinstance(history, (str, Path)) else history
    try:
        have = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'snap_load'").fetchall()}
        if "freshness" not in have:
            return pd.DataFrame(columns=columns)
        df = con.execute(
            """SELECT source, file, as_of, as_of_basis, age_minutes, max_age_minutes, freshness FROM snap_load
               WHERE site = ? AND review_date = ? AND review_time = ? AND freshness IN ('stale', 'earlier_day')
               ORDER BY age_minutes DESC, source""",
            [site, review_date, review_time],
        ).df()
    finally:
        if isinstance(history, (str, Path)):
            con.close()
    df.insert(1, "label", [source_label(s) for s in df["source"]])
    return df[columns]
