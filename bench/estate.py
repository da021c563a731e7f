"""The estate bench: an estate of sites x days x reviews written straight into the snapshot store (no
review is run), and the themes views timed on DuckDB and on Spark local at several sizes.

    .venv/bin/python bench/estate.py                        # sizes s,m,l; both engines; table + results
    .venv/bin/python bench/estate.py --sizes s --engines duckdb
    .venv/bin/python bench/estate.py generate --sites 2 --days 10 --out DIR   # just write an estate store
    .venv/bin/python bench/estate.py time --store DIR --engine spark         # one timing (a child process)

Each (size, engine) runs as its own process through bench/run.py's `measure` (wall, CPU, peak RSS of the
largest process and of the whole tree: Spark's JVM is a child of the Python process). A timing opens the
store (`themes.open_themes`: the scoped `theme_blockers` table, cached on Spark) and runs every view of
the planner export, estate views included (`themes.all_views`). Spark's session start is reported apart.

Estates are cached under bench/cache/estate-<size>-s<seed>-g<version>/ (the version hashes the generator).
Results: bench/results/estate.json and estate.md. bench/README.md says how to read them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

PY = sys.executable
RESULTS = BENCH / "results"
CACHE = BENCH / "cache"
REVIEW_TIMES = ("0900", "1200", "1430", "1600")
START = dt.date(2025, 1, 6)

# Sizes: sites x days, four reviews a day; every site 100,000 orders a day, of which 6 % have an open
# blocker at a review (the demo days run at ~17 %: they are made to show problems).
ORDERS_PER_DAY = 100_000
BLOCKED_SHARE = 0.06
SIZES = {
    "xxs": (2, 1),
    "xs": (2, 5),
    "s": (2, 30),
    "m": (5, 60),
    "l": (10, 90),
    "xl": (20, 120),
}
ESTATE = {"sites": 20, "days": 730, "reviews": 4, "orders_per_day": ORDERS_PER_DAY}  # the estimate's target

# Reasons as the demo site has them: (reason, label, owner, weight, detail kind)
REASONS = (
    ("short_pick", "Short pick", "replenishment", 8, "pick"),
    ("allocation_short", "Allocation short", "inventory control", 7, "alloc"),
    ("credit_hold", "Credit hold", "finance", 4, "hold"),
    ("address", "Address problem", "customer service", 3, "hold"),
    ("label_missing", "Label missing", "shipping", 4, "carton"),
    ("item_master", "Item master data wrong", "master data", 2, "carton"),
    ("packing_supplies", "Packing supplies", "packing", 2, "carton"),
    ("quality_hold", "Quality or damage", "quality", 2, "hold"),
    ("customer_request", "Customer asked to hold", "customer service", 2, "hold"),
    ("unlinked_record", "Unlinked record", "data team", 2, "case"),
    ("not_released", "Not released near cutoff", "order management", 2, "order"),
    ("hold_other", "Hold, reason not recognised", "shift lead", 1, "hold"),
)
CARRIERS = (("UPS", "GND"), ("UPS", "NDA"), ("FDX", "2DAY"), ("FDX", "GRD"), ("LTL", "STD"))

# One site's blockers over every day and review, straight from DuckDB's range(): each blocker of a day
# opens at one review and stays for up to three; SKUs, bins and customers are skewed so that repeat
# offenders exist; the detail text is what the themes views parse SKUs and bins from.
BLOCKERS = """
WITH days AS (SELECT d, CAST($start AS DATE) + CAST(d AS INTEGER) AS review_date FROM range($days) t(d)),
revs AS (SELECT * FROM (VALUES (0, '0900'), (1, '1200'), (2, '1430'), (3, '1600')) v(r, review_time)),
one AS (
    SELECT d.review_date, i, hash($seed, $site, d.d, i) AS h FROM days d, range($per_day) t(i)
),
b AS (
    SELECT one.*, h % 4 AS open_r, (h >> 8) % 3 AS span, (h >> 16) % $total_weight AS pick,
           CAST(pow(((h >> 24) % 100000) / 100000.0, 4) * 60000 AS INTEGER) AS sku_no,
           CAST(pow(((h >> 32) % 100000) / 100000.0, 3) * 9000 AS INTEGER) AS bin_no,
           CAST(pow(((h >> 40) % 10000) / 10000.0, 2) * 5000 AS INTEGER) AS cust_no
    FROM one
)
SELECT $site AS site, b.review_date, v.review_time,
       $site || '-' || CAST(b.review_date AS VARCHAR) || '-' || CAST(b.i AS VARCHAR) AS blocker_id,
       'SO-' || CAST(b.h % 100000000 AS VARCHAR) AS order_id, 'held' AS order_state, k.reason, k.label AS reason_label,
       k.owner, FALSE AS communicate, 'bench' AS basis, CAST(50 + (b.h >> 48) % 50 AS INTEGER) AS priority,
       'tier 2 +20, cutoff band +30' AS priority_rule,
       CAST(b.review_date AS TIMESTAMPTZ) + INTERVAL 17 HOUR AS cutoff_at, 'UPS GND 17:00' AS cutoff_label,
       CAST((b.h >> 20) % 600 AS DOUBLE) AS minutes_to_cutoff,
       CAST(b.review_date AS TIMESTAMPTZ) + to_minutes(CAST(300 + (b.h >> 12) % 300 AS BIGINT)) AS event_at,
       CAST(v.r * 150 + (b.h >> 36) % 240 + CASE WHEN k.kind = 'hold' THEN (b.h >> 44) % 4000 ELSE 0 END AS BIGINT) AS age_minutes,
       'wms' AS source_system, k.kind AS source_entity, k.kind || '.csv' AS source_file, CAST(b.i + 2 AS BIGINT) AS source_line,
       'K' || CAST(b.h % 10000000 AS VARCHAR) AS source_key, NULL AS source_link, NULL AS order_link,
       CASE k.kind
            WHEN 'pick' THEN 'line 2 short 0 of 4 at ' || chr(65 + b.bin_no % 12) || '-' || lpad(CAST(b.bin_no % 99 AS VARCHAR), 2, '0')
                             || '-' || lpad(CAST(b.bin_no % 9 + 1 AS VARCHAR), 2, '0') || ', pick task T' || CAST(b.i AS VARCHAR)
                             || ' (WMS), note "SKU-' || CAST(100000 + b.sku_no AS VARCHAR) || ' bin empty"'
            WHEN 'alloc' THEN 'line 1 SKU-' || CAST(100000 + b.sku_no AS VARCHAR) || ' allocated 0 of 6; partial shipment allowed'
            WHEN 'hold' THEN 'hold H' || CAST(b.i AS VARCHAR) || ' code ' || upper(left(k.reason, 4)) || ' "see notes"'
            WHEN 'carton' THEN 'carton C' || CAST(b.i AS VARCHAR) || ' in pack exception, SKU-' || CAST(100000 + b.sku_no AS VARCHAR)
            WHEN 'case' THEN 'case ' || CAST(b.i AS VARCHAR) || ' cites "SO-00' || CAST(b.i AS VARCHAR) || '", which matches no order'
            ELSE 'order not released in the OMS'
       END AS detail,
       'C-' || CAST(1000 + b.cust_no AS VARCHAR) AS customer_id, 'Customer ' || CAST(b.cust_no AS VARCHAR) AS customer_name,
       c.carrier, c.service
FROM b
JOIN revs v ON v.r BETWEEN b.open_r AND least(b.open_r + b.span, 3)
JOIN reasons k ON b.pick >= k.lo AND b.pick < k.hi
JOIN carriers c ON c.n = (b.h >> 52) % 5
"""

REVIEWS = """
SELECT $site AS site, CAST($start AS DATE) + CAST(d AS INTEGER) AS review_date, v.review_time,
       CAST(CAST($start AS DATE) + CAST(d AS INTEGER) AS TIMESTAMPTZ) + INTERVAL 9 HOUR AS review_at,
       'bench-' || $site || '-' || CAST(d AS VARCHAR) || '-' || v.review_time AS run_id, now() AS written_at, '{}' AS summary
FROM range($days) t(d), (VALUES ('0900'), ('1200'), ('1430'), ('1600')) v(review_time)
"""

MEAN_APPEARANCES = (2 + 2 + 5 / 3 + 1) / 4  # reviews a blocker is seen in: opens at one of 4, stays up to 3


def version() -> str:
    """A hash of what decides an estate's contents (a changed generator makes new estates)."""
    what = repr((BLOCKERS, REVIEWS, REASONS, CARRIERS, ORDERS_PER_DAY, BLOCKED_SHARE, START, REVIEW_TIMES))
    return hashlib.sha256(what.encode()).hexdigest()[:8]


def generate(out: Path, sites: int, days: int, seed: int = 7, orders_per_day: int = ORDERS_PER_DAY,
             share: float = BLOCKED_SHARE) -> dict:
    """Write an estate of `sites` x `days` x 4 reviews into the store at `out` (tables blockers and
    reviews, in the store's layout: bench/README.md). Returns rows, bytes and seconds."""
    import duckdb
    import pandas as pd

    from handoff_lib.history.store import PARTITIONS

    t0 = time.perf_counter()
    part = out.with_name(out.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    per_review = round(orders_per_day * share)
    per_day = round(per_review * len(REVIEW_TIMES) / MEAN_APPEARANCES)
    total = sum(r[3] for r in REASONS)
    lo = 0
    rows = []
    for reason, label, owner, weight, kind in REASONS:
        rows.append((reason, label, owner, kind, lo, lo + weight))
        lo += weight
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    reasons = pd.DataFrame(rows, columns=["reason", "label", "owner", "kind", "lo", "hi"])  # noqa: F841
    carriers = pd.DataFrame([(i, c, s) for i, (c, s) in enumerate(CARRIERS)], columns=["n", "carrier", "service"])  # noqa: F841
    con.execute("CREATE TABLE reasons AS SELECT * FROM reasons")
    con.execute("CREATE TABLE carriers AS SELECT * FROM carriers")
    n_rows = 0
    for s in range(sites):
        site = f"dc{s + 1:02d}"
        params = {"site": site, "start": START, "days": days, "seed": seed, "per_day": per_day, "total_weight": total}
        for table, sql in (("blockers", BLOCKERS), ("reviews", REVIEWS)):
            tmp = part / "_site" / table
            tmp.parent.mkdir(parents=True, exist_ok=True)
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            con.sql(sql, params=used).write_parquet(str(tmp), compression="zstd", partition_by=list(PARTITIONS),
                                                      write_partition_columns=False)
            (part / table).mkdir(parents=True, exist_ok=True)
            os.replace(tmp / f"site={site}", part / table / f"site={site}")
            shutil.rmtree(part / "_site")
        n_rows += con.execute(
            "SELECT count(*) FROM read_parquet($g, hive_partitioning = false)", {"g": str(part / "blockers" / f"site={site}" / "*" / "*" / "*.parquet")}
        ).fetchall()[0][0]
        print(f"  estate: site {site} written ({n_rows:,} blocker rows so far, {time.perf_counter() - t0:.0f} s)", flush=True)
    con.close()
    shutil.rmtree(out, ignore_errors=True)
    part.replace(out)
    size = sum(p.stat().st_size for p in (out / "blockers").rglob("*.parquet"))
    files = sum(1 for _ in (out / "blockers").rglob("*.parquet"))
    return {"sites": sites, "days": days, "reviews": sites * days * 4, "blocker_rows": int(n_rows), "blocker_bytes": size,
            "files": files, "per_review": per_review, "seconds": round(time.perf_counter() - t0, 1)}


def time_views(store: Path, engine: str, driver_memory: str = "8g") -> dict:
    """One timing, in this process: (Spark session start), open the store, run every view."""
    from handoff_lib.history import engines
    from handoff_lib.learn import themes

    out: dict = {"engine": engine, "store": str(store)}
    if engine == "spark":
        t = time.perf_counter()
        engines.spark_session(conf={"spark.driver.memory": driver_memory})
        out["session_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    con, scope = themes.open_themes(store, engine=engine)
    out["rows"] = int(con.rows("SELECT count(*) FROM theme_blockers")[0][0])  # also fills Spark's cache
    out["open_s"] = round(time.perf_counter() - t, 2)
    views: dict[str, float] = {}
    t_all = time.perf_counter()
    for name, fn in (
        ("pareto", lambda: themes.pareto(con)),
        ("by_week", lambda: themes.by_week(con)),
        *((f"repeat_{d}", (lambda d=d: themes.offenders(con, d, 25))) for d in themes.DIMENSIONS),
        ("age_by_owner", lambda: themes.age_by_owner(con)),
        ("estate_themes", lambda: themes.estate_themes(con)),
        ("site_themes", lambda: themes.site_themes(con)),
        ("site_week", lambda: themes.site_week(con)),
    ):
        t = time.perf_counter()
        fn()
        views[name] = round(time.perf_counter() - t, 3)
    out["views_s"] = round(time.perf_counter() - t_all, 2)
    out["per_view_s"] = views
    out["total_s"] = round(out["open_s"] + out["views_s"], 2)
    out["sites"] = len(scope.sites)
    con.close()
    from run import tree_cpu_s

    out["cpu_s"] = round(tree_cpu_s(os.getpid()), 2)  # this process and Spark's JVM (a child it never waits for)
    out["status"] = "ok"
    return out


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(a, k) of t = a * n^k by least squares in log-log, from (n, t) points."""
    pts = [(math.log(n), math.log(t)) for n, t in points if n > 0 and t and t > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    k = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 1.0
    return math.exp(my - k * mx), k


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main_bench(args: argparse.Namespace) -> None:
    from run import measure

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict = {"started": dt.datetime.now().isoformat(timespec="seconds"), "load_before": loadavg(), "cores": os.cpu_count(),
                    "orders_per_day": ORDERS_PER_DAY, "blocked_share": BLOCKED_SHARE, "version": version(), "sizes": {}}
    earlier = RESULTS / "estate.json"
    if not args.fresh and earlier.exists():  # sizes measured by an earlier run of the same generator stay in the table
        before = json.loads(earlier.read_text())
        if before.get("version") == version():
            report["sizes"] = before.get("sizes", {})  # an engine measured again replaces its figures, others stay
            report["earlier_runs"] = before.get("earlier_runs", []) + [before.get("started")]
    for size in sizes:
        sites, days = SIZES[size]
        store = CACHE / f"estate-{size}-s{args.seed}-g{version()}"
        if not (store / "blockers").is_dir():
            for old in CACHE.glob(f"estate-{size}-s{args.seed}-g*"):
                shutil.rmtree(old, ignore_errors=True)
            print(f"bench: generating estate {size}: {sites} sites x {days} days x 4 reviews", flush=True)
            gen = generate(store, sites, days, args.seed)
            (store / "generated.json").write_text(json.dumps(gen))
        gen = json.loads((store / "generated.json").read_text())
        entry = {"generated": gen, "engines": report["sizes"].get(size, {}).get("engines", {})}
        for engine in engines:
            result = RESULTS / f"estate-{size}-{engine}.json"
            cmd = [PY, str(Path(__file__)), "time", "--store", str(store), "--engine", engine, "--result", str(result)]
            entry["engines"][engine] = m = measure(cmd, result, timeout=args.timeout)
            c = m.get("child", {})
            print(f"bench: estate {size} ({gen['blocker_rows']:,} rows) {engine}: total {c.get('total_s')} s "
                  f"(open {c.get('open_s')}, views {c.get('views_s')}), wall {m['wall_s']} s, tree {m['tree_peak_mb']} MB "
                  f"[{c.get('status')}] load {loadavg()}", flush=True)
        report["sizes"][size] = entry
        (RESULTS / "estate.json").write_text(json.dumps(report, indent=2))
    report["load_after"] = loadavg()
    report["analysis"] = analyse(report)
    (RESULTS / "estate.json").write_text(json.dumps(report, indent=2))
    md = markdown(report)
    (RESULTS / "estate.md").write_text(md)
    print(md)


def analyse(report: dict) -> dict:
    """Growth per engine, where the two cross, and the estimate for the whole estate."""
    pts: dict[str, list[tuple[float, float]]] = {}
    for entry in report["sizes"].values():
        n = entry["generated"]["blocker_rows"]
        for engine, m in entry["engines"].items():
            c = m.get("child", {})
            if c.get("status") == "ok":
                pts.setdefault(engine, []).append((n, c["total_s"]))
    out: dict = {"fits": {e: fit(p) for e, p in pts.items()}}
    fd, fs = out["fits"].get("duckdb"), out["fits"].get("spark")
    if fd and fs:
        measured = [(n, td, dict(pts["spark"]).get(n)) for n, td in pts["duckdb"]]
        faster = [n for n, td, ts in measured if ts is not None and ts < td]
        out["spark_faster_at"] = faster
        if not faster and abs(fd[1] - fs[1]) > 1e-6 and fd[1] > fs[1]:
            out["cross_rows"] = (fs[0] / fd[0]) ** (1 / (fd[1] - fs[1]))
    per_review = round(ESTATE["orders_per_day"] * BLOCKED_SHARE)
    out["estate_blocker_rows"] = ESTATE["sites"] * ESTATE["days"] * ESTATE["reviews"] * per_review
    biggest = max(report["sizes"].values(), key=lambda e: e["generated"]["blocker_rows"])
    sp = biggest["engines"].get("spark", {}).get("child", {})
    if sp.get("status") == "ok":
        n = biggest["generated"]["blocker_rows"]
        cores = report["cores"] or 2
        out["spark_core_s_per_m_rows"] = round(cores * sp["total_s"] / (n / 1e6), 2)  # wall x cores: an upper bound
        if sp.get("cpu_s"):
            out["spark_cpu_s_per_m_rows"] = round(sp["cpu_s"] / (n / 1e6), 2)
        out["blocker_bytes_per_row"] = round(biggest["generated"]["blocker_bytes"] / n, 1)
    return out


def markdown(report: dict) -> str:
    L = [
        "# Estate bench: the themes views on DuckDB and on Spark local",
        "",
        (
            f"Started {report['started']}, {report['cores']} cores, load average before {report['load_before']}, after "
            f"{report.get('load_after')}. Each site: {ORDERS_PER_DAY:,} orders a day, {BLOCKED_SHARE:.0%} of them with an open "
            "blocker at a review, four reviews a day. **total** = open the store (scoped, cached `theme_blockers`) + every view "
            "of the planner export; Spark's session start (JVM) is apart. **CPU** = CPU seconds of the process and Spark's JVM, "
            "the whole run (on a loaded machine a truer measure of work than wall time). **memory** = peak RSS summed over "
            "the process tree."
        ),
        "",
        "| size | sites x days | blocker rows | files | DuckDB total s | DuckDB CPU s | DuckDB memory MB | Spark local total s | Spark CPU s | Spark session s | Spark memory MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ordered = sorted(report["sizes"].items(), key=lambda kv: kv[1]["generated"]["blocker_rows"])
    for size, entry in ordered:
        g = entry["generated"]
        d = entry["engines"].get("duckdb", {})
        s = entry["engines"].get("spark", {})
        dc, sc = d.get("child", {}), s.get("child", {})
        L.append(
            f"| {size} | {g['sites']} x {g['days']} | {g['blocker_rows']:,} | {g['files']:,} | {dc.get('total_s', 'n/a')} | "
            f"{dc.get('cpu_s', d.get('cpu_s', 'n/a'))} | {d.get('tree_peak_mb', 'n/a')} | {sc.get('total_s', 'n/a')} | "
            f"{sc.get('cpu_s', 'n/a')} | {sc.get('session_s', 'n/a')} | {s.get('tree_peak_mb', 'n/a')} |"
        )
    a = report.get("analysis", {})
    L += ["", "Growth (t = a * rows^k): " + ", ".join(f"{e} k = {f[1]:.2f}" for e, f in a.get("fits", {}).items() if f)]
    if a.get("spark_faster_at"):
        L.append(f"Spark local was faster at {', '.join(f'{n:,}' for n in a['spark_faster_at'])} rows.")
    elif a.get("cross_rows"):
        L.append(f"Spark local was never faster here; the fitted curves cross near {a['cross_rows']:,.0f} rows.")
    else:
        L.append("Spark local was never faster here, and its time grows no slower than DuckDB's: on one machine they do not cross.")
    if a.get("spark_core_s_per_m_rows"):
        L.append(f"Spark local: {a['spark_core_s_per_m_rows']} core-seconds per million blocker rows for the whole export "
                 f"(largest size); {a.get('blocker_bytes_per_row')} Parquet bytes per blocker row.")
    L.append(f"The whole estate ({ESTATE['sites']} sites x {ESTATE['days']} days x {ESTATE['reviews']} reviews): "
             f"{a.get('estate_blocker_rows', 0):,} blocker rows.")
    for size, entry in report["sizes"].items():
        for engine, m in entry["engines"].items():
            c = m.get("child", {})
            if c.get("per_view_s"):
                L.append(f"- {size} {engine} per view (s): " + ", ".join(f"{k} {v}" for k, v in c["per_view_s"].items()))
    return "\n".join(L) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    g = sub.add_parser("generate", help="write an estate store")
    g.add_argument("--sites", type=int, default=2)
    g.add_argument("--days", type=int, default=10)
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--orders-per-day", type=int, default=ORDERS_PER_DAY)
    g.add_argument("--blocked-share", type=float, default=BLOCKED_SHARE)
    g.add_argument("--out", required=True)
    t = sub.add_parser("time", help="time the views over a store (one engine, this process)")
    t.add_argument("--store", required=True)
    t.add_argument("--engine", choices=("duckdb", "spark"), required=True)
    t.add_argument("--driver-memory", default="8g")
    t.add_argument("--result", help="write the figures as JSON here")
    p.add_argument("--sizes", default="s,m,l", help=f"comma-separated, of {', '.join(SIZES)}")
    p.add_argument("--engines", default="duckdb,spark")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--fresh", action="store_true", help="forget sizes measured by earlier runs")
    args = p.parse_args()
    if args.cmd == "generate":
        print(json.dumps(generate(Path(args.out), args.sites, args.days, args.seed, args.orders_per_day, args.blocked_share), indent=2))
    elif args.cmd == "time":
        res = time_views(Path(args.store), args.engine, args.driver_memory)
        if args.result:
            Path(args.result).write_text(json.dumps(res))
        print(json.dumps(res, indent=2))
    else:
        main_bench(args)


if __name__ == "__main__":
    main()
