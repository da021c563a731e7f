"""Load the handoff board in headless Chromium, the ways people close it, and report what happened.

Modes (each starts `python -m handoff_lib.board.server` on a free loopback port and stops it after):

* `close` (default): N loads one after another, each tab closed normally; renders, hangs, time to
  widget, filter-change time, kernels shut down when their page closed.
* `abrupt`: N loads one after another, each in its own Chromium process that is killed (SIGKILL, as a
  crashed browser or a dropped laptop) once the board is on the page; renders, time to widget, and how
  long each abandoned page's kernel lived after its browser died (from the server log).
* `concurrent`: V viewers open the board at the same moment; time to widget (median, worst), then the
  server's memory with them open.
* `open`: V viewers open the board one after another and stay open; the server's memory (RSS and PSS of
  the server and its kernels) and the memory per viewer.

`--clients browser` (the default for close, abrupt and concurrent) drives headless Chromium pages;
`--clients http` (the default for open) has each viewer fetch the whole page over HTTP and then hold its
kernel's websocket open, as a browser does, without a browser's CPU and memory on this machine: the
server does the same work (a kernel per page, run to the end, connected), and its "time" is until the
page has arrived whole (the board is built; a browser then draws it).

A load is *rendered* when the board (`.board-ready`) is on the page; one that is not within --timeout
seconds counts as hung and is never retried. "Time to widget" runs from the request to that moment.

    .venv/bin/python bench/board_loop.py --mode abrupt --loads 100
    .venv/bin/python bench/board_loop.py --mode concurrent --viewers 20 --site /tmp/big/site.yaml
    .venv/bin/python bench/board_loop.py --mode open --viewers 50 --site /tmp/big/site.yaml
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
READY = ".board-ready"  # the dashboard (or its message) is on the page
TABLE = ".board-ready table.board-table"
FULL = ".board-full"  # the "board is full" page


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def dist(values: list[float], unit: str = "s") -> str:
    if not values:
        return "n/a"
    return (f"median {statistics.median(values):.2f} {unit}, p95 {pct(values, 0.95):.2f} {unit}, worst {max(values):.2f} {unit}, "
            f"best {min(values):.2f} {unit} (n={len(values)})")


class Server:
    """The board server as a subprocess; every log line is kept with the time it arrived."""

    def __init__(self, args: list[str], log: Path, host: str = "127.0.0.1", scheme: str = "http"):
        self.port = free_port()
        self.log_path = log
        self.lines: list[tuple[float, str]] = []
        cmd = [sys.executable, "-m", "handoff_lib.board.server", "--host", host, "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     errors="replace", start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = f"{scheme}://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                time.sleep(0.3)
                raise RuntimeError(f"board server exited:\n{self.text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"board server did not listen:\n{self.text()}") from None
                time.sleep(0.2)

    def _read(self) -> None:
        with open(self.log_path, "w") as fh:
            for line in self.proc.stdout:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                fh.write(line)
                fh.flush()

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def events(self, pattern: str) -> list[tuple[float, re.Match]]:
        rx = re.compile(pattern)
        return [(t, m) for t, line in list(self.lines) for m in [rx.search(line)] if m]

    def served_kernels(self, since: float = 0.0) -> list[tuple[float, str]]:
        """(time, kernel id) of each kernel handed to a page."""
        return [(t, m.group(1)) for t, m in self.events(r"kernel (\S+) serves ") if t >= since]

    def shutdowns(self) -> dict[str, float]:
        return {m.group(1): t for t, m in self.events(r"Kernel shutdown: (\S+)")}

    def memory(self) -> dict[str, float]:
        """RSS and PSS (MB) of the server and every kernel it runs, and how many kernels."""
        import psutil

        root = psutil.Process(self.proc.pid)
        procs = [root, *root.children(recursive=True)]
        rss = pss = kernels = 0
        for p in procs:
            try:
                full = p.memory_full_info()
                kernels += p is not root and "ipykernel" in " ".join(p.cmdline())
            except psutil.Error:  # a kernel that ended meanwhile
                continue
            rss += full.rss
            pss += getattr(full, "pss", full.rss)
        return {"rss_mb": rss / 2**20, "pss_mb": pss / 2**20, "kernels": kernels,
                "server_rss_mb": root.memory_info().rss / 2**20}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self._reader.join(5)


def route_local(page, url: str) -> None:
    """Nothing leaves the machine: Voila's template links a CDN stylesheet."""
    base = re.match(r"https?://[^/]+", url).group(0)
    page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())


def abrupt_load(chromium, url: str, timeout_s: float) -> tuple[float | None, float, str]:
    """One load in its own Chromium process (driven through `chromium`, Playwright's browser type),
    killed once the board is on the page (or at the timeout). Returns (time to widget or None, the
    moment the browser died, what the page said)."""
    port = free_port()
    profile = tempfile.mkdtemp(prefix="board_abrupt_")
    proc = subprocess.Popen([CHROMIUM, *CHROMIUM_ARGS, f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    tti, said = None, ""
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("chromium did not open its debugging port") from None
                time.sleep(0.1)
        browser = chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
        page = browser.contexts[0].new_page()
        route_local(page, url)
        t0 = time.perf_counter()
        try:
            page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
            page.wait_for_selector(f"{READY}, {FULL}", timeout=timeout_s * 1000)
            if page.locator(READY).count():
                tti = time.perf_counter() - t0
                if page.locator(TABLE).count() == 0:
                    said = page.inner_text(READY)[:300]
            else:
                said = page.inner_text("body")[:300]
        except Exception as exc:  # noqa: BLE001 - a load that does not render is counted, not raised
            said = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no unload, no beacon, no websocket close handshake
        killed = time.monotonic()
        proc.wait()
    return tti, killed, said


def close_load(browser, url: str, timeout_s: float, filter_changes: int) -> tuple[float | None, list[float], str]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    route_local(page, url)
    t0 = time.perf_counter()
    tti, filters, said = None, [], ""
    try:
        page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
        page.wait_for_selector(READY, timeout=timeout_s * 1000)
        tti = time.perf_counter() - t0
        queue = page.get_by_role("tab", name="Blocker queue")
        if queue.count():  # the page opens on the cutoff meeting; the queue fills when its tab is first shown
            queue.click()
            page.wait_for_selector(".board-blockers-html table.board-table", timeout=timeout_s * 1000)
            for _ in range(filter_changes):
                filters.append(filter_change(page))
        elif page.locator(TABLE).count() == 0:
            said = page.inner_text(READY)[:300]
    except Exception as exc:  # noqa: BLE001
        said = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        page.close(run_before_unload=True)  # as a browser tab closing: Voila shuts the kernel down
        time.sleep(0.3)  # let the page's shutdown beacon leave before the context goes
        context.close()
    return tti, filters, said


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


def run_abrupt(server: Server, loads: int, timeout_s: float, pause_s: float, settle_s: float) -> dict:
    from playwright.sync_api import sync_playwright

    tti, said, kills = [], [], []
    with sync_playwright() as p:
        for i in range(loads):
            since = time.monotonic()
            t, killed, text = abrupt_load(p.chromium, server.url, timeout_s)
            served = server.served_kernels(since)
            kills.append((served[-1][1] if served else None, killed))
            if t is not None:
                tti.append(t)
            if text:
                said.append((i + 1, text))
            print(f"load {i + 1:3d}/{loads}: {f'{t:.2f} s' if t is not None else 'NOT RENDERED'}"
                  f"{' - ' + text[:80] if text else ''}", flush=True)
            time.sleep(pause_s)
    deadline = time.monotonic() + settle_s  # wait for the culler to reclaim the abandoned kernels
    while time.monotonic() < deadline:
        down = server.shutdowns()
        if all(k in down for k, _ in kills if k):
            break
        time.sleep(1)
    down = server.shutdowns()
    lived = [down[k] - killed for k, killed in kills if k and k in down]
    alive = [k for k, _ in kills if k and k not in down]
    return {"loads": loads, "rendered": len(tti), "tti_s": tti, "messages": said, "abandoned_lived_s": lived,
            "still_alive": alive, "memory_after": server.memory()}


async def _concurrent(url: str, viewers: int, timeout_s: float, hold: callable) -> tuple[list[float], list[str]]:
    """Each viewer in a browser context of its own (its own cookies and connections) of one Chromium."""
    from playwright.async_api import async_playwright

    base = re.match(r"https?://[^/]+", url).group(0)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = []
        for _ in range(viewers):
            page = await (await browser.new_context(viewport={"width": 1400, "height": 1000})).new_page()
            await page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort())
            pages.append(page)

        async def one(page) -> tuple[float | None, str]:
            t0 = time.perf_counter()
            try:
                await page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
                await page.wait_for_selector(f"{READY}, {FULL}", timeout=timeout_s * 1000)
                if await page.locator(READY).count():
                    return time.perf_counter() - t0, ""
                return None, (await page.inner_text("body"))[:200]
            except Exception as exc:  # noqa: BLE001
                return None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

        results = await asyncio.gather(*(one(pg) for pg in pages))
        hold()
        await browser.close()
    return [t for t, _ in results if t is not None], [s for t, s in results if t is None]


def _fetch(url: str, timeout_s: float) -> tuple[int, str, list[str]]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status, resp.read().decode("utf-8", "replace"), resp.headers.get_all("Set-Cookie") or []
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace"), []


async def http_viewer(url: str, timeout_s: float, pool=None):
    """Fetch the whole board page (Voila streams it while the kernel runs the notebook), then connect to
    the page's kernel as the page's JavaScript would. Returns (seconds until the page arrived, websocket)."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    t0 = time.perf_counter()
    fetch = asyncio.get_running_loop().run_in_executor(pool, _fetch, url, timeout_s)
    code, page, cookies = await asyncio.wait_for(fetch, timeout_s)  # Voila's heartbeats keep a read alive: bound the whole
    took = time.perf_counter() - t0
    built = "application/vnd.jupyter.widget-view+json" in page and "There was an error when executing cell" not in page
    if code != 200 or not built:
        said = re.search(r"There was an error when executing cell \[\d+\]", page) or re.search(r"<h2[^>]*>(.*?)</h2>", page, re.DOTALL)
        raise RuntimeError(f"HTTP {code}: {said.group(0) if said else 'no board on the page'}")
    config = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.DOTALL)
    kid = json.loads(config.group(1))["kernelId"]
    cookie = "; ".join(c.split(";")[0] for c in cookies)
    ws_url = re.sub(r"^http", "ws", url.rstrip("/")) + f"/api/kernels/{kid}/channels?session_id=bench-{kid[:8]}"
    ws = await websocket_connect(HTTPRequest(ws_url, headers={"Cookie": cookie} if cookie else {}))

    async def drain() -> None:  # read everything, as a page does: tornado answers the server's pings while reading
        while await ws.read_message() is not None:
            pass

    ws.drain = asyncio.ensure_future(drain())
    return took, ws


async def _http_viewers(url: str, viewers: int, timeout_s: float, at_once: bool, hold, every: int = 0, report=None):
    from concurrent.futures import ThreadPoolExecutor

    sockets, times, failed = [], [], []
    pool = ThreadPoolExecutor(max_workers=viewers)  # one connection per viewer, as separate machines would open

    async def one():
        try:
            took, ws = await http_viewer(url, timeout_s, pool)
            times.append(took)
            sockets.append(ws)
        except Exception as exc:  # noqa: BLE001 - a viewer that does not get the board is counted
            failed.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    if at_once:
        await asyncio.gather(*(one() for _ in range(viewers)))
    else:
        for i in range(viewers):
            await one()
            if every and report and (i + 1) % every == 0:
                report(i + 1)
    await asyncio.sleep(3)
    hold()
    for ws in sockets:
        ws.close()
    pool.shutdown(wait=False, cancel_futures=True)
    return times, failed


def run_concurrent(server: Server, viewers: int, timeout_s: float, clients: str) -> dict:
    memory = {}
    if clients == "http":
        tti, failed = asyncio.run(_http_viewers(server.url, viewers, timeout_s, True, lambda: memory.update(server.memory())))
    else:
        tti, failed = asyncio.run(_concurrent(server.url, viewers, timeout_s, lambda: memory.update(server.memory())))
    return {"viewers": viewers, "clients": clients, "rendered": len(tti), "tti_s": tti, "failed": failed, "memory_open": memory}


def run_open(server: Server, viewers: int, timeout_s: float, wave: int, clients: str) -> dict:
    from playwright.sync_api import sync_playwright

    idle = server.memory()
    if clients == "http":
        memory = {}

        def report(n: int) -> None:
            m = server.memory()
            print(f"{n:3d} viewers open: server + kernels RSS {m['rss_mb']:,.0f} MB, PSS {m['pss_mb']:,.0f} MB, "
                  f"{m['kernels']} kernels", flush=True)

        tti, failed = asyncio.run(_http_viewers(server.url, viewers, timeout_s, False, lambda: memory.update(server.memory()),
                                                wave, report))
        return {"viewers": viewers, "clients": clients, "rendered": len(tti), "tti_s": tti, "failed": failed,
                "memory_idle": idle, "memory_open": memory}
    tti, failed = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = []
        for i in range(viewers):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            route_local(page, server.url)
            t0 = time.perf_counter()
            try:
                page.goto(server.url, wait_until="commit", timeout=timeout_s * 1000)
                page.wait_for_selector(f"{READY}, {FULL}", timeout=timeout_s * 1000)
                if page.locator(READY).count():
                    tti.append(time.perf_counter() - t0)
                else:
                    failed.append(page.inner_text("body")[:200])
            except Exception as exc:  # noqa: BLE001
                failed.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
            pages.append(page)
            if (i + 1) % wave == 0:
                m = server.memory()
                print(f"{i + 1:3d} viewers open: server + kernels RSS {m['rss_mb']:,.0f} MB, PSS {m['pss_mb']:,.0f} MB, "
                      f"{m['kernels']} kernels", flush=True)
        time.sleep(3)
        memory = server.memory()
        browser.close()
    return {"viewers": viewers, "clients": clients, "rendered": len(tti), "tti_s": tti, "failed": failed,
            "memory_idle": idle, "memory_open": memory}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("close", "abrupt", "concurrent", "open"), default="close")
    ap.add_argument("--site", default="", help="site parameters file (default parameters/demo.yaml)")
    ap.add_argument("--history", default="", help="history database (default the site's)")
    ap.add_argument("--loads", type=int, default=100, help="loads, for close and abrupt")
    ap.add_argument("--viewers", type=int, default=20, help="viewers, for concurrent and open")
    ap.add_argument("--wave", type=int, default=10, help="open: print memory every this many viewers")
    ap.add_argument("--clients", choices=("browser", "http"), default=None,
                    help="concurrent/open: Chromium pages, or HTTP page fetch + kernel websocket (default: browser; open: http)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds after which a load counts as hung")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between loads")
    ap.add_argument("--settle", type=float, default=150.0, help="abrupt: seconds to wait for the culler after the last load")
    ap.add_argument("--pool-size", type=int, default=None)
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds between the server's start and the first page (the pool fills)")
    ap.add_argument("--max-kernels", type=int, default=None)
    ap.add_argument("--cull-idle", type=int, default=None)
    ap.add_argument("--cull-interval", type=int, default=None)
    ap.add_argument("--filter-changes", type=int, default=1, help="close: owner-filter changes timed per rendered load")
    ap.add_argument("--without-fix", action="store_true", help="serve without the Session.send fix (shows the hang)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()

    server_args = []
    for flag, value in (("--site", args.site), ("--history", args.history), ("--pool-size", args.pool_size),
                        ("--max-kernels", args.max_kernels), ("--cull-idle", args.cull_idle),
                        ("--cull-interval", args.cull_interval)):
        if value not in ("", None):
            server_args += [flag, str(value)]
    if args.without_fix:
        server_args.append("--no-send-fix")
    log = Path(tempfile.mkdtemp(prefix="board_loop_")) / "server.log"
    server = Server(server_args, log)
    try:
        time.sleep(args.warmup)  # the pre-heated pool starts
        if args.mode == "abrupt":
            r = run_abrupt(server, args.loads, args.timeout, args.pause, args.settle)
            print(f"\nabrupt closes: {r['loads']} loads, rendered {r['rendered']}")
            print(f"time to widget: {dist(r['tti_s'])}")
            print(f"abandoned page's kernel lived after its browser died: {dist(r['abandoned_lived_s'])}; "
                  f"still running after {args.settle:.0f} s: {len(r['still_alive'])}")
            m = r["memory_after"]
            print(f"after the loop: {m['kernels']} kernels, server + kernels RSS {m['rss_mb']:,.0f} MB")
        elif args.mode == "concurrent":
            r = run_concurrent(server, args.viewers, args.timeout, args.clients or "browser")
            m = r["memory_open"]
            what = "time to widget" if r["clients"] == "browser" else "time until the whole page arrived (HTTP clients)"
            print(f"\n{args.viewers} viewers at once ({r['clients']} clients): rendered {r['rendered']}")
            print(f"{what}: {dist(r['tti_s'])}")
            print(f"with them open: {m['kernels']} kernels, server + kernels RSS {m['rss_mb']:,.0f} MB, PSS {m['pss_mb']:,.0f} MB")
        elif args.mode == "open":
            r = run_open(server, args.viewers, args.timeout, args.wave, args.clients or "http")
            idle, m = r["memory_idle"], r["memory_open"]
            per = (m["pss_mb"] - idle["pss_mb"]) / max(1, r["rendered"])
            print(f"\n{args.viewers} viewers opened one after another ({r['clients']} clients): rendered {r['rendered']}; "
                  f"time to {'widget' if r['clients'] == 'browser' else 'whole page'}: {dist(r['tti_s'])}")
            print(f"server + kernels before: RSS {idle['rss_mb']:,.0f} MB, PSS {idle['pss_mb']:,.0f} MB ({idle['kernels']} pre-heated)")
            print(f"with {r['rendered']} viewers open: RSS {m['rss_mb']:,.0f} MB, PSS {m['pss_mb']:,.0f} MB, {m['kernels']} kernels "
                  f"({per:,.0f} MB PSS per viewer); the server process alone {m['server_rss_mb']:,.0f} MB")
        else:
            from playwright.sync_api import sync_playwright

            tti, filters, said = [], [], []
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for i in range(args.loads):
                    t, f, text = close_load(browser, server.url, args.timeout, args.filter_changes)
                    filters += f
                    if t is not None:
                        tti.append(t)
                    if text:
                        said.append((i + 1, text))
                    print(f"load {i + 1:3d}/{args.loads}: {f'{t:.2f} s' if t is not None else 'HUNG'}", flush=True)
                    time.sleep(args.pause)
                browser.close()
            time.sleep(2)
            r = {"loads": args.loads, "rendered": len(tti), "tti_s": tti, "filter_change_s": filters, "messages": said,
                 "kernels_shut_down": len(server.shutdowns())}
            print(f"\nboard loads (tab closed normally): {args.loads}, rendered {len(tti)}"
                  + (" [WITHOUT the Session.send fix]" if args.without_fix else ""))
            print(f"time to interactive (the board on the page): {dist(tti)}")
            print(f"filter change (owner, blocker queue): {dist([x * 1000 for x in filters], 'ms')}")
            print(f"kernels shut down when their page closed: {r['kernels_shut_down']}")
        for n, text in r.get("messages", []):
            print(f"  load {n} page said: {text!r}")
        for text in r.get("failed", []):
            print(f"  a viewer's page said: {text!r}")
    finally:
        server.stop()
    print(f"(server log {log})")
    if args.json:
        Path(args.json).write_text(json.dumps({"mode": args.mode, **r}, indent=2, default=str))
    total = r.get("loads", r.get("viewers"))
    return 0 if r["rendered"] == total else 1


if __name__ == "__main__":
    sys.exit(main())
