"""Run the bad-extract corpus (tests/bad_extracts.py): every case gets its stated outcome, and the
row accounting (read = accepted + rejected) holds whatever happens."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from bad_extracts import CASES, GOOD, Case

from handoff_lib.db import connect
from handoff_lib.errors import HandoffError
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.pipeline import build_picture

ROOT = Path(__file__).resolve().parent.parent
ENTITY_OF = {
    "oms_orders": "orders",
    "oms_order_lines": "order_lines",
    "wms_pick_tasks": "pick_tasks",
    "wms_holds": "holds",
    "carrier_shipments": "shipments",
}


def site_for(tmp: Path, case: Case) -> tuple[Path, str]:
    data = tmp / "data"
    shutil.copytree(GOOD, data)
    entity = ENTITY_OF[Path(case.file).stem]
    original = (GOOD / f"{Path(case.file).stem}.csv").read_text(encoding="utf-8")
    content = case.content(original)
    if Path(case.file).suffix != ".csv":
        (data / f"{Path(case.file).stem}.csv").unlink()
    target = data / case.file
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content, encoding="utf-8", newline="")
    raw = yaml.safe_load((ROOT / "parameters/demo.yaml").read_text())
    raw["data"] = {"folder": "data", "allowed_roots": ["."]}
    raw["sources"][entity].update(case.source_settings)
    site = tmp / "site.yaml"
    site.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return site, entity


def accounting_holds(con: duckdb.DuckDBPyConnection) -> None:
    for r in con.execute("SELECT source, rows_read, rows_accepted, rows_rejected, rows_other_entity FROM load_report").fetchall():
        source, read, accepted, rejected, other = r
        assert read == accepted + rejected + other, r
        assert con.execute(f"SELECT count(*) FROM {source}").fetchone()[0] == accepted, r
        assert con.execute("SELECT count(*) FROM rejects WHERE source = ? AND action = 'row'", [source]).fetchone()[0] == rejected, r


def test_the_corpus_has_at_least_30_cases_with_distinct_names():
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name.replace(" ", "_"))
def test_bad_extract_gets_its_outcome(case: Case, tmp_path):
    site, entity = site_for(tmp_path, case)
    settings = load_settings(site)
    now = dt.datetime(2026, 3, 2, 14, 0, tzinfo=settings.tz)
    if case.outcome == "error":
        with pytest.raises(HandoffError) as err:
            build_picture(settings, now=now)
        assert re.search(case.match, str(err.value), re.DOTALL), str(err.value)
        return
    con = build_picture(settings, now=now, con=connect(settings))
    accounting_holds(con)
    rejects = con.execute("SELECT line, reason, action FROM rejects WHERE source = ?", [entity]).fetchall()
    if case.outcome in ("rejects", "nulled", "flagged"):
        action = {"rejects": "row", "nulled": "value", "flagged": "flag"}[case.outcome]
        assert len(rejects) == case.n, rejects
        for line, reason, act in rejects:
            assert line and line > 1, (line, reason)
            assert re.search(case.match, reason), reason
            assert act == action, (act, reason)
        if case.outcome != "rejects":  # every record is still there
            report = con.execute("SELECT rows_read, rows_rejected FROM load_report WHERE source = ?", [entity]).fetchone()
            assert report[1] == 0 and con.execute(f"SELECT count(*) FROM {entity}").fetchone()[0] == report[0]
    elif case.outcome == "loads":
        assert [r for r in rejects if r[2] != "flag"] == [], rejects
        assert case.check is None or case.check(con)
    elif case.outcome == "unmatched":
        status = con.execute("SELECT status FROM xref WHERE source = ? AND record_key = ?", [entity, case.key]).fetchone()
        assert status == ("unmatched",)
        blocker = con.execute("SELECT reason FROM blockers WHERE source_key = ?", [case.key]).fetchone()
        assert blocker == ("unlinked_record",)


def test_a_good_set_with_one_degraded_source_still_builds_the_picture_and_names_the_source(tmp_path):
    from handoff_lib.load.validate import degraded_sources

    case = next(c for c in CASES if c.name == "duplicate key with conflicting values")
    site, _ = site_for(tmp_path, case)
    settings = load_settings(site)
    con = build_picture(settings, now=dt.datetime(2026, 3, 2, 14, 0, tzinfo=settings.tz))
    assert con.execute("SELECT count(*) FROM order_board").fetchone()[0] == 3
    degraded = degraded_sources(con)
    assert [d["source"] for d in degraded] == ["pick_tasks"]
    assert "conflicting duplicate key" in degraded[0]["top_reason"]


def test_a_file_rewritten_while_it_is_read_stops_the_run(tmp_path, monkeypatch):
    from handoff_lib.load import extracts

    data = tmp_path / "data"
    shutil.copytree(GOOD, data)
    raw = yaml.safe_load((ROOT / "parameters/demo.yaml").read_text())
    raw["data"] = {"folder": "data", "allowed_roots": ["."]}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    settings = load_settings(tmp_path / "site.yaml")
    real = extracts.load_source

    def load_then_export_job_appends(con, settings, entity, **kw):
        out = real(con, settings, entity, **kw)
        if entity == "pick_tasks":  # the WMS export job is still writing this file
            with open(data / "wms_pick_tasks.csv", "a") as fh:
                fh.write("T-99,PT-1,1001,1,SKU-100,A-01-01,W1,1,0,10,,2026-03-02 10:05:00,\n")
        return out

    monkeypatch.setattr(extracts, "load_source", load_then_export_job_appends)
    with pytest.raises(HandoffError, match=r"wms_pick_tasks\.csv: the file changed while it was being read"):
        build_picture(settings)


def test_the_case_table_in_docs_is_the_corpus():
    from bad_extracts import markdown_table

    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert markdown_table() in doc, "docs/reliability.md is stale: paste bad_extracts.markdown_table() into it"
