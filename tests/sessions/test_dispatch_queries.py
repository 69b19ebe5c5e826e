"""The send task's queries are a fixed number per batch (design.md, "Scale to plan for"; quality.md, figure
"dispatch"): the claim is one transaction of a fixed number of queries, each accepted message is marked in
the shared cache (`AcceptedMarks`: promise 2, a crash then duplicates at most the message in flight, never
the batch), every 20 accepted messages are recorded in the database by one UPDATE (with the cache lost too,
at most 20 duplicates), and the batch's end records them all sent in one UPDATE. With the cache down, each
accepted message is recorded by an UPDATE of its own instead."""

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent.models import GuardianLink
from sessions.dispatch import deliveries_plan, delivery_send_batch
from sessions.models import Delivery, DeliveryEvent
from sessions.progress import PROGRESS_EVERY
from tests.factories import GroupFactory

from .emails_dispatch import consenting_family, due_session

pytestmark = pytest.mark.django_db

Status = Delivery.Status


def _invitations() -> list:
    return [m for m in mail.outbox if any(a[0] == "invitation.ics" for a in m.attachments)]


def _sent_updates(queries) -> list[str]:
    table = Delivery._meta.db_table
    return [q["sql"] for q in queries if f'UPDATE "{table}"' in q["sql"] and '"sent_at"' in q["sql"]]


def _progress_updates(queries) -> list[str]:
    table = Delivery._meta.db_table
    return [q["sql"] for q in queries if f'UPDATE "{table}"' in q["sql"] and '"accepted_at"' in q["sql"]
            and '"sent_at"' not in q["sql"] and '"lease_until"' not in q["sql"]]


def _planned(personas, families: int) -> list[int]:
    """A due session of `families` consenting families, planned: its delivery ids in order."""
    owls = GroupFactory(school=personas.school, name="Owls")
    for _ in range(families):
        consenting_family(personas.school, owls)
    session = due_session(personas, group=owls)
    deliveries_plan()
    return list(Delivery.objects.filter(session=session).order_by("pk").values_list("pk", flat=True))


def test_a_batch_of_fifty_costs_the_queries_of_a_batch_of_ten(personas):
    ids = _planned(personas, 61)
    assert len(ids) == 61
    links_before = GuardianLink.objects.count()
    # The process's first batch also fills Django's caches (content types for the audit trail): not ours.
    assert delivery_send_batch(ids[:1]).sent == ids[:1]

    counts = {}
    for size, batch in ((10, ids[1:11]), (50, ids[11:61])):
        before = len(mail.outbox)
        with CaptureQueriesContext(connection) as queries:
            result = delivery_send_batch(batch)
        assert result.sent == batch and len(mail.outbox) - before == size
        assert len(_sent_updates(queries.captured_queries)) == 1
        assert len(_progress_updates(queries.captured_queries)) == size // PROGRESS_EVERY
        counts[size] = len(queries)

    print(f"queries per batch: {counts}")
    # The same but for one UPDATE per PROGRESS_EVERY messages: at most 10 in a batch of 200.
    assert counts[50] - counts[10] == 50 // PROGRESS_EVERY - 10 // PROGRESS_EVERY, f"queries per batch: {counts}"
    assert counts[10] <= 40, f"the claim and bookkeeping of a batch take {counts[10]} queries"

    # And the bulk forms wrote what the one-row forms did: every row sent with its own message id and
    # withdraw link, each with its events.
    rows = Delivery.objects.filter(pk__in=ids)
    assert set(rows.values_list("status", flat=True)) == {Status.SENT}
    assert rows.values("message_id").distinct().count() == 61
    assert GuardianLink.objects.count() - links_before == 61
    for status in (Status.SENDING, Status.SENT):
        assert DeliveryEvent.objects.filter(delivery__in=ids, status=status).count() == 61
    message_ids = {m.extra_headers["Message-ID"] for m in mail.outbox}
    assert set(rows.values_list("message_id", flat=True)) <= message_ids


def test_re_sending_after_a_change_costs_the_same_queries_per_batch(personas):
    """A changed link or password re-sends to everyone invited: each message then says what changed since
    the one it replaces, read once per batch and earlier revision, not once per message."""
    ids = _planned(personas, 61)
    session = Delivery.objects.get(pk=ids[0]).session
    Delivery.objects.filter(pk__in=ids).update(sent_revision=1)
    session.revision = 2
    session.meeting_id = "999 8888 7777"
    session.save()
    assert delivery_send_batch(ids[:1]).sent == ids[:1]
    counts = {}
    for size, batch in ((10, ids[1:11]), (50, ids[11:61])):
        with CaptureQueriesContext(connection) as queries:
            assert delivery_send_batch(batch).sent == batch
        counts[size] = len(queries)
    assert counts[50] - counts[10] == 50 // PROGRESS_EVERY - 10 // PROGRESS_EVERY, f"queries per batch: {counts}"
    assert all(m.subject.startswith("Updated invitation") for m in _invitations())


@pytest.mark.parametrize("replaces_earlier", [False, True])
def test_the_invitation_rendered_once_per_session_is_the_full_render_to_the_byte(personas, replaces_earlier):
    """The send path renders the templates once per batch and session and fills in each guardian's name,
    children and link: the result must be what rendering the templates in full gives, for names that need
    escaping, one child or several, a first invitation or one replacing an earlier one."""
    from sessions.dispatch import deliveries_claim
    from sessions.invitation import invitation_context, invitation_email, invitation_render

    owls = GroupFactory(school=personas.school, name="Owls")
    families = [
        consenting_family(personas.school, owls, children=1, first_names=("Ava",)),
        consenting_family(personas.school, owls, children=2, first_names=('<b>Ben</b> & "Bo"', "Cal")),
        consenting_family(personas.school, owls, children=3, first_names=("Dee", "Eli", "Fay\r\nBcc: x@evil.test")),
    ]
    guardian = families[1][0]
    guardian.last_name = "O'Brien <script>alert(1)</script> & Co"
    guardian.save()
    session = due_session(personas, group=owls)
    deliveries_plan()
    if replaces_earlier:
        Delivery.objects.filter(session=session).update(sent_revision=1)
        session.title = "Story & <i>rhyme</i> time"
        session.revision = 2
        session.save()
    claimed = deliveries_claim(Delivery.objects.filter(session=session).values_list("pk", flat=True))
    assert len(claimed) == 3 and len({id(c.shared) for c in claimed}) == 1
    for item in claimed:
        subject, body, html = invitation_render(invitation_context(item))
        email = invitation_email(item)
        assert (email.subject, email.body, email.alternatives[0][0]) == (subject, body, html)
        assert item.withdraw_link in email.body and str(item.guardian) in email.body
    assert "O&#x27;Brien &lt;script&gt;" in invitation_email(next(c for c in claimed if c.guardian == guardian)
                                                              ).alternatives[0][0]


def test_a_batch_out_of_time_gives_the_untried_rows_back_unspent_and_queues_them_again(personas, monkeypatch):
    """Rows are claimed together, each with the lease of one send: when the batch's time is up, the rows
    not yet tried go back as they were (no attempt spent, no lease) and to a fresh task."""
    from outbox.services import MailBatch
    from sessions import dispatch

    ids = _planned(personas, 4)
    handed = []
    monkeypatch.setattr(dispatch, "deliveries_dispatch", lambda pks: handed.extend(pks))
    checks = iter([False, False])  # time enough for two messages, then out of time
    monkeypatch.setattr(MailBatch, "out_of_time", lambda self: next(checks, True))

    result = delivery_send_batch(ids)
    assert result.sent == ids[:2] and result.left == ids[2:] and handed == ids[2:]
    assert len(_invitations()) == 2
    rows = {d.pk: d for d in Delivery.objects.filter(pk__in=ids)}
    assert [rows[pk].status for pk in ids] == [Status.SENT, Status.SENT, Status.PENDING, Status.PENDING]
    assert [rows[pk].attempts for pk in ids] == [1, 1, 0, 0]
    assert all(rows[pk].lease_until is None for pk in ids)
    # Given back, they are claimable at once: the fresh task sends them.
    monkeypatch.setattr(MailBatch, "out_of_time", lambda self: False)
    assert delivery_send_batch(handed).sent == ids[2:]
    assert Delivery.objects.filter(pk__in=ids, status=Status.SENT, attempts=1).count() == 4
    assert len(_invitations()) == 4


def test_with_the_cache_down_each_accepted_message_is_recorded_at_once(personas, monkeypatch, caplog):
    """The marks are a convenience, not the truth: when the cache refuses one, the batch records every
    accepted message in the database as it goes (one UPDATE each), and says so in the log."""
    from django.core.cache import cache

    ids = _planned(personas, 12)
    assert delivery_send_batch(ids[:1]).sent == ids[:1]

    def refuse(*args, **kwargs):
        raise ConnectionError("the cache is down")

    monkeypatch.setattr(cache, "set", refuse)
    monkeypatch.setattr(cache, "delete", refuse)
    with CaptureQueriesContext(connection) as queries:
        assert delivery_send_batch(ids[1:]).sent == ids[1:]
    assert len(_sent_updates(queries.captured_queries)) == 11
    rows = Delivery.objects.filter(pk__in=ids)
    assert set(rows.values_list("status", flat=True)) == {Status.SENT}
    assert DeliveryEvent.objects.filter(delivery__in=ids, status=Status.SENT).count() == 12
    assert "recording each accepted message in the database instead" in caplog.text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_batch_is_recorded_sent_by_one_statement_outside_any_transaction(personas, monkeypatch):
    """As the send task runs it (no transaction around it): the accepted rows are recorded by one
    UPDATE … RETURNING, and the progress mark is gone once they are."""
    from django.core.cache import cache

    from sessions import dispatch

    monkeypatch.setattr(dispatch, "deliveries_dispatch", lambda ids: None)
    monkeypatch.setattr("sessions.changes._plan_now", lambda: None)
    marks = []
    made = dispatch.AcceptedMarks.__init__

    def spy(self, lease_token):
        made(self, lease_token)
        marks.append(self.key)

    monkeypatch.setattr(dispatch.AcceptedMarks, "__init__", spy)
    ids = _planned(personas, 3)
    with CaptureQueriesContext(connection) as queries:
        assert delivery_send_batch(ids).sent == ids
    updates = _sent_updates(queries.captured_queries)
    assert len(updates) == 1 and "RETURNING" in updates[0]
    rows = Delivery.objects.filter(pk__in=ids)
    assert set(rows.values_list("status", flat=True)) == {Status.SENT}
    assert set(rows.values_list("lease_token", flat=True)) == {None}
    assert len(marks) == 1 and cache.get(marks[0], "gone") == "gone"
