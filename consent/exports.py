"""The consent register's exports: the CSV a spreadsheet user opens and the PDF a DPO files.

Building blocks only: the view chooses the pupils (the pupil list's own filters) and audits the export;
this module loads those pupils in batches, a constant number of queries per batch however many pupils,
and turns each one into a `RegisterRow`, then into CSV lines or a PDF.
"""

import csv
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from lib.csvsafe import csv_safe_row
from lib.pdf import render_pdf

from .models import ConsentEvent, ConsentState, ConsentStatus, Group, Guardian, Guardianship, Pupil, Purpose
from .services import GuardianDecision, effective_state

BATCH_SIZE = 500
PDF_TEMPLATE = "consent/exports/register_pdf.html"

# The same words as the registry's badges, so the page, the CSV and the PDF say the same thing.
STATE_LABELS: dict[str, str] = {
    ConsentState.GIVEN: "Consent given",
    ConsentState.REFUSED: "Refused",
    ConsentState.WITHDRAWN: "Withdrawn",
    ConsentState.LAPSED: "Lapsed",
    ConsentState.NONE: "No answer",
}
CHANNEL_LABELS = dict(ConsentEvent.Channel.choices)


@dataclass(frozen=True)
class GuardianEntry:
    """One guardian of a pupil and their own decision, as the register shows it."""

    name: str
    relationship: str
    parental_responsibility: bool
    state: str
    renewal_needed: bool
    channel: str = ""
    decided_on: date | None = None
    decided_at: datetime | None = None

    @property
    def decision_label(self) -> str:
        label = STATE_LABELS[self.state]
        return f"{label} (renewal needed)" if self.state == ConsentState.GIVEN and self.renewal_needed else label


@dataclass(frozen=True)
class RegisterRow:
    pupil: Pupil
    groups: tuple[str, ...]
    state: str
    renewal_needed: bool
    guardians: tuple[GuardianEntry, ...]
    deciding: GuardianEntry | None

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def state_key(self) -> str:
        """For styling: the registry's badge keys (renewal is its own colour)."""
        return "renewal" if self.state == ConsentState.GIVEN and self.renewal_needed else self.state


def deciding_guardian(state: str, renewal_needed: bool, guardians: Sequence[GuardianEntry]) -> GuardianEntry | None:
    """The guardian whose decision gives the pupil its state under "a refusal wins, any guardian with
    parental responsibility may consent": among the decisions that hold that state, the most recent one
    (for consent, from a guardian with parental responsibility, and one that is renewed if any is). No
    answer has no deciding guardian."""
    if state == ConsentState.NONE:
        return None
    candidates = [g for g in guardians if g.state == state]
    if state == ConsentState.GIVEN:
        candidates = [g for g in candidates if g.parental_responsibility]
        if not renewal_needed:
            candidates = [g for g in candidates if not g.renewal_needed]
    dated = [g for g in candidates if g.decided_at is not None]
    if dated:
        return max(dated, key=lambda g: g.decided_at)
    return candidates[0] if candidates else None


RELATIONSHIP_LABELS = dict(Guardianship.Relationship.choices)


def _guardian_entry(link: dict, status: dict | None, tz) -> GuardianEntry:
    state = status["state"] if status else ConsentState.NONE
    decided_at = status["last_event__created_at"] if status and state != ConsentState.NONE else None
    # A decision that reached the school by email, paper or phone is dated the day it was received.
    decided_on = (status["last_event__received_on"] or decided_at.astimezone(tz).date()) if decided_at else None
    channel = status["last_event__channel"] if decided_at else ""
    return GuardianEntry(
        name=f"{link['guardian__first_name']} {link['guardian__last_name']}".strip(),
        relationship=RELATIONSHIP_LABELS.get(link["relationship"], link["relationship"]),
        parental_responsibility=link["parental_responsibility"],
        state=state,
        renewal_needed=bool(status and status["renewal_needed"]),
        channel=CHANNEL_LABELS.get(channel, channel),
        decided_on=decided_on,
        decided_at=decided_at,
    )


def register_rows(
    pupil_ids: Sequence[int], *, purpose: Purpose, tz, batch_size: int | None = None
) -> Iterator[RegisterRow]:
    """One row per pupil, in the order of `pupil_ids`; four queries per batch of `batch_size` pupils.

    The effective state is combined by `services.effective_state`, the registry's one rule for several
    guardians, from the same status rows the pupil list and sending read. Guardians, groups and statuses
    are read as values, not model instances: 10,000 pupils take seconds, not minutes.
    """
    batch_size = batch_size or BATCH_SIZE
    for start in range(0, len(pupil_ids), batch_size):
        batch = pupil_ids[start:start + batch_size]
        pupils = Pupil.objects.filter(pk__in=batch).only(
            "pk", "school_id", "mis_id", "first_name", "last_name", "year_group", "left_on"
        ).in_bulk()
        groups: dict[int, list[str]] = {pk: [] for pk in batch}
        for pupil_id, name in (
            Group.pupils.through.objects.filter(pupil_id__in=batch)
            .order_by("group__name").values_list("pupil_id", "group__name")
        ):
            groups[pupil_id].append(name)
        links = (
            Guardianship.objects.filter(pupil_id__in=batch)
            .order_by("guardian__last_name", "guardian__first_name", "guardian_id")
            .values("pupil_id", "guardian_id", "relationship", "parental_responsibility",
                    "guardian__first_name", "guardian__last_name")
        )
        statuses = {
            (s["guardian_id"], s["pupil_id"]): s
            for s in ConsentStatus.objects.filter(purpose=purpose, pupil_id__in=batch).values(
                "guardian_id", "pupil_id", "state", "renewal_needed",
                "last_event__created_at", "last_event__received_on", "last_event__channel",
            )
        }
        entries: dict[int, list[GuardianEntry]] = {pk: [] for pk in batch}
        decisions: dict[int, list[GuardianDecision]] = {pk: [] for pk in batch}
        for link in links:
            entry = _guardian_entry(link, statuses.get((link["guardian_id"], link["pupil_id"])), tz)
            entries[link["pupil_id"]].append(entry)
            guardian = Guardian(pk=link["guardian_id"], first_name=link["guardian__first_name"],
                                last_name=link["guardian__last_name"])
            decisions[link["pupil_id"]].append(GuardianDecision(
                guardian=guardian, parental_responsibility=entry.parental_responsibility,
                state=entry.state, renewal_needed=entry.renewal_needed,
            ))
        for pk in batch:
            pupil = pupils.get(pk)
            if pupil is None:  # deleted since the ids were read
                continue
            state, renewal_needed = effective_state(decisions[pk], purpose.guardians_rule)
            guardians = tuple(entries[pk])
            yield RegisterRow(
                pupil=pupil,
                groups=tuple(groups[pk]),
                state=state,
                renewal_needed=renewal_needed,
                guardians=guardians,
                deciding=deciding_guardian(state, renewal_needed, guardians),
            )


# --- CSV ------------------------------------------------------------------------------------------
#
# Layout: one row per pupil, and for each guardian a block of six columns ("Guardian 1 name", …,
# "Guardian 2 name", …), as many blocks as the pupil with most guardians needs. One row per pupil keeps
# the spreadsheet countable (a filter on "Consent" counts pupils, not contacts) and sortable; separate
# columns per guardian keep each guardian's decision filterable, which one cell joining all guardians
# ("Ann Smith: given; Bob Smith: refused") would not. Every cell goes through `csv_safe`: names come from
# MIS imports and may be `=HYPERLINK(...)`.

GUARDIAN_COLUMNS = ("name", "relationship", "parental responsibility", "decision", "channel", "date")
PUPIL_COLUMNS = (
    "Last name", "First name", "MIS id", "Year group", "Groups", "Left on", "Consent", "Renewal needed",
    "Decided by", "Channel", "Date of decision", "Guardians",
)


def _yes_no(value: bool) -> str:
    return "Yes" if value else "No"


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def csv_header(max_guardians: int) -> list[str]:
    header = list(PUPIL_COLUMNS)
    for number in range(1, max_guardians + 1):
        header += [f"Guardian {number} {column}" for column in GUARDIAN_COLUMNS]
    return header


def csv_record(row: RegisterRow, max_guardians: int) -> list[str]:
    pupil, deciding = row.pupil, row.deciding
    record = [
        pupil.last_name, pupil.first_name, pupil.mis_id, pupil.year_group, "; ".join(row.groups),
        _iso(pupil.left_on), row.state_label, _yes_no(row.renewal_needed),
        deciding.name if deciding else "", deciding.channel if deciding else "",
        _iso(deciding.decided_on) if deciding else "", str(len(row.guardians)),
    ]
    for guardian in row.guardians[:max_guardians]:
        record += [
            guardian.name, guardian.relationship, _yes_no(guardian.parental_responsibility),
            guardian.decision_label, guardian.channel, _iso(guardian.decided_on),
        ]
    record += [""] * (len(csv_header(max_guardians)) - len(record))
    return record


class _Line:
    """A file-like object whose write() returns what it was given: csv.writer then formats one line."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[RegisterRow], *, max_guardians: int) -> Iterator[str]:
    """The CSV, line by line: a UTF-8 byte order mark (so that Excel reads the accents), the header,
    then one line per pupil. Every cell is passed through `csv_safe`."""
    writer = csv.writer(_Line())
    yield "\ufeff" + writer.writerow(csv_safe_row(csv_header(max_guardians)))
    for row in rows:
        yield writer.writerow(csv_safe_row(csv_record(row, max_guardians)))


# --- PDF ------------------------------------------------------------------------------------------

COUNT_KEYS = (
    ("consented", "Consent given"),
    ("renewal", "of which renewal needed"),
    ("refused", "Refused"),
    ("withdrawn", "Withdrawn"),
    ("lapsed", "Lapsed"),
    ("no_answer", "No answer"),
)
_COUNT_OF_STATE = {
    ConsentState.GIVEN: "consented",
    ConsentState.REFUSED: "refused",
    ConsentState.WITHDRAWN: "withdrawn",
    ConsentState.LAPSED: "lapsed",
    ConsentState.NONE: "no_answer",
}


def register_counts(rows: Iterable[RegisterRow]) -> dict[str, int]:
    """Pupils per effective state. "Renewal needed" is part of "consent given": that consent still holds
    until the renewal deadline."""
    counts: Counter[str] = Counter()
    for row in rows:
        counts["total"] += 1
        counts[_COUNT_OF_STATE[row.state]] += 1
        if row.renewal_needed:
            counts["renewal"] += 1
    return {key: counts[key] for key, _ in COUNT_KEYS} | {"total": counts["total"]}


def register_pdf(*, rows: Sequence[RegisterRow], context: dict) -> bytes:
    """The register as a PDF (landscape: the table has nine columns). `context` carries the title,
    school, purpose, notice, filters and who generated it; see the template."""
    counts = register_counts(rows)
    count_rows = [(label, counts[key], key) for key, label in COUNT_KEYS]
    return render_pdf(PDF_TEMPLATE, {
        **context, "rows": rows, "counts": counts, "count_rows": count_rows, "orientation": "landscape",
    })
