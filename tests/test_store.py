"""The snapshot store: reviews written from history as Hive-partitioned Parquet, whole or not at all,
readable by DuckDB and Spark with typed partition columns; review runs write it, and its failures
never undo a run."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from estate_tables import REVIEWS, SITES, START, write_histories

from handoff_lib.errors import SettingsError
from handoff_lib.history import store
from handoff_lib.history.engines import DuckDBEngine, SparkEngine
from handoff_lib.load.settings import load_settings

DEMO_SITE = Path(__file__).resolve().parent.parent / "parameters" / "demo.yaml"


@pytest.fixture
def histories(tmp_path):
    return write_histories(tmp_path)


def test_export_writes_one_partition_per_site_date_and_review_time_for_every_table(histories, tmp_path):
    root = tmp_path / "store"
    assert store.export_history(histories[1], root, progress=False) == (10, 0)
    part = root / "blockers" / "site=dc2" / f"review_date={START}" / "review_time=0900"
    assert [p.name for p in part.iterdir()] == ["data_0.parquet"]
    for table in store.TABLES:
        dates = sorted(p.name for p in (root / table / "site=dc2").iterdir())
        assert dates == [f"review_date={START + dt.timedelta(days=d)}" for d in range(5)], table
    assert not (root / "_staging").exists() or not any((root / "_staging").iterdir())
    # partition columns live in the path only; every blocker carries its order's customer and carrier
    cols = duckdb.connect().sql(f"DESCRIBE SELECT * FROM read_parquet('{part}/data_0.parquet', hive_partitioning = false)").df()["column_name"].tolist()
    assert "site" not in cols and {"customer_id", "customer_name", "carrier", "service"} <= set(cols)


def test_the_store_holds_the_same_rows_as_history(histories, tmp_path):
    root = tmp_path / "store"
    for h in histories:
        store.export_history(h, root, progress=False)
    engine = DuckDBEngine()
    store.register(engine, root)
    got = engine.con.execute("SELECT site, count(*) FROM blockers GROUP BY site ORDER BY site").fetchall()
    want = []
    for site, h in zip(SITES, histories):
        con = duckdb.connect(str(h), read_only=True)
        want.append((site, con.execute("SELECT count(*) FROM snap_blockers").fetchone()[0]))
        con.close()
    assert got == want
    typed = engine.con.execute("SELECT any_value(typeof(review_date)), any_value(typeof(review_time)), min(review_time) FROM blockers").fetchone()
    assert typed == ("DATE", "VARCHAR", "0900")
    # the promise view is the at-risk orders; an unlinked blocker has no customer
    assert engine.con.execute("SELECT count(*) FROM promise WHERE promise_status <> 'at_risk'").fetchone()[0] == 0
    assert engine.con.execute("SELECT count(*) FROM blockers WHERE order_id IS NULL AND customer_id IS NULL").fetchone()[0] == 6
    summary = store.summary(root)
    assert summary["site"].tolist() == list(SITES) and summary["reviews"].tolist() == [10, 10, 10]


def test_export_leaves_stored_reviews_alone_unless_told_to_replace(histories, tmp_path):
    root = tmp_path / "store"
    store.export_history(histories[0], root, date_to=START, progress=False)
    assert store.export_history(histories[0], root, progress=False) == (8, 2)
    assert store.export_history(histories[0], root, progress=False) == (0, 10)
    before = (root / "orders" / "site=dc1" / f"review_date={START}" / "review_time=0900" / "data_0.parquet").stat().st_mtime_ns
    assert store.export_history(histories[0], root, replace=True, progress=False) == (10, 0)
    after = (root / "orders" / "site=dc1" / f"review_date={START}" / "review_time=0900" / "data_0.parquet").stat().st_mtime_ns
    assert after != before
    assert len(store.stored_reviews(root, "dc1")) == 10


@pytest.mark.parametrize("point", ["store-write", "store-move"])
def test_a_writer_killed_midway_leaves_no_review_marked_stored_and_the_next_export_completes_it(histories, tmp_path, point):
    root = tmp_path / "store"
    code = (
        "import sys; from handoff_lib.history import store; "
        f"store.export_history({str(histories[2])!r}, {str(root)!r}, progress=False)"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "HANDOFF_CRASH_AT": point}, capture_output=True, check=False)
    assert proc.returncode == 137
    assert store.stored_reviews(root) == set()  # no `reviews` row: no review is in the store
    assert store.export_history(histories[2], root, progress=False) == (10, 0)
    assert not any((root / "_staging").iterdir())  # the killed writer's staging was cleared
    engine = DuckDBEngine()
    store.register(engine, root)
    assert engine.con.execute("SELECT count(DISTINCT review_date || review_time) FROM orders").fetchone()[0] == 10


def test_spark_reads_the_store_with_review_time_as_text_and_review_date_as_a_date(histories, tmp_path, spark):
    root = tmp_path / "store"
    store.export_history(histories[0], root, progress=False)
    engine = SparkEngine(spark)
    try:
        store.register(engine, root, ("reviews", "blockers"))
        df = engine.query("SELECT DISTINCT site, review_date, review_time FROM reviews ORDER BY review_date, review_time")
        assert df["review_time"].tolist()[:2] == list(REVIEWS)
        assert str(df["review_date"].iloc[0])[:10] == str(START) and len(df) == 10
    finally:
        engine.close()


def _site_file(tmp_path, **store_conf):
    raw = yaml.safe_load(DEMO_SITE.read_text())
    raw["store"] = store_conf
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"root": "x", "engin": "spark"}, "unknown setting store.engin; did you mean 'engine'"),  # the strict site-file check
        ({"root": "x", "engine": "hive"}, "store.engine 'hive' is not one of duckdb, spark"),
        ({"engine": "spark"}, "missing setting 'store.root'"),
        ({"root": "s3a://bucket/store"}, "is a URL: reviews write the store to a folder"),
    ],
)
def test_a_bad_store_setting_is_named_with_its_line(tmp_path, conf, message):
    with pytest.raises(SettingsError, match=message) as err:
        store.store_settings(load_settings(_site_file(tmp_path, **conf)))
    assert "s.yaml line" in str(err.value)


def test_a_site_without_store_setting_writes_no_store_and_a_relative_root_is_under_the_site_file(tmp_path):
    raw = yaml.safe_load(DEMO_SITE.read_text())
    raw.pop("store")
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(raw))
    assert store.store_settings(load_settings(tmp_path / "plain.yaml")) is None
    conf = store.store_settings(load_settings(_site_file(tmp_path, root="../estate", engine="spark")))
    assert conf == store.StoreSettings((tmp_path.parent / "estate").resolve(), "spark")


def test_a_failing_store_write_is_reported_and_does_not_raise(histories, tmp_path, capsys):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the store should be")
    settings = load_settings(_site_file(tmp_path, root=str(blocked)))
    settings.site = "dc1"
    at = dt.datetime.combine(START, dt.time(9), settings.tz)
    note = store.after_review(settings, histories[0], at)
    assert note["written"] is False and note["root"] == str(blocked)
    assert "catch up with: handoff store export" in capsys.readouterr().err


def test_a_review_run_writes_its_snapshot_into_the_store(site):
    from handoff_lib.publish.runs import run_review

    settings = load_settings(site)
    at = dt.datetime(2026, 11, 24, 12, 0, tzinfo=settings.tz)
    result = run_review(settings, at, progress=False)
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    root = store.store_settings(settings).root
    assert manifest["store"]["written"] is True and manifest["store"]["root"] == str(root)
    assert store.stored_reviews(root) == {store.Key(settings.site, at.date(), "1200")}
    engine = DuckDBEngine()
    store.register(engine, root)
    orders = engine.con.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert orders == manifest["summary"]["orders"]


def test_cli_exports_a_history_and_says_what_the_store_holds(histories, tmp_path, capsys):
    from handoff_lib.cli.main import main

    root = tmp_path / "store"
    assert main(["store", "export", "--site", "dc3", "--history", str(histories[2]), "--store", str(root), "--quiet"]) == 0
    assert f"store written to {root.resolve()}" in capsys.readouterr().out
    assert main(["store", "info", "--store", str(root)]) == 0
    out = capsys.readouterr().out
    assert "1 site(s)" in out and "dc3" in out
    assert main(["store", "info", "--store", str(tmp_path / "nothing")]) == 2
    assert "not a snapshot store" in capsys.readouterr().err
