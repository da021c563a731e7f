"""Spreadsheet exports neutralise formulas in untrusted text and keep numbers as numbers."""

import pandas as pd
import pytest
from openpyxl import load_workbook

from handoff_lib.exports import neutralise, write_csv, write_xlsx

DANGEROUS = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


@pytest.mark.parametrize("text", DANGEROUS)
def test_cells_that_start_like_a_formula_become_text(text):
    assert neutralise(text).startswith("'")


def test_plain_text_and_numbers_are_untouched():
    assert neutralise("bin empty") == "bin empty"
    assert neutralise(-5) == -5


def test_control_characters_are_blanked():
    assert neutralise("a\x00b\x1bc") == "a b c"


def test_csv_export_neutralises_text_cells(tmp_path):
    df = pd.DataFrame({"note": DANGEROUS, "qty": [-1, 2, 3, 4, 5, 6]})
    path = write_csv(df, tmp_path / "x.csv")
    back = pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False)
    assert all(v.startswith("'") for v in back["note"])
    assert back["qty"].tolist() == [-1, 2, 3, 4, 5, 6]


def test_xlsx_export_has_no_formula_cells_and_a_frozen_readable_header(tmp_path):
    df = pd.DataFrame({"promise_status": ["at_risk"] * 6, "note": DANGEROUS, "qty": [-1, 2, 3, 4, 5, 6]})
    path = write_xlsx({"Blocker queue": df}, tmp_path / "x.xlsx")
    ws = load_workbook(path)["Blocker queue"]
    assert ws.freeze_panes == "A2"
    assert [c.value for c in ws[1]] == ["Promise status", "Note", "Qty"]
    for row in ws.iter_rows(min_row=2):
        assert row[1].data_type == "s" and row[1].value.startswith("'")
        assert row[2].data_type == "n"


def test_xlsx_export_writes_dates_numbers_and_text_as_they_are(tmp_path):
    import datetime as dt

    df = pd.DataFrame({
        "text": [" leading space", "a < b & c > d", "trailing space ", "=1+1", None],
        "when": pd.to_datetime(["2026-11-24 14:30", None, "2026-11-25 08:05", "2026-11-24 00:00", "2026-11-24 23:59"]),
        "cutoff": pd.to_datetime(["2026-11-24 17:00"] * 5).tz_localize("America/New_York"),
        "day": pd.Series([dt.date(2026, 11, 24), None, dt.date(2026, 11, 25), None, None], dtype=object),
        "qty": [1, 2, 3, 4, 5],
        "minutes": [1.5, float("nan"), -2.0, 0.25, 3.0],
        "open": pd.array([3, None, 1, 0, 2], dtype="Int64"),
        "ship_complete": [True, False, True, False, True],
        **{f"extra_{i}": [i] * 5 for i in range(30)},  # past column Z
    })
    path = write_xlsx({"Board": df, "Empty": df.head(0)}, tmp_path / "x.xlsx")
    wb = load_workbook(path)
    ws = wb["Board"]
    rows = list(ws.iter_rows(min_row=2, values_only=True))
    assert [r[0] for r in rows] == [" leading space", "a < b & c > d", "trailing space ", "'=1+1", None]
    assert ws["A5"].data_type == "s"
    assert rows[0][1] == dt.datetime(2026, 11, 24, 14, 30) and rows[1][1] is None
    assert ws["B2"].number_format == "yyyy-mm-dd hh:mm"
    assert rows[0][2] == dt.datetime(2026, 11, 24, 17, 0)  # site-local wall time, no zone
    assert rows[0][3] == dt.datetime(2026, 11, 24) and ws["D2"].number_format == "yyyy-mm-dd"
    assert [r[4] for r in rows] == [1, 2, 3, 4, 5]
    assert [r[5] for r in rows] == [1.5, None, -2.0, 0.25, 3.0]
    assert [r[6] for r in rows] == [3, None, 1, 0, 2]
    assert [r[7] for r in rows] == ["yes", "no", "yes", "no", "yes"]
    assert rows[0][-1] == 29 and ws.max_column == 38
    assert ws.auto_filter.ref == "A1:AL6" and ws.freeze_panes == "A2"
    empty = wb["Empty"]
    assert [c.value for c in empty[1]][:2] == ["Text", "When"] and empty.max_row == 1


def test_text_columns_are_neutralised_as_each_value_would_be():
    from handoff_lib.exports import safe_frame

    values = [*DANGEROUS, "plain", "a\x00b\x1bc", "-", "x=1"]
    text = pd.Series([*values, None], dtype="str")
    out = safe_frame(pd.DataFrame({"t": text}))["t"].tolist()
    assert out[:-1] == [neutralise(v) for v in values]
    assert pd.isna(out[-1])


def test_the_workbook_builder_stops_waiting_when_its_review_folder_is_gone(tmp_path):
    from handoff_lib.exports import wait_for_views

    folder = tmp_path / "gone"
    assert wait_for_views(folder, poll_s=0.01) is False
