"""The cutoff review HTML report, opened in a real headless Chromium at 1440x900 (a laptop at the meeting)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from conftest import offline_page

from handoff_lib.load.settings import load_settings
from handoff_lib.publish.runs import run_review

ARTIFACTS = Path(__file__).resolve().parent.parent / "outputs" / "test-artifacts"


MEETING_REVIEWS = ("12:00", "14:30")
UNTRUSTED = "<script>alert(1)</script> Traders <img src=x onerror=alert(1)>"


def untrusted(path: Path, column: str, text: str) -> None:
    """Put `text` into `column` of every row of the CSV extract at `path`."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, column: text} for r in rows)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The 14:30 review of a 400-order demo day (after a 12:00 review, so changes are listed)."""
    from conftest import ROOT, make_site

    from handoff_lib.load.demo import generate

    tmp = tmp_path_factory.mktemp("report")
    generate(orders=400, seed=11, out=tmp / "data", at=MEETING_REVIEWS, site_file=ROOT / "parameters/demo.yaml", progress=False)
    # untrusted text where the first lists show it: every customer's name and every hold note at 14:30
    untrusted(tmp / "data" / "1430" / "oms_orders.csv", "SoldToName", UNTRUSTED)
    untrusted(tmp / "data" / "1430" / "wms_holds.csv", "HOLD_NOTE", UNTRUSTED)
    settings = load_settings(make_site(tmp, tmp / "data" / "{time}"))
    for hhmm in MEETING_REVIEWS:
        result = run_review(settings, dt.datetime(2026, 11, 24, int(hhmm[:2]), int(hhmm[3:]), tzinfo=settings.tz), progress=False)
    return result.out_dir / "cutoff_review.html"


@pytest.fixture(scope="module")
def page(browser, report):
    pg = offline_page(browser)
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.goto(report.as_uri())
    pg.wait_for_selector("svg.pickup-chart, .chart-empty", state="attached", timeout=30_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / "cutoff_review_first_screen.png"))
    pg.screenshot(path=str(ARTIFACTS / "cutoff_review_report.png"), full_page=True)
    yield pg
    pg.context.close()


def test_the_first_screen_shows_the_next_pickup_verdicts_and_the_act_now_list(page):
    page.evaluate("window.scrollTo(0, 0)")
    first = page.locator("table#next-pickups tbody tr").first
    verdict = first.locator("td").nth(1).inner_text()
    assert verdict.startswith(("will make", "at risk", "will miss")), verdict
    act = page.locator("table#act-now tbody tr").first
    for el in (first, act, page.locator(".tile").first):
        box = el.bounding_box()
        assert box is not None and box["y"] + box["height"] <= 900, f"below the first screen: {box}"
    assert act.locator("td").nth(1).inner_text()  # the top action, in words
    assert page.locator(".tile").count() <= 6  # a few meaningful figures, not a wall of tiles


def test_the_pickup_chart_is_drawn_without_plotly(page):
    chart = page.locator("svg.pickup-chart")
    assert chart.count() == 1
    assert chart.locator("polyline").count() == 3  # labour available per area: pick, pack, ship
    assert chart.locator("rect").count() >= 3  # work needed per area and pickup
    assert page.locator(".js-plotly-plot").count() == 0 and "Plotly.newPlot" not in page.content()


def test_the_report_is_a_page_not_a_dump(page, report):
    height = page.evaluate("document.body.scrollHeight")
    assert height < 40 * 900, f"{height} px: more than 40 screens"
    assert report.stat().st_size < 2_000_000
    more = page.locator(".handoff-block .more").all_inner_texts()
    assert any("more in act_now.csv / on the board" in m for m in more) or page.locator("table#act-now tbody tr").count() < 15


def test_text_is_left_aligned_numbers_right_aligned_and_line_breaks_kept(page):
    style = "(el) => [getComputedStyle(el).textAlign, getComputedStyle(el).whiteSpace]"
    text_cell = page.locator("table#act-now tbody tr td.wide").first
    assert text_cell.evaluate(style)[0] in ("left", "start")
    num_cell = page.locator("table#next-pickups tbody tr td.num").first
    assert num_cell.evaluate(style)[0] == "right"
    draft = page.locator("table#calls td.whole").first
    if draft.count():
        assert draft.evaluate(style)[1] == "pre-wrap"
        assert "\n" in draft.inner_text() and "\\n" not in draft.inner_text()
    headers = page.locator("table#next-pickups thead th").all_inner_texts()
    assert "Pickup" in headers and "Verdict" in headers and "orders_due" not in headers
    assert "None" not in page.locator("table#act-now").inner_text().split()


def test_no_code_cell_is_shown(page):
    assert page.locator(".jp-CodeCell .jp-InputArea, .jp-InputPrompt, .jp-OutputPrompt, .highlight").count() == 0
    assert page.locator(".jp-MarkdownCell").count() >= 5  # the prose stays
    assert "Review.open(" not in page.inner_text("body")
    assert "FloatProgress" not in page.inner_text("body")  # no progress widget (tqdm, DuckDB) reaches the report


def test_no_request_leaves_the_machine(page):
    assert page.outside_requests == []


def test_headline_figures_match_the_lists_behind_them(page):
    calls = page.locator(".tile[data-table='calls']")
    assert int(calls.get_attribute("data-count")) == int(page.locator(".handoff-block[data-table='calls']").get_attribute("data-rows"))
    at_risk = page.locator(".tile[data-table='next-pickups']").nth(1)
    headers = page.locator("table#next-pickups thead th").all_inner_texts()
    first_row = page.locator("table#next-pickups tbody tr").first.locator("td").all_inner_texts()
    assert at_risk.get_attribute("data-count") == first_row[headers.index("At risk")].replace(",", "")


def test_changes_since_the_last_review_are_listed_with_matching_counts(page):
    summary = page.locator("table#changes-summary tbody tr")
    assert summary.count() >= 1
    total = sum(int(summary.nth(i).locator("td").nth(1).inner_text().replace(",", "")) for i in range(summary.count()))
    assert total == int(page.locator(".handoff-block[data-table='changes']").get_attribute("data-rows")) > 0


def test_untrusted_text_is_shown_as_text_and_runs_nothing(page):
    assert page.dialogs == []
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    assert all(h.startswith(("http://", "https://", "#")) for h in hrefs), [h for h in hrefs if not h.startswith("http")][:5]
    assert page.locator("img[src='x']").count() == 0  # <img src=x onerror=...> in names and notes stays text
    body = page.inner_text("body")
    assert "<script>alert(1)</script> Traders" in body and "<img src=x onerror=alert(1)>" in body
    assert page.locator("script:text('alert(1)')").count() == 0


def test_outputs_and_prose_can_be_reached_with_the_keyboard(page):
    assert page.locator(".jp-OutputArea-output[tabindex='0']").count() >= 10
    assert page.locator(".jp-Cell-inputWrapper[tabindex='0']").count() >= 5  # the markdown cells


def test_a_capped_table_says_how_many_rows_it_shows_of_how_many():
    import pandas as pd

    from handoff_lib.publish.review import html_table

    first = pd.DataFrame({"order_id": ["A", "B"], "note": ["<b>x</b>", "y"]})
    out = html_table(first, "t", "Orders", max_rows=2, total=5).data
    assert 'data-rows="5"' in out and "(5 rows)" in out
    assert "3 more in the exports." in out
    assert "&lt;b&gt;x&lt;/b&gt;" in out and "<b>x</b>" not in out
    assert "more in" not in html_table(first, "t", "Orders").data


def test_a_table_shows_blanks_joined_lists_readable_names_and_cuts_long_text_with_a_sign():
    import pandas as pd

    from handoff_lib.publish.review import MAX_TEXT, html_table

    long = "x" * (MAX_TEXT + 50)
    df = pd.DataFrame({"order_id": ["A", None], "source_links": [["u", "v"], None], "detail": [long, "line one\nline two"],
                       "draft": [long, "b"], "source_link": ["javascript:alert(1)", "https://wms.example.com/tasks/T-1"]})
    out = html_table(df, "t", whole=("draft",)).data
    assert "<th class=\"txt\">Order</th>" in out and "None" not in out and "u; v" in out
    assert "x" * (MAX_TEXT - 1) + "…" in out and long in out  # detail cut with a sign; the draft whole
    assert "line one\nline two" in out  # the browser keeps it (white-space: pre-wrap)
    assert 'href="javascript' not in out and '<a href="https://wms.example.com/tasks/T-1"' in out
