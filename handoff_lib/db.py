"""DuckDB connections: one per job, passed explicitly, set to the site timezone."""

from __future__ import annotations

from pathlib import Path

import duckdb

from .settings import Settings


def connect(settings: Settings, path: str | Path = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection whose TIMESTAMPTZ arithmetic and display use the site timezone."""
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = ?", [settings.timezone])
    return con
