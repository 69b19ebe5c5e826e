"""Importing pupils, guardians and groups from a school's MIS: reading, planning and applying."""

import csv
import datetime
import io
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent.imports import (
    ImportFileError,
    ImportPlan,
    ImportRefused,
    import_apply,
    import_plan,
    read_roster,
    template_csv,
)
from consent.models import Group, Guardian, Guardianship, Pupil
from schools.audit import action_label
from schools.models import AuditEntry
from tests.factories import GroupFactory, PupilFactory, SchoolFactory, UserFactory

pytestmark = pytest.mark.django_db

HEADER = ["UPN", "Legal Forename", "Legal Surname", "Year", "Reg Group", "Contact ID", "Contact Forename",
          "Contact Surname", "Contact Email", "Contact Mobile", "Relationship", "Parental Responsibility"]
QUAYLES = [
    ["P1", "Amelia", "Quayle", "7", "7Q", "C1", "Joan", "Quayle", "joan@example.net", "07700 900001", "Mother", "Yes"],
    ["P1", "Amelia", "Quayle", "7", "7Q", "C2", "Tom", "Quayle", "tom@example.net", "", "Father", "Yes"],
    ["P2", "Finlo", "Quayle", "9", "9K", "C1", "Joan", "Quayle", "joan@example.net", "07700 900001", "Mother", "Yes"],
    ["P3", "Breesha", "Kermode", "9", "9K", "C3", "Ealish", "Kermode", "ealish@example.net", "", "Carer", "No"],
]


def roster_csv(rows, header=HEADER, *, encoding="utf-8", newline="\r\n") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def run_import(school, data: bytes, *, full=False, filename="roster.csv", actor=None):
    plan = import_plan(school=school, rows=read_roster(data, filename), full=full)
    counts = import_apply(plan=plan, actor=actor)
    return plan, counts


def registry(school) -> dict:
    return {
        "pupils": sorted(Pupil.objects.filter(school=school).values_list(
            "mis_id", "first_name", "last_name", "year_group", "left_on", "updated_at")),
        "guardians": sorted(Guardian.objects.filter(school=school).values_list(
            "mis_id", "first_name", "last_name", "email", "phone", "updated_at")),
        "links": sorted(Guardianship.objects.filter(pupil__school=school).values_list(
            "pupil__mis_id", "guardian__mis_id", "relationship", "parental_responsibility")),
        "groups": sorted(Group.objects.filter(school=school).values_list("name", "kind", "mis_id")),
        "members": sorted(Group.pupils.through.objects.filter(group__school=school).values_list(
            "group__name", "pupil__mis_id")),
    }


@pytest.fixture
def school():
    return SchoolFactory()


@pytest.fixture
def office():
    return UserFactory()


def test_a_roster_creates_pupils_guardians_groups_and_memberships(school, office):
    plan, counts = run_import(school, roster_csv(QUAYLES), actor=office)

    assert counts["pupils_created"] == 3 and counts["guardians_created"] == 3 and counts["links_created"] == 4
    state = registry(school)
    assert state["guardians"][0][:5] == ("C1", "Joan", "Quayle", "joan@example.net", "07700 900001")
    assert ("P3", "C3", "carer", False) in state["links"]
    assert ("Year 7", "year", "year:Year 7") in state["groups"] and ("9K", "class", "class:9K") in state["groups"]
    assert ("9K", "P2") in state["members"] and ("Year 9", "P3") in state["members"]
    assert [r[1:] for r in plan.row_actions] == [["create", "create"]] * 4


def test_the_same_file_twice_changes_nothing(school, office):
    data = roster_csv(QUAYLES)
    run_import(school, data, full=True, actor=office)
    before = registry(school)

    plan, counts = run_import(school, data, full=True, actor=office)

    assert registry(school) == before
    assert not plan.changes_anything
    assert counts["pupils_unchanged"] == 3 and counts["guardians_unchanged"] == 3 and counts["links_unchanged"] == 4
    assert {tuple(r[1:]) for r in plan.row_actions} == {("unchanged", "unchanged")}


def test_a_changed_file_updates_by_mis_id(school, office):
    run_import(school, roster_csv(QUAYLES), actor=office)
    changed = [list(r) for r in QUAYLES]
    changed[0][8] = changed[2][8] = "joan.quayle@example.org"  # Joan's new email, on both her rows
    changed[3][4] = "9Q"  # Breesha moves class
    changed[1][11] = "No"

    _, counts = run_import(school, roster_csv(changed), actor=office)

    assert counts["guardians_updated"] == 1 and counts["pupils_updated"] == 0 and counts["links_updated"] == 1
    assert Guardian.objects.get(school=school, mis_id="C1").email == "joan.quayle@example.org"
    assert Guardian.objects.filter(school=school).count() == 3
    members = registry(school)["members"]
    assert ("9Q", "P3") in members and ("9K", "P3") not in members and ("9K", "P2") in members


def test_a_full_import_marks_missing_pupils_as_left_with_the_date(school, office):
    run_import(school, roster_csv(QUAYLES), full=True, actor=office)

    with time_machine.travel(datetime.datetime(2027, 7, 20, 12, tzinfo=datetime.UTC)):
        _, counts = run_import(school, roster_csv(QUAYLES[:3]), full=True, actor=office)

    breesha = Pupil.objects.get(school=school, mis_id="P3")
    assert breesha.left_on == datetime.date(2027, 7, 20)
    assert counts["pupils_left"] == 1
    assert not breesha.groups.exists()  # no longer in the MIS's classes, so no more invitations
    assert Pupil.objects.filter(school=school, left_on__isnull=True).count() == 2


def test_a_partial_import_leaves_unlisted_pupils_alone(school, office):
    run_import(school, roster_csv(QUAYLES), actor=office)
    run_import(school, roster_csv(QUAYLES[:1]), full=False, actor=office)
    assert not Pupil.objects.filter(school=school, left_on__isnull=False).exists()


def test_a_pupil_listed_again_after_leaving_has_the_leaving_date_cleared(school, office):
    run_import(school, roster_csv(QUAYLES), full=True, actor=office)
    run_import(school, roster_csv(QUAYLES[:3]), full=True, actor=office)
    run_import(school, roster_csv(QUAYLES), full=True, actor=office)
    assert Pupil.objects.get(school=school, mis_id="P3").left_on is None


def test_a_full_import_removes_contacts_no_longer_listed_for_a_pupil(school, office):
    run_import(school, roster_csv(QUAYLES), full=True, actor=office)
    run_import(school, roster_csv([QUAYLES[0], *QUAYLES[2:]]), full=True, actor=office)
    assert ("P1", "C2") not in [link[:2] for link in registry(school)["links"]]
    assert Guardian.objects.filter(school=school, mis_id="C2").exists()  # the person stays on record


def test_groups_made_by_hand_keep_their_members(school, office):
    assembly = GroupFactory(school=school, name="Whole school assembly")
    run_import(school, roster_csv(QUAYLES), actor=office)
    assembly.pupils.add(*Pupil.objects.filter(school=school))
    run_import(school, roster_csv(QUAYLES), full=True, actor=office)
    assert assembly.pupils.count() == 3


def test_an_import_only_touches_its_own_school(school, office):
    other = SchoolFactory()
    PupilFactory(school=other, mis_id="P9")
    run_import(school, roster_csv(QUAYLES), full=True, actor=office)
    assert Pupil.objects.get(school=other, mis_id="P9").left_on is None


def test_an_import_writes_one_audit_entry_with_the_counts(school, office):
    before = AuditEntry.objects.count()
    run_import(school, roster_csv(QUAYLES), actor=office)
    entry = AuditEntry.objects.order_by("-pk").first()
    assert AuditEntry.objects.count() == before + 1
    assert entry.action == "import.applied" and entry.data["pupils_created"] == 3 and entry.data["rows"] == 4
    assert action_label("import.applied") == "imported pupils and guardians from the MIS"


def test_a_plan_survives_a_round_trip_through_json_between_preview_and_confirm(school, office):
    import json

    plan = import_plan(school=school, rows=read_roster(roster_csv(QUAYLES), "r.csv"), full=True)
    stored = ImportPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    import_apply(plan=stored, actor=office)
    assert Pupil.objects.filter(school=school).count() == 3


def test_a_plan_made_stale_by_a_change_since_the_preview_is_refused(school, office):
    plan = import_plan(school=school, rows=read_roster(roster_csv(QUAYLES), "r.csv"), full=False)
    PupilFactory(school=school, mis_id="P1")
    with pytest.raises(ImportRefused, match="preview it again"):
        import_apply(plan=plan, actor=office)
    assert Pupil.objects.filter(school=school).count() == 1


def test_apply_reports_progress_per_batch(school, office):
    plan = import_plan(school=school, rows=read_roster(roster_csv(QUAYLES), "r.csv"), full=False)
    seen = []
    import_apply(plan=plan, actor=office, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] and len(seen) > 3


# Reading files -----------------------------------------------------------------------------------


def test_headers_are_matched_whatever_their_case_spacing_and_mis_style():
    header = ["pupil_id", "FORENAME", " Surname ", "NC Year", "Class", "contact id", "contact first name",
              "contact surname", "EMAIL", "phone", "relationship to pupil", "PR"]
    roster = read_roster(roster_csv(QUAYLES, header=header), "x.csv")
    assert not roster.errors and roster.rows[0].pupil_first_name == "Amelia" and roster.rows[0].classes


def test_the_template_has_every_column_and_reads_back_without_errors():
    roster = read_roster(template_csv().encode(), "template.csv")
    assert not roster.errors and roster.rows[0].pupil_id == "P000123"


def test_a_utf8_file_with_a_byte_order_mark_is_read():
    roster = read_roster(b"\xef\xbb\xbf" + roster_csv([["P1", "Zoë", "Ó Ceallaigh", *[""] * 9]]), "x.csv")
    assert roster.rows[0].pupil_first_name == "Zoë" and roster.rows[0].pupil_last_name == "Ó Ceallaigh"


def test_a_windows_1252_file_is_decoded_right():
    roster = read_roster(roster_csv([["P1", "Zoë", "O’Neill", *[""] * 9]], encoding="cp1252"), "x.csv")
    assert roster.rows[0].pupil_first_name == "Zoë" and roster.rows[0].pupil_last_name == "O’Neill"


def test_a_utf16_file_is_decoded_right():
    roster = read_roster(roster_csv([["P1", "Zoë", "Łukasz", *[""] * 9]], encoding="utf-16"), "x.csv")
    assert roster.rows[0].pupil_first_name == "Zoë" and roster.rows[0].pupil_last_name == "Łukasz"


def test_a_semicolon_separated_file_is_read():
    data = roster_csv(QUAYLES).decode().replace(",", ";").encode()
    assert len(read_roster(data, "x.csv").rows) == 4


BAD_FILES = {
    "undecodable": (roster_csv(QUAYLES)[:-10] + b"\x81\x8d\x90\r\n", "not in a text encoding we can read"),
    "html disguised as csv": (b"\n<!DOCTYPE html><html><body><table><tr><td>P1</td></tr></table></body></html>",
                              "web page (HTML)"),
    "html without a doctype": (b"<html><head><title>Report</title></head></html>", "web page (HTML)"),
    "zip disguised as csv": (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40, "zip archive"),
    "binary": (b"\x00\x01\x02\x03" + b"UPN,Forename\r\n" * 10, "not a text file"),
    "random bytes": (bytes(range(256)) * 4, "not in a text encoding we can read"),
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "a PDF"),
    "missing columns": (b"UPN,Forename\r\nP1,Amelia\r\n", "no column for: Pupil surname, Contact ID"),
    "empty": (b"", "empty"),
    "header only": (roster_csv([]), "no rows"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_file_gives_a_clear_error_and_imports_nothing(name, school):
    data, message = BAD_FILES[name]
    with pytest.raises(ImportFileError, match=re.escape(message)):
        read_roster(data, "roster.csv")
    assert not Pupil.objects.exists()


def test_a_file_over_the_limit_is_refused_with_the_sizes(settings):
    settings.IMPORT_MAX_BYTES = 5 * 1024 * 1024
    data = roster_csv(QUAYLES * 20_000)  # about 6 MB
    assert len(data) > 6 * 1024 * 1024 * 0.9
    with pytest.raises(ImportFileError, match=r"The file is \d+\.\d MB; the largest file we accept is 5\.0 MB"):
        read_roster(data, "roster.csv")


def test_the_limit_is_a_parameter_too():
    with pytest.raises(ImportFileError, match="largest file"):
        read_roster(roster_csv(QUAYLES), "roster.csv", max_bytes=100)


def test_row_errors_carry_their_row_number_and_column_and_nothing_is_imported(school, office):
    rows = [list(r) for r in QUAYLES]
    rows[1][8] = "tom-at-example.net"
    rows[2][0] = ""
    rows[3][10] = "Neighbour"
    rows.append(["P4", "Juan", "Kelly", "8", "8K", "", "Ann", "Kelly", "", "", "Mother", "Yes"])
    rows.append(["P5", "Ann", "Kelly", "8", "8K", "C5", "Ann", "Kelly", "", "", "Mother", "maybe"])

    roster = read_roster(roster_csv(rows), "roster.csv")
    plan = import_plan(school=school, rows=roster, full=True)

    found = {(e.row, e.column): e.message for e in plan.errors}
    assert "is not an email address" in found[(3, "Contact Email")]
    assert found[(4, "UPN")] == "is empty"
    assert "not a relationship we know" in found[(5, "Relationship")]
    assert "has contact details" in found[(6, "Contact ID")]
    assert found[(7, "Parental Responsibility")] == "should be yes or no"
    assert "row 3, Contact Email" in str(plan.errors[0])
    with pytest.raises(ImportRefused, match="nothing was imported"):
        import_apply(plan=plan, actor=office)
    assert not Pupil.objects.exists() and not Guardian.objects.exists() and not Group.objects.exists()


def test_the_same_mis_id_with_conflicting_data_is_an_error_naming_both_rows(school):
    rows = [list(r) for r in QUAYLES]
    rows[2][8] = "joan@elsewhere.example"  # C1 again, different email
    rows[1][1] = "Amy"  # P1 again, different first name
    plan = import_plan(school=school, rows=read_roster(roster_csv(rows), "r.csv"), full=False)
    messages = {(e.row, e.column): e.message for e in plan.errors}
    assert "differs from “Amelia” given for the same id in row 2" in messages[(3, "Pupil first name")]
    assert "row 2" in messages[(4, "Contact email")]


def test_duplicate_rows_are_fine(school, office):
    plan, counts = run_import(school, roster_csv(QUAYLES + QUAYLES), actor=office)
    assert not plan.errors and counts["links_created"] == 4


@pytest.mark.parametrize("name", ["Amelia\r\nBcc: x@evil.example", "Ame\x1blia", "Ame\u2028lia"])
def test_line_breaks_and_control_characters_in_names_are_rejected(name):
    roster = read_roster(roster_csv([["P1", name, "Quayle", *[""] * 9]]), "x.csv")
    assert roster.errors[0].column == "Legal Forename" and "control character" in roster.errors[0].message
    assert not roster.rows


def test_formula_cells_are_stored_as_text_exactly_as_typed(school, office):
    rows = [["P1", "=HYPERLINK(\"http://x\")", "@SUM(A1)", "7", "-7Q", "C1", "+Joan", "Quayle", "", "+44 7700 900001",
             "Mother", "Yes"]]
    run_import(school, roster_csv(rows), actor=office)
    pupil = Pupil.objects.get(school=school)
    assert pupil.first_name == '=HYPERLINK("http://x")' and pupil.last_name == "@SUM(A1)"
    assert Guardian.objects.get(school=school).phone == "+44 7700 900001"


def test_surrounding_spaces_and_tabs_are_stripped():
    roster = read_roster(roster_csv([["  P1 ", "\tAmelia ", "Quayle", *[""] * 9]]), "x.csv")
    assert roster.rows[0].pupil_id == "P1" and roster.rows[0].pupil_first_name == "Amelia"


# Queries --------------------------------------------------------------------------------------------


def generated_rows(pupils: int, prefix: str) -> list[list[str]]:
    return [[f"{prefix}{n}", "Pupil", f"N{n}", "7", f"7{n % 4}", f"{prefix}C{n}", "Carer", f"N{n}",
             f"c{n}@example.net", "", "Mother", "Yes"] for n in range(pupils)]


def count_apply_queries(school, office, pupils: int, batch_size: int) -> int:
    plan = import_plan(school=school, rows=read_roster(roster_csv(generated_rows(pupils, "P")), "r.csv"), full=True)
    with CaptureQueriesContext(connection) as queries:
        import_apply(plan=plan, actor=office, batch_size=batch_size)
    return len(queries)


def test_apply_costs_the_same_queries_per_batch_for_100_and_1000_rows(office):
    # Each size in a fresh school so that every row is a create.
    one_batch = count_apply_queries(SchoolFactory(), office, 100, batch_size=100)
    two_batches = count_apply_queries(SchoolFactory(), office, 200, batch_size=100)
    ten_batches = count_apply_queries(SchoolFactory(), office, 1000, batch_size=100)
    per_batch = two_batches - one_batch
    assert ten_batches == one_batch + 9 * per_batch
    # ...and the same rows in one batch cost what one batch costs, not ten times as much.
    assert count_apply_queries(SchoolFactory(), office, 1000, batch_size=1000) < ten_batches


def test_planning_costs_the_same_queries_for_100_and_1000_rows(school):
    counts = []
    for pupils in (100, 1000):
        roster = read_roster(roster_csv(generated_rows(pupils, "Q")), "r.csv")
        with CaptureQueriesContext(connection) as queries:
            import_plan(school=school, rows=roster, full=True)
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 5


def count_update_queries(office, pupils: int, batch_size: int) -> int:
    school = SchoolFactory()
    rows = generated_rows(pupils, "U")
    run_import(school, roster_csv(rows), full=True, actor=office)
    for n, row in enumerate(rows):
        row[1], row[8], row[11] = "Renamed", f"new{n}@example.net", "No"
    plan = import_plan(school=school, rows=read_roster(roster_csv(rows[1:]), "r.csv"), full=True)
    with CaptureQueriesContext(connection) as queries:
        import_apply(plan=plan, actor=office, batch_size=batch_size)
    return len(queries)


def test_updating_costs_the_same_queries_per_batch_for_100_and_1000_rows(office):
    one, two, ten = (count_update_queries(office, n + 1, batch_size=100) for n in (100, 200, 1000))
    assert ten == one + 9 * (two - one)


def test_a_changed_address_in_the_mis_stops_the_links_sent_to_the_old_one(personas):
    from consent.imports import import_apply, import_plan, read_roster
    from consent.links import guardian_link_issue, guardian_link_resolve
    from tests.consent.consent_setup import purpose_for

    school = personas.school
    header = "pupil_id,first_name,last_name,year,contact_id,contact_first_name,contact_last_name,contact_email\n"

    def run(email, name="Anne"):
        text = header + f"P1,Ada,Byron,Year 2,G1,{name},Byron,{email}\n"
        import_apply(plan=import_plan(school=school, rows=read_roster(text.encode(), "r.csv"), full=False),
                     actor=personas.office)

    run("anne@example.org")
    from consent.models import Guardian

    link = guardian_link_issue(guardian=Guardian.objects.get(mis_id="G1"), purpose=purpose_for(school))
    token = link.rstrip("/").rsplit("/", 1)[-1]
    run("anne@example.org", name="Annie")  # a change that is not the address keeps the link
    assert guardian_link_resolve(token) is not None
    run("ANNE@example.org")  # the same address in other letters
    assert guardian_link_resolve(token) is not None
    run("anne.byron@example.net")
    assert guardian_link_resolve(token) is None
