"""handoff_lib.db: connections in the site timezone, and writing an in-memory picture to a file."""

from __future__ import annotations

import duckdb
import pytest

from handoff_lib.db import PictureWriter, connect, save_picture
from handoff_lib.load.settings import load_settings


@pytest.fixture
def picture():
    con = connect(load_settings("parameters/demo.yaml"))
    con.execute("CREATE TABLE linked_things AS SELECT range AS id, 'o' || range AS order_id FROM range(1000)")
    con.execute("CREATE VIEW things AS SELECT id FROM linked_things")
    con.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
    return con


def test_connection_uses_the_site_timezone(picture):
    assert picture.execute("SELECT current_setting('TimeZone')").fetchone()[0] == "America/New_York"


def test_save_picture_writes_tables_and_views_but_not_temp_tables(picture, tmp_path):
    path = save_picture(picture, tmp_path / "picture.duckdb")
    assert not (tmp_path / "picture.duckdb.part").exists()
    f = duckdb.connect(str(path), read_only=True)
    assert f.execute("SELECT count(*), sum(id) FROM linked_things").fetchone() == (1000, 499500)
    assert f.execute("SELECT count(*) FROM things").fetchone()[0] == 1000  # the view resolves inside the file
    names = {r[0] for r in f.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "scratch" not in names
    # the in-memory picture is still the connection's current database and still usable
    assert picture.execute("SELECT current_database()").fetchone()[0] == "memory"
    assert picture.execute("SELECT count(*) FROM things").fetchone()[0] == 1000


def test_save_picture_replaces_an_older_file(picture, tmp_path):
    old = duckdb.connect(str(tmp_path / "picture.duckdb"))
    old.execute("CREATE TABLE stale AS SELECT 1 AS x")
    old.close()
    save_picture(picture, tmp_path / "picture.duckdb")
    f = duckdb.connect(str(tmp_path / "picture.duckdb"), read_only=True)
    assert "stale" not in {r[0] for r in f.execute("SHOW TABLES").fetchall()}


def test_picture_writer_writes_in_the_background_while_the_connection_is_used(picture, tmp_path):
    writer = PictureWriter(picture, tmp_path / "picture.duckdb")
    for _ in range(20):  # the review keeps reading its picture meanwhile
        assert picture.execute("SELECT count(*) FROM things").fetchone()[0] == 1000
    path = writer.wait()
    assert duckdb.connect(str(path), read_only=True).execute("SELECT count(*) FROM things").fetchone()[0] == 1000


def test_picture_writer_hands_its_error_to_wait(picture, tmp_path):
    writer = PictureWriter(picture, tmp_path / "no-such-folder" / "picture.duckdb")
    with pytest.raises(duckdb.Error):
        writer.wait()
