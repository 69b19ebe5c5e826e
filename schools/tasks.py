"""Celery tasks of the daily digest. They take ids only; the `Digest` rows decide what is left to do, so a
task that is redelivered, duplicated by the next dispatcher run or run late sends nothing twice (see
`schools.digest`: at-most-once per person and day)."""

from celery import shared_task

from . import digest


@shared_task(name="schools.tasks.digest_dispatch")
def digest_dispatch() -> dict[str, int]:
    result = digest.digest_dispatch()
    return {"due": result.due, "pruned": result.pruned}


@shared_task(name="schools.tasks.digest_send")
def digest_send(user_ids: list[int]) -> dict[str, int]:
    result = digest.digest_send_batch(user_ids)
    return {"sent": result["sent"], "empty": result["empty"], "skipped": result["skipped"]}
