"""The snapshot store: every review's snapshot tables as Parquet files, Hive-partitioned by site, review
date and review time, so that any engine (DuckDB, Spark, pandas through pyarrow) reads the whole
estate's history together. docs/store.md holds the layout, the schema and what a reader may rely on.

    <root>/<table>/site=<site>/review_date=<YYYY-MM-DD>/review_time=<HHMM>/data_0.parquet

Tables: `orders` (the order board), `blockers` (the blocker queue, each row with its order's customer,
carrier and service), `promise` (the promise view: orders at risk or needing communication) and
`reviews` (one row per review). The history database stays the record a site's reviews are committed
to; the store is written from it (`write_reviews`: after each review run, and by `handoff store
export` for reviews run before a site joined the estate).

A review's partitions are written into `<root>/_staging/` first and then renamed into place, table by
table, `reviews` last: a reader never sees a partly written file, and a review whose `reviews` row is
there has all its tables. Re-writing a review replaces its partitions (an old one is renamed aside
first and removed after).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from handoff_lib.errors import HandoffError, SettingsError

from .faults import crash_point
from .locks import file_lock

TABLES = ("orders", "blockers", "promise", "reviews")  # the order partitions are moved into place in
PARTITIONS = {"site": "VARCHAR", "review_date": "DATE", "review_time": "VARCHAR"}  # outermost first
ORDER_FACTS = {"customer_id": "VARCHAR", "customer_name": "VARCHAR", "carrier": "VARCHAR", "service": "VARCHAR"}
BATCH_REVIEWS = 40  # reviews per staging write when exporting a whole history
STAGING = "_staging"


class StoreError(HandoffError):
    """The snapshot store cannot be written or read."""


@dataclass(frozen=True)
class StoreSettings:
    """The site file's `store:` block."""

    root: Path
    engine: str = "duckdb"  # which engine analyses over the store use unless told otherwise


@dataclass(frozen=True)
class Key:
    """One review: (site, review date, review time HHMM)."""

    site: str
    review_date: dt.date
    review_time: str

    def path(self, root: Path, table: str) -> Path:
        return root / table / f"site={self.site}" / f"review_date={self.review_date:%Y-%m-%d}" / f"review_time={self.review_time}"


def store_settings(settings) -> StoreSettings | None:
    """The site's store (`store: {root: ..., engine: duckdb|spark}`; root relative to the site file), or
    None when the site file has no `store:`. SettingsError naming the line otherwise."""
    from .engines import ENGINES

    raw = settings.raw.get("store")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SettingsError(f"{settings.where('store')}: store must be a mapping, e.g. store: {{root: ../outputs/store}}")
    unknown = sorted(set(raw) - {"root", "engine"})
    if unknown:
        raise SettingsError(f"{settings.where('store', unknown[0])}: unknown store setting '{unknown[0]}' (store has root, engine)")
    if raw.get("root") in (None, ""):
        raise SettingsError(f"{settings.where('store')}: missing setting 'store.root' (the snapshot store's folder, e.g. ../outputs/store)")
    text = str(raw["root"])
    if "://" in text:
        raise SettingsError(
            f"{settings.where('store', 'root')}: store.root '{text}' is a URL: reviews write the store to a folder (local or a "
            "mounted share); copy it to object storage for Spark (docs/store.md)"
        )
    engine = str(raw.get("engine", "duckdb"))
    if engine not in ENGINES:
        raise SettingsError(f"{settings.where('store', 'engine')}: store.engine '{engine}' is not one of {', '.join(ENGINES)}")
    return StoreSettings((settings.path.resolve().parent / text).resolve(), engine)


# ------------------------------------------------------------------------------------------- writing


def _site_lock(root: Path, site: str, wait_s: float = 600.0) -> contextlib.AbstractContextManager:
    """One writer per site and store at a time (a review run and an export of the same site)."""
    lock = root / "_locks" / f"{site}.lock"
    return file_lock(lock, wait_s, timed_out=lambda: StoreError(
        f"{lock}: another process is still writing site {site} to the store after {wait_s:.0f} s"))


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE hist.{table}").fetchall()]


def _quoted(names: Iterable[str], alias: str) -> str:
    return ", ".join(f'{alias}."{n}"' for n in names)


def snapshot_selects(con: duckdb.DuckDBPyConnection, have: set[str], keyed: bool = True) -> dict[str, str]:
    """The SELECT that makes each store table from the history attached as `hist` (whose tables are
    `have`): for the reviews in table `_store_keys` (`keyed`), or for every review."""
    from handoff_lib.rules.promise import ANSWER_COLUMNS

    keys = "JOIN _store_keys k ON k.site = {a}.site AND k.review_date = {a}.review_date AND k.review_time = {a}.review_time"
    if not keyed:
        keys = ""
    part = list(PARTITIONS)
    order_cols = _columns(con, "snap_orders")
    blocker_cols = _columns(con, "snap_blockers")
    facts = ", ".join(
        f'o."{c}"' if c in order_cols else f'CAST(NULL AS {t}) AS "{c}"' for c, t in ORDER_FACTS.items() if c not in blocker_cols
    )
    promise = [c for c in ANSWER_COLUMNS if c in order_cols and c not in part]
    if "runs" in have:
        reviews = f"""SELECT r.site, r.review_date, r.review_time, r.review_at, r.run_id, r.written_at,
                             CAST(r.summary AS VARCHAR) AS summary
                      FROM hist.runs r {keys.format(a="r")}"""
    else:  # a history written without a runs table (themes.demo_history before, hand-made ones)
        reviews = """SELECT site, review_date, review_time, CAST(NULL AS TIMESTAMPTZ) AS review_at, CAST(NULL AS VARCHAR) AS run_id,
                            CAST(NULL AS TIMESTAMPTZ) AS written_at, CAST(NULL AS VARCHAR) AS summary
                     FROM _store_keys"""
    return {
        "orders": f"SELECT o.* FROM hist.snap_orders o {keys.format(a='o')}",
        "blockers": f"""SELECT b.*{', ' + facts if facts else ''}
                        FROM hist.snap_blockers b {keys.format(a='b')}
                        LEFT JOIN hist.snap_orders o ON o.site = b.site AND o.review_date = b.review_date
                             AND o.review_time = b.review_time AND o.order_id = b.order_id""",
        "promise": f"""SELECT o.site, o.review_date, o.review_time, {_quoted(promise, 'o')}
                       FROM hist.snap_orders o {keys.format(a='o')}
                       WHERE {"o.promise_status IN ('at_risk', 'needs_communication')" if "promise_status" in order_cols else "FALSE"}""",
        "reviews": reviews,
    }


def history_reviews(history_path: Path, site: str | None = None, date_from: dt.date | None = None,
                    date_to: dt.date | None = None) -> list[Key]:
    """Every review a history database holds (of `site` and the date range when given), oldest first."""
    from .snapshots import open_history

    con = open_history(history_path, read_only=True)
    try:
        have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "snap_orders" not in have or "snap_blockers" not in have:
            raise StoreError(f"{history_path}: the history database has no review snapshots (snap_orders, snap_blockers)")
        source = "runs" if "runs" in have else "(SELECT site, review_date, review_time FROM snap_orders UNION SELECT site, review_date, review_time FROM snap_blockers)"
        rows = con.execute(
            f"""SELECT DISTINCT site, review_date, review_time FROM {source} t
                WHERE ($site IS NULL OR site = $site) AND ($lo IS NULL OR review_date >= $lo) AND ($hi IS NULL OR review_date <= $hi)
                ORDER BY review_date, review_time, site""",
            {"site": site, "lo": date_from, "hi": date_to},
        ).fetchall()
    finally:
        con.close()
    return [Key(s, d, t) for s, d, t in rows]


def stored_reviews(root: Path, site: str | None = None) -> set[Key]:
    """The reviews the store holds (their `reviews` partition is in place), read from folder names."""
    base = Path(root) / "reviews"
    out: set[Key] = set()
    for sdir in base.glob(f"site={site}" if site else "site=*"):
        for ddir in sdir.glob("review_date=*"):
            for tdir in ddir.glob("review_time=*"):
                out.add(Key(sdir.name[5:], dt.date.fromisoformat(ddir.name[12:]), tdir.name[12:]))
    return out


def write_reviews(history_path: str | Path, root: str | Path, keys: list[Key], progress: bool = False) -> int:
    """Write the reviews `keys` of the history database into the store at `root`, replacing any earlier
    copy of them. Returns how many reviews were written."""
    from tqdm.auto import tqdm

    from .snapshots import while_locked

    history_path, root = Path(history_path), Path(root)
    if not keys:
        return 0
    root.mkdir(parents=True, exist_ok=True)
    written = 0
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        # waits while a review run holds the history file for writing, as history readers do
        while_locked(lambda: con.execute("ATTACH ? AS hist (READ_ONLY)", [str(history_path)]), history_path, 60.0)
        have = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'hist'").fetchall()}
        selects = snapshot_selects(con, have)
        for site in sorted({k.site for k in keys}):
            site_keys = [k for k in keys if k.site == site]
            with _site_lock(root, site), tqdm(total=len(site_keys), desc=f"store {site}", unit="review", disable=not progress) as bar:
                for left in (root / STAGING).glob(f"{site}.*"):  # staged by a writer of this site that was killed
                    shutil.rmtree(left, ignore_errors=True)
                for i in range(0, len(site_keys), BATCH_REVIEWS):
                    batch = site_keys[i : i + BATCH_REVIEWS]
                    _write_batch(con, selects, root, batch)
                    written += len(batch)
                    bar.update(len(batch))
    finally:
        con.close()
    return written


def _write_batch(con: duckdb.DuckDBPyConnection, selects: dict[str, str], root: Path, keys: list[Key]) -> None:
    """Stage every table of `keys`, then move each review's partitions into place, `reviews` last."""
    frame = pd.DataFrame([(k.site, k.review_date, k.review_time) for k in keys], columns=list(PARTITIONS))  # noqa: F841
    con.execute("CREATE OR REPLACE TEMP TABLE _store_keys AS SELECT site, CAST(review_date AS DATE) AS review_date, review_time FROM frame")
    stage = root / STAGING / f"{keys[0].site}.{uuid.uuid4().hex}"  # no site code holds a dot
    trash = stage / "_replaced"
    stage.mkdir(parents=True)
    try:
        for table in TABLES:
            con.sql(selects[table]).write_parquet(
                str(stage / table), compression="zstd", partition_by=list(PARTITIONS), write_partition_columns=False
            )
        crash_point("store-write")
        for key in keys:
            for table in TABLES:
                dst, src = key.path(root, table), key.path(stage, table)
                if dst.exists():
                    old = trash / table / f"{key.site}-{key.review_date}-{key.review_time}"
                    old.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(dst, old)
                if src.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(src, dst)
                crash_point("store-move")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def export_history(history_path: str | Path, root: str | Path, site: str | None = None, date_from: dt.date | None = None,
                   date_to: dt.date | None = None, replace: bool = False, progress: bool = True) -> tuple[int, int]:
    """Write the reviews of a history database into the store: those it lacks, or (`replace`) all of them.
    Returns (written, already in the store and left as they were)."""
    history_path = Path(history_path)
    if not history_path.is_file():
        raise StoreError(f"{history_path}: no history database (run reviews first, or give --history)")
    keys = history_reviews(history_path, site, date_from, date_to)
    if site and not keys:
        raise StoreError(f"{history_path}: no reviews of site '{site}' in that range")
    have = set() if replace else stored_reviews(Path(root))
    todo = [k for k in keys if k not in have]
    return write_reviews(history_path, root, todo, progress=progress), len(keys) - len(todo)


def after_review(settings, history_path: Path, review_at: dt.datetime) -> dict | None:
    """Write one just-committed review into the site's store (review runs call this after the history
    write and the publish). A failure here is reported (stderr and the returned dict, which the run puts
    into manifest.json) and does not fail the run: history, the run's commit, is untouched, and `handoff
    store export` writes what is missing. None when the site has no store."""
    from .snapshots import ReviewKey

    conf = store_settings(settings)
    if conf is None:
        return None
    key = ReviewKey.of(settings.site, review_at)
    t0 = time.perf_counter()
    try:
        write_reviews(history_path, conf.root, [Key(key.site, key.review_date, key.review_time)])
    except Exception as exc:  # noqa: BLE001 - any failure is reported, never raised (see docstring)
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, HandoffError) else str(exc)
        print(
            f"handoff: warning: the review is in history but not in the snapshot store {conf.root} ({message}); "
            f"catch up with: handoff store export --site {settings.path}",
            file=sys.stderr,
        )
        return {"root": str(conf.root), "written": False, "error": message}
    return {"root": str(conf.root), "written": True, "seconds": round(time.perf_counter() - t0, 3)}


# ------------------------------------------------------------------------------------------- reading


def check_root(root: str | Path, table: str = "reviews") -> Path | str:
    """The store root (a folder, or an object-store URL left for Spark to resolve); StoreError when a local
    folder holds no `table`."""
    text = str(root)
    if "://" in text:
        return text
    path = Path(root)
    if not (path / table).is_dir():
        raise StoreError(f"{path}: not a snapshot store (no {table}/ folder; write one with `handoff store export` or a review run)")
    return path


def register(engine, root: str | Path, tables: Iterable[str] = TABLES, prefix: str = "") -> None:
    """Make the store's tables views of `engine` (named `prefix + table`), partition columns typed."""
    root = check_root(root)
    for table in tables:
        if table not in TABLES:
            raise StoreError(f"no store table '{table}' (tables: {', '.join(TABLES)})")
        folder = f"{root}/{table}" if isinstance(root, str) else root / table
        if isinstance(folder, Path) and not folder.is_dir():
            raise StoreError(f"{root}: the store has no {table}/ yet (no review has written one)")
        engine.read_parquet(prefix + table, folder, PARTITIONS)


def summary(root: str | Path) -> pd.DataFrame:
    """Per site: reviews, first and last review date, and rows of each table (DuckDB over the store)."""
    from .engines import DuckDBEngine

    path = check_root(root)
    engine = DuckDBEngine()
    try:
        present = [t for t in TABLES if (Path(path) / t).is_dir()]
        register(engine, path, present)
        out = engine.con.execute(
            "SELECT site, count(*) AS reviews, min(review_date) AS first_date, max(review_date) AS last_date FROM reviews GROUP BY site"
        ).df()
        for t in present:
            if t != "reviews":
                n = engine.con.execute(f"SELECT site, count(*) AS n FROM {t} GROUP BY site").df()
                out = out.merge(n.rename(columns={"n": f"{t}_rows"}), on="site", how="left")
        counts = [c for c in out.columns if c.endswith("_rows")]
        out[counts] = out[counts].fillna(0).astype("int64")
        return out.sort_values("site").reset_index(drop=True)
    finally:
        engine.close()
