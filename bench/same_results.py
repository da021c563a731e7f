"""Do two versions of the suite compute the same picture? Save every table once, compare after a change.

    .venv/bin/python bench/same_results.py save    --size 1m --to /tmp/before
    (change handoff_lib)
    .venv/bin/python bench/same_results.py compare --size 1m --to /tmp/before

`save` runs load -> crosswalk -> order picture -> analyse (the suite's compute, in memory) on the
cached demo day of that size (bench/cache; `python bench/run.py --sizes 1m --steps floor` makes it)
and writes every table to Parquet. `compare` runs the current code and checks each table both ways
with EXCEPT ALL (row order and column order ignored; columns matched by name). It prints one line per
table and exits 1 when any table differs, naming how many rows differ each way, with examples.
Performance work is checked with this: a faster suite must give the same tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

REVIEW_AT = "2026-11-24 14:30"
SKIP = {"load_report"}  # holds the extract files' hashes and paths only: compared by rows_* below


def build(size: str):
    from data import day_dir, parse_size

    from handoff_lib.db import connect
    from handoff_lib.join.identifiers import build_crosswalk, build_order_picture
    from handoff_lib.load.extracts import load_extracts
    from handoff_lib.load.settings import load_settings
    from handoff_lib.publish.picture import analyse

    folder = day_dir(parse_size(size), 7) / "data"
    if not folder.is_dir():
        raise SystemExit(f"same_results: no cached day at {folder}; run python bench/run.py --sizes {size} --steps floor")
    s = load_settings(REPO / "parameters" / "demo.yaml", data_folder=str(folder))
    now = dt.datetime.strptime(REVIEW_AT, "%Y-%m-%d %H:%M").replace(tzinfo=s.tz)
    con = connect(s)
    t0 = time.perf_counter()
    load_extracts(con, s)
    t1 = time.perf_counter()
    build_crosswalk(con, s)
    build_order_picture(con)
    t2 = time.perf_counter()
    analyse(con, s, now)
    t3 = time.perf_counter()
    print(f"load {t1 - t0:.2f} s, crosswalk {t2 - t1:.2f} s, analyse {t3 - t2:.2f} s, total {t3 - t0:.2f} s")
    return con


def tables(con) -> list[str]:
    """Every table and view of the picture (a source may be a view over its linked table)."""
    rows = con.execute(
        """SELECT table_name FROM duckdb_tables() WHERE NOT temporary
           UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT temporary AND NOT internal ORDER BY 1"""
    ).fetchall()
    return [r[0] for r in rows if r[0] not in SKIP]


def save(con, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    for t in tables(con):
        con.execute(f"COPY {t} TO '{to / (t + '.parquet')}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT source, rows_read, rows_accepted, rows_rejected FROM load_report) TO '{to / 'load_report.parquet'}' (FORMAT parquet)")
    print(f"saved {len(tables(con)) + 1} tables to {to}")


def compare(con, to: Path) -> int:
    bad = 0
    now = set(tables(con)) | {"load_report"}
    before = {p.stem for p in to.glob("*.parquet")}
    for t in sorted(before - now):
        print(f"MISSING  {t}: in the saved picture, not made now")
        bad += 1
    for t in sorted(now - before):
        print(f"NEW      {t}: made now, not in the saved picture")
    for t in sorted(now & before):
        src = "(SELECT source, rows_read, rows_accepted, rows_rejected FROM load_report)" if t == "load_report" else t
        cols_now = [r[0] for r in con.execute(f"DESCRIBE {src}").fetchall()]
        cols_then = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{to / (t + '.parquet')}'").fetchall()]
        if sorted(cols_now) != sorted(cols_then):
            print(f"DIFFERS  {t}: columns {sorted(set(cols_then) ^ set(cols_now))} added or removed")
            bad += 1
            continue
        cols = ", ".join(f'"{c}"' for c in cols_then)
        a = f"(SELECT {cols} FROM {src})"
        b = f"(SELECT {cols} FROM '{to / (t + '.parquet')}')"
        lost = con.execute(f"SELECT count(*) FROM ({b} EXCEPT ALL {a})").fetchone()[0]
        new = con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone()[0]
        n = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
        if lost or new:
            bad += 1
            print(f"DIFFERS  {t}: {n} rows; {lost} saved rows not made now, {new} rows made now not saved")
            for label, q in (("saved", f"{b} EXCEPT ALL {a}"), ("now  ", f"{a} EXCEPT ALL {b}")):
                for row in con.execute(f"SELECT * FROM ({q}) LIMIT 3").fetchall():
                    print(f"   {label} {row}")
        else:
            print(f"same     {t}: {n} rows")
    print("ALL SAME" if not bad else f"{bad} table(s) differ")
    return 1 if bad else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("save", "compare"))
    ap.add_argument("--size", default="100k", help="cached demo day: 100k, 1m or 3m order lines")
    ap.add_argument("--to", required=True, type=Path, help="folder of the saved tables")
    a = ap.parse_args()
    con = build(a.size)
    if a.action == "save":
        save(con, a.to)
    else:
        sys.exit(compare(con, a.to))


if __name__ == "__main__":
    main()
