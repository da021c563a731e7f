"""The whole picture on a generated demo day, checked against the generator's ground truth
(issue 2: crosswalk recovery; issue 3: every injected condition shows up as its state and blocker)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from handoff_lib.load.settings import load_settings
from handoff_lib.publish.picture import summary_with_drill_down
from handoff_lib.publish.pipeline import build_picture

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """A 10,000-order demo day as of 14:30, loaded, linked and analysed."""
    from conftest import make_site

    from handoff_lib.load.demo import generate

    tmp = tmp_path_factory.mktemp("day10k")
    generate(orders=10_000, seed=5, out=tmp / "data", at=("14:30",), site_file=ROOT / "parameters/demo.yaml", progress=False)
    settings = load_settings(make_site(tmp, tmp / "data"))
    now = dt.datetime(2026, 11, 24, 14, 30, tzinfo=settings.tz)
    con = build_picture(settings, now=now)
    truth = pd.read_csv(tmp / "data" / "truth" / "links.csv", dtype=str, keep_default_na=False)
    conditions = pd.read_csv(tmp / "data" / "truth" / "conditions.csv", dtype=str, keep_default_na=False)
    return settings, con, truth, conditions


def xref_vs_truth(con, truth: pd.DataFrame) -> pd.DataFrame:
    x = con.execute("SELECT source, record_key, order_id, status, level, confidence FROM xref").df()
    return truth.merge(x, on=["source", "record_key"], how="left", validate="one_to_one")


def test_every_truth_record_is_in_the_crosswalk(day):
    _, con, truth, _ = day
    m = xref_vs_truth(con, truth)
    assert m["status"].notna().all()


def test_crosswalk_recovers_at_least_99_5_percent_of_true_links(day):
    _, con, truth, _ = day
    m = xref_vs_truth(con, truth)
    real = m[(m["orphan"] == "false") & (m["ambiguous"] == "false")]
    recovered = (real["order_id"] == real["true_order_id"]).mean()
    assert recovered >= 0.995, f"recovered {recovered:.4%}"


def test_no_wrong_link_at_the_highest_confidence(day):
    _, con, truth, _ = day
    m = xref_vs_truth(con, truth)
    top = m[m["confidence"] == m["confidence"].max()]
    assert len(top) > 0
    assert (top["order_id"] == top["true_order_id"]).all()
    linked = m[m["status"] == "linked"]
    assert (linked["order_id"] == linked["true_order_id"]).all(), "no wrong link at any confidence either"


def test_every_injected_orphan_is_listed_as_unmatched(day):
    _, con, truth, _ = day
    m = xref_vs_truth(con, truth)
    orphans = m[m["orphan"] == "true"]
    assert len(orphans) > 0
    assert (orphans["status"] == "unmatched").all()


def test_a_shared_po_is_ambiguous_not_guessed(day):
    _, con, truth, _ = day
    m = xref_vs_truth(con, truth)
    shared = m[m["ambiguous"] == "true"]
    assert len(shared) > 0 and (shared["status"] == "ambiguous").all()


def test_read_equals_accepted_plus_rejected_plus_other_entity_for_every_file(day):
    _, con, _, _ = day
    bad = con.execute("SELECT * FROM load_report WHERE rows_read <> rows_accepted + rows_rejected + rows_other_entity").df()
    assert bad.empty


def test_duplicate_exports_are_rejected_as_exact_duplicates(day):
    _, con, _, conditions = day
    n_dup = con.execute("SELECT count(*) FROM rejects WHERE reason LIKE 'exact duplicate of line%'").fetchone()[0]
    assert n_dup >= (conditions["condition"] == "duplicate_export").sum() > 0


# ------------------------------------------------------------------ issue 3, scenario 9

def blockers_of(con, order_id: str) -> set[str]:
    return {r for (r,) in con.execute("SELECT reason FROM blockers WHERE order_id = ?", [order_id]).fetchall()}


def state_of(con, order_id: str) -> str:
    return con.execute("SELECT state FROM order_states WHERE order_id = ?", [order_id]).fetchone()[0]


EXPECTED_BLOCKER = {
    "short_pick": {"short_pick"},
    "substitution_against_instruction": {"substitution"},
    "missing_label": {"label_missing"},
    "missing_manifest": {"manifest_missing"},
    "not_released": {"not_released"},
}


def open_orders(con, conditions: pd.DataFrame, condition: str) -> pd.DataFrame:
    """The condition's rows on orders that are still open (a cancelled or handed-off order has no open blockers)."""
    rows = conditions[conditions["condition"] == condition]
    closed = {o for (o,) in con.execute("SELECT order_id FROM order_states WHERE state IN ('cancelled', 'handed_off')").fetchall()}
    return rows[~rows["order_id"].isin(closed)]


@pytest.mark.parametrize("condition", sorted(EXPECTED_BLOCKER))
def test_each_injected_condition_raises_its_blocker(day, condition):
    settings, con, _, conditions = day
    rows = open_orders(con, conditions, condition)
    if condition == "missing_manifest":  # flagged once policy.manifest_due_minutes_after_label has passed
        due = settings.raw["policy"]["manifest_due_minutes_after_label"]
        label = pd.to_datetime("2026-11-24 " + rows["detail"].str.extract(r"label (\d\d:\d\d)")[0])
        rows = rows[(pd.Timestamp("2026-11-24 14:30") - label).dt.total_seconds() / 60 >= due]
    assert len(rows) > 0
    missing = [o for o in rows["order_id"] if not (blockers_of(con, o) & EXPECTED_BLOCKER[condition])]
    assert not missing, f"{len(missing)} of {len(rows)} {condition} orders lack the blocker, e.g. {missing[:5]}"


@pytest.mark.parametrize("condition", ["hold_coded", "hold_blank_code", "pack_exception"])
def test_each_open_hold_and_pack_exception_is_its_own_blocker_row(day, condition):
    _, con, _, conditions = day
    rows = open_orders(con, conditions, condition)
    rows = rows[~rows["detail"].str.contains("; released ")]  # released holds are history, not blockers
    assert len(rows) > 0
    keys = {k for (k,) in con.execute("SELECT source_key FROM blockers").fetchall()}
    missing = [k for k in rows["record_key"] if k not in keys]
    assert not missing, f"{len(missing)} of {len(rows)} {condition} records have no blocker row, e.g. {missing[:5]}"


def test_an_order_with_several_open_holds_has_a_row_per_hold_and_stays_held(day):
    _, con, _, conditions = day
    holds = conditions[conditions["condition"].isin(["hold_coded", "hold_blank_code"])]
    open_holds = holds[~holds["detail"].str.contains("; released ")]
    several = open_holds.groupby("order_id").size()
    several = several[several >= 2].index
    assert len(several) > 0
    for order_id in several:
        n = con.execute(
            "SELECT count(*) FROM blockers WHERE order_id = ? AND source_entity = 'holds'", [order_id]
        ).fetchone()[0]
        assert n >= 2, order_id
        assert state_of(con, order_id) in ("held", "cancelled"), order_id


@pytest.mark.parametrize("condition, state", [("cancelled", "cancelled"), ("handed_off", "handed_off")])
def test_terminal_conditions_show_as_their_state(day, condition, state):
    _, con, _, conditions = day
    rows = conditions[conditions["condition"] == condition]
    wrong = [o for o in rows["order_id"] if state_of(con, o) != state]
    assert not wrong, f"{len(wrong)} of {len(rows)} not {state}: {wrong[:5]}"


def test_every_orphan_is_an_unlinked_record_blocker(day):
    _, con, _, conditions = day
    keys = {k for (k,) in con.execute("SELECT source_key FROM blockers WHERE reason = 'unlinked_record'").fetchall()}
    orphans = conditions[conditions["condition"] == "orphan"]
    assert len(orphans) > 0
    assert set(orphans["record_key"]) <= keys


def test_every_summary_count_equals_its_drill_down_list(day):
    settings, con, _, _ = day
    for name, (count, rows) in summary_with_drill_down(con, settings).items():
        assert count == len(rows), name
