"""What each kind of email is, in words: the outbox and the audit trail show these, not template names."""

EMAIL_KINDS: dict[str, str] = {
    "consent-request": "Consent request to a parent",
    "consent-reminder": "Consent reminder to a parent",
    "consent-confirmation": "Confirmation of a parent's answer",
    "rights-acknowledgement": "Receipt of a parent's request",
    "rights-response": "Answer to a parent's request",
    "session-invitation": "Lesson invitation",
    "session-moved": "Lesson moved",
    "session-cancelled": "Lesson cancelled",
    "session-not-going-ahead": "Lesson not going ahead",
    "session-alert": "Alert to the host",
    "session-gate-red": "Lesson may not go ahead",
    "session-gate-green": "Lesson can go ahead again",
    "session-incident": "Incident report",
    "pia-waiting": "PIA waiting for you",
    "pia-signed": "PIA signed",
    "pia-action-reminder": "PIA action reminder",
    "risk-review-reminder": "Risk assessment review reminder",
    "risk-action-reminder": "Risk assessment action reminder",
    "password-reset": "Password reset",
    "test-message": "Test email",
}


def email_kind(template: str) -> str:
    """The readable kind of an email from its template name ("Email" for one this list does not know)."""
    return EMAIL_KINDS.get(template, "Email")
