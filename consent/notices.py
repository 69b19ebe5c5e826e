"""Purposes and the drafts of their notices: adding a purpose, its reminder settings, saving and discarding
the one draft a purpose has, and publishing it after checking what the headteacher previewed.

Each change is one keyword-only function, one transaction and one audit entry. Publishing itself is
`consent.services.notice_publish` (it numbers, hashes and freezes the draft and flags consents for
renewal); `notice_draft_publish` only wraps it with the checks the editor needs, in the same transaction.
Also here, without side effects: what publishing would do (for the confirmation text) and a readable
comparison of two versions.
"""

import difflib
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from schools.audit import audit_log
from schools.models import Organisation, Role
from schools.scope import build_scope

from . import notice_template
from .models import ConsentState, ConsentStatus, Notice, Purpose
from .services import MAX_RENEWAL_PERIOD, notice_publish

# Who writes notices and adds purposes: the headteacher of any school of the organisation, or its admin.
NOTICE_EDITOR_ROLES = frozenset({Role.HEADTEACHER, Role.ORG_ADMIN})
SECTIONS: tuple[tuple[str, str], ...] = (
    ("letter", "The letter"),
    ("protocol", "The meeting protocol"),
    ("privacy_notice", "The privacy notice"),
)
MAX_SECTION_CHARS = 20_000
REMINDER_DAYS = (1, 60)
MAX_REMINDERS = (0, 10)


def _require_editor(actor, organisation_id: int) -> None:
    if not build_scope(actor).roles_in_organisation(organisation_id) & NOTICE_EDITOR_ROLES:
        raise PermissionDenied("Only the headteacher or the organisation admin can change consent notices.")


def organisation_today(organisation: Organisation) -> date:
    return timezone.now().astimezone(zoneinfo.ZoneInfo(organisation.time_zone)).date()


def normalise_text(text: str) -> str:
    """Browsers post CRLF line ends: store LF only, so that the hash and the comparison see the words."""
    return "\n".join(line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")).strip()


def notice_draft(purpose: Purpose) -> Notice | None:
    """The purpose's draft, if it has one (the editor keeps one draft per purpose)."""
    return purpose.notices.filter(published_at__isnull=True).order_by("id").first()


# --- Purposes --------------------------------------------------------------------------------------------


def _check_reminders(reminder_interval_days: int, max_reminders: int) -> None:
    errors = {}
    if not REMINDER_DAYS[0] <= reminder_interval_days <= REMINDER_DAYS[1]:
        errors["reminder_interval_days"] = "Choose between 1 and 60 days between reminders."
    if not MAX_REMINDERS[0] <= max_reminders <= MAX_REMINDERS[1]:
        errors["max_reminders"] = "Choose between 0 and 10 reminders."
    if errors:
        raise ValidationError(errors)


def _unique_slug(organisation: Organisation, name: str) -> str:
    base = slugify(name)[:70].strip("-") or "purpose"
    taken = set(
        Purpose.objects.filter(organisation=organisation, slug__startswith=base).values_list("slug", flat=True)
    )
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def purpose_create(
    *, organisation: Organisation, name: str, reminder_interval_days: int, max_reminders: int, actor
) -> Purpose:
    """Add a purpose (e.g. "Recording of lessons") with its first draft, pre-filled from the seed texts."""
    name = " ".join(name.split())
    with transaction.atomic():
        _require_editor(actor, organisation.pk)
        if not name:
            raise ValidationError({"name": "Say what parents are asked to agree to."})
        _check_reminders(reminder_interval_days, max_reminders)
        # Lock the organisation so that two people adding the same name get one purpose and one error.
        Organisation.objects.select_for_update().filter(pk=organisation.pk).first()
        if Purpose.objects.filter(organisation=organisation, name__iexact=name).exists():
            raise ValidationError({"name": f"{organisation} already asks parents to agree to “{name}”."})
        purpose = Purpose.objects.create(
            organisation=organisation, name=name, slug=_unique_slug(organisation, name),
            reminder_interval_days=reminder_interval_days, max_reminders=max_reminders,
        )
        draft = Notice.objects.create(
            purpose=purpose, letter=notice_template.LETTER, protocol=notice_template.PROTOCOL,
            privacy_notice=notice_template.PRIVACY_NOTICE,
        )
        audit_log(
            actor=actor, action="consent.purpose_created", obj=purpose, organisation=organisation,
            data={"name": name, "slug": purpose.slug, "reminder_interval_days": reminder_interval_days,
                  "max_reminders": max_reminders, "draft_id": draft.pk},
        )
    return purpose


def purpose_update(*, purpose: Purpose, reminder_interval_days: int, max_reminders: int, actor) -> Purpose:
    """Change how often and how many times parents who have not answered are reminded."""
    with transaction.atomic():
        purpose = Purpose.objects.select_for_update().select_related("organisation").get(pk=purpose.pk)
        _require_editor(actor, purpose.organisation_id)
        _check_reminders(reminder_interval_days, max_reminders)
        before = {"reminder_interval_days": purpose.reminder_interval_days, "max_reminders": purpose.max_reminders}
        after = {"reminder_interval_days": reminder_interval_days, "max_reminders": max_reminders}
        if before == after:
            return purpose
        purpose.reminder_interval_days = reminder_interval_days
        purpose.max_reminders = max_reminders
        purpose.save(update_fields=["reminder_interval_days", "max_reminders"])
        changed = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
        audit_log(actor=actor, action="consent.purpose_updated", obj=purpose, organisation=purpose.organisation,
                  data={"changed": changed})
    return purpose


# --- Drafts ----------------------------------------------------------------------------------------------


class DraftConflict(ValidationError):
    """The draft changed (or appeared, or went) since the editor was opened: saving would overwrite it."""


def _lock_purpose(purpose: Purpose) -> Purpose:
    # Locking the purpose row serialises every writer of its draft and every publisher (notice_publish
    # locks the same row), so "the one draft" stays one and a save never lands on a published notice.
    return Purpose.objects.select_for_update().select_related("organisation").get(pk=purpose.pk)


def _check_base(draft: Notice | None, base_sha256: str | None) -> None:
    """`base_sha256` is the hash of the draft the editor was opened on ("" for no draft; None: don't check)."""
    if base_sha256 is None:
        return
    current = draft.compute_sha256() if draft else ""
    if current != base_sha256:
        if draft is None:
            raise DraftConflict("The draft was published or discarded by someone else since you opened it.")
        raise DraftConflict("Someone else changed this draft since you opened it.")


def notice_draft_save(
    *, purpose: Purpose, letter: str, protocol: str, privacy_notice: str, actor, base_sha256: str | None = None
) -> Notice:
    """Create the purpose's draft or change it. Published versions are never touched: they are evidence."""
    texts = {"letter": normalise_text(letter), "protocol": normalise_text(protocol),
             "privacy_notice": normalise_text(privacy_notice)}
    too_long = {key: f"At most {MAX_SECTION_CHARS:,} characters." for key, text in texts.items()
                if len(text) > MAX_SECTION_CHARS}
    if too_long:
        raise ValidationError(too_long)
    with transaction.atomic():
        purpose = _lock_purpose(purpose)
        _require_editor(actor, purpose.organisation_id)
        draft = notice_draft(purpose)
        _check_base(draft, base_sha256)
        created = draft is None
        if created:
            draft = Notice(purpose=purpose)
        elif all(getattr(draft, key) == text for key, text in texts.items()):
            return draft
        changed = sorted(key for key, text in texts.items() if getattr(draft, key) != text)
        for key, text in texts.items():
            setattr(draft, key, text)
        draft.save()
        audit_log(actor=actor, action="consent.notice_draft_saved", obj=draft, organisation=purpose.organisation,
                  data={"purpose_id": purpose.pk, "created": created, "changed": changed,
                        "sha256": draft.compute_sha256()})
    return draft


def notice_draft_discard(*, purpose: Purpose, actor) -> bool:
    """Delete the purpose's draft. False if there was none (already discarded or published)."""
    with transaction.atomic():
        purpose = _lock_purpose(purpose)
        _require_editor(actor, purpose.organisation_id)
        draft = notice_draft(purpose)
        if draft is None:
            return False
        data = {"purpose_id": purpose.pk, "draft_id": draft.pk, "sha256": draft.compute_sha256()}
        audit_log(actor=actor, action="consent.notice_draft_discarded", obj=draft,
                  organisation=purpose.organisation, data=data)
        draft.delete()
    return True


# --- Publishing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishPlan:
    """What publishing the draft would do, computed before it is done: the confirmation text says this."""

    version: int
    material_change: bool
    renewal_deadline: date | None
    # Consents that `notice_publish` flags "renewal needed" (those given on any earlier version).
    consents_to_flag: int

    @property
    def lapses_on(self) -> date | None:
        """The first day on which a consent not renewed is lapsed (`consent_lapse_due` runs hourly)."""
        return self.renewal_deadline + timedelta(days=1) if self.renewal_deadline else None


def consents_to_flag(purpose: Purpose, version: int) -> int:
    # Exactly the rows `notice_publish` flags when it publishes `version` as a material change.
    return ConsentStatus.objects.filter(
        purpose=purpose, state=ConsentState.GIVEN, last_event__notice_version__lt=version
    ).count()


def _check_previewed(draft: Notice | None, draft_sha256: str) -> None:
    if draft is not None and draft.compute_sha256() != draft_sha256:
        raise DraftConflict("The draft changed since you previewed it: preview it again before publishing.")


def _publishable(purpose: Purpose, draft: Notice | None) -> None:
    if draft is None:
        raise ValidationError("There is no draft to publish: it was published or discarded meanwhile.")
    empty = [label.lower() for key, label in SECTIONS if not getattr(draft, key).strip()]
    if empty:
        raise ValidationError(f"Write {' and '.join(empty)} before publishing.")
    current = purpose.current_notice()
    if current is not None and current.sha256 == draft.compute_sha256():
        raise ValidationError(f"The draft is the same as version {current.version}: there is nothing to publish.")


def notice_publish_plan(
    *, purpose: Purpose, draft_sha256: str, material_change: bool, renewal_deadline: date | None
) -> PublishPlan:
    """What publishing the purpose's draft now would do. Raises ValidationError if it would be refused."""
    draft = notice_draft(purpose)
    _check_previewed(draft, draft_sha256)
    _publishable(purpose, draft)
    # The same checks as `notice_publish`, so that the confirmation never promises what the service would
    # refuse; the service itself checks again when it publishes.
    if material_change and renewal_deadline is None:
        raise ValidationError("A material change needs a renewal deadline.")
    if material_change and renewal_deadline < organisation_today(purpose.organisation):
        raise ValidationError("The renewal deadline is in the past.")
    if material_change and renewal_deadline > organisation_today(purpose.organisation) + MAX_RENEWAL_PERIOD:
        raise ValidationError("Set a renewal deadline within a year: parents are asked to renew, not to wait.")
    version = (purpose.notices.aggregate(last=Max("version"))["last"] or 0) + 1
    return PublishPlan(
        version=version,
        material_change=material_change,
        renewal_deadline=renewal_deadline if material_change else None,
        consents_to_flag=consents_to_flag(purpose, version) if material_change else 0,
    )


def notice_draft_publish(
    *, purpose: Purpose, draft_sha256: str, material_change: bool, renewal_deadline: date | None, actor
) -> Notice:
    """Publish the draft the headteacher previewed (its hash must still match) as the next version.

    `consent.services.notice_publish` does the publishing and its audit entry, in this transaction."""
    with transaction.atomic():
        purpose = _lock_purpose(purpose)
        _require_editor(actor, purpose.organisation_id)
        draft = notice_draft(purpose)
        _check_previewed(draft, draft_sha256)
        _publishable(purpose, draft)
        # The renewal deadline is the service's to judge (in the organisation's time zone).
        return notice_publish(notice=draft, actor=actor, material_change=material_change,
                              renewal_deadline=renewal_deadline)


# --- Comparing versions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    """One paragraph of a comparison: `kind` is equal, insert, delete or change; `segments` are
    (op, text) pairs with op equal, insert or delete, rendered escaped by the template."""

    kind: str
    segments: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SectionDiff:
    key: str
    title: str
    changed: bool
    lines: tuple[DiffLine, ...]


# A word with the spaces after it: the unit a reader notices changing.
_WORDS = re.compile(r"\s*\S+\s*|\s+")
# Below this similarity two paragraphs read better as one removed and one added than as a word soup.
_SIMILAR_ENOUGH = 0.4


def _word_segments(matcher: difflib.SequenceMatcher) -> tuple[tuple[str, str], ...]:
    a, b = matcher.a, matcher.b
    segments: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            segments.append(("equal", "".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            segments.append(("delete", "".join(a[i1:i2])))
        if op in ("insert", "replace"):
            segments.append(("insert", "".join(b[j1:j2])))
    return tuple(segments)


def text_diff(old: str, new: str) -> tuple[DiffLine, ...]:
    """Paragraph by paragraph (one line each), and word by word inside a changed paragraph."""
    a, b = old.split("\n") if old else [], new.split("\n") if new else []
    lines: list[DiffLine] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            lines += [DiffLine("equal", (("equal", line),)) for line in a[i1:i2]]
        elif op == "delete":
            lines += [DiffLine("delete", (("delete", line),)) for line in a[i1:i2]]
        elif op == "insert":
            lines += [DiffLine("insert", (("insert", line),)) for line in b[j1:j2]]
        else:
            old_part, new_part = a[i1:i2], b[j1:j2]
            # Pair changed paragraphs in order; a surplus on either side is a plain deletion or insertion.
            for k in range(max(len(old_part), len(new_part))):
                if k < len(old_part) and k < len(new_part):
                    words = difflib.SequenceMatcher(
                        None, _WORDS.findall(old_part[k]), _WORDS.findall(new_part[k]), autojunk=False
                    )
                    if words.ratio() >= _SIMILAR_ENOUGH:
                        lines.append(DiffLine("change", _word_segments(words)))
                    else:
                        lines.append(DiffLine("delete", (("delete", old_part[k]),)))
                        lines.append(DiffLine("insert", (("insert", new_part[k]),)))
                elif k < len(old_part):
                    lines.append(DiffLine("delete", (("delete", old_part[k]),)))
                else:
                    lines.append(DiffLine("insert", (("insert", new_part[k]),)))
    return tuple(lines)


def notice_diff(old: Notice, new: Notice) -> tuple[SectionDiff, ...]:
    """Section by section: the letter, the protocol, the privacy notice."""
    result = []
    for key, title in SECTIONS:
        before, after = getattr(old, key), getattr(new, key)
        result.append(SectionDiff(key=key, title=title, changed=before != after, lines=text_diff(before, after)))
    return tuple(result)
