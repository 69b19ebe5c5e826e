"""Invitations framed once per session and batch (sessions/mailfast.py) are, to the byte, what Django's SMTP
backend would have sent (same Date and boundaries), and are built in full whenever the frame cannot carry
them exactly."""

import logging
import re
from email import message_from_bytes
from email.header import decode_header, make_header

import pytest
from django.core.mail import EmailMultiAlternatives, make_msgid
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import BadHeaderError
from hypothesis import given, settings
from hypothesis import strategies as st

from sessions import mailfast
from sessions.mailfast import FramedEmail, PrebuiltMessage
from tests.outbox.conftest import smtp_server  # noqa: F401 (the fixture)

ICS = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nSUMMARY:Story time\r\nEND:VCALENDAR\r\n"
HTML_LONG_LINE = "<ul>" + "".join(f"<li>Reminder {i}: an adult stays in the room.</li>" for i in range(40)) + "</ul>"


def _email(frames: dict, *, name="Juan Quayle", children="Amelia", to="parent@example.net", connection=None,
           subject=None, html_extra="", text_extra="", **kwargs) -> FramedEmail:
    email = FramedEmail(
        subject=subject if subject is not None else f"Invitation: live lesson for {children}: Year 3 story time",
        body=f"Dear {name},\n\n{children} is invited.\n{text_extra}\nhttps://example.org/p/abc/\n",
        from_email="Gatehouse <gatehouse@localhost>", to=[to],
        headers={"Message-ID": make_msgid(domain="gatehouse.local"), "Auto-Submitted": "auto-generated"},
        connection=connection if connection is not None else SMTPBackend(), frames=frames, **kwargs,
    )
    email.attach_alternative(f"<!doctype html>\n<p>Dear {name},</p>\n<p>{children} is invited.</p>\n"
                             f"{HTML_LONG_LINE}\n{html_extra}\n", "text/html")
    email.attach("invitation.ics", ICS, "text/calendar")
    return email


def _framed_and_full(email: FramedEmail) -> tuple[bytes, bytes]:
    """The framed bytes, and Django's own build of the same email with the frame's Date and boundaries."""
    prebuilt = email.message()
    assert isinstance(prebuilt, PrebuiltMessage)
    data = prebuilt.as_bytes(linesep="\r\n")
    full = EmailMultiAlternatives.message(email)
    full.replace_header("Date", message_from_bytes(data)["Date"])
    boundaries = iter(email.frames["frame"].boundaries)
    for part in full.walk():
        if part.is_multipart():
            part.set_boundary(next(boundaries))
    return data, full.as_bytes(linesep="\r\n")


def _parts(data: bytes) -> list[tuple[str, bytes]]:
    return [(p.get_content_type(), p.get_payload(decode=True)) for p in message_from_bytes(data).walk()
            if not p.is_multipart()]


@pytest.mark.parametrize("values", [
    {},
    {"name": "Seán Ó Briain", "children": "Éabha and Ríona"},
    {"name": "O'Brien <script>alert(1)</script> & Co", "children": "<b>Ben</b> & \"Bo\""},
    {"subject": "Updated invitation: " + "a very long title that must be folded " * 4},
    {"subject": "Invitation : leçon en direct pour Zoë — " + "très longue " * 10},
    {"text_extra": "x" * 1200},  # a line over 998 bytes: the text part goes quoted-printable
    {"html_extra": "<p>line ending in a space </p> \n<p>tab\t</p>"},
])
def test_the_framed_bytes_are_djangos_to_the_byte(values):
    frames: dict = {}
    for _ in range(2):  # the frame's first message (which it checks itself against) and a later one
        data, full = _framed_and_full(_email(frames, **values))
        assert data == full
    parsed = message_from_bytes(data)
    assert parsed["Subject"] is not None and parsed["To"] == "parent@example.net"
    assert [kind for kind, _ in _parts(data)] == ["text/plain", "text/html", "text/calendar"]


def test_one_frame_carries_every_guardian_of_the_series():
    frames: dict = {}
    first = _email(frames, name="Ava")
    first.message()
    frame = frames["frame"]
    for i, name in enumerate(("Ben", "Zoë", "<i>Cal</i>", "Dee " * 300)):
        email = _email(frames, name=name, to=f"parent{i}@example.net")
        data, full = _framed_and_full(email)
        assert data == full and frames["frame"] is frame
        text, html, ics = (payload for _, payload in _parts(data))
        assert f"Dear {name}".encode() in text and f"Dear {name}".encode() in html and ics.decode() == ICS


@pytest.mark.parametrize("name, value", [
    ("Date", "Sun, 06 Dec 2026 10:55:21 -0000"),
    ("Message-ID", "<179655447602.26326.14793356796574007390@gatehouse.local>"),
    ("To", "parent0@example.net"),
    ("To", "a-very-long-address-of-a-parent-that-goes-on-and-on-and-on@example.net"),
    ("To", "two  spaces@example.net"),
    ("To", "=?utf-8?q?encoded?= <x@example.net>"),
    ("Subject", "Short"),
    ("Subject", "Zoë"),
    ("X-Tab", "a\tb"),
])
def test_a_header_line_is_the_generators(name, value):
    from email.policy import compat32

    from django.core.mail.message import forbid_multi_line_headers

    expected = compat32.clone(linesep="\r\n").fold_binary(*forbid_multi_line_headers(name, value, "utf-8"))
    assert mailfast._fold(name, value) == expected


@settings(max_examples=500, deadline=None)
@given(name=st.sampled_from(["Subject", "To", "Date", "Message-ID"]),
       value=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=90)
       | st.lists(st.sampled_from(["Live", "lesson", "for", "Ava,", "Ben", "and", "Cal:", "Story", "time,", "Mon",
                                   "7", "Dec", "at", "09:00", "Updated", "invitation:", "=?", "a;b", "(x)"]),
                  max_size=14).map(" ".join))
def test_any_header_line_the_short_path_takes_is_the_generators(name, value):
    from email.policy import compat32

    from django.core.mail.message import forbid_multi_line_headers

    expected = compat32.clone(linesep="\r\n").fold_binary(*forbid_multi_line_headers(name, value, "utf-8"))
    assert mailfast._fold(name, value) == expected


def _built_in_full(email) -> bool:
    return not isinstance(email.message(), PrebuiltMessage)


def test_what_the_frame_cannot_carry_is_built_in_full():
    frames: dict = {}
    assert not _built_in_full(_email(frames))
    assert _built_in_full(_email(frames, to="sean@éire.example"))  # not ASCII
    assert _built_in_full(_email(frames, cc=["head@example.org"]))
    assert _built_in_full(_email(frames, connection=LocmemBackend()))  # other backends build their own
    token = frames["frame"].boundaries[0]
    assert _built_in_full(_email(frames, text_extra=f"--{token}"))
    assert _built_in_full(_email(frames, text_extra=frames["frame"].boundaries[1]))
    no_html = _email(frames)
    no_html.alternatives = []
    assert _built_in_full(no_html)
    # And the full build then says what is wrong, as it would have without the frame.
    with pytest.raises(BadHeaderError):
        _email(frames, subject="Invitation\r\nBcc: someone@evil.test").message()


def test_a_frame_that_differs_from_djangos_build_is_not_used(monkeypatch, caplog):
    """Should the standard library or Django serialise differently, the frame's own check finds it."""
    monkeypatch.setattr(mailfast, "_POLICY", mailfast._POLICY.clone(max_line_length=200))
    frames: dict = {}
    with caplog.at_level(logging.WARNING, logger="sessions.mailfast"):
        email = _email(frames, subject="Invitation: " + "a title that Django folds at 78 " * 3)
        assert _built_in_full(email)
    assert "differs from Django's own serialisation" in caplog.text
    assert _built_in_full(_email(frames))  # the whole series, not only that message


def test_the_prebuilt_message_answers_anything_else_from_the_full_build():
    email = _email({})
    prebuilt = email.message()
    assert isinstance(prebuilt, PrebuiltMessage)
    assert prebuilt["Subject"] == email.subject and prebuilt.get_content_type() == "multipart/mixed"
    assert b"\r\n" not in prebuilt.as_bytes(linesep="\n")


# ---------------------------------------------------------------------------------------------------
# The invitations themselves, as the send path builds and sends them


def _families(personas, *, replaces_earlier: bool):
    from sessions.dispatch import deliveries_plan
    from sessions.models import Delivery
    from tests.factories import GroupFactory

    from .emails_dispatch import consenting_family, due_session

    owls = GroupFactory(school=personas.school, name="Owls")
    consenting_family(personas.school, owls, children=1, first_names=("Éabha",))
    guardian, _ = consenting_family(personas.school, owls, children=2, first_names=('<b>Ben</b> & "Bo"', "Cal"))
    guardian.first_name, guardian.last_name = "Seán", "O'Brien <script>alert(1)</script>"
    guardian.save()
    consenting_family(personas.school, owls, children=1, first_names=("Ava",))
    session = due_session(personas, group=owls)
    deliveries_plan()
    if replaces_earlier:
        Delivery.objects.filter(session=session).update(sent_revision=1)
        session.title = "Story & <i>rhyme</i> time — Zoë's class"
        session.revision = 2
        session.save()
    return list(Delivery.objects.filter(session=session).order_by("pk").values_list("pk", flat=True))


def _headers(message) -> list[tuple[str, str]]:
    """The headers but the Date, the boundary (each build makes its own) left out."""
    return [(name, re.sub(r'boundary="[^"]+"', "boundary", str(value))) for name, value in message.items()
            if name != "Date"]


def _decoded(message) -> list[tuple]:
    return [(p.get_content_type(), p.get_filename(), p.get("Content-Transfer-Encoding"), p.get_payload(decode=True))
            for p in message.walk() if not p.is_multipart()]


@pytest.mark.django_db
@pytest.mark.parametrize("replaces_earlier", [False, True])
def test_the_invitations_framed_are_the_invitations_built_in_full(personas, replaces_earlier):
    """Non-ASCII names, names that need escaping, two children, a replacement invitation: the bytes the SMTP
    backend gets parse to the same headers (the Date aside) and the same decoded parts as Django's build."""
    from sessions.dispatch import deliveries_claim
    from sessions.invitation import invitation_email

    claimed = deliveries_claim(_families(personas, replaces_earlier=replaces_earlier))
    assert len(claimed) == 3
    connection = SMTPBackend()
    for item in claimed:
        email = invitation_email(item, connection)
        prebuilt = email.message()
        assert isinstance(prebuilt, PrebuiltMessage)
        framed = message_from_bytes(prebuilt.as_bytes(linesep="\r\n"))
        full = message_from_bytes(EmailMultiAlternatives.message(email).as_bytes(linesep="\r\n"))
        assert _headers(framed) == _headers(full) and _headers(framed)
        assert _decoded(framed) == _decoded(full)
        assert [kind for kind, *_ in _decoded(framed)] == ["text/plain", "text/html", "text/calendar"]
        assert framed["Message-ID"] == item.delivery.message_id
    # One frame for the three: made once for the session and batch.
    assert len({id(c.shared["frame"]) for c in claimed}) == 1 and claimed[0].shared["frame"].ok


@pytest.mark.django_db
def test_the_invitations_received_over_smtp_read_as_written(personas, smtp_server):  # noqa: F811
    from sessions.dispatch import delivery_send_batch
    from sessions.models import Delivery

    ids = _families(personas, replaces_earlier=True)
    assert delivery_send_batch(ids).sent == ids
    assert len(smtp_server.received) == 3
    by_id = {m["Message-ID"]: m for m in smtp_server.received}
    for delivery in Delivery.objects.filter(pk__in=ids).select_related("guardian"):
        message = by_id[delivery.message_id]
        assert message["To"] == delivery.guardian.email
        text, html, ics = (payload.decode() for *_, payload in _decoded(message))
        assert f"Dear {delivery.guardian.first_name}" in text and "BEGIN:VCALENDAR" in ics
        if delivery.guardian.first_name == "Seán":
            assert "Seán O'Brien <script>alert(1)</script>" in text
            assert "O&#x27;Brien &lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
            assert '&lt;b&gt;Ben&lt;/b&gt; &amp; &quot;Bo&quot; and Cal' in html
        assert "Zoë's class" in str(make_header(decode_header(message["Subject"]))) and "Zoë's class" in text
