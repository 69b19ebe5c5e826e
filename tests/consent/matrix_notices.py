"""Purposes and the notice editor in the role matrix (gathered by tests/test_role_matrix.py).

Every member of an organisation's staff reads its purposes and notices; the headteacher of one of its
schools and the organisation admin write them; another organisation's purposes do not exist (404).
Publishing first asks "confirm it's you", so the writers get 302 there (tests/consent/test_notice_pages.py
publishes after confirming).
"""

from tests.factories import NoticeFactory
from tests.matrix import Row, everyone

from .consent_setup import publish, purpose_for


def _purpose(school):
    """A purpose of the school's organisation with version 1 published and a draft of version 2."""
    purpose = purpose_for(school)
    publish(purpose)
    NoticeFactory(purpose=purpose, letter="A draft of version 2.")
    return purpose


def _own(personas) -> dict:
    return {"pk": _purpose(personas.school).pk}


def _theirs(personas) -> dict:
    return {"pk": _purpose(personas.other_school).pk}


READERS = everyone(other_teacher=404)
READERS_ELSEWHERE = everyone(404, other_teacher=200)
WRITERS = everyone(403, headteacher=200, org_admin=200, other_teacher=404)
WRITERS_ELSEWHERE = everyone(404, other_teacher=403)
# Redirected: to the history after discarding, to "confirm it's you" before publishing.
WRITERS_REDIRECTED = everyone(403, headteacher=302, org_admin=302, other_teacher=404)

ROWS: list[Row] = [
    Row("consent:purposes", everyone()),
    Row("consent:purpose-add", everyone(403, headteacher=200, org_admin=200)),
    Row("consent:purpose-add", everyone(403, headteacher=200, org_admin=200), method="post"),
    Row("consent:purpose-settings", WRITERS, kwargs=_own),
    Row("consent:purpose-settings", WRITERS, kwargs=_own, method="post"),
    Row("consent:purpose-settings", WRITERS_ELSEWHERE, kwargs=_theirs),
    Row("consent:purpose-settings", WRITERS_ELSEWHERE, kwargs=_theirs, method="post"),
    Row("consent:notice-history", READERS, kwargs=_own),
    Row("consent:notice-history", READERS_ELSEWHERE, kwargs=_theirs),
    Row("consent:notice-compare", READERS, kwargs=_own),
    Row("consent:notice-compare", READERS_ELSEWHERE, kwargs=_theirs),
    Row("consent:notice", READERS, kwargs=lambda p: {"pk": _purpose(p.school).current_notice().pk}),
    Row("consent:notice", READERS_ELSEWHERE, kwargs=lambda p: {"pk": _purpose(p.other_school).current_notice().pk}),
    Row("consent:notice-edit", WRITERS, kwargs=_own),
    Row("consent:notice-edit", WRITERS, kwargs=_own, method="post"),
    Row("consent:notice-edit", WRITERS_ELSEWHERE, kwargs=_theirs),
    Row("consent:notice-edit", WRITERS_ELSEWHERE, kwargs=_theirs, method="post"),
    Row("consent:notice-discard", WRITERS_REDIRECTED, kwargs=_own, method="post"),
    Row("consent:notice-discard", WRITERS_ELSEWHERE, kwargs=_theirs, method="post"),
    Row("consent:notice-preview", WRITERS, kwargs=_own),
    Row("consent:notice-preview", WRITERS_ELSEWHERE, kwargs=_theirs),
    Row("consent:notice-publish", WRITERS_REDIRECTED, kwargs=_own),
    Row("consent:notice-publish", WRITERS_REDIRECTED, kwargs=_own, method="post"),
    Row("consent:notice-publish", WRITERS_ELSEWHERE, kwargs=_theirs),
    Row("consent:notice-publish", WRITERS_ELSEWHERE, kwargs=_theirs, method="post"),
]
