"""The PIA's sign-off chain: submit, the DPO's advice (or changes requested), the data controller's decision,
the SIRO's signature, and the next version after a signed one.

Each is a keyword-only function in one transaction that locks the version first, so two people acting on the
same version at once queue up and the second sees the first's result. Every decision is a `Decision` row with
the decider's name and role as they were, the time, and the SHA-256 of the content decided on
(`content_of(snapshot_of(version))`). Nobody decides on a version they wrote (created, edited or submitted, as the
audit trail shows), and the three signatures (advice, the controller's decision, the SIRO's) come from three
different accounts. Each stage that
leaves a version waiting for someone emails them once (`Notification`), from inside the same transaction
through the outbox, so the email goes only if the stage really happened.

The pages ask the user to confirm it's them before each decision (`accounts.reauth`); these functions check
the roles again, since they are the only way a decision is recorded.
"""

import zoneinfo
from collections.abc import Iterable
from functools import partial

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from outbox.services import email_queue
from riskassess.models import matrix_for
from schools.audit import AuditEntry, audit_log
from schools.models import Role
from schools.scope import StaffScope, build_scope

from .editing import may_author  # the one rule for who writes a PIA
from .models import (
    Action,
    Consultation,
    DataItem,
    Decision,
    Notification,
    Pia,
    PiaVersion,
    PrivacyRisk,
    SeenSnapshot,
)
from .questions import PRINCIPLE_QUESTIONS, STEP_KEYS, STEPS, screening_complete
from .snapshot import STEP_FIELDS, content_of, snapshot_of

Status = PiaVersion.Status
Kind = Decision.Kind

DPO_ROLES = frozenset({Role.DPO})
CONTROLLER_ROLES = frozenset({Role.HEADTEACHER})
SIRO_ROLES = frozenset({Role.SIRO})

# The version fields a revision copies from the signed version (everything the author writes).
COPIED_FIELDS = (
    "division", "lead_officer", "review_on", "screening", "aims", "benefits_organisation", "benefits_individuals",
    "benefits_others", "related_documents", "need_reason", "collection", "use", "deletion", "flow_description",
    "risks_identified", "risks_addressed", "internal_consultees", "external_consultees", "consultation_method",
    "contact_point", "principles",
)
ROW_FIELDS = {
    DataItem: ("position", "data_type", "examples", "platform_uses"),
    Consultation: ("position", "kind", "held_on", "description"),
    PrivacyRisk: ("position", "privacy_issue", "risk_to_individuals", "compliance_risk", "organisational_risk",
                  "likelihood", "severity", "solution", "result", "evaluation"),
    Action: ("position", "action", "due_on", "due_note", "responsibility", "responsible_user"),
}

# The longest text a decision takes (the advice, each step's comment, the controller's reasons).
TEXT_LIMIT = 20_000

# The audit actions by which someone writes a version: whoever did any of these is one of its authors.
AUTHOR_ACTIONS = ("pia.created", "pia.step_saved", "pia.row_saved", "pia.row_removed", "pia.rows_reordered",
                  "pia.submitted", "pia.revision_started")

# The three signatures, each by its own account: the DPO's (advice, or changes requested, maybe over several
# rounds), the data controller's and the SIRO's.
SIGNATURES = {
    "advice": (Kind.DPO_ADVICE, Kind.CHANGES_REQUESTED),
    "controller": (Kind.CONTROLLER_ACCEPTED, Kind.CONTROLLER_OVERRULED),
    "siro": (Kind.SIRO_SIGNED,),
}

# What the emails say each stage waits for.
STAGE_WAITING = {
    Status.SUBMITTED: "waits for your advice as Data Protection Officer",
    Status.CHANGES_REQUESTED: "has come back to you with changes requested by the Data Protection Officer",
    Status.ADVISED: "waits for your decision as data controller",
    Status.DECIDED: "waits for your signature as Senior Information Risk Owner",
}


# --- Who may do what -----------------------------------------------------------------------------------------


def controller_roles(scope: StaffScope, pia: Pia) -> frozenset[str]:
    """The headteacher of the PIA's school; for an organisation-wide PIA, a headteacher of every school."""
    if pia.school_id:
        return scope.roles_at_school(pia.school_id) & CONTROLLER_ROLES
    return scope.roles_for_whole_organisation(pia.organisation_id) & CONTROLLER_ROLES


def may_advise(scope: StaffScope, pia: Pia) -> bool:
    return bool(scope.roles_by_organisation.get(pia.organisation_id, frozenset()) & DPO_ROLES)


def may_decide(scope: StaffScope, pia: Pia) -> bool:
    return bool(controller_roles(scope, pia))


def may_sign(scope: StaffScope, pia: Pia) -> bool:
    return bool(scope.roles_by_organisation.get(pia.organisation_id, frozenset()) & SIRO_ROLES)


def version_authors(version: PiaVersion) -> set[int]:
    """Everyone who wrote this version: who created it, edited a step or a row of it, or submitted it (in any
    round), from the audit trail — the editing and sign-off services record the PIA as the object and the
    version's number in the data — with its `created_by` and `submitted_by`. One query."""
    actors = AuditEntry.objects.filter(
        object_type=Pia._meta.label_lower, object_id=str(version.pia_id), data__version=version.number,
        action__in=AUTHOR_ACTIONS, actor_kind=AuditEntry.ActorKind.STAFF,
    ).values_list("actor_id", flat=True).distinct()
    return ({*actors, version.created_by_id, version.submitted_by_id}) - {None}


def is_own_version(user, version: PiaVersion) -> bool:
    """An author of the version (who created, edited or submitted it) never decides on it."""
    return user.pk in version_authors(version)


OWN_VERSION_MESSAGE = ("You created, edited or submitted this version of the PIA: someone else must make this "
                       "decision, so that nobody signs off their own assessment.")
SEPARATE_MESSAGE = ("You already made a decision on this version ({earlier}): the DPO's advice, the data "
                    "controller's decision and the SIRO's signature must come from three different people.")


def refusal_for(user, version: PiaVersion, signature: str) -> str | None:
    """Why `user` may not make the `signature` ("advice", "controller" or "siro") on `version` even holding the
    role — they wrote it, or they made one of its other two signatures — or None."""
    if is_own_version(user, version):
        return OWN_VERSION_MESSAGE
    others = [kind for key, kinds in SIGNATURES.items() if key != signature for kind in kinds]
    earlier = version.decisions.filter(user_id=user.pk, kind__in=others).order_by("decided_at", "id").first()
    if earlier is not None:
        return SEPARATE_MESSAGE.format(earlier=earlier.get_kind_display().lower())
    return None


def _require(allowed: bool, message: str) -> None:
    if not allowed:
        raise PermissionDenied(message)


def _require_separate(actor, version: PiaVersion, signature: str) -> None:
    refusal = refusal_for(actor, version, signature)
    if refusal:
        raise PermissionDenied(refusal)


def local_today(pia: Pia):
    """Today in the PIA's school's time zone (its organisation's for an organisation-wide PIA)."""
    zone = pia.school.time_zone if pia.school_id else pia.organisation.time_zone
    return timezone.localtime(timezone.now(), zoneinfo.ZoneInfo(zone)).date()


def _review_in_date(version: PiaVersion) -> bool:
    return version.review_on is not None and version.review_on > local_today(version.pia)


# --- Completeness ----------------------------------------------------------------------------------------------


def missing_for_submit(version: PiaVersion) -> list[str]:
    """What the author still has to fill in before the DPO can advise, in the form's order (empty: complete)."""
    missing: list[str] = []
    if not version.lead_officer.strip():
        missing.append("The lead / contact officer is not named.")
    if version.review_on is None:
        missing.append("The review date is not set.")
    elif not _review_in_date(version):
        missing.append(f"The review date ({date_format(version.review_on, 'j M Y')}) must be after today: set the "
                       "date of the next review.")
    if not screening_complete(version.screening):
        missing.append("Not every screening question is answered yes or no.")
    if not version.aims.strip():
        missing.append("Step 1: what the project aims to achieve is empty.")
    if not version.need_reason.strip():
        missing.append("Step 1: why the need for a PIA was identified is empty.")
    if not version.data_items.exists():
        missing.append("Step 1: the data inventory has no row.")
    for name, label in (("collection", "collection"), ("use", "use"), ("deletion", "deletion")):
        if not getattr(version, name).strip():
            missing.append(f"Step 2: the {label} of the information is not described.")
    if not (version.internal_consultees.strip() or version.external_consultees.strip()
            or version.consultations.exists()):
        missing.append("Consultation: nobody consulted is recorded.")
    risks = list(version.risks.order_by("position", "id"))
    if not risks:
        missing.append("Step 3: no privacy risk is identified.")
    for number, risk in enumerate(risks, start=1):
        if not risk.solution.strip():
            missing.append(f"Step 4: risk {number} (“{risk.privacy_issue[:60]}”) has no solution.")
        if not risk.result:
            missing.append(f"Step 4: risk {number} (“{risk.privacy_issue[:60]}”) has no result "
                           "(eliminated, reduced or accepted).")
    if not version.actions.exists():
        missing.append("Step 6: the action plan has no action.")
    unanswered = [q for q in PRINCIPLE_QUESTIONS if not str(version.principles.get(q.key, "")).strip()]
    if unanswered:
        missing.append(f"GDPR principles: {len(unanswered)} question{'s' if len(unanswered) != 1 else ''} "
                       "not answered.")
    return missing


# --- Helpers ---------------------------------------------------------------------------------------------------


def _locked(version: PiaVersion) -> PiaVersion:
    """The version, locked for the rest of the transaction (its PIA loaded after, outside the lock's join)."""
    version = PiaVersion.objects.select_for_update().order_by().get(pk=version.pk)
    version.pia = Pia.objects.select_related("organisation", "school").get(pk=version.pia_id)
    return version


def _require_status(version: PiaVersion, allowed: Iterable[str], message: str) -> None:
    if version.status not in tuple(allowed):
        raise ValidationError(message)


def _name(user) -> str:
    return user.get_full_name() or user.get_username()


def _content_hash(version: PiaVersion) -> str:
    return PiaVersion.hash_of(content_of(snapshot_of(version)))


def _limited(text: str, label: str) -> str:
    if len(text) > TEXT_LIMIT:
        raise ValidationError(f"{label} can be at most {TEXT_LIMIT:,} characters (it has {len(text):,}).")
    return text


def _clean_step_comments(step_comments: dict | None) -> dict[str, str]:
    comments = {key: str(text).strip() for key, text in (step_comments or {}).items()}
    unknown = set(comments) - set(STEP_KEYS)
    if unknown:
        raise ValidationError(f"Unknown steps: {', '.join(sorted(unknown))}.")
    titles = {step.key: step.title for step in STEPS}
    return {key: _limited(comments[key], f"The comment on “{titles[key]}”") for key in STEP_KEYS
            if comments.get(key)}


# Left out of "what changed": the decisions are each version's own record, and the number of children affected
# is counted from the registry, so it moves with every admission without anyone changing the PIA.
UNCOMPARED = frozenset({"decisions", "number_affected"})


def step_hashes_of(content: dict) -> dict[str, str]:
    """{step key: SHA-256 of what the step says} for a snapshot's content (the DPO's "changed since")."""
    return {step.key: PiaVersion.hash_of({name: content.get(name) for name in STEP_FIELDS[step.key]
                                          if name not in UNCOMPARED})
            for step in STEPS}


def version_step_hashes(version: PiaVersion) -> dict[str, str]:
    """The step hashes stored at submission (the content is frozen from then), else computed now."""
    if version.step_hashes and not version.is_editable:
        return version.step_hashes
    return step_hashes_of(content_of(version.snapshot or snapshot_of(version)))


def changed_steps(seen: dict, hashes: dict[str, str]) -> list[str]:
    """The keys of the steps that differ between content seen earlier (a `SeenSnapshot.snapshot`) and `hashes`."""
    before = step_hashes_of(seen)
    return [key for key in STEP_KEYS if before.get(key) != hashes.get(key)]


def _decide(version: PiaVersion, *, kind: str, actor, role: str, comments: str = "",
            step_comments: dict | None = None) -> Decision:
    return Decision.objects.create(
        version=version, kind=kind, user=actor, name=_name(actor), role=role, comments=comments,
        step_comments=step_comments or {}, decided_at=timezone.now(), sha256=_content_hash(version),
    )


def _audit(actor, action: str, version: PiaVersion, **data) -> None:
    pia = version.pia
    audit_log(actor=actor, action=action, obj=pia, school=pia.school, organisation=pia.organisation,
              data={"version": version.number, **data})


def _round(version: PiaVersion) -> int:
    """Which pass through sign-off this is: one more each time the DPO sent the version back."""
    return version.decisions.filter(kind=Kind.CHANGES_REQUESTED).count() + 1


# --- Notifications ---------------------------------------------------------------------------------------------


def _active(users) -> list:
    seen, found = set(), []
    for user in users:
        if user is not None and user.is_active and user.email and user.pk not in seen:
            seen.add(user.pk)
            found.append(user)
    return found


def _organisation_role_holders(pia: Pia, role: str) -> list:
    User = get_user_model()
    return list(User.objects.filter(memberships__role=role, memberships__organisation_id=pia.organisation_id,
                                    memberships__school__isnull=True).distinct().order_by("pk"))


def _controllers(pia: Pia) -> list:
    User = get_user_model()
    candidates = User.objects.filter(memberships__role=Role.HEADTEACHER,
                                     memberships__organisation_id=pia.organisation_id).distinct().order_by("pk")
    return [user for user in candidates if may_decide(build_scope(user), pia)]


def _authors(version: PiaVersion) -> list:
    """Whom "changes requested" and "signed" go back to: who submitted the version and who created it."""
    return [version.submitted_by, version.created_by]


def recipients_for(version: PiaVersion, stage: str) -> list:
    """Who a version at `stage` waits for (or, once signed, whom to tell): never the author for a decision."""
    pia = version.pia
    if stage == Status.SUBMITTED:
        users = _organisation_role_holders(pia, Role.DPO)
    elif stage == Status.ADVISED:
        users = _controllers(pia)
    elif stage == Status.DECIDED:
        users = _organisation_role_holders(pia, Role.SIRO)
    else:  # changes requested, signed: back to the author
        return _active(_authors(version))
    excluded = version_authors(version)
    if stage != Status.SUBMITTED:  # the DPO's round may come back to them; the later signatures may not
        excluded |= set(version.decisions.values_list("user_id", flat=True))
    return _active(user for user in users if user.pk not in excluded)


def _link_path(version: PiaVersion, stage: str) -> str:
    if stage == Status.SUBMITTED:
        return reverse("pia:advise", kwargs={"pk": version.pk})
    if stage == Status.ADVISED:
        return reverse("pia:decide", kwargs={"pk": version.pk})
    if stage == Status.DECIDED:
        return reverse("pia:sign", kwargs={"pk": version.pk})
    return version_page_path(version)


def version_page_path(version: PiaVersion) -> str:
    """The version's own page (the PIA pages' overview), or its versions list if that page is not there."""
    from django.urls import NoReverseMatch

    try:
        return reverse("pia:version", kwargs={"pk": version.pk})
    except NoReverseMatch:
        return reverse("pia:versions", kwargs={"pk": version.pia_id})


def notification_send(*, version: PiaVersion, stage: str, round: int) -> int:
    """Email everyone `version` now waits for at `stage` (or the author, once signed), once per version, stage
    and round; returns how many emails were queued (0 if this stage was already notified).

    Called inside the transaction of the service that moved the version, so the emails leave only after it
    commits; the unique `Notification` row makes a repeated call harmless."""
    with transaction.atomic():
        _, created = Notification.objects.get_or_create(version=version, stage=stage, round=round,
                                                        defaults={"sent_at": timezone.now()})
        if not created:
            return 0
        pia = version.pia
        recipients = recipients_for(version, stage)
        template = "pia-signed" if stage == Status.SIGNED else "pia-waiting"
        comments = _latest(version, Kind.CHANGES_REQUESTED) if stage == Status.CHANGES_REQUESTED else None
        titles = {step.key: step.title for step in STEPS}
        step_comments = [(titles[key], text) for key, text in (comments.step_comments if comments else {}).items()]
        for user in recipients:
            email_queue(
                template=template, to=user.email, school=pia.school, organisation=pia.organisation, related=pia,
                context={
                    "recipient": user, "pia": pia, "version": version, "stage": stage,
                    "waiting": STAGE_WAITING.get(stage, ""), "link_path": _link_path(version, stage),
                    "comments": comments, "step_comments": step_comments, "round": round,
                },
            )
        _audit(None, "pia.notification_sent", version, stage=stage, round=round,
               recipients=[user.pk for user in recipients])
        return len(recipients)


def _latest(version: PiaVersion, *kinds: str) -> Decision | None:
    return version.decisions.filter(kind__in=kinds).order_by("-decided_at", "-id").first()


# --- The chain -------------------------------------------------------------------------------------------------


def version_submit(*, version: PiaVersion, actor) -> PiaVersion:
    """The author hands a complete draft (or a version with changes done) to the DPO; it is frozen from now."""
    with transaction.atomic():
        version = _locked(version)
        _require(may_author(build_scope(actor), version.pia),
                 "Only the headteacher or the office of the school can submit this PIA.")
        _require_status(version, PiaVersion.EDITABLE, "This version has already been submitted.")
        missing = missing_for_submit(version)
        if missing:
            raise ValidationError(["This PIA is not complete yet:", *missing])
        resubmitted = version.status == Status.CHANGES_REQUESTED
        version.status, version.submitted_at, version.submitted_by = Status.SUBMITTED, timezone.now(), actor
        # Frozen from now: what each step says is hashed once, for the DPO's "what changed since".
        version.step_hashes = step_hashes_of(content_of(snapshot_of(version)))
        version.save(update_fields=["status", "submitted_at", "submitted_by", "step_hashes"])
        round_ = _round(version)
        _audit(actor, "pia.submitted", version, round=round_, resubmitted=resubmitted)
        notification_send(version=version, stage=Status.SUBMITTED, round=round_)
    return version


def version_advise(*, version: PiaVersion, actor, advice: str, step_comments: dict | None = None) -> Decision:
    """The DPO's advice on a submitted version: it goes on to the data controller."""
    advice = (advice or "").strip()
    with transaction.atomic():
        version = _locked(version)
        _require(may_advise(build_scope(actor), version.pia), "Only the organisation's DPO can advise on a PIA.")
        _require_separate(actor, version, "advice")
        _require_status(version, [Status.SUBMITTED], "Only a version waiting for the DPO can be advised on.")
        if not advice:
            raise ValidationError("Write your advice: the data controller decides on it.")
        _limited(advice, "Your advice")
        comments = _clean_step_comments(step_comments)
        decision = _decide(version, kind=Kind.DPO_ADVICE, actor=actor, role=Role.DPO.label, comments=advice,
                           step_comments=comments)
        version.status = Status.ADVISED
        version.save(update_fields=["status"])
        _audit(actor, "pia.dpo_advised", version, decision=decision.pk, sha256=decision.sha256,
               steps_commented=sorted(comments))
        notification_send(version=version, stage=Status.ADVISED, round=_round(version))
    return decision


def version_request_changes(*, version: PiaVersion, actor, comments: str,
                            step_comments: dict | None = None) -> Decision:
    """The DPO sends a submitted version back to its author with comments; the author edits and resubmits."""
    comments = (comments or "").strip()
    with transaction.atomic():
        version = _locked(version)
        _require(may_advise(build_scope(actor), version.pia),
                 "Only the organisation's DPO can request changes to a PIA.")
        _require_separate(actor, version, "advice")
        _require_status(version, [Status.SUBMITTED], "Only a version waiting for the DPO can be sent back.")
        _limited(comments, "Your comments")
        steps = _clean_step_comments(step_comments)
        if not comments and not steps:
            raise ValidationError("Say what should change: a comment, or a comment on a step.")
        decision = _decide(version, kind=Kind.CHANGES_REQUESTED, actor=actor, role=Role.DPO.label,
                           comments=comments, step_comments=steps)
        version.status = Status.CHANGES_REQUESTED
        version.save(update_fields=["status"])
        round_ = _round(version) - 1  # this request closed the round it was made in
        _audit(actor, "pia.changes_requested", version, decision=decision.pk, round=round_,
               steps_commented=sorted(steps))
        notification_send(version=version, stage=Status.CHANGES_REQUESTED, round=round_)
    return decision


def version_decide(*, version: PiaVersion, actor, accept: bool, reasons: str = "") -> Decision:
    """The data controller accepts the DPO's advice, or overrules it with written reasons."""
    reasons = (reasons or "").strip()
    with transaction.atomic():
        version = _locked(version)
        _require(may_decide(build_scope(actor), version.pia),
                 "Only the headteacher of the school (for a PIA of the whole organisation, a headteacher of every "
                 "school) decides as data controller.")
        _require_separate(actor, version, "controller")
        _require_status(version, [Status.ADVISED], "Only a version with the DPO's advice can be decided on.")
        if not accept and not reasons:
            raise ValidationError("Overruling the DPO's advice needs your reasons in writing.")
        _limited(reasons, "Your reasons")
        kind = Kind.CONTROLLER_ACCEPTED if accept else Kind.CONTROLLER_OVERRULED
        decision = _decide(version, kind=kind, actor=actor, role=f"{Role.HEADTEACHER.label} (data controller)",
                           comments=reasons)
        version.status = Status.DECIDED
        version.save(update_fields=["status"])
        _audit(actor, "pia.controller_accepted" if accept else "pia.controller_overruled", version,
               decision=decision.pk, sha256=decision.sha256)
        notification_send(version=version, stage=Status.DECIDED, round=_round(version))
    return decision


def version_sign(*, version: PiaVersion, actor) -> PiaVersion:
    """The SIRO signs: the version is frozen with its snapshot (all decisions included) and SHA-256, and the
    version signed before it is superseded."""
    with transaction.atomic():
        version = _locked(version)
        pia = version.pia
        _require(may_sign(build_scope(actor), pia), "Only the organisation's SIRO signs a PIA.")
        _require_separate(actor, version, "siro")
        _require_status(version, [Status.DECIDED], "Only a version the data controller decided on can be signed.")
        # Out of date once its review day has passed (the day itself is still in date, as for the platforms).
        if version.review_on is None or version.review_on < local_today(pia):
            when = date_format(version.review_on, "j M Y") if version.review_on else "not set"
            raise ValidationError(f"This version's review date ({when}) has passed: an out-of-date PIA cannot be "
                                  "signed.")
        previous = (PiaVersion.objects.select_for_update().filter(pia=pia, status=Status.SIGNED)
                    .exclude(pk=version.pk).order_by("pk").first())
        if previous is not None:
            previous.status = Status.SUPERSEDED
            previous.save(update_fields=["status"])
        decision = _decide(version, kind=Kind.SIRO_SIGNED, actor=actor,
                           role=Role.SIRO.label)
        version.status, version.signed_at = Status.SIGNED, decision.decided_at
        version.snapshot = snapshot_of(version)
        version.sha256 = PiaVersion.hash_of(version.snapshot)
        version.save(update_fields=["status", "signed_at", "snapshot", "sha256"])
        _audit(actor, "pia.siro_signed", version, decision=decision.pk, sha256=version.sha256,
               superseded=previous.number if previous else None)
        notification_send(version=version, stage=Status.SIGNED, round=_round(version))
        # The PDF to file is rendered by a worker once the signature is committed (a download before that
        # renders and keeps it itself).
        transaction.on_commit(partial(_store_pdf_later, version.pk))
    return version


def _store_pdf_later(version_id: int) -> None:
    from .tasks import pia_pdf_store

    pia_pdf_store.delay(version_id)


def version_revise(*, pia: Pia, actor) -> PiaVersion:
    """The next version of a signed PIA: a draft copying the signed version's answers and rows, scored on the
    organisation's matrix as it is now (the copied scores re-mapped if its size changed). The signed version
    stays current until the new one is signed. An open version is returned as it is."""
    from riskassess.matrix_change import score_map

    with transaction.atomic():
        # Revisions of one PIA queue here, so two authors never open two drafts.
        Pia.objects.select_for_update().order_by().get(pk=pia.pk)
        pia = Pia.objects.select_related("organisation", "school").get(pk=pia.pk)
        _require(may_author(build_scope(actor), pia),
                 "Only the headteacher or the office of the school can start a new version of this PIA.")
        open_version = pia.versions.filter(status__in=PiaVersion.OPEN).first()
        if open_version is not None:
            return open_version
        base = pia.versions.filter(status=Status.SIGNED).first()
        if base is None:
            raise ValidationError("Only a signed PIA can be revised.")
        number = pia.versions.order_by("-number").values_list("number", flat=True).first() + 1
        matrix = matrix_for(pia.organisation)
        remap = score_map(base.get_matrix().size, matrix.size)
        draft = PiaVersion.objects.create(pia=pia, number=number, created_by=actor, matrix=matrix.as_dict(),
                                          **{name: getattr(base, name) for name in COPIED_FIELDS})
        for model, fields in ROW_FIELDS.items():
            rows = []
            for row in model.objects.filter(version=base).order_by("position", "id"):
                values = {name: getattr(row, name) for name in fields}
                if model is PrivacyRisk:
                    values["likelihood"] = remap[values["likelihood"]]
                    values["severity"] = remap[values["severity"]]
                    values["rating"] = matrix.rating(values["likelihood"], values["severity"])
                rows.append(model(version=draft, **values))
            model.objects.bulk_create(rows)
        _audit(actor, "pia.revision_started", draft, base=base.number)
    return draft


def seen_record(*, version: PiaVersion, user) -> SeenSnapshot:
    """Remember what `user` (the DPO) has now seen of the PIA, for their queue's "changed since you last saw it".

    A reviewer's reading marker, not a record of the PIA, so it is not audited (the decisions are)."""
    with transaction.atomic():
        seen, _ = SeenSnapshot.objects.update_or_create(
            pia_id=version.pia_id, user=user,
            defaults={"version_number": version.number, "snapshot": content_of(snapshot_of(version)),
                      "seen_at": timezone.now()},
        )
    return seen


# --- What the pages show -----------------------------------------------------------------------------------------


def dpo_advice(version: PiaVersion) -> Decision | None:
    """The DPO's advice the controller and the SIRO decide on (the latest, after any round of changes)."""
    return _latest(version, Kind.DPO_ADVICE)


def controller_decision(version: PiaVersion) -> Decision | None:
    return _latest(version, Kind.CONTROLLER_ACCEPTED, Kind.CONTROLLER_OVERRULED)


def changes_requested(version: PiaVersion) -> Decision | None:
    """The DPO's latest request for changes, while the version waits for them (None otherwise)."""
    if version.status != Status.CHANGES_REQUESTED:
        return None
    return _latest(version, Kind.CHANGES_REQUESTED)
