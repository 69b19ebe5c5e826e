"""The DPO's queue: every PIA of the organisation's schools by where it stands, what changed since the DPO last
saw each, and reviews coming due; another organisation's PIAs do not exist for them."""

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from pia import services
from pia.models import PiaVersion, SeenSnapshot
from tests.factories import PupilFactory, SchoolFactory
from tests.pia.matrix_workflow import at_stage, elsewhere
from tests.pia.pia_setup import draft_pia
from tests.pia.pia_signed import signed_pia
from tests.pia.test_workflow_pages import as_user

pytestmark = pytest.mark.django_db
Status = PiaVersion.Status
QUEUE = reverse("pia:dpo-queue")


def tab(client, name: str) -> str:
    return client.get(QUEUE, {"tab": name}).content.decode()


def test_the_queue_gathers_the_pias_of_every_school_of_the_organisation(client, personas):
    dhoon = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School")
    laxey = draft_pia(personas.organisation, personas.office, school=personas.school, title="Zoom at Laxey")
    services.version_submit(version=laxey, actor=personas.office)
    at_dhoon = draft_pia(personas.organisation, personas.office, school=dhoon, title="Teams at Dhoon")
    PiaVersion.objects.filter(pk=at_dhoon.pk).update(status=Status.SUBMITTED, submitted_by=personas.headteacher)
    federation = draft_pia(personas.organisation, personas.office, title="Federation-wide Zoom")
    services.version_submit(version=federation, actor=personas.office)
    theirs = elsewhere(personas)
    theirs.pia.title = "Their own PIA"
    theirs.pia.save()

    as_user(client, personas.dpo, confirmed=False)
    page = tab(client, "advice")
    for title in ("Zoom at Laxey", "Teams at Dhoon", "Federation-wide Zoom"):
        assert title in page
    assert "Dhoon Test School" in page and "Every school" in page
    assert "Their own PIA" not in page
    assert client.get(reverse("pia:advise", kwargs={"pk": theirs.pk})).status_code == 404
    assert client.get(reverse("pia:versions", kwargs={"pk": theirs.pia_id})).status_code == 404


def test_each_tab_lists_the_pias_at_that_stage(client, personas):
    waiting = at_stage(personas, Status.SUBMITTED)
    waiting.pia.title = "Waiting PIA"
    waiting.pia.save()
    returned = at_stage(personas, Status.SUBMITTED)
    services.version_request_changes(version=returned, actor=personas.dpo, comments="More detail.")
    returned.pia.title = "Returned PIA"
    returned.pia.save()
    with_controller = at_stage(personas, Status.ADVISED)
    with_controller.pia.title = "Controller PIA"
    with_controller.pia.save()
    signed = signed_pia(personas, title="Signed PIA", review_on=timezone.localdate() + dt.timedelta(days=200))

    as_user(client, personas.dpo, confirmed=False)
    pages = {name: tab(client, name) for name in ("advice", "changes", "others", "signed", "review")}
    assert "Waiting PIA" in pages["advice"] and "Returned PIA" not in pages["advice"]
    assert "Returned PIA" in pages["changes"]
    assert "Controller PIA" in pages["others"] and "Waiting for the data controller" in pages["others"]
    assert "Signed PIA" in pages["signed"] and "Waiting PIA" not in pages["signed"]
    assert "Signed PIA" not in pages["review"]
    assert signed.pia.title in pages["signed"]


def test_due_for_review_lists_signed_pias_within_thirty_days_or_past(client, personas):
    today = timezone.localdate()
    signed_pia(personas, title="Due soon", review_on=today + dt.timedelta(days=20))
    with time_machine.travel(timezone.now() - dt.timedelta(days=10)):
        signed_pia(personas, title="Overdue", review_on=today - dt.timedelta(days=3))
    signed_pia(personas, title="Not yet", review_on=today + dt.timedelta(days=90))
    as_user(client, personas.dpo, confirmed=False)
    page = tab(client, "review")
    assert "Due soon" in page and "Overdue" in page and "Not yet" not in page
    assert page.index("Overdue") < page.index("Due soon")
    assert "Past" in page


def test_the_queue_shows_the_steps_changed_since_the_dpo_last_saw_the_pia(client, personas):
    version = at_stage(personas, Status.SUBMITTED)
    as_user(client, personas.dpo)
    assert "Not seen yet" in tab(client, "advice")
    client.post(reverse("pia:mark-seen", kwargs={"pk": version.pk}), {"tab": "advice"})
    assert SeenSnapshot.objects.get(pia=version.pia, user=personas.dpo).version_number == 1
    assert "Nothing" in tab(client, "advice")

    services.version_request_changes(version=version, actor=personas.dpo, comments="Say when it is deleted.")
    version.refresh_from_db()
    version.deletion = "Recordings are deleted after 30 days."
    version.aims = "Live lessons, and recordings for absent pupils."
    version.save()
    services.version_submit(version=version, actor=personas.office)

    page = tab(client, "advice")
    assert "Identify the need for a PIA, Describe the information flows" in page
    assert "Consultation" not in page.split("<tbody>")[1]
    confirm_page = client.get(reverse("pia:advise", kwargs={"pk": version.pk})).content.decode()
    assert "these steps changed" in confirm_page


def test_marking_as_seen_clears_what_changed(client, personas):
    version = at_stage(personas, Status.SUBMITTED)
    as_user(client, personas.dpo, confirmed=False)
    response = client.post(reverse("pia:mark-seen", kwargs={"pk": version.pk}), {"tab": "advice"})
    assert response["Location"] == f"{QUEUE}?tab=advice"
    assert "Nothing" in tab(client, "advice")


def test_a_dpo_opening_the_queue_or_a_link_records_nothing(client, personas):
    version = at_stage(personas, Status.SUBMITTED)
    as_user(client, personas.dpo, confirmed=False)
    tab(client, "advice")
    client.get(reverse("pia:advise", kwargs={"pk": version.pk}))  # not confirmed yet: sent to confirm first
    assert not SeenSnapshot.objects.exists()


def test_an_unknown_tab_shows_the_advice_tab(client, personas):
    at_stage(personas, Status.SUBMITTED)
    as_user(client, personas.dpo, confirmed=False)
    response = client.get(QUEUE, {"tab": "<nonsense>", "page": "x"})
    assert response.status_code == 200 and "Waiting for your advice</h2>" in response.content.decode()


def test_an_empty_queue_says_so(client, personas):
    as_user(client, personas.dpo, confirmed=False)
    assert "No PIA waits for your advice." in tab(client, "advice")


def test_the_signed_tab_shows_the_signed_version_and_any_revision_under_way(client, personas):
    signed = signed_pia(personas, title="Revised PIA")
    services.version_revise(pia=signed.pia, actor=personas.office)
    as_user(client, personas.dpo, confirmed=False)
    page = tab(client, "signed")
    assert "Version 1</a>" in page and "— signed" in page
    assert "version 2 under way: draft" in page
    assert "Revised PIA" in tab(client, "others")


def _add_changed_pias(personas, count: int) -> None:
    """`count` PIAs the DPO saw, sent back, and got again with their aims changed."""
    for i in range(count):
        version = at_stage(personas, Status.SUBMITTED, organisation_wide=i % 2 == 1)
        services.seen_record(version=version, user=personas.dpo)
        services.version_request_changes(version=version, actor=personas.dpo, comments="More detail.")
        version.refresh_from_db()
        version.aims = f"Changed aims {i}."
        version.save()
        services.version_submit(version=version, actor=personas.office)


def _queue_queries(client, expected_rows: int) -> int:
    tab(client, "advice")
    with CaptureQueriesContext(connection) as queries:
        page = tab(client, "advice")
    assert page.count("Identify the need for a PIA") == expected_rows
    return len(queries.captured_queries)


def test_the_queue_reads_the_same_number_of_queries_for_two_or_eight_pias(client, personas):
    signed_pia(personas, title="Signed PIA")
    as_user(client, personas.dpo, confirmed=False)
    _add_changed_pias(personas, 2)
    two = _queue_queries(client, 2)
    _add_changed_pias(personas, 6)
    eight = _queue_queries(client, 8)
    assert eight == two and two <= 15

def test_new_pupils_do_not_show_as_changed_flows(client, personas):
    version = at_stage(personas, Status.SUBMITTED)
    services.seen_record(version=version, user=personas.dpo)
    PupilFactory.create_batch(3, school=personas.school)
    as_user(client, personas.dpo, confirmed=False)
    page = tab(client, "advice")
    assert "Nothing" in page and "Describe the information flows" not in page
    as_user(client, personas.dpo)
    advise_page = client.get(reverse("pia:advise", kwargs={"pk": version.pk})).content.decode()
    assert "Nothing changed since you last saw it" in advise_page
