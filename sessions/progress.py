"""A send task's progress through its batch, kept where the sweeper can read it if the task's worker dies
mid-batch: `AcceptedMarks` writes it (the send task, `sessions.dispatch`), `cache_marks` reads it (the
sweeper, `sessions.sweep`)."""

import logging
import uuid
from datetime import timedelta

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)


# What the mail server accepted is written to the database once per batch, at its end. Until then each
# acceptance is marked in the shared cache (Redis in production), so that a worker dying mid-batch costs at
# most the message in flight, not every message it had sent (promise 2); see `AcceptedMarks`.
ACCEPTED_MARK_KEPT = timedelta(days=2)


def accepted_mark_key(lease_token) -> str:
    return f"gatehouse:invitations:accepted:{lease_token}"


class AcceptedMarks:
    """A send task's progress through its batch, in the shared cache: the id of the last row the mail server
    accepted (rows are sent in id order), or 0 before the first. Written before the claim, so that for a
    batch whose lease expired a missing mark means the cache lost it, never that nothing was sent.

    The sweeper (`sessions.sweep`) reads it for a batch whose worker died: rows up to the mark were
    accepted and are recorded sent without sending them again; the next row is the one that may have been in
    flight (a possible duplicate); the rest were never tried. Without a mark every row may have been
    accepted, and each is counted as a possible duplicate: nothing is lost, and every copy is counted.

    The cache is not the truth of anything: whenever writing a mark fails (the cache is down), the batch
    falls back to one UPDATE per accepted message (`sessions.dispatch`) for the rest of its rows."""

    def __init__(self, lease_token: uuid.UUID) -> None:
        self.key = accepted_mark_key(lease_token)
        self.redis = None
        backend = caches["default"]
        if isinstance(backend, RedisCache):
            # Django's cache API makes a new Redis client object for every call, a third of a mark's time:
            # here one for the batch, from Django's own client (`get_client`, on its connection pool),
            # writing the key and value as `cache.set` does (an int is stored as itself), so that
            # `cache.get_many` reads the mark back.
            self.redis_key = backend.make_and_validate_key(self.key)
            self.redis = backend._cache.get_client(self.redis_key, write=True)
        self.working = self._write(0)

    def _write(self, delivery_id: int) -> bool:
        try:
            if self.redis is not None:
                self.redis.set(self.redis_key, delivery_id, ex=int(ACCEPTED_MARK_KEPT.total_seconds()))
            else:
                cache.set(self.key, delivery_id, timeout=ACCEPTED_MARK_KEPT.total_seconds())
        except Exception as exc:  # any cache backend's error: fall back to the database
            logger.warning("The shared cache refused the invitation progress mark (%s: %s); recording each "
                           "accepted message in the database instead", type(exc).__name__, exc)
            return False
        return True

    def accepted(self, delivery_id: int) -> bool:
        """Mark this row accepted; False if it must be recorded in the database now."""
        self.working = self.working and self._write(delivery_id)
        return self.working

    def forget(self) -> None:
        """The batch is recorded in the database: the mark has done its job."""
        try:
            cache.delete(self.key)
        except Exception:  # it expires anyway
            logger.warning("Could not delete the invitation progress mark %s; it expires by itself", self.key)


def cache_marks(tokens) -> dict:
    """lease token → the id of the last row its batch marked accepted (0: none yet), for the marks the
    cache still has; one round trip. A cache that does not answer has none."""
    if not tokens:
        return {}
    keys = {accepted_mark_key(token): token for token in tokens}
    try:
        found = cache.get_many(list(keys))
    except Exception as exc:
        logger.warning("Could not read invitation progress marks (%s: %s); counting every row of those "
                       "batches as a possible duplicate", type(exc).__name__, exc)
        return {}
    return {keys[key]: int(value) for key, value in found.items()}
