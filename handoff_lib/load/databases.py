"""The site file's database settings: its `databases:` block (where each URL comes from, the time limits of a
read) and the `database:` / `query:` / `table:` of a source (docs/extracts.md, "Your database").

The URL never sits in the site file with a password: it comes from an environment variable
(`url: {env: NAME}`) or a file outside the repository (`url: {file: PATH}`), or is a URL without a
password. settings.py reads the blocks with this module; dbsource.py reads the rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from handoff_lib.errors import SettingsError

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_CONNECT_TIMEOUT_S = 15.0
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
