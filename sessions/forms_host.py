"""Forms of the host's pages: attendance (one row per child) and the incident report."""

from django import forms

from .host import DESCRIPTION_MAX, RosterChild
from .models import Attendance, Incident

PRESENT_CHOICES = [("yes", "Present"), ("no", "Absent")]
ADULT_CHOICES = [("yes", "Yes"), ("no", "No"), ("unknown", "Not known")]
ADULT_VALUES = {"yes": True, "no": False, "unknown": None}


def _adult_choice(value: bool | None) -> str:
    return {True: "yes", False: "no"}.get(value, "unknown")


class AttendanceForm(forms.Form):
    """Two fields per child, `present_<id>` and `adult_<id>`. Every child needs an answer to "present?": a
    missing answer is an error rather than a silent "absent"."""

    def __init__(self, *args, children: list[RosterChild], recorded: dict[int, Attendance], **kwargs):
        super().__init__(*args, **kwargs)
        self.children = children
        for child in children:
            record = recorded.get(child.pk)
            self.fields[f"present_{child.pk}"] = forms.ChoiceField(
                label=child.name, choices=PRESENT_CHOICES, widget=forms.RadioSelect,
                initial=("yes" if record.present else "no") if record else None,
                error_messages={"required": f"Say whether {child.name} was present."})
            self.fields[f"adult_{child.pk}"] = forms.ChoiceField(
                label=f"Adult present with {child.name}", choices=ADULT_CHOICES, widget=forms.RadioSelect,
                initial=_adult_choice(record.adult_present) if record else "unknown", required=False)

    def rows(self) -> list[dict]:
        """For the template: each child with its two bound fields."""
        return [{"child": child, "present": self[f"present_{child.pk}"], "adult": self[f"adult_{child.pk}"]}
                for child in self.children]

    def attendance(self) -> dict[int, tuple[bool, bool | None]]:
        data = self.cleaned_data
        return {child.pk: (data[f"present_{child.pk}"] == "yes", ADULT_VALUES.get(data[f"adult_{child.pk}"]))
                for child in self.children}


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
