"""The admin shows outbox rows read-only, and never their bodies."""

import pytest
from django.urls import reverse

from ..conftest import sign_in
from ..factories import TOTPDeviceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    user = UserFactory(is_superuser=True, is_staff=True)
    TOTPDeviceFactory(user=user)
    sign_in(client, user)
    return client


def test_the_admin_lists_and_shows_outbox_messages_without_their_bodies(superuser_client, queue_greeting):
    message = queue_greeting(token="body-only-secret")
    changelist = superuser_client.get(reverse("admin:outbox_outboxmessage_changelist"))
    assert changelist.status_code == 200 and "parent@example.net" in changelist.content.decode()
    detail = superuser_client.get(reverse("admin:outbox_outboxmessage_change", args=[message.pk]))
    assert detail.status_code == 200
    assert "body-only-secret" not in changelist.content.decode() + detail.content.decode()


def test_the_admin_cannot_add_change_or_delete_outbox_messages(superuser_client, queue_greeting):
    message = queue_greeting()
    assert superuser_client.get(reverse("admin:outbox_outboxmessage_add")).status_code == 403
    assert superuser_client.post(reverse("admin:outbox_outboxmessage_change", args=[message.pk]),
                                 {"recipient": "x@example.net"}).status_code == 403
    assert superuser_client.get(reverse("admin:outbox_outboxmessage_delete", args=[message.pk])).status_code == 403
