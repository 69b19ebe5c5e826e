import csv
import io

import pytest

from lib.csvsafe import csv_safe, csv_safe_row


@pytest.mark.parametrize(
    "value",
    ["=1+1", '=HYPERLINK("http://evil.example","x")', "+44 7700 900123", "-2+3", "@SUM(A1)", "\t=1", "\r=1", " =1"],
)
def test_csv_safe_neutralises_values_a_spreadsheet_would_run_as_formulas(value):
    assert csv_safe(value) == "'" + value


@pytest.mark.parametrize("value", ["Amelia", "O'Brien", "a=b", "", "année 7"])
def test_csv_safe_leaves_ordinary_text_alone(value):
    assert csv_safe(value) == value


def test_csv_safe_leaves_numbers_and_none_alone():
    assert csv_safe(-3) == -3
    assert csv_safe(2.5) == 2.5
    assert csv_safe(None) is None


def test_no_formula_survives_a_round_trip_through_an_exported_csv():
    out = io.StringIO()
    csv.writer(out).writerow(csv_safe_row(["=cmd|' /C calc'!A0", "Amelia", "@x"]))
    cells = next(csv.reader(io.StringIO(out.getvalue())))
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells)
