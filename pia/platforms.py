"""The organisation's video platforms and the governance gate's question about them.

A platform (Zoom, Teams, …) is registered per organisation and names the PIA that approves it. It is approved
only while that PIA has a signed version whose review date has not passed and whose snapshot still matches
its hash: `platform_status` answers with the reasons when it is not, as `riskassess.services.
video_lessons_assessment_status` does for the risk assessment. Sessions ask it before scheduling and sending.

Who registers and changes platforms: the organisation admin, and a headteacher of any school of the
organisation (the roles that edit the organisation's consent notices, `consent.notices.NOTICE_EDITOR_ROLES`).
Registering only names a platform and points at a PIA of the same organisation; it cannot approve anything,
because approval comes from that PIA's own sign-off chain (DPO, data controller, SIRO). So the people who run
the schools' video lessons may keep the list, and the office and teachers, who only use it, read it.
"""

from dataclasses import dataclass, field
from datetime import date

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, ProtectedError

from schools.audit import audit_log
from schools.models import Organisation, Role, School
from schools.scope import build_scope

from .models import Pia, PiaVersion, Platform
from .reminders import pia_today

Status = PiaVersion.Status

MANAGER_ROLES = frozenset({Role.HEADTEACHER, Role.ORG_ADMIN})
NAME_MAX = Platform._meta.get_field("name").max_length


@dataclass(frozen=True)
class PlatformStatus:
    """Whether a platform is approved: its PIA signed, in date, and its signed snapshot intact."""

    ok: bool
    version: PiaVersion | None
    reasons: tuple[str, ...] = field(default=())


def _signed_version(pia: Pia) -> PiaVersion | None:
    cached = getattr(pia, "signed_versions", None)  # prefetched by approved_platforms
    if cached is not None:
        return cached[0] if cached else None
    return pia.versions.filter(status=Status.SIGNED).first()


def _not_signed_reason(pia: Pia) -> str:
    cached = getattr(pia, "open_versions", None)  # prefetched by platforms_with_status
    if cached is not None:
        open_version = cached[0] if cached else None
    else:
        open_version = pia.versions.filter(status__in=PiaVersion.OPEN).order_by("-number").first()
    if open_version is not None:
        return (f"The PIA “{pia.title}” has no signed version yet: version {open_version.number} is "
                f"{open_version.get_status_display().lower()}.")
    return f"The PIA “{pia.title}” has no signed version."


def platform_status(*, platform: Platform, school: School | None = None, today: date | None = None) -> PlatformStatus:
    """For the sessions' governance gate: ok only when the platform's PIA (of the same organisation) has a
    signed version whose review date is set and not past, counted in the PIA's own time zone. A signed PIA
    without a review date is not in date: the issue requires one, and "never reviewed" is not approval.

    With `school` (a session's school), a PIA of one school approves the platform for that school only: a
    PIA covering the whole organisation approves it everywhere."""
    pia = platform.pia
    if pia is None:
        return PlatformStatus(False, None, (f"No PIA is attached to {platform.name}.",))
    if pia.organisation_id != platform.organisation_id:
        # The forms and `platform_save` never allow it; an approval is never borrowed from another organisation.
        return PlatformStatus(False, None, (f"The PIA attached to {platform.name} belongs to another organisation.",))
    if school is not None and pia.school_id is not None and pia.school_id != school.pk:
        return PlatformStatus(False, None, (
            f"The PIA “{pia.title}” approving {platform.name} covers {pia.school.name} only, not {school.name}.",))
    version = _signed_version(pia)
    if version is None:
        return PlatformStatus(False, None, (_not_signed_reason(pia),))
    today = today or pia_today(pia)
    reasons = []
    if version.review_on is None:
        reasons.append(f"The signed PIA “{pia.title}” (version {version.number}) has no review date.")
    elif version.review_on < today:
        reasons.append(f"The PIA “{pia.title}” was due for review on {version.review_on:%-d %B %Y}.")
    if not version.hash_verifies():
        reasons.append(f"The signed PIA “{pia.title}” was changed after it was signed (its fingerprint no longer "
                       "matches): it cannot be relied on.")
    return PlatformStatus(not reasons, version, tuple(reasons))


def with_pia_versions(platforms):
    """Platforms with what `platform_status` reads prefetched: its answer then costs no query."""
    return (
        platforms.select_related("pia__school", "pia__organisation")
        .prefetch_related(
            Prefetch("pia__versions", queryset=PiaVersion.objects.filter(status=Status.SIGNED),
                     to_attr="signed_versions"),
            Prefetch("pia__versions", queryset=PiaVersion.objects.filter(status__in=PiaVersion.OPEN)
                     .order_by("-number"), to_attr="open_versions"),
        )
    )


def platforms_with_status(*, organisation: Organisation, today: date | None = None) -> list[tuple]:
    """Every platform of the organisation with its status, in a constant number of queries."""
    platforms = with_pia_versions(Platform.objects.filter(organisation=organisation)).order_by("name", "pk")
    return [(platform, platform_status(platform=platform, today=today)) for platform in platforms]


def approved_platforms(*, organisation: Organisation, school: School | None = None,
                       today: date | None = None) -> list[Platform]:
    """The organisation's platforms that may be used today (at `school`, when given)."""
    return [platform for platform, _ in platforms_with_status(organisation=organisation, today=today)
            if platform_status(platform=platform, school=school, today=today).ok]


def may_manage(scope, organisation_id: int) -> bool:
    return bool(scope.roles_in_organisation(organisation_id) & MANAGER_ROLES)


def _readable(actor, pia: Pia) -> bool:
    scope = build_scope(actor)
    return scope.filter(Pia.objects.filter(pk=pia.pk), school_path="school", organisation_path="organisation").exists()


def _require_manager(actor, organisation_id: int) -> None:
    if not may_manage(build_scope(actor), organisation_id):
        raise PermissionDenied("Only the organisation admin or a headteacher can change the platforms.")


def platform_save(*, organisation: Organisation, actor, name: str, kind: str, pia: Pia | None,
                  platform: Platform | None = None) -> Platform:
    """Register a platform, or change one (`platform`). The PIA must be one of the same organisation."""
    name = " ".join((name or "").split())
    errors = {}
    if not name:
        errors["name"] = "Give the platform a name."
    elif len(name) > NAME_MAX:
        errors["name"] = f"At most {NAME_MAX} characters."
    if kind not in Platform.Kind.values:
        errors["kind"] = "Choose what kind of platform it is."
    if pia is not None and pia.organisation_id != organisation.pk:
        errors["pia"] = "Choose a PIA of this organisation."
    elif pia is not None and not _readable(actor, pia):
        errors["pia"] = "Choose a PIA of the whole organisation or of your own school."
    if platform is not None and platform.organisation_id != organisation.pk:
        raise ValueError("A platform never moves to another organisation.")
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        _require_manager(actor, organisation.pk)
        # Lock the organisation so that two people registering the same name get one platform and one error.
        Organisation.objects.select_for_update().filter(pk=organisation.pk).first()
        clash = Platform.objects.filter(organisation=organisation, name__iexact=name)
        if platform is not None:
            clash = clash.exclude(pk=platform.pk)
        existing = clash.first()
        if existing is not None:
            raise ValidationError({"name": f"{organisation} already has a platform called “{existing.name}”."})
        created = platform is None
        if created:
            platform = Platform(organisation=organisation)
            before = {}
        else:
            platform = Platform.objects.select_for_update().get(pk=platform.pk)
            before = {"name": platform.name, "kind": platform.kind, "pia_id": platform.pia_id}
        after = {"name": name, "kind": kind, "pia_id": pia.pk if pia else None}
        if before == after:
            return platform
        platform.name, platform.kind, platform.pia = name, kind, pia
        try:
            with transaction.atomic():
                platform.save()
        except IntegrityError as error:  # the exact name taken meanwhile (the lock makes this rare)
            raise ValidationError({"name": f"{organisation} already has a platform called “{name}”."}) from error
        changed = sorted(key for key in after if before.get(key) != after[key]) if not created else []
        audit_log(actor=actor, action="pia.platform_saved", obj=platform, organisation=organisation,
                  data={"created": created, "changed": changed, **after})
    return platform


def platform_remove(*, platform: Platform, actor) -> None:
    """Take a platform off the organisation's list (its PIA stays as it is)."""
    with transaction.atomic():
        platform = Platform.objects.select_for_update().select_related("organisation").get(pk=platform.pk)
        _require_manager(actor, platform.organisation_id)
        audit_log(actor=actor, action="pia.platform_removed", obj=platform, organisation=platform.organisation,
                  data={"platform_id": platform.pk, "name": platform.name, "kind": platform.kind,
                        "pia_id": platform.pia_id})
        try:
            with transaction.atomic():
                platform.delete()
        except ProtectedError as error:
            raise ValidationError(f"{platform.name} is still used by video sessions: it cannot be removed.") from error
