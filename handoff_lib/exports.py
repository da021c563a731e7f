"""CSV and XLSX exports that are safe to open in a spreadsheet.

Text from source systems is untrusted: a cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return would be read as a formula by Excel or LibreOffice. Such text cells get a leading
apostrophe, which spreadsheets show as plain text. Numbers, dates and booleans are written as they are.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def neutralise(value: object) -> object:
    """A text value made safe for a spreadsheet cell; other values unchanged."""
    if not isinstance(value, str):
        return value
    text = CONTROL.sub(" ", value)  # control characters (not tab/CR/LF) break XLSX and terminals
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text cell neutralised and timezone-aware times made naive site-local
    (spreadsheets have no time zones)."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            out[col] = s.dt.tz_localize(None)
        elif s.dtype == object or pd.api.types.is_string_dtype(s):
            out[col] = s.map(neutralise, na_action="ignore").astype(object)
    return out


def readable(name: str) -> str:
    """'promise_status' -> 'Promise status'."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write a neutralised CSV (UTF-8 with BOM so spreadsheets detect the encoding)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    safe_frame(df).to_csv(tmp, index=False, encoding="utf-8-sig", quoting=csv.QUOTE_NONNUMERIC)
    os.replace(tmp, path)
    return path


def write_xlsx(sheets: dict[str, pd.DataFrame], path: Path) -> Path:
    """Write one sheet per view: readable headers, frozen header row, filters, neutralised text."""
    from openpyxl.utils import get_column_letter

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with pd.ExcelWriter(tmp, engine="openpyxl") as xl:
        for name, df in sheets.items():
            sheet = re.sub(r"[\[\]:*?/\\]", " ", name)[:31] or "Sheet"
            safe = safe_frame(df).rename(columns=readable)
            safe.to_excel(xl, sheet_name=sheet, index=False)
            ws = xl.sheets[sheet]
            ws.freeze_panes = "A2"
            if len(safe.columns):
                ws.auto_filter.ref = f"A1:{get_column_letter(len(safe.columns))}{max(len(safe), 1) + 1}"
            for i, col in enumerate(safe.columns, start=1):
                sample = [len(str(col))] + [len(str(v)) for v in safe[col].head(200) if v is not None]
                ws.column_dimensions[get_column_letter(i)].width = min(max(sample) + 2, 60)
    os.replace(tmp, path)
    return path
