"""Forms of the risk register's assessment pages. Scores are chosen from the version's matrix labels;
ratings are never a field (the server computes them)."""

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from schools.models import School

from .editing import RowChange
from .matrix import Matrix
from .models import Assessment, AssessmentVersion
from .services import check_review_on

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
        if review_on and "review_on" not in self.errors:
            try:
                check_review_on(review_on)
            except forms.ValidationError as error:
                self.add_error(None, error)
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


# --- The rows of a draft, edited together -------------------------------------------------------------

# Fields of a row that are bookkeeping of the table rather than the row's content.
TABLE_FIELDS = ("id", "ORDER", "DELETE")
MAX_ROWS = 200


class HazardRowForm(HazardForm):
    """One row of the editing table: a hazard's fields, its id (empty for a new row), and, from the
    formset, its ORDER and DELETE. Scores start blank on a new row, so an untouched blank row is empty."""

    id = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, version: AssessmentVersion, owner_choices: list | None = None, **kwargs):
        super().__init__(*args, version=version, **kwargs)
        self.matrix: Matrix = version.get_matrix()
        if owner_choices is not None:
            # The staff list, read once for the whole table (validation still checks against the queryset).
            self.fields["action_owner"].widget.choices = owner_choices
        for name, labels in (("likelihood", self.matrix.likelihood_labels),
                             ("severity", self.matrix.severity_labels)):
            self.fields[name].choices = _score_choices(labels, blank="Choose")
            self.fields[f"residual_{name}"].choices = _score_choices(labels, blank="Not judged")
        self.fields["activity_element"].widget = forms.Textarea(attrs={"rows": 3, "maxlength": 300})
        self.fields["hazard"].widget.attrs["rows"] = 3
        self.fields["controls"].widget.attrs["rows"] = 5
        self.fields["further_action"].widget.attrs["rows"] = 2
        self.fields["initials"].widget.attrs["size"] = 4
        self.fields["action_owner"].empty_label = "Nobody yet"
        for field in self.fields.values():
            if isinstance(field.widget, forms.Select):
                field.widget.attrs.setdefault("class", "form-select form-select-sm")
            elif not isinstance(field.widget, forms.HiddenInput):
                field.widget.attrs.setdefault("class", "form-control form-control-sm")

    def add_error(self, field, error):
        super().add_error(field, error)
        # Mark the fields in error for the eye and for assistive technology (the message's id is in the template).
        for name in self.errors:
            if name in self.fields and not self.fields[name].widget.attrs.get("aria-describedby"):
                attrs = self.fields[name].widget.attrs
                attrs["class"] = f"{attrs.get('class', '')} is-invalid".strip()
                attrs["aria-describedby"] = f"{self[name].auto_id}-error"

    def has_changed(self) -> bool:
        # A new row whose only change is its place in the table (renumbered by the page's script) is empty.
        return any(name not in TABLE_FIELDS for name in self.changed_data)

    def clean(self):
        data = super().clean()
        # Browsers post text areas with CRLF line ends: store what was typed, not a changed line end.
        for name in ("activity_element", "hazard", "controls", "further_action"):
            if isinstance(data.get(name), str):
                data[name] = data[name].replace("\r\n", "\n").strip()
        # The service says so too; saying it here reports it with the other rows' errors.
        residual = {name: data.get(name) for name in ("residual_likelihood", "residual_severity")}
        missing = [name for name, value in residual.items() if value is None and name not in self.errors]
        if len(missing) == 1 and not self.errors:
            self.add_error(missing[0], "Give both residual scores, or neither.")
        return data

    def _preview(self, likelihood: str, severity: str) -> dict | None:
        """The rating and band the page shows before saving (the server computes them again on save)."""
        try:
            rating = self.matrix.rating(int(self[likelihood].value()), int(self[severity].value()))
        except (TypeError, ValueError):
            return None
        band = self.matrix.band(rating)
        return {"rating": rating, "label": band.label, "key": band.key}

    @property
    def rating_preview(self) -> dict | None:
        return self._preview("likelihood", "severity")

    @property
    def residual_preview(self) -> dict | None:
        return self._preview("residual_likelihood", "residual_severity")

    @property
    def is_new(self) -> bool:
        return not self["id"].value()


class BaseHazardRowFormSet(forms.BaseFormSet):
    """Every row of a draft in one form: the rows posted in their ORDER, DELETE marks a row to remove."""

    def __init__(self, *args, version: AssessmentVersion, row_ids: frozenset[int], **kwargs):
        self.version = version
        self.row_ids = row_ids
        owners = HazardForm(version=version).fields["action_owner"]
        owners.empty_label = "Nobody yet"
        super().__init__(*args, form_kwargs={"version": version, "owner_choices": list(owners.choices)}, **kwargs)

    def add_fields(self, form, index):
        super().add_fields(form, index)
        form.fields["ORDER"].label = "Position"
        form.fields["ORDER"].widget.attrs.update({"min": 1, "max": MAX_ROWS, "data-order": "",
                                                  "class": "form-control form-control-sm risk-order-input"})
        form.fields["DELETE"].label = "Remove"
        form.fields["DELETE"].widget.attrs.update({"class": "form-check-input", "data-delete": ""})

    def clean(self):
        if any(self.errors):
            return
        seen = set()
        for form in self.forms:
            pk = form.cleaned_data.get("id")
            if pk is None or (self._should_delete_form(form) and pk not in seen):
                continue  # removing a row someone else removed already is no conflict
            if pk in seen or pk not in self.row_ids:
                raise forms.ValidationError(
                    "The rows of this assessment changed while you were editing (someone else removed or "
                    "changed a row): nothing was saved. Reload the page to see the rows as they are now.",
                    code="rows_changed",
                )
            seen.add(pk)

    def changes(self) -> list[RowChange]:
        """What to save: the rows to remove, then every other non-empty row in its posted ORDER."""
        removed = [RowChange(hazard_id=form.cleaned_data["id"], delete=True, form_index=self.forms.index(form))
                   for form in self.deleted_forms if form.cleaned_data.get("id")]
        kept = [RowChange(hazard_id=form.cleaned_data.get("id"), form_index=self.forms.index(form),
                          values={name: form.cleaned_data[name] for name in form.fields if name not in TABLE_FIELDS})
                for form in self._forms_in_order()]
        return removed + kept

    def _forms_in_order(self) -> list:
        """The rows to keep by their position numbers, those without one last. Two rows given the same number
        (typing 1 for a new row, without JavaScript) put the row whose number changed first: it was moved there."""
        forms = []
        for index, form in enumerate(self.forms):
            if index >= self.initial_form_count() and not form.has_changed():
                continue  # a blank row left blank
            if self._should_delete_form(form):
                continue
            position = form.cleaned_data.get("ORDER")
            moved = position != (index + 1 if index < self.initial_form_count() else None)
            forms.append(((position is None, position or 0, not moved, index), form))
        return [form for _key, form in sorted(forms, key=lambda item: item[0])]


HazardRowFormSet = forms.formset_factory(
    HazardRowForm, formset=BaseHazardRowFormSet, extra=1, can_order=True, can_delete=True, can_delete_extra=True,
    max_num=MAX_ROWS, absolute_max=MAX_ROWS, validate_max=True,
)


class ReviewNoChangeForm(forms.Form):
    """"Reviewed — no change needed" after an incident: the reviewer's written reason."""

    reason = forms.CharField(
        label="Why no change is needed", widget=forms.Textarea(attrs={"rows": 5}), max_length=1000,
        error_messages={"required": "Say why no change is needed: it is kept with the review."},
        help_text="For example: the controls held (the waiting room and the first-name check), the host followed "
                  "them, and the person was removed at once. Kept with the assessment and in the audit trail.")
