"""The sign-off's separation of duties and its edges: three different people for the three signatures, every
author of a version kept from deciding on it, an in-date review date, bounded texts, opening the advice page
changing nothing, and a refused decision leaving the confirmation for a retry."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.reauth import SESSION_KEY
from pia import editing, services
from pia.models import Decision, PiaVersion, SeenSnapshot
from schools.models import Role
from tests.factories import MembershipFactory, TOTPDeviceFactory
from tests.pia.matrix_workflow import at_stage
from tests.pia.pia_setup import draft_pia
from tests.pia.test_workflow_pages import as_user, url

pytestmark = pytest.mark.django_db
Status = PiaVersion.Status
LIMIT = services.TEXT_LIMIT


def _also(user, personas, *roles):
    TOTPDeviceFactory(user=user)
    for role in roles:
        if role == Role.HEADTEACHER:
            MembershipFactory(user=user, role=role, school=personas.school, organisation=personas.organisation)
        else:
            MembershipFactory(user=user, role=role, school=None, organisation=personas.organisation)
    return user


# --- 1. Three signatures, three people ----------------------------------------------------------------------


def test_a_dpo_who_is_also_siro_cannot_sign_the_version_they_advised_on(personas):
    _also(personas.dpo, personas, Role.SIRO)
    version = at_stage(personas, Status.DECIDED)
    with pytest.raises(PermissionDenied, match="three different people"):
        services.version_sign(version=version, actor=personas.dpo)
    services.version_sign(version=version, actor=personas.siro)


def test_a_headteacher_who_is_also_dpo_cannot_decide_on_the_version_they_advised_on(personas):
    _also(personas.headteacher, personas, Role.DPO)
    version = at_stage(personas, Status.SUBMITTED)
    services.version_advise(version=version, actor=personas.headteacher, advice="Proceed.")
    with pytest.raises(PermissionDenied, match="three different people"):
        services.version_decide(version=version, actor=personas.headteacher, accept=True)
    assert version.decisions.filter(kind=Decision.Kind.DPO_ADVICE).count() == 1


def test_a_controller_who_is_also_siro_cannot_sign_what_they_decided(personas):
    _also(personas.headteacher, personas, Role.SIRO)
    version = at_stage(personas, Status.DECIDED)
    with pytest.raises(PermissionDenied, match="three different people"):
        services.version_sign(version=version, actor=personas.headteacher)


def test_a_dpo_who_asked_for_changes_advises_on_the_resubmitted_version(personas):
    version = at_stage(personas, Status.SUBMITTED)
    services.version_request_changes(version=version, actor=personas.dpo, comments="Add the deletion date.")
    services.version_submit(version=version, actor=personas.office)
    services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")
    version.refresh_from_db()
    assert version.status == Status.ADVISED


def test_a_dpo_who_asked_for_changes_cannot_then_decide_as_controller(personas):
    _also(personas.dpo, personas, Role.HEADTEACHER)
    second_dpo = _also(MembershipFactory(role=Role.TEACHER, school=personas.school,
                                         organisation=personas.organisation).user, personas, Role.DPO)
    version = at_stage(personas, Status.SUBMITTED)
    services.version_request_changes(version=version, actor=personas.dpo, comments="Add the deletion date.")
    services.version_submit(version=version, actor=personas.office)
    services.version_advise(version=version, actor=second_dpo, advice="Proceed.")
    with pytest.raises(PermissionDenied, match="three different people"):
        services.version_decide(version=version, actor=personas.dpo, accept=True)


def test_the_decision_page_and_the_panel_refuse_a_second_signature_by_the_same_account(client, personas):
    _also(personas.dpo, personas, Role.SIRO)
    version = at_stage(personas, Status.DECIDED)
    as_user(client, personas.dpo)
    panel = client.get(reverse("pia:version", kwargs={"pk": version.pk})).content.decode()
    assert "Sign as SIRO" not in panel
    response = client.post(url("pia:sign", version), follow=True)
    assert "three different people" in response.content.decode()
    version.refresh_from_db()
    assert version.status == Status.DECIDED


# --- 2. Every author of the version -------------------------------------------------------------------------


def test_a_headteacher_who_submitted_a_round_cannot_decide_after_the_office_resubmits(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    services.version_submit(version=version, actor=personas.headteacher)
    services.version_request_changes(version=version, actor=personas.dpo, comments="Add the deletion date.")
    services.version_submit(version=version, actor=personas.office)
    services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")
    assert services.is_own_version(personas.headteacher, version)
    with pytest.raises(PermissionDenied, match="someone else"):
        services.version_decide(version=version, actor=personas.headteacher, accept=True)


def test_a_headteacher_who_wrote_a_step_cannot_decide_on_the_version(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    editing.pia_step_save(version=version, actor=personas.headteacher, step="need",
                          data={"aims": "Live lessons with small groups, written by the head."})
    services.version_submit(version=version, actor=personas.office)
    services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")
    with pytest.raises(PermissionDenied, match="someone else"):
        services.version_decide(version=version, actor=personas.headteacher, accept=True)


def test_editing_an_earlier_version_does_not_make_someone_an_author_of_the_next(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    editing.pia_step_save(version=version, actor=personas.headteacher, step="need", data={"aims": "Version 1."})
    assert services.is_own_version(personas.headteacher, version)
    other = PiaVersion(pia=version.pia, number=2, created_by=personas.office)
    assert not services.version_authors(other) - {personas.office.pk}


def test_the_authors_of_a_version_come_from_one_query(personas, django_assert_num_queries):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    with django_assert_num_queries(1):
        services.version_authors(version)


def test_the_panel_hides_the_decision_from_a_headteacher_who_edited_the_version(client, personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    editing.pia_step_save(version=version, actor=personas.headteacher, step="need", data={"aims": "By the head."})
    services.version_submit(version=version, actor=personas.office)
    services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")
    as_user(client, personas.headteacher)
    page = client.get(reverse("pia:version", kwargs={"pk": version.pk})).content.decode()
    assert "Decide as data controller" not in page
    response = client.post(url("pia:decide", version), {"decision": "accept"}, follow=True)
    assert "someone else must make this decision" in response.content.decode()
    assert not version.decisions.filter(user=personas.headteacher).exists()


def test_an_author_is_not_emailed_that_the_version_waits_for_their_decision(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    editing.pia_step_save(version=version, actor=personas.headteacher, step="need", data={"aims": "By the head."})
    services.version_submit(version=version, actor=personas.office)
    assert personas.headteacher not in services.recipients_for(version, Status.ADVISED)


# --- 3. Opening the advice page changes nothing ----------------------------------------------------------------


def test_opening_the_advice_page_with_a_fresh_confirmation_writes_nothing(client, personas):
    version = at_stage(personas, Status.SUBMITTED)
    as_user(client, personas.dpo)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url("pia:advise", version))
    assert response.status_code == 200
    writes = [q["sql"] for q in queries.captured_queries
              if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
              and "django_session" not in q["sql"]]
    assert writes == []
    assert not SeenSnapshot.objects.exists()


def test_advising_records_what_the_dpo_saw(client, personas):
    version = at_stage(personas, Status.SUBMITTED)
    as_user(client, personas.dpo)
    client.post(url("pia:advise", version), {"decision": "advise", "comments": "Proceed."})
    assert SeenSnapshot.objects.get(pia=version.pia, user=personas.dpo).version_number == 1


# --- 5. An in-date review date ------------------------------------------------------------------------------


def test_a_version_whose_review_date_is_not_after_today_cannot_be_submitted(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    version.review_on = timezone.localdate()
    version.save()
    with pytest.raises(ValidationError, match=r"review date .* after today"):
        services.version_submit(version=version, actor=personas.office)
    version.refresh_from_db()
    assert version.status == Status.DRAFT


def test_the_review_date_is_checked_in_the_organisations_time_zone(personas):
    personas.organisation.time_zone = "Pacific/Auckland"
    personas.organisation.save()
    version = draft_pia(personas.organisation, personas.office, review_on=dt.date(2027, 3, 2))
    # 11:30 UTC on 1 March is already 2 March in Auckland: the review date is today there.
    with time_machine.travel(dt.datetime(2027, 3, 1, 11, 30, tzinfo=dt.UTC), tick=False):
        assert any("review date" in m for m in services.missing_for_submit(version))
    with time_machine.travel(dt.datetime(2027, 3, 1, 10, 30, tzinfo=dt.UTC), tick=False):
        assert not services.missing_for_submit(version)


def test_a_version_whose_review_date_passed_in_sign_off_cannot_be_signed(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school,
                        review_on=timezone.localdate() + dt.timedelta(days=10))
    services.version_submit(version=version, actor=personas.office)
    services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")
    services.version_decide(version=version, actor=personas.headteacher, accept=True)
    with time_machine.travel(timezone.now() + dt.timedelta(days=11)), pytest.raises(ValidationError,
                                                                                    match="review date"):
        services.version_sign(version=version, actor=personas.siro)
    version.refresh_from_db()
    assert version.status == Status.DECIDED and not version.decisions.filter(kind="siro_signed").exists()


# --- 7. Bounded texts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["advice", "step", "changes", "reasons"])
def test_the_services_refuse_a_text_longer_than_the_limit(personas, where):
    long = "x" * (LIMIT + 1)
    stage = Status.ADVISED if where == "reasons" else Status.SUBMITTED
    version = at_stage(personas, stage)
    calls = {
        "advice": lambda: services.version_advise(version=version, actor=personas.dpo, advice=long),
        "step": lambda: services.version_advise(version=version, actor=personas.dpo, advice="Go.",
                                                step_comments={"risks": long}),
        "changes": lambda: services.version_request_changes(version=version, actor=personas.dpo, comments=long),
        "reasons": lambda: services.version_decide(version=version, actor=personas.headteacher, accept=False,
                                                   reasons=long),
    }
    with pytest.raises(ValidationError, match="at most 20,000 characters"):
        calls[where]()
    version.refresh_from_db()
    assert version.status == stage


def test_the_advice_page_shows_a_too_long_comment_and_keeps_the_confirmation(client, personas):
    version = at_stage(personas, Status.SUBMITTED)
    as_user(client, personas.dpo)
    response = client.post(url("pia:advise", version), {"decision": "advise", "comments": "Go.",
                                                         "step_flows": "x" * (LIMIT + 1)})
    assert response.status_code == 200 and "at most 20,000 characters" in response.content.decode()
    assert SESSION_KEY in client.session
    version.refresh_from_db()
    assert version.status == Status.SUBMITTED


def test_the_decide_page_refuses_reasons_longer_than_the_limit(client, personas):
    version = at_stage(personas, Status.ADVISED)
    as_user(client, personas.headteacher)
    response = client.post(url("pia:decide", version), {"decision": "overrule", "reasons": "x" * (LIMIT + 1)})
    assert response.status_code == 200 and "at most 20,000 characters" in response.content.decode()
    version.refresh_from_db()
    assert version.status == Status.ADVISED


# --- 8. A refused decision keeps the confirmation ---------------------------------------------------------------


def test_a_refused_signature_leaves_the_confirmation_for_the_next_one(client, personas):
    late = draft_pia(personas.organisation, personas.office, school=personas.school,
                     review_on=timezone.localdate() + dt.timedelta(days=2))
    services.version_submit(version=late, actor=personas.office)
    services.version_advise(version=late, actor=personas.dpo, advice="Proceed.")
    services.version_decide(version=late, actor=personas.headteacher, accept=True)
    other = at_stage(personas, Status.DECIDED, organisation_wide=True)
    with time_machine.travel(timezone.now() + dt.timedelta(days=3)):
        as_user(client, personas.siro)
        page = client.get(url("pia:sign", late)).content.decode()
        assert "has passed: an out-of-date PIA cannot be signed" in page and "Sign version 1</button>" not in page
        response = client.post(url("pia:sign", late), follow=True)
        assert "review date" in response.content.decode()
        assert SESSION_KEY in client.session
        response = client.post(url("pia:sign", other))
        assert response.status_code == 302 and reverse("accounts:confirm") not in response["Location"]
        assert SESSION_KEY not in client.session
    late.refresh_from_db()
    other.refresh_from_db()
    assert (late.status, other.status) == (Status.DECIDED, Status.SIGNED)

