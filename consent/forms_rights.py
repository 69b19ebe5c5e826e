"""Forms of parents' rights: the parent's request form, and the staff queue's filters and actions.

Each form takes the guardian or the schools in scope and restricts its querysets to them.
"""

from django import forms
from django.db.models import QuerySet

from .models import Guardian, Pupil, RightsRequest
from .rights import (
    MAX_DETAILS_LENGTH,
    MAX_RESPONSE_LENGTH,
    NEXT_STATUSES,
    PARENT_KINDS,
    REASON_MAX_LENGTH,
    STAFF_CHANNELS,
)

Kind = RightsRequest.Kind
Status = RightsRequest.Status


def _children(guardian: Guardian) -> QuerySet:
    return Pupil.objects.filter(guardianships__guardian=guardian, school_id=guardian.school_id).order_by(
        "first_name", "last_name", "pk"
    )


class ChildChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Pupil) -> str:
        return f"{obj.first_name} {obj.last_name}"


class ParentRightsRequestForm(forms.Form):
    """One of the three requests a parent sends from their link. The page shows one form per kind, each
    with its own `auto_id`, so that the labels and ids of the three never collide."""

    kind = forms.ChoiceField(choices=[(k.value, k.label) for k in PARENT_KINDS], widget=forms.HiddenInput)
    pupil = ChildChoiceField(queryset=Pupil.objects.none(), required=False, label="Which child is it about?")
    details = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False,
                              max_length=MAX_DETAILS_LENGTH)

    EMPTY_CHILD = {
        Kind.CORRECTION: "Not about one child",
        Kind.DELETION: "Me and all my children",
        Kind.SUPPRESSION: "Me and all my children",
    }
    DETAILS_LABEL = {
        Kind.CORRECTION: "What is wrong, and what should it say?",
        Kind.DELETION: "Anything you want the school to know (optional)",
        Kind.SUPPRESSION: "Anything you want the school to know (optional)",
    }

    def __init__(self, *args, guardian: Guardian, kind: str, **kwargs):
        kwargs.setdefault("auto_id", f"id_{kind}_%s")
        kwargs.setdefault("initial", {"kind": kind})
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.fields["pupil"].queryset = _children(guardian)
        self.fields["pupil"].empty_label = self.EMPTY_CHILD[kind]
        self.fields["details"].label = self.DETAILS_LABEL[kind]
        self.fields["details"].required = kind == Kind.CORRECTION
        self.fields["details"].error_messages["required"] = "Tell the school what is wrong, and what it should say."

    def clean_kind(self) -> str:
        if self.cleaned_data["kind"] != self.kind:
            raise forms.ValidationError("Send one request at a time.")
        return self.kind


STATUS_FILTERS = [
    ("active", "Open or in progress"),
    (Status.OPEN, "Open"),
    (Status.IN_PROGRESS, "In progress"),
    (Status.COMPLETED, "Completed"),
    (Status.REFUSED, "Refused"),
    ("all", "Any status"),
]


class RightsQueueFilterForm(forms.Form):
    status = forms.ChoiceField(choices=STATUS_FILTERS, required=False,
                               widget=forms.Select(attrs={"class": "form-select"}))
    kind = forms.ChoiceField(choices=[("", "Any kind"), *Kind.choices], required=False,
                             widget=forms.Select(attrs={"class": "form-select"}))
    school = forms.ModelChoiceField(queryset=None, required=False, empty_label="All schools",
                                    widget=forms.Select(attrs={"class": "form-select"}))
    overdue = forms.BooleanField(label="Overdue only", required=False)

    def __init__(self, *args, schools: QuerySet, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["school"].queryset = schools


class GuardianSearchForm(forms.Form):
    q = forms.CharField(label="Guardian's name, email or MIS id", max_length=100, min_length=2)


class RightsRecordForm(forms.Form):
    kind = forms.ChoiceField(label="What they ask for", choices=Kind.choices, widget=forms.RadioSelect)
    channel = forms.ChoiceField(label="How it reached the school",
                                choices=[(c.value, c.label) for c in STAFF_CHANNELS], widget=forms.RadioSelect)
    received_on = forms.DateField(label="Date received",
                                  # ISO: the only value format an <input type="date"> accepts.
                                  widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
                                  help_text="The month to answer runs from this day.")
    pupil = ChildChoiceField(queryset=Pupil.objects.none(), required=False, label="Child",
                             empty_label="Not about one child")
    details = forms.CharField(
        label="What they ask", widget=forms.Textarea(attrs={"rows": 4}), required=False,
        max_length=MAX_DETAILS_LENGTH, help_text="Needed for a correction: what is wrong and what it should say.",
    )
    acknowledge = forms.BooleanField(
        label="Email the guardian an acknowledgement with the due date", required=False, initial=True,
    )

    def __init__(self, *args, guardian: Guardian, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pupil"].queryset = _children(guardian)
        if not guardian.email:
            self.fields["acknowledge"].disabled = True
            self.fields["acknowledge"].initial = False
            self.fields["acknowledge"].help_text = "This guardian has no email address: answer by post."


class RightsStatusForm(forms.Form):
    status = forms.ChoiceField(label="New status", choices=[(s.value, s.label) for s in NEXT_STATUSES],
                               widget=forms.RadioSelect)
    reason = forms.CharField(
        label="Reason", required=False, max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Needed to refuse. It goes in the audit trail: keep personal details out of it.",
    )

    def clean(self):
        data = super().clean()
        if data.get("status") == Status.REFUSED and not (data.get("reason") or "").strip():
            self.add_error("reason", "Say why the request is refused.")
        return data


class RightsResponseForm(forms.Form):
    response = forms.CharField(
        label="Answer to the guardian", max_length=MAX_RESPONSE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="Emailed to the guardian as you write it. For a refusal, give the reasons and say that they "
                  "may complain to the Information Commissioner's Office.",
    )
    then = forms.ChoiceField(
        label="Then", required=False, widget=forms.RadioSelect,
        choices=[("", "Leave the status as it is"), (Status.COMPLETED, "Mark the request completed"),
                 (Status.REFUSED, "Mark the request refused")],
    )
