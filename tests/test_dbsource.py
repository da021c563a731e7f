"""Database sources (handoff_lib/load/dbsource.py) against a real PostgreSQL: the `pg` / `wms_pg` session
fixtures (tests/conftest.py) start a throwaway cluster on loopback and load the demo day's 12:00
extracts into it as a WMS/ERP would hold them (tests/wms_db.py)."""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest
import wms_db
import yaml
from conftest import ROOT, make_site

from handoff_lib.errors import ExtractError, MissingColumnError, SettingsError
from handoff_lib.load.extracts import load_extracts, load_source
from handoff_lib.load.settings import load_settings
from handoff_lib.publish.pipeline import build_picture

AT = dt.datetime(2026, 11, 24, 12, 0, tzinfo=ZoneInfo("America/New_York"))
ENV = "HANDOFF_TEST_WMS_URL"


@pytest.fixture
def sites(tmp_path, demo_day, wms_pg, monkeypatch):
    """(file site, database site) for the demo day at 12:00; the database URL (the read-only role) in
    the environment variable the database site names."""
    cluster, _ = wms_pg
    file_site = make_site(tmp_path, demo_day / "1200")
    db_site = wms_db.db_site(file_site, tmp_path / "db_site.yaml", url_env=ENV)
    monkeypatch.setenv(ENV, cluster.url(wms_db.READER, wms_db.READER_PASSWORD, "wms"))
    return file_site, db_site


def _edit(site: Path, out: Path, fn) -> Path:
    raw = yaml.safe_load(site.read_text())
    fn(raw)
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


# --------------------------------------------------------------------------------------------
# the database equals the files


def _labels(settings) -> dict[str, str]:
    """What `file` / `_file` says for each source -> the source name."""
    return {str(spec.file): entity for entity, spec in settings.sources.items() if spec.file is not None}


def _normalised(con: duckdb.DuckDBPyConnection, settings, positions: dict[str, dict[int, int]]) -> dict[str, pd.DataFrame]:
    """Every table of the picture with each record's place written the same way on both paths: its
    source and its position among the rows read (a file row's line -> its position; a database row's
    line already is its position). The load report loses what differs by nature (file name, format,
    sha256 or fingerprint, extra columns)."""
    labels = _labels(settings)
    pattern = re.compile("(" + "|".join(re.escape(k) for k in sorted(labels, key=len, reverse=True)) + r")(:| line )(\d+)")

    def place(label: str, line: int) -> str:
        source = labels[label]
        return f"{source}#{positions[source].get(int(line), int(line)) if positions else int(line)}"

    def text(v: object) -> object:
        return pattern.sub(lambda m: place(m.group(1), int(m.group(3))), v) if isinstance(v, str) else v

    out = {}
    tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY 1").fetchall()]
    views = [
        r[0]
        for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary ORDER BY 1").fetchall()
    ]
    for name in tables + views:
        if name in ("db_reads",):
            continue
        df = con.execute(f'SELECT * FROM "{name}"').df()
        if name == "load_report":
            # a source without event times is judged by when it was written: the file's time vs the query's
            df = df.drop(columns=["file", "format", "sha256", "extra_columns", "file_as_of", "as_of", "as_of_basis", "age_minutes"])
        if name == "rejects":
            df = df.drop(columns=["raw"])  # the record as read: the database's column order and typed text
        if name == "rejects":  # "exact duplicate of line N" / "(kept line N)": a line of the same source
            df["reason"] = [
                re.sub(r"(?<=line )(\d+)", lambda m, f=f: place(f, int(m.group(1))), r) if isinstance(r, str) else r
                for f, r in zip(df["file"], df["reason"])
            ]
        for file_col, line_col in (("_file", "_line"), ("file", "line"), ("source_file", "source_line")):
            if file_col in df.columns and line_col in df.columns:
                df[line_col] = [None if pd.isna(f) or pd.isna(n) else place(f, n) for f, n in zip(df[file_col], df[line_col])]
                df[file_col] = [None if pd.isna(f) else labels[f] for f in df[file_col]]
        df = df.astype(object).map(lambda v: _canon(text(v)))
        out[name] = df.sort_values(list(df.columns)).reset_index(drop=True) if len(df) and len(df.columns) else df
    return out


def _canon(v: object) -> str:
    """One cell as comparable text (lists, NULLs, floats to 12 significant digits, timestamps as instants)."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_canon(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_canon(x)}" for k, x in v.items()) + "}"
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT or v is pd.NA:
        return "<null>"
    if isinstance(v, float):
        return f"{v:.12g}"
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return str(v)


def _file_positions(con: duckdb.DuckDBPyConnection) -> dict[str, dict[int, int]]:
    """Per source: physical line of each row read from its file -> its 1-based position among them."""
    lines = con.execute(
        "SELECT source, line FROM rejects UNION ALL "
        + " UNION ALL ".join(f"SELECT '{t}', _line FROM {t}" for (t,) in con.execute("SELECT source FROM load_report").fetchall())
    ).fetchall()
    out: dict[str, dict[int, int]] = {}
    for source, line in sorted(lines):
        out.setdefault(source, {})[int(line)] = len(out.get(source, {})) + 1
    return out


def _differences(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> list[str]:
    diffs = sorted(set(a) ^ set(b))
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            diffs.append(f"{name}: columns/rows {list(x.columns)}/{len(x)} vs {list(y.columns)}/{len(y)}")
            continue
        try:
            pd.testing.assert_frame_equal(x, y, check_dtype=False)
        except AssertionError as exc:
            diffs.append(f"{name}: {str(exc).splitlines()[0:3]}")
    return diffs


def _pictures(file_site: Path, db_site: Path):
    fs, ds = load_settings(file_site), load_settings(db_site)
    fcon, dcon = build_picture(fs, AT), build_picture(ds, AT)
    return fs, ds, fcon, dcon


def test_the_review_built_from_the_database_equals_the_review_built_from_the_files_table_for_table(sites, wms_pg):
    _, info = wms_pg
    typed = {k: v for e in info.values() for k, v in e["typed"].items()}
    assert {"timestamp", "timestamptz", "integer", "smallint", "boolean", "date", "numeric(14,2)"} <= set(typed.values())
    fs, ds, fcon, dcon = _pictures(*sites)
    files, db = _normalised(fcon, fs, _file_positions(fcon)), _normalised(dcon, ds, {})
    assert len(files) >= 30 and "order_board" in files and "blockers" in files and "promise" in files
    assert _differences(files, db) == []
    assert len(files["order_board"]) > 300 and files["rejects"]["reason"].str.contains("duplicate").any()


def test_the_comparison_fails_when_a_value_is_mapped_differently_on_the_database_path(sites, tmp_path):
    file_site, db_site = sites

    def remap(raw):  # the WMS code 40 read as picked instead of short on the database path only
        raw["sources"]["pick_tasks"]["values"]["status"]["40"] = "picked"

    fs, ds, fcon, dcon = _pictures(file_site, _edit(db_site, tmp_path / "remapped.yaml", remap))
    diffs = _differences(_normalised(fcon, fs, _file_positions(fcon)), _normalised(dcon, ds, {}))
    assert {d.split(":")[0] for d in diffs} >= {"pick_tasks", "linked_pick_tasks", "order_picture"}


def test_a_database_row_keeps_its_position_as_line_in_rejects(sites):
    _, db_site = sites
    settings = load_settings(db_site)
    con = duckdb.connect()
    load_extracts(con, settings)
    dups = con.execute("SELECT file, line, reason FROM rejects WHERE source = 'pick_tasks' ORDER BY line").df()
    assert len(dups) and (dups["file"] == "wms:pick_tasks query").all()
    positions = dict(con.execute("SELECT _line, task_id FROM pick_tasks").fetchall())
    first = int(re.search(r"kept line (\d+)|of line (\d+)", dups["reason"][0]).group(0).split()[-1])
    assert first in positions  # the kept row's line is a position in the result, and it was accepted


def test_the_load_report_and_db_reads_record_query_server_time_and_a_row_fingerprint(sites):
    _, db_site = sites
    settings = load_settings(db_site)
    con = duckdb.connect()
    before = dt.datetime.now(dt.UTC)
    load_source(con, settings, "pick_tasks")
    report = con.execute("SELECT * FROM load_report").df().iloc[0]
    read = con.execute("SELECT * FROM db_reads").df().iloc[0]
    assert report["format"] == "database" and report["file"] == "wms:pick_tasks query"
    assert report["sha256"] == read["fingerprint"] and read["fingerprint"].startswith(f"rows {report['rows_read']}; hash ")
    assert "FROM reporting.v_pick_task ORDER BY export_seq" in read["query"]
    assert read["server"].startswith(f"postgresql://{wms_db.READER}@127.0.0.1:") and "secret" not in read["server"]
    assert before - dt.timedelta(seconds=1) <= read["started_at"].to_pydatetime() <= dt.datetime.now(dt.UTC)
    con2 = duckdb.connect()
    load_source(con2, settings, "pick_tasks")
    assert con2.execute("SELECT fingerprint FROM db_reads").fetchone()[0] == read["fingerprint"]  # same rows, same print


# --------------------------------------------------------------------------------------------
# failures: clear errors naming source and server, never the password


def test_a_bad_password_is_an_error_naming_source_and_host_but_not_the_password(sites, wms_pg, monkeypatch):
    cluster, _ = wms_pg
    _, db_site = sites
    monkeypatch.setenv(ENV, cluster.url(wms_db.READER, "Wr0ng-Pa55word", "wms"))
    with pytest.raises(ExtractError) as err:
        load_source(duckdb.connect(), load_settings(db_site), "orders")
    msg = str(err.value)
    assert "wms:orders query" in msg and "sources.orders" in msg and f"127.0.0.1:{cluster.port}" in msg
    assert "refused the login" in msg and "Wr0ng-Pa55word" not in msg


def test_the_cli_exits_2_on_a_connection_failure_without_printing_the_password(sites, monkeypatch):
    _, db_site = sites
    monkeypatch.setenv(ENV, "postgresql://handoff_reader:Sup3r-Secret@127.0.0.1:9/wms")  # nothing listens on port 9
    done = subprocess.run(
        [sys.executable, "-m", "handoff_lib.cli", "picture", "--site", str(db_site), "--at", "2026-11-24 12:00"],
        capture_output=True, text=True, env=os.environ, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot connect to the database server" in done.stderr and "127.0.0.1:9" in done.stderr
    assert "Sup3r-Secret" not in done.stderr + done.stdout


def test_a_query_that_outlives_the_timeout_is_a_clear_error(sites, tmp_path):
    _, db_site = sites

    def slow(raw):
        raw["databases"]["wms"]["timeout_s"] = 1
        raw["sources"]["orders"]["query"] = raw["sources"]["orders"]["query"].replace(
            "FROM reporting.v_sales_order_header", "FROM reporting.v_sales_order_header, pg_sleep(3)"
        )

    with pytest.raises(ExtractError, match=r"did not finish within the timeout \(1 s, timeout_s of database 'wms'\)") as err:
        load_source(duckdb.connect(), load_settings(_edit(db_site, tmp_path / "slow.yaml", slow)), "orders")
    assert "canceling statement due to statement timeout" in str(err.value)  # the server's statement_timeout did it


def test_a_connection_dropped_in_the_middle_of_the_read_is_a_clear_error(sites, wms_pg, tmp_path):
    cluster, _ = wms_pg
    _, db_site = sites

    def trickle(raw):  # pg_sleep is volatile: it runs for every row, so rows trickle out for seconds
        raw["sources"]["orders"]["query"] = "SELECT v.* FROM reporting.v_sales_order_header v WHERE pg_sleep(0.01)::text = ''"

    settings = load_settings(_edit(db_site, tmp_path / "trickle.yaml", trickle))
    killed, done = [], threading.Event()

    def kill():  # once the read has run for half a second, the server ends the session (as a DBA or a failover would)
        with cluster.connect("wms") as admin:
            while not done.is_set():
                rows = admin.execute(
                    """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                       WHERE application_name = 'handoff' AND state = 'active' AND now() - query_start > interval '0.5 s'"""
                ).fetchall()
                if rows:
                    killed.append(len(rows))
                    return
                time.sleep(0.05)

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    try:
        with pytest.raises(ExtractError, match="connection was lost while the rows were read") as err:
            load_source(duckdb.connect(), settings, "orders")
    finally:
        done.set()
        killer.join(10)
    assert killed and "wms:orders query" in str(err.value)


def test_a_view_that_lost_a_column_names_the_column_the_source_and_the_closest_name(sites, wms_pg, tmp_path):
    cluster, _ = wms_pg
    _, db_site = sites
    with cluster.connect("wms") as admin:
        admin.execute(
            "CREATE OR REPLACE VIEW reporting.v_holds_narrow AS SELECT export_seq, hold_no, held_reference AS held_ref, "
            "hold_reason_code, hold_comment, placed_ts, released_ts, placed_by_user FROM wms.order_hold"
        )
        admin.execute(f"GRANT SELECT ON reporting.v_holds_narrow TO {wms_db.READER}")

    def narrow(raw):
        raw["sources"]["holds"]["table"] = "reporting.v_holds_narrow"

    with pytest.raises(MissingColumnError) as err:
        load_source(duckdb.connect(), load_settings(_edit(db_site, tmp_path / "narrow.yaml", narrow)), "holds")
    msg = str(err.value)
    assert msg.startswith("wms:reporting.v_holds_narrow: missing column 'held_reference' for contract field holds.reference")
    assert "closest: 'held_ref'" in msg


def test_the_session_is_read_only_whatever_the_role_may_do(sites, wms_pg, tmp_path, monkeypatch):
    cluster, _ = wms_pg
    _, db_site = sites
    with cluster.connect("wms") as admin:
        admin.execute("CREATE SEQUENCE IF NOT EXISTS reporting.handoff_probe")
    monkeypatch.setenv(ENV, cluster.url(dbname="wms"))  # the superuser: only the read-only session stops the write

    def writes(raw):  # nextval() writes
        raw["sources"]["inventory"]["query"] = (
            "SELECT nextval('reporting.handoff_probe') AS n, s.* FROM reporting.v_stock_by_location s"
        )
        del raw["sources"]["inventory"]["table"], raw["sources"]["inventory"]["order_by"]

    with pytest.raises(ExtractError, match="read-only transaction"):
        load_source(duckdb.connect(), load_settings(_edit(db_site, tmp_path / "writes.yaml", writes)), "inventory")
    with cluster.connect("wms") as admin:
        assert admin.execute("SELECT is_called FROM reporting.handoff_probe").fetchone()[0] is False


def test_a_query_holding_a_second_statement_is_refused(sites, tmp_path):
    _, db_site = sites

    def two(raw):
        raw["sources"]["orders"]["query"] = (
            "SELECT * FROM reporting.v_sales_order_header; DROP VIEW reporting.v_sales_order_header"
        )

    with pytest.raises(ExtractError, match="not valid SQL for this database"):
        load_source(duckdb.connect(), load_settings(_edit(db_site, tmp_path / "two.yaml", two)), "orders")


# --------------------------------------------------------------------------------------------
# the site file


def test_a_password_written_into_the_site_file_is_refused(sites, tmp_path):
    _, db_site = sites

    def literal(raw):
        raw["databases"]["wms"]["url"] = "postgresql://reader:hunter2@db.example.com/wms"

    with pytest.raises(SettingsError, match=r"holds a password; keep credentials out of the site file") as err:
        load_settings(_edit(db_site, tmp_path / "literal.yaml", literal))
    assert "hunter2" not in str(err.value)


def test_a_url_file_inside_the_repository_is_refused(tmp_path):
    raw = yaml.safe_load((ROOT / "parameters/demo.yaml").read_text())
    raw["data"] = {"folder": str(tmp_path), "allowed_roots": [str(tmp_path)]}
    raw["databases"] = {"wms": {"url": {"file": str(ROOT / "parameters" / "wms.url")}}}
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(raw))
    with pytest.raises(SettingsError, match="lies inside the repository"):
        load_settings(site)


def test_a_missing_environment_variable_names_it(sites, monkeypatch):
    _, db_site = sites
    monkeypatch.delenv(ENV)
    with pytest.raises(ExtractError, match=f"takes its URL from environment variable {ENV}, which is not set"):
        load_source(duckdb.connect(), load_settings(db_site), "orders")


def test_a_url_file_outside_the_repository_is_read(sites, tmp_path, monkeypatch):
    _, db_site = sites
    url_file = tmp_path / "wms.url"
    url_file.write_text(os.environ[ENV] + "\n")
    monkeypatch.delenv(ENV)

    def from_file(raw):
        raw["databases"]["wms"]["url"] = {"file": str(url_file)}

    row = load_source(duckdb.connect(), load_settings(_edit(db_site, tmp_path / "f.yaml", from_file)), "inventory")
    assert row["rows_read"] > 0 and row["rows_rejected"] == 0


# --------------------------------------------------------------------------------------------
# others through SQLAlchemy


def test_a_sqlite_database_through_sqlalchemy_loads_the_same_orders_as_the_file(sites, tmp_path, demo_day):
    import sqlite3

    file_site, db_site = sites
    db = tmp_path / "erp.sqlite"
    with sqlite3.connect(db) as lite:
        frame = pd.read_csv(demo_day / "1200" / "oms_orders.csv", dtype=str, keep_default_na=False)
        frame = frame.replace({"": None})
        frame.insert(0, "seq", range(1, len(frame) + 1))
        frame.to_sql("sales_orders", lite, index=False)

    def sqlite(raw):
        raw["databases"]["erp"] = {"url": f"sqlite:///{db}"}
        cols = yaml.safe_load(file_site.read_text())["sources"]["orders"]["columns"]
        raw["sources"]["orders"] = {"database": "erp", "table": "sales_orders", "order_by": ["seq"], "columns": cols,
                                    "values": yaml.safe_load(file_site.read_text())["sources"]["orders"]["values"]}  # fmt: skip

    lite_settings = load_settings(_edit(db_site, tmp_path / "lite.yaml", sqlite))
    a, b = duckdb.connect(), duckdb.connect()
    load_source(a, load_settings(file_site), "orders")
    row = load_source(b, lite_settings, "orders")
    assert row["file"] == "erp:sales_orders" and row["format"] == "database"
    left = a.execute("SELECT * EXCLUDE (_file, _line) FROM orders").df()
    right = b.execute("SELECT * EXCLUDE (_file, _line) FROM orders").df()
    pd.testing.assert_frame_equal(left, right, check_dtype=False)
    assert b.execute("SELECT server FROM db_reads").fetchone()[0].startswith("sqlite://")


# --------------------------------------------------------------------------------------------
# a review run


def test_a_review_from_the_database_records_its_reads_and_a_failed_one_keeps_the_last_good_review(sites, wms_pg, monkeypatch):
    import json

    from handoff_lib.history.snapshots import open_history
    from handoff_lib.publish.runs import RunError, default_history, run_review

    cluster, _ = wms_pg
    _, db_site = sites
    settings = load_settings(db_site)
    result = run_review(settings, AT, progress=False)
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    inputs = {i["source"]: i for i in manifest["inputs"]}
    tasks = inputs["pick_tasks"]
    assert tasks["file"] == "wms:pick_tasks query" and tasks["sha256"] == tasks["database"]["fingerprint"]
    assert "FROM reporting.v_pick_task ORDER BY export_seq" in tasks["database"]["query"]
    assert tasks["database"]["server"] == f"postgresql://{wms_db.READER}@127.0.0.1:{cluster.port}/wms"
    assert dt.datetime.fromisoformat(tasks["database"]["ran_at"]) <= dt.datetime.now(dt.UTC)
    assert inputs["holds"]["database"]["query"] == 'SELECT * FROM "reporting"."v_order_hold" ORDER BY "export_seq"'
    board_before = (result.out_dir / "order_board.csv").read_bytes()

    monkeypatch.setenv(ENV, cluster.url(wms_db.READER, "N0t-The-Pa55word", "wms"))
    later = AT.replace(hour=16)
    with pytest.raises(RunError, match="refused the login") as err:
        run_review(settings, later, progress=False)
    assert "N0t-The-Pa55word" not in str(err.value)
    kept = list((settings.outputs / "demo" / "failed").glob("*.ipynb"))  # kept for diagnosis
    assert kept and all("N0t-The-Pa55word" not in k.read_text() and "refused the login" in k.read_text() for k in kept)
    con = open_history(default_history(settings), read_only=True)
    try:
        assert [r[0] for r in con.execute("SELECT review_time FROM runs").fetchall()] == ["1200"]  # what the board shows
    finally:
        con.close()
    assert not (settings.outputs / "demo" / "2026-11-24" / "1600").exists()
    assert (result.out_dir / "order_board.csv").read_bytes() == board_before
