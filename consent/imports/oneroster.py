"""OneRoster 1.2 CSV bundles: a zip with users.csv, classes.csv, enrollments.csv and orgs.csv.

Pupils are users with role `student`; guardians are users with role `parent`, `guardian` or
`relative`, linked to their children through `agentSourcedIds` (a student lists their agents, a
parent lists their children; either direction is accepted). Classes come from the students'
enrollments; the year group from the student's `grades`.
"""

import io
import zipfile
import zlib
from collections import defaultdict

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from consent.models import Guardianship

from .reading import ContactRow, ImportFileError, Roster, RowError, clean_cell, csv_rows, decode_text

REQUIRED_FILES = ("users.csv", "classes.csv", "enrollments.csv", "orgs.csv")
GUARDIAN_ROLES = {
    "parent": (Guardianship.Relationship.OTHER, True),
    "guardian": (Guardianship.Relationship.GUARDIAN, True),
    "relative": (Guardianship.Relationship.OTHER, False),
}
USER_COLUMNS = ("sourcedId", "role", "givenName", "familyName")


def read_oneroster(data: bytes, *, max_bytes: int, org_sourced_id: str = "") -> Roster:
    try:
        bundle = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise ImportFileError("The file is not a zip archive, so it cannot be a OneRoster bundle.") from None
    names = {info.filename.rsplit("/", 1)[-1].lower(): info for info in bundle.infolist() if not info.is_dir()}
    missing = [name for name in REQUIRED_FILES if name not in names]
    if missing:
        raise ImportFileError("The OneRoster bundle has no " + ", ".join(missing) + ".")
    # A zip bomb stays within the upload limit compressed; refuse what would not fit uncompressed.
    if sum(names[name].file_size for name in REQUIRED_FILES) > 10 * max_bytes:
        raise ImportFileError("The OneRoster bundle is too large once unpacked.")
    tables = {name: _table(name, _unpack(bundle, names[name])) for name in REQUIRED_FILES}
    return _roster(tables, org_sourced_id)


def _unpack(bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        return bundle.read(info)
    # Encrypted members raise RuntimeError, unknown compression NotImplementedError, corrupt data
    # BadZipFile or zlib.error: all mean the same thing to the person uploading.
    except (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError):
        raise ImportFileError(f"{info.filename} in the bundle cannot be unpacked (encrypted or damaged).") from None


def _table(name: str, data: bytes) -> list[tuple[int, dict[str, str]]]:
    rows = csv_rows(decode_text(data, name=name), name=name)
    first = next(rows, None)
    if first is None:
        raise ImportFileError(f"{name} is empty.")
    headers = [h.strip().lstrip("\ufeff") for h in first[1]]
    return [(line, dict(zip(headers, cells, strict=False))) for line, cells in rows if any(c.strip() for c in cells)]


def _active(record: dict[str, str]) -> bool:
    return record.get("status", "").strip().lower() != "tobedeleted"


def _roster(tables: dict, org_sourced_id: str) -> Roster:
    users = tables["users.csv"]
    if users and (absent := [c for c in USER_COLUMNS if c not in users[0][1]]):
        raise ImportFileError("users.csv has no column for: " + ", ".join(absent) + ".")
    schools = [r["sourcedId"] for _, r in tables["orgs.csv"] if r.get("type", "").lower() == "school" and _active(r)]
    if not org_sourced_id and len(schools) > 1:
        raise ImportFileError("The bundle holds several schools; choose which one to import.")
    org = org_sourced_id or (schools[0] if schools else "")

    errors: list[RowError] = []
    students: dict[str, tuple[int, dict[str, str]]] = {}
    agents: dict[str, tuple[int, dict[str, str]]] = {}
    links: dict[str, set[str]] = defaultdict(set)  # pupil id -> agent ids
    for line, user in users:
        if not _active(user):
            continue
        if org and user.get("orgSourcedIds") and org not in _split(user["orgSourcedIds"]):
            continue
        role = user.get("role", "").strip().lower()
        cleaned, problems = _clean(user)
        errors.extend(RowError(line, column, message, "users.csv") for column, message in problems)
        if problems:
            continue
        if not cleaned["sourcedId"]:
            errors.append(RowError(line, "sourcedId", "is empty", "users.csv"))
            continue
        if role == "student":
            students[cleaned["sourcedId"]] = (line, cleaned)
            links[cleaned["sourcedId"]].update(_split(cleaned.get("agentSourcedIds", "")))
        elif role in GUARDIAN_ROLES:
            agents[cleaned["sourcedId"]] = (line, cleaned)
            for child in _split(cleaned.get("agentSourcedIds", "")):
                links[child].add(cleaned["sourcedId"])

    classes = {r["sourcedId"]: r.get("title", "").strip() or r["sourcedId"]
               for _, r in tables["classes.csv"] if _active(r) and r.get("sourcedId")}
    enrolled: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for line, enrollment in tables["enrollments.csv"]:
        if not _active(enrollment) or enrollment.get("role", "").strip().lower() != "student":
            continue
        class_id, user_id = enrollment.get("classSourcedId", ""), enrollment.get("userSourcedId", "")
        if class_id not in classes:
            errors.append(RowError(line, "classSourcedId", f"“{class_id}” is not in classes.csv", "enrollments.csv"))
            continue
        enrolled[user_id].append((class_id[:64], classes[class_id][:120]))

    rows: list[ContactRow] = []
    for pupil_id, (line, student) in students.items():
        guardians = sorted(agent for agent in links.get(pupil_id, ()) if agent in agents)
        base = {
            "pupil_id": pupil_id, "pupil_first_name": student["givenName"],
            "pupil_last_name": student["familyName"],
            "year_group": _split(student.get("grades", ""))[0] if student.get("grades") else "",
            "classes": sorted(enrolled.get(pupil_id, [])), "file": "users.csv",
        }
        for field in ("givenName", "familyName"):
            if not student.get(field):
                errors.append(RowError(line, field, "is empty", "users.csv"))
        if not guardians:
            rows.append(ContactRow(row=line, **base))
        for agent_id in guardians:
            agent_line, agent = agents[agent_id]
            relationship, responsibility = GUARDIAN_ROLES[agent["role"].strip().lower()]
            if not agent.get("familyName"):
                errors.append(RowError(agent_line, "familyName", "is empty", "users.csv"))
            rows.append(ContactRow(
                row=agent_line, **base, contact_id=agent_id, contact_first_name=agent.get("givenName", ""),
                contact_last_name=agent.get("familyName", ""), contact_email=agent.get("email", ""),
                contact_phone=agent.get("sms", "") or agent.get("phone", ""), relationship=relationship,
                parental_responsibility=responsibility,
            ))
    if not students and not errors:
        raise ImportFileError("users.csv lists no active students.")
    return Roster(format="oneroster", rows=rows, errors=errors)


def _clean(user: dict[str, str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    cleaned, problems = {}, []
    for key, value in user.items():
        if key is None:
            continue
        cleaned[key], problem = clean_cell(value or "")
        if problem and key in ("sourcedId", "givenName", "familyName", "email", "sms", "phone", "agentSourcedIds"):
            problems.append((key, problem))
    if cleaned.get("email"):
        try:
            validate_email(cleaned["email"])
        except ValidationError:
            problems.append(("email", f"“{cleaned['email']}” is not an email address"))
    for key, limit in (("sourcedId", 64), ("givenName", 100), ("familyName", 100), ("email", 254)):
        if len(cleaned.get(key, "")) > limit:
            problems.append((key, f"is longer than {limit} characters"))
    return cleaned, problems


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
