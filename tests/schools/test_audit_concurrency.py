import threading

import pytest
from django.db import connection

from schools.audit import Actor, audit_log, audit_verify
from schools.models import AuditEntry


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_audit_chain():
    """Four connections append at once; the advisory lock makes them take turns, so every entry
    chains onto the one before it and no two claim the same place."""
    writers, per_writer = 4, 25
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            barrier.wait()
            for i in range(per_writer):
                audit_log(actor=Actor(kind="system", label=f"writer {n}"), action="demo.seeded", data={"i": i})
        except BaseException as exc:  # reported below, with the thread's own error
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert AuditEntry.objects.count() == writers * per_writer
    assert audit_verify() == (writers * per_writer, None)
