"""One extract as read, before its values are typed: the `_Source` record (header names, where each contract
field is, the structural rejects), the header matched to the contract (`_match_columns`), and the text a
spreadsheet or database cell becomes (`_cell_text`). Files (extracts.py) and database sources (dbsource.py)
both end in a `_Source`, so this sits below both.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from handoff_lib.errors import ExtractError, MissingColumnError

if TYPE_CHECKING:
    from .contract import Entity
    from .settings import Settings, SourceSpec

REJECT_COLUMNS = ["line", "column", "value", "reason", "raw"]

@dataclass
class _Source:
    """One extract as read: header names, where each field is, and the structural rejects. The rows
    themselves are in the temporary relation `_hx_src(c0, c1, ..., _line)`, all VARCHAR."""

    names: list[str]
    cols: dict[str, int]  # contract field -> column index in the file
    rows_read: int
    structural: pd.DataFrame  # REJECT_COLUMNS
    native_bools: bool = False  # Parquet / XLSX hold real booleans: accept true / false as well
    delimiter: str = ","
    first_line: int | None = None  # set when _hx_src is the view `_hx_csv` with _line = first_line + rowid
    rule_cols: dict[str, int] = field(default_factory=dict)  # column a derive rule, `where:` or combined field reads -> its index
    flags: pd.DataFrame | None = None  # REJECT_COLUMNS: values kept but flagged (decoded as Windows-1252)
    rows_other: int = 0  # rows `where:` leaves to other entities (not this entity's: neither accepted nor rejected)
    fingerprint: str | None = None  # a database source: what the load report holds instead of a file's sha256


def _cell_text(v: Any) -> str | None:
    """An XLSX cell value as the text a CSV export would hold."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    if hasattr(v, "isoformat"):  # datetime, date, time
        return v.isoformat(sep=" ") if hasattr(v, "hour") and hasattr(v, "day") else v.isoformat()
    return str(v)


def _match_columns(names: list[str], ent: Entity, spec: SourceSpec, settings: Settings) -> dict[str, int]:
    """Contract field -> index of its column in the file (exact name, else a unique
    case-insensitive match). A required field not found raises MissingColumnError."""
    found: dict[str, int] = {}
    problems: list[str] = []
    for f in ent.fields:
        if f.name in spec.constants or f.name in spec.derived or f.name in spec.combined:  # no one column to find
            continue
        want = spec.columns[f.name].strip()
        idx = [i for i, n in enumerate(names) if n == want] or [i for i, n in enumerate(names) if n.casefold() == want.casefold()]
        if len(idx) > 1:
            raise ExtractError(
                f"{spec.file}: column '{want}' (for {ent.name}.{f.name}) appears {len(idx)} times in the header "
                f"(columns {', '.join(str(i + 1) for i in idx)}); rename the duplicates in the export"
            )
        if idx:
            found[f.name] = idx[0]
        elif f.required:
            if ("sources", ent.name, "columns", f.name) in settings.lines:
                how = f"mapped at {settings.where('sources', ent.name, 'columns', f.name)}"
            else:
                how = f"not in sources.{ent.name}.columns ({settings.where('sources', ent.name, 'columns')}), so looked for by its contract name"
            close = difflib.get_close_matches(want, names, n=1, cutoff=0.6)
            hint = f"; closest: '{close[0]}'" if close else ""
            problems.append(f"missing column '{want}' for contract field {ent.name}.{f.name} ({how}{hint})")
    if problems:
        shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
        msg = f"{spec.file}: " + "; ".join(problems) + f"; columns found: {shown or '(none)'}"
        seps = [
            s for s in (";", "\t", "|", ",") if len(names) == 1 and spec.format == "csv" and s in names[0] and s != spec.delimiter
        ]
        if seps:
            setting = '"\\t"' if seps[0] == "\t" else f'"{seps[0]}"'
            msg += (
                f". The header reads as one single column holding {setting}: the delimiter looks wrong. "
                f"Set delimiter: {setting} for sources.{ent.name} ({settings.where('sources', ent.name, 'delimiter')}; "
                f"now {spec.delimiter!r})"
            )
        raise MissingColumnError(msg)
    return found
