"""The meeting protocol: the organisation's, versioned, which a school may tighten but never loosen.

Every rule of `Protocol.RULES` is "stricter is more": a requirement switched on, or fewer minutes. The
organisation admin writes the organisation's protocol, the headteacher the school's; every save is a new
version (versions are never edited) and an audit entry.

Which rules apply to a session: `effective_protocol(school)`, rule by rule the stricter of the organisation's
newest version and the school's newest version. That keeps "a school never loosens" true even when the
organisation tightens its protocol after a school saved its own: the school's old version is not rewritten,
it simply loses to the stricter organisation rule.

Before anyone has saved a protocol, the seed's protocol applies (the model's defaults): `organisation_protocol`
returns it as an unsaved instance with version 0, so that reading a page never writes (promise 4's spirit);
the first save creates version 1.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max

from schools.audit import audit_log
from schools.models import Organisation, Role, School
from schools.scope import build_scope

from .models import Protocol

FLAGS = tuple(name for name, kind in Protocol.RULES if kind == "flag")
MINUTES = tuple(name for name, kind in Protocol.RULES if kind == "minutes")
NOTES_MAX = 2000
# The protocol's minutes must stay sensible (the model's check constraint, and a session of at most a day).
MINUTES_BOUNDS = {"lock_after_minutes": (1, 120), "max_duration_minutes": (5, 240)}


def rule_label(name: str) -> str:
    return str(Protocol._meta.get_field(name).verbose_name)


def seed_protocol(organisation: Organisation) -> Protocol:
    """The seed's protocol (the model's defaults), unsaved: what applies before anyone has saved one."""
    return Protocol(organisation=organisation, school=None, version=0)


def organisation_protocol(organisation: Organisation) -> Protocol:
    """The organisation's newest version, or the seed's protocol (unsaved, version 0)."""
    newest = Protocol.objects.filter(organisation=organisation, school__isnull=True).order_by("-version").first()
    return newest or seed_protocol(organisation)


def school_protocol(school: School) -> Protocol | None:
    """The school's own newest version, if it has tightened the organisation's."""
    return Protocol.objects.filter(school=school).order_by("-version").first()


def protocol_for(school: School) -> Protocol:
    """The school's newest version if any, else the organisation's (or the seed's). Use `effective_protocol`
    for the rules that apply: a school version may have fallen behind a tightened organisation protocol."""
    return school_protocol(school) or organisation_protocol(school.organisation)


def effective_protocol(school: School) -> Protocol:
    """The rules that apply at `school`: rule by rule the stricter of the organisation's and the school's
    versions. Unsaved: `version` is the school's version number (0 when it has none); `notes` joins both."""
    base = organisation_protocol(school.organisation)
    own = school_protocol(school)
    values = {name: getattr(base, name) for name, _ in Protocol.RULES}
    if own is not None:
        for name in FLAGS:
            values[name] = values[name] or getattr(own, name)
        for name in MINUTES:
            values[name] = min(values[name], getattr(own, name))
    notes = "\n\n".join(text for text in (base.notes, own.notes if own else "") if text)
    effective = Protocol(organisation=school.organisation, school=school, version=own.version if own else 0,
                         notes=notes, **values)
    effective.organisation_version = base.version
    return effective


def protocol_check(*, organisation_protocol: Protocol, values: dict) -> dict[str, str]:
    """Errors (field → message) for a school's `values` that would loosen the organisation's protocol: every
    flag the organisation has on stays on; every number of minutes at most the organisation's."""
    errors = {}
    for name in FLAGS:
        if getattr(organisation_protocol, name) and not values.get(name):
            errors[name] = f"The organisation requires this: “{rule_label(name)}” stays on."
    for name in MINUTES:
        limit = getattr(organisation_protocol, name)
        if values.get(name) is not None and values[name] > limit:
            errors[name] = f"At most {limit} minutes: the organisation's protocol allows no more."
    return errors


def _clean(values: dict) -> dict:
    errors = {}
    cleaned = {name: bool(values.get(name)) for name in FLAGS}
    for name in MINUTES:
        low, high = MINUTES_BOUNDS[name]
        value = values.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            errors[name] = f"A whole number of minutes from {low} to {high}."
        cleaned[name] = value
    notes = (values.get("notes") or "").strip()
    if len(notes) > NOTES_MAX:
        errors["notes"] = f"At most {NOTES_MAX} characters."
    cleaned["notes"] = notes
    if errors:
        raise ValidationError(errors)
    return cleaned


def may_edit_organisation_protocol(actor, organisation: Organisation) -> bool:
    return Role.ORG_ADMIN in build_scope(actor).roles_by_organisation.get(organisation.pk, frozenset())


def may_edit_school_protocol(actor, school: School) -> bool:
    return Role.HEADTEACHER in build_scope(actor).roles_at_school(school.pk)


def protocol_save(*, actor, organisation: Organisation, values: dict, school: School | None = None) -> Protocol:
    """Save a new version: the organisation's (by its admin) or `school`'s (by its headteacher), which must be
    at least as strict as the organisation's newest version."""
    if school is not None and school.organisation_id != organisation.pk:
        raise ValueError("A school's protocol belongs to its own organisation.")
    cleaned = _clean(values)
    with transaction.atomic():
        # Lock the owner so that two saves at once get consecutive version numbers, and a school's check
        # reads an organisation protocol that cannot change under it.
        Organisation.objects.select_for_update().filter(pk=organisation.pk).first()
        if school is None:
            if not may_edit_organisation_protocol(actor, organisation):
                raise PermissionDenied("Only the organisation admin changes the organisation's protocol.")
            existing = Protocol.objects.filter(organisation=organisation, school__isnull=True)
        else:
            if not may_edit_school_protocol(actor, school):
                raise PermissionDenied("Only the headteacher changes the school's protocol.")
            errors = protocol_check(organisation_protocol=organisation_protocol(organisation), values=cleaned)
            if errors:
                raise ValidationError(errors)
            existing = Protocol.objects.filter(school=school)
        number = (existing.aggregate(top=Max("version"))["top"] or 0) + 1
        protocol = Protocol.objects.create(organisation=organisation, school=school, version=number,
                                           created_by=actor, **cleaned)
        audit_log(actor=actor, action="session.protocol_saved", obj=protocol, school=school,
                  organisation=organisation,
                  data={"version": number, "level": "school" if school else "organisation",
                        "rules": {name: cleaned[name] for name, _ in Protocol.RULES}})
    return protocol


def parent_reminders(protocol: Protocol) -> list[str]:
    """What parents need to know before the session, for the invitation email (plain sentences)."""
    lines = ["Only open the link from this email: the school never sends meeting links any other way, and "
             "never invites your child at any other time."]
    if protocol.password_required:
        lines.append("Keep the link and the password to yourselves: do not share them with anyone.")
    if protocol.waiting_room:
        lines.append("Your child will wait in a waiting room until the teacher lets them in.")
    if protocol.first_name_checked:
        lines.append("Join with your child's first name, so the teacher can check it before letting them in.")
    if protocol.adult_present:
        lines.append("An adult must be in the room with your child for the whole session.")
    if protocol.muted_on_entry:
        lines.append("Everyone is muted on arrival.")
    if protocol.unmute_when_asked:
        lines.append("Your child should unmute only when the teacher asks.")
    if protocol.no_pupil_screen_sharing:
        lines.append("Pupils may not share their screen.")
    if protocol.chat_closed:
        lines.append("The chat is closed.")
    lines.append(f"The meeting is locked {protocol.lock_after_minutes} minutes after it starts: join on time.")
    if protocol.host_ends_meeting:
        lines.append("The teacher ends the meeting for everyone, and ends it at once if anything goes wrong.")
    return lines


def host_checklist(protocol: Protocol) -> list[str]:
    """What the host sets up and checks, for the session page (the risk assessment's controls come beside it)."""
    lines = []
    if protocol.password_required:
        lines.append("Set the meeting password to the one in Gatehouse.")
    if protocol.waiting_room:
        lines.append("Turn the waiting room on; admit only the children on the roster.")
    if protocol.first_name_checked:
        lines.append("Check each child's first name against the roster before admitting them.")
    if protocol.muted_on_entry:
        lines.append("Mute participants on entry.")
    if protocol.unmute_when_asked:
        lines.append("Let pupils unmute only when asked.")
    if protocol.no_pupil_screen_sharing:
        lines.append("Turn screen sharing off for participants.")
    if protocol.chat_closed:
        lines.append("Close the chat (in the app's settings, not only on the desktop).")
    if protocol.adult_present:
        lines.append("Check once the session starts that an adult is present with each child.")
    lines.append(f"Lock the meeting once everyone has joined, or {protocol.lock_after_minutes} minutes after "
                 "the start.")
    lines.append(f"Keep to at most {protocol.max_duration_minutes} minutes.")
    if protocol.host_ends_meeting:
        lines.append("End the meeting for everyone; end it at once if anyone uninvited gets in.")
    return lines
