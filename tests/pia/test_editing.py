"""The PIA editing services: new from the template, step saves, rows, who may author, frozen versions."""

import datetime as dt
import threading
import time

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.utils import timezone

from pia import seed_template
from pia.editing import (
    NotEditable,
    pia_create,
    pia_step_save,
    row_remove,
    row_save,
    rows_reorder,
    rows_save,
    steps_progress,
)
from pia.models import Action, Consultation, DataItem, FrozenError, PiaVersion, PrivacyRisk
from pia.questions import PRINCIPLE_QUESTIONS, SCREENING
from pia.snapshot import number_affected, snapshot_of
from riskassess.matrix import STANDARD_5X5
from riskassess.models import RiskMatrix
from schools.models import AuditEntry, Role
from tests.factories import MembershipFactory, PupilFactory, SchoolFactory, UserFactory
from tests.pia.pia_setup import draft_pia

pytestmark = pytest.mark.django_db

ALL_NO = {q.key: {"answer": "no", "note": ""} for q in SCREENING}


def _from_template(p, *, actor=None, school="default", screening=None) -> PiaVersion:
    return pia_create(organisation=p.organisation, school=p.school if school == "default" else school,
                      actor=actor or p.headteacher, title="Zoom", from_template=True,
                      screening=screening or seed_template.SCREENING)


def _state(version: PiaVersion) -> dict:
    """Everything a version says, to show that a refused edit changed nothing."""
    return snapshot_of(PiaVersion.objects.get(pk=version.pk))


def _submitted(version: PiaVersion, status=PiaVersion.Status.SUBMITTED) -> PiaVersion:
    PiaVersion.objects.filter(pk=version.pk).update(status=status)
    version.refresh_from_db()
    return version


# --- New from the template ---------------------------------------------------------------------------------


def test_template_creates_the_seeds_complete_pia(personas):
    version = _from_template(personas)

    assert version.number == 1 and version.status == PiaVersion.Status.DRAFT
    assert [version.screening[q.key]["answer"] for q in SCREENING] == ["yes"] * 4 + ["no"] * 4
    assert version.risks.count() == 6
    assert version.consultations.count() == 6
    assert version.consultations.filter(kind=Consultation.Kind.INTERNAL).count() == 4
    assert set(version.consultations.values_list("held_on", flat=True)) == {
        dt.date(2020, 5, 19), dt.date(2020, 5, 20), dt.date(2020, 5, 21), dt.date(2020, 5, 22), dt.date(2020, 5, 25)}
    assert all(version.principles[q.key] for q in PRINCIPLE_QUESTIONS)
    assert list(version.data_items.values_list("data_type", flat=True)[:2]) == [
        "Information that identifies you", "Other account data"]
    assert version.data_items.filter(data_type="Metadata").exists()
    assert version.data_items.count() == 7
    assert version.actions.count() == 4
    assert version.aims.startswith("Implement Zoom based learning")
    assert "Zoombombing" in version.use


def test_template_risks_carry_solutions_and_computed_ratings(personas):
    version = _from_template(personas)

    risks = list(version.risks.order_by("position"))
    assert all(risk.solution and risk.result and risk.evaluation for risk in risks)
    assert all(risk.rating == risk.likelihood * risk.severity for risk in risks)
    zoombombing = risks[-1]
    assert "Zoombombing" in zoombombing.privacy_issue
    assert "not specifically a privacy issue" in zoombombing.privacy_issue
    assert "password" in zoombombing.solution and "waiting room" in zoombombing.solution
    assert zoombombing.result == PrivacyRisk.Result.REDUCED
    assert (zoombombing.likelihood, zoombombing.severity, zoombombing.rating) == (2, 3, 6)


def test_template_scores_are_placed_on_a_five_by_five_matrix(personas):
    RiskMatrix.objects.create(organisation=personas.organisation, definition=STANDARD_5X5.as_dict())

    version = _from_template(personas)

    zoombombing = version.risks.order_by("position").last()
    assert (zoombombing.likelihood, zoombombing.severity, zoombombing.rating) == (3, 5, 15)
    assert version.matrix["size"] == 5


def test_template_names_no_people_from_the_seed():
    text = repr([value for name, value in vars(seed_template).items() if name.isupper()])
    assert "Shipley" not in text
    assert "Andrew" not in text


def test_a_blank_pia_keeps_the_screening_and_has_no_rows(personas):
    version = pia_create(organisation=personas.organisation, school=personas.school, actor=personas.office,
                         title="Class blog", from_template=False, screening=ALL_NO)

    assert version.screening == ALL_NO
    assert not version.risks.exists() and not version.data_items.exists() and not version.aims
    entry = AuditEntry.objects.get(action="pia.created")
    assert entry.data["from"] == "blank" and entry.data["screening_recommends_pia"] is False


def test_creating_is_audited_with_what_the_template_filled_in(personas):
    version = _from_template(personas)

    entry = AuditEntry.objects.get(action="pia.created")
    assert entry.object_id == str(version.pia_id) and entry.school_id == personas.school.pk
    assert entry.data["risks"] == 6 and entry.data["consultations"] == 6 and entry.data["screening_recommends_pia"]


def test_an_unanswered_screening_question_is_refused(personas):
    screening = dict(seed_template.SCREENING)
    screening.pop("compelled")

    with pytest.raises(ValidationError, match="Answer yes or no"):
        _from_template(personas, screening=screening)
    assert not PiaVersion.objects.exists()


@pytest.mark.parametrize("persona", ["teacher", "dpo", "siro", "org_admin", "other_headteacher"])
def test_only_the_schools_headteacher_or_office_start_a_pia(personas, persona):
    with pytest.raises(PermissionDenied):
        _from_template(personas, actor=getattr(personas, persona))
    assert not PiaVersion.objects.exists()


def test_the_office_of_any_school_starts_an_organisation_wide_pia(personas):
    version = _from_template(personas, actor=personas.office, school=None)

    assert version.pia.school is None and version.division == personas.organisation.name


def test_a_school_of_another_organisation_is_refused(personas):
    with pytest.raises(ValidationError):
        _from_template(personas, school=personas.other_school)


# --- Steps --------------------------------------------------------------------------------------------------


def test_a_step_save_changes_its_text_and_is_audited(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)

    pia_step_save(version=version, actor=personas.office, step="flows",
                  data={"collection": "  Only with consent.  ", "use": "Lessons only."})

    version.refresh_from_db()
    assert version.use == "Lessons only."
    entry = AuditEntry.objects.get(action="pia.step_saved")
    assert entry.data == {"version": 1, "step": "flows", "changed": ["use"]}


def test_a_step_save_with_an_unknown_field_changes_nothing(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    before = _state(version)

    with pytest.raises(ValidationError, match="Unknown fields"):
        pia_step_save(version=version, actor=personas.headteacher, step="flows",
                      data={"use": "Changed", "number_affected": 3})
    assert _state(version) == before


def test_screening_and_principles_are_saved_by_key(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)

    pia_step_save(version=version, actor=personas.headteacher, step="screening", data={"screening": ALL_NO})
    pia_step_save(version=version, actor=personas.headteacher, step="principles",
                  data={"principles": {"p2_new_purposes": "None foreseen."}})

    version.refresh_from_db()
    assert version.screening == ALL_NO
    assert version.principles["p2_new_purposes"] == "None foreseen." and version.principles["p1_purpose"] == ""


def test_a_review_date_in_the_past_is_refused(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)

    with time_machine.travel(dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)), pytest.raises(ValidationError):
        pia_step_save(version=version, actor=personas.headteacher, step="details",
                      data={"review_on": dt.date(2026, 5, 1)})


def test_the_title_is_changed_on_the_details_step(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)

    pia_step_save(version=version, actor=personas.headteacher, step="details",
                  data={"title": "Zoom (2026)", "lead_officer": "Headteacher"})

    version.refresh_from_db()
    assert version.pia.title == "Zoom (2026)" and version.lead_officer == "Headteacher"


@pytest.mark.parametrize("persona", ["teacher", "dpo", "siro", "org_admin", "other_headteacher"])
def test_only_authors_edit_a_step(personas, persona):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)

    with pytest.raises(PermissionDenied):
        pia_step_save(version=version, actor=getattr(personas, persona), step="need", data={"aims": "x"})
    version.refresh_from_db()
    assert version.aims != "x"


# --- Rows ---------------------------------------------------------------------------------------------------


def test_a_typed_rating_is_ignored(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)

    risk = row_save(version=version, actor=personas.headteacher, table="risks",
                    values={"privacy_issue": "Recordings kept", "likelihood": 3, "severity": 3, "rating": 1})

    assert risk.rating == 9
    changed = row_save(version=version, actor=personas.headteacher, table="risks", row=risk,
                       values={"severity": 1, "rating": 9})
    assert changed.rating == 3


def test_a_score_outside_the_matrix_changes_nothing(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    before = _state(version)

    with pytest.raises(ValidationError, match="from 1 to 3"):
        row_save(version=version, actor=personas.headteacher, table="risks",
                 values={"privacy_issue": "x", "likelihood": 4, "severity": 1})
    assert _state(version) == before


def test_a_table_is_saved_whole_added_changed_removed_and_reordered(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    first = version.data_items.get()
    second = row_save(version=version, actor=personas.headteacher, table="data_items",
                      values={"data_type": "Metadata"})
    seq = AuditEntry.objects.order_by("-seq").values_list("seq", flat=True).first()

    counts = rows_save(version=version, actor=personas.office, table="data_items", rows=[
        {"id": first.pk, "delete": True},
        {"id": None, "data_type": "Approximate location", "examples": "Nearest city"},
        {"id": second.pk, "data_type": "Metadata", "examples": "Join and leave times"},
    ])

    assert counts == {"saved": 2, "removed": 1}
    assert list(version.data_items.order_by("position").values_list("data_type", flat=True)) == [
        "Approximate location", "Metadata"]
    actions = list(AuditEntry.objects.filter(seq__gt=seq).order_by("seq").values_list("action", flat=True))
    assert actions == ["pia.row_removed", "pia.row_saved", "pia.row_saved"]


def test_reordering_rows_is_audited(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    first = version.actions.get()
    second = row_save(version=version, actor=personas.headteacher, table="actions",
                      values={"action": "Train staff", "due_note": "Immediately"})

    rows_reorder(version=version, actor=personas.headteacher, table="actions", order=[second.pk, first.pk])

    assert list(version.actions.order_by("position").values_list("pk", flat=True)) == [second.pk, first.pk]
    assert AuditEntry.objects.get(action="pia.rows_reordered").data["order"] == [second.pk, first.pk]


def test_one_bad_row_saves_none_of_the_table(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    item = version.data_items.get()
    before = _state(version)

    with pytest.raises(ValidationError) as error:
        rows_save(version=version, actor=personas.headteacher, table="consultations", rows=[
            *({"id": c.pk, "description": "Changed"} for c in version.consultations.all()),
            {"id": None, "kind": "internal", "held_on": None, "description": "Governors' meeting"},
        ])
    assert "Consultation 2" in " ".join(error.value.messages)
    assert _state(version) == before
    assert DataItem.objects.get(pk=item.pk).data_type == item.data_type


def test_rows_of_another_version_are_refused(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    other = draft_pia(personas.organisation, personas.headteacher, school=personas.school, title="Teams")
    foreign = other.data_items.get()

    with pytest.raises(ValidationError, match="changed meanwhile"):
        rows_save(version=version, actor=personas.headteacher, table="data_items",
                  rows=[{"id": version.data_items.get().pk}, {"id": foreign.pk, "data_type": "Hijacked"}])
    assert DataItem.objects.get(pk=foreign.pk).data_type != "Hijacked"


def test_a_table_missing_a_row_someone_added_meanwhile_is_refused(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    seen = version.actions.get()
    row_save(version=version, actor=personas.office, table="actions", values={"action": "Added meanwhile"})

    with pytest.raises(ValidationError, match="changed meanwhile"):
        rows_save(version=version, actor=personas.headteacher, table="actions", rows=[{"id": seen.pk}])
    assert version.actions.count() == 2


def test_solutions_change_only_the_risks_step_four_fields(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    risk = version.risks.get()

    rows_save(version=version, actor=personas.headteacher, table="solutions",
              rows=[{"id": risk.pk, "solution": "Waiting room", "result": "reduced", "evaluation": "Proportionate"}])

    risk.refresh_from_db()
    assert (risk.solution, risk.result, risk.privacy_issue) == ("Waiting room", "reduced",
                                                               "Disclosure of personal information")
    with pytest.raises(ValidationError):
        rows_save(version=version, actor=personas.headteacher, table="solutions",
                  rows=[{"id": risk.pk, "privacy_issue": "Changed"}])
    with pytest.raises(ValidationError):
        rows_save(version=version, actor=personas.headteacher, table="solutions",
                  rows=[{"id": None, "solution": "A new risk?"}])


def test_the_person_reminded_of_an_action_is_staff_of_the_organisation(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)

    with pytest.raises(ValidationError, match="member of staff of the organisation"):
        row_save(version=version, actor=personas.headteacher, table="actions",
                 values={"action": "Update notice", "responsible_user": personas.other_teacher})
    action = row_save(version=version, actor=personas.headteacher, table="actions",
                      values={"action": "Update notice", "responsible_user": personas.office})
    assert action.responsible_user == personas.office


def test_a_removed_row_is_gone_and_audited(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    risk = version.risks.get()

    row_remove(version=version, actor=personas.headteacher, table="risks", row=risk)

    assert not PrivacyRisk.objects.filter(pk=risk.pk).exists()
    assert AuditEntry.objects.get(action="pia.row_removed").data == {"version": 1, "table": "risks",
                                                                       "row_id": risk.pk}


# --- Frozen versions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["submitted", "advised", "decided", "signed", "superseded"])
def test_a_version_out_of_the_authors_hands_refuses_every_edit(personas, status):
    version = _submitted(draft_pia(personas.organisation, personas.headteacher, school=personas.school), status)
    before = _state(version)
    risk, action = version.risks.get(), version.actions.get()
    attempts = [
        lambda: pia_step_save(version=version, actor=personas.headteacher, step="need", data={"aims": "Changed"}),
        lambda: pia_step_save(version=version, actor=personas.headteacher, step="screening", data=ALL_NO),
        lambda: pia_step_save(version=version, actor=personas.headteacher, step="details", data={"title": "New"}),
        lambda: row_save(version=version, actor=personas.headteacher, table="risks", row=risk,
                         values={"likelihood": 3}),
        lambda: row_save(version=version, actor=personas.headteacher, table="actions", values={"action": "New"}),
        lambda: row_remove(version=version, actor=personas.headteacher, table="actions", row=action),
        lambda: rows_reorder(version=version, actor=personas.headteacher, table="actions", order=[action.pk]),
        lambda: rows_save(version=version, actor=personas.headteacher, table="solutions",
                          rows=[{"id": risk.pk, "solution": "New"}]),
    ]
    for attempt in attempts:
        with pytest.raises(NotEditable):
            attempt()
    assert _state(version) == before
    # The models refuse too, whatever path a write takes.
    with pytest.raises(FrozenError):
        Action.objects.filter(pk=action.pk).update(action="Sneaked in")


def test_a_version_returned_with_changes_requested_is_editable_again(personas):
    version = _submitted(draft_pia(personas.organisation, personas.headteacher, school=personas.school),
                         PiaVersion.Status.CHANGES_REQUESTED)

    pia_step_save(version=version, actor=personas.headteacher, step="need", data={"aims": "Revised aims"})

    version.refresh_from_db()
    assert version.aims == "Revised aims"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_edit_waits_for_a_submit_holding_the_version_and_then_finds_it_frozen(personas):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL row locks")
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    locked, results = threading.Event(), {}

    def submit():
        try:
            with transaction.atomic():
                PiaVersion.objects.select_for_update().filter(pk=version.pk).update(status="submitted")
                locked.set()
                time.sleep(0.5)
        finally:
            connection.close()

    def edit():
        locked.wait(5)
        try:
            pia_step_save(version=version, actor=personas.headteacher, step="need", data={"aims": "Late edit"})
            results["edit"] = "saved"
        except NotEditable:
            results["edit"] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=submit), threading.Thread(target=edit)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert results == {"edit": "refused"}
    assert PiaVersion.objects.get(pk=version.pk).aims != "Late edit"


# --- Number affected and progress ---------------------------------------------------------------------------


def test_number_affected_counts_only_current_pupils_of_the_covered_schools(personas):
    sister = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School")
    PupilFactory.create_batch(3, school=personas.school)
    PupilFactory(school=personas.school, left_on=dt.date(2026, 1, 1))
    PupilFactory(school=personas.school, archived_at=timezone.now())
    PupilFactory.create_batch(2, school=sister)
    PupilFactory.create_batch(4, school=personas.other_school)
    school_pia = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    federation_pia = draft_pia(personas.organisation, personas.headteacher, title="Federation")

    assert number_affected(school_pia).total == 3
    affected = number_affected(federation_pia)
    assert affected.total == 5
    assert str(affected) == "5 children (2 at Dhoon Test School; 3 at Laxey Test School)"


def test_progress_shows_which_steps_have_their_answers(personas):
    version = _from_template(personas)
    done = {state.key: state.complete for state in steps_progress(version)}

    assert done == {"screening": True, "need": True, "flows": True, "consultation": True, "risks": True,
                    "solutions": True, "signoff": False, "actions": True, "principles": True}
    blank = pia_create(organisation=personas.organisation, school=personas.school, actor=personas.headteacher,
                       title="Blank", from_template=False, screening=ALL_NO)
    assert [state.key for state in steps_progress(blank) if state.complete] == ["screening"]


def test_an_organisation_wide_pia_is_authored_from_any_school_of_the_organisation(personas):
    sister = SchoolFactory(organisation=personas.organisation)
    sister_office = UserFactory()
    MembershipFactory(user=sister_office, role=Role.OFFICE, school=sister, organisation=personas.organisation)
    version = draft_pia(personas.organisation, personas.headteacher)

    pia_step_save(version=version, actor=sister_office, step="need", data={"aims": "From the sister school"})

    version.refresh_from_db()
    assert version.aims == "From the sister school"


def test_a_step_whose_table_fails_keeps_its_texts_unchanged_too(personas):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    before = _state(version)
    item = version.data_items.get()

    with pytest.raises(ValidationError, match="Data inventory row 2"):
        pia_step_save(version=version, actor=personas.headteacher, step="need", data={
            "aims": "New aims", "rows": [{"id": item.pk}, {"id": None, "data_type": ""}],
        })
    assert _state(version) == before
    assert not AuditEntry.objects.filter(action="pia.step_saved").exists()


@pytest.mark.parametrize(("step", "data"), [
    ("details", {"title": "Zoom", "status": "signed"}),
    ("screening", {**ALL_NO, "extra_question": {"answer": "yes"}}),
    ("principles", {"p1_purpose": "Yes.", "p9_invented": "No."}),
    ("need", {"aims": "Aims", "created_by": 1}),
])
def test_a_step_refuses_fields_it_does_not_have_and_changes_nothing(personas, step, data):
    version = draft_pia(personas.organisation, personas.headteacher, school=personas.school)
    before = _state(version)

    with pytest.raises(ValidationError, match="Unknown"):
        pia_step_save(version=version, actor=personas.headteacher, step=step, data=data)
    assert _state(version) == before
