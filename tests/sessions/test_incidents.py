"""Incidents and the review they start (issue 14): an incident stops the lessons of the school where it happened,
the other schools of the organisation see a notice; a safeguarding concern may stop every school; the head's
"reviewed, no change needed" turns the school green again, audited with its reason; a teacher cannot review."""

import datetime as dt
import html

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.reauth import SESSION_KEY
from riskassess.models import Assessment, AssessmentVersion, Hazard, ReviewFlag
from riskassess.services import approval_fingerprint, assessment_review_no_change, hazard_save
from schools.models import AuditEntry
from sessions.gate import gates_for_combinations, session_gate
from sessions.incidents import incident_close, incident_escalate
from sessions.models import Incident
from tests.conftest import sign_in
from tests.sessions.incidents_setup import federation, report
from tests.sessions.sessions_setup import session_row

pytestmark = pytest.mark.django_db


def _gate(fed, school, host):
    return session_gate(school=school, platform=fed.platform, host=host)


def _assessment_check(gate):
    return next(check for check in gate.checks if check.key == "assessment")


def _confirmed(client, user) -> None:
    """'Confirm it's you' done just now, as the confirm page records it."""
    session = client.session
    session[SESSION_KEY] = {"user": user.pk, "at": timezone.now().timestamp()}
    session.save()


def test_an_incident_stops_lessons_at_its_school_and_leaves_a_notice_at_the_others(personas):
    fed = federation(personas)
    assert _gate(fed, personas.school, personas.teacher).ok and _gate(fed, fed.dhoon, fed.dhoon_teacher).ok
    incident = report(fed.laxey_lesson, personas.teacher)
    assert incident.status == Incident.Status.UNDER_REVIEW and incident.flagged_assessment == fed.assessment

    laxey = _gate(fed, personas.school, personas.teacher)
    assert not laxey.ok and {check.key for check in laxey.failing} == {"assessment"}
    assert laxey.first_reason == ("The risk assessment was flagged for review after an incident: Uninvited "
                                  "participant reported in the lesson “Owls story time” at Laxey Test School on "
                                  f"{timezone.localdate():%-d %B %Y}.")
    assert laxey.first_fixer.startswith("The headteacher of Laxey Test School reviews the risk assessment")
    dhoon = _gate(fed, fed.dhoon, fed.dhoon_teacher)
    assert dhoon.ok and dhoon.reasons == ()
    assert _assessment_check(dhoon).notices == ("The risk assessment is under review after an incident at Laxey "
                                                "Test School; lessons here may go ahead meanwhile.",)
    # The organisation-wide assessment is flagged for the organisation (the register and reviews due say so).
    assert Assessment.objects.get(pk=fed.assessment.pk).review_flagged_at is not None
    # The bulk answer of the dashboards agrees, school by school.
    bulk = gates_for_combinations([(personas.school, fed.platform.pk, personas.teacher),
                                   (fed.dhoon, fed.platform.pk, fed.dhoon_teacher)])
    assert not bulk[personas.school.pk, fed.platform.pk, personas.teacher.pk].ok
    assert bulk[fed.dhoon.pk, fed.platform.pk, fed.dhoon_teacher.pk].ok
    assert bulk[fed.dhoon.pk, fed.platform.pk, fed.dhoon_teacher.pk].notices == dhoon.notices


def test_the_lessons_page_shows_red_at_the_school_and_amber_at_the_other(client, personas):
    fed = federation(personas)
    report(fed.laxey_lesson, personas.teacher)
    sign_in(client, fed.dhoon_head)
    page = client.get(reverse("video_sessions:session", kwargs={"pk": fed.dhoon_lesson.pk})).content.decode()
    assert "The session may go ahead" in page and "under review after an incident at Laxey Test School" in page
    client.logout()
    sign_in(client, personas.headteacher)
    page = client.get(reverse("video_sessions:session", kwargs={"pk": fed.laxey_lesson.pk})).content.decode()
    assert "The session may not go ahead" in page and "flagged for review after an incident: Uninvited" in page


def test_the_bulk_gate_stays_constant_in_queries_while_an_assessment_is_flagged(personas):
    fed = federation(personas)
    report(fed.laxey_lesson, personas.teacher)
    one = [(personas.school, fed.platform.pk, personas.teacher)]
    both = [*one, (fed.dhoon, fed.platform.pk, fed.dhoon_teacher), (fed.dhoon, fed.platform.pk, fed.dhoon_head)]
    counts = []
    for combinations in (one, both):
        with CaptureQueriesContext(connection) as queries:
            gates_for_combinations(combinations)
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_a_safeguarding_concern_escalated_to_the_organisation_stops_both_schools(personas):
    fed = federation(personas)
    incident = report(fed.laxey_lesson, personas.teacher, kind=Incident.Kind.SAFEGUARDING,
                      text="A child said something worrying about home.")
    assert _gate(fed, fed.dhoon, fed.dhoon_teacher).ok
    with pytest.raises(ValidationError):
        incident_escalate(incident=incident, actor=personas.headteacher, reason="  ")
    with pytest.raises(PermissionDenied):
        incident_escalate(incident=incident, actor=personas.teacher, reason="Stop everything")
    assert _gate(fed, fed.dhoon, fed.dhoon_teacher).ok  # nothing changed

    incident_escalate(incident=incident, actor=personas.headteacher,
                      reason="The same waiting-room setting is used at every school.")
    laxey, dhoon = _gate(fed, personas.school, personas.teacher), _gate(fed, fed.dhoon, fed.dhoon_teacher)
    assert not laxey.ok and not dhoon.ok
    assert any("A safeguarding concern at Laxey Test School stops lessons in every school of Test Federation"
               in reason and "The same waiting-room setting" in reason for reason in dhoon.reasons)
    assert _assessment_check(dhoon).notices == ()
    assert AuditEntry.objects.filter(action="risk.review_escalated").count() == 1
    # Only a safeguarding concern is escalated.
    other = report(fed.laxey_lesson, personas.teacher)
    with pytest.raises(ValidationError, match="Only a safeguarding concern"):
        incident_escalate(incident=other, actor=personas.headteacher, reason="Stop")


def test_the_escalation_is_made_on_the_incidents_page_with_a_reason(client, personas):
    fed = federation(personas)
    incident = report(fed.laxey_lesson, personas.teacher, kind=Incident.Kind.SAFEGUARDING)
    sign_in(client, personas.headteacher)
    url = reverse("video_sessions:incident-escalate", kwargs={"pk": incident.pk})
    refused = client.post(url, {"reason": ""})
    assert refused.status_code == 200 and "Say why every school must stop" in refused.content.decode()
    assert not ReviewFlag.objects.filter(escalated_at__isnull=False).exists()
    done = client.post(url, {"reason": "Same controls everywhere."})
    assert done.status_code == 302 and not _gate(fed, fed.dhoon, fed.dhoon_teacher).ok


def test_reviewed_no_change_by_the_head_turns_the_school_green_again_and_is_audited(client, personas):
    fed = federation(personas)
    incident = report(fed.laxey_lesson, personas.teacher)
    sign_in(client, personas.headteacher)
    page = client.get(reverse("riskassess:assessment", kwargs={"pk": fed.assessment.pk})).content.decode()
    assert "Flagged after an incident" in page and "Reviewed — no change needed…" in page
    assert "Lessons stopped at Laxey Test School" in page
    url = reverse("riskassess:assessment-review", kwargs={"pk": fed.assessment.pk})
    # "Confirm it's you" first.
    assert reverse("accounts:confirm") in client.get(url)["Location"]
    _confirmed(client, personas.headteacher)
    assert client.get(url).status_code == 200
    reason = "The waiting room held; the host removed the person at once. The controls are right."
    response = client.post(url, {"reason": reason})
    assert response.status_code == 302

    assert _gate(fed, personas.school, personas.teacher).ok
    assert _assessment_check(_gate(fed, fed.dhoon, fed.dhoon_teacher)).notices == ()
    incident.refresh_from_db()
    assert incident.status == Incident.Status.CLOSED and incident.closing_note == reason
    assert incident.closed_by == personas.headteacher
    entry = AuditEntry.objects.get(action="risk.reviewed_no_change")
    assert entry.data["reason"] == reason and entry.actor_id == personas.headteacher.pk
    assert entry.school_id == personas.school.pk  # on Laxey's audit page
    assert AuditEntry.objects.filter(action="session.incident_closed").exists()
    flag = ReviewFlag.objects.get()
    assert flag.outcome == ReviewFlag.Outcome.NO_CHANGE and flag.outcome_note == reason
    assert Assessment.objects.get(pk=fed.assessment.pk).review_flagged_at is None
    # The assessment's page keeps the review; one confirmation per review.
    page = client.get(reverse("riskassess:assessment", kwargs={"pk": fed.assessment.pk})).content.decode()
    assert "Reviews after incidents" in page and reason in page
    assert not client.session.get(SESSION_KEY)


def test_a_teacher_cannot_review(client, personas):
    fed = federation(personas)
    report(fed.laxey_lesson, personas.teacher)
    with pytest.raises(PermissionDenied):
        assessment_review_no_change(assessment=fed.assessment, actor=personas.teacher, reason="Looks fine to me")
    sign_in(client, personas.teacher)
    _confirmed(client, personas.teacher)
    url = reverse("riskassess:assessment-review", kwargs={"pk": fed.assessment.pk})
    assert client.get(url).status_code == 403
    assert client.post(url, {"reason": "Looks fine to me"}).status_code == 403
    page = client.get(reverse("riskassess:assessment", kwargs={"pk": fed.assessment.pk})).content.decode()
    assert "Reviewed — no change needed…" not in page
    assert not _gate(fed, personas.school, personas.teacher).ok
    assert not AuditEntry.objects.filter(action="risk.reviewed_no_change").exists()


def test_the_head_of_another_school_reviews_only_their_own_schools_flag(personas):
    fed = federation(personas)
    report(fed.laxey_lesson, personas.teacher)
    report(fed.dhoon_lesson, fed.dhoon_teacher)
    assessment_review_no_change(assessment=fed.assessment, actor=fed.dhoon_head, reason="Controls held at Dhoon.")
    assert _gate(fed, fed.dhoon, fed.dhoon_teacher).ok and not _gate(fed, personas.school, personas.teacher).ok
    assert ReviewFlag.objects.filter(cleared_at__isnull=True, school=personas.school).exists()


def test_a_review_without_a_reason_is_refused_and_changes_nothing(client, personas):
    fed = federation(personas)
    report(fed.laxey_lesson, personas.teacher)
    sign_in(client, personas.headteacher)
    _confirmed(client, personas.headteacher)
    response = client.post(reverse("riskassess:assessment-review", kwargs={"pk": fed.assessment.pk}), {"reason": " "})
    assert response.status_code == 200 and "Say why no change is needed" in response.content.decode()
    assert not _gate(fed, personas.school, personas.teacher).ok


def test_the_reason_typed_when_the_confirmation_ran_out_is_kept(client, personas):
    fed = federation(personas)
    report(fed.laxey_lesson, personas.teacher)
    sign_in(client, personas.headteacher)
    url = reverse("riskassess:assessment-review", kwargs={"pk": fed.assessment.pk})
    response = client.post(url, {"reason": "The controls held."})
    assert reverse("accounts:confirm") in response["Location"]
    assert not _gate(fed, personas.school, personas.teacher).ok
    _confirmed(client, personas.headteacher)
    assert "The controls held." in client.get(url).content.decode()


def test_an_incident_that_flagged_nothing_is_closed_with_the_heads_note(client, personas):
    fed = federation(personas)
    technical = report(fed.laxey_lesson, personas.teacher, kind=Incident.Kind.TECHNICAL, text="The sound failed.")
    assert technical.status == Incident.Status.OPEN and not technical.review_flags.exists()
    sign_in(client, personas.headteacher)
    url = reverse("video_sessions:incident-close", kwargs={"pk": technical.pk})
    refused = client.post(url, {"note": ""})
    assert refused.status_code == 200 and "Write a closing note" in refused.content.decode()
    assert client.post(url, {"note": "New headset ordered."}).status_code == 302
    technical.refresh_from_db()
    assert technical.status == Incident.Status.CLOSED and technical.closing_note == "New headset ordered."
    # One under review closes with its review, never by a note.
    flagged = report(fed.laxey_lesson, personas.teacher)
    with pytest.raises(ValidationError, match="closes when its risk assessment is reviewed"):
        incident_close(incident=flagged, actor=personas.headteacher, note="Done")
    with pytest.raises(PermissionDenied):
        incident_close(incident=report(fed.laxey_lesson, personas.teacher, kind=Incident.Kind.TECHNICAL),
                       actor=personas.teacher, note="Done")


def test_the_incidents_page_shows_what_happened_only_to_those_who_may_read_it(client, personas):
    fed = federation(personas)
    incident = report(fed.laxey_lesson, personas.teacher, text="A stranger joined the lesson.")
    url = reverse("video_sessions:incident-detail", kwargs={"pk": incident.pk})
    for user, readable in ((personas.headteacher, True), (personas.teacher, True), (personas.office, False),
                           (personas.dpo, False)):
        client.logout()
        sign_in(client, user)
        page = client.get(url).content.decode()
        assert ("A stranger joined the lesson." in page) is readable
        assert "Owls story time" in page and "Under review" in page
    client.logout()
    sign_in(client, fed.dhoon_teacher)
    assert client.get(url).status_code == 404


# --- Revise ---------------------------------------------------------------------------------------------------


def test_revising_keeps_every_field_and_the_revision_is_submitted_without_retyping(client, personas):
    fed = federation(personas)
    # An approved version with its review date and a row with every field filled in (`federation`).
    assert fed.version.status == AssessmentVersion.Status.APPROVED and fed.version.review_on
    incident = report(fed.laxey_lesson, personas.teacher)
    sign_in(client, personas.org_admin)
    page = client.get(reverse("riskassess:assessment", kwargs={"pk": fed.assessment.pk})).content.decode()
    assert "Revise (new version)" in page and "Edit (new version)" not in page
    assert client.post(reverse("riskassess:assessment-revise", kwargs={"pk": fed.assessment.pk})).status_code == 302
    revision = fed.assessment.versions.get(number=2)
    approved = fed.version
    assert (revision.assessor_name, revision.review_on, revision.review_interval_months) == (
        approved.assessor_name, approved.review_on, approved.review_interval_months)
    fields = ("activity_element", "hazard", "who_affected", "likelihood", "severity", "rating", "controls",
              "residual_likelihood", "residual_severity", "residual_rating", "further_action", "action_owner_id",
              "action_due_on", "action_done_on", "initials", "position", "row_key")

    def rows(version):
        hazards = Hazard.objects.filter(version=version).order_by("position")
        return [tuple(getattr(hazard, name) for name in fields) for hazard in hazards]

    before, after = rows(approved), rows(revision)
    assert before == after and len(after) == 6
    assert after[0][fields.index("further_action")] and after[0][fields.index("action_owner_id")]
    # One control changed, then submitted and approved straight away: nothing to type again.
    first = revision.hazards.order_by("position").first()
    hazard_save(version=revision, actor=personas.org_admin, row=first, controls=first.controls + " Lock at once.")
    submitted = client.post(reverse("riskassess:version-submit", kwargs={"pk": revision.pk}))
    assert submitted.status_code == 302
    revision.refresh_from_db()
    assert revision.status == AssessmentVersion.Status.SUBMITTED
    _confirmed(client, personas.org_admin)
    client.post(reverse("riskassess:version-approve", kwargs={"pk": revision.pk}),
                {"seen": approval_fingerprint(revision)})
    revision.refresh_from_db()
    assert revision.status == AssessmentVersion.Status.APPROVED and revision.review_on == approved.review_on
    # The approval ends the review: green again, the incident closed with the outcome.
    assert _gate(fed, personas.school, personas.teacher).ok
    incident.refresh_from_db()
    assert incident.status == Incident.Status.CLOSED and "version 2 approved" in incident.closing_note
    assert ReviewFlag.objects.get().outcome == ReviewFlag.Outcome.REVISED


# --- The incidents log ----------------------------------------------------------------------------------------


def test_the_schools_log_lists_its_incidents_with_links_to_the_lesson_report_and_review(client, personas):
    fed = federation(personas)
    laxey = report(fed.laxey_lesson, personas.teacher)
    report(fed.dhoon_lesson, fed.dhoon_teacher)
    sign_in(client, personas.headteacher)
    response = client.get(reverse("video_sessions:incidents-school", kwargs={"school_pk": personas.school.pk}))
    page = response.content.decode()
    assert response.status_code == 200 and page.count('class="incident-row"') == 1
    assert reverse("video_sessions:session", kwargs={"pk": fed.laxey_lesson.pk}) in page
    assert reverse("video_sessions:incident-detail", kwargs={"pk": laxey.pk}) in page
    assert reverse("riskassess:assessment", kwargs={"pk": fed.assessment.pk}) + "#review" in page
    assert "Wrens phonics" not in page  # Dhoon's
    # The head of one school among several is sent to their school's log, never the organisation's.
    assert client.get(reverse("video_sessions:incidents"))["Location"].endswith(
        reverse("video_sessions:incidents-school", kwargs={"school_pk": personas.school.pk}))
    assert client.get(reverse("video_sessions:incidents-organisation",
                              kwargs={"organisation_pk": personas.organisation.pk})).status_code == 403


def test_the_organisations_log_lists_every_school_and_filters(client, personas):
    fed = federation(personas)
    report(fed.laxey_lesson, personas.teacher)
    report(fed.dhoon_lesson, fed.dhoon_teacher, kind=Incident.Kind.TECHNICAL, text="No sound.")
    sign_in(client, personas.dpo)
    url = reverse("video_sessions:incidents-organisation", kwargs={"organisation_pk": personas.organisation.pk})
    assert client.get(reverse("video_sessions:incidents"))["Location"].endswith(url)
    page = client.get(url).content.decode()
    assert page.count('class="incident-row"') == 2 and "Dhoon Test School" in page and "Laxey Test School" in page
    assert "No sound." not in page  # what happened is on the report, for those who may read it

    def rows(**query) -> int:
        return client.get(url, query).content.decode().count('class="incident-row"')

    assert rows(school=fed.dhoon.pk) == 1
    assert rows(kind="technical") == 1
    assert rows(status="under_review") == 1 and rows(status="closed") == 0
    today = timezone.localdate().isoformat()
    assert rows(reported_from=today, reported_to=today) == 2
    assert rows(reported_from="2020-01-01", reported_to="2020-01-31") == 0


def test_a_bad_filter_says_what_is_wrong_keeps_what_was_typed_and_filters_by_the_rest(client, personas):
    fed = federation(personas)
    report(fed.laxey_lesson, personas.teacher)
    sign_in(client, personas.org_admin)
    url = reverse("video_sessions:incidents-organisation", kwargs={"organisation_pk": personas.organisation.pk})
    response = client.get(url, {"reported_from": "31/02/2026", "kind": "uninvited"})
    page = response.content.decode()
    assert response.status_code == 200 and "Enter a date" in page and 'value="31/02/2026"' in page
    assert page.count('class="incident-row"') == 1
    backwards = client.get(url, {"reported_from": "2026-12-05", "reported_to": "2026-12-01"}).content.decode()
    assert "Choose a date on or after the first one." in backwards
    assert client.get(url, {"school": "999999"}).status_code == 200  # not a school of the log: said, not a 500


def test_the_log_is_paginated(client, personas):
    fed = federation(personas)
    Incident.objects.bulk_create([Incident(session=fed.laxey_lesson, kind=Incident.Kind.TECHNICAL,
                                           description="Dropped", reported_by=personas.teacher) for _ in range(27)])
    sign_in(client, personas.headteacher)
    url = reverse("video_sessions:incidents-school", kwargs={"school_pk": personas.school.pk})
    first = client.get(url, {"kind": "technical"}).content.decode()
    assert first.count('class="incident-row"') == 25 and "Page 1 of 2" in first and "kind=technical&amp;page=2" in first
    assert client.get(url, {"kind": "technical", "page": 2}).content.decode().count('class="incident-row"') == 2


def test_the_home_pages_show_incidents_with_their_status_and_the_log(client, personas):
    fed = federation(personas)
    report(fed.laxey_lesson, personas.teacher)
    sign_in(client, personas.headteacher)
    home = client.get(reverse("schools:dashboard")).content.decode()
    assert "Under review" in home and "All incidents, with their reviews" in home
    todos = client.get(reverse("schools:dashboard")).context["home"].needs_you
    assert [todo.kind for todo in todos] == ["review"]
    client.logout()
    sign_in(client, fed.dhoon_head)  # Dhoon is not stopped: nothing for its head to review
    assert [t.kind for t in client.get(reverse("schools:dashboard")).context["home"].needs_you] == []
    client.logout()
    sign_in(client, personas.teacher)
    home = client.get(reverse("schools:dashboard")).content.decode()
    assert "Under review" in home and "All incidents, with their reviews" not in home


def test_the_other_schools_home_page_and_lessons_list_show_the_amber_notice(client, personas):
    fed = federation(personas)
    session_row(fed.dhoon, fed.dhoon_teacher, title="Wrens maths", starts_at=timezone.now() + dt.timedelta(days=1))
    report(fed.laxey_lesson, personas.teacher)
    sign_in(client, fed.dhoon_head)
    notice = "under review after an incident at Laxey Test School; lessons here may go ahead meanwhile."
    home = client.get(reverse("schools:dashboard")).content.decode()
    assert notice in home and "Cannot go ahead yet" not in home
    assert notice in client.get(reverse("video_sessions:list")).content.decode()


def test_the_heads_review_is_named_after_the_school_it_stops_and_comes_before_slower_items(client, personas):
    from consent.models import RightsRequest
    from tests.consent.consent_setup import guardian_of, pupil_at

    fed = federation(personas)
    RightsRequest.objects.create(school=personas.school, guardian=guardian_of(pupil_at(personas.school)),
                                 guardian_label="A parent", kind=RightsRequest.Kind.CORRECTION,
                                 received_at=timezone.now() - dt.timedelta(days=3),
                                 due_on=timezone.localdate() + dt.timedelta(days=31))
    report(fed.laxey_lesson, personas.teacher)
    sign_in(client, personas.headteacher)
    todos = client.get(reverse("schools:dashboard")).context["home"].needs_you
    assert [todo.kind for todo in todos] == ["review", "answer"]  # the review stops lessons: first
    assert todos[0].school_name == "Laxey Test School"
    client.logout()
    sign_in(client, personas.org_admin)  # the organisation admin reviews it too, as Laxey's
    (review,) = [t for t in client.get(reverse("schools:dashboard")).context["home"].needs_you if t.kind == "review"]
    assert review.school_name == "Laxey Test School"


def test_the_home_page_tells_the_reviewer_once_that_they_can_review_and_the_others_who_can(client, personas):
    fed = federation(personas)
    for days in (1, 2, 3):
        session_row(personas.school, personas.teacher, title=f"Owls day {days}",
                    starts_at=timezone.now() + dt.timedelta(days=days))
    report(fed.laxey_lesson, personas.teacher)
    sign_in(client, personas.headteacher)
    page = client.get(reverse("schools:dashboard")).content.decode()
    assert page.count("Cannot go ahead yet") == 4  # the lesson of the incident and the three to come
    review = reverse("riskassess:assessment", kwargs={"pk": fed.assessment.pk}) + "#review"
    assert page.count("You can review it: open the risk assessment") == 1 and f'href="{review}"' in page
    assert "(4 lessons)" in page
    assert "The headteacher of Laxey Test School reviews" not in page
    client.logout()
    sign_in(client, personas.teacher)  # not theirs to review: who can, once
    page = client.get(reverse("schools:dashboard")).content.decode()
    assert page.count("Who can fix it: The headteacher of Laxey Test School reviews") == 1
    assert "You can review it" not in page


def test_the_heads_email_links_to_the_review_and_says_which_lessons_it_stops(personas):
    from outbox.models import OutboxMessage

    fed = federation(personas)
    for days in (1, 6):
        session_row(personas.school, personas.teacher, title=f"Owls day {days}",
                    starts_at=timezone.now() + dt.timedelta(days=days))
    session_row(personas.school, personas.teacher, title="Owls later", starts_at=timezone.now() + dt.timedelta(days=20))
    session_row(fed.dhoon, fed.dhoon_teacher, title="Wrens", starts_at=timezone.now() + dt.timedelta(days=1))
    report(fed.laxey_lesson, personas.teacher)
    email = OutboxMessage.objects.get(template="session-incident")
    review = reverse("riskassess:assessment", kwargs={"pk": fed.assessment.pk}) + "#review"
    for body in (email.body_text, email.body_html):
        assert review in body
        assert "Lessons at Laxey Test School are stopped until the risk assessment" in body
        assert "That is 2 lessons in the next 14 days." in body
        assert "Ava2" not in body and "Secret2345" not in body  # what happened, and the meeting's password


def test_the_log_keeps_its_filters_through_the_redirect_and_says_plainly_what_is_not_a_choice(client, personas):
    fed = federation(personas)
    report(fed.laxey_lesson, personas.teacher)
    today = timezone.localdate().isoformat()
    sign_in(client, personas.headteacher)
    response = client.get(reverse("video_sessions:incidents"), {"reported_from": today, "kind": "uninvited"})
    location = response["Location"]
    assert location == (reverse("video_sessions:incidents-school", kwargs={"school_pk": personas.school.pk})
                        + f"?reported_from={today}&kind=uninvited")
    client.logout()
    sign_in(client, personas.dpo)
    location = client.get(reverse("video_sessions:incidents"), {"status": "closed"})["Location"]
    assert location.endswith(f"/organisation/{personas.organisation.pk}/?status=closed")
    url = reverse("video_sessions:incidents-organisation", kwargs={"organisation_pk": personas.organisation.pk})
    page = client.get(url, {"status": "abc", "kind": "xyz", "school": "999999"}).content.decode()
    assert "Choose a status from the list." in page and "Choose a kind from the list." in page
    assert "Choose a school from the list." in page
    assert "Select a valid choice" not in page and "is not one of the available choices" not in page


def test_a_closed_incidents_page_shows_the_reviewers_reason_once(client, personas):
    fed = federation(personas)
    incident = report(fed.laxey_lesson, personas.teacher)
    reason = "The waiting room held; the host removed the person at once."
    assessment_review_no_change(assessment=fed.assessment, actor=personas.headteacher, reason=reason)
    sign_in(client, personas.headteacher)
    page = client.get(reverse("video_sessions:incident-detail", kwargs={"pk": incident.pk})).content.decode()
    assert page.count(html.escape(reason)) == 1
    assert "the review of its risk assessment" in page and "Review done" in page
    # Closed without a review (a technical problem), the head's note is under Status.
    technical = report(fed.laxey_lesson, personas.teacher, kind=Incident.Kind.TECHNICAL, text="No sound.")
    incident_close(incident=technical, actor=personas.headteacher, note="New headset ordered.")
    page = client.get(reverse("video_sessions:incident-detail", kwargs={"pk": technical.pk})).content.decode()
    assert page.count("New headset ordered.") == 1 and "closing-note" in page
