"""The handoff board served by Voila (handoff_lib.board.server), driven in a real headless Chromium:
the board itself, sign-in and roles, a status user driving their own kernel directly, acknowledgements
seen by another user and in the next report, abrupt closes, a full board, TLS and --no-login."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml

from handoff_lib import board
from handoff_lib.board.auth import UsersFile
from handoff_lib.history import acks

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "outputs" / "test-artifacts"
ARTIFACTS.mkdir(parents=True, exist_ok=True)
READY = ".board-ready .board-act-now-html table.board-table"  # an ops page opens on the cutoff meeting: its act-now list
QUEUE = ".board-ready .board-blockers-html table.board-table"
sys.path.insert(0, str(ROOT / "bench"))
from board_loop import Server, abrupt_load, route_local

USERS = {"jdiaz": ("J. Diaz", "ops", "jdiaz-pass-1"), "mchen": ("M. Chen", "ops", "mchen-pass-2"),
         "sam": ("Sam Sales", "status", "sam-pass-33"), "pat": ("Pat Planner", "planner", "pat-pass-44")}
COMMENT_MARK = "INTERNAL-7731"


def start(tmp_path_factory, name: str, *args: str, scheme: str = "http", host: str = "127.0.0.1") -> Server:
    return Server(list(args), tmp_path_factory.mktemp(f"log_{name}") / "server.log", host=host, scheme=scheme)


def new_page(browser, server: Server, **kw):
    context = browser.new_context(viewport={"width": 1440, "height": 1600}, **kw)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    route_local(page, server.url)
    return page


def open_board(page, url: str, selector: str = ".board-ready") -> None:
    page.goto(url, wait_until="commit")  # Voila streams the page
    page.wait_for_selector(selector, timeout=90_000)


# ------------------------------------------------------------------------------ the board (loopback)


@pytest.fixture(scope="module")
def board_site(tmp_path_factory, demo_day) -> Path:
    from test_board import XSS, build_history

    return build_history(tmp_path_factory.mktemp("board_browser"), demo_day, note=XSS)


@pytest.fixture(scope="module")
def server(board_site, tmp_path_factory):
    s = start(tmp_path_factory, "local", "--site", str(board_site))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def page(browser, server):
    pg = new_page(browser, server)
    open_board(pg, server.url, READY)
    yield pg
    pg.context.close()


@pytest.fixture(scope="module")
def snap(board_site):
    source = board.resolve_source(str(board_site))
    latest = board.list_reviews(source).iloc[0]
    s = board.load_snapshot(source, latest["review_date"], latest["review_time"])
    yield s
    s.close()


def show_queue(page) -> None:
    """The Blocker queue tab, its table filled (it fills when the tab is first shown)."""
    page.get_by_role("tab", name="Blocker queue").click()
    page.wait_for_selector(QUEUE, timeout=30_000)


def version(page, table_class: str) -> str:
    return page.get_attribute(f".{table_class}-html table.board-table", "data-version")


def test_the_board_loads_with_the_latest_review(page, snap, board_site):
    source = board.resolve_source(str(board_site))
    with duckdb.connect(str(source.history_db), read_only=True) as con:
        n = con.execute("SELECT count(*) FROM snap_orders WHERE review_time = '1600'").fetchone()[0]
    assert page.get_attribute('.board-tile[data-key="orders"]', "data-count") == str(n)
    assert "16:00" in page.inner_text(".board-root h2")
    assert "Traceback" not in page.inner_text("body")
    assert "(this machine)" in page.inner_text(".board-who")  # loopback without a users file: the local user, ops
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "board.png"))


def test_the_first_screen_at_1440x900_shows_the_next_pickup_verdicts_and_the_act_now_list(browser, server, snap):
    """What a shift lead sees without scrolling: every next-pickup card with its verdict, and the act-now list's first rows."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    route_local(page, server.url)
    open_board(page, server.url, READY)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "board-first-screen-1440x900.png"))  # looked at; not committed
    with duckdb.connect(str(snap.picture), read_only=True) as pic:
        verdicts = [r[0] for r in pic.execute("SELECT verdict_text FROM meeting_pickups ORDER BY pickup_at, carrier, service").fetchall()]
        first_action = pic.execute("SELECT action FROM act_now ORDER BY rank LIMIT 1").fetchone()[0]
    cards = page.locator(".board-pickup")
    assert cards.count() == len(verdicts) > 0
    assert [c.replace("\xa0", " ") for c in page.locator(".board-pickup .verdict").all_inner_texts()] == verdicts
    for i in range(cards.count()):
        box = cards.nth(i).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 900, f"pickup card {i} is below the first screen"
    rows = page.locator(".board-act-now-html tbody tr")
    assert rows.first.locator('td[data-col="action"]').inner_text().replace("\xa0", " ") == first_action
    for i in range(3):  # the top actions, not only a heading
        box = rows.nth(i).bounding_box()
        assert box["y"] + box["height"] <= 900, f"act-now row {i + 1} is below the first screen"
    assert "Traceback" not in page.inner_text("body")
    context.close()


@pytest.fixture(scope="module")
def stale_server(tmp_path_factory, demo_day):
    """A site whose 16:00 review read the 12:00 files (stored stale)."""
    from test_board import build_history

    s = start(tmp_path_factory, "stale", "--site", str(build_history(tmp_path_factory.mktemp("stale_b"), demo_day, stale_1600=True)),
              "--pool-size", "1")
    yield s
    s.stop()


def test_a_stale_review_says_stale_with_the_source_and_its_age_on_the_first_screen(browser, stale_server):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    route_local(page, stale_server.url)
    open_board(page, stale_server.url, READY)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "board-stale-1440x900.png"))
    line = page.locator(".board-stale")
    said = line.inner_text()
    assert said.startswith("STALE: ") and "WMS pick tasks as of 12:00, 4 h before the review (limit 30 min)" in said
    assert "held back" in said
    box = line.bounding_box()
    assert box["y"] + box["height"] <= 900 and box["y"] < page.locator(".board-pickup").first.bounding_box()["y"]
    context.close()


def test_an_owner_filter_narrows_the_blocker_queue_to_the_right_rows(page, snap):
    owner = snap.rows(
        "SELECT owner, count(*) FROM blockers GROUP BY 1 HAVING count(*) BETWEEN 2 AND 50 ORDER BY 2 DESC, 1 LIMIT 1")[0][0]
    want = snap.rows("SELECT order_id, source_key FROM blockers WHERE owner = ? ORDER BY order_id, source_key", [owner])
    show_queue(page)
    before = version(page, "board-blockers")
    page.select_option(".board-filter-owner select", label=owner)
    page.wait_for_function(
        "v => document.querySelector('.board-blockers-html table.board-table').dataset.version !== v", arg=before
    )
    table = page.locator(".board-blockers-html table.board-table")
    assert table.get_attribute("data-total") == str(len(want))
    rows = table.locator("tbody tr")
    got = sorted(
        (rows.nth(i).locator('td[data-col="order_id"]').inner_text(), rows.nth(i).locator('td[data-col="source_key"]').inner_text())
        for i in range(rows.count())
    )
    assert got == [(o, k or "") for o, k in want]
    assert set(table.locator('td[data-col="owner"]').all_inner_texts()) == {owner}
    for a in table.locator("a").all():
        assert a.get_attribute("target") == "_blank" and "noopener" in a.get_attribute("rel")
        assert a.get_attribute("href").startswith(("http://", "https://"))
    page.select_option(".board-filter-owner select", label="(all)")


def lookup(page, identifier: str, order_id: str) -> None:
    page.get_by_role("tab", name="Order lookup").click()
    page.fill(".board-lookup-input input", identifier)
    page.click(".board-lookup-go")
    page.wait_for_selector(f'.board-order[data-order="{order_id}"]', timeout=15_000)


def test_a_lookup_by_tracking_number_finds_the_order(page, snap):
    tracking, order_id = duckdb.connect(str(snap.picture), read_only=True).execute(
        """SELECT tracking_no, order_id FROM linked_shipments WHERE order_id IS NOT NULL AND tracking_no IS NOT NULL
           ORDER BY shipment_id LIMIT 1"""
    ).fetchone()
    lookup(page, tracking, order_id)
    result = page.inner_text(".board-lookup-result")
    assert f"Order {order_id}" in result and "tracking" in result
    assert "label created" in result and "order placed" in result


def test_a_note_with_script_and_img_onerror_shows_as_text_and_runs_nothing(page, snap):
    from test_board import XSS

    with duckdb.connect(str(snap.picture), read_only=True) as pic:
        order_id = pic.execute(
            "SELECT order_id FROM linked_holds WHERE note = ? AND order_id IS NOT NULL ORDER BY hold_id LIMIT 1", [XSS]
        ).fetchone()[0]
    lookup(page, order_id, order_id)
    assert XSS in page.inner_text(".board-lookup-result")  # the note, as text
    owner = snap.rows("SELECT owner FROM blocker_queue WHERE contains(detail, '<script>window.__xss') ORDER BY rank LIMIT 1")[0][0]
    show_queue(page)
    before = version(page, "board-blockers")
    page.select_option(".board-filter-owner select", label=owner)
    page.wait_for_function(
        "v => document.querySelector('.board-blockers-html table.board-table').dataset.version !== v", arg=before
    )
    assert "<script>window.__xss = 1</script><img src=x onerror=" in page.inner_text(".board-blockers-html")
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []
    assert page.locator('.board-root img[src="x"], .board-root script').count() == 0


# ------------------------------------------------------------------------------ the team: sign-in, roles, acks


@pytest.fixture(scope="module")
def team_site(tmp_path_factory, demo_day) -> Path:
    """Only the 12:00 review stored (the 16:00 one is run by a test); a users file with one user per role."""
    from test_board import XSS, build_history

    tmp = tmp_path_factory.mktemp("board_team")
    site = build_history(tmp, demo_day, times=("12:00",), note=XSS)
    raw = yaml.safe_load(site.read_text())
    raw["board"] = {"users": "board_users.yaml"}
    site.write_text(yaml.safe_dump(raw, sort_keys=False))
    uf = UsersFile(tmp / "board_users.yaml")
    for user, (name, role, password) in USERS.items():
        uf.add(user, role, password, name)
    return site


@pytest.fixture(scope="module")
def team(team_site, tmp_path_factory):
    s = start(tmp_path_factory, "team", "--site", str(team_site), "--pool-size", "2")
    yield s
    s.stop()


def sign_in(browser, server: Server, user: str, password: str | None = None, selector: str = ".board-ready"):
    page = new_page(browser, server)
    page.goto(server.url, wait_until="commit")
    page.wait_for_selector("form.board-login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password or USERS[user][2])
    page.click("button[type=submit]")
    page.wait_for_selector(selector, timeout=90_000)
    return page


def test_a_page_needs_a_sign_in_and_a_wrong_password_is_refused(browser, team):
    page = new_page(browser, team)
    page.goto(team.url, wait_until="commit")
    page.wait_for_selector("form.board-login")
    assert "/login" in page.url and page.locator(".board-root").count() == 0
    page.fill("input[name=username]", "sam")
    page.fill("input[name=password]", "not-sams-password")
    page.click("button[type=submit]")
    page.wait_for_selector(".board-login-error")
    assert "Wrong user name or password." in page.inner_text("body") and page.locator(".board-root").count() == 0
    page.fill("input[name=username]", "nobody")
    page.fill("input[name=password]", USERS["sam"][2])
    page.click("button[type=submit]")
    page.wait_for_selector(".board-login-error")
    assert page.locator(".board-root").count() == 0
    assert any("sign-in refused for 'sam'" in line for _, line in team.lines)
    page.context.close()


def test_each_role_sees_its_own_board(browser, team):
    tabs = {}
    for user in ("jdiaz", "sam", "pat"):
        page = sign_in(browser, team, user)
        tabs[USERS[user][1]] = page.locator(".board-tabs .lm-TabBar-tab, .board-tabs .p-TabBar-tab").all_inner_texts()
        assert f"{USERS[user][0]} (" in page.inner_text(".board-who")
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / f"board-{USERS[user][1]}.png"))
        page.context.close()
    assert tabs["status"] == ["Order lookup", "Cutoff meeting", "Promises at risk", "Changes since last review"]
    assert tabs["planner"] == ["Cutoff meeting", "Cutoff burn-down & charts", "Recurring themes", "Exports"]
    assert tabs["ops"][:2] == ["Cutoff meeting", "Blocker queue"] and "Exports" in tabs["ops"]


def test_an_acknowledgement_shows_for_another_user_after_refresh_and_in_the_next_report(browser, team, team_site, snap):
    from test_board import XSS

    source = board.resolve_source(str(team_site))
    # the same day's 16:00 review (another site, the same data): a blocker still open then is in the next report
    at_1600 = {label: b for label, b in board.data.blocker_choices(snap, snap.query("SELECT * FROM blockers"))}
    ops = sign_in(browser, team, "jdiaz", selector=READY)
    show_queue(ops)
    offered = ops.locator(".board-act-blocker select option").all_inner_texts()
    shown = next(t for t in offered if t.replace("\xa0", " ") in at_1600)  # ipywidgets shows spaces as no-break spaces
    label = shown.replace("\xa0", " ")
    blocker = at_1600[label]
    ops.select_option(".board-act-blocker select", label=shown)
    order_id, reason = label.split(" · ")[:2]
    ops.fill(".board-act-assignee input", "M. Chen")
    ops.fill(".board-act-expected input", "15:10")
    ops.fill(".board-act-comment textarea", f"{COMMENT_MARK} {XSS}")
    ops.click(".board-act-acknowledge")
    ops.wait_for_selector(".board-act-done")
    assert acks.states(source.ack_log, source.site)[blocker].acknowledged_by == "J. Diaz"  # signed by the server's user
    ops.context.close()

    other = sign_in(browser, team, "mchen", selector=READY)  # another user, a fresh page
    show_queue(other)
    row = other.locator(".board-blockers-html tbody tr").filter(has_text=order_id).filter(has_text=reason).first
    handling = row.locator('td[data-col="handling"]').inner_text()
    assert re.match(r"acknowledged by J\. Diaz \d\d:\d\d, assigned to M\. Chen, expected 15:10: ", handling)
    assert COMMENT_MARK in handling and XSS in handling  # the comment, as text
    other.wait_for_timeout(300)
    assert other.evaluate("typeof window.__xss") == "undefined" and other.dialogs == []
    assert other.locator('.board-root img[src="x"], .board-root script').count() == 0
    other.screenshot(path=str(ARTIFACTS / "board-acknowledged.png"))
    other.context.close()

    from handoff_lib.publish.runs import run_review

    result = run_review(source.settings, dt.datetime(2026, 11, 24, 16, 0, tzinfo=source.settings.tz),
                        history=source.history_db, progress=False)
    report = browser.new_context().new_page()
    report.dialogs = []
    report.on("dialog", lambda d: (report.dialogs.append(d.message), d.dismiss()))
    report.route("http*://**/*", lambda r: r.abort())  # the report needs no network
    report.goto((result.out_dir / "cutoff_review.html").as_uri())
    queue = report.locator("#acknowledged-blockers")  # the report's top rows may not reach it: the handled ones are listed
    cell = queue.locator("tbody tr").filter(has_text=order_id).filter(has_text=reason).first.inner_text()
    assert "acknowledged by J. Diaz" in cell and "expected 15:10" in cell and COMMENT_MARK in cell
    assert report.locator("#unacknowledged-by-owner").count() == 1
    report.wait_for_timeout(300)
    assert report.evaluate("typeof window.__xss") == "undefined" and report.dialogs == []
    report.context.close()


ATTACK = """
async ([kid, orderId]) => {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const got = [];
  const opened = ws => new Promise(res => { ws.onopen = () => res(true); ws.onerror = () => res(false); ws.onclose = () => res(false); });
  const ws = new WebSocket(`${proto}://${location.host}/api/kernels/${kid}/channels?session_id=attack`);
  if (!(await opened(ws))) return {opened: false, got};
  ws.onmessage = async e => got.push(typeof e.data === 'string' ? e.data : new TextDecoder().decode(await e.data.arrayBuffer()));
  const send = (msg_type, content) => ws.send(JSON.stringify({header: {msg_id: crypto.randomUUID(), msg_type,
      username: 'attack', session: 'attack', date: new Date().toISOString(), version: '5.3'},
      parent_header: {}, metadata: {}, content, channel: 'shell', buffers: []}));
  send('comm_info_request', {});
  send('execute_request', {code: "import duckdb; print('EXECUTED')", silent: false, store_history: false,
                           user_expressions: {}, allow_stdin: false, stop_on_error: true});
  await sleep(1500);
  const info = got.map(m => { try { return JSON.parse(m); } catch (e) { return {}; } })
                  .find(m => (m.header || {}).msg_type === 'comm_info_reply');
  const comms = info ? Object.keys(info.content.comms) : [];
  for (const id of comms) {  // every widget this page's kernel has: set every value, click every button
    for (const value of [orderId, '', 0, 1, 'acknowledged', 'at_risk'])
      send('comm_msg', {comm_id: id, data: {method: 'update', state: {value, index: 1, selected_index: 1}, buffer_paths: []}});
    send('comm_msg', {comm_id: id, data: {method: 'custom', content: {event: 'click'}}});
    send('comm_msg', {comm_id: id, data: {method: 'request_state'}});
  }
  await sleep(6000);
  ws.close();
  return {opened: true, comms: comms.length, got};
}
"""


def strings(messages: list[str]) -> list[str]:
    """Every string value inside the JSON messages (as the browser would see it, unescaped)."""
    out: list[str] = []

    def walk(v):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for m in messages:
        try:
            walk(json.loads(m))
        except ValueError:
            pass
    return out


def kernel_id(page) -> str:
    return json.loads(page.inner_text("#jupyter-config-data"))["kernelId"]


def test_a_status_user_cannot_reach_the_blocker_queue_or_notes_even_through_the_kernel(browser, team, team_site):
    """Sam (status) drives every widget of their own kernel over its websocket; nothing that comes back
    holds a note, a blocker detail or a board comment. Code sent to the kernel is refused, and the
    kernel of an ops user's page cannot be reached at all."""
    source = board.resolve_source(str(team_site))
    if not acks.states(source.ack_log, source.site):  # a comment in the log, whichever test ran first
        snap = board.load_snapshot(source, dt.date(2026, 11, 24), "1200")
        blocker_id = snap.rows("SELECT blocker_id FROM blockers LIMIT 1")[0][0]
        snap.close()
        acks.record(source.ack_log, acks.Entry(source.site, blocker_id, "comment", "jdiaz", "J. Diaz", comment=COMMENT_MARK))
    ops_snap = board.load_snapshot(source, dt.date(2026, 11, 24), "1200")
    held = ops_snap.rows("SELECT order_id FROM blockers WHERE contains(detail, '__xss') ORDER BY order_id LIMIT 1")[0][0]
    details = [d for (d,) in ops_snap.rows("SELECT DISTINCT detail FROM blockers WHERE detail LIKE '%note \"%'")]
    ops_snap.close()

    ops = sign_in(browser, team, "jdiaz", selector=READY)
    ops_kernel = kernel_id(ops)
    sales = sign_in(browser, team, "sam")
    result = sales.evaluate(ATTACK, [kernel_id(sales), held])
    assert result["opened"] and result["comms"] > 10
    replies = "\n".join(result["got"] + strings(result["got"]))
    assert '"comm_msg"' in replies and held in replies  # the lookup answered the driven request
    for secret in ("__xss", COMMENT_MARK, "board-blockers", "EXECUTED", *details[:20]):
        assert secret not in replies and html.escape(secret) not in replies, f"{secret!r} reached the status user's browser"
    assert any("which is not allowed" in line for _, line in team.lines)  # Voila refused the execute_request
    other = sales.evaluate(ATTACK, [ops_kernel, held])
    assert other == {"opened": False, "got": []}  # another user's kernel: refused before it opens
    assert any(f"on kernel {ops_kernel} to 'sam'" in line for _, line in team.lines)
    ops.context.close()
    sales.context.close()


def test_exports_are_served_to_planners_and_not_to_status(browser, team):
    planner = sign_in(browser, team, "pat")
    planner.get_by_role("tab", name="Exports").click()
    link = planner.locator(".board-export-list a", has_text="blocker_queue.csv")
    href = link.get_attribute("href")
    got = planner.request.get(team.url.rstrip("/") + href)
    assert got.status == 200 and b"order_id" in got.body()[:500]
    planner.context.close()
    sales = sign_in(browser, team, "sam")
    assert sales.request.get(team.url.rstrip("/") + href).status == 403
    sales.context.close()


# ------------------------------------------------------------------------------ capacity and culling


@pytest.fixture(scope="module")
def culling(tmp_path_factory, board_site):
    """An unconnected idle kernel is culled after 8 s, checked every 4 s; room for five kernels."""
    s = start(tmp_path_factory, "culling", "--site", str(board_site), "--pool-size", "1", "--max-kernels", "5",
              "--cull-idle", "8", "--cull-interval", "4")
    yield s
    s.stop()


def test_pages_closed_abruptly_all_render_and_give_their_kernels_back(browser, culling):
    """Ten loads in a browser that is killed each time (no unload, no beacon): each renders, and each
    page's kernel is culled (with room for five kernels, kept ones would soon fill the board)."""
    rendered, kernels = [], []
    for _ in range(10):
        since = time.monotonic()
        tti, _, said = abrupt_load(browser.browser_type, culling.url, 90)
        rendered.append((tti is not None, said))
        kernels.append(culling.served_kernels(since)[-1][1])
    assert rendered == [(True, "")] * 10
    deadline = time.monotonic() + 60  # liveness bound for the culler (8 s idle + 4 s interval), not a timing figure
    while not set(kernels) <= set(culling.shutdowns()) and time.monotonic() < deadline:
        time.sleep(1)
    assert set(kernels) <= set(culling.shutdowns())
    assert sum("Culling 'idle' kernel" in line for _, line in culling.lines) >= 10


@pytest.fixture(scope="module")
def small(tmp_path_factory, board_site):
    """Room for two kernels and none pre-heated: every page starts its own (the path a burst of viewers takes)."""
    s = start(tmp_path_factory, "small", "--site", str(board_site), "--pool-size", "0", "--max-kernels", "2")
    yield s
    s.stop()


def test_a_full_board_says_so_in_plain_words_and_retries_by_itself(browser, small):
    a = new_page(browser, small)
    open_board(a, small.url)
    b = new_page(browser, small)
    open_board(b, small.url)
    c = new_page(browser, small)
    c.goto(small.url, wait_until="commit")
    c.wait_for_selector(".board-full")
    assert "The board is full right now" in c.inner_text("body") and "tries again by itself" in c.inner_text("body")
    assert c.locator('meta[http-equiv="refresh"]').count() == 1
    assert any("FULL, refused a page to" in line for _, line in small.lines)
    a.close(run_before_unload=True)  # a tab closed normally gives its kernel back at once
    c.wait_for_selector(".board-ready", timeout=90_000)  # the full page retried by itself
    for pg in (a, b, c):
        pg.context.close()


# ------------------------------------------------------------------------------ TLS and --no-login


@pytest.fixture(scope="module")
def open_tls(tmp_path_factory, board_site):
    tls = ROOT / "tests" / "fixtures" / "board_tls"
    s = start(tmp_path_factory, "open", "--site", str(board_site), "--no-login", "--certfile", str(tls / "cert.pem"),
              "--keyfile", str(tls / "key.pem"), scheme="https", host="0.0.0.0")
    yield s
    s.stop()


def test_an_open_network_board_over_tls_says_on_the_page_that_there_is_no_sign_in(browser, open_tls):
    page = new_page(browser, open_tls, ignore_https_errors=True)
    open_board(page, open_tls.url)
    assert page.url.startswith("https://")
    assert "No sign-in: anyone who can reach this address can open this board" in page.inner_text(".board-banner")
    tabs = page.locator(".board-tabs .lm-TabBar-tab, .board-tabs .p-TabBar-tab").all_inner_texts()
    assert "Blocker queue" not in tabs  # everyone is `status` without sign-in
    page.screenshot(path=str(ARTIFACTS / "board-no-login.png"))
    page.context.close()
