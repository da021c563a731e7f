"""Build loaded-entity tables by hand for tests: contract schema, given rows, NULL elsewhere."""

from __future__ import annotations

import duckdb

from handoff_lib.load.contract import ENTITIES, SQL_TYPES


def make_tables(con: duckdb.DuckDBPyConnection, **rows: list[dict]) -> None:
    """Create every contract entity table; insert the given rows (line numbers 2, 3, ...)."""
    for name, entity in ENTITIES.items():
        cols = ", ".join(f'"{f.name}" {SQL_TYPES[f.type]}' for f in entity.fields)
        con.execute(f"CREATE OR REPLACE TABLE {name} ({cols}, _file VARCHAR, _line BIGINT)")
        for i, row in enumerate(rows.get(name, []), start=2):
            names = [f.name for f in entity.fields]
            unknown = set(row) - set(names)
            assert not unknown, f"{name}: unknown fields {unknown}"
            values = [row.get(n) for n in names] + [f"{name}.csv", i]
            con.execute(f"INSERT INTO {name} VALUES ({', '.join('?' for _ in values)})", values)
