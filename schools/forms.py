import datetime

from django import forms
from django.db.models import Q, QuerySet
from django.utils import timezone

from .audit import ACTION_LABELS

# The families of actions, as the filter names them ("Any action about …").
ACTION_GROUPS = {
    "admin": "the admin site",
    "auth": "signing in",
    "consent": "consent",
    "demo": "the demo data",
    "email": "emails",
    "import": "imports from the MIS",
    "pia": "privacy impact assessments",
    "registry": "the registry",
    "retention": "retention",
    "rights": "parents' requests",
    "risk": "risk assessments",
    "session": "video sessions",
}


class AuditFilterForm(forms.Form):
    actor = forms.CharField(label="Who", required=False, max_length=100, help_text="Name or email, or part of it.")
    action = forms.ChoiceField(label="What", required=False)
    obj = forms.CharField(label="About", required=False, max_length=100,
                          help_text="A title, or a record's number.")
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        groups = sorted({name.split(".")[0] for name in ACTION_LABELS})
        choices = [("", "Any action")]
        for group in groups:
            choices.append((f"{group}.*", f"Anything about {ACTION_GROUPS.get(group, group)}"))
            choices += [(name, f"– {label[:1].upper()}{label[1:]}") for name, label in ACTION_LABELS.items()
                        if name.startswith(f"{group}.")]
        self.fields["action"].choices = choices

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError("The 'From' date must be on or before the 'To' date.")
        return cleaned

    def apply(self, entries: QuerySet) -> QuerySet:
        data = self.cleaned_data
        if data["actor"]:
            entries = entries.filter(actor_label__icontains=data["actor"])
        if data["action"].endswith(".*"):
            entries = entries.filter(action__startswith=data["action"][:-1])
        elif data["action"]:
            entries = entries.filter(action=data["action"])
        if data["obj"]:
            term = data["obj"]
            entries = entries.filter(
                Q(object_repr__icontains=term) | Q(object_type__icontains=term) | Q(object_id=term)
            )
        if data["date_from"]:
            entries = entries.filter(created_at__gte=_start_of(data["date_from"]))
        if data["date_to"]:
            entries = entries.filter(created_at__lt=_start_of(data["date_to"] + datetime.timedelta(days=1)))
        return entries


def _start_of(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, timezone.get_current_timezone())


class OrganisationSettingsForm(forms.Form):
    coverage_warning_percent = forms.IntegerField(
        label="Ask for a confirmation when fewer than this share of a lesson's children may attend (%)",
        min_value=0, max_value=100,
        help_text="0 never asks. The lesson's page keeps a warning below it too.")
    digest_hour = forms.TypedChoiceField(
        label="Send the daily digest at", coerce=int,
        choices=[(hour, f"{hour:02d}:00") for hour in range(24)],
        help_text="In each school's own time zone. Each person may turn their digest off.")
