"""Forms of the consent requests page. Each takes the school and restricts its querysets to it."""

from django import forms

from .models import Group
from .requests import RequestStatus


def _groups(school):
    return Group.objects.filter(school=school).order_by("kind", "name")


class RequestsFilterForm(forms.Form):
    q = forms.CharField(label="Guardian's name or email", required=False, max_length=100)
    status = forms.ChoiceField(
        choices=[("", "Any status"), *RequestStatus.choices], required=False,
        widget=forms.Select(attrs={"class": "form-select"}),
    )
    group = forms.ModelChoiceField(
        queryset=Group.objects.none(), required=False, empty_label="Whole school",
        widget=forms.Select(attrs={"class": "form-select"}),
    )

    def __init__(self, *args, school, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = _groups(school)


class RequestsSendForm(forms.Form):
    """Who to ask: a group or the whole school. Read by GET for the confirmation, then POSTed to send."""

    group = forms.ModelChoiceField(
        queryset=Group.objects.none(), required=False, empty_label="Whole school",
        widget=forms.Select(attrs={"class": "form-select"}),
        help_text="Guardians of the pupils in this group; their email covers all their children at the school.",
    )
    include_exhausted = forms.BooleanField(
        label="Also ask again guardians whose reminders have all been sent", required=False,
    )

    def __init__(self, *args, school, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = _groups(school)
