"""The sign-off through the pages: three signatures, each after its own "confirm it's you"; changes requested and
resubmitted; the author refused in every role; signed versions that no page changes; versions and comparison."""

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.reauth import SESSION_KEY
from pia import services
from pia.models import Decision, PiaVersion
from schools.models import Role
from tests.conftest import sign_in
from tests.factories import MembershipFactory, TOTPDeviceFactory, UserFactory
from tests.pia.matrix_workflow import at_stage
from tests.pia.pia_setup import draft_pia
from tests.pia.pia_signed import signed_pia
from tests.pia.test_workflow_services import tamper

pytestmark = pytest.mark.django_db
Status = PiaVersion.Status


def as_user(client, user, *, confirmed: bool = True):
    """Sign `user` in (second factor passed), having just confirmed it's them unless `confirmed` is False."""
    client.logout()
    sign_in(client, user)
    if confirmed:
        confirm(client, user)
    return client


def confirm(client, user) -> None:
    session = client.session
    session[SESSION_KEY] = {"user": user.pk, "at": timezone.now().timestamp()}
    session.save()


def url(name: str, version: PiaVersion) -> str:
    return reverse(name, kwargs={"pk": version.pk})


def test_a_pia_goes_from_draft_to_signed_through_the_pages_with_three_confirmed_signatures(client, personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)

    as_user(client, personas.office, confirmed=False)
    assert client.get(url("pia:submit", version)).status_code == 200
    response = client.post(url("pia:submit", version))
    assert response.status_code == 302

    as_user(client, personas.dpo)
    page = client.get(url("pia:advise", version))
    assert page.status_code == 200
    assert b"Comment on" in page.content and b"Disclosure of personal information" in page.content
    response = client.post(url("pia:advise", version), {
        "decision": "advise", "comments": "Proceed with the solutions listed.",
        "step_risks": "The disclosure risk is rated sensibly.",
    })
    assert response.status_code == 302 and response["Location"] == reverse("pia:dpo-queue")

    as_user(client, personas.headteacher)
    page = client.get(url("pia:decide", version))
    assert b"Proceed with the solutions listed." in page.content
    assert b"The disclosure risk is rated sensibly." in page.content
    assert client.post(url("pia:decide", version), {"decision": "accept", "reasons": ""}).status_code == 302

    as_user(client, personas.siro)
    page = client.get(url("pia:sign", version))
    assert b"Data controller accepted the DPO&#x27;s advice" in page.content
    response = client.post(url("pia:sign", version))
    assert response.status_code == 302 and response["Location"] == reverse("pia:version", kwargs={"pk": version.pk})

    version.refresh_from_db()
    assert version.status == Status.SIGNED and version.hash_verifies()
    assert [(d.kind, d.user) for d in version.decisions.order_by("decided_at", "id")] == [
        (Decision.Kind.DPO_ADVICE, personas.dpo),
        (Decision.Kind.CONTROLLER_ACCEPTED, personas.headteacher),
        (Decision.Kind.SIRO_SIGNED, personas.siro),
    ]
    assert version.decisions.get(kind=Decision.Kind.DPO_ADVICE).step_comments == {
        "risks": "The disclosure risk is rated sensibly."}


@pytest.mark.parametrize(("stage", "name", "persona", "data"), [
    (Status.SUBMITTED, "pia:advise", "dpo", {"decision": "advise", "comments": "Proceed."}),
    (Status.ADVISED, "pia:decide", "headteacher", {"decision": "accept"}),
    (Status.DECIDED, "pia:sign", "siro", {}),
])
def test_a_decision_posted_without_a_fresh_confirmation_is_refused(client, personas, stage, name, persona, data):
    version = at_stage(personas, stage)
    as_user(client, getattr(personas, persona), confirmed=False)
    response = client.post(url(name, version), data)
    assert response.status_code == 302 and reverse("accounts:confirm") in response["Location"]
    version.refresh_from_db()
    assert version.status == stage


def test_each_signature_uses_up_its_confirmation(client, personas):
    first, second = at_stage(personas, Status.SUBMITTED), at_stage(personas, Status.SUBMITTED, organisation_wide=True)
    as_user(client, personas.dpo)
    assert client.post(url("pia:advise", first), {"decision": "advise", "comments": "Proceed."}).status_code == 302
    response = client.post(url("pia:advise", second), {"decision": "advise", "comments": "Proceed."})
    assert reverse("accounts:confirm") in response["Location"]
    second.refresh_from_db()
    assert second.status == Status.SUBMITTED


def test_a_confirmation_older_than_the_limit_is_not_enough(client, personas, settings):
    version = at_stage(personas, Status.DECIDED)
    as_user(client, personas.siro, confirmed=False)
    session = client.session
    session[SESSION_KEY] = {"user": personas.siro.pk,
                            "at": timezone.now().timestamp() - settings.REAUTH_MAX_AGE_SECONDS - 5}
    session.save()
    response = client.post(url("pia:sign", version))
    assert reverse("accounts:confirm") in response["Location"]
    version.refresh_from_db()
    assert version.status == Status.DECIDED


def test_changes_requested_return_to_the_author_with_the_comments_and_resubmission_works(client, personas):
    version = at_stage(personas, Status.SUBMITTED)
    as_user(client, personas.dpo)
    client.post(url("pia:advise", version), {
        "decision": "request_changes", "comments": "Two things to add.",
        "step_flows": "Say when recordings are deleted.", "step_actions": "Name who updates the notice.",
    })
    version.refresh_from_db()
    assert version.status == Status.CHANGES_REQUESTED

    as_user(client, personas.office, confirmed=False)
    page = client.get(reverse("pia:version", kwargs={"pk": version.pk}))
    content = page.content.decode()
    assert "Changes requested by" in content
    assert "Two things to add." in content and "Say when recordings are deleted." in content
    assert "Describe the information flows" in content
    submit_page = client.get(url("pia:submit", version)).content.decode()
    assert "Say when recordings are deleted." in submit_page
    version.deletion = "Recordings are deleted after 30 days."
    version.save()
    client.post(url("pia:submit", version))
    version.refresh_from_db()
    assert version.status == Status.SUBMITTED

    as_user(client, personas.dpo)
    page = client.get(url("pia:advise", version)).content.decode()
    assert "Earlier rounds" in page and "Two things to add." in page


def test_advice_without_words_shows_the_problem_and_changes_nothing(client, personas):
    version = at_stage(personas, Status.SUBMITTED)
    as_user(client, personas.dpo)
    response = client.post(url("pia:advise", version), {"decision": "advise", "comments": " "})
    assert response.status_code == 200
    assert "Write your advice" in response.content.decode()
    version.refresh_from_db()
    assert version.status == Status.SUBMITTED and not version.decisions.exists()


def test_overruling_without_reasons_shows_the_problem_and_changes_nothing(client, personas):
    version = at_stage(personas, Status.ADVISED)
    as_user(client, personas.headteacher)
    response = client.post(url("pia:decide", version), {"decision": "overrule", "reasons": ""})
    assert response.status_code == 200 and "needs your reasons" in response.content.decode()
    version.refresh_from_db()
    assert version.status == Status.ADVISED


def test_submitting_an_incomplete_pia_lists_what_is_missing_on_the_page(client, personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    version.risks.all().delete()
    as_user(client, personas.office, confirmed=False)
    page = client.get(url("pia:submit", version)).content.decode()
    assert "not complete yet" in page and "no privacy risk" in page
    response = client.post(url("pia:submit", version), follow=True)
    assert "no privacy risk" in response.content.decode()
    version.refresh_from_db()
    assert version.status == Status.DRAFT


def test_the_author_cannot_sign_off_their_own_pia_in_any_role_they_hold(client, personas):
    author = UserFactory()
    TOTPDeviceFactory(user=author)
    MembershipFactory(user=author, role=Role.HEADTEACHER, school=personas.school, organisation=personas.organisation)
    for role in (Role.DPO, Role.SIRO):
        MembershipFactory(user=author, role=role, school=None, organisation=personas.organisation)
    version = draft_pia(personas.organisation, author, school=personas.school)
    services.version_submit(version=version, actor=author)

    steps = [
        ("pia:advise", {"decision": "advise", "comments": "Mine is fine."},
         lambda: services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")),
        ("pia:decide", {"decision": "accept"},
         lambda: services.version_decide(version=version, actor=personas.headteacher, accept=True)),
        ("pia:sign", {}, lambda: services.version_sign(version=version, actor=personas.siro)),
    ]
    for name, data, someone_else in steps:
        as_user(client, author)
        response = client.post(url(name, version), data, follow=True)
        assert "someone else must make this decision" in response.content.decode()
        assert not version.decisions.filter(user=author).exists()
        someone_else()
    version.refresh_from_db()
    assert version.status == Status.SIGNED


def test_the_panel_offers_each_person_only_the_button_for_their_step(client, personas):
    version = at_stage(personas, Status.SUBMITTED)
    page = reverse("pia:version", kwargs={"pk": version.pk})
    as_user(client, personas.dpo, confirmed=False)
    assert "Give the DPO's advice" in client.get(page).content.decode()
    as_user(client, personas.siro, confirmed=False)
    content = client.get(page).content.decode()
    assert "Give the DPO's advice" not in content and "Sign as SIRO" not in content
    as_user(client, personas.office, confirmed=False)
    content = client.get(page).content.decode()
    assert "Submit to the DPO" not in content and "Waiting for the DPO" in content


def test_a_signed_pia_rejects_every_edit_through_the_step_pages(client, personas):
    version = signed_pia(personas)
    before = version.sha256
    as_user(client, personas.office, confirmed=False)
    response = client.post(reverse("pia:step", kwargs={"pk": version.pk, "step": "need"}),
                           {"aims": "Changed after signing"}, follow=True)
    assert "Nothing was saved" in response.content.decode()
    response = client.post(url("pia:submit", version), follow=True)
    assert "already been submitted" in response.content.decode()
    version.refresh_from_db()
    assert version.aims != "Changed after signing"
    assert version.sha256 == before and version.hash_verifies()


def test_versions_show_every_decision_and_whether_the_hash_verifies(client, personas):
    version = signed_pia(personas)
    as_user(client, personas.teacher, confirmed=False)
    page = client.get(reverse("pia:versions", kwargs={"pk": version.pia_id})).content.decode()
    assert "Unchanged since signing" in page and version.sha256 in page
    assert "Data Protection Officer" in page and "Senior Information Risk Owner" in page
    tamper(version, snapshot={**version.snapshot, "aims": "Tampered"})
    page = client.get(reverse("pia:versions", kwargs={"pk": version.pia_id})).content.decode()
    assert "Changed since signing" in page


def test_a_teacher_sees_only_signed_versions_in_the_list(client, personas):
    version = signed_pia(personas)
    services.version_revise(pia=version.pia, actor=personas.office)
    as_user(client, personas.teacher, confirmed=False)
    page = client.get(reverse("pia:versions", kwargs={"pk": version.pia_id})).content.decode()
    assert "Version 1" in page and "Version 2" not in page
    as_user(client, personas.office, confirmed=False)
    page = client.get(reverse("pia:versions", kwargs={"pk": version.pia_id})).content.decode()
    assert "Version 2" in page


def test_revise_through_the_page_opens_version_two_and_signing_it_supersedes_version_one(client, personas):
    first = signed_pia(personas)
    as_user(client, personas.office, confirmed=False)
    response = client.post(reverse("pia:revise", kwargs={"pk": first.pia_id}))
    second = first.pia.versions.get(number=2)
    assert response["Location"] == reverse("pia:version", kwargs={"pk": second.pk})
    services.version_submit(version=second, actor=personas.office)
    services.version_advise(version=second, actor=personas.dpo, advice="Proceed.")
    services.version_decide(version=second, actor=personas.headteacher, accept=True)
    as_user(client, personas.siro)
    client.post(url("pia:sign", second))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (Status.SUPERSEDED, Status.SIGNED)


def test_compare_shows_the_fields_that_changed_between_two_versions(client, personas):
    first = signed_pia(personas)
    second = services.version_revise(pia=first.pia, actor=personas.office)
    second.aims = "Live lessons for whole classes."
    second.save()
    as_user(client, personas.headteacher, confirmed=False)
    page = client.get(reverse("pia:compare", kwargs={"pk": first.pia_id})).content.decode()
    assert "1 field changed" in page
    assert "Live lessons with small groups of pupils." in page and "Live lessons for whole classes." in page
    assert "Benefits to individuals" not in page  # unchanged, hidden until asked for
    page = client.get(reverse("pia:compare", kwargs={"pk": first.pia_id}),
                      {"a": 1, "b": 2, "unchanged": "on"}).content.decode()
    assert "Benefits to individuals" in page


def test_compare_uses_the_stored_snapshot_of_a_signed_version(client, personas):
    first = signed_pia(personas)
    services.version_revise(pia=first.pia, actor=personas.office)
    tamper(first, aims="Not what the snapshot says")
    as_user(client, personas.headteacher, confirmed=False)
    page = client.get(reverse("pia:compare", kwargs={"pk": first.pia_id})).content.decode()
    assert "Not what the snapshot says" not in page


def test_compare_refuses_an_unknown_version_number_with_a_message(client, personas):
    first = signed_pia(personas)
    as_user(client, personas.headteacher, confirmed=False)
    response = client.get(reverse("pia:compare", kwargs={"pk": first.pia_id}), {"a": 7, "b": 1})
    assert response.status_code == 200 and "Choose two versions" in response.content.decode()


def test_the_steps_read_in_the_forms_order_whatever_order_the_stored_snapshot_keeps():
    from pia.questions import SCREENING
    from pia.views_workflow import sections_of

    snapshot = {"screening": {q.key: {"question": q.text, "answer": "no", "note": ""} for q in reversed(SCREENING)},
                "review_on": "2027-09-01", "decisions": [
                    {"kind": "dpo_advice", "name": "A DPO", "role": "Data Protection Officer", "comments": "Go.",
                     "step_comments": {}, "decided_at": "2026-11-02T09:30:00+00:00", "sha256": "ab" * 32}]}
    sections = {section.key: section for section in sections_of(snapshot)}
    assert [f.label for f in sections["screening"].fields] == [q.text for q in SCREENING]
    assert sections["header"].fields[2].text == "1 Sep 2027"
    assert "A DPO (Data Protection Officer), 2 Nov 2026 09:30" in sections["signoff"].fields[0].text
