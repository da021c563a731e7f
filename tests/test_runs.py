"""Cutoff review runs: papermill into outputs/<site>/<date>/<HHMM>/, history, failures, scheduling."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import duckdb
import pytest
import yaml

from handoff_lib.errors import HandoffError
from handoff_lib.history.snapshots import open_history
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.runs import RunError, default_history, due_reviews, recover, run_review, schedule


def at(settings, hhmm: str) -> dt.datetime:
    return dt.datetime(2026, 11, 24, int(hhmm[:2]), int(hhmm[3:]), tzinfo=settings.tz)


def runs_in_history(settings):
    con = open_history(default_history(settings), read_only=True)
    try:
        return con.execute("SELECT review_time, run_id FROM runs ORDER BY review_time").fetchall(), con.execute(
            "SELECT review_time, count(*) FROM snap_orders GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()


@pytest.fixture
def noon_run(site):
    settings = load_settings(site)
    result = run_review(settings, at(settings, "12:00"), progress=False)
    return settings, result


def test_a_review_run_writes_every_output_into_its_site_date_time_folder(noon_run):
    settings, result = noon_run
    assert result.out_dir == settings.outputs / "demo" / "2026-11-24" / "1200"
    for name in ("cutoff_review.ipynb", "cutoff_review.html", "cutoff_review.xlsx", "order_board.csv",
                 "blocker_queue.csv", "promise_view.csv", "changes.csv", "manifest.json", "summary.json"):
        assert (result.out_dir / name).is_file(), name
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    inputs = {i["source"]: i for i in manifest["inputs"]}
    orders = inputs["orders"]
    assert orders["rows_read"] == orders["rows_accepted"] + orders["rows_rejected"] + orders["rows_other_entity"]
    assert len(inputs["pick_tasks"]["sha256"]) == 64
    assert manifest["parameters"]["review_at"] == "2026-11-24 12:00"
    assert {"execute", "report"} <= set(manifest["durations_s"])
    assert "duckdb" in manifest["versions"]
    assert manifest["notes"]["model"] == "rules only" and "not trained yet" in manifest["notes"]["why"]
    assert sum(manifest["notes"]["decided"].values()) > 0 and manifest["notes"]["decided"]["model"] == 0


def test_rerunning_the_same_review_replaces_it_in_history_and_on_disk(noon_run):
    settings, _ = noon_run
    second = run_review(settings, at(settings, "12:00"), progress=False)
    runs, snaps = runs_in_history(settings)
    first_id = json.loads((second.out_dir / "manifest.json").read_text())["run_id"]
    assert [r[0] for r in runs] == ["1200"]
    assert runs[0][1] == first_id  # the stored snapshot is the second run's
    assert snaps == [("1200", second.summary["orders"])]
    assert not list(second.out_dir.parent.glob(".old-*"))


def test_a_failing_run_names_its_step_and_leaves_history_and_outputs_as_they_were(noon_run, tmp_path):
    settings, result = noon_run
    before = (result.out_dir / "order_board.csv").read_bytes()
    # 16:00's pick task extract loses its status column
    tasks = settings.for_review(at(settings, "16:00")).data_folder / "wms_pick_tasks.csv"
    text = tasks.read_text().splitlines()
    tasks.write_text("\n".join([text[0].replace("TASK_STAT", "STATUS_X")] + text[1:]) + "\n")
    with pytest.raises(RunError, match=r"step 'execute'.*TASK_STAT") as err:
        run_review(settings, at(settings, "16:00"), progress=False)
    assert err.value.step == "execute"
    runs, _ = runs_in_history(settings)
    assert [r[0] for r in runs] == ["1200"]
    assert not (settings.outputs / "demo" / "2026-11-24" / "1600").exists()
    assert (result.out_dir / "order_board.csv").read_bytes() == before
    assert not list((settings.outputs / "demo").glob(".tmp-*"))


def test_a_mapping_that_rejects_a_whole_column_stops_the_run_with_exit_2_and_stores_nothing(noon_run, capsys):
    # The 16:00 OMS export now writes priority as P1/P2/P3 into the integer field: every order's priority is bad.
    # The run must stop (exit 2) naming the column, the site-file line and the commonest value, store nothing,
    # and leave the board on the 12:00 review: never an empty or silently smaller review as the latest.
    import csv
    import io

    from handoff_lib.cli.main import main

    settings, _result = noon_run
    orders = settings.for_review(at(settings, "16:00")).data_folder / "oms_orders.csv"
    rows = list(csv.reader(io.StringIO(orders.read_text(encoding="utf-8"), newline="")))
    col = rows[0].index("PrioTier")
    for r in rows[1:]:
        r[col] = f"P{r[col]}" if r[col] else r[col]
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    orders.write_text(out.getvalue(), encoding="utf-8")
    code = main(["run", "--site", str(settings.path), "--at", "2026-11-24 16:00", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "oms_orders.csv" in err and "'PrioTier' (orders.priority, mapped at" in err and "sources.orders.values.priority" in err
    runs, _ = runs_in_history(settings)
    assert [r[0] for r in runs] == ["1200"]
    assert not (settings.outputs / "demo" / "2026-11-24" / "1600").exists()


def test_the_second_review_of_the_day_reports_changes_since_the_first(noon_run):
    settings, _ = noon_run
    result = run_review(settings, at(settings, "16:00"), progress=False)
    summary = result.summary
    assert summary["changes.state_changed"] > 0
    changes = (result.out_dir / "changes.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(changes) - 1 == sum(v for k, v in summary.items() if k.startswith("changes."))


def test_schedule_runs_what_is_due_then_skips_what_is_done(site):
    settings = load_settings(site)
    done = schedule(settings, at(settings, "12:05"), days_back=0, progress=False)
    assert [r.out_dir.name for r in done.results] == ["1200"] and done.skipped == [] and done.not_run == []
    done = schedule(settings, at(settings, "16:30"), days_back=0, progress=False)
    assert [r.out_dir.name for r in done.results] == ["1600"]
    assert [s.strftime("%H%M") for s in done.skipped] == ["1200"]
    assert schedule(settings, at(settings, "16:45"), days_back=0, progress=False).results == []


def test_due_reviews_catch_up_missed_ones_of_the_day_before_but_not_weekends(site):
    settings = load_settings(site)
    monday = dt.datetime(2026, 11, 30, 12, 30, tzinfo=settings.tz)
    due = due_reviews(settings, monday, done=set(), days_back=3)
    # Friday's two reviews, then Monday's noon; Saturday and Sunday have none
    assert [d.strftime("%a %H%M") for d in due] == ["Fri 1200", "Fri 1600", "Mon 1200"]


def test_recover_removes_a_killed_runs_leftovers_and_restores_a_half_replaced_folder(tmp_path):
    site_root = tmp_path / "demo"
    (site_root / ".tmp-20261124-1200-abc").mkdir(parents=True)
    day = site_root / "2026-11-24"
    (day / ".old-1200-a1b2c3").mkdir(parents=True)
    (day / ".old-1200-a1b2c3" / "order_board.csv").write_text("kept")
    recover(site_root)
    assert not (site_root / ".tmp-20261124-1200-abc").exists()
    assert (day / "1200" / "order_board.csv").read_text() == "kept"


def test_a_run_against_a_missing_data_folder_fails_clearly(site, tmp_path):
    settings = load_settings(site)
    shutil.rmtree(settings.for_review(at(settings, "12:00")).data_folder)
    with pytest.raises(HandoffError, match="step 'execute'"):
        run_review(settings, at(settings, "12:00"), progress=False)


def test_recover_publishes_a_committed_run_that_was_killed_while_publishing(tmp_path):
    import duckdb

    site_root = tmp_path / "demo"
    tmp = site_root / ".tmp-20261124-1200-abc"
    tmp.mkdir(parents=True)
    final = site_root / "2026-11-24" / "1200"
    (tmp / "manifest.json").write_text(json.dumps({"run_id": "20261124-1200-abc", "parameters": {"out_dir": str(final)}}))
    history = tmp_path / "history.duckdb"
    con = duckdb.connect(str(history))
    con.execute("CREATE TABLE runs AS SELECT '20261124-1200-abc' AS run_id")
    con.close()
    recover(site_root, history)
    assert json.loads((final / "manifest.json").read_text())["run_id"] == "20261124-1200-abc"
    assert not tmp.exists()


def test_a_review_run_records_the_sites_notes_model_by_sha256_and_what_decided_the_note_reasons(tmp_path, demo_day):
    from conftest import ROOT, make_site

    from handoff_lib.learn import notes
    from handoff_lib.learn.taxonomy import load_taxonomy, notes_settings

    data = tmp_path / "data"
    shutil.copytree(demo_day, data)
    labelled = tmp_path / "labelled.csv"
    taxonomy = load_taxonomy()
    notes.read_labelled(ROOT / "parameters/demo_labelled_notes.csv", taxonomy).groupby("reason").head(15).to_csv(labelled, index=False)
    site = make_site(tmp_path, data / "{time}", notes={"model": str(tmp_path / "m.joblib"), "labelled": str(labelled),
                                                        "taxonomy": str(taxonomy.path)})
    raw = yaml.safe_load(site.read_text())
    raw["policy"]["note_rules"] = raw["policy"]["note_rules"][:1]  # credit only: the model reads the other uncoded notes
    site.write_text(yaml.safe_dump(raw, sort_keys=False))
    settings = load_settings(site)
    _, model_path = notes.train(notes_settings(settings))
    result = run_review(settings, at(settings, "12:00"), progress=False)
    entry = json.loads((result.out_dir / "manifest.json").read_text())["notes"]
    assert entry["model"]["sha256"] == notes.file_sha256(model_path) and entry["model"]["site"] == "demo"
    assert entry["decided"]["code"] > 0 and entry["rules"] == {"note rule 1": entry["decided"]["rule"]}
    con = duckdb.connect(str(result.out_dir / "picture.duckdb"), read_only=True)
    by_model = con.execute("SELECT count(*) FROM note_reasons WHERE status = 'model' AND classified_by LIKE 'model %'").fetchone()[0]
    con.close()
    assert by_model == entry["decided"]["model"] > 0  # the review's notebook used the site's model
