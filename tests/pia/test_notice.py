"""The parent-facing privacy notice generated from a signed PIA, and adopting it as a consent notice draft."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.urls import reverse

from consent.models import Notice
from consent.notices import notice_draft, notice_draft_save
from consent.services import notice_publish
from pia.models import DataItem, PiaVersion, PrivacyRisk
from pia.outputs import notice_adopt, notice_text
from schools.models import AuditEntry
from tests.factories import NoticeFactory, PurposeFactory
from tests.pia.matrix_outputs import other_signed_pia, sign_through_orm, signed_pia
from tests.pia.pia_setup import draft_pia

pytestmark = pytest.mark.django_db


@pytest.fixture
def purpose(personas):
    """A consent purpose of the federation with a published notice (version 1) and no draft."""
    notice = NoticeFactory(purpose=PurposeFactory(organisation=personas.organisation))
    notice_publish(notice=notice, actor=personas.headteacher, material_change=False)
    return notice.purpose


def test_the_text_says_what_the_platform_is_that_there_is_no_obligation_the_risks_and_the_data(personas):
    version = signed_pia(personas)
    text = notice_text(version)
    assert text.startswith("Laxey Test School uses a service called Zoom to run live video lessons with pupils.")
    assert "There is no obligation to do so" in text and "withdraw your consent at any time" in text
    assert ("- Disclosure of personal information. For your child, this means: Shared with the platform. "
            "What we do about it: Up to date software.") in text
    assert ("- Information that identifies you (for example: Name, email address). Zoom uses it to: Provide the "
            "service.") in text
    assert "Our privacy impact assessment of Zoom (version 1, due for review on" in text
    assert "contact: Executive headteacher." in text


def test_jargon_is_put_in_plain_words_and_multi_line_cells_become_one_phrase(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    PrivacyRisk.objects.filter(version=version).update(privacy_issue="Disclosure of PII",
                                                       risk_to_individuals="PII shared with unknown parties")
    DataItem.objects.filter(version=version).update(platform_uses="Provide the service.\nRespond to support\n")
    version = sign_through_orm(version, dpo=personas.dpo, controller=personas.headteacher, siro=personas.siro)
    text = notice_text(version)
    assert "PII" not in text
    assert "Disclosure of personal information. For your child, this means: personal information shared" in text
    assert "Zoom uses it to: Provide the service; Respond to support." in text


def test_the_text_is_written_from_the_signed_snapshot_not_the_rows(personas):
    version = signed_pia(personas)
    snapshot = {**version.snapshot, "risks": [{**version.snapshot["risks"][0], "solution": "As signed."}]}
    # Written past the model's guard (plain QuerySet.update), as only a direct database write could: the rows
    # still say otherwise.
    QuerySet.update(PiaVersion.objects.filter(pk=version.pk), snapshot=snapshot)
    text = notice_text(PiaVersion.objects.get(pk=version.pk))
    assert "What we do about it: As signed." in text and "Up to date software" not in text


def test_a_draft_has_no_notice_text(personas, client_for):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    with pytest.raises(ValueError, match="signed version only"):
        notice_text(version)
    page = client_for(personas.headteacher).get(reverse("pia:notice", args=[version.pk])).content.decode()
    assert "Not signed yet" in page and "Adopt as a new draft" not in page


def test_the_page_shows_the_text_to_copy_and_only_notice_editors_get_the_adopt_form(personas, client_for, purpose):
    version = signed_pia(personas)
    url = reverse("pia:notice", args=[version.pk])
    page = client_for(personas.teacher).get(url).content.decode()
    assert '<textarea id="notice-text"' in page and "There is no obligation to do so" in page
    assert 'name="purpose"' not in page
    page = client_for(personas.headteacher).get(url).content.decode()
    assert 'name="purpose"' in page and f'value="{purpose.pk}"' in page


def test_adopting_makes_a_draft_with_the_current_letter_and_protocol_and_this_privacy_notice(
        personas, client_for, purpose):
    version = signed_pia(personas)
    current = purpose.current_notice()
    response = client_for(personas.headteacher).post(reverse("pia:notice", args=[version.pk]),
                                                     {"purpose": purpose.pk})
    assert response.status_code == 302
    assert response["Location"] == reverse("consent:notice-edit", args=[purpose.pk])
    draft = notice_draft(purpose)
    assert draft is not None and not draft.is_published
    assert (draft.letter, draft.protocol) == (current.letter, current.protocol)
    assert draft.privacy_notice == notice_text(version)
    assert purpose.current_notice() == current  # nothing published: that is the notice's own workflow
    entry = AuditEntry.objects.get(action="pia.notice_drafted")
    assert entry.data["purpose_id"] == purpose.pk and entry.data["notice_id"] == draft.pk
    assert entry.data["replaced_draft"] is False
    assert AuditEntry.objects.filter(action="consent.notice_draft_saved").count() == 1


def test_an_existing_draft_is_replaced_only_when_asked_and_keeps_its_letter(personas, client_for, purpose):
    version = signed_pia(personas)
    notice_draft_save(purpose=purpose, letter="A new letter.", protocol="A new protocol.", privacy_notice="Old.",
                      actor=personas.headteacher)
    client = client_for(personas.org_admin)
    url = reverse("pia:notice", args=[version.pk])
    response = client.post(url, {"purpose": purpose.pk})
    assert response.status_code == 200
    assert "already has a draft notice" in response.content.decode()
    assert notice_draft(purpose).privacy_notice == "Old."
    client.post(url, {"purpose": purpose.pk, "replace_draft": "on"})
    draft = notice_draft(purpose)
    assert (draft.letter, draft.protocol) == ("A new letter.", "A new protocol.")
    assert draft.privacy_notice == notice_text(version)
    assert Notice.objects.filter(purpose=purpose, published_at__isnull=True).count() == 1
    assert AuditEntry.objects.get(action="pia.notice_drafted").data["replaced_draft"] is True


def test_a_purpose_without_any_notice_starts_from_the_template_letter(personas):
    from consent import notice_template

    version = signed_pia(personas)
    bare = PurposeFactory(organisation=personas.organisation, name="Assemblies")
    notice = notice_adopt(version=version, purpose=bare, actor=personas.headteacher)
    assert notice.letter == notice_template.LETTER.strip() and notice.privacy_notice == notice_text(version)


def test_only_those_who_edit_consent_notices_may_adopt(personas, client_for, purpose):
    version = signed_pia(personas)
    for person in (personas.office, personas.teacher, personas.dpo, personas.siro):
        with pytest.raises(PermissionDenied):
            notice_adopt(version=version, purpose=purpose, actor=person)
    assert client_for(personas.office).post(reverse("pia:notice", args=[version.pk]),
                                            {"purpose": purpose.pk}).status_code == 403
    assert notice_draft(purpose) is None
    assert not AuditEntry.objects.filter(action="pia.notice_drafted").exists()


def test_another_organisations_purpose_is_neither_offered_nor_accepted(personas, client_for, purpose):
    version = signed_pia(personas)
    theirs = PurposeFactory(organisation=personas.other_school.organisation)
    response = client_for(personas.headteacher).post(reverse("pia:notice", args=[version.pk]),
                                                     {"purpose": theirs.pk})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    with pytest.raises(ValidationError, match="this PIA's organisation"):
        notice_adopt(version=version, purpose=theirs, actor=personas.headteacher)
    assert not Notice.objects.filter(purpose=theirs).exists()


def test_a_draft_pia_cannot_be_adopted(personas, purpose):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    with pytest.raises(ValidationError, match="current signed version"):
        notice_adopt(version=version, purpose=purpose, actor=personas.headteacher)


def test_another_organisations_notice_page_is_not_found(personas, client_for):
    theirs = other_signed_pia(personas)
    assert client_for(personas.headteacher).get(reverse("pia:notice", args=[theirs.pk])).status_code == 404


def test_an_empty_adopt_form_says_what_is_missing_and_changes_nothing(personas, client_for, purpose):
    version = signed_pia(personas)
    response = client_for(personas.headteacher).post(reverse("pia:notice", args=[version.pk]), {})
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    assert notice_draft(purpose) is None


def test_a_superseded_versions_text_is_shown_but_not_adopted(personas, client_for, purpose):
    version = signed_pia(personas)
    version.status = PiaVersion.Status.SUPERSEDED
    version.save(update_fields=["status"])
    url = reverse("pia:notice", args=[version.pk])
    client = client_for(personas.headteacher)
    page = client.get(url).content.decode()
    assert "There is no obligation to do so" in page and 'name="purpose"' not in page
    assert "adopt the privacy notice from the current signed version" in page
    response = client.post(url, {"purpose": purpose.pk}, follow=True)
    assert "Only the current signed version&#x27;s privacy notice can be adopted." in response.content.decode()
    with pytest.raises(ValidationError, match="superseded version no longer is"):
        notice_adopt(version=version, purpose=purpose, actor=personas.headteacher)
    assert notice_draft(purpose) is None
