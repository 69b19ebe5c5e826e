"""A send task's progress through its batch, kept where the sweeper can read it if the task's worker dies
mid-batch, so that what the mail server accepted is recorded sent at the moment it was accepted and not sent
again: `AcceptedMarks` writes it (the send task, `sessions.dispatch`), `cache_marks` and the rows'
`accepted_at` are read by the sweeper (`sessions.sweep`).

Two records, each enough to bound the duplicates when the worker dies:
- in the shared cache (Redis), after every accepted message: the rows accepted since the last database
  record, each with its moment of acceptance. With it, a worker dying costs at most the message in flight;
- in the database, every `PROGRESS_EVERY` accepted messages, one UPDATE of those rows' `accepted_at`. With
  the cache lost as well, at most the `PROGRESS_EVERY` rows after the last recorded one can have reached the
  mail server unrecorded, whatever the size of the batch.
"""

import logging
import pickle
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection as db_connection

from .models import Delivery

logger = logging.getLogger(__name__)

ACCEPTED_MARK_KEPT = timedelta(days=2)
# A mark's moments: whole microseconds since the epoch, exact both ways.
EPOCH, MICROSECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)
# Accepted messages between two records of a batch's progress in the database.
PROGRESS_EVERY = 20


def accepted_mark_key(lease_token) -> str:
    return f"gatehouse:invitations:accepted:{lease_token}"


@dataclass
class Mark:
    """What a batch's mark in the cache says: the last row accepted (0: none since the claim, or none since
    the last database record, which then says the rest) and when each row since the last record was."""

    last_id: int = 0
    accepted_at: dict[int, datetime] = field(default_factory=dict)


class AcceptedMarks:
    """A send task's progress through its batch, in the shared cache: the rows the mail server accepted since
    the last record in the database (rows are sent in id order), each with its moment, or nothing before the
    first. Written before the claim, so that for a batch whose lease expired a missing mark means the cache
    lost it, never that nothing was sent.

    The sweeper (`sessions.sweep`) reads it for a batch whose worker died: rows up to the mark, and rows whose
    `accepted_at` the database has, were accepted and are recorded sent at that moment without sending them
    again; the next row is the one that may have been in flight (a possible duplicate); the rest were never
    tried. Without a mark, the `PROGRESS_EVERY` rows after the last one recorded in the database may have
    been accepted, and each is counted as a possible duplicate; the others were never tried.

    The cache is not the truth of anything: whenever writing a mark fails (the cache is down), the batch
    falls back to one UPDATE per accepted message (`sessions.dispatch`) for the rest of its rows."""

    def __init__(self, lease_token: uuid.UUID) -> None:
        self.key = accepted_mark_key(lease_token)
        self.redis = None
        self.since_recorded: list[tuple[int, int]] = []
        backend = caches["default"]
        if isinstance(backend, RedisCache):
            # Django's cache API makes a new Redis client object for every call, a third of a mark's time:
            # here one for the batch, from Django's own client (`get_client`, on its connection pool),
            # writing the value as `cache.set` does (pickled: Django's Redis serializer reads it back), so
            # that `cache.get_many` reads the mark back.
            self.redis_key = backend.make_and_validate_key(self.key)
            self.redis = backend._cache.get_client(self.redis_key, write=True)
        self.working = self._write()

    def _write(self) -> bool:
        value = tuple(self.since_recorded)
        try:
            if self.redis is not None:
                self.redis.set(self.redis_key, pickle.dumps(value, pickle.HIGHEST_PROTOCOL),
                               ex=int(ACCEPTED_MARK_KEPT.total_seconds()))
            else:
                cache.set(self.key, value, timeout=ACCEPTED_MARK_KEPT.total_seconds())
        except Exception as exc:  # any cache backend's error: fall back to the database
            logger.warning("The shared cache refused the invitation progress mark (%s: %s); recording each "
                           "accepted message in the database instead", type(exc).__name__, exc)
            return False
        return True

    def accepted(self, delivery_id: int, at: datetime) -> bool:
        """Mark this row accepted at `at`; False if it must be recorded in the database now."""
        self.since_recorded.append((delivery_id, (at - EPOCH) // MICROSECOND))
        self.working = self.working and self._write()
        return self.working

    def recorded(self) -> None:
        """The rows marked so far are recorded in the database (`accepted_rows_record`): the next mark
        starts afresh, and stays small."""
        self.since_recorded = []

    def forget(self) -> None:
        """The batch is recorded in the database: the mark has done its job."""
        try:
            cache.delete(self.key)
        except Exception:  # it expires anyway
            logger.warning("Could not delete the invitation progress mark %s; it expires by itself", self.key)


def _mark(value) -> Mark:
    if isinstance(value, int):  # a mark written before the marks carried their moments: the last id
        return Mark(last_id=value)
    times = {int(pk): EPOCH + at * MICROSECOND for pk, at in value}
    return Mark(last_id=max(times, default=0), accepted_at=times)


def cache_marks(tokens) -> dict[uuid.UUID, Mark]:
    """lease token → what its batch's mark says, for the marks the cache still has; one round trip. A cache
    that does not answer has none."""
    if not tokens:
        return {}
    keys = {accepted_mark_key(token): token for token in tokens}
    try:
        found = cache.get_many(list(keys))
    except Exception as exc:
        logger.warning("Could not read invitation progress marks (%s: %s); judging those batches by what the "
                       "database recorded of them", type(exc).__name__, exc)
        return {}
    return {keys[key]: _mark(value) for key, value in found.items()}


def accepted_rows_record(accepted: Sequence[tuple[int, datetime]]) -> None:
    """Record in the database when the mail server accepted these rows (still `sending`): one UPDATE, outside
    any transaction (the send loop's). On PostgreSQL an UPDATE … FROM (VALUES …) whose commit does not wait
    for the disk (`synchronous_commit` off for this statement's transaction only): the record is visible to
    the sweeper at once and survives the worker, and only a crash of PostgreSQL itself within a fraction of a
    second could lose it, the cache's mark still holding the same; waiting for the disk had doubled its cost.
    The batch's end, the truth, keeps the synchronous commit. Elsewhere `bulk_update`, one statement too for
    so few rows."""
    if not accepted:
        return
    if db_connection.vendor != "postgresql":
        rows = [Delivery(pk=pk, accepted_at=at) for pk, at in accepted]
        Delivery.objects.bulk_update(rows, ["accepted_at"])
        return
    meta, quote = Delivery._meta, db_connection.ops.quote_name
    column = {name: quote(meta.get_field(name).column) for name in ("id", "accepted_at")}
    values = ", ".join(["(%s, %s::timestamptz)"] * len(accepted))
    params = [value for pk, at in accepted for value in (pk, at)]
    with db_connection.cursor() as cursor:
        sql = ("WITH no_wait AS (SELECT set_config('synchronous_commit', 'off', true)) "  # noqa: S608
               f"UPDATE {quote(meta.db_table)} AS d SET {column['accepted_at']} = v.at "
               f"FROM no_wait, (VALUES {values}) AS v (id, at) WHERE d.{column['id']} = v.id")
        cursor.execute(sql, params)
