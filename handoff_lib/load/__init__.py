"""Stage 1, load: read the site file and every source extract (CSV, Parquet, XLSX or a database query) into
typed DuckDB tables, with each bad value or row in `rejects` and its reason, the load report, and how current
each source is. It may import only the shared modules (errors, db, exports); every later stage imports it.

| module | its job |
|---|---|
| `contract` | the entities and fields every site maps its extracts to |
| `site_keys` | every key a site file may hold (strict site files) |
| `files` | which file a source reads: `file:` patterns and the time a file name holds |
| `databases` | the site file's `databases:` block and a source's `database:` / `query:` / `table:` |
| `settings` | the site file, read and checked (`load_settings`), the operating day, the as-of grace |
| `columns` | one extract as read: header matched to the contract, structural rejects |
| `dbsource` | a database source read like a file (read-only, with a timeout) |
| `extracts` | each source typed, mapped and counted into its table (`load_extracts`) |
| `validate` | checks across the loaded tables: events out of order, the data warnings |
| `freshness` | each source's as-of time and age: fresh, stale, or of an earlier day |
| `presets` | mapping presets for known ERPs/WMSs (`parameters/presets/`) |
| `site_edit` | edit single lines of a site file, keeping its comments (`calibrate --apply`) |
| `demo` | the built-in demo site's extracts, generated for a seed |
"""
