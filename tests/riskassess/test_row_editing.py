"""Editing a draft's rows in one table: add, change, remove and reorder in one submit, saved together through
the services; errors per row and field with nothing saved; conflicts with someone else's changes."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from riskassess.editing import RowChange, RowErrors, hazard_rows_save
from riskassess.models import AssessmentVersion, Hazard
from riskassess.services import (
    assessment_create_from_template,
    hazard_remove,
    hazard_save,
    version_approve,
    version_submit,
)
from schools.models import AuditEntry, Role

from ..factories import MembershipFactory, SchoolFactory, TOTPDeviceFactory

pytestmark = pytest.mark.django_db

Status = AssessmentVersion.Status


def _draft(school, actor, **kwargs) -> AssessmentVersion:
    assessment = assessment_create_from_template(
        school=school, actor=actor, assessor_name="M Kelly", assessed_on=dt.date(2026, 1, 5),
        review_on=dt.date(2027, 1, 5), **kwargs)
    return assessment.versions.get()


def _url(version) -> str:
    return reverse("riskassess:version-rows", kwargs={"pk": version.pk})


def _ids(version) -> list[int]:
    return list(version.hazards.order_by("position", "id").values_list("pk", flat=True))


def _page_data(client, version) -> dict:
    """What the page posts when saved untouched: every field of every form as the browser sends it."""
    response = client.get(_url(version))
    assert response.status_code == 200
    formset = response.context["formset"]
    data = {f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()}
    for form in formset.forms:
        for name in form.fields:
            value = form[name].value()
            if name == "DELETE":
                continue  # an unticked box is not posted
            if value is None:
                value = ""
            elif hasattr(value, "isoformat"):
                value = value.isoformat()
            data[form.add_prefix(name)] = str(value)
    data["seen_status"] = version.status
    return data


def _row(data: dict, index: int, **values) -> dict:
    data.update({f"rows-{index}-{name}": str(value) for name, value in values.items()})
    return data


NEW_ROW = {"activity_element": "Breakout rooms", "hazard": "Pupils alone in a breakout room",
           "who_affected": "Pupils", "likelihood": 2, "severity": 3, "controls": "Breakout rooms off"}


def test_the_page_offers_every_row_and_a_blank_one_with_the_matrix_bands(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    response = client_for(personas.headteacher).get(_url(version))
    formset = response.context["formset"]
    assert len(formset.forms) == 7 and [f.is_new for f in formset.forms].count(True) == 1
    html = response.content.decode()
    assert "Pupils sharing inappropriate content" in html
    assert 'data-bands="[{&quot;upper&quot;: 2, &quot;key&quot;: &quot;low&quot;' in html
    assert 'id="risk-row-template"' in html and "rows-__prefix__-hazard" in html
    assert 'risk-band risk-band-medium">4 Medium' in html  # the server's preview of each saved row
    assert 'id="new-row"' in html and "Save and add another row" in html


def test_saving_the_page_untouched_saves_nothing(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    before = AuditEntry.objects.count()
    response = client.post(_url(version), _page_data(client, version), follow=True)
    assert "Nothing to save" in response.content.decode()
    assert AuditEntry.objects.count() == before


def test_changed_scores_are_rated_by_the_server_and_a_typed_rating_is_ignored(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 0, likelihood=3, severity=3, residual_likelihood=1,
                residual_severity=2, rating=1, residual_rating=1)
    response = client.post(_url(version), data)
    assert response.status_code == 302
    assert response["Location"].endswith(reverse("riskassess:assessment", kwargs={"pk": version.assessment_id})
                                         + "#hazards")
    first = version.hazards.order_by("position").first()
    assert (first.rating, first.residual_rating) == (9, 2)
    # Only the row that changed is saved (and audited).
    assert AuditEntry.objects.filter(action="risk.hazard_saved").count() == 1


def test_add_remove_and_reorder_in_one_submit(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    ids = _ids(version)
    client = client_for(personas.headteacher)
    data = _page_data(client, version)
    _row(data, 6, ORDER=1, **NEW_ROW)  # the blank row, put first
    data["rows-1-DELETE"] = "on"  # remove the second row
    _row(data, 0, ORDER=4)  # the first row moves after the third
    for index, order in ((2, 2), (3, 5), (4, 6), (5, 7)):
        _row(data, index, ORDER=order)
    response = client.post(_url(version), data, follow=True)
    assert "Saved: 1 row added, 1 row removed, the order saved." in response.content.decode()
    rows = list(version.hazards.order_by("position"))
    assert [h.pk for h in rows[1:]] == [ids[2], ids[0], ids[3], ids[4], ids[5]]
    assert (rows[0].hazard, rows[0].rating) == ("Pupils alone in a breakout room", 6)
    assert not Hazard.objects.filter(pk=ids[1]).exists()
    actions = list(AuditEntry.objects.filter(action__startswith="risk.hazard").values_list("action", flat=True))
    assert sorted(actions) == ["risk.hazard_removed", "risk.hazard_saved", "risk.hazards_reordered"]


def test_a_row_given_a_taken_position_goes_before_the_row_that_kept_it(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    ids = _ids(version)
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 6, ORDER=1, **NEW_ROW)  # without JavaScript: "1" typed
    _row(data, 4, ORDER=2)  # the fifth row moved to second place; the second keeps its number 2
    client.post(_url(version), data)
    new = version.hazards.get(hazard=NEW_ROW["hazard"]).pk
    assert _ids(version) == [new, ids[0], ids[4], ids[1], ids[2], ids[3], ids[5]]


def test_a_blank_row_that_was_only_renumbered_is_not_a_row(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    response = client.post(_url(version), _row(_page_data(client, version), 6, ORDER=7))
    assert response.status_code == 302 and version.hazards.count() == 6


def test_save_and_add_another_row_comes_back_to_a_blank_row(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 6, **NEW_ROW)
    data["then"] = "add"
    response = client.post(_url(version), data)
    assert response["Location"] == _url(version) + "#new-row"
    assert version.hazards.count() == 7 and version.hazards.order_by("position").last().hazard == NEW_ROW["hazard"]
    assert 'id="new-row"' in client.get(response["Location"]).content.decode()


def test_an_invalid_row_saves_nothing_and_says_which_row_and_field(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    ids = _ids(version)
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 0, likelihood=3)  # a good change...
    _row(data, 2, hazard="")  # ...and a row without its hazard
    _row(data, 3, residual_likelihood=2)  # one residual score without the other
    _row(data, 6, activity_element="Breakout rooms")  # a new row without hazard or scores
    data["rows-4-DELETE"] = "on"
    response = client.post(_url(version), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing was saved: 3 rows need attention" in html
    summary = response.context["summary"]
    assert [row["number"] for row in summary] == [3, 4, 7]
    assert summary[0]["items"][0]["anchor"] == "id_rows-2-hazard"
    assert 'aria-describedby="id_rows-2-hazard-error"' in html and 'id="id_rows-2-hazard-error"' in html
    assert "Give both residual scores" in html
    assert set(response.context["formset"].forms[6].errors) == {"hazard", "likelihood", "severity"}
    assert _ids(version) == ids
    assert version.hazards.order_by("position").first().likelihood == 2
    assert not AuditEntry.objects.filter(action__startswith="risk.hazard").exists()


def test_a_score_off_the_matrix_is_an_error_of_its_field(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    response = client.post(_url(version), _row(_page_data(client, version), 1, severity=7))
    assert response.status_code == 200
    assert set(response.context["formset"].forms[1].errors) == {"severity"}


def test_the_server_refusing_a_row_rolls_back_every_other_row(personas):
    version = _draft(personas.school, personas.headteacher)
    first, second = version.hazards.order_by("position")[:2]
    with pytest.raises(RowErrors) as raised:
        hazard_rows_save(version=version, actor=personas.headteacher, rows=[
            RowChange(hazard_id=first.pk, values={"likelihood": 3}, form_index=0),
            RowChange(hazard_id=second.pk, delete=True, form_index=1),
            RowChange(hazard_id=None, values={**NEW_ROW, "likelihood": 9}, form_index=6),
        ])
    assert set(raised.value.rows) == {6}
    first.refresh_from_db()
    assert first.likelihood == 2 and Hazard.objects.filter(pk=second.pk).exists()
    assert not AuditEntry.objects.filter(action__startswith="risk.hazard").exists()


def test_an_approval_meanwhile_is_a_message_and_nothing_is_saved(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 0, likelihood=3)
    version_submit(version=version, actor=personas.headteacher)
    version_approve(version=version, actor=personas.headteacher)
    response = client.post(_url(version), data, follow=True)
    assert "approved while you were editing: your changes were not saved" in response.content.decode()
    version.refresh_from_db()
    assert version.hash_verifies() and version.hazards.order_by("position").first().likelihood == 2


def test_a_submission_meanwhile_still_saves_and_says_so(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 0, likelihood=3)
    version_submit(version=version, actor=personas.headteacher)
    response = client.post(_url(version), data, follow=True)
    assert "submitted for approval meanwhile: your changes are part of it" in response.content.decode()
    assert version.hazards.order_by("position").first().rating == 6


def test_a_row_removed_by_someone_else_meanwhile_is_a_message_not_an_error_page(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 0, likelihood=3)
    hazard_remove(hazard=version.hazards.order_by("position")[1], actor=personas.headteacher)
    response = client.post(_url(version), data)
    assert response.status_code == 200
    assert "changed while you were editing" in response.content.decode()
    assert version.hazards.order_by("position").first().likelihood == 2


def test_removing_a_row_someone_else_removed_already_is_no_conflict(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 0, likelihood=3)
    data["rows-1-DELETE"] = "on"
    hazard_remove(hazard=version.hazards.order_by("position")[1], actor=personas.headteacher)
    response = client.post(_url(version), data)
    assert response.status_code == 302
    assert version.hazards.count() == 5 and version.hazards.order_by("position").first().likelihood == 3


def test_the_service_refuses_a_row_removed_meanwhile_under_its_lock(personas):
    from django.core.exceptions import ValidationError

    version = _draft(personas.school, personas.headteacher)
    first = version.hazards.order_by("position").first()
    hazard_remove(hazard=first, actor=personas.headteacher)
    with pytest.raises(ValidationError, match="Someone else removed a row"):
        hazard_rows_save(version=version, actor=personas.headteacher,
                         rows=[RowChange(hazard_id=first.pk, values={"likelihood": 3}, form_index=0)])


def test_rows_someone_else_added_meanwhile_are_kept_at_the_end(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    ids = _ids(version)
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 0, ORDER=2)
    _row(data, 1, ORDER=1)
    theirs = hazard_save(version=version, actor=personas.headteacher, **NEW_ROW)
    response = client.post(_url(version), data, follow=True)
    assert "1 row that someone else added meanwhile stay at the end" in response.content.decode()
    assert _ids(version) == [ids[1], ids[0], *ids[2:], theirs.pk]


def test_another_versions_row_id_changes_nothing(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    theirs = _draft(personas.other_school, personas.other_headteacher).hazards.first()
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 0, id=theirs.pk, hazard="Hijacked")
    response = client.post(_url(version), data)
    assert response.status_code == 200 and "Nothing was saved" in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.hazard != "Hijacked"


@pytest.mark.parametrize("tamper", ["no management form", "too many forms"])
def test_a_tampered_post_is_a_message_not_a_server_error(client_for, personas, tamper):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    data = _page_data(client, version)
    if tamper == "no management form":
        data = {k: v for k, v in data.items() if "FORMS" not in k}
    else:
        data["rows-TOTAL_FORMS"] = "100000"
    response = client.post(_url(version), data)
    assert response.status_code == 200 and "Nothing was saved" in response.content.decode()
    assert version.hazards.count() == 6


def test_an_approved_version_has_no_editing_table(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    version_submit(version=version, actor=personas.headteacher)
    version_approve(version=version, actor=personas.headteacher)
    client = client_for(personas.headteacher)
    assert "never changes" in client.get(_url(version), follow=True).content.decode()
    assert "your changes were not saved" in client.post(_url(version), follow=True).content.decode()
    version.refresh_from_db()
    assert version.hazards.count() == 6 and version.hash_verifies()


def test_the_assessment_page_links_editors_to_the_table_and_readers_not(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    page = reverse("riskassess:assessment", kwargs={"pk": version.assessment_id})
    assert _url(version) in client_for(personas.headteacher).get(page).content.decode()
    assert _url(version) not in client_for(personas.teacher).get(page).content.decode()


def test_a_headteacher_of_one_school_among_several_reads_but_does_not_edit_an_organisation_wide_one(
    client_for, personas
):
    SchoolFactory(organisation=personas.organisation, name="Dhoon Test School")
    version = _draft(None, personas.org_admin, organisation=personas.organisation)
    page = reverse("riskassess:assessment", kwargs={"pk": version.assessment_id})
    client = client_for(personas.headteacher)
    response = client.get(page)
    assert response.status_code == 200 and _url(version) not in response.content.decode()
    assert client.get(_url(version)).status_code == 403
    with pytest.raises(PermissionDenied):
        hazard_rows_save(version=version, actor=personas.headteacher, rows=[])
    assert client_for(personas.org_admin).get(_url(version)).status_code == 200


def test_a_headteacher_of_every_school_edits_an_organisation_wide_one(client_for, personas):
    version = _draft(None, personas.org_admin, organisation=personas.organisation)
    assert client_for(personas.headteacher).get(_url(version)).status_code == 200


def test_a_headteacher_elsewhere_in_the_organisation_cannot_open_our_table(client_for, personas):
    second = SchoolFactory(organisation=personas.organisation)
    head = MembershipFactory(school=second, organisation=personas.organisation, role=Role.HEADTEACHER).user
    TOTPDeviceFactory(user=head)
    version = _draft(personas.school, personas.headteacher)
    assert client_for(head).get(_url(version)).status_code == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_save_waiting_on_an_approval_finds_the_version_frozen_and_changes_nothing(personas):
    import threading
    import time

    from django.core.exceptions import ValidationError
    from django.db import connection, transaction

    version = _draft(personas.school, personas.headteacher)
    version_submit(version=version, actor=personas.headteacher)
    first = version.hazards.order_by("position").first()
    approving = threading.Event()
    outcome: list = []

    def approve():
        try:
            with transaction.atomic():  # the approval's locks are held until this commits
                version_approve(version=version, actor=personas.headteacher)
                approving.set()
                time.sleep(0.5)
        finally:
            connection.close()

    def save():
        try:
            approving.wait(timeout=10)
            hazard_rows_save(version=version, actor=personas.headteacher,
                             rows=[RowChange(hazard_id=first.pk, values={"likelihood": 3}, form_index=0)])
            outcome.append("saved")
        except ValidationError as error:
            outcome.append(" ".join(error.messages))
        finally:
            connection.close()

    threads = [threading.Thread(target=approve), threading.Thread(target=save)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcome == ["This version is approved and never changes: start a new version to edit."]
    version.refresh_from_db()
    assert version.status == Status.APPROVED and version.hash_verifies()
    first.refresh_from_db()
    assert first.likelihood == 2


def test_the_table_takes_as_many_queries_for_six_rows_as_for_twenty(client_for, personas,
                                                                   django_assert_max_num_queries):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    with django_assert_max_num_queries(40) as few:
        client.get(_url(version))
    for _ in range(14):
        hazard_save(version=version, actor=personas.headteacher, **NEW_ROW)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(_url(version))
    assert len(response.context["formset"].forms) == 21
    head = personas.headteacher
    option = f'<option value="{head.pk}">{head.get_full_name() or head.get_username()}</option>'
    assert response.content.decode().count(option) == 22  # every row's owner list, and the new row's


def test_an_action_owner_is_one_of_the_schools_staff(client_for, personas):
    version = _draft(personas.school, personas.headteacher)
    client = client_for(personas.headteacher)
    data = _row(_page_data(client, version), 0, action_owner=personas.other_teacher.pk)
    response = client.post(_url(version), data)
    assert response.status_code == 200
    assert set(response.context["formset"].forms[0].errors) == {"action_owner"}
    data = _row(data, 0, action_owner=personas.teacher.pk, action_due_on="2026-03-01")
    assert client.post(_url(version), data).status_code == 302
    first = version.hazards.order_by("position").first()
    assert (first.action_owner, first.action_due_on) == (personas.teacher, dt.date(2026, 3, 1))
