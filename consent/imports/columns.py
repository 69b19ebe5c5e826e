"""The generic MIS CSV: which columns we read and which header names we accept for each.

One row per pupil–guardian contact, as Arbor, SIMS, Bromcom and most MIS report builders export it.
`COLUMNS` is the single source for the parser, the documentation page and the downloadable template.
Headers are matched case- and space-insensitively (`Legal Forename`, `legal_forename` and
`LEGAL-FORENAME` are the same header).
"""

import csv
import io
import re
from dataclasses import dataclass

from consent.models import Guardianship


@dataclass(frozen=True)
class Column:
    key: str
    label: str  # the header written in the template
    aliases: tuple[str, ...]
    required: bool
    help: str
    example: str


COLUMNS: tuple[Column, ...] = (
    Column("pupil_id", "Pupil ID", ("pupil id", "pupil mis id", "upn", "admission number", "adno", "student id"),
           True, "The MIS's own id for the pupil; it must never change for the same child.", "P000123"),
    Column("pupil_first_name", "Pupil first name",
           ("pupil first name", "pupil forename", "forename", "legal forename", "preferred forename",
            "first name", "student first name"),
           True, "The name staff and parents know the child by.", "Amelia"),
    Column("pupil_last_name", "Pupil surname",
           ("pupil surname", "pupil last name", "surname", "legal surname", "last name", "student surname"),
           True, "", "Quayle"),
    Column("year_group", "Year group", ("year group", "year", "ncyear", "nc year", "year taught in"),
           False, "Creates a year group (\"Year 7\") and keeps the pupil in it.", "7"),
    Column("class", "Registration group",
           ("registration group", "reg group", "class", "form", "tutor group", "homeroom"),
           False, "Creates a class and keeps the pupil in it.", "7Q"),
    Column("contact_id", "Contact ID", ("contact id", "contact mis id", "guardian id", "parent id"),
           True, "The MIS's id for the parent or carer; the same person has the same id for each child. "
           "Leave the contact columns empty for a pupil with no contact.", "C000456"),
    Column("contact_first_name", "Contact first name",
           ("contact first name", "contact forename", "guardian first name", "parent first name"),
           False, "", "Joan"),
    Column("contact_last_name", "Contact surname",
           ("contact surname", "contact last name", "guardian surname", "parent surname"),
           False, "Needed whenever a contact id is given.", "Quayle"),
    Column("contact_email", "Contact email",
           ("contact email", "email", "email address", "guardian email", "parent email", "primary email"),
           False, "Where consent requests and lesson invitations go.", "joan.quayle@example.net"),
    Column("contact_phone", "Contact phone",
           ("contact phone", "phone", "mobile", "telephone", "contact mobile", "primary phone"),
           False, "", "07700 900123"),
    Column("relationship", "Relationship", ("relationship", "relationship to pupil", "relation"),
           False, "Mother, father, carer, legal guardian or other (see the accepted words below); "
           "empty means other.", "Mother"),
    Column("parental_responsibility", "Parental responsibility",
           ("parental responsibility", "has parental responsibility", "pr"),
           False, "Yes or no; empty means yes. Only a contact with parental responsibility may consent.", "Yes"),
)

RELATIONSHIPS: dict[str, str] = {
    "mother": Guardianship.Relationship.MOTHER, "mum": Guardianship.Relationship.MOTHER,
    "mom": Guardianship.Relationship.MOTHER, "stepmother": Guardianship.Relationship.MOTHER,
    "step mother": Guardianship.Relationship.MOTHER,
    "father": Guardianship.Relationship.FATHER, "dad": Guardianship.Relationship.FATHER,
    "stepfather": Guardianship.Relationship.FATHER, "step father": Guardianship.Relationship.FATHER,
    "carer": Guardianship.Relationship.CARER, "foster carer": Guardianship.Relationship.CARER,
    "foster parent": Guardianship.Relationship.CARER, "social worker": Guardianship.Relationship.CARER,
    "guardian": Guardianship.Relationship.GUARDIAN, "legal guardian": Guardianship.Relationship.GUARDIAN,
    "parent": Guardianship.Relationship.OTHER, "other": Guardianship.Relationship.OTHER,
    "other relative": Guardianship.Relationship.OTHER, "grandparent": Guardianship.Relationship.OTHER,
    "grandmother": Guardianship.Relationship.OTHER, "grandfather": Guardianship.Relationship.OTHER,
    "aunt": Guardianship.Relationship.OTHER, "uncle": Guardianship.Relationship.OTHER,
    "sibling": Guardianship.Relationship.OTHER, "": Guardianship.Relationship.OTHER,
}

YES = frozenset({"yes", "y", "true", "1", "x", ""})
NO = frozenset({"no", "n", "false", "0"})


def normalise_header(header: str) -> str:
    return re.sub(r"[\s_\-./]+", " ", header.replace("\ufeff", "")).strip().lower()


ALIASES: dict[str, str] = {
    normalise_header(alias): column.key for column in COLUMNS for alias in (*column.aliases, column.label)
}


def map_headers(headers: list[str]) -> tuple[dict[str, int], list[str]]:
    """Return {column key: index} for the recognised headers, and the labels of missing required ones.

    The first header that matches a column wins, so a file with both "Forename" and "Legal forename"
    reads the first of them.
    """
    found: dict[str, int] = {}
    for index, header in enumerate(headers):
        key = ALIASES.get(normalise_header(header))
        if key and key not in found:
            found[key] = index
    missing = [column.label for column in COLUMNS if column.required and column.key not in found]
    return found, missing


def template_csv() -> str:
    """The downloadable template: the headers we write, and one example row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([column.label for column in COLUMNS])
    writer.writerow([column.example for column in COLUMNS])
    return out.getvalue()
