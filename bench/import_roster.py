"""Benchmark: generate a 50,000-row MIS roster for one school and import it (read, plan, apply).

Runs against the configured database (DATABASE_URL) and adds a new school named "Bench …" each run,
so point it at a database of its own. Prints rows, seconds per phase, peak memory (tracemalloc and
the process's ru_maxrss) and the queries per batch. See bench/README.md.
"""

import argparse
import csv
import io
import random
import re
import resource
import time
import tracemalloc

from benchsetup import QueryCounter  # first: it sets Django up (and sorts before django)
from django.db import connection
from django.utils import timezone

from consent.imports import import_apply, import_plan, read_roster
from consent.imports.columns import COLUMNS
from schools.models import Organisation, School

FIRST = ["Amelia", "Finlo", "Breesha", "Juan", "Ealish", "Orry", "Aalin", "Illiam", "Moirrey", "Tom", "Joan", "Ann"]
LAST = ["Quayle", "Kermode", "Kelly", "Corlett", "Cregeen", "Christian", "Moore", "Clague", "Kneale", "Teare"]


def generate_roster(target_rows: int, seed: int = 7) -> bytes:
    """Families of 1–3 children (siblings share guardians) with one or two guardians each."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([column.label for column in COLUMNS])
    rows = pupil = contact = 0
    while rows < target_rows:
        surname = rng.choice(LAST)
        guardians = []
        for relationship in ["Mother", "Father"][: rng.choice((1, 2, 2, 2))]:
            contact += 1
            guardians.append([f"C{contact:06d}", rng.choice(FIRST), surname, f"c{contact}@example.net",
                              f"07700 {contact % 1_000_000:06d}", relationship, rng.choice(("Yes", "Yes", "No"))])
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            pupil += 1
            year = rng.randint(7, 13)
            child = [f"P{pupil:06d}", rng.choice(FIRST), surname, str(year), f"{year}{rng.choice('ABCDEF')}"]
            for guardian in guardians:
                writer.writerow(child + guardian)
                rows += 1
    return out.getvalue().encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also trace Python allocations (slows the run and inflates ru_maxrss)")
    args = parser.parse_args()

    stamp = timezone.now().strftime("%Y%m%d%H%M%S%f")
    organisation = Organisation.objects.create(name=f"Bench {stamp}", slug=f"bench-{stamp}")
    school = School.objects.create(organisation=organisation, name=f"Bench {stamp}", slug="bench")
    data = generate_roster(args.rows)

    if args.tracemalloc:
        tracemalloc.start()
    counter = QueryCounter()
    batches = 0

    def progress(done: int, total: int) -> None:
        nonlocal batches
        batches += 1

    started = time.perf_counter()
    roster = read_roster(data, "roster.csv", max_bytes=50 * 1024 * 1024)
    read_at = time.perf_counter()
    with connection.execute_wrapper(counter):
        plan = import_plan(school=school, rows=roster, full=True)
        planned_at = time.perf_counter()
        plan_queries = counter.count
        counts = import_apply(plan=plan, actor=None, batch_size=args.batch_size, progress=progress)
    finished = time.perf_counter()
    apply_queries = counter.count - plan_queries
    peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
    tracemalloc.stop()
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del roster, plan  # the re-import below is timed only; keep its memory out of the first run's peak

    again = time.perf_counter()
    replan = import_plan(school=school, rows=read_roster(data, "roster.csv", max_bytes=50 * 1024 * 1024), full=True)
    import_apply(plan=replan, actor=None, batch_size=args.batch_size)
    again_seconds = time.perf_counter() - again
    print(f"database            {connection.vendor}")
    print(f"rows                {counts['rows']:,} ({len(data) / 1024 / 1024:.1f} MB CSV)")
    print(f"pupils / guardians  {counts['pupils_created']:,} / {counts['guardians_created']:,}; "
          f"links {counts['links_created']:,}; groups {counts['groups_created']}; "
          f"memberships {counts['memberships_added']:,}")
    print(f"seconds             {finished - started:.1f} total (read {read_at - started:.1f}, "
          f"plan {planned_at - read_at:.1f}, apply {finished - planned_at:.1f})")
    # A changed file: every tenth contact has a new email address.
    changed = re.sub(rb"c(\d*0)@example\.net", rb"new\1@example.net", data)
    again = time.perf_counter()
    update_plan = import_plan(school=school, rows=read_roster(changed, "roster.csv", max_bytes=50 * 1024 * 1024),
                              full=True)
    update_counts = import_apply(plan=update_plan, actor=None, batch_size=args.batch_size)
    update_seconds = time.perf_counter() - again
    del update_plan
    final_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"re-import (no-op)   {again_seconds:.1f} s, changes anything: {replan.changes_anything}")
    print(f"changed file        {update_seconds:.1f} s, {update_counts['guardians_updated']:,} guardians updated")
    print(f"peak memory         tracemalloc {peak / 1024 / 1024:.0f} MB" if peak else "peak memory         "
          "tracemalloc off", f"; ru_maxrss {maxrss_mb:.0f} MB (after the two re-imports {final_rss_mb:.0f} MB)")
    print(f"queries             plan {plan_queries}; apply {apply_queries} in {batches} batches of "
          f"≤{args.batch_size} rows = {apply_queries / max(batches, 1):.2f} per batch")
    ok = finished - started <= 60 and maxrss_mb <= 300
    print("target              ≤ 60 s and ≤ 300 MB:", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
