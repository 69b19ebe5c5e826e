"""Property: whatever the names and however the rows repeat, an import stores exactly what the file
says, and importing the same file again changes nothing."""

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.imports import ImportFileError, import_apply, import_plan, read_roster
from consent.imports.columns import COLUMNS
from consent.models import Guardian, Pupil
from tests.factories import SchoolFactory

pytestmark = pytest.mark.django_db

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\ufeff"),
    min_size=1, max_size=20,
).map(str.strip).filter(bool)
people = st.dictionaries(st.sampled_from([f"{n}" for n in range(8)]), names, min_size=1)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pupils=people, contacts=people, data=st.data())
def test_an_import_stores_names_as_typed_and_a_second_import_changes_nothing(pupils, contacts, data):
    pairs = data.draw(st.lists(st.tuples(st.sampled_from(sorted(pupils)), st.sampled_from(sorted(contacts))),
                               min_size=1, max_size=12))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([column.label for column in COLUMNS])
    for pupil, contact in pairs:
        writer.writerow([f"P{pupil}", pupils[pupil], pupils[pupil], "", "", f"C{contact}", contacts[contact],
                         contacts[contact], "", "", "", ""])
    file = out.getvalue().encode()
    school = SchoolFactory()

    first = import_plan(school=school, rows=read_roster(file, "r.csv"), full=True)
    assert not first.errors
    import_apply(plan=first, actor=None)
    second = import_plan(school=school, rows=read_roster(file, "r.csv"), full=True)

    assert not second.changes_anything
    stored = dict(Pupil.objects.filter(school=school).values_list("mis_id", "first_name"))
    assert stored == {f"P{p}": pupils[p] for p, _ in pairs}
    assert dict(Guardian.objects.filter(school=school).values_list("mis_id", "last_name")) == {
        f"C{c}": contacts[c] for _, c in pairs}


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(
    st.binary(max_size=400),
    st.text(max_size=300).map(lambda text: text.encode("utf-8")),
    st.text(alphabet=",\"\r\n=;\t abc\x00\u2028", max_size=300).map(lambda text: ("UPN,Forename,Surname,Contact ID\r\n"
                                                                                 + text).encode()),
), filename=st.sampled_from(["roster.csv", "oneroster.zip"]))
def test_any_upload_either_reads_or_fails_with_a_message_never_an_exception(data, filename):
    try:
        roster = read_roster(data, filename)
    except ImportFileError as error:
        assert str(error)
    else:
        assert all(error.row >= 1 and error.message for error in roster.errors)
