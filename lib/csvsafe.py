"""Make values safe to put in a CSV that someone will open in a spreadsheet.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula by Excel,
LibreOffice and Google Sheets (CSV injection, OWASP). Imports store such values as typed, as text;
every export passes each cell through `csv_safe`, which prefixes a single quote so the spreadsheet
shows the text instead of evaluating it.
"""

from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_safe(value: Any) -> Any:
    """Return `value` unchanged unless it is a string a spreadsheet would treat as a formula.

    Numbers pass through (a negative number is not a formula); strings are checked after leading
    spaces too, since spreadsheets skip them before looking for `=`.
    """
    if not isinstance(value, str):
        return value
    if value.lstrip(" ").startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_safe_row(values) -> list[Any]:
    return [csv_safe(value) for value in values]
