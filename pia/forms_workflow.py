"""The sign-off forms: the DPO's advice with a comment per step, the data controller's decision."""

from django import forms

from .questions import STEPS
from .services import TEXT_LIMIT  # the services check it again

TOO_LONG = {"max_length": "Keep this to at most 20,000 characters (it has %(show_value)s)."}

ADVISE, REQUEST_CHANGES = "advise", "request_changes"
ACCEPT, OVERRULE = "accept", "overrule"


class AdviseForm(forms.Form):
    """The DPO's advice (or the changes they ask for), and an optional comment on each step of the form."""

    comments = forms.CharField(
        label="Your advice", required=False, widget=forms.Textarea(attrs={"rows": 5}), max_length=TEXT_LIMIT,
        error_messages=TOO_LONG,
        help_text="For advice: what you advise the data controller, and why. For changes: what should change.",
    )
    decision = forms.ChoiceField(choices=[(ADVISE, "Give advice"), (REQUEST_CHANGES, "Request changes")],
                                 widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for step in STEPS:
            self.fields[self.step_field(step.key)] = forms.CharField(
                label=f"Comment on “{step.title}”", required=False, widget=forms.Textarea(attrs={"rows": 2}),
                max_length=TEXT_LIMIT, error_messages=TOO_LONG,
            )

    @staticmethod
    def step_field(key: str) -> str:
        return f"step_{key}"

    def step_comments(self) -> dict[str, str]:
        return {step.key: self.cleaned_data.get(self.step_field(step.key), "").strip() for step in STEPS
                if self.cleaned_data.get(self.step_field(step.key), "").strip()}

    def clean(self):
        data = super().clean()
        comments = (data.get("comments") or "").strip()
        if data.get("decision") == ADVISE and not comments:
            self.add_error("comments", "Write your advice: the data controller decides on it.")
        if data.get("decision") == REQUEST_CHANGES and not comments and not self.step_comments():
            self.add_error("comments", "Say what should change: here, or in a comment on a step.")
        return data


class DecideForm(forms.Form):
    """The data controller accepts the DPO's advice, or overrules it with written reasons."""

    decision = forms.ChoiceField(
        label="Your decision", widget=forms.RadioSelect,
        choices=[(ACCEPT, "Accept the DPO's advice"), (OVERRULE, "Overrule the DPO's advice")],
    )
    reasons = forms.CharField(
        label="Your reasons", required=False, widget=forms.Textarea(attrs={"rows": 4}), max_length=TEXT_LIMIT,
        error_messages=TOO_LONG,
        help_text="Needed when you overrule the advice; optional when you accept it.",
    )

    def clean(self):
        data = super().clean()
        if data.get("decision") == OVERRULE and not (data.get("reasons") or "").strip():
            self.add_error("reasons", "Overruling the DPO's advice needs your reasons in writing.")
        return data


class CompareForm(forms.Form):
    """Two version numbers of one PIA."""

    a = forms.TypedChoiceField(label="Compare version", coerce=int, widget=forms.Select(attrs={"class": "form-select"}))
    b = forms.TypedChoiceField(label="with version", coerce=int, widget=forms.Select(attrs={"class": "form-select"}))
    unchanged = forms.BooleanField(label="Show the unchanged fields too", required=False)

    def __init__(self, *args, numbers: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(n, f"Version {n}") for n in numbers]
        self.fields["a"].choices = choices
        self.fields["b"].choices = choices
