import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count

from accounts.models import User
from consent.models import Group, Guardian, Guardianship, Pupil
from schools.models import TWO_FACTOR_ROLES, Membership, Role, School

pytestmark = pytest.mark.django_db


def _counts():
    return {
        "schools": School.objects.count(),
        "pupils": Pupil.objects.count(),
        "guardians": Guardian.objects.count(),
        "links": Guardianship.objects.count(),
        "groups": Group.objects.count(),
        "group_members": Group.pupils.through.objects.count(),
        "staff": User.objects.count(),
        "memberships": Membership.objects.count(),
    }


def test_demo_data_is_the_seed_federation_and_running_it_twice_changes_nothing(settings, capsys):
    settings.DEMO_MODE = True
    call_command("seed_demo")
    first = _counts()
    call_command("seed_demo")
    assert _counts() == first

    laxey, dhoon = School.objects.get(slug="laxey"), School.objects.get(slug="dhoon")
    assert laxey.organisation.name == "Dhoon and Laxey Federation" == dhoon.organisation.name
    assert laxey.pupils.count() == 195 and dhoon.pupils.count() == 77
    for school in (laxey, dhoon):
        names = set(school.groups.values_list("name", flat=True))
        assert {"Reception", "Year 6", "Whole school"} <= names
        assert school.groups.get(name="Whole school").pupils.count() == school.pupils.count()
    # Some guardians have several children, and some children have two guardians.
    assert Guardian.objects.annotate(n=Count("pupils")).filter(n__gte=2).exists()
    assert Guardian.objects.annotate(n=Count("pupils")).filter(n__gte=3).exists()
    assert Pupil.objects.annotate(n=Count("guardians")).filter(n=2).exists()
    assert not Guardian.objects.filter(email="").exists()

    held_roles = set(Membership.objects.values_list("role", flat=True))
    assert held_roles == {role.value for role in Role}
    for membership in Membership.objects.filter(role__in=TWO_FACTOR_ROLES):
        assert membership.user.totpdevice_set.filter(confirmed=True).exists()
    assert User.objects.get(username="head").check_password("gatehouse-demo")

    # The seed's consent process: a published notice, and email replies recorded by the office, each
    # confirmed to the parent with their personal link (what a newcomer opens from the demo mailbox).
    from consent.models import ConsentEvent, Notice
    from outbox.models import OutboxMessage

    notice = Notice.objects.get()
    assert notice.version == 1 and notice.hash_verifies()
    events = ConsentEvent.objects.all()
    assert events.count() == 12
    assert {e.recorded_by.username for e in events} == {"office"}
    assert {e.channel for e in events} == {ConsentEvent.Channel.EMAIL_REPLY}
    confirmations = OutboxMessage.objects.filter(template="consent-confirmation")
    assert confirmations.count() == 12
    assert all("/p/" in m.body_text for m in confirmations)

    # The office has asked the Year 3 parents who had not answered; one parent asked for a correction.
    from consent.models import ConsentRequest, RightsRequest

    requests = ConsentRequest.objects.all()
    assert requests.exists()
    assert {g.name for r in requests for p in r.guardian.pupils.all() for g in p.groups.all()} >= {"Year 3"}
    assert OutboxMessage.objects.filter(template="consent-request").count() == requests.count()
    assert RightsRequest.objects.get().kind == "correction"
    # Siblings are told apart by their first names.
    for guardian in Guardian.objects.prefetch_related("pupils"):
        names = [p.first_name for p in guardian.pupils.all()]
        assert len(names) == len(set(names))

    out = capsys.readouterr().out
    assert "password for all: gatehouse-demo" in out
    for username in ("head", "teacher", "office", "teacher.dhoon", "dpo", "siro", "orgadmin"):
        assert f"  {username} " in out


def test_demo_data_refuses_to_run_outside_demo_mode(settings):
    settings.DEMO_MODE = False
    with pytest.raises(CommandError, match="GATEHOUSE_DEMO"):
        call_command("seed_demo")
    assert School.objects.count() == 0


def test_demo_data_has_the_federations_signed_pia_and_approved_risk_assessment(settings):
    from pia.models import PiaVersion, Platform
    from pia.platforms import platform_status
    from riskassess.services import video_lessons_assessment_status

    settings.DEMO_MODE = True
    call_command("seed_demo")
    call_command("seed_demo")

    laxey = School.objects.get(slug="laxey")
    assert video_lessons_assessment_status(school=laxey).ok
    zoom = Platform.objects.get(organisation=laxey.organisation)
    status = platform_status(platform=zoom)
    assert status.ok and status.version.number == 1 and status.version.hash_verifies()
    # The second version waits for the DPO's advice, so the DPO's queue has something in it.
    assert list(PiaVersion.objects.values_list("number", "status")) == [(2, "submitted"), (1, "signed")]
    assert status.version.snapshot["number_affected"]["total"] == 272


def test_demo_data_has_sessions_whose_invitations_reach_the_demo_mailbox_for_consenting_parents_only(
        settings, tmp_path, capsys, django_capture_on_commit_callbacks):
    import datetime as dt

    from django.db.models.functions import Now
    from django.utils import timezone

    from consent.models import ConsentStatus
    from outbox.models import OutboxMessage
    from sessions.dispatch import deliveries_plan
    from sessions.gate import gate_for
    from sessions.models import VideoSession

    settings.DEMO_MODE = True
    settings.EMAIL_BACKEND = "outbox.demo_backend.DemoMailboxBackend"
    settings.EMAIL_FILE_PATH = tmp_path
    call_command("seed_demo")
    call_command("seed_demo")  # adds nothing: every session is still ahead

    laxey = School.objects.get(slug="laxey")
    sessions = VideoSession.objects.filter(school=laxey).order_by("starts_at")
    assert sessions.count() == 6 and {s.status for s in sessions} == {"scheduled"}
    assert all(gate_for(s).ok for s in sessions)
    (soon,) = [s for s in sessions if "phonics" in s.title]
    (tomorrow,) = [s for s in sessions if "story time" in s.title]
    weekly = [s for s in sessions if "weekly" in s.title]
    assert len(weekly) == 4 and len({s.series for s in weekly}) == 1
    assert timezone.localtime(tomorrow.starts_at, laxey.tz).time() == dt.time(9, 0)
    # Invitations for the soonest go out about ten minutes after the seed: not yet.
    until_send = soon.send_at - timezone.now()
    assert dt.timedelta(minutes=9) < until_send < dt.timedelta(minutes=12)
    assert deliveries_plan().created == 0
    assert f"the invitations to \"{soon.title}\"" in capsys.readouterr().out

    # The send time comes (the database's clock cannot be moved: the session's send time is): the worker's
    # planner and send task (eager here) send to the class's consenting parents, and the mailbox shows them.
    (group,) = soon.groups.all()
    given = set(ConsentStatus.objects.filter(pupil__in=group.pupils.all(), state="given")
                .values_list("guardian__email", flat=True))
    assert given and group.pupils.count() > len(given), "a class where some families consented and some did not"
    VideoSession.objects.filter(pk=soon.pk).update(send_at=Now())
    with django_capture_on_commit_callbacks(execute=True):
        assert deliveries_plan().created == len(given)
    invited = set(OutboxMessage.objects.filter(template="session-invitation").values_list("recipient", flat=True))
    assert invited == given
