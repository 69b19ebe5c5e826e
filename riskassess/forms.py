"""Forms of the risk register's assessment pages. Scores are chosen from the version's matrix labels;
ratings are never a field (the server computes them)."""

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from schools.models import School

from .matrix import Matrix
from .models import Assessment, AssessmentVersion

ORGANISATION_WIDE = "organisation"


class DateInput(forms.DateInput):
    """A browser date picker: its value must be ISO (YYYY-MM-DD) to show the initial date."""

    input_type = "date"

    def __init__(self, attrs=None, format="%Y-%m-%d"):
        super().__init__(attrs=attrs, format=format)


class RegisterFilterForm(forms.Form):
    school = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="School")

    def __init__(self, *args, schools, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["school"].choices = [("", "All schools")] + [(s.pk, s.name) for s in schools]


class _ReviewFields(forms.Form):
    assessor_name = forms.CharField(label="Person making the assessment", max_length=200)
    assessed_on = forms.DateField(label="Date of the assessment", widget=DateInput)
    review_on = forms.DateField(label="Review date", required=False, widget=DateInput)
    review_interval_months = forms.IntegerField(
        label="Or review interval (months after approval)", required=False, min_value=1, max_value=60
    )

    def clean(self):
        data = super().clean()
        review_on, interval = data.get("review_on"), data.get("review_interval_months")
        if review_on and interval:
            raise forms.ValidationError("Give a review date or a review interval, not both.")
        if not review_on and not interval and not self.errors:
            raise forms.ValidationError("Give a review date or a review interval.")
        assessed_on = data.get("assessed_on")
        if review_on and assessed_on and review_on <= assessed_on:
            self.add_error("review_on", "The review date comes after the date of the assessment.")
        return data


class VersionDetailsForm(_ReviewFields):
    """The header of a draft."""


class NewFromTemplateForm(_ReviewFields):
    field_order = ["where", "assessor_name", "assessed_on", "review_on", "review_interval_months"]
    where = forms.ChoiceField(label="For")

    def __init__(self, *args, schools, organisations, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(str(s.pk), s.name) for s in schools]
        choices += [(f"{ORGANISATION_WIDE}-{o.pk}", f"The whole of {o.name} (organisation-wide)")
                    for o in organisations]
        self.fields["where"].choices = choices
        self._schools = {str(s.pk): s for s in schools}
        self._organisations = {f"{ORGANISATION_WIDE}-{o.pk}": o for o in organisations}

    def target(self) -> tuple[School | None, object]:
        """(school, organisation) chosen: the school is None for an organisation-wide assessment."""
        where = self.cleaned_data["where"]
        if where in self._schools:
            school = self._schools[where]
            return school, school.organisation
        return None, self._organisations[where]


class CopyForm(_ReviewFields):
    field_order = ["school", "source", "assessor_name", "assessed_on", "review_on", "review_interval_months"]
    school = forms.ModelChoiceField(label="For", queryset=School.objects.none(), empty_label=None)
    source = forms.ModelChoiceField(label="Copy the approved assessment", queryset=Assessment.objects.none())

    def __init__(self, *args, schools, sources, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["school"].queryset = schools
        self.fields["source"].queryset = sources
        self.fields["source"].label_from_instance = lambda a: f"{a.school.name}: {a.title}"

    def clean(self):
        data = super().clean()
        school, source = data.get("school"), data.get("source")
        if school and source:
            if source.school_id == school.pk:
                self.add_error("source", "Choose an assessment of another school.")
            elif source.organisation_id != school.organisation_id:
                self.add_error("source", "Choose an assessment of a school of the same organisation.")
        return data


def _score_choices(labels, blank: str | None = None) -> list[tuple]:
    choices = [(index, f"{index} — {label}") for index, label in enumerate(labels, start=1)]
    return ([("", blank)] if blank is not None else []) + choices


class HazardForm(forms.Form):
    activity_element = forms.CharField(label="Location or activity element", max_length=300)
    hazard = forms.CharField(label="Potential hazard", widget=forms.Textarea(attrs={"rows": 2}))
    who_affected = forms.CharField(label="Who is affected", max_length=300, required=False)
    likelihood = forms.TypedChoiceField(label="Likelihood (L)", coerce=int)
    severity = forms.TypedChoiceField(label="Severity (S)", coerce=int)
    controls = forms.CharField(label="Action taken to reduce or control the risk", required=False,
                               widget=forms.Textarea(attrs={"rows": 4}))
    residual_likelihood = forms.TypedChoiceField(label="Residual likelihood", coerce=int, required=False,
                                                 empty_value=None)
    residual_severity = forms.TypedChoiceField(label="Residual severity", coerce=int, required=False,
                                               empty_value=None)
    further_action = forms.CharField(label="Further action required", required=False,
                                     widget=forms.Textarea(attrs={"rows": 2}))
    action_owner = forms.ModelChoiceField(label="Action owner", required=False,
                                          queryset=get_user_model().objects.none(), empty_label="Nobody yet")
    action_due_on = forms.DateField(label="Due date", required=False, widget=DateInput)
    action_done_on = forms.DateField(label="Done on", required=False, widget=DateInput)
    initials = forms.CharField(label="Initials", max_length=10, required=False)

    def __init__(self, *args, version: AssessmentVersion, **kwargs):
        super().__init__(*args, **kwargs)
        matrix: Matrix = version.get_matrix()
        for name, labels in (("likelihood", matrix.likelihood_labels), ("severity", matrix.severity_labels)):
            self.fields[name].choices = _score_choices(labels)
            self.fields[f"residual_{name}"].choices = _score_choices(labels, blank="Not judged yet")
            for field_name in (name, f"residual_{name}"):
                self.fields[field_name].widget.attrs["data-score"] = field_name
        assessment = version.assessment
        staff = Q(memberships__organisation_id=assessment.organisation_id, memberships__school__isnull=True)
        if assessment.school_id:
            staff |= Q(memberships__school_id=assessment.school_id)
        else:
            staff |= Q(memberships__organisation_id=assessment.organisation_id)
        self.fields["action_owner"].queryset = (
            get_user_model().objects.filter(staff, is_active=True).distinct().order_by("first_name", "last_name")
        )
        self.fields["action_owner"].label_from_instance = lambda u: u.get_full_name() or u.get_username()


class ConfirmForm(forms.Form):
    """A POST that only needs the CSRF token (remove, submit, approve)."""
