"""The cutoff review HTML report, opened in a real headless Chromium."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from handoff_lib.runs import run_review
from handoff_lib.settings import load_settings

ARTIFACTS = Path(__file__).resolve().parent.parent / "outputs" / "test-artifacts"


@pytest.fixture(scope="module")
def report(tmp_path_factory, demo_day):
    import shutil

    from conftest import make_site

    tmp = tmp_path_factory.mktemp("report")
    shutil.copytree(demo_day, tmp / "data")
    settings = load_settings(make_site(tmp, tmp / "data" / "{time}"))
    for hhmm in ("12:00", "16:00"):
        result = run_review(settings, dt.datetime(2026, 11, 24, int(hhmm[:2]), 0, tzinfo=settings.tz), progress=False)
    return result.out_dir / "cutoff_review.html"


@pytest.fixture(scope="module")
def page(browser, report):
    context = browser.new_context(viewport={"width": 1400, "height": 2000})
    pg = context.new_page()
    pg.outside_requests = []
    pg.dialogs = []

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            pg.outside_requests.append(r.request.url)
            r.abort()

    pg.route("**/*", route)
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.goto(report.as_uri())
    pg.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    pg.wait_for_timeout(500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "cutoff_review_report.png"))
    yield pg
    context.close()


def test_every_chart_is_drawn(page):
    plots = page.locator(".js-plotly-plot")
    assert plots.count() == 3  # state funnel, blockers by owner, cutoff burn-down
    for i in range(plots.count()):
        assert plots.nth(i).locator(".main-svg").count() >= 1
        assert plots.nth(i).locator("g.trace, g.barlayer .point").count() >= 1


def test_no_code_cell_is_shown(page):
    assert page.locator(".jp-CodeCell .jp-InputArea, .jp-InputPrompt, .jp-OutputPrompt, .highlight").count() == 0
    assert page.locator(".jp-MarkdownCell").count() >= 5  # the prose stays
    assert "Review.open(" not in page.inner_text("body")


def test_no_request_leaves_the_machine(page):
    assert page.outside_requests == []


def test_each_headline_count_equals_the_rows_of_its_table(page):
    tiles = page.locator(".tile")
    assert tiles.count() >= 5
    for i in range(tiles.count()):
        tile = tiles.nth(i)
        count = int(tile.get_attribute("data-count"))
        table = tile.get_attribute("data-table")
        rows = page.locator(f"table#{table} tbody tr").count()
        assert rows == count, f"tile {table}: {count} but its table has {rows} rows"


def test_changes_since_the_last_review_are_listed_with_matching_counts(page):
    summary = page.locator("table#changes-summary tbody tr")
    assert summary.count() == 6
    total = sum(int(summary.nth(i).locator("td").nth(1).inner_text()) for i in range(summary.count()))
    assert total == page.locator("table#changes tbody tr").count() > 0


def test_untrusted_text_is_shown_as_text_and_runs_nothing(page):
    assert page.dialogs == []
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    assert all(h.startswith(("http://", "https://", "#")) for h in hrefs), [h for h in hrefs if not h.startswith("http")][:5]
    assert page.locator("img[src='x']").count() == 0  # <img src=x onerror=...> in a case text stays text
    body = page.inner_text("body")
    assert "<script>alert(1)</script>" in body
    assert page.locator("script:text('alert(1)')").count() == 0


def test_outputs_and_prose_can_be_reached_with_the_keyboard(page):
    assert page.locator(".jp-OutputArea-output[tabindex='0']").count() >= 10
    assert page.locator(".jp-Cell-inputWrapper[tabindex='0']").count() >= 5  # the markdown cells


def test_a_capped_table_says_how_many_rows_it_shows_of_how_many():
    import pandas as pd

    from handoff_lib.review import html_table

    first = pd.DataFrame({"order_id": ["A", "B"], "note": ["<b>x</b>", "y"]})
    out = html_table(first, "t", "Orders", max_rows=2, total=5).data
    assert 'data-rows="5"' in out and "(5 rows)" in out
    assert "Showing the first 2 of 5 rows; the exports hold all of them." in out
    assert "&lt;b&gt;x&lt;/b&gt;" in out and "<b>x</b>" not in out
    assert "Showing" not in html_table(first, "t", "Orders").data
