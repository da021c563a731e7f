"""Stage 4, history: what was recorded. Each review's snapshot and what changed since the last one, the
board's acknowledgement log, the shared Parquet snapshot store across sites, the engines that run one query
definition on DuckDB or Spark, and the order history replayed as of past review times. It may import rules,
join, load and the shared modules; learn trains and scores on what is here, so it sits below learn.

| module | its job |
|---|---|
| `snapshots` | history.duckdb: a snapshot per review, changes since the last, stale sources |
| `acks` | the append-only acknowledge / assign / comment log |
| `store` | the Parquet snapshot store, partitioned by site, date and review |
| `engines` | one query definition compiled for DuckDB or Spark |
| `asof_orders` | orders as they stood at past review times (backtest, calibration, learned risk) |
| `locks` | the one file lock (a site's run lock, the store's writer lock) |
| `faults` | named crash points that tests trigger |
"""
