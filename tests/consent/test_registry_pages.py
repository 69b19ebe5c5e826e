"""The registry's staff pages: pupils with their consent status, guardians, history, evidence, and
consent recorded by staff."""

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consent.models import ConsentEvent, Guardian, Guardianship, Pupil
from consent.services import (
    consent_give,
    consent_lapse_due,
    consent_record_by_staff,
    consent_refuse,
    pupils_consent_states,
)
from consent.views_staff import with_effective_state
from schools.models import AuditEntry
from tests.conftest import sign_in
from tests.factories import GroupFactory

from .consent_setup import counts, decided_family, five_pupil_registry, guardian_of, publish, pupil_at, purpose_for

pytestmark = pytest.mark.django_db


def _today(school) -> dt.date:
    return timezone.now().astimezone(school.tz).date()


@pytest.fixture
def notice(personas):
    return publish(purpose_for(personas.school))


def _pupils(response) -> list[str]:
    return [row["pupil"].mis_id for row in response.context["rows"]]


def _badges(response) -> dict[str, str]:
    return {row["pupil"].mis_id: row["badge"]["label"] for row in response.context["rows"]}


@pytest.fixture
def registry(personas, notice):
    return five_pupil_registry(personas.school, notice)


def _list(client, personas, **params):
    sign_in(client, personas.teacher)
    return client.get(reverse("consent:pupils", kwargs={"school_pk": personas.school.pk}), params)


def test_the_list_shows_each_pupil_on_roll_with_a_status_in_words(client, personas, registry):
    response = _list(client, personas)
    assert _badges(response) == {
        "P1": "Consent given", "P2": "Refused", "P3": "Withdrawn", "P4": "No answer", "P5": "Renewal needed",
    }
    assert b"Renewal needed" in response.content


def test_the_list_includes_leavers_only_when_asked(client, personas, registry):
    assert "P9" not in _pupils(_list(client, personas))
    assert "P9" in _pupils(_list(client, personas, leavers="on"))


@pytest.mark.parametrize(("status", "expected"), [
    ("given", ["P1", "P5"]), ("refused", ["P2"]), ("withdrawn", ["P3"]), ("none", ["P4"]), ("renewal", ["P5"]),
])
def test_the_list_filters_by_status(client, personas, registry, status, expected):
    assert sorted(_pupils(_list(client, personas, status=status))) == expected


def test_the_list_filters_by_group_and_renewal_needed(client, personas, registry):
    assert sorted(_pupils(_list(client, personas, group=registry["foxes"].pk))) == ["P3", "P4"]
    assert _pupils(_list(client, personas, renewal="on")) == ["P5"]


def test_the_list_searches_by_name_and_by_mis_id(client, personas, registry):
    assert _pupils(_list(client, personas, q="refus")) == ["P2"]
    assert _pupils(_list(client, personas, q="ben refused")) == ["P2"]
    assert _pupils(_list(client, personas, q="p4")) == ["P4"]
    response = _list(client, personas, q="nobody-like-this")
    assert b"No pupils match these filters" in response.content


def test_the_counts_per_group_are_right(client, personas, registry):
    rows = {row["group"].name: row for row in _list(client, personas).context["groups"]}
    owls = {k: rows["Owls"][k] for k in ("total", "consented", "refused", "withdrawn", "no_answer", "renewal")}
    foxes = {k: rows["Foxes"][k] for k in ("total", "consented", "refused", "withdrawn", "no_answer", "renewal")}
    # The leaver is not on roll; P5's consent still counts until the deadline, and needs renewing.
    assert owls == {"total": 3, "consented": 2, "refused": 1, "withdrawn": 0, "no_answer": 0, "renewal": 1}
    assert foxes == {"total": 2, "consented": 0, "refused": 0, "withdrawn": 1, "no_answer": 1, "renewal": 0}


def test_a_consent_not_renewed_by_the_deadline_counts_as_lapsed(client, personas, registry):
    consent_lapse_due(now=timezone.now() + dt.timedelta(days=32))
    response = _list(client, personas)
    owls = next(row for row in response.context["groups"] if row["group"].name == "Owls")
    assert (owls["consented"], owls["lapsed"], owls["no_answer"], owls["renewal"]) == (1, 1, 0, 0)
    assert b'<td class="text-end count-lapsed">1</td>' in response.content
    assert sorted(_pupils(_list(client, personas, status="lapsed"))) == ["P5"]


def test_an_empty_school_says_to_import_pupils(client, personas):
    response = _list(client, personas)
    assert b"Import pupils from your MIS" in response.content


def _populate(school, notice, group, n):
    for _ in range(n):
        pupil = pupil_at(school)
        group.pupils.add(pupil)
        guardian = guardian_of(pupil)
        consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)


def test_the_list_costs_the_same_number_of_queries_for_10_and_60_pupils(client, personas, notice):
    group = GroupFactory(school=personas.school)
    sign_in(client, personas.teacher)
    url = reverse("consent:pupils", kwargs={"school_pk": personas.school.pk})
    _populate(personas.school, notice, group, 10)
    client.get(url)  # warm the session and the caches
    with CaptureQueriesContext(connection) as ten:
        assert client.get(url).status_code == 200
    _populate(personas.school, notice, group, 50)
    with CaptureQueriesContext(connection) as sixty:
        response = client.get(url)
    assert response.context["page"].paginator.count == 60
    assert len(response.context["rows"]) == 50
    assert len(sixty) == len(ten)


def test_the_pupil_page_shows_guardians_their_decisions_and_the_history(client, personas, registry):
    pupil, guardian = registry["pupils"]["P1"], registry["guardians"]["P1"]
    sign_in(client, personas.teacher)
    response = client.get(reverse("consent:pupil", kwargs={"pk": pupil.pk}))
    assert response.status_code == 200
    body = response.content.decode()
    assert str(guardian) in body and guardian.email in body
    assert len(response.context["events"]) == 2
    for event in ConsentEvent.objects.filter(pupil=pupil):
        assert reverse("consent:event", kwargs={"pk": event.pk}) in body
    assert response.context["badge"]["label"] == "Consent given"
    assert b"Record a decision" not in response.content  # teachers read only


def test_the_evidence_view_shows_the_notice_hash(client, personas, notice):
    _notice, _pupil, _guardian, event = decided_family(personas.school)
    sign_in(client, personas.dpo)
    response = client.get(reverse("consent:event", kwargs={"pk": event.pk}))
    assert event.notice_sha256 in response.content.decode()
    assert b"Matches the stored notice" in response.content


def _record(client, pupil, guardian, **overrides):
    data = {
        "guardian": guardian.pk, "kind": "given", "received_on": _today(pupil.school).isoformat(),
        "channel": "email_reply", "note": "Reply to the letter", "attestation": "on",
    }
    data.update(overrides)
    return client.post(reverse("consent:record", kwargs={"pk": pupil.pk}), data)


def test_the_office_records_a_decision_which_names_them(client, personas, notice):
    pupil = pupil_at(personas.school)
    guardian = guardian_of(pupil)
    sign_in(client, personas.office)
    response = _record(client, pupil, guardian)
    assert response.status_code == 302
    event = ConsentEvent.objects.get(pupil=pupil)
    assert (event.kind, event.recorded_by, event.channel, event.note) == (
        "given", personas.office, "email_reply", "Reply to the letter"
    )
    page = client.get(response["Location"])
    assert b"Recorded: consent given" in page.content


def test_the_record_form_lists_only_this_pupils_guardians(client, personas, notice):
    pupil = pupil_at(personas.school)
    guardian = guardian_of(pupil)
    stranger = guardian_of(pupil_at(personas.school))
    sign_in(client, personas.headteacher)
    form = client.get(reverse("consent:record", kwargs={"pk": pupil.pk})).context["form"]
    assert list(form.fields["guardian"].queryset) == [guardian]
    before = counts()
    response = _record(client, pupil, stranger)
    assert response.status_code == 200 and counts() == before


def test_a_future_date_received_is_refused_with_a_message_and_nothing_written(client, personas, notice):
    pupil = pupil_at(personas.school)
    guardian = guardian_of(pupil)
    sign_in(client, personas.office)
    before = counts()
    tomorrow = _today(personas.school) + dt.timedelta(days=1)
    response = _record(client, pupil, guardian, received_on=tomorrow.isoformat())
    assert response.status_code == 200
    assert b"cannot be in the future" in response.content
    assert counts() == before


def test_a_service_refusal_is_shown_on_the_form(client, personas, notice):
    pupil = pupil_at(personas.school)
    guardian = guardian_of(pupil, parental_responsibility=False)
    sign_in(client, personas.office)
    before = counts()
    response = _record(client, pupil, guardian)
    assert b"Only a guardian with parental responsibility can give consent." in response.content
    assert counts() == before


def test_an_attachment_of_the_wrong_type_is_refused_with_a_message(client, personas, notice, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    pupil = pupil_at(personas.school)
    guardian = guardian_of(pupil)
    sign_in(client, personas.office)
    before = counts()
    fake = SimpleUploadedFile("form.pdf", b"MZ\x90\x00 not a pdf", content_type="application/pdf")
    response = _record(client, pupil, guardian, attachment=fake)
    assert b"The file&#x27;s contents do not match its name." in response.content
    assert counts() == before


def test_the_attachment_downloads_within_the_scope_only(client, personas, notice, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    pupil = pupil_at(personas.school)
    guardian = guardian_of(pupil)
    event = consent_record_by_staff(
        staff=personas.office, guardian=guardian, pupil=pupil, notice=notice, kind="given",
        channel="paper_form", received_on=_today(personas.school),
        attachment=SimpleUploadedFile("form.pdf", b"%PDF-1.7 signed"),
    )
    url = reverse("consent:event-attachment", kwargs={"pk": event.pk})
    sign_in(client, personas.teacher)
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert b"".join(response.streaming_content).startswith(b"%PDF-")
    sign_in(client, personas.other_teacher)
    assert client.get(url).status_code == 404


def test_editing_a_guardian_is_audited_with_field_names_only(client, personas):
    from consent.links import guardian_link_issue, guardian_link_resolve

    guardian = guardian_of(pupil_at(personas.school))
    old_email = guardian.email
    old_link = guardian_link_issue(guardian=guardian, purpose=purpose_for(personas.school))
    sign_in(client, personas.office)
    url = reverse("consent:guardian-edit", kwargs={"pk": guardian.pk})
    response = client.post(url, {"email": "New.Address@Example.net", "phone": guardian.phone})
    assert response.status_code == 302
    guardian.refresh_from_db()
    assert guardian.email == "new.address@example.net"
    entry = AuditEntry.objects.get(action="registry.guardian_updated")
    assert entry.data == {"changed": ["email"], "links_revoked": 1}
    assert old_email not in str(entry.data) and "new.address" not in str(entry.data)
    # The link emailed to the old address no longer opens anything.
    assert guardian_link_resolve(old_link.rstrip("/").rsplit("/", 1)[-1]) is None
    assert b"Contact details of" in client.get(response["Location"]).content


def test_a_teacher_cannot_edit_a_guardian(client, personas):
    guardian = guardian_of(pupil_at(personas.school))
    sign_in(client, personas.teacher)
    url = reverse("consent:guardian-edit", kwargs={"pk": guardian.pk})
    assert client.post(url, {"email": "x@example.net", "phone": ""}).status_code == 403
    assert Guardian.objects.get(pk=guardian.pk).email == guardian.email


def test_another_schools_objects_answer_404(client, personas):
    _notice, pupil, guardian, event = decided_family(personas.other_school)
    sign_in(client, personas.headteacher)
    for name, pk in [("consent:pupil", pupil.pk), ("consent:guardian", guardian.pk), ("consent:event", event.pk),
                     ("consent:record", pupil.pk), ("consent:guardian-edit", guardian.pk),
                     ("consent:event-attachment", event.pk)]:
        assert client.get(reverse(name, kwargs={"pk": pk})).status_code == 404, name
    url = reverse("consent:pupils", kwargs={"school_pk": personas.other_school.pk})
    assert client.get(url).status_code == 404


def test_the_sql_status_agrees_with_the_services_rule_for_several_guardians(personas, notice):
    school = personas.school
    mother_only = pupil_at(school)
    mother = guardian_of(mother_only)
    consent_give(guardian=mother, pupil=mother_only, notice=notice, attestation=True)
    # Consent from someone who has since lost parental responsibility no longer counts.
    lost = pupil_at(school)
    former = guardian_of(lost)
    consent_give(guardian=former, pupil=lost, notice=notice, attestation=True)
    Guardianship.objects.filter(guardian=former, pupil=lost).update(parental_responsibility=False)
    # A "no" from either guardian wins over the other's "yes".
    split = pupil_at(school)
    yes, no = guardian_of(split), guardian_of(split)
    consent_give(guardian=yes, pupil=split, notice=notice, attestation=True)
    consent_refuse(guardian=no, pupil=split, notice=notice)
    # A decision by someone no longer linked to the pupil does not count at all.
    unlinked = pupil_at(school)
    gone = guardian_of(unlinked)
    consent_refuse(guardian=gone, pupil=unlinked, notice=notice)
    Guardianship.objects.filter(guardian=gone, pupil=unlinked).delete()

    pupils = Pupil.objects.filter(school=school)
    expected = pupils_consent_states(pupils=pupils, purpose=notice.purpose)
    annotated = {p.pk: (p.effective_state, p.renewal_needed) for p in with_effective_state(pupils, notice.purpose)}
    assert annotated == {pk: (c.state, c.renewal_needed) for pk, c in expected.items()}
    assert annotated[lost.pk][0] == "none" and annotated[split.pk][0] == "refused"
    assert annotated[unlinked.pk][0] == "none"


def test_the_guardian_page_shows_requests_and_emails_to_the_office_but_not_to_teachers(client, personas, registry):
    from consent.requests import consent_requests_send

    silent = registry["guardians"]["P4"]
    consent_requests_send(school=personas.school, purpose=registry["notice"].purpose, actor=personas.office)
    url = reverse("consent:guardian", kwargs={"pk": silent.pk})
    sign_in(client, personas.office)
    page = client.get(url)
    assert b"Requests and emails" in page.content and b"Requests about their data" in page.content
    client.logout()
    sign_in(client, personas.teacher)
    page = client.get(url)
    assert b"Requests and emails" not in page.content and b"Requests about their data" not in page.content


def test_an_archived_guardian_and_pupil_say_why_their_details_are_gone(client, personas, registry):
    from consent.retention import retention_apply

    pupil = registry["pupils"]["P2"]
    Pupil.objects.filter(pk=pupil.pk).update(left_on=dt.date(2026, 7, 1))
    retention_apply(now=timezone.now().replace(year=2026, month=8, day=2))
    sign_in(client, personas.office)
    assert b"Former parent or carer" in client.get(
        reverse("consent:guardian", kwargs={"pk": registry["guardians"]["P2"].pk})).content
    assert b"consent evidence is kept until" in client.get(reverse("consent:pupil", kwargs={"pk": pupil.pk})).content


@pytest.mark.parametrize(("persona", "shown", "hidden"), [
    ("teacher", [b">Notices<", b">Risk register<"],
     [b"Parents' requests", b">Retention<", b"Consent requests", b"Import from MIS", b"Spreadsheet (CSV)"]),
    ("office", [b">Notices<", b"Parents' requests", b"Consent requests", b"Import from MIS",
                b"Spreadsheet (CSV)"], [b">Retention<"]),
    ("headteacher", [b">Notices<", b"Parents' requests", b">Retention<", b"Consent requests",
                     b"Import from MIS", b"Spreadsheet (CSV)"], []),
])
def test_the_menu_and_the_pupil_list_offer_each_role_its_tools(client, personas, registry, persona, shown, hidden):
    sign_in(client, getattr(personas, persona))
    page = client.get(reverse("consent:pupils", kwargs={"school_pk": personas.school.pk})).content
    for text in shown:
        assert text in page, text
    for text in hidden:
        assert text not in page, text


def test_a_second_purpose_is_chosen_on_the_list_the_requests_and_the_exports(client, personas, registry):
    from consent.models import ConsentRequest
    from tests.factories import PurposeFactory

    recording = PurposeFactory(organisation=personas.school.organisation, name="Recording of lessons",
                               slug="recording")
    publish(recording)
    p1 = registry["pupils"]["P1"]
    consent_give(guardian=registry["guardians"]["P1"], pupil=p1, notice=recording.current_notice(),
                 attestation=True)
    sign_in(client, personas.office)
    pupils_url = reverse("consent:pupils", kwargs={"school_pk": personas.school.pk})

    page = client.get(pupils_url, {"purpose": recording.pk})
    assert page.context["purpose"] == recording and b"Recording of lessons" in page.content
    assert _badges(page)["P1"] == "Consent given" and _badges(page)["P2"] == "No answer"  # refused video, not this
    assert client.get(pupils_url).context["purpose"] != recording  # the first purpose by default

    csv = client.get(reverse("consent:register-csv", kwargs={"school_pk": personas.school.pk}),
                     {"purpose": recording.pk, "status": "given"})
    body = b"".join(csv.streaming_content).decode("utf-8-sig")
    assert "P1" in body and "P5" not in body  # P5 consented to video lessons, not to recording

    requests_url = reverse("consent:requests-send", kwargs={"school_pk": personas.school.pk})
    client.post(requests_url, {"purpose": recording.pk})
    assert set(ConsentRequest.objects.values_list("purpose_id", flat=True)) == {recording.pk}
    # Another organisation's purpose id falls back to this organisation's first purpose.
    other = PurposeFactory(organisation=personas.other_school.organisation, slug="elsewhere")
    assert client.get(pupils_url, {"purpose": other.pk}).context["purpose"].organisation == personas.organisation
