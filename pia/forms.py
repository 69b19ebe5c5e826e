"""Forms of the PIA register and its step pages. They only validate what was typed; the services in
`pia.editing` decide and write. A risk's rating is never a field: it is computed on the version's matrix."""

from django import forms

from riskassess.matrix import Matrix

from .models import Consultation, PiaVersion, PrivacyRisk
from .questions import PRINCIPLES, SCREENING

ORGANISATION_WIDE = "organisation"
MAX_ROWS = 100
TABLE_FIELDS = ("id", "ORDER", "DELETE")
YES_NO = (("yes", "Yes"), ("no", "No"))


class DateInput(forms.DateInput):
    """A browser date picker: its value must be ISO (YYYY-MM-DD) to show the initial date."""

    input_type = "date"

    def __init__(self, attrs=None, format="%Y-%m-%d"):
        super().__init__(attrs=attrs, format=format)


def _text(label: str, rows: int = 3, required: bool = False, help_text: str = "") -> forms.CharField:
    return forms.CharField(label=label, required=required, max_length=20_000, help_text=help_text,
                           widget=forms.Textarea(attrs={"rows": rows}))


def _tidy(value):
    # Browsers post text areas with CRLF line ends: store what was typed.
    return value.replace("\r\n", "\n").strip() if isinstance(value, str) else value


class _TidyForm(forms.Form):
    def clean(self):
        data = super().clean()
        return {name: _tidy(value) for name, value in data.items()}


# --- The register and a new PIA ---------------------------------------------------------------------------


class RegisterFilterForm(forms.Form):
    q = forms.CharField(label="Search titles", required=False, max_length=200)
    status = forms.ChoiceField(label="Status of the current version", required=False)
    school = forms.TypedChoiceField(label="School", required=False, coerce=int, empty_value=None)

    def __init__(self, *args, schools, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "Any status"), *PiaVersion.Status.choices]
        self.fields["school"].choices = [("", "All schools")] + [(s.pk, s.name) for s in schools]


class _ScreeningFields(_TidyForm):
    """The eight screening questions: yes or no, with a note each."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for number, question in enumerate(SCREENING, start=1):
            self.fields[f"answer_{question.key}"] = forms.ChoiceField(
                label=f"{number}. {question.text}", choices=YES_NO, widget=forms.RadioSelect,
                error_messages={"required": "Answer yes or no."},
            )
            self.fields[f"note_{question.key}"] = forms.CharField(
                label="Note (optional)", required=False, max_length=1000,
                widget=forms.TextInput(attrs={"class": "form-control form-control-sm"}),
            )

    @staticmethod
    def initial_from(screening: dict) -> dict:
        initial = {}
        for question in SCREENING:
            entry = screening.get(question.key) or {}
            initial[f"answer_{question.key}"] = entry.get("answer") or None
            initial[f"note_{question.key}"] = entry.get("note", "")
        return initial

    def screening(self) -> dict:
        return {q.key: {"answer": self.cleaned_data[f"answer_{q.key}"], "note": self.cleaned_data[f"note_{q.key}"]}
                for q in SCREENING}

    def screening_rows(self):
        return [(question, self[f"answer_{question.key}"], self[f"note_{question.key}"]) for question in SCREENING]


class NewPiaForm(_ScreeningFields):
    title = forms.CharField(label="Project title", max_length=200, help_text='For example "Zoom".')
    where = forms.ChoiceField(label="The PIA covers")
    start = forms.ChoiceField(
        label="Start from", widget=forms.RadioSelect, initial="template",
        choices=(("template", "The template: the seed's complete PIA for a video platform (Zoom), with its data "
                              "table, risks, solutions and actions, to check and adapt"),
                 ("blank", "A blank form")),
    )
    confirm_not_indicated = forms.BooleanField(
        label="Create the PIA anyway", required=False,
        help_text="Every answer is no: a PIA is not indicated. Tick this to create one all the same.",
    )

    def __init__(self, *args, schools, organisations, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(str(s.pk), s.name) for s in schools]
        choices += [(f"{ORGANISATION_WIDE}-{o.pk}", f"Every school of {o.name} (organisation-wide)")
                    for o in organisations]
        self.fields["where"].choices = choices
        self._schools = {str(s.pk): s for s in schools}
        self._organisations = {f"{ORGANISATION_WIDE}-{o.pk}": o for o in organisations}

    def target(self):
        """(organisation, school): the school is None for an organisation-wide PIA."""
        where = self.cleaned_data["where"]
        if where in self._schools:
            school = self._schools[where]
            return school.organisation, school
        return self._organisations[where], None


# --- Step pages -------------------------------------------------------------------------------------------


class DetailsForm(_TidyForm):
    title = forms.CharField(label="Project title", max_length=200)
    division = forms.CharField(label="School / division / team", max_length=200, required=False)
    lead_officer = forms.CharField(label="Lead / contact officer", max_length=200, required=False,
                                   help_text="A role rather than a name keeps the PIA right when people change.")
    review_on = forms.DateField(label="Review date", required=False, widget=DateInput,
                                help_text="After this date the PIA shows as out of date.")


class ScreeningForm(_ScreeningFields):
    pass


class NeedForm(_TidyForm):
    aims = _text("Explain what the project aims to achieve")
    benefits_organisation = _text("Benefits to the organisation", 2)
    benefits_individuals = _text("Benefits to individuals", 2)
    benefits_others = _text("Benefits to other parties", 2)
    related_documents = _text("Other relevant documents related to the project", 3,
                              help_text="Links to the platform's privacy policy, your risk assessment, protocols.")
    need_reason = _text("Why the need for a PIA was identified")


class FlowsForm(_TidyForm):
    collection = _text("Collection", help_text="How and with whose agreement the information is collected.")
    use = _text("Use")
    deletion = _text("Deletion", 2)
    flow_description = _text("Flow description", 4,
                             help_text="Where the information goes, step by step (a simple arrow flow helps).")


class ConsultationTextForm(_TidyForm):
    risks_identified = _text("Practical steps to ensure that risks are identified", 4)
    risks_addressed = _text("Practical steps to ensure that privacy risks are addressed", 5)
    internal_consultees = _text("Internal consultation with", 2)
    external_consultees = _text("External consultation with", 3)
    consultation_method = _text("Consultation methodology", 3,
                                help_text="Link it to the stages of the project.")


class ContactForm(_TidyForm):
    contact_point = _text("Contact point for future privacy concerns", 2,
                          help_text="A role (the headteacher, the DPO) rather than a name.")


class PrinciplesForm(_TidyForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for principle in PRINCIPLES:
            for question in principle.questions:
                self.fields[question.key] = _text(question.text, 2)

    def groups(self):
        return [(principle, [self[q.key] for q in principle.questions]) for principle in PRINCIPLES]

    @staticmethod
    def initial_from(principles: dict) -> dict:
        return {q.key: principles.get(q.key, "") for p in PRINCIPLES for q in p.questions}


# --- Rows ---------------------------------------------------------------------------------------------------


class _RowForm(_TidyForm):
    """One row of a table: its fields, its id (empty for a new row) and, from the formset, ORDER and DELETE."""

    id = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field.widget, forms.Select):
                field.widget.attrs.setdefault("class", "form-select form-select-sm")
            elif isinstance(field.widget, (forms.Textarea, forms.TextInput, forms.DateInput)):
                field.widget.attrs.setdefault("class", "form-control form-control-sm")

    def has_changed(self) -> bool:
        # A blank new row whose only change is its position is empty.
        return any(name not in TABLE_FIELDS for name in self.changed_data)

    @property
    def is_new(self) -> bool:
        return not self["id"].value()

    def values(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.fields if name not in TABLE_FIELDS}


class DataItemRowForm(_RowForm):
    data_type = forms.CharField(label="Type of data", max_length=300,
                                widget=forms.Textarea(attrs={"rows": 2, "maxlength": 300}))
    examples = _text("Examples", 3)
    platform_uses = _text("What the platform uses it for", 3)


class ConsultationRowForm(_RowForm):
    kind = forms.ChoiceField(label="Internal or external", choices=Consultation.Kind.choices)
    held_on = forms.DateField(label="Date", widget=DateInput)
    description = forms.CharField(label="Consultation", max_length=300,
                                  help_text='For example "Staff meeting" or "Letter to parents".')


def _score_choices(labels) -> list[tuple]:
    return [("", "Choose")] + [(index, f"{index} — {label}") for index, label in enumerate(labels, start=1)]


class RiskRowForm(_RowForm):
    privacy_issue = _text("Privacy issue", 2, required=True)
    risk_to_individuals = _text("Risk to individuals", 2)
    compliance_risk = _text("Compliance risk", 2)
    organisational_risk = _text("Associated organisation / corporate risk", 2)
    likelihood = forms.TypedChoiceField(label="Likelihood", coerce=int)
    severity = forms.TypedChoiceField(label="Severity", coerce=int)

    def __init__(self, *args, matrix: Matrix, **kwargs):
        super().__init__(*args, **kwargs)
        self.matrix = matrix
        self.fields["likelihood"].choices = _score_choices(matrix.likelihood_labels)
        self.fields["severity"].choices = _score_choices(matrix.severity_labels)
        for name in ("likelihood", "severity"):
            self.fields[name].widget.attrs["data-score"] = name

    @property
    def rating_preview(self) -> dict | None:
        """The rating and band shown beside the scores (the server computes them again on save)."""
        try:
            rating = self.matrix.rating(int(self["likelihood"].value()), int(self["severity"].value()))
        except (TypeError, ValueError):
            return None
        band = self.matrix.band(rating)
        return {"rating": rating, "label": band.label, "key": band.key}


class SolutionRowForm(_RowForm):
    solution = _text("Solution(s)", 3)
    result = forms.ChoiceField(label="Result: is the risk eliminated, reduced, or accepted?", required=False,
                               choices=[("", "Not decided yet"), *PrivacyRisk.Result.choices])
    evaluation = _text("Evaluation: is the final impact on individuals a justified, compliant and proportionate "
                       "response to the aims of the project?", 3)


class ActionRowForm(_RowForm):
    action = _text("Action to be taken", 2, required=True)
    due_on = forms.DateField(label="Date for completion", required=False, widget=DateInput)
    due_note = forms.CharField(label="Or when", max_length=100, required=False,
                               help_text='e.g. "On release", "Immediately"')
    responsibility = forms.CharField(label="Responsibility for action", max_length=200, required=False)
    responsible_user = forms.ModelChoiceField(label="Remind", required=False, queryset=None,
                                              empty_label="Nobody", help_text="Reminded when the action falls due.")

    def __init__(self, *args, staff, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["responsible_user"].queryset = staff
        self.fields["responsible_user"].label_from_instance = lambda u: u.get_full_name() or u.get_username()


class BaseRowFormSet(forms.BaseFormSet):
    """A table's rows in one form: posted in their ORDER, DELETE marks a row to remove."""

    def __init__(self, *args, row_ids: frozenset[int], **kwargs):
        self.row_ids = row_ids
        super().__init__(*args, **kwargs)

    def add_fields(self, form, index):
        super().add_fields(form, index)
        if "ORDER" in form.fields:
            form.fields["ORDER"].label = "Position"
            form.fields["ORDER"].widget.attrs.update({"min": 1, "max": MAX_ROWS, "data-order": "",
                                                      "class": "form-control form-control-sm pia-order-input"})
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Remove this row"
            form.fields["DELETE"].widget.attrs.update({"class": "form-check-input", "data-delete": ""})

    def clean(self):
        if any(self.errors):
            return
        seen = set()
        for form in self.forms:
            pk = form.cleaned_data.get("id")
            if pk is None:
                continue
            if pk in seen or pk not in self.row_ids:
                raise forms.ValidationError("The rows changed while you were editing: nothing was saved. Reload "
                                            "the page to see them as they are now.", code="rows_changed")
            seen.add(pk)

    def rows(self) -> list[dict]:
        """What `pia.editing.rows_save` takes: the rows to remove, then the others in their posted order."""
        removed = [{"id": form.cleaned_data["id"], "delete": True}
                   for form in self.deleted_forms if form.cleaned_data.get("id")]
        ordered = self.ordered_forms if self.can_order else [
            form for form in self.forms if form.cleaned_data.get("id") or form.has_changed()]
        kept = [{"id": form.cleaned_data.get("id"), **form.values()} for form in ordered]
        return removed + kept


def row_formset(form_class, *, can_add: bool = True):
    if not can_add:
        return forms.formset_factory(form_class, formset=BaseRowFormSet, extra=0, max_num=MAX_ROWS,
                                     absolute_max=MAX_ROWS)
    return forms.formset_factory(form_class, formset=BaseRowFormSet, extra=1, can_order=True, can_delete=True,
                                 can_delete_extra=True, max_num=MAX_ROWS, absolute_max=MAX_ROWS, validate_max=True)


DataItemFormSet = row_formset(DataItemRowForm)
ConsultationFormSet = row_formset(ConsultationRowForm)
RiskFormSet = row_formset(RiskRowForm)
SolutionFormSet = row_formset(SolutionRowForm, can_add=False)
ActionFormSet = row_formset(ActionRowForm)
