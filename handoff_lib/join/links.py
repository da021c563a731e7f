"""Safe links to source records: fill a system's URL template with URL-quoted record values.

A template is `links.<system>` in the site file, e.g. `https://wms.example.com/tasks/{task_id}`, or
`links.<record kind>` for one kind of record of a system (`holds: https://wms.example.com/holds/{hold_id}`),
which then wins over its system's template (`template_for`).
Every value is percent-encoded (nothing is left unquoted, not even '/'), so a record value can never
change the scheme, host or path of the link; a link is only returned when it starts with http(s)://.
`render_link` does one record in Python; `link_sql` gives the same result as a DuckDB expression
for set-based use (a test keeps the two in step).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from urllib.parse import quote

from handoff_lib.load.settings import Settings

_SAFE_SCHEME = re.compile(r"https?://", re.IGNORECASE)


def placeholders(template: str) -> tuple[str, ...]:
    """The {names} a template needs, in order."""
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


def render_link(template: str | None, values: Mapping[str, object]) -> str | None:
    """The filled link, or None when the template is absent, a value is missing or blank, or the
    result is not an http(s) URL."""
    if not template:
        return None
    out = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        value = values.get(name)
        text = "" if value is None else str(value).strip(" ")
        if text == "":
            return None
        out.append(quote(text, safe=""))
    url = "".join(out)
    return url if _SAFE_SCHEME.match(url) else None


def template_for(settings: Settings, entity: str) -> str | None:
    """The URL template for records of `entity` (a contract entity: holds, pack_events, pick_tasks, ...):
    `links.<entity>` when the site sets one, else its system's `links.<system>`."""
    from handoff_lib.load.contract import ENTITIES

    return settings.links.get(entity) or settings.links.get(ENTITIES[entity].system)


def record_link(settings: Settings, system: str, values: Mapping[str, object]) -> str | None:
    """The link to one record of `system` (oms, wms, carrier, crm), or None when the site has no
    template for it or the record lacks a value the template needs."""
    return render_link(settings.links.get(system), values)


def link_sql(template: str | None, columns: Mapping[str, str], name: str) -> tuple[str, dict[str, str]]:
    """A DuckDB expression (and its parameters) that renders `template` per row.

    `columns` maps each placeholder to a SQL column expression of the query it goes into (your own
    code's column names, never user text). The expression is NULL when the template is absent, uses
    a placeholder `columns` does not offer, or a value is NULL or blank. Literal parts of the template
    travel as named parameters `$<name>_<n>`; `name` keeps them apart from other links in one query.
    """
    if not template or not _SAFE_SCHEME.match(template):
        return "CAST(NULL AS VARCHAR)", {}
    parts: list[str] = []
    params: dict[str, str] = {}
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        if literal:
            key = f"{name}_{len(params)}"
            parts.append(f"${key}")
            params[key] = literal
        if field is None:
            continue
        if field not in columns:
            return "CAST(NULL AS VARCHAR)", {}
        col = columns[field]
        parts.append(f"url_encode(CAST(NULLIF(trim(CAST({col} AS VARCHAR)), '') AS VARCHAR))")
    # `||` propagates NULL, so a missing value drops the whole link.
    return "(" + " || ".join(parts) + ")", params
