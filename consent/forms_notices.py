"""Forms of the purposes and notice pages. Each takes the organisation(s) or purpose it works on."""

from django import forms

from .notices import MAX_REMINDERS, MAX_SECTION_CHARS, REMINDER_DAYS, normalise_text

_REMINDER_HELP = "Parents who have not answered are reminded this often."
_MAX_HELP = "After the first request; 0 sends no reminders."


class _ReminderFields(forms.Form):
    reminder_interval_days = forms.IntegerField(
        label="Days between reminders", min_value=REMINDER_DAYS[0], max_value=REMINDER_DAYS[1], initial=7,
        help_text=_REMINDER_HELP,
    )
    max_reminders = forms.IntegerField(
        label="Reminders at most", min_value=MAX_REMINDERS[0], max_value=MAX_REMINDERS[1], initial=3,
        help_text=_MAX_HELP,
    )


class PurposeCreateForm(_ReminderFields):
    organisation = forms.ModelChoiceField(queryset=None, empty_label=None)
    name = forms.CharField(max_length=200, help_text="What parents are asked to agree to, e.g. “Recording of lessons”.")

    field_order = ["organisation", "name", "reminder_interval_days", "max_reminders"]

    def __init__(self, *args, organisations, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organisation"].queryset = organisations
        self.organisation_hidden = len(organisations) == 1
        if self.organisation_hidden:
            # One organisation: nothing to choose (another organisation's id is still refused).
            self.fields["organisation"].widget = forms.HiddenInput()
            self.fields["organisation"].initial = organisations[0].pk

    def clean(self):
        data = super().clean()
        if self.organisation_hidden and self._errors.pop("organisation", None):
            # A hidden field's error would not show next to anything: say it at the top of the form.
            raise forms.ValidationError("You can add something to agree to only for your own organisation.")
        return data


class PurposeSettingsForm(_ReminderFields):
    pass


def _section(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label, max_length=MAX_SECTION_CHARS, strip=False, help_text=help_text,
        error_messages={"required": f"Write {label[0].lower()}{label[1:]}: parents read every section."},
        widget=forms.Textarea(attrs={"rows": 14, "class": "notice-textarea"}),
    )


class NoticeDraftForm(forms.Form):
    letter = _section("The letter", "A blank line starts a new paragraph.")
    protocol = _section("The meeting protocol", "One rule per line, each starting with “- ”.")
    privacy_notice = _section("The privacy notice", "What is collected, why, for how long, and parents' rights.")
    # The hash of the draft this form was opened on ("" when there was none): saving over someone
    # else's newer draft is refused rather than silently overwriting it.
    base_sha256 = forms.CharField(required=False, widget=forms.HiddenInput(), max_length=64)

    def clean_letter(self) -> str:
        return normalise_text(self.cleaned_data["letter"])

    def clean_protocol(self) -> str:
        return normalise_text(self.cleaned_data["protocol"])

    def clean_privacy_notice(self) -> str:
        return normalise_text(self.cleaned_data["privacy_notice"])


MINOR, MATERIAL = "minor", "material"


class PublishForm(forms.Form):
    change = forms.ChoiceField(
        label="What kind of change is this?",
        choices=[
            (MINOR, "Minor change (consents stay valid)"),
            (MATERIAL, "Material change (everyone must renew by a deadline)"),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose whether this is a minor or a material change."},
    )
    renewal_deadline = forms.DateField(
        label="Renewal deadline (material change only)", required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="Consents given on earlier versions stay valid until the end of this day, then lapse.",
    )
    # The hash of the draft as previewed: publishing something else is refused.
    draft_sha256 = forms.CharField(widget=forms.HiddenInput(), max_length=64)

    def __init__(self, *args, today=None, **kwargs):
        super().__init__(*args, **kwargs)
        if today is not None:
            # A hint for the date picker only; the service decides in the organisation's time zone.
            self.fields["renewal_deadline"].widget.attrs["min"] = today.isoformat()

    @property
    def material_change(self) -> bool:
        return self.cleaned_data.get("change") == MATERIAL

    def clean(self):
        data = super().clean()
        missing = not data.get("renewal_deadline") and "renewal_deadline" not in self.errors
        if data.get("change") == MATERIAL and missing:
            self.add_error("renewal_deadline", "A material change needs a renewal deadline.")
        if data.get("change") == MINOR:
            # A minor change asks nobody to renew: a date typed before switching to "minor" means nothing.
            data["renewal_deadline"] = None
        return data


class CompareForm(forms.Form):
    """Two published versions of one purpose's notice, by number."""

    old = forms.TypedChoiceField(label="From version", coerce=int)
    new = forms.TypedChoiceField(label="To version", coerce=int)

    def __init__(self, *args, versions: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(v, f"Version {v}") for v in versions]
        for name in ("old", "new"):
            self.fields[name].choices = choices
            self.fields[name].widget.attrs["class"] = "form-select"
