"""Forms of the host's pages: attendance (one row per child) and the incident report."""

from django import forms
from django.http import QueryDict

from .host import DESCRIPTION_MAX, RosterChild
from .models import Attendance, Incident

PRESENT_CHOICES = [("yes", "Present"), ("no", "Absent")]
ADULT_CHOICES = [("yes", "Yes"), ("no", "No"), ("unknown", "Not known")]
ADULT_VALUES = {"yes": True, "no": False, "unknown": None}


def _adult_choice(value: bool | None) -> str:
    return {True: "yes", False: "no"}.get(value, "unknown")


class AttendanceForm(forms.Form):
    """Two fields per child, `present_<id>` and `adult_<id>`. Every expected child (invited, or who may be
    admitted) needs an answer to "present?": a missing answer is an error rather than a silent "absent". The
    other children of the groups need none; an answer given for one of them (a child who joined anyway) is
    recorded like the others."""

    def __init__(self, *args, expected: list[RosterChild], others: list[RosterChild],
                 recorded: dict[int, Attendance], **kwargs):
        super().__init__(*args, **kwargs)
        self.expected, self.others = expected, others
        expected_ids = {child.pk for child in expected}
        for child in expected + others:
            record = recorded.get(child.pk)
            self.fields[f"present_{child.pk}"] = forms.ChoiceField(
                label=child.name, choices=PRESENT_CHOICES, widget=forms.RadioSelect, required=child.pk in expected_ids,
                initial=("yes" if record.present else "no") if record else None,
                error_messages={"required": f"Say whether {child.name} was present."})
            self.fields[f"adult_{child.pk}"] = forms.ChoiceField(
                label=f"Adult present with {child.name}", choices=ADULT_CHOICES, widget=forms.RadioSelect,
                initial=_adult_choice(record.adult_present) if record else "unknown", required=False)

    @staticmethod
    def with_rest_present(data: QueryDict, expected: list[RosterChild]) -> tuple[QueryDict, int]:
        """The submitted answers with every expected child not answered yet marked present, and how many that
        was: the "Mark the rest present" button when the page runs without JavaScript (with it, the page ticks
        the boxes itself and nothing is sent). An answer already given, "Absent" included, is kept."""
        data = data.copy()
        marked = 0
        for child in expected:
            if not data.get(f"present_{child.pk}"):
                data[f"present_{child.pk}"] = "yes"
                marked += 1
        return data, marked

    def _rows(self, children: list[RosterChild]) -> list[dict]:
        return [{"child": child, "present": self[f"present_{child.pk}"], "adult": self[f"adult_{child.pk}"]}
                for child in children]

    def expected_rows(self) -> list[dict]:
        return self._rows(self.expected)

    def other_rows(self) -> list[dict]:
        return self._rows(self.others)

    def others_answered(self) -> bool:
        """Whether one of the other children has an answer (given now, or recorded before): their list then
        opens, so that nobody's answer is hidden."""
        return any(self[f"present_{child.pk}"].value() for child in self.others)

    def attendance(self) -> dict[int, tuple[bool, bool | None]]:
        """The answered children only: pupil id → (present, adult present)."""
        data = self.cleaned_data
        return {child.pk: (data[f"present_{child.pk}"] == "yes", ADULT_VALUES.get(data[f"adult_{child.pk}"]))
                for child in self.expected + self.others if data.get(f"present_{child.pk}")}


class IncidentForm(forms.Form):
    kind = forms.ChoiceField(choices=Incident.Kind.choices, widget=forms.RadioSelect, label="What kind of incident?",
                             error_messages={"required": "Choose what kind of incident it was."})
    description = forms.CharField(
        label="What happened", widget=forms.Textarea(attrs={"rows": 6}), max_length=DESCRIPTION_MAX,
        error_messages={"required": "Say what happened."},
        help_text="Facts only: what you saw and heard, when, and what you did. Kept encrypted; the headteacher's "
                  "email does not include it.")
    ended_early = forms.BooleanField(label="The session was ended early because of it", required=False)

    def clean_description(self) -> str:
        description = self.cleaned_data["description"].strip()
        if not description:
            raise forms.ValidationError("Say what happened.")
        return description
