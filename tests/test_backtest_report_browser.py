"""The backtest report (notebooks/backtest_report.ipynb, papermill -> offline HTML) opened in a real headless
Chromium at 1280 px: the conclusion on the first screen, nothing wider than the window, tables a person
reads, both charts drawn, no request leaving the machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import offline_page

ARTIFACTS = Path(__file__).resolve().parent.parent / "outputs" / "test-artifacts"
WIDTH, HEIGHT = 1280, 900


@pytest.fixture(scope="module")
def report(planted_run, tmp_path_factory):
    from handoff_lib.cli.backtest import run_report
    from handoff_lib.load.settings import load_settings

    site, result = planted_run
    out = tmp_path_factory.mktemp("report")
    result.write(out)
    settings = load_settings(site)
    import planted_history as ph

    return run_report(settings, out, ph.FIRST, ph.LAST, settings.review_times, progress=False)["report"]


@pytest.fixture(scope="module")
def own_browser():
    """A Chromium of this module's own, closed when the module ends: the session's `browser` would keep
    Playwright's event loop running into modules that start their own (test_board.py)."""
    from conftest import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(own_browser, report):
    pg = offline_page(own_browser, WIDTH, HEIGHT)
    pg.goto(report.as_uri())
    pg.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    pg.wait_for_timeout(500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "backtest_report_1280_first_screen.png"))
    pg.screenshot(path=str(ARTIFACTS / "backtest_report_1280.png"), full_page=True)
    yield pg
    pg.context.close()


def test_the_conclusion_is_on_the_first_screen_and_says_what_to_set(page):
    box = page.locator(".bt-conclusion").bounding_box()
    assert box["y"] + box["height"] <= HEIGHT
    text = page.locator(".bt-conclusion").inner_text()
    assert "Today's setting, a buffer of 60 min (1 h), warned about 0 % of late hand-offs" in text
    assert "Recommended: buffer 240 min (4 h) and own buffers for 1 customer (chosen on May–Jun 2025)" in text
    assert "tested on May–Jun 2025" in text


def test_nothing_is_wider_than_a_1280_px_window(page):
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    overflow = page.evaluate(
        """() => [...document.querySelectorAll('table, .jp-OutputArea-output, .js-plotly-plot')]
                 .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 || e.scrollWidth > e.clientWidth + 1)
                 .map(e => e.className || e.tagName)"""
    )
    assert overflow == []


def test_tables_have_named_columns_no_index_and_no_nan(page):
    tables = page.locator("table.bt-table")
    assert tables.count() >= 6
    for i in range(tables.count()):
        heads = tables.nth(i).locator("th").all_inner_texts()
        assert heads and all(h.strip() for h in heads)  # an index column would have an empty header
        assert "_" not in "".join(heads) or heads[0] == "Step"  # headers in words, not snake_case (step names are data)
        cells = tables.nth(i).locator("td").all_inner_texts()
        assert not {"nan", "NaN", "None", "<NA>"} & {c.strip() for c in cells}


def test_both_charts_are_drawn_on_the_test_months(page):
    plots = page.locator(".js-plotly-plot")
    assert plots.count() == 2
    for i in range(plots.count()):
        assert plots.nth(i).locator("g.trace").count() >= 2
        assert "May–Jun 2025" in plots.nth(i).locator(".gtitle").first.text_content()


def test_no_code_and_no_request_leaves_the_machine(page):
    assert page.locator(".jp-CodeCell .jp-InputArea, .jp-InputPrompt, .highlight").count() == 0
    assert page.outside_requests == []
