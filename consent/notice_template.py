# ruff: noqa: E501 -- paragraphs of prose, one per line: a line break here would show in the notice.
"""The parent letter, meeting protocol and privacy notice the federation sent in May 2020, adapted to
Gatehouse. A new purpose's first notice starts from these texts; the headteacher edits them before
publishing."""

PURPOSE_NAME = "Live video lessons scheduled by the school"
PURPOSE_SLUG = "video-lessons"

LETTER = """Dear parents and carers,

We would like to offer video lessons and assemblies in real time, so that children can see each other and their teacher. As with every new platform, we have looked at the data risks and access issues: our risk assessment and privacy impact assessment are available from the school.

We need your permission for your child to take part. We will not assume you are happy for your child to take part, and you will only receive an invitation if we have your express consent. You can change your mind at any time, from the same link.

Invitations are sent to the parental email address we hold, a short time before each session, with the meeting address and its password.

Best wishes,
The Executive Headteacher"""

PROTOCOL = """- Children and parents only need a browser; there is nothing to download.
- Every meeting is hosted by a member of the teaching staff of the federation.
- Invitations are sent to the parental email address we hold, and contain the meeting address and a password.
- Everyone waits in a waiting room and is admitted only by the host, who checks the child's first name first.
- Everyone is muted on arrival; the host decides who speaks and when. Pupils unmute only when asked.
- Pupils cannot share their screen, and the chat is closed.
- The meeting is locked once everyone has joined, or 5 minutes after it starts.
- A meeting usually lasts no more than 30 minutes, and the host ends it for everyone.
- An adult should be present in the room with the child.
- If anything inappropriate happens, the host ends the meeting at once.
- Do not accept invitations at other times from anyone claiming to be a member of staff."""

PRIVACY_NOTICE = """The school uses a video conferencing service to run live lessons. To take part, your child's first name and image are seen by the teacher and the other children in the session; the service also collects technical information about the device and connection (such as IP address and device type) and meeting details (such as join and leave times).

The lawful basis is your consent, which you can withdraw at any time; there is no obligation to take part, and your child will not be disadvantaged if they do not.

Please be aware that video services can have privacy and security weaknesses: no sensitive personal information should be shared during a session, and meeting links and passwords must not be passed on.

Gatehouse keeps a record of your decision (who decided, when, how and on which version of this notice) for as long as the school must be able to show it. You may ask to see, correct or delete the information the school holds through the link in our emails."""
