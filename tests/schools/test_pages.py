import datetime

import pytest
from django.urls import reverse

from schools.audit import Actor, audit_log
from tests.conftest import sign_in
from tests.factories import GroupFactory, GuardianshipFactory

pytestmark = pytest.mark.django_db


def test_the_home_page_shows_each_school_in_scope_with_its_consent_figures(client, personas):
    GuardianshipFactory(guardian__school=personas.school)
    GuardianshipFactory(guardian__school=personas.other_school)
    sign_in(client, personas.headteacher)
    response = client.get(reverse("schools:dashboard"))
    assert response.status_code == 200
    rows = response.context["home"].head["school_rows"]
    assert [row["school"] for row in rows] == [personas.school]
    assert rows[0]["children"] == 1
    assert "Other School" not in response.content.decode()


def test_dashboard_counts_cost_the_same_queries_for_one_school_or_many(client, personas, django_assert_max_num_queries):
    from tests.factories import SchoolFactory

    sign_in(client, personas.dpo)
    with django_assert_max_num_queries(40) as one:
        client.get(reverse("schools:dashboard"))
    for _ in range(5):
        GuardianshipFactory(guardian__school=SchoolFactory(organisation=personas.organisation))
    with django_assert_max_num_queries(40) as many:
        client.get(reverse("schools:dashboard"))
    assert len(many.captured_queries) == len(one.captured_queries)


def test_a_member_of_staff_without_roles_is_told_so(client, db):
    from tests.factories import UserFactory

    user = UserFactory()
    sign_in(client, user)
    response = client.get(reverse("schools:dashboard"))
    assert "no role at any school" in response.content.decode()


def test_school_page_lists_groups_and_staff(client, personas):
    GroupFactory(school=personas.school, name="Year 3")
    sign_in(client, personas.teacher)
    body = client.get(reverse("schools:school", args=[personas.school.pk])).content.decode()
    assert "Year 3" in body
    assert str(personas.headteacher) in body and str(personas.dpo) in body
    assert str(personas.other_teacher) not in body


def test_audit_page_shows_only_the_readers_scope(client, personas):
    audit_log(actor=personas.headteacher, action="admin.changed", obj=personas.school)
    audit_log(actor=personas.other_headteacher, action="admin.changed", obj=personas.other_school)
    sign_in(client, personas.headteacher)
    response = client.get(reverse("schools:audit"))
    entries = [row.entry for row in response.context["rows"]]
    assert {entry.school_id for entry in entries} == {personas.school.pk}


def test_audit_page_filters_by_actor_action_object_and_date(client, personas):
    audit_log(actor=personas.headteacher, action="admin.changed", obj=personas.school)
    audit_log(actor=Actor(kind="guardian", label="Parent of Ava"), action="email.failed", school=personas.school)
    sign_in(client, personas.dpo)
    url = reverse("schools:audit")

    def actions(**params):
        response = client.get(url, params)
        assert response.status_code == 200
        return [row.entry.action for row in response.context["rows"]]

    assert actions(actor="Parent of") == ["email.failed"]
    assert actions(action="admin.changed") == ["admin.changed"]
    assert actions(action="email.*") == ["email.failed"]
    assert actions(obj="Laxey") == ["admin.changed"]
    today = datetime.date.today()
    assert len(actions(date_from=today.isoformat(), date_to=today.isoformat())) >= 2
    assert actions(date_to=(today - datetime.timedelta(days=2)).isoformat()) == []


def test_audit_page_explains_a_backwards_date_range(client, personas):
    sign_in(client, personas.headteacher)
    response = client.get(reverse("schools:audit"), {"date_from": "2026-05-02", "date_to": "2026-05-01"})
    assert response.status_code == 200
    assert "on or before" in response.content.decode()


def test_audit_page_paginates(client, personas):
    for _ in range(55):
        audit_log(actor=personas.headteacher, action="admin.changed", obj=personas.school)
    sign_in(client, personas.headteacher)
    first = client.get(reverse("schools:audit"))
    second = client.get(reverse("schools:audit"), {"page": 2})
    assert len(first.context["rows"]) == 50 and len(second.context["rows"]) == 5
    assert "Page 1 of 2" in first.content.decode()


def test_admin_changes_are_audited(client, personas):
    from accounts.models import User
    from schools.models import AuditEntry
    from tests.factories import TOTPDeviceFactory

    admin_user = User.objects.create_superuser("root", "root@example.org", "x")
    TOTPDeviceFactory(user=admin_user)
    sign_in(client, admin_user)
    response = client.post(reverse("admin:schools_school_change", args=[personas.school.pk]), {
        "organisation": personas.organisation.pk, "name": "Laxey Primary", "slug": "laxey",
        "time_zone": "Europe/London", "contact_email": "",
    })
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:schools_school_changelist")
    entry = AuditEntry.objects.get(action="admin.changed")
    assert entry.actor_id == admin_user.pk and entry.school_id == personas.school.pk
    assert entry.data == {"fields": ["name"]}


def test_the_admin_asks_a_superuser_for_their_second_factor(client, personas):
    from accounts.models import User

    admin_user = User.objects.create_superuser("root", "root@example.org", "x")
    client.force_login(admin_user)
    response = client.get(reverse("admin:schools_school_changelist"))
    assert response.status_code == 302
    assert "schools_school" not in response["Location"]


def test_staff_see_their_own_actions_in_the_audit_trail_wherever_they_were_filed(client, personas):
    audit_log(actor=personas.headteacher, action="auth.login", obj=personas.headteacher,
              organisation=personas.organisation)
    audit_log(actor=personas.dpo, action="auth.login", obj=personas.dpo, organisation=personas.organisation)
    sign_in(client, personas.headteacher)
    entries = [row.entry for row in client.get(reverse("schools:audit")).context["rows"]]
    assert [(e.action, e.actor_id) for e in entries] == [("auth.login", personas.headteacher.pk)]


def test_dashboard_tells_the_headteacher_about_emails_that_failed(client, personas):
    from outbox.models import OutboxMessage
    from outbox.services import email_queue

    message = email_queue(template="test-message", to="parent@example.net", context={}, school=personas.school)
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxMessage.Status.FAILED, last_error="550")
    sign_in(client, personas.headteacher)
    body = client.get(reverse("schools:dashboard")).content.decode()
    assert "1</span> email could not be sent" in body and "See what went wrong and retry" in body
    sign_in(client, personas.other_headteacher)
    assert "could not be sent" not in client.get(reverse("schools:dashboard")).content.decode()
