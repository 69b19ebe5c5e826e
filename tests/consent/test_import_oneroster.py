"""Importing a OneRoster 1.2 CSV bundle (a zip of users, classes, enrollments and orgs)."""

import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.imports import ImportFileError, import_apply, import_plan, read_roster
from consent.models import Group, Guardianship, Pupil
from tests.factories import SchoolFactory, UserFactory

pytestmark = pytest.mark.django_db

BUNDLE = Path(__file__).parent / "data" / "oneroster"


def bundle(**replace: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(BUNDLE.glob("*.csv")):
            if replace.get(path.stem) != "":
                archive.writestr(path.name, replace.get(path.stem) or path.read_text())
    return out.getvalue()


def test_a_oneroster_bundle_imports_guardians_through_agent_sourced_ids():
    school = SchoolFactory()
    roster = read_roster(bundle(), "oneroster.zip")
    assert not roster.errors
    import_apply(plan=import_plan(school=school, rows=roster, full=True), actor=UserFactory())

    links = set(Guardianship.objects.filter(pupil__school=school).values_list(
        "pupil__mis_id", "guardian__mis_id", "relationship", "parental_responsibility"))
    # stu-1 names its agents; par-1 and rel-3 name their children: both directions count.
    assert links == {("stu-1", "par-1", "other", True), ("stu-1", "par-2", "guardian", True),
                     ("stu-2", "par-1", "other", True), ("stu-3", "rel-3", "other", False)}
    assert set(Pupil.objects.filter(school=school).values_list("mis_id", flat=True)) == {"stu-1", "stu-2", "stu-3"}
    assert set(Group.objects.get(school=school, mis_id="cls-9k").pupils.values_list("mis_id", flat=True)) == {
        "stu-2", "stu-3"}
    assert Group.objects.get(school=school, name="Year 9").kind == Group.Kind.YEAR


def test_the_same_bundle_twice_changes_nothing():
    school = SchoolFactory()
    import_apply(plan=import_plan(school=school, rows=read_roster(bundle(), "b.zip"), full=True), actor=None)
    plan = import_plan(school=school, rows=read_roster(bundle(), "b.zip"), full=True)
    assert not plan.changes_anything


def test_a_bundle_without_one_of_its_files_is_refused_by_name():
    with pytest.raises(ImportFileError, match=r"no enrollments\.csv"):
        read_roster(bundle(enrollments=""), "b.zip")


def test_a_bad_email_in_users_csv_is_reported_with_its_file_and_row():
    users = (BUNDLE / "users.csv").read_text().replace("tom@example.net", "tom-at-example")
    roster = read_roster(bundle(users=users), "b.zip")
    assert [str(e) for e in roster.errors] == ["users.csv row 6, email: “tom-at-example” is not an email address"]


def test_a_zip_that_is_not_a_zip_is_refused():
    with pytest.raises(ImportFileError, match="not a zip archive"):
        read_roster(b"sourcedId,role\r\n", "b.zip")


@settings(max_examples=100, deadline=None)
@given(users=st.text(alphabet="sourcedId,rolestudentparentgivenNamefamilyNameagentSourcedIds\"\r\n=\x00", max_size=300))
def test_a_bundle_with_any_users_csv_reads_or_fails_with_a_message(users):
    try:
        roster = read_roster(bundle(users=users or "x"), "b.zip")
    except ImportFileError as error:
        assert str(error)
    else:
        assert all(e.file for e in roster.errors)
