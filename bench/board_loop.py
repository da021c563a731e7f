"""Open the handoff board N times in a loop in headless Chromium and report how many loads rendered
and how many hung, the time-to-interactive distribution, and the time of a blocker-filter change.

A load is *interactive* when the blocker queue table of the latest review is on the page (the
dashboard's last step). A load that is not interactive within --timeout seconds counts as hung; it is
never retried. The server is `python -m handoff_lib.board_server` on a free loopback port, started
and stopped by this script (--without-fix starts it without the Session.send fix, to show the hang).

    .venv/bin/python bench/board_loop.py --loads 100
    .venv/bin/python bench/board_loop.py --site /tmp/big/site.yaml --loads 20 --filter-changes 20
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
READY = ".board-ready"  # the dashboard (or its message) is on the page
TABLE = ".board-ready .board-blockers-html table.board-table"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def dist(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (f"median {statistics.median(values):.2f} s, p95 {pct(values, 0.95):.2f} s, worst {max(values):.2f} s, "
            f"best {min(values):.2f} s (n={len(values)})")


def start_server(args, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "handoff_lib.board_server", "--port", str(port), "--pool-size", str(args.pool_size)]
    if args.site:
        cmd += ["--site", args.site]
    if args.history:
        cmd += ["--history", args.history]
    if args.without_fix:
        cmd.append("--no-send-fix")
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"board server exited:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}/"
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"board server did not listen:\n{log.read_text()}") from None
            time.sleep(0.2)


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def filter_change(page) -> float:
    """Pick the next owner in the blocker queue filter; seconds until the table shows the result."""
    opts = page.locator(".board-filter-owner select option").all_inner_texts()
    current = page.eval_on_selector(".board-filter-owner select", "s => s.selectedIndex")
    label = opts[(current + 1) % len(opts)]
    before = page.get_attribute(".board-blockers-html table.board-table", "data-version")
    t0 = time.perf_counter()
    page.select_option(".board-filter-owner select", label=label)
    page.wait_for_function(
        "v => document.querySelector('.board-blockers-html table.board-table').dataset.version !== v", arg=before,
        timeout=30_000,
    )
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default="", help="site parameters file (default parameters/demo.yaml)")
    ap.add_argument("--history", default="", help="history database (default the site's)")
    ap.add_argument("--loads", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds after which a load counts as hung")
    ap.add_argument("--pause", type=float, default=3.0, help="seconds between loads (the pool refills meanwhile)")
    ap.add_argument("--pool-size", type=int, default=1)
    ap.add_argument("--filter-changes", type=int, default=1, help="owner-filter changes timed per rendered load")
    ap.add_argument("--without-fix", action="store_true", help="serve without the Session.send fix (shows the hang)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()

    from playwright.sync_api import TimeoutError as PWTimeout
    from playwright.sync_api import sync_playwright

    log = Path(tempfile.mkdtemp(prefix="board_loop_")) / "server.log"
    proc, url = start_server(args, log)
    tti, filters, hung, errors = [], [], [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for i in range(args.loads):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(url) else r.abort())
                t0 = time.perf_counter()
                status = ""
                try:
                    page.goto(url, wait_until="commit", timeout=args.timeout * 1000)
                    page.wait_for_selector(READY, timeout=args.timeout * 1000)
                    tti.append(time.perf_counter() - t0)
                    status = f"{tti[-1]:.2f} s"
                    if page.locator(TABLE).count() == 0:  # rendered, but a message instead of the board
                        errors.append((i + 1, page.inner_text(".board-ready")[:300]))
                        status += " (message, no board)"
                    else:
                        for _ in range(args.filter_changes):
                            filters.append(filter_change(page))
                except PWTimeout:
                    hung.append(i + 1)
                    status = "HUNG"
                finally:
                    page.close(run_before_unload=True)  # as a browser tab closing: Voila shuts the kernel down
                    time.sleep(0.3)  # let the page's shutdown beacon leave before the context goes
                    context.close()
                print(f"load {i + 1:3d}/{args.loads}: {status}", flush=True)
                time.sleep(args.pause)
            browser.close()
    finally:
        stop_server(proc)
    server_log = log.read_text(errors="replace")
    started = len(re.findall(r"Kernel started", server_log))
    shut = len(re.findall(r"Kernel shutdown", server_log))
    culled = len(re.findall(r"Culling '", server_log))
    before_stop = server_log.split("Handle signal")[0]
    shut_closed = len(re.findall(r"Kernel shutdown", before_stop))

    print()
    print(f"board loads: {args.loads}, rendered {len(tti)}, hung {len(hung)}"
          + (f" (loads {', '.join(map(str, hung))})" if hung else "")
          + (" [WITHOUT the Session.send fix]" if args.without_fix else ""))
    print(f"time to interactive: {dist(tti)}")
    print(f"filter change (owner, blocker queue): {dist([f * 1000 for f in filters]).replace(' s', ' ms')}")
    print(f"kernels: started {started}, shut down {shut} ({shut_closed} when their page closed), culled {culled} "
          f"(server log {log})")
    print(f"loads that showed a message instead of the board: {len(errors)}")
    for n, text in errors:
        print(f"  load {n} page said: {text!r}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "loads": args.loads, "rendered": len(tti), "hung": hung, "without_fix": args.without_fix,
            "tti_s": tti, "filter_change_s": filters, "kernels_started": started, "kernels_shutdown": shut,
        }, indent=2))
    return 0 if not hung else 1


if __name__ == "__main__":
    sys.exit(main())
