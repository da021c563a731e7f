"""The handoff board served by Voila (handoff_lib.board_server), driven in a real headless Chromium."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from handoff_lib import board

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "outputs" / "test-artifacts"
READY = ".board-ready .board-blockers-html table.board-table"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def board_site(tmp_path_factory, demo_day) -> Path:
    from test_board import XSS, build_history

    return build_history(tmp_path_factory.mktemp("board_browser"), demo_day, note=XSS)


@pytest.fixture(scope="module")
def server(board_site, tmp_path_factory):
    """`python -m handoff_lib.board_server` on a free loopback port; stopped (kernels included) after."""
    port = free_port()
    log = tmp_path_factory.mktemp("board_log") / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "handoff_lib.board_server", "--site", str(board_site), "--port", str(port)],
            cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"board server exited: {log.read_text()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, f"board server did not listen: {log.read_text()}"
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}/", log
    proc.send_signal(signal.SIGTERM)  # Voila shuts its kernels down on SIGTERM
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def page(browser, server):
    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    pg = context.new_page()
    pg.dialogs = []
    pg.outside = []

    def route(r):
        if r.request.url.startswith(url):
            r.continue_()
        else:  # Voila's template links a CDN stylesheet: nothing leaves the machine in the test
            pg.outside.append(r.request.url)
            r.abort()

    pg.route("**/*", route)
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.goto(url, wait_until="commit")  # Voila streams the page
    pg.wait_for_selector(READY, timeout=60_000)
    yield pg
    context.close()


@pytest.fixture(scope="module")
def snap(board_site):
    source = board.resolve_source(str(board_site))
    latest = board.list_reviews(source).iloc[0]
    s = board.load_snapshot(source, latest["review_date"], latest["review_time"])
    yield s
    s.close()


def version(page, table_class: str) -> str:
    return page.get_attribute(f".{table_class}-html table.board-table", "data-version")


def test_the_board_loads_with_the_latest_review(page, snap, board_site):
    source = board.resolve_source(str(board_site))
    with duckdb.connect(str(source.history_db), read_only=True) as con:
        n = con.execute("SELECT count(*) FROM snap_orders WHERE review_time = '1600'").fetchone()[0]
    assert page.get_attribute('.board-tile[data-key="orders"]', "data-count") == str(n)
    assert "16:00" in page.inner_text(".board-root h2")
    assert "Traceback" not in page.inner_text("body")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "board.png"))


def test_an_owner_filter_narrows_the_blocker_queue_to_the_right_rows(page, snap):
    owners = snap.con.execute(
        "SELECT owner, count(*) FROM blockers GROUP BY 1 HAVING count(*) BETWEEN 2 AND 50 ORDER BY 2 DESC, 1 LIMIT 1"
    ).fetchone()
    owner = owners[0]
    want = snap.con.execute(
        "SELECT order_id, source_key FROM blockers WHERE owner = ? ORDER BY order_id, source_key", [owner]
    ).fetchall()
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
    # the blocker queue quotes the note in the hold blocker's detail
    owner = snap.con.execute(
        "SELECT owner FROM blocker_queue WHERE contains(detail, '<script>window.__xss') ORDER BY rank LIMIT 1"
    ).fetchone()[0]
    page.get_by_role("tab", name="Blocker queue").click()
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
