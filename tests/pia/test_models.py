"""The model's own guards on a signed PIA: only the moves the services make are let through, bulk writes are refused
too, and deleting a member of staff never rewrites a signed version's rows."""

import pytest
from django.db.models import ProtectedError

from pia import services
from pia.models import Action, Decision, FrozenError, PiaVersion, PrivacyRisk
from tests.factories import UserFactory
from tests.pia.matrix_workflow import at_stage
from tests.pia.pia_setup import draft_pia
from tests.pia.pia_signed import signed_pia

pytestmark = pytest.mark.django_db
Status = PiaVersion.Status


def test_a_signed_version_refuses_a_content_write_even_through_update_fields(personas):
    version = signed_pia(personas)
    version.aims = "Changed after signing"
    with pytest.raises(FrozenError):
        version.save(update_fields=["aims"])
    version.snapshot = {**version.snapshot, "aims": "Changed"}
    with pytest.raises(FrozenError):
        version.save(update_fields=["snapshot", "sha256"])
    version.refresh_from_db()
    assert version.hash_verifies() and version.aims != "Changed after signing"


def test_a_signed_version_refuses_going_back_to_an_open_status(personas):
    version = signed_pia(personas)
    version.status = Status.DRAFT
    with pytest.raises(FrozenError):
        version.save(update_fields=["status"])


def test_a_superseded_version_never_changes_status_again(personas):
    first = signed_pia(personas)
    first.status = Status.SUPERSEDED
    first.save(update_fields=["status"])  # the move signing the next version makes
    first.status = Status.SIGNED
    with pytest.raises(FrozenError):
        first.save(update_fields=["status"])


def test_a_signed_versions_pdf_is_stored_once_and_never_replaced(personas):
    version = signed_pia(personas)
    version.pdf_sha256 = "a" * 64
    version.pdf.name = "pia/pdf/2026/first.pdf"
    version.save(update_fields=["pdf", "pdf_sha256"])
    version.pdf_sha256 = "b" * 64
    version.pdf.name = "pia/pdf/2026/second.pdf"
    with pytest.raises(FrozenError):
        version.save(update_fields=["pdf", "pdf_sha256"])
    version.refresh_from_db()
    assert version.pdf_sha256 == "a" * 64


def test_a_version_in_sign_off_refuses_a_content_write(personas):
    version = at_stage(personas, Status.ADVISED)
    version.aims = "Changed while the controller reads it"
    with pytest.raises(FrozenError):
        version.save()
    with pytest.raises(FrozenError):
        version.save(update_fields=["aims"])


def test_bulk_updates_and_deletes_of_signed_versions_are_refused(personas):
    version = signed_pia(personas)
    draft_pia(personas.organisation, personas.office, school=personas.school, title="Teams")
    with pytest.raises(FrozenError):
        PiaVersion.objects.filter(pk=version.pk).update(aims="Changed")
    with pytest.raises(FrozenError):
        PiaVersion.objects.all().update(review_on=None)
    with pytest.raises(FrozenError):
        PiaVersion.objects.filter(pk=version.pk).delete()
    version.refresh_from_db()
    assert version.hash_verifies() and version.review_on is not None


def test_bulk_writes_to_drafts_still_work(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    PiaVersion.objects.filter(pk=version.pk).update(aims="Bulk")
    version.refresh_from_db()
    assert version.aims == "Bulk"


def test_decisions_refuse_bulk_updates_and_deletes(personas):
    version = signed_pia(personas)
    with pytest.raises(FrozenError):
        Decision.objects.filter(version=version).update(comments="Rewritten")
    with pytest.raises(FrozenError):
        Decision.objects.filter(version=version).delete()
    assert version.decisions.count() == 3 and not version.decisions.filter(comments="Rewritten").exists()


@pytest.mark.parametrize("model", [PrivacyRisk, Action])
def test_rows_cannot_be_bulk_created_onto_a_frozen_version(personas, model):
    version = signed_pia(personas)
    values = {PrivacyRisk: {"privacy_issue": "Added later", "likelihood": 1, "severity": 1, "rating": 1},
              Action: {"action": "Added later"}}[model]
    with pytest.raises(FrozenError):
        model.objects.bulk_create([model(version=version, **values)])
    assert not model.objects.filter(version=version, **{next(iter(values)): "Added later"}).exists()


def test_rows_can_be_bulk_created_onto_a_draft(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    Action.objects.bulk_create([Action(version=version, action="Added", position=5)])
    assert version.actions.filter(action="Added").exists()


def test_deleting_a_member_of_staff_responsible_for_a_signed_action_is_refused(personas):
    responsible = UserFactory()
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    version.actions.update(responsible_user=responsible)
    services.version_submit(version=version, actor=personas.office)
    services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")
    services.version_decide(version=version, actor=personas.headteacher, accept=True)
    services.version_sign(version=version, actor=personas.siro)
    with pytest.raises(ProtectedError):
        responsible.delete()
    assert version.actions.get().responsible_user == responsible
