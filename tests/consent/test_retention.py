"""Retention: with time moved forward, leavers' data is gone and nothing else is (issue 3, point 10)."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consent.links import guardian_link_issue, guardian_link_resolve
from consent.models import (
    ConsentEvent,
    ConsentStatus,
    Guardian,
    GuardianLink,
    Guardianship,
    ImportRun,
    Pupil,
    RetentionSchedule,
    RightsRequest,
)
from consent.retention import erase_on, evidence_until, retention_apply, retention_schedule_update
from consent.services import consent_give, consent_withdraw
from consent.tasks import retention as retention_task
from outbox.models import OutboxMessage
from schools.audit import audit_verify
from schools.models import AuditEntry
from tests.factories import GroupFactory

from .consent_setup import guardian_of, publish, pupil_at, purpose_for

pytestmark = pytest.mark.django_db

LEFT = date(2026, 7, 20)
BEFORE_AUGUST = datetime(2026, 7, 31, 22, 0, tzinfo=UTC)  # 23:00 on 31 July in London
AUGUST = datetime(2026, 7, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 August in London


@pytest.mark.parametrize(("left_on", "month", "expected"), [
    (date(2026, 7, 20), 8, date(2026, 8, 1)),
    (date(2026, 7, 31), 8, date(2026, 8, 1)),
    (date(2026, 8, 1), 8, date(2027, 8, 1)),  # "the August after": not the day they leave
    (date(2026, 12, 15), 8, date(2027, 8, 1)),
    (date(2026, 12, 15), 1, date(2027, 1, 1)),
    (date(2026, 1, 1), 1, date(2027, 1, 1)),
])
def test_erase_date_is_the_first_of_the_month_after_leaving(left_on, month, expected):
    assert erase_on(left_on, month) == expected


def test_evidence_is_kept_the_configured_years_after_erasing():
    assert evidence_until(date(2026, 8, 1), 6) == date(2032, 8, 1)
    assert evidence_until(date(2028, 2, 29), 1) == date(2029, 2, 28)


class World:
    """One school, with an eye on everything retention may and may not touch:

    - `stayer`: a current pupil; their guardian `shared` also has `sibling`, a leaver with evidence;
    - `leaver`: left with consent evidence from `parent` (only that child);
    - `quiet`: left without ever answering; `quiet_parent` has only that child and no evidence.
    """

    def __init__(self, school):
        self.school = school
        self.notice = publish(purpose_for(school))
        self.group = GroupFactory(school=school)
        with time_machine.travel(datetime(2026, 3, 1, 12, tzinfo=UTC)):
            self.stayer = pupil_at(school, first_name="Stella", last_name="Stayer")
            self.sibling = pupil_at(school, first_name="Simon", last_name="Stayer", left_on=LEFT)
            self.shared = guardian_of(self.stayer, self.sibling)
            self.leaver = pupil_at(school, first_name="Lena", last_name="Leaver", left_on=LEFT, year_group="Year 6")
            self.parent = guardian_of(self.leaver)
            self.quiet = pupil_at(school, first_name="Quentin", last_name="Quiet", left_on=LEFT)
            self.quiet_parent = guardian_of(self.quiet)
            for pupil in (self.stayer, self.sibling, self.leaver, self.quiet):
                self.group.pupils.add(pupil)
            consent_give(guardian=self.parent, pupil=self.leaver, notice=self.notice, attestation=True)
            consent_give(guardian=self.shared, pupil=self.stayer, notice=self.notice, attestation=True)
            consent_give(guardian=self.shared, pupil=self.sibling, notice=self.notice, attestation=True)
            self.parent_link = guardian_link_issue(guardian=self.parent, purpose=self.notice.purpose)
            self.shared_link = guardian_link_issue(guardian=self.shared, purpose=self.notice.purpose)
            guardian_link_issue(guardian=self.quiet_parent, purpose=self.notice.purpose)


def snapshot():
    """Everything retention could touch, as plain values."""
    return {
        "pupils": sorted(Pupil.objects.values_list("pk", "first_name", "mis_id", "year_group", "archived_at")),
        "guardians": sorted(Guardian.objects.values_list("pk", "last_name", "email", "phone", "archived_at")),
        "guardianships": sorted(Guardianship.objects.values_list("pk", flat=True)),
        "memberships": sorted(Pupil.groups.through.objects.values_list("pk", flat=True)),
        "events": sorted(ConsentEvent.objects.values_list("pk", flat=True)),
        "statuses": sorted(ConsentStatus.objects.values_list("pk", "state")),
        "links": sorted(GuardianLink.objects.values_list("pk", flat=True)),
        "emails": sorted(OutboxMessage.objects.values_list("pk", flat=True)),
    }


@pytest.fixture
def world(personas):
    return World(personas.school)


def test_nothing_happens_before_the_month_after_leaving(world):
    before = snapshot()
    report = retention_apply(now=BEFORE_AUGUST)
    assert not report.changed
    assert snapshot() == before


def test_in_the_august_after_leaving_leavers_data_is_gone_and_nothing_else_is(world):
    emails_to_parent = OutboxMessage.objects.filter(recipient=world.parent.email).count()
    assert emails_to_parent > 0  # the confirmation of their consent
    stayer_before = Pupil.objects.filter(pk=world.stayer.pk).values().get()
    shared_before = Guardian.objects.filter(pk=world.shared.pk).values().get()

    report = retention_apply(now=AUGUST)

    # The leaver without evidence and their parent are deleted outright.
    assert not Pupil.objects.filter(pk=world.quiet.pk).exists()
    assert not Guardian.objects.filter(pk=world.quiet_parent.pk).exists()
    # The leaver with evidence keeps only what the evidence needs: their name and their consents.
    leaver = Pupil.objects.get(pk=world.leaver.pk)
    assert (leaver.first_name, leaver.last_name) == ("Lena", "Leaver")
    assert leaver.mis_id == f"archived-{leaver.pk}" and leaver.year_group == ""
    assert leaver.archived_at is not None and leaver.evidence_delete_on == date(2032, 8, 1)
    assert not leaver.groups.exists()
    assert ConsentEvent.objects.filter(pupil=leaver).count() == 1
    # Their parent has no child left: contact details, links and the emails sent to them go.
    parent = Guardian.objects.get(pk=world.parent.pk)
    assert (parent.email, parent.phone, parent.archived_at is not None) == ("", "", True)
    assert not GuardianLink.objects.filter(guardian=parent).exists()
    assert guardian_link_resolve(world.parent_link.rsplit("/", 2)[-2]) is None
    assert not OutboxMessage.objects.filter(recipient=world.parent.email).exists()
    # The sibling who left is archived, but their guardian still has a child at the school: untouched.
    assert Pupil.objects.get(pk=world.sibling.pk).archived_at is not None
    assert Pupil.objects.filter(pk=world.stayer.pk).values().get() == stayer_before
    assert Guardian.objects.filter(pk=world.shared.pk).values().get() == shared_before
    assert guardian_link_resolve(world.shared_link.rsplit("/", 2)[-2]) is not None
    assert ConsentStatus.objects.get(pupil=world.stayer).state == "given"
    assert world.group.pupils.filter(pk=world.stayer.pk).exists()

    assert sorted(report.pupils_deleted) == [world.quiet.pk]
    assert sorted(report.pupils_archived) == sorted([world.leaver.pk, world.sibling.pk])
    assert report.guardians_deleted == [world.quiet_parent.pk]
    assert report.guardians_archived == [world.parent.pk]
    entry = AuditEntry.objects.filter(action="retention.applied").get()
    assert entry.data["pupils_archived"] == 2 and entry.data["pupils_deleted"] == 1


def test_a_second_run_the_same_day_changes_nothing(world):
    retention_apply(now=AUGUST)
    after_first = snapshot()
    audit_entries = AuditEntry.objects.count()
    report = retention_apply(now=AUGUST + timedelta(hours=1))
    assert not report.changed
    assert snapshot() == after_first
    assert AuditEntry.objects.count() == audit_entries


def test_a_missed_run_catches_up_years_later(world):
    retention_apply(now=datetime(2028, 1, 10, 12, tzinfo=UTC))
    assert Pupil.objects.get(pk=world.leaver.pk).archived_at is not None
    assert not Pupil.objects.filter(pk=world.quiet.pk).exists()


def test_evidence_is_deleted_when_its_period_ends_and_current_families_stay(world):
    retention_apply(now=AUGUST)
    just_before = datetime(2032, 7, 31, 22, 0, tzinfo=UTC)
    assert not retention_apply(now=just_before).changed

    report = retention_apply(now=datetime(2032, 8, 1, 9, tzinfo=UTC))

    assert not Pupil.objects.filter(pk__in=[world.leaver.pk, world.sibling.pk]).exists()
    assert not ConsentEvent.objects.filter(pupil_id__in=[world.leaver.pk, world.sibling.pk]).exists()
    assert not Guardian.objects.filter(pk=world.parent.pk).exists()
    # The shared guardian still has a current child: they, that child and its evidence stay.
    assert Guardian.objects.filter(pk=world.shared.pk, archived_at__isnull=True).exists()
    assert ConsentEvent.objects.filter(pupil=world.stayer).count() == 1
    assert ConsentStatus.objects.get(pupil=world.stayer).state == "given"
    assert report.events_deleted == 2
    assert report.guardians_deleted == [world.parent.pk]
    assert audit_verify()[1] is None


def test_the_audit_trail_names_nobody_so_erasing_leaves_no_name_behind(world):
    retention_apply(now=AUGUST)
    retention_apply(now=datetime(2032, 8, 2, tzinfo=UTC))
    names = {"Lena", "Leaver", "Quentin", "Quiet", "Simon", world.parent.last_name, world.parent.email}
    for entry in AuditEntry.objects.all():
        text = f"{entry.actor_label} {entry.object_repr} {entry.data}"
        assert not any(name in text for name in names), (entry.action, text)


def test_dry_run_reports_what_the_run_does_and_writes_nothing(world):
    before = snapshot()
    audit_entries = AuditEntry.objects.count()
    dry = retention_apply(now=AUGUST, dry_run=True)
    assert snapshot() == before
    assert AuditEntry.objects.count() == audit_entries
    real = retention_apply(now=AUGUST)
    assert dry.counts() == real.counts()
    assert sorted(dry.pupils_archived) == sorted(real.pupils_archived)

    later = datetime(2032, 8, 2, tzinfo=UTC)
    before = snapshot()
    dry = retention_apply(now=later, dry_run=True)
    assert snapshot() == before
    assert dry.counts() == retention_apply(now=later).counts()


def test_the_command_shows_what_the_next_run_would_do(world, capsys):
    call_command("retention_apply", "--dry-run", "--as-of", "2026-08-01")
    out = capsys.readouterr().out
    assert "1  leavers deleted (no consent evidence)" in out
    assert "2  leavers archived" in out
    assert f"#{world.leaver.pk}" in out and "2026-07-20" in out
    assert "Lena" not in out
    assert Pupil.objects.filter(pk=world.quiet.pk).exists()


def test_the_command_refuses_a_date_for_a_real_run(world):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="only goes with --dry-run"):
        call_command("retention_apply", "--as-of", "2026-08-01")
    with pytest.raises(CommandError, match="is not a date"):
        call_command("retention_apply", "--dry-run", "--as-of", "1 August")


def test_the_periodic_task_applies_the_schedule(world):
    with time_machine.travel(AUGUST):
        counts = retention_task()
    assert counts["pupils_archived"] == 2
    assert Pupil.objects.get(pk=world.leaver.pk).archived_at is not None


def test_the_organisation_sets_its_own_month_and_period(world, personas):
    retention_schedule_update(organisation=personas.organisation, actor=personas.org_admin,
                              leaver_month=12, evidence_years=2)
    assert not retention_apply(now=AUGUST).changed
    retention_apply(now=datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert Pupil.objects.get(pk=world.leaver.pk).evidence_delete_on == date(2028, 12, 1)
    assert AuditEntry.objects.filter(action="retention.schedule_updated").exists()
    with pytest.raises(Exception, match="Ensure this value"):
        retention_schedule_update(organisation=personas.organisation, actor=personas.org_admin,
                                  leaver_month=12, evidence_years=0)
    assert RetentionSchedule.objects.get(organisation=personas.organisation).evidence_years == 2


def test_a_pupil_brought_back_by_an_import_is_not_erased(world):
    Pupil.objects.filter(pk=world.quiet.pk).update(left_on=None)
    retention_apply(now=AUGUST)
    assert Pupil.objects.get(pk=world.quiet.pk).archived_at is None
    assert Guardian.objects.get(pk=world.quiet_parent.pk).archived_at is None


def test_a_withdrawal_after_leaving_is_kept_as_evidence_too(world):
    consent_withdraw(guardian=world.parent, pupil=world.leaver, notice=world.notice)
    retention_apply(now=AUGUST)
    assert ConsentEvent.objects.filter(pupil=world.leaver).count() == 2


def test_a_guardian_with_a_rights_request_is_archived_not_deleted(world):
    RightsRequest.objects.create(school=world.school, guardian=world.quiet_parent, guardian_label="x",
                                 kind="access", due_on=date(2026, 8, 20))
    retention_apply(now=AUGUST)
    assert Guardian.objects.get(pk=world.quiet_parent.pk).archived_at is not None


def test_uploads_revoked_links_and_old_email_bodies_are_erased(world, personas):
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    with time_machine.travel(now - timedelta(days=2)):
        run = ImportRun.objects.create(school=world.school, filename="roster.csv", sha256="0" * 64, content="YWJj",
                                       preview='[{"name": "Lena Leaver"}]')
    GuardianLink.objects.filter(guardian=world.shared).update(revoked_at=now - timedelta(days=31))
    OutboxMessage.objects.update(status="sent", sent_at=now - timedelta(days=31))
    report = retention_apply(now=now)
    run.refresh_from_db()
    assert run.content == "" and run.preview == ""
    assert not GuardianLink.objects.filter(guardian=world.shared).exists()
    message = OutboxMessage.objects.first()
    assert (message.body_text, message.body_html) == ("", "")
    assert report.uploads_erased == 1 and report.email_bodies_erased == OutboxMessage.objects.count()
    assert AuditEntry.objects.filter(action="retention.applied").exists()


def test_queries_are_per_batch_not_per_pupil(personas):
    school = personas.school
    notice = publish(purpose_for(school))

    def leavers(n):
        for _ in range(n):
            pupil = pupil_at(school, left_on=LEFT)
            guardian = guardian_of(pupil)
            consent_give(guardian=guardian, pupil=pupil, notice=notice, attestation=True)

    def queries_for_a_run(day):
        with CaptureQueriesContext(connection) as context:
            retention_apply(now=day)
        return len(context)

    leavers(3)
    few = queries_for_a_run(AUGUST)
    leavers(30)
    many = queries_for_a_run(AUGUST + timedelta(days=1))
    assert many == few


def _retention_url(personas):
    from django.urls import reverse

    return reverse("consent:retention", kwargs={"organisation_pk": personas.organisation.pk})


def test_the_page_shows_what_goes_next_and_when(client, personas, world):
    from tests.conftest import sign_in

    sign_in(client, personas.dpo)
    response = client.get(_retention_url(personas))
    assert response.status_code == 200
    assert response.context["outlook"].erase == [(date(2026, 8, 1), 3)]
    assert b"1 August" in response.content and b"6 years" in response.content
    assert b"Save schedule" not in response.content  # the DPO reads; the organisation admin sets it


def test_the_organisation_admin_changes_the_schedule_on_its_page(client, personas, world):
    from tests.conftest import sign_in

    sign_in(client, personas.org_admin)
    response = client.post(_retention_url(personas), {"leaver_month": "9", "evidence_years": "3"}, follow=True)
    assert b"Retention schedule saved" in response.content
    schedule = RetentionSchedule.objects.get(organisation=personas.organisation)
    assert (schedule.leaver_month, schedule.evidence_years) == (9, 3)
    assert response.context["outlook"].erase == [(date(2026, 9, 1), 3)]


@pytest.mark.parametrize("years", ["0", "26", "many", ""])
def test_a_bad_schedule_is_refused_with_a_message_and_changes_nothing(client, personas, years):
    from tests.conftest import sign_in

    sign_in(client, personas.org_admin)
    audit_entries = AuditEntry.objects.count()
    response = client.post(_retention_url(personas), {"leaver_month": "8", "evidence_years": years})
    assert response.status_code == 200
    assert response.context["form"].errors["evidence_years"]
    assert not RetentionSchedule.objects.exists()
    assert AuditEntry.objects.count() == audit_entries


def test_completing_a_deletion_request_erases_the_parent_now_and_keeps_the_evidence(world, personas):
    from consent.rights import rights_request_create, rights_request_respond, rights_request_status_change

    shared = world.shared
    address = shared.email
    request = rights_request_create(guardian=shared, kind="deletion", purpose=world.notice.purpose)
    rights_request_respond(rights_request=request, response="We have deleted your details.", actor=personas.office)
    answer = OutboxMessage.objects.get(template="rights-response")
    sent_before = OutboxMessage.objects.filter(recipient=shared.email).exclude(pk=answer.pk)
    sent_before.update(status="sent")
    events_before = ConsentEvent.objects.filter(guardian=shared).count()

    rights_request_status_change(rights_request=request, status="completed", actor=personas.office)

    shared.refresh_from_db()
    assert (shared.email, shared.phone, shared.mis_id) == ("", "", f"archived-{shared.pk}")
    assert shared.archived_at is not None and shared.processing_restricted_at is not None
    assert shared.last_name  # the name stays with the evidence
    assert not GuardianLink.objects.filter(guardian=shared).exists()
    # The answer still goes out; the emails already sent are gone.
    assert list(OutboxMessage.objects.filter(recipient=address)) == [answer]
    # Their consents are withdrawn by the system, on top of the evidence, which is all kept.
    assert ConsentEvent.objects.filter(guardian=shared).count() == events_before + 2
    assert set(ConsentStatus.objects.filter(guardian=shared).values_list("state", flat=True)) == {"withdrawn"}
    assert ConsentEvent.objects.filter(guardian=shared, kind="withdrawn", channel="system").count() == 2
    # The child stays in the registry.
    assert Pupil.objects.get(pk=world.stayer.pk).archived_at is None
    entry = AuditEntry.objects.get(action="retention.guardian_erased")
    assert entry.data["rights_request"] == request.pk and sorted(entry.data["consents_withdrawn"]) == sorted(
        [world.stayer.pk, world.sibling.pk])
    assert audit_verify()[1] is None


def test_erasing_twice_does_nothing_the_second_time(world, personas):
    from consent.retention import guardian_erase

    assert guardian_erase(guardian=world.parent, actor=personas.office) is True
    entries = AuditEntry.objects.count()
    assert guardian_erase(guardian=world.parent, actor=personas.office) is False
    assert AuditEntry.objects.count() == entries


def test_answering_and_completing_a_deletion_in_one_step_sends_the_answer_without_a_link(world, personas):
    from consent.rights import rights_request_create, rights_request_respond

    parent, address = world.parent, world.parent.email
    request = rights_request_create(guardian=parent, kind="deletion", purpose=world.notice.purpose)
    rights_request_respond(rights_request=request, response="Done.", actor=personas.office, status="completed")

    answer = OutboxMessage.objects.get(template="rights-response")
    assert answer.recipient == address and "/p/" not in answer.body_text and "Status: Completed" in answer.body_text
    assert not GuardianLink.objects.filter(guardian=parent).exists()
    parent.refresh_from_db()
    assert parent.archived_at is not None and parent.email == ""


def test_an_erased_parent_can_no_longer_decide_even_through_a_link_that_survived(world, personas):
    from django.core.exceptions import ValidationError

    from consent.links import guardian_link_resolve, token_hash
    from consent.retention import guardian_erase
    from consent.services import consent_give

    guardian_erase(guardian=world.shared, actor=personas.office)
    # Erasing deleted their links; one made by some other path afterwards still opens nothing.
    GuardianLink.objects.create(guardian=world.shared, purpose=world.notice.purpose, token_sha256=token_hash("t" * 43))
    assert guardian_link_resolve("t" * 43) is None
    with pytest.raises(ValidationError, match="erased"):
        consent_give(guardian=world.shared, pupil=world.stayer, notice=world.notice, attestation=True)


def test_an_erased_parents_withdrawal_no_longer_binds_the_child(world, personas):
    from consent.retention import guardian_erase
    from consent.services import consent_give, pupil_consent_state

    other_parent = guardian_of(world.stayer)
    guardian_erase(guardian=world.shared, actor=personas.office)  # withdraws their consent for the stayer
    assert pupil_consent_state(pupil=world.stayer, purpose=world.notice.purpose).state == "none"
    consent_give(guardian=other_parent, pupil=world.stayer, notice=world.notice, attestation=True)
    assert pupil_consent_state(pupil=world.stayer, purpose=world.notice.purpose).state == "given"


def test_a_deletion_request_about_one_child_does_not_erase_the_parent(world, personas):
    from consent.rights import rights_request_create, rights_request_status_change

    request = rights_request_create(guardian=world.shared, kind="deletion", pupil=world.stayer,
                                    purpose=world.notice.purpose)
    rights_request_status_change(rights_request=request, status="completed", actor=personas.office)
    world.shared.refresh_from_db()
    assert world.shared.archived_at is None and world.shared.email


def test_a_repeated_withdrawal_records_one_event_and_one_email(world):
    from consent.services import consent_withdraw

    first = consent_withdraw(guardian=world.parent, pupil=world.leaver, notice=world.notice)
    events, emails = ConsentEvent.objects.count(), OutboxMessage.objects.count()
    again = consent_withdraw(guardian=world.parent, pupil=world.leaver, notice=world.notice)
    assert again.pk == first.pk
    assert (ConsentEvent.objects.count(), OutboxMessage.objects.count()) == (events, emails)


def test_a_guardian_an_import_unlinks_is_kept_for_the_grace_period_from_that_day(personas):
    from consent.imports import import_apply, import_plan, read_roster

    school = personas.school
    header = "pupil_id,first_name,last_name,year,contact_id,contact_first_name,contact_last_name,contact_email\n"
    both = header + ("P1,Ada,Byron,Year 2,G1,Anne,Byron,anne@example.org\n"
                     "P1,Ada,Byron,Year 2,G2,Tom,Byron,tom@example.org\n")
    with time_machine.travel(datetime(2026, 1, 1, 12, tzinfo=UTC)):
        import_apply(plan=import_plan(school=school, rows=read_roster(both.encode(), "r.csv"), full=True),
                     actor=personas.office)
    one = header + "P1,Ada,Byron,Year 2,G1,Anne,Byron,anne@example.org\n"
    june = datetime(2026, 6, 1, 12, tzinfo=UTC)
    with time_machine.travel(june):
        import_apply(plan=import_plan(school=school, rows=read_roster(one.encode(), "r.csv"), full=True),
                     actor=personas.office)
    tom = Guardian.objects.get(mis_id="G2")
    assert not retention_apply(now=june + timedelta(days=29)).guardians_deleted
    assert retention_apply(now=june + timedelta(days=31)).guardians_deleted == [tom.pk]


def test_a_guardian_named_only_by_their_own_requests_goes_when_the_evidence_period_ends(world):
    RightsRequest.objects.create(school=world.school, guardian=world.quiet_parent, guardian_label="x",
                                 kind="correction", due_on=date(2026, 8, 20))
    retention_apply(now=AUGUST)
    assert Guardian.objects.get(pk=world.quiet_parent.pk).archived_at is not None
    assert not retention_apply(now=datetime(2032, 7, 1, tzinfo=UTC)).guardians_deleted
    report = retention_apply(now=datetime(2032, 8, 2, tzinfo=UTC))
    assert world.quiet_parent.pk in report.guardians_deleted
    assert not RightsRequest.objects.exists()


def test_old_emails_to_people_no_longer_in_the_registry_lose_their_address_and_subject(world, personas):
    from consent.retention import guardian_erase

    address = world.shared.email
    OutboxMessage.objects.update(status="sent", sent_at=timezone.now())
    guardian_erase(guardian=world.shared, actor=personas.office)
    # One email to them was still waiting when they were erased: it went out afterwards.
    kept = OutboxMessage.objects.create(template="consent-confirmation", recipient=address, subject="Ada's consent",
                                        body_text="x", body_html="x", school=world.school, status="sent",
                                        message_id="<kept@test>", sent_at=timezone.now())
    other = guardian_of(world.stayer)
    current = OutboxMessage.objects.create(template="consent-request", recipient=other.email, subject="Ada?",
                                           body_text="x", body_html="x", school=world.school, status="sent",
                                           message_id="<current@test>", sent_at=timezone.now())
    later = timezone.now() + timedelta(days=31)
    with time_machine.travel(later):
        report = retention_apply(now=later)
    kept.refresh_from_db()
    assert (kept.recipient, kept.subject) == ("(erased)", "(erased)")
    current.refresh_from_db()
    assert current.recipient == other.email  # still a current parent's address
    assert report.addresses_erased == 1


def test_a_queued_import_keeps_its_file_and_an_unconfirmed_preview_expires(world):
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    with time_machine.travel(now - timedelta(days=2)):
        queued = ImportRun.objects.create(school=world.school, filename="a.csv", sha256="0" * 64, content="YQ==",
                                          status=ImportRun.Status.QUEUED)
        planned = ImportRun.objects.create(school=world.school, filename="b.csv", sha256="1" * 64, content="Yg==")
    retention_apply(now=now)
    queued.refresh_from_db()
    planned.refresh_from_db()
    assert queued.content == "YQ==" and queued.status == ImportRun.Status.QUEUED
    assert planned.content == "" and planned.status == ImportRun.Status.DISCARDED
