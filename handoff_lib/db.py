"""DuckDB connections: one per job, passed explicitly, set to the site timezone."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import duckdb


class Site(Protocol):
    """What a connection needs of the site: its timezone (load.settings.Settings has it). Shared by every stage,
    this module imports none of them."""

    timezone: str

IN_MEMORY_CHECKPOINT = "1GB"


def connect(settings: Site, path: str | Path = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection whose TIMESTAMPTZ arithmetic and display use the site timezone."""
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = ?", [settings.timezone])
    if str(path) == ":memory:":
        # An in-memory picture is checkpointed (its new tables compressed) every 16 MB of changes by
        # default: at 1M order lines that cost ~2 s of a ~20 s build. Every 1 GB saves it; the peak
        # there goes from 2.6 to 2.9 GB (of the 3 GB aim; bench/README.md).
        con.execute(f"SET checkpoint_threshold = '{IN_MEMORY_CHECKPOINT}'")
    return con


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    """Insert `rows` (tuples in the table's column order) into `table` with one statement: executemany
    runs one statement per row, which was most of the time policy.prepare took (then four times per analysis, now once)."""
    if rows:
        row = "(" + ", ".join("?" for _ in rows[0]) + ")"
        con.execute(f"INSERT INTO {table} VALUES " + ", ".join(row for _ in rows), [v for r in rows for v in r])


def save_picture(con: duckdb.DuckDBPyConnection, path: str | Path) -> Path:
    """Write every table and view of the picture in `con` to the DuckDB file `path`, replacing it.

    The picture is built in memory (building it straight into a file costs about a quarter more: every
    intermediate table is compressed and written); this writes the finished picture once, for the
    analysts and the board. It goes to `<path>.part` first and is renamed at the end, so `path` is
    either the complete picture or absent. Use a cursor of the picture's connection when another
    thread keeps using the connection."""
    path = Path(path)
    part = path.with_name(path.name + ".part")
    part.unlink(missing_ok=True)
    home = con.execute("SELECT current_database()").fetchone()[0]
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = $db AND schema_name = 'main' AND NOT temporary ORDER BY 1",
        {"db": home},
    ).fetchall()]
    views = con.execute(
        """SELECT view_name, sql FROM duckdb_views()
           WHERE database_name = $db AND schema_name = 'main' AND NOT internal AND NOT temporary ORDER BY 1""",
        {"db": home},
    ).fetchall()
    con.execute("ATTACH ? AS _picture_file", [str(part)])
    try:
        for t in tables:
            con.execute(f'CREATE TABLE _picture_file.main."{t}" AS SELECT * FROM "{home}".main."{t}"')
        con.execute("USE _picture_file")
        try:
            for _, sql in views:  # unqualified names: they resolve inside the file when it is opened
                con.execute(sql)
        finally:
            con.execute(f'USE "{home}"')
    finally:
        con.execute("DETACH _picture_file")
    part.replace(path)
    return path


class PictureWriter:
    """save_picture in a background thread, so a review renders its report while the picture is written
    (DuckDB releases the GIL; the machine has a core to spare while Python renders). `wait()` returns
    the path, or raises what the writer raised."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str | Path):
        import threading

        self.path = Path(path)
        self._cursor = con.cursor()  # its own connection to the same in-memory database
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="handoff-picture-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            save_picture(self._cursor, self.path)
        except BaseException as exc:  # noqa: BLE001 - handed to wait()
            self._error = exc
        finally:
            self._cursor.close()

    def wait(self) -> Path:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.path
