"""The consent models in the admin: readable by a superuser with a second factor, evidence never
writable there."""

import pytest
from django.urls import reverse

from accounts.models import User
from tests.conftest import sign_in
from tests.factories import TOTPDeviceFactory

from .consent_setup import decided_family

pytestmark = pytest.mark.django_db

MODELS = ["purpose", "notice", "consentevent", "consentstatus", "guardianlink", "consentrequest", "importrun",
          "rightsrequest", "retentionschedule", "pupil", "guardian", "group"]
READ_ONLY = ["notice", "consentevent", "consentstatus", "guardianlink", "consentrequest", "importrun",
             "rightsrequest"]


@pytest.fixture
def superuser(client, personas):
    user = User.objects.create_superuser("root", "root@example.org", "x")
    TOTPDeviceFactory(user=user)
    sign_in(client, user)
    return user


@pytest.mark.parametrize("model", MODELS)
def test_every_consent_model_has_a_working_admin_list(client, personas, superuser, model):
    decided_family(personas.school)
    response = client.get(reverse(f"admin:consent_{model}_changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model", READ_ONLY)
def test_evidence_and_workflow_records_cannot_be_added_in_the_admin(client, personas, superuser, model):
    assert client.get(reverse(f"admin:consent_{model}_add")).status_code == 403


def test_a_consent_event_opens_read_only_and_cannot_be_deleted(client, personas, superuser):
    event = decided_family(personas.school)[3]
    page = client.get(reverse("admin:consent_consentevent_change", args=[event.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    delete = client.post(reverse("admin:consent_consentevent_delete", args=[event.pk]), {"post": "yes"})
    assert delete.status_code == 403


def test_a_link_shows_no_token_hash(client, personas, superuser):
    from consent.models import GuardianLink

    decided_family(personas.school)  # the confirmation email issues a link
    link = GuardianLink.objects.get()
    page = client.get(reverse("admin:consent_guardianlink_change", args=[link.pk]))
    assert page.status_code == 200 and link.token_sha256.encode() not in page.content
