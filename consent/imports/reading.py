"""Turn an uploaded file into contact rows, or a clear reason why not.

Two layers of error: a file that cannot be read at all (too big, not text, HTML, missing columns)
raises `ImportFileError` with a message for the office; a readable file yields a `Roster` whose rows
each carry their own `RowError`s. Nothing here touches the database.
"""

import codecs
import csv
import io
import re
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .columns import COLUMNS, NO, RELATIONSHIPS, YES, map_headers

DEFAULT_MAX_BYTES = 5 * 1024 * 1024

# Magic numbers of the files an office most often uploads by mistake.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive (an .xlsx spreadsheet is one)"),
    (b"PK\x05\x06", "a zip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Excel or Word file (.xls/.doc)"),
    (b"%PDF", "a PDF"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x89PNG", "an image"),
    (b"\xff\xd8\xff", "an image"),
    (b"GIF8", "an image"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)
_HTML_STARTS = ("<!doctype", "<html", "<head", "<body", "<?xml", "<table")
# C0 controls except tab, LF and CR, plus DEL: never in a text CSV, always in binary files.
_BINARY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Inside a cell we refuse every control character, line breaks included: names and addresses
# end up in email headers, and a CR/LF there is header injection.
_CELL_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


class ImportFileError(Exception):
    """The whole file is unusable; the message is written for the person who uploaded it."""


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1 is the header row, as a spreadsheet numbers them
    column: str
    message: str
    file: str = ""

    def __str__(self) -> str:
        where = f"{self.file} " if self.file else ""
        return f"{where}row {self.row}, {self.column}: {self.message}"


@dataclass(slots=True)
class ContactRow:
    """One pupil with (optionally) one of their contacts, in our own terms, whatever the format."""

    row: int
    pupil_id: str
    pupil_first_name: str
    pupil_last_name: str
    year_group: str = ""
    classes: list[tuple[str, str]] = field(default_factory=list)  # (group MIS id, name)
    contact_id: str = ""
    contact_first_name: str = ""
    contact_last_name: str = ""
    contact_email: str = ""
    contact_phone: str = ""
    relationship: str = RELATIONSHIPS[""]
    parental_responsibility: bool = True
    file: str = ""


@dataclass
class Roster:
    format: str  # "mis_csv" or "oneroster"
    rows: list[ContactRow]
    errors: list[RowError]

    def to_dict(self) -> dict:
        return {"format": self.format, "rows": [asdict(r) for r in self.rows],
                "errors": [asdict(e) for e in self.errors]}


def max_import_bytes() -> int:
    return getattr(settings, "IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES)


def read_roster(data: bytes, filename: str, *, max_bytes: int | None = None, org_sourced_id: str = "") -> Roster:
    """Read a generic MIS CSV, or a OneRoster 1.2 CSV bundle when the upload is a `.zip`."""
    limit = max_import_bytes() if max_bytes is None else max_bytes
    if len(data) > limit:
        raise ImportFileError(
            f"The file is {_megabytes(len(data))}; the largest file we accept is {_megabytes(limit)}. "
            "Export fewer columns, or ask your administrator to raise the limit."
        )
    if not data.strip():
        raise ImportFileError("The file is empty.")
    if filename.lower().endswith(".zip"):
        from .oneroster import read_oneroster

        return read_oneroster(data, max_bytes=limit, org_sourced_id=org_sourced_id)
    return read_mis_csv(decode_text(data))


def decode_text(data: bytes, *, name: str = "The file") -> str:
    """Decode a CSV as UTF-8 (with or without BOM), UTF-16 (with BOM) or Windows-1252."""
    for signature, what in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise ImportFileError(f"{name} is {what}, not a CSV. Save it from your MIS or spreadsheet as CSV.")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise ImportFileError(f"{name} says it is UTF-16 but is not valid UTF-16.") from None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                # Excel on Windows saves "CSV" as Windows-1252; it leaves only 5 bytes undefined.
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                raise ImportFileError(
                    f"{name} is not in a text encoding we can read. Save it as \"CSV UTF-8\"."
                ) from None
    head = text[:2048]
    # A NUL, or control characters in bulk, mean a binary file; a stray one is a row error later.
    if "\x00" in head or len(_BINARY_CONTROL.findall(head)) > len(head) // 50:
        raise ImportFileError(f"{name} is not a text file. Save it from your MIS or spreadsheet as CSV.")
    if head.lstrip().lower().startswith(_HTML_STARTS):
        raise ImportFileError(
            f"{name} is a web page (HTML), not a CSV. Some MIS reports save HTML with a .csv name: "
            "choose CSV as the export format."
        )
    return text


def csv_rows(text: str, *, name: str = "The file"):
    """Yield (row number, cells); the header is row 1. Blank lines are skipped but counted."""
    # Excel in many European locales saves "CSV" with semicolons: take the header line's separator.
    header_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=header_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for cells in reader:
            yield reader.line_num, cells
    except csv.Error as error:
        raise ImportFileError(f"{name} is not a well-formed CSV near line {reader.line_num}: {error}.") from None


def read_mis_csv(text: str) -> Roster:
    rows_iter = csv_rows(text)
    first = next(rows_iter, None)
    if first is None:
        raise ImportFileError("The file is empty.")
    _, headers = first
    found, missing = map_headers(headers)
    if missing:
        raise ImportFileError(
            "The file has no column for: " + ", ".join(missing) + ". The first row must hold the column "
            "names; see the column guide or download the template."
        )
    labels = {column.key: headers[index].strip() or column.label for column, index in
              ((c, found[c.key]) for c in COLUMNS if c.key in found)}
    rows: list[ContactRow] = []
    errors: list[RowError] = []
    for line, cells in rows_iter:
        if not any(cell.strip() for cell in cells):
            continue
        values = {key: cells[index] if index < len(cells) else "" for key, index in found.items()}
        row, row_errors = _contact_row(line, values, labels)
        errors.extend(row_errors)
        if row is not None:
            rows.append(row)
    if not rows and not errors:
        raise ImportFileError("The file has column names but no rows.")
    return Roster(format="mis_csv", rows=rows, errors=errors)


def clean_cell(value: str) -> tuple[str, str | None]:
    """Strip surrounding spaces; refuse control characters. Formula-looking text stays as typed."""
    value = value.strip(" \u00a0")
    if value.strip() != value:  # a leading/trailing tab or line break
        value = value.strip()
    if _CELL_CONTROL.search(value):
        return value, "contains a line break or control character"
    return value, None


def _contact_row(line: int, raw: dict[str, str], labels: dict[str, str]) -> tuple[ContactRow | None, list[RowError]]:
    errors: list[RowError] = []
    values: dict[str, str] = {}
    for key, value in raw.items():
        values[key], problem = clean_cell(value)
        if problem:
            errors.append(RowError(line, labels[key], problem))
    for key in ("pupil_id", "pupil_first_name", "pupil_last_name"):
        if not values.get(key):
            errors.append(RowError(line, labels[key], "is empty"))
    has_contact = any(values.get(k) for k in ("contact_first_name", "contact_last_name", "contact_email",
                                               "contact_phone"))
    if has_contact and not values.get("contact_id"):
        errors.append(RowError(line, labels["contact_id"], "is empty, but the row has contact details"))
    if values.get("contact_id") and not values.get("contact_last_name"):
        errors.append(RowError(line, labels.get("contact_last_name", "Contact surname"), "is empty"))
    email = values.get("contact_email", "")
    if email:
        try:
            validate_email(email)
        except ValidationError:
            errors.append(RowError(line, labels["contact_email"], f"“{email}” is not an email address"))
    relationship = values.get("relationship", "")
    if relationship.lower() not in RELATIONSHIPS:
        errors.append(RowError(line, labels["relationship"], f"“{relationship}” is not a relationship we know "
                               "(mother, father, carer, legal guardian, other…)"))
    responsibility = values.get("parental_responsibility", "").lower()
    if responsibility not in YES and responsibility not in NO:
        errors.append(RowError(line, labels["parental_responsibility"], "should be yes or no"))
    for key, limit in (("pupil_id", 64), ("contact_id", 64), ("pupil_first_name", 100), ("pupil_last_name", 100),
                       ("contact_first_name", 100), ("contact_last_name", 100), ("contact_email", 254),
                       ("contact_phone", 40), ("year_group", 40), ("class", 120)):
        if len(values.get(key, "")) > limit:
            errors.append(RowError(line, labels[key], f"is longer than {limit} characters"))
    if errors:
        return None, errors
    year = values.get("year_group", "")
    classes = [(f"class:{values['class']}"[:64], values["class"])] if values.get("class") else []
    return ContactRow(
        row=line,
        pupil_id=values["pupil_id"],
        pupil_first_name=values["pupil_first_name"],
        pupil_last_name=values["pupil_last_name"],
        year_group=year,
        classes=classes,
        contact_id=values.get("contact_id", ""),
        contact_first_name=values.get("contact_first_name", ""),
        contact_last_name=values.get("contact_last_name", ""),
        contact_email=email,
        contact_phone=values.get("contact_phone", ""),
        relationship=RELATIONSHIPS[relationship.lower()],
        parental_responsibility=responsibility not in NO,
    ), []


def year_group_name(year: str) -> str:
    """'7' and '07' become 'Year 7'; 'Reception' stays as it is."""
    return f"Year {int(year)}" if year.isdigit() else year


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
