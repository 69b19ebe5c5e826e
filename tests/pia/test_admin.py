"""The PIA models in the admin: readable by a superuser with a second factor, never written there — a signed PIA
cannot be changed, added to or deleted through the admin either."""

import pytest
from django.urls import reverse

from accounts.models import User
from pia.models import PiaVersion
from tests.conftest import sign_in
from tests.factories import TOTPDeviceFactory
from tests.pia.pia_signed import signed_pia

pytestmark = pytest.mark.django_db

MODELS = ["pia", "piaversion", "decision", "notification", "seensnapshot", "actioncompletion", "actionreminder",
          "platform"]


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("root", "root@example.org", "x")
    TOTPDeviceFactory(user=user)
    sign_in(client, user)
    return client


@pytest.mark.parametrize("model", MODELS)
def test_every_pia_model_lists_in_the_admin_and_none_can_be_added_there(admin_client, personas, model):
    signed_pia(personas)
    assert admin_client.get(reverse(f"admin:pia_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"admin:pia_{model}_add")).status_code == 403


def test_a_signed_version_reads_in_the_admin_but_cannot_be_changed_or_deleted(admin_client, personas):
    version = signed_pia(personas)
    change = reverse("admin:pia_piaversion_change", args=[version.pk])
    page = admin_client.get(change)
    assert page.status_code == 200
    content = page.content.decode()
    assert version.sha256 in content and "Disclosure of personal information" in content
    assert 'name="_save"' not in content
    response = admin_client.post(change, {"aims": "Changed in the admin", "status": "draft"})
    assert response.status_code == 403
    delete = reverse("admin:pia_piaversion_delete", args=[version.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    decision = version.decisions.first()
    assert admin_client.post(reverse("admin:pia_decision_delete", args=[decision.pk]), {"post": "yes"}).status_code \
        == 403
    version.refresh_from_db()
    assert version.status == PiaVersion.Status.SIGNED and version.hash_verifies()
    assert version.decisions.count() == 3
