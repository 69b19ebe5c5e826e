"""The sign-off services: submit, advise or request changes, decide, sign, revise — the roles, the "nobody decides
on their own PIA" rule, the recorded decisions and their hashes, and the frozen signed version."""

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction

from pia import services
from pia.models import Decision, FrozenError, PiaVersion, PrivacyRisk
from pia.snapshot import content_of, snapshot_of
from riskassess.matrix import STANDARD_5X5
from riskassess.models import RiskMatrix
from schools.audit import AuditEntry
from schools.models import Role
from tests.factories import MembershipFactory, SchoolFactory, TOTPDeviceFactory, UserFactory
from tests.pia.matrix_workflow import at_stage
from tests.pia.pia_setup import draft_pia
from tests.pia.pia_signed import signed_pia

pytestmark = pytest.mark.django_db
Status = PiaVersion.Status


def tamper(version: PiaVersion, **fields) -> None:
    """Write straight to the table, as someone with database access could, past the model's guards."""
    PiaVersion._base_manager.filter(pk=version.pk).update(**fields)


def test_signed_pia_helper_signs_through_the_services(personas):
    version = signed_pia(personas)
    assert version.status == Status.SIGNED
    assert version.hash_verifies()
    assert list(version.decisions.values_list("kind", flat=True)) == [
        Decision.Kind.DPO_ADVICE, Decision.Kind.CONTROLLER_ACCEPTED, Decision.Kind.SIRO_SIGNED]


def test_submitting_an_incomplete_pia_lists_everything_missing_and_changes_nothing(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    version.screening = {}
    version.aims = ""
    version.save()
    version.risks.update(solution="", result="")
    with pytest.raises(ValidationError) as error:
        services.version_submit(version=version, actor=personas.office)
    text = " ".join(error.value.messages)
    assert "screening question" in text
    assert "aims" in text
    assert "risk 1" in text and "has no solution" in text and "has no result" in text
    version.refresh_from_db()
    assert version.status == Status.DRAFT and version.submitted_by is None


def test_a_pia_without_any_risk_cannot_be_submitted(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    version.risks.all().delete()
    with pytest.raises(ValidationError, match="no privacy risk"):
        services.version_submit(version=version, actor=personas.office)


def test_submitting_freezes_the_version_and_records_who_submitted_it(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    services.version_submit(version=version, actor=personas.office)
    version.refresh_from_db()
    assert version.status == Status.SUBMITTED
    assert version.submitted_by == personas.office and version.submitted_at is not None
    with pytest.raises(FrozenError):
        PrivacyRisk.objects.filter(version=version).update(solution="Changed after submitting")
    assert AuditEntry.objects.filter(action="pia.submitted").count() == 1


@pytest.mark.parametrize("persona", ["teacher", "dpo", "siro", "org_admin", "other_teacher"])
def test_only_the_headteacher_or_office_of_the_school_submits(personas, persona):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    with pytest.raises(PermissionDenied):
        services.version_submit(version=version, actor=getattr(personas, persona))


def test_each_decision_records_the_name_and_role_at_the_time_and_the_hash_of_the_content(personas):
    version = at_stage(personas, Status.SUBMITTED)
    expected = PiaVersion.hash_of(content_of(snapshot_of(version)))
    decision = services.version_advise(version=version, actor=personas.dpo, advice="Proceed.",
                                       step_comments={"risks": "Fine.", "flows": "  "})
    assert decision.user == personas.dpo
    assert decision.name == personas.dpo.get_full_name()
    assert decision.role == "Data Protection Officer"
    assert decision.sha256 == expected
    assert decision.step_comments == {"risks": "Fine."}
    personas.dpo.first_name = "Renamed"
    personas.dpo.save()
    decision.refresh_from_db()
    assert decision.name != personas.dpo.get_full_name()


def test_step_comments_must_name_steps_of_the_form(personas):
    version = at_stage(personas, Status.SUBMITTED)
    with pytest.raises(ValidationError, match="Unknown steps"):
        services.version_advise(version=version, actor=personas.dpo, advice="Proceed.",
                                step_comments={"nonsense": "x"})


def test_advice_needs_words(personas):
    version = at_stage(personas, Status.SUBMITTED)
    with pytest.raises(ValidationError):
        services.version_advise(version=version, actor=personas.dpo, advice="   ")
    version.refresh_from_db()
    assert version.status == Status.SUBMITTED and not version.decisions.exists()


def test_changes_requested_return_the_version_to_its_author_who_edits_and_resubmits(personas):
    version = at_stage(personas, Status.SUBMITTED)
    services.version_request_changes(version=version, actor=personas.dpo, comments="",
                                     step_comments={"flows": "Say when recordings are deleted."})
    version.refresh_from_db()
    assert version.status == Status.CHANGES_REQUESTED and version.is_editable
    assert services.changes_requested(version).step_comments == {"flows": "Say when recordings are deleted."}
    version.deletion = "Recordings are deleted after 30 days."
    version.save()
    services.version_submit(version=version, actor=personas.office)
    version.refresh_from_db()
    assert version.status == Status.SUBMITTED
    assert services.changes_requested(version) is None


def test_changes_cannot_be_requested_without_saying_what(personas):
    version = at_stage(personas, Status.SUBMITTED)
    with pytest.raises(ValidationError):
        services.version_request_changes(version=version, actor=personas.dpo, comments="", step_comments={})


def test_overruling_the_advice_needs_written_reasons(personas):
    version = at_stage(personas, Status.ADVISED)
    with pytest.raises(ValidationError, match="reasons"):
        services.version_decide(version=version, actor=personas.headteacher, accept=False, reasons=" ")
    decision = services.version_decide(version=version, actor=personas.headteacher, accept=False,
                                       reasons="The school needs live lessons now; we accept the residual risk.")
    assert decision.kind == Decision.Kind.CONTROLLER_OVERRULED
    assert decision.role == "Headteacher (data controller)"
    assert AuditEntry.objects.filter(action="pia.controller_overruled").count() == 1


@pytest.mark.parametrize(("stage", "service", "wrong"), [
    (Status.SUBMITTED, "advise", ["headteacher", "siro", "office", "org_admin"]),
    (Status.ADVISED, "decide", ["dpo", "siro", "office", "teacher", "org_admin"]),
    (Status.DECIDED, "sign", ["dpo", "headteacher", "office", "org_admin"]),
])
def test_each_decision_belongs_to_one_role(personas, stage, service, wrong):
    version = at_stage(personas, stage)
    calls = {
        "advise": lambda actor: services.version_advise(version=version, actor=actor, advice="Proceed."),
        "decide": lambda actor: services.version_decide(version=version, actor=actor, accept=True),
        "sign": lambda actor: services.version_sign(version=version, actor=actor),
    }
    for persona in wrong:
        with pytest.raises(PermissionDenied):
            calls[service](getattr(personas, persona))
    version.refresh_from_db()
    assert version.status == stage


def test_decisions_happen_only_in_order(personas):
    version = at_stage(personas, Status.SUBMITTED)
    with pytest.raises(ValidationError):
        services.version_decide(version=version, actor=personas.headteacher, accept=True)
    with pytest.raises(ValidationError):
        services.version_sign(version=version, actor=personas.siro)


def _author_with_every_role(personas):
    """An author who is also the organisation's DPO and SIRO, and the school's headteacher."""
    author = UserFactory()
    TOTPDeviceFactory(user=author)
    MembershipFactory(user=author, role=Role.HEADTEACHER, school=personas.school, organisation=personas.organisation)
    for role in (Role.DPO, Role.SIRO):
        MembershipFactory(user=author, role=role, school=None, organisation=personas.organisation)
    return author


def test_the_author_cannot_advise_decide_or_sign_their_own_pia_even_holding_the_roles(personas):
    author = _author_with_every_role(personas)
    version = draft_pia(personas.organisation, author, school=personas.school)
    services.version_submit(version=version, actor=author)
    with pytest.raises(PermissionDenied, match="someone else"):
        services.version_advise(version=version, actor=author, advice="Fine by me.")
    services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")
    with pytest.raises(PermissionDenied, match="someone else"):
        services.version_decide(version=version, actor=author, accept=True)
    services.version_decide(version=version, actor=personas.headteacher, accept=True)
    with pytest.raises(PermissionDenied, match="someone else"):
        services.version_sign(version=version, actor=author)
    services.version_sign(version=version, actor=personas.siro)
    assert author.pk not in version.decisions.values_list("user", flat=True)


def test_whoever_submitted_a_version_cannot_decide_on_it_either(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    services.version_submit(version=version, actor=personas.headteacher)
    services.version_advise(version=version, actor=personas.dpo, advice="Proceed.")
    with pytest.raises(PermissionDenied):
        services.version_decide(version=version, actor=personas.headteacher, accept=True)


def test_an_organisation_wide_pia_is_decided_by_a_headteacher_of_every_school_only(personas):
    second = SchoolFactory(organisation=personas.organisation, name="Dhoon Test School")
    head_of_second = UserFactory()
    MembershipFactory(user=head_of_second, role=Role.HEADTEACHER, school=second, organisation=personas.organisation)
    version = at_stage(personas, Status.ADVISED, organisation_wide=True)
    for head in (personas.headteacher, head_of_second):
        with pytest.raises(PermissionDenied, match="every school"):
            services.version_decide(version=version, actor=head, accept=True)
    executive = UserFactory()
    for school in (personas.school, second):
        MembershipFactory(user=executive, role=Role.HEADTEACHER, school=school, organisation=personas.organisation)
    services.version_decide(version=version, actor=executive, accept=True)
    version.refresh_from_db()
    assert version.status == Status.DECIDED


def test_signing_stores_the_snapshot_with_every_decision_and_its_hash(personas):
    version = signed_pia(personas)
    assert version.signed_at == version.decisions.get(kind=Decision.Kind.SIRO_SIGNED).decided_at
    assert [d["kind"] for d in version.snapshot["decisions"]] == [
        "dpo_advice", "controller_accepted", "siro_signed"]
    assert version.sha256 == PiaVersion.hash_of(version.snapshot)
    # Every decision was made on the same content, which is what the signed snapshot holds.
    assert set(version.decisions.values_list("sha256", flat=True)) == {
        PiaVersion.hash_of(content_of(version.snapshot))}
    assert AuditEntry.objects.filter(action="pia.siro_signed").get().data["sha256"] == version.sha256


def test_a_signed_version_rejects_every_edit(personas):
    version = signed_pia(personas)
    version.aims = "Changed after signing"
    with pytest.raises(FrozenError):
        version.save()
    with pytest.raises(FrozenError):
        PrivacyRisk.objects.filter(version=version).update(solution="Changed")
    risk = version.risks.get()
    risk.solution = "Changed"
    with pytest.raises(FrozenError):
        risk.save()
    with pytest.raises(FrozenError):
        risk.delete()
    with pytest.raises(FrozenError):
        version.decisions.first().delete()
    version.refresh_from_db()
    assert version.aims != "Changed after signing" and version.hash_verifies()


def test_the_hash_fails_once_the_stored_snapshot_is_tampered_with(personas):
    version = signed_pia(personas)
    tampered = {**version.snapshot, "aims": "Something nobody signed."}
    with transaction.atomic():
        tamper(version, snapshot=tampered)
    version.refresh_from_db()
    assert not version.hash_verifies()


def test_revising_a_signed_pia_starts_version_two_with_its_answers_and_rows(personas):
    signed = signed_pia(personas)
    draft = services.version_revise(pia=signed.pia, actor=personas.office)
    assert (draft.number, draft.status, draft.created_by) == (2, Status.DRAFT, personas.office)
    assert draft.aims == signed.aims and draft.screening == signed.screening
    assert draft.data_items.count() == signed.data_items.count() == 1
    assert list(draft.risks.values_list("privacy_issue", "likelihood", "severity", "rating", "solution")) == list(
        signed.risks.values_list("privacy_issue", "likelihood", "severity", "rating", "solution"))
    assert draft.actions.get().action == signed.actions.get().action
    assert draft.consultations.count() == 1
    # While the draft is open, revising again returns it.
    assert services.version_revise(pia=signed.pia, actor=personas.headteacher) == draft
    signed.refresh_from_db()
    assert signed.status == Status.SIGNED


def test_revising_rescores_the_risks_on_the_organisations_current_matrix(personas):
    signed = signed_pia(personas)  # scored 2 × 2 on the seed's 3×3 matrix
    RiskMatrix.objects.create(organisation=personas.organisation, definition=STANDARD_5X5.as_dict())
    draft = services.version_revise(pia=signed.pia, actor=personas.office)
    risk = draft.risks.get()
    assert draft.get_matrix().size == 5
    assert (risk.likelihood, risk.severity) == (3, 3)
    assert risk.rating == STANDARD_5X5.rating(3, 3)
    assert signed.get_matrix().size == 3 and signed.risks.get().likelihood == 2


def test_signing_version_two_supersedes_version_one(personas):
    first = signed_pia(personas)
    second = services.version_revise(pia=first.pia, actor=personas.office)
    services.version_submit(version=second, actor=personas.office)
    services.version_advise(version=second, actor=personas.dpo, advice="Proceed.")
    services.version_decide(version=second, actor=personas.headteacher, accept=True)
    services.version_sign(version=second, actor=personas.siro)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (Status.SUPERSEDED, Status.SIGNED)
    assert first.hash_verifies() and second.hash_verifies()
    assert AuditEntry.objects.filter(action="pia.siro_signed").order_by("-seq").first().data["superseded"] == 1


def test_only_a_signed_pia_can_be_revised(personas):
    version = draft_pia(personas.organisation, personas.office, school=personas.school)
    version.status = Status.SUPERSEDED
    PiaVersion.objects.filter(pk=version.pk).update(status=Status.SUPERSEDED)
    with pytest.raises(ValidationError, match="signed"):
        services.version_revise(pia=version.pia, actor=personas.office)


def test_a_review_date_in_the_past_is_kept_on_the_revision_for_the_author_to_change(personas):
    with time_machine.travel(dt.datetime(2019, 6, 1, 12, tzinfo=dt.UTC)):
        signed = signed_pia(personas, review_on=dt.date(2020, 1, 1))
    draft = services.version_revise(pia=signed.pia, actor=personas.office)
    assert draft.review_on == dt.date(2020, 1, 1)
    with pytest.raises(ValidationError, match="review date"):
        services.version_submit(version=draft, actor=personas.office)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_dpos_advising_at_once_leave_one_decision(personas):
    import threading

    second_dpo = UserFactory()
    MembershipFactory(user=second_dpo, role=Role.DPO, school=None, organisation=personas.organisation)
    version = at_stage(personas, Status.SUBMITTED)
    results, barrier = [], threading.Barrier(2)

    def advise(actor):
        barrier.wait()
        try:
            services.version_advise(version=version, actor=actor, advice=f"Advice of {actor.pk}")
            results.append("ok")
        except ValidationError:
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=advise, args=(actor,)) for actor in (personas.dpo, second_dpo)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok", "refused"]
    assert version.decisions.count() == 1
