"""The benchmark entry point: every step as its own process, timed from outside, at every size.

    .venv/bin/python bench/run.py [--sizes 100k,1m,3m] [--steps floor,pandas,load,...] [--seed 7]

Writes bench/results/bench.json and bench/results/bench.md (machine, load average, versions, the
figures per step and size, the targets, the growth table, the pandas-vs-suite state agreement).
See bench/README.md for what each step measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import data

PY = sys.executable
RESULTS = BENCH / "results"
ALL_STEPS = (
    "floor", "floor_table", "pandas", "load", "crosswalk", "analyse", "snapshot", "suite", "suite_file", "review", "notes", "board",
)  # fmt: skip
PER_DAY = ("floor", "floor_table", "pandas", "load", "crosswalk", "analyse", "snapshot", "suite", "suite_file", "review")
STAGE_INPUT = {"crosswalk": "load", "analyse": "crosswalk", "snapshot": "analyse"}  # step -> stage it starts from
LABELS = {
    "floor": "read floor (DuckDB count(*) per file)",
    "floor_table": "read into VARCHAR tables (context)",
    "pandas": "pandas reference (read, merge, states)",
    "load": "load + validate",
    "crosswalk": "crosswalk + order picture",
    "analyse": "states + blockers + promise (+ board)",
    "snapshot": "snapshot write",
    "suite": "suite compute load -> snapshot (one process)",
    "suite_file": "same, built straight into a DuckDB file (context)",
    "review": "cutoff review run (papermill + HTML)",
    "notes": "notes classification (100,000 notes)",
    "board": "board time to interactive",
}
TARGETS = {"suite_s": 15.0, "suite_gb": 3.0, "floor_ratio": 2.0, "pandas_ratio": 5.0, "review_s": 30.0, "analyse_s": 10.0}


# ------------------------------------------------------------------------------------------ measuring


def tree_sum(root: int, value) -> float:
    """Sum of `value(fields)` over `root` and all its descendants, where fields are a process's /proc/<pid>/stat
    fields after its name (fields[1] is the parent pid)."""
    children: dict[int, list[int]] = {}
    values: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
            ppid, v = int(parts[1]), value(parts)
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
        values[int(d)] = v
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += values.get(p, 0)
        todo += children.get(p, [])
    return total


def _tree_rss_kb(root: int) -> int:
    """Resident memory of `root` and all its descendants, from /proc (kB)."""
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    return int(tree_sum(root, lambda f: int(f[21]) * page_kb))


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by `root` and every process below it, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    return float(tree_sum(root, lambda f: (int(f[11]) + int(f[12])) / tick))


def measure(cmd: list[str], result: Path, timeout: float = 3600) -> dict:
    """Run `cmd` as a child process; its wall time, CPU time and peak memory (maxrss from /usr/bin/time: the largest
    single process of the child and the descendants it waited for; and the sampled sum over the tree)."""
    if result.exists():
        result.unlink()
    peak = {"tree": 0}
    timing = result.with_suffix(".time")
    # /usr/bin/time starts the child: a child forked straight from this process would inherit this
    # process's high-water RSS in its own maxrss (Linux keeps it across exec).
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(timing), *cmd]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak["tree"] = max(peak["tree"], _tree_rss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    reader.join(timeout=5)
    try:
        _, user, system, maxrss_kb = timing.read_text().strip().splitlines()[-1].split()
    except (OSError, ValueError):
        user, system, maxrss_kb = 0, 0, 0
    m = {
        "wall_s": round(wall, 2),
        "cpu_s": round(float(user) + float(system), 2),
        "peak_rss_mb": round(int(maxrss_kb) / 1024),
        "tree_peak_mb": round(max(peak["tree"], int(maxrss_kb)) / 1024),
        "exit": proc.returncode,
    }
    if result.exists():
        m["child"] = json.loads(result.read_text())
    if proc.returncode != 0 or not result.exists():
        m["child"] = {"status": "failed", "why": "".join(out)[-2000:]}
    return m


# ------------------------------------------------------------------------------------------ steps


def run_step(step: str, meta: dict, work: Path, args) -> dict:
    d = meta["data"]
    res = work / f"{step}.result.json"
    steps_py = [PY, str(BENCH / "steps.py")]
    if step == "floor":
        return measure([PY, str(BENCH / "read_floor.py"), "--data", d, "--mode", "count", "--result", str(res)], res)
    if step == "floor_table":
        return measure([PY, str(BENCH / "read_floor.py"), "--data", d, "--mode", "table", "--result", str(res)], res)
    if step == "pandas":
        return measure(
            [
                PY,
                str(BENCH / "pandas_reference.py"),
                "--data",
                d,
                "--out",
                str(work / "pandas_states.parquet"),
                "--result",
                str(res),
            ],
            res,
        )
    if step == "load":
        out = work / "load.duckdb"
        _fresh(out)
        return measure([*steps_py, "load", "--data", d, "--out", str(out), "--result", str(res)], res)
    if step in STAGE_INPUT:
        src = work / f"{STAGE_INPUT[step]}.duckdb"
        if not src.exists():  # the stage it starts from: build it first (measured and recorded too)
            meta.setdefault("prerequisites", {})[STAGE_INPUT[step]] = run_step(STAGE_INPUT[step], meta, work, args)
        out = work / f"{step}.duckdb"
        _fresh(out)
        shutil.copyfile(src, out)
        extra = ["--history", str(work / "history.duckdb")] if step == "snapshot" else []
        return measure([*steps_py, step, "--data", d, "--out", str(out), *extra, "--result", str(res)], res)
    if step == "suite":
        out = work / "suite.duckdb"
        _fresh(out)
        return measure(
            [
                *steps_py,
                "suite",
                "--data",
                d,
                "--out",
                str(out),
                "--history",
                str(work / "suite_history.duckdb"),
                "--result",
                str(res),
            ],
            res,
        )
    if step == "suite_file":  # the picture built straight into a file: what writing every stage to disk costs
        out, hist = work / "suite_file.duckdb", work / "suite_file_history.duckdb"
        _fresh(out)
        return measure([*steps_py, "suite_file", "--data", d, "--out", str(out), "--history", str(hist), "--result", str(res)], res)
    if step == "review":
        out = work / "review"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        return measure([*steps_py, "review", "--data", d, "--out", str(out), "--result", str(res)], res)
    if step == "notes":
        out = work / "notes"
        out.mkdir(parents=True, exist_ok=True)
        return measure(
            [*steps_py, "notes", "--data", d, "--out", str(out), "--notes", str(args.notes), "--result", str(res)], res
        )
    if step == "board":
        hist = [
            data.day_dir(data.parse_size(sz), args.seed) / "work" / "review" / "history.duckdb"
            for sz in args.review_sizes.split(",")
            if sz
        ]
        return run_board(work, next((h for h in hist if h.exists()), None), args.board_loads)
    raise ValueError(step)


def run_board(work: Path, history: Path | None = None, loads: int = 5) -> dict:
    """bench/board_loop.py (owned by the board work) when it exists, as its own process: page loads in
    headless Chromium until the blocker queue is on the page. Reads the history the review step wrote."""
    script = BENCH / "board_loop.py"
    if not script.exists():
        return {"child": {"status": "n/a", "why": "bench/board_loop.py does not exist yet"}}
    res = work / "board.result.json"
    res.unlink(missing_ok=True)
    cmd = [PY, str(script), "--loads", str(loads), "--json", str(res)]
    if history is not None and history.exists():
        cmd += ["--history", str(history)]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired:
        return {"child": {"status": "failed", "why": "bench/board_loop.py ran over 900 s"}}
    wall = time.perf_counter() - t0
    figures = json.loads(res.read_text()) if res.exists() else {}
    tail = [ln for ln in p.stdout.splitlines() if ln.startswith(("board loads", "time to interactive", "filter change"))]
    return {
        "wall_s": round(wall, 2),
        "exit": p.returncode,
        "history": str(history) if history else None,
        "child": {
            "status": "ok" if p.returncode == 0 and figures else "failed",
            "why": (p.stdout + p.stderr)[-1500:] if p.returncode != 0 or not figures else None,
            "output": " / ".join(tail),
            "figures": figures,
        },
    }


def _fresh(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        if p.exists():
            p.unlink()


def compare_states(work: Path) -> dict | None:
    """Agreement of the pandas reference's order states with the suite's (order_states of the analyse stage)."""
    import duckdb

    pq, db = work / "pandas_states.parquet", work / "analyse.duckdb"
    if not pq.exists() or not db.exists():
        return None
    con = duckdb.connect()
    con.execute("ATTACH ? AS s (READ_ONLY)", [str(db)])
    con.execute("CREATE TABLE p AS SELECT * FROM read_parquet($pq)", {"pq": str(pq)})
    total, both, same = con.execute(
        "SELECT count(*), count(p.order_id) FILTER (WHERE s.order_id IS NOT NULL), count(*) FILTER (WHERE p.state = s.state) "
        "FROM s.order_states s FULL JOIN p USING (order_id)"
    ).fetchone()
    diffs = con.execute(
        """SELECT s.state AS suite, p.state AS pandas, count(*) AS orders, min(order_id) AS example
           FROM s.order_states s FULL JOIN p USING (order_id) WHERE s.state IS DISTINCT FROM p.state
           GROUP BY ALL ORDER BY orders DESC"""
    ).fetchall()
    return {
        "orders": int(total),
        "in_both": int(both),
        "same_state": int(same),
        "agreement_pct": round(100.0 * same / total, 3) if total else None,
        "differences": [{"suite": a, "pandas": b, "orders": int(n), "example": e} for a, b, n, e in diffs],
    }


# ------------------------------------------------------------------------------------------ machine


def machine() -> dict:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    cpu = platform.processor()
    with open("/proc/cpuinfo") as fh:
        cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    versions = {"python": platform.python_version()}
    for pkg in ("handoff", "duckdb", "pandas", "numpy", "pyarrow", "papermill", "nbconvert", "scikit-learn"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "handoff_lib"], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "versions": versions,
        "git": git + (" + uncommitted changes in handoff_lib" if dirty else ""),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ------------------------------------------------------------------------------------------ report


def seconds(m: dict | None, own: bool = False) -> float | None:
    if not m or m.get("child", {}).get("status") != "ok":
        return None
    return m["child"].get("seconds") if own else m.get("wall_s")


def growth(report: dict) -> list[dict]:
    """Per step: wall time and peak memory at each size, and the exponent k in time ~ lines^k between sizes."""
    sizes = [s for s in report["sizes"] if report["days"].get(s)]
    rows = []
    for step in PER_DAY:
        pts = [(report["days"][s]["order_lines"], report["days"][s]["steps"].get(step)) for s in sizes]
        pts = [(n, m) for n, m in pts if m and m.get("child", {}).get("status") == "ok"]
        if len(pts) < 2:
            continue
        row = {
            "step": step,
            "points": [
                {"lines": n, "wall_s": m["wall_s"], "work_s": m["child"].get("seconds"), "rss_mb": m["peak_rss_mb"]}
                for n, m in pts
            ],
        }
        exps = []
        for (n1, m1), (n2, m2) in itertools.pairwise(pts):
            t1, t2 = m1["child"].get("seconds") or m1["wall_s"], m2["child"].get("seconds") or m2["wall_s"]
            exps.append({
                "from": n1, "to": n2,
                "time_exp": round(math.log(t2 / t1) / math.log(n2 / n1), 2) if t1 and t2 else None,
                "mem_exp": round(math.log(m2["peak_rss_mb"] / m1["peak_rss_mb"]) / math.log(n2 / n1), 2),
            })  # fmt: skip
        for e, (_, m1), (_, m2) in zip(exps, pts[:-1], pts[1:], strict=True):  # CPU seconds: compute, without waiting
            c1, c2 = m1.get("cpu_s"), m2.get("cpu_s")
            e["cpu_exp"] = round(math.log(c2 / c1) / math.log(e["to"] / e["from"]), 2) if c1 and c2 else None
        row["exponents"] = exps
        last = exps[-1]["time_exp"]
        row["superlinear"] = bool(last is not None and last > 1.15)
        rows.append(row)
    return rows


def fmt(x, unit: str = "", nd: int = 1) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.{nd}f}{unit}"


def markdown(report: dict) -> str:
    mc = report["machine"]
    L = [
        "# handoff benchmarks",
        "",
        f"Run {report['started']} - {report['finished']} with `{report['command']}`.",
        f"Machine: {mc['cores']} cores ({mc['cpu']}), {mc['memory_gb']} GB RAM, {mc['os']}; code {mc['git']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in mc["versions"].items()) + ".",
        (
            f"Load average (1/5/15 min) before: {report['load_before']}, after: {report['load_after']} "
            "(the machine is shared: figures taken under load are slower than on an idle machine)."
        ),
        "",
        (
            "Each step is its own process. **wall** = the child process from start to exit (interpreter start and imports "
            "included); **work** = what the step timed itself; **CPU** = user + system seconds; **peak RSS** = the largest "
            "single process (/usr/bin/time maxrss); **tree** = the sampled sum over the child and its descendants (papermill's kernel)."
        ),
        "",
    ]
    for size in report["sizes"]:
        day = report["days"].get(size)
        if not day:
            continue
        L += [
            f"## {size}: {day['order_lines']:,} order lines, {day['orders']:,} orders ({day['bytes'] / 1e6:,.0f} MB of CSV)",
            "",
        ]
        L += ["| step | wall s | work s | CPU s | peak RSS MB | tree MB | notes |", "|---|---:|---:|---:|---:|---:|---|"]
        for step in PER_DAY:
            m = day["steps"].get(step)
            if m is None:
                continue
            c = m.get("child", {})
            if c.get("status") != "ok":
                L.append(
                    f"| {LABELS[step]} | n/a | | | | | {c.get('why', c.get('status', ''))[:200].splitlines()[-1] if c.get('why') else c.get('status')} |"
                )
                continue
            note = ""
            if c.get("parts"):
                note = ", ".join(f"{k} {v:.2f}" for k, v in c["parts"].items() if isinstance(v, (int, float)))
            if step in ("suite", "suite_file") and c.get("analyse_parts"):
                note += "; analyse: " + ", ".join(f"{k} {v:.2f}" for k, v in c["analyse_parts"].items())
            outside = [f"{label} {c[k]:.2f} s" for k, label in (("copy_in_s", "copy in"), ("picture_file_s", "picture file")) if c.get(k)]
            if outside:
                note += ("; " if note else "") + "not in work: " + ", ".join(outside)
            L.append(
                f"| {LABELS[step]} | {fmt(m['wall_s'], nd=2)} | {fmt(c.get('seconds'), nd=2)} | {fmt(m.get('cpu_s'), nd=1)} | "
                f"{m['peak_rss_mb']:,} | {m['tree_peak_mb']:,} | {note} |"
            )
        r = day.get("ratios", {})
        if r:
            L += ["", "Ratios (work seconds): " + "; ".join(f"{k} = {v}" for k, v in r.items() if v is not None)]
        if day.get("agreement"):
            a = day["agreement"]
            L += [
                "",
                f"pandas reference vs suite, order states: {a['same_state']:,} of {a['orders']:,} orders agree ({a['agreement_pct']} %).",
            ]
            for dd in a["differences"][:10]:
                L.append(f"- suite `{dd['suite']}` vs pandas `{dd['pandas']}`: {dd['orders']} orders (e.g. {dd['example']})")
        L.append("")
    once = report.get("once", {})
    if once:
        L += ["## Size-independent steps", "", "| step | wall s | work s | peak RSS MB | notes |", "|---|---:|---:|---:|---|"]
        for step, m in once.items():
            c = m.get("child", {})
            if c.get("status") != "ok":
                L.append(f"| {LABELS[step]} | n/a | | | {(c.get('why') or c.get('status') or '').strip()[:300]} |")
                continue
            note = ", ".join(
                f"{k} {v}" for k, v in c.items() if k not in ("status", "seconds", "parts", "output", "figures", "why")
            )
            if c.get("parts"):
                note = ", ".join(f"{k} {v:.2f} s" for k, v in c["parts"].items()) + "; " + note
            if c.get("output"):
                note += " " + c["output"].strip().replace("\n", " / ")[-400:]
            L.append(
                f"| {LABELS[step]} | {fmt(m.get('wall_s'), nd=2)} | {fmt(c.get('seconds'), nd=2)} | {m.get('peak_rss_mb', 'n/a')} | {note} |"
            )
        L.append("")
    if report.get("targets"):
        L += ["## Targets", "", "| target | aim | measured | met |", "|---|---|---|---|"]
        for t in report["targets"]:
            L.append(f"| {t['what']} | {t['aim']} | {t['measured']} | {t['met']} |")
        L.append("")
    if report.get("growth"):
        L += [
            "## Growth",
            "",
            (
                "Exponent k in time ~ lines^k between consecutive sizes (1 = linear; work seconds). "
                "Flagged when k > 1.15 between the two largest sizes."
            ),
            "",
        ]
        sizes = [s for s in report["sizes"] if report["days"].get(s)]
        L += [
            "| step | " + " | ".join(f"{s} s / MB" for s in sizes) + " | k time | k CPU | k memory | flag |",
            "|---|" + "---:|" * len(sizes) + "---|---|---|---|",
        ]
        for g in report["growth"]:
            cells = []
            by_lines = {p["lines"]: p for p in g["points"]}
            for s in sizes:
                p = by_lines.get(report["days"][s]["order_lines"])
                cells.append(f"{fmt(p['work_s'] or p['wall_s'], nd=2)} / {p['rss_mb']:,}" if p else "n/a")
            kt = ", ".join(fmt(e["time_exp"], nd=2) for e in g["exponents"])
            km = ", ".join(fmt(e["mem_exp"], nd=2) for e in g["exponents"])
            kc = ", ".join(fmt(e.get("cpu_exp"), nd=2) for e in g["exponents"])
            L.append(
                f"| {LABELS[g['step']]} | "
                + " | ".join(cells)
                + f" | {kt} | {kc} | {km} | {'SUPERLINEAR' if g['superlinear'] else ''} |"
            )
        L.append("")
    return "\n".join(L) + "\n"


def targets(report: dict) -> list[dict]:
    out = []
    day = report["days"].get("1m")
    if day:
        s = day["steps"]
        suite = s.get("suite")
        if suite and suite.get("child", {}).get("status") == "ok":
            w = suite["child"]["seconds"]
            out.append(
                {
                    "what": "suite compute load -> snapshot, 1M lines",
                    "aim": "< 15 s",
                    "measured": f"{w:.1f} s (process {suite['wall_s']:.1f} s)",
                    "met": "yes" if w < TARGETS["suite_s"] else "NO",
                }
            )
            gb = suite["peak_rss_mb"] / 1024
            out.append(
                {
                    "what": "suite peak memory, 1M lines",
                    "aim": "< 3 GB",
                    "measured": f"{gb:.2f} GB",
                    "met": "yes" if gb < TARGETS["suite_gb"] else "NO",
                }
            )
            r = day.get("ratios", {})
            if r.get("suite / read floor") is not None:
                out.append(
                    {
                        "what": "suite / read floor, 1M lines",
                        "aim": "<= 2x",
                        "measured": f"{r['suite / read floor']}x",
                        "met": "yes" if r["suite / read floor"] <= TARGETS["floor_ratio"] else "NO",
                    }
                )
            if r.get("pandas / suite") is not None:
                out.append(
                    {
                        "what": "pandas reference / suite, 1M lines",
                        "aim": ">= 5x",
                        "measured": f"{r['pandas / suite']}x",
                        "met": "yes" if r["pandas / suite"] >= TARGETS["pandas_ratio"] else "NO",
                    }
                )
        an = s.get("analyse")
        if an and an.get("child", {}).get("status") == "ok":
            w = an["child"]["seconds"]
            out.append(
                {
                    "what": "states + blockers + promise, 1M lines (issue 3)",
                    "aim": "< 10 s, < 3 GB",
                    "measured": f"{w:.1f} s, {an['peak_rss_mb'] / 1024:.2f} GB",
                    "met": "yes" if w < TARGETS["analyse_s"] and an["peak_rss_mb"] < 3072 else "NO",
                }
            )
    for size, day in report["days"].items():
        rv = day["steps"].get("review")
        if rv and rv.get("child", {}).get("status") == "ok":
            out.append(
                {
                    "what": f"cutoff review run (papermill + HTML), {size} ({day['orders']:,} orders)",
                    "aim": "< 30 s",
                    "measured": f"{rv['wall_s']:.1f} s",
                    "met": "yes" if rv["wall_s"] < TARGETS["review_s"] else "NO",
                }
            )
    return out


def ratios(day: dict) -> dict:
    s = day["steps"]
    suite, floor, pandas = seconds(s.get("suite"), True), seconds(s.get("floor"), True), seconds(s.get("pandas"), True)
    load = seconds(s.get("load"), True)
    return {
        "suite / read floor": round(suite / floor, 1) if suite and floor else None,
        "load / read floor": round(load / floor, 1) if load and floor else None,
        "pandas / suite": round(pandas / suite, 2) if suite and pandas else None,
    }


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description="handoff benchmarks")
    ap.add_argument("--sizes", default="100k,1m,3m", help="order lines per demo day, e.g. 100k,1m,3m")
    ap.add_argument("--steps", default=",".join(ALL_STEPS), help=f"comma-separated, from {','.join(ALL_STEPS)}")
    ap.add_argument("--review-sizes", default="100k", help="sizes the (slow) cutoff review run is measured at")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--notes", type=int, default=100_000, help="notes to classify")
    ap.add_argument("--board-loads", type=int, default=5, help="board page loads to time")
    ap.add_argument("--keep", action="store_true", help="keep the per-step DuckDB files under bench/cache/")
    ap.add_argument("--out", default=str(RESULTS), help="folder for bench.json and bench.md")
    ap.add_argument("--render", default="", help="only re-render bench.md from this bench.json")
    a = ap.parse_args()
    if a.render:
        report = json.loads(Path(a.render).read_text())
        report["growth"] = growth(report)
        report["targets"] = targets(report)
        Path(a.render).write_text(json.dumps(report, indent=2, default=str))
        Path(a.render).with_name("bench.md").write_text(markdown(report))
        return
    steps = [s.strip() for s in a.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in ALL_STEPS]
    if unknown:
        raise SystemExit(f"bench: unknown steps {unknown}; known: {', '.join(ALL_STEPS)}")
    sizes = [data.size_label(data.parse_size(s)) for s in a.sizes.split(",")]
    review_sizes = {data.size_label(data.parse_size(s)) for s in a.review_sizes.split(",") if s}
    report = {
        "command": "python bench/run.py " + " ".join(sys.argv[1:]),
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": loadavg(),
        "sizes": sizes,
        "days": {},
        "once": {},
    }
    for p in data.stale_dirs():
        print(f"bench: removing a demo day of an older generator version: {p.name}", flush=True)
        shutil.rmtree(p)
    for size in sizes:
        meta = data.ensure_day(data.parse_size(size), a.seed)
        work = data.day_dir(data.parse_size(size), a.seed) / "work"
        work.mkdir(parents=True, exist_ok=True)
        day = {**meta, "steps": {}}
        report["days"][size] = day
        for step in steps:
            if step not in PER_DAY or (step == "review" and size not in review_sizes):
                continue
            print(f"bench: {size} {step} ... (load {loadavg()[0]})", flush=True)
            m = run_step(step, day, work, a)
            m["load_at_start"] = loadavg()[0]
            day["steps"][step] = m
            c = m.get("child", {})
            _save(report, Path(a.out), final=False)
            print(
                f"bench: {size} {step}: wall {m.get('wall_s')} s, work {c.get('seconds')} s, peak {m.get('peak_rss_mb')} MB [{c.get('status')}]",
                flush=True,
            )
        day["ratios"] = ratios(day)
        if "pandas" in day["steps"]:
            try:
                day["agreement"] = compare_states(work)
            except Exception as exc:  # noqa: BLE001 - a failed comparison is reported, the figures are kept
                day["agreement_error"] = f"{type(exc).__name__}: {exc}"
        if not a.keep:
            for f in work.glob("*.duckdb*"):
                f.unlink()
    first = report["days"].get("1m") or next(iter(report["days"].values()), None)
    for step in ("notes", "board"):
        if step in steps and first:
            work = Path(first["data"]).parent / "work"
            print(f"bench: {step} ...", flush=True)
            report["once"][step] = run_step(step, first, work, a)
    report["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    report["load_after"] = loadavg()
    report["targets"] = targets(report)
    report["growth"] = growth(report)
    _save(report, Path(a.out), final=True)
    print(markdown(report))


def _save(report: dict, out: Path, final: bool) -> None:
    """bench.json (partial.json while the run goes on) and, at the end, bench.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / ("bench.json" if final else "partial.json")).write_text(json.dumps(report, indent=2, default=str))
    if final:
        (out / "bench.md").write_text(markdown(report))
        (out / "partial.json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
