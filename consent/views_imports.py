"""The MIS import pages: upload, preview, confirm or discard, progress, past imports, the column guide.

Headteachers, the office and the organisation admin import; nobody else sees anything of imports
(teachers, the DPO and the SIRO get 403; the audit trail tells the DPO what was imported). Runs are
loaded through the user's scope, so another school's runs answer 404.
"""

from collections import defaultdict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from lib.http import as_download
from schools.models import Role
from schools.scope import get_school_or_404, scoped_get_or_404

from .forms_imports import ImportUploadForm, megabytes
from .imports import COLUMNS, RELATIONSHIPS, ImportFileError, max_import_bytes, template_csv
from .imports.columns import NO, YES
from .imports.oneroster import GUARDIAN_ROLES, REQUIRED_FILES
from .imports.runs import (
    EXPIRED,
    ImportRunStateError,
    counts_of,
    import_run_confirm,
    import_run_create,
    import_run_discard,
    import_run_progress,
    preview_rows,
    runs_in_background,
)
from .models import Guardianship, ImportRun, Pupil

IMPORT_ROLES = frozenset({Role.HEADTEACHER, Role.OFFICE, Role.ORG_ADMIN})
LIST_PAGE_SIZE = 25
ROWS_PAGE_SIZE = 100
ERRORS_PAGE_SIZE = 100
LEAVERS_SHOWN = 50

ACTION_LABELS = {"create": "Create", "update": "Update", "unchanged": "Leave as is", "": "—"}
ACTION_CSS = {"create": "text-bg-success", "update": "text-bg-warning", "unchanged": "text-bg-light border", "": ""}
STATUS_CSS = {
    ImportRun.Status.INVALID: "text-bg-danger",
    ImportRun.Status.PLANNED: "text-bg-info",
    ImportRun.Status.QUEUED: "text-bg-secondary",
    ImportRun.Status.RUNNING: "text-bg-primary",
    ImportRun.Status.APPLIED: "text-bg-success",
    ImportRun.Status.FAILED: "text-bg-danger",
    ImportRun.Status.DISCARDED: "text-bg-light border",
}


def progress_message(progress: dict) -> str:
    """The sentence under the progress bar (the JSON endpoint sends the same one)."""
    if progress["status"] == ImportRun.Status.QUEUED or progress["phase"] == "queued":
        return "Waiting for the import to start…"
    if progress["phase"] == "applying" and progress["total"]:
        return (f"Importing: {progress['done']:,} of {progress['total']:,} changes written "
                f"({progress['percent']}%).")
    if progress["status"] == ImportRun.Status.RUNNING:
        return "Reading the file and checking it against the registry again…"
    return f"{progress['label']}."


def _progress(run: ImportRun) -> dict:
    progress = import_run_progress(run)
    return progress | {"message": progress_message(progress)}


SHORT_FORMATS = {ImportRun.Format.CSV: "CSV", ImportRun.Format.ONEROSTER: "OneRoster"}
# Runs whose counts say something: what was imported, or what a pending import would do. A file with errors,
# a discarded or a failed run imported nothing, and its counts would only mislead.
COUNTED = (ImportRun.Status.PLANNED, ImportRun.Status.QUEUED, ImportRun.Status.RUNNING, ImportRun.Status.APPLIED)


def _list_counts(run: ImportRun) -> dict[str, str] | None:
    if run.status not in COUNTED:
        return None
    n = run.summary.get
    return {
        "pupils": f"{n('pupils_created', 0):,} / {n('pupils_updated', 0):,} / {n('pupils_left', 0):,}",
        "guardians": f"{n('guardians_created', 0):,} / {n('guardians_updated', 0):,}",
    }


def _load_run(request: HttpRequest, pk: int, *fields_to_defer: str) -> ImportRun:
    queryset = ImportRun.objects.select_related("school", "uploaded_by", "confirmed_by").defer(*fields_to_defer)
    return scoped_get_or_404(request, queryset, roles=IMPORT_ROLES, pk=pk)


def count_table(summary: dict[str, int]) -> list[dict]:
    """The plan's counts as table rows: created / updated / unchanged per kind of record."""
    rows = []
    for key, label in (("groups", "Groups"), ("pupils", "Pupils"), ("guardians", "Parents and carers"),
                       ("links", "Pupil–guardian links")):
        removed = {"pupils": summary.get("pupils_left", 0), "links": summary.get("links_removed", 0)}.get(key)
        rows.append({
            "label": label,
            "created": f"{summary.get(f'{key}_created', 0):,}",
            "updated": f"{summary.get(f'{key}_updated', 0):,}",
            "unchanged": f"{summary.get(f'{key}_unchanged', 0):,}",
            "removed": None if removed is None else f"{removed:,}",
        })
    return rows


@login_required
@require_http_methods(["GET", "POST"])
def import_new(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk, roles=IMPORT_ROLES)
    bound = request.method == "POST"
    form = ImportUploadForm(request.POST if bound else None, request.FILES if bound else None, school=school)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = import_run_create(
                school=school, actor=request.user, data=form.read(), filename=data["file"].name,
                file_format=data["file_format"], full_import=data["full_import"],
                org_sourced_id=data["org_sourced_id"],
            )
        except ImportFileError as error:
            form.add_error("file", str(error))
        else:
            if run.status == ImportRun.Status.PLANNED:
                messages.success(request, "The file was read and nothing has changed yet. Check what the import "
                                          "would do, then confirm it.")
            return redirect("consent:import", pk=run.pk)
    return render(request, "consent/imports/new.html", {
        "active_nav": "dashboard",
        "school": school,
        "form": form,
        "max_size": megabytes(max_import_bytes()),
        "has_runs": ImportRun.objects.filter(school=school).exists(),
    })


@login_required
@require_GET
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _load_run(request, pk, "content")
    school = run.school
    context = {
        "active_nav": "dashboard",
        "run": run,
        "school": school,
        "status_css": STATUS_CSS[run.status],
        "counts": count_table(run.summary),
        "progress": _progress(run) if run.is_in_progress else None,
        "in_background": runs_in_background(run),
    }
    if run.status in (ImportRun.Status.PLANNED, ImportRun.Status.INVALID):
        preview = preview_rows(run)
        expired = run.status == ImportRun.Status.PLANNED and ImportRun.objects.filter(pk=run.pk, content="").exists()
        changes_only = request.GET.get("show") == "changes"
        rows = [r for r in preview["rows"] if r[4] != "unchanged" or r[7] not in ("unchanged", "")] \
            if changes_only else preview["rows"]
        rows_page = Paginator(rows, ROWS_PAGE_SIZE).get_page(request.GET.get("rows_page"))
        leaver_ids = preview["leavers"]
        on_roll = Pupil.objects.filter(school=school, left_on__isnull=True).count() if leaver_ids else 0
        context |= {
            "errors_page": Paginator(run.errors, ERRORS_PAGE_SIZE).get_page(request.GET.get("errors_page")),
            "rows_page": rows_page,
            "row_actions": [
                {"row": r[0], "file": r[1], "pupil_id": r[2], "pupil": r[3], "pupil_action": ACTION_LABELS[r[4]],
                 "pupil_css": ACTION_CSS[r[4]], "contact_id": r[5], "contact": r[6],
                 "contact_action": ACTION_LABELS[r[7]], "contact_css": ACTION_CSS[r[7]]}
                for r in rows_page.object_list
            ],
            "leavers": Pupil.objects.filter(school=school, id__in=leaver_ids[:LEAVERS_SHOWN]).order_by(
                "last_name", "first_name"),
            "leavers_count": len(leaver_ids),
            "leavers_more": max(0, len(leaver_ids) - LEAVERS_SHOWN),
            # A full import of the wrong file (one class, last year's roll) would mark most pupils as left.
            "leavers_most": len(leaver_ids) * 2 > on_roll,
            "changes_only": changes_only,
            "expired": expired,
            "expired_message": EXPIRED,
            "rows_query": "show=changes&" if changes_only else "",
            "today": timezone.localdate(timezone.now(), school.tz),
            "changes_anything": any(
                value for key, value in counts_of(run.summary).items()
                if key not in ("rows", "errors") and not key.endswith("_unchanged")
            ),
        }
    return render(request, "consent/imports/detail.html", context)


@login_required
@require_GET
def import_progress(request: HttpRequest, pk: int) -> JsonResponse:
    # Polling writes nothing: it must not keep an idle staff session alive (SESSION_SAVE_EVERY_REQUEST would
    # push its expiry on every poll), and on SQLite any write waits for the import's open transaction.
    request.session.save = lambda *args, **kwargs: None
    run = _load_run(request, pk, "content", "preview", "errors")
    data = _progress(run) | {"badge_css": STATUS_CSS[run.status]}
    data["url"] = reverse("consent:import", kwargs={"pk": run.pk})
    response = JsonResponse(data)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def import_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    run = _load_run(request, pk, "content", "preview", "errors")
    try:
        # The run's page then says what happened: imported, failed, in progress, or the new preview.
        import_run_confirm(run=run, actor=request.user)
    except ImportRunStateError as error:
        messages.error(request, str(error))
    return redirect("consent:import", pk=run.pk)


@login_required
@require_POST
def import_discard(request: HttpRequest, pk: int) -> HttpResponse:
    run = _load_run(request, pk, "content", "preview", "errors")
    try:
        import_run_discard(run=run, actor=request.user)
    except ImportRunStateError as error:
        messages.error(request, str(error))
        return redirect("consent:import", pk=run.pk)
    messages.success(request, f"Discarded {run.filename}: nothing was imported and the stored file was erased.")
    return redirect("consent:import-new", school_pk=run.school_id)


@login_required
@require_GET
def import_list(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk, roles=IMPORT_ROLES)
    runs = (
        ImportRun.objects.filter(school=school)
        .select_related("uploaded_by")
        .defer("content", "preview", "errors")
        .order_by("-created_at", "-pk")
    )
    page = Paginator(runs, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"run": run, "status_css": STATUS_CSS[run.status], "format": SHORT_FORMATS[run.format],
             "counts": _list_counts(run)} for run in page.object_list]
    return render(request, "consent/imports/list.html", {
        "active_nav": "dashboard", "school": school, "page": page, "rows": rows,
    })


@login_required
@require_GET
def import_columns(request: HttpRequest, school_pk: int) -> HttpResponse:
    school = get_school_or_404(request, school_pk, roles=IMPORT_ROLES)
    words: dict[str, list[str]] = defaultdict(list)
    for word, value in RELATIONSHIPS.items():
        if word:
            words[Guardianship.Relationship(value).label].append(word)
    relationships = [{"label": label, "words": sorted(ws)} for label, ws in words.items()]
    guardian_roles = [
        {"role": role, "relationship": Guardianship.Relationship(relationship).label, "responsibility": responsibility}
        for role, (relationship, responsibility) in GUARDIAN_ROLES.items()
    ]
    return render(request, "consent/imports/columns.html", {
        "active_nav": "dashboard",
        "school": school,
        "columns": COLUMNS,
        "relationships": relationships,
        "yes_words": sorted(w for w in YES if w),
        "no_words": sorted(NO),
        "oneroster_files": REQUIRED_FILES,
        "guardian_roles": guardian_roles,
        "max_size": megabytes(max_import_bytes()),
    })


@login_required
@require_GET
def import_template(request: HttpRequest, school_pk: int) -> HttpResponse:
    get_school_or_404(request, school_pk, roles=IMPORT_ROLES)
    response = HttpResponse(template_csv(), content_type="text/csv; charset=utf-8")
    return as_download(response, "gatehouse-import-template.csv")
