"""How current the extracts are (handoff_lib/load/freshness.py; rules in docs/extracts.md, "How current the extracts are";
cases in docs/reliability.md, "Fresh or flagged").

Proved on the hand-written extract set tests/fixtures/extracts/good (Monday 2 March 2026; its newest events: pick
tasks 11:00, shipments 10:40, pack events 10:35, orders 10:00, holds 09:50, cases 09:00), copied into folders per
story. The site is the demo site file with `freshness: max_age: {pick_tasks: 30 min, default: 24 h}`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from handoff_lib.db import connect
from handoff_lib.errors import ExtractError, SettingsError, StaleExtractError
from handoff_lib.history.snapshots import ReviewKey, list_reviews, open_history, stale_sources, write_snapshot
from handoff_lib.load import freshness as fr
from handoff_lib.load.extracts import load_extracts
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.pipeline import build_picture

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "tests" / "fixtures" / "extracts" / "good"
LIMITS = {"max_age": {"pick_tasks": "30 min", "default": "24 h"}}
MON = dt.date(2026, 3, 2)
TUE = dt.date(2026, 3, 3)
LOADER_COLUMNS = ["source", "file", "format", "rows_read", "rows_accepted", "rows_rejected", "extra_columns", "sha256",
                  "values_nulled", "values_flagged", "severity", "rows_other_entity"]


def site_file(tmp: Path, folder: str = "data", freshness: dict | None = None, sources: dict | None = None, **extra) -> Path:
    """The demo site file reading `tmp/<folder>` (placeholders allowed), outputs under tmp/outputs."""
    raw = yaml.safe_load((ROOT / "parameters" / "demo.yaml").read_text(encoding="utf-8"))
    raw["data"] = {"folder": str(tmp / folder), "allowed_roots": [str(tmp)]}
    raw["outputs"] = str(tmp / "outputs")
    raw["freshness"] = LIMITS if freshness is None else freshness
    raw["reviews"] = {"times": ["09:00", "12:00"], "days": ["mon", "tue", "wed", "thu", "fri"]}
    for entity, changes in (sources or {}).items():
        raw["sources"][entity].update(changes)
    raw.update(extra)
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def extracts(folder: Path, pick_tasks_updated: str | None = None) -> Path:
    """The good set in `folder`; `pick_tasks_updated` replaces every task's LAST_UPD (a WMS export of that time)."""
    shutil.copytree(GOOD, folder)
    if pick_tasks_updated:
        tasks = folder / "wms_pick_tasks.csv"
        text = re.sub(r"2026-03-02 1\d:\d\d:00", pick_tasks_updated, tasks.read_text(encoding="utf-8"))
        tasks.write_text(text, encoding="utf-8", newline="")
    return folder


def at(day: dt.date, hhmm: str, settings) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(int(hhmm[:2]), int(hhmm[3:])), tzinfo=settings.tz)


def judged(settings, when: dt.datetime) -> pd.DataFrame:
    con = connect(settings)
    load_extracts(con, settings)
    return fr.record(con, settings, when).set_index("source")


def set_modified(path: Path, when: dt.datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


# ------------------------------------------------------------------------------------------------ as-of times


def test_each_source_is_as_of_its_newest_event_or_else_its_file(tmp_path):
    extracts(tmp_path / "data")
    settings = load_settings(site_file(tmp_path))
    set_modified(tmp_path / "data" / "wms_inventory.csv", at(MON, "06:15", settings))
    f = judged(settings, at(MON, "11:10", settings))
    assert (f.loc["pick_tasks", "as_of_basis"], f"{f.loc['pick_tasks', 'as_of']:%H:%M}") == ("updated_at", "11:00")
    assert (f.loc["shipments", "as_of_basis"], f"{f.loc['shipments', 'as_of']:%H:%M}") == ("label_created_at", "10:40")
    assert (f.loc["orders", "as_of_basis"], f"{f.loc['orders', 'as_of']:%H:%M}") == ("cancelled_at", "10:00")  # newest of three
    assert (f.loc["holds", "as_of_basis"], f"{f.loc['holds', 'as_of']:%H:%M}") == ("released_at", "09:50")
    assert (f.loc["inventory", "as_of_basis"], f"{f.loc['inventory', 'as_of']:%H:%M}") == ("file modified", "06:15")
    assert f.loc["pick_tasks", "age_minutes"] == 10 and f.loc["inventory", "age_minutes"] == 295
    assert (f["freshness"] == "fresh").all()
    assert fr.describe(f.loc["pick_tasks"].to_dict() | {"source": "pick_tasks"}, settings, at(MON, "11:10", settings)) == (
        "WMS pick tasks as of 11:00, 10 min before the review")


def test_the_load_report_keeps_the_loaders_columns_first_and_adds_the_as_of_columns_at_its_end(tmp_path):
    extracts(tmp_path / "data")
    settings = load_settings(site_file(tmp_path))
    con = build_picture(settings, now=at(MON, "11:10", settings))
    columns = list(con.execute("SELECT * FROM load_report").df().columns)
    assert columns == LOADER_COLUMNS + [name for name, _ in fr.REPORT_COLUMNS]
    row = con.execute("SELECT data_as_of, file_as_of, as_of, max_age_minutes FROM load_report WHERE source = 'pick_tasks'").fetchone()
    assert row[0] == row[2] and row[1] is not None and row[3] == 30


def test_a_quiet_source_can_be_judged_by_its_file_and_a_source_by_the_fields_the_site_names(tmp_path):
    extracts(tmp_path / "data")
    settings = load_settings(site_file(tmp_path, freshness=LIMITS | {"as_of": {"cases": "file", "orders": ["ordered_at"]}}))
    set_modified(tmp_path / "data" / "crm_cases.csv", at(MON, "11:05", settings))
    f = judged(settings, at(MON, "11:10", settings))
    assert (f.loc["cases", "as_of_basis"], f.loc["cases", "age_minutes"]) == ("file modified", 5)
    assert (f.loc["orders", "as_of_basis"], f"{f.loc['orders', 'as_of']:%H:%M}") == ("ordered_at", "08:20")  # 13:20Z


def test_an_extract_newer_than_the_review_is_zero_minutes_old_and_said_to_be_cut_back(tmp_path):
    extracts(tmp_path / "data")
    settings = load_settings(site_file(tmp_path))
    when = at(MON, "10:30", settings)
    f = judged(settings, when)
    assert f.loc["pick_tasks", "age_minutes"] == 0 and f.loc["pick_tasks", "freshness"] == "fresh"
    assert fr.describe(f.loc["pick_tasks"].to_dict(), settings, when) == "WMS pick tasks as of 11:00, after the review (cut back to it)"


# ------------------------------------------------------------------------------------------------ stale


def test_one_stale_source_among_fresh_ones_is_named_with_its_age_and_limit(tmp_path):
    extracts(tmp_path / "data", pick_tasks_updated="2026-03-02 10:05:00")  # the WMS export stopped at 10:05
    settings = load_settings(site_file(tmp_path))
    when = at(MON, "11:00", settings)
    f = judged(settings, when)
    assert f.index[f["freshness"] != "fresh"].tolist() == ["pick_tasks"]
    assert f.loc["pick_tasks", "freshness"] == "stale"
    assert fr.stale_lines(f.reset_index(), settings, when) == ["WMS pick tasks as of 10:05, 55 min before the review (limit 30 min)"]


def test_a_folder_of_yesterdays_files_stops_todays_review_naming_the_source_its_time_and_the_setting(tmp_path):
    extracts(tmp_path / "data")
    settings = load_settings(site_file(tmp_path))
    with pytest.raises(StaleExtractError) as err:
        build_picture(settings, now=at(TUE, "11:10", settings), allow_stale=False)
    text = str(err.value)
    assert re.search(r"pick_tasks \(wms_pick_tasks\.csv\) as of Mon 02 Mar 2026 11:00 \(newest updated_at\), 24 h 10 min old, "
                     r"past freshness\.max_age\.pick_tasks 30 min \(.*site\.yaml line \d+\)", text)
    assert re.search(r"shipments \(carrier_shipments\.csv\) as of Mon 02 Mar 2026 10:40 .* past freshness\.max_age\.default 24 h", text)
    assert re.search(r"operating day runs from Tue 03 Mar 2026 04:00 .*policy\.day_starts_at, .*line \d+", text)
    assert "--allow-stale" in text


def test_a_limit_longer_than_the_night_accepts_yesterdays_last_event(tmp_path):
    """Cases with a 24-hour limit: yesterday's 09:00 case at this morning's 08:30 review is fresh."""
    extracts(tmp_path / "data")
    settings = load_settings(site_file(tmp_path))
    f = judged(settings, at(TUE, "08:30", settings))
    assert f.loc["cases", "freshness"] == "fresh" and f.loc["pick_tasks", "freshness"] == "earlier_day"


def test_with_allow_stale_yesterdays_files_are_reviewed_and_marked_stale(tmp_path):
    extracts(tmp_path / "data")
    settings = load_settings(site_file(tmp_path))
    con = build_picture(settings, now=at(TUE, "11:10", settings), allow_stale=True)
    stale = dict(con.execute("SELECT source, freshness FROM load_report WHERE freshness <> 'fresh'").fetchall())
    assert stale == {s: "earlier_day" for s in ("orders", "pick_tasks", "pack_events", "holds", "shipments", "cases")}
    assert con.execute("SELECT count(*) FROM order_board").fetchone()[0] > 0


# ------------------------------------------------------------------------------------------------ file names


def test_a_file_name_with_a_timestamp_gives_the_as_of_time_and_picks_the_file_of_the_review(tmp_path):
    data = extracts(tmp_path / "data")
    tasks = (data / "wms_pick_tasks.csv").read_text(encoding="utf-8")
    (data / "wms_pick_tasks.csv").unlink()
    for stamp in ("20260301_1600", "20260302_0857", "20260302_1157"):
        (data / f"wms_tasks_{stamp}.csv").write_text(tasks, encoding="utf-8", newline="")
    settings = load_settings(site_file(tmp_path, sources={"pick_tasks": {"file": "wms_tasks_%Y%m%d_%H%M.csv"}}))
    nine = settings.for_review(at(MON, "09:00", settings))
    assert nine.sources["pick_tasks"].file == "wms_tasks_20260302_0857.csv"
    f = judged(nine, at(MON, "09:00", settings))
    assert (f.loc["pick_tasks", "file"], f.loc["pick_tasks", "as_of_basis"], f.loc["pick_tasks", "age_minutes"]) == (
        "wms_tasks_20260302_0857.csv", "file name", 3)
    assert fr.describe(f.loc["pick_tasks"].to_dict(), nine, at(MON, "09:00", settings)) == (
        "WMS pick tasks as of 08:57 (file name), 3 min before the review")
    assert settings.for_review(at(MON, "12:30", settings)).sources["pick_tasks"].file == "wms_tasks_20260302_1157.csv"
    assert nine.for_review(at(MON, "12:30", settings)).sources["pick_tasks"].file == "wms_tasks_20260302_1157.csv"  # picks again
    early = settings.for_review(at(MON, "08:00", settings))  # nothing of Monday yet: Sunday's file, an earlier day
    assert early.sources["pick_tasks"].file == "wms_tasks_20260301_1600.csv"
    assert judged(early, at(MON, "08:00", settings)).loc["pick_tasks", "freshness"] == "earlier_day"
    load = build_picture(nine, now=at(MON, "09:00", settings)).execute(
        "SELECT file FROM load_report WHERE source = 'pick_tasks'").fetchone()[0]
    assert load == "wms_tasks_20260302_0857.csv"  # the load report names the file read, not the pattern


def test_a_pattern_that_matches_no_file_names_the_pattern_and_the_setting(tmp_path):
    extracts(tmp_path / "data")
    settings = load_settings(site_file(tmp_path, sources={"pick_tasks": {"file": "wms_tasks_%Y%m%d_%H%M.csv"}}))
    with pytest.raises(ExtractError, match=r"wms_tasks_%Y%m%d_%H%M\.csv: no file in .* matches .*sources\.pick_tasks\.file .*line \d+"):
        settings.for_review(at(MON, "09:00", settings))


@pytest.mark.parametrize(("setting", "message"), [
    # misspelt keys: refused by the strict check of the whole site file (site_keys.py) with the nearest known key
    ({"max_age": {"pick_task": "30 min"}},
     r"line \d+: 'pick_task' is not a source \(or default\) \(freshness\.max_age\.pick_task\); did you mean 'pick_tasks'"),
    ({"max_age": {"pick_tasks": "half an hour"}}, r"line \d+: freshness\.max_age\.pick_tasks: expected an age such as 30 min"),
    ({"max_age": {"pick_tasks": 0}}, r"freshness\.max_age\.pick_tasks: expected an age"),
    ({"on_stale": "send"}, r"line \d+: freshness\.on_stale is hold .* or mark"),
    ({"as_of": {"pick_tasks": ["shipped_at"]}}, r"line \d+: freshness\.as_of\.pick_tasks is file, data or a list of .*updated_at"),
    ({"max_ages": {}}, r"line \d+: unknown setting freshness\.max_ages; did you mean 'max_age'"),
])
def test_bad_freshness_settings_name_their_line(tmp_path, setting, message):
    extracts(tmp_path / "data")
    with pytest.raises(SettingsError, match=message):
        fr.freshness_settings(load_settings(site_file(tmp_path, freshness=setting)))


@pytest.mark.parametrize(("pattern", "message"), [
    ("wms_tasks_%Y%j.csv", r"%j is not allowed"),
    ("wms_tasks_%H%M.csv", r"a time in the file name needs its date"),
])
def test_bad_file_patterns_name_their_line(tmp_path, pattern, message):
    extracts(tmp_path / "data")
    settings = load_settings(site_file(tmp_path, sources={"pick_tasks": {"file": pattern}}))
    with pytest.raises(SettingsError, match=r"line \d+: file pattern .*" + message):
        settings.for_review(at(MON, "09:00", settings))


# ------------------------------------------------------------------------------------------------ catch-up


def test_catch_up_without_a_date_folder_never_reads_another_days_files(tmp_path):
    """data/{time}: Monday's 09:00 folder is still there on Tuesday; Tuesday's 09:00 review does not fit it,
    Monday's does, and a Friday before it does not either (a later day's files)."""
    extracts(tmp_path / "data" / "0900")
    settings = load_settings(site_file(tmp_path, folder="data/{time}"))
    why = fr.fits_review(settings, at(TUE, "09:00", settings))
    assert why is not None and "pick_tasks (wms_pick_tasks.csv) as of Mon 02 Mar 2026 11:00" in why
    assert "its operating day runs from Tue 03 Mar 2026 04:00" in why
    assert fr.fits_review(settings, at(MON, "09:00", settings)) is None
    friday = fr.fits_review(settings, dt.datetime(2026, 2, 27, 9, 0, tzinfo=settings.tz))
    assert friday is not None and "as of Mon 02 Mar 2026 11:00" in friday


def test_catch_up_with_date_folders_runs_only_the_days_that_have_one(tmp_path):
    extracts(tmp_path / "data" / "2026-03-02" / "0900")
    settings = load_settings(site_file(tmp_path, folder="data/{date}/{time}"))
    assert fr.fits_review(settings, at(MON, "09:00", settings)) is None
    why = fr.fits_review(settings, at(TUE, "09:00", settings))
    assert why is not None and why.startswith("folder ") and why.endswith("data/2026-03-03/0900 does not exist")


def test_schedule_lists_a_past_review_without_extracts_as_not_run_and_stops_on_the_current_one(tmp_path, capsys):
    """`handoff schedule` on Tuesday 12:30 with only Monday's files in data/{time}: the 09:00 review is not run
    ("no extracts for ..."), the 12:00 review stops with exit 2 naming the sources; history stays empty."""
    from handoff_lib.cli.main import main

    for hhmm in ("0900", "1200"):
        extracts(tmp_path / "data" / hhmm)
    site = site_file(tmp_path, folder="data/{time}")
    code = main(["schedule", "--site", str(site), "--now", "2026-03-03 12:30", "--days-back", "0", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "2026-03-03 09:00 not run: no extracts for 2026-03-03 09:00 (" in out
    assert "2026-03-03 12:00 not run: its extracts are of an earlier day" in out
    assert re.search(r"error: extracts of an earlier day for the review 2026-03-03 12:00 .*pick_tasks \(wms_pick_tasks\.csv\) "
                     r"as of Mon 02 Mar 2026 11:00", err)
    assert not (tmp_path / "outputs" / "demo" / "history.duckdb").exists()
    assert not (tmp_path / "outputs" / "demo" / "2026-03-03").exists()
    assert not (tmp_path / "outputs" / "demo" / "failed").exists()


# ------------------------------------------------------------------------------------------------ runs and history


@pytest.fixture(scope="module")
def stale_then_failed(tmp_path_factory):
    """A stale review stored on Monday 15:00 (the WMS pick-task export stopped at 10:05), then Tuesday's 09:00
    review of the same folder, which fails."""
    from handoff_lib.publish.runs import run_review

    tmp = tmp_path_factory.mktemp("stale_run")
    extracts(tmp / "data", pick_tasks_updated="2026-03-02 10:05:00")
    settings = load_settings(site_file(tmp))
    stored = run_review(settings, at(MON, "15:00", settings), progress=False)
    with open_history(tmp / "outputs" / "demo" / "history.duckdb", read_only=True) as con:
        before = con.execute("SELECT * FROM runs").df()
    with pytest.raises(StaleExtractError) as failed:
        run_review(settings, at(TUE, "09:00", settings), progress=False)
    return tmp, settings, stored, before, failed.value


def test_a_stale_review_is_stored_marked_stale_with_its_stale_sources(stale_then_failed):
    tmp, settings, stored, _, _ = stale_then_failed
    history = tmp / "outputs" / "demo" / "history.duckdb"
    with open_history(history, read_only=True) as con:
        reviews = list_reviews(con, "demo")
    assert reviews["stale"].tolist() == [True]
    stale = stale_sources(history, "demo", MON, "1500")
    assert stale[["source", "label", "freshness", "age_minutes", "max_age_minutes"]].values.tolist() == [
        ["pick_tasks", "WMS pick tasks", "stale", 295.0, 30.0]]
    assert fr.headline(stale, settings, at(MON, "15:00", settings)) == (
        "STALE: WMS pick tasks as of 10:05, 4 h 55 min before the review (limit 30 min).")
    assert stored.stale == ["WMS pick tasks as of 10:05, 4 h 55 min before the review (limit 30 min)"]
    manifest = json.loads((stored.out_dir / "manifest.json").read_text(encoding="utf-8"))
    inputs = {i["source"]: i for i in manifest["inputs"]}
    assert inputs["pick_tasks"]["freshness"] == "stale" and inputs["pick_tasks"]["as_of_basis"] == "updated_at"
    assert manifest["freshness"] == {"stale": stored.stale, "on_stale": "hold"}


def test_the_drafts_of_a_stale_review_are_held_back_and_say_why(stale_then_failed):
    _, _, stored, _, _ = stale_then_failed
    text = (stored.out_dir / "drafts.txt").read_text(encoding="utf-8")
    with duckdb.connect(str(stored.out_dir / "picture.duckdb"), read_only=True) as con:
        held, total = con.execute("SELECT count(*) FILTER (WHERE held_back AND stale), count(*) FROM drafts").fetchone()
    assert total > 0 and held == total
    assert text.startswith(f"{total} draft note{'s' if total > 1 else ''} held back: this review's extracts are stale "
                           "(WMS pick tasks as of 10:05")
    assert "DRAFT - review before sending" not in text
    assert len(pd.read_csv(stored.out_dir / "drafts.csv")) == 0


def test_a_run_on_an_earlier_days_extracts_stores_nothing_and_history_keeps_the_last_good_review(stale_then_failed):
    tmp, _, _, before, error = stale_then_failed
    assert "extracts of an earlier day for the review 2026-03-03 09:00" in str(error)
    with open_history(tmp / "outputs" / "demo" / "history.duckdb", read_only=True) as con:
        after = con.execute("SELECT * FROM runs").df()
    pd.testing.assert_frame_equal(before, after)
    assert not (tmp / "outputs" / "demo" / "2026-03-03").exists()
    assert not list((tmp / "outputs" / "demo").glob(".tmp-*")) and not (tmp / "outputs" / "demo" / "failed").exists()


def test_the_first_screen_of_a_stale_report_says_stale_in_a_real_browser(stale_then_failed, browser):
    _, _, stored, _, _ = stale_then_failed
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto((stored.out_dir / "cutoff_review.html").as_uri())
        box = page.locator(".data-stale")
        assert page.locator("h1", has_text="Demo DC Columbus").inner_text().endswith("- STALE EXTRACTS")
        assert "WMS pick tasks as of 10:05, 4 h 55 min before the review (limit 30 min)" in box.inner_text()
        assert box.bounding_box()["y"] + box.bounding_box()["height"] <= 900  # on the first screen
        page.screenshot(path=str(stored.out_dir / "stale_first_screen.png"))
    finally:
        page.close()


def test_drafts_are_kept_and_marked_when_the_site_says_mark():
    drafts = pd.DataFrame({"order_id": ["SO-1"], "draft": ["DRAFT - review before sending\nOrder SO-1 is at risk."]})
    marked = fr.apply_to_drafts(drafts, ["WMS pick tasks as of 10:05, 55 min before the review (limit 30 min)"], "mark")
    assert marked[["stale", "held_back"]].values.tolist() == [[True, False]]
    assert marked.loc[0, "draft"].split("\n")[:2] == [
        "DRAFT - review before sending",
        "STALE EXTRACTS - check before sending: WMS pick tasks as of 10:05, 55 min before the review (limit 30 min)."]
    fresh = fr.apply_to_drafts(drafts, [], "hold")
    assert fresh[["stale", "held_back"]].values.tolist() == [[False, False]] and fresh.loc[0, "draft"] == drafts.loc[0, "draft"]


def test_a_history_written_before_freshness_gets_the_stale_column_on_its_next_write(tmp_path):
    """An old history file (runs without `stale`, snap_load without the as-of columns) reads as not stale,
    and takes the new columns on the next snapshot."""
    extracts(tmp_path / "data")
    settings = load_settings(site_file(tmp_path))
    path = tmp_path / "history.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("""CREATE TABLE runs (site VARCHAR, review_date DATE, review_time VARCHAR, review_at TIMESTAMPTZ,
                       run_id VARCHAR, written_at TIMESTAMPTZ, data_folder VARCHAR, outputs VARCHAR, summary JSON)""")
        con.execute("INSERT INTO runs VALUES ('demo', DATE '2026-03-01', '0900', now(), 'old', now(), '', '', '{}')")
        con.execute("CREATE TABLE snap_load (site VARCHAR, review_date DATE, review_time VARCHAR, source VARCHAR, file VARCHAR)")
    with open_history(path, read_only=True) as con:
        assert list_reviews(con, "demo")["stale"].tolist() == [False]
    assert stale_sources(path, "demo", "2026-03-01", "0900").empty
    when = at(MON, "11:10", settings)
    picture = build_picture(settings, now=when)
    write_snapshot(picture, path, ReviewKey.of("demo", when), when, "new", stale=True)
    with open_history(path, read_only=True) as con:
        assert list_reviews(con, "demo")[["run_id", "stale"]].values.tolist() == [["new", True], ["old", False]]
        assert "freshness" in {r[0] for r in con.execute("DESCRIBE snap_load").fetchall()}
