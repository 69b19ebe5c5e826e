"""Import runs: an uploaded roster kept (encrypted) from its preview to its confirmation.

    import_run_create   read and plan the upload; store it as a run, `planned` or `invalid`
    import_run_confirm  `planned` → `queued`; a small run is then applied in the request, a large one
                        goes to the Celery task `consent.tasks.import_run_execute` after the commit
    import_run_execute  claim (`queued` → `running`), re-read and re-plan the stored file against the
                        registry as it is now, apply it all or nothing, erase the file
    import_run_discard  `planned` → `discarded`, erasing the file
    import_runs_sweep   for a periodic task: queue lost runs again, fail runs whose worker died

Confirming never applies the plan that was previewed: the stored file is planned again, and if the new
plan differs from the one the office saw (someone edited the registry, another import ran), the run goes
back to `planned` with the new preview instead of being applied. "Differs" means its counts, or any row
of the preview: the run's summary keeps a SHA-256 of the per-row preview (`preview_sha256`), so a change
that leaves the counts equal but updates other rows is shown too.

Progress: the apply is one transaction, so nothing it writes to the database is visible to the page
until it commits. The `progress` callback therefore writes to Django's cache (shared by web and workers:
Redis in production, a file cache in the demo), which `import_run_progress` reads.
"""

import base64
import hashlib
import json
import logging
from datetime import timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from consent.models import ImportRun
from schools.audit import audit_log
from schools.models import School

from .plan import ImportPlan, ImportRefused, import_apply, import_plan
from .reading import ImportFileError, Roster, read_roster

logger = logging.getLogger(__name__)

# Runs with more source rows than this are applied by a Celery worker, with a progress bar; smaller ones
# are applied in the confirming request (a couple of seconds at most).
IMMEDIATE_MAX_ROWS = 2_000
PROGRESS_TIMEOUT = 6 * 3600  # seconds the cache keeps a run's progress
QUEUED_SWEEP_AFTER = timedelta(minutes=5)  # a confirmed run still queued after this: its message is lost
SWEEP_BATCH = 100
# The file name `read_roster` is given decides how it is read: the format the office chose, not the
# name of their file, says which reader runs (a zip chosen as CSV is refused as a zip, not unpacked).
_READ_AS = {ImportRun.Format.CSV: "roster.csv", ImportRun.Format.ONEROSTER: "roster.zip"}


# The retention schedule erases uploads kept for more than a day (consent.retention).
EXPIRED = "The uploaded file was erased because it waited more than a day for confirmation. Upload it again."
ERASED = "The uploaded file was erased after a day; upload it again."


class ImportRunStateError(Exception):
    """The run is not in a state that allows this (already confirmed, discarded, …)."""


# --- Reading and planning ----------------------------------------------------------------------------


def _read(data: bytes, fmt: str, org_sourced_id: str) -> Roster:
    return read_roster(data, _READ_AS[fmt], org_sourced_id=org_sourced_id)


def _counts(plan: ImportPlan) -> dict[str, int]:
    return {**plan.counts(), "errors": len(plan.errors)}


def _summary(plan: ImportPlan, preview: str) -> dict[str, Any]:
    """The counts, and for a valid plan the SHA-256 of its preview: what confirming compares."""
    if plan.errors:
        return _counts(plan)
    return {**_counts(plan), "preview_sha256": hashlib.sha256(preview.encode()).hexdigest()}


def counts_of(summary: dict[str, Any]) -> dict[str, int]:
    return {key: value for key, value in summary.items() if key != "preview_sha256"}


def _preview(roster: Roster, plan: ImportPlan) -> str:
    """Per source row: [row, file, pupil id, pupil name, action, contact id, contact name, action]."""
    rows = [
        [action[0], row.file, row.pupil_id, f"{row.pupil_first_name} {row.pupil_last_name}", action[1],
         row.contact_id, f"{row.contact_first_name} {row.contact_last_name}".strip(), action[2]]
        for row, action in zip(roster.rows, plan.row_actions, strict=True)
    ]
    return json.dumps({"rows": rows, "leavers": plan.leavers}, separators=(",", ":"))


def _plan_run(run: ImportRun) -> tuple[Roster, ImportPlan]:
    """Read the stored file again and plan it against the registry as it is now."""
    data = base64.b64decode(run.content)
    roster = _read(data, run.format, run.org_sourced_id)
    return roster, import_plan(school=run.school, rows=roster, full=run.full_import)


def _errors(plan: ImportPlan) -> list[dict[str, Any]]:
    return [{"row": e.row, "column": e.column, "message": e.message, "file": e.file}
            for e in sorted(plan.errors, key=lambda e: (e.file, e.row, e.column))]


def import_run_create(
    *,
    school: School,
    actor,
    data: bytes,
    filename: str,
    file_format: str,
    full_import: bool,
    org_sourced_id: str = "",
) -> ImportRun:
    """Read and plan an upload, and keep it as a run. Raises `ImportFileError` (and stores nothing)
    when the whole file is unusable; a file with row errors becomes an `invalid` run, whose errors the
    preview lists and whose content is not kept (it can never be confirmed)."""
    if file_format not in _READ_AS:
        raise ImportFileError("Choose the file's format.")
    roster = _read(data, file_format, org_sourced_id)
    plan = import_plan(school=school, rows=roster, full=full_import)
    valid = not plan.errors
    preview = _preview(roster, plan) if valid else ""
    with transaction.atomic():
        run = ImportRun.objects.create(
            school=school,
            uploaded_by=actor,
            format=file_format,
            full_import=full_import,
            org_sourced_id=org_sourced_id,
            filename=filename[:255],
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            content=base64.b64encode(data).decode("ascii") if valid else "",
            preview=preview,
            status=ImportRun.Status.PLANNED if valid else ImportRun.Status.INVALID,
            rows_total=plan.rows,
            summary=_summary(plan, preview),
            errors=_errors(plan),
            finished_at=None if valid else timezone.now(),
        )
        audit_log(actor=actor, action="import.uploaded", obj=run, school=school, data={
            "filename": run.filename, "format": file_format, "full_import": full_import, "size": run.size,
            "sha256": run.sha256, "status": run.status, "rows": plan.rows, "errors": len(plan.errors),
        })
    return run


# --- Confirming, discarding --------------------------------------------------------------------------


def runs_in_background(run: ImportRun) -> bool:
    return run.rows_total > IMMEDIATE_MAX_ROWS


def import_run_confirm(*, run: ImportRun, actor) -> str:
    """Confirm a planned run. Returns what happened: "applied" / "failed" / "replanned" (applied in
    this request, for a small run), or "queued" (a worker applies it after this commit)."""
    with transaction.atomic():
        locked = (ImportRun.objects.select_for_update(of=("self",)).select_related("school__organisation")
                  .get(pk=run.pk))
        if locked.status != ImportRun.Status.PLANNED:
            raise ImportRunStateError("This import is no longer waiting for confirmation.")
        if not locked.content:
            raise ImportRunStateError(EXPIRED)
        locked.status = ImportRun.Status.QUEUED
        locked.confirmed_by = actor
        locked.confirmed_at = timezone.now()
        locked.save(update_fields=["status", "confirmed_by", "confirmed_at"])
        in_background = runs_in_background(locked)
        audit_log(actor=actor, action="import.confirmed", obj=locked, school=locked.school,
                  data={"run": locked.pk, "mode": "queued" if in_background else "immediate"})
        _progress_set(locked.pk, phase="queued")
        if in_background:
            from consent.tasks import import_run_execute as task

            run_id = locked.pk
            transaction.on_commit(lambda: task.delay(run_id))
            return "queued"
    return import_run_execute(run_id=run.pk)


def import_run_discard(*, run: ImportRun, actor) -> ImportRun:
    """Throw a previewed run away without importing it; its stored file is erased."""
    with transaction.atomic():
        locked = ImportRun.objects.select_for_update(of=("self",)).select_related("school").get(pk=run.pk)
        if locked.status != ImportRun.Status.PLANNED:
            raise ImportRunStateError("Only an import waiting for confirmation can be discarded.")
        locked.status = ImportRun.Status.DISCARDED
        locked.content = locked.preview = ""
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "content", "preview", "finished_at"])
        audit_log(actor=actor, action="import.discarded", obj=locked, school=locked.school,
                  data={"filename": locked.filename, "sha256": locked.sha256})
    return locked


# --- Applying ----------------------------------------------------------------------------------------


def stale_after() -> timedelta:
    """How long a `running` claim lasts: past the worker's hard time limit, the claimant is gone (its
    transaction rolled back with it), and a redelivered task may claim the run again."""
    return timedelta(seconds=getattr(settings, "CELERY_TASK_TIME_LIMIT", 120) + 60)


def import_run_execute(*, run_id: int) -> str:
    """Apply a confirmed run. Safe to call twice, concurrently or after the end: returns "skipped"
    unless this call claimed the run.

    At-most-once apply. The claim is a conditional update (`queued` → `running`, or a `running` claim
    older than `stale_after()`), and the registry's changes commit in one transaction with `applied`,
    under the run's row lock, after re-checking that the claim is still ours; so no run is ever applied
    twice. A worker lost mid-run does not get its run retried: its transaction rolls back (nothing is
    applied), the redelivered task (acks_late) finds the claim still fresh and skips, and
    `import_runs_sweep` fails the run once the claim is older than `stale_after()`, so that the office
    sees it and uploads again. (A delivery that arrives after `stale_after()` but before the sweep, e.g.
    after the broker's visibility timeout, may take the stale claim over; it still applies the run at
    most once.)

    Before applying, the stored file is planned again; if the new plan differs from the preview the
    office confirmed (its counts or the SHA-256 of its per-row preview), the run goes back to `planned`
    with the new preview, audited as `import.replanned`, and nothing is applied.
    """
    now = timezone.now()
    claimed = ImportRun.objects.filter(
        Q(status=ImportRun.Status.QUEUED) | Q(status=ImportRun.Status.RUNNING, started_at__lt=now - stale_after()),
        pk=run_id,
    ).update(status=ImportRun.Status.RUNNING, started_at=now)
    if not claimed:
        return "skipped"
    _progress_set(run_id, phase="planning")
    try:
        with transaction.atomic():
            run = (ImportRun.objects.select_for_update(of=("self",))
                   .select_related("school__organisation", "confirmed_by").get(pk=run_id))
            if run.status != ImportRun.Status.RUNNING or run.started_at != now:
                return "skipped"  # a later claim took over (ours was taken for stale)
            if not run.content:
                raise UploadErased()  # the retention housekeeping erased it while the run waited
            roster, plan = _plan_run(run)
            preview = "" if plan.errors else _preview(roster, plan)
            summary = _summary(plan, preview)
            if plan.errors or summary != run.summary:
                # The registry changed since the preview (the counts, or only which rows change): show the
                # office the new plan, apply nothing.
                old_counts = counts_of(run.summary)
                run.status = ImportRun.Status.INVALID if plan.errors else ImportRun.Status.PLANNED
                run.summary, run.errors, run.replanned = summary, _errors(plan), True
                run.preview = preview
                run.content = "" if plan.errors else run.content
                run.started_at = None
                run.save(update_fields=["status", "summary", "errors", "replanned", "preview", "content",
                                        "started_at"])
                audit_log(actor=run.confirmed_by, action="import.replanned", obj=run, school=run.school, data={
                    "run": run.pk, "status": run.status, "old": old_counts, "new": counts_of(summary)})
                transaction.on_commit(lambda: _progress_clear(run_id))
                return "replanned"
            _progress_set(run_id, phase="applying", done=0, total=1)
            counts = import_apply(plan=plan, actor=run.confirmed_by,
                                  progress=lambda done, total: _progress_set(run_id, phase="applying", done=done,
                                                                             total=total))
            run.status = ImportRun.Status.APPLIED
            run.summary = {**counts, "errors": 0}
            run.rows_done = run.rows_total
            run.replanned = False
            run.content = run.preview = ""
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "summary", "rows_done", "replanned", "content", "preview",
                                    "finished_at"])
    except Exception as error:  # every failure is recorded on the run and shown to a person
        if not isinstance(error, (ImportRefused, ImportFileError, SoftTimeLimitExceeded, UploadErased)):
            logger.exception("Import run %s failed", run_id)
        _fail(run_id, error)
        return "failed"
    _progress_clear(run_id)
    return "applied"


class UploadErased(Exception):
    """The stored file was erased (by the retention housekeeping, after a day) before the run was applied."""


class WorkerLost(Exception):
    """The worker applying a run stopped (killed, out of memory, restarted) and nobody took it over."""


def import_runs_sweep(*, now) -> dict[str, int]:
    """For a periodic task: queue again the runs whose task seems lost, and fail the runs whose worker died.

    A lost message (a broker restart) leaves a run `queued`: it is queued again, which is harmless even if
    the first message still arrives, since only one delivery can claim the run. A worker killed mid-run
    leaves it `running` with a claim older than `stale_after`: its transaction rolled back, so nothing was
    imported; it is failed (and audited) so that the office sees it and uploads again, rather than retried
    forever if the same file kills every worker.
    """
    from consent.tasks import import_run_execute as task

    lost = list(ImportRun.objects.filter(status=ImportRun.Status.QUEUED, confirmed_at__lt=now - QUEUED_SWEEP_AFTER)
                .order_by("pk").values_list("pk", flat=True)[:SWEEP_BATCH])
    for run_id in lost:
        task.delay(run_id)
    failed = 0
    for run_id in ImportRun.objects.filter(status=ImportRun.Status.RUNNING, started_at__lt=now - stale_after()) \
            .order_by("pk").values_list("pk", flat=True)[:SWEEP_BATCH]:
        failed += _fail(run_id, WorkerLost(), stale_before=now - stale_after())
    return {"requeued": len(lost), "failed": failed}


def _failure_text(error: Exception) -> str:
    if isinstance(error, ImportRefused):
        return ("The registry changed while the import was running (another import at the same time?). "
                "Nothing was imported: upload the file again.")
    if isinstance(error, ImportFileError):
        return f"{error} Nothing was imported."
    if isinstance(error, UploadErased):
        return f"{ERASED} Nothing was imported."
    if isinstance(error, WorkerLost):
        return ("The background worker stopped while importing (it was restarted or ran out of memory). Nothing "
                "was imported: upload the file again, and tell your administrator if it happens again.")
    if isinstance(error, SoftTimeLimitExceeded):
        return ("The import took longer than the time a background job is allowed, and was stopped. Nothing was "
                "imported: split the file, or ask your administrator to raise CELERY_TASK_TIME_LIMIT.")
    return f"The import stopped with an unexpected error ({type(error).__name__}). Nothing was imported."


def _fail(run_id: int, error: Exception, *, stale_before=None) -> int:
    """Record a failure on a running run (with `stale_before`: only if its claim is older than that)."""
    with transaction.atomic():
        run = (ImportRun.objects.select_for_update(of=("self",))
               .select_related("school", "confirmed_by").get(pk=run_id))
        if run.status != ImportRun.Status.RUNNING:
            return 0
        if stale_before is not None and (run.started_at is None or run.started_at >= stale_before):
            return 0  # claimed again meanwhile
        run.status = ImportRun.Status.FAILED
        run.failure = _failure_text(error)
        run.content = run.preview = ""
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "failure", "content", "preview", "finished_at"])
        audit_log(actor=run.confirmed_by, action="import.failed", obj=run, school=run.school,
                  data={"filename": run.filename, "error": type(error).__name__})
    _progress_clear(run_id)
    return 1


# --- Progress ----------------------------------------------------------------------------------------


def _progress_key(run_id: int) -> str:
    return f"consent:import-run:{run_id}:progress"


def _progress_set(run_id: int, *, phase: str, done: int = 0, total: int = 0) -> None:
    cache.set(_progress_key(run_id), {"phase": phase, "done": done, "total": total}, PROGRESS_TIMEOUT)


def _progress_clear(run_id: int) -> None:
    cache.delete(_progress_key(run_id))


def import_run_progress(run: ImportRun) -> dict[str, Any]:
    """What the progress bar shows: the run's status from the database, and the batches done so far
    from the cache while the apply's transaction is still open."""
    progress = (cache.get(_progress_key(run.pk)) or {}) if run.is_in_progress else {}
    done, total = int(progress.get("done", 0)), int(progress.get("total", 0))
    if run.status == ImportRun.Status.APPLIED:
        done = total = 1
    return {
        "status": run.status,
        "label": run.get_status_display(),
        "phase": progress.get("phase", ""),
        "done": done,
        "total": total,
        "percent": int(100 * done / total) if total else 0,
        "finished": not run.is_in_progress,
    }


def preview_rows(run: ImportRun) -> dict[str, list]:
    return json.loads(run.preview) if run.preview else {"rows": [], "leavers": []}
