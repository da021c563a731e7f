"""The review's data banner says, in one info line, what the extracts stamp after the review time
(handoff_lib/publish/review.py `data_warnings`, asof.summary_text), opened in a real headless Chromium.

Its own module, not in test_asof.py: the session browser (sync Playwright) keeps an event loop running
once started, and test_board.py's kernel-limit test calls asyncio.run, so a browser test must not run
before it (pytest runs the modules in name order)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from handoff_lib.load.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_review_report_shows_the_count_as_info_in_a_real_browser(tmp_path, demo_day, browser):
    """A review at 11:00 of the 12:00 export: the banner has one info line, above the rejected-rows banner."""
    from conftest import make_site

    from handoff_lib.publish.runs import run_review

    shutil.copytree(demo_day / "1200", tmp_path / "data")
    settings = load_settings(make_site(tmp_path, tmp_path / "data"))
    result = run_review(settings, dt.datetime(2026, 11, 24, 11, 0, tzinfo=settings.tz), progress=False)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto((result.out_dir / "cutoff_review.html").as_uri())
        line = page.locator(".data-asof")
        line.wait_for(timeout=30_000)
        assert line.count() == 1 and line.is_visible()
        text = line.inner_text()
        assert text.startswith("Stamped after Tue 24 Nov 2026 11:00, as of the review:")
        assert "records created later left out (orders " in text and "DEGRADED" not in text
        below = page.locator(".data-asof + .data-ok, .data-asof + .data-warning, .data-asof + .data-info")
        assert below.count() == 1  # the rejected-rows banner keeps its own severity, right below
        line.scroll_into_view_if_needed()
        artifacts = ROOT / "outputs" / "test-artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(artifacts / "asof_banner.png"))
    finally:
        page.close()
