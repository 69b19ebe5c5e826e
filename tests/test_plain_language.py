"""Pages speak the school's language: no fingerprints, codes or internal words in the main text.

The main staff pages are rendered for the demo federation's headteacher and their visible text, outside
any `<details>` disclosure (where a fingerprint or a Message-ID may sit as evidence), is searched for the
words a headteacher should never have to read. A page that brings one back fails here, with the page and
the sentence named.
"""

import re
from html.parser import HTMLParser

import pytest
from django.core.management import call_command
from django.urls import reverse

from outbox.kinds import EMAIL_KINDS
from schools.audit import ACTION_LABELS

from .conftest import sign_in

ACTION_FAMILIES = "|".join(sorted({name.split(".")[0] for name in ACTION_LABELS}))
JARGON = [
    ("a SHA-256", re.compile(r"sha-?256", re.IGNORECASE)),
    ("a hash", re.compile(r"\bhash(es)?\b", re.IGNORECASE)),
    ("a fingerprint's digits", re.compile(r"\b[0-9a-f]{12,}\b")),
    ("the governance gate", re.compile(r"\bgate\b", re.IGNORECASE)),
    ("a consent purpose", re.compile(r"\bconsent purposes?\b|^purposes?:?$", re.IGNORECASE)),
    ("a Message-ID", re.compile(r"message-id", re.IGNORECASE)),
    ("an email template's name", re.compile(r"\b(" + "|".join(map(re.escape, EMAIL_KINDS)) + r")\b")),
    ("an audit action's code", re.compile(rf"\b({ACTION_FAMILIES})\.[a-z_]+\b")),
    ("a pupil or parent by number", re.compile(r"\b(pupil|parent or carer) #\d+", re.IGNORECASE)),
]
# Elements whose text is not main text: disclosures, and what a browser never shows.
HIDDEN = {"details", "script", "style", "template", "head"}


class _MainText(HTMLParser):
    """The text a reader sees without opening a disclosure, one string per run of text."""

    def __init__(self):
        super().__init__()
        self.hidden_depth = 0
        self.texts: list[str] = []
        self.disclosed: list[str] = []  # what the Details disclosures hold

    def handle_starttag(self, tag, attrs):
        if tag in HIDDEN:
            self.hidden_depth += 1

    def handle_endtag(self, tag):
        if tag in HIDDEN and self.hidden_depth:
            self.hidden_depth -= 1

    def handle_data(self, data):
        if not data.strip():
            return
        (self.disclosed if self.hidden_depth else self.texts).append(" ".join(data.split()))


def _parsed(html: str) -> _MainText:
    parser = _MainText()
    parser.feed(html)
    return parser


def jargon_in(html: str) -> list[str]:
    parser = _parsed(html)
    found = []
    for text in parser.texts:
        for what, pattern in JARGON:
            if pattern.search(text):
                found.append(f"{what}: “{text[:160]}”")
    return found


def test_the_scan_finds_jargon_in_main_text_but_not_in_a_disclosure():
    assert jargon_in("<p>Signed. SHA-256 <code>ab12</code></p>") == ["a SHA-256: “Signed. SHA-256”"]
    assert jargon_in("<p>The governance gate is red</p>")
    assert jargon_in("<td><code>session-gate-red</code></td>")
    assert jargon_in("<td>consent.given</td>") and jargon_in("<td>Pupil #12</td>")
    assert jargon_in("<p>Consent purpose</p>") and jargon_in("<dt>Purpose</dt>")
    assert not jargon_in('<p>Purpose limitation</p><a href="/registry/purposes/">What parents agree to</a>')
    assert jargon_in("<dd>84884d07e472ca92d2b7c6ee4c7e169f</dd>")
    assert not jargon_in("<details><summary>Details</summary>Fingerprint (SHA-256): <code>84884d07e472ca92</code>"
                         "<br>Message-ID &lt;1@x&gt;</details><p>Gatehouse: <span class='gate'>Green</span></p>")


# Pages where a fingerprint serves as evidence.
EVIDENCE = {"consent evidence", "notice", "risk assessment", "risk assessment versions", "PIA versions",
            "signed PIA version", "audit trail"}


def _demo_pages() -> dict[str, str]:
    """The main pages a headteacher reads about the demo federation's records."""
    from consent.models import ConsentEvent, Guardian, Notice, RightsRequest
    from outbox.models import OutboxMessage
    from pia.models import Pia, PiaVersion
    from riskassess.models import Assessment
    from sessions.models import VideoSession

    event = ConsentEvent.objects.select_related("pupil").order_by("pk").first()
    guardian = Guardian.objects.filter(rights_requests__isnull=False).first()
    notice = Notice.objects.filter(published_at__isnull=False).get()
    session = VideoSession.objects.order_by("starts_at").first()
    assessment = Assessment.objects.get()
    pia = Pia.objects.get()
    signed = PiaVersion.objects.get(status="signed")
    message = OutboxMessage.objects.filter(template="consent-confirmation").first()
    return {
        "audit trail": reverse("schools:audit"),
        "session": reverse("video_sessions:session", args=[session.pk]),
        "pupils": reverse("consent:pupils", args=[event.pupil.school_id]),
        "pupil": reverse("consent:pupil", args=[event.pupil_id]),
        "parent": reverse("consent:guardian", args=[guardian.pk]),
        "consent evidence": reverse("consent:event", args=[event.pk]),
        "what parents agree to": reverse("consent:purposes"),
        "notice history": reverse("consent:notice-history", args=[notice.purpose_id]),
        "notice": reverse("consent:notice", args=[notice.pk]),
        "parent's request": reverse("consent:rights-request", args=[RightsRequest.objects.get().pk]),
        "risk assessment": reverse("riskassess:assessment", args=[assessment.pk]),
        "risk assessment versions": reverse("riskassess:versions", args=[assessment.pk]),
        "PIA (its current version)": reverse("pia:pia", args=[pia.pk]),
        "PIA versions": reverse("pia:versions", args=[pia.pk]),
        "signed PIA version": reverse("pia:version", args=[signed.pk]),
        "outbox": reverse("outbox:list"),
        "email in the demo mailbox": reverse("outbox:demo-message", args=[message.pk]),
    }


@pytest.mark.django_db
def test_the_main_staff_pages_speak_plain_language(client, settings, capsys):
    from accounts.models import User

    settings.DEMO_MODE = True
    call_command("seed_demo")
    capsys.readouterr()
    sign_in(client, User.objects.get(username="head"))

    problems = []
    for page, url in _demo_pages().items():
        response = client.get(url, follow=True)
        assert response.status_code == 200, f"{page}: {url} answered {response.status_code}"
        html = response.content.decode()
        problems += [f"{page} ({url}): {found}" for found in jargon_in(html)]
        if page in EVIDENCE:  # the fingerprint is still there, as evidence, behind "Details"
            assert any("SHA-256" in text for text in _parsed(html).disclosed), f"{page}: no fingerprint under Details"
    assert not problems, "Jargon in the main text:\n" + "\n".join(problems)


@pytest.mark.django_db
def test_the_audit_trail_names_the_demo_parents_to_their_headteacher(client, settings, capsys):
    from accounts.models import User
    from consent.models import RightsRequest

    settings.DEMO_MODE = True
    call_command("seed_demo")
    capsys.readouterr()
    sign_in(client, User.objects.get(username="head"))
    body = client.get(reverse("schools:audit")).content.decode()
    parent = RightsRequest.objects.select_related("guardian").get().guardian
    assert f"{parent} (parent or carer)" in body
