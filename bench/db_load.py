"""Load time of a demo day from PostgreSQL against the same day's CSV files (issue 19).

    .venv/bin/python bench/db_load.py                 # the 1M-line day, 3 rounds
    .venv/bin/python bench/db_load.py --size 100k --rounds 5

Starts a throwaway PostgreSQL cluster on loopback (tests/pgcluster.py, Debian's server), loads the cached
demo day (bench/cache, as `bench/run.py --sizes 1m` makes it) into it as a WMS/ERP would hold it
(tests/wms_db.py: own table and column names, typed columns, reporting views), then alternates, per round:

* `csv load`: `load_extracts` of the demo site on the CSV files (typed tables, rejects, load report);
* `db load`: `load_extracts` of the same site reading every source from the database (dbsource.py);
* `csv read`: DuckDB reading every file into VARCHAR tables (the file path's read alone);
* `db read`: every query's rows into VARCHAR tables through ADBC (the database path's read alone);
* with `--compare-drivers`, `psycopg read`: the same through psycopg's binary COPY, rows turned into Arrow
  batches in Python (the alternative dbsource.py did not take; see its docstring).

Wall seconds and this process's CPU seconds (the PostgreSQL server's own CPU is not in them; it shares
the machine's 2 cores). Prints a table and writes bench/results/db_load.json. Timing lives here, never in
tests; the machine is shared, so the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(BENCH))

ENV = "HANDOFF_BENCH_WMS_URL"


def _timed(fn) -> tuple[float, float]:
    gc.collect()
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1m", help="order lines of the demo day (100k, 1m, ...)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare-drivers", action="store_true", help="also time psycopg's binary COPY into Arrow batches")
    args = ap.parse_args()

    import duckdb
    import wms_db
    from data import ensure_day, parse_size
    from pgcluster import Cluster

    from handoff_lib.load.extracts import load_extracts
    from handoff_lib.load.settings import load_settings

    meta = ensure_day(parse_size(args.size))
    data = Path(meta["data"])
    load_before = os.getloadavg()
    results: dict[str, list[tuple[float, float]]] = {"csv load": [], "db load": [], "csv read": [], "db read": []}
    with Cluster() as cluster:
        with cluster.connect() as admin:
            admin.execute("CREATE DATABASE wms")
        t0 = time.perf_counter()
        with cluster.connect("wms") as pg:
            wms_db.load_day(pg, data, REPO / "parameters/demo.yaml")
            pg.execute("VACUUM ANALYZE")
        fill_s = time.perf_counter() - t0
        os.environ[ENV] = cluster.url(wms_db.READER, wms_db.READER_PASSWORD, "wms")
        site = wms_db.db_site(
            REPO / "parameters/demo.yaml", data.parent / "db_site.yaml", url_env=ENV
        )  # beside the day: allowed_roots [..]
        csv_settings = load_settings(REPO / "parameters/demo.yaml", data_folder=data)
        db_settings = load_settings(site, data_folder=data)
        queries = [wms_db_query(db_settings, e) for e in db_settings.sources]

        def csv_read() -> None:
            con = duckdb.connect()
            for e, spec in csv_settings.sources.items():
                con.execute(
                    f"CREATE TABLE t_{e} AS SELECT * FROM read_csv(?, all_varchar = true, header = true)", [str(data / spec.file)]
                )

        def db_read() -> None:
            import adbc_driver_postgresql.dbapi as adbc

            con = duckdb.connect()
            with adbc.connect(os.environ[ENV]) as pgc:
                for i, q in enumerate(queries):
                    cur = pgc.cursor()
                    cur.execute(q)
                    reader = cur.fetch_record_batch()
                    n = len(reader.schema)
                    con.register("r", reader)
                    con.execute(f"CREATE TABLE t{i} AS SELECT {', '.join(f'CAST(#{k + 1} AS VARCHAR)' for k in range(n))} FROM r")
                    con.unregister("r")
                    cur.close()

        def psycopg_read() -> None:
            import psycopg
            import pyarrow as pa

            con = duckdb.connect()
            with psycopg.connect(os.environ[ENV]) as pgc, pgc.cursor() as cur:
                for i, q in enumerate(queries):
                    cur.execute(f"SELECT * FROM ({q}) q LIMIT 0")
                    oids = [d.type_code for d in cur.description]
                    n, first = len(oids), True
                    with cur.copy(f"COPY ({q}) TO STDOUT (FORMAT BINARY)") as cp:
                        cp.set_types(oids)
                        rows: list[tuple] = []
                        for row in itertools.chain(cp.rows(), [None]):  # None: flush the last batch
                            if row is not None:
                                rows.append(row)
                            if rows and (row is None or len(rows) == 50_000):
                                con.register("batch", pa.table({f"c{k}": pa.array([r[k] for r in rows]) for k in range(n)}))
                                sql = f"SELECT {', '.join(f'CAST(c{k} AS VARCHAR) AS c{k}' for k in range(n))} FROM batch"
                                con.execute(f"CREATE TABLE t{i} AS {sql}" if first else f"INSERT INTO t{i} {sql}")
                                con.unregister("batch")
                                first, rows = False, []

        steps = {
            "csv load": lambda: load_extracts(duckdb.connect(), csv_settings),
            "db load": lambda: load_extracts(duckdb.connect(), db_settings),
            "csv read": csv_read,
            "db read": db_read,
        }
        if args.compare_drivers:
            steps["psycopg read"] = psycopg_read
            results["psycopg read"] = []
        for r in range(args.rounds):
            for name, fn in steps.items():
                results[name].append(_timed(fn))
                print(f"round {r + 1} {name}: {results[name][-1][0]:.2f} s", file=sys.stderr)
    load_after = os.getloadavg()

    rows = {
        k: (statistics.median(w for w, _ in v), min(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in results.items()
    }
    print(f"\n{meta['order_lines']:,} order lines ({meta['orders']:,} orders), {args.rounds} rounds; "
          f"PostgreSQL filled in {fill_s:.1f} s; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")  # fmt: skip
    print("| step | wall s (median) | wall s (best) | client CPU s (median) |")
    print("|---|---:|---:|---:|")
    for k, (med, best, cpu) in rows.items():
        print(f"| {k} | {med:.2f} | {best:.2f} | {cpu:.2f} |")
    print(f"\ndb load / csv load: {rows['db load'][0] / rows['csv load'][0]:.2f}x (median), "
          f"{rows['db load'][1] / rows['csv load'][1]:.2f}x (best)")  # fmt: skip
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / "db_load.json").write_text(
        json.dumps({"meta": meta, "fill_s": fill_s, "load_avg": [load_before, load_after], "runs": results}, indent=2)
    )


def wms_db_query(settings, entity: str) -> str:
    from handoff_lib.load.dbsource import _select

    spec = settings.sources[entity]
    return _select(spec, "postgresql")


if __name__ == "__main__":
    main()
