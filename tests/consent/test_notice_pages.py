"""Purposes and their notices in the UI: the purposes page, the history of versions, each version as
parents read it, comparing versions, the draft editor, the preview and publishing (with "confirm it's
you"), and what a material change does to consents, before and after its deadline."""

import datetime as dt
import re

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.reauth import SESSION_KEY, identity_recently_confirmed
from consent import notice_template
from consent.models import ConsentState, ConsentStatus, Notice, Purpose
from consent.notices import (
    DraftConflict,
    notice_diff,
    notice_draft,
    notice_draft_discard,
    notice_draft_publish,
    notice_draft_save,
    notice_publish_plan,
    purpose_create,
    purpose_update,
    text_diff,
)
from consent.services import consent_give, consent_lapse_due
from schools.models import AuditEntry
from tests.conftest import sign_in
from tests.factories import NoticeFactory, PurposeFactory

from .consent_setup import guardian_of, publish, pupil_at, purpose_for

pytestmark = pytest.mark.django_db

SEPT_1 = dt.datetime(2026, 9, 1, 9, tzinfo=dt.UTC)


def _audits(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("seq"))


def _confirmed(client) -> None:
    """What "confirm it's you" leaves in the session (the confirm page itself is tested in tests/accounts)."""
    session = client.session
    user_id = int(session["_auth_user_id"])
    session[SESSION_KEY] = {"user": user_id, "at": timezone.now().timestamp()}
    session.save()


@pytest.fixture
def purpose(personas):
    return purpose_for(personas.school)


@pytest.fixture
def consented(personas, purpose):
    """Version 1 published, and three children whose parents consented on it (one more refused)."""
    notice = publish(purpose, actor=personas.headteacher)
    pupils = [pupil_at(personas.school, mis_id=f"P{n}") for n in range(1, 5)]
    guardians = [guardian_of(p) for p in pupils]
    for pupil, guardian in zip(pupils[:3], guardians[:3], strict=True):
        consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)
    from consent.services import consent_refuse

    consent_refuse(guardian=guardians[3], pupil=pupils[3], notice=notice)
    return {"notice": notice, "pupils": pupils, "guardians": guardians}


def _url(name: str, **kwargs) -> str:
    return reverse(f"consent:{name}", kwargs=kwargs)


# --- Services: purposes -------------------------------------------------------------------------------------


def test_adding_a_purpose_generates_a_slug_prefills_its_first_draft_and_is_audited(personas):
    purpose = purpose_create(organisation=personas.organisation, name="  Recording of   lessons ",
                             reminder_interval_days=14, max_reminders=2, actor=personas.org_admin)

    assert (purpose.name, purpose.slug) == ("Recording of lessons", "recording-of-lessons")
    assert (purpose.reminder_interval_days, purpose.max_reminders) == (14, 2)
    draft = notice_draft(purpose)
    assert draft.letter == notice_template.LETTER and draft.protocol == notice_template.PROTOCOL
    assert draft.privacy_notice == notice_template.PRIVACY_NOTICE and not draft.is_published
    entry = _audits("consent.purpose_created")[-1]
    assert entry.actor_id == personas.org_admin.pk and entry.organisation_id == personas.organisation.pk
    assert entry.data["slug"] == "recording-of-lessons"


def test_a_second_purpose_with_the_same_slug_gets_a_numbered_one_and_the_same_name_is_refused(personas):
    first = purpose_create(organisation=personas.organisation, name="Recording of lessons",
                           reminder_interval_days=7, max_reminders=3, actor=personas.headteacher)
    second = purpose_create(organisation=personas.organisation, name="Recording of lessons!",
                            reminder_interval_days=7, max_reminders=3, actor=personas.headteacher)
    assert (first.slug, second.slug) == ("recording-of-lessons", "recording-of-lessons-2")
    with pytest.raises(ValidationError, match="already asks parents to agree to"):
        purpose_create(organisation=personas.organisation, name="RECORDING OF LESSONS",
                       reminder_interval_days=7, max_reminders=3, actor=personas.headteacher)
    assert Purpose.objects.filter(organisation=personas.organisation).count() == 2


@pytest.mark.parametrize(("days", "reminders", "field"), [(0, 3, "reminder_interval_days"),
                                                          (61, 3, "reminder_interval_days"),
                                                          (7, 11, "max_reminders"), (7, -1, "max_reminders")])
def test_reminder_settings_out_of_range_are_refused(personas, purpose, days, reminders, field):
    with pytest.raises(ValidationError) as caught:
        purpose_update(purpose=purpose, reminder_interval_days=days, max_reminders=reminders,
                       actor=personas.headteacher)
    assert field in caught.value.error_dict
    purpose.refresh_from_db()
    assert (purpose.reminder_interval_days, purpose.max_reminders) == (7, 3)
    assert not _audits("consent.purpose_updated")


def test_changing_reminder_settings_is_audited_with_what_changed_and_no_change_writes_nothing(personas, purpose):
    purpose_update(purpose=purpose, reminder_interval_days=10, max_reminders=3, actor=personas.org_admin)
    purpose_update(purpose=purpose, reminder_interval_days=10, max_reminders=3, actor=personas.org_admin)

    purpose.refresh_from_db()
    assert purpose.reminder_interval_days == 10
    [entry] = _audits("consent.purpose_updated")
    assert entry.data == {"changed": {"reminder_interval_days": [7, 10]}}


@pytest.mark.parametrize("persona", ["teacher", "office", "dpo", "siro", "other_headteacher"])
def test_only_the_headteacher_or_org_admin_may_change_purposes_and_drafts(personas, purpose, persona):
    actor = getattr(personas, persona)
    with pytest.raises(PermissionDenied):
        purpose_create(organisation=personas.organisation, name="Recording", reminder_interval_days=7,
                       max_reminders=3, actor=actor)
    with pytest.raises(PermissionDenied):
        purpose_update(purpose=purpose, reminder_interval_days=9, max_reminders=3, actor=actor)
    with pytest.raises(PermissionDenied):
        notice_draft_save(purpose=purpose, letter="x", protocol="y", privacy_notice="z", actor=actor)


# --- Services: drafts and publishing ---------------------------------------------------------------------


def test_saving_a_draft_creates_then_updates_the_one_draft_with_lf_line_ends(personas, purpose):
    first = notice_draft_save(purpose=purpose, letter="Dear parents,\r\n\r\nHello.  ", protocol="- Muted",
                              privacy_notice="We keep", actor=personas.headteacher, base_sha256="")
    again = notice_draft_save(purpose=purpose, letter="Dear parents,\n\nHello again.", protocol="- Muted",
                              privacy_notice="We keep", actor=personas.headteacher,
                              base_sha256=first.compute_sha256())

    assert again.pk == first.pk and Notice.objects.filter(purpose=purpose).count() == 1
    assert first.letter == "Dear parents,\n\nHello."
    assert again.letter == "Dear parents,\n\nHello again."
    saved = _audits("consent.notice_draft_saved")
    assert [e.data["created"] for e in saved] == [True, False]
    assert saved[1].data["changed"] == ["letter"]


def test_saving_an_unchanged_draft_writes_no_audit_entry(personas, purpose):
    texts = {"letter": "a", "protocol": "b", "privacy_notice": "c"}
    notice_draft_save(purpose=purpose, actor=personas.headteacher, **texts)
    notice_draft_save(purpose=purpose, actor=personas.headteacher, **texts)
    assert len(_audits("consent.notice_draft_saved")) == 1


def test_saving_over_a_draft_someone_else_changed_is_refused(personas, purpose):
    mine = notice_draft_save(purpose=purpose, letter="a", protocol="b", privacy_notice="c",
                             actor=personas.headteacher, base_sha256="")
    opened_on = mine.compute_sha256()
    notice_draft_save(purpose=purpose, letter="theirs", protocol="b", privacy_notice="c",
                      actor=personas.org_admin, base_sha256=opened_on)
    with pytest.raises(DraftConflict, match="Someone else changed"):
        notice_draft_save(purpose=purpose, letter="mine", protocol="b", privacy_notice="c",
                          actor=personas.headteacher, base_sha256=opened_on)
    with pytest.raises(DraftConflict):
        # Opened when there was no draft, but one was started meanwhile.
        notice_draft_save(purpose=purpose, letter="mine", protocol="b", privacy_notice="c",
                          actor=personas.headteacher, base_sha256="")
    assert notice_draft(purpose).letter == "theirs"


def test_discarding_deletes_the_draft_and_never_a_published_version(personas, purpose):
    published = publish(purpose)
    notice_draft_save(purpose=purpose, letter="new", protocol="b", privacy_notice="c", actor=personas.headteacher)

    assert notice_draft_discard(purpose=purpose, actor=personas.headteacher) is True
    assert notice_draft_discard(purpose=purpose, actor=personas.headteacher) is False
    assert list(Notice.objects.filter(purpose=purpose)) == [published]
    assert len(_audits("consent.notice_draft_discarded")) == 1


def test_the_plan_counts_exactly_the_consents_publishing_flags(personas, purpose, consented):
    draft = notice_draft_save(purpose=purpose, letter="Changed", protocol="p", privacy_notice="n",
                              actor=personas.headteacher)
    deadline = timezone.now().date() + dt.timedelta(days=30)
    plan = notice_publish_plan(purpose=purpose, draft_sha256=draft.compute_sha256(), material_change=True,
                               renewal_deadline=deadline)
    assert (plan.version, plan.consents_to_flag, plan.lapses_on) == (2, 3, deadline + dt.timedelta(days=1))

    notice_draft_publish(purpose=purpose, draft_sha256=draft.compute_sha256(), material_change=True,
                         renewal_deadline=deadline, actor=personas.headteacher)
    entry = _audits("consent.notice_published")[-1]
    assert entry.data["consents_needing_renewal"] == plan.consents_to_flag == 3
    assert ConsentStatus.objects.filter(renewal_needed=True).count() == 3


def test_publishing_refuses_a_draft_changed_since_the_preview_or_identical_to_the_current_version(personas, purpose):
    current = publish(purpose)
    draft = notice_draft_save(purpose=purpose, letter="v2", protocol=current.protocol,
                              privacy_notice=current.privacy_notice, actor=personas.headteacher)
    previewed = draft.compute_sha256()
    notice_draft_save(purpose=purpose, letter=current.letter, protocol=current.protocol,
                      privacy_notice=current.privacy_notice, actor=personas.headteacher)
    with pytest.raises(DraftConflict, match="changed since you previewed"):
        notice_draft_publish(purpose=purpose, draft_sha256=previewed, material_change=False, renewal_deadline=None,
                             actor=personas.headteacher)
    with pytest.raises(ValidationError, match="same as version 1"):
        notice_draft_publish(purpose=purpose, draft_sha256=notice_draft(purpose).compute_sha256(),
                             material_change=False, renewal_deadline=None, actor=personas.headteacher)
    assert purpose.current_notice() == current


def test_publishing_refuses_an_empty_section(personas, purpose):
    draft = notice_draft_save(purpose=purpose, letter="Dear parents", protocol="", privacy_notice=" ",
                              actor=personas.headteacher)
    with pytest.raises(ValidationError, match="the meeting protocol and the privacy notice"):
        notice_draft_publish(purpose=purpose, draft_sha256=draft.compute_sha256(), material_change=False,
                             renewal_deadline=None, actor=personas.headteacher)


def test_the_comparison_is_per_paragraph_and_word():
    lines = text_diff("Dear parents,\nWe record nothing.\nBye", "Dear parents,\nWe record lessons.\nNew line\nBye")
    assert [line.kind for line in lines] == ["equal", "change", "insert", "equal"]
    assert lines[1].segments == (("equal", "We record "), ("delete", "nothing."), ("insert", "lessons."))
    # Paragraphs with little in common read as one removed and one added.
    assert [line.kind for line in text_diff("Completely different words", "Nothing alike here")] == [
        "delete", "insert"]
    old, new = NoticeFactory.build(letter="a"), NoticeFactory.build(letter="b")
    assert [(s.key, s.changed) for s in notice_diff(old, new)] == [
        ("letter", True), ("protocol", False), ("privacy_notice", False)
    ]


# --- The purposes page ----------------------------------------------------------------------------------


def test_the_purposes_page_shows_version_draft_and_renewals(client, personas, purpose, consented):
    deadline = timezone.now().date() + dt.timedelta(days=20)
    newer = publish(purpose, actor=personas.headteacher, material_change=True, renewal_deadline=deadline,
                    letter="Changed")
    consent_give(guardian=consented["guardians"][0], pupil=consented["pupils"][0], notice=newer, attestation=True)
    notice_draft_save(purpose=purpose, letter="v3", protocol="p", privacy_notice="n", actor=personas.headteacher)
    PurposeFactory(organisation=personas.other_school.organisation, name="Their secret purpose")

    sign_in(client, personas.teacher)
    response = client.get(_url("purposes"))
    page = response.content.decode()

    [row] = response.context["rows"]
    assert row["purpose"] == purpose and row["notice"] == newer
    assert row["purpose"].has_draft and row["purpose"].renewal_count == 2
    assert row["purpose"].renewal_deadline == deadline
    assert "Version 2" in page and newer.sha256[:12] in page and newer.sha256 in page
    assert "2 need renewal" in page and "Draft in progress" in page
    assert deadline.strftime("%-d %b %Y") in page
    assert "Their secret purpose" not in page
    # A teacher reads; only editors get the buttons that change things.
    assert _url("notice-edit", pk=purpose.pk) not in page and _url("purpose-add") not in page


def test_the_purposes_page_has_an_empty_state_and_offers_editors_to_add_one(client, personas):
    sign_in(client, personas.headteacher)
    page = client.get(_url("purposes")).content.decode()
    assert "Nothing to agree to yet" in page and _url("purpose-add") in page
    sign_in(client, personas.office)
    page = client.get(_url("purposes")).content.decode()
    assert "Nothing to agree to yet" in page and _url("purpose-add") not in page


def test_the_purposes_page_costs_the_same_queries_for_many_purposes(client, personas, django_assert_max_num_queries):
    def add(n):
        for i in range(n):
            p = PurposeFactory(organisation=personas.organisation, name=f"Purpose {Purpose.objects.count()}")
            publish(p)
            notice_draft_save(purpose=p, letter=f"draft {i}", protocol="p", privacy_notice="n",
                              actor=personas.headteacher)

    sign_in(client, personas.headteacher)
    add(1)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as one:
        assert client.get(_url("purposes")).status_code == 200
    add(9)
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = client.get(_url("purposes"))
    assert len(response.context["rows"]) == 10


# --- Adding a purpose and its reminder settings ------------------------------------------------------------


def test_an_org_admin_adds_a_purpose_and_lands_in_its_prefilled_editor(client, personas):
    sign_in(client, personas.org_admin)
    response = client.post(_url("purpose-add"), {
        "organisation": personas.organisation.pk, "name": "Recording of lessons",
        "reminder_interval_days": 5, "max_reminders": 2,
    })
    purpose = Purpose.objects.get(name="Recording of lessons")
    assert response["Location"] == _url("notice-edit", pk=purpose.pk)
    editor = client.get(response["Location"])
    assert editor.context["form"].initial["letter"] == notice_template.LETTER
    assert "Recording of lessons" in editor.content.decode()


def test_a_headteacher_cannot_add_a_purpose_to_another_organisation(client, personas):
    sign_in(client, personas.headteacher)
    response = client.post(_url("purpose-add"), {
        "organisation": personas.other_school.organisation.pk, "name": "Sneaky",
        "reminder_interval_days": 5, "max_reminders": 2,
    })
    assert response.status_code == 200
    assert "only for your own organisation" in response.content.decode()
    assert not Purpose.objects.filter(name="Sneaky").exists()


@pytest.mark.parametrize(("data", "message"), [
    ({"reminder_interval_days": 0, "max_reminders": 3}, "greater than or equal to 1"),
    ({"reminder_interval_days": 61, "max_reminders": 3}, "less than or equal to 60"),
    ({"reminder_interval_days": 7, "max_reminders": 11}, "less than or equal to 10"),
    ({"reminder_interval_days": "", "max_reminders": 3}, "This field is required"),
])
def test_bad_reminder_settings_show_a_message_and_change_nothing(client, personas, purpose, data, message):
    sign_in(client, personas.headteacher)
    response = client.post(_url("purpose-settings", pk=purpose.pk), data)
    assert response.status_code == 200 and message in response.content.decode()
    purpose.refresh_from_db()
    assert (purpose.reminder_interval_days, purpose.max_reminders) == (7, 3)
    assert not _audits("consent.purpose_updated")


def test_editing_reminder_settings_through_the_page_is_audited(client, personas, purpose):
    sign_in(client, personas.headteacher)
    response = client.post(_url("purpose-settings", pk=purpose.pk), {"reminder_interval_days": 3,
                                                                     "max_reminders": 0})
    assert response["Location"] == _url("purposes")
    purpose.refresh_from_db()
    assert (purpose.reminder_interval_days, purpose.max_reminders) == (3, 0)
    assert _audits("consent.purpose_updated")[0].actor_id == personas.headteacher.pk


# --- History, versions as parents read them, comparison ----------------------------------------------------


def test_the_history_lists_every_version_with_its_details(client, personas, purpose):
    deadline = timezone.now().date() + dt.timedelta(days=10)
    first = publish(purpose, actor=personas.headteacher)
    second = publish(purpose, actor=personas.org_admin, material_change=True, renewal_deadline=deadline,
                     letter="Second letter")
    sign_in(client, personas.dpo)
    response = client.get(_url("notice-history", pk=purpose.pk))
    page = response.content.decode()
    assert [n.version for n in response.context["page"].object_list] == [2, 1]
    assert first.sha256 in page and second.sha256 in page and "Material" in page
    assert deadline.strftime("%-d %b %Y") in page
    assert _url("notice", pk=first.pk) in page and _url("notice-compare", pk=purpose.pk) in page
    assert "Discard" not in page  # the DPO reads, and cannot change


def test_a_version_shows_as_parents_read_it_with_its_hash(client, personas, purpose):
    notice = publish(purpose, letter="Dear parents,\nWe <b>care</b>.")
    sign_in(client, personas.teacher)
    page = client.get(_url("notice", pk=notice.pk)).content.decode()
    assert "What the school is asking" in page and "We &lt;b&gt;care&lt;/b&gt;." in page
    assert notice.sha256 in page and "Matches the text" in page
    assert 'class="staff-header' not in page and "parent-header" in page


def test_a_draft_is_not_shown_as_a_published_version(client, personas, purpose):
    draft = NoticeFactory(purpose=purpose)
    sign_in(client, personas.headteacher)
    assert client.get(_url("notice", pk=draft.pk)).status_code == 404


def test_comparing_two_versions_shows_the_changes_per_section_escaped(client, personas, purpose):
    publish(purpose, letter="Dear parents,\nWe record nothing.")
    publish(purpose, letter="Dear parents,\nWe record <script>alert(1)</script> lessons.",
            privacy_notice="Kept for a year.")
    publish(purpose, letter="Third")
    sign_in(client, personas.siro)
    response = client.get(_url("notice-compare", pk=purpose.pk), {"old": 1, "new": 2})
    page = response.content.decode()
    sections = {s.key: s for s in response.context["sections"]}
    assert sections["letter"].changed and sections["privacy_notice"].changed and not sections["protocol"].changed
    assert "<del>nothing.</del>" in page and "<ins>&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    # By default the two newest versions.
    assert client.get(_url("notice-compare", pk=purpose.pk)).context["new"].version == 3
    assert client.get(_url("notice-compare", pk=purpose.pk), {"old": 1, "new": 9}).context["sections"] is None


# --- The editor, discarding and the preview ----------------------------------------------------------------


def test_opening_the_editor_writes_nothing_and_starts_from_the_current_version(client, personas, purpose):
    current = publish(purpose, letter="The letter parents read now.")
    sign_in(client, personas.headteacher)
    before = (Notice.objects.count(), AuditEntry.objects.count())
    response = client.get(_url("notice-edit", pk=purpose.pk))
    assert response.context["form"].initial["letter"] == current.letter
    assert (Notice.objects.count(), AuditEntry.objects.count()) == before


def test_a_purpose_with_nothing_published_starts_from_the_template(client, personas, purpose):
    sign_in(client, personas.headteacher)
    assert client.get(_url("notice-edit", pk=purpose.pk)).context["form"].initial["protocol"] == \
        notice_template.PROTOCOL


def test_save_draft_then_preview_then_discard_through_the_pages(client, personas, purpose):
    current = publish(purpose)
    sign_in(client, personas.headteacher)
    response = client.post(_url("notice-edit", pk=purpose.pk), {
        "letter": "New letter", "protocol": current.protocol, "privacy_notice": current.privacy_notice,
        "base_sha256": "", "action": "save",
    })
    assert response["Location"] == _url("notice-edit", pk=purpose.pk)
    draft = notice_draft(purpose)
    assert draft.letter == "New letter" and purpose.current_notice() == current
    assert _audits("consent.notice_draft_saved")[0].actor_id == personas.headteacher.pk
    # Reopening the editor reopens the same draft.
    editor = client.get(_url("notice-edit", pk=purpose.pk))
    assert editor.context["form"].initial["letter"] == "New letter"
    assert editor.context["form"].initial["base_sha256"] == draft.compute_sha256()

    response = client.post(_url("notice-edit", pk=purpose.pk), {
        "letter": "Newer letter", "protocol": current.protocol, "privacy_notice": current.privacy_notice,
        "base_sha256": draft.compute_sha256(), "action": "preview",
    })
    assert response["Location"] == _url("notice-preview", pk=purpose.pk)

    response = client.post(_url("notice-discard", pk=purpose.pk))
    assert response["Location"] == _url("notice-history", pk=purpose.pk)
    assert notice_draft(purpose) is None and list(purpose.notices.all()) == [current]
    assert len(_audits("consent.notice_draft_discarded")) == 1


def test_a_stale_editor_does_not_overwrite_a_newer_draft(client, personas, purpose):
    draft = notice_draft_save(purpose=purpose, letter="a", protocol="b", privacy_notice="c",
                              actor=personas.org_admin)
    stale = draft.compute_sha256()
    notice_draft_save(purpose=purpose, letter="theirs", protocol="b", privacy_notice="c", actor=personas.org_admin)
    sign_in(client, personas.headteacher)
    data = {"letter": "mine", "protocol": "b", "privacy_notice": "c", "base_sha256": stale, "action": "save"}
    response = client.post(_url("notice-edit", pk=purpose.pk), data)
    assert response.status_code == 200
    assert "Someone else changed this draft" in response.content.decode()
    assert notice_draft(purpose).letter == "theirs"
    # The form now knows the newer draft: saving again replaces it on purpose.
    data["base_sha256"] = response.context["form"]["base_sha256"].value()
    client.post(_url("notice-edit", pk=purpose.pk), data)
    assert notice_draft(purpose).letter == "mine"


def test_the_preview_is_the_parent_page_escaped_marked_preview_and_records_nothing(client, personas, purpose):
    publish(purpose)
    notice_draft_save(purpose=purpose, letter="Dear parents,\n<script>alert('x')</script> & <i>hello</i>",
                      protocol="- <img src=x onerror=alert(1)>", privacy_notice="Kept.",
                      actor=personas.headteacher)
    sign_in(client, personas.headteacher)
    response = client.get(_url("notice-preview", pk=purpose.pk))
    page = response.content.decode()

    assert response.status_code == 200
    assert "PREVIEW" in page and "Version 2 of the notice" in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;i&gt;hello&lt;/i&gt;" in page
    assert "<script" not in page and "<img" not in page
    # The parent page's notice partial and layout, without the staff navigation.
    assert 'id="notice-heading"' in page and "parent-details" in page and "parent-header" in page
    assert 'class="staff-header' not in page
    # The only form publishes (for staff); every consent control is disabled and belongs to no form.
    actions = re.findall(r'<form[^>]*action="([^"]*)"', page)
    assert actions == [_url("notice-publish", pk=purpose.pk)]
    assert 'name="decision"' not in page and 'name="pupil"' not in page
    assert re.search(r"<fieldset[^>]*disabled", page)
    assert "css/notices.css" in page


def test_the_preview_without_a_draft_goes_back_to_the_history(client, personas, purpose):
    sign_in(client, personas.headteacher)
    assert client.get(_url("notice-preview", pk=purpose.pk))["Location"] == _url("notice-history", pk=purpose.pk)


# --- Publishing ------------------------------------------------------------------------------------------


def _draft(personas, purpose, letter="A materially different letter."):
    current = purpose.current_notice()
    return notice_draft_save(purpose=purpose, letter=letter, protocol=current.protocol,
                             privacy_notice=current.privacy_notice, actor=personas.headteacher)


def test_publishing_needs_confirm_its_you_and_keeps_the_choice_across_it(client, personas, purpose, consented):
    draft = _draft(personas, purpose)
    sign_in(client, personas.headteacher)
    response = client.post(_url("notice-publish", pk=purpose.pk), {
        "change": "material", "renewal_deadline": "2099-01-31", "draft_sha256": draft.compute_sha256(),
        "confirm": "1",
    })
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:confirm"))
    assert purpose.current_notice() == consented["notice"]
    assert not _audits("consent.notice_published")[1:]

    _confirmed(client)
    next_url = response["Location"].split("next=", 1)[1]
    from urllib.parse import unquote

    page = client.get(unquote(next_url))
    assert page.status_code == 200
    assert page.context["form"].initial["change"] == "material"
    assert page.context["form"].initial["renewal_deadline"] == dt.date(2099, 1, 31)


def test_publishing_a_material_change_shows_what_will_happen_then_flags_the_consents(client, personas, purpose,
                                                                                  consented):
    draft = _draft(personas, purpose)
    sign_in(client, personas.headteacher)
    with time_machine.travel(SEPT_1, tick=False):
        _confirmed(client)
        data = {"change": "material", "renewal_deadline": "2026-09-30", "draft_sha256": draft.compute_sha256()}
        review = client.post(_url("notice-publish", pk=purpose.pk), data)
        text = review.content.decode()
        assert review.status_code == 200 and review.context["plan"].consents_to_flag == 3
        assert "3 consents will be flagged “renewal needed”; they lapse after 30 September 2026" in text
        assert purpose.current_notice() == consented["notice"]  # nothing happened yet

        response = client.post(_url("notice-publish", pk=purpose.pk), {**data, "confirm": "1"})
        assert response["Location"] == _url("notice-history", pk=purpose.pk)

        published = purpose.current_notice()
        assert (published.version, published.material_change, published.renewal_deadline) == (
            2, True, dt.date(2026, 9, 30))
        assert published.published_by == personas.headteacher
        states = {s.pupil.mis_id: (s.state, s.renewal_needed) for s in ConsentStatus.objects.select_related("pupil")}
        assert states == {"P1": ("given", True), "P2": ("given", True), "P3": ("given", True), "P4": ("refused", False)}
        assert _audits("consent.notice_published")[-1].data["consents_needing_renewal"] == 3
        # One confirmation per publication.
        assert not identity_recently_confirmed(response.wsgi_request)
        history = client.get(response["Location"]).content.decode()
        assert "3 consents now need renewing" in history


def test_after_the_deadline_unrenewed_consents_lapse_and_the_registry_says_so(client, personas, purpose, consented):
    draft = _draft(personas, purpose)
    sign_in(client, personas.headteacher)
    with time_machine.travel(SEPT_1, tick=False):
        _confirmed(client)
        client.post(_url("notice-publish", pk=purpose.pk), {
            "change": "material", "renewal_deadline": "2026-09-30", "draft_sha256": draft.compute_sha256(),
            "confirm": "1",
        })
        # P1's parent renews on version 2.
        consent_give(guardian=consented["guardians"][0], pupil=consented["pupils"][0],
                     notice=purpose.current_notice(), attestation=True)
        pupils_page = client.get(reverse("consent:pupils", kwargs={"school_pk": personas.school.pk}))
        badges = {row["pupil"].mis_id: row["badge"]["label"] for row in pupils_page.context["rows"]}
        assert badges == {"P1": "Consent given", "P2": "Renewal needed", "P3": "Renewal needed", "P4": "Refused"}
        assert consent_lapse_due(now=timezone.now()) == 0

    # On the deadline itself consents are still valid (Europe/London: 30 September ends at 23:00 UTC).
    with time_machine.travel(dt.datetime(2026, 9, 30, 22, 30, tzinfo=dt.UTC), tick=False):
        assert consent_lapse_due(now=timezone.now()) == 0
    with time_machine.travel(dt.datetime(2026, 9, 30, 23, 30, tzinfo=dt.UTC), tick=False):
        assert consent_lapse_due(now=timezone.now()) == 2
        sign_in(client, personas.teacher)
        pupils_page = client.get(reverse("consent:pupils", kwargs={"school_pk": personas.school.pk}))
        badges = {row["pupil"].mis_id: row["badge"]["label"] for row in pupils_page.context["rows"]}
        assert badges == {"P1": "Consent given", "P2": "Lapsed", "P3": "Lapsed", "P4": "Refused"}
        purposes = client.get(_url("purposes")).context["rows"]
        assert purposes[0]["purpose"].renewal_count == 0 and purposes[0]["deadline_passed"]
    assert ConsentStatus.objects.filter(state=ConsentState.LAPSED).count() == 2


def test_a_minor_change_keeps_every_consent_valid(client, personas, purpose, consented):
    draft = _draft(personas, purpose, letter="Typo fixed.")
    sign_in(client, personas.org_admin)
    _confirmed(client)
    data = {"change": "minor", "renewal_deadline": "2099-01-01", "draft_sha256": draft.compute_sha256()}
    review = client.post(_url("notice-publish", pk=purpose.pk), data).content.decode()
    assert "every consent stays valid" in review
    client.post(_url("notice-publish", pk=purpose.pk), {**data, "confirm": "1"})
    notice = purpose.current_notice()
    assert (notice.version, notice.material_change, notice.renewal_deadline) == (2, False, None)
    assert not ConsentStatus.objects.filter(renewal_needed=True).exists()


@pytest.mark.parametrize(("data", "message"), [
    ({"change": "material", "renewal_deadline": ""}, "A material change needs a renewal deadline."),
    ({"change": "material", "renewal_deadline": "2026-08-31"}, "The renewal deadline is in the past."),
    ({"change": "material", "renewal_deadline": "not a date"}, "Enter a valid date."),
    ({"renewal_deadline": "2026-09-30"}, "Choose whether this is a minor or a material change."),
])
@pytest.mark.parametrize("step", [{}, {"confirm": "1"}], ids=["review", "publish"])
def test_bad_publishing_choices_show_a_message_and_publish_nothing(client, personas, purpose, consented, data,
                                                                   message, step):
    draft = _draft(personas, purpose)
    sign_in(client, personas.headteacher)
    with time_machine.travel(SEPT_1, tick=False):
        _confirmed(client)
        response = client.post(_url("notice-publish", pk=purpose.pk),
                               {**data, **step, "draft_sha256": draft.compute_sha256()})
    assert response.status_code == 200 and response.context["plan"] is None
    assert message in response.content.decode()
    assert purpose.current_notice() == consented["notice"] and not ConsentStatus.objects.filter(
        renewal_needed=True).exists()


def test_the_deadline_is_judged_in_the_organisations_time_zone_by_the_service(client, personas, purpose, consented):
    """At 23:30 UTC on 31 August it is already 1 September in London: 31 August is past there."""
    draft = _draft(personas, purpose)
    sign_in(client, personas.headteacher)
    with time_machine.travel(dt.datetime(2026, 8, 31, 23, 30, tzinfo=dt.UTC), tick=False):
        _confirmed(client)
        response = client.post(_url("notice-publish", pk=purpose.pk), {
            "change": "material", "renewal_deadline": "2026-08-31", "draft_sha256": draft.compute_sha256(),
            "confirm": "1",
        })
    assert "The renewal deadline is in the past." in response.content.decode()
    assert purpose.current_notice().version == 1


def test_publishing_a_draft_changed_since_the_preview_is_refused(client, personas, purpose, consented):
    draft = _draft(personas, purpose)
    previewed = draft.compute_sha256()
    notice_draft_save(purpose=purpose, letter="Changed behind their back", protocol=draft.protocol,
                      privacy_notice=draft.privacy_notice, actor=personas.org_admin)
    sign_in(client, personas.headteacher)
    _confirmed(client)
    response = client.post(_url("notice-publish", pk=purpose.pk),
                           {"change": "minor", "draft_sha256": previewed, "confirm": "1"})
    assert "changed since you previewed it" in response.content.decode()
    assert purpose.current_notice().version == 1


def test_the_publish_page_shows_the_changes_since_the_current_version(client, personas, purpose, consented):
    _draft(personas, purpose, letter="Brand <new> letter")
    sign_in(client, personas.headteacher)
    _confirmed(client)
    page = client.get(_url("notice-publish", pk=purpose.pk)).content.decode()
    assert "Changes since version 1" in page and "<ins>Brand &lt;new&gt; letter</ins>" in page


def test_a_far_future_deadline_is_refused_on_the_page_and_nothing_is_published(client, personas, purpose, consented):
    draft = _draft(personas, purpose)
    sign_in(client, personas.headteacher)
    _confirmed(client)
    for confirm in ({}, {"confirm": "1"}):
        response = client.post(_url("notice-publish", pk=purpose.pk), {
            "change": "material", "renewal_deadline": "9999-12-31", "draft_sha256": draft.compute_sha256(), **confirm,
        })
        assert response.status_code == 200
        assert "within a year" in response.content.decode()
    assert purpose.current_notice() == consented["notice"]
