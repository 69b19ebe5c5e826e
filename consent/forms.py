"""Forms of the registry's staff pages. Each takes the school (or the pupil) and restricts its querysets."""

from django import forms
from django.utils import timezone

from .models import ConsentEvent, ConsentState, Group, Guardian, Pupil, RetentionSchedule, validate_evidence_attachment

STATUS_CHOICES = [
    ("", "Any status"),
    (ConsentState.GIVEN, "Consent given"),
    ("renewal", "Renewal needed"),
    (ConsentState.REFUSED, "Refused"),
    (ConsentState.WITHDRAWN, "Withdrawn"),
    (ConsentState.NONE, "No answer"),
    (ConsentState.LAPSED, "Lapsed"),
]


class RegistryFilterForm(forms.Form):
    q = forms.CharField(label="Name or MIS id", required=False, max_length=100)
    status = forms.ChoiceField(choices=STATUS_CHOICES, required=False,
                               widget=forms.Select(attrs={"class": "form-select"}))
    group = forms.ModelChoiceField(queryset=Group.objects.none(), required=False, empty_label="All groups",
                                   widget=forms.Select(attrs={"class": "form-select"}))
    renewal = forms.BooleanField(label="Renewal needed", required=False)
    leavers = forms.BooleanField(label="Include leavers", required=False)

    def __init__(self, *args, school, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = Group.objects.filter(school=school).order_by("kind", "name")


class GuardianContactForm(forms.ModelForm):
    class Meta:
        model = Guardian
        fields = ["email", "phone"]

    def __init__(self, *args, school, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.school_id != school.pk:
            raise ValueError("This guardian belongs to another school.")

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()

    def clean_phone(self) -> str:
        return " ".join(self.cleaned_data["phone"].split())


DECISIONS = [
    (ConsentEvent.Kind.GIVEN, "Consent given"),
    (ConsentEvent.Kind.REFUSED, "Consent refused"),
    (ConsentEvent.Kind.WITHDRAWN, "Consent withdrawn"),
]
CHANNELS = [
    (ConsentEvent.Channel.EMAIL_REPLY, "Email reply"),
    (ConsentEvent.Channel.PAPER_FORM, "Paper form"),
    (ConsentEvent.Channel.PHONE, "Phone call"),
]


class ConsentRecordForm(forms.Form):
    guardian = forms.ModelChoiceField(queryset=Guardian.objects.none(), empty_label=None,
                                      help_text="Only this pupil's guardians are listed.")
    kind = forms.ChoiceField(label="Decision", choices=DECISIONS, widget=forms.RadioSelect)
    received_on = forms.DateField(
        label="Date received", widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    channel = forms.ChoiceField(label="How it reached the school", choices=CHANNELS, widget=forms.RadioSelect)
    attestation = forms.BooleanField(
        label="The guardian stated they have parental responsibility for this child", required=False
    )
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000)
    attachment = forms.FileField(
        label="Scanned form or saved email (optional)", required=False,
        help_text="PDF, PNG, JPEG or .eml, at most 10 MB.",
    )

    def __init__(self, *args, pupil: Pupil, **kwargs):
        super().__init__(*args, **kwargs)
        self.pupil = pupil
        self.fields["guardian"].queryset = Guardian.objects.filter(
            school_id=pupil.school_id, guardianships__pupil=pupil
        ).order_by("last_name", "first_name")

    def clean_received_on(self):
        received_on = self.cleaned_data["received_on"]
        if received_on > timezone.now().astimezone(self.pupil.school.tz).date():
            raise forms.ValidationError("The date received cannot be in the future.")
        return received_on

    def clean_attachment(self):
        attachment = self.cleaned_data.get("attachment")
        if attachment:
            validate_evidence_attachment(attachment)
        return attachment


class RetentionScheduleForm(forms.ModelForm):
    class Meta:
        model = RetentionSchedule
        fields = ["leaver_month", "evidence_years"]
        help_texts = {
            "leaver_month": "A leaver's personal data is erased on the first day of this month after they leave.",
            "evidence_years": "Consent evidence (who agreed to what, when) is then kept this many years, 1 to 25.",
        }
