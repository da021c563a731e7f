"""Where the set work of the history analyses runs: DuckDB on one machine, or Apache Spark over the
snapshot store (docs/store.md), from ONE definition of each query.

A query is written once, in DuckDB's SQL dialect with `$name` parameters (themes.py, backtest.py).
`compile_sql` parses it with sqlglot, applies the portability rules below, and writes it out for the
engine: `DuckDBEngine` runs the DuckDB text on its connection, `SparkEngine` runs the Spark SQL text
with `spark.sql(text, args=...)`. Values always travel as parameters, never pasted into the text.

Portability rules, applied to both engines so that their answers agree row for row
(tests/test_engines.py runs every view on both and compares):

* `round(x, d)` rounds the decimal reading of x, half away from zero, on both engines:
  `CAST(round(CAST(x AS DECIMAL(38, 9)), d) AS DOUBLE)`. DuckDB rounds a DOUBLE by its exact binary
  value (0.15 -> 0.1, as 0.15 is stored as 0.1499...), Spark by its shortest decimal text (0.15 -> 0.2);
  through DECIMAL both say 0.2.
* `quantile_cont(x, q)` becomes Spark's `percentile(x, q)` (exact, linear interpolation, as DuckDB's).
* `epoch(ts)` becomes `unix_micros(ts) / 1e6` on Spark (DuckDB keeps fractions of a second; Spark's
  `unix_timestamp` drops them).

What the rules cannot fix, the queries avoid: an aggregate whose answer depends on the order rows
arrive in (`mode`, `any_value` over differing values, `arg_max` with tied keys) picks differently on
each engine, so the queries break ties explicitly (see themes.py).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pandas as pd

from handoff_lib.errors import HandoffError

ENGINES = ("duckdb", "spark")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Spark in local mode (tests, the bench, a laptop). Under spark-submit the cluster's settings win.
LOCAL_SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": str(2 * (os.cpu_count() or 2)),  # the default 200 tasks per shuffle suits clusters
    "spark.driver.memory": "4g",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


class EngineError(HandoffError):
    """An engine cannot be started or cannot run a query."""


# ----------------------------------------------------------------------------------------- compiling


def _portable(node: Any) -> Any:
    """The rewrites that hold on both engines (module docstring)."""
    from sqlglot import exp

    if isinstance(node, exp.Round) and node.args.get("decimals") is not None and not node.meta.get("portable"):
        inner = exp.Round(
            this=exp.Cast(this=node.this, to=exp.DataType.build("DECIMAL(38, 9)")),
            decimals=node.args["decimals"],
        )
        inner.meta["portable"] = True
        return exp.Cast(this=inner, to=exp.DataType.build("DOUBLE"))
    return node


def _spark_only(node: Any) -> Any:
    """The rewrites Spark needs to mean what DuckDB means (module docstring)."""
    from sqlglot import exp

    if isinstance(node, exp.PercentileCont) and node.args.get("expression") is not None:
        return exp.Anonymous(this="PERCENTILE", expressions=[node.this, node.expression])
    if isinstance(node, exp.TimeToUnix):
        micros = exp.Anonymous(this="UNIX_MICROS", expressions=[node.this])
        return exp.Div(this=exp.Cast(this=micros, to=exp.DataType.build("DOUBLE")), expression=exp.Literal.number(1_000_000))
    return node


@functools.lru_cache(maxsize=512)
def compile_sql(sql: str, dialect: str) -> tuple[str, tuple[str, ...]]:
    """The one definition `sql` (DuckDB dialect, `$name` parameters) as text for `dialect` ('duckdb' or
    'spark'), and the names of the parameters it uses. Raises EngineError on text sqlglot cannot read."""
    import sqlglot
    from sqlglot import exp

    if dialect not in ENGINES:
        raise EngineError(f"unknown engine '{dialect}' (one of {', '.join(ENGINES)})")
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise EngineError(f"query cannot be compiled for {dialect}: {exc}") from None
    tree = tree.transform(_portable)
    if dialect == "spark":
        tree = tree.transform(_spark_only)
    names = tuple(dict.fromkeys(p.name for p in tree.find_all(exp.Placeholder) if p.name))
    return tree.sql(dialect=dialect), names


def _ident(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise EngineError(f"'{name}' is not a table name")
    return name


def _bind(names: Sequence[str], params: dict[str, Any] | None) -> dict[str, Any]:
    params = params or {}
    missing = [n for n in names if n not in params]
    if missing:
        raise EngineError(f"query parameters not given: {', '.join(missing)}")
    return {n: params[n] for n in names}


def _frame_via_duckdb(table: Any) -> pd.DataFrame:
    """An Arrow table as DuckDB's `.df()` would give it (same dtypes whichever engine made it)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        return con.from_arrow(table).df()
    finally:
        con.close()


class Engine(Protocol):
    """What the analyses need from an engine."""

    name: str

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame: ...

    def create(self, name: str, sql: str, params: dict[str, Any] | None = None) -> None: ...

    def put(self, name: str, data: Any) -> None: ...

    def fetch(self, name: str) -> Any: ...

    def columns(self, name: str) -> list[str]: ...

    def read_parquet(self, name: str, folder: Path | str, partitions: dict[str, str]) -> None: ...

    def close(self) -> None: ...


# -------------------------------------------------------------------------------------------- DuckDB


class DuckDBEngine:
    """Queries on a DuckDB connection (the one given, or a new in-memory one); tables it makes are
    ordinary tables of that connection."""

    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection | None = None):
        self.con = con if con is not None else duckdb.connect()
        self._owned = con is None

    def _run(self, sql: str, params: dict[str, Any] | None, prefix: str = "") -> duckdb.DuckDBPyConnection:
        text, names = compile_sql(sql, "duckdb")
        return self.con.execute(prefix + text, _bind(names, params))

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """The rows of a SELECT as a DataFrame."""
        return self._run(sql, params).df()

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        return self._run(sql, params).fetchall()

    def create(self, name: str, sql: str, params: dict[str, Any] | None = None) -> None:
        """Table `name` := the rows of a SELECT."""
        self._run(sql, params, f"CREATE OR REPLACE TABLE {_ident(name)} AS ")

    def insert(self, name: str, sql: str, params: dict[str, Any] | None = None) -> None:
        """Append the rows of a SELECT to table `name`."""
        self._run(sql, params, f"INSERT INTO {_ident(name)} ")

    def put(self, name: str, data: Any) -> None:
        """Table `name` := a DataFrame or Arrow table."""
        view = f"_put_{_ident(name)}"
        self.con.register(view, data)
        try:
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {view}")
        finally:
            self.con.unregister(view)

    def fetch(self, name: str) -> Any:
        """Table `name` as an Arrow table."""
        return self.con.sql(f"SELECT * FROM {_ident(name)}").to_arrow_table()

    def columns(self, name: str) -> list[str]:
        return [r[0] for r in self.con.execute(f"DESCRIBE {_ident(name)}").fetchall()]

    def read_parquet(self, name: str, folder: Path | str, partitions: dict[str, str]) -> None:
        """View `name` over a Hive-partitioned Parquet folder (`partitions`: column -> DuckDB type,
        outermost first). Columns added in later files read as NULL in earlier ones."""
        pattern = str(Path(folder) / "/".join("*" for _ in partitions) / "*.parquet")
        rel = self.con.sql(
            "SELECT * FROM read_parquet($pattern, hive_partitioning = true, union_by_name = true, hive_types = $types)",
            params={"pattern": pattern, "types": dict(partitions)},
        )
        rel.create_view(_ident(name), replace=True)

    def close(self) -> None:
        if self._owned:
            self.con.close()


# --------------------------------------------------------------------------------------------- Spark


def spark_session(master: str | None = None, conf: dict[str, str] | None = None, app_name: str = "handoff"):
    """The process's Spark session, started on first use. Under spark-submit it is the cluster's (its
    master and settings); otherwise Spark runs in local mode on this machine: `master` or
    $HANDOFF_SPARK_MASTER, else `local[*]`, with LOCAL_SPARK_CONF and `conf` (e.g. spark.driver.memory)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError(
            "the Spark engine needs pyspark: .venv/bin/pip install -c constraints.txt -e '.[spark]' "
            "(and a Java 17 runtime: apt-get install -y openjdk-17-jre-headless)"
        ) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if not under_submit and shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise EngineError("the Spark engine needs Java 17: apt-get install -y openjdk-17-jre-headless (make test installs it)")
    builder = SparkSession.builder.appName(app_name)
    if not under_submit:
        builder = builder.master(master or os.environ.get("HANDOFF_SPARK_MASTER") or "local[*]")
        for key, value in {**LOCAL_SPARK_CONF, **(conf or {})}.items():
            builder = builder.config(key, value)
    elif conf:
        for key, value in conf.items():
            builder = builder.config(key, value)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*PySpark does not yet fully support pandas.*")
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class SparkEngine:
    """Queries on a Spark session (spark_session() when none is given). Tables it makes are temporary
    views of the session, cached (memory, then disk) when made by `create`; `close` drops them."""

    name = "spark"

    def __init__(self, spark: Any = None):
        self.spark = spark if spark is not None else spark_session()
        self._views: dict[str, Any] = {}

    def _df(self, sql: str, params: dict[str, Any] | None):
        text, names = compile_sql(sql, "spark")
        try:
            return self.spark.sql(text, args=_bind(names, params) or None)
        except Exception as exc:  # Spark raises its own tree of errors
            if type(exc).__module__.startswith(("pyspark", "py4j")):
                raise EngineError(f"Spark could not run the query: {str(exc).splitlines()[0]}") from None
            raise

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """The rows of a SELECT as a DataFrame, with the dtypes DuckDB's `.df()` gives."""
        return _frame_via_duckdb(self._df(sql, params).toArrow())

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        return [tuple(r) for r in self._df(sql, params).collect()]

    def create(self, name: str, sql: str, params: dict[str, Any] | None = None) -> None:
        """View `name` := the rows of a SELECT, cached (it is read by several queries after)."""
        from pyspark import StorageLevel

        self._drop(name)
        df = self._df(sql, params).persist(StorageLevel.MEMORY_AND_DISK)
        df.createOrReplaceTempView(_ident(name))
        self._views[name] = df

    def put(self, name: str, data: Any) -> None:
        """View `name` := a DataFrame or Arrow table (shipped from this process to the session)."""
        import pyarrow as pa

        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        self._drop(name)
        df = self.spark.createDataFrame(table)
        df.createOrReplaceTempView(_ident(name))
        self._views[name] = df

    def fetch(self, name: str) -> Any:
        """View `name` as an Arrow table (in this process: mind its size)."""
        return self.spark.table(_ident(name)).toArrow()

    def columns(self, name: str) -> list[str]:
        return list(self.spark.table(_ident(name)).columns)

    def read_parquet(self, name: str, folder: Path | str, partitions: dict[str, str]) -> None:
        """View `name` over a Hive-partitioned Parquet folder, partition columns typed as `partitions`
        says (Spark would read review_time 0900 as the number 900). Schemas of files are merged."""
        from pyspark.sql import functions as F

        key = "spark.sql.sources.partitionColumnTypeInference.enabled"
        before = self.spark.conf.get(key, "true")
        self.spark.conf.set(key, "false")  # every partition column read as text, typed below
        try:
            df = self.spark.read.option("mergeSchema", "true").parquet(_spark_path(folder))
        finally:
            self.spark.conf.set(key, before)
        for column, typ in partitions.items():
            if typ.upper() != "VARCHAR":
                df = df.withColumn(column, F.col(column).cast(typ.lower()))
        self._drop(name)
        df.createOrReplaceTempView(_ident(name))
        self._views[name] = df

    def _drop(self, name: str) -> None:
        old = self._views.pop(name, None)
        if old is not None:
            old.unpersist()
            self.spark.catalog.dropTempView(name)

    def close(self) -> None:
        """Drop the views this engine made; the session itself stays for the next engine."""
        for name in list(self._views):
            self._drop(name)


def _spark_path(folder: Path | str) -> str:
    """A local folder as an absolute path; object-store URLs (s3a://, abfss://, gs://) as given."""
    text = str(folder)
    return text if "://" in text else str(Path(text).resolve())


def open_engine(name: str, con: duckdb.DuckDBPyConnection | None = None) -> DuckDBEngine | SparkEngine:
    """An engine by name: 'duckdb' (on `con`, or a new in-memory connection) or 'spark' (the process's
    Spark session)."""
    if name == "duckdb":
        return DuckDBEngine(con)
    if name == "spark":
        return SparkEngine()
    raise EngineError(f"unknown engine '{name}' (one of {', '.join(ENGINES)})")


def check_engine(name: str, where: str = "--engine") -> str:
    """`name` if it is an engine; HandoffError naming `where` otherwise."""
    if name not in ENGINES:
        raise EngineError(f"{where}: unknown engine '{name}' (one of {', '.join(ENGINES)})")
    return name


def differences(a: pd.DataFrame, b: pd.DataFrame, float_tol: float = 1e-9, limit: int = 5) -> list[str]:
    """Where two result frames differ (columns, row count, or values row by row in order; dates and
    timestamps compared as instants, floats within `float_tol`). Empty when they are equal."""
    out: list[str] = []
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {list(a.columns)} vs {list(b.columns)}"]
    if len(a) != len(b):
        return [f"row counts differ: {len(a)} vs {len(b)}"]
    for col in a.columns:
        x, y = _comparable(a[col]), _comparable(b[col])
        for i, (u, v) in enumerate(zip(x, y)):
            if _same(u, v, float_tol):
                continue
            out.append(f"row {i}, column {col}: {u!r} vs {v!r}")
            if len(out) >= limit:
                return out
    return out


def _comparable(s: pd.Series) -> list:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC")
    return [None if _missing(v) else (v.tolist() if hasattr(v, "tolist") and not isinstance(v, (str, bytes)) else v) for v in s]


def _missing(v: Any) -> bool:
    if v is None or isinstance(v, (list, tuple, dict)) or hasattr(v, "shape"):
        return v is None
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _same(u: Any, v: Any, tol: float) -> bool:
    if isinstance(u, float) and isinstance(v, float):
        return abs(u - v) <= tol * max(1.0, abs(u), abs(v))
    return u == v
