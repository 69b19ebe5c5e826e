"""A PIA's outputs: the PDF a DPO retains, and the plain-language privacy notice text for parents.

A signed version's PDF is rendered from its snapshot once (on its first download), stored in `PiaVersion.pdf`
with its SHA-256, audited, and then always served as stored, superseded or not: the document someone filed is
the document anyone downloads later. (A version superseded before anyone downloaded it is never written again,
so it renders from its signed snapshot each time.) A draft, or a version still in sign-off, renders live with a
DRAFT watermark and is never stored.

The privacy notice text is generated from a signed version's snapshot (what the platform is, that there is
no obligation, each risk in plain words with what the school does about it, and the platform's data table),
and can be adopted as a new draft of a consent notice through `consent.notices`, whose own workflow then
publishes it.
"""

import hashlib
import re
from datetime import date, datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import transaction

from consent import notice_template
from consent.models import Notice, Purpose
from consent.notices import NOTICE_EDITOR_ROLES, DraftConflict, notice_draft, notice_draft_save
from lib.pdf import render_pdf
from riskassess.matrix import Matrix
from schools.audit import audit_log
from schools.scope import build_scope

from .models import Decision, PiaVersion
from .questions import PRINCIPLES, SCREENING, STEPS
from .reminders import pia_tz
from .snapshot import snapshot_of

Status = PiaVersion.Status
Kind = Decision.Kind
PDF_TEMPLATE = "pia/pdf/version.html"
STEP_TITLES = {step.key: (f"Step {step.number}: " if step.number else "") + step.title for step in STEPS}
RESULT_LABELS = {"eliminated": "Eliminated", "reduced": "Reduced", "accepted": "Accepted"}
ANSWER_LABELS = {"yes": "Yes", "no": "No", "": "Not answered"}


# --- What the documents print --------------------------------------------------------------------------


def version_data(version: PiaVersion) -> dict:
    """The signed snapshot of a signed or superseded version; the live content of any other."""
    if version.is_frozen_for_good and version.snapshot:
        return version.snapshot
    return snapshot_of(version)


def _long_date(iso: str) -> str:
    return f"{date.fromisoformat(iso):%-d %B %Y}" if iso else ""


def _decisions(version: PiaVersion, data: dict) -> list[dict]:
    """The snapshot's decisions, and any recorded after the snapshot was frozen (signing may freeze the content
    before it records the SIRO's signature). Decisions are never updated or deleted, so both agree."""
    decisions = list(data.get("decisions") or [])
    seen = {(d["kind"], d["sha256"], d["decided_at"]) for d in decisions}
    if version.pk and version.is_frozen_for_good:
        for d in version.decisions.order_by("decided_at", "id"):
            key = (d.kind, d.sha256, d.decided_at.isoformat())
            if key not in seen:
                decisions.append({"kind": d.kind, "name": d.name, "role": d.role, "comments": d.comments,
                                  "step_comments": d.step_comments, "decided_at": d.decided_at.isoformat(),
                                  "sha256": d.sha256})
    return decisions


def _decision_rows(decisions: list[dict], tz) -> list[dict]:
    labels = dict(Kind.choices)
    rows = []
    for d in decisions:
        moment = datetime.fromisoformat(d["decided_at"]).astimezone(tz)
        rows.append({
            **d, "label": labels.get(d["kind"], d["kind"]), "when": f"{moment:%-d %B %Y, %H:%M %Z}",
            "step_comments_list": [(STEP_TITLES[key], (d.get("step_comments") or {}).get(key))
                                   for key in STEP_TITLES if (d.get("step_comments") or {}).get(key)],
        })
    return rows


def _last(rows: list[dict], *kinds: str) -> dict | None:
    found = [row for row in rows if row["kind"] in kinds]
    return found[-1] if found else None


def version_document(version: PiaVersion) -> dict:
    """Everything the PDF prints, in the form's order, with dates and times made readable."""
    data = version_data(version)
    pia = version.pia
    matrix = Matrix.from_dict(data["matrix"])
    decisions = _decision_rows(_decisions(version, data), pia_tz(pia))
    controller = _last(decisions, Kind.CONTROLLER_ACCEPTED, Kind.CONTROLLER_OVERRULED)
    lower, bands = 0, []
    for band in matrix.bands:
        bands.append({"key": band.key, "label": band.label, "low": lower + 1, "high": band.upper})
        lower = band.upper
    principle_answers = data.get("principles") or {}
    return {
        **data,
        "covers": data["pia"]["school"] or f"{data['pia']['organisation']} (every school)",
        "review_on_display": _long_date(data.get("review_on", "")) or "Not set",
        # In the form's order: a snapshot read back from PostgreSQL's jsonb has its keys in another order.
        "screening_rows": [{**row, "answer_label": ANSWER_LABELS.get(row["answer"], row["answer"])}
                           for row in (data["screening"].get(q.key) for q in SCREENING) if row],
        "consultations_display": [{**c, "held_on_display": _long_date(c["held_on"]),
                                   "kind_label": c["kind"].capitalize()} for c in data["consultations"]],
        "risks_display": [{**r, "band_key": matrix.band(r["rating"]).key if r["rating"] else "",
                           "result_label": RESULT_LABELS.get(r["result"], r["result"] or "Not decided"),
                           "number": n} for n, r in enumerate(data["risks"], start=1)],
        "actions_display": [{**a, "due_display": _long_date(a["due_on"]) or a["due_note"] or "—"}
                            for a in data["actions"]],
        "principles_display": [
            {"number": p.number, "title": p.title, "summary": p.summary,
             "answers": [(q.text, (principle_answers.get(q.key) or {}).get("answer", "")) for q in p.questions]}
            for p in PRINCIPLES
        ],
        "bands": bands,
        "likelihood_labels": list(enumerate(matrix.likelihood_labels, start=1)),
        "severity_labels": list(enumerate(matrix.severity_labels, start=1)),
        "decisions_display": decisions,
        "dpo_advice": _last(decisions, Kind.DPO_ADVICE),
        "controller": controller,
        "controller_overruled": bool(controller and controller["kind"] == Kind.CONTROLLER_OVERRULED),
        "siro": _last(decisions, Kind.SIRO_SIGNED),
        "step_titles": STEP_TITLES,
    }


# --- The PDF -------------------------------------------------------------------------------------------


def version_pdf_render(version: PiaVersion) -> bytes:
    draft = not version.is_frozen_for_good
    return render_pdf(PDF_TEMPLATE, {
        "doc": version_document(version), "version": version, "draft": draft,
        "status_label": version.get_status_display(), "sha256": version.sha256 if not draft else "",
        "pdf_sha_note": not draft,
    })


def version_pdf_filename(version: PiaVersion) -> str:
    from django.utils.text import slugify

    name = slugify(version.pia.title)[:60] or "pia"
    suffix = "" if version.is_frozen_for_good else "-draft"
    return f"pia-{name}-v{version.number}{suffix}.pdf"


def version_pdf_store(*, version: PiaVersion, actor) -> PiaVersion:
    """Render a signed version's PDF from its snapshot and keep it, once: two first downloads at the same
    moment queue on the row lock, and the second finds the stored file."""
    with transaction.atomic():
        version = PiaVersion.objects.select_for_update(of=("self",)).select_related(
            "pia__school", "pia__organisation").get(pk=version.pk)
        if version.pdf:
            return version
        if version.status != Status.SIGNED:
            raise ValueError("Only a signed version's PDF is stored; a draft renders live.")
        content = version_pdf_render(version)
        version.pdf_sha256 = hashlib.sha256(content).hexdigest()
        version.pdf.save(f"pia-{version.pia_id}-v{version.number}.pdf", ContentFile(content), save=False)
        # update_fields: the model refuses any other write to a signed version.
        version.save(update_fields=["pdf", "pdf_sha256"])
        pia = version.pia
        audit_log(actor=actor, action="pia.pdf_stored", obj=pia, school=pia.school, organisation=pia.organisation,
                  data={"version": version.number, "pdf_sha256": version.pdf_sha256, "bytes": len(content),
                        "snapshot_sha256": version.sha256})
    return version


def stored_pdf_bytes(version: PiaVersion) -> bytes:
    """The stored PDF as filed; refuses a file that no longer matches its recorded hash."""
    with version.pdf.open("rb") as handle:
        content = handle.read()
    if hashlib.sha256(content).hexdigest() != version.pdf_sha256:
        raise ValueError(f"The stored PDF of PIA version {version.pk} does not match its SHA-256.")
    return content


def version_pdf_bytes(*, version: PiaVersion, actor) -> bytes:
    """What a download serves: the stored PDF of a signed version (filed by a worker right after signing, or by
    the first download if that comes sooner), or a draft's live rendering. A version superseded before its PDF
    was filed keeps no file (a superseded version is never written again): it renders from its signed snapshot
    each time, without the DRAFT mark."""
    if version.pdf:
        return stored_pdf_bytes(version)
    if version.status == Status.SIGNED:
        return stored_pdf_bytes(version_pdf_store(version=version, actor=actor))
    return version_pdf_render(version)


# --- The privacy notice for parents ----------------------------------------------------------------------

# Words staff write in a PIA that parents should not have to decode.
PLAIN_WORDS = (
    (re.compile(r"\bpersonally identifiable information(\s*\(PII\))?", re.IGNORECASE), "personal information"),
    (re.compile(r"\bPII\b"), "personal information"),
    (re.compile(r"\bDPA\b"), "data protection law"),
    (re.compile(r"\bDPO\b"), "data protection officer"),
)


def plain(text: str) -> str:
    text = " ".join((text or "").split())
    for pattern, words in PLAIN_WORDS:
        text = pattern.sub(words, text)
    return text


def _items(text: str) -> str:
    """A cell typed as several lines ("Provide the service" / "Respond to support requests") as one phrase."""
    lines = [plain(line).rstrip(".;,") for line in (text or "").splitlines() if line.strip()]
    return "; ".join(line for line in lines if line)


def _sentence(text: str) -> str:
    text = plain(text).rstrip()
    if text and text[-1] not in ".!?":
        text += "."
    return text[:1].upper() + text[1:]


def _schools_phrase(data: dict) -> str:
    names = [name for name, _ in data["number_affected"]["by_school"]] or [data["pia"]["organisation"]]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def notice_text(version: PiaVersion) -> str:
    """The parent-facing privacy notice text from a signed version, in plain words (paragraphs separated by
    blank lines; list items start with "- ", as the consent notices write them)."""
    if not version.is_frozen_for_good:
        raise ValueError("The privacy notice text comes from a signed version only.")
    data = version_data(version)
    platform = data["pia"]["title"]
    schools = _schools_phrase(data)
    verb = "uses" if len(data["number_affected"]["by_school"]) <= 1 else "use"
    paragraphs = [
        f"{schools} {verb} a service called {platform} to run live video lessons with pupils."
        + (f" {_sentence(data['aims'])}" if data.get("aims") else ""),
        f"Please be aware that there are privacy and security issues with {platform}, and we understand that you "
        f"may not want your child to use it. There is no obligation to do so: your child will not be "
        f"disadvantaged if they do not take part, and you can withdraw your consent at any time.",
    ]
    risks = [r for r in data["risks"] if r["privacy_issue"].strip()]
    if risks:
        lines = ["The risks we have identified, and what we do about each:", ""]
        for risk in risks:
            what = _sentence(risk["privacy_issue"])
            if risk["risk_to_individuals"].strip():
                what += f" For your child, this means: {plain(risk['risk_to_individuals']).rstrip('.')}."
            if risk["solution"].strip():
                what += f" What we do about it: {_sentence(risk['solution'])}"
            lines.append(f"- {what}")
        paragraphs.append("\n".join(lines))
    items = [item for item in data["data_items"] if item["data_type"].strip()]
    if items:
        lines = [f"The data the {platform} service collects and what it uses it for:", ""]
        for item in items:
            line = f"- {plain(item['data_type'])}"
            if item["examples"].strip():
                line += f" (for example: {_items(item['examples'])})"
            if item["platform_uses"].strip():
                line += f". {platform} uses it to: {_items(item['platform_uses'])}"
            lines.append(line + ".")
        paragraphs.append("\n".join(lines))
    signed = f" (version {data['version']}"
    signed += f", due for review on {_long_date(data['review_on'])})" if data.get("review_on") else ")"
    closing = f"Our privacy impact assessment of {platform}{signed} is available from the school."
    if data.get("contact_point", "").strip():
        closing += f" If you have any questions or concerns about your child's privacy, contact: " \
                   f"{plain(data['contact_point']).rstrip('.')}."
    paragraphs.append(closing)
    return "\n\n".join(paragraphs)


def may_adopt_notice(scope, version: PiaVersion) -> bool:
    """Who may turn the text of the current signed version into a consent notice draft: whoever edits the
    organisation's consent notices."""
    return version.status == Status.SIGNED and bool(
        scope.roles_in_organisation(version.pia.organisation_id) & NOTICE_EDITOR_ROLES)


def notice_adopt(*, version: PiaVersion, purpose: Purpose, actor, replace_draft: bool = False) -> Notice:
    """Make the generated text the privacy notice of a draft of `purpose`'s consent notice: a new draft with
    the letter and protocol of the purpose's current notice, or, if the purpose already has a draft and
    `replace_draft` says so, that draft with only its privacy notice replaced. Publishing stays with the
    consent notices' own workflow."""
    if version.status != Status.SIGNED:
        raise ValidationError("Only the current signed version's privacy notice can be adopted: a draft has not "
                              "been agreed, and a superseded version no longer is.")
    if purpose.organisation_id != version.pia.organisation_id:
        raise ValidationError("Choose a consent notice of this PIA's organisation.")
    text = notice_text(version)
    with transaction.atomic():
        if not may_adopt_notice(build_scope(actor), version):
            raise PermissionDenied("Only the headteacher or the organisation admin can change consent notices.")
        draft = notice_draft(purpose)
        if draft is not None and not replace_draft:
            raise ValidationError(f"“{purpose.name}” already has a draft notice: tick “replace the privacy notice "
                                  f"of that draft”, or publish or discard it first.")
        if draft is not None:
            letter, protocol, base = draft.letter, draft.protocol, draft.compute_sha256()
        else:
            current = purpose.current_notice()
            letter = current.letter if current else notice_template.LETTER
            protocol = current.protocol if current else notice_template.PROTOCOL
            base = ""  # "no draft": a draft made meanwhile by someone else is a conflict, not overwritten
        try:
            notice = notice_draft_save(purpose=purpose, letter=letter, protocol=protocol, privacy_notice=text,
                                       actor=actor, base_sha256=base)
        except DraftConflict as error:
            raise ValidationError("That notice's draft changed meanwhile: look at it, then try again.") \
                from error
        pia = version.pia
        audit_log(actor=actor, action="pia.notice_drafted", obj=pia, school=pia.school,
                  organisation=pia.organisation,
                  data={"version": version.number, "purpose_id": purpose.pk, "notice_id": notice.pk,
                        "replaced_draft": draft is not None, "notice_sha256": notice.compute_sha256()})
    return notice
