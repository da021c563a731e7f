"""Database sources: a query, or a table or view, of the WMS/ERP database, read like a file.

A source in the site file names a database of the site's `databases:` block and a `query:` or a
`table:` instead of a `file:` (docs/extracts.md, "Your database"; the block is read by databases.py).
`read_database` runs it read-only
with a timeout and streams the rows into the temporary relation `_hx_src(c0, c1, ..., _line)` of
VARCHAR values that every file format ends in, and returns the `_Source` (column names, where each
field is, rows read) the loader types, maps, rejects and counts exactly as for a file. The "line" of a
database row is its 1-based position in the result, so a query should say ORDER BY.

* PostgreSQL (`postgresql://` / `postgres://`) is read through ADBC: the driver fetches the rows with
  PostgreSQL's binary COPY into Arrow batches, which DuckDB casts to text as they arrive; no row ever
  becomes a Python object. The session is read-only (`default_transaction_read_only`), with
  `statement_timeout`, `connect_timeout` and TCP keepalives, and a watchdog cancels a read that
  outlives the timeout on the client side as well (a dead network sends no error).
* Any other URL goes through SQLAlchemy (install it and the dialect's driver); its rows are fetched in
  batches, turned into text as an XLSX cell is, and never committed (the transaction is rolled back).

The URL never sits in the site file with a password: it comes from an environment variable
(`url: {env: NAME}`) or a file outside the repository (`url: {file: PATH}`), or is a URL without a
password (libpq then reads PGPASSWORD or ~/.pgpass). Errors name the source, database, host, port and
user, never the password. What was read is recorded in the table `db_reads` (source, database,
server, query, when it ran, seconds, rows, fingerprint), which the run manifest carries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import duckdb

from handoff_lib.errors import ExtractError

from .columns import REJECT_COLUMNS, _cell_text, _match_columns, _Source
from .databases import Database, _split_ident

if TYPE_CHECKING:
    from .contract import Entity
    from .settings import Settings, SourceSpec

BATCH_ROWS = 50_000  # rows per Arrow batch on the SQLAlchemy path
WATCHDOG_GRACE_S = 5.0  # the client cancels this long after the server's statement_timeout should have
APPLICATION_NAME = "handoff"
READS_DDL = """CREATE TABLE IF NOT EXISTS db_reads (
    source VARCHAR, "database" VARCHAR, server VARCHAR, query VARCHAR, started_at TIMESTAMPTZ,
    seconds DOUBLE, rows_read BIGINT, fingerprint VARCHAR)"""


@dataclass(frozen=True)
class _Url:
    """A resolved URL, and how to name it in messages without its password."""

    url: str
    scheme: str
    host: str
    port: str
    dbname: str
    user: str
    password: str | None

    @property
    def server(self) -> str:
        at = f"{self.user}@" if self.user else ""
        where = f"{self.host}:{self.port}" if self.port else (self.host or "local")
        return f"{self.scheme}://{at}{where}/{self.dbname}"


# --------------------------------------------------------------------------------------------
# reading


def read_database(con: duckdb.DuckDBPyConnection, settings: Settings, ent: Entity, spec: SourceSpec) -> _Source:
    """Run the source's query (or read its table) and stream the rows into `_hx_src(c0.., _line)`;
    returns the `_Source`. Records the read in `db_reads`. Connection failures, timeouts, a dropped
    connection, missing tables or columns raise ExtractError naming the source and server."""
    import pandas as pd

    db = settings.databases[spec.database]
    url = _resolve(db, spec, settings)
    ctx = f"{spec.file} (sources.{ent.name}, database '{db.name}' at {url.server}, {settings.where('sources', ent.name)})"
    sql = _select(spec, url.scheme)
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    driver = (_postgres if url.scheme in ("postgresql", "postgres") else _sqlalchemy)(url, db, sql, ctx)
    with driver as (names, batches):
        cols = _match_columns(names, ent, spec, settings)  # a view that lost a column fails here, before any row is read
        n = len(names)
        select = ", ".join(f'CAST("{i}" AS VARCHAR) AS c{i}' for i in range(n))
        con.register("_hx_db_batches", _numbered(names, batches))
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _hx_src AS SELECT {select}, _line FROM _hx_db_batches")
        except duckdb.Error as exc:  # the driver's own error, when the stream broke (DuckDB wraps it)
            raise (driver.error or _failure(exc, ctx, db, url, driver.dog)) from None
        finally:
            con.unregister("_hx_db_batches")
    seconds = time.perf_counter() - t0
    rows, fingerprint = _fingerprint(con, n)
    con.execute(READS_DDL)
    con.execute("DELETE FROM db_reads WHERE source = $s", {"s": ent.name})
    con.execute(
        "INSERT INTO db_reads VALUES ($source, $db, $server, $query, $started, $seconds, $rows, $fp)",
        {"source": ent.name, "db": db.name, "server": url.server, "query": sql, "started": started,
         "seconds": round(seconds, 3), "rows": rows, "fp": fingerprint},
    )  # fmt: skip
    return _Source(names, cols, rows, pd.DataFrame(columns=REJECT_COLUMNS), native_bools=True, fingerprint=fingerprint)


def _resolve(db: Database, spec: SourceSpec, settings: Settings) -> _Url:
    at = f"sources.{spec.entity} reads database '{db.name}' ({db.where})"
    if db.url_from == "env":
        text = os.environ.get(db.url_ref, "").strip()
        if not text:
            raise ExtractError(f"{spec.file}: {at} takes its URL from environment variable {db.url_ref}, which is not set")
    elif db.url_from == "file":
        try:
            text = Path(db.url_ref).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ExtractError(
                f"{spec.file}: {at} takes its URL from {db.url_ref}, which cannot be read ({exc.strerror})"
            ) from None
        if not text:
            raise ExtractError(f"{spec.file}: {at} takes its URL from {db.url_ref}, which is empty")
    else:
        text = db.url_ref
    try:
        parts = urlsplit(text)
        port = str(parts.port or "")
    except ValueError:
        raise ExtractError(f"{spec.file}: {at}: the URL is not a valid database URL (scheme://user@host:port/database)") from None
    if not parts.scheme:
        raise ExtractError(f"{spec.file}: {at}: the URL has no scheme (postgresql://..., or an SQLAlchemy URL)")
    return _Url(
        text, parts.scheme.lower(), parts.hostname or "", port, parts.path.lstrip("/"),
        unquote(parts.username or ""), unquote(parts.password) if parts.password is not None else None,
    )  # fmt: skip


def _select(spec: SourceSpec, scheme: str) -> str:
    """The SQL sent: a table's rows (in order_by order), or the site's query wrapped as a subquery,
    which admits one SELECT only (a second statement after a `;` is a syntax error)."""
    if spec.table is not None:
        quote_char = "`" if scheme.startswith(("mysql", "mariadb")) else '"'
        q = lambda p: quote_char + p.replace(quote_char, quote_char * 2) + quote_char
        sql = "SELECT * FROM " + ".".join(q(p) for p in _split_ident(spec.table))
        if spec.order_by:
            sql += " ORDER BY " + ", ".join(q(c) for c in spec.order_by)
        return sql
    return f"SELECT * FROM (\n{spec.query}\n) AS handoff_source"


def _numbered(names: list[str], batches: Iterator[Any]) -> Any:
    """An Arrow stream of the batches with columns renamed 0..n-1 and `_line` (1-based position) added."""
    import numpy as np
    import pyarrow as pa

    first = next(batches, None)
    if first is None:
        schema = pa.schema([pa.field(str(i), pa.string()) for i in range(len(names))] + [pa.field("_line", pa.int64())])
        return pa.RecordBatchReader.from_batches(schema, iter(()))
    fields = [pa.field(str(i), f.type) for i, f in enumerate(first.schema)] + [pa.field("_line", pa.int64())]
    schema = pa.schema(fields)

    def gen() -> Iterator[Any]:
        start = 1
        for b in _chain(first, batches):
            k = b.num_rows
            yield pa.RecordBatch.from_arrays([*b.columns, pa.array(np.arange(start, start + k, dtype=np.int64))], schema=schema)
            start += k

    return pa.RecordBatchReader.from_batches(schema, gen())


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _fingerprint(con: duckdb.DuckDBPyConnection, n: int) -> tuple[int, str]:
    """Rows read, and 'rows N; xor of row hashes H' over every value and position (DuckDB's hash:
    compare fingerprints between runs of one DuckDB version; a different day or order changes it)."""
    cols = ", ".join(["_line", *(f"c{i}" for i in range(n))])
    rows, h = con.execute(f"SELECT count(*), bit_xor(hash({cols})) FROM _hx_src").fetchall()[0]
    return int(rows), f"rows {int(rows)}; hash {int(h or 0):016x}"


# --------------------------------------------------------------------------------------------
# drivers: each yields (column names, iterator of Arrow record batches) and closes what it opened


class _Watchdog:
    """Calls `cancel` once `seconds` have passed, unless stopped first; `fired` says whether it did."""

    def __init__(self, seconds: float, cancel: Callable[[], None]) -> None:
        self.fired = False
        self._cancel = cancel
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(Exception):  # the read then fails on its own, and the error says timeout
            self._cancel()

    def __enter__(self) -> Self:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class _postgres:
    """`with _postgres(url, db, sql, ctx) as (names, batches)`: the rows of `sql` through ADBC."""

    def __init__(self, url: _Url, db: Database, sql: str, ctx: str) -> None:
        self.url, self.db, self.sql, self.ctx = url, db, sql, ctx
        self.conn = self.cur = self.dog = None
        self.error: ExtractError | None = None  # what broke the stream of rows, once it has

    def __enter__(self) -> tuple[list[str], Iterator[Any]]:
        try:
            import adbc_driver_postgresql.dbapi as adbc
        except ImportError:
            raise ExtractError(
                f"{self.ctx}: reading PostgreSQL needs the ADBC driver: .venv/bin/pip install adbc-driver-postgresql"
            ) from None
        uri = _libpq_uri(self.url.url, self.db)
        try:
            self.conn = adbc.connect(uri)
            self.cur = self.conn.cursor()
            self.dog = _Watchdog(self.db.timeout_s + WATCHDOG_GRACE_S, self.cur.adbc_cancel).__enter__()
            self.cur.execute(self.sql)
            reader = self.cur.fetch_record_batch()
        except Exception as exc:  # noqa: BLE001 - every driver error becomes one clear ExtractError
            self.__exit__()
            raise _failure(exc, self.ctx, self.db, self.url, self.dog) from None
        names = list(reader.schema.names)
        return names, self._batches(reader)

    def _batches(self, reader: Any) -> Iterator[Any]:
        try:
            yield from reader
        except Exception as exc:  # noqa: BLE001
            self.error = _failure(exc, self.ctx, self.db, self.url, self.dog)
            raise self.error from None

    def __exit__(self, *exc: object) -> None:
        if self.dog is not None:
            self.dog.__exit__()
        for thing in (self.cur, self.conn):
            if thing is not None:
                with contextlib.suppress(Exception):  # closing a broken connection may fail too
                    thing.close()


def _libpq_uri(url: str, db: Database) -> str:
    """The URL with the session options added: read-only, statement timeout, connect timeout,
    keepalives (a dead peer is noticed), and an application name the DBA can see."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    ms = int(db.timeout_s * 1000)
    options = f"-c default_transaction_read_only=on -c statement_timeout={ms} -c idle_in_transaction_session_timeout={ms}"
    query["options"] = (query.get("options", "") + " " + options).strip()
    query.setdefault("connect_timeout", str(max(1, round(db.connect_timeout_s))))
    query.setdefault("application_name", APPLICATION_NAME)
    query.setdefault("keepalives", "1")
    query.setdefault("keepalives_idle", "30")
    query.setdefault("keepalives_interval", "10")
    query.setdefault("keepalives_count", "3")
    scheme = "postgresql"
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote), parts.fragment))


class _sqlalchemy:
    """`with _sqlalchemy(url, db, sql, ctx) as (names, batches)`: the rows of `sql` through SQLAlchemy."""

    def __init__(self, url: _Url, db: Database, sql: str, ctx: str) -> None:
        self.url, self.db, self.sql, self.ctx = url, db, sql, ctx
        self.engine = self.conn = self.result = self.dog = None
        self.error: ExtractError | None = None

    def __enter__(self) -> tuple[list[str], Iterator[Any]]:
        try:
            import sqlalchemy as sa
        except ImportError:
            raise ExtractError(
                f"{self.ctx}: a '{self.url.scheme}' database is read through SQLAlchemy: "
                f".venv/bin/pip install sqlalchemy and the driver of that database (e.g. pymysql, pyodbc, oracledb)"
            ) from None
        try:
            self.engine = sa.create_engine(self.url.url, poolclass=sa.pool.NullPool)
            self.conn = self.engine.connect()
            raw = self.conn.connection.dbapi_connection
            cancel = getattr(raw, "cancel", None) or getattr(raw, "interrupt", None) or raw.close
            self.dog = _Watchdog(self.db.timeout_s, cancel).__enter__()
            self.conn.begin()
            self.result = self.conn.execution_options(stream_results=True).exec_driver_sql(self.sql)
            keys = self.result.keys()  # column names (iterating the result would read rows)
            names = [str(k) for k in keys]
        except ModuleNotFoundError as exc:
            self.__exit__()
            raise ExtractError(
                f"{self.ctx}: the database driver is not installed ({exc.name}): .venv/bin/pip install {exc.name}"
            ) from None
        except Exception as exc:  # noqa: BLE001
            self.__exit__()
            raise _failure(exc, self.ctx, self.db, self.url, self.dog) from None
        return names, self._batches(len(names))

    def _batches(self, n: int) -> Iterator[Any]:
        import pyarrow as pa

        try:
            while rows := self.result.fetchmany(BATCH_ROWS):
                cols = list(zip(*rows)) if rows else [()] * n
                yield pa.RecordBatch.from_arrays(
                    [pa.array([_cell_text(v) for v in c], type=pa.string()) for c in cols], names=[str(i) for i in range(n)]
                )
            if self.dog is not None and self.dog.fired:
                raise TimeoutError("the read was cancelled at the timeout")
        except Exception as exc:  # noqa: BLE001
            self.error = _failure(exc, self.ctx, self.db, self.url, self.dog)
            raise self.error from None

    def __exit__(self, *exc: object) -> None:
        if self.dog is not None:
            self.dog.__exit__()
        for thing, how in ((self.result, "close"), (self.conn, "rollback"), (self.conn, "close"), (self.engine, "dispose")):
            if thing is not None:
                with contextlib.suppress(Exception):
                    getattr(thing, how)()


# --------------------------------------------------------------------------------------------
# errors

# (pattern in the driver's message, what happened, what to do)
_CAUSES = (
    (r"password authentication failed|authentication failed|access denied for user|login failed",
     "the database refused the login", "check the user and password of the URL"),
    (r"statement timeout|canceling statement due to user request|timeout expired|timed out|interrupted|cancelled at the timeout",
     "the read did not finish within the timeout", "raise timeout_s, or ask for fewer rows"),
    (r"could not connect|connection refused|could not translate host|name or service not known|no route to host|failed to connect|unable to open database",
     "cannot connect to the database server", "check that the server is up and reachable from this machine, and the host and port of the URL"),
    (r"terminating connection|server closed the connection|connection.*(lost|closed|reset)|ssl syscall|eof detected|broken pipe|consuming input failed|no connection to the server",
     "the connection was lost while the rows were read", "run again; if it keeps happening, ask the DBA what ends the session"),
    (r"permission denied|insufficient privilege|not authorized",
     "the database user may not read it", "GRANT SELECT on it to the read-only role (docs/extracts.md, Your database)"),
    (r"(relation|table|view) .*does not exist|no such table|undefined table|invalid object name",
     "the table or view does not exist", "check table:/query: of the source, and the role's search_path"),
    (r"column .*does not exist|no such column|undefined column|invalid column name",
     "the query names a column the table does not have", "fix the query, or the view it reads"),
    (r"syntax error|parse error",
     "the query is not valid SQL for this database", "fix query: of the source (one SELECT, no ';')"),
)  # fmt: skip


def _failure(exc: BaseException, ctx: str, db: Database, url: _Url, dog: _Watchdog | None = None) -> ExtractError:
    """One clear ExtractError for a driver error: what happened and what to do, the driver's first
    line, and never the password."""
    text = _scrub(" ".join(str(exc).split()) or type(exc).__name__, url)
    what, fix = "reading the database failed", "see the database's message"
    if dog is not None and dog.fired:
        what, fix = f"the read did not finish within the timeout ({db.timeout_s:g} s)", "raise timeout_s, or ask for fewer rows"
    else:
        for pattern, w, f in _CAUSES:
            if re.search(pattern, text, re.IGNORECASE):
                what, fix = w, f
                if w.startswith("the read did not finish"):
                    what += f" ({db.timeout_s:g} s, timeout_s of database '{db.name}')"
                break
    return ExtractError(f"{ctx}: {what}: {text[:300]}; {fix}")


def _scrub(text: str, url: _Url) -> str:
    """The message without the password, in any spelling the URL holds it."""
    for secret in {url.password, quote(url.password or "", safe=""), unquote(url.password or "")} - {None, ""}:
        text = text.replace(secret, "***")
    if url.url and url.url in text:
        text = text.replace(url.url, url.server)
    return text
