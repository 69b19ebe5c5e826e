"""Forms of the incidents pages: the log's filter, closing an incident, and stopping every school's lessons."""

from django import forms

from .incidents import NOTE_MAX, LogFilter
from .models import Incident


class IncidentLogForm(forms.Form):
    """The log's filter. A value that does not make sense is reported on the form and left out of the filter;
    what was typed stays in the fields."""

    school = forms.TypedChoiceField(label="School", required=False, coerce=int, empty_value=None,
                                    error_messages={"invalid_choice": "Choose a school from the list."})
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "Any kind"), *Incident.Kind.choices],
                             error_messages={"invalid_choice": "Choose a kind from the list."})
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *Incident.Status.choices],
                               error_messages={"invalid_choice": "Choose a status from the list."})
    reported_from = forms.DateField(label="Reported from", required=False,
                                    widget=forms.DateInput(attrs={"type": "date"}),
                                    error_messages={"invalid": "Enter a date, such as 3 December 2026."})
    reported_to = forms.DateField(label="to", required=False, widget=forms.DateInput(attrs={"type": "date"}),
                                  error_messages={"invalid": "Enter a date, such as 3 December 2026."})

    def __init__(self, *args, schools: list, **kwargs):
        super().__init__(*args, **kwargs)
        if len(schools) > 1:
            self.fields["school"].choices = [("", "Every school"), *((s.pk, s.name) for s in schools)]
        else:
            del self.fields["school"]

    def clean(self):
        data = super().clean()
        start, end = data.get("reported_from"), data.get("reported_to")
        if start and end and start > end:
            self.add_error("reported_to", "Choose a date on or after the first one.")
        return data

    def log_filter(self) -> LogFilter:
        """The filter from the fields that are valid (all of them when the form is)."""
        data = getattr(self, "cleaned_data", {}) if self.is_bound else {}
        valid = {name: value for name, value in data.items() if name not in self.errors}
        return LogFilter(school_id=valid.get("school"), kind=valid.get("kind") or "",
                         status=valid.get("status") or "", reported_from=valid.get("reported_from"),
                         reported_to=valid.get("reported_to"))


class IncidentCloseForm(forms.Form):
    note = forms.CharField(
        label="Closing note", widget=forms.Textarea(attrs={"rows": 4}), max_length=NOTE_MAX,
        error_messages={"required": "Write a closing note: what was done, and whether anything changes."},
        help_text="What was done about it, and whether anything changes. Kept with the incident and in the audit "
                  "trail.")


class IncidentEscalateForm(forms.Form):
    reason = forms.CharField(
        label="Why every school must stop", widget=forms.Textarea(attrs={"rows": 3}), max_length=1000,
        error_messages={"required": "Say why every school must stop until the review."},
        help_text="Shown on every lesson of the organisation until the risk assessment is reviewed. Do not name "
                  "the child.")
