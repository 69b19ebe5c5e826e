"""The glossary: the words Gatehouse uses, explained to every member of staff."""

import pytest
from django.urls import reverse

from tests.conftest import sign_in

pytestmark = pytest.mark.django_db

TERMS = {
    "consent": ["Given", "Refused", "Withdrawn", "Lapsed", "Renewal due", "No answer"],
    "parental-responsibility": ["Parental responsibility"],
    "checks": ["signed privacy impact assessment", "risk assessment", "member of staff of the school"],
    "pia": ["PIA"], "dpo": ["DPO"], "siro": ["SIRO"], "data-controller": ["Data controller"],
    "risk-rating": ["likelihood times its severity", "1–2 is low", "6–9 high"],
    "residual-risk": ["Residual risk"],
    "invitations": ["Queued", "Sent", "Failed", "Possible duplicate"],
    "lead-time": ["Lead time", "60 minutes"],
    "fingerprint": ["SHA-256"],
    "audit-trail": ["Audit trail"],
    "rights-requests": ["one calendar month"],
    "retention": ["Retention", "24 hours"],
}


def test_every_member_of_staff_reads_the_glossary(client, personas):
    for user in (personas.teacher, personas.office, personas.dpo):
        sign_in(client, user)
        body = client.get(reverse("schools:glossary")).content.decode()
        assert "Glossary" in body
        for anchor, words in TERMS.items():
            assert f'id="{anchor}"' in body, anchor
            section = body.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]
            for word in words:
                assert word in section, f"{anchor}: {word}"


def test_the_glossary_asks_visitors_to_sign_in(client):
    response = client.get(reverse("schools:glossary"))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]


def test_the_audit_page_links_to_the_glossary(client, personas):
    sign_in(client, personas.headteacher)
    assert f'{reverse("schools:glossary")}#audit-trail' in client.get(reverse("schools:audit")).content.decode()
