"""Invitations serialised once per session and batch, filled in per guardian.

Django's SMTP backend turns each email into bytes with `message().as_bytes(linesep="\\r\\n")`: it builds a
tree of MIME objects and the standard library's generator flattens it, folding every header again and
looking for a boundary absent from the whole text. For the send path that was most of a message's time,
although every invitation to a session has the same frame: the same headers but four, the same parts, the
same calendar file. So the frame is flattened once per session and batch (`Frame`), with boundaries of its
own (random per frame, and checked absent from every message), and each message is its frame with its own
Subject, To, Date and Message-ID folded as Django folds them and its own text and HTML parts encoded as
Django encodes them (8bit or 7bit, quoted-printable when a line is longer than 998 bytes).

`FramedEmail` is an ordinary `EmailMultiAlternatives` (subject, body, alternatives, attachments as before,
so any backend sends it as it did); only when it goes through Django's own SMTP backend does its
`message()` hand over the framed bytes. A frame checks itself when it is made: its first message, built
both ways with the same Date and boundaries, must be the same bytes, or the frame is not used and every
message of it is built in full (and a warning logged). A message the frame cannot carry exactly (another
shape of email, a boundary found in its content, a recipient or a name that cannot be filled in) is built
in full too.
"""

import logging
import re
import secrets
from email import policy as email_policy
from email import quoprimime
from email.utils import formatdate

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.mail.message import RFC5322_EMAIL_LINE_LENGTH_LIMIT, SafeMIMEText, forbid_multi_line_headers

logger = logging.getLogger(__name__)

LINESEP = "\r\n"  # what Django's SMTP backend asks of as_bytes()
# The generator's policy for Django's MIME classes (compat32), as flatten(linesep=…) clones it.
_POLICY = email_policy.compat32.clone(linesep=LINESEP)
_NLCRE = re.compile(r"\r\n|\r|\n")  # the generator's line ends (email.generator.NLCRE)
# The headers that differ from one message of a frame to the next; the rest is the frame's.
PER_MESSAGE_HEADERS = ("subject", "to", "date", "message-id")


def _part_head(subtype: str, cte: str) -> bytes:
    """The header block of a utf-8 text part with this transfer encoding, as Django makes it."""
    sample = {"7bit": "a", "8bit": "\u00e9", "quoted-printable": "a" * (RFC5322_EMAIL_LINE_LENGTH_LIMIT + 1)}[cte]
    data = SafeMIMEText(sample, subtype, "utf-8").as_bytes(linesep=LINESEP)
    head = data[: data.index(b"\r\n\r\n") + 4]
    assert f"Content-Transfer-Encoding: {cte}\r\n".encode() in head, head
    return head


# The longest line, in characters, that cannot be over the limit in bytes (utf-8: at most 4 a character).
_SHORT_LINE = RFC5322_EMAIL_LINE_LENGTH_LIMIT // 4


def _encode_text(text: str, subtype: str, cache: dict) -> bytes:
    """A text part's bytes (head and body) as Django's SafeMIMEText and the generator make them: the body
    8bit (7bit if ASCII), or quoted-printable when a line is longer than 998 bytes (SafeMIMEText's rule,
    lines as `splitlines` sees them). Quoted-printable encodes each line on its own (email.quoprimime:
    `body_encode`), so a line the series has seen is taken from `cache`."""
    limit = RFC5322_EMAIL_LINE_LENGTH_LIMIT
    long_lines = any(len(line) > _SHORT_LINE and len(line.encode(errors="surrogateescape")) > limit
                     for line in text.splitlines())
    if long_lines:
        cte = "quoted-printable"
        lines = cache.setdefault("qp", {})
        encoded = []
        for line in _NLCRE.split(text):
            if line not in lines:
                lines[line] = quoprimime.body_encode(line.encode("utf-8").decode("latin1")).replace("\n", LINESEP)
            encoded.append(lines[line])
        body = LINESEP.join(encoded).encode("ascii")
    else:
        cte = "7bit" if text.isascii() else "8bit"
        body = _NLCRE.sub(LINESEP, text).encode("utf-8")
    key = (subtype, cte)
    if key not in cache:
        cache[key] = _part_head(subtype, cte)
    return cache[key] + body


def _fold(name: str, value: str) -> bytes:
    """The header line as Django sets it (`forbid_multi_line_headers`) and the generator folds it. A short
    ASCII value of single spaces between words (a date, a message id, a plain address, most subjects) is
    one line as it is, without the folding machinery (tests/sessions/test_mailfast.py checks this against
    the generator for any such value)."""
    if (value.isascii() and value.isprintable() and len(name) + 2 + len(value) <= _POLICY.max_line_length
            and "  " not in value and value.strip() == value and "=?" not in value):
        return f"{name}: {value}{LINESEP}".encode("ascii")
    return _POLICY.fold_binary(*forbid_multi_line_headers(name, value, "utf-8"))


def _shape(email: EmailMultiAlternatives) -> tuple | None:
    """What must be the same for two emails to share a frame; None if the frame cannot carry this one."""
    headers = {name.lower(): value for name, value in email.extra_headers.items()}
    if (email.cc or email.bcc or email.reply_to or len(email.to) != 1 or not email.body
            or (email.encoding or settings.DEFAULT_CHARSET) != "utf-8"
            or [mimetype for _, mimetype in email.alternatives] != ["text/html"] or not email.alternatives[0][0]
            or "message-id" not in headers or {"from", "to", "date", "subject", "cc", "reply-to"} & set(headers)
            or not all(isinstance(a, tuple) and isinstance(a[1], str | bytes) for a in email.attachments)):
        return None
    return (email.from_email, tuple((k, v) for k, v in email.extra_headers.items() if k.lower() != "message-id"),
            tuple(tuple(a) for a in email.attachments))


class Frame:
    """One email flattened with stand-ins for its per-message headers and its two text parts."""

    def __init__(self, email: EmailMultiAlternatives) -> None:
        self.shape = _shape(email)
        self.ok = False
        self.heads: dict = {}
        if self.shape is None:
            return
        key = secrets.token_hex(12)
        self.boundaries = [f"==={key}.{i}==" for i in range(2)]
        self.tokens = tuple(b.encode() for b in self.boundaries)
        stand_in = {"text": f"{key}-text", "html": f"{key}-html"}
        template = EmailMultiAlternatives(
            subject=f"{key}-subject", body=stand_in["text"], from_email=email.from_email, to=[f"{key}@example.org"],
            headers={k: f"<{key}>" if k.lower() == "message-id" else v for k, v in email.extra_headers.items()},
            alternatives=[(stand_in["html"], "text/html")], attachments=list(email.attachments))
        data = self._flatten(template.message())
        if data is None or any(token in str(a[1]).encode(errors="replace") for a in email.attachments
                               for token in self.tokens):
            return
        end = data.index(b"\r\n\r\n") + 2
        fields = re.split(rb"\r\n(?![ \t])", data[:end])[:-1]
        # (name as written, its bytes): Django's names are ASCII.
        self.header_fields = [(f.split(b":", 1)[0].decode(), f + b"\r\n") for f in fields]
        names = [name.lower() for name, _ in self.header_fields]
        if sorted(n for n in names if n in PER_MESSAGE_HEADERS) != sorted(PER_MESSAGE_HEADERS):
            return
        text_at, html_at = data.index(stand_in["text"].encode()), data.index(stand_in["html"].encode())
        text_head, html_head = _part_head("plain", "7bit"), _part_head("html", "7bit")
        if (data[text_at - len(text_head) : text_at] != text_head
                or data[html_at - len(html_head) : html_at] != html_head):
            return
        self.pieces = (data[end : text_at - len(text_head)],
                       data[text_at + len(stand_in["text"]) : html_at - len(html_head)],
                       data[html_at + len(stand_in["html"]) :])
        self.ok = True
        # The frame's own check: its first message, both ways, with the same Date and boundaries.
        date = formatdate(localtime=settings.EMAIL_USE_LOCALTIME)
        full = EmailMultiAlternatives.message(email)  # Django's own, whatever the connection
        full.replace_header("Date", date)
        if self.bytes_for(email, date=date) != self._flatten(full):
            self.ok = False
            logger.warning("The invitation frame differs from Django's own serialisation: building each in full")

    def _flatten(self, message) -> bytes | None:
        multiparts = [part for part in message.walk() if part.is_multipart()]
        if len(multiparts) != len(self.boundaries):
            return None
        for part, boundary in zip(multiparts, self.boundaries, strict=True):
            part.set_boundary(boundary)
        return message.as_bytes(linesep=LINESEP)

    def bytes_for(self, email: EmailMultiAlternatives, *, date: str | None = None) -> bytes | None:
        """This email as Django's SMTP backend would send it, or None if this frame cannot carry it."""
        if not self.ok or _shape(email) != self.shape or not email.to[0].isascii():
            return None
        values = {
            "subject": email.subject, "to": ", ".join(str(v) for v in email.to),
            "date": date or formatdate(localtime=settings.EMAIL_USE_LOCALTIME),
            "message-id": next(v for k, v in email.extra_headers.items() if k.lower() == "message-id"),
        }
        header = []
        for name, field in self.header_fields:
            if name.lower() in values:
                field = _fold(name, values[name.lower()])
            header.append(field)
        text = _encode_text(email.body, "plain", self.heads)
        html = _encode_text(email.alternatives[0][0], "html", self.heads)
        if any(token in text or token in html for token in self.tokens):
            return None
        before_text, before_html, rest = self.pieces
        return b"".join([*header, before_text, text, before_html, html, rest])


class PrebuiltMessage:
    """What Django's SMTP backend needs of `message()`: `as_bytes(linesep="\\r\\n")`, here already made.
    Anything else asked of it is answered by the message built in full."""

    def __init__(self, data: bytes, build) -> None:
        self.data, self._build, self._full = data, build, None

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:
        if linesep == LINESEP and not unixfrom:
            return self.data
        return self.full().as_bytes(unixfrom=unixfrom, linesep=linesep)

    def full(self):
        if self._full is None:
            self._full = self._build()
        return self._full

    def __getattr__(self, name: str):
        return getattr(self.full(), name)

    def __getitem__(self, name: str):
        return self.full()[name]


class FramedEmail(EmailMultiAlternatives):
    """An email of a series that shares one frame (`frames`: a dict kept for the series, e.g. one batch of
    one session's invitations). Through Django's SMTP backend, `message()` gives the framed bytes."""

    def __init__(self, *args, frames: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.frames = frames
        self._framed: bytes | None = None
        self._prepared = False

    def prepare(self) -> None:
        """Make the framed bytes now, if they will be used (Django's SMTP backend), rather than when the
        backend asks for them; they are made once, so change nothing of the email after this."""
        if not self._prepared and type(self.connection) is SMTPBackend:
            self._framed, self._prepared = self.framed_bytes(), True

    def framed_bytes(self) -> bytes | None:
        shape = _shape(self)
        if shape is None:
            return None
        frame = self.frames.get("frame")
        if frame is None or frame.shape != shape:
            frame = self.frames["frame"] = Frame(self)
        try:
            return frame.bytes_for(self)
        except (UnicodeError, ValueError):  # e.g. a header Django would refuse: the full build says so
            return None

    def message(self):
        self.prepare()
        if self._framed is not None and type(self.connection) is SMTPBackend:
            return PrebuiltMessage(self._framed, super().message)
        return super().message()
