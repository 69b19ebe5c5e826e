"""The MIS import pages: upload, preview, confirm or discard, the background run and its progress, the
list of past imports, the column guide and the template."""

import base64
import datetime as dt
import io
import threading
import zipfile
from pathlib import Path
from unittest import mock

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from consent import tasks
from consent.imports import import_apply, read_roster, template_csv
from consent.imports import runs as runs_module
from consent.imports.columns import COLUMNS
from consent.imports.runs import (
    import_run_confirm,
    import_run_create,
    import_run_discard,
    import_run_execute,
)
from consent.models import Guardian, ImportRun, Pupil
from schools.models import AuditEntry
from tests.conftest import sign_in
from tests.factories import PupilFactory, UserFactory

from .test_import import QUAYLES, registry, roster_csv

pytestmark = pytest.mark.django_db

ONEROSTER = Path(__file__).parent / "data" / "oneroster"


def _upload(client, school, data: bytes, *, name="roster.csv", file_format="csv", full=False, **extra):
    post = {"file": SimpleUploadedFile(name, data, content_type="text/csv"), "file_format": file_format, **extra}
    if full:
        post["full_import"] = "on"
    return client.post(reverse("consent:import-new", kwargs={"school_pk": school.pk}), post)


def _run_url(run) -> str:
    return reverse("consent:import", kwargs={"pk": run.pk})


def _confirm(client, run):
    return client.post(reverse("consent:import-confirm", kwargs={"pk": run.pk}))


def _actions(personas, action: str) -> int:
    return AuditEntry.objects.filter(action=action, school_id=personas.school.pk).count()


@pytest.fixture
def office(client, personas):
    sign_in(client, personas.office)
    return client


def generated(pupils: int) -> list[list[str]]:
    return [[f"G{n}", "Pupil", f"N{n}", "8", f"8{n % 3}", f"GC{n}", "Carer", f"N{n}", f"g{n}@example.net", "",
             "Mother", "Yes"] for n in range(pupils)]


# Upload → preview → confirm -------------------------------------------------------------------------


def test_upload_preview_and_confirm_create_the_registry(office, personas):
    school = personas.school
    response = _upload(office, school, roster_csv(QUAYLES), full=True)

    run = ImportRun.objects.get(school=school)
    assert response.status_code == 302 and response["Location"] == _run_url(run)
    assert run.status == ImportRun.Status.PLANNED and run.uploaded_by == personas.office and run.full_import
    assert base64.b64decode(run.content) == roster_csv(QUAYLES)
    assert run.summary["pupils_created"] == 3 and run.summary["guardians_created"] == 3 and run.summary["errors"] == 0
    assert not Pupil.objects.filter(school=school).exists()  # the preview writes nothing
    assert _actions(personas, "import.uploaded") == 1

    page = office.get(_run_url(run))
    body = page.content.decode()
    assert "What this import would do" in body and "Confirm import" in body and "Discard" in body
    assert [r["pupil_action"] for r in page.context["row_actions"]] == ["Create"] * 4
    assert "Amelia Quayle" in body and "Joan Quayle" in body

    response = _confirm(office, run)
    assert response.status_code == 302 and response["Location"] == _run_url(run)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.APPLIED and run.content == "" and run.preview == ""
    assert run.confirmed_by == personas.office and run.finished_at is not None
    assert Pupil.objects.filter(school=school).count() == 3 and Guardian.objects.filter(school=school).count() == 3
    entry = AuditEntry.objects.get(action="import.applied")
    assert entry.actor_id == personas.office.pk and entry.data["pupils_created"] == 3
    body = office.get(_run_url(run)).content.decode()
    assert "Imported" in body and "What was imported" in body and "Confirm import" not in body


def test_the_same_file_twice_changes_nothing_the_second_time(office, personas):
    school, data = personas.school, roster_csv(QUAYLES)
    _upload(office, school, data, full=True)
    _confirm(office, ImportRun.objects.get())
    before = registry(school)

    _upload(office, school, data, full=True)
    second = ImportRun.objects.order_by("-pk").first()
    page = office.get(_run_url(second))
    assert "This file matches the registry: importing it changes nothing." in page.content.decode()
    assert {r["pupil_action"] for r in page.context["row_actions"]} == {"Leave as is"}
    _confirm(office, second)

    second.refresh_from_db()
    assert second.status == ImportRun.Status.APPLIED
    assert second.summary["pupils_unchanged"] == 3 and second.summary["pupils_created"] == 0
    assert registry(school) == before


def test_a_oneroster_bundle_is_imported_through_the_pages(office, personas):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(ONEROSTER.glob("*.csv")):
            archive.writestr(path.name, path.read_text())
    _upload(office, personas.school, out.getvalue(), name="oneroster.zip", file_format="oneroster")
    run = ImportRun.objects.get()
    assert run.format == ImportRun.Format.ONEROSTER and run.status == ImportRun.Status.PLANNED
    assert "users.csv" in office.get(_run_url(run)).content.decode()
    _confirm(office, run)
    assert set(Pupil.objects.filter(school=personas.school).values_list("mis_id", flat=True)) == {
        "stu-1", "stu-2", "stu-3"}


def test_a_full_import_shows_who_will_be_marked_as_left_and_when(office, personas):
    school = personas.school
    _upload(office, school, roster_csv(QUAYLES), full=True)
    _confirm(office, ImportRun.objects.get())

    _upload(office, school, roster_csv(QUAYLES[:3]), full=True)
    run = ImportRun.objects.order_by("-pk").first()
    body = office.get(_run_url(run)).content.decode()
    today = timezone.localdate(timezone.now(), school.tz)
    assert "1 pupil will be marked as left" in body and "Kermode, Breesha (P3)" in body
    assert f"marked as left on {today:%-d %B %Y}" in body
    _confirm(office, run)
    assert Pupil.objects.get(school=school, mis_id="P3").left_on == today


def test_the_preview_can_show_only_the_rows_that_change(office, personas):
    _upload(office, personas.school, roster_csv(QUAYLES))
    _confirm(office, ImportRun.objects.get())
    changed = [list(r) for r in QUAYLES]
    changed[3][1] = "Breesh"
    _upload(office, personas.school, roster_csv(changed))
    run = ImportRun.objects.order_by("-pk").first()
    every = office.get(_run_url(run)).context["row_actions"]
    changes = office.get(_run_url(run), {"show": "changes"}).context["row_actions"]
    assert len(every) == 4 and [(r["row"], r["pupil_action"]) for r in changes] == [(5, "Update")]


def test_a_full_import_that_would_mark_most_pupils_as_left_asks_if_it_is_the_right_file(office, personas):
    for n in range(6):
        PupilFactory(school=personas.school, mis_id=f"OLD{n}")
    _upload(office, personas.school, roster_csv(QUAYLES), full=True)
    body = office.get(_run_url(ImportRun.objects.get())).content.decode()
    assert "6 pupils will be marked as left" in body and "Is this the right file?" in body


def test_the_upload_page_explains_the_full_import_and_links_the_guide_template_and_past_imports(office, personas):
    body = office.get(reverse("consent:import-new", kwargs={"school_pk": personas.school.pk})).content.decode()
    assert "marked as left, with today's date" in body and "They are not deleted" in body
    assert "At most 5.0 MB" in body
    for name in ("consent:import-columns", "consent:import-template", "consent:imports"):
        assert reverse(name, kwargs={"school_pk": personas.school.pk}) in body


# Bad input: a clear message, nothing stored, never a 500 ----------------------------------------------

BAD_UPLOADS = {
    "bad encoding": (roster_csv(QUAYLES)[:-10] + b"\x81\x8d\x90\r\n", "roster.csv", "csv",
                     "not in a text encoding we can read"),
    "html disguised as csv": (b"<!DOCTYPE html><html><body><table><tr><td>P1</td></tr></table></body></html>",
                              "roster.csv", "csv", "is a web page (HTML), not a CSV"),
    "zip disguised as csv": (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40, "roster.csv", "csv",
                             "is a zip archive"),
    "a zip chosen as a csv": (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40, "bundle.zip", "csv",
                              "This is a zip file"),
    "a csv chosen as a oneroster bundle": (roster_csv(QUAYLES), "roster.csv", "oneroster",
                                           "A OneRoster bundle is a zip"),
    "not a zip chosen as a oneroster bundle": (roster_csv(QUAYLES), "bundle.zip", "oneroster", "not a zip archive"),
    "missing columns": (b"UPN,Forename\r\nP1,Amelia\r\n", "roster.csv", "csv",
                        "The file has no column for: Pupil surname, Contact ID"),
    "empty": (b"\r\n", "roster.csv", "csv", "The file is empty"),
    "a pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "roster.csv", "csv", "is a PDF, not a CSV"),
}


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_a_bad_file_gives_a_clear_message_and_stores_and_imports_nothing(office, personas, name):
    data, filename, file_format, message = BAD_UPLOADS[name]
    before = AuditEntry.objects.count()
    response = _upload(office, personas.school, data, name=filename, file_format=file_format)
    assert response.status_code == 200
    assert message in response.content.decode() or message in str(response.context["form"].errors)
    assert response.context["form"].errors["file"]
    assert not ImportRun.objects.exists() and not Pupil.objects.exists()
    assert AuditEntry.objects.count() == before


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(office, personas, settings):
    settings.IMPORT_MAX_BYTES = 1024
    response = _upload(office, personas.school, roster_csv(QUAYLES * 20))
    assert response.status_code == 200
    assert "the largest file we accept is 0.0 MB" in response.content.decode()
    assert not ImportRun.objects.exists()
    # The limit shown on the page is the configured one.
    assert "At most 0.0 MB" in response.content.decode()


def test_a_file_without_a_format_or_file_is_a_form_error(office, personas):
    response = office.post(reverse("consent:import-new", kwargs={"school_pk": personas.school.pk}), {})
    assert response.status_code == 200 and set(response.context["form"].errors) == {"file", "file_format"}


def _rows_with_errors() -> list[list[str]]:
    rows = [list(r) for r in QUAYLES]
    rows[1][8] = "tom-at-example.net"
    rows[2][0] = ""
    rows[3][10] = "Neighbour"
    return rows


def test_row_errors_make_an_invalid_run_that_lists_every_error_and_cannot_be_confirmed(office, personas):
    response = _upload(office, personas.school, roster_csv(_rows_with_errors()))
    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.INVALID and run.content == "" and run.preview == ""
    assert {(e["row"], e["column"]) for e in run.errors} == {(3, "Contact Email"), (4, "UPN"), (5, "Relationship")}

    page = office.get(response["Location"])
    body = page.content.decode()
    assert "Nothing can be imported from this file" in body and "It has 3 errors" in body
    assert "Upload a corrected file" in body and "Confirm import" not in body
    assert "“tom-at-example.net” is not an email address" in body
    assert [(e["row"], e["column"]) for e in page.context["errors_page"].object_list] == [
        (3, "Contact Email"), (4, "UPN"), (5, "Relationship")]

    response = _confirm(office, run)  # a hand-made POST gets nowhere either
    assert response.status_code == 302
    assert not Pupil.objects.exists() and ImportRun.objects.get().status == ImportRun.Status.INVALID


def test_every_error_is_listed_page_by_page(office, personas):
    rows = [[f"P{n}", "Ann", "Kelly", "8", "8K", f"C{n}", "Ann", "Kelly", "not-an-email", "", "Mother", "Yes"]
            for n in range(150)]
    _upload(office, personas.school, roster_csv(rows))
    run = ImportRun.objects.get()
    first = office.get(_run_url(run))
    second = office.get(_run_url(run), {"errors_page": 2})
    shown = [e["row"] for e in first.context["errors_page"].object_list + second.context["errors_page"].object_list]
    assert shown == list(range(2, 152))
    assert "Page 1 of 2" in first.content.decode() and "errors_page=2#errors" in first.content.decode()


def test_the_row_actions_are_listed_page_by_page(office, personas):
    _upload(office, personas.school, roster_csv(generated(130)))
    run = ImportRun.objects.get()
    first = office.get(_run_url(run))
    second = office.get(_run_url(run), {"rows_page": 2})
    assert len(first.context["row_actions"]) == 100 and len(second.context["row_actions"]) == 30
    assert second.context["row_actions"][-1]["row"] == 131


# Confirming re-plans --------------------------------------------------------------------------------


def test_confirming_plans_again_and_shows_the_new_preview_when_the_registry_changed(office, personas):
    school = personas.school
    _upload(office, school, roster_csv(QUAYLES))
    run = ImportRun.objects.get()
    assert run.summary["pupils_created"] == 3
    # Meanwhile someone adds Amelia by hand, with another first name.
    PupilFactory(school=school, mis_id="P1", first_name="Amy", last_name="Quayle", year_group="7")

    response = _confirm(office, run)

    run.refresh_from_db()
    assert run.status == ImportRun.Status.PLANNED and run.replanned
    assert run.summary["pupils_created"] == 2 and run.summary["pupils_updated"] == 1
    assert Pupil.objects.filter(school=school).count() == 1  # nothing applied
    page = office.get(response["Location"])
    assert "The registry changed since this file was first checked" in page.content.decode()
    assert {r["pupil_id"]: r["pupil_action"] for r in page.context["row_actions"]}["P1"] == "Update"

    entry = AuditEntry.objects.get(action="import.replanned")
    assert entry.actor_id == personas.office.pk and entry.object_id == str(run.pk)
    assert entry.data["old"]["pupils_created"] == 3 and entry.data["new"]["pupils_created"] == 2

    _confirm(office, run)  # the office has seen the new plan: this time it applies
    run.refresh_from_db()
    assert run.status == ImportRun.Status.APPLIED and not run.replanned
    assert Pupil.objects.get(school=school, mis_id="P1").first_name == "Amelia"


def test_a_registry_change_that_keeps_the_counts_equal_is_still_previewed_again(office, personas):
    school = personas.school
    _upload(office, school, roster_csv(QUAYLES))
    _confirm(office, ImportRun.objects.get())
    renamed = [list(r) for r in QUAYLES]
    renamed[0][1] = renamed[1][1] = "Amy"  # the file renames Amelia (P1); Finlo (P2) stays as he is
    _upload(office, school, roster_csv(renamed))
    run = ImportRun.objects.order_by("-pk").first()
    shown = {r["pupil_id"]: r["pupil_action"] for r in office.get(_run_url(run)).context["row_actions"]}
    assert shown["P1"] == "Update" and shown["P2"] == "Leave as is"
    counts = {k: v for k, v in run.summary.items() if k != "preview_sha256"}
    assert len(run.summary["preview_sha256"]) == 64
    # Meanwhile someone renames Amelia as the file does, and Finlo otherwise: still one pupil to update, but
    # now it is Finlo, whom the office never saw in the preview as a change.
    Pupil.objects.filter(school=school, mis_id="P1").update(first_name="Amy")
    Pupil.objects.filter(school=school, mis_id="P2").update(first_name="Fin")

    response = _confirm(office, run)

    run.refresh_from_db()
    assert run.status == ImportRun.Status.PLANNED and run.replanned
    assert {k: v for k, v in run.summary.items() if k != "preview_sha256"} == counts  # the same counts
    assert Pupil.objects.get(school=school, mis_id="P2").first_name == "Fin"  # nothing applied
    assert AuditEntry.objects.filter(action="import.applied").count() == 1  # the first import's only
    page = office.get(response["Location"])
    assert "The registry changed since this file was first checked" in page.content.decode()
    shown = {r["pupil_id"]: r["pupil_action"] for r in page.context["row_actions"]}
    assert shown["P1"] == "Leave as is" and shown["P2"] == "Update"
    entry = AuditEntry.objects.get(action="import.replanned")
    assert entry.data["old"] == entry.data["new"] == counts and entry.data["status"] == "planned"
    assert "Amy" not in str(entry.data) and "Fin" not in str(entry.data)  # counts only, no names

    _confirm(office, run)  # confirmed again after this preview: now it applies
    run.refresh_from_db()
    assert run.status == ImportRun.Status.APPLIED
    assert Pupil.objects.get(school=school, mis_id="P2").first_name == "Finlo"


def test_a_preview_whose_file_retention_erased_cannot_be_confirmed(office, personas):
    _upload(office, personas.school, roster_csv(QUAYLES))
    run = ImportRun.objects.get()
    ImportRun.objects.filter(pk=run.pk).update(content="")  # what consent.retention does after a day
    body = office.get(_run_url(run)).content.decode()
    assert "waited more than a day" in body and "Confirm import" not in body
    response = _confirm(office, run)
    assert "waited more than a day" in office.get(response["Location"]).content.decode()
    assert not Pupil.objects.exists() and ImportRun.objects.get().status == ImportRun.Status.PLANNED


def test_confirming_is_audited_with_who_the_run_and_how_it_runs(office, personas, monkeypatch):
    _upload(office, personas.school, roster_csv(QUAYLES))
    small = ImportRun.objects.get()
    _confirm(office, small)
    entry = AuditEntry.objects.get(action="import.confirmed")
    assert entry.actor_id == personas.office.pk and entry.object_id == str(small.pk)
    assert entry.data == {"run": small.pk, "mode": "immediate"}

    monkeypatch.setattr(runs_module, "IMMEDIATE_MAX_ROWS", 1)
    _upload(office, personas.school, roster_csv(QUAYLES))
    large = ImportRun.objects.order_by("-pk").first()
    with mock.patch.object(tasks.import_run_execute, "delay"):
        _confirm(office, large)
    entry = AuditEntry.objects.filter(action="import.confirmed").order_by("-seq").first()
    assert entry.data == {"run": large.pk, "mode": "queued"}
    assert list(AuditEntry.objects.filter(school_id=personas.school.pk, action__startswith="import.")
                .order_by("seq").values_list("action", flat=True)) == [
        "import.uploaded", "import.confirmed", "import.applied", "import.uploaded", "import.confirmed"]


def test_confirming_twice_applies_once(office, personas):
    _upload(office, personas.school, roster_csv(QUAYLES))
    run = ImportRun.objects.get()
    _confirm(office, run)
    response = _confirm(office, run)
    assert "no longer waiting for confirmation" in office.get(response["Location"]).content.decode()
    assert AuditEntry.objects.filter(action="import.applied").count() == 1


# Large runs: the Celery task and its progress ---------------------------------------------------------


@pytest.fixture
def small_immediate_limit(monkeypatch):
    monkeypatch.setattr(runs_module, "IMMEDIATE_MAX_ROWS", 5)


def test_a_large_import_is_queued_and_applied_by_the_task(office, personas, small_immediate_limit,
                                                          django_capture_on_commit_callbacks):
    _upload(office, personas.school, roster_csv(generated(20)))
    run = ImportRun.objects.get()
    assert "imported in the background" in office.get(_run_url(run)).content.decode()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _confirm(office, run)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.QUEUED and len(callbacks) == 1
    page = office.get(_run_url(run)).content.decode()
    assert 'id="import-progress"' in page and "import-progress.js" in page and ">Refresh</a>" in page
    assert "Waiting for the import to start" in page
    assert not Pupil.objects.exists()

    callbacks[0]()  # the commit: the task is queued, and runs eagerly in the tests
    run.refresh_from_db()
    assert run.status == ImportRun.Status.APPLIED and run.content == ""
    assert Pupil.objects.filter(school=personas.school).count() == 20
    data = office.get(reverse("consent:import-progress", kwargs={"pk": run.pk})).json()
    assert data["finished"] and data["status"] == "applied" and data["percent"] == 100


def test_progress_is_reported_through_the_cache_while_the_apply_transaction_is_open(
        office, personas, small_immediate_limit, monkeypatch):
    _upload(office, personas.school, roster_csv(generated(20)))
    run = ImportRun.objects.get()
    progress_url = reverse("consent:import-progress", kwargs={"pk": run.pk})
    seen = []

    def apply_and_look(**kwargs):
        report = kwargs["progress"]

        def progress(done, total):
            report(done, total)
            seen.append(office.get(progress_url).json())

        return import_apply(**kwargs | {"progress": progress, "batch_size": 4})

    monkeypatch.setattr(runs_module, "import_apply", apply_and_look)
    import_run_confirm(run=run, actor=personas.office)
    import_run_execute(run_id=run.pk)

    assert len(seen) > 5 and all(s["status"] == "running" and s["phase"] == "applying" for s in seen)
    assert [s["done"] for s in seen] == sorted(s["done"] for s in seen) and seen[-1]["done"] == seen[-1]["total"]
    assert seen[0]["message"].startswith("Importing: 4 of ") and 0 < seen[0]["percent"] < 100
    assert cache.get(runs_module._progress_key(run.pk)) is None  # cleared when it ended


def test_polling_the_progress_writes_nothing_not_even_the_session(office, personas, small_immediate_limit,
                                                                  django_capture_on_commit_callbacks):
    _upload(office, personas.school, roster_csv(generated(20)))
    run = ImportRun.objects.get()
    with django_capture_on_commit_callbacks(execute=False):
        _confirm(office, run)
    url = reverse("consent:import-progress", kwargs={"pk": run.pk})
    office.get(url)
    with CaptureQueriesContext(connection) as queries:
        data = office.get(url).json()
    assert data["status"] == "queued" and not data["finished"] and data["url"] == _run_url(run)
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(
        ("INSERT", "UPDATE", "DELETE", "SAVEPOINT"))]
    assert writes == []  # a poll neither extends an idle session nor waits on SQLite's write lock
    assert office.get(url)["Cache-Control"] == "no-store"


def test_a_queued_run_whose_file_retention_erased_fails_with_a_clear_message(
        office, personas, small_immediate_limit, django_capture_on_commit_callbacks):
    _upload(office, personas.school, roster_csv(generated(20)))
    run = ImportRun.objects.get()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _confirm(office, run)
    # The worker is late, and meanwhile the retention housekeeping erases the day-old upload.
    ImportRun.objects.filter(pk=run.pk).update(content="", preview="")

    callbacks[0]()

    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED and run.finished_at
    assert run.failure.startswith("The uploaded file was erased after a day; upload it again.")
    assert "empty" not in run.failure
    assert not Pupil.objects.exists()
    assert AuditEntry.objects.get(action="import.failed").data["error"] == "UploadErased"
    body = office.get(_run_url(run)).content.decode()
    assert "The import failed" in body and "erased after a day" in body


def test_a_task_delivered_twice_applies_once(office, personas, small_immediate_limit,
                                              django_capture_on_commit_callbacks):
    _upload(office, personas.school, roster_csv(generated(20)))
    run = ImportRun.objects.get()
    with django_capture_on_commit_callbacks(execute=False):
        _confirm(office, run)

    assert tasks.import_run_execute.apply(args=[run.pk]).get() == "applied"
    assert tasks.import_run_execute.apply(args=[run.pk]).get() == "skipped"
    assert AuditEntry.objects.filter(action="import.applied").count() == 1
    assert Pupil.objects.filter(school=personas.school).count() == 20


def test_a_run_that_is_not_queued_is_never_applied(personas):
    run = import_run_create(school=personas.school, actor=personas.office, data=roster_csv(QUAYLES),
                            filename="r.csv", file_format="csv", full_import=False)
    assert import_run_execute(run_id=run.pk) == "skipped"  # planned, not confirmed
    assert not Pupil.objects.exists()


def test_a_stale_running_claim_is_taken_over_and_a_fresh_one_is_not(personas, small_immediate_limit):
    run = import_run_create(school=personas.school, actor=personas.office, data=roster_csv(generated(20)),
                            filename="r.csv", file_format="csv", full_import=False)
    import_run_confirm(run=run, actor=personas.office)
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING, started_at=timezone.now())
    assert import_run_execute(run_id=run.pk) == "skipped"  # someone is applying it right now

    # A worker lost mid-run: its transaction rolled back, and the claim outlived the hard time limit.
    ImportRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - dt.timedelta(hours=1))
    assert import_run_execute(run_id=run.pk) == "applied"
    assert Pupil.objects.filter(school=personas.school).count() == 20


def test_the_sweep_queues_a_lost_run_again_and_fails_one_whose_worker_died(personas, small_immediate_limit):
    def queued_run():
        run = import_run_create(school=personas.school, actor=personas.office, data=roster_csv(generated(20)),
                                filename="r.csv", file_format="csv", full_import=False)
        with mock.patch.object(tasks.import_run_execute, "delay"):  # the message is lost
            import_run_confirm(run=run, actor=personas.office)
        return run

    lost, fresh, dead, busy = queued_run(), queued_run(), queued_run(), queued_run()
    now = timezone.now()
    ImportRun.objects.filter(pk__in=[lost.pk, dead.pk, busy.pk]).update(confirmed_at=now - dt.timedelta(hours=1))
    ImportRun.objects.filter(pk=dead.pk).update(status="running", started_at=now - dt.timedelta(hours=1))
    ImportRun.objects.filter(pk=busy.pk).update(status="running", started_at=now - dt.timedelta(seconds=30))

    assert runs_module.import_runs_sweep(now=now) == {"requeued": 1, "failed": 1}

    statuses = dict(ImportRun.objects.values_list("pk", "status"))
    assert statuses == {lost.pk: "applied", fresh.pk: "queued", dead.pk: "failed", busy.pk: "running"}
    dead.refresh_from_db()
    assert "background worker stopped" in dead.failure and dead.content == ""
    assert AuditEntry.objects.get(action="import.failed").data["error"] == "WorkerLost"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_given_the_same_run_at_once_apply_it_once(personas, small_immediate_limit):
    run = import_run_create(school=personas.school, actor=personas.office, data=roster_csv(generated(300)),
                            filename="r.csv", file_format="csv", full_import=False)
    with mock.patch.object(tasks.import_run_execute, "delay"):  # the broker then delivers it twice:
        import_run_confirm(run=run, actor=personas.office)
    assert ImportRun.objects.get(pk=run.pk).status == ImportRun.Status.QUEUED
    barrier, results = threading.Barrier(2), []

    def worker():
        try:
            barrier.wait()
            results.append(import_run_execute(run_id=run.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["applied", "skipped"]
    assert AuditEntry.objects.filter(action="import.applied").count() == 1
    assert Pupil.objects.filter(school=personas.school).count() == 300


def test_a_failure_is_recorded_on_the_run_audited_and_imports_nothing(office, personas, monkeypatch):
    _upload(office, personas.school, roster_csv(QUAYLES))
    run = ImportRun.objects.get()

    def broken(**kwargs):
        Pupil.objects.create(school=personas.school, mis_id="half", first_name="Half", last_name="Done")
        raise RuntimeError("disk full")

    monkeypatch.setattr(runs_module, "import_apply", broken)
    response = _confirm(office, run)

    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED and run.content == "" and run.finished_at
    assert "unexpected error (RuntimeError)" in run.failure and "Nothing was imported" in run.failure
    assert not Pupil.objects.exists()  # the half-done work rolled back
    entry = AuditEntry.objects.get(action="import.failed")
    assert entry.actor_id == personas.office.pk and entry.data["error"] == "RuntimeError"
    body = office.get(response["Location"]).content.decode()
    assert "The import failed" in body and "Upload the file again" in body


def test_a_concurrent_change_that_breaks_the_apply_fails_the_run_clearly(office, personas, monkeypatch):
    _upload(office, personas.school, roster_csv(QUAYLES))
    run = ImportRun.objects.get()
    real_plan = runs_module._plan_run

    def plan_then_someone_adds_p1(run):
        planned = real_plan(run)
        PupilFactory(school=personas.school, mis_id="P1")  # between the plan and the apply
        return planned

    monkeypatch.setattr(runs_module, "_plan_run", plan_then_someone_adds_p1)
    _confirm(office, run)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED and "The registry changed while the import was running" in run.failure


# Discard --------------------------------------------------------------------------------------------


def test_discarding_erases_the_stored_file_and_imports_nothing(office, personas):
    _upload(office, personas.school, roster_csv(QUAYLES))
    run = ImportRun.objects.get()
    assert run.content and run.preview

    response = office.post(reverse("consent:import-discard", kwargs={"pk": run.pk}))

    assert response["Location"] == reverse("consent:import-new", kwargs={"school_pk": personas.school.pk})
    run.refresh_from_db()
    assert run.status == ImportRun.Status.DISCARDED and run.content == "" and run.preview == ""
    with connection.cursor() as cursor:  # erased in the table, not only in the decrypted view of it
        cursor.execute("SELECT content, preview FROM consent_importrun WHERE id = %s", [run.pk])
        assert cursor.fetchone() == ("", "")
    assert AuditEntry.objects.filter(action="import.discarded").count() == 1
    assert "was discarded" in office.get(_run_url(run)).content.decode()
    _confirm(office, run)
    assert not Pupil.objects.exists() and ImportRun.objects.get().status == ImportRun.Status.DISCARDED


def test_only_a_planned_run_can_be_discarded(personas):
    run = import_run_create(school=personas.school, actor=None, data=roster_csv(QUAYLES), filename="r.csv",
                            file_format="csv", full_import=False)
    import_run_confirm(run=run, actor=personas.office)
    with pytest.raises(runs_module.ImportRunStateError):
        import_run_discard(run=run, actor=personas.office)


def test_the_stored_upload_is_encrypted_at_rest(personas):
    run = import_run_create(school=personas.school, actor=None, data=roster_csv(QUAYLES), filename="r.csv",
                            file_format="csv", full_import=False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT content, preview FROM consent_importrun WHERE id = %s", [run.pk])
        content, preview = cursor.fetchone()
    assert "Amelia" not in preview and base64.b64encode(b"Amelia").decode() not in content
    assert content.startswith("gAAAA") and preview.startswith("gAAAA")  # Fernet tokens


# The list, the guide, the template --------------------------------------------------------------------


def test_the_list_shows_past_imports_newest_first_with_who_and_what(office, personas):
    _upload(office, personas.school, roster_csv(QUAYLES))
    _confirm(office, ImportRun.objects.get())
    _upload(office, personas.school, roster_csv(_rows_with_errors()), full=True)
    response = office.get(reverse("consent:imports", kwargs={"school_pk": personas.school.pk}))
    rows = [row["run"] for row in response.context["rows"]]
    assert [r.status for r in rows] == ["invalid", "applied"]
    body = response.content.decode()
    assert "roster.csv" in body and "Has errors" in body and "Imported" in body and "Full" in body
    assert personas.office.get_full_name() in body or personas.office.username in body


def test_the_list_costs_the_same_number_of_queries_for_3_and_30_imports(office, personas):
    url = reverse("consent:imports", kwargs={"school_pk": personas.school.pk})

    def add(n):
        for _ in range(n):
            import_run_create(school=personas.school, actor=UserFactory(), data=roster_csv(QUAYLES),
                              filename="r.csv", file_format="csv", full_import=False)

    add(3)
    office.get(url)
    with CaptureQueriesContext(connection) as three:
        office.get(url)
    add(27)
    with CaptureQueriesContext(connection) as thirty:
        response = office.get(url)
    assert len(response.context["rows"]) == 25 and response.context["page"].paginator.count == 30
    assert len(thirty) == len(three)


def test_the_list_of_a_school_without_imports_says_so(office, personas):
    response = office.get(reverse("consent:imports", kwargs={"school_pk": personas.school.pk}))
    assert "No files have been imported" in response.content.decode()


def test_the_column_guide_lists_every_column_with_its_aliases_and_the_oneroster_files(office, personas):
    body = office.get(reverse("consent:import-columns", kwargs={"school_pk": personas.school.pk})).content.decode()
    for column in COLUMNS:
        assert column.label in body
        for alias in column.aliases:
            assert f"<code>{alias}</code>" in body
    for name in ("users.csv", "classes.csv", "enrollments.csv", "orgs.csv", "agentSourcedIds"):
        assert name in body
    assert "legal guardian" in body and "Required" in body and "Optional" in body


def test_the_template_downloads_as_csv_and_reads_back_without_errors(office, personas):
    response = office.get(reverse("consent:import-template", kwargs={"school_pk": personas.school.pk}))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    assert response.content.decode() == template_csv()
    assert not read_roster(response.content, "template.csv").errors


# Scope --------------------------------------------------------------------------------------------------


def test_another_schools_run_does_not_exist_even_for_its_organisations_importers(client, personas):
    run = import_run_create(school=personas.other_school, actor=None, data=roster_csv(QUAYLES), filename="r.csv",
                            file_format="csv", full_import=False)
    for user in (personas.office, personas.headteacher, personas.org_admin):
        sign_in(client, user)
        assert client.get(_run_url(run)).status_code == 404
        assert client.post(reverse("consent:import-confirm", kwargs={"pk": run.pk})).status_code == 404
    assert ImportRun.objects.get().status == ImportRun.Status.PLANNED


def test_a_teacher_cannot_upload(client, personas):
    sign_in(client, personas.teacher)
    assert _upload(client, personas.school, roster_csv(QUAYLES)).status_code == 403
    assert not ImportRun.objects.exists()
