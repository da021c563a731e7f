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
