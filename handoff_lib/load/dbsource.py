"""Database sources: a query, or a table or view, of the WMS/ERP database, read like a file.

A source in the site file names a database of the site's `databases:` block and a `query:` or a
`table:` instead of a `file:` (docs/extracts.md, "Your database"). `read_database` runs it read-only
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

from handoff_lib.errors import ExtractError, SettingsError

if TYPE_CHECKING:  # the loader imports this module, and it imports the loader's pieces lazily
    from .contract import Entity
    from .extracts import _Source
    from .settings import Settings, SourceSpec

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_CONNECT_TIMEOUT_S = 15.0
BATCH_ROWS = 50_000  # rows per Arrow batch on the SQLAlchemy path
WATCHDOG_GRACE_S = 5.0  # the client cancels this long after the server's statement_timeout should have
APPLICATION_NAME = "handoff"
READS_DDL = """CREATE TABLE IF NOT EXISTS db_reads (
    source VARCHAR, "database" VARCHAR, server VARCHAR, query VARCHAR, started_at TIMESTAMPTZ,
    seconds DOUBLE, rows_read BIGINT, fingerprint VARCHAR)"""
IDENT_PART = re.compile(r'"(?:[^"]|"")+"|[^."]+')


@dataclass(frozen=True)
class Database:
    """One entry of the site's `databases:` block: where its URL comes from, and the limits of a read."""

    name: str
    url_from: str  # "env", "file" or "literal"
    url_ref: str  # the variable's name, the file's path, or the URL itself (never with a password)
    timeout_s: float
    connect_timeout_s: float
    where: str  # the site file and line of this entry


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
# site file


def parse_databases(raw: dict, where: Callable[..., str], site_file: Path) -> dict[str, Database]:
    """The site's `databases:` block (empty when there is none). A URL with a password written into
    the site file, or a URL file inside the repository, is refused."""
    block = raw.get("databases") or {}
    if not isinstance(block, dict):
        raise SettingsError(f"{where('databases')}: databases must map names to {{url: ..., timeout_s: ...}}")
    out: dict[str, Database] = {}
    for name, entry in block.items():
        at = where("databases", name)
        if not isinstance(entry, dict) or "url" not in entry:
            raise SettingsError(f"{at}: database '{name}' needs url: {{env: VARIABLE}} or url: {{file: /path/outside/the/repo}}")
        unknown = set(entry) - {"url", "timeout_s", "connect_timeout_s"}
        if unknown:
            raise SettingsError(
                f"{at}: unknown setting(s) {', '.join(sorted(map(str, unknown)))} for database '{name}' (url, timeout_s, connect_timeout_s)"
            )
        url = entry["url"]
        url_at = where("databases", name, "url")
        if isinstance(url, dict) and set(url) == {"env"} and str(url["env"]).strip():
            kind, ref = "env", str(url["env"]).strip()
        elif isinstance(url, dict) and set(url) == {"file"} and str(url["file"]).strip():
            kind, ref = "file", str(_url_file(str(url["file"]), site_file, url_at))
        elif isinstance(url, str) and "://" in url:
            if urlsplit(url).password is not None:
                raise SettingsError(
                    f"{url_at}: the URL of database '{name}' holds a password; keep credentials out of the site file: "
                    f"url: {{env: HANDOFF_{str(name).upper()}_URL}} (an environment variable) or url: {{file: /etc/handoff/{name}.url}} "
                    f"(a file outside the repository, readable by the account that runs the reviews)"
                )
            kind, ref = "literal", url
        else:
            raise SettingsError(
                f"{url_at}: url of database '{name}' must be {{env: VARIABLE}}, {{file: PATH}} or a URL without a password"
            )
        out[str(name)] = Database(
            str(name), kind, ref,
            _seconds(entry.get("timeout_s", DEFAULT_TIMEOUT_S), where("databases", name, "timeout_s")),
            _seconds(entry.get("connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S), where("databases", name, "connect_timeout_s")),
            at,
        )  # fmt: skip
    return out


def parse_source(entity: str, s: dict, databases: dict[str, Database], where: Callable[..., str]) -> tuple[str, dict[str, Any]]:
    """For a source with `database:`: its label (what `file` says in rejects, the load report and
    messages, e.g. `wms:reporting.v_pick_tasks`) and the SourceSpec fields database, query, table, order_by."""
    at = where("sources", entity, "database")
    name = str(s["database"])
    if name not in databases:
        known = ", ".join(databases) or "none: add a databases: block"
        raise SettingsError(f"{at}: sources.{entity} reads database '{name}', which databases: does not define ({known})")
    if "file" in s:
        raise SettingsError(f"{where('sources', entity)}: sources.{entity} has both file: and database:; keep one")
    query, table = s.get("query"), s.get("table")
    if (query is None) == (table is None):
        raise SettingsError(
            f"{at}: sources.{entity} reads database '{name}': give it query: (a SELECT) or table: (a table or view), one of them"
        )
    order_by = s.get("order_by") or []
    if isinstance(order_by, str):
        order_by = [order_by]
    if not isinstance(order_by, list) or (order_by and query is not None):
        raise SettingsError(
            f"{where('sources', entity, 'order_by')}: order_by is a list of columns, for table: sources (a query says ORDER BY itself)"
        )
    for key in ("delimiter", "encoding", "sheet", "header_row", "format"):
        if key in s:
            raise SettingsError(f"{where('sources', entity, key)}: {key}: applies to files, not to a database source")
    if table is not None:
        table = str(table).strip()
        if not _split_ident(table):
            raise SettingsError(f"{where('sources', entity, 'table')}: '{table}' is not a table name (schema.table)")
        label = f"{name}:{table}"
    else:
        query = str(query).strip().rstrip(";").strip()
        if not query:
            raise SettingsError(f"{where('sources', entity, 'query')}: the query of sources.{entity} is empty")
        label = f"{name}:{entity} query"
    return label, {"database": name, "query": query, "table": table, "order_by": tuple(str(c) for c in order_by)}


def _url_file(value: str, site_file: Path, at: str) -> Path:
    path = Path(value).expanduser()
    path = (site_file.resolve().parent / path).resolve() if not path.is_absolute() else path.resolve()
    # the site file's repository, and handoff's own checkout (where site files usually live)
    for repo in {_repository(site_file.resolve().parent), _repository(Path(__file__).resolve().parent)} - {None}:
        if path == repo or repo in path.parents:
            raise SettingsError(
                f"{at}: the URL file {path} lies inside the repository {repo}, where it could be committed; "
                f"keep it outside, e.g. /etc/handoff/<name>.url (mode 600)"
            )
    return path


def _repository(folder: Path) -> Path | None:
    for p in (folder, *folder.parents):
        if (p / ".git").exists():
            return p
    return None


def _seconds(value: Any, at: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = -1.0
    if not v > 0:
        raise SettingsError(f"{at}: expected a number of seconds above 0, not {value!r}")
    return v


def _split_ident(name: str) -> list[str]:
    """'reporting.v_tasks' -> ['reporting', 'v_tasks']; quoted parts keep their dots: 'x."a.b"'."""
    parts = [m.group(0) for m in IDENT_PART.finditer(name)]
    if ".".join(parts) != name:
        return []
    return [p[1:-1].replace('""', '"') if p.startswith('"') else p for p in parts]


# --------------------------------------------------------------------------------------------
# reading


def read_database(con: duckdb.DuckDBPyConnection, settings: Settings, ent: Entity, spec: SourceSpec) -> _Source:
    """Run the source's query (or read its table) and stream the rows into `_hx_src(c0.., _line)`;
    returns the `_Source`. Records the read in `db_reads`. Connection failures, timeouts, a dropped
    connection, missing tables or columns raise ExtractError naming the source and server."""
    import pandas as pd

    from .extracts import REJECT_COLUMNS, _match_columns, _Source

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

        from .extracts import _cell_text

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
