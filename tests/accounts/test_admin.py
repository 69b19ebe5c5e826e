import pytest
from django.urls import reverse

from accounts.models import User
from schools.models import AuditEntry
from tests.conftest import sign_in
from tests.factories import TOTPDeviceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser_client(client):
    root = User.objects.create_superuser("root", "root@example.org", "x")
    TOTPDeviceFactory(user=root)
    sign_in(client, root)
    return client


def test_removing_an_authenticator_in_the_admin_is_audited(superuser_client, personas):
    device = personas.headteacher.totpdevice_set.get()
    url = reverse("admin:otp_totp_totpdevice_delete", args=[device.pk])
    response = superuser_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not personas.headteacher.totpdevice_set.exists()
    entry = AuditEntry.objects.get(action="admin.deleted")
    assert entry.object_type == "otp_totp.totpdevice" and entry.object_id == str(device.pk)


def test_the_admin_lists_staff_users(superuser_client, personas):
    response = superuser_client.get(reverse("admin:accounts_user_changelist"), {"q": personas.teacher.email})
    assert response.status_code == 200
    assert personas.teacher.email in response.content.decode()
