"""Parents' rights (issue 3, point 9): the due date, the parent's "Your data" page behind their link, the
copy of everything held, and the staff queue with its actions."""

import datetime as dt
import json
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from consent.links import guardian_link_issue
from consent.models import ConsentEvent, GuardianLink, RightsRequest
from consent.rights import (
    PARENT_REQUESTS_PER_DAY,
    guardian_data_export,
    guardian_data_pdf,
    rights_due_on,
    rights_request_create,
    rights_request_record_by_staff,
    rights_request_respond,
    rights_request_status_change,
)
from consent.services import consent_give, consent_record_by_staff, consent_refuse
from outbox.models import OutboxMessage
from schools.models import AuditEntry, Role
from tests.conftest import sign_in
from tests.factories import GroupFactory, GuardianFactory, MembershipFactory, SchoolFactory, UserFactory

from .consent_setup import guardian_of, publish, pupil_at, purpose_for
from .test_parent_page import row_counts, token_of

pytestmark = pytest.mark.django_db

Kind = RightsRequest.Kind
Status = RightsRequest.Status


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    cache.clear()
    yield
    cache.clear()


# --- The due date: one calendar month ------------------------------------------------------------------


@pytest.mark.parametrize(("received", "due"), [
    ("2025-09-03", "2025-10-03"),
    ("2025-01-31", "2025-02-28"),
    ("2024-01-31", "2024-02-29"),  # leap year
    ("2024-01-30", "2024-02-29"),
    ("2023-01-29", "2023-02-28"),
    ("2024-02-29", "2024-03-29"),
    ("2025-03-31", "2025-04-30"),
    ("2025-08-31", "2025-09-30"),
    ("2025-12-15", "2026-01-15"),  # across the year end
    ("2025-12-31", "2026-01-31"),
    ("2100-01-31", "2100-02-28"),  # not a leap year (divisible by 100)
    ("2000-01-31", "2000-02-29"),  # a leap year (divisible by 400)
])
def test_the_due_date_is_one_calendar_month_later_or_the_last_day_of_a_shorter_month(received, due):
    assert rights_due_on(dt.date.fromisoformat(received)) == dt.date.fromisoformat(due)


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2999, 11, 30)))
def test_the_due_date_is_in_the_next_month_on_the_same_day_or_that_months_last(received):
    due = rights_due_on(received)
    assert (due.year * 12 + due.month) - (received.year * 12 + received.month) == 1
    assert due.day == received.day or (due.day < received.day and (due + dt.timedelta(days=1)).day == 1)
    assert 28 <= (due - received).days <= 31


# --- Fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def family(personas):
    """Two children with a mother who has a link, their father (another guardian), and a stranger's family."""
    school = personas.school
    school.contact_email = "office@laxey.example"
    school.save()
    purpose = purpose_for(school)
    notice = publish(purpose)
    ada = pupil_at(school, first_name="Ada", last_name="Byron", mis_id="MIS-ADA", year_group="Year 4")
    ben = pupil_at(school, first_name="Ben", last_name="Byron", mis_id="MIS-BEN", year_group="Year 2")
    GroupFactory(school=school, name="Owls").pupils.add(ada)
    GroupFactory(school=school, name="Foxes").pupils.add(ben)
    mother = guardian_of(ada, ben, guardian=GuardianFactory(
        school=school, first_name="Anne", last_name="Byron", email="anne@example.net", phone="07700 900001"))
    father = guardian_of(ada, guardian=GuardianFactory(
        school=school, first_name="Frank", last_name="Hidden", email="frank@secret.example", phone="07700 999999"))
    stranger_child = pupil_at(school, first_name="Zed", last_name="Stranger", mis_id="MIS-ZED")
    stranger = guardian_of(stranger_child)
    stranger.email = "stranger@example.net"
    stranger.save()
    consent_give(guardian=mother, pupil=ada, notice=notice, attestation=True, user_agent="Mozilla/5.0 Firefox/120.0")
    consent_refuse(guardian=father, pupil=ada, notice=notice)
    consent_give(guardian=stranger, pupil=stranger_child, notice=notice, attestation=True)
    office = personas.office
    consent_record_by_staff(
        staff=office, guardian=mother, pupil=ben, notice=notice, kind=ConsentEvent.Kind.GIVEN,
        channel=ConsentEvent.Channel.PAPER_FORM, received_on=timezone.now().astimezone(school.tz).date(),
        note="Staff-only note: signed at parents' evening", attestation=True,
    )
    path = urlsplit(guardian_link_issue(guardian=mother, purpose=purpose)).path
    father_path = urlsplit(guardian_link_issue(guardian=father, purpose=purpose)).path
    return {
        "school": school, "purpose": purpose, "notice": notice, "ada": ada, "ben": ben, "mother": mother,
        "father": father, "stranger": stranger, "stranger_child": stranger_child, "path": path,
        "rights": path + "rights/", "father_rights": father_path + "rights/",
    }


def _ask(client, family, kind, **data):
    return client.post(family["rights"], {"kind": kind, **data})


def _audits(action: str):
    return AuditEntry.objects.filter(action=action)


# --- The parent's page -----------------------------------------------------------------------------------


def test_the_consent_page_links_to_the_your_data_section_below_the_form(client, family):
    page = client.get(family["path"]).content.decode()
    # Below the children and their answers, so that it never distracts from the consent form.
    assert page.index("Ben Byron") < page.index("Your data")
    assert f'href="{family["rights"]}"' in page


def test_the_rights_page_explains_each_request_and_offers_both_downloads(client, family):
    response = client.get(family["rights"])
    assert response.status_code == 200
    page = response.content.decode()
    for text in ("Download as PDF", "Download as JSON", "Ask for a correction", "Ask for your data to be deleted",
                 "Ask the school to stop using your data", "one calendar month", "Ada Byron", "Ben Byron"):
        assert text in page, text
    assert "<script" not in page
    # Three forms on one page, and not one id twice.
    ids = [part.split('"')[0] for part in page.split(' id="')[1:]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("kind", [Kind.CORRECTION, Kind.DELETION, Kind.SUPPRESSION])
def test_a_parent_sends_each_kind_of_request_and_is_told_the_due_date(client, family, kind):
    with time_machine.travel(dt.datetime(2025, 1, 31, 10, 0, tzinfo=dt.UTC), tick=False):
        response = _ask(client, family, kind, pupil=family["ada"].pk, details="My email is anne@new.example")
    assert response.status_code == 302
    request = RightsRequest.objects.get()
    assert (request.kind, request.guardian, request.pupil, request.school) == (
        kind, family["mother"], family["ada"], family["school"])
    assert request.details == "My email is anne@new.example"
    assert request.channel == RightsRequest.Channel.PARENT_LINK
    assert request.status == Status.OPEN
    assert request.due_on == dt.date(2025, 2, 28)
    assert "Anne Byron" in request.guardian_label

    (entry,) = _audits("rights.requested")
    assert entry.actor_kind == AuditEntry.ActorKind.GUARDIAN and entry.actor_id == family["mother"].pk
    assert entry.data["due_on"] == "2025-02-28" and entry.data["kind"] == kind
    assert "anne@new.example" not in json.dumps(entry.data)  # the parent's words stay in the encrypted field

    (email,) = OutboxMessage.objects.filter(template="rights-acknowledgement")
    assert email.recipient == "anne@example.net"
    assert "Friday 28 February 2025" in email.body_text and "Friday 28 February 2025" in email.body_html
    assert email.subject == f"We have your request: {Kind(kind).label} — Laxey Test School"
    link = next(word for word in email.body_text.split() if "/p/" in word)
    assert link.endswith("/rights/") and f'href="{link}"' in email.body_html
    assert client.get(urlsplit(link).path).status_code == 200

    done = client.get(response["Location"])
    assert done.status_code == 200
    assert "28 February 2025" in done.content.decode()


def test_the_month_runs_from_the_schools_date_not_utcs(client, family):
    # 23:30 UTC on 31 March is already 1 April in London (BST): due 1 May, not 30 April.
    with time_machine.travel(dt.datetime(2025, 3, 31, 23, 30, tzinfo=dt.UTC), tick=False):
        _ask(client, family, Kind.DELETION)
    assert RightsRequest.objects.get().due_on == dt.date(2025, 5, 1)


def test_a_correction_without_saying_what_is_wrong_records_nothing(client, family):
    before = row_counts()
    response = _ask(client, family, Kind.CORRECTION, details="   ")
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was sent" in page and "what is wrong" in page
    assert row_counts() == before


def test_a_deletion_or_suppression_needs_no_details(client, family):
    assert _ask(client, family, Kind.SUPPRESSION).status_code == 302
    assert RightsRequest.objects.get().pupil is None


def test_a_parent_cannot_name_another_familys_child_or_an_unknown_kind(client, family):
    before = row_counts()
    assert _ask(client, family, Kind.DELETION, pupil=family["stranger_child"].pk).status_code == 400
    assert _ask(client, family, Kind.ACCESS).status_code == 400
    assert _ask(client, family, "everything").status_code == 400
    assert row_counts() == before


def test_a_link_cannot_flood_the_queue(client, family):
    for _ in range(PARENT_REQUESTS_PER_DAY):
        assert _ask(client, family, Kind.DELETION).status_code == 302
    before = row_counts()
    response = _ask(client, family, Kind.DELETION)
    assert response.status_code == 400 and "several requests today" in response.content.decode()
    assert row_counts() == before


def test_a_guardian_without_an_email_address_gets_no_acknowledgement_and_is_told_so(client, family):
    family["mother"].email = ""
    family["mother"].save()
    response = _ask(client, family, Kind.SUPPRESSION)
    assert not OutboxMessage.objects.filter(template="rights-acknowledgement").exists()
    assert "answer by post" in client.get(response["Location"]).content.decode()


def test_the_page_lists_the_parents_own_requests_only(client, family):
    rights_request_create(guardian=family["father"], kind=Kind.DELETION, details="Father's secret")
    _ask(client, family, Kind.CORRECTION, details="Ben is in Year 3")
    page = client.get(family["rights"]).content.decode()
    assert "Your requests" in page and "Correction" in page
    assert "Deletion" not in page.split("Your requests")[1].split("Ask the school")[0]


# --- Opening a link writes nothing; bad tokens get the generic page ---------------------------------------


def test_get_and_head_of_every_new_parent_url_write_nothing(client, family):
    done = _ask(client, family, Kind.DELETION)["Location"]
    before = row_counts()
    for path in (family["rights"], family["rights"] + "download/", done, family["rights"] + "done/"):
        for method in (client.get, client.head):
            response = method(path)
            assert response.status_code in (200, 302), path
    assert client.get(family["rights"] + "download/")["Location"] == family["rights"]
    assert row_counts() == before


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="tampered"),
    pytest.param(lambda t: t[:20], id="truncated"),
    pytest.param(lambda t: "x" * 10_240, id="10 KB"),
])
@pytest.mark.parametrize("suffix", ["rights/", "rights/download/", "rights/done/"])
def test_bad_tokens_get_the_generic_page_on_the_rights_routes(client, family, mangle, suffix):
    path = f"/p/{mangle(token_of(family['path']))}/{suffix}"
    before = row_counts()
    responses = [client.get(path)]
    if suffix != "rights/done/":  # the done page only answers GET and HEAD, like the consent done page
        responses.append(client.post(path, {"kind": Kind.DELETION, "format": "json"}))
    for response in responses:
        assert response.status_code == 404
        page = response.content.decode()
        assert "This link does not work" in page and "Ada" not in page and "Byron" not in page
        assert response["Referrer-Policy"] == "no-referrer" and response["Cache-Control"] == "no-store"
    assert RightsRequest.objects.count() == before["consent.RightsRequest"]


def test_a_revoked_link_gets_the_generic_page_on_the_rights_routes(client, family):
    GuardianLink.objects.update(revoked_at=timezone.now())
    assert client.get(family["rights"]).status_code == 404
    assert client.post(family["rights"] + "download/", {"format": "json"}).status_code == 404


def test_another_guardians_link_shows_only_their_own_requests_and_data(client, family):
    mine = rights_request_create(guardian=family["mother"], kind=Kind.CORRECTION, details="Anne's own words")
    done = client.get(family["father_rights"] + f"done/?request={mine.pk}").content.decode()
    assert "Anne's own words" not in done and "Correction" not in done
    data = json.loads(client.post(family["father_rights"] + "download/", {"format": "json"}).content)
    assert data["you"]["email"] == "frank@secret.example"
    assert "anne@example.net" not in json.dumps(data)


def test_every_rights_response_says_no_referrer_and_no_store(client, family):
    responses = [
        client.get(family["rights"]), client.head(family["rights"]),
        _ask(client, family, Kind.CORRECTION),  # 400
        client.get(family["rights"] + "download/"),
        client.post(family["rights"] + "download/", {"format": "json"}),
        client.post(family["rights"] + "download/", {"format": "pdf"}),
    ]
    sent = _ask(client, family, Kind.DELETION)
    responses += [sent, client.get(sent["Location"])]
    for n in range(25):
        client.get(f"/p/bad-{n}/rights/")
    responses.append(client.get("/p/bad-last/rights/"))
    assert responses[-1].status_code == 429
    for response in responses:
        assert response["Referrer-Policy"] == "no-referrer", response
        assert response["Cache-Control"] == "no-store", response


def test_posts_without_the_csrf_token_are_refused_and_with_it_and_a_null_origin_accepted(family):
    strict = Client(enforce_csrf_checks=True)
    before = row_counts()
    for suffix, data in (("", {"kind": Kind.DELETION}), ("download/", {"format": "json"})):
        assert strict.post(family["rights"] + suffix, data, HTTP_ORIGIN="null").status_code == 403
    assert row_counts() == before
    strict.get(family["rights"])
    token = strict.cookies["csrftoken"].value
    response = strict.post(family["rights"], {"kind": Kind.DELETION, "csrfmiddlewaretoken": token},
                           HTTP_ORIGIN="null")
    assert response.status_code == 302
    foreign = strict.post(family["rights"] + "download/", {"format": "json", "csrfmiddlewaretoken": token},
                          HTTP_ORIGIN="https://evil.example")
    assert foreign.status_code == 403


# --- The copy of everything held ---------------------------------------------------------------------------


def test_the_export_holds_the_guardian_and_their_childrens_data(family):
    rights_request_create(guardian=family["mother"], kind=Kind.CORRECTION, details="Ben is in Year 3")
    data = guardian_data_export(guardian=family["mother"])
    assert data["you"]["email"] == "anne@example.net" and data["you"]["phone"] == "07700 900001"
    assert [c["first_name"] for c in data["children"]] == ["Ada", "Ben"]
    ada, ben = data["children"]
    assert (ada["mis_id"], ada["year_group"], ada["groups"]) == ("MIS-ADA", "Year 4", ["Owls"])
    assert (ben["mis_id"], ben["groups"]) == ("MIS-BEN", ["Foxes"])
    (given_link,) = ada["your_consent_decisions"]
    notice = family["notice"]
    assert given_link["decision"] == "Consent given"
    assert given_link["channel"] == "Parent's personal link"
    assert given_link["notice_version"] == notice.version and given_link["notice_sha256"] == notice.sha256
    assert given_link["parental_responsibility_attested"] is True
    assert given_link["browser"] == "Firefox"
    (on_paper,) = ben["your_consent_decisions"]
    assert on_paper["channel"] == "Paper form" and on_paper["received_on"]
    assert ada["your_current_answers"][0]["your_answer"] == "Consented"
    (request,) = data["your_requests"]
    assert request["details"] == "Ben is in Year 3" and request["status"] == "Open"
    assert data["your_personal_links"] and data["emails_sent_to_you"]


def test_the_export_leaves_out_the_other_guardian_other_families_and_staff_internals(family, personas):
    text = json.dumps(guardian_data_export(guardian=family["mother"]))
    for absent in ("Frank", "Hidden", "frank@secret.example", "07700 999999",  # the children's father
                   "Zed", "Stranger", "stranger@example.net", "MIS-ZED",  # another family
                   "Consent refused",  # the father's decision about Ada
                   "Staff-only note", personas.office.username, personas.office.email):  # staff internals
        assert absent not in text, absent
    for link in GuardianLink.objects.all():
        assert link.token_sha256 not in text


def test_the_export_costs_a_constant_number_of_queries(family, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        guardian_data_export(guardian=family["mother"])
    for _ in range(5):
        extra = pupil_at(family["school"])
        guardian_of(extra, guardian=family["mother"])
        GroupFactory(school=family["school"]).pupils.add(extra)
        consent_give(guardian=family["mother"], pupil=extra, notice=family["notice"], attestation=True)
    with django_assert_max_num_queries(10):
        assert len(guardian_data_export(guardian=family["mother"])["children"]) == 7


def test_the_json_download_is_valid_json_an_attachment_and_audited(client, family):
    response = client.post(family["rights"] + "download/", {"format": "json"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith('attachment; filename="data-held-')
    data = json.loads(response.content)
    assert data["format"] == "gatehouse-guardian-data/1"
    assert data["you"]["last_name"] == "Byron"
    (entry,) = _audits("rights.data_downloaded")
    assert entry.actor_kind == AuditEntry.ActorKind.GUARDIAN and entry.data["format"] == "json"


def _pdf_text(content: bytes, tmp_path) -> str:
    assert shutil.which("pdftotext"), "pdftotext (poppler-utils) is needed; .ci/run installs it"
    path = tmp_path / "data.pdf"
    path.write_bytes(content)
    # Raw order keeps each table cell's words together; whitespace is folded, so wrapping does not matter.
    raw = subprocess.run(["pdftotext", "-raw", str(path), "-"], check=True, capture_output=True, text=True).stdout
    return " ".join(raw.split())


def test_the_pdf_download_renders_the_same_data(client, family, tmp_path):
    response = client.post(family["rights"] + "download/", {"format": "pdf"})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    text = _pdf_text(response.content, tmp_path)
    for present in ("Anne Byron", "anne@example.net", "Ada Byron", "Ben Byron", "MIS-ADA", "Owls", "Year 4",
                    "Consent given", "Paper form", "Page 1 of"):
        assert present in text, present
    for absent in ("frank@secret.example", "Zed", "Staff-only note"):
        assert absent not in text, absent
    assert family["notice"].sha256 in text.replace(" ", "")  # the fingerprint, wrapped in its column
    assert _audits("rights.data_downloaded").get().data["format"] == "pdf"


def test_the_pdf_escapes_what_parents_typed(family, tmp_path):
    rights_request_create(guardian=family["mother"], kind=Kind.CORRECTION, details="<b>Bold</b> & <img src=x>")
    text = _pdf_text(guardian_data_pdf(guardian=family["mother"]), tmp_path)
    assert "<b>Bold</b> & <img src=x>" in text


# --- Staff: the queue ---------------------------------------------------------------------------------------


def _request(guardian, kind=Kind.DELETION, when=None, **extra) -> RightsRequest:
    with time_machine.travel(when or timezone.now(), tick=False):
        return rights_request_create(guardian=guardian, kind=kind, **extra)


def _queue(client, user, **params):
    sign_in(client, user)
    return client.get(reverse("consent:rights"), params)


def test_the_queue_lists_open_requests_by_due_date_with_overdue_ones_marked(client, personas, family):
    now = timezone.now()
    late = _request(family["mother"], when=now - dt.timedelta(days=45))
    soon = _request(family["mother"], Kind.CORRECTION, details="x", when=now - dt.timedelta(days=20))
    new = _request(family["father"], Kind.SUPPRESSION)
    done = _request(family["stranger"], when=now - dt.timedelta(days=60))
    rights_request_status_change(rights_request=done, status=Status.COMPLETED, actor=personas.office)
    response = _queue(client, personas.office)
    assert response.status_code == 200
    rows = list(response.context["page"].object_list)
    assert rows == [late, soon, new]
    assert [r.overdue for r in rows] == [True, False, False]
    page = response.content.decode()
    assert "Overdue" in page and "table-danger" in page
    counts = response.context["counts"]
    assert (counts["open"], counts["completed"], counts["overdue"]) == (3, 1, 1)
    assert list(_queue(client, personas.office, overdue="on").context["page"].object_list) == [late]
    assert list(_queue(client, personas.office, status="completed").context["page"].object_list) == [done]
    assert list(_queue(client, personas.office, kind="suppression").context["page"].object_list) == [new]
    assert len(_queue(client, personas.office, status="all").context["page"].object_list) == 4


def test_the_queue_shows_only_the_schools_in_scope_and_filters_by_school(client, personas, family):
    sister = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School")
    theirs = _request(guardian_of(pupil_at(sister)))
    ours = _request(family["mother"])
    foreign = _request(guardian_of(pupil_at(personas.other_school)))
    assert set(_queue(client, personas.office).context["page"].object_list) == {ours}
    dpo_rows = _queue(client, personas.dpo).context["page"].object_list
    assert set(dpo_rows) == {ours, theirs} and foreign not in dpo_rows
    by_school = _queue(client, personas.dpo, school=sister.pk).context["page"].object_list
    assert list(by_school) == [theirs]
    # A school out of scope in the filter is no filter at all, never a peek.
    assert foreign not in _queue(client, personas.dpo, school=personas.other_school.pk).context["page"].object_list


def test_the_queue_is_paginated_and_costs_a_constant_number_of_queries(
    client, personas, family, django_assert_max_num_queries
):
    sign_in(client, personas.office)
    url = reverse("consent:rights")
    client.get(url)
    for _ in range(3):
        _request(family["mother"])
    with django_assert_max_num_queries(16):
        client.get(url)
    for n in range(60):
        RightsRequest.objects.create(school=family["school"], guardian=family["father"], guardian_label="F",
                                     kind=Kind.DELETION, due_on=dt.date(2030, 1, 1) + dt.timedelta(days=n))
    with django_assert_max_num_queries(16):
        response = client.get(url)
    assert len(response.context["page"].object_list) == 50
    assert "Page 1 of 2" in response.content.decode()


def test_an_empty_queue_says_so(client, personas):
    assert "No open requests" in _queue(client, personas.headteacher).content.decode()


# --- Staff: one request, its status and its answer -----------------------------------------------------------


def _detail_url(request) -> str:
    return reverse("consent:rights-request", kwargs={"pk": request.pk})


def test_the_request_page_shows_the_details_the_guardian_the_child_and_the_history(client, personas, family):
    request = _request(family["mother"], Kind.CORRECTION, pupil=family["ada"], details="Ada is in Year 5")
    sign_in(client, personas.dpo)
    page = client.get(_detail_url(request)).content.decode()
    assert "Ada is in Year 5" in page
    assert reverse("consent:guardian", kwargs={"pk": family["mother"].pk}) in page
    assert reverse("consent:pupil", kwargs={"pk": family["ada"].pk}) in page
    assert "made a request about their data" in page  # the audit entry, in words
    assert "We have your request" in page  # the acknowledgement, among the emails to the guardian


def test_staff_move_a_request_on_and_each_step_is_audited(client, personas, family):
    request = _request(family["mother"])
    sign_in(client, personas.office)
    url = reverse("consent:rights-status", kwargs={"pk": request.pk})
    assert client.post(url, {"status": Status.IN_PROGRESS}).status_code == 302
    request.refresh_from_db()
    assert request.status == Status.IN_PROGRESS
    (entry,) = _audits("rights.status_changed")
    assert entry.actor_id == personas.office.pk and (entry.data["from"], entry.data["to"]) == ("open", "in_progress")
    page = client.get(_detail_url(request)).content.decode()
    assert "changed the status of a parent" in page


def test_refusing_needs_a_reason_and_a_final_status_does_not_change(client, personas, family):
    request = _request(family["mother"])
    sign_in(client, personas.office)
    url = reverse("consent:rights-status", kwargs={"pk": request.pk})
    before = row_counts()
    response = client.post(url, {"status": Status.REFUSED, "reason": " "})
    assert response.status_code == 200 and "Say why" in response.content.decode()
    assert row_counts() == before
    assert client.post(url, {"status": Status.REFUSED, "reason": "Manifestly unfounded"}).status_code == 302
    assert _audits("rights.status_changed").get().data["reason"] == "Manifestly unfounded"
    before = row_counts()
    assert client.post(url, {"status": Status.COMPLETED}).status_code == 200
    assert row_counts() == before
    with pytest.raises(ValidationError):
        rights_request_status_change(rights_request=request, status=Status.IN_PROGRESS, actor=personas.office)


def test_completing_a_suppression_restricts_the_guardian_and_shows_it(client, personas, family):
    request = _request(family["mother"], Kind.SUPPRESSION)
    assert family["mother"].processing_restricted_at is None
    rights_request_status_change(rights_request=request, status=Status.COMPLETED, actor=personas.headteacher)
    family["mother"].refresh_from_db()
    assert family["mother"].processing_restricted_at is not None
    (entry,) = _audits("rights.contact_suppressed")
    assert entry.object_type == "consent.guardian" and entry.object_id == str(family["mother"].pk)
    assert entry.data["rights_request"] == request.pk
    sign_in(client, personas.headteacher)
    page = client.get(_detail_url(request)).content.decode()
    assert "Data restricted since" in page and "suppressed a parent" in page
    panel = render_to_string("consent/rights/_guardian_panel.html", {"guardian": family["mother"], "may_edit": False})
    assert "Data restricted" in panel and "send them no consent requests" in panel
    # Refusing a suppression restricts nothing.
    refused = _request(family["father"], Kind.SUPPRESSION)
    rights_request_status_change(rights_request=refused, status=Status.REFUSED, reason="Identity not confirmed",
                                 actor=personas.headteacher)
    family["father"].refresh_from_db()
    assert family["father"].processing_restricted_at is None


def test_the_answer_is_emailed_escaped_in_html_and_recorded(client, personas, family):
    request = _request(family["mother"], Kind.CORRECTION, details="wrong class")
    sign_in(client, personas.dpo)
    answer = "We corrected it.\nTom & <b>Jerry</b> say hello."
    response = client.post(reverse("consent:rights-respond", kwargs={"pk": request.pk}),
                           {"response": answer, "then": Status.COMPLETED})
    assert response.status_code == 302
    request.refresh_from_db()
    assert request.response == answer and request.status == Status.COMPLETED
    assert request.responded_by == personas.dpo and request.responded_at is not None
    (email,) = OutboxMessage.objects.filter(template="rights-response")
    assert email.recipient == "anne@example.net"
    assert (email.related_type, email.related_id) == ("consent.rightsrequest", str(request.pk))
    assert "Tom & <b>Jerry</b> say hello." in email.body_text
    assert "Tom &amp; &lt;b&gt;Jerry&lt;/b&gt; say hello." in email.body_html and "<b>Jerry</b>" not in email.body_html
    assert "Status: Completed" in email.body_text
    assert email.subject == "Answer to your request: Correction — Laxey Test School"
    link = next(word for word in email.body_text.split() if "/p/" in word)
    assert f'href="{link}"' in email.body_html
    assert client.get(urlsplit(link).path).status_code == 200
    assert _audits("rights.responded").get().data == {"emailed": True, "status": "completed", "kind": "correction"}
    assert _audits("rights.status_changed").get().data["to"] == "completed"
    page = client.get(_detail_url(request)).content.decode()
    assert "Latest answer sent" in page and "Tom &amp; &lt;b&gt;Jerry&lt;/b&gt;" in page


def test_an_empty_answer_changes_nothing(client, personas, family):
    request = _request(family["mother"])
    sign_in(client, personas.office)
    before = row_counts()
    response = client.post(reverse("consent:rights-respond", kwargs={"pk": request.pk}), {"response": "  "})
    assert response.status_code == 200
    assert row_counts() == before


def test_an_answer_to_a_guardian_without_an_email_is_recorded_for_the_post(client, personas, family):
    request = _request(family["mother"])
    family["mother"].email = ""
    family["mother"].save()
    sign_in(client, personas.office)
    response = client.post(reverse("consent:rights-respond", kwargs={"pk": request.pk}),
                           {"response": "Done."}, follow=True)
    assert "send it by post" in response.content.decode()
    assert not OutboxMessage.objects.filter(template="rights-response").exists()
    assert _audits("rights.responded").get().data["emailed"] is False


def test_staff_export_the_same_copy_for_an_access_request_and_it_is_audited(client, personas, family):
    access = rights_request_record_by_staff(
        staff=personas.office, guardian=family["mother"], kind=Kind.ACCESS, channel=RightsRequest.Channel.LETTER,
        received_on=timezone.now().astimezone(family["school"].tz).date(),
    )
    sign_in(client, personas.office)
    url = reverse("consent:rights-export", kwargs={"pk": access.pk})
    assert "Download PDF" in client.get(_detail_url(access)).content.decode()
    data = json.loads(client.post(url, {"format": "json"}).content)
    assert data == {**guardian_data_export(guardian=family["mother"]), "generated": data["generated"]}
    (entry,) = _audits("rights.data_downloaded")
    assert entry.actor_id == personas.office.pk and entry.object_id == str(access.pk)
    assert client.post(url, {"format": "pdf"})["Content-Type"] == "application/pdf"
    deletion = _request(family["mother"])
    assert client.post(reverse("consent:rights-export", kwargs={"pk": deletion.pk})).status_code == 404


# --- Staff: requests received by letter or phone -------------------------------------------------------------


def test_the_office_records_a_letter_and_the_month_runs_from_its_arrival(client, personas, family):
    sign_in(client, personas.office)
    found = client.get(reverse("consent:rights-new"), {"q": "byron"})
    assert family["mother"] in found.context["guardians"] and family["stranger"] not in found.context["guardians"]
    url = reverse("consent:rights-record", kwargs={"pk": family["mother"].pk})
    form = client.get(url).content.decode()
    # Today, in the only format an <input type="date"> shows (a localised 23/11/2026 shows an empty box).
    today = timezone.now().astimezone(family["school"].tz).date()
    assert f'type="date" name="received_on" value="{today.isoformat()}"' in form
    with time_machine.travel(dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC), tick=False):
        response = client.post(url, {"kind": Kind.ACCESS, "channel": RightsRequest.Channel.LETTER,
                                     "received_on": "2025-01-31", "pupil": family["ben"].pk, "acknowledge": "on"})
    assert response.status_code == 302
    request = RightsRequest.objects.get()
    assert request.due_on == dt.date(2025, 2, 28) and request.recorded_by == personas.office
    assert request.channel == "letter" and request.pupil == family["ben"]
    (entry,) = _audits("rights.recorded_by_staff")
    assert entry.actor_id == personas.office.pk
    assert OutboxMessage.objects.filter(template="rights-acknowledgement", recipient="anne@example.net").exists()
    # Overdue at once: the letter sat unrecorded past its month.
    with time_machine.travel(dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC), tick=False):
        assert _queue(client, personas.office).context["counts"]["overdue"] == 1


def test_a_request_cannot_be_recorded_as_received_in_the_future(client, personas, family):
    sign_in(client, personas.office)
    before = row_counts()
    tomorrow = timezone.now().astimezone(family["school"].tz).date() + dt.timedelta(days=1)
    response = client.post(reverse("consent:rights-record", kwargs={"pk": family["mother"].pk}),
                           {"kind": Kind.DELETION, "channel": "phone", "received_on": tomorrow.isoformat()})
    assert response.status_code == 200 and "cannot be in the future" in response.content.decode()
    assert row_counts() == before


@pytest.mark.parametrize("day", ["0001-01-01", "2000-01-01"])
def test_a_request_received_long_ago_is_refused_with_a_message_not_a_500(client, personas, family, day):
    sign_in(client, personas.office)
    before = row_counts()
    response = client.post(reverse("consent:rights-record", kwargs={"pk": family["mother"].pk}),
                           {"kind": Kind.DELETION, "channel": "phone", "received_on": day})
    assert response.status_code == 200 and "more than a year ago" in response.content.decode()
    assert row_counts() == before


def test_the_services_refuse_staff_without_a_rights_role(personas, family):
    request = _request(family["mother"])
    for user in (personas.teacher, personas.siro, personas.other_headteacher):
        with pytest.raises(PermissionDenied):
            rights_request_status_change(rights_request=request, status=Status.IN_PROGRESS, actor=user)
        with pytest.raises(PermissionDenied):
            rights_request_respond(rights_request=request, response="x", actor=user)
        with pytest.raises(PermissionDenied):
            rights_request_record_by_staff(staff=user, guardian=family["mother"], kind=Kind.ACCESS,
                                           channel="letter", received_on=dt.date(2025, 1, 1))
    outsider = UserFactory()
    MembershipFactory(user=outsider, role=Role.OFFICE, school=personas.other_school)
    with pytest.raises(PermissionDenied):
        rights_request_respond(rights_request=request, response="x", actor=outsider)


def test_every_rights_action_has_a_label():
    from schools.audit import ACTION_LABELS

    for action in ("rights.requested", "rights.recorded_by_staff", "rights.status_changed", "rights.responded",
                   "rights.data_downloaded", "rights.contact_suppressed"):
        assert action in ACTION_LABELS
