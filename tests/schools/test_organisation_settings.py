"""The organisation admin sets the coverage share and the digest hour on a page of Gatehouse, audited."""

import pytest
from django.urls import reverse

from schools.models import AuditEntry
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db


def _url(organisation) -> str:
    return reverse("schools:organisation-settings", kwargs={"organisation_pk": organisation.pk})


def test_the_admin_changes_the_coverage_share_and_digest_hour_and_it_is_audited(client, personas):
    sign_in(client, personas.org_admin)
    response = client.post(_url(personas.organisation), {"coverage_warning_percent": "70", "digest_hour": "6"},
                           follow=True)
    assert "Saved." in response.content.decode()
    personas.organisation.refresh_from_db()
    assert (personas.organisation.coverage_warning_percent, personas.organisation.digest_hour) == (70, 6)
    entry = AuditEntry.objects.get(action="organisation.settings_changed")
    assert entry.data == {"before": {"coverage_warning_percent": 50, "digest_hour": 7},
                          "after": {"coverage_warning_percent": 70, "digest_hour": 6}}


def test_a_share_out_of_range_is_refused_with_a_message_and_nothing_changes(client, personas):
    sign_in(client, personas.org_admin)
    response = client.post(_url(personas.organisation), {"coverage_warning_percent": "150", "digest_hour": "7"})
    assert response.status_code == 200
    assert "less than or equal to 100" in response.content.decode()
    personas.organisation.refresh_from_db()
    assert personas.organisation.coverage_warning_percent == 50
    assert not AuditEntry.objects.filter(action="organisation.settings_changed").exists()


def test_the_new_share_decides_the_warning_on_the_home_page(client, personas):
    sign_in(client, personas.org_admin)
    client.post(_url(personas.organisation), {"coverage_warning_percent": "0", "digest_hour": "7"})
    body = client.get(reverse("schools:dashboard")).content.decode()
    assert "ask for a confirmation below 0% of children with consent" in body
