"""The parent page behind a personal link: promises 4, 5 and 8 and design.md's "Parent links"."""

import logging
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.apps import apps
from django.core.cache import cache
from django.utils import timezone

from consent.links import guardian_link_issue, guardian_link_resolve, token_hash
from consent.models import ConsentEvent, ConsentState, ConsentStatus, GuardianLink, Pupil
from consent.services import consent_record_by_staff
from lib.logging_filters import MaskParentTokens
from outbox.models import OutboxMessage
from schools.models import AuditEntry, Role
from tests.factories import MembershipFactory, SchoolFactory, UserFactory

from .consent_setup import guardian_of, publish, pupil_at, purpose_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limit():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def family():
    school = SchoolFactory(time_zone="Europe/London")
    purpose = purpose_for(school)
    notice = publish(purpose)
    pupil = pupil_at(school, first_name="Ada", last_name="Byron")
    guardian = guardian_of(pupil)
    url = guardian_link_issue(guardian=guardian, purpose=purpose)
    return {"school": school, "purpose": purpose, "notice": notice, "pupil": pupil,
            "guardian": guardian, "url": url, "path": urlsplit(url).path}


def token_of(path: str) -> str:
    return path.split("/")[2]


def row_counts() -> dict[str, int]:
    models = [*apps.get_app_config("consent").get_models(), *apps.get_app_config("outbox").get_models(), AuditEntry]
    return {model._meta.label: model.objects.count() for model in models}


def state_of(family) -> str:
    status = ConsentStatus.objects.filter(guardian=family["guardian"], pupil=family["pupil"]).first()
    return status.state if status else ConsentState.NONE


def give(client, family, **extra):
    data = {"pupil": family["pupil"].pk, "decision": "yes", "attestation": "on", **extra}
    return client.post(family["path"], data)


# --- Opening a link changes nothing (promise 4) ----------------------------------------------------


def test_get_and_head_of_the_page_and_the_done_page_write_nothing(client, family):
    event = give(client, family)  # something to show on the done page
    done_path = event["Location"]
    before = row_counts()
    for path in (family["path"], done_path):
        assert client.get(path).status_code == 200
        assert client.head(path).status_code == 200
    assert row_counts() == before


def test_the_page_shows_the_school_the_notice_and_the_child(client, family):
    page = client.get(family["path"]).content.decode()
    assert family["school"].name in page
    assert family["notice"].letter in page and family["notice"].protocol in page
    assert "<details" in page and "<script" not in page
    assert "Ada Byron" in page
    assert "Yes, my child may take part" in page
    assert "I have parental responsibility for this child" in page


def test_a_child_archived_by_the_retention_schedule_is_no_longer_on_the_page(client, family):
    sibling = pupil_at(family["school"], first_name="Bea", last_name="Byron")
    guardian_of(sibling, guardian=family["guardian"])
    Pupil.objects.filter(pk=sibling.pk).update(archived_at=timezone.now())
    page = client.get(family["path"]).content.decode()
    assert "Ada Byron" in page and "Bea" not in page


# --- Deciding --------------------------------------------------------------------------------------


def test_giving_with_the_attestation_records_consent_and_sends_one_confirmation_with_a_working_link(
    client, family
):
    response = give(client, family)
    assert response.status_code == 302
    assert response["Location"].startswith(family["path"] + "done/")
    assert state_of(family) == ConsentState.GIVEN
    event = ConsentEvent.objects.get()
    assert event.attestation and event.channel == ConsentEvent.Channel.PARENT_LINK

    (email,) = OutboxMessage.objects.filter(template="consent-confirmation")
    assert email.recipient == family["guardian"].email
    assert "Ada" in email.subject and "Consent given" in email.body_text
    local = timezone.localtime(event.created_at, family["school"].tz)
    assert local.strftime("%H:%M") in email.body_text
    link = next(word for word in email.body_text.split() if "/p/" in word)
    assert link.startswith("http://127.0.0.1:8000/p/") or link.startswith("https://")
    assert client.get(urlsplit(link).path).status_code == 200

    done = client.get(response["Location"]).content.decode()
    assert "Consent given" in done and "Ada" in done


def test_giving_without_the_attestation_shows_the_error_and_writes_nothing(client, family):
    before = row_counts()
    response = client.post(family["path"], {"pupil": family["pupil"].pk, "decision": "yes"})
    assert response.status_code == 400
    assert "Nothing was recorded" in response.content.decode()
    assert "parental responsibility" in response.content.decode()
    assert row_counts() == before


def test_refusing_records_a_refusal_and_confirms_it(client, family):
    response = client.post(family["path"], {"pupil": family["pupil"].pk, "decision": "no"})
    assert response.status_code == 302
    assert state_of(family) == ConsentState.REFUSED
    assert OutboxMessage.objects.filter(template="consent-confirmation").count() == 1


def test_withdrawing_takes_one_button_and_confirms_it(client, family):
    give(client, family)
    response = client.post(family["path"], {"pupil": family["pupil"].pk, "decision": "withdraw"})
    assert response.status_code == 302
    assert state_of(family) == ConsentState.WITHDRAWN
    assert OutboxMessage.objects.filter(template="consent-confirmation").count() == 2


def test_a_child_of_another_family_cannot_be_decided_for(client, family):
    stranger = pupil_at(family["school"])
    guardian_of(stranger)
    before = row_counts()
    response = client.post(family["path"], {"pupil": stranger.pk, "decision": "no"})
    assert response.status_code == 400
    assert row_counts() == before


def test_an_expired_link_still_withdraws_but_cannot_give(client, family):
    give(client, family)
    with time_machine.travel(timezone.now() + GuardianLink.GIVE_PERIOD + timedelta(days=1)):
        page = client.get(family["path"]).content.decode()
        assert "Withdraw consent for Ada" in page
        assert "Yes, my child may take part" not in page
        before = row_counts()
        refused = give(client, family)
        assert refused.status_code == 400 and row_counts() == before
        withdrawn = client.post(family["path"], {"pupil": family["pupil"].pk, "decision": "withdraw"})
        assert withdrawn.status_code == 302
    assert state_of(family) == ConsentState.WITHDRAWN


def test_staff_recorded_decisions_send_the_confirmation_too(family):
    staff = UserFactory()
    MembershipFactory(user=staff, school=family["school"], role=Role.OFFICE)
    consent_record_by_staff(
        staff=staff, guardian=family["guardian"], pupil=family["pupil"], notice=family["notice"],
        kind=ConsentEvent.Kind.REFUSED, channel=ConsentEvent.Channel.PAPER_FORM,
        received_on=timezone.localdate(timezone.now(), family["school"].tz),
    )
    assert OutboxMessage.objects.filter(template="consent-confirmation").count() == 1


# --- Bad tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="tampered"),
    pytest.param(lambda t: t[:20], id="truncated"),
    pytest.param(lambda t: "x" * 10_240, id="10 KB"),
])
def test_bad_tokens_get_the_generic_page(client, family, mangle):
    response = client.get(f"/p/{mangle(token_of(family['path']))}/")
    assert response.status_code == 404
    assert "This link does not work" in response.content.decode()
    assert "Ada" not in response.content.decode()


def test_another_purposes_link_is_not_this_purposes_link(client, family):
    other_purpose = purpose_for(family["school"])
    publish(other_purpose)
    url = guardian_link_issue(guardian=family["guardian"], purpose=other_purpose)
    give(client, {**family, "path": urlsplit(url).path})
    # Decided under the other purpose only: this purpose's status is untouched.
    assert not ConsentStatus.objects.filter(purpose=family["purpose"]).exists()
    assert guardian_link_resolve(token_of(urlsplit(url).path)).purpose == other_purpose


def test_a_revoked_link_gets_the_generic_page(client, family):
    GuardianLink.objects.update(revoked_at=timezone.now())
    assert client.get(family["path"]).status_code == 404


def test_after_twenty_bad_tokens_the_client_gets_429_and_good_links_are_not_counted(client, family):
    for _ in range(30):
        assert client.get(family["path"]).status_code == 200  # good links never count
    for n in range(20):
        assert client.get(f"/p/bad-token-{n}/").status_code == 404
    response = client.get("/p/bad-token-21/")
    assert response.status_code == 429
    assert "try again later" in response.content.decode()
    assert client.get(family["path"], REMOTE_ADDR="192.0.2.7").status_code == 200


def test_tokens_are_stored_only_as_hashes(family):
    token = token_of(family["path"])
    for row in GuardianLink.objects.values():
        assert all(token not in str(value) for value in row.values())
    assert GuardianLink.objects.filter(token_sha256=token_hash(token)).exists()


def test_links_are_built_from_the_site_url_not_the_host_header(settings, family):
    settings.SITE_URL = "https://gatehouse.example.org"
    url = guardian_link_issue(guardian=family["guardian"], purpose=family["purpose"])
    assert url.startswith("https://gatehouse.example.org/p/")


# --- Headers and logs ------------------------------------------------------------------------------


def test_every_parent_response_says_no_referrer_and_no_store(client, family):
    responses = [client.get(family["path"]), client.head(family["path"])]
    responses.append(client.post(family["path"], {"pupil": family["pupil"].pk, "decision": "yes"}))
    redirect = give(client, family)
    responses += [redirect, client.get(redirect["Location"]), client.get("/p/not-a-token/")]
    for n in range(25):
        client.get(f"/p/bad-{n}/")
    responses.append(client.get("/p/bad-last/"))
    assert responses[-1].status_code == 429
    for response in responses:
        assert response["Referrer-Policy"] == "no-referrer", response
        assert response["Cache-Control"] == "no-store", response


def test_the_logging_filter_masks_a_token_in_a_formatted_access_log_line(family):
    token = token_of(family["path"])
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s %s',
        (f"GET /p/{token}/done/?event=1 HTTP/1.1", 200, 1234), None,
    )
    assert MaskParentTokens().filter(record)
    line = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s").format(record)
    assert token not in line
    assert '"GET /p/***/done/?event=1 HTTP/1.1" 200 1234' in line


def test_the_access_loggers_go_through_the_masking_handler():
    for name in ("django.server", "gunicorn.access", ""):
        handlers = logging.getLogger(name).handlers
        assert any(isinstance(f, MaskParentTokens) for h in handlers for f in h.filters), name


def test_a_post_without_the_csrf_token_is_refused_even_from_a_no_referrer_page(family):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    before = row_counts()
    response = strict.post(family["path"], {"pupil": family["pupil"].pk, "decision": "no"}, HTTP_ORIGIN="null")
    assert response.status_code == 403
    foreign = strict.post(family["path"], {"pupil": family["pupil"].pk, "decision": "no"},
                          HTTP_ORIGIN="https://evil.example")
    assert foreign.status_code == 403
    assert row_counts() == before


def test_a_post_with_the_csrf_token_and_a_null_origin_is_accepted(family):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.get(family["path"])
    token = strict.cookies["csrftoken"].value
    response = strict.post(family["path"], {"pupil": family["pupil"].pk, "decision": "no",
                                            "csrfmiddlewaretoken": token}, HTTP_ORIGIN="null")
    assert response.status_code == 302
    assert state_of(family) == ConsentState.REFUSED


def test_consent_given_on_an_older_notice_can_be_renewed_from_the_page(client, family):
    give(client, family)
    assert "Save my answer for Ada" not in client.get(family["path"]).content.decode()
    publish(family["purpose"])
    assert "Save my answer for Ada" in client.get(family["path"]).content.decode()
    assert give(client, family).status_code == 302
    assert ConsentStatus.objects.get().last_event.notice_version == 2



@pytest.mark.parametrize("value", ["²", "1e3", "-1", "9" * 5000, "99999999999999999999999"])
def test_an_odd_id_on_the_done_pages_shows_the_page_without_it_not_a_500(client, family, value):
    assert client.get(family["path"] + "done/", {"event": value}).status_code == 200
    assert client.get(family["path"] + "rights/done/", {"request": value}).status_code == 200
