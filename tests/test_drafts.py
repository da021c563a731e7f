"""Draft notes for at-risk / needs-communication orders: marked as drafts, cite their sources, never state
a date the source data does not hold; and the 'since last cutoff' summary."""

import datetime as dt
import re

import pandas as pd
from scenario_tables import DAY, Story, at

from handoff_lib.learn.drafts import DRAFT_MARK, build_drafts, since_last_cutoff, write_drafts

MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
DATE_PATTERNS = (
    r"\b\d{4}-\d{2}-\d{2}\b",  # 2025-06-12
    rf"\b\d{{1,2}} (?:{MONTHS})[a-z]*\b",  # 12 Jun
    rf"\b(?:{MONTHS})[a-z]* \d{{1,2}}\b",  # Jun 12
    r"\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b",  # 6/12, 06/12/2025
)


def dates_in(text: str) -> set[str]:
    return {m for p in DATE_PATTERNS for m in re.findall(p, text)}


def source_facts(con, order_id: str, review_at: dt.datetime) -> str:
    """Every value of the order's board, promise and blocker rows as text, dates also as ISO: what a
    draft may draw on."""
    parts = [review_at.strftime("%Y-%m-%d %H:%M")]
    for table in ("order_board", "promise", "blockers"):
        df = con.execute(f"SELECT * FROM {table} WHERE order_id = ?", [order_id]).df()
        for value in df.to_numpy().ravel():
            if pd.api.types.is_list_like(value):
                parts.extend(str(v) for v in list(value))
                continue
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                continue
            if isinstance(value, (pd.Timestamp, dt.datetime)):
                ts = pd.Timestamp(value)
                ts = ts.tz_convert("America/New_York") if ts.tz else ts
                parts.append(ts.strftime("%Y-%m-%d %H:%M"))
            elif isinstance(value, dt.date):
                parts.append(value.isoformat())
            else:
                parts.append(str(value))
    return "\n".join(parts)


def story() -> Story:
    s = Story()
    # at risk: a short pick before the cutoff, with an untrusted note (markup, a date, a control character)
    s.order("SO-1001", lines=2, customer_id="C-7", promised_delivery=DAY + dt.timedelta(days=1))  # only today's truck keeps it
    s.task("T-1", "SO-1001", 1, required=5, picked=5, status="picked")
    s.task(
        "T-2",
        "SO-1001",
        2,
        required=5,
        picked=3,
        status="short",
        location="A-12-03",
        note='<img src=x onerror=alert(1)> =HYPERLINK("x") empty\x07 bin, cust wants it by 6/20',
        updated_at=at("14:10"),
    )
    # needs communication: a missed ship-by, with no promised delivery date on the order
    s.order("SO-2002", ship_by=at("12:00"), promised_delivery=None)
    # safe: no draft
    s.order("SO-3003", carrier="FDX", service="GRD")
    s.analyse("14:30")
    return s


def test_every_at_risk_and_needs_communication_order_gets_a_draft_marked_for_review_citing_its_sources():
    s = story()
    drafts = build_drafts(s.con, review_at=at("14:30"), next_check="the 15:30 cutoff review").set_index("order_id")
    assert drafts.index.tolist() == ["SO-2002", "SO-1001"]  # needs_communication first
    d = drafts.loc["SO-1001", "draft"]
    assert d.startswith(DRAFT_MARK)
    assert "Short pick - owner replenishment" in d and "at A-12-03" in d
    assert "wms pick_tasks T-2; pick_tasks.csv line" in d and "https://wms.example.com/tasks/T-2" in d
    assert "Next check: the 15:30 cutoff review." in d
    assert "No new ship or delivery date is given here" in d
    assert drafts.loc["SO-1001", "owners"] == "replenishment"


def test_a_draft_never_contains_a_date_absent_from_the_source_data():
    s = story()
    review_at = at("14:30")
    drafts = build_drafts(s.con, review_at=review_at)
    assert len(drafts) == 2
    for row in drafts.itertuples():
        facts = source_facts(s.con, row.order_id, review_at)
        found = dates_in(row.draft)
        assert found, row.draft  # the drafts do carry dates: each must come from the sources
        for date in found:
            assert date in facts, f"{row.order_id}: draft states {date!r}, which no source record holds"
    no_promise = drafts.set_index("order_id").loc["SO-2002", "draft"]
    assert "promised delivery" not in no_promise  # the order has none, so the draft claims none


def test_untrusted_note_text_stays_plain_text_in_the_draft():
    s = story()
    d = build_drafts(s.con).set_index("order_id").loc["SO-1001", "draft"]
    assert '<img src=x onerror=alert(1)> =HYPERLINK("x") empty bin' in d  # verbatim, not interpreted or escaped
    assert "\x07" not in d and "&lt;" not in d


def test_drafts_are_written_as_text_and_a_spreadsheet_safe_csv(tmp_path):
    s = story()
    drafts = build_drafts(s.con)
    written = write_drafts(drafts, tmp_path, summary="No changes since the last cutoff review.")
    assert written["drafts_txt"].read_text().count(DRAFT_MARK) == 2
    assert written["since_last_cutoff"].read_text().startswith("No changes")
    assert pd.read_csv(written["drafts_csv"])["order_id"].tolist() == ["SO-2002", "SO-1001"]


def test_since_last_cutoff_lists_high_priority_changes_worst_promise_first_and_counts_the_rest():
    changes = pd.DataFrame(
        [
            {"order_id": "SO-1", "change": "new_blocker", "after": "Short pick", "priority": 90, "detail": "line 2 short at A-1"},
            {"order_id": "SO-2", "change": "promise_changed", "before": "safe", "after": "needs_communication", "priority": 40},
            {"order_id": "SO-3", "change": "blocker_resolved", "before": "Credit hold", "priority": 120},
            {"order_id": "SO-4", "change": "new_blocker", "after": "Label missing", "priority": 5},
            {"order_id": "SO-5", "change": "state_changed", "before": "pickable", "after": "held", "priority": 60},
        ]
    )
    text = since_last_cutoff(changes, min_priority=30, top=3, previous="12:00")
    lines = text.splitlines()
    assert lines[0] == "4 high-priority changes since the last cutoff review (12:00):"
    assert lines[1] == "- SO-2 (priority 40) promise changed safe -> needs_communication"
    assert lines[2].startswith("- SO-3 (priority 120) blocker resolved Credit hold -> -")
    assert lines[3] == "- SO-1 (priority 90) new blocker - -> Short pick: line 2 short at A-1"
    assert lines[4] == "... and 1 more (see the changes list)"
    assert since_last_cutoff(changes.iloc[0:0]) == "No changes since the last cutoff review."
